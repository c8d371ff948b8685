//! Password login shared by every protocol (SPEC 5, SPEC 7): argon2
//! verification off the async workers with bounded concurrency, and the
//! throttling of failed logins of [`crate::throttle`] (per client address
//! and per account, whatever the protocol).
//!
//! At most `Directory::max_concurrent_hashes` checks run at once: each
//! takes its memory cost (19 MiB by default) from the directory's pool, and
//! the logins past that wait here, on a semaphore, without holding a
//! blocking thread (1 000 logins at once once took 19 GB).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use directory::Directory;

use tokio::sync::Semaphore;

use crate::throttle::{Admit, LoginThrottle, MemoryThrottle, ThrottlePolicy};

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong name or password (the two are not told apart).
    Invalid,
    /// Too many failures from this address: try again later.
    Throttled,
    /// The directory could not be read: a temporary failure.
    Unavailable,
}

/// Counts for the metrics.
#[derive(Debug, Default)]
pub struct LoginStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub throttled: AtomicU64,
    /// Milliseconds of failure delay imposed, in all.
    pub delay_ms: AtomicU64,
}

/// Checks passwords and throttles failures. One per server, shared by
/// every protocol so a guesser cannot switch protocols to escape it.
pub struct Authenticator {
    directory: Arc<dyn Directory>,
    /// One permit per password check that may run (the directory's pool).
    hashing: Semaphore,
    throttle: Box<dyn LoginThrottle>,
    /// Scales every delay; tests set it to zero.
    delay_scale: f64,
    pub stats: LoginStats,
}

impl Authenticator {
    pub fn new(directory: Arc<dyn Directory>) -> Arc<Self> {
        Self::with_policy(directory, ThrottlePolicy::default())
    }

    /// An authenticator with the throttling of `[auth]`.
    pub fn with_policy(directory: Arc<dyn Directory>, policy: ThrottlePolicy) -> Arc<Self> {
        Arc::new(Authenticator {
            hashing: Semaphore::new(directory.max_concurrent_hashes()),
            directory,
            throttle: Box::new(MemoryThrottle::new(policy)),
            delay_scale: 1.0,
            stats: LoginStats::default(),
        })
    }

    /// An authenticator counting failures in `throttle` (the scale-out
    /// backend's, shared by every node).
    pub fn with_throttle(
        directory: Arc<dyn Directory>,
        throttle: Box<dyn LoginThrottle>,
    ) -> Arc<Self> {
        Arc::new(Authenticator {
            hashing: Semaphore::new(directory.max_concurrent_hashes()),
            directory,
            throttle,
            delay_scale: 1.0,
            stats: LoginStats::default(),
        })
    }

    /// Like `new` with delays multiplied by `scale` (0.0 for tests that
    /// must not wait).
    pub fn with_delay_scale(directory: Arc<dyn Directory>, scale: f64) -> Arc<Self> {
        Arc::new(Authenticator {
            hashing: Semaphore::new(directory.max_concurrent_hashes()),
            directory,
            throttle: Box::new(MemoryThrottle::new(ThrottlePolicy::default())),
            delay_scale: scale.max(0.0),
            stats: LoginStats::default(),
        })
    }

    pub fn directory(&self) -> &Arc<dyn Directory> {
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
        if self.throttle.admit(ip, now) == Admit::LockedOut {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(client = %ip, login = %proto_common::log_safe(login), "login refused: too many failures from this address");
            return Err(LoginFailure::Throttled);
        }
        let account_key = self.account_key(login).await;
        let dir = &self.directory;
        // argon2 is slow by design: the directory runs it off the async
        // workers, and logins queue here for a permit rather than in the
        // blocking pool.
        let Ok(permit) = self.hashing.acquire().await else {
            return Err(LoginFailure::Unavailable);
        };
        let checked = async {
            let account = dir.authenticate(login, password).await?;
            // Users made before SCRAM keys existed get them at their next
            // password login (issue 11).
            if let Some(a) = &account
                && dir.scram_enabled()
                && let Err(e) = dir.fill_scram_keys(a, password).await
            {
                tracing::warn!(error = %e, "cannot write SCRAM keys");
            }
            Ok::<_, directory::DirectoryError>(account)
        }
        .await;
        // Not held through the failure delay below: that would throttle
        // every login behind one guesser.
        drop(permit);
        match checked {
            Ok(Some(account)) => {
                self.throttle.succeeded(ip, &account_key);
                self.stats.ok.fetch_add(1, Ordering::Relaxed);
                Ok(account)
            }
            Ok(None) => {
                self.record_failure(ip, login, &account_key, now).await;
                Err(LoginFailure::Invalid)
            }
            Err(e) => {
                tracing::warn!(error = %e, "login: directory failed");
                Err(LoginFailure::Unavailable)
            }
        }
    }

    /// True when logins from `ip` are refused now (counted as throttled).
    /// For mechanisms that check the password themselves (SCRAM).
    pub fn locked_out(&self, ip: IpAddr) -> bool {
        let locked = self.throttle.admit(ip, Instant::now()) == Admit::LockedOut;
        if locked {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        }
        locked
    }

    /// A failure of a mechanism that checked the password itself: counted
    /// and delayed like a wrong password.
    pub async fn failed(&self, ip: IpAddr, login: &str) {
        let account_key = self.account_key(login).await;
        self.record_failure(ip, login, &account_key, Instant::now())
            .await;
    }

    /// Throttle by the account a login names, however it is spelled
    /// ("fred", "Fred@example.test"); unknown names by their spelling.
    async fn account_key(&self, login: &str) -> String {
        self.directory
            .find_login(login)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| login.trim().to_lowercase())
    }

    /// Counts a failure, logs it and waits its delay before answering.
    async fn record_failure(&self, ip: IpAddr, login: &str, account_key: &str, now: Instant) {
        let delay = self.throttle.failed(ip, account_key, now);
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        self.stats
            .delay_ms
            .fetch_add(delay.as_millis() as u64, Ordering::Relaxed);
        tracing::info!(
            client = %ip,
            login = %proto_common::log_safe(login),
            delay_ms = delay.as_millis() as u64,
            "login failed"
        );
        tokio::time::sleep(self.scaled(delay)).await;
    }

    /// A success of a mechanism that checked the password itself.
    pub fn succeeded(&self, ip: IpAddr, account: &str) {
        self.throttle.succeeded(ip, account);
        self.stats.ok.fetch_add(1, Ordering::Relaxed);
    }

    /// SPEC 7: a SASL authorization identity must be empty or name the
    /// account that authenticated, however it is spelled (the login as
    /// given, the address, or a bare local part that resolves to it).
    pub async fn authorizes(&self, authzid: &str, login: &str, account: &str) -> bool {
        authzid.is_empty()
            || authzid.eq_ignore_ascii_case(login)
            || authzid.eq_ignore_ascii_case(account)
            || self
                .directory
                .find_login(authzid)
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some(account)
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.delay_scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{backends, block_on, directory_config};

    fn auth() -> (tempfile::TempDir, Arc<Authenticator>) {
        let dir = tempfile::tempdir().unwrap();
        let (_, d) = backends(dir.path(), directory_config());
        let fred = Arc::clone(&d);
        block_on(async move { fred.add_user("fred@example.test", None, "Secret").await }).unwrap();
        (dir, Authenticator::with_delay_scale(d, 0.0))
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
    async fn many_failures_lock_out_the_address_but_not_the_account() {
        let (_d, a) = auth();
        for _ in 0..crate::throttle::DEFAULT_LOCKOUT_FAILURES {
            assert_eq!(
                a.login(IP, "fred", "guess").await,
                Err(LoginFailure::Invalid)
            );
        }
        assert_eq!(
            a.login(IP, "fred", "Secret").await,
            Err(LoginFailure::Throttled)
        );
        // From another address the account still logs in: a stranger
        // cannot lock a user out.
        let other: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(
            a.login(other, "fred", "Secret").await,
            Ok("fred@example.test".into())
        );
        // The delays were recorded: 2 + 4 + 8 + 15 * 14 s for the
        // address's 20 failures (the first three are free).
        assert_eq!(
            a.stats.delay_ms.load(Ordering::Relaxed),
            (2 + 4 + 8 + 15 * 14) * 1000
        );
        assert_eq!(a.stats.throttled.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn authzid_must_be_empty_or_name_the_same_account() {
        let (_d, a) = auth();
        let acct = "fred@example.test";
        assert!(a.authorizes("", "fred", acct).await);
        assert!(a.authorizes("FRED", "fred", acct).await);
        assert!(a.authorizes("fred", "Fred@example.test", acct).await);
        assert!(a.authorizes("Fred@Example.Test", "fred", acct).await);
        assert!(!a.authorizes("bob@example.test", "fred", acct).await);
        assert!(!a.authorizes("nobody", "fred", acct).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failure_delay_does_not_hold_the_hashing_permit() {
        let dir = tempfile::tempdir().unwrap();
        let config = directory::DirectoryConfig {
            max_concurrent_hashes: 1,
            ..directory_config()
        };
        let (_, d) = backends(dir.path(), config);
        d.add_user("fred@example.test", None, "Secret")
            .await
            .unwrap();
        let a = Authenticator::new(d);
        // The first failures are answered at once; the fourth waits 2 s.
        for _ in 0..crate::throttle::GENTLE_FAILURES {
            let _ = a.login(IP, "fred", "wrong").await;
        }
        let guesser = {
            let a = Arc::clone(&a);
            tokio::spawn(async move { a.login(IP, "fred", "wrong").await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The guesser now sleeps its delay; with a single permit, a good
        // login must still go through at once.
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
