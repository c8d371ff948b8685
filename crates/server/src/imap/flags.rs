//! STORE and UID STORE (RFC 9051 6.4.6, 6.4.9): FLAGS, +FLAGS, -FLAGS and
//! .SILENT, durable before the OK. Without .SILENT every message of the
//! set gets an untagged FETCH with its flags.

use proto_imap::{Code, Data, FetchValue, SeqSet, StoreOp};
use store::{FlagOp, StoreError, Uid};

use super::select::no_mailbox;
use super::session::{CmdResult, ImapError, Out, Session, done};

impl Session {
    pub(super) async fn store_flags(
        &mut self,
        uid_cmd: bool,
        set: &SeqSet,
        op: StoreOp,
        silent: bool,
        flags: Vec<String>,
        out: &mut Out<'_>,
    ) -> CmdResult {
        let rev2 = self.rev2;
        let ctx = self.ctx.clone();
        let sel = self.selected.as_mut().ok_or_else(no_mailbox)?;
        if sel.read_only {
            return Err(ImapError::no(Some(Code::Cannot), "mailbox is read-only"));
        }
        let indices = sel.resolve(set, uid_cmd)?;
        // \Recent cannot be stored (RFC 3501 2.3.2); the store drops it.
        let uids: Vec<Uid> = indices
            .iter()
            .filter_map(|&i| sel.msgs.get(i))
            .filter(|m| !m.expunged)
            .map(|m| m.uid())
            .collect();
        let op = match op {
            StoreOp::Add => FlagOp::Add,
            StoreOp::Remove => FlagOp::Remove,
            StoreOp::Replace => FlagOp::Replace,
        };
        if !uids.is_empty() {
            let changed = match ctx.store.set_flags(sel.id(), uids, op, flags).await {
                Ok(c) => c,
                Err(StoreError::Invalid(why)) => return Err(ImapError::Bad(why)),
                Err(e) => return Err(e.into()),
            };
            for c in changed {
                if let Some(m) = sel.msgs.iter_mut().find(|m| m.uid() == c.uid) {
                    m.meta.flags = c.flags;
                    m.meta.modseq = c.modseq;
                }
            }
        }
        let mut expunge_issued = false;
        for i in indices {
            let Some(m) = sel.msgs.get(i) else { continue };
            if m.expunged {
                expunge_issued = true;
                continue;
            }
            if !silent {
                let mut items = Vec::new();
                if uid_cmd {
                    items.push(FetchValue::Uid(m.uid().0));
                }
                items.push(FetchValue::Flags(m.flags(rev2)));
                out.data(Data::Fetch {
                    seq: i as u32 + 1,
                    items,
                });
            }
        }
        if expunge_issued && !uid_cmd {
            return Err(ImapError::no(
                Some(Code::ExpungeIssued),
                "some messages were expunged by another session",
            ));
        }
        done("STORE completed")
    }
}
