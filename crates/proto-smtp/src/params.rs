//! MAIL and RCPT parameters, RFC 5321 4.1.2 (`esmtp-param`), with the
//! extensions that define them: SIZE (RFC 1870 3), BODY=7BIT|8BITMIME
//! (RFC 6152 2), BODY=BINARYMIME (RFC 3030 3), SMTPUTF8 (RFC 6531 3.4),
//! RET, ENVID, NOTIFY and ORCPT (RFC 3461 4), and AUTH (RFC 4954 5).
//!
//! Any unknown keyword, a repeated keyword or a bad value is refused with the
//! keyword, which the command layer answers with `555 5.5.4` (RFC 5321 4.1.1.11).
//! Whether an extension is enabled (e.g. DSN) is the session's decision.

/// RFC 1870 3: `size-value ::= 1*20DIGIT`.
pub const MAX_SIZE_DIGITS: usize = 20;

/// RFC 3461 4.4: an ENVID is at most 100 characters (as xtext).
pub const MAX_ENVID: usize = 100;

/// RFC 3461 4.2: an ORCPT value is at most 500 characters.
pub const MAX_ORCPT: usize = 500;

/// Longest keyword echoed back in a 555 reply, so that a reply line stays
/// well under RFC 5321 4.5.3.1.5's 512 octets whatever the client sent.
pub const MAX_ECHOED_KEYWORD: usize = 64;

/// Parameters of MAIL FROM (and SEND/SOML/SAML FROM).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// RFC 1870 SIZE: the client's estimate of the message size in octets.
    pub size: Option<u64>,
    /// RFC 6152 / RFC 3030 BODY.
    pub body: Option<Body>,
    /// RFC 6531 SMTPUTF8.
    pub smtputf8: bool,
    /// RFC 3461 RET.
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID, still xtext-encoded as received.
    pub envid: Option<String>,
    /// RFC 4954 AUTH: the xtext-encoded mailbox as received, or `<>`.
    pub auth: Option<String>,
}

/// The BODY parameter, RFC 6152 2 and RFC 3030 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// The RET parameter, RFC 3461 4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// Parameters of RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParams {
    /// RFC 3461 4.1 NOTIFY, upper-cased: `NEVER` or a comma list of
    /// `SUCCESS`, `FAILURE`, `DELAY`.
    pub notify: Option<String>,
    /// RFC 3461 4.2 ORCPT as received: `addr-type;xtext`.
    pub orcpt: Option<String>,
}

impl Body {
    /// The keyword value as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
            Body::BinaryMime => "BINARYMIME",
        }
    }
}

impl Ret {
    /// The keyword value as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// One `esmtp-param`: a keyword and its optional value.
struct Param<'a> {
    keyword: &'a str,
    value: Option<&'a str>,
}

/// Splits the text after the path into parameters. The error is the
/// offending keyword for the 555 reply.
fn split_params(text: &str) -> impl Iterator<Item = Result<Param<'_>, String>> {
    text.split([' ', '\t'])
        .filter(|t| !t.is_empty())
        .map(|token| {
            let (keyword, value) = match token.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (token, None),
            };
            // RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
            let keyword_ok = keyword.starts_with(|c: char| c.is_ascii_alphanumeric())
                && keyword
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-');
            // esmtp-value = 1*(%d33-60 / %d62-126), widened to UTF-8 by RFC 6531.
            let value_ok = value.is_none_or(|v| !v.is_empty() && !v.chars().any(char::is_control));
            if keyword_ok && value_ok {
                Ok(Param { keyword, value })
            } else {
                Err(echo(keyword))
            }
        })
}

/// The keyword as echoed in an error, bounded in length.
fn echo(keyword: &str) -> String {
    keyword.chars().take(MAX_ECHOED_KEYWORD).collect()
}

/// Parses the parameters of MAIL FROM.
pub(crate) fn parse_mail_params(text: &str) -> Result<MailParams, String> {
    let mut params = MailParams::default();
    for param in split_params(text) {
        let Param { keyword, value } = param?;
        let bad = || echo(keyword);
        let upper = keyword.to_ascii_uppercase();
        match (upper.as_str(), value) {
            ("SIZE", Some(v)) if params.size.is_none() => {
                params.size = Some(parse_size(v).ok_or_else(bad)?);
            }
            ("BODY", Some(v)) if params.body.is_none() => {
                params.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(bad()),
                });
            }
            // A repeated SMTPUTF8 changes nothing, and Python's smtplib
            // sends it twice when the caller also names it: tolerate it.
            ("SMTPUTF8", None) => params.smtputf8 = true,
            ("RET", Some(v)) if params.ret.is_none() => {
                params.ret = Some(match v.to_ascii_uppercase().as_str() {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Hdrs,
                    _ => return Err(bad()),
                });
            }
            ("ENVID", Some(v)) if params.envid.is_none() => {
                if v.len() > MAX_ENVID || !is_xtext(v) {
                    return Err(bad());
                }
                params.envid = Some(v.to_string());
            }
            ("AUTH", Some(v)) if params.auth.is_none() => {
                if v != "<>" && !is_xtext(v) {
                    return Err(bad());
                }
                params.auth = Some(v.to_string());
            }
            _ => return Err(bad()),
        }
    }
    Ok(params)
}

/// Parses the parameters of RCPT TO.
pub(crate) fn parse_rcpt_params(text: &str) -> Result<RcptParams, String> {
    let mut params = RcptParams::default();
    for param in split_params(text) {
        let Param { keyword, value } = param?;
        let bad = || echo(keyword);
        let upper = keyword.to_ascii_uppercase();
        match (upper.as_str(), value) {
            ("NOTIFY", Some(v)) if params.notify.is_none() => {
                let v = v.to_ascii_uppercase();
                if !is_notify(&v) {
                    return Err(bad());
                }
                params.notify = Some(v);
            }
            ("ORCPT", Some(v)) if params.orcpt.is_none() => {
                if v.len() > MAX_ORCPT || !is_orcpt(v) {
                    return Err(bad());
                }
                params.orcpt = Some(v.to_string());
            }
            _ => return Err(bad()),
        }
    }
    Ok(params)
}

/// RFC 1870 3: 1*20DIGIT, and it must fit our counter.
fn parse_size(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > MAX_SIZE_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// RFC 3461 4: `xtext = *( xchar / hexchar )`; `xchar` is `!`..`~` except
/// `+` and `=`; `hexchar` is `+` and two upper-case hex digits.
fn is_xtext(v: &str) -> bool {
    xtext_with(v, |_| false)
}

/// xtext, also allowing the extra characters `extra` accepts.
fn xtext_with(v: &str, extra: impl Fn(char) -> bool) -> bool {
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '+' => {
                let hex = |c: Option<char>| c.is_some_and(|c| matches!(c, '0'..='9' | 'A'..='F'));
                if !(hex(chars.next()) && hex(chars.next())) {
                    return false;
                }
            }
            '!'..='~' if c != '=' => {}
            c if extra(c) => {}
            _ => return false,
        }
    }
    true
}

/// Decodes RFC 3461 4 xtext (`+XX` is the octet XX); None for text that
/// is not xtext or does not decode to UTF-8. RFC 6533 3 lets ORCPT's
/// `utf-8` address carry UTF-8 as it is, which passes through unchanged.
pub fn xtext_decode(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        if b == b'+' {
            let hex = |c: Option<u8>| match c {
                Some(c @ b'0'..=b'9') => Some(c - b'0'),
                Some(c @ b'A'..=b'F') => Some(c - b'A' + 10),
                _ => None,
            };
            let hi = hex(bytes.next())?;
            let lo = hex(bytes.next())?;
            out.push(hi * 16 + lo);
        } else if b == b'=' || b.is_ascii_control() || b == b' ' {
            return None;
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes text as RFC 3461 4 xtext: `+`, `=`, controls, space and
/// non-ASCII octets as `+XX`, the rest as it is.
pub fn xtext_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The NOTIFY values of RFC 3461 4.1 as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    /// The stored NOTIFY value (upper case, as parsed), or None for a
    /// recipient without one: FAILURE, the default (RFC 3461 4.1 lets a
    /// server choose FAILURE or FAILURE,DELAY; delay warnings are asked
    /// for, not imposed).
    pub fn of(value: Option<&str>) -> Notify {
        match value {
            None => Notify {
                failure: true,
                ..Notify::default()
            },
            Some(v) => {
                let mut n = Notify::default();
                for item in v.split(',') {
                    match item.trim().to_ascii_uppercase().as_str() {
                        "SUCCESS" => n.success = true,
                        "FAILURE" => n.failure = true,
                        "DELAY" => n.delay = true,
                        _ => {}
                    }
                }
                n
            }
        }
    }

    /// NOTIFY=NEVER: no DSN at all.
    pub fn never(self) -> bool {
        !self.success && !self.failure && !self.delay
    }
}

/// RFC 3461 4.1: `"NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" )`.
fn is_notify(upper: &str) -> bool {
    upper == "NEVER"
        || upper
            .split(',')
            .all(|item| matches!(item, "SUCCESS" | "FAILURE" | "DELAY"))
}

/// RFC 3461 4.2: `addr-type ";" xtext`; RFC 6533 3 lets the address carry
/// UTF-8 for the `utf-8` type, so non-ASCII is accepted there.
fn is_orcpt(v: &str) -> bool {
    let Some((addr_type, addr)) = v.split_once(';') else {
        return false;
    };
    let type_ok = addr_type.starts_with(|c: char| c.is_ascii_alphanumeric())
        && addr_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    type_ok && !addr.is_empty() && xtext_with(addr, |c| !c.is_ascii() && !c.is_control())
}

/// Appends ` KEY=value` for each MAIL parameter, in a fixed order.
pub(crate) fn write_mail_params(params: &MailParams, out: &mut String) {
    if let Some(size) = params.size {
        out.push_str(&format!(" SIZE={size}"));
    }
    if let Some(body) = params.body {
        out.push_str(" BODY=");
        out.push_str(body.as_str());
    }
    if params.smtputf8 {
        out.push_str(" SMTPUTF8");
    }
    if let Some(ret) = params.ret {
        out.push_str(" RET=");
        out.push_str(ret.as_str());
    }
    if let Some(envid) = &params.envid {
        out.push_str(" ENVID=");
        out.push_str(envid);
    }
    if let Some(auth) = &params.auth {
        out.push_str(" AUTH=");
        out.push_str(auth);
    }
}

/// Appends ` KEY=value` for each RCPT parameter, in a fixed order.
pub(crate) fn write_rcpt_params(params: &RcptParams, out: &mut String) {
    if let Some(notify) = &params.notify {
        out.push_str(" NOTIFY=");
        out.push_str(notify);
    }
    if let Some(orcpt) = &params.orcpt {
        out.push_str(" ORCPT=");
        out.push_str(orcpt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_mail_parameters_parse() {
        let p = parse_mail_params(
            "SIZE=1000 body=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ314159+2B AUTH=e+3Dmc2@x",
        )
        .unwrap();
        assert_eq!(
            p,
            MailParams {
                size: Some(1000),
                body: Some(Body::EightBitMime),
                smtputf8: true,
                ret: Some(Ret::Hdrs),
                envid: Some("QQ314159+2B".into()),
                auth: Some("e+3Dmc2@x".into()),
            }
        );
    }

    #[test]
    fn empty_parameter_text_gives_defaults() {
        assert_eq!(parse_mail_params(""), Ok(MailParams::default()));
        assert_eq!(parse_rcpt_params("  "), Ok(RcptParams::default()));
    }

    #[test]
    fn body_values_from_rfc_6152_and_3030() {
        for (v, b) in [
            ("7BIT", Body::SevenBit),
            ("8BITMIME", Body::EightBitMime),
            ("BINARYMIME", Body::BinaryMime),
        ] {
            assert_eq!(
                parse_mail_params(&format!("BODY={v}")).unwrap().body,
                Some(b)
            );
        }
    }

    #[test]
    fn auth_null_mailbox_is_accepted() {
        assert_eq!(
            parse_mail_params("AUTH=<>").unwrap().auth.as_deref(),
            Some("<>")
        );
    }

    #[test]
    fn bad_or_duplicate_mail_parameters_name_the_keyword() {
        for (text, keyword) in [
            ("FOO=1", "FOO"),
            ("SIZE=abc", "SIZE"),
            ("SIZE=", "SIZE"),
            ("SIZE", "SIZE"),
            ("SIZE=99999999999999999999", "SIZE"),
            ("SIZE=000000000000000000001", "SIZE"),
            ("SIZE=1 size=2", "size"),
            ("BODY=9BIT", "BODY"),
            ("SMTPUTF8=yes", "SMTPUTF8"),
            ("RET=ALL", "RET"),
            ("ENVID=a=b", "ENVID"),
            ("ENVID=a+2b", "ENVID"),
            ("AUTH=+", "AUTH"),
            ("NOTIFY=NEVER", "NOTIFY"),
            ("-X=1", "-X"),
        ] {
            assert_eq!(parse_mail_params(text), Err(keyword.to_string()), "{text}");
        }
        assert!(parse_mail_params("SMTPUTF8 smtputf8").is_ok_and(|p| p.smtputf8));
        let long_envid = format!("ENVID={}", "a".repeat(MAX_ENVID + 1));
        assert_eq!(parse_mail_params(&long_envid), Err("ENVID".into()));
    }

    #[test]
    fn size_of_u64_max_fits() {
        let text = format!("SIZE={}", u64::MAX);
        assert_eq!(parse_mail_params(&text).unwrap().size, Some(u64::MAX));
    }

    #[test]
    fn rcpt_parameters_parse_and_notify_is_upper_cased() {
        let p = parse_rcpt_params("notify=success,delay ORCPT=rfc822;Bob+40x.org").unwrap();
        assert_eq!(p.notify.as_deref(), Some("SUCCESS,DELAY"));
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;Bob+40x.org"));
        assert!(parse_rcpt_params("ORCPT=utf-8;jöran@x").is_ok());
    }

    #[test]
    fn bad_rcpt_parameters_name_the_keyword() {
        for (text, keyword) in [
            ("NOTIFY=NEVER,SUCCESS", "NOTIFY"),
            ("NOTIFY=", "NOTIFY"),
            ("NOTIFY=SOMETIMES", "NOTIFY"),
            ("NOTIFY=DELAY NOTIFY=DELAY", "NOTIFY"),
            ("ORCPT=noaddrtype", "ORCPT"),
            ("ORCPT=rfc822;", "ORCPT"),
            ("SIZE=10", "SIZE"),
        ] {
            assert_eq!(parse_rcpt_params(text), Err(keyword.to_string()), "{text}");
        }
    }

    #[test]
    fn xtext_round_trips_and_decodes_the_rfc_3461_examples() {
        // RFC 3461 4.2's ORCPT example: "Bob@Example.COM" needs no escape;
        // 4.4's ENVID example "QQ314159" neither; "+2B" is a plus sign.
        assert_eq!(xtext_decode("QQ314159+2B").as_deref(), Some("QQ314159+"));
        assert_eq!(
            xtext_decode("Bob@Example.COM").as_deref(),
            Some("Bob@Example.COM")
        );
        assert_eq!(xtext_decode("a+3Db").as_deref(), Some("a=b"));
        for bad in ["a+2", "a+2b", "a=b", "a b", "+ZZ"] {
            assert_eq!(xtext_decode(bad), None, "{bad}");
        }
        for text in ["plain", "a+b=c d", "jöran@x", "+", "\u{7f}"] {
            let enc = xtext_encode(text);
            assert!(is_xtext(&enc), "{enc}");
            assert_eq!(xtext_decode(&enc).as_deref(), Some(text));
        }
        assert_eq!(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn notify_defaults_to_failure_and_never_is_nothing() {
        let d = Notify::of(None);
        assert!(d.failure && !d.success && !d.delay);
        assert!(Notify::of(Some("NEVER")).never());
        let n = Notify::of(Some("SUCCESS,DELAY"));
        assert!(n.success && n.delay && !n.failure && !n.never());
    }

    #[test]
    fn echoed_keyword_is_bounded() {
        let text = "K".repeat(1000);
        assert_eq!(
            parse_mail_params(&text).unwrap_err().len(),
            MAX_ECHOED_KEYWORD
        );
    }
}
