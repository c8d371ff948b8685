//! APPEND (RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502), UTF8 (RFC 6855
//! 4), CATENATE (RFC 4469) and the UIDPLUS response code APPENDUID (RFC
//! 4315). A missing destination is `NO [TRYCREATE]`.
//!
//! CATENATE's URLs name messages (or parts of them) in the user's own
//! mailboxes; anything else, a wrong UIDVALIDITY or a missing message is
//! `NO [BADURL url]`, and a result over `imap.max_literal_size` is
//! `NO [TOOBIG]`, with nothing appended.
//!
//! RFC 3502 6: the messages of one APPEND are committed together or not
//! at all; they go to the store as one [`store::Store::append_many`],
//! which checks the quota for the whole set in the same transaction.

use proto_imap::imapurl::parse_message_url;
use proto_imap::types::format_set;
use proto_imap::{AppendData, AppendMessage, CatPart, Code, Mailbox, utf7};
use store::{NewMessage, StoreError};

use std::collections::VecDeque;

use super::fetch_part::{self, UrlOctets};
use super::session::{CmdResult, ImapError, Session, Streamed};

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
        // Literals the driver took into the spool (issue 19) have an empty
        // literal in their place, in order.
        let mut streamed: VecDeque<Streamed> = std::mem::take(&mut self.streamed).into();
        if let [one] = messages.as_slice()
            && streamed.len() == 1
            && let AppendData::Literal(raw) | AppendData::Utf8(raw) = &one.data
            && raw.is_empty()
            && (self.utf8_accept || matches!(one.data, AppendData::Literal(_)))
            && let Some(s) = streamed.pop_front()
        {
            let flags = one.flags.clone();
            let date = one.date.unwrap_or_else(now);
            return self.append_streamed(&account, &dest, s, flags, date).await;
        }
        // What is read back into memory below is bounded like the
        // literals the framer buffers: the APPEND limit for the command.
        let spooled: u64 = streamed
            .iter()
            .map(|s| {
                s.message.as_ref().map_or(0, |m| {
                    (m.head.len() as u64).saturating_add(m.tail.as_ref().map_or(0, |t| t.len()))
                })
            })
            .fold(0, u64::saturating_add);
        if spooled > self.ctx.config.max_literal_size as u64 {
            return Err(ImapError::no(Some(Code::TooBig), "messages too large"));
        }
        let single = messages.len() == 1;
        // In memory for the set: the streamed literals read back, and
        // what CATENATE builds (RFC 4469 5) when there is more than one
        // message; the APPEND limit bounds it all.
        let mut held = spooled;
        let mut batch = Vec::with_capacity(messages.len());
        for m in messages {
            let raw = match m.data {
                AppendData::Literal(raw) => in_memory(&mut streamed, raw)?,
                // RFC 6855 4: only a session that enabled UTF8=ACCEPT.
                AppendData::Utf8(raw) if self.utf8_accept => in_memory(&mut streamed, raw)?,
                AppendData::Utf8(_) => {
                    return Err(ImapError::Bad(
                        "APPEND UTF8 needs ENABLE UTF8=ACCEPT first".into(),
                    ));
                }
                AppendData::Catenate(parts) => {
                    let (built, memory) = self.catenate(&account, parts, &mut streamed).await?;
                    if single {
                        // One message: from its spool file into the store
                        // in chunks, as a streamed literal (issue 19).
                        let date = m.date.unwrap_or_else(now);
                        let s = Streamed {
                            message: Ok(built),
                            _memory: memory,
                        };
                        return self
                            .append_streamed(&account, &dest, s, m.flags, date)
                            .await;
                    }
                    held = held.saturating_add(built.len() as u64);
                    if held > self.ctx.config.max_literal_size as u64 {
                        return Err(ImapError::no(Some(Code::TooBig), "messages too large"));
                    }
                    let mut whole = built.head;
                    if let Some(tail) = built.tail {
                        whole.extend_from_slice(&tail.to_vec()?);
                    }
                    whole
                }
            };
            if raw.is_empty() {
                return Err(ImapError::no(Some(Code::Cannot), "empty message"));
            }
            // RFC 3516 4.3: parts holding NUL (a literal8 APPEND) are
            // stored in base64, so no non-BINARY FETCH has to send NUL in
            // a literal.
            let raw = proto_imap::mime::encode_binary_parts(&raw).unwrap_or(raw);
            batch.push(NewMessage {
                raw,
                flags: m.flags,
                internal_date: m.date.unwrap_or_else(now),
            });
        }
        // RFC 9208 5.3, RFC 3502 6: the whole set within the quota, checked
        // in the store's transaction with the appends.
        let quota = self.ctx.quota.limits(&account);
        let uids = match self.ctx.store.append_many(dest.id, batch, quota).await {
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

impl Session {
    /// RFC 4469 5: the parts, concatenated, into a spool writer: past
    /// `[store] spool_threshold` the result is in a spool file, a big part
    /// of a stored message is copied a chunk at a time and a streamed
    /// TEXT literal from its own spool file, so the message is never
    /// whole in memory (issue 19). What the writer holds in memory comes
    /// from `imap.max_inflight_literals`, as a streamed literal's does.
    async fn catenate(
        &self,
        account: &str,
        parts: Vec<CatPart>,
        streamed: &mut VecDeque<Streamed>,
    ) -> Result<(crate::spool::Message, crate::budget::Reservation), ImapError> {
        let max = self.ctx.config.max_literal_size as u64;
        let too_big = || ImapError::no(Some(Code::TooBig), "message too large");
        let mut memory = self.ctx.config.literals.reservation();
        let mut w = self.spool_writer();
        for part in parts {
            match part {
                CatPart::Text(text) => copy_text(&mut w, text, streamed)?,
                CatPart::Utf8(text) if self.utf8_accept => copy_text(&mut w, text, streamed)?,
                CatPart::Utf8(_) => {
                    return Err(ImapError::Bad(
                        "CATENATE UTF8 needs ENABLE UTF8=ACCEPT first".into(),
                    ));
                }
                CatPart::Url(url) => match self.url_data(account, &url).await? {
                    Some((_, UrlOctets::Mem(data))) => w.write(&data),
                    Some((body, UrlOctets::Range(a, b))) => {
                        // Known before a chunk is read: refused at once.
                        if w.len().saturating_add(b - a) > max {
                            return Err(too_big());
                        }
                        let store = self.ctx.store.as_ref();
                        if !fetch_part::for_each_chunk(store, body, a, b, |c| w.write(c)).await? {
                            return Err(ImapError::no(Some(Code::BadUrl(url)), "bad URL"));
                        }
                    }
                    None => return Err(ImapError::no(Some(Code::BadUrl(url)), "bad URL")),
                },
            }
            if w.len() > max {
                return Err(too_big());
            }
            if !memory.cover(w.in_memory_len()) {
                return Err(ImapError::no(
                    Some(Code::Unavailable),
                    "Too many messages in flight, try again later",
                ));
            }
        }
        Ok((spool_result(w.finish())?, memory))
    }

    /// What an IMAP URL names in `account`'s own mailboxes, and the body
    /// it is in; None when it names nothing there.
    async fn url_data(
        &self,
        account: &str,
        url: &str,
    ) -> Result<Option<(store::BodyId, UrlOctets)>, ImapError> {
        let Some(u) = parse_message_url(url) else {
            return Ok(None);
        };
        // Only the session's own user (the full address or its local
        // part, as LOGIN takes them).
        if let Some(user) = &u.user {
            let local = account.split('@').next().unwrap_or(account);
            if !user.eq_ignore_ascii_case(account) && !user.eq_ignore_ascii_case(local) {
                return Ok(None);
            }
        }
        // RFC 5092 3: the name as the IMAP server knows it, which for a
        // client without UTF-8 is modified UTF-7.
        let name = match std::str::from_utf8(&u.mailbox) {
            Ok(s) => utf7::decode(s.as_bytes()).unwrap_or_else(|| s.to_string()),
            Err(_) => return Ok(None),
        };
        let store = &self.ctx.store;
        let Some(mailbox) = store.mailbox(account.to_string(), name).await? else {
            return Ok(None);
        };
        if u.uidvalidity.is_some_and(|v| v != mailbox.uidvalidity) {
            return Ok(None);
        }
        let uid = store::Uid(u.uid);
        let metas = store.messages_range(mailbox.id, uid, uid).await?;
        let Some(meta) = metas.first() else {
            return Ok(None);
        };
        let found = fetch_part::url_octets(
            store.as_ref(),
            meta.body,
            meta.size,
            u.section.as_ref(),
            u.partial,
        )
        .await?;
        Ok(found.map(|o| (meta.body, o)))
    }
}

/// A CATENATE TEXT part into the writer: the literal, or what the driver
/// streamed in its place (an empty literal), copied from its spool file.
fn copy_text(
    w: &mut crate::spool::SpoolWriter,
    text: Vec<u8>,
    streamed: &mut VecDeque<Streamed>,
) -> Result<(), ImapError> {
    if !text.is_empty() {
        w.write(&text);
        return Ok(());
    }
    let Some(s) = streamed.pop_front() else {
        return Ok(());
    };
    let m = spool_result(s.message)?;
    w.write(&m.head);
    if let Some(tail) = m.tail {
        tail.for_each_chunk(|c| {
            w.write(c);
            Ok(())
        })?;
    }
    Ok(())
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A literal of a MULTIAPPEND or CATENATE: what the driver streamed in
/// its place is read back into memory (bounded, with the command's other
/// literals, by the framer's APPEND limit), so the set is stored as one.
fn in_memory(streamed: &mut VecDeque<Streamed>, raw: Vec<u8>) -> Result<Vec<u8>, ImapError> {
    if !raw.is_empty() {
        return Ok(raw);
    }
    let Some(s) = streamed.pop_front() else {
        return Ok(raw);
    };
    let m = spool_result(s.message)?;
    let mut whole = m.head;
    if let Some(tail) = m.tail {
        whole.extend_from_slice(&tail.to_vec()?);
    }
    Ok(whole)
}

/// A spool failure is the server's, and temporary (issue 19).
fn spool_result(
    r: Result<crate::spool::Message, crate::spool::SpoolError>,
) -> Result<crate::spool::Message, ImapError> {
    r.map_err(spool_error)
}

fn spool_error(e: crate::spool::SpoolError) -> ImapError {
    match e {
        crate::spool::SpoolError::DiskFull => {
            ImapError::no(Some(Code::Unavailable), "disk full, try later")
        }
        crate::spool::SpoolError::Io(_) => {
            ImapError::no(Some(Code::Unavailable), "cannot store, try later")
        }
    }
}

impl Session {
    /// One APPEND whose literal the driver streamed (issue 19): from the
    /// spool into the store in chunks, within the user's quota.
    async fn append_streamed(
        &mut self,
        account: &str,
        dest: &store::MailboxInfo,
        s: Streamed,
        flags: Vec<String>,
        date: i64,
    ) -> CmdResult {
        let mut m = spool_result(s.message)?;
        // RFC 3516 4.3: parts holding NUL are stored in base64, a spooled
        // message into a new spool file a chunk at a time (issue 19).
        if m.nul
            && let Some(tail) = m.tail.clone().filter(|t| !t.is_empty())
        {
            let again =
                crate::binary::reencode_spooled_async(m.head.clone(), tail, self.spool_writer())
                    .await;
            match again {
                Ok(Some(reencoded)) => m = reencoded,
                Ok(None) => {}
                Err(e) => return Err(spool_error(e)),
            }
        }
        let quota = self.ctx.quota.limits(account);
        let stored = match m.tail.filter(|t| !t.is_empty()) {
            Some(tail) => {
                self.ctx
                    .store
                    .append_spooled(dest.id, m.head, tail, flags, date, quota)
                    .await
            }
            None => {
                if m.head.is_empty() {
                    return Err(ImapError::no(Some(Code::Cannot), "empty message"));
                }
                // RFC 3516 4.3, as for an APPEND held in memory.
                let raw = match m.nul {
                    true => proto_imap::mime::encode_binary_parts(&m.head).unwrap_or(m.head),
                    false => m.head,
                };
                self.ctx
                    .store
                    .append_within(dest.id, raw, flags, date, quota)
                    .await
            }
        };
        let uid = match stored {
            Ok(u) => u,
            Err(StoreError::Invalid(why)) => return Err(ImapError::Bad(why)),
            Err(e) => return Err(e.into()),
        };
        Ok((
            Some(Code::AppendUid {
                validity: dest.uidvalidity,
                uids: uid.0.to_string(),
            }),
            "APPEND completed".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::imap::testkit::{ALICE, Kit, cmd, raw};
    use std::sync::atomic::Ordering;

    /// Runs the real driver over `input` (all sent at once) on a kit whose
    /// APPEND literals above 4 KiB go to a spool; what it answered.
    async fn spooled_session(kit: &Kit, input: &[u8]) -> String {
        let ctx = std::sync::Arc::clone(&kit.ctx);
        let (_trigger, shutdown) = crate::shutdown::Shutdown::new();
        let (out, _) = crate::testutil::drip(input, b"", std::time::Duration::ZERO, |conn| {
            crate::imap::driver::run(conn, ctx, shutdown)
        })
        .await;
        out
    }

    fn spooling_kit(dir: &std::path::Path) -> Kit {
        let spool = crate::spool::Spool::open(dir, 4096).expect("spool");
        Kit::with(|c| c.spool = Some(std::sync::Arc::new(spool)))
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

    #[tokio::test]
    async fn a_spooled_literal8_append_is_stored_with_its_binary_part_in_base64() {
        let dir = tempfile::tempdir().expect("dir");
        let kit = spooling_kit(dir.path());
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 256) as u8).collect();
        let msg = binary_message(&content);
        let mut input = format!(
            "a LOGIN {ALICE} pw\r\nb APPEND INBOX ~{{{}}}\r\n",
            msg.len()
        )
        .into_bytes();
        input.extend_from_slice(&msg);
        input.extend_from_slice(
            b"\r\nc SELECT INBOX\r\nd FETCH 1 (RFC822.SIZE BINARY.SIZE[2])\r\ne LOGOUT\r\n",
        );
        let out = spooled_session(&kit, &input).await;
        assert!(out.contains("b OK [APPENDUID"), "{out}");
        let inbox = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let msgs = kit.store.messages(inbox.id).await.expect("messages");
        let stored = kit.store.read_body(msgs[0].body).await.expect("body");
        // Stored as FETCH shows it: what the whole-message encoder makes.
        assert!(stored == proto_imap::mime::encode_binary_parts(&msg).expect("binary"));
        assert!(!stored.contains(&0));
        assert!(
            out.contains(&format!("RFC822.SIZE {}", stored.len())),
            "{out}"
        );
        // BINARY gives the client's octets back.
        assert!(
            out.contains(&format!("BINARY.SIZE[2] {}", content.len())),
            "{out}"
        );
        let root = proto_imap::mime::Part::parse(&stored);
        let part = proto_imap::mime::binary(&root, &stored, &[2]);
        assert!(part.as_deref() == Ok(&content[..]));
        // The spool files went with their descriptors.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[tokio::test]
    async fn a_spooled_append_with_nul_outside_any_part_body_is_stored_as_sent() {
        // NUL in a header field only: no part to re-encode, the message is
        // stored as it came (FETCH re-encodes nothing either).
        let dir = tempfile::tempdir().expect("dir");
        let kit = spooling_kit(dir.path());
        let mut msg = b"Subject: a\x00b\r\n\r\n".to_vec();
        msg.resize(10_000, b'x');
        let mut input = format!(
            "a LOGIN {ALICE} pw\r\nb APPEND INBOX ~{{{}}}\r\n",
            msg.len()
        )
        .into_bytes();
        input.extend_from_slice(&msg);
        input.extend_from_slice(b"\r\ne LOGOUT\r\n");
        let out = spooled_session(&kit, &input).await;
        assert!(out.contains("b OK [APPENDUID"), "{out}");
        let inbox = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let msgs = kit.store.messages(inbox.id).await.expect("messages");
        assert!(kit.store.read_body(msgs[0].body).await.expect("body") == msg);
    }

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

    #[tokio::test]
    async fn catenate_joins_text_and_parts_of_stored_messages() {
        let kit = Kit::new();
        kit.deliver(ALICE, "Subject: src\r\n\r\nthe body\r\n").await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let info = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let v = info.uidvalidity;
        let cmd_text = format!(
            "t APPEND Drafts (\\Draft) CATENATE (URL \"/INBOX;UIDVALIDITY={v}/;UID=1/;SECTION=HEADER\" TEXT {{5+}}\r\nnew\r\n URL \"imap://alice@mx/INBOX/;uid=1/;section=TEXT/;partial=4.4\")\r\n"
        );
        let r = raw(&mut s, cmd_text.as_bytes()).await;
        r.assert_ok();
        assert!(r.tagged.contains("[APPENDUID "), "{r:?}");
        let mut d = kit.selected(ALICE, "Drafts").await;
        let r = cmd(&mut d, "FETCH 1 BODY.PEEK[]").await;
        assert!(
            r.untagged[0].contains("Subject: src\r\n\r\nnew\r\nbody"),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn a_bad_catenate_url_is_badurl_and_appends_nothing() {
        let kit = Kit::with(|c| c.max_literal_size = 64);
        kit.deliver(ALICE, "Subject: src\r\n\r\nthe body\r\n").await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        for url in [
            "/INBOX;UIDVALIDITY=1/;UID=1",
            "/INBOX/;UID=9",
            "/Nowhere/;UID=1",
            "/INBOX/;UID=1/;SECTION=4",
            "imap://bob@mx/INBOX/;UID=1",
            "/INBOX/;UID=1/;URLAUTH=anonymous:internal:abc",
        ] {
            let line = format!("t APPEND INBOX CATENATE (TEXT {{3+}}\r\nx\r\n URL \"{url}\")\r\n");
            let r = raw(&mut s, line.as_bytes()).await;
            assert!(r.tagged.contains(&format!("NO [BADURL {url}]")), "{r:?}");
        }
        // Over the APPEND limit once the parts are joined: TOOBIG.
        let r = raw(
            &mut s,
            b"t APPEND INBOX CATENATE (URL \"/INBOX/;UID=1\" URL \"/INBOX/;UID=1\" URL \"/INBOX/;UID=1\")\r\n",
        )
        .await;
        assert!(r.tagged.contains("NO [TOOBIG]"), "{r:?}");
        assert_eq!(kit.uids(ALICE, "INBOX").await, [1]);
    }

    #[tokio::test]
    async fn a_utf8_catenate_part_needs_utf8_accept() {
        let kit = Kit::new();
        let mut s = kit.logged_in(ALICE).await;
        let line = "t APPEND INBOX CATENATE (UTF8 (~{16+}\r\nSubject: K\u{f6}ln\r\n) TEXT {5+}\r\n\r\nx\r\n)\r\n";
        let r = raw(&mut s, line.as_bytes()).await;
        assert_eq!(r.status(), "BAD", "{r:?}");
        cmd(&mut s, "ENABLE UTF8=ACCEPT").await.assert_ok();
        raw(&mut s, line.as_bytes()).await.assert_ok();
        let mut t = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut t, "FETCH 1 BODY.PEEK[]").await;
        assert!(
            r.untagged[0].contains("Subject: K\u{f6}ln\r\n\r\nx\r\n"),
            "{r:?}"
        );
    }
    /// About 1.5 MiB: above the size from which sections come by range.
    fn big_multipart() -> (String, String) {
        let big = "y".repeat(1_500_000);
        let raw = format!(
            "From: a@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nhello\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\n{big}\r\n--b--\r\n"
        );
        (raw, big)
    }

    #[tokio::test]
    async fn catenate_copies_parts_of_a_big_message_by_range_through_the_spool() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = crate::spool::Spool::open(dir.path(), 64 * 1024).expect("spool");
        let (kit, reads) =
            Kit::counting_body_reads_with(|c| c.spool = Some(std::sync::Arc::new(spool)));
        let (source, big) = big_multipart();
        kit.deliver(ALICE, &source).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = raw(
            &mut s,
            b"t APPEND Drafts CATENATE (URL \"/INBOX/;UID=1/;SECTION=HEADER\" TEXT {7+}\r\nfirst\r\n \
              URL \"/INBOX/;UID=1/;SECTION=2/;PARTIAL=7.1400000\" URL \"/INBOX/;UID=1/;SECTION=1\")\r\n",
        )
        .await;
        r.assert_ok();
        assert_eq!(reads.load(Ordering::SeqCst), 0, "no whole read");
        let header_end = source.find("\r\n\r\n").expect("header") + 4;
        let want = format!(
            "{}first\r\n{}hello",
            &source[..header_end],
            &big[7..1_400_007]
        );
        let drafts = kit.mailbox(ALICE, "Drafts").await.expect("drafts");
        let metas = kit.store.messages(drafts.id).await.expect("messages");
        assert_eq!(metas.len(), 1);
        assert_eq!(metas[0].size, want.len() as u64);
        let stored = kit.store.read_body(metas[0].body).await.expect("body");
        assert!(stored == want.as_bytes(), "the catenated message differs");
        // A section that is not there, and a part too big for the limit
        // once joined: BADURL and TOOBIG, nothing appended.
        let r = raw(
            &mut s,
            b"t APPEND Drafts CATENATE (URL \"/INBOX/;UID=1/;SECTION=2\" URL \"/INBOX/;UID=1/;SECTION=7\")\r\n",
        )
        .await;
        assert!(
            r.tagged.contains("NO [BADURL /INBOX/;UID=1/;SECTION=7]"),
            "{r:?}"
        );
        assert_eq!(kit.uids(ALICE, "Drafts").await, [1]);
    }

    #[tokio::test]
    async fn a_catenated_big_part_over_the_limit_is_toobig_before_it_is_read() {
        let (kit, reads) = Kit::counting_body_reads_with(|c| c.max_literal_size = 1_000_000);
        let (source, _) = big_multipart();
        kit.deliver(ALICE, &source).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = raw(
            &mut s,
            b"t APPEND Drafts CATENATE (TEXT {3+}\r\nx\r\n URL \"/INBOX/;UID=1/;SECTION=2\")\r\n",
        )
        .await;
        assert!(r.tagged.contains("NO [TOOBIG]"), "{r:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 0);
        assert!(kit.uids(ALICE, "Drafts").await.is_empty());
    }
}
