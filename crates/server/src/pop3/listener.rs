//! Accepts POP3 connections under the connection limits of SPEC 8 and
//! starts a session for each; stops accepting at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proto_pop3::{RespCode, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::session::Pop3Context;
use crate::conn::{ConnectionTracker, Refusal};
use crate::shutdown::Shutdown;

/// Numbers connections for the logs: every line of a session carries it.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// How long a refused client gets to read its `-ERR`.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one listening socket until shutdown.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Pop3Context>,
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
                let ctx = Arc::clone(&ctx);
                let shutdown = shutdown.clone();
                let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
                let span = tracing::info_span!("pop3", conn, client = %peer);
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
                let text = match refusal {
                    Refusal::TooManyTotal => "Too many connections, try again later",
                    Refusal::TooManyFromAddress => "Too many connections from your address",
                };
                tracing::info!(client = %peer, reason = text, "pop3 connection refused");
                tokio::spawn(async move {
                    // RFC 3206 4: SYS/TEMP, a temporary condition.
                    let bytes = Response::err_code(RespCode::SysTemp, text).to_bytes();
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
