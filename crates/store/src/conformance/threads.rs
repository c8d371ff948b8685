//! THREADID (RFC 8474 5.2): threads assigned at delivery from References
//! and In-Reply-To, per account, stable across COPY, MOVE and RENAME.

use super::{Backend, inbox, local};

pub async fn replies_join_their_thread_and_copies_keep_it(backend: &dyn Backend) {
    let store = backend.open();
    store
        .deliver(local(
            &["a@x", "b@x"],
            b"Message-ID: <root@x>\r\nSubject: s\r\n\r\n1\r\n",
        ))
        .await
        .expect("root");
    store
        .deliver(local(&["a@x"], b"Message-ID: <other@x>\r\n\r\n2\r\n"))
        .await
        .expect("other");
    let inbox_a = inbox(&*store, "a@x").await;
    let uid = store
        .append(
            inbox_a.id,
            b"Message-ID: <reply@x>\r\nIn-Reply-To: <ROOT@x>\r\n\r\n3\r\n".to_vec(),
            vec![],
            7,
        )
        .await
        .expect("append");
    // A reply to the reply, through References only, from another handle.
    backend
        .open()
        .deliver(local(
            &["a@x"],
            b"References: <root@x> <reply@x>\r\n\r\n4\r\n",
        ))
        .await
        .expect("deeper");
    let msgs = store.messages(inbox_a.id).await.expect("messages");
    let bodies: Vec<_> = msgs.iter().map(|m| m.body).collect();
    let t = store
        .thread_ids("a@x".into(), bodies.clone())
        .await
        .expect("threads");
    assert_eq!(t.len(), 4);
    assert_eq!(t[0], t[2], "{t:?}");
    assert_eq!(t[0], t[3], "{t:?}");
    assert_ne!(t[0], t[1], "{t:?}");
    // The thread is numbered by its first message's body.
    assert_eq!(t[0], bodies[0].0 as u64);
    // COPY and MOVE keep it; so does RENAME.
    let work = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await
        .expect("create");
    store
        .copy(inbox_a.id, vec![uid], work.id)
        .await
        .expect("copy");
    store
        .rename_mailbox("a@x".into(), "Work".into(), "Archive/Work".into())
        .await
        .expect("rename");
    let moved = store
        .mailbox("a@x".into(), "Archive/Work".into())
        .await
        .expect("mailbox")
        .expect("renamed");
    let copied = store.messages(moved.id).await.expect("messages");
    let tc = store
        .thread_ids("a@x".into(), copied.iter().map(|m| m.body).collect())
        .await
        .expect("threads");
    assert_eq!(tc, [t[0]]);
    // Threads are per account: b's copy of the root is b's own thread.
    let inbox_b = inbox(&*store, "b@x").await;
    let b_msgs = store.messages(inbox_b.id).await.expect("messages");
    let tb = store
        .thread_ids("b@x".into(), b_msgs.iter().map(|m| m.body).collect())
        .await
        .expect("threads");
    assert_eq!(tb, [t[0]]);
    store
        .deliver(local(&["b@x"], b"In-Reply-To: <reply@x>\r\n\r\n5\r\n"))
        .await
        .expect("b reply");
    let b_msgs = store.messages(inbox_b.id).await.expect("messages");
    let tb = store
        .thread_ids("b@x".into(), b_msgs.iter().map(|m| m.body).collect())
        .await
        .expect("threads");
    // b never had <reply@x>: a thread of its own there.
    assert_ne!(tb[1], tb[0], "{tb:?}");
}
