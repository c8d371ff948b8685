//! The maildrop of a POP3 session: the user's INBOX as it was at login
//! (SPEC 2; RFC 1939 5: message numbers are fixed for the session).
//!
//! Sizes are the stored octets, which are the CRLF form RETR sends before
//! dot-stuffing, so STAT, LIST and RETR agree. Unique ids are derived from
//! UIDVALIDITY and UID, so they are stable across sessions and restarts and
//! unique within the mailbox (RFC 1939 7). A message that another session
//! expunges is learnt from the store's change feed and marked gone: RETR
//! of it answers -ERR rather than reading a body that may be freed.

use std::sync::Arc;

use proto_pop3::MsgNum;
use store::{BodyId, Change, MailboxId, Store, StoreError, Uid};
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::task::JoinHandle;

/// Bounds one catch-up on the change feed; the feed's own capacity bounds
/// it anyway, this keeps one command from spinning on a busy store.
const MAX_CHANGES_PER_REFRESH: usize = 10_000;

/// One message of the snapshot.
#[derive(Debug, Clone)]
pub struct Entry {
    pub uid: Uid,
    pub body: BodyId,
    pub size: u64,
    /// Marked by DELE, unmarked by RSET (RFC 1939 5, 6).
    pub deleted: bool,
    /// Expunged by another session since the snapshot.
    pub gone: bool,
}

/// Why a message number does not name a message one can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Beyond the maildrop (RFC 1939 5 "no such message").
    NoSuch,
    /// Marked deleted in this session.
    Deleted,
}

pub struct Maildrop {
    pub account: String,
    pub mailbox: MailboxId,
    pub uidvalidity: u32,
    entries: Vec<Entry>,
    changes: broadcast::Receiver<Change>,
    /// UIDs sent by RETR whose \Seen is not yet stored.
    pending_seen: Vec<Uid>,
    /// The \Seen write in flight, if any (see [`Maildrop::store_seen`]).
    seen_write: Option<JoinHandle<Result<(), StoreError>>>,
    /// The feed lagged or a mailbox of the account changed since the last
    /// refresh: the entries must be re-read.
    resync: bool,
    /// The account was deleted (by the CLI, maybe in another process).
    pub account_deleted: bool,
}

impl Maildrop {
    /// Takes the snapshot of `account`'s INBOX, creating the account's
    /// mailboxes if it never received mail.
    pub async fn open(store: &Arc<dyn Store>, account: &str) -> Result<Maildrop, StoreError> {
        // Subscribe first: an expunge between the snapshot and the
        // subscription would otherwise be missed.
        let changes = store.subscribe();
        let info = match store.mailbox(account.into(), "INBOX".into()).await? {
            Some(info) => info,
            None => {
                store.ensure_account(account.into()).await?;
                store
                    .mailbox(account.into(), "INBOX".into())
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("INBOX of {account}")))?
            }
        };
        let entries = store
            .messages(info.id)
            .await?
            .into_iter()
            .map(|m| Entry {
                uid: m.uid,
                body: m.body,
                size: m.size,
                deleted: false,
                gone: false,
            })
            .collect();
        Ok(Maildrop {
            account: account.to_string(),
            mailbox: info.id,
            uidvalidity: info.uidvalidity,
            entries,
            changes,
            pending_seen: Vec::new(),
            seen_write: None,
            resync: false,
            account_deleted: false,
        })
    }

    /// Every message of the snapshot, deleted or not, in number order.
    pub fn entries(&self) -> impl Iterator<Item = (MsgNum, &Entry)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((MsgNum::new(u32::try_from(i + 1).ok()?)?, e)))
    }

    /// Messages in the snapshot, deleted ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The message `n` unless it does not exist or is marked deleted.
    pub fn get(&self, n: MsgNum) -> Result<&Entry, Lookup> {
        let e = self.entries.get(n.index()).ok_or(Lookup::NoSuch)?;
        if e.deleted {
            Err(Lookup::Deleted)
        } else {
            Ok(e)
        }
    }

    /// Count and octets of the messages not marked deleted (STAT, RFC 1939 5).
    pub fn stat(&self) -> (usize, u64) {
        self.entries
            .iter()
            .filter(|e| !e.deleted)
            .fold((0, 0), |(n, o), e| (n + 1, o + e.size))
    }

    /// The unique-id listing of RFC 1939 7: 1 to 70 characters of 0x21-0x7E.
    pub fn unique_id(&self, e: &Entry) -> String {
        format!("{}.{}", self.uidvalidity, e.uid.0)
    }

    /// DELE: marks `n`; Err if it cannot be used.
    pub fn mark_deleted(&mut self, n: MsgNum) -> Result<(), Lookup> {
        let e = self.entries.get_mut(n.index()).ok_or(Lookup::NoSuch)?;
        if e.deleted {
            return Err(Lookup::Deleted);
        }
        e.deleted = true;
        Ok(())
    }

    /// RSET: unmarks every message.
    pub fn unmark_all(&mut self) {
        for e in &mut self.entries {
            e.deleted = false;
        }
    }

    /// The UIDs marked deleted, for UPDATE.
    pub fn deleted_uids(&self) -> Vec<Uid> {
        self.entries
            .iter()
            .filter(|e| e.deleted)
            .map(|e| e.uid)
            .collect()
    }

    /// Remembers that RETR sent `uid`; [`Maildrop::store_seen`] stores it.
    pub fn retrieved(&mut self, uid: Uid) {
        if !self.pending_seen.contains(&uid) {
            self.pending_seen.push(uid);
        }
    }

    /// Starts storing \Seen for the messages sent by RETR since the last
    /// call: one write (one fsync) for a whole pipelined group of RETRs.
    /// The write runs while the session waits for the client's next
    /// command (a client that sends one RETR at a time does not wait for
    /// an fsync per message); one write at most is in flight, so a
    /// previous one is awaited first. A write started here completes even
    /// if the connection drops: the message was sent whole.
    pub async fn store_seen(&mut self, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        let previous = self.settle_seen().await;
        if self.pending_seen.is_empty() {
            return previous;
        }
        let uids = std::mem::take(&mut self.pending_seen);
        let (store, mailbox) = (Arc::clone(store), self.mailbox);
        self.seen_write = Some(tokio::spawn(async move {
            store
                .set_flags(
                    mailbox,
                    uids,
                    store::FlagOp::Add,
                    vec!["\\Seen".to_string()],
                )
                .await
                .map(|_| ())
        }));
        previous
    }

    /// Waits for the \Seen write in flight, if any.
    pub async fn settle_seen(&mut self) -> Result<(), StoreError> {
        match self.seen_write.take() {
            None => Ok(()),
            Some(h) => h
                .await
                .map_err(|e| StoreError::Io(format!("\\Seen write task: {e}")))?,
        }
    }

    /// Reads the change feed and marks messages expunged elsewhere as gone.
    /// When the feed lagged, or a mailbox of the account changed (INBOX
    /// renamed), it re-reads the mailbox's entries instead.
    pub async fn refresh(&mut self, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        self.poll_feed();
        if std::mem::take(&mut self.resync) {
            let present = match store.messages(self.mailbox).await {
                Ok(list) => list.into_iter().map(|m| m.uid).collect::<Vec<_>>(),
                Err(StoreError::NotFound(_)) => Vec::new(),
                Err(e) => return Err(e),
            };
            for e in &mut self.entries {
                if present.binary_search(&e.uid).is_err() {
                    e.gone = true;
                }
            }
        }
        Ok(())
    }

    /// Reads what the change feed has now, without touching the store:
    /// marks expunged messages gone, and notes a needed resync or the
    /// account's deletion. Cheap enough to run before every command.
    pub fn poll_feed(&mut self) {
        let account = self.account.to_lowercase();
        for _ in 0..MAX_CHANGES_PER_REFRESH {
            match self.changes.try_recv() {
                Ok(Change::Expunged { mailbox, uid, .. }) if mailbox == self.mailbox => {
                    self.mark_gone(uid);
                }
                Ok(Change::Mailboxes { account: a }) if a == account => self.resync = true,
                Ok(Change::AccountDeleted { account: a }) if a == account => {
                    self.account_deleted = true;
                }
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => self.resync = true,
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => break,
            }
        }
    }

    fn mark_gone(&mut self, uid: Uid) {
        if let Ok(i) = self.entries.binary_search_by_key(&uid, |e| e.uid)
            && let Some(e) = self.entries.get_mut(i)
        {
            e.gone = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Kit;
    use super::*;

    fn n(v: u32) -> MsgNum {
        MsgNum::new(v).unwrap()
    }

    #[tokio::test]
    async fn snapshot_numbers_messages_in_uid_order_with_stored_sizes() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        kit.deliver("alice@example.test", b"A: 2\r\n\r\ntwo two\r\n")
            .await;
        let store: Arc<dyn Store> = kit.store.clone();
        let m = Maildrop::open(&store, "alice@example.test").await.unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.stat(), (2, 13 + 17));
        assert!(m.get(n(1)).unwrap().uid < m.get(n(2)).unwrap().uid);
        assert_eq!(m.get(n(3)).err(), Some(Lookup::NoSuch));
    }

    #[tokio::test]
    async fn account_without_mail_gets_an_empty_maildrop() {
        let kit = Kit::new();
        let store: Arc<dyn Store> = kit.store.clone();
        let m = Maildrop::open(&store, "bob@example.test").await.unwrap();
        assert!(m.is_empty());
        assert_eq!(m.stat(), (0, 0));
    }

    #[tokio::test]
    async fn expunge_elsewhere_marks_the_entry_gone() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        kit.deliver("alice@example.test", b"A: 2\r\n\r\ntwo\r\n")
            .await;
        let store: Arc<dyn Store> = kit.store.clone();
        let mut m = Maildrop::open(&store, "alice@example.test").await.unwrap();
        let uid = m.get(n(1)).unwrap().uid;
        store.expunge(m.mailbox, vec![uid]).await.unwrap();
        m.refresh(&store).await.unwrap();
        assert!(m.get(n(1)).unwrap().gone);
        assert!(!m.get(n(2)).unwrap().gone);
    }

    #[tokio::test]
    async fn dele_marks_and_rset_unmarks() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        let store: Arc<dyn Store> = kit.store.clone();
        let mut m = Maildrop::open(&store, "alice@example.test").await.unwrap();
        m.mark_deleted(n(1)).unwrap();
        assert_eq!(m.mark_deleted(n(1)), Err(Lookup::Deleted));
        assert_eq!(m.get(n(1)).err(), Some(Lookup::Deleted));
        assert_eq!(m.stat(), (0, 0));
        assert_eq!(m.deleted_uids().len(), 1);
        m.unmark_all();
        assert!(m.get(n(1)).is_ok());
        assert!(m.deleted_uids().is_empty());
    }
}
