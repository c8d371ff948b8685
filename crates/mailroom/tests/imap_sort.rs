//! SORT and THREAD (RFC 5256) with python's imaplib, whose `sort` and
//! `thread` methods send them as a real client does.

mod common;

use std::process::Command;

use common::Server;

const SCRIPT: &str = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice', 'secret')
caps = m.capability()[1][0].decode().split()
print('CAPS', ' '.join(c for c in caps if c.startswith(('SORT', 'THREAD', 'ESORT'))))
m.select('INBOX')
print('DATE', m.sort('(DATE)', 'UTF-8', 'ALL')[1][0].decode())
print('SUBJECT', m.sort('(SUBJECT)', 'UTF-8', 'ALL')[1][0].decode())
print('REVDATE', m.uid('SORT', '(REVERSE DATE)', 'UTF-8', 'ALL')[1][0].decode())
print('REFERENCES', m.thread('REFERENCES', 'UTF-8', 'ALL')[1][0].decode())
print('ORDERED', m.thread('ORDEREDSUBJECT', 'UTF-8', 'SUBJECT', 'lunch')[1][0].decode())
m.logout()
"#;

#[test]
fn python_imaplib_sorts_and_threads() {
    let server = Server::start();
    let mut c = server.connect().ehlo();
    for (subject, date, id, refs) in [
        ("lunch", "Tue, 03 Jan 2023 12:00:00 +0000", "1@x", ""),
        (
            "Re: lunch",
            "Tue, 03 Jan 2023 13:00:00 +0000",
            "2@x",
            "<1@x>",
        ),
        ("build failed", "Mon, 02 Jan 2023 09:00:00 +0000", "3@x", ""),
        (
            "Re: Re: lunch",
            "Wed, 04 Jan 2023 08:00:00 -0500",
            "4@x",
            "<1@x> <2@x>",
        ),
    ] {
        let refs = if refs.is_empty() {
            String::new()
        } else {
            format!("References: {refs}\r\n")
        };
        let msg =
            format!("Subject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}>\r\n{refs}\r\nx\r\n");
        let r = c.send_mail("bob@remote.test", &["alice@example.test"], msg.as_bytes());
        assert_eq!(r.code, 250);
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(server.imap.port().to_string())
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "CAPS SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES",
        "DATE 3 1 2 4",
        "SUBJECT 3 1 2 4",
        "REVDATE 4 2 1 3",
        "REFERENCES (3)(1 2 4)",
        "ORDERED (1 (2)(4))",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}
