//! A fuzz-like stress test of the MIME structure parser, without libFuzzer:
//! the golden corpus (tests/corpus/*.eml), mutated at random by a seeded
//! xorshift generator (flipped, dropped, repeated and spliced bytes, MIME
//! fragments: boundaries, nested types, encodings, bare LFs, NULs), must
//! never make the parser or what is built on it panic, and every part it
//! finds must lie within the message:
//!
//! - each part's header and body are slices of the raw message, the header
//!   directly followed by its body, every field inside its header;
//! - a child lies within its parent's body; nesting and part counts stay
//!   within `MAX_DEPTH` and `MAX_PARTS`;
//! - BODY[part] is the part's body, BODY[part.MIME] its header; ENVELOPE,
//!   BODYSTRUCTURE, BINARY and the search text are computed for every
//!   mutant.

use std::ops::Range;
use std::path::Path;

use proto_imap::Encoder;
use proto_imap::fetch::{Section, SectionText};
use proto_imap::mime::offsets::{self, Cte, PartMap, SectionPlan};
use proto_imap::mime::{self, MAX_DEPTH, MAX_PARTS, Part, PartKind};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"\n\n",
    b"--",
    b"--XX\r\n",
    b"--XX--\r\n",
    b"--=_outer\r\n",
    b"--=_inner--",
    b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n",
    b"Content-Type: multipart/digest; boundary=XX\r\n\r\n--XX\r\n\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: message/global\r\n",
    b"Content-Type: text/plain; charset=\"utf-8\"; format=flowed\r\n",
    b"Content-Type: ; boundary=\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Transfer-Encoding: x-unknown\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC.txt\r\n",
    b"Subject: =?utf-8?B?w6nDqQ==?= =?iso-8859-1?Q?caf=E9?=\r\n",
    b"From: \"A, B\" <a@b>, (comment) c@d, group: e@f;\r\n",
    b" folded continuation\r\n",
    b"=?utf-8?Q?",
    b"=3D=\r\n",
    b"QUJD\r\n",
    b"\0",
    b"\xff\xfe",
    b";",
    b"\"",
    b"(",
    b"\\",
    b":",
];

fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let i = rng.below(m.len() + 1);
        match rng.below(7) {
            0 if !m.is_empty() => {
                let i = i.min(m.len() - 1);
                m[i] = rng.next() as u8;
            }
            1 => {
                let end = (i + rng.below(40)).min(m.len());
                m.drain(i..end);
            }
            2 => {
                // Repeat a stretch: nested copies of boundaries and headers.
                let end = (i + rng.below(200)).min(m.len());
                let copy = m[i..end].to_vec();
                for _ in 0..1 + rng.below(3) {
                    m.splice(i..i, copy.iter().copied());
                }
            }
            3 => {
                let other = &others[rng.below(others.len())];
                let a = rng.below(other.len());
                let b = (a + rng.below(300)).min(other.len());
                m.splice(i..i, other[a..b].iter().copied());
            }
            _ => {
                let f = FRAGMENTS[rng.below(FRAGMENTS.len())];
                m.splice(i..i, f.iter().copied());
            }
        }
    }
    m
}

/// The byte range of `s` within `raw`, if it is a slice of it.
fn range_in(raw: &[u8], s: &[u8]) -> Option<Range<usize>> {
    let base = raw.as_ptr() as usize;
    let start = (s.as_ptr() as usize).checked_sub(base)?;
    let end = start.checked_add(s.len())?;
    (end <= raw.len() || s.is_empty() && start <= raw.len()).then_some(start..end)
}

fn within(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// Checks one part and its children; returns how many parts it holds.
fn check_part(raw: &[u8], p: &Part<'_>, outer: &Range<usize>, depth: usize, path: &[u32]) -> usize {
    assert!(depth <= MAX_DEPTH + 1, "too deep at {path:?}");
    let h = range_in(raw, p.header).expect("header is a slice of the message");
    let b = range_in(raw, p.body).expect("body is a slice of the message");
    assert!(
        within(outer, &h) && within(outer, &b),
        "part {path:?} {h:?} {b:?} outside {outer:?}"
    );
    assert_eq!(h.end, b.start, "part {path:?}: header not followed by body");
    for f in &p.fields {
        let r = range_in(raw, f.raw).expect("field is a slice of the message");
        assert!(within(&h, &r), "field of {path:?} outside its header");
    }
    let mut count = 1;
    match &p.kind {
        PartKind::Leaf => {}
        PartKind::Message(m) => {
            count += check_part(raw, m, &b, depth + 1, path);
        }
        PartKind::Multipart(children) => {
            for (i, c) in children.iter().enumerate() {
                let mut sub = path.to_vec();
                sub.push(i as u32 + 1);
                count += check_part(raw, c, &b, depth + 1, &sub);
            }
        }
    }
    count
}

/// Every part path of the tree, as FETCH numbers them (bounded).
fn part_paths(p: &Part<'_>, prefix: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
    if out.len() > 200 {
        return;
    }
    let children: &[Part<'_>] = match &p.kind {
        PartKind::Multipart(c) => c,
        PartKind::Message(m) => match &m.kind {
            PartKind::Multipart(c) => c,
            _ => std::slice::from_ref(m.as_ref()),
        },
        PartKind::Leaf => return,
    };
    for (i, c) in children.iter().enumerate() {
        prefix.push(i as u32 + 1);
        out.push(prefix.clone());
        part_paths(c, prefix, out);
        prefix.pop();
    }
}

fn exercise(raw: &[u8]) {
    let root = Part::parse(raw);
    let parts = check_part(raw, &root, &(0..raw.len()), 0, &[]);
    assert!(parts <= MAX_PARTS + 1, "{parts} parts");

    let enc = Encoder::default();
    let mut out = Vec::new();
    mime::envelope(&root).write(&enc, &mut out);
    mime::body_structure(&root).write(&enc, &mut out, true);
    mime::body_structure(&root).write(&enc, &mut out, false);
    let _ = mime::search_text(raw, true);
    // Re-encoding parts that hold NUL must keep a message that parses.
    if let Some(enc) = mime::encode_binary_parts(raw) {
        let again = Part::parse(&enc);
        let _ = mime::body_structure(&again);
    }

    let mut paths = vec![Vec::new()];
    // RFC 9051 6.4.5: a top level that is not a multipart is part 1 itself
    // (for a message/rfc822, 1.n are the encapsulated message's parts).
    if matches!(root.kind, PartKind::Multipart(_)) {
        part_paths(&root, &mut Vec::new(), &mut paths);
    } else {
        paths.push(vec![1]);
        part_paths(&root, &mut vec![1], &mut paths);
    }
    for path in paths {
        let node = mime::resolve(&root, &path).expect("a listed path resolves");
        let body = mime::section(
            &root,
            raw,
            &Section {
                part: path.clone(),
                text: None,
            },
        )
        .expect("BODY[part]");
        if path.is_empty() {
            assert_eq!(body, raw);
        } else {
            assert_eq!(body, node.body, "BODY[{path:?}]");
            let mime_hdr = mime::section(
                &root,
                raw,
                &Section {
                    part: path.clone(),
                    text: Some(SectionText::Mime),
                },
            );
            assert_eq!(
                mime_hdr.as_deref(),
                Some(node.header),
                "BODY[{path:?}.MIME]"
            );
        }
        for text in [
            SectionText::Header,
            SectionText::Text,
            SectionText::HeaderFields(vec!["Subject".into(), "From".into()]),
            SectionText::HeaderFieldsNot(vec!["Received".into()]),
        ] {
            let s = Section {
                part: path.clone(),
                text: Some(text),
            };
            if let Some(bytes) = mime::section(&root, raw, &s) {
                assert!(bytes.len() <= raw.len() + 2 * raw.len().max(1), "{s:?}");
            }
        }
        let _ = mime::binary(&root, raw, &path);
    }
    // Paths that do not exist are refused, not invented.
    assert!(mime::resolve(&root, &[MAX_PARTS as u32 + 2]).is_none());
    same_sections_by_offsets(raw, &root);
    same_reencoding_streamed(raw);
}

/// The streaming re-encoder (issue 19): a scan in chunks of `scan`, then
/// the encoder over chunks of `write`.
fn encode_streamed(raw: &[u8], scan: usize, write: usize) -> Vec<u8> {
    let mut scanner = mime::scan::Scanner::new();
    for c in raw.chunks(scan) {
        scanner.feed(c);
    }
    let mut encoder = mime::BinaryEncoder::new(scanner.finish_binary());
    let mut out = Vec::new();
    for c in raw.chunks(write) {
        encoder.feed(c, &mut out);
    }
    encoder.finish(&mut out);
    out
}

/// Streamed, the re-encoding of parts holding NUL is byte for byte the
/// whole message's, whatever the chunk sizes of either pass.
fn same_reencoding_streamed(raw: &[u8]) {
    let want = mime::encode_binary_parts(raw).unwrap_or_else(|| raw.to_vec());
    for (scan, write) in [(1, 4096), (7, 1), (4096, 3)] {
        let got = encode_streamed(raw, scan, write);
        if got != want {
            let _ = std::fs::write("/tmp/binenc_mutant.eml", raw);
        }
        assert!(
            got == want,
            "streamed re-encoding differs, chunks {scan}/{write}: {}",
            raw.escape_ascii()
        );
    }
}

/// The stored part offsets (issue 18) give exactly the octets of the
/// parsed message's sections and BINARY, and survive the cache's stored
/// form.
fn same_sections_by_offsets(raw: &[u8], root: &Part<'_>) {
    let cached = mime::cache::Cached::of(raw);
    // The streaming scan of big messages finds the same, fed in chunks of
    // any size (one octet, a few, more than the message).
    for chunk in [1, 7, 4096] {
        let mut scanner = mime::scan::Scanner::new();
        for c in raw.chunks(chunk) {
            scanner.feed(c);
        }
        match scanner.finish() {
            Some(scanned) => {
                if scanned != cached {
                    let _ = std::fs::write("/tmp/po_mutant.eml", raw);
                }
                assert_eq!(scanned.map, cached.map, "map, chunks of {chunk}");
                assert_eq!(
                    scanned.envelope, cached.envelope,
                    "envelope, chunks of {chunk}"
                );
                assert_eq!(
                    scanned.structure, cached.structure,
                    "structure, chunks of {chunk}"
                );
            }
            None => assert_eq!(cached.map, None, "scan in chunks of {chunk}"),
        }
    }
    assert_eq!(
        mime::cache::decode(&mime::cache::encode(&cached)).as_ref(),
        Some(&cached)
    );
    let Some(map) = cached.map else {
        assert!(mime::encode_binary_parts(raw).is_some());
        return;
    };
    assert_eq!(map, PartMap::of(root));
    let slice = |a: u64, b: u64| raw.get(a as usize..b as usize).map(<[u8]>::to_vec);
    let names = vec!["Subject".to_string(), "content-type".to_string()];
    let mut paths = vec![Vec::new()];
    for a in 1..=3u32 {
        paths.push(vec![a]);
        for b in 1..=3u32 {
            paths.push(vec![a, b]);
            paths.push(vec![a, b, 1]);
        }
    }
    for path in paths {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields(names.clone())),
            Some(SectionText::HeaderFieldsNot(names.clone())),
        ] {
            let s = Section {
                part: path.clone(),
                text,
            };
            let got = offsets::plan(&map, &s).and_then(|p| match p {
                SectionPlan::Range(a, b) => slice(a, b),
                SectionPlan::Fields {
                    start,
                    end,
                    names,
                    keep,
                } => Some(offsets::header_fields(&slice(start, end)?, &names, keep)),
            });
            assert_eq!(got, mime::section(root, raw, &s), "BODY[{}]", s.to_wire());
        }
        let got = offsets::binary_part(&map, &path).map(|(p, cte)| {
            let body = slice(p.body, p.end).unwrap_or_default();
            match cte {
                _ if path.is_empty() => raw.to_vec(),
                Cte::Base64 => mime::decode_base64(&body),
                Cte::QuotedPrintable => mime::decode_qp(&body),
                _ => body,
            }
        });
        assert_eq!(got, mime::binary(root, raw, &path), "BINARY[{path:?}]");
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("eml"))
        .collect();
    files.sort();
    let msgs: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(p).expect("read corpus"))
        .collect();
    assert!(msgs.len() >= 6, "corpus has {} messages", msgs.len());
    msgs
}

#[test]
fn the_corpus_itself_is_well_formed_under_the_checks() {
    for m in corpus() {
        exercise(&m);
    }
}

#[test]
fn mutated_corpus_messages_never_panic_and_stay_in_bounds() {
    let msgs = corpus();
    let mut rng = Rng(0xC0FF_EE00_D15E_A5E5);
    for i in 0..20_000 {
        let seed = &msgs[i % msgs.len()];
        let mutant = mutate(&mut rng, seed, &msgs);
        exercise(&mutant);
    }
}

#[test]
fn mutants_with_nul_octets_reencode_the_same_streamed() {
    // Every mutant gets NULs (at random places, so in headers, bodies,
    // delimiter lines and at chunk boundaries): the streamed re-encoding
    // must match the whole one on the parts the mutation leaves.
    let msgs = corpus();
    let mut rng = Rng(0x0B1A_5E64_0000_0019);
    let mut reencoded = 0;
    for i in 0..20_000 {
        let seed = &msgs[i % msgs.len()];
        let mut mutant = mutate(&mut rng, seed, &msgs);
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(mutant.len() + 1);
            mutant.insert(at, 0);
        }
        same_reencoding_streamed(&mutant);
        reencoded += usize::from(mime::encode_binary_parts(&mutant).is_some());
    }
    // Most mutants put a NUL in a body, not only in a header.
    assert!(reencoded > 5_000, "{reencoded} mutants re-encoded");
}

#[test]
fn nested_rfc822_that_trips_mail_parser_is_searchable() {
    // Minimised from a mutant: mail-parser 0.11.9 hits a debug assertion
    // on it ("Invalid part ID, could not find multipart").
    let raw = b"=\nContent-Type:multipart;boundary=b1\n\n--b1Content-Type:message/rfc822\n\n\
Content-Type:message/rfc822\n\n\n--b1--";
    // It must not take the session down: no panic, and its structure and
    // search text come out within bounds. (Whether the text comes from
    // mail-parser or from the raw fallback depends on the build's debug
    // assertions; the workspace turns mail-parser's off, as in release.)
    exercise(raw);
    let text = mime::search_text(raw, true);
    assert!(text.bodies.iter().all(|b| b.len() <= raw.len()), "{text:?}");
}

#[test]
fn pathological_shapes_are_bounded() {
    // Boundaries nested far past MAX_DEPTH, thousands of empty parts, a
    // message/rfc822 chain: all parse, within bounds.
    let mut deep = Vec::new();
    for i in 0..200 {
        deep.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    exercise(&deep);
    let mut wide = b"Content-Type: multipart/mixed; boundary=w\r\n\r\n".to_vec();
    for _ in 0..5000 {
        wide.extend_from_slice(b"--w\r\n\r\n");
    }
    exercise(&wide);
    let chain = "Content-Type: message/rfc822\r\n\r\n".repeat(500);
    exercise(chain.as_bytes());
}
