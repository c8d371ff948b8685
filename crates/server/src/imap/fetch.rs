//! FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9; RFC 3516 BINARY).
//!
//! The body is read from the store only when an item needs it, and parsed
//! (once per message) only for ENVELOPE, BODY[STRUCTURE] and sections.
//! Fetching a section without PEEK sets \Seen first (durably) and the
//! response then carries the new FLAGS. Responses stream out as they are
//! made. A message expunged by another session but not yet reported gets
//! no data, and the command ends `NO [EXPUNGEISSUED]` (RFC 2180 4.1.2).

use proto_imap::mime::{self, BinaryError, Part};
use proto_imap::{Code, Data, FetchAtt, FetchValue, SeqSet};
use store::{FlagOp, StoreError, Uid};

use super::select::no_mailbox;
use super::session::{CmdResult, ImapError, Out, Session, done};

fn partial_name(base: String, partial: Option<(u32, u32)>) -> String {
    match partial {
        Some((start, _)) => format!("{base}<{start}>"),
        None => base,
    }
}

fn apply_partial(data: Vec<u8>, partial: Option<(u32, u32)>) -> Vec<u8> {
    match partial {
        None => data,
        Some((start, len)) => {
            let start = (start as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            data.get(start..end).unwrap_or_default().to_vec()
        }
    }
}

impl Session {
    pub(super) async fn fetch(
        &mut self,
        uid_cmd: bool,
        set: &SeqSet,
        atts: &[FetchAtt],
        out: &mut Out<'_>,
    ) -> CmdResult {
        let rev2 = self.rev2;
        let ctx = self.ctx.clone();
        let sel = self.selected.as_mut().ok_or_else(no_mailbox)?;
        let indices = sel.resolve(set, uid_cmd)?;
        let mut atts: Vec<FetchAtt> = atts.to_vec();
        if uid_cmd && !atts.contains(&FetchAtt::Uid) {
            atts.insert(0, FetchAtt::Uid);
        }
        // \Seen first, in one durable write (RFC 9051 6.4.5).
        let sets_seen = !sel.read_only && atts.iter().any(FetchAtt::sets_seen);
        let mut seen_now: Vec<Uid> = Vec::new();
        if sets_seen {
            let unseen: Vec<Uid> = indices
                .iter()
                .filter_map(|&i| sel.msgs.get(i))
                .filter(|m| !m.expunged && !m.has_flag("\\Seen"))
                .map(|m| m.uid())
                .collect();
            if !unseen.is_empty() {
                let changed = ctx
                    .store
                    .set_flags(sel.id(), unseen, FlagOp::Add, vec!["\\Seen".into()])
                    .await?;
                for c in changed {
                    if let Some(m) = sel.msgs.iter_mut().find(|m| m.uid() == c.uid) {
                        m.meta.flags = c.flags;
                        m.meta.modseq = c.modseq;
                        seen_now.push(c.uid);
                    }
                }
            }
        }
        let needs_body = atts.iter().any(FetchAtt::needs_body);
        let mut expunge_issued = false;
        for i in indices {
            let Some(msg) = sel.msgs.get(i) else { continue };
            if msg.expunged {
                expunge_issued = true;
                continue;
            }
            let raw = if needs_body {
                match ctx.store.read_body(msg.meta.body).await {
                    Ok(r) => Some(r),
                    Err(StoreError::NotFound(_)) => {
                        expunge_issued = true;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                None
            };
            let part = raw.as_deref().map(Part::parse);
            let mut items = Vec::with_capacity(atts.len() + 1);
            for att in &atts {
                items.push(fetch_item(att, msg, raw.as_deref(), part.as_ref(), rev2)?);
            }
            if seen_now.contains(&msg.uid()) && !atts.contains(&FetchAtt::Flags) {
                items.push(FetchValue::Flags(msg.flags(rev2)));
            }
            out.data(Data::Fetch {
                seq: i as u32 + 1,
                items,
            });
            out.flush_if_big().await?;
        }
        if expunge_issued && !uid_cmd {
            return Err(ImapError::no(
                Some(Code::ExpungeIssued),
                "some messages were expunged by another session",
            ));
        }
        done("FETCH completed")
    }
}

fn fetch_item(
    att: &FetchAtt,
    msg: &super::view::Msg,
    raw: Option<&[u8]>,
    part: Option<&Part<'_>>,
    rev2: bool,
) -> Result<FetchValue, ImapError> {
    let body = || {
        raw.zip(part)
            .ok_or_else(|| ImapError::no(Some(Code::ServerBug), "no body"))
    };
    Ok(match att {
        FetchAtt::Flags => FetchValue::Flags(msg.flags(rev2)),
        FetchAtt::InternalDate => FetchValue::InternalDate(msg.meta.internal_date),
        FetchAtt::Rfc822Size => FetchValue::Rfc822Size(msg.meta.size),
        FetchAtt::Uid => FetchValue::Uid(msg.uid().0),
        FetchAtt::ModSeq => FetchValue::ModSeq(msg.meta.modseq),
        FetchAtt::Envelope => FetchValue::Envelope(Box::new(mime::envelope(body()?.1))),
        FetchAtt::Body => FetchValue::Body(Box::new(mime::body_structure(body()?.1))),
        FetchAtt::BodyStructure => {
            FetchValue::BodyStructure(Box::new(mime::body_structure(body()?.1)))
        }
        FetchAtt::Rfc822 => FetchValue::Section {
            name: "RFC822".into(),
            data: Some(body()?.0.to_vec()),
        },
        FetchAtt::Rfc822Header => FetchValue::Section {
            name: "RFC822.HEADER".into(),
            data: Some(body()?.1.header.to_vec()),
        },
        FetchAtt::Rfc822Text => FetchValue::Section {
            name: "RFC822.TEXT".into(),
            data: Some(body()?.1.body.to_vec()),
        },
        FetchAtt::Section {
            section, partial, ..
        } => {
            let (raw, part) = body()?;
            let data = mime::section(part, raw, section).map(|d| apply_partial(d, *partial));
            FetchValue::Section {
                name: partial_name(format!("BODY[{}]", section.to_wire()), *partial),
                // A part that does not exist is an empty string (RFC 9051
                // 6.4.5 leaves it open; empty is what clients cope with).
                data: Some(data.unwrap_or_default()),
            }
        }
        FetchAtt::Binary {
            part: path,
            partial,
            ..
        } => {
            let (raw, part) = body()?;
            let name = partial_name(format!("BINARY[{}]", join(path)), *partial);
            match mime::binary(part, raw, path) {
                Ok(d) => FetchValue::Binary {
                    name,
                    data: Some(apply_partial(d, *partial)),
                },
                Err(BinaryError::UnknownEncoding) => {
                    return Err(ImapError::no(
                        Some(Code::UnknownCte),
                        "unknown content transfer encoding",
                    ));
                }
                Err(BinaryError::NoSuchPart) => FetchValue::Binary { name, data: None },
            }
        }
        FetchAtt::BinarySize { part: path } => {
            let (raw, part) = body()?;
            let name = format!("BINARY.SIZE[{}]", join(path));
            match mime::binary(part, raw, path) {
                Ok(d) => FetchValue::BinarySize {
                    name,
                    size: d.len() as u64,
                },
                Err(BinaryError::UnknownEncoding) => {
                    return Err(ImapError::no(
                        Some(Code::UnknownCte),
                        "unknown content transfer encoding",
                    ));
                }
                Err(BinaryError::NoSuchPart) => FetchValue::BinarySize { name, size: 0 },
            }
        }
    })
}

fn join(path: &[u32]) -> String {
    path.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}
