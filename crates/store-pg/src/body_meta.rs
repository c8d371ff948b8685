//! IMAP FETCH's per-body cache (issue 18), as the embedded store's
//! `ops/body_meta.rs`: opaque octets per body, gone with it.

use deadpool_postgres::Transaction;

use store::{BodyId, StoreError};

use crate::map_err;
use crate::ops::Tx;

/// The cached octets of each body, in order, in one query.
pub async fn body_meta(
    tx: &Transaction<'_>,
    bodies: &[BodyId],
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let ids: Vec<i64> = bodies.iter().map(|b| b.0).collect();
    let rows = tx
        .query(
            "SELECT body_id, data FROM body_meta WHERE body_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(map_err)?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get(0).map_err(map_err)?;
        let data: Vec<u8> = r.try_get(1).map_err(map_err)?;
        found.insert(id, data);
    }
    Ok(ids.iter().map(|id| found.remove(id)).collect())
}

/// Stores each entry, replacing an older one; nothing for a body that is
/// gone.
pub async fn set_body_meta(tx: &Tx<'_>, entries: &[(BodyId, Vec<u8>)]) -> Result<(), StoreError> {
    for (body, data) in entries {
        tx.exec(
            "INSERT INTO body_meta (body_id, data) SELECT id, $2 FROM bodies WHERE id = $1 \
             ON CONFLICT (body_id) DO UPDATE SET data = excluded.data",
            &[&body.0, data],
        )
        .await?;
    }
    Ok(())
}
