//! Sans-I/O SMTP server-side protocol library.
//!
//! Bytes in, typed values out, and typed replies back to bytes: no sockets,
//! no files, no clock, no `async`. The session state machine lives in the
//! `server` crate; this crate only knows the wire format.
//!
//! - [`line`]: splitting the command stream into lines (RFC 5321 4.5.3.1.4).
//! - [`command`]: the command grammar (RFC 5321 4.1.1, 4.1.2; RFC 821 3.4
//!   for SEND, SOML and SAML; RFC 3030 BDAT; RFC 3207 STARTTLS; RFC 4954 AUTH).
//! - [`address`]: reverse- and forward-paths (RFC 5321 4.1.2, 4.5.3.1;
//!   RFC 6531 for UTF-8 addresses).
//! - [`params`]: MAIL and RCPT parameters (RFC 1870, 6152, 3030, 6531, 3461, 4954).
//! - [`reply`]: replies and enhanced status codes (RFC 5321 4.2, RFC 3463, RFC 2034).
//! - [`data`]: the DATA content stream (RFC 5321 4.1.1.4, 4.5.2) with the
//!   SMTP smuggling defence from SPEC section 1.

#![forbid(unsafe_code)]

pub mod address;
pub mod command;
pub mod data;
pub mod line;
pub mod params;
pub mod reply;

pub use address::{MAX_DOMAIN, MAX_LABEL, MAX_LOCAL_PART, MAX_PATH, Path};
pub use command::{Command, CommandError, MailFrom, RcptTo, ReversePath, parse_command};
pub use data::{CrlfNormalizer, DataReceiver, DataStatus, canonicalize_line_endings};
pub use line::{Line, LineSplitter, MAX_COMMAND_LINE, MAX_COMMAND_LINE_WITH_PARAMS};
pub use params::{Body, MailParams, Notify, RcptParams, Ret, xtext_decode, xtext_encode};
pub use reply::{EnhancedCode, Reply, ReplyError, parse_reply};

/// Outcome of a parser that may need more input.
///
/// `Complete(value, consumed)` says how many bytes of the buffer the value
/// used, so the caller can drop exactly those and keep pipelined input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole value, and the number of bytes it took.
    Complete(T, usize),
    /// The buffer ends before the value does: read more and call again.
    Incomplete,
}
