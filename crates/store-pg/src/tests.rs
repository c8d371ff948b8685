//! The store's conformance suite on PostgreSQL: every test on a fresh
//! database of the process's private cluster (`cluster`). Set
//! `MAILROOM_SKIP_PG=1` to skip them where PostgreSQL is not installed;
//! otherwise a cluster that cannot start fails every test.

use std::sync::Arc;

use store::Store;

use crate::{PgOptions, PgStore, cluster};

/// A fresh database: every `open` is another handle (another node).
pub(crate) struct Pg {
    url: String,
}

impl store::conformance::Backend for Pg {
    fn open(&self) -> Arc<dyn Store> {
        let mut opts = PgOptions::new(self.url.clone());
        opts.pool_size = 4;
        let open = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(PgStore::open(opts))
        });
        match open {
            Ok(s) => s,
            Err(e) => panic!("open the PostgreSQL store: {e}"),
        }
    }
}

impl Pg {
    /// The database's URL, for plain connections beside the store.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

pub(crate) fn pg() -> Pg {
    Pg {
        url: cluster::shared().create_database(),
    }
}

store::store_conformance!(crate::tests::pg(), unless crate::cluster::skip());

// --- What only the PostgreSQL backend has ---

use std::time::Duration;

use store::conformance::{Backend, inbox, local};
use store::{Change, StoreError, Uid};
use tokio::time::timeout;

/// A plain connection to the test's database, for looking at the rows.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("raw connect");
    tokio::spawn(conn);
    client
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_two_nodes_reach_a_third_in_commit_order() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let (a, b, watcher) = (pg.open(), pg.open(), pg.open());
    a.ensure_account("u@x".into()).await.expect("account");
    let mbox = inbox(&*a, "u@x").await.id;
    let mut feed = watcher.subscribe();
    const PER_NODE: usize = 40;
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..PER_NODE / 4 {
                    store
                        .append(mbox, b"x".to_vec(), vec![], 0)
                        .await
                        .expect("append");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    // Every append exactly once, UIDs ascending (rule 4: per mailbox in
    // commit order), though eight writers on two nodes raced.
    let mut uids = Vec::new();
    while uids.len() < 2 * PER_NODE {
        let c = timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("every change within seconds")
            .expect("no lag");
        if let Change::Appended { uid, .. } = c {
            uids.push(uid.0);
        }
    }
    let expected: Vec<u32> = (1..=(2 * PER_NODE) as u32).collect();
    assert_eq!(uids, expected);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(feed.try_recv().is_err(), "nothing published twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_is_stored_in_chunks_once_and_freed_with_its_last_entry() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let store = pg.open();
    let big: Vec<u8> = (0..(2 * crate::BODY_CHUNK + 17))
        .map(|i| (i % 251) as u8)
        .collect();
    let done = store
        .deliver(local(&["a@x", "b@x"], &big))
        .await
        .expect("deliver");
    let body = store.messages(done.entries[0].1).await.expect("msgs")[0].body;
    assert_eq!(store.read_body(body).await.expect("read"), big);
    let db = raw(&pg.url).await;
    assert_eq!(count(&db, "SELECT count(*) FROM bodies").await, 1);
    assert_eq!(count(&db, "SELECT refs FROM bodies").await, 2);
    assert_eq!(count(&db, "SELECT count(*) FROM body_chunks").await, 3);
    assert_eq!(
        count(&db, "SELECT max(length(data))::bigint FROM body_chunks").await,
        crate::BODY_CHUNK as i64
    );
    for (_, mbox, uid) in done.entries {
        store.expunge(mbox, vec![uid]).await.expect("expunge");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM bodies").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM body_chunks").await, 0);
    // An empty body is one empty chunk, and reads back as empty.
    let d = store.deliver(local(&["a@x"], b"")).await.expect("empty");
    let body = store.messages(d.entries[0].1).await.expect("msgs")[0].body;
    assert_eq!(store.read_body(body).await.expect("read"), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_opening_at_once_migrate_once_and_a_newer_schema_is_refused() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let mut opens = Vec::new();
    for _ in 0..4 {
        let url = pg.url.clone();
        opens.push(tokio::spawn(async move {
            PgStore::open(PgOptions::new(url)).await.map(|_| ())
        }));
    }
    for o in opens {
        o.await.expect("task").expect("every node opens");
    }
    let db = raw(&pg.url).await;
    let version: String = db
        .query_one(
            "SELECT value FROM store_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .expect("version")
        .get(0);
    assert_eq!(version, crate::SCHEMA_VERSION.to_string());
    db.execute(
        "UPDATE store_meta SET value = '999' WHERE key = 'schema_version'",
        &[],
    )
    .await
    .expect("bump");
    match PgStore::open(PgOptions::new(pg.url.clone())).await {
        Err(StoreError::NewerSchema { found: 999, .. }) => {}
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_temporary_error() {
    // No cluster needed: a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let opts = PgOptions::new(format!("postgres://nobody@127.0.0.1:{port}/none"));
    let err = PgStore::open(opts).await.err().expect("no database there");
    assert!(err.is_temporary(), "{err:?} must be temporary (451 4.3.0)");
    let bad = PgStore::open(PgOptions::new("mysql://what")).await.err();
    assert!(matches!(bad, Some(StoreError::Invalid(_))), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claim_disjoint_rows_and_release_only_their_own() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let node = |name: &str| {
        let mut opts = PgOptions::new(pg.url.clone());
        opts.node_id = name.to_string();
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(PgStore::open(opts))
        })
        .expect("open")
    };
    let (a, b) = (node("a"), node("b"));
    let rcpts: Vec<String> = (0..20).map(|i| format!("r{i}@y")).collect();
    let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    a.deliver(store::conformance::queue::outbound(&rcpts))
        .await
        .expect("deliver");
    let now = store::rules::now();
    let (ca, cb) = tokio::join!(
        a.claim_queue(now, now + 60, 15),
        b.claim_queue(now, now + 60, 15)
    );
    let (ca, cb) = (ca.expect("claim a"), cb.expect("claim b"));
    assert_eq!(ca.len() + cb.len(), 20, "every row claimed once");
    assert!(ca.iter().all(|q| !cb.iter().any(|r| r.id == q.id)));
    // Node a restarts: its claims are due again, b's stay leased.
    assert_eq!(a.release_queue_claims().await.expect("release"), ca.len());
    let again = b
        .claim_queue(store::rules::now(), now + 60, 100)
        .await
        .expect("claim");
    assert_eq!(again.len(), ca.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_and_catches_up_on_what_it_missed() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let (server, other) = (pg.open(), pg.open());
    let mut feed = server.subscribe();
    let db = raw(&pg.url).await;
    // Both listeners connect in the background after open.
    let listeners = "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = 'mailroom-listener' AND datname = current_database()";
    for _ in 0..100 {
        if count(&db, listeners).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cut every listener's connection (PostgreSQL restarting looks the
    // same to the node), then write while they are down.
    let killed = count(
        &db,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'mailroom-listener' AND datname = current_database()) t",
    )
    .await;
    assert_eq!(killed, 2);
    let done = other
        .deliver(local(&["late@x"], b"while you were away"))
        .await
        .expect("deliver");
    let uid = done.entries[0].2;
    loop {
        let c = timeout(Duration::from_secs(10), feed.recv())
            .await
            .expect("the change arrives after the reconnect")
            .expect("recv");
        if matches!(c, Change::Appended { uid: u, .. } if u == uid) {
            break;
        }
    }
    assert_eq!(uid, Uid(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_held_past_the_statement_timeout_fails_temporary_and_stores_nothing() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let mut opts = PgOptions::new(pg.url.clone());
    opts.statement_timeout = Duration::from_secs(1);
    let store = PgStore::open(opts).await.expect("open");
    store.ensure_account("u@x".into()).await.expect("account");
    let mbox = inbox(&*store, "u@x").await.id;
    // Another node's transaction holds the account's lock.
    let mut db = raw(&pg.url).await;
    let holder = db.transaction().await.expect("begin");
    holder
        .execute(
            "SELECT 1 FROM change_heads WHERE account = 'u@x' FOR UPDATE",
            &[],
        )
        .await
        .expect("lock");
    let err = store
        .append(mbox, b"late".to_vec(), vec![], 0)
        .await
        .expect_err("cancelled by statement_timeout");
    assert!(err.is_temporary(), "{err:?} must be temporary (451 4.3.0)");
    holder.rollback().await.expect("rollback");
    assert!(store.messages(mbox).await.expect("msgs").is_empty());
    // The pool recovers: the next write goes through.
    store
        .append(mbox, b"now".to_vec(), vec![], 0)
        .await
        .expect("append after the lock is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_deliveries_on_two_nodes_do_not_deadlock() {
    if cluster::skip() {
        return;
    }
    let pg = pg();
    let (a, b) = (pg.open(), pg.open());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, order) = if i % 2 == 0 {
            (a.clone(), ["p@x", "q@x", "r@x"])
        } else {
            (b.clone(), ["r@x", "q@x", "p@x"])
        };
        tasks.push(tokio::spawn(async move {
            let mut d = local(&order, b"to all three");
            d.outbound = Some(store::Outbound {
                raw: b"to all three".to_vec(),
                sender: "s@x".into(),
                recipients: vec!["far@y".into()],
                ..Default::default()
            });
            store.deliver(d).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("every delivery commits");
    }
    for account in ["p@x", "q@x", "r@x"] {
        let msgs = a
            .messages(inbox(&*a, account).await.id)
            .await
            .expect("msgs");
        let uids: Vec<u32> = msgs.iter().map(|m| m.uid.0).collect();
        assert_eq!(uids, (1..=20).collect::<Vec<u32>>(), "{account}");
    }
    assert_eq!(b.queue().await.expect("queue").len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_fsync_is_refused() {
    if cluster::skip() {
        return;
    }
    // A cluster of its own: the setting is server-wide.
    let own = cluster::Cluster::private();
    let url = own.create_database();
    own.psql("ALTER SYSTEM SET fsync = off");
    own.psql("SELECT pg_reload_conf()");
    // pg_reload_conf signals the server, which applies it a moment later.
    let mut refused = None;
    for _ in 0..50 {
        match PgStore::open(PgOptions::new(url.clone())).await {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    match refused {
        Some(StoreError::Io(why)) => assert!(why.contains("fsync = off"), "{why}"),
        Some(e) => panic!("wrong error {e}"),
        None => panic!("opened a server that does not fsync"),
    }
    own.psql("ALTER SYSTEM SET fsync = on");
    own.psql("SELECT pg_reload_conf()");
    let mut opened = None;
    for _ in 0..50 {
        if let Ok(s) = PgStore::open(PgOptions::new(url.clone())).await {
            opened = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(opened.is_some(), "fsync back on: the store opens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_settles_on_two_nodes_do_not_deadlock() {
    if cluster::skip() {
        return;
    }
    // Each settle delivers DSNs to three accounts in opposite orders and
    // one to a remote sender (the queue's lock), as a delivery run with
    // several bounces does; all commit, each with its rows gone.
    let pg = pg();
    let (a, b) = (pg.open(), pg.open());
    let queued = a
        .deliver(store::conformance::queue::outbound(
            &(0..20)
                .map(|i| format!("r{i}@y"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ))
        .await
        .expect("deliver");
    let mut tasks = Vec::new();
    for (i, id) in queued.queue_ids.iter().copied().enumerate() {
        let (store, order) = if i % 2 == 0 {
            (a.clone(), ["p@x", "q@x", "r@x"])
        } else {
            (b.clone(), ["r@x", "q@x", "p@x"])
        };
        tasks.push(tokio::spawn(async move {
            let mut dsns: Vec<_> = order.iter().map(|acc| local(&[acc], b"dsn")).collect();
            dsns.push(store::conformance::queue::outbound(&["sender@far"]));
            store
                .settle_queue(store::Settle {
                    remove: vec![id],
                    dsns,
                    ..Default::default()
                })
                .await
                .map(|d| d.len())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("every settle commits"), 4);
    }
    for account in ["p@x", "q@x", "r@x"] {
        assert_eq!(inbox(&*a, account).await.messages, 20, "{account}");
    }
    let q = b.queue().await.expect("queue");
    assert_eq!(q.len(), 20, "only the DSNs to the remote sender are left");
    assert!(q.iter().all(|e| e.recipient == "sender@far"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_queue_gains_the_dsn_columns() {
    if cluster::skip() {
        return;
    }
    // A database as the first release left it, with a queued row.
    let url = cluster::shared().create_database();
    let client = raw(&url).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
             INSERT INTO store_meta VALUES ('schema_version', '1'); {} \
             INSERT INTO bodies (id, size) VALUES (1, 1); \
             INSERT INTO body_chunks VALUES (1, 0, 'x'); \
             INSERT INTO queue (body_id, sender, recipient, next_attempt, created) \
             VALUES (1, 'a@x', 'r@y', 0, 0);",
            crate::MIGRATIONS[0]
        ))
        .await
        .expect("a version 1 database");
    let store = PgStore::open(PgOptions::new(url)).await.expect("open");
    let q = store.queue().await.expect("queue");
    assert_eq!(q.len(), 1);
    assert_eq!(
        (q[0].envid.as_deref(), q[0].notify.as_deref()),
        (None, None)
    );
    assert!(!q[0].smtputf8 && !q[0].warned && !q[0].notice);
    let version: String = client
        .query_one(
            "SELECT value FROM store_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .expect("version")
        .get(0);
    assert_eq!(version, crate::SCHEMA_VERSION.to_string());
}
