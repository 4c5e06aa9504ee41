//! The daemon on a real OVN node (L1): OVN central + a node namespace with its own ovsdb-server,
//! ovs-vswitchd (userspace datapath) and ovn-controller; pods are network namespaces. The CNI
//! plugin's code path (`cni::plugin::run`) calls the daemon over its unix socket exactly as the
//! `kube-ovn` binary does. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is how a test fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use daemon::metrics::{AddPhase, Metrics, Verb};
use daemon::netns::Netns;
use daemon::ovs::{self, NodeConfig};
use daemon::pods::StaticPods;
use daemon::server::{self, CniService, ServiceConfig};
use daemon::tunnel::{self, TunnelConfig};
use e2e::ovn::{NetnsGuard, OvnCentral, OvnNode, Underlay, unique};

const PROVIDER: &str = "net-a.default.ovn";

/// One node of the lab: its OVS/OVN processes, the daemon's OVSDB client and CNI service.
struct Node {
    node: OvnNode,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
    ovs: Arc<ovn_api::rpc::Client>,
    service: Arc<CniService<StaticPods>>,
    server: tokio::task::JoinHandle<()>,
    config: NodeConfig,
}

struct Lab {
    // Field order is drop order: nodes before the underlay and OVN central.
    nodes: Vec<Node>,
    _underlay: Option<Underlay>,
    central: OvnCentral,
    pods: Arc<StaticPods>,
}

/// How a node's tunnel NIC gets onto `br-phy`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TunnelNic {
    /// The harness builds `br-phy` and puts the address on it.
    Harness,
    /// The address is on the plain `eth0`; the daemon's `--iface` path ([`tunnel::ensure`])
    /// moves it.
    Daemon,
}

/// The daemon's tunnel settings for the lab's nodes.
fn tunnel_config() -> TunnelConfig {
    TunnelConfig {
        nic: "eth0".into(),
        bridge: "br-phy".into(),
        timeout: Duration::from_secs(30),
    }
}

/// One node on `central`; with an underlay, tunnels go over it (geneve between nodes).
async fn start_node(
    central: &OvnCentral,
    pods: &Arc<StaticPods>,
    underlay: Option<&Underlay>,
    nic: TunnelNic,
) -> Node {
    let mut node = OvnNode::start("kovn-n").unwrap();
    let ovs = Arc::new(ovs::connect(&node.db_remote()).await.unwrap());
    let encap_ip = match underlay {
        Some(ul) if nic == TunnelNic::Daemon => {
            ul.attach_plain(&node).unwrap();
            let host = Netns::open(&node.netns().path()).unwrap();
            let endpoint = tunnel::ensure(&ovs, &host, &tunnel_config()).await.unwrap();
            endpoint.encap_ip().unwrap().to_string()
        }
        Some(ul) => ul.attach(&node).unwrap(),
        None => "127.0.0.1".to_owned(),
    };
    let config = NodeConfig {
        bridge: "br-int".into(),
        datapath_type: "netdev".into(),
        system_id: unique("chassis-"),
        ovn_remote: central.sb_remote(),
        encap_type: "geneve".into(),
        encap_ip,
    };
    ovs::init_node(&ovs, &config).await.unwrap();
    // init_node is idempotent.
    ovs::init_node(&ovs, &config).await.unwrap();
    node.start_controller().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("daemon.sock");
    let (service, server) = serve_daemon(&node, pods, ovs.clone(), &socket);
    Node {
        node,
        socket,
        _dir: dir,
        ovs,
        service,
        server,
        config,
    }
}

/// A daemon service for `node` on `socket` (a stale socket from an earlier daemon is replaced).
fn serve_daemon(
    node: &OvnNode,
    pods: &Arc<StaticPods>,
    ovs: Arc<ovn_api::rpc::Client>,
    socket: &std::path::Path,
) -> (Arc<CniService<StaticPods>>, tokio::task::JoinHandle<()>) {
    let host = Netns::open(&node.netns().path()).unwrap();
    let service = CniService::new(
        pods.clone(),
        ovs,
        host,
        ServiceConfig {
            bridge: "br-int".into(),
            mtu: 1400,
            disable_tx_checksum: true,
            allocation_timeout: Duration::from_secs(5),
            install_timeout: Duration::from_secs(8),
        },
        Arc::new(Metrics::new()),
    );
    let serving = service.clone();
    let listener = server::bind(socket).unwrap();
    let server = tokio::spawn(async move {
        server::serve(listener, serving, std::future::pending())
            .await
            .unwrap();
    });
    (service, server)
}

async fn lab_with(nodes: usize) -> Lab {
    lab_with_nic(nodes, TunnelNic::Harness).await
}

async fn lab_with_nic(nodes: usize, nic: TunnelNic) -> Lab {
    let central = OvnCentral::start().unwrap();
    central.nbctl(&["ls-add", "ls1"]).unwrap();
    let pods = Arc::new(StaticPods::default());
    let underlay = (nodes > 1).then(|| Underlay::create().unwrap());
    let mut started = Vec::new();
    for _ in 0..nodes {
        started.push(start_node(&central, &pods, underlay.as_ref(), nic).await);
    }
    Lab {
        nodes: started,
        _underlay: underlay,
        central,
        pods,
    }
}

async fn lab() -> Lab {
    lab_with(1).await
}

impl Lab {
    /// Stops node `i`'s daemon (its server task, OVSDB session and netlink handles) and starts
    /// a new one as `kube-ovn-daemon` does at start: connect, init the node, serve.
    async fn restart_daemon(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.server.abort();
        let _ = (&mut node.server).await;
        let ovs = Arc::new(ovs::connect(&node.node.db_remote()).await.unwrap());
        ovs::init_node(&ovs, &node.config).await.unwrap();
        let (service, server) = serve_daemon(&node.node, &self.pods, ovs.clone(), &node.socket);
        service.adopt_plumbed();
        node.ovs = ovs;
        node.service = service;
        node.server = server;
    }

    /// Whether node `i`'s database has the interface `host`.
    fn has_port(&self, i: usize, host: &str) -> bool {
        self.nodes[i]
            .ovs
            .replica()
            .table("Interface")
            .is_some_and(|t| t.by_name(host).next().is_some())
    }

    /// The controller's part, done by hand: the LSP in NB and the pod annotations.
    fn allocate(&self, pod: &str, ip: &str, mac: &str, extra: &[(&str, &str)]) {
        let lsp = crds::naming::lsp_name(pod, "default", PROVIDER);
        self.central
            .nbctl(&[
                "lsp-add",
                "ls1",
                &lsp,
                "--",
                "lsp-set-addresses",
                &lsp,
                &format!("{mac} {ip}"),
            ])
            .unwrap();
        self.annotate(pod, ip, mac, extra);
    }

    /// Only the pod annotations (no LSP).
    fn annotate(&self, pod: &str, ip: &str, mac: &str, extra: &[(&str, &str)]) {
        let mut a: BTreeMap<String, String> = [
            ("allocated", "true"),
            ("ip_address", ip),
            ("cidr", "10.100.0.0/16"),
            ("gateway", "10.100.0.1"),
            ("mac_address", mac),
            ("logical_switch", "ls1"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (format!("{PROVIDER}.kubernetes.io/{k}"), (*v).to_owned()))
        .collect();
        a.retain(|_, v| !v.is_empty());
        self.pods.set("default", pod, a);
    }

    async fn cni(
        &self,
        command: &str,
        pod: &str,
        cid: &str,
        netns: &str,
        extra_conf: &str,
    ) -> Result<Option<serde_json::Value>, cni::error::CniError> {
        self.cni_on(0, command, pod, cid, netns, extra_conf).await
    }

    async fn cni_on(
        &self,
        node: usize,
        command: &str,
        pod: &str,
        cid: &str,
        netns: &str,
        extra_conf: &str,
    ) -> Result<Option<serde_json::Value>, cni::error::CniError> {
        self.cni_as(node, command, (pod, ""), cid, netns, extra_conf)
            .await
    }

    /// [`Lab::cni_on`] for the pod `(name, uid)`: the runtime passes `K8S_POD_UID` when the
    /// UID is not empty.
    async fn cni_as(
        &self,
        node: usize,
        command: &str,
        (pod, uid): (&str, &str),
        cid: &str,
        netns: &str,
        extra_conf: &str,
    ) -> Result<Option<serde_json::Value>, cni::error::CniError> {
        let uid_arg = if uid.is_empty() {
            String::new()
        } else {
            format!(";K8S_POD_UID={uid}")
        };
        let env: HashMap<String, String> = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", cid.to_owned()),
            ("CNI_NETNS", netns.to_owned()),
            ("CNI_IFNAME", "net1".to_owned()),
            (
                "CNI_ARGS",
                format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}{uid_arg}"),
            ),
            ("CNI_PATH", "/opt/cni/bin".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let conf = format!(
            r#"{{"cniVersion":"1.0.0","name":"net-a","type":"kube-ovn","server_socket":"{}","provider":"{PROVIDER}"{extra_conf}}}"#,
            self.nodes[node].socket.display()
        );
        cni::plugin::run(|k| env.get(k).cloned(), conf.as_bytes())
            .await
            .map(|out| out.map(|s| serde_json::from_str(&s).unwrap()))
    }
}

fn ping(from: &NetnsGuard, to: &str) -> bool {
    // The first packets may be lost while flows settle; ping keeps trying for up to 10 s.
    let out = from
        .exec(&["ping", "-c", "1", "-w", "10", "-W", "1", to])
        .unwrap();
    out.status.success()
}

#[tokio::test]
async fn two_pods_on_one_switch_talk_over_net1_and_del_cleans_up() {
    let lab = lab().await;
    let (a, b) = (
        NetnsGuard::create(&unique("kovn-pa")).unwrap(),
        NetnsGuard::create(&unique("kovn-pb")).unwrap(),
    );
    lab.allocate(
        "pa",
        "10.100.0.11",
        "00:00:00:00:00:11",
        &[("routes", r#"[{"dst":"192.0.2.0/24","gw":"10.100.0.1"}]"#)],
    );
    lab.allocate("pb", "10.100.0.12", "00:00:00:00:00:12", &[]);

    let ra = lab
        .cni("ADD", "pa", "ctr-a", a.path().to_str().unwrap(), "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ra["interfaces"][0]["name"], "net1");
    assert_eq!(ra["interfaces"][0]["mac"], "00:00:00:00:00:11");
    assert_eq!(ra["interfaces"][0]["sandbox"], a.path().to_str().unwrap());
    assert_eq!(ra["ips"][0]["address"], "10.100.0.11/16");
    assert_eq!(ra["ips"][0]["interface"], 0);
    assert_eq!(ra["routes"][0]["dst"], "192.0.2.0/24");
    let rb = lab
        .cni("ADD", "pb", "ctr-b", b.path().to_str().unwrap(), "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rb["ips"][0]["address"], "10.100.0.12/16");

    // Real packets through OVS and OVN: ping, then TCP (which fails when checksums are wrong).
    assert!(ping(&a, "10.100.0.12"), "pa cannot ping pb over net1");
    let server = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            b.name(),
            "nc",
            "-l",
            "-N",
            "10.100.0.12",
            "16702",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut sent = false;
    for _ in 0..50 {
        let client = std::process::Command::new("sh")
            .args(["-c", &format!("head -c 200000 /dev/zero | tr '\\0' x | ip netns exec {} nc -N -w 3 10.100.0.12 16702", a.name())])
            .output()
            .unwrap();
        if client.status.success() {
            sent = true;
            break;
        }
    }
    assert!(sent, "TCP never connected");
    let got = server.wait_with_output().unwrap();
    assert_eq!(got.stdout.len(), 200_000, "TCP transfer incomplete");

    // The OVS port carries the contract's external_ids and ovn-controller marked it installed.
    let host = daemon::naming::host_ifname("ctr-a", "net1");
    {
        let replica = lab.nodes[0].ovs.replica();
        let row = replica
            .table("Interface")
            .unwrap()
            .by_name(&host)
            .next()
            .unwrap()
            .clone();
        assert_eq!(
            row.external_id("iface-id"),
            Some(crds::naming::lsp_name("pa", "default", PROVIDER).as_str())
        );
        assert_eq!(row.external_id("vendor"), Some("kube-ovn"));
        assert_eq!(row.external_id("pod_namespace"), Some("default"));
        assert_eq!(row.external_id("ovn-installed"), Some("true"));
    }

    // CHECK passes against the previous result, then fails once the address is removed.
    let prev = format!(r#","prevResult":{ra}"#);
    lab.cni("CHECK", "pa", "ctr-a", a.path().to_str().unwrap(), &prev)
        .await
        .unwrap();
    let del = a
        .exec(&["ip", "addr", "del", "10.100.0.11/16", "dev", "net1"])
        .unwrap();
    assert!(del.status.success());
    let err = lab
        .cni("CHECK", "pa", "ctr-a", a.path().to_str().unwrap(), &prev)
        .await
        .unwrap_err();
    assert_eq!(err.code, daemon::error::CHECK_MISMATCH, "{err}");
    assert!(err.msg.contains("addresses"), "{err}");

    // DEL twice; the second finds nothing and still succeeds.
    lab.cni("DEL", "pa", "ctr-a", a.path().to_str().unwrap(), "")
        .await
        .unwrap();
    lab.cni("DEL", "pa", "ctr-a", a.path().to_str().unwrap(), "")
        .await
        .unwrap();
    assert!(!lab.has_port(0, &host));
    let links = lab.nodes[0]
        .node
        .netns()
        .exec(&["ip", "-o", "link"])
        .unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&host));

    // DEL after the pod's namespace is gone.
    let b_path = b.path();
    drop(b);
    lab.cni("DEL", "pb", "ctr-b", b_path.to_str().unwrap(), "")
        .await
        .unwrap();
    let host_b = daemon::naming::host_ifname("ctr-b", "net1");
    assert!(!lab.has_port(0, &host_b));
}

#[tokio::test]
async fn add_failures_are_clear_and_leave_nothing_behind() {
    let lab = lab().await;
    let a = NetnsGuard::create(&unique("kovn-pc")).unwrap();
    let path = a.path();
    let ns = path.to_str().unwrap();

    // No allocation: the plugin gets "try again later" naming the provider.
    let err = lab.cni("ADD", "nope", "ctr-n", ns, "").await.unwrap_err();
    assert_eq!(err.code, cni::error::code::TRY_AGAIN_LATER, "{err}");
    assert!(
        err.msg.contains(PROVIDER) && err.msg.contains("default/nope"),
        "{err}"
    );

    // A static IP that differs from the allocation is a config error.
    lab.allocate("pc", "10.100.0.21", "00:00:00:00:00:21", &[]);
    let err = lab
        .cni(
            "ADD",
            "pc",
            "ctr-c",
            ns,
            r#","runtimeConfig":{"ips":["10.100.0.99/16"]}"#,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, cni::error::code::INVALID_CONFIG, "{err}");
    assert!(err.msg.contains("10.100.0.99"), "{err}");

    // A malformed annotation is a config error naming the annotation.
    lab.annotate("pd", "10.100.0.22", "not-a-mac", &[]);
    let err = lab.cni("ADD", "pd", "ctr-d", ns, "").await.unwrap_err();
    assert_eq!(err.code, cni::error::code::INVALID_CONFIG, "{err}");
    assert!(err.msg.contains("mac_address"), "{err}");

    // ovn-controller never installs a port whose LSP does not exist: ADD times out, rolls back.
    let mut annotations = BTreeMap::new();
    for (k, v) in [
        ("allocated", "true"),
        ("ip_address", "10.100.0.23"),
        ("cidr", "10.100.0.0/16"),
        ("mac_address", "00:00:00:00:00:23"),
        ("logical_switch", "ls1"),
    ] {
        annotations.insert(format!("{PROVIDER}.kubernetes.io/{k}"), v.to_owned());
    }
    lab.pods.set("default", "pe", annotations);
    let started = std::time::Instant::now();
    let err = lab.cni("ADD", "pe", "ctr-e", ns, "").await.unwrap_err();
    assert!(err.msg.contains("ovn-installed"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let host = daemon::naming::host_ifname("ctr-e", "net1");
    assert!(!lab.has_port(0, &host), "port left behind");
    let links =
        String::from_utf8_lossy(&a.exec(&["ip", "-o", "link"]).unwrap().stdout).into_owned();
    assert!(!links.contains("net1"), "veth left in the pod: {links}");
    assert_eq!(
        lab.nodes[0].service.tracked_attachments(),
        0,
        "failed ADDs are not remembered"
    );
}

/// A DEL that arrives while the ADD of the same attachment still waits for its allocation
/// stops that ADD: an allocation that comes after the DEL makes no port (the runtime has moved
/// on and will never DEL again), and the daemon forgets the attachment.
#[tokio::test]
async fn a_del_during_an_add_leaves_no_port_behind() {
    let lab = lab().await;
    let a = NetnsGuard::create(&unique("kovn-pd")).unwrap();
    let path = a.path().to_str().unwrap().to_owned();
    let service = lab.nodes[0].service.clone();
    let add = lab.cni("ADD", "pd", "ctr-d", &path, "");
    let del_then_allocate = async {
        // The ADD is waiting for the controller.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while service.tracked_attachments() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the ADD never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let deleted = lab.cni("DEL", "pd", "ctr-d", &path, "").await;
        // The allocation comes late, after the runtime gave up on the pod.
        lab.allocate("pd", "10.100.0.35", "00:00:00:00:00:35", &[]);
        deleted
    };
    let (added, deleted) = tokio::join!(add, del_then_allocate);
    assert!(deleted.is_ok(), "{deleted:?}");
    let err = added.unwrap_err();
    assert!(err.msg.contains("DEL of this attachment arrived"), "{err}");
    let host = daemon::naming::host_ifname("ctr-d", "net1");
    assert!(!lab.has_port(0, &host), "a port outlived its DEL");
    let links =
        String::from_utf8_lossy(&a.exec(&["ip", "-o", "link"]).unwrap().stdout).into_owned();
    assert!(!links.contains("net1"), "a veth outlived its DEL: {links}");
    assert_eq!(service.tracked_attachments(), 0);
}

/// The node's Open vSwitch database loses the bridge, ovn-controller's settings and the pods'
/// ports (a reset `conf.db`, a bridge deleted by hand): the daemon's restore puts them back and
/// the pods talk again, without any pod changing.
#[tokio::test]
async fn a_lost_bridge_and_ports_come_back_and_pods_talk_again() {
    let lab = lab().await;
    let (a, b) = (
        NetnsGuard::create(&unique("kovn-pr")).unwrap(),
        NetnsGuard::create(&unique("kovn-ps")).unwrap(),
    );
    lab.allocate("pr", "10.100.0.51", "00:00:00:00:00:51", &[]);
    lab.allocate("ps", "10.100.0.52", "00:00:00:00:00:52", &[]);
    lab.cni("ADD", "pr", "ctr-r", a.path().to_str().unwrap(), "")
        .await
        .unwrap();
    lab.cni("ADD", "ps", "ctr-s", b.path().to_str().unwrap(), "")
        .await
        .unwrap();
    assert!(ping(&a, "10.100.0.52"));
    let node = &lab.nodes[0];
    assert_eq!(
        node.service.restore(&node.config).await.unwrap(),
        Default::default(),
        "nothing to restore on an intact node"
    );

    let db = format!("--db={}", node.node.db_remote());
    for args in [
        &["del-br", "br-int"][..],
        &["remove", "Open_vSwitch", ".", "external_ids", "ovn-remote"],
    ] {
        let out = std::process::Command::new("ovs-vsctl")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ovs-vsctl {args:?}: {out:?}");
    }
    // The replica sees the loss before the restore looks.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while daemon::ovs::node_drift(&node.ovs, &node.config).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the loss never showed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = node.service.restore(&node.config).await.unwrap();
    assert!(done.reinitialised.is_some(), "{done:?}");
    assert_eq!(done.ports, 2, "{done:?}");
    assert_eq!(daemon::ovs::node_drift(&node.ovs, &node.config), None);
    for cid in ["ctr-r", "ctr-s"] {
        let host = daemon::naming::host_ifname(cid, "net1");
        let lsp = crds::naming::lsp_name(
            if cid == "ctr-r" { "pr" } else { "ps" },
            "default",
            PROVIDER,
        );
        daemon::ovs::wait_installed(&node.ovs, &host, &lsp, Duration::from_secs(30))
            .await
            .unwrap();
    }
    assert!(ping(&a, "10.100.0.52"), "no traffic after the restore");
    // DEL still cleans up a restored port.
    lab.cni("DEL", "ps", "ctr-s", b.path().to_str().unwrap(), "")
        .await
        .unwrap();
    assert_eq!(node.service.restore(&node.config).await.unwrap().ports, 0);
}

#[tokio::test]
async fn status_gc_and_sweep_remove_only_what_is_stale() {
    let lab = lab().await;
    let status = lab.cni("STATUS", "x", "x", "", "").await;
    assert!(status.is_ok(), "{status:?}");
    let (a, b) = (
        NetnsGuard::create(&unique("kovn-pg")).unwrap(),
        NetnsGuard::create(&unique("kovn-ph")).unwrap(),
    );
    lab.allocate("pg", "10.100.0.31", "00:00:00:00:00:31", &[]);
    lab.allocate("ph", "10.100.0.32", "00:00:00:00:00:32", &[]);
    lab.cni("ADD", "pg", "ctr-g", a.path().to_str().unwrap(), "")
        .await
        .unwrap();
    lab.cni("ADD", "ph", "ctr-h", b.path().to_str().unwrap(), "")
        .await
        .unwrap();
    let present = |cid: &str| {
        let host = daemon::naming::host_ifname(cid, "net1");
        lab.has_port(0, &host)
    };

    // GC is per network: another network's GC, with no valid attachment, removes none of
    // this network's ports.
    let other = format!(
        r#"{{"cniVersion":"1.1.0","name":"net-b","type":"kube-ovn","server_socket":"{}","provider":"net-b.default.ovn","cni.dev/valid-attachments":[]}}"#,
        lab.nodes[0].socket.display()
    );
    let env: HashMap<&str, &str> = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")]
        .into_iter()
        .collect();
    cni::plugin::run(|k| env.get(k).map(|v| (*v).to_owned()), other.as_bytes())
        .await
        .unwrap();
    assert!(
        present("ctr-g") && present("ctr-h"),
        "another network's GC removed ports"
    );

    // GC keeps the valid attachment and removes the other.
    let valid = r#","cni.dev/valid-attachments":[{"containerID":"ctr-g","ifname":"net1"}]"#;
    lab.cni("GC", "x", "x", "", valid).await.unwrap();
    assert!(present("ctr-g") && !present("ctr-h"));

    // The sweep keeps ports of existing pods and removes those whose pod is gone.
    assert_eq!(lab.nodes[0].service.sweep().await.unwrap(), 0);
    assert!(present("ctr-g"));
    lab.pods.remove("default", "pg");
    assert_eq!(lab.nodes[0].service.sweep().await.unwrap(), 1);
    assert!(!present("ctr-g"));
    let links = String::from_utf8_lossy(
        &lab.nodes[0]
            .node
            .netns()
            .exec(&["ip", "-o", "link"])
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !links.contains(&daemon::naming::host_ifname("ctr-g", "net1")),
        "{links}"
    );
}

/// Uninstall: `helm uninstall` stops the Open vSwitch pod at the same time as the daemon, so
/// the daemon's cleanup may find the database gone. The pods' interfaces still go (netlink
/// alone), and what could not be removed from the database is said, within the budget.
#[tokio::test]
async fn every_attachment_goes_at_uninstall_even_with_the_ovs_database_gone() {
    let mut lab = lab().await;
    let pod = NetnsGuard::create(&unique("kovn-pu")).unwrap();
    lab.allocate("pu", "10.100.0.41", "00:00:00:00:00:41", &[]);
    lab.cni("ADD", "pu", "ctr-u", pod.path().to_str().unwrap(), "")
        .await
        .unwrap();
    let links = |ns: &NetnsGuard| {
        String::from_utf8_lossy(&ns.exec(&["ip", "-o", "link"]).unwrap().stdout).into_owned()
    };
    assert!(links(&pod).contains("net1"), "{}", links(&pod));
    lab.nodes[0].node.kill_db();
    let (removed, errors) = lab.nodes[0]
        .service
        .remove_every_attachment(Duration::from_secs(2))
        .await;
    assert_eq!(removed, 1, "{errors:?}");
    assert!(!links(&pod).contains("net1"), "{}", links(&pod));
    let host = daemon::naming::host_ifname("ctr-u", "net1");
    assert!(!links(lab.nodes[0].node.netns()).contains(&host));
    // The port could not be removed from a database that is gone, and that is said.
    assert!(!errors.is_empty());
}

/// A pod deleted and recreated under its name at once (another UID, another sandbox) whose
/// predecessor's DEL never came: the new pod's ADD removes the predecessor's port (both bind
/// the same logical switch port) before adding its own, and the sweep removes the port of a
/// predecessor whose successor has not been added yet. Ports carry the pod UID.
#[tokio::test]
async fn a_pod_recreated_under_its_name_replaces_its_predecessors_port() {
    let lab = lab().await;
    let netns: Vec<NetnsGuard> = (0..3)
        .map(|_| NetnsGuard::create(&unique("kovn-pu")).unwrap())
        .collect();
    let path = |i: usize| netns[i].path().to_str().unwrap().to_owned();
    let host = |cid: &str| daemon::naming::host_ifname(cid, "net1");
    lab.allocate("pr", "10.100.0.41", "00:00:00:00:00:41", &[]);
    lab.pods.set_uid("default", "pr", "uid-1");
    lab.cni_as(0, "ADD", ("pr", "uid-1"), "ctr-r1", &path(0), "")
        .await
        .unwrap();
    let uid_of = |cid: &str| {
        lab.nodes[0].ovs.replica().table("Interface").and_then(|t| {
            t.by_name(&host(cid))
                .next()
                .and_then(|row| row.external_id("pod_uid").map(str::to_owned))
        })
    };
    assert_eq!(uid_of("ctr-r1").as_deref(), Some("uid-1"));

    // Recreated: same name, another UID and sandbox; the old sandbox's DEL never comes.
    lab.pods.set_uid("default", "pr", "uid-2");
    lab.cni_as(0, "ADD", ("pr", "uid-2"), "ctr-r2", &path(1), "")
        .await
        .unwrap();
    assert!(
        !lab.has_port(0, &host("ctr-r1")),
        "the predecessor's port was left bound to the same logical switch port"
    );
    assert!(lab.has_port(0, &host("ctr-r2")));
    assert_eq!(uid_of("ctr-r2").as_deref(), Some("uid-2"));

    // The sweep: a predecessor's port whose successor has no port yet goes; the pod's own
    // port stays.
    lab.allocate("ps", "10.100.0.42", "00:00:00:00:00:42", &[]);
    lab.pods.set_uid("default", "ps", "uid-s1");
    lab.cni_as(0, "ADD", ("ps", "uid-s1"), "ctr-s1", &path(2), "")
        .await
        .unwrap();
    assert_eq!(lab.nodes[0].service.sweep().await.unwrap(), 0);
    lab.pods.set_uid("default", "ps", "uid-s2");
    assert_eq!(lab.nodes[0].service.sweep().await.unwrap(), 1);
    assert!(!lab.has_port(0, &host("ctr-s1")));
    assert!(lab.has_port(0, &host("ctr-r2")));
}

#[tokio::test]
async fn pods_on_two_nodes_talk_across_the_geneve_tunnel() {
    let lab = lab_with(2).await;
    let (a, b) = (
        NetnsGuard::create(&unique("kovn-px")).unwrap(),
        NetnsGuard::create(&unique("kovn-py")).unwrap(),
    );
    lab.allocate("px", "10.100.0.41", "00:00:00:00:00:41", &[]);
    lab.allocate("py", "10.100.0.42", "00:00:00:00:00:42", &[]);
    lab.cni_on(0, "ADD", "px", "ctr-x", a.path().to_str().unwrap(), "")
        .await
        .unwrap();
    lab.cni_on(1, "ADD", "py", "ctr-y", b.path().to_str().unwrap(), "")
        .await
        .unwrap();
    assert!(
        ping(&a, "10.100.0.42"),
        "px on node 1 cannot ping py on node 2"
    );
    assert!(
        ping(&b, "10.100.0.41"),
        "py on node 2 cannot ping px on node 1"
    );
    // The packets went through a tunnel: node 1 has a geneve port to node 2.
    let tunnels = lab.nodes[0]
        .ovs
        .replica()
        .table("Interface")
        .unwrap()
        .rows()
        .filter(|r| {
            r.get("type")
                .and_then(|t| t.as_set().first()?.as_str().map(|s| s == "geneve"))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(tunnels, 1, "expected one geneve tunnel port on node 1");
}

/// `ip -n <node> <args>` output.
fn ip_in(node: &OvnNode, args: &[&str]) -> String {
    let out = node.netns().exec(&[&["ip"][..], args].concat()).unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tunnel NIC as a user's node has it (address and a route on a plain `eth0`): the
/// daemon's `--iface` path moves both to `br-phy`, geneve then carries pods across nodes, a
/// second pass changes nothing, and addresses lost with the bridge's interface (what an
/// ovs-vswitchd restart does) come back from the bridge's record.
#[tokio::test]
async fn the_daemon_moves_the_tunnel_nic_onto_br_phy_and_geneve_works_over_it() {
    let lab = lab_with_nic(2, TunnelNic::Daemon).await;
    for node in &lab.nodes {
        let on_nic = ip_in(&node.node, &["-4", "addr", "show", "dev", "eth0"]);
        assert!(!on_nic.contains("inet "), "eth0 kept an address:\n{on_nic}");
        let on_bridge = ip_in(&node.node, &["-4", "addr", "show", "dev", "br-phy"]);
        assert!(on_bridge.contains("inet 172.31.0."), "{on_bridge}");
        let routes = ip_in(&node.node, &["-4", "route", "show", "172.31.200.0/24"]);
        assert!(
            routes.contains("dev br-phy") && routes.contains("metric 77"),
            "{routes}"
        );
        let arp_ignore = node
            .node
            .netns()
            .exec(&["cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"])
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&arp_ignore.stdout).trim(), "8");
        // The value eth0 had before, for the uninstall (the kernel's default here).
        assert_eq!(
            br_external_id(&node.node, tunnel::keys::ARP_IGNORE).as_deref(),
            Some("0")
        );
        let host = Netns::open(&node.node.netns().path()).unwrap();
        let again = tunnel::ensure(&node.ovs, &host, &tunnel_config())
            .await
            .unwrap();
        assert_eq!(again.changed, 0, "a second pass changed something");
        assert_eq!(node.config.encap_ip, again.encap_ip().unwrap().to_string());
    }
    let (a, b) = (
        NetnsGuard::create(&unique("kovn-tx")).unwrap(),
        NetnsGuard::create(&unique("kovn-ty")).unwrap(),
    );
    lab.allocate("tx", "10.100.0.61", "00:00:00:00:00:61", &[]);
    lab.allocate("ty", "10.100.0.62", "00:00:00:00:00:62", &[]);
    lab.cni_on(0, "ADD", "tx", "ctr-tx", a.path().to_str().unwrap(), "")
        .await
        .unwrap();
    lab.cni_on(1, "ADD", "ty", "ctr-ty", b.path().to_str().unwrap(), "")
        .await
        .unwrap();
    assert!(
        ping(&a, "10.100.0.62"),
        "tx on node 1 cannot ping ty on node 2"
    );

    // The bridge's interface loses its addresses and routes (as when ovs-vswitchd restarts).
    let node = &lab.nodes[1];
    ip_in(&node.node, &["addr", "flush", "dev", "br-phy"]);
    let flushed = ip_in(&node.node, &["-4", "addr", "show", "dev", "br-phy"]);
    assert!(!flushed.contains("inet "), "{flushed}");
    let host = Netns::open(&node.node.netns().path()).unwrap();
    let restored = tunnel::ensure(&node.ovs, &host, &tunnel_config())
        .await
        .unwrap();
    assert!(restored.changed >= 2, "restored {}", restored.changed);
    let routes = ip_in(&node.node, &["-4", "route", "show", "172.31.200.0/24"]);
    assert!(routes.contains("dev br-phy"), "{routes}");
    assert!(
        ping(&b, "10.100.0.61"),
        "ty cannot ping tx after the restore"
    );

    // Uninstall on node 1: the NIC gets its address and route back and the arp_ignore the
    // bridge recorded (made 2 here, so that a restore to a constant 0 would show), br-phy
    // leaves OVS.
    lab.nodes[0]
        .node
        .vsctl(&[
            "br-set-external-id",
            "br-phy",
            tunnel::keys::ARP_IGNORE,
            "2",
        ])
        .unwrap();
    lab.nodes[0]
        .ovs
        .wait_until(Duration::from_secs(10), |replica| {
            replica
                .table("Bridge")
                .and_then(|t| t.by_name("br-phy").next())
                .is_some_and(|b| {
                    ovs::external_ids(b.get("external_ids")).get(tunnel::keys::ARP_IGNORE)
                        == Some(&"2")
                })
        })
        .await
        .unwrap();
    let host0 = Netns::open(&lab.nodes[0].node.netns().path()).unwrap();
    let moved = tunnel::release(
        &lab.nodes[0].ovs,
        &host0,
        &tunnel_config(),
        &tunnel::Recorded::default(),
    )
    .await
    .unwrap();
    assert_eq!(moved, 2, "one address and one route");
    let on_nic = ip_in(&lab.nodes[0].node, &["-4", "addr", "show", "dev", "eth0"]);
    assert!(on_nic.contains("inet 172.31.0."), "{on_nic}");
    let routes = ip_in(
        &lab.nodes[0].node,
        &["-4", "route", "show", "172.31.200.0/24"],
    );
    assert!(routes.contains("dev eth0"), "{routes}");
    assert_eq!(proc_sys_arp_ignore(&lab.nodes[0].node), "2");
    // Uninstall on node 2 with its OVS database already gone (ovs-ovn stops with the
    // daemon): the record of the last ensure says what goes back.
    e2e::ovn::run(
        std::process::Command::new("ovs-vsctl")
            .arg(format!("--db={}", node.node.db_remote()))
            .args(["--timeout=10", "del-br", "br-phy"]),
    )
    .unwrap();
    tunnel::release(&node.ovs, &host, &tunnel_config(), &restored.record)
        .await
        .unwrap();
    let on_nic = ip_in(&node.node, &["-4", "addr", "show", "dev", "eth0"]);
    assert!(on_nic.contains("inet 172.31.0."), "{on_nic}");
    assert_eq!(restored.record.arp_ignore, Some(0));
    assert_eq!(proc_sys_arp_ignore(&node.node), "0");
}

/// `/proc/sys/net/ipv4/conf/eth0/arp_ignore` in `node`'s namespace.
fn proc_sys_arp_ignore(node: &OvnNode) -> String {
    let out = node
        .netns()
        .exec(&["cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `br-phy`'s `external_ids:<key>` on `node`, if set.
fn br_external_id(node: &OvnNode, key: &str) -> Option<String> {
    let value = node
        .vsctl(&["br-get-external-id", "br-phy", key])
        .unwrap()
        .trim()
        .to_owned();
    (!value.is_empty()).then_some(value)
}

#[tokio::test]
async fn add_and_del_are_recorded_in_the_metrics() {
    let lab = lab().await;
    let a = NetnsGuard::create(&unique("kovn-pm")).unwrap();
    let ns = a.path();
    let ns = ns.to_str().unwrap();
    lab.allocate("pm", "10.100.0.51", "00:00:00:00:00:51", &[]);
    lab.cni("ADD", "pm", "ctr-m", ns, "").await.unwrap();

    let metrics = lab.nodes[0].service.metrics();
    assert_eq!(metrics.op_count(Verb::Add, "ok"), 1);
    for phase in AddPhase::ALL {
        assert_eq!(metrics.phase_count(phase), 1, "{phase:?}");
    }
    assert_eq!(metrics.op_count(Verb::Del, "ok"), 0);

    lab.cni("DEL", "pm", "ctr-m", ns, "").await.unwrap();
    assert_eq!(metrics.op_count(Verb::Del, "ok"), 1);

    // A failed ADD is counted under its CNI code; it stopped after waiting for the allocation.
    lab.annotate("pn", "10.100.0.52", "not-a-mac", &[]);
    let err = lab.cni("ADD", "pn", "ctr-n", ns, "").await.unwrap_err();
    let code = err.code.to_string();
    assert_eq!(metrics.op_count(Verb::Add, &code), 1, "{err}");
    assert_eq!(metrics.op_count(Verb::Add, "ok"), 1);
    assert_eq!(metrics.phase_count(AddPhase::WaitAllocation), 2);
    assert_eq!(metrics.phase_count(AddPhase::Plumbing), 1);
    let text = metrics.render();
    assert!(
        text.contains(r#"kube_ovn_cni_add_phase_duration_seconds_count{phase="plumbing"} 1"#),
        "{text}"
    );

    // The same figures as a Prometheus scrape of the daemon's endpoint sees them.
    let listener = crds::admin::bind("--metrics-addr", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(crds::admin::serve(
        listener,
        lab.nodes[0].service.admin_routes(),
        std::future::pending(),
    ));
    let scraped = scrape(addr, "/metrics").await;
    // The node is healthy: a session to OVS and br-int.
    let health = scrape(addr, "/healthz").await;
    served.abort();
    assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
    assert!(scraped.starts_with("HTTP/1.1 200 OK\r\n"), "{scraped}");
    for series in [
        r#"kube_ovn_cni_op_duration_seconds_count{verb="ADD",result="ok"} 1"#.to_owned(),
        format!(r#"kube_ovn_cni_op_duration_seconds_count{{verb="ADD",result="{code}"}} 1"#),
        r#"kube_ovn_cni_op_duration_seconds_count{verb="DEL",result="ok"} 1"#.to_owned(),
        r#"kube_ovn_cni_add_phase_duration_seconds_count{phase="wait_allocation"} 2"#.to_owned(),
        r#"kube_ovn_cni_add_phase_duration_seconds_count{phase="plumbing"} 1"#.to_owned(),
        r#"kube_ovn_cni_add_phase_duration_seconds_count{phase="wait_ovn_installed"} 1"#.to_owned(),
    ] {
        assert!(scraped.contains(&series), "{series} missing in:\n{scraped}");
    }
    // In seconds, not milliseconds: a successful ADD cannot outlast the service's two waits
    // (5 s allocation + 8 s ovn-installed), so this is a unit check, not a timing one.
    let sum: f64 = scraped
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"kube_ovn_cni_op_duration_seconds_sum{verb="ADD",result="ok"} "#)
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(sum > 0.0 && sum < 13.0, "ADD took {sum} s");
}

/// `GET <path>` over plain HTTP/1.1; the whole response.
async fn scrape(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn a_daemon_restart_keeps_running_pods_and_serves_them_afterwards() {
    let mut lab = lab().await;
    let (a, b) = (
        NetnsGuard::create(&unique("kovn-pr")).unwrap(),
        NetnsGuard::create(&unique("kovn-ps")).unwrap(),
    );
    lab.allocate("pr", "10.100.0.51", "00:00:00:00:00:51", &[]);
    lab.allocate("ps", "10.100.0.52", "00:00:00:00:00:52", &[]);
    let ra = lab
        .cni("ADD", "pr", "ctr-r", a.path().to_str().unwrap(), "")
        .await
        .unwrap()
        .unwrap();
    lab.cni("ADD", "ps", "ctr-s", b.path().to_str().unwrap(), "")
        .await
        .unwrap();
    assert!(ping(&a, "10.100.0.52"));

    lab.restart_daemon(0).await;
    assert_eq!(
        lab.nodes[0].service.tracked_attachments(),
        2,
        "the new daemon took over the plumbed attachments"
    );

    // The data path never depended on the daemon; the new daemon knows the old ports.
    assert!(
        ping(&a, "10.100.0.52"),
        "traffic broken by a daemon restart"
    );
    let prev = format!(r#","prevResult":{ra}"#);
    lab.cni("CHECK", "pr", "ctr-r", a.path().to_str().unwrap(), &prev)
        .await
        .unwrap();
    lab.cni("DEL", "ps", "ctr-s", b.path().to_str().unwrap(), "")
        .await
        .unwrap();
    let host = daemon::naming::host_ifname("ctr-s", "net1");
    assert!(!lab.has_port(0, &host));
    let c = NetnsGuard::create(&unique("kovn-pt")).unwrap();
    lab.allocate("pt", "10.100.0.53", "00:00:00:00:00:53", &[]);
    lab.cni("ADD", "pt", "ctr-t", c.path().to_str().unwrap(), "")
        .await
        .unwrap();
    assert!(
        ping(&a, "10.100.0.53"),
        "a pod added after the restart is reachable"
    );
}

#[tokio::test]
async fn ipam_only_mode_returns_addresses_and_creates_no_interface() {
    let lab = lab().await;
    let provider = "mv.default";
    let mut a = BTreeMap::new();
    for (k, v) in [
        ("allocated", "true"),
        ("ip_address", "10.100.0.61"),
        ("cidr", "10.100.0.0/16"),
        ("gateway", "10.100.0.1"),
        ("mac_address", "00:00:00:00:00:61"),
        ("logical_switch", "ls1"),
    ] {
        a.insert(format!("{provider}.kubernetes.io/{k}"), v.to_owned());
    }
    lab.pods.set("default", "mv", a);
    let ns = NetnsGuard::create(&unique("kovn-pm")).unwrap();
    let env: HashMap<&str, String> = [
        ("CNI_COMMAND", "ADD".to_owned()),
        ("CNI_CONTAINERID", "ctr-m".to_owned()),
        ("CNI_NETNS", ns.path().display().to_string()),
        ("CNI_IFNAME", "net1".to_owned()),
        (
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=default;K8S_POD_NAME=mv".to_owned(),
        ),
    ]
    .into_iter()
    .collect();
    // What macvlan sends its IPAM plugin: the whole config, with ipam.type kube-ovn.
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":"eth0","ipam":{{"type":"kube-ovn","provider":"{provider}","server_socket":"{}"}}}}"#,
        lab.nodes[0].socket.display()
    );
    let out = cni::plugin::run(|k| env.get(k).cloned(), conf.as_bytes())
        .await
        .unwrap()
        .unwrap();
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["ips"][0]["address"], "10.100.0.61/16");
    assert_eq!(result["ips"][0]["gateway"], "10.100.0.1");
    assert!(result.get("interfaces").is_none(), "{result}");
    let links =
        String::from_utf8_lossy(&ns.exec(&["ip", "-o", "link"]).unwrap().stdout).into_owned();
    assert_eq!(
        links.lines().count(),
        1,
        "only lo: the main plugin creates the interface: {links}"
    );
    assert!(
        lab.nodes[0]
            .ovs
            .replica()
            .table("Interface")
            .unwrap()
            .by_name(&daemon::naming::host_ifname("ctr-m", "net1"))
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn the_subnet_mtu_applies_unless_the_nad_sets_one() {
    let lab = lab().await;
    lab.pods.set_subnet_mtu("ls1", 1300);
    let (a, b) = (
        NetnsGuard::create(&unique("kovn-pu")).unwrap(),
        NetnsGuard::create(&unique("kovn-pv")).unwrap(),
    );
    lab.allocate("pu", "10.100.0.71", "00:00:00:00:00:71", &[]);
    lab.allocate("pv", "10.100.0.72", "00:00:00:00:00:72", &[]);
    lab.cni("ADD", "pu", "ctr-u", a.path().to_str().unwrap(), "")
        .await
        .unwrap();
    lab.cni(
        "ADD",
        "pv",
        "ctr-v",
        b.path().to_str().unwrap(),
        r#","mtu":1200"#,
    )
    .await
    .unwrap();
    let mtu = |ns: &NetnsGuard| {
        let out = String::from_utf8_lossy(
            &ns.exec(&["ip", "-o", "link", "show", "net1"])
                .unwrap()
                .stdout,
        )
        .into_owned();
        out.split_whitespace()
            .skip_while(|w| *w != "mtu")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(mtu(&a), "1300", "the Subnet's spec.mtu");
    assert_eq!(mtu(&b), "1200", "the NAD's mtu wins");
}

/// ovn-controller creates br-int itself when it starts before the daemon: node init racing
/// another writer that creates the bridge must adopt it, never fail (seen in e2e as a daemon
/// exiting on a unique-name constraint violation).
#[tokio::test]
async fn node_init_survives_another_writer_creating_the_bridge_at_the_same_time() {
    let node = OvnNode::start("kovn-race").unwrap();
    let ovs = ovs::connect(&node.db_remote()).await.unwrap();
    let config = NodeConfig {
        bridge: "br-int".into(),
        datapath_type: "netdev".into(),
        system_id: unique("chassis-"),
        ovn_remote: "tcp:127.0.0.1:6642".into(),
        encap_type: "geneve".into(),
        encap_ip: "127.0.0.1".into(),
    };
    let vsctl = |args: &[&str]| {
        let out = std::process::Command::new("ovs-vsctl")
            .arg(format!("--db={}", node.db_remote()))
            .args(["--no-wait", "--timeout=30"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ovs-vsctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    for attempt in 0..12 {
        let db = node.db_remote();
        let other = tokio::task::spawn_blocking(move || {
            std::process::Command::new("ovs-vsctl")
                .arg(format!("--db={db}"))
                .args([
                    "--no-wait",
                    "--timeout=30",
                    "--may-exist",
                    "add-br",
                    "br-int",
                ])
                .status()
        });
        ovs::init_node(&ovs, &config)
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        assert!(other.await.unwrap().unwrap().success());
        assert_eq!(vsctl(&["list-br"]), "br-int", "attempt {attempt}");
        // Whoever created it, the bridge ends on the configured datapath.
        ovs::init_node(&ovs, &config).await.unwrap();
        assert_eq!(
            vsctl(&["get", "bridge", "br-int", "datapath_type"]),
            "netdev",
            "attempt {attempt}"
        );
        // Next round from a clean database: wait (on the replica's change stream) until the
        // deletion has reached the replica.
        let mut changes = ovs.subscribe();
        vsctl(&["del-br", "br-int"]);
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while ovs::bridge_exists(&ovs, "br-int") {
                let _ = changes.recv().await;
            }
        })
        .await
        .expect("the bridge deletion never reached the replica");
    }
}
