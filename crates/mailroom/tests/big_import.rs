//! `mailroom import` of big messages (issue 19), end to end on the real
//! binary: a Maildir and an mbox of several 20 MiB messages are imported
//! through the spool, read back over POP3 byte for byte, imported again
//! without a duplicate, and leave the spool empty, while the import
//! process's peak RSS (GNU time's maximum resident set) stays far below
//! the messages' total size. A message imported whole (threshold above
//! its size) dedups against its spooled import: both digest the same
//! octets.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Server};

/// Messages per format.
const COUNT: u64 = 5;
const SIZE: usize = 20 << 20;
/// Per-read timeout for 20 MiB over POP3 from a debug build on a shared
/// machine.
const SLOW: Duration = Duration::from_secs(120);

/// Message `seed` of about `SIZE` octets as it must be stored (CRLF):
/// body lines that start with `From ` and `>From ` (mboxrd quotes them in
/// the file), and a distinct Subject to find it by.
fn message(seed: u64) -> Vec<u8> {
    let mut out = format!(
        "From: <bob@other.test>\r\nTo: <alice@example.test>\r\nSubject: big import {seed}\r\n\
         Message-ID: <big-import-{seed}@other.test>\r\n\r\n"
    )
    .into_bytes();
    let filler = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod\r\n";
    let mut n = 0u64;
    while out.len() < SIZE {
        match n % 5000 {
            1 => out.extend_from_slice(format!("From the body, line {n} of {seed}\r\n").as_bytes()),
            2 => out.extend_from_slice(format!(">>From quoted, line {n}\r\n").as_bytes()),
            3 => out.extend_from_slice(b"\r\n"),
            _ => out.extend_from_slice(filler),
        }
        n += 1;
    }
    out
}

/// The seed in a message's Subject.
fn seed_of(raw: &[u8]) -> u64 {
    let head = &raw[..raw.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: big import "))
        .and_then(|s| s.trim().parse().ok())
        .expect("a Subject with its seed")
}

/// `crlf` with LF line endings, as Maildir files and mbox files hold it.
fn to_lf(crlf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crlf.len());
    for line in crlf.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_suffix(b"\r\n").unwrap_or(line));
        out.push(b'\n');
    }
    out
}

/// One mboxrd entry: the From line, each `^>*From ` line with one more
/// `>`, LF endings, the blank separator line.
fn mbox_entry(crlf: &[u8], out: &mut impl Write) {
    out.write_all(b"From bob@other.test Mon Jan  2 15:04:05 2006\n")
        .expect("write");
    for line in to_lf(crlf).split_inclusive(|&b| b == b'\n') {
        let after = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
        if line[after..].starts_with(b"From ") {
            out.write_all(b">").expect("write");
        }
        out.write_all(line).expect("write");
    }
    out.write_all(b"\n").expect("write");
}

/// Writes the Maildir (seeds 0..COUNT) and the mbox (seeds COUNT..).
fn sources(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let maildir = dir.join("Maildir");
    std::fs::create_dir_all(maildir.join("cur")).expect("cur");
    std::fs::create_dir_all(maildir.join("new")).expect("new");
    for seed in 0..COUNT {
        let name = format!("{}.M{seed}P1.test:2,S", 1_700_000_000 + seed);
        std::fs::write(maildir.join("cur").join(name), to_lf(&message(seed))).expect("file");
    }
    let mbox = dir.join("big.mbox");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&mbox).expect("mbox"));
    for seed in COUNT..2 * COUNT {
        mbox_entry(&message(seed), &mut out);
    }
    out.flush().expect("flush");
    (maildir, mbox)
}

/// Runs `mailroom import` with `config` under GNU time: its stdout and
/// its peak RSS in KiB.
fn import_measured(config: &Path, args: &[&str]) -> (String, u64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss-kib %M"])
        .arg(BIN)
        .arg("--config")
        .arg(config)
        .arg("import")
        .args(args)
        .output()
        .expect("GNU time (scripts/test-deps)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import {args:?}: {err}");
    let peak = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss-kib "))
        .and_then(|v| v.trim().parse().ok())
        .expect("maxrss");
    (String::from_utf8_lossy(&out.stdout).into_owned(), peak)
}

/// Every INBOX message over POP3 (RETR, dot-stuffing undone), in order.
fn pop3_all(addr: SocketAddr) -> Vec<Vec<u8>> {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(SLOW)).expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::with_capacity(256 * 1024, s);
    let mut line = Vec::new();
    let mut next = |r: &mut BufReader<TcpStream>| {
        line.clear();
        r.read_until(b'\n', &mut line).expect("read");
        assert!(!line.is_empty(), "connection closed");
        line.clone()
    };
    assert!(next(&mut r).starts_with(b"+OK"));
    for cmd in ["USER alice\r\n", "PASS secret\r\n", "STAT\r\n"] {
        w.write_all(cmd.as_bytes()).expect("write");
        let reply = next(&mut r);
        assert!(reply.starts_with(b"+OK"), "{cmd}: {reply:?}");
        if cmd.starts_with("STAT") {
            let n: usize = String::from_utf8_lossy(&reply)
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .expect("STAT count");
            let mut all = Vec::with_capacity(n);
            for i in 1..=n {
                w.write_all(format!("RETR {i}\r\n").as_bytes())
                    .expect("write");
                assert!(next(&mut r).starts_with(b"+OK"));
                let mut msg = Vec::new();
                loop {
                    let l = next(&mut r);
                    if l == b".\r\n" {
                        break;
                    }
                    msg.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
                }
                all.push(msg);
            }
            let _ = w.write_all(b"QUIT\r\n");
            return all;
        }
    }
    unreachable!("STAT is the last command")
}

fn spool_files(server: &Server) -> usize {
    std::fs::read_dir(server.data_dir().join("spool"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn big_maildir_and_mbox_imports_are_spooled_stored_whole_and_dedup_in_bounded_memory() {
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (maildir, mbox) = sources(tmp.path());
    let (maildir, mbox) = (
        maildir.to_str().expect("path"),
        mbox.to_str().expect("path"),
    );

    let (out, md_peak) = import_measured(&server.config, &["alice", maildir]);
    assert!(out.contains(&format!("imported {COUNT} messages")), "{out}");
    let (out, mbox_peak) = import_measured(&server.config, &["alice", mbox]);
    assert!(out.contains(&format!("imported {COUNT} messages")), "{out}");
    eprintln!(
        "import of {COUNT} x {} MiB: peak RSS {} MiB (Maildir), {} MiB (mbox)",
        SIZE >> 20,
        md_peak >> 10,
        mbox_peak >> 10
    );
    assert_eq!(spool_files(&server), 0, "spool files left behind");

    // Byte for byte as they must be stored, each once.
    let stored = pop3_all(server.pop3);
    assert_eq!(stored.len() as u64, 2 * COUNT);
    let mut seeds: Vec<u64> = stored.iter().map(|m| seed_of(m)).collect();
    for m in &stored {
        assert!(*m == message(seed_of(m)), "message {} changed", seed_of(m));
    }
    seeds.sort_unstable();
    assert_eq!(seeds, (0..2 * COUNT).collect::<Vec<_>>());
    // Maildir's S flag and the file's name date came along.
    let meta = server.inbox_meta("alice@example.test");
    assert!(
        meta.iter()
            .take(COUNT as usize)
            .all(|m| m.flags.iter().any(|f| f == "\\Seen"))
    );

    // A second run of each finds every message already there.
    let (out, _) = import_measured(&server.config, &["alice", maildir]);
    assert!(out.contains("0 messages into 1 folders"), "{out}");
    assert!(out.contains(&format!("{COUNT} already there")), "{out}");
    let (out, _) = import_measured(&server.config, &["alice", mbox]);
    assert!(out.contains(&format!("{COUNT} already there")), "{out}");
    assert_eq!(
        server.inbox_meta("alice@example.test").len() as u64,
        2 * COUNT
    );
    assert_eq!(spool_files(&server), 0, "spool files left behind");

    // Read whole (before issue 19) this took 135 MiB (Maildir) and
    // 109-156 MiB (mbox), release build: each message several times over,
    // a window of 32 MiB of them. Spooled it is about 18 MiB (release)
    // whatever the messages' size.
    let bound_kib = 64 << 10;
    for (what, peak) in [("Maildir", md_peak), ("mbox", mbox_peak)] {
        assert!(
            peak < bound_kib,
            "{what}: peak RSS {} MiB over {} MiB",
            peak >> 10,
            bound_kib >> 10
        );
    }
}

#[test]
fn a_message_imported_whole_dedups_against_its_spooled_import() {
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("Maildir");
    std::fs::create_dir_all(dir.join("cur")).expect("cur");
    // 2 MiB with LF endings and a lone CR: over the default 1 MiB
    // threshold, under the whole-path config's.
    let mut raw = b"Subject: both ways\nStatus: RO\n\n".to_vec();
    while raw.len() < 2 << 20 {
        raw.extend_from_slice(b"a line of text\n");
        if raw.len() % 100_000 < 15 {
            raw.extend_from_slice(b"lone CR\rhere\n");
        }
    }
    std::fs::write(dir.join("cur/1700000000.M1P1.test:2,S"), &raw).expect("file");
    let mbox = tmp.path().join("one.mbox");
    let mut text = b"From a Mon Jan  2 15:04:05 2006\n".to_vec();
    text.extend_from_slice(&raw);
    std::fs::write(&mbox, &text).expect("mbox");

    let whole = tmp.path().join("whole.toml");
    let mut config = std::fs::read_to_string(&server.config).expect("config");
    config.push_str("\n[store]\nspool_threshold = 67108864\n");
    std::fs::write(&whole, config).expect("config");
    let dir = dir.to_str().expect("path");
    let mbox = mbox.to_str().expect("path");
    for args in [[dir, "--folder", "M"], [mbox, "--folder", "B"]] {
        let mut argv = vec!["alice"];
        argv.extend(args);
        let (out, _) = import_measured(&whole, &argv);
        assert!(out.contains("imported 1 messages"), "{out}");
        let (out, _) = import_measured(&server.config, &argv);
        assert!(out.contains("imported 0 messages"), "{out}");
        assert!(out.contains("1 already there"), "{out}");
    }
    assert_eq!(spool_files(&server), 0);
}

/// A one-part message of `len` pseudo-random octets with NUL (and no CR
/// or LF, which the import makes CRLF).
fn binary_message(seed: u64, len: usize) -> Vec<u8> {
    let mut m = format!(
        "From: bob@example.test\r\nSubject: binary {seed}\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    )
    .into_bytes();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    m.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x as u8 {
            b'\r' | b'\n' => 0,
            b => b,
        }
    }));
    m
}

/// RFC 3516 4.3 as SMTP and APPEND store it: an imported message whose
/// part holds NUL is stored with that part in base64, a spooled one (past
/// the threshold) as much as a small one, and a rerun still finds both.
#[test]
fn imported_binary_parts_are_stored_in_base64_spooled_or_not() {
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("Maildir");
    std::fs::create_dir_all(dir.join("cur")).expect("cur");
    let big = binary_message(1, 3 << 20);
    let small = binary_message(2, 10_000);
    std::fs::write(dir.join("cur/1700000000.M1P1.test:2,S"), &big).expect("file");
    std::fs::write(dir.join("cur/1700000001.M2P1.test:2,S"), &small).expect("file");
    let dir = dir.to_str().expect("path");
    let (out, _) = import_measured(&server.config, &["alice", dir]);
    assert!(out.contains("imported 2 messages"), "{out}");
    let stored = pop3_all(server.pop3);
    assert_eq!(stored.len(), 2);
    for (got, sent) in stored.iter().zip([&big, &small]) {
        assert!(!got.contains(&0), "NUL in a stored message");
        let want = proto_imap::mime::encode_binary_parts(sent).expect("re-encoded");
        assert!(*got == want, "stored otherwise than in base64");
    }
    let (out, _) = import_measured(&server.config, &["alice", dir]);
    assert!(out.contains("imported 0 messages"), "{out}");
    assert!(out.contains("2 already there"), "{out}");
    assert_eq!(spool_files(&server), 0);
}
