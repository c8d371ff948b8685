//! THREADID (RFC 8474 5.2, 6) over real sockets: replies delivered by
//! SMTP join their thread, the id survives COPY, MOVE and RENAME, and
//! SEARCH THREADID finds the thread.

mod common;
mod imap_kit;

use common::Server;
use imap_kit::{Imap, deliver};

/// The THREADID of each message of the selected mailbox, in order.
fn thread_ids(c: &mut Imap) -> Vec<String> {
    let r = c.ok("FETCH 1:* (THREADID)");
    r.untagged
        .iter()
        .filter_map(|l| l.split("THREADID (").nth(1))
        .filter_map(|t| t.split(')').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn replies_share_a_thread_id_that_survives_copy_move_and_rename() {
    let server = Server::start();
    let to = "alice@example.test";
    deliver(
        &server,
        to,
        "Message-ID: <root@remote.test>\r\nSubject: plans\r\n\r\nroot\r\n",
    );
    deliver(
        &server,
        to,
        "Message-ID: <other@remote.test>\r\nSubject: other\r\n\r\nother\r\n",
    );
    deliver(
        &server,
        to,
        "Message-ID: <r1@remote.test>\r\nIn-Reply-To: <root@remote.test>\r\nSubject: Re: plans\r\n\r\nr1\r\n",
    );
    deliver(
        &server,
        to,
        "References: <root@remote.test> <r1@remote.test>\r\nSubject: Re: Re: plans\r\n\r\nr2\r\n",
    );
    let mut a = Imap::login(&server, "alice", "secret");
    a.ok("SELECT INBOX");
    let t = thread_ids(&mut a);
    assert_eq!(t.len(), 4, "{t:?}");
    assert!(t[0].starts_with('T'), "{t:?}");
    assert_eq!(t[0], t[2]);
    assert_eq!(t[0], t[3]);
    assert_ne!(t[0], t[1]);
    // RFC 8474 6: SEARCH THREADID.
    let r = a.ok(&format!("SEARCH THREADID {}", t[0]));
    assert!(r.has("* SEARCH 1 3 4"), "{r:#?}");
    let r = a.ok("SEARCH THREADID T999999");
    assert!(r.has("* SEARCH") && !r.has("* SEARCH 1"), "{r:#?}");
    // COPY and MOVE keep it, and so does RENAME of the mailbox.
    a.ok("CREATE Work");
    a.ok("COPY 3 Work");
    a.ok("MOVE 4 Work");
    a.ok("RENAME Work Archive/Work");
    a.ok("SELECT Archive/Work");
    assert_eq!(thread_ids(&mut a), [t[0].clone(), t[0].clone()]);
    // A reply APPENDed (a client saving its sent copy) joins too.
    a.ok("APPEND Sent {64+}\r\nIn-Reply-To: <r1@remote.test>\r\nSubject: Re: plans\r\n\r\nmine!!!!!\r\n");
    a.ok("SELECT Sent");
    assert_eq!(thread_ids(&mut a), [t[0].clone()]);
}
