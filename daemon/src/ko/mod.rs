//! `kubectl ko`: the operator's tool for this attached-CNI Kube-OVN (binary `kubectl-ko`, in
//! the `kube-ovn-cni` image; docs/kubectl-ko.md).
//!
//! - [`cli`]: the command line;
//! - [`tools`]: running `ovn-nbctl`, `ovn-sbctl`, `ovn-trace`, `ovs-vsctl` and `ovs-ofctl`,
//!   here against given addresses or in the right pod by `kubectl exec`;
//! - [`gather`]: reading what one attachment is made of, from the API and the databases;
//! - [`chain`]: judging it, link by link (pure);
//! - [`trace`]: the `ovn-trace` microflow of an attachment (pure).

pub mod chain;
pub mod cli;
pub mod gather;
pub mod tools;
pub mod trace;

/// A `kubectl ko` failure.
#[derive(Debug, thiserror::Error)]
pub enum KoError {
    /// The command line does not say enough.
    #[error("{0}")]
    Usage(String),
    /// A program could not be started.
    #[error("starting {program}: {source} (is it installed and on PATH?)")]
    Spawn {
        /// The program.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// A program failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
    /// A program's output was not what it should be.
    #[error("unexpected output: {0}")]
    Output(String),
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// No API client.
    #[error(transparent)]
    Client(#[from] crds::admin::ClientError),
}
