//! Attachment QoS through the controller against a real kube-apiserver and a real OVN NB (L2):
//! the seed's `ovn.kubernetes.io/ingress_rate|egress_rate` become two NB QoS rows, annotation
//! changes update or remove them, a bad value is a Warning Event that leaves the attachment and
//! its last good limit alone, and deleting the pod removes the rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use ovn_api::tables::nb::Qos;

const PROVIDER: &str = "kube-ovn-vpc-network.default.ovn";
const LSP: &str = "qos-pod.default.kube-ovn-vpc-network.default.ovn";
const WAIT: Duration = Duration::from_secs(60);

mod common;
use common::yaml;

/// Our QoS rows as sorted (direction, match, rate kbit/s).
fn rows(r: &ovn_api::replica::Replica) -> Vec<(String, String, i64)> {
    let mut v: Vec<_> = r
        .list::<Qos>()
        .unwrap()
        .into_iter()
        .filter(|q| q.external_ids.get("vendor").map(String::as_str) == Some("kube-ovn"))
        .map(|q| (q.direction, q.match_, q.bandwidth["rate"]))
        .collect();
    v.sort();
    v
}

fn egress(kbps: i64) -> (String, String, i64) {
    ("from-lport".into(), format!("inport == \"{LSP}\""), kbps)
}

fn ingress(kbps: i64) -> (String, String, i64) {
    ("to-lport".into(), format!("outport == \"{LSP}\""), kbps)
}

/// Waits (on NB updates) until our rows are exactly `want`.
async fn wait_rows(nb: &controller::nb::Nb, want: &[(String, String, i64)]) {
    let got = nb.wait_until(WAIT, |r| rows(r) == want).await;
    assert!(
        got.is_ok(),
        "QoS rows never became {want:?}; last: {:?}",
        rows(&nb.replica())
    );
}

async fn annotate(pods: &Api<Pod>, key: &str, value: &str) {
    let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
    pods.patch("qos-pod", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn warning(client: &Client, pod: &str, needle: &str) -> Event {
    common::event_containing(client, pod, needle).await
}

#[tokio::test]
async fn the_seeds_qos_annotations_become_qos_rows_that_follow_the_pod() {
    let common::Bed {
        _cp,
        client,
        nb_server,
        ctx: _ctx,
        controller,
    } = common::Bed::start(
        "kube-ovn-vpc-network",
        PROVIDER,
        "vpc-secondary",
        "subnet-secondary",
        "10.100.0.0/16",
    )
    .await;
    let nb = controller::nb::connect(&nb_server.remote()).await.unwrap();

    // The seed's example: pod-wide rates apply to the kube-ovn attachment.
    let pod: Pod = yaml(
        r#"
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
  containers: [{name: app, image: nginx}]
"#,
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod).await.unwrap();
    wait_rows(&nb, &[egress(1_000_000), ingress(1_000_000)]).await;
    let shown = nb_server.nbctl(&["qos-list", "subnet-secondary"]).unwrap();
    assert!(shown.contains("rate=1000000 burst=1000000"), "{shown}");

    // A change updates the row; a provider-specific "0" lifts the pod-wide ingress limit.
    annotate(&pods, "ovn.kubernetes.io/egress_rate", "10").await;
    wait_rows(&nb, &[egress(10_000), ingress(1_000_000)]).await;
    annotate(
        &pods,
        &format!("{PROVIDER}.kubernetes.io/ingress_rate"),
        "0",
    )
    .await;
    wait_rows(&nb, &[egress(10_000)]).await;

    // A bad value: a Warning naming the annotation and value; the limit and the address stay.
    annotate(&pods, "ovn.kubernetes.io/egress_rate", "fast").await;
    let e = warning(&client, "qos-pod", "ovn.kubernetes.io/egress_rate=\"fast\"").await;
    assert_eq!(e.reason.as_deref(), Some("InvalidQoS"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(rows(&nb.replica()), [egress(10_000)]);
    let p = pods.get("qos-pod").await.unwrap();
    assert_eq!(
        p.annotations()
            .get(&format!("{PROVIDER}.kubernetes.io/allocated"))
            .map(String::as_str),
        Some("true")
    );
    annotate(&pods, "ovn.kubernetes.io/egress_rate", "-3").await;
    warning(
        &client,
        "qos-pod",
        "=\"-3\" is not a valid rate (a rate cannot be negative)",
    )
    .await;
    annotate(&pods, "ovn.kubernetes.io/egress_rate", "99999999").await;
    warning(
        &client,
        "qos-pod",
        "=\"99999999\" is not a valid rate (more than",
    )
    .await;
    annotate(&pods, "ovn.kubernetes.io/egress_rate", "20").await;
    wait_rows(&nb, &[egress(20_000)]).await;

    // Deleting the pod removes its rows with its port.
    pods.delete("qos-pod", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_rows(&nb, &[]).await;
    assert!(
        !nb_server.nbctl(&["show"]).unwrap().contains(LSP),
        "port left behind"
    );
    controller.abort();
}
