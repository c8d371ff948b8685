//! Server responses (RFC 9051 7) and their serialisation.
//!
//! Strings are written as an atom, a quoted string or a literal, whichever
//! the content allows ([`Encoder`]): CR, LF, NUL, long values and (for
//! IMAP4rev1 clients, which expect 7-bit quoted strings) 8-bit text go in
//! a literal.

use crate::command::StatusItem;
use crate::date::format_date_time;
use crate::lexer::is_atom_char;
use crate::mime::{BodyStructure, Envelope};
use crate::types::{Tag, wire_name};

/// Longest value written as a quoted string; longer ones are literals.
pub const MAX_QUOTED: usize = 1024;

/// Writes strings for one session's mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Encoder {
    /// UTF-8 allowed in quoted strings and mailbox names (IMAP4rev2).
    pub utf8: bool,
}

impl Encoder {
    fn quotable(&self, s: &[u8]) -> bool {
        s.len() <= MAX_QUOTED
            && s.iter().all(|&b| b != 0 && b != b'\r' && b != b'\n')
            && (s.is_ascii() || (self.utf8 && std::str::from_utf8(s).is_ok()))
    }

    /// string: quoted when possible, else a literal.
    pub fn string(&self, out: &mut Vec<u8>, s: &[u8]) {
        if self.quotable(s) {
            out.push(b'"');
            for &b in s {
                if b == b'"' || b == b'\\' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
        } else {
            literal(out, s);
        }
    }

    /// nstring: NIL or string.
    pub fn nstring(&self, out: &mut Vec<u8>, s: Option<&[u8]>) {
        match s {
            None => out.extend_from_slice(b"NIL"),
            Some(s) => self.string(out, s),
        }
    }

    /// astring: an atom when the value is one (and not NIL), else a string.
    pub fn astring(&self, out: &mut Vec<u8>, s: &[u8]) {
        if !s.is_empty() && s.iter().all(|&b| is_atom_char(b)) && !s.eq_ignore_ascii_case(b"NIL") {
            out.extend_from_slice(s);
        } else {
            self.string(out, s);
        }
    }

    /// A mailbox name (internal form) as sent to this client.
    pub fn mailbox(&self, out: &mut Vec<u8>, name: &str) {
        self.astring(out, wire_name(name, self.utf8).as_bytes());
    }
}

/// A quoted string for a response code's argument (a tag: no CR, LF).
fn quoted(s: &str) -> String {
    let mut q = String::from("\"");
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            q.push('\\');
        }
        q.push(ch);
    }
    q.push('"');
    q
}

/// `{n}` CRLF and the octets.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// The status of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    Bye,
    PreAuth,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
            Status::Bye => "BYE",
            Status::PreAuth => "PREAUTH",
        }
    }
}

/// Response codes (RFC 9051 7.1, RFC 4315 UIDPLUS, RFC 5530).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    Alert,
    AlreadyExists,
    /// RFC 4315 3: the UID, or the UID set of a MULTIAPPEND (RFC 3502).
    AppendUid {
        validity: u32,
        uids: String,
    },
    AuthenticationFailed,
    /// RFC 4469 6: a CATENATE URL that cannot be used (the URL).
    BadUrl(String),
    /// RFC 5530 3: authenticated, but not as the identity asked for.
    AuthorizationFailed,
    BadCharset,
    Cannot,
    /// RFC 5530 3: the operation needs TLS first.
    PrivacyRequired,
    Capability(Vec<String>),
    Closed,
    /// RFC 4978 3: COMPRESS while compression is already on.
    CompressionActive,
    CopyUid {
        validity: u32,
        from: String,
        to: String,
    },
    ExpungeIssued,
    HasChildren,
    /// RFC 6154 3: a special-use attribute CREATE cannot give.
    UseAttr,
    /// RFC 8474 4.1: the mailbox's object id.
    MailboxId(String),
    InUse,
    Limit,
    NonExistent,
    NoPerm,
    OverQuota,
    Parse,
    PermanentFlags(Vec<String>),
    ReadOnly,
    ReadWrite,
    ServerBug,
    TooBig,
    TryCreate,
    UidNext(u32),
    UidValidity(u32),
    Unavailable,
    UnknownCte,
    Unseen(u32),
    /// RFC 7162 3.1.2.1: the mailbox's highest mod-sequence.
    HighestModSeq(u64),
    /// RFC 7162 3.1.2.2: the mailbox keeps no mod-sequences.
    NoModSeq,
    /// RFC 7162 3.1.3: the messages UNCHANGEDSINCE refused (a set).
    Modified(String),
    /// RFC 5267 4.2: the search is answered but will not be updated.
    NoUpdate(String),
    /// RFC 5465 3.1: NOTIFY named an event this server does not support;
    /// the list says which it does.
    BadEvent(Vec<String>),
    /// RFC 5465 5.8: notifications were lost; NOTIFY is off (NONE).
    NotificationOverflow,
    /// RFC 5464 4.2.1, 4.3: `METADATA (LONGENTRIES n | MAXSIZE n |
    /// TOOMANY | NOPRIVATE)`.
    Metadata(MetadataCode),
}

/// The METADATA response codes (RFC 5464 4.2.1, 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataCode {
    /// Entries were left out for MAXSIZE; the largest of them.
    LongEntries(u64),
    /// A value is larger than the server takes.
    MaxSize(u64),
    /// More entries than the server takes.
    TooMany,
    /// Private entries are not kept.
    NoPrivate,
}

impl Code {
    fn write(&self, out: &mut Vec<u8>) {
        let s = match self {
            Code::Alert => "ALERT".into(),
            Code::AlreadyExists => "ALREADYEXISTS".into(),
            Code::AppendUid { validity, uids } => format!("APPENDUID {validity} {uids}"),
            Code::AuthenticationFailed => "AUTHENTICATIONFAILED".into(),
            // url-resp-text (RFC 4469 6) has no "]", CR or LF.
            Code::BadUrl(url) => format!("BADURL {}", url.replace([']', '\r', '\n'], "_")),
            Code::AuthorizationFailed => "AUTHORIZATIONFAILED".into(),
            Code::BadCharset => "BADCHARSET (UTF-8 US-ASCII)".into(),
            Code::Cannot => "CANNOT".into(),
            Code::PrivacyRequired => "PRIVACYREQUIRED".into(),
            Code::Capability(caps) => format!("CAPABILITY {}", caps.join(" ")),
            Code::Closed => "CLOSED".into(),
            Code::CompressionActive => "COMPRESSIONACTIVE".into(),
            Code::CopyUid { validity, from, to } => format!("COPYUID {validity} {from} {to}"),
            Code::ExpungeIssued => "EXPUNGEISSUED".into(),
            Code::HasChildren => "HASCHILDREN".into(),
            Code::UseAttr => "USEATTR".into(),
            Code::MailboxId(id) => format!("MAILBOXID ({id})"),
            Code::InUse => "INUSE".into(),
            Code::Limit => "LIMIT".into(),
            Code::NonExistent => "NONEXISTENT".into(),
            Code::NoPerm => "NOPERM".into(),
            Code::OverQuota => "OVERQUOTA".into(),
            Code::Parse => "PARSE".into(),
            Code::PermanentFlags(f) => format!("PERMANENTFLAGS ({})", f.join(" ")),
            Code::ReadOnly => "READ-ONLY".into(),
            Code::ReadWrite => "READ-WRITE".into(),
            Code::ServerBug => "SERVERBUG".into(),
            Code::TooBig => "TOOBIG".into(),
            Code::TryCreate => "TRYCREATE".into(),
            Code::UidNext(n) => format!("UIDNEXT {n}"),
            Code::UidValidity(n) => format!("UIDVALIDITY {n}"),
            Code::Unavailable => "UNAVAILABLE".into(),
            Code::UnknownCte => "UNKNOWN-CTE".into(),
            Code::Unseen(n) => format!("UNSEEN {n}"),
            Code::HighestModSeq(n) => format!("HIGHESTMODSEQ {n}"),
            Code::NoModSeq => "NOMODSEQ".into(),
            Code::Modified(set) => format!("MODIFIED {set}"),
            Code::NoUpdate(tag) => format!("NOUPDATE {}", quoted(tag)),
            Code::BadEvent(events) => format!("BADEVENT ({})", events.join(" ")),
            Code::NotificationOverflow => "NOTIFICATIONOVERFLOW".into(),
            Code::Metadata(m) => match m {
                MetadataCode::LongEntries(n) => format!("METADATA LONGENTRIES {n}"),
                MetadataCode::MaxSize(n) => format!("METADATA MAXSIZE {n}"),
                MetadataCode::TooMany => "METADATA TOOMANY".into(),
                MetadataCode::NoPrivate => "METADATA NOPRIVATE".into(),
            },
        };
        out.push(b'[');
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"] ");
    }
}

/// One FETCH data item's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchValue {
    Flags(Vec<String>),
    InternalDate(i64),
    Rfc822Size(u64),
    Uid(u32),
    ModSeq(u64),
    Envelope(Box<Envelope>),
    /// BODY: the structure without extension data.
    Body(Box<BodyStructure>),
    BodyStructure(Box<BodyStructure>),
    /// A body section, named as it is answered (`BODY[1.MIME]`,
    /// `BODY[]<0>`, `RFC822.HEADER`...); None is NIL.
    Section {
        name: String,
        data: Option<Vec<u8>>,
    },
    /// BINARY[...]: a literal8 (`~{n}`) when the data holds NUL.
    Binary {
        name: String,
        data: Option<Vec<u8>>,
    },
    BinarySize {
        name: String,
        size: u64,
    },
    /// RFC 8970: the preview text, None (NIL) when there is none.
    /// RFC 8514 4.2.
    SaveDate(Option<i64>),
    Preview(Option<String>),
    /// RFC 8474 5.1: `EMAILID (id)`.
    EmailId(String),
    /// RFC 8474 5.2: `THREADID (id)`, or NIL where threads are not kept.
    ThreadId(Option<String>),
}

/// Untagged data responses (RFC 9051 7.2-7.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Capability(Vec<String>),
    Enabled(Vec<String>),
    Flags(Vec<String>),
    Exists(u32),
    Recent(u32),
    Expunge(u32),
    /// RFC 7162 3.2.10: `VANISHED [(EARLIER)] uid-set`, instead of
    /// EXPUNGE once QRESYNC is enabled.
    Vanished {
        earlier: bool,
        uids: String,
    },
    List {
        lsub: bool,
        attributes: Vec<String>,
        /// Internal-form name.
        name: String,
        /// RFC 5258 CHILDINFO extended data.
        childinfo_subscribed: bool,
    },
    Status {
        name: String,
        items: Vec<(StatusItem, u64)>,
    },
    /// RFC 5465 5.4: an unsolicited LIST for a mailbox created, deleted
    /// (`\NonExistent`), renamed (with RFC 5258's `OLDNAME` extended
    /// data) or (un)subscribed.
    ListChange {
        attributes: Vec<String>,
        /// Internal-form names.
        name: String,
        old_name: Option<String>,
    },
    /// RFC 5464 4.4.1: `METADATA mailbox (entry value ...)`; the mailbox
    /// `""` is the server. A value with NUL goes as a literal8.
    Metadata {
        mailbox: String,
        entries: Vec<(String, Option<Vec<u8>>)>,
    },
    /// RFC 4467 6.1: `GENURLAUTH url...`.
    GenUrlAuth(Vec<String>),
    /// RFC 4467 6.3: `URLFETCH url data ...`, NIL for a URL that does not
    /// check out.
    UrlFetch(Vec<(String, Option<Vec<u8>>)>),
    Search(Vec<u32>),
    /// RFC 5256 4: `SORT n...`.
    Sort(Vec<u32>),
    /// RFC 5256 4: `THREAD` and the thread list, already formatted.
    Thread(String),
    /// RFC 7162 3.1.5: SEARCH with MODSEQ in it answers the highest
    /// mod-sequence of the messages found.
    SearchModSeq(Vec<u32>, u64),
    ESearch {
        tag: Tag,
        uid: bool,
        min: Option<u32>,
        max: Option<u32>,
        count: Option<u32>,
        all: Option<String>,
        /// RFC 7162 3.1.5 with RFC 4731: `MODSEQ n`.
        modseq: Option<u64>,
        /// RFC 5267 4.4: `PARTIAL (low:high set)`, NIL when none.
        partial: Option<(u32, u32, Option<String>)>,
    },
    /// RFC 5267 4.3: an update of a `RETURN (UPDATE)` search:
    /// `ESEARCH (TAG t) [UID] ADDTO|REMOVEFROM (position set)`.
    ESearchUpdate {
        tag: Tag,
        uid: bool,
        add: bool,
        position: u32,
        set: String,
    },
    Fetch {
        seq: u32,
        items: Vec<FetchValue>,
    },
    /// RFC 9208 5.1: `QUOTA root (resource usage limit ...)`.
    Quota {
        root: String,
        resources: Vec<(String, u64, u64)>,
    },
    /// RFC 9208 5.2: `QUOTAROOT mailbox root ...`.
    QuotaRoot {
        mailbox: String,
        roots: Vec<String>,
    },
    /// `(("" "/")) NIL NIL`: one personal namespace (RFC 2342).
    Namespace,
    Id(Vec<(String, String)>),
}

/// Any response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Tagged {
        tag: Tag,
        status: Status,
        code: Option<Code>,
        text: String,
    },
    Untagged {
        status: Status,
        code: Option<Code>,
        text: String,
    },
    Data(Data),
    /// A continuation request: `+ text`.
    Continue(String),
}

impl Response {
    pub fn write(&self, enc: &Encoder, out: &mut Vec<u8>) {
        match self {
            Response::Tagged {
                tag,
                status,
                code,
                text,
            } => {
                out.extend_from_slice(tag.as_str().as_bytes());
                out.push(b' ');
                write_status(out, *status, code.as_ref(), text);
            }
            Response::Untagged { status, code, text } => {
                out.extend_from_slice(b"* ");
                write_status(out, *status, code.as_ref(), text);
            }
            Response::Continue(text) => {
                // An empty text is an empty SASL challenge (RFC 9051 7.6).
                out.extend_from_slice(b"+ ");
                if !text.is_empty() {
                    out.extend_from_slice(clean_text(text).as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
            Response::Data(d) => {
                out.extend_from_slice(b"* ");
                d.write(enc, out);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    pub fn to_bytes(&self, enc: &Encoder) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(enc, &mut out);
        out
    }
}

/// Human-readable text: no CR/LF, never empty (RFC 9051 9: text = 1*TEXT-CHAR).
fn clean_text(text: &str) -> String {
    let t: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if t.is_empty() { "OK".into() } else { t }
}

fn write_status(out: &mut Vec<u8>, status: Status, code: Option<&Code>, text: &str) {
    out.extend_from_slice(status.word().as_bytes());
    out.push(b' ');
    if let Some(c) = code {
        c.write(out);
    }
    out.extend_from_slice(clean_text(text).as_bytes());
    out.extend_from_slice(b"\r\n");
}

impl Data {
    fn write(&self, enc: &Encoder, out: &mut Vec<u8>) {
        match self {
            Data::Capability(c) => {
                out.extend_from_slice(b"CAPABILITY ");
                out.extend_from_slice(c.join(" ").as_bytes());
            }
            Data::Enabled(c) => {
                out.extend_from_slice(b"ENABLED");
                for cap in c {
                    out.push(b' ');
                    out.extend_from_slice(cap.as_bytes());
                }
            }
            Data::Flags(f) => out.extend_from_slice(format!("FLAGS ({})", f.join(" ")).as_bytes()),
            Data::Exists(n) => out.extend_from_slice(format!("{n} EXISTS").as_bytes()),
            Data::Recent(n) => out.extend_from_slice(format!("{n} RECENT").as_bytes()),
            Data::Expunge(n) => out.extend_from_slice(format!("{n} EXPUNGE").as_bytes()),
            Data::Vanished { earlier, uids } => {
                out.extend_from_slice(b"VANISHED ");
                if *earlier {
                    out.extend_from_slice(b"(EARLIER) ");
                }
                out.extend_from_slice(uids.as_bytes());
            }
            Data::List {
                lsub,
                attributes,
                name,
                childinfo_subscribed,
            } => {
                out.extend_from_slice(if *lsub { b"LSUB (" } else { b"LIST (" });
                out.extend_from_slice(attributes.join(" ").as_bytes());
                out.extend_from_slice(b") \"/\" ");
                enc.mailbox(out, name);
                if *childinfo_subscribed {
                    out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
                }
            }
            Data::ListChange {
                attributes,
                name,
                old_name,
            } => {
                out.extend_from_slice(b"LIST (");
                out.extend_from_slice(attributes.join(" ").as_bytes());
                out.extend_from_slice(b") \"/\" ");
                enc.mailbox(out, name);
                if let Some(old) = old_name {
                    // RFC 5258 6 / RFC 9051 7.3.1: ("OLDNAME" (old)).
                    out.extend_from_slice(b" (\"OLDNAME\" (");
                    enc.mailbox(out, old);
                    out.extend_from_slice(b"))");
                }
            }
            Data::Metadata { mailbox, entries } => {
                out.extend_from_slice(b"METADATA ");
                if mailbox.is_empty() {
                    out.extend_from_slice(b"\"\"");
                } else {
                    enc.mailbox(out, mailbox);
                }
                out.extend_from_slice(b" (");
                for (i, (name, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    enc.astring(out, name.as_bytes());
                    out.push(b' ');
                    match value {
                        Some(v) if v.contains(&0) => {
                            out.push(b'~');
                            literal(out, v);
                        }
                        other => enc.nstring(out, other.as_deref()),
                    }
                }
                out.push(b')');
            }
            Data::GenUrlAuth(urls) => {
                out.extend_from_slice(b"GENURLAUTH");
                for u in urls {
                    out.push(b' ');
                    enc.string(out, u.as_bytes());
                }
            }
            Data::UrlFetch(answers) => {
                out.extend_from_slice(b"URLFETCH");
                for (u, data) in answers {
                    out.push(b' ');
                    enc.astring(out, u.as_bytes());
                    out.push(b' ');
                    match data {
                        // The message as it is: a literal (literal8 with NUL).
                        Some(d) if d.contains(&0) => {
                            out.push(b'~');
                            literal(out, d);
                        }
                        Some(d) => literal(out, d),
                        None => out.extend_from_slice(b"NIL"),
                    }
                }
            }
            Data::Status { name, items } => {
                out.extend_from_slice(b"STATUS ");
                enc.mailbox(out, name);
                out.extend_from_slice(b" (");
                let items: Vec<String> = items
                    .iter()
                    .map(|(i, v)| match i {
                        // RFC 8474 4.2: an objectid in parentheses.
                        StatusItem::MailboxId => format!("MAILBOXID (M{v})"),
                        _ => format!("{} {v}", i.name()),
                    })
                    .collect();
                out.extend_from_slice(items.join(" ").as_bytes());
                out.push(b')');
            }
            Data::Search(nums) => {
                out.extend_from_slice(b"SEARCH");
                for n in nums {
                    out.extend_from_slice(format!(" {n}").as_bytes());
                }
            }
            Data::Sort(nums) => {
                out.extend_from_slice(b"SORT");
                for n in nums {
                    out.extend_from_slice(format!(" {n}").as_bytes());
                }
            }
            Data::Thread(list) => {
                out.extend_from_slice(b"THREAD");
                if !list.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(list.as_bytes());
                }
            }
            Data::SearchModSeq(nums, modseq) => {
                out.extend_from_slice(b"SEARCH");
                for n in nums {
                    out.extend_from_slice(format!(" {n}").as_bytes());
                }
                // RFC 7162 3.1.5: nothing found, no MODSEQ.
                if !nums.is_empty() {
                    out.extend_from_slice(format!(" (MODSEQ {modseq})").as_bytes());
                }
            }
            Data::ESearch {
                tag,
                uid,
                min,
                max,
                count,
                all,
                modseq,
                partial,
            } => {
                out.extend_from_slice(b"ESEARCH (TAG ");
                enc.string(out, tag.as_str().as_bytes());
                out.push(b')');
                if *uid {
                    out.extend_from_slice(b" UID");
                }
                if let Some(n) = min {
                    out.extend_from_slice(format!(" MIN {n}").as_bytes());
                }
                if let Some(n) = max {
                    out.extend_from_slice(format!(" MAX {n}").as_bytes());
                }
                if let Some(s) = all {
                    out.extend_from_slice(format!(" ALL {s}").as_bytes());
                }
                if let Some(n) = count {
                    out.extend_from_slice(format!(" COUNT {n}").as_bytes());
                }
                if let Some(n) = modseq {
                    out.extend_from_slice(format!(" MODSEQ {n}").as_bytes());
                }
                if let Some((low, high, set)) = partial {
                    let set = set.as_deref().unwrap_or("NIL");
                    out.extend_from_slice(format!(" PARTIAL ({low}:{high} {set})").as_bytes());
                }
            }
            Data::ESearchUpdate {
                tag,
                uid,
                add,
                position,
                set,
            } => {
                out.extend_from_slice(b"ESEARCH (TAG ");
                enc.string(out, tag.as_str().as_bytes());
                out.push(b')');
                if *uid {
                    out.extend_from_slice(b" UID");
                }
                let what = if *add { "ADDTO" } else { "REMOVEFROM" };
                out.extend_from_slice(format!(" {what} ({position} {set})").as_bytes());
            }
            Data::Fetch { seq, items } => {
                out.extend_from_slice(format!("{seq} FETCH (").as_bytes());
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    item.write(enc, out);
                }
                out.push(b')');
            }
            Data::Namespace => out.extend_from_slice(b"NAMESPACE ((\"\" \"/\")) NIL NIL"),
            Data::Quota { root, resources } => {
                out.extend_from_slice(b"QUOTA ");
                enc.string(out, root.as_bytes());
                out.extend_from_slice(b" (");
                let items: Vec<String> = resources
                    .iter()
                    .map(|(name, used, limit)| format!("{name} {used} {limit}"))
                    .collect();
                out.extend_from_slice(items.join(" ").as_bytes());
                out.push(b')');
            }
            Data::QuotaRoot { mailbox, roots } => {
                out.extend_from_slice(b"QUOTAROOT ");
                enc.mailbox(out, mailbox);
                for r in roots {
                    out.push(b' ');
                    enc.string(out, r.as_bytes());
                }
            }
            Data::Id(fields) => {
                out.extend_from_slice(b"ID ");
                if fields.is_empty() {
                    out.extend_from_slice(b"NIL");
                } else {
                    out.push(b'(');
                    for (i, (k, v)) in fields.iter().enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        enc.string(out, k.as_bytes());
                        out.push(b' ');
                        enc.string(out, v.as_bytes());
                    }
                    out.push(b')');
                }
            }
        }
    }
}

impl FetchValue {
    fn write(&self, enc: &Encoder, out: &mut Vec<u8>) {
        match self {
            FetchValue::Flags(f) => {
                out.extend_from_slice(format!("FLAGS ({})", f.join(" ")).as_bytes())
            }
            FetchValue::InternalDate(t) => out
                .extend_from_slice(format!("INTERNALDATE \"{}\"", format_date_time(*t)).as_bytes()),
            FetchValue::Rfc822Size(n) => {
                out.extend_from_slice(format!("RFC822.SIZE {n}").as_bytes())
            }
            FetchValue::Uid(n) => out.extend_from_slice(format!("UID {n}").as_bytes()),
            FetchValue::ModSeq(n) => out.extend_from_slice(format!("MODSEQ ({n})").as_bytes()),
            // RFC 8514 4.2: NIL when the mailbox keeps no save dates.
            FetchValue::SaveDate(Some(t)) => {
                out.extend_from_slice(format!("SAVEDATE \"{}\"", format_date_time(*t)).as_bytes())
            }
            FetchValue::SaveDate(None) => out.extend_from_slice(b"SAVEDATE NIL"),
            FetchValue::EmailId(id) => out.extend_from_slice(format!("EMAILID ({id})").as_bytes()),
            FetchValue::ThreadId(Some(id)) => {
                out.extend_from_slice(format!("THREADID ({id})").as_bytes())
            }
            FetchValue::ThreadId(None) => out.extend_from_slice(b"THREADID NIL"),
            FetchValue::Preview(p) => {
                out.extend_from_slice(b"PREVIEW ");
                enc.nstring(out, p.as_deref().map(str::as_bytes));
            }
            FetchValue::Envelope(e) => {
                out.extend_from_slice(b"ENVELOPE ");
                e.write(enc, out);
            }
            FetchValue::Body(b) => {
                out.extend_from_slice(b"BODY ");
                b.write(enc, out, false);
            }
            FetchValue::BodyStructure(b) => {
                out.extend_from_slice(b"BODYSTRUCTURE ");
                b.write(enc, out, true);
            }
            FetchValue::Section { name, data } => {
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
                match data {
                    None => out.extend_from_slice(b"NIL"),
                    // Section data is always a literal: it is message text
                    // and clients expect the octets exactly.
                    Some(d) => literal(out, d),
                }
            }
            FetchValue::Binary { name, data } => {
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
                match data {
                    None => out.extend_from_slice(b"NIL"),
                    Some(d) => {
                        if d.contains(&0) {
                            out.push(b'~');
                        }
                        literal(out, d);
                    }
                }
            }
            FetchValue::BinarySize { name, size } => {
                out.extend_from_slice(format!("{name} {size}").as_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(r: Response) -> String {
        String::from_utf8(r.to_bytes(&Encoder::default())).unwrap()
    }

    #[test]
    fn strings_pick_atom_quoted_or_literal() {
        let enc = Encoder::default();
        let mut out = Vec::new();
        enc.astring(&mut out, b"INBOX");
        out.push(b' ');
        enc.astring(&mut out, b"a b\"c");
        out.push(b' ');
        enc.string(&mut out, b"x\r\ny");
        out.push(b' ');
        enc.astring(&mut out, b"nil");
        assert_eq!(out, b"INBOX \"a b\\\"c\" {4}\r\nx\r\ny \"nil\"");
        let mut out = Vec::new();
        enc.string(&mut out, "caf\u{e9}".as_bytes());
        assert_eq!(out, b"{5}\r\ncaf\xc3\xa9");
        let mut out = Vec::new();
        Encoder { utf8: true }.string(&mut out, "caf\u{e9}".as_bytes());
        assert_eq!(out, "\"caf\u{e9}\"".as_bytes());
    }

    #[test]
    fn status_and_data_lines() {
        assert_eq!(
            s(Response::Tagged {
                tag: Tag::new("A002").unwrap(),
                status: Status::Ok,
                code: Some(Code::ReadWrite),
                text: "SELECT completed".into()
            }),
            "A002 OK [READ-WRITE] SELECT completed\r\n"
        );
        assert_eq!(s(Response::Data(Data::Exists(19))), "* 19 EXISTS\r\n");
        assert_eq!(
            s(Response::Data(Data::List {
                lsub: false,
                attributes: vec!["\\HasNoChildren".into()],
                name: "Entw\u{fc}rfe".into(),
                childinfo_subscribed: false
            })),
            "* LIST (\\HasNoChildren) \"/\" Entw&APw-rfe\r\n"
        );
        assert_eq!(
            s(Response::Data(Data::Fetch {
                seq: 12,
                items: vec![
                    FetchValue::Flags(vec!["\\Seen".into()]),
                    FetchValue::InternalDate(0),
                    FetchValue::Section {
                        name: "BODY[]".into(),
                        data: Some(b"hi".to_vec())
                    }
                ]
            })),
            "* 12 FETCH (FLAGS (\\Seen) INTERNALDATE \"01-Jan-1970 00:00:00 +0000\" BODY[] {2}\r\nhi)\r\n"
        );
    }
}
