//! METADATA entries (RFC 5464): server and mailbox entries, NIL deletes,
//! the entry limit, and entries following their mailbox.

use super::Backend;
use crate::StoreError;

pub async fn metadata_is_kept_per_server_and_mailbox_and_nil_deletes(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    store.ensure_account("b@x".into()).await.expect("account");
    let work = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await
        .expect("create");
    store
        .set_metadata(
            "a@x".into(),
            None,
            vec![
                ("/shared/comment".into(), Some(b"server".to_vec())),
                ("/private/Vendor/x".into(), Some(b"bin\0ary".to_vec())),
            ],
            10,
        )
        .await
        .expect("set");
    store
        .set_metadata(
            "a@x".into(),
            Some(work.id),
            vec![("/private/comment".into(), Some(b"mine".to_vec()))],
            10,
        )
        .await
        .expect("set");
    // Names are case-insensitive (RFC 5464 3.2): kept in lower case.
    assert_eq!(
        store.metadata("a@x".into(), None).await.expect("get"),
        vec![
            ("/private/vendor/x".to_string(), b"bin\0ary".to_vec()),
            ("/shared/comment".to_string(), b"server".to_vec()),
        ]
    );
    assert_eq!(
        store
            .metadata("a@x".into(), Some(work.id))
            .await
            .expect("get"),
        vec![("/private/comment".to_string(), b"mine".to_vec())]
    );
    // Another account has its own, and cannot name a's mailbox.
    assert!(
        store
            .metadata("b@x".into(), None)
            .await
            .expect("get")
            .is_empty()
    );
    assert!(matches!(
        store.metadata("b@x".into(), Some(work.id)).await,
        Err(StoreError::NotFound(_))
    ));
    // A second handle (another process or node) reads them; NIL deletes.
    let other = backend.open();
    other
        .set_metadata(
            "a@x".into(),
            None,
            vec![
                ("/SHARED/comment".into(), None),
                ("/shared/never".into(), None),
            ],
            10,
        )
        .await
        .expect("delete");
    assert_eq!(
        store.metadata("a@x".into(), None).await.expect("get"),
        vec![("/private/vendor/x".to_string(), b"bin\0ary".to_vec())]
    );
}

pub async fn metadata_past_the_limit_writes_nothing(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    store
        .set_metadata(
            "a@x".into(),
            None,
            vec![("/private/a".into(), Some(b"1".to_vec()))],
            2,
        )
        .await
        .expect("set");
    let r = store
        .set_metadata(
            "a@x".into(),
            None,
            vec![
                ("/private/a".into(), Some(b"changed".to_vec())),
                ("/private/b".into(), Some(b"2".to_vec())),
                ("/private/c".into(), Some(b"3".to_vec())),
            ],
            2,
        )
        .await;
    assert!(matches!(r, Err(StoreError::Limit(_))), "{r:?}");
    assert_eq!(
        store.metadata("a@x".into(), None).await.expect("get"),
        vec![("/private/a".to_string(), b"1".to_vec())]
    );
    // Replacing and deleting within the limit is fine.
    store
        .set_metadata(
            "a@x".into(),
            None,
            vec![
                ("/private/a".into(), None),
                ("/private/b".into(), Some(b"2".to_vec())),
                ("/private/c".into(), Some(b"3".to_vec())),
            ],
            2,
        )
        .await
        .expect("set");
}

pub async fn metadata_follows_rename_and_goes_with_delete(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let m = store
        .create_mailbox("a@x".into(), "Old".into(), None)
        .await
        .expect("create");
    let entry = vec![("/shared/comment".to_string(), Some(b"c".to_vec()))];
    store
        .set_metadata("a@x".into(), Some(m.id), entry.clone(), 10)
        .await
        .expect("set");
    store
        .rename_mailbox("a@x".into(), "Old".into(), "New".into())
        .await
        .expect("rename");
    let renamed = store
        .mailbox("a@x".into(), "New".into())
        .await
        .expect("mailbox")
        .expect("New");
    assert_eq!(
        store
            .metadata("a@x".into(), Some(renamed.id))
            .await
            .expect("get")
            .len(),
        1
    );
    store
        .delete_mailbox("a@x".into(), "New".into())
        .await
        .expect("delete");
    // A mailbox made again under the name starts without entries.
    let again = store
        .create_mailbox("a@x".into(), "New".into(), None)
        .await
        .expect("create");
    assert!(
        store
            .metadata("a@x".into(), Some(again.id))
            .await
            .expect("get")
            .is_empty()
    );
    // The account's entries go with the account.
    store
        .set_metadata("a@x".into(), None, entry, 10)
        .await
        .expect("set");
    store.delete_account("a@x".into()).await.expect("delete");
    store.ensure_account("a@x".into()).await.expect("account");
    assert!(
        store
            .metadata("a@x".into(), None)
            .await
            .expect("get")
            .is_empty()
    );
}
