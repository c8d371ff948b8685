//! LIST (RFC 9051 6.3.9 with RFC 5258 LIST-EXTENDED, RFC 5819
//! LIST-STATUS, RFC 6154 SPECIAL-USE), LSUB (RFC 3501 6.3.9), and
//! SUBSCRIBE / UNSUBSCRIBE (6.3.7, 6.3.8).
//!
//! Subscriptions are a list of their own, apart from the mailboxes
//! (`Store::subscriptions`): CREATE does not subscribe, DELETE keeps the
//! subscription, and LSUB / LIST (SUBSCRIBED) show names without a mailbox.
//!
//! Work per LIST is bounded: a user has at most `imap.max_mailboxes`
//! (CREATE past it is `NO [LIMIT]`, RFC 5530 3), the mailboxes are read
//! off the async workers (the store's blocking pool), children are found
//! with a sorted index rather than a scan per mailbox (a 100 000-mailbox
//! LIST was 10^10 comparisons on a worker), each pattern is compiled once,
//! and the listing loop yields to the executor every [`LIST_YIELD_EVERY`]
//! names, so one LIST never holds a worker thread while other sessions wait.

use std::collections::BTreeSet;

use proto_imap::command::ListCommand;
use proto_imap::{Code, Data, Mailbox};
use store::{MailboxInfo, StoreError};

use super::folders::{DELIMITER, parents};
use super::session::{CmdResult, ImapError, Out, Session, done};

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

/// Mailboxes listed between two yields to the executor: a few
/// milliseconds of work at most, however many mailboxes a user has.
pub const LIST_YIELD_EVERY: usize = 256;

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

impl Session {
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
}

#[cfg(test)]
mod session_tests {
    use crate::imap::testkit::{ALICE, Kit, cmd};

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
}
