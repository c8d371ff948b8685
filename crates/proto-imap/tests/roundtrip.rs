//! Round trip of the command grammar (STYLE.md): parse(serialize(x)) == x
//! for commands taken from RFC 9051's (and RFC 3501's) example traces and
//! for built values whose strings need quoting or literals; each serialized
//! command is also cut whole by the framer.

use proto_imap::command::{ParseOptions, StatusItem};
use proto_imap::search::{SearchCommand, SearchKey, SearchReturn};
use proto_imap::{
    AppendData, AppendMessage, CatPart, Command, CommandKind, FetchAtt, FetchModifiers, Frame,
    Framer, FramerLimits, ListCommand, Mailbox, QResync, Section, SectionText, SelectParams,
    SeqNum, SeqSet, StoreOp, Tag, parse_command,
};

const REV1: ParseOptions = ParseOptions { utf8: false };
const REV2: ParseOptions = ParseOptions { utf8: true };

/// Serializes, frames and parses back; the value must come back equal.
fn round_trip(cmd: &Command, opts: ParseOptions) {
    let bytes = cmd.to_bytes(opts);
    let shown = String::from_utf8_lossy(&bytes);
    assert_eq!(
        Framer::new(FramerLimits::default()).next(&bytes),
        Frame::Complete(bytes.len()),
        "framer on {shown:?}"
    );
    let back = parse_command(&bytes, opts).unwrap_or_else(|e| panic!("{shown:?}: {e:?}"));
    assert_eq!(&back, cmd, "{shown:?}");
}

/// Commands from the RFCs' traces (RFC 9051 6.1-6.4 and 7, RFC 3501 6,
/// RFC 5258 / 5819 LIST, RFC 4731 / 5182 SEARCH, RFC 2971 ID, RFC 4959).
const RFC_TRACES: &[&str] = &[
    "abcd CAPABILITY\r\n",
    "a002 NOOP\r\n",
    "A023 LOGOUT\r\n",
    "a001 STARTTLS\r\n",
    "a001 LOGIN SMITH SESAME\r\n",
    "A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n",
    "A001 LOGIN \"fred \\\"the\\\" smith\" \"pass\\\\word\"\r\n",
    "a001 AUTHENTICATE PLAIN\r\n",
    "a AUTHENTICATE PLAIN AGZyZWQAU2VjcmV0\r\n",
    "a AUTHENTICATE PLAIN =\r\n",
    "t1 ENABLE IMAP4rev2\r\n",
    "t2 ENABLE CONDSTORE QRESYNC UTF8=ACCEPT\r\n",
    "a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" \"Pink Floyd Music Limited\")\r\n",
    "a024 ID NIL\r\n",
    "a025 ID (\"name\" NIL)\r\n",
    "A142 SELECT INBOX\r\n",
    "A142 SELECT inbox\r\n",
    "A932 EXAMINE blurdybloop\r\n",
    "A003 CREATE owatagusiam/\r\n",
    "A004 CREATE owatagusiam/blurdybloop\r\n",
    "A683 DELETE blurdybloop\r\n",
    "A683 RENAME blurdybloop sarasoop\r\n",
    "A685 RENAME \"foo bar\" {3}\r\nzap\r\n",
    "A002 SUBSCRIBE #news.comp.mail.mime\r\n",
    "A002 UNSUBSCRIBE #news.comp.mail.mime\r\n",
    "A101 LIST \"\" \"\"\r\n",
    "A102 LIST #news.comp.mail.misc \"\"\r\n",
    "A103 LIST /usr/staff/jones \"\"\r\n",
    "A202 LIST ~/Mail/ %\r\n",
    "A203 LIST \"\" *\r\n",
    "A01 LIST (SUBSCRIBED) \"\" \"*\"\r\n",
    "A02 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)\r\n",
    "A03 LIST () \"\" (\"INBOX\" \"Drafts\" \"Sent/%\")\r\n",
    "A04 LIST \"\" % RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)\r\n",
    "A05 LIST \"\" (\"INBOX\" \"Drafts\") RETURN (STATUS (MESSAGES UNSEEN))\r\n",
    "A06 LIST (SPECIAL-USE) \"\" \"*\"\r\n",
    "A002 LSUB #news. news.comp.mail.*\r\n",
    "A003 LSUB \"\" %\r\n",
    "A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
    "A043 STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT)\r\n",
    "A003 APPEND saved-messages (\\Seen) {29}\r\nDate: Mon\r\nSubject: x\r\n\r\nhi\r\n",
    "A004 APPEND saved-messages (\\Seen $Work) \"7-Feb-1994 21:52:25 -0800\" {4+}\r\nabc\n\r\n",
    "A005 APPEND Drafts {3}\r\nabc\r\n",
    "A006 APPEND Drafts ~{3}\r\na\0c\r\n",
    "FXXZ CHECK\r\n",
    "A341 CLOSE\r\n",
    "A342 UNSELECT\r\n",
    "A202 EXPUNGE\r\n",
    "A004 UID EXPUNGE 3000:3002\r\n",
    "A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
    "A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
    "A284 SEARCH TEXT \"string not in mailbox\"\r\n",
    "A285 SEARCH CHARSET UTF-8 TEXT {12}\r\nXXXXXXXXXXXX\r\n",
    "A286 SEARCH OR BODY \"next appointment\" ON 3-Mar-2020\r\n",
    "A287 UID SEARCH RETURN (SAVE) FLAGGED\r\n",
    "A288 UID SEARCH UID $ SMALLER 4096\r\n",
    // RFC 5256 4, RFC 5267 3, RFC 5957.
    "A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994\r\n",
    "A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL\r\n",
    "A284 SORT (SUBJECT) US-ASCII TEXT \"not in mailbox\"\r\n",
    "A285 UID SORT RETURN (MIN MAX COUNT) (REVERSE DISPLAYFROM) UTF-8 UNSEEN\r\n",
    "A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000\r\n",
    // RFC 6154 5.3.
    "t1 CREATE \"Important Messages\" (USE (\\Important))\r\n",
    "t2 CREATE Archive (USE (\\Archive))\r\n",
    // RFC 8474 4-6.
    "27 STATUS foo (MAILBOXID)\r\n",
    "3 FETCH 1:* (EMAILID THREADID)\r\n",
    "28 SEARCH EMAILID M6d99ac3275bb4e\r\n",
    "29 UID SEARCH THREADID T64b478a75b7ea9\r\n",
    // RFC 8970 4.
    "t1 FETCH 1 (PREVIEW)\r\n",
    "t2 UID FETCH 1:* (UID PREVIEW (LAZY))\r\n",
    // RFC 5032 4.
    "a1 SEARCH UNSEEN YOUNGER 259200\r\n",
    "a2 UID SEARCH OLDER 3600 NOT YOUNGER 60\r\n",
    "A284 THREAD ORDEREDSUBJECT US-ASCII TEXT \"gewp\"\r\n",
    "A285 UID THREAD REFERENCES UTF-8 SINCE 5-MAR-2000\r\n",
    "A289 SEARCH (OR (SEEN DRAFT) NOT KEYWORD $Junk) LARGER 10 SENTBEFORE 2-Jan-2020\r\n",
    "A290 SEARCH HEADER X-Mailer mutt UNKEYWORD $Work UNANSWERED\r\n",
    "A291 SEARCH 1:3,5,7:* RECENT NEW OLD DELETED UNDELETED UNFLAGGED UNDRAFT UNSEEN\r\n",
    "A292 SEARCH BCC a CC b TO c SUBJECT \"\" BEFORE 1-Jan-2000 SENTON 2-Feb-2001 SENTSINCE 3-Mar-2002\r\n",
    "A293 SEARCH (ALL)\r\n",
    "A294 SEARCH ANSWERED\r\n",
    "A295 SEARCH MODSEQ 620162338\r\n",
    "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
    "A655 FETCH 1:19 ALL\r\n",
    "A656 FETCH 1 FAST\r\n",
    "A657 FETCH 1 FULL\r\n",
    "A658 FETCH 3 BODYSTRUCTURE\r\n",
    "A659 FETCH 1 (BODY[] BODY.PEEK[1.2.MIME]<0.100> BODY[TEXT]<10.20> BODY[2.HEADER])\r\n",
    "A660 FETCH 1 (BINARY[1] BINARY.PEEK[1.2]<0.5> BINARY.SIZE[1] BINARY[])\r\n",
    "A661 FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE UID ENVELOPE INTERNALDATE BODY)\r\n",
    "A662 FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Received \"X-Odd(Name\")]\r\n",
    "A663 FETCH $ (UID MODSEQ)\r\n",
    "A999 UID FETCH 4827313:4828442 FLAGS\r\n",
    "A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
    "A004 STORE 2:4 -FLAGS.SILENT (\\Seen $Work)\r\n",
    "A005 STORE 1 FLAGS ()\r\n",
    "A006 UID STORE 1:* FLAGS \\Answered \\Flagged\r\n",
    "A003 COPY 2:4 MEETING\r\n",
    "A004 UID COPY 5 \"Sent Items\"\r\n",
    "a MOVE 1 Trash\r\n",
    "a UID MOVE 42:69 foo\r\n",
    "a002 IDLE\r\n",
    "a NAMESPACE\r\n",
];

#[test]
fn rfc_trace_commands_survive_a_round_trip() {
    for opts in [REV1, REV2] {
        for line in RFC_TRACES {
            let cmd = parse_command(line.as_bytes(), opts)
                .unwrap_or_else(|e| panic!("{line:?} does not parse: {e:?}"));
            round_trip(&cmd, opts);
        }
    }
}

#[test]
fn rev1_and_rev2_mailbox_names_survive_a_round_trip() {
    for (line, opts) in [
        ("a SELECT Entw&APw-rfe\r\n", REV1),
        ("a LIST \"\" &ZeVnLIqe-/%\r\n", REV1),
        ("a LSUB \"&ZeVnLIqe-\" Entw&APw-*\r\n", REV1),
        ("a CREATE \"Entw\u{fc}rfe/M\u{e4}rz\"\r\n", REV2),
        ("a COPY 1 \"\u{65e5}\u{672c}\u{8a9e}\"\r\n", REV2),
        ("a STATUS \"A & B\" (MESSAGES)\r\n", REV2),
        ("a STATUS A&-B (MESSAGES)\r\n", REV1),
    ] {
        let cmd = parse_command(line.as_bytes(), opts).unwrap_or_else(|e| panic!("{line}: {e:?}"));
        round_trip(&cmd, opts);
    }
}

fn tag(s: &str) -> Tag {
    Tag::new(s).expect("tag")
}

fn mailbox(s: &str) -> Mailbox {
    Mailbox::new(s).expect("mailbox")
}

fn set(ranges: &[(u32, u32)]) -> SeqSet {
    SeqSet::Ranges(
        ranges
            .iter()
            .map(|&(a, b)| (SeqNum::Value(a), SeqNum::Value(b)))
            .collect(),
    )
}

/// Values built directly, with the awkward strings: spaces, quotes,
/// backslashes, CRLF (a literal), 8-bit text, empty strings.
fn built_commands() -> Vec<CommandKind> {
    vec![
        CommandKind::Login {
            user: "alice@example.test".into(),
            password: "p\"a\\ss word".into(),
        },
        CommandKind::Login {
            user: "".into(),
            password: "line\r\nbreak".into(),
        },
        CommandKind::Login {
            user: "J\u{f6}rg".into(),
            password: "{5}".into(),
        },
        CommandKind::Id(vec![
            ("name".into(), Some("mutt".into())),
            ("os".into(), None),
            ("quote\"d".into(), Some("multi\nline".into())),
        ]),
        CommandKind::Select {
            mailbox: mailbox("Work/Projects 2024"),
            read_only: true,
            params: SelectParams::default(),
        },
        // RFC 7162 3.2.5.2's example, and CONDSTORE with it.
        CommandKind::Select {
            mailbox: mailbox("INBOX"),
            read_only: false,
            params: SelectParams {
                condstore: true,
                qresync: Some(QResync {
                    uidvalidity: 67_890_007,
                    modseq: 90_060_115_194_045_000,
                    known_uids: Some(set(&[(41, 211), (214, 541)])),
                    seq_match: Some((set(&[(1, 5)]), set(&[(41, 45)]))),
                }),
            },
        },
        CommandKind::Rename(mailbox("INBOX"), mailbox("Old \"mail\"")),
        CommandKind::GetQuota("".into()),
        CommandKind::Notify(proto_imap::notify::NotifyCommand::None),
        CommandKind::GenUrlAuth(vec![(
            "imap://a@b/INBOX/;UID=1;URLAUTH=anonymous".into(),
            "INTERNAL".into(),
        )]),
        CommandKind::UrlFetch(vec![
            "imap://a@b/INBOX/;UID=1;URLAUTH=anonymous:INTERNAL:00".into(),
        ]),
        CommandKind::ResetKey(None),
        CommandKind::ResetKey(Some((mailbox("Work/a b"), vec!["INTERNAL".into()]))),
        CommandKind::CancelUpdate(vec!["a1".into(), "tag \"q\"".into()]),
        CommandKind::Search {
            uid: true,
            search: SearchCommand {
                returns: Some(vec![SearchReturn::Update, SearchReturn::Partial(2, 4)]),
                charset: None,
                key: SearchKey::All,
            },
        },
        CommandKind::GetMetadata(proto_imap::metadata::GetMetadata {
            mailbox: None,
            entries: vec!["/shared/comment".into(), "/private/Vendor/x y".into()],
            max_size: Some(1024),
            depth: proto_imap::metadata::Depth::Infinity,
        }),
        CommandKind::GetMetadata(proto_imap::metadata::GetMetadata {
            mailbox: Some(mailbox("Work/a b")),
            entries: vec!["/shared".into()],
            max_size: None,
            depth: proto_imap::metadata::Depth::One,
        }),
        CommandKind::SetMetadata(proto_imap::metadata::SetMetadata {
            mailbox: Some(mailbox("INBOX")),
            entries: vec![
                ("/private/comment".into(), Some(b"line\r\nbreak".to_vec())),
                ("/shared/comment".into(), None),
                ("/shared/bin".into(), Some(b"a\0b".to_vec())),
                ("/shared/empty".into(), Some(Vec::new())),
            ],
        }),
        CommandKind::Notify(proto_imap::notify::NotifyCommand::Set {
            status: true,
            groups: vec![
                proto_imap::notify::EventGroup {
                    filter: proto_imap::notify::Filter::Selected,
                    events: vec![
                        proto_imap::notify::Event::MessageNew(vec![FetchAtt::Uid, FetchAtt::Flags]),
                        proto_imap::notify::Event::MessageExpunge,
                    ],
                },
                proto_imap::notify::EventGroup {
                    filter: proto_imap::notify::Filter::Subtree(vec![
                        mailbox("Lists"),
                        mailbox("a b"),
                    ]),
                    events: vec![
                        proto_imap::notify::Event::MessageNew(vec![]),
                        proto_imap::notify::Event::MessageExpunge,
                        proto_imap::notify::Event::FlagChange,
                    ],
                },
                proto_imap::notify::EventGroup {
                    filter: proto_imap::notify::Filter::Personal,
                    events: vec![],
                },
            ],
        }),
        CommandKind::GetQuotaRoot(mailbox("INBOX")),
        CommandKind::SetQuota(
            "".into(),
            vec![("STORAGE".into(), 512), ("MESSAGE".into(), 0)],
        ),
        CommandKind::List(ListCommand {
            reference: "".into(),
            patterns: vec!["*".into()],
            ..ListCommand::default()
        }),
        CommandKind::List(ListCommand {
            reference: "Work/".into(),
            patterns: vec!["%".into()],
            extended: true,
            ..ListCommand::default()
        }),
        CommandKind::List(ListCommand {
            reference: "with space".into(),
            patterns: vec!["a b/%".into(), "".into()],
            extended: true,
            select_special_use: true,
            return_subscribed: true,
            return_status: Some(vec![StatusItem::Size, StatusItem::HighestModSeq]),
            ..ListCommand::default()
        }),
        CommandKind::Status {
            mailbox: mailbox("Sent"),
            items: vec![StatusItem::HighestModSeq, StatusItem::Recent],
        },
        CommandKind::Append {
            mailbox: mailbox("Drafts"),
            messages: vec![AppendMessage {
                flags: vec!["\\Draft".into(), "$Forwarded".into()],
                date: Some(760_686_745),
                data: AppendData::Literal(b"Subject: x\r\n\r\nbin\0ary\r\n".to_vec()),
            }],
        },
        // RFC 3502 MULTIAPPEND, RFC 6855 UTF8, RFC 4469 CATENATE.
        CommandKind::Append {
            mailbox: mailbox("Sent"),
            messages: vec![
                AppendMessage {
                    flags: vec![],
                    date: None,
                    data: AppendData::Utf8("Subject: K\u{f6}ln\r\n\r\nx\r\n".into()),
                },
                AppendMessage {
                    flags: vec!["\\Seen".into()],
                    date: None,
                    data: AppendData::Catenate(vec![
                        CatPart::Url("/Drafts;UIDVALIDITY=385759045/;UID=20".into()),
                        CatPart::Text(b"\r\nmore\r\n".to_vec()),
                        CatPart::Utf8("K\u{f6}ln\r\n".into()),
                    ]),
                },
            ],
        },
        CommandKind::Search {
            uid: true,
            search: SearchCommand {
                returns: Some(vec![
                    SearchReturn::Min,
                    SearchReturn::Max,
                    SearchReturn::All,
                    SearchReturn::Count,
                    SearchReturn::Save,
                ]),
                charset: Some("UTF-8".into()),
                key: SearchKey::And(vec![
                    SearchKey::Text("K\u{f6}ln \"Dom\"".into()),
                    SearchKey::Header("List-Id".into(), "".into()),
                    SearchKey::Body("two\r\nlines".into()),
                    SearchKey::Not(Box::new(SearchKey::Or(
                        Box::new(SearchKey::Uid(SeqSet::Saved)),
                        Box::new(SearchKey::And(vec![SearchKey::Flag("\\Recent".into())])),
                    ))),
                    SearchKey::NoFlag("$Junk".into()),
                    SearchKey::Since(0),
                ]),
            },
        },
        CommandKind::Search {
            uid: false,
            search: SearchCommand {
                returns: None,
                charset: None,
                key: SearchKey::SeqSet(SeqSet::Ranges(vec![
                    (SeqNum::Star, SeqNum::Value(3)),
                    (SeqNum::Star, SeqNum::Star),
                ])),
            },
        },
        CommandKind::Fetch {
            uid: true,
            set: set(&[(1, 4_294_967_295)]),
            atts: vec![
                FetchAtt::Section {
                    peek: true,
                    section: Section {
                        part: vec![1, 2, 3],
                        text: Some(SectionText::HeaderFields(vec![
                            "Content-Type".into(),
                            "x\"y".into(),
                        ])),
                    },
                    partial: Some((0, 1)),
                },
                FetchAtt::Section {
                    peek: false,
                    section: Section {
                        part: vec![],
                        text: Some(SectionText::HeaderFieldsNot(vec!["Bcc".into()])),
                    },
                    partial: None,
                },
                FetchAtt::Binary {
                    peek: false,
                    part: vec![],
                    partial: Some((7, 9)),
                },
                FetchAtt::BinarySize { part: vec![4] },
            ],
            modifiers: FetchModifiers {
                changed_since: Some(12_345),
                vanished: true,
            },
        },
        CommandKind::Store {
            uid: false,
            set: set(&[(5, 5), (9, 2)]),
            unchanged_since: Some(0),
            op: StoreOp::Replace,
            silent: true,
            flags: vec![],
        },
        CommandKind::Move {
            uid: false,
            set: SeqSet::Saved,
            mailbox: mailbox("Archive/2024"),
        },
    ]
}

#[test]
fn built_commands_with_quotes_and_literals_survive_a_round_trip() {
    for (i, kind) in built_commands().into_iter().enumerate() {
        let cmd = Command {
            tag: tag(&format!("B{i}")),
            kind,
        };
        for opts in [REV1, REV2] {
            round_trip(&cmd, opts);
        }
    }
}

#[test]
fn strings_that_need_it_go_out_as_literals() {
    let cmd = Command {
        tag: tag("x"),
        kind: CommandKind::Login {
            user: "a b".into(),
            password: "c\r\nd".into(),
        },
    };
    assert_eq!(cmd.to_bytes(REV2), b"x LOGIN \"a b\" {4}\r\nc\r\nd\r\n");
}
