//! Accepts POP3 connections under the connection limits of SPEC 8 and
//! starts a session for each; stops accepting at shutdown.

use std::sync::Arc;

use proto_pop3::{RespCode, Response};

use super::session::Pop3Context;
use crate::conn::{ConnectionTracker, Refusal};
use crate::net::{Listener, accept_loop, refusal_text};
use crate::shutdown::Shutdown;

/// RFC 3206 4: SYS/TEMP, a temporary condition.
fn refusal(why: Refusal) -> Vec<u8> {
    Response::err_code(RespCode::SysTemp, refusal_text(why)).to_bytes()
}

/// Serves one listening socket (POP3 or POP3S) until shutdown.
pub async fn serve(
    listener: Listener,
    ctx: Arc<Pop3Context>,
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
            metrics.refused("pop3");
            refusal(why)
        },
        |conn, shutdown| {
            metrics.session("pop3");
            super::driver::run(conn, Arc::clone(&ctx), shutdown)
        },
    )
    .await;
}
