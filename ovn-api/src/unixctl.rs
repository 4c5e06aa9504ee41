//! The control socket of an OVS or OVN daemon (what `ovs-appctl -t <socket> <command>` talks
//! to): JSON-RPC 1.0 over a unix socket, one request, one reply whose `result` is the
//! command's text. For asking a daemon about itself without the `ovs-appctl` program, e.g.
//! `ovn-northd`'s `status` ("Status: active" or "standby") from a container that has only our
//! binaries.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::error::{Error, Result};

/// The largest reply read (a `cluster/status` or `coverage/show` is a few KiB).
const MAX_REPLY: usize = 1 << 20;

/// Runs `command` with `args` on the daemon whose control socket is `socket`, waiting at
/// most `timeout`; the command's output.
pub async fn call(
    socket: &Path,
    command: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String> {
    let remote = format!("unix:{}", socket.display());
    tokio::time::timeout(timeout, exchange(socket, &remote, command, args))
        .await
        .map_err(|_| Error::Timeout {
            what: format!("{command} on {remote}"),
            after: timeout,
        })?
}

async fn exchange(socket: &Path, remote: &str, command: &str, args: &[&str]) -> Result<String> {
    let io = |source| Error::Io {
        remote: remote.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).await.map_err(io)?;
    let request = json!({"id": 0, "method": command, "params": args});
    stream
        .write_all(request.to_string().as_bytes())
        .await
        .map_err(io)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let reply: Json = loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(Error::Disconnected {
                remote: remote.to_owned(),
                context: format!("{command}: closed before a whole reply"),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REPLY {
            return Err(Error::Oversized {
                remote: remote.to_owned(),
                limit: MAX_REPLY,
            });
        }
        let mut values = serde_json::Deserializer::from_slice(&buf).into_iter::<Json>();
        match values.next() {
            Some(Ok(v)) => break v,
            Some(Err(e)) if e.is_eof() => {}
            Some(Err(e)) => {
                return Err(Error::Protocol {
                    remote: remote.to_owned(),
                    reason: format!("{command}: reply is not JSON: {e}"),
                });
            }
            None => {}
        }
    };
    match (reply.get("error"), reply.get("result")) {
        (Some(e), _) if !e.is_null() => Err(Error::Rpc {
            remote: remote.to_owned(),
            method: command.to_owned(),
            error: e
                .as_str()
                .map_or_else(|| e.to_string(), |s| s.trim().to_owned()),
        }),
        (_, Some(Json::String(text))) => Ok(text.clone()),
        _ => Err(Error::Protocol {
            remote: remote.to_owned(),
            reason: format!("{command}: reply has neither a text result nor an error: {reply}"),
        }),
    }
}
