//! SMTP commands, RFC 5321 4.1.1 (syntax) and 4.1.2 (arguments), plus
//! SEND, SOML and SAML from RFC 821 3.4 (they take `FROM:<path>` exactly as
//! MAIL does), BDAT (RFC 3030 2), STARTTLS (RFC 3207 4) and AUTH (RFC 4954 4).
//!
//! Tolerance follows SPEC section 1: verbs in any case, spaces after the
//! colon of `FROM:`/`TO:`, a path without angle brackets, and trailing
//! white space. Anything the grammar does not allow is a typed
//! [`CommandError`] that knows its own reply.

use crate::address::{AddressError, Path, parse_path};
use crate::params::{
    MailParams, RcptParams, parse_mail_params, parse_rcpt_params, write_mail_params,
    write_rcpt_params,
};
use crate::reply::{EnhancedCode, Reply};

/// RFC 4422 3.1: a SASL mechanism name is 1 to 20 characters.
pub const MAX_SASL_MECHANISM: usize = 20;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail(MailFrom),
    Send(MailFrom),
    Soml(MailFrom),
    Saml(MailFrom),
    Rcpt(RcptTo),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Vrfy(String),
    Expn(String),
    Help(Option<String>),
    Noop,
    Quit,
    StartTls,
    /// The mechanism is upper-cased; the initial response is as sent
    /// (base64, or `=` for an empty one, RFC 4954 4).
    Auth {
        mechanism: String,
        initial_response: Option<String>,
    },
}

/// `FROM:<reverse-path> [params]` of MAIL, SEND, SOML and SAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    pub path: ReversePath,
    pub params: MailParams,
}

/// RFC 5321 4.1.2 `Reverse-path = Path / "<>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Path(Path),
}

/// `TO:<forward-path> [params]` of RCPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    pub path: Path,
    pub params: RcptParams,
}

/// Why a command line was refused. Each maps to one reply (SPEC section 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// 500 5.5.2: not a command we know (e.g. `HELLO`, an empty line, garbage).
    UnknownCommand,
    /// 501 5.5.2 with the text, e.g. `Syntax: MAIL FROM:<address>`.
    Syntax(&'static str),
    /// 501 5.1.7: a bad reverse-path.
    BadSenderAddress(&'static str),
    /// 501 5.1.3: a bad forward-path.
    BadRecipientAddress(&'static str),
    /// 555 5.5.4: an unknown MAIL/RCPT parameter, or a bad value of a known one.
    UnknownParameter(String),
}

impl CommandError {
    /// The reply the session sends for this error.
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::UnknownCommand => Reply::new(
                500,
                Some(EnhancedCode(5, 5, 2)),
                "Error: command not recognized",
            ),
            CommandError::Syntax(text) => Reply::new(501, Some(EnhancedCode(5, 5, 2)), *text),
            CommandError::BadSenderAddress(text) => {
                Reply::new(501, Some(EnhancedCode(5, 1, 7)), *text)
            }
            CommandError::BadRecipientAddress(text) => {
                Reply::new(501, Some(EnhancedCode(5, 1, 3)), *text)
            }
            CommandError::UnknownParameter(keyword) => Reply::new(
                555,
                Some(EnhancedCode(5, 5, 4)),
                format!("Unsupported option: {keyword}"),
            ),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::UnknownCommand => f.write_str("unknown command"),
            CommandError::Syntax(t)
            | CommandError::BadSenderAddress(t)
            | CommandError::BadRecipientAddress(t) => f.write_str(t),
            CommandError::UnknownParameter(k) => write!(f, "unsupported parameter {k}"),
        }
    }
}

impl std::error::Error for CommandError {}

/// The verbs we know, found before the rest of the line is decoded so that
/// garbage is `UnknownCommand` rather than a UTF-8 complaint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Helo,
    Ehlo,
    Mail,
    Send,
    Soml,
    Saml,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Vrfy,
    Expn,
    Help,
    Noop,
    Quit,
    StartTls,
    Auth,
}

const VERBS: [(&str, Verb); 17] = [
    ("HELO", Verb::Helo),
    ("EHLO", Verb::Ehlo),
    ("MAIL", Verb::Mail),
    ("SEND", Verb::Send),
    ("SOML", Verb::Soml),
    ("SAML", Verb::Saml),
    ("RCPT", Verb::Rcpt),
    ("DATA", Verb::Data),
    ("BDAT", Verb::Bdat),
    ("RSET", Verb::Rset),
    ("VRFY", Verb::Vrfy),
    ("EXPN", Verb::Expn),
    ("HELP", Verb::Help),
    ("NOOP", Verb::Noop),
    ("QUIT", Verb::Quit),
    ("STARTTLS", Verb::StartTls),
    ("AUTH", Verb::Auth),
];

/// Which command a path belongs to, to pick 5.1.7 or 5.1.3 (RFC 3463 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    Sender,
    Recipient,
}

/// Parses one command line, given without its CRLF.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    // RFC 5321 4.1.1: the verb is followed by SP; trailing white space is
    // tolerated because clients and people at telnet send it.
    let line = line.trim_ascii_end();
    let (verb_bytes, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (
            line.get(..i).unwrap_or_default(),
            line.get(i..).unwrap_or_default(),
        ),
        None => (line, &b""[..]),
    };
    let verb = VERBS
        .iter()
        .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(verb_bytes))
        .map(|&(_, verb)| verb)
        .ok_or(CommandError::UnknownCommand)?;
    let args = std::str::from_utf8(rest)
        .map_err(|_| CommandError::Syntax("Invalid UTF-8"))?
        .trim_start_matches([' ', '\t']);

    match verb {
        Verb::Helo => hello_name(args, "Syntax: HELO hostname").map(Command::Helo),
        Verb::Ehlo => hello_name(args, "Syntax: EHLO hostname").map(Command::Ehlo),
        Verb::Mail => mail_from(args, "Syntax: MAIL FROM:<address>").map(Command::Mail),
        Verb::Send => mail_from(args, "Syntax: SEND FROM:<address>").map(Command::Send),
        Verb::Soml => mail_from(args, "Syntax: SOML FROM:<address>").map(Command::Soml),
        Verb::Saml => mail_from(args, "Syntax: SAML FROM:<address>").map(Command::Saml),
        Verb::Rcpt => rcpt_to(args).map(Command::Rcpt),
        Verb::Data => no_args(args, "Syntax: DATA", Command::Data),
        Verb::Bdat => bdat(args),
        Verb::Rset => no_args(args, "Syntax: RSET", Command::Rset),
        Verb::Vrfy => required(args, "Syntax: VRFY address").map(Command::Vrfy),
        Verb::Expn => required(args, "Syntax: EXPN mailing-list").map(Command::Expn),
        Verb::Help => Ok(Command::Help((!args.is_empty()).then(|| args.to_string()))),
        // RFC 5321 4.1.1.9: NOOP may carry a string, which is ignored.
        Verb::Noop => Ok(Command::Noop),
        Verb::Quit => no_args(args, "Syntax: QUIT", Command::Quit),
        Verb::StartTls => no_args(args, "Syntax: STARTTLS", Command::StartTls),
        Verb::Auth => auth(args),
    }
}

fn no_args(args: &str, syntax: &'static str, command: Command) -> Result<Command, CommandError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax(syntax))
    }
}

fn required(args: &str, syntax: &'static str) -> Result<String, CommandError> {
    if args.is_empty() {
        Err(CommandError::Syntax(syntax))
    } else {
        Ok(args.to_string())
    }
}

/// HELO/EHLO take a domain or address literal; like Postfix we accept any
/// non-empty argument (a bare IP is common) and let the session judge it,
/// except control characters: no domain or address literal contains one
/// (RFC 5321 4.1.2), and the name is echoed in the reply and copied into
/// the Received field (4.4), where a lone CR or a NUL would forge a header
/// or break the reply.
fn hello_name(args: &str, syntax: &'static str) -> Result<String, CommandError> {
    let name = required(args, syntax)?;
    if name.chars().any(char::is_control) {
        return Err(CommandError::Syntax(
            "Control characters not allowed in hostname",
        ));
    }
    Ok(name)
}

/// `MAIL FROM:<reverse-path> [SP Mail-parameters]` (RFC 5321 4.1.1.2).
fn mail_from(args: &str, syntax: &'static str) -> Result<MailFrom, CommandError> {
    let (path_text, params_text) = split_path(args, "FROM:", syntax)?;
    let path = match parse_path(path_text) {
        Ok(Some(path)) => ReversePath::Path(path),
        Ok(None) => ReversePath::Null,
        Err(e) => return Err(address_error(e, PathKind::Sender)),
    };
    let params = parse_mail_params(params_text).map_err(CommandError::UnknownParameter)?;
    Ok(MailFrom { path, params })
}

/// `RCPT TO:<forward-path> [SP Rcpt-parameters]` (RFC 5321 4.1.1.3).
fn rcpt_to(args: &str) -> Result<RcptTo, CommandError> {
    let (path_text, params_text) = split_path(args, "TO:", "Syntax: RCPT TO:<address>")?;
    let path = match parse_path(path_text) {
        Ok(Some(path)) => path,
        Ok(None) => return Err(CommandError::BadRecipientAddress("Null recipient address")),
        Err(e) => return Err(address_error(e, PathKind::Recipient)),
    };
    let params = parse_rcpt_params(params_text).map_err(CommandError::UnknownParameter)?;
    Ok(RcptTo { path, params })
}

/// Splits `FROM:<path> params` into the path text and the parameter text.
fn split_path<'a>(
    args: &'a str,
    prefix: &str,
    syntax: &'static str,
) -> Result<(&'a str, &'a str), CommandError> {
    let head = args
        .get(..prefix.len())
        .ok_or(CommandError::Syntax(syntax))?;
    if !head.eq_ignore_ascii_case(prefix) {
        return Err(CommandError::Syntax(syntax));
    }
    let rest = args
        .get(prefix.len()..)
        .unwrap_or_default()
        .trim_start_matches([' ', '\t']);
    if rest.is_empty() {
        return Err(CommandError::Syntax(syntax));
    }
    let end = path_end(rest);
    let (path, params) = rest.split_at(end);
    // The parameters must be separated from the path by white space.
    if !(params.is_empty() || params.starts_with([' ', '\t'])) {
        return Ok((rest, ""));
    }
    Ok((path, params))
}

/// Byte index where the path at the start of `s` ends: after the `>` that
/// closes it (outside any quoted string), or at the first white space for a
/// bare path. A `<` without its `>` runs to the first white space, so the
/// address parser sees it unbalanced and refuses it.
fn path_end(s: &str) -> usize {
    let mut in_quotes = false;
    let mut escaped = false;
    let bracketed = s.starts_with('<');
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '>' if bracketed && !in_quotes => return i.saturating_add(1),
            ' ' | '\t' if !in_quotes && !bracketed => return i,
            _ => {}
        }
    }
    if bracketed {
        // No closing bracket: stop at the first white space outside quotes
        // so that the parameters are not taken as part of the path.
        return s.find([' ', '\t']).unwrap_or(s.len());
    }
    s.len()
}

fn address_error(e: AddressError, kind: PathKind) -> CommandError {
    let text = match e {
        AddressError::Syntax => "Bad address syntax",
        AddressError::LocalTooLong => "Local part too long",
        AddressError::DomainTooLong => "Domain too long",
        AddressError::PathTooLong => "Path too long",
    };
    match kind {
        PathKind::Sender => CommandError::BadSenderAddress(match e {
            AddressError::Syntax => "Bad sender address syntax",
            _ => text,
        }),
        PathKind::Recipient => CommandError::BadRecipientAddress(match e {
            AddressError::Syntax => "Bad recipient address syntax",
            _ => text,
        }),
    }
}

/// `BDAT SP chunk-size [SP end-marker]` (RFC 3030 2).
fn bdat(args: &str) -> Result<Command, CommandError> {
    const SYNTAX: &str = "Syntax: BDAT size [LAST]";
    let mut words = args.split([' ', '\t']).filter(|w| !w.is_empty());
    let size = words
        .next()
        .filter(|w| w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|w| w.parse::<u64>().ok())
        .ok_or(CommandError::Syntax(SYNTAX))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax(SYNTAX)),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax(SYNTAX));
    }
    Ok(Command::Bdat { size, last })
}

/// `AUTH SP mechanism [SP initial-response]` (RFC 4954 4).
fn auth(args: &str) -> Result<Command, CommandError> {
    const SYNTAX: &str = "Syntax: AUTH mechanism [initial-response]";
    let mut words = args.split([' ', '\t']).filter(|w| !w.is_empty());
    let mechanism = words
        .next()
        .filter(|m| {
            m.len() <= MAX_SASL_MECHANISM
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or(CommandError::Syntax(SYNTAX))?
        .to_ascii_uppercase();
    let initial_response = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(CommandError::Syntax(SYNTAX));
    }
    Ok(Command::Auth {
        mechanism,
        initial_response,
    })
}

impl Command {
    /// The verb, upper-case, for logs and HELP.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Mail(_) => "MAIL",
            Command::Send(_) => "SEND",
            Command::Soml(_) => "SOML",
            Command::Saml(_) => "SAML",
            Command::Rcpt(_) => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }

    /// Serialises back to a command line (without CRLF) for round-trip tests
    /// and the future SMTP client.
    pub fn to_line(&self) -> String {
        let verb = self.verb();
        match self {
            Command::Helo(arg) | Command::Ehlo(arg) | Command::Vrfy(arg) | Command::Expn(arg) => {
                format!("{verb} {arg}")
            }
            Command::Help(Some(topic)) => format!("{verb} {topic}"),
            Command::Mail(m) | Command::Send(m) | Command::Soml(m) | Command::Saml(m) => {
                let mut line = format!("{verb} FROM:");
                match &m.path {
                    ReversePath::Null => line.push_str("<>"),
                    ReversePath::Path(p) => write_path(p, &mut line),
                }
                write_mail_params(&m.params, &mut line);
                line
            }
            Command::Rcpt(r) => {
                let mut line = format!("{verb} TO:");
                write_path(&r.path, &mut line);
                write_rcpt_params(&r.params, &mut line);
                line
            }
            Command::Bdat { size, last } => {
                if *last {
                    format!("{verb} {size} LAST")
                } else {
                    format!("{verb} {size}")
                }
            }
            Command::Auth {
                mechanism,
                initial_response: Some(ir),
            } => format!("{verb} {mechanism} {ir}"),
            Command::Auth {
                mechanism,
                initial_response: None,
            } => format!("{verb} {mechanism}"),
            Command::Help(None)
            | Command::Data
            | Command::Rset
            | Command::Noop
            | Command::Quit
            | Command::StartTls => verb.to_string(),
        }
    }
}

fn write_path(path: &Path, out: &mut String) {
    out.push('<');
    out.push_str(&path.address());
    out.push('>');
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
