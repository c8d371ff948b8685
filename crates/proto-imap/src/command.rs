//! The command grammar (RFC 9051 6 and 9; RFC 3501 6 for LSUB, CHECK and
//! the rev1 forms; RFC 5258 LIST-EXTENDED; RFC 5819 LIST-STATUS; RFC 6154
//! SPECIAL-USE; RFC 2177 IDLE; RFC 2971 ID; RFC 5161 ENABLE; RFC 6851
//! MOVE; RFC 4315 UID EXPUNGE).
//!
//! [`parse_command`] takes one whole command as cut by the framer, literals
//! inline, and returns a typed [`Command`] or a [`ParseError`] carrying the
//! tag when it could be read, so the reply can be a tagged `BAD`.

use crate::fetch::{FetchAtt, parse_fetch_atts};
use crate::lexer::{Cursor, LexResult};
use crate::search::{SearchCommand, parse_search};
use crate::types::{Mailbox, SeqSet, Tag, parse_flag, parse_flag_list};
use crate::utf7;

/// How the session reads mailbox names: UTF-8 (IMAP4rev2 enabled, or
/// UTF8=ACCEPT), or modified UTF-7 (RFC 3501).
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    pub utf8: bool,
}

/// A command that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The tag, when the command started with a valid one.
    pub tag: Option<Tag>,
    pub message: &'static str,
    /// The command is well formed but names a mailbox that cannot exist:
    /// a name that is not valid modified UTF-7 (RFC 3501 5.1.3) in a
    /// session not in UTF-8 mode. Such a name is a mailbox the server does
    /// not have, so the answer is `NO` (as for any missing mailbox), not
    /// `BAD`.
    pub bad_name: bool,
}

/// The parse error of a mailbox argument that is not modified UTF-7.
pub const NOT_MUTF7: &str = "mailbox name is not valid modified UTF-7";

/// STATUS data items (RFC 9051 6.3.11; RECENT from RFC 3501; SIZE from
/// RFC 8438; HIGHESTMODSEQ from RFC 7162).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    Recent,
    HighestModSeq,
    /// RFC 8474 4.2 (the value is the mailbox's number; shown `(M<n>)`).
    MailboxId,
    /// RFC 9208 4.2.2: the storage, in units of 1024 octets, that
    /// expunging the `\Deleted` messages would free.
    DeletedStorage,
}

impl StatusItem {
    pub fn name(self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::Deleted => "DELETED",
            StatusItem::Size => "SIZE",
            StatusItem::Recent => "RECENT",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::MailboxId => "MAILBOXID",
            StatusItem::DeletedStorage => "DELETED-STORAGE",
        }
    }
}

/// STORE's flag operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Replace,
    Add,
    Remove,
}

/// LIST with its RFC 5258 options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCommand {
    /// Internal-form (UTF-8) reference and patterns.
    pub reference: String,
    pub patterns: Vec<String>,
    /// True when any RFC 5258 syntax was used (selection options, several
    /// patterns or RETURN).
    pub extended: bool,
    pub select_subscribed: bool,
    pub select_special_use: bool,
    pub recursive_match: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusItem>>,
}

/// A command with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    Capability,
    Noop,
    Logout,
    StartTls,
    Login {
        user: String,
        password: String,
    },
    Authenticate {
        mechanism: String,
        /// The SASL-IR initial response (RFC 4959): base64 text or "=".
        initial: Option<String>,
    },
    Enable(Vec<String>),
    Id(Vec<(String, Option<String>)>),
    Select {
        mailbox: Mailbox,
        read_only: bool,
        params: SelectParams,
    },
    /// RFC 6154 3: `CREATE name (USE (\\Drafts))` names special uses.
    Create {
        mailbox: Mailbox,
        special_use: Vec<String>,
    },
    Delete(Mailbox),
    Rename(Mailbox, Mailbox),
    Subscribe(Mailbox),
    Unsubscribe(Mailbox),
    List(ListCommand),
    Lsub {
        reference: String,
        pattern: String,
    },
    Namespace,
    Status {
        mailbox: Mailbox,
        items: Vec<StatusItem>,
    },
    /// One message, or several (RFC 3502 MULTIAPPEND).
    Append {
        mailbox: Mailbox,
        messages: Vec<crate::append::AppendMessage>,
    },
    Check,
    Close,
    Unselect,
    /// RFC 8437: back to the not-authenticated state.
    Unauthenticate,
    Expunge,
    UidExpunge(SeqSet),
    Search {
        uid: bool,
        search: SearchCommand,
    },
    /// RFC 5256 SORT (with RFC 5267 ESORT returns).
    Sort {
        uid: bool,
        sort: crate::sort::SortCommand,
    },
    /// RFC 5256 THREAD.
    Thread {
        uid: bool,
        thread: crate::sort::ThreadCommand,
    },
    Fetch {
        uid: bool,
        set: SeqSet,
        atts: Vec<FetchAtt>,
        modifiers: FetchModifiers,
    },
    Store {
        uid: bool,
        set: SeqSet,
        /// RFC 7162 3.1.3: UNCHANGEDSINCE.
        unchanged_since: Option<u64>,
        op: StoreOp,
        silent: bool,
        flags: Vec<String>,
    },
    Copy {
        uid: bool,
        set: SeqSet,
        mailbox: Mailbox,
    },
    Move {
        uid: bool,
        set: SeqSet,
        mailbox: Mailbox,
    },
    Idle,
    /// RFC 9208 4.2: the quota root's resources.
    GetQuota(String),
    /// RFC 9208 4.3: the quota roots of a mailbox.
    GetQuotaRoot(Mailbox),
    /// RFC 9208 4.1: (resource limit) pairs for a root.
    SetQuota(String, Vec<(String, u64)>),
    /// RFC 4978 3: the compression mechanism asked for (upper case).
    Compress(String),
    /// RFC 5465 NOTIFY.
    Notify(crate::notify::NotifyCommand),
    /// RFC 5267 4.3: stop the updates of these searches (by tag).
    CancelUpdate(Vec<String>),
    /// RFC 4467 6.1: (URL rump, mechanism) pairs.
    GenUrlAuth(Vec<(String, String)>),
    /// RFC 4467 6.3.
    UrlFetch(Vec<String>),
    /// RFC 4467 6.2: a mailbox and mechanisms, or every key.
    ResetKey(Option<(Mailbox, Vec<String>)>),
    /// RFC 5464 4.2.
    GetMetadata(crate::metadata::GetMetadata),
    /// RFC 5464 4.3.
    SetMetadata(crate::metadata::SetMetadata),
}

/// Quota resources named in one SETQUOTA (RFC 9208 lists four).
pub const MAX_QUOTA_RESOURCES: usize = 16;

/// SELECT / EXAMINE parameters (RFC 7162 3.1.8 CONDSTORE, 3.2.5 QRESYNC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<QResync>,
}

/// `QRESYNC (uidvalidity modseq [known-uids [(seq-match)]])` (RFC 7162
/// 3.2.5): what the client knew when it last had the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QResync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SeqSet>,
    /// (known sequence numbers, their UIDs) (3.2.5.2).
    pub seq_match: Option<(SeqSet, SeqSet)>,
}

/// FETCH modifiers (RFC 7162 3.1.4.1 CHANGEDSINCE, 3.2.6 VANISHED).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchModifiers {
    pub changed_since: Option<u64>,
    pub vanished: bool,
}

impl CommandKind {
    /// The command's name, for logs and "X completed" texts.
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::Capability => "CAPABILITY",
            CommandKind::Noop => "NOOP",
            CommandKind::Logout => "LOGOUT",
            CommandKind::StartTls => "STARTTLS",
            CommandKind::Login { .. } => "LOGIN",
            CommandKind::Authenticate { .. } => "AUTHENTICATE",
            CommandKind::Enable(_) => "ENABLE",
            CommandKind::Id(_) => "ID",
            CommandKind::Select {
                read_only: false, ..
            } => "SELECT",
            CommandKind::Select {
                read_only: true, ..
            } => "EXAMINE",
            CommandKind::Create { .. } => "CREATE",
            CommandKind::Delete(_) => "DELETE",
            CommandKind::Rename(..) => "RENAME",
            CommandKind::Subscribe(_) => "SUBSCRIBE",
            CommandKind::Unsubscribe(_) => "UNSUBSCRIBE",
            CommandKind::List(_) => "LIST",
            CommandKind::Lsub { .. } => "LSUB",
            CommandKind::Namespace => "NAMESPACE",
            CommandKind::Status { .. } => "STATUS",
            CommandKind::Append { .. } => "APPEND",
            CommandKind::Check => "CHECK",
            CommandKind::Close => "CLOSE",
            CommandKind::Unselect => "UNSELECT",
            CommandKind::Unauthenticate => "UNAUTHENTICATE",
            CommandKind::GetQuota(_) => "GETQUOTA",
            CommandKind::GetQuotaRoot(_) => "GETQUOTAROOT",
            CommandKind::SetQuota(..) => "SETQUOTA",
            CommandKind::Expunge => "EXPUNGE",
            CommandKind::UidExpunge(_) => "UID EXPUNGE",
            CommandKind::Search { .. } => "SEARCH",
            CommandKind::Sort { .. } => "SORT",
            CommandKind::Thread { .. } => "THREAD",
            CommandKind::Fetch { .. } => "FETCH",
            CommandKind::Store { .. } => "STORE",
            CommandKind::Copy { .. } => "COPY",
            CommandKind::Move { .. } => "MOVE",
            CommandKind::Idle => "IDLE",
            CommandKind::Compress(_) => "COMPRESS",
            CommandKind::Notify(_) => "NOTIFY",
            CommandKind::CancelUpdate(_) => "CANCELUPDATE",
            CommandKind::GenUrlAuth(_) => "GENURLAUTH",
            CommandKind::UrlFetch(_) => "URLFETCH",
            CommandKind::ResetKey(_) => "RESETKEY",
            CommandKind::GetMetadata(_) => "GETMETADATA",
            CommandKind::SetMetadata(_) => "SETMETADATA",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: Tag,
    pub kind: CommandKind,
}

/// RFC 2971 3.3: field strings are at most 30 octets.
pub const MAX_ID_FIELD: usize = 30;
/// RFC 2971 3.3: value strings are at most 1024 octets.
pub const MAX_ID_VALUE: usize = 1024;
/// RFC 2971 3.3: at most 30 field-value pairs.
pub const MAX_ID_PAIRS: usize = 30;

/// Parses one whole command (CRLF included).
pub fn parse_command(buf: &[u8], opts: ParseOptions) -> Result<Command, ParseError> {
    let mut c = Cursor::new(buf);
    let tag = Tag::parse(&mut c).map_err(|message| ParseError {
        tag: None,
        message,
        bad_name: false,
    })?;
    let fail = |message| ParseError {
        tag: Some(tag.clone()),
        message,
        bad_name: message == NOT_MUTF7,
    };
    c.sp()
        .map_err(|_| fail("expected a command after the tag"))?;
    let kind = parse_kind(&mut c, opts).map_err(fail)?;
    c.end().map_err(fail)?;
    Ok(Command { tag, kind })
}

pub(crate) fn mailbox(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<Mailbox> {
    // RFC 6855 3 puts UTF-8 in quoted strings; clients (python's imaplib)
    // also send it bare, as an atom, which a UTF-8 session accepts too.
    let raw = if opts.utf8 {
        c.astring_8bit()?
    } else {
        c.astring()?
    };
    Mailbox::from_wire(&raw, opts.utf8)
}

/// A reference or pattern in internal form.
///
/// A reference or pattern that is not valid modified UTF-7 (imaptest's
/// `atoms` sends `&'` in one) is taken as its octets, read as UTF-8: no
/// mailbox name decodes to it, so it matches only what it spells, and
/// LIST answers OK with what matches (RFC 9051 6.3.9 defines no error for
/// a pattern).
fn wire_text(raw: Vec<u8>, opts: ParseOptions) -> LexResult<String> {
    if opts.utf8 {
        String::from_utf8(raw).map_err(|_| "mailbox name is not UTF-8")
    } else {
        Ok(utf7::decode(&raw).unwrap_or_else(|| String::from_utf8_lossy(&raw).into_owned()))
    }
}

fn utf8(raw: Vec<u8>) -> LexResult<String> {
    String::from_utf8(raw).map_err(|_| "invalid UTF-8")
}

fn parse_kind(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<CommandKind> {
    let word = c.atom()?.to_ascii_uppercase();
    let simple = match word.as_str() {
        "CAPABILITY" => Some(CommandKind::Capability),
        "NOOP" => Some(CommandKind::Noop),
        "LOGOUT" => Some(CommandKind::Logout),
        "STARTTLS" => Some(CommandKind::StartTls),
        "NAMESPACE" => Some(CommandKind::Namespace),
        "CHECK" => Some(CommandKind::Check),
        "CLOSE" => Some(CommandKind::Close),
        "UNSELECT" => Some(CommandKind::Unselect),
        "UNAUTHENTICATE" => Some(CommandKind::Unauthenticate),
        "EXPUNGE" => Some(CommandKind::Expunge),
        "RESETKEY" if c.at_end() || c.rest().starts_with(b"\r") || c.rest().starts_with(b"\n") => {
            Some(CommandKind::ResetKey(None))
        }
        "IDLE" => Some(CommandKind::Idle),
        _ => None,
    };
    if let Some(k) = simple {
        return Ok(k);
    }
    c.sp()?;
    Ok(match word.as_str() {
        "LOGIN" => {
            let user = utf8(c.astring()?)?;
            c.sp()?;
            let password = utf8(c.astring()?)?;
            CommandKind::Login { user, password }
        }
        "AUTHENTICATE" => {
            let mechanism = c.atom()?.to_ascii_uppercase();
            let initial = if c.eat(b' ') {
                let ir = c.take_while(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
                if ir.is_empty() {
                    return Err("bad initial response");
                }
                Some(String::from_utf8_lossy(ir).into_owned())
            } else {
                None
            };
            CommandKind::Authenticate { mechanism, initial }
        }
        "COMPRESS" => CommandKind::Compress(c.atom()?.to_ascii_uppercase()),
        "ENABLE" => {
            let mut caps = vec![c.atom()?.to_string()];
            while c.eat(b' ') {
                if caps.len() >= 32 {
                    return Err("too many capabilities");
                }
                caps.push(c.atom()?.to_string());
            }
            CommandKind::Enable(caps)
        }
        "ID" => {
            if c.eat_word("NIL") {
                CommandKind::Id(Vec::new())
            } else {
                let mut items = Vec::new();
                c.expect(b'(', "expected '(' or NIL")?;
                while !c.eat(b')') {
                    if items.len() >= MAX_ID_PAIRS {
                        return Err("too many ID fields");
                    }
                    if !items.is_empty() {
                        c.sp()?;
                    }
                    // The limits apply to the text as kept: bytes that are
                    // not UTF-8 become U+FFFD (three octets), and what we
                    // accept must serialise to what we accept again.
                    let k = String::from_utf8_lossy(&c.string()?).into_owned();
                    if k.len() > MAX_ID_FIELD {
                        return Err("ID field name too long");
                    }
                    c.sp()?;
                    let v = c
                        .nstring()?
                        .map(|v| String::from_utf8_lossy(&v).into_owned());
                    if v.as_ref().is_some_and(|v| v.len() > MAX_ID_VALUE) {
                        return Err("ID field value too long");
                    }
                    items.push((k, v));
                }
                CommandKind::Id(items)
            }
        }
        "SELECT" | "EXAMINE" => {
            let mailbox = mailbox(c, opts)?;
            let mut params = SelectParams::default();
            if c.eat(b' ') {
                c.paren_list(true, 16, |c| {
                    let name = c.atom()?.to_ascii_uppercase();
                    match name.as_str() {
                        "CONDSTORE" => params.condstore = true,
                        "QRESYNC" => {
                            c.sp()?;
                            params.qresync = Some(parse_qresync(c)?);
                        }
                        // RFC 4466 2.1: an unknown parameter is BAD.
                        _ => return Err("unknown SELECT parameter"),
                    }
                    Ok(())
                })?;
            }
            CommandKind::Select {
                mailbox,
                read_only: word == "EXAMINE",
                params,
            }
        }
        "CREATE" => {
            let m = mailbox(c, opts)?;
            let mut special_use = Vec::new();
            if c.eat(b' ') {
                // RFC 4466 2.2 create parameters; RFC 6154 3 defines USE,
                // and an unknown parameter is BAD.
                c.paren_list(true, 16, |c| {
                    if !c.atom()?.eq_ignore_ascii_case("USE") {
                        return Err("unknown CREATE parameter");
                    }
                    c.sp()?;
                    // use-attr = "\\" atom (RFC 6154 6), not a flag.
                    special_use.extend(c.paren_list(true, 16, |c| {
                        c.expect(b'\\', "a special-use attribute starts with a backslash")?;
                        Ok(format!("\\{}", c.atom()?))
                    })?);
                    Ok(())
                })?;
            }
            CommandKind::Create {
                mailbox: m,
                special_use,
            }
        }
        "DELETE" => CommandKind::Delete(mailbox(c, opts)?),
        "SUBSCRIBE" => CommandKind::Subscribe(mailbox(c, opts)?),
        "UNSUBSCRIBE" => CommandKind::Unsubscribe(mailbox(c, opts)?),
        "RENAME" => {
            let from = mailbox(c, opts)?;
            c.sp()?;
            CommandKind::Rename(from, mailbox(c, opts)?)
        }
        "LIST" => CommandKind::List(parse_list(c, opts)?),
        "NOTIFY" => CommandKind::Notify(crate::notify::parse_notify(c, opts)?),
        "CANCELUPDATE" => {
            let mut tags = vec![utf8(c.string()?)?];
            while c.eat(b' ') {
                if tags.len() >= crate::search::MAX_SEARCH_UPDATES {
                    return Err("too many tags");
                }
                tags.push(utf8(c.string()?)?);
            }
            CommandKind::CancelUpdate(tags)
        }
        "GENURLAUTH" => {
            let mut urls = Vec::new();
            loop {
                if urls.len() >= crate::urlauth::MAX_URLS {
                    return Err("too many URLs");
                }
                let url = utf8(c.astring()?)?;
                c.sp()?;
                let mech = c.atom()?.to_string();
                urls.push((url, mech));
                if !c.eat(b' ') {
                    break;
                }
            }
            CommandKind::GenUrlAuth(urls)
        }
        "URLFETCH" => {
            let mut urls = vec![utf8(c.astring()?)?];
            while c.eat(b' ') {
                if urls.len() >= crate::urlauth::MAX_URLS {
                    return Err("too many URLs");
                }
                urls.push(utf8(c.astring()?)?);
            }
            CommandKind::UrlFetch(urls)
        }
        "RESETKEY" => {
            let m = mailbox(c, opts)?;
            let mut mechs = Vec::new();
            while c.eat(b' ') {
                if mechs.len() >= 8 {
                    return Err("too many mechanisms");
                }
                mechs.push(c.atom()?.to_string());
            }
            CommandKind::ResetKey(Some((m, mechs)))
        }
        "GETMETADATA" => CommandKind::GetMetadata(crate::metadata::parse_getmetadata(c, opts)?),
        "SETMETADATA" => CommandKind::SetMetadata(crate::metadata::parse_setmetadata(c, opts)?),
        "LSUB" => {
            let reference = wire_text(c.astring()?, opts)?;
            c.sp()?;
            let pattern = wire_text(c.list_mailbox(opts.utf8)?, opts)?;
            CommandKind::Lsub { reference, pattern }
        }
        "GETQUOTA" => CommandKind::GetQuota(String::from_utf8_lossy(&c.astring()?).into_owned()),
        "GETQUOTAROOT" => CommandKind::GetQuotaRoot(mailbox(c, opts)?),
        "SETQUOTA" => {
            let root = String::from_utf8_lossy(&c.astring()?).into_owned();
            c.sp()?;
            let limits = c.paren_list(true, MAX_QUOTA_RESOURCES, |c| {
                let name = c.atom()?.to_ascii_uppercase();
                c.sp()?;
                Ok((name, c.number64()?))
            })?;
            CommandKind::SetQuota(root, limits)
        }
        "STATUS" => {
            let mailbox = mailbox(c, opts)?;
            c.sp()?;
            let items = c.paren_list(false, 16, parse_status_item)?;
            CommandKind::Status { mailbox, items }
        }
        "APPEND" => CommandKind::Append {
            mailbox: mailbox(c, opts)?,
            messages: crate::append::parse_messages(c)?,
        },
        "SEARCH" => CommandKind::Search {
            uid: false,
            search: parse_search(c)?,
        },
        "SORT" => CommandKind::Sort {
            uid: false,
            sort: crate::sort::parse_sort(c)?,
        },
        "THREAD" => CommandKind::Thread {
            uid: false,
            thread: crate::sort::parse_thread(c)?,
        },
        "FETCH" | "STORE" | "COPY" | "MOVE" => parse_set_command(c, &word, false, opts)?,
        "UID" => {
            let sub = c.atom()?.to_ascii_uppercase();
            c.sp()?;
            match sub.as_str() {
                "FETCH" | "STORE" | "COPY" | "MOVE" => parse_set_command(c, &sub, true, opts)?,
                "SEARCH" => CommandKind::Search {
                    uid: true,
                    search: parse_search(c)?,
                },
                "SORT" => CommandKind::Sort {
                    uid: true,
                    sort: crate::sort::parse_sort(c)?,
                },
                "THREAD" => CommandKind::Thread {
                    uid: true,
                    thread: crate::sort::parse_thread(c)?,
                },
                "EXPUNGE" => CommandKind::UidExpunge(SeqSet::parse(c)?),
                _ => return Err("unknown UID command"),
            }
        }
        _ => return Err("unknown command"),
    })
}

fn parse_status_item(c: &mut Cursor<'_>) -> LexResult<StatusItem> {
    let a = c.atom()?.to_ascii_uppercase();
    Ok(match a.as_str() {
        "MESSAGES" => StatusItem::Messages,
        "UIDNEXT" => StatusItem::UidNext,
        "UIDVALIDITY" => StatusItem::UidValidity,
        "UNSEEN" => StatusItem::Unseen,
        "DELETED" => StatusItem::Deleted,
        "SIZE" => StatusItem::Size,
        "RECENT" => StatusItem::Recent,
        "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
        "MAILBOXID" => StatusItem::MailboxId,
        "DELETED-STORAGE" => StatusItem::DeletedStorage,
        _ => return Err("unknown status item"),
    })
}

fn parse_list(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<ListCommand> {
    let mut l = ListCommand::default();
    if c.peek() == Some(b'(') {
        l.extended = true;
        c.paren_list(true, 8, |c| {
            match c.atom()?.to_ascii_uppercase().as_str() {
                "SUBSCRIBED" => l.select_subscribed = true,
                "SPECIAL-USE" => l.select_special_use = true,
                "RECURSIVEMATCH" => l.recursive_match = true,
                "REMOTE" => {}
                _ => return Err("unknown LIST selection option"),
            }
            Ok(())
        })?;
        c.sp()?;
        if l.recursive_match && !l.select_subscribed && !l.select_special_use {
            // RFC 5258 3: RECURSIVEMATCH alone is an error.
            return Err("RECURSIVEMATCH needs another selection option");
        }
    }
    l.reference = wire_text(c.astring()?, opts)?;
    c.sp()?;
    if c.peek() == Some(b'(') {
        l.extended = true;
        l.patterns = c.paren_list(false, 16, |c| wire_text(c.list_mailbox(opts.utf8)?, opts))?;
    } else {
        l.patterns = vec![wire_text(c.list_mailbox(opts.utf8)?, opts)?];
    }
    if c.eat(b' ') {
        if !c.eat_word("RETURN ") {
            return Err("expected RETURN");
        }
        l.extended = true;
        c.paren_list(true, 8, |c| {
            match c.atom()?.to_ascii_uppercase().as_str() {
                "SUBSCRIBED" => l.return_subscribed = true,
                "CHILDREN" => l.return_children = true,
                "SPECIAL-USE" => l.return_special_use = true,
                "STATUS" => {
                    c.sp()?;
                    l.return_status = Some(c.paren_list(false, 16, parse_status_item)?);
                }
                _ => return Err("unknown LIST return option"),
            }
            Ok(())
        })?;
    }
    Ok(l)
}

/// `(uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data])`
/// (RFC 7162 7, select-param QRESYNC).
fn parse_qresync(c: &mut Cursor<'_>) -> LexResult<QResync> {
    c.expect(b'(', "expected '('")?;
    let uidvalidity = c.nz_number()?;
    c.sp()?;
    let modseq = mod_sequence_value(c)?;
    let mut known_uids = None;
    let mut seq_match = None;
    if c.eat(b' ') {
        if c.peek() == Some(b'(') {
            seq_match = Some(parse_seq_match(c)?);
        } else {
            known_uids = Some(SeqSet::parse(c)?);
            if c.eat(b' ') {
                seq_match = Some(parse_seq_match(c)?);
            }
        }
    }
    c.expect(b')', "expected ')'")?;
    Ok(QResync {
        uidvalidity,
        modseq,
        known_uids,
        seq_match,
    })
}

/// `seq-match-data = "(" known-sequence-set SP known-uid-set ")"`.
fn parse_seq_match(c: &mut Cursor<'_>) -> LexResult<(SeqSet, SeqSet)> {
    c.expect(b'(', "expected '('")?;
    let seqs = SeqSet::parse(c)?;
    c.sp()?;
    let uids = SeqSet::parse(c)?;
    c.expect(b')', "expected ')'")?;
    Ok((seqs, uids))
}

/// RFC 7162 7: `mod-sequence-value = 1*DIGIT` with 1 <= n < 2^63.
fn mod_sequence_value(c: &mut Cursor<'_>) -> LexResult<u64> {
    let n = c.number64()?;
    if n == 0 || n > i64::MAX as u64 {
        return Err("mod-sequence out of range");
    }
    Ok(n)
}

/// RFC 7162 7: `mod-sequence-valzer`, 0 allowed.
fn mod_sequence_valzer(c: &mut Cursor<'_>) -> LexResult<u64> {
    let n = c.number64()?;
    if n > i64::MAX as u64 {
        return Err("mod-sequence out of range");
    }
    Ok(n)
}

fn parse_set_command(
    c: &mut Cursor<'_>,
    word: &str,
    uid: bool,
    opts: ParseOptions,
) -> LexResult<CommandKind> {
    let set = SeqSet::parse(c)?;
    c.sp()?;
    Ok(match word {
        "FETCH" => {
            let atts = parse_fetch_atts(c)?;
            let mut modifiers = FetchModifiers::default();
            if c.eat(b' ') {
                c.paren_list(false, 8, |c| {
                    match c.atom()?.to_ascii_uppercase().as_str() {
                        "CHANGEDSINCE" => {
                            c.sp()?;
                            modifiers.changed_since = Some(mod_sequence_valzer(c)?);
                        }
                        // RFC 7162 3.2.6: UID FETCH only.
                        "VANISHED" if uid => modifiers.vanished = true,
                        _ => return Err("unknown FETCH modifier"),
                    }
                    Ok(())
                })?;
                // RFC 7162 3.2.6: VANISHED needs CHANGEDSINCE.
                if modifiers.vanished && modifiers.changed_since.is_none() {
                    return Err("VANISHED requires CHANGEDSINCE");
                }
            }
            CommandKind::Fetch {
                uid,
                set,
                atts,
                modifiers,
            }
        }
        "STORE" => {
            let mut unchanged_since = None;
            if c.peek() == Some(b'(') {
                c.paren_list(false, 4, |c| {
                    if !c.atom()?.eq_ignore_ascii_case("UNCHANGEDSINCE") {
                        return Err("unknown STORE modifier");
                    }
                    c.sp()?;
                    unchanged_since = Some(mod_sequence_valzer(c)?);
                    Ok(())
                })?;
                c.sp()?;
            }
            let op = if c.eat(b'+') {
                StoreOp::Add
            } else if c.eat(b'-') {
                StoreOp::Remove
            } else {
                StoreOp::Replace
            };
            if !c.eat_word("FLAGS") {
                return Err("expected FLAGS");
            }
            let silent = c.eat_word(".SILENT");
            c.sp()?;
            let flags = if c.peek() == Some(b'(') {
                parse_flag_list(c)?
            } else {
                let mut f = vec![parse_flag(c)?];
                while c.eat(b' ') {
                    if f.len() >= crate::types::MAX_FLAGS_PARSED {
                        return Err("too many flags");
                    }
                    f.push(parse_flag(c)?);
                }
                f
            };
            CommandKind::Store {
                uid,
                set,
                unchanged_since,
                op,
                silent,
                flags,
            }
        }
        "COPY" => CommandKind::Copy {
            uid,
            set,
            mailbox: mailbox(c, opts)?,
        },
        _ => CommandKind::Move {
            uid,
            set,
            mailbox: mailbox(c, opts)?,
        },
    })
}
