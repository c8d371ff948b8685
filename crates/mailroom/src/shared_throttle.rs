//! Failed-login throttling shared by the nodes of one PostgreSQL database
//! (issue 21): a guesser who spreads attempts over N nodes must not get N
//! times the budget of one.
//!
//! The decision stays local and synchronous (the [`LoginThrottle`] trait
//! of the sessions): each node keeps its own [`MemoryThrottle`], and a
//! background task adds every failure to the database's
//! `login_failures` (per address and per account, counted over every
//! node, `store_pg::SharedState`) and reads back, every
//! [`SYNC_INTERVAL`], the addresses whose failures on all nodes reached
//! `[auth] lockout_failures`: those are refused here too until their
//! lockout ends. A failure's delay grows with the count over all nodes.
//! What the database says arrives within about [`SYNC_INTERVAL`]; a
//! database that does not answer leaves each node with its own counts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use backends::postgres::SharedState;
use server::throttle::{
    ACCOUNT_MAX_DELAY, Admit, FAILURE_WINDOW, LoginThrottle, MAX_TRACKED, MemoryThrottle,
    ThrottlePolicy,
};
use tokio::sync::mpsc;

/// How often a node reads the addresses locked out over all nodes.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Failures and successes waiting for the database; past it they are
/// dropped (the local counts still apply).
const EVENT_QUEUE: usize = 1024;

enum Event {
    Failed(IpAddr, String),
    Succeeded(IpAddr, String),
}

/// What the database said, shared with the task.
#[derive(Default)]
struct Known {
    /// Addresses locked out over all nodes, until.
    locked: HashMap<IpAddr, Instant>,
    /// Failures over all nodes, per address and per account, as last read.
    by_ip: HashMap<IpAddr, u32>,
    by_account: HashMap<String, u32>,
}

/// The [`LoginThrottle`] of a node on PostgreSQL (module doc).
pub struct SharedThrottle {
    local: MemoryThrottle,
    policy: ThrottlePolicy,
    known: Arc<Mutex<Known>>,
    events: mpsc::Sender<Event>,
}

fn lock(known: &Mutex<Known>) -> std::sync::MutexGuard<'_, Known> {
    known.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SharedThrottle {
    /// Starts the task that talks to `shared`; it ends with the throttle.
    pub fn start(policy: ThrottlePolicy, shared: SharedState) -> SharedThrottle {
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let known = Arc::new(Mutex::new(Known::default()));
        tokio::spawn(sync(policy, shared, Arc::clone(&known), rx));
        SharedThrottle {
            local: MemoryThrottle::new(policy),
            policy,
            known,
            events,
        }
    }
}

impl LoginThrottle for SharedThrottle {
    fn admit(&self, ip: IpAddr, now: Instant) -> Admit {
        if self.local.admit(ip, now) == Admit::LockedOut {
            return Admit::LockedOut;
        }
        match lock(&self.known).locked.get(&ip) {
            Some(until) if now < *until => Admit::LockedOut,
            _ => Admit::Go,
        }
    }

    fn failed(&self, ip: IpAddr, account: &str, now: Instant) -> Duration {
        let local = self.local.failed(ip, account, now);
        let _ = self.events.try_send(Event::Failed(ip, account.to_string()));
        // This failure is not in the database's counts yet: one more.
        let known = lock(&self.known);
        let n_ip = known.by_ip.get(&ip).copied().unwrap_or(0).saturating_add(1);
        let n_account = known
            .by_account
            .get(account)
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        let account_cap = ACCOUNT_MAX_DELAY.min(self.policy.max_delay);
        local
            .max(ThrottlePolicy::delay(n_ip, self.policy.max_delay))
            .max(ThrottlePolicy::delay(n_account, account_cap))
    }

    fn succeeded(&self, ip: IpAddr, account: &str) {
        self.local.succeeded(ip, account);
        {
            let mut known = lock(&self.known);
            known.by_ip.remove(&ip);
            known.by_account.remove(account);
        }
        let _ = self
            .events
            .try_send(Event::Succeeded(ip, account.to_string()));
    }
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

fn account_key(account: &str) -> String {
    format!("account:{account}")
}

/// The task: writes events, reads lockouts every [`SYNC_INTERVAL`].
async fn sync(
    policy: ThrottlePolicy,
    shared: SharedState,
    known: Arc<Mutex<Known>>,
    mut events: mpsc::Receiver<Event>,
) {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => return,
                Some(Event::Failed(ip, account)) => {
                    let n_ip = shared.add_login_failure(&ip_key(ip), FAILURE_WINDOW).await;
                    let n_account =
                        shared.add_login_failure(&account_key(&account), FAILURE_WINDOW).await;
                    let mut k = lock(&known);
                    if k.by_ip.len() >= MAX_TRACKED {
                        k.by_ip.clear();
                    }
                    if k.by_account.len() >= MAX_TRACKED {
                        k.by_account.clear();
                    }
                    match n_ip {
                        Ok(n) => {
                            k.by_ip.insert(ip, n);
                            if n >= policy.lockout_failures {
                                k.locked.insert(ip, Instant::now() + policy.lockout);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "login throttling: cannot count"),
                    }
                    if let Ok(n) = n_account {
                        k.by_account.insert(account, n);
                    }
                }
                Some(Event::Succeeded(ip, account)) => {
                    let keys = [ip_key(ip), account_key(&account)];
                    if let Err(e) = shared.clear_login_failures(&keys).await {
                        tracing::warn!(error = %e, "login throttling: cannot clear");
                    }
                }
            },
            _ = tick.tick() => {
                let over = shared
                    .login_failures_over(policy.lockout_failures, policy.lockout)
                    .await;
                match over {
                    Ok(rows) => {
                        let now = Instant::now();
                        let mut k = lock(&known);
                        k.locked.retain(|_, until| now < *until);
                        for (key, ago) in rows {
                            let Some(ip) = key.strip_prefix("ip:").and_then(|a| a.parse().ok())
                            else {
                                continue;
                            };
                            if k.locked.len() >= MAX_TRACKED {
                                break;
                            }
                            let left = policy.lockout.saturating_sub(ago);
                            k.locked.insert(ip, now + left);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "login throttling: cannot read"),
                }
            }
        }
    }
}
