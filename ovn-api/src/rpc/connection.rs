//! One JSON-RPC connection per byte stream: request/response matching by id, replies to the
//! server's `echo`, notifications passed on in arrival order, and the inactivity probe.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::remote::{Remote, TlsConfig};
use super::tls;
use crate::codec::{DEFAULT_MAX_MESSAGE, Decoder, Message};
use crate::error::{Error, Result};
use crate::value::short;

/// Any byte stream a connection can run over.
trait StreamTrait: AsyncRead + AsyncWrite + Unpin + Send {}
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
            Ok(Box::new(tls::connect(remote, h, s, tls).await?))
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
