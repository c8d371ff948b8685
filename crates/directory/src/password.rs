//! Password hashing: argon2id (RFC 9106) with configurable costs, stored as
//! PHC strings so each hash carries its own parameters and older hashes keep
//! verifying after the costs change.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::DirectoryError;

/// Longest password accepted, in bytes: far beyond any real passphrase, and
/// a bound on the work a client can make a verify do (SASL PLAIN allows
/// long strings).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes and verifies with one set of argon2id costs.
pub(crate) struct Hasher {
    params: Params,
}

impl Hasher {
    pub(crate) fn new(m_cost: u32, t_cost: u32, p_cost: u32) -> Result<Hasher, DirectoryError> {
        let params = Params::new(m_cost, t_cost, p_cost, None).map_err(|e| {
            DirectoryError::Password(format!(
                "invalid argon2 costs (m={m_cost} KiB, t={t_cost}, p={p_cost}): {e}"
            ))
        })?;
        Ok(Hasher { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
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
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| DirectoryError::Password(format!("cannot hash the password: {e}")))
    }

    /// Whether `password` matches the PHC string `stored` (whose own
    /// parameters are used). An empty or over-long password never matches.
    pub(crate) fn verify(&self, stored: &str, password: &str) -> Result<bool, DirectoryError> {
        let parsed = PasswordHash::new(stored)
            .map_err(|e| DirectoryError::Password(format!("unreadable stored hash: {e}")))?;
        let ok = self
            .argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && !password.is_empty() && password.len() <= MAX_PASSWORD_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = Hasher::new(8, 1, 1).unwrap();
        let stored = h.hash("secret").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify(&stored, "secret").unwrap());
        assert!(!h.verify(&stored, "Secret").unwrap());
    }

    #[test]
    fn empty_password_is_refused() {
        let h = Hasher::new(8, 1, 1).unwrap();
        assert!(matches!(h.hash(""), Err(DirectoryError::Password(_))));
    }

    #[test]
    fn bad_costs_are_refused() {
        assert!(Hasher::new(1, 0, 1).is_err());
    }
}
