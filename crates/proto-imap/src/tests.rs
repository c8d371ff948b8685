//! Command parsing against RFC 9051's example traces.

use crate::command::{CommandKind, ParseOptions, parse_command};
use crate::fetch::FetchAtt;
use crate::types::{SeqNum, SeqSet};

fn parse(s: &str) -> CommandKind {
    parse_command(s.as_bytes(), ParseOptions::default())
        .unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
        .kind
}

#[test]
fn rfc9051_example_commands_parse() {
    // Examples from RFC 9051 6.1-6.4 (and RFC 3501 6 for rev1 forms).
    for line in [
        "abcd CAPABILITY\r\n",
        "a002 NOOP\r\n",
        "A023 LOGOUT\r\n",
        "a001 LOGIN SMITH SESAME\r\n",
        "A142 SELECT INBOX\r\n",
        "A932 EXAMINE blurdybloop\r\n",
        "A003 CREATE owatagusiam/\r\n",
        "A683 DELETE blurdybloop\r\n",
        "A683 RENAME blurdybloop sarasoop\r\n",
        "A002 SUBSCRIBE #news.comp.mail.mime\r\n",
        "A101 LIST \"\" \"\"\r\n",
        "A102 LIST #news.comp.mail.misc \"\"\r\n",
        "A202 LIST ~/Mail/ %\r\n",
        "A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
        "A003 APPEND saved-messages (\\Seen) {4}\r\nabc\n\r\n",
        "A003 APPEND saved-messages (\\Seen) \"7-Feb-1994 21:52:25 -0800\" {4+}\r\nabc\n\r\n",
        "FXXZ CHECK\r\n",
        "A341 CLOSE\r\n",
        "A202 EXPUNGE\r\n",
        "A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
        "A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
        "A284 SEARCH TEXT \"string not in mailbox\"\r\n",
        "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
        "A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
        "A003 COPY 2:4 MEETING\r\n",
        "A999 UID FETCH 4827313:4828442 FLAGS\r\n",
        "a UID MOVE 42:69 foo\r\n",
        "A004 UID EXPUNGE 3000:3002\r\n",
        "a001 ENABLE IMAP4rev2\r\n",
        "a002 IDLE\r\n",
        "a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" NIL)\r\n",
        "A01 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)\r\n",
        "A02 LIST \"\" (\"INBOX\" \"Drafts\") RETURN (STATUS (MESSAGES UNSEEN))\r\n",
        "a AUTHENTICATE PLAIN AGZyZWQAU2VjcmV0\r\n",
        "a UNSELECT\r\n",
        "a UNAUTHENTICATE\r\n",
        "a NAMESPACE\r\n",
        // RFC 7162's examples.
        "a103 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
        "s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
        "a110 STORE 1:5 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n",
        "A142 SELECT INBOX (CONDSTORE)\r\n",
        "A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
        "B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))\r\n",
        "a SEARCH MODSEQ 620162338\r\n",
        // RFC 9208's examples.
        "A003 GETQUOTA \"\"\r\n",
        "S00 STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)\r\n",
        "A003 GETQUOTAROOT INBOX\r\n",
        "A001 SETQUOTA \"\" (STORAGE 512)\r\n",
        "a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n",
        // RFC 4978 3.
        "a COMPRESS DEFLATE\r\n",
        // RFC 8514 4.
        "a FETCH 1:* (SAVEDATE)\r\n",
        "a SEARCH SAVEDBEFORE 1-Feb-1994 SAVEDON 2-Feb-1994 SAVEDSINCE 3-Feb-1994 SAVEDATESUPPORTED\r\n",
    ] {
        parse(line);
    }
}

#[test]
fn condstore_modifiers_are_parsed_and_bad_ones_refused() {
    let cmd = parse_command(
        b"a STORE 1:5 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n",
        ParseOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        cmd.kind,
        CommandKind::Store {
            unchanged_since: Some(320162338),
            silent: true,
            ..
        }
    ));
    let cmd = parse_command(
        b"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7 VANISHED)\r\n",
        ParseOptions::default(),
    )
    .unwrap();
    let CommandKind::Fetch { modifiers, .. } = cmd.kind else {
        panic!("not FETCH");
    };
    assert_eq!(
        (modifiers.changed_since, modifiers.vanished),
        (Some(7), true)
    );
    for bad in [
        // VANISHED only with UID FETCH, and only with CHANGEDSINCE.
        "a FETCH 1:* (FLAGS) (CHANGEDSINCE 7 VANISHED)\r\n",
        "a UID FETCH 1:* (FLAGS) (VANISHED)\r\n",
        "a SELECT INBOX (QRESYNC (0 5))\r\n",
        "a SELECT INBOX (QRESYNC (1 0))\r\n",
        "a SELECT INBOX (BOGUS)\r\n",
        "a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS ()\r\n",
    ] {
        assert!(
            parse_command(bad.as_bytes(), ParseOptions::default()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn seed_dialogue_commands() {
    assert_eq!(
        parse("A001 LOGIN Fred Secret\r\n"),
        CommandKind::Login {
            user: "Fred".into(),
            password: "Secret".into()
        }
    );
    match parse("A003 FETCH 1:19 ALL\r\n") {
        CommandKind::Fetch { uid, set, atts, .. } => {
            assert!(!uid);
            assert_eq!(
                set,
                SeqSet::Ranges(vec![(SeqNum::Value(1), SeqNum::Value(19))])
            );
            assert_eq!(atts.len(), 4);
            assert!(atts.contains(&FetchAtt::Envelope));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_commands_keep_their_tag() {
    for (line, tag) in [
        ("a1 FOO\r\n", Some("a1")),
        ("a2 LOGIN onlyuser\r\n", Some("a2")),
        ("a3 FETCH 0 FLAGS\r\n", Some("a3")),
        ("a4 SELECT\r\n", Some("a4")),
        ("a5 NOOP extra\r\n", Some("a5")),
        ("a6 LOGIN \"a\0b\" c\r\n", Some("a6")),
        ("(bad NOOP\r\n", None),
        ("+tag NOOP\r\n", None),
        ("\r\n", None),
    ] {
        let e = parse_command(line.as_bytes(), ParseOptions::default()).unwrap_err();
        assert_eq!(e.tag.as_ref().map(|t| t.as_str()), tag, "{line:?}");
    }
}

#[test]
fn mailbox_names_follow_the_session_mode() {
    let rev1 = parse_command(b"a SELECT Entw&APw-rfe\r\n", ParseOptions { utf8: false });
    let rev2 = parse_command(
        "a SELECT \"Entw\u{fc}rfe\"\r\n".as_bytes(),
        ParseOptions { utf8: true },
    );
    for r in [rev1, rev2] {
        match r.unwrap().kind {
            CommandKind::Select { mailbox, .. } => assert_eq!(mailbox.as_str(), "Entw\u{fc}rfe"),
            other => panic!("{other:?}"),
        }
    }
    assert!(parse_command(b"a SELECT caf\xc3\xa9\r\n", ParseOptions { utf8: false }).is_err());
    assert!(parse_command(b"a SELECT caf\xff\r\n", ParseOptions { utf8: true }).is_err());
}

#[test]
fn an_id_field_that_is_not_utf8_round_trips_or_is_refused() {
    // Found by the imap_command fuzz target: 26 octets, 22 of them 0x8c,
    // were accepted, kept as U+FFFD (3 octets each), and serialised to a
    // 70-octet field that no longer parsed.
    let mut raw = b"a2 ID (\"nam".to_vec();
    raw.extend(std::iter::repeat_n(0x8c, 22));
    raw.extend_from_slice(b"e\" \"\")\r\n");
    for utf8 in [false, true] {
        let opts = ParseOptions { utf8 };
        if let Ok(cmd) = parse_command(&raw, opts) {
            let back = parse_command(&cmd.to_bytes(opts), opts);
            assert_eq!(back.as_ref(), Ok(&cmd));
        }
    }
}

#[test]
fn id_accepts_rfc2971_maximums_and_refuses_beyond() {
    // RFC 2971 3.3: fields up to 30 octets, values up to 1024, 30 pairs.
    let pair = |i: usize, flen: usize, vlen: usize| {
        let f = format!("{i:02}{}", "f".repeat(flen - 2));
        format!("\"{f}\" \"{}\"", "v".repeat(vlen))
    };
    let line = |pairs: Vec<String>| format!("a ID ({})\r\n", pairs.join(" "));
    let max: Vec<String> = (0..30).map(|i| pair(i, 30, 1024)).collect();
    match parse(&line(max)) {
        CommandKind::Id(items) => assert_eq!(items.len(), 30),
        other => panic!("{other:?}"),
    }
    for bad in [
        (0..31).map(|i| pair(i, 5, 5)).collect::<Vec<_>>(),
        vec![pair(0, 31, 5)],
        vec![pair(0, 5, 1025)],
    ] {
        let l = line(bad);
        assert!(
            parse_command(l.as_bytes(), ParseOptions::default()).is_err(),
            "{}",
            l.len()
        );
    }
}
