//! Accepts SMTP connections under the connection limits of SPEC 8 and
//! starts a session for each; stops accepting at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::session::{SmtpContext, reply};
use crate::conn::{ConnectionTracker, Refusal};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Numbers connections for the logs: every line of a session carries it.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// How long a refused client gets to read its 421.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one listening socket until shutdown.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<SmtpContext>,
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
                // Out of file descriptors and the like: back off briefly
                // rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match tracker.admit(peer.ip(), limits) {
            Ok(guard) => {
                Metrics::inc(&ctx.metrics.smtp_connections);
                let ctx = Arc::clone(&ctx);
                let shutdown = shutdown.clone();
                let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("smtp", conn, client = %peer);
                tokio::spawn(
                    async move {
                        tracing::info!("connect");
                        super::driver::run(stream, peer, ctx, shutdown).await;
                        tracing::info!("disconnect");
                        drop(guard);
                    }
                    .instrument(span),
                );
            }
            Err(refusal) => {
                Metrics::inc(&ctx.metrics.smtp_connections_refused);
                let text = match refusal {
                    Refusal::TooManyTotal => "Too many connections, try again later",
                    Refusal::TooManyFromAddress => "Too many connections from your address",
                };
                tracing::info!(client = %peer, reason = text, "smtp connection refused");
                tokio::spawn(async move {
                    let bytes = reply(421, 4, 7, 0, text).to_bytes();
                    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
                        let _ = stream.write_all(&bytes).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                });
            }
        }
    }
}
