//! SQLite-specific tests of the store (body rows, the writer's batches
//! and failures, a second OS process, schema and durability settings), and
//! the conformance suite run on SQLite.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::time::timeout;

use crate::schema::{DB_FILE, map_err};
use crate::*;

/// A fresh SQLite store directory for the conformance suite.
pub(crate) struct Sqlite(tempfile::TempDir);

impl crate::conformance::Backend for Sqlite {
    fn open(&self) -> Arc<dyn Store> {
        open(self.0.path())
    }
}

pub(crate) fn sqlite() -> Sqlite {
    Sqlite(tempdir())
}

crate::store_conformance!(crate::tests::sqlite());

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

/// Deliveries share one savepoint per run (issue 18); one that fails after
/// writing part of itself is still undone alone, and the others of the run
/// commit as if each had had its own savepoint.
#[tokio::test]
async fn failed_delivery_in_a_shared_run_is_undone_alone() {
    let dir = tempdir();
    let store = open(dir.path());
    let before = store.stats();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let hold = store.write(move |_| {
        let _ = started_tx.send(());
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    });
    started_rx.recv().expect("writer started the hold job");
    let first = store.deliver(local(&["a@x"], b"one"));
    // Stores c@x's copy (creating the account), then fails on the empty
    // second delivery: the whole job must go.
    let nobody = Delivery {
        local_raw: None,
        local: Vec::new(),
        outbound: None,
        internal_date: 0,
    };
    let failing = store.deliver_all(vec![local(&["c@x"], b"half"), nobody]);
    let last = store.deliver(local(&["b@x"], b"two"));
    let again = store.deliver(local(&["a@x"], b"three"));
    hold.await.expect("hold");
    assert_eq!(first.await.expect("first").entries.len(), 1);
    assert!(matches!(failing.await, Err(StoreError::Invalid(_))));
    assert!(last.await.is_ok());
    let again = again.await.expect("again");
    assert_eq!(again.entries.first().map(|e| e.2), Some(Uid(2)));
    let after = store.stats();
    assert_eq!(after.commits - before.commits, 2, "hold, then one batch");
    assert_eq!(after.ops - before.ops, 4);
    assert_eq!(inbox(&store, "a@x").await.messages, 2);
    assert_eq!(inbox(&store, "b@x").await.messages, 1);
    assert!(
        store
            .mailboxes("c@x".into())
            .await
            .expect("list")
            .is_empty()
    );
    // No body of the failed job is left behind.
    let bodies: i64 = raw_db(dir.path())
        .query_row("SELECT count(*) FROM bodies", [], |r| r.get(0))
        .expect("count");
    assert_eq!(bodies, 3);
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

/// Plans do not depend on bound values (issue 18): otherwise the feed's
/// catch-up, whose LIMIT is a parameter, is parsed again at every commit.
#[test]
fn connections_keep_their_plans_whatever_is_bound() {
    let dir = tempdir();
    let conn = crate::schema::open_connection(dir.path()).unwrap();
    assert!(
        conn.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
            .unwrap()
    );
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

/// `data` in an unlinked temporary file, as the spool holds it.
fn spooled(data: &[u8]) -> Spooled {
    use std::io::Write;
    let mut f = tempfile::tempfile().expect("spool file");
    f.write_all(data).expect("write");
    Spooled::new(f, 0, data.len() as u64)
}

#[tokio::test]
async fn a_spooled_body_is_kept_in_chunks_that_go_with_it() {
    let dir = tempdir();
    let store = open(dir.path());
    store.ensure_account("a@x".into()).await.expect("account");
    let mailbox = inbox(&store, "a@x").await.id;
    let head = b"Subject: big\r\n\r\n".to_vec();
    let tail: Vec<u8> = (0..2 * BODY_CHUNK + 10).map(|i| (i % 253) as u8).collect();
    let uid = store
        .append_spooled(
            mailbox,
            head.clone(),
            spooled(&tail),
            vec![],
            1_700_000_000,
            Quota::default(),
        )
        .await
        .expect("append");
    let want = [head, tail].concat();
    let db = raw_db(dir.path());
    // Three chunks, cut at BODY_CHUNK; the body row holds no data.
    assert_eq!(count(&db, "SELECT count(*) FROM body_chunks"), 3);
    assert_eq!(
        count(&db, "SELECT max(length(data)) FROM body_chunks"),
        BODY_CHUNK as i64
    );
    assert_eq!(count(&db, "SELECT length(data) FROM bodies"), 0);
    let body = store.messages(mailbox).await.expect("messages")[0].body;
    assert!(store.read_body(body).await.expect("body") == want);
    let across = store
        .read_body_range(body, BODY_CHUNK as u64 - 3, 6)
        .await
        .expect("range");
    assert!(across == want[BODY_CHUNK - 3..BODY_CHUNK + 3]);

    // A big body stored before V_BODY_CHUNKS, as one BLOB, still reads.
    db.execute(
        "UPDATE bodies SET data = ?1 WHERE id = ?2",
        rusqlite::params![want, body.0],
    )
    .expect("inline");
    db.execute("DELETE FROM body_chunks", []).expect("unchunk");
    let again = store
        .read_body_range(body, BODY_CHUNK as u64 - 3, 6)
        .await
        .expect("inline range");
    assert!(again == across);
    assert!(store.read_body(body).await.expect("inline body") == want);

    // The chunks are freed with their body.
    let uid2 = store
        .append_spooled(
            mailbox,
            b"\r\n".to_vec(),
            spooled(&want),
            vec![],
            0,
            Quota::default(),
        )
        .await
        .expect("append");
    assert!(count(&db, "SELECT count(*) FROM body_chunks") > 0);
    store
        .expunge(mailbox, vec![uid, uid2])
        .await
        .expect("expunge");
    assert_eq!(count(&db, "SELECT count(*) FROM bodies"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM body_chunks"), 0);
}

#[tokio::test]
async fn a_spooled_import_is_kept_in_chunks_as_a_spooled_append_is() {
    let dir = tempdir();
    let store = open(dir.path());
    store.ensure_account("a@x".into()).await.expect("account");
    let mailbox = inbox(&store, "a@x").await.id;
    let head = b"Subject: big import\r\n\r\n".to_vec();
    let tail: Vec<u8> = (0..2 * BODY_CHUNK + 10).map(|i| (i % 253) as u8).collect();
    store
        .import_spooled(mailbox, head.clone(), spooled(&tail), vec![], 0, [9; 32])
        .await
        .expect("import")
        .expect("new");
    let db = raw_db(dir.path());
    // Copied from the file a chunk at a time, never made one BLOB.
    assert_eq!(count(&db, "SELECT count(*) FROM body_chunks"), 3);
    assert_eq!(count(&db, "SELECT length(data) FROM bodies"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM imports"), 1);
    let body = store.messages(mailbox).await.expect("messages")[0].body;
    assert!(store.read_body(body).await.expect("body") == [head, tail].concat());
}
