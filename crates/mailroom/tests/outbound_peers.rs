//! Mail forwarding against other implementations (issue 12): the remote MX
//! is Postfix's `smtp-sink` (a discarding receiver) or a private Postfix
//! instance with STARTTLS, reached by MX routing through the test DNS
//! server; BINARYMIME content goes only to a next hop that offers it.
//!
//! Postfix and smtp-sink come from Debian's `postfix` package, which
//! `scripts/test-deps` installs; the Postfix instance needs root (as CI
//! runs). Loopback only; every wait is bounded and every peer process is
//! stopped when its handle drops.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Extra, Server, Smtp, WAIT, free_port};

const ALICE: &str = "alice@example.test";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_port(port: u16) {
    wait_until("the peer to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Postfix's smtp-sink on a free port, each message dumped to a file.
struct Sink {
    child: Child,
    port: u16,
    dump: tempfile::TempDir,
}

impl Sink {
    fn start() -> Sink {
        Sink::start_on(free_port())
    }

    fn start_on(port: u16) -> Sink {
        let dump = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new("smtp-sink");
        if is_root() {
            // smtp-sink refuses to keep root: it writes dumps as nobody.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dump.path(), std::fs::Permissions::from_mode(0o777))
                .expect("chmod");
            cmd.args(["-u", "nobody"]);
        }
        let template = format!("{}/%Y%m%d%H%M%S.", dump.path().display());
        let child = cmd
            .args(["-h", "sink.remote.example", "-d", &template])
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink (scripts/test-deps installs postfix)");
        wait_port(port);
        Sink { child, port, dump }
    }

    fn messages(&self) -> Vec<String> {
        files_in(self.dump.path())
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Postfix instance (own config, queue and Maildirs in a temp
/// directory) for remote.example, STARTTLS offered with a self-signed
/// certificate, delivering carol's mail into a Maildir.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postfix {
    fn start() -> Postfix {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        let port = free_port();
        let conf = base.join("etc");
        let mail = base.join("mail");
        std::fs::create_dir_all(&conf).expect("etc");
        std::fs::create_dir_all(base.join("data")).expect("data");
        // Postfix fixes the permissions below spool itself, but its
        // daemons (user postfix) must reach into the temp directory.
        std::fs::create_dir_all(base.join("spool")).expect("spool");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::create_dir_all(mail.join("remote.example/carol/new")).expect("maildir");
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=mx.remote.example"])
            .arg("-keyout")
            .arg(base.join("key.pem"))
            .arg("-out")
            .arg(base.join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "openssl req");
        let owner = |p: &Path, user: &str| {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(p)
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown {user} {}", p.display());
        };
        owner(&mail, "nobody");
        owner(&base.join("data"), "postfix");
        let d = base.display();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/data
maillog_file = {d}/maillog
maillog_file_prefixes = /tmp, /var, {d}
myhostname = mx.remote.example
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
default_transport = error:this test instance does not relay
relay_transport = error:this test instance does not relay
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtputf8_enable = yes
biff = no
virtual_mailbox_domains = remote.example
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = texthash:{d}/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 1
smtpd_tls_cert_file = {d}/cert.pem
smtpd_tls_key_file = {d}/key.pem
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
"
        );
        std::fs::write(conf.join("main.cf"), main_cf).expect("main.cf");
        std::fs::write(
            conf.join("vmailbox"),
            "carol@remote.example remote.example/carol/\n",
        )
        .expect("vmailbox");
        let services = [
            format!("127.0.0.1:{port} inet n - n - - smtpd"),
            "cleanup unix n - n - 0 cleanup".into(),
            "qmgr unix n - n 300 1 qmgr".into(),
            "tlsmgr unix - - n 1000? 1 tlsmgr".into(),
            "rewrite unix - - n - - trivial-rewrite".into(),
            "bounce unix - - n - 0 bounce".into(),
            "defer unix - - n - 0 bounce".into(),
            "trace unix - - n - 0 bounce".into(),
            "verify unix - - n - 1 verify".into(),
            "proxymap unix - - n - - proxymap".into(),
            "error unix - - n - - error".into(),
            "retry unix - - n - - error".into(),
            "virtual unix - n n - - virtual".into(),
            "anvil unix - - n - 1 anvil".into(),
            "scache unix - - n - 1 scache".into(),
            "postlog unix-dgram n - n - 1 postlogd".into(),
        ];
        std::fs::write(conf.join("master.cf"), services.join("\n") + "\n").expect("master.cf");
        let postfix = |verb: &str| {
            Command::new("postfix")
                .arg("-c")
                .arg(&conf)
                .arg(verb)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        assert!(postfix("check"), "postfix check");
        assert!(postfix("start"), "postfix start: see {d}/maillog");
        wait_port(port);
        Postfix { dir, port }
    }

    fn carol(&self) -> Vec<String> {
        files_in(&self.dir.path().join("mail/remote.example/carol/new"))
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("abort")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A sender routing remote.example by MX (the test DNS server) to
/// loopback `port`.
fn sender_to(dns: &testdns::DnsServer, port: u16) -> Server {
    Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\nport = {port}\nretry_initial = 1\nretry_max = 2",
            dns.addr()
        ),
        ..Extra::default()
    })
}

fn remote_dns() -> testdns::DnsServer {
    let mut zone = testdns::Zone::new();
    zone.mx("remote.example", 10, "mx.remote.example")
        .a("mx.remote.example", "127.0.0.1".parse().expect("ip"));
    testdns::DnsServer::start(zone).expect("dns")
}

/// alice, authenticated on submission, ready for MAIL.
fn alice(server: &Server) -> Smtp {
    let mut c = Smtp::connect(server.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    c
}

#[test]
fn queued_messages_to_smtp_sink_leave_on_one_reused_connection() {
    let sink = Sink::start();
    let dns = remote_dns();
    // Five messages wait in the queue before the server starts (the CLI
    // delivers to an alias whose target is remote), so its first run
    // finds them together; one connection per destination carries all.
    let a = Server::create_with(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\nport = {}\nmax_connections_per_domain = 1",
            dns.addr(),
            sink.port
        ),
        ..Extra::default()
    });
    a.cli(&["alias", "add", "fwd@example.test", "dave@remote.example"]);
    for i in 0..5 {
        let msg = format!("Subject: sink {i}\r\n\r\nto smtp-sink\r\n");
        let out = a.cli_output(
            &["deliver", "--from", ALICE, "fwd@example.test"],
            Some(msg.as_bytes()),
        );
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(a.queue().len(), 5);
    let a = a.run();
    wait_until("five messages at the sink", || sink.messages().len() == 5);
    wait_until("the queue to empty", || a.queue().is_empty());
    for m in sink.messages() {
        assert!(m.contains("X-Rcpt-Args: <dave@remote.example>"), "{m}");
        assert!(m.contains("Subject: sink "), "{m}");
    }
    let log = a.log();
    assert_eq!(log.matches("outbound: delivered").count(), 5, "{log}");
    let connections: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("outbound: connected"))
        .collect();
    assert_eq!(connections.len(), 1, "{log}");
    assert!(connections[0].contains("messages=5"), "{log}");
}

#[test]
fn queue_retry_sends_at_once_to_a_destination_found_down() {
    let port = free_port();
    let dns = remote_dns();
    // Nothing listens on `port` yet, and the backoff is long: only the
    // operator's retry can make the message leave within the test.
    let a = Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\nport = {port}\nretry_initial = 300",
            dns.addr()
        ),
        ..Extra::default()
    });
    let mut c = alice(&a);
    let msg = b"Subject: later\r\n\r\nonce the remote is up\r\n";
    assert_eq!(c.send_mail(ALICE, &["dave@remote.example"], msg).code, 250);
    wait_until("the deferral", || a.log().contains("outbound: deferred"));
    let sink = Sink::start_on(port);
    let out = a.cli(&["queue", "retry", "--all"]);
    assert!(out.contains('1'), "{out}");
    wait_until("the message at the sink", || sink.messages().len() == 1);
    wait_until("the queue to empty", || a.queue().is_empty());
}

#[test]
fn postfix_as_the_remote_mx_receives_over_starttls() {
    if !is_root() {
        eprintln!("skipped: a private Postfix instance needs root (CI runs as root)");
        return;
    }
    let pf = Postfix::start();
    let dns = remote_dns();
    let a = sender_to(&dns, pf.port);
    let mut c = alice(&a);
    let msg = b"Subject: to postfix\r\n\r\nover STARTTLS\r\n";
    assert_eq!(c.send_mail(ALICE, &["carol@remote.example"], msg).code, 250);
    wait_until("carol's Maildir copy at Postfix", || !pf.carol().is_empty());
    let got = pf.carol().remove(0);
    assert!(got.contains("Subject: to postfix"), "{got}");
    // smtpd_tls_received_header: Postfix names the TLS it saw.
    assert!(
        got.contains("(using TLSv1.3") || got.contains("(using TLSv1.2"),
        "no TLS in Postfix's Received: {got}\n{}",
        pf.log()
    );
    wait_until("the queue to empty", || a.queue().is_empty());
    assert!(a.log().contains("tls=true"), "{}", a.log());
}

/// A message only BDAT BODY=BINARYMIME can carry: NULs and a line past
/// SMTP's 1000 octets. (A bare LF would not do: the store keeps messages
/// CRLF-canonical, SPEC 1.)
fn binary() -> Vec<u8> {
    let mut m =
        b"Subject: binary\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\n".to_vec();
    m.extend(std::iter::repeat_n(b'x', 1200));
    m.extend_from_slice(b"\r\n");
    m
}

fn submit_binary(server: &Server, to: &str) {
    let mut c = alice(server);
    c.cmd(&format!("MAIL FROM:<{ALICE}> BODY=BINARYMIME"), 250);
    c.cmd(&format!("RCPT TO:<{to}>"), 250);
    let body = binary();
    c.send_raw(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
    c.send_raw(&body);
    assert_eq!(c.expect(250).code, 250);
}

#[test]
fn binarymime_reaches_a_next_hop_that_offers_it_byte_for_byte() {
    let b = Server::create_with(Extra::default());
    let text = std::fs::read_to_string(&b.config).expect("config");
    let text = text.replace(
        "domains = [\"example.test\", \"other.test\"]",
        "domains = [\"remote.example\"]",
    );
    std::fs::write(&b.config, text).expect("config");
    b.cli(&["user", "add", "carol@remote.example", "--password", "x"]);
    let b = b.run();
    let dns = remote_dns();
    let a = sender_to(&dns, b.smtp.port());
    submit_binary(&a, "carol@remote.example");
    wait_until("carol's copy", || {
        !b.inbox("carol@remote.example").is_empty()
    });
    let got = b.inbox("carol@remote.example").remove(0);
    // The next hop stores its part in base64 (RFC 3516 4.3, issue 19):
    // what it got is the message as sent, octet for octet, re-encoded
    // there, and BINARY gives the sent content back.
    let sent = binary();
    let want = proto_imap::mime::encode_binary_parts(&sent).expect("binary");
    assert!(got.ends_with(&want), "{:?}", String::from_utf8_lossy(&got));
    let root = proto_imap::mime::Part::parse(&got);
    let content = sent.get(sent.len() - 1206..).expect("content");
    assert_eq!(
        proto_imap::mime::binary(&root, &got, &[1]).as_deref(),
        Ok(content)
    );
    wait_until("the queue to empty", || a.queue().is_empty());
}

#[test]
fn binarymime_to_a_next_hop_without_it_fails_with_5_6_3() {
    // smtp-sink offers neither CHUNKING nor BINARYMIME.
    let sink = Sink::start();
    let dns = remote_dns();
    let a = sender_to(&dns, sink.port);
    submit_binary(&a, "dave@remote.example");
    wait_until("the failure", || a.log().contains("outbound: failed"));
    let log = a.log();
    let failed = log
        .lines()
        .find(|l| l.contains("outbound: failed"))
        .unwrap_or_default();
    assert!(failed.contains("5.6.3"), "{log}");
    assert!(sink.messages().is_empty(), "sent anyway");
}
