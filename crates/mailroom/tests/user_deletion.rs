//! Deleting a user with open sessions (issue 9, "Wrong replies"):
//! `mailroom user del` runs in another process; the store's change feed
//! carries the deletion to the server, whose IMAP sessions say `* BYE` and
//! close and whose POP3 sessions get a plain `-ERR` and close.

mod common;
mod imap_kit;
mod pop3_kit;

use std::time::{Duration, Instant};

use common::{Server, WAIT};
use imap_kit::{Imap, deliver, simple_message};
use pop3_kit::Pop3;

/// Between polls of a session waiting for the deletion to reach it.
const POLL: Duration = Duration::from_millis(100);

/// Sends NOOP until the server answers `* BYE` (returned) instead of OK.
fn imap_noop_until_bye(c: &mut Imap) -> String {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let tag = c.tag();
        c.send(&format!("{tag} NOOP"));
        loop {
            let line = c.line();
            if line.starts_with("* BYE") {
                return line;
            }
            if line.starts_with(&format!("{tag} ")) {
                assert!(line.starts_with(&format!("{tag} OK")), "{line}");
                break;
            }
        }
        std::thread::sleep(POLL);
    }
    panic!("no BYE within {WAIT:?}");
}

#[test]
fn deleted_users_imap_sessions_get_bye_and_close_and_others_go_on() {
    let server = Server::start();
    deliver(&server, "alice@example.test", &simple_message("hi", "one"));
    let mut selected = Imap::login(&server, "alice", "secret");
    selected.ok("SELECT INBOX");
    let mut idle = Imap::login(&server, "alice", "secret");
    idle.ok("SELECT INBOX");
    idle.send("i1 IDLE");
    assert_eq!(idle.line(), "+ idling");
    let mut bob = Imap::login(&server, "bob", "secret");
    bob.ok("SELECT INBOX");

    server.cli(&["user", "del", "alice@example.test"]);

    // The session in IDLE hears it without asking.
    let bye = idle.line();
    assert!(bye.starts_with("* BYE"), "{bye}");
    assert!(idle.closed());
    // The other one on its next command: BYE, not OK or BAD.
    let bye = imap_noop_until_bye(&mut selected);
    assert!(bye.contains("Account deleted"), "{bye}");
    assert!(selected.closed());
    // Bob's session is untouched, and alice can no longer log in.
    bob.ok("NOOP");
    bob.ok("STATUS INBOX (MESSAGES)");
    let mut again = Imap::connect(server.imap);
    again.no("LOGIN alice secret");
}

#[test]
fn deleted_users_pop3_session_gets_a_clear_err_and_closes() {
    let server = Server::start();
    deliver(&server, "alice@example.test", &simple_message("hi", "one"));
    let mut alice = Pop3::login(server.pop3, "alice", "secret");
    alice.ok("STAT");
    alice.ok("DELE 1");
    let mut bob = Pop3::login(server.pop3, "bob", "secret");

    server.cli(&["user", "del", "alice@example.test"]);

    let deadline = Instant::now() + WAIT;
    let reply = loop {
        assert!(Instant::now() < deadline, "no -ERR within {WAIT:?}");
        let r = alice.cmd("NOOP");
        if r.starts_with("-ERR") {
            break r;
        }
        assert_eq!(r, "+OK");
        std::thread::sleep(POLL);
    };
    assert_eq!(reply, "-ERR [SYS/PERM] Account deleted, closing connection");
    assert!(alice.closed());
    bob.ok("STAT");
    bob.ok("QUIT");
}
