//! METADATA and METADATA-SERVER (RFC 5464) over real sockets: python's
//! imaplib sends the raw commands as Delta Chat does (a push token under
//! `/private` on INBOX, `/shared/comment` on the server), and the limits
//! and errors answer with their codes.

mod common;
mod imap_kit;

use std::process::Command;

use common::Server;
use imap_kit::Imap;

const SCRIPT: &str = r#"
import imaplib, sys
# imaplib knows only the commands it names; these are RFC 5464's.
imaplib.Commands['GETMETADATA'] = ('AUTH', 'SELECTED')
imaplib.Commands['SETMETADATA'] = ('AUTH', 'SELECTED')
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login('alice', 'secret')
caps = m.capability()[1][0].decode().split()
print('CAPS', 'METADATA' in caps, 'METADATA-SERVER' in caps)

def cmd(name, *args):
    typ, dat = m._simple_command(name, *args)
    _, data = m._untagged_response(typ, dat, 'METADATA')
    for d in data:
        if d is not None:
            print('DATA', d.decode() if isinstance(d, bytes) else d)
    print('TAGGED', name, typ)

cmd('SETMETADATA', 'INBOX', '(/private/devicetoken "token-123")')
cmd('GETMETADATA', 'INBOX', '/private/devicetoken')
cmd('GETMETADATA', '""', '(/shared/comment /shared/admin)')
cmd('SETMETADATA', '""', '(/shared/comment "Server comment" /shared/vendor/x "1")')
cmd('GETMETADATA', '(DEPTH infinity)', '""', '/shared')
cmd('GETMETADATA', '(DEPTH 1)', '""', '/shared')
cmd('SETMETADATA', 'INBOX', '(/private/devicetoken NIL)')
cmd('GETMETADATA', 'INBOX', '/private/devicetoken')
m.logout()
"#;

#[test]
fn python_imaplib_sets_and_reads_metadata_as_delta_chat_does() {
    let server = Server::start();
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
    let expected = [
        "CAPS True True",
        "TAGGED SETMETADATA OK",
        "DATA INBOX (/private/devicetoken \"token-123\")",
        "TAGGED GETMETADATA OK",
        "DATA \"\" (/shared/admin NIL /shared/comment NIL)",
        "TAGGED GETMETADATA OK",
        "TAGGED SETMETADATA OK",
        "DATA \"\" (/shared/comment \"Server comment\" /shared/vendor/x \"1\")",
        "TAGGED GETMETADATA OK",
        "DATA \"\" (/shared/comment \"Server comment\")",
        "TAGGED GETMETADATA OK",
        "TAGGED SETMETADATA OK",
        "DATA INBOX (/private/devicetoken NIL)",
        "TAGGED GETMETADATA OK",
    ];
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, expected, "{text}");
}

#[test]
fn metadata_limits_errors_and_mailbox_lifecycle() {
    let server = Server::start();
    let mut a = Imap::login(&server, "alice", "secret");
    // RFC 5464 4.3: a value past the limit (16 KiB) is refused whole.
    let big = "x".repeat(16 * 1024 + 1);
    let r = a.cmd(&format!(
        "SETMETADATA \"\" (/private/a \"1\" /private/big {{{}+}}\r\n{big})",
        big.len()
    ));
    assert!(
        r.tagged.contains("NO [METADATA MAXSIZE 16384]"),
        "{}",
        r.tagged
    );
    let r = a.ok("GETMETADATA \"\" /private/a");
    assert!(r.has("* METADATA \"\" (/private/a NIL)"), "{r:#?}");
    // More than 100 entries on one mailbox: TOOMANY, nothing kept.
    let many: Vec<String> = (0..64).map(|i| format!("/private/e{i} \"v\"")).collect();
    a.ok(&format!("SETMETADATA INBOX ({})", many.join(" ")));
    let more: Vec<String> = (64..128).map(|i| format!("/private/e{i} \"v\"")).collect();
    let r = a.no(&format!("SETMETADATA INBOX ({})", more.join(" ")));
    assert!(r.tagged.contains("[METADATA TOOMANY]"), "{}", r.tagged);
    let r = a.ok("GETMETADATA INBOX /private/e64");
    assert!(r.has("(/private/e64 NIL)"), "{r:#?}");
    // Bad entry names are BAD; a missing mailbox is NO [NONEXISTENT].
    a.bad("GETMETADATA \"\" /bogus/comment");
    a.bad("SETMETADATA \"\" (/shared/a* \"x\")");
    let r = a.no("SETMETADATA Nowhere (/shared/comment \"x\")");
    assert!(r.tagged.contains("[NONEXISTENT]"), "{}", r.tagged);
    a.no("GETMETADATA Nowhere /shared/comment");
    // Entries follow RENAME and go with DELETE (RFC 5464 3.2).
    a.ok("CREATE Work");
    a.ok("SETMETADATA Work (/shared/comment \"projects\")");
    a.ok("RENAME Work Plans");
    let r = a.ok("GETMETADATA Plans /shared/comment");
    assert!(
        r.has("* METADATA Plans (/shared/comment \"projects\")"),
        "{r:#?}"
    );
    a.ok("DELETE Plans");
    a.ok("CREATE Plans");
    let r = a.ok("GETMETADATA Plans /shared/comment");
    assert!(r.has("(/shared/comment NIL)"), "{r:#?}");
    // Not before login.
    let mut c = Imap::connect(server.imap);
    c.bad("GETMETADATA \"\" /shared/comment");
}
