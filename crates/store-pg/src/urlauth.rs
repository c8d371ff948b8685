//! URLAUTH mailbox access keys (RFC 4467 7), as the embedded store's
//! `ops/urlauth.rs`.

use deadpool_postgres::Transaction;

use store::rules::canonical_account;
use store::{MailboxId, StoreError};

use crate::map_err;
use crate::ops::Tx;

pub async fn key(
    tx: &Transaction<'_>,
    account: &str,
    mailbox: MailboxId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let account = canonical_account(account)?;
    let row = tx
        .query_opt(
            "SELECT key FROM urlauth_keys WHERE account = $1 AND mailbox = $2",
            &[&account, &mailbox.0],
        )
        .await
        .map_err(map_err)?;
    match row {
        Some(r) => Ok(Some(r.try_get(0).map_err(map_err)?)),
        None => Ok(None),
    }
}

pub async fn ensure_key(
    tx: &Tx<'_>,
    account: &str,
    mailbox: MailboxId,
    fresh: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let account = canonical_account(account)?;
    tx.lock_account(&account).await?;
    let owner = tx
        .opt("SELECT account FROM mailboxes WHERE id = $1", &[&mailbox.0])
        .await?;
    let owner: Option<String> = match owner {
        Some(r) => Some(r.try_get(0).map_err(map_err)?),
        None => None,
    };
    if owner.as_deref() != Some(account.as_str()) {
        return Err(StoreError::NotFound(format!("mailbox id {}", mailbox.0)));
    }
    tx.exec(
        "INSERT INTO urlauth_keys (account, mailbox, key) VALUES ($1, $2, $3) \
         ON CONFLICT (account, mailbox) DO NOTHING",
        &[&account, &mailbox.0, &fresh],
    )
    .await?;
    let row = tx
        .opt(
            "SELECT key FROM urlauth_keys WHERE account = $1 AND mailbox = $2",
            &[&account, &mailbox.0],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound("urlauth key".into()))?;
    row.try_get(0).map_err(map_err)
}

pub async fn reset_keys(
    tx: &Tx<'_>,
    account: &str,
    mailbox: Option<MailboxId>,
) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    tx.lock_account(&account).await?;
    match mailbox {
        Some(m) => {
            tx.exec(
                "DELETE FROM urlauth_keys WHERE account = $1 AND mailbox = $2",
                &[&account, &m.0],
            )
            .await?
        }
        None => {
            tx.exec("DELETE FROM urlauth_keys WHERE account = $1", &[&account])
                .await?
        }
    };
    Ok(())
}
