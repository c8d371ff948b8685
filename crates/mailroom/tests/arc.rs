//! ARC end to end (issue 16, RFC 8617): a message to a list on server A
//! with a member on server B leaves A with an ARC set sealed by A's
//! primary domain key; B verifies the chain (`arc=pass` in its stored
//! Authentication-Results), and so does an independent implementation
//! (dkimpy's arc_verify, fed the test DNS records). A chain broken in
//! transit is `arc=fail`.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Extra, Server, Smtp, WAIT};
use testdns::{DnsServer, Zone};

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the first `name` field of `raw`, unfolded.
fn field(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n").peekable();
    while let Some(l) = lines.next() {
        if l.len() > name.len()
            && l[..name.len()].eq_ignore_ascii_case(name)
            && l.as_bytes().get(name.len()) == Some(&b':')
        {
            let mut v = l[name.len() + 1..].trim().to_string();
            while let Some(next) = lines.peek().filter(|n| n.starts_with([' ', '\t'])) {
                v.push(' ');
                v.push_str(next.trim());
                lines.next();
            }
            return Some(v);
        }
    }
    None
}

/// A (example.test, with an RSA key, list team@ with carol@remote.example)
/// relaying to B (remote.example), both asking `dns`.
fn servers(dns: &DnsServer, b_checks: &str) -> (Server, Server) {
    let b = Server::create_with(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\n[checks]\n{b_checks}",
            dns.addr()
        ),
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
    let b = b.run();

    let a = Server::create_with(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\nsmarthost = \"127.0.0.1:{}\"\nretry_initial = 1\nretry_max = 2",
            dns.addr(),
            b.smtp.port()
        ),
        ..Extra::default()
    });
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    a.cli(&[
        "list",
        "add",
        "team@example.test",
        "alice@example.test",
        "carol@remote.example",
    ]);
    let out = a.cli(&["dkim", "generate", "example.test"]);
    let rr = out
        .lines()
        .find_map(|l| l.split_once(". IN TXT "))
        .map(|(n, v)| (n.to_string(), v.trim_matches('"').to_string()))
        .expect("record");
    dns.update(|z| {
        z.txt(&rr.0, &rr.1);
    });
    (a.run(), b)
}

fn zone() -> Zone {
    let mut z = Zone::new();
    z.txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
        // Fails SPF everywhere, and asks for rejection.
        .txt("strict.example", "v=spf1 -all")
        .txt("_dmarc.strict.example", "v=DMARC1; p=reject");
    z
}

const MSG: &str = "From: Bob <bob@sender.example>\r\nTo: team@example.test\r\n\
Subject: to the list\r\nMessage-ID: <arc-1@sender.example>\r\n\r\nhello list\r\n";

/// dkimpy's ARC verdict on `raw`, with DNS from `records`.
const ARC_VERIFY: &str = r#"
import sys, dkim
records = dict(a.split('=', 1) for a in sys.argv[1:])
def dns(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    v = records.get(n.rstrip('.'))
    return v.encode() if v is not None else None
cv, results, reason = dkim.arc_verify(sys.stdin.buffer.read(), dnsfunc=dns)
print(cv.decode() if isinstance(cv, bytes) else cv, reason)
"#;

#[test]
fn mail_forwarded_through_a_list_is_arc_sealed_and_passes_at_the_next_hop() {
    let dns = DnsServer::start(zone()).expect("dns");
    let (a, b) = servers(&dns, "");
    let mut c = Smtp::connect(a.smtp);
    c.expect(220);
    c.cmd("EHLO client.example", 250);
    assert_eq!(
        c.send_mail("bob@sender.example", &["team@example.test"], MSG.as_bytes())
            .code,
        250
    );
    wait_until("carol's copy at B", || {
        !b.inbox("carol@remote.example").is_empty()
    });
    let got = String::from_utf8(b.inbox("carol@remote.example")[0].clone()).expect("utf8");
    // A's set: i=1, sealed by example.test, cv=none for the first set.
    let seal = field(&got, "ARC-Seal").expect("ARC-Seal");
    assert!(
        seal.contains("i=1") && seal.contains("d=example.test") && seal.contains("cv=none"),
        "{seal}"
    );
    let aar = field(&got, "ARC-Authentication-Results").expect("AAR");
    assert!(
        aar.contains("i=1; mx.example.test") && aar.contains("spf=pass"),
        "{aar}"
    );
    assert!(field(&got, "ARC-Message-Signature").is_some(), "{got}");
    // B's own results: the chain verifies.
    let ar = field(&got, "Authentication-Results").expect("AR");
    assert!(ar.contains("arc=pass"), "{ar}\n{got}");
    // alice's local copy at A has no ARC set: only relayed copies do.
    let local = String::from_utf8(a.inbox("alice@example.test")[0].clone()).expect("utf8");
    assert!(field(&local, "ARC-Seal").is_none(), "{local}");

    // dkimpy agrees, on the message as B stored it.
    let records: Vec<String> = a
        .cli(&["dkim", "list"])
        .lines()
        .filter_map(|l| l.split('\t').nth(4))
        .filter_map(|rr| rr.split_once(". IN TXT "))
        .map(|(n, v)| format!("{n}={}", v.trim_matches('"')))
        .collect();
    let verdict = dkimpy_arc(&records, got.as_bytes());
    assert!(verdict.starts_with("pass"), "{verdict}");

    // Broken in transit: the body changed after sealing.
    let broken = got.replace("hello list", "hello, changed list");
    let verdict = dkimpy_arc(&records, broken.as_bytes());
    assert!(verdict.starts_with("fail"), "{verdict}");
    let mut c = Smtp::connect(b.smtp);
    c.expect(220);
    c.cmd("EHLO relay.example", 250);
    // Drop B's own trace so the message is as A would have sent it.
    let body = broken
        .split_once("Received: from")
        .and_then(|(_, rest)| rest.split_once("\r\n").map(|(_, r)| r))
        .map(|r| r.trim_start_matches([' ', '\t']))
        .expect("B's Received");
    let resent = body
        .split_once("ARC-")
        .map(|(_, r)| format!("ARC-{r}"))
        .expect("ARC set");
    assert_eq!(
        c.send_mail(
            "bob@sender.example",
            &["carol@remote.example"],
            resent.as_bytes()
        )
        .code,
        250
    );
    let inbox = b.inbox("carol@remote.example");
    let got = String::from_utf8(inbox.last().expect("second").clone()).expect("utf8");
    let ar = field(&got, "Authentication-Results").expect("AR");
    assert!(ar.contains("arc=fail"), "{ar}\n{got}");
}

/// Issue 19: a message above `[store] spool_threshold` is sealed at A
/// with the body hash of its spool file, and B, which spools it too,
/// verifies the chain from its own streamed pass: `arc=pass`, as for
/// a small message, and dkimpy agrees.
#[test]
fn a_big_message_forwarded_through_a_list_is_sealed_and_passes_at_the_next_hop() {
    let dns = DnsServer::start(zone()).expect("dns");
    let (a, b) = servers(&dns, "");
    let mut msg = MSG.replace("hello list\r\n", "").into_bytes();
    let mut n = 0u64;
    while msg.len() < 3 << 20 {
        msg.extend_from_slice(format!("line {n}  with \t spaces \t\r\n").as_bytes());
        n += 1;
    }
    msg.extend_from_slice(b"\r\n\r\n");
    let mut c = Smtp::connect(a.smtp);
    c.expect(220);
    c.cmd("EHLO client.example", 250);
    assert_eq!(
        c.send_mail("bob@sender.example", &["team@example.test"], &msg)
            .code,
        250
    );
    wait_until("carol's copy at B", || {
        !b.inbox("carol@remote.example").is_empty()
    });
    let got = b.inbox("carol@remote.example")[0].clone();
    assert!(got.ends_with(&msg), "the body changed on its way");
    let got = String::from_utf8(got).expect("utf8");
    let seal = field(&got, "ARC-Seal").expect("ARC-Seal");
    assert!(seal.contains("i=1") && seal.contains("cv=none"), "{seal}");
    let ar = field(&got, "Authentication-Results").expect("AR");
    assert!(ar.contains("arc=pass"), "{ar}");
    assert!(!ar.contains("dkim=policy"), "{ar}");
    let records: Vec<String> = a
        .cli(&["dkim", "list"])
        .lines()
        .filter_map(|l| l.split('\t').nth(4))
        .filter_map(|rr| rr.split_once(". IN TXT "))
        .map(|(n, v)| format!("{n}={}", v.trim_matches('"')))
        .collect();
    let verdict = dkimpy_arc(&records, got.as_bytes());
    assert!(verdict.starts_with("pass"), "{verdict}");
}

fn dkimpy_arc(records: &[String], raw: &[u8]) -> String {
    use std::io::Write;
    let mut p = Command::new("python3")
        .arg("-c")
        .arg(ARC_VERIFY)
        .args(records)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with dkimpy (scripts/test-deps)");
    p.stdin
        .take()
        .expect("stdin")
        .write_all(raw)
        .expect("write");
    let out = p.wait_with_output().expect("dkimpy");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_trusted_sealer_overrides_a_dmarc_rejection() {
    let dns = DnsServer::start(zone()).expect("dns");
    let (a, b) = servers(
        &dns,
        "dmarc_reject = true\ntrusted_arc_sealers = [\"example.test\"]",
    );
    let msg = MSG.replace("bob@sender.example", "bob@strict.example");
    // Straight to B, the DMARC failure is refused.
    let mut c = Smtp::connect(b.smtp);
    c.expect(220);
    c.cmd("EHLO client.example", 250);
    let r = c.send_mail(
        "bob@strict.example",
        &["carol@remote.example"],
        msg.as_bytes(),
    );
    assert_eq!(
        (r.code, common::enhanced(&r).as_str()),
        (550, "5.7.26"),
        "{r:?}"
    );
    // Through A's list, sealed by example.test, B trusts A's seal.
    let mut c = Smtp::connect(a.smtp);
    c.expect(220);
    c.cmd("EHLO client.example", 250);
    let r = c.send_mail("bob@strict.example", &["team@example.test"], msg.as_bytes());
    assert_eq!(r.code, 250);
    wait_until("carol's copy at B", || {
        !b.inbox("carol@remote.example").is_empty()
    });
    let got = String::from_utf8(b.inbox("carol@remote.example")[0].clone()).expect("utf8");
    let ar = field(&got, "Authentication-Results").expect("AR");
    assert!(ar.contains("arc=pass") && ar.contains("dmarc=fail"), "{ar}");
    let aar = field(&got, "ARC-Authentication-Results").expect("AAR");
    assert!(aar.contains("spf=fail"), "{aar}");
}
