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
    let (code, body) = curl(&format!("{base}/health"));
    assert_eq!(code, "200", "{body}");
    assert!(body.starts_with("ok\n"), "{body}");

    let mut c = server.connect().ehlo();
    let r = c.send_mail(
        "x@remote.test",
        &["alice@example.test"],
        b"Subject: m\r\n\r\nx\r\n",
    );
    assert_eq!(r.code, 250);
    c.cmd("MAIL FROM:<x@remote.test> SIZE=999999999999", 552);

    // A login per protocol (curl uses SASL PLAIN): IMAP right, POP3 wrong.
    let imap = Command::new("curl")
        .args(["-sS", "-u", "alice:secret"])
        .arg(format!("imap://{}/", server.imap))
        .output()
        .expect("curl imap");
    assert!(imap.status.success(), "{imap:?}");
    let pop3 = Command::new("curl")
        .args(["-sS", "-u", "alice:wrong"])
        .arg(format!("pop3://{}/", server.pop3))
        .output()
        .expect("curl pop3");
    assert!(!pop3.status.success());

    let (code, metrics) = curl(&format!("{base}/metrics"));
    assert_eq!(code, "200");
    for line in [
        "\nmailroom_logins_total{protocol=\"imap\",result=\"ok\"} 1\n",
        "\nmailroom_logins_total{protocol=\"pop3\",result=\"failed\"} 1\n",
        "\nmailroom_sessions_total{protocol=\"imap\"} 1\n",
        "mailroom_command_duration_seconds_count{protocol=\"imap\",command=\"AUTHENTICATE\"} 1\n",
        "mailroom_command_duration_seconds_count{protocol=\"pop3\",command=\"AUTH\"} 1\n",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in {metrics}");
    }
    assert!(
        metrics.contains("\nmailroom_smtp_messages_accepted_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nmailroom_connections "), "{metrics}");
    // OpenMetrics names a counter without its _total suffix.
    assert!(
        metrics.contains("# TYPE mailroom_store_commits counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nmailroom_sessions_total{protocol=\"smtp\"} 1\n"),
        "{metrics}"
    );
    // The SIZE refusal is counted with its command and status code.
    assert!(
        metrics.contains("\nmailroom_smtp_rejections_total{command=\"MAIL\",status=\"5.3.4\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "mailroom_command_duration_seconds_count{protocol=\"smtp\",command=\"DATA\"} 1\n"
        ),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert_eq!(curl(&format!("{base}/nothing-here")).0, "404");
}

#[test]
fn health_reports_the_writer_the_disk_and_every_listener() {
    let server = Server::start();
    let (code, body) = curl(&format!("http://{}/health", server.admin));
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("store writer: running\n"), "{body}");
    assert!(body.contains("bytes free (minimum 104857600)\n"), "{body}");
    for (key, addr) in [
        ("smtp.listen", server.smtp),
        ("pop3.listen", server.pop3),
        ("imap.listen", server.imap),
        ("admin.listen", server.admin),
    ] {
        assert!(
            body.contains(&format!("listener {key} {addr}: listening\n")),
            "{body}"
        );
    }
}

#[test]
fn health_is_503_with_the_reason_when_disk_space_is_low() {
    let mut server = Server::create("", "");
    let text = std::fs::read_to_string(&server.config).expect("config");
    let text = text.replace(
        "[admin]\n",
        "[admin]\nmin_free_disk = 9223372036854775807\n",
    );
    std::fs::write(&server.config, text).expect("config");
    server.spawn();
    let (code, body) = curl(&format!("http://{}/health", server.admin));
    assert_eq!(code, "503", "{body}");
    assert!(
        body.lines()
            .next()
            .is_some_and(|l| l.starts_with("low disk space")),
        "{body}"
    );
}

#[test]
fn head_health_answers_headers_only() {
    let server = Server::start();
    let out = Command::new("curl")
        .args(["-sS", "-I", &format!("http://{}/health", server.admin)])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Length: "), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body: {text:?}");
}

#[test]
fn health_gets_through_while_40_idle_connections_are_held() {
    let server = Server::start();
    let idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(server.admin).expect("connect"))
        .collect();
    for _ in 0..7 {
        let start = std::time::Instant::now();
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{}/health", server.admin),
            ])
            .output()
            .expect("curl runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
    drop(idle);
}
