//! LOGIN (RFC 9051 6.2.3) and AUTHENTICATE (RFC 9051 6.2.2) with SASL-IR
//! (RFC 4959), through the SASL exchange and the [`Authenticator`] shared
//! by every protocol (its throttling covers them all).
//!
//! [`Authenticator`]: crate::auth::Authenticator

use proto_imap::{Code, Response, Status, Tag};

use super::session::{CmdResult, Flow, ImapError, Out, Session, tagged};
use crate::sasl::{Exchange, Failure, Step};

impl Session {
    pub(super) async fn login(
        &mut self,
        user: &str,
        password: &str,
        out: &mut Out<'_>,
    ) -> CmdResult {
        if !self.plaintext_allowed() {
            // RFC 9051 6.2.3 and RFC 5530 3: LOGINDISABLED, use STARTTLS.
            return Err(ImapError::no(
                Some(Code::PrivacyRequired),
                "plaintext login needs TLS first (STARTTLS)",
            ));
        }
        self.finish_login(user, password, out).await
    }

    /// Checks the password and enters the Authenticated state.
    async fn finish_login(&mut self, user: &str, password: &str, out: &mut Out<'_>) -> CmdResult {
        // Flush what is queued: the failure delay must not hold it back.
        out.flush().await?;
        match self.ctx.auth.login(self.peer.ip(), user, password).await {
            Ok(account) => {
                self.ctx
                    .metrics
                    .login("imap", crate::metrics::LoginResult::Ok);
                self.logged_in(account).await
            }
            Err(f) => {
                self.ctx
                    .metrics
                    .login("imap", crate::metrics::LoginResult::from(&f));
                Err(login_failure(f.into()))
            }
        }
    }

    /// Enters the Authenticated state as `account`.
    async fn logged_in(&mut self, account: String) -> CmdResult {
        // Accounts added by the CLI have their mailboxes; make sure.
        if self
            .ctx
            .store
            .mailbox(account.clone(), "INBOX".into())
            .await?
            .is_none()
        {
            self.ctx.store.ensure_account(account.clone()).await?;
        }
        tracing::info!(%account, "imap login");
        self.storage_limit = self.ctx.quota.limits(&account).storage;
        self.enter_authenticated(account);
        Ok((
            Some(Code::Capability(self.capabilities())),
            "Logged in".into(),
        ))
    }

    /// Starts AUTHENTICATE (RFC 9051 6.2.2) with the shared SASL exchange;
    /// an initial response (SASL-IR, RFC 4959) goes straight in.
    pub(super) async fn authenticate_start(
        &mut self,
        tag: &Tag,
        mechanism: &str,
        initial: Option<String>,
        out: &mut Out<'_>,
    ) -> Result<Option<Flow>, ImapError> {
        let Some(mech) = crate::sasl::offered(&self.ctx.auth, mechanism) else {
            tagged(
                out,
                tag,
                Status::No,
                Some(Code::Cannot),
                "Unsupported mechanism",
            );
            return Ok(None);
        };
        if !self.plaintext_allowed() {
            tagged(
                out,
                tag,
                Status::No,
                Some(Code::PrivacyRequired),
                "Authentication needs TLS first (STARTTLS)",
            );
            return Ok(None);
        }
        // The failure delay must not hold back what is queued.
        out.flush().await?;
        let (ex, step) = Exchange::start(
            &self.ctx.auth,
            self.peer.ip(),
            mech,
            initial.as_deref().map(str::as_bytes),
        )
        .await;
        self.sasl_step(tag, ex, step, out).await
    }

    /// The client's response to a challenge: the line the driver read.
    /// `None` when it was longer than the SASL limit.
    pub async fn sasl_response(
        &mut self,
        tag: &Tag,
        line: Option<&[u8]>,
        out: &mut Out<'_>,
    ) -> Result<Option<Flow>, ImapError> {
        let Some(ex) = self.sasl.take() else {
            tagged(out, tag, Status::Bad, None, "No authentication in progress");
            return Ok(None);
        };
        let Some(line) = line else {
            tagged(out, tag, Status::Bad, None, "SASL response too long");
            return Ok(None);
        };
        out.flush().await?;
        let (ex, step) = ex.respond(line).await;
        self.sasl_step(tag, ex, step, out).await
    }

    async fn sasl_step(
        &mut self,
        tag: &Tag,
        ex: Option<Exchange>,
        step: Step,
        out: &mut Out<'_>,
    ) -> Result<Option<Flow>, ImapError> {
        let result = match step {
            Step::Challenge(c) => {
                // RFC 9051 7.5: the challenge is a continuation request.
                out.push(&Response::Continue(proto_common::base64_encode(&c)));
                self.sasl = ex;
                return Ok(Some(Flow::Sasl(tag.clone())));
            }
            Step::Done(account) => {
                self.ctx
                    .metrics
                    .login("imap", crate::metrics::LoginResult::Ok);
                self.logged_in(account).await
            }
            Step::Failed(f) => {
                self.ctx
                    .metrics
                    .login("imap", crate::metrics::LoginResult::from(&f));
                Err(login_failure(f))
            }
        };
        match result {
            Ok((code, text)) => tagged(out, tag, Status::Ok, code, &text),
            Err(ImapError::No(code, text)) => tagged(
                out,
                tag,
                Status::No,
                code,
                &format!("AUTHENTICATE failed: {text}"),
            ),
            Err(ImapError::Bad(text)) => tagged(out, tag, Status::Bad, None, &text),
            Err(ImapError::Gone) => return Err(ImapError::Gone),
        }
        Ok(None)
    }
}

/// The reply to a failed login or exchange (RFC 5530 codes).
fn login_failure(f: Failure) -> ImapError {
    match f {
        Failure::Cancelled => ImapError::Bad("AUTHENTICATE cancelled".into()),
        Failure::BadBase64 => ImapError::Bad("Invalid base64 in SASL response".into()),
        Failure::Malformed => ImapError::Bad("Malformed SASL response".into()),
        Failure::TooLong => ImapError::Bad("SASL response too long".into()),
        Failure::AuthzDenied => ImapError::No(
            Some(Code::AuthorizationFailed),
            "authorization identity differs".into(),
        ),
        Failure::Invalid => ImapError::No(
            Some(Code::AuthenticationFailed),
            "invalid credentials".into(),
        ),
        Failure::Throttled => ImapError::No(
            Some(Code::Unavailable),
            "too many failed logins, try again later".into(),
        ),
        Failure::Unavailable => ImapError::No(
            Some(Code::Unavailable),
            "authentication is temporarily unavailable".into(),
        ),
    }
}
