//! The durable message store: accounts, mailboxes, message bodies, flags,
//! UIDs, the outbound queue and a change feed (SPEC section 6).
//!
//! One narrow trait, [`Store`], is what the sessions use; [`SqliteStore`] is
//! the embedded backend (one SQLite database in WAL mode in the data
//! directory). The store never knows which protocol called it.
//!
//! Module map:
//! - `schema`: connection settings, the schema and its migrations;
//! - `writer`: the group-commit writer thread, the only place that commits
//!   (its header holds the durability and ordering rules);
//! - `ops`: the SQL of each write operation, run by the writer;
//! - `read`: the read connection pool and the read queries;
//! - `index`: [`MailboxIndex`], the UIDs and flags SELECT opens a
//!   mailbox from, and the builder every backend makes it with;
//! - `feed`: the change feed and the watcher thread for other processes;
//! - `spooled`: bodies whose end is still in a spool file, copied in
//!   chunks (issue 19);
//! - `sqlite`: [`SqliteStore`], which ties them together;
//! - `conformance` (tests, or the `conformance` feature): the behaviour
//!   tests every backend passes.
//!
//! UIDs and UIDVALIDITY follow RFC 9051 2.3.1.1; mod-sequences follow
//! RFC 7162 (CONDSTORE) so that QRESYNC can be added later.

#![forbid(unsafe_code)]

mod feed;
mod index;
mod ops;
mod read;
mod schema;
mod spooled;
mod sqlite;
pub mod threads;
mod writer;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use index::{IndexBuilder, MailboxIndex};
pub use ops::MAX_FLAGS_PER_MESSAGE;

/// The validation and canonical forms every backend applies the same way
/// (account and mailbox names, flags, limits), so that a PostgreSQL store
/// accepts and refuses exactly what the embedded one does.
pub mod rules {
    pub use crate::ops::{
        MAX_ACCOUNT_NAME, MAX_BODY_BYTES, MAX_FLAG_LEN, MAX_FLAGS_PER_MESSAGE, MAX_MAILBOX_NAME,
        canonical_account, check_new_mailbox_name, flags_from_text, flags_to_text, normalize_flags,
        normalize_mailbox_name, now, same_flags,
    };
}
pub use schema::SCHEMA_VERSION;
pub use spooled::{BODY_CHUNK, BodyParts, Spooled, Tails};
pub use sqlite::SqliteStore;

/// The future every store method returns: boxed so that [`Store`] stays
/// object-safe (`Arc<dyn Store>`).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A mailbox's row id; stable for the life of the mailbox, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub i64);

/// A stored message body, shared by every mailbox entry (and queue row)
/// that refers to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BodyId(pub i64);

/// An IMAP UID (RFC 9051 2.3.1.1): strictly ascending per mailbox, never
/// reused within one UIDVALIDITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub u32);

/// The mailboxes every new account gets, subscribed, with their RFC 6154
/// special-use attribute.
pub const SPECIAL_MAILBOXES: [(&str, Option<&str>); 6] = [
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

/// Default for [`StoreOptions::group_commit_max`]: the most operations one
/// transaction (one fsync) carries. Big enough that a burst of deliveries
/// shares a commit, small enough that one transaction stays short.
pub const GROUP_COMMIT_MAX: usize = 256;

/// Default for [`StoreOptions::feed_poll_interval`]: how often the watcher
/// looks for changes committed by another process (the CLI). IMAP IDLE must
/// report new mail within a second (SPEC 3), so well under that.
pub const FEED_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// How long tombstones are kept by default (`[store] tombstone_retention`):
/// a client that resyncs with QRESYNC within it gets its VANISHED from
/// them; one offline longer gets it from its known UIDs (RFC 7162
/// 3.2.5.2), which costs a UID comparison, never a missed expunge.
pub const DEFAULT_TOMBSTONE_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(180 * 24 * 3600);

/// Tunables of [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most operations per group commit (see [`GROUP_COMMIT_MAX`]).
    pub group_commit_max: usize,
    /// Poll interval of the cross-process watcher (see [`FEED_POLL_INTERVAL`]).
    pub feed_poll_interval: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            group_commit_max: GROUP_COMMIT_MAX,
            feed_poll_interval: FEED_POLL_INTERVAL,
        }
    }
}

/// One accepted message, for its local mailboxes and its remote recipients,
/// stored in one atomic operation.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message as stored in local mailboxes (CRLF, trace headers and
    /// Return-Path already prepended by the caller). None when there is no
    /// local recipient.
    pub local_raw: Option<Vec<u8>>,
    /// Where each local copy goes: an account's mailbox with its flags;
    /// one body shared by all. The account is created (with its six
    /// mailboxes) if missing; a mailbox that does not exist means INBOX
    /// (the implicit keep of RFC 5228 2.10.2), so a filter naming a gone
    /// folder never loses mail.
    pub local: Vec<LocalTarget>,
    /// Remote recipients: queued durably for the outbound delivery, in the
    /// same transaction.
    pub outbound: Option<Outbound>,
    /// INTERNALDATE of the local entries, unix seconds.
    pub internal_date: i64,
}

/// One local copy of a delivery (issue 12: named per recipient, so
/// filtering such as Sieve `fileinto` plugs in without a store change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    pub account: String,
    pub mailbox: String,
    pub flags: Vec<String>,
}

impl LocalTarget {
    /// The account's INBOX, no flags: plain delivery.
    pub fn inbox(account: impl Into<String>) -> LocalTarget {
        LocalTarget {
            account: account.into(),
            mailbox: "INBOX".to_string(),
            flags: Vec::new(),
        }
    }
}

/// The remote part of a delivery: one queue row per recipient, one body.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// The message as it will be relayed.
    pub raw: Vec<u8>,
    /// The reverse-path; "" for the null reverse-path.
    pub sender: String,
    /// Remote forward-paths.
    pub recipients: Vec<String>,
    /// Per recipient, aligned with `recipients`; a missing entry is the
    /// default (the message's sender, no NOTIFY, no ORCPT).
    pub rcpt: Vec<QueueRcpt>,
    /// RFC 3461 4.4 ENVID (xtext, as received) and 4.3 RET (`FULL` or
    /// `HDRS`) of the message.
    pub envid: Option<String>,
    pub ret: Option<String>,
    /// The message came with SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// A notice to postmaster about a DSN that could not be delivered: if
    /// it fails too, nothing more is made (issue 13: "once, never further").
    pub notice: bool,
}

/// One queued recipient's own envelope details.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueRcpt {
    /// Its reverse-path when it is not the message's: forwarded mail
    /// leaves with an SRS address.
    pub sender: Option<String>,
    /// RFC 3461 4.1 NOTIFY (upper case) and 4.2 ORCPT (`type;xtext`).
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// What one delivery run settles in ONE transaction (issue 12: "the
/// DSN's enqueue and the row's removal in one transaction"): rows that
/// are done (delivered, or failed with their DSN among `dsns`), rows whose
/// delay warning is among `dsns`, and the DSNs themselves. A crash either
/// keeps the rows (sent again: a second copy, never a loss) or has the
/// DSNs; never neither.
#[derive(Debug, Clone, Default)]
pub struct Settle {
    pub remove: Vec<i64>,
    /// Temporary failures: (row, next attempt, error), as
    /// [`Store::defer_queue`].
    pub defer: Vec<(i64, i64, String)>,
    pub warned: Vec<i64>,
    pub dsns: Vec<Delivery>,
}

/// What a delivery created: one entry per local account (canonical name,
/// its INBOX, the new UID) and one queue row per remote recipient.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub entries: Vec<(String, MailboxId, Uid)>,
    pub queue_ids: Vec<i64>,
}

/// A mailbox with its counters, as LIST / STATUS / SELECT need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    pub id: MailboxId,
    pub account: String,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub special_use: Option<String>,
    /// The name is on the account's subscription list (which also holds
    /// names without a mailbox: [`Store::subscriptions`]).
    pub subscribed: bool,
    pub messages: u32,
    pub unseen: u32,
}

/// One mailbox entry (a message as seen in one mailbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: Uid,
    pub body: BodyId,
    /// RFC822.SIZE: the body's length in octets.
    pub size: u64,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
    /// System flags (canonical case, e.g. `\Seen`) and keywords.
    pub flags: Vec<String>,
    /// The mod-sequence of this entry's last change (RFC 7162).
    pub modseq: u64,
}

/// One message of [`Store::append_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub raw: Vec<u8>,
    pub flags: Vec<String>,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
}

/// What an account holds (RFC 9208 STORAGE and MESSAGE): every entry of
/// every mailbox, a body shared by two mailboxes counted twice, as IMAP
/// clients see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of RFC822.SIZE over all entries, in octets.
    pub bytes: u64,
    pub messages: u64,
}

/// Limits one write must keep an account within (RFC 9208 5.3: an
/// APPEND or COPY that would pass one stores nothing); 0 is unlimited.
/// The store checks them against the account's usage inside the write's
/// transaction, so two sessions appending at once cannot both pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Octets.
    pub storage: u64,
    pub messages: u64,
}

impl Quota {
    pub fn unlimited(&self) -> bool {
        self.storage == 0 && self.messages == 0
    }

    /// True when `usage` plus `bytes` octets in `messages` more messages
    /// stays within every limit.
    pub fn admits(&self, usage: Usage, bytes: u64, messages: u64) -> bool {
        let fits =
            |limit: u64, used: u64, more: u64| limit == 0 || used.saturating_add(more) <= limit;
        fits(self.storage, usage.bytes, bytes) && fits(self.messages, usage.messages, messages)
    }

    /// True when a limit is reached already (SMTP: 452 4.2.2 at RCPT).
    pub fn reached(&self, usage: Usage) -> bool {
        (self.storage != 0 && usage.bytes >= self.storage)
            || (self.messages != 0 && usage.messages >= self.messages)
    }
}

/// What [`Store::set_flags_unchanged_since`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConditionalFlags {
    /// The entries whose flags changed, as [`Store::set_flags`] returns.
    pub changed: Vec<MessageMeta>,
    /// The entries left alone because their mod-sequence was above the
    /// condition (RFC 7162 3.1.3's MODIFIED), ascending.
    pub modified: Vec<Uid>,
}

/// What changed in a mailbox after a mod-sequence
/// ([`Store::changes_since`]). Every append, flag change and expunge takes
/// a new mod-sequence of its mailbox (RFC 7162 3.1), so these lists are
/// the whole difference between the mailbox at `since` and now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxChanges {
    /// The mailbox's HIGHESTMODSEQ in the snapshot the lists come from:
    /// where the next call starts.
    pub highestmodseq: u64,
    /// Entries appended or whose flags changed, ascending UID.
    pub changed: Vec<MessageMeta>,
    /// UIDs expunged, ascending (some may never have been seen).
    pub vanished: Vec<Uid>,
    /// True when tombstones above `since` were trimmed
    /// ([`Store::trim_tombstones`]): `vanished` may then miss UIDs, and a
    /// caller must compare UIDs instead (RFC 7162 3.2.5.2).
    pub trimmed: bool,
}

/// How [`Store::set_flags`] combines the given flags with the current ones
/// (STORE +FLAGS / -FLAGS / FLAGS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// One outbound queue row: one remote recipient of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: i64,
    pub body: BodyId,
    pub sender: String,
    pub recipient: String,
    /// "queued" when created; the delivery crate owns the other states.
    pub status: String,
    pub attempts: u32,
    /// Unix seconds.
    pub next_attempt: i64,
    /// Unix seconds.
    pub created: i64,
    pub last_error: Option<String>,
    /// RFC 3461 parameters (see [`Outbound`] and [`QueueRcpt`]).
    pub envid: Option<String>,
    pub ret: Option<String>,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
    pub smtputf8: bool,
    /// Its delay warning (RFC 3461 4.1 DELAY) went out.
    pub warned: bool,
    /// See [`Outbound::notice`].
    pub notice: bool,
}

/// A committed change, as published on the change feed. Sessions filter by
/// account and mailbox; a lagging receiver (broadcast `Lagged`) must
/// resynchronise from [`Store::messages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Appended {
        account: String,
        mailbox: MailboxId,
        uid: Uid,
        modseq: u64,
    },
    Flags {
        account: String,
        mailbox: MailboxId,
        uid: Uid,
        modseq: u64,
    },
    Expunged {
        account: String,
        mailbox: MailboxId,
        uid: Uid,
        modseq: u64,
    },
    /// A mailbox of this account was created, deleted, renamed or
    /// (un)subscribed, or the account itself was created or deleted.
    Mailboxes { account: String },
    /// The outbound queue changed (new rows): wakes the worker.
    Queue,
    /// An operator asked for a retry (`mailroom queue retry`): wakes the
    /// worker, which also forgets which destinations it found down, so the
    /// retry really tries (as Postfix's `postqueue -f` does).
    QueueRetry,
    /// The account was deleted (`mailroom user del`, possibly from another
    /// process): its sessions end (IMAP `* BYE`, POP3 `-ERR`). Follows the
    /// account's `Mailboxes` change, so a consumer of that alone still
    /// resynchronises.
    AccountDeleted { account: String },
}

/// Counters for metrics and the benchmark: fsyncs per message is
/// `commits / ops`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Transactions committed (each is one WAL fsync).
    pub commits: u64,
    /// Write operations answered Ok by those commits.
    pub ops: u64,
    /// Commits by how many operations they carried (group commit's batch
    /// size): bucket `i` counts batches of at most `2^i` operations, the
    /// last one every larger batch.
    pub batches: [u64; BATCH_BUCKETS],
}

/// Buckets of [`StoreStats::batches`]: 1, 2, 4, ... 256, and more.
pub const BATCH_BUCKETS: usize = 10;

/// The bucket of a commit of `ops` operations.
pub fn batch_bucket(ops: u64) -> usize {
    let mut i = 0;
    while i + 1 < BATCH_BUCKETS && ops > (1u64 << i) {
        i += 1;
    }
    i
}

/// Errors of the store. [`StoreError::is_temporary`] tells the session
/// whether to answer 4xx / `NO [UNAVAILABLE]`-style or 5xx / `NO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The disk (or the database size limit) is full; nothing was written.
    DiskFull,
    /// The account is over its quota; nothing was written.
    QuotaExceeded,
    /// Another process held the database past the busy timeout.
    Busy,
    NotFound(String),
    AlreadyExists(String),
    Invalid(String),
    /// A well-formed request over one of the store's limits (e.g. more
    /// than `MAX_FLAGS_PER_MESSAGE` flags); nothing was written. IMAP
    /// answers `NO [LIMIT]` (RFC 5530 3), not BAD.
    Limit(String),
    /// The data directory was written by a newer mailroom.
    NewerSchema {
        found: u32,
        supported: u32,
    },
    Io(String),
    /// The store is shut down.
    Closed,
}

impl StoreError {
    /// True when retrying later may succeed (SMTP 4xx, e.g. 452 4.3.1 for
    /// disk full; IMAP `NO`).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            StoreError::DiskFull
                | StoreError::QuotaExceeded
                | StoreError::Busy
                | StoreError::Io(_)
                | StoreError::Closed
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::DiskFull => write!(f, "mail store: disk full"),
            StoreError::QuotaExceeded => write!(f, "mail store: quota exceeded"),
            StoreError::Busy => write!(f, "mail store: database busy, try again"),
            StoreError::NotFound(what) => write!(f, "not found: {what}"),
            StoreError::AlreadyExists(what) => write!(f, "already exists: {what}"),
            StoreError::Invalid(why) => write!(f, "invalid: {why}"),
            StoreError::Limit(why) => write!(f, "limit reached: {why}"),
            StoreError::NewerSchema { found, supported } => write!(
                f,
                "the data directory has schema version {found}, newer than the {supported} this \
                 mailroom supports: upgrade mailroom (refusing to touch it)"
            ),
            StoreError::Io(why) => write!(f, "mail store I/O error: {why}"),
            StoreError::Closed => write!(f, "mail store is shut down"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What sessions, delivery and the CLI need from a message store.
///
/// Every write is durable (fsynced) before its future resolves Ok, and is
/// atomic: on error nothing of it was written.
pub trait Store: Send + Sync + 'static {
    /// Stores one message for its local accounts and queues its remote
    /// recipients, all in one transaction.
    fn deliver(&self, delivery: Delivery) -> StoreFuture<'_, Delivered>;
    /// Creates the account and its [`SPECIAL_MAILBOXES`]; idempotent.
    fn ensure_account(&self, account: String) -> StoreFuture<'_, ()>;
    /// Removes the account, its mailboxes and entries; unreferenced bodies
    /// are freed. Queue rows (mail already sent by it) stay.
    fn delete_account(&self, account: String) -> StoreFuture<'_, ()>;
    /// The account's mailboxes, INBOX first then by name.
    fn mailboxes(&self, account: String) -> StoreFuture<'_, Vec<MailboxInfo>>;
    /// How many mailboxes the account has (for `imap.max_mailboxes`),
    /// without reading them all.
    fn mailbox_count(&self, account: String) -> StoreFuture<'_, u64> {
        Box::pin(async move { Ok(self.mailboxes(account).await?.len() as u64) })
    }
    /// One mailbox by name: "INBOX" case-insensitive, others exact.
    fn mailbox(&self, account: String, name: String) -> StoreFuture<'_, Option<MailboxInfo>>;
    /// [`Store::mailbox`] with `messages` and `unseen` left 0, for a
    /// caller that counts them itself: SELECT does from the mailbox index
    /// ([`Store::mailbox_index`]), and counting costs a scan of the
    /// entries (the unseen count a text match per entry). The default asks
    /// [`Store::mailbox`] and zeroes them.
    fn mailbox_uncounted(
        &self,
        account: String,
        name: String,
    ) -> StoreFuture<'_, Option<MailboxInfo>> {
        Box::pin(async move {
            Ok(self.mailbox(account, name).await?.map(|m| MailboxInfo {
                messages: 0,
                unseen: 0,
                ..m
            }))
        })
    }
    fn create_mailbox(
        &self,
        account: String,
        name: String,
        special_use: Option<String>,
    ) -> StoreFuture<'_, MailboxInfo>;
    /// INBOX cannot be deleted (Invalid).
    fn delete_mailbox(&self, account: String, name: String) -> StoreFuture<'_, ()>;
    /// Renames a mailbox and its inferiors ("from/..."). Renaming INBOX
    /// moves its messages to the new name and leaves INBOX empty
    /// (RFC 9051 6.3.6).
    fn rename_mailbox(&self, account: String, from: String, to: String) -> StoreFuture<'_, ()>;
    /// Subscribes or unsubscribes a name (RFC 9051 6.3.7, 6.3.8), whether
    /// or not a mailbox of that name exists; idempotent.
    fn set_subscribed(
        &self,
        account: String,
        name: String,
        subscribed: bool,
    ) -> StoreFuture<'_, ()>;
    /// The account's subscribed names, sorted; some may name no mailbox
    /// (subscribed before CREATE or kept after DELETE). The default lists
    /// the subscribed mailboxes that exist, for a backend without a table
    /// of its own.
    fn subscriptions(&self, account: String) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let mut names: Vec<String> = self
                .mailboxes(account)
                .await?
                .into_iter()
                .filter(|m| m.subscribed)
                .map(|m| m.name)
                .collect();
            names.sort();
            Ok(names)
        })
    }
    /// The mailbox's entries, ascending UID.
    fn messages(&self, mailbox: MailboxId) -> StoreFuture<'_, Vec<MessageMeta>>;
    fn read_body(&self, body: BodyId) -> StoreFuture<'_, Vec<u8>>;
    /// Several bodies in one read, `None` for one that is gone: FETCH over
    /// many messages makes one trip to the store instead of one each. The
    /// default reads them one by one; backends override it.
    fn read_bodies(&self, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(bodies.len());
            for body in bodies {
                match self.read_body(body).await {
                    Ok(raw) => out.push(Some(raw)),
                    Err(StoreError::NotFound(_)) => out.push(None),
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }
    /// `len` octets of a body from `offset` (fewer at its end, none past
    /// it): RETR, FETCH BODY[] and the outbound client read a big message
    /// this way, [`BODY_CHUNK`] at a time, never whole (issue 19). The
    /// default reads the whole body; backends override it.
    fn read_body_range(&self, body: BodyId, offset: u64, len: usize) -> StoreFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let raw = self.read_body(body).await?;
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(raw.len());
            let end = start.saturating_add(len).min(raw.len());
            Ok(raw.get(start..end).unwrap_or_default().to_vec())
        })
    }
    /// [`Store::read_body_range`] into `buf` (cleared first), which comes
    /// back with the octets: a reader streaming a big body reuses one
    /// buffer, allocated where it runs, instead of a new one per chunk on
    /// the store's threads (whose allocator arenas keep what is freed).
    fn read_body_range_into(
        &self,
        body: BodyId,
        offset: u64,
        len: usize,
        buf: Vec<u8>,
    ) -> StoreFuture<'_, Vec<u8>> {
        drop(buf);
        self.read_body_range(body, offset, len)
    }
    /// [`Store::append_within`] of `head` followed by `tail`, the rest of
    /// the message still in its spool file (issue 19): the backend copies
    /// the tail in chunks. The default reads the tail into memory.
    fn append_spooled(
        &self,
        mailbox: MailboxId,
        head: Vec<u8>,
        tail: Spooled,
        flags: Vec<String>,
        internal_date: i64,
        quota: Quota,
    ) -> StoreFuture<'_, Uid> {
        Box::pin(async move {
            let mut raw = head;
            raw.extend_from_slice(&tail.to_vec()?);
            self.append_within(mailbox, raw, flags, internal_date, quota)
                .await
        })
    }
    /// [`Store::deliver_all`] where the FIRST delivery's copies end in a
    /// spool file (issue 19): its local copy is `local_raw` then `tail`,
    /// its relayed copy `raw` then `tail`; the other deliveries (DSNs) are
    /// whole. The backend copies the tail in chunks; the default reads it
    /// into memory.
    fn deliver_all_spooled(
        &self,
        mut deliveries: Vec<Delivery>,
        tail: Spooled,
    ) -> StoreFuture<'_, Vec<Delivered>> {
        Box::pin(async move {
            let rest = tail.to_vec()?;
            if let Some(first) = deliveries.first_mut() {
                if let Some(raw) = first.local_raw.as_mut() {
                    raw.extend_from_slice(&rest);
                }
                if let Some(out) = first.outbound.as_mut() {
                    out.raw.extend_from_slice(&rest);
                }
            }
            self.deliver_all(deliveries).await
        })
    }
    /// [`Store::deliver_all_spooled`] where the FIRST delivery's local copy
    /// has a tail of its own (issue 19): it is `local_raw` then
    /// `local_tail` (`local_raw` alone when None), its relayed copy `raw`
    /// then `tail`. A message with binary parts is stored locally with
    /// them in base64 (RFC 3516 4.3) and relayed as received. The default
    /// reads both tails into memory.
    fn deliver_all_spooled_apart(
        &self,
        mut deliveries: Vec<Delivery>,
        local_tail: Option<Spooled>,
        tail: Spooled,
    ) -> StoreFuture<'_, Vec<Delivered>> {
        Box::pin(async move {
            if let Some(first) = deliveries.first_mut() {
                if let (Some(raw), Some(local)) = (first.local_raw.as_mut(), &local_tail) {
                    raw.extend_from_slice(&local.to_vec()?);
                }
                if let Some(out) = first.outbound.as_mut() {
                    out.raw.extend_from_slice(&tail.to_vec()?);
                }
            }
            self.deliver_all(deliveries).await
        })
    }
    /// The cached FETCH structure of each body, in order: octets that
    /// [`Store::set_body_meta`] stored, opaque to the store (IMAP keeps its
    /// ENVELOPE and BODYSTRUCTURE there, RFC 9051 7.5.2), `None` where
    /// nothing is cached or the body is gone. The default (for test
    /// doubles) caches nothing.
    fn body_meta(&self, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        Box::pin(async move { Ok(vec![None; bodies.len()]) })
    }
    /// Caches each `(body, data)`, replacing what was there, in one
    /// transaction (a FETCH batch's worth); a body that is gone is skipped.
    /// An entry goes with its body. It is a cache: losing it costs a
    /// re-parse, so callers need not wait for it. The default (for test
    /// doubles) keeps nothing.
    fn set_body_meta(&self, entries: Vec<(BodyId, Vec<u8>)>) -> StoreFuture<'_, ()> {
        let _ = entries;
        Box::pin(async { Ok(()) })
    }
    /// IMAP APPEND: durable before Ok, group-committed.
    fn append(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date: i64,
    ) -> StoreFuture<'_, Uid>;
    /// MULTIAPPEND (RFC 3502 6): every message in ONE transaction, all
    /// stored or none (one refused in the middle undoes those before it);
    /// durable before Ok. The whole set must fit `quota` (checked in the
    /// transaction, as [`Store::append_within`]). The UIDs, ascending, in
    /// the order given.
    fn append_many(
        &self,
        mailbox: MailboxId,
        messages: Vec<NewMessage>,
        quota: Quota,
    ) -> StoreFuture<'_, Vec<Uid>>;
    /// SAVEDATE (RFC 8514): when each entry with `first <= uid <= last`
    /// was saved into its mailbox (APPEND, delivery, COPY, MOVE), Unix
    /// seconds, ascending UID; `None` for entries saved before the store
    /// kept it. The default knows no save dates (every one `None`);
    /// backends override it.
    fn save_dates(
        &self,
        mailbox: MailboxId,
        first: Uid,
        last: Uid,
    ) -> StoreFuture<'_, Vec<(Uid, Option<i64>)>> {
        Box::pin(async move {
            let metas = self.messages_range(mailbox, first, last).await?;
            Ok(metas.into_iter().map(|m| (m.uid, None)).collect())
        })
    }
    /// `mailroom import`: APPEND unless a message with `digest` (its
    /// SHA-256) was imported into `mailbox` before, atomically with the
    /// record of it; None when it had been.
    fn import(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date: i64,
        digest: [u8; 32],
    ) -> StoreFuture<'_, Option<Uid>>;
    /// [`Store::import`] of `head` followed by `tail`, the rest of the
    /// message in its spool file (issue 19: `mailroom import` of a big
    /// message): `digest` is of the whole message, and the backend copies
    /// the tail in chunks as [`Store::append_spooled`] does. The default
    /// reads the tail into memory; backends override it.
    fn import_spooled(
        &self,
        mailbox: MailboxId,
        head: Vec<u8>,
        tail: Spooled,
        flags: Vec<String>,
        internal_date: i64,
        digest: [u8; 32],
    ) -> StoreFuture<'_, Option<Uid>> {
        Box::pin(async move {
            let mut raw = head;
            raw.extend_from_slice(&tail.to_vec()?);
            self.import(mailbox, raw, flags, internal_date, digest)
                .await
        })
    }
    /// Returns the entries whose flags actually changed.
    fn set_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Vec<String>,
    ) -> StoreFuture<'_, Vec<MessageMeta>>;
    /// STORE with UNCHANGEDSINCE (RFC 7162 3.1.3) as ONE transaction:
    /// entries whose mod-sequence is above `unchanged_since` are left as
    /// they are and listed in `modified`; the others are set as
    /// [`Store::set_flags`] sets them. A check before the write would let
    /// another session's change slip in between.
    fn set_flags_unchanged_since(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Vec<String>,
        unchanged_since: u64,
    ) -> StoreFuture<'_, ConditionalFlags>;
    /// APPEND within `quota`: [`StoreError::QuotaExceeded`] and nothing
    /// written when the account's usage plus this message would pass it.
    fn append_within(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date: i64,
        quota: Quota,
    ) -> StoreFuture<'_, Uid>;
    /// COPY within the target account's `quota`, as [`Store::append_within`].
    fn copy_within(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
        quota: Quota,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>>;
    /// Returns the UIDs actually removed (already-gone ones are skipped).
    fn expunge(&self, mailbox: MailboxId, uids: Vec<Uid>) -> StoreFuture<'_, Vec<Uid>>;
    /// Copies entries (sharing bodies); returns (source UID, new UID) pairs
    /// for the entries that existed, ascending.
    fn copy(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>>;
    /// MOVE (RFC 6851): copies the entries (sharing bodies) and expunges
    /// the sources, with their tombstones and change rows, in ONE
    /// transaction, so a crash leaves each message in exactly one of the
    /// two mailboxes. Returns (source UID, new UID) pairs for the entries
    /// that existed, ascending.
    fn move_messages(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>>;
    /// The entries with `first <= uid <= last`, ascending UID: what a
    /// session re-reads instead of keeping every entry's metadata.
    fn messages_range(
        &self,
        mailbox: MailboxId,
        first: Uid,
        last: Uid,
    ) -> StoreFuture<'_, Vec<MessageMeta>>;
    /// What changed in the mailbox after mod-sequence `since`, in one
    /// snapshot: what a selected session reads when the change feed wakes
    /// it, costing the size of the change rather than of the mailbox.
    /// `since == 0` lists every entry (and no tombstones). NotFound when
    /// the mailbox is gone.
    fn changes_since(&self, mailbox: MailboxId, since: u64) -> StoreFuture<'_, MailboxChanges>;
    /// Every entry's UID and flags, ascending UID, and the HIGHESTMODSEQ,
    /// from one snapshot: what SELECT opens a mailbox from (see
    /// [`MailboxIndex`]), reading nothing else of an entry. NotFound when
    /// the mailbox is gone. The default (for test doubles) takes them from
    /// [`Store::changes_since`]; backends override it with one narrow
    /// query.
    fn mailbox_index(&self, mailbox: MailboxId) -> StoreFuture<'_, MailboxIndex> {
        Box::pin(async move {
            let all = self.changes_since(mailbox, 0).await?;
            let mut b = IndexBuilder::new(all.highestmodseq, all.changed.len());
            for m in &all.changed {
                b.push_flags(m.uid, &m.flags);
            }
            Ok(b.finish())
        })
    }
    /// METADATA (RFC 5464): the entries (lower-case name, value) of
    /// `account`'s server (`mailbox` None) or of one of its mailboxes, by
    /// name. NotFound for a mailbox that is gone or not the account's.
    /// Both backends implement it; the default is for test doubles that
    /// wrap one.
    fn metadata(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
    ) -> StoreFuture<'_, Vec<(String, Vec<u8>)>> {
        let _ = (account, mailbox);
        Box::pin(async { Err(StoreError::Invalid("no METADATA in this store".into())) })
    }
    /// Sets (`Some`) or removes (`None`) METADATA entries in one
    /// transaction. `Limit`, and nothing written, when more than
    /// `max_entries` would be left on that server or mailbox (RFC 5464
    /// 4.3: `[METADATA TOOMANY]`). Entries go with their mailbox (DELETE)
    /// or account, and follow the mailbox through RENAME.
    fn set_metadata(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
        entries: Vec<(String, Option<Vec<u8>>)>,
        max_entries: usize,
    ) -> StoreFuture<'_, ()> {
        let _ = (account, mailbox, entries, max_entries);
        Box::pin(async { Err(StoreError::Invalid("no METADATA in this store".into())) })
    }
    /// THREADID (RFC 8474 5.2): the thread of each body in `account`, in
    /// order, as the body id of its thread's first message (see
    /// [`threads`]). Stable: COPY and MOVE keep the body, RENAME the
    /// entries. The default (for test doubles) makes each body a thread.
    fn thread_ids(&self, account: String, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<u64>> {
        let _ = account;
        Box::pin(async move { Ok(bodies.iter().map(|b| b.0.max(0) as u64).collect()) })
    }
    /// URLAUTH (RFC 4467 7): the access key of one of `account`'s
    /// mailboxes, None when it has none (never made, or reset). The
    /// defaults (for test doubles) keep no keys.
    fn urlauth_key(&self, account: String, mailbox: MailboxId) -> StoreFuture<'_, Option<Vec<u8>>> {
        let _ = (account, mailbox);
        Box::pin(async { Ok(None) })
    }
    /// The mailbox's access key, `fresh` becoming it when it has none;
    /// NotFound for a mailbox that is not the account's.
    fn ensure_urlauth_key(
        &self,
        account: String,
        mailbox: MailboxId,
        fresh: Vec<u8>,
    ) -> StoreFuture<'_, Vec<u8>> {
        let _ = (account, mailbox, fresh);
        Box::pin(async { Err(StoreError::Invalid("no URLAUTH keys in this store".into())) })
    }
    /// RESETKEY: forgets one mailbox's key, or every key of the account.
    fn reset_urlauth_keys(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
    ) -> StoreFuture<'_, ()> {
        let _ = (account, mailbox);
        Box::pin(async { Ok(()) })
    }
    /// What `account` holds over all its mailboxes (quota, RFC 9208).
    fn usage(&self, account: String) -> StoreFuture<'_, Usage>;
    /// Deletes the tombstones made before `older_than` (Unix seconds),
    /// recording per mailbox the highest mod-sequence trimmed, so that
    /// [`Store::changes_since`] from below it says `trimmed`. Returns
    /// how many were deleted.
    fn trim_tombstones(&self, older_than: i64) -> StoreFuture<'_, u64>;
    /// The outbound queue, oldest first.
    fn queue(&self) -> StoreFuture<'_, Vec<QueueEntry>>;
    /// Claims up to `limit` queue rows due at `now` for this process until
    /// `lease_until` (unix seconds): no other process sends them meanwhile,
    /// and an unfinished claim is due again once its lease ends.
    fn claim_queue(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<QueueEntry>>;
    /// Extends this process's claim on the rows `ids` still being sent to
    /// `lease_until` (seen from `now`, as in [`Store::claim_queue`]), while
    /// a delivery run is still at work on them; returns how many it
    /// renewed. A row already settled, or claimed by another node since,
    /// is left alone.
    fn renew_queue_claims(
        &self,
        ids: Vec<i64>,
        now: i64,
        lease_until: i64,
    ) -> StoreFuture<'_, usize>;
    /// Delivered: removes the row.
    fn complete_queue(&self, id: i64) -> StoreFuture<'_, ()>;
    /// A temporary failure: due again at `next_attempt`.
    fn defer_queue(&self, id: i64, next_attempt: i64, error: String) -> StoreFuture<'_, ()>;
    /// A permanent failure: kept, marked failed. (The outbound worker
    /// settles failures with [`Store::settle_queue`] instead: the row goes
    /// and its DSN comes in one transaction.)
    fn fail_queue(&self, id: i64, error: String) -> StoreFuture<'_, ()>;
    /// Removes the rows of `settle.remove`, marks those of
    /// `settle.warned` and delivers `settle.dsns`, all in one transaction.
    fn settle_queue(&self, settle: Settle) -> StoreFuture<'_, Vec<Delivered>>;
    /// Several deliveries in one transaction (a message and the DSN it
    /// causes at once, RFC 3461 NOTIFY=SUCCESS on local delivery).
    fn deliver_all(&self, deliveries: Vec<Delivery>) -> StoreFuture<'_, Vec<Delivered>> {
        self.settle_queue(Settle {
            dsns: deliveries,
            ..Settle::default()
        })
    }
    /// Makes one row (or every row) due now; returns how many.
    fn retry_queue(&self, id: Option<i64>) -> StoreFuture<'_, usize>;
    /// Removes one row.
    fn delete_queue(&self, id: i64) -> StoreFuture<'_, ()>;
    /// The queue's row count and its oldest row's creation (unix seconds).
    fn queue_stats(&self) -> StoreFuture<'_, (u64, Option<i64>)>;
    /// Makes the rows claimed by a sender that stopped due now (at the
    /// start of the one sender of an embedded store); returns how many.
    fn release_queue_claims(&self) -> StoreFuture<'_, usize>;
    /// The change feed: every committed change, from this process or another.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change>;
    fn stats(&self) -> StoreStats;
    /// For `/health`: `(problem, check)`, the problem (None when the
    /// store can take writes) and one line for the body, e.g. whether the
    /// SQLite writer thread runs.
    fn health(&self) -> (Option<String>, String) {
        (None, "store: ok".to_string())
    }
}

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_changes;
#[cfg(test)]
mod tests_dsn;
#[cfg(test)]
mod tests_move;
#[cfg(test)]
mod tests_queue;
#[cfg(test)]
mod tests_subscriptions;
