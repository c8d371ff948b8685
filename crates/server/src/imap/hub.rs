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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use store::{Change, MailboxId, Store};
use tokio::sync::{broadcast, watch};

use crate::presence::PresenceRegistry;

pub struct ChangeHub {
    watchers: Mutex<Watchers>,
    /// Deletions seen per (lower-cased) account since the server started.
    /// One entry per deleted account name: administrators' actions, not
    /// client input, so it stays small.
    deletions: Mutex<HashMap<String, u64>>,
    presence: Arc<PresenceRegistry>,
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
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "imap: change feed lagged; resyncing sessions");
                        hub.bump_all();
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
