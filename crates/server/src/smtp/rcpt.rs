//! RCPT TO (RFC 5321 4.1.1.3): resolves the recipient through the
//! directory (users, aliases, lists, forwards, catch-all; SPEC 1, 4) and
//! enforces the relay rule and the recipient limit.

use directory::{DirectoryError, Resolution};
use proto_common::log_safe;
use proto_smtp::{RcptTo, Reply};

use super::session::{Recipient, Session, State, TxKind, bad_sequence, local_error, reply};

impl Session {
    pub(crate) async fn rcpt(&mut self, r: RcptTo) -> Reply {
        let (kind, count, smtputf8) = match &self.state {
            State::Transaction(tx) => (tx.kind, tx.recipients.len(), tx.params.smtputf8),
            _ => return bad_sequence("Need MAIL command first"),
        };
        if let State::Transaction(tx) = &self.state
            && tx.chunks.is_some()
        {
            return bad_sequence("RCPT not allowed during BDAT");
        }
        // RFC 5321 4.5.3.1.8: refuse past the limit with 452 so the client
        // sends the rest in another transaction.
        if count >= self.ctx.config.max_recipients {
            return reply(452, 4, 5, 3, "Too many recipients");
        }
        // Issue 11: an authenticated user's per-message limit (a stolen
        // password must not reach thousands at once).
        if self.authenticated.is_some() && count >= self.ctx.config.submission.max_recipients {
            return reply(450, 4, 7, 1, "Too many recipients for one message");
        }
        if !r.path.is_ascii() && !smtputf8 {
            return reply(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8");
        }
        // SPEC 1: `RCPT TO:<name>` (and `<Postmaster>`) mean the primary domain.
        let address = match &r.path.domain {
            Some(d) => format!("{}@{}", r.path.local, d),
            None => format!("{}@{}", r.path.local, self.ctx.directory.primary_domain()),
        };
        // Bounces to the SRS addresses forwarded mail left with (issue 13).
        if let Some(domain) = &r.path.domain
            && delivery::srs::is_srs(&r.path.local)
            && self.ctx.directory.is_local_domain(domain)
        {
            return self.srs_rcpt(&r, address).await;
        }
        let resolution = match self.directory(self.ctx.directory.resolve(&address)).await {
            Ok(r) => r,
            Err(DirectoryError::InvalidAddress(_)) => {
                return reply(501, 5, 1, 3, "Bad recipient address syntax");
            }
            Err(_) => return local_error(),
        };
        let mut recipient = Recipient {
            address: address.clone(),
            mailbox: Vec::new(),
            terminal: Vec::new(),
            remote: Vec::new(),
            forwarded: false,
            notify: r.params.notify.clone(),
            orcpt: r.params.orcpt.clone(),
        };
        let ok = match resolution {
            Resolution::NotLocal => {
                if !self.may_relay() {
                    self.log_refused(&address, "relay access denied");
                    return reply(550, 5, 7, 1, "Relay access denied");
                }
                if kind == TxKind::Send {
                    return reply(550, 5, 7, 1, "SEND is only for local users");
                }
                // RFC 5321 2.4: the remote local part keeps its case; the
                // domain is case-insensitive and queued in lower case.
                let remote = match r.path.domain.as_deref() {
                    Some(d) => format!("{}@{}", r.path.local, d.to_lowercase()),
                    None => address.clone(),
                };
                recipient.remote.push(remote);
                reply(250, 2, 1, 5, "Recipient ok")
            }
            Resolution::Unknown => {
                self.log_refused(&address, "user unknown");
                return reply(550, 5, 1, 1, "User unknown");
            }
            Resolution::Refuse { to } => {
                // RFC 5321 3.4: we know the new address but do not forward.
                return reply(551, 5, 1, 6, &format!("User not local; please try <{to}>"));
            }
            Resolution::Deliver { local, remote } => {
                recipient.mailbox = local;
                recipient.remote = remote;
                // Aliases and lists expanding to other domains: SRS.
                recipient.forwarded = true;
                reply(250, 2, 1, 5, "Recipient ok")
            }
            Resolution::Forward { to, local, remote } => {
                recipient.mailbox = local;
                recipient.remote = remote;
                recipient.forwarded = true;
                reply(
                    251,
                    2,
                    1,
                    5,
                    &format!("User not local; will forward to <{to}>"),
                )
            }
        };
        if let Some(refusal) = self.route_terminal(kind, &mut recipient) {
            return refusal;
        }
        if let State::Transaction(tx) = &mut self.state {
            tx.recipients.push(recipient);
        }
        ok
    }

    /// `RCPT TO:<SRS0=...@ours>`: only a bounce (`MAIL FROM:<>`) with a
    /// hash we made is passed on, to the address it decodes to; anything
    /// else is an unknown user. Without the hash check the decoded
    /// address would be an open relay.
    async fn srs_rcpt(&mut self, r: &RcptTo, address: String) -> Reply {
        // A bounce is plain MAIL: SEND and friends have no business here.
        let sender_is_null = matches!(
            &self.state,
            State::Transaction(tx) if tx.sender.is_empty() && tx.kind == TxKind::Mail
        );
        let decoded = match (&self.ctx.srs, sender_is_null) {
            (Some(srs), true) => self.srs_decode(srs, &r.path.local),
            _ => None,
        };
        let Some(to) = decoded else {
            self.log_refused(&address, "not a valid SRS bounce");
            return reply(550, 5, 1, 1, "User unknown");
        };
        let mut recipient = Recipient {
            address,
            mailbox: Vec::new(),
            terminal: Vec::new(),
            remote: Vec::new(),
            forwarded: false,
            notify: r.params.notify.clone(),
            orcpt: r.params.orcpt.clone(),
        };
        match self.directory(self.ctx.directory.resolve(&to)).await {
            Ok(Resolution::NotLocal) => recipient.remote.push(to),
            Ok(
                Resolution::Deliver { local, remote } | Resolution::Forward { local, remote, .. },
            ) => {
                recipient.mailbox = local;
                recipient.remote = remote;
            }
            Ok(Resolution::Unknown | Resolution::Refuse { .. }) => {
                return reply(550, 5, 1, 1, "User unknown");
            }
            Err(DirectoryError::InvalidAddress(_)) => return reply(550, 5, 1, 1, "User unknown"),
            Err(_) => return local_error(),
        }
        if let State::Transaction(tx) = &mut self.state {
            tx.recipients.push(recipient);
        }
        reply(250, 2, 1, 5, "Recipient ok")
    }

    /// The address an SRS local part of ours stands for: SRS1 names the
    /// first forwarder's SRS0 address, which is ours again when we were
    /// that forwarder (two mailroom instances forwarding to each other).
    fn srs_decode(&self, srs: &delivery::srs::Srs, local: &str) -> Option<String> {
        let today = delivery::srs::today();
        let mut to = srs.reverse(local, today).ok()?;
        if let Some((l, d)) = to.rsplit_once('@')
            && delivery::srs::is_srs(l)
            && self.ctx.directory.is_local_domain(d)
        {
            to = srs.reverse(l, today).ok()?;
        }
        Some(to)
    }

    /// A refused recipient is what an administrator looks for when mail
    /// goes missing, and what an address harvester leaves behind; the
    /// address is the client's text, so it is escaped.
    fn log_refused(&self, address: &str, reason: &'static str) {
        tracing::info!(
            client = %self.peer.ip(),
            to = %log_safe(address),
            reason,
            "recipient refused"
        );
    }

    /// Splits the local accounts of a SEND/SOML/SAML recipient between the
    /// terminal and the mailbox (RFC 821 3.4). Returns a refusal for SEND to
    /// a user with no active session (SPEC 1: 450 at RCPT).
    fn route_terminal(&self, kind: TxKind, r: &mut Recipient) -> Option<Reply> {
        let presence = &self.ctx.presence;
        match kind {
            TxKind::Mail => None,
            TxKind::Send => {
                // Every local account must be at its terminal: SEND has no
                // mailbox to fall back on.
                let (active, inactive): (Vec<_>, Vec<_>) =
                    r.mailbox.drain(..).partition(|a| presence.is_active(a));
                if active.is_empty() || !inactive.is_empty() {
                    return Some(reply(450, 4, 2, 1, "User not active; try again later"));
                }
                r.terminal = active;
                None
            }
            TxKind::Soml => {
                let (active, inactive): (Vec<_>, Vec<_>) =
                    r.mailbox.drain(..).partition(|a| presence.is_active(a));
                r.terminal = active;
                r.mailbox = inactive;
                None
            }
            TxKind::Saml => {
                r.terminal = r
                    .mailbox
                    .iter()
                    .filter(|a| presence.is_active(a))
                    .cloned()
                    .collect();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Kit, cmd, code};

    #[tokio::test]
    async fn send_to_active_user_is_250_and_inactive_is_450() {
        let kit = Kit::new();
        let (_reg, _term) = kit.presence.register("alice@example.test");
        let mut s = kit.ready().await;
        cmd(&mut s, "SEND FROM:<x@remote.test>").await;
        assert_eq!(cmd(&mut s, "RCPT TO:<alice@example.test>").await.code, 250);
        assert_eq!(
            code(&cmd(&mut s, "RCPT TO:<bob@example.test>").await),
            (450, "4.2.1".into())
        );
    }

    #[tokio::test]
    async fn relay_is_refused_unless_from_relay_networks() {
        let kit = Kit::with(
            |c| c.relay_networks = vec!["192.0.2.0/24".parse().unwrap()],
            None,
        );
        let mut s = kit.session_from([198, 51, 100, 1]);
        cmd(&mut s, "EHLO c").await;
        cmd(&mut s, "MAIL FROM:<a@example.test>").await;
        assert_eq!(
            code(&cmd(&mut s, "RCPT TO:<x@remote.test>").await),
            (550, "5.7.1".into())
        );
        let mut s = kit.session_from([192, 0, 2, 7]);
        cmd(&mut s, "EHLO c").await;
        cmd(&mut s, "MAIL FROM:<a@example.test>").await;
        assert_eq!(cmd(&mut s, "RCPT TO:<x@remote.test>").await.code, 250);
    }

    #[tokio::test]
    async fn dsn_recipient_parameters_are_accepted_and_bad_ones_are_555() {
        let kit = Kit::new();
        let mut s = kit.ready().await;
        cmd(&mut s, "MAIL FROM:<a@remote.test>").await;
        let r = cmd(&mut s, "RCPT TO:<alice@example.test> NOTIFY=NEVER").await;
        assert_eq!(r.code, 250, "{r:?}");
        let r = cmd(
            &mut s,
            "RCPT TO:<bob@example.test> ORCPT=rfc822;b+40x NOTIFY=SUCCESS,DELAY",
        )
        .await;
        assert_eq!(r.code, 250, "{r:?}");
        let r = cmd(&mut s, "RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS").await;
        assert_eq!(code(&r), (555, "5.5.4".into()));
        let r = cmd(&mut s, "RCPT TO:<alice@example.test> ORCPT=nosemicolon").await;
        assert_eq!(code(&r), (555, "5.5.4".into()));
    }

    #[tokio::test]
    async fn an_srs_recipient_without_srs_or_a_bounce_is_550_511() {
        // The kit has no SRS key: no SRS address can verify.
        let kit = Kit::new();
        let mut s = kit.ready().await;
        cmd(&mut s, "MAIL FROM:<>").await;
        let r = cmd(
            &mut s,
            "RCPT TO:<SRS0=AAAA=AA=remote.test=bob@example.test>",
        )
        .await;
        assert_eq!(code(&r), (550, "5.1.1".into()));
        let r = cmd(&mut s, "RCPT TO:<srs1=AAAA=remote.test==x@example.test>").await;
        assert_eq!(code(&r), (550, "5.1.1".into()));
        // Another domain's SRS address is just a remote address (relay rules).
        let r = cmd(&mut s, "RCPT TO:<SRS0=AAAA=AA=x.test=bob@remote.test>").await;
        assert_eq!(code(&r), (550, "5.7.1".into()));
    }

    #[tokio::test]
    async fn rcpt_limit_is_452_453() {
        let kit = Kit::with(|c| c.max_recipients = 1, None);
        let mut s = kit.ready().await;
        cmd(&mut s, "MAIL FROM:<a@remote.test>").await;
        assert_eq!(cmd(&mut s, "RCPT TO:<alice@example.test>").await.code, 250);
        assert_eq!(
            code(&cmd(&mut s, "RCPT TO:<bob@example.test>").await),
            (452, "4.5.3".into())
        );
    }

    #[tokio::test]
    async fn unparseable_local_recipient_is_501_513() {
        let kit = Kit::new();
        let mut s = kit.ready().await;
        cmd(&mut s, "MAIL FROM:<a@remote.test>").await;
        let r = cmd(&mut s, "RCPT TO:<\"a\\\u{1}b\"@example.test>").await;
        assert_eq!(r.code / 100, 5, "{r:?}");
    }
}
