//! SELECT / EXAMINE (RFC 9051 6.3.2, 6.3.3), CLOSE (6.4.1), UNSELECT
//! (6.4.2, RFC 3691), EXPUNGE (6.4.3) and UID EXPUNGE (6.4.9, RFC 4315).

use proto_imap::{Code, Data, Mailbox, SeqSet, Status};
use store::Uid;

use super::session::{CmdResult, ImapError, Out, Session, State, done};
use super::view::Selected;

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

impl Session {
    pub(super) async fn select(
        &mut self,
        name: &Mailbox,
        read_only: bool,
        out: &mut Out<'_>,
    ) -> CmdResult {
        let was_selected = self.selected.is_some();
        // RFC 9051 6.3.2: a failed SELECT leaves no mailbox selected.
        self.transition(State::Authenticated);
        if was_selected {
            out.untagged(Status::Ok, Some(Code::Closed), "Previous mailbox closed");
        }
        let account = self.account()?.to_string();
        let Some(info) = self
            .ctx
            .store
            .mailbox(account, name.as_str().to_string())
            .await?
        else {
            return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
        };
        let sel = Selected::open(&self.ctx, info, read_only).await?;
        let mut flags: Vec<String> = SYSTEM_FLAGS.iter().map(|s| s.to_string()).collect();
        flags.extend(KNOWN_KEYWORDS.iter().map(|s| s.to_string()));
        for m in &sel.msgs {
            for f in &m.meta.flags {
                if !flags.iter().any(|x| x.eq_ignore_ascii_case(f)) && flags.len() < 256 {
                    flags.push(f.clone());
                }
            }
        }
        out.data(Data::Flags(flags.clone()));
        out.data(Data::Exists(sel.exists()));
        if !self.rev2 {
            out.data(Data::Recent(sel.recent_count()));
            if let Some(i) = sel.msgs.iter().position(|m| !m.has_flag("\\Seen")) {
                out.untagged(Status::Ok, Some(Code::Unseen(i as u32 + 1)), "First unseen");
            }
        }
        out.untagged(
            Status::Ok,
            Some(Code::UidValidity(sel.info.uidvalidity)),
            "UIDs valid",
        );
        out.untagged(
            Status::Ok,
            Some(Code::UidNext(sel.info.uidnext.max(sel.max_uid() + 1))),
            "Predicted next UID",
        );
        let permanent = if read_only {
            Vec::new()
        } else {
            let mut p = flags;
            p.push("\\*".into());
            p
        };
        out.untagged(
            Status::Ok,
            Some(Code::PermanentFlags(permanent)),
            if read_only {
                "No permanent flags permitted"
            } else {
                "Flags permitted"
            },
        );
        if self.rev2 {
            out.data(Data::List {
                lsub: false,
                attributes: Vec::new(),
                name: sel.info.name.clone(),
                childinfo_subscribed: false,
            });
        }
        self.selected = Some(sel);
        self.transition(State::Selected);
        let (code, verb) = if read_only {
            (Code::ReadOnly, "EXAMINE")
        } else {
            (Code::ReadWrite, "SELECT")
        };
        Ok((Some(code), format!("{verb} completed")))
    }

    /// CLOSE (`expunge`: removes \Deleted messages silently) or UNSELECT.
    pub(super) async fn close(&mut self, expunge: bool) -> CmdResult {
        if let Some(sel) = self.selected.as_ref()
            && expunge
            && !sel.read_only
        {
            let fresh = self.ctx.store.messages(sel.id()).await?;
            let deleted: Vec<Uid> = fresh
                .iter()
                .filter(|m| m.flags.iter().any(|f| f == "\\Deleted"))
                .map(|m| m.uid)
                .collect();
            if !deleted.is_empty() {
                self.ctx.store.expunge(sel.id(), deleted).await?;
            }
        }
        self.transition(State::Authenticated);
        done(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        })
    }

    /// EXPUNGE, or UID EXPUNGE limited to `set`.
    pub(super) async fn expunge(&mut self, set: Option<SeqSet>, out: &mut Out<'_>) -> CmdResult {
        let rev2 = self.rev2;
        let ctx = self.ctx.clone();
        let sel = self.selected.as_mut().ok_or_else(no_mailbox)?;
        if sel.read_only {
            return Err(ImapError::no(Some(Code::Cannot), "mailbox is read-only"));
        }
        // Report what others did first, so the \Deleted set is current.
        sel.sync(&ctx, out, true, set.is_some(), rev2).await?;
        let within = match &set {
            Some(s) => Some(sel.resolve(s, true)?),
            None => None,
        };
        let deleted: Vec<Uid> = sel
            .msgs
            .iter()
            .enumerate()
            .filter(|(i, m)| {
                m.has_flag("\\Deleted")
                    && within.as_ref().is_none_or(|w| w.binary_search(i).is_ok())
            })
            .map(|(_, m)| m.uid())
            .collect();
        if !deleted.is_empty() {
            let removed = ctx.store.expunge(sel.id(), deleted).await?;
            sel.mark_expunged(&removed);
            sel.report_expunged(out);
        }
        done("EXPUNGE completed")
    }
}

pub(super) fn no_mailbox() -> ImapError {
    ImapError::Bad("no mailbox selected".into())
}
