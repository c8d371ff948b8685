//! The IMAP session state machine (RFC 9051 3, 5.2, 7.4.1).
//!
//! States: not authenticated, authenticated, selected, logout. One table
//! ([`allowed`]) says which commands each state accepts; a command in the
//! wrong state is `BAD`. [`Session::apply`] dispatches to the file of the
//! command's group and writes the tagged reply; after each command in the
//! selected state, changes made elsewhere are reported where RFC 9051
//! 7.4.1 allows (never an EXPUNGE after FETCH, STORE or SEARCH by
//! sequence number).

use std::net::SocketAddr;
use std::sync::Arc;

use proto_imap::command::ParseOptions;
use proto_imap::{Code, Command, CommandKind, Data, Encoder, Response, Status, Tag};

use super::config::ImapConfig;
pub use super::context::{ImapContext, RecentTracker};
pub use super::error::{CmdResult, Done, ImapError, done};
pub use super::out::{OUT_FLUSH_AT, Out, Sink, tagged};
use super::selected::Selected;
use super::view::Report;
use crate::net::Role;
use crate::presence::{Registration, TerminalMessage};
use crate::tls::{Tls, TlsInfo};

/// The logged-in user of the authenticated and selected states.
pub struct Account {
    pub name: String,
    /// The hub's deletion count of the account at login: a larger one
    /// means the account was deleted under this session.
    pub deletions_at_login: u64,
    /// This session as the user's terminal (SPEC 1): registered for as
    /// long as the account is logged in here, so leaving the state (LOGOUT)
    /// or dropping the session (a closed connection) unregisters at once.
    pub terminal: Terminal,
}

/// A session's registration with the presence registry and the messages
/// waiting to be shown as `* OK [ALERT]`.
pub struct Terminal {
    _registration: Registration,
    inbox: tokio::sync::mpsc::Receiver<TerminalMessage>,
}

/// What woke a waiting session.
pub enum Wake {
    /// The selected mailbox changed.
    Changed,
    /// A terminal message arrived (SEND, SOML, SAML).
    Terminal(TerminalMessage),
}

/// The states of RFC 9051 3, each with its data: a selected state holds
/// its mailbox's view, so no state can be without what it needs.
pub enum State {
    NotAuthenticated,
    Authenticated(Account),
    Selected(Account, Box<Selected>),
    Logout,
}

/// Which state a [`State`] is, for the command table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    NotAuthenticated,
    Authenticated,
    Selected,
    Logout,
}

impl State {
    pub fn kind(&self) -> StateKind {
        match self {
            State::NotAuthenticated => StateKind::NotAuthenticated,
            State::Authenticated(_) => StateKind::Authenticated,
            State::Selected(..) => StateKind::Selected,
            State::Logout => StateKind::Logout,
        }
    }

    fn account(&self) -> Option<&Account> {
        match self {
            State::Authenticated(a) | State::Selected(a, _) => Some(a),
            State::NotAuthenticated | State::Logout => None,
        }
    }

    fn account_mut(&mut self) -> Option<&mut Account> {
        match self {
            State::Authenticated(a) | State::Selected(a, _) => Some(a),
            State::NotAuthenticated | State::Logout => None,
        }
    }
}

/// Which commands each state allows (RFC 9051 6.1-6.4).
pub fn allowed(state: StateKind, cmd: &CommandKind) -> bool {
    use CommandKind as C;
    use StateKind as State;
    match cmd {
        C::Capability | C::Noop | C::Logout | C::Id(_) => state != State::Logout,
        C::Login { .. } | C::Authenticate { .. } | C::StartTls => state == State::NotAuthenticated,
        C::Enable(_) => state == State::Authenticated,
        C::Select { .. }
        | C::Create { .. }
        | C::Delete(_)
        | C::Rename(..)
        | C::Subscribe(_)
        | C::Unsubscribe(_)
        | C::List(_)
        | C::Lsub { .. }
        | C::Namespace
        | C::Status { .. }
        | C::Append { .. }
        | C::Unauthenticate
        | C::GetQuota(_)
        | C::GetQuotaRoot(_)
        | C::SetQuota(..)
        | C::Compress(_)
        | C::Notify(_)
        | C::GetMetadata(_)
        | C::SetMetadata(_)
        | C::GenUrlAuth(_)
        | C::UrlFetch(_)
        | C::ResetKey(_)
        | C::Idle => matches!(state, State::Authenticated | State::Selected),
        C::Check
        | C::Close
        | C::Unselect
        | C::Expunge
        | C::UidExpunge(_)
        | C::Search { .. }
        | C::CancelUpdate(_)
        | C::Sort { .. }
        | C::Thread { .. }
        | C::Fetch { .. }
        | C::Store { .. }
        | C::Copy { .. }
        | C::Move { .. } => state == State::Selected,
    }
}

/// What the driver does after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// LOGOUT done (or a fatal error): close the connection.
    Close,
    /// IDLE: send the continuation, then report changes until DONE.
    Idle(Tag),
    /// AUTHENTICATE without an initial response: send `+ ` and pass the
    /// client's next line to [`Session::sasl_response`].
    Sasl(Tag),
    /// STARTTLS answered OK: start TLS (RFC 9051 6.2.1), then go on from
    /// [`Session::tls_started`].
    StartTls,
    /// COMPRESS answered OK: compress both ways from the next octet (RFC
    /// 4978 3).
    Compress,
}

/// A streamed APPEND literal and the literal memory it holds.
pub(super) struct Streamed {
    pub message: Result<crate::spool::Message, crate::spool::SpoolError>,
    pub _memory: crate::budget::Reservation,
}

impl std::fmt::Debug for Streamed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamed").finish_non_exhaustive()
    }
}

/// One IMAP session.
pub struct Session {
    pub(super) ctx: Arc<ImapContext>,
    pub(super) peer: SocketAddr,
    /// The listener this session came in on.
    pub(super) role: Role,
    /// True once the stream is TLS (STARTTLS or the IMAPS port).
    pub(super) tls: bool,
    pub(super) state: State,
    /// ENABLE IMAP4rev2 (RFC 9051 6.3.1): UTF-8 names, ESEARCH, no \Recent.
    pub(super) rev2: bool,
    /// ENABLE UTF8=ACCEPT (RFC 6855 3): UTF-8 mailbox names and strings
    /// both ways, and APPEND's UTF8 item.
    pub(super) utf8_accept: bool,
    /// CONDSTORE is on (RFC 7162 3.1: ENABLE or a CONDSTORE-enabling
    /// command): FETCH carries MODSEQ.
    pub(super) condstore: bool,
    /// ENABLE QRESYNC (RFC 7162 3.2.3): VANISHED instead of EXPUNGE.
    pub(super) qresync: bool,
    /// The logged-in user's storage limit at login (0: none), for
    /// APPENDLIMIT (RFC 7889).
    pub(super) storage_limit: u64,
    /// The AUTHENTICATE exchange waiting for the client's response.
    pub(super) sasl: Option<crate::sasl::Exchange>,
    /// COMPRESS=DEFLATE is on (RFC 4978): for the connection's life.
    pub(super) compressed: bool,
    /// NOTIFY SET in effect (RFC 5465).
    pub(super) notify: Option<Box<super::notify::Notify>>,
    /// The APPEND literals the driver streamed for the command being
    /// applied (issue 19), in order; empty for any other command.
    pub(super) streamed: Vec<Streamed>,
}

impl Session {
    pub fn new(ctx: Arc<ImapContext>, peer: SocketAddr) -> Self {
        Session {
            ctx,
            peer,
            role: Role::Imap,
            tls: false,
            state: State::NotAuthenticated,
            rev2: false,
            utf8_accept: false,
            condstore: false,
            qresync: false,
            storage_limit: 0,
            sasl: None,
            compressed: false,
            notify: None,
            streamed: Vec::new(),
        }
    }

    pub fn config(&self) -> &ImapConfig {
        &self.ctx.config
    }

    /// A writer for an APPEND literal: spooled past the threshold when
    /// the server has a spool (issue 19).
    pub(super) fn spool_writer(&self) -> crate::spool::SpoolWriter {
        match &self.ctx.config.spool {
            Some(spool) => spool.writer(),
            None => crate::spool::SpoolWriter::in_memory(),
        }
    }

    /// The session of a connection on a listener of `role`.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn tls(&self) -> Option<&Arc<Tls>> {
        self.ctx.tls.as_ref()
    }

    /// TLS is up (the IMAPS port, or after STARTTLS). RFC 9051 6.2.1: what
    /// the client said before is forgotten; it asks CAPABILITY again, and
    /// the state is still not authenticated.
    pub fn tls_started(&mut self, info: TlsInfo) {
        tracing::info!(version = info.version, cipher = %info.cipher, "TLS established");
        self.tls = true;
        self.transition(State::NotAuthenticated);
    }

    pub fn state(&self) -> StateKind {
        self.state.kind()
    }

    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            utf8: self.utf8_mode(),
        }
    }

    pub fn encoder(&self) -> Encoder {
        Encoder {
            utf8: self.utf8_mode(),
        }
    }

    /// UTF-8 on the wire (RFC 9051 IMAP4rev2, or RFC 6855 UTF8=ACCEPT):
    /// mailbox names as UTF-8, not modified UTF-7, and UTF-8 text.
    pub(super) fn utf8_mode(&self) -> bool {
        self.rev2 || self.utf8_accept
    }

    /// The one transition function: every state change goes through it.
    pub(super) fn transition(&mut self, to: State) {
        self.state = to;
    }

    /// Logs in as `account`: the authenticated state, remembering the
    /// account's deletion count now.
    pub(super) fn enter_authenticated(&mut self, account: String) {
        let deletions_at_login = self.ctx.hub.deletions(&account);
        let (registration, inbox) = self.ctx.presence.register(&account);
        self.transition(State::Authenticated(Account {
            name: account,
            deletions_at_login,
            terminal: Terminal {
                _registration: registration,
                inbox,
            },
        }));
    }

    /// Leaves the selected state (CLOSE, UNSELECT, a failed SELECT) for
    /// the authenticated one; returns the mailbox that was selected.
    pub(super) fn deselect(&mut self) -> Option<Box<Selected>> {
        match std::mem::replace(&mut self.state, State::Logout) {
            State::Selected(account, sel) => {
                self.state = State::Authenticated(account);
                Some(sel)
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Enters the selected state with `sel` (from authenticated or
    /// selected); false, and no change, in any other state.
    pub(super) fn enter_selected(&mut self, sel: Selected) -> bool {
        match std::mem::replace(&mut self.state, State::Logout) {
            State::Authenticated(account) | State::Selected(account, _) => {
                self.transition(State::Selected(account, Box::new(sel)));
                true
            }
            other => {
                self.state = other;
                false
            }
        }
    }

    /// The selected mailbox, in the selected state.
    pub fn selected(&self) -> Option<&Selected> {
        match &self.state {
            State::Selected(_, sel) => Some(sel),
            _ => None,
        }
    }

    pub fn selected_mut(&mut self) -> Option<&mut Selected> {
        match &mut self.state {
            State::Selected(_, sel) => Some(sel),
            _ => None,
        }
    }

    /// True when the logged-in account was deleted since login.
    pub fn account_deleted(&self) -> bool {
        self.state
            .account()
            .is_some_and(|a| self.ctx.hub.deletions(&a.name) != a.deletions_at_login)
    }

    pub(super) fn account(&self) -> Result<&str, ImapError> {
        self.state
            .account()
            .map(|a| a.name.as_str())
            .ok_or_else(|| ImapError::Bad("not authenticated".into()))
    }

    /// Plaintext passwords are taken over TLS, or from the local networks
    /// (SPEC 5).
    pub(super) fn plaintext_allowed(&self) -> bool {
        let ip = self.peer.ip();
        self.tls
            || self
                .ctx
                .config
                .plaintext_networks
                .iter()
                .any(|n| n.contains(&ip))
    }

    /// The CAPABILITY list for the current state (RFC 9051 7.2.2).
    pub fn capabilities(&self) -> Vec<String> {
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
            "IDLE",
        ];
        if self.state() == StateKind::NotAuthenticated {
            // RFC 9051 6.2.1: offered only before TLS.
            if !self.tls && self.ctx.tls.is_some() {
                caps.push("STARTTLS");
            }
            if self.plaintext_allowed() {
                caps.push("AUTH=PLAIN");
                caps.push("AUTH=LOGIN");
                if self.ctx.auth.directory().scram_enabled() {
                    caps.push("AUTH=SCRAM-SHA-256");
                }
            } else {
                caps.push("LOGINDISABLED");
            }
        } else {
            caps.extend([
                "NAMESPACE",
                "UNSELECT",
                "UIDPLUS",
                "MOVE",
                "CHILDREN",
                "LIST-EXTENDED",
                "LIST-STATUS",
                "SPECIAL-USE",
                "ESEARCH",
                "SEARCHRES",
                "SORT",
                "SORT=DISPLAY",
                "ESORT",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
                "WITHIN",
                "CREATE-SPECIAL-USE",
                "PREVIEW",
                "OBJECTID",
                "BINARY",
                "STATUS=SIZE",
                "UNAUTHENTICATE",
                "CONDSTORE",
                "QRESYNC",
                "QUOTA",
                "QUOTA=RES-STORAGE",
                "QUOTA=RES-MESSAGE",
                "COMPRESS=DEFLATE",
                "UTF8=ACCEPT",
                "MULTIAPPEND",
                "SAVEDATE",
                "CATENATE",
                "NOTIFY",
                "METADATA",
                "METADATA-SERVER",
                "CONTEXT=SEARCH",
                "CONTEXT=SORT",
                "URLAUTH",
            ]);
        }
        let mut caps: Vec<String> = caps.into_iter().map(str::to_string).collect();
        // RFC 7889: the largest APPEND accepted; after login, the user's
        // storage limit too, when it is smaller.
        let max = self.ctx.config.max_literal_size as u64;
        let limit = match self.storage_limit {
            0 => max,
            s => s.min(max),
        };
        caps.push(format!("APPENDLIMIT={limit}"));
        caps
    }

    /// The greeting (RFC 9051 7.1.1).
    pub fn greeting(&self) -> Response {
        Response::Untagged {
            status: Status::Ok,
            code: Some(Code::Capability(self.capabilities())),
            text: "mailroom IMAP ready".into(),
        }
    }

    /// Applies one command: writes its responses and the tagged reply.
    pub async fn apply(&mut self, cmd: Command, out: &mut Out<'_>) -> Result<Flow, ImapError> {
        let Command { tag, kind } = cmd;
        // RFC 9051 7.1.5: BYE when the server closes the connection; the
        // account is gone, so nothing this session could do would work.
        if self.account_deleted() && !matches!(kind, CommandKind::Logout) {
            out.untagged(Status::Bye, None, ACCOUNT_DELETED);
            self.transition(State::Logout);
            return Ok(Flow::Close);
        }
        // SPEC 1: a terminal message comes with the session's next response.
        self.show_terminal(out);
        // RFC 5465: what NOTIFY watches, before this command's responses.
        self.notify_deliver(out, false, false).await?;
        if !allowed(self.state(), &kind) {
            let text = match self.state() {
                StateKind::NotAuthenticated => "Log in first",
                StateKind::Authenticated => "Select a mailbox first",
                _ => "Command not allowed in this state",
            };
            tagged(
                out,
                &tag,
                Status::Bad,
                None,
                &format!("{} {text}", kind.name()),
            );
            return Ok(Flow::Continue);
        }
        let name = kind.name();
        // RFC 9051 7.4.1: no EXPUNGE during FETCH, STORE or SEARCH by
        // sequence number.
        let expunge_ok = !matches!(
            kind,
            CommandKind::Fetch { uid: false, .. }
                | CommandKind::Store { uid: false, .. }
                | CommandKind::Search { uid: false, .. }
                | CommandKind::Sort { uid: false, .. }
                | CommandKind::Thread { uid: false, .. }
        );
        // These report at once (NOOP, CHECK: RFC 9051 6.1.2) or may have
        // added to the selected mailbox (APPEND, COPY, MOVE: EXISTS
        // follows, without waiting for the hub's wake-up, which may come
        // after the tagged reply). Cheap: a sync reads only what changed.
        let always_sync = matches!(
            kind,
            CommandKind::Noop
                | CommandKind::Check
                | CommandKind::Append { .. }
                | CommandKind::Copy { .. }
                | CommandKind::Move { .. }
        );
        // Commands that name messages of the view see it current first:
        // what others expunged is marked (not yet reported: the client's
        // sequence numbers predate it), so FETCH and STORE can answer for
        // it per RFC 2180 4.1 and 4.2.
        let uses_view = matches!(
            kind,
            CommandKind::Fetch { .. }
                | CommandKind::Store { .. }
                | CommandKind::Copy { .. }
                | CommandKind::Move { .. }
                | CommandKind::Search { .. }
                | CommandKind::Sort { .. }
                | CommandKind::Thread { .. }
        );
        // RFC 7162 3.1: a CONDSTORE-enabling command turns it on, with
        // HIGHESTMODSEQ for the selected mailbox the first time.
        if enables_condstore(&kind) {
            self.enable_condstore(out);
        }
        if uses_view && self.selected().is_some_and(Selected::is_dirty) {
            self.sync(out, false, false).await?;
        }
        let result = match kind {
            CommandKind::Logout => {
                out.untagged(Status::Bye, None, "mailroom IMAP server quitting");
                tagged(out, &tag, Status::Ok, None, "LOGOUT completed");
                self.transition(State::Logout);
                return Ok(Flow::Close);
            }
            CommandKind::Idle => {
                self.sync(out, true, false).await?;
                return Ok(Flow::Idle(tag));
            }
            CommandKind::Unauthenticate => {
                // RFC 8437 3: as just after the greeting (TLS stays):
                // the mailbox is closed without expunge, ENABLEd
                // extensions end, and the session stops being the user's
                // terminal.
                self.rev2 = false;
                self.utf8_accept = false;
                self.condstore = false;
                self.qresync = false;
                self.storage_limit = 0;
                self.notify = None;
                self.transition(State::NotAuthenticated);
                out.enc = self.encoder();
                tagged(out, &tag, Status::Ok, None, "UNAUTHENTICATE completed");
                return Ok(Flow::Continue);
            }
            CommandKind::Compress(mechanism) => return Ok(self.compress(&tag, &mechanism, out)),
            CommandKind::StartTls => {
                // RFC 9051 6.2.1: a second STARTTLS is BAD.
                if self.tls {
                    tagged(out, &tag, Status::Bad, None, "TLS is already active");
                    return Ok(Flow::Continue);
                }
                if self.ctx.tls.is_none() {
                    tagged(out, &tag, Status::No, None, "TLS is not available");
                    return Ok(Flow::Continue);
                }
                tagged(out, &tag, Status::Ok, None, "Begin TLS negotiation now");
                return Ok(Flow::StartTls);
            }
            CommandKind::Authenticate { mechanism, initial } => {
                match self
                    .authenticate_start(&tag, &mechanism, initial, out)
                    .await?
                {
                    Some(flow) => return Ok(flow),
                    None => return Ok(Flow::Continue),
                }
            }
            other => self.dispatch(&tag, other, out).await,
        };
        match result {
            Ok((code, text)) => {
                if self.selected().is_some_and(|sel| {
                    sel.is_dirty() || always_sync || (expunge_ok && sel.view.pending_expunges() > 0)
                }) {
                    self.sync(out, expunge_ok, false).await?;
                }
                // RFC 5267 4.3: updating searches follow what changed.
                self.refresh_updates(out).await?;
                tagged(out, &tag, Status::Ok, code, &text);
            }
            Err(ImapError::No(code, text)) => tagged(
                out,
                &tag,
                Status::No,
                code,
                &format!("{name} failed: {text}"),
            ),
            Err(ImapError::Bad(text)) => tagged(out, &tag, Status::Bad, None, &text),
            Err(ImapError::Gone) => return Err(ImapError::Gone),
        }
        Ok(Flow::Continue)
    }

    async fn dispatch(&mut self, tag: &Tag, kind: CommandKind, out: &mut Out<'_>) -> CmdResult {
        use CommandKind as C;
        match kind {
            C::Capability => {
                out.data(Data::Capability(self.capabilities()));
                done("CAPABILITY completed")
            }
            C::Noop => done("NOOP completed"),
            C::Check => done("CHECK completed"),
            C::Login { user, password } => self.login(&user, &password, out).await,
            C::Enable(caps) => self.enable(&caps, out),
            C::Id(_) => self.id(out),
            C::Namespace => {
                out.data(Data::Namespace);
                done("NAMESPACE completed")
            }
            C::Select {
                mailbox,
                read_only,
                params,
            } => self.select(&mailbox, read_only, params, out).await,
            C::Create {
                mailbox,
                special_use,
            } => self.create(&mailbox, &special_use).await,
            C::Delete(m) => self.delete(&m).await,
            C::Rename(from, to) => self.rename(&from, &to).await,
            C::Subscribe(m) => self.subscribe(&m, true).await,
            C::Unsubscribe(m) => self.subscribe(&m, false).await,
            C::List(l) => self.list(&l, out).await,
            C::Lsub { reference, pattern } => self.lsub(&reference, &pattern, out).await,
            C::Status { mailbox, items } => self.status(&mailbox, &items, out).await,
            C::Append { mailbox, messages } => self.append(&mailbox, messages).await,
            C::GetQuota(root) => self.get_quota(&root, out).await,
            C::GetQuotaRoot(m) => self.get_quota_root(&m, out).await,
            C::SetQuota(..) => Err(ImapError::no(
                Some(Code::NoPerm),
                "quotas are set by the administrator (mailroom user quota)",
            )),
            C::Close => self.close(true).await,
            C::Unselect => self.close(false).await,
            C::Expunge => self.expunge(None, out).await,
            C::UidExpunge(set) => self.expunge(Some(set), out).await,
            C::Search { uid, search } => self.search(tag, uid, search, out).await,
            C::Sort { uid, sort } => self.sort(tag, uid, sort, out).await,
            C::Thread { uid, thread } => self.thread(uid, thread, out).await,
            C::Fetch {
                uid,
                set,
                atts,
                modifiers,
            } => self.fetch(uid, &set, &atts, modifiers, out).await,
            C::Store {
                uid,
                set,
                unchanged_since,
                op,
                silent,
                flags,
            } => {
                let store = super::flags::StoreArgs {
                    uid_cmd: uid,
                    unchanged_since,
                    op,
                    silent,
                    flags,
                };
                self.store_flags(&set, store, out).await
            }
            C::Notify(n) => self.notify(n, out).await,
            C::CancelUpdate(tags) => self.cancel_update(&tags),
            C::GenUrlAuth(urls) => self.gen_url_auth(urls, out).await,
            C::UrlFetch(urls) => self.url_fetch(urls, out).await,
            C::ResetKey(arg) => self.reset_key(arg).await,
            C::GetMetadata(g) => self.get_metadata(g, out).await,
            C::SetMetadata(m) => self.set_metadata(m).await,
            C::Copy { uid, set, mailbox } => self.copy(uid, &set, &mailbox, false, out).await,
            C::Move { uid, set, mailbox } => self.copy(uid, &set, &mailbox, true, out).await,
            C::Logout
            | C::Idle
            | C::Unauthenticate
            | C::Authenticate { .. }
            | C::StartTls
            | C::Compress(_) => Err(ImapError::Bad("unexpected command".into())),
        }
    }

    /// How this session reports changes (see [`Report`]).
    pub(super) fn report(&self, expunge_ok: bool, with_uid: bool) -> Report {
        Report {
            expunge_ok,
            with_uid,
            rev2: self.rev2,
            condstore: self.condstore,
            qresync: self.qresync,
        }
    }

    /// Turns CONDSTORE on (RFC 7162 3.1): the first time, with a mailbox
    /// selected, `* OK [HIGHESTMODSEQ n]` tells the client where it is.
    pub(super) fn enable_condstore(&mut self, out: &mut Out<'_>) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let Some(sel) = self.selected() {
            out.untagged(
                Status::Ok,
                Some(Code::HighestModSeq(sel.modseq())),
                "Highest",
            );
        }
    }

    /// Reports changes to the selected mailbox made elsewhere.
    pub async fn sync(
        &mut self,
        out: &mut Out<'_>,
        expunge_ok: bool,
        with_uid: bool,
    ) -> Result<(), ImapError> {
        let report = self.report(expunge_ok, with_uid);
        let ctx = Arc::clone(&self.ctx);
        if let Some(sel) = self.selected_mut() {
            sel.sync(&ctx, out, report).await?;
        }
        Ok(())
    }

    /// Waits until the selected mailbox changes or a terminal message
    /// arrives (IDLE); never resolves logged out.
    pub async fn wake(&mut self) -> Wake {
        // NOTIFY (RFC 5465 4): its events wake an idling session too.
        let notify = self.notify.as_deref_mut();
        match &mut self.state {
            State::Selected(account, sel) => tokio::select! {
                () = sel.changed() => Wake::Changed,
                Some(m) = account.terminal.inbox.recv() => Wake::Terminal(m),
                () = super::notify::wait_feed(notify) => Wake::Changed,
            },
            State::Authenticated(account) => tokio::select! {
                m = account.terminal.inbox.recv() => match m {
                    Some(m) => Wake::Terminal(m),
                    // The registry let go of the account: it was deleted.
                    None if self.ctx.hub.deletions(&account.name) != account.deletions_at_login => {
                        Wake::Changed
                    }
                    None => std::future::pending().await,
                },
                () = super::notify::wait_feed(notify) => Wake::Changed,
            },
            State::NotAuthenticated | State::Logout => std::future::pending().await,
        }
    }

    /// Writes the terminal messages waiting for this session, each as one
    /// `* OK [ALERT]` line (RFC 9051 7.1: the client shows it to the
    /// person).
    pub fn show_terminal(&mut self, out: &mut Out<'_>) {
        let utf8 = self.utf8_mode();
        let max = self.ctx.config.terminal_max_chars;
        let Some(account) = self.state.account_mut() else {
            return;
        };
        while let Ok(m) = account.terminal.inbox.try_recv() {
            out.untagged(Status::Ok, Some(Code::Alert), &m.shown(utf8, max));
        }
    }

    /// Writes one terminal message as `* OK [ALERT]`.
    pub fn show_alert(&self, m: &TerminalMessage, out: &mut Out<'_>) {
        let text = m.shown(self.utf8_mode(), self.ctx.config.terminal_max_chars);
        out.untagged(Status::Ok, Some(Code::Alert), &text);
    }
}

/// True when a search key has MODSEQ in it (RFC 7162 3.1.5).
pub(super) fn has_modseq(k: &proto_imap::search::SearchKey) -> bool {
    use proto_imap::search::SearchKey;
    match k {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(v) => v.iter().any(has_modseq),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        SearchKey::Not(a) => has_modseq(a),
        _ => false,
    }
}

/// RFC 7162 3.1: the commands that turn CONDSTORE on (SELECT (CONDSTORE)
/// does it in [`Session::select`], with its own HIGHESTMODSEQ).
fn enables_condstore(kind: &CommandKind) -> bool {
    match kind {
        CommandKind::Fetch {
            atts, modifiers, ..
        } => modifiers.changed_since.is_some() || atts.contains(&proto_imap::FetchAtt::ModSeq),
        CommandKind::Store {
            unchanged_since, ..
        } => unchanged_since.is_some(),
        CommandKind::Search { search, .. } => has_modseq(&search.key),
        CommandKind::Status { items, .. } => {
            items.contains(&proto_imap::command::StatusItem::HighestModSeq)
        }
        _ => false,
    }
}

/// The BYE text when the account was deleted under a session.
pub const ACCOUNT_DELETED: &str = "Account deleted, closing connection";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_table_refuses_commands_out_of_state() {
        let fetch = CommandKind::Fetch {
            uid: false,
            set: proto_imap::SeqSet::Saved,
            atts: vec![],
            modifiers: Default::default(),
        };
        assert!(!allowed(StateKind::NotAuthenticated, &fetch));
        assert!(!allowed(StateKind::Authenticated, &fetch));
        assert!(allowed(StateKind::Selected, &fetch));
        let login = CommandKind::Login {
            user: "a".into(),
            password: "b".into(),
        };
        assert!(allowed(StateKind::NotAuthenticated, &login));
        assert!(!allowed(StateKind::Selected, &login));
        assert!(allowed(
            StateKind::NotAuthenticated,
            &CommandKind::Capability
        ));
        assert!(!allowed(StateKind::Selected, &CommandKind::Enable(vec![])));
    }
}
