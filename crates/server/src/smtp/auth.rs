//! AUTH (RFC 4954) over the shared SASL exchange, and the submission
//! service's rules (RFC 6409, RFC 8314): AUTH before MAIL on the submission
//! listeners, senders the user owns, and per-user sending limits against a
//! stolen password.
//!
//! AUTH is offered on the submission and submissions listeners (on the MTA
//! listener only with `smtp.mta_auth`), over TLS or to `local_networks`;
//! elsewhere before TLS it is `530 5.7.0 Must issue a STARTTLS command
//! first` (SPEC 5: no plaintext password on an unencrypted connection).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proto_smtp::Reply;

use super::session::{Action, Session, State, bad_sequence, reply};
use crate::net::Role;
use crate::sasl::{Exchange, Failure, Step};

/// The window of `submission.max_messages_per_hour`.
const RATE_WINDOW: Duration = Duration::from_secs(3600);

/// Messages each user sent in the last hour (submission's per-user limit).
#[derive(Default)]
pub struct SendRate {
    sent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SendRate {
    /// True when `account` may send one more message now (fewer than
    /// `limit` in the last hour).
    pub fn allows(&self, account: &str, limit: usize) -> bool {
        let now = Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let Some(q) = sent.get_mut(account) else {
            return limit > 0;
        };
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
        {
            q.pop_front();
        }
        q.len() < limit
    }

    /// Counts a message `account` sent.
    pub fn record(&self, account: &str) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.entry(account.to_string())
            .or_default()
            .push_back(Instant::now());
    }
}

fn sasl_failure(f: Failure) -> Reply {
    match f {
        // RFC 4954 4: a cancelled exchange is 501.
        Failure::Cancelled => reply(501, 5, 7, 0, "Authentication cancelled"),
        Failure::BadBase64 => reply(501, 5, 5, 2, "Invalid base64 data"),
        Failure::Malformed => reply(501, 5, 5, 2, "Malformed authentication data"),
        // RFC 4954 4: 500 5.5.6 for an over-long response line.
        Failure::TooLong => reply(500, 5, 5, 6, "Authentication exchange line is too long"),
        Failure::AuthzDenied | Failure::Invalid => {
            reply(535, 5, 7, 8, "Authentication credentials invalid")
        }
        // RFC 4954 6: 454 4.7.0, a temporary failure.
        Failure::Throttled | Failure::Unavailable => {
            reply(454, 4, 7, 0, "Temporary authentication failure")
        }
    }
}

impl Session {
    /// True on a submission listener (RFC 6409: AUTH before MAIL).
    pub(crate) fn is_submission(&self) -> bool {
        matches!(self.role, Role::Submission | Role::Submissions)
    }

    /// AUTH is a service of this listener (not yet asking about TLS).
    fn auth_service(&self) -> bool {
        self.is_submission() || self.ctx.config.mta_auth
    }

    /// AUTH is advertised and accepted now: on a listener that offers it,
    /// over TLS or from `local_networks`.
    pub(crate) fn auth_offered(&self) -> bool {
        self.auth_service() && (self.tls.is_some() || self.is_local_client())
    }

    /// True while the next line is a SASL response, not a command.
    pub fn awaiting_sasl(&self) -> bool {
        self.sasl.is_some()
    }

    /// AUTH mechanism [initial-response] (RFC 4954 4).
    pub(crate) async fn auth(&mut self, mechanism: &str, initial: Option<&str>) -> Action {
        if self.authenticated.is_some() {
            return Action::Reply(bad_sequence("Already authenticated"));
        }
        match self.state {
            State::Greeted => return Action::Reply(bad_sequence("Send EHLO first")),
            State::Transaction(_) => {
                return Action::Reply(bad_sequence("AUTH not allowed during a mail transaction"));
            }
            State::Ready => {}
        }
        if !self.auth_service() {
            return Action::Reply(bad_sequence("Authentication not enabled"));
        }
        if !self.auth_offered() {
            return Action::Reply(reply(530, 5, 7, 0, "Must issue a STARTTLS command first"));
        }
        let Some(mech) = crate::sasl::offered(&self.ctx.auth, mechanism) else {
            return Action::Reply(reply(504, 5, 5, 4, "Unrecognized authentication type"));
        };
        let (ex, step) = Exchange::start(
            &self.ctx.auth,
            self.peer.ip(),
            mech,
            initial.map(str::as_bytes),
        )
        .await;
        Action::Reply(self.sasl_step(ex, step))
    }

    /// The client's response to a 334 challenge; None when it was longer
    /// than the SASL limit.
    pub async fn sasl_response(&mut self, line: Option<&[u8]>) -> Reply {
        let Some(ex) = self.sasl.take() else {
            return bad_sequence("No authentication in progress");
        };
        let Some(line) = line else {
            return sasl_failure(Failure::TooLong);
        };
        let (ex, step) = ex.respond(line).await;
        self.sasl_step(ex, step)
    }

    fn sasl_step(&mut self, ex: Option<Exchange>, step: Step) -> Reply {
        match step {
            Step::Challenge(c) => {
                self.sasl = ex;
                // RFC 4954 4: the 334 text is the base64 challenge alone.
                Reply::new(334, None, proto_common::base64_encode(&c))
            }
            Step::Done(account) => {
                self.ctx
                    .metrics
                    .login("smtp", crate::metrics::LoginResult::Ok);
                tracing::info!(%account, "smtp login");
                self.authenticated = Some(account);
                reply(235, 2, 7, 0, "Authentication successful")
            }
            Step::Failed(f) => {
                self.ctx
                    .metrics
                    .login("smtp", crate::metrics::LoginResult::from(&f));
                sasl_failure(f)
            }
        }
    }

    /// Submission's checks at MAIL (RFC 6409 4.3, 6.1): authenticated,
    /// within the hourly limit, and sending as themselves. `sender` is the
    /// qualified reverse-path, empty for `<>`.
    pub(crate) async fn submission_check(&self, sender: &str) -> Option<Reply> {
        let Some(account) = self.authenticated.as_deref() else {
            if self.is_submission() {
                return Some(reply(530, 5, 7, 0, "Authentication required"));
            }
            return None;
        };
        let limit = self.ctx.config.submission.max_messages_per_hour;
        if !self.ctx.send_rate.allows(account, limit) {
            tracing::info!(%account, limit, "submission: hourly message limit reached");
            return Some(reply(
                450,
                4,
                7,
                1,
                "Too many messages sent in the last hour, try later",
            ));
        }
        if !sender.is_empty() && !self.owns(account, sender).await {
            tracing::info!(
                %account,
                sender = %proto_common::log_safe(sender),
                "submission: sender not owned"
            );
            return Some(reply(
                553,
                5,
                7,
                1,
                "Sender address rejected: not owned by user",
            ));
        }
        None
    }

    /// The sender is the user's own address, or one that delivers to them
    /// (an alias, a list they are on).
    async fn owns(&self, account: &str, sender: &str) -> bool {
        if sender.eq_ignore_ascii_case(account) {
            return true;
        }
        match self.ctx.directory.resolve(sender).await {
            Ok(directory::Resolution::Deliver { local, .. }) => {
                local.iter().any(|a| a.eq_ignore_ascii_case(account))
            }
            Ok(directory::Resolution::Forward { local, .. }) => {
                local.iter().any(|a| a.eq_ignore_ascii_case(account))
            }
            _ => false,
        }
    }
}
