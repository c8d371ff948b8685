//! Tests for the DATA receiver: the smuggling defence, dot-stuffing, size
//! limits, and chunk-split invariance checked against a simple model.

use super::*;

/// Feeds `input` in one go; returns (consumed, done, message, size, too_large).
fn one_shot(max: usize, input: &[u8]) -> (usize, bool, Vec<u8>, u64, bool) {
    feed_chunks(max, input, &[input.len()])
}

/// Feeds `input` in chunks of the given lengths (the last chunk takes the
/// rest), stopping at Done as a driver would.
fn feed_chunks(max: usize, input: &[u8], cuts: &[usize]) -> (usize, bool, Vec<u8>, u64, bool) {
    let mut rx = DataReceiver::new(max);
    let mut pos = 0usize;
    let mut done = false;
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = input;
    for &cut in cuts {
        let (a, b) = rest.split_at(cut.min(rest.len()));
        chunks.push(a);
        rest = b;
    }
    chunks.push(rest);
    for chunk in chunks {
        let (consumed, status) = rx.feed(chunk);
        pos += consumed;
        if status == DataStatus::Done {
            done = true;
            break;
        }
        assert_eq!(consumed, chunk.len(), "NeedMore must consume everything");
    }
    let (size, too_large) = (rx.size(), rx.too_large());
    (pos, done, rx.into_message(), size, too_large)
}

fn byte_by_byte(max: usize, input: &[u8]) -> (usize, bool, Vec<u8>, u64, bool) {
    let cuts = vec![1; input.len()];
    feed_chunks(max, input, &cuts)
}

/// Asserts that every two-way split and a byte-by-byte feed agree with a one-shot feed.
fn assert_split_invariant(max: usize, input: &[u8]) {
    let whole = one_shot(max, input);
    for cut in 0..=input.len() {
        assert_eq!(
            feed_chunks(max, input, &[cut]),
            whole,
            "split at {cut} of {input:?}"
        );
    }
    assert_eq!(byte_by_byte(max, input), whole, "byte by byte {input:?}");
}

fn message(input: &[u8]) -> (bool, Vec<u8>) {
    let (_, done, msg, _, _) = one_shot(usize::MAX, input);
    (done, msg)
}

#[test]
fn crlf_dot_crlf_ends_data() {
    let input = b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let (consumed, done, msg, size, _) = one_shot(1000, input);
    assert!(done);
    assert_eq!(&input[consumed..], b"QUIT\r\n");
    assert_eq!(msg, b"Subject: hi\r\n\r\nbody\r\n");
    assert_eq!(size, msg.len() as u64);
    assert_split_invariant(1000, input);
}

#[test]
fn dot_at_stream_start_is_an_empty_message() {
    let (consumed, done, msg, size, _) = one_shot(1000, b".\r\nRSET\r\n");
    assert_eq!((consumed, done, msg, size), (3, true, vec![], 0));
}

#[test]
fn bare_lf_dot_bare_lf_does_not_end_data() {
    assert_eq!(
        message(b"a\n.\nb\r\n.\r\n"),
        (true, b"a\r\n.\r\nb\r\n".to_vec())
    );
    assert_eq!(message(b"a\n.\n"), (false, b"a\r\n.\r\n".to_vec()));
}

#[test]
fn bare_lf_dot_crlf_does_not_end_data() {
    assert_eq!(message(b"a\n.\r\n"), (false, b"a\r\n.\r\n".to_vec()));
}

#[test]
fn lone_cr_dot_lone_cr_does_not_end_data() {
    assert_eq!(message(b"a\r.\rb"), (false, b"a\r\n.\r\nb".to_vec()));
}

#[test]
fn crlf_dot_bare_lf_does_not_end_data() {
    assert_eq!(
        message(b"a\r\n.\nb\r\n.\r\n"),
        (true, b"a\r\n.\r\nb\r\n".to_vec())
    );
}

#[test]
fn crlf_dot_lone_cr_does_not_end_data() {
    assert_eq!(
        message(b"a\r\n.\rb\r\n.\r\n"),
        (true, b"a\r\n.\r\nb\r\n".to_vec())
    );
    assert_eq!(
        message(b"a\r\n.\r\r\n.\r\n"),
        (true, b"a\r\n.\r\n\r\n".to_vec())
    );
}

#[test]
fn smuggling_attempt_stays_inside_one_message() {
    // The classic payload: a relay that ends DATA at "\n.\n" would see a
    // second transaction here. We must see one message with the text in it.
    let input = b"Subject: one\r\n\r\nhi\n.\nMAIL FROM:<evil@x>\nRCPT TO:<v@y>\nDATA\n\
                  Subject: two\n\n\r\n.\r\n";
    let (done, msg) = message(input);
    assert!(done);
    assert!(msg.windows(16).any(|w| w == b"MAIL FROM:<evil@"));
    assert!(msg.ends_with(b"Subject: two\r\n\r\n\r\n"));
}

#[test]
fn dot_stuffing_is_removed() {
    assert_eq!(message(b"..\r\n.\r\n"), (true, b".\r\n".to_vec()));
    assert_eq!(
        message(b"..x\r\n...\r\n.\r\n"),
        (true, b".x\r\n..\r\n".to_vec())
    );
    assert_eq!(message(b"a\r\n.b\r\n.\r\n"), (true, b"a\r\nb\r\n".to_vec()));
    // After a normalised bare LF a line start is still a line start.
    assert_eq!(message(b"a\n..b\r\n.\r\n"), (true, b"a\r\n.b\r\n".to_vec()));
}

#[test]
fn dot_stuffing_round_trip() {
    let original = b"line\r\n.leading dot\r\n..two\r\n.\r\nend\r\n";
    let mut stuffed = Vec::new();
    for line in original.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    stuffed.extend_from_slice(b".\r\n");
    assert_eq!(message(&stuffed), (true, original.to_vec()));
    assert_split_invariant(1000, &stuffed);
}

#[test]
fn bare_lf_and_lone_cr_are_normalised() {
    assert_eq!(
        message(b"a\nb\rc\r\n.\r\n"),
        (true, b"a\r\nb\r\nc\r\n".to_vec())
    );
    assert_eq!(message(b"a\r\r\n.\r\n"), (true, b"a\r\n\r\n".to_vec()));
}

#[test]
fn input_ending_mid_terminator_keeps_state() {
    let mut rx = DataReceiver::new(100);
    assert_eq!(rx.feed(b"x\r"), (2, DataStatus::NeedMore));
    assert_eq!(rx.feed(b"\n"), (1, DataStatus::NeedMore));
    assert_eq!(rx.feed(b"."), (1, DataStatus::NeedMore));
    assert_eq!(rx.feed(b"\r"), (1, DataStatus::NeedMore));
    assert_eq!(rx.feed(b"\nNOOP"), (1, DataStatus::Done));
    assert!(rx.is_done());
    assert_eq!(rx.feed(b"NOOP"), (0, DataStatus::Done));
    assert_eq!(rx.into_message(), b"x\r\n");
}

#[test]
fn data_over_size_stops_storing_but_finds_end() {
    let mut input = b"0123456789\r\n".repeat(10);
    input.extend_from_slice(b".\r\nQUIT\r\n");
    let (consumed, done, msg, size, too_large) = one_shot(50, &input);
    assert!(done && too_large);
    assert_eq!(&input[consumed..], b"QUIT\r\n");
    assert_eq!(size, 120);
    assert!(msg.is_empty());
    assert_split_invariant(50, &input);
}

#[test]
fn message_of_exactly_max_size_is_not_too_large() {
    let (_, done, msg, size, too_large) = one_shot(5, b"abc\r\n.\r\n");
    assert!(done && !too_large);
    assert_eq!((msg.len(), size), (5, 5));
    let (_, _, _, _, too_large) = one_shot(4, b"abc\r\n.\r\n");
    assert!(too_large);
}

#[test]
fn size_counts_after_unstuffing_and_normalisation() {
    let (_, _, msg, size, _) = one_shot(1000, b"..a\nb\r\n.\r\n");
    assert_eq!(msg, b".a\r\nb\r\n");
    assert_eq!(size, 7);
}

#[test]
fn canonicalize_line_endings_handles_every_ending() {
    assert_eq!(
        canonicalize_line_endings(b"a\nb\rc\r\nd\r"),
        b"a\r\nb\r\nc\r\nd\r\n"
    );
    assert_eq!(canonicalize_line_endings(b"\r\r\n\n"), b"\r\n\r\n\r\n");
    assert_eq!(canonicalize_line_endings(b""), b"");
}

#[test]
fn crlf_normalizer_joins_cr_and_lf_across_chunks() {
    let mut n = CrlfNormalizer::new();
    let mut out = Vec::new();
    n.push(b"a\r", &mut out);
    n.push(b"\nb\r", &mut out);
    n.finish(&mut out);
    assert_eq!(out, b"a\r\nb\r\n");
}

/// Small deterministic xorshift64 generator so the property tests need no
/// dependency and always explore the same cases.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The model: where the data ends and what it stores, computed the slow,
/// obvious way from the rules rather than with a state machine.
fn model(input: &[u8]) -> Option<(usize, Vec<u8>)> {
    let (content, consumed) = if input.starts_with(b".\r\n") {
        (&input[..0], 3)
    } else {
        let at = input.windows(5).position(|w| w == b"\r\n.\r\n")?;
        (&input[..at + 2], at + 5)
    };
    let canonical = canonicalize_line_endings(content);
    let mut out = Vec::new();
    for line in canonical.split_inclusive(|&b| b == b'\n') {
        // A stuffed dot is dropped; a line that is only "." stays "."
        // (it can only come from a bare LF or lone CR, never a real end).
        let unstuffed = match line.strip_prefix(b".") {
            Some(rest) if rest != b"\r\n" => rest,
            _ => line,
        };
        out.extend_from_slice(unstuffed);
    }
    Some((consumed, out))
}

#[test]
fn random_streams_match_the_model_in_any_split() {
    let alphabet = b"\r\n.\r\n.ab";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let len = rng.below(40);
        let input: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let whole = one_shot(usize::MAX, &input);
        match model(&input) {
            Some((consumed, msg)) => {
                assert!(whole.1, "should end: {input:?}");
                assert_eq!((whole.0, &whole.2), (consumed, &msg), "{input:?}");
                assert_eq!(whole.3, msg.len() as u64);
            }
            None => assert!(!whole.1, "should not end: {input:?}"),
        }
        // Random multi-way splits agree with the one-shot feed.
        for _ in 0..4 {
            let cuts: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(len + 1)).collect();
            assert_eq!(
                feed_chunks(usize::MAX, &input, &cuts),
                whole,
                "{input:?} {cuts:?}"
            );
        }
        assert_eq!(byte_by_byte(usize::MAX, &input), whole);
        // A size limit changes only what is stored, never where the end is.
        let limited = one_shot(len / 2, &input);
        assert_eq!(
            (limited.0, limited.1, limited.3),
            (whole.0, whole.1, whole.3)
        );
        assert_eq!(limited.4, whole.3 > (len / 2) as u64);
    }
}

#[test]
fn large_input_is_linear() {
    // 8 MiB fed byte-heavy chunks: a quadratic rescan would time out.
    let mut input = b"x".repeat(1 << 23);
    input.extend_from_slice(b"\r\n.\r\n");
    let cuts = vec![4096; input.len() / 4096];
    let (_, done, msg, _, _) = feed_chunks(usize::MAX, &input, &cuts);
    assert!(done);
    assert_eq!(msg.len(), (1 << 23) + 2);
}

#[test]
fn limit_to_below_stored_switches_to_discarding_but_finds_the_end() {
    let mut rx = DataReceiver::new(1000);
    let (_, status) = rx.feed(b"Subject: x\r\n\r\n0123456789");
    assert!(matches!(status, DataStatus::NeedMore));
    assert_eq!(rx.stored(), 24);
    rx.limit_to(10);
    assert!(rx.too_large());
    let (_, status) = rx.feed(b"more\r\n.\r\n");
    assert!(matches!(status, DataStatus::Done));
    assert!(rx.into_message().is_empty());
}

#[test]
fn drained_octets_still_count_against_the_size_limit() {
    let mut rx = DataReceiver::new(10);
    rx.feed(b"123456");
    assert_eq!(rx.drain(), b"123456");
    assert_eq!(rx.stored(), 0);
    rx.feed(b"789");
    assert!(!rx.too_large());
    assert_eq!(rx.drain(), b"789");
    // 9 drained: two more octets pass the limit of 10.
    let (_, status) = rx.feed(b"ab\r\n.\r\n");
    assert!(matches!(status, DataStatus::Done));
    assert!(rx.too_large());
    assert_eq!(rx.size(), 13);
}
