//! The daemon's error: every way a CNI verb fails, each with the CNI error code the plugin
//! reports for it ([`DaemonError::cni_code`]). It becomes a gRPC status only at the edge
//! ([`DaemonError::into_status`], in [`crate::server`]); the metrics read the code from here.

use cni::api::code;

use crate::interface::InterfaceError;
use crate::netns::NetnsError;
use crate::ovs::OvsError;
use crate::pods::PodError;

/// Plugin-specific CNI code: CHECK found the attachment different from its previous result.
pub const CHECK_MISMATCH: u32 = 100;

/// A failed CNI verb. `what` names the verb, the pod, the interface and the container
/// (`ADD default/p1 net1 (container c1)`), so every message says which attachment it is about.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The plugin's request lacks or mangles a CNI variable (CNI 4: invalid environment).
    #[error("{what}: {reason}")]
    InvalidRequest {
        /// The attachment.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The network configuration or the pod's request contradicts itself or the allocation
    /// (CNI 7: invalid configuration).
    #[error("{what}: {reason}")]
    InvalidConfig {
        /// The attachment.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The controller's annotations are malformed (CNI 7); the error names the key and value.
    #[error("{what}: {source}")]
    Allocation {
        /// The attachment.
        what: String,
        /// The contract's error.
        source: crds::Error,
    },
    /// The controller has not allocated in time, or the pod could not be read (CNI 11: the
    /// runtime tries again).
    #[error("{what}: {source}")]
    NotAllocated {
        /// The attachment.
        what: String,
        /// The wait's error (boxed: it is the largest, and errors travel by value).
        source: Box<PodError>,
    },
    /// A kernel step failed: CNI 3 when the pod's namespace is gone, 7 when the pod already has
    /// an interface of that name, 5 (I/O) otherwise.
    #[error("{what}: {source}")]
    Interface {
        /// The attachment.
        what: String,
        /// The kernel step's error.
        source: InterfaceError,
    },
    /// The OVS port could not be added, or ovn-controller did not install it in time (CNI 11).
    #[error("{what}: {source}")]
    Port {
        /// The attachment.
        what: String,
        /// The database's error (boxed, as the wait's).
        source: Box<OvsError>,
    },
    /// CHECK's `prevResult` does not decode (CNI 6).
    #[error("{what}: {reason}")]
    Decode {
        /// The attachment.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// CHECK found the attachment different from its previous result ([`CHECK_MISMATCH`]).
    #[error("{what}: {reason}")]
    CheckMismatch {
        /// The attachment.
        what: String,
        /// The difference.
        reason: String,
    },
    /// STATUS: the daemon cannot serve ADD now (CNI 50: plugin not available).
    #[error("{reason}")]
    NotAvailable {
        /// Why.
        reason: String,
    },
    /// DEL or GC could not remove everything (CNI 11); every failure is listed, none stopped
    /// the others.
    #[error("{what}: {}", errors.join("; "))]
    Teardown {
        /// The attachment, or `GC`.
        what: String,
        /// Each failure.
        errors: Vec<String>,
    },
    /// A DEL of the same attachment arrived while this ADD was still running (CNI 11): the
    /// ADD stops before it plumbs anything, so nothing outlives the DEL.
    #[error("{what}: a DEL of this attachment arrived before the ADD could finish; ADD abandoned")]
    Superseded {
        /// The attachment.
        what: String,
    },
}

impl DaemonError {
    /// The CNI error code the plugin reports for this error.
    pub fn cni_code(&self) -> u32 {
        match self {
            Self::InvalidRequest { .. } => code::INVALID_ENV,
            Self::InvalidConfig { .. } | Self::Allocation { .. } => code::INVALID_CONFIG,
            Self::NotAllocated { .. }
            | Self::Port { .. }
            | Self::Teardown { .. }
            | Self::Superseded { .. } => code::TRY_AGAIN_LATER,
            Self::Interface { source, .. } => match source {
                InterfaceError::Netns(NetnsError::Gone { .. }) => code::UNKNOWN_CONTAINER,
                InterfaceError::NameTaken { .. } => code::INVALID_CONFIG,
                _ => code::IO_FAILURE,
            },
            Self::Decode { .. } => code::DECODE_FAILURE,
            Self::CheckMismatch { .. } => CHECK_MISMATCH,
            Self::NotAvailable { .. } => code::PLUGIN_NOT_AVAILABLE,
        }
    }

    /// The gRPC status the plugin receives: the code in its metadata, this error's text as
    /// the message ([`cni::api::cni_status`]).
    pub fn into_status(self) -> tonic::Status {
        cni::api::cni_status(self.cni_code(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code survives the trip through gRPC as the plugin reads it, for every kind.
    #[test]
    fn each_kind_reaches_the_plugin_with_its_code_and_message() {
        let what = || "ADD default/p1 net1 (container c1)".to_owned();
        let cases = [
            DaemonError::InvalidRequest {
                what: what(),
                reason: "container id is required".into(),
            },
            DaemonError::InvalidConfig {
                what: what(),
                reason: "provider is empty".into(),
            },
            DaemonError::Interface {
                what: what(),
                source: InterfaceError::Netns(NetnsError::Gone {
                    path: "/var/run/netns/x".into(),
                }),
            },
            DaemonError::Decode {
                what: what(),
                reason: "prevResult is not valid JSON".into(),
            },
            DaemonError::CheckMismatch {
                what: what(),
                reason: "MAC differs".into(),
            },
            DaemonError::NotAvailable {
                reason: "no session".into(),
            },
            DaemonError::Teardown {
                what: "GC".into(),
                errors: vec!["a".into(), "b".into()],
            },
        ];
        let want = [
            code::INVALID_ENV,
            code::INVALID_CONFIG,
            code::UNKNOWN_CONTAINER,
            code::DECODE_FAILURE,
            CHECK_MISMATCH,
            code::PLUGIN_NOT_AVAILABLE,
            code::TRY_AGAIN_LATER,
        ];
        for (err, want) in cases.into_iter().zip(want) {
            let (code, msg) = (err.cni_code(), err.to_string());
            assert_eq!(code, want, "{msg}");
            let seen = cni::api::status_to_cni(&err.into_status(), "1.0.0", "ADD");
            assert_eq!((seen.code, seen.msg), (want, msg));
        }
    }
}
