//! DATA and BDAT: dot-stuffing, the SMTP smuggling defence, SIZE, the hop
//! limit, trace fields, CHUNKING and pipelining.

mod common;
use common::{Server, enhanced};

/// The stored message without the fields we add: Return-Path, then
/// Authentication-Results (issue 16), then Received.
fn body_of(stored: &[u8]) -> Vec<u8> {
    let text = stored;
    let rp = text.windows(2).position(|w| w == b"\r\n").unwrap() + 2; // Return-Path
    assert!(text.starts_with(b"Return-Path: "));
    let mut pos = rp;
    if text[pos..].starts_with(b"Authentication-Results: ") {
        pos = skip_field(text, pos);
    }
    // Received: three or four lines, each continuation starting with a tab.
    assert!(text[pos..].starts_with(b"Received: "));
    pos = skip_field(text, pos);
    text[pos..].to_vec()
}

/// The offset after the field starting at `pos` and its continuation lines.
fn skip_field(text: &[u8], mut pos: usize) -> usize {
    loop {
        let end = pos + text[pos..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        pos = end;
        if text.get(pos) != Some(&b'\t') {
            return pos;
        }
    }
}

#[test]
fn dot_stuffing_round_trip_is_byte_exact() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    // On the wire: "." → "..", ".." → "...", ".x" → "..x".
    let wire = b"Subject: dots\r\n\r\n..\r\n...\r\n..x\r\nend\r\n";
    assert_eq!(
        c.send_mail("x@remote.test", &["alice@example.test"], wire)
            .code,
        250
    );
    let stored = server.inbox("alice@example.test").remove(0);
    assert_eq!(
        body_of(&stored),
        b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend\r\n".to_vec()
    );
}

#[test]
fn bare_lf_dot_does_not_end_data() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    c.cmd("DATA", 354);
    // A smuggling attempt: "\n.\n" then a second transaction inside DATA.
    c.send_raw(b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n");
    let r = c.expect(250);
    assert_eq!(enhanced(&r), "2.0.0");
    c.cmd("NOOP", 250);
    assert_eq!(server.inbox("alice@example.test").len(), 1);
    assert!(server.inbox("bob@example.test").is_empty());
    let stored = server.inbox("alice@example.test").remove(0);
    // Bare LF normalised to CRLF; the lone "." stays content.
    assert!(body_of(&stored).ends_with(b"first\r\n.\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n"));
}

#[test]
fn message_over_size_is_552_without_buffering() {
    let server = Server::start_with("", "max_message_size = 10000");
    let mut c = server.connect().ehlo();
    // Declared too big: refused at MAIL (RFC 1870).
    assert_eq!(
        enhanced(&c.cmd("MAIL FROM:<x@remote.test> SIZE=20000", 552)),
        "5.3.4"
    );
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    c.cmd("DATA", 354);
    let line = "y".repeat(998);
    for _ in 0..2000 {
        // 2 MB streamed: the server keeps scanning without storing.
        c.send(&line);
    }
    c.send(".");
    assert_eq!(enhanced(&c.expect(552)), "5.3.4");
    // The session goes on, and nothing was stored.
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    assert!(server.inbox("alice@example.test").is_empty());
}

#[test]
fn hundred_received_fields_is_554_loop() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    let mut msg = String::new();
    for i in 0..100 {
        msg.push_str(&format!("Received: from hop{i} by hop{}\r\n", i + 1));
    }
    msg.push_str("Subject: loop\r\n\r\nx\r\n");
    let r = c.send_mail("x@remote.test", &["alice@example.test"], msg.as_bytes());
    assert_eq!((r.code, enhanced(&r)), (554, "5.4.6".to_string()));
    assert!(server.inbox("alice@example.test").is_empty());
}

#[test]
fn received_has_for_only_with_a_single_recipient() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.send_mail(
        "x@remote.test",
        &["alice@example.test", "bob@example.test"],
        b"Subject: two\r\n\r\nx\r\n",
    );
    let stored = String::from_utf8(server.inbox("bob@example.test").remove(0)).unwrap();
    assert!(stored.contains("with ESMTP id "));
    assert!(!stored.contains("for <"), "{stored}");
}

#[test]
fn old_return_path_is_replaced() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.send_mail(
        "real@remote.test",
        &["alice@example.test"],
        b"Return-Path: <forged@evil.test>\r\nSubject: rp\r\n\r\nx\r\n",
    );
    let stored = String::from_utf8(server.inbox("alice@example.test").remove(0)).unwrap();
    assert!(stored.starts_with("Return-Path: <real@remote.test>\r\n"));
    assert!(!stored.contains("forged@evil.test"));
}

#[test]
fn bdat_delivers_chunks_with_pipelining() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    // The whole transaction in one write (RFC 3030 + RFC 2920).
    let part1 = b"Subject: chunks\r\n\r\nfirst ";
    let part2 = b"second\r\n.leading dot kept\r\n";
    let mut wire = Vec::new();
    wire.extend_from_slice(
        b"MAIL FROM:<x@remote.test> BODY=BINARYMIME\r\nRCPT TO:<alice@example.test>\r\n",
    );
    wire.extend_from_slice(format!("BDAT {}\r\n", part1.len()).as_bytes());
    wire.extend_from_slice(part1);
    wire.extend_from_slice(format!("BDAT {} LAST\r\n", part2.len()).as_bytes());
    wire.extend_from_slice(part2);
    wire.extend_from_slice(b"NOOP\r\n");
    c.send_raw(&wire);
    c.expect(250); // MAIL
    c.expect(250); // RCPT
    let r = c.expect(250);
    assert_eq!(r.lines, vec![format!("{} octets received", part1.len())]);
    assert!(c.expect(250).lines[0].starts_with("Ok: queued as "));
    c.expect(250); // NOOP
    let stored = server.inbox("alice@example.test").remove(0);
    assert_eq!(
        body_of(&stored),
        b"Subject: chunks\r\n\r\nfirst second\r\n.leading dot kept\r\n".to_vec()
    );
}

#[test]
fn bdat_without_transaction_is_503_and_chunk_is_skipped() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.send_raw(b"BDAT 6\r\nNOOP\r\n");
    assert_eq!(enhanced(&c.expect(503)), "5.5.1");
    // The six octets "NOOP\r\n" were the chunk, not a command.
    c.cmd("RSET", 250);
}

#[test]
fn data_after_bdat_is_503() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    c.send_raw(b"BDAT 3\r\nabc");
    c.expect(250);
    c.cmd("DATA", 503);
}

#[test]
fn bdat_over_size_is_552() {
    let server = Server::start_with("", "max_message_size = 1000");
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    let chunk = vec![b'z'; 5000];
    c.send_raw(b"BDAT 5000 LAST\r\n");
    c.send_raw(&chunk);
    assert_eq!(enhanced(&c.expect(552)), "5.3.4");
    c.cmd("NOOP", 250);
    assert!(server.inbox("alice@example.test").is_empty());
}

#[test]
fn data_is_binary_eight_bit_clean() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    let mut msg = b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin1\r\n\r\n".to_vec();
    msg.extend((0x80u8..=0xFF).collect::<Vec<_>>());
    msg.extend_from_slice(b"\r\n");
    c.cmd("MAIL FROM:<x@remote.test> BODY=8BITMIME", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw(&msg);
    c.cmd(".", 250);
    assert_eq!(body_of(&server.inbox("alice@example.test").remove(0)), msg);
}

#[test]
fn binarymime_with_data_is_503() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test> BODY=BINARYMIME", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    c.cmd("DATA", 503);
}
