//! The seed session of issue 3, byte for byte, over a real socket.

mod common;
use common::Server;

#[test]
fn seed_session_delivers_to_alice() {
    let server = Server::start();
    let mut c = server.connect();
    let greeting = c.expect(220);
    assert_eq!(greeting.lines, vec!["mx.example.test ESMTP mailroom"]);
    c.cmd("HELO 195.161.101.33", 250);
    c.cmd("MAIL FROM:<frol>", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    c.cmd("DATA", 354);
    c.send("From: frol@example.test");
    c.send("To: alice@example.test");
    c.send("Subject: test");
    c.send("");
    c.send("Hello Bob!");
    c.cmd(".", 250);
    c.cmd("QUIT", 221);
    assert!(c.closed());

    let inbox = server.inbox("alice@example.test");
    assert_eq!(inbox.len(), 1);
    let msg = String::from_utf8(inbox[0].clone()).unwrap();
    // Return-Path first (the unqualified sender was qualified), then our
    // Authentication-Results (issue 16), then our Received with `for`
    // (one recipient), then the message untouched.
    assert!(
        msg.starts_with(
            "Return-Path: <frol@example.test>\r\nAuthentication-Results: mx.example.test;"
        ),
        "{msg}"
    );
    assert!(msg.contains("\r\nReceived: from 195.161.101.33 ([127.0.0.1])\r\n\tby mx.example.test (mailroom) with SMTP id "), "{msg}");
    assert!(msg.contains("\r\n\tfor <alice@example.test>; "), "{msg}");
    assert!(msg.ends_with("From: frol@example.test\r\nTo: alice@example.test\r\nSubject: test\r\n\r\nHello Bob!\r\n"), "{msg}");
}
