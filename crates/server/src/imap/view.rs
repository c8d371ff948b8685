//! A selected mailbox as one session sees it (RFC 9051 2.3.1.2): the
//! sequence-number view (seq n is `msgs[n-1]`), each message's flags as
//! last reported, and its own \Recent set.
//!
//! The store's change feed (through the hub) marks the view dirty; at the
//! moments RFC 9051 7.4.1 allows, [`Selected::sync`] reloads the mailbox
//! and reports the difference: `EXPUNGE` (only where allowed; otherwise
//! the message stays in the view, marked, until it can be reported),
//! `FETCH (FLAGS)` for changed flags, `EXISTS` (and `RECENT` for rev1) for
//! new messages.

use std::sync::Arc;

use proto_imap::types::in_intervals;
use proto_imap::{Data, FetchValue, SeqSet};
use store::{MailboxId, MailboxInfo, MessageMeta, Uid};
use tokio::sync::watch;

use super::session::{ImapContext, ImapError, Out};

/// One message in the view.
#[derive(Debug, Clone)]
pub struct Msg {
    pub meta: MessageMeta,
    /// \Recent for this session (RFC 3501 2.3.2).
    pub recent: bool,
    /// Expunged elsewhere, not yet reported (RFC 2180 4.1).
    pub expunged: bool,
}

impl Msg {
    pub fn uid(&self) -> Uid {
        self.meta.uid
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.meta.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// The flags as reported: \Recent only to IMAP4rev1 clients.
    pub fn flags(&self, rev2: bool) -> Vec<String> {
        let mut f = self.meta.flags.clone();
        if self.recent && !rev2 {
            f.push("\\Recent".into());
        }
        f
    }
}

pub struct Selected {
    pub info: MailboxInfo,
    pub read_only: bool,
    pub msgs: Vec<Msg>,
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
        let msgs = metas
            .into_iter()
            .map(|meta| Msg {
                recent: recent.binary_search(&meta.uid).is_ok(),
                meta,
                expunged: false,
            })
            .collect();
        Ok(Selected {
            info,
            read_only,
            msgs,
            watch,
            saved: Vec::new(),
            pending: false,
        })
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
        self.msgs.iter().filter(|m| m.recent).count() as u32
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
        // Merge walk: both are in ascending UID order.
        let mut fi = fresh.iter().peekable();
        let last_uid = self.max_uid();
        for (i, m) in self.msgs.iter_mut().enumerate() {
            while fi.peek().is_some_and(|f| f.uid < m.uid()) {
                fi.next();
            }
            match fi.peek() {
                Some(f) if f.uid == m.uid() => {
                    if f.flags != m.meta.flags && !m.expunged {
                        m.meta.flags = f.flags.clone();
                        m.meta.modseq = f.modseq;
                        let mut items = Vec::new();
                        if with_uid {
                            items.push(FetchValue::Uid(m.uid().0));
                        }
                        items.push(FetchValue::Flags(m.flags(rev2)));
                        out.data(Data::Fetch {
                            seq: i as u32 + 1,
                            items,
                        });
                    }
                }
                _ => m.expunged = true,
            }
        }
        if expunge_ok {
            self.report_expunged(out);
        }
        let new: Vec<MessageMeta> = fresh.into_iter().filter(|f| f.uid.0 > last_uid).collect();
        if !new.is_empty() {
            let uids: Vec<Uid> = new.iter().map(|m| m.uid).collect();
            let recent = ctx.recent.claim(self.id(), &uids, !self.read_only);
            for meta in new {
                self.msgs.push(Msg {
                    recent: recent.binary_search(&meta.uid).is_ok(),
                    meta,
                    expunged: false,
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
        if !self.msgs.iter().any(|m| m.expunged) {
            return;
        }
        let mut seq = 1u32;
        self.msgs.retain(|m| {
            if m.expunged {
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
                m.expunged = true;
            }
        }
    }
}
