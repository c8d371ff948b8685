//! Several `mailroom serve` nodes on one PostgreSQL database under load
//! (issue 21): three nodes sharing IDLE and flag changes, kill -9 of a
//! node while all three take SMTP, and PostgreSQL restarted while two
//! nodes take SMTP. Each test is bounded: a few dozen messages, waits of
//! at most `common::WAIT`. `MAILROOM_SKIP_PG=1` skips them.

mod common;
mod imap_kit;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, Smtp};
use imap_kit::{Imap, simple_message};

/// A node on the database at `url`, named `name` (its `node_id`, and its
/// host name, which it sends in EHLO), not started; `tail` is appended to
/// its config.
fn node(url: &str, name: &str, tail: &str) -> Server {
    let server = Server::create("", "");
    let base = std::fs::read_to_string(&server.config).expect("config");
    let base = base.replace(
        "hostname = \"mx.example.test\"",
        &format!("hostname = \"{name}.example.test\""),
    );
    let store = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nnode_id = \"{name}\"");
    std::fs::write(&server.config, format!("{base}\n{store}\n{tail}\n")).expect("write config");
    server
}

/// Reads IMAP lines until one contains `needle` (within the kit's WAIT).
fn wait_for_line(imap: &mut Imap, needle: &str) -> String {
    let deadline = Instant::now() + common::WAIT;
    while Instant::now() < deadline {
        match imap.try_line() {
            Some(line) if line.contains(needle) => return line,
            Some(_) => {}
            None => break,
        }
    }
    panic!("no line with {needle:?} within {:?}", common::WAIT);
}

/// Three nodes on one database: IDLE on A hears a delivery through C;
/// STORE on B is an unsolicited FETCH in C's session.
#[test]
fn three_nodes_share_idle_deliveries_and_flag_changes() {
    if store_pg::cluster::skip() {
        return;
    }
    let url = store_pg::cluster::shared().create_database();
    let a = node(&url, "node-a", "");
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let a = a.run();
    let b = node(&url, "node-b", "").run();
    let c = node(&url, "node-c", "").run();

    let mut idle = Imap::login(&a, "alice@example.test", "secret");
    idle.ok("SELECT INBOX");
    idle.send("i1 IDLE");
    wait_for_line(&mut idle, "+ ");
    let mut watcher = Imap::login(&c, "alice@example.test", "secret");
    watcher.ok("SELECT INBOX");

    let mut smtp = Smtp::connect(c.smtp).ehlo();
    let r = smtp.send_mail(
        "sender@other.test",
        &["alice@example.test"],
        simple_message("three-nodes", "through node C").as_bytes(),
    );
    assert_eq!(r.code, 250, "{r:?}");
    wait_for_line(&mut idle, "* 1 EXISTS");
    idle.send("DONE");
    assert_eq!(idle.read_until_tagged("i1").tagged, "i1 OK IDLE terminated");

    // C's session learns of the message first (a message it has not seen
    // comes with its flags in no FETCH of its own).
    let deadline = Instant::now() + common::WAIT;
    while !watcher.ok("NOOP").has("* 1 EXISTS") {
        assert!(Instant::now() < deadline, "node C never saw the delivery");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut writer = Imap::login(&b, "alice@example.test", "secret");
    writer.ok("SELECT INBOX");
    writer.ok("STORE 1 +FLAGS (\\Flagged)");
    // C's selected session learns of B's change by its own feed: NOOP
    // reports it (RFC 9051 7.5.2: FETCH untagged response).
    let deadline = Instant::now() + common::WAIT;
    loop {
        let r = watcher.ok("NOOP");
        if r.lines_with("FETCH")
            .iter()
            .any(|l| l.contains("\\Flagged"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "node C never saw B's STORE");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = watcher.ok("FETCH 1 (FLAGS)");
    assert!(r.has("\\Flagged"), "{:?}", r.untagged);
}

/// A remote MX that records each message with the EHLO name of the node
/// that sent it, and never answers DATA for `stall_from` (whose sender
/// then dies waiting: nothing recorded).
struct Remote {
    port: u16,
    got: Arc<Mutex<Vec<(String, String)>>>,
    /// Set once a connection of `stall_from` is waiting for its answer.
    stalled: Arc<AtomicBool>,
}

fn remote(stall_from: &str) -> Remote {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let stalled = Arc::new(AtomicBool::new(false));
    let (g, s, stall_from) = (
        Arc::clone(&got),
        Arc::clone(&stalled),
        stall_from.to_string(),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (g, s, stall_from) = (Arc::clone(&g), Arc::clone(&s), stall_from.clone());
            std::thread::spawn(move || serve_remote(stream, &stall_from, &g, &s));
        }
    });
    Remote { port, got, stalled }
}

fn serve_remote(
    stream: TcpStream,
    stall_from: &str,
    got: &Mutex<Vec<(String, String)>>,
    stalled: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(common::WAIT * 3));
    let Ok(read) = stream.try_clone() else { return };
    let mut r = BufReader::new(read);
    let mut w = stream;
    let mut say = |text: &str| w.write_all(text.as_bytes()).is_ok();
    if !say("220 remote.example ESMTP\r\n") {
        return;
    }
    let mut helo = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let ok = match verb.as_str() {
            "EHLO" | "HELO" => {
                helo = line.get(5..).unwrap_or("").trim().to_string();
                say("250 remote.example\r\n")
            }
            "DATA" => {
                if !say("354 go ahead\r\n") {
                    return;
                }
                let mut message = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    message.push_str(&line);
                }
                if helo == stall_from {
                    // No answer: the sender dies waiting for it.
                    stalled.store(true, Ordering::SeqCst);
                    while r.read_line(&mut line).unwrap_or(0) > 0 {}
                    return;
                }
                if let Ok(mut g) = got.lock() {
                    g.push((helo.clone(), message));
                }
                say("250 2.0.0 queued\r\n")
            }
            "QUIT" => {
                say("221 bye\r\n");
                return;
            }
            _ => say("250 ok\r\n"),
        };
        if !ok {
            return;
        }
    }
}

/// An SMTP client that reports failures instead of panicking (the node
/// or the database goes away under it).
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr, auth: bool) -> std::io::Result<Client> {
        let w = TcpStream::connect(addr)?;
        w.set_read_timeout(Some(common::WAIT))?;
        let mut c = Client {
            r: BufReader::new(w.try_clone()?),
            w,
        };
        expect(c.reply()?, 220)?;
        expect(c.cmd("EHLO load.example")?, 250)?;
        if auth {
            let plain = proto_common::encode_plain("", "alice", "secret");
            expect(c.cmd(&format!("AUTH PLAIN {plain}"))?, 235)?;
        }
        Ok(c)
    }

    fn reply(&mut self) -> std::io::Result<u16> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line
                    .get(..3)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| std::io::ErrorKind::InvalidData.into());
            }
        }
    }

    fn cmd(&mut self, line: &str) -> std::io::Result<u16> {
        self.w.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One transaction; the reply to the final dot (or the first refusal).
    fn send(&mut self, to: &[&str], subject: &str) -> std::io::Result<u16> {
        let code = self.cmd("MAIL FROM:<alice@example.test>")?;
        if code != 250 {
            return Ok(code);
        }
        for rcpt in to {
            let code = self.cmd(&format!("RCPT TO:<{rcpt}>"))?;
            if code != 250 {
                self.cmd("RSET")?;
                return Ok(code);
            }
        }
        let code = self.cmd("DATA")?;
        if code != 354 {
            return Ok(code);
        }
        let body = simple_message(subject, "load");
        self.w.write_all(body.as_bytes())?;
        self.cmd(".")
    }
}

fn expect(code: u16, want: u16) -> std::io::Result<()> {
    if code == want {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("{code}, wanted {want}")))
    }
}

/// How often each subject appears in alice's INBOX, read over IMAP.
fn inbox_subjects(server: &Server) -> HashMap<String, usize> {
    let mut imap = Imap::login(server, "alice@example.test", "secret");
    imap.ok("SELECT INBOX");
    let r = imap.ok("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    let mut seen = HashMap::new();
    for line in &r.untagged {
        for s in subjects_in(line) {
            *seen.entry(s).or_insert(0) += 1;
        }
    }
    seen
}

/// The `load-...` subjects in a text.
fn subjects_in(text: &str) -> Vec<String> {
    text.split("Subject: ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|s| s.starts_with("load-"))
        .map(str::to_string)
        .collect()
}

/// Messages per sending thread.
const PER_NODE: usize = 25;

/// kill -9 of one node of three while all three take SMTP (each message
/// for a local mailbox and a remote one): every acknowledged message is
/// stored exactly once, and the remote copies the dead node had claimed
/// go out from another node once the lease has ended, exactly once.
#[test]
fn a_node_killed_under_load_loses_nothing_and_its_claims_pass_on() {
    if store_pg::cluster::skip() {
        return;
    }
    let url = store_pg::cluster::shared().create_database();
    // The remote never answers node B: whatever B claims stays claimed
    // until B is dead and the lease (3 s) has ended.
    let remote = remote("node-b.example.test");
    let relay = format!(
        "[relay]\nsmarthost = \"127.0.0.1:{}\"\nretry_initial = 1\nretry_max = 2\nqueue_lease = 3",
        remote.port
    );
    let a = node(&url, "node-a", &relay);
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let a = a.run();
    let mut b = node(&url, "node-b", &relay).run();
    let c = node(&url, "node-c", &relay).run();

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let b_acked = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for (name, addr) in [
        ("a", a.submission),
        ("b", b.submission),
        ("c", c.submission),
    ] {
        let acked = Arc::clone(&acked);
        let b_acked = Arc::clone(&b_acked);
        threads.push(std::thread::spawn(move || {
            let Ok(mut client) = Client::connect(addr, true) else {
                return;
            };
            for i in 0..PER_NODE {
                let subject = format!("load-{name}-{i}");
                match client.send(&["alice@example.test", "carol@remote.example"], &subject) {
                    Ok(250) => {
                        if let Ok(mut g) = acked.lock() {
                            g.push(subject);
                        }
                        if name == "b" {
                            b_acked.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Ok(code) => panic!("{subject}: {code}"),
                    // Node B died under this session.
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill B mid-load, once it holds a claim (its first send stalls) and
    // has acknowledged some messages of its own.
    let deadline = Instant::now() + common::WAIT;
    while !(remote.stalled.load(Ordering::SeqCst) && b_acked.load(Ordering::SeqCst) >= 5) {
        assert!(Instant::now() < deadline, "node B never claimed a row");
        std::thread::sleep(Duration::from_millis(20));
    }
    b.kill9();
    for t in threads {
        t.join().expect("sender");
    }
    let acked = acked.lock().map(|g| g.clone()).unwrap_or_default();
    assert!(acked.iter().any(|s| s.starts_with("load-b-")), "{acked:?}");
    assert!(acked.len() >= 2 * PER_NODE, "{} acknowledged", acked.len());

    // Every acknowledged message is in the mailbox exactly once; nothing
    // is there twice.
    let stored = inbox_subjects(&c);
    for s in &acked {
        assert_eq!(stored.get(s), Some(&1), "{s} in the INBOX: {stored:?}");
    }
    assert!(stored.values().all(|&n| n == 1), "{stored:?}");

    // Every acknowledged remote copy reaches the remote once, none from
    // the dead node: B's claims went out from A or C after the lease.
    let deadline = Instant::now() + common::WAIT * 2;
    let sent = || -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (helo, msg) in remote.got.lock().map(|g| g.clone()).unwrap_or_default() {
            for s in subjects_in(&msg) {
                m.entry(s).or_default().push(helo.clone());
            }
        }
        m
    };
    while !acked.iter().all(|s| sent().contains_key(s)) {
        assert!(
            Instant::now() < deadline,
            "not every remote copy was sent: {:?}",
            acked
                .iter()
                .filter(|s| !sent().contains_key(*s))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The queue has drained (nothing left to send twice).
    while !a.cli(&["queue", "list"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "rows stayed queued");
        std::thread::sleep(Duration::from_millis(200));
    }
    for (s, from) in sent() {
        assert_eq!(from.len(), 1, "{s} sent {} times: {from:?}", from.len());
        assert_ne!(from[0], "node-b.example.test", "{s}");
    }
}

/// PostgreSQL restarted (fast shutdown) while two nodes take SMTP: the
/// nodes reconnect by themselves, every acknowledged message is stored
/// exactly once, and no 250 was given for what was not committed.
#[test]
fn a_database_restart_under_load_loses_nothing_acknowledged() {
    if store_pg::cluster::skip() {
        return;
    }
    // A cluster of this test's own: it is stopped and started again.
    let cluster = store_pg::cluster::Cluster::private();
    let url = cluster.create_database();
    let a = node(&url, "node-a", "");
    a.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let a = a.run();
    let b = node(&url, "node-b", "").run();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let counts: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::default()).collect();
    let mut threads = Vec::new();
    for (n, (name, addr)) in [("a", a.smtp), ("b", b.smtp)].into_iter().enumerate() {
        let (stop, acked, refused) = (Arc::clone(&stop), Arc::clone(&acked), Arc::clone(&refused));
        let count = Arc::clone(&counts[n]);
        threads.push(std::thread::spawn(move || {
            let mut i = 0;
            let mut client = None;
            while !stop.load(Ordering::SeqCst) && i < 10_000 {
                let Some(c) = client.as_mut() else {
                    client = Client::connect(addr, false).ok();
                    if client.is_none() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    continue;
                };
                i += 1;
                let subject = format!("load-{name}-{i}");
                match c.send(&["alice@example.test"], &subject) {
                    Ok(250) => {
                        if let Ok(mut g) = acked.lock() {
                            g.push(subject);
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // 451 4.3.0 while the database is away.
                    Ok(code) => {
                        assert_eq!(code / 100, 4, "{subject}: {code}");
                        refused.fetch_add(1, Ordering::SeqCst);
                        if c.cmd("RSET").is_err() {
                            client = None;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => client = None,
                }
            }
        }));
    }
    let wait_for = |at_least: [usize; 2], what: &str| {
        let deadline = Instant::now() + common::WAIT;
        while counts
            .iter()
            .zip(at_least)
            .any(|(c, n)| c.load(Ordering::SeqCst) < n)
        {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for([5, 5], "no load before the restart");
    cluster.stop();
    std::thread::sleep(Duration::from_millis(500));
    cluster.restart();
    let before: [usize; 2] = [0, 1].map(|n| counts[n].load(Ordering::SeqCst));
    // Both nodes take mail again by themselves, without a restart.
    wait_for(
        [before[0] + 5, before[1] + 5],
        "a node did not come back after the database did",
    );
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("sender");
    }
    let acked = acked.lock().map(|g| g.clone()).unwrap_or_default();
    let stored = inbox_subjects(&b);
    // No 250 for anything that is not stored, and nothing twice.
    for s in &acked {
        assert_eq!(stored.get(s), Some(&1), "{s} in the INBOX");
    }
    assert!(stored.values().all(|&n| n == 1), "{stored:?}");
}
