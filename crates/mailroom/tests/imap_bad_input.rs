//! Bad input gets BAD or NO and the server keeps serving: oversized and
//! unterminated literals, long lines, NUL, invalid UTF-8, deep nesting,
//! unknown tags, commands in the wrong state, many connections.

mod common;
mod imap_kit;

use common::Server;
use imap_kit::Imap;

/// The server still answers a fresh session.
fn healthy(server: &Server) {
    let mut c = Imap::login(server, "alice", "secret");
    c.ok("SELECT INBOX");
    c.ok("LOGOUT");
}

/// `healthy` for the servers where only 127.0.0.2 is local.
fn healthy_from_local(server: &Server) {
    let stream = common::socket_bound_to([127, 0, 0, 2], server.imap);
    let mut c = Imap::from_stream(stream);
    c.ok("LOGIN alice secret");
    c.ok("SELECT INBOX");
    c.ok("LOGOUT");
}

#[test]
fn huge_synchronising_literal_gets_no_toobig_without_continuation() {
    let server = Server::start();
    let mut c = Imap::connect(server.imap);
    c.send("a1 LOGIN {4294967296}");
    let l = c.line();
    assert_eq!(l, "a1 NO [TOOBIG] Literal too large");
    c.send("a2 APPEND INBOX {999999999999}");
    assert!(c.line().starts_with("a2 NO [TOOBIG]"));
    c.ok("NOOP");
    healthy(&server);
}

#[test]
fn oversized_non_synchronising_literal_is_bad_and_closes() {
    let server = Server::start();
    let mut c = Imap::connect(server.imap);
    c.send("a1 LOGIN {100000+}");
    let l = c.line();
    assert!(l.starts_with("a1 BAD [TOOBIG]"), "{l}");
    assert!(c.closed());
    healthy(&server);
}

#[test]
fn long_line_nul_and_invalid_utf8_are_bad_and_session_continues() {
    let server = Server::start();
    let mut c = Imap::connect(server.imap);
    let long = format!("a1 NOOP {}", "x".repeat(70_000));
    c.send(&long);
    let l = c.line();
    assert!(l.starts_with("a1 BAD") && l.contains("too long"), "{l}");
    c.send_raw(b"a2 LOGIN al\0ice secret\r\n");
    assert!(c.line().starts_with("a2 BAD"));
    c.send_raw(b"a3 LOGIN \"\xff\xfe\" secret\r\n");
    assert!(c.line().starts_with("a3 BAD"));
    c.send_raw(b"(((( NOOP\r\n");
    assert!(c.line().starts_with("* BAD"));
    c.send("+x NOOP");
    assert!(c.line().starts_with("* BAD"));
    c.ok("LOGIN alice secret");
    // An 8-bit name is not modified UTF-7 (not in UTF-8 mode): no mailbox
    // can have it, so NO, as for any missing mailbox.
    c.send_raw(b"a4 SELECT \"caf\xc3\xa9\"\r\n");
    assert!(
        c.line().starts_with("a4 NO"),
        "8-bit name is not modified UTF-7"
    );
    c.send_raw(b"a5 CREATE {3}\r\n");
    assert!(c.line().starts_with("+ "));
    c.send_raw(b"\xff\xfe\xfd\r\n");
    assert!(c.line().starts_with("a5 NO"));
    let deep = format!("a6 SEARCH {}ALL{}", "(".repeat(10_000), ")".repeat(10_000));
    c.send(&deep);
    assert!(c.line().starts_with("a6 BAD"));
    c.ok("SELECT INBOX");
    c.ok("UID FETCH 1:4294967295 (FLAGS)");
    c.bad("FETCH 1:4294967295 (FLAGS)");
    c.ok("UID FETCH *:* (FLAGS)");
    healthy(&server);
}

#[test]
fn commands_in_the_wrong_state_are_bad() {
    let server = Server::start();
    let mut c = Imap::connect(server.imap);
    for cmd in [
        "FETCH 1 FLAGS",
        "LIST \"\" *",
        "EXPUNGE",
        "IDLE",
        "CLOSE",
        "ENABLE IMAP4rev2",
    ] {
        c.bad(cmd);
    }
    c.ok("LOGIN alice secret");
    for cmd in [
        "FETCH 1 FLAGS",
        "STORE 1 +FLAGS (\\Seen)",
        "CLOSE",
        "LOGIN alice secret",
    ] {
        c.bad(cmd);
    }
    c.ok("SELECT INBOX");
    c.bad("ENABLE IMAP4rev2");
}

#[test]
fn unterminated_literal_does_not_block_other_clients() {
    let server = Server::start();
    let mut c = Imap::connect(server.imap);
    c.send("a1 LOGIN {10}");
    assert!(c.line().starts_with("+ "));
    c.send_raw(b"abc");
    healthy(&server);
}

/// Makes the flood's 127.0.0.1 a remote address, and the well-behaved
/// client's 127.0.0.2 local (plaintext LOGIN allowed).
const NOT_LOCAL: &str = "local_networks = [\"127.0.0.2/32\"]";

#[test]
fn local_clients_are_not_held_to_the_per_address_limit() {
    let server = Server::start();
    // Twice the default per-address limit, all from 127.0.0.1 (local).
    let mut conns = Vec::new();
    for _ in 0..40 {
        let mut c = Imap::connect(server.imap);
        c.ok("NOOP");
        conns.push(c);
    }
    healthy(&server);
}

#[test]
fn connections_past_the_per_address_limit_get_bye() {
    // 127.0.0.1 is not local here: local_networks are exempt from the
    // per-address limit.
    let server = Server::start_with(NOT_LOCAL, "");
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(Imap::connect(server.imap));
    }
    // The default per-address limit is 20: the next one is refused politely.
    let mut extra = std::net::TcpStream::connect(server.imap).expect("connect");
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut extra, &mut buf).unwrap_or(0);
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("* BYE"));
    drop(conns);
    std::thread::sleep(std::time::Duration::from_millis(200));
    healthy_from_local(&server);
}

#[test]
fn flood_of_200_connections_is_answered_and_others_are_served() {
    let server = Server::start_with(NOT_LOCAL, "");
    let mut flood = Vec::new();
    let (mut greeted, mut refused) = (0, 0);
    for i in 0..200 {
        let mut s = std::net::TcpStream::connect(server.imap).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("timeout");
        // Each connection gets its protocol answer: a greeting or a BYE.
        let mut first = Vec::new();
        let mut byte = [0u8; 1];
        while !first.ends_with(b"\r\n") {
            match std::io::Read::read(&mut s, &mut byte) {
                Ok(1) => first.push(byte[0]),
                _ => break,
            }
        }
        let line = String::from_utf8_lossy(&first).into_owned();
        if line.starts_with("* OK") {
            greeted += 1;
        } else if line.starts_with("* BYE [UNAVAILABLE]") {
            refused += 1;
        } else {
            panic!("unexpected first line {line:?}");
        }
        flood.push(s);
        // A client on another address is served throughout.
        if i % 50 == 49 {
            let stream = common::socket_bound_to([127, 0, 0, 2], server.imap);
            let mut good = Imap::from_stream(stream);
            good.ok("LOGIN alice secret");
            good.ok("SELECT INBOX");
            good.ok("LOGOUT");
        }
    }
    // The per-address limit (20 by default) applies to the flood.
    assert_eq!((greeted, refused), (20, 180));
    drop(flood);
    std::thread::sleep(std::time::Duration::from_millis(200));
    healthy_from_local(&server);
}

#[test]
fn append_with_impossible_dates_is_bad_and_internaldate_stays_a_date_time() {
    let server = Server::start();
    let mut c = Imap::login(&server, "alice", "secret");
    for date in [
        "01-Jan-10000 00:00:00 +0000",
        "31-Feb-2024 12:00:00 +0000",
        "01-Jan-2024 12:00:00 +9999",
        "01-Jan-2024 12:00:00 +2400",
        "31-Dec-9999 23:59:59 -0100",
    ] {
        let tag = c.tag();
        c.send_raw(format!("{tag} APPEND INBOX \"{date}\" {{5+}}\r\nhello\r\n").as_bytes());
        let r = c.read_until_tagged(&tag);
        assert_eq!(r.status(), "BAD", "{date}: {r:?}");
    }
    let tag = c.tag();
    c.send_raw(
        format!("{tag} APPEND INBOX \"31-Dec-9999 23:59:59 +0000\" {{5+}}\r\nhello\r\n").as_bytes(),
    );
    let r = c.read_until_tagged(&tag);
    assert_eq!(r.status(), "OK", "{r:?}");
    c.ok("SELECT INBOX");
    let r = c.ok("FETCH 1:* INTERNALDATE");
    assert_eq!(
        r.untagged.len(),
        1,
        "nothing but the good one stored: {r:?}"
    );
    assert!(
        r.has("INTERNALDATE \"31-Dec-9999 23:59:59 +0000\""),
        "{r:?}"
    );
    healthy(&server);
}
