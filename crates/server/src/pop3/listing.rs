//! STAT, LIST and UIDL (RFC 1939 5, 7): counts and sizes of the messages
//! not marked deleted, and their unique ids.

use proto_pop3::{MsgNum, Response};

use super::maildrop::{Lookup, Maildrop};
use super::session::{Action, Session};

/// The `-ERR` for a message number that names nothing usable (RFC 1939 5).
pub(super) fn unusable(n: MsgNum, why: Lookup, maildrop: &Maildrop) -> Response {
    match why {
        Lookup::NoSuch => Response::err(format!(
            "no such message, only {} messages in maildrop",
            maildrop.len()
        )),
        Lookup::Deleted => Response::err(format!("message {n} already deleted")),
    }
}

impl Session {
    pub(super) fn stat(&mut self) -> Response {
        match self.maildrop() {
            Some(m) => {
                let (count, octets) = m.stat();
                Response::ok(format!("{count} {octets}"))
            }
            None => Response::err("Not logged in"),
        }
    }

    pub(super) fn list(&mut self, n: Option<MsgNum>) -> Action {
        self.scan(n, |_, e| e.size.to_string())
    }

    pub(super) fn uidl(&mut self, n: Option<MsgNum>) -> Action {
        self.scan(n, |m, e| m.unique_id(e))
    }

    /// LIST and UIDL share their shape: one `n value` line for a message,
    /// or a multi-line listing of every message not marked deleted.
    fn scan(
        &mut self,
        n: Option<MsgNum>,
        value: impl Fn(&Maildrop, &super::maildrop::Entry) -> String,
    ) -> Action {
        let Some(m) = self.maildrop() else {
            return Action::Reply(Response::err("Not logged in"));
        };
        match n {
            Some(n) => match m.get(n) {
                Ok(e) => Action::Reply(Response::ok(format!("{n} {}", value(m, e)))),
                Err(why) => Action::Reply(unusable(n, why, m)),
            },
            None => {
                let (count, octets) = m.stat();
                let lines = m
                    .entries()
                    .filter(|(_, e)| !e.deleted)
                    .map(|(n, e)| format!("{n} {}", value(m, e)))
                    .collect();
                Action::Lines(
                    Response::ok(format!("{count} messages ({octets} octets)")),
                    lines,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Kit, cmd};

    #[tokio::test]
    async fn stat_counts_messages_and_octets() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        kit.deliver("alice@example.test", b"A: 2\r\n\r\n12345\r\n")
            .await;
        let mut s = kit.logged_in("alice").await;
        assert_eq!(cmd(&mut s, "STAT").await.status.text, "2 28");
    }

    #[tokio::test]
    async fn list_and_uidl_skip_deleted_messages() {
        let kit = Kit::new();
        for i in 0..3 {
            kit.deliver(
                "alice@example.test",
                format!("A: {i}\r\n\r\nx\r\n").as_bytes(),
            )
            .await;
        }
        let mut s = kit.logged_in("alice").await;
        cmd(&mut s, "DELE 2").await;
        let r = cmd(&mut s, "LIST").await;
        assert_eq!(r.status.text, "2 messages (22 octets)");
        assert_eq!(r.lines, ["1 11", "3 11"]);
        let r = cmd(&mut s, "UIDL").await;
        assert_eq!(r.lines.len(), 2);
        assert!(r.lines[0].starts_with("1 ") && r.lines[1].starts_with("3 "));
        assert!(!cmd(&mut s, "LIST 2").await.status.ok);
        assert!(!cmd(&mut s, "UIDL 2").await.status.ok);
    }

    #[tokio::test]
    async fn list_of_missing_message_says_how_many_there_are() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        let mut s = kit.logged_in("alice").await;
        let r = cmd(&mut s, "LIST 9").await.status;
        assert_eq!(r.text, "no such message, only 1 messages in maildrop");
        assert_eq!(cmd(&mut s, "LIST 1").await.status.text, "1 13");
    }

    #[tokio::test]
    async fn uidl_is_uidvalidity_dot_uid_and_unique() {
        let kit = Kit::new();
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        kit.deliver("alice@example.test", b"A: 1\r\n\r\none\r\n")
            .await;
        let mut s = kit.logged_in("alice").await;
        let r = cmd(&mut s, "UIDL").await;
        let ids: Vec<&str> = r
            .lines
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap())
            .collect();
        assert_ne!(ids[0], ids[1]);
        for id in &ids {
            let (v, u) = id.split_once('.').unwrap();
            assert!(v.parse::<u32>().is_ok() && u.parse::<u32>().is_ok(), "{id}");
        }
        let one = cmd(&mut s, "UIDL 1").await.status.text;
        assert_eq!(one, format!("1 {}", ids[0]));
    }
}
