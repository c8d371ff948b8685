//! Conformance: the change feed, within one handle and from another
//! handle on the same data (another process, another node).

use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::timeout;

use crate::conformance::{Backend, inbox, local};
use crate::*;

pub async fn change_feed_reports_append_flags_expunge(backend: &dyn Backend) {
    let store = backend.open();
    store.ensure_account("a@x".into()).await.expect("account");
    let mbox = inbox(&*store, "a@x").await.id;
    let mut feed = store.subscribe();
    let uid = store
        .append(mbox, b"m".to_vec(), vec![], 0)
        .await
        .expect("append");
    store
        .set_flags(mbox, vec![uid], FlagOp::Add, vec!["\\Seen".into()])
        .await
        .expect("flags");
    store.expunge(mbox, vec![uid]).await.expect("expunge");
    let mut got = Vec::new();
    for _ in 0..3 {
        let c = timeout(Duration::from_secs(1), feed.recv())
            .await
            .expect("in time");
        got.push(c.expect("recv"));
    }
    let account = "a@x".to_string();
    assert!(
        matches!(&got[0], Change::Appended { account: a, mailbox, uid: u, .. }
        if *a == account && *mailbox == mbox && *u == uid)
    );
    assert!(matches!(&got[1], Change::Flags { uid: u, .. } if *u == uid));
    assert!(matches!(&got[2], Change::Expunged { uid: u, .. } if *u == uid));
    // The watcher polls too; it must not publish the same rows again.
    tokio::time::sleep(FEED_POLL_INTERVAL * 3).await;
    assert_eq!(feed.try_recv(), Err(TryRecvError::Empty));

    store
        .create_mailbox("a@x".into(), "New".into(), None)
        .await
        .expect("create");
    let c = timeout(Duration::from_secs(1), feed.recv())
        .await
        .expect("in time");
    assert_eq!(c.expect("recv"), Change::Mailboxes { account });
}

pub async fn deleting_an_account_publishes_account_deleted_to_other_stores(backend: &dyn Backend) {
    let server = backend.open();
    server.ensure_account("a@x".into()).await.expect("account");
    let mut feed = server.subscribe();
    // Another process (the CLI) opens the same directory and deletes it.
    let cli = backend.open();
    cli.delete_account("a@x".into()).await.expect("delete");
    drop(cli);
    let mut seen = Vec::new();
    while !seen.contains(&Change::AccountDeleted {
        account: "a@x".into(),
    }) {
        let c = timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("the watcher publishes the other store's commit in time");
        seen.push(c.expect("recv"));
    }
    assert!(seen.contains(&Change::Mailboxes {
        account: "a@x".into()
    }));
}

pub async fn a_second_handle_sees_writes_and_their_changes(backend: &dyn Backend) {
    let server = backend.open();
    let cli = backend.open();
    let mut server_feed = server.subscribe();
    let mut cli_feed = cli.subscribe();

    let done = cli
        .deliver(local(&["a@x"], b"from the cli"))
        .await
        .expect("deliver");
    let (_, mbox, uid) = done.entries[0].clone();
    assert_eq!(server.messages(mbox).await.expect("msgs").len(), 1);
    let mut saw_append = false;
    while !saw_append {
        let change = timeout(Duration::from_secs(1), server_feed.recv())
            .await
            .expect("server feed within a second")
            .expect("recv");
        saw_append = matches!(change, Change::Appended { uid: u, .. } if u == uid);
    }

    let flags = vec!["\\Seen".to_string()];
    server
        .set_flags(mbox, vec![uid], FlagOp::Add, flags)
        .await
        .expect("flags");
    loop {
        let change = timeout(Duration::from_secs(1), cli_feed.recv())
            .await
            .expect("cli feed within a second")
            .expect("recv");
        if matches!(change, Change::Flags { .. }) {
            break;
        }
    }
}
