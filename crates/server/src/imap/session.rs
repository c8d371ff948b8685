//! The IMAP session state machine (RFC 9051 3, 5.2, 7.4.1).
//!
//! States: not authenticated, authenticated, selected, logout. One table
//! ([`allowed`]) says which commands each state accepts; a command in the
//! wrong state is `BAD`. [`Session::apply`] dispatches to the file of the
//! command's group and writes the tagged reply; after each command in the
//! selected state, changes made elsewhere are reported where RFC 9051
//! 7.4.1 allows (never an EXPUNGE after FETCH, STORE or SEARCH by
//! sequence number).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use proto_imap::command::ParseOptions;
use proto_imap::{Code, Command, CommandKind, Data, Encoder, Response, Status, Tag};
use store::{MailboxId, Store, StoreError, Uid};

use super::config::ImapConfig;
use super::hub::ChangeHub;
use super::view::Selected;
use crate::auth::Authenticator;
use crate::net::Role;
use crate::tls::{Tls, TlsInfo};

/// What the server shares with every IMAP session.
pub struct ImapContext {
    pub config: ImapConfig,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub hub: Arc<ChangeHub>,
    pub recent: RecentTracker,
    /// Certificates for STARTTLS and the IMAPS port; None: no TLS.
    pub tls: Option<Arc<Tls>>,
}

impl ImapContext {
    /// Needs a tokio runtime (starts the change hub).
    pub fn new(
        config: ImapConfig,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        tls: Option<Arc<Tls>>,
    ) -> Arc<Self> {
        let hub = ChangeHub::start(&store);
        Arc::new(ImapContext {
            config,
            store,
            auth,
            hub,
            recent: RecentTracker::default(),
            tls,
        })
    }
}

/// \Recent (RFC 3501 2.3.2): the first session to see a new message owns
/// it. Kept per process: the highest UID of each mailbox some session has
/// already been shown.
#[derive(Default)]
pub struct RecentTracker {
    seen: Mutex<HashMap<MailboxId, u32>>,
}

impl RecentTracker {
    /// The UIDs (ascending) that are recent for a session seeing them now;
    /// with `claim`, they stop being recent for every other session.
    pub fn claim(&self, mailbox: MailboxId, uids: &[Uid], claim: bool) -> Vec<Uid> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let last = seen.get(&mailbox).copied().unwrap_or(0);
        let recent: Vec<Uid> = uids.iter().copied().filter(|u| u.0 > last).collect();
        if claim && let Some(max) = recent.last() {
            seen.insert(mailbox, max.0);
        }
        recent
    }

    /// How many of these UIDs nobody has seen yet (STATUS RECENT).
    pub fn count_unclaimed(&self, mailbox: MailboxId, uids: &[Uid]) -> u32 {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let last = seen.get(&mailbox).copied().unwrap_or(0);
        uids.iter().filter(|u| u.0 > last).count() as u32
    }
}

/// The states of RFC 9051 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    NotAuthenticated,
    Authenticated,
    Selected,
    Logout,
}

/// Which commands each state allows (RFC 9051 6.1-6.4).
pub fn allowed(state: State, cmd: &CommandKind) -> bool {
    use CommandKind as C;
    match cmd {
        C::Capability | C::Noop | C::Logout | C::Id(_) => state != State::Logout,
        C::Login { .. } | C::Authenticate { .. } | C::StartTls => state == State::NotAuthenticated,
        C::Enable(_) => state == State::Authenticated,
        C::Select { .. }
        | C::Create(_)
        | C::Delete(_)
        | C::Rename(..)
        | C::Subscribe(_)
        | C::Unsubscribe(_)
        | C::List(_)
        | C::Lsub { .. }
        | C::Namespace
        | C::Status { .. }
        | C::Append { .. }
        | C::Idle => matches!(state, State::Authenticated | State::Selected),
        C::Check
        | C::Close
        | C::Unselect
        | C::Expunge
        | C::UidExpunge(_)
        | C::Search { .. }
        | C::Fetch { .. }
        | C::Store { .. }
        | C::Copy { .. }
        | C::Move { .. } => state == State::Selected,
    }
}

/// Errors of a command, mapped to the wire by [`Session::apply`].
#[derive(Debug)]
pub enum ImapError {
    /// Tagged `NO`.
    No(Option<Code>, String),
    /// Tagged `BAD`.
    Bad(String),
    /// The client is gone (a write failed): stop.
    Gone,
}

impl ImapError {
    pub fn no(code: Option<Code>, text: impl Into<String>) -> Self {
        ImapError::No(code, text.into())
    }
}

impl From<StoreError> for ImapError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::DiskFull | StoreError::Busy | StoreError::Io(_) | StoreError::Closed => {
                Code::Unavailable
            }
            StoreError::QuotaExceeded => Code::OverQuota,
            StoreError::NotFound(_) => Code::NonExistent,
            StoreError::AlreadyExists(_) => Code::AlreadyExists,
            StoreError::Invalid(_) => Code::Cannot,
            StoreError::Limit(_) => Code::Limit,
            StoreError::NewerSchema { .. } => Code::ServerBug,
        };
        if e.is_temporary() {
            tracing::warn!(error = %e, "imap: store error");
        }
        ImapError::No(Some(code), e.to_string())
    }
}

/// The tagged OK of a successful command: a code and the text.
pub type Done = (Option<Code>, String);
pub type CmdResult = Result<Done, ImapError>;

pub fn done(text: impl Into<String>) -> CmdResult {
    Ok((None, text.into()))
}

/// Where responses go: the driver's socket.
pub trait Sink: Send {
    /// Writes and flushes; false when the client is gone.
    fn send<'a>(&'a mut self, bytes: &'a [u8]) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// Bytes buffered before a long response is flushed mid-command.
pub const OUT_FLUSH_AT: usize = 256 * 1024;

/// Buffered responses of one command.
pub struct Out<'s> {
    pub buf: Vec<u8>,
    pub enc: Encoder,
    sink: &'s mut dyn Sink,
}

impl<'s> Out<'s> {
    pub fn new(sink: &'s mut dyn Sink, enc: Encoder) -> Self {
        Out {
            buf: Vec::new(),
            enc,
            sink,
        }
    }

    pub fn push(&mut self, r: &Response) {
        r.write(&self.enc, &mut self.buf);
    }

    pub fn data(&mut self, d: Data) {
        self.push(&Response::Data(d));
    }

    pub fn untagged(&mut self, status: Status, code: Option<Code>, text: &str) {
        self.push(&Response::Untagged {
            status,
            code,
            text: text.into(),
        });
    }

    /// Sends what is buffered.
    pub async fn flush(&mut self) -> Result<(), ImapError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let ok = self.sink.send(&self.buf).await;
        self.buf.clear();
        if ok { Ok(()) } else { Err(ImapError::Gone) }
    }

    /// Sends when enough is buffered (long FETCH responses stream out).
    pub async fn flush_if_big(&mut self) -> Result<(), ImapError> {
        if self.buf.len() >= OUT_FLUSH_AT {
            self.flush().await
        } else {
            Ok(())
        }
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
    pub(super) account: Option<String>,
    pub(super) selected: Option<Selected>,
    /// ENABLE IMAP4rev2 (RFC 9051 6.3.1): UTF-8 names, ESEARCH, no \Recent.
    pub(super) rev2: bool,
    /// The AUTHENTICATE exchange waiting for the client's response.
    pub(super) sasl: Option<crate::sasl::Exchange>,
    /// The hub's deletion count of `account` at login: a larger one means
    /// the account was deleted under this session.
    pub(super) deletions_at_login: u64,
}

impl Session {
    pub fn new(ctx: Arc<ImapContext>, peer: SocketAddr) -> Self {
        Session {
            ctx,
            peer,
            role: Role::Imap,
            tls: false,
            state: State::NotAuthenticated,
            account: None,
            selected: None,
            rev2: false,
            sasl: None,
            deletions_at_login: 0,
        }
    }

    pub fn config(&self) -> &ImapConfig {
        &self.ctx.config
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

    pub fn state(&self) -> State {
        self.state
    }

    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions { utf8: self.rev2 }
    }

    pub fn encoder(&self) -> Encoder {
        Encoder { utf8: self.rev2 }
    }

    /// The one transition function: moves to `to`, keeping the session's
    /// data consistent with it.
    pub(super) fn transition(&mut self, to: State) {
        match to {
            State::NotAuthenticated | State::Logout => {
                self.selected = None;
                if to == State::NotAuthenticated {
                    self.account = None;
                }
            }
            State::Authenticated => {
                self.selected = None;
                if self.state == State::NotAuthenticated
                    && let Some(account) = &self.account
                {
                    self.deletions_at_login = self.ctx.hub.deletions(account);
                }
            }
            State::Selected => debug_assert!(self.selected.is_some()),
        }
        self.state = to;
    }

    /// True when the logged-in account was deleted since login.
    pub fn account_deleted(&self) -> bool {
        matches!(self.state, State::Authenticated | State::Selected)
            && self
                .account
                .as_deref()
                .is_some_and(|a| self.ctx.hub.deletions(a) != self.deletions_at_login)
    }

    pub(super) fn account(&self) -> Result<&str, ImapError> {
        self.account
            .as_deref()
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
        if self.state == State::NotAuthenticated {
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
                "BINARY",
                "STATUS=SIZE",
            ]);
        }
        caps.into_iter().map(str::to_string).collect()
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
        if !allowed(self.state, &kind) {
            let text = match self.state {
                State::NotAuthenticated => "Log in first",
                State::Authenticated => "Select a mailbox first",
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
        );
        // These report at once (NOOP, CHECK: RFC 9051 6.1.2) or may have
        // added to the selected mailbox (APPEND, COPY: EXISTS follows).
        let always_sync = matches!(
            kind,
            CommandKind::Noop
                | CommandKind::Check
                | CommandKind::Append { .. }
                | CommandKind::Copy { .. }
        );
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
                if self.state == State::Selected {
                    let dirty = self.selected.as_ref().is_some_and(Selected::is_dirty);
                    if dirty || always_sync {
                        self.sync(out, expunge_ok, false).await?;
                    }
                }
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
            C::Select { mailbox, read_only } => self.select(&mailbox, read_only, out).await,
            C::Create(m) => self.create(&m).await,
            C::Delete(m) => self.delete(&m).await,
            C::Rename(from, to) => self.rename(&from, &to).await,
            C::Subscribe(m) => self.subscribe(&m, true).await,
            C::Unsubscribe(m) => self.subscribe(&m, false).await,
            C::List(l) => self.list(&l, out).await,
            C::Lsub { reference, pattern } => self.lsub(&reference, &pattern, out).await,
            C::Status { mailbox, items } => self.status(&mailbox, &items, out).await,
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(&mailbox, flags, date, message).await,
            C::Close => self.close(true).await,
            C::Unselect => self.close(false).await,
            C::Expunge => self.expunge(None, out).await,
            C::UidExpunge(set) => self.expunge(Some(set), out).await,
            C::Search { uid, search } => self.search(tag, uid, search, out).await,
            C::Fetch { uid, set, atts } => self.fetch(uid, &set, &atts, out).await,
            C::Store {
                uid,
                set,
                op,
                silent,
                flags,
            } => self.store_flags(uid, &set, op, silent, flags, out).await,
            C::Copy { uid, set, mailbox } => self.copy(uid, &set, &mailbox, false, out).await,
            C::Move { uid, set, mailbox } => self.copy(uid, &set, &mailbox, true, out).await,
            C::Logout | C::Idle | C::Authenticate { .. } | C::StartTls => {
                Err(ImapError::Bad("unexpected command".into()))
            }
        }
    }

    /// Reports changes to the selected mailbox made elsewhere.
    pub async fn sync(
        &mut self,
        out: &mut Out<'_>,
        expunge_ok: bool,
        with_uid: bool,
    ) -> Result<(), ImapError> {
        let rev2 = self.rev2;
        let ctx = Arc::clone(&self.ctx);
        if let Some(sel) = self.selected.as_mut() {
            sel.sync(&ctx, out, expunge_ok, with_uid, rev2).await?;
        }
        Ok(())
    }

    /// Waits until the selected mailbox changes (IDLE, and the driver's
    /// wait for input); never resolves without a selected mailbox.
    pub async fn changed(&mut self) {
        match self.selected.as_mut() {
            Some(sel) => sel.changed().await,
            None => std::future::pending().await,
        }
    }
}

/// The BYE text when the account was deleted under a session.
pub const ACCOUNT_DELETED: &str = "Account deleted, closing connection";

/// Writes a tagged status response.
pub fn tagged(out: &mut Out<'_>, tag: &Tag, status: Status, code: Option<Code>, text: &str) {
    out.push(&Response::Tagged {
        tag: tag.clone(),
        status,
        code,
        text: text.into(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_table_refuses_commands_out_of_state() {
        let fetch = CommandKind::Fetch {
            uid: false,
            set: proto_imap::SeqSet::Saved,
            atts: vec![],
        };
        assert!(!allowed(State::NotAuthenticated, &fetch));
        assert!(!allowed(State::Authenticated, &fetch));
        assert!(allowed(State::Selected, &fetch));
        let login = CommandKind::Login {
            user: "a".into(),
            password: "b".into(),
        };
        assert!(allowed(State::NotAuthenticated, &login));
        assert!(!allowed(State::Selected, &login));
        assert!(allowed(State::NotAuthenticated, &CommandKind::Capability));
        assert!(!allowed(State::Selected, &CommandKind::Enable(vec![])));
    }

    #[test]
    fn recent_belongs_to_the_first_session_that_sees_it() {
        let t = RecentTracker::default();
        let mb = MailboxId(1);
        let uids = [Uid(1), Uid(2)];
        assert_eq!(t.claim(mb, &uids, false), uids.to_vec());
        assert_eq!(t.claim(mb, &uids, true), uids.to_vec());
        assert!(t.claim(mb, &uids, true).is_empty());
        assert_eq!(t.count_unclaimed(mb, &[Uid(2), Uid(3)]), 1);
    }
}
