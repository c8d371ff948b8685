//! SMTP command lines, RFC 5321 2.3.8 and 4.5.3.1.4. The splitter itself is
//! shared with POP3 (`proto-common`): CRLF or a bare LF ends a line (SPEC 1
//! tolerance for people at telnet), and an over-long line is discarded as
//! it arrives and reported once, so the session answers `500 5.5.2` once.

pub use proto_common::line::{Line, LineSplitter};

/// RFC 5321 4.5.3.1.4: the maximum length of a command line is 512 octets,
/// including the command word and the CRLF.
pub const MAX_COMMAND_LINE: usize = 512;

/// RFC 5321 4.5.3.1.4 lets extensions raise the command line limit, and
/// RFC 1869 4.1.2 (now RFC 5321 4.1.2) adds up to 512 octets per MAIL/RCPT
/// parameter extension; with SIZE, BODY, SMTPUTF8, RET/ENVID, AUTH and
/// NOTIFY/ORCPT in play, 2048 octets (including CRLF) is a comfortable bound.
pub const MAX_COMMAND_LINE_WITH_PARAMS: usize = 2048;
