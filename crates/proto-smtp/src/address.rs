//! Reverse- and forward-paths, RFC 5321 4.1.2, 4.1.3 and 4.5.3.1, with
//! RFC 6531 3.3 (UTF-8 in local parts and domains) and RFC 5321 4.1.2 /
//! appendix C (source routes are accepted and the route dropped).
//!
//! The parser is a little more tolerant than the grammar, as mature servers
//! are: an unqualified `<frol>` is a path without a domain (the session
//! decides whether to qualify it, SPEC section 1), and underscores are
//! accepted in domain labels because real host names carry them.

use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_PART: usize = 64;

/// RFC 5321 4.5.3.1.2: a domain is at most 255 octets.
pub const MAX_DOMAIN: usize = 255;

/// RFC 5321 4.5.3.1.3: a reverse- or forward-path is at most 256 octets,
/// including the punctuation and element separators (the angle brackets).
pub const MAX_PATH: usize = 256;

/// RFC 1035 2.3.4 (referenced by RFC 5321 2.3.5): a label is at most 63 octets.
pub const MAX_LABEL: usize = 63;

/// A mailbox in a reverse- or forward-path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The local part as written: its case is kept (RFC 5321 2.4), and a
    /// quoted string keeps its quotes, e.g. `"john doe"`.
    pub local: String,
    /// `None` for an unqualified path such as `<Postmaster>`; otherwise the
    /// domain as written, or an address literal like `[1.2.3.4]`.
    pub domain: Option<String>,
}

impl Path {
    /// `local@domain`, or just `local` when unqualified.
    pub fn address(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{}", self.local, d),
            None => self.local.clone(),
        }
    }

    /// True when neither part needs SMTPUTF8 (RFC 6531 3.4).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.as_deref().is_none_or(str::is_ascii)
    }
}

/// Why a path was refused; the command parser maps this to 501 5.1.7 or 5.1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressError {
    Syntax,
    LocalTooLong,
    DomainTooLong,
    PathTooLong,
}

/// Parses a path as it appears after `FROM:` or `TO:`: `<...>` or, tolerated,
/// a bare mailbox. Returns `None` for the null path `<>`.
pub(crate) fn parse_path(text: &str) -> Result<Option<Path>, AddressError> {
    let (inner, len) = match text.strip_prefix('<') {
        Some(rest) => match rest.strip_suffix('>') {
            Some(inner) => (inner, text.len()),
            None => return Err(AddressError::Syntax),
        },
        // A bare address counts as if it had its angle brackets.
        None => (text, text.len().saturating_add(2)),
    };
    if len > MAX_PATH {
        return Err(AddressError::PathTooLong);
    }
    if inner.is_empty() {
        return if text.starts_with('<') {
            Ok(None)
        } else {
            Err(AddressError::Syntax)
        };
    }
    let mailbox = strip_source_route(inner)?;
    parse_mailbox(mailbox).map(Some)
}

/// RFC 5321 4.1.2: `A-d-l ":"` may precede the mailbox; servers must accept
/// and ignore it (appendix C).
fn strip_source_route(inner: &str) -> Result<&str, AddressError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let (route, mailbox) = inner.split_once(':').ok_or(AddressError::Syntax)?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@').ok_or(AddressError::Syntax)?;
        if !is_domain(domain) {
            return Err(AddressError::Syntax);
        }
    }
    Ok(mailbox)
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`, or a bare local part.
fn parse_mailbox(mailbox: &str) -> Result<Path, AddressError> {
    let local_len = local_part_len(mailbox).ok_or(AddressError::Syntax)?;
    let local = mailbox.get(..local_len).ok_or(AddressError::Syntax)?;
    let rest = mailbox.get(local_len..).ok_or(AddressError::Syntax)?;
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalTooLong);
    }
    let domain = if rest.is_empty() {
        None
    } else {
        let domain = rest.strip_prefix('@').ok_or(AddressError::Syntax)?;
        if domain.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        if !(is_domain(domain) || is_address_literal(domain)) {
            return Err(AddressError::Syntax);
        }
        Some(domain.to_string())
    };
    Ok(Path {
        local: local.to_string(),
        domain,
    })
}

/// Length in bytes of the local part at the start of `s` (a dot-string or a
/// quoted string), or `None` if there is no valid one.
fn local_part_len(s: &str) -> Option<usize> {
    if s.starts_with('"') {
        return quoted_string_len(s);
    }
    let end = s.find('@').unwrap_or(s.len());
    let dot_string = s.get(..end)?;
    let valid = !dot_string.is_empty()
        && dot_string
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    valid.then_some(end)
}

/// RFC 5321 4.1.2 `Quoted-string`, with RFC 6531 3.3 UTF-8 in `qtextSMTP`.
/// Returns the length including both quotes.
fn quoted_string_len(s: &str) -> Option<usize> {
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return i.checked_add(1),
            // quoted-pairSMTP = "\" followed by any printable ASCII or space.
            '\\' => match chars.next() {
                Some((_, q)) if (' '..='~').contains(&q) => {}
                _ => return None,
            },
            c if is_qtext(c) => {}
            _ => return None,
        }
    }
    None
}

/// RFC 5322 3.2.3 `atext`, plus UTF-8 (RFC 6531 3.3).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// RFC 5321 4.1.2 `qtextSMTP`: printable ASCII and space except `"` and `\`,
/// plus UTF-8 (RFC 6531 3.3).
fn is_qtext(c: char) -> bool {
    (c.is_ascii() && (' '..='~').contains(&c) && c != '"' && c != '\\')
        || (!c.is_ascii() && !c.is_control())
}

/// RFC 5321 4.1.2 `Domain`: dot-separated labels of letters, digits and
/// hyphens, not starting or ending with a hyphen; RFC 6531 allows U-labels.
pub(crate) fn is_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= MAX_DOMAIN
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || c == '-'
                        || c == '_'
                        || (!c.is_ascii() && !c.is_control())
                })
        })
}

/// RFC 5321 4.1.3 `address-literal`: `[IPv4]`, `[IPv6:...]` or a
/// general literal `[tag:content]`.
pub(crate) fn is_address_literal(literal: &str) -> bool {
    let Some(inner) = literal.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    if let Some((tag, content)) = inner.split_once(':') {
        if tag.eq_ignore_ascii_case("IPv6") {
            return content.parse::<Ipv6Addr>().is_ok();
        }
        // General-address-literal = Standardized-tag ":" 1*dcontent
        let tag_ok = !tag.is_empty()
            && !tag.ends_with('-')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric());
        let content_ok =
            !content.is_empty() && content.bytes().all(|b| matches!(b, 33..=90 | 94..=126));
        return tag_ok && content_ok;
    }
    inner.parse::<Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(local: &str, domain: Option<&str>) -> Option<Path> {
        Some(Path {
            local: local.to_string(),
            domain: domain.map(str::to_string),
        })
    }

    #[test]
    fn simple_path_keeps_case() {
        assert_eq!(
            parse_path("<Smith@Bar.com>"),
            Ok(path("Smith", Some("Bar.com")))
        );
    }

    #[test]
    fn null_path_is_none() {
        assert_eq!(parse_path("<>"), Ok(None));
    }

    #[test]
    fn bare_mailbox_without_brackets_is_accepted() {
        assert_eq!(parse_path("a@b"), Ok(path("a", Some("b"))));
    }

    #[test]
    fn unqualified_path_has_no_domain() {
        assert_eq!(parse_path("<frol>"), Ok(path("frol", None)));
        assert_eq!(parse_path("<Postmaster>"), Ok(path("Postmaster", None)));
    }

    #[test]
    fn source_route_is_dropped() {
        assert_eq!(parse_path("<@a,@b.c:user@d>"), Ok(path("user", Some("d"))));
        assert_eq!(parse_path("<@a:user@d>"), Ok(path("user", Some("d"))));
        assert_eq!(parse_path("<@a,b:user@d>"), Err(AddressError::Syntax));
        assert_eq!(parse_path("<@:user@d>"), Err(AddressError::Syntax));
    }

    #[test]
    fn quoted_local_part_keeps_its_quotes() {
        assert_eq!(
            parse_path("<\"john doe\"@x.org>"),
            Ok(path("\"john doe\"", Some("x.org")))
        );
        assert_eq!(
            parse_path(r#"<"a\"b@c"@x>"#),
            Ok(path(r#""a\"b@c""#, Some("x")))
        );
        assert_eq!(parse_path("<\"unterminated@x>"), Err(AddressError::Syntax));
    }

    #[test]
    fn utf8_address_is_accepted_and_not_ascii() {
        let p = parse_path("<jöran@bücher.example>").unwrap().unwrap();
        assert!(!p.is_ascii());
        assert!(path("a", Some("b")).unwrap().is_ascii());
    }

    #[test]
    fn address_literals_are_accepted() {
        for lit in [
            "[1.2.3.4]",
            "[IPv6:::1]",
            "[ipv6:2001:db8::1]",
            "[x-tag:foo]",
        ] {
            let text = format!("<u@{lit}>");
            assert_eq!(parse_path(&text), Ok(path("u", Some(lit))), "{lit}");
        }
        for lit in ["[1.2.3]", "[IPv6:zz]", "[]", "[1.2.3.4", "[:x]"] {
            let text = format!("<u@{lit}>");
            assert_eq!(parse_path(&text), Err(AddressError::Syntax), "{lit}");
        }
    }

    #[test]
    fn invalid_paths_are_syntax_errors() {
        for bad in [
            "<a@>", "<@>", "<a b@c>", "<a@b", "a@b>", "<a..b@c>", "<.a@c>", "<a@b..c>", "<a@-b.c>",
            "<a@b@c>", "<@a>", "", "<a@b.>",
        ] {
            assert_eq!(parse_path(bad), Err(AddressError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn length_limits_are_enforced() {
        let local = "a".repeat(MAX_LOCAL_PART);
        assert!(parse_path(&format!("<{local}@b>")).is_ok());
        let local = "a".repeat(MAX_LOCAL_PART + 1);
        assert_eq!(
            parse_path(&format!("<{local}@b>")),
            Err(AddressError::LocalTooLong)
        );

        // A 255-octet domain is a valid domain, but with "<a@" and ">" it
        // no longer fits in a 256-octet path, so the path limit answers.
        let label = "d".repeat(MAX_LABEL);
        let domain = [label.as_str(); 4].join(".");
        assert_eq!(domain.len(), MAX_DOMAIN);
        assert!(is_domain(&domain));
        assert!(!is_domain(&format!("{domain}x")));
        assert_eq!(
            parse_path(&format!("<a@{domain}>")),
            Err(AddressError::PathTooLong)
        );
        let domain = domain.get(..MAX_PATH - 4).unwrap().trim_end_matches('.');
        assert!(parse_path(&format!("<a@{domain}>")).is_ok());

        let label = "d".repeat(MAX_LABEL + 1);
        assert_eq!(
            parse_path(&format!("<a@{label}>")),
            Err(AddressError::Syntax)
        );

        // 256 octets including the brackets is the most a path may have.
        let hop = ["r".repeat(61).as_str(); 4].join(".");
        let route = format!("@{hop}:");
        let ok = format!("<{route}aaa@b>");
        assert_eq!(ok.len(), MAX_PATH);
        assert!(parse_path(&ok).is_ok());
        let too_long = format!("<{route}aaaa@b>");
        assert_eq!(parse_path(&too_long), Err(AddressError::PathTooLong));
    }

    #[test]
    fn address_joins_local_and_domain() {
        assert_eq!(path("a", Some("b")).unwrap().address(), "a@b");
        assert_eq!(path("Postmaster", None).unwrap().address(), "Postmaster");
    }
}
