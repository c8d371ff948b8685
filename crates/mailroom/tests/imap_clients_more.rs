//! More real IMAP clients against the real server: mutt driven under tmux
//! (reading, opening and saving a message to another folder), getmail6's
//! SimpleIMAPRetriever into a Maildir, and python imaplib in IDLE (raw
//! commands: the Python installed may predate `IMAP4.idle`).
//!
//! A client that is not installed fails its test: scripts/test-deps
//! installs them all. Every wait is bounded and everything talks over
//! loopback only.

mod common;
mod imap_kit;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, WAIT, write_private};
use imap_kit::{Imap, deliver, simple_message};

const ALICE: &str = "alice@example.test";

/// Bound for one whole client run.
const LIMIT: Duration = Duration::from_secs(60);

/// The tests need every client: a missing one is a failure, not a skip.
fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} is not installed: run scripts/test-deps");
}

fn text_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Kills a child process when dropped, so a failing test leaves nothing
/// running.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a client to completion within `limit`; panics unless it succeeds.
/// Its output is read by threads, so a chatty client cannot block on a
/// full pipe.
fn run(cmd: &mut Command, limit: Duration) -> String {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut guard = ChildGuard(child);
    let stdout = guard
        .0
        .stdout
        .take()
        .map(|p| std::thread::spawn(|| common::read_all(p)));
    let stderr = guard
        .0
        .stderr
        .take()
        .map(|p| std::thread::spawn(|| common::read_all(p)));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "{cmd:?} timed out");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    for t in [stdout, stderr].into_iter().flatten() {
        out.push_str(&t.join().unwrap_or_default());
    }
    assert!(status.success(), "{cmd:?} failed:\n{out}");
    out
}

// ---------------------------------------------------------------- mutt

/// A tmux server on its own socket (a path in the test's directory, so
/// tests never share a server and leave no socket behind), killed with
/// everything in it when dropped, whatever happened to the test.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).arg("-f").arg("/dev/null");
        c
    }

    /// Starts `shell_cmd` in a detached session "t" of a fresh server.
    fn start(socket: std::path::PathBuf, home: &Path, shell_cmd: &str) -> Tmux {
        let t = Tmux { socket };
        let out = t
            .cmd()
            .env("HOME", home)
            .env("TERM", "xterm")
            .args(["new-session", "-d", "-s", "t", "-x", "160", "-y", "40"])
            .arg(shell_cmd)
            .output()
            .expect("tmux new-session");
        assert!(out.status.success(), "tmux: {}", text_of(&out));
        t
    }

    fn pane(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends keys (tmux key names, e.g. "Enter", "C-u").
    fn keys(&self, keys: &[&str]) {
        let out = self
            .cmd()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .output()
            .expect("tmux send-keys");
        assert!(out.status.success(), "send-keys: {}", text_of(&out));
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        let out = self
            .cmd()
            .args(["send-keys", "-t", "t", "-l", text])
            .output()
            .expect("tmux send-keys");
        assert!(out.status.success(), "send-keys: {}", text_of(&out));
    }

    /// Polls the screen until every needle is on it; panics with the
    /// screen (and the server log) after WAIT.
    fn wait_for(&self, needles: &[&str], server: &Server) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let pane = self.pane();
            if needles.iter().all(|n| pane.contains(n)) {
                return pane;
            }
            if Instant::now() > deadline {
                panic!(
                    "screen never showed {needles:?}:\n{pane}\n--- server log ---\n{}",
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What the shell prints when mutt exits, so the pane outlives mutt and
/// its exit status can be read.
const MUTT_EXIT: &str = "MUTT-EXITED";

/// Issue 5 asks for mutt as a check by hand, not in CI, where a terminal
/// client is flaky: run it with
/// `cargo test -p mailroom --test imap_clients_more -- --ignored mutt`.
#[test]
#[ignore = "terminal client: a check by hand (issue 5), run with --ignored"]
fn mutt_under_tmux_reads_opens_and_saves_to_another_folder() {
    require("tmux");
    require("mutt");
    let server = Server::start();
    deliver(
        &server,
        ALICE,
        &simple_message("mutt-first", "first body from smtp"),
    );
    deliver(
        &server,
        ALICE,
        &simple_message("mutt-second", "second body from smtp"),
    );
    let home = server.dir.path().join("mutt-home");
    std::fs::create_dir_all(&home).expect("mutt home");
    let rc = home.join("muttrc");
    std::fs::write(
        &rc,
        format!(
            "set folder=imaps://alice@localhost:{port}/\n\
             set spoolfile=+INBOX\n\
             set imap_user=alice\nset imap_pass=secret\n\
             set ssl_force_tls=yes\n\
             set imap_check_subscribed=no\nset imap_passive=yes\n\
             set header_cache=\nset message_cachedir=\n\
             set certificate_file={cert}\nset history_file=/dev/null\n\
             set move=no\nset record=\nset postponed=+Drafts\n\
             set delete=yes\nset quit=yes\nset confirmappend=no\nset confirmcreate=no\n\
             set mark_old=no\nset wait_key=no\nset help=no\nset beep=no\n\
             set sort=mailbox-order\nset pager_index_lines=0\nset pager_stop=yes\n\
             set timeout=2\nset mail_check=2\nset charset=utf-8\n",
            port = server.imaps.port(),
            cert = server.cert().display(),
        ),
    )
    .expect("muttrc");
    let socket = home.join("tmux.sock");
    let tmux = Tmux::start(
        socket,
        &home,
        &format!(
            "mutt -n -F {rc}; echo {MUTT_EXIT} $?; sleep 120",
            rc = rc.display()
        ),
    );
    // The index lists what SMTP delivered.
    tmux.wait_for(&["mutt-first", "mutt-second"], &server);
    // Open the first message: its body is on screen.
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["first body from smtp"], &server);
    tmux.keys(&["q"]);
    tmux.wait_for(&["mutt-second"], &server);
    // Save it to Archive: mutt copies it there and marks it deleted.
    tmux.keys(&["s"]);
    tmux.wait_for(&["Save to mailbox"], &server);
    tmux.keys(&["C-u"]);
    tmux.type_text("=Archive");
    tmux.keys(&["Enter"]);
    // Quit: mutt syncs (expunges the saved message) and exits.
    std::thread::sleep(Duration::from_millis(500));
    tmux.keys(&["q"]);
    let screen = tmux.wait_for(&[MUTT_EXIT], &server);
    assert!(
        screen.contains(&format!("{MUTT_EXIT} 0")),
        "mutt failed:\n{screen}"
    );
    drop(tmux);

    let mut c = Imap::login(&server, "alice", "secret");
    let r = c.ok("STATUS Archive (MESSAGES)");
    assert!(r.has("(MESSAGES 1)"), "{r:#?}");
    let r = c.ok("STATUS INBOX (MESSAGES)");
    assert!(r.has("(MESSAGES 1)"), "{r:#?}");
    c.ok("SELECT Archive");
    let r = c.ok("FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(r.has("mutt-first") && r.has("\\Seen"), "{r:#?}");
    c.ok("SELECT INBOX");
    let r = c.ok("FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(r.has("mutt-second"), "{r:#?}");
}

// ------------------------------------------------------------- getmail6

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn getmail6_imap_retrieves_into_a_maildir_then_deletes() {
    require("getmail");
    let server = Server::start();
    let sent: Vec<String> = (1..=3)
        .map(|i| simple_message(&format!("getmail-{i}"), &format!("imap body number {i}")))
        .collect();
    for m in &sent {
        deliver(&server, ALICE, m);
    }
    let (dir, maildir, user_line) = common::getmail_maildir(&server, "getmail-imap");
    let rc = dir.join("getmailrc");
    let write_rc = |delete: bool| {
        write_private(
            &rc,
            &format!(
                "[retriever]\ntype = SimpleIMAPRetriever\nserver = 127.0.0.1\nport = {port}\n\
                 username = alice\npassword = secret\ntimeout = 20\nmailboxes = (\"INBOX\",)\n\n\
                 [destination]\ntype = Maildir\npath = {maildir}/\n{user_line}\n\
                 [options]\nread_all = false\ndelete = {delete}\nverbose = 2\n",
                port = server.imap.port(),
                maildir = maildir.display(),
            ),
        );
    };
    let getmail = || {
        run(
            Command::new("getmail")
                .arg("--getmaildir")
                .arg(&dir)
                .arg("--rcfile")
                .arg(&rc),
            LIMIT,
        )
    };
    write_rc(false);
    let log = getmail();
    let mut got = files_in(&maildir.join("new"));
    assert_eq!(got.len(), 3, "three messages retrieved:\n{log}");
    got.sort_by_key(|m| {
        let t = String::from_utf8_lossy(m);
        (1..=3).find(|i| t.contains(&format!("imap body number {i}")))
    });
    let stored = server.inbox(ALICE);
    assert_eq!(stored.len(), 3, "nothing deleted without delete");
    for ((g, sent), stored) in got.iter().zip(&sent).zip(&stored) {
        // getmail stores LF line ends, adds its own fields above the
        // header (Return-Path, Delivered-To, Received) and one below it
        // (X-getmail-retrieved-from-mailbox): the server's header and the
        // body must be there unchanged.
        let g = String::from_utf8_lossy(g);
        let stored_lf = String::from_utf8_lossy(stored).replace("\r\n", "\n");
        let sent_lf = sent.replace("\r\n", "\n");
        for (whole, what) in [(&stored_lf, "stored"), (&sent_lf, "sent")] {
            let (head, body) = whole.split_once("\n\n").expect("header and body");
            let head: String = head
                .lines()
                .filter(|l| !l.starts_with("Return-Path:"))
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(g.contains(&head), "{g}\n--- {what} header ---\n{head}");
            assert!(
                g.ends_with(&format!("\n\n{body}")),
                "{g}\n--- {what} body ---\n{body}"
            );
        }
    }
    // The UIDs are remembered: a second run fetches nothing new.
    getmail();
    assert_eq!(files_in(&maildir.join("new")).len(), 3);
    // A new message is fetched alone; with delete, what was seen goes.
    deliver(&server, ALICE, &simple_message("getmail-4", "fourth"));
    write_rc(true);
    getmail();
    let after = files_in(&maildir.join("new"));
    assert_eq!(after.len(), 4);
    assert_eq!(
        after
            .iter()
            .filter(|m| String::from_utf8_lossy(m).contains("Subject: getmail-4"))
            .count(),
        1
    );
    assert!(
        server.inbox(ALICE).is_empty(),
        "delete = true must expunge what was retrieved"
    );
}

// -------------------------------------------------------- imaplib IDLE

const IMAPLIB_IDLE: &str = r#"
import imaplib, select, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=20)
M.login("alice", "secret")
typ, data = M.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
assert b"IDLE" in M.capabilities or "IDLE" in M.capabilities, M.capabilities
tag = M._new_tag()
M.send(tag + b" IDLE\r\n")
line = M.readline()
assert line.startswith(b"+"), line
# Nothing happens, so the server says nothing for a while.
r, _, _ = select.select([M.sock], [], [], 1.0)
assert not r, "server spoke during a quiet IDLE"
print("QUIET", flush=True)
# The test delivers now: "* 2 EXISTS" arrives unasked, within the timeout.
line = M.readline()
while not line.startswith(b"* 2 EXISTS"):
    assert line.startswith(b"* "), line
    line = M.readline()
M.send(b"DONE\r\n")
line = M.readline()
while not line.startswith(tag + b" "):
    assert line.startswith(b"* "), line
    line = M.readline()
assert line.startswith(tag + b" OK"), line
typ, data = M.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK" and b"while idling" in data[0][1], data
M.logout()
print("DONE-OK", flush=True)
"#;

#[test]
fn python_imaplib_idle_sees_new_mail_and_times_out_quietly() {
    require("python3");
    let server = Server::start();
    deliver(&server, ALICE, &simple_message("before", "one"));
    let child = Command::new("python3")
        .arg("-c")
        .arg(IMAPLIB_IDLE)
        .arg(server.imap.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut guard = ChildGuard(child);
    let stdout = guard.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr_of = |g: &mut ChildGuard| {
        let _ = g.0.kill();
        g.0.stderr.take().map(common::read_all).unwrap_or_default()
    };
    match rx.recv_timeout(WAIT) {
        Ok(l) if l == "QUIET" => {}
        other => panic!("python never idled: {other:?}\n{}", stderr_of(&mut guard)),
    }
    deliver(&server, ALICE, &simple_message("while idling", "two"));
    match rx.recv_timeout(WAIT) {
        Ok(l) if l == "DONE-OK" => {}
        other => panic!(
            "IDLE did not report the new mail: {other:?}\n{}",
            stderr_of(&mut guard)
        ),
    }
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            assert!(status.success(), "python: {}", stderr_of(&mut guard));
            break;
        }
        assert!(Instant::now() < deadline, "python did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------- input that arrives in pieces

// A client's bytes reach the server in as many reads as the network likes;
// these found framer bugs that whole writes on loopback hide.

#[test]
fn a_long_line_arriving_in_two_writes_is_bad_and_the_session_continues() {
    let server = Server::start();
    let mut c = Imap::login(&server, "alice", "secret");
    c.send_raw(format!("a1 NOOP {}", "x".repeat(70_000)).as_bytes());
    std::thread::sleep(Duration::from_millis(300));
    c.send_raw(b"yyy\r\n");
    let l = c.line();
    assert!(l.starts_with("a1 BAD") && l.contains("too long"), "{l}");
    c.ok("NOOP");
}

#[test]
fn an_append_literal_arriving_in_many_writes_is_stored() {
    let server = Server::start();
    let mut c = Imap::login(&server, "alice", "secret");
    c.stream.set_nodelay(true).expect("nodelay");
    let body = format!(
        "Subject: pieces\r\n\r\n{}",
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789ab\r\n"
            .repeat(100)
    );
    c.send(&format!("p1 APPEND INBOX {{{}}}", body.len()));
    let l = c.line();
    assert!(l.starts_with('+'), "{l}");
    // 100 writes a few milliseconds apart: far more reads than the 64
    // literals a command may hold.
    for chunk in body.as_bytes().chunks(body.len() / 100 + 1) {
        c.send_raw(chunk);
        std::thread::sleep(Duration::from_millis(3));
    }
    c.send_raw(b"\r\n");
    let r = c.read_until_tagged("p1");
    assert_eq!(r.status(), "OK", "{r:#?}");
    let stored = server.inbox(ALICE);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0], body.as_bytes());
}
