//! The socket-owning part: one JSON-RPC [`Connection`] per stream (echo replies, request/response
//! matching by id, inactivity probe), and the [`Client`] that keeps a session to the right server
//! of a remote list (RAFT leader via `_Server.Database`), reconnects with backoff, runs
//! `monitor_cond_since` (falling back to `monitor_cond`/`monitor`) into the [`Replica`], and
//! publishes changes on a broadcast stream.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::codec::{DEFAULT_MAX_MESSAGE, Decoder, Message};
use crate::error::{Error, Result};
use crate::protocol::{
    MonitorMethod, OpResult, Operation, TableUpdates, monitor_params, parse_table_updates,
    parse_transact_result, transact_params,
};
use crate::replica::{Replica, RowChange};
use crate::schema::DatabaseSchema;
use crate::value::short;

/// Where an OVSDB server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// `unix:PATH`
    Unix(PathBuf),
    /// `tcp:HOST:PORT`
    Tcp(String, u16),
    /// `ssl:HOST:PORT`
    Ssl(String, u16),
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp(h, p) if h.contains(':') => write!(f, "tcp:[{h}]:{p}"),
            Remote::Tcp(h, p) => write!(f, "tcp:{h}:{p}"),
            Remote::Ssl(h, p) if h.contains(':') => write!(f, "ssl:[{h}]:{p}"),
            Remote::Ssl(h, p) => write!(f, "ssl:{h}:{p}"),
        }
    }
}

fn host_port(remote: &str, rest: &str) -> Result<(String, u16)> {
    let bad = |reason: &str| Error::InvalidRemote {
        remote: remote.into(),
        reason: reason.into(),
    };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r
            .split_once("]:")
            .ok_or_else(|| bad("expected [IPv6]:PORT"))?;
        (h, p)
    } else {
        rest.rsplit_once(':')
            .ok_or_else(|| bad("expected HOST:PORT"))?
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = port.parse::<u16>().map_err(|_| bad("bad port"))?;
    Ok((host.to_owned(), port))
}

impl FromStr for Remote {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(Error::InvalidRemote {
                    remote: s.into(),
                    reason: "empty path".into(),
                });
            }
            Ok(Remote::Unix(PathBuf::from(p)))
        } else if let Some(r) = s.strip_prefix("tcp:") {
            let (h, p) = host_port(s, r)?;
            Ok(Remote::Tcp(h, p))
        } else if let Some(r) = s.strip_prefix("ssl:") {
            let (h, p) = host_port(s, r)?;
            Ok(Remote::Ssl(h, p))
        } else {
            Err(Error::InvalidRemote {
                remote: s.into(),
                reason: "expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT".into(),
            })
        }
    }
}

/// Parses a comma-separated remote list (a RAFT cluster's members).
pub fn parse_remotes(s: &str) -> Result<Vec<Remote>> {
    let v = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Remote::from_str)
        .collect::<Result<Vec<_>>>()?;
    if v.is_empty() {
        return Err(Error::InvalidRemote {
            remote: s.into(),
            reason: "no remote given".into(),
        });
    }
    Ok(v)
}

/// Client certificate, key and CA for `ssl:` remotes (PEM files).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The CA certificate(s) the server's certificate must chain to.
    pub ca_cert: PathBuf,
    /// Our certificate chain.
    pub cert: PathBuf,
    /// Our private key.
    pub key: PathBuf,
}

/// Any byte stream a connection can run over.
pub(crate) trait StreamTrait: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> StreamTrait for T {}

async fn open_stream(remote: &Remote, tls: Option<&TlsConfig>) -> Result<Box<dyn StreamTrait>> {
    let io = |e| Error::Io {
        remote: remote.to_string(),
        source: e,
    };
    match remote {
        Remote::Unix(p) => Ok(Box::new(
            tokio::net::UnixStream::connect(p).await.map_err(io)?,
        )),
        Remote::Tcp(h, port) => {
            let s = tokio::net::TcpStream::connect((h.as_str(), *port))
                .await
                .map_err(io)?;
            let _ = s.set_nodelay(true);
            Ok(Box::new(s))
        }
        Remote::Ssl(h, port) => {
            let tls = tls.ok_or_else(|| Error::Tls {
                remote: remote.to_string(),
                reason: "ssl: remote needs a TlsConfig (CA, certificate, key)".into(),
            })?;
            let s = tokio::net::TcpStream::connect((h.as_str(), *port))
                .await
                .map_err(io)?;
            let _ = s.set_nodelay(true);
            crate::tls::connect(remote, h, s, tls).await
        }
    }
}

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Result<(Json, u64)>>>>>>;

/// A notification (`update*`, `monitor_canceled`, ...) with its arrival sequence number.
#[derive(Debug)]
pub struct Notification {
    /// JSON-RPC method.
    pub method: String,
    /// Its params.
    pub params: Json,
    /// 1-based arrival order on this connection.
    pub seq: u64,
}

/// One JSON-RPC connection. Cloning shares it; it closes when the peer goes, when the inactivity
/// probe fails, or when every clone is dropped.
#[derive(Debug, Clone)]
pub struct Connection {
    remote: Arc<str>,
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
}

/// Knobs of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionOptions {
    /// Send an echo after this much silence; drop the connection after twice this.
    pub probe_interval: Duration,
    /// Largest accepted message.
    pub max_message: usize,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            probe_interval: Duration::from_secs(5),
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }
}

impl Connection {
    /// Connects to one remote.
    pub async fn open(
        remote: &Remote,
        tls: Option<&TlsConfig>,
        opts: ConnectionOptions,
    ) -> Result<(Connection, mpsc::UnboundedReceiver<Notification>)> {
        let stream = open_stream(remote, tls).await?;
        Ok(Connection::over(stream, remote.to_string(), opts))
    }

    /// Runs the protocol over any byte stream (used with a fake peer in tests).
    pub fn over<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        stream: S,
        remote: String,
        opts: ConnectionOptions,
    ) -> (Connection, mpsc::UnboundedReceiver<Notification>) {
        let (rd, wr) = tokio::io::split(stream);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (notify_tx, notify_rx) = mpsc::unbounded_channel();
        let (dead_tx, dead_rx) = oneshot::channel();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let remote: Arc<str> = Arc::from(remote);
        tokio::spawn(writer(wr, out_rx, dead_tx));
        tokio::spawn(reader(
            rd,
            remote.clone(),
            pending.clone(),
            // Weak, so the connection closes when the last `Connection` handle is dropped.
            out_tx.downgrade(),
            notify_tx,
            dead_rx,
            opts,
        ));
        let conn = Connection {
            remote,
            out: out_tx,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
        };
        (conn, notify_rx)
    }

    /// The remote's name.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// True once the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().map_or(true, |p| p.is_none())
    }

    /// Sends a request and waits for its reply. Returns the result and the number of
    /// notifications received before the reply.
    pub async fn call_seq(&self, method: &str, params: Json) -> Result<(Json, u64)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().map_err(|_| self.disconnected(method))?;
            let Some(map) = p.as_mut() else {
                return Err(self.disconnected(method));
            };
            map.insert(id, tx);
        }
        let msg = Message::request(method, params, id);
        if self.out.send(msg.encode()).is_err() {
            return Err(self.disconnected(method));
        }
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(Error::Rpc { remote, error, .. })) => Err(Error::Rpc {
                remote,
                method: method.to_owned(),
                error,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.disconnected(method)),
        }
    }

    /// Sends a request and waits for its reply.
    pub async fn call(&self, method: &str, params: Json) -> Result<Json> {
        self.call_seq(method, params).await.map(|(j, _)| j)
    }

    fn disconnected(&self, what: &str) -> Error {
        Error::Disconnected {
            remote: self.remote.to_string(),
            context: what.to_owned(),
        }
    }
}

async fn writer<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut out: mpsc::UnboundedReceiver<Vec<u8>>,
    dead: oneshot::Sender<std::io::Error>,
) {
    while let Some(frame) = out.recv().await {
        if let Err(e) = wr.write_all(&frame).await {
            let _ = dead.send(e);
            return;
        }
    }
    let _ = wr.shutdown().await;
    let _ = dead.send(std::io::Error::other("connection closed locally"));
}

fn fail_all(pending: &Pending, err: impl Fn() -> Error) {
    let map = pending.lock().ok().and_then(|mut p| p.take());
    for (_, tx) in map.into_iter().flatten() {
        let _ = tx.send(Err(err()));
    }
}

async fn reader<R: AsyncRead + Unpin>(
    mut rd: R,
    remote: Arc<str>,
    pending: Pending,
    out: mpsc::WeakUnboundedSender<Vec<u8>>,
    notify: mpsc::UnboundedSender<Notification>,
    mut dead: oneshot::Receiver<std::io::Error>,
    opts: ConnectionOptions,
) {
    let reason = read_loop(&mut rd, &remote, &pending, &out, &notify, &mut dead, opts).await;
    debug!(%remote, %reason, "connection closed");
    let r = remote.clone();
    fail_all(&pending, || Error::Disconnected {
        remote: r.to_string(),
        context: reason.to_string(),
    });
}

fn send_weak(out: &mpsc::WeakUnboundedSender<Vec<u8>>, frame: Vec<u8>) {
    if let Some(out) = out.upgrade() {
        let _ = out.send(frame);
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    remote: &Arc<str>,
    pending: &Pending,
    out: &mpsc::WeakUnboundedSender<Vec<u8>>,
    notify: &mpsc::UnboundedSender<Notification>,
    dead: &mut oneshot::Receiver<std::io::Error>,
    opts: ConnectionOptions,
) -> Error {
    let mut dec = Decoder::new(opts.max_message);
    let mut buf = vec![0u8; 64 * 1024];
    let mut seq = 0u64;
    let mut last_rx = Instant::now();
    let mut echo_outstanding = false;
    let mut tick = tokio::time::interval(opts.probe_interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let proto = |reason: String| Error::Protocol {
        remote: remote.to_string(),
        reason,
    };
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = match n {
                    Ok(n) => n,
                    Err(e) => return Error::Io { remote: remote.to_string(), source: e },
                };
                if n == 0 {
                    return if dec.has_partial() {
                        proto("connection closed in the middle of a message".into())
                    } else {
                        Error::Disconnected { remote: remote.to_string(), context: "peer closed the connection".into() }
                    };
                }
                last_rx = Instant::now();
                echo_outstanding = false;
                dec.feed(&buf[..n]);
                loop {
                    let msg = match dec.next_message() {
                        Ok(Some(m)) => m,
                        Ok(None) => break,
                        Err(Error::Oversized { limit, .. }) => return Error::Oversized { remote: remote.to_string(), limit },
                        Err(Error::Protocol { reason, .. }) => return proto(reason),
                        Err(e) => return e,
                    };
                    match msg {
                        Message::Request { method, params, id } if method == "echo" && !id.is_null() => {
                            let reply = Message::Response { result: params, error: Json::Null, id };
                            send_weak(out, reply.encode());
                        }
                        Message::Request { method, params, id } if id.is_null() => {
                            seq += 1;
                            let _ = notify.send(Notification { method, params, seq });
                        }
                        Message::Request { method, id, .. } => {
                            let reply = Message::Response {
                                result: Json::Null,
                                error: json!({"error": "unknown method", "details": method}),
                                id,
                            };
                            send_weak(out, reply.encode());
                        }
                        Message::Response { result, error, id } => {
                            if id == json!("echo") {
                                continue;
                            }
                            let Some(num) = id.as_u64() else {
                                return proto(format!("reply with unexpected id {}", short(&id)));
                            };
                            let tx = pending.lock().ok().and_then(|mut p| p.as_mut().and_then(|m| m.remove(&num)));
                            let Some(tx) = tx else {
                                return proto(format!("reply to unknown request id {num}"));
                            };
                            let r = if error.is_null() {
                                Ok((result, seq))
                            } else {
                                Err(Error::Rpc { remote: remote.to_string(), method: String::new(), error: error.to_string() })
                            };
                            let _ = tx.send(r);
                        }
                    }
                }
            }
            e = &mut *dead => {
                return match e {
                    Ok(e) => Error::Io { remote: remote.to_string(), source: e },
                    Err(_) => Error::Closed { remote: remote.to_string() },
                };
            }
            _ = tick.tick() => {
                let idle = last_rx.elapsed();
                if idle >= opts.probe_interval {
                    if echo_outstanding {
                        return Error::Timeout { what: format!("echo reply from {remote} (inactivity probe)"), after: idle };
                    }
                    echo_outstanding = true;
                    let probe = Message::Request { method: "echo".into(), params: json!([]), id: json!("echo") };
                    send_weak(out, probe.encode());
                }
            }
        }
    }
}

/// A typed-table check run against the live schema at every connect.
pub type SchemaCheck = fn(&DatabaseSchema) -> Result<()>;

/// How to reach and use one database.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Comma-separated remotes (`unix:`, `tcp:`, `ssl:`).
    pub remotes: String,
    /// Database name (`OVN_Northbound`, `OVN_Southbound`, `Open_vSwitch`).
    pub database: String,
    /// Tables to monitor into the replica (all columns).
    pub tables: Vec<String>,
    /// Checks of the live schema (typed tables register theirs).
    pub checks: Vec<SchemaCheck>,
    /// Only use a clustered server while it is the leader (default true).
    pub leader_only: bool,
    /// Preferred monitor method (falls back when the server lacks it).
    pub monitor_method: MonitorMethod,
    /// Inactivity probe interval.
    pub probe_interval: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// How long `transact` waits for a connection before failing.
    pub request_timeout: Duration,
    /// Largest accepted message.
    pub max_message: usize,
    /// TLS material for `ssl:` remotes.
    pub tls: Option<TlsConfig>,
    /// `transact` returns only once the replica reflects the transaction (one extra echo
    /// round trip per transaction; default true).
    pub read_your_writes: bool,
    /// Check written values against the live schema before sending (default true).
    pub validate: bool,
}

impl ClientConfig {
    /// A configuration with defaults: leader-only, `monitor_cond_since`, 5 s probe, backoff
    /// 100 ms..8 s, 30 s request timeout.
    pub fn new(remotes: impl Into<String>, database: impl Into<String>) -> Self {
        ClientConfig {
            remotes: remotes.into(),
            database: database.into(),
            tables: Vec::new(),
            checks: Vec::new(),
            leader_only: true,
            monitor_method: MonitorMethod::CondSince,
            probe_interval: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(8),
            request_timeout: Duration::from_secs(30),
            max_message: DEFAULT_MAX_MESSAGE,
            tls: None,
            read_your_writes: true,
            validate: true,
        }
    }

    /// Monitors a table by name (untyped).
    pub fn monitor_table(mut self, table: &str) -> Self {
        if !self.tables.iter().any(|t| t == table) {
            self.tables.push(table.to_owned());
        }
        self
    }

    /// Adds a schema check.
    pub fn check(mut self, check: SchemaCheck) -> Self {
        self.checks.push(check);
        self
    }
}

/// A batch of replica changes, in server order.
#[derive(Debug, Clone)]
pub struct Update {
    /// The changed rows.
    pub changes: Vec<RowChange>,
    /// True when this batch came from a full resync (fresh monitor) rather than an update.
    pub resync: bool,
    /// True when a new session resumed the monitor from the last transaction id
    /// (`monitor_cond_since` found it) and this batch holds only what changed meanwhile.
    pub resumed: bool,
}

#[derive(Debug, Clone, Default)]
struct ConnState {
    conn: Option<Connection>,
    /// Bumped at every established session.
    generation: u64,
}

#[derive(Debug)]
struct Shared {
    config: ClientConfig,
    remotes: Vec<Remote>,
    state: watch::Sender<ConnState>,
    /// (generation, last applied notification seq) so `transact` can read its own writes.
    applied: watch::Sender<(u64, u64)>,
    replica: RwLock<Replica>,
    changes: broadcast::Sender<Arc<Update>>,
    schema: RwLock<Option<Arc<DatabaseSchema>>>,
    /// Why the supervisor stopped for good (taken by `connect`).
    fatal: Mutex<Option<Error>>,
    /// Why the last session attempt ended (for error messages).
    last_error: Mutex<Option<String>>,
    /// Set when the supervisor has stopped for good.
    stopped: std::sync::atomic::AtomicBool,
}

/// A client of one database: a supervised session plus the replica.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read access to the replica. Do not hold it across an `.await`.
pub type ReplicaRef<'a> = RwLockReadGuard<'a, Replica>;

impl Client {
    /// Connects (trying every remote, with backoff) until the first session is up with its
    /// monitor primed, or `config.request_timeout` passes. Schema check failures are returned
    /// at once.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let remotes = parse_remotes(&config.remotes)?;
        let (state, _) = watch::channel(ConnState::default());
        let (applied, _) = watch::channel((0, 0));
        let (changes, _) = broadcast::channel(4096);
        let empty = Arc::new(DatabaseSchema {
            name: config.database.clone(),
            version: String::new(),
            cksum: None,
            tables: BTreeMap::new(),
        });
        let replica = RwLock::new(Replica::new(empty, &[])?);
        let shared = Arc::new(Shared {
            config,
            remotes,
            state,
            applied,
            replica,
            changes,
            schema: RwLock::new(None),
            fatal: Mutex::new(None),
            last_error: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        let mut st = shared.state.subscribe();
        let task = tokio::spawn(supervise(shared.clone()));
        let client = Client { shared, task };
        let timeout = client.shared.config.request_timeout;
        let ready = tokio::time::timeout(timeout, async {
            loop {
                if let Some(e) = client.take_fatal() {
                    return Err(e);
                }
                if st.borrow_and_update().conn.is_some() {
                    return Ok(());
                }
                if st.changed().await.is_err() {
                    return Err(client.take_fatal().unwrap_or_else(|| Error::Closed {
                        remote: client.shared.config.remotes.clone(),
                    }));
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let last = client.shared.last_error.lock().ok().and_then(|l| l.clone());
                Err(Error::Timeout {
                    what: format!(
                        "a session with {} on {}{}",
                        client.shared.config.database,
                        client.shared.config.remotes,
                        last.map(|l| format!(" (last error: {l})"))
                            .unwrap_or_default()
                    ),
                    after: timeout,
                })
            }
        }
    }

    fn take_fatal(&self) -> Option<Error> {
        self.shared.fatal.lock().ok().and_then(|mut f| f.take())
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.shared.config.database
    }

    /// The live server schema (as of the first connect).
    pub fn schema(&self) -> Option<Arc<DatabaseSchema>> {
        self.shared.schema.read().ok().and_then(|s| s.clone())
    }

    /// The remote of the current session, if connected.
    pub fn current_remote(&self) -> Option<String> {
        self.shared
            .state
            .borrow()
            .conn
            .as_ref()
            .map(|c| c.remote().to_owned())
    }

    /// How many sessions have been established so far (1 after connect; grows with reconnects).
    pub fn sessions(&self) -> u64 {
        self.shared.state.borrow().generation
    }

    /// Reads the replica. Do not hold the guard across an `.await`.
    pub fn replica(&self) -> ReplicaRef<'_> {
        // A poisoned lock means a panic while applying an update; the data is still readable.
        self.shared
            .replica
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to replica changes (each message is one applied update, in order).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Update>> {
        self.shared.changes.subscribe()
    }

    /// Waits until `cond` holds on the replica, re-checking after every update.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&Replica) -> bool,
    ) -> Result<()> {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cond(&self.replica()) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(Error::Closed {
                        remote: self.shared.config.remotes.clone(),
                    });
                }
                Err(_) => {
                    return Err(Error::Timeout {
                        what: "replica condition".into(),
                        after: timeout,
                    });
                }
            }
        }
    }

    fn last_error(&self) -> String {
        self.shared
            .last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default()
    }

    async fn session(&self) -> Result<(Connection, u64)> {
        let mut st = self.shared.state.subscribe();
        let timeout = self.shared.config.request_timeout;
        let r = tokio::time::timeout(timeout, async {
            loop {
                if self.shared.stopped.load(Ordering::SeqCst) || self.task.is_finished() {
                    // The supervisor only stops for good on a schema mismatch.
                    return Err(Error::Closed {
                        remote: format!("{} ({})", self.shared.config.remotes, self.last_error()),
                    });
                }
                {
                    let s = st.borrow_and_update();
                    if let Some(c) = &s.conn
                        && !c.is_closed()
                    {
                        return Ok((c.clone(), s.generation));
                    }
                }
                if st.changed().await.is_err() {
                    return Err(Error::Closed {
                        remote: self.shared.config.remotes.clone(),
                    });
                }
            }
        })
        .await;
        r.unwrap_or_else(|_| {
            Err(Error::Disconnected {
                remote: self.shared.config.remotes.clone(),
                context: format!(
                    "no session within {timeout:?}; last error: {}",
                    self.last_error()
                ),
            })
        })
    }

    /// Sends a raw JSON-RPC request on the current session.
    pub async fn call(&self, method: &str, params: Json) -> Result<Json> {
        let (c, _) = self.session().await?;
        c.call(method, params).await
    }

    /// Runs a transaction. Values are first checked against the live schema
    /// ([`Error::Invalid`]: enum, range, length, count). Operation failures name the table and op. On success (and with
    /// `read_your_writes`, the default) the replica already reflects the transaction's effects
    /// on monitored tables. A [`Error::Disconnected`] means the outcome is unknown.
    pub async fn transact(&self, ops: Vec<Operation>) -> Result<Vec<OpResult>> {
        let db = &self.shared.config.database;
        if self.shared.config.validate
            && let Some(schema) = self.schema()
        {
            for op in &ops {
                crate::protocol::validate(&schema, op)?;
            }
        }
        let (conn, generation) = self.session().await?;
        let (result, _) = conn.call_seq("transact", transact_params(db, &ops)).await?;
        let parsed = parse_transact_result(db, &ops, &result);
        if parsed.is_ok()
            && self.shared.config.read_your_writes
            && !self.shared.config.tables.is_empty()
        {
            // ovsdb-server sends a transaction's reply before the monitor updates it caused,
            // but flushes pending updates before it reads the next request of a session. So
            // the reply to an echo sent now comes after those updates: wait for it, then for
            // every notification before it to be applied.
            if let Ok((_, seq)) = conn.call_seq("echo", json!(["read-your-writes"])).await {
                self.wait_applied(generation, seq).await;
            }
        }
        parsed
    }

    async fn wait_applied(&self, generation: u64, seq: u64) {
        let mut rx = self.shared.applied.subscribe();
        let _ = tokio::time::timeout(self.shared.config.request_timeout, async {
            loop {
                {
                    let (g, s) = *rx.borrow_and_update();
                    if g != generation || s >= seq {
                        return;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Closes the client (the supervisor stops; in-flight requests fail).
    pub fn close(self) {
        self.task.abort();
    }
}

fn set_fatal(shared: &Shared, msg: Error) {
    if let Ok(mut f) = shared.fatal.lock() {
        *f = Some(msg);
    }
}

enum End {
    /// Try the next remote at once (not leader, ...).
    Next(String),
    /// The session ran and was lost.
    Lost(String),
    /// Schema problem: stop.
    Fatal(Error),
}

async fn supervise(shared: Arc<Shared>) {
    let n = shared.remotes.len();
    let mut idx = 0usize;
    let mut backoff = shared.config.backoff_min;
    let mut failures_in_row = 0usize;
    loop {
        let remote = shared.remotes[idx % n].clone();
        idx += 1;
        let started = Instant::now();
        let end = run_session(&shared, &remote).await;
        shared.state.send_modify(|s| s.conn = None);
        match end {
            End::Fatal(msg) => {
                warn!(%remote, db = %shared.config.database, %msg, "stopping: schema check failed");
                if let Ok(mut l) = shared.last_error.lock() {
                    *l = Some(msg.to_string());
                }
                set_fatal(&shared, msg);
                shared.stopped.store(true, Ordering::SeqCst);
                // Wake `connect`.
                shared.state.send_modify(|_| {});
                return;
            }
            End::Next(msg) => {
                debug!(%remote, %msg, "trying the next remote");
                if let Ok(mut l) = shared.last_error.lock() {
                    *l = Some(msg);
                }
                failures_in_row += 1;
            }
            End::Lost(msg) => {
                info!(%remote, db = %shared.config.database, %msg, "session ended");
                if let Ok(mut l) = shared.last_error.lock() {
                    *l = Some(msg);
                }
                if started.elapsed() > Duration::from_secs(5) {
                    failures_in_row = 0;
                    backoff = shared.config.backoff_min;
                } else {
                    failures_in_row += 1;
                }
            }
        }
        // Back off once every remote has been tried without a lasting session.
        if failures_in_row >= n || n == 1 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(shared.config.backoff_max);
            failures_in_row = 0;
        }
    }
}

async fn run_session(shared: &Arc<Shared>, remote: &Remote) -> End {
    let opts = ConnectionOptions {
        probe_interval: shared.config.probe_interval,
        max_message: shared.config.max_message,
    };
    let (conn, mut notes) = match Connection::open(remote, shared.config.tls.as_ref(), opts).await {
        Ok(c) => c,
        Err(e) => return End::Next(e.to_string()),
    };
    let db = shared.config.database.clone();

    // Leadership: with a clustered database, only talk to the connected leader.
    let mut watch_server = false;
    if shared.config.leader_only {
        match server_status(&conn, &db).await {
            Ok(s) if s.model == "clustered" => {
                if !(s.leader && s.connected) {
                    return End::Next(format!("{remote} is not the cluster leader of {db}"));
                }
                watch_server = true;
            }
            Ok(_) => {}
            Err(e) => return End::Next(e.to_string()),
        }
    }

    // Schema: fetch, check the typed tables, remember.
    let schema = match conn.call("get_schema", json!([db])).await {
        Ok(j) => match DatabaseSchema::parse(&j) {
            Ok(s) => Arc::new(s),
            Err(e) => return End::Fatal(e),
        },
        Err(e) => return End::Lost(e.to_string()),
    };
    for check in &shared.config.checks {
        if let Err(e) = check(&schema) {
            return End::Fatal(e);
        }
    }
    for t in &shared.config.tables {
        if let Err(e) = schema.table(t) {
            return End::Fatal(e);
        }
    }
    if let Ok(mut s) = shared.schema.write() {
        *s = Some(schema.clone());
    }

    if watch_server {
        let p = json!(["_Server", "server", {"Database": {"columns": ["name", "model", "leader", "connected"]}}]);
        if let Err(e) = conn.call("monitor", p).await {
            return End::Lost(format!("monitoring _Server: {e}"));
        }
    }

    // Monitor.
    let monitor_id = json!(db.clone());
    let mut method = shared.config.monitor_method;
    if !shared.config.tables.is_empty() {
        let tables: BTreeMap<String, Vec<String>> = shared
            .config
            .tables
            .iter()
            .filter_map(|t| {
                schema.tables.get(t).map(|ts| {
                    (
                        t.clone(),
                        ts.columns.iter().map(|c| c.name.clone()).collect(),
                    )
                })
            })
            .collect();
        loop {
            let last = replica_last_txn(shared, &schema);
            let params = monitor_params(method, &db, &monitor_id, &tables, last.as_deref());
            match conn.call(method.method(), params).await {
                Ok(reply) => {
                    if let Err(e) = prime_replica(shared, &schema, method, &reply) {
                        return End::Lost(format!("applying the initial monitor reply: {e}"));
                    }
                    break;
                }
                Err(Error::Rpc { error, .. }) if error.contains("unknown method") => {
                    match method.fallback() {
                        Some(m) => method = m,
                        None => {
                            return End::Fatal(Error::Protocol {
                                remote: remote.to_string(),
                                reason: "the server supports no monitor method".into(),
                            });
                        }
                    }
                }
                Err(e) => return End::Lost(e.to_string()),
            }
        }
    } else {
        ensure_replica(shared, &schema);
    }

    let generation = shared.state.borrow().generation + 1;
    shared.applied.send_replace((generation, 0));
    shared.state.send_modify(|s| {
        s.conn = Some(conn.clone());
        s.generation = generation;
    });
    info!(%remote, %db, ?method, "session established");

    loop {
        let Some(n) = notes.recv().await else {
            break End::Lost("connection closed".into());
        };
        tracing::trace!(method = %n.method, seq = n.seq, params = %short(&n.params), "notification");
        match n.method.as_str() {
            "update" | "update2" | "update3" if n.params.get(0) == Some(&monitor_id) => {
                let (v2, txn, body) = match n.method.as_str() {
                    "update3" => (
                        true,
                        n.params.get(1).and_then(Json::as_str).map(str::to_owned),
                        n.params.get(2),
                    ),
                    "update2" => (true, None, n.params.get(1)),
                    _ => (false, None, n.params.get(1)),
                };
                let r = parse_table_updates(body.unwrap_or(&Json::Null), v2)
                    .and_then(|u| apply_updates(shared, &u, txn));
                if let Err(e) = r {
                    // Force a full resync on the next session.
                    if let Ok(mut g) = shared.replica.write() {
                        g.set_last_txn_id(None);
                    }
                    break End::Lost(format!("bad update: {e}"));
                }
            }
            "update" if n.params.get(0) == Some(&json!("server")) => {
                if server_update_says_not_leader(&n.params, &db) {
                    break End::Next(format!("{remote} is no longer the leader of {db}"));
                }
            }
            "monitor_canceled" => break End::Lost("server canceled the monitor".into()),
            other => debug!(method = other, "ignoring notification"),
        }
        shared.applied.send_replace((generation, n.seq));
    }
}

fn replica_last_txn(shared: &Shared, schema: &Arc<DatabaseSchema>) -> Option<String> {
    let r = shared.replica.read().ok()?;
    // A different schema (server upgraded) invalidates the replica.
    if r.schema().tables.len() != schema.tables.len() || r.schema().version != schema.version {
        return None;
    }
    r.last_txn_id().map(str::to_owned)
}

fn ensure_replica(shared: &Shared, schema: &Arc<DatabaseSchema>) {
    if let Ok(mut g) = shared.replica.write()
        && g.schema().version != schema.version
        && let Ok(r) = Replica::new(schema.clone(), &shared.config.tables)
    {
        *g = r;
    }
}

fn prime_replica(
    shared: &Shared,
    schema: &Arc<DatabaseSchema>,
    method: MonitorMethod,
    reply: &Json,
) -> Result<()> {
    let (found, txn, updates) = match method {
        MonitorMethod::CondSince => {
            let found = reply.get(0).and_then(Json::as_bool).unwrap_or(false);
            let txn = reply.get(1).and_then(Json::as_str).map(str::to_owned);
            (
                found,
                txn,
                parse_table_updates(reply.get(2).unwrap_or(&Json::Null), true)?,
            )
        }
        MonitorMethod::Cond => (false, None, parse_table_updates(reply, true)?),
        MonitorMethod::Plain => (false, None, parse_table_updates(reply, false)?),
    };
    let changes = {
        let mut g = shared.replica.write().map_err(|_| Error::Closed {
            remote: "replica".into(),
        })?;
        if g.schema().version != schema.version || g.schema().tables.len() != schema.tables.len() {
            *g = Replica::new(schema.clone(), &shared.config.tables)?;
        }
        let rep = &mut *g;
        let changes = if found {
            rep.apply(&updates)?
        } else {
            rep.replace(&updates)?
        };
        rep.set_last_txn_id(txn);
        changes
    };
    let _ = shared.changes.send(Arc::new(Update {
        changes,
        resync: !found,
        resumed: found,
    }));
    Ok(())
}

fn apply_updates(shared: &Shared, updates: &TableUpdates, txn: Option<String>) -> Result<()> {
    let changes = {
        let mut g = shared.replica.write().map_err(|_| Error::Closed {
            remote: "replica".into(),
        })?;
        let rep = &mut *g;
        let c = rep.apply(updates)?;
        if txn.is_some() {
            rep.set_last_txn_id(txn);
        }
        c
    };
    if !changes.is_empty() {
        let _ = shared.changes.send(Arc::new(Update {
            changes,
            resync: false,
            resumed: false,
        }));
    }
    Ok(())
}

/// What `_Server.Database` says about one database on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// `standalone`, `clustered` or `relay`.
    pub model: String,
    /// This server is the leader (always true for standalone).
    pub leader: bool,
    /// This server is connected to its cluster.
    pub connected: bool,
}

/// Asks a server about `db` in its `_Server` database.
pub async fn server_status(conn: &Connection, db: &str) -> Result<ServerStatus> {
    let ops = vec![Operation::Select {
        table: "Database".into(),
        conditions: vec![crate::protocol::Condition::eq(
            "name",
            crate::value::Datum::scalar(db),
        )],
        columns: Some(vec!["model".into(), "leader".into(), "connected".into()]),
    }];
    let r = conn
        .call("transact", transact_params("_Server", &ops))
        .await?;
    let res = parse_transact_result("_Server", &ops, &r)?;
    let row = match res.first() {
        Some(OpResult::Rows(rows)) => rows.first().cloned(),
        _ => None,
    }
    .ok_or_else(|| Error::Protocol {
        remote: conn.remote().into(),
        reason: format!("server has no database {db}"),
    })?;
    Ok(ServerStatus {
        model: row
            .get("model")
            .and_then(Json::as_str)
            .unwrap_or("standalone")
            .to_owned(),
        leader: row.get("leader").and_then(Json::as_bool).unwrap_or(true),
        connected: row.get("connected").and_then(Json::as_bool).unwrap_or(true),
    })
}

fn server_update_says_not_leader(params: &Json, db: &str) -> bool {
    let Some(rows) = params
        .get(1)
        .and_then(|u| u.get("Database"))
        .and_then(Json::as_object)
    else {
        return false;
    };
    rows.values().any(|r| {
        let new = r.get("new");
        let name = new.and_then(|n| n.get("name")).and_then(Json::as_str);
        let leader = new.and_then(|n| n.get("leader")).and_then(Json::as_bool);
        let connected = new.and_then(|n| n.get("connected")).and_then(Json::as_bool);
        name == Some(db) && (leader == Some(false) || connected == Some(false))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_remotes() {
        assert_eq!(
            parse_remotes("unix:/run/ovn/ovnnb_db.sock").unwrap(),
            vec![Remote::Unix("/run/ovn/ovnnb_db.sock".into())]
        );
        let v = parse_remotes("tcp:127.0.0.1:6641, tcp:[::1]:6642,ssl:ovn.example:6643").unwrap();
        assert_eq!(
            v,
            vec![
                Remote::Tcp("127.0.0.1".into(), 6641),
                Remote::Tcp("::1".into(), 6642),
                Remote::Ssl("ovn.example".into(), 6643),
            ]
        );
        assert_eq!(v[1].to_string(), "tcp:[::1]:6642");
        for bad in [
            "",
            "tcp:1.2.3.4",
            "tcp:h:99999",
            "udp:h:1",
            "unix:",
            "tcp::1",
        ] {
            assert!(parse_remotes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_update_leadership() {
        let p = json!(["server", {"Database": {"x": {"new": {"name": "OVN_Northbound", "leader": false, "connected": true}}}}]);
        assert!(server_update_says_not_leader(&p, "OVN_Northbound"));
        assert!(!server_update_says_not_leader(&p, "OVN_Southbound"));
        let p = json!(["server", {"Database": {"x": {"new": {"name": "OVN_Northbound", "leader": true, "connected": true}}}}]);
        assert!(!server_update_says_not_leader(&p, "OVN_Northbound"));
    }
}
