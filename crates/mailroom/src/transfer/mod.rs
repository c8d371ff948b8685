//! Mail in and out of the store as files (SPEC 7, issue 20): mboxrd and
//! Maildir++ as Dovecot, mutt and Thunderbird write them. The formats
//! are pure file code here; `mailroom import` / `export` drive them.

pub mod maildir;
pub mod mbox;
pub mod run;
