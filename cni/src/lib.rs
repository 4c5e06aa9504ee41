//! The `kube-ovn` CNI plugin and the API it shares with `kube-ovn-daemon`.
//!
//! Multus runs the plugin for every kube-ovn attachment of a Pod. The plugin is a thin shim: it
//! reads the CNI environment and stdin, forwards the request over gRPC to the node daemon (unix
//! socket from the NAD's `server_socket`), and prints the result or a CNI error in the shape the
//! requested `cniVersion` expects. The daemon does the work.
//!
//! - [`api`]: the gRPC API both sides import (messages, service, CNI codes in a status);
//!   `kube-ovn-daemon` depends on this crate for it and for nothing of the plugin's client.
//! - [`plugin`], [`mod@env`], [`netconf`], [`result`], [`version`]: one invocation, from the CNI
//!   environment and stdin to the result JSON; [`client`]: the plugin's channel to the daemon.
//! - [`error`]: the CNI error result and the well-known codes, shared with the daemon.

pub mod api;
pub mod client;
pub mod env;
pub mod error;
pub mod netconf;
pub mod plugin;
pub mod result;
pub mod version;
