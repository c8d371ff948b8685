//! URLAUTH (RFC 4467): GENURLAUTH, URLFETCH and RESETKEY.
//!
//! GENURLAUTH signs the rump of a URL naming one of the user's messages
//! with its mailbox's access key (made on first use, 256 random bits,
//! kept by the store): the INTERNAL mechanism (7) is HMAC-SHA-256 of the
//! rump, in hex. URLFETCH checks the token against the owner's key in
//! constant time, the access (`user+NAME` that user, `authuser` anyone
//! logged in, `anonymous` anyone; `submit+` is for a submission server,
//! which this session is not) and EXPIRE, and answers the message, its
//! section or its partial range; anything that does not check out is NIL
//! (RFC 4467 6: "the server MUST return NIL"), never a reason. RESETKEY
//! forgets the keys, so every URL they signed stops working.

use proto_imap::response::literal;
use proto_imap::urlauth::{Access, AuthUrl, parse_url};
use proto_imap::{Code, Data, Mailbox};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::fetch_part::{UrlOctets, for_each_chunk, send_range, url_octets};
use super::session::{CmdResult, ImapError, Out, Session, done};

/// A failure once a response has begun: logged, and the connection ends
/// (the client cannot be told in the protocol).
fn mid_response(e: ImapError) -> ImapError {
    tracing::warn!(error = ?e, "urlfetch: failed after the response began; closing");
    ImapError::Gone
}

/// RFC 4467 7 asks for at least 128 bits of key; these are 256.
const KEY_LEN: usize = 32;

fn token(key: &[u8], rump: &str) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), rump.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Session {
    /// The account a URL's user name (a login name) is.
    async fn url_account(&self, user: &str) -> Result<Option<String>, ImapError> {
        self.ctx
            .auth
            .directory()
            .find_login(user)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "urlauth: directory lookup failed");
                ImapError::no(Some(Code::Unavailable), "directory unavailable")
            })
    }

    /// GENURLAUTH (RFC 4467 6.1): one signed URL per rump.
    pub(super) async fn gen_url_auth(
        &mut self,
        urls: Vec<(String, String)>,
        out: &mut Out<'_>,
    ) -> CmdResult {
        let account = self.account()?.to_string();
        let mut signed = Vec::with_capacity(urls.len());
        for (url, mech) in urls {
            if !mech.eq_ignore_ascii_case("INTERNAL") {
                return Err(ImapError::no(None, "the mechanism is INTERNAL"));
            }
            let u = parse_url(&url).map_err(|e| ImapError::Bad(format!("bad URL: {e}")))?;
            if u.verifier.is_some() {
                return Err(ImapError::Bad("the URL is already authorised".into()));
            }
            // 6.1: only the user's own messages.
            if self.url_account(&u.user).await?.as_deref() != Some(account.as_str()) {
                return Err(ImapError::no(None, "the URL names another user"));
            }
            if let Access::User(name) | Access::Submit(name) = &u.access
                && self.url_account(name).await?.is_none()
            {
                return Err(ImapError::no(None, "no such user for the URL's access"));
            }
            let Some(info) = self
                .ctx
                .store
                .mailbox(account.clone(), u.mailbox.clone())
                .await?
            else {
                return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox"));
            };
            if u.uidvalidity.is_some_and(|v| v != info.uidvalidity) {
                return Err(ImapError::no(None, "UIDVALIDITY does not match"));
            }
            let mut fresh = vec![0u8; KEY_LEN];
            SystemRandom::new()
                .fill(&mut fresh)
                .map_err(|_| ImapError::no(Some(Code::ServerBug), "no random numbers"))?;
            let key = self
                .ctx
                .store
                .ensure_urlauth_key(account.clone(), info.id, fresh)
                .await?;
            signed.push(format!("{}:INTERNAL:{}", u.rump, token(&key, &u.rump)));
        }
        out.data(Data::GenUrlAuth(signed));
        done("GENURLAUTH completed")
    }

    /// URLFETCH (RFC 4467 6.3): each URL's data, or NIL. Every URL is
    /// checked first (a failure there is a NO); then each one's data is
    /// read and written in turn, a big section a chunk at a time straight
    /// into its literal (issue 19), so no URL's message is whole in memory.
    /// A store failure once the response has begun cannot be answered in
    /// the protocol: the connection ends, as in a streamed FETCH.
    pub(super) async fn url_fetch(&mut self, urls: Vec<String>, out: &mut Out<'_>) -> CmdResult {
        let mut located = Vec::with_capacity(urls.len());
        for url in urls {
            let at = match parse_url(&url) {
                Ok(u) => self
                    .locate_url(&u)
                    .await?
                    .map(|at| (at, u.section, u.partial)),
                Err(_) => None,
            };
            located.push((url, at));
        }
        let store = self.ctx.store.as_ref();
        let enc = out.enc;
        out.buf.extend_from_slice(b"* URLFETCH");
        for (url, at) in located {
            out.buf.push(b' ');
            enc.astring(&mut out.buf, url.as_bytes());
            out.buf.push(b' ');
            let data = match at {
                None => None,
                Some(((body, size), section, partial)) => {
                    match url_octets(store, body, size, section.as_ref(), partial).await {
                        Ok(d) => d.map(|d| (body, d)),
                        Err(e) => return Err(mid_response(e)),
                    }
                }
            };
            match data {
                None => out.buf.extend_from_slice(b"NIL"),
                // The octets as they are: a literal8 when they hold NUL
                // (RFC 3516 4.3), as the serialiser writes small ones.
                Some((_, UrlOctets::Mem(d))) => {
                    if d.contains(&0) {
                        out.buf.push(b'~');
                    }
                    literal(&mut out.buf, &d);
                }
                Some((body, UrlOctets::Range(a, b))) => {
                    let mut nul = false;
                    let scanned =
                        for_each_chunk(store, body, a, b, |c| nul |= c.contains(&0)).await;
                    match scanned {
                        Ok(true) => {}
                        // Gone before its literal began: NIL, as for a
                        // message already expunged (RFC 4467 6.3).
                        Ok(false) => {
                            out.buf.extend_from_slice(b"NIL");
                            out.flush_if_big().await?;
                            continue;
                        }
                        Err(e) => return Err(mid_response(e)),
                    }
                    let tilde = if nul { "~" } else { "" };
                    out.buf
                        .extend_from_slice(format!("{tilde}{{{}}}\r\n", b - a).as_bytes());
                    send_range(out, store, body, a, b).await?;
                }
            }
            out.flush_if_big().await?;
        }
        out.buf.extend_from_slice(b"\r\n");
        done("URLFETCH completed")
    }

    /// The message a URL names, if its token, access and expiry check
    /// out: its body and size.
    async fn locate_url(&self, u: &AuthUrl) -> Result<Option<(store::BodyId, u64)>, ImapError> {
        let me = self.account()?.to_string();
        let Some((mech, tok)) = &u.verifier else {
            return Ok(None);
        };
        if mech != "INTERNAL" || u.expire.is_some_and(|e| e <= now()) {
            return Ok(None);
        }
        let allowed = match &u.access {
            Access::Anonymous | Access::AuthUser => true,
            Access::User(name) => self.url_account(name).await?.as_deref() == Some(me.as_str()),
            Access::Submit(_) => false,
        };
        if !allowed {
            return Ok(None);
        }
        let Some(owner) = self.url_account(&u.user).await? else {
            return Ok(None);
        };
        let Some(info) = self
            .ctx
            .store
            .mailbox(owner.clone(), u.mailbox.clone())
            .await?
        else {
            return Ok(None);
        };
        let Some(key) = self.ctx.store.urlauth_key(owner, info.id).await? else {
            return Ok(None);
        };
        let Some(given) = unhex(tok) else {
            return Ok(None);
        };
        let hkey = hmac::Key::new(hmac::HMAC_SHA256, &key);
        if hmac::verify(&hkey, u.rump.as_bytes(), &given).is_err() {
            return Ok(None);
        }
        if u.uidvalidity.is_some_and(|v| v != info.uidvalidity) {
            return Ok(None);
        }
        let uid = store::Uid(u.uid);
        let metas = self.ctx.store.messages_range(info.id, uid, uid).await?;
        let Some(meta) = metas.first() else {
            return Ok(None);
        };
        Ok(Some((meta.body, meta.size)))
    }

    /// RESETKEY (RFC 4467 6.2): forgets one mailbox's key, or all.
    pub(super) async fn reset_key(&mut self, arg: Option<(Mailbox, Vec<String>)>) -> CmdResult {
        let account = self.account()?.to_string();
        let mailbox = match arg {
            None => None,
            Some((m, mechs)) => {
                if mechs.iter().any(|x| !x.eq_ignore_ascii_case("INTERNAL")) {
                    return Err(ImapError::no(None, "the mechanism is INTERNAL"));
                }
                match self
                    .ctx
                    .store
                    .mailbox(account.clone(), m.as_str().to_string())
                    .await?
                {
                    Some(info) => Some(info.id),
                    None => return Err(ImapError::no(Some(Code::NonExistent), "no such mailbox")),
                }
            }
        };
        self.ctx.store.reset_urlauth_keys(account, mailbox).await?;
        done("RESETKEY completed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hmac_sha256_in_hex() {
        let t = token(b"key", "imap://a@b/INBOX/;UID=1;URLAUTH=anonymous");
        assert_eq!(t.len(), 64);
        assert_eq!(unhex(&t).map(|v| v.len()), Some(32));
        assert_ne!(
            t,
            token(b"other", "imap://a@b/INBOX/;UID=1;URLAUTH=anonymous")
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
    #[tokio::test]
    async fn urlfetch_of_a_big_message_streams_its_section_without_a_whole_read() {
        use crate::imap::testkit::{ALICE, Kit, cmd};
        use std::sync::atomic::Ordering;
        let (kit, reads) = Kit::counting_body_reads();
        let big = "z".repeat(1_500_000);
        let source = format!(
            "From: a@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nhello\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\n{big}\r\n--b--\r\n"
        );
        kit.deliver(ALICE, &source).await;
        let mut s = kit.selected(ALICE, "INBOX").await;
        let v = kit
            .mailbox(ALICE, "INBOX")
            .await
            .expect("inbox")
            .uidvalidity;
        let user = ALICE.split('@').next().unwrap_or(ALICE);
        let base = format!("imap://{user}@mx/INBOX;UIDVALIDITY={v}/;UID=1");
        let mut signed = Vec::new();
        for rump in [
            format!("{base}/;SECTION=2;URLAUTH=authuser"),
            format!("{base}/;SECTION=1;URLAUTH=authuser"),
            format!("{base}/;PARTIAL=10.2000000;URLAUTH=authuser"),
        ] {
            let r = cmd(&mut s, &format!("GENURLAUTH \"{rump}\" INTERNAL")).await;
            r.assert_ok();
            let url = r.untagged[0]
                .trim_start_matches("* GENURLAUTH ")
                .trim_end()
                .trim_matches('"')
                .to_string();
            signed.push(url);
        }
        let bogus = format!("{base}/;SECTION=9;URLAUTH=authuser:INTERNAL:00");
        let r = cmd(
            &mut s,
            &format!(
                "URLFETCH \"{}\" \"{}\" \"{bogus}\" \"{}\"",
                signed[0], signed[1], signed[2]
            ),
        )
        .await;
        r.assert_ok();
        assert_eq!(reads.load(Ordering::SeqCst), 0, "no whole read");
        assert_eq!(r.untagged.len(), 1, "{:?}", r.untagged.len());
        let want = format!(
            "* URLFETCH {} {{{}}}\r\n{big} {} {{5}}\r\nhello {bogus} NIL {} {{{}}}\r\n{}",
            signed[0],
            big.len(),
            signed[1],
            signed[2],
            source.len() - 10,
            &source[10..]
        );
        let got = &r.untagged[0];
        let at = got
            .bytes()
            .zip(want.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            *got == want,
            "URLFETCH differs at {at} (lengths {} {}): {:?} / {:?}",
            got.len(),
            want.len(),
            &got[at.saturating_sub(40)..(at + 40).min(got.len())],
            &want[at.saturating_sub(40)..(at + 40).min(want.len())]
        );
    }
}
