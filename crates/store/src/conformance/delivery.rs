//! Conformance: deliveries (one body per delivery, UIDs, the outbound
//! part in the same transaction, body lifetime) and durability across
//! reopening.

use crate::conformance::{Backend, inbox, local};
use crate::*;

pub async fn deliver_to_three_accounts_stores_one_body(backend: &dyn Backend) {
    let store = backend.open();
    let raw = b"Subject: hi\r\n\r\nbody\r\n";
    let done = store
        .deliver(local(&["a@x.org", "B@x.org", "c@x.org"], raw))
        .await
        .expect("deliver");
    assert_eq!(done.entries.len(), 3);
    assert_eq!(done.entries[1].0, "b@x.org", "account names are canonical");
    let mut bodies = Vec::new();
    for account in ["a@x.org", "b@x.org", "c@x.org"] {
        let msgs = store
            .messages(inbox(&*store, account).await.id)
            .await
            .expect("msgs");
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].size, raw.len() as u64);
        bodies.push(msgs[0].body);
        // Each new account got its six mailboxes.
        assert_eq!(
            store.mailboxes(account.into()).await.expect("list").len(),
            6
        );
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(store.read_body(bodies[0]).await.expect("body"), raw);
}

pub async fn uids_strictly_ascending_never_reused(backend: &dyn Backend) {
    let store = backend.open();
    let mut uids = Vec::new();
    for i in 0..3 {
        let d = store
            .deliver(local(&["a@x"], format!("m{i}").as_bytes()))
            .await;
        uids.push(d.expect("deliver").entries[0].2);
    }
    assert_eq!(uids, vec![Uid(1), Uid(2), Uid(3)]);
    let mbox = inbox(&*store, "a@x").await.id;
    let gone = store
        .expunge(mbox, vec![Uid(3), Uid(2), Uid(9)])
        .await
        .expect("expunge");
    assert_eq!(gone, vec![Uid(2), Uid(3)]);
    let next = store
        .deliver(local(&["a@x"], b"m3"))
        .await
        .expect("deliver");
    assert_eq!(next.entries[0].2, Uid(4));
    drop(store);
    let store = backend.open();
    let next = store
        .deliver(local(&["a@x"], b"m4"))
        .await
        .expect("deliver");
    assert_eq!(next.entries[0].2, Uid(5));
    let uids: Vec<Uid> = store
        .messages(mbox)
        .await
        .expect("msgs")
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(uids, vec![Uid(1), Uid(4), Uid(5)]);
    assert_eq!(inbox(&*store, "a@x").await.uidnext, 6);
}

pub async fn reopen_keeps_everything(backend: &dyn Backend) {
    let (mbox, body) = {
        let store = backend.open();
        let d = store
            .deliver(local(&["a@x"], b"keep me"))
            .await
            .expect("deliver");
        let (_, mbox, uid) = d.entries[0].clone();
        store
            .set_flags(mbox, vec![uid], FlagOp::Add, vec!["\\Flagged".into()])
            .await
            .expect("flags");
        store
            .create_mailbox(
                "a@x".into(),
                "Projects/2024".into(),
                Some("\\Archive".into()),
            )
            .await
            .expect("create");
        store
            .set_subscribed("a@x".into(), "Junk".into(), false)
            .await
            .expect("unsub");
        let body = store.messages(mbox).await.expect("msgs")[0].body;
        // The last handle: closing it finishes every write.
        drop(store);
        (mbox, body)
    };
    let store = backend.open();
    let msgs = store.messages(mbox).await.expect("msgs");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].flags, vec!["\\Flagged".to_string()]);
    assert_eq!(store.read_body(body).await.expect("body"), b"keep me");
    let list = store.mailboxes("a@x".into()).await.expect("list");
    assert_eq!(list.len(), 7);
    assert_eq!(list[0].name, "INBOX");
    let junk = list.iter().find(|m| m.name == "Junk").expect("junk");
    assert!(!junk.subscribed);
    let projects = list
        .iter()
        .find(|m| m.name == "Projects/2024")
        .expect("projects");
    assert_eq!(projects.special_use.as_deref(), Some("\\Archive"));
}

pub async fn outbound_is_queued_in_same_transaction(backend: &dyn Backend) {
    let store = backend.open();
    let before = store.stats();
    let raw = b"Subject: both\r\n\r\nhello\r\n".to_vec();
    let d = store
        .deliver(Delivery {
            local_raw: Some(raw.clone()),
            local: vec![LocalTarget::inbox("a@x")],
            outbound: Some(Outbound {
                raw: raw.clone(),
                sender: "a@x".into(),
                recipients: vec!["r1@remote".into(), "r2@remote".into()],
                ..Default::default()
            }),
            internal_date: 5,
        })
        .await
        .expect("deliver");
    assert_eq!(store.stats().commits - before.commits, 1);
    assert_eq!(d.entries.len(), 1);
    assert_eq!(d.queue_ids.len(), 2);
    let q = store.queue().await.expect("queue");
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].recipient, "r1@remote");
    assert_eq!(q[0].status, "queued");
    assert_eq!(q[0].attempts, 0);
    assert_eq!(q[0].sender, "a@x");
    assert_eq!(store.read_body(q[1].body).await.expect("body"), raw);
    // The local entry and the queue share the identical body.
    assert_eq!(
        store.messages(d.entries[0].1).await.expect("msgs")[0].body,
        q[0].body
    );

    // Remote only, null reverse-path.
    let bounce = store
        .deliver(Delivery {
            local_raw: None,
            local: vec![],
            outbound: Some(Outbound {
                raw: b"bounce".to_vec(),
                sender: String::new(),
                recipients: vec!["r3@remote".into()],
                ..Default::default()
            }),
            internal_date: 5,
        })
        .await
        .expect("deliver");
    assert!(bounce.entries.is_empty());
    // A delivery that fails leaves nothing behind, neither part.
    let bad = store
        .deliver(Delivery {
            local_raw: None,
            local: vec![LocalTarget::inbox("c@x")],
            outbound: Some(Outbound {
                raw: b"x".to_vec(),
                sender: String::new(),
                recipients: vec!["r4@remote".into()],
                ..Default::default()
            }),
            internal_date: 5,
        })
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
    assert_eq!(store.queue().await.expect("queue").len(), 3);
}

pub async fn expunge_gcs_unreferenced_body(backend: &dyn Backend) {
    let store = backend.open();
    let d = store
        .deliver(local(&["a@x", "b@x"], b"shared"))
        .await
        .expect("deliver");
    let (_, a_inbox, a_uid) = d.entries[0].clone();
    let (_, b_inbox, b_uid) = d.entries[1].clone();
    let body = store.messages(a_inbox).await.expect("msgs")[0].body;
    let a_archive = store
        .mailbox("a@x".into(), "Archive".into())
        .await
        .expect("q")
        .expect("archive");
    let copied = store
        .copy(a_inbox, vec![a_uid], a_archive.id)
        .await
        .expect("copy");
    assert_eq!(copied, vec![(a_uid, Uid(1))]);

    store.expunge(a_inbox, vec![a_uid]).await.expect("expunge");
    store.expunge(b_inbox, vec![b_uid]).await.expect("expunge");
    assert_eq!(
        store.read_body(body).await.expect("still in Archive"),
        b"shared"
    );
    store
        .expunge(a_archive.id, vec![Uid(1)])
        .await
        .expect("expunge");
    assert!(matches!(
        store.read_body(body).await,
        Err(StoreError::NotFound(_))
    ));

    // Deleting an account frees its bodies too.
    store
        .deliver(local(&["a@x"], b"again"))
        .await
        .expect("deliver");
    store.delete_account("a@x".into()).await.expect("delete");
    assert!(
        store
            .mailboxes("a@x".into())
            .await
            .expect("list")
            .is_empty()
    );
}
