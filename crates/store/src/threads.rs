//! Thread ids (RFC 8474 5.2 THREADID), assigned when a message is stored.
//!
//! A message joins the thread of the first of its account's messages
//! whose Message-ID it names in References or In-Reply-To (or that has
//! its own Message-ID: a second copy of one message), else it starts a
//! thread of its own, numbered by its body. The id is kept per (account,
//! body): COPY and MOVE share the body, RENAME keeps the entries, so it
//! never changes. A reply that arrives before the message it answers
//! starts its own thread (threads are not merged afterwards).

/// Most message ids of References read per message (the newest ones):
/// bounds the lookups of one delivery (RFC 5322 sets no limit; RFC 5256
/// THREAD=REFERENCES reads all, per command).
pub const MAX_THREAD_REFS: usize = 32;
/// The header section read for them: a longer one is cut here.
pub const MAX_THREAD_HEADER: usize = 256 * 1024;
/// Longest message id kept.
pub const MAX_MESSAGE_ID: usize = 998;

/// The message's own Message-ID and the ids it refers to (In-Reply-To,
/// then References newest first), each `<...>` without the brackets,
/// lower-cased domain and all (ids are compared as strings, RFC 5322
/// 3.6.4; case differences are mistakes of software, not new ids).
pub fn thread_refs(raw: &[u8]) -> (Option<String>, Vec<String>) {
    let head = raw.get(..raw.len().min(MAX_THREAD_HEADER)).unwrap_or(raw);
    let mut own = None;
    let mut in_reply_to = Vec::new();
    let mut references = Vec::new();
    for (name, value) in fields(head) {
        if name.eq_ignore_ascii_case("message-id") && own.is_none() {
            own = ids(&value).into_iter().next();
        } else if name.eq_ignore_ascii_case("in-reply-to") && in_reply_to.is_empty() {
            in_reply_to = ids(&value);
        } else if name.eq_ignore_ascii_case("references") && references.is_empty() {
            references = ids(&value);
        }
    }
    let mut refs: Vec<String> = Vec::new();
    for id in in_reply_to
        .into_iter()
        .take(1)
        .chain(references.into_iter().rev())
    {
        if refs.len() >= MAX_THREAD_REFS {
            break;
        }
        if !refs.contains(&id) && Some(&id) != own.as_ref() {
            refs.push(id);
        }
    }
    (own, refs)
}

/// The header fields, unfolded, up to the empty line.
fn fields(head: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(text.trim());
            }
            continue;
        }
        if let Some((name, value)) = text.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// Every `<id>` in a field value.
fn ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = rest.get(open + 1..).unwrap_or("");
        let Some(close) = after.find('>') else { break };
        let id = after.get(..close).unwrap_or("").trim();
        if !id.is_empty() && id.len() <= MAX_MESSAGE_ID && !id.contains(char::is_whitespace) {
            out.push(id.to_lowercase());
        }
        rest = after.get(close + 1..).unwrap_or("");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_in_reply_to_are_read_newest_first() {
        let raw = b"Message-ID: <C@x>\r\nReferences: <A@x>\r\n <B@X>\r\nIn-Reply-To: <B@x> (comment)\r\nSubject: s\r\n\r\nReferences: <body@x>\r\n";
        let (own, refs) = thread_refs(raw);
        assert_eq!(own.as_deref(), Some("c@x"));
        assert_eq!(refs, ["b@x", "a@x"]);
        assert_eq!(thread_refs(b"Subject: none\r\n\r\n"), (None, vec![]));
        // A message naming itself refers to nothing.
        let (_, refs) = thread_refs(b"Message-ID: <a@x>\r\nReferences: <a@x>\r\n\r\n");
        assert!(refs.is_empty());
    }
}
