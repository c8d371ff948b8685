//! Quota (RFC 9208): one quota root per user (named ""), with the
//! resources STORAGE (RFC822.SIZE of every entry of every mailbox, in
//! units of 1024 octets on the wire) and MESSAGE. A user's limits are
//! their own (`mailroom user quota`) or the `[quota]` defaults; 0 is
//! unlimited. IMAP (APPEND, COPY) and SMTP (RCPT, end of DATA) ask the
//! same [`QuotaBook`].
//!
//! The book keeps the users' own limits in memory, reloaded from the
//! directory every [`REFRESH`] (the CLI writes them from another
//! process): a RCPT or APPEND costs no directory query, and, with no
//! limits at all, no store query either. A changed quota applies within
//! [`REFRESH`].

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use directory::{Directory, UserQuota};
use store::{Store, StoreError, Usage};

/// How often the users' own limits are reloaded from the directory.
pub const REFRESH: Duration = Duration::from_secs(2);

/// `[quota]` of the config: every user's limits unless they have their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaDefaults {
    pub storage: u64,
    pub messages: u64,
}

/// One user's effective limits; 0 is unlimited. The store checks them
/// inside APPEND's and COPY's transactions.
pub use store::Quota as Limits;

/// The defaults and every user's own limits.
pub struct QuotaBook {
    defaults: QuotaDefaults,
    own: RwLock<HashMap<String, UserQuota>>,
}

impl QuotaBook {
    /// A book of the defaults only (tests, and before the first load).
    pub fn fixed(defaults: QuotaDefaults) -> Arc<QuotaBook> {
        Arc::new(QuotaBook {
            defaults,
            own: RwLock::default(),
        })
    }

    /// Loads the users' own limits and keeps reloading them every
    /// [`REFRESH`] while the book is in use; needs a tokio runtime.
    pub async fn start(directory: Arc<dyn Directory>, defaults: QuotaDefaults) -> Arc<QuotaBook> {
        let book = QuotaBook::fixed(defaults);
        book.reload(directory.as_ref()).await;
        let weak = Arc::downgrade(&book);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let Some(book) = weak.upgrade() else { return };
                book.reload(directory.as_ref()).await;
            }
        });
        book
    }

    async fn reload(&self, directory: &dyn Directory) {
        match directory.quotas().await {
            Ok(list) => {
                let map = list
                    .into_iter()
                    .map(|(a, q)| (a.to_lowercase(), q))
                    .collect();
                *self.own.write().unwrap_or_else(PoisonError::into_inner) = map;
            }
            // The last good list stays: a failed read is not a new quota.
            Err(e) => tracing::warn!(error = %e, "reloading quotas failed"),
        }
    }

    /// `account`'s limits: their own where set, else the defaults.
    pub fn limits(&self, account: &str) -> Limits {
        let own = self
            .own
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&account.to_lowercase())
            .copied()
            .unwrap_or_default();
        Limits {
            storage: own.storage.unwrap_or(self.defaults.storage),
            messages: own.messages.unwrap_or(self.defaults.messages),
        }
    }

    /// `account`'s limits and usage; the usage is not read when nothing
    /// is limited.
    pub async fn status(
        &self,
        store: &dyn Store,
        account: &str,
    ) -> Result<(Limits, Usage), StoreError> {
        let l = self.limits(account);
        let u = if l.unlimited() {
            Usage::default()
        } else {
            store.usage(account.to_string()).await?
        };
        Ok((l, u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_admit_up_to_the_boundary_and_zero_is_unlimited() {
        let l = Limits {
            storage: 100,
            messages: 2,
        };
        let u = Usage {
            bytes: 60,
            messages: 1,
        };
        assert!(l.admits(u, 40, 1));
        assert!(!l.admits(u, 41, 1));
        assert!(!l.admits(u, 1, 2));
        assert!(!l.reached(u));
        assert!(l.reached(Usage {
            bytes: 100,
            messages: 0
        }));
        assert!(Limits::default().admits(u, u64::MAX, u64::MAX));
        assert!(!Limits::default().reached(u));
    }

    #[test]
    fn a_users_own_limit_wins_over_the_default() {
        let book = QuotaBook::fixed(QuotaDefaults {
            storage: 1000,
            messages: 5,
        });
        book.own.write().unwrap().insert(
            "bob@example.test".into(),
            UserQuota {
                storage: Some(0),
                messages: None,
            },
        );
        assert_eq!(
            book.limits("Bob@example.test"),
            Limits {
                storage: 0,
                messages: 5
            }
        );
        assert_eq!(book.limits("alice@example.test").storage, 1000);
    }
}
