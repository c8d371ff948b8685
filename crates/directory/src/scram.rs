//! SCRAM-SHA-256 keys (RFC 5802 3, RFC 7677) beside the argon2 hash: what
//! `user add` and `user passwd` write, what a SCRAM login reads, and the
//! fake keys an unknown name gets.
//!
//! A name that matches nobody gets keys derived from the name under a
//! server secret (32 random octets made once, in the `meta` table): the
//! salt is stable from one attempt to the next and looks like a real
//! 16-octet salt, and the exchange fails at the proof like a wrong
//! password, so SCRAM does not reveal which users exist (RFC 5802 9 on
//! `unknown-user`; RFC 7677 5).
//!
//! Users stored before schema version 3 have no keys: the SCRAM lookup
//! treats them as unknown until a PLAIN or LOGIN success hands their
//! password to [`DirectoryDb::fill_scram_keys`].

use std::num::NonZeroU32;

use proto_common::{ScramKeys, ServerNonce, derive_keys, saslprep};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{DirectoryCore, DirectoryDb, DirectoryError};

/// Octets of a SCRAM salt: issue 11 asks for 16 (RFC 5802 sets no length;
/// NIST SP 800-132 5.1 asks for at least 128 bits).
pub const SCRAM_SALT_LEN: usize = 16;

/// Default and minimum of `auth.scram_iterations`: RFC 7677 4 ("at least
/// 4096").
pub const DEFAULT_SCRAM_ITERATIONS: u32 = proto_common::MIN_ITERATIONS;

/// Octets of the server secret behind the fake salts: as long as the
/// HMAC-SHA-256 key it is (RFC 2104 3: at least the output length).
const SECRET_LEN: usize = 32;

/// The `meta` key of the secret.
const SECRET_KEY: &str = "scram_secret";

fn random<const N: usize>() -> Result<[u8; N], DirectoryError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| DirectoryError::Password("the system random source failed".to_string()))?;
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Migration to version 3 (and any database missing it): makes the
/// secret once; a second process finds it there.
pub(crate) fn create_secret(conn: &Connection) -> Result<(), DirectoryError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        params![SECRET_KEY, new_scram_secret()?],
    )?;
    Ok(())
}

/// The stored fake-salt secret (hex), made when missing (a database
/// restored without its meta row).
pub(crate) fn load_secret(conn: &Connection) -> Result<String, DirectoryError> {
    let read = |conn: &Connection| -> Result<Option<String>, DirectoryError> {
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [SECRET_KEY], |r| {
                r.get(0)
            })
            .optional()?)
    };
    match read(conn)? {
        Some(t) => Ok(t),
        None => {
            create_secret(conn)?;
            read(conn)?.ok_or_else(|| DirectoryError::Db("the SCRAM secret vanished".into()))
        }
    }
}

/// A new fake-salt secret, as a backend stores it (hex of
/// [`SECRET_LEN`] random octets).
pub fn new_scram_secret() -> Result<String, DirectoryError> {
    Ok(hex(&random::<SECRET_LEN>()?))
}

/// The HMAC key of a stored secret; an unreadable one is an error rather
/// than a silently different secret.
pub(crate) fn secret_key(text: &str) -> Result<hmac::Key, DirectoryError> {
    match unhex(text.trim()) {
        Some(secret) if secret.len() == SECRET_LEN => {
            Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
        }
        _ => Err(DirectoryError::Db(format!(
            "unreadable {SECRET_KEY} in the directory's meta table"
        ))),
    }
}

/// Reads a user's stored keys; None when the user has none (yet).
fn stored_keys(conn: &Connection, address: &str) -> Result<Option<ScramKeys>, DirectoryError> {
    type Row = (
        Option<Vec<u8>>,
        Option<i64>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT scram_salt, scram_iterations, scram_stored_key, scram_server_key
             FROM users WHERE address = ?1",
        )?
        .query_row([address], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((Some(salt), Some(iterations), Some(stored), Some(server))) = row else {
        return Ok(None);
    };
    let unreadable = || DirectoryError::Password(format!("unreadable SCRAM keys of {address}"));
    let iterations = u32::try_from(iterations)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(unreadable)?;
    Ok(Some(ScramKeys {
        salt,
        iterations,
        stored_key: stored.as_slice().try_into().map_err(|_| unreadable())?,
        server_key: server.as_slice().try_into().map_err(|_| unreadable())?,
    }))
}

/// Writes (or with None clears) a user's keys; the number of rows changed.
/// `only_missing` leaves keys that are already there.
pub(crate) fn write_keys(
    conn: &Connection,
    address: &str,
    keys: Option<&ScramKeys>,
    only_missing: bool,
) -> Result<usize, DirectoryError> {
    let sql = if only_missing {
        "UPDATE users SET scram_salt = ?2, scram_iterations = ?3, scram_stored_key = ?4,
                scram_server_key = ?5
         WHERE address = ?1 AND scram_stored_key IS NULL"
    } else {
        "UPDATE users SET scram_salt = ?2, scram_iterations = ?3, scram_stored_key = ?4,
                scram_server_key = ?5
         WHERE address = ?1"
    };
    Ok(conn.execute(
        sql,
        params![
            address,
            keys.map(|k| k.salt.as_slice()),
            keys.map(|k| i64::from(k.iterations.get())),
            keys.map(|k| k.stored_key.as_slice()),
            keys.map(|k| k.server_key.as_slice()),
        ],
    )?)
}

impl DirectoryCore {
    /// Whether SCRAM-SHA-256 is on (`auth.scram`): when off, no keys are
    /// written, `scram_keys` finds none, and the protocols do
    /// not advertise the mechanism.
    pub fn scram_enabled(&self) -> bool {
        self.scram
    }

    /// Keys for `password` with a fresh random salt, or None when SCRAM
    /// is off. PBKDF2 runs here: call it outside the connection lock.
    pub fn new_scram_keys(&self, password: &str) -> Result<Option<ScramKeys>, DirectoryError> {
        if !self.scram_enabled() {
            return Ok(None);
        }
        let salt = random::<SCRAM_SALT_LEN>()?;
        Ok(Some(derive_keys(password, &salt, self.scram_iterations)))
    }

    /// Keys for a name that has none: the salt is HMAC-SHA-256 of the name
    /// under the server secret (cut to a real salt's 16 octets), so the
    /// same name always shows the same salt; StoredKey and ServerKey are
    /// HMACs too, which no password's H(ClientKey) meets short of a
    /// SHA-256 preimage. The name is taken as a login resolves it (a bare
    /// local part is the primary domain's, case folded like an address),
    /// so `Zed` and `zed@primary` show one salt, as a real user's would.
    pub fn fake_scram_keys(&self, login: &str) -> ScramKeys {
        let name = self.fake_key_name(login);
        let secret = &self.scram_secret;
        let mac = |label: &str| {
            let mut ctx = hmac::Context::with_key(secret);
            ctx.update(label.as_bytes());
            ctx.update(&[0]);
            ctx.update(name.as_bytes());
            let mut out = [0u8; proto_common::KEY_LEN];
            out.copy_from_slice(ctx.sign().as_ref());
            out
        };
        let salt = mac("salt");
        ScramKeys {
            salt: salt.get(..SCRAM_SALT_LEN).unwrap_or(&salt).to_vec(),
            iterations: self.scram_iterations,
            stored_key: mac("stored key"),
            server_key: mac("server key"),
        }
    }

    fn fake_key_name(&self, login: &str) -> String {
        let login = login.trim();
        let prepped = saslprep(login).map_or_else(|_| login.to_string(), |p| p.into_owned());
        if prepped.contains('@') {
            self.canonical(&prepped)
                .unwrap_or_else(|_| prepped.to_lowercase())
        } else {
            format!("{}@{}", prepped.to_lowercase(), self.primary_domain())
        }
    }

    /// A fresh server nonce for a SCRAM exchange, from the system's
    /// random source (RFC 5802 5.1: fresh and unpredictable).
    pub fn scram_server_nonce(&self) -> Result<ServerNonce, DirectoryError> {
        Ok(ServerNonce::from_random(&random()?))
    }
}

impl DirectoryDb {
    /// The account and stored keys for a SCRAM user name, resolved as
    /// `authenticate` resolves logins (a full address, or a
    /// bare local part in the primary domain, else the one user with that
    /// local part). None when the name matches nobody, the user has no
    /// keys yet, or SCRAM is off: then use [`DirectoryCore::fake_scram_keys`].
    pub fn scram_keys(&self, login: &str) -> Result<Option<(String, ScramKeys)>, DirectoryError> {
        if !self.scram_enabled() {
            return Ok(None);
        }
        let Some(account) = self.find_login(login)? else {
            return Ok(None);
        };
        let keys = stored_keys(&self.lock(), &account)?;
        Ok(keys.map(|k| (account, k)))
    }

    /// Writes keys for a user who has none (stored before schema version
    /// 3): call it with the password right after `authenticate`
    /// accepted it for `account` (PLAIN, LOGIN, USER/PASS). True when keys
    /// were written; false when the user already has keys, does not exist,
    /// or SCRAM is off. Costs one PBKDF2, only the first time.
    pub fn fill_scram_keys(&self, account: &str, password: &str) -> Result<bool, DirectoryError> {
        if !self.scram_enabled() {
            return Ok(false);
        }
        let account = self.canonical(account)?;
        if stored_keys(&self.lock(), &account)?.is_some() {
            return Ok(false);
        }
        let Some(keys) = self.new_scram_keys(password)? else {
            return Ok(false);
        };
        // Only where still missing: a `user passwd` in between has written
        // keys for the new password, which must win.
        let written = write_keys(&self.lock(), &account, Some(&keys), true)? == 1;
        if written {
            tracing::info!(%account, "SCRAM keys written at login");
        }
        Ok(written)
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
