//! Real POP3 clients against the real server: python poplib, curl,
//! fetchmail and getmail6 (installed by scripts/test-deps).

mod common;
mod pop3_kit;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server, write_private};
use pop3_kit::{deliver, deliver_numbered};

const ALICE: &str = "alice@example.test";

/// Runs a client to completion within `limit`; panics unless it succeeds.
fn run(cmd: &mut Command, limit: Duration) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} timed out:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
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

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn python_poplib_full_session() {
    let server = Server::start();
    deliver(
        &server,
        ALICE,
        &[
            b"Subject: one\r\n\r\n.dot line\r\nbody one\r\n",
            b"Subject: two\r\n\r\nbody two\r\nmore\r\n",
        ],
    );
    run(
        Command::new("python3")
            .arg("-c")
            .arg(
                r#"
import poplib, sys
p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=20)
assert p.getwelcome() == b'+OK mailroom POP3 server ready', p.getwelcome()
caps = p.capa()
for c in ('TOP', 'UIDL', 'USER', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'):
    assert c in caps, (c, caps)
assert caps['SASL'] == ['PLAIN', 'LOGIN', 'SCRAM-SHA-256'], caps
assert caps['IMPLEMENTATION'] == ['mailroom'], caps
assert 'STLS' in caps, caps
# poplib refuses APOP itself (no timestamp in the greeting); the server
# refuses it too, and the session goes on.
try:
    p.apop('alice', 'secret')
    raise SystemExit('apop accepted')
except poplib.error_proto as e:
    assert 'APOP' in str(e), e
try:
    p._shortcmd('APOP alice 0123456789abcdef0123456789abcdef')
    raise SystemExit('APOP accepted by the server')
except poplib.error_proto as e:
    assert 'not supported' in str(e), e
assert p.user('alice').startswith(b'+OK')
assert p.pass_('secret') == b'+OK Logged in.'
count, octets = p.stat()
assert count == 2, count
resp, listing, _ = p.list()
sizes = [int(l.split()[1]) for l in listing]
assert sum(sizes) == octets, (sizes, octets)
resp, lines, size = p.retr(1)
assert lines[-2:] == [b'.dot line', b'body one'], lines
assert sum(len(l) + 2 for l in lines) == sizes[0], (lines, sizes)
resp, head, _ = p.top(2, 0)
assert head[-2:] == [b'Subject: two', b''], head
resp, uids, _ = p.uidl()
assert len(uids) == 2 and uids[0] != uids[1], uids
assert p.uidl(1).split()[2] == uids[0].split()[1]
p.dele(1)
assert p.stat()[0] == 1
p.quit()
"#,
            )
            .arg(server.pop3.port().to_string()),
        LIMIT,
    );
    let left = server.inbox(ALICE);
    assert_eq!(left.len(), 1);
    assert!(left[0].ends_with(b"body two\r\nmore\r\n"));
}

fn curl(server: &Server, extra: &[&str], path: &str) -> String {
    run(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "-u", "alice:secret"])
            .args(extra)
            .arg(format!("pop3://127.0.0.1:{}/{path}", server.pop3.port())),
        LIMIT,
    )
}

#[test]
fn curl_lists_retrieves_and_deletes() {
    let server = Server::start();
    let msgs = deliver_numbered(&server, ALICE, 2);
    let stored = server.inbox(ALICE);
    let listing = curl(&server, &[], "");
    assert_eq!(
        listing,
        format!("1 {}\r\n2 {}\r\n", stored[0].len(), stored[1].len())
    );
    let first = curl(&server, &[], "1");
    assert_eq!(first.as_bytes(), &stored[0][..]);
    assert!(first.as_bytes().ends_with(&msgs[0]));
    // DELE has a one-line answer: -I says "no body to transfer".
    curl(&server, &["-X", "DELE", "-I"], "1");
    let left = server.inbox(ALICE);
    assert_eq!(left, [stored[1].clone()]);
}

fn fetchmail(server: &Server, keep: bool) -> String {
    let dir = server.dir.path().join(if keep { "fm-keep" } else { "fm" });
    std::fs::create_dir_all(&dir).expect("fetchmail dir");
    let rc = dir.join("fetchmailrc");
    // The mda is mailroom itself: what fetchmail takes from alice is
    // delivered to bob. fetchmail keeps its default TLS settings (STLS,
    // certificate checked) and trusts our self-signed certificate; it
    // matches DNS names only, so it polls `localhost`, not the IP.
    write_private(
        &rc,
        &format!(
            "set no bouncemail\n\
             poll localhost protocol POP3 port {port} auth password timeout 20\n  \
             user \"alice\" password \"secret\" {keep} sslcertfile \"{cert}\"\n  \
             mda \"{bin} --config {cfg} deliver bob@example.test\"\n",
            port = server.pop3.port(),
            keep = if keep { "keep" } else { "nokeep" },
            cert = server.cert().display(),
            bin = BIN,
            cfg = server.config.display(),
        ),
    );
    let out = run(
        Command::new("fetchmail")
            .env("FETCHMAILHOME", &dir)
            .env("HOME", &dir)
            .args(["-f"])
            .arg(&rc)
            .args(["--nodetach", "--nosyslog", "-v"]),
        LIMIT,
    );
    assert!(out.contains("POP3< +OK Begin TLS negotiation"), "{out}");
    out
}

#[test]
fn fetchmail_with_keep_copies_and_without_keep_moves() {
    let server = Server::start();
    let msgs = deliver_numbered(&server, ALICE, 3);
    fetchmail(&server, true);
    assert_eq!(server.inbox(ALICE).len(), 3, "keep must leave the mail");
    let bob = server.inbox("bob@example.test");
    assert_eq!(bob.len(), 3);
    for (got, sent) in bob.iter().zip(&msgs) {
        let text = String::from_utf8_lossy(got);
        assert!(
            text.contains(std::str::from_utf8(sent).unwrap().trim_end()),
            "{text}"
        );
    }
    fetchmail(&server, false);
    assert!(server.inbox(ALICE).is_empty(), "nokeep must delete");
    assert_eq!(server.inbox("bob@example.test").len(), 6);
}

#[test]
fn getmail6_retrieves_into_a_maildir() {
    let server = Server::start();
    let msgs = deliver_numbered(&server, ALICE, 2);
    let (dir, maildir, user_line) = common::getmail_maildir(&server, "getmail");
    let rc = dir.join("getmailrc");
    let write_rc = |delete: bool| {
        write_private(
            &rc,
            &format!(
                "[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\nport = {port}\n\
                 username = alice\npassword = secret\ntimeout = 20\n\n\
                 [destination]\ntype = Maildir\npath = {maildir}/\n{user_line}\n\
                 [options]\nread_all = false\ndelete = {delete}\nverbose = 2\n",
                port = server.pop3.port(),
                maildir = maildir.display(),
            ),
        );
    };
    let getmail = || {
        run(
            Command::new("getmail")
                .arg("--getmaildir")
                .arg(&dir)
                .arg("--rcfile")
                .arg(&rc),
            LIMIT,
        )
    };
    write_rc(false);
    getmail();
    let mut got: Vec<Vec<u8>> = std::fs::read_dir(maildir.join("new"))
        .expect("new")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
        .collect();
    assert_eq!(got.len(), 2);
    got.sort_by_key(|m| String::from_utf8_lossy(m).contains("message 2"));
    for (g, sent) in got.iter().zip(&msgs) {
        // getmail stores LF line ends and adds its own headers on top.
        let sent_lf = String::from_utf8_lossy(sent).replace("\r\n", "\n");
        assert!(String::from_utf8_lossy(g).ends_with(&sent_lf), "{g:?}");
    }
    // UIDL remembered: a second run fetches nothing new; with delete it
    // removes what it has seen.
    getmail();
    assert_eq!(std::fs::read_dir(maildir.join("new")).unwrap().count(), 2);
    write_rc(true);
    getmail();
    assert!(server.inbox(ALICE).is_empty());
}
