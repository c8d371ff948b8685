//! CONDSTORE and QRESYNC (RFC 7162) in the shipped binary, over real
//! sockets: mod-sequences in SELECT, STATUS, FETCH, STORE and SEARCH, and
//! a client that comes back with `SELECT INBOX (QRESYNC (...))` after
//! another session changed the mailbox and gets exactly what it missed.

mod common;
mod imap_kit;

use common::Server;
use imap_kit::{Imap, deliver, simple_message};

/// The number after `word` in `line` (`HIGHESTMODSEQ 7`, `MODSEQ (7)`).
fn number_after(line: &str, word: &str) -> u64 {
    let at = line
        .find(word)
        .unwrap_or_else(|| panic!("no {word} in {line}"));
    line[at + word.len()..]
        .trim_start_matches([' ', '('])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {word} in {line}"))
}

fn highestmodseq(r: &imap_kit::Reply) -> u64 {
    let line = r
        .untagged
        .iter()
        .find(|l| l.contains("[HIGHESTMODSEQ "))
        .unwrap_or_else(|| panic!("no HIGHESTMODSEQ: {r:#?}"));
    number_after(line, "HIGHESTMODSEQ")
}

fn uidvalidity(r: &imap_kit::Reply) -> u64 {
    let line = r
        .untagged
        .iter()
        .find(|l| l.contains("[UIDVALIDITY "))
        .unwrap_or_else(|| panic!("no UIDVALIDITY: {r:#?}"));
    number_after(line, "UIDVALIDITY")
}

fn with_messages(n: usize) -> Server {
    let server = Server::start();
    for i in 1..=n {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "body"),
        );
    }
    server
}

#[test]
fn select_status_and_fetch_carry_mod_sequences() {
    let server = with_messages(3);
    let mut c = Imap::login(&server, "alice", "secret");
    assert!(c.ok("CAPABILITY").has("CONDSTORE"));
    let r = c.ok("SELECT INBOX (CONDSTORE)");
    let high = highestmodseq(&r);
    assert!(high >= 3, "{r:#?}");
    let r = c.ok("STATUS INBOX (HIGHESTMODSEQ MESSAGES)");
    assert!(r.has(&format!("HIGHESTMODSEQ {high}")), "{r:#?}");
    let r = c.ok("FETCH 1:3 (FLAGS MODSEQ)");
    assert_eq!(r.lines_with("MODSEQ (").len(), 3, "{r:#?}");
    // A STORE moves the message past every other mod-sequence, and the
    // mailbox's HIGHESTMODSEQ with it.
    let r = c.ok("STORE 2 +FLAGS (\\Flagged)");
    let stored = number_after(&r.lines_with("FETCH")[0].clone(), "MODSEQ");
    assert!(stored > high, "{r:#?}");
    let r = c.ok(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {high})"));
    assert_eq!(
        r.lines_with("FETCH"),
        [&format!(
            "* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ ({stored}))"
        )],
        "{r:#?}"
    );
    let r = c.ok(&format!("SEARCH MODSEQ {stored}"));
    assert!(r.has(&format!("* SEARCH 2 (MODSEQ {stored})")), "{r:#?}");
}

#[test]
fn a_condstore_enabling_command_sends_highestmodseq_once() {
    let server = with_messages(1);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("SELECT INBOX");
    let r = c.ok("FETCH 1 MODSEQ");
    assert!(r.has("[HIGHESTMODSEQ "), "{r:#?}");
    let r = c.ok("FETCH 1 MODSEQ");
    assert!(!r.has("[HIGHESTMODSEQ "), "{r:#?}");
    // From now on, changes made elsewhere carry MODSEQ too.
    let mut other = Imap::login(&server, "alice", "secret");
    other.ok("SELECT INBOX");
    other.ok("STORE 1 +FLAGS (\\Seen)");
    let r = c.ok("NOOP");
    let fetch = r.lines_with("FETCH");
    assert_eq!(fetch.len(), 1, "{r:#?}");
    assert!(fetch[0].contains("MODSEQ ("), "{r:#?}");
}

#[test]
fn unchangedsince_conflicts_return_modified_and_store_the_rest() {
    let server = with_messages(3);
    let mut a = Imap::login(&server, "alice", "secret");
    let high = highestmodseq(&a.ok("SELECT INBOX (CONDSTORE)"));
    let mut b = Imap::login(&server, "alice", "secret");
    b.ok("SELECT INBOX");
    // Another client changes message 2 after `a` read the mailbox.
    b.ok("STORE 2 +FLAGS (\\Answered)");
    let r = a.ok(&format!(
        "STORE 1:3 (UNCHANGEDSINCE {high}) +FLAGS (\\Deleted)"
    ));
    assert!(r.tagged.contains("[MODIFIED 2]"), "{r:#?}");
    // Message 2 may be reported (b's change, with its MODSEQ), never
    // with the refused \Deleted.
    assert!(
        !r.lines_with("* 2 FETCH")
            .iter()
            .any(|l| l.contains("\\Deleted")),
        "{r:#?}"
    );
    let r = b.ok("FETCH 1:3 FLAGS");
    assert!(r.has("* 1 FETCH (FLAGS (\\Deleted"), "{r:#?}");
    assert!(!r.has("* 2 FETCH (FLAGS (\\Answered \\Deleted"), "{r:#?}");
    assert!(r.has("* 3 FETCH (FLAGS (\\Deleted"), "{r:#?}");
    // UID STORE names UIDs; 0 always fails (RFC 7162 3.1.3).
    let r = a.ok("UID STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)");
    assert!(r.tagged.contains("[MODIFIED 1]"), "{r:#?}");
}

#[test]
fn qresync_select_gets_exactly_the_vanished_and_fetch_it_missed() {
    let server = with_messages(5);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("ENABLE QRESYNC");
    let r = c.ok("SELECT INBOX");
    let (validity, high) = (uidvalidity(&r), highestmodseq(&r));
    c.ok("LOGOUT");

    // Meanwhile, on another device: 2 and 4 go, 3 is flagged, 6 arrives.
    let mut other = Imap::login(&server, "alice", "secret");
    other.ok("SELECT INBOX");
    other.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)");
    other.ok("EXPUNGE");
    other.ok("STORE 2 +FLAGS.SILENT (\\Flagged)");
    deliver(&server, "alice@example.test", &simple_message("m6", "new"));

    let mut c = Imap::login(&server, "alice", "secret");
    assert!(
        c.bad(&format!("SELECT INBOX (QRESYNC ({validity} {high}))"))
            .tagged
            .contains("QRESYNC")
    );
    c.ok("ENABLE QRESYNC");
    let r = c.ok(&format!("SELECT INBOX (QRESYNC ({validity} {high} 1:5))"));
    assert!(r.has("* 4 EXISTS"), "{r:#?}");
    assert_eq!(
        r.lines_with("VANISHED"),
        ["* VANISHED (EARLIER) 2,4"],
        "{r:#?}"
    );
    let fetches = r.lines_with("FETCH");
    // Message 3 (now seq 2) changed; 6 is new (seq 4) and comes as FETCH
    // too, since it changed after `high`.
    assert!(
        fetches
            .iter()
            .any(|l| l.starts_with("* 2 FETCH (UID 3 FLAGS (\\Flagged")),
        "{r:#?}"
    );
    assert!(
        fetches.iter().any(|l| l.starts_with("* 4 FETCH (UID 6 ")),
        "{r:#?}"
    );
    assert!(
        !fetches
            .iter()
            .any(|l| l.contains("UID 1 ") || l.contains("UID 5 ")),
        "{r:#?}"
    );
    // A stale UIDVALIDITY: a plain SELECT, no VANISHED.
    let r = c.ok(&format!("SELECT INBOX (QRESYNC ({} {high}))", validity + 1));
    assert!(!r.has("VANISHED"), "{r:#?}");
}

#[test]
fn with_qresync_expunges_are_vanished_and_uid_fetch_vanished_reports_earlier_ones() {
    let server = with_messages(4);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("ENABLE QRESYNC");
    let high = highestmodseq(&c.ok("SELECT INBOX"));
    let mut other = Imap::login(&server, "alice", "secret");
    other.ok("SELECT INBOX");
    other.ok("STORE 1 +FLAGS.SILENT (\\Deleted)");
    other.ok("EXPUNGE");
    // Another session's expunge: VANISHED, not EXPUNGE.
    let r = c.ok("NOOP");
    assert_eq!(r.lines_with("VANISHED"), ["* VANISHED 1"], "{r:#?}");
    assert!(!r.has("EXPUNGE"), "{r:#?}");
    // This session's UID EXPUNGE too.
    c.ok("UID STORE 3 +FLAGS.SILENT (\\Deleted)");
    let r = c.ok("UID EXPUNGE 3");
    assert_eq!(r.lines_with("VANISHED"), ["* VANISHED 3"], "{r:#?}");
    // A client that only knew `high` asks what vanished since.
    let r = c.ok(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {high} VANISHED)"
    ));
    assert_eq!(
        r.lines_with("VANISHED"),
        ["* VANISHED (EARLIER) 1,3"],
        "{r:#?}"
    );
    // VANISHED without QRESYNC is BAD.
    let mut plain = Imap::login(&server, "alice", "secret");
    plain.ok("SELECT INBOX");
    plain.bad(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {high} VANISHED)"
    ));
}

#[test]
fn esearch_returns_the_modseq_of_what_it_returns() {
    let server = with_messages(3);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("ENABLE CONDSTORE");
    c.ok("SELECT INBOX");
    let mut m = Vec::new();
    for i in 1..=3 {
        let r = c.ok(&format!("STORE {i} +FLAGS (\\Seen)"));
        m.push(number_after(&r.lines_with("FETCH")[0].clone(), "MODSEQ"));
    }
    let r = c.ok("SEARCH RETURN (MIN) 1:3 MODSEQ \"/flags/\\\\seen\" all 1");
    assert!(r.has(&format!("MIN 1 MODSEQ {}", m[0])), "{r:#?}");
    let r = c.ok("SEARCH RETURN (ALL) 1:3 MODSEQ 1");
    assert!(r.has(&format!("ALL 1:3 MODSEQ {}", m[2])), "{r:#?}");
    let r = c.ok(&format!("SEARCH RETURN (ALL) MODSEQ {}", m[2] + 1));
    assert!(!r.has("MODSEQ"), "{r:#?}");
}

/// Waits (bounded) until the server's log says tombstones were trimmed.
fn wait_for_trim(server: &Server) {
    for _ in 0..200 {
        if server.log().contains("tombstones trimmed") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no trim logged: {}", server.log());
}

#[test]
fn after_tombstones_are_trimmed_known_uids_still_give_every_vanished_uid() {
    // RFC 7162 3.2.5.2: a client whose mod-sequence predates trimmed
    // tombstones gets VANISHED (EARLIER) from its known UIDs, never less.
    let server = Server::start_with_extra(common::Extra {
        top: "[store]\ntombstone_retention = 1\n".into(),
        ..Default::default()
    });
    for i in 1..=5 {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "body"),
        );
    }
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("ENABLE QRESYNC");
    let r = c.ok("SELECT INBOX");
    let (validity, high) = (uidvalidity(&r), highestmodseq(&r));
    c.ok("LOGOUT");
    // A session that stays selected, without QRESYNC, through the trim.
    let mut idle = Imap::login(&server, "alice", "secret");
    idle.ok("SELECT INBOX");

    let mut other = Imap::login(&server, "alice", "secret");
    other.ok("SELECT INBOX");
    other.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)");
    other.ok("EXPUNGE");
    other.ok("LOGOUT");
    wait_for_trim(&server);

    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("ENABLE QRESYNC");
    let r = c.ok(&format!("SELECT INBOX (QRESYNC ({validity} {high} 1:5))"));
    assert_eq!(
        r.lines_with("VANISHED"),
        ["* VANISHED (EARLIER) 2,4"],
        "{r:#?}"
    );
    // Without known UIDs the client is taken to know every UID below
    // UIDNEXT.
    let r = c.ok(&format!("SELECT INBOX (QRESYNC ({validity} {high}))"));
    assert_eq!(
        r.lines_with("VANISHED"),
        ["* VANISHED (EARLIER) 2,4"],
        "{r:#?}"
    );
    // Known UIDs past the last one given out are not reported.
    let r = c.ok(&format!("SELECT INBOX (QRESYNC ({validity} {high} 1:100))"));
    assert_eq!(
        r.lines_with("VANISHED"),
        ["* VANISHED (EARLIER) 2,4"],
        "{r:#?}"
    );
    // Known UIDs limit the answer to what the client knows.
    let r = c.ok(&format!("SELECT INBOX (QRESYNC ({validity} {high} 3:5))"));
    assert_eq!(
        r.lines_with("VANISHED"),
        ["* VANISHED (EARLIER) 4"],
        "{r:#?}"
    );
    let r = c.ok(&format!(
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {high} VANISHED)"
    ));
    assert_eq!(
        r.lines_with("VANISHED"),
        ["* VANISHED (EARLIER) 2,4"],
        "{r:#?}"
    );
    // The session selected all along learns both expunges at its next
    // command, though their tombstones are gone.
    let r = idle.ok("NOOP");
    assert_eq!(r.lines_with("EXPUNGE").len(), 2, "{r:#?}");
    let r = idle.ok("FETCH 1:* (UID)");
    let fetches = r.lines_with("FETCH (UID");
    assert_eq!(
        fetches,
        [
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 3)",
            "* 3 FETCH (UID 5)"
        ],
        "{r:#?}"
    );
    assert!(idle.ok("NOOP").lines_with("EXPUNGE").is_empty());
}
