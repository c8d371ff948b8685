//! Conformance: mailboxes (UIDVALIDITY, rename of INBOX, RFC 9051 6.3.6)
//! and flags with their mod-sequences (RFC 7162).

use crate::conformance::{Backend, inbox, local};
use crate::*;

pub async fn recreated_mailbox_gets_new_uidvalidity(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let work = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await
        .expect("create");
    store
        .append(work.id, b"x".to_vec(), vec![], 0)
        .await
        .expect("append");
    let dup = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))));
    store
        .delete_mailbox("a@x".into(), "Work".into())
        .await
        .expect("delete");
    let again = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await
        .expect("recreate");
    assert!(again.uidvalidity > work.uidvalidity);
    assert_ne!(again.id, work.id);
    assert_eq!(again.messages, 0);
    let all: Vec<u32> = store
        .mailboxes("a@x".into())
        .await
        .expect("list")
        .iter()
        .map(|m| m.uidvalidity)
        .collect();
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "uidvalidity unique per mailbox");
    let inbox_del = store.delete_mailbox("a@x".into(), "INBOX".into()).await;
    assert!(matches!(inbox_del, Err(StoreError::Invalid(_))));
}

pub async fn rename_inbox_moves_messages(backend: &dyn Backend) {
    let store = backend.open();
    for body in [&b"one"[..], b"two"] {
        store.deliver(local(&["a@x"], body)).await.expect("deliver");
    }
    let before = inbox(&*store, "a@x").await;
    store
        .rename_mailbox("a@x".into(), "inbox".into(), "Old".into())
        .await
        .expect("rename");
    let after = inbox(&*store, "a@x").await;
    assert_eq!(after.id, before.id, "INBOX stays");
    assert_eq!(after.messages, 0);
    let old = store
        .mailbox("a@x".into(), "Old".into())
        .await
        .expect("q")
        .expect("Old");
    assert_eq!(old.messages, 2);
    assert_ne!(old.uidvalidity, before.uidvalidity);
    let next = store
        .deliver(local(&["a@x"], b"three"))
        .await
        .expect("deliver");
    assert_eq!(next.entries[0].2, Uid(3), "INBOX UIDs are not reused");

    // An ordinary rename takes the inferiors along.
    store
        .create_mailbox("a@x".into(), "P".into(), None)
        .await
        .expect("create");
    store
        .create_mailbox("a@x".into(), "P/c".into(), None)
        .await
        .expect("create");
    store
        .rename_mailbox("a@x".into(), "P".into(), "Q".into())
        .await
        .expect("rename");
    assert!(
        store
            .mailbox("a@x".into(), "Q/c".into())
            .await
            .expect("q")
            .is_some()
    );
    assert!(
        store
            .mailbox("a@x".into(), "P".into())
            .await
            .expect("q")
            .is_none()
    );
    let clash = store
        .rename_mailbox("a@x".into(), "Q".into(), "Sent".into())
        .await;
    assert!(matches!(clash, Err(StoreError::AlreadyExists(_))));
}

pub async fn flags_roundtrip_and_modseq_increases(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    store
        .ensure_account("a@x".into())
        .await
        .expect("idempotent");
    let mbox = inbox(&*store, "a@x").await.id;
    let uid = store
        .append(
            mbox,
            b"m".to_vec(),
            vec!["\\seen".into(), "\\Recent".into()],
            42,
        )
        .await
        .expect("append");
    let m0 = store.messages(mbox).await.expect("msgs").remove(0);
    assert_eq!(m0.flags, vec!["\\Seen".to_string()]);
    assert_eq!(m0.internal_date, 42);
    assert_eq!(inbox(&*store, "a@x").await.unseen, 0);

    let add = vec!["\\Flagged".to_string(), "$Label1".to_string()];
    let changed = store
        .set_flags(mbox, vec![uid], FlagOp::Add, add)
        .await
        .expect("add");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].flags, vec!["\\Seen", "\\Flagged", "$Label1"]);
    assert!(changed[0].modseq > m0.modseq);

    let same = vec!["\\flagged".to_string()];
    let none = store
        .set_flags(mbox, vec![uid], FlagOp::Add, same)
        .await
        .expect("noop");
    assert!(none.is_empty(), "no change, no new modseq");

    let rm = vec!["\\Seen".to_string()];
    let changed2 = store
        .set_flags(mbox, vec![uid], FlagOp::Remove, rm)
        .await
        .expect("rm");
    assert!(changed2[0].modseq > changed[0].modseq);
    assert_eq!(inbox(&*store, "a@x").await.unseen, 1);

    let changed3 = store
        .set_flags(
            mbox,
            vec![uid, Uid(77)],
            FlagOp::Replace,
            vec!["\\Deleted".into()],
        )
        .await
        .expect("replace");
    assert_eq!(changed3.len(), 1);
    let stored = store.messages(mbox).await.expect("msgs").remove(0);
    assert_eq!(stored.flags, vec!["\\Deleted".to_string()]);
    assert_eq!(stored.modseq, changed3[0].modseq);
    assert_eq!(inbox(&*store, "a@x").await.highestmodseq, stored.modseq);

    let bad = store
        .set_flags(mbox, vec![uid], FlagOp::Add, vec!["\\Bogus".into()])
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
    let bad = store
        .set_flags(mbox, vec![uid], FlagOp::Add, vec!["two words".into()])
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
}
