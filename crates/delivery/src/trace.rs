//! Trace fields added to every accepted message (RFC 5321 4.4) and the
//! header work around them: the Received field, Return-Path on local
//! delivery, removal of fields that must not be trusted, and the hop count
//! of RFC 5321 6.3.

use std::sync::atomic::{AtomicU32, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// The header section: everything up to and including the empty line (or
/// the whole message when it has no body separator).
pub fn header_len(msg: &[u8]) -> usize {
    if msg.starts_with(b"\r\n") {
        return 2;
    }
    msg.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(msg.len(), |p| p + 4)
}

/// True when the header line starting at `line` names the field `name`
/// (case-insensitive, RFC 5322 2.2).
fn is_field(line: &[u8], name: &str) -> bool {
    let n = name.len();
    line.len() > n
        && line
            .get(..n)
            .is_some_and(|p| p.eq_ignore_ascii_case(name.as_bytes()))
        && line.get(n) == Some(&b':')
}

/// Iterates over the header fields of `msg` as (start, end) byte ranges,
/// each covering the field with its folded continuation lines and CRLF.
fn fields(msg: &[u8]) -> Vec<(usize, usize)> {
    let end = header_len(msg);
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    while pos < end {
        let line_end = msg
            .get(pos..end)
            .and_then(|s| s.windows(2).position(|w| w == b"\r\n"))
            .map_or(end, |p| pos + p + 2);
        let first = msg.get(pos).copied();
        if first == Some(b'\r') {
            break; // the empty line ending the header
        }
        let continuation = matches!(first, Some(b' ') | Some(b'\t'));
        match out.last_mut() {
            Some(last) if continuation => last.1 = line_end,
            _ => out.push((pos, line_end)),
        }
        pos = line_end;
    }
    out
}

/// Counts the Received fields: a message that has passed `MAX_HOPS` relays
/// is looping (RFC 5321 6.3).
pub fn count_received(msg: &[u8]) -> usize {
    fields(msg)
        .into_iter()
        .filter(|&(s, e)| msg.get(s..e).is_some_and(|f| is_field(f, "Received")))
        .count()
}

/// Removes fields that the sender must not set for us: Return-Path (RFC
/// 5321 4.4: only the final delivery adds it) and Authentication-Results
/// that claim our host name (RFC 8601 5). A message with none of them is
/// handed back as it came, not copied (issue 18).
pub fn strip_untrusted(msg: Vec<u8>, hostname: &str) -> Vec<u8> {
    let drops: Vec<(usize, usize)> = fields(&msg)
        .into_iter()
        .filter(|&(s, e)| {
            msg.get(s..e).is_some_and(|field| {
                is_field(field, "Return-Path")
                    || (is_field(field, "Authentication-Results") && claims_host(field, hostname))
            })
        })
        .collect();
    if drops.is_empty() {
        return msg;
    }
    let mut out = Vec::with_capacity(msg.len());
    let mut last = 0;
    for (s, e) in drops {
        out.extend_from_slice(msg.get(last..s).unwrap_or_default());
        last = e;
    }
    out.extend_from_slice(msg.get(last..).unwrap_or_default());
    out
}

fn claims_host(field: &[u8], hostname: &str) -> bool {
    let value = field
        .iter()
        .position(|&b| b == b':')
        .and_then(|p| field.get(p + 1..))
        .unwrap_or_default();
    let text = String::from_utf8_lossy(value);
    let authserv = text
        .trim_start()
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
        .unwrap_or("");
    authserv.eq_ignore_ascii_case(hostname)
}

/// What the Received field says about the session (RFC 5321 4.4, protocol
/// names from RFC 3848).
pub struct ReceivedInfo<'a> {
    pub helo: &'a str,
    pub ip: std::net::IpAddr,
    pub hostname: &'a str,
    pub extended: bool,
    /// What TLS negotiated, on a TLS session, as Postfix writes it
    /// (`using TLSv1.3 with cipher ... (256/256 bits)`).
    pub tls: Option<&'a str>,
    /// The transaction used SMTPUTF8 (RFC 6531 4.3: UTF8SMTP and friends).
    pub utf8: bool,
    pub authenticated: bool,
    pub id: &'a str,
    /// Only with exactly one recipient (RFC 5321 7.2: a list would disclose
    /// the other recipients).
    pub for_rcpt: Option<&'a str>,
}

pub fn received(info: &ReceivedInfo<'_>) -> String {
    // RFC 3848 2 and RFC 6531 4.3: "S" for TLS, "A" for AUTH; UTF8SMTP
    // replaces ESMTP when the transaction used SMTPUTF8.
    let base = match (info.extended, info.utf8) {
        (false, _) => "SMTP",
        (true, false) => "ESMTP",
        (true, true) => "UTF8SMTP",
    };
    let suffix = match (info.extended, info.tls.is_some(), info.authenticated) {
        (false, _, _) | (true, false, false) => "",
        (true, true, false) => "S",
        (true, false, true) => "A",
        (true, true, true) => "SA",
    };
    // Built by appending, not by `format!`: it runs for every message
    // (issue 18), and the date is formatted once per second, not per
    // message.
    let ip = info.ip.to_string();
    let mut s = String::with_capacity(
        160 + info.helo.len()
            + info.hostname.len()
            + info.id.len()
            + info.tls.map_or(0, str::len)
            + info.for_rcpt.map_or(0, str::len),
    );
    for part in [
        "Received: from ",
        info.helo,
        " ([",
        &ip,
        "])\r\n\tby ",
        info.hostname,
        " (mailroom) with ",
        base,
        suffix,
        " id ",
        info.id,
    ] {
        s.push_str(part);
    }
    // As Postfix writes it: which TLS carried the message.
    if let Some(tls) = info.tls {
        s.push_str("\r\n\t(");
        s.push_str(tls);
        s.push(')');
    }
    if let Some(rcpt) = info.for_rcpt {
        s.push_str("\r\n\tfor <");
        s.push_str(rcpt);
        s.push('>');
    }
    s.push_str("; ");
    push_rfc5322_now(&mut s);
    s.push_str("\r\n");
    s
}

/// The current date in RFC 5322 3.3 form, formatted once per second.
fn push_rfc5322_now(out: &mut String) {
    static LAST: std::sync::Mutex<(i64, String)> = std::sync::Mutex::new((i64::MIN, String::new()));
    let now = OffsetDateTime::now_utc();
    let secs = now.unix_timestamp();
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.0 != secs {
        *last = (secs, format_rfc5322(now));
    }
    out.push_str(&last.1);
}

/// Adds `Date:` and `Message-ID:` at the top of the header when the
/// message has none (RFC 6409 8.2, 8.3); leaves it alone otherwise.
pub fn add_submission_headers(message: Vec<u8>, hostname: &str, id: &str) -> Vec<u8> {
    let header = message.get(..header_len(&message)).unwrap_or_default();
    let has = |name: &[u8]| {
        header.split(|&b| b == b'\n').any(|line| {
            line.len() > name.len()
                && line
                    .get(..name.len())
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    };
    let mut add = String::new();
    if !has(b"date:") {
        add.push_str(&format!("Date: {}\r\n", rfc5322_now()));
    }
    if !has(b"message-id:") {
        add.push_str(&format!("Message-ID: <{id}@{hostname}>\r\n"));
    }
    if add.is_empty() {
        return message;
    }
    let mut out = Vec::with_capacity(add.len() + message.len());
    out.extend_from_slice(add.as_bytes());
    out.extend_from_slice(&message);
    out
}

/// The current date in RFC 5322 3.3 form.
pub fn rfc5322_now() -> String {
    format_rfc5322(OffsetDateTime::now_utc())
}

fn format_rfc5322(t: OffsetDateTime) -> String {
    t.format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_string())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A queue id for logs and the 250 reply: time, process and a counter, so
/// the server and a CLI `deliver` never hand out the same one.
pub fn new_queue_id() -> String {
    let secs = OffsetDateTime::now_utc().unix_timestamp();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:09X}{:05X}{:05X}",
        secs,
        std::process::id() & 0xFFFFF,
        n & 0xFFFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_received_fields_only_in_header() {
        let msg = b"Received: a\r\nReceived: b\r\n c\r\nSubject: x\r\n\r\nReceived: body\r\n";
        assert_eq!(count_received(msg), 2);
    }

    #[test]
    fn a_message_with_nothing_to_strip_is_not_copied() {
        let msg = b"Authentication-Results: other.test; spf=pass\r\nSubject: s\r\n\r\nReturn-Path: body\r\n".to_vec();
        let (at, copy) = (msg.as_ptr(), msg.clone());
        let out = strip_untrusted(msg, "mx.test");
        assert_eq!(out, copy);
        assert_eq!(out.as_ptr(), at, "the same buffer comes back");
    }

    #[test]
    fn strips_return_path_with_continuation_and_our_auth_results() {
        let msg = b"Return-Path: <a@b>\r\n x\r\nAuthentication-Results: mx.test; spf=pass\r\nAuthentication-Results: other.test; spf=fail\r\nSubject: s\r\n\r\nReturn-Path: body\r\n";
        let out = strip_untrusted(msg.to_vec(), "MX.test");
        assert_eq!(
            out,
            b"Authentication-Results: other.test; spf=fail\r\nSubject: s\r\n\r\nReturn-Path: body\r\n".to_vec()
        );
    }

    #[test]
    fn received_has_for_only_with_one_recipient() {
        let mut info = ReceivedInfo {
            helo: "client.test",
            ip: [192, 0, 2, 1].into(),
            hostname: "mx.test",
            extended: true,
            tls: None,
            utf8: false,
            authenticated: false,
            id: "ABC",
            for_rcpt: Some("alice@mx.test"),
        };
        let r = received(&info);
        assert!(r.starts_with("Received: from client.test ([192.0.2.1])\r\n\tby mx.test (mailroom) with ESMTP id ABC\r\n\tfor <alice@mx.test>; "));
        info.for_rcpt = None;
        assert!(!received(&info).contains("for <"));
    }

    #[test]
    fn received_names_tls_and_utf8_protocols() {
        let tls = "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)";
        let mut info = ReceivedInfo {
            helo: "client.test",
            ip: [192, 0, 2, 1].into(),
            hostname: "mx.test",
            extended: true,
            tls: Some(tls),
            utf8: false,
            authenticated: false,
            id: "ABC",
            for_rcpt: None,
        };
        let r = received(&info);
        assert!(r.contains("with ESMTPS id ABC\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits));"), "{r}");
        info.utf8 = true;
        assert!(received(&info).contains("with UTF8SMTPS id"));
        info.tls = None;
        assert!(received(&info).contains("with UTF8SMTP id"));
    }

    #[test]
    fn submission_headers_are_added_only_when_missing() {
        let out = add_submission_headers(b"Subject: x\r\n\r\nbody\r\n".to_vec(), "mx.test", "ID1");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Date: "), "{text}");
        assert!(
            text.contains("Message-ID: <ID1@mx.test>\r\nSubject: x\r\n"),
            "{text}"
        );
        let kept = b"DATE: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id: <a@b>\r\n\r\nx\r\n";
        assert_eq!(
            add_submission_headers(kept.to_vec(), "mx.test", "ID1"),
            kept.to_vec()
        );
        // A Message-ID line in the body does not count.
        let body_only = b"Subject: y\r\n\r\nMessage-ID: <no@x>\r\n";
        let out = add_submission_headers(body_only.to_vec(), "mx.test", "ID2");
        assert!(String::from_utf8(out).unwrap().contains("<ID2@mx.test>"));
    }

    #[test]
    fn message_without_header_separator_is_all_header() {
        assert_eq!(header_len(b"Subject: x\r\n"), 12);
        assert_eq!(header_len(b"\r\nbody"), 2);
    }

    #[test]
    fn queue_ids_are_unique() {
        assert_ne!(new_queue_id(), new_queue_id());
    }
}
