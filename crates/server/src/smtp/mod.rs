//! The SMTP server (RFC 5321, with RFC 821's SEND/SOML/SAML).
//!
//! `session` holds the state machine and dispatch table; one file per
//! command group applies commands (`mail`, `rcpt`, `data`, `info`, `auth`);
//! the `delivery` crate builds the trace fields and stores; `driver` runs a session
//! over any async stream (so a TLS stream drops in later) and `listener`
//! accepts connections under the limits of SPEC 8.

pub mod auth;
pub mod checks;
pub mod config;
mod data;
pub mod driver;
mod info;
pub mod listener;
mod mail;
mod quota;
mod rcpt;
pub mod session;

#[cfg(test)]
pub(crate) mod testkit;

pub use config::{SmtpConfig, VrfyPolicy};
pub use listener::serve;
pub use session::{Action, Session, SmtpContext};
