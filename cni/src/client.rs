//! The plugin's transport: a channel to the daemon over its unix socket. The API it speaks (and
//! how errors travel in it) is [`crate::api`].

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::api::proto::cni_daemon_client::CniDaemonClient;
use crate::error::{CniError, code};

/// How long the plugin waits to connect to the daemon's socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the daemon at `socket`. A daemon that is not there is "try again later" (11): the
/// runtime retries, and the message says what to look at.
pub async fn connect(
    socket: &str,
    cni_version: &str,
) -> Result<CniDaemonClient<Channel>, CniError> {
    let path = PathBuf::from(socket);
    // The URI is required by the HTTP/2 layer and never resolved: the connector dials the socket.
    let endpoint =
        Endpoint::from_static("http://kube-ovn-daemon.invalid").connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| {
            CniError::new(
                cni_version,
                code::TRY_AGAIN_LATER,
                format!(
                    "kube-ovn-daemon is not reachable at {socket}: {}; is the kube-ovn-cni \
                     DaemonSet running on this node? (kubectl logs -n kube-system \
                     daemonset/kube-ovn-cni)",
                    source_chain(&e)
                ),
            )
        })?;
    Ok(CniDaemonClient::new(channel))
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        parts.push(e.to_string());
        cur = e.source();
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_try_again_later_naming_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let err = connect(sock.to_str().unwrap(), "0.3.1").await.unwrap_err();
        assert_eq!(err.code, code::TRY_AGAIN_LATER);
        assert!(
            err.msg.contains("none.sock") && err.msg.contains("kube-ovn-cni"),
            "{}",
            err.msg
        );
    }
}
