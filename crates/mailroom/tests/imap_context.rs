//! CONTEXT=SEARCH (RFC 5267 4) over real sockets: an updating search
//! follows changes made by another session and by SMTP delivery, and
//! PARTIAL pages through a result.

mod common;
mod imap_kit;

use std::time::Duration;

use common::Server;
use imap_kit::{Imap, deliver, simple_message};

#[test]
fn an_updating_search_follows_another_sessions_changes() {
    let server = Server::start();
    for i in 1..=4 {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "x"),
        );
    }
    let mut a = Imap::login(&server, "alice", "secret");
    let mut b = Imap::login(&server, "alice", "secret");
    a.ok("SELECT INBOX");
    b.ok("SELECT INBOX");
    let r = a.ok("UID SEARCH RETURN (UPDATE) FLAGGED");
    let tag = r.tagged.split(' ').next().expect("tag").to_string();
    assert!(r.has(&format!("* ESEARCH (TAG \"{tag}\") UID")), "{r:#?}");
    assert!(a.ok("CAPABILITY").has(" CONTEXT=SEARCH"));

    // Another session flags two messages: ADDTO at A's next NOOP.
    b.ok("STORE 2,3 +FLAGS (\\Flagged)");
    let r = a.ok("NOOP");
    assert!(
        r.has(&format!("* ESEARCH (TAG \"{tag}\") UID ADDTO (0 2:3)")),
        "{r:#?}"
    );
    // One unflagged: REMOVEFROM.
    b.ok("STORE 2 -FLAGS (\\Flagged)");
    let r = a.ok("NOOP");
    assert!(
        r.has(&format!("* ESEARCH (TAG \"{tag}\") UID REMOVEFROM (0 2)")),
        "{r:#?}"
    );
    // Expunged: REMOVEFROM comes before the EXPUNGE.
    b.ok("STORE 3 +FLAGS (\\Deleted)");
    b.ok("EXPUNGE");
    let r = a.ok("NOOP");
    let removed = r
        .untagged
        .iter()
        .position(|l| l == &format!("* ESEARCH (TAG \"{tag}\") UID REMOVEFROM (0 3)"))
        .unwrap_or_else(|| panic!("no REMOVEFROM: {r:#?}"));
    let expunged = r
        .untagged
        .iter()
        .position(|l| l == "* 3 EXPUNGE")
        .unwrap_or_else(|| panic!("no EXPUNGE: {r:#?}"));
    assert!(removed < expunged, "{r:#?}");

    // New mail that matches arrives while A idles: EXISTS, then ADDTO.
    a.send("i1 IDLE");
    assert_eq!(a.line(), "+ idling");
    b.send_raw(b"w1 APPEND INBOX (\\Flagged) {12}\r\n");
    assert!(b.line().starts_with('+'));
    b.send_raw(b"Subject: n\r\n\r\n");
    // (12 octets of message, then the CRLF that ends the command.)
    let ok = b.read_until_tagged("w1");
    assert!(ok.tagged.starts_with("w1 OK [APPENDUID "), "{ok:#?}");
    a.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("ADDTO")) {
        lines.push(a.line());
    }
    assert!(
        lines.contains(&format!("* ESEARCH (TAG \"{tag}\") UID ADDTO (0 5)")),
        "{lines:#?}"
    );
    a.send("DONE");
    a.read_until_tagged("i1");

    // CANCELUPDATE: nothing more; a second one for it is BAD.
    a.ok(&format!("CANCELUPDATE \"{tag}\""));
    b.ok("STORE 1 +FLAGS (\\Flagged)");
    let r = a.ok("NOOP");
    assert!(!r.has("ESEARCH"), "{r:#?}");
    a.bad(&format!("CANCELUPDATE \"{tag}\""));
}

#[test]
fn partial_pages_through_a_result_and_updates_are_bounded() {
    let server = Server::start();
    for i in 1..=5 {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("m{i}"), "x"),
        );
    }
    let mut a = Imap::login(&server, "alice", "secret");
    a.ok("SELECT INBOX");
    // RFC 5267 4.4: positions in the result, a reversed range the same.
    let r = a.ok("SEARCH RETURN (PARTIAL 2:3) 1:2,4:5");
    assert!(
        r.untagged.iter().any(|l| l.ends_with(" PARTIAL (2:3 2,4)")),
        "{r:#?}"
    );
    let r = a.ok("SEARCH RETURN (PARTIAL 4:2) ALL");
    assert!(
        r.untagged.iter().any(|l| l.ends_with(" PARTIAL (2:4 2:4)")),
        "{r:#?}"
    );
    let r = a.ok("SEARCH RETURN (PARTIAL 6:9) ALL");
    assert!(
        r.untagged.iter().any(|l| l.ends_with(" PARTIAL (6:9 NIL)")),
        "{r:#?}"
    );
    a.bad("SEARCH RETURN (PARTIAL 1) ALL");
    a.bad("SEARCH RETURN (PARTIAL 1:*) ALL");
    // Eight updating searches are kept; the ninth is answered, not kept.
    for _ in 0..8 {
        let r = a.ok("SEARCH RETURN (UPDATE) SEEN");
        assert!(!r.tagged.contains("NOUPDATE"), "{r:#?}");
    }
    let r = a.ok("SEARCH RETURN (UPDATE) SEEN");
    assert!(r.tagged.contains("[NOUPDATE \""), "{r:#?}");
    // They end with the mailbox.
    a.ok("UNSELECT");
    a.ok("SELECT INBOX");
    let r = a.ok("SEARCH RETURN (UPDATE) SEEN");
    assert!(!r.tagged.contains("NOUPDATE"), "{r:#?}");
    // This session's own STORE updates its search.
    let r = a.ok("STORE 1 +FLAGS (\\Seen)");
    assert!(
        r.untagged.iter().any(|l| l.ends_with(" ADDTO (0 1)")),
        "{r:#?}"
    );
}

#[test]
fn an_updating_sort_names_positions_in_the_sort_order() {
    let server = Server::start();
    // Subjects sort c, a, b by arrival; by SUBJECT: a(2) b(3) c(1).
    for subject in ["c", "a", "b"] {
        deliver(&server, "alice@example.test", &simple_message(subject, "x"));
    }
    let mut a = Imap::login(&server, "alice", "secret");
    let mut b = Imap::login(&server, "alice", "secret");
    assert!(a.ok("CAPABILITY").has(" CONTEXT=SORT"));
    a.ok("SELECT INBOX");
    b.ok("SELECT INBOX");
    let r = a.ok("UID SORT RETURN (UPDATE PARTIAL 1:2) (SUBJECT) UTF-8 UNSEEN");
    let tag = r.tagged.split(' ').next().expect("tag").to_string();
    assert!(
        r.has(&format!("* ESEARCH (TAG \"{tag}\") UID PARTIAL (1:2 2:3)")),
        "{r:#?}"
    );
    // "a" (UID 2) is read elsewhere: it leaves position 1.
    b.ok("STORE 2 +FLAGS (\\Seen)");
    let r = a.ok("NOOP");
    assert!(
        r.has(&format!("* ESEARCH (TAG \"{tag}\") UID REMOVEFROM (1 2)")),
        "{r:#?}"
    );
    // New mail "bb" sorts between "b" and "c": position 2 of (b bb c).
    deliver(&server, "alice@example.test", &simple_message("bb", "x"));
    std::thread::sleep(Duration::from_millis(300));
    let r = a.ok("NOOP");
    assert!(
        r.has(&format!("* ESEARCH (TAG \"{tag}\") UID ADDTO (2 4)")),
        "{r:#?}"
    );
    // Expunged: its position, before the EXPUNGE.
    b.ok("STORE 1 +FLAGS (\\Deleted)");
    b.ok("EXPUNGE");
    let r = a.ok("NOOP");
    assert!(
        r.has(&format!("* ESEARCH (TAG \"{tag}\") UID REMOVEFROM (3 1)")),
        "{r:#?}"
    );
}
