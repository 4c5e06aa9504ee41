//! Kernel plumbing against the real kernel: namespaces, veth pairs, addresses, routes, and real
//! packets between two pods. Needs root. Each test uses its own uniquely named namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is how a test fails.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use daemon::interface::{self, InterfaceSpec, RouteSpec};
use daemon::netns::Netns;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A named network namespace, deleted on drop.
struct TestNs(String);

impl TestNs {
    fn new(role: &str) -> Self {
        let name = format!(
            "kovn-it-{}-{}-{role}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Self(name)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.0))
    }
    fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spec(cid: &str, netns: &TestNs, addr: &str, mac_last: u8) -> InterfaceSpec {
    InterfaceSpec {
        container_id: cid.to_owned(),
        ifname: "net1".to_owned(),
        netns: netns.path(),
        mac: [0x02, 0, 0, 0, 0, mac_last],
        mtu: 1400,
        addresses: vec![addr.parse().unwrap()],
        routes: vec![RouteSpec {
            dst: "192.0.2.0/24".parse().unwrap(),
            via: Some("10.99.0.1".parse::<IpAddr>().unwrap()),
        }],
        disable_tx_checksum: true,
    }
}

#[tokio::test]
async fn two_plumbed_pods_exchange_packets_and_unplumb_leaves_nothing() {
    // The "node" is a namespace of its own, so the test never touches the host's interfaces.
    let node = TestNs::new("node");
    let (a, b) = (TestNs::new("a"), TestNs::new("b"));
    let root = Netns::open(&node.path()).unwrap();

    let pa = interface::plumb(&root, &spec("ctr-a", &a, "10.99.0.11/24", 0x11))
        .await
        .unwrap();
    let pb = interface::plumb(&root, &spec("ctr-b", &b, "10.99.0.12/24", 0x12))
        .await
        .unwrap();

    // Pod side: name, MAC, MTU, address, route, checksum offload off.
    let observed = interface::observe(&Netns::open(&a.path()).unwrap(), "net1")
        .await
        .unwrap();
    assert_eq!(observed.mac, Some([0x02, 0, 0, 0, 0, 0x11]));
    assert_eq!(observed.mtu, Some(1400));
    assert_eq!(observed.addresses, vec!["10.99.0.11/24".parse().unwrap()]);
    let routes = String::from_utf8(a.exec(&["ip", "route"]).stdout).unwrap();
    assert!(
        routes.contains("192.0.2.0/24 via 10.99.0.1 dev net1"),
        "{routes}"
    );
    let features = String::from_utf8(a.exec(&["ethtool", "-k", "net1"]).stdout).unwrap();
    assert!(features.contains("tx-checksumming: off"), "{features}");

    // Join both host ends with a bridge in the node namespace and send real packets.
    sh(&["ip", "-n", &node.0, "link", "add", "br0", "type", "bridge"]);
    sh(&["ip", "-n", &node.0, "link", "set", "br0", "up"]);
    for host in [&pa.host_ifname, &pb.host_ifname] {
        sh(&["ip", "-n", &node.0, "link", "set", host, "master", "br0"]);
    }
    let ping = a.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.99.0.12"]);
    assert!(
        ping.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // TCP, which breaks when checksums are wrong (ping does not).
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.0,
            "nc",
            "-l",
            "-N",
            "10.99.0.12",
            "16701",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut sent = false;
    for _ in 0..50 {
        let client = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "echo hello-tcp | ip netns exec {} nc -N -w 2 10.99.0.12 16701",
                    a.0
                ),
            ])
            .output()
            .unwrap();
        if client.status.success() {
            sent = true;
            break;
        }
        // The listener may not be up yet; the connect attempt itself is the wait.
    }
    assert!(sent, "TCP connect never succeeded");
    let out = server.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello-tcp");

    // Plumbing the same attachment again (an ADD retry) replaces it cleanly.
    interface::plumb(&root, &spec("ctr-a", &a, "10.99.0.11/24", 0x11))
        .await
        .unwrap();

    // Unplumb removes both ends; a second unplumb is a no-op.
    assert!(interface::unplumb(&root, &pa.host_ifname).await.unwrap());
    assert!(!interface::unplumb(&root, &pa.host_ifname).await.unwrap());
    let links = String::from_utf8(a.exec(&["ip", "-o", "link"]).stdout).unwrap();
    assert!(!links.contains("net1"), "{links}");
}

#[tokio::test]
async fn a_name_already_used_in_the_pod_is_refused_and_nothing_is_left() {
    let node = TestNs::new("node");
    let a = TestNs::new("a");
    sh(&[
        "ip", "-n", &a.0, "link", "add", "net1", "type", "veth", "peer", "name", "other1",
    ]);
    let root = Netns::open(&node.path()).unwrap();
    let err = interface::plumb(&root, &spec("ctr-x", &a, "10.99.0.11/24", 0x21))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already has an interface named net1"),
        "{err}"
    );
    let links = String::from_utf8(node.exec(&["ip", "-o", "link"]).stdout).unwrap();
    assert_eq!(
        links.lines().count(),
        1,
        "only lo may remain in the node: {links}"
    );
}

#[tokio::test]
async fn a_missing_netns_is_reported_as_gone() {
    let node = TestNs::new("node");
    let root = Netns::open(&node.path()).unwrap();
    let mut s = spec("ctr-y", &node, "10.99.0.11/24", 0x31);
    s.netns = PathBuf::from("/var/run/netns/kovn-it-does-not-exist");
    let err = interface::plumb(&root, &s).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// The pod end's index comes from the kernel's echo of the veth request (IFLA_LINK of the host
/// end), which the kernel leaves out when both ends have the same index; then it is looked up.
/// Both ways must configure the pod end and nothing else.
#[tokio::test]
async fn the_pod_end_is_found_whether_or_not_its_index_equals_the_host_ends() {
    let node = TestNs::new("node");
    let root = Netns::open(&node.path()).unwrap();
    // Fresh namespaces hold only lo (1): both ends get index 2.
    let same = TestNs::new("same");
    // A veth pair of its own (indexes 2 and 3) pushes this pod's end to 4; the host end gets 3.
    let other = TestNs::new("other");
    sh(&[
        "ip", "-n", &other.0, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    for (ns, addr, mac) in [
        (&same, "10.99.0.21/24", 0x41),
        (&other, "10.99.0.22/24", 0x42),
    ] {
        interface::plumb(&root, &spec(&format!("ctr-{}", ns.0), ns, addr, mac))
            .await
            .unwrap();
        let observed = interface::observe(&Netns::open(&ns.path()).unwrap(), "net1")
            .await
            .unwrap();
        assert_eq!(observed.addresses, vec![addr.parse().unwrap()], "{}", ns.0);
        let up = String::from_utf8(ns.exec(&["ip", "-o", "link", "show", "net1"]).stdout).unwrap();
        assert!(up.contains(",UP"), "{up}");
        // Nothing else in the pod got the address or a route.
        let addrs = String::from_utf8(ns.exec(&["ip", "-o", "addr"]).stdout).unwrap();
        let ours: Vec<&str> = addrs.lines().filter(|l| l.contains("10.99.")).collect();
        assert!(ours.len() == 1 && ours[0].contains(" net1 "), "{addrs}");
    }
    let indexes = |ns: &TestNs, dev: &str| {
        String::from_utf8(
            ns.exec(&["cat", &format!("/sys/class/net/{dev}/ifindex")])
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned()
    };
    let host_same = daemon::naming::host_ifname(&format!("ctr-{}", same.0), "net1");
    let host_other = daemon::naming::host_ifname(&format!("ctr-{}", other.0), "net1");
    assert_eq!(
        indexes(&same, "net1"),
        indexes(&node, &host_same),
        "same index"
    );
    assert_ne!(
        indexes(&other, "net1"),
        indexes(&node, &host_other),
        "different index"
    );
}

/// A kernel request of the configuration batch that fails (a route via a gateway that is not
/// on-link) is reported with its step, and the veth is gone again on both sides.
#[tokio::test]
async fn a_failed_configuration_step_is_named_and_rolled_back() {
    let node = TestNs::new("node");
    let a = TestNs::new("a");
    let root = Netns::open(&node.path()).unwrap();
    let mut s = spec("ctr-r", &a, "10.99.0.31/24", 0x51);
    s.routes = vec![RouteSpec {
        dst: "192.0.2.0/24".parse().unwrap(),
        via: Some("203.0.113.1".parse::<IpAddr>().unwrap()),
    }];
    let err = interface::plumb(&root, &s).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("adding route") && msg.contains("203.0.113.1"),
        "{msg}"
    );
    let host_links = String::from_utf8(node.exec(&["ip", "-o", "link"]).stdout).unwrap();
    assert_eq!(
        host_links.lines().count(),
        1,
        "only lo may remain: {host_links}"
    );
    let pod_links = String::from_utf8(a.exec(&["ip", "-o", "link"]).stdout).unwrap();
    assert!(!pod_links.contains("net1"), "{pod_links}");
}

/// An attachment that carries the pod's default route takes it over from the primary CNI's,
/// as Multus' `default-route` means (Multus v4.3 does not remove eth0's default route first:
/// its netlink no longer reports default routes without a destination): one default route,
/// through net1, and no `EEXIST`.
#[tokio::test]
async fn a_default_route_attachment_replaces_the_primary_default_route() {
    let node = TestNs::new("node");
    let pod = TestNs::new("pod");
    // The primary CNI's eth0 and its default route.
    // No dummy module here: a veth pair inside the pod stands in for eth0.
    sh(&[
        "ip", "-n", &pod.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    sh(&["ip", "-n", &pod.0, "link", "set", "eth0p", "up"]);
    sh(&[
        "ip",
        "-n",
        &pod.0,
        "addr",
        "add",
        "10.98.0.5/24",
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &pod.0, "link", "set", "eth0", "up"]);
    sh(&[
        "ip",
        "-n",
        &pod.0,
        "route",
        "add",
        "default",
        "via",
        "10.98.0.1",
        "dev",
        "eth0",
    ]);
    let root = Netns::open(&node.path()).unwrap();
    let mut with_default = spec("ctr-d", &pod, "10.99.0.21/24", 0x21);
    with_default.routes.push(RouteSpec {
        dst: "0.0.0.0/0".parse().unwrap(),
        via: Some("10.99.0.1".parse::<IpAddr>().unwrap()),
    });
    interface::plumb(&root, &with_default).await.unwrap();
    let routes = String::from_utf8(pod.exec(&["ip", "route"]).stdout).unwrap();
    let defaults: Vec<&str> = routes
        .lines()
        .filter(|l| l.starts_with("default"))
        .collect();
    assert_eq!(defaults.len(), 1, "{routes}");
    assert!(defaults[0].contains("via 10.99.0.1 dev net1"), "{routes}");
    // Other routes are still exclusive: the custom route is there once.
    assert!(
        routes.contains("192.0.2.0/24 via 10.99.0.1 dev net1"),
        "{routes}"
    );
}
