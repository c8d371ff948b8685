//! URLAUTH (RFC 4467): the IMAP URLs it authorises (RFC 5092 with the
//! URLAUTH additions of RFC 4467 9) and its commands' arguments.
//!
//! An authorised URL names one message (or a section, or a range of it)
//! by mailbox, UIDVALIDITY and UID, who may fetch it (`;URLAUTH=access`)
//! and until when (`;EXPIRE=`). The part up to the access is the "rump"
//! the server signs; `:INTERNAL:<token>` after it makes the URL fetchable.
//! Keywords are case-insensitive; names are %-decoded UTF-8.

use crate::date::days_from_civil;
use crate::fetch::Section;
use crate::imapurl::{parse_message_path, percent_decode};

/// Longest URL accepted (RFC 4467 sets none): bounds parsing and storage.
pub const MAX_URL: usize = 8192;
/// URLs in one URLFETCH.
pub const MAX_URLS: usize = 64;

/// RFC 4467 3: who may fetch an authorised URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// `user+NAME`: that user only.
    User(String),
    /// `submit+NAME`: a submission server acting for that user.
    Submit(String),
    /// Any authenticated user.
    AuthUser,
    Anonymous,
}

/// One IMAP URL of RFC 4467's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUrl {
    /// The URL up to and including the access identifier (what is signed).
    pub rump: String,
    /// The owner: the user whose mailbox it names.
    pub user: String,
    pub mailbox: String,
    pub uidvalidity: Option<u32>,
    pub uid: u32,
    pub section: Option<Section>,
    /// `;PARTIAL=offset[.length]`.
    pub partial: Option<(u64, Option<u64>)>,
    /// Unix seconds.
    pub expire: Option<i64>,
    pub access: Access,
    /// `(mechanism, token)` after the rump, when present.
    pub verifier: Option<(String, String)>,
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

fn find_ci(s: &str, needle: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    lower.find(&needle.to_ascii_lowercase())
}

/// %-decoding (RFC 3986 2.1) to UTF-8.
fn pct_decode(s: &str) -> Option<String> {
    String::from_utf8(percent_decode(s)?).ok()
}

/// RFC 3339 `date-time` (RFC 4467 9: `expire`), as unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> { s.get(a..b)?.parse().ok() };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !s.get(10..11)?.eq_ignore_ascii_case("t") {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = frac.get(n..)?;
    }
    let offset = if rest.eq_ignore_ascii_case("z") {
        0
    } else {
        let sign = match rest.get(..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let oh: i64 = rest.get(1..3)?.parse().ok()?;
        let om: i64 = rest.get(4..6)?.parse().ok()?;
        if rest.len() != 6 || rest.get(3..4)? != ":" {
            return None;
        }
        sign * (oh * 3600 + om * 60)
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(days * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// Parses an authorised (or to be authorised) URL.
pub fn parse_url(url: &str) -> Result<AuthUrl, &'static str> {
    if url.len() > MAX_URL {
        return Err("URL too long");
    }
    let rest = strip_prefix_ci(url, "imap://").ok_or("not an imap:// URL")?;
    let slash = rest.find('/').ok_or("URL without a mailbox")?;
    let (server, path) = rest.split_at(slash);
    let (userinfo, _host) = server.rsplit_once('@').ok_or("URL without a user")?;
    // `;AUTH=` (RFC 5092 3.2) is the client's business, not the owner's.
    let user = userinfo.split(';').next().unwrap_or("");
    let user = pct_decode(user).ok_or("bad %-encoding")?;
    if user.is_empty() {
        return Err("URL without a user");
    }
    let at = find_ci(url, ";URLAUTH=").ok_or("URL without ;URLAUTH=")?;
    let after = url.get(at + ";URLAUTH=".len()..).ok_or("bad URL")?;
    let (access_text, verifier) = match after.split_once(':') {
        Some((a, v)) => {
            let (mech, token) = v.split_once(':').ok_or("bad URLAUTH verifier")?;
            if mech.is_empty() || token.is_empty() {
                return Err("bad URLAUTH verifier");
            }
            (a, Some((mech.to_ascii_uppercase(), token.to_string())))
        }
        None => (after, None),
    };
    let rump = url
        .get(..at + ";URLAUTH=".len() + access_text.len())
        .ok_or("bad URL")?
        .to_string();
    let access = if access_text.eq_ignore_ascii_case("authuser") {
        Access::AuthUser
    } else if access_text.eq_ignore_ascii_case("anonymous") {
        Access::Anonymous
    } else if let Some(u) = strip_prefix_ci(access_text, "user+") {
        Access::User(pct_decode(u).ok_or("bad %-encoding")?)
    } else if let Some(u) = strip_prefix_ci(access_text, "submit+") {
        Access::Submit(pct_decode(u).ok_or("bad %-encoding")?)
    } else {
        return Err("unknown URLAUTH access");
    };
    // The path between the host and ;URLAUTH= (and ;EXPIRE=).
    let path_end = at - (url.len() - path.len());
    let mut path = path.get(1..path_end).ok_or("bad URL")?;
    let mut expire = None;
    if let Some(e) = find_ci(path, ";EXPIRE=") {
        let when = path.get(e + ";EXPIRE=".len()..).ok_or("bad EXPIRE")?;
        expire = Some(parse_rfc3339(when).ok_or("bad EXPIRE")?);
        path = path.get(..e).ok_or("bad URL")?;
    }
    let p = parse_message_path(path)?;
    let mailbox = String::from_utf8(p.mailbox).map_err(|_| "bad %-encoding")?;
    Ok(AuthUrl {
        rump,
        user,
        mailbox,
        uidvalidity: p.uidvalidity,
        uid: p.uid,
        section: p.section,
        partial: p.partial,
        expire,
        access,
        verifier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4467_urls_parse() {
        // RFC 4467 3's example (its EXPIRE moved to RFC 3339 form).
        let u = parse_url(
            "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred:internal:91354a473744909de610943775f92038",
        )
        .expect("url");
        assert_eq!(u.user, "joe");
        assert_eq!(u.mailbox, "INBOX");
        assert_eq!(u.uid, 20);
        assert_eq!(u.section.as_ref().map(|s| s.part.clone()), Some(vec![1, 2]));
        assert_eq!(u.access, Access::Submit("fred".into()));
        assert_eq!(
            u.rump,
            "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred"
        );
        assert_eq!(
            u.verifier,
            Some(("INTERNAL".into(), "91354a473744909de610943775f92038".into()))
        );
        let u = parse_url(
            "imap://a%40b.test;AUTH=*@mail.test/Work%20Stuff;UIDVALIDITY=7/;UID=3/;PARTIAL=10.5;EXPIRE=2026-12-01T10:00:00+01:00;URLAUTH=authuser",
        )
        .expect("url");
        assert_eq!(u.user, "a@b.test");
        assert_eq!(u.mailbox, "Work Stuff");
        assert_eq!(u.uidvalidity, Some(7));
        assert_eq!(u.partial, Some((10, Some(5))));
        assert_eq!(u.expire, Some(1_796_115_600));
        assert_eq!(u.access, Access::AuthUser);
        assert_eq!(u.verifier, None);
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in [
            "http://a@b/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://b/INBOX/;UID=1;URLAUTH=anonymous",
            "imap://a@b/INBOX;URLAUTH=anonymous",
            "imap://a@b/INBOX/;UID=0;URLAUTH=anonymous",
            "imap://a@b/INBOX/;UID=1",
            "imap://a@b/INBOX/;UID=1;URLAUTH=everyone",
            "imap://a@b/INBOX/;UID=1;URLAUTH=anonymous:internal",
            "imap://a@b/INBOX/;UID=1;EXPIRE=tomorrow;URLAUTH=anonymous",
            "imap://a@b/INBOX/;UID=1/;SECTION=1.x;URLAUTH=anonymous",
            "imap://a@b/%ZZ/;UID=1;URLAUTH=anonymous",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
