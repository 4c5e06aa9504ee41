//! An "external" network for the VPC NAT gateway scenarios (L2 and L3): a bridge in a namespace
//! of its own, one interface of every node cabled to it (the macvlan master of the
//! `ovn-vpc-external-network` NAD), and an external host on it. The host is the external
//! Subnet's gateway [`GATEWAY`] and holds [`FAR`] beyond it, so it stands for "the outside":
//! reachable from a VPC only through a gateway's external interface. Nothing here routes to
//! the machine's own network: every address lives in namespaces this harness made.
//!
//! Also the probes the scenarios use on it: a TCP server that answers each connection with a
//! tag and the peer's address (what SNAT looks like from outside), and a client that asks one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::ovn::{LabError, NetnsGuard, unique};

/// The external Subnet (and the host's segment).
pub const CIDR: &str = "172.18.0.0/24";
/// The external host's address on the segment: the external Subnet's gateway.
pub const GATEWAY: &str = "172.18.0.1";
/// An address beyond the gateway (on the host's loopback), reached by the gateway's default
/// route.
pub const FAR: &str = "198.51.100.10";

/// The external network as upstream's docs name it: the NAD `ovn-vpc-external-network` in
/// kube-system (macvlan on the node interface `master`, our IPAM) and its Subnet ([`CIDR`],
/// gateway [`GATEWAY`]).
pub fn network_yaml(master: &str) -> String {
    format!(
        r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: ovn-vpc-external-network
  namespace: kube-system
spec:
  config: |
    {{
      "cniVersion": "0.3.1",
      "type": "macvlan",
      "master": "{master}",
      "mode": "bridge",
      "ipam": {{
        "type": "kube-ovn",
        "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
        "provider": "ovn-vpc-external-network.kube-system"
      }}
    }}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: ovn-vpc-external-network
spec:
  cidr: "{CIDR}"
  gateway: "{GATEWAY}"
  provider: ovn-vpc-external-network.kube-system
"#
    )
}

/// Three EIPs of the manual's gateway `vpc-nat-gw` and a rule on each: SNAT of the manual's
/// Subnet (`eip-snat`), DNAT of TCP 8080 to `10.100.0.10:80` (`dnat-app`), a FIP for
/// `10.100.0.20` (`fip-web`).
pub const MANUAL_GATEWAY_RULES: &str = r#"apiVersion: kubeovn.io/v1
kind: IptablesEIP
metadata:
  name: eip-snat
spec:
  natGwDp: vpc-nat-gw
---
apiVersion: kubeovn.io/v1
kind: IptablesEIP
metadata:
  name: eip-dnat
spec:
  natGwDp: vpc-nat-gw
---
apiVersion: kubeovn.io/v1
kind: IptablesEIP
metadata:
  name: eip-fip
spec:
  natGwDp: vpc-nat-gw
---
apiVersion: kubeovn.io/v1
kind: IptablesSnatRule
metadata:
  name: snat-secondary
spec:
  eip: eip-snat
  internalCIDR: 10.100.0.0/16
---
apiVersion: kubeovn.io/v1
kind: IptablesDnatRule
metadata:
  name: dnat-app
spec:
  eip: eip-dnat
  externalPort: "8080"
  internalIp: 10.100.0.10
  internalPort: "80"
  protocol: tcp
---
apiVersion: kubeovn.io/v1
kind: IptablesFIPRule
metadata:
  name: fip-web
spec:
  eip: eip-fip
  internalIp: 10.100.0.20
"#;

/// The annotation (`key: 'value'` YAML line) routing the external segment and what lies beyond
/// it through the attachment of `provider` via the Subnet gateway `gw` (in attached mode `eth0`
/// keeps the pod's default route).
pub fn routes_annotation(provider: &str, gw: &str) -> String {
    format!(
        r#"{provider}.kubernetes.io/routes: '[{{"dst": "{CIDR}", "gw": "{gw}"}}, {{"dst": "198.51.100.0/24", "gw": "{gw}"}}]'"#
    )
}

fn run(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| LabError::Command {
            command: args.join(" "),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: args.join(" "),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The external segment. Dropping it removes the host and the bridge (the nodes' ends go with
/// their veth peers).
#[derive(Debug)]
pub struct External {
    host: NetnsGuard,
    _bridge: NetnsGuard,
}

impl External {
    /// Cables interface `ifname` of each node namespace in `nodes` to a new segment with the
    /// external host on it.
    pub fn create(nodes: &[&str], ifname: &str) -> Result<Self, LabError> {
        let bridge = NetnsGuard::create(&unique("kovn-xbr"))?;
        let b = bridge.name().to_owned();
        run(&["ip", "-n", &b, "link", "add", "xbr", "type", "bridge"])?;
        run(&["ip", "-n", &b, "link", "set", "xbr", "up"])?;
        // A veth from the bridge (`port`) to `ifname` in namespace `nn`, both ends up.
        let cable = |port: &str, nn: &str, ifname: &str| -> Result<(), LabError> {
            run(&[
                "ip", "-n", &b, "link", "add", port, "type", "veth", "peer", "name", ifname,
                "netns", nn,
            ])?;
            run(&["ip", "-n", &b, "link", "set", port, "master", "xbr", "up"])?;
            run(&["ip", "-n", nn, "link", "set", ifname, "up"])
        };
        for (i, nn) in nodes.iter().enumerate() {
            cable(&format!("x-n{i}"), nn, ifname)?;
        }
        let host = NetnsGuard::create(&unique("kovn-xh"))?;
        let h = host.name().to_owned();
        cable("x-host", &h, "eth0")?;
        run(&[
            "ip",
            "-n",
            &h,
            "addr",
            "add",
            &format!("{GATEWAY}/24"),
            "dev",
            "eth0",
        ])?;
        run(&[
            "ip",
            "-n",
            &h,
            "addr",
            "add",
            &format!("{FAR}/32"),
            "dev",
            "lo",
        ])?;
        Ok(Self {
            host,
            _bridge: bridge,
        })
    }

    /// The external host's namespace.
    pub fn host(&self) -> PathBuf {
        self.host.path()
    }
}

/// Runs `f` on a thread inside the namespace at `netns`.
fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let file = std::fs::File::open(netns)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                Ok(f())
            })
            .join()
            .map_err(|_| std::io::Error::other("thread panicked"))?
    })
}

/// A TCP server in a namespace that answers each connection with `<tag> <peer address>` and
/// closes it. Stops on drop.
#[derive(Debug)]
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    /// Listens on `port` (all addresses) inside `netns`.
    pub fn start(netns: &Path, port: u16, tag: &str) -> std::io::Result<Self> {
        let listener = in_netns(netns, || TcpListener::bind(("0.0.0.0", port)))??;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let tag = tag.to_owned();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.write_all(format!("{tag} {}", peer.ip()).as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One TCP exchange from inside `netns` with `to` (`addr:port`): everything the server sent
/// before closing, or why nothing came (2 s to connect, 2 s to answer).
pub fn ask(netns: &Path, to: &str) -> Result<String, String> {
    let to: SocketAddr = to.parse().map_err(|e| format!("{to}: {e}"))?;
    in_netns(netns, || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
            .map_err(|e| format!("connect {to}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)
            .map_err(|e| format!("read from {to}: {e}"))?;
        Ok(answer)
    })
    .map_err(|e| format!("entering {}: {e}", netns.display()))?
}
