//! The directory: which domains are ours, who the users are, and where mail
//! for an address goes (SPEC 4). Users, aliases, mailing lists and forwards
//! live in one SQLite database that the server and the CLI open at the same
//! time; every lookup reads the database, so a change made by the CLI takes
//! effect in a running server without a restart.
//!
//! RFCs: RFC 5321 2.4 (local-part case), 3.3 and 3.4 (RCPT, 251/551
//! forwarding), 3.5 (VRFY/EXPN), 4.5.1 (postmaster); RFC 5233 style
//! `+detail` sub-addressing.
//!
//! Sessions and the CLI use the [`Directory`] trait (async, object-safe,
//! `Arc<dyn Directory>`); [`SqliteDirectory`] is the embedded backend.
//! Backends are chosen by config (the `backends` crate's factories), and
//! one conformance suite (`conformance`, behind the feature of that name)
//! runs on each.
//!
//! Locking in the SQLite backend: [`DIRECTORY_CONNECTIONS`] connections,
//! each behind its own mutex, used by the directory's query thread and by
//! password changes on tokio's blocking pool, never on the async workers
//! (see `sqlite.rs`). Password hashing happens outside any connection. Between processes SQLite's WAL and busy
//! timeout do the work; writes that check then insert run in `BEGIN
//! IMMEDIATE` transactions, so two writers cannot both pass the check.

#![forbid(unsafe_code)]

mod address;
mod admin;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod logic;
mod password;
mod resolve;
mod schema;
mod scram;
mod sqlite;
mod vrfy;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

pub use address::{DETAIL_SEPARATOR, MAX_DOMAIN_LEN, MAX_FULL_NAME_LEN, MAX_LOCAL_PART_LEN};
pub use admin::{Group, check_full_name};
pub use logic::{DirectoryCore, Lookup, VrfyTerms};
pub use password::{DEFAULT_MAX_CONCURRENT_HASHES, MAX_PASSWORD_LEN};
pub use proto_common::ScramKeys;
pub use proto_common::ServerNonce;
pub use resolve::{MAX_EXPANSION_DEPTH, MAX_EXPANSION_TARGETS};
pub use schema::{BUSY_TIMEOUT, SCHEMA_VERSION, fold};
pub use scram::{DEFAULT_SCRAM_ITERATIONS, SCRAM_SALT_LEN, new_scram_secret};
pub use sqlite::{DIRECTORY_CONNECTIONS, DIRECTORY_QUERY_THREADS, SqliteDirectory};

/// The directory database's usual file name inside the data directory.
pub const DB_FILE_NAME: &str = "directory.db";

/// Argon2id memory cost in KiB: the OWASP Password Storage Cheat Sheet
/// minimum for argon2id (m=19 MiB, t=2, p=1).
pub const DEFAULT_ARGON2_M_COST: u32 = 19_456;
/// Argon2id iterations: OWASP minimum, see [`DEFAULT_ARGON2_M_COST`].
pub const DEFAULT_ARGON2_T_COST: u32 = 2;
/// Argon2id lanes: OWASP minimum, see [`DEFAULT_ARGON2_M_COST`].
pub const DEFAULT_ARGON2_P_COST: u32 = 1;

/// What the directory needs from the configuration file.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// Our domains, lowercased by [`Directory::open`]; the first is the
    /// primary domain. Must not be empty.
    pub domains: Vec<String>,
    /// Per local domain: where mail to an address that matches nothing goes.
    pub catch_all: BTreeMap<String, String>,
    /// Argon2id memory cost in KiB.
    pub argon2_m_cost: u32,
    /// Argon2id iterations.
    pub argon2_t_cost: u32,
    /// Argon2id lanes.
    pub argon2_p_cost: u32,
    /// Password hashes computed at once; each holds `argon2_m_cost` KiB.
    pub max_concurrent_hashes: usize,
    /// PBKDF2 iterations of new SCRAM-SHA-256 keys; at least
    /// [`DEFAULT_SCRAM_ITERATIONS`] (RFC 7677 4).
    pub scram_iterations: u32,
    /// SCRAM-SHA-256 on: keys are written with passwords and offered.
    pub scram: bool,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            domains: vec!["localhost".to_string()],
            catch_all: BTreeMap::new(),
            argon2_m_cost: DEFAULT_ARGON2_M_COST,
            argon2_t_cost: DEFAULT_ARGON2_T_COST,
            argon2_p_cost: DEFAULT_ARGON2_P_COST,
            max_concurrent_hashes: password::DEFAULT_MAX_CONCURRENT_HASHES,
            scram_iterations: DEFAULT_SCRAM_ITERATIONS,
            scram: true,
        }
    }
}

/// A user account (one that can log in and has a mailbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub address: String,
    pub full_name: Option<String>,
}

/// A user's own quota limits (RFC 9208); `None` takes the configured
/// default. Storage in octets, 0 meaning unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserQuota {
    pub storage: Option<u64>,
    pub messages: Option<u64>,
}

/// A mailing list member, as EXPN shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub address: String,
    /// Known when the member is a local user.
    pub full_name: Option<String>,
}

/// A user's forward (RFC 5321 3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub target: String,
    /// Also deliver to the user's own mailbox.
    pub keep: bool,
    /// Do not forward: answer 551 "please try <target>" instead. Wins over
    /// `keep`.
    pub refuse: bool,
}

/// Where mail for a RCPT address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The domain is not one of ours: the caller decides about relaying.
    NotLocal,
    /// Our domain, nothing matches (550 5.1.1).
    Unknown,
    /// Accounts (canonical) and remote addresses after full expansion.
    Deliver {
        local: Vec<String>,
        remote: Vec<String>,
    },
    /// RFC 821 forwarding: 251 "User not local; will forward to <to>".
    /// `local` has the user itself when keep is set, and the target when it
    /// is local; `remote` has the target when it is remote.
    Forward {
        to: String,
        local: Vec<String>,
        remote: Vec<String>,
    },
    /// 551 "User not local; please try <to>".
    Refuse { to: String },
}

/// Everything that can go wrong in the directory.
#[derive(Debug)]
pub enum DirectoryError {
    /// The domain (lowercased) is not one of the configured domains; an
    /// empty string means no domains are configured at all.
    UnknownDomain(String),
    /// The text is not a usable address (or, with a reason in parentheses,
    /// the request is not usable).
    InvalidAddress(String),
    /// The address is already a user, alias or list.
    AlreadyExists(String),
    /// No such user, alias, list, member or forward.
    NotFound(String),
    /// The database was written by a newer mailroom.
    NewerSchema { found: u32, supported: u32 },
    /// SQLite failed (I/O, busy past the timeout, corruption).
    Db(String),
    /// The password could not be hashed or the stored hash is unreadable.
    Password(String),
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirectoryError::UnknownDomain(d) if d.is_empty() => {
                write!(f, "no domains are configured")
            }
            DirectoryError::UnknownDomain(d) => {
                write!(f, "domain {d} is not one of the configured domains")
            }
            DirectoryError::InvalidAddress(a) => write!(f, "invalid address: {a}"),
            DirectoryError::AlreadyExists(a) => {
                write!(f, "{a} already exists (as a user, alias or list)")
            }
            DirectoryError::NotFound(a) => write!(f, "{a} does not exist"),
            DirectoryError::NewerSchema { found, supported } => write!(
                f,
                "the directory database has schema version {found}, newer than the \
                 {supported} this mailroom supports: upgrade mailroom"
            ),
            DirectoryError::Db(e) => write!(f, "directory database error: {e}"),
            DirectoryError::Password(e) => write!(f, "password error: {e}"),
        }
    }
}

impl std::error::Error for DirectoryError {}

impl From<rusqlite::Error> for DirectoryError {
    fn from(e: rusqlite::Error) -> Self {
        DirectoryError::Db(e.to_string())
    }
}

/// The future every async directory method returns: boxed so that
/// [`Directory`] stays object-safe (`Arc<dyn Directory>`), as the store's.
pub type DirectoryFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, DirectoryError>> + Send + 'a>>;

/// What sessions (RCPT, VRFY, EXPN, logins, SCRAM) and the CLI's admin
/// commands need from a directory.
///
/// The synchronous methods answer from the configuration alone (domains,
/// address syntax, SCRAM settings) and never touch the database. Every
/// other method is async: a backend does its I/O (and the slow password
/// hashing) off the async workers. Every write is durable when its future
/// resolves Ok, and is atomic: on error nothing of it was written. A write
/// is seen by every later lookup, from this process or another (the CLI
/// changes a running server's directory without a restart).
pub trait Directory: Send + Sync + 'static {
    /// Our domains, lowercased; the first is the primary.
    fn domains(&self) -> &[String];
    /// The first configured domain.
    fn primary_domain(&self) -> &str {
        self.domains().first().map(String::as_str).unwrap_or("")
    }
    /// Whether `domain` is one of ours (case-insensitive).
    fn is_local_domain(&self, domain: &str) -> bool {
        address::is_local(self.domains(), domain)
    }
    /// Splits and canonicalises "local@domain" (domain lowercased; local
    /// lowercased only when the domain is local). Bare "local" ->
    /// InvalidAddress (callers qualify first).
    fn canonical(&self, address: &str) -> Result<String, DirectoryError> {
        address::canonical(self.domains(), address)
    }
    /// How many password checks may run at once: callers bound their own
    /// queue to this (a check past it waits for working memory).
    fn max_concurrent_hashes(&self) -> usize;
    /// Whether SCRAM-SHA-256 is on (`auth.scram`): when off, no keys are
    /// written, [`Directory::scram_keys`] finds none, and the protocols do
    /// not advertise the mechanism.
    fn scram_enabled(&self) -> bool;
    /// Keys for a SCRAM name that has none, stable per name, so that
    /// SCRAM does not tell which users exist (RFC 5802 9, RFC 7677 5).
    fn fake_scram_keys(&self, login: &str) -> ScramKeys;
    /// A fresh server nonce for a SCRAM exchange (RFC 5802 5.1).
    fn scram_server_nonce(&self) -> Result<ServerNonce, DirectoryError>;

    /// RCPT resolution of a fully qualified address (RFC 5321 3.3, 3.4):
    /// aliases, lists, forwards, `+detail`, postmaster and catch-all.
    fn resolve<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Resolution>;
    /// VRFY (RFC 5321 3.5, SPEC 4): the exact address, the local part in
    /// any of our domains, or the full name, case-insensitively (Unicode);
    /// every matching user, sorted by address (several = ambiguous, 553).
    fn vrfy<'a>(&'a self, query: &'a str) -> DirectoryFuture<'a, Vec<User>>;
    /// EXPN: Some(members) when the address is a mailing list, in
    /// insertion order, with full names for local users.
    fn expn<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<Vec<Member>>>;
    /// Login name resolution (SPEC 7): a full address; or a bare local
    /// part = that user in the primary domain, else the ONE user with that
    /// local part in any domain, else None. Aliases and lists cannot log in.
    fn find_login<'a>(&'a self, login: &'a str) -> DirectoryFuture<'a, Option<String>>;
    /// Some(canonical account) when `login` resolves and the password
    /// matches. An unknown name costs a password check too, so the time a
    /// failed login takes does not tell which names exist.
    fn authenticate<'a>(
        &'a self,
        login: &'a str,
        password: &'a str,
    ) -> DirectoryFuture<'a, Option<String>>;
    /// The account and stored SCRAM keys for a SCRAM user name, resolved
    /// like a login. None when the name matches nobody, the user has no
    /// keys yet, or SCRAM is off: then use [`Directory::fake_scram_keys`].
    fn scram_keys<'a>(&'a self, login: &'a str)
    -> DirectoryFuture<'a, Option<(String, ScramKeys)>>;
    /// Writes keys for a user who has none (stored before SCRAM keys
    /// existed), right after [`Directory::authenticate`] accepted
    /// `password` for `account`. True when keys were written.
    fn fill_scram_keys<'a>(
        &'a self,
        account: &'a str,
        password: &'a str,
    ) -> DirectoryFuture<'a, bool>;

    /// Adds a user in one of our domains; returns the canonical address.
    fn add_user<'a>(
        &'a self,
        address: &'a str,
        full_name: Option<&'a str>,
        password: &'a str,
    ) -> DirectoryFuture<'a, String>;
    /// Removes a user and its forward. The mailbox is the store's business.
    fn delete_user<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, ()>;
    /// Replaces a user's password, and with it the SCRAM keys.
    fn set_password<'a>(&'a self, address: &'a str, password: &'a str) -> DirectoryFuture<'a, ()>;
    /// Every user, sorted by address.
    fn list_users(&self) -> DirectoryFuture<'_, Vec<User>>;
    /// Sets a user's own quota (`mailroom user quota`).
    fn set_quota<'a>(&'a self, address: &'a str, quota: UserQuota) -> DirectoryFuture<'a, ()>;
    /// A user's own quota; None when there is no such user.
    fn quota<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<UserQuota>>;
    /// Every user with a limit of their own, sorted by address.
    fn quotas(&self) -> DirectoryFuture<'_, Vec<(String, UserQuota)>>;
    /// The user at `address`, if there is one.
    fn user<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<User>>;
    /// Creates an alias, or adds targets to an existing one. Refused when
    /// the alias would reach itself; the warnings name targets in our
    /// domains that do not exist (yet).
    fn add_alias<'a>(
        &'a self,
        address: &'a str,
        targets: &'a [String],
    ) -> DirectoryFuture<'a, Vec<String>>;
    /// Removes targets from an alias; no targets removes the whole alias.
    fn del_alias<'a>(&'a self, address: &'a str, targets: &'a [String]) -> DirectoryFuture<'a, ()>;
    /// Every alias with its targets, sorted by address, targets in
    /// insertion order.
    fn aliases(&self) -> DirectoryFuture<'_, Vec<(String, Vec<String>)>>;
    /// Creates a mailing list, or adds members; like [`Directory::add_alias`].
    fn add_list<'a>(
        &'a self,
        address: &'a str,
        members: &'a [String],
    ) -> DirectoryFuture<'a, Vec<String>>;
    /// Removes members from a list; no members removes the whole list.
    fn del_list<'a>(&'a self, address: &'a str, members: &'a [String]) -> DirectoryFuture<'a, ()>;
    /// Every list with its members, sorted by address.
    fn lists(&self) -> DirectoryFuture<'_, Vec<(String, Vec<String>)>>;
    /// Forwards an existing user's mail (RFC 5321 3.4). `keep` also
    /// delivers to the user's mailbox; `refuse` answers 551 instead.
    fn set_forward<'a>(
        &'a self,
        address: &'a str,
        target: &'a str,
        keep: bool,
        refuse: bool,
    ) -> DirectoryFuture<'a, ()>;
    /// Removes a user's forward.
    fn del_forward<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, ()>;
    /// A user's forward, if set.
    fn forward<'a>(&'a self, address: &'a str) -> DirectoryFuture<'a, Option<Forward>>;
}

/// The synchronous SQLite directory that [`SqliteDirectory`] runs on the
/// blocking pool. Crate-private: everything outside uses the trait. What
/// is not SQL (the rules, hashing, SCRAM) is its [`DirectoryCore`], which
/// it derefs to.
pub(crate) struct DirectoryDb {
    /// The connection that migrated the schema, and the others.
    first: Mutex<Connection>,
    others: Vec<Mutex<Connection>>,
    next_conn: AtomicUsize,
    core: DirectoryCore,
    /// RCPT resolutions until the database changes (`resolve.rs`).
    resolve_cache: Mutex<resolve::ResolveCache>,
}

impl fmt::Debug for DirectoryDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryDb")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for DirectoryDb {
    type Target = DirectoryCore;

    fn deref(&self) -> &DirectoryCore {
        &self.core
    }
}

impl DirectoryDb {
    /// Opens (creating and migrating as needed) the database at `db_path`.
    /// Refuses a database from a newer mailroom with
    /// [`DirectoryError::NewerSchema`]; a bad config before touching it.
    pub fn open(db_path: &Path, config: DirectoryConfig) -> Result<DirectoryDb, DirectoryError> {
        let mut opened = None;
        let core = DirectoryCore::new(config, || {
            if let Some(parent) = db_path.parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    DirectoryError::Db(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            let conn = schema::open(db_path)?;
            let secret = scram::load_secret(&conn)?;
            opened = Some(conn);
            Ok(secret)
        })?;
        let conn = opened.ok_or_else(|| DirectoryError::Db("the directory did not open".into()))?;
        let mut others = Vec::new();
        for _ in 1..DIRECTORY_CONNECTIONS {
            others.push(Mutex::new(schema::connect(db_path)?));
        }
        Ok(DirectoryDb {
            first: Mutex::new(conn),
            others,
            next_conn: AtomicUsize::new(0),
            core,
            resolve_cache: Mutex::new(resolve::ResolveCache::new(schema::connect(db_path)?)),
        })
    }

    /// A free connection, else the next one in turn (waiting for it). A
    /// panic in another thread while it held the lock leaves SQLite
    /// consistent (transactions roll back on drop), so a poisoned lock is
    /// used as is.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        let n = self.others.len() + 1;
        let slot = |i: usize| match i.checked_sub(1) {
            None => &self.first,
            Some(i) => self.others.get(i).unwrap_or(&self.first),
        };
        let start = self.next_conn.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(conn) = slot((start + i) % n).try_lock() {
                return conn;
            }
        }
        slot(start).lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers for the unit tests: a directory in a temporary folder with
    //! tiny argon2 costs so tests are fast.

    use super::*;

    pub struct TestDir {
        pub dir: DirectoryDb,
        pub tmp: tempfile::TempDir,
    }

    pub fn config(domains: &[&str]) -> DirectoryConfig {
        DirectoryConfig {
            domains: domains.iter().map(|d| d.to_string()).collect(),
            catch_all: BTreeMap::new(),
            argon2_m_cost: 8,
            argon2_t_cost: 1,
            argon2_p_cost: 1,
            max_concurrent_hashes: 2,
            scram_iterations: DEFAULT_SCRAM_ITERATIONS,
            scram: true,
        }
    }

    pub fn open_with(config: DirectoryConfig) -> TestDir {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DirectoryDb::open(&tmp.path().join(DB_FILE_NAME), config).unwrap();
        TestDir { dir, tmp }
    }

    pub fn open(domains: &[&str]) -> TestDir {
        open_with(config(domains))
    }

    pub fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    pub fn deliver(local: &[&str], remote: &[&str]) -> Resolution {
        Resolution::Deliver {
            local: s(local),
            remote: s(remote),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<DirectoryDb>();
        check::<SqliteDirectory>();
    }
}
