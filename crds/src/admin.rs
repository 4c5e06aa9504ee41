//! The admin HTTP endpoint both binaries serve (feature `admin`): `GET /metrics` (OpenMetrics
//! text), `GET /healthz` (liveness) and `GET /readyz` (readiness), each check answering `200 ok`
//! or `503` with the reason, so a probe's failure says why in the kubelet's event. Also the
//! listen-address handling the controller's webhook shares.
//!
//! The binaries keep their own metric registries and decide what healthy and ready mean; this
//! module only serves them. Also what both binaries do first: logging ([`init_logging`]) and
//! the API client ([`kube_client`]).

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

/// `registries` in one OpenMetrics text exposition (one `# EOF` at the end). Writing into a
/// String cannot fail; an encoder error would be a bug in the encoder, and a scrape still gets
/// a well-formed (if partial) answer.
pub fn render(registries: &[&prometheus_client::registry::Registry]) -> String {
    let mut out = String::new();
    for registry in registries {
        let mut one = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut one, registry).is_ok() {
            out.push_str(&one);
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The `process_*` series Prometheus' client libraries export (CPU seconds, resident and
/// virtual memory, open and maximum file descriptors, start time), read from `/proc/self` at
/// scrape time. Nothing is reported where `/proc` cannot be read.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessCollector;

/// What [`ProcessCollector`] reads.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time_seconds: f64,
}

/// Linux's `USER_HZ`, the unit of `/proc/<pid>/stat` times, 100 on every architecture Linux
/// exports it for.
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    /// From `/proc/self/stat` (`stat`), its `/proc/self/status` (`status`) and the boot time
    /// (`btime` of `/proc/stat`).
    fn parse(stat: &str, status: &str, boot_time: f64) -> Option<Self> {
        // The command name is in parentheses and may hold spaces: fields count after its end.
        let fields: Vec<&str> = stat
            .get(stat.rfind(')')? + 1..)?
            .split_whitespace()
            .collect();
        // After the name: state is field 3 of proc(5), so field n is at index n - 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let kb = |key: &str| {
            status.lines().find_map(|l| {
                let rest = l.strip_prefix(key)?.trim().strip_suffix("kB")?;
                rest.trim().parse::<f64>().ok().map(|v| v * 1024.0)
            })
        };
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
            resident_bytes: kb("VmRSS:").unwrap_or(0.0),
            virtual_bytes: kb("VmSize:").unwrap_or(0.0),
            start_time_seconds: boot_time + field(22)? / USER_HZ,
        })
    }

    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        Self::parse(&stat, &status, boot_time)
    }
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_fds(limits: &str) -> Option<f64> {
    limits.lines().find_map(|l| {
        l.strip_prefix("Max open files")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let Some(stats) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(stats.cpu_seconds).encode(cpu)?;
        #[allow(clippy::cast_precision_loss)]
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as f64)
            .ok();
        let max = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| max_fds(&l));
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some(stats.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some(stats.virtual_bytes),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                Some(stats.start_time_seconds),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                max,
            ),
        ] {
            if let Some(v) = value {
                let g = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(g)?;
            }
        }
        Ok(())
    }
}

/// Logs to stdout at `RUST_LOG`'s levels (default `info`), as JSON lines or as text; text has
/// no colour escapes off a terminal (`kubectl logs` showed them).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
}

/// Why no API client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig given could not be read.
    #[error("reading kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig given and not in a pod.
    #[error("no in-cluster config and no --kubeconfig")]
    Infer(#[source] kube::config::InferConfigError),
    /// The configuration was read but no client could be built from it.
    #[error("building the API client")]
    Client(#[from] kube::Error),
}

/// The API client: from `kubeconfig` when given, else in-cluster.
pub async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
) -> Result<kube::Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let read = |source| ClientError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(read)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(read)?
        }
        None => kube::Config::infer().await.map_err(ClientError::Infer)?,
    };
    Ok(kube::Client::try_from(config)?)
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

/// Parses a listen-address flag: empty disables the endpoint (`None`). An IPv4 address may be
/// bracketed like an IPv6 one (`[10.0.0.5]:10660`): the charts write `[$(POD_IP)]:<port>` from
/// the downward API, which gives a bare address of either family, and only the brackets make
/// that one form valid for both.
pub fn parse_addr(flag: &'static str, addr: &str) -> Result<Option<SocketAddr>, AddrError> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Ok(None);
    }
    if let Some((host, port)) = addr
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("]:"))
        && let Ok(v4) = host.parse::<std::net::Ipv4Addr>()
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(Some(SocketAddr::from((v4, port))));
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

/// The next connection on `listener`, or `None` once `shutdown` resolves. Accept errors
/// (EMFILE and the like, which clear when other connections close) are logged naming `what`
/// and retried after a short pause instead of spinning.
pub async fn accept_next<F: Future<Output = ()>>(
    listener: &tokio::net::TcpListener,
    mut shutdown: std::pin::Pin<&mut F>,
    what: &str,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            () = &mut shutdown => return None,
            accepted = listener.accept() => match accepted {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "{what}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Serves `routes` on `listener` (HTTP/1.1) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    while let Some((stream, peer)) =
        accept_next(&listener, shutdown.as_mut(), "admin endpoint").await
    {
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
    fn process_stats_come_from_proc_with_a_name_that_has_spaces() {
        let stat = "4242 (kube ovn) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 \
                    12345 1000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let status = "Name:\tkube ovn\nVmSize:\t  2048 kB\nVmRSS:\t    1024 kB\n";
        let s = ProcessStats::parse(stat, status, 1_700_000_000.0).unwrap();
        assert_eq!(
            s,
            ProcessStats {
                cpu_seconds: 3.0,
                resident_bytes: 1024.0 * 1024.0,
                virtual_bytes: 2048.0 * 1024.0,
                start_time_seconds: 1_700_000_123.45,
            }
        );
        assert_eq!(ProcessStats::parse("garbage", "", 0.0), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_fds(limits), Some(1_048_576.0));
        // And this process, through a registry.
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let text = render(&[&registry]);
        for series in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
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

    #[test]
    fn a_downward_api_address_of_either_family_parses_in_brackets() {
        for (given, want) in [
            ("[10.244.1.7]:10660", "10.244.1.7:10660"),
            ("[fd00:10:244::7]:10660", "[fd00:10:244::7]:10660"),
            ("10.244.1.7:10665", "10.244.1.7:10665"),
        ] {
            assert_eq!(
                parse_addr("--metrics-addr", given).unwrap(),
                Some(want.parse().unwrap()),
                "{given}"
            );
        }
        // Brackets around something that is no address, or no port: still refused.
        for bad in [
            "[]:10660",
            "[10.244.1.7]",
            "[10.244.1.7]:",
            "[node-1]:10660",
            "[10.0.0.1]:99999",
        ] {
            assert!(parse_addr("--metrics-addr", bad).is_err(), "{bad}");
        }
    }
}
