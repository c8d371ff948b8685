//! Mail forwarding II end to end (issue 13): DSN bounces (RFC 3461, 3464,
//! 6522, 6533), SRS for forwarded mail, and loops that end. Every DSN is
//! read back from the sender's INBOX and parsed with Python's `email`
//! package, as a mail client would.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Extra, Server, Smtp, WAIT, free_port};

const ALICE: &str = "alice@example.test";

/// Parses a DSN with Python's `email` package; prints one JSON object:
/// the top type, the report-type, each part's type, the per-message and
/// per-recipient field blocks of the delivery-status part, and the text
/// of the returned original.
const PARSE: &str = r#"
import email, email.policy, email.parser, json, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
out = {'type': m.get_content_type(), 'report_type': m.get_param('report-type'),
       'auto_submitted': m.get('Auto-Submitted'), 'subject': m.get('Subject'),
       'to': m.get('To'), 'parts': [], 'blocks': [], 'original': ''}
for p in m.get_payload():
    t = p.get_content_type()
    out['parts'].append(t)
    if t in ('message/delivery-status', 'message/global-delivery-status'):
        if t == 'message/delivery-status':
            blocks = [dict(b.items()) for b in p.get_payload()]
        else:
            # Python knows no message/global-delivery-status (RFC 6533):
            # its body is read as the field blocks it is.
            raw = p.as_bytes().replace(b'\r\n', b'\n').split(b'\n\n', 1)[1]
            text = raw.decode('utf-8', 'replace').strip('\n')
            blocks = [dict(email.parser.HeaderParser().parsestr(b).items())
                      for b in text.split('\n\n') if b.strip()]
        out['blocks'] = blocks
    elif t in ('message/rfc822', 'message/global', 'text/rfc822-headers',
               'message/global-headers'):
        payload = p.get_payload()
        if isinstance(payload, list):
            out['original'] = payload[0].as_string()
        else:
            out['original'] = payload
print(json.dumps(out))
"#;

/// A DSN as Python's `email` package sees it.
#[derive(Debug)]
struct Dsn {
    json: String,
}

impl Dsn {
    fn parse(raw: &[u8]) -> Dsn {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(PARSE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(raw)
            .expect("write");
        let out = child.wait_with_output().expect("python3");
        assert!(out.status.success(), "python could not parse the DSN");
        Dsn {
            json: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }

    /// `"key": "value"` appears in the JSON (values are JSON-escaped).
    fn has(&self, key: &str, value: &str) -> bool {
        self.json.contains(&format!("\"{key}\": \"{value}\""))
    }

    /// How many field blocks (per-message + per-recipient).
    fn blocks(&self) -> usize {
        let start = self.json.find("\"blocks\": [").map_or(0, |i| i + 11);
        let end = self.json[start..]
            .find("], \"original\"")
            .map_or(self.json.len(), |i| start + i);
        self.json[start..end].matches("{").count()
    }

    fn parts(&self) -> String {
        let start = self.json.find("\"parts\": [").map_or(0, |i| i + 10);
        let end = self.json[start..]
            .find(']')
            .map_or(self.json.len(), |i| start + i);
        self.json[start..end].to_string()
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server's /metrics, read with curl.
fn metrics(server: &Server) -> String {
    let out = Command::new("curl")
        .arg("-sS")
        .arg(format!("http://{}/metrics", server.admin))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DSNs in `account`'s INBOX: the messages from MAILER-DAEMON.
fn dsns(server: &Server, account: &str) -> Vec<Vec<u8>> {
    server
        .inbox(account)
        .into_iter()
        .filter(|m| {
            String::from_utf8_lossy(m).contains("From: Mail Delivery System <MAILER-DAEMON@")
        })
        .collect()
}

/// A scripted SMTP server: offers DSN when `dsn`, answers every RCPT
/// with `rcpt` and every end of DATA with `data[i]` (then 250); prints
/// each MAIL and RCPT line it got; stops after `stop_after`
/// transactions or connections, or 40 s.
const SCRIPTED: &str = r#"
import socket, sys
port, dsn, rcpt, stop_after = int(sys.argv[1]), sys.argv[2] == '1', sys.argv[3], int(sys.argv[4])
data = sys.argv[5:]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', port)); srv.listen(8); srv.settimeout(40)
print('ready', flush=True)
done = conns = 0
while done < stop_after and conns < stop_after:
    conn, _ = srv.accept()
    conn.settimeout(20)
    f = conn.makefile('rb')
    conn.sendall(b'220 scripted ESMTP\r\n')
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.strip().upper()
        if cmd.startswith(b'EHLO'):
            ext = b'250-scripted\r\n250-SMTPUTF8\r\n250-8BITMIME\r\n'
            if dsn:
                ext += b'250-DSN\r\n'
            conn.sendall(ext + b'250 PIPELINING\r\n')
        elif cmd.startswith(b'MAIL'):
            print(line.strip().decode(), flush=True)
            conn.sendall(b'250 ok\r\n')
        elif cmd.startswith(b'RCPT'):
            print(line.strip().decode(), flush=True)
            conn.sendall((rcpt + '\r\n').encode())
        elif cmd == b'DATA':
            conn.sendall(b'354 go\r\n')
            while f.readline() not in (b'.\r\n', b''):
                pass
            code = data[done] if done < len(data) else '250 2.0.0 ok'
            done += 1
            print('end', code.split()[0], flush=True)
            conn.sendall((code + '\r\n').encode())
        elif cmd == b'RSET':
            conn.sendall(b'250 ok\r\n')
        elif cmd == b'QUIT':
            conn.sendall(b'221 bye\r\n')
            break
        else:
            conn.sendall(b'500 what\r\n')
    conn.close()
    conns += 1
"#;

struct Scripted {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    port: u16,
}

impl Scripted {
    fn start(dsn: bool, rcpt: &str, stop_after: usize, data: &[&str]) -> Scripted {
        let port = free_port();
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SCRIPTED)
            .arg(port.to_string())
            .arg(if dsn { "1" } else { "0" })
            .arg(rcpt)
            .arg(stop_after.to_string())
            .args(data)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("ready");
        assert_eq!(line.trim(), "ready");
        Scripted { child, out, port }
    }

    /// Everything it printed after "ready", until it stopped.
    fn lines(mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        while self.out.read_line(&mut line).unwrap_or(0) > 0 {
            lines.push(line.trim().to_string());
            line.clear();
        }
        let _ = self.child.wait();
        lines
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A server whose outbound mail goes to `port` on loopback, `extra`
/// added to its `[relay]`.
fn sender_via(port: u16, extra: &str) -> Server {
    Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nsmarthost = \"127.0.0.1:{port}\"\nretry_initial = 1\nretry_max = 1\n{extra}"
        ),
        ..Extra::default()
    })
}

/// alice submits `message` with the MAIL and RCPT parameters given.
fn submit(server: &Server, mail_params: &str, to: &str, rcpt_params: &str, message: &str) {
    let mut c = Smtp::connect(server.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    c.cmd(&format!("MAIL FROM:<{ALICE}> {mail_params}"), 250);
    c.send(&format!("RCPT TO:<{to}> {rcpt_params}"));
    let r = c.reply();
    assert!(r.code == 250 || r.code == 251, "RCPT {to}: {r:?}");
    c.cmd("DATA", 354);
    c.send_raw(message.as_bytes());
    c.send_raw(b".\r\n");
    c.expect(250);
}

const MESSAGE: &str =
    "Subject: the original\r\nMessage-ID: <orig-1@example.test>\r\n\r\nthe original body\r\n";

/// Waits for the queue to empty and for exactly `n` DSNs at alice.
fn alice_dsns(a: &Server, n: usize) -> Vec<Dsn> {
    wait_until("the queue to empty", WAIT, || a.queue().is_empty());
    wait_until("the DSN", WAIT, || dsns(a, ALICE).len() >= n);
    let got = dsns(a, ALICE);
    assert_eq!(got.len(), n, "DSNs at alice");
    got.iter().map(|m| Dsn::parse(m)).collect()
}

#[test]
fn a_550_at_the_remote_bounces_to_the_sender_with_one_delivery_status_part() {
    let remote = Scripted::start(
        false,
        "550 5.1.1 <nobody@remote.example>: no such user",
        1,
        &[],
    );
    let a = sender_via(remote.port, "");
    submit(
        &a,
        "ENVID=QQ314159",
        "nobody@remote.example",
        "ORCPT=rfc822;Nobody+40Remote.Example",
        MESSAGE,
    );
    let dsn = alice_dsns(&a, 1).remove(0);
    wait_until("the DSN counted in /metrics", WAIT, || {
        metrics(&a).contains("\nmailroom_outbound_dsns_total 1\n")
    });
    assert!(dsn.has("type", "multipart/report"), "{dsn:?}");
    assert!(dsn.has("report_type", "delivery-status"), "{dsn:?}");
    assert!(dsn.has("auto_submitted", "auto-replied"), "{dsn:?}");
    assert_eq!(
        dsn.parts(),
        "\"text/plain\", \"message/delivery-status\", \"text/rfc822-headers\"",
        "{dsn:?}"
    );
    // One per-message block, one per-recipient block.
    assert_eq!(dsn.blocks(), 2, "{dsn:?}");
    assert!(dsn.has("Reporting-MTA", "dns; mx.example.test"), "{dsn:?}");
    assert!(dsn.has("Original-Envelope-Id", "QQ314159"), "{dsn:?}");
    assert!(
        dsn.has("Final-Recipient", "rfc822; nobody@remote.example"),
        "{dsn:?}"
    );
    assert!(
        dsn.has("Original-Recipient", "rfc822; Nobody@Remote.Example"),
        "{dsn:?}"
    );
    assert!(dsn.has("Action", "failed"), "{dsn:?}");
    assert!(dsn.has("Status", "5.1.1"), "{dsn:?}");
    assert!(
        dsn.has(
            "Diagnostic-Code",
            "smtp; 550 5.1.1 <nobody@remote.example>: no such user"
        ),
        "{dsn:?}"
    );
    // RET=HDRS, the default: the original's headers, not its body.
    assert!(dsn.json.contains("Subject: the original"), "{dsn:?}");
    assert!(!dsn.json.contains("the original body"), "{dsn:?}");
    // The DSN's own reverse-path is <> (RFC 5321 4.5.5).
    let raw = String::from_utf8_lossy(&dsns(&a, ALICE)[0]).into_owned();
    assert!(raw.starts_with("Return-Path: <>\r\n"), "{raw}");
    drop(remote);
}

#[test]
fn ret_full_returns_the_whole_message() {
    let remote = Scripted::start(false, "250 ok", 1, &["554 5.6.0 content refused"]);
    let a = sender_via(remote.port, "");
    submit(&a, "RET=FULL", "dave@remote.example", "", MESSAGE);
    let dsn = alice_dsns(&a, 1).remove(0);
    assert!(dsn.parts().ends_with("\"message/rfc822\""), "{dsn:?}");
    assert!(dsn.json.contains("the original body"), "{dsn:?}");
    assert!(dsn.has("Status", "5.6.0"), "{dsn:?}");
}

#[test]
fn one_dsn_per_message_names_every_failed_recipient() {
    let remote = Scripted::start(false, "550 5.1.1 no such user", 1, &[]);
    let a = sender_via(remote.port, "");
    let mut c = Smtp::connect(a.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    let to = [
        "x1@remote.example",
        "x2@remote.example",
        "x3@remote.example",
    ];
    assert_eq!(c.send_mail(ALICE, &to, MESSAGE.as_bytes()).code, 250);
    let dsn = alice_dsns(&a, 1).remove(0);
    assert_eq!(dsn.blocks(), 4, "{dsn:?}");
    for t in to {
        assert!(
            dsn.has("Final-Recipient", &format!("rfc822; {t}")),
            "{dsn:?}"
        );
    }
}

#[test]
fn notify_never_gives_no_dsn() {
    let remote = Scripted::start(false, "550 5.1.1 no such user", 1, &[]);
    let a = sender_via(remote.port, "");
    submit(&a, "", "nobody@remote.example", "NOTIFY=NEVER", MESSAGE);
    wait_until("the failure", WAIT, || a.log().contains("outbound: failed"));
    // The row goes with its DSN in one transaction: once it is gone, a
    // DSN would be there.
    wait_until("the queue to empty", WAIT, || a.queue().is_empty());
    assert!(dsns(&a, ALICE).is_empty());
    assert!(dsns(&a, "postmaster@example.test").is_empty());
}

#[test]
fn notify_success_gives_delivered_locally_and_relayed_without_a_dsn_hop() {
    let remote = Scripted::start(false, "250 ok", 1, &[]);
    let a = sender_via(remote.port, "");
    // Local delivery: "delivered".
    let mut c = Smtp::connect(a.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    c.cmd(&format!("MAIL FROM:<{ALICE}> ENVID=local-1"), 250);
    c.cmd("RCPT TO:<bob@example.test> NOTIFY=SUCCESS", 250);
    c.cmd("DATA", 354);
    c.send_raw(format!("{MESSAGE}.\r\n").as_bytes());
    c.expect(250);
    // The report is stored with the message: there when the 250 is.
    let dsn = Dsn::parse(&dsns(&a, ALICE)[0]);
    assert!(dsn.has("Action", "delivered"), "{dsn:?}");
    assert!(dsn.has("Status", "2.0.0"), "{dsn:?}");
    assert!(
        dsn.has("Final-Recipient", "rfc822; bob@example.test"),
        "{dsn:?}"
    );
    assert!(dsn.has("Original-Envelope-Id", "local-1"), "{dsn:?}");
    assert_eq!(a.inbox("bob@example.test").len(), 1);
    // A next hop without DSN: "relayed".
    submit(&a, "", "dave@remote.example", "NOTIFY=SUCCESS", MESSAGE);
    let got = alice_dsns(&a, 2);
    assert!(got[1].has("Action", "relayed"), "{:?}", got[1]);
    let lines = remote.lines();
    assert!(
        lines.iter().any(|l| l == "RCPT TO:<dave@remote.example>"),
        "no DSN parameters to a server without DSN: {lines:?}"
    );
}

#[test]
fn dsn_parameters_pass_on_to_a_dsn_next_hop_which_then_reports() {
    let remote = Scripted::start(true, "250 ok", 1, &[]);
    let a = sender_via(remote.port, "");
    submit(
        &a,
        "RET=HDRS ENVID=QQ314159",
        "dave@remote.example",
        "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;dave+40remote.example",
        MESSAGE,
    );
    wait_until("the queue to empty", WAIT, || a.queue().is_empty());
    let lines = remote.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("MAIL FROM:<alice@example.test>")
                && l.ends_with("RET=HDRS ENVID=QQ314159")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l
            == "RCPT TO:<dave@remote.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;dave+40remote.example"),
        "{lines:?}"
    );
    // The DSN next hop reports: we do not.
    assert!(dsns(&a, ALICE).is_empty());
}

#[test]
fn a_delay_warning_comes_once_after_delay_warning_then_the_failure() {
    let remote = Scripted::start(
        false,
        "250 ok",
        6,
        &[
            "451 4.3.0 later",
            "451 4.3.0 later",
            "451 4.3.0 later",
            "451 4.3.0 later",
            "451 4.3.0 later",
            "451 4.3.0 later",
        ],
    );
    let a = sender_via(remote.port, "delay_warning = 1\nmax_queue_lifetime = 4");
    submit(
        &a,
        "",
        "slow@remote.example",
        "NOTIFY=DELAY,FAILURE",
        MESSAGE,
    );
    wait_until("the delay warning", WAIT, || !dsns(&a, ALICE).is_empty());
    let first = Dsn::parse(&dsns(&a, ALICE)[0]);
    assert!(first.has("Action", "delayed"), "{first:?}");
    assert!(first.has("Status", "4.3.0"), "{first:?}");
    assert!(first.json.contains("Will-Retry-Until"), "{first:?}");
    // After the lifetime: one failure DSN, and no second warning.
    let got = alice_dsns(&a, 2);
    assert!(got[1].has("Action", "failed"), "{:?}", got[1]);
    assert!(got[1].has("Status", "4.4.7"), "{:?}", got[1]);
    drop(remote);
}

#[test]
fn an_smtputf8_bounce_uses_message_global_delivery_status() {
    let remote = Scripted::start(false, "550 5.1.1 no such user", 1, &[]);
    let a = sender_via(remote.port, "");
    submit(
        &a,
        "SMTPUTF8",
        "jöran@remote.example",
        "",
        "Subject: grüße\r\n\r\nx\r\n",
    );
    let dsn = alice_dsns(&a, 1).remove(0);
    assert!(
        dsn.parts().contains("\"message/global-delivery-status\""),
        "{dsn:?}"
    );
    assert!(
        dsn.parts().ends_with("\"message/global-headers\""),
        "{dsn:?}"
    );
    assert!(
        dsn.json.contains("utf-8; j\\u00f6ran@remote.example"),
        "{dsn:?}"
    );
}

#[test]
fn no_dsn_is_made_for_a_null_sender_and_postmaster_hears_once() {
    let remote = Scripted::start(false, "550 5.1.1 no such user", 1, &[]);
    let a = sender_via(remote.port, "");
    let mut c = Smtp::connect(a.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    assert_eq!(
        c.send_mail("", &["nobody@remote.example"], MESSAGE.as_bytes())
            .code,
        250
    );
    wait_until("the queue to empty", WAIT, || a.queue().is_empty());
    assert!(dsns(&a, ALICE).is_empty());
    let notices = dsns(&a, "postmaster@example.test");
    assert_eq!(notices.len(), 1, "postmaster hears once");
    assert!(Dsn::parse(&notices[0]).has("Status", "5.1.1"));
}

#[test]
fn a_null_mx_failure_reports_5_1_10_and_556() {
    let mut zone = testdns::Zone::new();
    zone.null_mx("nomail.example");
    let dns = testdns::DnsServer::start(zone).expect("dns");
    let a = Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\nport = 25\nretry_initial = 1\nretry_max = 2",
            dns.addr()
        ),
        ..Extra::default()
    });
    submit(&a, "", "x@nomail.example", "", MESSAGE);
    let dsn = alice_dsns(&a, 1).remove(0);
    assert!(dsn.has("Status", "5.1.10"), "{dsn:?}");
    assert!(
        dsn.json.contains("\"Diagnostic-Code\": \"smtp; 556 5.1.10"),
        "{dsn:?}"
    );
}

/// A second server whose only domain is remote.example, with user carol,
/// relaying its outbound mail to `relay` when given.
fn remote_server(relay: Option<u16>) -> Server {
    let b = Server::create_with(Extra {
        top: relay.map_or(String::new(), |p| {
            format!("[relay]\nsmarthost = \"127.0.0.1:{p}\"\nretry_initial = 1\nretry_max = 1")
        }),
        ..Extra::default()
    });
    let text = std::fs::read_to_string(&b.config).expect("config");
    let text = text.replace(
        "domains = [\"example.test\", \"other.test\"]",
        "domains = [\"remote.example\"]",
    );
    std::fs::write(&b.config, text).expect("config");
    b.cli(&[
        "user",
        "add",
        "carol@remote.example",
        "--password",
        "secret",
    ]);
    b
}

/// Sends from `from` to `to` over `server`'s MTA listener (no AUTH).
fn mta_send(server: &Server, from: &str, to: &str, subject: &str) -> u16 {
    let mut c = server.connect().ehlo();
    let msg = format!("Subject: {subject}\r\n\r\nbody\r\n");
    c.send_mail(from, &[to], msg.as_bytes()).code
}

#[test]
fn forwarded_mail_leaves_with_srs_and_its_bounce_reaches_the_original_sender() {
    // b: remote.example (carol), sending back to a; a: forwards bob to
    // carol and erin to an unknown user at b.
    let b = remote_server(None).run();
    let a = sender_via(b.smtp.port(), "");
    a.cli(&["forward", "set", "bob@example.test", "carol@remote.example"]);
    // A forward that works: b's copy shows the SRS reverse-path.
    let mut c = a.connect().ehlo();
    c.cmd("MAIL FROM:<carol@remote.example>", 250);
    c.cmd("RCPT TO:<bob@example.test>", 251);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: forwarded\r\n\r\nx\r\n.\r\n");
    c.expect(250);
    wait_until("the forwarded copy", WAIT, || {
        !b.inbox("carol@remote.example").is_empty()
    });
    let got = String::from_utf8_lossy(&b.inbox("carol@remote.example")[0]).into_owned();
    let rp = got
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Return-Path: <"))
        .and_then(|l| l.strip_suffix('>'))
        .expect("Return-Path")
        .to_string();
    assert!(rp.starts_with("SRS0="), "{rp}");
    assert!(rp.ends_with("=remote.example=carol@example.test"), "{rp}");
    // A bounce to it (MAIL FROM:<>) is taken and reaches carol.
    let mut c = a.connect().ehlo();
    c.cmd("MAIL FROM:<>", 250);
    c.cmd(&format!("RCPT TO:<{rp}>"), 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: bounce via srs\r\n\r\nx\r\n.\r\n");
    c.expect(250);
    wait_until("the bounce at carol", WAIT, || {
        b.inbox("carol@remote.example").len() == 2
    });
    // Forged or misused SRS addresses are unknown users, and queue nothing.
    let forged = rp.replacen("SRS0=", "SRS0=Z", 1);
    let mut c = a.connect().ehlo();
    c.cmd("MAIL FROM:<>", 250);
    let r = c.cmd(&format!("RCPT TO:<{forged}>"), 550);
    assert_eq!(common::enhanced(&r), "5.1.1");
    let r = c.cmd(
        "RCPT TO:<SRS0=AAAA=AA=remote.example=carol@example.test>",
        550,
    );
    assert_eq!(common::enhanced(&r), "5.1.1");
    c.cmd("RSET", 250);
    c.cmd("MAIL FROM:<someone@elsewhere.test>", 250);
    let r = c.cmd(&format!("RCPT TO:<{rp}>"), 550);
    assert_eq!(
        common::enhanced(&r),
        "5.1.1",
        "a valid hash, but not a bounce"
    );
    wait_until("the queue to empty", WAIT, || a.queue().is_empty());
    // A forward that fails at b: the DSN goes to the SRS address, which
    // a decodes to carol.
    a.cli(&["user", "add", "erin@example.test", "--password", "x"]);
    a.cli(&[
        "forward",
        "set",
        "erin@example.test",
        "nobody@remote.example",
    ]);
    let _ = mta_send(
        &a,
        "carol@remote.example",
        "erin@example.test",
        "to be bounced",
    );
    wait_until("the DSN at carol", WAIT, || {
        b.inbox("carol@remote.example").len() == 3
    });
    let dsn = Dsn::parse(&b.inbox("carol@remote.example")[2]);
    assert!(
        dsn.has("Final-Recipient", "rfc822; nobody@remote.example"),
        "{dsn:?}"
    );
    assert!(
        dsn.has("Original-Recipient", "rfc822; erin@example.test"),
        "{dsn:?}"
    );
    assert!(dsn.has("Status", "5.1.1"), "{dsn:?}");
}

/// a (example.test, alice and bob) and b (remote.example, carol), each
/// relaying to the other. The configs are written by hand after both
/// have their ports; a start that had to pick new ports (another test
/// took one) loses them, so that is retried.
fn pointing_at_each_other() -> (Server, Server) {
    for _ in 0..3 {
        let a = Server::create_with(Extra::default());
        let b = remote_server(Some(a.smtp.port()));
        let text = std::fs::read_to_string(&a.config).expect("config");
        let relay = format!(
            "[relay]\nsmarthost = \"127.0.0.1:{}\"\nretry_initial = 1\nretry_max = 1\n",
            b.smtp.port()
        );
        let text = text.replacen("\n[auth]", &format!("\n{relay}\n[auth]"), 1);
        std::fs::write(&a.config, text).expect("config");
        for u in [ALICE, "bob@example.test"] {
            a.cli(&["user", "add", u, "--password", "secret"]);
        }
        let (a_port, b_port) = (a.smtp.port(), b.smtp.port());
        let (a, b) = (a.run(), b.run());
        let relays_to = |s: &Server, port: u16| {
            std::fs::read_to_string(&s.config)
                .is_ok_and(|t| t.contains(&format!("smarthost = \"127.0.0.1:{port}\"")))
        };
        if a.smtp.port() == a_port
            && b.smtp.port() == b_port
            && relays_to(&a, b_port)
            && relays_to(&b, a_port)
        {
            return (a, b);
        }
    }
    panic!("could not start two servers relaying to each other");
}

#[test]
fn two_instances_forwarding_to_each_other_end_in_one_bounce() {
    // a (example.test) forwards bob to carol at b (remote.example), b
    // forwards carol back to bob: each hop adds a Received field until
    // the receiver refuses the 100th (554 5.4.6, RFC 5321 6.3), and that
    // sender's DSN finds its way back to alice through both SRS layers.
    let (a, b) = pointing_at_each_other();
    a.cli(&["forward", "set", "bob@example.test", "carol@remote.example"]);
    b.cli(&["forward", "set", "carol@remote.example", "bob@example.test"]);
    submit(&a, "", "bob@example.test", "", MESSAGE);
    let limit = Duration::from_secs(120);
    wait_until("the bounce at alice", limit, || !dsns(&a, ALICE).is_empty());
    wait_until("both queues to empty", limit, || {
        a.queue().is_empty() && b.queue().is_empty()
    });
    // Nothing more circles: still one bounce a moment later.
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.queue().is_empty() && b.queue().is_empty());
    let got = dsns(&a, ALICE);
    assert_eq!(got.len(), 1, "one bounce");
    let dsn = Dsn::parse(&got[0]);
    assert!(dsn.has("Status", "5.4.6"), "{dsn:?}");
    assert!(dsn.has("Action", "failed"), "{dsn:?}");
    assert!(dsn.json.contains("smtp; 554 5.4.6"), "{dsn:?}");
    // It did circle until the hop limit: about 100 relays between them.
    let relays = a.log().matches("outbound: delivered").count()
        + b.log().matches("outbound: delivered").count();
    assert!(relays >= 90, "{relays} relays");
    assert!(dsns(&a, "postmaster@example.test").is_empty());
    assert!(dsns(&b, "postmaster@remote.example").is_empty());
}
