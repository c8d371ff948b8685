//! DELE, RSET and QUIT (RFC 1939 5, 6). DELE only marks; RSET unmarks; QUIT
//! in TRANSACTION enters UPDATE: the marked messages are expunged in one
//! durable store write, and only then does the client get `+OK`. A
//! session that ends any other way (dropped, timed out, shut down) deletes
//! nothing.

use std::sync::Arc;

use proto_pop3::{MsgNum, RespCode, Response};

use super::listing::unusable;
use super::session::{Action, Session, State};

/// The final line of the seed dialogue.
pub const BYE: &str = "Bye";

impl Session {
    pub(super) fn dele(&mut self, n: MsgNum) -> Response {
        let Some(m) = self.maildrop() else {
            return Response::err("Not logged in");
        };
        match m.mark_deleted(n) {
            Ok(()) => Response::ok(format!("message {n} deleted")),
            Err(why) => unusable(n, why, m),
        }
    }

    pub(super) fn rset(&mut self) -> Response {
        let Some(m) = self.maildrop() else {
            return Response::err("Not logged in");
        };
        m.unmark_all();
        let (count, octets) = m.stat();
        Response::ok(format!("maildrop has {count} messages ({octets} octets)"))
    }

    /// QUIT: in AUTHORIZATION just closes; in TRANSACTION runs UPDATE.
    pub(super) async fn quit(&mut self) -> Action {
        self.settle_seen().await;
        let store = Arc::clone(&self.ctx.store);
        let State::Transaction(m) = &mut self.state else {
            return Action::Close(Response::ok(BYE));
        };
        let doomed = m.deleted_uids();
        if doomed.is_empty() {
            return Action::Close(Response::ok(BYE));
        }
        // The store's expunge is durable (fsynced) before it returns Ok.
        match store.expunge(m.mailbox, doomed).await {
            Ok(removed) => {
                tracing::info!(account = %m.account, removed = removed.len(), "pop3 update");
                Action::Close(Response::ok(BYE))
            }
            Err(e) => {
                tracing::warn!(account = %m.account, error = %e, "pop3: UPDATE failed");
                // RFC 1939 6: -ERR when some deleted messages were not removed.
                Action::Close(Response::err_code(
                    RespCode::SysTemp,
                    "Some deleted messages were not removed, try again later",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Kit, cmd};

    #[tokio::test]
    async fn dele_then_rset_undeletes() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        let mut s = kit.logged_in("alice").await;
        assert_eq!(cmd(&mut s, "DELE 1").await.status.text, "message 1 deleted");
        assert_eq!(cmd(&mut s, "STAT").await.status.text, "0 0");
        assert_eq!(
            cmd(&mut s, "RSET").await.status.text,
            "maildrop has 1 messages (13 octets)"
        );
        assert!(cmd(&mut s, "RETR 1").await.status.ok);
        let r = cmd(&mut s, "QUIT").await;
        assert!(r.closed && r.status.ok);
        assert_eq!(kit.inbox("alice@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn quit_expunges_marked_messages_only() {
        let kit = Kit::new();
        for i in 0..3 {
            kit.deliver(
                "alice@example.test",
                format!("A: {i}\r\n\r\nx\r\n").as_bytes(),
            )
            .await;
        }
        let mut s = kit.logged_in("alice").await;
        cmd(&mut s, "DELE 1").await;
        cmd(&mut s, "DELE 3").await;
        assert!(!cmd(&mut s, "DELE 3").await.status.ok);
        assert_eq!(cmd(&mut s, "QUIT").await.status.to_bytes(), b"+OK Bye\r\n");
        assert_eq!(
            kit.inbox("alice@example.test").await,
            [b"A: 1\r\n\r\nx\r\n".to_vec()]
        );
    }

    #[tokio::test]
    async fn session_dropped_without_quit_deletes_nothing() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        let mut s = kit.logged_in("alice").await;
        cmd(&mut s, "DELE 1").await;
        drop(s);
        assert_eq!(kit.inbox("alice@example.test").await.len(), 1);
    }

    #[tokio::test]
    async fn quit_before_login_closes() {
        let kit = Kit::new();
        let mut s = kit.session();
        let r = cmd(&mut s, "QUIT").await;
        assert!(r.closed);
        assert_eq!(r.status.to_bytes(), b"+OK Bye\r\n");
    }
}
