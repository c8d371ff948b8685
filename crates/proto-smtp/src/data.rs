//! The DATA content stream, RFC 5321 4.1.1.4 (end of mail data) and 4.5.2
//! (transparency: dot-stuffing), with the SMTP smuggling defence of SPEC
//! section 1 and the CRLF canonical form of RFC 5321 2.3.8.
//!
//! The only end of data is CRLF "." CRLF, where the start of the stream
//! counts as following a CRLF. A bare LF or a lone CR never ends it: a
//! server that accepted `\n.\n` or `\r.\r` as the end would let a sender
//! smuggle a second message past a relay that does not. Inside the content
//! a bare LF or a lone CR becomes CRLF, so what we store is CRLF-canonical.
//!
//! The receiver is a byte-at-a-time state machine (with runs of ordinary
//! bytes copied in bulk), so any split of the input into chunks gives the
//! same result and no byte is looked at twice.

/// Whether the end of data has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStatus {
    /// Everything given was consumed; feed more.
    NeedMore,
    /// The terminating CRLF "." CRLF has been consumed.
    Done,
}

/// Where the receiver is in the line structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line. `real` is true after a real CRLF (or at the
    /// start of the stream), the only place a terminating dot may follow.
    LineStart { real: bool },
    /// Saw a dot at the start of a line; it is held back until we know
    /// whether it is stuffing, a lone-dot line or the terminator.
    Dot { real: bool },
    /// Saw CRLF "." CR: the terminator, if LF follows.
    DotCr,
    /// Inside a line.
    Middle,
    /// Saw a CR inside content: CRLF if LF follows, else a lone CR.
    Cr,
    /// The terminator has been consumed.
    Done,
}

/// Receives the content that follows a 354 reply.
#[derive(Debug, Clone)]
pub struct DataReceiver {
    max_size: usize,
    state: State,
    message: Vec<u8>,
    /// Octets handed out by [`DataReceiver::drain`]: they count against
    /// `max_size` as if still stored.
    drained: usize,
    size: u64,
    too_large: bool,
}

impl DataReceiver {
    /// A receiver that stores at most `max_size` octets of message.
    pub fn new(max_size: usize) -> Self {
        DataReceiver {
            max_size,
            state: State::LineStart { real: true },
            message: Vec::new(),
            drained: 0,
            size: 0,
            too_large: false,
        }
    }

    /// Hands out what is stored so far, so that a caller that writes a
    /// big message to disk as it arrives holds a bounded part of it
    /// (issue 19); the size limit still counts it.
    pub fn drain(&mut self) -> Vec<u8> {
        let out = std::mem::take(&mut self.message);
        self.drained = self.drained.saturating_add(out.len());
        out
    }

    /// Feeds bytes that follow the 354 reply. Consumes all of `input` while
    /// `NeedMore` (partial state such as a trailing "\r\n." or "\r" is kept
    /// inside); on `Done`, `consumed` stops right after the terminating
    /// ".\r\n" so pipelined commands after it stay with the caller.
    pub fn feed(&mut self, input: &[u8]) -> (usize, DataStatus) {
        let mut i = 0usize;
        while let Some(&byte) = input.get(i) {
            // Each arm either consumes `byte` (advance) or changes state and
            // looks at the same byte again; every re-look moves towards
            // Middle or LineStart, which consume, so each byte is looked at
            // a bounded number of times.
            let mut advance = true;
            match self.state {
                State::Done => return (i, DataStatus::Done),
                State::LineStart { real } => {
                    if byte == b'.' {
                        self.state = State::Dot { real };
                    } else {
                        self.state = State::Middle;
                        advance = false;
                    }
                }
                State::Middle => {
                    // Copy the run of ordinary bytes in one go: lines that
                    // end in a real CRLF and whose next line does not start
                    // with a dot need no state change, so the run goes on
                    // across them and is stored with one copy.
                    let rest = input.get(i..).unwrap_or_default();
                    let run = ordinary_run(rest);
                    if run > 0 {
                        self.store(rest.get(..run).unwrap_or_default());
                        i = i.saturating_add(run);
                        continue;
                    }
                    if byte == b'\r' {
                        self.state = State::Cr;
                    } else {
                        // A bare LF: normalise, and a dot after it is only
                        // stuffing, never a terminator.
                        self.store(b"\r\n");
                        self.state = State::LineStart { real: false };
                    }
                }
                State::Cr => {
                    self.store(b"\r\n");
                    if byte == b'\n' {
                        self.state = State::LineStart { real: true };
                    } else {
                        // A lone CR is a line break too, but not a real one.
                        self.state = State::LineStart { real: false };
                        advance = false;
                    }
                }
                State::Dot { real } => match byte {
                    b'\r' if real => self.state = State::DotCr,
                    b'\r' | b'\n' => {
                        // A lone "." line that cannot be the terminator: it
                        // is kept, not unstuffed into an empty line.
                        self.store(b".");
                        self.state = State::Middle;
                        advance = false;
                    }
                    _ => {
                        // Dot-stuffing (RFC 5321 4.5.2): drop the first dot.
                        self.state = State::Middle;
                        if byte == b'.' {
                            self.store(b".");
                        } else {
                            advance = false;
                        }
                    }
                },
                State::DotCr => {
                    if byte == b'\n' {
                        self.state = State::Done;
                        return (i.saturating_add(1), DataStatus::Done);
                    }
                    // CRLF "." CR x: a lone-dot line ended by a lone CR.
                    self.store(b".\r\n");
                    self.state = State::LineStart { real: false };
                    advance = false;
                }
            }
            if advance {
                i = i.saturating_add(1);
            }
        }
        if self.state == State::Done {
            (i, DataStatus::Done)
        } else {
            (i, DataStatus::NeedMore)
        }
    }

    /// Lowers the storage limit while receiving (the server's memory budget
    /// ran out): past it the receiver behaves as if the message were too
    /// large, dropping what it stored and scanning on for the end.
    pub fn limit_to(&mut self, max_size: usize) {
        self.max_size = self.max_size.min(max_size);
        if self.message.len().saturating_add(self.drained) > self.max_size {
            self.too_large = true;
            self.message = Vec::new();
        }
    }

    /// Octets stored so far (0 once discarding).
    pub fn stored(&self) -> usize {
        self.message.len()
    }

    /// True once the message has outgrown `max_size`: nothing more is stored
    /// (and what was stored is dropped), but the end is still looked for.
    pub fn too_large(&self) -> bool {
        self.too_large
    }

    /// Octets of the message as received, after dot-unstuffing and CRLF
    /// normalisation; counted even while discarding (RFC 1870 SIZE semantics).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True once the terminating CRLF "." CRLF has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The stored, CRLF-canonical, dot-unstuffed message. Empty when
    /// [`too_large`](Self::too_large): a truncated message must not be delivered.
    pub fn into_message(self) -> Vec<u8> {
        self.message
    }

    fn store(&mut self, bytes: &[u8]) {
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        self.size = self.size.saturating_add(len);
        if self.too_large {
            return;
        }
        let fits = self
            .message
            .len()
            .saturating_add(self.drained)
            .checked_add(bytes.len())
            .is_some_and(|total| total <= self.max_size);
        if fits {
            self.message.extend_from_slice(bytes);
        } else {
            self.too_large = true;
            self.message = Vec::new();
        }
    }
}

/// The length of the prefix of `rest` that the receiver stores as it is:
/// bytes that are neither CR nor LF, and CRLF pairs whose following byte is
/// present and is not a dot (so the next line is neither stuffed nor the
/// terminator). It stops before the first CR or LF that needs the state
/// machine: a bare LF, a lone CR, a CRLF at the end of the input or one
/// before a dot.
fn ordinary_run(rest: &[u8]) -> usize {
    let mut pos = 0usize;
    loop {
        let Some(tail) = rest.get(pos..) else {
            return rest.len();
        };
        let Some(p) = memchr::memchr2(b'\r', b'\n', tail) else {
            return rest.len();
        };
        let at = pos.saturating_add(p);
        let crlf = rest.get(at..at.saturating_add(2)) == Some(b"\r\n".as_slice());
        match rest.get(at.saturating_add(2)) {
            Some(&next) if crlf && next != b'.' => pos = at.saturating_add(2),
            _ => return at,
        }
    }
}

/// Streaming line-ending canonicaliser for content that arrives in chunks
/// (BDAT, RFC 3030): a CR at the end of one chunk may pair with an LF at
/// the start of the next, so the pending CR is carried between calls.
#[derive(Debug, Clone, Default)]
pub struct CrlfNormalizer {
    pending_cr: bool,
}

impl CrlfNormalizer {
    /// A normaliser with nothing pending.
    pub fn new() -> Self {
        CrlfNormalizer::default()
    }

    /// Appends `input` to `out` with bare LF and lone CR turned into CRLF.
    /// A CR at the very end is held back until the next call or [`finish`](Self::finish).
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            match (self.pending_cr, b) {
                (true, b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    self.pending_cr = false;
                }
                (true, b'\r') => out.extend_from_slice(b"\r\n"),
                (true, b) => {
                    out.extend_from_slice(b"\r\n");
                    out.push(b);
                    self.pending_cr = false;
                }
                (false, b'\r') => self.pending_cr = true,
                (false, b'\n') => out.extend_from_slice(b"\r\n"),
                (false, b) => out.push(b),
            }
        }
    }

    /// Flushes a trailing lone CR as CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.extend_from_slice(b"\r\n");
            self.pending_cr = false;
        }
    }
}

/// Canonical CRLF: bare LF -> CRLF, lone CR -> CRLF, CRLF kept. Used for BDAT
/// content; for content split across chunks use [`CrlfNormalizer`].
pub fn canonicalize_line_endings(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut normalizer = CrlfNormalizer::new();
    normalizer.push(data, &mut out);
    normalizer.finish(&mut out);
    out
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
