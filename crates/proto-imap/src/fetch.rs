//! FETCH data items and body sections (RFC 9051 6.4.5; RFC 3501 6.4.5 for
//! RFC822.*; RFC 3516 for BINARY).

use crate::lexer::{Cursor, LexResult};

/// Most header field names in one HEADER.FIELDS list.
pub const MAX_HEADER_FIELDS: usize = 256;

/// The text part of a section specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    Mime,
}

/// A body section: a part path (possibly empty) and an optional text
/// specifier (RFC 9051 9: section-spec).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

impl Section {
    /// The section as written inside `BODY[...]` in a response.
    pub fn to_wire(&self) -> String {
        let mut s: Vec<String> = self.part.iter().map(u32::to_string).collect();
        match &self.text {
            None => {}
            Some(SectionText::Header) => s.push("HEADER".into()),
            Some(SectionText::Text) => s.push("TEXT".into()),
            Some(SectionText::Mime) => s.push("MIME".into()),
            Some(SectionText::HeaderFields(f)) => {
                s.push(format!("HEADER.FIELDS ({})", quote_fields(f)))
            }
            Some(SectionText::HeaderFieldsNot(f)) => {
                s.push(format!("HEADER.FIELDS.NOT ({})", quote_fields(f)))
            }
        }
        s.join(".")
    }
}

fn quote_fields(f: &[String]) -> String {
    f.iter()
        .map(|x| x.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAtt {
    Envelope,
    Flags,
    InternalDate,
    Rfc822Size,
    /// RFC822: BODY[] with \Seen.
    Rfc822,
    /// RFC822.HEADER: BODY.PEEK[HEADER].
    Rfc822Header,
    /// RFC822.TEXT: BODY[TEXT] with \Seen.
    Rfc822Text,
    /// BODY (the structure without extension data).
    Body,
    BodyStructure,
    Uid,
    /// BODY[section]<partial> or BODY.PEEK[...].
    Section {
        peek: bool,
        section: Section,
        partial: Option<(u32, u32)>,
    },
    /// BINARY[part]<partial> or BINARY.PEEK (RFC 3516, RFC 9051).
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    BinarySize {
        part: Vec<u32>,
    },
    /// EMAILID and THREADID (RFC 8474 5).
    EmailId,
    ThreadId,
    /// PREVIEW (RFC 8970): up to 256 characters of the message's text;
    /// `lazy` for `PREVIEW (LAZY)`, which we answer like PREVIEW (it
    /// costs one read of the body either way).
    Preview {
        lazy: bool,
    },
    /// MODSEQ (RFC 7162), accepted for later CONDSTORE.
    ModSeq,
    /// SAVEDATE (RFC 8514 4.2): when the message was saved into this
    /// mailbox.
    SaveDate,
}

impl FetchAtt {
    /// True if fetching this sets \Seen (RFC 9051 6.4.5).
    pub fn sets_seen(&self) -> bool {
        matches!(
            self,
            FetchAtt::Rfc822
                | FetchAtt::Rfc822Text
                | FetchAtt::Section { peek: false, .. }
                | FetchAtt::Binary { peek: false, .. }
        )
    }

    /// True if the message body is needed to answer this item.
    pub fn needs_body(&self) -> bool {
        !matches!(
            self,
            FetchAtt::Flags
                | FetchAtt::InternalDate
                | FetchAtt::Rfc822Size
                | FetchAtt::Uid
                | FetchAtt::ModSeq
                | FetchAtt::SaveDate
                | FetchAtt::EmailId
                | FetchAtt::ThreadId
        )
    }
}

/// `fetch-att / "(" fetch-att *(SP fetch-att) ")"` or a macro.
pub fn parse_fetch_atts(c: &mut Cursor<'_>) -> LexResult<Vec<FetchAtt>> {
    if c.peek() == Some(b'(') {
        return c.paren_list(false, 64, parse_fetch_att);
    }
    // The macros (RFC 9051 6.4.5).
    for (word, expand) in [
        (
            "ALL",
            &[
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
                FetchAtt::Envelope,
            ][..],
        ),
        (
            "FAST",
            &[
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
            ][..],
        ),
        (
            "FULL",
            &[
                FetchAtt::Flags,
                FetchAtt::InternalDate,
                FetchAtt::Rfc822Size,
                FetchAtt::Envelope,
                FetchAtt::Body,
            ][..],
        ),
    ] {
        let save = c.clone();
        if c.eat_word(word) && matches!(c.peek(), None | Some(b' ' | b'\r' | b'\n' | b')')) {
            return Ok(expand.to_vec());
        }
        *c = save;
    }
    Ok(vec![parse_fetch_att(c)?])
}

/// One fetch-att.
pub fn parse_fetch_att(c: &mut Cursor<'_>) -> LexResult<FetchAtt> {
    let word = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'8');
    let word = std::str::from_utf8(word)
        .map_err(|_| "bad fetch attribute")?
        .to_ascii_uppercase();
    let att = match word.as_str() {
        "ENVELOPE" => FetchAtt::Envelope,
        "FLAGS" => FetchAtt::Flags,
        "INTERNALDATE" => FetchAtt::InternalDate,
        "RFC822.SIZE" => FetchAtt::Rfc822Size,
        "RFC822" => FetchAtt::Rfc822,
        "RFC822.HEADER" => FetchAtt::Rfc822Header,
        "RFC822.TEXT" => FetchAtt::Rfc822Text,
        "BODYSTRUCTURE" => FetchAtt::BodyStructure,
        "UID" => FetchAtt::Uid,
        "EMAILID" => FetchAtt::EmailId,
        "THREADID" => FetchAtt::ThreadId,
        "MODSEQ" => FetchAtt::ModSeq,
        "SAVEDATE" => FetchAtt::SaveDate,
        // RFC 8970 4: `PREVIEW [SP "(" preview-mod *(SP preview-mod) ")"]`.
        "PREVIEW" => {
            let mut lazy = false;
            if c.peek() == Some(b' ') && c.rest().get(1) == Some(&b'(') {
                c.sp()?;
                for m in c.paren_list(false, 4, |c| Ok(c.atom()?.to_ascii_uppercase()))? {
                    if m != "LAZY" {
                        return Err("unknown PREVIEW modifier");
                    }
                    lazy = true;
                }
            }
            FetchAtt::Preview { lazy }
        }
        "BODY" | "BODY.PEEK" => {
            let peek = word == "BODY.PEEK";
            if c.peek() != Some(b'[') {
                if peek {
                    return Err("BODY.PEEK needs a section");
                }
                return Ok(FetchAtt::Body);
            }
            let section = parse_section(c)?;
            let partial = parse_partial(c)?;
            FetchAtt::Section {
                peek,
                section,
                partial,
            }
        }
        "BINARY" | "BINARY.PEEK" => {
            let part = parse_binary_part(c)?;
            let partial = parse_partial(c)?;
            FetchAtt::Binary {
                peek: word == "BINARY.PEEK",
                part,
                partial,
            }
        }
        "BINARY.SIZE" => FetchAtt::BinarySize {
            part: parse_binary_part(c)?,
        },
        _ => return Err("unknown fetch attribute"),
    };
    Ok(att)
}

fn parse_part_numbers(c: &mut Cursor<'_>) -> LexResult<Vec<u32>> {
    let mut part = Vec::new();
    while c.peek().is_some_and(|b| b.is_ascii_digit()) {
        if part.len() >= 64 {
            return Err("section part path too deep");
        }
        part.push(c.nz_number()?);
        if !c.eat(b'.') {
            break;
        }
        if !c.peek().is_some_and(|b| b.is_ascii_digit()) {
            // "1.HEADER": the text specifier follows the dot.
            return Ok(part);
        }
    }
    Ok(part)
}

/// `"[" [section-spec] "]"`.
pub fn parse_section(c: &mut Cursor<'_>) -> LexResult<Section> {
    c.expect(b'[', "expected '['")?;
    let part = parse_part_numbers(c)?;
    let text = if c.peek() == Some(b']') {
        None
    } else {
        let word = c.take_while(|b| b.is_ascii_alphabetic() || b == b'.');
        let word = std::str::from_utf8(word)
            .map_err(|_| "bad section")?
            .to_ascii_uppercase();
        Some(match word.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                c.sp()?;
                let fields = c.paren_list(false, MAX_HEADER_FIELDS, |c| {
                    let f = c.astring()?;
                    let f = String::from_utf8(f).map_err(|_| "bad header field name")?;
                    if f.is_empty() || !f.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                        return Err("bad header field name");
                    }
                    Ok(f)
                })?;
                if word == "HEADER.FIELDS" {
                    SectionText::HeaderFields(fields)
                } else {
                    SectionText::HeaderFieldsNot(fields)
                }
            }
            _ => return Err("bad section text"),
        })
    };
    c.expect(b']', "expected ']'")?;
    Ok(Section { part, text })
}

fn parse_binary_part(c: &mut Cursor<'_>) -> LexResult<Vec<u32>> {
    c.expect(b'[', "expected '['")?;
    let part = parse_part_numbers(c)?;
    c.expect(b']', "expected ']'")?;
    Ok(part)
}

/// `"<" number "." nz-number ">"`.
fn parse_partial(c: &mut Cursor<'_>) -> LexResult<Option<(u32, u32)>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let start = c.number()?;
    c.expect(b'.', "expected '.' in partial")?;
    let len = c.nz_number()?;
    c.expect(b'>', "expected '>'")?;
    Ok(Some((start, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atts(s: &str) -> Vec<FetchAtt> {
        parse_fetch_atts(&mut Cursor::new(s.as_bytes())).unwrap()
    }

    #[test]
    fn macros_expand() {
        assert_eq!(atts("ALL").len(), 4);
        assert_eq!(atts("FULL").last(), Some(&FetchAtt::Body));
    }

    #[test]
    fn sections_parse_with_parts_text_and_partial() {
        let a = atts("(BODY.PEEK[1.2.MIME]<0.100> BODY[HEADER.FIELDS (From To)] BINARY[2])");
        assert_eq!(
            a[0],
            FetchAtt::Section {
                peek: true,
                section: Section {
                    part: vec![1, 2],
                    text: Some(SectionText::Mime)
                },
                partial: Some((0, 100))
            }
        );
        assert_eq!(
            a[1],
            FetchAtt::Section {
                peek: false,
                section: Section {
                    part: vec![],
                    text: Some(SectionText::HeaderFields(vec!["From".into(), "To".into()]))
                },
                partial: None
            }
        );
        assert!(matches!(&a[2], FetchAtt::Binary { part, .. } if part == &vec![2]));
        if let FetchAtt::Section { section, .. } = &a[1] {
            assert_eq!(section.to_wire(), "HEADER.FIELDS (FROM TO)");
        }
    }

    #[test]
    fn bad_sections_are_rejected() {
        for bad in [
            "BODY[MIME]",
            "BODY[0]",
            "BODY[HEADER.FIELDS ()]",
            "BODY[1.FOO]",
            "BODY.PEEK",
        ] {
            assert!(
                parse_fetch_atts(&mut Cursor::new(bad.as_bytes())).is_err(),
                "{bad}"
            );
        }
    }
}
