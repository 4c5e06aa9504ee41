//! The `kube-ovn` CNI plugin and the API it shares with `kube-ovn-daemon`.
//!
//! Multus runs the plugin for every kube-ovn attachment of a Pod. The plugin is a thin shim: it
//! reads the CNI environment and stdin, forwards the request over gRPC to the node daemon (unix
//! socket from the NAD's `server_socket`), and prints the result or a CNI error in the shape the
//! requested `cniVersion` expects. The daemon does the work.

pub mod client;
pub mod env;
pub mod error;
pub mod netconf;
pub mod plugin;
pub mod result;
pub mod version;

/// The gRPC API between the plugin and the daemon, generated from `proto/daemon.proto`.
#[allow(clippy::all, missing_docs, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("kubeovn.daemon.v1");
}
