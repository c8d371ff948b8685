//! The MIME parser and what FETCH builds on it (RFC 2045-2047, RFC 9051
//! 7.5.2): BODYSTRUCTURE, ENVELOPE, sections, the SEARCH text, encoded
//! through the response encoder, and their stored form (`mime::cache`),
//! which must decode to what was encoded; the part offsets give the
//! sections' octets, and the streaming scan of big messages finds what
//! the parser finds, and re-encodes binary parts as the whole-message
//! encoder does. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_imap::fetch::{Section, SectionText};
use proto_imap::mime::offsets::{self, SectionPlan};
use proto_imap::mime::{self, Part};

fuzz_target!(|raw: &[u8]| {
    let root = Part::parse(raw);
    let structure = mime::body_structure(&root);
    let envelope = mime::envelope(&root);
    let _ = format!("{structure:?}{envelope:?}");
    let cached = mime::cache::Cached::of(raw);
    let stored = mime::cache::encode(&cached);
    assert_eq!(mime::cache::decode(&stored).as_ref(), Some(&cached));
    // In chunks of 5: every kind of line split.
    let mut scanner = mime::scan::Scanner::new();
    for c in raw.chunks(5) {
        scanner.feed(c);
    }
    match scanner.finish() {
        Some(scanned) => assert_eq!(scanned, cached),
        None => assert_eq!(cached.map, None),
    }
    // The store's octets, if damaged, are refused, not trusted.
    let _ = mime::cache::decode(raw);
    for path in [vec![], vec![1], vec![1, 1], vec![2], vec![1, 2, 1]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields(vec!["Subject".into()])),
        ] {
            let section = Section {
                part: path.clone(),
                text,
            };
            let whole = mime::section(&root, raw, &section);
            if let Some(map) = &cached.map {
                let by_offsets = offsets::plan(map, &section).and_then(|p| match p {
                    SectionPlan::Range(a, b) => raw.get(a as usize..b as usize).map(<[u8]>::to_vec),
                    SectionPlan::Fields {
                        start,
                        end,
                        names,
                        keep,
                    } => raw
                        .get(start as usize..end as usize)
                        .map(|h| offsets::header_fields(h, &names, keep)),
                });
                assert_eq!(by_offsets, whole);
            }
        }
        let _ = mime::binary(&root, raw, &path);
    }
    let _ = mime::search_text(raw, true);
    if let Some(enc) = mime::encode_binary_parts(raw) {
        let _ = mime::body_structure(&Part::parse(&enc));
    }
    // The streamed re-encoding (issue 19) gives the same octets: a scan
    // in chunks of 3, the encoder over chunks of 7.
    let mut scanner = mime::scan::Scanner::new();
    for c in raw.chunks(3) {
        scanner.feed(c);
    }
    let mut encoder = mime::BinaryEncoder::new(scanner.finish_binary());
    let mut streamed = Vec::new();
    for c in raw.chunks(7) {
        encoder.feed(c, &mut streamed);
    }
    encoder.finish(&mut streamed);
    let whole = mime::encode_binary_parts(raw).unwrap_or_else(|| raw.to_vec());
    assert!(streamed == whole);
});
