//! Replies, RFC 5321 4.2 (reply lines, multi-line replies 4.2.1), with
//! enhanced status codes from RFC 3463 carried on every line as RFC 2034 3
//! asks. The server writes them; [`parse_reply`] is the client side, for
//! tests and the future outbound client.

use crate::Parsed;

/// RFC 5321 4.5.3.1.5: a reply line is at most 512 octets including CRLF.
/// Our own replies stay below it; see [`MAX_REPLY_LINE_ACCEPTED`] for input.
pub const MAX_REPLY_LINE: usize = 512;

/// Longest reply line [`parse_reply`] accepts, including CRLF. RFC 5321
/// 4.5.3.1.5 allows 512, but RFC 5321 4.5.3.1 asks receivers to be liberal
/// and real servers overshoot; this still bounds what a client buffers.
pub const MAX_REPLY_LINE_ACCEPTED: usize = 4096;

/// Most lines [`parse_reply`] accepts in one multi-line reply. RFC 5321
/// sets no limit; an EHLO reply has a few dozen lines at most, so this only
/// stops a hostile server from making a client buffer without bound.
pub const MAX_REPLY_LINES: usize = 1000;

/// An enhanced status code `class.subject.detail`, RFC 3463 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode(pub u8, pub u16, pub u16);

impl std::fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A reply: a three-digit code, an optional enhanced code and one or more
/// lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    /// Never empty: a reply has at least one (possibly empty) line.
    pub lines: Vec<String>,
}

/// A reply that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// Not `3DIGIT [("-" / SP) text] CRLF`, codes that differ between lines,
    /// or beyond the limits above.
    Malformed,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed SMTP reply")
    }
}

impl std::error::Error for ReplyError {}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply (RFC 5321 4.2.1); no lines is one empty line.
    pub fn multi(code: u16, enhanced: Option<EnhancedCode>, mut lines: Vec<String>) -> Self {
        if lines.is_empty() {
            lines.push(String::new());
        }
        Reply {
            code,
            enhanced,
            lines,
        }
    }

    /// Writes `"250-first\r\n250-second\r\n250 last\r\n"`; with an enhanced code
    /// each line is `"250-2.1.0 text"` (RFC 2034 3: on every line). An empty
    /// text gives `"250 2.0.0"` / `"250"`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let empty = [String::new()];
        let lines = if self.lines.is_empty() {
            &empty[..]
        } else {
            &self.lines[..]
        };
        let count = lines.len();
        for (i, text) in lines.iter().enumerate() {
            let last = i.saturating_add(1) == count;
            // Digits written by hand: this runs for every reply of every
            // session, and `format!` was a visible share of it (issue 18).
            push_padded(out, u32::from(self.code), 3);
            if !last {
                out.push(b'-');
            }
            let mut first = true;
            if let Some(enhanced) = self.enhanced {
                if last {
                    out.push(b' ');
                }
                push_padded(out, u32::from(enhanced.0), 1);
                out.push(b'.');
                push_padded(out, u32::from(enhanced.1), 1);
                out.push(b'.');
                push_padded(out, u32::from(enhanced.2), 1);
                first = false;
            }
            if !text.is_empty() {
                if last || !first {
                    out.push(b' ');
                }
                // A CR or LF in the text would end the reply early and let
                // whatever follows pose as another reply: never send one.
                out.extend(text.bytes().map(|b| match b {
                    b'\r' | b'\n' => b' ',
                    b => b,
                }));
            } else if last && first && self.code == 334 {
                // RFC 4954 4: continue-req = "334" SP [base64] CRLF; an
                // empty challenge still has its space (msmtp insists).
                out.push(b' ');
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The reply as wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// True for 2yz and 3yz replies (RFC 5321 4.2.1).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// Appends `n` in decimal, left-padded with zeros to `width` digits.
fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut digits = [0u8; 10];
    let mut len = 0usize;
    let mut rest = n;
    while let Some(slot) = digits.get_mut(len) {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
        len += 1;
        if rest == 0 && len >= width {
            break;
        }
    }
    out.extend(digits.get(..len).unwrap_or_default().iter().rev());
}

/// Parses one possibly multi-line reply from the start of `buf`.
///
/// Lines end in CRLF (a bare LF is tolerated). An enhanced code at the start
/// of a line is recognised when its class digit matches the reply's (2.x.x
/// for 2yz and so on) and taken from the first line; as [`Reply::write_to`]
/// puts it on every line, it is stripped from each line that carries it.
pub fn parse_reply(buf: &[u8]) -> Result<Parsed<Reply>, ReplyError> {
    let mut offset = 0usize;
    let mut code = None;
    let mut enhanced = None;
    let mut lines = Vec::new();
    loop {
        let rest = buf.get(offset..).unwrap_or_default();
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            // Judge what we have so far, so garbage fails early rather than
            // waiting for more input that would not help.
            if rest.len() >= MAX_REPLY_LINE_ACCEPTED {
                return Err(ReplyError::Malformed);
            }
            check_prefix(rest, code)?;
            return Ok(Parsed::Incomplete);
        };
        if lf >= MAX_REPLY_LINE_ACCEPTED || lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::Malformed);
        }
        let line = rest.get(..lf).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        offset = offset.saturating_add(lf).saturating_add(1);

        let (line_code, more, text) = split_line(line)?;
        if code.is_some_and(|c| c != line_code) {
            return Err(ReplyError::Malformed);
        }
        code = Some(line_code);
        let (line_enhanced, text) = split_enhanced(line_code, text);
        if lines.is_empty() {
            enhanced = line_enhanced;
        }
        let text = match (enhanced, line_enhanced) {
            (Some(_), Some(_)) => text,
            // Keep the whole text when the code is not one we strip.
            _ => line.get(4..).unwrap_or_default(),
        };
        lines.push(String::from_utf8_lossy(text).into_owned());
        if !more {
            return Ok(Parsed::Complete(
                Reply {
                    code: line_code,
                    enhanced,
                    lines,
                },
                offset,
            ));
        }
    }
}

/// Checks that an incomplete line is still a plausible start of a reply line.
fn check_prefix(partial: &[u8], code: Option<u16>) -> Result<(), ReplyError> {
    for (i, &b) in partial.iter().take(4).enumerate() {
        let ok = match i {
            0 => matches!(b, b'1'..=b'5'),
            1 | 2 => b.is_ascii_digit(),
            _ => matches!(b, b' ' | b'-' | b'\r'),
        };
        if !ok {
            return Err(ReplyError::Malformed);
        }
    }
    if let (Some(code), Some(prefix)) = (code, partial.get(..3))
        && prefix != format!("{code:03}").as_bytes()
    {
        return Err(ReplyError::Malformed);
    }
    Ok(())
}

/// `Reply-code [ ("-" / SP) textstring ]`: returns the code, whether more
/// lines follow, and the text after the separator.
fn split_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
    let digits = line.get(..3).ok_or(ReplyError::Malformed)?;
    let mut code = 0u16;
    for (i, &d) in digits.iter().enumerate() {
        let valid = if i == 0 {
            matches!(d, b'1'..=b'5')
        } else {
            d.is_ascii_digit()
        };
        if !valid {
            return Err(ReplyError::Malformed);
        }
        code = code * 10 + u16::from(d - b'0');
    }
    match line.get(3) {
        None => Ok((code, false, &[])),
        Some(b' ') => Ok((code, false, line.get(4..).unwrap_or_default())),
        Some(b'-') => Ok((code, true, line.get(4..).unwrap_or_default())),
        Some(_) => Err(ReplyError::Malformed),
    }
}

/// RFC 3463 2: `class "." subject "." detail`, with 1 to 3 digits each,
/// followed by SP or the end of the line. The class must match the reply code.
fn split_enhanced(code: u16, text: &[u8]) -> (Option<EnhancedCode>, &[u8]) {
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    let word = text.get(..end).unwrap_or_default();
    let after = text.get(end.saturating_add(1)..).unwrap_or_default();
    let mut parts = word.split(|&b| b == b'.');
    let number = |part: Option<&[u8]>| -> Option<u16> {
        let part = part?;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let parsed = (|| {
        let class = u8::try_from(number(parts.next())?).ok()?;
        let subject = number(parts.next())?;
        let detail = number(parts.next())?;
        if parts.next().is_some() || u16::from(class) != code / 100 {
            return None;
        }
        Some(EnhancedCode(class, subject, detail))
    })();
    match parsed {
        Some(enhanced) => (Some(enhanced), after),
        None => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_334_challenge_keeps_its_space() {
        let mut out = Vec::new();
        Reply::new(334, None, "").write_to(&mut out);
        assert_eq!(out, b"334 \r\n");
        let mut out = Vec::new();
        Reply::new(250, None, "").write_to(&mut out);
        assert_eq!(out, b"250\r\n");
    }

    fn parse_complete(bytes: &[u8]) -> (Reply, usize) {
        match parse_reply(bytes) {
            Ok(Parsed::Complete(reply, n)) => (reply, n),
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let r = Reply::new(250, Some(EnhancedCode(2, 1, 0)), "Ok");
        assert_eq!(r.to_bytes(), b"250 2.1.0 Ok\r\n");
    }

    #[test]
    fn codes_are_written_as_the_formatter_would() {
        let r = Reply::new(550, Some(EnhancedCode(5, 7, 23)), "SPF");
        assert_eq!(r.to_bytes(), b"550 5.7.23 SPF\r\n");
        let r = Reply::new(451, Some(EnhancedCode(4, 100, 999)), "x");
        assert_eq!(r.to_bytes(), b"451 4.100.999 x\r\n");
        // Three digits always (RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39).
        assert_eq!(Reply::new(42, None, "x").to_bytes(), b"042 x\r\n");
        assert_eq!(
            Reply::new(250, Some(EnhancedCode(2, 0, 0)), "Ok").to_bytes(),
            format!("{:03} {} Ok\r\n", 250, EnhancedCode(2, 0, 0)).into_bytes()
        );
    }

    #[test]
    fn enhanced_code_is_on_every_line() {
        let r = Reply::multi(
            250,
            Some(EnhancedCode(2, 0, 0)),
            vec!["first".into(), "second".into(), "last".into()],
        );
        assert_eq!(
            r.to_bytes(),
            b"250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 last\r\n"
        );
    }

    #[test]
    fn multi_line_without_enhanced_code() {
        let r = Reply::multi(
            250,
            None,
            vec![
                "foo.com greets bar.com".into(),
                "8BITMIME".into(),
                "HELP".into(),
            ],
        );
        assert_eq!(
            r.to_bytes(),
            b"250-foo.com greets bar.com\r\n250-8BITMIME\r\n250 HELP\r\n"
        );
    }

    #[test]
    fn empty_text_has_no_trailing_space() {
        assert_eq!(
            Reply::new(250, Some(EnhancedCode(2, 0, 0)), "").to_bytes(),
            b"250 2.0.0\r\n"
        );
        assert_eq!(Reply::new(250, None, "").to_bytes(), b"250\r\n");
        assert_eq!(Reply::multi(250, None, vec![]).to_bytes(), b"250\r\n");
        assert_eq!(
            Reply::multi(250, None, vec![String::new(), String::new()]).to_bytes(),
            b"250-\r\n250\r\n"
        );
    }

    #[test]
    fn crlf_in_text_cannot_inject_a_reply() {
        let r = Reply::new(550, None, "no\r\n250 ok");
        assert_eq!(r.to_bytes(), b"550 no  250 ok\r\n");
    }

    #[test]
    fn enhanced_code_displays_dotted() {
        assert_eq!(EnhancedCode(5, 1, 1).to_string(), "5.1.1");
    }

    #[test]
    fn positive_is_2xx_and_3xx() {
        assert!(Reply::new(250, None, "").is_positive());
        assert!(Reply::new(354, None, "").is_positive());
        assert!(!Reply::new(421, None, "").is_positive());
        assert!(!Reply::new(550, None, "").is_positive());
    }

    #[test]
    fn rfc_5321_d1_ehlo_reply_parses() {
        let wire = b"250-foo.com greets bar.com\r\n250-8BITMIME\r\n250-SIZE\r\n250-DSN\r\n250 HELP\r\nMAIL";
        let (reply, n) = parse_complete(wire);
        assert_eq!(n, wire.len() - 4);
        assert_eq!(reply.code, 250);
        assert_eq!(reply.enhanced, None);
        assert_eq!(
            reply.lines,
            ["foo.com greets bar.com", "8BITMIME", "SIZE", "DSN", "HELP"]
        );
    }

    #[test]
    fn enhanced_code_is_only_recognised_for_its_class() {
        let (reply, _) = parse_complete(b"550 2.0.0 odd\r\n");
        assert_eq!(reply.enhanced, None);
        assert_eq!(reply.lines, ["2.0.0 odd"]);
        let (reply, _) = parse_complete(b"550 5.1.1 <x@y>: unknown\r\n");
        assert_eq!(reply.enhanced, Some(EnhancedCode(5, 1, 1)));
        assert_eq!(reply.lines, ["<x@y>: unknown"]);
    }

    #[test]
    fn partial_reply_is_incomplete() {
        assert_eq!(parse_reply(b""), Ok(Parsed::Incomplete));
        assert_eq!(parse_reply(b"25"), Ok(Parsed::Incomplete));
        assert_eq!(parse_reply(b"250-a\r\n250"), Ok(Parsed::Incomplete));
        assert_eq!(parse_reply(b"250 ok\r"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn malformed_replies_are_refused() {
        for bad in [
            &b"abc\r\n"[..],
            b"25\r\n",
            b"250x\r\n",
            b"650 no\r\n",
            b"250-a\r\n251 b\r\n",
            b"250-a\r\n251",
            b"hello",
        ] {
            assert_eq!(parse_reply(bad), Err(ReplyError::Malformed), "{bad:?}");
        }
        let long = vec![b'2'; MAX_REPLY_LINE_ACCEPTED];
        assert_eq!(parse_reply(&long), Err(ReplyError::Malformed));
    }

    #[test]
    fn bare_lf_reply_is_tolerated() {
        let (reply, n) = parse_complete(b"220 ready\n");
        assert_eq!((reply.code, n), (220, 10));
        assert_eq!(reply.lines, ["ready"]);
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::new(220, None, "mx.example ESMTP"),
            Reply::new(250, Some(EnhancedCode(2, 1, 0)), "Ok"),
            Reply::new(250, Some(EnhancedCode(2, 0, 0)), ""),
            Reply::new(250, None, ""),
            Reply::new(354, None, "End data with <CR><LF>.<CR><LF>"),
            Reply::new(
                452,
                Some(EnhancedCode(4, 3, 1)),
                "Insufficient system storage",
            ),
            Reply::new(555, Some(EnhancedCode(5, 5, 4)), "Unsupported option: FOO"),
            Reply::multi(
                250,
                None,
                vec!["mx".into(), "PIPELINING".into(), "SIZE 10240000".into()],
            ),
            Reply::multi(
                250,
                Some(EnhancedCode(2, 1, 5)),
                vec!["a".into(), String::new(), "c  d ".into()],
            ),
            Reply::multi(
                214,
                Some(EnhancedCode(2, 0, 0)),
                vec!["Commands:".into(), "  HELO EHLO".into()],
            ),
            Reply::new(
                553,
                Some(EnhancedCode(5, 1, 4)),
                "Ambiguous; one of: <a@x> <b@x>",
            ),
        ];
        for reply in replies {
            let bytes = reply.to_bytes();
            assert_eq!(
                parse_complete(&bytes),
                (reply.clone(), bytes.len()),
                "{reply:?}"
            );
        }
    }
    #[test]
    fn random_replies_round_trip_and_split_parses_are_incomplete() {
        // Deterministic xorshift64: no dependency, same cases every run.
        let mut state = 0x853C_49E6_748F_EA9Bu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"ab .9-<>@";
        for _ in 0..2000 {
            let class = [2u16, 3, 4, 5][(next() % 4) as usize];
            let code = class * 100 + (next() % 60) as u16;
            let enhanced = (class != 3 && next() % 2 == 0)
                .then(|| EnhancedCode(class as u8, (next() % 1000) as u16, (next() % 1000) as u16));
            let lines: Vec<String> = (0..1 + next() % 4)
                .map(|_| {
                    (0..next() % 12)
                        .map(|_| char::from(alphabet[(next() % alphabet.len() as u64) as usize]))
                        .collect()
                })
                .collect();
            let reply = Reply::multi(code, enhanced, lines);
            let bytes = reply.to_bytes();
            assert_eq!(parse_complete(&bytes), (reply.clone(), bytes.len()));
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse_reply(&bytes[..cut]),
                    Ok(Parsed::Incomplete),
                    "{reply:?} {cut}"
                );
            }
        }
    }
}
