//! SASL for AUTH (RFC 5034): the PLAIN mechanism (RFC 4616) and the
//! base64 of RFC 4648 4 that carries it. A client response of `*` cancels
//! the exchange (RFC 5034 4); the session checks for it before decoding.

use std::fmt;

/// RFC 4616 2: each of authzid, authcid and passwd is at most 255 octets.
pub const MAX_PLAIN_FIELD: usize = 255;

/// The three fields of a PLAIN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// Empty when the client acts as itself.
    pub authzid: String,
    pub authcid: String,
    pub password: String,
}

/// Why a SASL response was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// Not base64 (RFC 4648 4, padded).
    BadBase64,
    /// Not `[authzid] NUL authcid NUL passwd` of UTF-8 within the limits.
    BadPlain,
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::BadBase64 => f.write_str("invalid base64"),
            SaslError::BadPlain => f.write_str("invalid PLAIN message"),
        }
    }
}

impl std::error::Error for SaslError {}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 4648 4 base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = ((n >> (18 - 6 * i)) & 0x3f) as usize;
                out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict RFC 4648 4 decoding: length a multiple of 4, padding only at
/// the end, no other characters, no stray bits.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, SaslError> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(SaslError::BadBase64);
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (q, quad) in bytes.chunks(4).enumerate() {
        let last = q + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(SaslError::BadBase64);
        }
        let mut n = 0u32;
        for &c in quad.get(..4 - pad).unwrap_or_default() {
            n = (n << 6) | value(c).ok_or(SaslError::BadBase64)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        // Bits beyond the last octet must be zero (RFC 4648 3.5).
        if decoded
            .get(keep..)
            .unwrap_or_default()
            .iter()
            .any(|&b| b != 0)
        {
            return Err(SaslError::BadBase64);
        }
        out.extend_from_slice(decoded.get(..keep).unwrap_or_default());
    }
    Ok(out)
}

/// Decodes a PLAIN client response (base64; `=` is the empty response).
pub fn decode_plain(response: &str) -> Result<PlainCredentials, SaslError> {
    let raw = if response == "=" {
        Vec::new()
    } else {
        base64_decode(response)?
    };
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
