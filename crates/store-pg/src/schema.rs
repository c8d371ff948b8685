//! The PostgreSQL schema and its migrations, applied under an advisory
//! lock so that nodes starting at once migrate one after the other.
//!
//! `store_meta.schema_version` holds the version; [`MIGRATIONS`]`[v]` takes
//! the schema from `v` to `v + 1`. Each step runs in the transaction that
//! records its new version, so a crash part-way leaves the old version.

use deadpool_postgres::Client;

use crate::map_err;
use store::StoreError;

/// The key of the advisory lock migrations run under
/// (`pg_advisory_xact_lock`): any constant both sides agree on; this one
/// spells "mailroom" in ASCII.
pub const MIGRATION_LOCK: i64 = 0x6d61_696c_726f_6f6d;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Migration steps. Append only; never edit a released step.
pub const MIGRATIONS: &[&str] = &[
    V1,
    V_DSN,
    V_TOMBSTONE_TRIM,
    V_SAVEDATE,
    V_METADATA,
    V_THREADS,
    V_URLAUTH,
    V_SHARED_STATE,
    V_LOGIN_FAILURES,
    V_PRESENCE,
    V_BODY_META,
    V_MIGRATE_MARKER,
];

/// SAVEDATE (RFC 8514): when each entry was saved into its mailbox;
/// NULL for older entries (IMAP shows their INTERNALDATE).
const V_SAVEDATE: &str = "
ALTER TABLE entries ADD COLUMN save_date BIGINT;
";

/// Version 0 -> 1: the whole store as the embedded backend has it after
/// its own migrations (docs/storage.md, "PostgreSQL").
///
/// - Bodies are stored once and chunked (`body_chunks`, at most
///   [`crate::BODY_CHUNK`] bytes a row), so a large message is never one
///   huge value; `bodies.refs` counts the entries and queue rows holding a
///   body and is kept by a trigger, which frees the body at 0.
/// - `change_heads` holds each account's `change_seq` (the account ''
///   carries the queue's changes). Every write takes its account's row
///   lock first and holds it to COMMIT, so the values are handed out in
///   commit order per account: the feed publishes by it without ever
///   skipping a row committed late (a BIGSERIAL would not be commit order).
///   The rows outlive their accounts so that a recreated account continues
///   its sequence.
/// - UIDVALIDITY comes from a sequence started at the clock of the
///   migration: unique for ever, without a lock.
/// - The queue's lease: `status = 'sending'`, `next_attempt` the lease's
///   end on the database's clock, `claimed_by` the node holding it.
const V1: &str = "
CREATE TABLE accounts (
    name    TEXT PRIMARY KEY,
    created BIGINT NOT NULL
);
CREATE SEQUENCE uidvalidity_seq MAXVALUE 4294967295;
SELECT setval('uidvalidity_seq', extract(epoch FROM now())::bigint);
CREATE TABLE mailboxes (
    id            BIGSERIAL PRIMARY KEY,
    account       TEXT NOT NULL REFERENCES accounts(name),
    name          TEXT NOT NULL,
    uidvalidity   BIGINT NOT NULL,
    uidnext       BIGINT NOT NULL,
    highestmodseq BIGINT NOT NULL,
    special_use   TEXT,
    UNIQUE (account, name)
);
CREATE TABLE bodies (
    id   BIGSERIAL PRIMARY KEY,
    size BIGINT NOT NULL,
    refs BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE body_chunks (
    body_id BIGINT NOT NULL REFERENCES bodies(id) ON DELETE CASCADE,
    n       INTEGER NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (body_id, n)
);
CREATE TABLE entries (
    mailbox_id    BIGINT NOT NULL REFERENCES mailboxes(id),
    uid           BIGINT NOT NULL,
    body_id       BIGINT NOT NULL REFERENCES bodies(id),
    flags         TEXT NOT NULL DEFAULT '',
    internal_date BIGINT NOT NULL,
    modseq        BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX entries_body ON entries(body_id);
CREATE INDEX entries_modseq ON entries(mailbox_id, modseq);
CREATE TABLE expunged (
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),
    uid        BIGINT NOT NULL,
    modseq     BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
CREATE TABLE subscriptions (
    account TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE TABLE imports (
    mailbox BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    digest  BYTEA NOT NULL,
    PRIMARY KEY (mailbox, digest)
);
CREATE TABLE change_heads (
    account TEXT PRIMARY KEY,
    seq     BIGINT NOT NULL
);
CREATE TABLE changes (
    account    TEXT NOT NULL,
    change_seq BIGINT NOT NULL,
    mailbox_id BIGINT,
    kind       TEXT NOT NULL,
    uid        BIGINT,
    modseq     BIGINT,
    created    BIGINT NOT NULL,
    PRIMARY KEY (account, change_seq)
);
CREATE INDEX changes_created ON changes(created);
CREATE TABLE queue (
    id           BIGSERIAL PRIMARY KEY,
    body_id      BIGINT NOT NULL REFERENCES bodies(id),
    sender       TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'queued',
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL,
    created      BIGINT NOT NULL,
    last_error   TEXT,
    claimed_by   TEXT
);
CREATE INDEX queue_due ON queue(status, next_attempt);
CREATE INDEX queue_body ON queue(body_id);

CREATE FUNCTION body_ref() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE bodies SET refs = refs + 1 WHERE id = NEW.body_id;
        RETURN NEW;
    END IF;
    UPDATE bodies SET refs = refs - 1 WHERE id = OLD.body_id;
    DELETE FROM bodies WHERE id = OLD.body_id AND refs <= 0;
    RETURN OLD;
END
$$;
CREATE TRIGGER entries_ref AFTER INSERT OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION body_ref();
CREATE TRIGGER queue_ref AFTER INSERT OR DELETE ON queue
    FOR EACH ROW EXECUTE FUNCTION body_ref();
";

/// Version 1 -> 2, issue 13 (as the embedded store's `V_DSN`): the RFC
/// 3461 parameters of each queued recipient (ENVID and RET of its
/// message, NOTIFY and ORCPT of its own), whether the message came with
/// SMTPUTF8 (its DSN is then message/global-delivery-status, RFC 6533),
/// whether its delay warning went out, and whether it is a notice to
/// postmaster about an undeliverable DSN (which makes nothing further
/// when it fails). Self-contained, so that it can be reordered against
/// other branches' steps.
const V_DSN: &str = "
ALTER TABLE queue
    ADD COLUMN envid    TEXT,
    ADD COLUMN ret      TEXT,
    ADD COLUMN notify   TEXT,
    ADD COLUMN orcpt    TEXT,
    ADD COLUMN smtputf8 BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN warned   BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN notice   BOOLEAN NOT NULL DEFAULT false;
";

/// Tombstone trimming (`[store] tombstone_retention`): when each
/// tombstone was made, and per mailbox the highest mod-sequence of a
/// trimmed one (as the embedded store's `V_TOMBSTONE_TRIM`; RFC 7162
/// 3.2.5.2). Self-contained, so that it can be reordered against other
/// branches' steps.
const V_TOMBSTONE_TRIM: &str = "
ALTER TABLE expunged
    ADD COLUMN expunged_at BIGINT NOT NULL DEFAULT extract(epoch FROM now())::BIGINT;
CREATE INDEX expunged_by_time ON expunged(expunged_at);
ALTER TABLE mailboxes ADD COLUMN vanished_floor BIGINT NOT NULL DEFAULT 0;
";

/// IMAP METADATA (RFC 5464), as the embedded store's `V_METADATA`:
/// entries per account on the server (mailbox 0) or on a mailbox, names
/// in lower case, removed with the mailbox or the account by their delete
/// operations. Self-contained, so that it can be reordered against other
/// branches' steps.
const V_METADATA: &str = "
CREATE TABLE metadata (
    account TEXT NOT NULL,
    mailbox BIGINT NOT NULL,
    name    TEXT NOT NULL,
    value   BYTEA NOT NULL,
    PRIMARY KEY (account, mailbox, name)
);
";

/// THREADID (RFC 8474 5.2), as the embedded store's `V_THREADS`: each
/// message's thread per account and body, with its Message-ID; rows go
/// with their body (`ON DELETE CASCADE`) and with the account; messages
/// stored before have none (each its own thread). Self-contained, so
/// that it can be reordered against other branches' steps.
const V_THREADS: &str = "
CREATE TABLE threads (
    account    TEXT NOT NULL,
    body_id    BIGINT NOT NULL REFERENCES bodies(id) ON DELETE CASCADE,
    message_id TEXT,
    thread_id  BIGINT NOT NULL,
    PRIMARY KEY (account, body_id)
);
CREATE INDEX threads_message_id ON threads(account, message_id);
";

/// URLAUTH (RFC 4467 7), as the embedded store's `V_URLAUTH`: each
/// mailbox's access key; gone with RESETKEY, the mailbox or the account.
/// Self-contained, so that it can be reordered against other branches'
/// steps.
const V_URLAUTH: &str = "
CREATE TABLE urlauth_keys (
    account TEXT NOT NULL,
    mailbox BIGINT NOT NULL,
    key     BYTEA NOT NULL,
    PRIMARY KEY (account, mailbox)
);
";

/// State every node must agree on (issue 21, issue 16), one row per
/// name: the SRS secret (`srs_secret`), DKIM keys (`dkim/<file name>`,
/// the key file's text), kept here rather than in each node's data
/// directory. The first writer of a name wins (`crate::SharedState`).
const V_SHARED_STATE: &str = "
CREATE TABLE shared_state (
    name    TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    created BIGINT NOT NULL DEFAULT extract(epoch FROM now())::bigint
);
";

/// Failed logins counted across nodes (issue 21), so a guesser gains
/// nothing by spreading attempts over them: one row per client address
/// (`ip:<addr>`) and per account (`account:<name>`), the failures within
/// the window and the last one's time (unix seconds on the database's
/// clock). Self-contained, so it can be reordered against other
/// branches' steps.
const V_LOGIN_FAILURES: &str = "
CREATE TABLE login_failures (
    key      TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last     BIGINT NOT NULL
);
";

/// Presence for terminal delivery across nodes (issue 21, RFC 821 SEND):
/// which node has a session of which account, with a lease (unix seconds
/// on the database's clock) the node renews, so a dead node's sessions
/// stop counting when it ends; and terminal messages for a session on
/// another node, taken (deleted) by that node. Self-contained.
const V_PRESENCE: &str = "
CREATE TABLE presence (
    account TEXT NOT NULL,
    node_id TEXT NOT NULL,
    expires BIGINT NOT NULL,
    PRIMARY KEY (account, node_id)
);
CREATE TABLE terminal_messages (
    id      BIGSERIAL PRIMARY KEY,
    node_id TEXT NOT NULL,
    account TEXT NOT NULL,
    sender  TEXT NOT NULL,
    text    TEXT NOT NULL
);
CREATE INDEX terminal_messages_node ON terminal_messages (node_id, id);
";

/// IMAP FETCH's per-body cache (issue 18), as the embedded store's
/// `V_BODY_META`: a body's ENVELOPE and BODYSTRUCTURE in proto-imap's
/// stored form, written at its first FETCH and gone with the body.
/// Self-contained, so that it can be reordered against other branches'
/// steps.
const V_BODY_META: &str = "
CREATE TABLE body_meta (
    body_id BIGINT PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
    data    BYTEA NOT NULL
);
";

/// Issue 21, two tables:
/// - `migrate_marker` (`mailroom migrate`): the one row that records
///   which source (data directory, fingerprint) a copy into this database
///   comes from and how far it got (the table, the rows of it in key
///   order that are in), committed with each batch, so a rerun resumes
///   and a target holding another source's data is refused;
///   `step = 'finished'` once complete.
/// - `alert_claims` (SEND/SAML): each account's last terminal ALERT on
///   the database's clock, so the one-per-interval limit holds across
///   nodes.
///
/// Self-contained, so that it can be reordered against other branches'
/// steps.
const V_MIGRATE_MARKER: &str = "
CREATE TABLE migrate_marker (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    source      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    step        TEXT NOT NULL,
    done        BIGINT NOT NULL,
    updated     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE alert_claims (
    account    TEXT PRIMARY KEY,
    last_alert TIMESTAMPTZ NOT NULL
);
";

/// Brings the schema to [`SCHEMA_VERSION`], or refuses a newer database
/// without touching it. Returns the version found.
pub async fn migrate(client: &mut Client) -> Result<u32, StoreError> {
    let tx = client.transaction().await.map_err(map_err)?;
    // Held to the end of the transaction: a second node waits here and
    // then finds the schema current.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(map_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .await
    .map_err(map_err)?;
    let row = tx
        .query_opt(
            "SELECT value FROM store_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(map_err)?;
    let found: u32 = match row {
        None => 0,
        Some(r) => {
            let v: String = r.try_get(0).map_err(map_err)?;
            v.trim()
                .parse()
                .map_err(|_| StoreError::Io(format!("bad schema_version in store_meta: {v:?}")))?
        }
    };
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
            "migrating PostgreSQL mail store schema"
        );
        tx.batch_execute(step).await.map_err(map_err)?;
    }
    if found < SCHEMA_VERSION {
        tx.execute(
            "INSERT INTO store_meta (key, value) VALUES ('schema_version', $1) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&SCHEMA_VERSION.to_string()],
        )
        .await
        .map_err(map_err)?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(found)
}
