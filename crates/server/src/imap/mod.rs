//! The IMAP server (RFC 9051 IMAP4rev2, RFC 3501 IMAP4rev1).
//!
//! `session` holds the state machine (each state with its data), the
//! table of commands each state allows and the capability list; one file
//! per command group applies commands (`login`, `misc`, `folders`,
//! `list`, `select`, `fetch`, `flags`, `copy`, `append`, `search`); `view` is a selected
//! mailbox's sequence-number view and its pure diff, `selected` the
//! selected state's data, which feeds the view what changed in the store;
//! the leaves `context`, `error` and `out` hold what every session shares,
//! the error type and the response buffer; `hub` routes the store's change
//! feed to the sessions that watch a mailbox (so an idle session costs no
//! CPU); `driver` runs a session over any async stream and `listener`
//! accepts connections under the limits of SPEC 8.

mod append;
pub mod config;
pub mod context;
mod context_search;
mod copy;
pub mod driver;
pub mod error;
mod fetch;
mod fetch_part;
mod fetch_stream;
mod flags;
mod folders;
pub mod hub;
mod list;
pub mod listener;
mod login;
mod metadata;
mod misc;
mod notify;
pub mod out;
mod quota;
mod search;
mod search_big;
mod select;
mod selected;
pub mod session;
mod sort;
#[cfg(test)]
mod testkit;
mod urlauth;
mod view;

pub use config::ImapConfig;
pub use listener::serve;
pub use session::{ImapContext, Session};
