//! ENVELOPE and BODYSTRUCTURE (RFC 9051 7.5.2) of a parsed message.

use super::address::{Address, parse_address_list};
use super::{ContentType, Part, PartKind, parse_content_type, unfold};
use crate::response::Encoder;

/// What ENVELOPE and BODYSTRUCTURE read of a part: a parsed [`Part`], or a
/// part found by the streaming scan of a big message (`mime::scan`),
/// which keeps its header but not its body.
pub trait Entity: Sized {
    /// The first field of that name (case-insensitive).
    fn field(&self, name: &str) -> Option<&[u8]>;
    fn content_type(&self) -> &ContentType;
    /// The body's size in octets.
    fn body_size(&self) -> u64;
    /// The body's line count, as BODYSTRUCTURE gives it (RFC 9051 7.5.2).
    fn body_lines(&self) -> u64;
    fn children(&self) -> Shape<'_, Self>;

    /// The transfer encoding, lowercased; "7bit" when absent.
    fn encoding(&self) -> String {
        self.field("Content-Transfer-Encoding")
            .map(|v| String::from_utf8_lossy(&unfold(v)).to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "7bit".into())
    }
}

/// What an [`Entity`] contains.
pub enum Shape<'e, E> {
    Leaf,
    Multipart(&'e [E]),
    Message(&'e E),
}

impl Entity for Part<'_> {
    fn field(&self, name: &str) -> Option<&[u8]> {
        Part::field(self, name)
    }
    fn content_type(&self) -> &ContentType {
        &self.content_type
    }
    fn body_size(&self) -> u64 {
        self.body.len() as u64
    }
    fn body_lines(&self) -> u64 {
        count_lines(self.body)
    }
    fn children(&self) -> Shape<'_, Self> {
        match &self.kind {
            PartKind::Leaf => Shape::Leaf,
            PartKind::Multipart(c) => Shape::Multipart(c),
            PartKind::Message(m) => Shape::Message(m),
        }
    }
}

/// The ENVELOPE of a message: raw header values, unfolded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub date: Option<Vec<u8>>,
    pub subject: Option<Vec<u8>>,
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<Vec<u8>>,
    pub message_id: Option<Vec<u8>>,
}

fn value<E: Entity>(p: &E, name: &str) -> Option<Vec<u8>> {
    p.field(name).map(unfold).filter(|v| !v.is_empty())
}

fn addresses<E: Entity>(p: &E, name: &str) -> Vec<Address> {
    p.field(name)
        .map(|v| parse_address_list(&unfold(v)))
        .unwrap_or_default()
}

/// The envelope of a message (or of an encapsulated message part).
pub fn envelope<E: Entity>(p: &E) -> Envelope {
    let from = addresses(p, "From");
    let mut sender = addresses(p, "Sender");
    if sender.is_empty() {
        sender = from.clone();
    }
    let mut reply_to = addresses(p, "Reply-To");
    if reply_to.is_empty() {
        reply_to = from.clone();
    }
    Envelope {
        date: value(p, "Date"),
        subject: value(p, "Subject"),
        from,
        sender,
        reply_to,
        to: addresses(p, "To"),
        cc: addresses(p, "Cc"),
        bcc: addresses(p, "Bcc"),
        in_reply_to: value(p, "In-Reply-To"),
        message_id: value(p, "Message-ID"),
    }
}

fn write_addresses(enc: &Encoder, out: &mut Vec<u8>, list: &[Address]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        match a {
            Address::Mailbox {
                name,
                adl,
                mailbox,
                host,
            } => {
                for (i, v) in [name, adl, mailbox, host].into_iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    enc.nstring(out, v.as_deref());
                }
            }
            Address::GroupStart(name) => {
                out.extend_from_slice(b"NIL NIL ");
                enc.string(out, name);
                out.extend_from_slice(b" NIL");
            }
            Address::GroupEnd => out.extend_from_slice(b"NIL NIL NIL NIL"),
        }
        out.push(b')');
    }
    out.push(b')');
}

impl Envelope {
    pub fn write(&self, enc: &Encoder, out: &mut Vec<u8>) {
        out.push(b'(');
        enc.nstring(out, self.date.as_deref());
        out.push(b' ');
        enc.nstring(out, self.subject.as_deref());
        for list in [
            &self.from,
            &self.sender,
            &self.reply_to,
            &self.to,
            &self.cc,
            &self.bcc,
        ] {
            out.push(b' ');
            write_addresses(enc, out, list);
        }
        out.push(b' ');
        enc.nstring(out, self.in_reply_to.as_deref());
        out.push(b' ');
        enc.nstring(out, self.message_id.as_deref());
        out.push(b')');
    }
}

/// Extension data common to both forms (RFC 9051 7.5.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension {
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Option<Vec<String>>,
    pub location: Option<Vec<u8>>,
}

/// A BODYSTRUCTURE value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStructure {
    Single {
        mtype: String,
        subtype: String,
        params: Vec<(String, String)>,
        id: Option<Vec<u8>>,
        description: Option<Vec<u8>>,
        encoding: String,
        size: u64,
        /// Text parts and message/rfc822: the body's line count.
        lines: Option<u64>,
        /// message/rfc822: the encapsulated message's envelope and body.
        message: Option<(Box<Envelope>, Box<BodyStructure>)>,
        md5: Option<Vec<u8>>,
        ext: Extension,
    },
    Multi {
        parts: Vec<BodyStructure>,
        subtype: String,
        params: Vec<(String, String)>,
        ext: Extension,
    },
}

fn count_lines(b: &[u8]) -> u64 {
    let n = b.iter().filter(|&&c| c == b'\n').count() as u64;
    if b.last().is_some_and(|&c| c != b'\n') {
        n + 1
    } else {
        n
    }
}

fn extension<E: Entity>(p: &E) -> Extension {
    let disposition = p.field("Content-Disposition").map(|v| {
        let d = parse_content_type(v);
        (d.mtype, d.params)
    });
    let disposition = disposition.filter(|(t, _)| !t.is_empty());
    let language = value(p, "Content-Language").map(|v| {
        String::from_utf8_lossy(&v)
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    Extension {
        disposition,
        language,
        location: value(p, "Content-Location"),
    }
}

/// The BODYSTRUCTURE of a parsed message.
pub fn body_structure<E: Entity>(p: &E) -> BodyStructure {
    let ct = p.content_type();
    match p.children() {
        Shape::Multipart(children) => BodyStructure::Multi {
            parts: children.iter().map(body_structure).collect(),
            subtype: ct.subtype.clone(),
            params: ct.params.clone(),
            ext: extension(p),
        },
        kind => {
            let is_text = ct.mtype.eq_ignore_ascii_case("text");
            let message = match kind {
                Shape::Message(m) => Some((Box::new(envelope(m)), Box::new(body_structure(m)))),
                _ => None,
            };
            let lines = (is_text || message.is_some()).then(|| p.body_lines());
            BodyStructure::Single {
                mtype: ct.mtype.clone(),
                subtype: ct.subtype.clone(),
                params: ct.params.clone(),
                id: value(p, "Content-ID"),
                description: value(p, "Content-Description"),
                encoding: p.encoding().to_ascii_uppercase(),
                size: p.body_size(),
                lines,
                message,
                md5: value(p, "Content-MD5"),
                ext: extension(p),
            }
        }
    }
}

fn write_params(enc: &Encoder, out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        enc.string(out, k.as_bytes());
        out.push(b' ');
        enc.string(out, v.as_bytes());
    }
    out.push(b')');
}

impl Extension {
    fn write(&self, enc: &Encoder, out: &mut Vec<u8>) {
        out.push(b' ');
        match &self.disposition {
            None => out.extend_from_slice(b"NIL"),
            Some((t, params)) => {
                out.push(b'(');
                enc.string(out, t.as_bytes());
                out.push(b' ');
                write_params(enc, out, params);
                out.push(b')');
            }
        }
        out.push(b' ');
        match &self.language {
            None => out.extend_from_slice(b"NIL"),
            Some(l) if l.len() == 1 => enc.string(out, l.concat().as_bytes()),
            Some(l) => {
                out.push(b'(');
                for (i, x) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    enc.string(out, x.as_bytes());
                }
                out.push(b')');
            }
        }
        out.push(b' ');
        enc.nstring(out, self.location.as_deref());
    }
}

impl BodyStructure {
    /// `ext`: BODYSTRUCTURE (with extension data) rather than BODY.
    pub fn write(&self, enc: &Encoder, out: &mut Vec<u8>, ext: bool) {
        out.push(b'(');
        match self {
            BodyStructure::Multi {
                parts,
                subtype,
                params,
                ext: e,
            } => {
                for p in parts {
                    p.write(enc, out, ext);
                }
                out.push(b' ');
                enc.string(out, subtype.to_ascii_uppercase().as_bytes());
                if ext {
                    out.push(b' ');
                    write_params(enc, out, params);
                    e.write(enc, out);
                }
            }
            BodyStructure::Single {
                mtype,
                subtype,
                params,
                id,
                description,
                encoding,
                size,
                lines,
                message,
                md5,
                ext: e,
            } => {
                enc.string(out, mtype.to_ascii_uppercase().as_bytes());
                out.push(b' ');
                enc.string(out, subtype.to_ascii_uppercase().as_bytes());
                out.push(b' ');
                write_params(enc, out, params);
                out.push(b' ');
                enc.nstring(out, id.as_deref());
                out.push(b' ');
                enc.nstring(out, description.as_deref());
                out.push(b' ');
                enc.string(out, encoding.as_bytes());
                out.extend_from_slice(format!(" {size}").as_bytes());
                if let Some((env, body)) = message {
                    out.push(b' ');
                    env.write(enc, out);
                    out.push(b' ');
                    body.write(enc, out, ext);
                }
                if let Some(l) = lines {
                    out.extend_from_slice(format!(" {l}").as_bytes());
                }
                if ext {
                    out.push(b' ');
                    enc.nstring(out, md5.as_deref());
                    e.write(enc, out);
                }
            }
        }
        out.push(b')');
    }
}
