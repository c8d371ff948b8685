//! Session test kit: a real directory and store in a temporary folder, a
//! real presence registry, and helpers that feed parsed commands to a
//! session the way the driver does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use proto_smtp::{DataReceiver, DataStatus, Reply, parse_command};
use store::{
    BodyId, Change, Delivered, Delivery, FlagOp, MailboxChanges, MailboxId, MailboxInfo,
    MessageMeta, QueueEntry, Store, StoreError, StoreFuture, StoreStats, Uid,
};

use super::config::SmtpConfig;
use super::session::{Action, Session, SmtpContext};
use crate::presence::PresenceRegistry;

pub(crate) struct Kit {
    _dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub presence: Arc<PresenceRegistry>,
    pub ctx: Arc<SmtpContext>,
}

impl Kit {
    pub fn new() -> Kit {
        Kit::with(|_| {}, None)
    }

    pub fn with(tune: impl FnOnce(&mut SmtpConfig), failing: Option<StoreError>) -> Kit {
        Kit::with_memory(tune, failing, crate::budget::DEFAULT_INFLIGHT_BYTES)
    }

    /// A kit whose config `tune` adjusts; with `failing`, every delivery
    /// fails with that store error; `memory` is the message budget.
    pub fn with_memory(
        tune: impl FnOnce(&mut SmtpConfig),
        failing: Option<StoreError>,
        memory: usize,
    ) -> Kit {
        let crate::testutil::Fixture {
            dir,
            directory,
            store,
        } = crate::testutil::fixture();
        let presence = PresenceRegistry::new();
        let mut config = SmtpConfig::new("mx.example.test");
        tune(&mut config);
        let session_store: Arc<dyn Store> = match failing {
            Some(error) => Arc::new(Failing {
                inner: store.clone(),
                error: Some(error),
                body_reads: Arc::default(),
            }),
            None => store.clone(),
        };
        let auth = crate::auth::Authenticator::with_delay_scale(Arc::clone(&directory), 0.0);
        let ctx = Arc::new(SmtpContext {
            config,
            directory,
            store: session_store,
            presence: presence.clone(),
            quota: crate::quota::QuotaBook::fixed(Default::default()),
            memory: crate::budget::MemoryBudget::new(memory),
            metrics: Arc::default(),
            tls: None,
            auth,
            send_rate: Default::default(),
            srs: None,
            bounces: None,
            checks: None,
        });
        Kit {
            _dir: dir,
            store,
            presence,
            ctx,
        }
    }

    pub fn session(&self) -> Session {
        self.session_from([127, 0, 0, 1])
    }

    pub fn session_from(&self, ip: [u8; 4]) -> Session {
        Session::new(self.ctx.clone(), SocketAddr::from((ip, 40000)))
    }

    /// A session that has said EHLO.
    pub async fn ready(&self) -> Session {
        let mut s = self.session();
        assert_eq!(cmd(&mut s, "EHLO client.test").await.code, 250);
        s
    }

    pub async fn inbox(&self, account: &str) -> Vec<Vec<u8>> {
        let Some(mb) = self
            .store
            .mailbox(account.into(), "INBOX".into())
            .await
            .expect("mailbox")
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in self.store.messages(mb.id).await.expect("messages") {
            out.push(self.store.read_body(m.body).await.expect("body"));
        }
        out
    }
}

/// A reply's code and enhanced code, for compact assertions.
pub(crate) fn code(r: &Reply) -> (u16, String) {
    let enhanced = r.enhanced.as_ref().map(|e| e.to_string());
    (r.code, enhanced.unwrap_or_default())
}

/// Parses and applies one command line; for DATA returns the 354.
pub(crate) async fn cmd(s: &mut Session, line: &str) -> Reply {
    let parsed = match parse_command(line.as_bytes()) {
        Ok(c) => c,
        Err(e) => return e.reply(),
    };
    match s.apply(parsed).await {
        Action::Reply(r) | Action::Close(r) | Action::ReadData(r) | Action::StartTls(r) => r,
        Action::ReadChunk { refuse, .. } => refuse.unwrap_or_else(|| Reply::new(0, None, "chunk")),
    }
}

/// Sends `message` (wire form, without the final dot) after a 354.
pub(crate) async fn data(s: &mut Session, message: &[u8]) -> Reply {
    let mut rx = DataReceiver::new(s.config().max_message_size);
    let mut wire = message.to_vec();
    wire.extend_from_slice(b".\r\n");
    let (_, status) = rx.feed(&wire);
    assert!(matches!(status, DataStatus::Done));
    if !rx.too_large() && !s.reserve(rx.stored()) {
        rx.limit_to(0);
    }
    let too_large = rx.too_large();
    let message = crate::spool::Message::whole(rx.into_message());
    s.finish_data(Ok(message), too_large).await
}

/// A full transaction: MAIL, RCPTs (each must be accepted), DATA.
pub(crate) async fn transaction(
    s: &mut Session,
    verb: &str,
    from: &str,
    to: &[&str],
    message: &[u8],
) -> Reply {
    assert_eq!(cmd(s, &format!("{verb} FROM:<{from}>")).await.code, 250);
    for t in to {
        let r = cmd(s, &format!("RCPT TO:<{t}>")).await;
        assert!(r.code == 250 || r.code == 251, "{t}: {r:?}");
    }
    assert_eq!(cmd(s, "DATA").await.code, 354);
    data(s, message).await
}

/// A store whose deliveries fail with a given error (disk full, quota,
/// I/O), if any; everything else goes to the real store, with the bodies
/// it reads counted.
struct Failing {
    inner: Arc<dyn Store>,
    error: Option<StoreError>,
    body_reads: Arc<AtomicUsize>,
}

/// `inner`, counting in the returned counter every body it reads
/// (`read_body`, and each body of `read_bodies`), for tests that show a
/// path does not read bodies.
pub(crate) fn counting_body_reads(inner: Arc<dyn Store>) -> (Arc<dyn Store>, Arc<AtomicUsize>) {
    let body_reads = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(Failing {
        inner,
        error: None,
        body_reads: Arc::clone(&body_reads),
    });
    (store, body_reads)
}

impl Store for Failing {
    fn deliver(&self, d: Delivery) -> StoreFuture<'_, Delivered> {
        match self.error.clone() {
            Some(e) => Box::pin(async move { Err(e) }),
            None => self.inner.deliver(d),
        }
    }
    fn ensure_account(&self, a: String) -> StoreFuture<'_, ()> {
        self.inner.ensure_account(a)
    }
    fn usage(&self, a: String) -> StoreFuture<'_, store::Usage> {
        self.inner.usage(a)
    }
    fn delete_account(&self, a: String) -> StoreFuture<'_, ()> {
        self.inner.delete_account(a)
    }
    fn mailboxes(&self, a: String) -> StoreFuture<'_, Vec<MailboxInfo>> {
        self.inner.mailboxes(a)
    }
    fn subscriptions(&self, a: String) -> StoreFuture<'_, Vec<String>> {
        self.inner.subscriptions(a)
    }
    fn mailbox(&self, a: String, n: String) -> StoreFuture<'_, Option<MailboxInfo>> {
        self.inner.mailbox(a, n)
    }
    fn create_mailbox(
        &self,
        a: String,
        n: String,
        s: Option<String>,
    ) -> StoreFuture<'_, MailboxInfo> {
        self.inner.create_mailbox(a, n, s)
    }
    fn delete_mailbox(&self, a: String, n: String) -> StoreFuture<'_, ()> {
        self.inner.delete_mailbox(a, n)
    }
    fn rename_mailbox(&self, a: String, f: String, t: String) -> StoreFuture<'_, ()> {
        self.inner.rename_mailbox(a, f, t)
    }
    fn set_subscribed(&self, a: String, n: String, s: bool) -> StoreFuture<'_, ()> {
        self.inner.set_subscribed(a, n, s)
    }
    fn messages(&self, m: MailboxId) -> StoreFuture<'_, Vec<MessageMeta>> {
        self.inner.messages(m)
    }
    fn read_body(&self, b: BodyId) -> StoreFuture<'_, Vec<u8>> {
        self.body_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_body(b)
    }
    fn read_bodies(&self, b: Vec<BodyId>) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        self.body_reads.fetch_add(b.len(), Ordering::SeqCst);
        self.inner.read_bodies(b)
    }
    // Range reads are not whole reads: passed on uncounted (issue 18).
    fn read_body_range(&self, b: BodyId, offset: u64, len: usize) -> StoreFuture<'_, Vec<u8>> {
        self.inner.read_body_range(b, offset, len)
    }
    fn read_body_range_into(
        &self,
        b: BodyId,
        offset: u64,
        len: usize,
        buf: Vec<u8>,
    ) -> StoreFuture<'_, Vec<u8>> {
        self.inner.read_body_range_into(b, offset, len, buf)
    }
    fn body_meta(&self, b: Vec<BodyId>) -> StoreFuture<'_, Vec<Option<Vec<u8>>>> {
        self.inner.body_meta(b)
    }
    fn set_body_meta(&self, e: Vec<(BodyId, Vec<u8>)>) -> StoreFuture<'_, ()> {
        self.inner.set_body_meta(e)
    }
    fn append(&self, m: MailboxId, r: Vec<u8>, f: Vec<String>, d: i64) -> StoreFuture<'_, Uid> {
        self.inner.append(m, r, f, d)
    }
    fn urlauth_key(&self, a: String, m: MailboxId) -> StoreFuture<'_, Option<Vec<u8>>> {
        self.inner.urlauth_key(a, m)
    }
    fn ensure_urlauth_key(&self, a: String, m: MailboxId, k: Vec<u8>) -> StoreFuture<'_, Vec<u8>> {
        self.inner.ensure_urlauth_key(a, m, k)
    }
    fn append_spooled(
        &self,
        m: MailboxId,
        head: Vec<u8>,
        tail: store::Spooled,
        f: Vec<String>,
        d: i64,
        q: store::Quota,
    ) -> StoreFuture<'_, Uid> {
        self.inner.append_spooled(m, head, tail, f, d, q)
    }
    fn append_many(
        &self,
        m: MailboxId,
        n: Vec<store::NewMessage>,
        q: store::Quota,
    ) -> StoreFuture<'_, Vec<Uid>> {
        self.inner.append_many(m, n, q)
    }
    fn set_flags(
        &self,
        m: MailboxId,
        u: Vec<Uid>,
        o: FlagOp,
        f: Vec<String>,
    ) -> StoreFuture<'_, Vec<MessageMeta>> {
        self.inner.set_flags(m, u, o, f)
    }
    fn set_flags_unchanged_since(
        &self,
        m: MailboxId,
        u: Vec<Uid>,
        o: FlagOp,
        f: Vec<String>,
        since: u64,
    ) -> StoreFuture<'_, store::ConditionalFlags> {
        self.inner.set_flags_unchanged_since(m, u, o, f, since)
    }
    fn append_within(
        &self,
        m: MailboxId,
        r: Vec<u8>,
        f: Vec<String>,
        d: i64,
        q: store::Quota,
    ) -> StoreFuture<'_, Uid> {
        self.inner.append_within(m, r, f, d, q)
    }
    fn copy_within(
        &self,
        f: MailboxId,
        u: Vec<Uid>,
        t: MailboxId,
        q: store::Quota,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        self.inner.copy_within(f, u, t, q)
    }
    fn expunge(&self, m: MailboxId, u: Vec<Uid>) -> StoreFuture<'_, Vec<Uid>> {
        self.inner.expunge(m, u)
    }
    fn trim_tombstones(&self, older_than: i64) -> StoreFuture<'_, u64> {
        self.inner.trim_tombstones(older_than)
    }
    fn copy(&self, f: MailboxId, u: Vec<Uid>, t: MailboxId) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        self.inner.copy(f, u, t)
    }
    fn move_messages(
        &self,
        f: MailboxId,
        u: Vec<Uid>,
        t: MailboxId,
    ) -> StoreFuture<'_, Vec<(Uid, Uid)>> {
        self.inner.move_messages(f, u, t)
    }
    fn messages_range(&self, m: MailboxId, a: Uid, b: Uid) -> StoreFuture<'_, Vec<MessageMeta>> {
        self.inner.messages_range(m, a, b)
    }
    fn changes_since(&self, m: MailboxId, since: u64) -> StoreFuture<'_, MailboxChanges> {
        self.inner.changes_since(m, since)
    }
    fn queue(&self) -> StoreFuture<'_, Vec<QueueEntry>> {
        self.inner.queue()
    }
    fn import(
        &self,
        m: MailboxId,
        r: Vec<u8>,
        f: Vec<String>,
        d: i64,
        h: [u8; 32],
    ) -> StoreFuture<'_, Option<Uid>> {
        self.inner.import(m, r, f, d, h)
    }
    fn claim_queue(&self, n: i64, l: i64, m: usize) -> StoreFuture<'_, Vec<QueueEntry>> {
        self.inner.claim_queue(n, l, m)
    }
    fn renew_queue_claims(&self, ids: Vec<i64>, n: i64, l: i64) -> StoreFuture<'_, usize> {
        self.inner.renew_queue_claims(ids, n, l)
    }
    fn complete_queue(&self, id: i64) -> StoreFuture<'_, ()> {
        self.inner.complete_queue(id)
    }
    fn defer_queue(&self, id: i64, n: i64, e: String) -> StoreFuture<'_, ()> {
        self.inner.defer_queue(id, n, e)
    }
    fn fail_queue(&self, id: i64, e: String) -> StoreFuture<'_, ()> {
        self.inner.fail_queue(id, e)
    }
    fn settle_queue(&self, s: store::Settle) -> StoreFuture<'_, Vec<Delivered>> {
        match self.error.clone() {
            Some(e) if !s.dsns.is_empty() => Box::pin(async move { Err(e) }),
            _ => self.inner.settle_queue(s),
        }
    }
    fn retry_queue(&self, id: Option<i64>) -> StoreFuture<'_, usize> {
        self.inner.retry_queue(id)
    }
    fn delete_queue(&self, id: i64) -> StoreFuture<'_, ()> {
        self.inner.delete_queue(id)
    }
    fn queue_stats(&self) -> StoreFuture<'_, (u64, Option<i64>)> {
        self.inner.queue_stats()
    }
    fn release_queue_claims(&self) -> StoreFuture<'_, usize> {
        self.inner.release_queue_claims()
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.inner.subscribe()
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}
