//! Decoded text for SEARCH (RFC 9051 6.4.4: matching is on decoded content,
//! case-insensitive).
//!
//! One MIME model serves FETCH and SEARCH: the parts are the ones
//! [`Part::parse`] finds (the same ones BODY[section] numbers), and
//! mail-parser only decodes the text located there: RFC 2047 encoded words
//! in header fields (its unstructured-field decoder), charsets of text
//! bodies, and the Date field. Transfer encodings are undone by the same
//! decoders BINARY uses. So a part SEARCH looks into is always a part FETCH
//! can return.
//!
//! Header fields keep their angle brackets and other punctuation, so
//! `HEADER Message-ID "<id@host>"` matches; address fields are searched in
//! the form `name <mailbox@host>` with group names (`group:`) and without
//! comments inside addresses, so `TO groupname` and `FROM user@host`
//! (however the address was written) match.

use mail_parser::HeaderValue;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;

use super::address::{Address, parse_address_list};
use super::section::{decode_base64, decode_qp};
use super::{MAX_DEPTH, Part, PartKind, unfold};

/// A message's searchable text.
#[derive(Debug, Clone, Default)]
pub struct SearchText {
    /// (lowercased field name, decoded value) of the top-level header.
    pub headers: Vec<(String, String)>,
    /// Decoded text of every text part, and the header fields of nested
    /// messages.
    pub bodies: Vec<String>,
    /// The Date: field as days since 1970-01-01 (SENTBEFORE etc. ignore
    /// the time and zone, RFC 9051 6.4.4).
    pub date: Option<i64>,
}

/// Fields holding RFC 5322 3.4 address lists.
const ADDRESS_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-bcc",
];

/// An unstructured field value with its RFC 2047 encoded words decoded
/// and its folding undone.
fn unstructured(v: &[u8]) -> String {
    let mut buf = unfold(v);
    buf.extend_from_slice(b"\r\n");
    match MessageStream::new(&buf).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        _ => String::new(),
    }
}

/// An address list as `name <mailbox@host>, group: ...`: the addresses as
/// ENVELOPE reports them, display names decoded.
fn address_text(v: &[u8]) -> String {
    let mut out: Vec<String> = Vec::new();
    for a in parse_address_list(&unfold(v)) {
        match a {
            Address::Mailbox {
                name,
                mailbox,
                host,
                ..
            } => {
                let mut s = String::new();
                if let Some(n) = name {
                    s.push_str(&unstructured(&n));
                    s.push(' ');
                }
                s.push('<');
                s.push_str(&String::from_utf8_lossy(&mailbox.unwrap_or_default()));
                if let Some(h) = host {
                    s.push('@');
                    s.push_str(&String::from_utf8_lossy(&h));
                }
                s.push('>');
                out.push(s);
            }
            Address::GroupStart(name) => out.push(format!("{}:", unstructured(&name))),
            Address::GroupEnd => {}
        }
    }
    out.join(", ")
}

fn field_text(name: &str, value: &[u8]) -> String {
    if ADDRESS_FIELDS.contains(&name) {
        address_text(value)
    } else {
        unstructured(value)
    }
}

fn headers_of(p: &Part<'_>) -> Vec<(String, String)> {
    p.fields
        .iter()
        .map(|f| {
            let name = String::from_utf8_lossy(f.name).to_ascii_lowercase();
            let value = field_text(&name, f.value);
            (name, value)
        })
        .collect()
}

/// An unstructured field's text (RFC 2047 words decoded, unfolded): what
/// SORT and THREAD compare (RFC 5256 2.1 step 1).
pub fn unstructured_text(v: &[u8]) -> String {
    unstructured(v)
}

/// A Date field's value as UTC seconds (RFC 5256 2.2: SORT DATE compares
/// instants); None when it does not parse.
pub fn date_utc(v: &[u8]) -> Option<i64> {
    let mut buf = unfold(v);
    buf.extend_from_slice(b"\r\n");
    match MessageStream::new(&buf).parse_date() {
        HeaderValue::DateTime(d) => Some(d.to_timestamp()),
        _ => None,
    }
}

/// The Date field as days since the epoch, in the field's own zone.
fn date_days(p: &Part<'_>) -> Option<i64> {
    let mut buf = unfold(p.field("Date")?);
    buf.extend_from_slice(b"\r\n");
    match MessageStream::new(&buf).parse_date() {
        HeaderValue::DateTime(d) => Some(crate::date::days_from_civil(
            i64::from(d.year),
            u32::from(d.month),
            u32::from(d.day),
        )),
        _ => None,
    }
}

/// A leaf's content: transfer encoding undone (RFC 2045 6), then its
/// charset (RFC 2046 4.1.2; UTF-8 when unknown or absent).
fn decoded_text(p: &Part<'_>) -> String {
    let bytes = match p.encoding().as_str() {
        "base64" => decode_base64(p.body),
        "quoted-printable" => decode_qp(p.body),
        _ => p.body.to_vec(),
    };
    let charset = p.content_type.param("charset").unwrap_or("utf-8");
    let native = ["utf-8", "utf8", "us-ascii", "ascii"]
        .iter()
        .any(|c| charset.eq_ignore_ascii_case(c));
    match charset_decoder(charset.as_bytes()).filter(|_| !native) {
        Some(decode) => decode(&bytes),
        None => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn collect_bodies(p: &Part<'_>, out: &mut Vec<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match &p.kind {
        PartKind::Multipart(children) => {
            for c in children {
                collect_bodies(c, out, depth + 1);
            }
        }
        PartKind::Message(m) => {
            out.extend(headers_of(m).into_iter().map(|(_, v)| v));
            collect_bodies(m, out, depth + 1);
        }
        // Binary parts have no text.
        PartKind::Leaf if p.content_type.mtype.eq_ignore_ascii_case("text") => {
            out.push(decoded_text(p));
        }
        PartKind::Leaf => {}
    }
}

/// RFC 8970 3.1: a preview is at most 256 characters.
pub const MAX_PREVIEW_CHARS: usize = 256;

fn is_attachment(p: &Part<'_>) -> bool {
    p.field("Content-Disposition").is_some_and(|v| {
        v.trim_ascii_start()
            .get(..10)
            .is_some_and(|d| d.eq_ignore_ascii_case(b"attachment"))
    })
}

/// The first inline text/plain leaf, else the first text/html one.
fn first_text<'p, 'a>(
    p: &'p Part<'a>,
    depth: usize,
    html: &mut Option<&'p Part<'a>>,
) -> Option<&'p Part<'a>> {
    if depth > MAX_DEPTH {
        return None;
    }
    match &p.kind {
        PartKind::Multipart(children) => {
            children.iter().find_map(|c| first_text(c, depth + 1, html))
        }
        PartKind::Leaf => match preview_kind(p) {
            Some(PreviewKind::Plain) => Some(p),
            Some(PreviewKind::Html) => {
                if html.is_none() {
                    *html = Some(p);
                }
                None
            }
            None => None,
        },
        // Attached messages and other leaves are not the message's text.
        _ => None,
    }
}

/// What a leaf is to [`preview`]: the first text/plain that is not an
/// attachment is the text; failing one, the first such text/html.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewKind {
    Plain,
    Html,
}

/// The leaf's [`PreviewKind`], from its header alone.
pub fn preview_kind(p: &Part<'_>) -> Option<PreviewKind> {
    if !p.content_type.mtype.eq_ignore_ascii_case("text") || is_attachment(p) {
        None
    } else if p.content_type.subtype.eq_ignore_ascii_case("plain") {
        Some(PreviewKind::Plain)
    } else if p.content_type.subtype.eq_ignore_ascii_case("html") {
        Some(PreviewKind::Html)
    } else {
        None
    }
}

/// HTML to text for a preview: tags dropped, the commonest entities
/// decoded, script and style content skipped.
fn html_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() / 2);
    let mut rest = s;
    while let Some(lt) = rest.find('<') {
        out.push_str(rest.get(..lt).unwrap_or(""));
        let tail = rest.get(lt..).unwrap_or("");
        let lower: String = tail
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            tail.to_ascii_lowercase().find("</script").map(|i| i + 8)
        } else if lower.starts_with("<style") {
            tail.to_ascii_lowercase().find("</style").map(|i| i + 7)
        } else {
            Some(0)
        };
        let from = skip_to.unwrap_or(tail.len());
        match tail.get(from..).and_then(|t| t.find('>')) {
            Some(gt) => {
                out.push(' ');
                rest = tail.get(from + gt + 1..).unwrap_or("");
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// RFC 8970: the message's first text, whitespace collapsed, at most
/// [`MAX_PREVIEW_CHARS`] characters; None when it has no text part.
pub fn preview(root: &Part<'_>) -> Option<String> {
    let mut html = None;
    let text = match first_text(root, 0, &mut html) {
        Some(p) => decoded_text(p),
        None => html_text(&decoded_text(html?)),
    };
    let mut out = String::new();
    for (n, word) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= MAX_PREVIEW_CHARS {
            break;
        }
    }
    Some(out.chars().take(MAX_PREVIEW_CHARS).collect())
}

/// The searchable text of a parsed message.
pub fn search_text_of(root: &Part<'_>, with_bodies: bool) -> SearchText {
    let mut bodies = Vec::new();
    if with_bodies {
        collect_bodies(root, &mut bodies, 0);
    }
    SearchText {
        headers: headers_of(root),
        bodies,
        date: date_days(root),
    }
}

/// The searchable text of a raw message.
pub fn search_text(raw: &[u8], with_bodies: bool) -> SearchText {
    search_text_of(&Part::parse(raw), with_bodies)
}

/// Longest stretch of a non-UTF-8 text part [`TextStream`] holds before
/// decoding it without waiting for a line break.
pub const TEXT_PENDING_MAX: usize = 64 * 1024;

/// A text part's charset decoding (RFC 2046 4.1.2) a chunk at a time, for
/// SEARCH of a big message (issue 19): the transfer-decoded octets go in
/// (`mime::stream`), text comes out, the same text [`search_text`] finds
/// for the part. UTF-8 (and US-ASCII, and an unknown charset) is decoded
/// as it comes, an incomplete character kept for the next chunk; another
/// charset up to the last line feed (no multi-octet charset mail uses puts
/// 0x0A inside a character; ISO-2022-JP returns to ASCII before a line
/// end, RFC 1468), or [`TEXT_PENDING_MAX`] octets without one.
pub struct TextStream {
    decode: Option<fn(&[u8]) -> String>,
    pending: Vec<u8>,
}

impl TextStream {
    /// The decoder of a text part with this Content-Type.
    pub fn new(content_type: &super::ContentType) -> TextStream {
        let charset = content_type.param("charset").unwrap_or("utf-8");
        let native = ["utf-8", "utf8", "us-ascii", "ascii"]
            .iter()
            .any(|c| charset.eq_ignore_ascii_case(c));
        TextStream {
            decode: charset_decoder(charset.as_bytes()).filter(|_| !native),
            pending: Vec::new(),
        }
    }

    /// The text of the next octets (as far as it can be decoded yet).
    pub fn feed(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        match self.decode {
            None => {
                let mut rest: &[u8] = &self.pending;
                loop {
                    match std::str::from_utf8(rest) {
                        Ok(t) => {
                            out.push_str(t);
                            rest = &[];
                            break;
                        }
                        Err(e) => {
                            let (good, bad) = rest.split_at(e.valid_up_to());
                            out.push_str(std::str::from_utf8(good).unwrap_or_default());
                            match e.error_len() {
                                Some(n) => {
                                    out.push(char::REPLACEMENT_CHARACTER);
                                    rest = bad.get(n..).unwrap_or_default();
                                }
                                // An incomplete character: the next chunk
                                // has the rest.
                                None => {
                                    rest = bad;
                                    break;
                                }
                            }
                        }
                    }
                }
                let keep = rest.len();
                let at = self.pending.len() - keep;
                self.pending.drain(..at);
            }
            Some(decode) => {
                let cut = match self.pending.iter().rposition(|&b| b == b'\n') {
                    Some(nl) => nl + 1,
                    None if self.pending.len() > TEXT_PENDING_MAX => self.pending.len(),
                    None => return,
                };
                let head: Vec<u8> = self.pending.drain(..cut).collect();
                out.push_str(&decode(&head));
            }
        }
    }

    /// The text of what is left at the part's end.
    pub fn finish(&mut self, out: &mut String) {
        let rest = std::mem::take(&mut self.pending);
        match self.decode {
            None => out.push_str(&String::from_utf8_lossy(&rest)),
            Some(decode) if !rest.is_empty() => out.push_str(&decode(&rest)),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stream_decodes_as_the_whole_part_does() {
        let parts: &[(&str, &[u8])] = &[
            (
                "utf-8",
                "caf\u{e9} \u{1f600} na\u{ef}ve\r\nline two\r\n".as_bytes(),
            ),
            ("utf-8", b"bad \xff\xfe utf-8 \xe2\x82 cut"),
            ("iso-8859-1", b"caf\xe9\r\nna\xefve\r\n"),
            ("windows-1252", b"\x93quoted\x94 \x80\r\nend"),
            ("shift_jis", b"\x82\xa0\x82\xa2\r\n\x93\xfa\x96\x7b\r\n"),
        ];
        for (charset, bytes) in parts {
            let ct = crate::mime::parse_content_type(
                format!("text/plain; charset={charset}").as_bytes(),
            );
            let raw = [
                format!("Content-Type: text/plain; charset={charset}\r\n\r\n").as_bytes(),
                bytes,
            ]
            .concat();
            let want = search_text(&raw, true).bodies;
            for size in [1, 2, 3, 7, 1000] {
                let mut t = TextStream::new(&ct);
                let mut out = String::new();
                for c in bytes.chunks(size) {
                    t.feed(c, &mut out);
                }
                t.finish(&mut out);
                assert_eq!(vec![out], want, "{charset} in chunks of {size}");
            }
        }
    }

    #[test]
    fn preview_is_the_first_text_collapsed_and_bounded() {
        let p = |raw: &str| preview(&Part::parse(raw.as_bytes()));
        assert_eq!(
            p("Subject: x\r\n\r\nHello\r\n\r\n  world,\tagain\r\n").as_deref(),
            Some("Hello world, again")
        );
        let alt = "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
                   Content-Type: text/html\r\n\r\n<p>html &amp; more</p>\r\n--b\r\n\
                   Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                   caf=C3=A9 plain\r\n--b--\r\n";
        assert_eq!(p(alt).as_deref(), Some("café plain"));
        let html = "Content-Type: text/html\r\n\r\n<html><style>p{}</style><p>Hi&nbsp;<b>there</b></p><script>x()</script></html>\r\n";
        assert_eq!(p(html).as_deref(), Some("Hi there"));
        let attachment = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                          Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnot this\r\n--b\r\n\
                          Content-Type: image/png\r\n\r\nxx\r\n--b--\r\n";
        assert_eq!(p(attachment), None);
        let long = format!("Subject: x\r\n\r\n{}\r\n", "word ".repeat(200));
        assert_eq!(p(&long).map(|s| s.chars().count()), Some(MAX_PREVIEW_CHARS));
    }

    fn header<'t>(t: &'t SearchText, name: &str) -> Vec<&'t str> {
        t.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn message_ids_keep_their_angle_brackets() {
        let t = search_text(
            b"Message-ID: <id@host>\r\nReferences: <a@b>\r\n <c@d>\r\nIn-Reply-To: <a@b>\r\n\r\nx",
            false,
        );
        assert_eq!(header(&t, "message-id"), ["<id@host>"]);
        assert_eq!(header(&t, "references"), ["<a@b> <c@d>"]);
        assert_eq!(header(&t, "in-reply-to"), ["<a@b>"]);
    }

    #[test]
    fn addresses_show_group_names_and_drop_comments() {
        let t = search_text(
            b"To: groupname: u1@d.org, u2@d.org;,\r\n  g2: u3@d.org;\r\n\
              From: <user-from (comment)@ (comment) domain.org>\r\n\
              Cc: =?utf-8?q?J=C3=B6rg?= <j@x.y>, e@f.g (Real)\r\n\r\n",
            false,
        );
        assert_eq!(
            header(&t, "to"),
            ["groupname:, <u1@d.org>, <u2@d.org>, g2:, <u3@d.org>"]
        );
        assert_eq!(header(&t, "from"), ["<user-from@domain.org>"]);
        assert_eq!(header(&t, "cc"), ["J\u{f6}rg <j@x.y>, Real <e@f.g>"]);
    }

    #[test]
    fn bodies_are_the_parts_fetch_numbers_decoded() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n--b\r\n\
            Content-Type: application/octet-stream\r\n\r\nbinary\r\n--b\r\n\
            Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";
        let t = search_text(raw, true);
        assert_eq!(t.bodies, ["caf\u{e9}", "inner", "inner body"]);
    }

    #[test]
    fn date_is_the_day_in_its_own_zone() {
        let t = search_text(b"Date: Thu, 15 Feb 2007 01:02:03 +0200\r\n\r\n", false);
        assert_eq!(t.date, Some(crate::date::days_from_civil(2007, 2, 15)));
    }
}
