//! The tokens of the IMAP grammar (RFC 9051 9) over one whole command, as
//! cut by the [`crate::framer`]: literals are already inline.
//!
//! A [`Cursor`] never panics and never reads past its buffer; every method
//! returns `Err(&'static str)` naming what was expected.

/// Parse failure inside a command; the text becomes the `BAD` response.
pub type LexResult<T> = Result<T, &'static str>;

/// RFC 9051 9: ATOM-CHAR is any CHAR except atom-specials.
pub fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b"(){ %*\"\\]".contains(&b)
}

/// RFC 9051 9: ASTRING-CHAR = ATOM-CHAR / resp-specials.
pub fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// list-char = ATOM-CHAR / list-wildcards / resp-specials.
pub fn is_list_char(b: u8) -> bool {
    is_astring_char(b) || b == b'%' || b == b'*'
}

/// Tag characters: ASTRING-CHAR except "+".
pub fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// A read position in one command.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// True at the end of the command (the CRLF, or a bare LF).
    pub fn at_end(&self) -> bool {
        matches!(self.rest(), b"\r\n" | b"\n" | b"")
    }

    /// Consumes the final CRLF; anything else left is an error.
    pub fn end(&mut self) -> LexResult<()> {
        if self.at_end() {
            self.pos = self.buf.len();
            Ok(())
        } else {
            Err("unexpected characters at end of command")
        }
    }

    /// Consumes `b` or fails.
    pub fn expect(&mut self, b: u8, what: &'static str) -> LexResult<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(what)
        }
    }

    pub fn sp(&mut self) -> LexResult<()> {
        self.expect(b' ', "expected a space")
    }

    /// Consumes `b` if it is next.
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `word` (ASCII, case-insensitive) if next.
    pub fn eat_word(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if rest.len() >= word.len()
            && rest
                .get(..word.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// The longest run of bytes accepted by `f` (possibly empty).
    pub fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    /// An atom (1*ATOM-CHAR), as text.
    pub fn atom(&mut self) -> LexResult<&'a str> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err("expected an atom");
        }
        std::str::from_utf8(a).map_err(|_| "invalid atom")
    }

    /// A number (RFC 9051 9: number, up to 2^32-1).
    pub fn number(&mut self) -> LexResult<u32> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() || digits.len() > 10 {
            return Err("expected a number");
        }
        let mut n: u64 = 0;
        for d in digits {
            n = n * 10 + u64::from(d - b'0');
        }
        u32::try_from(n).map_err(|_| "number too large")
    }

    /// nz-number.
    pub fn nz_number(&mut self) -> LexResult<u32> {
        match self.number()? {
            0 => Err("expected a non-zero number"),
            n => Ok(n),
        }
    }

    /// number64 (RFC 9051 9), for sizes and mod-sequences.
    pub fn number64(&mut self) -> LexResult<u64> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() || digits.len() > 19 {
            return Err("expected a number");
        }
        let mut n: u64 = 0;
        for d in digits {
            n = n * 10 + u64::from(d - b'0');
        }
        Ok(n)
    }

    /// A quoted string (RFC 9051 9: quoted, UTF-8 allowed per RFC 9051).
    pub fn quoted(&mut self) -> LexResult<Vec<u8>> {
        self.expect(b'"', "expected a quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') | Some(0) => {
                    return Err("unterminated quoted string");
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err("bad escape in quoted string"),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A literal: `{n}` or `{n+}` (RFC 7888), CRLF, then n octets; with
    /// `binary`, also `~{n}` (literal8, RFC 3516).
    pub fn literal(&mut self, binary: bool) -> LexResult<Vec<u8>> {
        let is8 = binary && self.eat(b'~');
        self.expect(b'{', "expected a literal")?;
        let n = self.number()? as usize;
        self.eat(b'+');
        self.expect(b'}', "bad literal")?;
        if !self.eat_word("\r\n") {
            self.expect(b'\n', "literal must be followed by CRLF")?;
        }
        let data = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or("literal is shorter than announced")?;
        if !is8 && data.contains(&0) {
            return Err("NUL in literal");
        }
        self.pos += n;
        Ok(data.to_vec())
    }

    /// string = quoted / literal.
    pub fn string(&mut self) -> LexResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(false),
            _ => Err("expected a string"),
        }
    }

    /// astring = 1*ASTRING-CHAR / string.
    pub fn astring(&mut self) -> LexResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    Err("expected an astring")
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    /// An astring whose atom form may also hold 8-bit bytes: search
    /// strings, which clients send raw after `CHARSET UTF-8`.
    pub fn astring_8bit(&mut self) -> LexResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(|b| is_astring_char(b) || b >= 0x80);
                if a.is_empty() {
                    Err("expected an astring")
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    /// An astring that must be UTF-8.
    pub fn astring_utf8(&mut self) -> LexResult<String> {
        String::from_utf8(self.astring()?).map_err(|_| "invalid UTF-8")
    }

    /// nstring = string / NIL.
    pub fn nstring(&mut self) -> LexResult<Option<Vec<u8>>> {
        if self.eat_word("NIL") {
            Ok(None)
        } else {
            self.string().map(Some)
        }
    }

    /// list-mailbox = 1*list-char / string; with `eight_bit`, the atom
    /// form may also hold 8-bit octets (a UTF-8 session's raw names).
    pub fn list_mailbox(&mut self, eight_bit: bool) -> LexResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(|b| is_list_char(b) || (eight_bit && b >= 0x80));
                if a.is_empty() {
                    Err("expected a mailbox pattern")
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    /// A parenthesised, space-separated list; `item` parses one element.
    /// An empty list `()` is allowed when `allow_empty`.
    pub fn paren_list<T>(
        &mut self,
        allow_empty: bool,
        max: usize,
        mut item: impl FnMut(&mut Self) -> LexResult<T>,
    ) -> LexResult<Vec<T>> {
        self.expect(b'(', "expected '('")?;
        let mut out = Vec::new();
        if self.eat(b')') {
            return if allow_empty {
                Ok(out)
            } else {
                Err("empty list")
            };
        }
        loop {
            if out.len() >= max {
                return Err("list too long");
            }
            out.push(item(self)?);
            if self.eat(b')') {
                return Ok(out);
            }
            self.sp()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_is_read_inline_and_plus_form_accepted() {
        let mut c = Cursor::new(b"{3}\r\nabc {2+}\r\nde\r\n");
        assert_eq!(c.astring().unwrap(), b"abc");
        c.sp().unwrap();
        assert_eq!(c.astring().unwrap(), b"de");
        c.end().unwrap();
    }

    #[test]
    fn quoted_string_unescapes_and_rejects_crlf() {
        assert_eq!(Cursor::new(br#""a\"b\\c""#).quoted().unwrap(), br#"a"b\c"#);
        assert!(Cursor::new(b"\"ab\r\n\"").quoted().is_err());
    }

    #[test]
    fn numbers_are_bounded_to_32_bits() {
        assert_eq!(Cursor::new(b"4294967295").number(), Ok(u32::MAX));
        assert!(Cursor::new(b"4294967296").number().is_err());
        assert!(Cursor::new(b"0").nz_number().is_err());
    }
}
