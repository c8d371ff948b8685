//! `Store::append_many` (MULTIAPPEND, RFC 3502: all or none) and
//! `Store::save_dates` (SAVEDATE, RFC 8514).

use super::{Backend, inbox};
use crate::{NewMessage, Quota, Store, StoreError, Uid};

fn message(subject: &str, flags: &[&str]) -> NewMessage {
    NewMessage {
        raw: format!("Subject: {subject}\r\n\r\nx\r\n").into_bytes(),
        flags: flags.iter().map(|f| f.to_string()).collect(),
        internal_date: 7,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub async fn append_many_stores_every_message_in_order(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let inbox = inbox(&*store, "a@x").await;
    let uids = store
        .append_many(
            inbox.id,
            vec![
                message("one", &["\\Seen"]),
                message("two", &[]),
                message("three", &["$Work"]),
            ],
            Quota::default(),
        )
        .await
        .expect("append_many");
    assert_eq!(uids, [Uid(1), Uid(2), Uid(3)]);
    let msgs = store.messages(inbox.id).await.expect("messages");
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].flags, ["\\Seen"]);
    assert_eq!(msgs[2].flags, ["$Work"]);
    let body = store.read_body(msgs[1].body).await.expect("body");
    assert_eq!(body, b"Subject: two\r\n\r\nx\r\n");
}

pub async fn a_failure_in_the_middle_of_append_many_stores_nothing(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let inbox = inbox(&*store, "a@x").await;
    // The second message is refused (an unknown system flag): the first,
    // already written in the transaction, must go too.
    let r = store
        .append_many(
            inbox.id,
            vec![
                message("one", &[]),
                message("two", &["\\Bogus"]),
                message("three", &[]),
            ],
            Quota::default(),
        )
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    assert!(store.messages(inbox.id).await.expect("messages").is_empty());
    assert_eq!(store.usage("a@x".into()).await.expect("usage").messages, 0);
    // Nor were UIDs used up.
    let uid = store
        .append(inbox.id, b"Subject: after\r\n\r\n".to_vec(), vec![], 7)
        .await
        .expect("append");
    assert_eq!(uid, Uid(1));
}

pub async fn save_dates_are_when_each_entry_was_made(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let inbox = inbox(&*store, "a@x").await;
    let before = now();
    let uids = store
        .append_many(
            inbox.id,
            vec![message("one", &[]), message("two", &[])],
            Quota::default(),
        )
        .await
        .expect("append_many");
    let other = store
        .create_mailbox("a@x".into(), "Other".into(), None)
        .await
        .expect("create");
    let copied = store
        .copy(inbox.id, vec![uids[1]], other.id)
        .await
        .expect("copy");
    let after = now();
    let dates = store
        .save_dates(inbox.id, Uid(1), Uid(u32::MAX))
        .await
        .expect("save dates");
    assert_eq!(dates.len(), 2);
    for (i, (uid, date)) in dates.iter().enumerate() {
        assert_eq!(*uid, uids[i]);
        // Not the INTERNALDATE (7): when it was saved.
        let d = date.expect("a save date");
        assert!(
            before - 1 <= d && d <= after + 1,
            "{d} not in {before}..{after}"
        );
    }
    let copy_dates = store
        .save_dates(other.id, Uid(1), Uid(u32::MAX))
        .await
        .expect("save dates");
    assert_eq!(copy_dates.len(), 1);
    assert_eq!(copy_dates[0].0, copied[0].1);
    assert!(copy_dates[0].1.is_some_and(|d| d >= before - 1));
    // A range reads only the range.
    let one = store
        .save_dates(inbox.id, Uid(2), Uid(2))
        .await
        .expect("save dates");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].0, Uid(2));
}

pub async fn append_many_within_a_quota_stores_all_or_none(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let inbox = inbox(&*store, "a@x").await;
    let quota = Quota {
        storage: 0,
        messages: 3,
    };
    // Two fit; three more would pass the limit, so none of them is kept.
    store
        .append_many(
            inbox.id,
            vec![message("one", &[]), message("two", &[])],
            quota,
        )
        .await
        .expect("within");
    let r = store
        .append_many(
            inbox.id,
            vec![message("a", &[]), message("b", &[]), message("c", &[])],
            quota,
        )
        .await;
    assert_eq!(r, Err(StoreError::QuotaExceeded));
    assert_eq!(inbox_count(&*store).await, 2);
    store
        .append_many(inbox.id, vec![message("three", &[])], quota)
        .await
        .expect("exactly at the limit");
    assert_eq!(inbox_count(&*store).await, 3);
}

async fn inbox_count(store: &dyn Store) -> u32 {
    inbox(store, "a@x").await.messages
}
