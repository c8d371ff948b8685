//! The tables `mailroom migrate` copies, in the order it copies them
//! (referenced rows before the rows that reference them), each read in a
//! fixed key order so that "the first N rows" means the same rows on a
//! rerun; and the source's fingerprint that tells a rerun whether that
//! still holds.

use std::path::Path;

use rusqlite::{Connection, Row};
use store::StoreError;
use tokio_postgres::types::ToSql;

use super::{Copied, CopySource, sqlite_err};

/// One row's values for the target's INSERT.
pub type Values = Vec<Box<dyn ToSql + Sync + Send>>;

/// Which SQLite file a table is in.
#[derive(Clone, Copy)]
pub enum Src {
    Store,
    Directory,
}

/// One table of the copy.
pub struct Step {
    /// Its name in the marker and the progress.
    pub name: &'static str,
    pub src: Src,
    /// The source table (for its row count).
    pub table: &'static str,
    /// The rows, ordered by a key (OFFSET is appended).
    pub select: &'static str,
    pub insert: &'static str,
    /// The row's values as the INSERT takes them (unused for bodies,
    /// which go in chunks).
    pub values: fn(&Row<'_>) -> rusqlite::Result<Values>,
    /// Which count of [`Copied`] it adds to.
    pub counter: fn(&mut Copied) -> &mut u64,
}

impl Step {
    pub fn conn<'c>(&self, store: &'c Connection, dir: &'c Connection) -> &'c Connection {
        match self.src {
            Src::Store => store,
            Src::Directory => dir,
        }
    }

    pub fn path<'p>(&self, src: &CopySource<'p>) -> &'p Path {
        match self.src {
            Src::Store => src.store_db,
            Src::Directory => src.directory_db,
        }
    }

    pub fn counter<'c>(&self, copied: &'c mut Copied) -> &'c mut u64 {
        (self.counter)(copied)
    }
}

fn s(r: &Row<'_>, i: usize) -> rusqlite::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(Box::new(r.get::<_, String>(i)?))
}
fn os(r: &Row<'_>, i: usize) -> rusqlite::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(Box::new(r.get::<_, Option<String>>(i)?))
}
fn n(r: &Row<'_>, i: usize) -> rusqlite::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(Box::new(r.get::<_, i64>(i)?))
}
fn on(r: &Row<'_>, i: usize) -> rusqlite::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(Box::new(r.get::<_, Option<i64>>(i)?))
}
fn b(r: &Row<'_>, i: usize) -> rusqlite::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(Box::new(r.get::<_, Vec<u8>>(i)?))
}
fn ob(r: &Row<'_>, i: usize) -> rusqlite::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(Box::new(r.get::<_, Option<Vec<u8>>>(i)?))
}
fn t(r: &Row<'_>, i: usize) -> rusqlite::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(Box::new(r.get::<_, bool>(i)?))
}

fn none(_: &Row<'_>) -> rusqlite::Result<Values> {
    Ok(Vec::new())
}

/// The tables, in copy order.
pub const STEPS: &[Step] = &[
    Step {
        name: "accounts",
        src: Src::Store,
        table: "accounts",
        select: "SELECT name, created FROM accounts ORDER BY name",
        insert: "INSERT INTO accounts (name, created) VALUES ($1, $2)",
        values: |r| Ok(vec![s(r, 0)?, n(r, 1)?]),
        counter: |c| &mut c.accounts,
    },
    Step {
        name: "mailboxes",
        src: Src::Store,
        table: "mailboxes",
        select: "SELECT id, account, name, uidvalidity, uidnext, highestmodseq, special_use,
                 vanished_floor FROM mailboxes ORDER BY id",
        insert: "INSERT INTO mailboxes (id, account, name, uidvalidity, uidnext, highestmodseq,
                 special_use, vanished_floor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        values: |r| {
            Ok(vec![
                n(r, 0)?,
                s(r, 1)?,
                s(r, 2)?,
                n(r, 3)?,
                n(r, 4)?,
                n(r, 5)?,
                os(r, 6)?,
                n(r, 7)?,
            ])
        },
        counter: |c| &mut c.mailboxes,
    },
    Step {
        name: "subscriptions",
        src: Src::Store,
        table: "subscriptions",
        select: "SELECT account, name FROM subscriptions ORDER BY account, name",
        insert: "INSERT INTO subscriptions (account, name) VALUES ($1, $2)",
        values: |r| Ok(vec![s(r, 0)?, s(r, 1)?]),
        counter: |c| &mut c.subscriptions,
    },
    Step {
        name: "bodies",
        src: Src::Store,
        table: "bodies",
        select: "SELECT id, size, data FROM bodies ORDER BY id",
        insert: "INSERT INTO bodies (id, size, refs) VALUES ($1, $2, 0)",
        values: none,
        counter: |c| &mut c.bodies,
    },
    Step {
        name: "messages",
        src: Src::Store,
        table: "entries",
        select: "SELECT mailbox_id, uid, body_id, flags, internal_date, modseq, save_date
                 FROM entries ORDER BY mailbox_id, uid",
        insert: "INSERT INTO entries (mailbox_id, uid, body_id, flags, internal_date, modseq,
                 save_date) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        values: |r| {
            Ok(vec![
                n(r, 0)?,
                n(r, 1)?,
                n(r, 2)?,
                s(r, 3)?,
                n(r, 4)?,
                n(r, 5)?,
                on(r, 6)?,
            ])
        },
        counter: |c| &mut c.messages,
    },
    Step {
        name: "tombstones",
        src: Src::Store,
        table: "expunged",
        select: "SELECT mailbox_id, uid, modseq, expunged_at FROM expunged
                 ORDER BY mailbox_id, uid",
        insert: "INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at)
                 VALUES ($1, $2, $3, $4)",
        values: |r| Ok(vec![n(r, 0)?, n(r, 1)?, n(r, 2)?, n(r, 3)?]),
        counter: |c| &mut c.tombstones,
    },
    Step {
        name: "import digests",
        src: Src::Store,
        table: "imports",
        select: "SELECT mailbox, digest FROM imports ORDER BY mailbox, digest",
        insert: "INSERT INTO imports (mailbox, digest) VALUES ($1, $2)",
        values: |r| Ok(vec![n(r, 0)?, b(r, 1)?]),
        counter: |c| &mut c.other,
    },
    // IMAP METADATA entries (RFC 5464), threads (RFC 8474) and URLAUTH
    // keys (RFC 4467): mailbox and body ids are kept, so they still match.
    Step {
        name: "metadata entries",
        src: Src::Store,
        table: "metadata",
        select: "SELECT account, mailbox, name, value FROM metadata
                 ORDER BY account, mailbox, name",
        insert: "INSERT INTO metadata (account, mailbox, name, value) VALUES ($1, $2, $3, $4)",
        values: |r| Ok(vec![s(r, 0)?, n(r, 1)?, s(r, 2)?, b(r, 3)?]),
        counter: |c| &mut c.other,
    },
    Step {
        name: "threads",
        src: Src::Store,
        table: "threads",
        select: "SELECT account, body_id, message_id, thread_id FROM threads
                 ORDER BY account, body_id",
        insert: "INSERT INTO threads (account, body_id, message_id, thread_id)
                 VALUES ($1, $2, $3, $4)",
        values: |r| Ok(vec![s(r, 0)?, n(r, 1)?, os(r, 2)?, n(r, 3)?]),
        counter: |c| &mut c.other,
    },
    Step {
        name: "URLAUTH keys",
        src: Src::Store,
        table: "urlauth_keys",
        select: "SELECT account, mailbox, key FROM urlauth_keys ORDER BY account, mailbox",
        insert: "INSERT INTO urlauth_keys (account, mailbox, key) VALUES ($1, $2, $3)",
        values: |r| Ok(vec![s(r, 0)?, n(r, 1)?, b(r, 2)?]),
        counter: |c| &mut c.other,
    },
    // A row some node was sending when the source stopped is due again:
    // no node of the new backend holds its lease.
    Step {
        name: "queue",
        src: Src::Store,
        table: "queue",
        select: "SELECT id, body_id, sender, recipient,
                 CASE status WHEN 'sending' THEN 'queued' ELSE status END,
                 attempts, next_attempt, created, last_error, envid, ret, notify, orcpt,
                 smtputf8 != 0, warned != 0, notice != 0
                 FROM queue ORDER BY id",
        insert: "INSERT INTO queue (id, body_id, sender, recipient, status, attempts,
                 next_attempt, created, last_error, envid, ret, notify, orcpt, smtputf8, warned,
                 notice)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        values: |r| {
            Ok(vec![
                n(r, 0)?,
                n(r, 1)?,
                s(r, 2)?,
                s(r, 3)?,
                s(r, 4)?,
                n(r, 5)?,
                n(r, 6)?,
                n(r, 7)?,
                os(r, 8)?,
                os(r, 9)?,
                os(r, 10)?,
                os(r, 11)?,
                os(r, 12)?,
                t(r, 13)?,
                t(r, 14)?,
                t(r, 15)?,
            ])
        },
        counter: |c| &mut c.queue,
    },
    Step {
        name: "users",
        src: Src::Directory,
        table: "users",
        select: "SELECT address, full_name, password_hash, local_folded, name_folded,
                 scram_salt, scram_iterations, scram_stored_key, scram_server_key,
                 quota_storage, quota_messages
                 FROM users ORDER BY address",
        insert: "INSERT INTO users (address, full_name, password_hash, local_folded,
                 name_folded, scram_salt, scram_iterations, scram_stored_key, scram_server_key,
                 quota_storage, quota_messages)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        values: |r| {
            Ok(vec![
                s(r, 0)?,
                os(r, 1)?,
                s(r, 2)?,
                s(r, 3)?,
                os(r, 4)?,
                ob(r, 5)?,
                Box::new(r.get::<_, Option<i32>>(6)?),
                ob(r, 7)?,
                ob(r, 8)?,
                on(r, 9)?,
                on(r, 10)?,
            ])
        },
        counter: |c| &mut c.users,
    },
    // Insertion order (rowid) becomes the `id` order.
    Step {
        name: "aliases",
        src: Src::Directory,
        table: "aliases",
        select: "SELECT address, target FROM aliases ORDER BY rowid",
        insert: "INSERT INTO aliases (address, target) VALUES ($1, $2)",
        values: |r| Ok(vec![s(r, 0)?, s(r, 1)?]),
        counter: |c| &mut c.aliases,
    },
    Step {
        name: "lists",
        src: Src::Directory,
        table: "lists",
        select: "SELECT address, member FROM lists ORDER BY rowid",
        insert: "INSERT INTO lists (address, member) VALUES ($1, $2)",
        values: |r| Ok(vec![s(r, 0)?, s(r, 1)?]),
        counter: |c| &mut c.lists,
    },
    Step {
        name: "forwards",
        src: Src::Directory,
        table: "forwards",
        select: "SELECT address, target, keep, refuse FROM forwards ORDER BY address",
        insert: "INSERT INTO forwards (address, target, keep, refuse) VALUES ($1, $2, $3, $4)",
        values: |r| Ok(vec![s(r, 0)?, s(r, 1)?, t(r, 2)?, t(r, 3)?]),
        counter: |c| &mut c.forwards,
    },
];

/// Aggregates that change with any write to the source (each table's
/// rows, the mailboxes' UID and mod-sequence counters, the entries'
/// mod-sequences and flags, the queue's attempts, the change log's last
/// number, the directory's passwords, the shared values), hashed
/// (SHA-256, hex): equal fingerprints mean a rerun reads the same rows.
pub fn fingerprint(
    store: &Connection,
    dir: &Connection,
    totals: &[u64],
    src: &CopySource<'_>,
) -> Result<String, StoreError> {
    const STORE: &[&str] = &[
        "SELECT COALESCE(sum(uidvalidity), 0), COALESCE(sum(uidnext), 0),
                COALESCE(sum(highestmodseq), 0), COALESCE(max(id), 0) FROM mailboxes",
        "SELECT COALESCE(max(id), 0), COALESCE(sum(size), 0), 0, 0 FROM bodies",
        "SELECT COALESCE(sum(modseq), 0), COALESCE(sum(length(flags)), 0),
                COALESCE(sum(uid), 0), 0 FROM entries",
        "SELECT COALESCE(max(id), 0), COALESCE(sum(attempts), 0),
                COALESCE(sum(next_attempt), 0), 0 FROM queue",
        "SELECT COALESCE(max(seq), 0), 0, 0, 0 FROM changes",
    ];
    const DIRECTORY: &[&str] = &[
        "SELECT COALESCE(sum(length(password_hash)), 0), COALESCE(sum(quota_storage), 0),
                COALESCE(sum(length(full_name)), 0), 0 FROM users",
    ];
    let mut text = String::new();
    for t in totals {
        text.push_str(&format!("{t}\n"));
    }
    for (conn, queries, path) in [
        (store, STORE, src.store_db),
        (dir, DIRECTORY, src.directory_db),
    ] {
        for q in queries {
            let row: [i64; 4] = conn
                .query_row(q, [], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
                .map_err(sqlite_err(path))?;
            text.push_str(&format!("{row:?}\n"));
        }
    }
    for (name, value) in &src.shared {
        text.push_str(&format!("{name}={value}\n"));
    }
    let hash = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    Ok(hash.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}
