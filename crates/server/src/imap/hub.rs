//! Routes the store's change feed to the sessions watching a mailbox.
//!
//! One task reads the feed (every committed change, this process's and
//! the CLI's); each session that has a mailbox selected holds a
//! `watch::Receiver` for that mailbox and is woken only by changes to it.
//! An idle session therefore costs no CPU and the feed is read once, not
//! once per session. A lagging feed wakes every watcher: each resyncs
//! from the store.
//!
//! Account deletions are counted per account: a session remembers the
//! count at login and ends with `* BYE` once it grows, whichever process
//! deleted the account (the feed carries the CLI's commits too). The
//! account's sessions stop counting as its terminal at once (SEND answers
//! 450 from then on), before any of them notices.
//!
//! NOTIFY (RFC 5465) sessions watch a whole account: each holds a bounded
//! queue of the account's changes ([`ChangeHub::notify_feed`]). The hub
//! never waits for a session: a full queue (or a lagging feed) closes it,
//! and the session answers `* OK [NOTIFICATIONOVERFLOW]` (RFC 5465 5.8).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use store::{Change, MailboxId, Store};
use tokio::sync::{broadcast, mpsc, watch};

use crate::presence::PresenceRegistry;

pub struct ChangeHub {
    watchers: Mutex<Watchers>,
    /// Deletions seen per (lower-cased) account since the server started.
    /// One entry per deleted account name: administrators' actions, not
    /// client input, so it stays small.
    deletions: Mutex<HashMap<String, u64>>,
    presence: Arc<PresenceRegistry>,
    /// NOTIFY sessions by (lower-cased) account.
    notify: Mutex<HashMap<String, Vec<NotifySender>>>,
}

/// The hub's end of one NOTIFY session's queue.
struct NotifySender {
    tx: mpsc::Sender<Change>,
    overflow: Arc<AtomicBool>,
}

/// A NOTIFY session's queue of its account's changes. Closed (`recv`
/// gives None) once the session fell behind: [`NotifyFeed::overflowed`].
pub struct NotifyFeed {
    rx: mpsc::Receiver<Change>,
    overflow: Arc<AtomicBool>,
}

impl NotifyFeed {
    /// The next change; None once the queue is closed.
    pub async fn recv(&mut self) -> Option<Change> {
        self.rx.recv().await
    }

    /// A change already queued, without waiting; Err(true) once closed.
    pub fn try_recv(&mut self) -> Result<Option<Change>, bool> {
        match self.rx.try_recv() {
            Ok(c) => Ok(Some(c)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(true),
        }
    }

    /// Changes were dropped because the session did not keep up.
    pub fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Watchers {
    map: HashMap<MailboxId, watch::Sender<u64>>,
    /// Size at the last cleanup: the map is swept when it doubles.
    swept_at: usize,
}

impl ChangeHub {
    /// Starts the routing task; needs a tokio runtime.
    pub fn start(store: &Arc<dyn Store>, presence: Arc<PresenceRegistry>) -> Arc<ChangeHub> {
        let hub = Arc::new(ChangeHub {
            watchers: Mutex::default(),
            deletions: Mutex::default(),
            presence,
            notify: Mutex::default(),
        });
        let mut rx = store.subscribe();
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            loop {
                let change = rx.recv().await;
                let Some(hub) = weak.upgrade() else { return };
                match change {
                    Ok(Change::AccountDeleted { account }) => hub.account_deleted(account),
                    Ok(c) => {
                        if let Some(mb) = mailbox_of(&c) {
                            hub.bump(mb);
                        }
                        hub.route_notify(c);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "imap: change feed lagged; resyncing sessions");
                        hub.bump_all();
                        hub.overflow_all_notify();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watchers> {
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn account_deleted(&self, account: String) {
        tracing::info!(%account, "imap: account deleted; ending its sessions");
        {
            let mut d = self
                .deletions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let n = d.entry(account.to_lowercase()).or_insert(0);
            *n = n.wrapping_add(1);
        }
        // After the count: a session woken by its closed terminal channel
        // sees itself deleted.
        self.presence.remove_account(&account);
        // Wake every watcher: sessions in IDLE notice at once.
        self.bump_all();
    }

    /// How many times `account` was deleted since the server started.
    pub fn deletions(&self, account: &str) -> u64 {
        self.deletions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&account.to_lowercase())
            .copied()
            .unwrap_or(0)
    }

    fn bump(&self, mailbox: MailboxId) {
        if let Some(tx) = self.lock().map.get(&mailbox) {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    fn bump_all(&self) {
        for tx in self.lock().map.values() {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// A queue of `account`'s changes for a NOTIFY session, holding at
    /// most `capacity` not yet taken.
    pub fn notify_feed(&self, account: &str, capacity: usize) -> NotifyFeed {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let overflow = Arc::new(AtomicBool::new(false));
        let sender = NotifySender {
            tx,
            overflow: Arc::clone(&overflow),
        };
        let mut map = self.notify.lock().unwrap_or_else(PoisonError::into_inner);
        // Sessions that ended (NOTIFY NONE, logout) are swept here, so
        // the map holds live sessions only.
        map.retain(|_, senders| {
            senders.retain(|s| !s.tx.is_closed());
            !senders.is_empty()
        });
        map.entry(account.to_lowercase()).or_default().push(sender);
        NotifyFeed { rx, overflow }
    }

    fn route_notify(&self, change: Change) {
        let account = match &change {
            Change::Appended { account, .. }
            | Change::Flags { account, .. }
            | Change::Expunged { account, .. }
            | Change::Mailboxes { account } => account.to_lowercase(),
            Change::AccountDeleted { .. } | Change::Queue | Change::QueueRetry => return,
        };
        let mut map = self.notify.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(senders) = map.get_mut(&account) else {
            return;
        };
        senders.retain(|s| match s.tx.try_send(change.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender closes the queue: the session
                // wakes, finds it closed and reports the overflow.
                s.overflow.store(true, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if senders.is_empty() {
            map.remove(&account);
        }
    }

    /// The feed lost changes: no NOTIFY session can know what it missed.
    fn overflow_all_notify(&self) {
        let mut map = self.notify.lock().unwrap_or_else(PoisonError::into_inner);
        for s in map.values().flatten() {
            s.overflow.store(true, Ordering::Relaxed);
        }
        map.clear();
    }

    /// A receiver that changes whenever `mailbox` does.
    pub fn watch(&self, mailbox: MailboxId) -> watch::Receiver<u64> {
        let mut w = self.lock();
        if w.map.len() > 64 && w.map.len() >= w.swept_at.saturating_mul(2) {
            w.map.retain(|_, tx| tx.receiver_count() > 0);
            w.swept_at = w.map.len();
        }
        let tx = w.map.entry(mailbox).or_insert_with(|| watch::channel(0).0);
        let mut rx = tx.subscribe();
        rx.mark_unchanged();
        rx
    }
}

fn mailbox_of(c: &Change) -> Option<MailboxId> {
    match c {
        Change::Appended { mailbox, .. }
        | Change::Flags { mailbox, .. }
        | Change::Expunged { mailbox, .. } => Some(*mailbox),
        Change::Mailboxes { .. }
        | Change::AccountDeleted { .. }
        | Change::Queue
        | Change::QueueRetry => None,
    }
}
