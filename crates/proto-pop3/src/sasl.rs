//! SASL for AUTH (RFC 5034): the mechanisms themselves (PLAIN, RFC 4616)
//! are shared by every protocol and live in `proto-common`; POP3 re-exports
//! them so its callers need one crate. A client response of `*` cancels
//! the exchange (RFC 5034 4); the session checks for it before decoding.

pub use proto_common::sasl::{
    MAX_PLAIN_FIELD, PlainCredentials, SaslError, base64_decode, base64_encode, decode_plain,
    encode_plain,
};
