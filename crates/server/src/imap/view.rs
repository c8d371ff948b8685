//! A selected mailbox as one session sees it (RFC 9051 2.3.1.2): the
//! sequence-number view (seq n is `msgs[n-1]`), each message's flags as
//! last reported, and its own \Recent set.
//!
//! The view is compact because every selected session of every client
//! holds one: per message it keeps the UID and one `u32` (an index into
//! the session's table of distinct flag sets, plus the \Recent and
//! "expunged, not yet reported" bits), 8 octets in all. Most mailboxes
//! have a handful of distinct flag sets, so the table is small; it is
//! rebuilt at each [`Selected::sync`], so it never outgrows the live sets
//! by more than one command's changes. Everything else (body, size,
//! INTERNALDATE, mod-sequence) is re-read from the store, a bounded range
//! of UIDs at a time ([`Selected::load_meta`]), by the commands that need it.
//!
//! The store's change feed (through the hub) marks the view dirty; at the
//! moments RFC 9051 7.4.1 allows, [`Selected::sync`] reloads the mailbox
//! and reports the difference: `EXPUNGE` (only where allowed; otherwise
//! the message stays in the view, marked, until it can be reported),
//! `FETCH (FLAGS)` for changed flags, `EXISTS` (and `RECENT` for rev1) for
//! new messages.

use std::collections::HashMap;
use std::sync::Arc;

use proto_imap::types::in_intervals;
use proto_imap::{Data, FetchValue, SeqSet};
use store::{MailboxId, MailboxInfo, MessageMeta, Uid};
use tokio::sync::watch;

use super::session::{ImapContext, ImapError, Out};

/// Most view positions one metadata re-read spans: bounds the rows (and
/// memory) of one [`Selected::load_meta`] whatever the size of the set.
pub const META_CHUNK: usize = 512;

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
/// messages that have it. Set 0 is the empty set.
struct FlagSets {
    sets: Vec<Arc<[String]>>,
    index: HashMap<Arc<[String]>, u32>,
}

impl FlagSets {
    fn new() -> FlagSets {
        let empty: Arc<[String]> = Arc::from(Vec::new());
        FlagSets {
            index: HashMap::from([(empty.clone(), 0)]),
            sets: vec![empty],
        }
    }

    fn get(&self, i: usize) -> &[String] {
        self.sets.get(i).map_or(&[], |s| s)
    }

    /// The index of `flags`, added if new. Past [`SET_MASK`] sets (more
    /// than the UID space allows messages, so never in practice) the empty
    /// set is returned rather than a wrong one.
    fn intern(&mut self, flags: &[String]) -> u32 {
        if let Some(&i) = self.index.get(flags) {
            return i;
        }
        let Ok(i) = u32::try_from(self.sets.len()) else {
            return 0;
        };
        if i > SET_MASK {
            return 0;
        }
        let set: Arc<[String]> = Arc::from(flags.to_vec());
        self.sets.push(set.clone());
        self.index.insert(set, i);
        i
    }
}

pub struct Selected {
    pub info: MailboxInfo,
    pub read_only: bool,
    msgs: Vec<Msg>,
    flag_sets: FlagSets,
    watch: watch::Receiver<u64>,
    /// SEARCHRES (RFC 5182): the UIDs of the last `RETURN (SAVE)`.
    pub saved: Vec<Uid>,
    /// A change arrived while the driver was waiting (IDLE).
    pending: bool,
}

impl Selected {
    /// Opens a mailbox: loads its messages and claims \Recent.
    pub async fn open(
        ctx: &Arc<ImapContext>,
        info: MailboxInfo,
        read_only: bool,
    ) -> Result<Selected, ImapError> {
        let watch = ctx.hub.watch(info.id);
        let metas = ctx.store.messages(info.id).await?;
        let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
        let recent = ctx.recent.claim(info.id, &uids, !read_only);
        let mut flag_sets = FlagSets::new();
        let msgs = metas
            .iter()
            .map(|meta| {
                let mut bits = flag_sets.intern(&meta.flags);
                if recent.binary_search(&meta.uid).is_ok() {
                    bits |= RECENT;
                }
                Msg {
                    uid: meta.uid,
                    bits,
                }
            })
            .collect();
        Ok(Selected {
            info,
            read_only,
            msgs,
            flag_sets,
            watch,
            saved: Vec::new(),
            pending: false,
        })
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

    /// Every distinct flag in the view (for the FLAGS response).
    pub fn distinct_flags(&self) -> impl Iterator<Item = &String> {
        self.flag_sets.sets.iter().flat_map(|s| s.iter())
    }

    /// Records the flags a STORE (or FETCH setting \Seen) just wrote.
    pub fn set_flags(&mut self, uid: Uid, flags: &[String]) {
        let set = self.flag_sets.intern(flags);
        if let Ok(i) = self.msgs.binary_search_by_key(&uid, |m| m.uid)
            && let Some(m) = self.msgs.get_mut(i)
        {
            m.bits = (m.bits & !SET_MASK) | set;
        }
    }

    /// Re-reads from the store the metadata of the messages at view
    /// `indices` (ascending, spanning fewer than [`META_CHUNK`] positions;
    /// see [`meta_chunks`]): ascending UID, without the ones expunged since.
    pub async fn load_meta(
        &self,
        ctx: &ImapContext,
        indices: &[usize],
    ) -> Result<Vec<MessageMeta>, ImapError> {
        let mut uids = indices
            .iter()
            .filter_map(|&i| self.msgs.get(i))
            .map(Msg::uid);
        let Some(first) = uids.next() else {
            return Ok(Vec::new());
        };
        let last = uids.next_back().unwrap_or(first);
        match ctx.store.messages_range(self.id(), first, last).await {
            Ok(m) => Ok(m),
            // Deleted under us: every message is gone.
            Err(store::StoreError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn id(&self) -> MailboxId {
        self.info.id
    }

    pub fn is_dirty(&self) -> bool {
        self.pending || self.watch.has_changed().unwrap_or(false)
    }

    /// Resolves when the mailbox changes (then [`Selected::is_dirty`]).
    pub async fn changed(&mut self) {
        if self.watch.changed().await.is_err() {
            // The hub is gone (shutdown): nothing will change any more.
            std::future::pending::<()>().await;
        }
        self.pending = true;
    }

    pub fn exists(&self) -> u32 {
        self.msgs.len() as u32
    }

    pub fn recent_count(&self) -> u32 {
        self.msgs.iter().filter(|m| m.recent()).count() as u32
    }

    pub fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.uid().0)
    }

    /// The view indices a set names, ascending. Sequence numbers beyond the
    /// view are an error (RFC 9051 9: invalid message sequence number);
    /// UIDs that do not exist are ignored (RFC 9051 6.4.8). `$` is the saved
    /// search result.
    pub fn resolve(&self, set: &SeqSet, uid: bool) -> Result<Vec<usize>, ImapError> {
        if let SeqSet::Saved = set {
            return Ok(self
                .msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| self.saved.binary_search(&m.uid()).is_ok())
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
            return Err(ImapError::Bad("Invalid message sequence number".into()));
        }
        let mut out = Vec::new();
        for (a, b) in set.intervals(n) {
            for seq in a.max(1)..=b.min(n) {
                out.push(seq as usize - 1);
            }
        }
        Ok(out)
    }

    /// Reloads the mailbox and reports what changed (see the module doc).
    pub async fn sync(
        &mut self,
        ctx: &Arc<ImapContext>,
        out: &mut Out<'_>,
        expunge_ok: bool,
        with_uid: bool,
        rev2: bool,
    ) -> Result<(), ImapError> {
        self.watch.mark_unchanged();
        self.pending = false;
        let fresh = match ctx.store.messages(self.id()).await {
            Ok(f) => f,
            // Deleted under us: every message is gone.
            Err(store::StoreError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        // Merge walk: both are in ascending UID order. The flag-set table
        // is rebuilt from the fresh flags, dropping sets nobody has any more.
        let old_sets = std::mem::replace(&mut self.flag_sets, FlagSets::new());
        let mut fi = fresh.iter().peekable();
        let last_uid = self.max_uid();
        for (i, m) in self.msgs.iter_mut().enumerate() {
            while fi.peek().is_some_and(|f| f.uid < m.uid()) {
                fi.next();
            }
            let old = old_sets.get(m.set());
            match fi.peek() {
                Some(f) if f.uid == m.uid() && !m.expunged() => {
                    let set = self.flag_sets.intern(&f.flags);
                    m.bits = (m.bits & !SET_MASK) | set;
                    if f.flags.as_slice() != old {
                        let mut items = Vec::new();
                        if with_uid {
                            items.push(FetchValue::Uid(m.uid().0));
                        }
                        let mut flags = f.flags.clone();
                        if m.recent() && !rev2 {
                            flags.push("\\Recent".into());
                        }
                        items.push(FetchValue::Flags(flags));
                        out.data(Data::Fetch {
                            seq: i as u32 + 1,
                            items,
                        });
                    }
                }
                // Already marked: its flags are never reported again.
                Some(f) if f.uid == m.uid() => m.bits &= !SET_MASK,
                _ => m.bits = (m.bits & !SET_MASK) | EXPUNGED,
            }
        }
        drop(old_sets);
        if expunge_ok {
            self.report_expunged(out);
        }
        let new: Vec<&MessageMeta> = fresh.iter().filter(|f| f.uid.0 > last_uid).collect();
        if !new.is_empty() {
            let uids: Vec<Uid> = new.iter().map(|m| m.uid).collect();
            let recent = ctx.recent.claim(self.id(), &uids, !self.read_only);
            self.msgs.reserve_exact(new.len());
            for meta in new {
                let mut bits = self.flag_sets.intern(&meta.flags);
                if recent.binary_search(&meta.uid).is_ok() {
                    bits |= RECENT;
                }
                self.msgs.push(Msg {
                    uid: meta.uid,
                    bits,
                });
            }
            out.data(Data::Exists(self.exists()));
            if !rev2 {
                out.data(Data::Recent(self.recent_count()));
            }
        }
        Ok(())
    }

    /// Sends EXPUNGE for every message marked expunged and drops them from
    /// the view (ascending, each number as it is after the previous ones).
    pub fn report_expunged(&mut self, out: &mut Out<'_>) {
        if !self.msgs.iter().any(Msg::expunged) {
            return;
        }
        let mut seq = 1u32;
        self.msgs.retain(|m| {
            if m.expunged() {
                out.data(Data::Expunge(seq));
                false
            } else {
                seq += 1;
                true
            }
        });
    }

    /// Marks the given UIDs expunged (this session removed them).
    pub fn mark_expunged(&mut self, uids: &[Uid]) {
        for m in &mut self.msgs {
            if uids.binary_search(&m.uid()).is_ok() {
                m.bits |= EXPUNGED;
            }
        }
    }
}

/// Splits ascending view indices into runs that each span fewer than
/// [`META_CHUNK`] positions, so that one [`Selected::load_meta`] per run
/// reads a bounded number of rows however sparse the set is.
pub fn meta_chunks(indices: &[usize]) -> impl Iterator<Item = &[usize]> {
    let mut rest = indices;
    std::iter::from_fn(move || {
        let first = *rest.first()?;
        let n = rest.partition_point(|&i| i < first.saturating_add(META_CHUNK));
        let (chunk, tail) = rest.split_at(n.max(1));
        rest = tail;
        Some(chunk)
    })
}

/// The metadata of `uid` in a [`Selected::load_meta`] result.
pub fn find_meta(metas: &[MessageMeta], uid: Uid) -> Option<&MessageMeta> {
    metas
        .binary_search_by_key(&uid, |m| m.uid)
        .ok()
        .and_then(|i| metas.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::session::Flow;
    use crate::imap::testkit::{ALICE, Kit, cmd, idle_sync};

    #[test]
    fn a_message_costs_eight_octets() {
        assert_eq!(std::mem::size_of::<Msg>(), 8);
    }

    #[test]
    fn meta_chunks_bound_the_span_of_each_read() {
        let all: Vec<usize> = (0..1300).collect();
        let spans: Vec<(usize, usize)> =
            meta_chunks(&all).map(|c| (c[0], c[c.len() - 1])).collect();
        assert_eq!(spans, [(0, 511), (512, 1023), (1024, 1299)]);
        let sparse = [0, 5, 100_000, 100_001];
        let chunks: Vec<&[usize]> = meta_chunks(&sparse).collect();
        assert_eq!(chunks, [&[0usize, 5][..], &[100_000, 100_001][..]]);
        assert_eq!(meta_chunks(&[]).count(), 0);
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
    }

    #[tokio::test]
    async fn sync_reports_new_mail_and_drops_unused_flag_sets() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        for kw in ["$a", "$b", "$c"] {
            cmd(&mut s, &format!("STORE 1 FLAGS ({kw})"))
                .await
                .assert_ok();
        }
        let r = cmd(&mut s, "IDLE").await;
        assert!(matches!(r.flow, Flow::Idle(_)), "{r:?}");
        kit.deliver_n(ALICE, 1).await;
        // What the driver does while idling once the hub wakes it.
        let lines = idle_sync(&mut s).await;
        // rev1: RECENT counts every message recent for this session.
        assert_eq!(lines, ["* 3 EXISTS", "* 3 RECENT"]);
        let sel = s.selected.as_ref().expect("selected");
        // The empty set and {$c}: the sets of $a and $b went at the sync.
        assert_eq!(sel.flag_sets.sets.len(), 2);
        assert_eq!(sel.flags_of(&sel.msgs()[0]), ["$c".to_string()]);
    }
}
