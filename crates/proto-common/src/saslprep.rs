//! SASLprep (RFC 4013): the stringprep profile (RFC 3454) that SCRAM
//! applies to user names and passwords (RFC 5802 2.2 "Normalize", 5.1).
//!
//! The `stringprep` crate does the work: RFC 4013 2 (mapping: non-ASCII
//! spaces to U+0020, "commonly mapped to nothing" removed), NFKC (2.2),
//! the prohibited output of 2.3 and the bidirectional rules of 2.4, with
//! the Unicode 3.2 tables of RFC 3454. It treats every string as a stored
//! string (RFC 3454 7: unassigned code points are refused), which is the
//! stricter reading; [`saslprep_password`] relaxes that for passwords.

use std::borrow::Cow;
use std::fmt;

/// A string that SASLprep refuses (a prohibited character, a bidi rule, or
/// nothing left after mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepError;

impl fmt::Display for PrepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the string is refused by SASLprep (RFC 4013)")
    }
}

impl std::error::Error for PrepError {}

/// SASLprep of `text`; an empty result is refused too, since RFC 5802 5.1
/// aborts on it ("results in an empty string").
pub fn saslprep(text: &str) -> Result<Cow<'_, str>, PrepError> {
    match stringprep::saslprep(text) {
        Ok(prepped) if !prepped.is_empty() => Ok(prepped),
        _ => Err(PrepError),
    }
}

/// The form of a password that SCRAM hashes (RFC 5802 2.2 Normalize):
/// SASLprep'd when SASLprep accepts it, else the password as it is. A
/// client that prepares the password as a query string (RFC 3454 7, which
/// lets unassigned code points such as newer emoji through unchanged)
/// arrives at the same octets, and a password that no SASLprep accepts
/// still gets keys, as PostgreSQL does.
pub fn saslprep_password(password: &str) -> Cow<'_, str> {
    saslprep(password).unwrap_or(Cow::Borrowed(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4013_3_examples() {
        // RFC 4013 3, the table of examples.
        assert_eq!(saslprep("I\u{00AD}X").unwrap(), "IX");
        assert_eq!(saslprep("user").unwrap(), "user");
        assert_eq!(saslprep("USER").unwrap(), "USER");
        assert_eq!(saslprep("\u{00AA}").unwrap(), "a");
        assert_eq!(saslprep("\u{2168}").unwrap(), "IX");
        assert_eq!(saslprep("\u{0007}"), Err(PrepError));
        assert_eq!(saslprep("\u{0627}\u{0031}"), Err(PrepError));
    }

    #[test]
    fn spaces_map_and_nothing_left_is_refused() {
        // RFC 4013 2.1: non-ASCII space to SPACE; 2.1: soft hyphen to nothing.
        assert_eq!(saslprep("a\u{00A0}b").unwrap(), "a b");
        assert_eq!(saslprep("\u{00AD}"), Err(PrepError));
        assert_eq!(saslprep(""), Err(PrepError));
    }

    #[test]
    fn passwords_saslprep_refuses_are_kept_as_they_are() {
        assert_eq!(saslprep_password("I\u{00AD}X"), "IX");
        assert_eq!(saslprep_password("bell\u{0007}"), "bell\u{0007}");
        assert_eq!(saslprep_password("key \u{1F511}"), "key \u{1F511}");
    }
}
