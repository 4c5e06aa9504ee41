//! A slow apiserver on demand: a plain-HTTP proxy on 127.0.0.1 in front of the real
//! kube-apiserver, for the controller's client only. Each request is sent on through an admin
//! [`kube::Client`] (which owns the TLS and the credentials; `Client::send` is kube's own hook
//! for proxies), answers stream back (watches included), and while a delay is set every create
//! of an IP CR (`POST /apis/kubeovn.io/v1/ips`) waits that long before it reaches the apiserver:
//! the slow create of issue 13's GC-vs-attach race, against the real apiserver.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kube::client::Body;

/// The proxy; stops (with every connection through it) on drop.
#[derive(Debug)]
pub struct ApiProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    /// How many IP CR creates were held so far.
    held: Arc<AtomicU64>,
    /// The accept loop; it owns the connections' tasks, so aborting it ends them too.
    task: tokio::task::JoinHandle<()>,
}

/// True for the create of an IP CR (they are cluster-scoped).
fn is_ip_create(req: &Request<Incoming>) -> bool {
    req.method() == Method::POST
        && req.uri().path().trim_end_matches('/') == "/apis/kubeovn.io/v1/ips"
}

/// What every connection shares: where to send, and the delay with its count.
#[derive(Clone)]
struct Upstream {
    client: kube::Client,
    delay_ms: Arc<AtomicU64>,
    held: Arc<AtomicU64>,
}

async fn forward(upstream: Upstream, req: Request<Incoming>) -> Response<Body> {
    let delay = upstream.delay_ms.load(Ordering::Relaxed);
    if delay > 0 && is_ip_create(&req) {
        upstream.held.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let (mut parts, body) = req.into_parts();
    // The upstream client sets its own host and credentials.
    parts.headers.remove(hyper::header::HOST);
    let fail = |status: StatusCode, what: String| {
        let mut r = Response::new(Body::from(what.into_bytes()));
        *r.status_mut() = status;
        r
    };
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("proxy: reading the body: {e}"),
            );
        }
    };
    match upstream
        .client
        .send(Request::from_parts(parts, Body::from(body)))
        .await
    {
        Ok(response) => response,
        Err(e) => fail(StatusCode::BAD_GATEWAY, format!("proxy: {e}")),
    }
}

impl ApiProxy {
    /// Listens on a free port of 127.0.0.1 and sends everything on through `upstream`.
    pub async fn start(upstream: kube::Client) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = Upstream {
            client: upstream,
            delay_ms: Arc::new(AtomicU64::new(0)),
            held: Arc::new(AtomicU64::new(0)),
        };
        let (delay_ms, held) = (Arc::clone(&upstream.delay_ms), Arc::clone(&upstream.held));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            let mut never = std::pin::pin!(std::future::pending::<()>());
            while let Some((stream, _)) =
                crds::admin::accept_next(&listener, never.as_mut(), "apiserver proxy").await
            {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let upstream = upstream.clone();
                        async move { Ok::<_, Infallible>(forward(upstream, req).await) }
                    });
                    // A client that goes away mid-answer (a killed controller) is no error here.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap the finished ones so a long run does not accumulate them.
                while connections.try_join_next().is_some() {}
            }
        });
        ApiProxy {
            port,
            delay_ms,
            held,
            task,
        }
    }

    /// A client whose every request goes through the proxy.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://127.0.0.1:{}", self.port).parse().unwrap();
        kube::Client::try_from(kube::Config::new(url)).unwrap()
    }

    /// Delays each IP CR create by `delay` from now on (`Duration::ZERO`: no more).
    pub fn delay_ip_creates(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// How many IP CR creates the proxy has held so far.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
