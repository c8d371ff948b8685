//! Accepts SMTP connections under the connection limits of SPEC 8 and
//! starts a session for each; stops accepting at shutdown.

use std::sync::Arc;

use super::session::{SmtpContext, reply};
use crate::conn::{ConnectionTracker, Refusal};
use crate::metrics::Metrics;
use crate::net::{Listener, accept_loop, refusal_text};
use crate::shutdown::Shutdown;

/// 421 4.7.0 at connect (RFC 5321 3.8: the server may refuse a connection
/// with 421).
fn refusal(why: Refusal, metrics: &Metrics) -> Vec<u8> {
    metrics.refused("smtp");
    reply(421, 4, 7, 0, refusal_text(why)).to_bytes()
}

/// Serves one listening socket (MTA, submission or submissions) until
/// shutdown.
pub async fn serve(
    listener: Listener,
    ctx: Arc<SmtpContext>,
    tracker: ConnectionTracker,
    shutdown: Shutdown,
) {
    let limits = ctx.config.connections;
    let metrics = Arc::clone(&ctx.metrics);
    let refuse = |why| refusal(why, &metrics);
    let exempt = ctx.config.local_networks.clone();
    accept_loop(
        listener,
        limits,
        &exempt,
        tracker,
        shutdown,
        refuse,
        |conn, shutdown| {
            metrics.session("smtp");
            super::driver::run(conn, Arc::clone(&ctx), shutdown)
        },
    )
    .await;
}
