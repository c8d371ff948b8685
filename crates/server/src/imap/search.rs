//! SEARCH and UID SEARCH (RFC 9051 6.4.4, RFC 3501 6.4.4) with ESEARCH
//! results (RFC 4731, IMAP4rev2) and SEARCHRES (RFC 5182: `RETURN (SAVE)`
//! and `$`).
//!
//! Text keys match decoded content (RFC 2047 headers, transfer encodings,
//! charsets) case-insensitively in UTF-8; the body is read and decoded
//! only when a key needs it, once per message; a big one only in chunks
//! (`search_big`).

use proto_imap::mime::{SearchText, search_text};
use proto_imap::search::{SearchCommand, SearchKey, SearchReturn};
use proto_imap::types::{format_set, in_intervals};
use proto_imap::{Code, Data, SeqSet, Tag};
use store::{MessageMeta, StoreError, Uid};

use super::search_big;
use super::select::no_mailbox;
use super::selected::{find_meta, meta_chunks};
use super::session::{CmdResult, ImapError, Out, Session, done};
use super::view::Msg;

/// What evaluating a key needs beyond the metadata.
#[derive(Default, Clone, Copy)]
struct Needs {
    headers: bool,
    bodies: bool,
    /// INTERNALDATE, size or mod-sequence (re-read from the store).
    meta: bool,
    /// Save dates (RFC 8514), read once for the whole mailbox.
    save_dates: bool,
    /// THREADID (RFC 8474 6): the messages' threads.
    threads: bool,
}

fn needs(k: &SearchKey, n: &mut Needs) {
    match k {
        SearchKey::And(v) => v.iter().for_each(|k| needs(k, n)),
        SearchKey::Or(a, b) => {
            needs(a, n);
            needs(b, n);
        }
        SearchKey::Not(a) => needs(a, n),
        SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => n.headers = true,
        SearchKey::Body(_) => n.bodies = true,
        SearchKey::Text(_) => {
            n.headers = true;
            n.bodies = true;
        }
        SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::Larger(_)
        | SearchKey::Smaller(_)
        | SearchKey::Younger(_)
        | SearchKey::Older(_)
        | SearchKey::EmailId(_)
        | SearchKey::ModSeq(_) => n.meta = true,
        // The INTERNALDATE stands in for a save date the store lacks.
        SearchKey::SavedBefore(_) | SearchKey::SavedOn(_) | SearchKey::SavedSince(_) => {
            n.meta = true;
            n.save_dates = true;
        }
        SearchKey::ThreadId(_) => {
            n.meta = true;
            n.threads = true;
        }
        _ => {}
    }
}

/// One message under evaluation.
struct Ctx<'a> {
    seq: u32,
    msg: Msg,
    /// The stored flags as this session knows them.
    flags: &'a [String],
    /// Present when a key needs it ([`Needs`]).
    meta: Option<&'a MessageMeta>,
    max_seq: u32,
    max_uid: u32,
    text: Option<&'a SearchText>,
    saved: &'a [Uid],
    /// Unix seconds when the search started (WITHIN, RFC 5032).
    now: i64,
    /// The save date (RFC 8514), when a key needs it.
    save_date: Option<i64>,
    /// The message's thread, when a key needs it.
    thread: Option<u64>,
}

fn contains(hay: &str, needle: &str) -> bool {
    needle.is_empty() || hay.to_lowercase().contains(&needle.to_lowercase())
}

fn day_of(secs: i64) -> i64 {
    secs.div_euclid(86400)
}

fn eval(k: &SearchKey, c: &Ctx<'_>) -> bool {
    let in_set = |set: &SeqSet, n: u32, max: u32| match set {
        SeqSet::Saved => c.saved.binary_search(&c.msg.uid()).is_ok(),
        s => in_intervals(&s.intervals(max), n),
    };
    let has = |f: &str| c.flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    match k {
        SearchKey::All => true,
        SearchKey::And(v) => v.iter().all(|k| eval(k, c)),
        SearchKey::Or(a, b) => eval(a, c) || eval(b, c),
        SearchKey::Not(a) => !eval(a, c),
        SearchKey::SeqSet(s) => in_set(s, c.seq, c.max_seq),
        SearchKey::Uid(s) => in_set(s, c.msg.uid().0, c.max_uid),
        SearchKey::Flag(f) => has(f),
        SearchKey::NoFlag(f) => !has(f),
        SearchKey::Recent => c.msg.recent(),
        SearchKey::New => c.msg.recent() && !has("\\Seen"),
        SearchKey::Old => !c.msg.recent(),
        SearchKey::Before(d) => c.meta.is_some_and(|m| day_of(m.internal_date) < *d),
        SearchKey::On(d) => c.meta.is_some_and(|m| day_of(m.internal_date) == *d),
        SearchKey::Since(d) => c.meta.is_some_and(|m| day_of(m.internal_date) >= *d),
        SearchKey::SentBefore(d) => c.text.and_then(|t| t.date).is_some_and(|x| x < *d),
        SearchKey::SentOn(d) => c.text.and_then(|t| t.date).is_some_and(|x| x == *d),
        SearchKey::SentSince(d) => c.text.and_then(|t| t.date).is_some_and(|x| x >= *d),
        SearchKey::Larger(n) => c.meta.is_some_and(|m| m.size > *n),
        SearchKey::EmailId(id) => c
            .meta
            .is_some_and(|m| super::fetch::email_id(m.body) == *id),
        SearchKey::ThreadId(id) => c
            .thread
            .is_some_and(|t| super::fetch::thread_id(t).eq_ignore_ascii_case(id)),
        // RFC 5032 3: relative to the time of the search.
        SearchKey::Younger(n) => c
            .meta
            .is_some_and(|m| m.internal_date > c.now.saturating_sub_unsigned(*n)),
        SearchKey::Older(n) => c
            .meta
            .is_some_and(|m| m.internal_date <= c.now.saturating_sub_unsigned(*n)),
        SearchKey::Smaller(n) => c.meta.is_some_and(|m| m.size < *n),
        // RFC 8514 4.3: by day, as BEFORE, ON and SINCE are.
        SearchKey::SavedBefore(d) => c.save_date.is_some_and(|t| day_of(t) < *d),
        SearchKey::SavedOn(d) => c.save_date.is_some_and(|t| day_of(t) == *d),
        SearchKey::SavedSince(d) => c.save_date.is_some_and(|t| day_of(t) >= *d),
        // Every mailbox keeps save dates.
        SearchKey::SaveDateSupported => true,
        SearchKey::ModSeq(n) => c.meta.is_some_and(|m| m.modseq >= *n),
        SearchKey::Header(name, value) => c.text.is_some_and(|t| {
            let name = name.to_ascii_lowercase();
            t.headers
                .iter()
                .any(|(h, v)| *h == name && contains(v, value))
        }),
        SearchKey::Body(s) => c
            .text
            .is_some_and(|t| t.bodies.iter().any(|b| contains(b, s))),
        SearchKey::Text(s) => c.text.is_some_and(|t| {
            t.headers
                .iter()
                .any(|(h, v)| contains(h, s) || contains(v, s))
                || t.bodies.iter().any(|b| contains(b, s))
        }),
    }
}

/// A message's save date from `dates` (ascending UID), else its
/// INTERNALDATE. NIL (RFC 8514 4.2) is for a mailbox that keeps no save
/// dates; every one of ours does, and an entry saved before the store
/// kept them (migration V_SAVEDATE) was, in practice, saved when it
/// arrived: its INTERNALDATE is the best answer we have.
pub(super) fn save_date_of(
    dates: &[(Uid, Option<i64>)],
    uid: Uid,
    meta: Option<&MessageMeta>,
) -> Option<i64> {
    dates
        .binary_search_by_key(&uid, |&(u, _)| u)
        .ok()
        .and_then(|k| dates.get(k))
        .and_then(|&(_, d)| d)
        .or(meta.map(|m| m.internal_date))
}

impl Session {
    /// The messages `key` matches, in sequence order: (sequence number,
    /// UID, mod-sequence; the last is 0 unless the key needed metadata).
    /// SORT and THREAD search with it too.
    pub(super) async fn hits(
        &mut self,
        key: &SearchKey,
    ) -> Result<Vec<(u32, Uid, u64)>, ImapError> {
        let ctx = self.ctx.clone();
        let account = self.account()?.to_string();
        let sel = self.selected_mut().ok_or_else(no_mailbox)?;
        let mut n = Needs::default();
        needs(key, &mut n);
        let max_seq = sel.exists();
        let max_uid = sel.max_uid();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut hits: Vec<(u32, Uid, u64)> = Vec::new();
        let mut needles = Vec::new();
        search_big::needles(key, &mut needles);
        let with_meta = n.meta || n.headers || n.bodies;
        let all: Vec<usize> = (0..sel.msgs().len()).collect();
        let save_dates = if n.save_dates {
            ctx.store
                .save_dates(sel.id(), Uid(1), Uid(max_uid.max(1)))
                .await?
        } else {
            Vec::new()
        };
        for chunk in meta_chunks(&all) {
            let metas = if with_meta {
                sel.load_meta(&ctx, chunk).await?
            } else {
                Vec::new()
            };
            let threads = if n.threads {
                let bodies = metas.iter().map(|m| m.body).collect();
                super::fetch::thread_map(&ctx, &account, bodies).await?
            } else {
                std::collections::HashMap::new()
            };
            for &i in chunk {
                let Some(&msg) = sel.get(i) else { continue };
                if msg.expunged() {
                    continue;
                }
                let meta = find_meta(&metas, msg.uid());
                // Gone from the store since the last sync: no match.
                if with_meta && meta.is_none() {
                    continue;
                }
                let text = match meta.filter(|_| n.headers || n.bodies) {
                    // A big message is searched in chunks (issue 19).
                    Some(m) if m.size > search_big::BIG_ABOVE => {
                        let store = ctx.store.as_ref();
                        match search_big::text_of(store, m.body, m.size, n.bodies, &needles).await?
                        {
                            search_big::Found::Text(t) => Some(t),
                            search_big::Found::Gone => continue,
                            search_big::Found::Whole => match ctx.store.read_body(m.body).await {
                                Ok(raw) => Some(search_text(&raw, n.bodies)),
                                Err(StoreError::NotFound(_)) => continue,
                                Err(e) => return Err(e.into()),
                            },
                        }
                    }
                    Some(m) => match ctx.store.read_body(m.body).await {
                        Ok(raw) => Some(search_text(&raw, n.bodies)),
                        Err(StoreError::NotFound(_)) => continue,
                        Err(e) => return Err(e.into()),
                    },
                    None => None,
                };
                let c = Ctx {
                    seq: i as u32 + 1,
                    msg,
                    flags: sel.flags_of(&msg),
                    meta,
                    max_seq,
                    max_uid,
                    text: text.as_ref(),
                    saved: &sel.saved,
                    now,
                    save_date: save_date_of(&save_dates, msg.uid(), meta),
                    thread: meta.and_then(|m| threads.get(&m.body).copied()),
                };
                if eval(key, &c) {
                    hits.push((i as u32 + 1, msg.uid(), meta.map_or(0, |m| m.modseq)));
                }
            }
        }
        Ok(hits)
    }

    pub(super) async fn search(
        &mut self,
        tag: &Tag,
        uid_cmd: bool,
        cmd: SearchCommand,
        out: &mut Out<'_>,
    ) -> CmdResult {
        if let Some(cs) = &cmd.charset
            && !cs.eq_ignore_ascii_case("UTF-8")
            && !cs.eq_ignore_ascii_case("US-ASCII")
        {
            return Err(ImapError::no(Some(Code::BadCharset), "unsupported charset"));
        }
        let rev2 = self.rev2;
        // RFC 7162 3.1.5: with MODSEQ in the key, the mod-sequence of
        // each hit, for the response's MODSEQ (MODSEQ makes the search
        // read the metadata, so hits() has them).
        let with_modseq = super::session::has_modseq(&cmd.key);
        let found = self.hits(&cmd.key).await?;
        let hits: Vec<(u32, Uid)> = found.iter().map(|&(s, u, _)| (s, u)).collect();
        let modseqs: Vec<u64> = if with_modseq {
            found.iter().map(|&(_, _, m)| m).collect()
        } else {
            Vec::new()
        };
        let sel = self.selected_mut().ok_or_else(no_mailbox)?;
        let nums: Vec<u32> = hits
            .iter()
            .map(|&(s, u)| if uid_cmd { u.0 } else { s })
            .collect();
        let returns = match (&cmd.returns, rev2) {
            (Some(r), _) if r.is_empty() => Some(vec![SearchReturn::All]),
            // RFC 5267 4.1: UPDATE alone answers as ALL does.
            (Some(r), _)
                if !r.iter().any(|x| {
                    matches!(
                        x,
                        SearchReturn::Min
                            | SearchReturn::Max
                            | SearchReturn::All
                            | SearchReturn::Count
                            | SearchReturn::Partial(..)
                    )
                }) && r.contains(&SearchReturn::Update) =>
            {
                let mut r = r.clone();
                r.push(SearchReturn::All);
                Some(r)
            }
            (Some(r), _) => Some(r.clone()),
            (None, true) => Some(vec![SearchReturn::All]),
            (None, false) => None,
        };
        let highest = |pick: &[usize]| pick.iter().filter_map(|&k| modseqs.get(k)).max().copied();
        match returns {
            None if with_modseq => {
                let all: Vec<usize> = (0..modseqs.len()).collect();
                out.data(Data::SearchModSeq(nums, highest(&all).unwrap_or(0)))
            }
            None => out.data(Data::Search(nums)),
            Some(r) => {
                if r.contains(&SearchReturn::Save) {
                    let mut uids: Vec<Uid> = hits.iter().map(|&(_, u)| u).collect();
                    uids.sort_unstable();
                    sel.saved = uids;
                }
                let mut code = None;
                if r.contains(&SearchReturn::Update) {
                    if sel.updates.len() >= proto_imap::search::MAX_SEARCH_UPDATES {
                        code = Some(Code::NoUpdate(tag.as_str().to_string()));
                    } else {
                        let mut result: Vec<Uid> = hits.iter().map(|&(_, u)| u).collect();
                        result.sort_unstable();
                        let version = sel.version;
                        sel.updates.retain(|u| u.tag.as_str() != tag.as_str());
                        sel.updates.push(super::context_search::SearchUpdate {
                            tag: tag.clone(),
                            uid: uid_cmd,
                            key: cmd.key.clone(),
                            sort: None,
                            result,
                            version,
                        });
                    }
                }
                // RFC 5267 4.4: the results at these positions.
                let partial = r.iter().find_map(|x| match *x {
                    SearchReturn::Partial(low, high) => {
                        let from = low.saturating_sub(1) as usize;
                        let to = (high as usize).min(nums.len());
                        let part = nums.get(from..to).filter(|p| !p.is_empty());
                        Some((low, high, part.map(format_set)))
                    }
                    _ => None,
                });
                // RFC 5182 2.1: SAVE alone returns no ESEARCH.
                if r.iter().any(|x| *x != SearchReturn::Save) {
                    let has = |x| r.contains(&x);
                    // RFC 4731 with RFC 7162 3.1.5: the highest of the
                    // messages returned: all of them for ALL or COUNT,
                    // else the MIN and MAX ones.
                    let modseq = if !with_modseq || nums.is_empty() {
                        None
                    } else if has(SearchReturn::All) || has(SearchReturn::Count) {
                        highest(&(0..modseqs.len()).collect::<Vec<_>>())
                    } else {
                        let mut pick = Vec::new();
                        if has(SearchReturn::Min) {
                            pick.push(0);
                        }
                        if has(SearchReturn::Max) {
                            pick.push(nums.len() - 1);
                        }
                        highest(&pick)
                    };
                    out.data(Data::ESearch {
                        tag: tag.clone(),
                        uid: uid_cmd,
                        min: has(SearchReturn::Min)
                            .then(|| nums.first().copied())
                            .flatten(),
                        max: has(SearchReturn::Max)
                            .then(|| nums.last().copied())
                            .flatten(),
                        count: has(SearchReturn::Count).then_some(nums.len() as u32),
                        all: (has(SearchReturn::All) && !nums.is_empty())
                            .then(|| format_set(&nums)),
                        modseq,
                        partial,
                    });
                }
                if code.is_some() {
                    return Ok((code, "SEARCH completed".into()));
                }
            }
        }
        done("SEARCH completed")
    }
}

#[cfg(test)]
mod tests {
    use crate::imap::testkit::{ALICE, Kit, cmd};

    async fn three(kit: &Kit) {
        kit.deliver(ALICE, "Subject: hello world\r\n\r\nshort\r\n")
            .await;
        kit.deliver(
            ALICE,
            "Subject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nlonger body text here\r\n",
        )
        .await;
        kit.deliver(ALICE, "Subject: other\r\n\r\nnothing\r\n")
            .await;
    }

    #[tokio::test]
    async fn within_compares_internaldate_with_now() {
        // RFC 5032: the kit delivers with INTERNALDATE in November 2023.
        let kit = Kit::new();
        three(&kit).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "SEARCH YOUNGER 3600").await;
        r.assert_ok();
        assert!(r.has("* SEARCH") && !r.has("* SEARCH 1"), "{r:#?}");
        let r = cmd(&mut s, "SEARCH OLDER 3600").await;
        assert!(r.has("* SEARCH 1 2 3"), "{r:#?}");
        let r = cmd(&mut s, "SEARCH YOUNGER 2000000000").await;
        assert!(r.has("* SEARCH 1 2 3"), "{r:#?}");
        assert_eq!(cmd(&mut s, "SEARCH OLDER 0").await.status(), "BAD");
    }

    #[tokio::test]
    async fn search_by_flag_uses_the_view() {
        let kit = Kit::new();
        three(&kit).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        cmd(&mut s, "STORE 2 +FLAGS.SILENT (\\Flagged)")
            .await
            .assert_ok();
        let r = cmd(&mut s, "SEARCH FLAGGED").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 2"]);
        let r = cmd(&mut s, "SEARCH UNFLAGGED NOT 1").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 3"]);
    }

    #[tokio::test]
    async fn search_size_and_date_read_the_store() {
        let kit = Kit::new();
        three(&kit).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "SEARCH LARGER 40").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 2"]);
        // Delivered with INTERNALDATE 14-Nov-2023.
        let r = cmd(&mut s, "UID SEARCH ON 14-Nov-2023").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 1 2 3"]);
        let r = cmd(&mut s, "SEARCH SINCE 15-Nov-2023").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH"]);
    }

    #[tokio::test]
    async fn search_text_matches_decoded_headers_and_bodies() {
        let kit = Kit::new();
        three(&kit).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "SEARCH CHARSET UTF-8 SUBJECT CAFÉ").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 2"]);
        let r = cmd(&mut s, "SEARCH OR BODY nothing SUBJECT HELLO").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 1 3"]);
        let r = cmd(&mut s, "SEARCH CHARSET KOI8-R BODY x").await;
        assert!(r.tagged.contains("[BADCHARSET "), "{r:?}");
    }

    #[tokio::test]
    async fn search_header_message_id_and_text_match_angle_brackets() {
        let kit = Kit::new();
        kit.deliver(
            ALICE,
            "Message-ID: <id@host>\r\nReferences: <r1@h> <r2@h>\r\n\
             In-Reply-To: <r2@h>\r\nSubject: s\r\n\r\nbody\r\n",
        )
        .await;
        kit.deliver(ALICE, "Message-ID: <other@host>\r\n\r\nbody\r\n")
            .await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        for q in [
            "HEADER Message-ID \"<id@host>\"",
            "HEADER References \"<r2@h>\"",
            "HEADER In-Reply-To \"<r2@h>\"",
            "TEXT \"<id@host>\"",
        ] {
            let r = cmd(&mut s, &format!("SEARCH {q}")).await;
            assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 1"], "{q}");
        }
    }

    #[tokio::test]
    async fn search_to_matches_group_names_and_comment_free_addresses() {
        let kit = Kit::new();
        kit.deliver(
            ALICE,
            "To: groupname: u1@d.org, u2@d.org;\r\n\
             From: <user-from (comment)@ (comment) domain.org>\r\n\r\nx\r\n",
        )
        .await;
        kit.deliver(ALICE, "To: empty:;\r\n\r\nx\r\n").await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "SEARCH TO groupname").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 1"]);
        let r = cmd(&mut s, "SEARCH TO empty").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 2"]);
        let r = cmd(&mut s, "SEARCH FROM user-from@domain.org").await;
        assert_eq!(r.lines_with("SEARCH"), ["* SEARCH 1"]);
    }

    #[tokio::test]
    async fn esearch_and_searchres_for_rev2() {
        let kit = Kit::new();
        three(&kit).await;
        let mut s = kit.selected_rev2(ALICE, "INBOX").await;
        let r = cmd(
            &mut s,
            "UID SEARCH RETURN (MIN MAX COUNT SAVE) NOT SUBJECT other",
        )
        .await;
        assert!(r.has("MIN 1 MAX 2 COUNT 2"), "{r:?}");
        let r = cmd(&mut s, "FETCH $ UID").await;
        assert_eq!(r.lines_with("FETCH").len(), 2, "{r:?}");
    }
}
