//! DKIM signing end to end (issue 16): keys made by `mailroom dkim
//! generate`, mail submitted by alice leaves through the queue worker
//! signed, and an independent verifier (Python's dkimpy, fed the records
//! `mailroom dkim list` prints) accepts every signature, RSA (RFC 6376)
//! and Ed25519 (RFC 8463) alike.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Extra, Server, Smtp, free_port};

/// An SMTP sink that takes one message, then verifies each DKIM-Signature
/// in it with dkimpy, answering DNS from the records on its command line
/// (`name=value` pairs), and prints `sig <a=> <d=> <s=> pass|fail` per
/// signature, then `done`.
const SINK: &str = r#"
import socket, sys, dkim
port = int(sys.argv[1])
records = dict(a.split('=', 1) for a in sys.argv[2:])
def dns(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    v = records.get(n.rstrip('.'))
    return v.encode() if v is not None else None
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', port)); srv.listen(1); srv.settimeout(40)
print('ready', flush=True)
conn, _ = srv.accept(); conn.settimeout(20)
f = conn.makefile('rb')
conn.sendall(b'220 sink ESMTP\r\n')
msg = None
while msg is None:
    cmd = f.readline().strip().upper()
    if not cmd:
        break
    if cmd.startswith(b'EHLO'):
        conn.sendall(b'250-sink\r\n250 8BITMIME\r\n')
    elif cmd == b'DATA':
        conn.sendall(b'354 go\r\n')
        lines = []
        while True:
            l = f.readline()
            if l in (b'.\r\n', b''):
                break
            lines.append(l[1:] if l.startswith(b'..') else l)
        msg = b''.join(lines)
        conn.sendall(b'250 ok\r\n')
    else:
        conn.sendall(b'250 ok\r\n')
conn.close()
d = dkim.DKIM(msg)
sigs = [v for (k, v) in dkim.rfc822_parse(msg)[0] if k.lower() == b'dkim-signature']
for i, s in enumerate(sigs):
    tags = dict(t.strip().split(b'=', 1) for t in s.split(b';') if b'=' in t)
    ok = d.verify(idx=i, dnsfunc=dns)
    print('sig', tags[b'a'].decode(), tags[b'd'].decode(), tags[b's'].decode(),
          'pass' if ok else 'fail', flush=True)
print('done', flush=True)
"#;

/// The records of `mailroom dkim list`: (name, value, state).
fn records(server: &Server) -> Vec<(String, String, String)> {
    server
        .cli(&["dkim", "list"])
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let (state, rr) = (cols.get(3)?, cols.get(4)?);
            let (name, value) = rr.split_once(". IN TXT ")?;
            Some((
                name.to_string(),
                value.trim_matches('"').to_string(),
                state.to_string(),
            ))
        })
        .collect()
}

#[test]
fn outbound_mail_is_signed_with_rsa_and_ed25519_and_dkimpy_verifies_both() {
    let port = free_port();
    let a = Server::create_with(Extra {
        top: format!("[relay]\nsmarthost = \"127.0.0.1:{port}\"\nretry_initial = 1\nretry_max = 2"),
        ..Extra::default()
    });
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let rsa = a.cli(&["dkim", "generate", "example.test"]);
    assert!(
        rsa.contains("mr-rsa._domainkey.example.test. IN TXT \"v=DKIM1; k=rsa; p="),
        "{rsa}"
    );
    let ed = a.cli(&["dkim", "generate", "example.test", "--algorithm", "ed25519"]);
    assert!(
        ed.contains("mr-ed._domainkey.example.test. IN TXT \"v=DKIM1; k=ed25519; p="),
        "{ed}"
    );
    // Not one of our domains: refused.
    let out = a.cli_output(&["dkim", "generate", "elsewhere.example"], None);
    assert!(!out.status.success());
    let recs = records(&a);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(recs.iter().all(|r| r.2 == "signs"), "{recs:?}");
    let a = a.run();

    let mut sink = Command::new("python3")
        .arg("-c")
        .arg(SINK)
        .arg(port.to_string())
        .args(recs.iter().map(|(n, v, _)| format!("{n}={v}")))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with dkimpy (scripts/test-deps)");
    let mut out = BufReader::new(sink.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready");

    let mut c = Smtp::connect(a.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    let msg = b"From: Alice <alice@example.test>\r\nTo: carol@remote.example\r\n\
Subject: signed\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n\
a body with  two spaces\r\n.leading dot\r\n\r\n\r\n";
    assert_eq!(
        c.send_mail("alice@example.test", &["carol@remote.example"], msg)
            .code,
        250
    );

    let mut lines = Vec::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.trim() == "done" {
            break;
        }
        lines.push(line.trim().to_string());
    }
    let _ = sink.wait();
    assert_eq!(lines.len(), 2, "{lines:?}\n{}", a.log());
    assert!(
        lines.contains(&"sig rsa-sha256 example.test mr-rsa pass".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"sig ed25519-sha256 example.test mr-ed pass".to_string()),
        "{lines:?}"
    );
}
