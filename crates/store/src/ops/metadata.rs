//! METADATA entries (RFC 5464): per account, on the "server" (mailbox 0)
//! or on one of its mailboxes, each a name (lower case: entry names are
//! case-insensitive, 3.2) and a value. Entries go with their mailbox's
//! DELETE (see `delete_mailbox`) and, being keyed by the mailbox's id,
//! follow it through RENAME; the account's go with the account.

use rusqlite::{Connection, params};

use super::{canonical_account, mailbox_account};
use crate::schema::map_err;
use crate::{MailboxId, StoreError};

/// The key of the server's entries (no mailbox has id 0: AUTOINCREMENT
/// starts at 1).
const SERVER: i64 = 0;

fn key(mailbox: Option<MailboxId>) -> i64 {
    mailbox.map_or(SERVER, |m| m.0)
}

/// The mailbox must be the account's (a session names its own only).
fn check_owner(
    conn: &Connection,
    account: &str,
    mailbox: Option<MailboxId>,
) -> Result<(), StoreError> {
    if let Some(m) = mailbox
        && mailbox_account(conn, m)? != account
    {
        return Err(StoreError::NotFound(format!("mailbox id {}", m.0)));
    }
    Ok(())
}

/// The entries, by name.
pub fn metadata(
    conn: &Connection,
    account: &str,
    mailbox: Option<MailboxId>,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let account = canonical_account(account)?;
    check_owner(conn, &account, mailbox)?;
    conn.prepare_cached(
        "SELECT name, value FROM metadata WHERE account = ?1 AND mailbox = ?2 ORDER BY name",
    )
    .and_then(|mut s| {
        s.query_map(params![account, key(mailbox)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .and_then(Iterator::collect)
    })
    .map_err(map_err)
}

/// Sets (`Some`) or removes (`None`) entries; `Limit` when more than
/// `max_entries` would be left, and then nothing is written (the job's
/// savepoint rolls back what was done).
pub fn set_metadata(
    conn: &Connection,
    account: &str,
    mailbox: Option<MailboxId>,
    entries: &[(String, Option<Vec<u8>>)],
    max_entries: usize,
) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    check_owner(conn, &account, mailbox)?;
    for (name, value) in entries {
        let name = name.to_lowercase();
        match value {
            Some(v) => conn
                .prepare_cached(
                    "INSERT INTO metadata (account, mailbox, name, value) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (account, mailbox, name) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut s| s.execute(params![account, key(mailbox), name, v]))
                .map_err(map_err)?,
            None => conn
                .prepare_cached(
                    "DELETE FROM metadata WHERE account = ?1 AND mailbox = ?2 AND name = ?3",
                )
                .and_then(|mut s| s.execute(params![account, key(mailbox), name]))
                .map_err(map_err)?,
        };
    }
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM metadata WHERE account = ?1 AND mailbox = ?2")
        .and_then(|mut s| s.query_row(params![account, key(mailbox)], |r| r.get(0)))
        .map_err(map_err)?;
    if usize::try_from(count).unwrap_or(usize::MAX) > max_entries {
        return Err(StoreError::Limit(format!(
            "more than {max_entries} metadata entries"
        )));
    }
    Ok(())
}
