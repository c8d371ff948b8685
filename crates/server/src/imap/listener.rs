//! Accepts IMAP connections under the connection limits of SPEC 8 and
//! starts a session for each; stops accepting at shutdown.

use std::sync::Arc;

use super::session::ImapContext;
use crate::conn::{ConnectionTracker, Refusal};
use crate::net::{Listener, accept_loop, refusal_text};
use crate::shutdown::Shutdown;

/// RFC 9051 7.1.5 and 7.1: a BYE greeting refuses the connection;
/// UNAVAILABLE says it is temporary.
fn refusal(why: Refusal) -> Vec<u8> {
    format!("* BYE [UNAVAILABLE] {}\r\n", refusal_text(why)).into_bytes()
}

/// Serves one listening socket (IMAP or IMAPS) until shutdown.
pub async fn serve(
    listener: Listener,
    ctx: Arc<ImapContext>,
    tracker: ConnectionTracker,
    shutdown: Shutdown,
) {
    let limits = ctx.config.connections;
    let exempt = ctx.config.plaintext_networks.clone();
    let metrics = Arc::clone(&ctx.metrics);
    accept_loop(
        listener,
        limits,
        &exempt,
        tracker,
        shutdown,
        |why| {
            metrics.refused("imap");
            refusal(why)
        },
        |conn, shutdown| {
            metrics.session("imap");
            super::driver::run(conn, Arc::clone(&ctx), shutdown)
        },
    )
    .await;
}
