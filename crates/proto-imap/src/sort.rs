//! SORT and THREAD (RFC 5256), ESORT (RFC 5267 3) and SORT=DISPLAY
//! (RFC 5957): the commands' syntax, the sort keys of a message, the base
//! subject (RFC 5256 2.1), the ORDEREDSUBJECT and REFERENCES threading
//! algorithms (RFC 5256 3) and the thread-list syntax (RFC 5256 4).
//! Pure functions: the server feeds them what the messages hold.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::lexer::{Cursor, LexResult};
use crate::mime::{Address, Part, parse_address_list, split_header, unfold};
use crate::search::{SearchCommand, SearchReturn, parse_search};

/// Most sort criteria in one SORT (there are nine keys, each with REVERSE).
pub const MAX_SORT_CRITERIA: usize = 18;
/// Deepest reply chain THREAD=REFERENCES keeps as a chain; deeper replies
/// are listed flat under the last level (the tree is walked recursively:
/// this bounds the stack whatever the mailbox holds).
pub const MAX_THREAD_DEPTH: usize = 256;
/// Most References a message contributes to threading (RFC 5256 3 has no
/// bound; this keeps a hostile header from costing without bound).
pub const MAX_REFERENCES: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    /// RFC 5957: the display name of the first From address, else its
    /// address.
    DisplayFrom,
    DisplayTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// A parsed SORT: ESORT return options, criteria, and the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortCommand {
    pub returns: Option<Vec<SearchReturn>>,
    pub criteria: Vec<SortCriterion>,
    pub search: SearchCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCommand {
    pub algorithm: ThreadAlgorithm,
    pub search: SearchCommand,
}

/// `[RETURN (...)] (criteria) charset search-key...` after `SORT `.
pub fn parse_sort(c: &mut Cursor<'_>) -> LexResult<SortCommand> {
    let mut returns = None;
    if c.eat_word("RETURN ") {
        // ESORT's options, and CONTEXT=SORT's UPDATE and PARTIAL (RFC
        // 5267 3, 4); SAVE is SEARCH's alone.
        returns = Some(
            c.paren_list(true, 8, |c| match crate::search::parse_return(c)? {
                SearchReturn::Save => Err("unknown sort return option"),
                r => Ok(r),
            })?,
        );
        c.sp()?;
    }
    let mut criteria = Vec::new();
    let mut reverse = false;
    let words = c.paren_list(false, MAX_SORT_CRITERIA, |c| {
        Ok(c.atom()?.to_ascii_uppercase())
    })?;
    for w in words {
        let key = match w.as_str() {
            "REVERSE" => {
                if reverse {
                    return Err("REVERSE REVERSE");
                }
                reverse = true;
                continue;
            }
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            _ => return Err("unknown sort key"),
        };
        criteria.push(SortCriterion { reverse, key });
        reverse = false;
    }
    if reverse || criteria.is_empty() {
        return Err("sort criteria end with REVERSE or are empty");
    }
    let search = charset_and_keys(c)?;
    Ok(SortCommand {
        returns,
        criteria,
        search,
    })
}

/// `algorithm charset search-key...` after `THREAD `.
pub fn parse_thread(c: &mut Cursor<'_>) -> LexResult<ThreadCommand> {
    let algorithm = match c.atom()?.to_ascii_uppercase().as_str() {
        "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
        "REFERENCES" => ThreadAlgorithm::References,
        _ => return Err("unknown threading algorithm"),
    };
    let search = charset_and_keys(c)?;
    Ok(ThreadCommand { algorithm, search })
}

/// RFC 5256 BNF: the charset is required here, without the CHARSET word.
fn charset_and_keys(c: &mut Cursor<'_>) -> LexResult<SearchCommand> {
    c.sp()?;
    let cs = String::from_utf8(c.astring()?).map_err(|_| "bad charset")?;
    c.sp()?;
    let mut search = parse_search(c)?;
    if search.returns.is_some() || search.charset.is_some() {
        return Err("RETURN or CHARSET inside SORT/THREAD search keys");
    }
    search.charset = Some(cs);
    Ok(search)
}

/// The fields sorting and threading read from one message's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortInfo {
    /// The base subject (RFC 5256 2.1), case-folded for comparison.
    pub base_subject: String,
    /// True when the subject had a reply or forward leader or trailer
    /// (RFC 5256 2.1 step 6: "is a reply or forward").
    pub is_reply: bool,
    /// The Date field in UTC seconds; None when missing or invalid (then
    /// the INTERNALDATE counts, RFC 5256 2.2).
    pub date: Option<i64>,
    /// The local part of the first address, lower-cased (RFC 5256 3).
    pub from: String,
    pub to: String,
    pub cc: String,
    /// RFC 5957: display name, else the address.
    pub display_from: String,
    pub display_to: String,
    pub message_id: Option<String>,
    /// References, else In-Reply-To (RFC 5256 3, REFERENCES step 1A).
    pub references: Vec<String>,
}

fn decoded(v: &[u8]) -> String {
    crate::mime::unstructured_text(v)
}

/// (local part, display text) of a field's first address, case-folded
/// like the base subject. A group's first element is its name, as in
/// ENVELOPE (RFC 5256 3 sorts on the first addr-mailbox there).
fn first_address(v: Option<&[u8]>) -> (String, String) {
    let Some(v) = v else {
        return (String::new(), String::new());
    };
    if let Some(a) = parse_address_list(&unfold(v)).into_iter().next() {
        if let Address::GroupStart(name) = &a {
            let n = decoded(name).to_uppercase();
            return (n.clone(), n);
        }
        if let Address::Mailbox {
            name,
            mailbox,
            host,
            ..
        } = a
        {
            let local = String::from_utf8_lossy(&mailbox.unwrap_or_default()).to_uppercase();
            let display = match name {
                Some(n) if !n.is_empty() => decoded(&n),
                _ => {
                    let h = host.map(|h| String::from_utf8_lossy(&h).into_owned());
                    match h {
                        Some(h) => format!("{local}@{h}"),
                        None => local.clone(),
                    }
                }
            };
            return (local, display.to_uppercase());
        }
    }
    (String::new(), String::new())
}

/// Message-IDs in a field (`<...>` each), at most [`MAX_REFERENCES`].
fn msg_ids(v: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(&unfold(v)).into_owned();
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find('<') {
        let Some(len) = rest.get(start..).and_then(|r| r.find('>')) else {
            break;
        };
        if let Some(id) = rest.get(start + 1..start + len) {
            let id = id.trim();
            if !id.is_empty() && !id.contains(char::is_whitespace) {
                out.push(id.to_string());
            }
        }
        rest = rest.get(start + len + 1..).unwrap_or("");
        if out.len() >= MAX_REFERENCES {
            break;
        }
    }
    out
}

/// What SORT and THREAD need from a raw message (its header only).
pub fn sort_info(raw: &[u8]) -> SortInfo {
    let (header, _) = split_header(raw);
    let part = Part::parse(header);
    let (base_subject, is_reply) =
        base_subject(&part.field("Subject").map(decoded).unwrap_or_default());
    let date = part.field("Date").and_then(crate::mime::date_utc);
    let (from, display_from) = first_address(part.field("From"));
    let (to, display_to) = first_address(part.field("To"));
    let (cc, _) = first_address(part.field("Cc"));
    let message_id = part
        .field("Message-ID")
        .and_then(|v| msg_ids(v).into_iter().next());
    let mut references = part.field("References").map(msg_ids).unwrap_or_default();
    if references.is_empty() {
        // RFC 5256 3: In-Reply-To when there are no References (its first
        // message-id only).
        references = part
            .field("In-Reply-To")
            .map(msg_ids)
            .unwrap_or_default()
            .into_iter()
            .take(1)
            .collect();
    }
    SortInfo {
        base_subject,
        is_reply,
        date,
        from,
        to,
        cc,
        display_from,
        display_to,
        message_id,
        references,
    }
}

/// RFC 5256 2.1: the base subject, case-folded as "i;unicode-casemap"
/// compares it (to upper case: `[` and `_` sort after the letters, as
/// Dovecot and imaptest's sort scripts have it), and whether a reply or
/// forward marker was removed.
pub fn base_subject(subject: &str) -> (String, bool) {
    // (1) whitespace runs become one space.
    let mut s: String = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut marked = false;
    loop {
        // (2) trailers: "(fwd)" and blanks.
        loop {
            let t = s.trim_end();
            if t.len() != s.len() {
                s.truncate(t.len());
                continue;
            }
            if s.len() >= 5
                && s.get(s.len() - 5..)
                    .is_some_and(|x| x.eq_ignore_ascii_case("(fwd)"))
            {
                s.truncate(s.len() - 5);
                marked = true;
                continue;
            }
            break;
        }
        // (3) and (4), repeated (5).
        loop {
            let before = s.len();
            if let Some(rest) = strip_leader(&s) {
                s = rest;
                marked = true;
            }
            let t = s.trim_start();
            if t.len() != s.len() {
                s = t.to_string();
            }
            if let Some(rest) = strip_blob(&s)
                && !rest.is_empty()
            {
                s = rest.to_string();
            }
            if s.len() == before {
                break;
            }
        }
        // (6) "[fwd: ... ]".
        let lower = s.to_lowercase();
        if lower.starts_with("[fwd:") && s.ends_with(']') {
            s = s.get(5..s.len() - 1).unwrap_or("").to_string();
            marked = true;
            continue;
        }
        break;
    }
    (s.to_uppercase(), marked)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`; the rest after it.
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find(['[', ']'])?;
    if rest.get(end..end + 1) != Some("]") {
        return None;
    }
    Some(rest.get(end + 1..)?.trim_start())
}

/// `subj-leader = (*subj-blob subj-refwd) / WSP`, with
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn strip_leader(s: &str) -> Option<String> {
    let mut rest = s;
    while let Some(r) = strip_blob(rest) {
        rest = r;
    }
    let lower = rest.to_lowercase();
    let n = if lower.starts_with("re") {
        2
    } else if lower.starts_with("fwd") {
        3
    } else if lower.starts_with("fw") {
        2
    } else {
        return None;
    };
    let mut after = rest.get(n..)?.trim_start();
    if let Some(r) = strip_blob(after) {
        after = r;
    }
    after.strip_prefix(':').map(str::to_string)
}

/// One message as sorting sees it.
#[derive(Debug, Clone)]
pub struct Sortable {
    /// What the response names: the sequence number or the UID.
    pub id: u32,
    /// The sequence number (the final tie-break, RFC 5256 3).
    pub seq: u32,
    pub internal_date: i64,
    pub size: u64,
    pub info: SortInfo,
}

fn compare(a: &Sortable, b: &Sortable, key: SortKey) -> Ordering {
    let sent = |m: &Sortable| m.info.date.unwrap_or(m.internal_date);
    match key {
        SortKey::Arrival => a.internal_date.cmp(&b.internal_date),
        SortKey::Cc => a.info.cc.cmp(&b.info.cc),
        SortKey::Date => sent(a).cmp(&sent(b)),
        SortKey::From => a.info.from.cmp(&b.info.from),
        SortKey::Size => a.size.cmp(&b.size),
        SortKey::Subject => a.info.base_subject.cmp(&b.info.base_subject),
        SortKey::To => a.info.to.cmp(&b.info.to),
        SortKey::DisplayFrom => a.info.display_from.cmp(&b.info.display_from),
        SortKey::DisplayTo => a.info.display_to.cmp(&b.info.display_to),
    }
}

/// RFC 5256 3: sorted by the criteria, ties by sequence number.
pub fn sort(msgs: &mut [Sortable], criteria: &[SortCriterion]) {
    msgs.sort_by(|a, b| {
        for c in criteria {
            let o = compare(a, b, c.key);
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.seq.cmp(&b.seq)
    });
}

/// A thread: a message (None: a message referred to but not here) and
/// its replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub id: Option<u32>,
    pub children: Vec<Thread>,
}

fn sent_key(m: &Sortable) -> (i64, u32) {
    (m.info.date.unwrap_or(m.internal_date), m.seq)
}

/// RFC 5256 3, ORDEREDSUBJECT: by base subject then sent date; each
/// subject is a thread whose first message is the parent of the others;
/// threads in the order of their first message's date.
pub fn thread_ordered_subject(msgs: &[Sortable]) -> Vec<Thread> {
    let mut sorted: Vec<&Sortable> = msgs.iter().collect();
    sorted.sort_by(|a, b| {
        a.info
            .base_subject
            .cmp(&b.info.base_subject)
            .then(sent_key(a).cmp(&sent_key(b)))
    });
    let mut threads: Vec<((i64, u32), Thread)> = Vec::new();
    let mut i = 0;
    while let Some(first) = sorted.get(i) {
        let mut j = i + 1;
        let mut children = Vec::new();
        while let Some(m) = sorted.get(j) {
            if m.info.base_subject != first.info.base_subject {
                break;
            }
            children.push(Thread {
                id: Some(m.id),
                children: Vec::new(),
            });
            j += 1;
        }
        threads.push((
            sent_key(first),
            Thread {
                id: Some(first.id),
                children,
            },
        ));
        i = j;
    }
    threads.sort_by_key(|(k, _)| *k);
    threads.into_iter().map(|(_, t)| t).collect()
}

/// RFC 5256 3, REFERENCES (after Jamie Zawinski's algorithm).
pub fn thread_references(msgs: &[Sortable]) -> Vec<Thread> {
    // Containers: index into `nodes`; a node holds at most one message.
    struct Node {
        msg: Option<usize>,
        parent: Option<usize>,
        children: Vec<usize>,
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let new_node = |nodes: &mut Vec<Node>| {
        nodes.push(Node {
            msg: None,
            parent: None,
            children: Vec::new(),
        });
        nodes.len() - 1
    };
    fn is_ancestor(nodes: &[Node], anc: usize, mut n: usize) -> bool {
        let mut steps = 0;
        loop {
            if n == anc {
                return true;
            }
            match nodes.get(n).and_then(|x| x.parent) {
                Some(p) if steps < nodes.len() => {
                    n = p;
                    steps += 1;
                }
                _ => return false,
            }
        }
    }
    fn link(nodes: &mut [Node], parent: usize, child: usize) {
        if let Some(old) = nodes.get(child).and_then(|c| c.parent)
            && let Some(o) = nodes.get_mut(old)
        {
            o.children.retain(|&c| c != child);
        }
        if let Some(c) = nodes.get_mut(child) {
            c.parent = Some(parent);
        }
        if let Some(p) = nodes.get_mut(parent) {
            p.children.push(child);
        }
    }
    for (i, m) in msgs.iter().enumerate() {
        // (1A) the message's container; a duplicate Message-ID (or none)
        // gets its own.
        let own = match &m.info.message_id {
            Some(id) => match by_id.get(id).copied() {
                Some(n) if nodes.get(n).is_some_and(|x| x.msg.is_none()) => n,
                _ => {
                    let n = new_node(&mut nodes);
                    by_id.entry(id.clone()).or_insert(n);
                    n
                }
            },
            None => new_node(&mut nodes),
        };
        if let Some(n) = nodes.get_mut(own) {
            n.msg = Some(i);
        }
        // (1B) link the references in order, never making a loop, and
        // never re-linking one that already has a parent.
        let mut prev: Option<usize> = None;
        for r in &m.info.references {
            let c = match by_id.get(r).copied() {
                Some(c) => c,
                None => {
                    let c = new_node(&mut nodes);
                    by_id.insert(r.clone(), c);
                    c
                }
            };
            if let Some(p) = prev
                && p != c
                && nodes.get(c).is_some_and(|x| x.parent.is_none())
                && !is_ancestor(&nodes, c, p)
            {
                link(&mut nodes, p, c);
            }
            prev = Some(c);
        }
        // (1C) the last reference is the message's parent (replacing any
        // parent an earlier message's References guessed).
        match prev {
            Some(p) if p != own && !is_ancestor(&nodes, own, p) => link(&mut nodes, p, own),
            _ => {
                if let Some(old) = nodes.get(own).and_then(|x| x.parent) {
                    if let Some(o) = nodes.get_mut(old) {
                        o.children.retain(|&c| c != own);
                    }
                    if let Some(n) = nodes.get_mut(own) {
                        n.parent = None;
                    }
                }
            }
        }
    }
    // (2) the root set; (3) prune dummies into trees of Thread.
    fn build(nodes: &[Node], msgs: &[Sortable], n: usize, depth: usize) -> Vec<Thread> {
        let Some(node) = nodes.get(n) else {
            return Vec::new();
        };
        let mut kids: Vec<Thread> = Vec::new();
        if depth < MAX_THREAD_DEPTH {
            for &c in &node.children {
                kids.extend(build(nodes, msgs, c, depth + 1));
            }
        } else {
            // Deeper replies are listed flat at this level, so neither this
            // recursion nor the ones over the result go deeper (a chain of
            // 10 000 replies would overflow the stack); none is dropped.
            let mut stack: Vec<usize> = node.children.iter().rev().copied().collect();
            while let Some(c) = stack.pop() {
                let Some(cn) = nodes.get(c) else { continue };
                if let Some(m) = cn.msg.and_then(|i| msgs.get(i)) {
                    kids.push(Thread {
                        id: Some(m.id),
                        children: Vec::new(),
                    });
                }
                stack.extend(cn.children.iter().rev().copied());
            }
        }
        match node.msg.and_then(|i| msgs.get(i)) {
            Some(m) => vec![Thread {
                id: Some(m.id),
                children: kids,
            }],
            // A dummy without children goes; below the root its children
            // move up to its parent's level.
            None if depth > 0 => kids,
            None => match kids.len() {
                0 => Vec::new(),
                // At the root, a dummy with one child is that child.
                1 => kids,
                _ => vec![Thread {
                    id: None,
                    children: kids,
                }],
            },
        }
    }
    // By id, once: sorting asks for a thread's message O(n log n) times.
    let by_id: HashMap<u32, &Sortable> = msgs.iter().map(|m| (m.id, m)).collect();
    let id_of = |t: &Thread| -> Option<&Sortable> {
        // The message that dates a thread: itself, or its first child's.
        let mut t = t;
        loop {
            if let Some(id) = t.id {
                return by_id.get(&id).copied();
            }
            t = t.children.first()?;
        }
    };
    let mut roots: Vec<Thread> = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        if node.parent.is_none() {
            roots.extend(build(&nodes, msgs, n, 0));
        }
    }
    // (4) sort each sibling set by sent date.
    fn sort_siblings(ts: &mut [Thread], key: &dyn Fn(&Thread) -> (i64, u32)) {
        for t in ts.iter_mut() {
            sort_siblings(&mut t.children, key);
        }
        ts.sort_by_key(|t| key(t));
    }
    let key = |t: &Thread| id_of(t).map_or((i64::MAX, u32::MAX), sent_key);
    sort_siblings(&mut roots, &key);
    // (5) merge root threads of one base subject.
    let subject_of = |t: &Thread| id_of(t).map(|m| (m.info.base_subject.clone(), m.info.is_reply));
    let mut merged: Vec<Thread> = Vec::new();
    let mut by_subject: HashMap<String, usize> = HashMap::new();
    for t in roots {
        let Some((subject, reply)) = subject_of(&t) else {
            merged.push(t);
            continue;
        };
        if subject.is_empty() {
            merged.push(t);
            continue;
        }
        match by_subject.get(&subject).copied() {
            None => {
                by_subject.insert(subject, merged.len());
                merged.push(t);
            }
            Some(i) => {
                let Some(first) = merged.get_mut(i) else {
                    continue;
                };
                let first_reply = subject_of(first).is_some_and(|(_, r)| r);
                if first.id.is_none() && t.id.is_none() {
                    // Two dummies: one holds both sets of children.
                    first.children.extend(t.children);
                } else if first.id.is_none() {
                    first.children.push(t);
                } else if t.id.is_none() {
                    let old = std::mem::replace(first, t);
                    first.children.push(old);
                } else if !first_reply && reply {
                    first.children.push(t);
                } else if first_reply && !reply {
                    let old = std::mem::replace(first, t);
                    first.children.push(old);
                } else {
                    // Neither or both replies: siblings under a dummy.
                    let old = std::mem::replace(
                        first,
                        Thread {
                            id: None,
                            children: Vec::new(),
                        },
                    );
                    first.children.push(old);
                    first.children.push(t);
                }
                sort_siblings(std::slice::from_mut(first), &key);
            }
        }
    }
    sort_siblings(&mut merged, &key);
    merged
}

/// RFC 5256 4: `(a b (c)(d e))`: a node with one child continues its
/// line; with several, each child is a parenthesised sub-list.
pub fn format_threads(threads: &[Thread]) -> String {
    // The tree is at most MAX_THREAD_DEPTH deep (thread_references).
    fn node(t: &Thread, out: &mut String) {
        if let Some(id) = t.id {
            out.push_str(&id.to_string());
        }
        match t.children.as_slice() {
            [] => {}
            [only] if t.id.is_some() => {
                out.push(' ');
                node(only, out);
            }
            many => {
                if t.id.is_some() {
                    out.push(' ');
                }
                for c in many {
                    out.push('(');
                    node(c, out);
                    out.push(')');
                }
            }
        }
    }
    let mut out = String::new();
    for t in threads {
        out.push('(');
        node(t, &mut out);
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_sort_str(s: &str) -> LexResult<SortCommand> {
        let mut c = Cursor::new(s.as_bytes());
        parse_sort(&mut c)
    }

    #[test]
    fn rfc5256_sort_examples_parse() {
        let s = parse_sort_str("(DATE) UTF-8 SUBJECT \"afternoon\"").expect("sort");
        assert_eq!(
            s.criteria,
            [SortCriterion {
                reverse: false,
                key: SortKey::Date
            }]
        );
        assert_eq!(s.search.charset.as_deref(), Some("UTF-8"));
        let s = parse_sort_str("(REVERSE DATE SUBJECT) UTF-8 ALL").expect("sort");
        assert_eq!(
            s.criteria,
            [
                SortCriterion {
                    reverse: true,
                    key: SortKey::Date
                },
                SortCriterion {
                    reverse: false,
                    key: SortKey::Subject
                }
            ]
        );
        let s = parse_sort_str("RETURN (MIN COUNT) (DISPLAYFROM) US-ASCII ALL").expect("esort");
        assert_eq!(
            s.returns,
            Some(vec![SearchReturn::Min, SearchReturn::Count])
        );
        // CONTEXT=SORT (RFC 5267 4): UPDATE and PARTIAL; SAVE is not SORT's.
        let s = parse_sort_str("RETURN (UPDATE PARTIAL 9:3) (SUBJECT) UTF-8 ALL").expect("ctx");
        assert_eq!(
            s.returns,
            Some(vec![SearchReturn::Update, SearchReturn::Partial(3, 9)])
        );
        for bad in [
            "RETURN (SAVE) (SUBJECT) UTF-8 ALL",
            "() UTF-8 ALL",
            "(REVERSE) UTF-8 ALL",
            "(NAME) UTF-8 ALL",
            "(DATE) ALL",
            "(DATE)",
        ] {
            assert!(parse_sort_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thread_commands_parse() {
        let mut c = Cursor::new(b"REFERENCES UTF-8 SINCE 5-MAR-2000");
        let t = parse_thread(&mut c).expect("thread");
        assert_eq!(t.algorithm, ThreadAlgorithm::References);
        let mut c = Cursor::new(b"ORDEREDSUBJECT UTF-8 ALL");
        assert_eq!(
            parse_thread(&mut c).expect("thread").algorithm,
            ThreadAlgorithm::OrderedSubject
        );
        let mut c = Cursor::new(b"BYMOOD UTF-8 ALL");
        assert!(parse_thread(&mut c).is_err());
    }

    #[test]
    fn base_subject_follows_rfc5256_2_1() {
        for (s, base, reply) in [
            ("Hello", "hello", false),
            ("Re: Hello", "hello", true),
            ("RE: re: Fwd: hello", "hello", true),
            ("Re[2]: hello", "hello", true),
            ("[list] Re: hello (fwd)", "hello", true),
            ("[Fwd: Re: hello]", "hello", true),
            ("  lots   of\t space  ", "lots of space", false),
            ("[only a blob]", "[only a blob]", false),
            ("[blob] subject", "subject", false),
            ("Re:", "", true),
            ("Fw: [x] Re: [y] z", "z", true),
        ] {
            assert_eq!(base_subject(s), (base.to_uppercase(), reply), "{s:?}");
        }
    }

    fn msg(id: u32, date: i64, subject: &str, mid: &str, refs: &[&str]) -> Sortable {
        let (base_subject, is_reply) = base_subject(subject);
        Sortable {
            id,
            seq: id,
            internal_date: date,
            size: u64::from(id) * 10,
            info: SortInfo {
                base_subject,
                is_reply,
                date: Some(date),
                message_id: (!mid.is_empty()).then(|| mid.to_string()),
                references: refs.iter().map(|s| s.to_string()).collect(),
                ..SortInfo::default()
            },
        }
    }

    #[test]
    fn sort_orders_by_criteria_then_sequence() {
        let mut v = vec![
            msg(1, 30, "b", "", &[]),
            msg(2, 10, "a", "", &[]),
            msg(3, 10, "Re: a", "", &[]),
        ];
        sort(
            &mut v,
            &[SortCriterion {
                reverse: false,
                key: SortKey::Subject,
            }],
        );
        assert_eq!(v.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 3, 1]);
        sort(
            &mut v,
            &[SortCriterion {
                reverse: true,
                key: SortKey::Date,
            }],
        );
        assert_eq!(v.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
        sort(
            &mut v,
            &[SortCriterion {
                reverse: true,
                key: SortKey::Size,
            }],
        );
        assert_eq!(v.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 2, 1]);
    }

    #[test]
    fn ordered_subject_makes_the_first_message_the_parent() {
        let v = vec![
            msg(1, 10, "hello", "", &[]),
            msg(2, 20, "other", "", &[]),
            msg(3, 30, "Re: hello", "", &[]),
            msg(4, 40, "Re: hello", "", &[]),
            msg(5, 50, "Re: other", "", &[]),
        ];
        assert_eq!(
            format_threads(&thread_ordered_subject(&v)),
            "(1 (3)(4))(2 5)"
        );
    }

    #[test]
    fn references_builds_trees_and_merges_by_subject() {
        let v = vec![
            msg(1, 10, "topic", "a@x", &[]),
            msg(2, 20, "Re: topic", "b@x", &["a@x"]),
            msg(3, 30, "Re: topic", "c@x", &["a@x", "b@x"]),
            msg(4, 40, "Re: topic", "d@x", &["a@x"]),
            msg(5, 50, "unrelated", "e@x", &[]),
            // Replies to a message we do not have: a dummy parent.
            msg(6, 60, "Re: lost", "f@x", &["gone@x"]),
            msg(7, 70, "Re: lost", "g@x", &["gone@x"]),
            // No references, but the same base subject as 1: merged.
            msg(8, 80, "Re: topic", "h@x", &[]),
        ];
        let t = thread_references(&v);
        assert_eq!(format_threads(&t), "(1 (2 3)(4)(8))(5)((6)(7))");
    }

    #[test]
    fn ten_thousand_messages_all_appear_once_in_the_threads() {
        // Pairs of a message and its reply, 100 subjects: every message
        // appears once in the result.
        let v: Vec<Sortable> = (1..=10_000u32)
            .map(|i| {
                let id = format!("{i}@x");
                let parent = format!("{}@x", i - 1);
                let refs: Vec<&str> = if i % 2 == 0 {
                    vec![parent.as_str()]
                } else {
                    vec![]
                };
                msg(i, i64::from(i), &format!("s{}", i % 100), &id, &refs)
            })
            .collect();
        let text = format_threads(&thread_references(&v));
        let count = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .count();
        assert_eq!(count, 10_000);
    }

    #[test]
    fn a_reply_chain_deeper_than_the_limit_keeps_every_message() {
        // 5 000 replies, each to the one before: the chain is kept to
        // MAX_THREAD_DEPTH, the rest listed flat, none lost, no deep
        // recursion.
        let v: Vec<Sortable> = (1..=5_000u32)
            .map(|i| {
                let id = format!("{i}@x");
                let parent = format!("{}@x", i - 1);
                let refs: Vec<&str> = if i > 1 { vec![parent.as_str()] } else { vec![] };
                msg(i, i64::from(i), "chain", &id, &refs)
            })
            .collect();
        let threads = thread_references(&v);
        assert_eq!(threads.len(), 1);
        let text = format_threads(&threads);
        let ids: Vec<&str> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(ids.len(), 5_000);
        assert!(text.starts_with("(1 2 3 4"), "{}", &text[..40]);
    }

    #[test]
    fn reference_loops_and_duplicate_ids_do_not_hang_or_lose_messages() {
        let v = vec![
            msg(1, 10, "a", "x@y", &["y@y"]),
            msg(2, 20, "b", "y@y", &["x@y"]),
            msg(3, 30, "c", "x@y", &[]),
        ];
        let text = format_threads(&thread_references(&v));
        for id in ["1", "2", "3"] {
            assert!(text.contains(id), "{text}");
        }
    }

    #[test]
    fn a_group_sorts_by_its_name_as_envelope_shows_it() {
        let i = sort_info(b"Cc: user2: blah@domain1.org;\r\nTo: empty:;\r\n\r\n");
        assert_eq!((i.cc.as_str(), i.display_to.as_str()), ("USER2", "EMPTY"));
    }

    #[test]
    fn sort_info_reads_addresses_dates_and_ids() {
        let raw = b"From: \"Zed Ant\" <Zed@Example.test>\r\nTo: bob@x.test\r\nCc: Carol <carol@x.test>\r\nSubject: =?UTF-8?Q?Re=3A_caf=C3=A9?=\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m1@x>\r\nIn-Reply-To: <p@x> <q@x>\r\n\r\nbody\r\n";
        let i = sort_info(raw);
        assert_eq!(i.from, "ZED");
        assert_eq!(i.display_from, "ZED ANT");
        assert_eq!(i.to, "BOB");
        assert_eq!(i.display_to, "BOB@X.TEST");
        assert_eq!(i.cc, "CAROL");
        assert_eq!(i.base_subject, "CAFÉ");
        assert!(i.is_reply);
        assert_eq!(i.date, Some(1_136_239_445));
        assert_eq!(i.message_id.as_deref(), Some("m1@x"));
        assert_eq!(i.references, ["p@x"]);
    }
}
