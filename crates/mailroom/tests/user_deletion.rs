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

/// `user del` removes the directory entry, then the mailboxes. A crash
/// between the two leaves alice out of the directory with her mail still
/// stored: exactly the state made here by removing her directory entry
/// alone (what the first half of `user del` does). Running `user del`
/// again must finish the job rather than answer "does not exist".
#[test]
fn user_del_rerun_after_a_crash_between_the_databases_finishes_the_job() {
    let server = Server::start();
    deliver(&server, "alice@example.test", &simple_message("hi", "one"));
    assert_eq!(server.inbox("alice@example.test").len(), 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let directory = server.directory();
    rt.block_on(directory.delete_user("alice@example.test"))
        .expect("directory half");
    // The crash window: no user, but the account and its mail remain.
    let store = server.store();
    let mailboxes = rt
        .block_on(store.mailboxes("alice@example.test".into()))
        .expect("mailboxes");
    assert_eq!(mailboxes.len(), 6);

    let out = server.cli_output(&["user", "del", "alice@example.test"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "deleted alice@example.test\n"
    );
    let mailboxes = rt
        .block_on(store.mailboxes("alice@example.test".into()))
        .expect("mailboxes");
    assert!(mailboxes.is_empty(), "{mailboxes:?}");
    assert!(server.inbox("alice@example.test").is_empty());

    // A third run has nothing left to do: the usual error.
    let out = server.cli_output(&["user", "del", "alice@example.test"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("alice@example.test does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bob is untouched.
    assert!(
        rt.block_on(directory.user("bob@example.test"))
            .expect("bob")
            .is_some()
    );
}

/// An account that is not a user but still receives mail (the implicit
/// postmaster) is not an interrupted deletion: `user del` leaves it.
#[test]
fn user_del_of_a_live_account_that_is_not_a_user_is_refused() {
    let server = Server::start();
    deliver(
        &server,
        "postmaster@example.test",
        &simple_message("hi", "one"),
    );
    let out = server.cli_output(&["user", "del", "postmaster@example.test"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.inbox("postmaster@example.test").len(), 1);
}
