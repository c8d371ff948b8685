//! The admin HTTP port (SPEC 7): `GET /health` and `GET /metrics` (and
//! `HEAD` of both, RFC 9110 9.3.2: the same head, no body).
//!
//! Two read-only endpoints do not justify an HTTP stack: this reads one
//! request head (bounded in size and time), answers, and closes
//! (HTTP/1.1 with `Connection: close`, RFC 9112).
//!
//! A monitoring check must get through whatever else is connected, so the
//! accept loop never waits: each connection is served by its own task,
//! at most [`MAX_ADMIN_CONNECTIONS`] at once, and when that many are open
//! a new one closes the oldest that has not yet sent its request (an idle
//! client holds nothing a fresh one needs). Every connection has
//! [`REQUEST_TIMEOUT`] in all.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::shutdown::Shutdown;

/// Largest request head read; longer requests get 431.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a client has to send its request and read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections open at once; past it the oldest that has not sent
/// its request is closed (or, when all are answering, the new one).
pub const MAX_ADMIN_CONNECTIONS: usize = 16;
/// Pause after a failed accept (e.g. out of descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The state `/health` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// What is wrong; empty when healthy (then 200, else 503).
    pub problems: Vec<String>,
    /// One line per thing checked, shown in the body either way.
    pub checks: Vec<String>,
}

/// What `/health` and `/metrics` report, supplied by the binary.
pub trait Status: Send + Sync + 'static {
    /// The checks behind `/health`. May block briefly (it reads the file
    /// system): it runs on the blocking pool.
    fn health(&self) -> Health;
    /// The Prometheus text exposition.
    fn metrics(&self) -> String;
}

/// Connections still waiting for their request head, oldest first, each
/// with the signal that closes it.
#[derive(Default)]
struct Idle {
    next_id: u64,
    open: usize,
    waiting: VecDeque<(u64, Arc<Notify>)>,
}

impl Idle {
    fn lock(this: &Mutex<Idle>) -> std::sync::MutexGuard<'_, Idle> {
        this.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub async fn serve(listener: TcpListener, status: Arc<dyn Status>, mut shutdown: Shutdown) {
    let idle = Arc::new(Mutex::new(Idle::default()));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        let close = Arc::new(Notify::new());
        let id = {
            let mut state = Idle::lock(&idle);
            if state.open >= MAX_ADMIN_CONNECTIONS {
                match state.waiting.pop_front() {
                    // notify_one stores a permit, so the close is not lost
                    // if that task is not waiting yet.
                    Some((_, oldest)) => oldest.notify_one(),
                    // Every slot is answering a request: this one waits
                    // for none of them (each ends within REQUEST_TIMEOUT).
                    None => {
                        drop(stream);
                        continue;
                    }
                }
            }
            state.open += 1;
            state.next_id += 1;
            let id = state.next_id;
            state.waiting.push_back((id, Arc::clone(&close)));
            id
        };
        let status = Arc::clone(&status);
        let idle = Arc::clone(&idle);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                REQUEST_TIMEOUT,
                answer(stream, status, close, || {
                    Idle::lock(&idle).waiting.retain(|(i, _)| *i != id);
                }),
            )
            .await;
            let mut state = Idle::lock(&idle);
            state.waiting.retain(|(i, _)| *i != id);
            state.open = state.open.saturating_sub(1);
        });
    }
}

/// Reads the request head (giving up when `close` fires first), calls
/// `got_head` once it is complete, then answers.
async fn answer(
    mut stream: TcpStream,
    status: Arc<dyn Status>,
    close: Arc<Notify>,
    got_head: impl FnOnce(),
) {
    let read = read_head(&mut stream);
    let head = tokio::select! {
        h = read => h,
        _ = close.notified() => return,
    };
    got_head();
    let Some(head) = head else { return };
    let (code, reason, body, head_only) = match head {
        Head::Complete(bytes) => respond(&bytes, status).await,
        Head::TooLarge => (431, "Request Header Fields Too Large", String::new(), false),
    };
    // The metrics are OpenMetrics text (prometheus-client); everything
    // else is plain text.
    let content_type = if body.ends_with("# EOF\n") {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

enum Head {
    Complete(Vec<u8>),
    TooLarge,
}

/// The request head, or None when the client went away first.
async fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Some(Head::Complete(head));
        }
        if head.len() >= MAX_REQUEST_HEAD {
            return Some(Head::TooLarge);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// Which resource a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Metrics,
    NotAllowed,
    NotFound,
}

/// The route and whether the method is HEAD (answer without the body).
fn route(head: &[u8]) -> (Route, bool) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head_only = method == "HEAD";
    let route = match (method, path) {
        ("GET" | "HEAD", "/health") => Route::Health,
        ("GET" | "HEAD", "/metrics") => Route::Metrics,
        (_, "/health" | "/metrics") => Route::NotAllowed,
        _ => Route::NotFound,
    };
    (route, head_only)
}

async fn respond(head: &[u8], status: Arc<dyn Status>) -> (u16, &'static str, String, bool) {
    let (route, head_only) = route(head);
    let (code, reason, body) = match route {
        Route::Health => {
            let health = tokio::task::spawn_blocking(move || status.health())
                .await
                .unwrap_or_else(|_| Health {
                    problems: vec!["health check failed".to_string()],
                    checks: Vec::new(),
                });
            health_response(&health)
        }
        Route::Metrics => (200, "OK", status.metrics()),
        Route::NotAllowed => (405, "Method Not Allowed", String::new()),
        Route::NotFound => (404, "Not Found", String::new()),
    };
    (code, reason, body, head_only)
}

/// 200 `ok` or 503 with the reasons on the first line, then each check.
fn health_response(health: &Health) -> (u16, &'static str, String) {
    let (code, reason, first) = if health.problems.is_empty() {
        (200, "OK", "ok".to_string())
    } else {
        (503, "Service Unavailable", health.problems.join("; "))
    };
    let mut body = first;
    body.push('\n');
    for c in &health.checks {
        body.push_str(c);
        body.push('\n');
    }
    (code, reason, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<String>);
    impl Status for Fixed {
        fn health(&self) -> Health {
            Health {
                problems: self.0.clone(),
                checks: vec!["store writer: running".into()],
            }
        }
        fn metrics(&self) -> String {
            "m 1\n".into()
        }
    }

    #[test]
    fn routes_health_metrics_head_and_the_rest() {
        assert_eq!(
            route(b"GET /health HTTP/1.1\r\n\r\n"),
            (Route::Health, false)
        );
        assert_eq!(
            route(b"HEAD /health HTTP/1.1\r\n\r\n"),
            (Route::Health, true)
        );
        assert_eq!(
            route(b"GET /metrics?x HTTP/1.1\r\n\r\n"),
            (Route::Metrics, false)
        );
        assert_eq!(route(b"POST /health HTTP/1.1\r\n\r\n").0, Route::NotAllowed);
        assert_eq!(
            route(b"GET /etc/passwd HTTP/1.1\r\n\r\n").0,
            Route::NotFound
        );
        assert_eq!(route(b"\xff\xfe\r\n\r\n").0, Route::NotFound);
    }

    #[test]
    fn health_is_503_with_the_reasons_first() {
        let ok = health_response(&Fixed(Vec::new()).health());
        assert_eq!(ok, (200, "OK", "ok\nstore writer: running\n".into()));
        let sick = health_response(
            &Fixed(vec!["disk low".into(), "store writer stopped".into()]).health(),
        );
        assert_eq!(sick.0, 503);
        assert!(
            sick.2.starts_with("disk low; store writer stopped\n"),
            "{}",
            sick.2
        );
    }

    async fn get(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_gets_through_while_idle_connections_fill_the_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let status: Arc<dyn Status> = Arc::new(Fixed(Vec::new()));
        let server = tokio::spawn(serve(listener, status, shutdown));
        let mut idle = Vec::new();
        for _ in 0..40 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        for _ in 0..7 {
            let answer = tokio::time::timeout(
                Duration::from_secs(1),
                get(addr, b"GET /health HTTP/1.1\r\n\r\n"),
            )
            .await
            .expect("health answered within a second");
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        }
        let head = get(addr, b"HEAD /health HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 25\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "headers only: {head:?}");
        trigger.trigger();
        server.await.unwrap();
    }
}
