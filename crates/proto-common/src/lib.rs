//! Sans-I/O pieces shared by the protocol crates: the line splitter of the
//! line-based protocols (SMTP, POP3) and the SASL mechanisms (PLAIN) that
//! POP3 AUTH, IMAP AUTHENTICATE and SMTP AUTH all carry.
#![forbid(unsafe_code)]

pub mod escape;
pub mod line;
pub mod sasl;

pub use escape::{LogSafe, log_safe};
pub use line::{Line, LineSplitter};
pub use sasl::{
    MAX_PLAIN_FIELD, PlainCredentials, SaslError, base64_decode, base64_encode, decode_plain,
    encode_plain, parse_plain,
};
