//! A huge LIST must not hold the server's workers (issue 9, "Denial of
//! service": two `LIST "" "*"` over 100 000 mailboxes made an unrelated
//! SMTP delivery and IMAP read wait 40 s).

mod common;
mod imap_kit;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use common::{Extra, Server, Smtp, WAIT};
use imap_kit::Imap;

/// As in the report. The old quadratic \HasChildren scan made each LIST
/// 10^10 comparisons on a worker thread: far past every wait here.
const MAILBOXES: usize = 100_000;

fn populate(server: &Server) {
    let store = server.store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        store
            .ensure_account("alice@example.test".into())
            .await
            .expect("account");
        let mut set = tokio::task::JoinSet::new();
        for i in 0..MAILBOXES {
            let s = Arc::clone(&store);
            // A hierarchy, so \HasChildren has work to do.
            let name = format!("f{}/m{i}", i % 100);
            set.spawn(async move {
                match s
                    .create_mailbox("alice@example.test".into(), name, None)
                    .await
                {
                    Ok(_) | Err(store::StoreError::AlreadyExists(_)) => {}
                    Err(e) => panic!("create: {e}"),
                }
            });
            if set.len() >= 512 {
                set.join_next().await;
            }
        }
        while set.join_next().await.is_some() {}
        for p in 0..100 {
            let _ = store
                .create_mailbox("alice@example.test".into(), format!("f{p}"), None)
                .await;
        }
    });
    // The last handle: dropping it commits and stops the writer.
    drop(store);
}

#[test]
fn smtp_delivery_and_imap_select_complete_while_two_huge_lists_run() {
    let server = Server::start_with_extra(Extra {
        imap: format!("max_mailboxes = {}\n", MAILBOXES * 2),
        ..Extra::default()
    });
    populate(&server);

    // Two LISTs at once, as in the report. Each lister reads the first
    // line (the LIST is under way), then reads no more until the other
    // client is done, so the LISTs are still in progress throughout.
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
    let listers: Vec<_> = (0..2)
        .map(|_| {
            let mut c = Imap::login(&server, "alice", "secret");
            let started = started_tx.clone();
            let finished = Arc::clone(&finished);
            let go = Arc::clone(&go_rx);
            std::thread::spawn(move || {
                c.send("l1 LIST \"\" \"*\"");
                let first = c.line();
                started.send(()).expect("started");
                go.lock()
                    .expect("go")
                    .recv_timeout(WAIT)
                    .expect("the other client finished");
                let mut listed = usize::from(first.starts_with("* LIST"));
                loop {
                    let l = c.line();
                    if l.starts_with("l1 ") {
                        assert!(l.starts_with("l1 OK"), "{l}");
                        break;
                    }
                    listed += usize::from(l.starts_with("* LIST"));
                }
                finished.store(true, Ordering::SeqCst);
                listed
            })
        })
        .collect();
    for _ in 0..2 {
        started_rx.recv_timeout(WAIT).expect("the LISTs start");
    }

    // Meanwhile: a delivery to bob and a SELECT by bob.
    let mut smtp = Smtp::connect(server.smtp).ehlo();
    let r = smtp.send_mail(
        "x@remote.test",
        &["bob@example.test"],
        b"Subject: during\r\n\r\nthe LISTs\r\n",
    );
    assert_eq!(r.code, 250, "{r:?}");
    let mut bob = Imap::login(&server, "bob", "secret");
    let r = bob.ok("SELECT INBOX");
    assert!(r.has("* 1 EXISTS"), "{r:#?}");
    assert!(!finished.load(Ordering::SeqCst));
    go_tx.send(()).expect("go");
    go_tx.send(()).expect("go");

    for t in listers {
        let listed = t.join().expect("lister");
        // Every mailbox: the specials, INBOX, the parents and the leaves.
        assert!(listed > MAILBOXES + 100, "{listed}");
        assert!(finished.load(Ordering::SeqCst));
    }
}
