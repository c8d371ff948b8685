//! One SASL exchange (RFC 4422) for SMTP AUTH (RFC 4954), IMAP
//! AUTHENTICATE (RFC 9051 6.2.2, SASL-IR RFC 4959) and POP3 AUTH (RFC
//! 5034): the mechanisms, the base64 of every response, `*` to cancel,
//! and the login through the shared [`Authenticator`] (whose throttling
//! covers every protocol). Each protocol only frames challenges and maps
//! [`Failure`] to its own reply.
//!
//! Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login; its
//! state machine is proto-common's) and
//! SCRAM-SHA-256 (RFC 5802, RFC 7677; its state machine is proto-common's,
//! its keys the directory's). SCRAM's server-final message is sent as one
//! more challenge, which the client answers with an empty response (RFC
//! 4954 4, RFC 9051 6.2.2, RFC 5034 4).

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::{Authenticator, LoginFailure};

/// Longest client response accepted, base64 and CRLF included: issue 11's
/// 12 288 octets, in every protocol whatever its command line limit (POP3's
/// 512 included; RFC 4954 4 and RFC 5034 4 allow responses longer than a
/// command line).
pub const MAX_SASL_RESPONSE: usize = 12_288;

pub use proto_common::Mechanism;

/// The order mechanisms are advertised in (RFC 4422 leaves it to us).
const ADVERTISED: [Mechanism; 3] = [Mechanism::Plain, Mechanism::Login, Mechanism::ScramSha256];

/// The mechanisms offered: SCRAM-SHA-256 only while `[auth] scram` is on.
pub fn mechanisms(auth: &Authenticator) -> Vec<&'static str> {
    ADVERTISED
        .into_iter()
        .filter(|m| *m != Mechanism::ScramSha256 || auth.directory().scram_enabled())
        .map(Mechanism::name)
        .collect()
}

/// The mechanism a client names, if we offer it now.
pub fn offered(auth: &Authenticator, name: &str) -> Option<Mechanism> {
    Mechanism::from_name(name)
        .filter(|m| *m != Mechanism::ScramSha256 || auth.directory().scram_enabled())
}

/// Why an exchange ended without a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client sent `*` (RFC 4422 3.5).
    Cancelled,
    /// A response that is not base64 (RFC 4648 4).
    BadBase64,
    /// Base64, but not what the mechanism expects.
    Malformed,
    /// Longer than [`MAX_SASL_RESPONSE`].
    TooLong,
    /// The authorization identity is someone else (SPEC 7).
    AuthzDenied,
    /// Wrong name or password.
    Invalid,
    /// Too many failures: try again later.
    Throttled,
    /// The directory could not be read.
    Unavailable,
}

impl From<LoginFailure> for Failure {
    fn from(f: LoginFailure) -> Self {
        match f {
            LoginFailure::Invalid => Failure::Invalid,
            LoginFailure::Throttled => Failure::Throttled,
            LoginFailure::Unavailable => Failure::Unavailable,
        }
    }
}

/// What the protocol does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge (raw; the protocol base64-encodes it) and hand
    /// the client's next line to [`Exchange::respond`].
    Challenge(Vec<u8>),
    /// Logged in as this account (canonical address).
    Done(String),
    Failed(Failure),
}

enum State {
    Plain,
    /// LOGIN through proto-common's state machine; None until it starts.
    Login(Option<proto_common::LoginServer>),
    /// Waiting for SCRAM's client-first message.
    ScramFirst,
    /// Server-first sent; `account` is None for an unknown name (fake
    /// keys: it fails like a wrong password, RFC 5802 7).
    ScramFinal {
        sent: Box<proto_common::ScramSentFirst>,
        account: Option<String>,
    },
    /// Server-final sent: the client's empty response completes it.
    ScramDone(String),
}

/// One exchange in progress.
pub struct Exchange {
    state: State,
    auth: Arc<Authenticator>,
    ip: IpAddr,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange").finish_non_exhaustive()
    }
}

/// Decodes a client response line: `*` cancels; with `initial`, `=` is the
/// empty initial response (RFC 4959 3, RFC 4954 4, RFC 5034 4).
fn decode(line: &[u8], initial: bool) -> Result<Vec<u8>, Failure> {
    if line.len() > MAX_SASL_RESPONSE {
        return Err(Failure::TooLong);
    }
    let line = line.trim_ascii();
    if line == b"*" {
        return Err(Failure::Cancelled);
    }
    if initial && line == b"=" {
        return Ok(Vec::new());
    }
    let text = std::str::from_utf8(line).map_err(|_| Failure::BadBase64)?;
    proto_common::base64_decode(text).map_err(|_| Failure::BadBase64)
}

impl Exchange {
    /// Starts `mech` for a client at `ip`, with the initial response if
    /// the client sent one. Returns the exchange (None once it is over)
    /// and what to do.
    pub async fn start(
        auth: &Arc<Authenticator>,
        ip: IpAddr,
        mech: Mechanism,
        initial: Option<&[u8]>,
    ) -> (Option<Exchange>, Step) {
        let state = match mech {
            Mechanism::Plain => State::Plain,
            Mechanism::Login => State::Login(None),
            Mechanism::ScramSha256 => State::ScramFirst,
        };
        let ex = Exchange {
            state,
            auth: Arc::clone(auth),
            ip,
        };
        match initial {
            Some(line) => match decode(line, true) {
                Ok(data) => ex.advance(data).await,
                Err(f) => (None, Step::Failed(f)),
            },
            None if matches!(ex.state, State::Login(None)) => {
                ex.login_step(proto_common::LoginServer::start(None)).await
            }
            None => (Some(ex), Step::Challenge(Vec::new())),
        }
    }

    /// The client's response to the last challenge.
    pub async fn respond(self, line: &[u8]) -> (Option<Exchange>, Step) {
        match decode(line, false) {
            Ok(data) => self.advance(data).await,
            Err(f) => (None, Step::Failed(f)),
        }
    }

    async fn advance(mut self, data: Vec<u8>) -> (Option<Exchange>, Step) {
        match std::mem::replace(&mut self.state, State::Plain) {
            State::Plain => {
                let Ok(creds) = proto_common::parse_plain(&data) else {
                    return (None, Step::Failed(Failure::Malformed));
                };
                let step = self
                    .login(&creds.authcid, &creds.password, &creds.authzid)
                    .await;
                (None, step)
            }
            // draft-murchison-sasl-login: an initial response is the name.
            State::Login(None) => {
                self.login_step(proto_common::LoginServer::start(Some(&data)))
                    .await
            }
            State::Login(Some(server)) => self.login_step(server.step(&data)).await,
            State::ScramFirst => self.scram_first(&data).await,
            State::ScramFinal { sent, account } => self.scram_final(*sent, account, &data).await,
            State::ScramDone(account) => {
                // RFC 5802 5: nothing follows the server-final message.
                if data.is_empty() {
                    (None, Step::Done(account))
                } else {
                    (None, Step::Failed(Failure::Malformed))
                }
            }
        }
    }

    async fn login_step(
        mut self,
        step: Result<proto_common::LoginStep, proto_common::SaslError>,
    ) -> (Option<Exchange>, Step) {
        match step {
            Ok(proto_common::LoginStep::Challenge { state, challenge }) => {
                self.state = State::Login(Some(state));
                (Some(self), Step::Challenge(challenge.to_vec()))
            }
            Ok(proto_common::LoginStep::Done(creds)) => {
                let step = self.login(&creds.authcid, &creds.password, "").await;
                (None, step)
            }
            Err(_) => (None, Step::Failed(Failure::Malformed)),
        }
    }

    /// Client-first: find the keys (or fake ones) and send server-first.
    async fn scram_first(mut self, data: &[u8]) -> (Option<Exchange>, Step) {
        if self.auth.locked_out(self.ip) {
            return (None, Step::Failed(Failure::Throttled));
        }
        let need = match proto_common::ScramServer::start(data) {
            Ok(n) => n,
            Err(_) => return (None, Step::Failed(Failure::Malformed)),
        };
        let dir = self.auth.directory();
        let (account, keys) = match dir.scram_keys(need.username()).await {
            Ok(Some((account, keys))) => (Some(account), keys),
            Ok(None) => (None, dir.fake_scram_keys(need.username())),
            Err(e) => {
                tracing::warn!(error = %e, "scram: directory failed");
                return (None, Step::Failed(Failure::Unavailable));
            }
        };
        let nonce = match dir.scram_server_nonce() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "scram: no random nonce");
                return (None, Step::Failed(Failure::Unavailable));
            }
        };
        let (server_first, sent) = need.with_keys(keys, &nonce);
        self.state = State::ScramFinal {
            sent: Box::new(sent),
            account,
        };
        (Some(self), Step::Challenge(server_first))
    }

    /// Client-final: check the proof; send server-final.
    async fn scram_final(
        mut self,
        sent: proto_common::ScramSentFirst,
        account: Option<String>,
        data: &[u8],
    ) -> (Option<Exchange>, Step) {
        let username = sent.username().to_string();
        match sent.finish(data) {
            Ok((server_final, outcome)) => {
                let Some(account) = account else {
                    // Fake keys cannot produce a valid proof; stay safe.
                    self.auth.failed(self.ip, &username).await;
                    return (None, Step::Failed(Failure::Invalid));
                };
                let authzid = outcome.authzid.as_deref().unwrap_or("");
                if !self.auth.authorizes(authzid, &username, &account).await {
                    return (None, Step::Failed(Failure::AuthzDenied));
                }
                self.auth.succeeded(self.ip, &account);
                self.state = State::ScramDone(account);
                (Some(self), Step::Challenge(server_final))
            }
            Err(e) if e.is_malformed() => (None, Step::Failed(Failure::Malformed)),
            Err(_) => {
                self.auth.failed(self.ip, &username).await;
                (None, Step::Failed(Failure::Invalid))
            }
        }
    }

    async fn login(&self, user: &str, password: &str, authzid: &str) -> Step {
        match self.auth.login(self.ip, user, password).await {
            Ok(account) if !self.auth.authorizes(authzid, user, &account).await => {
                Step::Failed(Failure::AuthzDenied)
            }
            Ok(account) => Step::Done(account),
            Err(f) => Step::Failed(f.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_common::base64_encode;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn auth() -> (crate::testutil::Fixture, Arc<Authenticator>) {
        let f = crate::testutil::fixture();
        let a = Authenticator::with_delay_scale(Arc::clone(&f.directory), 0.0);
        (f, a)
    }

    #[tokio::test]
    async fn plain_with_initial_response_logs_in() {
        let (_f, a) = auth();
        let ir = base64_encode(b"\0alice\0pw");
        let (ex, step) = Exchange::start(&a, IP, Mechanism::Plain, Some(ir.as_bytes())).await;
        assert!(ex.is_none());
        assert_eq!(step, Step::Done("alice@example.test".into()));
    }

    #[tokio::test]
    async fn login_asks_username_then_password() {
        let (_f, a) = auth();
        let (ex, step) = Exchange::start(&a, IP, Mechanism::Login, None).await;
        assert_eq!(step, Step::Challenge(b"Username:".to_vec()));
        let (ex, step) = ex
            .unwrap()
            .respond(base64_encode(b"alice").as_bytes())
            .await;
        assert_eq!(step, Step::Challenge(b"Password:".to_vec()));
        let (_, step) = ex.unwrap().respond(base64_encode(b"pw").as_bytes()).await;
        assert_eq!(step, Step::Done("alice@example.test".into()));
    }

    #[tokio::test]
    async fn login_initial_response_is_the_username() {
        let (_f, a) = auth();
        let ir = base64_encode(b"alice");
        let (ex, step) = Exchange::start(&a, IP, Mechanism::Login, Some(ir.as_bytes())).await;
        assert_eq!(step, Step::Challenge(b"Password:".to_vec()));
        let (_, step) = ex
            .unwrap()
            .respond(base64_encode(b"wrong").as_bytes())
            .await;
        assert_eq!(step, Step::Failed(Failure::Invalid));
    }

    #[tokio::test]
    async fn star_cancels_garbage_is_bad_base64_and_long_is_too_long() {
        let (_f, a) = auth();
        let (ex, _) = Exchange::start(&a, IP, Mechanism::Plain, None).await;
        assert_eq!(
            ex.unwrap().respond(b"*").await.1,
            Step::Failed(Failure::Cancelled)
        );
        let (ex, _) = Exchange::start(&a, IP, Mechanism::Plain, None).await;
        assert_eq!(
            ex.unwrap().respond(b"not base64!").await.1,
            Step::Failed(Failure::BadBase64)
        );
        let (ex, _) = Exchange::start(&a, IP, Mechanism::Plain, None).await;
        let long = vec![b'A'; MAX_SASL_RESPONSE + 4];
        assert_eq!(
            ex.unwrap().respond(&long).await.1,
            Step::Failed(Failure::TooLong)
        );
        let (ex, _) = Exchange::start(&a, IP, Mechanism::Plain, None).await;
        let not_plain = base64_encode(b"no nul here");
        assert_eq!(
            ex.unwrap().respond(not_plain.as_bytes()).await.1,
            Step::Failed(Failure::Malformed)
        );
    }

    #[tokio::test]
    async fn someone_elses_authorization_identity_is_refused() {
        let (_f, a) = auth();
        let ir = base64_encode(b"bob@example.test\0alice\0pw");
        let (_, step) = Exchange::start(&a, IP, Mechanism::Plain, Some(ir.as_bytes())).await;
        assert_eq!(step, Step::Failed(Failure::AuthzDenied));
    }

    #[test]
    fn mechanism_names_are_case_insensitive() {
        let (_f, a) = auth();
        assert_eq!(offered(&a, "login"), Some(Mechanism::Login));
        assert_eq!(offered(&a, "scram-sha-256"), Some(Mechanism::ScramSha256));
        assert_eq!(offered(&a, "CRAM-MD5"), None);
        assert_eq!(mechanisms(&a), ["PLAIN", "LOGIN", "SCRAM-SHA-256"]);
    }

    /// Runs a SCRAM exchange with the crate's test client.
    async fn scram(a: &Arc<Authenticator>, user: &str, password: &str) -> Step {
        let (client, first) =
            proto_common::ScramClient::new(user, password, None, "rOprNGfwEbeRWgbNEkqO");
        let (ex, step) = Exchange::start(a, IP, Mechanism::ScramSha256, None).await;
        assert_eq!(step, Step::Challenge(Vec::new()));
        let (ex, step) = ex.unwrap().respond(base64_encode(&first).as_bytes()).await;
        let Step::Challenge(server_first) = step else {
            return step;
        };
        let (final_msg, client) = client.server_first(&server_first).unwrap();
        let (ex, step) = ex
            .unwrap()
            .respond(base64_encode(&final_msg).as_bytes())
            .await;
        let Step::Challenge(server_final) = step else {
            return step;
        };
        client.server_final(&server_final).unwrap();
        ex.unwrap().respond(b"").await.1
    }

    #[tokio::test]
    async fn scram_logs_in_and_the_server_proves_it_knows_the_key() {
        let (_f, a) = auth();
        assert_eq!(
            scram(&a, "alice", "pw").await,
            Step::Done("alice@example.test".into())
        );
    }

    #[tokio::test]
    async fn scram_with_a_wrong_password_or_an_unknown_user_fails_alike() {
        let (_f, a) = auth();
        assert_eq!(
            scram(&a, "alice", "wrong").await,
            Step::Failed(Failure::Invalid)
        );
        assert_eq!(
            scram(&a, "nobody", "pw").await,
            Step::Failed(Failure::Invalid)
        );
        // Both failures were counted by the shared throttle.
        assert_eq!(a.stats.failed.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
