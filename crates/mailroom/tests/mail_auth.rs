//! Inbound authentication checks end to end (issue 16): mail arrives on
//! the MTA listener from loopback, the server asks the test DNS server
//! (`[relay] resolver`) for SPF, DKIM and DMARC records, and the stored
//! message carries one Authentication-Results field (RFC 8601) right
//! below Return-Path; `[checks]` policies refuse or file into Junk.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::path::Path;

use common::{Extra, Server, Smtp, enhanced};
use testdns::{DnsServer, Zone};

const ALICE: &str = "alice@example.test";
/// The test servers' host name: the authserv-id.
const HOST: &str = "mx.example.test";

/// SPF, DKIM and DMARC records for the sender domains of these tests;
/// the client is 127.0.0.1.
fn zone(keys: &[(String, String)]) -> Zone {
    let mut z = Zone::new();
    z.txt("pass.example", "v=spf1 ip4:127.0.0.1 -all")
        .txt("fail.example", "v=spf1 ip4:192.0.2.1 -all")
        .txt("soft.example", "v=spf1 ip4:192.0.2.1 ~all")
        .txt("neutral.example", "v=spf1 ?all")
        .a("none.example", "192.0.2.1".parse().expect("ip"))
        .servfail("temp.example")
        .txt("perm.example", "v=spf1 ip4:not-an-address -all")
        .null_mx("nullmx.example")
        .txt("nullmx.example", "v=spf1 ip4:127.0.0.1 -all")
        // DMARC: sender.example passes SPF from loopback; each policy.
        .txt("sender.example", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.sender.example", "v=DMARC1; p=reject")
        .txt("_dmarc.quarantine.example", "v=DMARC1; p=quarantine")
        .txt("quarantine.example", "v=spf1 -all")
        .txt("_dmarc.nopolicy.example", "v=DMARC1; p=none")
        .txt("nopolicy.example", "v=spf1 -all")
        .txt("bounces.example", "v=spf1 ip4:127.0.0.1 -all");
    // RFC 7208 4.6.4: at most 10 DNS-querying mechanisms. 10 `a:` terms
    // then the matching ip4 pass; 11 are a permerror.
    for i in 1..=11 {
        z.a(
            &format!("h{i}.limits.example"),
            "192.0.2.9".parse().expect("ip"),
        );
    }
    let terms = |n: usize| {
        (1..=n)
            .map(|i| format!("a:h{i}.limits.example"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    z.txt(
        "ten.example",
        &format!("v=spf1 {} ip4:127.0.0.1 -all", terms(10)),
    )
    .txt(
        "eleven.example",
        &format!("v=spf1 {} ip4:127.0.0.1 -all", terms(11)),
    );
    // RFC 7208 4.6.4: at most two void lookups (names that do not
    // exist). Two then a match pass; a third, by `a` or `mx`, is a
    // permerror; an `exists` that finds its name is not void.
    z.txt(
        "twovoid.example",
        "v=spf1 a:v1.void.example mx:v2.void.example ip4:127.0.0.1 -all",
    )
    .txt(
        "threevoid.example",
        "v=spf1 a:v1.void.example mx:v2.void.example a:v3.void.example ip4:127.0.0.1 -all",
    )
    .txt(
        "existsvoid.example",
        "v=spf1 a:v1.void.example a:v2.void.example exists:h1.limits.example -all",
    );
    for (name, value) in keys {
        z.txt(name, value);
    }
    z
}

fn server(dns: &DnsServer, checks: &str) -> Server {
    Server::start_with_extra(Extra {
        top: format!("[relay]\nresolver = \"{}\"\n[checks]\n{checks}", dns.addr()),
        ..Extra::default()
    })
}

/// One message to alice over the MTA listener, after EHLO `helo`.
fn send(s: &Server, helo: &str, from: &str, msg: &[u8]) -> proto_smtp::Reply {
    let mut c = Smtp::connect(s.smtp);
    c.expect(220);
    c.cmd(&format!("EHLO {helo}"), 250);
    c.send_mail(from, &[ALICE], msg)
}

fn message(from: &str, subject: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\nhello\r\n").into_bytes()
}

/// The header section's fields, unfolded, in order.
fn fields(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    let mut out: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            out.push(line.to_string());
        }
    }
    out
}

/// The Authentication-Results of alice's newest INBOX message, checked to
/// be the only one with our authserv-id, directly below Return-Path and
/// above our Received.
fn results(s: &Server) -> String {
    let inbox = s.inbox(ALICE);
    let raw = inbox.last().expect("a message");
    results_of(raw)
}

fn results_of(raw: &[u8]) -> String {
    let f = fields(raw);
    assert!(f[0].starts_with("Return-Path:"), "{f:#?}");
    assert!(
        f[1].starts_with(&format!("Authentication-Results: {HOST};")),
        "{f:#?}"
    );
    assert!(f[2].starts_with("Received:"), "{f:#?}");
    let ours = f
        .iter()
        .filter(|l| l.starts_with(&format!("Authentication-Results: {HOST}")))
        .count();
    assert_eq!(ours, 1, "{f:#?}");
    f[1].clone()
}

/// The raw messages of one of `account`'s mailboxes.
fn mailbox(s: &Server, account: &str, name: &str) -> Vec<Vec<u8>> {
    let store = s.store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let Some(mb) = store
            .mailbox(account.to_string(), name.to_string())
            .await
            .expect("mailbox")
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in store.messages(mb.id).await.expect("messages") {
            out.push(store.read_body(m.body).await.expect("body"));
        }
        out
    })
}

#[test]
fn spf_results_for_each_outcome_and_the_lookup_limit() {
    let dns = DnsServer::start(zone(&[])).expect("dns");
    let s = server(&dns, "");
    let cases = [
        ("pass.example", "spf=pass"),
        ("fail.example", "spf=fail"),
        ("soft.example", "spf=softfail"),
        ("neutral.example", "spf=neutral"),
        ("none.example", "spf=none"),
        ("temp.example", "spf=temperror"),
        ("perm.example", "spf=permerror"),
        ("ten.example", "spf=pass"),
        ("eleven.example", "spf=permerror"),
        ("twovoid.example", "spf=pass"),
        ("threevoid.example", "spf=permerror"),
        ("existsvoid.example", "spf=pass"),
    ];
    for (domain, want) in cases {
        let from = format!("bob@{domain}");
        let r = send(&s, "client.example", &from, &message(&from, domain));
        assert_eq!(r.code, 250, "{domain}: {r:?}");
        let ar = results(&s);
        assert!(
            ar.contains(&format!("{want} ")) && ar.contains(&format!("smtp.mailfrom={from}")),
            "{domain}: {ar}"
        );
    }
    // The null reverse-path is checked as postmaster@HELO (RFC 7208 2.4).
    let r = send(&s, "pass.example", "", &message("x@pass.example", "bounce"));
    assert_eq!(r.code, 250);
    let ar = results(&s);
    assert!(ar.contains("smtp.helo=pass.example"), "{ar}");
    assert!(ar.contains("spf=pass"), "{ar}");
}

#[test]
fn spf_reject_refuses_a_failing_sender_and_tempfail_a_dns_error() {
    let dns = DnsServer::start(zone(&[])).expect("dns");
    let s = server(
        &dns,
        "spf_reject = true\ntempfail_on_dns_error = true\nnull_mx_reject = true",
    );
    let r = send(
        &s,
        "client.example",
        "bob@fail.example",
        &message("bob@fail.example", "f"),
    );
    assert_eq!((r.code, enhanced(&r).as_str()), (550, "5.7.23"), "{r:?}");
    let r = send(
        &s,
        "client.example",
        "bob@temp.example",
        &message("bob@temp.example", "t"),
    );
    assert_eq!((r.code, enhanced(&r).as_str()), (451, "4.7.24"), "{r:?}");
    let r = send(
        &s,
        "client.example",
        "bob@nullmx.example",
        &message("bob@nullmx.example", "n"),
    );
    assert_eq!((r.code, enhanced(&r).as_str()), (550, "5.7.27"), "{r:?}");
    // A HELO that fails SPF is refused too (RFC 7208 2.3), even with a
    // MAIL FROM that passes.
    let r = send(
        &s,
        "fail.example",
        "bob@pass.example",
        &message("bob@pass.example", "h"),
    );
    assert_eq!((r.code, enhanced(&r).as_str()), (550, "5.7.23"), "{r:?}");
    // Softfail is not fail: accepted and recorded.
    let r = send(
        &s,
        "client.example",
        "bob@soft.example",
        &message("bob@soft.example", "s"),
    );
    assert_eq!(r.code, 250);
    assert!(results(&s).contains("spf=softfail"));
    assert_eq!(s.inbox(ALICE).len(), 1);
}

/// Keys for sender.example made by `delivery::dkim` (what `mailroom dkim
/// generate` writes), and their DNS records.
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

fn signed(dir: &Path, msg: &[u8]) -> Vec<u8> {
    delivery::dkim::Signer::new(dir).sign(msg.to_vec())
}

#[test]
fn dkim_pass_for_rsa_and_ed25519_and_fail_for_a_changed_body_or_header() {
    let keys = tempfile::tempdir().expect("tempdir");
    let records = sender_keys(keys.path());
    let dns = DnsServer::start(zone(&records)).expect("dns");
    let s = server(&dns, "");
    let from = "bob@sender.example";

    let good = signed(keys.path(), &message(from, "signed"));
    assert_eq!(send(&s, "client.example", from, &good).code, 250);
    let ar = results(&s);
    assert_eq!(ar.matches("dkim=pass").count(), 2, "{ar}");
    assert!(
        ar.contains("header.s=mr-rsa") && ar.contains("header.s=mr-ed"),
        "{ar}"
    );
    assert!(ar.contains("dmarc=pass"), "{ar}");

    // Bad body hash: the body changed after signing.
    let text = String::from_utf8(good.clone()).expect("utf8");
    let body_changed = text.replace("hello\r\n", "hello, changed\r\n");
    assert_eq!(
        send(&s, "client.example", from, body_changed.as_bytes()).code,
        250
    );
    let ar = results(&s);
    assert_eq!(ar.matches("dkim=fail").count(), 2, "{ar}");
    assert!(ar.contains("body hash"), "{ar}");

    // Bad signature: a signed header changed.
    let header_changed = text.replace("Subject: signed", "Subject: forged");
    assert_eq!(
        send(&s, "client.example", from, header_changed.as_bytes()).code,
        250
    );
    let ar = results(&s);
    assert_eq!(ar.matches("dkim=fail").count(), 2, "{ar}");
    assert!(!ar.contains("body hash"), "{ar}");
}

#[test]
fn an_expired_dkim_signature_does_not_pass() {
    let keys = tempfile::tempdir().expect("tempdir");
    let records = sender_keys(keys.path());
    let dns = DnsServer::start(zone(&records)).expect("dns");
    let s = server(&dns, "");
    let from = "bob@sender.example";
    let good = String::from_utf8(signed(keys.path(), &message(from, "old"))).expect("utf8");
    // t= and x= (RFC 6376 3.5) in the past: the signature expired (and
    // is refused before its cryptography is looked at).
    let t = good
        .split("; t=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .expect("t=");
    let expired = good.replace(&format!("; t={t}"), "; t=999999000; x=1000000000");
    assert_ne!(expired, good);
    assert_eq!(
        send(&s, "client.example", from, expired.as_bytes()).code,
        250
    );
    // mail-auth records an expired signature as neutral ("signature
    // error"), where a broken one (the changed t= alone) would be fail:
    // the expiry is what was found.
    let ar = results(&s);
    assert_eq!(
        ar.matches("dkim=neutral (signature error)").count(),
        2,
        "{ar}"
    );
    assert!(
        !ar.contains("dkim=pass") && !ar.contains("dkim=fail"),
        "{ar}"
    );
}

#[test]
fn dmarc_passes_by_spf_or_by_dkim_alignment_and_fails_under_each_policy() {
    let keys = tempfile::tempdir().expect("tempdir");
    let records = sender_keys(keys.path());
    let dns = DnsServer::start(zone(&records)).expect("dns");
    let s = server(&dns, "");
    let from = "bob@sender.example";

    // Aligned SPF (MAIL FROM and From in sender.example), no signature.
    assert_eq!(
        send(&s, "client.example", from, &message(from, "spf")).code,
        250
    );
    let ar = results(&s);
    assert!(
        ar.contains("dmarc=pass") && ar.contains("header.from=sender.example"),
        "{ar}"
    );

    // Aligned DKIM, SPF for another domain.
    let msg = signed(keys.path(), &message(from, "dkim"));
    assert_eq!(
        send(&s, "client.example", "b@bounces.example", &msg).code,
        250
    );
    let ar = results(&s);
    assert!(ar.contains("dmarc=pass") && ar.contains("spf=pass"), "{ar}");

    // Neither aligned: fail, recorded with the policy, delivered (record
    // only by default).
    for (domain, policy) in [
        ("sender.example", "reject"),
        ("quarantine.example", "quarantine"),
        ("nopolicy.example", "none"),
    ] {
        let from = format!("bob@{domain}");
        let r = send(
            &s,
            "client.example",
            "b@bounces.example",
            &message(&from, domain),
        );
        assert_eq!(r.code, 250);
        let ar = results(&s);
        assert!(
            ar.contains("dmarc=fail") && ar.contains(&format!("policy.dmarc={policy}")),
            "{domain}: {ar}"
        );
    }
}

#[test]
fn dmarc_reject_refuses_and_dmarc_quarantine_files_into_junk() {
    let dns = DnsServer::start(zone(&[])).expect("dns");
    let s = server(&dns, "dmarc_reject = true\ndmarc_quarantine = true");
    let r = send(
        &s,
        "client.example",
        "b@bounces.example",
        &message("bob@sender.example", "reject me"),
    );
    assert_eq!((r.code, enhanced(&r).as_str()), (550, "5.7.26"), "{r:?}");
    let r = send(
        &s,
        "client.example",
        "b@bounces.example",
        &message("bob@quarantine.example", "junk me"),
    );
    assert_eq!(r.code, 250);
    let r = send(
        &s,
        "client.example",
        "b@bounces.example",
        &message("bob@nopolicy.example", "p=none"),
    );
    assert_eq!(r.code, 250);
    // Only p=none reached the INBOX; the quarantined one is in Junk.
    let inbox = s.inbox(ALICE);
    assert_eq!(inbox.len(), 1);
    assert!(String::from_utf8_lossy(&inbox[0]).contains("Subject: p=none"));
    let junk = mailbox(&s, ALICE, "Junk");
    assert_eq!(junk.len(), 1);
    let ar = results_of(&junk[0]);
    assert!(
        ar.contains("dmarc=fail") && ar.contains("policy.dmarc=quarantine"),
        "{ar}"
    );
}

#[test]
fn a_forged_result_is_removed_and_submissions_get_auth_pass() {
    let dns = DnsServer::start(zone(&[])).expect("dns");
    let s = server(&dns, "");
    let forged = format!(
        "Authentication-Results: {HOST}; dkim=pass header.d=pass.example\r\n\
Authentication-Results: other.example; spf=pass\r\n{}",
        String::from_utf8(message("bob@fail.example", "forged")).expect("utf8")
    );
    assert_eq!(
        send(&s, "client.example", "bob@fail.example", forged.as_bytes()).code,
        250
    );
    let ar = results(&s);
    assert!(ar.contains("spf=fail") && !ar.contains("dkim=pass"), "{ar}");
    let inbox = s.inbox(ALICE);
    let raw = String::from_utf8_lossy(inbox.last().expect("message"));
    // Another server's results are not ours to remove (RFC 8601 5).
    assert!(
        raw.contains("Authentication-Results: other.example; spf=pass"),
        "{raw}"
    );

    let mut c = Smtp::connect(s.submission).ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    assert_eq!(
        c.send_mail(ALICE, &[ALICE], &message(ALICE, "mine")).code,
        250
    );
    let ar = results(&s);
    assert!(ar.contains(&format!("auth=pass smtp.auth={ALICE}")), "{ar}");
    assert!(!ar.contains("spf=") && !ar.contains("dmarc="), "{ar}");
}

#[test]
fn checks_switched_off_add_no_field() {
    let dns = DnsServer::start(zone(&[])).expect("dns");
    let s = server(&dns, "enabled = false\nspf_reject = true");
    let r = send(
        &s,
        "client.example",
        "bob@fail.example",
        &message("bob@fail.example", "f"),
    );
    assert_eq!(r.code, 250);
    let inbox = s.inbox(ALICE);
    let f = fields(&inbox[0]);
    assert!(
        f[0].starts_with("Return-Path:") && f[1].starts_with("Received:"),
        "{f:#?}"
    );
    assert_eq!(dns.queries(), 0);
}

#[test]
fn a_dns_server_that_never_answers_is_bounded_by_the_checks_timeout() {
    let mut z = zone(&[]);
    z.silent("slow.example");
    let dns = DnsServer::start(z).expect("dns");
    let s = server(&dns, "timeout = 2");
    let r = send(
        &s,
        "client.example",
        "bob@slow.example",
        &message("bob@slow.example", "slow"),
    );
    assert_eq!(r.code, 250, "{r:?}");
    assert!(results(&s).contains("temperror"));
}
