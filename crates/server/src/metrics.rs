//! The admin port's `/metrics` (issue 20), on the prometheus-client crate:
//! OpenMetrics text that Prometheus scrapes. Counters and histograms that
//! sessions update live here, shared by every session of every protocol;
//! values owned elsewhere (the store's commits, the queue worker, live
//! connections) are read at scrape time and passed to [`Metrics::render`],
//! so neither the store nor the delivery crate depends on the exporter.
//!
//! Every label takes its value from a fixed set (protocol names, command
//! names the parsers know, "other" for the rest, enhanced status codes we
//! send), so no client can grow the number of series.

use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::auth::LoginFailure;
use crate::sasl::Failure;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    protocol: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    protocol: &'static str,
    command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    command: &'static str,
    /// The enhanced status code (RFC 3463) of the reply, or its basic
    /// code when it has none.
    status: String,
}

/// How a login ended, for `mailroom_logins_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Ok,
    /// Wrong name or password, or a malformed or cancelled exchange.
    Failed,
    /// Refused by the failed-login throttle.
    Throttled,
    /// The directory could not answer.
    Error,
}

impl LoginResult {
    fn label(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::Failed => "failed",
            LoginResult::Throttled => "throttled",
            LoginResult::Error => "error",
        }
    }
}

impl From<&LoginFailure> for LoginResult {
    fn from(f: &LoginFailure) -> Self {
        match f {
            LoginFailure::Invalid => LoginResult::Failed,
            LoginFailure::Throttled => LoginResult::Throttled,
            LoginFailure::Unavailable => LoginResult::Error,
        }
    }
}

impl From<&Failure> for LoginResult {
    fn from(f: &Failure) -> Self {
        match f {
            Failure::Throttled => LoginResult::Throttled,
            Failure::Unavailable => LoginResult::Error,
            Failure::Cancelled
            | Failure::BadBase64
            | Failure::Malformed
            | Failure::TooLong
            | Failure::AuthzDenied
            | Failure::Invalid => LoginResult::Failed,
        }
    }
}

/// Command latency buckets: 50 µs to about 13 s, by factors of 4.
const LATENCY_START: f64 = 0.000_05;
const LATENCY_FACTOR: f64 = 4.0;
const LATENCY_BUCKETS: u16 = 10;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        LATENCY_START,
        LATENCY_FACTOR,
        LATENCY_BUCKETS,
    ))
}

/// Server-wide metrics, shared by every session.
#[derive(Debug)]
pub struct Metrics {
    sessions: Family<ProtocolLabel, Counter>,
    refused: Family<ProtocolLabel, Counter>,
    logins: Family<LoginLabels, Counter>,
    commands: Family<CommandLabels, Histogram, fn() -> Histogram>,
    smtp_accepted: Counter,
    smtp_accepted_bytes: Counter,
    smtp_rejected: Family<RejectLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sessions: Family::default(),
            refused: Family::default(),
            logins: Family::default(),
            commands: Family::new_with_constructor(latency_histogram),
            smtp_accepted: Counter::default(),
            smtp_accepted_bytes: Counter::default(),
            smtp_rejected: Family::default(),
        }
    }
}

/// A value read at scrape time.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    Gauge(&'static str, &'static str, u64),
    Counter(&'static str, &'static str, u64),
}

/// Values owned outside this module, read when `/metrics` is asked for.
#[derive(Debug, Default, Clone)]
pub struct Live {
    pub samples: Vec<Sample>,
    /// The store's commits by batch size ([`store::StoreStats::batches`]).
    pub batches: [u64; store::BATCH_BUCKETS],
}

/// The scrape-time values as one collector.
#[derive(Debug)]
struct LiveCollector(Live);

impl prometheus_client::collector::Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for s in &self.0.samples {
            match *s {
                Sample::Gauge(name, help, v) => {
                    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
                    let e = encoder.encode_descriptor(name, help, None, g.metric_type())?;
                    g.encode(e)?;
                }
                Sample::Counter(name, help, v) => {
                    let c = ConstCounter::new(v);
                    let e = encoder.encode_descriptor(name, help, None, c.metric_type())?;
                    c.encode(e)?;
                }
            }
        }
        // Group commit: how many writes each fsync carried. Bucket i holds
        // batches of at most 2^i operations; the last, every larger one.
        let mut buckets = Vec::with_capacity(store::BATCH_BUCKETS);
        let mut count = 0u64;
        let mut sum = 0f64;
        for (i, n) in self.0.batches.iter().enumerate() {
            let upper = if i + 1 == store::BATCH_BUCKETS {
                f64::INFINITY
            } else {
                f64::from(1u32 << i)
            };
            buckets.push((upper, *n));
            count += n;
            // An estimate (the bucket's bound); the exact sum is
            // mailroom_store_writes_total.
            if upper.is_finite() {
                sum += upper * *n as f64;
            }
        }
        let mut e = encoder.encode_descriptor(
            "mailroom_store_commit_batch_size",
            "Store writes per commit (one fsync each)",
            None,
            prometheus_client::metrics::MetricType::Histogram,
        )?;
        e.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        Ok(())
    }
}

impl Metrics {
    /// A connection was admitted (`protocol`: smtp, pop3 or imap).
    pub fn session(&self, protocol: &'static str) {
        self.sessions
            .get_or_create(&ProtocolLabel { protocol })
            .inc();
    }

    /// A connection was refused by the connection limits.
    pub fn refused(&self, protocol: &'static str) {
        self.refused
            .get_or_create(&ProtocolLabel { protocol })
            .inc();
    }

    pub fn login(&self, protocol: &'static str, result: LoginResult) {
        self.logins
            .get_or_create(&LoginLabels {
                protocol,
                result: result.label(),
            })
            .inc();
    }

    /// One command's server time. `command` comes from the parser's fixed
    /// list; unknown commands are recorded as "other" by the caller.
    pub fn command(&self, protocol: &'static str, command: &'static str, took: Duration) {
        self.commands
            .get_or_create(&CommandLabels { protocol, command })
            .observe(took.as_secs_f64());
    }

    /// A message acknowledged with 250 after DATA or BDAT LAST.
    pub fn smtp_accepted(&self, bytes: u64) {
        self.smtp_accepted.inc();
        self.smtp_accepted_bytes.inc_by(bytes);
    }

    /// A 4xx or 5xx reply to an SMTP command (`status`: its enhanced code,
    /// else its basic code).
    pub fn smtp_rejected(&self, command: &'static str, status: String) {
        self.smtp_rejected
            .get_or_create(&RejectLabels { command, status })
            .inc();
    }

    /// The registry's text (OpenMetrics), with `live` values.
    pub fn render(&self, live: Live) -> String {
        let mut r = Registry::default();
        r.register(
            "mailroom_sessions",
            "Connections admitted, by protocol",
            self.sessions.clone(),
        );
        r.register(
            "mailroom_connections_refused",
            "Connections refused by the connection limits, by protocol",
            self.refused.clone(),
        );
        r.register(
            "mailroom_logins",
            "Login attempts by protocol and result (ok, failed, throttled, error)",
            self.logins.clone(),
        );
        r.register(
            "mailroom_command_duration_seconds",
            "Server time per command, by protocol and command (unknown ones as other)",
            self.commands.clone(),
        );
        r.register(
            "mailroom_smtp_messages_accepted",
            "Messages acknowledged with 250 after DATA or BDAT LAST",
            self.smtp_accepted.clone(),
        );
        r.register(
            "mailroom_smtp_accepted_bytes",
            "Octets of accepted messages",
            self.smtp_accepted_bytes.clone(),
        );
        r.register(
            "mailroom_smtp_rejections",
            "4xx and 5xx replies to SMTP commands, by command and status code",
            self.smtp_rejected.clone(),
        );
        r.register_collector(Box::new(LiveCollector(live)));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            out.clear();
        }
        out
    }
}

/// Reads an atomic counter for a [`Sample`].
pub fn load(v: &std::sync::atomic::AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_families_live_values_and_the_batch_histogram() {
        let m = Metrics::default();
        m.session("smtp");
        m.session("smtp");
        m.refused("imap");
        m.login("pop3", LoginResult::Failed);
        m.login("imap", LoginResult::Ok);
        m.command("smtp", "RCPT", Duration::from_micros(70));
        m.smtp_accepted(42);
        m.smtp_rejected("RCPT", "5.1.1".into());
        let mut live = Live {
            samples: vec![
                Sample::Gauge("mailroom_connections", "Live connections", 3),
                Sample::Counter("mailroom_store_commits", "Store commits", 7),
            ],
            ..Live::default()
        };
        live.batches[0] = 5;
        live.batches[3] = 2;
        let text = m.render(live);
        for line in [
            "mailroom_sessions_total{protocol=\"smtp\"} 2",
            "mailroom_connections_refused_total{protocol=\"imap\"} 1",
            "mailroom_logins_total{protocol=\"pop3\",result=\"failed\"} 1",
            "mailroom_logins_total{protocol=\"imap\",result=\"ok\"} 1",
            "mailroom_command_duration_seconds_count{protocol=\"smtp\",command=\"RCPT\"} 1",
            "mailroom_command_duration_seconds_bucket{le=\"0.0002\",protocol=\"smtp\",command=\"RCPT\"} 1",
            "mailroom_smtp_messages_accepted_total 1",
            "mailroom_smtp_accepted_bytes_total 42",
            "mailroom_smtp_rejections_total{command=\"RCPT\",status=\"5.1.1\"} 1",
            "mailroom_connections 3",
            "mailroom_store_commits_total 7",
            "mailroom_store_commit_batch_size_count 7",
            "mailroom_store_commit_batch_size_bucket{le=\"1.0\"} 5",
            "mailroom_store_commit_batch_size_bucket{le=\"8.0\"} 7",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn sasl_and_login_failures_map_to_bounded_results() {
        assert_eq!(LoginResult::from(&Failure::Cancelled), LoginResult::Failed);
        assert_eq!(
            LoginResult::from(&Failure::Throttled),
            LoginResult::Throttled
        );
        assert_eq!(
            LoginResult::from(&LoginFailure::Unavailable),
            LoginResult::Error
        );
    }
}
