//! The seed's first example end to end on the local cluster (L2): the NAD, Vpc and Subnet
//! applied with kubectl exactly as the manual writes them, annotated pods on two nodes getting
//! `net1` from OVN next to `eth0` from the primary CNI, talking across nodes over net1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use e2e::cluster::Cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

/// A second pod on `node` (the one the seed's pod did not land on).
fn peer(node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: peer\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: default/kube-ovn-vpc-network\nspec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

const WAIT: Duration = Duration::from_secs(90);

fn net1_ip(pod: &Pod) -> String {
    let status: serde_json::Value =
        serde_json::from_str(&pod.annotations()["k8s.v1.cni.cncf.io/network-status"]).unwrap();
    let net1 = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["interface"] == "net1")
        .unwrap();
    assert_eq!(net1["name"], "default/kube-ovn-vpc-network");
    let eth0 = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["interface"] == "eth0")
        .unwrap();
    assert_eq!(
        eth0["default"], true,
        "eth0 stays the primary CNI's default network"
    );
    net1["ips"][0].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_example_gives_pods_net1_on_ovn_across_nodes() {
    let mut cluster = Cluster::start(e2e::cluster::node_count(2, 2))
        .await
        .unwrap();
    cluster.apply_yaml(&crds::seed::first_example()).unwrap();
    let a = cluster
        .wait_running("default", "multi-network-pod", WAIT)
        .await
        .unwrap();
    // From here on nothing may warn or fail (checked at the end).
    let quiet = cluster.quiet_mark().await.unwrap();
    // The seed's pod has no nodeName: the scheduler picks its node; the peer goes elsewhere.
    let node_a = a.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
    let other = cluster
        .node_names()
        .into_iter()
        .find(|n| *n != node_a)
        .unwrap();
    cluster.apply_yaml(&peer(&other)).unwrap();
    let b = cluster.wait_running("default", "peer", WAIT).await.unwrap();
    let (ip_a, ip_b) = (net1_ip(&a), net1_ip(&b));
    assert!(
        ip_a.starts_with("10.100.") && ip_b.starts_with("10.100."),
        "{ip_a} {ip_b}"
    );

    // Inside the pod: eth0 from the primary CNI and net1 from Kube-OVN.
    let addr = cluster
        .exec("default", "multi-network-pod", &["ip", "addr", "show"])
        .unwrap();
    let addr = String::from_utf8_lossy(&addr.stdout).into_owned();
    assert!(
        addr.contains("eth0") && addr.contains("net1") && addr.contains(&format!("{ip_a}/16")),
        "{addr}"
    );
    // No default route through net1 unless asked: eth0 keeps the default route.
    let routes = cluster
        .exec("default", "multi-network-pod", &["ip", "route", "show"])
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("default") && l.contains("eth0")),
        "{routes}"
    );
    assert!(
        !routes
            .lines()
            .any(|l| l.starts_with("default") && l.contains("net1")),
        "{routes}"
    );

    // net1 carries traffic across nodes (geneve); eth0 keeps working (its gateway answers).
    let ping = cluster
        .exec(
            "default",
            "multi-network-pod",
            &["ping", "-c", "1", "-w", "15", &ip_b],
        )
        .unwrap();
    assert!(
        ping.status.success(),
        "net1 ping failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let gateway = routes
        .lines()
        .find(|l| l.starts_with("default") && l.contains("eth0"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "via").nth(1))
        .unwrap_or_else(|| panic!("no default route via a gateway on eth0: {routes}"))
        .to_owned();
    let ping = cluster
        .exec(
            "default",
            "multi-network-pod",
            &["ping", "-c", "1", "-w", "5", &gateway],
        )
        .unwrap();
    assert!(
        ping.status.success(),
        "eth0 ping failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    cluster.check_running().unwrap();

    // Deleting the pod runs CNI DEL and frees its address: its LSP leaves NB.
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let uid = a.uid().unwrap();
    pods.delete("multi-network-pod", &DeleteParams::default())
        .await
        .unwrap();
    cluster
        .wait_deleted("default", "multi-network-pod", &uid, WAIT)
        .await
        .unwrap();
    let lsp = "multi-network-pod.default.kube-ovn-vpc-network.default.ovn";
    let client = cluster.client();
    let ips: Api<crds::IP> = Api::all(client);
    tokio::time::timeout(
        WAIT,
        kube::runtime::wait::await_condition(ips, lsp, |o: Option<&crds::IP>| o.is_none()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!cluster.nbctl(&["show"]).unwrap().contains(lsp));
    cluster.assert_quiet(&quiet, &[]).await.unwrap();
}
