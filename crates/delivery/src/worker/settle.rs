//! What a delivery attempt leaves in the store (issue 13): finished rows
//! go, the others are deferred, and the DSNs they call for (RFC 3461
//! NOTIFY; RFC 3464 reports built by [`crate::dsn`]) are delivered in the
//! same transaction ([`store::Store::settle_queue`]).

use super::*;

/// The largest message a DSN reads back whole; see [`Job::original`].
pub const REPORT_WHOLE_MAX: usize = 1024 * 1024;

impl Job {
    /// Records the outcomes of one delivery attempt in the store: the
    /// rows that are done go, the others are deferred, and the DSNs they
    /// call for (RFC 3461 NOTIFY, 5321 4.5.5: never about a `<>` message
    /// except once to postmaster) are made, one per message, all in one
    /// transaction (`raw`: the message, when already read).
    pub(super) async fn settle(
        &self,
        results: Vec<(QueueEntry, Outcome)>,
        host: &str,
        hop_dsn: bool,
        raw: Option<Arc<Vec<u8>>>,
    ) {
        let now = unix_now();
        let lifetime = self.cfg.max_queue_lifetime.as_secs() as i64;
        let mut settle = Settle::default();
        let (mut delivered, mut deferred, mut failed) = (0u64, 0u64, 0u64);
        // Per message: its reports and one of its rows.
        let mut reports: BTreeMap<(BodyId, String), (QueueEntry, Vec<RecipientReport>)> =
            BTreeMap::new();
        for (row, outcome) in results {
            let id = row.id;
            let rcpt = proto_common::log_safe(&row.recipient);
            let notify = Notify::of(row.notify.as_deref());
            let report = match outcome {
                Outcome::Delivered(reply) => {
                    tracing::info!(id, to = %rcpt, host, reply = %reply, "outbound: delivered");
                    settle.remove.push(id);
                    delivered += 1;
                    // RFC 3461 5.2.2.1: a next hop without DSN ends our
                    // duty to report: "relayed".
                    (notify.success && !hop_dsn).then(|| {
                        RecipientReport::from_reply(
                            &row.recipient,
                            row.orcpt.as_deref(),
                            Action::Relayed,
                            &reply,
                            "2.0.0",
                            Some(host),
                        )
                    })
                }
                Outcome::Failed(reply) => {
                    tracing::info!(id, to = %rcpt, host, reply = %reply, "outbound: failed");
                    settle.remove.push(id);
                    failed += 1;
                    notify.failure.then(|| {
                        RecipientReport::from_reply(
                            &row.recipient,
                            row.orcpt.as_deref(),
                            Action::Failed,
                            &reply,
                            "5.0.0",
                            Some(host),
                        )
                    })
                }
                Outcome::Deferred(reply) => {
                    let age = now.saturating_sub(row.created);
                    if age >= lifetime {
                        tracing::info!(id, to = %rcpt, host, reply = %reply, "outbound: expired");
                        settle.remove.push(id);
                        failed += 1;
                        notify.failure.then(|| {
                            let mut r = RecipientReport::from_reply(
                                &row.recipient,
                                row.orcpt.as_deref(),
                                Action::Failed,
                                &reply,
                                "4.4.7",
                                Some(host),
                            );
                            // RFC 3463 4.4.7: delivery time expired.
                            r.status = "4.4.7".to_string();
                            r
                        })
                    } else {
                        let next = now + backoff(&self.cfg, row.attempts).as_secs() as i64;
                        tracing::info!(id, to = %rcpt, host, reply = %reply, retry_at = next, "outbound: deferred");
                        deferred += 1;
                        // RFC 3461 4.1 DELAY: one warning once the message
                        // has waited `[relay] delay_warning`.
                        let warn = notify.delay
                            && !row.warned
                            && age >= self.cfg.delay_warning.as_secs() as i64;
                        settle.defer.push((id, next, reply.clone()));
                        warn.then(|| {
                            settle.warned.push(id);
                            let mut r = RecipientReport::from_reply(
                                &row.recipient,
                                row.orcpt.as_deref(),
                                Action::Delayed,
                                &reply,
                                "4.0.0",
                                Some(host),
                            );
                            r.retry_until = Some(row.created.saturating_add(lifetime));
                            r
                        })
                    }
                }
            };
            let Some(report) = report else { continue };
            // RFC 5321 4.5.5: nothing reports about a `<>` message but one
            // notice to postmaster about its failure, and nothing about
            // that notice.
            if row.sender.is_empty() && (report.action != Action::Failed || row.notice) {
                continue;
            }
            reports
                .entry((row.body, row.sender.clone()))
                .or_insert_with(|| (row.clone(), Vec::new()))
                .1
                .push(report);
        }
        for ((body, _), (row, recipients)) in reports {
            let original = match &raw {
                Some(r) if row.body == body => (Arc::clone(r), true),
                _ => match self.original(body).await {
                    Ok(r) => r,
                    Err(e) => {
                        // The rows stay leased, and come back after the
                        // lease: the report is late, not lost.
                        tracing::warn!(error = %e, "outbound: cannot read a message to report on");
                        return;
                    }
                },
            };
            if let Some(d) = self.dsn(&row, recipients, &original.0, original.1).await {
                settle.dsns.push(d);
            }
        }
        let store = Arc::clone(&self.store);
        let stats = Arc::clone(&self.stats);
        let made = settle.dsns.len() as u64;
        // The write is not waited for: the connection goes on to the next
        // message while the store groups these commits. A crash before it
        // lands leaves the rows leased, released at the next start: a
        // second copy at worst, never a loss.
        tokio::spawn(async move {
            match store.settle_queue(settle).await {
                Ok(_) => {
                    stats.dsns.fetch_add(made, Ordering::Relaxed);
                    stats.delivered.fetch_add(delivered, Ordering::Relaxed);
                    stats.deferred.fetch_add(deferred, Ordering::Relaxed);
                    stats.failed.fetch_add(failed, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "outbound: cannot record the outcome"),
            }
        });
    }

    /// The DSN about `row`'s message for `recipients`, as a delivery to
    /// its sender (or, for a `<>` message or a sender we cannot reach,
    /// once to postmaster).
    /// The message a report is about, and whether it is whole: a body up
    /// to [`REPORT_WHOLE_MAX`] is read whole, a bigger one only its
    /// header section (RFC 3461 4.3: RET=FULL of a message over an
    /// implementation's limit may return the headers only), so a report
    /// on a big message never holds it in memory (issue 19).
    async fn original(&self, body: BodyId) -> Result<(Arc<Vec<u8>>, bool), store::StoreError> {
        let mut raw = self
            .store
            .read_body_range(body, 0, REPORT_WHOLE_MAX + 1)
            .await?;
        if raw.len() <= REPORT_WHOLE_MAX {
            return Ok((Arc::new(raw), true));
        }
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |i| i + 4);
        raw.truncate(end);
        Ok((Arc::new(raw), false))
    }

    async fn dsn(
        &self,
        row: &QueueEntry,
        recipients: Vec<RecipientReport>,
        original: &[u8],
        whole: bool,
    ) -> Option<store::Delivery> {
        let mut to = row.sender.clone();
        let mut notice = to.is_empty();
        let mut targets = if notice {
            crate::Targets::default()
        } else {
            self.bounces.resolve(&to).await
        };
        if targets.is_empty() && !row.notice {
            tracing::info!(id = row.id, to = %proto_common::log_safe(&to), "outbound: DSN goes to postmaster");
            to = self.bounces.postmaster();
            notice = true;
            targets = self.bounces.resolve(&to).await;
        }
        if targets.is_empty() {
            tracing::warn!(id = row.id, "outbound: nowhere to send a DSN; dropped");
            return None;
        }
        let utf8 = row.smtputf8
            || !row.sender.is_ascii()
            || recipients.iter().any(|r| !r.recipient.is_ascii());
        let report = Report {
            reporting_mta: &self.cfg.helo,
            to: &to,
            envid: row.envid.as_deref(),
            arrival: Some(row.created),
            recipients,
            original,
            full: whole && row.ret.as_deref() == Some("FULL"),
            utf8,
        };
        let message = crate::dsn::build(&report);
        crate::dsn::delivery(&message, &targets, utf8, notice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{Delivery, Outbound, QueueRcpt, SqliteStore, StoreOptions};

    /// DSNs to local accounts: every address is a local account, except
    /// `nowhere@...`, which has no targets.
    struct Local;

    impl BounceRoute for Local {
        fn resolve<'a>(&'a self, address: &'a str) -> BounceFuture<'a> {
            Box::pin(async move {
                let mut t = crate::Targets::default();
                if !address.starts_with("nowhere@") {
                    t.add(&[address.to_string()], &[]);
                }
                t
            })
        }
        fn postmaster(&self) -> String {
            "postmaster@example.test".into()
        }
    }

    struct NoRoute;

    impl Routing for NoRoute {
        fn route<'a>(&'a self, _: &'a str) -> RouteFuture<'a> {
            Box::pin(async { Err(RouteFailure::Temporary("unused".into())) })
        }
    }

    fn job(store: Arc<dyn Store>) -> Job {
        Job {
            store,
            cfg: WorkerConfig {
                helo: "mx.example.test".into(),
                retry_initial: Duration::from_secs(60),
                retry_max: Duration::from_secs(60),
                max_queue_lifetime: Duration::from_secs(3600),
                max_connections: 1,
                max_connections_per_domain: 1,
                source_address: None,
                delay_warning: Duration::from_secs(0),
            },
            routing: Arc::new(NoRoute),
            dkim: None,
            stats: Arc::default(),
            down: Arc::default(),
            bounces: Arc::new(Local),
        }
    }

    /// Queues one message from `sender` to `to` (with its NOTIFY) and
    /// claims the rows.
    async fn queued(
        store: &Arc<SqliteStore>,
        sender: &str,
        to: &[(&str, Option<&str>)],
        notice: bool,
    ) -> Vec<QueueEntry> {
        store
            .deliver(Delivery {
                local_raw: None,
                local: vec![],
                outbound: Some(Outbound {
                    raw: b"Subject: s\r\n\r\nbody\r\n".to_vec(),
                    sender: sender.into(),
                    recipients: to.iter().map(|(a, _)| a.to_string()).collect(),
                    rcpt: to
                        .iter()
                        .map(|(_, n)| QueueRcpt {
                            notify: n.map(str::to_string),
                            ..QueueRcpt::default()
                        })
                        .collect(),
                    notice,
                    ..Outbound::default()
                }),
                internal_date: 0,
            })
            .await
            .expect("deliver");
        store
            .claim_queue(unix_now(), unix_now() + 60, 100)
            .await
            .expect("claim")
    }

    async fn inbox(store: &Arc<SqliteStore>, account: &str) -> Vec<String> {
        let Some(mb) = store
            .mailbox(account.into(), "INBOX".into())
            .await
            .expect("mailbox")
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in store.messages(mb.id).await.expect("messages") {
            let raw = store.read_body(m.body).await.expect("body");
            out.push(String::from_utf8_lossy(&raw).into_owned());
        }
        out
    }

    /// The settle write is spawned: wait for the queue to have `n` rows.
    async fn queue_len(store: &Arc<SqliteStore>, n: usize) {
        for _ in 0..200 {
            if store.queue().await.expect("queue").len() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the queue never had {n} rows");
    }

    fn failed(rows: Vec<QueueEntry>, reply: &str) -> Vec<(QueueEntry, Outcome)> {
        rows.into_iter()
            .map(|r| (r, Outcome::Failed(reply.to_string())))
            .collect()
    }

    #[tokio::test]
    async fn failures_of_one_message_make_one_dsn_and_never_ones_make_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let j = job(store.clone());
        let rows = queued(
            &store,
            "alice@example.test",
            &[
                ("a@r.example", None),
                ("b@r.example", Some("FAILURE")),
                ("c@r.example", Some("NEVER")),
            ],
            false,
        )
        .await;
        j.settle(
            failed(rows, "550 5.1.1 no"),
            "mx.r.example[192.0.2.1]",
            false,
            None,
        )
        .await;
        queue_len(&store, 0).await;
        let got = inbox(&store, "alice@example.test").await;
        assert_eq!(got.len(), 1, "one DSN");
        assert!(got[0].starts_with("Return-Path: <>\r\n"), "{}", got[0]);
        assert_eq!(got[0].matches("Final-Recipient:").count(), 2, "{}", got[0]);
        assert!(!got[0].contains("c@r.example>"), "NOTIFY=NEVER: {}", got[0]);
    }

    #[tokio::test]
    async fn a_null_sender_failure_tells_postmaster_once_and_that_notice_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let j = job(store.clone());
        let rows = queued(&store, "", &[("a@r.example", None)], false).await;
        j.settle(failed(rows, "550 5.1.1 no"), "-", false, None)
            .await;
        queue_len(&store, 0).await;
        assert_eq!(inbox(&store, "postmaster@example.test").await.len(), 1);
        // A notice that fails itself: dropped.
        let rows = queued(&store, "", &[("pm@r.example", None)], true).await;
        j.settle(failed(rows, "550 5.1.1 no"), "-", false, None)
            .await;
        queue_len(&store, 0).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(inbox(&store, "postmaster@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn a_sender_with_nowhere_to_go_gets_postmaster_instead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let j = job(store.clone());
        let rows = queued(
            &store,
            "nowhere@example.test",
            &[("a@r.example", None)],
            false,
        )
        .await;
        j.settle(failed(rows, "550 5.1.1 no"), "-", false, None)
            .await;
        queue_len(&store, 0).await;
        let got = inbox(&store, "postmaster@example.test").await;
        assert_eq!(got.len(), 1);
        assert!(
            got[0].contains("To: <postmaster@example.test>"),
            "{}",
            got[0]
        );
    }

    #[tokio::test]
    async fn a_deferral_warns_once_for_delay_and_relayed_only_without_a_dsn_hop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), StoreOptions::default()).expect("store");
        let j = job(store.clone());
        let rows = queued(
            &store,
            "alice@example.test",
            &[("a@r.example", Some("DELAY,SUCCESS"))],
            false,
        )
        .await;
        let deferred = |rows: Vec<QueueEntry>| -> Vec<(QueueEntry, Outcome)> {
            rows.into_iter()
                .map(|r| (r, Outcome::Deferred("451 4.3.0 later".into())))
                .collect()
        };
        j.settle(deferred(rows), "-", false, None).await;
        for _ in 0..200 {
            if store
                .queue()
                .await
                .expect("queue")
                .first()
                .is_some_and(|r| r.warned)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            inbox(&store, "alice@example.test").await.len(),
            1,
            "the warning"
        );
        // Deferred again: no second warning.
        let rows = store.queue().await.expect("queue");
        j.settle(deferred(rows), "-", false, None).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(inbox(&store, "alice@example.test").await.len(), 1);
        // Delivered through a hop with DSN: it reports, we do not.
        let rows = store.queue().await.expect("queue");
        let done = rows
            .into_iter()
            .map(|r| (r, Outcome::Delivered("250 ok".into())))
            .collect();
        j.settle(done, "-", true, None).await;
        queue_len(&store, 0).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = inbox(&store, "alice@example.test").await;
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("Action: delayed"), "{}", got[0]);
    }
}
