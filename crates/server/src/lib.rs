//! Sessions of every protocol, as state machines over tokio sockets.
//!
//! Data flows one way (STYLE.md): socket -> protocol parser (the sans-I/O
//! `proto-*` crates) -> session state machine -> store / directory -> reply
//! serialiser -> socket. This crate owns the middle of that path and the
//! tokio drivers around it; it never parses protocol bytes itself.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod binary;
pub mod bounce;
pub mod budget;
pub mod compress;
pub mod conn;
pub mod imap;
pub mod metrics;
pub mod net;
pub mod pop3;
pub mod presence;
pub mod quota;
pub mod sasl;
pub mod shutdown;
pub mod smtp;
pub mod spool;
#[cfg(test)]
mod testutil;
pub mod throttle;
pub mod tls;

pub use auth::{Authenticator, LoginFailure};
pub use budget::MemoryBudget;
pub use conn::{ConnectionGuard, ConnectionLimits, ConnectionTracker};
pub use metrics::Metrics;
pub use net::{Conn, Listener, Role};
pub use presence::{Presence, PresenceRegistry, TerminalMessage};
pub use shutdown::Shutdown;
pub use tls::{CertSource, Tls, TlsInfo};
