//! APPEND's arguments: one message (RFC 9051 6.3.12) or several
//! (MULTIAPPEND, RFC 3502 6), each a literal or literal8 (RFC 3516), a
//! `UTF8 (literal8)` (RFC 6855 4), or a CATENATE list of text literals
//! and IMAP URLs (RFC 4469 5).
//!
//! ```text
//! append          = "APPEND" SP mailbox 1*append-message
//! append-message  = append-opts SP append-data
//! append-opts     = [SP flag-list] [SP date-time]
//! append-data     = literal / literal8 / utf8-data / catenate
//! utf8-data       = "UTF8" SP "(" literal8 ")"
//! catenate        = "CATENATE" SP "(" cat-part *(SP cat-part) ")"
//! cat-part        = "TEXT" SP literal / "URL" SP astring / utf8-data
//! ```

use crate::date::parse_date_time;
use crate::lexer::{Cursor, LexResult};
use crate::types::parse_flag_list;

/// RFC 4469 5 sets no bound on a CATENATE's parts; each costs a store
/// read, so one command takes at most this many (Dovecot's limit is
/// similar in spirit: a bounded amount of work per command).
pub const MAX_CATENATE_PARTS: usize = 64;

/// What one appended message is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendData {
    /// A literal or literal8: the message itself.
    Literal(Vec<u8>),
    /// RFC 6855 4: `UTF8 (~{n}...)`, a message whose header may hold
    /// UTF-8 (only after ENABLE UTF8=ACCEPT).
    Utf8(Vec<u8>),
    /// RFC 4469 5: the message is these parts, concatenated.
    Catenate(Vec<CatPart>),
}

/// One part of a CATENATE (RFC 4469 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatPart {
    Text(Vec<u8>),
    /// RFC 6855 4: `UTF8 (literal8)` text (after ENABLE UTF8=ACCEPT).
    Utf8(Vec<u8>),
    /// An IMAP URL (RFC 5092) naming a message or a part of one.
    Url(String),
}

/// One message of an APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<String>,
    /// INTERNALDATE as Unix seconds, when given.
    pub date: Option<i64>,
    pub data: AppendData,
}

/// The messages after the mailbox name: at least one; the framer bounds
/// their number (each is at least one literal or a line's worth of URL).
pub fn parse_messages(c: &mut Cursor<'_>) -> LexResult<Vec<AppendMessage>> {
    let mut messages = Vec::new();
    while c.eat(b' ') {
        messages.push(parse_message(c)?);
    }
    if messages.is_empty() {
        return Err("expected a message");
    }
    Ok(messages)
}

fn parse_message(c: &mut Cursor<'_>) -> LexResult<AppendMessage> {
    let mut flags = Vec::new();
    if c.peek() == Some(b'(') {
        flags = parse_flag_list(c)?;
        c.sp()?;
    }
    let mut date = None;
    if c.peek() == Some(b'"') {
        date = Some(parse_date_time(&c.quoted()?).ok_or("bad date-time")?);
        c.sp()?;
    }
    let data = match c.peek() {
        Some(b'{' | b'~') => AppendData::Literal(c.literal(true)?),
        _ => {
            let word = c.atom()?.to_ascii_uppercase();
            c.sp()?;
            c.expect(b'(', "expected '('")?;
            let data = match word.as_str() {
                "UTF8" => AppendData::Utf8(literal8(c)?),
                "CATENATE" => AppendData::Catenate(parse_parts(c)?),
                _ => return Err("expected a literal, UTF8 or CATENATE"),
            };
            c.expect(b')', "expected ')'")?;
            data
        }
    };
    Ok(AppendMessage { flags, date, data })
}

/// RFC 6855 4: the UTF8 item holds a literal8 (`~{n}`), not a literal.
fn literal8(c: &mut Cursor<'_>) -> LexResult<Vec<u8>> {
    if c.peek() != Some(b'~') {
        return Err("UTF8 takes a literal8");
    }
    c.literal(true)
}

fn parse_parts(c: &mut Cursor<'_>) -> LexResult<Vec<CatPart>> {
    let mut parts = Vec::new();
    loop {
        if parts.len() >= MAX_CATENATE_PARTS {
            return Err("too many CATENATE parts");
        }
        let word = c.atom()?.to_ascii_uppercase();
        c.sp()?;
        parts.push(match word.as_str() {
            "TEXT" => CatPart::Text(c.literal(false)?),
            "UTF8" => {
                c.expect(b'(', "expected '('")?;
                let text = literal8(c)?;
                c.expect(b')', "expected ')'")?;
                CatPart::Utf8(text)
            }
            "URL" => CatPart::Url(String::from_utf8(c.astring()?).map_err(|_| "URL is not UTF-8")?),
            _ => return Err("expected TEXT or URL"),
        });
        if !c.eat(b' ') {
            return Ok(parts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CommandKind, ParseOptions, parse_command};

    fn messages(s: &[u8]) -> Vec<AppendMessage> {
        match parse_command(s, ParseOptions::default()).map(|c| c.kind) {
            Ok(CommandKind::Append { messages, .. }) => messages,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc3502_multiappend_example_parses_two_messages() {
        let m = messages(
            b"A003 APPEND saved-messages (\\Seen) {11}\r\nSubject: a\n \"7-Feb-1994 22:43:04 -0800\" {10}\r\nSubject: b\r\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].flags, ["\\Seen"]);
        assert!(m[1].date.is_some());
        assert_eq!(m[1].data, AppendData::Literal(b"Subject: b".to_vec()));
    }

    #[test]
    fn rfc4469_catenate_example_parses_its_parts() {
        let m = messages(
            b"A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER\" TEXT {5}\r\nhello URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME\")\r\n",
        );
        let AppendData::Catenate(parts) = &m[0].data else {
            panic!("{m:?}");
        };
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], CatPart::Text(b"hello".to_vec()));
        let m = messages(b"a APPEND x CATENATE (UTF8 (~{2}\r\nab) TEXT {1}\r\nc)\r\n");
        assert_eq!(
            m[0].data,
            AppendData::Catenate(vec![
                CatPart::Utf8(b"ab".to_vec()),
                CatPart::Text(b"c".to_vec())
            ])
        );
    }

    #[test]
    fn utf8_append_needs_a_literal8_in_parentheses() {
        let m = messages(b"a APPEND INBOX UTF8 (~{3}\r\nabc)\r\n");
        assert_eq!(m[0].data, AppendData::Utf8(b"abc".to_vec()));
        for bad in [
            &b"a APPEND INBOX UTF8 ({3}\r\nabc)\r\n"[..],
            b"a APPEND INBOX UTF8 ~{3}\r\nabc\r\n",
            b"a APPEND INBOX\r\n",
            b"a APPEND INBOX CATENATE ()\r\n",
            b"a APPEND INBOX {1}\r\nx (\\Seen)\r\n",
        ] {
            assert!(
                parse_command(bad, ParseOptions::default()).is_err(),
                "{bad:?}"
            );
        }
    }
}
