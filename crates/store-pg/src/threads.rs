//! THREADID (RFC 8474 5.2), as the embedded store's `ops/threads.rs`:
//! each message's thread per account and body, from References and
//! In-Reply-To against the account's Message-IDs (`store::threads`).

use deadpool_postgres::Transaction;

use store::rules::canonical_account;
use store::threads::thread_refs;
use store::{BodyId, StoreError};

use crate::map_err;
use crate::ops::Tx;

/// Gives `body` a thread in `account` unless it has one. The caller
/// holds the account's lock (ops.rs lock order), so two deliveries of
/// one account assign in turn.
pub async fn assign(
    tx: &Tx<'_>,
    account: &str,
    body: BodyId,
    raw: &[u8],
) -> Result<(), StoreError> {
    if tx
        .opt(
            "SELECT 1 FROM threads WHERE account = $1 AND body_id = $2",
            &[&account, &body.0],
        )
        .await?
        .is_some()
    {
        return Ok(());
    }
    let found = lookup(tx, account, raw).await?;
    insert(tx, account, body, &found).await
}

/// The thread a new message of `account` joins: that of the first of its
/// own Message-ID, In-Reply-To and References (in that order) already in
/// the account, the smallest thread of that id; in one round trip.
pub async fn lookup(tx: &Tx<'_>, account: &str, raw: &[u8]) -> Result<Found, StoreError> {
    let (own, refs) = thread_refs(raw);
    let ids: Vec<&str> = own.iter().chain(refs.iter()).map(String::as_str).collect();
    let thread = if ids.is_empty() {
        None
    } else {
        match tx
            .opt(
                "SELECT thread_id FROM threads WHERE account = $1 AND message_id = ANY($2) \
                 ORDER BY array_position($2, message_id), thread_id LIMIT 1",
                &[&account, &ids],
            )
            .await?
        {
            Some(r) => Some(r.try_get(0).map_err(map_err)?),
            None => None,
        }
    };
    Ok(Found { own, thread })
}

/// What [`lookup`] found for one message.
pub struct Found {
    own: Option<String>,
    thread: Option<i64>,
}

/// Records `body`'s thread in `account` (a body new to the account: the
/// caller just stored it); a message joining no thread starts its own.
pub async fn insert(
    tx: &Tx<'_>,
    account: &str,
    body: BodyId,
    found: &Found,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO threads (account, body_id, message_id, thread_id) VALUES ($1, $2, $3, $4)",
        &[
            &account,
            &body.0,
            &found.own,
            &found.thread.unwrap_or(body.0),
        ],
    )
    .await?;
    Ok(())
}

/// The smallest thread of each of `ids` that `account` has (group
/// commit, many.rs: the batch chooses threads from these).
pub async fn known(
    tx: &Tx<'_>,
    account: &str,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    let mut found = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let rows = tx
        .rows(
            "SELECT message_id, min(thread_id) FROM threads \
             WHERE account = $1 AND message_id = ANY($2) GROUP BY message_id",
            &[&account, &ids],
        )
        .await?;
    for r in &rows {
        let id: String = r.try_get(0).map_err(map_err)?;
        let thread: i64 = r.try_get(1).map_err(map_err)?;
        found.insert(id, thread);
    }
    Ok(found)
}

/// Thread rows `(account, body, Message-ID, thread)` in one statement.
pub async fn insert_many(
    tx: &Tx<'_>,
    rows: &[(&str, i64, Option<&str>, i64)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let accounts: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let bodies: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let ids: Vec<Option<&str>> = rows.iter().map(|r| r.2).collect();
    let threads: Vec<i64> = rows.iter().map(|r| r.3).collect();
    tx.exec(
        "INSERT INTO threads (account, body_id, message_id, thread_id) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])",
        &[&accounts, &bodies, &ids, &threads],
    )
    .await?;
    Ok(())
}

/// The thread of each body in `account`; one without a row is its own.
pub async fn thread_ids(
    tx: &Transaction<'_>,
    account: &str,
    bodies: &[BodyId],
) -> Result<Vec<u64>, StoreError> {
    let account = canonical_account(account)?;
    let ids: Vec<i64> = bodies.iter().map(|b| b.0).collect();
    let stmt = tx
        .prepare_cached(
            "SELECT body_id, thread_id FROM threads WHERE account = $1 AND body_id = ANY($2)",
        )
        .await
        .map_err(map_err)?;
    let rows = tx.query(&stmt, &[&account, &ids]).await.map_err(map_err)?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        let b: i64 = r.try_get(0).map_err(map_err)?;
        let t: i64 = r.try_get(1).map_err(map_err)?;
        found.insert(b, t);
    }
    Ok(ids
        .iter()
        .map(|b| found.get(b).copied().unwrap_or(*b).max(0) as u64)
        .collect())
}
