//! Each IMAP command's success and failure paths, over a real socket
//! against the real binary.

mod common;
mod imap_kit;

use common::Server;
use imap_kit::{Imap, deliver, simple_message};

fn server_with_mail(n: usize) -> Server {
    let server = Server::start();
    for i in 1..=n {
        deliver(
            &server,
            "alice@example.test",
            &simple_message(&format!("msg{i}"), &format!("body number {i}")),
        );
    }
    server
}

#[test]
fn commands_before_login_are_bad_and_login_failures_are_no() {
    let server = Server::start();
    let mut c = Imap::connect(server.imap);
    assert!(c.greeting.contains("AUTH=PLAIN"));
    c.bad("SELECT INBOX");
    c.bad("FETCH 1 FLAGS");
    let r = c.ok("CAPABILITY");
    assert!(r.has("* CAPABILITY IMAP4rev1 IMAP4rev2"));
    c.ok("NOOP");
    let r = c.no("LOGIN alice wrong");
    assert!(r.tagged.contains("[AUTHENTICATIONFAILED]"), "{}", r.tagged);
    c.ok("LOGIN alice@example.test secret");
    c.bad("LOGIN alice secret");
}

#[test]
fn authenticate_plain_with_and_without_initial_response() {
    let server = Server::start();
    let mut c = Imap::connect(server.imap);
    // base64("\0alice\0secret")
    let r = c.ok("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==");
    assert!(r.tagged.contains("[CAPABILITY"));
    let mut c = Imap::connect(server.imap);
    c.send("a1 AUTHENTICATE PLAIN");
    assert_eq!(c.line(), "+ ");
    c.send("AGFsaWNlAHdyb25n");
    let r = c.read_until_tagged("a1");
    assert!(
        r.tagged.starts_with("a1 NO [AUTHENTICATIONFAILED]"),
        "{}",
        r.tagged
    );
    c.send("a2 AUTHENTICATE PLAIN");
    assert_eq!(c.line(), "+ ");
    c.send("*");
    assert!(c.read_until_tagged("a2").tagged.starts_with("a2 BAD"));
    c.no("AUTHENTICATE CRAM-MD5");
}

#[test]
fn select_examine_and_nonexistent_mailbox() {
    let server = server_with_mail(3);
    let mut c = Imap::login(&server, "alice", "secret");
    let r = c.ok("EXAMINE INBOX");
    assert!(r.tagged.contains("[READ-ONLY]"));
    assert!(r.has("* 3 EXISTS"));
    let r = c.no("SELECT Nowhere");
    assert!(r.tagged.contains("[NONEXISTENT]"));
    // A failed SELECT leaves no mailbox selected.
    c.bad("FETCH 1 FLAGS");
    c.ok("SELECT inbox");
    c.ok("UNSELECT");
    c.bad("FETCH 1 FLAGS");
}

#[test]
fn enable_imap4rev2_changes_select_and_search_responses() {
    let server = server_with_mail(2);
    let mut c = Imap::login(&server, "alice", "secret");
    let r = c.ok("ENABLE IMAP4rev2");
    assert!(r.has("* ENABLED IMAP4rev2"));
    let r = c.ok("SELECT INBOX");
    assert!(r.has("* LIST () \"/\" INBOX"), "{r:#?}");
    assert!(!r.has("RECENT"));
    let r = c.ok("SEARCH ALL");
    assert!(r.has("* ESEARCH (TAG \"t4\") ALL 1:2"), "{r:#?}");
}

#[test]
fn create_delete_rename_with_hierarchy() {
    let server = Server::start();
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("CREATE Work/Projects/2024");
    let r = c.ok("LIST \"\" \"Work*\"");
    assert!(r.has("\\HasChildren) \"/\" Work"), "{r:#?}");
    assert!(r.has("\\HasNoChildren) \"/\" Work/Projects/2024"), "{r:#?}");
    let r = c.no("CREATE Work");
    assert!(r.tagged.contains("[ALREADYEXISTS]"));
    let r = c.no("DELETE Work");
    assert!(r.tagged.contains("[HASCHILDREN]"), "{}", r.tagged);
    let r = c.no("DELETE Missing");
    assert!(r.tagged.contains("[NONEXISTENT]"));
    let r = c.no("DELETE INBOX");
    assert!(r.tagged.contains("[CANNOT]"));
    c.ok("RENAME Work Job");
    let r = c.ok("LIST \"\" *");
    assert!(r.has("\"/\" Job/Projects/2024"), "{r:#?}");
    assert!(!r.has("\"/\" Work"));
    let r = c.no("RENAME Missing Other");
    assert!(r.tagged.contains("[NONEXISTENT]"));
    let r = c.no("RENAME Job Sent");
    assert!(r.tagged.contains("[ALREADYEXISTS]"));
    c.ok("DELETE Job/Projects/2024");
    c.ok("DELETE Job/Projects");
    c.ok("DELETE Job");
}

#[test]
fn rename_inbox_moves_its_messages_and_leaves_it_empty() {
    let server = server_with_mail(2);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("RENAME INBOX Old");
    let r = c.ok("STATUS INBOX (MESSAGES)");
    assert!(r.has("* STATUS INBOX (MESSAGES 0)"), "{r:#?}");
    let r = c.ok("STATUS Old (MESSAGES)");
    assert!(r.has("* STATUS Old (MESSAGES 2)"), "{r:#?}");
}

#[test]
fn list_special_use_namespace_lsub_and_utf7_names() {
    let server = Server::start();
    let mut c = Imap::login(&server, "alice", "secret");
    let r = c.ok("LIST \"\" %");
    assert!(r.has("(\\HasNoChildren \\Sent) \"/\" Sent"), "{r:#?}");
    assert!(r.has("\\Trash) \"/\" Trash"));
    let r = c.ok("LIST \"\" \"\"");
    assert!(r.has("* LIST (\\Noselect) \"/\" \"\""), "{r:#?}");
    let r = c.ok("LIST (SPECIAL-USE) \"\" *");
    assert_eq!(r.untagged.len(), 5, "{r:#?}");
    let r = c.ok("LIST \"\" * RETURN (STATUS (MESSAGES UNSEEN) SUBSCRIBED)");
    assert!(r.has("* STATUS INBOX (MESSAGES 0 UNSEEN 0)"), "{r:#?}");
    assert!(r.has("\\Subscribed"));
    let r = c.ok("NAMESPACE");
    assert!(r.has("* NAMESPACE ((\"\" \"/\")) NIL NIL"));
    c.ok("CREATE Entw&APw-rfe");
    // CREATE does not subscribe (RFC 9051 6.3.4).
    c.ok("SUBSCRIBE Entw&APw-rfe");
    // Not modified UTF-7: no mailbox can have that name.
    c.no("CREATE &Jjo!");
    c.ok("UNSUBSCRIBE Junk");
    let r = c.ok("LSUB \"\" *");
    assert!(!r.has("Junk"));
    assert!(r.has("* LSUB () \"/\" Entw&APw-rfe"), "{r:#?}");
    c.ok("SUBSCRIBE Junk");
    let r = c.no("SUBSCRIBE Nope");
    assert!(r.tagged.contains("[NONEXISTENT]"));
    // The same mailbox in UTF-8 once IMAP4rev2 is enabled.
    c.ok("ENABLE IMAP4rev2");
    let r = c.ok("LIST \"\" Entw*");
    assert!(r.has("\"/\" \"Entw\u{fc}rfe\""), "{r:#?}");
}

#[test]
fn status_counts_messages_unseen_deleted_size() {
    let server = server_with_mail(3);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("SELECT INBOX");
    c.ok("STORE 1 +FLAGS (\\Seen \\Deleted)");
    let r = c.ok("STATUS INBOX (MESSAGES UNSEEN DELETED UIDNEXT UIDVALIDITY SIZE RECENT)");
    let l = &r.lines_with("* STATUS INBOX")[0];
    assert!(
        l.contains("MESSAGES 3 UNSEEN 2 DELETED 1 UIDNEXT 4 UIDVALIDITY "),
        "{l}"
    );
    assert!(l.contains("SIZE "), "{l}");
    let r = c.no("STATUS Nope (MESSAGES)");
    assert!(r.tagged.contains("[NONEXISTENT]"));
}

#[test]
fn fetch_items_sections_and_seen_flag() {
    let server = server_with_mail(2);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("SELECT INBOX");
    let r = c.ok("FETCH 1 (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    let l = &r.untagged[0];
    assert!(
        l.starts_with("* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE "),
        "{l}"
    );
    assert!(
        l.contains("BODY[HEADER.FIELDS (SUBJECT)] {17}\r\nSubject: msg1\r\n\r\n)"),
        "{l}"
    );
    let r = c.ok("FETCH 1 BODY[TEXT]");
    let l = &r.untagged[0];
    assert!(l.contains("BODY[TEXT] {15}\r\nbody number 1\r\n"), "{l}");
    assert!(l.contains("FLAGS (\\Seen \\Recent)"), "{l}");
    let r = c.ok("FETCH 2 (BODY[]<0.4> BODYSTRUCTURE BODY)");
    let l = &r.untagged[0];
    assert!(l.contains("BODY[]<0> {4}\r\n"), "{l}");
    assert!(
        l.contains("BODYSTRUCTURE (\"TEXT\" \"PLAIN\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 15 1 NIL NIL NIL NIL)"),
        "{l}"
    );
    assert!(
        l.contains("BODY (\"TEXT\" \"PLAIN\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 15 1)"),
        "{l}"
    );
    let r = c.ok("UID FETCH 2 (FLAGS)");
    assert!(
        r.untagged[0].starts_with("* 2 FETCH (UID 2 FLAGS"),
        "{r:#?}"
    );
    let r = c.ok("FETCH 1:2 FAST");
    assert_eq!(r.untagged.len(), 2);
    let r = c.ok("UID FETCH 100:200 FLAGS");
    assert!(r.untagged.is_empty());
    c.bad("FETCH 3 FLAGS");
    c.bad("FETCH 1 (FLAGS");
    c.bad("FETCH 1 NOTANITEM");
}

#[test]
fn store_flags_keywords_silent_and_read_only() {
    let server = server_with_mail(3);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("SELECT INBOX");
    let r = c.ok("STORE 1:2 +FLAGS ($MeetingNotice \\Flagged)");
    assert_eq!(r.untagged.len(), 2, "{r:#?}");
    assert!(
        r.untagged[0].contains("FLAGS ($MeetingNotice \\Flagged \\Recent)"),
        "{r:#?}"
    );
    let r = c.ok("STORE 1 -FLAGS.SILENT (\\Flagged)");
    assert!(r.untagged.is_empty(), "{r:#?}");
    let r = c.ok("UID STORE 3 FLAGS (\\Answered)");
    assert!(
        r.has("* 3 FETCH (UID 3 FLAGS (\\Answered \\Recent))"),
        "{r:#?}"
    );
    let r = c.ok("FETCH 1 FLAGS");
    assert!(r.has("FLAGS ($MeetingNotice \\Recent)"), "{r:#?}");
    c.bad("STORE 1 +FLAGS (\\Bogus)");
    c.bad("STORE 1 FROBS (\\Seen)");
    c.ok("EXAMINE INBOX");
    c.no("STORE 1 +FLAGS (\\Seen)");
}

#[test]
fn expunge_close_and_uid_expunge() {
    let server = server_with_mail(5);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("SELECT INBOX");
    c.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)");
    let r = c.ok("EXPUNGE");
    assert_eq!(r.untagged, vec!["* 2 EXPUNGE", "* 3 EXPUNGE"]);
    c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)");
    let r = c.ok("UID EXPUNGE 1");
    assert_eq!(r.untagged, vec!["* 1 EXPUNGE"]);
    c.ok("CLOSE");
    let r = c.ok("STATUS INBOX (MESSAGES)");
    assert!(r.has("(MESSAGES 0)"), "{r:#?}");
    c.ok("EXAMINE INBOX");
    c.no("EXPUNGE");
}

#[test]
fn copy_move_and_append_answer_uidplus_codes() {
    let server = server_with_mail(3);
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("SELECT INBOX");
    let r = c.ok("COPY 1:2 Archive");
    assert!(r.tagged.contains("[COPYUID "), "{}", r.tagged);
    assert!(r.tagged.contains(" 1:2 1:2]"), "{}", r.tagged);
    let r = c.no("COPY 1 Nowhere");
    assert!(r.tagged.contains("[TRYCREATE]"));
    let r = c.ok("UID MOVE 3 Trash");
    assert!(r.has("* OK [COPYUID "), "{r:#?}");
    assert!(r.has("* 3 EXPUNGE"), "{r:#?}");
    let r = c.ok("MOVE 1 Trash");
    assert!(r.has("* 1 EXPUNGE"));
    let r = c.ok("STATUS Trash (MESSAGES)");
    assert!(r.has("(MESSAGES 2)"));
    let msg = "Subject: appended\r\n\r\nhello\r\n";
    c.send(&format!(
        "a1 APPEND Drafts (\\Draft \\Seen) \"7-Feb-1994 21:52:25 -0800\" {{{}}}",
        msg.len()
    ));
    assert!(c.line().starts_with("+ "));
    c.send_raw(msg.as_bytes());
    c.send("");
    let r = c.read_until_tagged("a1");
    assert!(r.tagged.starts_with("a1 OK [APPENDUID "), "{}", r.tagged);
    // LITERAL+: no continuation request.
    c.send(&format!("a2 APPEND INBOX {{{}+}}", msg.len()));
    c.send_raw(msg.as_bytes());
    c.send("");
    let r = c.read_until_tagged("a2");
    assert!(r.tagged.starts_with("a2 OK [APPENDUID "), "{}", r.tagged);
    // Appending to the selected mailbox announces it.
    assert!(r.has("EXISTS"), "{r:#?}");
    c.send("a3 APPEND Nowhere {5+}");
    c.send("hello");
    let r = c.read_until_tagged("a3");
    assert!(r.tagged.contains("[TRYCREATE]"), "{}", r.tagged);
    c.ok("SELECT Drafts");
    let r = c.ok("FETCH 1 (FLAGS INTERNALDATE)");
    assert!(
        r.has("FLAGS (\\Draft \\Seen \\Recent) INTERNALDATE \"08-Feb-1994 05:52:25 +0000\""),
        "{r:#?}"
    );
}

#[test]
fn search_keys_charset_and_searchres() {
    let server = Server::start();
    deliver(
        &server,
        "alice@example.test",
        &simple_message("hello", "plain body"),
    );
    deliver(
        &server,
        "alice@example.test",
        "From: =?utf-8?q?J=C3=B6rg?= <j@other.test>\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n",
    );
    deliver(
        &server,
        "alice@example.test",
        &simple_message("third", "x".repeat(3000).as_str()),
    );
    let mut c = Imap::login(&server, "alice", "secret");
    c.ok("SELECT INBOX");
    assert!(c.ok("SEARCH ALL").has("* SEARCH 1 2 3"));
    assert!(c.ok("SEARCH SUBJECT hello").has("* SEARCH 1"));
    let r = c.ok("SEARCH CHARSET UTF-8 SUBJECT \"caf\u{e9}\"");
    assert!(r.has("* SEARCH 2"), "{r:#?}");
    let r = c.ok("SEARCH CHARSET UTF-8 BODY \"K\u{f6}LN\"");
    assert!(r.has("* SEARCH 2"), "{r:#?}");
    assert!(
        c.ok("SEARCH CHARSET UTF-8 FROM \"j\u{f6}rg\"")
            .has("* SEARCH 2")
    );
    assert!(c.ok("SEARCH LARGER 2000").has("* SEARCH 3"));
    assert!(
        c.ok("SEARCH OR SUBJECT hello SUBJECT third")
            .has("* SEARCH 1 3")
    );
    assert!(c.ok("SEARCH NOT (SUBJECT hello)").has("* SEARCH 2 3"));
    assert!(c.ok("SEARCH SENTON 7-Feb-1994").has("* SEARCH 1 3"));
    assert!(c.ok("SEARCH SINCE 1-Jan-2000 UNSEEN").has("* SEARCH 1 2 3"));
    assert!(c.ok("UID SEARCH UID 2:*").has("* SEARCH 2 3"));
    c.ok("STORE 2 +FLAGS ($Work)");
    assert!(c.ok("SEARCH KEYWORD $Work").has("* SEARCH 2"));
    assert!(c.ok("SEARCH HEADER Message-ID third").has("* SEARCH 3"));
    let r = c.no("SEARCH CHARSET KOI8-R ALL");
    assert!(r.tagged.contains("[BADCHARSET"));
    let r = c.ok("SEARCH RETURN (MIN MAX COUNT) ALL");
    let tag = r.tagged.split(' ').next().unwrap_or_default().to_string();
    assert!(
        r.has(&format!("* ESEARCH (TAG \"{tag}\") MIN 1 MAX 3 COUNT 3")),
        "{r:#?}"
    );
    let r = c.ok("SEARCH RETURN (SAVE) SUBJECT third");
    assert!(r.untagged.is_empty(), "{r:#?}");
    let r = c.ok("FETCH $ (UID)");
    assert!(r.has("* 3 FETCH (UID 3)"), "{r:#?}");
    c.bad("SEARCH FOO");
    c.bad(&format!("SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100)));
}

#[test]
fn idle_done_and_logout_from_authenticated_state() {
    let server = Server::start();
    let mut c = Imap::login(&server, "alice", "secret");
    c.send("i1 IDLE");
    assert_eq!(c.line(), "+ idling");
    c.send("DONE");
    assert_eq!(c.read_until_tagged("i1").tagged, "i1 OK IDLE terminated");
    let r = c.ok("ID (\"name\" \"test\")");
    assert!(r.has("* ID (\"name\" \"mailroom\""));
    c.ok("LOGOUT");
}
