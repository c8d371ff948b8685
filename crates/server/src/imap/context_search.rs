//! CONTEXT=SEARCH (RFC 5267 4): searches that stay current, and PARTIAL.
//!
//! `SEARCH RETURN (UPDATE)` keeps the search (its tag, key and the
//! result the client holds) with the selected mailbox. Whenever the view
//! changes (other sessions' changes as they are reported, this session's
//! STORE, EXPUNGE, APPEND, COPY, MOVE) the key is evaluated again and the
//! difference goes out as `ESEARCH (TAG t) ADDTO (0 set)` and
//! `REMOVEFROM (0 set)` (position 0: a SEARCH result has no order of its
//! own, 4.3). An expunged message leaves the result before the EXPUNGE
//! that renumbers the rest ([`Selected::update_removals`]), so the
//! numbers in REMOVEFROM are the ones the client knows. CANCELUPDATE ends
//! it; so does leaving the mailbox. At most
//! [`MAX_SEARCH_UPDATES`](proto_imap::search::MAX_SEARCH_UPDATES) per
//! session; a search past that is answered once with `OK [NOUPDATE]`.

use proto_imap::search::SearchKey;
use proto_imap::types::format_set;
use proto_imap::{Data, Tag};
use store::Uid;

use super::selected::Selected;
use super::session::{CmdResult, ImapError, Out, Session, done};

/// One updating search.
pub struct SearchUpdate {
    pub tag: Tag,
    /// UID SEARCH: the updates carry UIDs, else sequence numbers.
    pub uid: bool,
    pub key: SearchKey,
    /// SORT RETURN (UPDATE) (CONTEXT=SORT): its criteria; the result is
    /// then in their order and updates name positions in it.
    pub sort: Option<Vec<proto_imap::sort::SortCriterion>>,
    /// What the client holds: ascending, or in sort order.
    pub result: Vec<Uid>,
    /// The view's version `result` was computed at.
    pub version: u64,
}

fn update(tag: &Tag, uid: bool, add: bool, nums: &[u32]) -> Data {
    Data::ESearchUpdate {
        tag: tag.clone(),
        uid,
        add,
        position: 0,
        set: format_set(nums),
    }
}

fn update_at(tag: &Tag, uid: bool, add: bool, position: u32, n: u32) -> Data {
    Data::ESearchUpdate {
        tag: tag.clone(),
        uid,
        add,
        position,
        set: n.to_string(),
    }
}

impl Selected {
    /// Drops the messages marked expunged from every updating search,
    /// with REMOVEFROM, while their sequence numbers still hold.
    pub fn update_removals(&mut self, out: &mut Out<'_>) {
        let view = &self.view;
        for u in &mut self.updates {
            if u.sort.is_some() {
                // In sort order, one position at a time (RFC 5267 4.3).
                let mut k = 0;
                while let Some(&uid) = u.result.get(k) {
                    match view.seq_of(uid) {
                        Some((seq, true)) => {
                            let n = if u.uid { uid.0 } else { seq };
                            out.data(update_at(&u.tag, u.uid, false, k as u32 + 1, n));
                            u.result.remove(k);
                        }
                        Some((_, false)) => k += 1,
                        None => {
                            u.result.remove(k);
                        }
                    }
                }
                continue;
            }
            let mut gone = Vec::new();
            u.result.retain(|&uid| match view.seq_of(uid) {
                Some((seq, true)) => {
                    gone.push(if u.uid { uid.0 } else { seq });
                    false
                }
                Some((_, false)) => true,
                None => false,
            });
            if !gone.is_empty() {
                gone.sort_unstable();
                out.data(update(&u.tag, u.uid, false, &gone));
            }
        }
    }
}

impl Session {
    /// Evaluates the updating searches again where the view changed and
    /// reports what entered and left their results.
    pub async fn refresh_updates(&mut self, out: &mut Out<'_>) -> Result<(), ImapError> {
        let Some(sel) = self.selected() else {
            return Ok(());
        };
        let version = sel.version;
        let stale: Vec<usize> = sel
            .updates
            .iter()
            .enumerate()
            .filter(|(_, u)| u.version != version)
            .map(|(i, _)| i)
            .collect();
        for i in stale {
            let Some((key, sort)) = self
                .selected()
                .and_then(|s| s.updates.get(i))
                .map(|u| (u.key.clone(), u.sort.clone()))
            else {
                continue;
            };
            if let Some(criteria) = sort {
                let now = self.sorted_uids(&key, &criteria).await?;
                self.sort_update(i, now, version, out);
                continue;
            }
            let mut now: Vec<Uid> = self.hits(&key).await?.iter().map(|h| h.1).collect();
            now.sort_unstable();
            let Some(sel) = self.selected_mut() else {
                return Ok(());
            };
            let view = &sel.view;
            let Some(u) = sel.updates.get_mut(i) else {
                continue;
            };
            let num = |uid: Uid| -> Option<u32> {
                if u.uid {
                    Some(uid.0)
                } else {
                    view.seq_of(uid).map(|(s, _)| s)
                }
            };
            let mut removed: Vec<u32> = u
                .result
                .iter()
                .filter(|x| now.binary_search(x).is_err())
                .filter_map(|&x| num(x))
                .collect();
            let mut added: Vec<u32> = now
                .iter()
                .filter(|x| u.result.binary_search(x).is_err())
                .filter_map(|&x| num(x))
                .collect();
            removed.sort_unstable();
            added.sort_unstable();
            if !removed.is_empty() {
                out.data(update(&u.tag, u.uid, false, &removed));
            }
            if !added.is_empty() {
                out.data(update(&u.tag, u.uid, true, &added));
            }
            u.result = now;
            u.version = version;
        }
        Ok(())
    }

    /// A SORT context's update (RFC 5267 4.3): the messages that left, at
    /// their positions in what the client holds, then those that came, at
    /// theirs in the new order; applied in turn, they make the client's
    /// list the new one (a message's sort keys never change).
    fn sort_update(&mut self, i: usize, now: Vec<Uid>, version: u64, out: &mut Out<'_>) {
        let Some(sel) = self.selected_mut() else {
            return;
        };
        let view = &sel.view;
        let Some(u) = sel.updates.get_mut(i) else {
            return;
        };
        let num = |uid: Uid| -> Option<u32> {
            if u.uid {
                Some(uid.0)
            } else {
                view.seq_of(uid).map(|(s, _)| s)
            }
        };
        let mut k = 0;
        while let Some(&uid) = u.result.get(k) {
            if now.contains(&uid) {
                k += 1;
                continue;
            }
            if let Some(n) = num(uid) {
                out.data(update_at(&u.tag, u.uid, false, k as u32 + 1, n));
            }
            u.result.remove(k);
        }
        for (pos, &uid) in now.iter().enumerate() {
            if !u.result.contains(&uid)
                && let Some(n) = num(uid)
            {
                out.data(update_at(&u.tag, u.uid, true, pos as u32 + 1, n));
            }
        }
        u.result = now;
        u.version = version;
    }

    /// CANCELUPDATE (RFC 5267 4.3).
    pub(super) fn cancel_update(&mut self, tags: &[String]) -> CmdResult {
        let sel = self
            .selected_mut()
            .ok_or_else(|| ImapError::Bad("no mailbox selected".into()))?;
        let before = sel.updates.len();
        sel.updates
            .retain(|u| !tags.iter().any(|t| t == u.tag.as_str()));
        if sel.updates.len() + tags.len() > before {
            return Err(ImapError::Bad("no updating search with that tag".into()));
        }
        done("CANCELUPDATE completed")
    }
}
