//! Delivery and per-message operations: APPEND, STORE, EXPUNGE, COPY and
//! MOVE.

use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::{ConditionalFlags, Delivered, Delivery, FlagOp, MessageMeta, Quota};

pub fn deliver(conn: &Connection, delivery: &Delivery) -> Result<Delivered, StoreError> {
    deliver_spooled(conn, delivery, crate::Tails::default())
}

/// [`deliver`] with the copies followed by their `tails` (issue 19).
pub fn deliver_spooled(
    conn: &Connection,
    delivery: &Delivery,
    tails: crate::Tails<'_>,
) -> Result<Delivered, StoreError> {
    let now = now();
    // One entry per (account, mailbox): a target reached twice gets one.
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
    let mut entries = Vec::with_capacity(targets.len());
    let mut local_body = None;
    if !targets.is_empty() {
        let raw = delivery
            .local_raw
            .as_deref()
            .ok_or_else(|| StoreError::Invalid("local recipients but no local message".into()))?;
        let parts = crate::BodyParts {
            head: raw,
            tail: tails.local,
        };
        let body = insert_body_parts(conn, parts)?;
        local_body = Some((body, parts));
        for (account, mailbox, flags) in targets {
            create_account_if_missing(conn, &account)?;
            // RFC 5228 2.10.2: a folder that is not there means INBOX.
            let target = match mailbox_id_by_name(conn, &account, &mailbox)? {
                Some(id) => id,
                None => require_mailbox(conn, &account, "INBOX")?,
            };
            let (_, uid, modseq) = alloc_uid(conn, target)?;
            insert_entry(
                conn,
                target,
                uid,
                body,
                &flags,
                delivery.internal_date,
                modseq,
            )?;
            super::threads::assign(conn, &account, body, raw)?;
            record(
                conn,
                &account,
                Some(target),
                "append",
                Some(uid),
                Some(modseq),
                now,
            )?;
            entries.push((account, target, uid));
        }
    }
    let mut queue_ids = Vec::new();
    if let Some(out) = delivery
        .outbound
        .as_ref()
        .filter(|o| !o.recipients.is_empty())
    {
        let parts = crate::BodyParts {
            head: &out.raw,
            tail: tails.relayed,
        };
        let body = match local_body {
            Some((id, local)) if local.same_as(&parts) => id,
            _ => insert_body_parts(conn, parts)?,
        };
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO queue (body_id, sender, recipient, status, attempts, next_attempt, \
                 created, envid, ret, notify, orcpt, smtputf8, notice) \
                 VALUES (?1, ?2, ?3, 'queued', 0, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(map_err)?;
        let none = crate::QueueRcpt::default();
        for (i, rcpt) in out.recipients.iter().enumerate() {
            let extra = out.rcpt.get(i).unwrap_or(&none);
            let sender = extra.sender.as_deref().unwrap_or(&out.sender);
            stmt.execute(params![
                body.0,
                sender,
                rcpt,
                now,
                out.envid,
                out.ret,
                extra.notify,
                extra.orcpt,
                out.smtputf8,
                out.notice
            ])
            .map_err(map_err)?;
            queue_ids.push(conn.last_insert_rowid());
        }
        // Wakes the outbound worker (issue 12): no poll delay.
        crate::feed::record(conn, "", None, super::queue::QUEUE_KIND, None, None, now)?;
    }
    if entries.is_empty() && queue_ids.is_empty() {
        return Err(StoreError::Invalid("delivery without recipients".into()));
    }
    Ok(Delivered { entries, queue_ids })
}

pub fn append(
    conn: &Connection,
    mailbox: MailboxId,
    raw: &[u8],
    flags: Vec<String>,
    internal_date: i64,
) -> Result<Uid, StoreError> {
    append_parts(
        conn,
        mailbox,
        crate::BodyParts::whole(raw),
        flags,
        internal_date,
    )
}

/// [`append`] of a body whose end may be in a spool file (issue 19).
pub fn append_parts(
    conn: &Connection,
    mailbox: MailboxId,
    raw: crate::BodyParts<'_>,
    flags: Vec<String>,
    internal_date: i64,
) -> Result<Uid, StoreError> {
    let flags = normalize_flags(flags)?;
    let body = insert_body_parts(conn, raw)?;
    let (account, uid, modseq) = alloc_uid(conn, mailbox)?;
    insert_entry(
        conn,
        mailbox,
        uid,
        body,
        &flags_to_text(&flags),
        internal_date,
        modseq,
    )?;
    super::threads::assign(conn, &account, body, raw.head)?;
    record(
        conn,
        &account,
        Some(mailbox),
        "append",
        Some(uid),
        Some(modseq),
        now(),
    )?;
    Ok(uid)
}

/// `mailroom import`: appends unless a message with this `digest` was
/// imported into `mailbox` before; both in the caller's one transaction.
pub fn import(
    conn: &Connection,
    mailbox: MailboxId,
    raw: &[u8],
    flags: Vec<String>,
    internal_date: i64,
    digest: &[u8],
) -> Result<Option<Uid>, StoreError> {
    import_parts(
        conn,
        mailbox,
        crate::BodyParts::whole(raw),
        flags,
        internal_date,
        digest,
    )
}

/// [`import`] of a body whose end may be in a spool file (issue 19).
pub fn import_parts(
    conn: &Connection,
    mailbox: MailboxId,
    raw: crate::BodyParts<'_>,
    flags: Vec<String>,
    internal_date: i64,
    digest: &[u8],
) -> Result<Option<Uid>, StoreError> {
    let inserted = conn
        .prepare_cached("INSERT OR IGNORE INTO imports (mailbox, digest) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![mailbox.0, digest]))
        .map_err(map_err)?;
    if inserted == 0 {
        return Ok(None);
    }
    append_parts(conn, mailbox, raw, flags, internal_date).map(Some)
}

/// One entry's stored fields.
struct EntryRow {
    body: BodyId,
    size: u64,
    internal_date: i64,
    flags: Vec<String>,
    modseq: u64,
}

fn entry(conn: &Connection, mailbox: MailboxId, uid: Uid) -> Result<Option<EntryRow>, StoreError> {
    conn.prepare_cached(
        "SELECT e.body_id, b.size, e.internal_date, e.flags, e.modseq FROM entries e \
         JOIN bodies b ON b.id = e.body_id WHERE e.mailbox_id = ?1 AND e.uid = ?2",
    )
    .and_then(|mut s| {
        s.query_row(params![mailbox.0, uid.0], |r| {
            Ok(EntryRow {
                body: BodyId(r.get(0)?),
                size: r.get::<_, i64>(1)? as u64,
                internal_date: r.get(2)?,
                flags: flags_from_text(&r.get::<_, String>(3)?),
                modseq: r.get::<_, i64>(4)?.max(0) as u64,
            })
        })
        .optional()
    })
    .map_err(map_err)
}

/// Sorted, deduplicated UIDs: every loop below is bounded by the input.
fn sorted_uids(mut uids: Vec<Uid>) -> Vec<Uid> {
    uids.sort_unstable();
    uids.dedup();
    uids
}

pub fn set_flags(
    conn: &Connection,
    mailbox: MailboxId,
    uids: Vec<Uid>,
    op: FlagOp,
    flags: Vec<String>,
) -> Result<Vec<MessageMeta>, StoreError> {
    set_flags_if(conn, mailbox, uids, op, flags, None).map(|r| r.changed)
}

/// STORE, with RFC 7162 3.1.3's UNCHANGEDSINCE when `unchanged_since` is
/// given: checked per entry in the same transaction as the write.
pub fn set_flags_if(
    conn: &Connection,
    mailbox: MailboxId,
    uids: Vec<Uid>,
    op: FlagOp,
    flags: Vec<String>,
    unchanged_since: Option<u64>,
) -> Result<ConditionalFlags, StoreError> {
    let account = mailbox_account(conn, mailbox)?;
    let given = normalize_flags(flags)?;
    let now = now();
    let mut changed = Vec::new();
    let mut modified = Vec::new();
    for uid in sorted_uids(uids) {
        let Some(row) = entry(conn, mailbox, uid)? else {
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
        let modseq = bump_modseq(conn, mailbox)?;
        conn.prepare_cached(
            "UPDATE entries SET flags = ?3, modseq = ?4 WHERE mailbox_id = ?1 AND uid = ?2",
        )
        .and_then(|mut s| {
            s.execute(params![
                mailbox.0,
                uid.0,
                flags_to_text(&new_flags),
                modseq as i64
            ])
        })
        .map_err(map_err)?;
        record(
            conn,
            &account,
            Some(mailbox),
            "flags",
            Some(uid),
            Some(modseq),
            now,
        )?;
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
/// `bytes` in `messages` more would pass `quota` (RFC 9208 5.3). Run in
/// the writer's transaction: no other write comes between it and the
/// caller's insert.
fn check_quota(
    conn: &Connection,
    account: &str,
    quota: Quota,
    bytes: u64,
    messages: u64,
) -> Result<(), StoreError> {
    if quota.unlimited() {
        return Ok(());
    }
    let usage = crate::read::usage(conn, account)?;
    if quota.admits(usage, bytes, messages) {
        Ok(())
    } else {
        Err(StoreError::QuotaExceeded)
    }
}

/// APPEND within `quota`, checked in the same transaction.
pub fn append_within(
    conn: &Connection,
    mailbox: MailboxId,
    raw: &[u8],
    flags: Vec<String>,
    internal_date: i64,
    quota: Quota,
) -> Result<Uid, StoreError> {
    append_parts_within(
        conn,
        mailbox,
        crate::BodyParts::whole(raw),
        flags,
        internal_date,
        quota,
    )
}

/// [`append_within`] of a body whose end may be in a spool file.
pub fn append_parts_within(
    conn: &Connection,
    mailbox: MailboxId,
    parts: crate::BodyParts<'_>,
    flags: Vec<String>,
    internal_date: i64,
    quota: Quota,
) -> Result<Uid, StoreError> {
    let account = mailbox_account(conn, mailbox)?;
    check_quota(conn, &account, quota, parts.len(), 1)?;
    append_parts(conn, mailbox, parts, flags, internal_date)
}

/// MULTIAPPEND within `quota`: the whole set checked, then appended, in
/// the caller's one writer job (its savepoint undoes them all on an error).
pub fn append_many_within(
    conn: &Connection,
    mailbox: MailboxId,
    messages: Vec<crate::NewMessage>,
    quota: Quota,
) -> Result<Vec<Uid>, StoreError> {
    let account = mailbox_account(conn, mailbox)?;
    let bytes = messages
        .iter()
        .fold(0u64, |n, m| n.saturating_add(m.raw.len() as u64));
    check_quota(conn, &account, quota, bytes, messages.len() as u64)?;
    messages
        .into_iter()
        .map(|m| append(conn, mailbox, &m.raw, m.flags, m.internal_date))
        .collect()
}

/// COPY within the target account's `quota`, checked in the same
/// transaction over the entries that exist.
pub fn copy_within(
    conn: &Connection,
    from: MailboxId,
    uids: Vec<Uid>,
    to: MailboxId,
    quota: Quota,
) -> Result<Vec<(Uid, Uid)>, StoreError> {
    let uids = sorted_uids(uids);
    if !quota.unlimited() {
        let account = mailbox_account(conn, to)?;
        let (mut bytes, mut messages) = (0u64, 0u64);
        for &uid in &uids {
            if let Some(row) = entry(conn, from, uid)? {
                bytes = bytes.saturating_add(row.size);
                messages += 1;
            }
        }
        check_quota(conn, &account, quota, bytes, messages)?;
    }
    copy(conn, from, uids, to)
}

pub fn expunge(
    conn: &Connection,
    mailbox: MailboxId,
    uids: Vec<Uid>,
) -> Result<Vec<Uid>, StoreError> {
    let account = mailbox_account(conn, mailbox)?;
    let now = now();
    let mut removed = Vec::new();
    for uid in sorted_uids(uids) {
        // The body reference trigger frees the body with its last entry.
        let n = conn
            .prepare_cached("DELETE FROM entries WHERE mailbox_id = ?1 AND uid = ?2")
            .and_then(|mut s| s.execute(params![mailbox.0, uid.0]))
            .map_err(map_err)?;
        if n == 0 {
            continue;
        }
        let modseq = bump_modseq(conn, mailbox)?;
        record_expunge(conn, mailbox, uid, modseq)?;
        record(
            conn,
            &account,
            Some(mailbox),
            "expunge",
            Some(uid),
            Some(modseq),
            now,
        )?;
        removed.push(uid);
    }
    Ok(removed)
}

pub fn copy(
    conn: &Connection,
    from: MailboxId,
    uids: Vec<Uid>,
    to: MailboxId,
) -> Result<Vec<(Uid, Uid)>, StoreError> {
    mailbox_account(conn, from)?;
    mailbox_account(conn, to)?;
    let now = now();
    let mut pairs = Vec::new();
    for uid in sorted_uids(uids) {
        let Some(row) = entry(conn, from, uid)? else {
            continue;
        };
        let (account, new_uid, modseq) = alloc_uid(conn, to)?;
        insert_entry(
            conn,
            to,
            new_uid,
            row.body,
            &flags_to_text(&row.flags),
            row.internal_date,
            modseq,
        )?;
        record(
            conn,
            &account,
            Some(to),
            "append",
            Some(new_uid),
            Some(modseq),
            now,
        )?;
        pairs.push((uid, new_uid));
    }
    Ok(pairs)
}

/// MOVE (RFC 6851): COPY then EXPUNGE of the copied sources, in the
/// caller's one transaction (the writer's job savepoint), so a crash or an
/// error part-way leaves every message exactly where it was.
///
/// The copies come first: the reference count trigger would otherwise free
/// a body whose only entry is moving.
pub fn move_messages(
    conn: &Connection,
    from: MailboxId,
    uids: Vec<Uid>,
    to: MailboxId,
) -> Result<Vec<(Uid, Uid)>, StoreError> {
    let pairs = copy(conn, from, uids, to)?;
    expunge(conn, from, pairs.iter().map(|&(src, _)| src).collect())?;
    Ok(pairs)
}
