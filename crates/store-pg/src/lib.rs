//! The message store on PostgreSQL (issue 21, SPEC 6: several mailroom
//! nodes on one database): the [`store::Store`] trait with the embedded
//! store's semantics, checked by the same conformance suite.
//!
//! - Writes run in one transaction each, on a pooled connection
//!   (deadpool-postgres), committed with `synchronous_commit = on` before
//!   the future resolves: an acknowledgement follows a durable commit.
//!   PostgreSQL's own group commit lets concurrent deliveries share WAL
//!   flushes.
//! - The change feed: each write records its change rows under its
//!   account's commit-ordered `change_seq` (see `schema.rs`) and sends
//!   one NOTIFY naming the accounts; one dedicated connection per handle
//!   (never from the pool) LISTENs, and on a notification, at start and
//!   after every reconnect reads the rows after the last published
//!   `change_seq` of each account. The notification is a wake-up only: the
//!   table is the truth, so a lost notification costs latency, never a
//!   change.
//! - Errors: a connection or pool failure, a statement timeout or a
//!   deadlock is temporary ([`StoreError::Busy`] / [`StoreError::Io`]), so
//!   sessions answer 451 4.3.0, `NO [UNAVAILABLE]`, `-ERR [SYS/TEMP]`.
//!
//! Module map: `schema` (migrations), `ops` (the writes), `read` (the
//! reads), `feed` (publishing and the listener), `directory` (the
//! [`directory::Directory`] trait on the same database: [`PgDirectory`]),
//! `cluster` (a private PostgreSQL for tests).

#![forbid(unsafe_code)]

mod batch;
mod body_meta;
#[cfg(any(test, feature = "test-cluster"))]
pub mod cluster;
mod copy;
mod directory;
mod feed;
mod many;
mod metadata;
mod ops;
mod read;
mod schema;
mod shared;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_batch;
mod threads;
mod tls;
mod urlauth;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;

use store::{
    BATCH_BUCKETS, BodyId, Change, ConditionalFlags, Delivered, Delivery, FlagOp, MailboxChanges,
    MailboxId, MailboxInfo, MessageMeta, QueueEntry, Quota, Settle, Spooled, Store, StoreError,
    StoreFuture, StoreStats, Uid, batch_bucket,
};

pub use copy::{
    Copied, CopySource, MIGRATE_BATCH, MIGRATE_BATCH_BYTES, Progress as CopyProgress,
    copy_from_sqlite,
};
pub use directory::{
    DIRECTORY_MIGRATIONS, DIRECTORY_POOL_SIZE, DIRECTORY_SCHEMA_VERSION, PgDirectory,
};
pub use schema::{MIGRATIONS, SCHEMA_VERSION};
pub use shared::{SharedState, TerminalRow};

/// Largest piece of a body in one `body_chunks` row: a big message is
/// written and read as many modest values, never one huge one (a bytea
/// may hold 1 GB, but building one costs that much memory at once).
pub const BODY_CHUNK: usize = 256 * 1024;

/// Default `store.pool_size`: connections in the pool of one node.
pub const POOL_SIZE: usize = 16;

/// Default `store.statement_timeout`: seconds a statement may run before
/// PostgreSQL cancels it (the write fails temporary, nothing committed);
/// well under an SMTP client's 10-minute DATA timeout (RFC 5321
/// 4.5.3.2.6).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write waits for a free pooled connection before failing
/// temporary ("pool exhausted").
pub const POOL_WAIT: Duration = Duration::from_secs(10);

/// How long opening one connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a write that deadlocked is tried again: PostgreSQL aborts
/// one side of a deadlock (SQLSTATE 40P01), whose work is then redone.
pub(crate) const DEADLOCK_RETRIES: usize = 3;

/// Tunables of [`PgStore`] (`[store]` of the config).
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/dbname`.
    pub url: String,
    pub pool_size: usize,
    pub statement_timeout: Duration,
    /// This node's name in the queue's claims (`store.node_id`).
    pub node_id: String,
    /// Most deliveries one transaction (one WAL flush) carries
    /// (`store.group_commit_max`, as on SQLite; batch.rs).
    pub group_commit_max: usize,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgOptions")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("node_id", &self.node_id)
            .field("group_commit_max", &self.group_commit_max)
            .finish_non_exhaustive()
    }
}

impl PgOptions {
    /// Defaults for `url`, the node named by the host name.
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
            pool_size: POOL_SIZE,
            statement_timeout: STATEMENT_TIMEOUT,
            node_id: default_node_id(),
            group_commit_max: store::GROUP_COMMIT_MAX,
        }
    }

    /// The connection settings and the TLS connector (`sslmode`,
    /// `sslrootcert`: see `tls.rs`): every connection of the store commits
    /// synchronously and times statements out.
    pub(crate) fn pg_config(&self) -> Result<tls::PgConnect, StoreError> {
        let mut connect = tls::parse_url(&self.url)?;
        let config = &mut connect.config;
        config.options(format!(
            "-c synchronous_commit=on -c statement_timeout={}",
            self.statement_timeout.as_millis()
        ));
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("mailroom");
        Ok(connect)
    }
}

/// The host name (`/etc/hostname`, else "mailroom"): the default
/// `store.node_id`.
pub fn default_node_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "mailroom".to_string())
}

/// Maps a driver error: a lost connection, a timeout or a deadlock is
/// temporary; a full disk is [`StoreError::DiskFull`].
pub(crate) fn map_err(err: tokio_postgres::Error) -> StoreError {
    match err.code() {
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
            StoreError::DiskFull
        }
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::LOCK_NOT_AVAILABLE =>
        {
            StoreError::Busy
        }
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::AlreadyExists(err.to_string()),
        _ => StoreError::Io(format!("PostgreSQL: {}", tls::error_chain(&err))),
    }
}

/// Reads the server's durability settings back: with `fsync = off` (or a
/// session whose commits do not wait for the WAL flush) every
/// acknowledgement could be a lie after a crash, so the store refuses to
/// open, as the SQLite store does for its pragmas.
async fn check_durability(client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    let row = client
        .query_one(
            "SELECT current_setting('fsync'), current_setting('synchronous_commit')",
            &[],
        )
        .await
        .map_err(map_err)?;
    let fsync: String = row.try_get(0).map_err(map_err)?;
    let sync: String = row.try_get(1).map_err(map_err)?;
    if fsync != "on" || sync == "off" {
        return Err(StoreError::Io(format!(
            "PostgreSQL runs with fsync = {fsync}, synchronous_commit = {sync}: a crash could \
             lose acknowledged mail; need fsync = on and synchronous_commit on (refusing to open)"
        )));
    }
    Ok(())
}

/// A pool of at most `size` connections with `config`'s settings; it
/// connects lazily, on the first `get`.
pub(crate) fn build_pool(connect: &tls::PgConnect, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        connect.config.clone(),
        connect.tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Invalid(format!("store pool: {e}")))
}

pub(crate) fn pool_err(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(e) => map_err(e),
        deadpool_postgres::PoolError::Timeout(_) => StoreError::Busy,
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => StoreError::Io(format!("PostgreSQL pool: {}", tls::error_chain(&other))),
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) commits: AtomicU64,
    pub(crate) ops: AtomicU64,
    pub(crate) batches: [AtomicU64; BATCH_BUCKETS],
}

/// What the store's tasks share: the pool, the feed, the commit counters.
pub(crate) struct Shared {
    pool: Pool,
    feed: feed::Feed,
    stats: Stats,
}

/// The message store on one PostgreSQL database; one handle per node
/// (several handles in one process behave as several nodes).
pub struct PgStore {
    shared: Arc<Shared>,
    node_id: String,
    /// The batcher's queue (batch.rs). Unbounded: every job has a caller
    /// waiting for its answer (an SMTP session, the delivery worker), so
    /// the queue is bounded by the connection limits.
    deliveries: tokio::sync::mpsc::UnboundedSender<batch::Job>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
        self.shared.pool.close();
    }
}

impl PgStore {
    /// Connects, migrates the schema (under an advisory lock) and starts
    /// the listener. Must run inside a tokio runtime.
    pub async fn open(opts: PgOptions) -> Result<Arc<PgStore>, StoreError> {
        let pg_config = opts.pg_config()?;
        let pool = build_pool(&pg_config, opts.pool_size)?;
        let mut client = pool.get().await.map_err(pool_err)?;
        check_durability(&client).await?;
        schema::migrate(&mut client).await?;
        copy::refuse_unfinished(&client).await?;
        let heads = feed::heads(&client).await?;
        drop(client);
        let shared = Arc::new(Shared {
            pool,
            feed: feed::Feed::new(heads),
            stats: Stats::default(),
        });
        let listener = tokio::spawn(feed::listen(Arc::clone(&shared), pg_config));
        let (deliveries, jobs) = tokio::sync::mpsc::unbounded_channel();
        // Ends when the store (the only sender) is dropped and every job
        // sent has been answered.
        tokio::spawn(batch::run(Arc::clone(&shared), jobs, opts.group_commit_max));
        Ok(Arc::new(PgStore {
            shared,
            node_id: opts.node_id,
            deliveries,
            listener,
        }))
    }

    /// Deliveries through the batcher (group commit, batch.rs): durable
    /// when this resolves Ok.
    async fn deliver_batched(
        &self,
        deliveries: Vec<Delivery>,
        tail: Option<Spooled>,
    ) -> Result<Vec<Delivered>, StoreError> {
        let (job, answer) = batch::Job::new(deliveries, tail);
        self.deliveries.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.shared.pool.get().await.map_err(pool_err)
    }

    /// Commits a write's transaction (or drops it, rolling back, when the
    /// op failed), with its one NOTIFY; returns the value and the accounts
    /// whose change rows it wrote.
    async fn commit<T>(
        &self,
        tx: ops::Tx<'_>,
        result: Result<T, StoreError>,
    ) -> Result<(T, Vec<String>), StoreError> {
        let value = result?;
        let touched = tx.touched();
        if !touched.is_empty() {
            feed::notify(&tx, &touched).await?;
        }
        tx.tx.commit().await.map_err(map_err)?;
        let stats = &self.shared.stats;
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.ops.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = stats.batches.get(batch_bucket(1)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        Ok((value, touched))
    }
}

/// One write: a transaction on a pooled connection, the op, the commit,
/// then the feed publishes the touched accounts' changes on the same
/// connection (a second one from the pool could wait on writers that
/// hold the others). Retried when PostgreSQL broke a deadlock by aborting
/// this side.
macro_rules! write {
    ($self:ident, |$tx:ident| $op:expr) => {
        Box::pin(async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut client = $self.client().await?;
                let inner = client.transaction().await.map_err(map_err)?;
                let $tx = ops::Tx::new(inner);
                let result = $op.await;
                match $self.commit($tx, result).await {
                    Ok((value, touched)) => {
                        if !touched.is_empty() {
                            $self.shared.feed.catch_up_on(&client, &touched).await;
                        }
                        break Ok(value);
                    }
                    Err(StoreError::Busy) if attempt < DEADLOCK_RETRIES => continue,
                    Err(e) => break Err(e),
                }
            }
        })
    };
}

/// One read in a read-only REPEATABLE READ transaction: one snapshot
/// for all of its statements.
macro_rules! read {
    ($self:ident, |$tx:ident| $op:expr) => {
        Box::pin(async move {
            let mut client = $self.client().await?;
            let $tx = client
                .build_transaction()
                .read_only(true)
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .start()
                .await
                .map_err(map_err)?;
            let result = $op.await;
            $tx.commit().await.map_err(map_err)?;
            result
        })
    };
}

impl Store for PgStore {
    fn deliver(&self, delivery: Delivery) -> StoreFuture<'_, Delivered> {
        Box::pin(async move {
            self.deliver_batched(vec![delivery], None)
                .await?
                .pop()
                .ok_or_else(|| StoreError::Io("delivery not answered".into()))
        })
    }

    fn deliver_all(&self, deliveries: Vec<Delivery>) -> StoreFuture<'_, Vec<Delivered>> {
        Box::pin(self.deliver_batched(deliveries, None))
    }

    fn ensure_account(&self, account: String) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::ensure_account(&tx, &account))
    }

    fn delete_account(&self, account: String) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::delete_account(&tx, &account))
    }

    fn mailboxes(&self, account: String) -> StoreFuture<'_, Vec<MailboxInfo>> {
        read!(self, |tx| read::mailboxes(&tx, &account))
    }

    fn mailbox_count(&self, account: String) -> StoreFuture<'_, u64> {
        read!(self, |tx| read::mailbox_count(&tx, &account))
    }

    fn usage(&self, account: String) -> StoreFuture<'_, store::Usage> {
        read!(self, |tx| read::usage(&tx, &account))
    }

    fn trim_tombstones(&self, older_than: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let found: StoreFuture<'_, Vec<MailboxId>> = write!(self, |tx| {
                ops::mailboxes_with_old_tombstones(&tx, older_than)
            });
            let mut trimmed = 0;
            // One transaction per mailbox: a long trim never holds many
            // row locks against the writers.
            for mailbox in found.await? {
                let one: StoreFuture<'_, u64> = write!(self, |tx| {
                    ops::trim_mailbox_tombstones(&tx, mailbox, older_than)
                });
                trimmed += one.await?;
            }
            Ok(trimmed)
        })
    }

    fn mailbox(&self, account: String, name: String) -> StoreFuture<'_, Option<MailboxInfo>> {
        read!(self, |tx| read::mailbox(&tx, &account, &name))
    }

    fn mailbox_uncounted(
        &self,
        account: String,
        name: String,
    ) -> StoreFuture<'_, Option<MailboxInfo>> {
        read!(self, |tx| read::mailbox_uncounted(&tx, &account, &name))
    }

    fn create_mailbox(
        &self,
        account: String,
        name: String,
        special_use: Option<String>,
    ) -> StoreFuture<'_, MailboxInfo> {
        write!(self, |tx| ops::create_mailbox(
            &tx,
            &account,
            &name,
            special_use.as_deref()
        ))
    }

    fn delete_mailbox(&self, account: String, name: String) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::delete_mailbox(&tx, &account, &name))
    }

    fn rename_mailbox(&self, account: String, from: String, to: String) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::rename_mailbox(&tx, &account, &from, &to))
    }

    fn set_subscribed(
        &self,
        account: String,
        name: String,
        subscribed: bool,
    ) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::set_subscribed(
            &tx, &account, &name, subscribed
        ))
    }

    fn subscriptions(&self, account: String) -> StoreFuture<'_, Vec<String>> {
        read!(self, |tx| read::subscriptions(&tx, &account))
    }

    fn metadata(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
    ) -> StoreFuture<'_, Vec<(String, Vec<u8>)>> {
        read!(self, |tx| metadata::metadata(&tx, &account, mailbox))
    }

    fn set_metadata(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
        entries: Vec<(String, Option<Vec<u8>>)>,
        max_entries: usize,
    ) -> StoreFuture<'_, ()> {
        write!(self, |tx| metadata::set_metadata(
            &tx,
            &account,
            mailbox,
            &entries,
            max_entries
        ))
    }

    fn urlauth_key(&self, account: String, mailbox: MailboxId) -> StoreFuture<'_, Option<Vec<u8>>> {
        read!(self, |tx| urlauth::key(&tx, &account, mailbox))
    }

    fn ensure_urlauth_key(
        &self,
        account: String,
        mailbox: MailboxId,
        fresh: Vec<u8>,
    ) -> StoreFuture<'_, Vec<u8>> {
        write!(self, |tx| urlauth::ensure_key(
            &tx, &account, mailbox, &fresh
        ))
    }

    fn reset_urlauth_keys(
        &self,
        account: String,
        mailbox: Option<MailboxId>,
    ) -> StoreFuture<'_, ()> {
        write!(self, |tx| urlauth::reset_keys(&tx, &account, mailbox))
    }

    fn body_meta(&self, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        read!(self, |tx| body_meta::body_meta(&tx, &bodies))
    }

    fn set_body_meta(&self, entries: Vec<(BodyId, Vec<u8>)>) -> StoreFuture<'_, ()> {
        write!(self, |tx| body_meta::set_body_meta(&tx, &entries))
    }

    fn thread_ids(&self, account: String, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<u64>> {
        read!(self, |tx| threads::thread_ids(&tx, &account, &bodies))
    }

    fn messages(&self, mailbox: MailboxId) -> StoreFuture<'_, Vec<MessageMeta>> {
        read!(self, |tx| read::messages(&tx, mailbox))
    }

    fn read_body(&self, body: BodyId) -> StoreFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let mut got = self.read_bodies(vec![body]).await?;
            got.pop()
                .flatten()
                .ok_or_else(|| StoreError::NotFound(format!("body {}", body.0)))
        })
    }

    fn read_bodies(&self, bodies: Vec<BodyId>) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        read!(self, |tx| read::read_bodies(&tx, &bodies))
    }

    fn append(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date: i64,
    ) -> StoreFuture<'_, Uid> {
        write!(self, |tx| ops::append(
            &tx,
            mailbox,
            store::BodyParts::whole(&raw),
            flags.clone(),
            internal_date
        ))
    }

    fn append_many(
        &self,
        mailbox: MailboxId,
        messages: Vec<store::NewMessage>,
        quota: Quota,
    ) -> StoreFuture<'_, Vec<Uid>> {
        write!(self, |tx| ops::append_many(&tx, mailbox, &messages, quota))
    }

    fn save_dates(
        &self,
        mailbox: MailboxId,
        first: Uid,
        last: Uid,
    ) -> StoreFuture<'_, Vec<(Uid, Option<i64>)>> {
        read!(self, |tx| read::save_dates(&tx, mailbox, first, last))
    }

    fn read_body_range(&self, body: BodyId, offset: u64, len: usize) -> StoreFuture<'_, Vec<u8>> {
        read!(self, |tx| read::read_body_range(&tx, body, offset, len))
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
        write!(self, |tx| ops::append_within(
            &tx,
            mailbox,
            store::BodyParts {
                head: &head,
                tail: Some(&tail)
            },
            flags.clone(),
            internal_date,
            quota
        ))
    }

    fn deliver_all_spooled(
        &self,
        deliveries: Vec<Delivery>,
        tail: Spooled,
    ) -> StoreFuture<'_, Vec<Delivered>> {
        Box::pin(self.deliver_batched(deliveries, Some(tail)))
    }

    fn deliver_all_spooled_apart(
        &self,
        deliveries: Vec<Delivery>,
        local_tail: Option<Spooled>,
        tail: Spooled,
    ) -> StoreFuture<'_, Vec<Delivered>> {
        Box::pin(async move {
            let (mut job, answer) = batch::Job::new(deliveries, Some(tail));
            job.local_tail = Some(local_tail);
            self.deliveries.send(job).map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
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
        write!(self, |tx| ops::import(
            &tx,
            mailbox,
            store::BodyParts::whole(&raw),
            flags.clone(),
            internal_date,
            &digest
        ))
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
        // A retried transaction reads the tail again: `Spooled` reads at
        // offsets, never from a cursor.
        write!(self, |tx| ops::import(
            &tx,
            mailbox,
            store::BodyParts {
                head: &head,
                tail: Some(&tail)
            },
            flags.clone(),
            internal_date,
            &digest
        ))
    }

    fn set_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Vec<String>,
    ) -> StoreFuture<'_, Vec<MessageMeta>> {
        write!(self, |tx| ops::set_flags(
            &tx,
            mailbox,
            uids.clone(),
            op,
            flags.clone()
        ))
    }

    fn set_flags_unchanged_since(
        &self,
        mailbox: MailboxId,
        uids: Vec<Uid>,
        op: FlagOp,
        flags: Vec<String>,
        unchanged_since: u64,
    ) -> StoreFuture<'_, ConditionalFlags> {
        write!(self, |tx| ops::set_flags_if(
            &tx,
            mailbox,
            uids.clone(),
            op,
            flags.clone(),
            Some(unchanged_since)
        ))
    }

    fn append_within(
        &self,
        mailbox: MailboxId,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date: i64,
        quota: Quota,
    ) -> StoreFuture<'_, Uid> {
        write!(self, |tx| ops::append_within(
            &tx,
            mailbox,
            store::BodyParts::whole(&raw),
            flags.clone(),
            internal_date,
            quota
        ))
    }

    fn copy_within(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
        quota: Quota,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        write!(self, |tx| ops::copy_within(
            &tx,
            from,
            uids.clone(),
            to,
            quota
        ))
    }

    fn expunge(&self, mailbox: MailboxId, uids: Vec<Uid>) -> StoreFuture<'_, Vec<Uid>> {
        write!(self, |tx| ops::expunge(&tx, mailbox, uids.clone()))
    }

    fn copy(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        write!(self, |tx| ops::copy(&tx, from, uids.clone(), to))
    }

    fn move_messages(
        &self,
        from: MailboxId,
        uids: Vec<Uid>,
        to: MailboxId,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        write!(self, |tx| ops::move_messages(&tx, from, uids.clone(), to))
    }

    fn messages_range(
        &self,
        mailbox: MailboxId,
        first: Uid,
        last: Uid,
    ) -> StoreFuture<'_, Vec<MessageMeta>> {
        read!(self, |tx| read::messages_range(&tx, mailbox, first, last))
    }

    fn changes_since(&self, mailbox: MailboxId, since: u64) -> StoreFuture<'_, MailboxChanges> {
        read!(self, |tx| read::changes_since(&tx, mailbox, since))
    }

    fn mailbox_index(&self, mailbox: MailboxId) -> StoreFuture<'_, store::MailboxIndex> {
        read!(self, |tx| read::mailbox_index(&tx, mailbox))
    }

    fn queue(&self) -> StoreFuture<'_, Vec<QueueEntry>> {
        read!(self, |tx| read::queue(&tx))
    }

    fn claim_queue(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<QueueEntry>> {
        let node = self.node_id.clone();
        write!(self, |tx| ops::claim(&tx, &node, now, lease_until, limit))
    }

    fn renew_queue_claims(
        &self,
        ids: Vec<i64>,
        now: i64,
        lease_until: i64,
    ) -> StoreFuture<'_, usize> {
        let node = self.node_id.clone();
        write!(self, |tx| ops::renew(&tx, &node, &ids, now, lease_until))
    }

    fn complete_queue(&self, id: i64) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::complete(&tx, id))
    }

    fn defer_queue(&self, id: i64, next_attempt: i64, error: String) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::defer(&tx, id, next_attempt, &error))
    }

    fn fail_queue(&self, id: i64, error: String) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::fail(&tx, id, &error))
    }

    fn settle_queue(&self, settle: Settle) -> StoreFuture<'_, Vec<Delivered>> {
        write!(self, |tx| ops::settle(&tx, &settle))
    }

    fn retry_queue(&self, id: Option<i64>) -> StoreFuture<'_, usize> {
        write!(self, |tx| ops::retry(&tx, id))
    }

    fn delete_queue(&self, id: i64) -> StoreFuture<'_, ()> {
        write!(self, |tx| ops::delete(&tx, id))
    }

    fn queue_stats(&self) -> StoreFuture<'_, (u64, Option<i64>)> {
        read!(self, |tx| read::queue_stats(&tx))
    }

    fn release_queue_claims(&self) -> StoreFuture<'_, usize> {
        let node = self.node_id.clone();
        write!(self, |tx| ops::release_claims(&tx, &node))
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.shared.feed.subscribe()
    }

    fn stats(&self) -> StoreStats {
        let stats = &self.shared.stats;
        let mut batches = [0; BATCH_BUCKETS];
        for (out, b) in batches.iter_mut().zip(&stats.batches) {
            *out = b.load(Ordering::Relaxed);
        }
        StoreStats {
            commits: stats.commits.load(Ordering::Relaxed),
            ops: stats.ops.load(Ordering::Relaxed),
            batches,
        }
    }

    fn health(&self) -> (Option<String>, String) {
        let status = self.shared.pool.status();
        let line = format!(
            "store: postgres, pool {}/{} connections, {} waiting",
            status.size, status.max_size, status.waiting
        );
        if self.listener.is_finished() {
            return (Some("store change listener stopped".to_string()), line);
        }
        (None, line)
    }
}
