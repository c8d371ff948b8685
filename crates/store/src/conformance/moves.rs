//! Conformance: [`Store::move_messages`] (RFC 6851 MOVE as one
//! transaction), [`Store::messages_range`] and [`Store::read_bodies`].

use std::time::Duration;

use tokio::time::timeout;

use crate::conformance::{Backend, inbox, local};
use crate::*;

/// An account with `n` messages in INBOX and its Archive mailbox.
pub async fn setup(store: &dyn Store, n: usize) -> (MailboxId, MailboxId) {
    for i in 0..n {
        store
            .deliver(local(
                &["a@x"],
                format!("Subject: {i}\r\n\r\nm{i}\r\n").as_bytes(),
            ))
            .await
            .expect("deliver");
    }
    let archive = store
        .mailbox("a@x".into(), "Archive".into())
        .await
        .expect("query")
        .expect("Archive exists");
    (inbox(store, "a@x").await.id, archive.id)
}

pub async fn move_shares_bodies_and_leaves_tombstones(backend: &dyn Backend) {
    let store = backend.open();
    let (inbox_id, archive) = setup(&*store, 3).await;
    store
        .set_flags(inbox_id, vec![Uid(2)], FlagOp::Add, vec!["\\Seen".into()])
        .await
        .expect("flags");
    let before = store.messages(inbox_id).await.expect("msgs");

    // Uid(9) does not exist and is skipped; the order given does not matter.
    let pairs = store
        .move_messages(inbox_id, vec![Uid(3), Uid(9), Uid(2)], archive)
        .await
        .expect("move");
    assert_eq!(pairs, vec![(Uid(2), Uid(1)), (Uid(3), Uid(2))]);

    let left = store.messages(inbox_id).await.expect("msgs");
    assert_eq!(left.iter().map(|m| m.uid).collect::<Vec<_>>(), [Uid(1)]);
    let moved = store.messages(archive).await.expect("msgs");
    assert_eq!(moved.len(), 2);
    // Same bodies, flags and dates: nothing was copied but the entry.
    assert_eq!(moved[0].body, before[1].body);
    assert_eq!(moved[0].flags, vec!["\\Seen".to_string()]);
    assert_eq!(moved[1].body, before[2].body);
    assert_eq!(moved[1].internal_date, before[2].internal_date);
    // UIDs of the source are never reused.
    let again = store
        .append(inbox_id, b"new".to_vec(), vec![], 0)
        .await
        .expect("append");
    assert_eq!(again, Uid(4));
}

pub async fn move_reports_append_and_expunge_on_the_feed(backend: &dyn Backend) {
    let store = backend.open();
    let (inbox_id, archive) = setup(&*store, 1).await;
    let mut feed = store.subscribe();
    let before = store.stats();
    store
        .move_messages(inbox_id, vec![Uid(1)], archive)
        .await
        .expect("move");
    assert_eq!(store.stats().commits - before.commits, 1, "one transaction");
    let mut got = Vec::new();
    for _ in 0..2 {
        let c = timeout(Duration::from_secs(1), feed.recv())
            .await
            .expect("in time");
        got.push(c.expect("recv"));
    }
    assert!(
        matches!(&got[0], Change::Appended { mailbox, uid: Uid(1), .. } if *mailbox == archive)
    );
    assert!(
        matches!(&got[1], Change::Expunged { mailbox, uid: Uid(1), .. } if *mailbox == inbox_id)
    );
}

pub async fn move_survives_reopen(backend: &dyn Backend) {
    let (inbox_id, archive) = {
        let store = backend.open();
        let ids = setup(&*store, 2).await;
        store
            .move_messages(ids.0, vec![Uid(1), Uid(2)], ids.1)
            .await
            .expect("move");
        drop(store);
        ids
    };
    let store = backend.open();
    assert!(store.messages(inbox_id).await.expect("msgs").is_empty());
    assert_eq!(store.messages(archive).await.expect("msgs").len(), 2);
}

pub async fn move_to_a_missing_mailbox_is_not_found(backend: &dyn Backend) {
    let store = backend.open();
    let (inbox_id, _) = setup(&*store, 1).await;
    let err = store
        .move_messages(inbox_id, vec![Uid(1)], MailboxId(999_999))
        .await
        .expect_err("no such mailbox");
    assert!(matches!(err, StoreError::NotFound(_)));
    assert_eq!(store.messages(inbox_id).await.expect("msgs").len(), 1);
}

pub async fn messages_range_reads_only_the_range(backend: &dyn Backend) {
    let store = backend.open();
    let (inbox_id, _) = setup(&*store, 5).await;
    store
        .expunge(inbox_id, vec![Uid(3)])
        .await
        .expect("expunge");
    let got = store
        .messages_range(inbox_id, Uid(2), Uid(4))
        .await
        .expect("range");
    assert_eq!(
        got.iter().map(|m| m.uid).collect::<Vec<_>>(),
        [Uid(2), Uid(4)]
    );
    assert!(matches!(
        store
            .messages_range(MailboxId(999_999), Uid(1), Uid(2))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn read_bodies_reads_many_at_once_and_marks_missing_ones(backend: &dyn Backend) {
    let store = backend.open();
    let mut ids = Vec::new();
    for raw in [&b"one"[..], b"two", b"three"] {
        let d = store.deliver(local(&["a@x"], raw)).await.expect("deliver");
        let (_, inbox, uid) = d.entries[0].clone();
        let metas = store.messages(inbox).await.expect("msgs");
        ids.push(metas.iter().find(|m| m.uid == uid).expect("meta").body);
    }
    ids.insert(1, BodyId(999_999));
    let got = store.read_bodies(ids).await.expect("read");
    assert_eq!(
        got,
        vec![
            Some(b"one".to_vec()),
            None,
            Some(b"two".to_vec()),
            Some(b"three".to_vec())
        ]
    );
}
