//! Measures the store's write path on this machine:
//!
//! 1. the cost of one fdatasync (append 4 KiB + fdatasync, in a loop);
//! 2. deliveries/s when each delivery waits for its own commit;
//! 3. deliveries/s and operations per commit with 20 and 64 concurrent
//!    4 KiB deliveries (group commit).
//!
//! Run: `cargo run --release -p store --example commit_bench`. It works in a
//! temporary directory under the current directory (not /tmp, which may be
//! tmpfs, where fsync costs nothing) and removes it at the end.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{Delivery, SqliteStore, Store, StoreOptions};

/// How long the fdatasync loop runs.
const FSYNC_RUN: Duration = Duration::from_secs(2);
/// How long each delivery scenario runs.
const DELIVERY_RUN: Duration = Duration::from_secs(3);
/// The message size of every delivery.
const MESSAGE_BYTES: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new()
        .prefix(".commit_bench")
        .tempdir_in(".")?;
    println!("working directory: {}", dir.path().display());

    let per_sync = fsync_cost(dir.path())?;
    println!(
        "1. append 4 KiB + fdatasync: {:.3} ms each ({:.0}/s)",
        per_sync.as_secs_f64() * 1e3,
        1.0 / per_sync.as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = SqliteStore::open(&dir.path().join("data"), StoreOptions::default())?;
    runtime.block_on(store.ensure_account("bench@example.org".into()))?;
    for concurrency in [1usize, 20, 64] {
        let r = runtime.block_on(deliveries(&store, concurrency))?;
        println!(
            "{}. {concurrency:>2} concurrent: {:>7.0} deliveries/s, {:>6.1} ops/commit, \
             {:.3} fsyncs/message, mean latency {:.2} ms",
            if concurrency == 1 { 2 } else { 3 },
            r.per_sec,
            r.ops_per_commit,
            1.0 / r.ops_per_commit,
            r.mean_latency.as_secs_f64() * 1e3
        );
    }
    store.shutdown();
    Ok(())
}

fn fsync_cost(dir: &Path) -> std::io::Result<Duration> {
    let path = dir.join("fsync.bin");
    let mut file = std::fs::File::create(&path)?;
    let block = vec![0x5au8; 4096];
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < FSYNC_RUN {
        file.write_all(&block)?;
        file.sync_data()?;
        n += 1;
    }
    let elapsed = start.elapsed();
    std::fs::remove_file(&path)?;
    Ok(elapsed / n.max(1))
}

struct RunResult {
    per_sec: f64,
    ops_per_commit: f64,
    mean_latency: Duration,
}

async fn deliveries(
    store: &Arc<SqliteStore>,
    concurrency: usize,
) -> Result<RunResult, store::StoreError> {
    let before = store.stats();
    let start = Instant::now();
    let deadline = start + DELIVERY_RUN;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut waited = Duration::ZERO;
            while Instant::now() < deadline {
                let mut raw = format!("Subject: bench {worker} {done}\r\n\r\n").into_bytes();
                raw.resize(MESSAGE_BYTES, b'x');
                let t = Instant::now();
                store
                    .deliver(Delivery {
                        local_raw: Some(raw),
                        local: vec![store::LocalTarget::inbox("bench@example.org")],
                        outbound: None,
                        internal_date: 0,
                    })
                    .await?;
                waited += t.elapsed();
                done += 1;
            }
            Ok::<_, store::StoreError>((done, waited))
        }));
    }
    let mut total = 0u64;
    let mut waited = Duration::ZERO;
    for t in tasks {
        let (n, w) = t
            .await
            .map_err(|e| store::StoreError::Io(e.to_string()))??;
        total += n;
        waited += w;
    }
    let elapsed = start.elapsed();
    let after = store.stats();
    let commits = (after.commits - before.commits).max(1);
    Ok(RunResult {
        per_sec: total as f64 / elapsed.as_secs_f64(),
        ops_per_commit: (after.ops - before.ops) as f64 / commits as f64,
        mean_latency: waited / u32::try_from(total.max(1)).unwrap_or(u32::MAX),
    })
}
