//! The in-flight data budget (issue 9, "Denial of service"): a message is
//! admitted whole at DATA or refused there with 452 4.3.1, so concurrent
//! senders never all spend the budget and all fail after the data.

mod common;
use std::sync::{Arc, Barrier};

use common::{Server, Smtp, enhanced};

const MB: usize = 1024 * 1024;
/// Six senders of 20 MB against 64 MB: three fit at once.
const SENDERS: usize = 6;
const MESSAGE: usize = 20 * MB;
const BUDGET: usize = 64 * MB;

fn message(n: usize) -> Vec<u8> {
    let mut m = format!("Subject: big {n}\r\n\r\n").into_bytes();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n";
    while m.len() + line.len() <= MESSAGE {
        m.extend_from_slice(line);
    }
    m
}

/// What one sender saw.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// 354, the data, 250.
    Delivered,
    /// 452 4.3.1 to DATA, then after the others finished a retry: 250.
    RefusedAtStartThenDelivered,
}

#[test]
fn six_concurrent_20mb_messages_against_64mb_are_admitted_whole_or_refused_at_data() {
    // Held in memory whole: a spool threshold above the messages' size.
    let server = Server::start_with(
        &format!("[store]\nspool_threshold = {}\n", 2 * MESSAGE),
        &format!("max_inflight_data = {BUDGET}\n"),
    );
    let outcomes = send_six(&server);
    let delivered = outcomes
        .iter()
        .filter(|o| **o == Outcome::Delivered)
        .count();
    // 64 MB holds three 20 MB reservations, not four.
    assert_eq!(delivered, BUDGET / MESSAGE, "{outcomes:?}");
    assert_eq!(server.inbox_meta("alice@example.test").len(), SENDERS);
}

/// Issue 19: past `[store] spool_threshold` a message is spooled to disk
/// as it arrives and reserves about the threshold, not its size, so the
/// same budget admits all six at once.
#[test]
fn spooled_20mb_messages_reserve_the_threshold_so_six_fit_in_64mb() {
    let server = Server::start_with("", &format!("max_inflight_data = {BUDGET}\n"));
    let outcomes = send_six(&server);
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Delivered),
        "{outcomes:?}"
    );
    assert_eq!(server.inbox_meta("alice@example.test").len(), SENDERS);
}

/// Six senders at once: what each saw.
fn send_six(server: &Server) -> Vec<Outcome> {
    // Every sender has its DATA answered before any sends data, then every
    // admitted one finishes before any refused one retries.
    let asked = Arc::new(Barrier::new(SENDERS));
    let finished = Arc::new(Barrier::new(SENDERS));
    let threads: Vec<_> = (0..SENDERS)
        .map(|n| {
            let (asked, finished) = (Arc::clone(&asked), Arc::clone(&finished));
            let addr = server.smtp;
            std::thread::spawn(move || {
                let body = message(n);
                let mut c = Smtp::connect(addr).ehlo();
                c.cmd(
                    &format!("MAIL FROM:<s{n}@remote.test> SIZE={}", body.len()),
                    250,
                );
                c.cmd("RCPT TO:<alice@example.test>", 250);
                c.send("DATA");
                let first = c.reply();
                asked.wait();
                let outcome = if first.code == 354 {
                    c.send_raw(&body);
                    c.send_raw(b".\r\n");
                    let r = c.reply();
                    assert_eq!(r.code, 250, "sender {n}: refused after the data: {r:?}");
                    Outcome::Delivered
                } else {
                    assert_eq!(
                        (first.code, enhanced(&first)),
                        (452, "4.3.1".to_string()),
                        "sender {n}: {first:?}"
                    );
                    Outcome::RefusedAtStartThenDelivered
                };
                finished.wait();
                if outcome == Outcome::RefusedAtStartThenDelivered {
                    // The transaction is still open: DATA again.
                    c.cmd("DATA", 354);
                    c.send_raw(&body);
                    c.send_raw(b".\r\n");
                    let r = c.reply();
                    assert_eq!(r.code, 250, "sender {n}: retry: {r:?}");
                }
                c.cmd("QUIT", 221);
                outcome
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("sender thread"))
        .collect()
}

#[test]
fn a_message_without_size_reserves_the_maximum_and_is_never_refused_after_354() {
    // max_message_size 1 MB, budget 2 MB: two SIZE-less messages fit.
    let server = Server::start_with(
        "",
        &format!("max_message_size = {MB}\nmax_inflight_data = {}\n", 2 * MB),
    );
    let mut a = server.connect().ehlo();
    let mut b = server.connect().ehlo();
    let mut c = server.connect().ehlo();
    for s in [&mut a, &mut b, &mut c] {
        s.cmd("MAIL FROM:<x@remote.test>", 250);
        s.cmd("RCPT TO:<alice@example.test>", 250);
    }
    a.cmd("DATA", 354);
    b.cmd("DATA", 354);
    let r = c.cmd("DATA", 452);
    assert_eq!(enhanced(&r), "4.3.1");
    // A declared small size still does not fit: the budget is spent.
    c.cmd("RSET", 250);
    c.cmd("MAIL FROM:<x@remote.test> SIZE=1000", 250);
    c.cmd("RCPT TO:<alice@example.test>", 250);
    c.cmd("DATA", 452);
    // The admitted ones may send up to the maximum.
    let full = vec![b'x'; MB - 100];
    for s in [&mut a, &mut b] {
        s.send_raw(b"Subject: full\r\n\r\n");
        s.send_raw(&full);
        s.send_raw(b"\r\n.\r\n");
        s.expect(250);
    }
    // BDAT: the first chunk admits; with the budget back it passes.
    c.send("BDAT 20 LAST");
    c.send_raw(b"Subject: b\r\n\r\nbdat\r\n");
    c.expect(250);
    assert_eq!(server.inbox_meta("alice@example.test").len(), 3);
}

#[test]
fn a_bdat_refused_for_the_budget_is_read_whole_and_ends_the_transaction() {
    let server = Server::start_with(
        "",
        &format!("max_message_size = {MB}\nmax_inflight_data = {MB}\n"),
    );
    let mut a = server.connect().ehlo();
    let mut b = server.connect().ehlo();
    for s in [&mut a, &mut b] {
        s.cmd("MAIL FROM:<x@remote.test>", 250);
        s.cmd("RCPT TO:<alice@example.test>", 250);
    }
    a.cmd("DATA", 354);
    b.send("BDAT 10");
    b.send_raw(b"0123456789");
    assert_eq!(enhanced(&b.expect(452)), "4.3.1");
    // RFC 3030 2: the failed chunk ended the transaction.
    b.send("BDAT 5 LAST");
    b.send_raw(b"abcde");
    b.expect(503);
    b.cmd("NOOP", 250);
    a.send_raw(b"Subject: a\r\n\r\nhi\r\n.\r\n");
    a.expect(250);
}
