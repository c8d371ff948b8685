//! Many deliveries in one transaction, step by step for all of them at
//! once: group commit's fast path (batch.rs). The outcome is that of
//! [`ops::deliver_spooled`] for each delivery in turn; what differs is the
//! number of round trips. Run one delivery after another, a batch costs
//! three round trips per delivery (each a wake-up of this process and of
//! the PostgreSQL backend, which on a loaded machine is most of the cost);
//! here it costs three for the whole batch:
//!
//! 1. every body, every account (created if missing), and the threads of
//!    every Message-ID the batch mentions, per account;
//! 2. UIDs and mod-sequences: one `UPDATE` per mailbox reached, moving
//!    its counters by the number of deliveries to it, handed out in
//!    delivery order (step 1 also looked up which target mailboxes exist:
//!    a missing folder means INBOX, RFC 5228 2.10.2);
//! 3. every entry and every thread row in one statement each, each
//!    account's change rows in one statement (in mailbox and UID order, so
//!    the feed keeps rule 4), the queue rows, and the batch's NOTIFY.
//!
//! Threads are chosen in Rust, in delivery order, from what the database
//! had and what earlier deliveries of the batch gave, so a reply in the
//! same batch as its parent joins its thread as it would one batch later.
//!
//! The caller holds every local account's lock (batch.rs takes them all
//! first); any error fails the whole call, and the batch then runs again
//! one delivery per savepoint, which says which one failed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::future::{try_join_all, try_join4};

use store::threads::thread_refs;
use store::{BodyParts, Delivered, Delivery, MailboxId, SPECIAL_MAILBOXES, StoreError, Tails, Uid};

use crate::map_err;
use crate::ops::{self, Tx, uid_of};
use crate::threads;

/// One delivery of a batch; `tails` end its copies (issue 19).
pub struct Item<'a> {
    pub delivery: &'a Delivery,
    pub tails: Tails<'a>,
}

/// A planned delivery with what the steps found for it.
struct Planned<'a> {
    delivery: &'a Delivery,
    plan: ops::Plan<'a>,
    tails: Tails<'a>,
    /// Its own Message-ID and the ids it refers to (threads).
    refs: (Option<String>, Vec<String>),
}

pub async fn deliver_many(tx: &Tx<'_>, items: &[Item<'_>]) -> Result<Vec<Delivered>, StoreError> {
    let now = store::rules::now();
    let mut planned = Vec::with_capacity(items.len());
    for item in items {
        let plan = ops::plan(item.delivery)?;
        let refs = match plan.raw {
            Some(raw) if !plan.targets.is_empty() => thread_refs(raw),
            _ => (None, Vec::new()),
        };
        planned.push(Planned {
            delivery: item.delivery,
            plan,
            tails: item.tails,
            refs,
        });
    }
    // Each account's ids to look up, across the batch.
    let mut ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for p in &planned {
        for (account, _, _) in &p.plan.targets {
            let set = ids.entry(account.as_str()).or_default();
            set.extend(p.refs.0.iter().chain(p.refs.1.iter()).map(String::as_str));
        }
    }

    // Step 1: bodies, accounts, known threads.
    let local_bodies = try_join_all(planned.iter().map(|p| async move {
        match p.plan.raw {
            Some(raw) => {
                let parts = BodyParts {
                    head: raw,
                    tail: p.tails.local,
                };
                Ok::<_, StoreError>(Some(ops::insert_body_parts(tx, parts).await?))
            }
            None => Ok(None),
        }
    }));
    let out_bodies = try_join_all(planned.iter().map(|p| async move {
        let Some(out) = p.plan.outbound else {
            return Ok::<_, StoreError>(None);
        };
        let parts = BodyParts {
            head: &out.raw,
            tail: p.tails.relayed,
        };
        let same = p.plan.raw.is_some_and(|raw| {
            BodyParts {
                head: raw,
                tail: p.tails.local,
            }
            .same_as(&parts)
        });
        if same {
            // The local copy's body, known after this step.
            return Ok(None);
        }
        Ok(Some(ops::insert_body_parts(tx, parts).await?))
    }));
    let creates = try_join_all(
        ids.keys()
            .map(|account| ops::create_account_if_missing(tx, account)),
    );
    let known = try_join_all(ids.iter().map(|(account, set)| async move {
        let list: Vec<&str> = set.iter().copied().collect();
        Ok::<_, StoreError>((*account, threads::known(tx, account, &list).await?))
    }));
    let pairs: BTreeSet<(&str, &str)> = planned
        .iter()
        .flat_map(|p| p.plan.targets.iter())
        .map(|(a, m, _)| (a.as_str(), m.as_str()))
        .collect();
    let existing = existing_mailboxes(tx, &pairs);
    let ((local_bodies, out_bodies, created, known), existing) = futures_util::future::try_join(
        try_join4(local_bodies, out_bodies, creates, known),
        existing,
    )
    .await?;
    let known: HashMap<&str, HashMap<String, i64>> = known.into_iter().collect();
    let created: BTreeSet<&str> = ids
        .keys()
        .zip(created)
        .filter_map(|(a, made)| made.then_some(*a))
        .collect();
    // The mailbox each target reaches. RFC 5228 2.10.2: a folder that is
    // not there means INBOX. An account made in step 1 has the special
    // mailboxes (its rows were inserted after the look-up was sent).
    let there = |account: &str, mailbox: &str| -> bool {
        existing.contains(&(account.to_string(), mailbox.to_string()))
            || (created.contains(account)
                && SPECIAL_MAILBOXES.iter().any(|(name, _)| *name == mailbox))
    };

    // Step 2: UIDs and mod-sequences, per mailbox reached, handed out in
    // delivery order.
    let mut wanted: BTreeMap<(&str, &str), Vec<(usize, usize)>> = BTreeMap::new();
    for (i, p) in planned.iter().enumerate() {
        for (j, (account, mailbox, _)) in p.plan.targets.iter().enumerate() {
            let reached = if there(account, mailbox) {
                mailbox.as_str()
            } else {
                "INBOX"
            };
            wanted
                .entry((account.as_str(), reached))
                .or_default()
                .push((i, j));
        }
    }
    let mut got: HashMap<(usize, usize), (MailboxId, Uid, u64)> = HashMap::new();
    let ranges = try_join_all(
        wanted
            .iter()
            .map(|(&(account, mailbox), who)| alloc(tx, account, mailbox, who.len())),
    )
    .await?;
    for ((&(account, mailbox), who), range) in wanted.iter().zip(ranges) {
        // Gone although the account is locked: the batch runs again one
        // delivery at a time, which answers exactly.
        let range = range.ok_or_else(|| StoreError::NotFound(format!("{mailbox} of {account}")))?;
        assign(&mut got, who, range)?;
    }

    // Threads, in delivery order (as threads::assign one after another).
    let mut given: HashMap<(&str, &str), i64> = HashMap::new();
    let mut thread_rows: Vec<(&str, i64, Option<&str>, i64)> = Vec::new();
    for (p, body) in planned.iter().zip(&local_bodies) {
        let Some(body) = body else { continue };
        let mut seen: Vec<&str> = Vec::new();
        for (account, _, _) in &p.plan.targets {
            let account = account.as_str();
            if seen.contains(&account) {
                continue;
            }
            seen.push(account);
            let db = known.get(account);
            let mut thread = None;
            for id in p.refs.0.iter().chain(p.refs.1.iter()) {
                let a = db.and_then(|m| m.get(id.as_str())).copied();
                let b = given.get(&(account, id.as_str())).copied();
                if let Some(t) = a.into_iter().chain(b).min() {
                    thread = Some(t);
                    break;
                }
            }
            let thread = thread.unwrap_or(body.0);
            let own = p.refs.0.as_deref();
            if let Some(own) = own {
                let e = given.entry((account, own)).or_insert(thread);
                *e = (*e).min(thread);
            }
            thread_rows.push((account, body.0, own, thread));
        }
    }

    // Step 3: entries, threads, change rows, queue rows.
    let mut entry_rows = EntryRows::default();
    let mut changes: BTreeMap<&str, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for (i, (p, body)) in planned.iter().zip(&local_bodies).enumerate() {
        let Some(body) = body else { continue };
        for (j, (account, _, flags)) in p.plan.targets.iter().enumerate() {
            let &(mailbox, uid, modseq) = got
                .get(&(i, j))
                .ok_or_else(|| StoreError::Io("target without a UID".into()))?;
            let modseq = i64::try_from(modseq).unwrap_or(i64::MAX);
            entry_rows.mailbox.push(mailbox.0);
            entry_rows.uid.push(i64::from(uid.0));
            entry_rows.body.push(body.0);
            entry_rows.flags.push(flags);
            entry_rows.date.push(p.delivery.internal_date);
            entry_rows.modseq.push(modseq);
            changes.entry(account.as_str()).or_default().push((
                mailbox.0,
                i64::from(uid.0),
                modseq,
            ));
        }
    }
    let outbound = planned.iter().filter(|p| p.plan.outbound.is_some()).count();
    // The batch's one NOTIFY goes with this step (it is delivered at
    // COMMIT): the accounts whose change rows this step writes, and those
    // made in step 1.
    let mut touched: BTreeSet<String> = changes.keys().map(|a| a.to_string()).collect();
    touched.extend(created.iter().map(|a| a.to_string()));
    if outbound > 0 {
        touched.insert(ops::QUEUE_ACCOUNT.to_string());
    }
    let touched: Vec<String> = touched.into_iter().collect();
    let entries = insert_entries(tx, &entry_rows);
    let threads = threads::insert_many(tx, &thread_rows);
    let accounts = try_join_all(changes.iter_mut().map(|(account, rows)| {
        rows.sort_unstable();
        let rows: Vec<_> = rows
            .iter()
            .map(|&(m, u, s)| (Some(m), "append", Some(u), Some(s)))
            .collect();
        async move { tx.record_many(account, &rows).await }
    }));
    // Wakes the outbound workers of every node (issue 12). The queue's ''
    // is taken by this statement, after every account (held since the
    // batch began): no account is locked after it.
    let queued = async move {
        let rows = vec![(None, ops::QUEUE_KIND, None, None); outbound];
        tx.record_many(ops::QUEUE_ACCOUNT, &rows).await
    };
    let records = futures_util::future::try_join(accounts, queued);
    let queue = try_join_all(
        planned
            .iter()
            .zip(local_bodies.iter().zip(&out_bodies))
            .map(|(p, (local, out_body))| async move {
                let Some(out) = p.plan.outbound else {
                    return Ok(Vec::new());
                };
                let body = out_body
                    .or(*local)
                    .ok_or_else(|| StoreError::Io("remote copy without a body".into()))?;
                ops::queue_rows(tx, out, body, now).await
            }),
    );
    let notify = crate::feed::notify(tx, &touched);
    let ((_, _, _, queue_ids), ()) =
        futures_util::future::try_join(try_join4(entries, threads, records, queue), notify).await?;

    let mut done = Vec::with_capacity(planned.len());
    for (i, (p, queue_ids)) in planned.iter().zip(queue_ids).enumerate() {
        let mut entries = Vec::with_capacity(p.plan.targets.len());
        if p.plan.raw.is_some() {
            for (j, (account, _, _)) in p.plan.targets.iter().enumerate() {
                let &(mailbox, uid, _) = got
                    .get(&(i, j))
                    .ok_or_else(|| StoreError::Io("target without a UID".into()))?;
                entries.push((account.clone(), mailbox, uid));
            }
        }
        done.push(Delivered { entries, queue_ids });
    }
    Ok(done)
}

/// Which of the `(account, name)` pairs are mailboxes, in one statement.
async fn existing_mailboxes(
    tx: &Tx<'_>,
    pairs: &BTreeSet<(&str, &str)>,
) -> Result<BTreeSet<(String, String)>, StoreError> {
    if pairs.is_empty() {
        return Ok(BTreeSet::new());
    }
    let accounts: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let names: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let rows = tx
        .rows(
            "SELECT account, name FROM mailboxes WHERE (account, name) IN \
             (SELECT * FROM unnest($1::text[], $2::text[]))",
            &[&accounts, &names],
        )
        .await?;
    let mut found = BTreeSet::new();
    for r in &rows {
        found.insert((
            r.try_get::<_, String>(0).map_err(map_err)?,
            r.try_get::<_, String>(1).map_err(map_err)?,
        ));
    }
    Ok(found)
}

/// `n` UIDs and mod-sequences of one mailbox: its id, the first UID and
/// the first mod-sequence (each following one is one more); None when
/// there is no such mailbox.
async fn alloc(
    tx: &Tx<'_>,
    account: &str,
    mailbox: &str,
    n: usize,
) -> Result<Option<(MailboxId, i64, i64, usize)>, StoreError> {
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    let Some(row) = tx
        .opt(
            "UPDATE mailboxes SET uidnext = uidnext + $3, highestmodseq = highestmodseq + $3 \
             WHERE account = $1 AND name = $2 RETURNING id, uidnext - $3, highestmodseq - $3 + 1",
            &[&account, &mailbox, &count],
        )
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0).map_err(map_err)?;
    let uid: i64 = row.try_get(1).map_err(map_err)?;
    let modseq: i64 = row.try_get(2).map_err(map_err)?;
    Ok(Some((MailboxId(id), uid, modseq, n)))
}

/// Hands the range of [`alloc`] to the targets `who`, in order.
fn assign(
    got: &mut HashMap<(usize, usize), (MailboxId, Uid, u64)>,
    who: &[(usize, usize)],
    (mailbox, uid, modseq, _): (MailboxId, i64, i64, usize),
) -> Result<(), StoreError> {
    for (k, &target) in who.iter().enumerate() {
        let k = i64::try_from(k).unwrap_or(i64::MAX);
        let uid = uid.saturating_add(k);
        // uidnext itself must still fit in 32 bits (RFC 9051: nz-number).
        if uid >= i64::from(u32::MAX) {
            return Err(StoreError::Invalid("mailbox UID space exhausted".into()));
        }
        let modseq = modseq.saturating_add(k).max(0) as u64;
        got.insert(target, (mailbox, uid_of(uid)?, modseq));
    }
    Ok(())
}

/// The batch's entries, column by column (arrays for `unnest`).
#[derive(Default)]
struct EntryRows<'f> {
    mailbox: Vec<i64>,
    uid: Vec<i64>,
    body: Vec<i64>,
    flags: Vec<&'f str>,
    date: Vec<i64>,
    modseq: Vec<i64>,
}

/// Every entry of the batch in one statement.
async fn insert_entries(tx: &Tx<'_>, rows: &EntryRows<'_>) -> Result<(), StoreError> {
    if rows.mailbox.is_empty() {
        return Ok(());
    }
    let n = tx
        .exec(
            // RFC 8514: the save date is when the entry is made (the
            // database's clock, as every node shares it).
            "INSERT INTO entries (mailbox_id, uid, body_id, flags, internal_date, modseq, \
             save_date) SELECT m, u, b, f, d, s, EXTRACT(EPOCH FROM now())::BIGINT \
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], \
             $6::bigint[]) AS t(m, u, b, f, d, s)",
            &[
                &rows.mailbox,
                &rows.uid,
                &rows.body,
                &rows.flags,
                &rows.date,
                &rows.modseq,
            ],
        )
        .await?;
    if n != rows.mailbox.len() as u64 {
        return Err(StoreError::Io("entries not inserted".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_handed_out_in_order_and_stops_at_the_uid_limit() {
        let mut got = HashMap::new();
        let who = [(0, 0), (1, 0), (2, 1)];
        assign(&mut got, &who, (MailboxId(7), 10, 40, 3)).expect("assign");
        assert_eq!(got.get(&(0, 0)), Some(&(MailboxId(7), Uid(10), 40)));
        assert_eq!(got.get(&(2, 1)), Some(&(MailboxId(7), Uid(12), 42)));
        let top = i64::from(u32::MAX) - 1;
        let err = assign(&mut got, &who, (MailboxId(7), top, 1, 3));
        assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    }
}
