//! The admin HTTP endpoint both binaries serve (feature `admin`): `GET /metrics` (OpenMetrics
//! text), `GET /healthz` (liveness) and `GET /readyz` (readiness), each check answering `200 ok`
//! or `503` with the reason, so a probe's failure says why in the kubelet's event. Also the
//! listen-address handling the controller's webhook shares.
//!
//! The binaries keep their own metric registries and decide what healthy and ready mean; this
//! module only serves them.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

/// The content type of the OpenMetrics text exposition, which Prometheus negotiates.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest a client may take to send its request headers (a stuck scraper holds no task longer).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A check: `Ok` or the reason it fails.
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the endpoint serves.
#[derive(Clone)]
pub struct Routes {
    /// Renders the metrics.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Liveness: failing makes the kubelet restart the container.
    pub healthz: Check,
    /// Readiness.
    pub readyz: Check,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").finish_non_exhaustive()
    }
}

impl Routes {
    /// `metrics` with checks that always pass.
    pub fn metrics_only(metrics: Arc<dyn Fn() -> String + Send + Sync>) -> Self {
        let ok: Check = Arc::new(|| Ok(()));
        Self {
            metrics,
            healthz: ok.clone(),
            readyz: ok,
        }
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, body: String, content_type: &'static str| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(content_type),
            );
            r
        };
        let check = |c: &Check| match c() {
            Ok(()) => reply(StatusCode::OK, "ok\n".into(), "text/plain"),
            Err(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{why}\n"),
                "text/plain",
            ),
        };
        if method != Method::GET {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET only\n".into(),
                "text/plain",
            );
        }
        match path {
            "/metrics" => reply(StatusCode::OK, (self.metrics)(), OPENMETRICS),
            "/healthz" | "/livez" => check(&self.healthz),
            "/readyz" => check(&self.readyz),
            _ => reply(
                StatusCode::NOT_FOUND,
                "not found: /metrics, /healthz, /readyz\n".into(),
                "text/plain",
            ),
        }
    }
}

/// A bad or unusable listen address.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// The address is not `host:port`.
    #[error("{flag} {addr:?} is not a socket address (host:port): {source}")]
    Parse {
        /// The flag it came from, e.g. `--metrics-addr`.
        flag: &'static str,
        /// What was given.
        addr: String,
        /// The parse error.
        source: std::net::AddrParseError,
    },
    /// Binding the listener failed.
    #[error("{flag}: binding {addr}: {source}")]
    Bind {
        /// The flag it came from.
        flag: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Parses a listen-address flag: empty disables the endpoint (`None`).
pub fn parse_addr(flag: &'static str, addr: &str) -> Result<Option<SocketAddr>, AddrError> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Ok(None);
    }
    addr.parse().map(Some).map_err(|source| AddrError::Parse {
        flag,
        addr: addr.to_owned(),
        source,
    })
}

/// Binds a listener (apart from serving, so a bad address fails at start).
pub async fn bind(
    flag: &'static str,
    addr: SocketAddr,
) -> Result<tokio::net::TcpListener, AddrError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AddrError::Bind { flag, addr, source })
}

/// Serves `routes` on `listener` (HTTP/1.1) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and the like clear when other connections close: back off briefly
                    // instead of spinning on accept.
                    tracing::warn!(error = %e, "admin endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = routes.respond(req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn routes(healthy: bool) -> Routes {
        Routes {
            metrics: Arc::new(|| "# EOF\n".to_owned()),
            healthz: Arc::new(move || {
                if healthy {
                    Ok(())
                } else {
                    Err("bridge br-int is missing".into())
                }
            }),
            readyz: Arc::new(|| Ok(())),
        }
    }

    async fn body(r: Response<Full<Bytes>>) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn checks_answer_ok_or_503_with_the_reason() {
        let r = routes(true).respond(&Method::GET, "/healthz");
        assert_eq!(r.status(), StatusCode::OK);
        let r = routes(false).respond(&Method::GET, "/healthz");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(r).await, "bridge br-int is missing\n");
        let r = routes(false).respond(&Method::GET, "/readyz");
        assert_eq!(r.status(), StatusCode::OK);
        let r = routes(true).respond(&Method::GET, "/metrics");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[hyper::header::CONTENT_TYPE], OPENMETRICS);
        assert_eq!(body(r).await, "# EOF\n");
        for (method, path, status) in [
            (Method::GET, "/", StatusCode::NOT_FOUND),
            (Method::GET, "/metricsx", StatusCode::NOT_FOUND),
            (Method::POST, "/metrics", StatusCode::METHOD_NOT_ALLOWED),
        ] {
            assert_eq!(
                routes(true).respond(&method, path).status(),
                status,
                "{path}"
            );
        }
    }

    /// One raw HTTP/1.1 request; the whole response.
    async fn http(addr: SocketAddr, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_over_http_until_shut_down() {
        let listener = bind("--metrics-addr", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, routes(false), async {
            let _ = stopped.await;
        }));
        let ok = http(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(&format!("content-type: {OPENMETRICS}")), "{ok}");
        assert!(ok.ends_with("# EOF\n"), "{ok}");
        let sick = http(
            addr,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            sick.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{sick}"
        );
        assert!(sick.ends_with("bridge br-int is missing\n"), "{sick}");
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    #[test]
    fn an_empty_address_disables_and_a_bad_one_names_its_flag() {
        assert_eq!(parse_addr("--metrics-addr", " ").unwrap(), None);
        assert_eq!(
            parse_addr("--metrics-addr", "0.0.0.0:10665").unwrap(),
            Some("0.0.0.0:10665".parse().unwrap())
        );
        let err = parse_addr("--webhook-addr", "8443")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--webhook-addr") && err.contains("8443"),
            "{err}"
        );
    }
}
