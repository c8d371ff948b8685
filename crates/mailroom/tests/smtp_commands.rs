//! Every SMTP command's sequence and syntax rules, each reply code with its
//! enhanced status code, over real sockets against the real binary.

mod common;
use common::{Server, enhanced};

/// Outbound mail waits: a relay nothing listens on, retried in an hour
/// (issue 13: a failed row turns into a DSN and leaves the queue, so a
/// test that reads the queue must not let it fail).
const HOLD_OUTBOUND: &str =
    "[relay]\nsmarthost = \"127.0.0.1:9\"\nretry_initial = 3600\nretry_max = 3600";

#[test]
fn ehlo_advertises_extensions() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    let r = c.cmd("EHLO client.example", 250);
    for kw in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
        "HELP",
        "DSN",
        "SEND",
        "SOML",
        "SAML",
        "STARTTLS",
    ] {
        assert!(r.lines.iter().any(|l| l == kw), "{kw} missing from {r:?}");
    }
    // The MTA listener does not offer AUTH (smtp.mta_auth = false).
    assert!(!r.lines.iter().any(|l| l.starts_with("AUTH")));
}

#[test]
fn hello_typo_is_500() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    let r = c.cmd("HELLO client.example", 500);
    assert_eq!(enhanced(&r), "5.5.2");
    c.cmd("HELO client.example", 250);
}

#[test]
fn mail_before_helo_is_503() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    let r = c.cmd("MAIL FROM:<a@example.test>", 503);
    assert_eq!(enhanced(&r), "5.5.1");
}

#[test]
fn rcpt_before_mail_is_503() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    let r = c.cmd("RCPT TO:<alice@example.test>", 503);
    assert_eq!(enhanced(&r), "5.5.1");
}

#[test]
fn data_without_recipients_is_503() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    assert_eq!(enhanced(&c.cmd("DATA", 503)), "5.5.1");
    c.cmd("MAIL FROM:<a@example.test>", 250);
    c.cmd("RCPT TO:<nobody@example.test>", 550);
    assert_eq!(enhanced(&c.cmd("DATA", 503)), "5.5.1");
}

#[test]
fn nested_mail_is_503() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<a@example.test>", 250);
    assert_eq!(enhanced(&c.cmd("MAIL FROM:<b@example.test>", 503)), "5.5.1");
}

#[test]
fn verbs_in_any_case_and_space_after_colon_are_accepted() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    c.cmd("ehlo client.example", 250);
    c.cmd("MAIL From: <someone@remote.test>", 250);
    c.cmd("rcpt to: <alice@example.test>", 250);
    c.cmd("data", 354);
    c.send_raw(b"Subject: case\r\n\r\nok\r\n.\r\n");
    c.expect(250);
    assert_eq!(server.inbox("alice@example.test").len(), 1);
}

#[test]
fn helo_with_address_literal_is_accepted() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    c.cmd("HELO [192.0.2.1]", 250);
}

#[test]
fn bare_lf_command_lines_are_accepted() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    c.send_raw(b"EHLO client.example\n");
    c.expect(250);
    c.send_raw(b"NOOP\n");
    c.expect(250);
}

#[test]
fn unknown_mail_parameter_is_555() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    let r = c.cmd("MAIL FROM:<a@example.test> FROBNICATE=1", 555);
    assert_eq!(enhanced(&r), "5.5.4");
    c.cmd("MAIL FROM:<a@example.test> SIZE=100 BODY=8BITMIME", 250);
    let r = c.cmd("RCPT TO:<alice@example.test> COLOR=blue", 555);
    assert_eq!(enhanced(&r), "5.5.4");
}

#[test]
fn bad_sender_address_is_501_517() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    assert_eq!(enhanced(&c.cmd("MAIL FROM:<a@>", 501)), "5.1.7");
    assert_eq!(
        enhanced(&c.cmd("MAIL FROM:<a b@example.test>", 501)),
        "5.1.7"
    );
    assert_eq!(enhanced(&c.cmd("MAIL", 501)), "5.5.2");
}

#[test]
fn bad_recipient_address_is_501_513() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<a@example.test>", 250);
    assert_eq!(enhanced(&c.cmd("RCPT TO:<@>", 501)), "5.1.3");
    assert_eq!(enhanced(&c.cmd("RCPT TO:<>", 501)), "5.1.3");
}

#[test]
fn unknown_user_is_550_511() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<a@remote.test>", 250);
    assert_eq!(
        enhanced(&c.cmd("RCPT TO:<nobody@example.test>", 550)),
        "5.1.1"
    );
}

#[test]
fn relay_to_remote_domain_is_550_571_even_from_loopback() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<alice@example.test>", 250);
    assert_eq!(
        enhanced(&c.cmd("RCPT TO:<someone@remote.test>", 550)),
        "5.7.1"
    );
    assert!(server.queue().is_empty());
}

#[test]
fn relay_networks_may_relay_and_remote_local_part_keeps_case() {
    let server = Server::start_with(HOLD_OUTBOUND, "relay_networks = [\"127.0.0.0/8\"]");
    let mut c = server.connect().ehlo();
    let r = c.send_mail(
        "alice@example.test",
        &["John.Doe@Remote.test"],
        b"Subject: out\r\n\r\nbye\r\n",
    );
    assert_eq!(r.code, 250);
    assert_eq!(
        server.queue(),
        vec![(
            "alice@example.test".to_string(),
            "John.Doe@remote.test".to_string()
        )]
    );
}

#[test]
fn unqualified_sender_from_loopback_is_qualified_elsewhere_refused() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.send_mail("frol", &["alice@example.test"], b"Subject: q\r\n\r\nx\r\n");
    let msg = String::from_utf8(server.inbox("alice@example.test")[0].clone()).unwrap();
    assert!(msg.starts_with("Return-Path: <frol@example.test>\r\n"));

    let strict = Server::start_with("local_networks = []", "");
    let mut c = strict.connect().ehlo();
    assert_eq!(enhanced(&c.cmd("MAIL FROM:<frol>", 501)), "5.1.7");
}

#[test]
fn unqualified_rcpt_means_primary_domain() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    let r = c.send_mail("a@remote.test", &["alice"], b"Subject: bare\r\n\r\nx\r\n");
    assert_eq!(r.code, 250);
    assert_eq!(server.inbox("alice@example.test").len(), 1);
}

#[test]
fn postmaster_exists_in_every_domain() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<a@remote.test>", 250);
    c.cmd("RCPT TO:<Postmaster>", 250);
    c.cmd("RCPT TO:<postmaster@other.test>", 250);
    c.cmd("RCPT TO:<POSTMASTER@example.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: pm\r\n\r\nx\r\n.\r\n");
    c.expect(250);
    // Three spellings, one account, one copy.
    assert_eq!(server.inbox("postmaster@example.test").len(), 1);
}

#[test]
fn too_many_recipients_is_452() {
    let server = Server::start_with("", "max_recipients = 3");
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<a@remote.test>", 250);
    for _ in 0..3 {
        c.cmd("RCPT TO:<alice@example.test>", 250);
    }
    assert_eq!(enhanced(&c.cmd("RCPT TO:<bob@example.test>", 452)), "4.5.3");
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: many\r\n\r\nx\r\n.\r\n");
    c.expect(250);
    assert_eq!(server.inbox("alice@example.test").len(), 1);
    assert!(server.inbox("bob@example.test").is_empty());
}

#[test]
fn rset_clears_transaction_and_is_always_250() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    c.cmd("RSET", 250);
    c.cmd("EHLO client.example", 250);
    c.cmd("MAIL FROM:<a@remote.test>", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    assert_eq!(enhanced(&c.cmd("RSET", 250)), "2.0.0");
    c.cmd("DATA", 503);
    c.cmd("MAIL FROM:<b@remote.test>", 250);
}

#[test]
fn noop_is_250_and_touches_nothing() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<a@remote.test>", 250);
    c.cmd("NOOP", 250);
    c.cmd("NOOP with an argument", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
}

#[test]
fn quit_is_221_and_closes() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    assert_eq!(enhanced(&c.cmd("QUIT", 221)), "2.0.0");
    assert!(c.closed());
}

#[test]
fn auth_on_the_mta_listener_is_503_unless_mta_auth() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    assert_eq!(enhanced(&c.cmd("AUTH PLAIN", 503)), "5.5.1");
    // STARTTLS takes no argument (RFC 3207 4).
    assert_eq!(enhanced(&c.cmd("STARTTLS now", 501)), "5.5.2");
}

#[test]
fn smtputf8_addresses_need_the_parameter() {
    let server = Server::start();
    server.cli(&["alias", "add", "jösé@example.test", "alice@example.test"]);
    let mut c = server.connect().ehlo();
    assert_eq!(
        enhanced(&c.cmd("MAIL FROM:<jörg@remote.test>", 553)),
        "5.6.7"
    );
    c.cmd("MAIL FROM:<jörg@remote.test> SMTPUTF8", 250);
    c.cmd("RCPT TO:<jösé@example.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw("Subject: grüße\r\n\r\nüñí\r\n.\r\n".as_bytes());
    c.expect(250);
    let msg = server.inbox("alice@example.test").remove(0);
    assert!(
        String::from_utf8(msg)
            .unwrap()
            .ends_with("Subject: grüße\r\n\r\nüñí\r\n")
    );
}

#[test]
fn helo_with_control_characters_is_501_and_never_reaches_received() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect(220);
    c.send_raw(b"EHLO evil.test\rX-Injected: yes\r\n");
    let r = c.expect(501);
    assert_eq!(enhanced(&r), "5.5.2");
    c.send_raw(b"EHLO a\0b\r\n");
    let r = c.expect(501);
    assert_eq!(enhanced(&r), "5.5.2");
    assert!(r.lines.iter().all(|l| !l.contains('\0')), "{r:?}");
    // The session is still healthy and delivers with a clean name.
    c.cmd("EHLO client.example", 250);
    c.send_mail(
        "a@remote.test",
        &["alice@example.test"],
        b"Subject: x\r\n\r\nbody\r\n",
    );
    let inbox = server.inbox("alice@example.test");
    let stored = String::from_utf8_lossy(inbox.last().expect("delivered"));
    assert!(stored.contains("from client.example "), "{stored}");
    assert!(!stored.contains("X-Injected"), "{stored}");
}

#[test]
fn refused_recipients_are_logged_with_client_and_address() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<a@remote.test>", 250);
    c.cmd("RCPT TO:<nobody@example.test>", 550);
    c.cmd("RCPT TO:<\"odd\\\\name\"@remote.test>", 550);
    c.cmd("QUIT", 221);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = server.log();
        if log.matches("recipient refused").count() >= 2 || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("recipient refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{log}");
    assert!(refused[0].contains("client=127.0.0.1"), "{log}");
    assert!(refused[0].contains("to=nobody@example.test"), "{log}");
    assert!(refused[0].contains("user unknown"), "{log}");
    // The backslash the client sent is escaped, so the line reads back as sent.
    assert!(
        refused[1].contains(r#"to="odd\\\\name"@remote.test"#),
        "{log}"
    );
    assert!(refused[1].contains("relay access denied"), "{log}");
}
