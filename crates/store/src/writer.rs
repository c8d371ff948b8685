//! The write path: one writer thread per process, group commit, and the
//! only place in the code that commits. Durability lives here (STYLE.md).
//!
//! # Rules
//!
//! 1. **One writer connection, one thread.** Every write of this process is
//!    a job sent over a channel to the writer thread, which owns the only
//!    read-write connection that writes. No other code path writes.
//! 2. **Group commit.** The thread blocks for one job, then drains whatever
//!    else is waiting, up to `group_commit_max` jobs, and runs them all in
//!    ONE `BEGIN IMMEDIATE` ... `COMMIT`. With `synchronous=FULL` in WAL
//!    mode, the COMMIT fsyncs the WAL once for the whole batch.
//! 3. **Acknowledge after the fsync, never before.** A job's answer (its
//!    oneshot) is sent only after COMMIT returned Ok. If BEGIN or COMMIT
//!    fails, every job of the batch is answered with that error and nothing
//!    of the batch is in the database (COMMIT is all or nothing).
//! 4. **A failing job does not poison the batch.** Each job runs inside
//!    `SAVEPOINT op`; on error the writer rolls back to it (undoing exactly
//!    that job), answers the job with its error after the commit, and goes
//!    on. If SQLite itself aborted the whole transaction (SQLITE_FULL,
//!    I/O error: the connection is back in autocommit), every job of the
//!    batch fails with that error. A run of consecutive *repeatable* jobs
//!    (deliveries, which keep their input: [`Job::repeatable`]) shares one
//!    `SAVEPOINT run` instead, since a savepoint per job copies every page
//!    the job touches into the statement journal (issue 18: a tenth of the
//!    SMTP accept path); if one of them fails, the writer rolls back to
//!    that savepoint and runs the run again one savepoint per job, so the
//!    outcome is the same as with rule 4 alone.
//! 5. **Order.** Jobs run in the order they were sent; within a mailbox,
//!    UIDs and mod-sequences are allocated inside the transaction, so they
//!    follow commit order. Another process (the CLI) writes through its own
//!    writer; SQLite's write lock serialises the two, waiting up to the busy
//!    timeout (then [`StoreError::Busy`]).
//! 6. **Publish after commit, then answer.** After COMMIT the writer
//!    publishes the new `changes` rows on the feed (`feed.rs`), then sends
//!    the answers, so a client that sees its OK can already see the change.
//! 7. **Shutdown finishes queued work.** Dropping the job sender lets the
//!    thread drain every job already queued, commit, answer, and exit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::feed::{self, Feed};
use crate::schema::map_err;
use crate::{StoreError, StoreStats};

/// Every this many commits, the writer trims the change log (one small
/// transaction of its own: a range delete on the primary key).
pub const TRIM_EVERY_COMMITS: u64 = 1024;

/// One write operation with its reply channel.
pub trait Job: Send {
    /// Runs the operation inside the open transaction. On error the result
    /// is kept for the reply and a copy is returned to the writer.
    fn apply(&mut self, conn: &Connection) -> Result<(), StoreError>;
    /// Answers with the kept result (after a successful commit).
    fn finish(self: Box<Self>);
    /// Answers with `err` (the batch did not commit).
    fn fail(self: Box<Self>, err: StoreError);
    /// True when `apply` may run again after a rollback of what it did,
    /// with the same effect: the job keeps its input rather than consuming
    /// it. Such jobs share savepoints (rule 4).
    fn repeatable(&self) -> bool {
        false
    }
}

/// A [`Job`] that stores deliveries, all or none of them (one message and
/// the DSN it causes, say). Repeatable: it borrows its deliveries.
pub struct DeliverJob {
    deliveries: Vec<crate::Delivery>,
    result: Option<Result<Vec<crate::Delivered>, StoreError>>,
    reply: oneshot::Sender<Result<Vec<crate::Delivered>, StoreError>>,
}

impl DeliverJob {
    pub fn new(
        deliveries: Vec<crate::Delivery>,
    ) -> (
        Box<Self>,
        oneshot::Receiver<Result<Vec<crate::Delivered>, StoreError>>,
    ) {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(DeliverJob {
            deliveries,
            result: None,
            reply,
        });
        (job, rx)
    }
}

impl Job for DeliverJob {
    fn apply(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let result: Result<Vec<_>, _> = self
            .deliveries
            .iter()
            .map(|d| crate::ops::deliver(conn, d))
            .collect();
        let copy = result.as_ref().map(|_| ()).map_err(Clone::clone);
        self.result = Some(result);
        copy
    }

    fn finish(self: Box<Self>) {
        let result = self
            .result
            .unwrap_or_else(|| Err(StoreError::Invalid("write job never applied".into())));
        // Err: the caller stopped waiting; the write is durable regardless.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }

    fn repeatable(&self) -> bool {
        true
    }
}

/// A [`Job`] made of a closure.
pub struct FnJob<T, F> {
    f: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> FnJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    pub fn new(f: F) -> (Box<Self>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(FnJob {
            f: Some(f),
            result: None,
            reply,
        });
        (job, rx)
    }
}

impl<T, F> Job for FnJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn apply(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let result = match self.f.take() {
            Some(f) => f(conn),
            None => Err(StoreError::Invalid("write job applied twice".into())),
        };
        let copy = result.as_ref().map(|_| ()).map_err(Clone::clone);
        self.result = Some(result);
        copy
    }

    fn finish(self: Box<Self>) {
        let result = self
            .result
            .unwrap_or_else(|| Err(StoreError::Invalid("write job never applied".into())));
        // Err: the caller stopped waiting; the write is durable regardless.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

/// Commit counters shared with [`crate::SqliteStore::stats`].
#[derive(Default)]
pub struct Stats {
    commits: AtomicU64,
    ops: AtomicU64,
    batches: [AtomicU64; crate::BATCH_BUCKETS],
}

impl Stats {
    pub fn snapshot(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            batches: std::array::from_fn(|i| {
                self.batches.get(i).map_or(0, |b| b.load(Ordering::Relaxed))
            }),
        }
    }

    /// Counts one commit of `ops` operations in its power-of-two bucket.
    fn batch(&self, ops: u64) {
        let i = crate::batch_bucket(ops);
        if let Some(b) = self.batches.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread's state.
pub struct Writer {
    pub conn: Connection,
    pub feed: Arc<Feed>,
    pub stats: Arc<Stats>,
    pub group_commit_max: usize,
}

impl Writer {
    /// The thread body: runs until every sender is dropped and the queue is
    /// empty.
    pub fn run(mut self, jobs: Receiver<Box<dyn Job>>) {
        let max = self.group_commit_max.max(1);
        while let Ok(first) = jobs.recv() {
            let mut batch = vec![first];
            while batch.len() < max {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.run_batch(batch);
        }
        tracing::debug!("store writer: queue closed, exiting");
    }

    fn run_batch(&mut self, mut batch: Vec<Box<dyn Job>>) {
        let outcome = self.apply_all(&mut batch);
        match outcome {
            Ok(ok_ops) => {
                let commits = self.stats.commits.fetch_add(1, Ordering::Relaxed) + 1;
                self.stats.ops.fetch_add(ok_ops, Ordering::Relaxed);
                self.stats.batch(ok_ops);
                if let Err(e) = self.feed.catch_up(&self.conn) {
                    // The watcher will retry on its next poll.
                    tracing::warn!(error = %e, "store writer: publishing changes failed");
                }
                if commits.is_multiple_of(TRIM_EVERY_COMMITS) {
                    self.trim();
                }
                for job in batch {
                    job.finish();
                }
            }
            Err(err) => {
                if !self.conn.is_autocommit()
                    && let Err(e) = self.conn.execute_batch("ROLLBACK")
                {
                    tracing::error!(error = %e, "store writer: ROLLBACK failed");
                }
                tracing::warn!(error = %err, jobs = batch.len(), "store writer: batch failed");
                for job in batch {
                    job.fail(err.clone());
                }
            }
        }
    }

    /// BEGIN, every job in its savepoint, COMMIT. Returns the number of
    /// jobs that succeeded, or the error that stopped the whole batch.
    fn apply_all(&mut self, batch: &mut [Box<dyn Job>]) -> Result<u64, StoreError> {
        let conn = &self.conn;
        // Cached statements: parsing these four per operation was a visible
        // share of the writer's time under bench/smtp.sh.
        let run = |sql: &str| -> Result<(), StoreError> {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
                .map_err(map_err)
        };
        run("BEGIN IMMEDIATE")?;
        let mut ok_ops = 0u64;
        let mut start = 0usize;
        while start < batch.len() {
            let rest = batch.get_mut(start..).unwrap_or_default();
            let shared = rest.iter().take_while(|j| j.repeatable()).count();
            // Two or more repeatable jobs: one savepoint for the run.
            if shared >= 2 {
                let group = rest.get_mut(..shared).unwrap_or_default();
                run("SAVEPOINT run")?;
                match apply_each(conn, group) {
                    Ok(()) => {
                        run("RELEASE run")?;
                        ok_ops += shared as u64;
                        start += shared;
                        continue;
                    }
                    Err(err) if conn.is_autocommit() => return Err(err),
                    Err(_) => {
                        // Undo the whole run, then run it again job by job
                        // below, so only the failing job fails.
                        run("ROLLBACK TO run")?;
                        run("RELEASE run")?;
                    }
                }
            }
            let alone = shared.max(1);
            let rest = batch.get_mut(start..).unwrap_or_default();
            for job in rest.iter_mut().take(alone) {
                run("SAVEPOINT op")?;
                match job.apply(conn) {
                    Ok(()) => {
                        run("RELEASE op")?;
                        ok_ops += 1;
                    }
                    Err(err) => {
                        if conn.is_autocommit() {
                            // SQLite rolled back the whole transaction.
                            return Err(err);
                        }
                        run("ROLLBACK TO op")?;
                        run("RELEASE op")?;
                    }
                }
            }
            start += alone;
        }
        run("COMMIT")?;
        Ok(ok_ops)
    }

    /// Trims the change log in its own small transaction; failure is only
    /// logged (the log is trimmed again later).
    fn trim(&self) {
        match feed::trim(&self.conn, crate::ops::now()) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "trimmed change log"),
            Err(e) => tracing::warn!(error = %e, "trimming change log failed"),
        }
    }
}

/// Applies every job of a run, stopping at the first error.
fn apply_each(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    for job in jobs.iter_mut() {
        job.apply(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn commits_are_counted_by_power_of_two_batch_size() {
        assert_eq!(crate::batch_bucket(0), 0);
        assert_eq!(crate::batch_bucket(1), 0);
        assert_eq!(crate::batch_bucket(2), 1);
        assert_eq!(crate::batch_bucket(3), 2);
        assert_eq!(crate::batch_bucket(256), 8);
        assert_eq!(crate::batch_bucket(257), 9);
        assert_eq!(crate::batch_bucket(u64::MAX), crate::BATCH_BUCKETS - 1);
        let s = Stats::default();
        s.batch(1);
        s.batch(5);
        s.batch(5);
        let snap = s.snapshot();
        assert_eq!(snap.batches[0], 1);
        assert_eq!(snap.batches[3], 2);
    }
}
