//! Test kit for the end-to-end tests: starts the real `mailroom` binary on
//! free loopback ports with its own data directory, and talks to it over
//! real sockets. Each server is killed when its handle drops, so tests stop
//! by themselves.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::BackendConfig;
use directory::{Directory, DirectoryConfig};
use proto_smtp::{Parsed, Reply, parse_reply};
use store::Store;

pub const BIN: &str = env!("CARGO_BIN_EXE_mailroom");
/// Upper bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub smtp: SocketAddr,
    pub pop3: SocketAddr,
    pub imap: SocketAddr,
    pub admin: SocketAddr,
    /// The TLS listeners: submission (STARTTLS), submissions, IMAPS, POP3S.
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub imaps: SocketAddr,
    pub pop3s: SocketAddr,
    child: Option<Child>,
    /// The config's extra text, to rewrite it with other ports.
    extra: Extra,
}

pub struct Ports {
    pub smtp: u16,
    pub pop3: u16,
    pub imap: u16,
    pub admin: u16,
    pub submission: u16,
    pub submissions: u16,
    pub imaps: u16,
    pub pop3s: u16,
}

/// Extra config lines: `top` before the first section, the others inside
/// their sections.
#[derive(Clone, Default)]
pub struct Extra {
    pub top: String,
    pub smtp: String,
    pub pop3: String,
    pub imap: String,
    pub tls: String,
    /// Replaces the kit's cheap argon2 costs when not empty.
    pub auth: String,
}

/// argon2 costs that keep tests fast; `Extra::auth` replaces them.
const CHEAP_AUTH: &str = "argon2_memory_kib = 64\nargon2_iterations = 1";

/// The config every test server starts from, with `extra` added.
/// `text` with each test listener's address set to its port in `ports`.
fn rewrite_ports(text: &str, ports: &Ports) -> String {
    let mut section = String::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(|c| c == '[' || c == ']').to_string();
        }
        let key = t.split('=').next().unwrap_or("").trim();
        let port = match (section.as_str(), key) {
            ("smtp", "listen") => Some(ports.smtp),
            ("smtp", "submission") => Some(ports.submission),
            ("smtp", "submissions") => Some(ports.submissions),
            ("pop3", "listen") => Some(ports.pop3),
            ("pop3", "tls_listen") => Some(ports.pop3s),
            ("imap", "listen") => Some(ports.imap),
            ("imap", "tls_listen") => Some(ports.imaps),
            ("admin", "listen") => Some(ports.admin),
            _ => None,
        };
        match port {
            Some(p) if t.contains("\"127.0.0.1:") && section == "admin" => {
                out.push_str(&format!("listen = \"127.0.0.1:{p}\""));
            }
            Some(p) if t.contains("\"127.0.0.1:") => {
                out.push_str(&format!("{key} = [\"127.0.0.1:{p}\"]"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

pub fn config_text(dir: &Path, ports: &Ports, extra: &Extra) -> String {
    let (extra_top, extra_smtp, extra_pop3) = (&extra.top, &extra.smtp, &extra.pop3);
    let (extra_imap, extra_tls) = (&extra.imap, &extra.tls);
    let auth = if extra.auth.is_empty() {
        CHEAP_AUTH
    } else {
        &extra.auth
    };
    format!(
        r#"hostname = "mx.example.test"
domains = ["example.test", "other.test"]
data_dir = "{data}"
{extra_top}
[auth]
{auth}

[tls]
{extra_tls}

[imap]
listen = ["127.0.0.1:{imap_port}"]
tls_listen = ["127.0.0.1:{imaps_port}"]
{extra_imap}

[pop3]
listen = ["127.0.0.1:{pop3_port}"]
tls_listen = ["127.0.0.1:{pop3s_port}"]
{extra_pop3}

[admin]
listen = "127.0.0.1:{admin_port}"

[smtp]
listen = ["127.0.0.1:{smtp_port}"]
submission = ["127.0.0.1:{submission_port}"]
submissions = ["127.0.0.1:{submissions_port}"]
{extra_smtp}
"#,
        data = dir.join("data").display(),
        smtp_port = ports.smtp,
        pop3_port = ports.pop3,
        imap_port = ports.imap,
        admin_port = ports.admin,
        imaps_port = ports.imaps,
        pop3s_port = ports.pop3s,
        submission_port = ports.submission,
        submissions_port = ports.submissions,
    )
}

impl Server {
    /// A server with users alice (Alice Liddell) and bob, started.
    pub fn start() -> Server {
        Server::start_with("", "")
    }

    pub fn start_with(extra_top: &str, extra_smtp: &str) -> Server {
        Server::start_with_extra(Extra {
            top: extra_top.to_string(),
            smtp: extra_smtp.to_string(),
            ..Extra::default()
        })
    }

    /// A server with alice and bob, its config extended by `extra`.
    pub fn start_with_extra(extra: Extra) -> Server {
        let s = Server::create_with(extra);
        s.cli(&[
            "user",
            "add",
            "alice@example.test",
            "--name",
            "Alice Liddell",
            "--password",
            "secret",
        ]);
        s.cli(&[
            "user",
            "add",
            "bob@example.test",
            "--name",
            "Bob Smith",
            "--password",
            "secret",
        ]);
        s.run()
    }

    /// Writes the config without starting the server.
    pub fn create(extra_top: &str, extra_smtp: &str) -> Server {
        Server::create_with(Extra {
            top: extra_top.to_string(),
            smtp: extra_smtp.to_string(),
            ..Extra::default()
        })
    }

    pub fn create_with(extra: Extra) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("mailroom.toml");
        let unset = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut s = Server {
            smtp: unset,
            pop3: unset,
            imap: unset,
            admin: unset,
            submission: unset,
            submissions: unset,
            imaps: unset,
            pop3s: unset,
            dir,
            config,
            child: None,
            extra,
        };
        s.choose_ports();
        // As an installer would: only `serve` creates a data directory by
        // itself, and the tests run CLI commands before the server.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(s.data_dir())
            .expect("data dir");
        s
    }

    /// Picks free ports and writes the config with them.
    fn choose_ports(&mut self) {
        let ports = Ports {
            smtp: free_port(),
            pop3: free_port(),
            imap: free_port(),
            admin: free_port(),
            submission: free_port(),
            submissions: free_port(),
            imaps: free_port(),
            pop3s: free_port(),
        };
        // A retry after a port clash keeps the edits a test made to the
        // written config (its domains, say): only the listeners' lines
        // change, found by section and key (two listeners may have drawn
        // the same port, which is why the retry happens).
        let text = match std::fs::read_to_string(&self.config) {
            Ok(old) if self.smtp.port() != 0 => rewrite_ports(&old, &ports),
            _ => config_text(self.dir.path(), &ports, &self.extra),
        };
        std::fs::write(&self.config, text).expect("write config");
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        self.smtp = local(ports.smtp);
        self.pop3 = local(ports.pop3);
        self.imap = local(ports.imap);
        self.admin = local(ports.admin);
        self.submission = local(ports.submission);
        self.submissions = local(ports.submissions);
        self.imaps = local(ports.imaps);
        self.pop3s = local(ports.pop3s);
    }

    /// The self-signed certificate the server made on first start: what
    /// clients are told to trust.
    pub fn cert(&self) -> PathBuf {
        self.data_dir().join("tls-cert.pem")
    }

    /// Sends a signal (by name: HUP, TERM) to the running server.
    pub fn signal(&self, name: &str) {
        let Some(c) = self.child.as_ref() else {
            panic!("server not running");
        };
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(c.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{name} failed");
    }

    /// Starts `mailroom serve` and waits until it accepts connections.
    pub fn run(mut self) -> Server {
        self.spawn();
        self
    }

    /// Starts the server and waits for its "ready" log line. A free port
    /// taken by another test in between is retried with new ports.
    pub fn spawn(&mut self) {
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log");
            let mut child = Command::new(BIN)
                .arg("--config")
                .arg(&self.config)
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn mailroom");
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if self.log().contains("mailroom ready") {
                    self.child = Some(child);
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            if !self.log().contains("cannot bind") {
                break;
            }
            self.choose_ports();
        }
        panic!("server did not start:\n{}", self.log());
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a CLI subcommand against this server's config; panics unless it
    /// succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_output(args, None);
        assert!(
            out.status.success(),
            "mailroom {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn cli_output(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn cli");
        if let Some(input) = stdin {
            let mut si = child.stdin.take().expect("stdin");
            // A command that fails before reading its input closes it.
            if let Err(e) = si.write_all(input) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
            }
        }
        child.wait_with_output().expect("cli output")
    }

    /// Sends SIGKILL: the crash of the durability tests.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    pub fn connect(&self) -> Smtp {
        Smtp::connect(self.smtp)
    }

    /// Opens the store as a second process would, to look at what the
    /// server stored.
    pub fn store(&self) -> Arc<dyn Store> {
        backends::open_store(&self.backend_config()).expect("open store")
    }

    /// Opens the directory as a second process would (the CLI).
    pub fn directory(&self) -> Arc<dyn Directory> {
        backends::open_directory(&self.backend_config()).expect("open directory")
    }

    /// Adds users in one process and one runtime, with the kit's cheap
    /// argon2 costs (a load test's thousand users would otherwise take a
    /// CLI run and a full-cost hash each).
    pub fn add_users(&self, addresses: &[String], password: &str) {
        let mut config = self.backend_config();
        config.directory.argon2_m_cost = 64;
        config.directory.argon2_t_cost = 1;
        let directory = backends::open_directory(&config).expect("open directory");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            for a in addresses {
                directory
                    .add_user(a, None, password)
                    .await
                    .expect("add user");
            }
        });
    }

    /// The server's backend, through the factories the binary uses.
    fn backend_config(&self) -> BackendConfig {
        BackendConfig::sqlite(
            self.data_dir(),
            DirectoryConfig {
                domains: vec!["example.test".into(), "other.test".into()],
                ..DirectoryConfig::default()
            },
        )
    }

    /// Runs `f` on the store, opened as a second process would, in a
    /// runtime of its own.
    fn on_store<T>(&self, f: impl AsyncFnOnce(&dyn Store) -> T) -> T {
        let store = self.store();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f(store.as_ref()))
    }

    /// The entries of `account`'s INBOX, in UID order.
    pub fn inbox_meta(&self, account: &str) -> Vec<store::MessageMeta> {
        self.on_store(async |store| {
            let Some(mb) = store
                .mailbox(account.to_string(), "INBOX".to_string())
                .await
                .expect("mailbox")
            else {
                return Vec::new();
            };
            store.messages(mb.id).await.expect("messages")
        })
    }

    /// The raw messages in `account`'s INBOX, in UID order.
    pub fn inbox(&self, account: &str) -> Vec<Vec<u8>> {
        let metas = self.inbox_meta(account);
        self.on_store(async |store| {
            let mut out = Vec::new();
            for m in metas {
                out.push(store.read_body(m.body).await.expect("body"));
            }
            out
        })
    }

    /// The outbound queue's messages as they will be relayed.
    pub fn queue_bodies(&self) -> Vec<Vec<u8>> {
        let entries = self.on_store(async |store| store.queue().await.expect("queue"));
        self.on_store(async |store| {
            let mut out = Vec::new();
            for q in entries {
                out.push(store.read_body(q.body).await.expect("body"));
            }
            out
        })
    }

    /// The outbound queue: (sender, recipient) per entry.
    pub fn queue(&self) -> Vec<(String, String)> {
        self.on_store(async |store| store.queue().await.expect("queue"))
            .into_iter()
            .map(|q| (q.sender, q.recipient))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A reply's enhanced status code as text ("5.5.2"), or "" without one.
pub fn enhanced(r: &Reply) -> String {
    r.enhanced
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// A raw SMTP client: sends lines, reads replies, asserts codes.
pub struct Smtp {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Smtp {
    pub fn connect(addr: SocketAddr) -> Smtp {
        Smtp::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    pub fn connect_from(local: [u8; 4], addr: SocketAddr) -> Smtp {
        Smtp::from_stream(socket_bound_to(local, addr))
    }

    pub fn from_stream(stream: TcpStream) -> Smtp {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        Smtp {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads one reply (possibly multi-line).
    pub fn reply(&mut self) -> Reply {
        loop {
            match parse_reply(&self.buf) {
                Ok(Parsed::Complete(r, n)) => {
                    self.buf.drain(..n);
                    return r;
                }
                Ok(Parsed::Incomplete) => {}
                Err(e) => panic!(
                    "malformed reply {:?}: {e:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
            let mut chunk = [0u8; 4096];
            // A signal to the test process (a peer's child exiting) can
            // interrupt the read; that is no answer yet, not an error.
            let n = match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.expect("read reply"),
            };
            assert!(
                n > 0,
                "connection closed; had {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// True when the server closed the connection (EOF) with nothing more.
    pub fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk), Ok(0) | Err(_))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends a command and asserts the reply code; returns the reply.
    pub fn cmd(&mut self, line: &str, code: u16) -> Reply {
        self.send(line);
        self.expect(code)
    }

    pub fn expect(&mut self, code: u16) -> Reply {
        let r = self.reply();
        assert_eq!(r.code, code, "unexpected reply {r:?}");
        r
    }

    /// Greeting, EHLO, MAIL, RCPT..., DATA, message, end: returns the final reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], message: &[u8]) -> Reply {
        self.cmd(&format!("MAIL FROM:<{from}>"), 250);
        for t in to {
            self.send(&format!("RCPT TO:<{t}>"));
            let r = self.reply();
            assert!(r.code == 250 || r.code == 251, "RCPT {t}: {r:?}");
        }
        self.cmd("DATA", 354);
        self.send_raw(message);
        self.send_raw(b".\r\n");
        self.reply()
    }

    /// Reads the greeting and says EHLO.
    pub fn ehlo(mut self) -> Smtp {
        self.expect(220);
        self.cmd("EHLO client.example", 250);
        self
    }
}

/// A connection from a given loopback address (127.0.0.2 for the
/// well-behaved client of the flood tests: per-address limits apply to
/// the flood, not to it).
pub fn socket_bound_to(local: [u8; 4], addr: SocketAddr) -> TcpStream {
    // std cannot bind before connecting; tokio's TcpSocket can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let std = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(SocketAddr::from((local, 0))).expect("bind local");
        let s = sock.connect(addr).await.expect("connect");
        s.into_std().expect("into std")
    });
    std.set_nonblocking(false).expect("blocking");
    std
}

/// Reads all of a reader into a String (for client tool output).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

pub fn lines_of(r: impl Read) -> Vec<String> {
    BufReader::new(r).lines().map_while(Result::ok).collect()
}

/// Writes a client's config file readable by the owner only (fetchmail and
/// getmail refuse others).
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write rc");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A Maildir for getmail under the server's folder: returns the folder, the
/// Maildir and the `[destination]` line it needs. getmail refuses to
/// deliver as root: then it delivers as nobody, who must be able to reach
/// and write the Maildir.
pub fn getmail_maildir(server: &Server, name: &str) -> (PathBuf, PathBuf, &'static str) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = server.dir.path().join(name);
    let maildir = dir.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0;
    if !as_root {
        return (dir, maildir, "");
    }
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    mode(server.dir.path(), 0o711);
    mode(&dir, 0o711);
    mode(&maildir, 0o777);
    for sub in ["cur", "new", "tmp"] {
        mode(&maildir.join(sub), 0o777);
    }
    (dir, maildir, "user = nobody\n")
}
