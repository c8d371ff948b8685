//! Conformance: the outbound queue (issue 12): claims with a lease,
//! deferral, completion, failure, retry and delete, and the feed's `Queue`
//! change that wakes the worker; and what issue 13 adds: the RFC 3461
//! parameters kept per row, and a delivery run settled in one
//! transaction.

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

pub async fn a_renewed_claim_holds_its_rows_past_the_first_lease(backend: &dyn Backend) {
    let store = backend.open();
    store
        .deliver(outbound(&["r1@y", "r2@y", "r3@y"]))
        .await
        .expect("deliver");
    let now = ops::now();
    let claimed = store.claim_queue(now, now + 60, 10).await.expect("claim");
    let ids: Vec<i64> = claimed.iter().map(|q| q.id).collect();
    assert_eq!(ids.len(), 3);
    // One row is settled meanwhile: renewing it does not bring it back.
    store.complete_queue(ids[0]).await.expect("complete");
    let renewed = store
        .renew_queue_claims(ids.clone(), now + 30, now + 150)
        .await
        .expect("renew");
    assert_eq!(renewed, 2);
    // Past the first lease the rows are still held...
    assert!(
        store
            .claim_queue(now + 90, now + 200, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    // ...and come back after the renewed one, as a dead sender's do.
    let again = store
        .claim_queue(now + 151, now + 300, 10)
        .await
        .expect("claim");
    assert_eq!(
        again.iter().map(|q| q.id).collect::<Vec<_>>(),
        ids[1..].to_vec()
    );
    // A row deferred is not renewed into `sending`.
    store
        .defer_queue(ids[1], now + 1000, "later".into())
        .await
        .expect("defer");
    assert_eq!(
        store
            .renew_queue_claims(vec![ids[1]], now + 151, now + 400)
            .await
            .expect("renew"),
        0
    );
    let rows = store.queue().await.expect("queue");
    let row = rows.iter().find(|q| q.id == ids[1]).expect("row");
    assert_eq!(row.status, "deferred");
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

/// Two remote recipients, the first with its own sender (SRS), NOTIFY and
/// ORCPT; ENVID, RET and SMTPUTF8 for the message.
pub fn with_dsn_params() -> Delivery {
    Delivery {
        local_raw: None,
        local: vec![],
        outbound: Some(Outbound {
            raw: b"Subject: out\r\n\r\nx\r\n".to_vec(),
            sender: "a@x".into(),
            recipients: vec!["r1@y".into(), "r2@y".into()],
            rcpt: vec![QueueRcpt {
                sender: Some("SRS0=abcd=AA=x=a@ours".into()),
                notify: Some("SUCCESS,DELAY".into()),
                orcpt: Some("rfc822;b+40ours".into()),
            }],
            envid: Some("QQ314159".into()),
            ret: Some("FULL".into()),
            smtputf8: true,
            notice: false,
        }),
        internal_date: 0,
    }
}

pub async fn dsn_parameters_are_kept_per_row_and_claimed_with_it(backend: &dyn Backend) {
    let store = backend.open();
    store.deliver(with_dsn_params()).await.expect("deliver");
    let now = ops::now();
    let rows = store.claim_queue(now, now + 60, 10).await.expect("claim");
    assert_eq!(rows.len(), 2);
    let (a, b) = (&rows[0], &rows[1]);
    assert_eq!(a.sender, "SRS0=abcd=AA=x=a@ours", "the row's own sender");
    assert_eq!(a.notify.as_deref(), Some("SUCCESS,DELAY"));
    assert_eq!(a.orcpt.as_deref(), Some("rfc822;b+40ours"));
    assert_eq!(b.sender, "a@x", "no entry: the message's sender");
    assert_eq!((b.notify.as_deref(), b.orcpt.as_deref()), (None, None));
    for r in &rows {
        assert_eq!(r.envid.as_deref(), Some("QQ314159"));
        assert_eq!(r.ret.as_deref(), Some("FULL"));
        assert!(r.smtputf8 && !r.warned && !r.notice);
    }
    assert_eq!(store.queue().await.expect("queue"), rows);
    // A postmaster notice keeps its mark.
    let mut notice = outbound(&["postmaster@y"]);
    if let Some(o) = notice.outbound.as_mut() {
        o.notice = true;
    }
    let id = store.deliver(notice).await.expect("deliver").queue_ids[0];
    let q = store.queue().await.expect("queue");
    let row = q.iter().find(|q| q.id == id).expect("the notice's row");
    assert!(row.notice && !row.smtputf8 && row.envid.is_none());
}

pub async fn settling_removes_rows_marks_warnings_and_delivers_dsns_together(
    backend: &dyn Backend,
) {
    let store = backend.open();
    let other = backend.open();
    let d = store.deliver(with_dsn_params()).await.expect("deliver");
    let (gone, warned) = (d.queue_ids[0], d.queue_ids[1]);
    let dsn = crate::conformance::local(
        &["a@x"],
        b"Subject: Delivery Status Notification\r\n\r\nx\r\n",
    );
    let done = store
        .settle_queue(Settle {
            remove: vec![gone],
            defer: vec![(warned, 4_000_000_000, "451 later".into())],
            warned: vec![warned],
            dsns: vec![dsn, outbound(&["postmaster@far"])],
        })
        .await
        .expect("settle");
    assert_eq!(done.len(), 2, "one Delivered per DSN");
    assert_eq!(done[0].entries.len(), 1);
    assert_eq!(done[1].queue_ids.len(), 1);
    // Read through another handle: it is all committed.
    let q = other.queue().await.expect("queue");
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].id, warned);
    assert!(q[0].warned);
    assert_eq!((q[0].status.as_str(), q[0].attempts), ("deferred", 1));
    assert_eq!(q[0].last_error.as_deref(), Some("451 later"));
    assert_eq!(q[1].id, done[1].queue_ids[0]);
    assert!(!q[1].warned);
    let inbox = crate::conformance::inbox(&*other, "a@x").await;
    assert_eq!(inbox.messages, 1, "the DSN");
}

pub async fn a_settle_that_fails_keeps_the_rows(backend: &dyn Backend) {
    let store = backend.open();
    let d = store.deliver(with_dsn_params()).await.expect("deliver");
    // A DSN that stores (to b@x) and one that cannot (local recipients,
    // no message): everything is rolled back with it, so the failure is
    // not lost and no half of the run is kept.
    let broken = Delivery {
        local_raw: None,
        local: vec![LocalTarget::inbox("a@x")],
        outbound: None,
        internal_date: 0,
    };
    let r = store
        .settle_queue(Settle {
            remove: d.queue_ids.clone(),
            warned: d.queue_ids.clone(),
            dsns: vec![crate::conformance::local(&["b@x"], b"dsn"), broken],
            ..Settle::default()
        })
        .await;
    assert!(r.is_err());
    let q = store.queue().await.expect("queue");
    assert_eq!(q.len(), 2);
    assert!(q.iter().all(|e| !e.warned));
    assert!(
        store
            .mailbox("b@x".into(), "INBOX".into())
            .await
            .expect("mailbox")
            .is_none_or(|m| m.messages == 0),
        "the first DSN is rolled back too"
    );
}

pub async fn deliver_all_stores_every_delivery_in_one_commit(backend: &dyn Backend) {
    let store = backend.open();
    let before = store.stats().commits;
    let done = store
        .deliver_all(vec![
            crate::conformance::local(&["b@x"], b"Subject: m\r\n\r\nx\r\n"),
            crate::conformance::local(&["a@x"], b"Subject: dsn\r\n\r\nx\r\n"),
        ])
        .await
        .expect("deliver");
    assert_eq!(done.len(), 2);
    assert!(store.stats().commits - before <= 1);
    for account in ["a@x", "b@x"] {
        assert_eq!(
            crate::conformance::inbox(&*store, account).await.messages,
            1
        );
    }
}
