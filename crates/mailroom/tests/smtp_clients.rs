//! Real SMTP clients against the real server: python smtplib, swaks,
//! curl and msmtp (installed by scripts/test-deps).

mod common;
use std::process::Command;

use common::Server;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("client runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn python(server: &Server, script: &str) -> String {
    run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.smtp.port().to_string()))
}

#[test]
fn python_smtplib_sendmail_with_pipelining_to_two_users() {
    let server = Server::start();
    python(
        &server,
        r#"
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
code, _ = s.ehlo('client.example')
assert code == 250 and s.has_extn('pipelining') and s.has_extn('size')
refused = s.sendmail('sender@remote.test', ['alice@example.test', 'bob@example.test', 'nobody@example.test'],
                     b'Subject: py\r\n\r\nfrom python\r\n')
assert list(refused) == ['nobody@example.test'], refused
s.quit()
"#,
    );
    for who in ["alice@example.test", "bob@example.test"] {
        let msgs = server.inbox(who);
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].ends_with(b"Subject: py\r\n\r\nfrom python\r\n"));
    }
}

#[test]
fn python_send_message_multipart_8bit_and_smtputf8() {
    let server = Server::start();
    python(
        &server,
        r#"
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'jörg@remote.test'
m['To'] = 'alice@example.test'
m['Subject'] = 'Grüße aus Köln'
m.set_content('Hallo Alice, schöne Grüße!\n', cte='8bit')
m.add_attachment(bytes(range(256)), maintype='application', subtype='octet-stream', filename='blob.bin')
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.ehlo(); assert s.has_extn('smtputf8')
s.send_message(m)  # smtplib adds SMTPUTF8 and BODY=8BITMIME itself
s.quit()
"#,
    );
    let stored = server.inbox("alice@example.test").remove(0);
    let text = String::from_utf8_lossy(&stored);
    assert!(text.contains("Return-Path: <jörg@remote.test>"), "{text}");
    assert!(text.contains("Hallo Alice, schöne Grüße!"), "{text}");
    assert!(text.contains("multipart/mixed"), "{text}");
}

#[test]
fn swaks_delivers() {
    let server = Server::start();
    let out = run(Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &server.smtp.port().to_string(),
        ])
        .args(["--from", "swaks@remote.test", "--to", "alice@example.test"])
        .args(["--header", "Subject: from swaks", "--body", "swaks body"]));
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let stored = String::from_utf8(server.inbox("alice@example.test").remove(0)).unwrap();
    assert!(stored.contains("Subject: from swaks") && stored.contains("swaks body"));
}

#[test]
fn swaks_with_pipelining() {
    let server = Server::start();
    let out = run(Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &server.smtp.port().to_string(),
        ])
        .args([
            "--from",
            "swaks@remote.test",
            "--to",
            "bob@example.test",
            "--pipeline",
        ])
        .args(["--header", "Subject: pipelined"]));
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    assert_eq!(server.inbox("bob@example.test").len(), 1);
}

#[test]
fn curl_smtp_upload_delivers() {
    let server = Server::start();
    let msg = server.dir.path().join("m.eml");
    // curl dot-stuffs CRLF lines (its docs ask for CRLF input).
    std::fs::write(&msg, "From: curl@remote.test\r\nTo: alice@example.test\r\nSubject: via curl\r\n\r\nline one\r\n.dotted\r\n").unwrap();
    run(Command::new("curl")
        .arg("-sS")
        .arg(format!("smtp://127.0.0.1:{}", server.smtp.port()))
        .args([
            "--mail-from",
            "curl@remote.test",
            "--mail-rcpt",
            "alice@example.test",
        ])
        .arg("-T")
        .arg(&msg));
    let stored = String::from_utf8(server.inbox("alice@example.test").remove(0)).unwrap();
    assert!(
        stored.ends_with("Subject: via curl\r\n\r\nline one\r\n.dotted\r\n"),
        "{stored}"
    );
}

#[test]
fn msmtp_delivers() {
    let server = Server::start();
    let mut child = Command::new("msmtp")
        .args([
            "--host=127.0.0.1",
            &format!("--port={}", server.smtp.port()),
        ])
        .args([
            "--tls=off",
            "--auth=off",
            "--from=msmtp@remote.test",
            "bob@example.test",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("msmtp");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"Subject: via msmtp\n\nhello from msmtp\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = String::from_utf8(server.inbox("bob@example.test").remove(0)).unwrap();
    assert!(
        stored.ends_with("Subject: via msmtp\r\n\r\nhello from msmtp\r\n"),
        "{stored}"
    );
}
