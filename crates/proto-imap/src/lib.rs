//! Sans-I/O IMAP server-side protocol library (RFC 9051 IMAP4rev2 and
//! RFC 3501 IMAP4rev1).
//!
//! Bytes in, typed values out, and typed responses back to bytes: no
//! sockets, no files, no clock, no `async`. The session state machine lives
//! in the `server` crate.
//!
//! - [`framer`]: cuts the input stream into whole commands, literals
//!   included (RFC 9051 4.3, RFC 7888 LITERAL+ / LITERAL-), under limits.
//! - [`lexer`]: the grammar's tokens (atom, string, literal, number...).
//! - [`types`]: validated newtypes: [`Tag`], [`Mailbox`], [`SeqSet`], flags.
//! - [`command`]: the command grammar (RFC 9051 6, 9; RFC 3501 6).
//! - [`fetch`]: FETCH attributes and body sections (RFC 9051 6.4.5).
//! - [`metadata`]: GETMETADATA and SETMETADATA (RFC 5464).
//! - [`notify`]: the NOTIFY command (RFC 5465).
//! - [`search`]: SEARCH keys and return options (RFC 9051 6.4.4).
//! - [`serialize`]: commands back to bytes (the client side, for
//!   round-trip tests and tools).
//! - [`response`]: responses and their serialisation (RFC 9051 7).
//! - [`urlauth`]: URLAUTH's IMAP URLs (RFC 4467, RFC 5092).
//! - [`utf7`]: modified UTF-7 mailbox names (RFC 3501 5.1.3).
//! - [`date`]: INTERNALDATE and search dates.
//! - [`mime`]: a message's MIME structure, ENVELOPE, BODYSTRUCTURE and
//!   section extraction (RFC 9051 6.4.5, 7.5.2; RFC 2045/2046).

#![forbid(unsafe_code)]

pub mod append;
pub mod command;
pub mod date;
pub mod fetch;
pub mod framer;
pub mod imapurl;
pub mod lexer;
pub mod metadata;
pub mod mime;
pub mod notify;
pub mod response;
pub mod search;
pub mod serialize;
pub mod sort;
pub mod types;
pub mod urlauth;
pub mod utf7;

pub use append::{AppendData, AppendMessage, CatPart};
pub use command::{
    Command, CommandKind, FetchModifiers, ListCommand, ParseError, QResync, SelectParams, StoreOp,
    parse_command,
};
pub use fetch::{FetchAtt, Section, SectionText};
pub use framer::{Frame, Framer, FramerLimits};
pub use response::{Code, Data, Encoder, FetchValue, MetadataCode, Response, Status};
pub use search::{SearchKey, SearchReturn};
pub use types::{Mailbox, SeqNum, SeqSet, Tag};

#[cfg(test)]
mod tests;
