//! Mailbox management: CREATE, DELETE, RENAME (RFC 9051 6.3.4-6.3.6) and
//! STATUS (6.3.11); LIST, LSUB and subscriptions are in `list`.
//!
//! Hierarchy delimiter "/". `CREATE a/b/c` creates the missing parents as
//! ordinary mailboxes, so the hierarchy never has holes; DELETE of a
//! mailbox with children is refused with `[HASCHILDREN]`. CREATE past
//! `imap.max_mailboxes` is `NO [LIMIT]` (RFC 5530 3).

use proto_imap::command::StatusItem;
use proto_imap::{Code, Data, Mailbox};
use store::{MailboxInfo, StoreError, Uid};

use super::session::{CmdResult, ImapError, Out, Session, done};

/// The hierarchy delimiter (RFC 9051 5.1.1).
pub const DELIMITER: char = '/';

/// RFC 8474 4: a mailbox's object id, kept across RENAME (the store's
/// mailbox number never changes and is never reused).
pub(super) fn mailbox_id(id: store::MailboxId) -> String {
    format!("M{}", id.0)
}

/// The special-use attributes of RFC 6154 2 that CREATE may give.
const USE_ATTRS: &[&str] = &[
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];

pub(super) fn parents(name: &str) -> Vec<&str> {
    name.match_indices(DELIMITER)
        .map(|(i, _)| &name[..i])
        .filter(|p| !p.is_empty())
        .collect()
}

fn has_children(all: &[MailboxInfo], name: &str) -> bool {
    let prefix = format!("{name}{DELIMITER}");
    all.iter().any(|m| m.name.starts_with(&prefix))
}

/// RFC 5530 3: LIMIT, an operation refused because a limit was reached.
fn too_many_mailboxes(max: u64) -> ImapError {
    ImapError::no(
        Some(Code::Limit),
        format!("too many mailboxes (at most {max} per user)"),
    )
}

impl Session {
    async fn create_parents(&self, account: &str, name: &str) -> Result<(), ImapError> {
        for parent in parents(name) {
            match self
                .ctx
                .store
                .create_mailbox(account.to_string(), parent.to_string(), None)
                .await
            {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// `imap.max_mailboxes`: `own` new mailboxes (1 for CREATE; for
    /// RENAME 0, or 1 when INBOX stays behind) and the missing parents of
    /// `name` must leave the account within the limit. Concurrent CREATEs
    /// of one user may pass it by a few; the limit is against runaway
    /// growth, not exact.
    async fn check_mailbox_limit(
        &self,
        account: &str,
        name: &str,
        own: u64,
    ) -> Result<(), ImapError> {
        let max = self.ctx.config.max_mailboxes;
        let have = self.ctx.store.mailbox_count(account.to_string()).await?;
        let mut new: u64 = own;
        if have.saturating_add(new) > max {
            return Err(too_many_mailboxes(max));
        }
        for parent in parents(name) {
            if self
                .ctx
                .store
                .mailbox(account.to_string(), parent.to_string())
                .await?
                .is_none()
            {
                new += 1;
            }
        }
        if have.saturating_add(new) > max {
            return Err(too_many_mailboxes(max));
        }
        Ok(())
    }

    pub(super) async fn create(&mut self, m: &Mailbox, special_use: &[String]) -> CmdResult {
        let account = self.account()?.to_string();
        // RFC 6154 3: one of the attributes of 2 (our store keeps one per
        // mailbox), else NO [USEATTR].
        let special_use = match special_use {
            [] => None,
            [one] => Some(
                USE_ATTRS
                    .iter()
                    .find(|a| a.eq_ignore_ascii_case(one))
                    .map(|a| a.to_string())
                    .ok_or_else(|| {
                        ImapError::no(Some(Code::UseAttr), "unknown special-use attribute")
                    })?,
            ),
            _ => {
                return Err(ImapError::no(
                    Some(Code::UseAttr),
                    "one special-use attribute per mailbox",
                ));
            }
        };
        // RFC 9051 6.3.4: a trailing delimiter only declares the intent to
        // create children.
        let name = m.as_str().trim_end_matches(DELIMITER);
        if name.is_empty() || name.eq_ignore_ascii_case("INBOX") {
            return Err(ImapError::no(
                Some(Code::AlreadyExists),
                "mailbox already exists",
            ));
        }
        self.check_mailbox_limit(&account, name, 1).await?;
        self.create_parents(&account, name).await?;
        match self
            .ctx
            .store
            .create_mailbox(account, name.to_string(), special_use)
            .await
        {
            // RFC 8474 4.1: CREATE tells the new mailbox's id.
            Ok(info) => Ok((
                Some(Code::MailboxId(mailbox_id(info.id))),
                "CREATE completed".to_string(),
            )),
            Err(StoreError::AlreadyExists(_)) => Err(ImapError::no(
                Some(Code::AlreadyExists),
                "mailbox already exists",
            )),
            Err(StoreError::Invalid(why)) => Err(ImapError::no(Some(Code::Cannot), why)),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn delete(&mut self, m: &Mailbox) -> CmdResult {
        let account = self.account()?.to_string();
        if m.is_inbox() {
            return Err(ImapError::no(Some(Code::Cannot), "INBOX cannot be deleted"));
        }
        let all = self.ctx.store.mailboxes(account.clone()).await?;
        if !all.iter().any(|x| x.name == m.as_str()) {
            return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
        }
        if has_children(&all, m.as_str()) {
            return Err(ImapError::no(
                Some(Code::HasChildren),
                "mailbox has children; delete them first",
            ));
        }
        self.ctx
            .store
            .delete_mailbox(account, m.as_str().to_string())
            .await?;
        done("DELETE completed")
    }

    pub(super) async fn rename(&mut self, from: &Mailbox, to: &Mailbox) -> CmdResult {
        let account = self.account()?.to_string();
        let to_name = to.as_str().trim_end_matches(DELIMITER);
        if to_name.is_empty() || to_name.eq_ignore_ascii_case("INBOX") {
            return Err(ImapError::no(Some(Code::AlreadyExists), "target exists"));
        }
        let all = self.ctx.store.mailboxes(account.clone()).await?;
        if !all.iter().any(|x| x.name == from.as_str()) {
            return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
        }
        if all.iter().any(|x| x.name == to_name) {
            return Err(ImapError::no(Some(Code::AlreadyExists), "target exists"));
        }
        // RFC 9051 6.3.6: renaming INBOX leaves an empty INBOX behind.
        let own = u64::from(from.is_inbox());
        self.check_mailbox_limit(&account, to_name, own).await?;
        self.create_parents(&account, to_name).await?;
        match self
            .ctx
            .store
            .rename_mailbox(account, from.as_str().to_string(), to_name.to_string())
            .await
        {
            Ok(()) => done("RENAME completed"),
            Err(StoreError::AlreadyExists(_)) => {
                Err(ImapError::no(Some(Code::AlreadyExists), "target exists"))
            }
            Err(StoreError::Invalid(why)) => Err(ImapError::no(Some(Code::Cannot), why)),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn status(
        &mut self,
        m: &Mailbox,
        items: &[StatusItem],
        out: &mut Out<'_>,
    ) -> CmdResult {
        let account = self.account()?.to_string();
        let Some(info) = self
            .ctx
            .store
            .mailbox(account, m.as_str().to_string())
            .await?
        else {
            return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
        };
        self.status_data(&info, items, out).await?;
        done("STATUS completed")
    }

    pub(super) async fn status_data(
        &self,
        info: &MailboxInfo,
        items: &[StatusItem],
        out: &mut Out<'_>,
    ) -> Result<(), ImapError> {
        // Sizes need every entry's metadata; \Deleted and \Recent only
        // the UIDs and flags, which the mailbox index has for less.
        let needs_sizes = items
            .iter()
            .any(|i| matches!(i, StatusItem::DeletedStorage | StatusItem::Size));
        let needs_index = !needs_sizes
            && items
                .iter()
                .any(|i| matches!(i, StatusItem::Deleted | StatusItem::Recent));
        let msgs = if needs_sizes {
            self.ctx.store.messages(info.id).await?
        } else {
            Vec::new()
        };
        let index = if needs_index {
            self.ctx.store.mailbox_index(info.id).await?
        } else {
            store::MailboxIndex::default()
        };
        let deleted = |flags: &[String]| flags.iter().any(|f| f == "\\Deleted");
        let mut values = Vec::new();
        for &item in items {
            let v: u64 = match item {
                StatusItem::Messages => u64::from(info.messages),
                StatusItem::UidNext => u64::from(info.uidnext),
                StatusItem::UidValidity => u64::from(info.uidvalidity),
                StatusItem::Unseen => u64::from(info.unseen),
                StatusItem::HighestModSeq => info.highestmodseq,
                StatusItem::MailboxId => info.id.0.max(0) as u64,
                StatusItem::Deleted if needs_sizes => {
                    msgs.iter().filter(|m| deleted(&m.flags)).count() as u64
                }
                StatusItem::Deleted => index
                    .entries
                    .iter()
                    .filter(|&&(_, set)| deleted(index.flags(set)))
                    .count() as u64,
                StatusItem::Size => msgs.iter().map(|m| m.size).sum(),
                // RFC 9208 4.2.2: in units of 1024 octets, like STORAGE.
                StatusItem::DeletedStorage => msgs
                    .iter()
                    .filter(|m| deleted(&m.flags))
                    .map(|m| m.size)
                    .sum::<u64>()
                    .div_ceil(1024),
                StatusItem::Recent if needs_sizes => {
                    let uids: Vec<Uid> = msgs.iter().map(|m| m.uid).collect();
                    u64::from(self.ctx.recent.count_unclaimed(info.id, &uids))
                }
                StatusItem::Recent => {
                    let uids: Vec<Uid> = index.uids().collect();
                    u64::from(self.ctx.recent.count_unclaimed(info.id, &uids))
                }
            };
            if item == StatusItem::Recent && self.rev2 {
                continue;
            }
            values.push((item, v));
        }
        out.data(Data::Status {
            name: info.name.clone(),
            items: values,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_of_a_path() {
        assert_eq!(parents("a/b/c"), vec!["a", "a/b"]);
        assert!(parents("a").is_empty());
    }
}

#[cfg(test)]
mod session_tests {
    use crate::imap::testkit::{ALICE, Kit, cmd};

    #[tokio::test]
    async fn object_ids_name_mailboxes_across_rename_and_messages_across_copy_and_move() {
        // RFC 8474 4 and 5.
        let kit = Kit::new();
        kit.deliver(ALICE, "Subject: x\r\n\r\nbody\r\n").await;
        let mut s = kit.logged_in(ALICE).await;
        let r = cmd(&mut s, "CREATE Work").await;
        let code = r
            .tagged
            .split(['[', ']'])
            .nth(1)
            .unwrap_or_default()
            .to_string();
        assert!(code.starts_with("MAILBOXID (M"), "{r:?}");
        cmd(&mut s, "RENAME Work Job").await.assert_ok();
        let r = cmd(&mut s, "STATUS Job (MAILBOXID)").await;
        assert!(r.has(&code), "the id survives RENAME: {r:?}");
        let r = cmd(&mut s, "SELECT INBOX").await;
        assert!(r.has("OK [MAILBOXID (M"), "{r:?}");
        let r = cmd(&mut s, "FETCH 1 (EMAILID THREADID)").await;
        let line = r.lines_with("EMAILID")[0].to_string();
        let id = line
            .split("EMAILID (")
            .nth(1)
            .and_then(|t| t.split(')').next())
            .unwrap_or_default()
            .to_string();
        assert!(
            id.starts_with('E') && line.contains("THREADID (T"),
            "{line}"
        );
        cmd(&mut s, "COPY 1 Job").await.assert_ok();
        let r = cmd(&mut s, &format!("SEARCH EMAILID {id}")).await;
        assert!(r.has("* SEARCH 1"), "{r:?}");
        cmd(&mut s, "SELECT Job").await.assert_ok();
        let r = cmd(&mut s, "FETCH 1 (EMAILID)").await;
        assert!(
            r.has(&format!("EMAILID ({id})")),
            "the copy keeps it: {r:?}"
        );
        assert_eq!(cmd(&mut s, "SEARCH EMAILID bad!id").await.status(), "BAD");
        assert!(cmd(&mut s, "CAPABILITY").await.has(" OBJECTID"));
    }

    #[tokio::test]
    async fn create_special_use_gives_the_attribute_or_no_useattr() {
        // RFC 6154 3 and its example 5.3.
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "CREATE MyArchive (USE (\\Archive))")
            .await
            .assert_ok();
        let r = cmd(&mut s, "LIST \"\" MyArchive").await;
        assert!(r.has("\\Archive"), "{r:?}");
        let r = cmd(&mut s, "CREATE \"Important Messages\" (USE (\\Important))").await;
        assert!(r.tagged.starts_with("t NO [USEATTR]"), "{r:?}");
        let r = cmd(&mut s, "CREATE Both (USE (\\Drafts \\Sent))").await;
        assert!(r.tagged.starts_with("t NO [USEATTR]"), "{r:?}");
        // Nothing was created for a refused one.
        let r = cmd(&mut s, "LIST \"\" Both").await;
        assert!(!r.has("Both"), "{r:?}");
        // RFC 4466: an unknown create parameter is BAD.
        assert_eq!(cmd(&mut s, "CREATE X (COLOUR (red))").await.status(), "BAD");
        let r = cmd(&mut s, "CAPABILITY").await;
        assert!(r.has(" CREATE-SPECIAL-USE"), "{r:?}");
    }

    #[tokio::test]
    async fn create_existing_is_no_alreadyexists() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "CREATE Work").await.assert_ok();
        for name in ["Work", "INBOX", "inbox"] {
            let r = cmd(&mut s, &format!("CREATE {name}")).await;
            assert_eq!(r.status(), "NO", "{r:?}");
            assert!(r.tagged.contains("[ALREADYEXISTS]"), "{r:?}");
        }
    }

    #[tokio::test]
    async fn create_makes_the_parents_it_needs() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "CREATE Work/Projects/2024/").await.assert_ok();
        let r = cmd(&mut s, "LIST \"\" Work*").await;
        assert!(r.has("(\\HasChildren) \"/\" Work"), "{r:?}");
        assert!(r.has("(\\HasNoChildren) \"/\" Work/Projects/2024"), "{r:?}");
        assert!(kit.mailbox(ALICE, "Work/Projects").await.is_some());
    }

    #[tokio::test]
    async fn name_not_modified_utf7_is_no_not_bad() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        for c in [
            "SELECT \"&Jjo!\"",
            "EXAMINE a&",
            "STATUS \"b&AOQ\" (MESSAGES)",
            "CREATE \"c&-&\"",
        ] {
            let r = cmd(&mut s, c).await;
            assert_eq!(r.status(), "NO", "{c}: {r:?}");
        }
        // A pattern is not a name: LIST answers OK with what matches.
        cmd(&mut s, "LIST \"\" \"!#$&'+,-.%\"").await.assert_ok();
    }

    #[tokio::test]
    async fn create_past_max_mailboxes_is_no_limit() {
        let kit = Kit::with(|c| c.max_mailboxes = 8);
        let mut s = kit.logged_in(ALICE).await;
        // A new user has INBOX and the special-use mailboxes.
        let have = kit.store.mailbox_count(ALICE.into()).await.unwrap();
        assert!(have < 7, "{have}");
        for i in have..7 {
            cmd(&mut s, &format!("CREATE m{i}")).await.assert_ok();
        }
        // One left: a name needing a new parent too does not fit.
        let r = cmd(&mut s, "CREATE p/q").await;
        assert_eq!(r.status(), "NO", "{r:?}");
        assert!(r.tagged.contains("[LIMIT]"), "{r:?}");
        assert!(kit.mailbox(ALICE, "p").await.is_none());
        cmd(&mut s, "CREATE last").await.assert_ok();
        let r = cmd(&mut s, "CREATE more").await;
        assert!(r.tagged.contains("[LIMIT]"), "{r:?}");
        // Deleting one makes room again.
        cmd(&mut s, "DELETE last").await.assert_ok();
        cmd(&mut s, "CREATE more").await.assert_ok();
    }

    #[tokio::test]
    async fn rename_cannot_pass_max_mailboxes_with_parents_or_inbox() {
        let kit = Kit::with(|c| c.max_mailboxes = 8);
        let mut s = kit.logged_in(ALICE).await;
        let have = kit.store.mailbox_count(ALICE.into()).await.unwrap();
        for i in have..8 {
            cmd(&mut s, &format!("CREATE m{i}")).await.assert_ok();
        }
        // At the limit: a plain rename keeps the count and is fine...
        cmd(&mut s, &format!("RENAME m{have} n")).await.assert_ok();
        // ...one that needs a new parent, or leaves INBOX behind, is not.
        let r = cmd(&mut s, "RENAME n p/q").await;
        assert!(r.tagged.contains("[LIMIT]"), "{r:?}");
        assert!(kit.mailbox(ALICE, "p").await.is_none());
        assert!(kit.mailbox(ALICE, "n").await.is_some());
        let r = cmd(&mut s, "RENAME INBOX old").await;
        assert!(r.tagged.contains("[LIMIT]"), "{r:?}");
        assert!(kit.mailbox(ALICE, "old").await.is_none());
    }

    #[tokio::test]
    async fn delete_with_children_is_no_haschildren() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "CREATE a/b").await.assert_ok();
        let r = cmd(&mut s, "DELETE a").await;
        assert!(r.tagged.contains("[HASCHILDREN]"), "{r:?}");
        cmd(&mut s, "DELETE a/b").await.assert_ok();
        cmd(&mut s, "DELETE a").await.assert_ok();
        let r = cmd(&mut s, "DELETE a").await;
        assert!(r.tagged.contains("[NONEXISTENT]"), "{r:?}");
        let r = cmd(&mut s, "DELETE INBOX").await;
        assert_eq!(r.status(), "NO", "{r:?}");
    }

    #[tokio::test]
    async fn rename_inbox_moves_messages() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 2).await;
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "RENAME INBOX Old/Inbox").await.assert_ok();
        // RFC 9051 6.3.6: INBOX stays, empty; its messages moved.
        assert!(kit.uids(ALICE, "INBOX").await.is_empty());
        assert_eq!(kit.uids(ALICE, "Old/Inbox").await.len(), 2);
        let r = cmd(&mut s, "SELECT INBOX").await;
        assert!(r.has("* 0 EXISTS"), "{r:?}");
    }

    #[tokio::test]
    async fn rename_moves_children_and_refuses_existing_target() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "CREATE p/c").await.assert_ok();
        cmd(&mut s, "RENAME p q").await.assert_ok();
        assert!(kit.mailbox(ALICE, "q/c").await.is_some());
        assert!(kit.mailbox(ALICE, "p/c").await.is_none());
        let r = cmd(&mut s, "RENAME q Sent").await;
        assert!(r.tagged.contains("[ALREADYEXISTS]"), "{r:?}");
        let r = cmd(&mut s, "RENAME nowhere x").await;
        assert!(r.tagged.contains("[NONEXISTENT]"), "{r:?}");
    }

    #[tokio::test]
    async fn status_counts_without_selecting() {
        let kit = Kit::new();
        kit.deliver_n(ALICE, 3).await;
        let mut s = kit.logged_in(ALICE).await;
        let r = cmd(&mut s, "STATUS INBOX (MESSAGES UNSEEN UIDNEXT RECENT)").await;
        r.assert_ok();
        assert!(
            r.has("* STATUS INBOX (MESSAGES 3 UNSEEN 3 UIDNEXT 4 RECENT 3)"),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn status_deleted_storage_counts_what_expunge_would_free() {
        // RFC 9208 4.2.2: units of 1024 octets, rounded up.
        let kit = Kit::new();
        let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(3100));
        kit.deliver(ALICE, &big).await;
        kit.deliver(ALICE, "Subject: small\r\n\r\nbody\r\n").await;
        kit.deliver(ALICE, &big).await;
        let mut s = kit.logged_in(ALICE).await;
        let r = cmd(&mut s, "STATUS INBOX (DELETED DELETED-STORAGE)").await;
        assert!(
            r.has("* STATUS INBOX (DELETED 0 DELETED-STORAGE 0)"),
            "{r:?}"
        );
        cmd(&mut s, "SELECT INBOX").await.assert_ok();
        cmd(&mut s, "STORE 1:2 +FLAGS (\\Deleted)")
            .await
            .assert_ok();
        let r = cmd(&mut s, "STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)").await;
        // 3118 + 24 octets: 3 KiB and part of a fourth.
        assert!(
            r.has("* STATUS INBOX (MESSAGES 3 DELETED 2 DELETED-STORAGE 4)"),
            "{r:?}"
        );
    }
}
