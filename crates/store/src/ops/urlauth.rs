//! URLAUTH mailbox access keys (RFC 4467 7): one secret per account and
//! mailbox that signs its authorised URLs; RESETKEY forgets it (every URL
//! signed with it stops working). Removed with the mailbox and account.

use rusqlite::{Connection, OptionalExtension, params};

use super::{canonical_account, mailbox_account};
use crate::schema::map_err;
use crate::{MailboxId, StoreError};

fn owned(conn: &Connection, account: &str, mailbox: MailboxId) -> Result<(), StoreError> {
    if mailbox_account(conn, mailbox)? != account {
        return Err(StoreError::NotFound(format!("mailbox id {}", mailbox.0)));
    }
    Ok(())
}

/// The mailbox's key, if it has one.
pub fn key(
    conn: &Connection,
    account: &str,
    mailbox: MailboxId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let account = canonical_account(account)?;
    conn.prepare_cached("SELECT key FROM urlauth_keys WHERE account = ?1 AND mailbox = ?2")
        .and_then(|mut s| {
            s.query_row(params![account, mailbox.0], |r| r.get(0))
                .optional()
        })
        .map_err(map_err)
}

/// The mailbox's key, `fresh` becoming it when there is none.
pub fn ensure_key(
    conn: &Connection,
    account: &str,
    mailbox: MailboxId,
    fresh: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let account = canonical_account(account)?;
    owned(conn, &account, mailbox)?;
    conn.prepare_cached(
        "INSERT INTO urlauth_keys (account, mailbox, key) VALUES (?1, ?2, ?3) \
         ON CONFLICT (account, mailbox) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![account, mailbox.0, fresh]))
    .map_err(map_err)?;
    key(conn, &account, mailbox)?.ok_or_else(|| StoreError::NotFound("urlauth key".into()))
}

/// Forgets the key of one mailbox, or every key of the account.
pub fn reset_keys(
    conn: &Connection,
    account: &str,
    mailbox: Option<MailboxId>,
) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    match mailbox {
        Some(m) => conn
            .execute(
                "DELETE FROM urlauth_keys WHERE account = ?1 AND mailbox = ?2",
                params![account, m.0],
            )
            .map_err(map_err)?,
        None => conn
            .execute(
                "DELETE FROM urlauth_keys WHERE account = ?1",
                params![account],
            )
            .map_err(map_err)?,
    };
    Ok(())
}
