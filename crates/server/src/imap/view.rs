//! A selected mailbox as one session has been shown it (RFC 9051
//! 2.3.1.2): the sequence-number view (seq n is `msgs[n-1]`), each
//! message's flags as last reported, its own \Recent set, and the flags
//! announced in the last `FLAGS` response. Pure: no store, no I/O.
//!
//! [`View::apply`] is the diff: a function of (what the session has been
//! shown, what changed since) that updates the view and returns the
//! responses that tell the client, in the order RFC 9051 7.4.1 and 7.3.5
//! want: `FLAGS` / `OK [PERMANENTFLAGS]` first when a keyword comes into
//! use (a client may only see keywords `FLAGS` named), then `FETCH
//! (FLAGS)` for changed flags, `EXPUNGE` (only where allowed; otherwise
//! the message stays, marked, until it can be reported, RFC 2180 4.1),
//! and `EXISTS` (and `RECENT` for rev1) for new messages. Its cost is the
//! size of the change (a binary search per changed UID), not of the
//! mailbox, except when expunges are reported (one pass to renumber).
//!
//! The view is compact because every selected session of every client
//! holds one: per message it keeps the UID and one `u32` (an index into
//! the view's table of distinct flag sets, plus the \Recent and
//! "expunged, not yet reported" bits), 8 octets in all. Most mailboxes
//! have a handful of distinct flag sets; the table counts the messages of
//! each and is compacted when dead sets outnumber live ones.

use std::collections::HashMap;
use std::sync::Arc;

use proto_imap::types::in_intervals;
use proto_imap::{Code, Data, FetchValue, Response, SeqSet, Status};
use store::{MailboxIndex, MessageMeta, Uid};

/// System flags (RFC 9051 2.3.2).
pub const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// Keywords announced in FLAGS for every mailbox (RFC 5788 registry: the
/// ones clients commonly set).
pub const KNOWN_KEYWORDS: [&str; 6] = [
    "$MeetingNotice",
    "$Forwarded",
    "$MDNSent",
    "$Junk",
    "$NotJunk",
    "$Phishing",
];

/// Most flags listed in the FLAGS and PERMANENTFLAGS responses: a mailbox
/// with thousands of distinct keywords must not make every SELECT (or
/// every new keyword's announcement) huge. RFC 9051 sets no limit;
/// `\*` in PERMANENTFLAGS tells clients that unlisted keywords are fine.
pub const MAX_FLAGS_LISTED: usize = 256;

/// Sets in the flag-set table below which it is never compacted.
const COMPACT_MIN_SETS: usize = 64;

/// Bits of [`Msg::bits`] above the flag-set index.
const RECENT: u32 = 1 << 31;
const EXPUNGED: u32 = 1 << 30;
const SET_MASK: u32 = EXPUNGED - 1;

/// One message in the view: 8 octets.
#[derive(Debug, Clone, Copy)]
pub struct Msg {
    uid: Uid,
    /// The flag-set index (low 30 bits), [`RECENT`] and [`EXPUNGED`].
    bits: u32,
}

impl Msg {
    /// A message with no flags (for tests of code that takes views apart).
    #[cfg(test)]
    pub fn new(uid: Uid) -> Msg {
        Msg { uid, bits: 0 }
    }

    pub fn uid(&self) -> Uid {
        self.uid
    }

    /// \Recent for this session (RFC 3501 2.3.2).
    pub fn recent(&self) -> bool {
        self.bits & RECENT != 0
    }

    /// Expunged elsewhere, not yet reported (RFC 2180 4.1).
    pub fn expunged(&self) -> bool {
        self.bits & EXPUNGED != 0
    }

    fn set(&self) -> usize {
        (self.bits & SET_MASK) as usize
    }
}

/// The distinct flag sets of a view, each stored once and shared by the
/// messages that have it, with how many messages hold each. Set 0 is the
/// empty set.
struct FlagSets {
    sets: Vec<Arc<[String]>>,
    refs: Vec<u32>,
    index: HashMap<Arc<[String]>, u32>,
    /// Sets with a zero count (still in the table).
    dead: usize,
}

impl FlagSets {
    fn new() -> FlagSets {
        let empty: Arc<[String]> = Arc::from(Vec::new());
        FlagSets {
            index: HashMap::from([(empty.clone(), 0)]),
            sets: vec![empty],
            refs: vec![0],
            // The empty set, held by no message yet.
            dead: 1,
        }
    }

    fn get(&self, i: usize) -> &[String] {
        self.sets.get(i).map_or(&[], |s| s)
    }

    /// The index of `flags`, added if new, counted once more. Past
    /// [`SET_MASK`] sets (more than the UID space allows messages, so never
    /// in practice) the empty set is returned rather than a wrong one.
    fn intern(&mut self, flags: &[String]) -> u32 {
        let i = match self.index.get(flags) {
            Some(&i) => i,
            None => {
                let Ok(i) = u32::try_from(self.sets.len()) else {
                    return 0;
                };
                if i > SET_MASK {
                    return 0;
                }
                let set: Arc<[String]> = Arc::from(flags.to_vec());
                self.sets.push(set.clone());
                self.refs.push(0);
                self.index.insert(set, i);
                self.dead += 1;
                i
            }
        };
        self.hold(i);
        i
    }

    /// One message more holds set `i` (which is in the table).
    fn hold(&mut self, i: u32) {
        if let Some(r) = self.refs.get_mut(i as usize) {
            if *r == 0 {
                self.dead = self.dead.saturating_sub(1);
            }
            *r = r.saturating_add(1);
        }
    }

    /// One message fewer holds set `i`.
    fn release(&mut self, i: usize) {
        if let Some(r) = self.refs.get_mut(i)
            && *r > 0
        {
            *r -= 1;
            if *r == 0 {
                self.dead += 1;
            }
        }
    }
}

/// How [`View::apply`] may report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// EXPUNGE may be sent now (RFC 9051 7.4.1: not during FETCH, STORE
    /// or SEARCH by sequence number).
    pub expunge_ok: bool,
    /// FETCH responses carry the UID (after a UID command, RFC 9051 6.4.9).
    pub with_uid: bool,
    /// IMAP4rev2: no \Recent, no RECENT.
    pub rev2: bool,
    /// CONDSTORE is on (RFC 7162 3.1): every FETCH carries MODSEQ.
    pub condstore: bool,
    /// QRESYNC is on (RFC 7162 3.2): VANISHED instead of EXPUNGE, and
    /// every FETCH carries the UID.
    pub qresync: bool,
}

/// What changed since the view's last mark, as the store reports it.
#[derive(Debug, Clone, Copy)]
pub struct Delta<'a> {
    /// Entries appended or whose flags changed, ascending UID.
    pub changed: &'a [MessageMeta],
    /// UIDs expunged, ascending.
    pub vanished: &'a [Uid],
    /// Of the new UIDs (above [`View::max_uid`]), the ones \Recent for
    /// this session, ascending.
    pub recent: &'a [Uid],
}

pub struct View {
    msgs: Vec<Msg>,
    flag_sets: FlagSets,
    /// The flags of the last FLAGS response (and, with `\*`, of
    /// PERMANENTFLAGS) beyond [`SYSTEM_FLAGS`] and [`KNOWN_KEYWORDS`],
    /// which every FLAGS lists: most mailboxes have none, so most
    /// sessions keep nothing here.
    keywords: Vec<String>,
    /// PERMANENTFLAGS is empty (EXAMINE).
    read_only: bool,
    /// Messages marked [`EXPUNGED`], not yet reported.
    pending_expunges: usize,
    /// Messages with [`RECENT`].
    recent: u32,
}

impl View {
    /// The view of a freshly selected mailbox: `metas` ascending UID,
    /// `recent` the UIDs \Recent for this session (ascending). Through
    /// [`View::from_index`], as SELECT makes it.
    #[cfg(test)]
    pub fn new(metas: &[MessageMeta], recent: &[Uid], read_only: bool) -> View {
        let mut b = store::IndexBuilder::new(0, metas.len());
        for m in metas {
            b.push_flags(m.uid, &m.flags);
        }
        View::from_index(&b.finish(), recent, read_only)
    }

    /// The view of a freshly selected mailbox from the store's compact
    /// listing (what SELECT reads): each of the index's flag sets is
    /// interned once, not once per message. `recent` as [`View::new`].
    pub fn from_index(index: &MailboxIndex, recent: &[Uid], read_only: bool) -> View {
        let mut view = View {
            msgs: Vec::with_capacity(index.entries.len()),
            flag_sets: FlagSets::new(),
            keywords: Vec::new(),
            read_only,
            pending_expunges: 0,
            recent: 0,
        };
        // The index's set numbers as the view's; counted below per message.
        let sets: Vec<u32> = index
            .flag_sets
            .iter()
            .map(|f| {
                let i = view.flag_sets.intern(f);
                view.flag_sets.release(i as usize);
                i
            })
            .collect();
        for &(uid, set) in &index.entries {
            let set = sets.get(set as usize).copied().unwrap_or(0);
            view.flag_sets.hold(set);
            let mut bits = set;
            if recent.binary_search(&uid).is_ok() {
                bits |= RECENT;
                view.recent += 1;
            }
            view.msgs.push(Msg { uid, bits });
        }
        let distinct: Vec<String> = index.flag_sets.iter().flatten().cloned().collect();
        view.note_new_flags(distinct.iter());
        view
    }

    fn push(&mut self, meta: &MessageMeta, recent: &[Uid]) {
        let mut bits = self.flag_sets.intern(&meta.flags);
        if recent.binary_search(&meta.uid).is_ok() {
            bits |= RECENT;
            self.recent += 1;
        }
        self.msgs.push(Msg {
            uid: meta.uid,
            bits,
        });
    }

    /// Adds to [`View::announced`] the flags it lacks (up to
    /// [`MAX_FLAGS_LISTED`] in all); true if any was added.
    fn note_new_flags<'a>(&mut self, flags: impl Iterator<Item = &'a String>) -> bool {
        let fixed = SYSTEM_FLAGS.len() + KNOWN_KEYWORDS.len();
        let mut added = false;
        for f in flags {
            if fixed + self.keywords.len() >= MAX_FLAGS_LISTED {
                break;
            }
            let known = SYSTEM_FLAGS
                .iter()
                .chain(KNOWN_KEYWORDS.iter())
                .any(|a| a.eq_ignore_ascii_case(f))
                || self.keywords.iter().any(|a| a.eq_ignore_ascii_case(f));
            if !known {
                self.keywords.push(f.clone());
                added = true;
            }
        }
        added
    }

    /// Messages expunged elsewhere that the client has not been told of.
    pub fn pending_expunges(&self) -> usize {
        self.pending_expunges
    }

    /// The FLAGS list: the system flags, the usual keywords, and every
    /// other keyword announced so far, in the order announced.
    pub fn announced(&self) -> Vec<String> {
        SYSTEM_FLAGS
            .iter()
            .chain(KNOWN_KEYWORDS.iter())
            .map(|s| s.to_string())
            .chain(self.keywords.iter().cloned())
            .collect()
    }

    /// The PERMANENTFLAGS list: the announced flags and `\*`, or none in
    /// a read-only mailbox (RFC 9051 7.1).
    pub fn permanent_flags(&self) -> Vec<String> {
        if self.read_only {
            return Vec::new();
        }
        let mut p = self.announced();
        p.push("\\*".into());
        p
    }

    /// `FLAGS` and `OK [PERMANENTFLAGS]` when `flags` holds a keyword not
    /// yet announced: RFC 9051 7.3.5 has FLAGS name the flags a client
    /// may see, so they come before the FETCH that shows it.
    pub fn announce<'a>(
        &mut self,
        flags: impl Iterator<Item = &'a String>,
        out: &mut Vec<Response>,
    ) {
        if self.note_new_flags(flags) {
            out.push(Response::Data(Data::Flags(self.announced())));
            out.push(Response::Untagged {
                status: Status::Ok,
                code: Some(Code::PermanentFlags(self.permanent_flags())),
                text: if self.read_only {
                    "No permanent flags permitted".into()
                } else {
                    "Flags permitted".into()
                },
            });
        }
    }

    /// The diff (see the module doc): applies `delta` and returns what to
    /// tell the client.
    pub fn apply(&mut self, delta: Delta<'_>, report: Report) -> Vec<Response> {
        let mut out = Vec::new();
        for uid in delta.vanished {
            if let Ok(i) = self.index_of(*uid)
                && let Some(m) = self.msgs.get_mut(i)
                && !m.expunged()
            {
                self.flag_sets.release(m.set());
                // Its flags are never reported again.
                m.bits = (m.bits & !SET_MASK) | EXPUNGED;
                self.pending_expunges += 1;
            }
        }
        self.announce(delta.changed.iter().flat_map(|m| m.flags.iter()), &mut out);
        let max_uid = self.max_uid();
        let split = delta.changed.partition_point(|m| m.uid.0 <= max_uid);
        let (old, new) = delta.changed.split_at(split);
        for meta in old {
            let Ok(i) = self.index_of(meta.uid) else {
                continue;
            };
            let Some(m) = self.msgs.get(i).copied() else {
                continue;
            };
            if m.expunged() || self.flag_sets.get(m.set()) == meta.flags.as_slice() {
                continue;
            }
            self.set_flags_at(i, &meta.flags);
            let mut items = Vec::new();
            if report.with_uid || report.qresync {
                items.push(FetchValue::Uid(m.uid().0));
            }
            let mut flags = meta.flags.clone();
            if m.recent() && !report.rev2 {
                flags.push("\\Recent".into());
            }
            items.push(FetchValue::Flags(flags));
            if report.condstore {
                items.push(FetchValue::ModSeq(meta.modseq));
            }
            out.push(Response::Data(Data::Fetch {
                seq: i as u32 + 1,
                items,
            }));
        }
        if report.expunge_ok {
            self.report_expunged(&mut out, report.qresync);
        }
        if !new.is_empty() {
            // Grow by an eighth at least: amortised O(1) per message (an
            // exact reserve would copy the whole view at every delivery)
            // for at most 12.5% slack in every session's view.
            if self.msgs.capacity() - self.msgs.len() < new.len() {
                self.msgs
                    .reserve_exact(new.len().max(self.msgs.len() / 8).max(16));
            }
            for meta in new {
                self.push(meta, delta.recent);
            }
            out.push(Response::Data(Data::Exists(self.exists())));
            if !report.rev2 {
                out.push(Response::Data(Data::Recent(self.recent)));
            }
        }
        self.compact();
        out
    }

    /// Rebuilds the flag-set table once dead sets outnumber live ones, so
    /// it stays within twice the live sets (amortised over the changes
    /// that killed them).
    fn compact(&mut self) {
        let sets = &self.flag_sets;
        if sets.sets.len() < COMPACT_MIN_SETS || sets.dead * 2 < sets.sets.len() {
            return;
        }
        let old = std::mem::replace(&mut self.flag_sets, FlagSets::new());
        for m in &mut self.msgs {
            if m.expunged() {
                m.bits &= !SET_MASK;
            } else {
                let set = self.flag_sets.intern(old.get(m.set()));
                m.bits = (m.bits & !SET_MASK) | set;
            }
        }
    }

    fn index_of(&self, uid: Uid) -> Result<usize, usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid)
    }

    /// The sequence number of `uid` in the view, and whether it is marked
    /// expunged (not yet reported): an updating search (RFC 5267) removes
    /// it from its result before the EXPUNGE renumbers the rest.
    pub fn seq_of(&self, uid: Uid) -> Option<(u32, bool)> {
        let i = self.index_of(uid).ok()?;
        self.msgs.get(i).map(|m| (i as u32 + 1, m.expunged()))
    }

    /// The view index of `uid`, unless it is not there or expunged.
    pub fn index(&self, uid: Uid) -> Option<usize> {
        let i = self.index_of(uid).ok()?;
        self.msgs.get(i).filter(|m| !m.expunged()).map(|_| i)
    }

    fn set_flags_at(&mut self, i: usize, flags: &[String]) {
        let set = self.flag_sets.intern(flags);
        if let Some(m) = self.msgs.get_mut(i) {
            let old = m.set();
            m.bits = (m.bits & !SET_MASK) | set;
            self.flag_sets.release(old);
        }
    }

    /// Records the flags a STORE (or FETCH setting \Seen) of this session
    /// just wrote; the caller has announced them.
    pub fn set_flags(&mut self, uid: Uid, flags: &[String]) {
        if let Ok(i) = self.index_of(uid)
            && self.msgs.get(i).is_some_and(|m| !m.expunged())
        {
            self.set_flags_at(i, flags);
        }
    }

    /// Sends EXPUNGE for every message marked expunged and drops them from
    /// the view (ascending, each number as it is after the previous ones);
    /// with `vanished` (QRESYNC, RFC 7162 3.2.10) one `VANISHED uid-set`
    /// instead.
    pub fn report_expunged(&mut self, out: &mut Vec<Response>, vanished: bool) {
        if self.pending_expunges == 0 {
            return;
        }
        let mut seq = 1u32;
        let mut recent_gone = 0;
        let mut gone: Vec<u32> = Vec::new();
        self.msgs.retain(|m| {
            if m.expunged() {
                if vanished {
                    gone.push(m.uid.0);
                } else {
                    out.push(Response::Data(Data::Expunge(seq)));
                }
                recent_gone += u32::from(m.recent());
                false
            } else {
                seq += 1;
                true
            }
        });
        if !gone.is_empty() {
            out.push(Response::Data(Data::Vanished {
                earlier: false,
                uids: proto_imap::types::format_set(&gone),
            }));
        }
        self.recent -= recent_gone;
        self.pending_expunges = 0;
    }

    /// Marks the given UIDs (ascending) expunged: this session removed them.
    pub fn mark_expunged(&mut self, uids: &[Uid]) {
        for uid in uids {
            if let Ok(i) = self.index_of(*uid)
                && let Some(m) = self.msgs.get_mut(i)
                && !m.expunged()
            {
                self.flag_sets.release(m.set());
                m.bits = (m.bits & !SET_MASK) | EXPUNGED;
                self.pending_expunges += 1;
            }
        }
    }

    /// The messages of the view, in sequence-number order.
    pub fn msgs(&self) -> &[Msg] {
        &self.msgs
    }

    /// The message at view index `i` (sequence number `i + 1`).
    pub fn get(&self, i: usize) -> Option<&Msg> {
        self.msgs.get(i)
    }

    /// A message's stored flags as last reported to this session.
    pub fn flags_of(&self, m: &Msg) -> &[String] {
        self.flag_sets.get(m.set())
    }

    pub fn has_flag(&self, m: &Msg, flag: &str) -> bool {
        self.flags_of(m)
            .iter()
            .any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// The flags as reported: \Recent only to IMAP4rev1 clients.
    pub fn flags(&self, m: &Msg, rev2: bool) -> Vec<String> {
        let mut f = self.flags_of(m).to_vec();
        if m.recent() && !rev2 {
            f.push("\\Recent".into());
        }
        f
    }

    pub fn exists(&self) -> u32 {
        self.msgs.len() as u32
    }

    /// Messages without \Seen (not counting those expunged elsewhere):
    /// a sum over the flag-set table, not a pass over the messages.
    pub fn unseen_count(&self) -> u32 {
        let sets = &self.flag_sets;
        sets.sets
            .iter()
            .zip(&sets.refs)
            .filter(|(set, _)| !set.iter().any(|f| f.eq_ignore_ascii_case("\\Seen")))
            .map(|(_, &n)| n)
            .sum()
    }

    pub fn recent_count(&self) -> u32 {
        self.recent
    }

    pub fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.uid().0)
    }

    /// The view indices a set names, ascending. Sequence numbers beyond the
    /// view are an error (RFC 9051 9: invalid message sequence number);
    /// UIDs that do not exist are ignored (RFC 9051 6.4.8). `$` is
    /// `saved`, the UIDs of the last `SEARCH RETURN (SAVE)` (RFC 5182).
    pub fn resolve(&self, set: &SeqSet, uid: bool, saved: &[Uid]) -> Result<Vec<usize>, String> {
        if let SeqSet::Saved = set {
            return Ok(self
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| saved.binary_search(&m.uid()).is_ok())
                .map(|(i, _)| i)
                .collect());
        }
        if uid {
            let iv = set.intervals(self.max_uid());
            return Ok(self
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| in_intervals(&iv, m.uid().0))
                .map(|(i, _)| i)
                .collect());
        }
        let n = self.exists();
        if set.max_value() > n {
            return Err("Invalid message sequence number".into());
        }
        let mut out = Vec::new();
        for (a, b) in set.intervals(n) {
            for seq in a.max(1)..=b.min(n) {
                out.push(seq as usize - 1);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::BodyId;

    fn meta(uid: u32, flags: &[&str]) -> MessageMeta {
        MessageMeta {
            uid: Uid(uid),
            body: BodyId(1),
            size: 1,
            internal_date: 0,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            modseq: 1,
        }
    }

    fn wire(rs: &[Response]) -> Vec<String> {
        let enc = proto_imap::Encoder { utf8: false };
        rs.iter()
            .map(|r| {
                let mut b = Vec::new();
                r.write(&enc, &mut b);
                String::from_utf8_lossy(&b).trim_end().to_string()
            })
            .collect()
    }

    fn view(n: u32) -> View {
        let metas: Vec<MessageMeta> = (1..=n).map(|u| meta(u, &[])).collect();
        View::new(&metas, &[], false)
    }

    const REV1: Report = Report {
        condstore: false,
        qresync: false,
        expunge_ok: true,
        with_uid: false,
        rev2: false,
    };

    fn apply(v: &mut View, changed: &[MessageMeta], vanished: &[u32], r: Report) -> Vec<String> {
        let vanished: Vec<Uid> = vanished.iter().map(|u| Uid(*u)).collect();
        let recent: Vec<Uid> = changed.iter().map(|m| m.uid).collect();
        let delta = Delta {
            changed,
            vanished: &vanished,
            recent: &recent,
        };
        wire(&v.apply(delta, r))
    }

    #[test]
    fn a_message_costs_eight_octets() {
        assert_eq!(std::mem::size_of::<Msg>(), 8);
    }

    #[test]
    fn nothing_changed_says_nothing() {
        let mut v = view(3);
        assert!(apply(&mut v, &[], &[], REV1).is_empty());
    }

    #[test]
    fn new_messages_are_exists_and_recent() {
        let mut v = view(2);
        let r = apply(&mut v, &[meta(3, &[]), meta(4, &[])], &[], REV1);
        assert_eq!(r, ["* 4 EXISTS", "* 2 RECENT"]);
        let r2 = Report { rev2: true, ..REV1 };
        assert_eq!(apply(&mut v, &[meta(5, &[])], &[], r2), ["* 5 EXISTS"]);
        assert_eq!(v.max_uid(), 5);
    }

    #[test]
    fn changed_flags_are_fetch_and_unchanged_ones_are_silent() {
        let mut v = view(3);
        let r = apply(&mut v, &[meta(2, &["\\Seen"])], &[], REV1);
        assert_eq!(r, ["* 2 FETCH (FLAGS (\\Seen))"]);
        // The same flags again (this session's own STORE read back): quiet.
        assert!(apply(&mut v, &[meta(2, &["\\Seen"])], &[], REV1).is_empty());
        let uid = Report {
            with_uid: true,
            ..REV1
        };
        let r = apply(&mut v, &[meta(3, &["\\Deleted"])], &[], uid);
        assert_eq!(r, ["* 3 FETCH (UID 3 FLAGS (\\Deleted))"]);
    }

    #[test]
    fn expunges_wait_until_they_may_be_reported() {
        let mut v = view(4);
        let hold = Report {
            expunge_ok: false,
            ..REV1
        };
        assert!(apply(&mut v, &[], &[2, 4, 9], hold).is_empty());
        // Still shown (RFC 2180 4.1), flags no longer reported.
        assert_eq!(v.exists(), 4);
        assert!(v.get(1).is_some_and(Msg::expunged));
        assert!(apply(&mut v, &[meta(2, &["\\Seen"])], &[], hold).is_empty());
        // Each number as it is after the previous EXPUNGE (RFC 9051 7.4.1).
        let r = apply(&mut v, &[], &[], REV1);
        assert_eq!(r, ["* 2 EXPUNGE", "* 3 EXPUNGE"]);
        assert_eq!(v.exists(), 2);
    }

    #[test]
    fn fetch_then_expunge_then_exists_in_one_diff() {
        let mut v = view(3);
        let r = apply(&mut v, &[meta(3, &["\\Seen"]), meta(4, &[])], &[1], REV1);
        assert_eq!(
            r,
            [
                "* 3 FETCH (FLAGS (\\Seen))",
                "* 1 EXPUNGE",
                "* 3 EXISTS",
                "* 1 RECENT"
            ]
        );
    }

    #[test]
    fn a_new_keyword_is_announced_before_the_fetch_that_shows_it() {
        let mut v = view(1);
        let r = apply(&mut v, &[meta(1, &["$Project"])], &[], REV1);
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r[0].starts_with("* FLAGS (\\Answered") && r[0].ends_with(" $Project)"));
        assert!(r[1].starts_with("* OK [PERMANENTFLAGS (") && r[1].contains("$Project \\*)]"));
        assert_eq!(r[2], "* 1 FETCH (FLAGS ($Project))");
        // Known since: not again, whatever the case.
        let r = apply(&mut v, &[meta(1, &["$project", "\\Seen"])], &[], REV1);
        assert_eq!(r, ["* 1 FETCH (FLAGS ($project \\Seen))"]);
        // New messages bring theirs in too, before EXISTS.
        let r = apply(&mut v, &[meta(2, &["$Other"])], &[], REV1);
        assert!(
            r[0].starts_with("* FLAGS") && r[0].ends_with("$Other)"),
            "{r:?}"
        );
        assert_eq!(r[2], "* 2 EXISTS");
    }

    #[test]
    fn a_read_only_view_announces_no_permanent_flags() {
        let mut v = View::new(&[meta(1, &[])], &[], true);
        let r = apply(&mut v, &[meta(1, &["kw"])], &[], REV1);
        assert!(r[1].starts_with("* OK [PERMANENTFLAGS ()]"), "{r:?}");
    }

    #[test]
    fn unseen_counts_live_messages_without_seen() {
        let metas = [
            meta(1, &["\\Seen"]),
            meta(2, &[]),
            meta(3, &["$x"]),
            meta(4, &[]),
        ];
        let mut v = View::new(&metas, &[], false);
        assert_eq!(v.unseen_count(), 3);
        apply(&mut v, &[meta(2, &["\\Seen"])], &[4], REV1);
        assert_eq!(v.unseen_count(), 1);
    }

    #[test]
    fn recent_counts_follow_expunges() {
        let metas = [meta(1, &[]), meta(2, &[])];
        let mut v = View::new(&metas, &[Uid(2)], false);
        assert_eq!(v.recent_count(), 1);
        v.mark_expunged(&[Uid(2)]);
        let mut out = Vec::new();
        v.report_expunged(&mut out, false);
        assert_eq!(wire(&out), ["* 2 EXPUNGE"]);
        assert_eq!(v.recent_count(), 0);
    }

    #[test]
    fn the_flag_set_table_stays_within_twice_the_live_sets() {
        let mut v = view(2);
        for i in 0..1000 {
            let kw = format!("k{i}");
            apply(&mut v, &[meta(1, &[kw.as_str()])], &[], REV1);
        }
        // Live: the empty set (message 2) and message 1's last set.
        assert!(
            v.flag_sets.sets.len() <= COMPACT_MIN_SETS,
            "{}",
            v.flag_sets.sets.len()
        );
        assert_eq!(v.flags_of(&v.msgs()[0]), ["k999".to_string()]);
        assert!(v.flags_of(&v.msgs()[1]).is_empty());
    }

    #[test]
    fn identical_flag_sets_are_stored_once() {
        let mut sets = FlagSets::new();
        let seen = vec!["\\Seen".to_string()];
        assert_eq!(sets.intern(&[]), 0);
        let a = sets.intern(&seen);
        assert_eq!(sets.intern(&seen), a);
        assert_eq!(sets.sets.len(), 2);
        assert_eq!(sets.get(a as usize), seen.as_slice());
        // Counted: both sets are held, none is dead; then one is released.
        assert_eq!(sets.dead, 0);
        sets.release(0);
        assert_eq!(sets.dead, 1);
    }
}
