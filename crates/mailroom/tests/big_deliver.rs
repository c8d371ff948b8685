//! `mailroom deliver` of a big message (issue 19): the CLI reads its
//! input a piece at a time, makes its line endings CRLF as it goes, and
//! spools it under `<data_dir>/spool` past `[store] spool_threshold`, so
//! a 20 MiB message is stored byte for byte while the process's peak RSS
//! (GNU time's maximum resident set) stays far below the message's size,
//! and nothing is left in the spool; a spooled message with a binary part
//! is stored with it in base64 (RFC 3516 4.3).
//!
//! Loopback only; every wait is bounded.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{BIN, Server};

const SIZE: usize = 20 << 20;

/// A message of about `SIZE` octets with bare LF line endings, as an MDA
/// is often handed mail, and a CR alone at one line's end.
fn message() -> Vec<u8> {
    let mut out = b"From: <bob@other.test>\nSubject: big via deliver\n\n".to_vec();
    let mut n = 0u64;
    while out.len() < SIZE {
        out.extend_from_slice(format!("line {n} of a big message, more or less\n").as_bytes());
        n += 1;
        if n == 1000 {
            out.extend_from_slice(b"a line ending in CR\r");
        }
    }
    out
}

#[test]
fn deliver_spools_a_big_message_and_stores_it_whole_in_bounded_memory() {
    let server = Server::create("", "");
    server.cli(&["user", "add", "alice@example.test", "--password", "x"]);
    let raw = message();
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "maxrss-kib %M"])
        .arg(BIN)
        .arg("--config")
        .arg(&server.config)
        .args(["deliver", "alice", "--from", "bob@other.test"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("GNU time (scripts/test-deps)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&raw)
        .expect("write");
    let out = child.wait_with_output().expect("deliver");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let peak_kib: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss-kib "))
        .and_then(|v| v.trim().parse().ok())
        .expect("maxrss");

    eprintln!(
        "deliver of {} MiB: peak RSS {} MiB",
        SIZE >> 20,
        peak_kib >> 10
    );
    let inbox = server.inbox("alice@example.test");
    assert_eq!(inbox.len(), 1);
    let mut want = b"Return-Path: <bob@other.test>\r\n".to_vec();
    want.extend_from_slice(&proto_smtp::canonicalize_line_endings(&raw));
    assert!(inbox[0] == want, "stored differently");
    let spool = server.data_dir().join("spool");
    assert_eq!(std::fs::read_dir(&spool).expect("spool").count(), 0);

    // Read whole (before issue 19) the message was in memory several
    // times over (the input, its CRLF copy, the cleaned and built
    // copies): 126 MiB here. Spooled: 66 MiB, most of it the process and
    // the SQLite store rewriting the body's row (blob included) in its
    // reference-count trigger.
    let bound_kib = ((48 << 20) + 2 * SIZE as u64) >> 10;
    assert!(
        peak_kib < bound_kib,
        "peak RSS {} MiB over {} MiB",
        peak_kib >> 10,
        bound_kib >> 10
    );
}

#[test]
fn deliver_stores_a_spooled_binary_part_in_base64() {
    // RFC 3516 4.3: a part holding NUL goes to the mailbox in base64, as
    // SMTP and APPEND store it, re-encoded from spool file to spool file.
    let server = Server::create("", "");
    server.cli(&["user", "add", "alice@example.test", "--password", "x"]);
    let mut raw = b"From: <bob@other.test>\r\nSubject: binary via deliver\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: application/octet-stream\r\n\r\n"
        .to_vec();
    // No CR or LF in it: deliver makes line endings CRLF.
    let content: Vec<u8> = (0..4u32 << 20)
        .map(|i| match (i % 251) as u8 {
            b'\r' | b'\n' => 0,
            b => b,
        })
        .collect();
    raw.extend_from_slice(&content);
    raw.extend_from_slice(b"\r\n--b--\r\n");
    let out = server.cli_output(
        &["deliver", "alice", "--from", "bob@other.test"],
        Some(&raw),
    );
    assert!(out.status.success(), "{out:?}");
    let inbox = server.inbox("alice@example.test");
    assert_eq!(inbox.len(), 1);
    let mut want = b"Return-Path: <bob@other.test>\r\n".to_vec();
    want.extend_from_slice(&proto_imap::mime::encode_binary_parts(&raw).expect("binary"));
    assert!(inbox[0] == want, "not stored re-encoded");
    let spool = server.data_dir().join("spool");
    assert_eq!(std::fs::read_dir(&spool).expect("spool").count(), 0);
}
