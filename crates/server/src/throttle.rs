//! Failed-login throttling, one state for every protocol (SPEC 5, issue
//! 11), behind a small trait so that several nodes can share it later.
//!
//! Per client address: no delay for the first `GENTLE_FAILURES` failures
//! (a person who mistypes is not punished), then 2^(n-3) seconds for the
//! n-th, capped at `[auth] max_delay`; after `[auth] lockout_failures`
//! failures within `FAILURE_WINDOW`, every login from that address is
//! refused for `[auth] lockout_secs` without the password being checked.
//! Per account: the same delay capped at `ACCOUNT_MAX_DELAY`, and never a
//! refusal, so a stranger cannot lock a user out of their own mailbox.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures answered at once before the delay starts.
pub const GENTLE_FAILURES: u32 = 3;
/// Default `[auth] max_delay`: the longest delay for one address.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(15);
/// The longest delay a failure for one account causes (issue 11: 5 s).
pub const ACCOUNT_MAX_DELAY: Duration = Duration::from_secs(5);
/// Default `[auth] lockout_failures`.
pub const DEFAULT_LOCKOUT_FAILURES: u32 = 20;
/// Default `[auth] lockout_secs`.
pub const DEFAULT_LOCKOUT: Duration = Duration::from_secs(900);
/// How long failures are remembered (issue 11: 15 minutes).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept in each table; the oldest go past it, so a flood of
/// addresses cannot grow memory without bound.
pub const MAX_TRACKED: usize = 10_000;

/// The throttling rules, from `[auth]`.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_delay: Duration,
    pub lockout_failures: u32,
    pub lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            max_delay: DEFAULT_MAX_DELAY,
            lockout_failures: DEFAULT_LOCKOUT_FAILURES,
            lockout: DEFAULT_LOCKOUT,
        }
    }
}

impl ThrottlePolicy {
    /// 2^(n-3) s for the n-th failure past the gentle ones, capped.
    pub fn delay(failures: u32, cap: Duration) -> Duration {
        if failures <= GENTLE_FAILURES {
            return Duration::ZERO;
        }
        let exp = (failures - GENTLE_FAILURES).min(16);
        Duration::from_secs(1u64 << exp).min(cap)
    }
}

/// The verdict before a password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Go,
    /// The address is locked out: refuse without checking.
    LockedOut,
}

/// Where failed logins are counted. The embedded server keeps them in
/// memory ([`MemoryThrottle`]); the scale-out backend shares them.
pub trait LoginThrottle: Send + Sync {
    /// May a login from `ip` be checked now?
    fn admit(&self, ip: IpAddr, now: Instant) -> Admit;
    /// Records a failure; returns how long to wait before answering.
    fn failed(&self, ip: IpAddr, account: &str, now: Instant) -> Duration;
    /// A login succeeded: its address and account start afresh.
    fn succeeded(&self, ip: IpAddr, account: &str);
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

struct Table<K> {
    map: HashMap<K, Failures>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Table {
            map: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn add(&mut self, key: &K, now: Instant) -> u32 {
        if self.map.len() >= MAX_TRACKED && !self.map.contains_key(key) {
            self.map
                .retain(|_, f| now.duration_since(f.last) < FAILURE_WINDOW);
            if self.map.len() >= MAX_TRACKED
                && let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let entry = self.map.entry(key.clone()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= FAILURE_WINDOW {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        entry.count
    }

    fn clear(&mut self, key: &K) {
        self.map.remove(key);
    }
}

#[derive(Default)]
struct State {
    by_ip: Table<IpAddr>,
    by_account: Table<String>,
    /// Addresses refused until the instant.
    locked: HashMap<IpAddr, Instant>,
}

/// Throttling state of one process.
pub struct MemoryThrottle {
    policy: ThrottlePolicy,
    state: Mutex<State>,
}

impl MemoryThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        MemoryThrottle {
            policy,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LoginThrottle for MemoryThrottle {
    fn admit(&self, ip: IpAddr, now: Instant) -> Admit {
        let mut s = self.lock();
        match s.locked.get(&ip) {
            Some(until) if now < *until => Admit::LockedOut,
            Some(_) => {
                s.locked.remove(&ip);
                s.by_ip.clear(&ip);
                Admit::Go
            }
            None => Admit::Go,
        }
    }

    fn failed(&self, ip: IpAddr, account: &str, now: Instant) -> Duration {
        let mut s = self.lock();
        let n_ip = s.by_ip.add(&ip, now);
        let n_account = s.by_account.add(&account.to_string(), now);
        if n_ip >= self.policy.lockout_failures {
            if s.locked.len() >= MAX_TRACKED {
                s.locked.retain(|_, until| now < *until);
            }
            s.locked.insert(ip, now + self.policy.lockout);
        }
        // max_delay bounds every delay; an account's is 5 s at most.
        let account_cap = ACCOUNT_MAX_DELAY.min(self.policy.max_delay);
        ThrottlePolicy::delay(n_ip, self.policy.max_delay)
            .max(ThrottlePolicy::delay(n_account, account_cap))
    }

    fn succeeded(&self, ip: IpAddr, account: &str) {
        let mut s = self.lock();
        s.by_ip.clear(&ip);
        s.by_account.clear(&account.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn delay_is_free_for_three_then_doubles_to_the_cap() {
        let cap = DEFAULT_MAX_DELAY;
        let d = |n| ThrottlePolicy::delay(n, cap).as_secs();
        assert_eq!(
            [d(1), d(2), d(3), d(4), d(5), d(6), d(7), d(50)],
            [0, 0, 0, 2, 4, 8, 15, 15]
        );
    }

    #[test]
    fn an_address_is_locked_out_after_the_limit_and_others_are_not() {
        let t = MemoryThrottle::new(ThrottlePolicy::default());
        let now = Instant::now();
        for i in 0..DEFAULT_LOCKOUT_FAILURES {
            assert_eq!(t.admit(A, now), Admit::Go, "failure {i}");
            t.failed(A, &format!("user{i}@example.test"), now);
        }
        assert_eq!(t.admit(A, now), Admit::LockedOut);
        assert_eq!(t.admit(B, now), Admit::Go);
        // The lockout ends.
        assert_eq!(t.admit(A, now + DEFAULT_LOCKOUT), Admit::Go);
    }

    #[test]
    fn an_account_is_delayed_at_most_5_s_and_never_locked() {
        let t = MemoryThrottle::new(ThrottlePolicy::default());
        let now = Instant::now();
        let mut last = Duration::ZERO;
        // A stranger guessing alice's password from many addresses.
        for i in 0..100u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i));
            last = t.failed(ip, "alice@example.test", now);
        }
        assert_eq!(last, ACCOUNT_MAX_DELAY);
        // Alice, from her own address, is not refused.
        assert_eq!(t.admit(A, now), Admit::Go);
    }

    #[test]
    fn success_starts_afresh() {
        let t = MemoryThrottle::new(ThrottlePolicy::default());
        let now = Instant::now();
        for _ in 0..5 {
            t.failed(A, "alice@example.test", now);
        }
        t.succeeded(A, "alice@example.test");
        assert_eq!(t.failed(A, "alice@example.test", now), Duration::ZERO);
    }
}
