//! Mail forwarding end to end (issue 12): mail for other domains leaves
//! through the outbound worker to a second mailroom instance or to a
//! scripted SMTP server, temporary failures are retried and delivered
//! once, permanent ones stay visible in `mailroom queue list`.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Extra, Server, Smtp, WAIT, free_port};

const ALICE: &str = "alice@example.test";

/// A second server whose only domain is remote.example, with user carol.
fn remote_server() -> Server {
    let b = Server::create_with(Extra::default());
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
    b.run()
}

/// A server whose outbound mail goes to `port` on loopback.
fn sender_via(port: u16) -> Server {
    Server::start_with_extra(Extra {
        top: format!("[relay]\nsmarthost = \"127.0.0.1:{port}\"\nretry_initial = 1\nretry_max = 2"),
        ..Extra::default()
    })
}

/// alice submits one message to `to` (authenticated: she may relay).
fn submit(server: &Server, to: &str, subject: &str) {
    let mut c = Smtp::connect(server.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    let msg = format!("Subject: {subject}\r\n\r\nto a remote domain\r\n");
    assert_eq!(c.send_mail(ALICE, &[to], msg.as_bytes()).code, 250);
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mail_for_another_domain_leaves_and_arrives_over_starttls() {
    let b = remote_server();
    let a = sender_via(b.smtp.port());
    submit(&a, "carol@remote.example", "leaving");
    wait_until("the remote copy", || {
        !b.inbox("carol@remote.example").is_empty()
    });
    let got = String::from_utf8_lossy(&b.inbox("carol@remote.example")[0]).into_owned();
    assert!(got.contains("Subject: leaving"), "{got}");
    // alice's submission (AUTH, from loopback without TLS), then the
    // remote's Received, which saw STARTTLS.
    assert!(
        got.contains("by mx.example.test (mailroom) with ESMTPA"),
        "{got}"
    );
    assert!(got.contains("with ESMTPS id"), "{got}");
    wait_until("the queue to empty", || a.queue().is_empty());
    assert!(a.log().contains("outbound: delivered"), "{}", a.log());
}

/// A scripted SMTP server: answers the end of DATA with the codes given,
/// one per transaction (then 250), and RCPT with `rcpt`; prints one line
/// per transaction and stops after `stop_after` transactions or
/// connections, or 40 s.
const SCRIPTED: &str = r#"
import socket, sys, time
port, rcpt, stop_after = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
codes = sys.argv[4:]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', port)); srv.listen(8); srv.settimeout(40)
print('ready', flush=True)
done = conns = 0
while done < stop_after and conns < stop_after:
    conn, peer = srv.accept()
    print('peer', peer[0], flush=True)
    conn.settimeout(20)
    f = conn.makefile('rb')
    conn.sendall(b'220 scripted ESMTP\r\n')
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.strip().upper()
        if cmd.startswith(b'EHLO'):
            conn.sendall(b'250-scripted\r\n250 PIPELINING\r\n')
        elif cmd.startswith(b'MAIL'):
            conn.sendall(b'250 ok\r\n')
        elif cmd.startswith(b'RCPT'):
            conn.sendall((rcpt + '\r\n').encode())
        elif cmd == b'DATA':
            conn.sendall(b'354 go\r\n')
            while f.readline() not in (b'.\r\n', b''):
                pass
            code = codes[done] if done < len(codes) else '250 2.0.0 ok'
            done += 1
            if code.startswith('sleep:'):
                # sleep:SECONDS:REPLY, announced first so a test can act.
                _, secs, code = code.split(':', 2)
                print('data', flush=True)
                time.sleep(int(secs))
            print(code.split()[0], flush=True)
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
    fn start(rcpt: &str, stop_after: usize, codes: &[&str]) -> Scripted {
        Scripted::start_on(free_port(), rcpt, stop_after, codes)
    }

    fn start_on(port: u16, rcpt: &str, stop_after: usize, codes: &[&str]) -> Scripted {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SCRIPTED)
            .arg(port.to_string())
            .arg(rcpt)
            .arg(stop_after.to_string())
            .args(codes)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("ready");
        assert_eq!(line.trim(), "ready");
        Scripted { child, out, port }
    }

    /// The codes it answered, one per transaction, until it stopped.
    fn codes(self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .collect()
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

#[test]
fn a_451_twice_is_retried_and_delivered_once() {
    let remote = Scripted::start("250 ok", 3, &["451 4.3.0 try later", "451 4.3.0 again"]);
    let a = sender_via(remote.port);
    submit(&a, "dave@remote.example", "retried");
    assert_eq!(remote.codes(), ["451", "451", "250"]);
    wait_until("the queue to empty", || a.queue().is_empty());
    let log = a.log();
    assert_eq!(log.matches("outbound: deferred").count(), 2, "{log}");
    assert_eq!(log.matches("outbound: delivered").count(), 1, "{log}");
}

/// A delivery run that outlasts its claim's lease (`[relay] queue_lease`)
/// keeps the claim: the worker renews it while the remote takes its time,
/// so the next claim (every second here) does not send the row again.
#[test]
fn a_run_longer_than_the_lease_renews_its_claim_and_sends_once() {
    // Leases are whole seconds, so a 3 s one lasts at least 2 s, and is
    // renewed every second; the remote answers after 8 s.
    let remote = Scripted::start("250 ok", 2, &["sleep:8:250 2.0.0 ok"]);
    let a = Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nsmarthost = \"127.0.0.1:{}\"\nretry_initial = 1\nretry_max = 2\nqueue_lease = 3",
            remote.port
        ),
        ..Extra::default()
    });
    submit(&a, "dave@remote.example", "a long run");
    wait_until("the queue to empty", || a.queue().is_empty());
    // A second claim's connection, waiting in the remote's backlog,
    // would have been taken by now.
    std::thread::sleep(Duration::from_secs(2));
    let mut remote = remote;
    let _ = remote.child.kill();
    let lines = remote.lines();
    let count = |p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
    assert_eq!((count("peer"), count("250")), (1, 1), "{lines:?}");
    let log = a.log();
    assert_eq!(log.matches("outbound: delivered").count(), 1, "{log}");
    assert!(!log.contains("cannot renew"), "{log}");
}

#[test]
fn a_permanent_failure_bounces_and_leaves_the_queue() {
    let remote = Scripted::start("550 5.1.1 no such user", 1, &[]);
    let a = sender_via(remote.port);
    submit(&a, "nobody@remote.example", "refused");
    wait_until("the failure", || a.log().contains("outbound: failed"));
    // The row goes with its DSN's delivery, in one transaction (issue
    // 13; crates/mailroom/tests/dsn.rs checks the DSN itself).
    wait_until("the queue to empty", || a.queue().is_empty());
    let inbox = a.inbox(ALICE);
    assert_eq!(inbox.len(), 1, "the DSN");
    let dsn = String::from_utf8_lossy(&inbox[0]).into_owned();
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@remote.example"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"),
        "{dsn}"
    );
    assert!(dsn.contains("Subject: refused"), "{dsn}");
    drop(remote);
}

#[test]
fn queue_list_show_and_delete_work_on_a_waiting_row() {
    let remote = Scripted::start("451 4.3.0 later", 1, &[]);
    let a = sender_via(remote.port);
    submit(&a, "later@remote.example", "waiting");
    wait_until("the deferral", || {
        a.cli(&["queue", "list"]).contains("\tdeferred\t")
    });
    let list = a.cli(&["queue", "list"]);
    assert!(list.contains("later@remote.example"), "{list}");
    assert!(list.contains("451 4.3.0 later"), "{list}");
    let json = a.cli(&["queue", "list", "--json"]);
    assert!(json.contains("\"status\":\"deferred\""), "{json}");
    let id = list.split('\t').next().unwrap_or_default().to_string();
    let shown = a.cli(&["queue", "show", &id]);
    assert!(shown.contains("Subject: waiting"), "{shown}");
    assert!(shown.contains("\nnotify: -\n"), "{shown}");
    a.cli(&["queue", "delete", &id]);
    assert!(a.queue().is_empty());
    drop(remote);
}

#[test]
fn open_relay_tricks_are_refused_and_queue_nothing() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    c.cmd("MAIL FROM:<spammer@evil.test>", 250);
    // (address, reply, enhanced code)
    let tricks: [(&str, u16, &str); 9] = [
        ("<u@elsewhere.test>", 550, "5.7.1"),
        ("<U@ELSEWHERE.TEST>", 550, "5.7.1"),
        ("<u@ELSEWHERE.TEST.>", 501, "5.1.3"),
        ("<@evil.test:u@elsewhere.test>", 550, "5.7.1"),
        ("<u%elsewhere.test@example.test>", 550, "5.1.1"),
        ("<\"u@elsewhere.test\"@example.test>", 550, "5.1.1"),
        ("<u@[192.0.2.1]>", 550, "5.7.1"),
        ("<u@[IPv6:2001:db8::1]>", 550, "5.7.1"),
        ("<u@elsewhere.test@example.test>", 501, "5.1.3"),
    ];
    for (addr, code, status) in tricks {
        c.send(&format!("RCPT TO:{addr}"));
        let r = c.reply();
        assert_eq!(
            (r.code, common::enhanced(&r).as_str()),
            (code, status),
            "{addr}: {r:?}"
        );
    }
    assert!(server.queue().is_empty(), "{:?}", server.queue());
}

#[test]
fn a_forwarded_user_and_a_remote_list_member_receive_the_message() {
    let b = remote_server();
    let a = sender_via(b.smtp.port());
    a.cli(&["forward", "set", "bob@example.test", "carol@remote.example"]);
    a.cli(&[
        "list",
        "add",
        "team@example.test",
        ALICE,
        "carol@remote.example",
    ]);
    let mut c = a.connect().ehlo();
    c.cmd("MAIL FROM:<someone@elsewhere.test>", 250);
    let r = c.cmd("RCPT TO:<bob@example.test>", 251);
    assert!(r.lines[0].contains("carol@remote.example"), "{r:?}");
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: forwarded\r\n\r\nfor bob\r\n.\r\n");
    c.expect(250);
    c.cmd("MAIL FROM:<someone@elsewhere.test>", 250);
    c.cmd("RCPT TO:<team@example.test>", 250);
    c.cmd("DATA", 354);
    c.send_raw(b"Subject: to the list\r\n\r\nfor the team\r\n.\r\n");
    c.expect(250);
    wait_until("both copies at the remote", || {
        b.inbox("carol@remote.example").len() == 2
    });
    let got: Vec<String> = b
        .inbox("carol@remote.example")
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(got.iter().any(|m| m.contains("Subject: forwarded")));
    assert!(got.iter().any(|m| m.contains("Subject: to the list")));
    assert_eq!(a.inbox(ALICE).len(), 1, "the local list member's copy");
    wait_until("the queue to empty", || a.queue().is_empty());
}

#[test]
fn kill_9_during_a_delivery_run_loses_nothing() {
    // The remote holds its 250 for 3 s: the sender dies meanwhile.
    let remote = Scripted::start(
        "250 ok",
        2,
        &["sleep:3:250 2.0.0 first", "250 2.0.0 second"],
    );
    let mut a = sender_via(remote.port);
    submit(&a, "erin@remote.example", "survives");
    let mut line = String::new();
    let mut out = remote;
    while line.trim() != "data" {
        line.clear();
        assert!(out.out.read_line(&mut line).expect("data") > 0, "no data");
    }
    a.kill9();
    a.spawn();
    // The restarted server sends it again: twice at worst, never lost.
    assert_eq!(out.codes(), ["250", "250"]);
    wait_until("the queue to empty", || a.queue().is_empty());
}

/// A server relaying through `b`'s submission port with AUTH as carol,
/// over verified TLS (`mode`: "starttls" on 587, "implicit" on 465).
fn sender_via_smarthost_with_auth(b: &Server, mode: &str) -> Server {
    let port = if mode == "implicit" {
        b.submissions.port()
    } else {
        b.submission.port()
    };
    Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nsmarthost = \"localhost:{port}\"\nsmarthost_tls = \"{mode}\"\n\
             smarthost_auth = \"carol@remote.example:secret\"\nca_file = \"{ca}\"\n\
             retry_initial = 1\nretry_max = 2",
            ca = b.cert().display()
        ),
        ..Extra::default()
    })
}

#[test]
fn a_smarthost_with_auth_over_verified_tls_takes_the_mail() {
    let b = remote_server();
    for mode in ["starttls", "implicit"] {
        let a = sender_via_smarthost_with_auth(&b, mode);
        // <>: the smarthost checks that carol owns the sender (RFC 6409).
        let mut c = Smtp::connect(a.submission).ehlo();
        let plain = proto_common::encode_plain("", "alice", "secret");
        c.cmd(&format!("AUTH PLAIN {plain}"), 235);
        let msg = format!("Subject: via smarthost {mode}\r\n\r\nx\r\n");
        assert_eq!(
            c.send_mail("", &["carol@remote.example"], msg.as_bytes())
                .code,
            250
        );
        wait_until("the queue to empty", || a.queue().is_empty());
        assert!(!a.log().contains("secret"), "the password reached the log");
    }
    let got: Vec<String> = b
        .inbox("carol@remote.example")
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert_eq!(got.len(), 2);
    // The smarthost saw TLS and AUTH.
    assert!(got.iter().all(|m| m.contains("with ESMTPSA id")), "{got:?}");
}

#[test]
fn a_smarthost_whose_certificate_does_not_verify_gets_nothing() {
    let b = remote_server();
    let other = Server::create_with(Extra::default());
    // Trust some other certificate: b's does not verify.
    let a = Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nsmarthost = \"localhost:{}\"\nsmarthost_tls = \"starttls\"\n\
             smarthost_auth = \"carol@remote.example:secret\"\nca_file = \"{}\"\n\
             retry_initial = 1\nretry_max = 2",
            b.submission.port(),
            a_foreign_cert(&other).display()
        ),
        ..Extra::default()
    });
    let mut c = Smtp::connect(a.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    assert_eq!(
        c.send_mail("", &["carol@remote.example"], b"Subject: no\r\n\r\nx\r\n")
            .code,
        250
    );
    wait_until("a deferral", || a.log().contains("outbound: deferred"));
    assert!(b.inbox("carol@remote.example").is_empty());
    assert_eq!(a.queue().len(), 1, "kept for a retry, not lost");
}

/// A self-signed certificate that is not the smarthost's.
fn a_foreign_cert(s: &Server) -> std::path::PathBuf {
    let dir = s.dir.path().join("foreign");
    std::fs::create_dir_all(&dir).expect("dir");
    let out = Command::new("openssl")
        .current_dir(&dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=foreign",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
        ])
        .output()
        .expect("openssl");
    assert!(out.status.success());
    dir.join("c.pem")
}

/// A server routing by MX through the test DNS server, remote SMTP on
/// `port` (every MX host's).
fn sender_via_dns(dns: &testdns::DnsServer, port: u16) -> Server {
    Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\nport = {port}\nretry_initial = 1\nretry_max = 2",
            dns.addr()
        ),
        ..Extra::default()
    })
}

#[test]
fn mx_routing_prefers_the_lower_preference_and_falls_back_to_the_next() {
    let b = remote_server();
    let mut zone = testdns::Zone::new();
    zone.mx("remote.example", 10, "mx1.remote.example")
        .mx("remote.example", 20, "mx2.remote.example")
        // Nothing listens on 127.0.0.3: the first MX refuses.
        .a("mx1.remote.example", "127.0.0.3".parse().expect("ip"))
        .a("mx2.remote.example", "127.0.0.1".parse().expect("ip"));
    let dns = testdns::DnsServer::start(zone).expect("dns");
    let a = sender_via_dns(&dns, b.smtp.port());
    submit(&a, "carol@remote.example", "by mx");
    wait_until("the copy at the second MX", || {
        !b.inbox("carol@remote.example").is_empty()
    });
    wait_until("the queue to empty", || a.queue().is_empty());
    let log = a.log();
    let refused = log.find("mx1.remote.example").expect("mx1 tried");
    let delivered = log.find("outbound: delivered").expect("delivered");
    assert!(refused < delivered, "{log}");
    assert!(
        dns.asked()
            .iter()
            .any(|q| q.name.starts_with("remote.example") && q.rtype == "MX")
    );
}

#[test]
fn null_mx_and_nxdomain_fail_at_once() {
    let mut zone = testdns::Zone::new();
    zone.null_mx("nomail.example");
    let dns = testdns::DnsServer::start(zone).expect("dns");
    let a = sender_via_dns(&dns, 25);
    submit(&a, "x@nomail.example", "null mx");
    submit(&a, "y@nowhere.example", "nxdomain");
    wait_until("both DSNs", || a.inbox(ALICE).len() == 2);
    assert!(a.queue().is_empty());
    let dsns: Vec<String> = a
        .inbox(ALICE)
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    // RFC 7505 3: 556 5.1.10; no such domain: 550 5.1.2; one attempt each.
    assert!(
        dsns.iter()
            .any(|d| d.contains("Status: 5.1.10\r\n")
                && d.contains("Diagnostic-Code: smtp; 556 5.1.10")),
        "{dsns:?}"
    );
    assert!(
        dsns.iter().any(|d| d.contains("Status: 5.1.2\r\n")),
        "{dsns:?}"
    );
    assert_eq!(a.log().matches("outbound: failed").count(), 2);
}

#[test]
fn require_tls_sends_only_over_verified_starttls() {
    let b = remote_server();
    let mut zone = testdns::Zone::new();
    // The MX's name is one b's self-signed certificate carries.
    zone.mx("remote.example", 10, "localhost")
        .a("localhost", "127.0.0.1".parse().expect("ip"));
    let dns = testdns::DnsServer::start(zone).expect("dns");
    let with_ca = |ca: &std::path::Path| {
        Server::start_with_extra(Extra {
            top: format!(
                "[relay]\nresolver = \"{}\"\nport = {}\nrequire_tls = [\"remote.example\"]\n\
                 ca_file = \"{}\"\nretry_initial = 1\nretry_max = 2",
                dns.addr(),
                b.smtp.port(),
                ca.display()
            ),
            ..Extra::default()
        })
    };
    // Trusted: delivered over verified STARTTLS.
    let good = with_ca(&b.cert());
    submit(&good, "carol@remote.example", "verified");
    wait_until("the verified copy", || {
        b.inbox("carol@remote.example").len() == 1
    });
    // Not trusted: never sent, kept for a retry.
    let scratch = Server::create_with(Extra::default());
    let bad = with_ca(&a_foreign_cert(&scratch));
    submit(&bad, "carol@remote.example", "unverified");
    wait_until("a deferral", || bad.log().contains("outbound: deferred"));
    assert_eq!(bad.queue().len(), 1);
    assert_eq!(b.inbox("carol@remote.example").len(), 1);
}

#[test]
fn a_remote_that_is_down_is_retried_and_connections_come_from_source_address() {
    let port = free_port();
    let a = Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nsmarthost = \"127.0.0.1:{port}\"\nsource_address = \"127.0.0.2\"\n\
             retry_initial = 1\nretry_max = 2"
        ),
        ..Extra::default()
    });
    submit(&a, "frank@remote.example", "after the outage");
    // Nothing listens yet: the attempt is deferred, the message kept.
    wait_until("a deferral", || a.log().contains("outbound: deferred"));
    assert_eq!(a.queue().len(), 1);
    let remote = Scripted::start_on(port, "250 ok", 1, &[]);
    let lines = remote.lines();
    assert!(lines.contains(&"peer 127.0.0.2".to_string()), "{lines:?}");
    assert!(lines.contains(&"250".to_string()), "{lines:?}");
    wait_until("the queue to empty", || a.queue().is_empty());
}
