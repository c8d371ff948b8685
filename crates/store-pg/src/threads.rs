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
    let (own, refs) = thread_refs(raw);
    let mut thread: Option<i64> = None;
    for id in own.iter().chain(refs.iter()) {
        if let Some(r) = tx
            .opt(
                "SELECT thread_id FROM threads WHERE account = $1 AND message_id = $2 \
                 ORDER BY thread_id LIMIT 1",
                &[&account, id],
            )
            .await?
        {
            thread = Some(r.try_get(0).map_err(map_err)?);
            break;
        }
    }
    tx.exec(
        "INSERT INTO threads (account, body_id, message_id, thread_id) VALUES ($1, $2, $3, $4)",
        &[&account, &body.0, &own, &thread.unwrap_or(body.0)],
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
