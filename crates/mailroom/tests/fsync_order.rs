//! The acknowledgement order, seen from the kernel (SPEC 6; writer.rs
//! rule 3): between receiving the end of a message and writing its "250"
//! (SMTP) or "OK" (IMAP APPEND) to the client, the server fsyncs the
//! store's WAL. The kill -9 test cannot show this (the page cache survives
//! a killed process); these tests trace the server's system calls with
//! strace, and fail when the store is built with the test-only
//! `unsafe-no-fsync` feature:
//! `cargo test -p mailroom --features unsafe-no-fsync --test fsync_order`.

mod common;
mod imap_kit;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::Server;
use imap_kit::Imap;

/// strace attached to every thread of the running server.
struct Trace {
    child: Child,
    log: std::path::PathBuf,
}

impl Trace {
    fn attach(server: &Server) -> Trace {
        assert!(
            Command::new("strace")
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success()),
            "strace is missing: scripts/test-deps installs it"
        );
        let pid = server.pid().expect("running");
        let log = server.dir.path().join("strace.log");
        // -f with -p follows every thread of the server; -yy names each fd
        // (the WAL's path, the socket's addresses); -s keeps data readable.
        let mut child = Command::new("strace")
            .args(["-f", "-yy", "-s", "128", "-e"])
            .arg("trace=fdatasync,fsync,write,writev,sendto,sendmsg,read,recvfrom")
            .arg("-o")
            .arg(&log)
            .arg("-p")
            .arg(pid.to_string())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strace");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        // "Process N attached", once per thread: the first means tracing
        // has begun; the others follow at once.
        err.read_line(&mut line).expect("strace attach");
        assert!(line.contains("attached"), "strace: {line}");
        std::thread::sleep(std::time::Duration::from_millis(300));
        Trace { child, log }
    }

    /// Detaches and returns the trace, one system call per line.
    fn finish(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).expect("strace log")
    }
}

/// A completed fsync or fdatasync of the store's WAL.
fn is_wal_sync(line: &str) -> bool {
    let sync = ["fdatasync(", "fsync(", "fdatasync resumed", "fsync resumed"]
        .iter()
        .any(|s| line.contains(s));
    sync && line.contains("store.db-wal") && line.trim_end().ends_with("= 0")
}

/// Asserts that on the socket of client port `peer`, after the data
/// holding `marker`, the first line matching `end` (the end of the
/// message) and the first after it matching `ack` (its acknowledgement)
/// have a completed WAL fsync between them.
fn assert_fsync_between(text: &str, peer: u16, marker: &str, end: &str, ack: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let socket = format!("->127.0.0.1:{peer}]");
    let on = |l: &&str, what: &str| l.contains(&socket) && l.contains(what);
    let find = |from: usize, what: &str| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| on(l, what))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("{what:?} not seen on the client socket:\n{text}"))
    };
    let arrived = find(0, marker);
    let end = find(arrived, end);
    let ack = find(end, ack);
    let window = lines.get(end..=ack).unwrap_or_default();
    // Shown with --nocapture: the calls from the message's end to its ack.
    eprintln!("{}", window.join("\n"));
    assert!(
        window.iter().any(|l| is_wal_sync(l)),
        "no fsync of store.db-wal between the end of the message and its acknowledgement:\n{}",
        window.join("\n")
    );
}

#[test]
fn wal_fsync_precedes_the_250_of_the_message() {
    let server = Server::start();
    let trace = Trace::attach(&server);
    let mut c = server.connect().ehlo();
    let peer = c.stream.local_addr().expect("local addr").port();
    let r = c.send_mail(
        "a@remote.test",
        &["alice@example.test"],
        b"Subject: traced\r\n\r\nfsync-order-marker\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    c.cmd("QUIT", 221);
    let text = trace.finish();
    // strace escapes CR LF as \r\n: the final "." arrives as `.\r\n"`.
    assert_fsync_between(
        &text,
        peer,
        "fsync-order-marker",
        r#".\r\n""#,
        "\"250 2.0.0 Ok: queued",
    );
}

#[test]
fn wal_fsync_precedes_the_ok_of_append() {
    let server = Server::start();
    let mut c = Imap::login(&server, "alice", "secret");
    let peer = c.stream.local_addr().expect("local addr").port();
    let trace = Trace::attach(&server);
    let message = "Subject: traced\r\n\r\nappend-order-marker\r\n";
    c.send_raw(format!("a1 APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
    let r = c.read_until_tagged("a1");
    assert_eq!(r.status(), "OK", "{r:?}");
    c.ok("LOGOUT");
    let text = trace.finish();
    assert_fsync_between(
        &text,
        peer,
        "append-order-marker",
        "append-order-marker",
        "\"a1 OK [APPENDUID",
    );
}
