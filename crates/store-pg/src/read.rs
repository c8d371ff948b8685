//! The read queries, each inside a transaction (a read-only one from the
//! store, or the write transaction that needs them): a read of several
//! statements sees one snapshot.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use store::rules::{canonical_account, flags_from_text, normalize_mailbox_name};
use store::{
    BodyId, IndexBuilder, MailboxChanges, MailboxId, MailboxIndex, MailboxInfo, MessageMeta,
    QueueEntry, StoreError, Uid,
};

use crate::ops::{QUEUE_COLUMNS, queue_entry, uid_of};
use crate::{BODY_CHUNK, map_err};

const MAILBOX_COLUMNS: &str = "m.id, m.account, m.name, m.uidvalidity, m.uidnext, \
     m.highestmodseq, m.special_use, \
     EXISTS (SELECT 1 FROM subscriptions s WHERE s.account = m.account AND s.name = m.name), \
     (SELECT count(*) FROM entries e WHERE e.mailbox_id = m.id), \
     (SELECT count(*) FROM entries e WHERE e.mailbox_id = m.id \
        AND (' ' || e.flags || ' ') NOT LIKE '% \\\\Seen %')";

/// [`MAILBOX_COLUMNS`] without the two counts, which cost a scan of the
/// mailbox's entries: 0 in their place.
const MAILBOX_UNCOUNTED: &str = "m.id, m.account, m.name, m.uidvalidity, m.uidnext, \
     m.highestmodseq, m.special_use, \
     EXISTS (SELECT 1 FROM subscriptions s WHERE s.account = m.account AND s.name = m.name), \
     0::bigint, 0::bigint";

fn u32_of(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Io(format!("{what} {v} out of range")))
}

fn mailbox_from_row(r: &Row) -> Result<MailboxInfo, StoreError> {
    Ok(MailboxInfo {
        id: MailboxId(r.try_get(0).map_err(map_err)?),
        account: r.try_get(1).map_err(map_err)?,
        name: r.try_get(2).map_err(map_err)?,
        uidvalidity: u32_of(r.try_get(3).map_err(map_err)?, "UIDVALIDITY")?,
        uidnext: u32_of(r.try_get(4).map_err(map_err)?, "UIDNEXT")?,
        highestmodseq: r.try_get::<_, i64>(5).map_err(map_err)?.max(0) as u64,
        special_use: r.try_get(6).map_err(map_err)?,
        subscribed: r.try_get(7).map_err(map_err)?,
        messages: u32_of(r.try_get(8).map_err(map_err)?, "message count")?,
        unseen: u32_of(r.try_get(9).map_err(map_err)?, "unseen count")?,
    })
}

async fn rows(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    tx.query(&stmt, params).await.map_err(map_err)
}

pub async fn mailbox_info(
    tx: &Transaction<'_>,
    id: MailboxId,
) -> Result<Option<MailboxInfo>, StoreError> {
    let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.id = $1");
    match rows(tx, &sql, &[&id.0]).await?.first() {
        Some(r) => Ok(Some(mailbox_from_row(r)?)),
        None => Ok(None),
    }
}

pub async fn mailboxes(
    tx: &Transaction<'_>,
    account: &str,
) -> Result<Vec<MailboxInfo>, StoreError> {
    let account = canonical_account(account)?;
    // COLLATE "C": byte order, as SQLite's default BINARY collation.
    let sql = format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account = $1 \
         ORDER BY m.name <> 'INBOX', m.name COLLATE \"C\""
    );
    rows(tx, &sql, &[&account])
        .await?
        .iter()
        .map(mailbox_from_row)
        .collect()
}

pub async fn subscriptions(tx: &Transaction<'_>, account: &str) -> Result<Vec<String>, StoreError> {
    let account = canonical_account(account)?;
    rows(
        tx,
        "SELECT name FROM subscriptions WHERE account = $1 ORDER BY name COLLATE \"C\"",
        &[&account],
    )
    .await?
    .iter()
    .map(|r| r.try_get(0).map_err(map_err))
    .collect()
}

pub async fn mailbox_count(tx: &Transaction<'_>, account: &str) -> Result<u64, StoreError> {
    let account = canonical_account(account)?;
    let r = rows(
        tx,
        "SELECT count(*) FROM mailboxes WHERE account = $1",
        &[&account],
    )
    .await?;
    let n: i64 = match r.first() {
        Some(r) => r.try_get(0).map_err(map_err)?,
        None => 0,
    };
    Ok(n.max(0) as u64)
}

/// Quota usage (RFC 9208): RFC822.SIZE summed over the account's entries,
/// and their number; as SQLite's `read::usage`.
pub async fn usage(tx: &Transaction<'_>, account: &str) -> Result<store::Usage, StoreError> {
    let account = canonical_account(account)?;
    let r = rows(
        tx,
        "SELECT COALESCE(SUM(b.size), 0)::BIGINT, count(*) FROM entries e \
         JOIN mailboxes m ON m.id = e.mailbox_id JOIN bodies b ON b.id = e.body_id \
         WHERE m.account = $1",
        &[&account],
    )
    .await?;
    let (bytes, messages): (i64, i64) = match r.first() {
        Some(r) => (
            r.try_get(0).map_err(map_err)?,
            r.try_get(1).map_err(map_err)?,
        ),
        None => (0, 0),
    };
    Ok(store::Usage {
        bytes: bytes.max(0) as u64,
        messages: messages.max(0) as u64,
    })
}

pub async fn mailbox(
    tx: &Transaction<'_>,
    account: &str,
    name: &str,
) -> Result<Option<MailboxInfo>, StoreError> {
    let account = canonical_account(account)?;
    let name = normalize_mailbox_name(name);
    let sql =
        format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account = $1 AND m.name = $2");
    match rows(tx, &sql, &[&account, &name]).await?.first() {
        Some(r) => Ok(Some(mailbox_from_row(r)?)),
        None => Ok(None),
    }
}

/// [`mailbox`] without the message counts (see
/// [`store::Store::mailbox_uncounted`]).
pub async fn mailbox_uncounted(
    tx: &Transaction<'_>,
    account: &str,
    name: &str,
) -> Result<Option<MailboxInfo>, StoreError> {
    let account = canonical_account(account)?;
    let name = normalize_mailbox_name(name);
    let sql =
        format!("SELECT {MAILBOX_UNCOUNTED} FROM mailboxes m WHERE m.account = $1 AND m.name = $2");
    match rows(tx, &sql, &[&account, &name]).await?.first() {
        Some(r) => Ok(Some(mailbox_from_row(r)?)),
        None => Ok(None),
    }
}

const META_SELECT: &str = "SELECT e.uid, e.body_id, b.size, e.internal_date, e.flags, e.modseq \
     FROM entries e JOIN bodies b ON b.id = e.body_id";

fn meta_from_row(r: &Row) -> Result<MessageMeta, StoreError> {
    Ok(MessageMeta {
        uid: uid_of(r.try_get(0).map_err(map_err)?)?,
        body: BodyId(r.try_get(1).map_err(map_err)?),
        size: r.try_get::<_, i64>(2).map_err(map_err)?.max(0) as u64,
        internal_date: r.try_get(3).map_err(map_err)?,
        flags: flags_from_text(&r.try_get::<_, String>(4).map_err(map_err)?),
        modseq: r.try_get::<_, i64>(5).map_err(map_err)?.max(0) as u64,
    })
}

pub async fn messages(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
) -> Result<Vec<MessageMeta>, StoreError> {
    let sql = format!("{META_SELECT} WHERE e.mailbox_id = $1 ORDER BY e.uid");
    rows(tx, &sql, &[&mailbox.0])
        .await?
        .iter()
        .map(meta_from_row)
        .collect()
}

async fn highestmodseq(tx: &Transaction<'_>, mailbox: MailboxId) -> Result<u64, StoreError> {
    let r = rows(
        tx,
        "SELECT highestmodseq FROM mailboxes WHERE id = $1",
        &[&mailbox.0],
    )
    .await?;
    let row = r
        .first()
        .ok_or_else(|| StoreError::NotFound(format!("mailbox id {}", mailbox.0)))?;
    Ok(row.try_get::<_, i64>(0).map_err(map_err)?.max(0) as u64)
}

/// Rows one trip of [`mailbox_index`] brings: bounds what the client
/// library holds of a big mailbox at once.
const INDEX_BATCH: i32 = 8192;

/// UIDs and flags of every entry, and the HIGHESTMODSEQ, from the
/// caller's snapshot (see [`store::MailboxIndex`]): the primary key's
/// order, no join with the bodies, read through a portal
/// [`INDEX_BATCH`] rows at a time. NotFound when the mailbox is gone.
pub async fn mailbox_index(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
) -> Result<MailboxIndex, StoreError> {
    let mut b = IndexBuilder::new(highestmodseq(tx, mailbox).await?, 0);
    let stmt = tx
        .prepare_cached("SELECT uid, flags FROM entries WHERE mailbox_id = $1 ORDER BY uid")
        .await
        .map_err(map_err)?;
    let portal = tx.bind(&stmt, &[&mailbox.0]).await.map_err(map_err)?;
    loop {
        let batch = tx
            .query_portal(&portal, INDEX_BATCH)
            .await
            .map_err(map_err)?;
        for r in &batch {
            let uid = uid_of(r.try_get(0).map_err(map_err)?)?;
            b.push_text(uid, r.try_get::<_, &str>(1).map_err(map_err)?);
        }
        if batch.len() < INDEX_BATCH as usize {
            break;
        }
    }
    Ok(b.finish())
}

pub async fn messages_range(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
    first: Uid,
    last: Uid,
) -> Result<Vec<MessageMeta>, StoreError> {
    highestmodseq(tx, mailbox).await?;
    let sql =
        format!("{META_SELECT} WHERE e.mailbox_id = $1 AND e.uid BETWEEN $2 AND $3 ORDER BY e.uid");
    rows(
        tx,
        &sql,
        &[&mailbox.0, &i64::from(first.0), &i64::from(last.0)],
    )
    .await?
    .iter()
    .map(meta_from_row)
    .collect()
}

/// RFC 8514: each entry's save date (NULL before the store kept it).
pub async fn save_dates(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
    first: Uid,
    last: Uid,
) -> Result<Vec<(Uid, Option<i64>)>, StoreError> {
    let sql = "SELECT uid, save_date FROM entries WHERE mailbox_id = $1 \
               AND uid BETWEEN $2 AND $3 ORDER BY uid";
    rows(
        tx,
        sql,
        &[&mailbox.0, &i64::from(first.0), &i64::from(last.0)],
    )
    .await?
    .iter()
    .map(|r| {
        let uid: i64 = r.try_get(0).map_err(map_err)?;
        Ok((uid_of(uid)?, r.try_get(1).map_err(map_err)?))
    })
    .collect()
}

/// What changed after `since`, from one snapshot (the caller's REPEATABLE
/// READ transaction).
pub async fn changes_since(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
    since: u64,
) -> Result<MailboxChanges, StoreError> {
    let highestmodseq = highestmodseq(tx, mailbox).await?;
    // The same snapshot as the rows below (REPEATABLE READ).
    let floor = rows(
        tx,
        "SELECT vanished_floor FROM mailboxes WHERE id = $1",
        &[&mailbox.0],
    )
    .await?
    .first()
    .map(|r| r.try_get::<_, i64>(0).map_err(map_err))
    .transpose()?
    .unwrap_or(0)
    .max(0) as u64;
    let since_sql = i64::try_from(since).unwrap_or(i64::MAX);
    let mut changed: Vec<MessageMeta> = if since == 0 {
        messages(tx, mailbox).await?
    } else {
        let sql = format!("{META_SELECT} WHERE e.mailbox_id = $1 AND e.modseq > $2");
        rows(tx, &sql, &[&mailbox.0, &since_sql])
            .await?
            .iter()
            .map(meta_from_row)
            .collect::<Result<_, _>>()?
    };
    changed.sort_unstable_by_key(|m| m.uid);
    let mut vanished: Vec<Uid> = if since == 0 {
        Vec::new()
    } else {
        rows(
            tx,
            "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2",
            &[&mailbox.0, &since_sql],
        )
        .await?
        .iter()
        .map(|r| uid_of(r.try_get(0).map_err(map_err)?))
        .collect::<Result<_, _>>()?
    };
    vanished.sort_unstable();
    Ok(MailboxChanges {
        highestmodseq,
        changed,
        vanished,
        // Every tombstone above the floor is kept (RFC 7162 3.2.5.2).
        trimmed: since != 0 && since < floor,
    })
}

/// Bodies by id, their chunks joined; None for one that is gone.
pub async fn read_bodies(
    tx: &Transaction<'_>,
    bodies: &[BodyId],
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let ids: Vec<i64> = bodies.iter().map(|b| b.0).collect();
    let chunks = rows(
        tx,
        "SELECT body_id, data FROM body_chunks WHERE body_id = ANY($1) ORDER BY body_id, n",
        &[&ids],
    )
    .await?;
    let mut found: std::collections::HashMap<i64, Vec<u8>> = std::collections::HashMap::new();
    for r in &chunks {
        let id: i64 = r.try_get(0).map_err(map_err)?;
        let data: &[u8] = r.try_get(1).map_err(map_err)?;
        found.entry(id).or_default().extend_from_slice(data);
    }
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}

/// Part of a body: only the chunks that overlap the range, which start
/// at multiples of [`BODY_CHUNK`] (see `ops::insert_body_parts`).
pub async fn read_body_range(
    tx: &Transaction<'_>,
    body: BodyId,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, StoreError> {
    let size = rows(tx, "SELECT size FROM bodies WHERE id = $1", &[&body.0]).await?;
    let size: i64 = match size.first() {
        Some(r) => r.try_get(0).map_err(map_err)?,
        None => return Err(StoreError::NotFound(format!("body {}", body.0))),
    };
    let size = size.max(0) as u64;
    let start = offset.min(size);
    let end = start.saturating_add(len as u64).min(size);
    if start == end {
        return Ok(Vec::new());
    }
    let chunk = BODY_CHUNK as u64;
    let first = i32::try_from(start / chunk).map_err(|_| StoreError::Invalid("offset".into()))?;
    let last =
        i32::try_from((end - 1) / chunk).map_err(|_| StoreError::Invalid("offset".into()))?;
    let got = rows(
        tx,
        "SELECT n, data FROM body_chunks WHERE body_id = $1 AND n BETWEEN $2 AND $3 ORDER BY n",
        &[&body.0, &first, &last],
    )
    .await?;
    let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    for r in &got {
        let n: i32 = r.try_get(0).map_err(map_err)?;
        let data: &[u8] = r.try_get(1).map_err(map_err)?;
        let at = u64::try_from(n).unwrap_or(0) * chunk;
        let from = usize::try_from(start.saturating_sub(at)).unwrap_or(usize::MAX);
        let to = usize::try_from(end.saturating_sub(at)).unwrap_or(usize::MAX);
        out.extend_from_slice(
            data.get(from.min(data.len())..to.min(data.len()))
                .unwrap_or_default(),
        );
    }
    Ok(out)
}

pub async fn queue(tx: &Transaction<'_>) -> Result<Vec<QueueEntry>, StoreError> {
    let sql = format!("SELECT {QUEUE_COLUMNS} FROM queue ORDER BY id");
    rows(tx, &sql, &[]).await?.iter().map(queue_entry).collect()
}

pub async fn queue_stats(tx: &Transaction<'_>) -> Result<(u64, Option<i64>), StoreError> {
    let r = rows(tx, "SELECT count(*), min(created) FROM queue", &[]).await?;
    let row = r
        .first()
        .ok_or_else(|| StoreError::Io("queue stats returned nothing".into()))?;
    let n: i64 = row.try_get(0).map_err(map_err)?;
    Ok((n.max(0) as u64, row.try_get(1).map_err(map_err)?))
}
