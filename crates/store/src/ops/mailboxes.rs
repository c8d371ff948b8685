//! Account and mailbox operations: create, delete, rename (RFC 9051
//! 6.3.4-6.3.6), subscribe.

use rusqlite::{Connection, params};

use super::*;
use crate::MailboxInfo;
use crate::read::mailbox_info;

pub fn ensure_account(conn: &Connection, account: &str) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    create_account_if_missing(conn, &account)?;
    Ok(())
}

pub fn delete_account(conn: &Connection, account: &str) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    if !account_exists(conn, &account)? {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    // Entries first, explicitly, so the body reference triggers run.
    let in_account = "(SELECT id FROM mailboxes WHERE account = ?1)";
    for sql in [
        format!("DELETE FROM entries WHERE mailbox_id IN {in_account}"),
        format!("DELETE FROM expunged WHERE mailbox_id IN {in_account}"),
        "DELETE FROM mailboxes WHERE account = ?1".to_string(),
        "DELETE FROM subscriptions WHERE account = ?1".to_string(),
        "DELETE FROM metadata WHERE account = ?1".to_string(),
        "DELETE FROM threads WHERE account = ?1".to_string(),
        "DELETE FROM urlauth_keys WHERE account = ?1".to_string(),
        "DELETE FROM accounts WHERE name = ?1".to_string(),
    ] {
        conn.execute(&sql, [&account]).map_err(map_err)?;
    }
    let at = now();
    record(conn, &account, None, "mailboxes", None, None, at)?;
    record(conn, &account, None, "account_deleted", None, None, at)
}

pub fn create_mailbox(
    conn: &Connection,
    account: &str,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxInfo, StoreError> {
    let account = canonical_account(account)?;
    let name = check_new_mailbox_name(name)?;
    if let Some(su) = special_use
        && (!su.starts_with('\\') || su.len() < 2 || su.chars().any(|c| c.is_whitespace()))
    {
        return Err(StoreError::Invalid(format!("bad special-use {su:?}")));
    }
    if !account_exists(conn, &account)? {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    if mailbox_id_by_name(conn, &account, &name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {name:?}")));
    }
    let id = insert_mailbox(conn, &account, &name, special_use)?;
    record(conn, &account, None, "mailboxes", None, None, now())?;
    mailbox_info(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("mailbox {name:?}")))
}

pub fn delete_mailbox(conn: &Connection, account: &str, name: &str) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    if normalize_mailbox_name(name) == "INBOX" {
        return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
    }
    let id = require_mailbox(conn, &account, name)?;
    for sql in [
        "DELETE FROM entries WHERE mailbox_id = ?1",
        "DELETE FROM expunged WHERE mailbox_id = ?1",
        // RFC 5464 3.2: a mailbox's METADATA goes with it.
        "DELETE FROM metadata WHERE mailbox = ?1",
        "DELETE FROM urlauth_keys WHERE mailbox = ?1",
        "DELETE FROM mailboxes WHERE id = ?1",
    ] {
        conn.execute(sql, [id.0]).map_err(map_err)?;
    }
    record(conn, &account, None, "mailboxes", None, None, now())
}

pub fn rename_mailbox(
    conn: &Connection,
    account: &str,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    let from = normalize_mailbox_name(from);
    let to = check_new_mailbox_name(to)?;
    let from_id = require_mailbox(conn, &account, &from)?;
    if from == to {
        return Err(StoreError::AlreadyExists(format!("mailbox {to:?}")));
    }
    if mailbox_id_by_name(conn, &account, &to)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {to:?}")));
    }
    if to.starts_with(&format!("{from}/")) {
        return Err(StoreError::Invalid(
            "cannot rename a mailbox into its own hierarchy".into(),
        ));
    }
    let now = now();
    if from == "INBOX" {
        rename_inbox(conn, &account, from_id, &to, now)?;
    } else {
        // The mailbox and its inferiors ("from/..."), RFC 9051 6.3.6.
        let prefix = format!("{from}/");
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, name FROM mailboxes WHERE account = ?1 \
                 AND substr(name, 1, length(?2)) = ?2",
            )
            .map_err(map_err)?;
        let inferiors = stmt
            .query_map(params![account, prefix], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(map_err)?;
        let mut renames = vec![(from_id.0, to.clone())];
        for (id, name) in inferiors {
            let rest = name.get(prefix.len()..).unwrap_or_default();
            let target = check_new_mailbox_name(&format!("{to}/{rest}"))?;
            if mailbox_id_by_name(conn, &account, &target)?.is_some() {
                return Err(StoreError::AlreadyExists(format!("mailbox {target:?}")));
            }
            renames.push((id, target));
        }
        for (id, name) in renames {
            conn.execute(
                "UPDATE mailboxes SET name = ?2 WHERE id = ?1",
                params![id, name],
            )
            .map_err(map_err)?;
        }
        // A subscription follows its mailbox (and inferiors) to the new
        // name, as a client renaming a folder it reads expects.
        conn.execute(
            "UPDATE OR REPLACE subscriptions SET name = ?3 || substr(name, length(?2) + 1) \
             WHERE account = ?1 AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')",
            params![account, from, to],
        )
        .map_err(map_err)?;
    }
    record(conn, &account, None, "mailboxes", None, None, now)
}

/// RFC 9051 6.3.6: renaming INBOX moves all its messages to a new mailbox
/// of the new name and leaves INBOX empty (its inferiors stay). The new
/// mailbox has a fresh UIDVALIDITY, so the moved entries keep their UIDs.
fn rename_inbox(
    conn: &Connection,
    account: &str,
    inbox: MailboxId,
    to: &str,
    now: i64,
) -> Result<(), StoreError> {
    let new_id = insert_mailbox(conn, account, to, None)?;
    conn.execute(
        "UPDATE mailboxes SET (uidnext, highestmodseq) = \
         (SELECT uidnext, highestmodseq FROM mailboxes WHERE id = ?1) WHERE id = ?2",
        [inbox.0, new_id.0],
    )
    .map_err(map_err)?;
    let uids: Vec<u32> = conn
        .prepare_cached("SELECT uid FROM entries WHERE mailbox_id = ?1 ORDER BY uid")
        .and_then(|mut s| {
            s.query_map([inbox.0], |r| r.get(0))
                .and_then(Iterator::collect)
        })
        .map_err(map_err)?;
    conn.execute(
        "UPDATE entries SET mailbox_id = ?2 WHERE mailbox_id = ?1",
        [inbox.0, new_id.0],
    )
    .map_err(map_err)?;
    for uid in uids {
        let modseq = bump_modseq(conn, inbox)?;
        record_expunge(conn, inbox, Uid(uid), modseq)?;
        record(
            conn,
            account,
            Some(inbox),
            "expunge",
            Some(Uid(uid)),
            Some(modseq),
            now,
        )?;
    }
    Ok(())
}

/// RFC 9051 6.3.7: the store keeps a name subscribed whether or not a
/// mailbox of that name exists (kept after DELETE; whether SUBSCRIBE may
/// name a missing mailbox is the protocol's choice: IMAP checks). The name
/// must still be one a mailbox could have. Unsubscribing a name that is not
/// subscribed is a no-op.
pub fn set_subscribed(
    conn: &Connection,
    account: &str,
    name: &str,
    subscribed: bool,
) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    if !account_exists(conn, &account)? {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    let name = if subscribed {
        check_new_mailbox_name(name)?
    } else {
        normalize_mailbox_name(name)
    };
    subscribe(conn, &account, &name, subscribed)?;
    record(conn, &account, None, "mailboxes", None, None, now())
}
