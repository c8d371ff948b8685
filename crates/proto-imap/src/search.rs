//! SEARCH keys (RFC 9051 6.4.4, RFC 3501 6.4.4) and return options
//! (RFC 4731 ESEARCH, RFC 5182 SEARCHRES).

use crate::date::parse_date;
use crate::lexer::{Cursor, LexResult};
use crate::types::{SeqSet, parse_flag};

/// How deep parentheses, NOT and OR may nest: bounds the recursion of both
/// the parser and the evaluator.
pub const MAX_SEARCH_DEPTH: usize = 32;

/// Most keys in one SEARCH (all levels).
pub const MAX_SEARCH_KEYS: usize = 1024;

/// One search key; `And` is a parenthesised list (or the top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    SeqSet(SeqSet),
    Uid(SeqSet),
    /// A system flag (canonical case) or keyword present.
    Flag(String),
    /// A system flag or keyword absent.
    NoFlag(String),
    /// \Recent (RFC 3501), NEW = Recent and not Seen, OLD = not Recent.
    Recent,
    New,
    Old,
    /// Dates are days since 1970-01-01 (internal date or Date: header).
    Before(i64),
    On(i64),
    Since(i64),
    SentBefore(i64),
    SentOn(i64),
    SentSince(i64),
    Larger(u64),
    Smaller(u64),
    /// A header field contains the string (empty: the field exists).
    Header(String, String),
    Body(String),
    Text(String),
    /// MODSEQ (RFC 7162), accepted for later CONDSTORE.
    ModSeq(u64),
    /// RFC 8474 6: the message's EMAILID, or THREADID.
    EmailId(String),
    ThreadId(String),
    /// RFC 5032: INTERNALDATE within the last n seconds, or not.
    Younger(u64),
    Older(u64),
    /// RFC 8514 4.3: the day of the save date (days since 1970-01-01),
    /// and SAVEDATESUPPORTED (the mailbox keeps save dates).
    SavedBefore(i64),
    SavedOn(i64),
    SavedSince(i64),
    SaveDateSupported,
}

/// ESEARCH return options (RFC 4731, RFC 9051 6.4.4.1; UPDATE and
/// PARTIAL from RFC 5267 4.1, 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
    /// Keep the result current: ADDTO / REMOVEFROM as the mailbox changes.
    Update,
    /// The results at these 1-based positions (low <= high).
    Partial(u32, u32),
}

/// Most updating searches one session keeps (RFC 5267 4.2 lets the
/// server refuse more with `NOUPDATE`): each is re-evaluated when the
/// mailbox changes.
pub const MAX_SEARCH_UPDATES: usize = 8;

/// `partial-range = number ":" number` (RFC 5267 6), both non-zero, in
/// either order.
pub fn parse_partial(c: &mut Cursor<'_>) -> LexResult<SearchReturn> {
    let a = c.nz_number()?;
    c.expect(b':', "PARTIAL needs a range low:high")?;
    let b = c.nz_number()?;
    Ok(SearchReturn::Partial(a.min(b), a.max(b)))
}

/// One RETURN option (shared by SEARCH and SORT).
pub fn parse_return(c: &mut Cursor<'_>) -> LexResult<SearchReturn> {
    let a = c.atom()?.to_ascii_uppercase();
    Ok(match a.as_str() {
        "MIN" => SearchReturn::Min,
        "MAX" => SearchReturn::Max,
        "ALL" => SearchReturn::All,
        "COUNT" => SearchReturn::Count,
        "SAVE" => SearchReturn::Save,
        "UPDATE" => SearchReturn::Update,
        "PARTIAL" => {
            c.sp()?;
            parse_partial(c)?
        }
        _ => return Err("unknown search return option"),
    })
}

/// A parsed SEARCH: optional RETURN options, charset and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCommand {
    /// None without RETURN; Some(empty) for `RETURN ()` (= ALL).
    pub returns: Option<Vec<SearchReturn>>,
    pub charset: Option<String>,
    pub key: SearchKey,
}

pub fn parse_search(c: &mut Cursor<'_>) -> LexResult<SearchCommand> {
    let mut returns = None;
    if c.eat_word("RETURN ") {
        returns = Some(c.paren_list(true, 8, parse_return)?);
        c.sp()?;
    }
    let mut charset = None;
    if c.eat_word("CHARSET ") {
        let cs = c.astring()?;
        charset = Some(String::from_utf8(cs).map_err(|_| "bad charset")?);
        c.sp()?;
    }
    let mut count = 0;
    let mut keys = vec![parse_key(c, 0, &mut count)?];
    while c.eat(b' ') {
        keys.push(parse_key(c, 0, &mut count)?);
    }
    let key = if keys.len() == 1 {
        keys.pop().unwrap_or(SearchKey::All)
    } else {
        SearchKey::And(keys)
    };
    Ok(SearchCommand {
        returns,
        charset,
        key,
    })
}

fn text_arg(c: &mut Cursor<'_>) -> LexResult<String> {
    c.sp()?;
    String::from_utf8(c.astring_8bit()?).map_err(|_| "search string is not UTF-8")
}

fn date_arg(c: &mut Cursor<'_>) -> LexResult<i64> {
    c.sp()?;
    let quoted = c.eat(b'"');
    let d = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
    let d = parse_date(d).ok_or("bad date")?;
    if quoted {
        c.expect(b'"', "bad date")?;
    }
    Ok(d)
}

fn parse_key(c: &mut Cursor<'_>, depth: usize, count: &mut usize) -> LexResult<SearchKey> {
    if depth > MAX_SEARCH_DEPTH {
        return Err("search keys nested too deeply");
    }
    *count += 1;
    if *count > MAX_SEARCH_KEYS {
        return Err("too many search keys");
    }
    if c.peek() == Some(b'(') {
        let keys = c.paren_list(false, MAX_SEARCH_KEYS, |c| parse_key(c, depth + 1, count))?;
        return Ok(SearchKey::And(keys));
    }
    if c.peek()
        .is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$')
    {
        return SeqSet::parse(c).map(SearchKey::SeqSet);
    }
    let word = c.atom()?.to_ascii_uppercase();
    let flag = |f: &str| Ok(SearchKey::Flag(f.to_string()));
    let noflag = |f: &str| Ok(SearchKey::NoFlag(f.to_string()));
    match word.as_str() {
        "ALL" => Ok(SearchKey::All),
        "ANSWERED" => flag("\\Answered"),
        "DELETED" => flag("\\Deleted"),
        "DRAFT" => flag("\\Draft"),
        "FLAGGED" => flag("\\Flagged"),
        "SEEN" => flag("\\Seen"),
        "UNANSWERED" => noflag("\\Answered"),
        "UNDELETED" => noflag("\\Deleted"),
        "UNDRAFT" => noflag("\\Draft"),
        "UNFLAGGED" => noflag("\\Flagged"),
        "UNSEEN" => noflag("\\Seen"),
        "RECENT" => Ok(SearchKey::Recent),
        "NEW" => Ok(SearchKey::New),
        "OLD" => Ok(SearchKey::Old),
        "KEYWORD" | "UNKEYWORD" => {
            c.sp()?;
            let k = parse_flag(c)?;
            if word == "KEYWORD" {
                Ok(SearchKey::Flag(k))
            } else {
                Ok(SearchKey::NoFlag(k))
            }
        }
        "BEFORE" => date_arg(c).map(SearchKey::Before),
        "ON" => date_arg(c).map(SearchKey::On),
        "SINCE" => date_arg(c).map(SearchKey::Since),
        "SENTBEFORE" => date_arg(c).map(SearchKey::SentBefore),
        "SENTON" => date_arg(c).map(SearchKey::SentOn),
        "SENTSINCE" => date_arg(c).map(SearchKey::SentSince),
        "SAVEDBEFORE" => date_arg(c).map(SearchKey::SavedBefore),
        "SAVEDON" => date_arg(c).map(SearchKey::SavedOn),
        "SAVEDSINCE" => date_arg(c).map(SearchKey::SavedSince),
        "SAVEDATESUPPORTED" => Ok(SearchKey::SaveDateSupported),
        "LARGER" | "SMALLER" => {
            c.sp()?;
            let n = c.number64()?;
            Ok(if word == "LARGER" {
                SearchKey::Larger(n)
            } else {
                SearchKey::Smaller(n)
            })
        }
        "MODSEQ" => {
            c.sp()?;
            // RFC 7162 3.1.5: an optional entry name and type. We keep one
            // mod-sequence per message, not per flag (as 3.1.5 allows a
            // server to), so they do not change the match.
            if c.peek() == Some(b'"') {
                c.quoted()?;
                c.sp()?;
                let kind = c.atom()?.to_ascii_lowercase();
                if !matches!(kind.as_str(), "priv" | "shared" | "all") {
                    return Err("bad MODSEQ entry type");
                }
                c.sp()?;
            }
            Ok(SearchKey::ModSeq(c.number64()?))
        }
        // RFC 8474 6: `EMAILID objectid`, `THREADID objectid`.
        "EMAILID" | "THREADID" => {
            c.sp()?;
            let id = c.atom()?.to_string();
            let ok = !id.is_empty()
                && id.len() <= 255
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err("bad objectid");
            }
            Ok(if word == "EMAILID" {
                SearchKey::EmailId(id)
            } else {
                SearchKey::ThreadId(id)
            })
        }
        // RFC 5032 3: nz-number seconds.
        "YOUNGER" | "OLDER" => {
            c.sp()?;
            let n = c.number64()?;
            if n == 0 {
                return Err("YOUNGER and OLDER take a non-zero number");
            }
            Ok(if word == "YOUNGER" {
                SearchKey::Younger(n)
            } else {
                SearchKey::Older(n)
            })
        }
        "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => {
            let v = text_arg(c)?;
            let name = match word.as_str() {
                "BCC" => "Bcc",
                "CC" => "Cc",
                "FROM" => "From",
                "SUBJECT" => "Subject",
                _ => "To",
            };
            Ok(SearchKey::Header(name.to_string(), v))
        }
        "HEADER" => {
            let name = text_arg(c)?;
            let v = text_arg(c)?;
            Ok(SearchKey::Header(name, v))
        }
        "BODY" => text_arg(c).map(SearchKey::Body),
        "TEXT" => text_arg(c).map(SearchKey::Text),
        "UID" => {
            c.sp()?;
            SeqSet::parse(c).map(SearchKey::Uid)
        }
        "NOT" => {
            c.sp()?;
            Ok(SearchKey::Not(Box::new(parse_key(c, depth + 1, count)?)))
        }
        "OR" => {
            c.sp()?;
            let a = parse_key(c, depth + 1, count)?;
            c.sp()?;
            let b = parse_key(c, depth + 1, count)?;
            Ok(SearchKey::Or(Box::new(a), Box::new(b)))
        }
        _ => Err("unknown search key"),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn context_returns_update_and_partial_parse() {
        // RFC 5267 4.1, 4.4; a reversed range is the same range.
        let mut c = Cursor::new(b"RETURN (UPDATE PARTIAL 4:2 COUNT) SEEN");
        let s = parse_search(&mut c).expect("search");
        assert_eq!(
            s.returns,
            Some(vec![
                SearchReturn::Update,
                SearchReturn::Partial(2, 4),
                SearchReturn::Count
            ])
        );
        for bad in [
            &b"RETURN (PARTIAL 1) ALL"[..],
            b"RETURN (PARTIAL 1:*) ALL",
            b"RETURN (PARTIAL *:1) ALL",
            b"RETURN (PARTIAL 0:3) ALL",
        ] {
            assert!(parse_search(&mut Cursor::new(bad)).is_err());
        }
    }

    use super::*;

    fn parse(s: &str) -> LexResult<SearchCommand> {
        let mut c = Cursor::new(s.as_bytes());
        let r = parse_search(&mut c)?;
        c.end()?;
        Ok(r)
    }

    #[test]
    fn rfc9051_examples_parse() {
        // RFC 9051 6.4.4 examples.
        let s = parse("FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"").unwrap();
        assert!(matches!(s.key, SearchKey::And(ref v) if v.len() == 3));
        let s = parse("OR BODY \"next appointment\" ON 3-Mar-2020").unwrap();
        assert!(matches!(s.key, SearchKey::Or(..)));
        let s = parse("RETURN (MIN COUNT) CHARSET UTF-8 TEXT \"caf\u{e9}\"").unwrap();
        assert_eq!(
            s.returns,
            Some(vec![SearchReturn::Min, SearchReturn::Count])
        );
        assert_eq!(s.charset.as_deref(), Some("UTF-8"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}ALL{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).is_err());
        let nots = "NOT ".repeat(5000) + "ALL";
        assert!(parse(&nots).is_err());
    }

    #[test]
    fn sequence_sets_and_saved_result() {
        assert!(matches!(
            parse("1:* UNSEEN").unwrap().key,
            SearchKey::And(_)
        ));
        assert_eq!(parse("$").unwrap().key, SearchKey::SeqSet(SeqSet::Saved));
        assert!(parse("UID").is_err());
    }
}
