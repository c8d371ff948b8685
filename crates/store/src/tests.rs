//! Tests of the SQLite store through the [`Store`] trait (plus a few hooks
//! into the writer to force batching and failures).

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::timeout;

use crate::schema::{DB_FILE, map_err};
use crate::*;

pub(crate) fn open(dir: &std::path::Path) -> Arc<SqliteStore> {
    match SqliteStore::open(dir, StoreOptions::default()) {
        Ok(s) => s,
        Err(e) => panic!("open: {e}"),
    }
}

pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub(crate) fn local(accounts: &[&str], raw: &[u8]) -> Delivery {
    Delivery {
        local_raw: Some(raw.to_vec()),
        local: accounts.iter().map(|a| LocalTarget::inbox(*a)).collect(),
        outbound: None,
        internal_date: 1_700_000_000,
    }
}

pub(crate) async fn inbox(store: &SqliteStore, account: &str) -> MailboxInfo {
    store
        .mailbox(account.into(), "inbox".into())
        .await
        .expect("mailbox")
        .expect("INBOX exists")
}

pub(crate) fn raw_db(dir: &std::path::Path) -> Connection {
    Connection::open(dir.join(DB_FILE)).expect("raw open")
}

pub(crate) fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

#[tokio::test]
async fn deliver_to_three_accounts_stores_one_body() {
    let dir = tempdir();
    let store = open(dir.path());
    let raw = b"Subject: hi\r\n\r\nbody\r\n";
    let done = store
        .deliver(local(&["a@x.org", "B@x.org", "c@x.org"], raw))
        .await
        .expect("deliver");
    assert_eq!(done.entries.len(), 3);
    assert_eq!(done.entries[1].0, "b@x.org", "account names are canonical");
    let mut bodies = Vec::new();
    for account in ["a@x.org", "b@x.org", "c@x.org"] {
        let msgs = store
            .messages(inbox(&store, account).await.id)
            .await
            .expect("msgs");
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].size, raw.len() as u64);
        bodies.push(msgs[0].body);
        // Each new account got its six mailboxes.
        assert_eq!(
            store.mailboxes(account.into()).await.expect("list").len(),
            6
        );
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(store.read_body(bodies[0]).await.expect("body"), raw);
    let db = raw_db(dir.path());
    assert_eq!(count(&db, "SELECT count(*) FROM bodies"), 1);
    assert_eq!(count(&db, "SELECT refs FROM bodies"), 3);
}

#[tokio::test]
async fn uids_strictly_ascending_never_reused() {
    let dir = tempdir();
    let store = open(dir.path());
    let mut uids = Vec::new();
    for i in 0..3 {
        let d = store
            .deliver(local(&["a@x"], format!("m{i}").as_bytes()))
            .await;
        uids.push(d.expect("deliver").entries[0].2);
    }
    assert_eq!(uids, vec![Uid(1), Uid(2), Uid(3)]);
    let mbox = inbox(&store, "a@x").await.id;
    let gone = store
        .expunge(mbox, vec![Uid(3), Uid(2), Uid(9)])
        .await
        .expect("expunge");
    assert_eq!(gone, vec![Uid(2), Uid(3)]);
    let next = store
        .deliver(local(&["a@x"], b"m3"))
        .await
        .expect("deliver");
    assert_eq!(next.entries[0].2, Uid(4));
    drop(store);
    let store = open(dir.path());
    let next = store
        .deliver(local(&["a@x"], b"m4"))
        .await
        .expect("deliver");
    assert_eq!(next.entries[0].2, Uid(5));
    let uids: Vec<Uid> = store
        .messages(mbox)
        .await
        .expect("msgs")
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(uids, vec![Uid(1), Uid(4), Uid(5)]);
    assert_eq!(inbox(&store, "a@x").await.uidnext, 6);
}

#[tokio::test]
async fn recreated_mailbox_gets_new_uidvalidity() {
    let dir = tempdir();
    let store = open(dir.path());
    store.ensure_account("a@x".into()).await.expect("account");
    let work = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await
        .expect("create");
    store
        .append(work.id, b"x".to_vec(), vec![], 0)
        .await
        .expect("append");
    let dup = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))));
    store
        .delete_mailbox("a@x".into(), "Work".into())
        .await
        .expect("delete");
    let again = store
        .create_mailbox("a@x".into(), "Work".into(), None)
        .await
        .expect("recreate");
    assert!(again.uidvalidity > work.uidvalidity);
    assert_ne!(again.id, work.id);
    assert_eq!(again.messages, 0);
    let all: Vec<u32> = store
        .mailboxes("a@x".into())
        .await
        .expect("list")
        .iter()
        .map(|m| m.uidvalidity)
        .collect();
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "uidvalidity unique per mailbox");
    let inbox_del = store.delete_mailbox("a@x".into(), "INBOX".into()).await;
    assert!(matches!(inbox_del, Err(StoreError::Invalid(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_share_commits() {
    let dir = tempdir();
    let store = open(dir.path());
    store.ensure_account("a@x".into()).await.expect("account");
    let before = store.stats();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            s.deliver(local(&["a@x"], format!("message {i}").as_bytes()))
                .await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("deliver");
    }
    let after = store.stats();
    let commits = after.commits - before.commits;
    assert_eq!(after.ops - before.ops, 200);
    assert!(commits < 50, "200 deliveries took {commits} commits");
    assert_eq!(inbox(&store, "a@x").await.messages, 200);
}

#[tokio::test]
async fn failed_op_does_not_poison_batch() {
    let dir = tempdir();
    let store = open(dir.path());
    let before = store.stats();
    // Hold the writer so that the next jobs queue up and share one batch.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let hold = store.write(move |_| {
        let _ = started_tx.send(());
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    });
    started_rx.recv().expect("writer started the hold job");
    let first = store.deliver(local(&["a@x"], b"one"));
    // Writes something, then fails: its savepoint must undo the write.
    let failing = store.write(|c| {
        ops::ensure_account(c, "ghost@x")?;
        Err::<(), _>(StoreError::Invalid("boom".into()))
    });
    let missing = store.append(MailboxId(999_999), b"x".to_vec(), vec![], 0);
    let last = store.deliver(local(&["b@x"], b"two"));
    hold.await.expect("hold");
    assert!(first.await.is_ok());
    assert_eq!(failing.await, Err(StoreError::Invalid("boom".into())));
    assert!(matches!(missing.await, Err(StoreError::NotFound(_))));
    assert!(last.await.is_ok());
    let after = store.stats();
    assert_eq!(
        after.commits - before.commits,
        2,
        "hold, then one shared batch"
    );
    assert_eq!(after.ops - before.ops, 3);
    assert_eq!(inbox(&store, "a@x").await.messages, 1);
    assert_eq!(inbox(&store, "b@x").await.messages, 1);
    assert!(
        store
            .mailboxes("ghost@x".into())
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn second_process_sees_writes() {
    let dir = tempdir();
    let server = open(dir.path());
    let cli = open(dir.path());
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

    // And a real second OS process: this test binary, running the ignored
    // `child_process_delivers` below.
    let exe = std::env::current_exe().expect("test binary");
    // Blocking is fine here: the feed is filled by the store's own threads.
    let status = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "tests::child_process_delivers"])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("spawn child");
    assert!(status.success(), "child process failed");
    loop {
        let change = timeout(Duration::from_secs(1), server_feed.recv())
            .await
            .expect("server feed within a second of the child's commit")
            .expect("recv");
        if matches!(change, Change::Appended { uid: Uid(2), .. }) {
            break;
        }
    }
    assert_eq!(server.messages(mbox).await.expect("msgs").len(), 2);
}

const CHILD_DIR_ENV: &str = "MAILROOM_STORE_TEST_CHILD_DIR";

/// Run only as the child of `second_process_sees_writes`.
#[tokio::test]
#[ignore]
async fn child_process_delivers() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let store = open(std::path::Path::new(&dir));
    let d = store
        .deliver(local(&["a@x"], b"from a child"))
        .await
        .expect("deliver");
    assert_eq!(d.entries[0].2, Uid(2));
}

#[tokio::test]
async fn reopen_keeps_everything() {
    let dir = tempdir();
    let (mbox, body) = {
        let store = open(dir.path());
        let d = store
            .deliver(local(&["a@x"], b"keep me"))
            .await
            .expect("deliver");
        let (_, mbox, uid) = d.entries[0].clone();
        store
            .set_flags(mbox, vec![uid], FlagOp::Add, vec!["\\Flagged".into()])
            .await
            .expect("flags");
        store
            .create_mailbox(
                "a@x".into(),
                "Projects/2024".into(),
                Some("\\Archive".into()),
            )
            .await
            .expect("create");
        store
            .set_subscribed("a@x".into(), "Junk".into(), false)
            .await
            .expect("unsub");
        let body = store.messages(mbox).await.expect("msgs")[0].body;
        store.shutdown();
        assert_eq!(
            store.ensure_account("z@x".into()).await,
            Err(StoreError::Closed)
        );
        (mbox, body)
    };
    let store = open(dir.path());
    let msgs = store.messages(mbox).await.expect("msgs");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].flags, vec!["\\Flagged".to_string()]);
    assert_eq!(store.read_body(body).await.expect("body"), b"keep me");
    let list = store.mailboxes("a@x".into()).await.expect("list");
    assert_eq!(list.len(), 7);
    assert_eq!(list[0].name, "INBOX");
    let junk = list.iter().find(|m| m.name == "Junk").expect("junk");
    assert!(!junk.subscribed);
    let projects = list
        .iter()
        .find(|m| m.name == "Projects/2024")
        .expect("projects");
    assert_eq!(projects.special_use.as_deref(), Some("\\Archive"));
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempdir();
    drop(open(dir.path()));
    raw_db(dir.path())
        .execute(
            "UPDATE meta SET value = '999' WHERE key = 'schema_version'",
            [],
        )
        .expect("bump version");
    match SqliteStore::open(dir.path(), StoreOptions::default()) {
        Err(
            e @ StoreError::NewerSchema {
                found: 999,
                supported,
            },
        ) => {
            assert_eq!(supported, SCHEMA_VERSION);
            let msg = e.to_string();
            assert!(msg.contains("999") && !msg.contains('\n'), "{msg}");
            assert!(!e.is_temporary());
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[tokio::test]
async fn outbound_is_queued_in_same_transaction() {
    let dir = tempdir();
    let store = open(dir.path());
    let before = store.stats();
    let raw = b"Subject: both\r\n\r\nhello\r\n".to_vec();
    let d = store
        .deliver(Delivery {
            local_raw: Some(raw.clone()),
            local: vec![LocalTarget::inbox("a@x")],
            outbound: Some(Outbound {
                raw: raw.clone(),
                sender: "a@x".into(),
                recipients: vec!["r1@remote".into(), "r2@remote".into()],
                ..Default::default()
            }),
            internal_date: 5,
        })
        .await
        .expect("deliver");
    assert_eq!(store.stats().commits - before.commits, 1);
    assert_eq!(d.entries.len(), 1);
    assert_eq!(d.queue_ids.len(), 2);
    let q = store.queue().await.expect("queue");
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].recipient, "r1@remote");
    assert_eq!(q[0].status, "queued");
    assert_eq!(q[0].attempts, 0);
    assert_eq!(q[0].sender, "a@x");
    assert_eq!(store.read_body(q[1].body).await.expect("body"), raw);
    // The local entry and the queue share the identical body.
    assert_eq!(
        store.messages(d.entries[0].1).await.expect("msgs")[0].body,
        q[0].body
    );

    // Remote only, null reverse-path.
    let bounce = store
        .deliver(Delivery {
            local_raw: None,
            local: vec![],
            outbound: Some(Outbound {
                raw: b"bounce".to_vec(),
                sender: String::new(),
                recipients: vec!["r3@remote".into()],
                ..Default::default()
            }),
            internal_date: 5,
        })
        .await
        .expect("deliver");
    assert!(bounce.entries.is_empty());
    // A delivery that fails leaves nothing behind, neither part.
    let bad = store
        .deliver(Delivery {
            local_raw: None,
            local: vec![LocalTarget::inbox("c@x")],
            outbound: Some(Outbound {
                raw: b"x".to_vec(),
                sender: String::new(),
                recipients: vec!["r4@remote".into()],
                ..Default::default()
            }),
            internal_date: 5,
        })
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
    assert_eq!(store.queue().await.expect("queue").len(), 3);
}

#[tokio::test]
async fn expunge_gcs_unreferenced_body() {
    let dir = tempdir();
    let store = open(dir.path());
    let d = store
        .deliver(local(&["a@x", "b@x"], b"shared"))
        .await
        .expect("deliver");
    let (_, a_inbox, a_uid) = d.entries[0].clone();
    let (_, b_inbox, b_uid) = d.entries[1].clone();
    let body = store.messages(a_inbox).await.expect("msgs")[0].body;
    let a_archive = store
        .mailbox("a@x".into(), "Archive".into())
        .await
        .expect("q")
        .expect("archive");
    let copied = store
        .copy(a_inbox, vec![a_uid], a_archive.id)
        .await
        .expect("copy");
    assert_eq!(copied, vec![(a_uid, Uid(1))]);

    store.expunge(a_inbox, vec![a_uid]).await.expect("expunge");
    store.expunge(b_inbox, vec![b_uid]).await.expect("expunge");
    assert_eq!(
        store.read_body(body).await.expect("still in Archive"),
        b"shared"
    );
    store
        .expunge(a_archive.id, vec![Uid(1)])
        .await
        .expect("expunge");
    assert!(matches!(
        store.read_body(body).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(count(&raw_db(dir.path()), "SELECT count(*) FROM bodies"), 0);

    // Deleting an account frees its bodies too.
    store
        .deliver(local(&["a@x"], b"again"))
        .await
        .expect("deliver");
    store.delete_account("a@x".into()).await.expect("delete");
    assert_eq!(count(&raw_db(dir.path()), "SELECT count(*) FROM bodies"), 0);
    assert!(
        store
            .mailboxes("a@x".into())
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn rename_inbox_moves_messages() {
    let dir = tempdir();
    let store = open(dir.path());
    for body in [&b"one"[..], b"two"] {
        store.deliver(local(&["a@x"], body)).await.expect("deliver");
    }
    let before = inbox(&store, "a@x").await;
    store
        .rename_mailbox("a@x".into(), "inbox".into(), "Old".into())
        .await
        .expect("rename");
    let after = inbox(&store, "a@x").await;
    assert_eq!(after.id, before.id, "INBOX stays");
    assert_eq!(after.messages, 0);
    let old = store
        .mailbox("a@x".into(), "Old".into())
        .await
        .expect("q")
        .expect("Old");
    assert_eq!(old.messages, 2);
    assert_ne!(old.uidvalidity, before.uidvalidity);
    let next = store
        .deliver(local(&["a@x"], b"three"))
        .await
        .expect("deliver");
    assert_eq!(next.entries[0].2, Uid(3), "INBOX UIDs are not reused");

    // An ordinary rename takes the inferiors along.
    store
        .create_mailbox("a@x".into(), "P".into(), None)
        .await
        .expect("create");
    store
        .create_mailbox("a@x".into(), "P/c".into(), None)
        .await
        .expect("create");
    store
        .rename_mailbox("a@x".into(), "P".into(), "Q".into())
        .await
        .expect("rename");
    assert!(
        store
            .mailbox("a@x".into(), "Q/c".into())
            .await
            .expect("q")
            .is_some()
    );
    assert!(
        store
            .mailbox("a@x".into(), "P".into())
            .await
            .expect("q")
            .is_none()
    );
    let clash = store
        .rename_mailbox("a@x".into(), "Q".into(), "Sent".into())
        .await;
    assert!(matches!(clash, Err(StoreError::AlreadyExists(_))));
}

#[tokio::test]
async fn flags_roundtrip_and_modseq_increases() {
    let dir = tempdir();
    let store = open(dir.path());
    store.ensure_account("a@x".into()).await.expect("account");
    store
        .ensure_account("a@x".into())
        .await
        .expect("idempotent");
    let mbox = inbox(&store, "a@x").await.id;
    let uid = store
        .append(
            mbox,
            b"m".to_vec(),
            vec!["\\seen".into(), "\\Recent".into()],
            42,
        )
        .await
        .expect("append");
    let m0 = store.messages(mbox).await.expect("msgs").remove(0);
    assert_eq!(m0.flags, vec!["\\Seen".to_string()]);
    assert_eq!(m0.internal_date, 42);
    assert_eq!(inbox(&store, "a@x").await.unseen, 0);

    let add = vec!["\\Flagged".to_string(), "$Label1".to_string()];
    let changed = store
        .set_flags(mbox, vec![uid], FlagOp::Add, add)
        .await
        .expect("add");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].flags, vec!["\\Seen", "\\Flagged", "$Label1"]);
    assert!(changed[0].modseq > m0.modseq);

    let same = vec!["\\flagged".to_string()];
    let none = store
        .set_flags(mbox, vec![uid], FlagOp::Add, same)
        .await
        .expect("noop");
    assert!(none.is_empty(), "no change, no new modseq");

    let rm = vec!["\\Seen".to_string()];
    let changed2 = store
        .set_flags(mbox, vec![uid], FlagOp::Remove, rm)
        .await
        .expect("rm");
    assert!(changed2[0].modseq > changed[0].modseq);
    assert_eq!(inbox(&store, "a@x").await.unseen, 1);

    let changed3 = store
        .set_flags(
            mbox,
            vec![uid, Uid(77)],
            FlagOp::Replace,
            vec!["\\Deleted".into()],
        )
        .await
        .expect("replace");
    assert_eq!(changed3.len(), 1);
    let stored = store.messages(mbox).await.expect("msgs").remove(0);
    assert_eq!(stored.flags, vec!["\\Deleted".to_string()]);
    assert_eq!(stored.modseq, changed3[0].modseq);
    assert_eq!(inbox(&store, "a@x").await.highestmodseq, stored.modseq);

    let bad = store
        .set_flags(mbox, vec![uid], FlagOp::Add, vec!["\\Bogus".into()])
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
    let bad = store
        .set_flags(mbox, vec![uid], FlagOp::Add, vec!["two words".into()])
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
}

#[tokio::test]
async fn change_feed_reports_append_flags_expunge() {
    let dir = tempdir();
    let store = open(dir.path());
    store.ensure_account("a@x".into()).await.expect("account");
    let mbox = inbox(&store, "a@x").await.id;
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

#[tokio::test]
async fn deleting_an_account_publishes_account_deleted_to_other_stores() {
    let dir = tempdir();
    let server = open(dir.path());
    server.ensure_account("a@x".into()).await.expect("account");
    let mut feed = server.subscribe();
    // Another process (the CLI) opens the same directory and deletes it.
    let cli = open(dir.path());
    cli.delete_account("a@x".into()).await.expect("delete");
    cli.shutdown();
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

#[tokio::test]
async fn disk_full_is_temporary_and_writes_nothing() {
    let dir = tempdir();
    let store = open(dir.path());
    store.ensure_account("a@x".into()).await.expect("account");
    // Simulate a full disk: cap the database a few pages above its size.
    store
        .write(|c| {
            let pages: i64 = c
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(map_err)?;
            let cap = format!("PRAGMA max_page_count = {}", pages + 4);
            c.query_row(&cap, [], |_| Ok(())).map_err(map_err)
        })
        .await
        .expect("cap");
    let big = vec![b'x'; 1024 * 1024];
    let err = store
        .deliver(local(&["a@x"], &big))
        .await
        .expect_err("must not fit");
    assert_eq!(err, StoreError::DiskFull);
    assert!(err.is_temporary());
    assert_eq!(inbox(&store, "a@x").await.messages, 0);
    store
        .write(|c| {
            c.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))
                .map_err(map_err)
        })
        .await
        .expect("uncap");
    let d = store
        .deliver(local(&["a@x"], &big))
        .await
        .expect("fits now");
    assert_eq!(d.entries[0].2, Uid(1), "the failed delivery used no UID");
}

#[test]
fn open_works_without_a_runtime() {
    let dir = tempdir();
    let store = open(&dir.path().join("new/nested"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let d = runtime
        .block_on(store.deliver(local(&["a@x"], b"m")))
        .expect("deliver");
    assert_eq!(d.entries[0].2, Uid(1));
    // Dropping the last Arc shuts the threads down after queued writes.
    drop(store);
    let store = open(&dir.path().join("new/nested"));
    let msgs = runtime
        .block_on(store.messages(d.entries[0].1))
        .expect("messages");
    assert_eq!(msgs.len(), 1);
}

/// The crash test keeps the page cache, so it passes without any fsync;
/// this is the check that cannot: every store connection is WAL with
/// synchronous=FULL (2), read back from SQLite. It fails under the
/// test-only `unsafe-no-fsync` feature, as it must.
#[test]
fn every_connection_is_wal_with_synchronous_full() {
    let dir = tempdir();
    let store = open(dir.path());
    let conn = crate::schema::open_connection(dir.path()).unwrap();
    assert_eq!(
        crate::schema::durability(&conn).unwrap(),
        ("wal".to_string(), 2)
    );
    drop(store);
}

#[test]
fn a_connection_without_full_sync_is_refused() {
    let dir = tempdir();
    let conn = crate::schema::open_connection(dir.path()).unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    let err = crate::schema::check_durability(&conn).unwrap_err();
    assert!(err.to_string().contains("synchronous=1"), "{err}");
    conn.pragma_update(None, "synchronous", crate::schema::SYNCHRONOUS)
        .unwrap();
    let _ = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| {
        r.get::<_, String>(0)
    });
    assert!(crate::schema::check_durability(&conn).is_err());
}
