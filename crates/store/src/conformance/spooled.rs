//! Conformance: bodies whose end comes from a spool file (issue 19) are
//! stored byte for byte, and ranged reads return exactly the range.

use std::io::Write;

use crate::conformance::{Backend, inbox, local};
use crate::*;

/// A body of `len` octets that no two chunks repeat.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// `data` in an unlinked temporary file, after some junk, as a spool
/// holds it.
pub fn spool(data: &[u8]) -> Spooled {
    let path = std::env::temp_dir().join(format!(
        "mailroom-conformance-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("spool file");
    std::fs::remove_file(&path).expect("unlink");
    f.write_all(b"junk").expect("write");
    f.write_all(data).expect("write");
    Spooled::new(f, 4, data.len() as u64)
}

pub async fn a_spooled_append_is_stored_whole_and_read_back_in_ranges(backend: &dyn Backend) {
    let store = backend.open();
    store
        .ensure_account("a@x.org".into())
        .await
        .expect("account");
    let mailbox = inbox(&*store, "a@x.org").await.id;
    let head = b"Subject: big\r\n\r\n".to_vec();
    let tail = pattern(3 * BODY_CHUNK + 123);
    let uid = store
        .append_spooled(
            mailbox,
            head.clone(),
            spool(&tail),
            vec![],
            1_700_000_000,
            Quota::default(),
        )
        .await
        .expect("append");
    let mut want = head;
    want.extend_from_slice(&tail);
    let msgs = store.messages(mailbox).await.expect("messages");
    assert_eq!((msgs[0].uid, msgs[0].size), (uid, want.len() as u64));
    let body = msgs[0].body;
    assert!(store.read_body(body).await.expect("body") == want);
    let len = want.len() as u64;
    for (offset, n) in [
        (0, BODY_CHUNK),
        (BODY_CHUNK as u64 - 5, 10),
        (7, 3 * BODY_CHUNK),
        (len - 7, 100),
    ] {
        let got = store.read_body_range(body, offset, n).await.expect("range");
        let end = (offset as usize + n).min(want.len());
        assert!(got == want[offset as usize..end], "range {offset}+{n}");
    }
    // Chunk by chunk, as RETR reads it: the whole body, nothing more.
    let mut joined = Vec::new();
    while (joined.len() as u64) < len {
        let got = store
            .read_body_range(body, joined.len() as u64, BODY_CHUNK)
            .await
            .expect("chunk");
        assert!(!got.is_empty());
        joined.extend_from_slice(&got);
    }
    assert!(joined == want);
    // Into a buffer that had other octets: it holds the range alone.
    let got = store
        .read_body_range_into(body, 7, 10, vec![9; 100])
        .await
        .expect("into");
    assert!(got == want[7..17]);
    let past = store
        .read_body_range(body, len + 5, 10)
        .await
        .expect("past");
    assert!(past.is_empty());
    assert!(matches!(
        store.read_body_range(BodyId(body.0 + 1000), 0, 10).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn a_spooled_delivery_ends_both_copies_with_the_tail(backend: &dyn Backend) {
    let store = backend.open();
    let tail = pattern(2 * BODY_CHUNK + 1);
    let mut d = local(
        &["a@x.org", "b@x.org"],
        b"Return-Path: <s@y.org>\r\nSubject: x\r\n",
    );
    d.outbound = Some(Outbound {
        raw: b"Subject: x\r\n".to_vec(),
        sender: "s@y.org".into(),
        recipients: vec!["r@remote.test".into()],
        ..Outbound::default()
    });
    // A second delivery (a DSN) in the same commit is whole.
    let dsn = local(&["s@x.org"], b"Subject: dsn\r\n\r\nok\r\n");
    let done = store
        .deliver_all_spooled(vec![d, dsn], spool(&tail))
        .await
        .expect("deliver");
    assert_eq!(done.len(), 2);
    let mut want_local = b"Return-Path: <s@y.org>\r\nSubject: x\r\n".to_vec();
    want_local.extend_from_slice(&tail);
    for account in ["a@x.org", "b@x.org"] {
        let msgs = store
            .messages(inbox(&*store, account).await.id)
            .await
            .expect("messages");
        assert_eq!(msgs[0].size, want_local.len() as u64);
        assert!(store.read_body(msgs[0].body).await.expect("body") == want_local);
    }
    let mut want_out = b"Subject: x\r\n".to_vec();
    want_out.extend_from_slice(&tail);
    let queue = store.queue().await.expect("queue");
    assert_eq!(queue.len(), 1);
    assert!(store.read_body(queue[0].body).await.expect("body") == want_out);
    let dsn_box = inbox(&*store, "s@x.org").await.id;
    let msgs = store.messages(dsn_box).await.expect("messages");
    assert_eq!(
        store.read_body(msgs[0].body).await.expect("body"),
        b"Subject: dsn\r\n\r\nok\r\n"
    );
}

pub async fn a_delivery_spooled_apart_gives_each_copy_its_own_tail(backend: &dyn Backend) {
    let store = backend.open();
    let relayed_tail = pattern(BODY_CHUNK + 7);
    // The local copy as IMAP shows it: another tail, longer (base64).
    let local_tail: Vec<u8> = pattern(BODY_CHUNK * 2 + 3).iter().map(|b| b | 1).collect();
    let head = b"Subject: x\r\n".to_vec();
    let with_outbound = |local_raw: &[u8]| {
        let mut d = local(&["a@x.org"], local_raw);
        d.outbound = Some(Outbound {
            raw: head.clone(),
            sender: "s@y.org".into(),
            recipients: vec!["r@remote.test".into()],
            ..Outbound::default()
        });
        d
    };
    // Same heads, different tails: two bodies; a DSN after it is whole.
    let dsn = local(&["s@x.org"], b"Subject: dsn\r\n\r\nok\r\n");
    let done = store
        .deliver_all_spooled_apart(
            vec![with_outbound(&head), dsn],
            Some(spool(&local_tail)),
            spool(&relayed_tail),
        )
        .await
        .expect("deliver");
    assert_eq!(done.len(), 2);
    // And a local copy held whole (no tail of its own).
    store
        .deliver_all_spooled_apart(
            vec![with_outbound(b"Subject: whole\r\n\r\nsmall\r\n")],
            None,
            spool(&relayed_tail),
        )
        .await
        .expect("deliver");
    let msgs = store
        .messages(inbox(&*store, "a@x.org").await.id)
        .await
        .expect("messages");
    assert_eq!(msgs.len(), 2);
    let mut want_local = head.clone();
    want_local.extend_from_slice(&local_tail);
    assert_eq!(msgs[0].size, want_local.len() as u64);
    assert!(store.read_body(msgs[0].body).await.expect("body") == want_local);
    assert_eq!(
        store.read_body(msgs[1].body).await.expect("body"),
        b"Subject: whole\r\n\r\nsmall\r\n"
    );
    let mut want_out = head.clone();
    want_out.extend_from_slice(&relayed_tail);
    let queue = store.queue().await.expect("queue");
    assert_eq!(queue.len(), 2);
    for q in &queue {
        assert!(store.read_body(q.body).await.expect("body") == want_out);
    }
    let msgs = store
        .messages(inbox(&*store, "s@x.org").await.id)
        .await
        .expect("messages");
    assert_eq!(
        store.read_body(msgs[0].body).await.expect("body"),
        b"Subject: dsn\r\n\r\nok\r\n"
    );
}
