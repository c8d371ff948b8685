//! The METADATA commands' grammar (RFC 5464 4, 5): GETMETADATA and
//! SETMETADATA, and the entry names they carry.
//!
//! An entry name (3.2) is a `/`-separated path under `/private` or
//! `/shared`; it never holds `*` or `%` (5: "entry ... MUST NOT contain
//! wildcards"), a control character, two slashes in a row or a trailing
//! slash. Such a name is a syntax error (`BAD`), so a session only ever
//! sees valid ones. Names are case-insensitive; they are kept as given
//! here and compared in lower case by the store.

use crate::command::ParseOptions;
use crate::lexer::{Cursor, LexResult};
use crate::types::Mailbox;

/// Longest entry name accepted: RFC 5464 sets none; bounds what a client
/// can make the server store and compare.
pub const MAX_ENTRY_NAME: usize = 1024;
/// Entries named by one GETMETADATA or set by one SETMETADATA.
pub const MAX_ENTRIES_PER_COMMAND: usize = 64;

/// GETMETADATA's DEPTH (RFC 5464 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Depth {
    /// The entries named, only.
    #[default]
    Zero,
    /// And their children.
    One,
    /// And everything below them.
    Infinity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMetadata {
    /// None: the server's entries (the mailbox name `""`).
    pub mailbox: Option<Mailbox>,
    pub entries: Vec<String>,
    /// RFC 5464 4.2.1: larger values are left out (LONGENTRIES).
    pub max_size: Option<u64>,
    pub depth: Depth,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMetadata {
    pub mailbox: Option<Mailbox>,
    /// NIL (None) removes the entry (4.3).
    pub entries: Vec<(String, Option<Vec<u8>>)>,
}

/// An entry name of RFC 5464 3.2, checked as the module header says.
pub fn check_entry(name: &str) -> LexResult<()> {
    if name.len() > MAX_ENTRY_NAME {
        return Err("metadata entry name too long");
    }
    let lower = name.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("/private")
        .or_else(|| lower.strip_prefix("/shared"))
        .ok_or("a metadata entry starts with /private or /shared")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err("a metadata entry starts with /private or /shared");
    }
    if name.ends_with('/') || name.contains("//") {
        return Err("empty component in a metadata entry");
    }
    if name
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == b'*' || b == b'%' || !b.is_ascii())
    {
        return Err("bad character in a metadata entry");
    }
    Ok(())
}

fn entry(c: &mut Cursor<'_>) -> LexResult<String> {
    let raw = c.astring()?;
    let name = String::from_utf8(raw).map_err(|_| "bad character in a metadata entry")?;
    check_entry(&name)?;
    Ok(name)
}

/// `""` names the server (RFC 5464 4.2, 4.3).
fn mailbox_or_server(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<Option<Mailbox>> {
    if c.rest().starts_with(b"\"\"") {
        c.advance(2);
        return Ok(None);
    }
    crate::command::mailbox(c, opts).map(Some)
}

/// `(MAXSIZE n DEPTH d)` in any order.
fn options(c: &mut Cursor<'_>, get: &mut GetMetadata) -> LexResult<()> {
    c.paren_list(false, 4, |c| {
        match c.atom()?.to_ascii_uppercase().as_str() {
            "MAXSIZE" => {
                c.sp()?;
                get.max_size = Some(c.number64()?);
            }
            "DEPTH" => {
                c.sp()?;
                get.depth = match c.atom()?.to_ascii_lowercase().as_str() {
                    "0" => Depth::Zero,
                    "1" => Depth::One,
                    "infinity" => Depth::Infinity,
                    _ => return Err("DEPTH is 0, 1 or infinity"),
                };
            }
            _ => return Err("unknown GETMETADATA option"),
        }
        Ok(())
    })?;
    Ok(())
}

fn starts_options(c: &Cursor<'_>) -> bool {
    let rest = c.rest();
    [b"(MAXSIZE ".as_slice(), b"(DEPTH "].iter().any(|p| {
        rest.len() >= p.len()
            && rest
                .get(..p.len())
                .is_some_and(|r| r.eq_ignore_ascii_case(p))
    })
}

/// What follows `GETMETADATA `. The options come before the mailbox in
/// RFC 5464 5's grammar and after it in some of its examples (and in
/// clients that copied them): both are read.
pub fn parse_getmetadata(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<GetMetadata> {
    let mut get = GetMetadata {
        mailbox: None,
        entries: Vec::new(),
        max_size: None,
        depth: Depth::Zero,
    };
    if starts_options(c) {
        options(c, &mut get)?;
        c.sp()?;
    }
    get.mailbox = mailbox_or_server(c, opts)?;
    c.sp()?;
    if starts_options(c) {
        options(c, &mut get)?;
        c.sp()?;
    }
    get.entries = if c.peek() == Some(b'(') {
        c.paren_list(false, MAX_ENTRIES_PER_COMMAND, entry)?
    } else {
        vec![entry(c)?]
    };
    Ok(get)
}

/// What follows `SETMETADATA `: `mailbox (entry value ...)`, where a
/// value is NIL, a string or a literal8 (RFC 5464 5).
pub fn parse_setmetadata(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<SetMetadata> {
    let mailbox = mailbox_or_server(c, opts)?;
    c.sp()?;
    let entries = c.paren_list(false, MAX_ENTRIES_PER_COMMAND, |c| {
        let name = entry(c)?;
        c.sp()?;
        let value = if c.peek() == Some(b'~') {
            Some(c.literal(true)?)
        } else {
            c.nstring()?
        };
        Ok((name, value))
    })?;
    Ok(SetMetadata { mailbox, entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CommandKind, parse_command};

    fn kind(line: &[u8]) -> CommandKind {
        match parse_command(line, ParseOptions::default()) {
            Ok(c) => c.kind,
            Err(e) => panic!("{}: {e:?}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn rfc_5464_examples_parse() {
        // 4.2.1, 4.2.2 (options after the mailbox, as there) and 4.3.
        let CommandKind::GetMetadata(g) = kind(b"a GETMETADATA \"\" /shared/comment\r\n") else {
            panic!("not GETMETADATA");
        };
        assert_eq!(g.mailbox, None);
        assert_eq!(g.entries, ["/shared/comment"]);
        let CommandKind::GetMetadata(g) =
            kind(b"a GETMETADATA INBOX (MAXSIZE 1024) (/shared/comment /private/comment)\r\n")
        else {
            panic!("not GETMETADATA");
        };
        assert_eq!(
            g.mailbox.map(|m| m.as_str().to_string()).as_deref(),
            Some("INBOX")
        );
        assert_eq!(g.max_size, Some(1024));
        assert_eq!(g.entries.len(), 2);
        let CommandKind::GetMetadata(g) =
            kind(b"a GETMETADATA (DEPTH infinity MAXSIZE 5) \"\" /shared\r\n")
        else {
            panic!("not GETMETADATA");
        };
        assert_eq!(g.depth, Depth::Infinity);
        let CommandKind::SetMetadata(s) = kind(
            b"a SETMETADATA INBOX (/private/comment {14}\r\nMy new comment /shared/comment NIL)\r\n",
        ) else {
            panic!("not SETMETADATA");
        };
        assert_eq!(
            s.entries,
            vec![
                (
                    "/private/comment".to_string(),
                    Some(b"My new comment".to_vec())
                ),
                ("/shared/comment".to_string(), None),
            ]
        );
        let CommandKind::SetMetadata(s) = kind(b"a SETMETADATA \"\" (/shared/x ~{3}\r\na\0b)\r\n")
        else {
            panic!("not SETMETADATA");
        };
        assert_eq!(s.entries[0].1.as_deref(), Some(&b"a\0b"[..]));
    }

    #[test]
    fn bad_entry_names_are_syntax_errors() {
        for e in [
            "/other/x",
            "/privatex",
            "/private/",
            "/shared//x",
            "/shared/a*",
            "/shared/%",
            "comment",
        ] {
            assert!(check_entry(e).is_err(), "{e}");
            let line = format!("a GETMETADATA \"\" {e}\r\n");
            assert!(
                parse_command(line.as_bytes(), ParseOptions::default()).is_err(),
                "{line}"
            );
        }
        for e in [
            "/private",
            "/shared",
            "/Private/Vendor/x",
            "/shared/comment",
        ] {
            assert!(check_entry(e).is_ok(), "{e}");
        }
        for line in [
            "a GETMETADATA \"\" (DEPTH 2) /shared\r\n",
            "a GETMETADATA \"\"\r\n",
            "a SETMETADATA \"\" ()\r\n",
            "a SETMETADATA \"\" (/shared/x)\r\n",
        ] {
            assert!(
                parse_command(line.as_bytes(), ParseOptions::default()).is_err(),
                "{line}"
            );
        }
    }
}
