//! Quota (RFC 9208): one quota root per user (named ""), with the
//! resources STORAGE (RFC822.SIZE of every entry of every mailbox, in
//! units of 1024 octets on the wire) and MESSAGE. A user's limits are
//! their own (`mailroom user quota`) or the `[quota]` defaults; 0 is
//! unlimited. IMAP (APPEND, COPY, MOVE) and SMTP (RCPT, end of DATA) ask
//! the same [`Limits`].

use directory::Directory;
use store::{Store, StoreError, Usage};

/// `[quota]` of the config: every user's limits unless they have their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaDefaults {
    pub storage: u64,
    pub messages: u64,
}

/// One user's effective limits; 0 is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Octets.
    pub storage: u64,
    pub messages: u64,
}

impl Limits {
    pub fn unlimited(&self) -> bool {
        self.storage == 0 && self.messages == 0
    }

    /// True when `usage` plus `bytes` octets in `messages` more messages
    /// stays within every limit.
    pub fn admits(&self, usage: Usage, bytes: u64, messages: u64) -> bool {
        let fits =
            |limit: u64, used: u64, more: u64| limit == 0 || used.saturating_add(more) <= limit;
        fits(self.storage, usage.bytes, bytes) && fits(self.messages, usage.messages, messages)
    }

    /// True when a limit is reached already (SMTP: 452 4.2.2 at RCPT).
    pub fn reached(&self, usage: Usage) -> bool {
        (self.storage != 0 && usage.bytes >= self.storage)
            || (self.messages != 0 && usage.messages >= self.messages)
    }
}

/// `account`'s limits: their own where set, else the defaults.
pub async fn limits(directory: &dyn Directory, defaults: QuotaDefaults, account: &str) -> Limits {
    // A directory error leaves the defaults: quota never makes mail
    // undeliverable because a lookup failed.
    let own = directory
        .quota(account)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    Limits {
        storage: own.storage.unwrap_or(defaults.storage),
        messages: own.messages.unwrap_or(defaults.messages),
    }
}

/// `account`'s limits and usage together; the usage is not read when
/// nothing is limited.
pub async fn status(
    directory: &dyn Directory,
    store: &dyn Store,
    defaults: QuotaDefaults,
    account: &str,
) -> Result<(Limits, Usage), StoreError> {
    let l = limits(directory, defaults, account).await;
    let u = if l.unlimited() {
        Usage::default()
    } else {
        store.usage(account.to_string()).await?
    };
    Ok((l, u))
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
}
