//! Counters for the admin port's `/metrics` (Prometheus text format,
//! version 0.0.4). Plain atomics: incrementing one costs a few nanoseconds
//! on the hot path, and reading them all is the exporter's job.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Server-wide counters, shared by every session.
#[derive(Default)]
pub struct Metrics {
    pub smtp_connections: AtomicU64,
    pub smtp_connections_refused: AtomicU64,
    pub smtp_messages_accepted: AtomicU64,
    pub smtp_bytes_accepted: AtomicU64,
    pub smtp_messages_rejected: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters in Prometheus text format; `extra` are values read at
    /// export time (live connections, store statistics) as (name, help,
    /// type, value).
    pub fn render(&self, extra: &[(&str, &str, &str, u64)]) -> String {
        let counters = [
            (
                "mailroom_smtp_connections_total",
                "SMTP connections accepted",
                &self.smtp_connections,
            ),
            (
                "mailroom_smtp_connections_refused_total",
                "SMTP connections refused by the connection limits",
                &self.smtp_connections_refused,
            ),
            (
                "mailroom_smtp_messages_accepted_total",
                "Messages acknowledged with 250 after DATA or BDAT LAST",
                &self.smtp_messages_accepted,
            ),
            (
                "mailroom_smtp_accepted_bytes_total",
                "Octets of accepted messages",
                &self.smtp_bytes_accepted,
            ),
            (
                "mailroom_smtp_messages_rejected_total",
                "Messages whose data was refused (size, hops, store errors)",
                &self.smtp_messages_rejected,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        for (name, help, kind, value) in extra {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_counters_and_gauges() {
        let m = Metrics::default();
        Metrics::inc(&m.smtp_messages_accepted);
        Metrics::add(&m.smtp_bytes_accepted, 42);
        let text = m.render(&[("mailroom_live", "Live things", "gauge", 3)]);
        assert!(text.contains("# TYPE mailroom_smtp_messages_accepted_total counter\nmailroom_smtp_messages_accepted_total 1\n"));
        assert!(text.contains("mailroom_smtp_accepted_bytes_total 42\n"));
        assert!(text.contains("# TYPE mailroom_live gauge\nmailroom_live 3\n"));
    }
}
