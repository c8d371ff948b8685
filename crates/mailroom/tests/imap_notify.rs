//! NOTIFY (RFC 5465) over real sockets: one session watches mailboxes
//! another session (or SMTP) changes, between commands and while idling,
//! with no command of its own to trigger the report.

mod common;
mod imap_kit;

use std::time::Duration;

use common::Server;
use imap_kit::{Imap, deliver, simple_message};

/// Reads untagged lines until one starts with `prefix` (or fails after a
/// few seconds): the events arrive on their own, without a command.
fn expect_line(c: &mut Imap, prefix: &str) -> String {
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut seen = Vec::new();
    loop {
        let l = c
            .try_line()
            .unwrap_or_else(|| panic!("no {prefix:?}; saw {seen:#?}"));
        if l.starts_with(prefix) {
            return l;
        }
        seen.push(l);
    }
}

fn uidvalidity(c: &mut Imap, mailbox: &str) -> String {
    let r = c.ok(&format!("STATUS {mailbox} (UIDVALIDITY)"));
    let line = &r.untagged[0];
    let v = line.split("UIDVALIDITY ").nth(1).expect("uidvalidity");
    v.trim_end_matches(')').to_string()
}

#[test]
fn a_session_sees_another_mailbox_change_between_commands() {
    let server = Server::start();
    let mut a = Imap::login(&server, "alice", "secret");
    let mut b = Imap::login(&server, "alice", "secret");
    b.ok("CREATE Work");
    let v = uidvalidity(&mut a, "Work");
    a.ok("SELECT INBOX");
    a.ok("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge)) (mailboxes Work (MessageNew MessageExpunge FlagChange)) (personal (MailboxName SubscriptionChange))");

    // B appends to Work: A hears STATUS without asking (RFC 5465 5.2).
    b.ok("SELECT Work");
    b.send_raw(b"w1 APPEND Work {20}\r\n");
    assert!(b.line().starts_with('+'));
    b.send_raw(b"Subject: w\r\n\r\nhello\r\n");
    assert_eq!(b.read_until_tagged("w1").status(), "OK");
    assert_eq!(
        expect_line(&mut a, "* STATUS"),
        format!("* STATUS Work (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {v})")
    );

    // A flag change (5.1): UIDVALIDITY and HIGHESTMODSEQ (and UNSEEN for a
    // client without CONDSTORE).
    b.ok("STORE 1 +FLAGS (\\Seen)");
    let l = expect_line(&mut a, "* STATUS");
    assert!(
        l.starts_with(&format!("* STATUS Work (UIDVALIDITY {v} HIGHESTMODSEQ "))
            && l.ends_with(" UNSEEN 0)"),
        "{l}"
    );

    // An expunge (5.3): MESSAGES.
    b.ok("STORE 1 +FLAGS (\\Deleted)");
    b.ok("EXPUNGE");
    let mut l = expect_line(&mut a, "* STATUS");
    while !l.contains("MESSAGES") {
        l = expect_line(&mut a, "* STATUS");
    }
    assert!(l.starts_with("* STATUS Work (MESSAGES 0"), "{l}");

    // Mailbox names (5.4) and subscriptions (5.5).
    b.ok("CREATE Projects");
    assert_eq!(expect_line(&mut a, "* LIST"), "* LIST () \"/\" Projects");
    b.ok("RENAME Projects Plans");
    assert_eq!(
        expect_line(&mut a, "* LIST"),
        "* LIST () \"/\" Plans (\"OLDNAME\" (Projects))"
    );
    b.ok("SUBSCRIBE Plans");
    assert_eq!(
        expect_line(&mut a, "* LIST"),
        "* LIST (\\Subscribed) \"/\" Plans"
    );
    b.ok("UNSUBSCRIBE Plans");
    assert_eq!(expect_line(&mut a, "* LIST"), "* LIST () \"/\" Plans");
    b.ok("DELETE Plans");
    assert_eq!(
        expect_line(&mut a, "* LIST"),
        "* LIST (\\NonExistent) \"/\" Plans"
    );

    // New mail in the selected mailbox: EXISTS, then the FETCH asked for
    // in MessageNew, with no command from A.
    deliver(&server, "alice@example.test", &simple_message("hi", "x"));
    assert_eq!(expect_line(&mut a, "* 1 EXISTS"), "* 1 EXISTS");
    let f = expect_line(&mut a, "* 1 FETCH");
    assert!(f.starts_with("* 1 FETCH (UID 1 FLAGS ("), "{f}");
    a.ok("NOOP");
}

#[test]
fn notify_wakes_an_idling_session_and_none_stops_it() {
    let server = Server::start();
    let mut a = Imap::login(&server, "alice", "secret");
    let mut b = Imap::login(&server, "alice", "secret");
    b.ok("CREATE Lists/rust");
    a.ok("SELECT INBOX");
    a.ok("NOTIFY SET (subtree Lists (MessageNew MessageExpunge))");
    a.send("i1 IDLE");
    assert_eq!(a.line(), "+ idling");
    b.ok("APPEND Lists/rust {1+}\r\nx");
    let l = expect_line(&mut a, "* STATUS");
    assert!(
        l.starts_with("* STATUS Lists/rust (MESSAGES 1 UIDNEXT 2 "),
        "{l}"
    );
    a.send("DONE");
    a.read_until_tagged("i1");

    // A mailbox outside the subtree is not reported.
    b.ok("APPEND Sent {1+}\r\nx");
    let r = a.ok("NOOP");
    assert!(!r.has("STATUS"), "{r:#?}");

    // NOTIFY NONE: nothing more (RFC 5465 3.1).
    a.ok("NOTIFY NONE");
    b.ok("APPEND Lists/rust {1+}\r\nx");
    std::thread::sleep(Duration::from_millis(300));
    let r = a.ok("NOOP");
    assert!(!r.has("STATUS"), "{r:#?}");
}

#[test]
fn notify_set_status_reports_where_each_mailbox_starts() {
    // imaptest's notify script, step by step.
    let server = Server::start();
    let mut a = Imap::login(&server, "alice", "secret");
    a.ok("CREATE box2");
    a.ok("APPEND box2 {1+}\r\nx");
    let v = uidvalidity(&mut a, "box2");
    let r = a.ok("NOTIFY SET STATUS (mailboxes box2 (MessageNew MessageExpunge))");
    assert!(
        r.has(&format!(
            "* STATUS box2 (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {v})"
        )),
        "{r:#?}"
    );
    let r = a.ok("ENABLE CONDSTORE");
    assert!(r.has("* ENABLED CONDSTORE"), "{r:#?}");
    let r = a.ok("NOTIFY SET STATUS (mailboxes box2 (MessageNew MessageExpunge FlagChange))");
    let l = r.lines_with("* STATUS box2").pop().expect("status").clone();
    assert!(
        l.starts_with(&format!(
            "* STATUS box2 (MESSAGES 1 UIDNEXT 2 UIDVALIDITY {v} HIGHESTMODSEQ "
        )),
        "{l}"
    );
    // Without STATUS: no STATUS.
    let r = a.ok("NOTIFY SET (mailboxes box2 (MessageNew MessageExpunge FlagChange))");
    assert!(!r.has("STATUS"), "{r:#?}");
    // The selected mailbox is reported by SELECT, not by STATUS.
    a.ok("SELECT box2");
    let r = a.ok("NOTIFY SET STATUS (personal (MessageNew MessageExpunge))");
    assert!(!r.has("STATUS box2"), "{r:#?}");
    assert!(r.has("* STATUS INBOX (MESSAGES 0 UIDNEXT 1 "), "{r:#?}");
}

#[test]
fn bad_notify_requests_get_protocol_errors() {
    let server = Server::start();
    let mut a = Imap::login(&server, "alice", "secret");
    // RFC 5465 3.1: an event the server does not support.
    let r = a.no("NOTIFY SET (personal (AnnotationChange))");
    assert!(
        r.tagged.contains(
            "[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]"
        ),
        "{r:#?}"
    );
    a.no("NOTIFY SET (inboxes (MessageNew MessageExpunge SomethingNew))");
    // RFC 5465 5: for the selected mailbox MessageNew without
    // MessageExpunge, or FlagChange alone, is BAD; for other mailboxes
    // (STATUS responses only) a part of the set is taken, as Dovecot does.
    a.ok("SELECT INBOX");
    a.bad("NOTIFY SET (selected (MessageNew))");
    a.bad("NOTIFY SET (selected (FlagChange))");
    a.ok("NOTIFY SET (personal (MessageNew))");
    a.ok("NOTIFY SET (personal (FlagChange))");
    a.ok("NOTIFY NONE");
    // FETCH attributes are for the selected mailbox only (5.2).
    a.bad("NOTIFY SET (inboxes (MessageNew (UID) MessageExpunge))");
    a.bad("NOTIFY SET (selected (MailboxName))");
    // Syntax.
    a.bad("NOTIFY SET");
    a.bad("NOTIFY SET (nowhere (MessageNew MessageExpunge))");
    a.bad("NOTIFY PLEASE");
    // Before login, not allowed.
    let mut c = Imap::connect(server.imap);
    c.bad("NOTIFY NONE");
    // The capability is advertised after login.
    let r = a.ok("CAPABILITY");
    assert!(r.has(" NOTIFY"), "{r:#?}");
}
