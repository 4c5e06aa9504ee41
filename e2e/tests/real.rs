//! Level L3, real nodes: the pieces a real-node cluster is built from, each proven on its own.
//!
//! First the fence (`e2e::real::fence`): nothing a real node or its pods send may leave this
//! machine. It is proven here against an "outside" that is itself a namespace of this test, so
//! no packet of the proof goes anywhere but our own namespaces. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::net::IpAddr;
use std::process::Output;
use std::time::{Duration, Instant};

use e2e::ovn::{NetnsGuard, unique};
use e2e::real::fence::{Fence, Scope};
use e2e::real::net::{HostBridge, veth_between};

#[path = "real/chart.rs"]
mod chart;
#[path = "real/common.rs"]
mod common;
use common::{create_nad_crd, fenced_plane, image_archive};
#[path = "real/nat_gateway.rs"]
mod nat_gateway;
#[path = "real/policy.rs"]
mod policy;
#[path = "real/tls.rs"]
mod tls;
#[path = "real/upgrade.rs"]
mod upgrade;
#[path = "real/walkthrough.rs"]
mod walkthrough;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `nc -z` (TCP connect, no data) from `ns` to `addr:port`, with its output and duration.
fn connect(ns: &NetnsGuard, addr: &str, port: u16, wait_secs: u32) -> (Output, Duration) {
    let started = Instant::now();
    let out = ns
        .exec(&[
            "nc",
            "-z",
            "-v",
            "-w",
            &wait_secs.to_string(),
            addr,
            &port.to_string(),
        ])
        .unwrap();
    (out, started.elapsed())
}

/// Packets received on `dev` in `ns` (the outside's view: did anything arrive?).
fn rx_packets(ns: &NetnsGuard, dev: &str) -> u64 {
    let out = ns
        .exec(&[
            "cat",
            &format!("/sys/class/net/{dev}/statistics/rx_packets"),
        ])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A node namespace on the harness bridge, a pod namespace behind it (as the bridge CNI makes
/// one) and an "outside" namespace the node can route to, whose address is in no allow-list.
struct Lab {
    outside: NetnsGuard,
    pod: NetnsGuard,
    node: NetnsGuard,
    bridge: HostBridge,
    outside_ip: String,
    pod_gateway: String,
}

impl Lab {
    fn new() -> Lab {
        let bridge = HostBridge::create().unwrap();
        let node = NetnsGuard::create(&unique("kovn-rn")).unwrap();
        bridge.attach(&node).unwrap();
        let pod = NetnsGuard::create(&unique("kovn-rp")).unwrap();
        let outside = NetnsGuard::create(&unique("kovn-ro")).unwrap();
        let pods = bridge.pod_subnet(0);
        let [a, b, c, _] = pods.network().octets();
        let pod_gateway = format!("{a}.{b}.{c}.1");
        veth_between(
            &node,
            "cni-p",
            &format!("{pod_gateway}/24"),
            &pod,
            "eth0",
            &format!("{a}.{b}.{c}.2/24"),
        )
        .unwrap();
        // 198.18.0.0/15 (benchmarking range), here only ever an address of our own namespace.
        let third = bridge.subnet().network().octets()[2];
        let outside_ip = format!("198.18.{third}.2");
        veth_between(
            &node,
            "out0",
            &format!("198.18.{third}.1/24"),
            &outside,
            "eth0",
            &format!("{outside_ip}/24"),
        )
        .unwrap();
        let ip = |ns: &NetnsGuard, args: &[&str]| {
            let out = ns.exec(args).unwrap();
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        ip(
            &pod,
            &["ip", "route", "add", "default", "via", &pod_gateway],
        );
        ip(
            &outside,
            &[
                "ip",
                "route",
                "add",
                &pods.to_string(),
                "via",
                &format!("198.18.{third}.1"),
            ],
        );
        ip(&node, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        // Before anything is sent: the outside is reached through our own veth, and the node
        // has no default route, so nothing here can leave the machine even without a fence.
        let route = ip(&node, &["ip", "route", "get", &outside_ip]);
        assert!(route.contains("dev out0"), "{route}");
        assert!(
            ip(&node, &["ip", "route", "show", "default"])
                .trim()
                .is_empty()
        );
        Lab {
            outside,
            pod,
            node,
            bridge,
            outside_ip,
            pod_gateway,
        }
    }

    fn node_fence(&self) -> Fence {
        let allowed = self.bridge.allow_list(&[self.bridge.pod_subnet(0)]);
        Fence::install(Scope::Netns(self.node.name().to_owned()), &allowed).unwrap()
    }
}

#[test]
fn fence_stops_what_leaves_the_harness_counts_it_and_names_the_destination() {
    let lab = Lab::new();
    let outside_ip = lab.outside_ip.clone();

    // Without the fence the outside is reachable: its TCP stack answers (refused, port 9 is
    // closed), from the node and from the pod.
    for ns in [&lab.node, &lab.pod] {
        let (out, _) = connect(ns, &outside_ip, 9, 2);
        assert!(
            stderr(&out).contains("Connection refused"),
            "{}: {}",
            ns.name(),
            stderr(&out)
        );
    }

    let host_fence = Fence::install(
        Scope::HostForward {
            in_interface: lab.bridge.name().to_owned(),
        },
        &lab.bridge.allow_list(&[]),
    )
    .unwrap();
    let fence = lab.node_fence();
    assert!(fence.is_hooked() && host_fence.is_hooked());
    assert!(fence.report().unwrap().is_clean());

    // From the pod (routed by the node): rejected at once.
    let (out, took) = connect(&lab.pod, &outside_ip, 9, 5);
    assert!(
        stderr(&out).contains("No route to host"),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let ping = lab
        .pod
        .exec(&["ping", "-c", "1", "-W", "5", &outside_ip])
        .unwrap();
    assert!(!ping.status.success());
    assert!(
        String::from_utf8_lossy(&ping.stdout).contains("Packet filtered"),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // From the node itself: dropped before it leaves. Linux TCP retries a SYN after a local
    // drop (only ECONNREFUSED aborts a connect), so the connect ends at nc's own timeout; what
    // matters is that nothing arrived outside.
    let before = rx_packets(&lab.outside, "eth0");
    let (out, _) = connect(&lab.node, &outside_ip, 9, 1);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("refused"), "{}", stderr(&out));
    // A Service address with no kube-proxy to translate it: stopped inside the node as well.
    let (out, _) = connect(&lab.node, "10.96.0.1", 443, 1);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_eq!(rx_packets(&lab.outside, "eth0"), before, "a packet got out");

    // Anything else has no route at all: refused by routing, no packet made.
    let unrouted = lab
        .node
        .exec(&["ip", "route", "get", "198.19.0.1"])
        .unwrap();
    assert!(
        stderr(&unrouted).contains("Network is unreachable"),
        "{}",
        stderr(&unrouted)
    );

    // The harness itself stays reachable: the host's bridge address and the pod.
    for (ns, target) in [
        (&lab.node, lab.bridge.address().to_string()),
        (&lab.pod, lab.pod_gateway.clone()),
    ] {
        let ping = ns.exec(&["ping", "-c", "1", "-W", "2", &target]).unwrap();
        assert!(ping.status.success(), "{} -> {target}", ns.name());
    }

    // The count and the destinations.
    let report = fence.report().unwrap();
    eprintln!("fence report: {report}");
    let outside: IpAddr = outside_ip.parse().unwrap();
    let service: IpAddr = "10.96.0.1".parse().unwrap();
    assert_eq!(report.destinations, vec![service, outside], "{report}");
    let hooks: Vec<&str> = report.per_hook.iter().map(|(h, _)| h.as_str()).collect();
    assert!(hooks.contains(&"filter OUTPUT"), "{report}");
    assert!(hooks.contains(&"filter FORWARD"), "{report}");
    assert!(report.packets >= 4, "{report}");
    let breach = fence.check().unwrap_err().to_string();
    assert!(
        breach.contains(&outside_ip) && breach.contains("10.96.0.1"),
        "{breach}"
    );
    assert!(breach.contains(lab.node.name()), "{breach}");
    // The host forwarded nothing.
    host_fence.check().unwrap();

    // After a reset a clean run passes its end-of-run check.
    fence.reset().unwrap();
    fence.check().unwrap();

    // An ACCEPT put above the fence (as kube-proxy and CNI plugins put theirs at the top of
    // filter OUTPUT/FORWARD) does not open it: mangle POSTROUTING stops the packet last.
    let accept = [
        "iptables",
        "-w",
        "-I",
        "OUTPUT",
        "1",
        "-d",
        &outside_ip,
        "-j",
        "ACCEPT",
    ];
    assert!(lab.node.exec(&accept).unwrap().status.success());
    let before = rx_packets(&lab.outside, "eth0");
    let (out, _) = connect(&lab.node, &outside_ip, 9, 1);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_eq!(rx_packets(&lab.outside, "eth0"), before, "a packet got out");
    let report = fence.report().unwrap();
    assert_eq!(report.destinations, vec![outside], "{report}");
    assert!(
        report
            .per_hook
            .iter()
            .any(|(h, n)| h == "mangle POSTROUTING" && *n > 0),
        "{report}"
    );
    let mut remove = accept;
    remove[2] = "-D";
    let remove: Vec<&str> = remove.iter().copied().filter(|a| *a != "1").collect();
    assert!(lab.node.exec(&remove).unwrap().status.success());
    fence.reset().unwrap();

    // The Service range deferred, as real nodes have it (kube-proxy translates cluster IPs, or
    // rejects those without endpoints, in the filter hooks): a cluster IP that nothing
    // translates passes the filter hooks and is still stopped and counted at the last one.
    drop(fence);
    let allowed = lab.bridge.allow_list(&[lab.bridge.pod_subnet(0)]);
    let fence = Fence::install_deferring(
        Scope::Netns(lab.node.name().to_owned()),
        &allowed,
        &["10.96.0.0/12".parse().unwrap()],
    )
    .unwrap();
    let (out, _) = connect(&lab.pod, "10.96.0.1", 443, 1);
    assert!(!out.status.success(), "{}", stderr(&out));
    let report = fence.report().unwrap();
    assert_eq!(report.untranslated, vec![service], "{report}");
    assert!(report.destinations.is_empty(), "{report}");
    assert!(
        report
            .per_hook
            .iter()
            .all(|(h, n)| h == "mangle POSTROUTING" || *n == 0)
            && report.packets > 0
            && report.untranslated_packets == report.packets,
        "{report}"
    );
    // A breach unless a Service has that cluster IP (kube-proxy had not programmed it yet).
    assert!(fence.check().is_err());
    fence.check_allowing(&[service]).unwrap();
    fence.reset().unwrap();
    assert!(fence.report().unwrap().is_clean());

    // Take the fence down: the outside answers again, so it was the fence that stopped it.
    drop(fence);
    let (out, _) = connect(&lab.node, &outside_ip, 9, 2);
    assert!(
        stderr(&out).contains("Connection refused"),
        "{}",
        stderr(&out)
    );
    let host_chains = host_fence.host_chains();
    drop(host_fence);
    let rules = std::process::Command::new("iptables")
        .args(["-w", "-S"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    for chain in host_chains {
        assert!(
            !rules.contains(&chain),
            "{chain} left in the host:\n{rules}"
        );
    }
}

#[test]
fn fence_and_namespaces_go_away_after_a_panic() {
    let mut names = Vec::new();
    let mut chains = Vec::new();
    let mut bridge_name = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::new();
        let host_fence = Fence::install(
            Scope::HostForward {
                in_interface: lab.bridge.name().to_owned(),
            },
            &lab.bridge.allow_list(&[]),
        )
        .unwrap();
        let _fence = lab.node_fence();
        names = [&lab.node, &lab.pod, &lab.outside]
            .iter()
            .map(|ns| ns.name().to_owned())
            .collect();
        chains = host_fence.host_chains();
        bridge_name = lab.bridge.name().to_owned();
        panic!("a failing test");
    }));
    assert!(result.is_err());
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    for name in &names {
        assert!(!netns.contains(name.as_str()), "{name} left behind");
    }
    let rules = std::process::Command::new("iptables")
        .args(["-w", "-S"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    for chain in &chains {
        assert!(!rules.contains(chain.as_str()), "{chain} left behind");
    }
    let link = std::process::Command::new("ip")
        .args(["link", "show", &bridge_name])
        .output()
        .unwrap();
    assert!(!link.status.success(), "bridge {bridge_name} left behind");
}

fn pod_yaml(name: &str, node: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default"}},
"spec":{{"nodeName":"{node}","terminationGracePeriodSeconds":0,
"containers":[{{"name":"main","image":"{image}","imagePullPolicy":"Never"}}]}}}}"#,
        image = e2e::real::node::WORKLOAD_IMAGE
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_node_runs_a_pod_reaches_services_through_kube_proxy_and_stays_fenced() {
    use e2e::k8s::{Binaries, ControlPlane, Options};
    use e2e::real::node::{NodeConfig, RealNode};

    let started = Instant::now();
    let images = vec![image_archive("e2e-pause"), image_archive("e2e-workload")];
    let k8s = Binaries::locate().unwrap();
    let bridge = HostBridge::create().unwrap();
    let host_fence = Fence::install(
        Scope::HostForward {
            in_interface: bridge.name().to_owned(),
        },
        &bridge.allow_list(&[]),
    )
    .unwrap();
    let plane = ControlPlane::start_with(Options {
        address: Some(bridge.address()),
    })
    .await
    .unwrap();
    eprintln!(
        "control plane on {} in {:?}",
        plane.server(),
        started.elapsed()
    );
    let node = RealNode::start(
        &plane,
        &bridge,
        &NodeConfig {
            name: "real-1".to_owned(),
            index: 0,
            images,
            k8s_bin_dir: k8s.path("kubelet").parent().unwrap().to_path_buf(),
            extra_plugins: Vec::new(),
            multus: None,
        },
    )
    .await
    .unwrap();
    eprintln!(
        "node {} Ready with kube-proxy after {:?}",
        node.name(),
        started.elapsed()
    );

    let manifest = std::env::temp_dir().join(unique("kovn-pod-").to_string() + ".json");
    std::fs::write(&manifest, pod_yaml("plain", node.name())).unwrap();
    plane
        .kubectl(&["apply", "-f", &manifest.display().to_string()])
        .unwrap();
    let _ = std::fs::remove_file(&manifest);
    let waited = plane.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/plain",
        "--timeout=90s",
    ]);
    if let Err(e) = &waited {
        let describe = plane
            .kubectl(&["describe", "pod", "plain"])
            .unwrap_or_default();
        panic!("pod not Ready: {e}\n{describe}");
    }
    eprintln!("pod Running after {:?}", started.elapsed());

    // eth0 from the bridge plugin, in this node's pod subnet.
    let addr = plane
        .kubectl(&["exec", "plain", "--", "ip", "-4", "addr", "show", "eth0"])
        .unwrap();
    let prefix = node.pod_subnet().network().to_string();
    let prefix = prefix.trim_end_matches(".0");
    assert!(addr.contains(&format!("inet {prefix}.")), "{addr}");

    // The `kubernetes` ClusterIP, from the pod and from the node: kube-proxy turns it into the
    // apiserver on the bridge, and the fence lets that through.
    let from_pod = plane.kubectl(&[
        // busybox nc has no -z: `-e true` (last) runs `true` on the connected socket and exits 0.
        "exec",
        "plain",
        "--",
        "nc",
        "-w",
        "3",
        "10.96.0.1",
        "443",
        "-e",
        "true",
    ]);
    assert!(from_pod.is_ok(), "{from_pod:?}");
    let (out, _) = connect(node.netns(), "10.96.0.1", 443, 3);
    assert!(out.status.success(), "{}", stderr(&out));

    plane
        .kubectl(&["delete", "pod", "plain", "--wait=true", "--timeout=60s"])
        .unwrap();

    // Nothing tried to leave the machine during the whole run.
    node.fence().check().unwrap();
    host_fence.check().unwrap();
    eprintln!("whole run {:?}", started.elapsed());

    // Teardown leaves no namespace, mount or process of the node.
    let netns = node.netns().name().to_owned();
    let dir = node.dir().display().to_string();
    drop(node);
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(!list.contains(&netns), "{list}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&dir), "mounts left under {dir}");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains(&dir), "process left: {cmdline}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multus_on_a_real_node_gives_net1_from_a_nad_and_writes_network_status() {
    use e2e::k8s::{Binaries, ControlPlane, Options};
    use e2e::real::node::{MULTUS_BIN, NodeConfig, RealNode};

    let started = Instant::now();
    let images = vec![image_archive("e2e-pause"), image_archive("e2e-workload")];
    let k8s = Binaries::locate().unwrap();
    let bridge = HostBridge::create().unwrap();
    let host_fence = Fence::install(
        Scope::HostForward {
            in_interface: bridge.name().to_owned(),
        },
        &bridge.allow_list(&[]),
    )
    .unwrap();
    let plane = ControlPlane::start_with(Options {
        address: Some(bridge.address()),
    })
    .await
    .unwrap();
    create_nad_crd(&plane).await;
    let node = RealNode::start(
        &plane,
        &bridge,
        &NodeConfig {
            name: "real-m".to_owned(),
            index: 0,
            images,
            k8s_bin_dir: k8s.path("kubelet").parent().unwrap().to_path_buf(),
            extra_plugins: Vec::new(),
            multus: Some(MULTUS_BIN.into()),
        },
    )
    .await
    .unwrap();
    eprintln!("node with Multus Ready after {:?}", started.elapsed());

    // The kernel has no dummy links: the macvlan master is a veth in the node namespace.
    for args in [
        &[
            "ip", "link", "add", "mvl0", "type", "veth", "peer", "name", "mvl0p",
        ][..],
        &["ip", "link", "set", "mvl0", "up"],
        &["ip", "link", "set", "mvl0p", "up"],
    ] {
        let out = node.netns().exec(args).unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let third = bridge.subnet().network().octets()[2];
    let nad_config = serde_json::json!({
        "cniVersion": "0.3.1",
        "type": "macvlan",
        "master": "mvl0",
        "mode": "bridge",
        "ipam": {
            "type": "host-local",
            "subnet": format!("10.210.{third}.0/24"),
            "dataDir": node.dir().join("macvlan-ipam"),
        },
    });
    let nad = serde_json::json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "macvlan-conf", "namespace": "default"},
        "spec": {"config": nad_config.to_string()},
    });
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "multi",
            "namespace": "default",
            "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan-conf"},
        },
        "spec": {
            "nodeName": node.name(),
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "main",
                "image": e2e::real::node::WORKLOAD_IMAGE,
                "imagePullPolicy": "Never",
            }],
        },
    });
    for (what, object) in [("nad", nad), ("pod", pod)] {
        let manifest = std::env::temp_dir().join(format!("{}-{what}.json", unique("kovn-m-")));
        std::fs::write(&manifest, object.to_string()).unwrap();
        plane
            .kubectl(&["apply", "-f", &manifest.display().to_string()])
            .unwrap();
        let _ = std::fs::remove_file(&manifest);
    }
    let waited = plane.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/multi",
        "--timeout=90s",
    ]);
    if let Err(e) = &waited {
        let describe = plane
            .kubectl(&["describe", "pod", "multi"])
            .unwrap_or_default();
        let log = std::fs::read_to_string(node.dir().join("multus.log")).unwrap_or_default();
        panic!("pod not Ready: {e}\n{describe}\nmultus.log:\n{log}");
    }
    eprintln!("pod with net1 Running after {:?}", started.elapsed());

    let addr = plane
        .kubectl(&["exec", "multi", "--", "ip", "-4", "addr", "show"])
        .unwrap();
    assert!(addr.contains(&format!("inet 10.210.{third}.")), "{addr}");
    assert!(addr.contains("net1"), "{addr}");
    let status = plane
        .kubectl(&[
            "get",
            "pod",
            "multi",
            "-o",
            "jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}",
        ])
        .unwrap();
    eprintln!("network-status: {status}");
    assert!(status.contains("default/macvlan-conf"), "{status}");
    assert!(
        status.contains("\"interface\": \"net1\"") || status.contains("\"interface\":\"net1\""),
        "{status}"
    );

    plane
        .kubectl(&["delete", "pod", "multi", "--wait=true", "--timeout=60s"])
        .unwrap();
    node.fence().check().unwrap();
    host_fence.check().unwrap();
    eprintln!("whole run {:?}", started.elapsed());
}

/// `kubectl` output for a failure report (never fails itself).
/// Two kubelets, each with its own containerd, namespace, mount namespace and cgroup root, in
/// one cluster: pods on both, and a ping between them over their eth0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_real_nodes_share_this_machine_and_their_pods_reach_each_other() {
    use e2e::k8s::Binaries;
    use e2e::real::node::{NodeConfig, RealNode};

    let started = Instant::now();
    let images = vec![image_archive("e2e-pause"), image_archive("e2e-workload")];
    let k8s = Binaries::locate().unwrap();
    let bin_dir = k8s.path("kubelet").parent().unwrap().to_path_buf();
    let (bridge, host_fence, plane) = fenced_plane().await;
    let mut nodes = Vec::new();
    for (index, name) in ["real-a", "real-b"].into_iter().enumerate() {
        let node = RealNode::start(
            &plane,
            &bridge,
            &NodeConfig {
                name: name.to_owned(),
                index: u8::try_from(index).unwrap(),
                images: images.clone(),
                k8s_bin_dir: bin_dir.clone(),
                extra_plugins: Vec::new(),
                multus: None,
            },
        )
        .await
        .unwrap();
        eprintln!("{name} Ready after {:?}", started.elapsed());
        nodes.push(node);
    }
    nodes[0].route_pods_to(&nodes[1]).unwrap();
    nodes[1].route_pods_to(&nodes[0]).unwrap();
    for (pod, node) in [("pod-a", &nodes[0]), ("pod-b", &nodes[1])] {
        let manifest = std::env::temp_dir().join(format!("{}-{pod}.json", unique("kovn-2-")));
        std::fs::write(&manifest, pod_yaml(pod, node.name())).unwrap();
        plane
            .kubectl(&["apply", "-f", &manifest.display().to_string()])
            .unwrap();
        let _ = std::fs::remove_file(&manifest);
    }
    for pod in ["pod-a", "pod-b"] {
        let waited = plane.kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=90s",
        ]);
        if let Err(e) = waited {
            let describe = plane.kubectl(&["describe", "pod", pod]).unwrap_or_default();
            panic!("{pod} not Ready: {e}\n{describe}");
        }
    }
    eprintln!("both pods Running after {:?}", started.elapsed());
    let ip_b = plane
        .kubectl(&["get", "pod", "pod-b", "-o", "jsonpath={.status.podIP}"])
        .unwrap();
    assert!(
        nodes[1]
            .pod_subnet()
            .contains(&ip_b.parse::<std::net::Ipv4Addr>().unwrap())
    );
    let ping = plane
        .kubectl(&["exec", "pod-a", "--", "ping", "-c", "1", "-W", "3", &ip_b])
        .unwrap();
    assert!(ping.contains("1 packets received"), "{ping}");
    plane
        .kubectl(&[
            "delete",
            "pod",
            "pod-a",
            "pod-b",
            "--wait=true",
            "--timeout=60s",
        ])
        .unwrap();
    for node in &nodes {
        node.fence().check().unwrap();
    }
    host_fence.check().unwrap();
    eprintln!("whole run {:?}", started.elapsed());
}
