//! The seed dialogue of issue 5, on a raw socket, with 19 messages
//! delivered over SMTP: its lines must appear in this order.

mod common;
mod imap_kit;

use common::Server;
use imap_kit::{Imap, deliver};

#[test]
fn seed_dialogue_login_select_fetch_all_logout() {
    let server = Server::start();
    server.cli(&["user", "add", "fred@example.test", "--password", "Secret"]);
    for i in 1..=19 {
        deliver(
            &server,
            "fred@example.test",
            &format!(
                "From: Alice <alice@example.test>\r\nTo: Fred <fred@example.test>\r\n\
                 Subject: meeting {i}\r\nDate: Tue, 2 Jan 2024 10:00:{i:02} +0000\r\n\
                 Message-ID: <m{i}@example.test>\r\n\r\nHello {i}\r\n"
            ),
        );
    }
    let mut c = Imap::connect(server.imap);
    assert!(
        c.greeting.starts_with("* OK [CAPABILITY "),
        "{}",
        c.greeting
    );
    assert!(
        c.greeting.ends_with("] mailroom IMAP ready"),
        "{}",
        c.greeting
    );

    c.send("A001 LOGIN Fred Secret");
    let r = c.read_until_tagged("A001");
    assert!(r.tagged.starts_with("A001 OK [CAPABILITY "), "{}", r.tagged);
    assert!(r.tagged.ends_with("] Logged in"), "{}", r.tagged);

    c.send("A002 SELECT INBOX");
    let r = c.read_until_tagged("A002");
    let u = &r.untagged;
    let pos = |p: &str| {
        u.iter()
            .position(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p:?} in {u:#?}"))
    };
    let flags = pos("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $MeetingNotice");
    let exists = pos("* 19 EXISTS");
    let recent = pos("* 19 RECENT");
    let unseen = pos("* OK [UNSEEN 1]");
    let validity = pos("* OK [UIDVALIDITY ");
    let next = pos("* OK [UIDNEXT 20]");
    let permanent = pos("* OK [PERMANENTFLAGS (");
    assert!(flags < exists && exists < validity && validity < next && next < permanent);
    assert!(exists < recent && recent < permanent && unseen > exists);
    assert!(u[permanent].contains("\\*)]"), "{}", u[permanent]);
    assert_eq!(r.tagged, "A002 OK [READ-WRITE] SELECT completed");

    c.send("A003 FETCH 1:19 ALL");
    let r = c.read_until_tagged("A003");
    assert_eq!(r.untagged.len(), 19, "{:#?}", r.untagged);
    for (i, l) in r.untagged.iter().enumerate() {
        let n = i + 1;
        assert!(l.starts_with(&format!("* {n} FETCH (FLAGS (")), "{l}");
        assert!(l.contains("INTERNALDATE \""), "{l}");
        assert!(l.contains("RFC822.SIZE "), "{l}");
        assert!(
            l.contains(&format!(
                "ENVELOPE (\"Tue, 2 Jan 2024 10:00:{n:02} +0000\" \"meeting {n}\" ((\"Alice\" NIL \"alice\" \"example.test\"))"
            )),
            "{l}"
        );
        assert!(l.ends_with(&format!("\"<m{n}@example.test>\"))")), "{l}");
    }
    assert_eq!(r.tagged, "A003 OK FETCH completed");

    c.send("A004 LOGOUT");
    let r = c.read_until_tagged("A004");
    assert_eq!(r.untagged, vec!["* BYE mailroom IMAP server quitting"]);
    assert_eq!(r.tagged, "A004 OK LOGOUT completed");
    assert!(c.closed());
}
