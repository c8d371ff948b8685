//! The MIME parser and what FETCH builds on it (RFC 2045-2047, RFC 9051
//! 7.5.2): BODYSTRUCTURE, ENVELOPE, sections, the SEARCH text, encoded
//! through the response encoder, and their stored form (`mime::cache`),
//! which must decode to what was encoded. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_imap::fetch::{Section, SectionText};
use proto_imap::mime::{self, Part};

fuzz_target!(|raw: &[u8]| {
    let root = Part::parse(raw);
    let structure = mime::body_structure(&root);
    let envelope = mime::envelope(&root);
    let _ = format!("{structure:?}{envelope:?}");
    let stored = mime::cache::encode(&envelope, &structure);
    assert_eq!(
        mime::cache::decode(&stored),
        Some((envelope.clone(), structure.clone()))
    );
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
            let _ = mime::section(&root, raw, &section);
        }
        let _ = mime::binary(&root, raw, &path);
    }
    let _ = mime::search_text(raw, true);
    if let Some(enc) = mime::encode_binary_parts(raw) {
        let _ = mime::body_structure(&Part::parse(&enc));
    }
});
