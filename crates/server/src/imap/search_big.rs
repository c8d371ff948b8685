//! SEARCH and SORT of a big message in bounded memory (issue 19): a
//! message above [`BIG_ABOVE`] is never read whole for them. Its header
//! is read alone (SORT, and the HEADER, SENT*, FROM... keys: RFC 9051
//! 6.4.4), found by the part offsets of its cache entry (`fetch_part`
//! scans it and writes the entry when there is none); for BODY and TEXT
//! each text part is read a chunk at a time, transfer-decoded
//! (`mime::stream`) and charset-decoded (`mime::TextStream`) as SEARCH
//! decodes it, and run through a matcher that keeps the last characters
//! of each chunk, as many as the longest string looked for, so that a
//! match across two chunks is found. The parts looked at are those
//! `mime::search_text` looks at (text leaves and the header fields of
//! nested messages), so a big message matches as it would whole.

use proto_imap::mime::offsets::{Cte, MapKind, PartMap};
use proto_imap::mime::stream::Decoder;
use proto_imap::mime::{self, BodyStructure, ContentType, SearchText, TextStream};
use proto_imap::search::SearchKey;
use store::{BODY_CHUNK, BodyId, Store, StoreError};

use super::fetch_part;
use super::session::ImapError;

/// Messages above this are searched and sorted in chunks.
pub(super) const BIG_ABOVE: u64 = fetch_part::PARTS_ABOVE;

/// A header longer than this is read the whole-message way (as
/// `fetch_part` does for HEADER.FIELDS).
const HEADER_MAX: u64 = 1024 * 1024;

/// The strings BODY and TEXT keys of `k` look for.
pub(super) fn needles(k: &SearchKey, out: &mut Vec<String>) {
    match k {
        SearchKey::And(v) => v.iter().for_each(|k| needles(k, out)),
        SearchKey::Or(a, b) => {
            needles(a, out);
            needles(b, out);
        }
        SearchKey::Not(a) => needles(a, out),
        SearchKey::Body(s) | SearchKey::Text(s) => out.push(s.clone()),
        _ => {}
    }
}

/// What [`text_of`] found.
pub(super) enum Found {
    Text(SearchText),
    /// The body is gone.
    Gone,
    /// Search it the whole-message way (parts holding NUL, an overlong
    /// header).
    Whole,
}

/// The header of a big message (for SORT); None: read it whole.
pub(super) async fn header_of(
    store: &dyn Store,
    body: BodyId,
    size: u64,
) -> Result<Option<Vec<u8>>, ImapError> {
    let Some(c) = fetch_part::entry(store, body, size).await? else {
        return Ok(None);
    };
    let Some(map) = c.map else { return Ok(None) };
    if map.body - map.start > HEADER_MAX {
        return Ok(None);
    }
    fetch_part::read_range(store, body, map.start, map.body).await
}

/// A stretch of the message SEARCH looks into.
enum Task {
    /// The header of a nested message: its fields' values.
    Header(u64, u64),
    /// A text part's body, its transfer encoding and type.
    Text(u64, u64, Cte, ContentType),
}

/// The parts `mime::search_text` looks into, in its order.
fn tasks(map: &PartMap, bs: &BodyStructure, out: &mut Vec<Task>, depth: usize) {
    if depth > mime::MAX_DEPTH {
        return;
    }
    match (&map.kind, bs) {
        (MapKind::Multipart(children), BodyStructure::Multi { parts, .. }) => {
            for (c, b) in children.iter().zip(parts) {
                tasks(c, b, out, depth + 1);
            }
        }
        (
            MapKind::Message(m),
            BodyStructure::Single {
                message: Some((_, inner)),
                ..
            },
        ) => {
            out.push(Task::Header(m.start, m.body));
            tasks(m, inner, out, depth + 1);
        }
        (
            MapKind::Leaf,
            BodyStructure::Single {
                mtype,
                subtype,
                params,
                ..
            },
        ) if mtype.eq_ignore_ascii_case("text") => {
            let ct = ContentType {
                mtype: mtype.clone(),
                subtype: subtype.clone(),
                params: params.clone(),
            };
            // An unknown encoding is searched as it is stored.
            let cte = match map.cte {
                Cte::Unknown => Cte::Identity,
                c => c,
            };
            out.push(Task::Text(map.body, map.end, cte, ct));
        }
        _ => {}
    }
}

/// Finds which of some strings a text holds, fed in pieces.
struct Matcher<'n> {
    /// Lowercased, as SEARCH compares (`contains` in search.rs).
    needles: &'n [String],
    found: Vec<bool>,
    /// The end of the text so far: a match may start in it.
    carry: String,
    keep: usize,
}

impl<'n> Matcher<'n> {
    fn new(needles: &'n [String]) -> Matcher<'n> {
        let keep = needles.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        Matcher {
            needles,
            found: vec![false; needles.len()],
            carry: String::new(),
            keep,
        }
    }

    fn all_found(&self) -> bool {
        self.found.iter().all(|&f| f)
    }

    /// A new part: no match spans two parts.
    fn reset(&mut self) {
        self.carry.clear();
    }

    fn feed(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.carry.push_str(text);
        let lower = self.carry.to_lowercase();
        for (f, n) in self.found.iter_mut().zip(self.needles) {
            *f = *f || lower.contains(n.as_str());
        }
        // Keep the last `keep` characters: a match ending in the next
        // piece starts there.
        let n = self.carry.chars().count();
        if n > self.keep {
            let cut = self
                .carry
                .char_indices()
                .nth(n - self.keep)
                .map_or(self.carry.len(), |(i, _)| i);
            self.carry.drain(..cut);
        }
    }
}

/// The search text of a big message: its header's fields and date, the
/// header values of nested messages, and (for BODY and TEXT) which of
/// `needles` its text parts hold, as the strings themselves (SEARCH's
/// `contains` then finds exactly those).
pub(super) async fn text_of(
    store: &dyn Store,
    body: BodyId,
    size: u64,
    with_bodies: bool,
    needles: &[String],
) -> Result<Found, ImapError> {
    let Some(c) = fetch_part::entry(store, body, size).await? else {
        return Ok(Found::Whole);
    };
    let Some(map) = &c.map else {
        return Ok(Found::Whole);
    };
    if map.body - map.start > HEADER_MAX {
        return Ok(Found::Whole);
    }
    let Some(header) = fetch_part::read_range(store, body, map.start, map.body).await? else {
        return Ok(Found::Gone);
    };
    let mut text = mime::search_text(&header, false);
    if !with_bodies {
        return Ok(Found::Text(text));
    }
    let mut todo = Vec::new();
    tasks(map, &c.structure, &mut todo, 0);
    let lowered: Vec<String> = needles.iter().map(|n| n.to_lowercase()).collect();
    let mut matcher = Matcher::new(&lowered);
    for task in todo {
        match task {
            Task::Header(start, end) => {
                if end - start > HEADER_MAX {
                    return Ok(Found::Whole);
                }
                let Some(h) = fetch_part::read_range(store, body, start, end).await? else {
                    return Ok(Found::Gone);
                };
                let fields = mime::search_text(&h, false).headers;
                text.bodies.extend(fields.into_iter().map(|(_, v)| v));
            }
            Task::Text(start, end, cte, ct) => {
                if matcher.all_found() {
                    continue;
                }
                matcher.reset();
                if !scan_text(store, body, start, end, cte, &ct, &mut matcher).await? {
                    return Ok(Found::Gone);
                }
            }
        }
    }
    for (n, f) in needles.iter().zip(&matcher.found) {
        if *f {
            text.bodies.push(n.clone());
        }
    }
    Ok(Found::Text(text))
}

/// Runs one text part through the matcher; false if the body is gone.
async fn scan_text(
    store: &dyn Store,
    body: BodyId,
    start: u64,
    end: u64,
    cte: Cte,
    ct: &ContentType,
    matcher: &mut Matcher<'_>,
) -> Result<bool, ImapError> {
    let Some(mut dec) = Decoder::new(cte) else {
        return Ok(true);
    };
    let mut chars = TextStream::new(ct);
    let mut pos = start;
    let (mut chunk, mut octets, mut text) = (Vec::new(), Vec::new(), String::new());
    while pos < end && !matcher.all_found() {
        let want = usize::try_from((end - pos).min(BODY_CHUNK as u64)).unwrap_or(BODY_CHUNK);
        chunk = match store.read_body_range_into(body, pos, want, chunk).await {
            Ok(c) if !c.is_empty() => c,
            Ok(_) | Err(StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        pos += chunk.len() as u64;
        octets.clear();
        dec.feed(&chunk, &mut octets);
        text.clear();
        chars.feed(&octets, &mut text);
        matcher.feed(&text);
    }
    octets.clear();
    dec.finish(&mut octets);
    text.clear();
    chars.feed(&octets, &mut text);
    chars.finish(&mut text);
    matcher.feed(&text);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::testkit::{ALICE, Kit, cmd};
    use std::sync::atomic::Ordering;

    /// About 2 MiB: "needle" in quoted-printable straddling the first
    /// 256 KiB chunk, a text part in another charset, a base64 image
    /// that must not be searched, a nested message whose header is.
    fn big_message() -> String {
        let pad = "hay ".repeat(65_535);
        let image = "bmVlZGxl\r\n".repeat(100_000);
        format!(
            "From: a@example.test\r\nSubject: Zebra\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n{pad}ne=\r\ne=64le\r\n\
             --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\u{e9} cr\u{e8}me\r\n\
             --b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n{image}\
             --b\r\nContent-Type: message/rfc822\r\n\r\nSubject: nested-subject\r\n\r\ninner\r\n\
             --b--\r\n"
        )
    }

    #[tokio::test]
    async fn search_and_sort_of_a_big_message_read_no_body_whole() {
        let (kit, reads) = Kit::counting_body_reads();
        kit.deliver(ALICE, &big_message()).await;
        kit.deliver(ALICE, "Subject: Aardvark\r\n\r\nsmall needle\r\n")
            .await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let search = |q: &'static str| format!("SEARCH {q}");
        let queries = [
            ("BODY needle", "* SEARCH 1 2"),
            ("BODY NEEDLE", "* SEARCH 1 2"),
            ("NOT BODY needle", "* SEARCH"),
            ("BODY \"hay needle\"", "* SEARCH 1"),
            ("TEXT nested-subject", "* SEARCH 1"),
            ("BODY inner", "* SEARCH 1"),
            ("BODY bmVlZGxl", "* SEARCH"),
            ("TEXT zebra", "* SEARCH 1"),
            ("HEADER Subject Zebra", "* SEARCH 1"),
            ("OR BODY absent SUBJECT aardvark", "* SEARCH 2"),
        ];
        for (q, want) in queries {
            let r = cmd(&mut s, &search(q)).await;
            r.assert_ok();
            assert_eq!(r.untagged, vec![want.to_string()], "SEARCH {q}");
        }
        // The small message is read whole for each body search; the big
        // one never.
        let whole_reads = reads.load(Ordering::SeqCst);
        assert_eq!(whole_reads, queries.len(), "only message 2 was read whole");
        let r = cmd(&mut s, "SORT (SUBJECT) UTF-8 ALL").await;
        r.assert_ok();
        assert_eq!(r.untagged, vec!["* SORT 2 1".to_string()]);
        assert_eq!(reads.load(Ordering::SeqCst), whole_reads + 1);
    }

    #[test]
    fn the_matcher_finds_strings_across_pieces_and_not_across_parts() {
        let needles = vec![
            "needle".to_string(),
            "ünï".to_string(),
            "absent".to_string(),
        ];
        let mut m = Matcher::new(&needles);
        for piece in ["hay ne", "e", "dle hay ü", "nï tail"] {
            m.feed(piece);
        }
        assert_eq!(m.found, vec![true, true, false]);
        let mut m = Matcher::new(&needles);
        for piece in ["hay nee", "dle"] {
            m.feed(piece);
        }
        assert_eq!(m.found, vec![true, false, false]);
        m.reset();
        m.feed("abs");
        m.reset();
        m.feed("ent");
        assert!(!m.found[2]);
    }
}
