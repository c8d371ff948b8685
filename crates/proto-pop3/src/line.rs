//! POP3 command lines (RFC 1939 3: commands end with CRLF; a bare LF is
//! accepted too, for people at telnet). The splitter is shared with SMTP
//! (`proto-common`).
//!
//! An over-long line is never buffered: the splitter switches to discarding
//! and reports [`Line::TooLong`] once, when the line finally ends, so the
//! session answers one `-ERR` and goes on with the next line.

/// RFC 2449 4 limits a command line to 255 octets and a status line to 512;
/// we accept command lines up to 512 octets, CRLF included (SPEC 2).
pub const MAX_COMMAND_LINE: usize = 512;

/// The longest client response line to a SASL challenge, CRLF included.
/// RFC 5034 4 exempts these lines from the command limit; a PLAIN response
/// is base64 of three 255-octet fields at most, about 1 KiB, so 2 KiB
/// leaves room without letting a client make us buffer much.
pub const MAX_SASL_LINE: usize = 2048;

pub use proto_common::line::{Line, LineSplitter};
