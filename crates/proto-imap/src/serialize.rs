//! Commands back to bytes: the client side of the grammar of
//! [`crate::command`] (RFC 9051 6 and 9), so that every command the parser
//! accepts can be written out and parsed back to the same value (STYLE.md:
//! parse(serialize(x)) == x). Tests and tools use it; the server only
//! parses.
//!
//! Strings are written in the lightest form that carries them: an atom when
//! every byte is an ASTRING-CHAR, a quoted string when no CR, LF or NUL is
//! in it, a synchronising literal otherwise (a client sending one waits for
//! the server's "+" after the `{n}` line); APPEND's message is a literal,
//! `~{n}` (literal8, RFC 3516) when it holds a NUL. Mailbox names, LIST
//! references and patterns go out in UTF-8 or modified UTF-7 as the
//! [`ParseOptions`] say, as the parser reads them.

use crate::append::{AppendData, CatPart};
use crate::command::{Command, CommandKind, ListCommand, ParseOptions, StoreOp};
use crate::date::{format_date, format_date_time};
use crate::fetch::{FetchAtt, Section, SectionText};
use crate::lexer::{is_astring_char, is_list_char};
use crate::search::{SearchCommand, SearchKey, SearchReturn};
use crate::types::{Mailbox, SeqNum, SeqSet, wire_name};

/// A RETURN option as sent (RFC 4731, RFC 5267).
fn search_return(r: &SearchReturn) -> String {
    match r {
        SearchReturn::Min => "MIN".into(),
        SearchReturn::Max => "MAX".into(),
        SearchReturn::All => "ALL".into(),
        SearchReturn::Count => "COUNT".into(),
        SearchReturn::Save => "SAVE".into(),
        SearchReturn::Update => "UPDATE".into(),
        SearchReturn::Partial(a, b) => format!("PARTIAL {a}:{b}"),
    }
}

impl Command {
    /// The command as a client sends it, CRLF included.
    pub fn to_bytes(&self, opts: ParseOptions) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::new(),
            opts,
        };
        w.raw(self.tag.as_str());
        w.raw(" ");
        w.kind(&self.kind);
        w.raw("\r\n");
        w.out
    }
}

struct Writer {
    out: Vec<u8>,
    opts: ParseOptions,
}

impl Writer {
    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A quoted string or, when it cannot be quoted, a literal.
    fn string(&mut self, b: &[u8]) {
        if b.iter().any(|&c| matches!(c, b'\r' | b'\n' | 0)) {
            self.literal(b);
        } else {
            self.out.push(b'"');
            for &c in b {
                if c == b'"' || c == b'\\' {
                    self.out.push(b'\\');
                }
                self.out.push(c);
            }
            self.out.push(b'"');
        }
    }

    fn literal(&mut self, b: &[u8]) {
        if b.contains(&0) {
            // Only APPEND reads literal8; elsewhere the parser refuses a
            // NUL whatever the form, as RFC 9051 9 (CHAR8) requires.
            self.out.push(b'~');
        }
        self.raw(&format!("{{{}}}\r\n", b.len()));
        self.out.extend_from_slice(b);
    }

    /// astring: an atom when possible.
    fn astring(&mut self, b: &[u8]) {
        if !b.is_empty() && b.iter().all(|&c| is_astring_char(c)) {
            self.out.extend_from_slice(b);
        } else {
            self.string(b);
        }
    }

    /// list-mailbox: wildcards stay bare.
    fn list_mailbox(&mut self, b: &[u8]) {
        if !b.is_empty() && b.iter().all(|&c| is_list_char(c)) {
            self.out.extend_from_slice(b);
        } else {
            self.string(b);
        }
    }

    fn mailbox(&mut self, m: &Mailbox) {
        let wire = m.to_wire(self.opts.utf8);
        self.astring(wire.as_bytes());
    }

    /// A reference or pattern in internal form.
    fn wire_text(&self, s: &str) -> String {
        wire_name(s, self.opts.utf8)
    }

    fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.raw("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.raw(" ");
            }
            f(self, item);
        }
        self.raw(")");
    }

    fn words(&mut self, words: &[&str]) {
        self.list(words, |w, s| w.raw(s));
    }

    fn set(&mut self, set: &SeqSet) {
        match set {
            SeqSet::Saved => self.raw("$"),
            SeqSet::Ranges(ranges) => {
                for (i, &(a, b)) in ranges.iter().enumerate() {
                    if i > 0 {
                        self.raw(",");
                    }
                    self.raw(&seq_num(a));
                    if a != b {
                        self.raw(":");
                        self.raw(&seq_num(b));
                    }
                }
            }
        }
    }

    /// `""` for the server (RFC 5464 4.2).
    fn metadata_mailbox(&mut self, m: Option<&Mailbox>) {
        match m {
            None => self.raw("\"\""),
            Some(m) => self.mailbox(m),
        }
    }

    /// RFC 5465 8: `NOTIFY NONE` / `NOTIFY SET [STATUS] event-group...`.
    fn notify(&mut self, n: &crate::notify::NotifyCommand) {
        use crate::notify::{Event, Filter, NotifyCommand};
        let NotifyCommand::Set { status, groups } = n else {
            self.raw("NOTIFY NONE");
            return;
        };
        self.raw(if *status {
            "NOTIFY SET STATUS"
        } else {
            "NOTIFY SET"
        });
        for g in groups {
            self.raw(" (");
            match &g.filter {
                Filter::Selected => self.raw("SELECTED"),
                Filter::SelectedDelayed => self.raw("SELECTED-DELAYED"),
                Filter::Inboxes => self.raw("INBOXES"),
                Filter::Personal => self.raw("PERSONAL"),
                Filter::Subscribed => self.raw("SUBSCRIBED"),
                Filter::Subtree(m) | Filter::Mailboxes(m) => {
                    self.raw(if matches!(g.filter, Filter::Subtree(_)) {
                        "SUBTREE "
                    } else {
                        "MAILBOXES "
                    });
                    self.list(m, |w, m| w.mailbox(m));
                }
            }
            self.raw(" ");
            if g.events.is_empty() {
                self.raw("NONE");
            } else {
                self.list(&g.events, |w, e| {
                    w.raw(e.name());
                    if let Event::MessageNew(atts) = e
                        && !atts.is_empty()
                    {
                        w.raw(" ");
                        w.list(atts, |w, a| w.fetch_att(a));
                    }
                });
            }
            self.raw(")");
        }
    }

    fn kind(&mut self, k: &CommandKind) {
        match k {
            CommandKind::Login { user, password } => {
                self.raw("LOGIN ");
                self.astring(user.as_bytes());
                self.raw(" ");
                self.astring(password.as_bytes());
            }
            CommandKind::Authenticate { mechanism, initial } => {
                self.raw("AUTHENTICATE ");
                self.raw(mechanism);
                if let Some(ir) = initial {
                    self.raw(" ");
                    self.raw(ir);
                }
            }
            CommandKind::Compress(mechanism) => {
                self.raw("COMPRESS ");
                self.raw(mechanism);
            }
            CommandKind::Enable(caps) => {
                self.raw("ENABLE");
                for c in caps {
                    self.raw(" ");
                    self.raw(c);
                }
            }
            CommandKind::Id(fields) if fields.is_empty() => self.raw("ID NIL"),
            CommandKind::Id(fields) => {
                self.raw("ID ");
                self.list(fields, |w, (k, v)| {
                    w.string(k.as_bytes());
                    w.raw(" ");
                    match v {
                        Some(v) => w.string(v.as_bytes()),
                        None => w.raw("NIL"),
                    }
                });
            }
            CommandKind::Select {
                mailbox, params, ..
            } => {
                self.raw(k.name());
                self.raw(" ");
                self.mailbox(mailbox);
                if params.condstore || params.qresync.is_some() {
                    self.raw(" (");
                    if params.condstore {
                        self.raw("CONDSTORE");
                    }
                    if let Some(q) = &params.qresync {
                        if params.condstore {
                            self.raw(" ");
                        }
                        self.raw(&format!("QRESYNC ({} {}", q.uidvalidity, q.modseq));
                        if let Some(k) = &q.known_uids {
                            self.raw(" ");
                            self.set(k);
                        }
                        if let Some((seqs, uids)) = &q.seq_match {
                            self.raw(" (");
                            self.set(seqs);
                            self.raw(" ");
                            self.set(uids);
                            self.raw(")");
                        }
                        self.raw(")");
                    }
                    self.raw(")");
                }
            }
            CommandKind::Create {
                mailbox,
                special_use,
            } => {
                self.raw("CREATE ");
                self.mailbox(mailbox);
                if !special_use.is_empty() {
                    self.raw(" (USE ");
                    self.list(special_use, |w, f| w.raw(f));
                    self.raw(")");
                }
            }
            CommandKind::Delete(m) | CommandKind::Subscribe(m) | CommandKind::Unsubscribe(m) => {
                self.raw(k.name());
                self.raw(" ");
                self.mailbox(m);
            }
            CommandKind::Rename(from, to) => {
                self.raw("RENAME ");
                self.mailbox(from);
                self.raw(" ");
                self.mailbox(to);
            }
            CommandKind::List(l) => self.list_command(l),
            CommandKind::Lsub { reference, pattern } => {
                self.raw("LSUB ");
                let r = self.wire_text(reference);
                self.astring(r.as_bytes());
                self.raw(" ");
                let p = self.wire_text(pattern);
                self.list_mailbox(p.as_bytes());
            }
            CommandKind::Status { mailbox, items } => {
                self.raw("STATUS ");
                self.mailbox(mailbox);
                self.raw(" ");
                self.list(items, |w, i| w.raw(i.name()));
            }
            CommandKind::Append { mailbox, messages } => {
                self.raw("APPEND ");
                self.mailbox(mailbox);
                for m in messages {
                    self.raw(" ");
                    if !m.flags.is_empty() {
                        self.list(&m.flags, |w, f| w.raw(f));
                        self.raw(" ");
                    }
                    if let Some(d) = m.date {
                        self.raw(&format!("\"{}\" ", format_date_time(d)));
                    }
                    match &m.data {
                        AppendData::Literal(message) => self.literal(message),
                        AppendData::Utf8(message) => {
                            self.raw("UTF8 (~");
                            self.raw(&format!("{{{}}}\r\n", message.len()));
                            self.out.extend_from_slice(message);
                            self.raw(")");
                        }
                        AppendData::Catenate(parts) => {
                            self.raw("CATENATE ");
                            self.list(parts, |w, p| match p {
                                CatPart::Text(t) => {
                                    w.raw("TEXT ");
                                    w.literal(t);
                                }
                                CatPart::Utf8(t) => {
                                    w.raw(&format!("UTF8 (~{{{}}}\r\n", t.len()));
                                    w.out.extend_from_slice(t);
                                    w.raw(")");
                                }
                                CatPart::Url(u) => {
                                    w.raw("URL ");
                                    w.string(u.as_bytes());
                                }
                            });
                        }
                    }
                }
            }
            CommandKind::GetQuota(root) => {
                self.raw("GETQUOTA ");
                self.astring(root.as_bytes());
            }
            CommandKind::GetQuotaRoot(m) => {
                self.raw("GETQUOTAROOT ");
                self.mailbox(m);
            }
            CommandKind::SetQuota(root, limits) => {
                self.raw("SETQUOTA ");
                self.astring(root.as_bytes());
                self.raw(" ");
                self.list(limits, |w, (name, n)| w.raw(&format!("{name} {n}")));
            }
            CommandKind::Notify(n) => self.notify(n),
            CommandKind::GenUrlAuth(urls) => {
                self.raw("GENURLAUTH");
                for (u, m) in urls {
                    self.raw(" ");
                    self.astring(u.as_bytes());
                    self.raw(" ");
                    self.raw(m);
                }
            }
            CommandKind::UrlFetch(urls) => {
                self.raw("URLFETCH");
                for u in urls {
                    self.raw(" ");
                    self.astring(u.as_bytes());
                }
            }
            CommandKind::ResetKey(None) => self.raw("RESETKEY"),
            CommandKind::ResetKey(Some((m, mechs))) => {
                self.raw("RESETKEY ");
                self.mailbox(m);
                for x in mechs {
                    self.raw(" ");
                    self.raw(x);
                }
            }
            CommandKind::CancelUpdate(tags) => {
                self.raw("CANCELUPDATE");
                for t in tags {
                    self.raw(" ");
                    self.string(t.as_bytes());
                }
            }
            CommandKind::GetMetadata(g) => {
                use crate::metadata::Depth;
                self.raw("GETMETADATA ");
                let mut opts = Vec::new();
                if let Some(n) = g.max_size {
                    opts.push(format!("MAXSIZE {n}"));
                }
                match g.depth {
                    Depth::Zero => {}
                    Depth::One => opts.push("DEPTH 1".into()),
                    Depth::Infinity => opts.push("DEPTH infinity".into()),
                }
                if !opts.is_empty() {
                    self.list(&opts, |w, o| w.raw(o));
                    self.raw(" ");
                }
                self.metadata_mailbox(g.mailbox.as_ref());
                self.raw(" ");
                self.list(&g.entries, |w, e| w.astring(e.as_bytes()));
            }
            CommandKind::SetMetadata(s) => {
                self.raw("SETMETADATA ");
                self.metadata_mailbox(s.mailbox.as_ref());
                self.raw(" ");
                self.list(&s.entries, |w, (e, v)| {
                    w.astring(e.as_bytes());
                    w.raw(" ");
                    match v {
                        None => w.raw("NIL"),
                        Some(v) if v.contains(&0) => w.literal(v),
                        Some(v) => w.string(v),
                    }
                });
            }
            CommandKind::UidExpunge(set) => {
                self.raw("UID EXPUNGE ");
                self.set(set);
            }
            CommandKind::Search { uid, search } => {
                self.raw(if *uid { "UID SEARCH " } else { "SEARCH " });
                self.search(search);
            }
            CommandKind::Sort { uid, sort } => {
                use crate::sort::SortKey as K;
                self.raw(if *uid { "UID SORT " } else { "SORT " });
                if let Some(returns) = &sort.returns {
                    self.raw("RETURN ");
                    self.list(returns, |w, r| w.raw(&search_return(r)));
                    self.raw(" ");
                }
                self.list(&sort.criteria, |w, c| {
                    if c.reverse {
                        w.raw("REVERSE ");
                    }
                    w.raw(match c.key {
                        K::Arrival => "ARRIVAL",
                        K::Cc => "CC",
                        K::Date => "DATE",
                        K::From => "FROM",
                        K::Size => "SIZE",
                        K::Subject => "SUBJECT",
                        K::To => "TO",
                        K::DisplayFrom => "DISPLAYFROM",
                        K::DisplayTo => "DISPLAYTO",
                    })
                });
                self.raw(" ");
                self.charset_and_keys(&sort.search);
            }
            CommandKind::Thread { uid, thread } => {
                self.raw(if *uid { "UID THREAD " } else { "THREAD " });
                self.raw(match thread.algorithm {
                    crate::sort::ThreadAlgorithm::OrderedSubject => "ORDEREDSUBJECT ",
                    crate::sort::ThreadAlgorithm::References => "REFERENCES ",
                });
                self.charset_and_keys(&thread.search);
            }
            CommandKind::Fetch {
                uid,
                set,
                atts,
                modifiers,
            } => {
                self.raw(if *uid { "UID FETCH " } else { "FETCH " });
                self.set(set);
                self.raw(" ");
                self.list(atts, |w, a| w.fetch_att(a));
                if let Some(n) = modifiers.changed_since {
                    self.raw(&format!(" (CHANGEDSINCE {n}"));
                    if modifiers.vanished {
                        self.raw(" VANISHED");
                    }
                    self.raw(")");
                }
            }
            CommandKind::Store {
                uid,
                set,
                unchanged_since,
                op,
                silent,
                flags,
            } => {
                self.raw(if *uid { "UID STORE " } else { "STORE " });
                self.set(set);
                if let Some(n) = unchanged_since {
                    self.raw(&format!(" (UNCHANGEDSINCE {n})"));
                }
                self.raw(match op {
                    StoreOp::Replace => " FLAGS",
                    StoreOp::Add => " +FLAGS",
                    StoreOp::Remove => " -FLAGS",
                });
                if *silent {
                    self.raw(".SILENT");
                }
                self.raw(" ");
                self.list(flags, |w, f| w.raw(f));
            }
            CommandKind::Copy { uid, set, mailbox } | CommandKind::Move { uid, set, mailbox } => {
                if *uid {
                    self.raw("UID ");
                }
                self.raw(k.name());
                self.raw(" ");
                self.set(set);
                self.raw(" ");
                self.mailbox(mailbox);
            }
            CommandKind::Capability
            | CommandKind::Noop
            | CommandKind::Logout
            | CommandKind::StartTls
            | CommandKind::Namespace
            | CommandKind::Check
            | CommandKind::Close
            | CommandKind::Unselect
            | CommandKind::Unauthenticate
            | CommandKind::Expunge
            | CommandKind::Idle => self.raw(k.name()),
        }
    }

    fn list_command(&mut self, l: &ListCommand) {
        self.raw("LIST ");
        if l.extended {
            let mut sel = Vec::new();
            if l.select_subscribed {
                sel.push("SUBSCRIBED");
            }
            if l.select_special_use {
                sel.push("SPECIAL-USE");
            }
            if l.recursive_match {
                sel.push("RECURSIVEMATCH");
            }
            self.words(&sel);
            self.raw(" ");
        }
        let r = self.wire_text(&l.reference);
        self.astring(r.as_bytes());
        self.raw(" ");
        let patterns: Vec<String> = l.patterns.iter().map(|p| self.wire_text(p)).collect();
        match patterns.as_slice() {
            [one] if !l.extended => self.list_mailbox(one.as_bytes()),
            _ => self.list(&patterns, |w, p| w.list_mailbox(p.as_bytes())),
        }
        let mut ret = Vec::new();
        if l.return_subscribed {
            ret.push("SUBSCRIBED".to_string());
        }
        if l.return_children {
            ret.push("CHILDREN".to_string());
        }
        if l.return_special_use {
            ret.push("SPECIAL-USE".to_string());
        }
        if let Some(items) = &l.return_status {
            let names: Vec<&str> = items.iter().map(|i| i.name()).collect();
            ret.push(format!("STATUS ({})", names.join(" ")));
        }
        if !ret.is_empty() {
            self.raw(" RETURN ");
            self.list(&ret, |w, s| w.raw(s));
        }
    }

    /// SORT and THREAD: the charset bare, then the keys.
    fn charset_and_keys(&mut self, s: &SearchCommand) {
        self.astring(s.charset.as_deref().unwrap_or("UTF-8").as_bytes());
        self.raw(" ");
        self.search(&SearchCommand {
            returns: None,
            charset: None,
            key: s.key.clone(),
        });
    }

    fn search(&mut self, s: &SearchCommand) {
        if let Some(returns) = &s.returns {
            self.raw("RETURN ");
            self.list(returns, |w, r| w.raw(&search_return(r)));
            self.raw(" ");
        }
        if let Some(cs) = &s.charset {
            self.raw("CHARSET ");
            self.astring(cs.as_bytes());
            self.raw(" ");
        }
        match &s.key {
            // The top level is an implicit AND of at least two keys; one
            // key in parentheses stays an AND of one.
            SearchKey::And(keys) if keys.len() >= 2 => {
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        self.raw(" ");
                    }
                    self.key(k);
                }
            }
            k => self.key(k),
        }
    }

    fn key(&mut self, k: &SearchKey) {
        match k {
            SearchKey::All => self.raw("ALL"),
            SearchKey::And(keys) => self.list(keys, |w, k| w.key(k)),
            SearchKey::Or(a, b) => {
                self.raw("OR ");
                self.key(a);
                self.raw(" ");
                self.key(b);
            }
            SearchKey::Not(a) => {
                self.raw("NOT ");
                self.key(a);
            }
            SearchKey::SeqSet(set) => self.set(set),
            SearchKey::Uid(set) => {
                self.raw("UID ");
                self.set(set);
            }
            SearchKey::Flag(f) => match system_flag_key(f) {
                Some(word) => self.raw(word),
                None => {
                    self.raw("KEYWORD ");
                    self.raw(f);
                }
            },
            SearchKey::NoFlag(f) => match system_flag_key(f) {
                Some(word) => {
                    self.raw("UN");
                    self.raw(word);
                }
                None => {
                    self.raw("UNKEYWORD ");
                    self.raw(f);
                }
            },
            SearchKey::Recent => self.raw("RECENT"),
            SearchKey::New => self.raw("NEW"),
            SearchKey::Old => self.raw("OLD"),
            SearchKey::Before(d) => self.raw(&format!("BEFORE {}", format_date(*d))),
            SearchKey::On(d) => self.raw(&format!("ON {}", format_date(*d))),
            SearchKey::Since(d) => self.raw(&format!("SINCE {}", format_date(*d))),
            SearchKey::SentBefore(d) => self.raw(&format!("SENTBEFORE {}", format_date(*d))),
            SearchKey::SentOn(d) => self.raw(&format!("SENTON {}", format_date(*d))),
            SearchKey::SentSince(d) => self.raw(&format!("SENTSINCE {}", format_date(*d))),
            SearchKey::Larger(n) => self.raw(&format!("LARGER {n}")),
            SearchKey::Younger(n) => self.raw(&format!("YOUNGER {n}")),
            SearchKey::EmailId(id) => self.raw(&format!("EMAILID {id}")),
            SearchKey::ThreadId(id) => self.raw(&format!("THREADID {id}")),
            SearchKey::Older(n) => self.raw(&format!("OLDER {n}")),
            SearchKey::SavedBefore(d) => self.raw(&format!("SAVEDBEFORE {}", format_date(*d))),
            SearchKey::SavedOn(d) => self.raw(&format!("SAVEDON {}", format_date(*d))),
            SearchKey::SavedSince(d) => self.raw(&format!("SAVEDSINCE {}", format_date(*d))),
            SearchKey::SaveDateSupported => self.raw("SAVEDATESUPPORTED"),
            SearchKey::Smaller(n) => self.raw(&format!("SMALLER {n}")),
            SearchKey::ModSeq(n) => self.raw(&format!("MODSEQ {n}")),
            SearchKey::Header(name, value) => {
                match name.as_str() {
                    "Bcc" | "Cc" | "From" | "Subject" | "To" => {
                        self.raw(&name.to_ascii_uppercase());
                    }
                    _ => {
                        self.raw("HEADER ");
                        self.astring(name.as_bytes());
                    }
                }
                self.raw(" ");
                self.astring(value.as_bytes());
            }
            SearchKey::Body(s) => {
                self.raw("BODY ");
                self.astring(s.as_bytes());
            }
            SearchKey::Text(s) => {
                self.raw("TEXT ");
                self.astring(s.as_bytes());
            }
        }
    }

    fn fetch_att(&mut self, a: &FetchAtt) {
        match a {
            FetchAtt::Envelope => self.raw("ENVELOPE"),
            FetchAtt::Flags => self.raw("FLAGS"),
            FetchAtt::InternalDate => self.raw("INTERNALDATE"),
            FetchAtt::Rfc822Size => self.raw("RFC822.SIZE"),
            FetchAtt::Rfc822 => self.raw("RFC822"),
            FetchAtt::Rfc822Header => self.raw("RFC822.HEADER"),
            FetchAtt::Rfc822Text => self.raw("RFC822.TEXT"),
            FetchAtt::Body => self.raw("BODY"),
            FetchAtt::BodyStructure => self.raw("BODYSTRUCTURE"),
            FetchAtt::Uid => self.raw("UID"),
            FetchAtt::EmailId => self.raw("EMAILID"),
            FetchAtt::ThreadId => self.raw("THREADID"),
            FetchAtt::ModSeq => self.raw("MODSEQ"),
            FetchAtt::SaveDate => self.raw("SAVEDATE"),
            FetchAtt::Preview { lazy } => {
                self.raw(if *lazy { "PREVIEW (LAZY)" } else { "PREVIEW" })
            }
            FetchAtt::Section {
                peek,
                section,
                partial,
            } => {
                self.raw(if *peek { "BODY.PEEK[" } else { "BODY[" });
                self.section(section);
                self.raw("]");
                self.partial(*partial);
            }
            FetchAtt::Binary {
                peek,
                part,
                partial,
            } => {
                self.raw(if *peek { "BINARY.PEEK[" } else { "BINARY[" });
                self.raw(&part_path(part));
                self.raw("]");
                self.partial(*partial);
            }
            FetchAtt::BinarySize { part } => {
                self.raw("BINARY.SIZE[");
                self.raw(&part_path(part));
                self.raw("]");
            }
        }
    }

    /// Like [`Section::to_wire`], but header field names keep their case
    /// (and their quoting) so that they parse back equal.
    fn section(&mut self, s: &Section) {
        self.raw(&part_path(&s.part));
        let Some(text) = &s.text else {
            return;
        };
        if !s.part.is_empty() {
            self.raw(".");
        }
        match text {
            SectionText::Header => self.raw("HEADER"),
            SectionText::Text => self.raw("TEXT"),
            SectionText::Mime => self.raw("MIME"),
            SectionText::HeaderFields(f) | SectionText::HeaderFieldsNot(f) => {
                self.raw(if matches!(text, SectionText::HeaderFields(_)) {
                    "HEADER.FIELDS "
                } else {
                    "HEADER.FIELDS.NOT "
                });
                self.list(f, |w, name| w.astring(name.as_bytes()));
            }
        }
    }

    fn partial(&mut self, p: Option<(u32, u32)>) {
        if let Some((start, len)) = p {
            self.raw(&format!("<{start}.{len}>"));
        }
    }
}

fn seq_num(n: SeqNum) -> String {
    match n {
        SeqNum::Value(v) => v.to_string(),
        SeqNum::Star => "*".into(),
    }
}

fn part_path(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The SEARCH key of a system flag that has one.
fn system_flag_key(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "\\Answered" => "ANSWERED",
        "\\Deleted" => "DELETED",
        "\\Draft" => "DRAFT",
        "\\Flagged" => "FLAGGED",
        "\\Seen" => "SEEN",
        _ => return None,
    })
}
