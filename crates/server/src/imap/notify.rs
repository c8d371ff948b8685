//! NOTIFY (RFC 5465): one connection watches many mailboxes.
//!
//! `NOTIFY SET` validates the event groups (3.1: `NO [BADEVENT]` for an
//! event not supported, `BAD` for a combination the RFC forbids) and
//! takes a bounded queue of the account's changes from the hub (the
//! store's change feed, never polling). Changes are reported:
//! - for a mailbox other than the selected one, as `STATUS` (5.1-5.3)
//!   with the items each event implies;
//! - for mailbox names and subscriptions, as `LIST` (5.4, 5.5), found by
//!   comparing the account's mailboxes with what this session last saw;
//! - for the selected mailbox (SELECTED, SELECTED-DELAYED), as the usual
//!   EXISTS / EXPUNGE / FETCH, plus MessageNew's FETCH attributes (5.2).
//!
//! They go out while idling (section 4), between commands (the driver
//! waits on [`Session::notify_ready`] beside the socket) and before a
//! command's own responses. A queue that overflows ends NOTIFY with
//! `* OK [NOTIFICATIONOVERFLOW]` (5.8); the client re-syncs and sets it
//! again.

use proto_imap::command::StatusItem;
use proto_imap::notify::{Event, EventGroup, Filter, NotifyCommand};
use proto_imap::{Code, Data, FetchAtt, FetchModifiers, SeqNum, SeqSet, Status};
use std::collections::{BTreeSet, HashMap};
use store::{Change, MailboxId};

use super::hub::NotifyFeed;
use super::session::{CmdResult, ImapError, Out, Session, State, done};

/// The events this server reports (RFC 5465 3.1: `BADEVENT` lists them).
pub const SUPPORTED_EVENTS: [&str; 5] = [
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "MailboxName",
    "SubscriptionChange",
];

/// What one group asks for, validated.
#[derive(Debug, Clone, Default)]
struct Wants {
    new: bool,
    expunge: bool,
    flags: bool,
    names: bool,
    subscriptions: bool,
}

impl Wants {
    fn messages(&self) -> bool {
        self.new || self.expunge || self.flags
    }
}

/// The events for the selected mailbox (SELECTED or SELECTED-DELAYED).
#[derive(Debug, Clone)]
struct SelectedWants {
    /// SELECTED-DELAYED: expunges wait for a command that allows them.
    delayed: bool,
    wants: Wants,
    /// MessageNew's FETCH attributes (RFC 5465 5.2).
    fetch: Vec<FetchAtt>,
}

/// A session's NOTIFY state.
pub struct Notify {
    groups: Vec<(Filter, Wants)>,
    selected: Option<SelectedWants>,
    feed: NotifyFeed,
    /// Changes taken off the queue, not yet reported.
    pending: Vec<Change>,
    closed: bool,
    /// The account's mailboxes (id, name) and subscriptions as this
    /// session last reported them: MailboxName and SubscriptionChange
    /// are the difference with the store's.
    known: HashMap<MailboxId, String>,
    subscribed: BTreeSet<String>,
}

/// Whether `name` is one of `filter`'s mailboxes (RFC 5465 6).
fn matches(filter: &Filter, name: &str, subscribed: &BTreeSet<String>) -> bool {
    let same = |m: &proto_imap::Mailbox| {
        let m = m.as_str();
        m == name || (m.eq_ignore_ascii_case("INBOX") && name.eq_ignore_ascii_case("INBOX"))
    };
    match filter {
        Filter::Selected | Filter::SelectedDelayed => false,
        // Mail is delivered to INBOX only (filters may file elsewhere, but
        // INBOX is the one every delivery may reach).
        Filter::Inboxes => name.eq_ignore_ascii_case("INBOX"),
        Filter::Personal => true,
        Filter::Subscribed => subscribed.contains(name),
        Filter::Subtree(ms) => ms.iter().any(|m| {
            same(m)
                || name
                    .strip_prefix(m.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }),
        Filter::Mailboxes(ms) => ms.iter().any(same),
    }
}

/// The STATUS items that tell a client about these events (RFC 5465
/// 5.1-5.3): new mail moves MESSAGES and UIDNEXT, an expunge MESSAGES,
/// a flag change HIGHESTMODSEQ (UNSEEN as well without CONDSTORE, which
/// has no other way to show it); UIDVALIDITY says the rest still holds.
fn status_items(new: bool, expunge: bool, flags: bool, condstore: bool) -> Vec<StatusItem> {
    let mut items = Vec::new();
    if new || expunge {
        items.push(StatusItem::Messages);
    }
    if new {
        items.push(StatusItem::UidNext);
    }
    if new || flags {
        items.push(StatusItem::UidValidity);
    }
    if flags {
        items.push(StatusItem::HighestModSeq);
        if !condstore {
            items.push(StatusItem::Unseen);
        }
    }
    items
}

/// Checks one group's events (RFC 5465 3.1), returning what it wants.
fn validate(group: &EventGroup) -> Result<(Wants, Vec<FetchAtt>), ImapError> {
    let selected = matches!(group.filter, Filter::Selected | Filter::SelectedDelayed);
    let mut w = Wants::default();
    let mut fetch = Vec::new();
    let mut unsupported = false;
    for e in &group.events {
        match e {
            Event::MessageNew(atts) => {
                w.new = true;
                if !atts.is_empty() && !selected {
                    return Err(ImapError::Bad(
                        "MessageNew FETCH attributes are for the selected mailbox only".into(),
                    ));
                }
                fetch.extend(atts.iter().cloned());
            }
            Event::MessageExpunge => w.expunge = true,
            Event::FlagChange => w.flags = true,
            Event::MailboxName => w.names = true,
            Event::SubscriptionChange => w.subscriptions = true,
            Event::AnnotationChange
            | Event::MailboxMetadataChange
            | Event::ServerMetadataChange
            | Event::Other(_) => unsupported = true,
        }
    }
    if unsupported {
        return Err(ImapError::no(
            Some(Code::BadEvent(
                SUPPORTED_EVENTS.iter().map(|s| s.to_string()).collect(),
            )),
            "event not supported",
        ));
    }
    // RFC 5465 5: MessageNew and MessageExpunge come together, and
    // FlagChange needs both (a client that cannot count cannot use it).
    // Held to for the selected mailbox, whose sequence numbers the client
    // must track; for other mailboxes these events only bring STATUS
    // responses, where any subset is meaningful, so it is accepted there
    // as Dovecot does (imaptest's notify script relies on it).
    if selected && w.new != w.expunge {
        return Err(ImapError::Bad(
            "MessageNew and MessageExpunge must be given together".into(),
        ));
    }
    if selected && w.flags && !w.new {
        return Err(ImapError::Bad(
            "FlagChange needs MessageNew and MessageExpunge".into(),
        ));
    }
    if selected && (w.names || w.subscriptions) {
        return Err(ImapError::Bad(
            "mailbox events cannot be asked for the selected mailbox".into(),
        ));
    }
    Ok((w, fetch))
}

impl Session {
    /// NOTIFY NONE / NOTIFY SET (RFC 5465 3.1).
    pub(super) async fn notify(&mut self, cmd: NotifyCommand, out: &mut Out<'_>) -> CmdResult {
        let account = self.account()?.to_string();
        let NotifyCommand::Set { status, groups } = cmd else {
            self.notify = None;
            return done("NOTIFY completed");
        };
        let mut checked = Vec::new();
        let mut selected = None;
        for g in &groups {
            let (wants, fetch) = validate(g)?;
            match g.filter {
                Filter::Selected | Filter::SelectedDelayed => {
                    selected.get_or_insert(SelectedWants {
                        delayed: g.filter == Filter::SelectedDelayed,
                        wants,
                        fetch,
                    });
                }
                _ => checked.push((g.filter.clone(), wants)),
            }
        }
        let feed = self
            .ctx
            .hub
            .notify_feed(&account, self.ctx.config.notify_queue);
        let mut n = Notify {
            groups: checked,
            selected,
            feed,
            pending: Vec::new(),
            closed: false,
            known: HashMap::new(),
            subscribed: BTreeSet::new(),
        };
        // The snapshot is read after the queue exists: what changes in
        // between is reported (perhaps twice), never missed.
        let mailboxes = self.ctx.store.mailboxes(account.clone()).await?;
        n.subscribed = self
            .ctx
            .store
            .subscriptions(account)
            .await?
            .into_iter()
            .collect();
        n.known = mailboxes.iter().map(|m| (m.id, m.name.clone())).collect();
        if status {
            // RFC 5465 3.1: STATUS tells the client where each watched
            // mailbox starts (not the selected one: SELECT did).
            let sel = self.selected().map(|s| s.id());
            for info in &mailboxes {
                if Some(info.id) == sel {
                    continue;
                }
                let Some(w) = n.wants_for(&info.name) else {
                    continue;
                };
                let items = status_items(w.new, w.expunge, w.flags, self.condstore);
                if !items.is_empty() {
                    self.status_data(info, &items, out).await?;
                }
            }
        }
        self.notify = Some(Box::new(n));
        done("NOTIFY completed")
    }

    /// True while NOTIFY SET is in effect.
    pub fn notifying(&self) -> bool {
        self.notify.is_some()
    }

    /// Resolves when something NOTIFY reports happened: a change on the
    /// account's queue, or (with SELECTED) to the selected mailbox.
    /// Never resolves without NOTIFY.
    pub async fn notify_ready(&mut self) {
        let Some(n) = self.notify.as_deref_mut() else {
            return std::future::pending().await;
        };
        let watch_selected = n.selected.as_ref().is_some_and(|s| s.wants.messages());
        match &mut self.state {
            State::Selected(_, sel) if watch_selected && !n.closed => tokio::select! {
                () = wait_feed(Some(n)) => {}
                () = sel.changed() => {}
            },
            _ => wait_feed(Some(n)).await,
        }
    }

    /// Reports what NOTIFY watches (see the module header). `selected`:
    /// also report the selected mailbox (between commands and while
    /// idling; `expunge_ok` as the moment allows).
    pub async fn notify_deliver(
        &mut self,
        out: &mut Out<'_>,
        selected: bool,
        idling: bool,
    ) -> Result<(), ImapError> {
        let Some(n) = self.notify.as_deref_mut() else {
            if idling {
                self.sync(out, true, false).await?;
                self.refresh_updates(out).await?;
            }
            return Ok(());
        };
        loop {
            match n.feed.try_recv() {
                Ok(Some(c)) => n.pending.push(c),
                Ok(None) => break,
                Err(_) => {
                    n.closed = true;
                    break;
                }
            }
        }
        if n.closed {
            // RFC 5465 5.8: changes were lost; NOTIFY is off, as after
            // NOTIFY NONE, and the client finds out what it missed.
            self.notify = None;
            out.untagged(
                Status::Ok,
                Some(Code::NotificationOverflow),
                "Too many events, NOTIFY is off",
            );
            if idling {
                self.sync(out, true, false).await?;
            }
            return Ok(());
        }
        let changes = std::mem::take(&mut n.pending);
        self.report_changes(changes, out).await?;
        if selected || idling {
            self.notify_selected(out, idling).await?;
            self.refresh_updates(out).await?;
        }
        Ok(())
    }

    /// STATUS and LIST for the changes taken off the queue.
    async fn report_changes(
        &mut self,
        changes: Vec<Change>,
        out: &mut Out<'_>,
    ) -> Result<(), ImapError> {
        let account = self.account()?.to_string();
        let sel = self.selected().map(|s| s.id());
        let condstore = self.condstore;
        // Per mailbox: (new, expunge, flags) seen.
        let mut touched: Vec<(MailboxId, [bool; 3])> = Vec::new();
        let mut names_changed = false;
        for c in &changes {
            let (mb, kind) = match c {
                Change::Appended { mailbox, .. } => (*mailbox, 0),
                Change::Expunged { mailbox, .. } => (*mailbox, 1),
                Change::Flags { mailbox, .. } => (*mailbox, 2),
                Change::Mailboxes { .. } => {
                    names_changed = true;
                    continue;
                }
                _ => continue,
            };
            if Some(mb) == sel {
                continue;
            }
            match touched.iter_mut().find(|(m, _)| *m == mb) {
                Some((_, k)) => k[kind] = true,
                None => {
                    let mut k = [false; 3];
                    k[kind] = true;
                    touched.push((mb, k));
                }
            }
        }
        if names_changed || touched.iter().any(|(m, _)| !self.notify_knows(*m)) {
            self.mailbox_changes(&account, out).await?;
        }
        for (mb, [new, expunge, flags]) in touched {
            let Some(n) = self.notify.as_ref() else {
                return Ok(());
            };
            let Some(name) = n.known.get(&mb).cloned() else {
                continue;
            };
            let Some(w) = n.wants_for(&name) else {
                continue;
            };
            let items = status_items(
                new && w.new,
                expunge && w.expunge,
                flags && w.flags,
                condstore,
            );
            if items.is_empty() {
                continue;
            }
            if let Some(info) = self.ctx.store.mailbox(account.clone(), name).await? {
                self.status_data(&info, &items, out).await?;
            }
        }
        Ok(())
    }

    fn notify_knows(&self, mb: MailboxId) -> bool {
        self.notify
            .as_ref()
            .is_some_and(|n| n.known.contains_key(&mb))
    }

    /// MailboxName and SubscriptionChange (RFC 5465 5.4, 5.5): LIST for
    /// each difference between the store's mailboxes and the last seen.
    async fn mailbox_changes(&mut self, account: &str, out: &mut Out<'_>) -> Result<(), ImapError> {
        let now = self.ctx.store.mailboxes(account.to_string()).await?;
        let subs: BTreeSet<String> = self
            .ctx
            .store
            .subscriptions(account.to_string())
            .await?
            .into_iter()
            .collect();
        let Some(n) = self.notify.as_deref_mut() else {
            return Ok(());
        };
        let now_ids: HashMap<MailboxId, String> =
            now.iter().map(|m| (m.id, m.name.clone())).collect();
        let mut lists = Vec::new();
        let names_wanted = |n: &Notify, name: &str| n.wants_for(name).is_some_and(|w| w.names);
        for m in &now {
            match n.known.get(&m.id) {
                None if names_wanted(n, &m.name) => lists.push(Data::ListChange {
                    attributes: Vec::new(),
                    name: m.name.clone(),
                    old_name: None,
                }),
                Some(old)
                    if *old != m.name && (names_wanted(n, &m.name) || names_wanted(n, old)) =>
                {
                    lists.push(Data::ListChange {
                        attributes: Vec::new(),
                        name: m.name.clone(),
                        old_name: Some(old.clone()),
                    })
                }
                _ => {}
            }
        }
        for (id, old) in &n.known {
            if !now_ids.contains_key(id) && names_wanted(n, old) {
                lists.push(Data::ListChange {
                    attributes: vec!["\\NonExistent".into()],
                    name: old.clone(),
                    old_name: None,
                });
            }
        }
        let exists = |name: &str| now.iter().any(|m| m.name == name);
        // The SUBSCRIBED filter covers a name subscribed before or after.
        let subs_wanted = |n: &Notify, name: &str| {
            n.wants_for(name).is_some_and(|w| w.subscriptions)
                || (subs.contains(name)
                    && n.groups
                        .iter()
                        .any(|(f, w)| w.subscriptions && *f == Filter::Subscribed))
        };
        for name in subs.symmetric_difference(&n.subscribed) {
            if !subs_wanted(n, name) {
                continue;
            }
            let mut attributes = Vec::new();
            if subs.contains(name) {
                attributes.push("\\Subscribed".to_string());
            }
            if !exists(name) {
                attributes.push("\\NonExistent".to_string());
            }
            lists.push(Data::ListChange {
                attributes,
                name: name.clone(),
                old_name: None,
            });
        }
        n.known = now_ids;
        n.subscribed = subs;
        for l in lists {
            out.data(l);
        }
        Ok(())
    }

    /// The selected mailbox under SELECTED / SELECTED-DELAYED: its
    /// changes, then MessageNew's FETCH attributes for new messages.
    async fn notify_selected(&mut self, out: &mut Out<'_>, idling: bool) -> Result<(), ImapError> {
        let Some(sw) = self.notify.as_ref().and_then(|n| n.selected.clone()) else {
            // Without SELECTED the selected mailbox keeps the base rules:
            // IDLE reports it, other moments wait for a command.
            if idling {
                self.sync(out, true, false).await?;
            }
            return Ok(());
        };
        let Some(before) = self.selected().map(|s| s.exists()) else {
            return Ok(());
        };
        if !sw.wants.messages() && !idling {
            return Ok(());
        }
        // SELECTED-DELAYED keeps expunges for a command that allows them
        // (RFC 5465 6); SELECTED and IDLE report them at once.
        self.sync(out, idling || !sw.delayed, false).await?;
        let after = self.selected().map_or(0, |s| s.exists());
        if sw.wants.new && !sw.fetch.is_empty() && after > before {
            let set = SeqSet::Ranges(vec![(SeqNum::Value(before + 1), SeqNum::Value(after))]);
            self.fetch(false, &set, &sw.fetch, FetchModifiers::default(), out)
                .await?;
        }
        Ok(())
    }
}

impl Notify {
    /// The events of the first non-selected group matching `name`.
    fn wants_for(&self, name: &str) -> Option<&Wants> {
        self.groups
            .iter()
            .find(|(f, _)| matches(f, name, &self.subscribed))
            .map(|(_, w)| w)
    }

    fn take(&mut self, c: Option<Change>) {
        match c {
            Some(c) => self.pending.push(c),
            None => self.closed = true,
        }
    }
}

/// Waits for the next change on a NOTIFY queue (taking it); never
/// resolves without NOTIFY, at once when the queue is closed.
pub(super) async fn wait_feed(n: Option<&mut Notify>) {
    let Some(n) = n else {
        return std::future::pending().await;
    };
    if n.closed {
        return;
    }
    let c = n.feed.recv().await;
    n.take(c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::testkit::{ALICE, Kit, cmd};

    /// Lets the hub's task route what the store committed.
    async fn settle() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    #[test]
    fn filters_match_as_rfc_5465_6_says() {
        let subs: BTreeSet<String> = ["Lists".to_string()].into();
        let mb = |s: &str| proto_imap::Mailbox::from_wire(s.as_bytes(), true).expect("name");
        let subtree = Filter::Subtree(vec![mb("Lists")]);
        assert!(matches(&subtree, "Lists", &subs));
        assert!(matches(&subtree, "Lists/rust", &subs));
        assert!(!matches(&subtree, "Listserv", &subs));
        let exact = Filter::Mailboxes(vec![mb("inbox")]);
        assert!(matches(&exact, "INBOX", &subs));
        assert!(!matches(&exact, "INBOX/a", &subs));
        assert!(matches(&Filter::Inboxes, "INBOX", &subs));
        assert!(!matches(&Filter::Inboxes, "Sent", &subs));
        assert!(matches(&Filter::Subscribed, "Lists", &subs));
        assert!(!matches(&Filter::Subscribed, "Sent", &subs));
        assert!(!matches(&Filter::Selected, "INBOX", &subs));
    }

    #[tokio::test]
    async fn an_overflowing_queue_says_so_and_turns_notify_off() {
        let kit = Kit::with(|c| c.notify_queue = 3);
        let mut s = kit.logged_in(ALICE).await;
        cmd(&mut s, "NOTIFY SET (inboxes (MessageNew MessageExpunge))")
            .await
            .assert_ok();
        // Two changes fit: reported as one STATUS.
        kit.deliver_n(ALICE, 2).await;
        settle().await;
        let r = cmd(&mut s, "NOOP").await;
        assert_eq!(
            r.lines_with("* STATUS INBOX (MESSAGES 2 UIDNEXT 3 ").len(),
            1,
            "{r:?}"
        );
        // More than the queue holds while the session is busy elsewhere.
        kit.deliver_n(ALICE, 5).await;
        settle().await;
        let r = cmd(&mut s, "NOOP").await;
        assert!(r.has("* OK [NOTIFICATIONOVERFLOW]"), "{r:?}");
        assert!(!s.notifying());
        // Off, as after NOTIFY NONE.
        kit.deliver_n(ALICE, 1).await;
        settle().await;
        let r = cmd(&mut s, "NOOP").await;
        assert!(!r.has("STATUS"), "{r:?}");
    }
}
