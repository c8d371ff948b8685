//! SORT, UID SORT (RFC 5256 3; ESORT returns, RFC 5267 3; DISPLAYFROM and
//! DISPLAYTO, RFC 5957) and THREAD, UID THREAD (RFC 5256 3: ORDEREDSUBJECT
//! and REFERENCES). The search is SEARCH's; the keys come from each
//! matching message's header, read in batches; ordering and threading are
//! proto-imap's pure functions.

use proto_imap::search::SearchReturn;
use proto_imap::sort::{
    SortCommand, Sortable, ThreadAlgorithm, ThreadCommand, format_threads, sort, sort_info,
    thread_ordered_subject, thread_references,
};
use proto_imap::types::format_set;
use proto_imap::{Code, Data, Tag};
use store::Uid;

use super::fetch::body_batches;
use super::search_big;
use super::select::no_mailbox;
use super::selected::{find_meta, meta_chunks};
use super::session::{CmdResult, ImapError, Out, Session, done};

/// RFC 5256 BNF: SORT and THREAD name a charset; we read UTF-8 (and its
/// subset US-ASCII), as SEARCH does.
fn check_charset(cs: Option<&str>) -> Result<(), ImapError> {
    match cs {
        Some(cs) if !cs.eq_ignore_ascii_case("UTF-8") && !cs.eq_ignore_ascii_case("US-ASCII") => {
            Err(ImapError::no(Some(Code::BadCharset), "unsupported charset"))
        }
        _ => Ok(()),
    }
}

impl Session {
    /// The messages the search matches, with what sorting needs.
    async fn sortables(
        &mut self,
        uid_cmd: bool,
        search: &proto_imap::search::SearchCommand,
    ) -> Result<Vec<Sortable>, ImapError> {
        check_charset(search.charset.as_deref())?;
        let hits: Vec<(u32, Uid, u64)> = self.hits(&search.key).await?;
        let ctx = self.ctx.clone();
        let sel = self.selected_mut().ok_or_else(no_mailbox)?;
        let indices: Vec<usize> = hits.iter().map(|&(seq, _, _)| seq as usize - 1).collect();
        let mut out = Vec::with_capacity(hits.len());
        for chunk in meta_chunks(&indices) {
            let metas = sel.load_meta(&ctx, chunk).await?;
            let rows: Vec<_> = chunk
                .iter()
                .filter_map(|&i| {
                    let msg = *sel.get(i)?;
                    find_meta(&metas, msg.uid()).map(|m| (i, msg, Some(m)))
                })
                .collect();
            // Bodies are read in FETCH's bounded batches (count and octets)
            // and only their header is kept.
            // A big message's header is read alone (issue 19).
            let (big, rows): (Vec<_>, Vec<_>) = rows
                .into_iter()
                .partition(|(_, _, m)| m.is_some_and(|m| m.size > search_big::BIG_ABOVE));
            let mut rows = rows;
            for (i, msg, m) in big {
                let Some(m) = m else { continue };
                let store = ctx.store.as_ref();
                let Some(header) = search_big::header_of(store, m.body, m.size).await? else {
                    rows.push((i, msg, Some(m)));
                    continue;
                };
                let seq = i as u32 + 1;
                out.push(Sortable {
                    id: if uid_cmd { m.uid.0 } else { seq },
                    seq,
                    internal_date: m.internal_date,
                    size: m.size,
                    info: sort_info(&header),
                });
            }
            for batch in body_batches(&rows, true) {
                let ids = batch
                    .iter()
                    .filter_map(|(_, _, m)| m.map(|m| m.body))
                    .collect();
                let bodies = ctx.store.read_bodies(ids).await?;
                for ((i, _, m), raw) in batch.iter().zip(bodies) {
                    // Expunged meanwhile: not part of the answer.
                    let (Some(m), Some(raw)) = (m, raw) else {
                        continue;
                    };
                    let seq = *i as u32 + 1;
                    out.push(Sortable {
                        id: if uid_cmd { m.uid.0 } else { seq },
                        seq,
                        internal_date: m.internal_date,
                        size: m.size,
                        info: sort_info(&raw),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The UIDs `key` matches, in the order of `criteria` (CONTEXT=SORT
    /// evaluates its searches again with it).
    pub(super) async fn sorted_uids(
        &mut self,
        key: &proto_imap::search::SearchKey,
        criteria: &[proto_imap::sort::SortCriterion],
    ) -> Result<Vec<Uid>, ImapError> {
        let search = proto_imap::search::SearchCommand {
            returns: None,
            charset: None,
            key: key.clone(),
        };
        let mut msgs = self.sortables(true, &search).await?;
        sort(&mut msgs, criteria);
        Ok(msgs.iter().map(|m| Uid(m.id)).collect())
    }

    pub(super) async fn sort(
        &mut self,
        tag: &Tag,
        uid_cmd: bool,
        cmd: SortCommand,
        out: &mut Out<'_>,
    ) -> CmdResult {
        // Sorted by UID identity, so that an updating sort (RFC 5267 4)
        // keeps what it needs; numbered as the command asks.
        let mut msgs = self.sortables(true, &cmd.search).await?;
        sort(&mut msgs, &cmd.criteria);
        let uids: Vec<Uid> = msgs.iter().map(|m| Uid(m.id)).collect();
        let nums: Vec<u32> = msgs
            .iter()
            .map(|m| if uid_cmd { m.id } else { m.seq })
            .collect();
        let mut code = None;
        if let Some(r) = &cmd.returns
            && r.contains(&SearchReturn::Update)
        {
            let sel = self.selected_mut().ok_or_else(no_mailbox)?;
            if sel.updates.len() >= proto_imap::search::MAX_SEARCH_UPDATES {
                code = Some(Code::NoUpdate(tag.as_str().to_string()));
            } else {
                let version = sel.version;
                sel.updates.retain(|u| u.tag.as_str() != tag.as_str());
                sel.updates.push(super::context_search::SearchUpdate {
                    tag: tag.clone(),
                    uid: uid_cmd,
                    key: cmd.search.key.clone(),
                    sort: Some(cmd.criteria.clone()),
                    result: uids,
                    version,
                });
            }
        }
        match cmd.returns {
            None => out.data(Data::Sort(nums)),
            // RFC 5267 3: ESORT answers in an ESEARCH response; ALL is a
            // sequence set in the sort order (not compressed to ranges
            // across the order), MIN and MAX the first and last in it.
            Some(r) => {
                // RFC 5267 4.1: UPDATE alone answers as ALL does.
                let r = if r.iter().all(|x| *x == SearchReturn::Update) {
                    let mut r = r;
                    r.push(SearchReturn::All);
                    r
                } else {
                    r
                };
                // RFC 5267 4.4: positions in the sort order.
                let partial = r.iter().find_map(|x| match *x {
                    SearchReturn::Partial(low, high) => {
                        let from = low.saturating_sub(1) as usize;
                        let to = (high as usize).min(nums.len());
                        let part = nums.get(from..to).filter(|p| !p.is_empty());
                        Some((low, high, part.map(in_order_set)))
                    }
                    _ => None,
                });
                let has = |x| r.contains(&x);
                out.data(Data::ESearch {
                    tag: tag.clone(),
                    uid: uid_cmd,
                    min: has(SearchReturn::Min)
                        .then(|| nums.iter().min().copied())
                        .flatten(),
                    max: has(SearchReturn::Max)
                        .then(|| nums.iter().max().copied())
                        .flatten(),
                    count: has(SearchReturn::Count).then_some(nums.len() as u32),
                    all: (has(SearchReturn::All) && !nums.is_empty()).then(|| in_order_set(&nums)),
                    // RFC 7162 3.1.5 applies to SEARCH with MODSEQ; a
                    // SORT's ESEARCH carries none.
                    modseq: None,
                    partial,
                });
            }
        }
        if code.is_some() {
            return Ok((code, "SORT completed".into()));
        }
        done("SORT completed")
    }

    pub(super) async fn thread(
        &mut self,
        uid_cmd: bool,
        cmd: ThreadCommand,
        out: &mut Out<'_>,
    ) -> CmdResult {
        let msgs = self.sortables(uid_cmd, &cmd.search).await?;
        let threads = match cmd.algorithm {
            ThreadAlgorithm::OrderedSubject => thread_ordered_subject(&msgs),
            ThreadAlgorithm::References => thread_references(&msgs),
        };
        out.data(Data::Thread(format_threads(&threads)));
        done("THREAD completed")
    }
}

/// RFC 5267 3: the sorted numbers as a sequence set that keeps their order
/// (runs of consecutive ascending numbers become ranges).
fn in_order_set(nums: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&start) = nums.get(i) {
        let mut j = i;
        while nums
            .get(j + 1)
            .is_some_and(|&n| Some(n) == nums.get(j).map(|p| p + 1))
        {
            j += 1;
        }
        match nums.get(j) {
            Some(&end) if j > i => parts.push(format!("{start}:{end}")),
            _ => parts.push(start.to_string()),
        }
        i = j + 1;
    }
    // A single ascending run is what format_set writes too.
    if parts.len() == 1 {
        return format_set(nums);
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::in_order_set;
    use crate::imap::testkit::{ALICE, Kit, Reply, cmd};

    fn line(r: &Reply, want: &str) -> bool {
        r.untagged.iter().any(|l| l == want)
    }

    async fn mailbox(kit: &Kit) {
        for m in [
            "From: Zed <zed@x.test>\r\nSubject: banana\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\none\r\n",
            "From: Amy <amy@x.test>\r\nSubject: Re: apple\r\nDate: Tue, 03 Jan 2023 10:00:00 +0000\r\nMessage-ID: <2@x>\r\nReferences: <3@x>\r\n\r\ntwo, longer than one\r\n",
            "From: bob@x.test\r\nSubject: apple\r\nDate: Sun, 01 Jan 2023 10:00:00 +0000\r\nMessage-ID: <3@x>\r\n\r\nthree\r\n",
        ] {
            kit.deliver(ALICE, m).await;
        }
    }

    #[tokio::test]
    async fn sort_by_subject_date_and_reverse_from() {
        let kit = Kit::new();
        mailbox(&kit).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        // Equal base subjects ("Re: apple", "apple") keep sequence order.
        let r = cmd(&mut s, "SORT (SUBJECT) UTF-8 ALL").await;
        r.assert_ok();
        assert!(line(&r, "* SORT 2 3 1"), "{r:#?}");
        let r = cmd(&mut s, "SORT (DATE) UTF-8 ALL").await;
        assert!(line(&r, "* SORT 3 1 2"), "{r:#?}");
        let r = cmd(&mut s, "SORT (REVERSE FROM) US-ASCII ALL").await;
        assert!(line(&r, "* SORT 1 3 2"), "{r:#?}");
        let r = cmd(&mut s, "SORT (DISPLAYFROM) UTF-8 ALL").await;
        assert!(line(&r, "* SORT 2 3 1"), "{r:#?}");
        // Both bodies hold "one"; the shorter first.
        let r = cmd(&mut s, "UID SORT (REVERSE SIZE) UTF-8 BODY \"one\"").await;
        assert!(line(&r, "* SORT 2 1"), "{r:#?}");
        let r = cmd(&mut s, "SORT RETURN (COUNT MIN ALL) (SUBJECT) UTF-8 ALL").await;
        assert!(
            line(&r, "* ESEARCH (TAG \"t\") MIN 1 ALL 2:3,1 COUNT 3"),
            "{r:#?}"
        );
        let r = cmd(&mut s, "SORT (SUBJECT) KOI8-R ALL").await;
        assert!(r.tagged.starts_with("t NO [BADCHARSET"), "{r:#?}");
        let r = cmd(&mut s, "SORT (NAME) UTF-8 ALL").await;
        assert_eq!(r.status(), "BAD", "{r:#?}");
    }

    #[tokio::test]
    async fn thread_by_references_and_by_subject() {
        let kit = Kit::new();
        mailbox(&kit).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "THREAD REFERENCES UTF-8 ALL").await;
        r.assert_ok();
        assert!(line(&r, "* THREAD (3 2)(1)"), "{r:#?}");
        let r = cmd(&mut s, "THREAD ORDEREDSUBJECT UTF-8 ALL").await;
        assert!(line(&r, "* THREAD (3 2)(1)"), "{r:#?}");
        let r = cmd(&mut s, "UID THREAD REFERENCES UTF-8 SUBJECT banana").await;
        assert!(line(&r, "* THREAD (1)"), "{r:#?}");
        let r = cmd(&mut s, "THREAD REFERENCES UTF-8 SUBJECT nothing").await;
        assert!(line(&r, "* THREAD"), "{r:#?}");
    }

    #[tokio::test]
    async fn sort_needs_a_selected_mailbox_and_is_advertised() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        let r = cmd(&mut s, "SORT (DATE) UTF-8 ALL").await;
        assert_eq!(r.status(), "BAD", "{r:#?}");
        let r = cmd(&mut s, "CAPABILITY").await;
        for cap in [
            "SORT",
            "SORT=DISPLAY",
            "ESORT",
            "THREAD=REFERENCES",
            "THREAD=ORDEREDSUBJECT",
        ] {
            assert!(r.has(&format!(" {cap}")), "{cap}: {r:#?}");
        }
    }

    #[test]
    fn esort_all_keeps_the_sort_order() {
        assert_eq!(in_order_set(&[3, 2, 1]), "3,2,1");
        assert_eq!(in_order_set(&[5, 6, 7, 1, 2]), "5:7,1:2");
        assert_eq!(in_order_set(&[1, 2, 3]), "1:3");
    }
}
