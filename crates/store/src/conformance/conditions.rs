//! Conformance: writes with a condition checked in their own transaction
//! (RFC 7162 3.1.3's UNCHANGEDSINCE, RFC 9208 5.3's quota on APPEND and
//! COPY), so a concurrent write can never slip between check and write.

use std::sync::Arc;

use crate::conformance::{Backend, inbox};
use crate::*;

pub async fn unchanged_since_leaves_newer_entries_alone(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let mbox = inbox(&*store, "a@x").await.id;
    let u1 = store
        .append(mbox, b"one".to_vec(), vec![], 1)
        .await
        .expect("append");
    let u2 = store
        .append(mbox, b"two".to_vec(), vec![], 1)
        .await
        .expect("append");
    let seen = store.messages(mbox).await.expect("msgs");
    let limit = seen.iter().map(|m| m.modseq).max().expect("two entries");
    // Another session changes the second entry after the client's view.
    store
        .set_flags(mbox, vec![u2], FlagOp::Add, vec!["$Other".into()])
        .await
        .expect("flags");
    let r = store
        .set_flags_unchanged_since(
            mbox,
            vec![u1, u2, Uid(99)],
            FlagOp::Add,
            vec!["\\Flagged".into()],
            limit,
        )
        .await
        .expect("conditional");
    assert_eq!(r.modified, vec![u2]);
    assert_eq!(r.changed.len(), 1);
    assert_eq!(r.changed[0].uid, u1);
    assert!(r.changed[0].modseq > limit);
    let now = store.messages(mbox).await.expect("msgs");
    assert_eq!(now[0].flags, vec!["\\Flagged".to_string()]);
    assert_eq!(now[1].flags, vec!["$Other".to_string()]);
    // An entry at exactly the limit passes (RFC 7162 3.1.3: "greater").
    let at = now[0].modseq;
    let r = store
        .set_flags_unchanged_since(mbox, vec![u1], FlagOp::Add, vec!["\\Seen".into()], at)
        .await
        .expect("conditional");
    assert!(r.modified.is_empty());
    assert_eq!(r.changed.len(), 1);
}

pub async fn append_within_refuses_past_the_limit_and_writes_nothing(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let mbox = inbox(&*store, "a@x").await.id;
    let quota = Quota {
        storage: 10,
        messages: 3,
    };
    store
        .append_within(mbox, b"123456".to_vec(), vec![], 1, quota)
        .await
        .expect("within");
    let over = store
        .append_within(mbox, b"12345".to_vec(), vec![], 1, quota)
        .await;
    assert_eq!(over, Err(StoreError::QuotaExceeded));
    // Exactly at the limit is within it.
    store
        .append_within(mbox, b"1234".to_vec(), vec![], 1, quota)
        .await
        .expect("at the limit");
    let usage = store.usage("a@x".into()).await.expect("usage");
    assert_eq!(
        usage,
        Usage {
            bytes: 10,
            messages: 2
        }
    );
    let messages_only = Quota {
        storage: 0,
        messages: 2,
    };
    let over = store
        .append_within(mbox, b"x".to_vec(), vec![], 1, messages_only)
        .await;
    assert_eq!(over, Err(StoreError::QuotaExceeded));
    assert_eq!(inbox(&*store, "a@x").await.messages, 2);
    // Unlimited is unlimited.
    store
        .append_within(mbox, b"x".to_vec(), vec![], 1, Quota::default())
        .await
        .expect("unlimited");
}

pub async fn concurrent_appends_never_pass_the_quota_together(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let mbox = inbox(&*store, "a@x").await.id;
    let quota = Quota {
        storage: 0,
        messages: 5,
    };
    let mut tasks = Vec::new();
    for i in 0..12u8 {
        // Half on a second handle: another process or node.
        let s: Arc<dyn Store> = if i % 2 == 0 {
            store.clone()
        } else {
            backend.open()
        };
        tasks.push(tokio::spawn(async move {
            s.append_within(mbox, vec![b'a' + i], vec![], 1, quota)
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::QuotaExceeded) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(inbox(&*store, "a@x").await.messages, 5);
}

pub async fn copy_within_copies_all_or_nothing(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let from = inbox(&*store, "a@x").await.id;
    let to = store
        .create_mailbox("a@x".into(), "Keep".into(), None)
        .await
        .expect("create");
    let mut uids = Vec::new();
    for body in [b"aaaa".to_vec(), b"bbbb".to_vec(), b"cccc".to_vec()] {
        uids.push(store.append(from, body, vec![], 1).await.expect("append"));
    }
    // 12 octets used; copying all three needs 24.
    let tight = Quota {
        storage: 20,
        messages: 0,
    };
    let r = store.copy_within(from, uids.clone(), to.id, tight).await;
    assert_eq!(r, Err(StoreError::QuotaExceeded));
    assert!(store.messages(to.id).await.expect("msgs").is_empty());
    // Two of them fit exactly; a UID that does not exist counts nothing.
    let pairs = store
        .copy_within(from, vec![uids[0], uids[1], Uid(99)], to.id, tight)
        .await
        .expect("copy");
    assert_eq!(pairs.len(), 2);
    assert_eq!(store.usage("a@x".into()).await.expect("usage").bytes, 20);
}

pub async fn trimmed_tombstones_make_older_changes_say_so(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let mbox = inbox(&*store, "a@x").await.id;
    let mut uids = Vec::new();
    for body in [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()] {
        uids.push(store.append(mbox, body, vec![], 1).await.expect("append"));
    }
    let before = inbox(&*store, "a@x").await.highestmodseq;
    store.expunge(mbox, vec![uids[0]]).await.expect("expunge");
    let after_first = inbox(&*store, "a@x").await.highestmodseq;
    // Tombstones younger than the cut stay.
    let kept = store
        .trim_tombstones(crate::rules::now() - 3600)
        .await
        .expect("trim");
    assert_eq!(kept, 0);
    let c = store.changes_since(mbox, before).await.expect("changes");
    assert_eq!(c.vanished, vec![uids[0]]);
    assert!(!c.trimmed);
    // A cut in the future takes them all.
    let n = store
        .trim_tombstones(crate::rules::now() + 10)
        .await
        .expect("trim");
    assert_eq!(n, 1);
    let c = store.changes_since(mbox, before).await.expect("changes");
    assert!(c.trimmed, "the tombstone {before} needed is gone: {c:?}");
    assert!(c.vanished.is_empty());
    // From the trimmed point on, nothing is missing.
    let c = store
        .changes_since(mbox, after_first)
        .await
        .expect("changes");
    assert!(!c.trimmed);
    store.expunge(mbox, vec![uids[1]]).await.expect("expunge");
    let c = store
        .changes_since(mbox, after_first)
        .await
        .expect("changes");
    assert!(!c.trimmed);
    assert_eq!(c.vanished, vec![uids[1]]);
    // A full listing never needs tombstones.
    assert!(!store.changes_since(mbox, 0).await.expect("all").trimmed);
    // A second handle (another process or node) sees the same.
    let other = backend.open();
    assert!(
        other
            .changes_since(mbox, before)
            .await
            .expect("changes")
            .trimmed
    );
}
