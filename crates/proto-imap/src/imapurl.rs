//! IMAP URLs (RFC 5092) naming one message or part of one, as CATENATE
//! (RFC 4469 5) takes them: `imap://[user@]host[:port]/mailbox...` or the
//! server-relative `/mailbox...`, then
//! `[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]`.
//! Keywords are case-insensitive (RFC 5092 3); the mailbox and section
//! are %-decoded (RFC 3986 2.1). URLAUTH-authorized URLs (RFC 4467) and
//! URLs naming a mailbox or a search are not message references: `None`.

use crate::fetch::{Section, parse_section};
use crate::lexer::Cursor;

/// RFC 5092 has no bound; a URL is one astring of a command line, and
/// this keeps the decoded pieces small.
pub const MAX_URL: usize = 8192;

/// A reference to a message or part of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageUrl {
    /// The `user` of `imap://user@host/`, when given.
    pub user: Option<String>,
    /// The mailbox name, %-decoded: UTF-8 (RFC 5092 3: a name of the
    /// mailbox's IMAP form, which may be modified UTF-7).
    pub mailbox: Vec<u8>,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    pub section: Option<Section>,
    /// `;PARTIAL=offset[.length]` (RFC 5092 3).
    pub partial: Option<(u64, Option<u64>)>,
}

/// %-decodes `s` (RFC 3986 2.1); None on a bad escape.
pub(crate) fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// The value of `;name=value` if `segment` is that parameter.
fn param<'a>(segment: &'a str, name: &str) -> Option<&'a str> {
    let rest = segment.strip_prefix(';')?;
    let (key, value) = rest.split_once('=')?;
    key.eq_ignore_ascii_case(name).then_some(value)
}

/// What RFC 5092 3's `imessagepart` names after the server:
/// `enc-mailbox [uidvalidity] iuid [isection] [ipartial]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessagePath {
    pub mailbox: Vec<u8>,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    pub section: Option<Section>,
    pub partial: Option<(u64, Option<u64>)>,
}

/// Parses `mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]`
/// (the path after the host's `/`), in the grammar's order. CATENATE's
/// URLs and URLAUTH's share it; each handles its own prefix and suffix.
pub(crate) fn parse_message_path(path: &str) -> Result<MessagePath, &'static str> {
    let mut segments = path.split('/');
    // "mailbox[;UIDVALIDITY=n]"; both numbers are nz-number (RFC 5092 3).
    let first = segments.next().ok_or("URL without a mailbox")?;
    let (name, uidvalidity) = match first.find(';') {
        Some(i) => {
            let (n, p) = first.split_at(i);
            let v = param(p, "UIDVALIDITY")
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| *v > 0)
                .ok_or("bad UIDVALIDITY")?;
            (n, Some(v))
        }
        None => (first, None),
    };
    if name.is_empty() {
        return Err("URL without a mailbox");
    }
    let mailbox = percent_decode(name).ok_or("bad %-encoding")?;
    let uid = segments
        .next()
        .and_then(|s| param(s, "UID"))
        .ok_or("URL without ;UID=")?
        .parse::<u32>()
        .ok()
        .filter(|u| *u > 0)
        .ok_or("bad UID")?;
    let mut section = None;
    let mut partial = None;
    for seg in segments {
        if let Some(s) = param(seg, "SECTION") {
            if section.is_some() || partial.is_some() {
                return Err("bad SECTION");
            }
            let text = percent_decode(s).ok_or("bad %-encoding")?;
            let wire = [b"[".as_slice(), &text, b"]"].concat();
            let mut c = Cursor::new(&wire);
            let parsed = parse_section(&mut c).map_err(|_| "bad SECTION")?;
            if !c.rest().is_empty() {
                return Err("bad SECTION");
            }
            section = Some(parsed);
        } else if let Some(p) = param(seg, "PARTIAL") {
            if partial.is_some() {
                return Err("bad PARTIAL");
            }
            // partial-range = number ["." nz-number] (RFC 5092 3).
            let (o, l) = match p.split_once('.') {
                Some((o, l)) => (
                    o,
                    Some(
                        l.parse::<u64>()
                            .ok()
                            .filter(|l| *l > 0)
                            .ok_or("bad PARTIAL")?,
                    ),
                ),
                None => (p, None),
            };
            partial = Some((o.parse::<u64>().map_err(|_| "bad PARTIAL")?, l));
        } else {
            // ;URLAUTH=, ;EXPIRE= (the caller's), or anything else.
            return Err("unknown URL part");
        }
    }
    Ok(MessagePath {
        mailbox,
        uidvalidity,
        uid,
        section,
        partial,
    })
}

/// Parses a message URL; None when it is not one we can resolve.
pub fn parse_message_url(url: &str) -> Option<MessageUrl> {
    if url.len() > MAX_URL {
        return None;
    }
    let mut user = None;
    let path = if let Some(rest) = url
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("imap://"))
        .and_then(|_| url.get(7..))
    {
        // The authority: [user[;AUTH=...]@]host[:port]; the host is ours
        // whatever it is called (the caller serves one server's mail).
        let slash = rest.find('/')?;
        let (authority, path) = rest.split_at(slash);
        if let Some((u, _host)) = authority.rsplit_once('@') {
            let name = u.split(';').next().unwrap_or(u);
            user = Some(String::from_utf8(percent_decode(name)?).ok()?);
        }
        path
    } else {
        url
    };
    let p = parse_message_path(path.strip_prefix('/')?).ok()?;
    Some(MessageUrl {
        user,
        mailbox: p.mailbox,
        uidvalidity: p.uidvalidity,
        uid: p.uid,
        section: p.section,
        partial: p.partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::SectionText;

    #[test]
    fn rfc4469_and_imaptest_forms_parse() {
        let u = parse_message_url("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER")
            .expect("url");
        assert_eq!(u.mailbox, b"Drafts");
        assert_eq!(u.uidvalidity, Some(385759045));
        assert_eq!(u.uid, 20);
        assert_eq!(u.section.and_then(|s| s.text), Some(SectionText::Header));
        let u = parse_message_url("/a%20b/;uid=3/;section=1.MIME").expect("url");
        assert_eq!(u.mailbox, b"a b");
        assert_eq!(u.section.map(|s| s.part), Some(vec![1]));
        let u = parse_message_url("/INBOX/;UID=2/;PARTIAL=100000.1").expect("url");
        assert_eq!(u.partial, Some((100000, Some(1))));
        let u = parse_message_url("imap://fred@example.com/INBOX/;UID=1").expect("url");
        assert_eq!(u.user.as_deref(), Some("fred"));
        assert_eq!((u.uid, u.section), (1, None));
    }

    #[test]
    fn what_is_not_a_message_reference_is_refused() {
        for bad in [
            "",
            "INBOX/;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/INBOX;UIDVALIDITY=x/;UID=1",
            "/INBOX;UIDVALIDITY=0/;UID=1",
            "/INBOX/;UID=1/;PARTIAL=1.0",
            "/INBOX/;UID=1/;SECTION=BOGUS",
            "/INBOX/;UID=1/;URLAUTH=anonymous",
            "/INBOX/;UID=1/;PARTIAL=1.2/;SECTION=1",
            "/%zz/;UID=1",
            "imap://host",
        ] {
            assert_eq!(parse_message_url(bad), None, "{bad:?}");
        }
    }
}
