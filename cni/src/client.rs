//! The gRPC client side: a channel to the daemon over its unix socket, and the mapping of gRPC
//! failures to CNI error codes.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{CniError, code};
use crate::proto::cni_daemon_client::CniDaemonClient;

/// Metadata key in a daemon error that carries the CNI error code.
pub const CNI_CODE_METADATA: &str = "cni-code";

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

/// Converts a daemon error into a CNI error: the code from the `cni-code` metadata when the
/// daemon set one, else a code derived from the gRPC status.
pub fn status_to_cni(status: &tonic::Status, cni_version: &str, what: &str) -> CniError {
    let from_daemon = status
        .metadata()
        .get(CNI_CODE_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    let code = from_daemon.unwrap_or(match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => code::INVALID_CONFIG,
        tonic::Code::NotFound => code::UNKNOWN_CONTAINER,
        _ => code::TRY_AGAIN_LATER,
    });
    let msg = if from_daemon.is_some() {
        status.message().to_owned()
    } else {
        format!(
            "{what}: kube-ovn-daemon answered {:?}: {}",
            status.code(),
            status.message()
        )
    };
    CniError::new(cni_version, code, msg)
}

/// Builds a gRPC status carrying a CNI error code, for the daemon side.
pub fn cni_status(cni_code: u32, message: impl Into<String>) -> tonic::Status {
    let grpc = match cni_code {
        code::INVALID_CONFIG | code::INVALID_ENV | code::DECODE_FAILURE => {
            tonic::Code::InvalidArgument
        }
        code::UNKNOWN_CONTAINER => tonic::Code::NotFound,
        code::TRY_AGAIN_LATER => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    };
    let mut status = tonic::Status::new(grpc, message);
    if let Ok(value) = cni_code.to_string().parse() {
        status.metadata_mut().insert(CNI_CODE_METADATA, value);
    }
    status
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

    #[test]
    fn the_cni_code_survives_a_round_trip_through_grpc_status() {
        let st = cni_status(
            code::INVALID_CONFIG,
            "provider p is not bound to any subnet",
        );
        let err = status_to_cni(&st, "1.0.0", "ADD default/p1 net1");
        assert_eq!(err.code, code::INVALID_CONFIG);
        assert_eq!(err.msg, "provider p is not bound to any subnet");
    }

    #[test]
    fn a_plain_grpc_status_maps_to_a_code_by_kind() {
        let err = status_to_cni(&tonic::Status::unavailable("down"), "1.0.0", "ADD x");
        assert_eq!(err.code, code::TRY_AGAIN_LATER);
        assert!(
            err.msg.contains("ADD x") && err.msg.contains("down"),
            "{}",
            err.msg
        );
    }

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
