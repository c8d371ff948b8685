//! The fixture every protocol's session test kit starts from: a temporary
//! directory with a real directory (domain example.test, users alice
//! "Alice Liddell" and bob, password "pw", argon2 at its cheapest) and a
//! real store.

use std::sync::Arc;

use backends::BackendConfig;
use directory::{Directory, DirectoryConfig};
use store::Store;

pub(crate) const ALICE: &str = "alice@example.test";
pub(crate) const BOB: &str = "bob@example.test";

pub(crate) struct Fixture {
    /// Keeps the files alive as long as the fixture.
    pub dir: tempfile::TempDir,
    pub directory: Arc<dyn Directory>,
    pub store: Arc<dyn Store>,
}

/// The cheapest argon2 costs, domain example.test.
pub(crate) fn directory_config() -> DirectoryConfig {
    DirectoryConfig {
        domains: vec!["example.test".into()],
        argon2_m_cost: 64,
        argon2_t_cost: 1,
        ..DirectoryConfig::default()
    }
}

/// The configured backend's store and directory in `dir`, through the
/// factories that `mailroom serve` uses.
pub(crate) fn backends(
    dir: &std::path::Path,
    config: DirectoryConfig,
) -> (Arc<dyn Store>, Arc<dyn Directory>) {
    let config = BackendConfig::sqlite(dir, config);
    let store = backends::open_store(&config).expect("store");
    let directory = backends::open_directory(&config).expect("directory");
    (store, directory)
}

/// Runs a future to its end on a runtime of its own, on a thread of its
/// own: for fixtures built in sync code that a test's runtime calls.
pub(crate) fn block_on<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    })
    .join()
    .expect("fixture thread")
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, directory) = backends(dir.path(), directory_config());
    let d = Arc::clone(&directory);
    block_on(async move {
        d.add_user(ALICE, Some("Alice Liddell"), "pw")
            .await
            .expect("alice");
        d.add_user(BOB, None, "pw").await.expect("bob");
    });
    Fixture {
        dir,
        directory,
        store,
    }
}

/// Runs a driver over a one-octet pipe, holding a real connection slot.
/// The client sends `input` and reads until a line starts with `last`
/// (the first octets of the session's final reply); then the server is
/// blocked writing the rest of that reply. Returns whether the slot was
/// still held at that moment (it must not be: SPEC 8, issue 8).
pub(crate) async fn slot_held_during_final_reply<F, Fut>(input: &[u8], last: &[u8], run: F) -> bool
where
    F: FnOnce(crate::net::Conn) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tracker = crate::ConnectionTracker::new();
    let limits = crate::ConnectionLimits {
        max_total: 10,
        max_per_ip: 10,
    };
    let peer = std::net::SocketAddr::from(([192, 0, 2, 1], 40000));
    let slot = tracker
        .admit("smtp", peer.ip(), limits, false)
        .expect("admit");
    let (client, server) = tokio::io::duplex(1);
    let conn = crate::net::Conn {
        stream: crate::net::Stream::plain(server),
        peer,
        role: crate::net::Role::Mta,
        slot: Some(slot),
    };
    let task = tokio::spawn(run(conn));
    let (mut rd, mut wr) = tokio::io::split(client);
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&input).await;
        wr
    });
    let mut seen = vec![b'\n'];
    let mut marker = b"\n".to_vec();
    marker.extend_from_slice(last);
    let deadline = std::time::Duration::from_secs(10);
    while !seen.ends_with(&marker) {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(deadline, rd.read(&mut byte))
            .await
            .expect("read timed out")
            .expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&byte);
    }
    let held = tracker.active() > 0;
    // Let the session finish.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(deadline, rd.read_to_end(&mut rest)).await;
    let _ = writer.await;
    let _ = task.await;
    held
}

/// Runs a driver over an in-memory pipe: sends `prelude` at once, then
/// `drip` one octet every `every`, until the server closes. Returns what
/// the server sent and how many octets of `drip` went out before it
/// closed: fewer than all of them when a timeout bounds the command.
pub(crate) async fn drip<F, Fut>(
    prelude: &[u8],
    drip: &[u8],
    every: std::time::Duration,
    run: F,
) -> (String, usize)
where
    F: FnOnce(crate::net::Conn) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (client, server) = tokio::io::duplex(1 << 16);
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    let task = tokio::spawn(run(crate::net::Conn::test(
        server,
        peer,
        crate::net::Role::Mta,
    )));
    let (mut rd, mut wr) = tokio::io::split(client);
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), rd.read_to_end(&mut out))
            .await;
        out
    });
    let _ = wr.write_all(prelude).await;
    let mut sent = 0;
    for b in drip {
        if reader.is_finished() || wr.write_all(std::slice::from_ref(b)).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(every).await;
    }
    let out = reader.await.unwrap_or_default();
    drop(wr);
    let _ = task.await;
    (String::from_utf8_lossy(&out).into_owned(), sent)
}
