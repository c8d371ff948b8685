//! METADATA entries (RFC 5464), as the embedded store's
//! `ops/metadata.rs`: per account on the server (mailbox 0) or on a
//! mailbox, names in lower case, removed with the mailbox or account.

use deadpool_postgres::Transaction;

use store::rules::canonical_account;
use store::{MailboxId, StoreError};

use crate::map_err;
use crate::ops::Tx;

/// The key of the server's entries (mailbox ids start at 1).
const SERVER: i64 = 0;

fn key(mailbox: Option<MailboxId>) -> i64 {
    mailbox.map_or(SERVER, |m| m.0)
}

pub async fn metadata(
    tx: &Transaction<'_>,
    account: &str,
    mailbox: Option<MailboxId>,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let account = canonical_account(account)?;
    if let Some(m) = mailbox {
        let owner = tx
            .query_opt("SELECT account FROM mailboxes WHERE id = $1", &[&m.0])
            .await
            .map_err(map_err)?;
        let owner: Option<String> = match owner {
            Some(r) => Some(r.try_get(0).map_err(map_err)?),
            None => None,
        };
        if owner.as_deref() != Some(account.as_str()) {
            return Err(StoreError::NotFound(format!("mailbox id {}", m.0)));
        }
    }
    let stmt = tx
        .prepare_cached(
            "SELECT name, value FROM metadata WHERE account = $1 AND mailbox = $2 \
             ORDER BY name COLLATE \"C\"",
        )
        .await
        .map_err(map_err)?;
    tx.query(&stmt, &[&account, &key(mailbox)])
        .await
        .map_err(map_err)?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(map_err)?,
                r.try_get(1).map_err(map_err)?,
            ))
        })
        .collect()
}

pub async fn set_metadata(
    tx: &Tx<'_>,
    account: &str,
    mailbox: Option<MailboxId>,
    entries: &[(String, Option<Vec<u8>>)],
    max_entries: usize,
) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    // The account's lock (ops.rs lock order) makes the count below hold
    // against a concurrent SETMETADATA.
    tx.lock_account(&account).await?;
    if let Some(m) = mailbox {
        let owner = tx
            .opt("SELECT account FROM mailboxes WHERE id = $1", &[&m.0])
            .await?;
        let owner: Option<String> = match owner {
            Some(r) => Some(r.try_get(0).map_err(map_err)?),
            None => None,
        };
        if owner.as_deref() != Some(account.as_str()) {
            return Err(StoreError::NotFound(format!("mailbox id {}", m.0)));
        }
    }
    for (name, value) in entries {
        let name = name.to_lowercase();
        match value {
            Some(v) => {
                tx.exec(
                    "INSERT INTO metadata (account, mailbox, name, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account, mailbox, name) DO UPDATE SET value = excluded.value",
                    &[&account, &key(mailbox), &name, v],
                )
                .await?
            }
            None => {
                tx.exec(
                    "DELETE FROM metadata WHERE account = $1 AND mailbox = $2 AND name = $3",
                    &[&account, &key(mailbox), &name],
                )
                .await?
            }
        };
    }
    let row = tx
        .opt(
            "SELECT count(*) FROM metadata WHERE account = $1 AND mailbox = $2",
            &[&account, &key(mailbox)],
        )
        .await?;
    let count: i64 = match row {
        Some(r) => r.try_get(0).map_err(map_err)?,
        None => 0,
    };
    if usize::try_from(count).unwrap_or(usize::MAX) > max_entries {
        return Err(StoreError::Limit(format!(
            "more than {max_entries} metadata entries"
        )));
    }
    Ok(())
}
