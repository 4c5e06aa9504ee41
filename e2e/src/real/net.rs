//! The harness network of a real-node cluster: a bridge in the host namespace and the node
//! namespaces cabled to it.
//!
//! The host end of the bridge holds `.1` of a `/24` picked free in [`HARNESS_RANGE`]; the
//! apiserver serves on that address so node namespaces reach it, and the host reaches the nodes
//! through it. Nothing on the bridge leads anywhere else: the host does not forward (and its
//! fence stops it if it ever does), and node namespaces get no default route.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::{IpNet, Ipv4Net};

use super::{Error, Result, run};
use crate::ovn::NetnsGuard;

/// Where harness subnets are taken from (a private range this machine does not use; each
/// candidate is checked against the host's routes first).
pub const HARNESS_RANGE: &str = "172.30.0.0/16";

/// The Kubernetes Service range of the control plane (`--service-cluster-ip-range`). Node
/// namespaces route it to the bridge, so a connection to a ClusterIP has a route to start from
/// and kube-proxy's DNAT can turn it into an endpoint; one it does not turn is stopped by the
/// fence (the Service range is not in any allow-list).
pub const SERVICE_RANGE: &str = "10.96.0.0/12";

/// The range of the nodes' tunnel NICs (`eth1`, `172.29.<k>.0/24` with the same `<k>` as the
/// harness subnet). Configured only inside node namespaces, never in the host.
pub const TUNNEL_RANGE: &str = "172.29.0.0/16";

/// Subnets handed out by this process.
static TAKEN: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A short unique interface name (`<prefix><pid>-<n>`, at most 15 bytes).
pub fn interface_name(prefix: &str) -> String {
    let name = format!(
        "{prefix}{}-{}",
        std::process::id() % 1_000_000,
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    name.chars().take(15).collect()
}

/// The bridge in the host namespace.
#[derive(Debug)]
pub struct HostBridge {
    name: String,
    subnet: Ipv4Net,
    third_octet: u8,
    attached: AtomicU32,
}

impl HostBridge {
    /// Creates the bridge with `.1` of a free `/24`.
    pub fn create() -> Result<Self> {
        let routes = run(Command::new("ip").args(["-4", "route", "show", "table", "all"]))?;
        let used: Vec<Ipv4Net> = routes
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let first = words.next()?;
                let dst = if matches!(first, "local" | "broadcast" | "unicast") {
                    words.next()?
                } else {
                    first
                };
                if dst == "default" {
                    return None;
                }
                dst.parse::<Ipv4Net>()
                    .ok()
                    .or_else(|| dst.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
            })
            .collect();
        let range: Ipv4Net = HARNESS_RANGE.parse().map_err(|_| Error::Parse {
            command: "HARNESS_RANGE".to_owned(),
            detail: HARNESS_RANGE.to_owned(),
        })?;
        let start = (std::process::id() % 200) as u8;
        let third_octet = {
            let mut taken = TAKEN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let free = (0..=255u8)
                .map(|i| start.wrapping_add(i))
                .find(|k| {
                    let [a, b, ..] = range.network().octets();
                    let candidate = Ipv4Net::new(Ipv4Addr::new(a, b, *k, 0), 24);
                    !taken.contains(k)
                        && candidate.is_ok_and(|c| {
                            !used
                                .iter()
                                .any(|u| u.contains(&c.network()) || c.contains(u))
                        })
                })
                .ok_or(Error::NoFreeSubnet {
                    range: HARNESS_RANGE,
                    routes: routes.clone(),
                })?;
            taken.insert(free);
            free
        };
        let [a, b, ..] = range.network().octets();
        let subnet =
            Ipv4Net::new(Ipv4Addr::new(a, b, third_octet, 0), 24).map_err(|e| Error::Parse {
                command: "harness subnet".to_owned(),
                detail: e.to_string(),
            })?;
        let name = interface_name("kr");
        run(Command::new("ip").args(["link", "add", &name, "type", "bridge"]))?;
        let bridge = Self {
            name,
            subnet,
            third_octet,
            attached: AtomicU32::new(0),
        };
        let address = format!("{}/24", bridge.address());
        run(Command::new("ip").args(["addr", "add", &address, "dev", &bridge.name]))?;
        run(Command::new("ip").args(["link", "set", &bridge.name, "up"]))?;
        Ok(bridge)
    }

    /// The bridge's name in the host namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The harness subnet (`172.30.<k>.0/24`).
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The host's address on it (`.1`): where the apiserver serves the nodes.
    pub fn address(&self) -> Ipv4Addr {
        let [a, b, c, _] = self.subnet.network().octets();
        Ipv4Addr::new(a, b, c, 1)
    }

    /// A pod subnet for node `index` that belongs to this harness alone
    /// (`10.<200 + index>.<k>.0/24`: distinct per node and per harness).
    pub fn pod_subnet(&self, index: u8) -> Ipv4Net {
        let second = 200u8.saturating_add(index);
        Ipv4Net::new(Ipv4Addr::new(10, second, self.third_octet, 0), 24).unwrap_or(self.subnet)
    }

    /// The subnet of the nodes' tunnel NICs (`eth1`): `172.29.<k>.0/24`.
    pub fn tunnel_subnet(&self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(172, 29, self.third_octet, 0), 24).unwrap_or(self.subnet)
    }

    /// Routes `subnet` from the host via `via` on the bridge, as a primary CNI's routes would
    /// (the apiserver calls webhooks at their pods' addresses). The route goes with the bridge.
    pub fn route_from_host(&self, subnet: Ipv4Net, via: Ipv4Addr) -> Result<()> {
        run(Command::new("ip").args([
            "route",
            "add",
            &subnet.to_string(),
            "via",
            &via.to_string(),
            "dev",
            &self.name,
        ]))?;
        Ok(())
    }

    /// The range every node's pod subnet is in (kube-proxy's `clusterCIDR`, which takes one
    /// CIDR per family): `10.200.0.0/13`, room for 8 nodes.
    pub fn cluster_cidr(&self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(10, 200, 0, 0), 13).unwrap_or(self.subnet)
    }

    /// Cables `node` to the bridge: its `eth0` gets the next address (`.10`, `.11`, ...), a
    /// route for the Service range via the bridge, and no default route; a second NIC `eth1`
    /// gets the same host part in [`Self::tunnel_subnet`], a NIC for the overlay alone (what
    /// kube-ovn's `agent.interface` takes with the userspace datapath), checksum offload off
    /// on both its ends. IPv6 is switched off in the namespace (the harness is IPv4-only).
    /// Returns the node's address.
    pub fn attach(&self, node: &NetnsGuard) -> Result<Ipv4Addr> {
        let index = self.attached.fetch_add(1, Ordering::Relaxed);
        let [a, b, c, _] = self.subnet.network().octets();
        let host_octet = u8::try_from(10 + index).map_err(|_| Error::Parse {
            command: "attach".to_owned(),
            detail: format!("too many nodes on {}", self.name),
        })?;
        let address = Ipv4Addr::new(a, b, c, host_octet);
        let port = interface_name("kv");
        let ns = node.name();
        run(Command::new("ip").args([
            "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]))?;
        run(Command::new("ip").args(["link", "set", &port, "master", &self.name, "up"]))?;
        let in_ns = |args: &[&str]| run(Command::new("ip").args(["-n", ns]).args(args));
        in_ns(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        in_ns(&["link", "set", "eth0", "up"])?;
        let tunnel_port = interface_name("kt");
        let [ta, tb, tc, _] = self.tunnel_subnet().network().octets();
        let tunnel_address = Ipv4Addr::new(ta, tb, tc, host_octet);
        run(Command::new("ip").args([
            "link",
            "add",
            &tunnel_port,
            "type",
            "veth",
            "peer",
            "name",
            "eth1",
            "netns",
            ns,
        ]))?;
        run(Command::new("ip").args(["link", "set", &tunnel_port, "master", &self.name, "up"]))?;
        in_ns(&[
            "addr",
            "add",
            &format!("{tunnel_address}/24"),
            "dev",
            "eth1",
        ])?;
        in_ns(&["link", "set", "eth1", "up"])?;
        // Partial checksums must not reach the userspace datapath (`notes/ovn-lab`).
        run(Command::new("ethtool").args(["-K", &tunnel_port, "tx", "off"]))?;
        run(Command::new("ip").args(["netns", "exec", ns, "ethtool", "-K", "eth1", "tx", "off"]))?;
        in_ns(&[
            "route",
            "add",
            SERVICE_RANGE,
            "via",
            &self.address().to_string(),
        ])?;
        run(Command::new("ip").args([
            "netns",
            "exec",
            ns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]))?;
        Ok(address)
    }

    /// What a node namespace on this bridge may reach besides loopback: the harness subnet,
    /// the tunnel subnet and the given pod subnets.
    pub fn allow_list(&self, pod_subnets: &[Ipv4Net]) -> Vec<IpNet> {
        [self.subnet, self.tunnel_subnet()]
            .into_iter()
            .chain(pod_subnets.iter().copied())
            .map(IpNet::V4)
            .collect()
    }
}

impl Drop for HostBridge {
    fn drop(&mut self) {
        // The veths' host ends go with their namespaces; the bridge is ours to remove.
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
        TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.third_octet);
    }
}

/// Cables two namespaces with a veth pair and addresses both ends (`a_addr`, `b_addr` as
/// `addr/prefix`).
pub fn veth_between(
    a: &NetnsGuard,
    a_name: &str,
    a_addr: &str,
    b: &NetnsGuard,
    b_name: &str,
    b_addr: &str,
) -> Result<()> {
    run(Command::new("ip").args([
        "-n",
        a.name(),
        "link",
        "add",
        a_name,
        "type",
        "veth",
        "peer",
        "name",
        b_name,
        "netns",
        b.name(),
    ]))?;
    for (ns, name, addr) in [(a, a_name, a_addr), (b, b_name, b_addr)] {
        run(Command::new("ip").args(["-n", ns.name(), "addr", "add", addr, "dev", name]))?;
        run(Command::new("ip").args(["-n", ns.name(), "link", "set", name, "up"]))?;
    }
    Ok(())
}
