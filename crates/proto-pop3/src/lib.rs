//! Sans-I/O POP3 server-side protocol library.
//!
//! Bytes in, typed values out, and typed responses back to bytes: no
//! sockets, no files, no clock, no `async`. The session state machine lives
//! in the `server` crate; this crate only knows the wire format.
//!
//! - [`line`]: splitting the command stream into lines, with the 512-octet
//!   limit (RFC 2449 4) and a discard state for longer lines.
//! - [`command`]: the commands of RFC 1939 (USER, PASS, STAT, LIST, RETR,
//!   DELE, NOOP, RSET, TOP, QUIT, UIDL), CAPA (RFC 2449), STLS (RFC 2595)
//!   and AUTH (RFC 5034); APOP is recognised and refused.
//! - [`response`]: `+OK` / `-ERR` status lines with the response codes of
//!   RFC 2449 8 and RFC 3206, and the SASL continuation of RFC 5034.
//! - [`multiline`]: dot-stuffed multi-line bodies (RFC 1939 3) and TOP's
//!   cut of a message (RFC 1939 7).
//! - [`sasl`]: the PLAIN mechanism (RFC 4616) and the base64 it rides on.

#![forbid(unsafe_code)]

pub mod command;
pub mod line;
pub mod multiline;
pub mod response;
pub mod sasl;

pub use command::{AuthStart, Command, CommandError, MsgNum, parse_command};
pub use line::{Line, LineSplitter, MAX_COMMAND_LINE, MAX_SASL_LINE};
pub use multiline::{DotStuffer, TopCut, parse_multiline, top, write_lines};
pub use response::write_continuation;
pub use response::{MAX_STATUS_LINE, RespCode, Response, ResponseError, parse_response};
pub use sasl::{PlainCredentials, SaslError, decode_plain, encode_plain};

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
