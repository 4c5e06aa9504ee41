//! The quiet after success (L2): once the manual's examples are Running and their ports are
//! `up` (set by the real ovn-controller and ovn-northd), the things users do next must neither
//! break an attachment nor make noise: re-applying the same YAML, touching a pod, changing a QoS
//! annotation, restarting the controller. Every pod keeps its address, IP CR and logical switch
//! port, the QoS change reaches OVN, and no Warning Event and no failed reconcile is recorded
//! after the pods are Running (issue 19: every running pod's next reconcile failed on the
//! replica's `Logical_Switch_Port.up`, and no scenario reconciled a pod after its port came up).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use e2e::cluster::Cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};
use ovn_api::tables::nb;
use ovn_api::{Client, ClientConfig};

const WAIT: Duration = Duration::from_secs(90);
const PROVIDER: &str = "kube-ovn-vpc-network.default.ovn";

/// The manual's static-IP and QoS snippets on the manual's network, pinned to nodes.
const MORE_PODS: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: static-pod
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: |
      [{"name": "default/kube-ovn-vpc-network", "ips": ["10.100.0.100/16"]}]
spec:
  nodeName: node-1
  containers:
  - name: app
    image: nginx
---
apiVersion: v1
kind: Pod
metadata:
  name: qos-pod
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: default/kube-ovn-vpc-network
    ovn.kubernetes.io/ingress_rate: "1000"
    ovn.kubernetes.io/egress_rate: "1000"
spec:
  nodeName: node-2
  containers:
  - name: app
    image: nginx
"#;

const PODS: [&str; 3] = ["multi-network-pod", "static-pod", "qos-pod"];

fn lsp(pod: &str) -> String {
    format!("{pod}.default.{PROVIDER}")
}

/// (address annotation, IP CR's address) per pod: what must survive everything below.
async fn attachments(cluster: &Cluster) -> Vec<(String, String, String)> {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let ips: Api<crds::IP> = Api::all(cluster.client());
    let mut out = Vec::new();
    for name in PODS {
        let p = pods.get(name).await.unwrap();
        let annotated = p
            .annotations()
            .get("kube-ovn-vpc-network.default.ovn.kubernetes.io/ip_address")
            .cloned()
            .unwrap_or_else(|| panic!("{name} lost its address annotation"));
        let record = ips.get(&lsp(name)).await.unwrap();
        out.push((name.to_owned(), annotated, record.spec.ip_address.clone()));
    }
    out
}

/// Waits until the pod's QoS row in `direction` has `rate` kbit/s.
async fn wait_rate(nb: &Client, pod: &str, direction: &str, kbps: i64) {
    let port = lsp(pod);
    let wanted = if direction == "from-lport" {
        format!("inport == \"{port}\"")
    } else {
        format!("outport == \"{port}\"")
    };
    nb.wait_until(WAIT, |r| {
        r.list::<nb::Qos>().is_ok_and(|rows| {
            rows.iter().any(|q| {
                q.direction == direction
                    && q.match_ == wanted
                    && q.bandwidth.get("rate") == Some(&kbps)
            })
        })
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{pod}: no {direction} QoS row at {kbps} kbit/s: {e}; NB has {:?}",
            nb.replica().list::<nb::Qos>()
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapply_qos_change_and_restart_leave_attachments_and_make_no_noise() {
    let cluster = Cluster::start(e2e::cluster::node_count(2, 2))
        .await
        .unwrap();
    let manifests = format!("{}---\n{}", crds::seed::first_example(), MORE_PODS);
    cluster.apply_yaml(&manifests).unwrap();
    for p in PODS {
        cluster.wait_running("default", p, WAIT).await.unwrap();
    }
    let nb = Client::connect(
        ClientConfig::new(cluster.nb_remote(), "OVN_Northbound")
            .typed::<nb::LogicalSwitchPort>()
            .typed::<nb::Qos>(),
    )
    .await
    .unwrap();
    // The trigger of issue 19: the ports are up (ovn-controller claimed them, northd said so).
    nb.wait_until(WAIT, |r| {
        r.list::<nb::LogicalSwitchPort>().is_ok_and(|ports| {
            PODS.iter()
                .all(|p| ports.iter().any(|l| l.name == lsp(p) && l.up == Some(true)))
        })
    })
    .await
    .unwrap_or_else(|e| panic!("ports not up: {e}; logs in {}", cluster.run_dir().display()));
    wait_rate(&nb, "qos-pod", "from-lport", 1_000_000).await;
    let before = attachments(&cluster).await;
    assert_eq!(before[1].1, "10.100.0.100", "the static address");
    let mark = cluster.quiet_mark().await.unwrap();

    // Re-apply the same manifests, touch a pod (the issue's reproduction), change a rate.
    cluster.apply_yaml(&manifests).unwrap();
    cluster
        .kubectl(&["annotate", "pod", "multi-network-pod", "touched=1"])
        .unwrap();
    cluster
        .kubectl(&[
            "annotate",
            "--overwrite",
            "pod",
            "qos-pod",
            "ovn.kubernetes.io/egress_rate=500",
        ])
        .unwrap();
    wait_rate(&nb, "qos-pod", "from-lport", 500_000).await;

    // Restart the controller; a change made afterwards is applied by the new one.
    cluster.restart_controller().unwrap();
    cluster
        .kubectl(&[
            "annotate",
            "--overwrite",
            "pod",
            "qos-pod",
            "ovn.kubernetes.io/ingress_rate=400",
        ])
        .unwrap();
    wait_rate(&nb, "qos-pod", "to-lport", 400_000).await;
    wait_rate(&nb, "qos-pod", "from-lport", 500_000).await;

    // Nothing moved, every port is still there and up, and the pods still talk.
    assert_eq!(attachments(&cluster).await, before);
    let ports = nb.replica().list::<nb::LogicalSwitchPort>().unwrap();
    for p in PODS {
        assert!(
            ports.iter().any(|l| l.name == lsp(p) && l.up == Some(true)),
            "{p}'s port is gone or down"
        );
    }
    let out = cluster
        .exec(
            "default",
            "static-pod",
            &["ping", "-c", "1", "-W", "5", &before[2].1],
        )
        .unwrap();
    assert!(out.status.success(), "static-pod -> qos-pod over net1");

    cluster.assert_quiet(&mark, &[]).await.unwrap();
}
