//! The binaries' small HTTP server (hyper 1 on tokio): `GET /metrics` (the
//! Prometheus text format), `GET /healthz` (the process is alive) and
//! `GET /readyz` (the binary's readiness checks). Anything else is 404; a
//! known path with another method is 405.
//!
//! `/readyz` answers 200 when every check passes and 503 otherwise, with a
//! short text body: a first line `ready <role>` or `not ready <role>`, then
//! one line per check (`ok name: detail` or `FAIL name: detail`).
//! `/readyz?leader` additionally requires the role `leader`, for load
//! balancers that must reach the leader of several instances.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
pub use tokio_util::sync::CancellationToken;

/// The Prometheus text exposition format, with its version.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One readiness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short name, e.g. `nats`.
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// One line of detail.
    pub detail: String,
}

impl Check {
    /// A passing check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            detail: detail.into(),
        }
    }

    /// A failing check.
    pub fn fail(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

/// What a readiness callback reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// The instance's role, e.g. `leader` or `standby` (None: no roles).
    pub role: Option<&'static str>,
    /// The checks; ready when all pass (and there is at least one).
    pub checks: Vec<Check>,
}

impl Readiness {
    /// Whether every check passes.
    pub fn ready(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The `/readyz` body.
    pub fn body(&self) -> String {
        let mut out = String::from(if self.ready() { "ready" } else { "not ready" });
        if let Some(role) = self.role {
            out.push(' ');
            out.push_str(role);
        }
        out.push('\n');
        for c in &self.checks {
            let verdict = if c.ok { "ok" } else { "FAIL" };
            out.push_str(&format!("{verdict} {}: {}\n", c.name, c.detail));
        }
        out
    }
}

/// The readiness callback a binary hands to [`serve`].
pub type ReadinessFn = Arc<dyn Fn() -> BoxFuture<'static, Readiness> + Send + Sync>;

/// Wraps an async closure as a [`ReadinessFn`].
pub fn readiness<F, Fut>(f: F) -> ReadinessFn
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Readiness> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

/// Binds `addr` (must be called inside a tokio runtime) and serves until
/// `stop` is cancelled. Binding errors are returned at once.
pub fn serve(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    ready: ReadinessFn,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let local = listener.local_addr()?;
    let state = Arc::new(State {
        metrics,
        process: metrics_process::Collector::default(),
        ready,
    });
    tokio::spawn(accept_loop(listener, state, stop));
    Ok(local)
}

struct State {
    metrics: PrometheusHandle,
    /// Sets the standard `process_*` metrics (CPU seconds, resident and
    /// virtual memory, open and max fds, threads, start time) at each scrape.
    process: metrics_process::Collector,
    ready: ReadinessFn,
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
            // Reap finished connections so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "http accept");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        let stop = stop.clone();
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "http connection");
                    }
                }
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), conn).await;
                }
            }
        });
    }
    // Open connections had a second to finish on `stop`.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return text(StatusCode::NOT_FOUND, TEXT, "not found\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => {
            state.process.collect();
            text(
                StatusCode::OK,
                PROMETHEUS_CONTENT_TYPE,
                state.metrics.render(),
            )
        }
        "/healthz" => text(StatusCode::OK, TEXT, "ok\n".into()),
        _ => {
            let want_leader = query.split('&').any(|p| p == "leader" || p == "leader=");
            let r = (state.ready)().await;
            let mut body = r.body();
            let mut ok = r.ready();
            if want_leader && r.role != Some("leader") {
                ok = false;
                body.push_str("FAIL leader: this instance does not lead\n");
            }
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, TEXT, body)
        }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The container healthcheck (`--probe /readyz`) for images without curl:
/// `GET path` on the binary's own metrics listener at `addr` (an
/// unspecified address such as `0.0.0.0` means loopback). Returns the body
/// on 200, else what went wrong.
pub fn probe(addr: SocketAddr, path: &str, timeout: std::time::Duration) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut s = std::net::TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("connect {target}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body.to_string())
    } else {
        Err(format!("{status}\n{body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn request(addr: SocketAddr, method: &str, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[test]
    fn readiness_body() {
        let r = Readiness {
            role: Some("standby"),
            checks: vec![Check::pass("nats", "connected"), Check::fail("pg", "down")],
        };
        assert!(!r.ready());
        assert_eq!(
            r.body(),
            "not ready standby\nok nats: connected\nFAIL pg: down\n"
        );
        assert!(!Readiness::default().ready());
    }

    #[tokio::test]
    async fn routes() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let leader = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let l2 = Arc::clone(&leader);
        let ready = readiness(move || {
            let lead = l2.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                Readiness {
                    role: Some(if lead { "leader" } else { "standby" }),
                    checks: vec![Check::pass("nats", "connected")],
                }
            }
        });
        let stop = CancellationToken::new();
        let addr = serve("127.0.0.1:0".parse().unwrap(), handle, ready, stop.clone()).unwrap();

        let r = request(addr, "GET", "/metrics").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{r}"
        );
        let probed = tokio::task::spawn_blocking(move || {
            let unspecified = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            (
                probe(unspecified, "/healthz", std::time::Duration::from_secs(2)),
                probe(addr, "/nonexistent", std::time::Duration::from_secs(2)),
            )
        })
        .await
        .unwrap();
        assert_eq!(probed.0.as_deref(), Ok("ok\n"));
        assert!(probed.1.is_err_and(|e| e.contains("404")));
        let r = request(addr, "GET", "/healthz").await;
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok\n"), "{r}");
        let r = request(addr, "GET", "/readyz").await;
        assert!(
            r.starts_with("HTTP/1.1 200") && r.contains("ready leader"),
            "{r}"
        );
        let r = request(addr, "GET", "/readyz?leader").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        leader.store(false, std::sync::atomic::Ordering::SeqCst);
        let r = request(addr, "GET", "/readyz").await;
        assert!(
            r.starts_with("HTTP/1.1 200") && r.contains("ready standby"),
            "{r}"
        );
        let r = request(addr, "GET", "/readyz?leader").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        let r = request(addr, "GET", "/nonexistent").await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let r = request(addr, "POST", "/metrics").await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");

        stop.cancel();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
