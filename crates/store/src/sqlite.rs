//! [`SqliteStore`]: the embedded backend. Opens (and migrates) the
//! database, starts the writer and watcher threads, and implements
//! [`Store`] by sending writes to the writer and running reads on tokio's
//! blocking pool.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{Semaphore, broadcast};

use crate::feed::{self, Feed};
use crate::read::{self, READ_CONNECTIONS, ReadPool};
use crate::schema::{self, map_err, open_connection};
use crate::writer::{FnJob, Job, Stats, Writer};
use crate::{
    BodyId, Change, ConditionalFlags, Delivered, Delivery, FlagOp, MailboxChanges, MailboxId,
    MailboxInfo, MessageMeta, QueueEntry, Quota, Settle, Spooled, Store, StoreError, StoreFuture,
    StoreOptions, StoreStats, Uid, ops,
};

/// The SQLite store of one data directory. Several may be open on the same
/// directory, in this process or others (the CLI): SQLite's locks
/// serialise their writers and each one's feed sees the others' changes.
pub struct SqliteStore {
    data_dir: PathBuf,
    /// The writer's queue. Unbounded: each caller awaits its answer, so
    /// the queue holds at most one job per waiting session.
    jobs: Mutex<Option<Sender<Box<dyn Job>>>>,
    /// Dropping this stops the watcher.
    stop_watcher: Mutex<Option<Sender<()>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    reads: Arc<ReadPool>,
    /// One permit per read connection: reads wait here, asynchronously,
    /// rather than on a connection's mutex in a blocking thread.
    read_permits: Arc<Semaphore>,
    feed: Arc<Feed>,
    stats: Arc<Stats>,
}

impl SqliteStore {
    /// Creates the directory if needed, migrates, and starts the writer and
    /// watcher threads. Works without a tokio runtime (plain threads); the
    /// async methods need one when awaited.
    ///
    /// After a crash nothing needs doing by hand: SQLite replays or discards
    /// the WAL on the first connection, and the store keeps no temporary
    /// files of its own (`temp_store=MEMORY`).
    pub fn open(data_dir: &Path, opts: StoreOptions) -> Result<Arc<SqliteStore>, StoreError> {
        create_dir_durably(data_dir)?;
        let mut conn = open_connection(data_dir)?;
        let found = schema::migrate(&mut conn)?;
        // store.db and store.db-wal may have just been created: make their
        // directory entries durable too.
        sync_dir(data_dir)?;
        if found < schema::SCHEMA_VERSION {
            tracing::info!(
                dir = %data_dir.display(),
                from = found,
                to = schema::SCHEMA_VERSION,
                "mail store schema ready"
            );
        }
        if let Err(e) = feed::trim(&conn, ops::now()) {
            tracing::warn!(error = %e, "trimming change log at open failed");
        }
        let feed = Arc::new(Feed::new(feed::max_seq(&conn)?));
        let reads = Arc::new(ReadPool::open(data_dir, READ_CONNECTIONS)?);
        let watch_conn = open_connection(data_dir)?;
        watch_conn
            .pragma_update(None, "query_only", "ON")
            .map_err(map_err)?;
        let stats = Arc::new(Stats::default());

        let (job_tx, job_rx) = mpsc::channel::<Box<dyn Job>>();
        let writer = Writer {
            conn,
            feed: Arc::clone(&feed),
            stats: Arc::clone(&stats),
            group_commit_max: opts.group_commit_max,
        };
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(job_rx))
            .map_err(|e| StoreError::Io(format!("cannot start the store writer: {e}")))?;

        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let watch_feed = Arc::clone(&feed);
        let interval = opts.feed_poll_interval;
        let watcher_thread = std::thread::Builder::new()
            .name("store-watcher".into())
            .spawn(move || feed::watch(watch_conn, &watch_feed, interval, stop_rx));
        let watcher_thread = match watcher_thread {
            Ok(t) => t,
            Err(e) => {
                drop(job_tx);
                let _ = writer_thread.join();
                return Err(StoreError::Io(format!(
                    "cannot start the store watcher: {e}"
                )));
            }
        };

        Ok(Arc::new(SqliteStore {
            data_dir: data_dir.to_path_buf(),
            jobs: Mutex::new(Some(job_tx)),
            stop_watcher: Mutex::new(Some(stop_tx)),
            threads: Mutex::new(vec![writer_thread, watcher_thread]),
            reads,
            read_permits: Arc::new(Semaphore::new(READ_CONNECTIONS)),
            feed,
            stats,
        }))
    }

    /// The data directory this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// True while the writer thread runs and takes jobs: false after
    /// [`SqliteStore::shutdown`] or if the thread died (every write would
    /// fail), for `/health`.
    pub fn writer_alive(&self) -> bool {
        lock(&self.jobs).is_some()
            && lock(&self.threads)
                .first()
                .is_some_and(|writer| !writer.is_finished())
    }

    /// Stops accepting writes, lets the writer finish (commit and answer)
    /// every job already queued, stops the watcher and joins both threads.
    /// Later calls return [`StoreError::Closed`]. Idempotent; also run on
    /// drop.
    pub fn shutdown(&self) {
        drop(lock(&self.jobs).take());
        drop(lock(&self.stop_watcher).take());
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            if t.join().is_err() {
                tracing::error!("a store thread panicked");
            }
        }
    }

    /// Sends a write job to the writer thread; resolves after its commit.
    pub(crate) fn write<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = FnJob::new(f);
        self.send_job(job, rx)
    }

    /// Queues a job for the writer; resolves with its answer.
    fn send_job<T: Send + 'static>(
        &self,
        job: Box<dyn crate::writer::Job>,
        rx: tokio::sync::oneshot::Receiver<Result<T, StoreError>>,
    ) -> StoreFuture<'_, T> {
        let sent = match lock(&self.jobs).as_ref() {
            Some(tx) => tx.send(job).map_err(|_| StoreError::Closed),
            None => Err(StoreError::Closed),
        };
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// Runs a read on the blocking pool with a pooled connection, never
    /// on the async workers: a long read (a LIST of 100 000 mailboxes)
    /// delays only reads queued behind it, not other sessions' work.
    fn read<T, F>(&self, f: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(&self.reads);
        let permits = Arc::clone(&self.read_permits);
        Box::pin(async move {
            // Held until the blocking task ends, so a free connection
            // waits for every admitted read.
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|_| StoreError::Closed)?;
            tokio::task::spawn_blocking(move || {
                let r = pool.with(f);
                drop(permit);
                r
            })
            .await
            .map_err(|e| StoreError::Io(format!("read task failed: {e}")))?
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

/// fsync a directory so that the entries created in it survive power loss.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot fsync directory", dir, e))
}

/// Creates the data directory (and parents) and fsyncs it and its parent,
/// so the directory itself survives a power loss.
fn create_dir_durably(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
    sync_dir(dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn deliver(&self, delivery: Delivery) -> StoreFuture<'_, Delivered> {
        let all = self.deliver_all(vec![delivery]);
        Box::pin(async move {
            all.await?
                .pop()
                .ok_or_else(|| StoreError::Invalid("delivery without a result".into()))
        })
    }

    fn deliver_all(&self, deliveries: Vec<Delivery>) -> StoreFuture<'_, Vec<Delivered>> {
        let (job, rx) = crate::writer::DeliverJob::new(deliveries);
        self.send_job(job, rx)
    }

    fn ensure_account(&self, account: String) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::ensure_account(c, &account))
    }

    fn delete_account(&self, account: String) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::delete_account(c, &account))
    }

    fn mailboxes(&self, account: String) -> StoreFuture<'_, Vec<MailboxInfo>> {
        self.read(move |c| read::mailboxes(c, &account))
    }

    fn subscriptions(&self, account: String) -> StoreFuture<'_, Vec<String>> {
        self.read(move |c| read::subscriptions(c, &account))
    }

    fn mailbox_count(&self, account: String) -> StoreFuture<'_, u64> {
        self.read(move |c| read::mailbox_count(c, &account))
    }

    fn mailbox(&self, account: String, name: String) -> StoreFuture<'_, Option<MailboxInfo>> {
        self.read(move |c| read::mailbox(c, &account, &name))
    }

    fn mailbox_uncounted(
        &self,
        account: String,
        name: String,
    ) -> StoreFuture<'_, Option<MailboxInfo>> {
        self.read(move |c| read::mailbox_uncounted(c, &account, &name))
    }

    fn create_mailbox(
        &self,
        account: String,
        name: String,
        special_use: Option<String>,
    ) -> StoreFuture<'_, MailboxInfo> {
        self.write(move |c| ops::create_mailbox(c, &account, &name, special_use.as_deref()))
    }

    fn delete_mailbox(&self, account: String, name: String) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::delete_mailbox(c, &account, &name))
    }

    fn rename_mailbox(&self, account: String, from: String, to: String) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::rename_mailbox(c, &account, &from, &to))
    }

    fn set_subscribed(
        &self,
        account: String,
        name: String,
        subscribed: bool,
    ) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::set_subscribed(c, &account, &name, subscribed))
    }

    fn metadata(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
    ) -> StoreFuture<'_, Vec<(String, Vec<u8>)>> {
        self.read(move |c| ops::metadata::metadata(c, &account, mailbox))
    }

    fn set_metadata(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
        entries: Vec<(String, Option<Vec<u8>>)>,
        max_entries: usize,
    ) -> StoreFuture<'_, ()> {
        self.write(move |c| {
            ops::metadata::set_metadata(c, &account, mailbox, &entries, max_entries)
        })
    }

    fn urlauth_key(&self, account: String, mailbox: MailboxId) -> StoreFuture<'_, Option<Vec<u8>>> {
        self.read(move |c| ops::urlauth::key(c, &account, mailbox))
    }

    fn ensure_urlauth_key(
        &self,
        account: String,
        mailbox: MailboxId,
        fresh: Vec<u8>,
    ) -> StoreFuture<'_, Vec<u8>> {
        self.write(move |c| ops::urlauth::ensure_key(c, &account, mailbox, &fresh))
    }

    fn reset_urlauth_keys(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
    ) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::urlauth::reset_keys(c, &account, mailbox))
    }

    fn body_meta(&self, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        self.read(move |c| ops::body_meta::body_meta(c, &bodies))
    }

    fn set_body_meta(&self, entries: Vec<(BodyId, Vec<u8>)>) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::body_meta::set_body_meta(c, &entries))
    }

    fn thread_ids(&self, account: String, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<u64>> {
        self.read(move |c| ops::threads::thread_ids(c, &account, &bodies))
    }

    fn messages(&self, mailbox: MailboxId) -> StoreFuture<'_, Vec<MessageMeta>> {
        self.read(move |c| read::messages(c, mailbox))
    }

    fn read_body(&self, body: BodyId) -> StoreFuture<'_, Vec<u8>> {
        self.read(move |c| read::read_body(c, body))
    }

    fn read_bodies(&self, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        self.read(move |c| {
            bodies
                .into_iter()
                .map(|b| match read::read_body(c, b) {
                    Ok(raw) => Ok(Some(raw)),
                    Err(StoreError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                })
                .collect()
        })
    }

    fn append(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date: i64,
    ) -> StoreFuture<'_, Uid> {
        self.write(move |c| ops::append(c, mailbox, &raw, flags, internal_date))
    }

    fn append_many(
        &self,
        mailbox: MailboxId,
        messages: Vec<crate::NewMessage>,
        quota: Quota,
    ) -> StoreFuture<'_, Vec<Uid>> {
        // One job: its savepoint undoes every append of it on an error.
        self.write(move |c| ops::append_many_within(c, mailbox, messages, quota))
    }

    fn save_dates(
        &self,
        mailbox: MailboxId,
        first: Uid,
        last: Uid,
    ) -> StoreFuture<'_, Vec<(Uid, Option<i64>)>> {
        self.read(move |c| read::save_dates(c, mailbox, first, last))
    }

    fn read_body_range(&self, body: BodyId, offset: u64, len: usize) -> StoreFuture<'_, Vec<u8>> {
        self.read_body_range_into(body, offset, len, Vec::new())
    }

    fn read_body_range_into(
        &self,
        body: BodyId,
        offset: u64,
        len: usize,
        buf: Vec<u8>,
    ) -> StoreFuture<'_, Vec<u8>> {
        self.read(move |c| read::read_body_range(c, body, offset, len, buf))
    }

    fn append_spooled(
        &self,
        mailbox: MailboxId,
        head: Vec<u8>,
        tail: Spooled,
        flags: Vec<String>,
        internal_date: i64,
        quota: Quota,
    ) -> StoreFuture<'_, Uid> {
        self.write(move |c| {
            let parts = crate::BodyParts {
                head: &head,
                tail: Some(&tail),
            };
            ops::append_parts_within(c, mailbox, parts, flags, internal_date, quota)
        })
    }

    fn deliver_all_spooled(
        &self,
        deliveries: Vec<Delivery>,
        tail: Spooled,
    ) -> StoreFuture<'_, Vec<Delivered>> {
        let settle = Settle {
            dsns: deliveries,
            ..Settle::default()
        };
        self.write(move |c| ops::queue::settle_spooled(c, settle, crate::Tails::both(Some(&tail))))
    }

    fn deliver_all_spooled_apart(
        &self,
        deliveries: Vec<Delivery>,
        local_tail: Option<Spooled>,
        tail: Spooled,
    ) -> StoreFuture<'_, Vec<Delivered>> {
        let settle = Settle {
            dsns: deliveries,
            ..Settle::default()
        };
        self.write(move |c| {
            let tails = crate::Tails {
                local: local_tail.as_ref(),
                relayed: Some(&tail),
            };
            ops::queue::settle_spooled(c, settle, tails)
        })
    }

    fn import(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date: i64,
        digest: [u8; 32],
    ) -> StoreFuture<'_, Option<Uid>> {
        self.write(move |c| ops::import(c, mailbox, &raw, flags, internal_date, &digest))
    }

    fn import_spooled(
        &self,
        mailbox: MailboxId,
        head: Vec<u8>,
        tail: Spooled,
        flags: Vec<String>,
        internal_date: i64,
        digest: [u8; 32],
    ) -> StoreFuture<'_, Option<Uid>> {
        self.write(move |c| {
            let parts = crate::BodyParts {
                head: &head,
                tail: Some(&tail),
            };
            ops::import_parts(c, mailbox, parts, flags, internal_date, &digest)
        })
    }

    fn set_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Vec<String>,
    ) -> StoreFuture<'_, Vec<MessageMeta>> {
        self.write(move |c| ops::set_flags(c, mailbox, uids, op, flags))
    }

    fn set_flags_unchanged_since(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Vec<String>,
        unchanged_since: u64,
    ) -> StoreFuture<'_, ConditionalFlags> {
        self.write(move |c| ops::set_flags_if(c, mailbox, uids, op, flags, Some(unchanged_since)))
    }

    fn append_within(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date: i64,
        quota: Quota,
    ) -> StoreFuture<'_, Uid> {
        self.write(move |c| ops::append_within(c, mailbox, &raw, flags, internal_date, quota))
    }

    fn copy_within(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
        quota: Quota,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        self.write(move |c| ops::copy_within(c, from, uids, to, quota))
    }

    fn expunge(&self, mailbox: MailboxId, uids: Vec<Uid>) -> StoreFuture<'_, Vec<Uid>> {
        self.write(move |c| ops::expunge(c, mailbox, uids))
    }

    fn copy(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        self.write(move |c| ops::copy(c, from, uids, to))
    }

    fn move_messages(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        self.write(move |c| ops::move_messages(c, from, uids, to))
    }

    fn messages_range(
        &self,
        mailbox: MailboxId,
        first: Uid,
        last: Uid,
    ) -> StoreFuture<'_, Vec<MessageMeta>> {
        self.read(move |c| read::messages_range(c, mailbox, first, last))
    }

    fn changes_since(&self, mailbox: MailboxId, since: u64) -> StoreFuture<'_, MailboxChanges> {
        self.read(move |c| read::changes_since(c, mailbox, since))
    }

    fn mailbox_index(&self, mailbox: MailboxId) -> StoreFuture<'_, crate::MailboxIndex> {
        self.read(move |c| read::mailbox_index(c, mailbox))
    }

    fn usage(&self, account: String) -> StoreFuture<'_, crate::Usage> {
        self.read(move |c| read::usage(c, &account))
    }

    fn trim_tombstones(&self, older_than: i64) -> StoreFuture<'_, u64> {
        self.write(move |c| ops::trim_tombstones(c, older_than))
    }

    fn queue(&self) -> StoreFuture<'_, Vec<QueueEntry>> {
        self.read(read::queue)
    }

    fn claim_queue(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<QueueEntry>> {
        self.write(move |c| ops::queue::claim(c, now, lease_until, limit))
    }

    fn renew_queue_claims(
        &self,
        ids: Vec<i64>,
        _now: i64,
        lease_until: i64,
    ) -> StoreFuture<'_, usize> {
        self.write(move |c| ops::queue::renew(c, &ids, lease_until))
    }

    fn complete_queue(&self, id: i64) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::queue::complete(c, id))
    }

    fn defer_queue(&self, id: i64, next_attempt: i64, error: String) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::queue::defer(c, id, next_attempt, &error))
    }

    fn fail_queue(&self, id: i64, error: String) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::queue::fail(c, id, &error))
    }

    fn settle_queue(&self, settle: Settle) -> StoreFuture<'_, Vec<Delivered>> {
        self.write(move |c| ops::queue::settle(c, settle))
    }

    fn retry_queue(&self, id: Option<i64>) -> StoreFuture<'_, usize> {
        self.write(move |c| ops::queue::retry(c, id))
    }

    fn delete_queue(&self, id: i64) -> StoreFuture<'_, ()> {
        self.write(move |c| ops::queue::delete(c, id))
    }

    fn queue_stats(&self) -> StoreFuture<'_, (u64, Option<i64>)> {
        self.read(read::queue_stats)
    }

    fn release_queue_claims(&self) -> StoreFuture<'_, usize> {
        self.write(ops::queue::release_claims)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    fn health(&self) -> (Option<String>, String) {
        if self.writer_alive() {
            (None, "store writer: running".to_string())
        } else {
            (
                Some("store writer stopped".to_string()),
                "store writer: stopped".to_string(),
            )
        }
    }

    fn stats(&self) -> StoreStats {
        self.stats.snapshot()
    }
}
