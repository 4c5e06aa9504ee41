//! kube-proxy on a real node, iptables mode, inside the node's namespace.
//!
//! Built by `cargo xtask setup` from the same `k8s.io/kubernetes` module as the control plane.
//! It turns ClusterIPs (`kubernetes`, `ovn-nb`, `ovn-sb`, ...) into endpoints on this machine
//! by DNAT in the node namespace; what it does not turn is stopped by the fence. Ready means
//! its rules for the `kubernetes` Service are in the namespace's nat table: that is the
//! signal that a ClusterIP dialled from the node now lands on the apiserver.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use super::{Error, Process, Result, run};

/// How long kube-proxy may take to program the `kubernetes` Service.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a kube-proxy needs to know about its node.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The node's name (`hostnameOverride`; the Node object must carry it).
    pub node_name: String,
    /// The node's network namespace.
    pub netns: String,
    /// The node's address (binds health and metrics there).
    pub node_ip: Ipv4Addr,
    /// All pod subnets of the cluster (`clusterCIDR`: traffic from outside them to a Service is
    /// masqueraded).
    pub cluster_cidrs: Vec<Ipv4Net>,
    /// A kubeconfig whose server the node namespace reaches.
    pub kubeconfig: PathBuf,
    /// Where the config and log go.
    pub dir: PathBuf,
}

/// A running kube-proxy.
#[derive(Debug)]
pub struct KubeProxy {
    process: Process,
    netns: String,
}

/// The `KubeProxyConfiguration` for `config`.
pub fn configuration(config: &ProxyConfig) -> serde_json::Value {
    let cidrs = config
        .cluster_cidrs
        .iter()
        .map(Ipv4Net::to_string)
        .collect::<Vec<_>>()
        .join(",");
    serde_json::json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": config.kubeconfig},
        "mode": "iptables",
        "hostnameOverride": config.node_name,
        "bindAddress": config.node_ip.to_string(),
        "healthzBindAddress": format!("{}:10256", config.node_ip),
        "metricsBindAddress": format!("{}:10249", config.node_ip),
        "clusterCIDR": cidrs,
        // NodePorts only on the node's own address, never on every interface.
        "nodePortAddresses": [format!("{}/32", config.node_ip)],
        // No conntrack sysctls: the node namespace shares the host's conntrack table size and
        // the timeouts are the host's business.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        // No route_localnet (localhost NodePorts): nothing here needs them.
        "iptables": {"localhostNodePorts": false, "minSyncPeriod": "0s", "syncPeriod": "30s"},
    })
}

impl KubeProxy {
    /// Starts kube-proxy (`binary`) in the node's namespace and waits until it has programmed
    /// the `kubernetes` Service.
    pub fn start(binary: &Path, config: &ProxyConfig) -> Result<Self> {
        if !binary.is_file() {
            return Err(Error::Command {
                command: binary.display().to_string(),
                detail: "kube-proxy is missing: run `cargo xtask setup`, which builds it with the \
                         other Kubernetes binaries"
                    .to_owned(),
            });
        }
        std::fs::create_dir_all(&config.dir)
            .map_err(super::io(format!("creating {}", config.dir.display())))?;
        let path = config.dir.join("kube-proxy.json");
        std::fs::write(&path, configuration(config).to_string())
            .map_err(super::io(format!("writing {}", path.display())))?;
        let process = Process::spawn(
            "kube-proxy",
            Some(&config.netns),
            binary,
            &[format!("--config={}", path.display()), "--v=2".to_owned()],
            &config.dir.join("kube-proxy.log"),
        )?;
        let mut proxy = Self {
            process,
            netns: config.netns.clone(),
        };
        proxy.wait_for_service("default/kubernetes:https")?;
        Ok(proxy)
    }

    /// Waits until kube-proxy has DNAT rules for the Service port `ns/name:port` (its rule
    /// comment) in the node's nat table.
    pub fn wait_for_service(&mut self, service_port: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.process.check_running()?;
            let last = match self.nat_rules() {
                Ok(rules) if has_endpoint(&rules, service_port) => return Ok(()),
                Ok(_) => format!("no DNAT for {service_port} yet"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("kube-proxy to program {service_port} in {}", self.netns),
                    secs: READY_TIMEOUT.as_secs(),
                    last,
                });
            }
            // kube-proxy syncs on API events; its rules are the only signal outside it.
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The node namespace's nat table (`iptables-save -t nat`).
    pub fn nat_rules(&self) -> Result<String> {
        run(Command::new("ip").args(["netns", "exec", &self.netns, "iptables-save", "-t", "nat"]))
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        self.process.log()
    }
}

/// True when `rules` (iptables-save) DNAT the Service port `service_port` to an endpoint.
fn has_endpoint(rules: &str, service_port: &str) -> bool {
    rules.lines().any(|line| {
        line.starts_with("-A KUBE-SEP-")
            && line.contains(&format!("\"{service_port}\""))
            && line.contains("-j DNAT")
    }) || rules.lines().any(|line| {
        // kube-proxy drops the quotes when the comment has no spaces.
        line.starts_with("-A KUBE-SEP-")
            && line.contains(&format!("--comment {service_port} "))
            && line.contains("-j DNAT")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn endpoint_rules_are_recognised() {
        let rules = "-A KUBE-SEP-ABC -p tcp -m comment --comment default/kubernetes:https -m tcp -j DNAT --to-destination 172.30.5.1:6443\n";
        assert!(has_endpoint(rules, "default/kubernetes:https"));
        assert!(!has_endpoint(rules, "kube-system/ovn-sb:ovn-sb"));
        let quoted = "-A KUBE-SEP-ABC -p tcp -m comment --comment \"default/kubernetes:https\" -m tcp -j DNAT --to-destination 172.30.5.1:6443\n";
        assert!(has_endpoint(quoted, "default/kubernetes:https"));
    }

    #[test]
    fn configuration_is_iptables_mode_on_the_node_address() {
        let config = ProxyConfig {
            node_name: "n1".to_owned(),
            netns: "ns".to_owned(),
            node_ip: Ipv4Addr::new(172, 30, 5, 10),
            cluster_cidrs: vec!["10.200.5.0/24".parse().unwrap()],
            kubeconfig: PathBuf::from("/k"),
            dir: PathBuf::from("/d"),
        };
        let c = configuration(&config);
        assert_eq!(c["mode"], "iptables");
        assert_eq!(c["nodePortAddresses"][0], "172.30.5.10/32");
        assert_eq!(c["clusterCIDR"], "10.200.5.0/24");
    }
}
