//! Group commit on PostgreSQL (batch.rs): deliveries waiting together
//! share one transaction, and one that fails does not fail the others.
//!
//! Deterministic without timing: a plain connection holds the account's
//! `change_heads` row lock, so the batcher's first batch waits on it; every
//! delivery sent meanwhile is queued, and the next batch takes them all.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use store::conformance::{Backend, inbox, local};
use store::{Delivered, LocalTarget, StoreError};

use crate::cluster;
use crate::tests::pg;

/// How many deliveries wait together.
const WAITING: usize = 20;

/// A plain connection in a transaction holding `account`'s lock.
async fn hold_lock(url: &str, account: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("raw connect");
    tokio::spawn(conn);
    client.batch_execute("BEGIN").await.expect("begin");
    client
        .query_one(
            "SELECT seq FROM change_heads WHERE account = $1 FOR UPDATE",
            &[&account],
        )
        .await
        .expect("lock the account");
    client
}

/// Polls every delivery once, which sends its job to the batcher, and
/// hands back the pending whole.
async fn send_all<F>(deliveries: Vec<F>) -> impl Future<Output = Vec<F::Output>>
where
    F: Future,
{
    let mut all = Box::pin(futures_util::future::join_all(deliveries));
    std::future::poll_fn(|cx| {
        // Pending: each job is queued and waits for its answer.
        let _ = all.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_waiting_together_share_one_commit() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let store = pg.open();
    store.ensure_account("u@x".into()).await.expect("account");
    let before = store.stats().commits;
    let holder = hold_lock(pg.url(), "u@x").await;
    let futures: Vec<_> = (0..WAITING)
        .map(|i| {
            let store = Arc::clone(&store);
            async move {
                let raw = format!("Subject: {i}\r\n\r\nbody\r\n");
                store.deliver(local(&["u@x"], raw.as_bytes())).await
            }
        })
        .collect();
    let pending = send_all(futures).await;
    holder.batch_execute("COMMIT").await.expect("release");
    let results = pending.await;
    let mut uids: Vec<u32> = results
        .into_iter()
        .map(|r| {
            let d: Delivered = r.expect("delivered");
            d.entries.first().expect("one entry").2.0
        })
        .collect();
    // One batch waited on the lock, the next took every other delivery.
    let commits = store.stats().commits - before;
    assert!(commits <= 2, "{WAITING} deliveries took {commits} commits");
    // Each got its own UID, in the order sent.
    assert_eq!(uids, (1..=WAITING as u32).collect::<Vec<_>>());
    uids.dedup();
    assert_eq!(uids.len(), WAITING);
    let mailbox = inbox(&*store, "u@x").await;
    assert_eq!(
        store.messages(mailbox.id).await.expect("list").len(),
        WAITING
    );
    // Another node (a fresh handle) reads every one of them.
    let other = pg.open();
    assert_eq!(
        other.messages(mailbox.id).await.expect("list").len(),
        WAITING
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_delivery_in_a_batch_fails_alone() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let store = pg.open();
    store.ensure_account("u@x".into()).await.expect("account");
    let holder = hold_lock(pg.url(), "u@x").await;
    let futures: Vec<_> = (0..WAITING)
        .map(|i| {
            let store = Arc::clone(&store);
            async move {
                let mut d = local(&["u@x"], format!("Subject: {i}\r\n\r\nx\r\n").as_bytes());
                if i == WAITING / 2 {
                    // PostgreSQL refuses a NUL in text: the statement fails
                    // and aborts the transaction, not only a Rust check.
                    d.local = vec![LocalTarget {
                        mailbox: "bad\0box".into(),
                        ..LocalTarget::inbox("u@x")
                    }];
                }
                store.deliver(d).await
            }
        })
        .collect();
    let pending = send_all(futures).await;
    holder.batch_execute("COMMIT").await.expect("release");
    let results = pending.await;
    for (i, r) in results.iter().enumerate() {
        if i == WAITING / 2 {
            assert!(r.is_err(), "the bad delivery must fail: {r:?}");
        } else {
            assert!(
                r.is_ok(),
                "delivery {i} must not fail with the bad one: {r:?}"
            );
        }
    }
    // The failed one left nothing: no entry and no UID taken.
    let mailbox = inbox(&*store, "u@x").await;
    let uids: Vec<u32> = store
        .messages(mailbox.id)
        .await
        .expect("list")
        .iter()
        .map(|m| m.uid.0)
        .collect();
    assert_eq!(uids, (1..WAITING as u32).collect::<Vec<_>>());
    // And the store still works afterwards.
    store
        .deliver(local(&["u@x"], b"Subject: after\r\n\r\nx\r\n"))
        .await
        .expect("deliver after");
    // A batch whose only job fails answers with its error.
    let err = store
        .deliver(store::Delivery {
            local: Vec::new(),
            ..local(&[], b"x")
        })
        .await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
}

/// One batch of every kind of delivery (many.rs's steps for all at once):
/// a reply joins its parent's thread delivered in the same batch, a
/// missing folder means INBOX, a new account is made, a remote copy is
/// queued, and the feed shows each mailbox's UIDs in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_of_mixed_deliveries_keeps_every_rule() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let store = pg.open();
    store.ensure_account("u@x".into()).await.expect("account");
    let mut feed = store.subscribe();
    let before = store.stats().commits;
    let holder = hold_lock(pg.url(), "u@x").await;
    let parent = local(&["u@x"], b"Message-ID: <p@x>\r\nSubject: p\r\n\r\n1\r\n");
    let reply = local(
        &["u@x", "new@x"],
        b"Message-ID: <r@x>\r\nIn-Reply-To: <p@x>\r\n\r\n2\r\n",
    );
    let mut missing = local(&["u@x"], b"Subject: nope\r\n\r\n3\r\n");
    missing.local = vec![LocalTarget {
        mailbox: "Nope".into(),
        ..LocalTarget::inbox("u@x")
    }];
    let mut both = local(&["u@x"], b"Subject: both\r\n\r\n4\r\n");
    both.outbound = Some(store::Outbound {
        raw: b"Subject: both\r\n\r\n4\r\n".to_vec(),
        sender: "u@x".into(),
        recipients: vec!["far@remote.example".into()],
        rcpt: Vec::new(),
        envid: None,
        ret: None,
        smtputf8: false,
        notice: false,
    });
    let deliveries = vec![
        local(&["u@x"], b"Subject: first\r\n\r\n0\r\n"),
        parent,
        reply,
        missing,
        both,
    ];
    let futures: Vec<_> = deliveries
        .into_iter()
        .map(|d| {
            let store = Arc::clone(&store);
            async move { store.deliver(d).await }
        })
        .collect();
    let pending = send_all(futures).await;
    holder.batch_execute("COMMIT").await.expect("release");
    let results: Vec<Delivered> = pending
        .await
        .into_iter()
        .map(|r| r.expect("delivered"))
        .collect();
    let commits = store.stats().commits - before;
    assert!(commits <= 2, "{commits} commits");

    let mailbox = inbox(&*store, "u@x").await;
    let metas = store.messages(mailbox.id).await.expect("list");
    assert_eq!(
        metas.iter().map(|m| m.uid.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // Every answer names the entry it made, in INBOX (also "Nope").
    for (d, uid) in results.iter().zip(1u32..) {
        assert_eq!(
            d.entries.first().map(|e| (e.1, e.2.0)),
            Some((mailbox.id, uid))
        );
    }
    let body_of = |uid: u32| metas.iter().find(|m| m.uid.0 == uid).map(|m| m.body);
    let (p, r) = (body_of(2).expect("parent"), body_of(3).expect("reply"));
    let threads = store
        .thread_ids("u@x".into(), vec![p, r])
        .await
        .expect("threads");
    assert_eq!(
        threads.first(),
        threads.get(1),
        "the reply joins its parent"
    );
    // The new account was made, with the reply in its INBOX.
    let theirs = inbox(&*store, "new@x").await;
    assert_eq!(store.messages(theirs.id).await.expect("list").len(), 1);
    assert_eq!(results.get(2).map(|d| d.entries.len()), Some(2));
    // The remote copy is queued once.
    let queue = store.queue().await.expect("queue");
    assert_eq!(queue.len(), 1);
    assert_eq!(results.get(4).map(|d| d.queue_ids.len()), Some(1));
    // The feed: u@x's INBOX in UID order.
    let mut uids = Vec::new();
    while uids.len() < 5 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), feed.recv()).await {
            Ok(Ok(store::Change::Appended {
                mailbox: m, uid, ..
            })) if m == mailbox.id => uids.push(uid.0),
            Ok(Ok(_)) => {}
            other => panic!("feed: {other:?} after {uids:?}"),
        }
    }
    assert_eq!(uids, vec![1, 2, 3, 4, 5]);
}
