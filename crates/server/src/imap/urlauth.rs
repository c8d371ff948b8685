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

use proto_imap::urlauth::{Access, AuthUrl, parse_url};
use proto_imap::{Code, Data, Mailbox};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::session::{CmdResult, ImapError, Out, Session, done};

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

    /// URLFETCH (RFC 4467 6.3): each URL's data, or NIL.
    pub(super) async fn url_fetch(&mut self, urls: Vec<String>, out: &mut Out<'_>) -> CmdResult {
        let mut answers = Vec::with_capacity(urls.len());
        for url in urls {
            let data = match parse_url(&url) {
                Ok(u) => self.fetch_url(&u).await?,
                Err(_) => None,
            };
            answers.push((url, data));
        }
        out.data(Data::UrlFetch(answers));
        done("URLFETCH completed")
    }

    async fn fetch_url(&self, u: &AuthUrl) -> Result<Option<Vec<u8>>, ImapError> {
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
        let raw = match self.ctx.store.read_body(meta.body).await {
            Ok(r) => r,
            Err(store::StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let data = match &u.section {
            None => raw,
            Some(s) => {
                let root = proto_imap::mime::Part::parse(&raw);
                match proto_imap::mime::section(&root, &raw, s) {
                    Some(d) => d,
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(match u.partial {
            None => data,
            Some((offset, len)) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = match len {
                    Some(l) => start.saturating_add(usize::try_from(l).unwrap_or(usize::MAX)),
                    None => data.len(),
                }
                .min(data.len());
                data.get(start..end).unwrap_or_default().to_vec()
            }
        }))
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
}
