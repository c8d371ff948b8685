//! THREADID (RFC 8474 5.2): the thread of each stored message, per
//! account and body (see `crate::threads`).

use rusqlite::{Connection, OptionalExtension, params};

use crate::schema::map_err;
use crate::threads::thread_refs;
use crate::{BodyId, StoreError};

/// Gives `body` a thread in `account` unless it has one (a COPY of it).
pub fn assign(
    conn: &Connection,
    account: &str,
    body: BodyId,
    raw: &[u8],
) -> Result<(), StoreError> {
    let known = conn
        .prepare_cached("SELECT 1 FROM threads WHERE account = ?1 AND body_id = ?2")
        .and_then(|mut s| s.exists(params![account, body.0]))
        .map_err(map_err)?;
    if known {
        return Ok(());
    }
    let (own, refs) = thread_refs(raw);
    let mut thread = None;
    for id in own.iter().chain(refs.iter()) {
        thread = conn
            .prepare_cached(
                "SELECT thread_id FROM threads WHERE account = ?1 AND message_id = ?2 \
                 ORDER BY thread_id LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![account, id], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map_err(map_err)?;
        if thread.is_some() {
            break;
        }
    }
    conn.prepare_cached(
        "INSERT INTO threads (account, body_id, message_id, thread_id) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![account, body.0, own, thread.unwrap_or(body.0)]))
    .map_err(map_err)?;
    Ok(())
}

/// The thread of each body in `account`; a body without a row (stored
/// before threads were kept) is a thread of its own.
pub fn thread_ids(
    conn: &Connection,
    account: &str,
    bodies: &[BodyId],
) -> Result<Vec<u64>, StoreError> {
    let account = super::canonical_account(account)?;
    let mut stmt = conn
        .prepare_cached("SELECT thread_id FROM threads WHERE account = ?1 AND body_id = ?2")
        .map_err(map_err)?;
    bodies
        .iter()
        .map(|b| {
            let t: Option<i64> = stmt
                .query_row(params![account, b.0], |r| r.get(0))
                .optional()
                .map_err(map_err)?;
            Ok(t.unwrap_or(b.0).max(0) as u64)
        })
        .collect()
}
