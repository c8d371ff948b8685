//! Big messages with binary parts (issue 19; RFC 3516 4.3, RFC 3030 3),
//! end to end on the real binary: BINARYMIME mail of 5 to 20 MiB whose
//! parts hold NUL octets, sent over SMTP BDAT, and literal8 APPENDs of
//! such messages, all at once, are stored with those parts in base64: a
//! FETCH BODY[] holds no NUL and is what `encode_binary_parts` makes of
//! the message sent (behind the trace fields), BINARY[part] gives back the
//! octets sent, RFC822.SIZE is the length of FETCH RFC822, the relayed
//! copy is the message as received, and the server's peak RSS stays far
//! below the messages' size (the re-encoding streams from spool file to
//! spool file).
//!
//! Loopback only; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Extra, Server, Smtp};
use proto_imap::mime;

const SLOW: Duration = Duration::from_secs(300);
/// The default `[store] spool_threshold`.
const THRESHOLD: u64 = 1024 * 1024;
/// Sizes of the SMTP messages and of the APPENDed ones.
const SMTP_MIB: [usize; 3] = [5, 12, 20];
const APPEND_MIB: [usize; 2] = [8, 16];

/// `len` pseudo-random octets with NULs, and no CR or LF: SMTP makes a
/// bare CR or LF a CRLF at receipt (SPEC 1), which would change them.
fn binary(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x as u8 {
                b'\r' | b'\n' => 0,
                b => b,
            }
        })
        .collect()
}

/// A message of about `size` octets: a text part, a binary part, and a
/// message/rfc822 holding another binary part; what BINARY[2] and
/// BINARY[3.1] must give back.
fn multipart(seed: u64, size: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let big = binary(seed, size * 3 / 4);
    let inner = binary(seed + 1, size / 4);
    let mut m = format!(
        "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: binary {seed}\r\n\
         Date: Tue, 1 Dec 2026 12:00:00 +0000\r\nMessage-ID: <bin-{seed}@example.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_b{seed}\"\r\n\r\n\
         --=_b{seed}\r\nContent-Type: text/plain\r\n\r\nSee the attachments.\r\n\
         --=_b{seed}\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: binary\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&big);
    m.extend_from_slice(
        format!(
            "\r\n--=_b{seed}\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\
             Content-Type: application/x-inner\r\n\r\n"
        )
        .as_bytes(),
    );
    m.extend_from_slice(&inner);
    m.extend_from_slice(format!("\r\n--=_b{seed}--\r\n").as_bytes());
    (m, big, inner)
}

/// A one-part message (its top level re-encoded, header and all).
fn single(seed: u64, size: usize) -> (Vec<u8>, Vec<u8>) {
    let content = binary(seed, size);
    let mut m = format!(
        "From: bob@example.test\r\nSubject: single {seed}\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(&content);
    (m, content)
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

/// Submits `raw` as alice with BDAT BODY=BINARYMIME in 1 MiB chunks.
fn send_bdat(addr: SocketAddr, raw: &[u8], to: &[&str]) {
    let c = Smtp::connect(addr);
    c.stream.set_read_timeout(Some(SLOW)).expect("timeout");
    let mut c = c.ehlo();
    let plain = proto_common::encode_plain("", "alice", "secret");
    c.cmd(&format!("AUTH PLAIN {plain}"), 235);
    c.cmd("MAIL FROM:<alice@example.test> BODY=BINARYMIME", 250);
    for t in to {
        c.cmd(&format!("RCPT TO:<{t}>"), 250);
    }
    let mut chunks = raw.chunks(1 << 20).peekable();
    while let Some(chunk) = chunks.next() {
        let last = if chunks.peek().is_none() { " LAST" } else { "" };
        c.send_raw(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        c.send_raw(chunk);
        assert_eq!(c.reply().code, 250, "BDAT");
    }
    c.cmd("QUIT", 221);
}

/// A line-oriented IMAP client over a plain socket.
struct Imap {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Imap {
    fn login(addr: SocketAddr) -> Imap {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(SLOW)).expect("timeout");
        let mut c = Imap {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        };
        assert!(c.line().starts_with("* OK"));
        let r = c.cmd("l", "LOGIN bob secret");
        assert!(r.starts_with("l OK"), "{r}");
        c
    }

    fn line(&mut self) -> String {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).expect("read");
        assert!(!l.is_empty(), "connection closed");
        String::from_utf8_lossy(&l).into_owned()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// Sends a command; returns its untagged lines and the tagged one.
    fn cmd(&mut self, tag: &str, command: &str) -> String {
        self.send(format!("{tag} {command}\r\n").as_bytes());
        self.tagged(tag)
    }

    fn tagged(&mut self, tag: &str) -> String {
        loop {
            let l = self.line();
            if l.starts_with(&format!("{tag} ")) {
                return l;
            }
        }
    }

    /// APPEND with a literal8 (RFC 3516 4.4).
    fn append8(&mut self, raw: &[u8]) -> String {
        self.send(format!("a APPEND INBOX ~{{{}}}\r\n", raw.len()).as_bytes());
        let cont = self.line();
        assert!(cont.starts_with('+'), "{cont}");
        self.send(raw);
        self.send(b"\r\n");
        self.tagged("a")
    }

    /// `FETCH n ITEM`: the one literal (or literal8) it answers.
    fn fetch_literal(&mut self, n: usize, item: &str) -> Vec<u8> {
        self.send(format!("f FETCH {n} {item}\r\n").as_bytes());
        let head = self.line();
        let size: usize = head
            .trim_end()
            .rsplit_once('{')
            .and_then(|(_, s)| s.strip_suffix('}'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no literal in {head:?}"));
        let mut body = vec![0; size];
        self.r.read_exact(&mut body).expect("literal");
        let rest = self.line();
        assert!(rest.ends_with(")\r\n"), "{rest}");
        let r = self.tagged("f");
        assert!(r.starts_with("f OK"), "{r}");
        body
    }

    /// `FETCH n RFC822.SIZE`.
    fn rfc822_size(&mut self, n: usize) -> usize {
        self.send(format!("z FETCH {n} RFC822.SIZE\r\n").as_bytes());
        let l = self.line();
        let size = l
            .split("RFC822.SIZE ")
            .nth(1)
            .and_then(|r| r.trim_end().strip_suffix(')'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no size in {l:?}"));
        assert!(self.tagged("z").starts_with("z OK"));
        size
    }
}

#[test]
fn big_binary_mail_is_stored_base64_and_fetched_without_nul_in_bounded_memory() {
    // The relayed copy stays queued: its next hop is down.
    let down = common::free_port();
    let server = Server::start_with_extra(Extra {
        top: format!("[relay]\nsmarthost = \"127.0.0.1:{down}\"\nretry_initial = 600"),
        ..Extra::default()
    });
    let pid = server.pid().expect("pid");
    let (submission, imap) = (server.submission, server.imap);
    let smtp_msgs: Vec<_> = SMTP_MIB
        .iter()
        .enumerate()
        .map(|(i, &mib)| multipart(i as u64 * 10, mib << 20))
        .collect();
    let append_msgs: Vec<_> = APPEND_MIB
        .iter()
        .enumerate()
        .map(|(i, &mib)| {
            if i == 0 {
                let (m, c) = single(100, mib << 20);
                (m, c, Vec::new())
            } else {
                multipart(200, mib << 20)
            }
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        let mut jobs = Vec::new();
        for (i, (m, _, _)) in smtp_msgs.iter().enumerate() {
            // The first to bob alone; the others relayed too.
            let to: &[&str] = if i == 0 {
                &["bob@example.test"]
            } else {
                &["bob@example.test", "carol@remote.example"]
            };
            jobs.push(s.spawn(move || send_bdat(submission, m, to)));
        }
        for (m, _, _) in &append_msgs {
            jobs.push(s.spawn(move || {
                let r = Imap::login(imap).append8(m);
                assert!(r.starts_with("a OK"), "{r}");
            }));
        }
        for j in jobs {
            j.join().expect("sender");
        }
    });
    let stored_in = started.elapsed();
    let spool = server.data_dir().join("spool");
    assert_eq!(std::fs::read_dir(&spool).expect("spool").count(), 0);

    let mut c = Imap::login(imap);
    assert!(c.cmd("s", "EXAMINE INBOX").starts_with("s OK"));
    let total = smtp_msgs.len() + append_msgs.len();
    for n in 1..=total {
        let body = c.fetch_literal(n, "BODY.PEEK[]");
        assert!(!body.contains(&0), "message {n}: NUL in BODY[]");
        let subject = String::from_utf8_lossy(&body[..body.len().min(8192)]).into_owned();
        let (sent, part, inner, smtp) = if let Some((m, p, i)) = smtp_msgs
            .iter()
            .find(|(m, _, _)| subject.contains(&format!("Message-ID: <bin-{}@", seed_of(m))))
        {
            (m, p, i, true)
        } else {
            let (m, p, i) = append_msgs
                .iter()
                .find(|(m, _, _)| body.ends_with(&tail_of(m)))
                .unwrap_or_else(|| panic!("message {n} is none of those sent"));
            (m, p, i, false)
        };
        let want = mime::encode_binary_parts(sent).expect("binary parts");
        if smtp {
            // Our trace fields, then the message as encode_binary_parts
            // makes it.
            assert!(body.starts_with(b"Return-Path: <alice@example.test>\r\n"));
            assert!(body.ends_with(&want), "message {n}: not the re-encoded one");
        } else {
            assert!(body == want, "message {n}: not the re-encoded one");
        }
        let is_multipart = !inner.is_empty();
        let section = if is_multipart { "2" } else { "1" };
        let got = c.fetch_literal(n, &format!("BINARY.PEEK[{section}]"));
        assert!(got == *part, "message {n}: BINARY[{section}] changed");
        if is_multipart {
            let got = c.fetch_literal(n, "BINARY.PEEK[3.1]");
            assert!(got == *inner, "message {n}: BINARY[3.1] changed");
        }
        let shown = c.fetch_literal(n, "RFC822");
        assert_eq!(c.rfc822_size(n), shown.len(), "message {n}: RFC822.SIZE");
        assert_eq!(shown.len(), body.len());
    }
    let peak = peak_rss(pid);

    // The relayed copies: the messages as received, NUL and all.
    let queued = server.queue_bodies();
    assert_eq!(queued.len(), 2);
    for (m, _, _) in &smtp_msgs[1..] {
        let q = queued
            .iter()
            .find(|q| q.ends_with(m))
            .expect("a relayed copy byte-identical behind our fields");
        let fields = String::from_utf8_lossy(&q[..q.len() - m.len()]).into_owned();
        assert!(fields.starts_with("Received: "), "{fields}");
        assert!(!fields.contains("Return-Path"), "{fields}");
    }
    let sizes: usize = SMTP_MIB.iter().chain(&APPEND_MIB).sum();
    eprintln!(
        "{} binary messages, {sizes} MiB in all: stored in {stored_in:.1?}, checked in {:.1?}; \
         peak RSS {} MiB",
        total,
        started.elapsed(),
        peak >> 20
    );
    // Held whole, each message would be in memory with its re-encoded
    // copy (about 2.3 times its size: 140 MiB for these at once, 47 MiB
    // for the biggest alone). Streamed, a message in flight costs about
    // twice the threshold: 49 MiB in all when this was written, most of
    // it the process itself.
    let bound = (64 << 20) + 2 * total as u64 * THRESHOLD;
    assert!(
        peak < bound,
        "peak RSS {} MiB over {} MiB",
        peak >> 20,
        bound >> 20
    );
}

/// The seed in a multipart's Message-ID.
fn seed_of(m: &[u8]) -> String {
    let text = String::from_utf8_lossy(&m[..m.len().min(4096)]).into_owned();
    text.split("<bin-")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .unwrap_or_default()
        .to_string()
}

/// The last octets of what `m` re-encoded ends with: its closing
/// delimiter, or the base64 of its last line.
fn tail_of(m: &[u8]) -> Vec<u8> {
    let enc = mime::encode_binary_parts(m).expect("binary parts");
    enc[enc.len().saturating_sub(200)..].to_vec()
}
