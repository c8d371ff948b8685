//! COPY, MOVE (RFC 9051 6.4.7, 6.4.8; RFC 6851) and their UID forms, and
//! APPEND (6.3.12), with UIDPLUS response codes (RFC 4315: APPENDUID,
//! COPYUID). A missing destination is `NO [TRYCREATE]`.
//!
//! MOVE is one store operation ([`store::Store::move_messages`]): the
//! copies and the expunge of the sources commit in one transaction, so a
//! crash leaves each message in exactly one mailbox, and the EXPUNGEs this
//! session reports are exactly the sources the COPYUID names.

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
        // RFC 7162 3.2.10: with QRESYNC the sources vanish (VANISHED).
        let vanished = self.qresync;
        let sel = self.selected_mut().ok_or_else(no_mailbox)?;
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
            .filter_map(|&i| sel.view.get(i))
            .filter(|m| {
                expunge_issued |= m.expunged();
                !m.expunged()
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
        // RFC 9208 5.3: a COPY that would pass a limit copies nothing.
        // A MOVE within the account leaves its usage as it was.
        if !is_move {
            let mut bytes = 0u64;
            for chunk in super::selected::meta_chunks(&indices) {
                for m in sel.load_meta(&ctx, chunk).await? {
                    if uids.binary_search(&m.uid).is_ok() {
                        bytes = bytes.saturating_add(m.size);
                    }
                }
            }
            let n = uids.len() as u64;
            self.check_quota(bytes, n).await?;
        }
        let sel = self.selected_mut().ok_or_else(no_mailbox)?;
        let pairs = if is_move {
            ctx.store.move_messages(sel.id(), uids, dest.id).await?
        } else {
            ctx.store.copy(sel.id(), uids, dest.id).await?
        };
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
        // RFC 6851 4.3: COPYUID comes untagged, before the EXPUNGEs; the
        // pairs are ascending by source UID, as mark_expunged expects.
        out.untagged(Status::Ok, Some(code), "Moved");
        let moved: Vec<Uid> = pairs.iter().map(|(a, _)| *a).collect();
        sel.expunged_here(&moved, vanished, out);
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
        // The driver streamed a big literal (issue 19): the command has an
        // empty one in its place.
        let (message, tail) = match self.streamed.take() {
            Some(s) => match s.message {
                Ok(m) => (m.head, m.tail.filter(|t| !t.is_empty()).map(|t| (t, m.nul))),
                Err(crate::spool::SpoolError::DiskFull) => {
                    return Err(ImapError::no(
                        Some(Code::Unavailable),
                        "disk full, try later",
                    ));
                }
                Err(crate::spool::SpoolError::Io(_)) => {
                    return Err(ImapError::no(
                        Some(Code::Unavailable),
                        "cannot store, try later",
                    ));
                }
            },
            None => (message, None),
        };
        if message.is_empty() {
            return Err(ImapError::no(Some(Code::Cannot), "empty message"));
        }
        let date = date.unwrap_or_else(now);
        let stored = match tail {
            Some((_, true)) => {
                // encode_binary_parts needs the message whole; a spooled
                // one is not read back into memory for it.
                return Err(ImapError::no(
                    Some(Code::Cannot),
                    "binary content larger than spool_threshold is not supported",
                ));
            }
            Some((tail, false)) => {
                self.check_quota(message.len() as u64 + tail.len(), 1)
                    .await?;
                self.ctx
                    .store
                    .append_spooled(dest.id, message, tail, flags, date)
                    .await
            }
            None => {
                // RFC 3516 4.3: parts holding NUL (a literal8 APPEND) are
                // stored in base64, so no non-BINARY FETCH has to send NUL
                // in a literal.
                let message = proto_imap::mime::encode_binary_parts(&message).unwrap_or(message);
                self.check_quota(message.len() as u64, 1).await?;
                self.ctx.store.append(dest.id, message, flags, date).await
            }
        };
        let uid = match stored {
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

#[cfg(test)]
mod tests {
    use crate::imap::testkit::{ALICE, Kit, cmd, raw};

    #[tokio::test]
    async fn move_reports_copyuid_and_expunge() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 3).await;
        let archive = kit.mailbox(ALICE, "Archive").await.expect("archive");
        let mut s = kit.selected(ALICE, "INBOX").await;
        cmd(&mut s, "STORE 3 +FLAGS.SILENT (\\Flagged)")
            .await
            .assert_ok();
        let r = cmd(&mut s, "MOVE 2:3 Archive").await;
        r.assert_ok();
        // RFC 6851 4.3: untagged COPYUID first, then the EXPUNGEs.
        let copyuid = format!("* OK [COPYUID {} 2:3 1:2]", archive.uidvalidity);
        assert!(r.untagged[0].starts_with(&copyuid), "{r:?}");
        assert_eq!(r.untagged[1..], ["* 2 EXPUNGE", "* 2 EXPUNGE"]);
        assert_eq!(kit.uids(ALICE, "INBOX").await, [1]);
        assert_eq!(kit.uids(ALICE, "Archive").await, [1, 2]);
        // Flags travel with the message.
        let mut t = kit.selected(ALICE, "Archive").await;
        let r = cmd(&mut t, "FETCH 2 FLAGS").await;
        assert!(r.has("\\Flagged"), "{r:?}");
    }

    /// The copy lands in the selected mailbox: its EXISTS comes with the
    /// MOVE's reply, not whenever the change feed gets round to it.
    #[tokio::test]
    async fn move_into_the_selected_mailbox_reports_expunge_then_exists() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected_rev2(ALICE, "INBOX").await;
        let r = cmd(&mut s, "MOVE 1 INBOX").await;
        r.assert_ok();
        assert!(r.untagged[0].contains("[COPYUID "), "{r:?}");
        assert_eq!(r.untagged[1..], ["* 1 EXPUNGE", "* 2 EXISTS"]);
        assert_eq!(kit.uids(ALICE, "INBOX").await, [2, 3]);
    }

    #[tokio::test]
    async fn uid_move_of_missing_uids_is_ok_and_moves_the_rest() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "UID MOVE 2:7 Trash").await;
        r.assert_ok();
        assert!(r.has("[COPYUID "), "{r:?}");
        assert_eq!(r.lines_with("EXPUNGE"), ["* 2 EXPUNGE"]);
        assert_eq!(kit.uids(ALICE, "Trash").await, [1]);
        let r = cmd(&mut s, "UID MOVE 50 Trash").await;
        r.assert_ok();
        assert!(!r.has("EXPUNGE"), "{r:?}");
    }

    #[tokio::test]
    async fn copy_answers_copyuid_and_keeps_the_source() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "COPY 1:2 Archive").await;
        r.assert_ok();
        assert!(r.tagged.contains("[COPYUID "), "{r:?}");
        assert!(!r.has("EXPUNGE"), "{r:?}");
        assert_eq!(kit.uids(ALICE, "INBOX").await, [1, 2]);
        assert_eq!(kit.uids(ALICE, "Archive").await, [1, 2]);
    }

    #[tokio::test]
    async fn copy_or_move_to_missing_mailbox_is_trycreate() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 1).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        for verb in ["COPY", "MOVE"] {
            let r = cmd(&mut s, &format!("{verb} 1 Nowhere")).await;
            assert_eq!(r.status(), "NO", "{r:?}");
            assert!(r.tagged.contains("[TRYCREATE]"), "{r:?}");
        }
        assert_eq!(kit.uids(ALICE, "INBOX").await, [1]);
    }

    #[tokio::test]
    async fn move_in_a_read_only_mailbox_is_no_cannot() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 1).await;
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "EXAMINE INBOX").await.assert_ok();
        let r = cmd(&mut s, "MOVE 1 Archive").await;
        assert!(r.tagged.contains("[CANNOT]"), "{r:?}");
        assert_eq!(kit.uids(ALICE, "INBOX").await, [1]);
    }

    #[tokio::test]
    async fn append_answers_appenduid_and_selected_session_sees_exists() {
        let kit = Kit::new();
        let info = kit.mailbox(ALICE, "INBOX").await;
        assert!(info.is_none(), "the account is created at first login");
        let mut s = kit.selected(ALICE, "INBOX").await;
        let info = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let r = raw(
            &mut s,
            b"t APPEND INBOX (\\Seen) {14+}\r\nSubject: a\r\n\r\n\r\n",
        )
        .await;
        r.assert_ok();
        let code = format!("[APPENDUID {} 1]", info.uidvalidity);
        assert!(r.tagged.contains(&code), "{r:?}");
        assert!(r.has("* 1 EXISTS"), "{r:?}");
        let r = cmd(&mut s, "APPEND Nowhere {1+}\r\nx").await;
        assert!(r.tagged.contains("[TRYCREATE]"), "{r:?}");
    }
}
