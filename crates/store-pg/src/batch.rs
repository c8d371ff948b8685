//! Group commit of deliveries on PostgreSQL (issue 21), the analogue of
//! the embedded store's writer (crates/store/src/writer.rs).
//!
//! A delivery (`deliver`, `deliver_all`, `deliver_all_spooled`: SMTP's
//! DATA and the local deliveries of the queue) is a [`Job`] sent to this
//! handle's batcher task. The batcher takes one job, drains every job
//! already waiting (up to `group_commit_max`), and runs them all in ONE
//! transaction on one pooled connection:
//!
//! 1. **Locks first, in the global order.** Every local account of every
//!    job is locked ascending (`change_heads`, ops.rs's lock order) before
//!    any job runs, so a batch waits for other writers exactly as one
//!    delivery to all of those accounts would, and never deadlocks with
//!    them; the queue's `''` is still taken last, by the first job that
//!    queues a remote copy (no job then takes an account not yet held).
//!    Those locks are taken outside every savepoint, so they hold to
//!    COMMIT even when one job is rolled back.
//! 2. **One commit, then the answers.** NOTIFY (one for the batch), COMMIT
//!    with `synchronous_commit = on` (one WAL flush for every job), the
//!    feed publishes the batch's rows, and only then is each job
//!    answered: an acknowledgement still follows a durable commit.
//! 3. **A failing job does not fail the others.** The first pass runs the
//!    deliveries of every job step by step for all at once (many.rs:
//!    three round trips for the batch, no savepoint, since jobs rarely
//!    fail). If anything fails, the transaction is rolled back and the
//!    batch runs again one job after the other with `SAVEPOINT job` around
//!    each, rolling back to it for a job that fails: the outcome is that
//!    of one transaction per job. Deliveries borrow their input, so
//!    running one again is exact. A batch of one job runs alone, and its
//!    error rolls it back. An error of the connection or of COMMIT fails
//!    every job (nothing of the batch is stored: COMMIT is all or
//!    nothing); a deadlock runs the batch again.
//! 4. **Order.** UIDs and mod-sequences of a mailbox are handed out in the
//!    order the jobs were sent, and each account's change rows follow
//!    them, as with one transaction per job.
//!
//! One batcher per handle: while one batch commits, the next one gathers
//! (every delivery to one account is serialised by its lock anyway).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use store::rules::canonical_account;
use store::{Delivered, Delivery, Spooled, StoreError, Tails, batch_bucket};

use crate::{DEADLOCK_RETRIES, Shared, feed, many, map_err, ops};

/// What a job answers.
pub type Reply = Result<Vec<Delivered>, StoreError>;

/// Deliveries stored together, all or none of them (a message and the
/// DSN it causes); the first one's copies may end in a spooled `tail`,
/// its local copy in `local_tail` when it has one of its own.
pub struct Job {
    pub deliveries: Vec<Delivery>,
    pub tail: Option<Spooled>,
    pub local_tail: Option<Option<Spooled>>,
    pub reply: oneshot::Sender<Reply>,
}

impl Job {
    /// The job and the receiver of its answer.
    pub fn new(
        deliveries: Vec<Delivery>,
        tail: Option<Spooled>,
    ) -> (Job, oneshot::Receiver<Reply>) {
        let (reply, rx) = oneshot::channel();
        (
            Job {
                deliveries,
                tail,
                local_tail: None,
                reply,
            },
            rx,
        )
    }

    /// The job's local accounts, canonical; one that is not valid is left
    /// out (the job fails on it by itself).
    fn accounts(&self, into: &mut BTreeSet<String>) {
        for d in &self.deliveries {
            for t in &d.local {
                if let Ok(a) = canonical_account(&t.account) {
                    into.insert(a);
                }
            }
        }
    }

    /// The first delivery's tails.
    pub fn tails(&self) -> Tails<'_> {
        Tails {
            local: match &self.local_tail {
                Some(own) => own.as_ref(),
                None => self.tail.as_ref(),
            },
            relayed: self.tail.as_ref(),
        }
    }

    async fn apply(&self, tx: &ops::Tx<'_>) -> Reply {
        ops::deliver_all(tx, &self.deliveries, self.tails()).await
    }
}

/// How one pass over a batch ended.
enum Pass {
    /// Each job's answer, in order: committed, or (a batch of one job
    /// that failed) rolled back.
    Done(Vec<Reply>),
    /// A job failed in a pass without savepoints: nothing committed, run
    /// again with them.
    JobFailed,
}

/// The batcher task: runs until the store (the only sender) is dropped
/// and every job sent is answered.
pub async fn run(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>, max: usize) {
    let max = max.max(1);
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&shared, batch).await;
    }
    tracing::debug!("store batcher: queue closed, exiting");
}

async fn run_batch(shared: &Shared, batch: Vec<Job>) {
    let mut accounts = BTreeSet::new();
    for job in &batch {
        job.accounts(&mut accounts);
    }
    // Savepoints only once the fast pass failed (rule 3).
    let mut isolate = false;
    let mut attempt = 0;
    let outcome = loop {
        attempt += 1;
        match pass(shared, &batch, &accounts, isolate).await {
            Ok(Pass::Done(replies)) => break Ok(replies),
            Ok(Pass::JobFailed) => isolate = true,
            // PostgreSQL broke a deadlock (bodies shared across accounts)
            // by aborting this side: nothing is stored, try again.
            Err(StoreError::Busy) if attempt < DEADLOCK_RETRIES => {}
            Err(e) => break Err(e),
        }
    };
    match outcome {
        Ok(replies) => {
            for (job, reply) in batch.into_iter().zip(replies) {
                // Err: the caller stopped waiting; the write is durable
                // regardless.
                let _ = job.reply.send(reply);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = batch.len(), "store batcher: batch failed");
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// One transaction over the whole batch; see the module's rules.
async fn pass(
    shared: &Shared,
    batch: &[Job],
    accounts: &BTreeSet<String>,
    isolate: bool,
) -> Result<Pass, StoreError> {
    let mut client = shared.pool.get().await.map_err(crate::pool_err)?;
    // The transaction borrows the connection; the feed reads on it after.
    let (replies, ok, touched) = {
        let inner = client.transaction().await.map_err(map_err)?;
        let mut tx = ops::Tx::new(inner);
        tx.prelock(accounts).await?;
        let mut replies = Vec::with_capacity(batch.len());
        let mut ok = 0u64;
        if isolate {
            for job in batch {
                tx.exec("SAVEPOINT job", &[]).await?;
                let reply = job.apply(&tx).await;
                if reply.is_ok() {
                    tx.exec("RELEASE SAVEPOINT job", &[]).await?;
                    ok += 1;
                } else {
                    // Undoes exactly this job; fails when the connection
                    // or the transaction itself is gone (every job fails
                    // then).
                    tx.exec("ROLLBACK TO SAVEPOINT job", &[]).await?;
                    tx.exec("RELEASE SAVEPOINT job", &[]).await?;
                }
                replies.push(reply);
            }
        } else if let [job] = batch {
            let reply = job.apply(&tx).await;
            match &reply {
                Ok(_) => ok += 1,
                // A deadlock: tried again.
                Err(StoreError::Busy) => return Err(StoreError::Busy),
                // Dropping the transaction rolls back whatever the job did
                // before it failed: nothing of it is committed.
                Err(_) => return Ok(Pass::Done(vec![reply])),
            }
            replies.push(reply);
        } else {
            // Step by step for every delivery at once (many.rs).
            let items: Vec<many::Item<'_>> = batch
                .iter()
                .flat_map(|job| {
                    job.deliveries
                        .iter()
                        .enumerate()
                        .map(|(i, delivery)| many::Item {
                            delivery,
                            tails: if i == 0 {
                                job.tails()
                            } else {
                                Tails::default()
                            },
                        })
                })
                .collect();
            let mut done = match many::deliver_many(&tx, &items).await {
                Ok(done) => done.into_iter(),
                Err(StoreError::Busy) => return Err(StoreError::Busy),
                // Which one failed is found one savepoint per job.
                Err(_) => return Ok(Pass::JobFailed),
            };
            for job in batch {
                replies.push(Ok(done.by_ref().take(job.deliveries.len()).collect()));
                ok += 1;
            }
        }
        let touched = tx.touched();
        // The fast path (many.rs) sent its NOTIFY with its last step.
        if !touched.is_empty() && (isolate || batch.len() == 1) {
            feed::notify(&tx, &touched).await?;
        }
        tx.tx.commit().await.map_err(map_err)?;
        (replies, ok, touched)
    };
    let stats = &shared.stats;
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.ops.fetch_add(ok, Ordering::Relaxed);
    if let Some(b) = stats.batches.get(batch_bucket(ok)) {
        b.fetch_add(1, Ordering::Relaxed);
    }
    // Publish, then answer (as the embedded writer's rule 6): a client
    // that sees its 250 finds the change on this node's feed.
    if !touched.is_empty() {
        shared.feed.catch_up_on(&client, &touched).await;
    }
    Ok(Pass::Done(replies))
}
