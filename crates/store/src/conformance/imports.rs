//! `Store::import` (issue 20): an import reruns without duplicates; and
//! `Store::import_spooled` (issue 19), its big-message form.

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

/// `Store::import_spooled` (issue 19): a big import's tail comes from its
/// spool file; it is stored byte for byte with the flags and date given,
/// counts towards the account's usage like any import, and its digest
/// dedups it exactly as a whole import's does.
pub async fn a_spooled_import_is_stored_whole_and_dedups_by_digest(backend: &dyn Backend) {
    use super::spooled::{pattern, spool};
    use crate::BODY_CHUNK;
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let inbox = store
        .mailbox("a@x".into(), "INBOX".into())
        .await
        .expect("mailbox")
        .expect("inbox");
    let head = b"Subject: big import\r\n\r\n".to_vec();
    let tail = pattern(2 * BODY_CHUNK + 77);
    let mut want = head.clone();
    want.extend_from_slice(&tail);
    let flags = vec!["\\Seen".to_string(), "$Forwarded".to_string()];
    let uid = store
        .import_spooled(
            inbox.id,
            head.clone(),
            spool(&tail),
            flags.clone(),
            1_600_000_000,
            [3; 32],
        )
        .await
        .expect("import")
        .expect("a new message");
    let msgs = store.messages(inbox.id).await.expect("messages");
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].uid, msgs[0].size), (uid, want.len() as u64));
    assert_eq!(msgs[0].internal_date, 1_600_000_000);
    let mut got_flags = msgs[0].flags.clone();
    got_flags.sort();
    assert_eq!(got_flags, ["$Forwarded", "\\Seen"]);
    let body = msgs[0].body;
    assert!(store.read_body(body).await.expect("body") == want);
    for (offset, n) in [(0, 10), (BODY_CHUNK as u64 - 3, 9), (10, 3 * BODY_CHUNK)] {
        let got = store.read_body_range(body, offset, n).await.expect("range");
        let end = (offset as usize + n).min(want.len());
        assert!(got == want[offset as usize..end], "range {offset}+{n}");
    }
    let usage = store.usage("a@x".into()).await.expect("usage");
    assert_eq!(usage.bytes, want.len() as u64);

    // Again, spooled or whole: the digest is known, nothing is appended.
    let again = store
        .import_spooled(inbox.id, head, spool(&tail), vec![], 1, [3; 32])
        .await
        .expect("import");
    assert_eq!(again, None);
    let whole = store
        .import(inbox.id, want.clone(), vec![], 1, [3; 32])
        .await
        .expect("import");
    assert_eq!(whole, None);
    assert_eq!(store.messages(inbox.id).await.expect("messages").len(), 1);
    // A digest first seen whole dedups a spooled import too.
    store
        .import(inbox.id, b"Subject: s\r\n\r\n".to_vec(), vec![], 1, [4; 32])
        .await
        .expect("import")
        .expect("new");
    let dup = store
        .import_spooled(
            inbox.id,
            b"Subject: s\r\n\r\n".to_vec(),
            spool(b""),
            vec![],
            1,
            [4; 32],
        )
        .await
        .expect("import");
    assert_eq!(dup, None);
    assert_eq!(store.messages(inbox.id).await.expect("messages").len(), 2);
}
