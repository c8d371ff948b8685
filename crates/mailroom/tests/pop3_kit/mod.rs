//! POP3 side of the end-to-end test kit: a raw POP3 client over a real
//! socket, servers with a tuned `[pop3]` section, and mail delivered
//! through the real SMTP listener.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::common::{Extra, Server, WAIT};

/// A raw POP3 client: sends lines, reads status lines and multi-line bodies.
pub struct Pop3 {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Pop3 {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Pop3 {
        let mut p = Pop3::connect_raw(addr);
        let greeting = p.line();
        assert_eq!(greeting, "+OK mailroom POP3 server ready");
        p
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> Pop3 {
        let stream = TcpStream::connect(addr).expect("connect pop3");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        Pop3 {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and logs in with USER/PASS.
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Pop3 {
        let mut p = Pop3::connect(addr);
        p.ok(&format!("USER {user}"));
        assert_eq!(p.cmd(&format!("PASS {password}")), "+OK Logged in.");
        p
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                // A signal to the test process is not the server's doing.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
            }
        }
    }

    /// One line without its CRLF, as raw bytes.
    pub fn raw_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
                line.truncate(line.len() - 2);
                return line;
            }
            assert!(
                self.fill(),
                "connection closed; had {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    pub fn line(&mut self) -> String {
        String::from_utf8(self.raw_line()).expect("utf-8 status line")
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends a command, returns its status line.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }

    /// Sends a command and asserts `+OK`.
    pub fn ok(&mut self, line: &str) -> String {
        let r = self.cmd(line);
        assert!(r.starts_with("+OK"), "{line}: {r}");
        r
    }

    /// Sends a command and asserts `-ERR`.
    pub fn err(&mut self, line: &str) -> String {
        let r = self.cmd(line);
        assert!(r.starts_with("-ERR"), "{line}: {r}");
        r
    }

    /// Reads a multi-line body up to the "." line, undoing dot-stuffing;
    /// returns it in CRLF form.
    pub fn multiline(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.raw_line();
            if line == b"." {
                return body;
            }
            body.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
            body.extend_from_slice(b"\r\n");
        }
    }

    /// Sends a command that answers with a multi-line body.
    pub fn multi(&mut self, line: &str) -> (String, Vec<u8>) {
        let status = self.ok(line);
        (status, self.multiline())
    }

    /// The lines of a LIST / UIDL / CAPA listing.
    pub fn listing(&mut self, line: &str) -> Vec<String> {
        let (_, body) = self.multi(line);
        String::from_utf8(body)
            .expect("utf-8 listing")
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn retr(&mut self, n: u32) -> Vec<u8> {
        self.multi(&format!("RETR {n}")).1
    }

    /// True when the server closed the connection with nothing more to say.
    pub fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }
}

/// A server like `Server::start()` whose `[pop3]` section also holds
/// `pop3_extra` (e.g. `idle_timeout = 1`).
pub fn start_with_pop3(pop3_extra: &str) -> Server {
    Server::start_with_extra(Extra {
        pop3: pop3_extra.to_string(),
        ..Extra::default()
    })
}

/// Delivers each message (CRLF lines) to `to` over SMTP, in one session,
/// dot-stuffing it for the SMTP wire (RFC 5321 4.5.2).
pub fn deliver(server: &Server, to: &str, messages: &[&[u8]]) {
    let mut smtp = server.connect().ehlo();
    for m in messages {
        let mut wire = Vec::new();
        for line in m.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                wire.push(b'.');
            }
            wire.extend_from_slice(line);
        }
        let r = smtp.send_mail("sender@remote.test", &[to], &wire);
        assert_eq!(r.code, 250, "{r:?}");
    }
    smtp.cmd("QUIT", 221);
}

/// `n` small distinct messages.
pub fn numbered(n: usize) -> Vec<Vec<u8>> {
    (1..=n)
        .map(|i| {
            format!("Subject: message {i}\r\nFrom: s@remote.test\r\n\r\nbody {i}\r\n").into_bytes()
        })
        .collect()
}

pub fn deliver_numbered(server: &Server, to: &str, n: usize) -> Vec<Vec<u8>> {
    let msgs = numbered(n);
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    deliver(server, to, &refs);
    msgs
}

/// Whether each of `account`'s INBOX messages has \Seen, in UID order.
pub fn seen_flags(server: &Server, account: &str) -> Vec<bool> {
    server
        .inbox_meta(account)
        .iter()
        .map(|m| m.flags.iter().any(|f| f == "\\Seen"))
        .collect()
}
