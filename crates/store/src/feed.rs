//! The change feed: every committed change, from this process or another,
//! published once, in commit order, on a tokio broadcast channel.
//!
//! Every write op records its changes in the `changes` table inside its own
//! transaction, so the table is the single source of truth. Publishing is
//! "read the rows with `seq` greater than the last published one, send
//! them, advance": the writer does it right after each commit, and a
//! watcher thread does it every poll interval to pick up commits of other
//! processes (the CLI). One mutex guards the last published `seq` together
//! with the sending, so no row is published twice or skipped. SQLite
//! serialises writers, so `seq` grows in commit order and a row with a
//! smaller `seq` can never appear after a larger one was seen.

use std::sync::mpsc::{Receiver as StdReceiver, RecvTimeoutError};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::broadcast;

use crate::schema::map_err;
use crate::{Change, MailboxId, StoreError, Uid};

/// Capacity of the broadcast channel. A receiver that falls this far behind
/// gets `Lagged` and must resynchronise from the store.
pub const FEED_CAPACITY: usize = 4096;

/// The `changes` table keeps at least this many recent rows...
pub const CHANGES_KEEP_ROWS: i64 = 100_000;

/// ...and rows younger than this (seconds); older rows beyond the row count
/// are trimmed. Publishing reads new rows within a poll interval, so only
/// QRESYNC-style history would ever look further back.
pub const CHANGES_KEEP_SECS: i64 = 24 * 60 * 60;

/// Rows published per catch-up query, so a huge backlog is read in chunks.
const CATCH_UP_CHUNK: i64 = 1024;

/// The broadcast sender and the last published `seq`.
pub struct Feed {
    last_seq: Mutex<i64>,
    tx: broadcast::Sender<Change>,
}

impl Feed {
    /// A feed that will publish rows after `last_seq` (the table's current
    /// end at open: history is not replayed).
    pub fn new(last_seq: i64) -> Feed {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        Feed {
            last_seq: Mutex::new(last_seq),
            tx,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Publishes every committed row after the last published one.
    pub fn catch_up(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut last = self.last_seq.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let rows = changes_after(conn, *last)?;
            let Some((seq, _)) = rows.last() else {
                return Ok(());
            };
            let next = *seq;
            let full = rows.len() as i64 >= CATCH_UP_CHUNK;
            for (seq, change) in rows {
                match change {
                    // Err only means nobody is subscribed right now.
                    Some(c) => {
                        let _ = self.tx.send(c);
                    }
                    // A kind written by a newer build: skip it, move past it.
                    None => tracing::warn!(seq, "unknown change kind in change log"),
                }
            }
            *last = next;
            if !full {
                return Ok(());
            }
        }
    }
}

/// The current end of the change log.
pub fn max_seq(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| {
        r.get(0)
    })
    .map_err(map_err)
}

type ChangeRow = (i64, Option<Change>);

fn changes_after(conn: &Connection, after: i64) -> Result<Vec<ChangeRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, account, mailbox_id, kind, uid, modseq FROM changes \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([after, CATCH_UP_CHUNK], |r| {
            let seq: i64 = r.get(0)?;
            let account: String = r.get(1)?;
            let mailbox = MailboxId(r.get::<_, Option<i64>>(2)?.unwrap_or(0));
            let kind: String = r.get(3)?;
            let uid = Uid(r.get::<_, Option<u32>>(4)?.unwrap_or(0));
            let modseq = r.get::<_, Option<i64>>(5)?.unwrap_or(0) as u64;
            let change = match kind.as_str() {
                "append" => Some(Change::Appended {
                    account,
                    mailbox,
                    uid,
                    modseq,
                }),
                "flags" => Some(Change::Flags {
                    account,
                    mailbox,
                    uid,
                    modseq,
                }),
                "expunge" => Some(Change::Expunged {
                    account,
                    mailbox,
                    uid,
                    modseq,
                }),
                "mailboxes" => Some(Change::Mailboxes { account }),
                crate::ops::queue::QUEUE_KIND => Some(Change::Queue),
                crate::ops::queue::QUEUE_RETRY_KIND => Some(Change::QueueRetry),
                "account_deleted" => Some(Change::AccountDeleted { account }),
                _ => None,
            };
            Ok((seq, change))
        })
        .map_err(map_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
}

/// Records one change in the log, inside the caller's transaction.
pub fn record(
    conn: &Connection,
    account: &str,
    mailbox: Option<MailboxId>,
    kind: &str,
    uid: Option<Uid>,
    modseq: Option<u64>,
    now: i64,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO changes (account, mailbox_id, kind, uid, modseq, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(map_err)?;
    stmt.execute(rusqlite::params![
        account,
        mailbox.map(|m| m.0),
        kind,
        uid.map(|u| u.0),
        modseq.map(|m| m as i64),
        now
    ])
    .map_err(map_err)?;
    Ok(())
}

/// Trims old rows of the change log (see [`CHANGES_KEEP_ROWS`]).
pub fn trim(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    conn.execute(
        "DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes) - ?1 \
         AND created < ?2",
        [CHANGES_KEEP_ROWS, now - CHANGES_KEEP_SECS],
    )
    .map_err(map_err)
}

/// The watcher thread: polls `PRAGMA data_version` (cheap; it changes when
/// any other connection commits) and catches up when it moved. Exits when
/// the stop channel is closed.
pub fn watch(conn: Connection, feed: &Feed, interval: Duration, stop: StdReceiver<()>) {
    let mut seen: Option<i64> = None;
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let version = match conn.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0)) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "change feed watcher: data_version failed");
                continue;
            }
        };
        if seen == Some(version) {
            continue;
        }
        match feed.catch_up(&conn) {
            Ok(()) => seen = Some(version),
            Err(e) => tracing::warn!(error = %e, "change feed watcher: catch-up failed"),
        }
    }
}
