//! Session test kit: a real directory and store in a temporary folder, the
//! real Authenticator (without its delays), and helpers that parse command
//! lines and apply them to a session the way the driver does, collecting
//! the responses as lines (literals inline).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use proto_imap::command::parse_command;
use proto_imap::{Status, Tag};
use store::{Delivery, MailboxInfo, Store};

use super::config::ImapConfig;
use super::session::{Flow, ImapContext, Out, Session, Sink, tagged};
use crate::auth::Authenticator;

pub(crate) use crate::testutil::{ALICE, BOB};

pub(crate) struct Kit {
    _dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub ctx: Arc<ImapContext>,
}

/// The responses of one command.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Untagged lines and continuations, literals inline, without CRLF.
    pub untagged: Vec<String>,
    /// The tagged line ("" when the command ended without one: IDLE).
    pub tagged: String,
    pub flow: Flow,
}

impl Reply {
    /// "OK", "NO" or "BAD".
    pub fn status(&self) -> &str {
        self.tagged.split(' ').nth(1).unwrap_or("")
    }

    pub fn lines_with(&self, needle: &str) -> Vec<&str> {
        self.untagged
            .iter()
            .filter(|l| l.contains(needle))
            .map(String::as_str)
            .collect()
    }

    pub fn has(&self, needle: &str) -> bool {
        !self.lines_with(needle).is_empty()
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.status(), "OK", "{self:#?}");
        self
    }
}

/// Collects what a command writes.
struct Collect(Vec<u8>);

impl Sink for Collect {
    fn send<'a>(&'a mut self, bytes: &'a [u8]) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        self.0.extend_from_slice(bytes);
        Box::pin(async { true })
    }
}

impl Kit {
    /// Needs a tokio runtime (the change hub starts a task).
    pub fn new() -> Kit {
        Kit::with(|_| {})
    }

    /// A kit whose config `tune` adjusts.
    pub fn with(tune: impl FnOnce(&mut ImapConfig)) -> Kit {
        Kit::build(tune, Default::default())
    }

    /// A kit whose users all have the quota `defaults`.
    pub fn with_quota(defaults: crate::quota::QuotaDefaults) -> Kit {
        Kit::build(|_| {}, defaults)
    }

    /// A kit whose store counts the bodies it reads, in the counter
    /// returned.
    pub fn counting_body_reads() -> (Kit, Arc<std::sync::atomic::AtomicUsize>) {
        Kit::counting_body_reads_with(|_| {})
    }

    /// [`Kit::counting_body_reads`] with a config `tune` adjusts.
    pub fn counting_body_reads_with(
        tune: impl FnOnce(&mut ImapConfig),
    ) -> (Kit, Arc<std::sync::atomic::AtomicUsize>) {
        let mut counter = None;
        let kit = Kit::build_on(tune, Default::default(), |store| {
            let (store, reads) = crate::smtp::testkit::counting_body_reads(store);
            counter = Some(reads);
            store
        });
        (kit, counter.unwrap_or_default())
    }

    fn build(tune: impl FnOnce(&mut ImapConfig), quota: crate::quota::QuotaDefaults) -> Kit {
        Kit::build_on(tune, quota, |store| store)
    }

    /// `wrap` puts a test double around the real store.
    fn build_on(
        tune: impl FnOnce(&mut ImapConfig),
        quota: crate::quota::QuotaDefaults,
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
    ) -> Kit {
        let crate::testutil::Fixture {
            dir,
            directory,
            store,
        } = crate::testutil::fixture();
        let store = wrap(store);
        let mut config = ImapConfig::new("mx.example.test");
        tune(&mut config);
        let ctx = ImapContext::new(
            config,
            store.clone(),
            Authenticator::with_delay_scale(directory, 0.0),
            None,
            Arc::new(crate::metrics::Metrics::default()),
            crate::presence::PresenceRegistry::new(),
            crate::quota::QuotaBook::fixed(quota),
        );
        Kit {
            _dir: dir,
            store,
            ctx,
        }
    }

    pub fn session(&self) -> Session {
        Session::new(self.ctx.clone(), SocketAddr::from(([127, 0, 0, 1], 40000)))
    }

    /// A session logged in as `user` (password "pw").
    pub async fn logged_in(&self, user: &str) -> Session {
        let mut s = self.session();
        cmd(&mut s, &format!("LOGIN {user} pw")).await.assert_ok();
        s
    }

    /// A session of `user` that ENABLEd IMAP4rev2, with `mailbox` selected.
    pub async fn selected_rev2(&self, user: &str, mailbox: &str) -> Session {
        let mut s = self.logged_in(user).await;
        cmd(&mut s, "ENABLE IMAP4rev2").await.assert_ok();
        cmd(&mut s, &format!("SELECT {mailbox}")).await.assert_ok();
        s
    }

    /// A session of `user` with `mailbox` selected.
    pub async fn selected(&self, user: &str, mailbox: &str) -> Session {
        let mut s = self.logged_in(user).await;
        cmd(&mut s, &format!("SELECT {mailbox}")).await.assert_ok();
        s
    }

    /// Delivers one message to `account`'s INBOX.
    pub async fn deliver(&self, account: &str, raw: &str) {
        self.store
            .deliver(Delivery {
                local_raw: Some(raw.as_bytes().to_vec()),
                local: vec![store::LocalTarget::inbox(account.to_string())],
                outbound: None,
                internal_date: 1_700_000_000,
            })
            .await
            .expect("deliver");
    }

    /// Delivers `n` small messages ("Subject: m1" ...).
    pub async fn deliver_n(&self, account: &str, n: usize) {
        for i in 1..=n {
            self.deliver(account, &format!("Subject: m{i}\r\n\r\nbody {i}\r\n"))
                .await;
        }
    }

    pub async fn mailbox(&self, account: &str, name: &str) -> Option<MailboxInfo> {
        self.store
            .mailbox(account.into(), name.into())
            .await
            .expect("mailbox")
    }

    /// The UIDs of a mailbox, from the store.
    pub async fn uids(&self, account: &str, name: &str) -> Vec<u32> {
        let Some(mb) = self.mailbox(account, name).await else {
            return Vec::new();
        };
        self.store
            .messages(mb.id)
            .await
            .expect("messages")
            .iter()
            .map(|m| m.uid.0)
            .collect()
    }
}

/// Parses `line` (tag "t" prepended, CRLF appended) and applies it.
pub(crate) async fn cmd(s: &mut Session, line: &str) -> Reply {
    raw(s, format!("t {line}\r\n").as_bytes()).await
}

/// Parses one whole command (literals included) and applies it.
pub(crate) async fn raw(s: &mut Session, bytes: &[u8]) -> Reply {
    let mut sink = Collect(Vec::new());
    let flow = {
        let mut out = Out::new(&mut sink, s.encoder());
        let flow = match parse_command(bytes, s.parse_options()) {
            Ok(c) => s.apply(c, &mut out).await.expect("client is there"),
            // As the driver answers a syntax error.
            Err(e) => {
                let tag = e.tag.unwrap_or_else(|| Tag::new("t").expect("tag"));
                if e.bad_name {
                    tagged(&mut out, &tag, Status::No, None, e.message);
                } else {
                    let text = format!("Syntax error: {}", e.message);
                    tagged(&mut out, &tag, Status::Bad, None, &text);
                }
                Flow::Continue
            }
        };
        out.flush().await.expect("flush");
        flow
    };
    let mut lines = split_lines(&sink.0);
    let tagged = match lines.last() {
        Some(l) if l.starts_with("t ") => lines.pop().unwrap_or_default(),
        _ => String::new(),
    };
    Reply {
        untagged: lines,
        tagged,
        flow,
    }
}

/// Reports what changed in the selected mailbox, as IDLE does.
pub(crate) async fn idle_sync(s: &mut Session) -> Vec<String> {
    let mut sink = Collect(Vec::new());
    let mut out = Out::new(&mut sink, s.encoder());
    s.sync(&mut out, true, false).await.expect("sync");
    out.flush().await.expect("flush");
    drop(out);
    split_lines(&sink.0)
}

/// CRLF-separated lines; a line ending in `{n}` continues after n octets.
fn split_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut rest = bytes;
    while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
        let (line, tail) = rest.split_at(nl);
        cur.extend_from_slice(line);
        rest = &tail[2..];
        let literal = cur
            .strip_suffix(b"}")
            .and_then(|h| h.iter().rposition(|&b| b == b'{').map(|i| &h[i + 1..]))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
        match literal {
            Some(n) if n <= rest.len() => {
                cur.extend_from_slice(b"\r\n");
                cur.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            _ => lines.push(String::from_utf8_lossy(&std::mem::take(&mut cur)).into_owned()),
        }
    }
    lines
}
