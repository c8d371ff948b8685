//! Tests of what issue 13 adds to the queue: the RFC 3461 parameters kept
//! per row, and settling a run (rows removed, DSNs delivered) in one
//! transaction.

use crate::tests::{count, local, open, raw_db, tempdir};
use crate::*;

fn with_dsn_params() -> Delivery {
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

#[tokio::test]
async fn dsn_parameters_are_kept_per_row_and_claimed_with_it() {
    let dir = tempdir();
    let store = open(dir.path());
    store.deliver(with_dsn_params()).await.expect("deliver");
    let now = ops::now();
    let rows = store.claim_queue(now, now + 60, 10).await.expect("claim");
    assert_eq!(rows.len(), 2);
    let (a, b) = (&rows[0], &rows[1]);
    assert_eq!(a.sender, "SRS0=abcd=AA=x=a@ours", "the row's own sender");
    assert_eq!(a.notify.as_deref(), Some("SUCCESS,DELAY"));
    assert_eq!(a.orcpt.as_deref(), Some("rfc822;b+40ours"));
    assert_eq!(b.sender, "a@x", "no entry: the message's sender");
    assert_eq!(b.notify, None);
    for r in &rows {
        assert_eq!(r.envid.as_deref(), Some("QQ314159"));
        assert_eq!(r.ret.as_deref(), Some("FULL"));
        assert!(r.smtputf8 && !r.warned && !r.notice);
    }
    assert_eq!(store.queue().await.expect("queue"), rows);
}

#[tokio::test]
async fn settling_removes_rows_marks_warnings_and_delivers_dsns_together() {
    let dir = tempdir();
    let store = open(dir.path());
    let d = store.deliver(with_dsn_params()).await.expect("deliver");
    let (gone, warned) = (d.queue_ids[0], d.queue_ids[1]);
    let dsn = local(
        &["a@x"],
        b"Subject: Delivery Status Notification\r\n\r\nx\r\n",
    );
    store
        .settle_queue(Settle {
            remove: vec![gone],
            defer: vec![(warned, 4_000_000_000, "451 later".into())],
            warned: vec![warned],
            dsns: vec![dsn],
        })
        .await
        .expect("settle");
    let q = store.queue().await.expect("queue");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].id, warned);
    assert!(q[0].warned);
    assert_eq!((q[0].status.as_str(), q[0].attempts), ("deferred", 1));
    assert_eq!(q[0].last_error.as_deref(), Some("451 later"));
    let db = raw_db(dir.path());
    assert_eq!(count(&db, "SELECT count(*) FROM entries"), 1, "the DSN");
}

#[tokio::test]
async fn a_settle_that_fails_keeps_the_rows() {
    let dir = tempdir();
    let store = open(dir.path());
    let d = store.deliver(with_dsn_params()).await.expect("deliver");
    // A DSN that cannot be stored (local recipients, no message): the
    // removal is rolled back with it, so the failure is not lost.
    let broken = Delivery {
        local_raw: None,
        local: vec![LocalTarget::inbox("a@x")],
        outbound: None,
        internal_date: 0,
    };
    let r = store
        .settle_queue(Settle {
            remove: d.queue_ids.clone(),
            dsns: vec![broken],
            ..Settle::default()
        })
        .await;
    assert!(r.is_err());
    assert_eq!(store.queue().await.expect("queue").len(), 2);
}

#[tokio::test]
async fn deliver_all_stores_a_message_and_its_dsn_in_one_commit() {
    let dir = tempdir();
    let store = open(dir.path());
    let before = store.stats().commits;
    store
        .deliver_all(vec![
            local(&["b@x"], b"Subject: m\r\n\r\nx\r\n"),
            local(&["a@x"], b"Subject: dsn\r\n\r\nx\r\n"),
        ])
        .await
        .expect("deliver");
    let db = raw_db(dir.path());
    assert_eq!(count(&db, "SELECT count(*) FROM entries"), 2);
    assert!(store.stats().commits - before <= 1);
}
