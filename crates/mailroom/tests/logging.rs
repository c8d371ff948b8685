//! Logging never takes the server down, and a bad `log.level` is a config
//! error rather than a silent server.

mod common;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server, WAIT};

/// Reads the greeting of a fresh SMTP session, if the server answers.
fn greeting(server: &Server) -> Option<String> {
    let stream = TcpStream::connect(server.smtp).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    let mut line = String::new();
    BufReader::new(stream.try_clone().ok()?)
        .read_line(&mut line)
        .ok()?;
    let _ = (&stream).write_all(b"QUIT\r\n");
    Some(line)
}

#[test]
fn serve_keeps_running_when_its_stderr_is_closed() {
    let server = Server::create("", "");
    // `mailroom serve 2>&1 | head -3`: the reader goes away early.
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&server.config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stderr.take());
    let deadline = Instant::now() + WAIT;
    while greeting(&server).is_none() {
        assert!(Instant::now() < deadline, "server did not start");
        assert!(child.try_wait().expect("wait").is_none(), "server exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every session logs a connect and a disconnect into the closed pipe.
    for _ in 0..20 {
        let g = greeting(&server).expect("server answers");
        assert!(g.starts_with("220 "), "{g}");
    }
    std::thread::sleep(Duration::from_millis(200));
    let status = child.try_wait().expect("wait");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, None, "the server exited when its log failed");
}

#[test]
fn log_level_typo_stops_the_start_naming_the_key() {
    let server = Server::create("[log]\nlevel = \"debugg\"\n", "");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&server.config)
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log.level: 'debugg'"), "{err}");
}
