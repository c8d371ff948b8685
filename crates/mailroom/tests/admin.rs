//! The admin HTTP port (SPEC 7): /health and /metrics, read with curl.

mod common;
use std::process::Command;

use common::Server;

fn curl(url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

#[test]
fn admin_port_serves_health_and_metrics() {
    let server = Server::start();
    let base = format!("http://{}", server.admin);
    assert_eq!(
        curl(&format!("{base}/health")),
        ("200".into(), "ok\n".into())
    );

    let mut c = server.connect().ehlo();
    let r = c.send_mail(
        "x@remote.test",
        &["alice@example.test"],
        b"Subject: m\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250);
    c.cmd("MAIL FROM:<x@remote.test> SIZE=999999999999", 552);

    let (code, metrics) = curl(&format!("{base}/metrics"));
    assert_eq!(code, "200");
    assert!(
        metrics.contains("\nmailroom_smtp_messages_accepted_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nmailroom_connections "), "{metrics}");
    assert!(
        metrics.contains("# TYPE mailroom_store_commits_total counter"),
        "{metrics}"
    );
    assert_eq!(curl(&format!("{base}/nothing-here")).0, "404");
}
