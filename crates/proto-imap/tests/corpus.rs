//! Golden corpus: real-world-shaped messages (nested multipart,
//! attachments, 8-bit, quoted-printable, RFC 2047 headers, broken MIME)
//! with their expected ENVELOPE and BODYSTRUCTURE, and section fetches.
//!
//! `UPDATE_GOLDEN=1 cargo test -p proto-imap --test corpus` rewrites the
//! `.expected` files after a deliberate change; review the diff.

use std::path::Path;

use proto_imap::Encoder;
use proto_imap::fetch::{Section, SectionText};
use proto_imap::mime::{self, Part};

fn render(raw: &[u8]) -> Vec<u8> {
    let part = Part::parse(raw);
    let enc = Encoder::default();
    let mut out = b"ENVELOPE ".to_vec();
    mime::envelope(&part).write(&enc, &mut out);
    out.extend_from_slice(b"\nBODYSTRUCTURE ");
    mime::body_structure(&part).write(&enc, &mut out, true);
    out.extend_from_slice(b"\nBODY ");
    mime::body_structure(&part).write(&enc, &mut out, false);
    out.push(b'\n');
    out
}

#[test]
fn corpus_matches_golden_structures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("eml") {
            continue;
        }
        n += 1;
        let raw = std::fs::read(&path).unwrap();
        let got = render(&raw);
        let expected_path = path.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{}",
            path.display()
        );
    }
    assert!(n >= 6, "corpus has {n} messages");
}

fn sect(part: &[u32], text: Option<SectionText>) -> Section {
    Section {
        part: part.to_vec(),
        text,
    }
}

#[test]
fn fetching_one_part_returns_only_that_part() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let raw = std::fs::read(dir.join("nested-attachment.eml")).unwrap();
    let p = Part::parse(&raw);
    let s = |part: &[u32], text| mime::section(&p, &raw, &sect(part, text)).unwrap();
    assert_eq!(
        s(&[2], None),
        b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K"
    );
    assert!(s(&[2], Some(SectionText::Mime)).starts_with(b"Content-Type: application/pdf"));
    assert_eq!(s(&[1, 1], None), b"The report is attached. Gr=C3=BC=C3=9Fe");
    assert_eq!(s(&[1, 2], None), b"<p>The report is attached.</p>");
    let hdr = s(
        &[],
        Some(SectionText::HeaderFields(vec![
            "subject".into(),
            "To".into(),
        ])),
    );
    assert_eq!(
        hdr,
        b"To: bob@example.test, \"Smith, Carol\" <carol@example.test>\r\nSubject: Quarterly report\r\n\r\n"
    );
    assert_eq!(
        mime::binary(&p, &raw, &[2]).unwrap(),
        b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n5 0 obj\n<</Length 6 0 R>>\nstream\n"
    );
    assert_eq!(
        mime::binary(&p, &raw, &[1, 1]).unwrap(),
        "The report is attached. Gr\u{fc}\u{df}e".as_bytes()
    );
    assert!(mime::section(&p, &raw, &sect(&[3], None)).is_none());

    let raw = std::fs::read(dir.join("forwarded-rfc822.eml")).unwrap();
    let p = Part::parse(&raw);
    let s = |part: &[u32], text| mime::section(&p, &raw, &sect(part, text)).unwrap();
    assert!(s(&[2], Some(SectionText::Header)).starts_with(b"From: original@example.test"));
    assert_eq!(s(&[2, 1], None), b"plain original");
    assert_eq!(s(&[2, 2], None), b"<b>html original</b>");
    assert!(s(&[2], None).starts_with(b"From: original@example.test"));

    let raw = std::fs::read(dir.join("broken-unclosed.eml")).unwrap();
    let p = Part::parse(&raw);
    assert_eq!(
        mime::binary(&p, &raw, &[2]),
        Err(mime::BinaryError::UnknownEncoding)
    );
}
