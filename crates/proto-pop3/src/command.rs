//! POP3 commands: RFC 1939 5-7 (USER, PASS, STAT, LIST, RETR, DELE, NOOP,
//! RSET, TOP, QUIT, UIDL), RFC 2449 5 (CAPA), RFC 2595 4 (STLS) and
//! RFC 5034 4 (AUTH). APOP (RFC 1939 7) is recognised and refused: it needs
//! a plaintext-equivalent secret and we store argon2 hashes.
//!
//! Keywords are case-insensitive (RFC 1939 3); numbers are decimal digits
//! only and checked for overflow, so `RETR -1` or a twenty-digit number is
//! a typed error, never a panic or a wrapped value.

use std::fmt;
use std::num::NonZeroU32;

use crate::response::Response;

/// RFC 4422 3.1: a SASL mechanism name is 1 to 20 characters.
pub const MAX_SASL_MECHANISM: usize = 20;

/// A message number (RFC 1939 5): 1 for the first message of the maildrop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgNum(NonZeroU32);

impl MsgNum {
    /// None for 0, which names no message.
    pub fn new(n: u32) -> Option<MsgNum> {
        NonZeroU32::new(n).map(MsgNum)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The 0-based position in the maildrop.
    pub fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }
}

impl fmt::Display for MsgNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The start of a SASL exchange (RFC 5034 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthStart {
    /// Upper-cased, 1 to 20 of `A-Z 0-9 - _`.
    pub mechanism: String,
    /// The initial response as sent: base64, or `=` for an empty one.
    pub initial_response: Option<String>,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// Everything after `PASS `: RFC 1939 7 lets a password contain spaces.
    Pass(String),
    Stat,
    List(Option<MsgNum>),
    Retr(MsgNum),
    Dele(MsgNum),
    Noop,
    Rset,
    Top {
        msg: MsgNum,
        lines: u64,
    },
    Quit,
    Uidl(Option<MsgNum>),
    Capa,
    Stls,
    /// `AUTH` alone lists the mechanisms (RFC 5034 4, as most servers do).
    Auth(Option<AuthStart>),
}

impl Command {
    /// The keyword, upper-case, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Top { .. } => "TOP",
            Command::Quit => "QUIT",
            Command::Uidl(_) => "UIDL",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Auth(_) => "AUTH",
        }
    }
}

/// Why a command line was refused. Each maps to one `-ERR` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a keyword we know (also an empty line or binary garbage).
    Unknown,
    /// A keyword we know and do not implement, with its reason.
    NotSupported(&'static str),
    /// The arguments do not fit the command; the text shows the syntax.
    Syntax(&'static str),
    /// A number that is not 1*DIGIT, is zero where a message is meant, or
    /// overflows.
    BadNumber(&'static str),
}

impl CommandError {
    /// The response the session sends for this error.
    pub fn response(&self) -> Response {
        match self {
            CommandError::Unknown => Response::err("Unknown command"),
            CommandError::NotSupported(why) => Response::err(*why),
            CommandError::Syntax(text) | CommandError::BadNumber(text) => Response::err(*text),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown => f.write_str("unknown command"),
            CommandError::NotSupported(t)
            | CommandError::Syntax(t)
            | CommandError::BadNumber(t) => f.write_str(t),
        }
    }
}

impl std::error::Error for CommandError {}

/// Parses one command line, given without its CRLF.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (
            line.get(..i).unwrap_or_default(),
            line.get(i.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (line, &b""[..]),
    };
    // RFC 1939 3: keywords are three or four characters.
    if !(3..=4).contains(&verb.len()) || !verb.iter().all(u8::is_ascii_alphabetic) {
        return Err(CommandError::Unknown);
    }
    let mut upper = [0u8; 4];
    for (u, v) in upper.iter_mut().zip(verb) {
        *u = v.to_ascii_uppercase();
    }
    let verb = upper.get(..verb.len()).unwrap_or_default();
    // Arguments are printable; a control character (NUL, ESC...) in one
    // is garbage rather than a name or a password.
    let rest = std::str::from_utf8(rest).map_err(|_| CommandError::Syntax("Invalid UTF-8"))?;
    if rest.chars().any(char::is_control) {
        return Err(CommandError::Syntax("Control characters in arguments"));
    }
    if verb == b"PASS" {
        if rest.is_empty() {
            return Err(CommandError::Syntax("Syntax: PASS password"));
        }
        return Ok(Command::Pass(rest.to_string()));
    }
    let args: Vec<&str> = rest.split_ascii_whitespace().collect();
    let command = match verb {
        b"USER" => match args.as_slice() {
            [name] => Command::User((*name).to_string()),
            _ => return Err(CommandError::Syntax("Syntax: USER name")),
        },
        b"STAT" => no_args(&args, Command::Stat, "Syntax: STAT")?,
        b"LIST" => Command::List(optional_msg(&args, "Syntax: LIST [msg]")?),
        b"RETR" => Command::Retr(one_msg(&args, "Syntax: RETR msg")?),
        b"DELE" => Command::Dele(one_msg(&args, "Syntax: DELE msg")?),
        b"NOOP" => no_args(&args, Command::Noop, "Syntax: NOOP")?,
        b"RSET" => no_args(&args, Command::Rset, "Syntax: RSET")?,
        b"QUIT" => no_args(&args, Command::Quit, "Syntax: QUIT")?,
        b"UIDL" => Command::Uidl(optional_msg(&args, "Syntax: UIDL [msg]")?),
        b"CAPA" => no_args(&args, Command::Capa, "Syntax: CAPA")?,
        b"STLS" => no_args(&args, Command::Stls, "Syntax: STLS")?,
        b"TOP" => match args.as_slice() {
            [msg, lines] => Command::Top {
                msg: msg_num(msg)?,
                lines: number(lines).map_err(|_| {
                    CommandError::BadNumber("Syntax: TOP msg lines (lines: 0 or more)")
                })?,
            },
            _ => return Err(CommandError::Syntax("Syntax: TOP msg lines")),
        },
        b"AUTH" => Command::Auth(auth(&args)?),
        b"APOP" => {
            return Err(CommandError::NotSupported(
                "APOP is not supported: use USER/PASS or AUTH PLAIN",
            ));
        }
        _ => return Err(CommandError::Unknown),
    };
    Ok(command)
}

fn no_args(args: &[&str], command: Command, syntax: &'static str) -> Result<Command, CommandError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax(syntax))
    }
}

fn one_msg(args: &[&str], syntax: &'static str) -> Result<MsgNum, CommandError> {
    match args {
        [msg] => msg_num(msg),
        _ => Err(CommandError::Syntax(syntax)),
    }
}

fn optional_msg(args: &[&str], syntax: &'static str) -> Result<Option<MsgNum>, CommandError> {
    match args {
        [] => Ok(None),
        [msg] => msg_num(msg).map(Some),
        _ => Err(CommandError::Syntax(syntax)),
    }
}

const BAD_MSG: &str = "Invalid message number: a positive integer is required";

fn msg_num(s: &str) -> Result<MsgNum, CommandError> {
    number(s)
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .and_then(MsgNum::new)
        .ok_or(CommandError::BadNumber(BAD_MSG))
}

/// `1*DIGIT` without sign, checked for overflow.
fn number(s: &str) -> Result<u64, ()> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    s.bytes().try_fold(0u64, |n, d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(())
    })
}

fn auth(args: &[&str]) -> Result<Option<AuthStart>, CommandError> {
    const SYNTAX: &str = "Syntax: AUTH [mechanism [initial-response]]";
    let (mechanism, initial) = match args {
        [] => return Ok(None),
        [m] => (*m, None),
        [m, r] => (*m, Some(*r)),
        _ => return Err(CommandError::Syntax(SYNTAX)),
    };
    let valid = !mechanism.is_empty()
        && mechanism.len() <= MAX_SASL_MECHANISM
        && mechanism
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(CommandError::Syntax(SYNTAX));
    }
    Ok(Some(AuthStart {
        mechanism: mechanism.to_ascii_uppercase(),
        initial_response: initial.map(str::to_string),
    }))
}

impl fmt::Display for Command {
    /// The command line as a client sends it, without CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |f: &mut fmt::Formatter<'_>, verb: &str, n: &Option<MsgNum>| match n {
            Some(n) => write!(f, "{verb} {n}"),
            None => f.write_str(verb),
        };
        match self {
            Command::User(name) => write!(f, "USER {name}"),
            Command::Pass(pw) => write!(f, "PASS {pw}"),
            Command::Stat => f.write_str("STAT"),
            Command::List(n) => opt(f, "LIST", n),
            Command::Retr(n) => write!(f, "RETR {n}"),
            Command::Dele(n) => write!(f, "DELE {n}"),
            Command::Noop => f.write_str("NOOP"),
            Command::Rset => f.write_str("RSET"),
            Command::Top { msg, lines } => write!(f, "TOP {msg} {lines}"),
            Command::Quit => f.write_str("QUIT"),
            Command::Uidl(n) => opt(f, "UIDL", n),
            Command::Capa => f.write_str("CAPA"),
            Command::Stls => f.write_str("STLS"),
            Command::Auth(None) => f.write_str("AUTH"),
            Command::Auth(Some(a)) => match &a.initial_response {
                Some(r) => write!(f, "AUTH {} {r}", a.mechanism),
                None => write!(f, "AUTH {}", a.mechanism),
            },
        }
    }
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
