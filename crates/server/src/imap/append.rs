//! APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), UTF8 (RFC 6855
//! 4) and the UIDPLUS response code APPENDUID (RFC 4315). A missing
//! destination is `NO [TRYCREATE]`.
//!
//! RFC 3502 6: the messages of one APPEND are committed together or not
//! at all; they go to the store as one [`store::Store::append_many`], and
//! the quota is checked for the whole set before it.

use proto_imap::types::format_set;
use proto_imap::{AppendData, AppendMessage, Code, Mailbox};
use store::{NewMessage, StoreError};

use super::session::{CmdResult, ImapError, Session};

impl Session {
    pub(super) async fn append(
        &mut self,
        target: &Mailbox,
        messages: Vec<AppendMessage>,
    ) -> CmdResult {
        let account = self.account()?.to_string();
        let Some(dest) = self
            .ctx
            .store
            .mailbox(account.clone(), target.as_str().to_string())
            .await?
        else {
            return Err(ImapError::no(Some(Code::TryCreate), "no such mailbox"));
        };
        let mut batch = Vec::with_capacity(messages.len());
        let mut bytes = 0u64;
        for m in messages {
            let raw = match m.data {
                AppendData::Literal(raw) => raw,
                // RFC 6855 4: only a session that enabled UTF8=ACCEPT.
                AppendData::Utf8(raw) if self.utf8_accept => raw,
                AppendData::Utf8(_) => {
                    return Err(ImapError::Bad(
                        "APPEND UTF8 needs ENABLE UTF8=ACCEPT first".into(),
                    ));
                }
                // Not offered yet (no CATENATE capability).
                AppendData::Catenate(_) => {
                    return Err(ImapError::Bad("CATENATE is not supported".into()));
                }
            };
            if raw.is_empty() {
                return Err(ImapError::no(Some(Code::Cannot), "empty message"));
            }
            // RFC 3516 4.3: parts holding NUL (a literal8 APPEND) are
            // stored in base64, so no non-BINARY FETCH has to send NUL in
            // a literal.
            let raw = proto_imap::mime::encode_binary_parts(&raw).unwrap_or(raw);
            bytes = bytes.saturating_add(raw.len() as u64);
            batch.push(NewMessage {
                raw,
                flags: m.flags,
                internal_date: m.date.unwrap_or_else(now),
            });
        }
        self.check_quota(bytes, batch.len() as u64).await?;
        let uids = match self.ctx.store.append_many(dest.id, batch).await {
            Ok(u) => u,
            Err(StoreError::Invalid(why)) => return Err(ImapError::Bad(why)),
            Err(e) => return Err(e.into()),
        };
        let uids: Vec<u32> = uids.iter().map(|u| u.0).collect();
        Ok((
            Some(Code::AppendUid {
                validity: dest.uidvalidity,
                uids: format_set(&uids),
            }),
            "APPEND completed".into(),
        ))
    }
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use crate::imap::testkit::{ALICE, Kit, cmd, raw};

    #[tokio::test]
    async fn append_answers_appenduid_and_selected_session_sees_exists() {
        let kit = Kit::new();
        let info = kit.mailbox(ALICE, "INBOX").await;
        assert!(info.is_none(), "the account is created at first login");
        let mut s = kit.selected(ALICE, "INBOX").await;
        let info = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let r = raw(
            &mut s,
            b"t APPEND INBOX (\\Seen) {14+}\r\nSubject: a\r\n\r\n\r\n",
        )
        .await;
        r.assert_ok();
        let code = format!("[APPENDUID {} 1]", info.uidvalidity);
        assert!(r.tagged.contains(&code), "{r:?}");
        assert!(r.has("* 1 EXISTS"), "{r:?}");
        let r = cmd(&mut s, "APPEND Nowhere {1+}\r\nx").await;
        assert!(r.tagged.contains("[TRYCREATE]"), "{r:?}");
    }

    #[tokio::test]
    async fn multiappend_stores_every_message_and_lists_their_uids() {
        let kit = Kit::new();
        let mut s = kit.selected(ALICE, "INBOX").await;
        let info = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let r = raw(
            &mut s,
            b"t APPEND INBOX (\\Seen) {14+}\r\nSubject: a\r\n\r\n \"7-Feb-1994 21:52:25 -0800\" {14+}\r\nSubject: b\r\n\r\n {14+}\r\nSubject: c\r\n\r\n\r\n",
        )
        .await;
        r.assert_ok();
        let code = format!("[APPENDUID {} 1:3]", info.uidvalidity);
        assert!(r.tagged.contains(&code), "{r:?}");
        assert!(r.has("* 3 EXISTS"), "{r:?}");
        let r = cmd(&mut s, "FETCH 1:3 (FLAGS INTERNALDATE)").await;
        assert!(r.untagged[0].contains("\\Seen"), "{r:?}");
        assert!(
            r.untagged[1].contains("08-Feb-1994 05:52:25 +0000"),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn a_bad_message_in_a_multiappend_stores_none_of_them() {
        let kit = Kit::new();
        let mut s = kit.selected(ALICE, "INBOX").await;
        // The second message's flag is refused: the first is not kept.
        let r = raw(
            &mut s,
            b"t APPEND INBOX {14+}\r\nSubject: a\r\n\r\n (\\Bogus) {14+}\r\nSubject: b\r\n\r\n\r\n",
        )
        .await;
        assert_eq!(r.status(), "BAD", "{r:?}");
        assert!(kit.uids(ALICE, "INBOX").await.is_empty());
        // An empty one: NO, and none kept either.
        let r = raw(
            &mut s,
            b"t APPEND INBOX {14+}\r\nSubject: a\r\n\r\n {0+}\r\n\r\n",
        )
        .await;
        assert_eq!(r.status(), "NO", "{r:?}");
        assert!(kit.uids(ALICE, "INBOX").await.is_empty());
    }

    #[tokio::test]
    async fn a_multiappend_over_quota_stores_nothing() {
        let kit = Kit::with_quota(crate::quota::QuotaDefaults {
            storage: 0,
            messages: 2,
        });
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = raw(
            &mut s,
            b"t APPEND INBOX {14+}\r\nSubject: a\r\n\r\n {14+}\r\nSubject: b\r\n\r\n {14+}\r\nSubject: c\r\n\r\n\r\n",
        )
        .await;
        assert!(r.tagged.contains("NO [OVERQUOTA]"), "{r:?}");
        assert!(kit.uids(ALICE, "INBOX").await.is_empty());
    }
}
