//! Command-line flags and environment of `kube-ovn-daemon`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use crds::upstream::{
    Disposition, NOT_APPLICABLE, PRIMARY_CNI_OWNS, PRIMARY_NETWORK, UpstreamFlag,
};

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

    /// This node's tunnel endpoint address (`external_ids:ovn-encap-ip`). When unset, the
    /// first address of `--iface` (IPv4 first).
    #[arg(long, env = "ENCAP_IP")]
    pub encap_ip: Option<String>,

    /// The NIC that carries the tunnel between nodes (upstream's `--iface`). With the userspace
    /// datapath it becomes a port of the OVS bridge `--dpdk-tunnel-iface` and its addresses and
    /// routes move to that bridge (ovs-vswitchd's tunnels route only over its own bridges);
    /// give a NIC that carries nothing else. Empty: the tunnel uses `--encap-ip` as it is.
    #[arg(long, env = "IFACE")]
    pub iface: Option<String>,

    /// The OVS bridge that takes the tunnel NIC's addresses with the userspace datapath
    /// (upstream's name for it).
    #[arg(long, env = "DPDK_TUNNEL_IFACE", default_value = "br-phy")]
    pub dpdk_tunnel_iface: String,

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

    /// The DaemonSet this daemon runs in, as `<namespace>/<name>`. At SIGTERM the daemon asks
    /// whether it still exists: when it is gone (an uninstall, not a restart), the daemon
    /// removes the plugin from `--cni-bin-dir` and gives the tunnel NIC its addresses back.
    /// Unset: nothing is undone.
    #[arg(long, env = "OWNER_DAEMONSET")]
    pub owner_daemonset: Option<crate::uninstall::Owner>,

    /// The CNI bin dir the `kube-ovn` plugin was installed into (removed from it on uninstall).
    #[arg(long, env = "CNI_BIN_DIR")]
    pub cni_bin_dir: Option<PathBuf>,

    /// Run as an attached (non-primary) CNI beside another CNI that owns `eth0` (upstream's
    /// charts pass it). Only `true` is implemented: primary mode is not part of this
    /// implementation.
    #[arg(long, env = "NON_PRIMARY_CNI_MODE", default_value_t = true, action = clap::ArgAction::Set)]
    pub non_primary_cni_mode: bool,
}

/// Why the given options cannot run.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// `--non-primary-cni-mode=false` was asked for.
    #[error("{}", crds::upstream::PRIMARY_MODE_UNSUPPORTED)]
    PrimaryModeUnsupported,
    /// Nothing says where the tunnel ends on this node.
    #[error(
        "no tunnel endpoint: give --encap-ip (ENCAP_IP) or --iface (IFACE), the NIC whose address \
         other nodes reach"
    )]
    NoTunnelEndpoint,
    /// `--ovn-remote` is not a list of OVSDB remotes ovn-controller can use.
    #[error(
        "--ovn-remote={remote}: {reason} (ovn-controller's OVN Southbound: tcp:HOST:PORT, \
         ssl:HOST:PORT or unix:PATH, comma-separated)"
    )]
    OvnRemote {
        /// As given.
        remote: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// `--ovs-socket=<path>`: our `--ovs-db` takes an OVSDB remote.
fn ovs_socket(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Err("empty path".to_owned());
    }
    Ok(vec![format!("--ovs-db=unix:{path}")])
}

/// `--network-type`: the tunnel of upstream's overlay; `vlan` is its underlay primary network.
fn network_type(value: &str) -> Result<Vec<String>, String> {
    match value {
        "geneve" | "vxlan" | "stt" => Ok(vec![format!("--encap-type={value}")]),
        "vlan" => Err(
            "a VLAN underlay as the default network is upstream's primary mode; attached \
             networks here run over a geneve overlay (--network-type=geneve)"
                .to_owned(),
        ),
        other => Err(format!(
            "unknown network type {other:?} (geneve, vxlan or stt)"
        )),
    }
}

/// `--mtu`: the same flag, except upstream's `0` (automatic).
fn mtu(value: &str) -> Result<Vec<String>, String> {
    if value == "0" {
        return Err(
            "0 (automatic: underlay MTU minus the tunnel overhead) is not implemented; give the \
             pod MTU, e.g. --mtu=1400 for a 1500-byte underlay with geneve"
                .to_owned(),
        );
    }
    Ok(vec![format!("--mtu={value}")])
}

/// Upstream `kube-ovn-daemon` flags (what its v1.17 charts and `start-cniserver.sh` pass) and
/// what each becomes; see [`crds::upstream`] (which also holds the flags both binaries share).
/// `--bind-socket`, `--encap-ip`, `--iface`, `--dpdk-tunnel-iface` and `--non-primary-cni-mode`
/// have the same name and meaning here and need no entry.
pub const UPSTREAM_FLAGS: &[UpstreamFlag] = &[
    UpstreamFlag::value("ovn-sb-addr", Disposition::Rename("ovn-remote")),
    UpstreamFlag::value("ovs-socket", Disposition::Translate(ovs_socket)),
    UpstreamFlag::value("network-type", Disposition::Translate(network_type)),
    UpstreamFlag::value("mtu", Disposition::Translate(mtu)),
    UpstreamFlag::value(
        "external-gateway-switch",
        Disposition::Ignore(PRIMARY_NETWORK),
    ),
    UpstreamFlag::value(
        "gateway-netfilter-mode",
        Disposition::Ignore(PRIMARY_CNI_OWNS),
    ),
    UpstreamFlag::value(
        "kube-proxy-mode-endpoint",
        Disposition::Ignore(PRIMARY_CNI_OWNS),
    ),
    UpstreamFlag::value(
        "gateway-netfilter-detect-timeout",
        Disposition::Ignore(PRIMARY_CNI_OWNS),
    ),
    UpstreamFlag::boolean("enable-tproxy", Disposition::Ignore(PRIMARY_CNI_OWNS)),
    UpstreamFlag::boolean("enable-mirror", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::value("mirror-iface", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::boolean("encap-checksum", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::value("kubelet-dir", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::boolean("host-tunnel-src", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::boolean("enable-acl-sampling", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::value("acl-sampling-set-id", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::value(
        "acl-sampling-local-group-id",
        Disposition::Ignore(NOT_APPLICABLE),
    ),
    UpstreamFlag::value("tls-min-version", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::value("tls-max-version", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::value("tls-cipher-suites", Disposition::Ignore(NOT_APPLICABLE)),
];

/// Translates upstream's flags in a command line (program name first) for [`Options`]'s
/// parser; see [`crds::upstream::translate`].
pub fn translate_upstream_flags(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<crds::upstream::Translated, String> {
    crds::upstream::translate_with(args, UPSTREAM_FLAGS)
}

impl Options {
    /// Checks the combination of options before anything starts.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if !self.non_primary_cni_mode {
            return Err(OptionsError::PrimaryModeUnsupported);
        }
        if self.encap_ip().is_none() && self.tunnel_nic().is_none() {
            return Err(OptionsError::NoTunnelEndpoint);
        }
        ovn_api::parse_remotes(&self.ovn_remote).map_err(|e| OptionsError::OvnRemote {
            remote: self.ovn_remote.clone(),
            reason: e.to_string(),
        })?;
        Ok(())
    }

    /// `--encap-ip`, unless empty.
    pub fn encap_ip(&self) -> Option<&str> {
        self.encap_ip.as_deref().filter(|s| !s.is_empty())
    }

    /// `--iface`, unless empty (upstream's charts pass `--iface=`).
    pub fn tunnel_nic(&self) -> Option<&str> {
        self.iface.as_deref().filter(|s| !s.is_empty())
    }

    /// The allocation wait.
    pub fn allocation_timeout(&self) -> Duration {
        Duration::from_secs(self.allocation_timeout_secs)
    }

    /// The install wait.
    pub fn install_timeout(&self) -> Duration {
        Duration::from_secs(self.install_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(args: &[&str]) -> Result<(Options, Vec<String>), String> {
        let t = translate_upstream_flags(
            std::iter::once("kube-ovn-daemon")
                .chain(args.iter().copied())
                .map(std::ffi::OsString::from),
        )?;
        let opts = Options::try_parse_from(t.args).map_err(|e| e.to_string())?;
        Ok((opts, t.warnings))
    }

    /// The flags upstream's v1.17 `kube-ovn-v2` chart renders into the `cni-server` container
    /// of `kube-ovn-cni` with its default values and `cni.nonPrimaryCNI=true` (template
    /// `agent/agent-daemonset.yaml`, rendered by hand), plus what its `start-cniserver.sh` adds;
    /// with our required flags (node name, encap IP) given as the chart's env would.
    const UPSTREAM_V1_17_ARGS: &[&str] = &[
        "--enable-mirror=false",
        "--mirror-iface=mirror0",
        "--node-switch=join",
        "--encap-checksum=true",
        "--iface=",
        "--service-cluster-ip-range=10.96.0.0/12",
        "--dpdk-tunnel-iface=br-phy",
        "--network-type=geneve",
        "--default-interface-name=",
        "--logtostderr=false",
        "--alsologtostderr=true",
        "--log_file=/var/log/kube-ovn/kube-ovn-cni.log",
        "--log_file_max_size=200",
        "--enable-metrics=true",
        "--kubelet-dir=/var/lib/kubelet",
        "--enable-tproxy=false",
        "--secure-serving=false",
        "--enable-ovn-ipsec=false",
        "--host-tunnel-src=false",
        "--non-primary-cni-mode=true",
        // start-cniserver.sh
        "--ovs-socket=/run/openvswitch/db.sock",
        "--bind-socket=/run/openvswitch/kube-ovn-daemon.sock",
        "--ovn-sb-addr=tcp:[10.0.0.2]:6642",
        "--v=3",
        // the env of our chart
        "--node-name=node-1",
        "--encap-ip=10.0.0.3",
    ];

    #[test]
    fn upstream_v1_17_daemon_args_run_with_a_warning_per_ignored_flag() {
        let (opts, warnings) = upstream(UPSTREAM_V1_17_ARGS).unwrap();
        assert!(opts.validate().is_ok());
        assert_eq!(opts.ovs_db, "unix:/run/openvswitch/db.sock");
        assert_eq!(opts.ovn_remote, "tcp:[10.0.0.2]:6642");
        assert_eq!(opts.encap_type, "geneve");
        assert_eq!(opts.metrics_addr, "0.0.0.0:10665");
        // Warned: all but the renamed/translated four (network-type, enable-metrics,
        // ovs-socket, ovn-sb-addr, and the quiet refusables secure-serving and
        // enable-ovn-ipsec), the shared bind-socket, non-primary-cni-mode, node-name,
        // encap-ip, iface and dpdk-tunnel-iface.
        assert_eq!(opts.tunnel_nic(), None);
        assert_eq!(opts.dpdk_tunnel_iface, "br-phy");
        assert_eq!(
            warnings.len(),
            UPSTREAM_V1_17_ARGS.len() - 4 - 2 - 6,
            "{warnings:#?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("--log_file=") && w.contains("RUST_LOG")),
            "{warnings:#?}"
        );
    }

    #[test]
    fn upstream_daemon_flags_we_cannot_honour_are_refused_by_name() {
        let base = [
            "--node-name=n",
            "--ovn-sb-addr=tcp:1.2.3.4:6642",
            "--encap-ip=1.2.3.4",
        ];
        let with = |extra: &str| {
            let mut v: Vec<&str> = base.to_vec();
            v.push(extra);
            upstream(&v)
        };
        let err = with("--network-type=vlan").unwrap_err();
        assert!(
            err.contains("--network-type=vlan") && err.contains("primary mode"),
            "{err}"
        );
        let err = with("--mtu=0").unwrap_err();
        assert!(
            err.contains("--mtu=0") && err.contains("not implemented"),
            "{err}"
        );
        let (opts, _) = with("--mtu=1300").unwrap();
        assert_eq!(opts.mtu, 1300);
        let err = with("--enable-ovn-ipsec=true").unwrap_err();
        assert!(err.contains("IPsec"), "{err}");
        let (opts, _) = with("--non-primary-cni-mode=false").unwrap();
        assert!(
            opts.validate()
                .unwrap_err()
                .to_string()
                .contains("primary CNI mode")
        );
        let (opts, _) = with("--enable-metrics=false").unwrap();
        assert_eq!(opts.metrics_addr, "");
    }

    #[test]
    fn the_tunnel_endpoint_is_an_address_or_a_nic() {
        let parse = |args: &[&str]| {
            Options::try_parse_from(
                [
                    "kube-ovn-daemon",
                    "--node-name=n",
                    "--ovn-remote=tcp:1.2.3.4:6642",
                ]
                .iter()
                .chain(args),
            )
            .unwrap()
        };
        let err = parse(&[]).validate().unwrap_err().to_string();
        assert!(
            err.contains("--encap-ip") && err.contains("--iface"),
            "{err}"
        );
        assert!(parse(&["--encap-ip=", "--iface="]).validate().is_err());
        let nic = parse(&["--iface=eth1"]);
        assert!(nic.validate().is_ok());
        assert_eq!(nic.tunnel_nic(), Some("eth1"));
        assert_eq!(nic.encap_ip(), None);
        assert!(parse(&["--encap-ip=10.0.0.3"]).validate().is_ok());
    }

    #[test]
    fn the_ovn_remote_must_be_ovsdb_remotes() {
        let parse = |remote: &str| {
            Options::try_parse_from([
                "kube-ovn-daemon",
                "--node-name=n",
                "--encap-ip=10.0.0.3",
                &format!("--ovn-remote={remote}"),
            ])
            .unwrap()
        };
        for good in [
            "tcp:[10.96.0.9]:6642",
            "ssl:[10.96.0.9]:6642",
            "ssl:10.0.0.1:6642,ssl:10.0.0.2:6642",
            "unix:/run/ovn/ovnsb_db.sock",
        ] {
            assert!(parse(good).validate().is_ok(), "{good}");
        }
        for bad in ["", "10.96.0.9:6642", "ssl:[10.96.0.9]", "http://sb:6642"] {
            let err = parse(bad).validate().unwrap_err().to_string();
            assert!(
                err.contains("--ovn-remote=") && err.contains("ssl:HOST:PORT"),
                "{bad}: {err}"
            );
        }
    }
}
