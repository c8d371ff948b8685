//! Accepts IMAP connections under the connection limits of SPEC 8 and
//! starts a session for each; stops accepting at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::session::ImapContext;
use crate::conn::{ConnectionTracker, Refusal};
use crate::shutdown::Shutdown;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// How long a refused client gets to read its BYE.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one listening socket until shutdown.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ImapContext>,
    tracker: ConnectionTracker,
    mut shutdown: Shutdown,
) {
    let limits = ctx.config.connections;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match tracker.admit(peer.ip(), limits) {
            Ok(guard) => {
                let ctx = Arc::clone(&ctx);
                let shutdown = shutdown.clone();
                let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("imap", conn, client = %peer);
                tokio::spawn(
                    async move {
                        tracing::debug!("connect");
                        super::driver::run(stream, peer, ctx, shutdown).await;
                        tracing::debug!("disconnect");
                        drop(guard);
                    }
                    .instrument(span),
                );
            }
            Err(refusal) => {
                let text: &[u8] = match refusal {
                    Refusal::TooManyTotal => b"* BYE [UNAVAILABLE] Too many connections\r\n",
                    Refusal::TooManyFromAddress => {
                        b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
                    }
                };
                tracing::info!(client = %peer, "imap connection refused");
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
                        let _ = stream.write_all(text).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                });
            }
        }
    }
}
