//! Conformance: [`Store::mailbox_index`], the compact listing SELECT
//! opens a mailbox from (issue 18): the same entries and flags as
//! [`Store::messages`], each distinct flag set once, from one snapshot;
//! and [`Store::mailbox_uncounted`], the mailbox without its counts.

use crate::conformance::{Backend, inbox, local};
use crate::*;

fn message(i: usize, flags: &[&str]) -> NewMessage {
    NewMessage {
        raw: format!("Subject: {i}\r\n\r\nx\r\n").into_bytes(),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        internal_date: 1_700_000_000,
    }
}

pub async fn mailbox_index_has_every_entry_and_its_flags_once_per_set(backend: &dyn Backend) {
    let store = backend.open();
    for i in 0..6 {
        store
            .deliver(local(
                &["a@x"],
                format!("Subject: {i}\r\n\r\n{i}\r\n").as_bytes(),
            ))
            .await
            .expect("deliver");
    }
    let inbox_id = inbox(&*store, "a@x").await.id;
    store
        .set_flags(
            inbox_id,
            vec![Uid(2), Uid(4), Uid(5)],
            FlagOp::Add,
            vec!["\\Seen".into()],
        )
        .await
        .expect("seen");
    store
        .set_flags(inbox_id, vec![Uid(5)], FlagOp::Add, vec!["$Work".into()])
        .await
        .expect("keyword");
    store
        .expunge(inbox_id, vec![Uid(3)])
        .await
        .expect("expunge");

    // Another handle, as another process or node.
    let other = backend.open();
    let index = other.mailbox_index(inbox_id).await.expect("index");
    let metas = other.messages(inbox_id).await.expect("messages");
    let listed: Vec<(Uid, &[String])> = index
        .entries
        .iter()
        .map(|&(uid, set)| (uid, index.flags(set)))
        .collect();
    let expected: Vec<(Uid, &[String])> =
        metas.iter().map(|m| (m.uid, m.flags.as_slice())).collect();
    assert_eq!(listed, expected);
    assert_eq!(
        index.uids().map(|u| u.0).collect::<Vec<_>>(),
        [1, 2, 4, 5, 6]
    );
    // None, \Seen, and \Seen with $Work: three sets for five entries.
    assert_eq!(index.flag_sets.len(), 3, "{:?}", index.flag_sets);
    let info = inbox(&*other, "a@x").await;
    assert_eq!(index.highestmodseq, info.highestmodseq);
    // The same mailbox without its counts ("INBOX" in any case).
    let uncounted = other
        .mailbox_uncounted("a@x".into(), "inbox".into())
        .await
        .expect("query")
        .expect("INBOX exists");
    assert_eq!((info.messages, info.unseen), (5, 2));
    assert_eq!(
        uncounted,
        MailboxInfo {
            messages: 0,
            unseen: 0,
            ..info
        }
    );
    assert!(
        other
            .mailbox_uncounted("a@x".into(), "Nowhere".into())
            .await
            .expect("query")
            .is_none()
    );

    // An empty mailbox has an empty index; a gone one is NotFound.
    let archive = other
        .mailbox("a@x".into(), "Archive".into())
        .await
        .expect("query")
        .expect("Archive exists");
    let empty = other.mailbox_index(archive.id).await.expect("empty");
    assert!(empty.entries.is_empty() && empty.flag_sets.is_empty());
    assert!(matches!(
        other.mailbox_index(MailboxId(999_999)).await,
        Err(StoreError::NotFound(_))
    ));
}

/// More entries than one read trip of a backend brings (PostgreSQL reads
/// the index through a portal, 8192 rows at a time).
pub async fn mailbox_index_of_a_big_mailbox_is_whole_and_ascending(backend: &dyn Backend) {
    const N: usize = 8200;
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let inbox_id = inbox(&*store, "a@x").await.id;
    let batch: Vec<NewMessage> = (0..N)
        .map(|i| message(i, if i % 3 == 0 { &["\\Seen"] } else { &[] }))
        .collect();
    store
        .append_many(inbox_id, batch, Quota::default())
        .await
        .expect("append_many");
    let index = store.mailbox_index(inbox_id).await.expect("index");
    assert_eq!(index.entries.len(), N);
    assert!(index.uids().map(|u| u.0).eq(1..=N as u32));
    assert_eq!(index.flag_sets.len(), 2);
    let seen = index
        .entries
        .iter()
        .filter(|&&(_, set)| !index.flags(set).is_empty())
        .count();
    assert_eq!(seen, N.div_ceil(3));
}
