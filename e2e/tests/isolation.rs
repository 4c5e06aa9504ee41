//! Anti-spoofing by real packets on the local cluster (L2, issue 14 item 4): a pod that sends
//! from an address it was not given is dropped by OVN's port security, even when its creator
//! asked for `port_security: "false"`; only a Subnet with `allowDisablePortSecurity` honours
//! that request, and there the same spoofed ping gets through (so the drop is port security's
//! doing, not the test's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use e2e::cluster::Cluster;

const WAIT: Duration = Duration::from_secs(90);

/// A NAD `<name>` and its Subnet (`extra`: further spec lines) in Vpc `vpc-spoof`.
fn network(name: &str, cidr: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: {name}
  namespace: default
spec:
  config: |
    {{
      "cniVersion": "0.3.1",
      "type": "kube-ovn",
      "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
      "provider": "{name}.default.ovn"
    }}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: {name}
spec:
  vpc: vpc-spoof
  cidr: "{cidr}"
  provider: {name}.default.ovn
{extra}"#
    )
}

/// A pod on `net` with static address `ip`, asking for port security off when `opt_out`.
fn pod(name: &str, net: &str, ip: &str, opt_out: bool) -> String {
    let ps = if opt_out {
        format!("    {net}.default.ovn.kubernetes.io/port_security: \"false\"\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: '[{{\"name\": \"default/{net}\", \"ips\": [\"{ip}/24\"]}}]'\n{ps}spec:\n  nodeName: node-1\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

/// Whether one ping from `from` (source address `src`, if given) to `to` is answered.
fn pings(cluster: &Cluster, from: &str, src: Option<&str>, to: &str, wait_secs: u32) -> bool {
    let w = wait_secs.to_string();
    let mut args = vec!["ping", "-c", "1", "-w", &w];
    if let Some(src) = src {
        args.extend(["-I", src]);
    }
    args.push(to);
    cluster
        .exec("default", from, &args)
        .unwrap()
        .status
        .success()
}

/// Gives `pod`'s net1 the extra address `ip`/24: an address the controller never gave it.
fn add_address(cluster: &Cluster, pod: &str, ip: &str) {
    let cidr = format!("{ip}/24");
    let out = cluster
        .exec("default", pod, &["ip", "addr", "add", &cidr, "dev", "net1"])
        .unwrap();
    assert!(out.status.success(), "ip addr add {cidr} in {pod}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_source_address_is_dropped_unless_the_subnet_allows_opting_out() {
    let cluster = Cluster::start(1).await.unwrap();
    let yaml = [
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata:\n  name: vpc-spoof\nspec:\n  namespaces:\n  - default\n".to_owned(),
        network("spoof-strict", "10.105.0.0/24", ""),
        network(
            "spoof-lenient",
            "10.106.0.0/24",
            "  allowDisablePortSecurity: true\n",
        ),
    ]
    .join("---\n");
    cluster.apply_yaml(&yaml).unwrap();
    // On the strict subnet the attacker asks for port security off and is refused.
    cluster
        .apply_yaml(&pod("victim", "spoof-strict", "10.105.0.10", false))
        .unwrap();
    cluster
        .apply_yaml(&pod("attacker", "spoof-strict", "10.105.0.20", true))
        .unwrap();
    cluster
        .apply_yaml(&pod("victim2", "spoof-lenient", "10.106.0.10", false))
        .unwrap();
    cluster
        .apply_yaml(&pod("optout", "spoof-lenient", "10.106.0.20", true))
        .unwrap();
    for p in ["victim", "attacker", "victim2", "optout"] {
        cluster.wait_running("default", p, WAIT).await.unwrap();
    }
    let quiet = cluster.quiet_mark().await.unwrap();

    // Both pairs talk from their own addresses.
    assert!(pings(&cluster, "attacker", None, "10.105.0.10", 15));
    assert!(pings(&cluster, "optout", None, "10.106.0.10", 15));

    // From an address nobody gave them: dropped on the strict subnet, delivered where the
    // Subnet lets the pod opt out.
    add_address(&cluster, "attacker", "10.105.0.99");
    add_address(&cluster, "optout", "10.106.0.99");
    assert!(
        pings(&cluster, "optout", Some("10.106.0.99"), "10.106.0.10", 15),
        "with port security off (allowed by the Subnet) the spoofed ping is delivered"
    );
    assert!(
        !pings(&cluster, "attacker", Some("10.105.0.99"), "10.105.0.10", 3),
        "a spoofed source address must be dropped by port security"
    );
    // Its own address still works: port security dropped the spoof, not the pod.
    assert!(pings(&cluster, "attacker", None, "10.105.0.10", 15));

    let ps = cluster
        .nbctl(&[
            "lsp-get-port-security",
            "attacker.default.spoof-strict.default.ovn",
        ])
        .unwrap();
    assert!(ps.contains("10.105.0.20"), "{ps}");
    cluster.assert_quiet(&quiet, &["attacker"]).await.unwrap();
}
