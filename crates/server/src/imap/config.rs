//! Settings of the IMAP server, filled from the `[imap]` section of the
//! config file by the binary. Every limit has a named default with its
//! source.

use std::time::Duration;

use ipnet::IpNet;

use crate::conn::ConnectionLimits;

/// RFC 9051 5.4: the inactivity autologout timer is at least 30 minutes.
pub const RFC_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Largest APPEND literal by default: SPEC 7's message size (25 MiB).
pub const DEFAULT_MAX_LITERAL_SIZE: usize = 26_214_400;
/// BAD responses one session may collect before it is closed with BYE:
/// keeps a confused or hostile client from holding a slot forever.
pub const DEFAULT_MAX_ERRORS: u32 = 50;
/// Connections in total and per client address (SPEC 8).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 20;
/// Mailboxes per user by default (issue 9: one user with 100 000 made each
/// LIST a denial of service); CREATE past it is `NO [LIMIT]` (RFC 5530).
pub const DEFAULT_MAX_MAILBOXES: u64 = 10_000;
/// How often an idling session hears `* OK Still here` (issue 17):
/// NAT boxes and firewalls drop connections idle for minutes (RFC 5382
/// asks for two hours; many keep far less), and IDLE may last 29 minutes.
pub const DEFAULT_IDLE_KEEPALIVE: Duration = Duration::from_secs(120);
/// Longest terminal message (SEND/SOML/SAML, RFC 821 3.4) shown as an
/// ALERT, in characters (issue 15: one line a person reads in a dialog).
pub const DEFAULT_TERMINAL_MAX_CHARS: usize = 200;
/// Changes a NOTIFY session (RFC 5465) may have waiting before it is
/// told `[NOTIFICATIONOVERFLOW]` (RFC 5465 5.8) and NOTIFY ends: bounds
/// the memory of a session that does not read while its account is busy.
pub const DEFAULT_NOTIFY_QUEUE: usize = 1024;
/// Largest METADATA value (RFC 5464 4.3: past it `NO [METADATA MAXSIZE
/// n]`). Below the framer's literal limit (64 KiB), so that the client
/// hears this code rather than a refused literal; entries are small
/// settings (Delta Chat keeps a push token, clients a comment).
pub const DEFAULT_METADATA_MAX_SIZE: usize = 16 * 1024;
/// Most METADATA entries on the server or on one mailbox, per user (RFC
/// 5464 4.3: past it `NO [METADATA TOOMANY]`).
pub const DEFAULT_METADATA_MAX_ENTRIES: usize = 100;
/// How long a write to a client may block before the session is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct ImapConfig {
    pub hostname: String,
    /// Inactivity autologout (RFC 9051 5.4), also while idling.
    pub idle_timeout: Duration,
    /// `* OK` this often during IDLE; zero: never.
    pub idle_keepalive: Duration,
    /// Largest APPEND literal.
    pub max_literal_size: usize,
    pub max_errors: u32,
    /// Mailboxes one user may have.
    pub max_mailboxes: u64,
    pub connections: ConnectionLimits,
    /// `imap.terminal_max_chars`: the longest ALERT text of a terminal
    /// message.
    pub terminal_max_chars: usize,
    /// Plaintext logins are accepted from these networks only (SPEC 5,
    /// SPEC 7 `local_networks`) until TLS arrives; elsewhere LOGIN is
    /// disabled (RFC 9051 6.2.3: LOGINDISABLED, `NO [PRIVACYREQUIRED]`).
    pub plaintext_networks: Vec<IpNet>,
    /// Queue of one NOTIFY session ([`DEFAULT_NOTIFY_QUEUE`]).
    pub notify_queue: usize,
    /// METADATA limits ([`DEFAULT_METADATA_MAX_SIZE`],
    /// [`DEFAULT_METADATA_MAX_ENTRIES`]).
    pub metadata_max_size: usize,
    pub metadata_max_entries: usize,
    /// Where APPEND literals above `[store] spool_threshold` go while they
    /// arrive (issue 19); None: held in memory.
    pub spool: Option<std::sync::Arc<crate::spool::Spool>>,
    /// `imap.max_inflight_literals`: memory for APPEND literals of every
    /// session together; an APPEND that does not fit is refused with
    /// `NO [UNAVAILABLE]` and the connection goes on.
    pub literals: crate::budget::MemoryBudget,
}

impl ImapConfig {
    pub fn new(hostname: impl Into<String>) -> Self {
        ImapConfig {
            hostname: hostname.into(),
            idle_timeout: RFC_IDLE_TIMEOUT,
            idle_keepalive: DEFAULT_IDLE_KEEPALIVE,
            max_literal_size: DEFAULT_MAX_LITERAL_SIZE,
            max_errors: DEFAULT_MAX_ERRORS,
            max_mailboxes: DEFAULT_MAX_MAILBOXES,
            connections: ConnectionLimits {
                max_total: DEFAULT_MAX_CONNECTIONS,
                max_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            },
            terminal_max_chars: DEFAULT_TERMINAL_MAX_CHARS,
            plaintext_networks: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            notify_queue: DEFAULT_NOTIFY_QUEUE,
            metadata_max_size: DEFAULT_METADATA_MAX_SIZE,
            metadata_max_entries: DEFAULT_METADATA_MAX_ENTRIES,
            spool: None,
            literals: crate::budget::MemoryBudget::new(crate::budget::DEFAULT_INFLIGHT_BYTES),
        }
    }
}
