//! `kubectl ko`'s database reads on real OVN (L1): OVN central, one node with ovs-vswitchd and
//! ovn-controller, a port plugged as the daemon plugs it. The ctl tools run locally against the
//! lab's addresses (`--nb`, `--sb`, `--ovs`), as in the L2 test (e2e/tests/kubectl_ko.rs);
//! no API server is needed for these reads. Checks the shapes `--format=json` really has, the
//! chassis and `ovn-installed` as ovn-controller really sets them, and an `ovn-trace` of the
//! microflow to a second port on the switch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use daemon::ko::chain::{BindingFacts, Lookup};
use daemon::ko::cli::Protocol;
use daemon::ko::gather::Gatherer;
use daemon::ko::tools::{Tool, Tools};
use daemon::ko::trace::{Source, microflow};
use e2e::ovn::{OvnCentral, OvnNode, unique};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_read_what_ovn_controller_and_northd_wrote() {
    let central = OvnCentral::start().unwrap();
    let mut node = OvnNode::start("kovn-ko").unwrap();
    let chassis = unique("node");
    node.join(&central.sb_remote(), &chassis).unwrap();
    let (a, b) = ("a.default.net.default.ovn", "b.default.net.default.ovn");
    central.nbctl(&["ls-add", "s1"]).unwrap();
    for (port, addresses) in [
        (a, "0a:00:00:00:00:01 10.0.0.2"),
        (b, "0a:00:00:00:00:02 10.0.0.3"),
    ] {
        central
            .nbctl(&[
                "lsp-add",
                "s1",
                port,
                "--",
                "lsp-set-addresses",
                port,
                addresses,
            ])
            .unwrap();
    }
    node.plug_internal("tap1", a).unwrap();

    let tools = Tools {
        nb: Some(central.nb_remote()),
        sb: Some(central.sb_remote()),
        ovs: BTreeMap::from([(chassis.clone(), node.db_remote())]),
        kubectl: "kubectl".into(),
        kubeconfig: None,
        namespace: "kube-system".into(),
    };
    // No API server: these reads never use it.
    let client =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let g = Gatherer::new(client, tools.clone());

    // ovn-controller claims the port and marks the interface; both are checked through the
    // ctl tools, retried (bounded) since they have no event to wait on from outside.
    let started = Instant::now();
    loop {
        let binding = g.binding(a).await;
        let iface = g.interface(&chassis, a).await;
        let claimed = binding
            == Lookup::Found(BindingFacts {
                chassis: Some(chassis.clone()),
            });
        if claimed && matches!(&iface, Lookup::Found(i) if i.ovn_installed && i.name == "tap1") {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "binding {binding:?}, interface {iface:?} (logs: {})",
            central.log_dir().display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Lookup::Found(lsp) = g.lsp(a).await else {
        panic!("no LSP {a}")
    };
    assert_eq!(lsp.switches, ["s1"]);
    assert_eq!(lsp.addresses, ["0a:00:00:00:00:01 10.0.0.2"]);
    assert_eq!(g.lsp("nope").await, Lookup::Missing);
    assert_eq!(g.binding("nope").await, Lookup::Missing);
    assert_eq!(g.interface(&chassis, "nope").await, Lookup::Missing);
    // b is in NB but on no node: bound to no chassis.
    assert_eq!(
        g.binding(b).await,
        Lookup::Found(BindingFacts { chassis: None })
    );

    // The trace from a to b's address ends at b's port.
    let target = "10.0.0.3".parse().unwrap();
    let dst = g.mac_on_switch("s1", target).await.unwrap();
    assert_eq!(dst, "0a:00:00:00:00:02");
    let ips = ["10.0.0.2".parse().unwrap()];
    let source = Source {
        port: a,
        mac: "0a:00:00:00:00:01",
        ips: &ips,
    };
    for (protocol, port) in [(Protocol::Icmp, None), (Protocol::Tcp, Some(80))] {
        let flow = microflow(&source, &dst, target, protocol, port).unwrap();
        let out = g
            .run(Tool::Trace, None, &["s1".to_owned(), flow.clone()])
            .await
            .unwrap();
        assert!(
            out.lines()
                .any(|l| l.contains("output to") && l.contains(b)),
            "{flow}:\n{out}"
        );
    }
}
