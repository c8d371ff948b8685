//! Load (issue 15): 1 000 sessions idle on 1 000 different users while
//! mail and SEND messages arrive for random ones; each session gets its
//! own EXISTS and ALERT and nobody else's. The test config raises the
//! connection limits; everything runs in the shipped binary over real
//! sockets.

mod common;
mod imap_kit;

use std::collections::HashMap;
use std::time::Instant;

use common::{Extra, Server, Smtp};
use imap_kit::Imap;

const SESSIONS: usize = 1_000;
/// Messages delivered over SMTP to random users.
const DELIVERIES: usize = 200;
/// SEND transactions, each to a different random user.
const SENDS: usize = 50;

/// A fixed xorshift: random users, the same ones every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn user(i: usize) -> String {
    format!("u{i}@example.test")
}

#[test]
fn a_thousand_idle_users_each_get_their_own_exists_and_alert() {
    let limits = format!(
        "max_connections = {0}\nmax_connections_per_ip = {0}",
        SESSIONS + 100
    );
    let server = Server::create_with(Extra {
        imap: limits,
        ..Extra::default()
    });
    let users: Vec<String> = (0..SESSIONS).map(user).collect();
    server.add_users(&users, "pw");
    let server = server.run();

    let started = Instant::now();
    let mut sessions: Vec<Imap> = Vec::with_capacity(SESSIONS);
    for u in &users {
        let mut c = Imap::connect(server.imap);
        c.ok(&format!("LOGIN {u} pw"));
        c.ok("SELECT INBOX");
        c.send("i1 IDLE");
        assert_eq!(c.line(), "+ idling");
        sessions.push(c);
    }
    eprintln!("{SESSIONS} sessions idling after {:?}", started.elapsed());

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut delivered: HashMap<usize, u32> = HashMap::new();
    let mut smtp = Smtp::connect(server.smtp).ehlo();
    for n in 0..DELIVERIES {
        let to = rng.below(SESSIONS);
        let msg = format!("Subject: load {n}\r\n\r\nfor {to}\r\n");
        let r = smtp.send_mail("sender@other.test", &[&user(to)], msg.as_bytes());
        assert_eq!(r.code, 250, "{r:?}");
        *delivered.entry(to).or_insert(0) += 1;
    }
    let mut alerted: Vec<usize> = Vec::new();
    while alerted.len() < SENDS {
        let to = rng.below(SESSIONS);
        if alerted.contains(&to) {
            continue;
        }
        smtp.cmd("SEND FROM:<sender@example.test>", 250);
        smtp.cmd(&format!("RCPT TO:<{}>", user(to)), 250);
        smtp.cmd("DATA", 354);
        smtp.send_raw(format!("Subject: ping {to}\r\n\r\nhi\r\n.\r\n").as_bytes());
        smtp.expect(250);
        alerted.push(to);
    }
    let sent = Instant::now();

    // Every target sees its own count and its own ALERT, as they come.
    for (i, c) in sessions.iter_mut().enumerate() {
        let want = delivered.get(&i).copied().unwrap_or(0);
        let mut exists = 0;
        let mut alert = !alerted.contains(&i);
        while exists < want || !alert {
            let l = c.line();
            if let Some(n) = l.strip_prefix("* ").and_then(|r| r.strip_suffix(" EXISTS")) {
                exists = n.parse().expect("EXISTS count");
                assert!(exists <= want, "{} saw {l} for {want} messages", user(i));
            } else if l.starts_with("* OK [ALERT]") {
                assert!(
                    l.ends_with(&format!("ping {i} - hi")),
                    "{} got {l}",
                    user(i)
                );
                alert = true;
            }
        }
    }
    eprintln!(
        "every EXISTS and ALERT arrived {:?} after the last message",
        sent.elapsed()
    );
    // And nothing else: DONE, and the rest of each session's output is
    // only what it was owed (nothing, for the others).
    for c in &mut sessions {
        c.send("DONE");
    }
    for (i, c) in sessions.iter_mut().enumerate() {
        let r = c.read_until_tagged("i1");
        assert!(r.tagged.starts_with("i1 OK"), "{r:?}");
        for l in &r.untagged {
            let stray = l.ends_with(" EXISTS") || l.starts_with("* OK [ALERT]");
            assert!(!stray, "{} got {l}", user(i));
        }
    }
}
