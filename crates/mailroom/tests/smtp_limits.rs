//! Bad input and limits (SPEC 8): each gets its protocol answer and the
//! server keeps serving everyone else.

mod common;
use std::io::Write;
use std::time::Duration;

use common::{Server, Smtp, enhanced};

const MSG: &[u8] = b"Subject: ok\r\n\r\nfine\r\n";

#[test]
fn line_of_10000_octets_is_500_and_session_continues() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.send(&format!("NOOP {}", "x".repeat(10_000)));
    assert_eq!(enhanced(&c.expect(500)), "5.5.2");
    // A HELO of 600 octets passes the buffer but not RFC 5321's 512 limit.
    c.send(&format!("HELO {}", "h".repeat(600)));
    assert_eq!(enhanced(&c.expect(500)), "5.5.2");
    assert_eq!(
        c.send_mail("x@remote.test", &["alice@example.test"], MSG)
            .code,
        250
    );
}

#[test]
fn nul_bytes_and_invalid_utf8_get_errors() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.send_raw(b"MAIL FROM:<a\0b@remote.test>\r\n");
    let r = c.reply();
    assert!(r.code == 501 || r.code == 500, "{r:?}");
    c.send_raw(b"\xff\xfe\xfd\r\n");
    assert_eq!(c.reply().code, 500);
    c.send_raw(b"MAIL FROM:<\xc3\x28@remote.test>\r\n");
    assert_eq!(c.reply().code, 501);
    c.send_raw(b"\0\0\0\r\n");
    assert_eq!(c.reply().code, 500);
    assert_eq!(
        c.send_mail("x@remote.test", &["alice@example.test"], MSG)
            .code,
        250
    );
}

#[test]
fn client_stopping_mid_data_stores_nothing() {
    let server = Server::start();
    {
        let mut c = server.connect().ehlo();
        c.cmd("MAIL FROM:<x@remote.test>", 250);
        c.cmd("RCPT TO:<alice@example.test>", 250);
        c.cmd("DATA", 354);
        c.send_raw(b"Subject: half\r\n\r\nthis never ends");
    } // dropped: connection closed mid-DATA
    std::thread::sleep(Duration::from_millis(200));
    let mut c = server.connect().ehlo();
    assert_eq!(
        c.send_mail("x@remote.test", &["bob@example.test"], MSG)
            .code,
        250
    );
    assert!(server.inbox("alice@example.test").is_empty());
}

#[test]
fn client_stalling_in_data_times_out_with_421_and_stores_nothing() {
    let server = Server::start_with("", "data_timeout = 1");
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<x@remote.test>", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: stalled\r\n\r\nand then nothing");
    assert_eq!(enhanced(&c.expect(421)), "4.4.2");
    assert!(c.closed());
    assert!(server.inbox("alice@example.test").is_empty());
}

#[test]
fn configured_line_limit_applies() {
    let server = Server::start_with("", "max_line_length = 600");
    let mut c = server.connect().ehlo();
    let long_param = format!("MAIL FROM:<x@remote.test> ENVID={}", "e".repeat(580));
    assert_eq!(enhanced(&c.cmd(&long_param, 500)), "5.5.2");
    c.cmd("MAIL FROM:<x@remote.test>", 250);
}

#[test]
fn silent_client_times_out_with_421() {
    let server = Server::start_with("", "command_timeout = 1");
    let mut c = server.connect();
    c.expect(220);
    let r = c.expect(421);
    assert_eq!(enhanced(&r), "4.4.2");
    assert!(c.closed());
}

#[test]
fn too_many_errors_is_421_and_close() {
    let server = Server::start_with("", "max_errors = 5");
    let mut c = server.connect().ehlo();
    for _ in 0..4 {
        c.cmd("BOGUS", 500);
    }
    c.send("BOGUS");
    c.expect(500);
    assert_eq!(enhanced(&c.expect(421)), "4.7.0");
    assert!(c.closed());
}

#[test]
fn flood_of_200_connections_is_answered_and_others_are_served() {
    // 127.0.0.1 is not local here (local_networks are exempt from the
    // per-address limit); 127.0.0.2 is.
    let server = Server::start_with("local_networks = [\"127.0.0.2/32\"]", "");
    // Let the start-up probe's connection close so it is not counted.
    std::thread::sleep(Duration::from_millis(300));
    let mut flood = Vec::new();
    let mut refused = 0;
    let mut greeted = 0;
    for _ in 0..200 {
        let mut c = Smtp::connect(server.smtp);
        // Each connection gets its protocol answer: a greeting or 421.
        match c.reply().code {
            220 => greeted += 1,
            421 => refused += 1,
            other => panic!("unexpected {other}"),
        }
        flood.push(c);
        // A well-behaved client on another address is served throughout.
        if flood.len() % 50 == 0 {
            let mut good = Smtp::connect_from([127, 0, 0, 2], server.smtp).ehlo();
            assert_eq!(
                good.send_mail("x@remote.test", &["alice@example.test"], MSG)
                    .code,
                250
            );
        }
    }
    // Per-address limit (20 by default) applies to the flood.
    assert_eq!(greeted, 20);
    assert_eq!(refused, 180);
    for c in &mut flood {
        let _ = c.stream.write_all(b"QUIT\r\n");
    }
    drop(flood);
    let mut good = Smtp::connect_from([127, 0, 0, 2], server.smtp).ehlo();
    assert_eq!(
        good.send_mail("x@remote.test", &["alice@example.test"], MSG)
            .code,
        250
    );
    assert_eq!(server.inbox("alice@example.test").len(), 5);
}

#[test]
fn total_connection_limit_is_421() {
    let server = Server::start_with("", "max_connections = 3");
    let held: Vec<Smtp> = (0..3)
        .map(|_| {
            let mut c = Smtp::connect(server.smtp);
            c.expect(220);
            c
        })
        .collect();
    let mut extra = Smtp::connect(server.smtp);
    assert_eq!(enhanced(&extra.expect(421)), "4.7.0");
    drop(held);
}

#[test]
fn sigterm_answers_421_to_idle_sessions_and_exits_0() {
    let mut server = Server::start();
    let mut idle = server.connect().ehlo();
    let mut busy = server.connect().ehlo();
    busy.cmd("MAIL FROM:<x@remote.test>", 250);
    busy.cmd("RCPT TO:<alice@example.test>", 250);
    busy.cmd("DATA", 354);
    busy.send_raw(b"Subject: in flight\r\n\r\nstill ");
    let stopper = std::thread::spawn(move || {
        let status = server.terminate();
        (server, status)
    });
    // The idle session is told at once.
    assert_eq!(enhanced(&idle.expect(421)), "4.3.2");
    // The transaction in flight finishes and is acknowledged...
    std::thread::sleep(Duration::from_millis(300));
    busy.send_raw(b"here\r\n.\r\n");
    busy.expect(250);
    // ...then the session is closed with 421 as well.
    busy.expect(421);
    let (server, status) = stopper.join().unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}\n{}",
        server.log()
    );
    assert_eq!(server.inbox("alice@example.test").len(), 1);
}
