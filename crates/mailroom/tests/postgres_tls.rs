//! TLS to the database (`[store] url` with libpq's `sslmode` and
//! `sslrootcert`, issue 21): the real binary against a private cluster
//! with `ssl = on`, a certificate signed by a CA made here, and a
//! `pg_hba.conf` that admits TLS with SCRAM only (`hostssl ...
//! scram-sha-256`), so every connection of the pool, the LISTEN
//! connection and the directory has to come over TLS, and the SCRAM
//! login binds to the TLS channel (SCRAM-SHA-256-PLUS, RFC 5929
//! tls-server-end-point). `MAILROOM_SKIP_PG=1` skips these tests.

mod common;
mod imap_kit;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{Server, Smtp};
use imap_kit::{Imap, simple_message};
use store_pg::cluster::Cluster;

/// The database role's password (SCRAM over TLS).
const PASSWORD: &str = "tls-secret";

/// The TLS cluster of this test process, with its CA file, another CA's
/// file and one database.
struct Tls {
    cluster: Cluster,
    ca: PathBuf,
    other_ca: PathBuf,
    db: String,
    _dir: tempfile::TempDir,
}

/// A CA named `ca_name`, and a server certificate it signed for
/// `db.test` and 127.0.0.1 (not "localhost", for the host-name check).
fn certificates(ca_name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let params =
        rcgen::CertificateParams::new(vec!["db.test".to_string(), "127.0.0.1".to_string()])
            .expect("server params");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn tls() -> Option<&'static Tls> {
    if store_pg::cluster::skip() {
        return None;
    }
    static TLS: OnceLock<Tls> = OnceLock::new();
    Some(TLS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = certificates("mailroom test CA");
        let (other_ca, _, _) = certificates("another CA");
        let ca_file = dir.path().join("ca.pem");
        let other_file = dir.path().join("other-ca.pem");
        std::fs::write(&ca_file, ca).expect("write CA");
        std::fs::write(&other_file, other_ca).expect("write other CA");
        let cluster = Cluster::private();
        let url = cluster.create_database();
        let db = url.rsplit('/').next().expect("db name").to_string();
        cluster.psql(&format!(
            "ALTER ROLE {} PASSWORD '{PASSWORD}'",
            store_pg::cluster::USER
        ));
        cluster.enable_tls(&cert, &key, "hostssl all all 127.0.0.1/32 scram-sha-256");
        Tls {
            cluster,
            ca: ca_file,
            other_ca: other_file,
            db,
            _dir: dir,
        }
    }))
}

impl Tls {
    /// The database URL through `host` with `params` (sslmode, ...).
    fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://{}:{PASSWORD}@{host}:{}/{}?{params}",
            store_pg::cluster::USER,
            self.cluster.port,
            self.db
        )
    }

    /// What psql shows for `sql`, over TLS with the password.
    fn query(&self, sql: &str) -> String {
        self.cluster.query_with(
            "postgres",
            sql,
            &[("PGSSLMODE", "require"), ("PGPASSWORD", PASSWORD)],
        )
    }
}

/// A node on `url`, not started.
fn node(url: &str) -> Server {
    let server = Server::create("", "");
    let base = std::fs::read_to_string(&server.config).expect("config");
    let store = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nnode_id = \"tls-node\"");
    std::fs::write(&server.config, format!("{base}\n{store}\n")).expect("write config");
    server
}

/// The CLI's stderr for `user list` on `url`, asserting it failed.
fn refused(url: &str) -> String {
    let out = node(url).cli_output(&["user", "list"], None);
    assert!(!out.status.success(), "user list on {url} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn verify_full_with_the_right_ca_serves_mail_with_every_connection_on_tls() {
    let Some(t) = tls() else {
        return;
    };
    let ca = t.ca.display().to_string();
    // channel_binding=require: the login fails unless SCRAM-SHA-256-PLUS
    // with our tls-server-end-point hash is accepted by the server.
    let url = t.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}&channel_binding=require"),
    );
    let server = node(&url);
    server.cli(&["user", "add", "alice@example.test", "--password", "secret"]);
    let server = server.run();

    let mut idle = Imap::login(&server, "alice@example.test", "secret");
    idle.ok("SELECT INBOX");
    let mut smtp = Smtp::connect(server.smtp).ehlo();
    let r = smtp.send_mail(
        "sender@other.test",
        &["alice@example.test"],
        simple_message("over-tls", "through an encrypted database link").as_bytes(),
    );
    assert_eq!(r.code, 250, "{r:?}");
    let r = idle.ok("UID FETCH 1 (BODY.PEEK[])");
    assert!(
        r.has("through an encrypted database link"),
        "{:?}",
        r.untagged
    );

    // Every connection of the node (pool, directory, the LISTEN one) is
    // on TLS, and SCRAM bound to it (the hba admits nothing else, but the
    // listener could be failing silently: it is there and encrypted).
    let rows = t.query(
        "SELECT a.application_name, s.ssl FROM pg_stat_activity a \
         JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.application_name LIKE 'mailroom%' \
         ORDER BY 1",
    );
    assert!(rows.lines().any(|l| l.starts_with("mailroom|")), "{rows}");
    assert!(
        rows.lines().any(|l| l.starts_with("mailroom-listener|")),
        "{rows}"
    );
    assert!(rows.lines().all(|l| l.ends_with("|t")), "{rows}");
    smtp.cmd("QUIT", 221);
}

#[test]
fn a_wrong_ca_or_host_name_is_refused_at_startup_and_verify_ca_skips_the_name() {
    let Some(t) = tls() else {
        return;
    };
    let ca = t.ca.display().to_string();
    let other = t.other_ca.display().to_string();

    // Another CA: the server is refused, saying why, before anything runs.
    let url = t.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let err = refused(&url);
    assert!(
        err.contains("TLS") && err.contains("UnknownIssuer"),
        "{err}"
    );
    let out = node(&url).cli_output(&["serve"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UnknownIssuer"), "{err}");
    // verify-ca checks the chain too.
    let err = refused(&t.url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    ));
    assert!(err.contains("UnknownIssuer"), "{err}");

    // The right CA, but "localhost" is not a name in the certificate.
    let err = refused(&t.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    assert!(
        err.contains("TLS") && err.contains("not valid for name"),
        "{err}"
    );
    // verify-ca does not compare names; require encrypts without
    // checking (libpq's meanings).
    for params in [
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        "sslmode=require".to_string(),
    ] {
        let out = node(&t.url("localhost", &params)).cli_output(&["user", "list"], None);
        assert!(
            out.status.success(),
            "{params}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A verifying mode without a root certificate is a config error.
    let err = refused(&t.url("127.0.0.1", "sslmode=verify-full"));
    assert!(err.contains("sslrootcert"), "{err}");
}

#[test]
fn sslmode_disable_is_refused_by_a_hostssl_only_server() {
    let Some(t) = tls() else {
        return;
    };
    let err = refused(&t.url("127.0.0.1", "sslmode=disable"));
    assert!(
        err.contains("pg_hba.conf") && err.contains("no encryption"),
        "{err}"
    );
    // prefer (the default) takes TLS when offered.
    let out = node(&t.url("127.0.0.1", "sslmode=prefer")).cli_output(&["user", "list"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
