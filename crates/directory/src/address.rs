//! Address syntax for the directory: splitting "local@domain", the
//! canonical form, and `+detail` sub-addressing.
//!
//! RFC 5321 2.4: the local part of a remote address is case-sensitive and
//! keeps its case; domains are case-insensitive. In our own domains the local
//! part is matched case-insensitively too (our policy, as most servers do),
//! so the canonical form of a local address is all lowercase.
//!
//! The checks here are deliberately loose (the SMTP parser has already
//! checked the syntax); they exist so that nothing stored in the directory
//! can break a reply line: no control characters, no unquoted spaces or
//! angle brackets, and the RFC 5321 length limits.

use crate::DirectoryError;

/// The sub-addressing separator: `alice+news@x` reaches `alice@x` when no
/// exact entry `alice+news@x` exists (RFC 5233 convention).
pub const DETAIL_SEPARATOR: char = '+';

/// RFC 5321 4.5.3.1.1: the local part is at most 64 octets.
pub const MAX_LOCAL_PART_LEN: usize = 64;

/// RFC 5321 4.5.3.1.2: a domain is at most 255 octets.
pub const MAX_DOMAIN_LEN: usize = 255;

/// Our bound on a user's full name (it appears in VRFY replies, whose text
/// must fit the RFC 5321 4.5.3.1.5 reply line of 512 octets).
pub const MAX_FULL_NAME_LEN: usize = 256;

/// Splits at the last '@' (a quoted local part may contain '@').
pub(crate) fn split(address: &str) -> Result<(&str, &str), DirectoryError> {
    match address.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok((local, domain)),
        _ => Err(invalid(address)),
    }
}

fn invalid(address: &str) -> DirectoryError {
    DirectoryError::InvalidAddress(address.to_string())
}

/// Lowercases and checks a domain name or address literal.
pub(crate) fn normalize_domain(domain: &str) -> Result<String, DirectoryError> {
    let d = domain.trim().to_lowercase();
    let ok = if let Some(inner) = d.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        // RFC 5321 4.1.3 address literal: checked loosely.
        !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-'))
    } else {
        !d.is_empty()
            && d.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && label
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
            })
    };
    if !ok || d.len() > MAX_DOMAIN_LEN {
        return Err(DirectoryError::InvalidAddress(format!(
            "{domain} (not a domain name)"
        )));
    }
    Ok(d)
}

/// Checks a local part: no control characters anywhere; spaces, '<', '>'
/// and '@' only inside a quoted local part.
fn check_local(local: &str, address: &str) -> Result<(), DirectoryError> {
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    let ok = local.len() <= MAX_LOCAL_PART_LEN
        && !local.chars().any(char::is_control)
        && (quoted
            || !local
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '@' | '"')));
    if ok { Ok(()) } else { Err(invalid(address)) }
}

pub(crate) fn is_local(domains: &[String], domain: &str) -> bool {
    domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
        || (!domain.is_ascii() && domains.contains(&domain.to_lowercase()))
}

/// The canonical form: the domain lowercased, and the local part lowercased
/// only in our own domains.
pub(crate) fn canonical(domains: &[String], address: &str) -> Result<String, DirectoryError> {
    let trimmed = address.trim();
    let (local, domain) = split(trimmed)?;
    check_local(local, trimmed)?;
    let domain = normalize_domain(domain).map_err(|_| invalid(trimmed))?;
    if domains.contains(&domain) {
        Ok(format!("{}@{domain}", local.to_lowercase()))
    } else {
        Ok(format!("{local}@{domain}"))
    }
}

/// For `base+detail@domain`, the base address `base@domain`; None when the
/// local part has no detail (or nothing before the separator).
pub(crate) fn detail_base(canonical: &str) -> Option<String> {
    let (local, domain) = canonical.rsplit_once('@')?;
    let (base, _) = local.split_once(DETAIL_SEPARATOR)?;
    if base.is_empty() {
        return None;
    }
    Some(format!("{base}@{domain}"))
}

/// The local part of a canonical address.
pub(crate) fn local_part(canonical: &str) -> &str {
    canonical.rsplit_once('@').map_or(canonical, |(l, _)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doms() -> Vec<String> {
        vec!["example.org".to_string()]
    }

    #[test]
    fn remote_local_part_keeps_case() {
        assert_eq!(
            canonical(&doms(), "John.Smith@Remote.EXAMPLE").unwrap(),
            "John.Smith@remote.example"
        );
        assert_eq!(
            canonical(&doms(), "John.Smith@Example.ORG").unwrap(),
            "john.smith@example.org"
        );
    }

    #[test]
    fn bare_local_part_is_invalid() {
        assert!(matches!(
            canonical(&doms(), "alice"),
            Err(DirectoryError::InvalidAddress(_))
        ));
        assert!(canonical(&doms(), "@example.org").is_err());
        assert!(canonical(&doms(), "alice@").is_err());
    }

    #[test]
    fn reply_breaking_characters_are_refused() {
        assert!(canonical(&doms(), "a\r\nb@example.org").is_err());
        assert!(canonical(&doms(), "a b@example.org").is_err());
        assert!(canonical(&doms(), "a>b@example.org").is_err());
        assert!(canonical(&doms(), "a@exa mple.org").is_err());
        assert_eq!(
            canonical(&doms(), "\"a b\"@example.org").unwrap(),
            "\"a b\"@example.org"
        );
    }

    #[test]
    fn over_long_local_part_is_refused() {
        let long = format!("{}@example.org", "a".repeat(MAX_LOCAL_PART_LEN + 1));
        assert!(canonical(&doms(), &long).is_err());
    }

    #[test]
    fn detail_base_strips_from_first_separator() {
        assert_eq!(
            detail_base("alice+news+x@example.org").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(detail_base("+news@example.org"), None);
        assert_eq!(detail_base("alice@example.org"), None);
    }
}
