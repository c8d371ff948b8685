//! Status lines: `+OK` / `-ERR` with text (RFC 1939 3), optionally led by a
//! response code in brackets (RFC 2449 8: `[IN-USE]`, `[LOGIN-DELAY]`;
//! RFC 3206: `[SYS/TEMP]`, `[SYS/PERM]`, `[AUTH]`), and the `+ ` SASL
//! continuation (RFC 5034 4). [`parse_response`] is the client side, for
//! tests.

use std::fmt;

use crate::Parsed;

/// RFC 2449 4: a status line is at most 512 octets, CRLF included. Longer
/// text is cut, on a character boundary.
pub const MAX_STATUS_LINE: usize = 512;

/// A response code, RFC 2449 8 (`resp-level *("/" resp-level)`, each level
/// `1*(ALPHA / DIGIT / "-")`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespCode {
    /// RFC 2449 8.1.1: the maildrop is locked by another session.
    InUse,
    /// RFC 2449 8.1.2: logging in again too soon.
    LoginDelay,
    /// RFC 3206 4: a temporary failure of the server; try again later.
    SysTemp,
    /// RFC 3206 4: a permanent failure of the server.
    SysPerm,
    /// RFC 3206 5: the credentials are wrong (or the login is refused).
    Auth,
    /// Any other well-formed code, as sent (from a parsed response).
    Other(String),
}

impl RespCode {
    fn as_str(&self) -> &str {
        match self {
            RespCode::InUse => "IN-USE",
            RespCode::LoginDelay => "LOGIN-DELAY",
            RespCode::SysTemp => "SYS/TEMP",
            RespCode::SysPerm => "SYS/PERM",
            RespCode::Auth => "AUTH",
            RespCode::Other(s) => s,
        }
    }

    /// Parses the text between the brackets; None if it is not a code.
    pub fn parse(s: &str) -> Option<RespCode> {
        let valid = s.split('/').all(|level| {
            !level.is_empty()
                && level
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !valid {
            return None;
        }
        let known = [
            RespCode::InUse,
            RespCode::LoginDelay,
            RespCode::SysTemp,
            RespCode::SysPerm,
            RespCode::Auth,
        ];
        Some(
            known
                .into_iter()
                .find(|c| c.as_str().eq_ignore_ascii_case(s))
                .unwrap_or_else(|| RespCode::Other(s.to_ascii_uppercase())),
        )
    }
}

impl fmt::Display for RespCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub ok: bool,
    pub code: Option<RespCode>,
    pub text: String,
}

/// A status line a client cannot parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Neither `+OK` nor `-ERR`, or longer than [`MAX_STATUS_LINE`].
    Malformed,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed POP3 status line")
    }
}

impl std::error::Error for ResponseError {}

impl Response {
    pub fn ok(text: impl Into<String>) -> Response {
        Response {
            ok: true,
            code: None,
            text: text.into(),
        }
    }

    pub fn err(text: impl Into<String>) -> Response {
        Response {
            ok: false,
            code: None,
            text: text.into(),
        }
    }

    pub fn err_code(code: RespCode, text: impl Into<String>) -> Response {
        Response {
            ok: false,
            code: Some(code),
            text: text.into(),
        }
    }

    /// Writes `+OK text\r\n` / `-ERR [CODE] text\r\n`, at most
    /// [`MAX_STATUS_LINE`] octets; CR and LF in the text become spaces so
    /// nothing can pose as a further line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(if self.ok { b"+OK" } else { b"-ERR" });
        if let Some(code) = &self.code {
            out.extend_from_slice(b" [");
            out.extend_from_slice(code.as_str().as_bytes());
            out.push(b']');
        }
        if !self.text.is_empty() {
            out.push(b' ');
            // Room for the text: the limit less what is written and CRLF.
            let room = MAX_STATUS_LINE
                .saturating_sub(out.len().saturating_sub(start))
                .saturating_sub(2);
            let mut end = self.text.len().min(room);
            while !self.text.is_char_boundary(end) {
                end = end.saturating_sub(1);
            }
            let text = self.text.get(..end).unwrap_or_default();
            out.extend(text.bytes().map(|b| match b {
                b'\r' | b'\n' => b' ',
                b => b,
            }));
        }
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// Writes the SASL continuation `+ challenge\r\n` (RFC 5034 4); PLAIN's
/// challenge is empty, which gives `+ \r\n`.
pub fn write_continuation(challenge_base64: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(challenge_base64.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Parses one status line from the start of `buf` (client side). A bare
/// LF is tolerated.
pub fn parse_response(buf: &[u8]) -> Result<Parsed<Response>, ResponseError> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() >= MAX_STATUS_LINE {
            return Err(ResponseError::Malformed);
        }
        return Ok(Parsed::Incomplete);
    };
    if lf >= MAX_STATUS_LINE {
        return Err(ResponseError::Malformed);
    }
    let line = buf.get(..lf).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| ResponseError::Malformed)?;
    let (ok, rest) = if let Some(rest) = line.strip_prefix("+OK") {
        (true, rest)
    } else if let Some(rest) = line.strip_prefix("-ERR") {
        (false, rest)
    } else {
        return Err(ResponseError::Malformed);
    };
    let rest = match rest.strip_prefix(' ') {
        Some(r) => r,
        None if rest.is_empty() => rest,
        None => return Err(ResponseError::Malformed),
    };
    let (code, text) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((inside, after)) => match RespCode::parse(inside) {
            Some(code) => (Some(code), after.strip_prefix(' ').unwrap_or(after)),
            None => (None, rest),
        },
        None => (None, rest),
    };
    Ok(Parsed::Complete(
        Response {
            ok,
            code,
            text: text.to_string(),
        },
        lf.saturating_add(1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Response {
        match parse_response(bytes) {
            Ok(Parsed::Complete(r, n)) => {
                assert_eq!(n, bytes.len());
                r
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc_1939_examples_write_exactly() {
        assert_eq!(Response::ok("2 320").to_bytes(), b"+OK 2 320\r\n");
        assert_eq!(
            Response::err("no such message, only 2 messages in maildrop").to_bytes(),
            b"-ERR no such message, only 2 messages in maildrop\r\n"
        );
        assert_eq!(Response::ok("").to_bytes(), b"+OK\r\n");
    }

    #[test]
    fn response_codes_are_bracketed_after_the_status() {
        assert_eq!(
            Response::err_code(RespCode::Auth, "Authentication failed.").to_bytes(),
            b"-ERR [AUTH] Authentication failed.\r\n"
        );
        assert_eq!(
            Response::err_code(RespCode::SysTemp, "").to_bytes(),
            b"-ERR [SYS/TEMP]\r\n"
        );
        assert_eq!(
            Response::err_code(RespCode::InUse, "x").to_bytes(),
            b"-ERR [IN-USE] x\r\n"
        );
    }

    #[test]
    fn crlf_in_text_cannot_inject_a_line() {
        assert_eq!(Response::err("a\r\n+OK b").to_bytes(), b"-ERR a  +OK b\r\n");
    }

    #[test]
    fn status_line_is_cut_to_512_octets_on_a_char_boundary() {
        let r = Response::err("é".repeat(1000));
        let bytes = r.to_bytes();
        assert!(bytes.len() <= MAX_STATUS_LINE, "{}", bytes.len());
        assert!(bytes.ends_with(b"\r\n"));
        assert!(std::str::from_utf8(&bytes).is_ok());
    }

    #[test]
    fn continuation_is_plus_space() {
        let mut out = Vec::new();
        write_continuation("", &mut out);
        assert_eq!(out, b"+ \r\n");
    }

    #[test]
    fn unknown_but_well_formed_codes_parse_as_other() {
        let r = parse(b"-ERR [SYS/TEMP/DISK] full\r\n");
        assert_eq!(r.code, Some(RespCode::Other("SYS/TEMP/DISK".into())));
        assert_eq!(r.text, "full");
        let r = parse(b"-ERR [not a code] x\r\n");
        assert_eq!(r.code, None);
        assert_eq!(r.text, "[not a code] x");
    }

    #[test]
    fn malformed_and_partial_lines() {
        assert_eq!(parse_response(b"+OK 1"), Ok(Parsed::Incomplete));
        assert_eq!(parse_response(b""), Ok(Parsed::Incomplete));
        for bad in [&b"OK\r\n"[..], b"+OKAY\r\n", b"-ERRx\r\n", b"+ \r\n"] {
            assert_eq!(
                parse_response(bad),
                Err(ResponseError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_response(&[b'+'; MAX_STATUS_LINE]),
            Err(ResponseError::Malformed)
        );
    }

    #[test]
    fn responses_round_trip() {
        // Deterministic xorshift64: no dependency, same cases every run.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let codes = [
            None,
            Some(RespCode::Auth),
            Some(RespCode::InUse),
            Some(RespCode::LoginDelay),
            Some(RespCode::SysTemp),
            Some(RespCode::SysPerm),
            Some(RespCode::Other("X-OURS/SUB".into())),
        ];
        let alphabet = "ab 9.[]é-";
        let chars: Vec<char> = alphabet.chars().collect();
        for _ in 0..2000 {
            let code = codes[(next() % codes.len() as u64) as usize].clone();
            let mut text: String = (0..next() % 30)
                .map(|_| chars[(next() % chars.len() as u64) as usize])
                .collect();
            // A leading space or bracket would be read back differently;
            // the server never writes one.
            text = text.trim().trim_start_matches('[').to_string();
            let r = Response {
                ok: next() % 2 == 0,
                code,
                text,
            };
            let bytes = r.to_bytes();
            assert_eq!(parse(&bytes), r, "{:?}", String::from_utf8_lossy(&bytes));
            for cut in 0..bytes.len() {
                assert_eq!(parse_response(&bytes[..cut]), Ok(Parsed::Incomplete));
            }
        }
    }
}
