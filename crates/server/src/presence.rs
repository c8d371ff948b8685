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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// How many terminal messages may wait for one session before further ones
/// are refused (the sender then falls back to the mailbox).
pub const TERMINAL_QUEUE_DEPTH: usize = 32;

/// At most one ALERT per user per this interval (issue 15): RFC 9051 7.1
/// obliges the client to show every ALERT to the person, so a burst of
/// SENDs would be a flood of dialogs; the rest go to the mailbox.
pub const ALERT_INTERVAL: Duration = Duration::from_secs(1);

/// Longest alert text kept per message, in characters, before a session
/// cuts it to its `imap.terminal_max_chars`: bounds the memory of queued
/// messages whatever the size of the mail.
pub const MAX_TERMINAL_TEXT: usize = 1000;

/// A message for a user's terminal: the alert text, made once at delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalMessage {
    /// The reverse-path of the SMTP transaction (empty for `<>`).
    pub from: String,
    /// `Message from <sender>: <Subject> - <first line of the body>`, with
    /// no control characters (CR, LF, ESC, C1, DEL) and at most
    /// [`MAX_TERMINAL_TEXT`] characters; still UTF-8 (see [`Self::shown`]).
    pub text: Arc<str>,
}

impl TerminalMessage {
    /// The terminal form of `message` (CRLF canonical, as received) from
    /// `from`: its decoded Subject and the first non-empty line of its
    /// first text part.
    pub fn new(from: &str, message: &[u8]) -> Self {
        let parsed = proto_imap::mime::search_text(message, true);
        let subject = parsed
            .headers
            .iter()
            .find(|(name, _)| name == "subject")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let first_line = parsed
            .bodies
            .first()
            .and_then(|b| b.lines().map(str::trim).find(|l| !l.is_empty()))
            .unwrap_or("");
        let sender = if from.is_empty() { "<>" } else { from };
        let raw = format!("Message from {sender}: {subject} - {first_line}");
        TerminalMessage {
            from: from.to_string(),
            text: sanitize(&raw, MAX_TERMINAL_TEXT).into(),
        }
    }

    /// The text as one session shows it: at most `max_chars` characters;
    /// non-ASCII becomes `?` unless the client said it takes UTF-8
    /// (RFC 9051 and ENABLE IMAP4rev2; RFC 6855 3 otherwise forbids it).
    pub fn shown(&self, utf8: bool, max_chars: usize) -> String {
        self.text
            .chars()
            .take(max_chars.max(1))
            .map(|c| if utf8 || c.is_ascii() { c } else { '?' })
            .collect()
    }
}

/// One line of text with nothing a terminal or an IMAP parser would act on:
/// every control character (C0 with CR, LF and ESC, DEL, C1) and the
/// Unicode line and bidirectional controls become a space, runs of spaces
/// collapse, and at most `max_chars` characters remain.
fn sanitize(raw: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in raw.chars() {
        let c = if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
        {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if count == max_chars {
            break;
        }
        out.push(c);
        count += 1;
    }
    let trimmed = out.trim_end();
    trimmed.to_string()
}

/// What the SMTP server needs from the presence registry.
pub trait Presence: Send + Sync + 'static {
    /// True while `account` has at least one session that can show a message.
    fn is_active(&self, account: &str) -> bool;
    /// Takes `account`'s ALERT slot (one per [`ALERT_INTERVAL`]): true if
    /// the user is active and may be shown a message now. Called before
    /// the commit, so that a refused slot sends the message to the mailbox.
    fn claim_alert(&self, account: &str) -> bool;
    /// Hands `msg` to every active session of `account`; true if at least one
    /// took it. Called only after the message is committed.
    fn deliver_terminal(&self, account: &str, msg: &TerminalMessage) -> bool;
}

type Sessions = HashMap<String, Vec<(u64, mpsc::Sender<TerminalMessage>)>>;

/// The in-process registry: every logged-in IMAP session registers; the
/// registration drops with the session (LOGOUT, a dropped connection) and
/// [`PresenceRegistry::remove_account`] ends all of a deleted user's.
/// Accounts are keyed in lower case, as the change hub keys deletions.
#[derive(Default)]
pub struct PresenceRegistry {
    sessions: Mutex<Sessions>,
    /// When each user was last given an ALERT slot; swept when it grows.
    last_alert: Mutex<HashMap<String, Instant>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a session of `account` (canonical address). Terminal
    /// messages arrive on the returned receiver until the registration drops.
    pub fn register(
        self: &Arc<Self>,
        account: &str,
    ) -> (Registration, mpsc::Receiver<TerminalMessage>) {
        let (tx, rx) = mpsc::channel(TERMINAL_QUEUE_DEPTH);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = account.to_lowercase();
        self.lock().entry(key.clone()).or_default().push((id, tx));
        let reg = Registration {
            registry: Arc::clone(self),
            account: key,
            id,
        };
        (reg, rx)
    }

    /// The account was deleted (`mailroom user del`): none of its sessions
    /// counts any more, at once, whatever they are doing.
    pub fn remove_account(&self, account: &str) {
        self.lock().remove(&account.to_lowercase());
    }

    /// Every account with at least one session that can show a message:
    /// what a node announces to the others (scale-out presence).
    pub fn active_accounts(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, list)| list.iter().any(|(_, tx)| !tx.is_closed()))
            .map(|(account, _)| account.clone())
            .collect()
    }

    /// How many sessions of `account` are registered.
    pub fn sessions_of(&self, account: &str) -> usize {
        self.lock().get(&account.to_lowercase()).map_or(0, |list| {
            list.iter().filter(|(_, tx)| !tx.is_closed()).count()
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.registry.lock();
        if let Some(list) = map.get_mut(&self.account) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(&self.account);
            }
        }
    }
}

impl Presence for PresenceRegistry {
    fn is_active(&self, account: &str) -> bool {
        self.sessions_of(account) > 0
    }

    fn claim_alert(&self, account: &str) -> bool {
        if !self.is_active(account) {
            return false;
        }
        let now = Instant::now();
        let mut last = self
            .last_alert
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.len() > 1024 {
            last.retain(|_, t| now.duration_since(*t) < ALERT_INTERVAL);
        }
        let key = account.to_lowercase();
        match last.get(&key) {
            Some(t) if now.duration_since(*t) < ALERT_INTERVAL => false,
            _ => {
                last.insert(key, now);
                true
            }
        }
    }

    fn deliver_terminal(&self, account: &str, msg: &TerminalMessage) -> bool {
        let map = self.lock();
        let Some(list) = map.get(&account.to_lowercase()) else {
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
        TerminalMessage::new("bob@example.test", b"Subject: hi\r\n\r\nhello\r\n")
    }

    #[test]
    fn nobody_is_active_until_registered() {
        let reg = PresenceRegistry::new();
        assert!(!reg.is_active("alice@example.test"));
        assert!(!reg.claim_alert("alice@example.test"));
        assert!(!reg.deliver_terminal("alice@example.test", &msg()));
    }

    #[test]
    fn registered_session_receives_terminal_message() {
        let reg = PresenceRegistry::new();
        let (guard, mut rx) = reg.register("Alice@example.test");
        assert!(reg.is_active("alice@example.test"));
        assert!(reg.deliver_terminal("alice@example.test", &msg()));
        assert_eq!(rx.try_recv().ok(), Some(msg()));
        drop(guard);
        assert!(!reg.is_active("alice@example.test"));
    }

    #[test]
    fn a_deleted_account_stops_counting_at_once() {
        let reg = PresenceRegistry::new();
        let (_a, _ra) = reg.register("alice@example.test");
        let (_b, _rb) = reg.register("alice@example.test");
        assert_eq!(reg.sessions_of("alice@example.test"), 2);
        reg.remove_account("ALICE@example.test");
        assert!(!reg.is_active("alice@example.test"));
    }

    #[test]
    fn one_alert_slot_per_user_per_interval() {
        let reg = PresenceRegistry::new();
        let (_a, _ra) = reg.register("alice@example.test");
        let (_b, _rb) = reg.register("bob@example.test");
        assert!(reg.claim_alert("alice@example.test"));
        assert!(!reg.claim_alert("alice@example.test"));
        assert!(reg.claim_alert("bob@example.test"));
    }

    #[test]
    fn alert_text_has_sender_subject_and_first_body_line() {
        let m = TerminalMessage::new(
            "bob@example.test",
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n\r\n  lunch?\r\nsecond\r\n",
        );
        assert_eq!(
            &*m.text,
            "Message from bob@example.test: caf\u{e9} - lunch?"
        );
        assert_eq!(
            m.shown(false, 200),
            "Message from bob@example.test: caf? - lunch?"
        );
        assert_eq!(m.shown(true, 200), &*m.text);
        assert_eq!(m.shown(true, 7), "Message");
        assert_eq!(
            TerminalMessage::new("", b"\r\nx\r\n").shown(false, 200),
            "Message from <>: - x"
        );
    }

    #[test]
    fn control_characters_and_length_cannot_escape_the_line() {
        // CR LF can only arrive encoded (RFC 2047): raw, it ends the field.
        let subject = format!(
            "=?utf-8?q?a=0D=0A*_BYE_x?= \x1b[2J\x07\u{9b}\u{202e}z{}",
            "y".repeat(10_000)
        );
        let raw = format!("Subject: {subject}\r\n\r\nbody\r\n");
        let m = TerminalMessage::new("x@remote.test", raw.as_bytes());
        assert!(m.text.chars().count() <= MAX_TERMINAL_TEXT);
        assert!(!m.text.chars().any(|c| c.is_control()), "{:?}", m.text);
        assert!(
            m.text
                .starts_with("Message from x@remote.test: a * BYE x [2J zy"),
            "{:?}",
            m.text
        );
        assert_eq!(m.shown(false, 200).chars().count(), 200);
    }
}
