//! What every IMAP session shares: the configuration, the store, the
//! authenticator, the change hub, TLS, the presence registry (the users'
//! terminals) and the process-wide \Recent tracker (RFC 3501 2.3.2). A
//! leaf: it knows nothing of sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use store::{MailboxId, Store, Uid};

use super::config::ImapConfig;
use super::hub::ChangeHub;
use crate::auth::Authenticator;
use crate::presence::PresenceRegistry;
use crate::tls::Tls;

/// What the server shares with every IMAP session.
pub struct ImapContext {
    pub config: ImapConfig,
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub hub: Arc<ChangeHub>,
    pub recent: RecentTracker,
    /// Where logged-in sessions register as the user's terminal (SEND,
    /// SOML, SAML: RFC 821 3.4, SPEC 1).
    pub presence: Arc<PresenceRegistry>,
    /// Every user's quota limits (RFC 9208).
    pub quota: Arc<crate::quota::QuotaBook>,
    /// Certificates for STARTTLS and the IMAPS port; None: no TLS.
    pub tls: Option<Arc<Tls>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl ImapContext {
    /// Needs a tokio runtime (starts the change hub).
    pub fn new(
        config: ImapConfig,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        tls: Option<Arc<Tls>>,
        metrics: Arc<crate::metrics::Metrics>,
        presence: Arc<PresenceRegistry>,
        quota: Arc<crate::quota::QuotaBook>,
    ) -> Arc<Self> {
        let hub = ChangeHub::start(&store, Arc::clone(&presence));
        Arc::new(ImapContext {
            config,
            store,
            auth,
            hub,
            recent: RecentTracker::default(),
            presence,
            quota,
            tls,
            metrics,
        })
    }
}

/// \Recent (RFC 3501 2.3.2): the first session to see a new message owns
/// it. Kept per process: the highest UID of each mailbox some session has
/// already been shown.
#[derive(Default)]
pub struct RecentTracker {
    seen: Mutex<HashMap<MailboxId, u32>>,
}

impl RecentTracker {
    /// The UIDs (ascending) that are recent for a session seeing them now;
    /// with `claim`, they stop being recent for every other session.
    pub fn claim(&self, mailbox: MailboxId, uids: &[Uid], claim: bool) -> Vec<Uid> {
        self.claim_above(mailbox, uids.iter().copied(), claim)
    }

    /// [`RecentTracker::claim`] over any ascending run of UIDs (a mailbox
    /// index's, without a copy of them all).
    pub fn claim_above(
        &self,
        mailbox: MailboxId,
        uids: impl Iterator<Item = Uid>,
        claim: bool,
    ) -> Vec<Uid> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let last = seen.get(&mailbox).copied().unwrap_or(0);
        let recent: Vec<Uid> = uids.filter(|u| u.0 > last).collect();
        if claim && let Some(max) = recent.last() {
            seen.insert(mailbox, max.0);
        }
        recent
    }

    /// How many of these UIDs nobody has seen yet (STATUS RECENT).
    pub fn count_unclaimed(&self, mailbox: MailboxId, uids: &[Uid]) -> u32 {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let last = seen.get(&mailbox).copied().unwrap_or(0);
        uids.iter().filter(|u| u.0 > last).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_belongs_to_the_first_session_that_sees_it() {
        let t = RecentTracker::default();
        let mb = MailboxId(1);
        let uids = [Uid(1), Uid(2)];
        assert_eq!(t.claim(mb, &uids, false), uids.to_vec());
        assert_eq!(t.claim(mb, &uids, true), uids.to_vec());
        assert!(t.claim(mb, &uids, true).is_empty());
        assert_eq!(t.count_unclaimed(mb, &[Uid(2), Uid(3)]), 1);
    }
}
