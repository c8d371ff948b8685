//! Mailbox management: CREATE, DELETE, RENAME (RFC 9051 6.3.4-6.3.6),
//! SUBSCRIBE / UNSUBSCRIBE (6.3.7, 6.3.8), LIST (6.3.9 with RFC 5258
//! LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE), LSUB
//! (RFC 3501 6.3.9) and STATUS (6.3.11).
//!
//! Hierarchy delimiter "/". `CREATE a/b/c` creates the missing parents as
//! ordinary mailboxes, so the hierarchy never has holes; DELETE of a
//! mailbox with children is refused with `[HASCHILDREN]`.
//!
//! Work per LIST is bounded: a user has at most `imap.max_mailboxes`
//! (CREATE past it is `NO [LIMIT]`, RFC 5530 3), the mailboxes are read
//! off the async workers (the store's blocking pool), children are found
//! with a sorted index rather than a scan per mailbox (a 100 000-mailbox
//! LIST was 10^10 comparisons on a worker), and the listing loop yields to
//! the executor every [`LIST_YIELD_EVERY`] mailboxes, so one LIST never
//! holds a worker thread while other sessions wait.

use std::collections::BTreeSet;

use proto_imap::command::{ListCommand, StatusItem};
use proto_imap::{Code, Data, Mailbox};
use store::{MailboxInfo, StoreError, Uid};

use super::session::{CmdResult, ImapError, Out, Session, done};

/// The hierarchy delimiter (RFC 9051 5.1.1).
pub const DELIMITER: char = '/';

/// A LIST pattern (RFC 9051 6.3.9): `*` matches anything, `%` anything but
/// the delimiter. Compiled once per command, then matched by simulating it
/// as an automaton (the set of pattern positions reachable so far), so
/// mixed wildcards such as `*/%` match exactly and the work is
/// O(pattern x name) whatever the wildcards: no backtracking to explode.
pub struct ListPattern {
    /// Runs of wildcards collapsed: a `*` anywhere in a run makes it `*`.
    p: Vec<char>,
    /// Characters that must each consume one character of a name.
    literals: usize,
}

impl ListPattern {
    pub fn new(pattern: &str) -> ListPattern {
        let mut p: Vec<char> = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            match (p.last_mut(), c) {
                (Some(last @ ('*' | '%')), '*' | '%') => {
                    if c == '*' {
                        *last = '*';
                    }
                }
                _ => p.push(c),
            }
        }
        let literals = p.iter().filter(|c| !matches!(c, '*' | '%')).count();
        ListPattern { p, literals }
    }

    pub fn matches(&self, name: &str) -> bool {
        let p = &self.p;
        // Each literal takes one character: a longer pattern cannot match,
        // which also bounds the automaton by the name's length.
        if self.literals > name.chars().count() {
            return false;
        }
        let mut states = vec![false; p.len() + 1];
        let mut next = vec![false; p.len() + 1];
        // A wildcard may match nothing: reaching it reaches the next position.
        let close = |s: &mut Vec<bool>| {
            for i in 0..p.len() {
                if s.get(i) == Some(&true)
                    && matches!(p.get(i), Some('*' | '%'))
                    && let Some(n) = s.get_mut(i + 1)
                {
                    *n = true;
                }
            }
        };
        if let Some(first) = states.first_mut() {
            *first = true;
        }
        close(&mut states);
        for c in name.chars() {
            next.iter_mut().for_each(|x| *x = false);
            for (i, &on) in states.iter().enumerate() {
                if !on {
                    continue;
                }
                let target = match p.get(i) {
                    Some('*') => Some(i),
                    Some('%') if c != DELIMITER => Some(i),
                    Some(&l) if l == c => Some(i + 1),
                    _ => None,
                };
                if let Some(n) = target.and_then(|t| next.get_mut(t)) {
                    *n = true;
                }
            }
            close(&mut next);
            std::mem::swap(&mut states, &mut next);
            if !states.iter().any(|&x| x) {
                return false;
            }
        }
        states.last() == Some(&true)
    }
}

/// The pattern with a leading "INBOX" (any case) canonicalised, so INBOX
/// matches case-insensitively (RFC 9051 5.1).
fn canonical_pattern(p: &str) -> String {
    match p.get(..5) {
        Some(head) if head.eq_ignore_ascii_case("INBOX") => {
            format!("INBOX{}", p.get(5..).unwrap_or_default())
        }
        _ => p.to_string(),
    }
}

fn parents(name: &str) -> Vec<&str> {
    name.match_indices(DELIMITER)
        .map(|(i, _)| &name[..i])
        .filter(|p| !p.is_empty())
        .collect()
}

/// Mailboxes listed between two yields to the executor: a few
/// milliseconds of work at most, however many mailboxes a user has.
pub const LIST_YIELD_EVERY: usize = 256;

fn has_children(all: &[MailboxInfo], name: &str) -> bool {
    let prefix = format!("{name}{DELIMITER}");
    all.iter().any(|m| m.name.starts_with(&prefix))
}

/// Sorted mailbox names: "has a descendant" is one range lookup, so a
/// LIST is O(n log n), not O(n^2).
struct Names<'a>(BTreeSet<&'a str>);

impl<'a> Names<'a> {
    fn new(names: impl Iterator<Item = &'a str>) -> Self {
        Names(names.collect())
    }

    /// True when some name lies below `name` in the hierarchy. Every such
    /// name starts with `name/`, and sorts right after it.
    fn has_descendant(&self, name: &str) -> bool {
        self.descendants(name).next().is_some()
    }

    /// The names below `name`, in order: one range of the sorted set.
    fn descendants<'s>(&'s self, name: &str) -> impl Iterator<Item = &'a str> + 's {
        let prefix = format!("{name}{DELIMITER}");
        self.0
            .range::<str, _>((
                std::ops::Bound::Excluded(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .copied()
            .take_while(move |n| n.starts_with(&prefix))
    }

    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
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

    /// `imap.max_mailboxes`: creating `name` and its missing parents must
    /// leave the account within the limit. Concurrent CREATEs of one user
    /// may pass it by a few; the limit is against runaway growth, not exact.
    async fn check_mailbox_limit(&self, account: &str, name: &str) -> Result<(), ImapError> {
        let max = self.ctx.config.max_mailboxes;
        let have = self.ctx.store.mailbox_count(account.to_string()).await?;
        let mut new: u64 = 1;
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

    pub(super) async fn create(&mut self, m: &Mailbox) -> CmdResult {
        let account = self.account()?.to_string();
        // RFC 9051 6.3.4: a trailing delimiter only declares the intent to
        // create children.
        let name = m.as_str().trim_end_matches(DELIMITER);
        if name.is_empty() || name.eq_ignore_ascii_case("INBOX") {
            return Err(ImapError::no(
                Some(Code::AlreadyExists),
                "mailbox already exists",
            ));
        }
        self.check_mailbox_limit(&account, name).await?;
        self.create_parents(&account, name).await?;
        match self
            .ctx
            .store
            .create_mailbox(account, name.to_string(), None)
            .await
        {
            Ok(_) => done("CREATE completed"),
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

    /// SUBSCRIBE and UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8). The subscription
    /// list is apart from the mailboxes: a subscription outlives DELETE,
    /// and any subscribed name can be unsubscribed (unsubscribing one that
    /// is not subscribed changes nothing). SUBSCRIBE checks that the
    /// mailbox exists, which 6.3.7 allows, so a typo is not silently kept.
    pub(super) async fn subscribe(&mut self, m: &Mailbox, on: bool) -> CmdResult {
        let account = self.account()?.to_string();
        let name = m.as_str().trim_end_matches(DELIMITER);
        if on
            && self
                .ctx
                .store
                .mailbox(account.clone(), name.to_string())
                .await?
                .is_none()
        {
            return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
        }
        match self
            .ctx
            .store
            .set_subscribed(account, name.to_string(), on)
            .await
        {
            Ok(()) => done(if on {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            }),
            Err(StoreError::Invalid(why)) => Err(ImapError::no(Some(Code::Cannot), why)),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn list(&mut self, l: &ListCommand, out: &mut Out<'_>) -> CmdResult {
        let account = self.account()?.to_string();
        // RFC 9051 6.3.9: an empty pattern asks for the delimiter.
        if !l.extended && l.patterns.iter().all(String::is_empty) {
            out.data(Data::List {
                lsub: false,
                attributes: vec!["\\Noselect".into()],
                name: String::new(),
                childinfo_subscribed: false,
            });
            return done("LIST completed");
        }
        let all = self.ctx.store.mailboxes(account.clone()).await?;
        let subs = self.ctx.store.subscriptions(account).await?;
        let patterns: Vec<ListPattern> = l
            .patterns
            .iter()
            .map(|p| ListPattern::new(&canonical_pattern(&format!("{}{}", l.reference, p))))
            .collect();
        let matches = |name: &str| patterns.iter().any(|p| p.matches(name));
        let names = Names::new(all.iter().map(|m| m.name.as_str()));
        let subscribed = Names::new(subs.iter().map(String::as_str));
        // What may be listed: every mailbox; with the SUBSCRIBED selection
        // also subscribed names that have no mailbox (RFC 5258 3: listed
        // with \NonExistent), and with RECURSIVEMATCH their missing
        // parents, which may carry CHILDINFO.
        let mut candidates: Vec<(&str, Option<&MailboxInfo>)> =
            all.iter().map(|m| (m.name.as_str(), Some(m))).collect();
        let mut missing: BTreeSet<&str> = BTreeSet::new();
        if l.select_subscribed {
            for s in &subs {
                if !names.contains(s) {
                    missing.insert(s);
                }
                if l.recursive_match {
                    missing.extend(parents(s).into_iter().filter(|p| !names.contains(p)));
                }
            }
        }
        if !missing.is_empty() {
            candidates.extend(missing.into_iter().map(|n| (n, None)));
            // In the store's order (INBOX first, then by name), so a name
            // without a mailbox sits where a client expects it.
            candidates.sort_by(|a, b| (a.0 != "INBOX", a.0).cmp(&(b.0 != "INBOX", b.0)));
        }
        for (i, (name, info)) in candidates.into_iter().enumerate() {
            if i % LIST_YIELD_EVERY == LIST_YIELD_EVERY - 1 {
                tokio::task::yield_now().await;
            }
            if !matches(name) {
                continue;
            }
            let is_sub = subscribed.contains(name);
            // RFC 5258 3.5: with RECURSIVEMATCH, a name that matches the
            // patterns gets CHILDINFO when a descendant meets the
            // SUBSCRIBED selection but is not itself listed (the patterns
            // do not reach it); such a name is listed even when it does
            // not meet the selection itself.
            let childinfo = l.recursive_match
                && l.select_subscribed
                && subscribed.descendants(name).any(|d| !matches(d));
            if l.select_subscribed && !is_sub && !childinfo {
                continue;
            }
            if l.select_special_use && info.and_then(|m| m.special_use.as_ref()).is_none() {
                continue;
            }
            let mut attrs = Vec::new();
            if info.is_none() {
                // RFC 5258 3.4: \NonExistent (which implies \Noselect).
                attrs.push("\\NonExistent".to_string());
            }
            attrs.push(if names.has_descendant(name) {
                "\\HasChildren".to_string()
            } else {
                "\\HasNoChildren".to_string()
            });
            if is_sub && (l.select_subscribed || l.return_subscribed) {
                attrs.push("\\Subscribed".into());
            }
            if let Some(su) = info.and_then(|m| m.special_use.as_ref()) {
                attrs.push(su.clone());
            }
            out.data(Data::List {
                lsub: false,
                attributes: attrs,
                name: name.to_string(),
                childinfo_subscribed: childinfo,
            });
            // RFC 5819 3: no STATUS for a name listed only for CHILDINFO
            // (it does not meet the selection), nor for one without a
            // mailbox.
            if let (Some(items), Some(m)) = (&l.return_status, info)
                && (is_sub || !l.select_subscribed)
            {
                self.status_data(m, items, out).await?;
            }
            out.flush_if_big().await?;
        }
        done("LIST completed")
    }

    /// LSUB (RFC 3501 6.3.9): the subscribed names that match, whether a
    /// mailbox of that name exists or not (one that does not is
    /// `\Noselect`); and where `%` stops above a subscribed name, the
    /// level it stops at, as `\Noselect` unless that name is subscribed
    /// itself.
    pub(super) async fn lsub(
        &mut self,
        reference: &str,
        pattern: &str,
        out: &mut Out<'_>,
    ) -> CmdResult {
        let account = self.account()?.to_string();
        let all = self.ctx.store.mailboxes(account.clone()).await?;
        let subs = self.ctx.store.subscriptions(account).await?;
        let names = Names::new(all.iter().map(|m| m.name.as_str()));
        let subscribed = Names::new(subs.iter().map(String::as_str));
        let pattern = ListPattern::new(&canonical_pattern(&format!("{reference}{pattern}")));
        let mut listed: BTreeSet<&str> = BTreeSet::new();
        for s in &subs {
            if pattern.matches(s) {
                listed.insert(s);
            } else {
                listed.extend(parents(s).into_iter().filter(|p| pattern.matches(p)));
            }
        }
        for name in listed {
            let selectable = subscribed.contains(name) && names.contains(name);
            out.data(Data::List {
                lsub: true,
                attributes: if selectable {
                    Vec::new()
                } else {
                    vec!["\\Noselect".into()]
                },
                name: name.to_string(),
                childinfo_subscribed: false,
            });
        }
        done("LSUB completed")
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

    async fn status_data(
        &self,
        info: &MailboxInfo,
        items: &[StatusItem],
        out: &mut Out<'_>,
    ) -> Result<(), ImapError> {
        let needs_messages = items.iter().any(|i| {
            matches!(
                i,
                StatusItem::Deleted | StatusItem::Size | StatusItem::Recent
            )
        });
        let msgs = if needs_messages {
            self.ctx.store.messages(info.id).await?
        } else {
            Vec::new()
        };
        let mut values = Vec::new();
        for &item in items {
            let v: u64 = match item {
                StatusItem::Messages => u64::from(info.messages),
                StatusItem::UidNext => u64::from(info.uidnext),
                StatusItem::UidValidity => u64::from(info.uidvalidity),
                StatusItem::Unseen => u64::from(info.unseen),
                StatusItem::HighestModSeq => info.highestmodseq,
                StatusItem::Deleted => msgs
                    .iter()
                    .filter(|m| m.flags.iter().any(|f| f == "\\Deleted"))
                    .count() as u64,
                StatusItem::Size => msgs.iter().map(|m| m.size).sum(),
                StatusItem::Recent => {
                    let uids: Vec<Uid> = msgs.iter().map(|m| m.uid).collect();
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

    fn pattern_matches(pattern: &str, name: &str) -> bool {
        ListPattern::new(pattern).matches(name)
    }

    #[test]
    fn a_pattern_longer_than_the_name_is_refused_at_once() {
        let long = "a%".repeat(30_000);
        assert!(!pattern_matches(&long, "aaaa"));
        assert!(pattern_matches("a%a%", "aa"));
    }

    #[test]
    fn wildcards() {
        assert!(pattern_matches("*", "a/b/c"));
        assert!(pattern_matches("%", "Sent"));
        assert!(!pattern_matches("%", "Work/Projects"));
        assert!(pattern_matches("Work/%", "Work/Projects"));
        assert!(pattern_matches("W*s", "Work/Projects"));
        assert!(!pattern_matches("W%s", "Work/Projects"));
        assert!(pattern_matches("INBOX", "INBOX"));
        assert!(!pattern_matches("", "INBOX"));
        assert_eq!(canonical_pattern("inbox*"), "INBOX*");
        let many = "%*".repeat(100) + "x";
        assert!(!pattern_matches(&many, &"a".repeat(200)));
    }

    #[test]
    fn mixed_wildcards_match_exactly() {
        // `*/%`: anything, a delimiter, then one level (RFC 9051 6.3.9).
        assert!(pattern_matches("*/%", "a/b/c"));
        assert!(pattern_matches("*/%", "a/b"));
        assert!(!pattern_matches("*/%", "a"));
        assert!(pattern_matches("%/*", "a/b/c"));
        assert!(!pattern_matches("%/%", "a/b/c"));
        assert!(pattern_matches("%/%/%", "a/b/c"));
        assert!(pattern_matches("a*c", "a/b/c"));
        assert!(!pattern_matches("a%c", "a/b/c"));
        assert!(pattern_matches("%b%", "abc"));
        assert!(!pattern_matches("%b%", "a/bc"));
        assert!(pattern_matches("*b%", "a/bc"));
        assert!(pattern_matches("%*%", "a/b"));
        assert!(pattern_matches("*%", "a/b"));
    }

    #[test]
    fn descendants_are_found_by_range() {
        let names = Names::new(["a", "a/b", "ab", "a-c", "b/c/d", "z"].into_iter());
        assert!(names.has_descendant("a"));
        assert!(!names.has_descendant("a/b"));
        assert!(!names.has_descendant("ab"));
        assert!(names.has_descendant("b"), "a missing parent still has one");
        assert!(names.has_descendant("b/c"));
        assert!(!names.has_descendant("z"));
        assert!(!names.has_descendant("a-"));
    }

    #[test]
    fn parents_of_a_path() {
        assert_eq!(parents("a/b/c"), vec!["a", "a/b"]);
        assert!(parents("a").is_empty());
    }
}

#[cfg(test)]
mod session_tests {
    use crate::imap::testkit::{ALICE, Kit, cmd};
    use store::Store;

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
    async fn recursivematch_reports_parents_of_subscribed_children_with_childinfo() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "CREATE Fruit/Apple").await.assert_ok();
        cmd(&mut s, "CREATE Veg").await.assert_ok();
        cmd(&mut s, "UNSUBSCRIBE Fruit").await.assert_ok();
        cmd(&mut s, "UNSUBSCRIBE Veg").await.assert_ok();
        cmd(&mut s, "SUBSCRIBE Fruit/Apple").await.assert_ok();
        // RFC 5258 3: Fruit is not subscribed but its child is.
        let r = cmd(&mut s, "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %").await;
        assert!(
            r.has("\"Fruit\" (\"CHILDINFO\" (\"SUBSCRIBED\"))")
                || r.has("Fruit (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
            "{r:?}"
        );
        assert!(!r.has("Veg"), "{r:?}");
        // Without RECURSIVEMATCH only subscribed mailboxes, no CHILDINFO.
        let r = cmd(&mut s, "LIST (SUBSCRIBED) \"\" %").await;
        assert!(!r.has("Fruit"), "{r:?}");
        assert!(!r.has("CHILDINFO"), "{r:?}");
    }

    #[tokio::test]
    async fn create_does_not_subscribe_and_delete_keeps_the_subscription() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "CREATE Work").await.assert_ok();
        // RFC 9051 6.3.4 / 6.3.7: creating is not subscribing.
        let r = cmd(&mut s, "LSUB \"\" Work").await;
        assert!(!r.has("Work"), "{r:?}");
        cmd(&mut s, "SUBSCRIBE Work").await.assert_ok();
        cmd(&mut s, "DELETE Work").await.assert_ok();
        // 6.3.9 / RFC 5258 3.4: the name stays subscribed, \NonExistent.
        let r = cmd(&mut s, "LIST (SUBSCRIBED) \"\" Work").await;
        assert!(
            r.has("* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" Work"),
            "{r:?}"
        );
        let r = cmd(&mut s, "LSUB \"\" Work").await;
        assert!(r.has("* LSUB (\\Noselect) \"/\" Work"), "{r:?}");
        // A plain LIST does not show it; re-creating it is subscribed at once.
        let r = cmd(&mut s, "LIST \"\" Work").await;
        assert!(!r.has("Work"), "{r:?}");
        cmd(&mut s, "CREATE Work").await.assert_ok();
        let r = cmd(&mut s, "LSUB \"\" Work").await;
        assert!(r.has("* LSUB () \"/\" Work"), "{r:?}");
        // SUBSCRIBE checks existence (6.3.7 allows it); UNSUBSCRIBE of a
        // name without a mailbox works, twice too.
        let r = cmd(&mut s, "SUBSCRIBE Later").await;
        assert!(r.tagged.contains("NO [NONEXISTENT]"), "{r:?}");
        cmd(&mut s, "DELETE Work").await.assert_ok();
        cmd(&mut s, "UNSUBSCRIBE Work").await.assert_ok();
        cmd(&mut s, "UNSUBSCRIBE Work").await.assert_ok();
        let r = cmd(&mut s, "LSUB \"\" Work").await;
        assert!(!r.has("Work"), "{r:?}");
    }

    #[tokio::test]
    async fn lsub_percent_shows_noselect_parents_of_deeper_subscriptions() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        for name in ["m/t", "m/t2/t", "m/t3/t3"] {
            cmd(&mut s, &format!("CREATE {name}")).await.assert_ok();
            cmd(&mut s, &format!("SUBSCRIBE {name}")).await.assert_ok();
        }
        // RFC 3501 6.3.9: `%` stops at m/t2 and m/t3, which are listed
        // \Noselect since they are not subscribed themselves.
        let r = cmd(&mut s, "LSUB \"\" m/%").await;
        assert_eq!(
            r.lines_with("LSUB"),
            [
                "* LSUB () \"/\" m/t",
                "* LSUB (\\Noselect) \"/\" m/t2",
                "* LSUB (\\Noselect) \"/\" m/t3",
            ],
            "{r:?}"
        );
        let r = cmd(&mut s, "LSUB \"\" m*t").await;
        assert_eq!(
            r.lines_with("LSUB"),
            ["* LSUB () \"/\" m/t", "* LSUB () \"/\" m/t2/t"]
        );
    }

    #[tokio::test]
    async fn childinfo_only_for_subscribed_descendants_the_patterns_miss() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "CREATE p/c").await.assert_ok();
        cmd(&mut s, "SUBSCRIBE p/c").await.assert_ok();
        // RFC 5258 3.5: p/c is listed itself, so p gets no CHILDINFO.
        let r = cmd(&mut s, "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (p p/c)").await;
        assert!(!r.has("CHILDINFO"), "{r:?}");
        assert!(r.has("p/c"), "{r:?}");
        let r = cmd(&mut s, "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" p").await;
        assert!(r.has("\"/\" p (\"CHILDINFO\" (\"SUBSCRIBED\"))"), "{r:?}");
        // A subscription whose parent does not exist: the parent is
        // \NonExistent with CHILDINFO.
        cmd(&mut s, "CREATE ghost/child").await.assert_ok();
        cmd(&mut s, "SUBSCRIBE ghost/child").await.assert_ok();
        cmd(&mut s, "DELETE ghost/child").await.assert_ok();
        cmd(&mut s, "DELETE ghost").await.assert_ok();
        let r = cmd(&mut s, "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %").await;
        assert!(
            r.has("* LIST (\\NonExistent \\HasNoChildren) \"/\" ghost (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn rfc5258_example_8_subscribed_and_recursivematch() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        for name in [
            "Fruit/Apple",
            "Fruit/Banana",
            "Fruit/Peach",
            "Tofu",
            "Vegetable/Broccoli",
            "Vegetable/Corn",
        ] {
            cmd(&mut s, &format!("CREATE {name}")).await.assert_ok();
        }
        for name in [
            "Fruit/Banana",
            "Fruit/Peach",
            "Vegetable",
            "Vegetable/Broccoli",
        ] {
            cmd(&mut s, &format!("SUBSCRIBE {name}")).await.assert_ok();
        }
        cmd(&mut s, "DELETE Fruit/Peach").await.assert_ok();
        let r = cmd(&mut s, "LIST (SUBSCRIBED) \"\" *").await;
        let names: Vec<&str> = r
            .lines_with("LIST")
            .into_iter()
            .filter(|l| l.contains("Fruit") || l.contains("Vegetable") || l.contains("Tofu"))
            .collect();
        assert_eq!(
            names,
            [
                "* LIST (\\HasNoChildren \\Subscribed) \"/\" Fruit/Banana",
                "* LIST (\\NonExistent \\HasNoChildren \\Subscribed) \"/\" Fruit/Peach",
                "* LIST (\\HasChildren \\Subscribed) \"/\" Vegetable",
                "* LIST (\\HasNoChildren \\Subscribed) \"/\" Vegetable/Broccoli",
            ],
            "{r:?}"
        );
        let r = cmd(
            &mut s,
            "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (STATUS (MESSAGES))",
        )
        .await;
        assert!(
            r.has("* LIST (\\HasChildren) \"/\" Fruit (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
            "{r:?}"
        );
        assert!(
            r.has("* LIST (\\HasChildren \\Subscribed) \"/\" Vegetable (\"CHILDINFO\" (\"SUBSCRIBED\"))"),
            "{r:?}"
        );
        assert!(!r.has("Tofu"), "{r:?}");
        // RFC 5819 3: STATUS only for names that meet the selection.
        assert!(!r.has("* STATUS Fruit "), "{r:?}");
        assert!(r.has("* STATUS Vegetable (MESSAGES 0)"), "{r:?}");
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
}
