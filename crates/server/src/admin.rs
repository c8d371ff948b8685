//! The admin HTTP port (SPEC 7): `GET /health` and `GET /metrics`.
//!
//! Two read-only endpoints do not justify an HTTP stack: this reads one
//! request head (bounded in size and time), answers, and closes
//! (HTTP/1.1 with `Connection: close`, RFC 9112).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::shutdown::Shutdown;

/// Largest request head read; longer requests get 431.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a client has to send its request and read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once; more wait in the accept queue.
pub const MAX_ADMIN_CONNECTIONS: usize = 16;

/// What `/health` and `/metrics` report, supplied by the binary.
pub trait Status: Send + Sync + 'static {
    /// None when healthy, else what is wrong.
    fn problem(&self) -> Option<String>;
    /// The Prometheus text exposition.
    fn metrics(&self) -> String;
}

pub async fn serve(listener: TcpListener, status: Arc<dyn Status>, mut shutdown: Shutdown) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, status)).await;
            drop(slot);
        });
    }
}

async fn answer(mut stream: TcpStream, status: Arc<dyn Status>) {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() >= MAX_REQUEST_HEAD {
            break false;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    };
    let (code, reason, body) = if complete {
        route(&head, status.as_ref())
    } else {
        (431, "Request Header Fields Too Large", String::new())
    };
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn route(head: &[u8], status: &dyn Status) -> (u16, &'static str, String) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/health") => match status.problem() {
            None => (200, "OK", "ok\n".to_string()),
            Some(p) => (503, "Service Unavailable", format!("{p}\n")),
        },
        ("GET", "/metrics") => (200, "OK", status.metrics()),
        (_, "/health" | "/metrics") => (405, "Method Not Allowed", String::new()),
        _ => (404, "Not Found", String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Option<String>);
    impl Status for Fixed {
        fn problem(&self) -> Option<String> {
            self.0.clone()
        }
        fn metrics(&self) -> String {
            "m 1\n".into()
        }
    }

    #[test]
    fn routes_health_metrics_and_the_rest() {
        let ok = Fixed(None);
        assert_eq!(route(b"GET /health HTTP/1.1\r\n\r\n", &ok).0, 200);
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\n\r\n", &ok),
            (200, "OK", "m 1\n".into())
        );
        assert_eq!(route(b"POST /health HTTP/1.1\r\n\r\n", &ok).0, 405);
        assert_eq!(route(b"GET /etc/passwd HTTP/1.1\r\n\r\n", &ok).0, 404);
        assert_eq!(route(b"\xff\xfe\r\n\r\n", &ok).0, 404);
        let sick = Fixed(Some("store closed".into()));
        assert_eq!(route(b"GET /health HTTP/1.0\r\n\r\n", &sick).0, 503);
    }
}
