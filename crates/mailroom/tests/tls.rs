//! TLS end to end (SPEC 5; issue 8): real clients over STARTTLS, STLS and
//! the implicit-TLS ports, trusting the self-signed certificate the server
//! makes on first start; commands pipelined behind STARTTLS are never run
//! (CVE-2011-0411); bad handshakes end cleanly; SIGHUP swaps the
//! certificate for new connections while old ones go on.
//!
//! Clients come from scripts/test-deps: python3, openssl, swaks (with
//! Net::SSLeay), curl, getmail6. Everything talks over loopback, and every
//! wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Extra, Server, WAIT, write_private};

const ALICE: &str = "alice@example.test";
/// Bound for one whole client run.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs a client to completion within `limit` with `stdin`; returns its
/// output and whether it succeeded.
fn run_status(cmd: &mut Command, stdin: &[u8], limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(stdin);
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let mut e = String::new();
        let _ = err.read_to_string(&mut e);
        text + &e
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} timed out:\n{}", reader.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), reader.join().unwrap_or_default())
}

/// Runs a client; panics unless it succeeds.
fn run(cmd: &mut Command) -> String {
    let (ok, text) = run_status(cmd, b"", LIMIT);
    assert!(ok, "{cmd:?} failed:\n{text}");
    text
}

/// Python helpers every script below starts with: the CA is the server's
/// own certificate, `PORTS` come from argv.
const PY_PRELUDE: &str = r#"
import socket, ssl, sys, hashlib
CA = sys.argv[1]
PORTS = [int(p) for p in sys.argv[2:]]
CTX = ssl.create_default_context(cafile=CA)

def lines_until(sock, done):
    """Reads CRLF lines until done(line) is true; returns them all."""
    buf, out = b'', []
    while True:
        while b'\r\n' not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit('closed early after %r' % (out,))
            buf += chunk
        line, buf = buf.split(b'\r\n', 1)
        out.append(line)
        if done(line):
            if buf:
                raise SystemExit('unexpected bytes after %r: %r' % (line, buf))
            return out

def smtp_reply(sock):
    return lines_until(sock, lambda l: l[3:4] == b' ')
"#;

fn python(server: &Server, script: &str, ports: &[u16]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(format!("{PY_PRELUDE}\n{script}"))
        .arg(server.cert());
    for p in ports {
        cmd.arg(p.to_string());
    }
    run(&mut cmd)
}

fn received_of_last(server: &Server, account: &str) -> String {
    let inbox = server.inbox(account);
    let last = inbox.last().expect("a message");
    String::from_utf8_lossy(last).into_owned()
}

#[test]
fn python_smtplib_starttls_and_smtp_ssl_deliver_with_esmtps_received() {
    let server = Server::start();
    python(
        &server,
        r#"
import smtplib
s = smtplib.SMTP('127.0.0.1', PORTS[0], timeout=20)
s.ehlo()
assert s.has_extn('starttls'), s.esmtp_features
s.starttls(context=CTX)
s.ehlo()
assert not s.has_extn('starttls'), s.esmtp_features
s.sendmail('bob@example.org', ['alice@example.test'], 'Subject: starttls\r\n\r\nover STARTTLS\r\n')
s.quit()
s = smtplib.SMTP_SSL('127.0.0.1', PORTS[1], context=CTX, timeout=20)
s.ehlo()
assert not s.has_extn('starttls'), s.esmtp_features
# submissions is a submission port: AUTH before MAIL (RFC 6409).
s.login('bob', 'secret')
s.sendmail('bob@example.test', ['alice@example.test'], 'Subject: implicit\r\n\r\nover TLS\r\n')
s.quit()
"#,
        &[server.smtp.port(), server.submissions.port()],
    );
    let inbox = server.inbox(ALICE);
    assert_eq!(inbox.len(), 2);
    for m in &inbox {
        let text = String::from_utf8_lossy(m);
        assert!(
            text.contains("with ESMTPS id") || text.contains("with ESMTPSA id"),
            "{text}"
        );
        assert!(text.contains("(using TLSv1.3 with cipher TLS_"), "{text}");
        assert!(text.contains("(256/256 bits)") || text.contains("(128/128 bits)"));
    }
}

#[test]
fn smtputf8_over_tls_is_received_with_utf8smtps() {
    let server = Server::start();
    python(
        &server,
        r#"
import smtplib
s = smtplib.SMTP('127.0.0.1', PORTS[0], timeout=20)
s.starttls(context=CTX)
s.ehlo()
s.sendmail('jörg@example.org', ['alice@example.test'], 'Subject: utf8\r\n\r\nhi\r\n'.encode(), mail_options=['SMTPUTF8'])
s.quit()
"#,
        &[server.smtp.port()],
    );
    assert!(received_of_last(&server, ALICE).contains("with UTF8SMTPS id"));
}

#[test]
fn python_imaplib_starttls_and_imap4_ssl_log_in_and_read() {
    let server = Server::start_with("local_networks = [\"127.0.0.2/32\"]", "");
    common::Smtp::connect_from([127, 0, 0, 2], server.smtp)
        .ehlo()
        .send_mail("bob@example.org", &[ALICE], b"Subject: one\r\n\r\nbody\r\n");
    python(
        &server,
        r#"
import imaplib
m = imaplib.IMAP4('127.0.0.1', PORTS[0], timeout=20)
caps = m.capabilities
assert 'STARTTLS' in caps and 'LOGINDISABLED' in caps, caps
try:
    m.login('alice', 'secret')
    raise SystemExit('plaintext login accepted from a remote address')
except imaplib.IMAP4.error as e:
    assert 'PRIVACYREQUIRED' in str(e), e
m.starttls(ssl_context=CTX)
caps = m.capabilities
assert 'STARTTLS' not in caps and 'LOGINDISABLED' not in caps, caps
assert 'AUTH=PLAIN' in caps, caps
m.login('alice', 'secret')
typ, data = m.select('INBOX')
assert data == [b'1'], data
m.logout()
m = imaplib.IMAP4_SSL('127.0.0.1', PORTS[1], ssl_context=CTX, timeout=20)
assert 'STARTTLS' not in m.capabilities, m.capabilities
m.login('alice', 'secret')
m.select('INBOX')
typ, data = m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
assert b'Subject: one' in data[0][1], data
m.logout()
"#,
        &[server.imap.port(), server.imaps.port()],
    );
}

#[test]
fn python_poplib_stls_and_pop3_ssl_log_in_and_retrieve() {
    let server = Server::start_with("local_networks = [\"127.0.0.2/32\"]", "");
    common::Smtp::connect_from([127, 0, 0, 2], server.smtp)
        .ehlo()
        .send_mail("bob@example.org", &[ALICE], b"Subject: one\r\n\r\nbody\r\n");
    python(
        &server,
        r#"
import poplib
p = poplib.POP3('127.0.0.1', PORTS[0], timeout=20)
caps = p.capa()
assert 'STLS' in caps and 'USER' not in caps, caps
try:
    p.user('alice')
    raise SystemExit('plaintext USER accepted from a remote address')
except poplib.error_proto:
    pass
p.stls(context=CTX)
caps = p.capa()
assert 'STLS' not in caps and 'USER' in caps, caps
p.user('alice')
p.pass_('secret')
assert p.stat()[0] == 1
p.quit()
p = poplib.POP3_SSL('127.0.0.1', PORTS[1], context=CTX, timeout=20)
assert 'STLS' not in p.capa()
p.user('alice')
p.pass_('secret')
resp, lines, _ = p.retr(1)
assert b'Subject: one' in lines, lines
p.quit()
"#,
        &[server.pop3.port(), server.pop3s.port()],
    );
}

/// `openssl s_client` against one port; returns its output.
fn s_client(server: &Server, port: u16, extra: &[&str], stdin: &[u8]) -> String {
    let (ok, text) = run_status(
        Command::new("openssl")
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-CAfile")
            .arg(server.cert())
            .args(["-verify_return_error", "-verify_ip", "127.0.0.1"])
            // With input, read until the server closes after QUIT/LOGOUT.
            .args(if stdin.is_empty() {
                &[][..]
            } else {
                &["-ign_eof"][..]
            })
            .args(extra),
        stdin,
        LIMIT,
    );
    assert!(ok, "s_client on {port} {extra:?} failed:\n{text}");
    text
}

#[test]
fn openssl_s_client_verifies_our_certificate_on_every_port() {
    let server = Server::start();
    let cases: [(u16, &[&str], &str, &[u8]); 6] = [
        (
            server.smtp.port(),
            &["-starttls", "smtp"],
            "250 ",
            b"QUIT\r\n",
        ),
        (
            server.submission.port(),
            &["-starttls", "smtp"],
            "250 ",
            b"QUIT\r\n",
        ),
        (server.submissions.port(), &[], "220 ", b"QUIT\r\n"),
        (
            server.imap.port(),
            &["-starttls", "imap"],
            "OK",
            b"a LOGOUT\r\n",
        ),
        (
            server.imaps.port(),
            &["-alpn", "imap"],
            "* OK",
            b"a LOGOUT\r\n",
        ),
        (server.pop3s.port(), &["-alpn", "pop3"], "+OK", b"QUIT\r\n"),
    ];
    for (port, extra, expect, input) in cases {
        let text = s_client(&server, port, extra, input);
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{port}: {text}"
        );
        assert!(text.contains(expect), "{port}: {text}");
    }
    let text = s_client(
        &server,
        server.pop3.port(),
        &["-starttls", "pop3"],
        b"QUIT\r\n",
    );
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    // ALPN: imap on IMAP roles, pop3 on POP3 roles (IANA registry).
    let imaps = s_client(&server, server.imaps.port(), &["-alpn", "imap"], b"");
    assert!(imaps.contains("ALPN protocol: imap"), "{imaps}");
    let pop3s = s_client(&server, server.pop3s.port(), &["-alpn", "pop3"], b"");
    assert!(pop3s.contains("ALPN protocol: pop3"), "{pop3s}");
    // TLS 1.2 works too.
    let tls12 = s_client(&server, server.imaps.port(), &["-tls1_2"], b"");
    assert!(tls12.contains("Protocol  : TLSv1.2"), "{tls12}");
    // A client offering only another protocol's ALPN is refused (RFC 7301
    // 3.2); one without ALPN was accepted above.
    let (ok, text) = run_status(
        Command::new("openssl")
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", server.imaps.port()))
            .args(["-alpn", "pop3"]),
        b"",
        LIMIT,
    );
    assert!(!ok || text.contains("no application protocol"), "{text}");
}

#[test]
fn swaks_tls_and_tlsc_deliver() {
    let server = Server::start();
    for (port, mode, auth) in [
        (server.smtp.port(), "--tls", &[][..]),
        (
            server.submissions.port(),
            "--tlsc",
            &[
                "--auth",
                "PLAIN",
                "--auth-user",
                "bob",
                "--auth-password",
                "secret",
            ][..],
        ),
    ] {
        let out = run(Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--from", "bob@example.test", "--to", ALICE, mode])
            .args(auth)
            .arg("--tls-ca-path")
            .arg(server.cert())
            .arg("--tls-verify")
            .args(["--header", &format!("Subject: swaks {mode}")]));
        assert!(out.contains("TLS started"), "{out}");
    }
    let inbox = server.inbox(ALICE);
    assert_eq!(inbox.len(), 2);
    assert!(
        inbox
            .iter()
            .all(|m| String::from_utf8_lossy(m).contains("ESMTPS"))
    );
}

fn curl(server: &Server, args: &[&str]) -> String {
    run(Command::new("curl")
        .args(["-sS", "--max-time", "30", "--cacert"])
        .arg(server.cert())
        .args(args))
}

#[test]
fn curl_over_tls_on_every_protocol() {
    let server = Server::start();
    let msg = server.dir.path().join("m.eml");
    std::fs::write(&msg, "Subject: curl tls\r\n\r\nhello\r\n").expect("msg");
    let m = msg.display().to_string();
    let from = [
        "--mail-from",
        "bob@example.org",
        "--mail-rcpt",
        ALICE,
        "-T",
        &m,
    ];
    let smtps = format!("smtps://127.0.0.1:{}", server.submissions.port());
    let bob = ["-u", "bob:secret", "--mail-from", "bob@example.test"];
    curl(
        &server,
        &[
            &[smtps.as_str()][..],
            &bob,
            &["--mail-rcpt", ALICE, "-T", &m],
        ]
        .concat(),
    );
    let smtp = format!("smtp://127.0.0.1:{}", server.smtp.port());
    curl(
        &server,
        &[&[smtp.as_str(), "--ssl-reqd"][..], &from].concat(),
    );
    assert_eq!(server.inbox(ALICE).len(), 2);
    let imaps = format!("imaps://127.0.0.1:{}/INBOX;UID=1", server.imaps.port());
    let body = curl(&server, &[&imaps, "-u", "alice:secret"]);
    assert!(body.contains("Subject: curl tls"), "{body}");
    let imap = format!("imap://127.0.0.1:{}/INBOX;UID=2", server.imap.port());
    let body = curl(&server, &[&imap, "--ssl-reqd", "-u", "alice:secret"]);
    assert!(body.contains("Subject: curl tls"), "{body}");
    let pop3s = format!("pop3s://127.0.0.1:{}/1", server.pop3s.port());
    let body = curl(&server, &[&pop3s, "-u", "alice:secret"]);
    assert!(body.contains("Subject: curl tls"), "{body}");
    let pop3 = format!("pop3://127.0.0.1:{}/", server.pop3.port());
    let list = curl(&server, &[&pop3, "--ssl-reqd", "-u", "alice:secret"]);
    assert!(list.starts_with("1 "), "{list}");
}

fn getmail(server: &Server, name: &str, retriever: &str, port: u16) -> Vec<Vec<u8>> {
    let (dir, maildir, user_line) = common::getmail_maildir(server, name);
    let rc = dir.join("getmailrc");
    write_private(
        &rc,
        &format!(
            "[retriever]\ntype = {retriever}\nserver = 127.0.0.1\nport = {port}\n\
             username = alice\npassword = secret\ntimeout = 20\nca_certs = {ca}\n\n\
             [destination]\ntype = Maildir\npath = {maildir}/\n{user_line}\n\
             [options]\nread_all = true\ndelete = false\nverbose = 2\n",
            ca = server.cert().display(),
            maildir = maildir.display(),
        ),
    );
    run(Command::new("getmail")
        .arg("--getmaildir")
        .arg(&dir)
        .arg("--rcfile")
        .arg(&rc));
    std::fs::read_dir(maildir.join("new"))
        .expect("new")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect()
}

#[test]
fn getmail6_ssl_retrievers_for_pop3_and_imap() {
    let server = Server::start();
    server
        .connect()
        .ehlo()
        .send_mail("bob@example.org", &[ALICE], b"Subject: gm\r\n\r\nbody\r\n");
    let pop = getmail(
        &server,
        "gm-pop",
        "SimplePOP3SSLRetriever",
        server.pop3s.port(),
    );
    assert_eq!(pop.len(), 1);
    assert!(String::from_utf8_lossy(&pop[0]).contains("Subject: gm"));
    let imap = getmail(
        &server,
        "gm-imap",
        "SimpleIMAPSSLRetriever",
        server.imaps.port(),
    );
    assert_eq!(imap.len(), 1);
    assert!(String::from_utf8_lossy(&imap[0]).contains("Subject: gm"));
}

#[test]
fn smtp_command_pipelined_behind_starttls_is_not_executed() {
    let server = Server::start();
    python(
        &server,
        r#"
s = socket.create_connection(('127.0.0.1', PORTS[0]), timeout=20)
assert smtp_reply(s)[-1].startswith(b'220 ')
s.sendall(b'EHLO client.test\r\n')
smtp_reply(s)
# One write: STARTTLS and a MAIL an attacker injected behind it.
s.sendall(b'STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n')
r = smtp_reply(s)
assert r == [b'220 2.0.0 Ready to start TLS'], r
t = CTX.wrap_socket(s, server_hostname='localhost')
t.sendall(b'EHLO client.test\r\n')
r = smtp_reply(t)
assert r[0].startswith(b'250-'), r
# Had the injected MAIL run, this RCPT would be accepted.
t.sendall(b'RCPT TO:<alice@example.test>\r\n')
r = smtp_reply(t)
assert r[-1].startswith(b'503 5.5.1'), r
# A second STARTTLS is a bad sequence.
t.sendall(b'STARTTLS\r\n')
r = smtp_reply(t)
assert r[-1].startswith(b'503 5.5.1'), r
t.sendall(b'QUIT\r\n')
assert smtp_reply(t)[-1].startswith(b'221 ')
"#,
        &[server.smtp.port()],
    );
}

#[test]
fn imap_command_pipelined_behind_starttls_is_not_executed() {
    let server = Server::start();
    python(
        &server,
        r#"
s = socket.create_connection(('127.0.0.1', PORTS[0]), timeout=20)
lines_until(s, lambda l: l.startswith(b'* OK'))
s.sendall(b'a STARTTLS\r\nb LOGIN alice secret\r\n')
r = lines_until(s, lambda l: l.startswith(b'a '))
assert r == [b'a OK Begin TLS negotiation now'], r
t = CTX.wrap_socket(s, server_hostname='localhost')
# Had the injected LOGIN run, SELECT would work.
t.sendall(b'c SELECT INBOX\r\n')
r = lines_until(t, lambda l: l.startswith(b'c '))
assert r == [b'c BAD SELECT Log in first'], r
t.sendall(b'd STARTTLS\r\n')
r = lines_until(t, lambda l: l.startswith(b'd '))
assert r[-1].startswith(b'd BAD'), r
t.sendall(b'e LOGIN alice secret\r\n')
r = lines_until(t, lambda l: l.startswith(b'e '))
assert r[-1].startswith(b'e OK'), r
t.sendall(b'f LOGOUT\r\n')
lines_until(t, lambda l: l.startswith(b'f '))
"#,
        &[server.imap.port()],
    );
}

#[test]
fn pop3_command_pipelined_behind_stls_is_not_executed() {
    let server = Server::start();
    python(
        &server,
        r#"
s = socket.create_connection(('127.0.0.1', PORTS[0]), timeout=20)
lines_until(s, lambda l: l.startswith(b'+OK'))
s.sendall(b'STLS\r\nUSER alice\r\n')
r = lines_until(s, lambda l: True)
assert r == [b'+OK Begin TLS negotiation'], r
t = CTX.wrap_socket(s, server_hostname='localhost')
# Had the injected USER run, PASS would log in.
t.sendall(b'PASS secret\r\n')
r = lines_until(t, lambda l: True)
assert r[0].startswith(b'-ERR'), r
t.sendall(b'STLS\r\n')
r = lines_until(t, lambda l: True)
assert r[0].startswith(b'-ERR'), r
t.sendall(b'USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n')
r = lines_until(t, lambda l: l.startswith(b'+OK Bye'))
assert r[1] == b'+OK Logged in.', r
"#,
        &[server.pop3.port()],
    );
}

/// Reads what the server sends until it closes; None if it stays open
/// longer than `limit`.
fn read_to_close(s: &mut std::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
}

#[test]
fn garbage_stalled_and_plaintext_handshakes_end_cleanly() {
    let server = Server::start_with_extra(Extra {
        tls: "handshake_timeout = 1".into(),
        ..Extra::default()
    });
    for port in [
        server.imaps.port(),
        server.pop3s.port(),
        server.submissions.port(),
    ] {
        // Garbage instead of a ClientHello: closed (at most a TLS alert).
        let mut g = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        g.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xff])
            .expect("write");
        let got = read_to_close(&mut g, WAIT).expect("garbage: connection left open");
        assert!(got.is_empty() || got[0] == 0x15, "garbage answered {got:?}");
        // Plaintext on a TLS port: no plaintext answer, then closed.
        let mut p = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        p.write_all(b"a1 LOGIN alice secret\r\nEHLO x\r\nUSER alice\r\n")
            .expect("write");
        let got = read_to_close(&mut p, WAIT).expect("plaintext: connection left open");
        assert!(
            !String::from_utf8_lossy(&got).contains("OK"),
            "plaintext answered {got:?}"
        );
        // A stalled handshake is closed after handshake_timeout.
        let mut st = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let start = Instant::now();
        let got = read_to_close(&mut st, WAIT).expect("stalled: connection left open");
        assert!(got.is_empty(), "stalled got {got:?}");
        assert!(start.elapsed() >= Duration::from_millis(900));
    }
    // After STARTTLS too.
    let mut c = server.connect().ehlo();
    c.cmd("STARTTLS", 220);
    c.send_raw(b"not a client hello at all\r\n");
    assert!(read_to_close(&mut c.stream, WAIT).is_some());
    // Everyone else is served throughout, over TLS and not.
    python(
        &server,
        r#"
import imaplib
m = imaplib.IMAP4_SSL('127.0.0.1', PORTS[0], ssl_context=CTX, timeout=20)
m.login('alice', 'secret')
m.logout()
"#,
        &[server.imaps.port()],
    );
    let mut ok = server.connect().ehlo();
    assert_eq!(
        ok.send_mail("bob@example.org", &[ALICE], b"Subject: x\r\n\r\ny\r\n")
            .code,
        250
    );
    assert!(server.log().contains("TLS handshake failed"));
}

#[test]
fn refusal_on_an_implicit_tls_port_sends_no_plaintext() {
    let server = Server::start_with_extra(Extra {
        top: "local_networks = [\"127.0.0.2/32\"]".into(),
        imap: "max_connections_per_ip = 1".into(),
        ..Extra::default()
    });
    let mut first = std::net::TcpStream::connect(server.imaps).expect("connect");
    // Let the first be admitted before the second arrives.
    std::thread::sleep(Duration::from_millis(200));
    let mut second = std::net::TcpStream::connect(server.imaps).expect("connect");
    let got = read_to_close(&mut second, WAIT).expect("refused connection left open");
    assert!(got.is_empty(), "plaintext refusal on IMAPS: {got:?}");
    // On the plaintext port the refusal is the protocol's BYE.
    let mut plain = std::net::TcpStream::connect(server.imap).expect("connect");
    let got = read_to_close(&mut plain, WAIT).expect("refused connection left open");
    assert!(String::from_utf8_lossy(&got).starts_with("* BYE [UNAVAILABLE]"));
    let _ = first.write_all(b"x");
}

/// A raw connection whose reads give up after WAIT.
fn raw(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

#[test]
fn the_slot_is_free_once_the_final_reply_is_read() {
    let server = Server::start_with_extra(Extra {
        top: "local_networks = [\"127.0.0.2/32\"]".into(),
        smtp: "max_connections_per_ip = 1".into(),
        pop3: "max_connections_per_ip = 1".into(),
        imap: "max_connections_per_ip = 1".into(),
        ..Extra::default()
    });
    for _ in 0..20 {
        let mut c = server.connect().ehlo();
        c.cmd("QUIT", 221);
        // Reconnecting at once is not refused for the closing connection.
        let mut again = server.connect();
        assert_eq!(again.reply().code, 220);
        again.cmd("QUIT", 221);

        let mut p = raw(server.pop3);
        let mut r = BufReader::new(p.try_clone().expect("clone"));
        let mut line = String::new();
        r.read_line(&mut line).expect("greeting");
        p.write_all(b"QUIT\r\n").expect("quit");
        line.clear();
        r.read_line(&mut line).expect("bye");
        assert!(line.starts_with("+OK"), "{line}");
        let mut q = raw(server.pop3);
        let mut first = [0u8; 3];
        q.read_exact(&mut first).expect("greeting");
        assert_eq!(&first, b"+OK");
        drop(q);

        let mut i = raw(server.imap);
        let mut r = BufReader::new(i.try_clone().expect("clone"));
        line.clear();
        r.read_line(&mut line).expect("greeting");
        i.write_all(b"a LOGOUT\r\n").expect("logout");
        loop {
            line.clear();
            let n = r.read_line(&mut line).expect("bye");
            assert!(n > 0, "closed before the tagged LOGOUT reply");
            if line.starts_with("a ") {
                break;
            }
        }
        let mut j = raw(server.imap);
        let mut first = [0u8; 4];
        j.read_exact(&mut first).expect("greeting");
        assert_eq!(&first, b"* OK");
        drop(j);
        // Let the server see those two close before the next round.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes a certificate and key for 127.0.0.1 and localhost with openssl.
fn make_cert(dir: &Path, name: &str) -> (String, String) {
    let cert = format!("{name}-cert.pem");
    let key = format!("{name}-key.pem");
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-keyout", &key, "-out", &cert]));
    (cert, key)
}

/// The SHA-256 of the certificate a new IMAPS connection is served, and
/// whether it verifies against `ca`.
fn served_fingerprint(server: &Server, ca: &Path) -> String {
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import socket, ssl, sys, hashlib
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[2])), timeout=20), server_hostname='localhost')
print(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest())
"#,
        )
        .arg(ca)
        .arg(server.imaps.port().to_string()));
    out.trim().to_string()
}

fn wait_for_log(server: &Server, text: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    while server.log().matches(text).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_serves_a_new_certificate_to_new_connections_while_old_ones_go_on() {
    let server = Server::create_with(Extra {
        tls: "cert = \"live-cert.pem\"\nkey = \"live-key.pem\"".into(),
        ..Extra::default()
    });
    let dir = server.dir.path().to_path_buf();
    let (c1, k1) = make_cert(&dir, "one");
    let (c2, k2) = make_cert(&dir, "two");
    let install = |c: &str, k: &str| {
        std::fs::copy(dir.join(c), dir.join("live-cert.pem")).expect("cert");
        std::fs::copy(dir.join(k), dir.join("live-key.pem")).expect("key");
    };
    install(&c1, &k1);
    server.cli(&["user", "add", ALICE, "--password", "secret"]);
    let server = server.run();
    let first = served_fingerprint(&server, &dir.join(&c1));

    // An IMAPS session that stays open across the reload.
    let mut old = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
m = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[2]), ssl_context=ctx, timeout=20)
m.login('alice', 'secret')
print('ready', flush=True)
sys.stdin.readline()
print(m.noop()[0], flush=True)
m.logout()
"#,
        )
        .arg(dir.join(&c1))
        .arg(server.imaps.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    let mut old_out = BufReader::new(old.stdout.take().expect("stdout"));
    let mut line = String::new();
    old_out.read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready");

    install(&c2, &k2);
    server.signal("HUP");
    wait_for_log(&server, "TLS certificates reloaded", 1);
    let second = served_fingerprint(&server, &dir.join(&c2));
    assert_ne!(first, second, "the new certificate is served");

    let mut stdin = old.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("go");
    line.clear();
    old_out.read_line(&mut line).expect("noop");
    assert_eq!(line.trim(), "OK", "the old session goes on");
    assert!(old.wait().expect("wait").success());

    // A bad file on the next reload keeps the certificate in use.
    std::fs::write(dir.join("live-cert.pem"), "garbage").expect("garbage");
    server.signal("HUP");
    wait_for_log(&server, "TLS certificates not reloaded", 1);
    assert_eq!(served_fingerprint(&server, &dir.join(&c2)), second);
}

#[test]
fn sni_entry_serves_its_own_certificate_and_others_get_the_default() {
    let server = Server::create_with(Extra {
        tls: "[[tls.sni]]\nhostnames = [\"mail.other.test\"]\ncert = \"other-cert.pem\"\nkey = \"other-key.pem\"".into(),
        ..Extra::default()
    });
    make_cert(server.dir.path(), "other");
    let server = server.run();
    let subject = |name: Option<&str>| {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", server.imaps.port()));
        if let Some(n) = name {
            cmd.args(["-servername", n]);
        }
        let (_, text) = run_status(&mut cmd, b"", LIMIT);
        text.lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(subject(Some("mail.other.test")), "subject=CN = other");
    assert_eq!(subject(Some("MAIL.OTHER.TEST")), "subject=CN = other");
    assert_eq!(
        subject(Some("unknown.test")),
        "subject=CN = mx.example.test"
    );
    assert_eq!(subject(None), "subject=CN = mx.example.test");
}
