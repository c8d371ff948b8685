//! The outbound queue's state changes (issue 12), on the writer thread
//! like every write: the worker claims due rows with a lease, then
//! completes, defers or fails each; the CLI retries and deletes.
//!
//! States: `queued` (new), `deferred` (a temporary failure; `next_attempt`
//! says when to try again), `sending` (claimed; `next_attempt` is the end
//! of the lease: a claim not finished by then, because its process died,
//! is claimed again, so a crash may send a message twice but never loses
//! it), `failed` (permanent, by [`fail`]; the worker no longer keeps
//! failures: [`settle`] removes the row and delivers its DSN in one
//! transaction, issue 13). The changes that make rows due now (a retry, released
//! claims, and a delivery that queues) are recorded as a `queue` change,
//! which wakes the worker of every process through the feed; completing,
//! deferring, failing or deleting a row makes nothing due, so it records
//! none: per delivered message, no change row and no wake-up claim.

use rusqlite::{Connection, params};

use super::now;
use crate::feed::record;
use crate::schema::map_err;
use crate::{BodyId, Delivered, QueueEntry, Settle, StoreError};

/// The change-log kind of queue changes.
pub const QUEUE_KIND: &str = "queue";
/// The change-log kind of an operator's `queue retry`.
pub const QUEUE_RETRY_KIND: &str = "queue_retry";
/// Most rows one claim takes.
pub const MAX_CLAIM: usize = 1000;

fn changed(conn: &Connection) -> Result<(), StoreError> {
    record(conn, "", None, QUEUE_KIND, None, None, now())
}

/// Claims up to `limit` rows due at `now` (new, deferred past their time,
/// or sending with an expired lease) until `lease_until`; returns them.
pub fn claim(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> Result<Vec<QueueEntry>, StoreError> {
    let limit = limit.min(MAX_CLAIM) as i64;
    let mut stmt = conn
        .prepare_cached(
            "UPDATE queue SET status = 'sending', next_attempt = ?2 \
             WHERE id IN (SELECT id FROM queue \
                          WHERE status IN ('queued', 'deferred', 'sending') AND next_attempt <= ?1 \
                          ORDER BY next_attempt, id LIMIT ?3) \
             RETURNING id, body_id, sender, recipient, status, attempts, next_attempt, created, \
             last_error, envid, ret, notify, orcpt, smtputf8, warned, notice",
        )
        .map_err(map_err)?;
    let mut rows = stmt
        .query_map(params![now, lease_until, limit], entry_row)
        .map_err(map_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_err)?;
    rows.sort_by_key(|q| q.id);
    Ok(rows)
}

/// Moves the end of the lease of the rows `ids` still `sending` to
/// `lease_until`: the one sender of an embedded store owns every claim.
pub fn renew(conn: &Connection, ids: &[i64], lease_until: i64) -> Result<usize, StoreError> {
    let mut stmt = conn
        .prepare_cached("UPDATE queue SET next_attempt = ?2 WHERE id = ?1 AND status = 'sending'")
        .map_err(map_err)?;
    let mut renewed = 0;
    for id in ids.iter().take(MAX_CLAIM) {
        renewed += stmt.execute(params![id, lease_until]).map_err(map_err)?;
    }
    Ok(renewed)
}

/// One queue row from the columns `id, body_id, sender, recipient,
/// status, attempts, next_attempt, created, last_error, envid, ret,
/// notify, orcpt, smtputf8, warned, notice`, in that order.
pub fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueueEntry> {
    Ok(QueueEntry {
        id: r.get(0)?,
        body: BodyId(r.get(1)?),
        sender: r.get(2)?,
        recipient: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt: r.get(6)?,
        created: r.get(7)?,
        last_error: r.get(8)?,
        envid: r.get(9)?,
        ret: r.get(10)?,
        notify: r.get(11)?,
        orcpt: r.get(12)?,
        smtputf8: r.get::<_, i64>(13)? != 0,
        warned: r.get::<_, i64>(14)? != 0,
        notice: r.get::<_, i64>(15)? != 0,
    })
}

/// One delivery run's outcome for some rows (see [`crate::Settle`]).
pub fn settle(conn: &Connection, settle: Settle) -> Result<Vec<Delivered>, StoreError> {
    settle_spooled(conn, settle, crate::Tails::default())
}

/// [`settle`] where the first delivery's copies end in `tails` (issue 19).
pub fn settle_spooled(
    conn: &Connection,
    settle: Settle,
    tails: crate::Tails<'_>,
) -> Result<Vec<Delivered>, StoreError> {
    let mut done = Vec::with_capacity(settle.dsns.len());
    for (i, d) in settle.dsns.iter().enumerate() {
        let tails = if i == 0 {
            tails
        } else {
            crate::Tails::default()
        };
        done.push(super::messages::deliver_spooled(conn, d, tails)?);
    }
    for id in settle.remove {
        complete(conn, id)?;
    }
    for (id, next, why) in &settle.defer {
        defer(conn, *id, *next, why)?;
    }
    for id in settle.warned {
        conn.execute("UPDATE queue SET warned = 1 WHERE id = ?1", [id])
            .map_err(map_err)?;
    }
    Ok(done)
}

/// Delivered: the row goes (its body with it when no one else holds it).
pub fn complete(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM queue WHERE id = ?1", [id])
        .map_err(map_err)?;
    Ok(())
}

/// A temporary failure: try again at `next_attempt`.
pub fn defer(conn: &Connection, id: i64, next_attempt: i64, error: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE queue SET status = 'deferred', attempts = attempts + 1, next_attempt = ?2, \
         last_error = ?3 WHERE id = ?1",
        params![id, next_attempt, error],
    )
    .map_err(map_err)?;
    Ok(())
}

/// A permanent failure (or the queue lifetime passed).
pub fn fail(conn: &Connection, id: i64, error: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE queue SET status = 'failed', attempts = attempts + 1, last_error = ?2 \
         WHERE id = ?1",
        params![id, error],
    )
    .map_err(map_err)?;
    Ok(())
}

/// `queue retry`: the row (or, with None, every row not being sent) is
/// due now. Returns how many rows.
pub fn retry(conn: &Connection, id: Option<i64>) -> Result<usize, StoreError> {
    let n = match id {
        Some(id) => conn.execute(
            "UPDATE queue SET status = 'queued', next_attempt = ?2 \
             WHERE id = ?1 AND status != 'sending'",
            params![id, now()],
        ),
        None => conn.execute(
            "UPDATE queue SET status = 'queued', next_attempt = ?1 WHERE status != 'sending'",
            params![now()],
        ),
    }
    .map_err(map_err)?;
    if n == 0 && id.is_some() {
        return Err(StoreError::NotFound(format!(
            "queue entry {} (or it is being sent)",
            id.unwrap_or_default()
        )));
    }
    record(conn, "", None, QUEUE_RETRY_KIND, None, None, now())?;
    Ok(n)
}

/// At start: rows this server had claimed when it stopped (kill -9 or a
/// crash) are due again at once rather than when their lease ends. Only
/// the server sends from this store (the CLI never does), so no other
/// sender's claims are touched. Returns how many rows.
pub fn release_claims(conn: &Connection) -> Result<usize, StoreError> {
    let n = conn
        .execute(
            "UPDATE queue SET status = 'deferred', next_attempt = ?1 WHERE status = 'sending'",
            [now()],
        )
        .map_err(map_err)?;
    if n > 0 {
        changed(conn)?;
    }
    Ok(n)
}

/// `queue delete`: removes the row.
pub fn delete(conn: &Connection, id: i64) -> Result<(), StoreError> {
    let n = conn
        .execute("DELETE FROM queue WHERE id = ?1", [id])
        .map_err(map_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("queue entry {id}")));
    }
    Ok(())
}
