//! URLAUTH mailbox access keys (RFC 4467 7): made once, reset, gone with
//! the mailbox.

use super::{Backend, inbox};
use crate::StoreError;

pub async fn urlauth_keys_are_made_once_reset_and_go_with_the_mailbox(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    store.ensure_account("b@x".into()).await.expect("account");
    let inbox_a = inbox(&*store, "a@x").await;
    assert_eq!(
        store
            .urlauth_key("a@x".into(), inbox_a.id)
            .await
            .expect("key"),
        None
    );
    let k = store
        .ensure_urlauth_key("a@x".into(), inbox_a.id, vec![1; 32])
        .await
        .expect("make");
    assert_eq!(k, vec![1; 32]);
    // A second make keeps the first key; another handle reads it.
    let again = backend
        .open()
        .ensure_urlauth_key("a@x".into(), inbox_a.id, vec![2; 32])
        .await
        .expect("make");
    assert_eq!(again, vec![1; 32]);
    // Another account cannot make one for a's mailbox.
    assert!(matches!(
        store
            .ensure_urlauth_key("b@x".into(), inbox_a.id, vec![3; 32])
            .await,
        Err(StoreError::NotFound(_))
    ));
    store
        .reset_urlauth_keys("a@x".into(), Some(inbox_a.id))
        .await
        .expect("reset");
    assert_eq!(
        store
            .urlauth_key("a@x".into(), inbox_a.id)
            .await
            .expect("key"),
        None
    );
    let work = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await
        .expect("create");
    store
        .ensure_urlauth_key("a@x".into(), work.id, vec![4; 32])
        .await
        .expect("make");
    store
        .ensure_urlauth_key("a@x".into(), inbox_a.id, vec![5; 32])
        .await
        .expect("make");
    store
        .delete_mailbox("a@x".into(), "Work".into())
        .await
        .expect("delete");
    assert_eq!(
        store.urlauth_key("a@x".into(), work.id).await.expect("key"),
        None
    );
    // RESETKEY without a mailbox: every key of the account.
    store
        .reset_urlauth_keys("a@x".into(), None)
        .await
        .expect("reset");
    assert_eq!(
        store
            .urlauth_key("a@x".into(), inbox_a.id)
            .await
            .expect("key"),
        None
    );
}
