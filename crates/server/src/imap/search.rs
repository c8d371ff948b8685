//! SEARCH and UID SEARCH (RFC 9051 6.4.4, RFC 3501 6.4.4) with ESEARCH
//! results (RFC 4731, IMAP4rev2) and SEARCHRES (RFC 5182: `RETURN (SAVE)`
//! and `$`).
//!
//! Text keys match decoded content (RFC 2047 headers, transfer encodings,
//! charsets) case-insensitively in UTF-8; the body is read and decoded
//! only when a key needs it, once per message.

use proto_imap::mime::{SearchText, search_text};
use proto_imap::search::{SearchCommand, SearchKey, SearchReturn};
use proto_imap::types::{format_set, in_intervals};
use proto_imap::{Code, Data, SeqSet, Tag};
use store::{StoreError, Uid};

use super::select::no_mailbox;
use super::session::{CmdResult, ImapError, Out, Session, done};
use super::view::Msg;

/// What evaluating a key needs beyond the metadata.
#[derive(Default, Clone, Copy)]
struct Needs {
    headers: bool,
    bodies: bool,
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
        _ => {}
    }
}

/// One message under evaluation.
struct Ctx<'a> {
    seq: u32,
    msg: &'a Msg,
    max_seq: u32,
    max_uid: u32,
    text: Option<&'a SearchText>,
    saved: &'a [Uid],
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
    match k {
        SearchKey::All => true,
        SearchKey::And(v) => v.iter().all(|k| eval(k, c)),
        SearchKey::Or(a, b) => eval(a, c) || eval(b, c),
        SearchKey::Not(a) => !eval(a, c),
        SearchKey::SeqSet(s) => in_set(s, c.seq, c.max_seq),
        SearchKey::Uid(s) => in_set(s, c.msg.uid().0, c.max_uid),
        SearchKey::Flag(f) => c.msg.has_flag(f),
        SearchKey::NoFlag(f) => !c.msg.has_flag(f),
        SearchKey::Recent => c.msg.recent,
        SearchKey::New => c.msg.recent && !c.msg.has_flag("\\Seen"),
        SearchKey::Old => !c.msg.recent,
        SearchKey::Before(d) => day_of(c.msg.meta.internal_date) < *d,
        SearchKey::On(d) => day_of(c.msg.meta.internal_date) == *d,
        SearchKey::Since(d) => day_of(c.msg.meta.internal_date) >= *d,
        SearchKey::SentBefore(d) => c.text.and_then(|t| t.date).is_some_and(|x| x < *d),
        SearchKey::SentOn(d) => c.text.and_then(|t| t.date).is_some_and(|x| x == *d),
        SearchKey::SentSince(d) => c.text.and_then(|t| t.date).is_some_and(|x| x >= *d),
        SearchKey::Larger(n) => c.msg.meta.size > *n,
        SearchKey::Smaller(n) => c.msg.meta.size < *n,
        SearchKey::ModSeq(n) => c.msg.meta.modseq >= *n,
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

impl Session {
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
        let ctx = self.ctx.clone();
        let sel = self.selected.as_mut().ok_or_else(no_mailbox)?;
        let mut n = Needs::default();
        needs(&cmd.key, &mut n);
        let max_seq = sel.exists();
        let max_uid = sel.max_uid();
        let mut hits: Vec<(u32, Uid)> = Vec::new();
        for (i, msg) in sel.msgs.iter().enumerate() {
            if msg.expunged {
                continue;
            }
            let text = if n.headers || n.bodies {
                match ctx.store.read_body(msg.meta.body).await {
                    Ok(raw) => Some(search_text(&raw, n.bodies)),
                    Err(StoreError::NotFound(_)) => continue,
                    Err(e) => return Err(e.into()),
                }
            } else {
                None
            };
            let c = Ctx {
                seq: i as u32 + 1,
                msg,
                max_seq,
                max_uid,
                text: text.as_ref(),
                saved: &sel.saved,
            };
            if eval(&cmd.key, &c) {
                hits.push((i as u32 + 1, msg.uid()));
            }
        }
        let nums: Vec<u32> = hits
            .iter()
            .map(|&(s, u)| if uid_cmd { u.0 } else { s })
            .collect();
        let returns = match (&cmd.returns, rev2) {
            (Some(r), _) if r.is_empty() => Some(vec![SearchReturn::All]),
            (Some(r), _) => Some(r.clone()),
            (None, true) => Some(vec![SearchReturn::All]),
            (None, false) => None,
        };
        match returns {
            None => out.data(Data::Search(nums)),
            Some(r) => {
                if r.contains(&SearchReturn::Save) {
                    let mut uids: Vec<Uid> = hits.iter().map(|&(_, u)| u).collect();
                    uids.sort_unstable();
                    sel.saved = uids;
                }
                // RFC 5182 2.1: SAVE alone returns no ESEARCH.
                if r.iter().any(|x| *x != SearchReturn::Save) {
                    let has = |x| r.contains(&x);
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
                    });
                }
            }
        }
        done("SEARCH completed")
    }
}
