//! The gRPC API between the `kube-ovn` plugin (client) and `kube-ovn-daemon` (server): the
//! messages and service generated from `proto/daemon.proto`, and how a CNI error travels in a
//! gRPC status (the code in the `cni-code` metadata, the message for a person).
//!
//! Both sides import this module and nothing else of each other: the daemon turns its errors
//! into a status with [`cni_status`] at its edge, the plugin turns a status back into a CNI error
//! with [`status_to_cni`]. The plugin's transport ([`crate::client`]) is not part of the API.

use crate::error::CniError;
/// The CNI error codes both sides speak (the daemon sets them, the plugin prints them).
pub use crate::error::code;

/// The messages and the `CniDaemon` service, generated from `proto/daemon.proto`.
#[allow(clippy::all, missing_docs, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("kubeovn.daemon.v1");
}

/// Metadata key in a daemon error that carries the CNI error code.
pub const CNI_CODE_METADATA: &str = "cni-code";

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

/// Converts a daemon error into a CNI error: the code from the `cni-code` metadata when the
/// daemon set one, else a code derived from the gRPC status (a status from the transport, or
/// from something else than our daemon on the socket).
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
}
