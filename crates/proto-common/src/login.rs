//! The LOGIN mechanism (draft-murchison-sasl-login-00), server side: the
//! server asks `Username:` then `Password:`, the client answers each; an
//! initial response (RFC 4954 4, RFC 4959, RFC 5034 4) is the user name.
//! Obsolete but still what many clients (Outlook, older phones) offer
//! first, so SPEC 5 asks for it. Sans-I/O: decoded responses in, raw
//! challenges out; the protocol base64s them (RFC 4648 4) and handles `*`.

use crate::sasl::{MAX_PLAIN_FIELD, PlainCredentials, SaslError};

/// draft-murchison-sasl-login-00 2.1: the first challenge, before base64.
pub const LOGIN_USERNAME_CHALLENGE: &[u8] = b"Username:";
/// draft-murchison-sasl-login-00 2.1: the second challenge, before base64.
pub const LOGIN_PASSWORD_CHALLENGE: &[u8] = b"Password:";

/// A LOGIN exchange waiting for the client's next response.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginServer {
    /// The user name once the client has sent it.
    username: Option<String>,
}

impl std::fmt::Debug for LoginServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginServer")
            .field("username", &self.username)
            .finish()
    }
}

/// What the server does next in a LOGIN exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// Send `challenge` (base64 it) and pass the reply to
    /// [`LoginServer::step`].
    Challenge {
        state: LoginServer,
        challenge: &'static [u8],
    },
    /// Both fields are in: check them as PLAIN credentials with an empty
    /// authorization identity (LOGIN has none).
    Done(PlainCredentials),
}

impl LoginServer {
    /// Starts an exchange; `initial_response` is the decoded initial
    /// response when the client sent one (it is the user name).
    pub fn start(initial_response: Option<&[u8]>) -> Result<LoginStep, SaslError> {
        let state = LoginServer { username: None };
        match initial_response {
            None => Ok(LoginStep::Challenge {
                state,
                challenge: LOGIN_USERNAME_CHALLENGE,
            }),
            Some(name) => state.step(name),
        }
    }

    /// Takes the client's decoded answer to the last challenge.
    pub fn step(self, response: &[u8]) -> Result<LoginStep, SaslError> {
        let field = field(response)?;
        match self.username {
            None => Ok(LoginStep::Challenge {
                state: LoginServer {
                    username: Some(field),
                },
                challenge: LOGIN_PASSWORD_CHALLENGE,
            }),
            Some(authcid) => Ok(LoginStep::Done(PlainCredentials {
                authzid: String::new(),
                authcid,
                password: field,
            })),
        }
    }
}

/// A user name or password: UTF-8, not empty, and within the field limit
/// of PLAIN (RFC 4616 2), since LOGIN carries the same credentials and the
/// draft sets no limit of its own.
fn field(raw: &[u8]) -> Result<String, SaslError> {
    if raw.is_empty() || raw.len() > MAX_PLAIN_FIELD || raw.contains(&0) {
        return Err(SaslError::BadPlain);
    }
    String::from_utf8(raw.to_vec()).map_err(|_| SaslError::BadPlain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{base64_decode, base64_encode};

    fn challenge(step: LoginStep) -> (LoginServer, &'static [u8]) {
        match step {
            LoginStep::Challenge { state, challenge } => (state, challenge),
            LoginStep::Done(_) => panic!("expected a challenge"),
        }
    }

    fn done(step: LoginStep) -> PlainCredentials {
        match step {
            LoginStep::Done(c) => c,
            LoginStep::Challenge { .. } => panic!("expected the credentials"),
        }
    }

    #[test]
    fn challenges_are_the_drafts_in_base64() {
        assert_eq!(base64_encode(LOGIN_USERNAME_CHALLENGE), "VXNlcm5hbWU6");
        assert_eq!(base64_encode(LOGIN_PASSWORD_CHALLENGE), "UGFzc3dvcmQ6");
    }

    #[test]
    fn without_initial_response_asks_name_then_password() {
        let (state, c) = challenge(LoginServer::start(None).unwrap());
        assert_eq!(c, b"Username:");
        // What a client sends: base64 of "tim", then of "tanstaaf".
        let name = base64_decode("dGlt").unwrap();
        let (state, c) = challenge(state.step(&name).unwrap());
        assert_eq!(c, b"Password:");
        let creds = done(state.step(&base64_decode("dGFuc3RhYWY=").unwrap()).unwrap());
        assert_eq!(
            (creds.authzid.as_str(), creds.authcid.as_str()),
            ("", "tim")
        );
        assert_eq!(creds.password, "tanstaaf");
    }

    #[test]
    fn initial_response_is_the_user_name() {
        let (state, c) = challenge(LoginServer::start(Some(b"fred@example.org")).unwrap());
        assert_eq!(c, b"Password:");
        let creds = done(state.step("pässwörd".as_bytes()).unwrap());
        assert_eq!(creds.authcid, "fred@example.org");
        assert_eq!(creds.password, "pässwörd");
    }

    #[test]
    fn empty_non_utf8_nul_or_overlong_fields_are_refused() {
        assert_eq!(LoginServer::start(Some(b"")), Err(SaslError::BadPlain));
        let (state, _) = challenge(LoginServer::start(None).unwrap());
        for bad in [&b""[..], b"\xff\xfe", b"a\0b", &[b'a'; MAX_PLAIN_FIELD + 1]] {
            assert_eq!(state.clone().step(bad), Err(SaslError::BadPlain), "{bad:?}");
        }
        let (state, _) = challenge(state.step(b"u").unwrap());
        assert_eq!(state.clone().step(b""), Err(SaslError::BadPlain));
        assert_eq!(state.step(b"\xc3"), Err(SaslError::BadPlain));
    }

    #[test]
    fn the_password_never_prints() {
        let (state, _) = challenge(LoginServer::start(Some(b"u")).unwrap());
        let creds = done(state.step(b"hunter2").unwrap());
        let shown = format!("{creds:?} {:?}", LoginStep::Done(creds.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"u\""), "{shown}");
    }
}
