//! Session test kit: a real directory and store in a temporary folder, the
//! real Authenticator (without its delays), and helpers that feed command
//! lines to a session the way the driver does.

use std::net::SocketAddr;
use std::sync::Arc;

use proto_pop3::{Response, parse_command};
use store::{Delivery, Store};

use super::config::Pop3Config;
use super::session::{Action, Pop3Context, Session};
use crate::auth::Authenticator;

pub(crate) struct Kit {
    _dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub ctx: Arc<Pop3Context>,
}

/// What a command produced, flattened for assertions.
#[derive(Debug)]
pub(crate) struct Out {
    pub status: Response,
    /// The lines of LIST, UIDL, CAPA, AUTH.
    pub lines: Vec<String>,
    /// The octets of RETR / TOP before dot-stuffing.
    pub body: Option<Vec<u8>>,
    /// The `+ ` of a SASL exchange.
    pub continuation: bool,
    pub closed: bool,
}

impl Kit {
    pub fn new() -> Kit {
        Kit::with(|_| {})
    }

    /// A kit whose config `tune` adjusts.
    pub fn with(tune: impl FnOnce(&mut Pop3Config)) -> Kit {
        let crate::testutil::Fixture {
            dir,
            directory,
            store,
        } = crate::testutil::fixture();
        let mut config = Pop3Config::default();
        tune(&mut config);
        let ctx = Arc::new(Pop3Context {
            config,
            store: store.clone(),
            auth: Authenticator::with_delay_scale(directory, 0.0),
            tls: None,
            metrics: Arc::new(crate::metrics::Metrics::default()),
        });
        Kit {
            _dir: dir,
            store,
            ctx,
        }
    }

    pub fn session(&self) -> Session {
        self.session_from([127, 0, 0, 1])
    }

    pub fn session_from(&self, ip: [u8; 4]) -> Session {
        Session::new(self.ctx.clone(), SocketAddr::from((ip, 40000)))
    }

    /// A session logged in as `user` (password "pw").
    pub async fn logged_in(&self, user: &str) -> Session {
        let mut s = self.session();
        assert!(cmd(&mut s, &format!("USER {user}")).await.status.ok);
        let r = cmd(&mut s, "PASS pw").await;
        assert!(r.status.ok, "{r:?}");
        s
    }

    pub async fn deliver(&self, account: &str, raw: &[u8]) {
        self.store
            .deliver(Delivery {
                local_raw: Some(raw.to_vec()),
                local: vec![store::LocalTarget::inbox(account.to_string())],
                outbound: None,
                internal_date: 0,
            })
            .await
            .expect("deliver");
    }

    pub async fn inbox(&self, account: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(mb) = self.mailbox(account).await {
            for m in self.store.messages(mb).await.expect("messages") {
                out.push(self.store.read_body(m.body).await.expect("body"));
            }
        }
        out
    }

    /// Whether each INBOX message has \Seen, in UID order.
    pub async fn flags(&self, account: &str) -> Vec<bool> {
        let Some(mb) = self.mailbox(account).await else {
            return Vec::new();
        };
        self.store
            .messages(mb)
            .await
            .expect("messages")
            .iter()
            .map(|m| m.flags.iter().any(|f| f == "\\Seen"))
            .collect()
    }

    async fn mailbox(&self, account: &str) -> Option<store::MailboxId> {
        self.store
            .mailbox(account.into(), "INBOX".into())
            .await
            .expect("mailbox")
            .map(|m| m.id)
    }
}

/// Parses and applies one command line as the driver does (a RETR counts
/// as written at once).
pub(crate) async fn cmd(s: &mut Session, line: &str) -> Out {
    let mut out = Out {
        status: Response::ok(""),
        lines: Vec::new(),
        body: None,
        continuation: false,
        closed: false,
    };
    let parsed = match parse_command(line.as_bytes()) {
        Ok(c) => c,
        Err(e) => {
            out.status = e.response();
            return out;
        }
    };
    match s.apply(parsed).await {
        Action::Reply(r) => out.status = r,
        Action::Lines(r, lines) => {
            out.status = r;
            out.lines = lines;
        }
        Action::Message {
            status,
            mut body,
            len,
            seen,
        } => {
            out.status = status;
            body.truncate(len);
            out.body = Some(body);
            if let Some(uid) = seen {
                s.retrieved(uid);
            }
        }
        Action::Stream {
            status,
            body,
            lines,
            seen,
        } => {
            out.status = status;
            let raw = s.ctx.store.read_body(body).await.expect("body");
            out.body = Some(match lines {
                Some(n) => proto_pop3::top(&raw, n).to_vec(),
                None => raw,
            });
            if let Some(uid) = seen {
                s.retrieved(uid);
            }
        }
        Action::Continue(_) => out.continuation = true,
        Action::StartTls(r) => out.status = r,
        Action::Close(r) => {
            out.status = r;
            out.closed = true;
        }
    }
    out
}

/// Sends the client's line of a SASL exchange.
pub(crate) async fn sasl(s: &mut Session, line: &str) -> Response {
    assert!(s.awaiting_sasl());
    match s.sasl_response(line.as_bytes()).await {
        Action::Reply(r) => r,
        Action::Continue(c) => Response::ok(format!("continue {c}")),
        other => panic!("unexpected {other:?}"),
    }
}
