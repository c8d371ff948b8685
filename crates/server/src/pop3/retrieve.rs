//! RETR and TOP (RFC 1939 5, 7). The body is read from the store per
//! command (one copy in memory while it is written) and handed to the
//! driver, which dot-stuffs it into the socket in chunks; a message above
//! [`STREAM_ABOVE`] is read from the store a chunk at a time instead, never
//! whole (issue 19). RETR sets \Seen once the message is written; TOP does
//! not (SPEC 2).

use std::sync::Arc;

use proto_pop3::{MsgNum, Response};
use store::StoreError;

use super::listing::unusable;
use super::session::{Action, Session, temporary_failure};

/// Messages larger than this are streamed from the store.
pub const STREAM_ABOVE: u64 = 4 * store::BODY_CHUNK as u64;

impl Session {
    pub(super) async fn retr(&mut self, n: MsgNum) -> Action {
        match self.locate_big(n).await {
            Ok(Some((body, uid))) => {
                return Action::Stream {
                    status: Response::ok(""),
                    body,
                    lines: None,
                    seen: Some(uid),
                };
            }
            Ok(None) => {}
            Err(r) => return Action::Reply(r),
        }
        match self.read(n).await {
            Ok((body, uid)) => {
                let len = body.len();
                Action::Message {
                    status: Response::ok(""),
                    body,
                    len,
                    seen: Some(uid),
                }
            }
            Err(r) => Action::Reply(r),
        }
    }

    pub(super) async fn top(&mut self, n: MsgNum, lines: u64) -> Action {
        match self.locate_big(n).await {
            Ok(Some((body, _))) => {
                return Action::Stream {
                    status: Response::ok(""),
                    body,
                    lines: Some(lines),
                    seen: None,
                };
            }
            Ok(None) => {}
            Err(r) => return Action::Reply(r),
        }
        match self.read(n).await {
            Ok((body, _)) => {
                let len = proto_pop3::top(&body, lines).len();
                Action::Message {
                    status: Response::ok(""),
                    body,
                    len,
                    seen: None,
                }
            }
            Err(r) => Action::Reply(r),
        }
    }

    /// The body of message `n` when it is big enough to stream, after
    /// the checks of [`Session::read`] (and that the body is still there,
    /// before the `+OK` promises it); None for a small one.
    async fn locate_big(
        &mut self,
        n: MsgNum,
    ) -> Result<Option<(store::BodyId, store::Uid)>, Response> {
        let store = Arc::clone(&self.ctx.store);
        let Some(m) = self.maildrop() else {
            return Err(Response::err("Not logged in"));
        };
        let (uid, body, size, gone) = match m.get(n) {
            Ok(e) => (e.uid, e.body, e.size, e.gone),
            Err(why) => return Err(unusable(n, why, m)),
        };
        if size <= STREAM_ABOVE {
            return Ok(None);
        }
        if let Err(e) = m.refresh(&store).await {
            tracing::warn!(error = %e, "pop3: reading the change feed failed");
        }
        let gone = gone || m.get(n).is_ok_and(|e| e.gone);
        let expunged = || Response::err(format!("message {n} was removed by another session"));
        if gone {
            return Err(expunged());
        }
        match store.read_body_range(body, 0, 1).await {
            Ok(_) => Ok(Some((body, uid))),
            Err(StoreError::NotFound(_)) => Err(expunged()),
            Err(e) => {
                tracing::warn!(error = %e, "pop3: reading a message failed");
                Err(temporary_failure())
            }
        }
    }

    /// The message `n`, unless it is deleted, missing, or was expunged by
    /// another session since the snapshot.
    async fn read(&mut self, n: MsgNum) -> Result<(Vec<u8>, store::Uid), Response> {
        let store = Arc::clone(&self.ctx.store);
        let Some(m) = self.maildrop() else {
            return Err(Response::err("Not logged in"));
        };
        if let Err(e) = m.refresh(&store).await {
            tracing::warn!(error = %e, "pop3: reading the change feed failed");
        }
        let (uid, body_id, gone) = match m.get(n) {
            Ok(e) => (e.uid, e.body, e.gone),
            Err(why) => return Err(unusable(n, why, m)),
        };
        let expunged = || Response::err(format!("message {n} was removed by another session"));
        if gone {
            return Err(expunged());
        }
        match store.read_body(body_id).await {
            Ok(body) => Ok((body, uid)),
            Err(StoreError::NotFound(_)) => Err(expunged()),
            Err(e) => {
                tracing::warn!(error = %e, "pop3: reading a message failed");
                Err(temporary_failure())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use store::Store;

    use super::super::testkit::{Kit, cmd};

    const MSG: &[u8] = b"Subject: hi\r\nFrom: a@b\r\n\r\nline 1\r\n.dot line\r\nline 3\r\n";

    #[tokio::test]
    async fn retr_returns_the_stored_octets_and_the_size_matches_list() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", MSG).await;
        let mut s = kit.logged_in("alice").await;
        let r = cmd(&mut s, "RETR 1").await;
        assert_eq!(r.status.to_bytes(), b"+OK\r\n");
        assert_eq!(r.body.as_deref(), Some(MSG));
        let list = cmd(&mut s, "LIST 1").await.status.text;
        assert_eq!(list, format!("1 {}", MSG.len()));
    }

    #[tokio::test]
    async fn top_0_returns_headers_only() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", MSG).await;
        let mut s = kit.logged_in("alice").await;
        let r = cmd(&mut s, "TOP 1 0").await;
        assert_eq!(
            r.body.as_deref(),
            Some(&b"Subject: hi\r\nFrom: a@b\r\n\r\n"[..])
        );
        let r = cmd(&mut s, "TOP 1 2").await;
        assert!(r.body.unwrap().ends_with(b"\r\n.dot line\r\n"));
    }

    #[tokio::test]
    async fn retr_sets_seen_top_does_not() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", MSG).await;
        kit.deliver("alice@example.test", MSG).await;
        let mut s = kit.logged_in("alice").await;
        cmd(&mut s, "TOP 1 0").await;
        cmd(&mut s, "RETR 2").await;
        s.settle_seen().await;
        let flags = kit.flags("alice@example.test").await;
        assert_eq!(flags, [false, true]);
    }

    #[tokio::test]
    async fn retr_of_message_expunged_elsewhere_is_err() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", MSG).await;
        kit.deliver("alice@example.test", MSG).await;
        let mut s = kit.logged_in("alice").await;
        let store: Arc<dyn Store> = kit.store.clone();
        let mb = store
            .mailbox("alice@example.test".into(), "INBOX".into())
            .await
            .unwrap()
            .unwrap();
        let uids: Vec<_> = store
            .messages(mb.id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.uid)
            .collect();
        store.expunge(mb.id, vec![uids[0]]).await.unwrap();
        let r = cmd(&mut s, "RETR 1").await.status;
        assert!(r.text.contains("removed by another session"), "{r:?}");
        assert!(cmd(&mut s, "RETR 2").await.status.ok);
        // The numbers stay as they were at login.
        assert_eq!(
            cmd(&mut s, "STAT").await.status.text.split(' ').next(),
            Some("2")
        );
    }

    #[tokio::test]
    async fn retr_of_deleted_or_missing_message_is_err() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", MSG).await;
        let mut s = kit.logged_in("alice").await;
        cmd(&mut s, "DELE 1").await;
        assert_eq!(
            cmd(&mut s, "RETR 1").await.status.text,
            "message 1 already deleted"
        );
        assert!(!cmd(&mut s, "TOP 1 0").await.status.ok);
        assert!(!cmd(&mut s, "RETR 2").await.status.ok);
    }
}
