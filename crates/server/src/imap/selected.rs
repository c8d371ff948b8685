//! The data of the selected state: a mailbox's [`View`], the mod-sequence
//! it is current to, and the hub's wake-up for changes to it.
//!
//! The store's change feed (through the hub) marks the mailbox dirty; at
//! the moments RFC 9051 7.4.1 allows, [`Selected::sync`] reads only what
//! changed since the view's mark ([`store::Store::changes_since`]: the
//! entries changed and the UIDs expunged after it, one snapshot) and
//! hands it to the view's pure diff. So N idle sessions on one mailbox
//! cost O(change) each per delivery, not O(mailbox). Everything the view
//! does not keep (body, size, INTERNALDATE, mod-sequence) is re-read by
//! the commands that need it, a bounded range of UIDs at a time
//! ([`Selected::load_meta`]).

use std::sync::Arc;

use store::{MailboxInfo, MessageMeta, StoreError, Uid};
use tokio::sync::watch;

use super::context::ImapContext;
use super::error::ImapError;
use super::out::Out;
use super::view::{Delta, Msg, Report, View};

/// Most view positions one metadata re-read spans: bounds the rows (and
/// memory) of one [`Selected::load_meta`] whatever the size of the set.
pub const META_CHUNK: usize = 512;

pub struct Selected {
    pub info: MailboxInfo,
    pub read_only: bool,
    pub view: View,
    /// The mailbox's mod-sequence the view is current to (RFC 7162 3.1):
    /// the next sync reads what changed after it.
    modseq: u64,
    watch: watch::Receiver<u64>,
    /// SEARCHRES (RFC 5182): the UIDs of the last `RETURN (SAVE)`.
    pub saved: Vec<Uid>,
    /// A change arrived while the driver was waiting (IDLE).
    pending: bool,
    /// Searches with `RETURN (UPDATE)` (RFC 5267 4.3), kept current.
    pub updates: Vec<super::context_search::SearchUpdate>,
    /// Bumped whenever the view changes (what an updating search must
    /// look at again).
    pub version: u64,
}

impl Selected {
    /// Opens a mailbox: loads its messages and claims \Recent. The watch
    /// is taken before the read, so a change committed in between wakes
    /// the session (and the next sync reads it from the mark).
    /// `info`'s counts may be left out ([`store::Store::mailbox_uncounted`]):
    /// they are set from the view.
    pub async fn open(
        ctx: &Arc<ImapContext>,
        mut info: MailboxInfo,
        read_only: bool,
    ) -> Result<Selected, ImapError> {
        let watch = ctx.hub.watch(info.id);
        // UIDs and flags only (issue 18): the rest is read per command.
        let index = ctx.store.mailbox_index(info.id).await?;
        let recent = ctx.recent.claim_above(info.id, index.uids(), !read_only);
        let view = View::from_index(&index, &recent, read_only);
        info.messages = view.exists();
        info.unseen = view.unseen_count();
        Ok(Selected {
            info,
            read_only,
            view,
            modseq: index.highestmodseq,
            watch,
            saved: Vec::new(),
            pending: false,
            updates: Vec::new(),
            version: 0,
        })
    }

    pub fn id(&self) -> store::MailboxId {
        self.info.id
    }

    /// The HIGHESTMODSEQ this session has been shown (RFC 7162 3.1.2.1).
    pub fn modseq(&self) -> u64 {
        self.modseq
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

    /// Reads what changed since the view's mark and reports it.
    pub async fn sync(
        &mut self,
        ctx: &ImapContext,
        out: &mut Out<'_>,
        report: Report,
    ) -> Result<(), ImapError> {
        self.watch.mark_unchanged();
        self.pending = false;
        let mut delta = match ctx.store.changes_since(self.id(), self.modseq).await {
            Ok(d) => d,
            // Deleted under us: every message is gone.
            Err(StoreError::NotFound(_)) => store::MailboxChanges {
                highestmodseq: self.modseq,
                changed: Vec::new(),
                vanished: self.view.msgs().iter().map(|m| m.uid()).collect(),
                trimmed: false,
            },
            Err(e) => return Err(e.into()),
        };
        if delta.trimmed {
            // Tombstones this view needed were trimmed (a session idle
            // past `[store] tombstone_retention` without a sync): what is
            // gone is what the view has and the mailbox has not.
            let present = ctx.store.mailbox_index(self.id()).await?;
            delta.vanished = self
                .view
                .msgs()
                .iter()
                .map(|m| m.uid())
                .filter(|u| !present.contains(*u))
                .collect();
        }
        let max_uid = self.view.max_uid();
        let new: Vec<Uid> = delta
            .changed
            .iter()
            .map(|m| m.uid)
            .filter(|u| u.0 > max_uid)
            .collect();
        let recent = if new.is_empty() {
            Vec::new()
        } else {
            ctx.recent.claim(self.id(), &new, !self.read_only)
        };
        // An updating search hears of expunged messages before the
        // EXPUNGE renumbers the rest (RFC 5267 4.3): the view marks them,
        // the searches drop them, then the view reports them.
        let updating = !self.updates.is_empty();
        let responses = self.view.apply(
            Delta {
                changed: &delta.changed,
                vanished: &delta.vanished,
                recent: &recent,
            },
            Report {
                expunge_ok: report.expunge_ok && !updating,
                ..report
            },
        );
        self.modseq = self.modseq.max(delta.highestmodseq);
        for r in &responses {
            out.push(r);
        }
        if updating {
            self.update_removals(out);
            if report.expunge_ok {
                let mut rs = Vec::new();
                self.view.report_expunged(&mut rs, report.qresync);
                for r in &rs {
                    out.push(r);
                }
            }
        }
        if !delta.changed.is_empty() || !delta.vanished.is_empty() {
            self.version += 1;
        }
        Ok(())
    }

    // The view's reads, for the commands that use the selected mailbox.

    pub fn get(&self, i: usize) -> Option<&Msg> {
        self.view.get(i)
    }

    pub fn msgs(&self) -> &[Msg] {
        self.view.msgs()
    }

    pub fn exists(&self) -> u32 {
        self.view.exists()
    }

    pub fn max_uid(&self) -> u32 {
        self.view.max_uid()
    }

    pub fn flags_of(&self, m: &Msg) -> &[String] {
        self.view.flags_of(m)
    }

    pub fn has_flag(&self, m: &Msg, flag: &str) -> bool {
        self.view.has_flag(m, flag)
    }

    pub fn flags(&self, m: &Msg, rev2: bool) -> Vec<String> {
        self.view.flags(m, rev2)
    }

    /// The view indices a set names (see [`View::resolve`]).
    pub fn resolve(&self, set: &proto_imap::SeqSet, uid: bool) -> Result<Vec<usize>, ImapError> {
        self.view
            .resolve(set, uid, &self.saved)
            .map_err(ImapError::Bad)
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
            .filter_map(|&i| self.view.get(i))
            .map(|m| m.uid());
        let Some(first) = uids.next() else {
            return Ok(Vec::new());
        };
        let last = uids.next_back().unwrap_or(first);
        match ctx.store.messages_range(self.id(), first, last).await {
            Ok(m) => Ok(m),
            // Deleted under us: every message is gone.
            Err(StoreError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// FLAGS and PERMANENTFLAGS if `flags` holds a keyword not announced.
    pub fn announce(&mut self, flags: &[String], out: &mut Out<'_>) {
        let mut news = Vec::new();
        self.view.announce(flags.iter(), &mut news);
        for r in &news {
            out.push(r);
        }
    }

    /// Records flags this session wrote, announcing new keywords first
    /// (RFC 9051 7.3.5) so that the FETCH which follows may show them.
    pub fn record_flags(&mut self, changed: &[MessageMeta], out: &mut Out<'_>) {
        let mut news = Vec::new();
        self.view
            .announce(changed.iter().flat_map(|m| m.flags.iter()), &mut news);
        for r in &news {
            out.push(r);
        }
        for c in changed {
            self.view.set_flags(c.uid, &c.flags);
        }
        if !changed.is_empty() {
            self.version += 1;
        }
    }

    /// The UIDs in `set` (UIDs; `*` is the highest in the view) expunged
    /// after mod-sequence `since` and no longer in the view, as one
    /// `VANISHED (EARLIER)` (RFC 7162 3.2.5.1, 3.2.6); a UID still in the
    /// view was expunged after the view's mark, and the next sync reports
    /// it as plain VANISHED. When tombstones after `since` were trimmed
    /// (`[store] tombstone_retention`), the answer is every UID of `set`
    /// (without one: every UID below UIDNEXT) that is neither in the
    /// mailbox nor in the view (RFC 7162 3.2.5.2: the known UIDs stand in
    /// for the missing tombstones), so it is never less than what the
    /// client must remove; UIDs it never knew are harmless to it.
    pub async fn vanished_earlier(
        &self,
        ctx: &ImapContext,
        since: u64,
        set: Option<&proto_imap::SeqSet>,
        out: &mut Out<'_>,
    ) -> Result<Vec<MessageMeta>, ImapError> {
        let changes = match ctx.store.changes_since(self.id(), since.max(1)).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if changes.trimmed {
            let top = self.max_uid().max(self.info.uidnext.saturating_sub(1));
            // Never a UID above the highest one given out (UIDNEXT - 1).
            let known: Vec<(u32, u32)> = match set {
                Some(s) => s
                    .intervals(top.max(1))
                    .into_iter()
                    .filter(|&(a, _)| a <= top)
                    .map(|(a, b)| (a, b.min(top)))
                    .collect(),
                None if top == 0 => Vec::new(),
                None => vec![(1, top)],
            };
            let all = match ctx.store.mailbox_index(self.id()).await {
                Ok(c) => c,
                Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            // The mailbox's UIDs and the view's, merged ascending.
            let mut here: Vec<u32> = all.uids().map(|u| u.0).collect();
            here.extend(self.view.msgs().iter().map(|m| m.uid().0));
            here.sort_unstable();
            here.dedup();
            let runs = proto_imap::types::subtract(&known, &here);
            if !runs.is_empty() {
                out.data(proto_imap::Data::Vanished {
                    earlier: true,
                    uids: proto_imap::types::format_runs(&runs),
                });
            }
            // Entries are never trimmed: the changed ones are exact.
            return Ok(changes.changed);
        }
        let ivs = set.map(|s| s.intervals(self.max_uid().max(1)));
        let gone: Vec<u32> = changes
            .vanished
            .iter()
            .map(|u| u.0)
            .filter(|u| {
                ivs.as_ref()
                    .is_none_or(|iv| proto_imap::types::in_intervals(iv, *u))
            })
            .filter(|u| self.view.index(Uid(*u)).is_none())
            .collect();
        if !gone.is_empty() {
            out.data(proto_imap::Data::Vanished {
                earlier: true,
                uids: proto_imap::types::format_set(&gone),
            });
        }
        Ok(changes.changed)
    }

    /// `SELECT ... (QRESYNC (...))` (RFC 7162 3.2.5): what the client
    /// missed since its mod-sequence, when its UIDVALIDITY is current:
    /// `VANISHED (EARLIER)` for the known UIDs expunged since, then FETCH
    /// (UID FLAGS MODSEQ) for the messages changed since. seq-match data
    /// is not used: after a trim the known UIDs answer alone (RFC 7162
    /// 3.2.5.2 makes seq-match data a way to send less, never more).
    pub async fn resync(
        &self,
        ctx: &ImapContext,
        q: &proto_imap::QResync,
        rev2: bool,
        out: &mut Out<'_>,
    ) -> Result<(), ImapError> {
        if q.uidvalidity != self.info.uidvalidity {
            return Ok(());
        }
        let changed = self
            .vanished_earlier(ctx, q.modseq, q.known_uids.as_ref(), out)
            .await?;
        for meta in changed {
            let Some(i) = self.view.index(meta.uid) else {
                continue;
            };
            let Some(m) = self.view.get(i) else { continue };
            let mut flags = meta.flags.clone();
            if m.recent() && !rev2 {
                flags.push("\\Recent".into());
            }
            out.data(proto_imap::Data::Fetch {
                seq: i as u32 + 1,
                items: vec![
                    proto_imap::FetchValue::Uid(meta.uid.0),
                    proto_imap::FetchValue::Flags(flags),
                    proto_imap::FetchValue::ModSeq(meta.modseq),
                ],
            });
            out.flush_if_big().await?;
        }
        Ok(())
    }

    /// Sends EXPUNGE for `uids` (ascending), which this session removed,
    /// and for any other expunge waiting to be reported.
    /// With `vanished` (QRESYNC) as one VANISHED response.
    pub fn expunged_here(&mut self, uids: &[Uid], vanished: bool, out: &mut Out<'_>) {
        self.view.mark_expunged(uids);
        self.update_removals(out);
        self.version += 1;
        let mut rs = Vec::new();
        self.view.report_expunged(&mut rs, vanished);
        for r in &rs {
            out.push(r);
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

    #[tokio::test]
    async fn sync_reports_new_mail_and_keeps_the_mark() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        cmd(&mut s, "STORE 1 FLAGS ($c)").await.assert_ok();
        let r = cmd(&mut s, "IDLE").await;
        assert!(matches!(r.flow, Flow::Idle(_)), "{r:?}");
        kit.deliver_n(ALICE, 1).await;
        // What the driver does while idling once the hub wakes it.
        let lines = idle_sync(&mut s).await;
        // rev1: RECENT counts every message recent for this session.
        assert_eq!(lines, ["* 3 EXISTS", "* 3 RECENT"]);
        let sel = s.selected().expect("selected");
        let inbox = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        assert_eq!(sel.modseq, inbox.highestmodseq);
        assert_eq!(sel.view.flags_of(&sel.view.msgs()[0]), ["$c".to_string()]);
        // Nothing since: nothing to say.
        assert!(idle_sync(&mut s).await.is_empty());
    }
}
