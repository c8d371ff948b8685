//! Conformance: per-recipient delivery targets (issue 12): a mailbox and
//! flags per local copy, INBOX when the mailbox is gone, one entry per
//! target however often it is named.

use crate::conformance::{Backend, inbox};
use crate::*;

fn to(targets: Vec<LocalTarget>) -> Delivery {
    Delivery {
        local_raw: Some(b"Subject: t\r\n\r\nx\r\n".to_vec()),
        local: targets,
        outbound: None,
        internal_date: 0,
    }
}

pub async fn a_target_names_its_mailbox_and_flags(backend: &dyn Backend) {
    let store = backend.open();
    let archive = LocalTarget {
        account: "a@x".into(),
        mailbox: "Archive".into(),
        flags: vec!["\\Seen".into(), "$Filtered".into()],
    };
    store
        .deliver(to(vec![
            archive.clone(),
            archive,
            LocalTarget::inbox("a@x"),
        ]))
        .await
        .expect("deliver");
    let mb = store
        .mailbox("a@x".into(), "Archive".into())
        .await
        .expect("query")
        .expect("Archive");
    let msgs = store.messages(mb.id).await.expect("messages");
    assert_eq!(msgs.len(), 1, "one entry for a target named twice");
    assert_eq!(msgs[0].flags, ["\\Seen", "$Filtered"]);
    assert_eq!(
        store
            .messages(inbox(&*store, "a@x").await.id)
            .await
            .expect("inbox")
            .len(),
        1
    );
}

pub async fn a_missing_mailbox_means_inbox(backend: &dyn Backend) {
    let store = backend.open();
    let gone = LocalTarget {
        account: "a@x".into(),
        mailbox: "No/Such/Folder".into(),
        flags: vec![],
    };
    store.deliver(to(vec![gone])).await.expect("deliver");
    assert_eq!(
        store
            .messages(inbox(&*store, "a@x").await.id)
            .await
            .expect("inbox")
            .len(),
        1
    );
}
