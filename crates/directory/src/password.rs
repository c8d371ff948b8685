//! Password hashing: argon2id (RFC 9106) with configurable costs, stored as
//! PHC strings so each hash carries its own parameters and older hashes keep
//! verifying after the costs change.
//!
//! Each hash needs its memory cost in working memory (19 MiB by default).
//! Allocated per call, concurrent logins took that much each and the
//! allocator kept it (40 logins: 650 MB). So the working memory lives in a
//! [`BlockPool`] of at most `max_concurrent_hashes` buffers, allocated once
//! and reused: a caller waits for a free buffer, and the process never
//! holds more than that many.

use std::sync::{Condvar, Mutex, MutexGuard};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::DirectoryError;

/// Longest password accepted, in bytes: far beyond any real passphrase, and
/// a bound on the work a client can make a verify do (SASL PLAIN allows
/// long strings).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Default for `auth.max_concurrent_hashes`: enough to keep a few cores
/// busy with logins, few enough that 4 x 19 MiB is all they ever take.
pub const DEFAULT_MAX_CONCURRENT_HASHES: usize = 4;

/// Longest salt of a PHC string (password-hash's `Salt::MAX_LENGTH`).
const MAX_SALT_LEN: usize = 64;

/// Reusable argon2 working memory: up to `slots` buffers of `blocks`
/// blocks, allocated on first use and kept.
pub(crate) struct BlockPool {
    blocks: usize,
    slots: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    free: Vec<Vec<Block>>,
    /// Buffers allocated so far (free or lent).
    allocated: usize,
}

/// A buffer lent by the pool; it goes back when dropped.
pub(crate) struct Lent<'a> {
    pool: &'a BlockPool,
    buffer: Vec<Block>,
}

impl BlockPool {
    fn new(blocks: usize, slots: usize) -> BlockPool {
        BlockPool {
            blocks,
            slots: slots.max(1),
            state: Mutex::new(PoolState {
                free: Vec::new(),
                allocated: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding the lock leaves the list consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of at least `self.blocks` blocks, waiting for one when all
    /// `slots` are lent.
    fn take(&self) -> Lent<'_> {
        let mut state = self.lock();
        loop {
            if let Some(buffer) = state.free.pop() {
                return Lent { pool: self, buffer };
            }
            if state.allocated < self.slots {
                state.allocated += 1;
                drop(state);
                return Lent {
                    pool: self,
                    buffer: vec![Block::default(); self.blocks],
                };
            }
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Buffers allocated so far (tests).
    #[cfg(test)]
    fn allocated(&self) -> usize {
        self.lock().allocated
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        self.pool.lock().free.push(buffer);
        self.pool.freed.notify_one();
    }
}

/// Hashes and verifies with one set of argon2id costs.
pub(crate) struct Hasher {
    params: Params,
    pool: BlockPool,
}

impl Hasher {
    pub(crate) fn new(
        m_cost: u32,
        t_cost: u32,
        p_cost: u32,
        max_concurrent: usize,
    ) -> Result<Hasher, DirectoryError> {
        let params = Params::new(m_cost, t_cost, p_cost, None).map_err(|e| {
            DirectoryError::Password(format!(
                "invalid argon2 costs (m={m_cost} KiB, t={t_cost}, p={p_cost}): {e}"
            ))
        })?;
        let pool = BlockPool::new(params.block_count(), max_concurrent);
        Ok(Hasher { params, pool })
    }

    /// How many hashes may run at once; more callers wait.
    pub(crate) fn max_concurrent(&self) -> usize {
        self.pool.slots
    }

    /// A PHC string for `password`; empty and over-long passwords are
    /// refused.
    pub(crate) fn hash(&self, password: &str) -> Result<String, DirectoryError> {
        if password.is_empty() {
            return Err(DirectoryError::Password(
                "the password is empty".to_string(),
            ));
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(DirectoryError::Password(format!(
                "the password is longer than {MAX_PASSWORD_LEN} bytes"
            )));
        }
        let fail = |e: &dyn std::fmt::Display| {
            DirectoryError::Password(format!("cannot hash the password: {e}"))
        };
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_buf = [0u8; MAX_SALT_LEN];
        let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| fail(&e))?;
        let output_len = self
            .params
            .output_len()
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = self
            .compute(
                Algorithm::Argon2id,
                Version::V0x13,
                &self.params,
                password,
                salt_bytes,
                output_len,
            )
            .map_err(|e| fail(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| fail(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` matches the PHC string `stored` (whose own
    /// parameters are used). An empty or over-long password never matches.
    pub(crate) fn verify(&self, stored: &str, password: &str) -> Result<bool, DirectoryError> {
        let unreadable = |e: &dyn std::fmt::Display| {
            DirectoryError::Password(format!("unreadable stored hash: {e}"))
        };
        let parsed = PasswordHash::new(stored).map_err(|e| unreadable(&e))?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| unreadable(&e))?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| unreadable(&e))?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|e| unreadable(&e))?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(unreadable(&"no salt or no hash"));
        };
        let mut salt_buf = [0u8; MAX_SALT_LEN];
        let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(|e| unreadable(&e))?;
        let computed = self
            .compute(
                algorithm,
                version,
                &params,
                password,
                salt_bytes,
                expected.len(),
            )
            .map_err(|e| unreadable(&e))?;
        // Output's equality is constant-time.
        let ok = computed == expected;
        Ok(ok && !password.is_empty() && password.len() <= MAX_PASSWORD_LEN)
    }

    /// One argon2 computation in pooled memory. A stored hash with a
    /// larger memory cost than the configured one (the costs were lowered
    /// since) gets memory of its own for this call.
    fn compute(
        &self,
        algorithm: Algorithm,
        version: Version,
        params: &Params,
        password: &str,
        salt: &[u8],
        output_len: usize,
    ) -> Result<Output, argon2::password_hash::Error> {
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let needed = params.block_count();
        let mut lent = self.pool.take();
        let mut own;
        let memory: &mut [Block] = match lent.buffer.get_mut(..needed) {
            Some(m) => m,
            None => {
                own = vec![Block::default(); needed];
                &mut own
            }
        };
        Output::init_with(output_len, |out| {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut *memory)
                .map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = Hasher::new(8, 1, 1, 2).unwrap();
        let stored = h.hash("secret").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify(&stored, "secret").unwrap());
        assert!(!h.verify(&stored, "Secret").unwrap());
    }

    #[test]
    fn empty_password_is_refused() {
        let h = Hasher::new(8, 1, 1, 2).unwrap();
        assert!(matches!(h.hash(""), Err(DirectoryError::Password(_))));
    }

    #[test]
    fn bad_costs_are_refused() {
        assert!(Hasher::new(1, 0, 1, 2).is_err());
    }

    #[test]
    fn hashes_of_the_argon2_crate_still_verify() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let h = Hasher::new(64, 1, 1, 2).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::new(128, 2, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        // A larger memory cost than the pool's buffers: memory of its own.
        assert!(h.verify(&theirs, "pw").unwrap());
        assert!(!h.verify(&theirs, "pW").unwrap());
        let ours = h.hash("pw").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
    }

    #[test]
    fn concurrent_hashes_share_at_most_the_pool_buffers() {
        let h = std::sync::Arc::new(Hasher::new(256, 1, 1, 2).unwrap());
        let stored = h.hash("pw").unwrap();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let (h, stored) = (h.clone(), stored.clone());
                std::thread::spawn(move || h.verify(&stored, if i % 2 == 0 { "pw" } else { "no" }))
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            assert_eq!(t.join().unwrap().unwrap(), i % 2 == 0);
        }
        assert!(h.pool.allocated() <= 2, "{}", h.pool.allocated());
    }
}
