//! Logging in: USER and PASS (RFC 1939 7) and AUTH PLAIN (RFC 5034 4,
//! RFC 4616), both through the shared [`crate::Authenticator`] so failures
//! are throttled per client address and per account whatever the protocol
//! (SPEC 5).
//!
//! USER answers `+OK` for any name, so names cannot be probed; the PASS
//! that follows fails for an unknown name exactly as for a wrong password,
//! with `-ERR [AUTH]` (RFC 3206 5) after the Authenticator's delay. A
//! store failure while opening the maildrop is `-ERR [SYS/TEMP]`.

use std::sync::Arc;

use proto_pop3::{AuthStart, RespCode, Response};

use super::maildrop::Maildrop;
use super::session::{Action, Authorization, Session, State, temporary_failure};
use crate::sasl::{Exchange, Failure, Step};

fn auth_failed() -> Response {
    Response::err_code(RespCode::Auth, "Authentication failed.")
}

fn plaintext_refused() -> Response {
    Response::err_code(
        RespCode::Auth,
        "Plaintext authentication disallowed without TLS",
    )
}

impl Session {
    fn authorization(&mut self) -> Option<&mut Authorization> {
        match &mut self.state {
            State::Authorization(a) => Some(a),
            State::Transaction(_) => None,
        }
    }

    /// USER name: remembered for PASS, whether or not it exists.
    pub(super) fn user(&mut self, name: String) -> Response {
        if !self.plaintext_allowed() {
            return plaintext_refused();
        }
        if let Some(a) = self.authorization() {
            a.user = Some(name);
        }
        Response::ok("")
    }

    /// PASS password, after USER.
    pub(super) async fn pass(&mut self, password: String) -> Response {
        if !self.plaintext_allowed() {
            return plaintext_refused();
        }
        // RFC 1939 7: after a failed PASS the server returns to the start
        // of AUTHORIZATION, so the name is forgotten whatever the outcome.
        let Some(user) = self.authorization().and_then(|a| a.user.take()) else {
            return Response::err("No user name given: send USER first");
        };
        self.login(&user, &password).await
    }

    /// AUTH: without a mechanism lists them (RFC 5034 4 leaves that to the
    /// server; CAPA's SASL line says the same); with one, runs the shared
    /// SASL exchange, with the initial response if given.
    pub(super) async fn auth(&mut self, start: Option<AuthStart>) -> Action {
        let Some(start) = start else {
            return Action::Lines(
                Response::ok("Supported mechanisms follow"),
                crate::sasl::mechanisms(&self.ctx.auth)
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
            );
        };
        let Some(mech) = crate::sasl::offered(&self.ctx.auth, &start.mechanism) else {
            return Action::Reply(Response::err("Unsupported authentication mechanism"));
        };
        if !self.plaintext_allowed() {
            return Action::Reply(plaintext_refused());
        }
        if let Some(a) = self.authorization() {
            a.user = None;
        }
        let (ex, step) = Exchange::start(
            &self.ctx.auth,
            self.peer.ip(),
            mech,
            start.initial_response.as_deref().map(str::as_bytes),
        )
        .await;
        self.sasl_step(ex, step).await
    }

    /// The client's line after a challenge (RFC 5034 4; `*` cancels).
    pub async fn sasl_response(&mut self, line: &[u8]) -> Action {
        let Some(ex) = self.authorization().and_then(|a| a.sasl.take()) else {
            return Action::Reply(Response::err("No authentication in progress"));
        };
        let (ex, step) = ex.respond(line).await;
        self.sasl_step(ex, step).await
    }

    async fn sasl_step(&mut self, ex: Option<Exchange>, step: Step) -> Action {
        match step {
            Step::Challenge(c) => {
                if let Some(a) = self.authorization() {
                    a.sasl = ex;
                }
                Action::Continue(proto_common::base64_encode(&c))
            }
            Step::Done(account) => {
                self.ctx
                    .metrics
                    .login("pop3", crate::metrics::LoginResult::Ok);
                Action::Reply(self.enter_transaction(account).await)
            }
            Step::Failed(f) => {
                self.ctx
                    .metrics
                    .login("pop3", crate::metrics::LoginResult::from(&f));
                Action::Reply(failure(f))
            }
        }
    }

    /// Verifies a USER/PASS password and opens the maildrop.
    async fn login(&mut self, login: &str, password: &str) -> Response {
        let ip = self.peer.ip();
        match self.ctx.auth.login(ip, login, password).await {
            Ok(account) => {
                self.ctx
                    .metrics
                    .login("pop3", crate::metrics::LoginResult::Ok);
                self.enter_transaction(account).await
            }
            Err(f) => {
                self.ctx
                    .metrics
                    .login("pop3", crate::metrics::LoginResult::from(&f));
                failure(f.into())
            }
        }
    }

    /// Opens `account`'s maildrop: TRANSACTION.
    async fn enter_transaction(&mut self, account: String) -> Response {
        let store = Arc::clone(&self.ctx.store);
        match Maildrop::open(&store, &account).await {
            Ok(maildrop) => {
                tracing::info!(account = %account, messages = maildrop.len(), "pop3 login");
                self.state = State::Transaction(Box::new(maildrop));
                Response::ok("Logged in.")
            }
            Err(e) => {
                tracing::warn!(account = %account, error = %e, "pop3: cannot open the maildrop");
                temporary_failure()
            }
        }
    }
}

/// The reply to a failed login or exchange (RFC 3206 codes).
fn failure(f: Failure) -> Response {
    match f {
        Failure::Cancelled => Response::err("Authentication cancelled"),
        Failure::BadBase64 => Response::err("Invalid base64 in the SASL response"),
        Failure::TooLong => Response::err("SASL response too long"),
        Failure::Malformed | Failure::Invalid => auth_failed(),
        Failure::AuthzDenied => Response::err_code(
            RespCode::Auth,
            "The authorization identity must be empty or your own",
        ),
        Failure::Throttled => {
            Response::err_code(RespCode::SysTemp, "Too many failed logins, try again later")
        }
        Failure::Unavailable => temporary_failure(),
    }
}

#[cfg(test)]
mod tests {
    use proto_pop3::{RespCode, encode_plain};

    use super::super::testkit::{Kit, cmd, sasl};

    #[tokio::test]
    async fn user_then_pass_logs_in_with_the_local_part() {
        let kit = Kit::new();
        let mut s = kit.session();
        assert_eq!(
            cmd(&mut s, "user alice").await.status.to_bytes(),
            b"+OK\r\n"
        );
        assert_eq!(
            cmd(&mut s, "pass pw").await.status.to_bytes(),
            b"+OK Logged in.\r\n"
        );
        assert!(s.logged_in());
    }

    #[tokio::test]
    async fn unknown_user_gets_ok_and_the_pass_fails_like_a_wrong_password() {
        let kit = Kit::new();
        let mut s = kit.session();
        assert!(cmd(&mut s, "USER nobody").await.status.ok);
        let unknown = cmd(&mut s, "PASS pw").await.status;
        assert!(cmd(&mut s, "USER alice").await.status.ok);
        let wrong = cmd(&mut s, "PASS wrong").await.status;
        assert_eq!(unknown, wrong);
        assert_eq!(wrong.code, Some(RespCode::Auth));
        assert!(!s.logged_in());
    }

    #[tokio::test]
    async fn failed_pass_forgets_the_user() {
        let kit = Kit::new();
        let mut s = kit.session();
        cmd(&mut s, "USER alice").await;
        assert!(!cmd(&mut s, "PASS wrong").await.status.ok);
        let r = cmd(&mut s, "PASS pw").await.status;
        assert!(r.text.contains("USER first"), "{r:?}");
    }

    #[tokio::test]
    async fn pass_without_user_is_err() {
        let kit = Kit::new();
        let mut s = kit.session();
        assert!(!cmd(&mut s, "PASS pw").await.status.ok);
    }

    #[tokio::test]
    async fn auth_without_mechanism_lists_the_mechanisms() {
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "AUTH").await;
        assert!(r.status.ok);
        assert_eq!(r.lines, ["PLAIN", "LOGIN", "SCRAM-SHA-256"]);
    }

    #[tokio::test]
    async fn auth_login_asks_for_username_and_password() {
        use proto_common::base64_encode;
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "AUTH LOGIN").await;
        assert!(r.continuation);
        let r = sasl(&mut s, &base64_encode(b"alice")).await;
        assert_eq!(r.text, format!("continue {}", base64_encode(b"Password:")));
        let r = sasl(&mut s, &base64_encode(b"pw")).await;
        assert_eq!(r.text, "Logged in.");
        assert!(s.logged_in());
    }

    #[tokio::test]
    async fn auth_plain_with_initial_response_logs_in() {
        let kit = Kit::new();
        let mut s = kit.session();
        let ir = encode_plain("", "alice@example.test", "pw");
        let r = cmd(&mut s, &format!("AUTH PLAIN {ir}")).await;
        assert_eq!(r.status.text, "Logged in.");
        assert!(s.logged_in());
    }

    #[tokio::test]
    async fn auth_plain_with_continuation_logs_in() {
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "AUTH PLAIN").await;
        assert!(r.continuation);
        assert!(s.awaiting_sasl());
        let r = sasl(&mut s, &encode_plain("alice", "alice", "pw")).await;
        assert!(r.ok, "{r:?}");
        assert!(s.logged_in());
    }

    #[tokio::test]
    async fn star_cancels_auth() {
        let kit = Kit::new();
        let mut s = kit.session();
        cmd(&mut s, "AUTH PLAIN").await;
        let r = sasl(&mut s, "*").await;
        assert!(!r.ok);
        assert!(!s.awaiting_sasl());
        assert!(!s.logged_in());
    }

    #[tokio::test]
    async fn auth_plain_with_someone_elses_authzid_is_refused() {
        let kit = Kit::new();
        let mut s = kit.session();
        let ir = encode_plain("bob@example.test", "alice", "pw");
        let r = cmd(&mut s, &format!("AUTH PLAIN {ir}")).await.status;
        assert_eq!(r.code, Some(RespCode::Auth));
        assert!(!s.logged_in());
    }

    #[tokio::test]
    async fn auth_plain_with_bad_base64_or_wrong_password_is_err() {
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "AUTH PLAIN !!!!").await.status;
        assert!(!r.ok);
        let ir = encode_plain("", "alice", "nope");
        let r = cmd(&mut s, &format!("AUTH PLAIN {ir}")).await.status;
        assert_eq!(r.code, Some(RespCode::Auth));
    }

    #[tokio::test]
    async fn unknown_mechanism_is_err() {
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "AUTH CRAM-MD5").await.status;
        assert!(!r.ok);
        assert!(!s.awaiting_sasl());
    }

    #[tokio::test]
    async fn plaintext_login_from_a_remote_address_without_tls_is_refused() {
        let kit = Kit::new();
        let mut s = kit.session_from([198, 51, 100, 7]);
        assert_eq!(
            cmd(&mut s, "USER alice").await.status.code,
            Some(RespCode::Auth)
        );
        let ir = encode_plain("", "alice", "pw");
        assert!(!cmd(&mut s, &format!("AUTH PLAIN {ir}")).await.status.ok);
        assert!(!s.logged_in());
    }
}
