//! The stored form of a message's ENVELOPE and BODYSTRUCTURE (RFC 9051
//! 7.5.2), so that FETCH computes them once per body instead of parsing
//! the message at every FETCH.
//!
//! What is stored is the parsed structure ([`Envelope`], [`BodyStructure`]),
//! not the wire text: UTF8=ACCEPT (RFC 6855 3) and IMAP4rev2 change how
//! their strings are written, so each session still serialises them with
//! its own [`Encoder`](crate::Encoder). The form is compact and private to
//! mailroom: a leading format byte ([`FORMAT`]), then the fields in a fixed
//! order, lengths as little-endian u32, options as a 0/1 tag. A value of
//! another format, or one that does not decode, is `None`: the caller
//! parses the message again and stores the current format.

use super::address::Address;
use super::structure::{BodyStructure, Envelope, Extension};

/// The format written by [`encode`]; a later change to the structure types
/// takes the next number, and values of older ones are recomputed.
pub const FORMAT: u8 = 1;

/// Deepest nesting [`decode`] accepts: the parser stops at
/// [`super::MAX_DEPTH`] multiparts or messages, and each message/rfc822
/// part adds one structure level inside it.
const MAX_DECODE_DEPTH: usize = 2 * super::MAX_DEPTH + 2;

/// The stored form of a message's ENVELOPE and BODYSTRUCTURE.
pub fn encode(envelope: &Envelope, structure: &BodyStructure) -> Vec<u8> {
    let mut out = vec![FORMAT];
    put_envelope(&mut out, envelope);
    put_structure(&mut out, structure);
    out
}

/// The ENVELOPE and BODYSTRUCTURE of a stored form; `None` for another
/// format or damaged data (never a panic: the octets come from the store).
pub fn decode(data: &[u8]) -> Option<(Envelope, BodyStructure)> {
    let (&format, rest) = data.split_first()?;
    if format != FORMAT {
        return None;
    }
    let mut r = Reader(rest);
    let envelope = r.envelope()?;
    let structure = r.structure(0)?;
    r.0.is_empty().then_some((envelope, structure))
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
    use crate::mime::{Part, body_structure, envelope};

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
            let part = Part::parse(raw);
            let (env, bs) = (envelope(&part), body_structure(&part));
            let data = encode(&env, &bs);
            assert_eq!(data.first(), Some(&FORMAT));
            assert_eq!(decode(&data), Some((env, bs)), "{}", raw.escape_ascii());
        }
    }

    #[test]
    fn damaged_or_other_format_data_is_none() {
        let part = Part::parse(MESSAGES[2]);
        let data = encode(&envelope(&part), &body_structure(&part));
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
    }
}
