//! VRFY, EXPN (RFC 5321 3.5, 4.1.1.6, 4.1.1.7) and HELP (4.1.1.8): the
//! commands that answer questions and touch no transaction.

use directory::DirectoryError;
use proto_smtp::Reply;

use super::config::VrfyPolicy;
use super::session::{Session, local_error, reply};

/// Per-command help texts for `HELP <command>` (RFC 5321 4.1.1.8).
const HELP_TOPICS: &[(&str, &str)] = &[
    ("HELO", "HELO <domain>: identify yourself"),
    (
        "EHLO",
        "EHLO <domain>: identify yourself and list the extensions",
    ),
    (
        "MAIL",
        "MAIL FROM:<reverse-path> [SIZE=n] [BODY=7BIT|8BITMIME|BINARYMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=id]",
    ),
    (
        "RCPT",
        "RCPT TO:<forward-path> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=type;address]",
    ),
    (
        "DATA",
        "DATA: then the message, ended by a line with a single dot",
    ),
    (
        "BDAT",
        "BDAT <size> [LAST]: a chunk of exactly <size> octets follows",
    ),
    ("RSET", "RSET: abort the current transaction"),
    (
        "SEND",
        "SEND FROM:<reverse-path>: deliver to the recipients' terminals",
    ),
    (
        "SOML",
        "SOML FROM:<reverse-path>: terminal if active, else mailbox",
    ),
    (
        "SAML",
        "SAML FROM:<reverse-path>: terminal if active, and mailbox",
    ),
    ("VRFY", "VRFY <user or name>: verify a user"),
    ("EXPN", "EXPN <list>: show the members of a mailing list"),
    ("HELP", "HELP [command]"),
    ("NOOP", "NOOP: do nothing"),
    ("QUIT", "QUIT: close the connection"),
];

/// RFC 5321 3.5.3: 252 when we will not tell.
fn cannot_vrfy() -> Reply {
    reply(
        252,
        2,
        5,
        0,
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

/// `Full Name <addr>` or `<addr>` (RFC 5321 3.5.1).
fn mailbox_line(name: Option<&str>, address: &str) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("{n} <{address}>"),
        _ => format!("<{address}>"),
    }
}

impl Session {
    pub(crate) async fn vrfy(&mut self, query: String) -> Reply {
        if self.ctx.config.vrfy == VrfyPolicy::Cannot {
            return cannot_vrfy();
        }
        let q = query
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        // A fully qualified address in another domain: not ours to verify.
        if let Some((_, domain)) = q.rsplit_once('@')
            && !self.ctx.directory.is_local_domain(domain)
        {
            return cannot_vrfy();
        }
        let address = if q.contains('@') {
            q.clone()
        } else {
            format!("{q}@{}", self.ctx.directory.primary_domain())
        };
        let users = match self.directory(self.ctx.directory.vrfy(&q)).await {
            Ok(u) => u,
            Err(DirectoryError::InvalidAddress(_)) => Vec::new(),
            Err(_) => return local_error(),
        };
        match users.as_slice() {
            // Not a user, but mail to it is accepted (an alias, a list, a
            // catch-all): RFC 5321 3.5.3 allows 252 for that.
            [] if self.accepts(&address).await => cannot_vrfy(),
            [] => reply(550, 5, 1, 1, "User unknown"),
            [one] => reply(
                250,
                2,
                1,
                5,
                &mailbox_line(one.full_name.as_deref(), &one.address),
            ),
            many => {
                // RFC 5321 3.5.4: 553 with the possibilities.
                let mut lines = vec!["User ambiguous; possibilities are".to_string()];
                lines.extend(
                    many.iter()
                        .map(|u| mailbox_line(u.full_name.as_deref(), &u.address)),
                );
                Reply::multi(553, Some(proto_smtp::EnhancedCode(5, 1, 4)), lines)
            }
        }
    }

    /// True when RCPT would accept `address`.
    async fn accepts(&self, address: &str) -> bool {
        matches!(
            self.directory(self.ctx.directory.resolve(address)).await,
            Ok(directory::Resolution::Deliver { .. } | directory::Resolution::Forward { .. })
        )
    }

    pub(crate) async fn expn(&mut self, query: String) -> Reply {
        if !self.ctx.config.expn {
            return reply(502, 5, 5, 1, "EXPN not available");
        }
        let q = query
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        let address = if q.contains('@') {
            q
        } else {
            format!("{q}@{}", self.ctx.directory.primary_domain())
        };
        let members = match self.directory(self.ctx.directory.expn(&address)).await {
            Ok(m) => m,
            Err(DirectoryError::InvalidAddress(_)) => None,
            Err(_) => return local_error(),
        };
        match members {
            None => reply(550, 5, 1, 1, "Not a mailing list"),
            Some(members) if members.is_empty() => reply(250, 2, 1, 5, "List has no members"),
            Some(members) => Reply::multi(
                250,
                Some(proto_smtp::EnhancedCode(2, 1, 5)),
                members
                    .iter()
                    .map(|m| mailbox_line(m.full_name.as_deref(), &m.address))
                    .collect(),
            ),
        }
    }

    pub(crate) fn help(&self, topic: Option<&str>) -> Reply {
        let code = Some(proto_smtp::EnhancedCode(2, 0, 0));
        match topic.map(str::trim).filter(|t| !t.is_empty()) {
            None => {
                let verbs: Vec<&str> = HELP_TOPICS
                    .iter()
                    .map(|(v, _)| *v)
                    .filter(|v| {
                        self.ctx.config.legacy_send || !matches!(*v, "SEND" | "SOML" | "SAML")
                    })
                    .collect();
                Reply::multi(
                    214,
                    code,
                    vec![
                        "mailroom ESMTP; commands:".to_string(),
                        verbs.join(" "),
                        "HELP <command> for details".to_string(),
                    ],
                )
            }
            Some(t) => match HELP_TOPICS.iter().find(|(v, _)| v.eq_ignore_ascii_case(t)) {
                Some((_, text)) => reply(214, 2, 0, 0, text),
                None => reply(504, 5, 5, 1, "HELP topic unknown"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Kit, cmd};

    #[tokio::test]
    async fn vrfy_disclose_gives_name_and_address() {
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "VRFY Alice Liddell").await;
        assert_eq!(
            (r.code, r.lines.clone()),
            (250, vec!["Alice Liddell <alice@example.test>".to_string()])
        );
        let r = cmd(&mut s, "VRFY bob").await;
        assert_eq!(r.lines, vec!["<bob@example.test>".to_string()]);
        assert_eq!(cmd(&mut s, "VRFY someone@remote.test").await.code, 252);
    }

    #[tokio::test]
    async fn vrfy_of_an_alias_is_252() {
        let kit = Kit::new();
        kit.ctx
            .directory
            .add_alias("info@example.test", &["alice@example.test".to_string()])
            .await
            .unwrap();
        let mut s = kit.session();
        assert_eq!(cmd(&mut s, "VRFY info").await.code, 252);
        assert_eq!(cmd(&mut s, "VRFY nobody").await.code, 550);
    }

    #[tokio::test]
    async fn help_without_legacy_omits_send_family() {
        let kit = Kit::with(|c| c.legacy_send = false, None);
        let mut s = kit.session();
        let r = cmd(&mut s, "HELP").await;
        assert!(!r.lines.iter().any(|l| l.contains("SOML")), "{r:?}");
        assert_eq!(cmd(&mut s, "HELP quit").await.code, 214);
    }

    #[tokio::test]
    async fn expn_of_unknown_is_550() {
        let kit = Kit::new();
        let mut s = kit.session();
        assert_eq!(cmd(&mut s, "EXPN nothing").await.code, 550);
    }
}
