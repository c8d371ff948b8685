//! Decoded text for SEARCH (RFC 9051 6.4.4: matching is on decoded content,
//! case-insensitive): headers with RFC 2047 words decoded, bodies with
//! their transfer encoding and charset undone. mail-parser does the
//! decoding.

use mail_parser::{Address, HeaderValue, MessageParser, PartType};

/// A message's searchable text.
#[derive(Debug, Clone, Default)]
pub struct SearchText {
    /// (lowercased field name, decoded value) of the top-level header.
    pub headers: Vec<(String, String)>,
    /// Decoded text of every text part (and nested message).
    pub bodies: Vec<String>,
    /// The Date: field as days since 1970-01-01 (SENTBEFORE etc. ignore
    /// the time and zone, RFC 9051 6.4.4).
    pub date: Option<i64>,
}

fn address_text(a: &Address<'_>) -> String {
    let mut out = Vec::new();
    for addr in a.iter() {
        let mut s = String::new();
        if let Some(n) = &addr.name {
            s.push_str(n);
            s.push(' ');
        }
        if let Some(e) = &addr.address {
            s.push('<');
            s.push_str(e);
            s.push('>');
        }
        out.push(s);
    }
    out.join(", ")
}

fn value_text(v: &HeaderValue<'_>) -> String {
    match v {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(" "),
        HeaderValue::Address(a) => address_text(a),
        HeaderValue::DateTime(d) => d.to_rfc822(),
        HeaderValue::ContentType(c) => match &c.c_subtype {
            Some(s) => format!("{}/{}", c.c_type, s),
            None => c.c_type.to_string(),
        },
        _ => String::new(),
    }
}

/// Extracts the searchable text of a raw message.
pub fn search_text(raw: &[u8], with_bodies: bool) -> SearchText {
    let parser = MessageParser::new()
        .with_mime_headers()
        .with_address_headers()
        .with_date_headers()
        .with_message_ids()
        .default_header_text();
    // mail-parser 0.11 trips a `debug_assert!` ("Invalid part ID, could
    // not find multipart") on some broken nestings of message/rfc822 in a
    // multipart (tests/mime_stress.rs finds them); release builds skip the
    // check and parse on. Contained here so a debug build answers SEARCH
    // too: the message is then searched as raw text, like one mail-parser
    // cannot parse.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse(raw)));
    let Some(msg) = parsed.ok().flatten().filter(|m| !m.parts.is_empty()) else {
        return SearchText {
            headers: Vec::new(),
            bodies: vec![String::from_utf8_lossy(raw).into_owned()],
            date: None,
        };
    };
    let headers = msg
        .headers()
        .iter()
        .map(|h| (h.name().to_ascii_lowercase(), value_text(h.value())))
        .collect();
    let mut bodies = Vec::new();
    if with_bodies {
        collect_bodies(&msg, &mut bodies, 0);
    }
    let date = msg.date().map(|d| {
        crate::date::days_from_civil(i64::from(d.year), u32::from(d.month), u32::from(d.day))
    });
    SearchText {
        headers,
        bodies,
        date,
    }
}

fn collect_bodies(msg: &mail_parser::Message<'_>, out: &mut Vec<String>, depth: usize) {
    for part in &msg.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => out.push(t.to_string()),
            // `Message::headers` indexes the first part: an encapsulated
            // message mail-parser could not make sense of may have none.
            PartType::Message(m) if depth < super::MAX_DEPTH && !m.parts.is_empty() => {
                for h in m.headers() {
                    out.push(value_text(h.value()));
                }
                collect_bodies(m, out, depth + 1);
            }
            // Binary parts and multipart containers have no text.
            _ => {}
        }
    }
}
