//! Who is "at their terminal": the presence registry behind SEND, SOML and
//! SAML (RFC 821 3.4, SPEC 1).
//!
//! A user is active while they have a logged-in IMAP session; such a session
//! registers here and receives terminal messages on a channel, which it shows
//! as an untagged `* OK [ALERT]` response (RFC 9051 7.1). The SMTP side only
//! asks "is this user active" and hands over a message; it never talks to a
//! session directly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// How many terminal messages may wait for one session before further ones
/// are refused (the sender then falls back as SOML/SAML allow).
pub const TERMINAL_QUEUE_DEPTH: usize = 32;

/// A message for a user's terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalMessage {
    /// The reverse-path of the SMTP transaction (empty for `<>`).
    pub from: String,
    /// The message as received (CRLF canonical).
    pub message: Arc<Vec<u8>>,
}

/// What the SMTP server needs from the presence registry.
pub trait Presence: Send + Sync + 'static {
    /// True while `account` has at least one session that can show a message.
    fn is_active(&self, account: &str) -> bool;
    /// Hands `msg` to every active session of `account`; true if at least one
    /// took it.
    fn deliver_terminal(&self, account: &str, msg: &TerminalMessage) -> bool;
}

type Sessions = HashMap<String, Vec<(u64, mpsc::Sender<TerminalMessage>)>>;

/// The in-process registry. IMAP sessions register on login; until the IMAP
/// issue lands nothing registers, so every user is inactive.
#[derive(Default)]
pub struct PresenceRegistry {
    sessions: Mutex<Sessions>,
    next_id: AtomicU64,
}

/// Keeps a session registered; dropping it unregisters.
pub struct Registration {
    registry: Arc<PresenceRegistry>,
    account: String,
    id: u64,
}

impl PresenceRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a session of `account` (canonical address). Terminal
    /// messages arrive on the returned receiver until the registration drops.
    pub fn register(
        self: &Arc<Self>,
        account: &str,
    ) -> (Registration, mpsc::Receiver<TerminalMessage>) {
        let (tx, rx) = mpsc::channel(TERMINAL_QUEUE_DEPTH);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.sessions.lock() {
            map.entry(account.to_string()).or_default().push((id, tx));
        }
        let reg = Registration {
            registry: Arc::clone(self),
            account: account.to_string(),
            id,
        };
        (reg, rx)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.sessions.lock()
            && let Some(list) = map.get_mut(&self.account)
        {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(&self.account);
            }
        }
    }
}

impl Presence for PresenceRegistry {
    fn is_active(&self, account: &str) -> bool {
        self.sessions
            .lock()
            .map(|map| {
                map.get(account)
                    .is_some_and(|list| list.iter().any(|(_, tx)| !tx.is_closed()))
            })
            .unwrap_or(false)
    }

    fn deliver_terminal(&self, account: &str, msg: &TerminalMessage) -> bool {
        let Ok(map) = self.sessions.lock() else {
            return false;
        };
        let Some(list) = map.get(account) else {
            return false;
        };
        let mut delivered = false;
        for (_, tx) in list {
            if tx.try_send(msg.clone()).is_ok() {
                delivered = true;
            }
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> TerminalMessage {
        TerminalMessage {
            from: "bob@example.test".into(),
            message: Arc::new(b"Subject: hi\r\n\r\nhello\r\n".to_vec()),
        }
    }

    #[test]
    fn nobody_is_active_until_registered() {
        let reg = PresenceRegistry::new();
        assert!(!reg.is_active("alice@example.test"));
        assert!(!reg.deliver_terminal("alice@example.test", &msg()));
    }

    #[test]
    fn registered_session_receives_terminal_message() {
        let reg = PresenceRegistry::new();
        let (guard, mut rx) = reg.register("alice@example.test");
        assert!(reg.is_active("alice@example.test"));
        assert!(reg.deliver_terminal("alice@example.test", &msg()));
        assert_eq!(rx.try_recv().ok(), Some(msg()));
        drop(guard);
        assert!(!reg.is_active("alice@example.test"));
    }
}
