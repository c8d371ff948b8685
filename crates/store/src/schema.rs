//! Connection settings, the schema and its migrations.
//!
//! The database carries `meta.schema_version`. [`migrate`] runs at open in
//! one `BEGIN IMMEDIATE` transaction (so two processes opening at once
//! serialise): it applies [`MIGRATIONS`] from the stored version up to
//! [`SCHEMA_VERSION`], or refuses a newer database with
//! [`StoreError::NewerSchema`] without touching it (SPEC 6).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::StoreError;

/// How long a connection waits for another connection's (or process's)
/// lock before failing with [`StoreError::Busy`]. Long enough to ride out
/// a checkpoint or the CLI's transaction, short enough that an SMTP client
/// gets its 451 before its own timeout (RFC 5321 4.5.3.2.6: 10 minutes).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL size (bytes) SQLite truncates the -wal file back to after a
/// checkpoint, so a burst of large bodies does not leave a huge file.
pub const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Prepared-statement cache per connection; the store uses a few dozen
/// distinct statements.
const STATEMENT_CACHE: usize = 64;

/// The name of the database file in the data directory.
pub const DB_FILE: &str = "store.db";

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Migration steps: `MIGRATIONS[v]` takes the schema from version `v` to
/// `v + 1`. Append only; never edit a released step.
pub const MIGRATIONS: &[&str] = &[
    V1,
    V_SUBSCRIPTIONS,
    V_IMPORTS,
    V_CHANGES_BY_MODSEQ,
    V_DSN,
    V_TOMBSTONE_TRIM,
    V_SAVEDATE,
    V_METADATA,
    V_THREADS,
    V_URLAUTH,
    V_BODY_META,
    V_BODY_CHUNKS,
    V_BODY_SIZE_INDEX,
];

/// SAVEDATE (RFC 8514): when each entry was saved into its mailbox.
/// NULL for entries older than this step (IMAP shows their INTERNALDATE).
const V_SAVEDATE: &str = "
ALTER TABLE entries ADD COLUMN save_date INTEGER;
";

/// `mailroom import` (issue 20): a SHA-256 of each imported message per
/// target mailbox, written in the transaction that appends it, so an
/// interrupted import reruns without duplicates.
const V_IMPORTS: &str = "
CREATE TABLE imports (
    mailbox INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    digest  BLOB NOT NULL,
    PRIMARY KEY (mailbox, digest)
) WITHOUT ROWID;
";

/// Version 0 -> 1: the initial schema.
///
/// Body reference counts are kept by triggers so that no code path (and no
/// other process) can forget them: a body's `refs` counts the entries and
/// queue rows pointing at it, and the body is deleted when it drops to 0.
const V1: &str = "
CREATE TABLE accounts (
    name    TEXT PRIMARY KEY,          -- canonical lowercase address
    created INTEGER NOT NULL
);
CREATE TABLE mailboxes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account       TEXT NOT NULL REFERENCES accounts(name),
    name          TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL,
    highestmodseq INTEGER NOT NULL,
    special_use   TEXT,
    subscribed    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account, name)
);
CREATE TABLE bodies (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    data BLOB NOT NULL,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE entries (
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id),
    uid           INTEGER NOT NULL,
    body_id       INTEGER NOT NULL REFERENCES bodies(id),
    flags         TEXT NOT NULL DEFAULT '',   -- space-separated
    internal_date INTEGER NOT NULL,           -- unix seconds
    modseq        INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX entries_body ON entries(body_id);
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    account    TEXT NOT NULL,
    mailbox_id INTEGER,
    kind       TEXT NOT NULL,   -- append | flags | expunge | mailboxes
    uid        INTEGER,
    modseq     INTEGER,
    created    INTEGER NOT NULL
);
CREATE TABLE queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    body_id      INTEGER NOT NULL REFERENCES bodies(id),
    sender       TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'queued',
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    last_error   TEXT
);
CREATE INDEX queue_due ON queue(status, next_attempt);
CREATE INDEX queue_body ON queue(body_id);

CREATE TRIGGER entries_ref_add AFTER INSERT ON entries BEGIN
    UPDATE bodies SET refs = refs + 1 WHERE id = NEW.body_id;
END;
CREATE TRIGGER entries_ref_drop AFTER DELETE ON entries BEGIN
    UPDATE bodies SET refs = refs - 1 WHERE id = OLD.body_id;
    DELETE FROM bodies WHERE id = OLD.body_id AND refs <= 0;
END;
CREATE TRIGGER queue_ref_add AFTER INSERT ON queue BEGIN
    UPDATE bodies SET refs = refs + 1 WHERE id = NEW.body_id;
END;
CREATE TRIGGER queue_ref_drop AFTER DELETE ON queue BEGIN
    UPDATE bodies SET refs = refs - 1 WHERE id = OLD.body_id;
    DELETE FROM bodies WHERE id = OLD.body_id AND refs <= 0;
END;
";

/// Subscriptions apart from mailboxes (RFC 9051 6.3.7, 6.3.8): a name is
/// subscribed whether or not a mailbox of that name exists, CREATE does not
/// subscribe, and DELETE leaves the subscription (the server "SHOULD NOT
/// unilaterally remove an existing mailbox name from the subscription
/// list even if a mailbox by that name no longer exists"). The names
/// subscribed under the old `mailboxes.subscribed` column carry over; the
/// column stays, unused: dropping it would rewrite the table for nothing.
const V_SUBSCRIPTIONS: &str = "
CREATE TABLE subscriptions (
    account TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (account, name)
) WITHOUT ROWID;
INSERT OR IGNORE INTO subscriptions (account, name)
    SELECT account, name FROM mailboxes WHERE subscribed = 1;
";

/// Indexes for [`crate::Store::changes_since`]: a selected IMAP session
/// reads the entries and tombstones of one mailbox above its last
/// mod-sequence, and without these each such read scans the whole mailbox
/// (its entries or its tombstones), so N idle sessions would cost
/// O(mailbox) each per delivery instead of O(change).
const V_CHANGES_BY_MODSEQ: &str = "
CREATE INDEX entries_modseq ON entries(mailbox_id, modseq);
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
";

/// Issue 13: the RFC 3461 parameters of each queued
/// recipient (ENVID and RET of its message, NOTIFY and ORCPT of its own),
/// whether the message was sent with SMTPUTF8 (its DSN is then
/// message/global-delivery-status, RFC 6533), whether its delay warning
/// went out, and whether it is a notice to postmaster about an
/// undeliverable DSN (which makes nothing further when it fails).
/// Self-contained, so that it can be reordered against other branches'.
const V_DSN: &str = "
ALTER TABLE queue ADD COLUMN envid TEXT;
ALTER TABLE queue ADD COLUMN ret TEXT;
ALTER TABLE queue ADD COLUMN notify TEXT;
ALTER TABLE queue ADD COLUMN orcpt TEXT;
ALTER TABLE queue ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;
";

/// Tombstones are trimmed after `[store] tombstone_retention`
/// ([`crate::Store::trim_tombstones`]): each records when it was made,
/// and each mailbox the highest mod-sequence of a tombstone trimmed from
/// it, so a QRESYNC from below that point knows its VANISHED would be
/// incomplete (RFC 7162 3.2.5.2) and falls back to the client's known
/// UIDs. Tombstones made before this step count as made now.
/// Self-contained, so that it can be reordered against other branches'
/// steps.
const V_TOMBSTONE_TRIM: &str = "
ALTER TABLE expunged ADD COLUMN expunged_at INTEGER NOT NULL DEFAULT 0;
UPDATE expunged SET expunged_at = CAST(strftime('%s', 'now') AS INTEGER);
CREATE INDEX expunged_by_time ON expunged(expunged_at);
ALTER TABLE mailboxes ADD COLUMN vanished_floor INTEGER NOT NULL DEFAULT 0;
";

/// IMAP METADATA (RFC 5464): entries per account on the server (mailbox
/// 0) or on a mailbox (`mailboxes.id`), names in lower case. Removed with
/// the mailbox or the account by their delete operations. Self-contained,
/// so that it can be reordered against other branches'.
const V_METADATA: &str = "
CREATE TABLE metadata (
    account TEXT NOT NULL,
    mailbox INTEGER NOT NULL,
    name    TEXT NOT NULL,
    value   BLOB NOT NULL,
    PRIMARY KEY (account, mailbox, name)
) WITHOUT ROWID;
";

/// THREADID (RFC 8474 5.2): each message's thread per account and body
/// (`crate::threads`), with its Message-ID for the next message to find.
/// Rows go with their body (the reference trigger deletes it at 0) and
/// with the account. Messages stored before have no row: each is a
/// thread of its own. Self-contained, so that it can be reordered
/// against other branches'.
const V_THREADS: &str = "
CREATE TABLE threads (
    account    TEXT NOT NULL,
    body_id    INTEGER NOT NULL REFERENCES bodies(id) ON DELETE CASCADE,
    message_id TEXT,
    thread_id  INTEGER NOT NULL,
    PRIMARY KEY (account, body_id)
) WITHOUT ROWID;
CREATE INDEX threads_message_id ON threads(account, message_id);
";

/// URLAUTH (RFC 4467 7): each mailbox's access key, which signs its
/// authorised URLs; RESETKEY deletes it, and it goes with the mailbox
/// and the account. Self-contained, so that it can be reordered against
/// other branches'.
const V_URLAUTH: &str = "
CREATE TABLE urlauth_keys (
    account TEXT NOT NULL,
    mailbox INTEGER NOT NULL,
    key     BLOB NOT NULL,
    PRIMARY KEY (account, mailbox)
) WITHOUT ROWID;
";

/// IMAP FETCH's per-body cache (issue 18): the ENVELOPE and
/// BODYSTRUCTURE of a body in proto-imap's stored form, written at its
/// first FETCH (never when mail is accepted) and gone with the body.
/// Bodies stored before have none until then. Self-contained, so that it
/// can be reordered against other branches'.
const V_BODY_META: &str = "
CREATE TABLE body_meta (
    body_id INTEGER PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
    data    BLOB NOT NULL
);
";

/// Spooled bodies (issue 19) are kept as rows of [`crate::BODY_CHUNK`]
/// octets, the `bodies` row holding an empty `data` and the size: a
/// range read opens one or two short chunks. Read out of one long BLOB,
/// each range had to walk its overflow-page chain from the start, so a
/// streamed read cost the square of the body's size. Bodies written
/// before this step, and every body kept inline, stay one BLOB.
const V_BODY_CHUNKS: &str = "
CREATE TABLE body_chunks (
    body_id INTEGER NOT NULL REFERENCES bodies(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (body_id, seq)
);
";

/// A covering index of every body's size (issue 18): `bodies.size` lies
/// after the BLOB, so reading it from the row walks an inline body's
/// overflow pages (every message over a page). The listings that join
/// `bodies` for RFC822.SIZE (`MessageMeta`, the quota's usage) read it
/// from here instead, `INDEXED BY` this index (SQLite's planner prefers
/// the rowid, not knowing what a wide row costs).
const V_BODY_SIZE_INDEX: &str = "
CREATE INDEX bodies_size ON bodies(id, size);
";

/// Maps a SQLite error to the store's error: SQLITE_FULL is a temporary
/// "disk full", SQLITE_BUSY/LOCKED after the busy timeout is "busy".
pub fn map_err(err: rusqlite::Error) -> StoreError {
    match &err {
        rusqlite::Error::SqliteFailure(e, _) => match e.code {
            ErrorCode::DiskFull => StoreError::DiskFull,
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Busy,
            _ => StoreError::Io(err.to_string()),
        },
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound("no such row".into()),
        _ => StoreError::Io(err.to_string()),
    }
}

/// `PRAGMA synchronous` of every store connection: FULL, so that each
/// commit fsyncs the WAL before the writer answers (writer.rs rule 3).
/// The test-only feature `unsafe-no-fsync` sets OFF, to show that the
/// strace test of the acknowledgement order fails without the fsync; it
/// must never be built into a server.
#[cfg(not(feature = "unsafe-no-fsync"))]
pub const SYNCHRONOUS: &str = "FULL";
#[cfg(feature = "unsafe-no-fsync")]
pub const SYNCHRONOUS: &str = "OFF";

/// SQLite's number for [`SYNCHRONOUS`] (`PRAGMA synchronous` reads back
/// 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA).
const SYNCHRONOUS_LEVEL: i64 = if cfg!(feature = "unsafe-no-fsync") {
    0
} else {
    2
};

/// Reads the durability settings back rather than trusting the PRAGMAs
/// that set them: a journal mode or sync level SQLite did not take (a
/// file system without shared memory, a build with other defaults)
/// would make every acknowledgement a lie, so the store refuses to open.
pub fn check_durability(conn: &Connection) -> Result<(), StoreError> {
    let (mode, sync) = durability(conn)?;
    if !mode.eq_ignore_ascii_case("wal") || sync != SYNCHRONOUS_LEVEL {
        return Err(StoreError::Io(format!(
            "store durability settings are journal_mode={mode}, synchronous={sync}; \
             need journal_mode=wal, synchronous={SYNCHRONOUS_LEVEL} ({SYNCHRONOUS})"
        )));
    }
    Ok(())
}

/// `(journal_mode, synchronous)` of a connection, as SQLite reports them.
pub fn durability(conn: &Connection) -> Result<(String, i64), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(map_err)?;
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .map_err(map_err)?;
    Ok((mode, sync))
}

/// Opens one connection to `<data_dir>/store.db` with the durability
/// settings every connection of the store uses.
pub fn open_connection(data_dir: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(data_dir.join(DB_FILE), flags).map_err(map_err)?;
    // The busy timeout first: switching to WAL needs a lock another
    // process may hold.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(map_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Io(format!(
            "cannot switch the database to WAL mode (got {mode})"
        )));
    }
    // In WAL mode FULL fsyncs the WAL at every commit: that fsync is what
    // acknowledges a message.
    conn.pragma_update(None, "synchronous", SYNCHRONOUS)
        .map_err(map_err)?;
    check_durability(&conn)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(map_err)?;
    // Sorts and temporary indexes stay in memory: the store leaves no
    // temporary files of its own behind after a crash.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(map_err)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(map_err)?;
    // The query planner's stability guarantee: plans never depend on the
    // values bound. Without it SQLite marks a statement whose LIMIT is a
    // parameter (the feed's catch-up) as expired at every bind and parses
    // it again each time (issue 18: 4 % of the SMTP accept path).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Reads `meta.schema_version` (0 for a fresh database).
pub fn schema_version(conn: &Connection) -> Result<u32, StoreError> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    match value {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| StoreError::Io(format!("bad schema_version in meta: {v:?}"))),
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction, or refuses a
/// newer one. Returns the version found before migrating.
pub fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    // A current schema needs no write lock: opening a store that another
    // process writes back to back (the server, `mailroom import`) must not
    // wait for a gap between its commits, which may not come within the
    // busy timeout. The check is repeated under the lock when a step is due.
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    if has_meta {
        let found = schema_version(conn)?;
        if found == SCHEMA_VERSION {
            return Ok(found);
        }
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(map_err)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .map_err(map_err)?;
    let found = schema_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::info!(
            from = version,
            to = version + 1,
            "migrating mail store schema"
        );
        tx.execute_batch(step).map_err(map_err)?;
    }
    if found < SCHEMA_VERSION {
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(map_err)?;
    }
    tx.commit().map_err(map_err)?;
    Ok(found)
}
