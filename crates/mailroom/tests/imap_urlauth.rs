//! URLAUTH (RFC 4467) over real sockets: a user signs a URL to one of
//! their messages, another session (another user, for `authuser`)
//! fetches it, and RESETKEY makes every URL signed before answer NIL.

mod common;
mod imap_kit;

use common::Server;
use imap_kit::{Imap, deliver};

/// The URL in `* GENURLAUTH "url"`.
fn signed(r: &imap_kit::Reply) -> String {
    let line = r
        .untagged
        .iter()
        .find(|l| l.starts_with("* GENURLAUTH "))
        .unwrap_or_else(|| panic!("no GENURLAUTH: {r:#?}"));
    line.trim_start_matches("* GENURLAUTH ")
        .trim_matches('"')
        .to_string()
}

#[test]
fn a_signed_url_is_fetched_by_whom_it_names_until_the_key_is_reset() {
    let server = Server::start();
    let body = "Subject: shared\r\n\r\nthe body\r\n";
    deliver(&server, "alice@example.test", body);
    let mut a = Imap::login(&server, "alice", "secret");
    assert!(a.ok("CAPABILITY").has(" URLAUTH"));
    let r = a.ok("EXAMINE INBOX");
    let validity = r
        .untagged
        .iter()
        .find_map(|l| l.split("[UIDVALIDITY ").nth(1))
        .and_then(|v| v.split(']').next())
        .expect("uidvalidity")
        .to_string();
    let base = format!("imap://alice@example.test/INBOX;UIDVALIDITY={validity}/;UID=1");
    let mine = signed(&a.ok(&format!(
        "GENURLAUTH \"{base};URLAUTH=user+alice\" INTERNAL"
    )));
    assert!(mine.contains(";URLAUTH=user+alice:INTERNAL:"), "{mine}");
    let anyone = signed(&a.ok(&format!("GENURLAUTH \"{base};URLAUTH=authuser\" INTERNAL")));
    let part = signed(&a.ok(&format!(
        "GENURLAUTH \"{base}/;SECTION=TEXT;URLAUTH=authuser\" INTERNAL"
    )));

    // The owner fetches both; bob only the authuser one.
    let r = a.ok(&format!("URLFETCH \"{mine}\""));
    // SMTP delivery put trace fields above the message: it ends with it.
    assert!(r.untagged[0].ends_with(body), "{r:#?}");
    let mut b = Imap::login(&server, "bob", "secret");
    let r = b.ok(&format!("URLFETCH \"{mine}\" \"{anyone}\" \"{part}\""));
    let line = &r.untagged[0];
    // The URLs come back as astrings (atoms here).
    assert!(line.contains(&format!(" {mine} NIL ")), "{line}");
    assert!(line.contains(&format!(" {anyone} {{")), "{line}");
    assert!(line.contains(body), "{line}");
    assert!(line.ends_with("{10}\r\nthe body\r\n"), "{line}");

    // A changed token, or an expired URL, is NIL.
    let forged = format!(
        "{}0",
        mine.trim_end_matches(|c: char| c.is_ascii_hexdigit())
    );
    let r = a.ok(&format!("URLFETCH \"{forged}\""));
    assert!(r.untagged[0].ends_with(" NIL"), "{r:#?}");
    let old = signed(&a.ok(&format!(
        "GENURLAUTH \"{base};EXPIRE=2001-01-01T00:00:00Z;URLAUTH=authuser\" INTERNAL"
    )));
    let r = a.ok(&format!("URLFETCH \"{old}\""));
    assert!(r.untagged[0].ends_with(" NIL"), "{r:#?}");

    // Errors: another user's message, an unknown mechanism, a bad URL.
    a.no("GENURLAUTH \"imap://bob@example.test/INBOX/;UID=1;URLAUTH=authuser\" INTERNAL");
    a.no(&format!("GENURLAUTH \"{base};URLAUTH=authuser\" XSHA1"));
    a.bad("GENURLAUTH \"imap://alice@example.test/INBOX;URLAUTH=authuser\" INTERNAL");
    a.no("RESETKEY Nowhere");

    // RESETKEY: every URL signed with the key stops working.
    a.ok("RESETKEY INBOX INTERNAL");
    let r = b.ok(&format!("URLFETCH \"{anyone}\""));
    assert!(r.untagged[0].ends_with(" NIL"), "{r:#?}");
    let fresh = signed(&a.ok(&format!("GENURLAUTH \"{base};URLAUTH=authuser\" INTERNAL")));
    assert_ne!(fresh, anyone);
    a.ok("RESETKEY");
    let r = b.ok(&format!("URLFETCH \"{fresh}\""));
    assert!(r.untagged[0].ends_with(" NIL"), "{r:#?}");
}
