//! Command-line flags and environment of `kube-ovn-daemon`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Flags of `kube-ovn-daemon`. Every flag can also be set by the environment variable shown.
#[derive(Debug, Clone, Parser)]
#[command(name = "kube-ovn-daemon", version, about)]
pub struct Options {
    /// Unix socket the `kube-ovn` CNI plugin connects to (the NAD's `server_socket`).
    #[arg(long, env = "BIND_SOCKET", default_value = cni::netconf::DEFAULT_SERVER_SOCKET)]
    pub bind_socket: PathBuf,

    /// The node's Open vSwitch database.
    #[arg(long, env = "OVS_DB", default_value = "unix:/run/openvswitch/db.sock")]
    pub ovs_db: String,

    /// This node's name (the chassis name ovn-controller registers).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,

    /// OVN Southbound remote(s) for ovn-controller (`external_ids:ovn-remote`).
    #[arg(long, env = "OVN_SB_ADDR")]
    pub ovn_remote: String,

    /// This node's tunnel endpoint address (`external_ids:ovn-encap-ip`).
    #[arg(long, env = "ENCAP_IP")]
    pub encap_ip: String,

    /// Tunnel type.
    #[arg(long, env = "ENCAP_TYPE", default_value = "geneve")]
    pub encap_type: String,

    /// Datapath type of the integration bridge: `system` (kernel module) or `netdev` (userspace).
    #[arg(long, env = "DATAPATH_TYPE", default_value = "system", value_parser = ["system", "netdev"])]
    pub datapath_type: String,

    /// Integration bridge.
    #[arg(long, env = "BRIDGE", default_value = "br-int")]
    pub bridge: String,

    /// Pod interface MTU unless the NAD sets one (geneve needs underlay MTU - 100).
    #[arg(long, env = "MTU", default_value_t = 1400, value_parser = clap::value_parser!(u32).range(68..=65535))]
    pub mtu: u32,

    /// Longest wait for kube-ovn-controller's allocation on ADD, in seconds.
    #[arg(long, default_value_t = 60)]
    pub allocation_timeout_secs: u64,

    /// Longest wait for ovn-controller's `ovn-installed` on ADD, in seconds.
    #[arg(long, default_value_t = 30)]
    pub install_timeout_secs: u64,

    /// Interval of the sweep that removes ports of pods that no longer exist, in seconds.
    #[arg(long, default_value_t = 300)]
    pub sweep_interval_secs: u64,

    /// Network namespace (a path such as `/var/run/netns/node1`) where the host ends of pod
    /// veths are created and ovs-vswitchd runs; the daemon's own namespace when unset. Lets the
    /// daemon reach the API server from one namespace while serving a node in another.
    #[arg(long, env = "HOST_NETNS")]
    pub host_netns: Option<PathBuf>,

    /// Path to a kubeconfig; in-cluster configuration when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Where to serve Prometheus metrics (`GET /metrics`), as `host:port`; empty disables.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:10665")]
    pub metrics_addr: String,

    /// Log lines as JSON.
    #[arg(long, env = "LOG_JSON")]
    pub log_json: bool,
}

impl Options {
    /// The allocation wait.
    pub fn allocation_timeout(&self) -> Duration {
        Duration::from_secs(self.allocation_timeout_secs)
    }

    /// The install wait.
    pub fn install_timeout(&self) -> Duration {
        Duration::from_secs(self.install_timeout_secs)
    }
}
