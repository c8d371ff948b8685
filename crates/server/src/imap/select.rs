//! SELECT / EXAMINE (RFC 9051 6.3.2, 6.3.3), CLOSE (6.4.1), UNSELECT
//! (6.4.2, RFC 3691), EXPUNGE (6.4.3) and UID EXPUNGE (6.4.9, RFC 4315).

use proto_imap::{Code, Data, Mailbox, SelectParams, SeqSet, Status};
use store::Uid;

use super::selected::Selected;
use super::session::{CmdResult, ImapError, Out, Session, done};

impl Session {
    pub(super) async fn select(
        &mut self,
        name: &Mailbox,
        read_only: bool,
        params: SelectParams,
        out: &mut Out<'_>,
    ) -> CmdResult {
        // RFC 7162 3.2.5: QRESYNC only after ENABLE QRESYNC (BAD: the
        // command is refused whole, the selected mailbox stays).
        if params.qresync.is_some() && !self.qresync {
            return Err(ImapError::Bad("ENABLE QRESYNC first".into()));
        }
        if params.condstore {
            self.condstore = true;
        }
        // RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected.
        if self.deselect().is_some() {
            out.untagged(Status::Ok, Some(Code::Closed), "Previous mailbox closed");
        }
        let account = self.account()?.to_string();
        let Some(info) = self
            .ctx
            .store
            .mailbox_uncounted(account, name.as_str().to_string())
            .await?
        else {
            return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
        };
        let sel = Selected::open(&self.ctx, info, read_only).await?;
        let view = &sel.view;
        out.data(Data::Flags(view.announced()));
        out.data(Data::Exists(view.exists()));
        if !self.rev2 {
            out.data(Data::Recent(view.recent_count()));
            if let Some(i) = view.msgs().iter().position(|m| !view.has_flag(m, "\\Seen")) {
                out.untagged(Status::Ok, Some(Code::Unseen(i as u32 + 1)), "First unseen");
            }
        }
        out.untagged(
            Status::Ok,
            Some(Code::UidValidity(sel.info.uidvalidity)),
            "UIDs valid",
        );
        // RFC 8474 4.1: SELECT and EXAMINE name the mailbox's id.
        out.untagged(
            Status::Ok,
            Some(Code::MailboxId(super::folders::mailbox_id(sel.info.id))),
            "Ok",
        );
        out.untagged(
            Status::Ok,
            Some(Code::UidNext(sel.info.uidnext.max(view.max_uid() + 1))),
            "Predicted next UID",
        );
        out.untagged(
            Status::Ok,
            Some(Code::PermanentFlags(view.permanent_flags())),
            if read_only {
                "No permanent flags permitted"
            } else {
                "Flags permitted"
            },
        );
        // RFC 7162 3.1.2.1: every mailbox keeps mod-sequences, so every
        // SELECT says where it stands.
        out.untagged(
            Status::Ok,
            Some(Code::HighestModSeq(sel.modseq())),
            "Highest",
        );
        if let Some(q) = &params.qresync {
            sel.resync(&self.ctx, q, self.rev2, out).await?;
        }
        if self.rev2 {
            out.data(Data::List {
                lsub: false,
                attributes: Vec::new(),
                name: sel.info.name.clone(),
                childinfo_subscribed: false,
            });
        }
        if !self.enter_selected(sel) {
            return Err(ImapError::Bad("not authenticated".into()));
        }
        let (code, verb) = if read_only {
            (Code::ReadOnly, "EXAMINE")
        } else {
            (Code::ReadWrite, "SELECT")
        };
        Ok((Some(code), format!("{verb} completed")))
    }

    /// CLOSE (`expunge`: removes \Deleted messages silently) or UNSELECT.
    pub(super) async fn close(&mut self, expunge: bool) -> CmdResult {
        if let Some(sel) = self.selected()
            && expunge
            && !sel.read_only
        {
            // The store's flags, not the view's: \Deleted set elsewhere
            // since the last sync goes too. UIDs and flags only.
            let fresh = self.ctx.store.mailbox_index(sel.id()).await?;
            let deleted: Vec<Uid> = fresh
                .entries
                .iter()
                .filter(|&&(_, set)| fresh.flags(set).iter().any(|f| f == "\\Deleted"))
                .map(|&(uid, _)| uid)
                .collect();
            if !deleted.is_empty() {
                self.ctx.store.expunge(sel.id(), deleted).await?;
            }
        }
        self.deselect();
        done(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        })
    }

    /// EXPUNGE, or UID EXPUNGE limited to `set`.
    pub(super) async fn expunge(&mut self, set: Option<SeqSet>, out: &mut Out<'_>) -> CmdResult {
        let report = self.report(true, set.is_some());
        let vanished = self.qresync;
        let ctx = self.ctx.clone();
        let sel = self.selected_mut().ok_or_else(no_mailbox)?;
        if sel.read_only {
            return Err(ImapError::no(Some(Code::Cannot), "mailbox is read-only"));
        }
        // Report what others did first, so the \Deleted set is current.
        sel.sync(&ctx, out, report).await?;
        let within = match &set {
            Some(s) => Some(sel.resolve(s, true)?),
            None => None,
        };
        let view = &sel.view;
        let deleted: Vec<Uid> = view
            .msgs()
            .iter()
            .enumerate()
            .filter(|(i, m)| {
                view.has_flag(m, "\\Deleted")
                    && within.as_ref().is_none_or(|w| w.binary_search(i).is_ok())
            })
            .map(|(_, m)| m.uid())
            .collect();
        if !deleted.is_empty() {
            let removed = ctx.store.expunge(sel.id(), deleted).await?;
            sel.expunged_here(&removed, vanished, out);
        }
        done("EXPUNGE completed")
    }
}

pub(super) fn no_mailbox() -> ImapError {
    ImapError::Bad("no mailbox selected".into())
}

#[cfg(test)]
mod tests {
    use crate::imap::testkit::{ALICE, Kit, cmd};

    #[tokio::test]
    async fn select_reports_exists_uidvalidity_uidnext() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 3).await;
        let info = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let mut s = kit.logged_in(ALICE).await;
        let r = cmd(&mut s, "SELECT INBOX").await;
        r.assert_ok();
        assert!(r.tagged.contains("[READ-WRITE]"), "{r:?}");
        assert!(r.has("* 3 EXISTS"), "{r:?}");
        // rev1 session: RECENT and the first unseen message.
        assert!(r.has("* 3 RECENT"), "{r:?}");
        assert!(r.has("[UNSEEN 1]"), "{r:?}");
        assert!(
            r.has(&format!("[UIDVALIDITY {}]", info.uidvalidity)),
            "{r:?}"
        );
        assert!(r.has("[UIDNEXT 4]"), "{r:?}");
        assert!(r.has("[PERMANENTFLAGS ("), "{r:?}");
        assert!(r.has("\\*)]"), "{r:?}");
        assert!(r.has("$MeetingNotice"), "{r:?}");
    }

    #[tokio::test]
    async fn select_lists_keywords_in_use() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        cmd(&mut s, "STORE 2 +FLAGS (Project-X)").await.assert_ok();
        let r = cmd(&mut s, "SELECT INBOX").await;
        r.assert_ok();
        assert!(r.lines_with("* FLAGS")[0].contains("Project-X"), "{r:?}");
    }

    #[tokio::test]
    async fn select_nonexistent_is_no_and_deselects() {
        let kit = Kit::new();
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "SELECT Nowhere").await;
        assert_eq!(r.status(), "NO", "{r:?}");
        assert!(r.tagged.contains("[NONEXISTENT]"), "{r:?}");
        assert!(r.has("[CLOSED]"), "{r:?}");
        // RFC 9051 6.3.2: no mailbox is selected any more.
        assert_eq!(cmd(&mut s, "FETCH 1 FLAGS").await.status(), "BAD");
    }

    #[tokio::test]
    async fn examine_is_read_only_and_store_is_no_cannot() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 1).await;
        let mut s = kit.logged_in(ALICE).await;
        let r = cmd(&mut s, "EXAMINE INBOX").await;
        assert!(r.tagged.contains("[READ-ONLY]"), "{r:?}");
        let r = cmd(&mut s, "STORE 1 +FLAGS (\\Seen)").await;
        assert_eq!(r.status(), "NO", "{r:?}");
        assert!(r.tagged.contains("[CANNOT]"), "{r:?}");
    }

    #[tokio::test]
    async fn expunge_reports_each_removed_message() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 4).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        cmd(&mut s, "STORE 2,4 +FLAGS.SILENT (\\Deleted)")
            .await
            .assert_ok();
        let r = cmd(&mut s, "EXPUNGE").await;
        r.assert_ok();
        // Each number as it is after the previous EXPUNGE (RFC 9051 7.5.1).
        assert_eq!(r.lines_with("EXPUNGE"), ["* 2 EXPUNGE", "* 3 EXPUNGE"]);
        assert_eq!(kit.uids(ALICE, "INBOX").await, [1, 3]);
    }

    #[tokio::test]
    async fn uid_expunge_removes_only_the_named_uids() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 3).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        cmd(&mut s, "STORE 1:3 +FLAGS.SILENT (\\Deleted)")
            .await
            .assert_ok();
        let r = cmd(&mut s, "UID EXPUNGE 2").await;
        r.assert_ok();
        assert_eq!(r.lines_with("EXPUNGE"), ["* 2 EXPUNGE"]);
        // CLOSE removes the rest silently.
        let r = cmd(&mut s, "CLOSE").await;
        r.assert_ok();
        assert!(!r.has("EXPUNGE"), "{r:?}");
        assert!(kit.uids(ALICE, "INBOX").await.is_empty());
    }
}
