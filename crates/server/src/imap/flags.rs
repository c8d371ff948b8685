//! STORE and UID STORE (RFC 9051 6.4.6, 6.4.9): FLAGS, +FLAGS, -FLAGS and
//! .SILENT, durable before the OK. Without .SILENT every message of the
//! set gets an untagged FETCH with its flags, after a `FLAGS` update if
//! the STORE brought a new keyword into use (RFC 9051 7.3.5).
//!
//! Messages another session expunged, still in this session's view
//! (RFC 2180 4.2): their flags are not set and they get no FETCH; the
//! others are stored (and, without .SILENT, get their FETCH), and the
//! command ends `OK [EXPUNGEISSUED]` (RFC 5530). RFC 2180 4.2.2 allows NO
//! there, and 4.2.3 prefers NO when every message named is gone, but
//! clients (and imaptest's checks) take a NO to STORE as a failure of
//! the whole command, while Dovecot answers OK; the response code tells
//! the client why some FETCHes are missing.

use proto_imap::types::format_set;
use proto_imap::{Code, Data, FetchValue, SeqSet, StoreOp};
use store::{ConditionalFlags, FlagOp, StoreError, Uid};

use super::select::no_mailbox;
use super::selected::{find_meta, meta_chunks};
use super::session::{CmdResult, ImapError, Out, Session, done};

/// A STORE's arguments (RFC 9051 6.4.6, RFC 7162 3.1.3).
pub(super) struct StoreArgs {
    pub uid_cmd: bool,
    pub unchanged_since: Option<u64>,
    pub op: StoreOp,
    pub silent: bool,
    pub flags: Vec<String>,
}

impl Session {
    pub(super) async fn store_flags(
        &mut self,
        set: &SeqSet,
        args: StoreArgs,
        out: &mut Out<'_>,
    ) -> CmdResult {
        let StoreArgs {
            uid_cmd,
            unchanged_since,
            op,
            silent,
            flags,
        } = args;
        let rev2 = self.rev2;
        let condstore = self.condstore;
        // RFC 7162 3.2.4: with QRESYNC every FETCH response has the UID.
        let with_uid = uid_cmd || self.qresync;
        let report = self.report(false, uid_cmd);
        let ctx = self.ctx.clone();
        let sel = self.selected_mut().ok_or_else(no_mailbox)?;
        if sel.read_only {
            return Err(ImapError::no(Some(Code::Cannot), "mailbox is read-only"));
        }
        let indices = sel.resolve(set, uid_cmd)?;
        // RFC 7162 3.1.3: UNCHANGEDSINCE leaves out (and names in
        // MODIFIED) every message whose mod-sequence is above it; the store
        // checks it in the write's transaction, so a change by another
        // session cannot come between the check and the write.
        let mut modified: Vec<u32> = Vec::new();
        let mut skip: Vec<Uid> = Vec::new();
        // \Recent cannot be stored (RFC 3501 2.3.2); the store drops it.
        let uids: Vec<Uid> = indices
            .iter()
            .filter_map(|&i| sel.view.get(i))
            .filter(|m| !m.expunged())
            .map(|m| m.uid())
            .collect();
        let op = match op {
            StoreOp::Add => FlagOp::Add,
            StoreOp::Remove => FlagOp::Remove,
            StoreOp::Replace => FlagOp::Replace,
        };
        let mut changed_uids: Vec<Uid> = Vec::new();
        if !uids.is_empty() {
            // A keyword a STORE names is defined from then on, whether or
            // not a message changed (-FLAGS, or already set): FLAGS names
            // it, as Dovecot does (imaptest checks that it does).
            let keywords: Vec<String> = flags
                .iter()
                .filter(|f| !f.starts_with('\\'))
                .cloned()
                .collect();
            let result = match unchanged_since {
                Some(limit) => {
                    ctx.store
                        .set_flags_unchanged_since(sel.id(), uids, op, flags, limit)
                        .await
                }
                None => ctx
                    .store
                    .set_flags(sel.id(), uids, op, flags)
                    .await
                    .map(|changed| ConditionalFlags {
                        changed,
                        modified: Vec::new(),
                    }),
            };
            let ConditionalFlags {
                changed,
                modified: refused,
            } = match result {
                Ok(c) => c,
                Err(StoreError::Invalid(why)) => return Err(ImapError::Bad(why)),
                Err(e) => return Err(e.into()),
            };
            skip = refused;
            changed_uids = changed.iter().map(|c| c.uid).collect();
            changed_uids.sort_unstable();
            sel.announce(&keywords, out);
            sel.record_flags(&changed, out);
            // What another session expunged meanwhile is marked now, so
            // no FETCH below shows flags of a message that is gone.
            sel.sync(&ctx, out, report).await?;
        }
        let mut gone = false;
        for chunk in meta_chunks(&indices) {
            // RFC 7162 3.1.3: with CONDSTORE each FETCH carries MODSEQ.
            let metas = if condstore {
                sel.load_meta(&ctx, chunk).await?
            } else {
                Vec::new()
            };
            for &i in chunk {
                let Some(m) = sel.view.get(i) else { continue };
                if m.expunged() {
                    gone = true;
                    continue;
                }
                if skip.binary_search(&m.uid()).is_ok() {
                    modified.push(if uid_cmd { m.uid().0 } else { i as u32 + 1 });
                    continue;
                }
                // .SILENT still tells a CONDSTORE client the new
                // mod-sequence of what it changed (RFC 7162 3.1.3).
                let changed_here = changed_uids.binary_search(&m.uid()).is_ok();
                if silent && !(condstore && changed_here) {
                    continue;
                }
                let mut items = Vec::new();
                if with_uid {
                    items.push(FetchValue::Uid(m.uid().0));
                }
                if !silent {
                    items.push(FetchValue::Flags(sel.view.flags(m, rev2)));
                }
                if let Some(meta) = find_meta(&metas, m.uid()) {
                    items.push(FetchValue::ModSeq(meta.modseq));
                }
                out.data(Data::Fetch {
                    seq: i as u32 + 1,
                    items,
                });
            }
        }
        if !modified.is_empty() {
            modified.sort_unstable();
            return Ok((
                Some(Code::Modified(format_set(&modified))),
                "Conditional STORE failed".into(),
            ));
        }
        if gone {
            return Ok((
                Some(Code::ExpungeIssued),
                "STORE completed; some messages were expunged by another session".into(),
            ));
        }
        done("STORE completed")
    }
}

#[cfg(test)]
mod tests {
    use crate::imap::testkit::{ALICE, Kit, cmd};

    #[tokio::test]
    async fn store_reports_new_flags_and_persists_them() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "STORE 1:2 +FLAGS (\\Flagged $Work)").await;
        r.assert_ok();
        assert_eq!(r.lines_with("FETCH").len(), 2, "{r:?}");
        assert!(
            r.has("* 1 FETCH (FLAGS (\\Flagged $Work \\Recent))"),
            "{r:?}"
        );
        let r = cmd(&mut s, "STORE 1 -FLAGS ($Work)").await;
        assert!(r.has("* 1 FETCH (FLAGS (\\Flagged \\Recent))"), "{r:?}");
        // A new session sees them (durable, in the store).
        let mut t = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut t, "FETCH 1:2 FLAGS").await;
        assert!(r.has("* 1 FETCH (FLAGS (\\Flagged))"), "{r:?}");
        assert!(r.has("* 2 FETCH (FLAGS (\\Flagged $Work))"), "{r:?}");
    }

    #[tokio::test]
    async fn store_silent_sends_no_fetch() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "STORE 1:2 +FLAGS.SILENT (\\Seen)").await;
        r.assert_ok();
        assert!(!r.has("FETCH"), "{r:?}");
        assert_eq!(kit.mailbox(ALICE, "INBOX").await.expect("inbox").unseen, 0);
        // Nor does the change feed echo the session's own change.
        let r = cmd(&mut s, "NOOP").await;
        assert!(!r.has("FETCH"), "{r:?}");
    }

    #[tokio::test]
    async fn uid_store_replace_includes_uid() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.selected_rev2(ALICE, "INBOX").await;
        let r = cmd(&mut s, "UID STORE 2 FLAGS (\\Answered)").await;
        r.assert_ok();
        // rev2: no \Recent.
        assert_eq!(
            r.lines_with("FETCH"),
            ["* 2 FETCH (UID 2 FLAGS (\\Answered))"]
        );
    }

    #[tokio::test]
    async fn store_of_a_bad_keyword_is_bad() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 1).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        assert_eq!(
            cmd(&mut s, "STORE 1 +FLAGS (\\Bogus)").await.status(),
            "BAD"
        );
        assert_eq!(cmd(&mut s, "STORE 7 +FLAGS (\\Seen)").await.status(), "BAD");
    }

    #[tokio::test]
    async fn flags_of_another_session_arrive_as_fetch() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 1).await;
        let mut a = kit.selected(ALICE, "INBOX").await;
        let mut b = kit.selected(ALICE, "INBOX").await;
        cmd(&mut b, "STORE 1 +FLAGS.SILENT (\\Seen)")
            .await
            .assert_ok();
        let r = cmd(&mut a, "NOOP").await;
        assert!(r.has("* 1 FETCH (FLAGS (\\Seen"), "{r:?}");
    }

    #[tokio::test]
    async fn store_over_the_keyword_limit_is_no_limit_and_changes_nothing() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 1).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let many: Vec<String> = (0..=store::MAX_FLAGS_PER_MESSAGE)
            .map(|i| format!("k{i}"))
            .collect();
        let r = cmd(&mut s, &format!("STORE 1 +FLAGS ({})", many.join(" "))).await;
        assert_eq!(r.status(), "NO", "{r:?}");
        assert!(r.tagged.contains("[LIMIT]"), "{r:?}");
        // Nothing was stored, and the session goes on.
        let r = cmd(&mut s, "FETCH 1 FLAGS").await;
        r.assert_ok();
        assert!(!r.has("k0"), "{r:?}");
        let r = cmd(&mut s, "STORE 1 +FLAGS (k0)").await;
        r.assert_ok();
    }

    /// RFC 2180 4.2: a STORE over a message another session expunged.
    #[tokio::test]
    async fn store_over_expunged_elsewhere_is_ok_expungeissued_and_stores_the_rest() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 3).await;
        let mut a = kit.selected(ALICE, "INBOX").await;
        let mut b = kit.selected(ALICE, "INBOX").await;
        cmd(&mut b, "STORE 1 +FLAGS.SILENT (\\Deleted)")
            .await
            .assert_ok();
        cmd(&mut b, "EXPUNGE").await.assert_ok();
        // FETCH for the others only, OK [EXPUNGEISSUED], no EXPUNGE yet
        // (RFC 9051 7.4.1: the client's numbers predate it).
        let r = cmd(&mut a, "STORE 1:2 +FLAGS (\\Flagged)").await;
        assert!(r.tagged.contains("OK [EXPUNGEISSUED]"), "{r:?}");
        assert_eq!(
            r.lines_with("FETCH"),
            ["* 2 FETCH (FLAGS (\\Flagged \\Recent))"]
        );
        assert!(!r.has("EXPUNGE "), "{r:?}");
        // Only gone messages: the same, with nothing to FETCH.
        let r = cmd(&mut a, "STORE 1 +FLAGS (\\Flagged)").await;
        assert!(r.tagged.contains("OK [EXPUNGEISSUED]"), "{r:?}");
        assert!(!r.has("FETCH"), "{r:?}");
        // With .SILENT (4.2.1): OK; the others' flags are set.
        let r = cmd(&mut a, "STORE 1:3 +FLAGS.SILENT (\\Seen)").await;
        r.assert_ok();
        assert!(!r.has("FETCH"), "{r:?}");
        let r = cmd(&mut b, "FETCH 1:2 FLAGS").await;
        assert!(r.has("* 1 FETCH (FLAGS (\\Flagged \\Seen))"), "{r:?}");
        assert!(r.has("* 2 FETCH (FLAGS (\\Seen))"), "{r:?}");
        // The next command that may report the EXPUNGE does.
        assert!(cmd(&mut a, "NOOP").await.has("* 1 EXPUNGE"));
    }

    /// RFC 9051 7.3.5: FLAGS names a new keyword before a FETCH shows it.
    #[tokio::test]
    async fn a_new_keyword_is_announced_before_its_fetch_in_every_session() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 1).await;
        let mut a = kit.selected(ALICE, "INBOX").await;
        let mut b = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut a, "STORE 1 +FLAGS (Project-X)").await;
        r.assert_ok();
        let order: Vec<&str> = r.untagged.iter().map(String::as_str).collect();
        assert!(
            order[0].starts_with("* FLAGS (") && order[0].contains("Project-X"),
            "{r:?}"
        );
        assert!(
            order[1].starts_with("* OK [PERMANENTFLAGS (") && order[1].contains("Project-X \\*)]"),
            "{r:?}"
        );
        assert_eq!(order[2], "* 1 FETCH (FLAGS (Project-X \\Recent))");
        // The other session learns of it before the FETCH that shows it.
        let r = cmd(&mut b, "NOOP").await;
        let order: Vec<&str> = r.untagged.iter().map(String::as_str).collect();
        assert!(
            order[0].starts_with("* FLAGS (") && order[0].contains("Project-X"),
            "{r:?}"
        );
        assert!(order[1].starts_with("* OK [PERMANENTFLAGS ("), "{r:?}");
        assert_eq!(order[2], "* 1 FETCH (FLAGS (Project-X))");
        // Once known, not again.
        let r = cmd(&mut a, "STORE 1 -FLAGS (Project-X)").await;
        assert!(!r.has("* FLAGS"), "{r:?}");
        // Removing a keyword no message has defines it too (as Dovecot).
        let r = cmd(&mut a, "STORE 1 -FLAGS (Unused)").await;
        assert!(
            r.untagged[0].starts_with("* FLAGS (") && r.untagged[0].contains("Unused"),
            "{r:?}"
        );
    }
}
