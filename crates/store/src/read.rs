//! Reads: a small pool of read connections used from tokio's blocking pool,
//! and the read queries.
//!
//! In WAL mode readers never block the writer nor each other; each query
//! runs in its own implicit transaction and so sees one committed snapshot.
//! The pool is a few connections each behind its own mutex, so concurrent
//! sessions do not queue behind one lock. The store admits at most one
//! read per connection at a time (an async semaphore, see
//! `SqliteStore::read`), so a read never waits for a connection on a
//! blocking thread, and however many sessions ask at once (two LISTs of
//! 100 000 mailboxes, say), only `READ_CONNECTIONS` blocking threads are
//! busy with reads and the async workers none.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::ops::{canonical_account, flags_from_text, normalize_mailbox_name};
use crate::schema::{map_err, open_connection};
use crate::{
    BodyId, IndexBuilder, MailboxChanges, MailboxId, MailboxIndex, MailboxInfo, MessageMeta,
    QueueEntry, StoreError, Uid,
};

/// Read connections per store. Reads are short (metadata, or one body), so
/// a few cover many sessions; each extra connection costs a file handle
/// and a page cache.
pub const READ_CONNECTIONS: usize = 4;

/// A fixed set of read connections.
pub struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReadPool {
    pub fn open(data_dir: &Path, size: usize) -> Result<ReadPool, StoreError> {
        let mut conns = Vec::with_capacity(size.max(1));
        for _ in 0..size.max(1) {
            let conn = open_connection(data_dir)?;
            // A guard: nothing on a read connection may write.
            conn.pragma_update(None, "query_only", "ON")
                .map_err(map_err)?;
            conns.push(Mutex::new(conn));
        }
        Ok(ReadPool {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `f` on a free connection, or waits for the next one in turn.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        for i in 0..n {
            if let Some(Ok(conn)) = self.conns.get((start + i) % n).map(Mutex::try_lock) {
                return f(&conn);
            }
        }
        let slot = self
            .conns
            .get(start)
            .ok_or_else(|| StoreError::Io("empty read pool".into()))?;
        // A panic while holding the lock leaves the connection usable.
        let conn = slot.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    }
}

const MAILBOX_COLUMNS: &str = "m.id, m.account, m.name, m.uidvalidity, m.uidnext, \
     m.highestmodseq, m.special_use, \
     EXISTS (SELECT 1 FROM subscriptions s WHERE s.account = m.account AND s.name = m.name), \
     (SELECT count(*) FROM entries e WHERE e.mailbox_id = m.id), \
     (SELECT count(*) FROM entries e WHERE e.mailbox_id = m.id \
        AND (' ' || e.flags || ' ') NOT LIKE '% \\Seen %')";

/// [`MAILBOX_COLUMNS`] without the two counts, which cost a scan of the
/// mailbox's entries (the unseen one a LIKE per entry): 0 in their place.
const MAILBOX_UNCOUNTED: &str = "m.id, m.account, m.name, m.uidvalidity, m.uidnext, \
     m.highestmodseq, m.special_use, \
     EXISTS (SELECT 1 FROM subscriptions s WHERE s.account = m.account AND s.name = m.name), \
     0, 0";

fn mailbox_from_row(r: &Row<'_>) -> rusqlite::Result<MailboxInfo> {
    Ok(MailboxInfo {
        id: MailboxId(r.get(0)?),
        account: r.get(1)?,
        name: r.get(2)?,
        uidvalidity: r.get(3)?,
        uidnext: r.get(4)?,
        highestmodseq: r.get::<_, i64>(5)? as u64,
        special_use: r.get(6)?,
        subscribed: r.get(7)?,
        messages: r.get(8)?,
        unseen: r.get(9)?,
    })
}

/// One mailbox with its counters, by id (also used by the writer).
pub fn mailbox_info(conn: &Connection, id: MailboxId) -> Result<Option<MailboxInfo>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.id = ?1"
    ))
    .and_then(|mut s| s.query_row([id.0], mailbox_from_row).optional())
    .map_err(map_err)
}

pub fn mailboxes(conn: &Connection, account: &str) -> Result<Vec<MailboxInfo>, StoreError> {
    let account = canonical_account(account)?;
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account = ?1 \
         ORDER BY m.name <> 'INBOX', m.name"
    ))
    .and_then(|mut s| {
        s.query_map([account], mailbox_from_row)
            .and_then(Iterator::collect)
    })
    .map_err(map_err)
}

/// The account's subscribed names (RFC 9051 6.3.7), by name; a name may
/// have no mailbox.
pub fn subscriptions(conn: &Connection, account: &str) -> Result<Vec<String>, StoreError> {
    let account = canonical_account(account)?;
    conn.prepare_cached("SELECT name FROM subscriptions WHERE account = ?1 ORDER BY name")
        .and_then(|mut s| {
            s.query_map([account], |r| r.get(0))
                .and_then(Iterator::collect)
        })
        .map_err(map_err)
}

pub fn mailbox_count(conn: &Connection, account: &str) -> Result<u64, StoreError> {
    let account = canonical_account(account)?;
    conn.prepare_cached("SELECT count(*) FROM mailboxes WHERE account = ?1")
        .and_then(|mut s| s.query_row([account], |r| r.get::<_, i64>(0)))
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(map_err)
}

/// What `account` holds: RFC822.SIZE and count over every entry.
pub fn usage(conn: &Connection, account: &str) -> Result<crate::Usage, StoreError> {
    let account = canonical_account(account)?;
    conn.prepare_cached(
        "SELECT COALESCE(SUM(b.size), 0), COUNT(*) FROM entries e \
         JOIN mailboxes m ON m.id = e.mailbox_id \
         JOIN bodies b INDEXED BY bodies_size ON b.id = e.body_id \
         WHERE m.account = ?1",
    )
    .and_then(|mut s| {
        s.query_row([account], |r| {
            Ok(crate::Usage {
                bytes: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                messages: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            })
        })
    })
    .map_err(map_err)
}

pub fn mailbox(
    conn: &Connection,
    account: &str,
    name: &str,
) -> Result<Option<MailboxInfo>, StoreError> {
    let account = canonical_account(account)?;
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account = ?1 AND m.name = ?2"
    ))
    .and_then(|mut s| {
        s.query_row([account, normalize_mailbox_name(name)], mailbox_from_row)
            .optional()
    })
    .map_err(map_err)
}

/// [`mailbox`] without the message counts (see [`crate::Store::mailbox_uncounted`]).
pub fn mailbox_uncounted(
    conn: &Connection,
    account: &str,
    name: &str,
) -> Result<Option<MailboxInfo>, StoreError> {
    let account = canonical_account(account)?;
    conn.prepare_cached(&format!(
        "SELECT {MAILBOX_UNCOUNTED} FROM mailboxes m WHERE m.account = ?1 AND m.name = ?2"
    ))
    .and_then(|mut s| {
        s.query_row([account, normalize_mailbox_name(name)], mailbox_from_row)
            .optional()
    })
    .map_err(map_err)
}

pub fn messages(conn: &Connection, mailbox: MailboxId) -> Result<Vec<MessageMeta>, StoreError> {
    messages_range(conn, mailbox, Uid(0), Uid(u32::MAX))
}

/// The entries of a mailbox with `first <= uid <= last`, ascending; like
/// [`messages`], NotFound when the mailbox is gone. A range scan of the
/// primary key (mailbox_id, uid).
pub fn messages_range(
    conn: &Connection,
    mailbox: MailboxId,
    first: Uid,
    last: Uid,
) -> Result<Vec<MessageMeta>, StoreError> {
    // NotFound rather than an empty list, so a session notices a deleted
    // mailbox.
    let exists = conn
        .prepare_cached("SELECT 1 FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| s.exists([mailbox.0]))
        .map_err(map_err)?;
    if !exists {
        return Err(StoreError::NotFound(format!("mailbox id {}", mailbox.0)));
    }
    conn.prepare_cached(&format!(
        "{META_SELECT} WHERE e.mailbox_id = ?1 AND e.uid BETWEEN ?2 AND ?3 ORDER BY e.uid"
    ))
    .and_then(|mut s| {
        s.query_map(params![mailbox.0, first.0, last.0], meta_from_row)
            .and_then(Iterator::collect)
    })
    .map_err(map_err)
}

/// RFC 8514: each entry's save date (NULL before the store kept it).
pub fn save_dates(
    conn: &Connection,
    mailbox: MailboxId,
    first: Uid,
    last: Uid,
) -> Result<Vec<(Uid, Option<i64>)>, StoreError> {
    conn.prepare_cached(
        "SELECT uid, save_date FROM entries WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 \
         ORDER BY uid",
    )
    .and_then(|mut s| {
        s.query_map(params![mailbox.0, first.0, last.0], |r| {
            Ok((Uid(r.get(0)?), r.get(1)?))
        })
        .and_then(Iterator::collect)
    })
    .map_err(map_err)
}

/// The columns and join of a [`MessageMeta`] row, entries aliased `e`;
/// the size from the covering index, not the body's row (schema.rs
/// `V_BODY_SIZE_INDEX` says why).
pub(crate) const META_SELECT: &str = "SELECT e.uid, e.body_id, b.size, e.internal_date, e.flags, e.modseq \
     FROM entries e JOIN bodies b INDEXED BY bodies_size ON b.id = e.body_id";

fn meta_from_row(r: &Row<'_>) -> rusqlite::Result<MessageMeta> {
    Ok(MessageMeta {
        uid: Uid(r.get(0)?),
        body: BodyId(r.get(1)?),
        size: r.get::<_, i64>(2)? as u64,
        internal_date: r.get(3)?,
        flags: flags_from_text(&r.get::<_, String>(4)?),
        modseq: r.get::<_, i64>(5)? as u64,
    })
}

/// What changed in a mailbox after mod-sequence `since`, read in one
/// snapshot (one read transaction), so the returned HIGHESTMODSEQ covers
/// exactly the rows returned: a caller that asks again from it misses
/// nothing and sees nothing twice. Index range scans of (mailbox_id,
/// modseq) on entries and tombstones: the cost is the size of the change,
/// not of the mailbox. `since == 0` lists every entry and no tombstones
/// (nothing was shown before). NotFound when the mailbox is gone.
pub fn changes_since(
    conn: &Connection,
    mailbox: MailboxId,
    since: u64,
) -> Result<MailboxChanges, StoreError> {
    // A deferred read transaction: its snapshot starts at the first SELECT.
    let tx = conn.unchecked_transaction().map_err(map_err)?;
    let (highestmodseq, floor) = tx
        .prepare_cached("SELECT highestmodseq, vanished_floor FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([mailbox.0], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
        })
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox id {}", mailbox.0)))?;
    let since_sql = i64::try_from(since).unwrap_or(i64::MAX);
    let mut changed: Vec<MessageMeta> = if since == 0 {
        // Everything: the primary key's order, no sort.
        tx.prepare_cached(&format!(
            "{META_SELECT} WHERE e.mailbox_id = ?1 ORDER BY e.uid"
        ))
        .and_then(|mut s| {
            s.query_map(params![mailbox.0], meta_from_row)
                .and_then(Iterator::collect)
        })
        .map_err(map_err)?
    } else {
        tx.prepare_cached(&format!(
            "{META_SELECT} WHERE e.mailbox_id = ?1 AND e.modseq > ?2"
        ))
        .and_then(|mut s| {
            s.query_map(params![mailbox.0, since_sql], meta_from_row)
                .and_then(Iterator::collect)
        })
        .map_err(map_err)?
    };
    changed.sort_unstable_by_key(|m| m.uid);
    let mut vanished: Vec<Uid> = if since == 0 {
        Vec::new()
    } else {
        tx.prepare_cached("SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2")
            .and_then(|mut s| {
                s.query_map(params![mailbox.0, since_sql], |r| Ok(Uid(r.get(0)?)))
                    .and_then(Iterator::collect)
            })
            .map_err(map_err)?
    };
    vanished.sort_unstable();
    tx.finish().map_err(map_err)?;
    Ok(MailboxChanges {
        highestmodseq: highestmodseq.max(0) as u64,
        changed,
        vanished,
        // Every tombstone above the floor is kept; from below it some of
        // those the caller needs may be gone.
        trimmed: since != 0 && since < floor.max(0) as u64,
    })
}

/// UIDs and flags of every entry, and the HIGHESTMODSEQ, in one snapshot
/// (see [`crate::MailboxIndex`]). A range scan of `entries` by its
/// primary key (mailbox_id, uid), which holds the row (WITHOUT ROWID):
/// no join, no sort, and no body page is read. NotFound when the mailbox
/// is gone.
pub fn mailbox_index(conn: &Connection, mailbox: MailboxId) -> Result<MailboxIndex, StoreError> {
    let tx = conn.unchecked_transaction().map_err(map_err)?;
    let highestmodseq = tx
        .prepare_cached("SELECT highestmodseq FROM mailboxes WHERE id = ?1")
        .and_then(|mut s| s.query_row([mailbox.0], |r| r.get::<_, i64>(0)).optional())
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox id {}", mailbox.0)))?;
    let mut b = IndexBuilder::new(highestmodseq.max(0) as u64, 0);
    {
        let mut stmt = tx
            .prepare_cached("SELECT uid, flags FROM entries WHERE mailbox_id = ?1 ORDER BY uid")
            .map_err(map_err)?;
        let mut rows = stmt.query([mailbox.0]).map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            let uid = Uid(r.get(0).map_err(map_err)?);
            // Borrowed from SQLite's row: no allocation per entry.
            let flags = r
                .get_ref(1)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(map_err)?;
            b.push_text(uid, flags);
        }
    }
    tx.finish().map_err(map_err)?;
    Ok(b.finish())
}

/// A body's size and whether it is kept inline in `bodies.data` (else
/// in `body_chunks`, see `V_BODY_CHUNKS`). `length()` of a BLOB column
/// reads its header, not its content.
fn body_layout(conn: &Connection, body: BodyId) -> Result<(u64, bool), StoreError> {
    conn.prepare_cached("SELECT size, length(data) = size FROM bodies WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([body.0], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
            })
            .optional()
        })
        .map_err(map_err)?
        .map(|(size, inline)| (size.max(0) as u64, inline))
        .ok_or_else(|| StoreError::NotFound(format!("body {}", body.0)))
}

pub fn read_body(conn: &Connection, body: BodyId) -> Result<Vec<u8>, StoreError> {
    // One query for the common inline body: its data and size together.
    let (data, size): (Vec<u8>, i64) = conn
        .prepare_cached("SELECT data, size FROM bodies WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([body.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(map_err)?
        .ok_or_else(|| StoreError::NotFound(format!("body {}", body.0)))?;
    if i64::try_from(data.len()).ok() == Some(size) {
        return Ok(data);
    }
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut stmt = conn
        .prepare_cached("SELECT data FROM body_chunks WHERE body_id = ?1 ORDER BY seq")
        .map_err(map_err)?;
    let mut rows = stmt.query([body.0]).map_err(map_err)?;
    while let Some(row) = rows.next().map_err(map_err)? {
        let chunk = row
            .get_ref(0)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(map_err)?;
        out.extend_from_slice(chunk);
    }
    Ok(out)
}

/// Part of a body through SQLite's incremental BLOB I/O: only the pages
/// of the range are read (issue 19), from the one or two chunks it
/// spans when the body is chunked.
pub fn read_body_range(
    conn: &Connection,
    body: BodyId,
    offset: u64,
    len: usize,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let (size, inline) = body_layout(conn, body)?;
    let start = offset.min(size);
    let end = start.saturating_add(len as u64).min(size);
    out.clear();
    out.resize(usize::try_from(end - start).unwrap_or(0), 0);
    if inline {
        let blob = conn
            .blob_open(rusqlite::MAIN_DB, "bodies", "data", body.0, true)
            .map_err(map_err)?;
        blob.read_at_exact(&mut out, usize::try_from(start).unwrap_or(usize::MAX))
            .map_err(map_err)?;
        return Ok(out);
    }
    let chunk = crate::BODY_CHUNK as u64;
    let mut stmt = conn
        .prepare_cached("SELECT rowid FROM body_chunks WHERE body_id = ?1 AND seq = ?2")
        .map_err(map_err)?;
    let mut pos = start;
    while pos < end {
        let seq = pos / chunk;
        let within = pos - seq * chunk;
        let take = (chunk - within).min(end - pos);
        let rowid: i64 = stmt
            .query_row(params![body.0, seq as i64], |r| r.get(0))
            .optional()
            .map_err(map_err)?
            .ok_or_else(|| StoreError::Io(format!("body {} lacks chunk {seq}", body.0)))?;
        let blob = conn
            .blob_open(rusqlite::MAIN_DB, "body_chunks", "data", rowid, true)
            .map_err(map_err)?;
        let at = usize::try_from(pos - start).unwrap_or(usize::MAX);
        let dst = out
            .get_mut(at..at + take as usize)
            .ok_or_else(|| StoreError::Io(format!("body {} range out of bounds", body.0)))?;
        blob.read_at_exact(dst, within as usize).map_err(map_err)?;
        pos += take;
    }
    Ok(out)
}

/// The queue's row count and oldest creation time.
pub fn queue_stats(conn: &Connection) -> Result<(u64, Option<i64>), StoreError> {
    conn.query_row("SELECT count(*), min(created) FROM queue", [], |r| {
        Ok((
            r.get::<_, i64>(0)?.max(0) as u64,
            r.get::<_, Option<i64>>(1)?,
        ))
    })
    .map_err(map_err)
}

pub fn queue(conn: &Connection) -> Result<Vec<QueueEntry>, StoreError> {
    conn.prepare_cached(
        "SELECT id, body_id, sender, recipient, status, attempts, next_attempt, created, \
         last_error, envid, ret, notify, orcpt, smtputf8, warned, notice FROM queue ORDER BY id",
    )
    .and_then(|mut s| {
        s.query_map([], crate::ops::queue::entry_row)
            .and_then(Iterator::collect)
    })
    .map_err(map_err)
}
