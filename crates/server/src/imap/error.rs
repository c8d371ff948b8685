//! The errors of an IMAP command and the result type of one, mapped to
//! the wire by the session (`NO` with a response code, `BAD`, or the end
//! of the connection). A leaf: store errors map to RFC 5530 codes here.

use proto_imap::Code;
use store::StoreError;

/// Errors of a command, mapped to the wire by `Session::apply`.
#[derive(Debug)]
pub enum ImapError {
    /// Tagged `NO`.
    No(Option<Code>, String),
    /// Tagged `BAD`.
    Bad(String),
    /// The client is gone (a write failed): stop.
    Gone,
}

impl ImapError {
    pub fn no(code: Option<Code>, text: impl Into<String>) -> Self {
        ImapError::No(code, text.into())
    }
}

impl From<StoreError> for ImapError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::DiskFull | StoreError::Busy | StoreError::Io(_) | StoreError::Closed => {
                Code::Unavailable
            }
            StoreError::QuotaExceeded => Code::OverQuota,
            StoreError::NotFound(_) => Code::NonExistent,
            StoreError::AlreadyExists(_) => Code::AlreadyExists,
            StoreError::Invalid(_) => Code::Cannot,
            StoreError::Limit(_) => Code::Limit,
            StoreError::NewerSchema { .. } => Code::ServerBug,
        };
        if e.is_temporary() {
            tracing::warn!(error = %e, "imap: store error");
        }
        ImapError::No(Some(code), e.to_string())
    }
}

/// The tagged OK of a successful command: a code and the text.
pub type Done = (Option<Code>, String);
pub type CmdResult = Result<Done, ImapError>;

pub fn done(text: impl Into<String>) -> CmdResult {
    Ok((None, text.into()))
}
