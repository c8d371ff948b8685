//! Delivery: the one local delivery path that SMTP DATA/BDAT and
//! `mailroom deliver` both take (STYLE.md "Store"; issue 12), and the home
//! of the outbound queue worker to come.
//!
//! A message is checked for looping (RFC 5321 6.3), cleaned of the fields
//! a sender must not set for us (Return-Path, RFC 5321 4.4; our own
//! Authentication-Results, RFC 8601 5), given Date and Message-ID when an
//! authenticated submission lacks them (RFC 6409 8), then stored: local
//! copies with Return-Path and this hop's Received field, relayed copies
//! with the Received field only (RFC 5321 4.4: Return-Path is added by the
//! final delivery alone), one copy per account and per remote address
//! however they were reached (SPEC 1), durably before the caller answers.
#![forbid(unsafe_code)]

pub mod bodyhash;
pub mod client;
pub mod content;
pub mod dkim;
pub mod dsn;
pub mod route;
pub mod srs;
pub mod trace;
pub mod worker;

use store::{Delivery, Outbound, Store, StoreError};

/// RFC 5321 6.3: a message with this many Received fields is looping.
pub const MAX_HOPS: usize = 100;

/// Why a message is refused before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `MAX_HOPS` Received fields or more: a mail loop (554 5.4.6).
    TooManyHops,
}

/// Where one message goes: accounts and remote addresses, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub local: Vec<String>,
    pub remote: Vec<RemoteTarget>,
}

/// One remote address a message is queued for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteTarget {
    pub address: String,
    /// Reached through one of our addresses (a forward, an alias, a list
    /// member): it leaves with the SRS reverse-path, so that SPF at the
    /// destination checks us, not the original sender's domain.
    pub forwarded: bool,
    /// RFC 3461 NOTIFY and ORCPT of the RCPT that led here.
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

impl RemoteTarget {
    pub fn direct(address: impl Into<String>) -> RemoteTarget {
        RemoteTarget {
            address: address.into(),
            ..RemoteTarget::default()
        }
    }
}

impl Targets {
    /// Adds one recipient's expansion; an account or address reached
    /// twice (directly and through a list) is kept once. Accounts are
    /// canonical already; remote addresses compare exactly, since their
    /// local parts keep their case (RFC 5321 2.4).
    pub fn add(&mut self, local: &[String], remote: &[String]) {
        push_unique(&mut self.local, local);
        for r in remote {
            self.add_remote(RemoteTarget::direct(r.clone()));
        }
    }

    /// Adds a remote target unless its address is there already (the
    /// first RCPT that reached it keeps its parameters).
    pub fn add_remote(&mut self, target: RemoteTarget) {
        if !self.remote.iter().any(|r| r.address == target.address) {
            self.remote.push(target);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty()
    }
}

/// What the envelope says beyond the addresses, for the queue rows.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// RFC 3461 ENVID (xtext) and RET (`FULL`/`HDRS`).
    pub envid: Option<String>,
    pub ret: Option<String>,
    pub smtputf8: bool,
    /// The reverse-path forwarded targets leave with (SRS, see
    /// [`srs::Srs::forward`]); None: the sender as it is.
    pub forward_sender: Option<String>,
}

fn push_unique(into: &mut Vec<String>, items: &[String]) {
    for i in items {
        if !into.contains(i) {
            into.push(i.clone());
        }
    }
}

/// Refuses a looping message (RFC 5321 6.3).
pub fn check_hops(raw: &[u8]) -> Result<(), Refusal> {
    if trace::count_received(raw) >= MAX_HOPS {
        Err(Refusal::TooManyHops)
    } else {
        Ok(())
    }
}

/// The message as we keep it, before this hop's trace fields: the fields
/// a sender must not set removed, and for an authenticated submission
/// (`submission_id`) Date and Message-ID added when missing.
pub fn clean(raw: Vec<u8>, hostname: &str, submission_id: Option<&str>) -> Vec<u8> {
    let body = trace::strip_untrusted(raw, hostname);
    match submission_id {
        Some(id) => trace::add_submission_headers(body, hostname, id),
        None => body,
    }
}

/// The store write for a cleaned message: local copies get Return-Path
/// (the reverse-path, `<>` when empty) and `received`; relayed copies get
/// `received` only. None when there is nothing to store.
pub fn build(
    body: &[u8],
    sender: &str,
    received: Option<&str>,
    targets: &Targets,
    internal_date: i64,
    envelope: &Envelope,
) -> Option<Delivery> {
    if targets.is_empty() {
        return None;
    }
    let received = received.unwrap_or("");
    let local_raw = (!targets.local.is_empty()).then(|| {
        let return_path = format!("Return-Path: <{sender}>\r\n");
        let mut raw = Vec::with_capacity(return_path.len() + received.len() + body.len());
        raw.extend_from_slice(return_path.as_bytes());
        raw.extend_from_slice(received.as_bytes());
        raw.extend_from_slice(body);
        raw
    });
    let outbound = (!targets.remote.is_empty()).then(|| {
        let mut raw = Vec::with_capacity(received.len() + body.len());
        raw.extend_from_slice(received.as_bytes());
        raw.extend_from_slice(body);
        Outbound {
            raw,
            sender: sender.to_string(),
            recipients: targets.remote.iter().map(|r| r.address.clone()).collect(),
            rcpt: targets
                .remote
                .iter()
                .map(|r| store::QueueRcpt {
                    sender: envelope.forward_sender.clone().filter(|_| r.forwarded),
                    notify: r.notify.clone(),
                    orcpt: r.orcpt.clone(),
                })
                .collect(),
            envid: envelope.envid.clone(),
            ret: envelope.ret.clone(),
            smtputf8: envelope.smtputf8,
            notice: false,
        }
    });
    Some(Delivery {
        local_raw,
        local: targets
            .local
            .iter()
            .map(|a| store::LocalTarget::inbox(a.clone()))
            .collect(),
        outbound,
        internal_date,
    })
}

/// Stores a delivery built by [`build`]; durable (fsync) when it returns
/// Ok, so the caller may acknowledge.
pub async fn deliver(store: &dyn Store, delivery: Delivery) -> Result<(), StoreError> {
    store.deliver(delivery).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(local: &[&str], remote: &[&str]) -> Targets {
        let mut t = Targets::default();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        t.add(&s(local), &s(remote));
        t
    }

    #[test]
    fn local_copies_get_return_path_and_relayed_copies_do_not() {
        let body = clean(
            b"Return-Path: <forged@x>\r\nSubject: s\r\n\r\nhi\r\n".to_vec(),
            "mx.test",
            None,
        );
        let d = build(
            &body,
            "bob@example.org",
            Some("Received: from x\r\n"),
            &targets(&["alice@example.test"], &["carol@remote.example"]),
            0,
            &Envelope::default(),
        )
        .unwrap();
        let local = String::from_utf8(d.local_raw.unwrap()).unwrap();
        assert_eq!(
            local,
            "Return-Path: <bob@example.org>\r\nReceived: from x\r\nSubject: s\r\n\r\nhi\r\n"
        );
        let out = d.outbound.unwrap();
        assert_eq!(
            String::from_utf8(out.raw).unwrap(),
            "Received: from x\r\nSubject: s\r\n\r\nhi\r\n"
        );
        assert_eq!(out.recipients, ["carol@remote.example"]);
    }

    #[test]
    fn forwarded_targets_leave_with_the_forward_sender_and_their_parameters() {
        let mut t = Targets::default();
        t.add(&[], &["direct@r.example".into()]);
        t.add_remote(RemoteTarget {
            address: "fwd@r.example".into(),
            forwarded: true,
            notify: Some("NEVER".into()),
            orcpt: Some("rfc822;bob@example.test".into()),
        });
        let env = Envelope {
            envid: Some("E1".into()),
            ret: Some("FULL".into()),
            smtputf8: false,
            forward_sender: Some("SRS0=x@example.test".into()),
        };
        let d = build(b"x", "s@o.example", None, &t, 0, &env).unwrap();
        let out = d.outbound.unwrap();
        assert_eq!(out.sender, "s@o.example");
        assert_eq!(out.rcpt[0].sender, None);
        assert_eq!(out.rcpt[1].sender.as_deref(), Some("SRS0=x@example.test"));
        assert_eq!(out.rcpt[1].notify.as_deref(), Some("NEVER"));
        assert_eq!(
            (out.envid.as_deref(), out.ret.as_deref()),
            (Some("E1"), Some("FULL"))
        );
    }

    #[test]
    fn a_target_reached_twice_gets_one_copy() {
        let mut t = targets(&["alice@example.test"], &["c@r.example"]);
        t.add(&["alice@example.test".into()], &["c@r.example".into()]);
        assert_eq!(t, targets(&["alice@example.test"], &["c@r.example"]));
        // A remote local part keeps its case: another mailbox.
        t.add(&[], &["C@r.example".into()]);
        let remote: Vec<&str> = t.remote.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(remote, ["c@r.example", "C@r.example"]);
    }

    #[test]
    fn a_hundred_received_fields_is_a_loop() {
        let mut m = "Received: x\r\n".repeat(MAX_HOPS - 1).into_bytes();
        m.extend_from_slice(b"\r\nbody\r\n");
        assert_eq!(check_hops(&m), Ok(()));
        let mut m2 = b"Received: y\r\n".to_vec();
        m2.extend_from_slice(&m);
        assert_eq!(check_hops(&m2), Err(Refusal::TooManyHops));
    }

    #[test]
    fn nothing_to_store_is_none() {
        assert!(build(b"x", "", None, &Targets::default(), 0, &Envelope::default()).is_none());
    }
}
