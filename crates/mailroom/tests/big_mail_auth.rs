//! DKIM and DMARC on mail above `[store] spool_threshold` (issue 19, the
//! checks of issue 16), end to end: a signed 5 MiB message is spooled
//! while it arrives, its body hashes are computed in one streamed pass
//! over the spool file, and the stored Authentication-Results say what
//! they would for a small message: dkim=pass for both keys and
//! dmarc=pass by DKIM alignment; the same message with one body octet
//! changed gets dkim=fail (body hash) and dmarc=fail; several at once
//! keep the server's peak RSS bounded as `big_messages.rs` does.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Extra, Server, Smtp};
use testdns::{DnsServer, Zone};

const ALICE: &str = "alice@example.test";
const HOST: &str = "mx.example.test";
/// The default `[store] spool_threshold`.
const THRESHOLD: u64 = 1024 * 1024;
/// Each message: well past the threshold.
const SIZE: usize = 5 << 20;
/// Generous per-read timeout for several 5 MiB messages on two shared
/// cores with a debug build.
const SLOW: Duration = Duration::from_secs(300);

/// sender.example passes SPF from loopback and asks for rejection;
/// bounces.example is the (unaligned) envelope domain, so DMARC passes
/// only through the DKIM signature of sender.example.
fn zone(keys: &[(String, String)]) -> Zone {
    let mut z = Zone::new();
    z.txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.sender.example", "v=DMARC1; p=reject")
        .txt("bounces.example", "v=spf1 ip4:127.0.0.1 -all");
    for (name, value) in keys {
        z.txt(name, value);
    }
    z
}

/// RSA and Ed25519 keys for sender.example, and their records.
fn sender_keys(dir: &Path) -> Vec<(String, String)> {
    use delivery::dkim::{Algorithm, generate};
    [Algorithm::Rsa, Algorithm::Ed25519]
        .into_iter()
        .map(|a| {
            let k = generate(dir, "sender.example", None, a).expect("key");
            (k.record_name(), k.record())
        })
        .collect()
}

/// A message of about `SIZE` octets from bob@sender.example whose body
/// exercises relaxed body canonicalisation (RFC 6376 3.4.4): runs of WSP
/// inside lines, WSP at line ends, empty lines, and trailing empty
/// lines at the end. No line starts with a dot, so DATA needs no
/// stuffing.
fn message(seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = format!(
        "From: Bob <bob@sender.example>\r\nTo: {ALICE}\r\nSubject: big signed {seed}\r\n\
         Message-ID: <big-signed-{seed}@sender.example>\r\n\r\n"
    )
    .into_bytes();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut line = 0u64;
    while out.len() < SIZE {
        for i in 0..72 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(ALPHABET[(x % 64) as usize]);
            if i % 24 == 23 && line.is_multiple_of(3) {
                out.extend_from_slice(b" \t ");
            }
        }
        if line.is_multiple_of(5) {
            out.extend_from_slice(b"  \t");
        }
        out.extend_from_slice(b"\r\n");
        if line.is_multiple_of(101) {
            out.extend_from_slice(b"\r\n");
        }
        line += 1;
    }
    out.extend_from_slice(b"\r\n\r\n \r\n\r\n");
    out
}

fn send(s: &Server, from: &str, raw: &[u8]) -> u16 {
    let mut c = Smtp::connect(s.smtp);
    c.stream.set_read_timeout(Some(SLOW)).expect("timeout");
    c.expect(220);
    c.cmd("EHLO client.example", 250);
    c.send_mail(from, &[ALICE], raw).code
}

/// Our Authentication-Results of a stored message (below Return-Path),
/// unfolded, and the octets after our trace fields.
fn results_and_rest(stored: &[u8], sent_len: usize) -> (String, &[u8]) {
    let (trace, rest) = stored.split_at(stored.len() - sent_len);
    let text = String::from_utf8_lossy(trace);
    assert!(text.starts_with("Return-Path: <"), "{text}");
    let ar = text
        .split("\r\n")
        .skip(1)
        .take_while(|l| !l.starts_with("Received:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        ar.starts_with(&format!("Authentication-Results: {HOST};")),
        "{text}"
    );
    (ar, rest)
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
fn a_signed_5_mib_message_passes_dkim_and_dmarc_and_a_changed_one_fails() {
    let keys = tempfile::tempdir().expect("tempdir");
    let records = sender_keys(keys.path());
    let dns = DnsServer::start(zone(&records)).expect("dns");
    let s = Server::start_with_extra(Extra {
        top: format!("[relay]\nresolver = \"{}\"\n[checks]\n", dns.addr()),
        ..Extra::default()
    });
    let pid = s.pid().expect("pid");
    let signer = delivery::dkim::Signer::new(keys.path());

    // Several at once: each is spooled and hashed from its spool file.
    const COUNT: u64 = 6;
    let signed: Vec<Vec<u8>> = (0..COUNT).map(|i| signer.sign(message(i))).collect();
    std::thread::scope(|scope| {
        let jobs: Vec<_> = signed
            .iter()
            .map(|raw| scope.spawn(|| send(&s, "b@bounces.example", raw)))
            .collect();
        for j in jobs {
            assert_eq!(j.join().expect("sender"), 250);
        }
    });
    let inbox = s.inbox(ALICE);
    assert_eq!(inbox.len(), COUNT as usize);
    for stored in &inbox {
        let sent = signed
            .iter()
            .find(|m| stored.ends_with(m))
            .expect("stored byte-identical after our trace fields");
        let (ar, _) = results_and_rest(stored, sent.len());
        assert_eq!(ar.matches("dkim=pass").count(), 2, "{ar}");
        assert!(
            ar.contains("header.s=mr-rsa") && ar.contains("header.s=mr-ed"),
            "{ar}"
        );
        assert!(
            ar.contains("dmarc=pass") && ar.contains("header.from=sender.example"),
            "{ar}"
        );
        assert!(!ar.contains("dkim=policy"), "{ar}");
    }
    let peak = peak_rss(pid);
    eprintln!(
        "{COUNT} signed messages of {} MiB: peak RSS {} MiB",
        SIZE >> 20,
        peak >> 20
    );
    let bound = (200 << 20) + 2 * COUNT * THRESHOLD;
    assert!(
        peak < bound,
        "peak RSS {} MiB over {} MiB",
        peak >> 20,
        bound >> 20
    );

    // One octet of the body changed after signing, deep in the spooled
    // part: the body hash fails for both keys, and so does DMARC (p=reject
    // recorded; record only by default).
    let mut changed = signed.first().expect("signed").clone();
    let at = changed.len() / 2;
    let octet = changed.get_mut(at).expect("middle");
    *octet = if *octet == b'A' { b'B' } else { b'A' };
    assert_eq!(send(&s, "b@bounces.example", &changed), 250);
    let inbox = s.inbox(ALICE);
    let stored = inbox.last().expect("changed one");
    let (ar, rest) = results_and_rest(stored, changed.len());
    assert!(rest == changed.as_slice(), "stored as sent");
    assert_eq!(ar.matches("dkim=fail").count(), 2, "{ar}");
    assert!(ar.contains("body hash"), "{ar}");
    assert!(
        ar.contains("dmarc=fail") && ar.contains("policy.dmarc=reject"),
        "{ar}"
    );
}

#[test]
fn dmarc_reject_refuses_a_changed_big_message_as_it_would_a_small_one() {
    let keys = tempfile::tempdir().expect("tempdir");
    let records = sender_keys(keys.path());
    let dns = DnsServer::start(zone(&records)).expect("dns");
    let s = Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\n[checks]\ndmarc_reject = true\n",
            dns.addr()
        ),
        ..Extra::default()
    });
    let signer = delivery::dkim::Signer::new(keys.path());
    let good = signer.sign(message(7));
    assert_eq!(send(&s, "b@bounces.example", &good), 250);
    let text = String::from_utf8(good).expect("ascii");
    // The last line of text changed: the body hash no longer matches.
    let changed = text.replacen("\r\n\r\n \r\n", "\r\n\r\nX\r\n", 1);
    assert_ne!(changed, text);
    let mut c = Smtp::connect(s.smtp);
    c.stream.set_read_timeout(Some(SLOW)).expect("timeout");
    c.expect(220);
    c.cmd("EHLO client.example", 250);
    let r = c.send_mail("b@bounces.example", &[ALICE], changed.as_bytes());
    assert_eq!(
        (r.code, common::enhanced(&r).as_str()),
        (550, "5.7.26"),
        "{r:?}"
    );
    assert_eq!(s.inbox(ALICE).len(), 1);
}

#[test]
fn a_header_section_too_long_to_hold_is_recorded_as_not_verified() {
    // Over MAX_SPOOLED_HEAD (256 KiB) of header fields: the signatures
    // cannot be evaluated from the part held in memory, so DKIM is
    // `policy` (RFC 8601 2.7.1) and DMARC refuses nothing, while SPF is
    // still checked.
    let keys = tempfile::tempdir().expect("tempdir");
    let records = sender_keys(keys.path());
    let dns = DnsServer::start(zone(&records)).expect("dns");
    let s = Server::start_with_extra(Extra {
        top: format!(
            "[relay]\nresolver = \"{}\"\n[checks]\ndmarc_reject = true\n",
            dns.addr()
        ),
        ..Extra::default()
    });
    let signer = delivery::dkim::Signer::new(keys.path());
    let mut fields = String::new();
    for i in 0..4000 {
        fields.push_str(&format!("X-Filler-{i}: {}\r\n", "x".repeat(70)));
    }
    let msg = message(9);
    let text = String::from_utf8(msg).expect("ascii");
    let long = text.replacen("Subject:", &format!("{fields}Subject:"), 1);
    let signed = signer.sign(long.into_bytes());
    assert_eq!(send(&s, "b@bounces.example", &signed), 250);
    let inbox = s.inbox(ALICE);
    let (ar, rest) = results_and_rest(inbox.last().expect("stored"), signed.len());
    assert!(rest == signed.as_slice(), "stored as sent");
    assert!(
        ar.contains("dkim=policy (header section too long or unreadable: not verified)"),
        "{ar}"
    );
    assert!(ar.contains("spf=pass"), "{ar}");
    assert!(!ar.contains("dmarc="), "{ar}");
}
