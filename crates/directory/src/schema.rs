//! The directory database: connection settings and schema migrations.
//!
//! Version history lives in [`MIGRATIONS`]: migration `i` takes the schema
//! from version `i` to `i + 1`. `open` applies the missing ones in one
//! `BEGIN IMMEDIATE` transaction, so a server and a CLI starting together
//! cannot both migrate; a database whose version is newer than
//! [`SCHEMA_VERSION`] is refused (SPEC 6: an older mailroom refuses it with a
//! clear message).
//!
//! Tables (addresses are stored canonical, see `address.rs`):
//! - `users(address PK, full_name, password_hash, local_folded,
//!   name_folded)`: PHC argon2id strings; the local part and the full name
//!   case-folded in Rust (SQLite's `lower()` folds ASCII only), indexed
//!   for VRFY and bare-name logins (version 2; Unicode case folding rather
//!   than lower case since version 4, see [`fold`]); `scram_salt`,
//!   `scram_iterations`, `scram_stored_key`, `scram_server_key`: the
//!   SCRAM-SHA-256 keys of RFC 5802 3, all NULL for a user who has none
//!   yet (version 3, see `scram.rs`).
//! - `aliases(address, target)`, `lists(address, member)`: one row per
//!   target, insertion order is rowid order.
//! - `forwards(address PK, target, keep, refuse)`: only for users.
//! - `meta(key PK, value)`: `schema_version`, and `scram_secret` (version
//!   3): 32 random octets in hex, the key of the fake SCRAM salts.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::DirectoryError;

/// How long a statement waits for another process's write lock before
/// failing: long enough for a CLI write, short enough that a stuck lock
/// shows up as an error rather than a hung SMTP session.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 5;

/// One schema step: SQL, then an optional data step in Rust.
type Migration = (
    &'static str,
    Option<fn(&Connection) -> Result<(), DirectoryError>>,
);

/// `MIGRATIONS[i]` upgrades version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    (V1, None),
    (V2, Some(fold_users)),
    (V3, Some(crate::scram::create_secret)),
    (V4, Some(fold_users)),
    (V_USER_QUOTA, None),
];

/// Per-user quota (issue 15, RFC 9208): NULL means the `[quota]` default
/// of the config; 0 means unlimited.
pub(crate) const V_USER_QUOTA: &str = "
    ALTER TABLE users ADD COLUMN quota_storage INTEGER;
    ALTER TABLE users ADD COLUMN quota_messages INTEGER;
";

pub(crate) const V1: &str = "
    CREATE TABLE users (
        address       TEXT PRIMARY KEY NOT NULL,
        full_name     TEXT,
        password_hash TEXT NOT NULL
    );
    CREATE TABLE aliases (
        address TEXT NOT NULL,
        target  TEXT NOT NULL,
        PRIMARY KEY (address, target)
    );
    CREATE TABLE lists (
        address TEXT NOT NULL,
        member  TEXT NOT NULL,
        PRIMARY KEY (address, member)
    );
    CREATE TABLE forwards (
        address TEXT PRIMARY KEY NOT NULL,
        target  TEXT NOT NULL,
        keep    INTEGER NOT NULL,
        refuse  INTEGER NOT NULL
    );
";

/// Version 2: VRFY by an index instead of reading every user (issue 9).
pub(crate) const V2: &str = "
    ALTER TABLE users ADD COLUMN local_folded TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN name_folded TEXT;
    CREATE INDEX users_local_folded ON users (local_folded);
    CREATE INDEX users_name_folded ON users (name_folded);
";

/// Version 3: SCRAM-SHA-256 keys beside the argon2 hash (issue 11). Users
/// of earlier versions get theirs at their next password login
/// (`Directory::fill_scram_keys`): the keys need the password.
const V3: &str = "
    ALTER TABLE users ADD COLUMN scram_salt BLOB;
    ALTER TABLE users ADD COLUMN scram_iterations INTEGER;
    ALTER TABLE users ADD COLUMN scram_stored_key BLOB;
    ALTER TABLE users ADD COLUMN scram_server_key BLOB;
";

/// Version 4: the folded columns again, folded as [`fold`] now does (upper
/// then lower case) rather than by lower case alone (issue 10). No schema
/// change: the data step rewrites every user's folded columns.
const V4: &str = "";

/// Case folding for the `*_folded` columns, as VRFY compares (RFC 5321
/// 3.5.1 leaves the matching to the server; SPEC 4 says case-insensitive).
/// Lower case alone keeps apart what Unicode's case folding (Unicode 16.0,
/// 3.13, toCasefold) joins: `ß` and `SS`, final `ς` and `σ`, `ﬁ` and `fi`.
/// Upper case first maps each of those to one spelling, whose lower case
/// is then the same for every variant. Computed in Rust because SQLite's
/// `lower()` folds ASCII only.
pub fn fold(text: &str) -> String {
    text.to_uppercase().to_lowercase()
}

/// Fills (version 2) or rewrites (version 4) every user's folded columns.
fn fold_users(conn: &Connection) -> Result<(), DirectoryError> {
    let users: Vec<(String, Option<String>)> = {
        let mut stmt = conn.prepare("SELECT address, full_name FROM users")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut update =
        conn.prepare("UPDATE users SET local_folded = ?2, name_folded = ?3 WHERE address = ?1")?;
    for (address, name) in users {
        let local = fold(crate::address::local_part(&address));
        update.execute(rusqlite::params![address, local, name.as_deref().map(fold)])?;
    }
    Ok(())
}

/// Opens the database, sets WAL and full sync, and migrates it.
pub(crate) fn open(path: &Path) -> Result<Connection, DirectoryError> {
    let mut conn = connect(path)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// One more connection to a database: WAL and full sync, no migration.
pub(crate) fn connect(path: &Path) -> Result<Connection, DirectoryError> {
    let conn = Connection::open(path)
        .map_err(|e| DirectoryError::Db(format!("cannot open {}: {e}", path.display())))?;
    // The busy timeout first: switching to WAL needs a lock that another
    // process may hold.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DirectoryError::Db(format!(
            "cannot switch {} to WAL (journal mode is {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), DirectoryError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
    )?;
    let found: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let found: u32 = match found {
        None => 0,
        Some(v) => v.parse().map_err(|_| {
            DirectoryError::Db(format!("unreadable schema_version {v:?} in the meta table"))
        })?,
    };
    if found > SCHEMA_VERSION {
        return Err(DirectoryError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for (from, (sql, data)) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        if let Some(data) = data {
            data(&tx)?;
        }
        tracing::info!(from, to = from + 1, "directory schema migrated");
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_match_the_version() {
        assert_eq!(MIGRATIONS.len(), SCHEMA_VERSION as usize);
    }

    #[test]
    fn reopening_keeps_the_version() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.db");
        drop(open(&path).unwrap());
        let conn = open(&path).unwrap();
        let v: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION.to_string());
    }

    #[test]
    fn version_1_users_are_folded_by_the_migration() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(V1).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '1');
                 INSERT INTO users VALUES ('émile@example.org', 'ÉMILE Zola', 'x');",
            )
            .unwrap();
        }
        let dir =
            crate::DirectoryDb::open(&path, crate::testutil::config(&["example.org"])).unwrap();
        let found = dir.vrfy("émile zola").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(dir.vrfy("ÉMILE").unwrap(), found);
    }

    #[test]
    fn fold_joins_what_unicode_case_folding_joins() {
        assert_eq!(fold("STRASSE"), fold("Straße"));
        assert_eq!(fold("ΟΔΟΣ"), fold("οδοσ"));
        assert_eq!(fold("οδος"), fold("οδοσ"));
        assert_eq!(fold("ﬁle"), fold("FILE"));
        assert_eq!(fold("Émile"), "émile");
        assert_ne!(fold("olaf"), fold("ölaf"));
    }

    #[test]
    fn version_3_users_are_folded_again_by_the_migration() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.db");
        {
            // A directory as version 3 left it: folded by lower case.
            let conn = Connection::open(&path).unwrap();
            for sql in [V1, V2, V3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '3');
                 INSERT INTO users (address, full_name, password_hash, local_folded, name_folded)
                 VALUES ('gross@example.org', 'Hans Groß', 'x', 'gross', 'hans groß');",
            )
            .unwrap();
        }
        let dir =
            crate::DirectoryDb::open(&path, crate::testutil::config(&["example.org"])).unwrap();
        assert_eq!(dir.vrfy("HANS GROSS").unwrap().len(), 1);
        assert_eq!(dir.vrfy("hans groß").unwrap().len(), 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.db");
        let conn = open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [(SCHEMA_VERSION + 1).to_string()],
        )
        .unwrap();
        drop(conn);
        let err =
            crate::DirectoryDb::open(&path, crate::testutil::config(&["example.org"])).unwrap_err();
        assert!(matches!(
            err,
            DirectoryError::NewerSchema { found, supported }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ));
        assert!(err.to_string().contains("upgrade mailroom"));
    }
}
