//! The seed dialogue of issue 4, raw and exactly as the seed document
//! shows it: lower case, with the local part alone as the user name.

mod common;
mod pop3_kit;

use common::Server;
use pop3_kit::{Pop3, deliver};

#[test]
fn seed_dialogue_works_exactly() {
    let server = Server::start();
    server.cli(&["user", "add", "user1@example.test", "--password", "1111"]);
    let bodies: Vec<Vec<u8>> = (1..=3)
        .map(|i| {
            format!(
                "Subject: seed {i}\r\nFrom: someone@remote.test\r\n\r\n{}\r\n",
                "Some text of the seed message.\r\n".repeat(i * 20)
            )
            .into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    deliver(&server, "user1@example.test", &refs);
    let stored = server.inbox("user1@example.test");
    let octets: usize = stored.iter().map(Vec::len).sum();

    let mut p = Pop3::connect_raw(server.pop3);
    assert_eq!(p.line(), "+OK mailroom POP3 server ready");
    assert_eq!(p.cmd("user user1"), "+OK");
    assert_eq!(p.cmd("pass 1111"), "+OK Logged in.");
    assert_eq!(p.cmd("stat"), format!("+OK 3 {octets}"));
    assert_eq!(p.cmd("retr 1"), "+OK");
    let first = p.line();
    assert!(
        first.starts_with("Return-Path: ") || first.starts_with("Received: "),
        "{first}"
    );
    let mut message = first.into_bytes();
    message.extend_from_slice(b"\r\n");
    message.extend_from_slice(&p.multiline());
    assert_eq!(message, stored[0]);
    assert_eq!(p.cmd("quit"), "+OK Bye");
    assert!(p.closed());
    // QUIT without DELE removes nothing.
    assert_eq!(server.inbox("user1@example.test").len(), 3);
}
