//! Password login shared by every protocol (SPEC 5, SPEC 7): argon2
//! verification off the async workers, and throttling of failed logins per
//! client address and per account.
//!
//! At most `Directory::max_concurrent_hashes` checks run at once: each
//! takes its memory cost (19 MiB by default) from the directory's pool, and
//! the logins past that wait here, on a semaphore, without holding a
//! blocking thread (1 000 logins at once once took 19 GB).
//!
//! A failed login answers only after a delay: about a second for the
//! first failures (a person who mistyped is not punished), then doubling
//! with each further failure from the same address or for the same account
//! within `FAILURE_WINDOW`, up to `MAX_DELAY`. Past `LOCKOUT_FAILURES`
//! failures in the window, logins from that address (or to that account)
//! are refused without checking the password until the window passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use directory::Directory;
use tokio::sync::Semaphore;

/// The delay before a failure is answered, for the first failures.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// Failures answered after `BASE_DELAY` before the delay starts doubling.
pub const GENTLE_FAILURES: u32 = 3;
/// The longest delay before a failure is answered.
pub const MAX_DELAY: Duration = Duration::from_secs(15);
/// Failures in the window after which further logins are refused outright.
pub const LOCKOUT_FAILURES: u32 = 20;
/// How long failures are remembered.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept in each failure table; the oldest are forgotten past it, so
/// a flood of addresses cannot grow memory without bound.
pub const MAX_TRACKED: usize = 10_000;

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong name or password (the two are not told apart).
    Invalid,
    /// Too many failures: try again later.
    Throttled,
    /// The directory could not be read: a temporary failure.
    Unavailable,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Default)]
struct Table {
    map: HashMap<String, Failures>,
}

impl Table {
    fn count(&self, key: &str, now: Instant) -> u32 {
        self.map
            .get(key)
            .filter(|f| now.duration_since(f.last) < FAILURE_WINDOW)
            .map_or(0, |f| f.count)
    }

    fn add(&mut self, key: &str, now: Instant) -> u32 {
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
        let entry = self.map.entry(key.to_string()).or_insert(Failures {
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

    fn clear(&mut self, key: &str) {
        self.map.remove(key);
    }
}

/// Checks passwords and throttles failures. One per server, shared by
/// every protocol so a guesser cannot switch protocols to escape it.
pub struct Authenticator {
    directory: Arc<Directory>,
    /// One permit per password check that may run (the directory's pool).
    hashing: Semaphore,
    by_ip: Mutex<Table>,
    by_account: Mutex<Table>,
    /// Scales every delay; tests set it to zero.
    delay_scale: f64,
}

impl Authenticator {
    pub fn new(directory: Arc<Directory>) -> Arc<Self> {
        Arc::new(Authenticator {
            hashing: Semaphore::new(directory.max_concurrent_hashes()),
            directory,
            by_ip: Mutex::default(),
            by_account: Mutex::default(),
            delay_scale: 1.0,
        })
    }

    /// Like `new` with delays multiplied by `scale` (0.0 for tests that
    /// must not wait).
    pub fn with_delay_scale(directory: Arc<Directory>, scale: f64) -> Arc<Self> {
        Arc::new(Authenticator {
            hashing: Semaphore::new(directory.max_concurrent_hashes()),
            directory,
            by_ip: Mutex::default(),
            by_account: Mutex::default(),
            delay_scale: scale.max(0.0),
        })
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// Verifies `login`/`password` from `ip`. On success returns the
    /// canonical account; on failure waits the throttling delay first.
    pub async fn login(
        &self,
        ip: IpAddr,
        login: &str,
        password: &str,
    ) -> Result<String, LoginFailure> {
        let now = Instant::now();
        let ip_key = ip.to_string();
        // Throttle by the account a login names, however it is spelled
        // ("fred", "Fred@example.test"); unknown names by their spelling.
        let account_key = self
            .directory
            .find_login(login)
            .ok()
            .flatten()
            .unwrap_or_else(|| login.trim().to_lowercase());
        let prior = self.failures(&ip_key, &account_key, now);
        if prior >= LOCKOUT_FAILURES {
            tokio::time::sleep(self.delay_for(prior)).await;
            return Err(LoginFailure::Throttled);
        }
        let dir = Arc::clone(&self.directory);
        let (l, p) = (login.to_string(), password.to_string());
        // argon2 is slow by design: keep it off the async workers, and
        // queue here for a permit rather than in the blocking pool.
        let Ok(permit) = self.hashing.acquire().await else {
            return Err(LoginFailure::Unavailable);
        };
        let checked = tokio::task::spawn_blocking(move || dir.authenticate(&l, &p)).await;
        // Not held through the failure delay below: that would throttle
        // every login behind one guesser.
        drop(permit);
        match checked {
            Ok(Ok(Some(account))) => {
                self.lock_ip().clear(&ip_key);
                self.lock_account().clear(&account_key);
                Ok(account)
            }
            Ok(Ok(None)) => {
                let n_ip = self.lock_ip().add(&ip_key, now);
                let n_acc = self.lock_account().add(&account_key, now);
                let n = n_ip.max(n_acc);
                tracing::info!(client = %ip, login = %proto_common::log_safe(login), failures = n, "login failed");
                tokio::time::sleep(self.delay_for(n)).await;
                Err(LoginFailure::Invalid)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "login: directory failed");
                Err(LoginFailure::Unavailable)
            }
            Err(e) => {
                tracing::error!(error = %e, "login task failed");
                Err(LoginFailure::Unavailable)
            }
        }
    }

    /// SPEC 7: a SASL authorization identity must be empty or name the
    /// account that authenticated, however it is spelled (the login as
    /// given, the address, or a bare local part that resolves to it).
    pub fn authorizes(&self, authzid: &str, login: &str, account: &str) -> bool {
        authzid.is_empty()
            || authzid.eq_ignore_ascii_case(login)
            || authzid.eq_ignore_ascii_case(account)
            || self.directory.find_login(authzid).ok().flatten().as_deref() == Some(account)
    }

    fn failures(&self, ip: &str, account: &str, now: Instant) -> u32 {
        let a = self.lock_ip().count(ip, now);
        let b = self.lock_account().count(account, now);
        a.max(b)
    }

    /// BASE_DELAY for the first GENTLE_FAILURES, then doubling, capped.
    fn delay_for(&self, failures: u32) -> Duration {
        let extra = failures.saturating_sub(GENTLE_FAILURES).min(16);
        let d = BASE_DELAY.saturating_mul(1u32 << extra).min(MAX_DELAY);
        d.mul_f64(self.delay_scale)
    }

    fn lock_ip(&self) -> std::sync::MutexGuard<'_, Table> {
        self.by_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_account(&self) -> std::sync::MutexGuard<'_, Table> {
        self.by_account.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use directory::DirectoryConfig;

    fn auth() -> (tempfile::TempDir, Arc<Authenticator>) {
        let dir = tempfile::tempdir().unwrap();
        let d = Directory::open(
            &dir.path().join("d.db"),
            DirectoryConfig {
                domains: vec!["example.test".into()],
                argon2_m_cost: 64,
                argon2_t_cost: 1,
                ..DirectoryConfig::default()
            },
        )
        .unwrap();
        d.add_user("fred@example.test", None, "Secret").unwrap();
        (dir, Authenticator::with_delay_scale(Arc::new(d), 0.0))
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn right_password_logs_in_with_bare_local_part() {
        let (_d, a) = auth();
        assert_eq!(
            a.login(IP, "Fred", "Secret").await,
            Ok("fred@example.test".into())
        );
        assert_eq!(
            a.login(IP, "fred", "wrong").await,
            Err(LoginFailure::Invalid)
        );
    }

    #[tokio::test]
    async fn many_failures_lock_out_even_the_right_password() {
        let (_d, a) = auth();
        for _ in 0..LOCKOUT_FAILURES {
            assert_eq!(
                a.login(IP, "fred", "guess").await,
                Err(LoginFailure::Invalid)
            );
        }
        assert_eq!(
            a.login(IP, "fred", "Secret").await,
            Err(LoginFailure::Throttled)
        );
        // Another address is throttled too: the account is locked.
        let other: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(
            a.login(other, "fred", "Secret").await,
            Err(LoginFailure::Throttled)
        );
    }

    #[test]
    fn authzid_must_be_empty_or_name_the_same_account() {
        let (_d, a) = auth();
        let acct = "fred@example.test";
        assert!(a.authorizes("", "fred", acct));
        assert!(a.authorizes("FRED", "fred", acct));
        assert!(a.authorizes("fred", "Fred@example.test", acct));
        assert!(a.authorizes("Fred@Example.Test", "fred", acct));
        assert!(!a.authorizes("bob@example.test", "fred", acct));
        assert!(!a.authorizes("nobody", "fred", acct));
    }

    #[test]
    fn delay_starts_gentle_then_doubles_to_the_cap() {
        let (_d, a) = auth();
        let a = Authenticator {
            hashing: Semaphore::new(1),
            directory: a.directory.clone(),
            by_ip: Mutex::default(),
            by_account: Mutex::default(),
            delay_scale: 1.0,
        };
        assert_eq!(a.delay_for(1), BASE_DELAY);
        assert_eq!(a.delay_for(GENTLE_FAILURES), BASE_DELAY);
        assert_eq!(a.delay_for(GENTLE_FAILURES + 1), BASE_DELAY * 2);
        assert_eq!(a.delay_for(100), MAX_DELAY);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failure_delay_does_not_hold_the_hashing_permit() {
        let dir = tempfile::tempdir().unwrap();
        let d = Directory::open(
            &dir.path().join("d.db"),
            DirectoryConfig {
                domains: vec!["example.test".into()],
                argon2_m_cost: 64,
                argon2_t_cost: 1,
                max_concurrent_hashes: 1,
                ..DirectoryConfig::default()
            },
        )
        .unwrap();
        d.add_user("fred@example.test", None, "Secret").unwrap();
        let a = Authenticator::new(Arc::new(d));
        let guesser = {
            let a = Arc::clone(&a);
            tokio::spawn(async move { a.login(IP, "fred", "wrong").await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The guesser now sleeps its one-second delay; with a single permit,
        // a good login must still go through at once.
        let good = tokio::time::timeout(
            Duration::from_millis(600),
            a.login(
                IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)),
                "fred",
                "Secret",
            ),
        )
        .await;
        assert_eq!(good.ok(), Some(Ok("fred@example.test".to_string())));
        assert_eq!(guesser.await.unwrap(), Err(LoginFailure::Invalid));
    }
}
