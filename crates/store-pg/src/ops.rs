//! The SQL of each write, inside one transaction ([`Tx`]); none of them
//! commits. The semantics are the embedded store's (crates/store/src/ops),
//! with the names and flags checked by the same [`store::rules`].
//!
//! Lock order, so that concurrent writers never deadlock on each other's
//! accounts: every write first takes the `change_heads` row of each
//! account it touches ([`Tx::lock_account`]), in ascending name order,
//! then mailbox and body rows; the queue's row (account '') comes last,
//! and no write holding it takes another account's. Its change rows take their `change_seq`
//! under that lock, which is what makes the feed's key commit-ordered per
//! account (docs/storage.md, "PostgreSQL").

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use deadpool_postgres::Transaction;
use futures_util::future::try_join_all;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use store::rules::{
    MAX_BODY_BYTES, MAX_FLAGS_PER_MESSAGE, canonical_account, check_new_mailbox_name,
    flags_from_text, flags_to_text, normalize_flags, normalize_mailbox_name, now, same_flags,
};
use store::{
    BodyId, ConditionalFlags, Delivered, Delivery, FlagOp, MailboxId, MailboxInfo, MessageMeta,
    Outbound, QueueEntry, QueueRcpt, Quota, SPECIAL_MAILBOXES, Settle, StoreError, Uid,
};
use store::{BodyParts, Tails};

use crate::{BODY_CHUNK, map_err, read};

/// The change-log kind of queue changes (as the embedded store).
pub const QUEUE_KIND: &str = "queue";
/// The change-log kind of an operator's `queue retry`.
pub const QUEUE_RETRY_KIND: &str = "queue_retry";
/// The account whose change rows carry the queue's changes.
pub const QUEUE_ACCOUNT: &str = "";
/// Most rows one claim takes.
pub const MAX_CLAIM: usize = 1000;

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

/// One change row for [`Tx::record_many`]: mailbox, kind, UID, modseq.
pub type ChangeRow<'k> = (Option<i64>, &'k str, Option<i64>, Option<i64>);

/// One write transaction and the accounts whose change rows it wrote (the
/// feed catches up on those after the commit; NOTIFY names them).
pub struct Tx<'a> {
    pub tx: Transaction<'a>,
    touched: Mutex<BTreeSet<String>>,
    /// Accounts locked by [`Tx::prelock`], outside every savepoint, so
    /// held to COMMIT: [`Tx::lock_account`] skips them.
    held: BTreeSet<String>,
}

impl<'a> Tx<'a> {
    pub fn new(tx: Transaction<'a>) -> Tx<'a> {
        Tx {
            tx,
            touched: Mutex::new(BTreeSet::new()),
            held: BTreeSet::new(),
        }
    }

    /// Locks every account of `accounts` in one statement, in the lock
    /// order (ascending, as the set iterates; the upsert takes the rows
    /// in the array's order). Must run before any savepoint (group
    /// commit, batch.rs): rolling a savepoint back releases the row locks
    /// taken after it.
    pub async fn prelock(&mut self, accounts: &BTreeSet<String>) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = accounts.iter().map(String::as_str).collect();
        self.exec(
            "INSERT INTO change_heads (account, seq) \
             SELECT a.name, 0 FROM unnest($1::text[]) WITH ORDINALITY AS a(name, n) ORDER BY a.n \
             ON CONFLICT (account) DO UPDATE SET seq = change_heads.seq",
            &[&names],
        )
        .await?;
        self.held.extend(accounts.iter().cloned());
        Ok(())
    }

    pub fn touched(&self) -> Vec<String> {
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    pub async fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let stmt = self.tx.prepare_cached(sql).await.map_err(map_err)?;
        self.tx.execute(&stmt, params).await.map_err(map_err)
    }

    pub async fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let stmt = self.tx.prepare_cached(sql).await.map_err(map_err)?;
        self.tx.query(&stmt, params).await.map_err(map_err)
    }

    pub async fn opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        let stmt = self.tx.prepare_cached(sql).await.map_err(map_err)?;
        self.tx.query_opt(&stmt, params).await.map_err(map_err)
    }

    /// Takes the account's `change_heads` row lock (creating the row), held
    /// to COMMIT: the per-account serialisation point of every write.
    pub async fn lock_account(&self, account: &str) -> Result<(), StoreError> {
        if self.held.contains(account) {
            return Ok(());
        }
        self.exec(
            "INSERT INTO change_heads (account, seq) VALUES ($1, 0) \
             ON CONFLICT (account) DO UPDATE SET seq = change_heads.seq",
            &[&account],
        )
        .await?;
        Ok(())
    }

    /// Records changes of one account in one statement, in the order
    /// given, under its next `change_seq`s: `(mailbox, kind, uid,
    /// modseq)` each.
    pub async fn record_many(
        &self,
        account: &str,
        rows: &[ChangeRow<'_>],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let mailboxes: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let uids: Vec<Option<i64>> = rows.iter().map(|r| r.2).collect();
        let modseqs: Vec<Option<i64>> = rows.iter().map(|r| r.3).collect();
        // The head moves by n at once; row k (from 1) takes head - n + k.
        let inserted = self
            .exec(
                "WITH head AS (INSERT INTO change_heads (account, seq) VALUES ($1, $2) \
                 ON CONFLICT (account) DO UPDATE SET seq = change_heads.seq + $2 RETURNING seq) \
                 INSERT INTO changes (account, change_seq, mailbox_id, kind, uid, modseq, created) \
                 SELECT $1, head.seq - $2 + r.k, r.mailbox, r.kind, r.uid, r.modseq, $7 \
                 FROM head, unnest($3::bigint[], $4::text[], $5::bigint[], $6::bigint[]) \
                 WITH ORDINALITY AS r(mailbox, kind, uid, modseq, k)",
                &[&account, &n, &mailboxes, &kinds, &uids, &modseqs, &now()],
            )
            .await?;
        if inserted != rows.len() as u64 {
            return Err(StoreError::Io("change rows not recorded".into()));
        }
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account.to_string());
        Ok(())
    }

    /// Records one change under the account's next `change_seq`.
    pub async fn record(
        &self,
        account: &str,
        mailbox: Option<MailboxId>,
        kind: &str,
        uid: Option<Uid>,
        modseq: Option<u64>,
    ) -> Result<(), StoreError> {
        let mailbox = mailbox.map(|m| m.0);
        let uid = uid.map(|u| i64::from(u.0));
        let modseq = modseq.map(to_i64);
        // One round trip: the head's next value and the row that uses it.
        let n = self
            .exec(
                "WITH head AS (INSERT INTO change_heads (account, seq) VALUES ($1, 1) \
                 ON CONFLICT (account) DO UPDATE SET seq = change_heads.seq + 1 RETURNING seq) \
                 INSERT INTO changes (account, change_seq, mailbox_id, kind, uid, modseq, created) \
                 SELECT $1, head.seq, $2, $3, $4, $5, $6 FROM head",
                &[&account, &mailbox, &kind, &uid, &modseq, &now()],
            )
            .await?;
        if n != 1 {
            return Err(StoreError::Io("change row not recorded".into()));
        }
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account.to_string());
        Ok(())
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A UID column value as a [`Uid`] (the schema keeps them in 32 bits).
pub fn uid_of(v: i64) -> Result<Uid, StoreError> {
    u32::try_from(v)
        .map(Uid)
        .map_err(|_| StoreError::Io(format!("UID {v} out of range")))
}

async fn account_exists(tx: &Tx<'_>, account: &str) -> Result<bool, StoreError> {
    Ok(tx
        .opt("SELECT 1 FROM accounts WHERE name = $1", &[&account])
        .await?
        .is_some())
}

async fn mailbox_id_by_name(
    tx: &Tx<'_>,
    account: &str,
    name: &str,
) -> Result<Option<MailboxId>, StoreError> {
    let name = normalize_mailbox_name(name);
    match tx
        .opt(
            "SELECT id FROM mailboxes WHERE account = $1 AND name = $2",
            &[&account, &name],
        )
        .await?
    {
        Some(r) => Ok(Some(MailboxId(r.try_get(0).map_err(map_err)?))),
        None => Ok(None),
    }
}

async fn require_mailbox(tx: &Tx<'_>, account: &str, name: &str) -> Result<MailboxId, StoreError> {
    mailbox_id_by_name(tx, account, name)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {name:?} of {account}")))
}

/// The owning account of a mailbox, or NotFound.
async fn mailbox_account(tx: &Tx<'_>, mailbox: MailboxId) -> Result<String, StoreError> {
    let row = tx
        .opt("SELECT account FROM mailboxes WHERE id = $1", &[&mailbox.0])
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox id {}", mailbox.0)))?;
    row.try_get(0).map_err(map_err)
}

/// The mailbox's account, locked; NotFound when the mailbox is gone
/// (checked again under the lock: a DELETE may have committed meanwhile).
async fn lock_mailbox_account(tx: &Tx<'_>, mailbox: MailboxId) -> Result<String, StoreError> {
    let account = mailbox_account(tx, mailbox).await?;
    tx.lock_account(&account).await?;
    mailbox_account(tx, mailbox).await
}

async fn subscribe(tx: &Tx<'_>, account: &str, name: &str, on: bool) -> Result<(), StoreError> {
    let sql = if on {
        "INSERT INTO subscriptions (account, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM subscriptions WHERE account = $1 AND name = $2"
    };
    tx.exec(sql, &[&account, &name]).await?;
    Ok(())
}

async fn insert_mailbox(
    tx: &Tx<'_>,
    account: &str,
    name: &str,
    special_use: Option<&str>,
) -> Result<MailboxId, StoreError> {
    let row = tx
        .opt(
            "INSERT INTO mailboxes (account, name, uidvalidity, uidnext, highestmodseq, \
             special_use) VALUES ($1, $2, nextval('uidvalidity_seq'), 1, 1, $3) RETURNING id",
            &[&account, &name, &special_use],
        )
        .await?
        .ok_or_else(|| StoreError::Io("mailbox insert returned nothing".into()))?;
    Ok(MailboxId(row.try_get(0).map_err(map_err)?))
}

/// Creates the account and its special mailboxes if missing (the caller
/// holds its lock); true if it was created.
pub(crate) async fn create_account_if_missing(
    tx: &Tx<'_>,
    account: &str,
) -> Result<bool, StoreError> {
    let inserted = tx
        .exec(
            "INSERT INTO accounts (name, created) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&account, &now()],
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    for (name, special_use) in SPECIAL_MAILBOXES {
        insert_mailbox(tx, account, name, special_use).await?;
        subscribe(tx, account, name, true).await?;
    }
    tx.record(account, None, "mailboxes", None, None).await?;
    Ok(true)
}

/// The next UID of a mailbox and a new mod-sequence for it.
async fn alloc_uid(tx: &Tx<'_>, mailbox: MailboxId) -> Result<(Uid, u64), StoreError> {
    let row = tx
        .opt(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
             WHERE id = $1 RETURNING uidnext - 1, highestmodseq",
            &[&mailbox.0],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox id {}", mailbox.0)))?;
    let uid: i64 = row.try_get(0).map_err(map_err)?;
    let modseq: i64 = row.try_get(1).map_err(map_err)?;
    // uidnext itself must still fit in 32 bits (RFC 9051: nz-number).
    if uid >= i64::from(u32::MAX) {
        return Err(StoreError::Invalid("mailbox UID space exhausted".into()));
    }
    Ok((uid_of(uid)?, modseq.max(0) as u64))
}

/// [`alloc_uid`] of the mailbox named `name` (normalised), found and
/// updated in one round trip; None when there is no such mailbox.
async fn alloc_uid_by_name(
    tx: &Tx<'_>,
    account: &str,
    name: &str,
) -> Result<Option<(MailboxId, Uid, u64)>, StoreError> {
    let name = normalize_mailbox_name(name);
    let Some(row) = tx
        .opt(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
             WHERE account = $1 AND name = $2 RETURNING id, uidnext - 1, highestmodseq",
            &[&account, &name],
        )
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0).map_err(map_err)?;
    let uid: i64 = row.try_get(1).map_err(map_err)?;
    let modseq: i64 = row.try_get(2).map_err(map_err)?;
    // uidnext itself must still fit in 32 bits (RFC 9051: nz-number).
    if uid >= i64::from(u32::MAX) {
        return Err(StoreError::Invalid("mailbox UID space exhausted".into()));
    }
    Ok(Some((MailboxId(id), uid_of(uid)?, modseq.max(0) as u64)))
}

/// A new mod-sequence for a mailbox (RFC 7162 3.1: strictly increasing).
async fn bump_modseq(tx: &Tx<'_>, mailbox: MailboxId) -> Result<u64, StoreError> {
    let row = tx
        .opt(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 \
             RETURNING highestmodseq",
            &[&mailbox.0],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox id {}", mailbox.0)))?;
    let modseq: i64 = row.try_get(0).map_err(map_err)?;
    Ok(modseq.max(0) as u64)
}

/// Stores a body in chunks of exactly [`BODY_CHUNK`] bytes, the last one
/// shorter (one chunk, possibly empty, at least), with no references yet.
/// Chunk `n` thus starts at `n * BODY_CHUNK`, which ranged reads rely on.
/// A spooled tail is read a chunk at a time (issue 19).
pub(crate) async fn insert_body_parts(
    tx: &Tx<'_>,
    body: BodyParts<'_>,
) -> Result<BodyId, StoreError> {
    let total = body.len();
    if total > MAX_BODY_BYTES as u64 {
        return Err(StoreError::Invalid(format!(
            "message larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let size = total as i64;
    let mut buf = vec![0; BODY_CHUNK.min(usize::try_from(total).unwrap_or(BODY_CHUNK))];
    let n = body.read_at(0, &mut buf)?;
    let first: &[u8] = buf.get(..n).unwrap_or_default();
    // The body row and its first chunk in one round trip.
    let row = tx
        .opt(
            "WITH body AS (INSERT INTO bodies (size, refs) VALUES ($1, 0) RETURNING id) \
             INSERT INTO body_chunks (body_id, n, data) SELECT body.id, 0, $2 FROM body \
             RETURNING body_id",
            &[&size, &first],
        )
        .await?
        .ok_or_else(|| StoreError::Io("body insert returned nothing".into()))?;
    let id: i64 = row.try_get(0).map_err(map_err)?;
    let mut pos = n as u64;
    let mut index: i32 = 0;
    while pos < total {
        let got = body.read_at(pos, &mut buf)?;
        if got == 0 {
            return Err(StoreError::Io("body shorter than its size".into()));
        }
        index = index
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid("too many chunks".into()))?;
        let chunk: &[u8] = buf.get(..got).unwrap_or_default();
        tx.exec(
            "INSERT INTO body_chunks (body_id, n, data) VALUES ($1, $2, $3)",
            &[&id, &index, &chunk],
        )
        .await?;
        pos += got as u64;
    }
    Ok(BodyId(id))
}

async fn insert_entry(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    uid: Uid,
    body: BodyId,
    flags: &str,
    internal_date: i64,
    modseq: u64,
) -> Result<(), StoreError> {
    tx.exec(
        // RFC 8514: the save date is when the entry is made (the
        // database's clock, as every node shares it).
        "INSERT INTO entries (mailbox_id, uid, body_id, flags, internal_date, modseq, save_date) \
         VALUES ($1, $2, $3, $4, $5, $6, EXTRACT(EPOCH FROM now())::BIGINT)",
        &[
            &mailbox.0,
            &i64::from(uid.0),
            &body.0,
            &flags,
            &internal_date,
            &to_i64(modseq),
        ],
    )
    .await?;
    Ok(())
}

async fn record_expunge(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    uid: Uid,
    modseq: u64,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO expunged (mailbox_id, uid, modseq, expunged_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (mailbox_id, uid) DO UPDATE \
         SET modseq = EXCLUDED.modseq, expunged_at = EXCLUDED.expunged_at",
        &[&mailbox.0, &i64::from(uid.0), &to_i64(modseq), &now()],
    )
    .await?;
    Ok(())
}

// --- accounts and mailboxes ---

pub async fn ensure_account(tx: &Tx<'_>, account: &str) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    tx.lock_account(&account).await?;
    create_account_if_missing(tx, &account).await?;
    Ok(())
}

pub async fn delete_account(tx: &Tx<'_>, account: &str) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    tx.lock_account(&account).await?;
    if !account_exists(tx, &account).await? {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    // Entries first, explicitly, so the body reference trigger runs.
    for sql in [
        "DELETE FROM entries WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account = $1)",
        "DELETE FROM expunged WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account = $1)",
        "DELETE FROM mailboxes WHERE account = $1",
        "DELETE FROM subscriptions WHERE account = $1",
        "DELETE FROM metadata WHERE account = $1",
        "DELETE FROM threads WHERE account = $1",
        "DELETE FROM urlauth_keys WHERE account = $1",
        "DELETE FROM accounts WHERE name = $1",
    ] {
        tx.exec(sql, &[&account]).await?;
    }
    tx.record(&account, None, "mailboxes", None, None).await?;
    tx.record(&account, None, "account_deleted", None, None)
        .await
}

pub async fn create_mailbox(
    tx: &Tx<'_>,
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
    tx.lock_account(&account).await?;
    if !account_exists(tx, &account).await? {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    if mailbox_id_by_name(tx, &account, &name).await?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {name:?}")));
    }
    let id = insert_mailbox(tx, &account, &name, special_use).await?;
    tx.record(&account, None, "mailboxes", None, None).await?;
    read::mailbox_info(&tx.tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {name:?}")))
}

pub async fn delete_mailbox(tx: &Tx<'_>, account: &str, name: &str) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    if normalize_mailbox_name(name) == "INBOX" {
        return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
    }
    tx.lock_account(&account).await?;
    let id = require_mailbox(tx, &account, name).await?;
    for sql in [
        "DELETE FROM entries WHERE mailbox_id = $1",
        "DELETE FROM expunged WHERE mailbox_id = $1",
        // RFC 5464 3.2: a mailbox's METADATA goes with it.
        "DELETE FROM metadata WHERE mailbox = $1",
        "DELETE FROM urlauth_keys WHERE mailbox = $1",
        "DELETE FROM mailboxes WHERE id = $1",
    ] {
        tx.exec(sql, &[&id.0]).await?;
    }
    tx.record(&account, None, "mailboxes", None, None).await
}

pub async fn rename_mailbox(
    tx: &Tx<'_>,
    account: &str,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    let from = normalize_mailbox_name(from);
    let to = check_new_mailbox_name(to)?;
    tx.lock_account(&account).await?;
    let from_id = require_mailbox(tx, &account, &from).await?;
    if from == to || mailbox_id_by_name(tx, &account, &to).await?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {to:?}")));
    }
    if to.starts_with(&format!("{from}/")) {
        return Err(StoreError::Invalid(
            "cannot rename a mailbox into its own hierarchy".into(),
        ));
    }
    if from == "INBOX" {
        rename_inbox(tx, &account, from_id, &to).await?;
    } else {
        // The mailbox and its inferiors ("from/..."), RFC 9051 6.3.6.
        let prefix = format!("{from}/");
        let inferiors = tx
            .rows(
                "SELECT id, name FROM mailboxes WHERE account = $1 AND starts_with(name, $2)",
                &[&account, &prefix],
            )
            .await?;
        let mut renames = vec![(from_id.0, to.clone())];
        for r in inferiors {
            let id: i64 = r.try_get(0).map_err(map_err)?;
            let name: String = r.try_get(1).map_err(map_err)?;
            let rest = name.get(prefix.len()..).unwrap_or_default();
            let target = check_new_mailbox_name(&format!("{to}/{rest}"))?;
            if mailbox_id_by_name(tx, &account, &target).await?.is_some() {
                return Err(StoreError::AlreadyExists(format!("mailbox {target:?}")));
            }
            renames.push((id, target));
        }
        for (id, name) in renames {
            tx.exec(
                "UPDATE mailboxes SET name = $2 WHERE id = $1",
                &[&id, &name],
            )
            .await?;
        }
        // A subscription follows its mailbox (and inferiors) to the new
        // name; one already there for the target name stays (as SQLite's
        // UPDATE OR REPLACE leaves one row).
        let sub_prefix = format!("{from}/");
        let moved = tx
            .rows(
                "DELETE FROM subscriptions WHERE account = $1 \
                 AND (name = $2 OR starts_with(name, $3)) RETURNING name",
                &[&account, &from, &sub_prefix],
            )
            .await?;
        for r in moved {
            let name: String = r.try_get(0).map_err(map_err)?;
            let rest = name.get(from.len()..).unwrap_or_default();
            subscribe(tx, &account, &format!("{to}{rest}"), true).await?;
        }
    }
    tx.record(&account, None, "mailboxes", None, None).await
}

/// RFC 9051 6.3.6: renaming INBOX moves all its messages to a new mailbox
/// of the new name and leaves INBOX empty (its inferiors stay). The new
/// mailbox has a fresh UIDVALIDITY, so the moved entries keep their UIDs.
async fn rename_inbox(
    tx: &Tx<'_>,
    account: &str,
    inbox: MailboxId,
    to: &str,
) -> Result<(), StoreError> {
    let new_id = insert_mailbox(tx, account, to, None).await?;
    tx.exec(
        "UPDATE mailboxes SET (uidnext, highestmodseq) = \
         (SELECT uidnext, highestmodseq FROM mailboxes WHERE id = $1) WHERE id = $2",
        &[&inbox.0, &new_id.0],
    )
    .await?;
    let moved = tx
        .rows(
            "UPDATE entries SET mailbox_id = $2 WHERE mailbox_id = $1 RETURNING uid",
            &[&inbox.0, &new_id.0],
        )
        .await?;
    let mut uids = Vec::with_capacity(moved.len());
    for r in moved {
        uids.push(uid_of(r.try_get(0).map_err(map_err)?)?);
    }
    uids.sort_unstable();
    for uid in uids {
        let modseq = bump_modseq(tx, inbox).await?;
        record_expunge(tx, inbox, uid, modseq).await?;
        tx.record(account, Some(inbox), "expunge", Some(uid), Some(modseq))
            .await?;
    }
    Ok(())
}

/// RFC 9051 6.3.7: a name stays subscribed whether or not a mailbox of
/// that name exists.
pub async fn set_subscribed(
    tx: &Tx<'_>,
    account: &str,
    name: &str,
    subscribed: bool,
) -> Result<(), StoreError> {
    let account = canonical_account(account)?;
    tx.lock_account(&account).await?;
    if !account_exists(tx, &account).await? {
        return Err(StoreError::NotFound(format!("account {account}")));
    }
    let name = if subscribed {
        check_new_mailbox_name(name)?
    } else {
        normalize_mailbox_name(name)
    };
    subscribe(tx, &account, &name, subscribed).await?;
    tx.record(&account, None, "mailboxes", None, None).await
}

// --- messages ---

/// A delivery checked and normalised: its local targets (account,
/// mailbox, flags; one per account and mailbox: a target reached twice
/// gets one entry), the local copy and the remote part.
pub(crate) struct Plan<'d> {
    pub targets: Vec<(String, String, String)>,
    pub raw: Option<&'d [u8]>,
    pub outbound: Option<&'d Outbound>,
}

pub(crate) fn plan(delivery: &Delivery) -> Result<Plan<'_>, StoreError> {
    let mut targets: Vec<(String, String, String)> = Vec::with_capacity(delivery.local.len());
    for t in &delivery.local {
        let account = canonical_account(&t.account)?;
        let mailbox = normalize_mailbox_name(&t.mailbox);
        let flags = flags_to_text(&normalize_flags(t.flags.clone())?);
        if !targets
            .iter()
            .any(|(a, m, _)| *a == account && *m == mailbox)
        {
            targets.push((account, mailbox, flags));
        }
    }
    let outbound = delivery
        .outbound
        .as_ref()
        .filter(|o| !o.recipients.is_empty());
    if targets.is_empty() && outbound.is_none() {
        return Err(StoreError::Invalid("delivery without recipients".into()));
    }
    let raw = match (&delivery.local_raw, targets.is_empty()) {
        (_, true) => None,
        (Some(raw), false) => Some(raw.as_slice()),
        (None, false) => {
            return Err(StoreError::Invalid(
                "local recipients but no local message".into(),
            ));
        }
    };
    Ok(Plan {
        targets,
        raw,
        outbound,
    })
}

/// One message to its local accounts and remote recipients; the copies
/// are followed by their `tails` (issue 19).
pub async fn deliver_spooled(
    tx: &Tx<'_>,
    delivery: &Delivery,
    tails: Tails<'_>,
) -> Result<Delivered, StoreError> {
    let now = now();
    let Plan {
        targets,
        raw,
        outbound,
    } = plan(delivery)?;
    // The lock order: every account, ascending; the queue's '' last (its
    // change row at the end), so that outbound deliveries of all nodes
    // wait on each other only for that last instant before COMMIT.
    let locks: BTreeSet<&str> = targets.iter().map(|(a, _, _)| a.as_str()).collect();
    for account in locks {
        tx.lock_account(account).await?;
    }
    let mut entries = Vec::with_capacity(targets.len());
    let mut local_body = None;
    if let Some(raw) = raw {
        let parts = BodyParts {
            head: raw,
            tail: tails.local,
        };
        // Pipelined in three steps, each a group of statements that do not
        // depend on each other, sent together (one round trip a step
        // instead of one a statement; the account locks are held, so
        // nothing else changes these rows meanwhile).
        let mut accounts: Vec<&str> = Vec::with_capacity(targets.len());
        for (a, _, _) in &targets {
            if !accounts.contains(&a.as_str()) {
                accounts.push(a);
            }
        }
        // 1: the body, each account (created with its mailboxes if
        // missing), each account's thread for the message.
        let (body, _, threads) = futures_util::future::try_join3(
            insert_body_parts(tx, parts),
            try_join_all(accounts.iter().map(|a| create_account_if_missing(tx, a))),
            try_join_all(accounts.iter().map(|a| crate::threads::lookup(tx, a, raw))),
        )
        .await?;
        local_body = Some((body, parts));
        // 2: a UID and mod-sequence in each target mailbox.
        let allocs = try_join_all(targets.iter().map(|(account, mailbox, _)| async move {
            // RFC 5228 2.10.2: a folder that is not there means INBOX.
            match alloc_uid_by_name(tx, account, mailbox).await? {
                Some(got) => Ok(got),
                None => alloc_uid_by_name(tx, account, "INBOX")
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("INBOX of {account}"))),
            }
        }))
        .await?;
        // 3: the entries, the threads, the change rows. One account's
        // rows go one after the other in (mailbox, UID) order, so its
        // feed never shows a smaller UID of a mailbox after a larger one
        // (a missing folder's fallback to INBOX is allocated last).
        let mut records: Vec<(&str, MailboxId, Uid, u64)> = targets
            .iter()
            .zip(&allocs)
            .map(|((account, _, _), &(target, uid, modseq))| {
                (account.as_str(), target, uid, modseq)
            })
            .collect();
        records.sort_by_key(|&(account, mailbox, uid, _)| (account, mailbox.0, uid.0));
        let internal_date = delivery.internal_date;
        let inserts = try_join_all(targets.iter().zip(&allocs).map(
            |((_, _, flags), &(target, uid, modseq))| {
                insert_entry(tx, target, uid, body, flags, internal_date, modseq)
            },
        ));
        let threads = try_join_all(
            accounts
                .iter()
                .zip(&threads)
                .map(|(a, found)| crate::threads::insert(tx, a, body, found)),
        );
        let records = try_join_all(accounts.iter().map(|&account| {
            let mine: Vec<_> = records.iter().filter(|r| r.0 == account).copied().collect();
            async move {
                for (account, mailbox, uid, modseq) in mine {
                    tx.record(account, Some(mailbox), "append", Some(uid), Some(modseq))
                        .await?;
                }
                Ok::<_, StoreError>(())
            }
        }));
        futures_util::future::try_join3(inserts, threads, records).await?;
        for ((account, _, _), &(target, uid, _)) in targets.iter().zip(&allocs) {
            entries.push((account.clone(), target, uid));
        }
    }
    let mut queue_ids = Vec::new();
    if let Some(out) = outbound {
        let parts = BodyParts {
            head: &out.raw,
            tail: tails.relayed,
        };
        let body = match local_body {
            Some((id, local)) if local.same_as(&parts) => id,
            _ => insert_body_parts(tx, parts).await?,
        };
        queue_ids = queue_rows(tx, out, body, now).await?;
        // Wakes the outbound workers of every node (issue 12).
        tx.record(QUEUE_ACCOUNT, None, QUEUE_KIND, None, None)
            .await?;
    }
    Ok(Delivered { entries, queue_ids })
}

/// The queue rows of a delivery's remote recipients (pipelined: one
/// round trip for all of them), their ids in recipient order.
pub(crate) async fn queue_rows(
    tx: &Tx<'_>,
    out: &Outbound,
    body: BodyId,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let none = QueueRcpt::default();
    try_join_all(out.recipients.iter().enumerate().map(|(i, rcpt)| {
        // A recipient without its own entry has the message's sender and
        // no NOTIFY or ORCPT (as the embedded store).
        let extra = out.rcpt.get(i).unwrap_or(&none);
        let sender = extra.sender.as_deref().unwrap_or(&out.sender);
        async move {
            let row = tx
                .opt(
                    "INSERT INTO queue (body_id, sender, recipient, status, attempts, \
                     next_attempt, created, envid, ret, notify, orcpt, smtputf8, notice) \
                     VALUES ($1, $2, $3, 'queued', 0, $4, $4, $5, $6, $7, $8, $9, $10) \
                     RETURNING id",
                    &[
                        &body.0,
                        &sender,
                        rcpt,
                        &now,
                        &out.envid,
                        &out.ret,
                        &extra.notify,
                        &extra.orcpt,
                        &out.smtputf8,
                        &out.notice,
                    ],
                )
                .await?
                .ok_or_else(|| StoreError::Io("queue insert returned nothing".into()))?;
            row.try_get(0).map_err(map_err)
        }
    }))
    .await
}

pub async fn append(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    raw: BodyParts<'_>,
    flags: Vec<String>,
    internal_date: i64,
) -> Result<Uid, StoreError> {
    let flags = normalize_flags(flags)?;
    let account = lock_mailbox_account(tx, mailbox).await?;
    let body = insert_body_parts(tx, raw).await?;
    let (uid, modseq) = alloc_uid(tx, mailbox).await?;
    insert_entry(
        tx,
        mailbox,
        uid,
        body,
        &flags_to_text(&flags),
        internal_date,
        modseq,
    )
    .await?;
    crate::threads::assign(tx, &account, body, raw.head).await?;
    tx.record(&account, Some(mailbox), "append", Some(uid), Some(modseq))
        .await?;
    Ok(uid)
}

/// MULTIAPPEND (RFC 3502): every message in the caller's one
/// transaction, so an error in the middle commits none of them.
pub async fn append_many(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    messages: &[store::NewMessage],
    quota: Quota,
) -> Result<Vec<Uid>, StoreError> {
    // The account's lock first: the quota check and every insert below
    // then see no other write to the account.
    let account = lock_mailbox_account(tx, mailbox).await?;
    let bytes = messages
        .iter()
        .fold(0u64, |n, m| n.saturating_add(m.raw.len() as u64));
    check_quota(tx, &account, quota, bytes, messages.len() as u64).await?;
    let mut uids = Vec::with_capacity(messages.len());
    for m in messages {
        uids.push(
            append(
                tx,
                mailbox,
                store::BodyParts::whole(&m.raw),
                m.flags.clone(),
                m.internal_date,
            )
            .await?,
        );
    }
    Ok(uids)
}

/// `mailroom import`: appends unless a message with this `digest` was
/// imported into `mailbox` before, in the same transaction; the body's
/// end may be in a spool file (issue 19).
pub async fn import(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    raw: BodyParts<'_>,
    flags: Vec<String>,
    internal_date: i64,
    digest: &[u8],
) -> Result<Option<Uid>, StoreError> {
    lock_mailbox_account(tx, mailbox).await?;
    let inserted = tx
        .exec(
            "INSERT INTO imports (mailbox, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&mailbox.0, &digest],
        )
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    append(tx, mailbox, raw, flags, internal_date)
        .await
        .map(Some)
}

struct EntryRow {
    body: BodyId,
    size: u64,
    internal_date: i64,
    flags: Vec<String>,
    modseq: u64,
}

async fn entry(tx: &Tx<'_>, mailbox: MailboxId, uid: Uid) -> Result<Option<EntryRow>, StoreError> {
    let Some(r) = tx
        .opt(
            "SELECT e.body_id, b.size, e.internal_date, e.flags, e.modseq FROM entries e \
             JOIN bodies b ON b.id = e.body_id WHERE e.mailbox_id = $1 AND e.uid = $2",
            &[&mailbox.0, &i64::from(uid.0)],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(EntryRow {
        body: BodyId(r.try_get(0).map_err(map_err)?),
        size: r.try_get::<_, i64>(1).map_err(map_err)?.max(0) as u64,
        internal_date: r.try_get(2).map_err(map_err)?,
        flags: flags_from_text(&r.try_get::<_, String>(3).map_err(map_err)?),
        modseq: r.try_get::<_, i64>(4).map_err(map_err)?.max(0) as u64,
    }))
}

/// Sorted, deduplicated UIDs: every loop below is bounded by the input.
fn sorted_uids(mut uids: Vec<Uid>) -> Vec<Uid> {
    uids.sort_unstable();
    uids.dedup();
    uids
}

pub async fn set_flags(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    uids: Vec<Uid>,
    op: FlagOp,
    flags: Vec<String>,
) -> Result<Vec<MessageMeta>, StoreError> {
    set_flags_if(tx, mailbox, uids, op, flags, None)
        .await
        .map(|r| r.changed)
}

/// STORE, with RFC 7162 3.1.3's UNCHANGEDSINCE when `unchanged_since` is
/// given: checked per entry under the account's lock, in the write's
/// transaction.
pub async fn set_flags_if(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    uids: Vec<Uid>,
    op: FlagOp,
    flags: Vec<String>,
    unchanged_since: Option<u64>,
) -> Result<ConditionalFlags, StoreError> {
    let given = normalize_flags(flags)?;
    let account = lock_mailbox_account(tx, mailbox).await?;
    let mut changed = Vec::new();
    let mut modified = Vec::new();
    for uid in sorted_uids(uids) {
        let Some(row) = entry(tx, mailbox, uid).await? else {
            continue;
        };
        if unchanged_since.is_some_and(|limit| row.modseq > limit) {
            modified.push(uid);
            continue;
        }
        let new_flags: Vec<String> = match op {
            FlagOp::Replace => given.clone(),
            FlagOp::Add => {
                let mut f = row.flags.clone();
                for g in &given {
                    if !f.iter().any(|x| x.eq_ignore_ascii_case(g)) {
                        f.push(g.clone());
                    }
                }
                f
            }
            FlagOp::Remove => row
                .flags
                .iter()
                .filter(|x| !given.iter().any(|g| g.eq_ignore_ascii_case(x)))
                .cloned()
                .collect(),
        };
        if same_flags(&row.flags, &new_flags) {
            continue;
        }
        if new_flags.len() > MAX_FLAGS_PER_MESSAGE {
            return Err(StoreError::Limit(format!(
                "more than {MAX_FLAGS_PER_MESSAGE} flags"
            )));
        }
        let modseq = bump_modseq(tx, mailbox).await?;
        tx.exec(
            "UPDATE entries SET flags = $3, modseq = $4 WHERE mailbox_id = $1 AND uid = $2",
            &[
                &mailbox.0,
                &i64::from(uid.0),
                &flags_to_text(&new_flags),
                &to_i64(modseq),
            ],
        )
        .await?;
        tx.record(&account, Some(mailbox), "flags", Some(uid), Some(modseq))
            .await?;
        changed.push(MessageMeta {
            uid,
            body: row.body,
            size: row.size,
            internal_date: row.internal_date,
            flags: new_flags,
            modseq,
        });
    }
    Ok(ConditionalFlags { changed, modified })
}

/// Refuses with [`StoreError::QuotaExceeded`] when `account`'s usage plus
/// `bytes` in `messages` more would pass `quota` (RFC 9208 5.3). The
/// caller holds the account's row lock, which every write to the account
/// takes, so no other write comes between this and its insert.
async fn check_quota(
    tx: &Tx<'_>,
    account: &str,
    quota: Quota,
    bytes: u64,
    messages: u64,
) -> Result<(), StoreError> {
    if quota.unlimited() {
        return Ok(());
    }
    let usage = crate::read::usage(&tx.tx, account).await?;
    if quota.admits(usage, bytes, messages) {
        Ok(())
    } else {
        Err(StoreError::QuotaExceeded)
    }
}

/// APPEND within `quota`, checked under the account's lock.
pub async fn append_within(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    raw: store::BodyParts<'_>,
    flags: Vec<String>,
    internal_date: i64,
    quota: Quota,
) -> Result<Uid, StoreError> {
    let account = lock_mailbox_account(tx, mailbox).await?;
    check_quota(tx, &account, quota, raw.len(), 1).await?;
    append(tx, mailbox, raw, flags, internal_date).await
}

/// COPY within the target account's `quota`, checked under both
/// accounts' locks over the entries that exist.
pub async fn copy_within(
    tx: &Tx<'_>,
    from: MailboxId,
    uids: Vec<Uid>,
    to: MailboxId,
    quota: Quota,
) -> Result<Vec<(Uid, Uid)>, StoreError> {
    let (_, to_account) = lock_both(tx, from, to).await?;
    let uids = sorted_uids(uids);
    if !quota.unlimited() {
        let (mut bytes, mut messages) = (0u64, 0u64);
        for &uid in &uids {
            if let Some(row) = entry(tx, from, uid).await? {
                bytes = bytes.saturating_add(row.size);
                messages += 1;
            }
        }
        check_quota(tx, &to_account, quota, bytes, messages).await?;
    }
    copy_locked(tx, from, uids, to, &to_account).await
}

pub async fn expunge(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    uids: Vec<Uid>,
) -> Result<Vec<Uid>, StoreError> {
    let account = lock_mailbox_account(tx, mailbox).await?;
    expunge_locked(tx, &account, mailbox, uids).await
}

async fn expunge_locked(
    tx: &Tx<'_>,
    account: &str,
    mailbox: MailboxId,
    uids: Vec<Uid>,
) -> Result<Vec<Uid>, StoreError> {
    let mut removed = Vec::new();
    for uid in sorted_uids(uids) {
        // The body reference trigger frees the body with its last entry.
        let n = tx
            .exec(
                "DELETE FROM entries WHERE mailbox_id = $1 AND uid = $2",
                &[&mailbox.0, &i64::from(uid.0)],
            )
            .await?;
        if n == 0 {
            continue;
        }
        let modseq = bump_modseq(tx, mailbox).await?;
        record_expunge(tx, mailbox, uid, modseq).await?;
        tx.record(account, Some(mailbox), "expunge", Some(uid), Some(modseq))
            .await?;
        removed.push(uid);
    }
    Ok(removed)
}

pub async fn copy(
    tx: &Tx<'_>,
    from: MailboxId,
    uids: Vec<Uid>,
    to: MailboxId,
) -> Result<Vec<(Uid, Uid)>, StoreError> {
    let (_, to_account) = lock_both(tx, from, to).await?;
    copy_locked(tx, from, uids, to, &to_account).await
}

/// Locks the accounts of two mailboxes in name order; returns them.
async fn lock_both(
    tx: &Tx<'_>,
    from: MailboxId,
    to: MailboxId,
) -> Result<(String, String), StoreError> {
    let a = mailbox_account(tx, from).await?;
    let b = mailbox_account(tx, to).await?;
    let locks: BTreeSet<&str> = [a.as_str(), b.as_str()].into_iter().collect();
    for account in locks {
        tx.lock_account(account).await?;
    }
    Ok((
        mailbox_account(tx, from).await?,
        mailbox_account(tx, to).await?,
    ))
}

async fn copy_locked(
    tx: &Tx<'_>,
    from: MailboxId,
    uids: Vec<Uid>,
    to: MailboxId,
    to_account: &str,
) -> Result<Vec<(Uid, Uid)>, StoreError> {
    let mut pairs = Vec::new();
    for uid in sorted_uids(uids) {
        let Some(row) = entry(tx, from, uid).await? else {
            continue;
        };
        let (new_uid, modseq) = alloc_uid(tx, to).await?;
        insert_entry(
            tx,
            to,
            new_uid,
            row.body,
            &flags_to_text(&row.flags),
            row.internal_date,
            modseq,
        )
        .await?;
        tx.record(to_account, Some(to), "append", Some(new_uid), Some(modseq))
            .await?;
        pairs.push((uid, new_uid));
    }
    Ok(pairs)
}

/// MOVE (RFC 6851): COPY then EXPUNGE of the copied sources in one
/// transaction; the copies come first so that the reference trigger never
/// frees a body whose only entry is moving.
pub async fn move_messages(
    tx: &Tx<'_>,
    from: MailboxId,
    uids: Vec<Uid>,
    to: MailboxId,
) -> Result<Vec<(Uid, Uid)>, StoreError> {
    let (from_account, to_account) = lock_both(tx, from, to).await?;
    let pairs = copy_locked(tx, from, uids, to, &to_account).await?;
    expunge_locked(
        tx,
        &from_account,
        from,
        pairs.iter().map(|&(src, _)| src).collect(),
    )
    .await?;
    Ok(pairs)
}

// --- the queue ---

pub fn queue_entry(r: &Row) -> Result<QueueEntry, StoreError> {
    Ok(QueueEntry {
        id: r.try_get(0).map_err(map_err)?,
        body: BodyId(r.try_get(1).map_err(map_err)?),
        sender: r.try_get(2).map_err(map_err)?,
        recipient: r.try_get(3).map_err(map_err)?,
        status: r.try_get(4).map_err(map_err)?,
        attempts: u32::try_from(r.try_get::<_, i64>(5).map_err(map_err)?).unwrap_or(u32::MAX),
        next_attempt: r.try_get(6).map_err(map_err)?,
        created: r.try_get(7).map_err(map_err)?,
        last_error: r.try_get(8).map_err(map_err)?,
        envid: r.try_get(9).map_err(map_err)?,
        ret: r.try_get(10).map_err(map_err)?,
        notify: r.try_get(11).map_err(map_err)?,
        orcpt: r.try_get(12).map_err(map_err)?,
        smtputf8: r.try_get(13).map_err(map_err)?,
        warned: r.try_get(14).map_err(map_err)?,
        notice: r.try_get(15).map_err(map_err)?,
    })
}

/// The columns [`queue_entry`] reads, in its order.
pub const QUEUE_COLUMNS: &str = "id, body_id, sender, recipient, status, attempts, next_attempt, \
     created, last_error, envid, ret, notify, orcpt, smtputf8, warned, notice";

/// Claims up to `limit` due rows for `node`. The due time and the lease
/// are on the database's clock, so nodes whose clocks disagree still
/// agree on when a lease has ended: the caller's `now` and `lease_until`
/// count as offsets from its own clock (`now - local clock` is 0 in the
/// server; a test passes a later `now` to see a lease expire). Rows held
/// by another claim in flight are skipped (`FOR UPDATE SKIP LOCKED`), so
/// concurrent claimers never wait on each other or take the same row.
pub async fn claim(
    tx: &Tx<'_>,
    node: &str,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> Result<Vec<QueueEntry>, StoreError> {
    let limit = limit.min(MAX_CLAIM) as i64;
    let skew = now - store::rules::now();
    let lease = lease_until.saturating_sub(now).max(0);
    let rows = tx
        .rows(
            "WITH clock AS (SELECT floor(extract(epoch FROM clock_timestamp()))::bigint + $1 AS now), \
             due AS (SELECT id FROM queue, clock \
                     WHERE status IN ('queued', 'deferred', 'sending') \
                     AND next_attempt <= clock.now \
                     ORDER BY next_attempt, id LIMIT $3 FOR UPDATE OF queue SKIP LOCKED) \
             UPDATE queue SET status = 'sending', next_attempt = clock.now + $2, \
             claimed_by = $4 FROM due, clock WHERE queue.id = due.id \
             RETURNING queue.id, body_id, sender, recipient, status, attempts, next_attempt, \
             created, last_error, envid, ret, notify, orcpt, smtputf8, warned, notice",
            &[&skew, &lease, &limit, &node],
        )
        .await?;
    let mut out = rows
        .iter()
        .map(queue_entry)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|q| q.id);
    Ok(out)
}

/// Extends `node`'s claim on the rows `ids` still `sending`, on the
/// database's clock like [`claim`]; a row another node claimed since (its
/// lease ran out) is not touched.
pub async fn renew(
    tx: &Tx<'_>,
    node: &str,
    ids: &[i64],
    now: i64,
    lease_until: i64,
) -> Result<usize, StoreError> {
    let skew = now - store::rules::now();
    let lease = lease_until.saturating_sub(now).max(0);
    let ids: Vec<i64> = ids.iter().take(MAX_CLAIM).copied().collect();
    let n = tx
        .exec(
            "UPDATE queue SET next_attempt = \
             floor(extract(epoch FROM clock_timestamp()))::bigint + $1 + $2 \
             WHERE id = ANY($3) AND status = 'sending' AND claimed_by = $4",
            &[&skew, &lease, &ids, &node],
        )
        .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub async fn complete(tx: &Tx<'_>, id: i64) -> Result<(), StoreError> {
    tx.exec("DELETE FROM queue WHERE id = $1", &[&id]).await?;
    Ok(())
}

pub async fn defer(tx: &Tx<'_>, id: i64, next_attempt: i64, error: &str) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE queue SET status = 'deferred', attempts = attempts + 1, next_attempt = $2, \
         last_error = $3, claimed_by = NULL WHERE id = $1",
        &[&id, &next_attempt, &error],
    )
    .await?;
    Ok(())
}

pub async fn fail(tx: &Tx<'_>, id: i64, error: &str) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE queue SET status = 'failed', attempts = attempts + 1, last_error = $2, \
         claimed_by = NULL WHERE id = $1",
        &[&id, &error],
    )
    .await?;
    Ok(())
}

/// One delivery run's outcome (see [`Settle`]), in the caller's one
/// transaction: the DSNs are stored, then the rows removed, deferred and
/// marked warned; an error rolls all of it back, so the rows stay and are
/// settled again (a second copy at worst, never a lost failure).
///
/// The lock order holds across the several deliveries: every local
/// account of every DSN is locked first, ascending, before the first
/// delivery takes the queue's row (a DSN to a remote sender records a
/// queue change); the queue rows' own locks come after both, as in
/// [`retry`].
pub async fn settle(tx: &Tx<'_>, settle: &Settle) -> Result<Vec<Delivered>, StoreError> {
    settle_spooled(tx, settle, Tails::default()).await
}

/// Several deliveries, all or none; the first one's copies end in
/// `tails` (issue 19). Every local account is locked first, ascending, so
/// the queue's `''` (taken by a delivery with remote recipients) is still
/// taken after them.
pub async fn deliver_all(
    tx: &Tx<'_>,
    deliveries: &[Delivery],
    tails: Tails<'_>,
) -> Result<Vec<Delivered>, StoreError> {
    let mut accounts = BTreeSet::new();
    for d in deliveries {
        for t in &d.local {
            accounts.insert(canonical_account(&t.account)?);
        }
    }
    for account in &accounts {
        tx.lock_account(account).await?;
    }
    let mut done = Vec::with_capacity(deliveries.len());
    for (i, d) in deliveries.iter().enumerate() {
        let tails = if i == 0 { tails } else { Tails::default() };
        done.push(deliver_spooled(tx, d, tails).await?);
    }
    Ok(done)
}

/// [`settle`] where the first delivery's copies end in `tails` (issue 19).
pub async fn settle_spooled(
    tx: &Tx<'_>,
    settle: &Settle,
    tails: Tails<'_>,
) -> Result<Vec<Delivered>, StoreError> {
    let done = deliver_all(tx, &settle.dsns, tails).await?;
    for &id in &settle.remove {
        complete(tx, id).await?;
    }
    for (id, next, why) in &settle.defer {
        defer(tx, *id, *next, why).await?;
    }
    if !settle.warned.is_empty() {
        tx.exec(
            "UPDATE queue SET warned = true WHERE id = ANY($1)",
            &[&settle.warned],
        )
        .await?;
    }
    Ok(done)
}

pub async fn retry(tx: &Tx<'_>, id: Option<i64>) -> Result<usize, StoreError> {
    tx.lock_account(QUEUE_ACCOUNT).await?;
    let now = now();
    let n = match id {
        Some(id) => {
            tx.exec(
                "UPDATE queue SET status = 'queued', next_attempt = $2 \
                 WHERE id = $1 AND status <> 'sending'",
                &[&id, &now],
            )
            .await?
        }
        None => {
            tx.exec(
                "UPDATE queue SET status = 'queued', next_attempt = $1 WHERE status <> 'sending'",
                &[&now],
            )
            .await?
        }
    };
    if n == 0
        && let Some(id) = id
    {
        return Err(StoreError::NotFound(format!(
            "queue entry {id} (or it is being sent)"
        )));
    }
    tx.record(QUEUE_ACCOUNT, None, QUEUE_RETRY_KIND, None, None)
        .await?;
    Ok(n as usize)
}

/// At a node's start: the rows this node (`node_id`) had claimed when it
/// stopped are due again now. Other nodes' claims are theirs: they pass
/// to another node only when their lease ends.
pub async fn release_claims(tx: &Tx<'_>, node: &str) -> Result<usize, StoreError> {
    tx.lock_account(QUEUE_ACCOUNT).await?;
    let n = tx
        .exec(
            "UPDATE queue SET status = 'deferred', next_attempt = $1, claimed_by = NULL \
             WHERE status = 'sending' AND claimed_by = $2",
            &[&now(), &node],
        )
        .await?;
    if n > 0 {
        tx.record(QUEUE_ACCOUNT, None, QUEUE_KIND, None, None)
            .await?;
    }
    Ok(n as usize)
}

pub async fn delete(tx: &Tx<'_>, id: i64) -> Result<(), StoreError> {
    let n = tx.exec("DELETE FROM queue WHERE id = $1", &[&id]).await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("queue entry {id}")));
    }
    Ok(())
}

/// The mailboxes holding tombstones made before `older_than`.
pub async fn mailboxes_with_old_tombstones(
    tx: &Tx<'_>,
    older_than: i64,
) -> Result<Vec<MailboxId>, StoreError> {
    tx.rows(
        "SELECT DISTINCT mailbox_id FROM expunged WHERE expunged_at < $1",
        &[&older_than],
    )
    .await?
    .iter()
    .map(|r| Ok(MailboxId(r.try_get(0).map_err(map_err)?)))
    .collect()
}

/// Deletes one mailbox's tombstones made before `older_than`, raising
/// its `vanished_floor` to the highest mod-sequence among them in the
/// same transaction (one mailbox row lock, so it never deadlocks with a
/// writer).
pub async fn trim_mailbox_tombstones(
    tx: &Tx<'_>,
    mailbox: MailboxId,
    older_than: i64,
) -> Result<u64, StoreError> {
    tx.exec(
        "UPDATE mailboxes SET vanished_floor = GREATEST(vanished_floor, \
             (SELECT COALESCE(MAX(modseq), 0) FROM expunged \
              WHERE mailbox_id = $1 AND expunged_at < $2)) \
         WHERE id = $1",
        &[&mailbox.0, &older_than],
    )
    .await?;
    tx.exec(
        "DELETE FROM expunged WHERE mailbox_id = $1 AND expunged_at < $2",
        &[&mailbox.0, &older_than],
    )
    .await
}
