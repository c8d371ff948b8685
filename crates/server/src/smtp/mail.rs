//! MAIL FROM (RFC 5321 4.1.1.2) and RFC 821's SEND, SOML and SAML FROM
//! (3.4), which open a transaction the same way and differ only in where
//! the message goes.

use proto_smtp::{MailFrom, Reply, ReversePath};

use super::session::{Session, State, Transaction, TxKind, bad_sequence, reply};

impl Session {
    pub(crate) async fn legacy(&mut self, kind: TxKind, m: MailFrom) -> Reply {
        if !self.ctx.config.legacy_send {
            // SPEC 1: switched off in config → 502 and not advertised.
            return reply(502, 5, 5, 1, "Command not implemented");
        }
        self.mail(kind, m).await
    }

    pub(crate) async fn mail(&mut self, kind: TxKind, m: MailFrom) -> Reply {
        match self.state {
            State::Greeted => return bad_sequence("Send HELO/EHLO first"),
            State::Transaction(_) => return bad_sequence("Sender already specified"),
            State::Ready => {}
        }
        let params = m.params;
        // RFC 3461 RET and ENVID are accepted (DSN is advertised) and
        // kept with the transaction: they go to the queue rows and into
        // any DSN this message causes.
        // RFC 4954 5: AUTH= is accepted wherever AUTH is advertised; from
        // a client that has not authenticated it means AUTH=<>, and we do
        // not act on a claimed submitter in any case.
        if params.auth.is_some() && !self.auth_offered() && self.authenticated.is_none() {
            return reply(555, 5, 5, 4, "Unsupported parameter AUTH");
        }
        // RFC 1870 6.1: a declared size over our limit is refused at once.
        if let Some(size) = params.size
            && size > self.ctx.config.max_message_size as u64
        {
            return reply(
                552,
                5,
                3,
                4,
                "Message size exceeds fixed maximum message size",
            );
        }
        let sender = match m.path {
            ReversePath::Null => String::new(),
            ReversePath::Path(path) => {
                // RFC 6531 3.4: non-ASCII addresses need SMTPUTF8.
                if !path.is_ascii() && !params.smtputf8 {
                    return reply(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8");
                }
                match path.domain {
                    Some(_) => path.address(),
                    None if self.authenticated.is_some() || self.is_local_client() => {
                        // SPEC 1: qualify `<frol>` with the primary domain.
                        format!("{}@{}", path.local, self.ctx.directory.primary_domain())
                    }
                    None => {
                        return reply(501, 5, 1, 7, "Sender address must be fully qualified");
                    }
                }
            }
        };
        if let Some(refusal) = self.submission_check(&sender).await {
            return refusal;
        }
        let kind_name = match kind {
            TxKind::Mail => "Sender",
            TxKind::Send | TxKind::Soml | TxKind::Saml => "Sender (terminal)",
        };
        self.state = State::Transaction(Transaction {
            kind,
            sender,
            params,
            recipients: Vec::new(),
            chunks: None,
        });
        reply(250, 2, 1, 0, &format!("{kind_name} ok"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Kit, cmd, code};

    #[tokio::test]
    async fn auth_parameter_is_555_where_auth_is_not_offered() {
        let kit = Kit::new();
        let mut s = kit.ready().await;
        let r = cmd(&mut s, "MAIL FROM:<a@remote.test> AUTH=<>").await;
        assert_eq!(code(&r), (555, "5.5.4".into()));
        assert!(!s.in_transaction());
    }

    #[tokio::test]
    async fn dsn_parameters_are_accepted_and_bad_ones_are_555() {
        let kit = Kit::new();
        let mut s = kit.ready().await;
        let r = cmd(&mut s, "MAIL FROM:<a@remote.test> RET=FULL ENVID=QQ314159").await;
        assert_eq!(r.code, 250, "{r:?}");
        cmd(&mut s, "RSET").await;
        let r = cmd(&mut s, "MAIL FROM:<a@remote.test> RET=ALL").await;
        assert_eq!(code(&r), (555, "5.5.4".into()));
        let r = cmd(&mut s, "MAIL FROM:<a@remote.test> ENVID=a=b").await;
        assert_eq!(code(&r), (555, "5.5.4".into()));
    }

    #[tokio::test]
    async fn unqualified_sender_from_outside_local_networks_is_501_517() {
        let kit = Kit::new();
        let mut s = kit.session_from([198, 51, 100, 1]);
        cmd(&mut s, "HELO c").await;
        assert_eq!(
            code(&cmd(&mut s, "MAIL FROM:<frol>").await),
            (501, "5.1.7".into())
        );
        assert_eq!(cmd(&mut s, "MAIL FROM:<>").await.code, 250);
    }

    #[tokio::test]
    async fn legacy_verbs_are_502_when_disabled() {
        let kit = Kit::with(|c| c.legacy_send = false, None);
        let mut s = kit.ready().await;
        for verb in ["SEND", "SOML", "SAML"] {
            assert_eq!(
                code(&cmd(&mut s, &format!("{verb} FROM:<a@remote.test>")).await),
                (502, "5.5.1".into())
            );
        }
        assert_eq!(cmd(&mut s, "MAIL FROM:<a@remote.test>").await.code, 250);
    }
}
