//! The compact listing a session opens a mailbox from (SELECT, EXAMINE,
//! RFC 9051 6.3.2): every entry's UID and flags, nothing else, with each
//! distinct flag set stored once. [`crate::Store::mailbox_index`] returns
//! it; [`IndexBuilder`] is how every backend makes one from its rows.
//!
//! Why not [`crate::MessageMeta`]: a mailbox of 100 000 entries as
//! `MessageMeta` is 100 000 flag vectors (one allocation per flag) and,
//! in the SQLite store, a join on `bodies` whose `size` column lies after
//! the body itself, so reading it walks each body's overflow pages: most
//! of SELECT's time went there (docs/storage.md). A session needs only
//! the UIDs and flags to number the messages and report UNSEEN; the rest
//! is read per command, a range at a time.

use std::collections::HashMap;

use crate::Uid;

/// A mailbox's entries as SELECT needs them, from one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxIndex {
    /// The mailbox's HIGHESTMODSEQ in the snapshot (RFC 7162 3.1.2.1):
    /// where the session's next [`crate::Store::changes_since`] starts.
    pub highestmodseq: u64,
    /// The distinct flag sets, each once, as [`crate::MessageMeta::flags`]
    /// has them. Most mailboxes have a handful.
    pub flag_sets: Vec<Vec<String>>,
    /// Every entry, ascending UID, with the index of its flag set in
    /// [`MailboxIndex::flag_sets`]: 8 octets an entry.
    pub entries: Vec<(Uid, u32)>,
}

impl MailboxIndex {
    /// The flags of set `set` (none for an index out of range).
    pub fn flags(&self, set: u32) -> &[String] {
        self.flag_sets.get(set as usize).map_or(&[], Vec::as_slice)
    }

    /// The UIDs, ascending.
    pub fn uids(&self) -> impl DoubleEndedIterator<Item = Uid> + ExactSizeIterator + '_ {
        self.entries.iter().map(|&(u, _)| u)
    }

    /// True when `uid` is an entry.
    pub fn contains(&self, uid: Uid) -> bool {
        self.entries.binary_search_by_key(&uid, |&(u, _)| u).is_ok()
    }
}

/// Makes a [`MailboxIndex`] from rows in any order, interning flag sets by
/// their stored text (so a row costs no allocation unless its set is new).
pub struct IndexBuilder {
    index: MailboxIndex,
    by_text: HashMap<String, u32>,
    /// The set of the empty text, once seen: most entries (new mail) have
    /// no flags, and they skip the hash map.
    empty: Option<u32>,
    /// The previous entry's text and set: neighbours mostly share flags
    /// (old mail all \Seen), and a comparison costs less than a lookup.
    last: Option<(String, u32)>,
}

impl IndexBuilder {
    pub fn new(highestmodseq: u64, capacity: usize) -> IndexBuilder {
        IndexBuilder {
            index: MailboxIndex {
                highestmodseq,
                flag_sets: Vec::new(),
                entries: Vec::with_capacity(capacity),
            },
            by_text: HashMap::new(),
            empty: None,
            last: None,
        }
    }

    /// One entry whose flags are stored as `text` (space-separated, as
    /// [`crate::rules::flags_to_text`] writes them).
    pub fn push_text(&mut self, uid: Uid, text: &str) {
        if text.is_empty()
            && let Some(set) = self.empty
        {
            self.index.entries.push((uid, set));
            return;
        }
        if let Some((last, set)) = &self.last
            && last == text
        {
            self.index.entries.push((uid, *set));
            return;
        }
        let set = match self.by_text.get(text) {
            Some(&set) => set,
            None => {
                let set = self.index.flag_sets.len() as u32;
                self.index
                    .flag_sets
                    .push(crate::rules::flags_from_text(text));
                self.by_text.insert(text.to_string(), set);
                if text.is_empty() {
                    self.empty = Some(set);
                }
                set
            }
        };
        self.index.entries.push((uid, set));
        match &mut self.last {
            Some((last, last_set)) => {
                last.clear();
                last.push_str(text);
                *last_set = set;
            }
            None => self.last = Some((text.to_string(), set)),
        }
    }

    /// One entry with its flags as a list (for a backend that has them
    /// parsed already).
    pub fn push_flags(&mut self, uid: Uid, flags: &[String]) {
        self.push_text(uid, &crate::rules::flags_to_text(flags));
    }

    /// The index, entries ascending by UID.
    pub fn finish(mut self) -> MailboxIndex {
        if !self.index.entries.is_sorted_by_key(|&(u, _)| u) {
            self.index.entries.sort_unstable_by_key(|&(u, _)| u);
        }
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_flag_texts_share_one_set_and_entries_come_out_ascending() {
        let mut b = IndexBuilder::new(7, 4);
        b.push_text(Uid(3), "\\Seen");
        b.push_text(Uid(1), "");
        b.push_text(Uid(2), "\\Seen");
        b.push_flags(Uid(4), &["\\Seen".to_string()]);
        // The empty text again, after another: its own set still.
        b.push_text(Uid(5), "");
        b.push_text(Uid(6), "$Work");
        let ix = b.finish();
        assert_eq!(ix.highestmodseq, 7);
        assert_eq!(ix.flag_sets.len(), 3);
        assert_eq!(
            ix.uids().map(|u| u.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        let sets: Vec<&[String]> = ix.entries.iter().map(|&(_, s)| ix.flags(s)).collect();
        assert!(sets[0].is_empty() && sets[4].is_empty());
        assert!(sets[1..4].iter().all(|s| *s == ["\\Seen".to_string()]));
        assert_eq!(sets[5], ["$Work".to_string()]);
        assert!(ix.contains(Uid(4)) && !ix.contains(Uid(7)));
        assert!(ix.flags(99).is_empty());
    }
}
