//! Sans-I/O pieces shared by the protocol crates: the line splitter of the
//! line-based protocols (SMTP, POP3) and the SASL mechanisms (PLAIN, LOGIN,
//! SCRAM-SHA-256) that POP3 AUTH, IMAP AUTHENTICATE and SMTP AUTH all
//! carry.
#![forbid(unsafe_code)]

pub mod escape;
pub mod line;
pub mod login;
pub mod sasl;
pub mod saslprep;
pub mod scram;

pub use escape::{LogSafe, log_safe};
pub use line::{Line, LineSplitter};
pub use login::{LOGIN_PASSWORD_CHALLENGE, LOGIN_USERNAME_CHALLENGE, LoginServer, LoginStep};
pub use sasl::{
    MAX_PLAIN_FIELD, Mechanism, PlainCredentials, SaslError, base64_decode, base64_encode,
    decode_plain, encode_plain, parse_plain,
};
pub use saslprep::{PrepError, saslprep, saslprep_password};
pub use scram::{
    KEY_LEN, MIN_ITERATIONS, SERVER_NONCE_LEN, ScramClient, ScramClientFinal, ScramError,
    ScramKeys, ScramNeedKeys, ScramOutcome, ScramSentFirst, ScramServer, ServerNonce, derive_keys,
};
