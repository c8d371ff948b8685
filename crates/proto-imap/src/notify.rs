//! The NOTIFY command's grammar (RFC 5465 8).
//!
//! `NOTIFY NONE` or `NOTIFY SET [STATUS] event-group...`, where each group
//! names its mailboxes (a filter) and the events wanted for them. The
//! parser keeps every event the client named, known or not: RFC 5465 3.1
//! answers an unsupported event with `NO [BADEVENT]` and a malformed
//! combination with `BAD`, which is the session's call, not the grammar's.

use crate::command::ParseOptions;
use crate::fetch::{FetchAtt, parse_fetch_att};
use crate::lexer::{Cursor, LexResult};
use crate::types::Mailbox;

/// Event groups in one NOTIFY SET: more would only repeat filters (there
/// are seven kinds), so this bounds the parse, not a real client.
pub const MAX_EVENT_GROUPS: usize = 32;
/// Mailboxes named by one SUBTREE or MAILBOXES filter.
pub const MAX_FILTER_MAILBOXES: usize = 256;
/// Events in one group (RFC 5465 defines nine).
pub const MAX_EVENTS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyCommand {
    /// RFC 5465 3.1: no more notifications (beyond the base protocol's).
    None,
    /// With `status`, a STATUS response for each watched mailbox first.
    Set {
        status: bool,
        groups: Vec<EventGroup>,
    },
}

/// One `(filter-mailboxes events)`; `events` empty is `NONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGroup {
    pub filter: Filter,
    pub events: Vec<Event>,
}

/// RFC 5465 6: which mailboxes a group is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Selected,
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    /// The mailboxes and all their inferiors.
    Subtree(Vec<Mailbox>),
    /// Exactly these mailboxes.
    Mailboxes(Vec<Mailbox>),
}

/// RFC 5465 5: the event types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// With the FETCH attributes to send for each new message (allowed
    /// for the selected mailbox only).
    MessageNew(Vec<FetchAtt>),
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
    /// `event-ext`: an atom this server does not know.
    Other(String),
}

impl Event {
    /// The event's name as RFC 5465 spells it.
    pub fn name(&self) -> &str {
        match self {
            Event::MessageNew(_) => "MessageNew",
            Event::MessageExpunge => "MessageExpunge",
            Event::FlagChange => "FlagChange",
            Event::AnnotationChange => "AnnotationChange",
            Event::MailboxName => "MailboxName",
            Event::SubscriptionChange => "SubscriptionChange",
            Event::MailboxMetadataChange => "MailboxMetadataChange",
            Event::ServerMetadataChange => "ServerMetadataChange",
            Event::Other(name) => name,
        }
    }
}

/// What follows `NOTIFY ` (RFC 5465 8: `notify`).
pub fn parse_notify(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<NotifyCommand> {
    let word = c.atom()?.to_ascii_uppercase();
    match word.as_str() {
        "NONE" => Ok(NotifyCommand::None),
        "SET" => {
            c.sp()?;
            let status = c.eat_word("STATUS ");
            let mut groups = vec![parse_group(c, opts)?];
            while c.eat(b' ') {
                if groups.len() >= MAX_EVENT_GROUPS {
                    return Err("too many NOTIFY event groups");
                }
                groups.push(parse_group(c, opts)?);
            }
            Ok(NotifyCommand::Set { status, groups })
        }
        _ => Err("expected NOTIFY SET or NOTIFY NONE"),
    }
}

fn parse_group(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<EventGroup> {
    c.expect(b'(', "expected '(' to open an event group")?;
    let filter = match c.atom()?.to_ascii_uppercase().as_str() {
        "SELECTED" => Filter::Selected,
        "SELECTED-DELAYED" => Filter::SelectedDelayed,
        "INBOXES" => Filter::Inboxes,
        "PERSONAL" => Filter::Personal,
        "SUBSCRIBED" => Filter::Subscribed,
        "SUBTREE" => {
            c.sp()?;
            Filter::Subtree(one_or_more_mailbox(c, opts)?)
        }
        "MAILBOXES" => {
            c.sp()?;
            Filter::Mailboxes(one_or_more_mailbox(c, opts)?)
        }
        _ => return Err("unknown NOTIFY filter"),
    };
    c.sp()?;
    let events = if c.eat_word("NONE") {
        Vec::new()
    } else if c.peek() == Some(b'(') {
        c.paren_list(false, MAX_EVENTS, parse_event)?
    } else {
        // RFC 5465 3.1's own examples leave the events unparenthesised
        // (`(selected MessageNew (uid) MessageExpunge)`); clients copy
        // them, so that form is read as well.
        let mut events = vec![parse_event(c)?];
        while c.eat(b' ') {
            if events.len() >= MAX_EVENTS {
                return Err("too many NOTIFY events");
            }
            events.push(parse_event(c)?);
        }
        events
    };
    c.expect(b')', "expected ')' to close an event group")?;
    Ok(EventGroup { filter, events })
}

fn one_or_more_mailbox(c: &mut Cursor<'_>, opts: ParseOptions) -> LexResult<Vec<Mailbox>> {
    if c.peek() == Some(b'(') {
        c.paren_list(false, MAX_FILTER_MAILBOXES, |c| {
            crate::command::mailbox(c, opts)
        })
    } else {
        Ok(vec![crate::command::mailbox(c, opts)?])
    }
}

fn parse_event(c: &mut Cursor<'_>) -> LexResult<Event> {
    let word = c.atom()?;
    Ok(match word.to_ascii_lowercase().as_str() {
        "messagenew" => {
            let mut atts = Vec::new();
            if c.rest().starts_with(b" (") {
                c.sp()?;
                atts = c.paren_list(false, 64, parse_fetch_att)?;
            }
            Event::MessageNew(atts)
        }
        "messageexpunge" => Event::MessageExpunge,
        "flagchange" => Event::FlagChange,
        "annotationchange" => Event::AnnotationChange,
        "mailboxname" => Event::MailboxName,
        "subscriptionchange" => Event::SubscriptionChange,
        "mailboxmetadatachange" => Event::MailboxMetadataChange,
        "servermetadatachange" => Event::ServerMetadataChange,
        _ => Event::Other(word.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CommandKind, parse_command};

    fn notify(line: &str) -> NotifyCommand {
        match parse_command(line.as_bytes(), ParseOptions::default()) {
            Ok(cmd) => match cmd.kind {
                CommandKind::Notify(n) => n,
                other => panic!("not NOTIFY: {other:?}"),
            },
            Err(e) => panic!("{line}: {e:?}"),
        }
    }

    #[test]
    fn rfc_5465_examples_parse() {
        // RFC 5465 3.1's example, events unparenthesised as there.
        let n = notify(
            "a notify set status (selected MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge) (subtree Lists MessageNew MessageExpunge) (mailboxes misc MessageNew)\r\n",
        );
        let NotifyCommand::Set { status, groups } = n else {
            panic!("not SET");
        };
        assert!(status);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].filter, Filter::Selected);
        assert!(matches!(&groups[0].events[0], Event::MessageNew(atts) if atts.len() == 2));
        assert_eq!(groups[0].events[1], Event::MessageExpunge);
        let Filter::Subtree(m) = &groups[1].filter else {
            panic!("not SUBTREE");
        };
        assert_eq!(m[0].as_str(), "Lists");
        assert_eq!(groups[1].events.len(), 2);
        assert!(matches!(&groups[2].filter, Filter::Mailboxes(m) if m[0].as_str() == "misc"));
        assert_eq!(
            notify("b NOTIFY SET (personal (MailboxName SubscriptionChange))\r\n"),
            NotifyCommand::Set {
                status: false,
                groups: vec![EventGroup {
                    filter: Filter::Personal,
                    events: vec![Event::MailboxName, Event::SubscriptionChange],
                }],
            }
        );
        assert_eq!(notify("c NOTIFY NONE\r\n"), NotifyCommand::None);
    }

    #[test]
    fn filters_events_none_and_unknown_events() {
        let NotifyCommand::Set { groups, .. } = notify(
            "a NOTIFY SET (mailboxes (INBOX \"a b\") (MessageNew MessageExpunge FlagChange)) (selected-delayed NONE) (inboxes (Foo))\r\n",
        ) else {
            panic!("not SET");
        };
        assert!(matches!(&groups[0].filter, Filter::Mailboxes(m) if m.len() == 2));
        assert_eq!(groups[0].events.len(), 3);
        assert_eq!(groups[1].filter, Filter::SelectedDelayed);
        assert!(groups[1].events.is_empty());
        assert_eq!(groups[2].events, vec![Event::Other("Foo".into())]);
    }

    #[test]
    fn malformed_notify_is_a_syntax_error() {
        for line in [
            "a NOTIFY\r\n",
            "a NOTIFY SET\r\n",
            "a NOTIFY SET ()\r\n",
            "a NOTIFY SET (nosuchfilter (MessageNew))\r\n",
            "a NOTIFY SET (selected ())\r\n",
            "a NOTIFY SET (subtree (MessageNew))\r\n",
            "a NOTIFY MAYBE\r\n",
        ] {
            assert!(
                parse_command(line.as_bytes(), ParseOptions::default()).is_err(),
                "{line}"
            );
        }
    }
}
