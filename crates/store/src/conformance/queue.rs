//! Conformance: the outbound queue (issue 12): claims with a lease,
//! deferral, completion, failure, retry and delete, and the feed's `Queue`
//! change that wakes the worker.

use crate::conformance::Backend;
use crate::*;

/// A delivery to remote recipients only.
pub fn outbound(to: &[&str]) -> Delivery {
    Delivery {
        local_raw: None,
        local: vec![],
        outbound: Some(Outbound {
            raw: b"Subject: out\r\n\r\nx\r\n".to_vec(),
            sender: "a@x".into(),
            recipients: to.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        internal_date: 0,
    }
}

pub async fn a_claim_leases_rows_and_an_expired_lease_is_claimed_again(backend: &dyn Backend) {
    let store = backend.open();
    store
        .deliver(outbound(&["r1@y", "r2@y"]))
        .await
        .expect("deliver");
    let now = ops::now();
    let claimed = store.claim_queue(now, now + 60, 10).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|q| q.status == "sending"));
    // Leased: another claim (another process) gets nothing meanwhile.
    assert!(
        store
            .claim_queue(now, now + 60, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    // The claimer died: after the lease, the rows are due again.
    let again = store
        .claim_queue(now + 61, now + 120, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 2);
}

pub async fn claims_of_a_stopped_sender_are_released_at_start(backend: &dyn Backend) {
    let store = backend.open();
    store.deliver(outbound(&["r@y"])).await.expect("deliver");
    let now = ops::now();
    assert_eq!(
        store
            .claim_queue(now, now + 900, 10)
            .await
            .expect("claim")
            .len(),
        1
    );
    assert_eq!(store.release_queue_claims().await.expect("release"), 1);
    assert_eq!(
        store
            .claim_queue(ops::now(), now + 900, 10)
            .await
            .expect("claim")
            .len(),
        1
    );
}

pub async fn complete_defer_fail_retry_and_delete(backend: &dyn Backend) {
    let store = backend.open();
    store
        .deliver(outbound(&["r1@y", "r2@y", "r3@y", "r4@y"]))
        .await
        .expect("deliver");
    let now = ops::now();
    let rows = store.claim_queue(now, now + 60, 10).await.expect("claim");
    let ids: Vec<i64> = rows.iter().map(|q| q.id).collect();
    store.complete_queue(ids[0]).await.expect("complete");
    store
        .defer_queue(ids[1], now + 300, "451 try later".into())
        .await
        .expect("defer");
    store
        .fail_queue(ids[2], "550 no such user".into())
        .await
        .expect("fail");
    store.delete_queue(ids[3]).await.expect("delete");
    let q = store.queue().await.expect("queue");
    assert_eq!(q.len(), 2);
    assert_eq!((q[0].status.as_str(), q[0].attempts), ("deferred", 1));
    assert_eq!(q[0].last_error.as_deref(), Some("451 try later"));
    assert_eq!(q[1].status, "failed");
    // The deferred row is not due yet; retry makes everything due now.
    assert!(
        store
            .claim_queue(now, now + 60, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(store.retry_queue(None).await.expect("retry"), 2);
    assert_eq!(
        store
            .claim_queue(ops::now(), now + 60, 10)
            .await
            .expect("claim")
            .len(),
        2
    );
    assert!(matches!(
        store.delete_queue(ids[3]).await,
        Err(StoreError::NotFound(_))
    ));
    // The completed and deleted rows' body is still held by the others.
    let left = store.queue().await.expect("queue");
    let body = left.first().expect("rows left").body;
    assert!(store.read_body(body).await.is_ok());
}

pub async fn queue_changes_reach_the_feed(backend: &dyn Backend) {
    let store = backend.open();
    let mut feed = store.subscribe();
    store.deliver(outbound(&["r@y"])).await.expect("deliver");
    let deadline = std::time::Duration::from_secs(10);
    loop {
        let c = tokio::time::timeout(deadline, feed.recv())
            .await
            .expect("a change in time")
            .expect("feed");
        if matches!(c, Change::Queue) {
            break;
        }
    }
    // An operator's retry is its own kind: the worker forgets down
    // destinations on it, not on every new message.
    store.retry_queue(None).await.expect("retry");
    loop {
        let c = tokio::time::timeout(deadline, feed.recv())
            .await
            .expect("a change in time")
            .expect("feed");
        assert_ne!(c, Change::Queue, "retry published as a plain queue change");
        if c == Change::QueueRetry {
            break;
        }
    }
}
