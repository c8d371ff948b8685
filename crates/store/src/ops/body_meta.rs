//! IMAP FETCH's per-body cache (issue 18): opaque octets per body, kept
//! with it (`ON DELETE CASCADE`), written at a body's first FETCH.

use rusqlite::{Connection, OptionalExtension, params};

use crate::schema::map_err;
use crate::{BodyId, StoreError};

/// The cached octets of each body, in order.
pub fn body_meta(conn: &Connection, bodies: &[BodyId]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT data FROM body_meta WHERE body_id = ?1")
        .map_err(map_err)?;
    bodies
        .iter()
        .map(|b| {
            stmt.query_row([b.0], |r| r.get(0))
                .optional()
                .map_err(map_err)
        })
        .collect()
}

/// Stores each entry, replacing an older one; nothing for a body that is
/// gone (expunged since it was read), which would fail the foreign key.
pub fn set_body_meta(conn: &Connection, entries: &[(BodyId, Vec<u8>)]) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO body_meta (body_id, data) SELECT id, ?2 FROM bodies WHERE id = ?1 \
             ON CONFLICT (body_id) DO UPDATE SET data = excluded.data",
        )
        .map_err(map_err)?;
    for (body, data) in entries {
        stmt.execute(params![body.0, data]).map_err(map_err)?;
    }
    Ok(())
}
