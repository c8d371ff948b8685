//! Cross-node change-feed latency on PostgreSQL (issue 21: "cross-node
//! EXISTS latency p50/p99"): two store handles on one database behave as
//! two nodes; node A delivers one 4 KiB message at a time and node B's
//! feed (what an IDLE session on B waits on) reports the `Appended`
//! change. The time from A's delivery returning Ok (the commit) to B
//! seeing it is the cross-node latency; p50, p99 and the worst are printed
//! along with the commit time on A.
//!
//! Run: `cargo run --release -p store-pg --features test-cluster
//! --example feed_latency`. PostgreSQL is a private cluster
//! (`store_pg::cluster`, fsync on), removed at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{Change, Delivery, LocalTarget, Store};
use store_pg::{PgOptions, PgStore, cluster};

/// Messages delivered (one at a time).
const MESSAGES: usize = 500;
/// The message size.
const MESSAGE_BYTES: usize = 4096;
/// The longest wait for one change before the run is abandoned.
const GIVE_UP: Duration = Duration::from_secs(10);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let url = cluster::shared().create_database();
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = runtime.block_on(async {
        let a = PgStore::open(PgOptions::new(url.clone())).await?;
        let b = PgStore::open(PgOptions::new(url)).await?;
        Ok::<_, store::StoreError>((a as Arc<dyn Store>, b as Arc<dyn Store>))
    })?;
    let (commits, seen, total) = runtime.block_on(async {
        let mut feed = b.subscribe();
        let mut commits = Vec::with_capacity(MESSAGES);
        let mut seen = Vec::with_capacity(MESSAGES);
        let mut total = Vec::with_capacity(MESSAGES);
        for n in 0..MESSAGES {
            let mut raw = format!("Subject: latency {n}\r\n\r\n").into_bytes();
            raw.resize(MESSAGE_BYTES, b'x');
            let t = Instant::now();
            a.deliver(Delivery {
                local_raw: Some(raw),
                local: vec![LocalTarget::inbox("idle@example.org".to_string())],
                outbound: None,
                internal_date: 0,
            })
            .await?;
            let committed = Instant::now();
            commits.push(committed - t);
            loop {
                match tokio::time::timeout(GIVE_UP, feed.recv()).await {
                    Ok(Ok(Change::Appended { .. })) => break,
                    Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                    Ok(Err(e)) => return Err(format!("feed: {e}").into()),
                    Err(_) => return Err("no change within 10 s".into()),
                }
            }
            seen.push(committed.elapsed());
            total.push(t.elapsed());
        }
        Ok::<_, Box<dyn std::error::Error>>((commits, seen, total))
    })?;
    let (mut commits, mut seen, mut total) = (commits, seen, total);
    commits.sort();
    seen.sort();
    total.sort();
    println!(
        "{MESSAGES} deliveries on node A, seen on node B's feed from the delivery's start: \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&total, 0.5).as_secs_f64() * 1e3,
        percentile(&total, 0.99).as_secs_f64() * 1e3,
        total.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "{MESSAGES} deliveries on node A, seen on node B's feed after the commit: \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (A's commit: p50 {:.2} ms, p99 {:.2} ms)",
        percentile(&seen, 0.5).as_secs_f64() * 1e3,
        percentile(&seen, 0.99).as_secs_f64() * 1e3,
        seen.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        percentile(&commits, 0.5).as_secs_f64() * 1e3,
        percentile(&commits, 0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}
