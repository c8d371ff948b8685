//! FETCH of sections of a big message from its part offsets (issues 18
//! and 19): `BODY[section]` with any text specifier (`HEADER`, `TEXT`,
//! `MIME`, `HEADER.FIELDS`), `<partial>`, `RFC822`, `RFC822.HEADER`,
//! `RFC822.TEXT`, `BINARY[section]`, `BINARY.SIZE[section]` and `PREVIEW`
//! (from its text part's header and first octets) of a message
//! above [`PARTS_ABOVE`] whose cache entry has its [`PartMap`] are read from
//! the store by range, never the whole message: a section up to
//! [`INLINE_MAX`] into memory, a bigger one [`BODY_CHUNK`] at a time
//! straight into its literal. BINARY of a bigger part is decoded a chunk at
//! a time (`mime::stream`), after a first pass over it that finds the
//! decoded size and whether the literal must be a `literal8` (RFC 3516
//! 4.3: it holds NUL). The octets are those of the whole-message path
//! (RFC 9051 6.4.5), which the MIME stress test checks against the map.
//!
//! Streamed literals come after the other items of the response (RFC 9051
//! 7.5.2 allows any order).

use proto_imap::mime::cache::Cached;
use proto_imap::mime::offsets::{self, Cte, PartMap, SectionPlan};
use proto_imap::mime::scan::Scanner;
use proto_imap::mime::stream::Decoder;
use proto_imap::mime::{self, BinaryError};
use proto_imap::{Code, Data, FetchAtt, FetchValue};
use store::{BODY_CHUNK, BodyId, Store, StoreError};

use super::session::{ImapError, Out};

/// Messages above this answer their sections from the part offsets.
pub(super) const PARTS_ABOVE: u64 = super::fetch_stream::STREAM_ABOVE;

/// Sections (and encoded BINARY parts) up to this are read into memory;
/// bigger ones are streamed.
pub(super) const INLINE_MAX: u64 = BODY_CHUNK as u64;

/// Headers read for HEADER.FIELDS: a header block longer than this is
/// read the whole-message way (RFC 5322 2.1.1 bounds lines, not headers;
/// a header this long is abuse, not mail).
const FIELDS_HEADER_MAX: u64 = 1024 * 1024;

/// A part's header read for PREVIEW: one longer than this sends the
/// message the whole-message way (as [`FIELDS_HEADER_MAX`]).
const PREVIEW_HEADER_MAX: u64 = 64 * 1024;

/// Octets of the chosen text part read for PREVIEW: far more than
/// [`mime::MAX_PREVIEW_CHARS`] characters of text need, even as base64 of
/// a multi-octet charset or HTML with markup before its text.
const PREVIEW_BODY_MAX: u64 = 64 * 1024;

/// True for the items that read the body and that the offsets answer
/// (everything but what the cache answers itself).
pub(super) fn by_range(att: &FetchAtt) -> bool {
    matches!(
        att,
        FetchAtt::Rfc822
            | FetchAtt::Rfc822Header
            | FetchAtt::Rfc822Text
            | FetchAtt::Section { .. }
            | FetchAtt::Binary { .. }
            | FetchAtt::BinarySize { .. }
            | FetchAtt::Preview { .. }
    )
}

/// True when every body item of `atts` is answered from the cache and the
/// offsets (a HEADER.FIELDS of an overlong header is found out later, by
/// [`plan_items`]).
pub(super) fn answerable(atts: &[FetchAtt]) -> bool {
    atts.iter().any(by_range)
        && atts.iter().all(|a| {
            !a.needs_body()
                || by_range(a)
                || matches!(
                    a,
                    FetchAtt::Envelope | FetchAtt::Body | FetchAtt::BodyStructure
                )
        })
}

/// One literal to stream: the decoded octets `skip..skip + len` of the
/// stored range `start..end`.
struct Stream {
    name: String,
    literal8: bool,
    start: u64,
    end: u64,
    cte: Cte,
    skip: u64,
    len: u64,
}

/// What the items of one message come to: values made in memory, and
/// literals to stream after them.
pub(super) struct Planned {
    values: Vec<FetchValue>,
    streams: Vec<Stream>,
}

/// Why a message cannot be answered by range.
pub(super) enum Unplanned {
    /// The body is gone (expunged since): no data for it.
    Gone,
    /// Answer it the whole-message way.
    Whole,
}

fn partial_name(base: String, partial: Option<(u32, u32)>) -> String {
    match partial {
        Some((start, _)) => format!("{base}<{start}>"),
        None => base,
    }
}

/// `skip..skip + len` of `total` octets under `<partial>`: what
/// `apply_partial` keeps of the whole value.
fn window(total: u64, partial: Option<(u32, u32)>) -> (u64, u64) {
    match partial {
        None => (0, total),
        Some((start, n)) => {
            let start = u64::from(start).min(total);
            (start, u64::from(n).min(total - start))
        }
    }
}

fn join(path: &[u32]) -> String {
    path.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Reads `start..end` of the body into memory; `None` if it is gone.
pub(super) async fn read_range(
    store: &dyn Store,
    body: BodyId,
    start: u64,
    end: u64,
) -> Result<Option<Vec<u8>>, ImapError> {
    let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
    let whole = for_each_chunk(store, body, start, end, |c| out.extend_from_slice(c)).await?;
    Ok(whole.then_some(out))
}

/// Decodes `start..end` a chunk at a time, handing each decoded piece to
/// `each`; false if the body is gone.
async fn decode_range<F>(
    store: &dyn Store,
    body: BodyId,
    start: u64,
    end: u64,
    cte: Cte,
    mut each: F,
) -> Result<bool, ImapError>
where
    F: FnMut(&[u8]),
{
    let Some(mut dec) = Decoder::new(cte) else {
        return Err(unknown_cte());
    };
    let mut decoded = Vec::new();
    let whole = for_each_chunk(store, body, start, end, |c| {
        decoded.clear();
        dec.feed(c, &mut decoded);
        each(&decoded);
    })
    .await?;
    if !whole {
        return Ok(false);
    }
    decoded.clear();
    dec.finish(&mut decoded);
    each(&decoded);
    Ok(true)
}

/// PREVIEW (RFC 8970) of a big message from its map: the leaves are
/// looked at in [`mime::preview`]'s order from their headers alone, and
/// the chosen one's header and at most [`PREVIEW_BODY_MAX`] of its body
/// make a small message that `mime::preview` reads, so its rules
/// (charsets, HTML, whitespace) stay in one place.
async fn preview(
    store: &dyn Store,
    body: BodyId,
    map: &PartMap,
) -> Result<Result<Option<String>, Unplanned>, ImapError> {
    // Depth first, children in order, as mime::preview walks the parse;
    // attached messages are not the message's text.
    let mut stack: Vec<(&PartMap, usize)> = vec![(map, 0)];
    let mut html: Option<&PartMap> = None;
    let mut plain: Option<&PartMap> = None;
    while let Some((node, depth)) = stack.pop() {
        if depth > mime::MAX_DEPTH {
            continue;
        }
        match &node.kind {
            offsets::MapKind::Multipart(children) => {
                stack.extend(children.iter().rev().map(|c| (c, depth + 1)));
            }
            offsets::MapKind::Message(_) => {}
            offsets::MapKind::Leaf => {
                if node.body - node.start > PREVIEW_HEADER_MAX {
                    return Ok(Err(Unplanned::Whole));
                }
                let Some(head) = read_range(store, body, node.start, node.body).await? else {
                    return Ok(Err(Unplanned::Gone));
                };
                match mime::preview_kind(&mime::Part::parse(&head)) {
                    Some(mime::PreviewKind::Plain) => {
                        plain = Some(node);
                        break;
                    }
                    Some(mime::PreviewKind::Html) if html.is_none() => html = Some(node),
                    _ => {}
                }
            }
        }
    }
    let Some(node) = plain.or(html) else {
        return Ok(Ok(None));
    };
    let end = node.end.min(node.body.saturating_add(PREVIEW_BODY_MAX));
    let Some(small) = read_range(store, body, node.start, end).await? else {
        return Ok(Err(Unplanned::Gone));
    };
    Ok(Ok(mime::preview(&mime::Part::parse(&small))))
}

fn unknown_cte() -> ImapError {
    ImapError::no(Some(Code::UnknownCte), "unknown content transfer encoding")
}

/// Plans the body items of one message (`atts`, in order) from its map:
/// small values are read now, big ones become streams. Nothing is
/// written yet, so an error (UNKNOWN-CTE) leaves the response unsent.
pub(super) async fn plan_items(
    store: &dyn Store,
    body: BodyId,
    map: &PartMap,
    atts: &[&FetchAtt],
) -> Result<Result<Planned, Unplanned>, ImapError> {
    let mut planned = Planned {
        values: Vec::new(),
        streams: Vec::new(),
    };
    for att in atts {
        // A section or RFC822 item: a range of stored octets.
        let (name, range, partial) = match att {
            FetchAtt::Rfc822 => ("RFC822".to_string(), Some((map.start, map.end)), None),
            FetchAtt::Rfc822Header => (
                "RFC822.HEADER".to_string(),
                Some((map.start, map.body)),
                None,
            ),
            FetchAtt::Rfc822Text => ("RFC822.TEXT".to_string(), Some((map.body, map.end)), None),
            FetchAtt::Section {
                section, partial, ..
            } => {
                let name = partial_name(format!("BODY[{}]", section.to_wire()), *partial);
                match offsets::plan(map, section) {
                    Some(SectionPlan::Range(a, b)) => (name, Some((a, b)), *partial),
                    Some(SectionPlan::Fields {
                        start,
                        end,
                        names,
                        keep,
                    }) => {
                        if end - start > FIELDS_HEADER_MAX {
                            return Ok(Err(Unplanned::Whole));
                        }
                        let Some(header) = read_range(store, body, start, end).await? else {
                            return Ok(Err(Unplanned::Gone));
                        };
                        let data = offsets::header_fields(&header, &names, keep);
                        let (skip, len) = window(data.len() as u64, *partial);
                        let data = data
                            .get(skip as usize..(skip + len) as usize)
                            .unwrap_or_default()
                            .to_vec();
                        planned.values.push(FetchValue::Section {
                            name,
                            data: Some(data),
                        });
                        continue;
                    }
                    // No such part: the empty string, as the whole-message
                    // path answers (fetch.rs says why).
                    None => (name, None, None),
                }
            }
            FetchAtt::Binary {
                part: path,
                partial,
                ..
            } => {
                let name = partial_name(format!("BINARY[{}]", join(path)), *partial);
                let (node, cte) = match offsets::binary_part(map, path) {
                    Ok(found) => found,
                    Err(BinaryError::UnknownEncoding) => return Err(unknown_cte()),
                    Err(BinaryError::NoSuchPart) => {
                        planned.values.push(FetchValue::Binary { name, data: None });
                        continue;
                    }
                };
                let (start, end) = if path.is_empty() {
                    (map.start, map.end)
                } else {
                    (node.body, node.end)
                };
                if end - start <= INLINE_MAX {
                    let Some(raw) = read_range(store, body, start, end).await? else {
                        return Ok(Err(Unplanned::Gone));
                    };
                    let data = decode_all(cte, &raw)?;
                    let (skip, len) = window(data.len() as u64, *partial);
                    let data = data
                        .get(skip as usize..(skip + len) as usize)
                        .unwrap_or_default()
                        .to_vec();
                    planned.values.push(FetchValue::Binary {
                        name,
                        data: Some(data),
                    });
                    continue;
                }
                // First pass: the decoded size, then whether the window
                // sent holds NUL (RFC 3516 4.3: then a literal8).
                let mut total = 0u64;
                let ok = decode_range(store, body, start, end, cte, |d| {
                    total += d.len() as u64;
                })
                .await?;
                if !ok {
                    return Ok(Err(Unplanned::Gone));
                }
                let (skip, len) = window(total, *partial);
                if len <= INLINE_MAX {
                    // A small window of a big part: kept in memory.
                    let mut at = 0u64;
                    let mut data = Vec::new();
                    let ok = decode_range(store, body, start, end, cte, |d| {
                        let (a, b) = (at, at + d.len() as u64);
                        at = b;
                        let (lo, hi) = (a.max(skip), b.min(skip + len));
                        if lo < hi
                            && let Some(w) = d.get((lo - a) as usize..(hi - a) as usize)
                        {
                            data.extend_from_slice(w);
                        }
                    })
                    .await?;
                    if !ok {
                        return Ok(Err(Unplanned::Gone));
                    }
                    planned.values.push(FetchValue::Binary {
                        name,
                        data: Some(data),
                    });
                    continue;
                }
                let mut at = 0u64;
                let mut nul = false;
                let ok = decode_range(store, body, start, end, cte, |d| {
                    let (a, b) = (at, at + d.len() as u64);
                    at = b;
                    let (lo, hi) = (a.max(skip), b.min(skip + len));
                    if lo < hi
                        && d.get((lo - a) as usize..(hi - a) as usize)
                            .is_some_and(|w| w.contains(&0))
                    {
                        nul = true;
                    }
                })
                .await?;
                if !ok {
                    return Ok(Err(Unplanned::Gone));
                }
                planned.streams.push(Stream {
                    name,
                    literal8: nul,
                    start,
                    end,
                    cte,
                    skip,
                    len,
                });
                continue;
            }
            FetchAtt::BinarySize { part: path } => {
                let name = format!("BINARY.SIZE[{}]", join(path));
                let (node, cte) = match offsets::binary_part(map, path) {
                    Ok(found) => found,
                    Err(BinaryError::UnknownEncoding) => return Err(unknown_cte()),
                    Err(BinaryError::NoSuchPart) => {
                        planned
                            .values
                            .push(FetchValue::BinarySize { name, size: 0 });
                        continue;
                    }
                };
                let (start, end) = if path.is_empty() {
                    (map.start, map.end)
                } else {
                    (node.body, node.end)
                };
                let size = if cte == Cte::Identity {
                    end - start
                } else {
                    let mut total = 0u64;
                    if !decode_range(store, body, start, end, cte, |d| {
                        total += d.len() as u64;
                    })
                    .await?
                    {
                        return Ok(Err(Unplanned::Gone));
                    }
                    total
                };
                planned.values.push(FetchValue::BinarySize { name, size });
                continue;
            }
            FetchAtt::Preview { .. } => {
                match preview(store, body, map).await? {
                    Ok(text) => planned.values.push(FetchValue::Preview(text)),
                    Err(why) => return Ok(Err(why)),
                }
                continue;
            }
            _ => return Ok(Err(Unplanned::Whole)),
        };
        let Some((a, b)) = range else {
            planned.values.push(FetchValue::Section {
                name,
                data: Some(Vec::new()),
            });
            continue;
        };
        let (skip, len) = window(b - a, partial);
        if len <= INLINE_MAX {
            let Some(data) = read_range(store, body, a + skip, a + skip + len).await? else {
                return Ok(Err(Unplanned::Gone));
            };
            planned.values.push(FetchValue::Section {
                name,
                data: Some(data),
            });
        } else {
            planned.streams.push(Stream {
                name,
                literal8: false,
                start: a + skip,
                end: a + skip + len,
                cte: Cte::Identity,
                skip: 0,
                len,
            });
        }
    }
    Ok(Ok(planned))
}

/// The cache entry of a big message, found by the streaming scan
/// (`mime::scan`) over its chunks; `None` when it is gone or FETCH shows
/// it re-encoded (a part holding NUL): then the whole-message way.
pub(super) async fn scan(
    store: &dyn Store,
    body: BodyId,
    size: u64,
) -> Result<Option<Cached>, ImapError> {
    let mut scanner = Scanner::new();
    if !for_each_chunk(store, body, 0, size, |c| scanner.feed(c)).await? {
        return Ok(None);
    }
    Ok(scanner.finish())
}

/// The cache entry of `body` with its part offsets: the stored one, or
/// a scan's (then stored). None: the whole-message way.
pub(super) async fn entry(
    store: &dyn Store,
    body: BodyId,
    size: u64,
) -> Result<Option<Cached>, ImapError> {
    let stored = store.body_meta(vec![body]).await?;
    if let Some(c) = stored
        .into_iter()
        .next()
        .flatten()
        .and_then(|d| mime::cache::decode(&d))
    {
        // An entry without offsets is a message shown re-encoded: a scan
        // would find the same.
        return Ok(c.map.is_some().then_some(c));
    }
    let Some(c) = scan(store, body, size).await? else {
        return Ok(None);
    };
    // A cache: a failed write costs a scan next time.
    if let Err(e) = store
        .set_body_meta(vec![(body, mime::cache::encode(&c))])
        .await
    {
        tracing::debug!(error = %e, "caching a scanned structure failed");
    }
    Ok(Some(c))
}

/// What an IMAP URL (RFC 5092 3) names in one stored message, for
/// CATENATE (RFC 4469 5) and URLFETCH (RFC 4467 6.3): octets in memory,
/// or a range of the stored body too big for that, copied a chunk at a
/// time by whoever sends or stores it (issue 19).
pub(super) enum UrlOctets {
    Mem(Vec<u8>),
    /// `start..end` of the stored body, more than [`INLINE_MAX`] octets.
    Range(u64, u64),
}

/// The octets `section` and `partial` of an IMAP URL name in the stored
/// message `body` of `size` octets; None when that section does not exist
/// or the body is gone (the URL is bad). A message above [`PARTS_ABOVE`]
/// is answered from its part offsets, like FETCH BODY[section]<partial>
/// (the same octets: RFC 5092 3 defines the URL's section as FETCH's);
/// smaller ones, and those without offsets (shown re-encoded), are read
/// whole.
pub(super) async fn url_octets(
    store: &dyn Store,
    body: BodyId,
    size: u64,
    section: Option<&proto_imap::Section>,
    partial: Option<(u64, Option<u64>)>,
) -> Result<Option<UrlOctets>, ImapError> {
    let map = if size > PARTS_ABOVE {
        entry(store, body, size).await?.and_then(|c| c.map)
    } else {
        None
    };
    let Some(map) = map else {
        return url_whole(store, body, section, partial).await;
    };
    let (a, b) = match section {
        None => (map.start, map.end),
        Some(s) => match offsets::plan(&map, s) {
            Some(SectionPlan::Range(a, b)) => (a, b),
            Some(SectionPlan::Fields {
                start,
                end,
                names,
                keep,
            }) => {
                if end - start > FIELDS_HEADER_MAX {
                    return url_whole(store, body, section, partial).await;
                }
                let Some(header) = read_range(store, body, start, end).await? else {
                    return Ok(None);
                };
                let data = offsets::header_fields(&header, &names, keep);
                return Ok(Some(UrlOctets::Mem(url_partial(data, partial))));
            }
            None => return Ok(None),
        },
    };
    let (start, end) = url_window(a, b, partial);
    if end - start <= INLINE_MAX {
        return Ok(read_range(store, body, start, end)
            .await?
            .map(UrlOctets::Mem));
    }
    Ok(Some(UrlOctets::Range(start, end)))
}

/// `;PARTIAL=offset[.length]` (RFC 5092 3) of the octets `a..b`: past the
/// end is empty, a length past it stops there.
fn url_window(a: u64, b: u64, partial: Option<(u64, Option<u64>)>) -> (u64, u64) {
    match partial {
        None => (a, b),
        Some((offset, length)) => {
            let start = a.saturating_add(offset).min(b);
            let end = length.map_or(b, |l| start.saturating_add(l).min(b));
            (start, end)
        }
    }
}

fn url_partial(data: Vec<u8>, partial: Option<(u64, Option<u64>)>) -> Vec<u8> {
    if partial.is_none() {
        return data;
    }
    let (start, end) = url_window(0, data.len() as u64, partial);
    data.get(start as usize..end as usize)
        .unwrap_or_default()
        .to_vec()
}

/// [`url_octets`] of the message read whole.
async fn url_whole(
    store: &dyn Store,
    body: BodyId,
    section: Option<&proto_imap::Section>,
    partial: Option<(u64, Option<u64>)>,
) -> Result<Option<UrlOctets>, ImapError> {
    let raw = match store.read_body(body).await {
        Ok(raw) => raw,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let data = match section {
        None => raw,
        Some(s) => match mime::section(&mime::Part::parse(&raw), &raw, s) {
            Some(d) => d,
            None => return Ok(None),
        },
    };
    Ok(Some(UrlOctets::Mem(url_partial(data, partial))))
}

/// Hands `start..end` of the body to `each` a chunk at a time, in order;
/// false if the body is gone (or shorter than the range).
pub(super) async fn for_each_chunk<F>(
    store: &dyn Store,
    body: BodyId,
    start: u64,
    end: u64,
    mut each: F,
) -> Result<bool, ImapError>
where
    F: FnMut(&[u8]),
{
    let mut pos = start;
    let mut chunk = Vec::new();
    while pos < end {
        let want = usize::try_from((end - pos).min(BODY_CHUNK as u64)).unwrap_or(BODY_CHUNK);
        chunk = match store.read_body_range_into(body, pos, want, chunk).await {
            Ok(c) if !c.is_empty() => c,
            Ok(_) | Err(StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        pos += chunk.len() as u64;
        each(&chunk);
    }
    Ok(true)
}

fn decode_all(cte: Cte, raw: &[u8]) -> Result<Vec<u8>, ImapError> {
    Ok(match cte {
        Cte::Identity => raw.to_vec(),
        Cte::Base64 => mime::decode_base64(raw),
        Cte::QuotedPrintable => mime::decode_qp(raw),
        Cte::Unknown => return Err(unknown_cte()),
    })
}

/// Writes `* seq FETCH (items... values... NAME {n}` with each stream's
/// octets from the store, then `)`. A read that fails once a literal is
/// announced cannot be answered in the protocol: the connection ends
/// (`Gone`), as in `fetch_stream`.
pub(super) async fn write(
    out: &mut Out<'_>,
    store: &dyn Store,
    seq: u32,
    mut items: Vec<FetchValue>,
    planned: Planned,
    body: BodyId,
) -> Result<(), ImapError> {
    items.extend(planned.values);
    if planned.streams.is_empty() {
        out.data(Data::Fetch { seq, items });
        return out.flush_if_big().await;
    }
    let mut had_items = !items.is_empty();
    out.data(Data::Fetch { seq, items });
    // The serialiser closed the list: reopen it for the literals.
    if out.buf.ends_with(b")\r\n") {
        out.buf.truncate(out.buf.len() - 3);
    }
    for s in planned.streams {
        if had_items {
            out.buf.push(b' ');
        }
        had_items = true;
        let tilde = if s.literal8 { "~" } else { "" };
        out.buf
            .extend_from_slice(format!("{} {tilde}{{{}}}\r\n", s.name, s.len).as_bytes());
        send(out, store, body, &s).await?;
    }
    out.buf.extend_from_slice(b")\r\n");
    out.flush_if_big().await
}

/// The stored octets `start..end` into `out`, a chunk at a time (the
/// literal's announcement already written): a body that goes away on the
/// way ends the connection, as for [`write`].
pub(super) async fn send_range(
    out: &mut Out<'_>,
    store: &dyn Store,
    body: BodyId,
    start: u64,
    end: u64,
) -> Result<(), ImapError> {
    let s = Stream {
        name: String::new(),
        literal8: false,
        start,
        end,
        cte: Cte::Identity,
        skip: 0,
        len: end.saturating_sub(start),
    };
    send(out, store, body, &s).await
}

/// The octets of one stream, a chunk at a time.
async fn send(
    out: &mut Out<'_>,
    store: &dyn Store,
    body: BodyId,
    s: &Stream,
) -> Result<(), ImapError> {
    let Some(mut dec) = Decoder::new(s.cte) else {
        return Err(ImapError::Gone);
    };
    let (mut at, mut sent) = (0u64, 0u64);
    let mut pos = s.start;
    let mut chunk = Vec::new();
    let mut decoded = Vec::new();
    let mut finished = false;
    while sent < s.len {
        decoded.clear();
        if pos < s.end {
            let want = usize::try_from((s.end - pos).min(BODY_CHUNK as u64)).unwrap_or(BODY_CHUNK);
            chunk = match store.read_body_range_into(body, pos, want, chunk).await {
                Ok(c) if !c.is_empty() => c,
                Ok(_) | Err(_) => {
                    tracing::warn!(body = body.0, "imap: body gone while it was sent; closing");
                    return Err(ImapError::Gone);
                }
            };
            pos += chunk.len() as u64;
            dec.feed(&chunk, &mut decoded);
        } else if !finished {
            dec.finish(&mut decoded);
            finished = true;
        } else {
            // Fewer octets than the first pass counted: the body changed
            // under us, which a stored body never does.
            return Err(ImapError::Gone);
        }
        let (a, b) = (at, at + decoded.len() as u64);
        at = b;
        let (lo, hi) = (a.max(s.skip), b.min(s.skip + s.len));
        if lo < hi
            && let Some(w) = decoded.get((lo - a) as usize..(hi - a) as usize)
        {
            out.buf.extend_from_slice(w);
            sent += w.len() as u64;
        }
        out.flush_if_big().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::testkit::{ALICE, Kit, cmd};
    use std::sync::atomic::Ordering;
    use store::BodyId;

    /// A nested multipart message of about 3 MiB: a text part, a big
    /// base64 part holding NUL once decoded, a message/rfc822 with a
    /// quoted-printable part and a big plain part, an unknown encoding,
    /// and an unclosed inner multipart.
    fn big_message() -> String {
        let mut b64 = String::new();
        let line = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\r\n";
        while b64.len() < 1_400_000 {
            b64.push_str(line);
        }
        let mut qp = String::new();
        while qp.len() < 600_000 {
            qp.push_str("caf=C3=A9 soft=\r\nbreak  \r\n=3D trailing\t \r\n");
        }
        let plain = "x".repeat(1_200_000);
        format!(
            "From: a@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\npreamble\r\n\
             --o\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
             --o\r\nContent-Type: application/octet-stream\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\
             --o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: i@x\r\n\
             Content-Type: multipart/alternative; boundary=i\r\n\r\n\
             --i\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n\
             --i\r\nContent-Type: text/plain\r\n\r\n{plain}\r\n--i--\r\n\
             --o\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n\
             --o\r\nContent-Type: multipart/mixed; boundary=u\r\n\r\n--u\r\n\r\nunclosed\r\n\
             --o--\r\nepilogue\r\n"
        )
    }

    /// Every kind of item the offsets answer, the small ones first and
    /// the streamed ones last and in order, so that the response of the
    /// whole-message path and the range path can be compared octet for
    /// octet.
    const ITEMS: &str = "(PREVIEW BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[3.HEADER] \
        BODY.PEEK[3.HEADER.FIELDS (SUBJECT)] BODY.PEEK[HEADER.FIELDS.NOT (FROM)] \
        BODY.PEEK[5.1] BODY.PEEK[9] BODY.PEEK[3.1]<5.40> BINARY.SIZE[2] BINARY.SIZE[3.1] \
        BINARY.SIZE[3.2] BINARY.PEEK[1] BINARY.PEEK[3.1]<3.100> BINARY.PEEK[7] \
        RFC822.HEADER BINARY.PEEK[2] BINARY.PEEK[3.1] BODY.PEEK[3.2] \
        BODY.PEEK[TEXT]<100.2000000> BODY.PEEK[3.TEXT] BINARY.PEEK[2]<1000.300000>)";

    /// Equal responses; where not, the first difference and a little
    /// around it (the responses are megabytes long).
    fn same(got: &[String], want: &[String]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            if g != w {
                let at = g.bytes().zip(w.bytes()).take_while(|(a, b)| a == b).count();
                let around = |s: &str| {
                    let b = s.as_bytes();
                    b[at.saturating_sub(80)..(at + 80).min(b.len())]
                        .escape_ascii()
                        .to_string()
                };
                panic!(
                    "differ at {at} (lengths {} {}):\n got {}\nwant {}",
                    g.len(),
                    w.len(),
                    around(g),
                    around(w)
                );
            }
        }
    }

    #[tokio::test]
    async fn sections_of_a_big_message_by_offsets_are_the_whole_message_octets() {
        let (kit, reads) = Kit::counting_body_reads();
        let raw = big_message();
        kit.deliver(ALICE, &raw).await;
        kit.deliver(ALICE, &raw).await;
        let inbox = kit.mailbox(ALICE, "INBOX").await.expect("inbox");
        let bodies: Vec<BodyId> = kit
            .store
            .messages(inbox.id)
            .await
            .expect("messages")
            .iter()
            .map(|m| m.body)
            .collect();
        // Message 1's entry has no offsets (as for a message shown
        // re-encoded): it is answered the whole-message way.
        let mut whole_entry = Cached::of(raw.as_bytes());
        whole_entry.map = None;
        kit.store
            .set_body_meta(vec![(bodies[0], mime::cache::encode(&whole_entry))])
            .await
            .expect("meta");
        let mut s = kit.selected(ALICE, "INBOX").await;
        let whole = cmd(&mut s, &format!("FETCH 1 {ITEMS}")).await;
        whole.assert_ok();
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Message 2, nothing cached: scanned in chunks, then read by
        // range. The same octets, and no whole read.
        let ranged = cmd(&mut s, &format!("FETCH 2 {ITEMS}")).await;
        ranged.assert_ok();
        assert_eq!(reads.load(Ordering::SeqCst), 1, "no whole read");
        let renumbered: Vec<String> = ranged
            .untagged
            .iter()
            .map(|l| l.replacen("* 2 FETCH", "* 1 FETCH", 1))
            .collect();
        same(&renumbered, &whole.untagged);
        // The scan cached what the whole parse finds.
        let mut entry = None;
        for _ in 0..500 {
            entry = kit.store.body_meta(vec![bodies[1]]).await.expect("meta")[0].take();
            if entry.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let entry = entry.and_then(|e| mime::cache::decode(&e));
        assert_eq!(entry, Some(Cached::of(raw.as_bytes())));
        let ranged = cmd(&mut s, &format!("FETCH 1 {ITEMS}")).await;
        assert_eq!(reads.load(Ordering::SeqCst), 2, "message 1 again whole");
        same(&ranged.untagged, &whole.untagged);
        let line = ranged.lines_with("* 1 FETCH")[0];
        assert!(line.contains("BINARY[2] ~{"), "literal8 for NUL");
        assert!(line.contains("BODY[9] {0}\r\n"));
        assert!(line.contains("BINARY[7] NIL"));
        // Unknown encoding: NO [UNKNOWN-CTE], as the whole path says.
        let r = cmd(&mut s, "FETCH 2 (BINARY.PEEK[4])").await;
        assert_eq!(r.status(), "NO", "{r:?}");
        assert!(r.tagged.contains("UNKNOWN-CTE"), "{r:?}");
        // With ENVELOPE and BODYSTRUCTURE from the cache alongside.
        let r = cmd(&mut s, "FETCH 2 (BODYSTRUCTURE ENVELOPE BODY.PEEK[1])").await;
        r.assert_ok();
        assert!(r.has("BODY[1] {5}\r\nhello"), "{r:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 2, "no whole read");
        // Without PEEK the message becomes \Seen, and the FLAGS say so.
        let r = cmd(&mut s, "FETCH 2 (BODY[3.2])").await;
        r.assert_ok();
        assert!(r.has("\\Seen"), "{r:?}");
        assert_eq!(reads.load(Ordering::SeqCst), 2, "no whole read");
    }

    #[test]
    fn window_is_apply_partial() {
        assert_eq!(window(10, None), (0, 10));
        assert_eq!(window(10, Some((3, 4))), (3, 4));
        assert_eq!(window(10, Some((8, 4))), (8, 2));
        assert_eq!(window(10, Some((12, 4))), (10, 0));
    }

    /// PREVIEW of a big message by range picks what the whole-message
    /// way picks: the first inline text/plain, here after an HTML part,
    /// an attached text and a big attachment, or failing one the first
    /// HTML part; and never reads the message whole.
    #[tokio::test]
    async fn preview_of_a_big_message_is_found_by_range() {
        let (kit, reads) = Kit::counting_body_reads();
        let big = "QUJD\r\n".repeat(300_000);
        let with_plain = format!(
            "Subject: p\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/html\r\n\r\n<p>the <b>html</b></p>\r\n\
             --b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nattached\r\n\
             --b\r\nContent-Type: application/octet-stream\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{big}\
             --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9   au\r\n  lait\r\n\
             --b--\r\n"
        );
        let html_only = with_plain
            .replace("charset=iso-8859-1", "charset=x\r\nX-Was: text/plain")
            .replace(
                "Content-Type: text/plain; charset=x",
                "Content-Type: image/png; charset=x",
            );
        for raw in [&with_plain, &html_only] {
            kit.deliver(ALICE, raw).await;
        }
        let mut s = kit.selected(ALICE, "INBOX").await;
        let r = cmd(&mut s, "FETCH 1:2 (PREVIEW)").await;
        r.assert_ok();
        assert_eq!(reads.load(Ordering::SeqCst), 0, "no whole read");
        let want: Vec<String> = [&with_plain, &html_only]
            .iter()
            .map(|raw| mime::preview(&mime::Part::parse(raw.as_bytes())).expect("text"))
            .collect();
        assert_eq!(want, ["café au lait", "the html"]);
        for (line, want) in r.untagged.iter().zip(&want) {
            // A quoted string, or a literal for the non-ASCII one.
            assert!(
                line.contains("PREVIEW ") && line.contains(want.as_str()),
                "{line}"
            );
        }
    }

    #[test]
    fn what_the_offsets_answer() {
        assert!(!answerable(&[FetchAtt::Envelope]));
        assert!(answerable(&[FetchAtt::Rfc822Header, FetchAtt::Envelope]));
        assert!(answerable(&[FetchAtt::Preview { lazy: false }]));
    }
}
