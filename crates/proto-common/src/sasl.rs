//! SASL mechanisms shared by POP3 AUTH (RFC 5034), IMAP AUTHENTICATE
//! (RFC 9051 6.2.2) and SMTP AUTH (RFC 4954): the mechanism names, PLAIN
//! (RFC 4616) and the base64 of RFC 4648 4 that carries every mechanism.
//! LOGIN is in `login.rs`, SCRAM-SHA-256 in `scram.rs`. Sans-I/O: bytes
//! in, credentials out. A client response of `*` cancels an exchange; each
//! protocol checks for it before decoding.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// RFC 4616 2: each of authzid, authcid and passwd is at most 255 octets.
pub const MAX_PLAIN_FIELD: usize = 255;

/// The mechanisms mailroom knows (RFC 4422 3.1 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// draft-murchison-sasl-login-00.
    Login,
    /// RFC 5802 with SHA-256 (RFC 7677).
    ScramSha256,
}

impl Mechanism {
    /// Every mechanism, in the order servers usually advertise them
    /// (strongest first, RFC 4422 leaves the order to the server).
    pub const ALL: [Mechanism; 3] = [Mechanism::ScramSha256, Mechanism::Plain, Mechanism::Login];

    /// The registered name, as advertised (`AUTH=SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// The mechanism a client names; case-insensitive, since RFC 4954 4,
    /// RFC 9051 6.2.2 and RFC 5034 4 compare mechanism names that way.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// The three fields of a PLAIN message (also what LOGIN yields, with an
/// empty `authzid`). `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// Empty when the client acts as itself.
    pub authzid: String,
    pub authcid: String,
    pub password: String,
}

impl fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a SASL response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// Not base64 (RFC 4648 4, padded, canonical).
    BadBase64,
    /// Not `[authzid] NUL authcid NUL passwd` of UTF-8 within the limits,
    /// or a LOGIN user name or password that is empty, not UTF-8 or too
    /// long: the client sent credentials that cannot be checked.
    BadPlain,
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::BadBase64 => f.write_str("invalid base64"),
            SaslError::BadPlain => f.write_str("invalid PLAIN or LOGIN credentials"),
        }
    }
}

impl std::error::Error for SaslError {}

/// RFC 4648 4 base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Strict RFC 4648 4 decoding: padded, only the alphabet, no stray bits
/// (RFC 4648 3.5), as SASL asks (RFC 4422 3.3 refers to RFC 4648 4).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, SaslError> {
    STANDARD.decode(text).map_err(|_| SaslError::BadBase64)
}

/// Decodes a PLAIN client response (base64; `=` is the empty response,
/// RFC 4959 3 / RFC 5034 4).
pub fn decode_plain(response: &str) -> Result<PlainCredentials, SaslError> {
    let raw = if response == "=" {
        Vec::new()
    } else {
        base64_decode(response)?
    };
    parse_plain(&raw)
}

/// Parses a decoded PLAIN message: `[authzid] NUL authcid NUL passwd`
/// (RFC 4616 2).
pub fn parse_plain(raw: &[u8]) -> Result<PlainCredentials, SaslError> {
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::BadPlain);
    };
    let field = |b: &[u8], may_be_empty: bool| -> Result<String, SaslError> {
        if b.len() > MAX_PLAIN_FIELD || (b.is_empty() && !may_be_empty) {
            return Err(SaslError::BadPlain);
        }
        String::from_utf8(b.to_vec()).map_err(|_| SaslError::BadPlain)
    };
    Ok(PlainCredentials {
        authzid: field(authzid, true)?,
        authcid: field(authcid, false)?,
        password: field(password, false)?,
    })
}

/// Encodes a PLAIN client response (for clients and tests).
pub fn encode_plain(authzid: &str, authcid: &str, password: &str) -> String {
    let mut raw = Vec::new();
    raw.extend_from_slice(authzid.as_bytes());
    raw.push(0);
    raw.extend_from_slice(authcid.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    base64_encode(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_test_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc), Ok(plain.as_bytes().to_vec()));
        }
    }

    #[test]
    fn bad_base64_is_refused() {
        for bad in ["Zg", "Zg=a", "Z===", "Zh==", "Zm9v!A==", "Zg==Zg==", "===="] {
            assert_eq!(base64_decode(bad), Err(SaslError::BadBase64), "{bad}");
        }
    }

    #[test]
    fn rfc_4616_example_decodes() {
        // RFC 4616 4: "\0tim\0tanstaaftanstaaf".
        let c = decode_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
        assert_eq!(
            (c.authzid.as_str(), c.authcid.as_str(), c.password.as_str()),
            ("", "tim", "tanstaaftanstaaf")
        );
    }

    #[test]
    fn plain_needs_exactly_three_fields_and_a_name_and_password() {
        assert_eq!(decode_plain("="), Err(SaslError::BadPlain));
        for raw in [
            &b"a\0b"[..],
            b"\0\0pw",
            b"\0user\0",
            b"a\0b\0c\0d",
            b"\0\xff\0pw",
        ] {
            assert_eq!(
                decode_plain(&base64_encode(raw)),
                Err(SaslError::BadPlain),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn mechanism_names_are_case_insensitive() {
        assert_eq!(
            Mechanism::from_name("scram-sha-256"),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(Mechanism::from_name("Login"), Some(Mechanism::Login));
        assert_eq!(Mechanism::from_name("PLAIN"), Some(Mechanism::Plain));
        assert_eq!(Mechanism::from_name("SCRAM-SHA-256-PLUS"), None);
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
    }

    #[test]
    fn plain_password_never_prints() {
        let c = decode_plain(&encode_plain("", "tim", "tanstaaf")).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("tanstaaf"), "{shown}");
        assert!(shown.contains("tim"), "{shown}");
    }

    #[test]
    fn plain_round_trips() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let chars: Vec<char> = "aZ9 @.é€+/=".chars().collect();
        let mut word = |min: u64| -> String {
            (0..min + next() % 12)
                .map(|_| chars[(next() % chars.len() as u64) as usize])
                .collect()
        };
        for _ in 0..1000 {
            let (z, c, p) = (word(0), word(1), word(1));
            let back = decode_plain(&encode_plain(&z, &c, &p)).unwrap();
            assert_eq!((back.authzid, back.authcid, back.password), (z, c, p));
        }
    }
}
