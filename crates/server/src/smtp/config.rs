//! Settings of the SMTP server, filled from the `[smtp]` section of the
//! config file by the binary. Every limit here has a named default with
//! its RFC source.

use std::time::Duration;

use ipnet::IpNet;

use crate::conn::ConnectionLimits;

/// RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted.
pub const DEFAULT_MAX_RECIPIENTS: usize = 100;
/// SPEC 7: 25 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 26_214_400;
/// RFC 5321 4.5.3.2.7: the server waits at least 5 minutes for a command.
pub const RFC_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// RFC 5321 4.5.3.2.5/4.5.3.2.6: data blocks and the end of data are
/// waited for at least 3 and 10 minutes; the server side uses the larger.
pub const RFC_DATA_TIMEOUT: Duration = Duration::from_secs(600);
/// RFC 5321 6.3: a message with this many Received fields is looping.
pub use delivery::MAX_HOPS;
/// Hard errors (5xx) one session may collect before it gets 421 and is
/// closed: keeps a confused or hostile client from holding a slot forever.
pub const DEFAULT_MAX_ERRORS: u32 = 20;
/// Connections in total (SPEC 8).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Connections from one client address (SPEC 8).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 20;

/// Submission's per-user limit of messages an hour (issue 11: a stolen
/// password must not send without bound).
pub const DEFAULT_SUBMISSION_MESSAGES_PER_HOUR: usize = 500;
/// Submission's per-user limit of recipients per message.
pub const DEFAULT_SUBMISSION_RECIPIENTS: usize = 100;

/// Limits on what an authenticated user sends (`[submission]`).
#[derive(Debug, Clone, Copy)]
pub struct SubmissionLimits {
    pub max_messages_per_hour: usize,
    pub max_recipients: usize,
}

impl Default for SubmissionLimits {
    fn default() -> Self {
        SubmissionLimits {
            max_messages_per_hour: DEFAULT_SUBMISSION_MESSAGES_PER_HOUR,
            max_recipients: DEFAULT_SUBMISSION_RECIPIENTS,
        }
    }
}

/// How VRFY answers for a known user (SPEC 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VrfyPolicy {
    /// 250 `Full Name <user@domain>`.
    Disclose,
    /// 252: never confirm, for administrators who prefer privacy.
    Cannot,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub hostname: String,
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// May relay without AUTH (SPEC 1: empty by default, not even loopback).
    pub relay_networks: Vec<IpNet>,
    /// Unqualified senders from here are qualified with the primary domain.
    pub local_networks: Vec<IpNet>,
    /// SEND, SOML and SAML (RFC 821 3.4) enabled and advertised.
    pub legacy_send: bool,
    /// `smtp.legacy_send_from = "any"`: SEND from anyone. Otherwise
    /// (the default) only authenticated users and `local_networks` may
    /// SEND: an ALERT is a dialog on the user's screen, a spam channel
    /// if open to the internet.
    pub legacy_send_any: bool,
    pub vrfy: VrfyPolicy,
    pub expn: bool,
    pub max_errors: u32,
    /// Longest command line kept, CRLF included; longer lines are discarded
    /// as they arrive and answered 500 5.5.2. Commands without ESMTP
    /// parameters are held to RFC 5321's 512 octets regardless.
    pub max_line_length: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub connections: ConnectionLimits,
    /// AUTH on the MTA listener too (`smtp.mta_auth`; submission always).
    pub mta_auth: bool,
    pub submission: SubmissionLimits,
    /// Where messages above `[store] spool_threshold` go while they
    /// arrive (issue 19); None: held in memory whole.
    pub spool: Option<std::sync::Arc<crate::spool::Spool>>,
}

impl SmtpConfig {
    /// Defaults for `hostname`; what the quick-start config uses.
    pub fn new(hostname: impl Into<String>) -> Self {
        let loopback = ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        SmtpConfig {
            hostname: hostname.into(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            relay_networks: Vec::new(),
            local_networks: loopback,
            legacy_send: true,
            legacy_send_any: false,
            vrfy: VrfyPolicy::Disclose,
            expn: true,
            max_errors: DEFAULT_MAX_ERRORS,
            max_line_length: proto_smtp::MAX_COMMAND_LINE_WITH_PARAMS,
            command_timeout: RFC_COMMAND_TIMEOUT,
            data_timeout: RFC_DATA_TIMEOUT,
            connections: ConnectionLimits {
                max_total: DEFAULT_MAX_CONNECTIONS,
                max_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            },
            mta_auth: false,
            submission: SubmissionLimits::default(),
            spool: None,
        }
    }
}
