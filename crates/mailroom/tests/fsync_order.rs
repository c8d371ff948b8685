//! The acknowledgement order, seen from the kernel (SPEC 6; writer.rs
//! rule 3): between receiving the end of a message and writing its
//! "250" to the client, the server fsyncs the store's WAL. The kill -9
//! test cannot show this (the page cache survives a killed process); this
//! test traces the server's system calls with strace, and fails when the
//! store is built with the test-only `unsafe-no-fsync` feature:
//! `cargo test -p mailroom --features unsafe-no-fsync --test fsync_order`.

mod common;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::Server;

/// One strace line, parsed enough for the order checks.
struct Call<'a> {
    line: &'a str,
}

impl Call<'_> {
    /// A completed fsync or fdatasync of the store's WAL.
    fn is_wal_sync(&self) -> bool {
        let l = self.line;
        let sync = l.contains("fdatasync(")
            || l.contains("fsync(")
            || l.contains("fdatasync resumed")
            || l.contains("fsync resumed");
        sync && l.contains("store.db-wal") && l.trim_end().ends_with("= 0")
    }

    /// A send to (or read from) the client's socket, `peer` its port.
    fn on_client_socket(&self, peer: u16) -> bool {
        self.line.contains(&format!("->127.0.0.1:{peer}]"))
    }
}

#[test]
fn wal_fsync_precedes_the_250_of_the_message() {
    assert!(
        Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "strace is missing: scripts/test-deps installs it"
    );
    let server = Server::start();
    let pid = server.pid().expect("running");
    let log = server.dir.path().join("strace.log");
    // -f with -p follows every thread of the server; -yy names each fd
    // (the WAL's path, the socket's addresses); -s keeps replies readable.
    let mut strace = Command::new("strace")
        .args(["-f", "-yy", "-s", "128", "-e"])
        .arg("trace=fdatasync,fsync,write,writev,sendto,sendmsg,read,recvfrom")
        .arg("-o")
        .arg(&log)
        .arg("-p")
        .arg(pid.to_string())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace");
    let mut err = BufReader::new(strace.stderr.take().expect("stderr"));
    let mut line = String::new();
    // strace says "Process N attached" once per thread; the first one
    // means it is tracing (the rest follow at once).
    err.read_line(&mut line).expect("strace attach");
    assert!(line.contains("attached"), "strace: {line}");
    std::thread::sleep(std::time::Duration::from_millis(300));

    let mut c = server.connect().ehlo();
    let peer = c.stream.local_addr().expect("local addr").port();
    let r = c.send_mail(
        "a@remote.test",
        &["alice@example.test"],
        b"Subject: traced\r\n\r\nfsync-order-marker\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    c.cmd("QUIT", 221);
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(strace.id().to_string())
        .status();
    let _ = strace.wait();

    let text = std::fs::read_to_string(&log).expect("strace log");
    let calls: Vec<Call> = text.lines().map(|line| Call { line }).collect();
    let marker = calls
        .iter()
        .position(|c| c.on_client_socket(peer) && c.line.contains("fsync-order-marker"))
        .unwrap_or_else(|| panic!("the message was not seen arriving:\n{text}"));
    // The read that brings the final "." (strace escapes CR LF as \r\n).
    let end_of_data = calls
        .iter()
        .enumerate()
        .skip(marker)
        .find(|(_, c)| c.on_client_socket(peer) && c.line.contains(r#".\r\n""#))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("the end of data was not seen arriving:\n{text}"));
    let ack = calls
        .iter()
        .enumerate()
        .skip(end_of_data)
        .find(|(_, c)| c.on_client_socket(peer) && c.line.contains("\"250 2.0.0 Ok: queued"))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("the 250 was not seen leaving:\n{text}"));
    let synced = calls
        .get(end_of_data..ack)
        .unwrap_or_default()
        .iter()
        .any(Call::is_wal_sync);
    let window = calls
        .get(end_of_data..=ack)
        .unwrap_or_default()
        .iter()
        .map(|c| c.line)
        .collect::<Vec<_>>()
        .join("\n");
    // Shown with --nocapture: the calls from the message to its 250.
    eprintln!("{window}");
    assert!(
        synced,
        "no fsync of store.db-wal between the end of the message and its 250:\n{window}"
    );
}
