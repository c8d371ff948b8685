//! Connection accounting: the total and per-client-address limits of SPEC 8,
//! counted per protocol family (SMTP, POP3, IMAP: each has its own limits
//! in the config, whatever port or TLS mode), and the count of live
//! sessions of every family that graceful shutdown waits for.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Limits on concurrent connections (SPEC 8), per listener family.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections in total; past it new ones get 421 4.7.0 at connect.
    pub max_total: usize,
    /// Connections from one client address.
    pub max_per_ip: usize,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyTotal,
    TooManyFromAddress,
}

#[derive(Default)]
struct Counts {
    /// Every live connection, for shutdown and the metrics.
    all: usize,
    per_family: HashMap<&'static str, usize>,
    per_ip: HashMap<(&'static str, IpAddr), usize>,
}

/// Counts live connections. Cheap to clone (one pointer, as every live
/// session holds one in its guard).
#[derive(Clone, Default)]
pub struct ConnectionTracker {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    counts: Mutex<Counts>,
    idle: Notify,
}

/// One admitted connection; dropping it releases its slot.
pub struct ConnectionGuard {
    tracker: ConnectionTracker,
    family: &'static str,
    ip: IpAddr,
}

impl ConnectionTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits a connection of protocol `family` from `ip` if that
    /// family's limits allow it; an `exempt` address (SPEC 7
    /// `local_networks`) is held to the total only.
    pub fn admit(
        &self,
        family: &'static str,
        ip: IpAddr,
        limits: ConnectionLimits,
        exempt: bool,
    ) -> Result<ConnectionGuard, Refusal> {
        let Ok(mut counts) = self.shared.counts.lock() else {
            return Err(Refusal::TooManyTotal);
        };
        let total = counts.per_family.get(family).copied().unwrap_or(0);
        if total >= limits.max_total {
            return Err(Refusal::TooManyTotal);
        }
        let from_ip = counts.per_ip.get(&(family, ip)).copied().unwrap_or(0);
        if !exempt && from_ip >= limits.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        counts.all += 1;
        counts.per_family.insert(family, total + 1);
        counts.per_ip.insert((family, ip), from_ip + 1);
        Ok(ConnectionGuard {
            tracker: self.clone(),
            family,
            ip,
        })
    }

    /// Live connections right now, of every family.
    pub fn active(&self) -> usize {
        self.shared.counts.lock().map(|c| c.all).unwrap_or(0)
    }

    /// Resolves when no connection is left.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.shared.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.tracker.shared.counts.lock() {
            counts.all = counts.all.saturating_sub(1);
            if let Some(n) = counts.per_family.get_mut(self.family) {
                *n = n.saturating_sub(1);
            }
            let key = (self.family, self.ip);
            if let Some(n) = counts.per_ip.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.per_ip.remove(&key);
                }
            }
            if counts.all == 0 {
                self.tracker.shared.idle.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        max_total: 3,
        max_per_ip: 2,
    };

    #[test]
    fn per_address_limit_refuses_third_connection_from_same_ip() {
        let t = ConnectionTracker::new();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let _g1 = t.admit("imap", a, LIMITS, false).ok();
        let _g2 = t.admit("imap", a, LIMITS, false).ok();
        assert_eq!(
            t.admit("imap", a, LIMITS, false).err(),
            Some(Refusal::TooManyFromAddress)
        );
        let g3 = t.admit("imap", b, LIMITS, false);
        assert!(g3.is_ok());
        assert_eq!(
            t.admit("imap", b, LIMITS, false).err(),
            Some(Refusal::TooManyTotal)
        );
        drop(g3);
        assert_eq!(t.active(), 2);
    }

    #[test]
    fn each_protocol_family_has_its_own_limits() {
        let t = ConnectionTracker::new();
        let a: IpAddr = [192, 0, 2, 1].into();
        let imap: Vec<_> = (0..2).map(|_| t.admit("imap", a, LIMITS, false)).collect();
        assert!(imap.iter().all(Result::is_ok));
        // IMAP's connections do not count against SMTP's limits.
        let smtp = t.admit("smtp", a, LIMITS, false);
        assert!(smtp.is_ok());
        assert_eq!(t.active(), 3);
    }

    #[test]
    fn exempt_address_passes_the_per_address_limit_but_not_the_total() {
        let t = ConnectionTracker::new();
        let local: IpAddr = [127, 0, 0, 1].into();
        let guards: Vec<_> = (0..3)
            .map(|_| t.admit("smtp", local, LIMITS, true))
            .collect();
        assert!(guards.iter().all(Result::is_ok));
        assert_eq!(
            t.admit("smtp", local, LIMITS, true).err(),
            Some(Refusal::TooManyTotal)
        );
    }
}
