//! Bandwidth limits measured on the local cluster (L2): the seed's QoS annotations on a pod,
//! real TCP throughput with iperf3 across nodes (through Geneve), against an unlimited pod on
//! the same node as the baseline. The limits are OVN NB QoS rows enforced by OVN meters.
//!
//! Figures go to BENCHMARKS.md ("Attachment QoS"); the test prints them
//! (`cargo test -p e2e --test qos -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::{Duration, Instant};

use e2e::cluster::Cluster;
use e2e::scenario::addr_of;

const WAIT: Duration = Duration::from_secs(90);
/// How long the client may keep retrying while the server is not listening yet.
const CONNECT_DEADLINE: Duration = Duration::from_secs(20);
const PORT: &str = "5201";
const SECONDS: &str = "3";

const NETWORK: &str = r#"
apiVersion: kubeovn.io/v1
kind: Vpc
metadata:
  name: vpc-qos
spec:
  namespaces:
  - default
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: qos-network
  namespace: default
spec:
  config: |
    {
      "cniVersion": "0.3.1",
      "type": "kube-ovn",
      "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
      "provider": "qos-network.default.ovn"
    }
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: qos-subnet
spec:
  vpc: vpc-qos
  cidr: "10.110.0.0/16"
  provider: qos-network.default.ovn
"#;

fn pod(name: &str, node: &str, rates: &[(&str, &str)]) -> String {
    let rates: String = rates
        .iter()
        .map(|(k, v)| format!("    ovn.kubernetes.io/{k}: \"{v}\"\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: default/qos-network\n{rates}spec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

/// Mbit/s received in one iperf3 run from `client` to `server` (`reverse`: the server sends).
///
/// The server runs in the background in its pod's netns (one test, `-1`, and bounded by
/// `timeout` so nothing outlives the test); the client retries only while the server's socket
/// is not listening yet (connection refused), bounded by [`CONNECT_DEADLINE`].
fn throughput(cluster: &Cluster, client: &str, server: &str, reverse: bool) -> f64 {
    let ip = addr_of(cluster, server);
    let serve = format!("timeout 30 iperf3 -s -1 -p {PORT} >/dev/null 2>&1 &");
    let out = cluster
        .exec("default", server, &["sh", "-c", &serve])
        .unwrap();
    assert!(out.status.success(), "starting the iperf3 server: {out:?}");
    let mut args = vec!["iperf3", "-c", &ip, "-p", PORT, "-t", SECONDS, "-J"];
    if reverse {
        args.push("-R");
    }
    let started = Instant::now();
    let report: serde_json::Value = loop {
        let out = cluster.exec("default", client, &args).unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("iperf3 output is not JSON ({e}): {out:?}"));
        let refused = report["error"]
            .as_str()
            .is_some_and(|e| e.contains("Connection refused"));
        if !refused {
            assert!(out.status.success(), "iperf3 {args:?} failed: {report}");
            break report;
        }
        assert!(
            started.elapsed() < CONNECT_DEADLINE,
            "iperf3 server in {server} never listened"
        );
    };
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no sum_received in {report}"))
        / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_rates_limit_real_throughput_across_nodes() {
    let cluster = Cluster::start(2).await.unwrap();
    cluster.apply_yaml(NETWORK).unwrap();
    cluster.apply_yaml(&pod("sink", "node-2", &[])).unwrap();
    cluster.apply_yaml(&pod("free", "node-1", &[])).unwrap();
    cluster
        .apply_yaml(&pod(
            "limited",
            "node-1",
            &[("egress_rate", "10"), ("ingress_rate", "20")],
        ))
        .unwrap();
    for p in ["sink", "free", "limited"] {
        cluster.wait_running("default", p, WAIT).await.unwrap();
    }
    let quiet = cluster.quiet_mark().await.unwrap();
    let qos = cluster.nbctl(&["qos-list", "qos-subnet"]).unwrap();
    assert!(qos.contains("rate=10000 burst=10000"), "{qos}");
    assert!(qos.contains("rate=20000 burst=20000"), "{qos}");

    let (baseline, egress, ingress) = tokio::task::block_in_place(|| {
        (
            throughput(&cluster, "free", "sink", false),
            throughput(&cluster, "limited", "sink", false),
            throughput(&cluster, "limited", "sink", true),
        )
    });
    println!(
        "QOS: unlimited {baseline:.1} Mbit/s, egress_rate=10 {egress:.1} Mbit/s, ingress_rate=20 {ingress:.1} Mbit/s ({SECONDS} s each)"
    );
    assert!(
        egress < 20.0 && egress > 2.0,
        "egress limited to 10 Mbit/s measured {egress:.1}"
    );
    assert!(
        ingress < 40.0 && ingress > 4.0,
        "ingress limited to 20 Mbit/s measured {ingress:.1}"
    );
    assert!(
        baseline > 3.0 * ingress.max(egress),
        "the unlimited pod ({baseline:.1} Mbit/s) should be far above the limits"
    );
    cluster.assert_quiet(&quiet, &[]).await.unwrap();
}
