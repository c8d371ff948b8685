//! A raw IMAP client for the end-to-end tests: sends commands with
//! generated tags, reads responses (literals included) and asserts the
//! tagged status. Every read is bounded by `common::WAIT`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{Server, Smtp, WAIT};

pub struct Imap {
    pub stream: TcpStream,
    buf: Vec<u8>,
    next_tag: u32,
    pub greeting: String,
}

/// The responses of one command: untagged lines (literals inline) and the
/// tagged line.
#[derive(Debug)]
pub struct Reply {
    pub untagged: Vec<String>,
    pub tagged: String,
}

impl Reply {
    pub fn status(&self) -> &str {
        self.tagged.split(' ').nth(1).unwrap_or("")
    }

    /// Untagged lines containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<&String> {
        self.untagged
            .iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    pub fn has(&self, needle: &str) -> bool {
        !self.lines_with(needle).is_empty()
    }
}

impl Imap {
    /// Connects (retrying while the server binds) and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Imap {
        let deadline = Instant::now() + WAIT;
        let stream = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("connect {addr}: {e}"),
            }
        };
        Imap::from_stream(stream)
    }

    /// Reads the greeting on an open connection.
    pub fn from_stream(stream: TcpStream) -> Imap {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut c = Imap {
            stream,
            buf: Vec::new(),
            next_tag: 1,
            greeting: String::new(),
        };
        c.greeting = c.line();
        assert!(c.greeting.starts_with("* OK"), "greeting {:?}", c.greeting);
        c
    }

    /// Connects and logs in.
    pub fn login(server: &Server, user: &str, pass: &str) -> Imap {
        let mut c = Imap::connect(server.imap);
        c.ok(&format!("LOGIN {user} {pass}"));
        c
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
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

    /// Reads one response line; a literal `{n}` at its end is read and
    /// appended with the rest of the response.
    pub fn line(&mut self) -> String {
        self.try_line().unwrap_or_else(|| {
            panic!(
                "connection closed; had {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        })
    }

    pub fn try_line(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            let nl = loop {
                if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                    break p;
                }
                if !self.fill() {
                    return None;
                }
            };
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = line.strip_suffix(b"\r\n").unwrap_or(&line).to_vec();
            let lit = literal_size(&line);
            out.extend_from_slice(&line);
            match lit {
                None => return Some(String::from_utf8_lossy(&out).into_owned()),
                Some(n) => {
                    while self.buf.len() < n {
                        if !self.fill() {
                            return None;
                        }
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend(self.buf.drain(..n));
                }
            }
        }
    }

    pub fn tag(&mut self) -> String {
        let t = format!("t{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Reads until the tagged response of `tag`.
    pub fn read_until_tagged(&mut self, tag: &str) -> Reply {
        let mut untagged = Vec::new();
        loop {
            let l = self.line();
            if l.starts_with(&format!("{tag} ")) {
                return Reply {
                    untagged,
                    tagged: l,
                };
            }
            untagged.push(l);
        }
    }

    /// Sends a command with a fresh tag and returns its responses.
    pub fn cmd(&mut self, command: &str) -> Reply {
        let tag = self.tag();
        self.send(&format!("{tag} {command}"));
        self.read_until_tagged(&tag)
    }

    /// Like `cmd`, asserting a tagged OK.
    pub fn ok(&mut self, command: &str) -> Reply {
        let r = self.cmd(command);
        assert_eq!(r.status(), "OK", "{command}: {r:#?}");
        r
    }

    pub fn no(&mut self, command: &str) -> Reply {
        let r = self.cmd(command);
        assert_eq!(r.status(), "NO", "{command}: {r:#?}");
        r
    }

    pub fn bad(&mut self, command: &str) -> Reply {
        let r = self.cmd(command);
        assert_eq!(r.status(), "BAD", "{command}: {r:#?}");
        r
    }

    /// True when the server closed the connection.
    pub fn closed(&mut self) -> bool {
        loop {
            if self.buf.contains(&b'\n') {
                let _ = self.try_line();
                continue;
            }
            let mut chunk = [0u8; 1024];
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn literal_size(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(inner.get(open + 1..)?)
        .ok()?
        .parse()
        .ok()
}

/// Delivers a message to `to` over SMTP.
pub fn deliver(server: &Server, to: &str, message: &str) {
    let mut s = Smtp::connect(server.smtp).ehlo();
    let r = s.send_mail("sender@other.test", &[to], message.as_bytes());
    assert_eq!(r.code, 250, "{r:?}");
}

/// A small plain-text message.
pub fn simple_message(subject: &str, body: &str) -> String {
    format!(
        "From: Sender <sender@other.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <{subject}@other.test>\r\n\r\n{body}\r\n"
    )
}
