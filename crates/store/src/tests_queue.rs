//! SQLite-specific test of the outbound queue: the body rows left after
//! completion and deletion. The behaviour is in `conformance/queue.rs`.

use crate::conformance::queue::outbound;
use crate::tests::{count, open, raw_db, tempdir};
use crate::*;

#[tokio::test]
async fn complete_defer_fail_retry_and_delete() {
    let dir = tempdir();
    let store = open(dir.path());
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
    assert_eq!(count(&raw_db(dir.path()), "SELECT count(*) FROM bodies"), 1);
}
