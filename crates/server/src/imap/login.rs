//! LOGIN (RFC 9051 6.2.3) and AUTHENTICATE PLAIN (RFC 9051 6.2.2, RFC 4616)
//! with SASL-IR (RFC 4959), through the shared [`Authenticator`] (its
//! throttling covers every protocol).
//!
//! [`Authenticator`]: crate::auth::Authenticator

use proto_imap::{Code, Status, Tag};

use super::session::{CmdResult, Flow, ImapError, Out, Session, State, tagged};
use crate::auth::LoginFailure;

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
        self.finish_login(user, password, None, out).await
    }

    /// Checks the password (and, for SASL, that the authorization identity
    /// is the user's own, SPEC 7) and enters the Authenticated state.
    async fn finish_login(
        &mut self,
        user: &str,
        password: &str,
        authzid: Option<&str>,
        out: &mut Out<'_>,
    ) -> CmdResult {
        // Flush what is queued: the failure delay must not hold it back.
        out.flush().await?;
        match self.ctx.auth.login(self.peer.ip(), user, password).await {
            Ok(account)
                if authzid.is_some_and(|z| !self.ctx.auth.authorizes(z, user, &account)) =>
            {
                Err(ImapError::No(
                    Some(Code::AuthenticationFailed),
                    "authorization identity differs".into(),
                ))
            }
            Ok(account) => {
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
                self.account = Some(account);
                self.transition(State::Authenticated);
                Ok((
                    Some(Code::Capability(self.capabilities())),
                    "Logged in".into(),
                ))
            }
            Err(LoginFailure::Invalid) => Err(ImapError::No(
                Some(Code::AuthenticationFailed),
                "invalid credentials".into(),
            )),
            Err(LoginFailure::Throttled) => Err(ImapError::No(
                Some(Code::Unavailable),
                "too many failed logins, try again later".into(),
            )),
            Err(LoginFailure::Unavailable) => Err(ImapError::No(
                Some(Code::Unavailable),
                "authentication is temporarily unavailable".into(),
            )),
        }
    }

    /// Starts AUTHENTICATE: answers at once with an initial response,
    /// else asks the driver for the client's response (`Flow::Sasl`).
    pub(super) async fn authenticate_start(
        &mut self,
        tag: &Tag,
        mechanism: &str,
        initial: Option<String>,
        out: &mut Out<'_>,
    ) -> Result<Option<Flow>, ImapError> {
        if mechanism != "PLAIN" {
            tagged(
                out,
                tag,
                Status::No,
                Some(Code::Cannot),
                "Unsupported mechanism",
            );
            return Ok(None);
        }
        if !self.plaintext_allowed() {
            tagged(
                out,
                tag,
                Status::No,
                Some(Code::PrivacyRequired),
                "Plaintext authentication needs TLS first (STARTTLS)",
            );
            return Ok(None);
        }
        match initial {
            None => Ok(Some(Flow::Sasl(tag.clone()))),
            Some(ir) => {
                self.sasl_response(tag, ir.as_bytes(), out).await?;
                Ok(None)
            }
        }
    }

    /// The client's PLAIN response (base64 of `authzid NUL authcid NUL
    /// password`; "=" is an empty response, "*" cancels).
    pub async fn sasl_response(
        &mut self,
        tag: &Tag,
        line: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), ImapError> {
        let line = line.trim_ascii();
        if line == b"*" {
            tagged(out, tag, Status::Bad, None, "AUTHENTICATE cancelled");
            return Ok(());
        }
        // RFC 4616 via the shared SASL decoder (strict base64, RFC 4648 4).
        let creds = match std::str::from_utf8(line).map(proto_common::decode_plain) {
            Ok(Ok(c)) => c,
            _ => {
                tagged(out, tag, Status::Bad, None, "Malformed PLAIN response");
                return Ok(());
            }
        };
        let result = self
            .finish_login(&creds.authcid, &creds.password, Some(&creds.authzid), out)
            .await;
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
        Ok(())
    }
}
