//! One SASL exchange (RFC 4422) for SMTP AUTH (RFC 4954), IMAP
//! AUTHENTICATE (RFC 9051 6.2.2, SASL-IR RFC 4959) and POP3 AUTH (RFC
//! 5034): the mechanisms, the base64 of every response, `*` to cancel,
//! and the login through the shared [`Authenticator`] (whose throttling
//! covers every protocol). Each protocol only frames challenges and maps
//! [`Failure`] to its own reply.
//!
//! Mechanisms: PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login).

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::{Authenticator, LoginFailure};

/// Longest client response accepted, base64 and CRLF included: issue 11's
/// 12 288 octets, in every protocol whatever its command line limit (POP3's
/// 512 included; RFC 4954 4 and RFC 5034 4 allow responses longer than a
/// command line).
pub const MAX_SASL_RESPONSE: usize = 12_288;

/// A mechanism we offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// Mechanism names are case-insensitive (RFC 4422 3.1).
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Mechanism::Plain),
            "LOGIN" => Some(Mechanism::Login),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// The mechanisms offered, in the order advertised.
pub fn mechanisms() -> Vec<&'static str> {
    vec![Mechanism::Plain.name(), Mechanism::Login.name()]
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

#[derive(Debug)]
enum State {
    Plain,
    LoginUser,
    LoginPassword(String),
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

/// LOGIN's challenges (draft-murchison-sasl-login 2.1).
const LOGIN_USER: &[u8] = b"Username:";
const LOGIN_PASSWORD: &[u8] = b"Password:";

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
            Mechanism::Login => State::LoginUser,
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
            None => {
                let challenge = match ex.state {
                    State::LoginUser => LOGIN_USER.to_vec(),
                    _ => Vec::new(),
                };
                (Some(ex), Step::Challenge(challenge))
            }
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
            State::LoginUser => match String::from_utf8(data) {
                Ok(user) if !user.is_empty() => {
                    self.state = State::LoginPassword(user);
                    (Some(self), Step::Challenge(LOGIN_PASSWORD.to_vec()))
                }
                _ => (None, Step::Failed(Failure::Malformed)),
            },
            State::LoginPassword(user) => match String::from_utf8(data) {
                Ok(password) => {
                    let step = self.login(&user, &password, "").await;
                    (None, step)
                }
                Err(_) => (None, Step::Failed(Failure::Malformed)),
            },
        }
    }

    async fn login(&self, user: &str, password: &str, authzid: &str) -> Step {
        match self.auth.login(self.ip, user, password).await {
            Ok(account) if !self.auth.authorizes(authzid, user, &account) => {
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
        assert_eq!(Mechanism::parse("login"), Some(Mechanism::Login));
        assert_eq!(Mechanism::parse("CRAM-MD5"), None);
    }
}
