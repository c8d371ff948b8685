//! Tests of [`Store::changes_since`]: what a selected IMAP session reads
//! when the change feed wakes it. It must return the whole difference
//! since a mod-sequence (appends, flag changes, expunges), from one
//! snapshot, and cost the size of the change rather than of the mailbox.

use crate::tests::{inbox, local, open, raw_db, tempdir};
use crate::*;

async fn deliver(store: &SqliteStore, n: usize) {
    for i in 0..n {
        let raw = format!("Subject: {i}\r\n\r\nbody {i}\r\n");
        store
            .deliver(local(&["a@x"], raw.as_bytes()))
            .await
            .expect("deliver");
    }
}

fn uids(metas: &[MessageMeta]) -> Vec<u32> {
    metas.iter().map(|m| m.uid.0).collect()
}

#[tokio::test]
async fn from_zero_every_entry_and_the_highest_modseq() {
    let dir = tempdir();
    let store = open(dir.path());
    deliver(&store, 3).await;
    let mb = inbox(&store, "a@x").await;
    let c = store.changes_since(mb.id, 0).await.expect("changes");
    assert_eq!(uids(&c.changed), [1, 2, 3]);
    assert!(c.vanished.is_empty());
    assert_eq!(c.highestmodseq, mb.highestmodseq);
    assert_eq!(c.changed, store.messages(mb.id).await.expect("messages"));
}

#[tokio::test]
async fn after_a_modseq_only_what_changed_since() {
    let dir = tempdir();
    let store = open(dir.path());
    deliver(&store, 4).await;
    let mb = inbox(&store, "a@x").await;
    let base = store.changes_since(mb.id, 0).await.expect("base");
    // Nothing changed: nothing to read.
    let none = store
        .changes_since(mb.id, base.highestmodseq)
        .await
        .expect("none");
    assert!(
        none.changed.is_empty() && none.vanished.is_empty(),
        "{none:?}"
    );
    assert_eq!(none.highestmodseq, base.highestmodseq);

    store
        .set_flags(mb.id, vec![Uid(2)], FlagOp::Add, vec!["\\Seen".into()])
        .await
        .expect("flags");
    store.expunge(mb.id, vec![Uid(3)]).await.expect("expunge");
    deliver(&store, 1).await;
    let c = store
        .changes_since(mb.id, base.highestmodseq)
        .await
        .expect("changes");
    assert_eq!(
        uids(&c.changed),
        [2, 5],
        "the flag change and the new entry"
    );
    assert_eq!(c.changed[0].flags, ["\\Seen"]);
    assert_eq!(c.vanished, [Uid(3)]);
    assert!(c.highestmodseq > base.highestmodseq);
    assert_eq!(c.highestmodseq, inbox(&store, "a@x").await.highestmodseq);

    // From the new mark: nothing again.
    let again = store
        .changes_since(mb.id, c.highestmodseq)
        .await
        .expect("again");
    assert!(again.changed.is_empty() && again.vanished.is_empty());
}

#[tokio::test]
async fn a_flag_change_after_expunge_of_a_neighbour_is_one_entry_each() {
    let dir = tempdir();
    let store = open(dir.path());
    deliver(&store, 2).await;
    let mb = inbox(&store, "a@x").await;
    let base = store.changes_since(mb.id, 0).await.expect("base");
    // Two changes to one entry: reported once, with its latest flags.
    for f in ["$a", "$b"] {
        store
            .set_flags(mb.id, vec![Uid(1)], FlagOp::Add, vec![f.into()])
            .await
            .expect("flags");
    }
    let c = store
        .changes_since(mb.id, base.highestmodseq)
        .await
        .expect("changes");
    assert_eq!(uids(&c.changed), [1]);
    assert_eq!(c.changed[0].flags, ["$a", "$b"]);
}

#[tokio::test]
async fn a_move_shows_as_vanished_in_the_source_and_changed_in_the_target() {
    let dir = tempdir();
    let store = open(dir.path());
    deliver(&store, 2).await;
    let src = inbox(&store, "a@x").await;
    let dst = store
        .create_mailbox("a@x".into(), "Moved".into(), None)
        .await
        .expect("create");
    let s0 = store
        .changes_since(src.id, 0)
        .await
        .expect("src")
        .highestmodseq;
    let d0 = store
        .changes_since(dst.id, 0)
        .await
        .expect("dst")
        .highestmodseq;
    store
        .move_messages(src.id, vec![Uid(1)], dst.id)
        .await
        .expect("move");
    let s = store.changes_since(src.id, s0).await.expect("src");
    assert_eq!(s.vanished, [Uid(1)]);
    assert!(s.changed.is_empty());
    let d = store.changes_since(dst.id, d0).await.expect("dst");
    assert_eq!(uids(&d.changed), [1]);
}

#[tokio::test]
async fn a_deleted_mailbox_is_not_found() {
    let dir = tempdir();
    let store = open(dir.path());
    store.ensure_account("a@x".into()).await.expect("account");
    let mb = store
        .create_mailbox("a@x".into(), "Gone".into(), None)
        .await
        .expect("create");
    store
        .delete_mailbox("a@x".into(), "Gone".into())
        .await
        .expect("delete");
    assert!(matches!(
        store.changes_since(mb.id, 0).await,
        Err(StoreError::NotFound(_))
    ));
}

/// The reads are index range scans on (mailbox_id, modseq), not scans of
/// the mailbox: what makes N idle sessions cost O(change) per delivery.
#[tokio::test]
async fn the_reads_use_the_modseq_indexes() {
    let dir = tempdir();
    let store = open(dir.path());
    deliver(&store, 1).await;
    let db = raw_db(dir.path());
    let plan = |sql: &str| -> String {
        let mut s = db
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        let rows: Vec<String> = s
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .map(|r| r.expect("row"))
            .collect();
        rows.join("; ")
    };
    let meta = crate::read::META_SELECT;
    let entries = plan(&format!("{meta} WHERE e.mailbox_id = 1 AND e.modseq > 5"));
    assert!(
        entries.contains("entries_modseq (mailbox_id=? AND modseq>?)"),
        "{entries}"
    );
    // The size from the covering index, never the body's row (whose
    // BLOB comes first): V_BODY_SIZE_INDEX.
    for sql in [
        format!("{meta} WHERE e.mailbox_id = 1 AND e.modseq > 5"),
        format!("{meta} WHERE e.mailbox_id = 1 AND e.uid BETWEEN 1 AND 9 ORDER BY e.uid"),
    ] {
        let p = plan(&sql);
        assert!(p.contains("COVERING INDEX bodies_size (id=?)"), "{p}");
    }
    let tombs = plan("SELECT uid FROM expunged WHERE mailbox_id = 1 AND modseq > 5");
    assert!(
        tombs.contains("expunged_modseq (mailbox_id=? AND modseq>?)"),
        "{tombs}"
    );
}

/// A store written by the previous schema gains the indexes on open.
#[tokio::test]
async fn a_version_1_store_gains_the_modseq_indexes() {
    let dir = tempdir();
    {
        let db = raw_db(dir.path());
        db.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta (key, value) VALUES ('schema_version', '1');",
        )
        .expect("meta");
        db.execute_batch(crate::schema::MIGRATIONS[0])
            .expect("version 1");
    }
    let store = open(dir.path());
    deliver(&store, 1).await;
    let db = raw_db(dir.path());
    let names: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert!(names.contains(&"entries_modseq".to_string()), "{names:?}");
    assert!(names.contains(&"expunged_modseq".to_string()), "{names:?}");
    let version: String = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION.to_string());
}
