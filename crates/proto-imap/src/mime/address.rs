//! RFC 5322 3.4 address lists as ENVELOPE wants them (RFC 9051 7.5.2):
//! `(name adl mailbox host)` per address, and group markers. Names stay as
//! in the header (encoded words included): decoding is the client's job.

/// Most addresses taken from one field.
pub const MAX_ADDRESSES: usize = 1000;

/// One element of an ENVELOPE address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Mailbox {
        name: Option<Vec<u8>>,
        adl: Option<Vec<u8>>,
        mailbox: Option<Vec<u8>>,
        host: Option<Vec<u8>>,
    },
    /// Start of a group: `(NIL NIL "name" NIL)`.
    GroupStart(Vec<u8>),
    /// End of a group: `(NIL NIL NIL NIL)`.
    GroupEnd,
}

/// Collapses runs of whitespace, trims, and unquotes a display name.
fn clean_phrase(p: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut space) = (false, false, false);
    for &b in p.trim_ascii() {
        if escaped {
            out.push(b);
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b' ' | b'\t' | b'\r' | b'\n' if !quoted => space = true,
            _ => {
                if space && !out.is_empty() {
                    out.push(b' ');
                }
                space = false;
                out.push(b);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn addr_spec(spec: &[u8], name: Option<Vec<u8>>) -> Option<Address> {
    let spec: Vec<u8> = spec
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let (adl, spec) = match spec.iter().position(|&b| b == b':') {
        Some(c) if spec.first() == Some(&b'@') => (
            spec.get(..c).map(<[u8]>::to_vec),
            spec.get(c + 1..).unwrap_or_default().to_vec(),
        ),
        _ => (None, spec),
    };
    // No address (an empty group `g:;`, or a group holding only a comment
    // `g: (foo) ;`): nothing to report, rather than a made-up mailbox
    // (RFC 5322 3.4: a group may have no members; comments are not
    // addresses).
    if spec.is_empty() {
        return None;
    }
    let (mailbox, host) = match spec.iter().rposition(|&b| b == b'@') {
        Some(at) => (
            spec.get(..at).unwrap_or_default().to_vec(),
            spec.get(at + 1..).unwrap_or_default().to_vec(),
        ),
        None => (spec.clone(), Vec::new()),
    };
    let mailbox = clean_phrase(&mailbox).unwrap_or_else(|| b"MISSING_MAILBOX".to_vec());
    let host = if host.is_empty() {
        b"MISSING_DOMAIN".to_vec()
    } else {
        host
    };
    Some(Address::Mailbox {
        name,
        adl,
        mailbox: Some(mailbox),
        host: Some(host),
    })
}

/// Parses an address-list field value.
pub fn parse_address_list(v: &[u8]) -> Vec<Address> {
    let mut out = Vec::new();
    let mut phrase: Vec<u8> = Vec::new();
    let mut comment: Vec<u8> = Vec::new();
    let mut angle: Option<Vec<u8>> = None;
    let mut in_group = false;
    let (mut quoted, mut depth, mut escaped) = (false, 0usize, false);
    let flush = |phrase: &mut Vec<u8>,
                 comment: &mut Vec<u8>,
                 angle: &mut Option<Vec<u8>>,
                 out: &mut Vec<Address>| {
        let a = match angle.take() {
            Some(spec) => addr_spec(&spec, clean_phrase(phrase)),
            None => addr_spec(phrase, clean_phrase(comment)),
        };
        if let Some(a) = a
            && out.len() < MAX_ADDRESSES
        {
            out.push(a);
        }
        phrase.clear();
        comment.clear();
    };
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        i += 1;
        if escaped {
            escaped = false;
            if depth > 0 {
                comment.push(b);
            } else {
                phrase.push(b);
            }
            continue;
        }
        if depth > 0 {
            match b {
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => comment.push(b),
            }
            continue;
        }
        if quoted {
            phrase.push(b);
            match b {
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                quoted = true;
                phrase.push(b);
            }
            b'(' => depth = 1,
            b'<' => {
                let end = v
                    .get(i..)
                    .and_then(|r| r.iter().position(|&x| x == b'>'))
                    .map_or(v.len(), |p| i + p);
                // RFC 5322 3.2.2: comments may sit between the tokens of
                // an addr-spec (`<user (c)@ (c) host>`); they are not part
                // of it.
                angle = Some(super::strip_comments(v.get(i..end).unwrap_or_default()));
                i = end + 1;
            }
            b':' if !in_group && angle.is_none() => {
                in_group = true;
                out.push(Address::GroupStart(
                    clean_phrase(&phrase).unwrap_or_default(),
                ));
                phrase.clear();
                comment.clear();
            }
            b',' => flush(&mut phrase, &mut comment, &mut angle, &mut out),
            b';' if in_group => {
                flush(&mut phrase, &mut comment, &mut angle, &mut out);
                out.push(Address::GroupEnd);
                in_group = false;
            }
            _ => phrase.push(b),
        }
    }
    flush(&mut phrase, &mut comment, &mut angle, &mut out);
    if in_group {
        out.push(Address::GroupEnd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, mailbox: &str, host: &str) -> Address {
        Address::Mailbox {
            name: name.map(|n| n.as_bytes().to_vec()),
            adl: None,
            mailbox: Some(mailbox.as_bytes().to_vec()),
            host: Some(host.as_bytes().to_vec()),
        }
    }

    #[test]
    fn common_forms() {
        assert_eq!(
            parse_address_list(b" \"Smith, John\" <js@example.com>, b@c.d (Bee)"),
            vec![
                mb(Some("Smith, John"), "js", "example.com"),
                mb(Some("Bee"), "b", "c.d")
            ]
        );
        assert_eq!(
            parse_address_list(b" =?utf-8?q?J=C3=B6rg?= <j@x.y>"),
            vec![mb(Some("=?utf-8?q?J=C3=B6rg?="), "j", "x.y")]
        );
    }

    #[test]
    fn groups_and_empty_groups() {
        assert_eq!(
            parse_address_list(b"undisclosed-recipients:;"),
            vec![
                Address::GroupStart(b"undisclosed-recipients".to_vec()),
                Address::GroupEnd
            ]
        );
        let g = parse_address_list(b"Team: a@b.c, D <d@e.f>;, z@y.x");
        assert_eq!(g.len(), 5);
        assert_eq!(g[4], mb(None, "z", "y.x"));
    }

    #[test]
    fn empty_groups_and_groups_of_comments_have_no_members() {
        // imaptest fetch-envelope: `Cc: group:;, group2: (foo) ;`.
        assert_eq!(
            parse_address_list(b"group:;, group2: (foo) ;"),
            vec![
                Address::GroupStart(b"group".to_vec()),
                Address::GroupEnd,
                Address::GroupStart(b"group2".to_vec()),
                Address::GroupEnd,
            ]
        );
        assert_eq!(
            parse_address_list(b"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;").len(),
            7
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for v in [&b"<<<"[..], b"\"unterminated", b"(((", b"@:", b",,,", b"a@"] {
            let _ = parse_address_list(v);
        }
    }
}
