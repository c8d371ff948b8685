//! The SMTP session state machine (RFC 5321 4.1.4 for command order).
//!
//! `Session::apply` takes one parsed command and returns what the driver must
//! do next: send a reply, read DATA, read a BDAT chunk, or close. The state
//! is an enum; a command refused for sequence or syntax leaves it unchanged,
//! while the end of DATA or of the last BDAT chunk ends the transaction
//! whatever the reply (RFC 5321 4.1.1.4, RFC 3030 2).

use std::net::SocketAddr;
use std::sync::Arc;

use directory::{Directory, DirectoryError, DirectoryFuture};
use proto_smtp::{Command, EnhancedCode, MailParams, Reply};
use store::Store;

use super::config::SmtpConfig;
use crate::budget::{MemoryBudget, Reservation};
use crate::metrics::Metrics;
use crate::net::Role;
use crate::presence::Presence;
use crate::tls::{Tls, TlsInfo};

/// What the server shares with every SMTP session.
pub struct SmtpContext {
    pub config: SmtpConfig,
    pub directory: Arc<dyn Directory>,
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    /// Every user's quota limits (RFC 9208).
    pub quota: Arc<crate::quota::QuotaBook>,
    /// Memory for message data in flight, shared by every session.
    pub memory: MemoryBudget,
    pub metrics: Arc<Metrics>,
    /// Certificates for STARTTLS and the implicit-TLS port; None: no TLS.
    pub tls: Option<Arc<Tls>>,
    /// Password checks and their throttling, shared with POP3 and IMAP.
    pub auth: Arc<crate::auth::Authenticator>,
    /// Messages each authenticated user sent in the last hour.
    pub send_rate: super::auth::SendRate,
    /// SRS for forwarded mail and for bounces coming back to it (issue
    /// 13); None: forwarded mail keeps its sender.
    pub srs: Option<Arc<delivery::srs::Srs>>,
    /// Where DSNs go ("delivered" reports of NOTIFY=SUCCESS); None: none
    /// are made.
    pub bounces: Option<Arc<crate::bounce::DirectoryBounces>>,
    /// SPF/DKIM/DMARC/ARC on inbound mail; None: no Authentication-Results.
    pub checks: Option<Arc<super::checks::Checks>>,
}

/// What the driver does after a command.
#[derive(Debug)]
pub enum Action {
    Reply(Reply),
    /// Send the 354 and read the message (RFC 5321 4.1.1.4).
    ReadData(Reply),
    /// Read a BDAT chunk of `size` octets (RFC 3030 2). With `refuse` set the
    /// chunk is read and discarded and that reply is sent instead.
    ReadChunk {
        size: u64,
        last: bool,
        refuse: Option<Reply>,
    },
    /// Send the reply and close the connection.
    Close(Reply),
    /// Send the 220 and start TLS (RFC 3207 4); the session then goes on
    /// over TLS from [`Session::tls_started`].
    StartTls(Reply),
}

/// The flavour of transaction the reverse-path command opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    Mail,
    /// RFC 821 SEND: to the terminal only.
    Send,
    /// SEND or MAIL: terminal if active, else mailbox.
    Soml,
    /// SEND and MAIL: terminal if active, and mailbox always.
    Saml,
}

/// One accepted RCPT, already resolved by the directory.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The address as the client gave it, qualified (for Received `for`).
    pub address: String,
    /// Local accounts whose mailbox gets a copy.
    pub mailbox: Vec<String>,
    /// Local accounts whose terminal gets the message (SEND family).
    pub terminal: Vec<String>,
    /// Remote addresses to queue.
    pub remote: Vec<String>,
    /// The remote addresses come from our own address (a forward, an
    /// alias, a list): they leave with an SRS reverse-path.
    pub forwarded: bool,
    /// RFC 3461 NOTIFY and ORCPT as received.
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// A mail transaction in progress (RFC 5321 3.3).
#[derive(Debug)]
pub struct Transaction {
    pub kind: TxKind,
    /// The reverse-path, qualified; empty for `<>`.
    pub sender: String,
    pub params: MailParams,
    pub recipients: Vec<Recipient>,
    /// BDAT chunks received so far (RFC 3030); None until the first BDAT.
    pub chunks: Option<Box<Chunks>>,
}

/// The body being assembled from BDAT chunks: canonicalised to CRLF as
/// it arrives (a CR at the end of one chunk may pair with an LF at the
/// start of the next) and spooled past the threshold (issue 19).
#[derive(Debug, Default)]
pub struct Chunks {
    pub data: crate::spool::SpoolWriter,
    pub crlf: proto_smtp::CrlfNormalizer,
    /// Octets received in all, stored or not.
    pub received: u64,
}

/// Session states (RFC 5321 4.1.4).
#[derive(Debug)]
pub enum State {
    /// Before HELO/EHLO: only the commands allowed at any time.
    Greeted,
    /// After HELO/EHLO, no transaction.
    Ready,
    /// After MAIL (or SEND/SOML/SAML), collecting RCPTs and data.
    Transaction(Transaction),
}

/// The client's identification from HELO/EHLO.
#[derive(Debug, Clone)]
pub struct Helo {
    pub name: String,
    pub extended: bool,
}

pub struct Session {
    pub(crate) ctx: Arc<SmtpContext>,
    pub(crate) peer: SocketAddr,
    /// The listener this session came in on.
    pub(crate) role: Role,
    pub(crate) state: State,
    pub(crate) helo: Option<Helo>,
    /// The authenticated account (the TLS/AUTH issue sets it).
    pub(crate) authenticated: Option<String>,
    /// What TLS negotiated, once the stream is TLS (Received says ESMTPS).
    pub(crate) tls: Option<TlsInfo>,
    /// The AUTH exchange waiting for the client's response.
    pub(crate) sasl: Option<crate::sasl::Exchange>,
    /// This session's share of the memory budget for message data.
    reservation: Reservation,
    /// The memory budget ran out while receiving the current message.
    pub(crate) out_of_memory: bool,
}

/// Shorthand for a reply with an enhanced status code (RFC 3463).
pub(crate) fn reply(code: u16, class: u8, subject: u16, detail: u16, text: &str) -> Reply {
    Reply::new(code, Some(EnhancedCode(class, subject, detail)), text)
}

pub(crate) fn bad_sequence(text: &str) -> Reply {
    reply(503, 5, 5, 1, text)
}

/// 451 4.3.0 for failures of our own (store, directory).
pub(crate) fn local_error() -> Reply {
    reply(
        451,
        4,
        3,
        0,
        "Requested action aborted: local error in processing",
    )
}

impl Session {
    pub fn new(ctx: Arc<SmtpContext>, peer: SocketAddr) -> Self {
        Session {
            reservation: ctx.memory.reservation(),
            ctx,
            peer,
            role: Role::Mta,
            state: State::Greeted,
            helo: None,
            authenticated: None,
            tls: None,
            sasl: None,
            out_of_memory: false,
        }
    }

    /// The session of a connection on a listener of `role`.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// TLS is up (implicit, or after STARTTLS). RFC 3207 4.2: the server
    /// discards any knowledge obtained from the client before it, such as
    /// the EHLO argument; the client starts again with EHLO.
    pub fn tls_started(&mut self, info: TlsInfo) {
        tracing::info!(version = info.version, cipher = %info.cipher, "TLS established");
        self.state = State::Greeted;
        self.helo = None;
        self.authenticated = None;
        self.end_message();
        self.tls = Some(info);
    }

    /// True when STARTTLS may be offered: not yet TLS, and certificates.
    fn starttls_offered(&self) -> bool {
        self.tls.is_none() && self.ctx.tls.is_some()
    }

    /// The 220 greeting (RFC 5321 4.2; the only reply without an enhanced
    /// code, RFC 2034 3).
    pub fn greeting(&self) -> Reply {
        Reply::new(
            220,
            None,
            format!("{} ESMTP mailroom", self.ctx.config.hostname),
        )
    }

    /// True while a transaction is open: graceful shutdown lets it finish.
    pub fn in_transaction(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    pub fn config(&self) -> &SmtpConfig {
        &self.ctx.config
    }

    /// Applies one command. The dispatch table: which commands each state
    /// allows is decided in the per-command functions, each of which
    /// returns 503 5.5.1 for a state it does not accept.
    pub async fn apply(&mut self, cmd: Command) -> Action {
        match cmd {
            Command::Helo(name) => Action::Reply(self.helo(name, false)),
            Command::Ehlo(name) => Action::Reply(self.helo(name, true)),
            Command::Mail(m) => Action::Reply(self.mail(TxKind::Mail, m).await),
            Command::Send(m) => Action::Reply(self.legacy(TxKind::Send, m).await),
            Command::Soml(m) => Action::Reply(self.legacy(TxKind::Soml, m).await),
            Command::Saml(m) => Action::Reply(self.legacy(TxKind::Saml, m).await),
            Command::Rcpt(r) => Action::Reply(self.rcpt(r).await),
            Command::Data => self.data_start(),
            Command::Bdat { size, last } => self.bdat_start(size, last),
            Command::Rset => {
                // RFC 5321 4.1.1.5: always 250, keeps the HELO.
                if self.helo.is_some() {
                    self.state = State::Ready;
                }
                self.end_message();
                Action::Reply(reply(250, 2, 0, 0, "Ok"))
            }
            Command::Vrfy(q) => Action::Reply(self.vrfy(q).await),
            Command::Expn(q) => Action::Reply(self.expn(q).await),
            Command::Help(topic) => Action::Reply(self.help(topic.as_deref())),
            Command::Noop => Action::Reply(reply(250, 2, 0, 0, "Ok")),
            Command::Quit => Action::Close(reply(
                221,
                2,
                0,
                0,
                &format!("{} closing connection", self.ctx.config.hostname),
            )),
            Command::StartTls => self.starttls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(&mechanism, initial_response.as_deref()).await,
        }
    }

    /// STARTTLS (RFC 3207 4): 220, then the handshake. A second one, over
    /// TLS already, is a bad sequence; so is one in a mail transaction,
    /// whose state the handshake would have to forget.
    fn starttls(&mut self) -> Action {
        if self.tls.is_some() {
            return Action::Reply(bad_sequence("TLS already active"));
        }
        if self.ctx.tls.is_none() {
            return Action::Reply(reply(454, 4, 7, 0, "TLS not available"));
        }
        if self.in_transaction() {
            return Action::Reply(bad_sequence("Mail transaction in progress"));
        }
        Action::StartTls(reply(220, 2, 0, 0, "Ready to start TLS"))
    }

    /// HELO/EHLO (RFC 5321 4.1.1.1): resets any transaction; EHLO lists the
    /// extensions.
    fn helo(&mut self, name: String, extended: bool) -> Reply {
        self.state = State::Ready;
        self.end_message();
        let greeting = format!(
            "{} Hello {} [{}]",
            self.ctx.config.hostname,
            name,
            self.peer.ip()
        );
        self.helo = Some(Helo { name, extended });
        if !extended {
            return Reply::new(250, None, greeting);
        }
        let mut lines = vec![
            greeting,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.ctx.config.max_message_size),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
            "CHUNKING".to_string(),
            "BINARYMIME".to_string(),
            "HELP".to_string(),
            // RFC 3461 3: RET, ENVID, NOTIFY and ORCPT are accepted.
            "DSN".to_string(),
        ];
        if self.ctx.config.legacy_send {
            // RFC 5321 F.6: the legacy commands are advertised as keywords.
            lines.extend(["SEND", "SOML", "SAML"].map(String::from));
        }
        if self.ctx.config.vrfy == super::config::VrfyPolicy::Disclose {
            lines.push("VRFY".to_string());
        }
        if self.ctx.config.expn {
            lines.push("EXPN".to_string());
        }
        // RFC 3207 4.2: not offered again once TLS is up.
        if self.starttls_offered() {
            lines.push("STARTTLS".to_string());
        }
        // RFC 4954 3, SPEC 5: only where a password may be sent.
        if self.auth_offered() && self.authenticated.is_none() {
            lines.push(format!(
                "AUTH {}",
                crate::sasl::mechanisms(&self.ctx.auth).join(" ")
            ));
        }
        // EHLO replies carry no enhanced code on the first line in common
        // practice; RFC 2034 excludes EHLO's 250 from the requirement.
        Reply::multi(250, None, lines)
    }

    /// What a message is admitted with (see [`crate::budget`]): the
    /// declared SIZE (RFC 1870) or, for a lone `BDAT n LAST`, its chunk,
    /// never more than `max_message_size` (a larger one is refused at MAIL
    /// or stops being stored at the limit); without either,
    /// `max_message_size` itself, so a message that ends up at the limit
    /// still fits what was reserved and is never refused after 354.
    pub(crate) fn admission_size(&self, declared: Option<u64>, whole: Option<u64>) -> usize {
        let max = self.ctx.config.max_message_size;
        let size = match declared.or(whole) {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(max),
            None => max,
        };
        // A spooled message holds the threshold in memory, plus the
        // receiver's buffer, a read and the file's buffer (issue 19).
        match &self.ctx.config.spool {
            Some(spool) => size.min(
                spool
                    .threshold()
                    .saturating_add(4 * crate::spool::SPOOL_BUFFER),
            ),
            None => size,
        }
    }

    /// A writer for the message about to arrive: spooled past the
    /// threshold when the server has a spool.
    pub(crate) fn spool_writer(&self) -> crate::spool::SpoolWriter {
        match &self.ctx.config.spool {
            Some(spool) => spool.writer(),
            None => crate::spool::SpoolWriter::in_memory(),
        }
    }

    /// Reserves `bytes` of the memory budget for the message about to be
    /// received, all at once; false (nothing held) when it does not fit.
    pub(crate) fn admit(&mut self, bytes: usize) -> bool {
        self.reservation.release();
        self.out_of_memory = false;
        if self.reservation.cover(bytes) {
            return true;
        }
        self.reservation.release();
        tracing::warn!(
            client = %self.peer,
            bytes,
            "message memory budget spent: refusing the message before its data"
        );
        false
    }

    /// Grows this session's memory reservation to `bytes` of message data;
    /// false (and the message marked) when the server-wide budget is spent.
    /// Admission reserved the whole message already, so this only fails
    /// for a client that sent more than the SIZE it declared (RFC 1870
    /// makes SIZE an estimate).
    pub fn reserve(&mut self, bytes: usize) -> bool {
        if self.reservation.cover(bytes) {
            return true;
        }
        if !self.out_of_memory {
            tracing::warn!(bytes, "message memory budget exhausted");
        }
        self.out_of_memory = true;
        false
    }

    /// Returns the message memory and forgets the out-of-memory mark.
    pub(crate) fn end_message(&mut self) {
        self.reservation.release();
        self.out_of_memory = false;
    }

    /// True when the client is trusted to submit unqualified senders and
    /// relay-free local mail (SPEC 7 `local_networks`).
    pub(crate) fn is_local_client(&self) -> bool {
        let ip = self.peer.ip();
        self.ctx
            .config
            .local_networks
            .iter()
            .any(|n| n.contains(&ip))
    }

    /// True when the client may relay to other domains (SPEC 1).
    pub(crate) fn may_relay(&self) -> bool {
        let ip = self.peer.ip();
        self.authenticated.is_some()
            || self
                .ctx
                .config
                .relay_networks
                .iter()
                .any(|n| n.contains(&ip))
    }

    /// Awaits a directory lookup (the backend runs it off the async
    /// workers) and logs a failure of our own; a bad address is the
    /// client's and is answered, not logged.
    pub(crate) async fn directory<T>(
        &self,
        lookup: DirectoryFuture<'_, T>,
    ) -> Result<T, DirectoryError> {
        let result = lookup.await;
        if let Err(e) = &result
            && !matches!(e, DirectoryError::InvalidAddress(_))
        {
            tracing::warn!(error = %e, "directory lookup failed");
        }
        result
    }
}
