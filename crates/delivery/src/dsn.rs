//! Delivery status notifications: the message that tells a sender what
//! became of their mail (RFC 3464), in the multipart/report container of
//! RFC 6522, or its internationalised form for SMTPUTF8 mail (RFC 6533).
//!
//! One report per message and failure batch (issue 13): a text/plain
//! explanation, ONE message/delivery-status part holding the per-message
//! fields (RFC 3464 2.2) and one group of per-recipient fields (2.3) for
//! each recipient it is about, then the original's header section
//! (text/rfc822-headers, RET=HDRS, the default) or the whole original
//! (message/rfc822, RET=FULL, failures only: RFC 3461 4.3).
//! `Auto-Submitted: auto-replied` (RFC 3834 5) keeps responders quiet.

use proto_smtp::xtext_decode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::trace;

/// Longest Diagnostic-Code text kept: a field stays well under RFC 5322
/// 2.1.1's 998 octets per line whatever the remote server said.
pub const MAX_DIAGNOSTIC: usize = 900;

/// RFC 3464 2.3.3 `action-value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient's per-recipient fields (RFC 3464 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The address we tried (Final-Recipient, 2.3.2).
    pub recipient: String,
    /// The ORCPT parameter as received, `type;xtext` (Original-Recipient,
    /// 2.3.1; RFC 3461 4.2 asks that it be passed back).
    pub orcpt: Option<String>,
    pub action: Action,
    /// RFC 3463 status code, e.g. `5.1.1`.
    pub status: String,
    /// The remote server's reply (Diagnostic-Code: smtp; ..., 2.3.6).
    pub diagnostic: Option<String>,
    /// The server that gave it (Remote-MTA: dns; ..., 2.3.5).
    pub remote_mta: Option<String>,
    /// For a delay: until when we keep trying (Will-Retry-Until, 2.3.8).
    pub retry_until: Option<i64>,
}

impl RecipientReport {
    /// The report for an outcome text as the client and worker make them
    /// (`550 5.1.1 text`, `556 5.1.10 domain: ...`, `network: ...`):
    /// Status from its enhanced code, else from its reply class, else
    /// `default_status`; Diagnostic-Code only for a reply with a code.
    pub fn from_reply(
        recipient: &str,
        orcpt: Option<&str>,
        action: Action,
        reply: &str,
        default_status: &str,
        remote_mta: Option<&str>,
    ) -> RecipientReport {
        let (status, diagnostic) = status_of(reply, default_status);
        RecipientReport {
            recipient: recipient.to_string(),
            orcpt: orcpt.map(str::to_string),
            action,
            status,
            diagnostic,
            remote_mta: remote_mta
                .filter(|h| !h.is_empty() && *h != "-")
                .map(|h| h.split('[').next().unwrap_or(h).to_string()),
            retry_until: None,
        }
    }
}

/// The status code and the SMTP diagnostic of an outcome text.
pub fn status_of(reply: &str, default_status: &str) -> (String, Option<String>) {
    // "expired after 10 s: 451 4.3.0 ..." carries the last reply.
    let reply = reply.rsplit_once(": ").map_or(reply, |(head, tail)| {
        if head.starts_with("expired") {
            tail
        } else {
            reply
        }
    });
    let mut words = reply.split_whitespace();
    let code = words
        .next()
        .filter(|w| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()));
    let Some(code) = code else {
        return (default_status.to_string(), None);
    };
    let enhanced = words.next().filter(|w| is_status(w));
    let status = match enhanced {
        Some(e) => e.to_string(),
        None => match code.as_bytes().first() {
            Some(b'5') => "5.0.0".to_string(),
            Some(b'4') => "4.0.0".to_string(),
            _ => "2.0.0".to_string(),
        },
    };
    let mut diag: String = reply.chars().filter(|c| !c.is_control()).collect();
    if diag.len() > MAX_DIAGNOSTIC {
        let mut cut = MAX_DIAGNOSTIC;
        while !diag.is_char_boundary(cut) {
            cut -= 1;
        }
        diag.truncate(cut);
    }
    (status, Some(diag))
}

/// RFC 3463 2: `class "." subject "." detail`, class 2, 4 or 5.
fn is_status(w: &str) -> bool {
    let parts: Vec<&str> = w.split('.').collect();
    match parts.as_slice() {
        [c, s, d] => {
            matches!(*c, "2" | "4" | "5")
                && (1..=3).contains(&s.len())
                && (1..=3).contains(&d.len())
                && s.bytes().chain(d.bytes()).all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// What a report is about and for whom.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// Our host name (Reporting-MTA, From's domain, Message-ID's right side).
    pub reporting_mta: &'a str,
    /// The DSN's recipient: the original reverse-path.
    pub to: &'a str,
    /// RFC 3461 ENVID as received (xtext); Original-Envelope-Id decoded.
    pub envid: Option<&'a str>,
    /// When we received the message (Arrival-Date), unix seconds.
    pub arrival: Option<i64>,
    pub recipients: Vec<RecipientReport>,
    /// The original message as we queued it.
    pub original: &'a [u8],
    /// RET=FULL: the whole original (for failures), else its headers.
    pub full: bool,
    /// The message came with SMTPUTF8: the RFC 6533 types.
    pub utf8: bool,
}

fn date(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|d| d.format(&Rfc2822).ok())
        .unwrap_or_else(trace::rfc5322_now)
}

/// An address-type and address for Final-/Original-Recipient: `rfc822`
/// for ASCII, `utf-8` for the rest (RFC 6533 3).
fn typed_address(address: &str) -> String {
    if address.is_ascii() {
        format!("rfc822; {address}")
    } else {
        format!("utf-8; {address}")
    }
}

/// ORCPT `type;xtext` as Original-Recipient `type; address`.
fn original_recipient(orcpt: &str) -> Option<String> {
    let (kind, value) = orcpt.split_once(';')?;
    let decoded = xtext_decode(value)?;
    if decoded.chars().any(char::is_control) {
        return None;
    }
    Some(format!("{kind}; {decoded}"))
}

/// The DSN message (CRLF), ready for local delivery or the queue.
pub fn build(r: &Report<'_>) -> Vec<u8> {
    let id = trace::new_queue_id();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let boundary = format!("{id}/{}", r.reporting_mta);
    let failed = r.recipients.iter().any(|x| x.action == Action::Failed);
    let delayed = r.recipients.iter().any(|x| x.action == Action::Delayed);
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else if delayed {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };
    let mut m = String::new();
    let mut h = |name: &str, value: &str| {
        m.push_str(name);
        m.push_str(": ");
        m.push_str(value);
        m.push_str("\r\n");
    };
    h(
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{}>", r.reporting_mta),
    );
    h("To", &format!("<{}>", r.to));
    h("Subject", subject);
    h("Date", &date(now));
    h("Message-ID", &format!("<{id}@{}>", r.reporting_mta));
    h("Auto-Submitted", "auto-replied");
    h("MIME-Version", "1.0");
    h(
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""),
    );
    m.push_str("\r\nThis is a MIME-encapsulated message.\r\n\r\n");

    // The human-readable part (RFC 6522 3).
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Description: Notification\r\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    m.push_str(&format!(
        "This is the mail system at host {}.\r\n\r\n",
        r.reporting_mta
    ));
    m.push_str(if failed {
        "I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients. It's attached below.\r\n"
    } else if delayed {
        "Your message could not be delivered yet to one or more recipients.\r\n\
         It will be retried; you need not send it again.\r\n"
    } else {
        "Your message was delivered (or passed on to a system that\r\n\
         does not report delivery) for the recipients below.\r\n"
    });
    m.push_str("\r\n");
    for x in &r.recipients {
        let why = x.diagnostic.as_deref().unwrap_or(&x.status);
        m.push_str(&format!(
            "<{}>: {}: {why}\r\n",
            x.recipient,
            x.action.as_str()
        ));
    }
    m.push_str("\r\n");

    // The machine-readable part (RFC 3464 2.1): per-message fields, then
    // one block per recipient, each after an empty line.
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Description: Delivery report\r\n");
    m.push_str(if r.utf8 {
        // RFC 6533 6.1: its fields may carry UTF-8, sent as 8bit.
        "Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    } else {
        "Content-Type: message/delivery-status\r\n\r\n"
    });
    m.push_str(&format!("Reporting-MTA: dns; {}\r\n", r.reporting_mta));
    if let Some(envid) = r.envid.and_then(xtext_decode)
        && !envid.chars().any(char::is_control)
    {
        m.push_str(&format!("Original-Envelope-Id: {envid}\r\n"));
    }
    if let Some(arrival) = r.arrival {
        m.push_str(&format!("Arrival-Date: {}\r\n", date(arrival)));
    }
    for x in &r.recipients {
        m.push_str("\r\n");
        if let Some(o) = x.orcpt.as_deref().and_then(original_recipient) {
            m.push_str(&format!("Original-Recipient: {o}\r\n"));
        }
        m.push_str(&format!(
            "Final-Recipient: {}\r\n",
            typed_address(&x.recipient)
        ));
        m.push_str(&format!("Action: {}\r\n", x.action.as_str()));
        m.push_str(&format!("Status: {}\r\n", x.status));
        if let Some(mta) = &x.remote_mta {
            m.push_str(&format!("Remote-MTA: dns; {mta}\r\n"));
        }
        if let Some(d) = &x.diagnostic {
            m.push_str(&format!("Diagnostic-Code: smtp; {d}\r\n"));
        }
        m.push_str(&format!("Last-Attempt-Date: {}\r\n", date(now)));
        if let Some(until) = x.retry_until {
            m.push_str(&format!("Will-Retry-Until: {}\r\n", date(until)));
        }
    }
    m.push_str("\r\n");

    // The original (RFC 3464 2.4, RFC 6522 3; RFC 6533 6.3, 6.4).
    let full = r.full && failed;
    m.push_str(&format!("--{boundary}\r\n"));
    let (kind, description) = match (full, r.utf8) {
        (true, false) => ("message/rfc822", "Undelivered Message"),
        (true, true) => ("message/global", "Undelivered Message"),
        (false, false) => ("text/rfc822-headers", "Message Headers"),
        (false, true) => ("message/global-headers", "Message Headers"),
    };
    m.push_str(&format!("Content-Description: {description}\r\n"));
    m.push_str(&format!("Content-Type: {kind}\r\n"));
    if !r.original.is_ascii() {
        m.push_str("Content-Transfer-Encoding: 8bit\r\n");
    }
    m.push_str("\r\n");
    let mut out = m.into_bytes();
    let part = if full {
        r.original
    } else {
        r.original
            .get(..trace::header_len(r.original))
            .unwrap_or(r.original)
    };
    out.extend_from_slice(part);
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The store write for a DSN message to `targets`: its reverse-path is
/// `<>` (RFC 5321 4.5.5), so local copies get `Return-Path: <>` and queued
/// ones leave with MAIL FROM:<>. `notice` marks a notice to postmaster,
/// about which nothing more is ever made.
pub fn delivery(
    message: &[u8],
    targets: &crate::Targets,
    utf8: bool,
    notice: bool,
) -> Option<store::Delivery> {
    let envelope = crate::Envelope {
        smtputf8: utf8,
        ..crate::Envelope::default()
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut d = crate::build(message, "", None, targets, now, &envelope)?;
    if let Some(o) = d.outbound.as_mut() {
        o.notice = notice;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &[u8] =
        b"Received: from x\r\nSubject: hello\r\nMessage-ID: <m1@x>\r\n\r\nthe body\r\n";

    fn failed(rcpt: &str, reply: &str) -> RecipientReport {
        RecipientReport::from_reply(
            rcpt,
            Some("rfc822;Bob+40Example.COM"),
            Action::Failed,
            reply,
            "5.0.0",
            Some("mx.remote.example[192.0.2.1]"),
        )
    }

    fn report(recipients: Vec<RecipientReport>, full: bool, utf8: bool) -> String {
        let r = Report {
            reporting_mta: "mx.example.test",
            to: "alice@example.test",
            envid: Some("QQ314159+2B"),
            arrival: Some(1_000_000_000),
            recipients,
            original: ORIGINAL,
            full,
            utf8,
        };
        String::from_utf8(build(&r)).unwrap()
    }

    /// The parts between the boundaries, each with its own headers.
    fn parts(m: &str) -> Vec<String> {
        let b = m
            .split("boundary=\"")
            .nth(1)
            .and_then(|x| x.split('"').next())
            .unwrap();
        let sep = format!("--{b}");
        let mut v: Vec<String> = m.split(&sep).skip(1).map(str::to_string).collect();
        assert_eq!(
            v.pop().as_deref().map(str::trim),
            Some("--"),
            "closing boundary"
        );
        v
    }

    #[test]
    fn a_failure_report_has_three_parts_and_the_rfc_3464_fields() {
        let m = report(
            vec![
                failed(
                    "bob@remote.example",
                    "550 5.1.1 <bob@remote.example>: no such user",
                ),
                failed("carol@remote.example", "552 mailbox full"),
            ],
            false,
            false,
        );
        assert!(m.contains("Auto-Submitted: auto-replied\r\n"));
        assert!(m.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        let p = parts(&m);
        assert_eq!(p.len(), 3);
        assert!(p[0].contains("Content-Type: text/plain"));
        assert!(p[1].contains("Content-Type: message/delivery-status\r\n"));
        // One per-message block, one block per recipient.
        let status = &p[1];
        assert_eq!(
            status
                .matches("Reporting-MTA: dns; mx.example.test")
                .count(),
            1
        );
        assert!(status.contains("Original-Envelope-Id: QQ314159+\r\n"));
        assert!(status.contains("Arrival-Date: "));
        assert_eq!(status.matches("Final-Recipient: ").count(), 2);
        assert!(status.contains("Original-Recipient: rfc822; Bob@Example.COM\r\n"));
        assert!(status.contains(
            "Final-Recipient: rfc822; bob@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(status.contains("Remote-MTA: dns; mx.remote.example\r\n"));
        assert!(
            status.contains(
                "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.example>: no such user\r\n"
            )
        );
        // No enhanced code: the class.
        assert!(status.contains("Status: 5.0.0\r\n"));
        assert!(p[2].contains("Content-Type: text/rfc822-headers\r\n"));
        assert!(p[2].contains("Subject: hello"));
        assert!(!p[2].contains("the body"), "RET=HDRS: headers only");
    }

    #[test]
    fn rfc_3464_appendix_simple_dsn_fields() {
        // RFC 3464 appendix "Simple DSN": louisl@larry.slip.umd.edu timed
        // out with 426 and no enhanced code, reported by cs.utk.edu as
        // Status 4.0.0 (the reply's class).
        let x = RecipientReport::from_reply(
            "louisl@larry.slip.umd.edu",
            Some("rfc822;louisl@larry.slip.umd.edu"),
            Action::Failed,
            "426 connection timed out",
            "5.0.0",
            None,
        );
        let r = Report {
            reporting_mta: "cs.utk.edu",
            to: "owner@cs.utk.edu",
            envid: None,
            arrival: None,
            recipients: vec![x],
            original: ORIGINAL,
            full: false,
            utf8: false,
        };
        let m = String::from_utf8(build(&r)).unwrap();
        let status = &parts(&m)[1];
        for field in [
            "Reporting-MTA: dns; cs.utk.edu\r\n\r\n",
            "Original-Recipient: rfc822; louisl@larry.slip.umd.edu\r\n",
            "Final-Recipient: rfc822; louisl@larry.slip.umd.edu\r\n",
            "Action: failed\r\n",
            "Status: 4.0.0\r\n",
            "Diagnostic-Code: smtp; 426 connection timed out\r\n",
            "Last-Attempt-Date: ",
        ] {
            assert!(status.contains(field), "{field} in {status}");
        }
        assert!(!status.contains("Original-Envelope-Id"));
        assert!(!status.contains("Remote-MTA"));
    }

    #[test]
    fn ret_full_returns_the_whole_message() {
        let m = report(vec![failed("b@r.example", "550 5.1.1 no")], true, false);
        let p = parts(&m);
        assert!(p[2].contains("Content-Type: message/rfc822\r\n"));
        assert!(p[2].contains("the body"));
    }

    #[test]
    fn smtputf8_mail_gets_the_rfc_6533_types() {
        let m = report(vec![failed("jöran@r.example", "550 5.1.1 no")], true, true);
        let p = parts(&m);
        assert!(p[1].contains("Content-Type: message/global-delivery-status\r\n"));
        assert!(p[1].contains("Final-Recipient: utf-8; jöran@r.example"));
        assert!(p[2].contains("Content-Type: message/global\r\n"));
        let h = report(vec![failed("b@r.example", "550 5.1.1 no")], false, true);
        assert!(h.contains("Content-Type: message/global-headers\r\n"));
    }

    #[test]
    fn a_success_report_never_carries_the_body() {
        let ok = RecipientReport::from_reply(
            "b@r.example",
            None,
            Action::Relayed,
            "250 2.0.0 ok",
            "2.0.0",
            Some("-"),
        );
        let m = report(vec![ok], true, false);
        assert!(m.contains("Subject: Successful Mail Delivery Report"));
        assert!(m.contains("Action: relayed\r\nStatus: 2.0.0\r\n"));
        assert!(!m.contains("Remote-MTA"));
        assert!(!m.contains("the body"));
    }

    #[test]
    fn status_comes_from_the_reply_or_the_default() {
        assert_eq!(
            status_of("556 5.1.10 nomail.example: null MX", "5.0.0"),
            (
                "5.1.10".into(),
                Some("556 5.1.10 nomail.example: null MX".into())
            )
        );
        assert_eq!(
            status_of("network: connection refused", "4.4.1"),
            ("4.4.1".into(), None)
        );
        assert_eq!(
            status_of("expired after 9 s: 451 4.3.0 later", "4.4.7").0,
            "4.3.0"
        );
        assert_eq!(status_of("451 later", "x").0, "4.0.0");
        let long = format!("550 5.1.1 {}", "x".repeat(5000));
        assert!(status_of(&long, "5.0.0").1.unwrap().len() <= MAX_DIAGNOSTIC);
    }
}
