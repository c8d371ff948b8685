//! The POP3 server (RFC 1939, with CAPA and response codes from RFC 2449,
//! SASL from RFC 5034 and the codes of RFC 3206).
//!
//! `session` holds the state machine (AUTHORIZATION, TRANSACTION, UPDATE)
//! and its dispatch table; one file per command group applies commands
//! (`login`: USER, PASS, AUTH; `listing`: STAT, LIST, UIDL; `retrieve`:
//! RETR, TOP; `update`: DELE, RSET, QUIT); `maildrop` is the snapshot of
//! the INBOX a session works on; `driver` runs a session over any async
//! stream (so a TLS stream drops in later) and `listener` accepts
//! connections under the limits of SPEC 8.

pub mod config;
pub mod driver;
pub mod listener;
mod listing;
mod login;
pub mod maildrop;
mod retrieve;
pub mod session;
mod update;

#[cfg(test)]
mod testkit;

pub use config::Pop3Config;
pub use listener::serve;
pub use session::{Action, Pop3Context, Session};
