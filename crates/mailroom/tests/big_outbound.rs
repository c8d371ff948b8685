//! Relaying a big message in bounded memory (issue 19): alice submits
//! 20 MiB messages for a remote domain; the queue worker signs each with
//! the domain's RSA and Ed25519 keys in a first streamed pass over the
//! stored body and sends it in a second, and a test SMTP sink receives
//! the messages byte-identical behind the DKIM-Signature fields, which
//! mail-auth verifies against the records `mailroom dkim list` prints,
//! while the server's peak RSS stays far below the messages' size.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::{Extra, Server, Smtp};

use testdns::{DnsServer, Zone};

const ALICE: &str = "alice@example.test";
/// Each message.
const SIZE: usize = 20 << 20;
/// Messages relayed in one run of the worker: held whole, all of them
/// would be in memory at once, twice (the body and its signed copy).
const COUNT: usize = 5;
const SLOW: Duration = Duration::from_secs(300);

/// A message of about `SIZE` octets from alice, with lines that start
/// with a dot (DATA stuffing) and runs of WSP (relaxed canonicalisation).
fn message(seed: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = format!(
        "From: Alice <{ALICE}>\r\nTo: carol@remote.example\r\nSubject: big relayed {seed}\r\n\
         Date: Tue, 1 Dec 2026 12:00:00 +0000\r\nMessage-ID: <big-out-{seed}@example.test>\r\n\r\n"
    )
    .into_bytes();
    let mut x = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut line = 0u64;
    while out.len() < SIZE {
        if line.is_multiple_of(997) {
            out.push(b'.');
        }
        for _ in 0..70 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(ALPHABET[(x % 64) as usize]);
        }
        if line.is_multiple_of(7) {
            out.extend_from_slice(b"  \t ");
        }
        out.extend_from_slice(b"\r\n");
        line += 1;
    }
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// RFC 5321 4.5.2.
fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 512);
    let mut at_start = true;
    for &b in raw {
        if at_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_start = b == b'\n';
    }
    out
}

/// An SMTP sink on `listener`: takes messages, each un-stuffed, over as
/// many connections as it takes until it has `count`, and sends them on
/// `done`.
fn sink(listener: TcpListener, count: usize, done: mpsc::Sender<Vec<Vec<u8>>>) {
    let mut got = Vec::new();
    while got.len() < count {
        let (conn, _) = listener.accept().expect("accept");
        session(conn, &mut got);
    }
    let _ = done.send(got);
}

/// One SMTP connection to the sink, until QUIT or the end.
fn session(conn: TcpStream, got: &mut Vec<Vec<u8>>) {
    conn.set_read_timeout(Some(SLOW)).expect("timeout");
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    let say = |w: &mut TcpStream, s: &str| w.write_all(s.as_bytes()).expect("write");
    say(&mut w, "220 sink ESMTP\r\n");
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).expect("read") == 0 {
            return;
        }
        let cmd = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            say(&mut w, "250-sink\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n");
        } else if cmd == "DATA" {
            say(&mut w, "354 go\r\n");
            let mut msg = Vec::with_capacity(SIZE + 4096);
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line).expect("read") == 0 || line == b".\r\n" {
                    break;
                }
                let l = if line.starts_with(b"..") {
                    line.get(1..).unwrap_or_default()
                } else {
                    &line[..]
                };
                msg.extend_from_slice(l);
            }
            got.push(msg);
            say(&mut w, "250 ok\r\n");
        } else if cmd == "QUIT" {
            say(&mut w, "221 bye\r\n");
            return;
        } else {
            say(&mut w, "250 ok\r\n");
        }
    }
}

/// The records of `mailroom dkim list`, as (name, value).
fn records(server: &Server) -> Vec<(String, String)> {
    server
        .cli(&["dkim", "list"])
        .lines()
        .filter_map(|l| {
            let rr = l.split('\t').nth(4)?;
            let (name, value) = rr.split_once(". IN TXT ")?;
            Some((name.to_string(), value.trim_matches('"').to_string()))
        })
        .collect()
}

/// mail-auth's DKIM results for `raw`, with DNS from `dns`: one
/// (algorithm-free) pass/fail per signature.
fn verify(dns: &DnsServer, raw: &[u8]) -> Vec<bool> {
    use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
    let mut ns = NameServerConfig::udp_and_tcp(dns.addr().ip());
    for c in &mut ns.connections {
        c.port = dns.addr().port();
    }
    let auth = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(vec![ns]),
        ResolverOpts::default(),
    )
    .expect("resolver");
    let msg = AuthenticatedMessage::parse(raw).expect("parse");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(auth.verify_dkim(Parameters::new(&msg)))
        .iter()
        .map(|o| *o.result() == DkimResult::Pass)
        .collect()
}

/// The server's peak resident set (VmHWM), in octets.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

#[test]
fn big_messages_relayed_arrive_byte_identical_and_dkim_signed_in_bounded_memory() {
    // First the messages are queued while the next hop is down (nothing
    // listens on `down`); then the server restarts towards the sink, so
    // that its peak RSS is the relaying's alone, not the submissions'.
    let down = common::free_port();
    let mut a = Server::create_with(Extra {
        top: format!(
            "[relay]\nsmarthost = \"127.0.0.1:{down}\"\nretry_initial = 1\nretry_max = 2\n\
             max_connections_per_domain = 1"
        ),
        ..Extra::default()
    });
    a.cli(&["user", "add", ALICE, "--password", "secret"]);
    a.cli(&["dkim", "generate", "example.test"]);
    a.cli(&["dkim", "generate", "example.test", "--algorithm", "ed25519"]);
    let recs = records(&a);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let mut zone = Zone::new();
    for (n, v) in &recs {
        zone.txt(n, v);
    }
    let dns = DnsServer::start(zone).expect("dns");
    a.spawn();

    let sent: Vec<Vec<u8>> = (0..COUNT).map(message).collect();
    let c = Smtp::connect(a.submission);
    c.stream.set_read_timeout(Some(SLOW)).expect("timeout");
    let mut c = c.ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    for m in &sent {
        c.cmd(&format!("MAIL FROM:<{ALICE}>"), 250);
        c.cmd("RCPT TO:<carol@remote.example>", 250);
        c.cmd("DATA", 354);
        c.send_raw(&dot_stuff(m));
        c.send_raw(b".\r\n");
        assert_eq!(c.reply().code, 250);
    }
    c.cmd("QUIT", 221);
    assert_eq!(a.queue().len(), COUNT);
    a.terminate();

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = std::fs::read_to_string(&a.config).expect("config");
    let config = config.replace(&format!("127.0.0.1:{down}"), &format!("127.0.0.1:{port}"));
    std::fs::write(&a.config, config).expect("config");
    let (tx, rx) = mpsc::channel();
    let sink = std::thread::spawn(move || sink(listener, COUNT, tx));
    a.spawn();
    let pid = a.pid().expect("pid");

    let got = rx.recv_timeout(SLOW).expect("the sink's messages");
    sink.join().expect("sink");
    assert_eq!(got.len(), COUNT);
    for m in &got {
        let original = sent
            .iter()
            .find(|s| m.ends_with(s))
            .expect("arrived byte-identical behind our fields");
        let fields = String::from_utf8_lossy(&m[..m.len() - original.len()]).into_owned();
        assert!(fields.starts_with("DKIM-Signature:"), "{fields}");
        assert_eq!(fields.matches("DKIM-Signature:").count(), 2, "{fields}");
        assert!(fields.contains("\r\nReceived: "), "{fields}");
        assert!(
            fields.contains("a=rsa-sha256") && fields.contains("a=ed25519-sha256"),
            "{fields}"
        );
        assert_eq!(verify(&dns, m), [true, true], "{fields}");
    }
    let deadline = std::time::Instant::now() + SLOW;
    while !a.queue().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the queue to empty");
        std::thread::sleep(Duration::from_millis(100));
    }
    let peak = peak_rss(pid);
    eprintln!(
        "{COUNT} messages of {} MiB relayed: peak RSS {} MiB",
        SIZE >> 20,
        peak >> 20
    );
    // Before issue 19 the worker read each pending body whole and made a
    // signed copy of it: 173 MiB here. Streamed, it holds a few chunks
    // per message: 112 MiB, most of it the process itself and the SQLite
    // store, whose body reference-count triggers rewrite a body's row,
    // blob included, when its queue row goes (several in one group
    // commit). The bound is that plus one body per message.
    let bound = (48 << 20) + COUNT as u64 * SIZE as u64;
    assert!(
        peak < bound,
        "peak RSS {} MiB over {} MiB",
        peak >> 20,
        bound >> 20
    );
}
