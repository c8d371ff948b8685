//! IMAP FETCH's per-body cache (issue 18): one entry per body, shared by
//! every entry of it, replaced by a later write, gone with the body.

use super::{Backend, inbox, local};
use crate::BodyId;

pub async fn body_meta_is_kept_per_body_replaced_and_goes_with_it(backend: &dyn Backend) {
    let store = backend.open();
    store
        .deliver(local(&["a@x", "b@x"], b"Subject: one\r\n\r\n1\r\n"))
        .await
        .expect("one");
    store
        .deliver(local(&["a@x"], b"Subject: two\r\n\r\n2\r\n"))
        .await
        .expect("two");
    let inbox_a = inbox(&*store, "a@x").await;
    let msgs = store.messages(inbox_a.id).await.expect("messages");
    let (one, two) = (msgs[0].body, msgs[1].body);
    let missing = BodyId(one.0.max(two.0) + 1000);
    // Nothing is cached at delivery.
    assert_eq!(
        store.body_meta(vec![one, two]).await.expect("read"),
        vec![None, None]
    );
    // A body that does not exist is skipped, not an error, and does not
    // stop the others of its batch.
    store
        .set_body_meta(vec![(missing, b"x".to_vec()), (one, b"\x01first".to_vec())])
        .await
        .expect("write");
    // Another handle reads it, in the order asked, for b's entry too.
    let other = backend.open();
    assert_eq!(
        other
            .body_meta(vec![two, one, missing])
            .await
            .expect("read"),
        vec![None, Some(b"\x01first".to_vec()), None]
    );
    let inbox_b = inbox(&*other, "b@x").await;
    let b_body = other.messages(inbox_b.id).await.expect("messages")[0].body;
    assert_eq!(b_body, one, "the body is shared");
    // A later write (a newer format) replaces it.
    store
        .set_body_meta(vec![(one, b"\x02second".to_vec())])
        .await
        .expect("rewrite");
    assert_eq!(
        store.body_meta(vec![one]).await.expect("read"),
        vec![Some(b"\x02second".to_vec())]
    );
    // It stays while an entry has the body, and goes with the body.
    let uid_a = msgs[0].uid;
    store
        .expunge(inbox_a.id, vec![uid_a])
        .await
        .expect("expunge a");
    assert!(store.body_meta(vec![one]).await.expect("read")[0].is_some());
    let uid_b = other.messages(inbox_b.id).await.expect("messages")[0].uid;
    store
        .expunge(inbox_b.id, vec![uid_b])
        .await
        .expect("expunge b");
    assert_eq!(store.body_meta(vec![one]).await.expect("read"), vec![None]);
    // And a store reopened keeps the rest.
    store
        .set_body_meta(vec![(two, b"\x01kept".to_vec())])
        .await
        .expect("write");
    drop((store, other));
    assert_eq!(
        backend.open().body_meta(vec![two]).await.expect("read"),
        vec![Some(b"\x01kept".to_vec())]
    );
}
