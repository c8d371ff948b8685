//! The change feed on PostgreSQL: publish each committed change row once,
//! in `change_seq` order per account, to this handle's subscribers.
//!
//! The key is per account and taken under the account's row lock, so it
//! is commit-ordered per account (docs/storage.md, "Ordering of the change
//! feed"): once a row with `change_seq = n` is visible, every smaller one
//! of that account is too, and "rows after the last published, advance"
//! never skips one. One mutex per account guards its mark together with
//! the sending, so no row is published twice, and catching up on one
//! account never waits for another's.
//!
//! NOTIFY is only a wake-up (PostgreSQL documents an 8000-byte payload
//! limit and one notification queue for the whole cluster, which a stalled
//! listener holds back): one per transaction, naming the accounts it
//! touched, or `*` when the names would not fit. The listener's connection
//! is its own, never from the pool, and after it (re)connects it compares
//! every account's head with its marks, so a notification missed while
//! disconnected costs latency, not a change.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Object;
use tokio::sync::{Mutex, broadcast, mpsc};
use tokio_postgres::AsyncMessage;

use store::{Change, MailboxId, StoreError, Uid};

use crate::ops::{QUEUE_KIND, QUEUE_RETRY_KIND, Tx};
use crate::{Shared, map_err};

/// `application_name` of the listener's connection.
pub const LISTENER_NAME: &str = "mailroom-listener";

/// The NOTIFY channel.
pub const CHANNEL: &str = "mailroom_changes";

/// Capacity of the broadcast channel (as the embedded store's feed).
pub const FEED_CAPACITY: usize = 4096;

/// Longest NOTIFY payload sent; PostgreSQL's limit is 8000 bytes
/// ("NOTIFY", Notes), with room to spare.
pub const MAX_PAYLOAD: usize = 7000;

/// The payload that means "look at every account".
const EVERYONE: &str = "*";

/// Rows published per catch-up query, so a backlog is read in chunks.
const CATCH_UP_CHUNK: i64 = 1024;

/// Wake-ups queued between the listener's connection and its catch-up;
/// beyond that they are merged into one look at every account.
const WAKE_QUEUE: usize = 1024;

/// How long the listener waits before reconnecting after its connection
/// failed (PostgreSQL restarting, the network).
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Change rows older than this (seconds) are deleted: publishing reads
/// new rows within a second; only a node disconnected for a day would
/// miss them, and it resynchronises from the mailboxes anyway.
pub const CHANGES_KEEP_SECS: i64 = 24 * 60 * 60;

/// How often a listener trims the change log.
const TRIM_INTERVAL: Duration = Duration::from_secs(600);

/// One account's last published `change_seq`.
type Mark = Arc<Mutex<i64>>;

pub struct Feed {
    marks: std::sync::Mutex<HashMap<String, Mark>>,
    tx: broadcast::Sender<Change>,
}

impl Feed {
    /// A feed that publishes rows after `heads` (the log's end at open:
    /// history is not replayed).
    pub fn new(heads: HashMap<String, i64>) -> Feed {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        let marks = heads
            .into_iter()
            .map(|(account, seq)| (account, Arc::new(Mutex::new(seq))))
            .collect();
        Feed {
            marks: std::sync::Mutex::new(marks),
            tx,
        }
    }

    /// The account's mark (0 for an account first seen now: all of its
    /// rows are new).
    fn mark(&self, account: &str) -> Mark {
        let mut marks = self
            .marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(marks.entry(account.to_string()).or_default())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Publishes the new rows of `accounts`, on a connection the caller
    /// holds; a failure is logged (the next wake-up catches up).
    pub async fn catch_up_on(&self, client: &Object, accounts: &[String]) {
        if let Err(e) = self.catch_up_with(client, accounts).await {
            tracing::warn!(error = %e, "change feed: catch-up failed");
        }
    }

    async fn catch_up_with(&self, client: &Object, accounts: &[String]) -> Result<(), StoreError> {
        let stmt = client
            .prepare_cached(
                "SELECT change_seq, mailbox_id, kind, uid, modseq FROM changes \
                 WHERE account = $1 AND change_seq > $2 ORDER BY change_seq LIMIT $3",
            )
            .await
            .map_err(map_err)?;
        for account in accounts {
            let mark = self.mark(account);
            let mut mark = mark.lock().await;
            let mut last = *mark;
            loop {
                let rows = client
                    .query(&stmt, &[account, &last, &CATCH_UP_CHUNK])
                    .await
                    .map_err(map_err)?;
                let full = rows.len() as i64 >= CATCH_UP_CHUNK;
                for r in &rows {
                    last = r.try_get(0).map_err(map_err)?;
                    match change(account, r)? {
                        // Err only means nobody is subscribed right now.
                        Some(c) => {
                            let _ = self.tx.send(c);
                        }
                        None => tracing::warn!(seq = last, "unknown change kind in change log"),
                    }
                }
                *mark = last;
                if !full {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Catches up every account whose head moved past its mark.
    async fn catch_up_all(&self, client: &Object) -> Result<(), StoreError> {
        let now = heads(client).await?;
        let mut behind = Vec::new();
        for (account, seq) in now {
            if *self.mark(&account).lock().await < seq {
                behind.push(account);
            }
        }
        self.catch_up_with(client, &behind).await
    }
}

fn change(account: &str, r: &tokio_postgres::Row) -> Result<Option<Change>, StoreError> {
    let account = account.to_string();
    let mailbox = MailboxId(
        r.try_get::<_, Option<i64>>(1)
            .map_err(map_err)?
            .unwrap_or(0),
    );
    let kind: String = r.try_get(2).map_err(map_err)?;
    let uid = r
        .try_get::<_, Option<i64>>(3)
        .map_err(map_err)?
        .and_then(|u| u32::try_from(u).ok())
        .map_or(Uid(0), Uid);
    let modseq = r
        .try_get::<_, Option<i64>>(4)
        .map_err(map_err)?
        .unwrap_or(0)
        .max(0) as u64;
    Ok(match kind.as_str() {
        "append" => Some(Change::Appended {
            account,
            mailbox,
            uid,
            modseq,
        }),
        "flags" => Some(Change::Flags {
            account,
            mailbox,
            uid,
            modseq,
        }),
        "expunge" => Some(Change::Expunged {
            account,
            mailbox,
            uid,
            modseq,
        }),
        "mailboxes" => Some(Change::Mailboxes { account }),
        QUEUE_KIND => Some(Change::Queue),
        QUEUE_RETRY_KIND => Some(Change::QueueRetry),
        "account_deleted" => Some(Change::AccountDeleted { account }),
        _ => None,
    })
}

/// Every account's current `change_seq`.
pub async fn heads(client: &Object) -> Result<HashMap<String, i64>, StoreError> {
    let rows = client
        .query("SELECT account, seq FROM change_heads", &[])
        .await
        .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(map_err)?,
                r.try_get(1).map_err(map_err)?,
            ))
        })
        .collect()
}

/// The transaction's one NOTIFY, sent at its COMMIT (PostgreSQL delivers
/// notifications only of committed transactions).
pub async fn notify(tx: &Tx<'_>, accounts: &[String]) -> Result<(), StoreError> {
    let mut payload = accounts.join("\n");
    if payload.len() > MAX_PAYLOAD {
        payload = EVERYONE.to_string();
    } else if payload.is_empty() {
        // Only the queue's account '': still a non-empty payload.
        payload = "\n".to_string();
    }
    tx.exec("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await?;
    Ok(())
}

/// The listener task of one handle: a dedicated connection LISTENing on
/// [`CHANNEL`], reconnecting for ever; ends when the store is dropped
/// (the task is aborted).
pub async fn listen(shared: Arc<Shared>, config: crate::tls::PgConnect) {
    let mut last_trim = tokio::time::Instant::now();
    loop {
        if let Err(e) = listen_once(&shared, &config, &mut last_trim).await {
            tracing::warn!(error = %e, "change feed listener: reconnecting");
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

async fn listen_once(
    shared: &Shared,
    connect: &crate::tls::PgConnect,
    last_trim: &mut tokio::time::Instant,
) -> Result<(), StoreError> {
    // Named apart from the pool's connections, so an operator (and a
    // test) can tell the listener in pg_stat_activity.
    let mut config = connect.config.clone();
    config.application_name(LISTENER_NAME);
    let (client, mut connection) = connect.connect(&config).await.map_err(map_err)?;
    let (wake, mut wakes) = mpsc::channel::<String>(WAKE_QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let overflowed = Arc::clone(&overflow);
    // Drives the connection and forwards notifications; ends when the
    // connection does (the client below dropped, or the server gone).
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Err(mpsc::error::TrySendError::Full(_)) =
                        wake.try_send(n.payload().to_string())
                    {
                        overflowed.store(true, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "change feed listener: connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(map_err)?;
        // What committed before LISTEN took effect (at start, or while
        // disconnected).
        let pooled = shared.pool.get().await.map_err(crate::pool_err)?;
        shared.feed.catch_up_all(&pooled).await?;
        drop(pooled);
        loop {
            let payload = tokio::select! {
                p = wakes.recv() => p,
                () = tokio::time::sleep(TRIM_INTERVAL) => Some(String::new()),
            };
            let Some(payload) = payload else {
                return Err(StoreError::Io("listener connection closed".into()));
            };
            if last_trim.elapsed() >= TRIM_INTERVAL {
                *last_trim = tokio::time::Instant::now();
                trim(&client).await;
            }
            if payload.is_empty() {
                continue;
            }
            // Every wake-up queued meanwhile, merged: one catch-up per
            // account, however many commits named it.
            let mut everyone = payload == EVERYONE;
            let mut accounts: Vec<String> = payload.split('\n').map(str::to_string).collect();
            while let Ok(more) = wakes.try_recv() {
                everyone |= more == EVERYONE;
                accounts.extend(more.split('\n').map(str::to_string));
            }
            accounts.sort_unstable();
            accounts.dedup();
            let pooled = shared.pool.get().await.map_err(crate::pool_err)?;
            if overflow.swap(false, Ordering::Relaxed) || everyone {
                shared.feed.catch_up_all(&pooled).await?;
            } else {
                shared.feed.catch_up_with(&pooled, &accounts).await?;
            }
        }
    }
    .await;
    drop(client);
    driver.abort();
    result
}

/// Deletes change rows older than [`CHANGES_KEEP_SECS`].
async fn trim(client: &tokio_postgres::Client) {
    let before = store::rules::now() - CHANGES_KEEP_SECS;
    if let Err(e) = client
        .execute("DELETE FROM changes WHERE created < $1", &[&before])
        .await
    {
        tracing::warn!(error = %e, "change feed: trimming the change log failed");
    }
}
