//! A private PostgreSQL cluster for tests: `initdb` in a temporary
//! directory (as the `postgres` OS user when running as root, since
//! PostgreSQL refuses to run as root), a free loopback port, `pg_ctl
//! start`; stopped and removed when the test process ends.
//!
//! The binaries come from `MAILROOM_PG_BIN` if set, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package,
//! which `scripts/test-deps` installs), else `PATH`.
//!
//! One cluster serves a whole test process ([`shared`]); each test gets
//! a database of its own ([`Cluster::create_database`]), so tests run in
//! parallel without seeing each other's data.
//!
//! Tests must fail loudly when the cluster cannot start (CI has it);
//! [`skip`] is true only when `MAILROOM_SKIP_PG=1` asks to skip them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that skips the PostgreSQL tests.
pub const SKIP_ENV: &str = "MAILROOM_SKIP_PG";

/// The superuser the cluster is initialised with (trust authentication
/// on loopback only).
pub const USER: &str = "mailroom";

/// True when `MAILROOM_SKIP_PG=1`: the PostgreSQL tests return at once
/// (and say so on stderr).
pub fn skip() -> bool {
    let skip = std::env::var(SKIP_ENV).is_ok_and(|v| v == "1");
    if skip {
        eprintln!("{SKIP_ENV}=1: skipping a PostgreSQL test");
    }
    skip
}

/// A running private cluster.
pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    next_db: AtomicU64,
    /// `pg_ctl start -o` options, to start it again after [`Cluster::stop`].
    opts: String,
}

/// The process's cluster, started on first use; panics with the reason
/// when it cannot start.
pub fn shared() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(Cluster::start) {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot start a private PostgreSQL cluster: {e}\n\
             (install it with scripts/test-deps as root, or set {SKIP_ENV}=1 to skip)"
        ),
    }
}

fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MAILROOM_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    euid() == 0
}

/// The effective uid from /proc (no unsafe, no extra dependency).
fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// A command run as the cluster's owner.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

impl Cluster {
    /// A cluster of the caller's own (for a test that changes server
    /// settings), stopped and removed when the process ends.
    pub fn private() -> Cluster {
        match Cluster::start() {
            Ok(c) => c,
            Err(e) => panic!("cannot start a private PostgreSQL cluster: {e}"),
        }
    }

    fn start() -> Result<Cluster, String> {
        let bin = match bin_dir() {
            Some(b) => b,
            None => PathBuf::new(),
        };
        let tool = |name: &str| {
            if bin.as_os_str().is_empty() {
                PathBuf::from(name)
            } else {
                bin.join(name)
            }
        };
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mailroom-pg-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&dir);
                    c
                },
                "chown the cluster directory to postgres",
            )?;
        }
        let data = dir.join("data");
        let mut initdb = as_owner(&tool("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "-N",
        ]);
        run(initdb, "initdb")?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        // fsync stays on: the tests check acknowledged data as production
        // has it. Small shared buffers: many clusters may run at once.
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c shared_buffers=16MB \
             -c max_connections=400",
            dir.display()
        );
        let mut start = as_owner(&tool("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .args(["-w", "-t", "60", "-l"])
            .arg(dir.join("log"))
            .args(["-o", &opts, "start"]);
        run(start, "pg_ctl start")?;
        // Stops and removes the cluster when this process ends, however it
        // ends: the statics of a test process are never dropped.
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = if is_root() {
                format!("runuser -u postgres -- '{}'", tool("pg_ctl").display())
            } else {
                format!("'{}'", tool("pg_ctl").display())
            },
            data = data.display(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cluster watchdog: {e}"))?;
        Ok(Cluster {
            port,
            dir,
            bin,
            next_db: AtomicU64::new(0),
            opts,
        })
    }

    fn pg_ctl(&self) -> Command {
        let tool = if self.bin.as_os_str().is_empty() {
            PathBuf::from("pg_ctl")
        } else {
            self.bin.join("pg_ctl")
        };
        let mut c = as_owner(&tool);
        c.arg("-D").arg(self.dir.join("data"));
        c
    }

    /// Stops the server (fast shutdown: sessions are disconnected), as an
    /// outage of the database would; panics when it fails.
    pub fn stop(&self) {
        let mut c = self.pg_ctl();
        c.args(["-w", "-m", "fast", "stop"]);
        if let Err(e) = run(c, "pg_ctl stop") {
            panic!("{e}");
        }
    }

    /// Starts the server again after [`Cluster::stop`], on the same port.
    pub fn restart(&self) {
        let mut c = self.pg_ctl();
        c.args(["-w", "-t", "60", "-l"])
            .arg(self.dir.join("log"))
            .args(["-o", &self.opts, "start"]);
        if let Err(e) = run(c, "pg_ctl start") {
            panic!("{e}");
        }
    }

    /// The URL of database `db` of this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new empty database and returns its URL.
    pub fn create_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let db = format!("t{n}");
        self.psql(&format!("CREATE DATABASE {db}"));
        self.url(&db)
    }

    /// Runs one SQL command as the superuser in database `postgres`
    /// (e.g. `ALTER SYSTEM`); panics when it fails.
    pub fn psql(&self, sql: &str) {
        let psql = if self.bin.as_os_str().is_empty() {
            PathBuf::from("psql")
        } else {
            self.bin.join("psql")
        };
        let mut cmd = Command::new(psql);
        cmd.args(["-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", USER])
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]);
        if let Err(e) = run(cmd, sql) {
            panic!("{e}");
        }
    }
}

impl Cluster {
    /// Turns TLS on with the PEM `cert` and `key` (written into the
    /// cluster's directory, owned by its user, the key mode 0600 as
    /// PostgreSQL demands) and replaces `pg_hba.conf` with `hba` (plus
    /// `local all all trust` for the owner's tools), then restarts the
    /// server so both take effect; panics when a step fails. Run
    /// [`Cluster::psql`] steps (databases, passwords) before: afterwards
    /// it may be refused by `hba`.
    pub fn enable_tls(&self, cert: &str, key: &str, hba: &str) {
        let cert_file = self.dir.join("server.crt");
        let key_file = self.dir.join("server.key");
        let write = |path: &Path, text: &str, mode: &str| {
            if let Err(e) = std::fs::write(path, text) {
                panic!("{}: {e}", path.display());
            }
            let mut chmod = Command::new("chmod");
            chmod.arg(mode).arg(path);
            if let Err(e) = run(chmod, "chmod") {
                panic!("{e}");
            }
            if is_root() {
                let mut chown = Command::new("chown");
                chown.arg("postgres:postgres").arg(path);
                if let Err(e) = run(chown, "chown") {
                    panic!("{e}");
                }
            }
        };
        write(&cert_file, cert, "0644");
        write(&key_file, key, "0600");
        self.psql("ALTER SYSTEM SET ssl = on");
        self.psql(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            cert_file.display()
        ));
        self.psql(&format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            key_file.display()
        ));
        write(
            &self.dir.join("data").join("pg_hba.conf"),
            &format!("local all all trust\n{hba}\n"),
            "0600",
        );
        self.stop();
        self.restart();
    }

    /// Runs `sql` in database `db` with psql over TCP with the extra
    /// libpq environment `env` (PGSSLMODE, PGPASSWORD, ...) and returns
    /// its unaligned, tuples-only output; panics when it fails.
    pub fn query_with(&self, db: &str, sql: &str, env: &[(&str, &str)]) -> String {
        let psql = if self.bin.as_os_str().is_empty() {
            PathBuf::from("psql")
        } else {
            self.bin.join("psql")
        };
        let mut cmd = Command::new(psql);
        cmd.args(["-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-U", USER, "-p", &self.port.to_string(), "-d", db])
            .args(["-c", sql])
            .envs(env.iter().copied());
        let out = match cmd.stdin(Stdio::null()).output() {
            Ok(o) => o,
            Err(e) => panic!("psql: {e}"),
        };
        if !out.status.success() {
            panic!("{sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
