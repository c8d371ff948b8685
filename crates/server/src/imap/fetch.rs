//! FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9; RFC 3516 BINARY).
//!
//! The body is read from the store only when an item needs it, and parsed
//! (once per message) only for sections and the like. ENVELOPE and
//! BODY[STRUCTURE] come from the store's per-body cache (issue 18): a
//! body's first FETCH of them parses it and stores them in proto-imap's
//! stored form (`mime::cache`), later ones read only that; each session
//! still writes them in its own mode (UTF8=ACCEPT, IMAP4rev2).
//! Fetching a section without PEEK sets \Seen first (durably) and the
//! response then carries the new FLAGS. Responses stream out as they are
//! made. A message expunged by another session but not yet reported gets
//! no data; the others get theirs and the command ends `OK
//! [EXPUNGEISSUED]` (RFC 5530 3, RFC 2180 4.1.3), as Dovecot does: the
//! data that was sent is good, and the code tells the client why some
//! is missing.

use std::sync::Arc;

use proto_imap::mime::cache::Cached;
use proto_imap::mime::{self, BinaryError, Part};
use proto_imap::{Code, Data, FetchAtt, FetchModifiers, FetchValue, SeqSet};
use store::{BodyId, FlagOp, MessageMeta, Store, Uid};

use super::select::no_mailbox;
use super::selected::{find_meta, meta_chunks};
use super::session::{CmdResult, ImapError, Out, Session, done};
use super::view::Msg;
use super::{fetch_part, fetch_stream};

fn partial_name(base: String, partial: Option<(u32, u32)>) -> String {
    match partial {
        Some((start, _)) => format!("{base}<{start}>"),
        None => base,
    }
}

fn apply_partial(data: Vec<u8>, partial: Option<(u32, u32)>) -> Vec<u8> {
    match partial {
        None => data,
        Some((start, len)) => {
            let start = (start as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            data.get(start..end).unwrap_or_default().to_vec()
        }
    }
}

impl Session {
    pub(super) async fn fetch(
        &mut self,
        uid_cmd: bool,
        set: &SeqSet,
        atts: &[FetchAtt],
        modifiers: FetchModifiers,
        out: &mut Out<'_>,
    ) -> CmdResult {
        // RFC 7162 3.2.6: VANISHED only once QRESYNC is enabled.
        if modifiers.vanished && !self.qresync {
            return Err(ImapError::Bad("ENABLE QRESYNC first".into()));
        }
        let rev2 = self.rev2;
        // RFC 7162 3.2.4: with QRESYNC every FETCH response has the UID.
        let with_uid = uid_cmd || self.qresync;
        let account = self.account()?.to_string();
        let ctx = self.ctx.clone();
        let sel = self.selected_mut().ok_or_else(no_mailbox)?;
        let indices = sel.resolve(set, uid_cmd)?;
        let mut atts: Vec<FetchAtt> = atts.to_vec();
        if with_uid && !atts.contains(&FetchAtt::Uid) {
            atts.insert(0, FetchAtt::Uid);
        }
        // RFC 7162 3.1.4.1: CHANGEDSINCE implies MODSEQ.
        if modifiers.changed_since.is_some() && !atts.contains(&FetchAtt::ModSeq) {
            atts.push(FetchAtt::ModSeq);
        }
        if let (true, Some(since)) = (modifiers.vanished, modifiers.changed_since) {
            sel.vanished_earlier(&ctx, since, Some(set), out).await?;
        }
        // \Seen first, in one durable write (RFC 9051 6.4.5).
        let sets_seen = !sel.read_only && atts.iter().any(FetchAtt::sets_seen);
        let mut seen_now: Vec<Uid> = Vec::new();
        if sets_seen {
            let unseen: Vec<Uid> = indices
                .iter()
                .filter_map(|&i| sel.get(i))
                .filter(|m| !m.expunged() && !sel.has_flag(m, "\\Seen"))
                .map(|m| m.uid())
                .collect();
            if !unseen.is_empty() {
                let changed = ctx
                    .store
                    .set_flags(sel.id(), unseen, FlagOp::Add, vec!["\\Seen".into()])
                    .await?;
                sel.record_flags(&changed, out);
                seen_now.extend(changed.iter().map(|c| c.uid));
                seen_now.sort_unstable();
            }
        }
        // ENVELOPE and BODY[STRUCTURE] come from the cache when it has
        // them; anything else that needs the body reads it.
        let needs_structure = atts.iter().any(is_structural);
        let needs_raw = atts.iter().any(|a| a.needs_body() && !is_structural(a));
        let needs_body = needs_raw || needs_structure;
        // The view keeps only UIDs and flags: the rest is re-read, a
        // bounded run of the set at a time.
        let needs_meta = needs_body
            || atts.iter().any(|a| {
                matches!(
                    a,
                    FetchAtt::InternalDate
                        | FetchAtt::Rfc822Size
                        | FetchAtt::ModSeq
                        | FetchAtt::SaveDate
                        | FetchAtt::EmailId
                        | FetchAtt::ThreadId
                )
            });
        let needs_save_dates = atts.contains(&FetchAtt::SaveDate);
        let wants_thread = atts.contains(&FetchAtt::ThreadId);
        let mut expunge_issued = false;
        // The previous batch's cache write: at most one in flight per
        // FETCH, overlapping the next batch.
        let mut caching: Option<tokio::task::JoinHandle<()>> = None;
        for chunk in meta_chunks(&indices) {
            let metas = if needs_meta {
                sel.load_meta(&ctx, chunk).await?
            } else {
                Vec::new()
            };
            // RFC 8514: one read for the run's UID range.
            let uids = chunk.iter().filter_map(|&i| sel.get(i)).map(|m| m.uid());
            let save_dates = match (needs_save_dates, uids.clone().min(), uids.max()) {
                (true, Some(first), Some(last)) => {
                    ctx.store.save_dates(sel.id(), first, last).await?
                }
                _ => Vec::new(),
            };
            // The messages of this run that are still there, with their
            // metadata (RFC 2180 4.1.2 for the rest).
            let mut rows: Vec<(usize, Msg, Option<&MessageMeta>)> = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let Some(&msg) = sel.get(i) else { continue };
                if msg.expunged() {
                    expunge_issued = true;
                    continue;
                }
                match (needs_meta, find_meta(&metas, msg.uid())) {
                    // CHANGEDSINCE: only what changed after it.
                    (true, Some(m)) if modifiers.changed_since.is_some_and(|n| m.modseq <= n) => {}
                    (false, _) => rows.push((i, msg, None)),
                    (true, Some(m)) => rows.push((i, msg, Some(m))),
                    // Expunged elsewhere since the last sync.
                    (true, None) => expunge_issued = true,
                }
            }
            // RFC 8474 5.2: the threads of this run, in one read.
            let threads = if wants_thread {
                let bodies: Vec<store::BodyId> = rows
                    .iter()
                    .filter_map(|(_, _, m)| m.map(|m| m.body))
                    .collect();
                thread_map(&ctx, &account, bodies).await?
            } else {
                std::collections::HashMap::new()
            };
            // Bodies come in batches of bounded size: one store read each.
            // A big message asked for whole is streamed instead (issue 19).
            let stream_at = fetch_stream::plan(&atts);
            let big = |m: Option<&MessageMeta>| {
                stream_at.is_some() && m.is_some_and(|m| m.size > fetch_stream::STREAM_ABOVE)
            };
            // A big message whose sections the stored part offsets answer
            // is read by range instead (issue 18).
            let by_parts = fetch_part::answerable(&atts);
            let parts_big = |m: Option<&MessageMeta>| {
                by_parts && m.is_some_and(|m| m.size > fetch_part::PARTS_ABOVE)
            };
            for batch in body_batches(&rows, needs_body) {
                let ids: Vec<BodyId> = batch
                    .iter()
                    .filter_map(|(_, _, m)| m.map(|m| m.body))
                    .collect();
                let mut cached = if needs_structure || batch.iter().any(|(_, _, m)| parts_big(*m)) {
                    read_structures(&*ctx.store, &ids).await?
                } else {
                    Vec::new()
                };
                // Read the bodies that some item needs: all of them, or
                // only those the cache does not have; a big one asked for
                // whole is streamed instead (issue 19), not read here.
                // A big message not cached yet is scanned a chunk at a
                // time, never read whole (issue 19); not when it is only
                // streamed whole, which needs no structure.
                let mut fresh: Vec<(BodyId, Vec<u8>)> = Vec::new();
                for (k, (_, _, m)) in batch.iter().enumerate() {
                    let scan = needs_structure || (parts_big(*m) && stream_at.is_none());
                    if let (true, Some(m), Some(slot @ None)) = (scan, m, cached.get_mut(k))
                        && m.size > fetch_part::PARTS_ABOVE
                        && let Some(c) =
                            fetch_part::scan(ctx.store.as_ref(), m.body, m.size).await?
                    {
                        fresh.push((m.body, mime::cache::encode(&c)));
                        *slot = Some(c);
                    }
                }
                let use_parts: Vec<bool> = batch
                    .iter()
                    .enumerate()
                    .map(|(k, (_, _, m))| {
                        parts_big(*m)
                            && cached
                                .get(k)
                                .is_some_and(|c| c.as_ref().is_some_and(|c| c.map.is_some()))
                    })
                    .collect();
                let wanted: Vec<bool> = batch
                    .iter()
                    .enumerate()
                    .map(|(k, (_, _, m))| {
                        !use_parts.get(k).copied().unwrap_or(false)
                            && !big(*m)
                            && (needs_raw || cached.get(k).is_none_or(Option::is_none))
                    })
                    .collect();
                let mut raws = if needs_body {
                    let read = ids
                        .iter()
                        .zip(&wanted)
                        .filter(|(_, w)| **w)
                        .map(|(id, _)| *id)
                        .collect::<Vec<_>>();
                    if read.is_empty() {
                        Vec::new()
                    } else {
                        ctx.store.read_bodies(read).await?
                    }
                    .into_iter()
                } else {
                    Vec::new().into_iter()
                };
                for (k, (i, msg, meta)) in batch.iter().enumerate() {
                    // Read by range from the part offsets, unless the
                    // plan says the whole message is needed after all.
                    let mut whole_after_all = false;
                    if use_parts.get(k).copied().unwrap_or(false)
                        && let (Some(m), Some(Some(c))) = (meta, cached.get(k))
                        && let Some(map) = &c.map
                    {
                        let part_atts: Vec<&FetchAtt> =
                            atts.iter().filter(|a| fetch_part::by_range(a)).collect();
                        let store = ctx.store.as_ref();
                        match fetch_part::plan_items(store, m.body, map, &part_atts).await? {
                            Ok(planned) => {
                                let flags = sel.flags(msg, rev2);
                                let item = Item {
                                    uid: msg.uid(),
                                    flags: &flags,
                                    meta: Some(m),
                                    raw: None,
                                    part: None,
                                    structure: Some(c),
                                    save_date: super::search::save_date_of(
                                        &save_dates,
                                        msg.uid(),
                                        Some(m),
                                    ),
                                    thread: threads.get(&m.body).copied(),
                                };
                                let mut items = Vec::with_capacity(atts.len() + 1);
                                for att in atts.iter().filter(|a| !fetch_part::by_range(a)) {
                                    items.push(fetch_item(att, &item)?);
                                }
                                if seen_now.binary_search(&msg.uid()).is_ok()
                                    && !atts.contains(&FetchAtt::Flags)
                                {
                                    items.push(FetchValue::Flags(flags.clone()));
                                }
                                let seq = *i as u32 + 1;
                                fetch_part::write(out, store, seq, items, planned, m.body).await?;
                                continue;
                            }
                            Err(fetch_part::Unplanned::Gone) => {
                                expunge_issued = true;
                                continue;
                            }
                            Err(fetch_part::Unplanned::Whole) => whole_after_all = true,
                        }
                    }
                    let big_one = meta.filter(|m| needs_body && big(Some(m)));
                    // The octets shown are not the stored ones (parts
                    // holding NUL): then the cache keeps no offsets.
                    let mut reencoded = false;
                    let read = needs_body && wanted.get(k).copied().unwrap_or(false);
                    let raw = if read || big_one.is_some() || whole_after_all {
                        let got = match (stream_at, big_one) {
                            (Some(at), Some(m)) => {
                                if !fetch_stream::has_nul(ctx.store.as_ref(), m.body, m.size)
                                    .await?
                                {
                                    let flags = sel.flags(msg, rev2);
                                    let item = Item {
                                        uid: msg.uid(),
                                        flags: &flags,
                                        meta: Some(m),
                                        raw: None,
                                        part: None,
                                        structure: None,
                                        save_date: super::search::save_date_of(
                                            &save_dates,
                                            msg.uid(),
                                            Some(m),
                                        ),
                                        thread: threads.get(&m.body).copied(),
                                    };
                                    let mut items = Vec::with_capacity(atts.len() + 1);
                                    for (k, att) in atts.iter().enumerate() {
                                        if k != at {
                                            items.push(fetch_item(att, &item)?);
                                        }
                                    }
                                    if seen_now.binary_search(&msg.uid()).is_ok()
                                        && !atts.contains(&FetchAtt::Flags)
                                    {
                                        items.push(FetchValue::Flags(flags.clone()));
                                    }
                                    let att = atts.get(at).ok_or(ImapError::Gone)?;
                                    let seq = *i as u32 + 1;
                                    let store = ctx.store.as_ref();
                                    fetch_stream::write(
                                        out, store, seq, items, att, m.body, m.size,
                                    )
                                    .await?;
                                    continue;
                                }
                                match ctx.store.read_body(m.body).await {
                                    Ok(r) => Some(r),
                                    Err(store::StoreError::NotFound(_)) => None,
                                    Err(e) => return Err(e.into()),
                                }
                            }
                            _ if whole_after_all => match meta {
                                Some(m) => match ctx.store.read_body(m.body).await {
                                    Ok(r) => Some(r),
                                    Err(store::StoreError::NotFound(_)) => None,
                                    Err(e) => return Err(e.into()),
                                },
                                None => None,
                            },
                            _ => raws.next().flatten(),
                        };
                        match got {
                            // Mail stored with NUL in a part is shown as
                            // APPEND stores it: that part in base64 (RFC
                            // 3516 4.3), never NUL in a literal. Only mail
                            // stored before the server re-encoded at
                            // delivery (issue 19, crate::binary) or with a
                            // part header past MAX_SCAN_HEADER takes this
                            // way: new mail is stored as it is shown.
                            Some(r) => Some(match mime::encode_binary_parts(&r) {
                                Some(shown) => {
                                    reencoded = true;
                                    shown
                                }
                                None => r,
                            }),
                            None => {
                                expunge_issued = true;
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    let part = raw.as_deref().map(Part::parse);
                    let mut structure = cached.get_mut(k).and_then(Option::take);
                    if (needs_structure || parts_big(*meta))
                        && structure.is_none()
                        && let (Some(p), Some(m)) = (&part, meta)
                    {
                        let mut computed = Cached::of_parsed(p);
                        if reencoded {
                            computed.map = None;
                        }
                        fresh.push((m.body, mime::cache::encode(&computed)));
                        structure = Some(computed);
                    }
                    let flags = sel.flags(msg, rev2);
                    let item = Item {
                        uid: msg.uid(),
                        flags: &flags,
                        meta: *meta,
                        raw: raw.as_deref(),
                        part: part.as_ref(),
                        structure: structure.as_ref(),
                        save_date: super::search::save_date_of(&save_dates, msg.uid(), *meta),
                        thread: meta.and_then(|m| threads.get(&m.body).copied()),
                    };
                    let mut items = Vec::with_capacity(atts.len() + 1);
                    for att in &atts {
                        items.push(fetch_item(att, &item)?);
                    }
                    if seen_now.binary_search(&msg.uid()).is_ok()
                        && !atts.contains(&FetchAtt::Flags)
                    {
                        items.push(FetchValue::Flags(flags.clone()));
                    }
                    out.data(Data::Fetch {
                        seq: *i as u32 + 1,
                        items,
                    });
                    out.flush_if_big().await?;
                }
                if !fresh.is_empty() {
                    if let Some(previous) = caching.take() {
                        let _ = previous.await;
                    }
                    caching = Some(cache_structures(Arc::clone(&ctx.store), fresh));
                }
            }
        }
        if expunge_issued {
            return Ok((
                Some(Code::ExpungeIssued),
                "FETCH completed; some messages were expunged by another session".into(),
            ));
        }
        done("FETCH completed")
    }
}

/// The items the per-body cache answers (RFC 9051 7.5.2).
fn is_structural(att: &FetchAtt) -> bool {
    matches!(
        att,
        FetchAtt::Envelope | FetchAtt::Body | FetchAtt::BodyStructure
    )
}

/// The cached ENVELOPE and BODYSTRUCTURE of each body, in order; `None`
/// where there is none or it is of another format (then it is parsed and
/// written again).
async fn read_structures(
    store: &dyn Store,
    ids: &[BodyId],
) -> Result<Vec<Option<Cached>>, ImapError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stored = store.body_meta(ids.to_vec()).await?;
    Ok(stored
        .into_iter()
        .map(|d| d.as_deref().and_then(mime::cache::decode))
        .collect())
}

/// Writes a batch's new cache entries without holding up the FETCH
/// responses: a lost write costs only a parse at the next FETCH (the
/// entry is not data a client was told is stored).
fn cache_structures(
    store: Arc<dyn Store>,
    entries: Vec<(BodyId, Vec<u8>)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = store.set_body_meta(entries).await {
            tracing::debug!(error = %e, "caching FETCH structures failed");
        }
    })
}

/// Most bodies one store read returns for FETCH.
const BODY_BATCH: usize = 64;
/// Most octets of bodies held at once by one FETCH (a batch stops before
/// it would pass this, but always takes at least one message).
const BODY_BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// Splits a run of messages into batches whose bodies are read together:
/// at most BODY_BATCH messages and BODY_BATCH_BYTES octets (by the stored
/// sizes). Without bodies to read, one batch.
pub(super) fn body_batches<'r, 'm>(
    rows: &'r [(usize, Msg, Option<&'m MessageMeta>)],
    needs_body: bool,
) -> Vec<&'r [(usize, Msg, Option<&'m MessageMeta>)]> {
    if !needs_body {
        return vec![rows];
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (k, (_, _, meta)) in rows.iter().enumerate() {
        let size = meta.map_or(0, |m| m.size);
        if k > start && (k - start >= BODY_BATCH || bytes.saturating_add(size) > BODY_BATCH_BYTES) {
            out.push(rows.get(start..k).unwrap_or_default());
            start = k;
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
    }
    if start < rows.len() {
        out.push(rows.get(start..).unwrap_or_default());
    }
    out
}

/// What one message's FETCH items are made from.
struct Item<'a> {
    uid: Uid,
    /// As reported (with \Recent for rev1).
    flags: &'a [String],
    /// Present when an item needs it.
    meta: Option<&'a MessageMeta>,
    raw: Option<&'a [u8]>,
    part: Option<&'a Part<'a>>,
    /// ENVELOPE and BODYSTRUCTURE, when an item needs them.
    structure: Option<&'a Cached>,
    /// RFC 8514, when SAVEDATE is asked for.
    save_date: Option<i64>,
    /// The message's thread (RFC 8474 5.2), when THREADID is asked for.
    thread: Option<u64>,
}

/// RFC 8474 5.1: 1-255 characters of `A-Za-z0-9_-`.
pub(super) fn email_id(body: store::BodyId) -> String {
    format!("E{}", body.0)
}

/// RFC 8474 5.2: a thread's id, `T` and the body number of its first
/// message (never an EMAILID's spelling, so the two cannot be confused).
pub(super) fn thread_id(thread: u64) -> String {
    format!("T{thread}")
}

/// The threads of `bodies` in `account`, by body.
pub(super) async fn thread_map(
    ctx: &super::context::ImapContext,
    account: &str,
    bodies: Vec<store::BodyId>,
) -> Result<std::collections::HashMap<store::BodyId, u64>, ImapError> {
    if bodies.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let threads = ctx
        .store
        .thread_ids(account.to_string(), bodies.clone())
        .await?;
    Ok(bodies.into_iter().zip(threads).collect())
}

fn fetch_item(att: &FetchAtt, it: &Item<'_>) -> Result<FetchValue, ImapError> {
    let body = || {
        it.raw
            .zip(it.part)
            .ok_or_else(|| ImapError::no(Some(Code::ServerBug), "no body"))
    };
    let structure = || {
        it.structure
            .ok_or_else(|| ImapError::no(Some(Code::ServerBug), "no structure"))
    };
    let meta = || {
        it.meta
            .ok_or_else(|| ImapError::no(Some(Code::ServerBug), "no metadata"))
    };
    Ok(match att {
        FetchAtt::Flags => FetchValue::Flags(it.flags.to_vec()),
        FetchAtt::InternalDate => FetchValue::InternalDate(meta()?.internal_date),
        FetchAtt::Rfc822Size => FetchValue::Rfc822Size(meta()?.size),
        FetchAtt::Uid => FetchValue::Uid(it.uid.0),
        // RFC 8474 5.1: the body is shared by COPY and MOVE and never
        // changes, so its id names the message wherever it is.
        FetchAtt::EmailId => FetchValue::EmailId(email_id(meta()?.body)),
        FetchAtt::SaveDate => FetchValue::SaveDate(it.save_date),
        // RFC 8474 5.2: NIL, since threads are not kept (THREAD computes
        // them per command).
        FetchAtt::ThreadId => FetchValue::ThreadId(it.thread.map(thread_id)),
        FetchAtt::ModSeq => FetchValue::ModSeq(meta()?.modseq),
        FetchAtt::Preview { .. } => FetchValue::Preview(mime::preview(body()?.1)),
        FetchAtt::Envelope => FetchValue::Envelope(Box::new(structure()?.envelope.clone())),
        FetchAtt::Body => FetchValue::Body(Box::new(structure()?.structure.clone())),
        FetchAtt::BodyStructure => {
            FetchValue::BodyStructure(Box::new(structure()?.structure.clone()))
        }
        FetchAtt::Rfc822 => FetchValue::Section {
            name: "RFC822".into(),
            data: Some(body()?.0.to_vec()),
        },
        FetchAtt::Rfc822Header => FetchValue::Section {
            name: "RFC822.HEADER".into(),
            data: Some(body()?.1.header.to_vec()),
        },
        FetchAtt::Rfc822Text => FetchValue::Section {
            name: "RFC822.TEXT".into(),
            data: Some(body()?.1.body.to_vec()),
        },
        FetchAtt::Section {
            section, partial, ..
        } => {
            let (raw, part) = body()?;
            let data = mime::section(part, raw, section).map(|d| apply_partial(d, *partial));
            FetchValue::Section {
                name: partial_name(format!("BODY[{}]", section.to_wire()), *partial),
                // A section that does not exist (BODY[5] of a one-part
                // message) is the empty string: RFC 9051 6.4.5 and 7.5.2
                // define no error for it and describe the value only as
                // "a string"; an empty string is also what RFC 9051 6.4.5
                // answers for a partial fetch past the end, and what RFC
                // 3501's author prescribes for meaningless sections
                // (imap-protocol list, 2011-04-15). NIL would break
                // clients that expect a string here.
                data: Some(data.unwrap_or_default()),
            }
        }
        FetchAtt::Binary {
            part: path,
            partial,
            ..
        } => {
            let (raw, part) = body()?;
            let name = partial_name(format!("BINARY[{}]", join(path)), *partial);
            match mime::binary(part, raw, path) {
                Ok(d) => FetchValue::Binary {
                    name,
                    data: Some(apply_partial(d, *partial)),
                },
                Err(BinaryError::UnknownEncoding) => {
                    return Err(ImapError::no(
                        Some(Code::UnknownCte),
                        "unknown content transfer encoding",
                    ));
                }
                Err(BinaryError::NoSuchPart) => FetchValue::Binary { name, data: None },
            }
        }
        FetchAtt::BinarySize { part: path } => {
            let (raw, part) = body()?;
            let name = format!("BINARY.SIZE[{}]", join(path));
            match mime::binary(part, raw, path) {
                Ok(d) => FetchValue::BinarySize {
                    name,
                    size: d.len() as u64,
                },
                Err(BinaryError::UnknownEncoding) => {
                    return Err(ImapError::no(
                        Some(Code::UnknownCte),
                        "unknown content transfer encoding",
                    ));
                }
                Err(BinaryError::NoSuchPart) => FetchValue::BinarySize { name, size: 0 },
            }
        }
    })
}

fn join(path: &[u32]) -> String {
    path.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::{BODY_BATCH, BODY_BATCH_BYTES, body_batches};
    use crate::imap::testkit::{ALICE, BOB, Kit, cmd};
    use crate::imap::view::Msg;
    use std::sync::atomic::Ordering;
    use store::{BodyId, MessageMeta, Uid};

    #[test]
    fn body_batches_bound_count_and_bytes_and_take_at_least_one() {
        let meta = |size| MessageMeta {
            uid: Uid(1),
            body: BodyId(1),
            size,
            internal_date: 0,
            flags: Vec::new(),
            modseq: 1,
        };
        let small = meta(1000);
        let rows: Vec<(usize, Msg, Option<&MessageMeta>)> = (0..150)
            .map(|i| (i, Msg::new(Uid(i as u32 + 1)), Some(&small)))
            .collect();
        let sizes: Vec<usize> = body_batches(&rows, true).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![BODY_BATCH, BODY_BATCH, 150 - 2 * BODY_BATCH]);
        let huge = meta(BODY_BATCH_BYTES + 1);
        let rows: Vec<(usize, Msg, Option<&MessageMeta>)> = (0..3)
            .map(|i| (i, Msg::new(Uid(i as u32 + 1)), Some(&huge)))
            .collect();
        let sizes: Vec<usize> = body_batches(&rows, true).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert_eq!(body_batches(&rows, false).len(), 1);
    }

    const MULTIPART: &str = "From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
        first\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\n";

    #[tokio::test]
    async fn preview_is_the_first_text_and_nil_without_one() {
        // RFC 8970 4; the message is not marked \Seen.
        let kit = Kit::new();
        kit.deliver(ALICE, MULTIPART).await;
        kit.deliver(ALICE, "Content-Type: image/png\r\n\r\nxx\r\n")
            .await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "FETCH 1:2 (PREVIEW (LAZY) FLAGS)").await;
        r.assert_ok();
        assert!(
            r.has("* 1 FETCH (PREVIEW \"first\" FLAGS (\\Recent))"),
            "{r:?}"
        );
        assert!(r.has("* 2 FETCH (PREVIEW NIL FLAGS (\\Recent))"), "{r:?}");
        assert_eq!(
            cmd(&mut s, "FETCH 1 (PREVIEW (EAGER))").await.status(),
            "BAD"
        );
        assert!(cmd(&mut s, "CAPABILITY").await.has(" PREVIEW"));
    }

    const UTF8_HEADERS: &str = "From: J\u{f6}rg <j@example.test>\r\nSubject: Gr\u{fc}\u{df}e\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\n\u{fc}\r\n";

    /// Waits (boundedly) until the store has a cache entry for every
    /// message of Alice's INBOX; the entries are written after the FETCH
    /// responses, in the background. Returns the bodies.
    async fn cached_bodies(kit: &Kit) -> Vec<BodyId> {
        let inbox = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let bodies: Vec<BodyId> = kit
            .store
            .messages(inbox.id)
            .await
            .expect("messages")
            .iter()
            .map(|m| m.body)
            .collect();
        for _ in 0..500 {
            let got = kit.store.body_meta(bodies.clone()).await.expect("meta");
            if got.iter().all(Option::is_some) {
                return bodies;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the FETCH structures were never cached");
    }

    #[tokio::test]
    async fn envelope_and_bodystructure_come_from_the_cache_without_reading_the_body() {
        let (kit, reads) = Kit::counting_body_reads();
        kit.deliver(ALICE, MULTIPART).await;
        kit.deliver(ALICE, UTF8_HEADERS).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        const ITEMS: &str = "FETCH 1:2 (ENVELOPE BODYSTRUCTURE BODY FLAGS)";
        // Nothing is cached at delivery: the first FETCH reads and parses.
        let first = cmd(&mut s, ITEMS).await;
        first.assert_ok();
        assert!(first.has("BODYSTRUCTURE ((\"TEXT\" \"PLAIN\""), "{first:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        cached_bodies(&kit).await;
        // Then the same answer, without reading a body.
        let again = cmd(&mut s, ITEMS).await;
        again.assert_ok();
        assert_eq!(again.untagged, first.untagged);
        assert_eq!(reads.load(Ordering::SeqCst), 2, "no body read");
        // A session in another mode (IMAP4rev2, UTF8=ACCEPT: RFC 6855 3)
        // writes the cached structure its own way, as it would have
        // written a fresh parse.
        let mut v2 = kit.logged_in(ALICE).await;
        cmd(&mut v2, "ENABLE IMAP4rev2 UTF8=ACCEPT")
            .await
            .assert_ok();
        cmd(&mut v2, "EXAMINE INBOX").await.assert_ok();
        let cached = cmd(&mut v2, "FETCH 2 (ENVELOPE BODYSTRUCTURE)").await;
        assert_eq!(reads.load(Ordering::SeqCst), 2, "no body read");
        let fresh_kit = Kit::new();
        fresh_kit.deliver(ALICE, MULTIPART).await;
        fresh_kit.deliver(ALICE, UTF8_HEADERS).await;
        let mut f = fresh_kit.logged_in(ALICE).await;
        cmd(&mut f, "ENABLE IMAP4rev2 UTF8=ACCEPT")
            .await
            .assert_ok();
        cmd(&mut f, "EXAMINE INBOX").await.assert_ok();
        let parsed = cmd(&mut f, "FETCH 2 (ENVELOPE BODYSTRUCTURE)").await;
        assert_eq!(cached.untagged, parsed.untagged);
        assert!(cached.has("\"Gr\u{fc}\u{df}e\""), "{cached:?}");
        assert_ne!(
            cached.lines_with("* 2 FETCH"),
            again.lines_with("* 2 FETCH"),
            "the modes differ"
        );
        // Sections still read the body.
        cmd(&mut s, "FETCH 1 BODY.PEEK[2]").await.assert_ok();
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_cache_entry_of_another_format_is_parsed_again_and_replaced() {
        let kit = Kit::new();
        kit.deliver(ALICE, MULTIPART).await;
        let inbox = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let body = kit.store.messages(inbox.id).await.expect("messages")[0].body;
        let stale = vec![proto_imap::mime::cache::FORMAT.wrapping_add(1), 0xff];
        kit.store
            .set_body_meta(vec![(body, stale.clone())])
            .await
            .expect("write");
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "FETCH 1 (BODY ENVELOPE)").await;
        r.assert_ok();
        assert!(r.has("\"MIXED\""), "{r:?}");
        assert!(r.has("\"parts\""), "{r:?}");
        for _ in 0..500 {
            let got = kit.store.body_meta(vec![body]).await.expect("meta");
            if got[0].as_ref().is_some_and(|d| *d != stale) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the stale entry was never replaced");
    }

    #[tokio::test]
    async fn fetch_of_nonexistent_part_is_the_empty_string() {
        let kit = Kit::new();
        kit.deliver(ALICE, "Subject: one part\r\n\r\nhello\r\n")
            .await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(
            &mut s,
            "FETCH 1 (BODY.PEEK[5] BODY.PEEK[1.2.3] BODY.PEEK[1])",
        )
        .await;
        r.assert_ok();
        let line = r.lines_with("FETCH")[0];
        assert!(line.contains("BODY[5] {0}\r\n"), "{line}");
        assert!(line.contains("BODY[1.2.3] {0}\r\n"), "{line}");
        assert!(line.contains("BODY[1] {7}\r\nhello\r\n"), "{line}");
    }

    #[tokio::test]
    async fn binary_content_is_never_a_plain_literal_with_nul() {
        let kit = Kit::new();
        let mut s = kit.selected(ALICE, "INBOX").await;
        // RFC 3516 4.4: APPEND with literal8, a part in CTE binary with NUL.
        let mut msg = b"Content-Type: application/octet-stream\r\n\
            Content-Transfer-Encoding: binary\r\n\r\n"
            .to_vec();
        msg.extend_from_slice(b"\x00 -\xff\r\n\r\n\r\n");
        let mut append = format!("t APPEND INBOX ~{{{}+}}\r\n", msg.len()).into_bytes();
        append.extend_from_slice(&msg);
        crate::imap::testkit::raw(&mut s, &append).await.assert_ok();
        cmd(&mut s, "NOOP").await.assert_ok();
        let r = cmd(&mut s, "FETCH 1 (BODY.PEEK[1] BODYSTRUCTURE)").await;
        r.assert_ok();
        let line = r.lines_with("FETCH")[0];
        assert!(!line.contains('\0'), "{line:?}");
        assert!(line.contains("\"BASE64\""), "{line}");
        // BINARY gives the octets back, in a literal8.
        let r = cmd(&mut s, "FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])").await;
        let line = r.lines_with("FETCH")[0];
        assert!(line.contains("BINARY.SIZE[1] 10"), "{line}");
        assert!(line.contains("BINARY[1] ~{10}\r\n\0 -"), "{line:?}");
    }

    #[tokio::test]
    async fn fetch_part_two_returns_only_part_two() {
        let kit = Kit::new();
        kit.deliver(ALICE, MULTIPART).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "FETCH 1 BODY.PEEK[2]").await;
        r.assert_ok();
        let line = r.lines_with("FETCH")[0];
        assert!(line.contains("BODY[2] {6}\r\nsecond"), "{line}");
        assert!(!line.contains("first"), "{line}");
    }

    #[tokio::test]
    async fn fetch_body_without_peek_sets_seen_durably() {
        let kit = Kit::new();
        kit.deliver(ALICE, "Subject: s\r\n\r\nx\r\n").await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "FETCH 1 BODY[TEXT]").await;
        r.assert_ok();
        assert!(r.lines_with("FETCH")[0].contains("\\Seen"), "{r:?}");
        let inbox = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        assert_eq!(inbox.unseen, 0, "\\Seen is in the store");
        // PEEK leaves a new message unseen.
        kit.deliver(ALICE, "Subject: t\r\n\r\ny\r\n").await;
        cmd(&mut s, "NOOP").await.assert_ok();
        let r = cmd(&mut s, "FETCH 2 BODY.PEEK[TEXT]").await;
        assert!(!r.lines_with("FETCH")[0].contains("\\Seen"), "{r:?}");
    }

    #[tokio::test]
    async fn fetch_of_expunged_elsewhere_is_ok_expungeissued_with_the_rest() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut a = kit.selected(ALICE, "INBOX").await;
        let mut b = kit.selected(ALICE, "INBOX").await;
        cmd(&mut b, "STORE 1 +FLAGS.SILENT (\\Deleted)")
            .await
            .assert_ok();
        cmd(&mut b, "EXPUNGE").await.assert_ok();
        // No data for the expunged message, OK [EXPUNGEISSUED] at the end
        // (RFC 5530), and no EXPUNGE during a FETCH by sequence number
        // (RFC 9051 7.4.1).
        let r = cmd(&mut a, "FETCH 1:2 (FLAGS RFC822.SIZE)").await;
        assert_eq!(r.status(), "OK", "{r:?}");
        assert!(r.tagged.contains("OK [EXPUNGEISSUED]"), "{r:?}");
        assert!(!r.has("* 1 FETCH"), "{r:?}");
        assert!(r.has("* 2 FETCH"), "{r:?}");
        assert!(!r.has("EXPUNGE"), "{r:?}");
        // The next command that may report it does.
        let r = cmd(&mut a, "NOOP").await;
        assert!(r.has("* 1 EXPUNGE"), "{r:?}");
        // Another account's session is unaffected.
        kit.deliver_n(BOB, 1).await;
        let mut c = kit.selected(BOB, "INBOX").await;
        cmd(&mut c, "FETCH 1 FLAGS").await.assert_ok();
    }

    #[tokio::test]
    async fn uid_fetch_adds_uid_and_skips_missing_uids() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 3).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "UID FETCH 2:9 (RFC822.SIZE INTERNALDATE)").await;
        r.assert_ok();
        assert_eq!(r.lines_with("FETCH").len(), 2, "{r:?}");
        assert!(r.has("* 2 FETCH (UID 2 RFC822.SIZE "), "{r:?}");
        assert!(r.has("INTERNALDATE \"14-Nov-2023"), "{r:?}");
    }
}
