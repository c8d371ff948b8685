//! Settings of the POP3 server, filled from the `[pop3]` section of the
//! config file by the binary. Every limit has a named default with its
//! source.

use std::time::Duration;

use ipnet::IpNet;

use crate::conn::ConnectionLimits;

/// RFC 1939 3: the inactivity autologout timer is at least 10 minutes.
pub const RFC_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Bad command lines (unknown, malformed, too long) one session may send
/// before it is closed: a confused or hostile client does not keep a slot
/// busy forever. Errors of state or of login do not count (logins have
/// their own throttling).
pub const DEFAULT_MAX_BAD_COMMANDS: u32 = 20;
/// Connections in total (SPEC 8).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Connections from one client address (SPEC 8).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 20;

#[derive(Debug, Clone)]
pub struct Pop3Config {
    /// Inactivity before an idle session is closed; also bounds each write
    /// to a client that stops reading.
    pub idle_timeout: Duration,
    pub connections: ConnectionLimits,
    /// Clients here may log in with a plaintext password on a connection
    /// without TLS (SPEC 5 and 7: `local_networks`).
    pub plaintext_networks: Vec<IpNet>,
    pub max_bad_commands: u32,
}

impl Default for Pop3Config {
    fn default() -> Self {
        let loopback = ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        Pop3Config {
            idle_timeout: RFC_IDLE_TIMEOUT,
            connections: ConnectionLimits {
                max_total: DEFAULT_MAX_CONNECTIONS,
                max_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            },
            plaintext_networks: loopback,
            max_bad_commands: DEFAULT_MAX_BAD_COMMANDS,
        }
    }
}
