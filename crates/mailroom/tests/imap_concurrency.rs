//! Concurrent sessions see each other's changes at the moments RFC 9051
//! 7.4.1 allows, and IDLE pushes new mail without the client asking.

mod common;
mod imap_kit;

use std::time::{Duration, Instant};

use common::Server;
use imap_kit::{Imap, deliver, simple_message};

#[test]
fn idle_session_receives_exists_within_a_second_of_smtp_delivery() {
    let server = Server::start();
    deliver(
        &server,
        "alice@example.test",
        &simple_message("first", "one"),
    );
    let mut a = Imap::login(&server, "alice", "secret");
    a.ok("SELECT INBOX");
    a.send("i1 IDLE");
    assert_eq!(a.line(), "+ idling");
    let sent = Instant::now();
    deliver(
        &server,
        "alice@example.test",
        &simple_message("second", "two"),
    );
    a.stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let line = a.line();
    let waited = sent.elapsed();
    assert_eq!(line, "* 2 EXISTS");
    assert!(waited < Duration::from_secs(1), "took {waited:?}");
    assert_eq!(a.line(), "* 2 RECENT");
    a.send("DONE");
    assert_eq!(a.read_until_tagged("i1").tagged, "i1 OK IDLE terminated");
}

#[test]
fn flags_and_expunges_of_another_session_arrive_at_allowed_moments() {
    let server = Server::start();
    for i in 1..=3 {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "x"),
        );
    }
    let mut a = Imap::login(&server, "alice", "secret");
    let mut b = Imap::login(&server, "alice", "secret");
    a.ok("SELECT INBOX");
    b.ok("SELECT INBOX");
    b.ok("STORE 2 +FLAGS (\\Seen \\Deleted)");
    b.ok("EXPUNGE");
    // FETCH by sequence number: the flag change may come, the EXPUNGE may
    // not (RFC 9051 7.4.1); message 2 is still numbered 2.
    let r = a.cmd("FETCH 1:3 (UID)");
    assert!(!r.untagged.iter().any(|l| l.contains("EXPUNGE")), "{r:#?}");
    assert!(r.has("* 3 FETCH (UID 3)"), "{r:#?}");
    assert!(
        r.tagged.contains("[EXPUNGEISSUED]") || r.status() == "OK",
        "{r:#?}"
    );
    // NOOP reports it.
    let r = a.ok("NOOP");
    assert!(r.has("* 2 EXPUNGE"), "{r:#?}");
    let r = a.ok("FETCH 1:2 (UID)");
    assert!(r.has("* 2 FETCH (UID 3)"), "{r:#?}");
    b.ok("STORE 1 +FLAGS (\\Flagged)");
    let r = a.ok("NOOP");
    assert!(r.has("* 1 FETCH (FLAGS (\\Flagged"), "{r:#?}");
    // New mail shows up as EXISTS on NOOP too.
    deliver(&server, "alice@example.test", &simple_message("m4", "x"));
    let r = a.ok("NOOP");
    assert!(r.has("* 3 EXISTS"), "{r:#?}");
}

#[test]
fn idle_session_sees_expunge_and_flags_from_another_session() {
    let server = Server::start();
    for i in 1..=2 {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "x"),
        );
    }
    let mut a = Imap::login(&server, "alice", "secret");
    let mut b = Imap::login(&server, "alice", "secret");
    a.ok("SELECT INBOX");
    b.ok("SELECT INBOX");
    a.send("i1 IDLE");
    assert_eq!(a.line(), "+ idling");
    b.ok("STORE 1 +FLAGS (\\Seen)");
    assert!(a.line().starts_with("* 1 FETCH (FLAGS (\\Seen"));
    b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)");
    assert!(a.line().starts_with("* 2 FETCH (FLAGS (\\Deleted"));
    b.ok("EXPUNGE");
    assert_eq!(a.line(), "* 2 EXPUNGE");
    a.send("DONE");
    a.read_until_tagged("i1");
}

#[test]
fn recent_belongs_to_the_first_session() {
    let server = Server::start();
    deliver(&server, "alice@example.test", &simple_message("m1", "x"));
    let mut a = Imap::login(&server, "alice", "secret");
    let mut b = Imap::login(&server, "alice", "secret");
    assert!(a.ok("SELECT INBOX").has("* 1 RECENT"));
    assert!(b.ok("SELECT INBOX").has("* 0 RECENT"));
}

#[test]
fn pop3_deletion_shows_up_as_expunge() {
    use std::io::{BufRead, BufReader, Write};
    let server = Server::start();
    deliver(&server, "alice@example.test", &simple_message("m1", "x"));
    let mut a = Imap::login(&server, "alice", "secret");
    a.ok("SELECT INBOX");
    let s = std::net::TcpStream::connect(server.pop3).expect("pop3");
    s.set_read_timeout(Some(common::WAIT)).expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut say = |cmd: &str, r: &mut BufReader<std::net::TcpStream>| {
        if !cmd.is_empty() {
            w.write_all(format!("{cmd}\r\n").as_bytes()).expect("write");
        }
        line.clear();
        r.read_line(&mut line).expect("read");
        assert!(line.starts_with("+OK"), "{cmd}: {line}");
    };
    say("", &mut r);
    say("USER alice@example.test", &mut r);
    say("PASS secret", &mut r);
    say("DELE 1", &mut r);
    say("QUIT", &mut r);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = a.ok("NOOP");
        if reply.has("* 1 EXPUNGE") {
            break;
        }
        assert!(Instant::now() < deadline, "no EXPUNGE after POP3 DELE");
        std::thread::sleep(Duration::from_millis(100));
    }
}
