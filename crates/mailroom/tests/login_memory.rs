//! Concurrent logins cannot exhaust memory (issue 9): each argon2 check
//! needs its memory cost (19 MiB by default), so hashing is bounded to
//! `auth.max_concurrent_hashes` at a time on reused buffers. 1 000 POP3
//! logins at once, half good and half bad, with the default memory cost, must
//! keep the server's peak RSS within that bound.

mod common;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Extra, Server, socket_bound_to};

/// Logins sent at once.
const LOGINS: usize = 1_000;
/// The default memory cost of mailroom.example.toml and a pool of 4
/// buffers; one iteration instead of two halves the test's time and
/// changes nothing in memory.
const AUTH: &str = "argon2_memory_kib = 19456\nargon2_iterations = 1\nmax_concurrent_hashes = 4";
const MEMORY_KIB: u64 = 19_456;
const SLOTS: u64 = 4;
/// What the server needs besides the hash buffers, 1 000 sessions
/// included (measured at about 40 MiB); generous so allocator noise does
/// not fail the test, small next to the 1 000 x 19 MiB of unbounded hashing.
const OVERHEAD_KIB: u64 = 96 * 1024;
/// Bound on the whole test: 1 000 hashes of ~25 ms on two shared cores.
const DEADLINE: Duration = Duration::from_secs(180);

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field")
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    line
}

#[test]
fn thousand_concurrent_logins_stay_within_the_hash_memory_bound() {
    let server = Server::start_with_extra(Extra {
        auth: AUTH.to_string(),
        pop3: "max_connections = 2000\nmax_connections_per_ip = 2000".to_string(),
        ..Extra::default()
    });
    server.cli(&[
        "user",
        "passwd",
        "alice@example.test",
        "--password",
        "secret",
    ]);
    let pid = server.pid().expect("running");
    let before = status_kib(pid, "VmRSS:");

    // Each connection from its own loopback address, so the per-address
    // throttle lets every bad login reach a real (dummy) hash.
    let mut sessions = Vec::new();
    for i in 0..LOGINS {
        let ip = [127, 1, (i / 250) as u8, (i % 250 + 1) as u8];
        let stream = socket_bound_to(ip, server.pop3);
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        assert!(read_line(&mut reader).starts_with("+OK"));
        let (user, pass) = if i % 2 == 0 {
            ("alice@example.test".to_string(), "secret")
        } else {
            (format!("nobody{i}@example.test"), "wrong")
        };
        let mut w = stream;
        w.write_all(format!("USER {user}\r\n").as_bytes())
            .expect("write");
        assert!(read_line(&mut reader).starts_with("+OK"));
        sessions.push((w, reader, pass, i % 2 == 0));
    }
    let start = Instant::now();
    for (w, _, pass, _) in &mut sessions {
        w.write_all(format!("PASS {pass}\r\n").as_bytes())
            .expect("write");
    }
    let (mut good, mut bad) = (0, 0);
    for (_, r, _, ok) in &mut sessions {
        let line = read_line(r);
        if *ok {
            assert!(line.starts_with("+OK"), "good login: {line}");
            good += 1;
        } else {
            assert!(line.starts_with("-ERR"), "bad login: {line}");
            bad += 1;
        }
    }
    assert!(start.elapsed() < DEADLINE);
    let peak = status_kib(pid, "VmHWM:");
    let after = status_kib(pid, "VmRSS:");
    drop(sessions);
    let bound = before + SLOTS * MEMORY_KIB + OVERHEAD_KIB;
    eprintln!(
        "logins: {good} good, {bad} bad in {:?}; RSS before {before} KiB, \
         peak {peak} KiB, after {after} KiB; bound {bound} KiB",
        start.elapsed()
    );
    assert_eq!((good, bad), (LOGINS / 2, LOGINS / 2));
    assert!(peak <= bound, "peak RSS {peak} KiB over {bound} KiB");
}
