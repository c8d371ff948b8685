//! The stored form of a message's ENVELOPE and BODYSTRUCTURE (RFC 9051
//! 7.5.2) and of its parts' offsets ([`PartMap`]), so that FETCH computes
//! them once per body instead of parsing the message at every FETCH, and
//! reads a section (RFC 9051 6.4.5) from the store alone.
//!
//! What is stored is the parsed structure ([`Envelope`], [`BodyStructure`]),
//! not the wire text: UTF8=ACCEPT (RFC 6855 3) and IMAP4rev2 change how
//! their strings are written, so each session still serialises them with
//! its own [`Encoder`](crate::Encoder). The form is compact and private to
//! mailroom: a leading format byte ([`FORMAT`]), then the fields in a fixed
//! order, lengths as little-endian u32, options as a 0/1 tag. A value of
//! another format, or one that does not decode, is `None`: the caller
//! parses the message again and stores the current format.
//!
//! Formats: 1 had no offsets; 2 (this one) adds the [`PartMap`], absent
//! for a message shown re-encoded (parts holding NUL, RFC 3516 4.3), whose
//! shown octets are not the stored ones.

use super::address::Address;
use super::offsets::{Cte, MapKind, PartMap};
use super::structure::{BodyStructure, Envelope, Extension};
use super::{Part, body_structure, encode_binary_parts, envelope};

/// The format written by [`encode`]; a later change to the structure types
/// takes the next number, and values of older ones are recomputed.
pub const FORMAT: u8 = 2;

/// What the cache keeps of one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub envelope: Envelope,
    pub structure: BodyStructure,
    /// Where each part lies in the stored octets; `None` when the message
    /// is shown re-encoded ([`encode_binary_parts`]).
    pub map: Option<PartMap>,
}

impl Cached {
    /// The entry of a stored message, as FETCH shows it.
    pub fn of(raw: &[u8]) -> Cached {
        match encode_binary_parts(raw) {
            Some(shown) => {
                let p = Part::parse(&shown);
                Cached {
                    envelope: envelope(&p),
                    structure: body_structure(&p),
                    map: None,
                }
            }
            None => Cached::of_parsed(&Part::parse(raw)),
        }
    }

    /// The entry of a message parsed as it is stored (holding no part
    /// that [`encode_binary_parts`] would re-encode).
    pub fn of_parsed(p: &Part<'_>) -> Cached {
        Cached {
            envelope: envelope(p),
            structure: body_structure(p),
            map: Some(PartMap::of(p)),
        }
    }
}

/// Deepest nesting [`decode`] accepts: the parser stops at
/// [`super::MAX_DEPTH`] multiparts or messages, and each message/rfc822
/// part adds one structure level inside it.
const MAX_DECODE_DEPTH: usize = 2 * super::MAX_DEPTH + 2;

/// The stored form of a cache entry.
pub fn encode(c: &Cached) -> Vec<u8> {
    let mut out = vec![FORMAT];
    put_envelope(&mut out, &c.envelope);
    put_structure(&mut out, &c.structure);
    match &c.map {
        None => out.push(0),
        Some(m) => {
            out.push(1);
            put_map(&mut out, m);
        }
    }
    out
}

/// The entry of a stored form; `None` for another format or damaged data
/// (never a panic: the octets come from the store).
pub fn decode(data: &[u8]) -> Option<Cached> {
    let (&format, rest) = data.split_first()?;
    if format != FORMAT {
        return None;
    }
    let mut r = Reader(rest);
    let envelope = r.envelope()?;
    let structure = r.structure(0)?;
    let map = if r.flag()? { Some(r.map(0)?) } else { None };
    r.0.is_empty().then_some(Cached {
        envelope,
        structure,
        map,
    })
}

fn put_map(out: &mut Vec<u8>, m: &PartMap) {
    for n in [m.start, m.body, m.end] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.push(match m.cte {
        Cte::Identity => 0,
        Cte::Base64 => 1,
        Cte::QuotedPrintable => 2,
        Cte::Unknown => 3,
    });
    match &m.kind {
        MapKind::Leaf => out.push(0),
        MapKind::Multipart(children) => {
            out.push(1);
            put_len(out, children.len());
            for c in children {
                put_map(out, c);
            }
        }
        MapKind::Message(inner) => {
            out.push(2);
            put_map(out, inner);
        }
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Every length comes from a message the store accepted, far below
    // 4 GiB; saturate rather than wrap if one ever were not.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

fn put_params(out: &mut Vec<u8>, params: &[(String, String)]) {
    put_len(out, params.len());
    for (k, v) in params {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
}

fn put_addresses(out: &mut Vec<u8>, list: &[Address]) {
    put_len(out, list.len());
    for a in list {
        match a {
            Address::Mailbox {
                name,
                adl,
                mailbox,
                host,
            } => {
                out.push(0);
                for v in [name, adl, mailbox, host] {
                    put_opt(out, v.as_deref());
                }
            }
            Address::GroupStart(name) => {
                out.push(1);
                put_bytes(out, name);
            }
            Address::GroupEnd => out.push(2),
        }
    }
}

fn put_envelope(out: &mut Vec<u8>, e: &Envelope) {
    put_opt(out, e.date.as_deref());
    put_opt(out, e.subject.as_deref());
    for list in [&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc] {
        put_addresses(out, list);
    }
    put_opt(out, e.in_reply_to.as_deref());
    put_opt(out, e.message_id.as_deref());
}

fn put_extension(out: &mut Vec<u8>, x: &Extension) {
    match &x.disposition {
        None => out.push(0),
        Some((t, params)) => {
            out.push(1);
            put_bytes(out, t.as_bytes());
            put_params(out, params);
        }
    }
    match &x.language {
        None => out.push(0),
        Some(l) => {
            out.push(1);
            put_len(out, l.len());
            for s in l {
                put_bytes(out, s.as_bytes());
            }
        }
    }
    put_opt(out, x.location.as_deref());
}

fn put_structure(out: &mut Vec<u8>, s: &BodyStructure) {
    match s {
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
            ext,
        } => {
            out.push(0);
            put_bytes(out, mtype.as_bytes());
            put_bytes(out, subtype.as_bytes());
            put_params(out, params);
            put_opt(out, id.as_deref());
            put_opt(out, description.as_deref());
            put_bytes(out, encoding.as_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            match lines {
                None => out.push(0),
                Some(l) => {
                    out.push(1);
                    out.extend_from_slice(&l.to_le_bytes());
                }
            }
            match message {
                None => out.push(0),
                Some((env, body)) => {
                    out.push(1);
                    put_envelope(out, env);
                    put_structure(out, body);
                }
            }
            put_opt(out, md5.as_deref());
            put_extension(out, ext);
        }
        BodyStructure::Multi {
            parts,
            subtype,
            params,
            ext,
        } => {
            out.push(1);
            put_len(out, parts.len());
            for p in parts {
                put_structure(out, p);
            }
            put_bytes(out, subtype.as_bytes());
            put_params(out, params);
            put_extension(out, ext);
        }
    }
}

/// Reads the stored form; every method is `None` at the end of the data
/// or on a value that cannot be there.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A count of items that follow, each of at least one octet: more than
    /// the octets left is damage (and would make a huge allocation).
    fn len(&mut self) -> Option<usize> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        (n <= self.0.len()).then_some(n)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.len()?;
        Some(self.take(n)?.to_vec())
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }

    fn flag(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn opt(&mut self) -> Option<Option<Vec<u8>>> {
        if self.flag()? {
            Some(Some(self.bytes()?))
        } else {
            Some(None)
        }
    }

    fn params(&mut self) -> Option<Vec<(String, String)>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push((self.string()?, self.string()?));
        }
        Some(out)
    }

    fn addresses(&mut self) -> Option<Vec<Address>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(match self.byte()? {
                0 => Address::Mailbox {
                    name: self.opt()?,
                    adl: self.opt()?,
                    mailbox: self.opt()?,
                    host: self.opt()?,
                },
                1 => Address::GroupStart(self.bytes()?),
                2 => Address::GroupEnd,
                _ => return None,
            });
        }
        Some(out)
    }

    fn envelope(&mut self) -> Option<Envelope> {
        Some(Envelope {
            date: self.opt()?,
            subject: self.opt()?,
            from: self.addresses()?,
            sender: self.addresses()?,
            reply_to: self.addresses()?,
            to: self.addresses()?,
            cc: self.addresses()?,
            bcc: self.addresses()?,
            in_reply_to: self.opt()?,
            message_id: self.opt()?,
        })
    }

    fn extension(&mut self) -> Option<Extension> {
        let disposition = if self.flag()? {
            Some((self.string()?, self.params()?))
        } else {
            None
        };
        let language = if self.flag()? {
            let n = self.len()?;
            let mut l = Vec::with_capacity(n);
            for _ in 0..n {
                l.push(self.string()?);
            }
            Some(l)
        } else {
            None
        };
        Some(Extension {
            disposition,
            language,
            location: self.opt()?,
        })
    }

    fn map(&mut self, depth: usize) -> Option<PartMap> {
        if depth > MAX_DECODE_DEPTH {
            return None;
        }
        let (start, body, end) = (self.u64()?, self.u64()?, self.u64()?);
        // Offsets that do not nest are damage: a range read would be
        // refused or wrong.
        if !(start <= body && body <= end) {
            return None;
        }
        let cte = match self.byte()? {
            0 => Cte::Identity,
            1 => Cte::Base64,
            2 => Cte::QuotedPrintable,
            3 => Cte::Unknown,
            _ => return None,
        };
        let kind = match self.byte()? {
            0 => MapKind::Leaf,
            1 => {
                let n = self.len()?;
                let mut children = Vec::with_capacity(n);
                for _ in 0..n {
                    children.push(self.map(depth + 1)?);
                }
                MapKind::Multipart(children)
            }
            2 => MapKind::Message(Box::new(self.map(depth + 1)?)),
            _ => return None,
        };
        Some(PartMap {
            start,
            body,
            end,
            cte,
            kind,
        })
    }

    fn structure(&mut self, depth: usize) -> Option<BodyStructure> {
        if depth > MAX_DECODE_DEPTH {
            return None;
        }
        match self.byte()? {
            0 => {
                let mtype = self.string()?;
                let subtype = self.string()?;
                let params = self.params()?;
                let id = self.opt()?;
                let description = self.opt()?;
                let encoding = self.string()?;
                let size = self.u64()?;
                let lines = if self.flag()? {
                    Some(self.u64()?)
                } else {
                    None
                };
                let message = if self.flag()? {
                    let env = self.envelope()?;
                    let body = self.structure(depth + 1)?;
                    Some((Box::new(env), Box::new(body)))
                } else {
                    None
                };
                Some(BodyStructure::Single {
                    mtype,
                    subtype,
                    params,
                    id,
                    description,
                    encoding,
                    size,
                    lines,
                    message,
                    md5: self.opt()?,
                    ext: self.extension()?,
                })
            }
            1 => {
                let n = self.len()?;
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push(self.structure(depth + 1)?);
                }
                Some(BodyStructure::Multi {
                    parts,
                    subtype: self.string()?,
                    params: self.params()?,
                    ext: self.extension()?,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGES: &[&[u8]] = &[
        b"Subject: one part\r\n\r\nhello\r\n",
        b"",
        b"From: \"A, B\" <a@example.test>, group: c@d, e@f;\r\nSender: s@x\r\n\
To: undisclosed:;\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <1@x>\r\nIn-Reply-To: <0@x>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\
Content-Language: en, fr\r\nContent-ID: <p1>\r\nContent-Description: d\r\n\r\n\
first\r\nline\r\n--b\r\nContent-Type: message/rfc822\r\n\
Content-Disposition: attachment; filename=\"m.eml\"\r\nContent-Location: x:/y\r\n\
Content-MD5: abc\r\n\r\nSubject: inner\r\nFrom: i@x\r\n\r\ninner body\r\n\
--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nplain\r\n\
--c\r\nContent-Type: text/html\r\n\r\n<p>h</p>\r\n--c--\r\n--b--\r\n",
        "Subject: Grüße\r\nFrom: Jörg <jörg@bücher.example>\r\n\r\nü\r\n".as_bytes(),
    ];

    #[test]
    fn decode_of_encode_is_the_same_structure() {
        for raw in MESSAGES {
            let c = Cached::of(raw);
            assert!(c.map.is_some());
            let data = encode(&c);
            assert_eq!(data.first(), Some(&FORMAT));
            assert_eq!(decode(&data), Some(c), "{}", raw.escape_ascii());
        }
    }

    #[test]
    fn a_message_shown_reencoded_has_no_offsets() {
        let raw = b"Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: binary\r\n\r\n\0\x01\r\n";
        let c = Cached::of(raw);
        assert_eq!(c.map, None);
        assert!(format!("{:?}", c.structure).contains("BASE64"));
        assert_eq!(decode(&encode(&c)), Some(c));
    }

    #[test]
    fn format_1_entries_are_not_read() {
        // Format 1: the same fields, without the map; recomputed.
        let c = Cached::of(MESSAGES[0]);
        let mut v1 = vec![1];
        put_envelope(&mut v1, &c.envelope);
        put_structure(&mut v1, &c.structure);
        assert_eq!(decode(&v1), None);
    }

    #[test]
    fn damaged_or_other_format_data_is_none() {
        let data = encode(&Cached::of(MESSAGES[2]));
        // Every truncation, and anything after the end, is refused.
        for n in 0..data.len() {
            assert_eq!(decode(&data[..n]), None, "prefix of {n}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        let mut other = data.clone();
        other[0] = FORMAT + 1;
        assert_eq!(decode(&other), None);
        // A count far past the data does not allocate it.
        let mut huge = vec![FORMAT, 0, 0];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), None);
        // Nesting past any the parser makes is refused.
        let mut deep = vec![FORMAT];
        put_envelope(&mut deep, &Envelope::default());
        for _ in 0..=MAX_DECODE_DEPTH + 1 {
            deep.push(1);
            deep.extend_from_slice(&1u32.to_le_bytes());
        }
        assert_eq!(decode(&deep), None);
        // Offsets that do not nest are refused.
        let mut bad = vec![FORMAT];
        put_envelope(&mut bad, &Envelope::default());
        put_structure(&mut bad, &Cached::of(b"").structure);
        bad.push(1);
        for n in [5u64, 3, 9] {
            bad.extend_from_slice(&n.to_le_bytes());
        }
        bad.extend_from_slice(&[0, 0]);
        assert_eq!(decode(&bad), None);
    }
}
