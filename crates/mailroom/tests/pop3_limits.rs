//! Bad input and limits against the real POP3 server (SPEC 8): every bad
//! line gets an `-ERR`, the session or the server goes on, and nothing is
//! lost.

mod common;
mod pop3_kit;

use std::time::{Duration, Instant};

use common::{Extra, Server};
use pop3_kit::{Pop3, deliver_numbered, start_with_pop3};

const ALICE: &str = "alice@example.test";

#[test]
fn ten_thousand_octet_line_is_err_and_the_session_goes_on() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    let mut line = vec![b'A'; 10_000];
    line.extend_from_slice(b"\r\n");
    p.send_raw(&line);
    assert_eq!(p.line(), "-ERR Line too long");
    // A 512-octet line is still a command (RFC 2449 4 asks for 255).
    let long_user = format!("USER {}", "a".repeat(510 - 5));
    assert_eq!(long_user.len() + 2, 512);
    p.ok(&long_user);
    p.ok("USER alice");
    // One past the limit is refused and is no command: USER alice stands.
    assert_eq!(
        p.cmd(&format!("USER {}", "a".repeat(511 - 5))),
        "-ERR Line too long"
    );
    assert_eq!(p.cmd("PASS secret"), "+OK Logged in.");
}

#[test]
fn nul_bytes_are_err_and_the_session_goes_on() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    p.send_raw(b"\0\0\0\0\r\n");
    assert_eq!(p.line(), "-ERR Unknown command");
    p.send_raw(b"USER ali\0ce\r\n");
    assert!(p.line().starts_with("-ERR"));
    p.send_raw(b"US\0R alice\r\n");
    assert!(p.line().starts_with("-ERR"));
    p.ok("USER alice");
    p.ok("PASS secret");
    p.send_raw(b"RETR 1\0\r\n");
    assert!(p.line().starts_with("-ERR"));
    p.ok("STAT");
}

#[test]
fn retr_minus_one_and_huge_numbers_are_err() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 1);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    for line in [
        "retr -1",
        "retr 99999999999999999999",
        "retr 0",
        "RETR 4294967296",
        "DELE -1",
        "LIST 99999999999999999999",
        "UIDL -0",
    ] {
        let r = p.err(line);
        assert!(r.len() <= 512, "{r}");
    }
    p.retr(1);
}

#[test]
fn top_with_negative_lines_is_err() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 1);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    p.err("top 1 -5");
    p.err("TOP 1 99999999999999999999");
    p.err("TOP -1 0");
    p.multi("TOP 1 0");
}

#[test]
fn flood_of_failed_logins_is_answered_and_the_server_stays_healthy() {
    let server = Server::start();
    deliver_numbered(&server, ALICE, 1);
    let start = Instant::now();
    let addr = server.pop3;
    let floods: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let mut p = Pop3::connect(addr);
                let user = if i % 2 == 0 { "alice" } else { "nobody" };
                p.ok(&format!("USER {user}"));
                let r = p.cmd("PASS guess");
                assert!(r.starts_with("-ERR [AUTH] "), "{r}");
                p.ok("QUIT");
            })
        })
        .collect();
    for f in floods {
        f.join().expect("flood client");
    }
    // Throttled harder as failures add up, but bounded.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    // Everyone else, and the right password, still get in; SMTP works.
    let mut p = Pop3::login(server.pop3, "bob", "secret");
    p.ok("STAT");
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    p.retr(1);
    deliver_numbered(&server, ALICE, 1);
    assert_eq!(server.inbox(ALICE).len(), 2);
}

#[test]
fn connections_over_the_per_address_limit_get_sys_temp() {
    // 127.0.0.1 is not local here: local_networks are exempt from the
    // per-address limit.
    let server = Server::start_with_extra(Extra {
        top: "local_networks = [\"127.0.0.2/32\"]".into(),
        pop3: "max_connections_per_ip = 2".into(),
        ..Extra::default()
    });
    let _a = Pop3::connect(server.pop3);
    let _b = Pop3::connect(server.pop3);
    let mut c = Pop3::connect_raw(server.pop3);
    assert_eq!(
        c.line(),
        "-ERR [SYS/TEMP] Too many connections from your address"
    );
    assert!(c.closed());
    drop(_a);
    // The slot comes back once the server notices the close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = Pop3::connect_raw(server.pop3);
        if d.line().starts_with("+OK") {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn idle_session_is_logged_out_and_deletes_nothing() {
    let server = start_with_pop3("idle_timeout = 1");
    deliver_numbered(&server, ALICE, 1);
    let mut p = Pop3::login(server.pop3, "alice", "secret");
    p.ok("DELE 1");
    let start = Instant::now();
    assert_eq!(p.line(), "-ERR Autologout; idle for too long");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(p.closed());
    assert_eq!(server.inbox(ALICE).len(), 1);
}

#[test]
fn too_many_bad_commands_close_the_session() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    for _ in 0..19 {
        p.err("XYZZY");
    }
    assert_eq!(p.cmd("XYZZY"), "-ERR Unknown command");
    assert_eq!(p.line(), "-ERR Too many bad commands, closing connection");
    assert!(p.closed());
    // The server is fine.
    Pop3::login(server.pop3, "alice", "secret").ok("QUIT");
}

#[test]
fn binary_garbage_gets_answers_and_the_server_stays_up() {
    let server = Server::start();
    let mut p = Pop3::connect(server.pop3);
    let mut garbage: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
    garbage.extend_from_slice(b"\r\n");
    p.send_raw(&garbage);
    // Whatever it split into, each piece was answered and the session is
    // still there.
    p.send_raw(b"NOOP\r\n");
    loop {
        let line = p.line();
        assert!(line.starts_with("-ERR"), "{line}");
        if line == "-ERR Not logged in: use USER/PASS or AUTH first" {
            break;
        }
    }
    Pop3::login(server.pop3, "alice", "secret").ok("QUIT");
}
