//! `Store::import` (issue 20): an import reruns without duplicates.

use super::Backend;

pub async fn an_import_with_a_known_digest_appends_nothing(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let inbox = store
        .mailbox("a@x".into(), "INBOX".into())
        .await
        .expect("mailbox")
        .expect("inbox");
    let raw = b"Subject: once\r\n\r\nx\r\n".to_vec();
    let first = store
        .import(inbox.id, raw.clone(), vec!["\\Seen".into()], 7, [1; 32])
        .await
        .expect("import");
    assert!(first.is_some());
    let again = store
        .import(inbox.id, raw.clone(), vec![], 7, [1; 32])
        .await
        .expect("import");
    assert_eq!(again, None);
    // Another digest, or the same one into another mailbox, appends.
    let other = store
        .create_mailbox("a@x".into(), "Other".into(), None)
        .await
        .expect("create");
    assert!(
        store
            .import(other.id, raw.clone(), vec![], 7, [1; 32])
            .await
            .expect("import")
            .is_some()
    );
    assert!(
        store
            .import(inbox.id, raw, vec![], 7, [2; 32])
            .await
            .expect("import")
            .is_some()
    );
    let msgs = store.messages(inbox.id).await.expect("messages");
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].flags, ["\\Seen"]);
    assert_eq!(msgs[0].internal_date, 7);
}
