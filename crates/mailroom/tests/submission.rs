//! The submission service end to end (RFC 6409, RFC 8314, RFC 4954;
//! issue 11): real clients authenticate over STARTTLS and implicit TLS and
//! send; the rules of submission hold (AUTH before MAIL, senders the user
//! owns, `<>`); bad SASL input gets its reply and the session goes on;
//! failed logins are throttled across protocols.
//!
//! Clients from scripts/test-deps: python3, swaks (with Net::SSLeay),
//! curl, msmtp. Loopback only; every wait bounded.

mod common;
mod imap_kit;
mod pop3_kit;

use std::io::Write;
use std::process::{Command, Stdio};

/// Outbound mail waits: a relay nothing listens on, retried in an hour
/// (issue 13: a failed row turns into a DSN and leaves the queue, so a
/// test that reads the queue must not let it fail).
const HOLD_OUTBOUND: &str =
    "[relay]\nsmarthost = \"127.0.0.1:9\"\nretry_initial = 3600\nretry_max = 3600";

use common::{Server, Smtp, enhanced};

const ALICE: &str = "alice@example.test";

fn run(cmd: &mut Command, stdin: &[u8]) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(stdin);
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn python(server: &Server, script: &str) -> String {
    run(
        Command::new("timeout")
            .arg("60")
            .arg("python3")
            .arg("-c")
            .arg(script)
            .arg(server.cert())
            .arg(server.submission.port().to_string())
            .arg(server.submissions.port().to_string()),
        b"",
    )
}

#[test]
fn python_smtplib_logs_in_over_starttls_and_smtp_ssl_and_sends() {
    let server = Server::start_with(HOLD_OUTBOUND, "");
    server.cli(&["alias", "add", "info@example.test", ALICE]);
    python(
        &server,
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = smtplib.SMTP('127.0.0.1', int(sys.argv[2]), timeout=20)
s.ehlo()
assert s.has_extn('auth'), s.esmtp_features   # local_networks: before TLS too
s.starttls(context=ctx)
s.ehlo()
assert s.esmtp_features['auth'].split() == ['PLAIN', 'LOGIN', 'SCRAM-SHA-256'], s.esmtp_features
s.login('alice', 'secret')
# To a remote domain: accepted (queued) once authenticated; and locally.
s.sendmail('alice@example.test', ['bob@example.test', 'carol@remote.example'],
           'Subject: submitted\r\n\r\nhello\r\n')
# An alias that delivers to alice is hers to send as; <> too.
s.sendmail('info@example.test', ['bob@example.test'], 'Subject: as alias\r\n\r\nx\r\n')
s.sendmail('', ['bob@example.test'], 'Subject: null sender\r\n\r\nx\r\n')
try:
    s.sendmail('bob@example.test', ['bob@example.test'], 'Subject: forged\r\n\r\nx\r\n')
    raise SystemExit('forged sender accepted')
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 553 and b'5.7.1' in e.smtp_error, e
s.quit()
s = smtplib.SMTP_SSL('127.0.0.1', int(sys.argv[3]), context=ctx, timeout=20)
s.login('alice@example.test', 'secret')
s.sendmail('alice@example.test', ['bob@example.test'], 'Subject: over 465\r\n\r\nx\r\n')
s.quit()
"#,
    );
    let bob = server.inbox("bob@example.test");
    assert_eq!(bob.len(), 4);
    let first = String::from_utf8_lossy(&bob[0]);
    assert!(first.contains("with ESMTPSA id"), "{first}");
    let received = first
        .split("Received: ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_default();
    assert!(
        !received.contains("alice"),
        "Received names the login: {received}"
    );
    // RFC 6409 8: Date and Message-ID added where the client left them out.
    assert!(first.contains("\r\nDate: "), "{first}");
    assert!(first.contains("\r\nMessage-ID: <"), "{first}");
    assert_eq!(
        server.queue(),
        [(ALICE.to_string(), "carol@remote.example".to_string())]
    );
}

#[test]
fn mail_before_auth_on_submission_is_530() {
    let server = Server::start();
    let mut c = Smtp::connect(server.submission).ehlo();
    let r = c.cmd("MAIL FROM:<alice@example.test>", 530);
    assert_eq!(enhanced(&r), "5.7.0");
    // Nothing changed: the session goes on.
    c.cmd("NOOP", 250);
}

#[test]
fn plaintext_auth_is_refused_without_tls_outside_local_networks() {
    let server = Server::start_with("local_networks = []", "");
    let mut c = Smtp::connect(server.submission);
    c.expect(220);
    let r = c.cmd("EHLO client.test", 250);
    assert!(r.lines.iter().any(|l| l == "STARTTLS"), "{r:?}");
    assert!(!r.lines.iter().any(|l| l.starts_with("AUTH")), "{r:?}");
    let plain = proto_common::encode_plain("", "alice", "secret");
    let r = c.cmd(&format!("AUTH PLAIN {plain}"), 530);
    assert_eq!(r.lines[0], "Must issue a STARTTLS command first");
    assert_eq!(enhanced(&r), "5.7.0");
}

#[test]
fn bad_sasl_input_gets_its_reply_and_the_session_goes_on() {
    let server = Server::start();
    let mut c = Smtp::connect(server.submission).ehlo();
    c.cmd("AUTH CRAM-MD5", 504);
    assert_eq!(enhanced(&c.cmd("AUTH PLAIN !!!notbase64", 501)), "5.5.2");
    c.cmd("AUTH PLAIN", 334);
    assert_eq!(enhanced(&c.cmd("*", 501)), "5.7.0");
    c.cmd("AUTH LOGIN", 334);
    let long = "QUFB".repeat(25_000);
    assert_eq!(enhanced(&c.cmd(&long, 500)), "5.5.6");
    let wrong = proto_common::encode_plain("", "alice", "wrong");
    assert_eq!(
        enhanced(&c.cmd(&format!("AUTH PLAIN {wrong}"), 535)),
        "5.7.8"
    );
    let good = proto_common::encode_plain("", "alice", "secret");
    assert_eq!(
        enhanced(&c.cmd(&format!("AUTH PLAIN {good}"), 235)),
        "2.7.0"
    );
    assert_eq!(
        enhanced(&c.cmd(&format!("AUTH PLAIN {good}"), 503)),
        "5.5.1"
    );
    c.cmd("MAIL FROM:<alice@example.test> AUTH=<>", 250);
    c.cmd("RCPT TO:<bob@example.test>", 250);
}

#[test]
fn swaks_auth_plain_and_login_over_tls() {
    let server = Server::start();
    for (mech, port, tls) in [
        ("PLAIN", server.submission.port(), "--tls"),
        ("LOGIN", server.submissions.port(), "--tlsc"),
    ] {
        let out = run(
            Command::new("timeout")
                .args(["60", "swaks", "--server", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .args([tls, "--tls-verify", "--tls-ca-path"])
                .arg(server.cert())
                .args(["--auth", mech, "--auth-user", "alice", "--auth-password"])
                .args(["secret", "--from", ALICE, "--to", "bob@example.test"]),
            b"",
        );
        assert!(out.contains("235 2.7.0"), "{out}");
    }
    assert_eq!(server.inbox("bob@example.test").len(), 2);
}

#[test]
fn curl_and_msmtp_send_with_tls_and_auth() {
    let server = Server::start();
    let msg = b"Subject: from a client\r\n\r\nbody\r\n";
    run(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "--ssl-reqd", "--cacert"])
            .arg(server.cert())
            .arg(format!("smtp://127.0.0.1:{}", server.submission.port()))
            .args(["-u", "alice:secret", "--mail-from", ALICE])
            .args(["--mail-rcpt", "bob@example.test", "-T", "-"]),
        msg,
    );
    run(
        Command::new("timeout")
            .args(["60", "msmtp", "--host=127.0.0.1"])
            .arg(format!("--port={}", server.submission.port()))
            .args(["--tls=on", "--tls-starttls=on"])
            .arg(format!("--tls-trust-file={}", server.cert().display()))
            .args(["--auth=on", "--user=alice", "--passwordeval=echo secret"])
            .arg(format!("--from={ALICE}"))
            .arg("bob@example.test"),
        msg,
    );
    assert_eq!(server.inbox("bob@example.test").len(), 2);
}

/// A counter from the admin port's /metrics.
fn metric(server: &Server, name: &str) -> u64 {
    let out = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://{}/metrics", server.admin)),
        b"",
    );
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

#[test]
fn fifty_wrong_passwords_are_throttled_and_another_address_gets_in_at_once() {
    // Short delays and an early lockout keep the test quick; the delays
    // asserted are the ones the server records, not wall-clock time.
    let server = common::Server::start_with_extra(common::Extra {
        auth: "argon2_memory_kib = 64\nargon2_iterations = 1\nmax_delay = 1\nlockout_failures = 10"
            .into(),
        ..common::Extra::default()
    });
    let (mut invalid, mut refused) = (0, 0);
    let mut c = imap_kit::Imap::connect(server.imap);
    for i in 0..50 {
        // Over SMTP too: one state for every protocol.
        if i == 25 {
            let mut smtp = Smtp::connect(server.submission).ehlo();
            let wrong = proto_common::encode_plain("", "alice", "wrong");
            let r = smtp.cmd(&format!("AUTH PLAIN {wrong}"), 454);
            assert_eq!(enhanced(&r), "4.7.0");
            // The session stays open.
            smtp.cmd("NOOP", 250);
            refused += 1;
            continue;
        }
        let r = c.cmd("LOGIN alice wrong");
        assert_eq!(r.status(), "NO", "{r:?}");
        if r.tagged.contains("[AUTHENTICATIONFAILED]") {
            invalid += 1;
        } else if r.tagged.contains("[UNAVAILABLE]") {
            refused += 1;
        } else {
            panic!("unexpected {r:?}");
        }
    }
    assert_eq!((invalid, refused), (10, 40));
    // Even the right password is refused from the locked-out address.
    assert_eq!(c.cmd("LOGIN alice secret").status(), "NO");
    // 3 failures answered at once, then 1 s each (max_delay = 1).
    assert_eq!(
        metric(&server, "mailroom_login_delay_milliseconds_total"),
        7000
    );
    assert_eq!(metric(&server, "mailroom_logins_throttled_total"), 41);
    // Another address logs in at once: no delay recorded, not refused.
    let stream = common::socket_bound_to([127, 0, 0, 2], server.imap);
    let mut good = imap_kit::Imap::from_stream(stream);
    assert_eq!(good.cmd("LOGIN alice secret").status(), "OK");
    assert_eq!(
        metric(&server, "mailroom_login_delay_milliseconds_total"),
        7000
    );
    assert!(server.log().contains("delay_ms=1000"), "{}", server.log());
}

#[test]
fn scramp_authenticates_with_scram_sha_256_in_all_three_protocols() {
    let server = Server::start();
    let out = run(
        Command::new("timeout")
            .args(["60", "python3", "-c"])
            .arg(
                r#"
import base64, imaplib, poplib, smtplib, socket, ssl, sys
from scramp import ScramClient
ca, smtp_port, imap_port, pop3_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
b64 = lambda b: base64.b64encode(b).decode()

# SMTP over STARTTLS.
s = smtplib.SMTP('127.0.0.1', smtp_port, timeout=20)
s.starttls(context=ctx)
s.ehlo()
assert 'SCRAM-SHA-256' in s.esmtp_features['auth'], s.esmtp_features
code, _ = s.docmd('AUTH', 'SCRAM-SHA-256')
assert code == 334, code
c = ScramClient(['SCRAM-SHA-256'], 'alice', 'secret')
code, text = s.docmd(b64(c.get_client_first().encode()))
assert code == 334, (code, text)
c.set_server_first(base64.b64decode(text).decode())
code, text = s.docmd(b64(c.get_client_final().encode()))
assert code == 334, (code, text)
c.set_server_final(base64.b64decode(text).decode())
code, text = s.docmd('')
assert code == 235, (code, text)
s.sendmail('alice@example.test', ['bob@example.test', 'alice@example.test'], 'Subject: scram\r\n\r\nx\r\n')
s.quit()

# A wrong password fails like any other.
s = smtplib.SMTP('127.0.0.1', smtp_port, timeout=20)
s.starttls(context=ctx)
s.ehlo()
s.docmd('AUTH', 'SCRAM-SHA-256')
c = ScramClient(['SCRAM-SHA-256'], 'alice', 'wrong')
code, text = s.docmd(b64(c.get_client_first().encode()))
c.set_server_first(base64.b64decode(text).decode())
code, text = s.docmd(b64(c.get_client_final().encode()))
assert code == 535, (code, text)
s.quit()

# IMAP over IMAPS with imaplib's authenticate().
m = imaplib.IMAP4_SSL('127.0.0.1', imap_port, ssl_context=ctx, timeout=20)
assert 'AUTH=SCRAM-SHA-256' in m.capabilities, m.capabilities
c = ScramClient(['SCRAM-SHA-256'], 'alice', 'secret')
steps = iter([lambda _: c.get_client_first().encode(),
              lambda ch: (c.set_server_first(ch.decode()), c.get_client_final().encode())[1],
              lambda ch: (c.set_server_final(ch.decode()), b'')[1]])
typ, data = m.authenticate('SCRAM-SHA-256', lambda ch: next(steps)(ch))
assert typ == 'OK', (typ, data)
m.select('INBOX')
m.logout()

# POP3 over STLS, raw AUTH.
p = poplib.POP3('127.0.0.1', pop3_port, timeout=20)
p.stls(context=ctx)
assert 'SCRAM-SHA-256' in p.capa()['SASL']
c = ScramClient(['SCRAM-SHA-256'], 'alice', 'secret')
def pop(line):
    p._putcmd(line)
    return p._getresp()
r = pop('AUTH SCRAM-SHA-256')
assert r.startswith(b'+'), r
r = pop(b64(c.get_client_first().encode()))
c.set_server_first(base64.b64decode(r[2:]).decode())
r = pop(b64(c.get_client_final().encode()))
c.set_server_final(base64.b64decode(r[2:]).decode())
r = pop('')
assert r == b'+OK Logged in.', r
assert p.stat()[0] == 1
p.quit()
print('scram ok')
"#,
            )
            .arg(server.cert())
            .arg(server.submission.port().to_string())
            .arg(server.imaps.port().to_string())
            .arg(server.pop3.port().to_string()),
        b"",
    );
    assert!(out.contains("scram ok"), "{out}");
    // No plaintext password crossed: the server logged in by SCRAM.
    assert_eq!(server.inbox("bob@example.test").len(), 1);
}

#[test]
fn msmtp_authenticates_with_scram_sha_256() {
    let server = Server::start();
    run(
        Command::new("timeout")
            .args(["60", "msmtp", "--host=127.0.0.1"])
            .arg(format!("--port={}", server.submission.port()))
            .args(["--tls=on", "--tls-starttls=on"])
            .arg(format!("--tls-trust-file={}", server.cert().display()))
            .args([
                "--auth=scram-sha-256",
                "--user=alice",
                "--passwordeval=echo secret",
            ])
            .arg(format!("--from={ALICE}"))
            .arg("bob@example.test"),
        b"Subject: msmtp scram\r\n\r\nbody\r\n",
    );
    assert_eq!(server.inbox("bob@example.test").len(), 1);
}

#[test]
fn imap_and_pop3_answer_bad_sasl_input_and_go_on() {
    let server = Server::start();
    let long = "QUFB".repeat(25_000);
    // IMAP: a 100 KB response is BAD, garbage is BAD, * cancels (BAD).
    let mut c = imap_kit::Imap::connect(server.imap);
    c.send("a AUTHENTICATE PLAIN");
    assert!(c.line().starts_with("+ "));
    c.send(&long);
    assert_eq!(c.line(), "a BAD SASL response too long");
    c.send("b AUTHENTICATE PLAIN");
    assert!(c.line().starts_with("+ "));
    c.send("!!!");
    assert!(c.line().starts_with("b BAD"));
    c.send("c AUTHENTICATE LOGIN");
    assert!(c.line().starts_with("+ "));
    c.send("*");
    assert_eq!(c.line(), "c BAD AUTHENTICATE cancelled");
    assert_eq!(c.cmd("LOGIN alice secret").status(), "OK");
    // A second AUTHENTICATE is refused by the state.
    assert_eq!(c.cmd("AUTHENTICATE PLAIN").status(), "BAD");

    // POP3: the same, with -ERR.
    let mut p = pop3_kit::Pop3::connect(server.pop3);
    p.send("AUTH PLAIN");
    assert!(p.line().starts_with("+ "));
    p.send(&long);
    assert_eq!(p.line(), "-ERR SASL response too long");
    p.send("AUTH PLAIN");
    assert!(p.line().starts_with("+ "));
    p.send("!!!");
    assert!(p.line().starts_with("-ERR"));
    p.send("AUTH LOGIN");
    assert!(p.line().starts_with("+ "));
    p.send("*");
    assert_eq!(p.line(), "-ERR Authentication cancelled");
    let plain = proto_common::encode_plain("", "alice", "secret");
    p.send(&format!("AUTH PLAIN {plain}"));
    assert_eq!(p.line(), "+OK Logged in.");
    p.send("AUTH PLAIN");
    assert_eq!(p.line(), "-ERR Already logged in");
}

#[test]
fn submission_limits_per_user_are_450_471() {
    let server = Server::start_with_extra(common::Extra {
        top: "[submission]\nmax_messages_per_hour = 2\nmax_recipients = 2".into(),
        ..common::Extra::default()
    });
    let mut c = Smtp::connect(server.submission).ehlo();
    let good = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {good}"), 235);
    c.cmd("MAIL FROM:<alice@example.test>", 250);
    c.cmd("RCPT TO:<bob@example.test>", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    assert_eq!(
        enhanced(&c.cmd("RCPT TO:<postmaster@example.test>", 450)),
        "4.7.1"
    );
    c.cmd("RSET", 250);
    for _ in 0..2 {
        let r = c.send_mail(ALICE, &["bob@example.test"], b"Subject: n\r\n\r\nx\r\n");
        assert_eq!(r.code, 250, "{r:?}");
    }
    assert_eq!(
        enhanced(&c.cmd("MAIL FROM:<alice@example.test>", 450)),
        "4.7.1"
    );
}
