//! The NAT gateway agent against the real kernel and a real API server: network namespaces for
//! a VPC pod, the gateway and an external host, real TCP connections through SNAT, DNAT and
//! FIP, the `kube-ovn-daemon nat-gateway` binary as the agent. Needs root, `nft` (nftables) for
//! reading the ruleset back, and the control plane of `cargo xtask setup`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use daemon::natgw::apply::{Applier, ROUTE_TABLE};
use daemon::natgw::nft::{self, Action, L4, Match, Nft, Rule, Ruleset};
use daemon::natgw::plan::{Desired, Leg, Route};
use daemon::netns::Netns;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A named network namespace, deleted on drop.
struct TestNs(String);

impl TestNs {
    fn new(role: &str) -> Self {
        let name = format!(
            "kovn-ngw-{}-{}-{role}",
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
    fn ip(&self, args: &str) {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend(args.split_whitespace());
        sh(&v);
    }
    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// Like [`TestNs::exec`], but a failing command gives an empty answer (for checks that
    /// wait until something exists).
    fn try_exec(&self, args: &[&str]) -> String {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
    fn netns(&self) -> Netns {
        Netns::open(&self.path()).unwrap()
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

/// A veth pair `a_if` in `a`, `b_if` in `b`, both up.
fn veth(a: &TestNs, a_if: &str, b: &TestNs, b_if: &str) {
    let tmp = format!("kv{}", SEQ.fetch_add(1, Ordering::Relaxed));
    sh(&[
        "ip", "link", "add", &tmp, "netns", &a.0, "type", "veth", "peer", "name", b_if, "netns",
        &b.0,
    ]);
    a.ip(&format!("link set {tmp} name {a_if}"));
    a.ip(&format!("link set {a_if} up"));
    b.ip(&format!("link set {b_if} up"));
}

/// A TCP server in a namespace that answers every connection with the peer's address.
struct PeerEcho {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeerEcho {
    fn start(ns: &TestNs, port: u16) -> Self {
        let listener = ns
            .netns()
            .run(|| TcpListener::bind(("0.0.0.0", port)))
            .unwrap()
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.write_all(peer.ip().to_string().as_bytes());
                    }
                    // A server loop, not a test waiting: idle between connections.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PeerEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from `ns` to `to` and returns the address the server saw us as.
fn peer_seen(ns: &TestNs, to: &str, timeout: Duration) -> Result<String, String> {
    let addr: SocketAddr = to.parse().unwrap();
    ns.netns()
        .run(move || {
            let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(timeout)).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).map_err(|e| e.to_string())?;
            Ok(out)
        })
        .unwrap()
}

/// Retries `check` until it returns true (the event: traffic changed), at most `limit`.
fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
    }
}

const SHORT: Duration = Duration::from_millis(700);

/// The namespaces of a gateway scenario:
/// pod (10.77.1.10/24, default via lanIp 10.77.1.254) -- net1 [gw] net2 (198.18.77.2/24)
/// -- ext (198.18.77.1/24, the external gateway, plus 203.0.113.7/32 behind it); the gateway
/// also has the primary CNI's eth0 (172.31.0.2/24, its main table's default route via
/// 172.31.0.1 in `cluster`), which forwarded traffic must never take.
struct Topology {
    pod: TestNs,
    pod2: TestNs,
    gw: TestNs,
    ext: TestNs,
    _cluster: TestNs,
}

impl Topology {
    fn new() -> Self {
        let (pod, pod2, gw, ext) = (
            TestNs::new("pod"),
            TestNs::new("pod2"),
            TestNs::new("gw"),
            TestNs::new("ext"),
        );
        // The LAN is a bridge in the gateway's namespace with both pods on it (OVN's logical
        // switch stands in as a bridge here): net1 carries lanIp.
        gw.ip("link add net1 type bridge");
        gw.ip("link set net1 up");
        veth(&pod, "eth0", &gw, "p1");
        veth(&pod2, "eth0", &gw, "p2");
        gw.ip("link set p1 master net1");
        gw.ip("link set p2 master net1");
        gw.ip("addr add 10.77.1.254/24 dev net1");
        pod.ip("addr add 10.77.1.10/24 dev eth0");
        pod.ip("route add default via 10.77.1.254");
        pod2.ip("addr add 10.77.1.11/24 dev eth0");
        pod2.ip("route add default via 10.77.1.254");
        veth(&gw, "net2", &ext, "eth0");
        gw.ip("addr add 198.18.77.2/24 dev net2");
        ext.ip("addr add 198.18.77.1/24 dev eth0");
        ext.ip("addr add 203.0.113.7/32 dev lo");
        let cluster = TestNs::new("cluster");
        veth(&gw, "eth0", &cluster, "eth0");
        gw.ip("addr add 172.31.0.2/24 dev eth0");
        cluster.ip("addr add 172.31.0.1/24 dev eth0");
        gw.ip("route add default via 172.31.0.1 dev eth0");
        Self {
            pod,
            pod2,
            gw,
            ext,
            _cluster: cluster,
        }
    }

    fn desired(&self, eips: &[&str], ruleset: Ruleset) -> Desired {
        Desired {
            lan_interface: "net1".into(),
            external_interface: "net2".into(),
            eip_addresses: eips.iter().map(|e| e.parse().unwrap()).collect(),
            attachment_addresses: vec!["198.18.77.2".parse().unwrap()],
            routes: vec![
                Route {
                    destination: "0.0.0.0/0".parse().unwrap(),
                    via: Some("198.18.77.1".parse().unwrap()),
                    leg: Leg::External,
                },
                Route {
                    destination: "10.77.1.0/24".parse().unwrap(),
                    via: None,
                    leg: Leg::Lan,
                },
                Route {
                    destination: "198.18.77.0/24".parse().unwrap(),
                    via: None,
                    leg: Leg::External,
                },
            ],
            ruleset,
        }
    }
}

fn nft_json(ns: &TestNs) -> serde_json::Value {
    serde_json::from_str(&ns.exec(&["nft", "-j", "list", "table", "ip", nft::TABLE])).unwrap()
}

fn rules_of(json: &serde_json::Value) -> Vec<serde_json::Value> {
    json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule").cloned())
        .collect()
}

#[test]
fn the_nft_transaction_reads_back_as_the_rules_nft_would_write() {
    let ns = TestNs::new("nft");
    let ruleset = Ruleset {
        prerouting: vec![Rule {
            matches: vec![
                Match::Daddr(Ipv4Addr::new(198, 18, 0, 10)),
                Match::Dport(L4::Udp, 53),
            ],
            action: Action::Dnat {
                addr: Ipv4Addr::new(10, 0, 0, 2),
                port: Some(5353),
            },
            comment: "dnat/dns".into(),
        }],
        postrouting: vec![
            Rule {
                matches: vec![
                    Match::Saddr("10.0.0.0/20".parse().unwrap()),
                    Match::Oifname("net2".into()),
                ],
                action: Action::Snat(Ipv4Addr::new(198, 18, 0, 11)),
                comment: "snat/wide".into(),
            },
            Rule {
                matches: vec![
                    Match::Saddr("10.1.0.0/16".parse().unwrap()),
                    Match::Iifname("net1".into()),
                ],
                action: Action::Snat(Ipv4Addr::new(198, 18, 0, 12)),
                comment: String::new(),
            },
        ],
        ..Default::default()
    };
    ns.netns()
        .run(|| Nft::open()?.replace(&ruleset))
        .unwrap()
        .unwrap();
    let text = ns.exec(&["nft", "list", "table", "ip", nft::TABLE]);
    for want in [
        "type nat hook prerouting priority dstnat; policy accept;",
        "type nat hook postrouting priority srcnat; policy accept;",
        "ip daddr 198.18.0.10 udp dport 53 dnat to 10.0.0.2:5353 comment \"dnat/dns\"",
        "ip saddr 10.0.0.0/20 oifname \"net2\" snat to 198.18.0.11 comment \"snat/wide\"",
        "ip saddr 10.1.0.0/16 iifname \"net1\" snat to 198.18.0.12",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // Replacing is whole: a smaller set leaves nothing of the bigger one, and a hand-added
    // rule in our table goes too, while another table stays.
    ns.exec(&[
        "nft",
        "add",
        "rule",
        "ip",
        nft::TABLE,
        "prerouting",
        "ip",
        "daddr",
        "1.1.1.1",
        "drop",
    ]);
    ns.exec(&["nft", "add", "table", "ip", "someone-else"]);
    let smaller = Ruleset {
        prerouting: vec![],
        postrouting: ruleset.postrouting[..1].to_vec(),
        ..Default::default()
    };
    ns.netns()
        .run(|| Nft::open()?.replace(&smaller))
        .unwrap()
        .unwrap();
    let rules = rules_of(&nft_json(&ns));
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["comment"], "snat/wide");
    assert!(ns.exec(&["nft", "list", "tables"]).contains("someone-else"));
    // A big set is one datagram and one transaction.
    let big = Ruleset {
        prerouting: (0..3000u32)
            .map(|i| Rule {
                matches: vec![
                    Match::Daddr(Ipv4Addr::new(198, 18, 1, (i % 200) as u8 + 1)),
                    Match::Dport(L4::Tcp, 10000 + i as u16),
                ],
                action: Action::Dnat {
                    addr: Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1),
                    port: Some(80),
                },
                comment: format!("dnat/r{i}"),
            })
            .collect(),
        postrouting: vec![],
        ..Default::default()
    };
    ns.netns()
        .run(|| Nft::open()?.replace(&big))
        .unwrap()
        .unwrap();
    assert_eq!(rules_of(&nft_json(&ns)).len(), 3000);
    // A refused transaction changes nothing and names the culprit.
    let bad = Ruleset {
        prerouting: vec![Rule {
            matches: vec![],
            // SNAT in a prerouting chain: the kernel refuses the nat expression there.
            action: Action::Snat(Ipv4Addr::new(10, 0, 0, 1)),
            comment: "dnat/broken".into(),
        }],
        postrouting: vec![],
        ..Default::default()
    };
    let err = ns
        .netns()
        .run(|| Nft::open()?.replace(&bad))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("dnat/broken"), "{err}");
    assert_eq!(rules_of(&nft_json(&ns)).len(), 3000);
    ns.netns().run(|| Nft::open()?.delete()).unwrap().unwrap();
    assert!(!ns.exec(&["nft", "list", "tables"]).contains(nft::TABLE));
    ns.netns().run(|| Nft::open()?.delete()).unwrap().unwrap();
}

fn snat(cidr: &str, to: &str, name: &str) -> Rule {
    Rule {
        matches: vec![
            Match::Saddr(cidr.parse().unwrap()),
            Match::Oifname("net2".into()),
        ],
        action: Action::Snat(to.parse().unwrap()),
        comment: name.into(),
    }
}

fn dnat(eip: &str, port: u16, to: &str, to_port: u16, name: &str) -> Rule {
    Rule {
        matches: vec![
            Match::Daddr(eip.parse().unwrap()),
            Match::Dport(L4::Tcp, port),
        ],
        action: Action::Dnat {
            addr: to.parse().unwrap(),
            port: Some(to_port),
        },
        comment: name.into(),
    }
}

#[tokio::test]
async fn applied_state_carries_snat_dnat_and_fip_packets_and_reapplies_to_nothing() {
    let t = Topology::new();
    let applier = Applier::new(t.gw.netns()).unwrap();
    let _ext_echo = PeerEcho::start(&t.ext, 7001);
    let _pod_echo = PeerEcho::start(&t.pod, 80);
    let _pod2_echo = PeerEcho::start(&t.pod2, 80);
    // Without the gateway's state: no way out.
    assert!(peer_seen(&t.pod, "203.0.113.7:7001", SHORT).is_err());

    let fip = "198.18.77.30";
    let ruleset = Ruleset {
        prerouting: vec![
            dnat("198.18.77.20", 8080, "10.77.1.10", 80, "dnat/web"),
            Rule {
                matches: vec![Match::Daddr(fip.parse().unwrap())],
                action: Action::Dnat {
                    addr: "10.77.1.11".parse().unwrap(),
                    port: None,
                },
                comment: "fip/f".into(),
            },
        ],
        postrouting: vec![
            snat("10.77.1.11/32", fip, "fip/f"),
            snat("10.77.1.0/24", "198.18.77.10", "snat/all"),
        ],
        ..Default::default()
    };
    let eips = ["198.18.77.10/24", "198.18.77.20/24", "198.18.77.30/24"];
    let desired = t.desired(&eips, ruleset.clone());
    // Strict reverse-path filtering, as some nodes' sysctls give pods.
    t.gw.exec(&[
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.rp_filter=1",
        "net.ipv4.conf.net2.rp_filter=1",
    ]);
    t.gw.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    let first = applier.apply(&desired).await.unwrap();
    assert_eq!(first.addresses, 3);
    assert_eq!(first.routes, 5, "2 policy rules + 3 routes");
    // Forwarding and loose filtering per leg, over netlink: the namespace-wide switches stay as
    // they were (the agent cannot write /proc/sys in its pod), and the packets below still pass.
    let sysctl = |name: &str| t.gw.exec(&["sysctl", "-n", name]).trim().to_owned();
    assert_eq!(sysctl("net.ipv4.ip_forward"), "0");
    assert_eq!(sysctl("net.ipv4.conf.all.rp_filter"), "1");
    for leg in ["net1", "net2"] {
        assert_eq!(
            sysctl(&format!("net.ipv4.conf.{leg}.forwarding")),
            "1",
            "{leg}"
        );
        // net1 was 0, which the strict `all` made strict; net2 was strict itself.
        assert_eq!(
            sysctl(&format!("net.ipv4.conf.{leg}.rp_filter")),
            "2",
            "{leg}"
        );
    }
    if std::env::var_os("NATGW_DEBUG").is_some() {
        for cmd in [
            &[
                "sysctl",
                "net.ipv4.ip_forward",
                "net.ipv4.conf.all.rp_filter",
            ][..],
            &["ip", "rule"],
            &["ip", "route", "show", "table", "all"],
            &["ip", "addr"],
            &["nft", "list", "ruleset"],
        ] {
            eprintln!("{}", t.gw.exec(cmd));
        }
    }
    // SNAT: the external host sees the EIP.
    assert_eq!(
        peer_seen(&t.pod, "203.0.113.7:7001", SHORT).unwrap(),
        "198.18.77.10"
    );
    // FIP outbound: the pod's own floating IP.
    assert_eq!(peer_seen(&t.pod2, "203.0.113.7:7001", SHORT).unwrap(), fip);
    // DNAT: EIP:8080 reaches the pod's port 80, which sees the external host.
    assert_eq!(
        peer_seen(&t.ext, "198.18.77.20:8080", SHORT).unwrap(),
        "198.18.77.1"
    );
    // FIP inbound.
    assert_eq!(
        peer_seen(&t.ext, "198.18.77.30:80", SHORT).unwrap(),
        "198.18.77.1"
    );
    // The pod's main table is untouched (its default stays on eth0): forwarded traffic uses
    // the gateway's table.
    let table =
        t.gw.exec(&["ip", "route", "show", "table", &ROUTE_TABLE.to_string()]);
    assert!(
        table.contains("default via 198.18.77.1 dev net2"),
        "{table}"
    );
    assert!(
        t.gw.exec(&["ip", "route"])
            .contains("default via 172.31.0.1 dev eth0")
    );

    // A client beyond the external gateway (its source routed via eth0 by the main table)
    // reaches the DNAT even with strict reverse-path filtering configured.
    t.ext
        .ip("route replace 198.18.77.0/24 dev eth0 src 203.0.113.7");
    assert_eq!(
        peer_seen(&t.ext, "198.18.77.20:8080", SHORT).unwrap(),
        "203.0.113.7"
    );
    t.ext
        .ip("route replace 198.18.77.0/24 dev eth0 src 198.18.77.1");

    // Idempotent: nothing changes the second time.
    let again = applier.apply(&desired).await.unwrap();
    assert_eq!((again.addresses, again.routes), (0, 0));

    // Drift is repaired: an EIP removed and a rule flushed by hand come back.
    t.gw.ip("addr del 198.18.77.20/24 dev net2");
    t.gw.exec(&["nft", "flush", "chain", "ip", nft::TABLE, "prerouting"]);
    let repaired = applier.apply(&desired).await.unwrap();
    assert_eq!(repaired.addresses, 1);
    assert_eq!(
        peer_seen(&t.ext, "198.18.77.20:8080", SHORT).unwrap(),
        "198.18.77.1"
    );

    // Fewer objects: the DNAT and its EIP go, the rest stays; the attachment address stays.
    let fewer = Ruleset {
        prerouting: ruleset.prerouting[1..].to_vec(),
        postrouting: ruleset.postrouting.clone(),
        ..Default::default()
    };
    let d2 = t.desired(&["198.18.77.10/24", "198.18.77.30/24"], fewer);
    assert_eq!(applier.apply(&d2).await.unwrap().addresses, 1);
    assert!(peer_seen(&t.ext, "198.18.77.20:8080", SHORT).is_err());
    assert_eq!(
        peer_seen(&t.pod, "203.0.113.7:7001", SHORT).unwrap(),
        "198.18.77.10"
    );
    let addrs =
        t.gw.exec(&["ip", "-4", "-o", "addr", "show", "dev", "net2"]);
    assert!(
        addrs.contains("198.18.77.2/24") && !addrs.contains("198.18.77.20"),
        "{addrs}"
    );

    // An interface that is not there: a clear error, nothing panics.
    let mut missing = d2.clone();
    missing.external_interface = "net9".into();
    let err = applier.apply(&missing).await.unwrap_err();
    assert!(err.to_string().contains("net9"), "{err}");
}

/// A TCP server in a namespace that reads everything and answers with the byte count.
struct Sink {
    /// Stops and joins the server thread on drop.
    _server: PeerEcho,
}

impl Sink {
    fn start(ns: &TestNs, port: u16) -> Self {
        let listener = ns
            .netns()
            .run(|| TcpListener::bind(("0.0.0.0", port)))
            .unwrap()
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let mut buf = Vec::new();
                        let n = s.read_to_end(&mut buf).unwrap_or(0);
                        let _ = s.write_all(n.to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            _server: PeerEcho {
                stop,
                thread: Some(thread),
            },
        }
    }
}

/// Sends `bytes` from `ns` to `to` and returns how long until the server confirmed them all.
fn send_timed(ns: &TestNs, to: &str, bytes: usize) -> Duration {
    let addr: SocketAddr = to.parse().unwrap();
    ns.netns()
        .run(move || {
            let start = Instant::now();
            let mut s = TcpStream::connect_timeout(&addr, SHORT).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.write_all(&vec![7u8; bytes]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).unwrap();
            assert_eq!(answer, bytes.to_string());
            start.elapsed()
        })
        .unwrap()
}

/// 3 MB in through a DNAT (from the external host to EIP `dnat_eip`) and out through the SNAT
/// (from the pod via EIP `snat_eip`), timed without limits and then with `ingress`/`egress` as
/// the QoS chains (both 8 Mbit/s, 64 KiB burst); the nft text must hold `shown`, the limited
/// transfers must be slow, and full speed must come back without the limits.
async fn slowed_by(
    snat_eip: &str,
    dnat_eip: &str,
    ports: (u16, u16),
    ingress: Vec<Match>,
    egress: Vec<Match>,
    shown: &[&str],
) {
    let t = Topology::new();
    let applier = Applier::new(t.gw.netns()).unwrap();
    let (ext_port, pod_port) = ports;
    let _ext_sink = Sink::start(&t.ext, ext_port);
    let _pod_sink = Sink::start(&t.pod, pod_port);
    let nat = Ruleset {
        prerouting: vec![dnat(dnat_eip, 8080, "10.77.1.10", pod_port, "dnat/sink")],
        postrouting: vec![snat("10.77.1.0/24", snat_eip, "snat/all")],
        ..Default::default()
    };
    let eips = [format!("{snat_eip}/24"), format!("{dnat_eip}/24")];
    let eips: Vec<&str> = eips.iter().map(String::as_str).collect();
    applier.apply(&t.desired(&eips, nat.clone())).await.unwrap();
    const BYTES: usize = 3_000_000;
    let (to_pod, to_ext) = (
        format!("{dnat_eip}:8080"),
        format!("203.0.113.7:{ext_port}"),
    );
    let free_in = send_timed(&t.ext, &to_pod, BYTES);
    let free_out = send_timed(&t.pod, &to_ext, BYTES);

    // 8 Mbit/s = 1 MB/s each way; the kernel's bucket holds 1 s at the rate plus the burst.
    let limit = Action::DropOver {
        bytes_per_second: 1_000_000,
        burst: 64 * 1024,
    };
    let limited = Ruleset {
        qos_ingress: vec![Rule {
            matches: ingress,
            action: limit.clone(),
            comment: "qos/q/in".into(),
        }],
        qos_egress: vec![Rule {
            matches: egress,
            action: limit,
            comment: "qos/q/out".into(),
        }],
        ..nat.clone()
    };
    applier.apply(&t.desired(&eips, limited)).await.unwrap();
    let text = t.gw.exec(&["nft", "list", "table", "ip", nft::TABLE]);
    assert!(
        text.contains("type filter hook prerouting priority raw")
            && shown.iter().all(|s| text.contains(s)),
        "{text}"
    );
    let slow_in = send_timed(&t.ext, &to_pod, BYTES);
    let slow_out = send_timed(&t.pod, &to_ext, BYTES);
    eprintln!("3 MB: in {free_in:?} -> {slow_in:?}, out {free_out:?} -> {slow_out:?}");
    // At 1 MB/s, 3 MB minus the ~1.06 MB bucket needs at least ~1.9 s.
    assert!(
        slow_in >= Duration::from_millis(1700),
        "ingress {slow_in:?}"
    );
    assert!(
        slow_out >= Duration::from_millis(1700),
        "egress {slow_out:?}"
    );
    assert!(free_in * 3 < slow_in && free_out * 3 < slow_out);

    // The limits go with the policy: full speed again.
    applier.apply(&t.desired(&eips, nat)).await.unwrap();
    assert!(send_timed(&t.ext, &to_pod, BYTES) * 3 < slow_in);
}

#[tokio::test]
async fn a_qos_limit_on_an_eip_slows_its_traffic_both_ways() {
    slowed_by(
        "198.18.77.10",
        "198.18.77.20",
        (7002, 9000),
        vec![Match::Daddr("198.18.77.20".parse().unwrap())],
        vec![Match::Saddr("198.18.77.10/32".parse().unwrap())],
        &["ip daddr 198.18.77.20 limit rate over 1000000 bytes/second burst 64 kbytes drop"],
    )
    .await;
}

/// A VpcNatGateway's own QoSPolicy (bindingType NATGW): one limit on everything that crosses
/// the external interface, whichever EIP it uses.
#[tokio::test]
async fn a_gateway_wide_limit_slows_every_eip_on_the_external_leg() {
    slowed_by(
        "198.18.77.11",
        "198.18.77.21",
        (7003, 9001),
        vec![Match::Iifname("net2".into())],
        vec![Match::Oifname("net2".into())],
        &[
            "iifname \"net2\" limit rate over 1000000 bytes/second burst 64 kbytes drop",
            "oifname \"net2\" limit rate over 1000000 bytes/second burst 64 kbytes drop",
        ],
    )
    .await;
}

// ---- the agent binary against a real API server ----

mod api {
    use super::*;
    use crds::{
        Condition, IptablesDnatRule, IptablesEIP, IptablesFIPRule, IptablesSnatRule, Subnet,
        VpcNatGateway,
    };
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    use kube::runtime::wait::await_condition;
    use kube::{Api, Client};

    pub const WAIT: Duration = Duration::from_secs(30);

    pub async fn create<K>(client: &Client, obj: serde_json::Value)
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let o: K = serde_json::from_value(obj).unwrap();
        Api::<K>::all(client.clone())
            .create(&PostParams::default(), &o)
            .await
            .unwrap();
    }

    pub async fn delete<K>(client: &Client, name: &str)
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::<K>::all(client.clone())
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    fn ready_condition(c: &[Condition]) -> Option<&Condition> {
        crds::condition::find_condition(c, "Ready")
    }

    /// Waits for the Ready condition of `name` to have `reason`; returns its message.
    pub async fn wait_reason<K>(client: &Client, name: &str, reason: &str) -> String
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug
            + Send
            + 'static,
    {
        let api = Api::<K>::all(client.clone());
        let want = reason.to_owned();
        let cond = move |o: Option<&K>| {
            o.and_then(|o| {
                let v = serde_json::to_value(o).ok()?;
                let conds: Vec<Condition> =
                    serde_json::from_value(v["status"]["conditions"].clone()).ok()?;
                ready_condition(&conds).map(|c| c.reason == want)
            })
            .unwrap_or(false)
        };
        let found = tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond))
            .await
            .unwrap_or_else(|_| panic!("{name} never got Ready reason {reason}"))
            .unwrap()
            .unwrap();
        let v = serde_json::to_value(&found).unwrap();
        v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .map(|c| c["message"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    pub async fn status_of<K>(client: &Client, name: &str) -> serde_json::Value
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let o = Api::<K>::all(client.clone()).get(name).await.unwrap();
        serde_json::to_value(o).unwrap()["status"].clone()
    }

    pub async fn set_network_status(client: &Client, pod: &str, value: &str) {
        let patch = serde_json::json!({"metadata": {"annotations": {
            "k8s.v1.cni.cncf.io/network-status": value}}});
        Api::<Pod>::namespaced(client.clone(), "default")
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    pub type Eip = IptablesEIP;
    pub type Fip = IptablesFIPRule;
    pub type Snat = IptablesSnatRule;
    pub type Dnat = IptablesDnatRule;
    pub type Gw = VpcNatGateway;
    pub type Qos = crds::QoSPolicy;

    pub async fn set_eip_qos(client: &Client, eip: &str, policy: &str) {
        let patch = serde_json::json!({"spec": {"qosPolicy": policy}});
        Api::<Eip>::all(client.clone())
            .patch(eip, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    pub type Sn = Subnet;
}

/// The agent binary running for `gw1` on the topology's gateway namespace.
struct AgentProcess {
    child: Child,
}

impl AgentProcess {
    fn start(kubeconfig: &Path, netns: &Path, ready: &Path, log: &Path) -> Self {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kube-ovn-daemon"))
            .args(["nat-gateway", "--gateway", "gw1"])
            .args([
                "--lan-network",
                "default/lan",
                "--external-network",
                "default/ext",
            ])
            .args([
                "--pod-name",
                "vpc-nat-gw-gw1-0",
                "--pod-namespace",
                "default",
            ])
            .arg("--netns")
            .arg(netns)
            .arg("--ready-file")
            .arg(ready)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Self { child }
    }

    fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints the agent's log when the test fails.
struct ShowLogOnPanic(PathBuf);

impl Drop for ShowLogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "agent log {}:\n{}",
                self.0.display(),
                std::fs::read_to_string(&self.0).unwrap_or_default()
            );
        }
    }
}

const NETWORK_STATUS: &str = r#"[{"name":"cluster","interface":"eth0","ips":["172.17.0.5"]},{"name":"default/lan","interface":"net1","ips":["10.77.1.254"]},{"name":"default/ext","interface":"net2","ips":["198.18.77.2"]}]"#;

/// Waits (on the file system, bounded) for the readiness file to be `present` or not, checking
/// through the binary's own probe subcommand.
fn wait_ready_probe(ready: &Path, present: bool) {
    until(Duration::from_secs(30), "the readiness probe", || {
        let ok = Command::new(env!("CARGO_BIN_EXE_kube-ovn-daemon"))
            .args(["nat-gateway-ready", "--ready-file"])
            .arg(ready)
            .status()
            .unwrap()
            .success();
        if ok != present {
            std::thread::sleep(Duration::from_millis(50));
        }
        ok == present
    });
}

#[tokio::test]
async fn the_agent_binary_realises_the_objects_reports_them_and_restores_after_a_restart() {
    use api::*;
    use serde_json::json;

    let cp = e2e::k8s::ControlPlane::start().await.unwrap();
    let client = cp.client();
    e2e::cluster::install_crds(&client).await.unwrap();
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("natgw-ready");
    let log = dir.path().join("agent.log");
    let _show_log = ShowLogOnPanic(log.clone());

    // The manual's gateway with an external network; the pod as Multus would annotate it.
    create::<Gw>(
        &client,
        json!({"apiVersion":"kubeovn.io/v1","kind":"VpcNatGateway",
        "metadata":{"name":"gw1"},"spec":{"vpc":"vpc1","subnet":"lan","lanIp":"10.77.1.254"}}),
    )
    .await;
    create::<Sn>(&client, json!({"apiVersion":"kubeovn.io/v1","kind":"Subnet",
        "metadata":{"name":"lan"},"spec":{"vpc":"vpc1","cidrBlock":"10.77.1.0/24","provider":"lan.default.ovn"}})).await;
    create::<Sn>(&client, json!({"apiVersion":"kubeovn.io/v1","kind":"Subnet",
        "metadata":{"name":"ext"},"spec":{"cidrBlock":"198.18.77.0/24","gateway":"198.18.77.1","provider":"ext.default"}})).await;
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion":"v1","kind":"Pod",
        "metadata":{"name":"vpc-nat-gw-gw1-0","namespace":"default",
            "annotations":{"k8s.v1.cni.cncf.io/network-status": NETWORK_STATUS}},
        "spec":{"containers":[{"name":"agent","image":"kube-ovn-cni"}]}}))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "default")
        .create(&Default::default(), &pod)
        .await
        .unwrap();

    let eip = |name: &str, ip: &str| {
        json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesEIP",
        "metadata":{"name":name},"spec":{"natGwDp":"gw1","v4ip":ip}})
    };
    create::<Eip>(&client, eip("eip-snat", "198.18.77.10")).await;
    create::<Eip>(&client, eip("eip-dnat", "198.18.77.20")).await;
    create::<Eip>(&client, eip("eip-fip", "198.18.77.30")).await;
    create::<Eip>(&client, eip("eip-outside", "10.9.9.9")).await;
    create::<Eip>(&client, eip("eip-waiting", "")).await;
    create::<Snat>(
        &client,
        json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesSnatRule",
        "metadata":{"name":"snat1"},"spec":{"eip":"eip-snat","internalCIDR":"10.77.1.0/24"}}),
    )
    .await;
    let dnat = |name: &str, port: &str, to: &str| {
        json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesDnatRule",
        "metadata":{"name":name},"spec":{"eip":"eip-dnat","externalPort":port,"protocol":"tcp",
        "internalIp":to,"internalPort":"80"}})
    };
    create::<Dnat>(&client, dnat("dnat1", "8080", "10.77.1.10")).await;
    create::<Fip>(
        &client,
        json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesFIPRule",
        "metadata":{"name":"fip1"},"spec":{"eip":"eip-fip","internalIp":"10.77.1.11"}}),
    )
    .await;
    // Bad ones (created within the same second as the good ones, so the names decide: the
    // later name loses): a second FIP on the same EIP, a rule on a missing EIP, a DNAT port clash.
    create::<Fip>(
        &client,
        json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesFIPRule",
        "metadata":{"name":"fip2-late"},"spec":{"eip":"eip-fip","internalIp":"10.77.1.12"}}),
    )
    .await;
    create::<Fip>(
        &client,
        json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesFIPRule",
        "metadata":{"name":"fip-lost"},"spec":{"eip":"no-such-eip","internalIp":"10.77.1.13"}}),
    )
    .await;
    create::<Dnat>(&client, dnat("dnat2-clash", "8080", "10.77.1.11")).await;

    let _ext_echo = PeerEcho::start(&t.ext, 7001);
    let _pod_echo = PeerEcho::start(&t.pod, 80);
    let _pod2_echo = PeerEcho::start(&t.pod2, 80);
    let mut agent = AgentProcess::start(cp.kubeconfig(), &t.gw.path(), &ready, &log);

    for (name, kind) in [
        ("eip-snat", 0),
        ("eip-dnat", 0),
        ("eip-fip", 0),
        ("snat1", 1),
        ("dnat1", 2),
        ("fip1", 3),
    ] {
        match kind {
            0 => wait_reason::<Eip>(&client, name, "Applied").await,
            1 => wait_reason::<Snat>(&client, name, "Applied").await,
            2 => wait_reason::<Dnat>(&client, name, "Applied").await,
            _ => wait_reason::<Fip>(&client, name, "Applied").await,
        };
    }
    wait_ready_probe(&ready, true);
    let s = status_of::<Eip>(&client, "eip-snat").await;
    assert_eq!(
        (s["ready"].as_bool(), s["ip"].as_str(), s["nat"].as_str()),
        (Some(true), Some("198.18.77.10"), Some("snat"))
    );
    let s = status_of::<Dnat>(&client, "dnat1").await;
    assert_eq!(
        (
            s["ready"].as_bool(),
            s["v4ip"].as_str(),
            s["natGwDp"].as_str()
        ),
        (Some(true), Some("198.18.77.20"), Some("gw1"))
    );
    // Every status write is the agent's field manager's.
    let o = kube::Api::<Eip>::all(client.clone())
        .get("eip-fip")
        .await
        .unwrap();
    assert!(
        o.metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .any(|m| m.manager.as_deref() == Some("kube-ovn-nat-gateway")
                && m.subresource.as_deref() == Some("status"))
    );

    // QoS: a policy bound to eip-dnat limits it; a missing one is reported, NAT still works.
    create::<Qos>(
        &client,
        json!({"apiVersion":"kubeovn.io/v1","kind":"QoSPolicy",
        "metadata":{"name":"q1"},"spec":{"bindingType":"EIP","bandwidthLimitRules":[
            {"name":"in","direction":"ingress","rateMax":"8"}]}}),
    )
    .await;
    set_eip_qos(&client, "eip-dnat", "q1").await;
    set_eip_qos(&client, "eip-fip", "no-such-policy").await;
    until(WAIT, "the QoS limit in the table", || {
        t.gw.try_exec(&["nft", "list", "chain", "ip", nft::TABLE, "qos-ingress"])
            .contains("ip daddr 198.18.77.20 limit rate over 1000000 bytes/second")
    });
    let m = wait_reason::<Eip>(&client, "eip-fip", "QoSPolicyNotFound").await;
    assert!(m.contains("no-such-policy"), "{m}");
    set_eip_qos(&client, "eip-fip", "").await;
    wait_reason::<Eip>(&client, "eip-fip", "Applied").await;
    let s = status_of::<Eip>(&client, "eip-dnat").await;
    assert_eq!(s["qosPolicy"], "q1");

    // The bad ones say why.
    wait_reason::<Eip>(&client, "eip-outside", "OutsideExternalSubnet").await;
    wait_reason::<Eip>(&client, "eip-waiting", "WaitingForAddress").await;
    let m = wait_reason::<Fip>(&client, "fip2-late", "EipInUse").await;
    assert!(m.contains("fip1"), "{m}");
    wait_reason::<Fip>(&client, "fip-lost", "EipNotFound").await;
    let m = wait_reason::<Dnat>(&client, "dnat2-clash", "PortInUse").await;
    assert!(m.contains("dnat1"), "{m}");

    // Real packets: SNAT, DNAT, FIP both ways.
    assert_eq!(
        peer_seen(&t.pod, "203.0.113.7:7001", SHORT).unwrap(),
        "198.18.77.10"
    );
    assert_eq!(
        peer_seen(&t.ext, "198.18.77.20:8080", SHORT).unwrap(),
        "198.18.77.1"
    );
    assert_eq!(
        peer_seen(&t.pod2, "203.0.113.7:7001", SHORT).unwrap(),
        "198.18.77.30"
    );
    assert_eq!(
        peer_seen(&t.ext, "198.18.77.30:80", SHORT).unwrap(),
        "198.18.77.1"
    );

    // Deleting a rule stops its traffic; the clash it shadowed takes its place.
    delete::<Dnat>(&client, "dnat1").await;
    wait_reason::<Dnat>(&client, "dnat2-clash", "Applied").await;
    until(WAIT, "port 8080 forwarded to the other pod", || {
        t.gw.try_exec(&["nft", "list", "chain", "ip", nft::TABLE, "prerouting"])
            .contains("dnat to 10.77.1.11:80")
    });
    assert_eq!(
        peer_seen(&t.ext, "198.18.77.20:8080", SHORT).unwrap(),
        "198.18.77.1"
    );
    delete::<Dnat>(&client, "dnat2-clash").await;
    until(WAIT, "DNAT traffic to stop", || {
        peer_seen(&t.ext, "198.18.77.20:8080", SHORT).is_err()
    });
    delete::<Snat>(&client, "snat1").await;
    until(WAIT, "SNAT traffic to stop", || {
        peer_seen(&t.pod, "203.0.113.7:7001", SHORT).is_err()
    });
    create::<Snat>(
        &client,
        json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesSnatRule",
        "metadata":{"name":"snat2"},"spec":{"eip":"eip-snat","internalCIDR":"10.77.1.0/24"}}),
    )
    .await;
    wait_reason::<Snat>(&client, "snat2", "Applied").await;

    // A restart, after the namespace lost everything: all rules come back from the API alone.
    agent.stop();
    t.gw.exec(&["nft", "delete", "table", "ip", nft::TABLE]);
    t.gw.ip("addr flush dev net2");
    t.gw.ip("addr add 198.18.77.2/24 dev net2");
    assert!(peer_seen(&t.pod, "203.0.113.7:7001", SHORT).is_err());
    let mut agent = AgentProcess::start(cp.kubeconfig(), &t.gw.path(), &ready, &log);
    wait_ready_probe(&ready, true);
    until(WAIT, "SNAT traffic after the restart", || {
        peer_seen(&t.pod, "203.0.113.7:7001", SHORT).is_ok_and(|p| p == "198.18.77.10")
    });
    assert_eq!(
        peer_seen(&t.ext, "198.18.77.30:80", SHORT).unwrap(),
        "198.18.77.1"
    );

    // A broken network-status: not ready, every object says why; the rules stay in place.
    set_network_status(&client, "vpc-nat-gw-gw1-0", "{not json").await;
    let m = wait_reason::<Fip>(&client, "fip1", "GatewayNotReady").await;
    assert!(m.contains("NetworkStatusInvalid"), "{m}");
    wait_ready_probe(&ready, false);
    assert_eq!(
        peer_seen(&t.pod2, "203.0.113.7:7001", SHORT).unwrap(),
        "198.18.77.30"
    );
    // An interface that is not in the namespace: the apply fails and says which.
    set_network_status(
        &client,
        "vpc-nat-gw-gw1-0",
        &NETWORK_STATUS.replace("net2", "net7"),
    )
    .await;
    let m = wait_reason::<Fip>(&client, "fip1", "ApplyFailed").await;
    assert!(m.contains("net7"), "{m}");
    set_network_status(&client, "vpc-nat-gw-gw1-0", NETWORK_STATUS).await;
    wait_reason::<Fip>(&client, "fip1", "Applied").await;
    wait_ready_probe(&ready, true);
    agent.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("panicked"), "{logged}");
}

/// `struct __user_cap_header_struct` of `linux/capability.h`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct` of `linux/capability.h`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops CAP_SYS_ADMIN from the calling thread's effective set (capabilities are per thread;
/// threads it creates inherit them).
#[allow(unsafe_code)] // Two raw syscalls libc has no wrapper for; nothing else to reach them.
fn drop_sys_admin_in_this_thread() {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_SYS_ADMIN: u32 = 21;
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) with a valid header and room for the two data structs of version 3.
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(got, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_SYS_ADMIN);
    // SAFETY: capset(2) with the header and data capget filled in, one capability less.
    let set = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(set, 0, "capset: {}", std::io::Error::last_os_error());
}

/// The agent in a gateway pod has NET_ADMIN and NET_RAW, not SYS_ADMIN, and manages its own
/// namespace: working in it must not need setns(2) (which wants SYS_ADMIN even for the
/// namespace one is in; the first real-node run crash-looped on exactly that). Another
/// namespace still needs it, which shows the capability is really gone here.
#[test]
fn the_own_namespace_needs_no_sys_admin() {
    let other = TestNs::new("caps");
    let other_path = other.path();
    std::thread::spawn(move || {
        drop_sys_admin_in_this_thread();
        let own = Netns::open(Path::new("/proc/self/ns/net")).unwrap();
        assert_eq!(own.run(|| 42).unwrap(), 42);
        let err = Netns::open(&other_path).unwrap().run(|| 0).unwrap_err();
        assert!(err.to_string().contains("Operation not permitted"), "{err}");
    })
    .join()
    .unwrap();
}
