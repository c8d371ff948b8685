//! The TOML config file (SPEC 7). Every key has a default, so an empty file
//! (or none at all) gives the quick-start setup; unknown keys and bad
//! values stop the start with an error that names the key. The key names
//! are a public interface: keep them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use server::smtp::config as smtp_defaults;

/// Read when `--config` is not given and the file exists (SPEC 7).
pub const DEFAULT_CONFIG_FILE: &str = "mailroom.toml";
/// How long SIGTERM waits for transactions in flight before exiting.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub hostname: Option<String>,
    pub domains: Vec<String>,
    pub data_dir: PathBuf,
    pub local_networks: Vec<String>,
    /// domain -> address that takes mail for unknown local parts.
    pub catch_all: BTreeMap<String, String>,
    pub shutdown_timeout: u64,
    pub smtp: SmtpSection,
    pub imap: ImapSection,
    pub pop3: Pop3Section,
    pub admin: AdminSection,
    pub tls: TlsSection,
    pub submission: SubmissionSection,
    pub quota: QuotaSection,
    pub relay: RelaySection,
    pub checks: ChecksSection,
    pub auth: AuthSection,
    pub store: StoreSection,
    pub log: LogSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSection {
    pub listen: Vec<String>,
    pub submission: Vec<String>,
    pub submissions: Vec<String>,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub relay_networks: Vec<String>,
    pub legacy_send: bool,
    /// Who may use SEND (issue 15): "authenticated_or_local" or "any".
    pub legacy_send_from: String,
    pub vrfy: String,
    pub expn: bool,
    pub max_errors: u32,
    /// Octets of message data all sessions together may hold in memory;
    /// past it a message is refused with 452 4.3.1 (try again later).
    pub max_inflight_data: usize,
    /// Longest command line in octets, CRLF included (RFC 5321 4.5.3.1.4:
    /// 512, more for ESMTP parameters); at least 512.
    pub max_line_length: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Seconds; RFC 5321 4.5.3.2.7 asks for at least 300.
    pub command_timeout: u64,
    /// Seconds; RFC 5321 4.5.3.2.6 asks for at least 600.
    pub data_timeout: u64,
    /// Offer AUTH on the MTA listener too (submission always offers it).
    pub mta_auth: bool,
}

/// `[relay]`: outbound delivery (SPEC 7, issue 12).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    /// "host:port": everything through one relay instead of MX routing.
    pub smarthost: String,
    /// "" (opportunistic STARTTLS), "starttls" or "implicit": TLS to the
    /// smarthost, required and verified unless "".
    pub smarthost_tls: String,
    /// "user:password" for AUTH PLAIN at the smarthost (TLS is then
    /// required and verified); never logged.
    pub smarthost_auth: Secret,
    /// PEM trust anchors for verified TLS; empty: the system's bundle.
    pub ca_file: PathBuf,
    /// Domains whose mail goes only over STARTTLS with a verified
    /// certificate; a failure defers.
    pub require_tls: Vec<String>,
    /// "IP:PORT" of the DNS server to ask; empty: the system's.
    pub resolver: String,
    /// The remote SMTP port (25; tests point it elsewhere).
    pub port: u16,
    /// Our name in EHLO; empty: `hostname`.
    pub helo_name: String,
    /// The local IP outbound connections come from; empty: any.
    pub source_address: String,
    /// Seconds before the first retry, doubling up to `retry_max`.
    pub retry_initial: u64,
    pub retry_max: u64,
    /// Seconds a message may wait in the queue before it fails.
    pub max_queue_lifetime: u64,
    /// Seconds a delivery run's claim holds its queue rows: on several
    /// nodes, how soon another node sends the rows of one that died.
    pub queue_lease: u64,
    /// Destinations served at once.
    pub max_connections: usize,
    /// Connections to one destination at once.
    pub max_connections_per_domain: usize,
    /// Seconds a message waits before a recipient that asked for it
    /// (RFC 3461 NOTIFY=DELAY) gets a delay warning.
    pub delay_warning: u64,
    /// The HMAC key of SRS addresses for forwarded mail; empty: one is
    /// generated into the data directory (`srs.key`, 0600). Never logged.
    pub srs_secret: Secret,
}

impl Default for RelaySection {
    fn default() -> Self {
        RelaySection {
            smarthost: String::new(),
            smarthost_tls: String::new(),
            smarthost_auth: Secret::default(),
            ca_file: PathBuf::new(),
            require_tls: Vec::new(),
            resolver: String::new(),
            port: DEFAULT_RELAY_PORT,
            helo_name: String::new(),
            source_address: String::new(),
            retry_initial: DEFAULT_RETRY_INITIAL_SECS,
            retry_max: DEFAULT_RETRY_MAX_SECS,
            max_queue_lifetime: DEFAULT_MAX_QUEUE_LIFETIME_SECS,
            queue_lease: delivery::worker::LEASE.as_secs(),
            max_connections: delivery::worker::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_domain: delivery::worker::DEFAULT_MAX_CONNECTIONS_PER_DOMAIN,
            delay_warning: delivery::worker::DEFAULT_DELAY_WARNING.as_secs(),
            srs_secret: Secret::default(),
        }
    }
}

/// A config value that must never be printed (a password).
#[derive(Default, Deserialize, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

/// The system's CA bundle (Debian's ca-certificates), for verified TLS.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// RFC 5321 4.5.4.1: SMTP's port.
pub const DEFAULT_RELAY_PORT: u16 = 25;
/// RFC 5321 4.5.4.1: retry after at least 30 minutes is suggested; SPEC 7
/// starts at 5 minutes, doubling.
pub const DEFAULT_RETRY_INITIAL_SECS: u64 = 300;
/// SPEC 7: the backoff stops doubling at 4 hours.
pub const DEFAULT_RETRY_MAX_SECS: u64 = 14_400;
/// RFC 5321 4.5.4.1: give up after 4-5 days; SPEC 7 says 5.
pub const DEFAULT_MAX_QUEUE_LIFETIME_SECS: u64 = 432_000;

/// `[checks]`: SPF, DKIM, DMARC and ARC on inbound mail (issue 16).
/// Results are always recorded; every refusal is off by default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksSection {
    /// false: no checks and no Authentication-Results (a filter in front
    /// of mailroom does them).
    pub enabled: bool,
    pub spf_reject: bool,
    pub dmarc_reject: bool,
    pub dmarc_quarantine: bool,
    pub tempfail_on_dns_error: bool,
    pub null_mx_reject: bool,
    pub trusted_arc_sealers: Vec<String>,
    /// Seconds all checks of one message may take (RFC 7208 4.6.4: SPF at
    /// least 20).
    pub timeout: u64,
}

impl Default for ChecksSection {
    fn default() -> Self {
        ChecksSection {
            enabled: true,
            spf_reject: false,
            dmarc_reject: false,
            dmarc_quarantine: false,
            tempfail_on_dns_error: false,
            null_mx_reject: false,
            trusted_arc_sealers: Vec::new(),
            timeout: server::smtp::checks::DEFAULT_TIMEOUT.as_secs(),
        }
    }
}

/// `[quota]`: every user's limits unless `mailroom user quota` set their
/// own (RFC 9208 STORAGE in octets and MESSAGE; 0 is unlimited).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSection {
    pub storage: u64,
    pub messages: u64,
}

/// `[submission]`: what one authenticated user may send (issue 11).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionSection {
    /// Messages a user may send per hour; past it 450 4.7.1.
    pub max_messages_per_hour: usize,
    /// Recipients of one message from a user; past it 450 4.7.1.
    pub max_recipients: usize,
}

impl Default for SubmissionSection {
    fn default() -> Self {
        let d = smtp_defaults::SubmissionLimits::default();
        SubmissionSection {
            max_messages_per_hour: d.max_messages_per_hour,
            max_recipients: d.max_recipients,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Section {
    pub listen: Vec<String>,
    pub tls_listen: Vec<String>,
    /// Seconds of inactivity before the session closes (RFC 1939 3: at
    /// least 10 minutes).
    pub idle_timeout: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Unknown, malformed or over-long commands a session may send before
    /// it is closed.
    pub max_bad_commands: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapSection {
    pub listen: Vec<String>,
    pub tls_listen: Vec<String>,
    /// Seconds of inactivity before the session closes (RFC 9051 5.4: at
    /// least 30 minutes).
    pub idle_timeout: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Largest literal (APPEND message, long argument) accepted, in octets.
    pub max_literal_size: usize,
    /// Octets of literal data all IMAP sessions together may hold in
    /// memory (issue 19, like `smtp.max_inflight_data`); an APPEND past it
    /// is refused `NO [LIMIT]` before its literal is sent.
    pub max_inflight_literals: usize,
    /// Mailboxes one user may have; CREATE past it is `NO [LIMIT]`.
    pub max_mailboxes: u64,
    /// Seconds between `* OK Still here` lines during IDLE; 0: none.
    pub idle_keepalive: u64,
    /// Longest ALERT text of a terminal message (SEND/SOML/SAML), in
    /// characters.
    pub terminal_max_chars: usize,
    /// Changes a NOTIFY session may have waiting (RFC 5465 5.8).
    pub notify_queue: usize,
    /// Largest METADATA value, in octets (RFC 5464 4.3: MAXSIZE).
    pub metadata_max_size: usize,
    /// Most METADATA entries on the server or on one mailbox, per user
    /// (RFC 5464 4.3: TOOMANY).
    pub metadata_max_entries: usize,
}

/// RFC 1939 3: the autologout timer is at least 10 minutes.
pub const POP3_IDLE_TIMEOUT_SECS: u64 = 600;
/// RFC 9051 5.4: the autologout timer is at least 30 minutes.
pub const IMAP_IDLE_TIMEOUT_SECS: u64 = 1800;

impl Default for Pop3Section {
    fn default() -> Self {
        Pop3Section {
            listen: vec!["127.0.0.1:1110".to_string()],
            tls_listen: vec!["127.0.0.1:1995".to_string()],
            idle_timeout: POP3_IDLE_TIMEOUT_SECS,
            max_connections: smtp_defaults::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: smtp_defaults::DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_bad_commands: server::pop3::config::DEFAULT_MAX_BAD_COMMANDS,
        }
    }
}

impl Default for ImapSection {
    fn default() -> Self {
        ImapSection {
            listen: vec!["127.0.0.1:1143".to_string()],
            tls_listen: vec!["127.0.0.1:1993".to_string()],
            idle_timeout: IMAP_IDLE_TIMEOUT_SECS,
            max_connections: smtp_defaults::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: smtp_defaults::DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_literal_size: smtp_defaults::DEFAULT_MAX_MESSAGE_SIZE,
            max_inflight_literals: server::budget::DEFAULT_INFLIGHT_BYTES,
            max_mailboxes: server::imap::config::DEFAULT_MAX_MAILBOXES,
            idle_keepalive: server::imap::config::DEFAULT_IDLE_KEEPALIVE.as_secs(),
            terminal_max_chars: server::imap::config::DEFAULT_TERMINAL_MAX_CHARS,
            notify_queue: server::imap::config::DEFAULT_NOTIFY_QUEUE,
            metadata_max_size: server::imap::config::DEFAULT_METADATA_MAX_SIZE,
            metadata_max_entries: server::imap::config::DEFAULT_METADATA_MAX_ENTRIES,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    pub listen: String,
    /// `/health` answers 503 below this many free bytes on the data
    /// directory's file system.
    pub min_free_disk: u64,
}

/// Default `admin.min_free_disk`: 100 MiB, room for a few large messages
/// and SQLite's checkpoints before writes start failing with 452 4.3.1.
pub const DEFAULT_MIN_FREE_DISK: u64 = 100 * 1024 * 1024;

/// `[tls]` (SPEC 5, SPEC 7): the certificate every TLS listener serves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM chain; empty: a self-signed one made on first start in the
    /// data directory (the quick start).
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// Seconds a client has to complete a TLS handshake.
    pub handshake_timeout: u64,
    /// Certificates for other names, chosen by SNI.
    pub sni: Vec<SniEntry>,
}

/// One `[[tls.sni]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniEntry {
    pub hostnames: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            handshake_timeout: server::tls::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(),
            sni: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// argon2id memory cost in KiB (new and changed passwords).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Password checks at once, each holding `argon2_memory_kib`.
    pub max_concurrent_hashes: usize,
    /// Seconds: the longest delay before a failed login is answered, per
    /// client address (after 3 failures, 2^(n-3) s).
    pub max_delay: u64,
    /// Failures from one address within 15 minutes after which its logins
    /// are refused for `lockout_secs`.
    pub lockout_failures: u32,
    pub lockout_secs: u64,
    /// PBKDF2 iterations of new SCRAM-SHA-256 keys (RFC 7677 4: at least
    /// 4096).
    pub scram_iterations: u32,
    /// Offer SCRAM-SHA-256 and write its keys with passwords.
    pub scram: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Which backend holds the store and the directory: "sqlite" (files
    /// in the data directory) or "postgres" (not built yet, issue 21).
    pub backend: String,
    /// The PostgreSQL database (`postgres://user:password@host:port/db`).
    pub url: Secret,
    /// Most deliveries one commit (one fsync) may carry.
    pub group_commit_max: usize,
    /// PostgreSQL: connections in this node's pool.
    pub pool_size: usize,
    /// PostgreSQL: seconds a statement may run before it is cancelled
    /// (the operation fails temporary: 451 4.3.0, `NO [UNAVAILABLE]`).
    pub statement_timeout: u64,
    /// PostgreSQL: this node's name in the queue's claims; empty means
    /// the host name.
    pub node_id: String,
    /// PostgreSQL: seconds this node's presence rows (its logged-in
    /// accounts, for SEND/SOML/SAML from other nodes) count without a
    /// renewal, so a dead node's sessions stop counting after this.
    pub presence_lease: u64,
    /// Seconds a tombstone (an expunged UID, for QRESYNC) is kept; 0
    /// keeps them forever.
    pub tombstone_retention: u64,
    /// Messages (SMTP DATA/BDAT, IMAP APPEND) larger than this many
    /// octets go to `<data_dir>/spool` while they arrive (issue 19).
    pub spool_threshold: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter: "info", "debug", "mailroom=debug,info", ...
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: None,
            domains: vec!["localhost".to_string()],
            data_dir: PathBuf::from("mailroom-data"),
            local_networks: vec!["127.0.0.0/8".to_string(), "::1/128".to_string()],
            catch_all: BTreeMap::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            smtp: SmtpSection::default(),
            imap: ImapSection::default(),
            pop3: Pop3Section::default(),
            admin: AdminSection::default(),
            tls: TlsSection::default(),
            submission: SubmissionSection::default(),
            quota: QuotaSection::default(),
            relay: RelaySection::default(),
            checks: ChecksSection::default(),
            auth: AuthSection::default(),
            store: StoreSection::default(),
            log: LogSection::default(),
        }
    }
}

impl Default for SmtpSection {
    fn default() -> Self {
        SmtpSection {
            listen: vec!["127.0.0.1:2525".to_string()],
            submission: vec!["127.0.0.1:2587".to_string()],
            submissions: vec!["127.0.0.1:2465".to_string()],
            max_message_size: smtp_defaults::DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: smtp_defaults::DEFAULT_MAX_RECIPIENTS,
            relay_networks: Vec::new(),
            legacy_send: true,
            legacy_send_from: "authenticated_or_local".to_string(),
            vrfy: "disclose".to_string(),
            expn: true,
            max_errors: smtp_defaults::DEFAULT_MAX_ERRORS,
            max_line_length: proto_smtp::MAX_COMMAND_LINE_WITH_PARAMS,
            max_inflight_data: server::budget::DEFAULT_INFLIGHT_BYTES,
            max_connections: smtp_defaults::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: smtp_defaults::DEFAULT_MAX_CONNECTIONS_PER_IP,
            command_timeout: smtp_defaults::RFC_COMMAND_TIMEOUT.as_secs(),
            data_timeout: smtp_defaults::RFC_DATA_TIMEOUT.as_secs(),
            mta_auth: false,
        }
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: "127.0.0.1:9025".to_string(),
            min_free_disk: DEFAULT_MIN_FREE_DISK,
        }
    }
}

impl Default for AuthSection {
    fn default() -> Self {
        let d = directory::DirectoryConfig::default();
        AuthSection {
            argon2_memory_kib: d.argon2_m_cost,
            argon2_iterations: d.argon2_t_cost,
            argon2_parallelism: d.argon2_p_cost,
            max_concurrent_hashes: d.max_concurrent_hashes,
            max_delay: server::throttle::DEFAULT_MAX_DELAY.as_secs(),
            lockout_failures: server::throttle::DEFAULT_LOCKOUT_FAILURES,
            lockout_secs: server::throttle::DEFAULT_LOCKOUT.as_secs(),
            scram_iterations: d.scram_iterations,
            scram: d.scram,
        }
    }
}

/// Default `store.presence_lease`, seconds: how long a node's presence
/// rows count without a renewal (issue 21). Here rather than in
/// `cluster_presence`, since the config fuzz target builds this module
/// alone.
pub const DEFAULT_PRESENCE_LEASE: u64 = 30;

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: backends::Backend::default().name().to_string(),
            url: Secret::default(),
            group_commit_max: store::StoreOptions::default().group_commit_max,
            pool_size: backends::postgres::POOL_SIZE,
            statement_timeout: backends::postgres::STATEMENT_TIMEOUT.as_secs(),
            node_id: String::new(),
            presence_lease: DEFAULT_PRESENCE_LEASE,
            tombstone_retention: store::DEFAULT_TOMBSTONE_RETENTION.as_secs(),
            spool_threshold: server::spool::DEFAULT_SPOOL_THRESHOLD,
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_string(),
        }
    }
}

/// A config with its paths resolved and values checked.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// `data_dir`, relative to the config file's folder (SPEC 7).
    pub data_dir: PathBuf,
    pub hostname: String,
    /// The config file's folder: relative paths in it start here (SPEC 7).
    pub base: PathBuf,
    pub source: Source,
}

impl Loaded {
    /// A path from the config, relative to the config file's folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// The environment variable naming the config file (SPEC 7).
pub const CONFIG_ENV: &str = "MAILROOM_CONFIG";
/// The system-wide config file, the last place searched (SPEC 7).
pub const SYSTEM_CONFIG_FILE: &str = "/etc/mailroom/mailroom.toml";

/// Where the config came from, for messages that must say which store
/// a command used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    QuickStart,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "config {}", p.display()),
            Source::QuickStart => write!(
                f,
                "no config found (--config, {CONFIG_ENV}, ./{DEFAULT_CONFIG_FILE}, \
                 {SYSTEM_CONFIG_FILE}): quick-start defaults"
            ),
        }
    }
}

/// The config file to read, in the order of SPEC 7: `--config`, then
/// `MAILROOM_CONFIG`, then `./mailroom.toml`, then
/// `/etc/mailroom/mailroom.toml`; None for the quick-start defaults. A
/// file named explicitly (flag or variable) must exist; the two default
/// places are used only when they do.
pub fn find(explicit: Option<&Path>, env: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    [DEFAULT_CONFIG_FILE, SYSTEM_CONFIG_FILE]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Loads the config found by [`find`], else the quick-start defaults.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, String> {
    let env = std::env::var_os(CONFIG_ENV);
    let (config, base, source) = match find(explicit, env.as_deref()) {
        Some(path) => (read(&path)?, folder_of(&path), Source::File(path)),
        None => (Config::default(), PathBuf::from("."), Source::QuickStart),
    };
    config.check()?;
    let data_dir = if config.data_dir.is_absolute() {
        config.data_dir.clone()
    } else {
        base.join(&config.data_dir)
    };
    let hostname = config.hostname.clone().unwrap_or_else(machine_hostname);
    Ok(Loaded {
        config,
        data_dir,
        hostname,
        base,
        source,
    })
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn read(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("config {}: {e}", path.display()))
}

/// Parses config text; errors name the key (toml reports the path and line).
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str::<Config>(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `host:port` of `[relay] smarthost`.
pub fn smarthost(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Parses a list of socket addresses, naming `key` on error.
pub fn addresses(key: &str, list: &[String]) -> Result<Vec<SocketAddr>, String> {
    list.iter()
        .map(|a| {
            a.parse::<SocketAddr>()
                .map_err(|_| format!("{key}: '{a}' is not an address:port"))
        })
        .collect()
}

/// The level names a `log.level` directive may use.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
/// The targets a `target=level` directive may name: the crates of this
/// workspace (and their modules, `server::smtp`), plus the libraries whose
/// logs are worth turning up.
pub const LOG_TARGETS: &[&str] = &[
    "mailroom",
    "server",
    "store",
    "directory",
    "proto_smtp",
    "proto_pop3",
    "proto_imap",
    "proto_common",
    "tokio",
    "rusqlite",
];

/// `log.level` is a comma-separated list of a bare level and
/// `target=level` directives. tracing's own filter syntax takes any bare
/// word as a target, so `level = "debugg"` would switch every log off;
/// here a bare word must be a level and a target must be one of ours.
pub fn check_log_level(text: &str) -> Result<(), String> {
    let shown = || {
        format!(
            "log.level: '{text}' is not a level ({}) or a list of target=level for {}",
            LOG_LEVELS.join(", "),
            LOG_TARGETS.join(", ")
        )
    };
    let is_level = |w: &str| LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(w));
    let mut any = false;
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        any = true;
        let ok = match directive.split_once('=') {
            None => is_level(directive),
            Some((target, level)) => {
                let root = target.split("::").next().unwrap_or_default();
                is_level(level.trim()) && LOG_TARGETS.contains(&root.trim())
            }
        };
        if !ok {
            return Err(shown());
        }
    }
    if !any {
        return Err(shown());
    }
    Ok(())
}

/// Parses a list of networks (CIDR, or a bare address), naming `key`.
pub fn networks(key: &str, list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|n| {
            n.parse::<IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{key}: '{n}' is not a network (e.g. 192.0.2.0/24)"))
        })
        .collect()
}

impl Config {
    /// Checks values that the types alone do not; each error names its key.
    pub fn check(&self) -> Result<(), String> {
        if self.domains.is_empty() {
            return Err("domains: at least one domain is needed".into());
        }
        for d in &self.domains {
            if d.is_empty() || d.contains(['@', ' ', '<', '>']) {
                return Err(format!("domains: '{d}' is not a domain name"));
            }
        }
        for (domain, target) in &self.catch_all {
            if !self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
                return Err(format!("catch_all: '{domain}' is not one of the domains"));
            }
            if !target.contains('@') {
                return Err(format!("catch_all.{domain}: '{target}' is not an address"));
            }
        }
        networks("local_networks", &self.local_networks)?;
        networks("smtp.relay_networks", &self.smtp.relay_networks)?;
        addresses("smtp.listen", &self.smtp.listen)?;
        addresses("smtp.submission", &self.smtp.submission)?;
        addresses("smtp.submissions", &self.smtp.submissions)?;
        addresses("imap.listen", &self.imap.listen)?;
        addresses("imap.tls_listen", &self.imap.tls_listen)?;
        addresses("pop3.listen", &self.pop3.listen)?;
        addresses("pop3.tls_listen", &self.pop3.tls_listen)?;
        if !self.admin.listen.is_empty() {
            addresses("admin.listen", std::slice::from_ref(&self.admin.listen))?;
        }
        if self.tls.cert.as_os_str().is_empty() != self.tls.key.as_os_str().is_empty() {
            return Err("tls.cert and tls.key: give both, or neither for a self-signed one".into());
        }
        for (i, e) in self.tls.sni.iter().enumerate() {
            if e.hostnames.is_empty() {
                return Err(format!(
                    "tls.sni[{i}].hostnames: at least one name is needed"
                ));
            }
        }
        if !self.relay.smarthost.is_empty() && smarthost(&self.relay.smarthost).is_none() {
            return Err(format!(
                "relay.smarthost: '{}' is not host:port",
                self.relay.smarthost
            ));
        }
        if !matches!(
            self.relay.smarthost_tls.as_str(),
            "" | "starttls" | "implicit"
        ) {
            return Err(format!(
                "relay.smarthost_tls: '{}' must be \"\", \"starttls\" or \"implicit\"",
                self.relay.smarthost_tls
            ));
        }
        if !self.relay.smarthost_auth.0.is_empty() && !self.relay.smarthost_auth.0.contains(':') {
            return Err("relay.smarthost_auth: must be user:password".into());
        }
        if !self.relay.source_address.is_empty()
            && self
                .relay
                .source_address
                .parse::<std::net::IpAddr>()
                .is_err()
        {
            return Err(format!(
                "relay.source_address: '{}' is not an IP address",
                self.relay.source_address
            ));
        }
        if !self.relay.resolver.is_empty() {
            addresses("relay.resolver", std::slice::from_ref(&self.relay.resolver))?;
        }
        if !matches!(
            self.smtp.legacy_send_from.as_str(),
            "authenticated_or_local" | "any"
        ) {
            return Err(format!(
                "smtp.legacy_send_from: '{}' must be \"authenticated_or_local\" or \"any\"",
                self.smtp.legacy_send_from
            ));
        }
        if self.imap.terminal_max_chars == 0 {
            return Err("imap.terminal_max_chars must be at least 1".to_string());
        }
        if self.imap.notify_queue == 0 {
            return Err("imap.notify_queue must be at least 1".to_string());
        }
        // A larger value could not arrive: the literal holding it would be
        // refused first (proto-imap's MAX_LITERAL).
        if self.imap.metadata_max_size == 0
            || self.imap.metadata_max_size > proto_imap::framer::MAX_LITERAL
        {
            return Err(format!(
                "imap.metadata_max_size must be between 1 and {}",
                proto_imap::framer::MAX_LITERAL
            ));
        }
        if !matches!(self.smtp.vrfy.as_str(), "disclose" | "252") {
            return Err(format!(
                "smtp.vrfy: '{}' must be \"disclose\" or \"252\"",
                self.smtp.vrfy
            ));
        }
        if self.smtp.max_line_length < proto_smtp::MAX_COMMAND_LINE {
            return Err(format!(
                "smtp.max_line_length: {} is below RFC 5321's 512 octets",
                self.smtp.max_line_length
            ));
        }
        if self.smtp.max_inflight_data < self.smtp.max_message_size {
            return Err(format!(
                "smtp.max_inflight_data: {} is below smtp.max_message_size ({}): no message of the maximum size could be received",
                self.smtp.max_inflight_data, self.smtp.max_message_size
            ));
        }
        self.store.backend.parse::<backends::Backend>()?;
        if self.auth.scram_iterations < directory::DEFAULT_SCRAM_ITERATIONS {
            return Err(format!(
                "auth.scram_iterations: {} is below RFC 7677's minimum of {}",
                self.auth.scram_iterations,
                directory::DEFAULT_SCRAM_ITERATIONS
            ));
        }
        let positive = [
            ("smtp.max_message_size", self.smtp.max_message_size as u64),
            ("smtp.max_recipients", self.smtp.max_recipients as u64),
            ("smtp.max_errors", u64::from(self.smtp.max_errors)),
            ("smtp.max_connections", self.smtp.max_connections as u64),
            (
                "smtp.max_connections_per_ip",
                self.smtp.max_connections_per_ip as u64,
            ),
            ("smtp.command_timeout", self.smtp.command_timeout),
            ("smtp.data_timeout", self.smtp.data_timeout),
            ("store.group_commit_max", self.store.group_commit_max as u64),
            ("store.pool_size", self.store.pool_size as u64),
            ("store.statement_timeout", self.store.statement_timeout),
            ("store.presence_lease", self.store.presence_lease),
            ("pop3.idle_timeout", self.pop3.idle_timeout),
            ("pop3.max_connections", self.pop3.max_connections as u64),
            (
                "pop3.max_connections_per_ip",
                self.pop3.max_connections_per_ip as u64,
            ),
            ("imap.idle_timeout", self.imap.idle_timeout),
            ("imap.max_connections", self.imap.max_connections as u64),
            (
                "imap.max_connections_per_ip",
                self.imap.max_connections_per_ip as u64,
            ),
            ("imap.max_literal_size", self.imap.max_literal_size as u64),
            (
                "imap.max_inflight_literals",
                self.imap.max_inflight_literals as u64,
            ),
            ("store.spool_threshold", self.store.spool_threshold as u64),
            ("imap.max_mailboxes", self.imap.max_mailboxes),
            ("tls.handshake_timeout", self.tls.handshake_timeout),
            ("relay.port", u64::from(self.relay.port)),
            ("relay.retry_initial", self.relay.retry_initial),
            ("relay.retry_max", self.relay.retry_max),
            ("relay.max_queue_lifetime", self.relay.max_queue_lifetime),
            ("relay.queue_lease", self.relay.queue_lease),
            ("relay.max_connections", self.relay.max_connections as u64),
            (
                "relay.max_connections_per_domain",
                self.relay.max_connections_per_domain as u64,
            ),
            (
                "auth.lockout_failures",
                u64::from(self.auth.lockout_failures),
            ),
            (
                "submission.max_recipients",
                self.submission.max_recipients as u64,
            ),
            (
                "auth.argon2_memory_kib",
                u64::from(self.auth.argon2_memory_kib),
            ),
            (
                "auth.argon2_iterations",
                u64::from(self.auth.argon2_iterations),
            ),
            (
                "auth.argon2_parallelism",
                u64::from(self.auth.argon2_parallelism),
            ),
            (
                "auth.max_concurrent_hashes",
                self.auth.max_concurrent_hashes as u64,
            ),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("{key}: must be greater than 0"));
            }
        }
        check_log_level(&self.log.level)?;
        Ok(())
    }

    /// Warnings worth a log line at start (values below RFC minimums are
    /// allowed so tests need not wait minutes, SPEC 8).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if Duration::from_secs(self.smtp.command_timeout) < smtp_defaults::RFC_COMMAND_TIMEOUT {
            w.push(format!(
                "smtp.command_timeout = {} is below RFC 5321's 300 s minimum",
                self.smtp.command_timeout
            ));
        }
        if Duration::from_secs(self.smtp.data_timeout) < smtp_defaults::RFC_DATA_TIMEOUT {
            w.push(format!(
                "smtp.data_timeout = {} is below RFC 5321's 600 s minimum",
                self.smtp.data_timeout
            ));
        }
        if self.pop3.idle_timeout < POP3_IDLE_TIMEOUT_SECS {
            w.push(format!(
                "pop3.idle_timeout = {} is below RFC 1939's 600 s minimum",
                self.pop3.idle_timeout
            ));
        }
        if self.imap.idle_timeout < IMAP_IDLE_TIMEOUT_SECS {
            w.push(format!(
                "imap.idle_timeout = {} is below RFC 9051's 1800 s minimum",
                self.imap.idle_timeout
            ));
        }
        if self.smtp.max_recipients < smtp_defaults::DEFAULT_MAX_RECIPIENTS {
            w.push("smtp.max_recipients is below RFC 5321's minimum of 100".to_string());
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_quick_start_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.domains, vec!["localhost"]);
        assert_eq!(c.smtp.listen, vec!["127.0.0.1:2525"]);
        assert_eq!(c.smtp.max_recipients, 100);
        assert!(c.smtp.relay_networks.is_empty());
        assert!(c.check().is_ok());
    }

    #[test]
    fn spec_example_is_accepted() {
        let text = r#"
hostname = "mail.example.test"
domains  = ["example.test"]
data_dir = "mailroom-data"
[smtp]
listen      = ["127.0.0.1:2525"]
submission  = ["127.0.0.1:2587"]
submissions = ["127.0.0.1:2465"]
max_message_size = 26214400
max_recipients   = 100
[imap]
listen     = ["127.0.0.1:1143"]
tls_listen = ["127.0.0.1:1993"]
[pop3]
listen     = ["127.0.0.1:1110"]
tls_listen = ["127.0.0.1:1995"]
[admin]
listen = "127.0.0.1:9025"
"#;
        let c = parse(text).unwrap();
        assert!(c.check().is_ok());
        assert_eq!(c.hostname.as_deref(), Some("mail.example.test"));
    }

    #[test]
    fn example_config_documents_valid_keys() {
        let c = parse(include_str!("../../../mailroom.example.toml")).unwrap();
        assert!(c.check().is_ok());
        let d = Config::default();
        // The example shows the defaults.
        assert_eq!(c.smtp.max_message_size, d.smtp.max_message_size);
        assert_eq!(c.pop3.idle_timeout, d.pop3.idle_timeout);
        assert_eq!(c.imap.max_literal_size, d.imap.max_literal_size);
        assert_eq!(c.imap.max_mailboxes, d.imap.max_mailboxes);
        assert_eq!(c.imap.terminal_max_chars, d.imap.terminal_max_chars);
        assert_eq!(c.imap.notify_queue, d.imap.notify_queue);
        assert_eq!(c.imap.metadata_max_size, d.imap.metadata_max_size);
        assert_eq!(c.imap.metadata_max_entries, d.imap.metadata_max_entries);
        assert_eq!(c.smtp.legacy_send_from, d.smtp.legacy_send_from);
        assert_eq!(c.store.group_commit_max, d.store.group_commit_max);
        assert_eq!(c.store.pool_size, d.store.pool_size);
        assert_eq!(c.store.statement_timeout, d.store.statement_timeout);
        assert_eq!(c.store.node_id, d.store.node_id);
        assert_eq!(c.store.presence_lease, d.store.presence_lease);
        assert_eq!(c.store.spool_threshold, d.store.spool_threshold);
        assert_eq!(c.imap.max_inflight_literals, d.imap.max_inflight_literals);
        assert_eq!(c.auth.scram_iterations, d.auth.scram_iterations);
        assert_eq!(c.auth.scram, d.auth.scram);
    }

    #[test]
    fn notify_and_metadata_limits_are_checked() {
        for bad in [
            "[imap]\nnotify_queue = 0\n",
            "[imap]\nmetadata_max_size = 0\n",
            "[imap]\nmetadata_max_size = 70000\n",
        ] {
            let c = parse(bad).unwrap();
            assert!(c.check().is_err(), "{bad}");
        }
        let c = parse("[imap]\nmetadata_max_size = 65536\nmetadata_max_entries = 5\n").unwrap();
        assert!(c.check().is_ok());
        assert_eq!(c.imap.metadata_max_entries, 5);
    }

    #[test]
    fn scram_keys_default_on_at_4096_and_refuse_fewer_iterations() {
        let d = Config::default();
        assert_eq!((d.auth.scram_iterations, d.auth.scram), (4096, true));
        let c = parse("[auth]\nscram_iterations = 4095\n").unwrap();
        let e = c.check().unwrap_err();
        assert!(e.starts_with("auth.scram_iterations: 4095"), "{e}");
        let c = parse("[auth]\nscram_iterations = 10000\nscram = false\n").unwrap();
        assert_eq!(c.check(), Ok(()));
        assert_eq!((c.auth.scram_iterations, c.auth.scram), (10000, false));
        let e = parse("[auth]\nscram = \"no\"\n").unwrap_err();
        assert!(e.contains("scram"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = parse("[smtp]\nmax_recipents = 5\n").unwrap_err();
        assert!(e.contains("max_recipents"), "{e}");
    }

    #[test]
    fn bad_value_is_an_error_naming_the_key() {
        let e = parse("[smtp]\nmax_recipients = \"many\"\n").unwrap_err();
        assert!(e.contains("max_recipients"), "{e}");
        let c = parse("[smtp]\nrelay_networks = [\"10.0.0.0/33\"]\n").unwrap();
        assert!(c.check().unwrap_err().contains("smtp.relay_networks"));
        let c = parse("[smtp]\nvrfy = \"sometimes\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("smtp.vrfy"));
        let c = parse("[smtp]\nlegacy_send_from = \"anyone\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("smtp.legacy_send_from"));
        let c = parse("[tls]\ncert = \"a.pem\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("tls.key"));
    }

    #[test]
    fn tls_sni_entries_parse() {
        let c = parse(
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[[tls.sni]]\nhostnames = [\"mail.other.test\"]\ncert = \"o.pem\"\nkey = \"ok.pem\"\n",
        )
        .unwrap();
        assert!(c.check().is_ok());
        assert_eq!(c.tls.sni[0].hostnames, ["mail.other.test"]);
    }

    #[test]
    fn log_level_typo_is_an_error_naming_the_key() {
        for bad in [
            "debugg",
            "",
            "info,sever=debug",
            "server=loud",
            "[span]=debug",
        ] {
            let c = parse(&format!("[log]\nlevel = \"{bad}\"\n")).unwrap();
            let e = c.check().expect_err(bad);
            assert!(e.starts_with("log.level: "), "{bad}: {e}");
        }
        for good in [
            "debug",
            "WARN",
            "info,server=debug",
            "server::smtp=trace,store=off",
        ] {
            let c = parse(&format!("[log]\nlevel = \"{good}\"\n")).unwrap();
            assert_eq!(c.check(), Ok(()), "{good}");
        }
    }

    #[test]
    fn config_is_searched_flag_then_variable_then_the_two_files() {
        use std::ffi::OsStr;
        let flag = Path::new("/x/flag.toml");
        assert_eq!(
            find(Some(flag), Some(OsStr::new("/x/env.toml"))),
            Some(flag.to_path_buf())
        );
        assert_eq!(
            find(None, Some(OsStr::new("/x/env.toml"))),
            Some(PathBuf::from("/x/env.toml"))
        );
        // An empty variable counts as unset.
        let fallback = find(None, Some(OsStr::new("")));
        let expected = [DEFAULT_CONFIG_FILE, SYSTEM_CONFIG_FILE]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        assert_eq!(fallback, expected);
    }
}
