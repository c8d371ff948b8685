//! QUOTA (RFC 9208) and APPENDLIMIT (RFC 7889) in the shipped binary, at
//! each boundary: `mailroom user quota`, the `[quota]` defaults, SMTP
//! (452 4.2.2 at RCPT, one overshoot at DATA, 552 5.2.2 for a message
//! larger than the whole limit) and IMAP (GETQUOTA, GETQUOTAROOT,
//! APPEND and COPY refused exactly with NO [OVERQUOTA]).

mod common;
mod imap_kit;

use std::time::{Duration, Instant};

use common::{Extra, Server, Smtp, WAIT, enhanced};
use imap_kit::Imap;

/// `mailroom user quota alice ARGS`, then waits until the server has
/// reloaded it (server::quota::REFRESH): GETQUOTA's answer changes.
fn set_quota(server: &Server, args: &[&str]) {
    let mut c = Imap::login(server, "alice", "secret");
    let before = c.ok("GETQUOTA \"\"").untagged;
    let mut cli = vec!["user", "quota", "alice@example.test"];
    cli.extend_from_slice(args);
    server.cli(&cli);
    let deadline = Instant::now() + WAIT;
    while c.ok("GETQUOTA \"\"").untagged == before {
        assert!(Instant::now() < deadline, "quota {args:?} never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A message of exactly `n` octets as stored (CRLF canonical).
fn message_of(n: usize) -> String {
    let head = "Subject: q\r\n\r\n";
    let body = "x".repeat(n - head.len() - 2);
    format!("{head}{body}\r\n")
}

/// One SMTP transaction to alice: the RCPT reply, and the end-of-DATA
/// reply when RCPT was accepted. `size` is sent as SIZE=.
fn send(
    server: &Server,
    message: &str,
    size: Option<usize>,
) -> (u16, String, Option<(u16, String)>) {
    let mut s = Smtp::connect(server.smtp).ehlo();
    let mail = match size {
        Some(n) => format!("MAIL FROM:<x@other.test> SIZE={n}"),
        None => "MAIL FROM:<x@other.test>".to_string(),
    };
    s.cmd(&mail, 250);
    s.send("RCPT TO:<alice@example.test>");
    let rcpt = s.reply();
    if rcpt.code != 250 {
        return (rcpt.code, enhanced(&rcpt), None);
    }
    s.cmd("DATA", 354);
    s.send_raw(message.as_bytes());
    s.send_raw(b".\r\n");
    let end = s.reply();
    (rcpt.code, enhanced(&rcpt), Some((end.code, enhanced(&end))))
}

fn stored(server: &Server) -> u64 {
    server
        .inbox_meta("alice@example.test")
        .iter()
        .map(|m| m.size)
        .sum()
}

#[test]
fn smtp_refuses_at_rcpt_once_full_lets_one_overshoot_and_552s_what_never_fits() {
    let server = Server::start();
    set_quota(&server, &["1K"]);
    // 300 octets: fits, with its trace fields (Return-Path, Received and
    // Authentication-Results add several hundred).
    let (rcpt, _, end) = send(&server, &message_of(300), None);
    assert_eq!((rcpt, end.map(|e| e.0)), (250, Some(250)));
    assert!(stored(&server) < 1024, "{}", stored(&server));
    // SIZE=500 would pass 1024 with the 300 (plus trace fields) stored.
    let (rcpt, code, _) = send(&server, &message_of(500), Some(500));
    assert_eq!((rcpt, code.as_str()), (452, "4.2.2"));
    // Without SIZE= it is accepted at RCPT (under the limit) and may
    // overshoot at the end of DATA: SMTP has one reply for everyone.
    let (rcpt, _, end) = send(&server, &message_of(500), None);
    assert_eq!((rcpt, end.map(|e| e.0)), (250, Some(250)));
    assert!(stored(&server) > 1024);
    // Now at or over: 452 4.2.2 at RCPT.
    let (rcpt, code, _) = send(&server, &message_of(100), None);
    assert_eq!((rcpt, code.as_str()), (452, "4.2.2"));
    // A message larger than the whole limit can never fit: 552 5.2.2, at
    // RCPT with SIZE=, else at the end of DATA.
    set_quota(&server, &["2K"]);
    assert!(stored(&server) < 2048);
    let (rcpt, code, _) = send(&server, &message_of(3000), Some(3000));
    assert_eq!((rcpt, code.as_str()), (552, "5.2.2"));
    let (_, _, end) = send(&server, &message_of(3000), None);
    assert_eq!(end, Some((552, "5.2.2".to_string())));
    // 0 is unlimited.
    set_quota(&server, &["0"]);
    let (rcpt, _, end) = send(&server, &message_of(3000), None);
    assert_eq!((rcpt, end.map(|e| e.0)), (250, Some(250)));
}

#[test]
fn the_config_default_limits_messages_and_a_users_own_limit_wins() {
    // The `[quota]` default (the kit's `top` text comes before its first
    // section, so a table fits there).
    let server = Server::start_with_extra(Extra {
        top: "[quota]\nmessages = 2".into(),
        ..Extra::default()
    });
    for _ in 0..2 {
        let (rcpt, _, end) = send(&server, &message_of(200), None);
        assert_eq!((rcpt, end.map(|e| e.0)), (250, Some(250)));
    }
    let (rcpt, code, _) = send(&server, &message_of(200), None);
    assert_eq!((rcpt, code.as_str()), (452, "4.2.2"));
    let mut c = Imap::login(&server, "alice", "secret");
    let r = c.ok("GETQUOTAROOT INBOX");
    assert!(r.has("* QUOTAROOT INBOX \"\""), "{r:#?}");
    assert!(r.has("* QUOTA \"\" (MESSAGE 2 2)"), "{r:#?}");
    // Expunging one makes room again.
    c.ok("SELECT INBOX");
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    c.ok("EXPUNGE");
    let (rcpt, _, _) = send(&server, &message_of(200), None);
    assert_eq!(rcpt, 250);
    // A user's own limit wins over the default.
    set_quota(&server, &["0", "--messages", "0"]);
    let (rcpt, _, _) = send(&server, &message_of(200), None);
    assert_eq!(rcpt, 250);
}

#[test]
fn imap_append_and_copy_are_refused_exactly_at_the_limit_and_move_is_not() {
    let server = Server::start();
    set_quota(&server, &["1K"]);
    let mut c = Imap::login(&server, "alice", "secret");
    assert!(c.ok("CAPABILITY").has("APPENDLIMIT=1024"));
    assert!(c.ok("CAPABILITY").has("QUOTA=RES-STORAGE"));
    let append = |c: &mut Imap, n: usize| {
        let msg = message_of(n);
        let tag = c.tag();
        c.send(&format!("{tag} APPEND INBOX {{{}+}}", msg.len()));
        c.send_raw(msg.as_bytes());
        c.send("");
        c.read_until_tagged(&tag)
    };
    assert!(append(&mut c, 600).tagged.contains("OK"));
    // 600 + 425 = 1025: one octet over.
    let r = append(&mut c, 425);
    assert!(r.tagged.contains("NO [OVERQUOTA]"), "{r:#?}");
    // 600 + 424 = 1024: exactly the limit.
    assert!(append(&mut c, 424).tagged.contains("OK"));
    let r = c.ok("GETQUOTA \"\"");
    assert!(r.has("* QUOTA \"\" (STORAGE 1 1)"), "{r:#?}");
    c.ok("SELECT INBOX");
    let r = c.no("COPY 1 Archive");
    assert!(r.tagged.contains("[OVERQUOTA]"), "{r:#?}");
    // MOVE leaves the usage as it was.
    c.ok("MOVE 1 Archive");
    // The administrator sets quotas, not the client.
    let r = c.no("SETQUOTA \"\" (STORAGE 100000)");
    assert!(r.tagged.contains("[NOPERM]"), "{r:#?}");
    c.no("GETQUOTA \"other\"");
    c.bad("GETQUOTA");
}

#[test]
fn user_quota_refuses_a_bad_size_and_an_unknown_user() {
    let server = Server::start();
    let out = server.cli_output(&["user", "quota", "alice@example.test", "12X"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad size"));
    let out = server.cli_output(&["user", "quota", "nobody@example.test", "1M"], None);
    assert!(!out.status.success());
}
