//! Deliveries/s of the PostgreSQL store next to the SQLite store in the
//! same run, on this machine: 4 KiB local deliveries with 1, 20 and 64
//! concurrent writers, all to one account and spread over 64 accounts
//! (PostgreSQL serialises the writes of one account on its change_heads
//! row; SQLite serialises every write but puts many in one commit).
//!
//! Run: `cargo run --release -p store-pg --features test-cluster
//! --example commit_bench`. PostgreSQL is a private cluster
//! (`store_pg::cluster`, fsync on) in the system's temporary directory;
//! SQLite works in a temporary directory under the current one. Both are
//! removed at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{Delivery, LocalTarget, SqliteStore, Store, StoreError, StoreOptions};
use store_pg::{PgOptions, PgStore, cluster};

/// How long each scenario runs.
const RUN: Duration = Duration::from_secs(3);
/// The message size of every delivery.
const MESSAGE_BYTES: usize = 4096;
/// Accounts of the spread scenario.
const ACCOUNTS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::Builder::new()
        .prefix(".commit_bench")
        .tempdir_in(".")?;
    let sqlite: Arc<dyn Store> =
        SqliteStore::open(&dir.path().join("data"), StoreOptions::default())?;
    let url = cluster::shared().create_database();
    let pg: Arc<dyn Store> = runtime.block_on(PgStore::open(PgOptions::new(url)))?;
    for (name, store) in [("sqlite", &sqlite), ("postgres", &pg)] {
        for accounts in [1usize, ACCOUNTS] {
            for concurrency in [1usize, 20, 64] {
                let before = store.stats();
                let (per_sec, latency) = runtime.block_on(run(store, concurrency, accounts))?;
                let after = store.stats();
                let commits = after.commits.saturating_sub(before.commits).max(1);
                let ops = after.ops.saturating_sub(before.ops);
                println!(
                    "{name:>8}: {concurrency:>2} concurrent, {accounts:>2} account(s): \
                     {per_sec:>7.0} deliveries/s, mean latency {:.2} ms, {:.1} per commit",
                    latency.as_secs_f64() * 1e3,
                    ops as f64 / commits as f64
                );
            }
        }
    }
    Ok(())
}

async fn run(
    store: &Arc<dyn Store>,
    concurrency: usize,
    accounts: usize,
) -> Result<(f64, Duration), StoreError> {
    let start = Instant::now();
    let deadline = start + RUN;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut waited = Duration::ZERO;
            while Instant::now() < deadline {
                let mut raw = format!("Subject: bench {worker} {done}\r\n\r\n").into_bytes();
                raw.resize(MESSAGE_BYTES, b'x');
                let account = format!("bench{}@example.org", (worker + done as usize) % accounts);
                let t = Instant::now();
                store
                    .deliver(Delivery {
                        local_raw: Some(raw),
                        local: vec![LocalTarget::inbox(account)],
                        outbound: None,
                        internal_date: 0,
                    })
                    .await?;
                waited += t.elapsed();
                done += 1;
            }
            Ok::<_, StoreError>((done, waited))
        }));
    }
    let mut total = 0u64;
    let mut waited = Duration::ZERO;
    for t in tasks {
        let (n, w) = t.await.map_err(|e| StoreError::Io(e.to_string()))??;
        total += n;
        waited += w;
    }
    Ok((
        total as f64 / start.elapsed().as_secs_f64(),
        waited / u32::try_from(total.max(1)).unwrap_or(u32::MAX),
    ))
}
