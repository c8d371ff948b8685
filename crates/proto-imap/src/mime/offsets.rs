//! Where each MIME part lies in the stored message (issue 18): the
//! offsets of its header, its body and its end, for every part (nested
//! message/rfc822 parts too), kept in the per-body cache, so that
//! BODY[section] (RFC 9051 6.4.5) and BINARY[section] (RFC 3516 4.2) are
//! answered by reading only the section's octets from the store.
//!
//! The map mirrors [`Part`]'s tree exactly, so [`PartMap::resolve`] and
//! [`plan`] follow the same numbering rules as [`super::resolve`] and
//! [`super::section`]; the tests check that both give the same octets.

use super::{Part, PartKind};
use crate::fetch::{Section, SectionText};

/// A part's transfer encoding, as far as BINARY (RFC 3516 4.2) cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cte {
    /// 7bit, 8bit or binary: the body is the content.
    Identity,
    Base64,
    QuotedPrintable,
    /// Anything else: `NO [UNKNOWN-CTE]` (RFC 3516 4.3).
    Unknown,
}

impl Cte {
    pub fn of(encoding: &str) -> Cte {
        match encoding {
            "7bit" | "8bit" | "binary" => Cte::Identity,
            "base64" => Cte::Base64,
            "quoted-printable" => Cte::QuotedPrintable,
            _ => Cte::Unknown,
        }
    }
}

/// What a mapped part contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapKind {
    Leaf,
    Multipart(Vec<PartMap>),
    /// message/rfc822 (or message/global): the encapsulated message.
    Message(Box<PartMap>),
}

/// One part's place in the stored message: its header is
/// `start..body`, its body `body..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartMap {
    pub start: u64,
    pub body: u64,
    pub end: u64,
    pub cte: Cte,
    pub kind: MapKind,
}

impl PartMap {
    /// The map of a parsed message.
    pub fn of(p: &Part<'_>) -> PartMap {
        PartMap {
            start: p.start as u64,
            body: p.body_start() as u64,
            end: p.end() as u64,
            cte: Cte::of(&p.encoding()),
            kind: match &p.kind {
                PartKind::Leaf => MapKind::Leaf,
                PartKind::Multipart(children) => {
                    MapKind::Multipart(children.iter().map(PartMap::of).collect())
                }
                PartKind::Message(m) => MapKind::Message(Box::new(PartMap::of(m))),
            },
        }
    }

    /// The part at a part path: the rules of [`super::resolve`].
    pub fn resolve(&self, path: &[u32]) -> Option<&PartMap> {
        let mut node = self;
        let mut rest = path;
        if let Some((&first, tail)) = path.split_first()
            && !matches!(self.kind, MapKind::Multipart(_))
        {
            if first != 1 {
                return None;
            }
            rest = tail;
        }
        for &n in rest {
            node = node.child(n)?;
        }
        Some(node)
    }

    fn child(&self, n: u32) -> Option<&PartMap> {
        let idx = usize::try_from(n).ok()?.checked_sub(1)?;
        match &self.kind {
            MapKind::Multipart(children) => children.get(idx),
            MapKind::Message(m) => match &m.kind {
                MapKind::Multipart(children) => children.get(idx),
                _ => (idx == 0).then_some(m.as_ref()),
            },
            MapKind::Leaf => (idx == 0).then_some(self),
        }
    }
}

/// Which stored octets make up a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionPlan {
    /// Exactly the octets `start..end` of the stored message.
    Range(u64, u64),
    /// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT of the header at
    /// `start..end`: read it, then [`header_fields`].
    Fields {
        start: u64,
        end: u64,
        names: Vec<String>,
        keep: bool,
    },
}

/// How to answer BODY[section] from the map: the rules of
/// [`super::section`]; `None` where that is `None` (no such part, or the
/// section does not apply to it).
pub fn plan(root: &PartMap, s: &Section) -> Option<SectionPlan> {
    let node = root.resolve(&s.part)?;
    let message = || -> Option<&PartMap> {
        if s.part.is_empty() {
            Some(root)
        } else {
            match &node.kind {
                MapKind::Message(m) => Some(m.as_ref()),
                _ => None,
            }
        }
    };
    let fields = |m: &PartMap, names: &[String], keep| SectionPlan::Fields {
        start: m.start,
        end: m.body,
        names: names.to_vec(),
        keep,
    };
    Some(match &s.text {
        None if s.part.is_empty() => SectionPlan::Range(root.start, root.end),
        None => SectionPlan::Range(node.body, node.end),
        Some(SectionText::Mime) => {
            if s.part.is_empty() {
                return None;
            }
            SectionPlan::Range(node.start, node.body)
        }
        Some(SectionText::Header) => {
            let m = message()?;
            SectionPlan::Range(m.start, m.body)
        }
        Some(SectionText::Text) => {
            let m = message()?;
            SectionPlan::Range(m.body, m.end)
        }
        Some(SectionText::HeaderFields(names)) => fields(message()?, names, true),
        Some(SectionText::HeaderFieldsNot(names)) => fields(message()?, names, false),
    })
}

/// The part BINARY[path] decodes (RFC 3516 4.2), or why there is none;
/// the empty path is the whole message, as it is stored.
pub fn binary_part<'m>(
    root: &'m PartMap,
    path: &[u32],
) -> Result<(&'m PartMap, Cte), super::BinaryError> {
    if path.is_empty() {
        return Ok((root, Cte::Identity));
    }
    let node = root.resolve(path).ok_or(super::BinaryError::NoSuchPart)?;
    if matches!(node.kind, MapKind::Multipart(_)) {
        return Err(super::BinaryError::NoSuchPart);
    }
    if node.cte == Cte::Unknown {
        return Err(super::BinaryError::UnknownEncoding);
    }
    Ok((node, node.cte))
}

/// HEADER.FIELDS (`keep`) and HEADER.FIELDS.NOT of a header block read
/// from the store: the same octets as [`super::section`] gives.
pub fn header_fields(header: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    super::section::header_fields_of(&super::parse_fields(header), names, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::{binary, decode_base64, decode_qp, section};

    /// Every section path up to three levels, with every text specifier.
    fn sections() -> Vec<Section> {
        let mut paths: Vec<Vec<u32>> = vec![vec![]];
        for a in 1..=4 {
            paths.push(vec![a]);
            for b in 1..=3 {
                paths.push(vec![a, b]);
                for c in 1..=2 {
                    paths.push(vec![a, b, c]);
                }
            }
        }
        let names = vec!["subject".to_string(), "CONTENT-TYPE".to_string()];
        let texts = [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields(names.clone())),
            Some(SectionText::HeaderFieldsNot(names)),
        ];
        let mut out = Vec::new();
        for p in paths {
            for t in &texts {
                out.push(Section {
                    part: p.clone(),
                    text: t.clone(),
                });
            }
        }
        out
    }

    fn by_plan(raw: &[u8], map: &PartMap, s: &Section) -> Option<Vec<u8>> {
        let slice = |a: u64, b: u64| raw.get(a as usize..b as usize).map(<[u8]>::to_vec);
        match plan(map, s)? {
            SectionPlan::Range(a, b) => slice(a, b),
            SectionPlan::Fields {
                start,
                end,
                names,
                keep,
            } => Some(header_fields(&slice(start, end)?, &names, keep)),
        }
    }

    /// The offsets give the same octets as the parsed message, for every
    /// section and BINARY.
    fn check_same_sections(raw: &[u8]) {
        let root = Part::parse(raw);
        let map = PartMap::of(&root);
        assert_eq!((map.start, map.end), (0, raw.len() as u64));
        for s in sections() {
            assert_eq!(
                by_plan(raw, &map, &s),
                section(&root, raw, &s),
                "BODY[{}] of {}",
                s.to_wire(),
                raw.escape_ascii()
            );
            let want = binary(&root, raw, &s.part);
            let got = binary_part(&map, &s.part).map(|(p, cte)| {
                let body = raw.get(p.body as usize..p.end as usize).unwrap_or_default();
                match cte {
                    _ if s.part.is_empty() => raw.to_vec(),
                    Cte::Base64 => decode_base64(body),
                    Cte::QuotedPrintable => decode_qp(body),
                    _ => body.to_vec(),
                }
            });
            assert_eq!(got, want, "BINARY[{}]", s.to_wire());
        }
    }

    const MESSAGES: &[&[u8]] = &[
        b"Subject: one part\r\n\r\nhello\r\n",
        b"",
        b"Subject: x\n",
        b"From: outer@x\r\nContent-Type: message/rfc822\r\n\r\n\
From: inner@y\r\nSubject: sub\r\n\r\nHello\r\n",
        b"Subject: m\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\
Content-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nplain=3D\r\n\
--c\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nq=3D=\r\nx\r\n--c--\r\n\
--b\r\nContent-Transfer-Encoding: x-uu\r\n\r\nbegin\r\n--b--\r\nepilogue\r\n",
        b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: d1\n\nbody\n--d",
    ];

    #[test]
    fn offsets_give_the_octets_of_every_section() {
        for raw in MESSAGES {
            check_same_sections(raw);
        }
    }
}
