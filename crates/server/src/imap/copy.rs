//! COPY, MOVE (RFC 9051 6.4.7, 6.4.8; RFC 6851) and their UID forms, and
//! APPEND (6.3.12), with UIDPLUS response codes (RFC 4315: APPENDUID,
//! COPYUID). A missing destination is `NO [TRYCREATE]`.
//!
//! MOVE is COPY then EXPUNGE of the sources, two durable writes: a crash
//! between them leaves the message in both mailboxes, never in neither.

use proto_imap::types::format_set;
use proto_imap::{Code, Mailbox, SeqSet, Status};
use store::{StoreError, Uid};

use super::select::no_mailbox;
use super::session::{CmdResult, ImapError, Out, Session, done};

impl Session {
    pub(super) async fn copy(
        &mut self,
        uid_cmd: bool,
        set: &SeqSet,
        target: &Mailbox,
        is_move: bool,
        out: &mut Out<'_>,
    ) -> CmdResult {
        let account = self.account()?.to_string();
        let ctx = self.ctx.clone();
        let verb = if is_move { "MOVE" } else { "COPY" };
        let sel = self.selected.as_mut().ok_or_else(no_mailbox)?;
        if is_move && sel.read_only {
            return Err(ImapError::no(Some(Code::Cannot), "mailbox is read-only"));
        }
        let Some(dest) = ctx
            .store
            .mailbox(account, target.as_str().to_string())
            .await?
        else {
            return Err(ImapError::no(Some(Code::TryCreate), "no such mailbox"));
        };
        let indices = sel.resolve(set, uid_cmd)?;
        let mut expunge_issued = false;
        let uids: Vec<Uid> = indices
            .iter()
            .filter_map(|&i| sel.msgs.get(i))
            .filter(|m| {
                expunge_issued |= m.expunged;
                !m.expunged
            })
            .map(|m| m.uid())
            .collect();
        if expunge_issued && !uid_cmd {
            return Err(ImapError::no(
                Some(Code::ExpungeIssued),
                "some messages were expunged by another session",
            ));
        }
        if uids.is_empty() {
            return done(format!("{verb} completed (nothing to do)"));
        }
        let pairs = ctx.store.copy(sel.id(), uids, dest.id).await?;
        if pairs.is_empty() {
            return done(format!("{verb} completed"));
        }
        let from: Vec<u32> = pairs.iter().map(|(a, _)| a.0).collect();
        let to: Vec<u32> = pairs.iter().map(|(_, b)| b.0).collect();
        let code = Code::CopyUid {
            validity: dest.uidvalidity,
            from: format_set(&from),
            to: format_set(&to),
        };
        if !is_move {
            return Ok((Some(code), "COPY completed".into()));
        }
        // RFC 6851 4.3: COPYUID comes untagged, before the EXPUNGEs.
        out.untagged(Status::Ok, Some(code), "Moved");
        let mut src: Vec<Uid> = pairs.iter().map(|(a, _)| *a).collect();
        src.sort_unstable();
        let removed = ctx.store.expunge(sel.id(), src).await?;
        sel.mark_expunged(&removed);
        sel.report_expunged(out);
        done("MOVE completed")
    }

    pub(super) async fn append(
        &mut self,
        target: &Mailbox,
        flags: Vec<String>,
        date: Option<i64>,
        message: Vec<u8>,
    ) -> CmdResult {
        let account = self.account()?.to_string();
        let Some(dest) = self
            .ctx
            .store
            .mailbox(account, target.as_str().to_string())
            .await?
        else {
            return Err(ImapError::no(Some(Code::TryCreate), "no such mailbox"));
        };
        if message.is_empty() {
            return Err(ImapError::no(Some(Code::Cannot), "empty message"));
        }
        let date = date.unwrap_or_else(now);
        let uid = match self.ctx.store.append(dest.id, message, flags, date).await {
            Ok(u) => u,
            Err(StoreError::Invalid(why)) => return Err(ImapError::Bad(why)),
            Err(e) => return Err(e.into()),
        };
        Ok((
            Some(Code::AppendUid {
                validity: dest.uidvalidity,
                uid: uid.0,
            }),
            "APPEND completed".into(),
        ))
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
