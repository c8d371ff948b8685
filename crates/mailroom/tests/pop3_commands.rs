//! Every POP3 command against the real server over real sockets, and the
//! `-ERR` paths, each test named for what it proves.

mod common;
mod pop3_kit;

use std::time::{Duration, Instant};

use common::Server;
use pop3_kit::{Pop3, deliver, deliver_numbered, seen_flags};

const ALICE: &str = "alice@example.test";

#[test]
fn login_with_full_address_and_local_part_both_work() {
    let server = Server::start();
    Pop3::login(server.pop3, "alice@example.test", "secret").ok("QUIT");
    Pop3::login(server.pop3, "ALICE", "secret").ok("QUIT");
}

#[test]
fn list_size_matches_retr_octets() {
    let server = Server::start();
    // Dot lines, an empty line, a long line: sizes count the CRLF form
    // before dot-stuffing.
    let m = b"Subject: sizes\r\n\r\n.starts with a dot\r\n..two dots\r\n\r\n.\r\nend\r\n";
    deliver(&server, ALICE, &[m, b"Subject: two\r\n\r\nx\r\n"]);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    let listing = p.listing("LIST");
    assert_eq!(listing.len(), 2);
    let mut total = 0;
    for (i, line) in listing.iter().enumerate() {
        let n = i as u32 + 1;
        let size: usize = line.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(p.ok(&format!("LIST {n}")), format!("+OK {line}"));
        assert_eq!(p.retr(n).len(), size, "message {n}");
        total += size;
    }
    assert_eq!(p.ok("STAT"), format!("+OK 2 {total}"));
    assert!(p.retr(1).ends_with(m));
}

#[test]
fn message_delivered_by_smtp_is_retrieved_byte_identical_apart_from_added_headers() {
    let server = Server::start();
    let mut original = b"From: Sender <sender@remote.test>\r\nTo: alice@example.test\r\n\
        Subject: identical\r\nMIME-Version: 1.0\r\n\r\n"
        .to_vec();
    original.extend_from_slice(b".leading dot survives\r\n\t tab and spaces  \r\n");
    original.extend_from_slice(&b"x".repeat(900));
    original.extend_from_slice(b"\r\n\r\n-- \r\nsig\r\n");
    // `deliver` dot-stuffs for the SMTP wire, as a client does.
    deliver(&server, ALICE, &[&original]);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    let got = p.retr(1);
    assert!(
        got.ends_with(&original),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let added = String::from_utf8(got[..got.len() - original.len()].to_vec()).unwrap();
    for line in added.lines() {
        assert!(
            line.starts_with("Return-Path:")
                || line.starts_with("Authentication-Results:")
                || line.starts_with("Received:")
                || line.starts_with(' ')
                || line.starts_with('\t'),
            "unexpected added line {line:?}"
        );
    }
}

#[test]
fn top_0_returns_headers_only() {
    let server = Server::start();
    deliver(
        &server,
        ALICE,
        &[b"Subject: top\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n"],
    );
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    let (_, head) = p.multi("TOP 1 0");
    assert!(head.ends_with(b"Subject: top\r\n\r\n"), "{head:?}");
    let (_, two) = p.multi("TOP 1 2");
    assert!(two.ends_with(b"Subject: top\r\n\r\nline 1\r\n.line 2\r\n"));
    let (_, all) = p.multi("TOP 1 99999");
    assert_eq!(all, p.retr(1));
}

#[test]
fn retr_sets_seen_top_does_not() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 3);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    p.multi("TOP 1 0");
    p.retr(2);
    p.ok("QUIT");
    assert_eq!(seen_flags(&server, ALICE), [false, true, false]);
}

#[test]
fn dele_then_rset_undeletes() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 2);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    assert_eq!(p.ok("DELE 1"), "+OK message 1 deleted");
    assert_eq!(p.listing("LIST").len(), 1);
    p.ok("RSET");
    assert_eq!(p.listing("LIST").len(), 2);
    p.ok("QUIT");
    assert_eq!(server.inbox(ALICE).len(), 2);
}

#[test]
fn quit_expunges_durably() {
    let mut server = Server::start();
    let msgs = deliver_numbered(&server, ALICE, 3);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    p.ok("DELE 1");
    p.ok("DELE 3");
    assert_eq!(p.cmd("QUIT"), "+OK Bye");
    assert!(p.closed());
    // +OK came after the fsync: a crash right now loses nothing of it.
    server.kill9();
    let left = server.inbox(ALICE);
    assert_eq!(left.len(), 1);
    assert!(left[0].ends_with(&msgs[1]));
    server.spawn();
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    assert_eq!(p.listing("LIST").len(), 1);
}

#[test]
fn dropped_connection_deletes_nothing() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 2);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    p.ok("DELE 1");
    p.ok("DELE 2");
    drop(p);
    // The next session sees both, whenever the server noticed the drop.
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    assert_eq!(p.ok("STAT").split(' ').nth(1), Some("2"));
    p.ok("QUIT");
    assert_eq!(server.inbox(ALICE).len(), 2);
}

#[test]
fn retr_of_deleted_message_is_err() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 2);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    p.ok("DELE 1");
    assert_eq!(p.err("RETR 1"), "-ERR message 1 already deleted");
    p.err("TOP 1 0");
    p.err("DELE 1");
    p.err("LIST 1");
    p.err("UIDL 1");
    // The session goes on.
    p.retr(2);
}

#[test]
fn missing_message_numbers_are_err() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 1);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    assert_eq!(
        p.err("RETR 2"),
        "-ERR no such message, only 1 messages in maildrop"
    );
    for line in ["LIST 2", "UIDL 2", "DELE 2", "TOP 2 0", "RETR 4294967295"] {
        p.err(line);
    }
    p.ok("NOOP");
}

#[test]
fn uidl_is_unique_and_stable_across_sessions() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 3);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    let first = p.listing("UIDL");
    p.ok("DELE 1");
    p.ok("QUIT");
    let ids: Vec<&str> = first.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 3);
    for id in &ids {
        assert!(!id.is_empty() && id.len() <= 70 && id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    let second = p.listing("UIDL");
    let ids2: Vec<&str> = second
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(ids2, &ids[1..]);
    assert_eq!(p.ok("UIDL 2"), format!("+OK 2 {}", ids[2]));
}

#[test]
fn uidl_survives_restart() {
    let mut server = Server::start();
    deliver_numbered(&server, ALICE, 2);
    let before = Pop3::login(server.pop3, "alice", "secret").listing("UIDL");
    assert!(server.terminate().is_some_and(|s| s.success()));
    server.spawn();
    let after = Pop3::login(server.pop3, "alice", "secret").listing("UIDL");
    assert_eq!(before, after);
    server.kill9();
    server.spawn();
    let after_crash = Pop3::login(server.pop3, "alice", "secret").listing("UIDL");
    assert_eq!(before, after_crash);
}

#[test]
fn two_sessions_have_their_own_snapshots() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 2);
    let mut a = Pop3::login(server.pop3, "alice", "secret");
    deliver_numbered(&server, ALICE, 1);
    let mut b = Pop3::login(server.pop3, "alice", "secret");
    assert_eq!(a.listing("LIST").len(), 2);
    assert_eq!(b.listing("LIST").len(), 3);
    // A deletes message 1 and quits: B's numbers do not move, and RETR of
    // the message A removed answers -ERR.
    a.ok("DELE 1");
    a.ok("QUIT");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = b.cmd("RETR 1");
        if r.starts_with("-ERR") {
            assert!(r.contains("removed by another session"), "{r}");
            break;
        }
        b.multiline();
        assert!(Instant::now() < deadline, "B never saw the expunge");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.retr(2);
    b.retr(3);
    b.ok("QUIT");
    assert_eq!(server.inbox(ALICE).len(), 2);
}

#[test]
fn commands_before_login_are_err() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    for line in [
        "STAT", "LIST", "RETR 1", "DELE 1", "TOP 1 0", "UIDL", "RSET", "NOOP",
    ] {
        assert_eq!(
            p.err(line),
            "-ERR Not logged in: use USER/PASS or AUTH first"
        );
    }
    p.err("PASS secret");
    p.ok("USER alice");
    p.ok("PASS secret");
    p.ok("STAT");
}

#[test]
fn login_commands_after_login_are_err() {
    let server = Server::start();
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    for line in ["USER bob", "PASS secret", "AUTH PLAIN", "STLS"] {
        assert_eq!(p.err(line), "-ERR Already logged in");
    }
    p.ok("NOOP");
}

#[test]
fn unknown_user_gets_ok_and_the_pass_fails_with_auth_code() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    assert_eq!(p.cmd("USER nobody"), "+OK");
    // Fails exactly as a wrong password does (the delays of later
    // failures are asserted where the throttle records them).
    assert_eq!(p.cmd("PASS secret"), "-ERR [AUTH] Authentication failed.");
    p.ok("USER alice");
    assert_eq!(p.cmd("PASS secret"), "+OK Logged in.");
}

#[test]
fn wrong_password_is_err_auth_and_user_must_be_sent_again() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    p.ok("USER alice");
    assert_eq!(p.cmd("PASS wrong"), "-ERR [AUTH] Authentication failed.");
    p.err("PASS secret");
    p.ok("USER alice");
    p.ok("PASS secret");
}

#[test]
fn capa_lists_rfc_2449_capabilities_and_stls_before_login() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    let caps = p.listing("CAPA");
    for cap in [
        "TOP",
        "UIDL",
        "USER",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "SASL PLAIN LOGIN SCRAM-SHA-256",
        "IMPLEMENTATION mailroom",
    ] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing from {caps:?}");
    }
    assert!(caps.iter().any(|c| c == "STLS"), "{caps:?}");
    // CAPA works in TRANSACTION too, without STLS (RFC 2595 4).
    p.ok("USER alice");
    p.ok("PASS secret");
    let caps = p.listing("CAPA");
    assert!(caps.iter().any(|c| c == "TOP"));
    assert!(!caps.iter().any(|c| c == "STLS"), "{caps:?}");
}

#[test]
fn auth_without_argument_lists_mechanisms() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    assert_eq!(p.listing("AUTH"), ["PLAIN", "LOGIN", "SCRAM-SHA-256"]);
    p.err("AUTH CRAM-MD5");
    p.err("AUTH DIGEST-MD5");
}

/// RFC 4648 base64, for the SASL tests.
fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn auth_plain_with_initial_response_logs_in() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 1);
    let mut p = Pop3::connect(server.pop3);
    let ir = b64(b"\0alice@example.test\0secret");
    assert_eq!(p.cmd(&format!("AUTH PLAIN {ir}")), "+OK Logged in.");
    p.retr(1);
}

#[test]
fn auth_plain_with_continuation_and_cancel() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    assert_eq!(p.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(p.cmd("*"), "-ERR Authentication cancelled");
    assert_eq!(p.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(p.cmd(&b64(b"alice\0alice\0secret")), "+OK Logged in.");
    p.ok("STAT");
}

#[test]
fn auth_plain_for_someone_else_is_refused() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    let ir = b64(b"bob@example.test\0alice\0secret");
    let r = p.err(&format!("AUTH PLAIN {ir}"));
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
    p.err("STAT");
}

#[test]
fn apop_is_refused_and_the_session_goes_on() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    let r = p.err("APOP alice c4c9334bac560ecc979e58001b3e22fb");
    assert!(r.contains("not supported"), "{r}");
    p.ok("USER alice");
    p.ok("PASS secret");
}

#[test]
fn stls_with_an_argument_is_err_and_the_session_goes_on() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    p.err("STLS now");
    p.ok("USER alice");
}

#[test]
fn unknown_commands_and_bad_syntax_are_err() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    assert_eq!(p.err("HELO x"), "-ERR Unknown command");
    p.err("");
    p.ok("USER alice");
    p.ok("PASS secret");
    for line in ["RETR", "RETR x", "TOP 1", "LIST 1 2", "STAT now", "DELE"] {
        p.err(line);
    }
    p.ok("NOOP");
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 2);
    let mut p = Pop3::connect(server.pop3);
    p.send_raw(b"USER alice\r\nPASS secret\r\nSTAT\r\nRETR 1\r\nBOGUS\r\nTOP 2 0\r\nDELE 2\r\nLIST\r\nQUIT\r\n");
    assert_eq!(p.line(), "+OK");
    assert_eq!(p.line(), "+OK Logged in.");
    assert!(p.line().starts_with("+OK 2 "));
    assert_eq!(p.line(), "+OK");
    assert!(p.multiline().ends_with(b"body 1\r\n"));
    assert_eq!(p.line(), "-ERR Unknown command");
    assert_eq!(p.line(), "+OK");
    assert!(
        p.multiline()
            .ends_with(b"Subject: message 2\r\nFrom: s@remote.test\r\n\r\n")
    );
    assert_eq!(p.line(), "+OK message 2 deleted");
    assert!(p.line().starts_with("+OK 1 messages"));
    assert_eq!(p.multiline().split(|&b| b == b'\n').count(), 2);
    assert_eq!(p.line(), "+OK Bye");
    assert!(p.closed());
    assert_eq!(server.inbox(ALICE).len(), 1);
}

#[test]
fn shutdown_sends_a_final_line_and_deletes_nothing() {
    let mut server = Server::start();
    deliver_numbered(&server, ALICE, 1);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    p.ok("DELE 1");
    assert!(server.terminate().is_some_and(|s| s.success()));
    assert_eq!(p.line(), "-ERR [SYS/TEMP] Server shutting down");
    assert!(p.closed());
    assert_eq!(server.inbox(ALICE).len(), 1);
}

#[test]
fn empty_maildrop_is_fine() {
    let server = Server::start();
    let mut p = Pop3::login(server.pop3, "bob", "secret");
    assert_eq!(p.ok("STAT"), "+OK 0 0");
    assert!(p.listing("LIST").is_empty());
    assert!(p.listing("UIDL").is_empty());
    p.err("RETR 1");
    p.ok("QUIT");
}
