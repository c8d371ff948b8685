//! FETCH of a big message whole (issue 19): `BODY[]`, `BODY.PEEK[]`,
//! `RFC822` and `BINARY[]`, with or without `<partial>`, of a message
//! above [`STREAM_ABOVE`] are sent from the store [`store::BODY_CHUNK`] at
//! a time into the literal, never read whole into memory. The response is
//! the same as the buffered one's (RFC 9051 7.5.2), with the literal last
//! among the items, which RFC 9051 allows in any order.
//!
//! A section of a part (`BODY[1]`, `BODY[TEXT]`) needs the MIME structure
//! and still reads the message whole; so does a message holding NUL (its
//! binary parts are shown in base64, RFC 3516 4.3), found by a first pass
//! over its chunks.

use proto_imap::{Data, FetchAtt, FetchValue};
use store::{BODY_CHUNK, BodyId, Store};

use super::session::{ImapError, Out};

/// Messages larger than this are streamed when FETCH asks for them whole.
pub(super) const STREAM_ABOVE: u64 = 4 * BODY_CHUNK as u64;

/// The one whole-message item of `atts` when no other item needs the
/// body (ENVELOPE, BODYSTRUCTURE, a section): its index.
pub(super) fn plan(atts: &[FetchAtt]) -> Option<usize> {
    let mut found = None;
    for (i, att) in atts.iter().enumerate() {
        if whole(att).is_some() {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        } else if att.needs_body() {
            return None;
        }
    }
    found
}

/// The response item's name and the partial range of a whole-message
/// item; None for any other item.
fn whole(att: &FetchAtt) -> Option<(String, Option<(u32, u32)>)> {
    match att {
        FetchAtt::Rfc822 => Some(("RFC822".to_string(), None)),
        FetchAtt::Section {
            section, partial, ..
        } if section.part.is_empty() && section.text.is_none() => {
            Some((name("BODY[]", *partial), *partial))
        }
        FetchAtt::Binary { part, partial, .. } if part.is_empty() => {
            Some((name("BINARY[]", *partial), *partial))
        }
        _ => None,
    }
}

fn name(base: &str, partial: Option<(u32, u32)>) -> String {
    match partial {
        Some((start, _)) => format!("{base}<{start}>"),
        None => base.to_string(),
    }
}

/// True when the body holds a NUL octet: it is then sent the buffered
/// way (re-encoded for display; since issue 19 only mail stored before
/// delivery re-encoded its binary parts, see crate::binary, holds any).
/// Reads it a chunk at a time. A body that is gone counts as true:
/// the buffered way reports it (`EXPUNGEISSUED`).
pub(super) async fn has_nul(store: &dyn Store, body: BodyId, size: u64) -> Result<bool, ImapError> {
    let mut pos = 0;
    let mut chunk = Vec::new();
    while pos < size {
        chunk = match store
            .read_body_range_into(body, pos, BODY_CHUNK, chunk)
            .await
        {
            Ok(c) => c,
            Err(store::StoreError::NotFound(_)) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        if chunk.is_empty() {
            break;
        }
        if chunk.contains(&0) {
            return Ok(true);
        }
        pos += chunk.len() as u64;
    }
    Ok(false)
}

/// Writes `* seq FETCH (items... NAME {n}` then the octets from the
/// store, then `)`. A read that fails once the literal is announced
/// cannot be answered in the protocol: the connection ends (`Gone`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn write(
    out: &mut Out<'_>,
    store: &dyn Store,
    seq: u32,
    items: Vec<FetchValue>,
    att: &FetchAtt,
    body: BodyId,
    size: u64,
) -> Result<(), ImapError> {
    let Some((name, partial)) = whole(att) else {
        return Err(ImapError::Gone);
    };
    let (start, len) = match partial {
        None => (0, size),
        Some((start, n)) => {
            let start = u64::from(start).min(size);
            (start, u64::from(n).min(size - start))
        }
    };
    let had_items = !items.is_empty();
    out.data(Data::Fetch { seq, items });
    // The serialiser closed the list: reopen it for the literal.
    if out.buf.ends_with(b")\r\n") {
        out.buf.truncate(out.buf.len() - 3);
    }
    if had_items {
        out.buf.push(b' ');
    }
    out.buf
        .extend_from_slice(format!("{name} {{{len}}}\r\n").as_bytes());
    let mut sent = 0u64;
    let mut chunk = Vec::new();
    while sent < len {
        let want = usize::try_from((len - sent).min(BODY_CHUNK as u64)).unwrap_or(BODY_CHUNK);
        chunk = match store
            .read_body_range_into(body, start + sent, want, chunk)
            .await
        {
            Ok(c) if !c.is_empty() => c,
            Ok(_) | Err(_) => {
                tracing::warn!(body = body.0, "imap: body gone while it was sent; closing");
                return Err(ImapError::Gone);
            }
        };
        sent += chunk.len() as u64;
        out.buf.extend_from_slice(&chunk);
        out.flush_if_big().await?;
    }
    out.buf.extend_from_slice(b")\r\n");
    out.flush_if_big().await
}

#[cfg(test)]
mod tests {
    use proto_imap::fetch::{Section, SectionText};

    use super::*;

    fn section(part: Vec<u32>, text: Option<SectionText>) -> FetchAtt {
        FetchAtt::Section {
            peek: true,
            section: Section { part, text },
            partial: None,
        }
    }

    #[test]
    fn only_a_lone_whole_message_item_is_streamed() {
        assert_eq!(plan(&[FetchAtt::Uid, section(vec![], None)]), Some(1));
        assert_eq!(plan(&[FetchAtt::Rfc822, FetchAtt::Flags]), Some(0));
        assert_eq!(plan(&[section(vec![1], None)]), None);
        assert_eq!(plan(&[section(vec![], Some(SectionText::Text))]), None);
        assert_eq!(plan(&[section(vec![], None), FetchAtt::Envelope]), None);
        assert_eq!(plan(&[section(vec![], None), FetchAtt::Rfc822]), None);
        assert_eq!(plan(&[FetchAtt::Uid, FetchAtt::Flags]), None);
    }
}
