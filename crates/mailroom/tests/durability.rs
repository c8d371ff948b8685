//! The durability promise (SPEC 6): concurrent senders while the server is
//! killed with SIGKILL; after a restart, acknowledged ⊆ stored ⊆ sent,
//! every stored message byte-identical, none duplicated.

mod common;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, Smtp};

const SENDERS: usize = 8;
const PER_SENDER: usize = 60;
/// Kill once this many messages were acknowledged.
const KILL_AFTER: usize = 150;

fn message(sender: usize, n: usize) -> Vec<u8> {
    let id = format!("s{sender}-m{n}");
    let filler = format!("{id} ").repeat(40 + n % 50);
    format!("Message-Id: <{id}@test>\r\nSubject: {id}\r\n\r\n{filler}\r\n.dot line\r\nend {id}\r\n")
        .into_bytes()
}

fn wire(msg: &[u8]) -> Vec<u8> {
    // Dot-stuff for the wire.
    let text = String::from_utf8(msg.to_vec()).unwrap();
    text.split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<String>()
        .into_bytes()
}

fn id_of(stored: &[u8]) -> String {
    let text = String::from_utf8_lossy(stored);
    let start = text.find("Message-Id: <").expect("message id") + "Message-Id: <".len();
    let end = start + text[start..].find('@').unwrap();
    text[start..end].to_string()
}

#[test]
fn kill9_mid_stream_loses_no_acknowledged_message() {
    let mut server = Server::start();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let acks = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let addr = server.smtp;
    let threads: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (acked, sent, acks, dead) =
                (acked.clone(), sent.clone(), acks.clone(), dead.clone());
            std::thread::spawn(move || {
                let Ok(stream) = std::net::TcpStream::connect(addr) else {
                    return;
                };
                let mut c = Smtp::from_stream(stream);
                let run = || -> Option<()> {
                    let _ = c.reply();
                    c.send("EHLO sender.test");
                    let _ = c.reply();
                    for n in 0..PER_SENDER {
                        if dead.load(Ordering::SeqCst) {
                            return None;
                        }
                        let msg = message(s, n);
                        let id = format!("s{s}-m{n}");
                        c.send("MAIL FROM:<load@remote.test>");
                        c.send("RCPT TO:<alice@example.test>");
                        c.send("DATA");
                        c.reply();
                        c.reply();
                        c.reply();
                        sent.lock().unwrap().insert(id.clone(), msg.clone());
                        c.send_raw(&wire(&msg));
                        c.send_raw(b".\r\n");
                        let r = c.reply();
                        if r.code == 250 {
                            acked.lock().unwrap().insert(id);
                            acks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Some(())
                };
                // A killed server makes the reads panic; that is the point.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
            })
        })
        .collect();
    while acks.load(Ordering::SeqCst) < KILL_AFTER {
        std::thread::sleep(Duration::from_millis(2));
    }
    server.kill9();
    dead.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }

    // Restart on the same data: no manual step.
    server.spawn();
    let stored = server.inbox("alice@example.test");
    let acked = acked.lock().unwrap();
    let sent = sent.lock().unwrap();
    let mut seen = BTreeSet::new();
    for raw in &stored {
        let id = id_of(raw);
        assert!(seen.insert(id.clone()), "{id} stored twice");
        let original = sent
            .get(&id)
            .unwrap_or_else(|| panic!("{id} stored but never sent"));
        assert!(raw.ends_with(original), "{id} differs from what was sent");
    }
    for id in acked.iter() {
        assert!(seen.contains(id), "{id} was acknowledged but is lost");
    }
    assert!(acked.len() >= KILL_AFTER);
    // And the restarted server takes mail.
    let mut c = server.connect().ehlo();
    assert_eq!(
        c.send_mail(
            "x@remote.test",
            &["alice@example.test"],
            b"Subject: after\r\n\r\nx\r\n"
        )
        .code,
        250
    );
}
