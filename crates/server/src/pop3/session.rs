//! The POP3 session state machine (RFC 1939 3): AUTHORIZATION until a
//! login succeeds, then TRANSACTION on the maildrop snapshot; QUIT there
//! enters UPDATE, which removes the messages marked deleted and ends the
//! session.
//!
//! `Session::apply` takes one parsed command and returns what the driver
//! must do next. A refused command leaves the state as it was, with one
//! exception from RFC 1939 7: a failed PASS forgets the USER name. The
//! table of which command each state allows is [`allowed`].

use std::net::SocketAddr;
use std::sync::Arc;

use proto_pop3::{Command, RespCode, Response};
use store::{Store, Uid};

use super::config::Pop3Config;
use super::maildrop::Maildrop;
use crate::auth::Authenticator;
use crate::net::Role;
use crate::tls::{Tls, TlsInfo};

/// The greeting of the seed dialogue (RFC 1939 4).
pub const GREETING: &str = "mailroom POP3 server ready";

/// What the server shares with every POP3 session.
pub struct Pop3Context {
    pub config: Pop3Config,
    pub store: Arc<dyn Store>,
    /// The login shared by every protocol, with its throttling.
    pub auth: Arc<Authenticator>,
    /// Certificates for STLS and the POP3S port; None: no TLS.
    pub tls: Option<Arc<Tls>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// What the driver does after a command.
#[derive(Debug)]
pub enum Action {
    /// One status line.
    Reply(Response),
    /// A positive status line and a multi-line body of short lines
    /// (LIST, UIDL, CAPA, AUTH).
    Lines(Response, Vec<String>),
    /// A positive status line and the first `len` octets of `body`,
    /// dot-stuffed (RETR, TOP). With `seen`, the message was retrieved
    /// by RETR: once it is written, \Seen is due.
    Message {
        status: Response,
        body: Vec<u8>,
        len: usize,
        seen: Option<Uid>,
    },
    /// A positive status line, then a big message read from the store a
    /// chunk at a time and dot-stuffed as it goes (issue 19), all of it
    /// (RETR) or TOP's `lines`. `seen` as for `Message`.
    Stream {
        status: Response,
        body: store::BodyId,
        lines: Option<u64>,
        seen: Option<Uid>,
    },
    /// A SASL challenge `+ base64` (RFC 5034 4): the next line is the
    /// client's response, for [`Session::sasl_response`].
    Continue(String),
    /// Send the status line and close the connection.
    Close(Response),
    /// Send the `+OK` and start TLS (RFC 2595 4); the session then goes on
    /// over TLS from [`Session::tls_started`].
    StartTls(Response),
}

/// The AUTHORIZATION state's memory.
#[derive(Debug, Default)]
pub struct Authorization {
    /// The name given by USER, for the PASS that follows.
    pub user: Option<String>,
    /// The SASL exchange whose client response is awaited.
    pub sasl: Option<crate::sasl::Exchange>,
}

/// Session states (RFC 1939 3). UPDATE lasts only as long as QUIT's
/// expunge, inside [`Session::apply`], so it is not a resting state.
pub enum State {
    Authorization(Authorization),
    Transaction(Box<Maildrop>),
}

pub struct Session {
    pub(crate) ctx: Arc<Pop3Context>,
    pub(crate) peer: SocketAddr,
    pub(crate) state: State,
    /// The listener this session came in on.
    pub(crate) role: Role,
    /// True once the stream is TLS (STLS or the POP3S port).
    pub(crate) tls: bool,
}

/// The states a command is valid in (RFC 1939 4-7, RFC 2449 5, RFC 5034 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Authorization,
    Transaction,
    Both,
}

fn allowed(cmd: &Command) -> Allowed {
    match cmd {
        Command::User(_) | Command::Pass(_) | Command::Auth(_) | Command::Stls => {
            Allowed::Authorization
        }
        Command::Stat
        | Command::List(_)
        | Command::Retr(_)
        | Command::Dele(_)
        | Command::Noop
        | Command::Rset
        | Command::Top { .. }
        | Command::Uidl(_) => Allowed::Transaction,
        Command::Quit | Command::Capa => Allowed::Both,
    }
}

/// `-ERR [SYS/TEMP]` for failures of our own (store, directory).
pub(crate) fn temporary_failure() -> Response {
    Response::err_code(
        RespCode::SysTemp,
        "Temporary failure of the mail store, try again later",
    )
}

impl Session {
    pub fn new(ctx: Arc<Pop3Context>, peer: SocketAddr) -> Self {
        Session {
            ctx,
            peer,
            state: State::Authorization(Authorization::default()),
            role: Role::Pop3,
            tls: false,
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

    /// TLS is up (the POP3S port, or after STLS). RFC 2595 4: the server
    /// discards what it learnt from the client before, the USER name
    /// included; the client asks CAPA again.
    pub fn tls_started(&mut self, info: TlsInfo) {
        tracing::info!(version = info.version, cipher = %info.cipher, "TLS established");
        self.state = State::Authorization(Authorization::default());
        self.tls = true;
    }

    /// STLS (RFC 2595 4): only in AUTHORIZATION (the state table), only
    /// once.
    fn stls(&self) -> Action {
        if self.tls {
            return Action::Reply(Response::err("Already using TLS"));
        }
        if self.ctx.tls.is_none() {
            return Action::Reply(Response::err("TLS is not available"));
        }
        Action::StartTls(Response::ok("Begin TLS negotiation"))
    }

    pub fn greeting(&self) -> Response {
        Response::ok(GREETING)
    }

    pub fn config(&self) -> &Pop3Config {
        &self.ctx.config
    }

    /// True when the next line is a SASL client response, not a command.
    pub fn awaiting_sasl(&self) -> bool {
        matches!(&self.state, State::Authorization(a) if a.sasl.is_some())
    }

    /// True in TRANSACTION.
    pub fn logged_in(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    /// Plaintext passwords are taken only over TLS or from the local
    /// networks (SPEC 5).
    pub(crate) fn plaintext_allowed(&self) -> bool {
        let ip = self.peer.ip();
        self.tls
            || self
                .ctx
                .config
                .plaintext_networks
                .iter()
                .any(|n| n.contains(&ip))
    }

    /// Applies one command.
    pub async fn apply(&mut self, cmd: Command) -> Action {
        let state_ok = matches!(
            (allowed(&cmd), &self.state),
            (Allowed::Both, _)
                | (Allowed::Authorization, State::Authorization(_))
                | (Allowed::Transaction, State::Transaction(_))
        );
        // The account was deleted under this session: say so plainly and
        // close (RFC 3206 4: SYS/PERM, retrying will not help). UPDATE is
        // skipped; there is no maildrop left to update.
        if let Some(m) = self.maildrop() {
            m.poll_feed();
            if m.account_deleted {
                tracing::info!(account = %m.account, "pop3: account deleted; closing session");
                return Action::Close(Response::err_code(
                    RespCode::SysPerm,
                    "Account deleted, closing connection",
                ));
            }
        }
        if !state_ok {
            let text = if self.logged_in() {
                "Already logged in"
            } else {
                "Not logged in: use USER/PASS or AUTH first"
            };
            return Action::Reply(Response::err(text));
        }
        match cmd {
            Command::User(name) => Action::Reply(self.user(name)),
            Command::Pass(password) => Action::Reply(self.pass(password).await),
            Command::Auth(start) => self.auth(start).await,
            Command::Stls => self.stls(),
            Command::Capa => {
                Action::Lines(Response::ok("Capability list follows"), self.capabilities())
            }
            Command::Quit => self.quit().await,
            Command::Stat => Action::Reply(self.stat()),
            Command::List(n) => self.list(n),
            Command::Uidl(n) => self.uidl(n),
            Command::Retr(n) => self.retr(n).await,
            Command::Top { msg, lines } => self.top(msg, lines).await,
            Command::Dele(n) => Action::Reply(self.dele(n)),
            Command::Rset => Action::Reply(self.rset()),
            Command::Noop => Action::Reply(Response::ok("")),
        }
    }

    /// CAPA (RFC 2449 5). USER and SASL are listed only where a plaintext
    /// password would be accepted (RFC 2449 6.8, RFC 2595 4).
    fn capabilities(&self) -> Vec<String> {
        let mut caps = vec![
            "TOP".to_string(),
            "UIDL".to_string(),
            "RESP-CODES".to_string(),
            "AUTH-RESP-CODE".to_string(),
            "PIPELINING".to_string(),
        ];
        if !self.logged_in() && self.plaintext_allowed() {
            caps.push("USER".to_string());
            caps.push(format!(
                "SASL {}",
                crate::sasl::mechanisms(&self.ctx.auth).join(" ")
            ));
        }
        // RFC 2595 4: STLS only before TLS, and only before login.
        if !self.logged_in() && !self.tls && self.ctx.tls.is_some() {
            caps.push("STLS".to_string());
        }
        caps.push("IMPLEMENTATION mailroom".to_string());
        caps
    }

    /// The maildrop, in TRANSACTION.
    pub(crate) fn maildrop(&mut self) -> Option<&mut Maildrop> {
        match &mut self.state {
            State::Transaction(m) => Some(m),
            State::Authorization(_) => None,
        }
    }

    /// Starts storing \Seen for what RETR sent since the last call. The
    /// driver calls it once the output is written, before it waits for
    /// input.
    pub async fn store_seen(&mut self) {
        let store = Arc::clone(&self.ctx.store);
        if let Some(m) = self.maildrop()
            && let Err(e) = m.store_seen(&store).await
        {
            tracing::warn!(error = %e, "pop3: storing \\Seen failed");
        }
    }

    /// Stores every pending \Seen and waits until it is durable.
    pub async fn settle_seen(&mut self) {
        self.store_seen().await;
        self.wait_seen().await;
    }

    /// Waits for the \Seen write in flight, starting none: at the end of a
    /// session whose last output may not have reached the client.
    pub async fn wait_seen(&mut self) {
        if let Some(m) = self.maildrop()
            && let Err(e) = m.settle_seen().await
        {
            tracing::warn!(error = %e, "pop3: storing \\Seen failed");
        }
    }

    /// Notes that the message RETR sent has been written.
    pub fn retrieved(&mut self, uid: Uid) {
        if let Some(m) = self.maildrop() {
            m.retrieved(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Kit, cmd};

    #[tokio::test]
    async fn greeting_is_the_seed_text() {
        let kit = Kit::new();
        assert_eq!(
            kit.session().greeting().to_bytes(),
            b"+OK mailroom POP3 server ready\r\n"
        );
    }

    #[tokio::test]
    async fn transaction_commands_before_login_are_err() {
        let kit = Kit::new();
        let mut s = kit.session();
        for line in [
            "STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 0", "UIDL",
        ] {
            let r = cmd(&mut s, line).await;
            assert!(!r.status.ok, "{line}: {r:?}");
            assert!(r.status.text.contains("Not logged in"), "{line}");
        }
        assert!(!s.logged_in());
    }

    #[tokio::test]
    async fn login_commands_after_login_are_err() {
        let kit = Kit::new();
        let mut s = kit.logged_in("alice").await;
        for line in ["USER alice", "PASS pw", "AUTH PLAIN", "STLS"] {
            let r = cmd(&mut s, line).await;
            assert_eq!(r.status.text, "Already logged in", "{line}");
        }
        assert!(s.logged_in());
    }

    #[tokio::test]
    async fn capa_lists_rfc_2449_capabilities() {
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "CAPA").await;
        assert!(r.status.ok);
        for cap in [
            "TOP",
            "UIDL",
            "USER",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "SASL PLAIN LOGIN SCRAM-SHA-256",
            "IMPLEMENTATION mailroom",
        ] {
            assert!(r.lines.iter().any(|l| l == cap), "{cap} in {:?}", r.lines);
        }
        assert!(!r.lines.iter().any(|l| l == "STLS"));
    }

    #[tokio::test]
    async fn capa_hides_plaintext_logins_from_remote_clients_without_tls() {
        let kit = Kit::new();
        let mut s = kit.session_from([198, 51, 100, 7]);
        let r = cmd(&mut s, "CAPA").await;
        assert!(!r.lines.iter().any(|l| l == "USER" || l.starts_with("SASL")));
    }

    #[tokio::test]
    async fn stls_without_certificates_is_err_and_the_session_goes_on() {
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "STLS").await;
        assert!(!r.status.ok);
        assert!(cmd(&mut s, "USER alice").await.status.ok);
    }

    #[tokio::test]
    async fn noop_is_ok_in_transaction() {
        let kit = Kit::new();
        let mut s = kit.logged_in("alice").await;
        assert!(cmd(&mut s, "NOOP").await.status.ok);
    }
}
