//! Traffic policy on real nodes (issue 14): a SecurityGroup and MultiNetworkPolicies on the
//! manual's network, the chart's controller and the CRD the chart installed, pods on two real
//! kubelets attached by real Multus, TCP by busybox `nc` through `kubectl exec`.
//!
//! - a group allowing TCP 80 from the manual's subnet, named in the server's
//!   `security_groups` annotation: port 80 answers, 81 and ping do not; the annotation removed
//!   opens them again;
//! - a MultiNetworkPolicy denying all ingress to `app=policy-server` on the network, and one
//!   allowing TCP 81 from `role=client`: 81 answers the labelled client, 80 answers nobody;
//!   both deleted: open again; then everything goes, quietly.

use std::time::{Duration, Instant};

use super::chart::{ChartCluster, workload_image};

const WAIT: Duration = Duration::from_secs(120);
const SERVER_IP: &str = "10.100.0.30";
const PROVIDER: &str = "kube-ovn-vpc-network.default.ovn";

/// A pod on the manual's network at `ip` on `node`, answering `<name>-<port>` on TCP 80 and 81.
fn pod(name: &str, node: &str, ip: &str, labels: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  labels: {labels}
  annotations:
    k8s.v1.cni.cncf.io/networks: '[{{"name": "kube-ovn-vpc-network", "ips": ["{ip}/16"]}}]'
spec:
  nodeName: {node}
  containers:
  - name: app
{image}    command: ["sh", "-c", "nc -ll -p 80 -e echo {name}-80 & nc -ll -p 81 -e echo {name}-81 & wait"]
"#,
        image = workload_image(),
    )
}

const GROUP: &str = r#"apiVersion: kubeovn.io/v1
kind: SecurityGroup
metadata:
  name: web-only
spec:
  ingressRules:
  - ipVersion: ipv4
    protocol: tcp
    priority: 1
    remoteType: address
    remoteAddress: 10.100.0.0/16
    portRangeMin: 80
    portRangeMax: 80
    policy: allow
"#;

const POLICIES: &str = r#"apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata:
  name: deny-all
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/policy-for: default/kube-ovn-vpc-network
spec:
  podSelector:
    matchLabels:
      app: policy-server
  policyTypes: [Ingress]
---
apiVersion: k8s.cni.cncf.io/v1beta1
kind: MultiNetworkPolicy
metadata:
  name: clients-on-81
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/policy-for: kube-ovn-vpc-network
spec:
  podSelector:
    matchLabels:
      app: policy-server
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: client
    ports:
    - protocol: TCP
      port: 81
"#;

/// What `pod` gets from `SERVER_IP:port` with busybox nc (empty when nothing answers).
fn asks(cluster: &ChartCluster, pod: &str, port: u16) -> String {
    cluster
        .try_kubectl(&[
            "exec",
            pod,
            "--",
            "nc",
            "-w",
            "2",
            SERVER_IP,
            &port.to_string(),
        ])
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn pings(cluster: &ChartCluster, pod: &str) -> bool {
    cluster
        .try_kubectl(&["exec", pod, "--", "ping", "-c", "1", "-W", "2", SERVER_IP])
        .is_ok()
}

/// Probes until `check` holds, for at most [`WAIT`].
fn eventually(what: &str, cluster: &ChartCluster, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < WAIT,
            "{what}: not within {WAIT:?}\n{}",
            cluster.debug_dump()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("{what} after {:?}", start.elapsed());
}

fn annotate_groups(cluster: &ChartCluster, groups: Option<&str>) {
    let key = format!("{PROVIDER}.kubernetes.io/security_groups");
    let value = groups.map_or_else(|| format!("{key}-"), |g| format!("{key}={g}"));
    cluster.kubectl(&["annotate", "--overwrite", "pod", "policy-server", &value]);
}

/// The scenario; `here` and `there` are the two nodes. Leaves nothing behind.
pub fn security_group_and_multi_network_policy(cluster: &ChartCluster, here: &str, there: &str) {
    cluster.apply(GROUP);
    cluster.apply(&pod(
        "policy-server",
        here,
        SERVER_IP,
        "{app: policy-server}",
    ));
    cluster.apply(&pod(
        "policy-client",
        there,
        "10.100.0.31",
        "{role: client}",
    ));
    cluster.apply(&pod("policy-other", there, "10.100.0.32", "{}"));
    for p in ["policy-server", "policy-client", "policy-other"] {
        cluster.wait_ready(p);
    }
    eventually("baseline: 80 and 81 answer", cluster, || {
        asks(cluster, "policy-client", 80) == "policy-server-80"
            && asks(cluster, "policy-other", 81) == "policy-server-81"
    });

    // The security group: TCP 80 only.
    annotate_groups(cluster, Some("web-only"));
    eventually("the group drops TCP 81", cluster, || {
        asks(cluster, "policy-other", 81).is_empty()
    });
    assert_eq!(asks(cluster, "policy-client", 80), "policy-server-80");
    assert!(!pings(cluster, "policy-client"), "the group drops ICMP");
    annotate_groups(cluster, None);
    eventually("open again without the group", cluster, || {
        asks(cluster, "policy-other", 81) == "policy-server-81"
    });

    // MultiNetworkPolicy: deny all, then TCP 81 from role=client.
    cluster.apply(POLICIES);
    eventually("the policies drop TCP 80", cluster, || {
        asks(cluster, "policy-client", 80).is_empty()
    });
    eventually("TCP 81 answers the client", cluster, || {
        asks(cluster, "policy-client", 81) == "policy-server-81"
    });
    assert_eq!(
        asks(cluster, "policy-other", 81),
        "",
        "81 from an unlabelled pod"
    );
    assert!(!pings(cluster, "policy-client"), "no rule allows ICMP");
    cluster.kubectl(&[
        "delete",
        "multi-networkpolicies.k8s.cni.cncf.io",
        "deny-all",
        "clients-on-81",
        "--wait=true",
    ]);
    eventually("open again without the policies", cluster, || {
        asks(cluster, "policy-other", 80) == "policy-server-80"
    });

    let warnings = cluster.warnings();
    assert!(warnings.is_empty(), "Warning events: {warnings:#?}");
    cluster.kubectl(&[
        "delete",
        "pod",
        "policy-server",
        "policy-client",
        "policy-other",
        "--wait=true",
        "--timeout=60s",
    ]);
    cluster.wait_ips_released(&["policy-server", "policy-client", "policy-other"]);
    cluster.kubectl(&[
        "delete",
        "security-groups.kubeovn.io",
        "web-only",
        "--wait=true",
    ]);
    let warnings = cluster.warnings();
    assert!(warnings.is_empty(), "Warning events: {warnings:#?}");
}
