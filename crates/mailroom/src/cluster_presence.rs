//! Presence for terminal delivery across the nodes of one PostgreSQL
//! database (issue 21; RFC 821 3.4 SEND, SOML, SAML): a user whose IMAP
//! session is on another node is "at their terminal" here too, and the
//! message reaches that session as its `* OK [ALERT]`.
//!
//! - Each node announces the accounts of its logged-in sessions in the
//!   `presence` table every [`PRESENCE_RENEW`], with a lease of
//!   `[store] presence_lease` ([`crate::config::DEFAULT_PRESENCE_LEASE`]
//!   s) on the database's clock, and reads the others' rows whose lease
//!   has not ended: a node that died stops counting when
//!   its lease ends, with nobody cleaning up after it.
//! - A terminal message for a session on another node is a row of
//!   `terminal_messages`, committed before the SMTP reply (so a 250 means
//!   it reached a session, the other node's, or the mailbox); that node
//!   takes its rows every [`TERMINAL_POLL`] and hands them to its
//!   sessions.
//!
//! - The one ALERT per user per [`ALERT_INTERVAL`] holds across the
//!   nodes: the slot is a conditional upsert of the account's last-alert
//!   time on the database's clock (`alert_claims`), so two nodes taking
//!   SEND for one user within the interval show one ALERT; the other
//!   message goes to the mailbox (SEND, SOML) as on one node.
//!
//! Local sessions get their messages as before, from the node's own
//! [`PresenceRegistry`], without the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backends::postgres::{SharedState, TerminalRow};
use server::presence::{ALERT_INTERVAL, Presence, PresenceRegistry, TerminalMessage};

/// How often a node renews its rows and reads the others' (a third of
/// the lease when that is shorter): well inside the lease, so a live
/// node never lapses; a new session counts on the other nodes within
/// this.
pub const PRESENCE_RENEW: Duration = Duration::from_secs(3);

/// How often a node takes the terminal messages stored for its sessions.
pub const TERMINAL_POLL: Duration = Duration::from_millis(250);

/// The SMTP side's [`Presence`] on PostgreSQL (module doc).
pub struct ClusterPresence {
    local: Arc<PresenceRegistry>,
    shared: SharedState,
    /// Account -> the node that has a session of it, as last read.
    elsewhere: Arc<Mutex<HashMap<String, String>>>,
    rt: tokio::runtime::Handle,
}

fn lock(m: &Mutex<HashMap<String, String>>) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClusterPresence {
    /// Starts the renewal and the terminal poller of node `node_id`; they
    /// end with the process. Must run on the server's multi-threaded
    /// runtime.
    pub fn start(
        local: Arc<PresenceRegistry>,
        shared: SharedState,
        node_id: String,
        lease: Duration,
    ) -> Arc<ClusterPresence> {
        let renew = PRESENCE_RENEW
            .min(lease / 3)
            .max(Duration::from_millis(100));
        let elsewhere = Arc::new(Mutex::new(HashMap::new()));
        let presence = Arc::new(ClusterPresence {
            local: Arc::clone(&local),
            shared: shared.clone(),
            elsewhere: Arc::clone(&elsewhere),
            rt: tokio::runtime::Handle::current(),
        });
        let (renew_shared, renew_local, renew_node) =
            (shared.clone(), Arc::clone(&local), node_id.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(renew);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mine = renew_local.active_accounts();
                match renew_shared.renew_presence(&renew_node, &mine, lease).await {
                    Ok(rows) => *lock(&elsewhere) = rows.into_iter().collect(),
                    // Our rows lapse after the lease; the others' we knew
                    // are kept until the database answers again.
                    Err(e) => tracing::warn!(error = %e, "presence: cannot renew"),
                }
            }
        });
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TERMINAL_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match shared.take_terminal(&node_id).await {
                    Ok(rows) => {
                        for row in rows {
                            let msg = TerminalMessage {
                                from: row.sender,
                                text: row.text.into(),
                            };
                            if !local.deliver_terminal(&row.account, &msg) {
                                tracing::info!(account = %row.account, "presence: the session left before its terminal message arrived");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "presence: cannot take terminal messages")
                    }
                }
            }
        });
        presence
    }

    fn node_of(&self, account: &str) -> Option<String> {
        lock(&self.elsewhere).get(&account.to_lowercase()).cloned()
    }
}

impl Presence for ClusterPresence {
    fn is_active(&self, account: &str) -> bool {
        self.local.is_active(account) || self.node_of(account).is_some()
    }

    fn claim_alert(&self, account: &str) -> bool {
        let here = self.local.is_active(account);
        if !here && self.node_of(account).is_none() {
            return false;
        }
        // The slot is the database's, so it holds across nodes; the trait
        // is synchronous, so this worker waits (SEND is rare).
        let account = account.to_lowercase();
        let claimed = tokio::task::block_in_place(|| {
            self.rt
                .block_on(self.shared.claim_alert(&account, ALERT_INTERVAL))
        });
        match claimed {
            Ok(claimed) => claimed,
            Err(e) => {
                // Without the database a session here still gets its one
                // ALERT per interval (per node); one elsewhere could not
                // be reached anyway.
                tracing::warn!(error = %e, "presence: cannot claim the ALERT slot");
                here && self.local.claim_alert(&account)
            }
        }
    }

    fn deliver_terminal(&self, account: &str, msg: &TerminalMessage) -> bool {
        if self.local.deliver_terminal(account, msg) {
            return true;
        }
        let Some(node) = self.node_of(account) else {
            return false;
        };
        let row = TerminalRow {
            account: account.to_lowercase(),
            sender: msg.from.clone(),
            text: msg.text.to_string(),
        };
        // Committed before the SMTP reply; the trait is synchronous, so
        // this worker waits for the insert (SEND is rare).
        let stored = tokio::task::block_in_place(|| {
            self.rt.block_on(self.shared.send_terminal(&node, &row))
        });
        match stored {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "presence: cannot store a terminal message");
                false
            }
        }
    }
}
