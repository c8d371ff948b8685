//! DATA (RFC 5321 4.1.1.4) and BDAT (RFC 3030): receiving the message and
//! handing it to the store. The 250 is sent only after the store's commit
//! has made the message durable (SPEC 6); whatever the reply, the end of
//! the data ends the transaction.

use delivery::dsn::{Action as DsnAction, RecipientReport, Report};
use delivery::trace::{self, ReceivedInfo};
use delivery::{Envelope, Refusal, RemoteTarget, Targets};
use proto_common::log_safe;
use proto_smtp::{Body, Notify, Reply};
use store::StoreError;

use super::checks::{self, Verdict};
use super::session::{
    Action, Chunks, Session, State, Transaction, bad_sequence, local_error, reply,
};
use crate::presence::TerminalMessage;
use crate::spool::{Message, SpoolError};

impl Session {
    pub(crate) fn data_start(&mut self) -> Action {
        let State::Transaction(tx) = &self.state else {
            return Action::Reply(bad_sequence("Need MAIL command first"));
        };
        if tx.recipients.is_empty() {
            return Action::Reply(bad_sequence("Need RCPT command first"));
        }
        if tx.chunks.is_some() {
            return Action::Reply(bad_sequence("DATA not allowed after BDAT"));
        }
        // RFC 3030 3: BINARYMIME content can only come by BDAT.
        if tx.params.body == Some(Body::BinaryMime) {
            return Action::Reply(bad_sequence("BODY=BINARYMIME requires BDAT"));
        }
        // Admit the message whole or not at all, before the 354: refusing
        // after the client sent 20 MB wastes both sides' work and, with
        // reservations grown as data arrives, let every concurrent sender
        // spend the budget and none finish. The transaction stays open
        // (RFC 5321 4.1.1.4 lists 452 for DATA): the client may retry DATA
        // or RSET.
        let need = self.admission_size(tx.params.size, None);
        if !self.admit(need) {
            return Action::Reply(insufficient_storage());
        }
        Action::ReadData(Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"))
    }

    /// The end of DATA: `message` is dot-unstuffed and CRLF-canonical,
    /// or the spool's error; `too_large` says the receiver stopped storing
    /// at the size limit.
    pub async fn finish_data(
        &mut self,
        message: Result<Message, SpoolError>,
        too_large: bool,
    ) -> Reply {
        let State::Transaction(tx) = std::mem::replace(&mut self.state, State::Ready) else {
            return bad_sequence("No transaction");
        };
        let r = if self.out_of_memory {
            insufficient_storage()
        } else if too_large {
            too_big()
        } else {
            match message {
                Ok(message) => self.deliver(tx, message).await,
                Err(e) => spool_error_reply(&e),
            }
        };
        self.end_message();
        r
    }

    fn count_accepted(&self, size: usize) {
        self.ctx.metrics.smtp_accepted(size as u64);
    }

    pub(crate) fn bdat_start(&mut self, size: u64, last: bool) -> Action {
        let refuse = match &self.state {
            State::Transaction(tx) if tx.recipients.is_empty() => {
                Some(bad_sequence("Need RCPT command first"))
            }
            State::Transaction(_) => None,
            _ => Some(bad_sequence("Need MAIL command first")),
        };
        if refuse.is_some() {
            return Action::ReadChunk { size, last, refuse };
        }
        let first = match &self.state {
            State::Transaction(tx) if tx.chunks.is_none() => Some(tx.params.size),
            _ => None,
        };
        // The first chunk admits the message whole, as DATA does; the
        // refused chunk is still read (RFC 3030 2) and its error ends the
        // transaction.
        if let Some(declared) = first {
            let need = self.admission_size(declared, last.then_some(size));
            if !self.admit(need) {
                self.state = State::Ready;
                self.end_message();
                let r = insufficient_storage();
                return Action::ReadChunk {
                    size,
                    last,
                    refuse: Some(r),
                };
            }
        }
        let writer = self.spool_writer();
        if let State::Transaction(tx) = &mut self.state {
            tx.chunks.get_or_insert_with(|| {
                Box::new(Chunks {
                    data: writer,
                    ..Chunks::default()
                })
            });
        }
        Action::ReadChunk { size, last, refuse }
    }

    /// Appends part of a BDAT chunk, canonicalised to CRLF and spooled
    /// past the threshold; stops storing past the size limit but keeps
    /// counting, so the error comes once at the end of the chunk.
    pub fn bdat_append(&mut self, bytes: &[u8]) {
        let max = self.ctx.config.max_message_size;
        let held = match &self.state {
            State::Transaction(Transaction {
                chunks: Some(chunks),
                ..
            }) => chunks.data.in_memory_len(),
            _ => return,
        };
        let fits = self.reserve(held.saturating_add(2 * bytes.len()));
        if let State::Transaction(Transaction {
            chunks: Some(chunks),
            ..
        }) = &mut self.state
        {
            chunks.received = chunks.received.saturating_add(bytes.len() as u64);
            if !fits {
                chunks.data.discard();
            } else if chunks.received <= max as u64 {
                let mut canonical = Vec::with_capacity(bytes.len() + bytes.len() / 8);
                chunks.crlf.push(bytes, &mut canonical);
                chunks.data.write(&canonical);
            }
        }
    }

    /// The end of one BDAT chunk (RFC 3030 2): 250 per chunk, and after
    /// LAST the delivery; a size overrun ends the transaction with 552.
    pub async fn bdat_end(&mut self, size: u64, last: bool) -> Reply {
        let max = self.ctx.config.max_message_size as u64;
        let (over, spool_failed) = match &self.state {
            State::Transaction(Transaction {
                chunks: Some(c), ..
            }) => (c.received > max, c.data.failed().cloned()),
            _ => return bad_sequence("No transaction"),
        };
        // RFC 3030 2: an error on a chunk ends the transaction.
        if self.out_of_memory || over || spool_failed.is_some() {
            self.state = State::Ready;
            let r = if self.out_of_memory {
                insufficient_storage()
            } else if let Some(e) = spool_failed {
                spool_error_reply(&e)
            } else {
                too_big()
            };
            self.end_message();
            return r;
        }
        if !last {
            return reply(250, 2, 0, 0, &format!("{size} octets received"));
        }
        let State::Transaction(mut tx) = std::mem::replace(&mut self.state, State::Ready) else {
            return bad_sequence("No transaction");
        };
        // BDAT content is not dot-stuffed, but we store CRLF canonical
        // (SPEC 1): a CR the last chunk ended with is a line break.
        let mut chunks = tx.chunks.take().unwrap_or_default();
        let mut rest = Vec::new();
        chunks.crlf.finish(&mut rest);
        chunks.data.write(&rest);
        let r = match chunks.data.finish() {
            Ok(message) => self.deliver(tx, message).await,
            Err(e) => spool_error_reply(&e),
        };
        self.end_message();
        r
    }

    /// Adds the trace fields, stores the message for local recipients,
    /// queues it for remote ones and hands it to terminals, all before the
    /// reply.
    ///
    /// A spooled message (issue 19) keeps its header section in memory
    /// (`message.head`), where every header change happens; its tail goes
    /// from the spool file to the store in chunks.
    async fn deliver(&mut self, tx: Transaction, message: Message) -> Reply {
        let size = message.len();
        let Message {
            head: message,
            tail,
            nul,
        } = message;
        let tail = tail.filter(|t| !t.is_empty());
        if delivery::check_hops(&message) == Err(Refusal::TooManyHops) {
            return reply(554, 5, 4, 6, "Too many hops: mail loop detected");
        }
        let id = trace::new_queue_id();
        let config = &self.ctx.config;
        let (helo, extended) = self
            .helo
            .as_ref()
            .map_or(("unknown", false), |h| (h.name.as_str(), h.extended));
        let single = match tx.recipients.as_slice() {
            [only] => Some(only.address.as_str()),
            _ => None,
        };
        let tls = self.tls.as_ref().map(|t| t.received_comment());
        let received = trace::received(&ReceivedInfo {
            helo,
            ip: self.peer.ip(),
            hostname: &config.hostname,
            extended,
            tls: tls.as_deref(),
            utf8: tx.params.smtputf8,
            authenticated: self.authenticated.is_some(),
            id: &id,
            for_rcpt: single,
        });
        // RFC 6409 8: an authenticated submission gets Date and Message-ID.
        let submission_id = self.authenticated.is_some().then_some(id.as_str());
        let head_len = message.len();
        let body = delivery::clean(message, &config.hostname, submission_id);
        // SPF, DKIM, DMARC, ARC (issue 16): refused here, or recorded.
        let relaying = tx.recipients.iter().any(|r| !r.remote.is_empty());
        let (body, verdict) = self
            .auth_checks(&tx.sender, body, relaying, tail.clone())
            .await;
        // What `body` lacks of the message: the spooled tail.
        let size = size - head_len + body.len();
        let (results, junk, arc) = match verdict {
            Some(Verdict::Reject(r)) => return r,
            Some(Verdict::Accept { header, junk, arc }) => (Some(header), junk, arc),
            None => (None, false, None),
        };

        // One copy per account and per remote address, however it was
        // reached (SPEC 1: directly and through a list gives one copy).
        let mut targets = Targets::default();
        let mut terminal: Vec<String> = Vec::new();
        for r in &tx.recipients {
            targets.add(&r.mailbox, &[]);
            for address in &r.remote {
                // RFC 3461 4.2: a relayed recipient may get an ORCPT; for
                // a forwarded one it is the address the sender used, which
                // is what their DSN must name.
                let orcpt = r.orcpt.clone().or_else(|| {
                    r.forwarded
                        .then(|| format!("rfc822;{}", proto_smtp::xtext_encode(&r.address)))
                });
                targets.add_remote(RemoteTarget {
                    address: address.clone(),
                    forwarded: r.forwarded,
                    notify: r.notify.clone(),
                    orcpt,
                });
            }
            for t in &r.terminal {
                if !terminal.contains(t) {
                    terminal.push(t.clone());
                }
            }
        }
        // Terminals are fed only after the commit (issue 15): a commit that
        // fails, and the client's retry, must not show the message twice.
        // Who is to be shown it is decided now, so that a user who left
        // since RCPT, or was shown one less than ALERT_INTERVAL ago, gets
        // it in the mailbox in the same commit (SEND and SOML; SAML always
        // stores it).
        let saml = tx.kind == super::session::TxKind::Saml;
        let mut shown_to: Vec<String> = Vec::new();
        for account in &terminal {
            if self.ctx.presence.claim_alert(account) {
                shown_to.push(account.clone());
            } else if !saml && !targets.local.contains(account) {
                tracing::info!(id = %id, account = %account, "terminal gone or alerted within the last second; delivering to mailbox");
                targets.add(std::slice::from_ref(account), &[]);
            }
        }

        if let Some(refusal) = self.quota_at_data(&targets.local, size as u64) {
            return refusal;
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let envelope = Envelope {
            envid: tx.params.envid.clone(),
            ret: tx.params.ret.map(|r| r.as_str().to_string()),
            smtputf8: tx.params.smtputf8,
            forward_sender: self.forward_sender(&tx.sender),
        };
        // Nothing to store when the message only goes to terminals (SEND).
        if let Some(mut store_delivery) =
            delivery::build(&body, &tx.sender, Some(&received), &targets, now, &envelope)
        {
            if let Some(h) = &results {
                checks::insert_results(&mut store_delivery, h);
            }
            if junk {
                checks::into_junk(&mut store_delivery);
            }
            if let Some(set) = &arc {
                checks::seal_relayed(&mut store_delivery, set);
            }
            let mut writes = vec![store_delivery];
            // A spooled message's DSN returns its header section only (as
            // RET=HDRS): it is not read back into memory for a report.
            writes.extend(self.delivered_report(&tx, &body).await);
            // RFC 3516 4.3: binary parts go to the mailbox in base64.
            let stored = crate::binary::store_message(
                self.ctx.store.as_ref(),
                writes,
                tail.clone(),
                nul,
                self.spool_writer(),
            )
            .await;
            if let Err(e) = stored {
                tracing::warn!(id = %id, error = %e, "delivery failed");
                return store_error_reply(&e);
            }
        }
        // Committed: now the terminals. A user whose every session left in
        // the meantime gets the message in the mailbox, so a 250 always
        // means it reached a session or the mailbox of each recipient.
        let mut left: Vec<String> = Vec::new();
        if !shown_to.is_empty() {
            let shown = TerminalMessage::new(&tx.sender, &body);
            for account in &shown_to {
                if !self.ctx.presence.deliver_terminal(account, &shown)
                    && !targets.local.contains(account)
                {
                    left.push(account.clone());
                }
            }
        }
        let stored = !targets.is_empty() || !left.is_empty();
        if !left.is_empty() {
            tracing::info!(id = %id, accounts = ?left, "every session left before the end of DATA; delivering to mailbox");
            let fallback = Targets {
                local: left,
                remote: Vec::new(),
            };
            if let Some(d) = delivery::build(
                &body,
                &tx.sender,
                Some(&received),
                &fallback,
                now,
                &envelope,
            ) && let Err(e) = crate::binary::store_message(
                self.ctx.store.as_ref(),
                vec![d],
                tail.clone(),
                nul,
                self.spool_writer(),
            )
            .await
            {
                tracing::warn!(id = %id, error = %e, "delivery failed");
                return store_error_reply(&e);
            }
        }
        if !stored {
            tracing::info!(id = %id, client = %self.peer, from = %log_safe(&tx.sender), to = ?terminal, size, "sent to terminal");
        } else {
            tracing::info!(
                id = %id, client = %self.peer, from = %log_safe(&tx.sender),
                to = ?tx.recipients.iter().map(|r| r.address.as_str()).collect::<Vec<_>>(),
                local = targets.local.len(), remote = targets.remote.len(),
                terminal = shown_to.len(), size, "accepted"
            );
        }
        self.count_accepted(size);
        if let Some(account) = &self.authenticated {
            self.ctx.send_rate.record(account);
        }
        let verb = if stored { "queued" } else { "sent" };
        reply(250, 2, 0, 0, &format!("Ok: {verb} as {id}"))
    }
}

impl Session {
    /// RFC 3461 NOTIFY=SUCCESS for recipients delivered here: the
    /// "delivered" DSN, stored in the same transaction as the message.
    async fn delivered_report(&self, tx: &Transaction, body: &[u8]) -> Option<store::Delivery> {
        let bounces = self.ctx.bounces.as_ref()?;
        if tx.sender.is_empty() {
            return None;
        }
        let recipients: Vec<RecipientReport> = tx
            .recipients
            .iter()
            .filter(|r| !r.mailbox.is_empty() && Notify::of(r.notify.as_deref()).success)
            .map(|r| RecipientReport {
                recipient: r.address.clone(),
                orcpt: r.orcpt.clone(),
                action: DsnAction::Delivered,
                status: "2.0.0".to_string(),
                diagnostic: None,
                remote_mta: None,
                retry_until: None,
            })
            .collect();
        if recipients.is_empty() {
            return None;
        }
        let targets = bounces.targets(&tx.sender).await;
        let utf8 = tx.params.smtputf8;
        let report = Report {
            reporting_mta: &self.ctx.config.hostname,
            to: &tx.sender,
            envid: tx.params.envid.as_deref(),
            arrival: Some(time::OffsetDateTime::now_utc().unix_timestamp()),
            recipients,
            original: body,
            full: false,
            utf8,
        };
        delivery::dsn::delivery(&delivery::dsn::build(&report), &targets, utf8, false)
    }

    /// The reverse-path forwarded copies leave with: SRS in our primary
    /// domain for a sender of another domain; our own senders' domains
    /// pass SPF from us already, and `<>` stays `<>` (RFC 5321 4.5.5).
    fn forward_sender(&self, sender: &str) -> Option<String> {
        let srs = self.ctx.srs.as_ref()?;
        let (_, domain) = sender.rsplit_once('@')?;
        if self.ctx.directory.is_local_domain(domain) {
            return None;
        }
        Some(srs.forward(sender, delivery::srs::today()))
    }
}

/// RFC 1870 6: the message is over the SIZE limit.
fn too_big() -> Reply {
    reply(
        552,
        5,
        3,
        4,
        "Message size exceeds fixed maximum message size",
    )
}

/// The server-wide memory budget for messages in flight ran out: a
/// temporary refusal, the client tries again later.
fn insufficient_storage() -> Reply {
    reply(452, 4, 3, 1, "Insufficient system storage, try again later")
}

/// The spool could not take the message (issue 19): disk full is
/// `452 4.3.1` (SPEC 1), any other I/O error `451 4.3.0`; both temporary.
fn spool_error_reply(e: &SpoolError) -> Reply {
    match e {
        SpoolError::DiskFull => insufficient_storage(),
        SpoolError::Io(_) => local_error(),
    }
}

/// Maps a store failure to its SMTP reply (SPEC 1: mailbox full 452 4.2.2,
/// disk full 452 4.3.1, anything else 451 4.3.0; all temporary so the client
/// retries, and nothing was half-delivered).
pub(crate) fn store_error_reply(e: &StoreError) -> Reply {
    match e {
        StoreError::DiskFull => reply(452, 4, 3, 1, "Insufficient system storage"),
        StoreError::QuotaExceeded => reply(452, 4, 2, 2, "Mailbox full"),
        _ => local_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Kit, cmd, code, data, transaction};
    use store::StoreError;

    const MSG: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

    #[tokio::test]
    async fn send_reaches_the_terminal_not_the_mailbox() {
        let kit = Kit::new();
        let (_reg, mut term) = kit.presence.register("alice@example.test");
        let mut s = kit.ready().await;
        let r = transaction(
            &mut s,
            "SEND",
            "bob@example.test",
            &["alice@example.test"],
            MSG,
        )
        .await;
        assert_eq!(r.code, 250);
        let shown = term.try_recv().expect("terminal message");
        assert_eq!(shown.from, "bob@example.test");
        assert_eq!(&*shown.text, "Message from bob@example.test: hi - hello");
        assert!(kit.inbox("alice@example.test").await.is_empty());
    }

    #[tokio::test]
    async fn saml_reaches_terminal_and_mailbox() {
        let kit = Kit::new();
        let (_reg, mut term) = kit.presence.register("alice@example.test");
        let mut s = kit.ready().await;
        transaction(
            &mut s,
            "SAML",
            "bob@example.test",
            &["alice@example.test"],
            MSG,
        )
        .await;
        assert!(term.try_recv().is_ok());
        assert_eq!(kit.inbox("alice@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn soml_goes_to_terminal_when_active_and_mailbox_otherwise() {
        let kit = Kit::new();
        let (_reg, mut term) = kit.presence.register("alice@example.test");
        let mut s = kit.ready().await;
        let to = ["alice@example.test", "bob@example.test"];
        transaction(&mut s, "SOML", "x@remote.test", &to, MSG).await;
        assert!(term.try_recv().is_ok());
        assert!(kit.inbox("alice@example.test").await.is_empty());
        assert_eq!(kit.inbox("bob@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn send_falls_back_to_mailbox_when_the_terminal_left() {
        let kit = Kit::new();
        let (reg, term) = kit.presence.register("alice@example.test");
        let mut s = kit.ready().await;
        assert_eq!(cmd(&mut s, "SEND FROM:<x@remote.test>").await.code, 250);
        assert_eq!(cmd(&mut s, "RCPT TO:<alice@example.test>").await.code, 250);
        drop(term);
        drop(reg);
        assert_eq!(cmd(&mut s, "DATA").await.code, 354);
        assert_eq!(data(&mut s, MSG).await.code, 250);
        assert_eq!(kit.inbox("alice@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn a_failed_commit_shows_nothing_on_the_terminal() {
        let kit = Kit::with(|_| {}, Some(StoreError::Io("boom".into())));
        let (_reg, mut term) = kit.presence.register("alice@example.test");
        let mut s = kit.ready().await;
        let r = transaction(
            &mut s,
            "SAML",
            "bob@example.test",
            &["alice@example.test"],
            MSG,
        )
        .await;
        assert_eq!(code(&r), (451, "4.3.0".into()));
        assert!(
            term.try_recv().is_err(),
            "an ALERT for a message not committed"
        );
    }

    #[tokio::test]
    async fn a_second_send_within_a_second_goes_to_the_mailbox() {
        let kit = Kit::new();
        let (_reg, mut term) = kit.presence.register("alice@example.test");
        let mut s = kit.ready().await;
        let to = ["alice@example.test"];
        for _ in 0..2 {
            let r = transaction(&mut s, "SEND", "bob@example.test", &to, MSG).await;
            assert_eq!(r.code, 250);
        }
        assert!(term.try_recv().is_ok());
        assert!(term.try_recv().is_err());
        assert_eq!(kit.inbox("alice@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn disk_full_is_452_431_and_ends_the_transaction() {
        let kit = Kit::with(|_| {}, Some(StoreError::DiskFull));
        let mut s = kit.ready().await;
        let r = transaction(
            &mut s,
            "MAIL",
            "x@remote.test",
            &["alice@example.test"],
            MSG,
        )
        .await;
        assert_eq!(code(&r), (452, "4.3.1".into()));
        assert_eq!(cmd(&mut s, "DATA").await.code, 503);
        assert!(kit.inbox("alice@example.test").await.is_empty());
    }

    #[tokio::test]
    async fn mailbox_full_is_452_422() {
        let kit = Kit::with(|_| {}, Some(StoreError::QuotaExceeded));
        let mut s = kit.ready().await;
        let r = transaction(
            &mut s,
            "MAIL",
            "x@remote.test",
            &["alice@example.test"],
            MSG,
        )
        .await;
        assert_eq!(code(&r), (452, "4.2.2".into()));
    }

    #[tokio::test]
    async fn store_failure_is_451_430() {
        let kit = Kit::with(|_| {}, Some(StoreError::Io("boom".into())));
        let mut s = kit.ready().await;
        let r = transaction(
            &mut s,
            "MAIL",
            "x@remote.test",
            &["alice@example.test"],
            MSG,
        )
        .await;
        assert_eq!(code(&r), (451, "4.3.0".into()));
    }

    #[tokio::test]
    async fn oversized_data_is_552_and_stores_nothing() {
        let kit = Kit::with(|c| c.max_message_size = 10, None);
        let mut s = kit.ready().await;
        let r = transaction(
            &mut s,
            "MAIL",
            "x@remote.test",
            &["alice@example.test"],
            MSG,
        )
        .await;
        assert_eq!(code(&r), (552, "5.3.4".into()));
        assert!(kit.inbox("alice@example.test").await.is_empty());
    }

    #[tokio::test]
    async fn spent_memory_budget_is_452_431_at_data_then_mail_passes_once_returned() {
        use crate::budget::BUDGET_UNIT;
        // Room for two messages of the maximum size.
        let kit = Kit::with_memory(|c| c.max_message_size = BUDGET_UNIT, None, 2 * BUDGET_UNIT);
        let mut a = kit.ready().await;
        let mut b = kit.ready().await;
        let mut c = kit.ready().await;
        for s in [&mut a, &mut b, &mut c] {
            cmd(s, "MAIL FROM:<x@remote.test>").await;
            cmd(s, "RCPT TO:<alice@example.test>").await;
        }
        // Without SIZE each reserves the maximum: the third is refused
        // before its 354, its transaction kept.
        assert_eq!(cmd(&mut a, "DATA").await.code, 354);
        assert_eq!(cmd(&mut b, "DATA").await.code, 354);
        assert_eq!(code(&cmd(&mut c, "DATA").await), (452, "4.3.1".into()));
        assert!(c.in_transaction());
        // Admitted messages are never refused for memory after 354.
        let full = format!("Subject: f\r\n\r\n{}\r\n", "x".repeat(BUDGET_UNIT - 100));
        assert_eq!(data(&mut a, full.as_bytes()).await.code, 250);
        // The budget came back: the refused sender's DATA now passes.
        assert_eq!(cmd(&mut c, "DATA").await.code, 354);
        assert_eq!(data(&mut c, MSG).await.code, 250);
        assert_eq!(data(&mut b, MSG).await.code, 250);
        assert_eq!(kit.inbox("alice@example.test").await.len(), 3);
    }

    #[tokio::test]
    async fn declared_size_is_what_is_reserved() {
        use crate::budget::BUDGET_UNIT;
        let kit = Kit::with_memory(|_| {}, None, 4 * BUDGET_UNIT);
        let mut s: Vec<_> = Vec::new();
        for _ in 0..5 {
            let mut x = kit.ready().await;
            cmd(
                &mut x,
                &format!("MAIL FROM:<x@remote.test> SIZE={BUDGET_UNIT}"),
            )
            .await;
            cmd(&mut x, "RCPT TO:<alice@example.test>").await;
            s.push(x);
        }
        let codes: Vec<u16> = {
            let mut v = Vec::new();
            for x in &mut s {
                v.push(cmd(x, "DATA").await.code);
            }
            v
        };
        assert_eq!(codes, vec![354, 354, 354, 354, 452]);
    }

    #[tokio::test]
    async fn first_bdat_past_the_budget_is_452_and_ends_the_transaction() {
        use crate::budget::BUDGET_UNIT;
        let kit = Kit::with_memory(|c| c.max_message_size = BUDGET_UNIT, None, BUDGET_UNIT);
        let mut a = kit.ready().await;
        let mut b = kit.ready().await;
        for s in [&mut a, &mut b] {
            cmd(s, "MAIL FROM:<x@remote.test>").await;
            cmd(s, "RCPT TO:<alice@example.test>").await;
        }
        assert_eq!(cmd(&mut a, "DATA").await.code, 354);
        // A lone BDAT LAST reserves its chunk; still too much here.
        assert_eq!(
            code(&cmd(&mut b, "BDAT 100 LAST").await),
            (452, "4.3.1".into())
        );
        assert!(!b.in_transaction());
        assert_eq!(data(&mut a, MSG).await.code, 250);
        cmd(&mut b, "MAIL FROM:<x@remote.test>").await;
        cmd(&mut b, "RCPT TO:<alice@example.test>").await;
        assert_eq!(cmd(&mut b, "BDAT 10 LAST").await.code, 0);
        b.bdat_append(b"Subject: y");
        assert_eq!(b.bdat_end(10, true).await.code, 250);
    }

    #[tokio::test]
    async fn bdat_chunks_join_and_last_delivers() {
        let kit = Kit::new();
        let mut s = kit.ready().await;
        cmd(&mut s, "MAIL FROM:<x@remote.test>").await;
        cmd(&mut s, "RCPT TO:<bob@example.test>").await;
        assert_eq!(cmd(&mut s, "BDAT 5").await.code, 0); // the driver reads the chunk
        s.bdat_append(b"Subje");
        assert_eq!(s.bdat_end(5, false).await.code, 250);
        assert_eq!(cmd(&mut s, "BDAT 10 LAST").await.code, 0);
        s.bdat_append(b"ct: x\n\nhi\n");
        assert_eq!(s.bdat_end(10, true).await.code, 250);
        let stored = kit.inbox("bob@example.test").await.remove(0);
        assert!(stored.ends_with(b"Subject: x\r\n\r\nhi\r\n"));
        assert!(!s.in_transaction());
    }

    /// A multipart whose second part is `content` in CTE binary.
    fn binary_message(content: &[u8]) -> Vec<u8> {
        let mut msg = b"Subject: bin\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n\
            Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            .to_vec();
        msg.extend_from_slice(content);
        msg.extend_from_slice(b"\r\n--b--\r\n");
        msg
    }

    /// Sends `msg` with BDAT BINARYMIME in chunks of 64 KiB to bob.
    async fn bdat_binary(s: &mut super::super::session::Session, msg: &[u8]) {
        cmd(s, "MAIL FROM:<x@remote.test> BODY=BINARYMIME").await;
        cmd(s, "RCPT TO:<bob@example.test>").await;
        let mut chunks = msg.chunks(64 * 1024).peekable();
        while let Some(c) = chunks.next() {
            let last = chunks.peek().is_none();
            let verb = format!("BDAT {}{}", c.len(), if last { " LAST" } else { "" });
            assert_eq!(cmd(s, &verb).await.code, 0);
            s.bdat_append(c);
            assert_eq!(s.bdat_end(c.len() as u64, last).await.code, 250);
        }
    }

    /// The stored copy is the trace fields, then the message with its
    /// binary part in base64, which BINARY[2] decodes back.
    fn assert_stored_reencoded(stored: &[u8], msg: &[u8], content: &[u8]) {
        let enc = proto_imap::mime::encode_binary_parts(msg).expect("binary");
        assert!(stored.ends_with(&enc), "not the re-encoded message");
        assert!(stored.starts_with(b"Return-Path: <x@remote.test>\r\n"));
        assert!(!stored.contains(&0));
        let root = proto_imap::mime::Part::parse(stored);
        let part = proto_imap::mime::binary(&root, stored, &[2]);
        assert!(part.as_deref() == Ok(content));
    }

    #[tokio::test]
    async fn binarymime_mail_with_nul_is_stored_with_the_part_in_base64() {
        let kit = Kit::new();
        let mut s = kit.ready().await;
        let content = b"\x00\x01binary\xff\r\n\x00".to_vec();
        let msg = binary_message(&content);
        bdat_binary(&mut s, &msg).await;
        let stored = kit.inbox("bob@example.test").await.remove(0);
        assert_stored_reencoded(&stored, &msg, &content);
    }

    #[tokio::test]
    async fn spooled_binarymime_mail_is_reencoded_a_chunk_at_a_time() {
        let dir = tempfile::tempdir().expect("dir");
        let spool =
            std::sync::Arc::new(crate::spool::Spool::open(dir.path(), 4096).expect("spool"));
        let kit = Kit::with(|c| c.spool = Some(spool), None);
        let mut s = kit.ready().await;
        // No bare CR or LF: SMTP makes those CRLF at receipt (SPEC 1).
        let content: Vec<u8> = (0..300_000u32)
            .map(|i| (i * 13 % 256) as u8)
            .map(|b| if b == b'\r' || b == b'\n' { 0 } else { b })
            .collect();
        let msg = binary_message(&content);
        bdat_binary(&mut s, &msg).await;
        let stored = kit.inbox("bob@example.test").await.remove(0);
        assert_stored_reencoded(&stored, &msg, &content);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
