//! The manual's use cases on the local cluster (L2), with YAML as a user writes it:
//! network segmentation with explicit interface names, multi-tenancy with the same CIDR in two
//! VPCs (isolated), static IPs and their reuse after deletion, bad input that leaves the
//! pod's other attachments working, OVN's DHCP on an `enableDHCP` subnet, and IPAM-only NADs
//! (macvlan with kube-ovn IPAM) run as Multus runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use e2e::cluster::Cluster;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::DeleteParams;
use kube::runtime::WatchStreamExt;
use kube::{Api, ResourceExt};

const WAIT: Duration = Duration::from_secs(90);

fn network(name: &str, vpc: &str, subnet: &str, cidr: &str) -> String {
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
  name: {subnet}
spec:
  vpc: {vpc}
  cidr: "{cidr}"
  provider: {name}.default.ovn
"#
    )
}

fn vpc(name: &str) -> String {
    format!(
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata:\n  name: {name}\nspec:\n  namespaces:\n  - default\n"
    )
}

fn pod(name: &str, node: &str, networks: &str) -> String {
    let indented: String = networks.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: |\n{indented}spec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

fn addr_of(cluster: &Cluster, pod: &str, ifname: &str) -> String {
    let out = cluster
        .exec(
            "default",
            pod,
            &["ip", "-o", "-4", "addr", "show", "dev", ifname],
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("{pod} has no {ifname}: {text}"))
        .to_owned()
}

fn pings(cluster: &Cluster, from: &str, to: &str, wait_secs: u32) -> bool {
    let w = wait_secs.to_string();
    cluster
        .exec("default", from, &["ping", "-c", "1", "-w", &w, to])
        .unwrap()
        .status
        .success()
}

async fn warning_event(cluster: &Cluster, pod: &str, needle: &str) -> String {
    use futures::StreamExt;
    let events: Api<Event> = Api::namespaced(cluster.client(), "default");
    let config =
        kube::runtime::watcher::Config::default().fields(&format!("involvedObject.name={pod}"));
    let mut stream = std::pin::pin!(kube::runtime::watcher(events, config).applied_objects());
    tokio::time::timeout(WAIT, async {
        while let Some(e) = stream.next().await {
            let e = e.unwrap();
            if let Some(m) = e.message.filter(|m| m.contains(needle)) {
                return m;
            }
        }
        panic!("event stream ended")
    })
    .await
    .unwrap_or_else(|_| panic!("no Event on {pod} containing {needle:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manuals_use_cases_work_on_a_two_node_cluster() {
    let cluster = Cluster::start(e2e::cluster::node_count(2, 2))
        .await
        .unwrap();
    let yaml = [
        vpc("vpc-secondary"),
        network("public-network", "vpc-secondary", "public", "10.101.0.0/16"),
        network(
            "internal-network",
            "vpc-secondary",
            "internal",
            "10.102.0.0/16",
        ),
        vpc("tenant-a"),
        vpc("tenant-b"),
        network(
            "tenant-a-network",
            "tenant-a",
            "tenant-a-subnet",
            "10.200.0.0/24",
        ),
        network(
            "tenant-b-network",
            "tenant-b",
            "tenant-b-subnet",
            "10.200.0.0/24",
        ),
    ]
    .join("---\n");
    cluster.apply_yaml(&yaml).unwrap();

    // 1. Network segmentation, explicit interface names (the manual's "multiple providers").
    let both = r#"[
  {"name": "default/public-network", "interface": "net1"},
  {"name": "default/internal-network", "interface": "net2"}
]"#;
    cluster
        .apply_yaml(&pod("frontend", "node-1", both))
        .unwrap();
    cluster
        .apply_yaml(&pod(
            "backend",
            "node-2",
            r#"[{"name": "default/internal-network"}]"#,
        ))
        .unwrap();
    cluster
        .wait_running("default", "frontend", WAIT)
        .await
        .unwrap();
    cluster
        .wait_running("default", "backend", WAIT)
        .await
        .unwrap();
    // From here on only the deliberately broken pods of step 4 may warn (checked at the end).
    let quiet = cluster.quiet_mark().await.unwrap();
    assert!(addr_of(&cluster, "frontend", "net1").starts_with("10.101."));
    assert!(addr_of(&cluster, "frontend", "net2").starts_with("10.102."));
    let backend = addr_of(&cluster, "backend", "net1");
    assert!(backend.starts_with("10.102."), "{backend}");
    assert!(
        pings(&cluster, "frontend", backend.split('/').next().unwrap(), 15),
        "frontend -> backend over the internal network"
    );

    // 2. Multi-tenancy: the same CIDR in two VPCs, each tenant reaches only its own pods.
    let static_ip =
        |net: &str, ip: &str| format!(r#"[{{"name": "default/{net}", "ips": ["{ip}/24"]}}]"#);
    cluster
        .apply_yaml(&pod(
            "tenant-a-app",
            "node-1",
            &static_ip("tenant-a-network", "10.200.0.10"),
        ))
        .unwrap();
    cluster
        .apply_yaml(&pod(
            "tenant-a-db",
            "node-2",
            &static_ip("tenant-a-network", "10.200.0.20"),
        ))
        .unwrap();
    cluster
        .apply_yaml(&pod(
            "tenant-b-app",
            "node-1",
            &static_ip("tenant-b-network", "10.200.0.10"),
        ))
        .unwrap();
    cluster
        .apply_yaml(&pod(
            "tenant-b-other",
            "node-2",
            &static_ip("tenant-b-network", "10.200.0.30"),
        ))
        .unwrap();
    for p in [
        "tenant-a-app",
        "tenant-a-db",
        "tenant-b-app",
        "tenant-b-other",
    ] {
        cluster.wait_running("default", p, WAIT).await.unwrap();
    }
    assert_eq!(addr_of(&cluster, "tenant-a-app", "net1"), "10.200.0.10/24");
    assert_eq!(
        addr_of(&cluster, "tenant-b-app", "net1"),
        "10.200.0.10/24",
        "same address, other tenant"
    );
    assert!(
        pings(&cluster, "tenant-a-app", "10.200.0.20", 15),
        "tenant A reaches its own pod"
    );
    assert!(
        pings(&cluster, "tenant-b-app", "10.200.0.30", 15),
        "tenant B reaches its own pod"
    );
    assert!(
        !pings(&cluster, "tenant-a-app", "10.200.0.30", 3),
        "tenant A must not reach tenant B's pod"
    );
    assert!(
        !pings(&cluster, "tenant-b-app", "10.200.0.20", 3),
        "tenant B must not reach tenant A's pod"
    );

    // 3. A static IP is freed by deleting its pod and can be taken again.
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let db = pods.get("tenant-a-db").await.unwrap();
    pods.delete("tenant-a-db", &DeleteParams::default())
        .await
        .unwrap();
    cluster
        .wait_deleted("default", "tenant-a-db", &db.uid().unwrap(), WAIT)
        .await
        .unwrap();
    cluster
        .apply_yaml(&pod(
            "tenant-a-db2",
            "node-1",
            &static_ip("tenant-a-network", "10.200.0.20"),
        ))
        .unwrap();
    cluster
        .wait_running("default", "tenant-a-db2", WAIT)
        .await
        .unwrap();
    assert_eq!(addr_of(&cluster, "tenant-a-db2", "net1"), "10.200.0.20/24");

    // 4. Bad input: each class gets an Event on the pod; nothing else breaks.
    cluster
        .apply_yaml(&pod(
            "conflict",
            "node-2",
            &static_ip("tenant-a-network", "10.200.0.10"),
        ))
        .unwrap();
    warning_event(&cluster, "conflict", "10.200.0.10").await;
    cluster
        .apply_yaml(&pod(
            "outside",
            "node-2",
            &static_ip("tenant-a-network", "10.99.0.5"),
        ))
        .unwrap();
    warning_event(&cluster, "outside", "10.99.0.5").await;
    cluster
        .apply_yaml(&pod(
            "unknown-nad",
            "node-2",
            r#"[{"name": "default/no-such-network"}]"#,
        ))
        .unwrap();
    warning_event(&cluster, "unknown-nad", "default/no-such-network not found").await;
    // 5. enableDHCP: OVN answers the pod's DHCP with the address the controller allocated.
    let dhcp_net = network("dhcp-network", "vpc-secondary", "dhcp", "10.103.0.0/24").replace(
        "  provider: dhcp-network",
        "  enableDHCP: true\n  provider: dhcp-network",
    );
    assert!(dhcp_net.contains("enableDHCP: true"), "{dhcp_net}");
    cluster.apply_yaml(&dhcp_net).unwrap();
    cluster
        .apply_yaml(&pod(
            "dhcp-client",
            "node-2",
            "[{\"name\": \"default/dhcp-network\"}]",
        ))
        .unwrap();
    cluster
        .wait_running("default", "dhcp-client", WAIT)
        .await
        .unwrap();
    let assigned = addr_of(&cluster, "dhcp-client", "net1");
    let text = e2e::scenario::dhcp(&cluster, "dhcp-client");
    let leased = assigned.split('/').next().unwrap();
    assert!(
        text.contains(&format!("lease of {leased} obtained")),
        "udhcpc on net1 (assigned {assigned}): {text}"
    );

    // 6. IPAM-only: a macvlan NAD whose `ipam` is kube-ovn (Multus runs macvlan, macvlan runs
    // our plugin as its IPAM): addresses come from the Subnet bound to `<nad>.<namespace>`.
    cluster
        .apply_yaml(
            r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-net
  namespace: default
spec:
  config: |
    {
      "cniVersion": "0.3.1",
      "type": "macvlan",
      "master": "eth0",
      "mode": "bridge",
      "ipam": {
        "type": "kube-ovn",
        "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
        "provider": "macvlan-net.default"
      }
    }
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: macvlan-subnet
spec:
  cidr: "10.104.0.0/24"
  provider: macvlan-net.default
"#,
        )
        .unwrap();
    for name in ["ipam-a", "ipam-b"] {
        cluster
            .apply_yaml(&pod(
                name,
                "node-1",
                "[{\"name\": \"default/macvlan-net\"}]",
            ))
            .unwrap();
    }
    for name in ["ipam-a", "ipam-b"] {
        let p = cluster.wait_running("default", name, WAIT).await.unwrap();
        let annotated = p.annotations()["macvlan-net.default.kubernetes.io/ip_address"].clone();
        let addr = addr_of(&cluster, name, "net1");
        assert_eq!(addr, format!("{annotated}/24"), "{name}");
        assert!(addr.starts_with("10.104.0."), "{name}: {addr}");
    }
    let b = addr_of(&cluster, "ipam-b", "net1");
    assert!(pings(&cluster, "ipam-a", b.split('/').next().unwrap(), 15));

    // Everyone else still talks.
    assert!(pings(&cluster, "tenant-a-app", "10.200.0.20", 15));
    assert!(pings(
        &cluster,
        "frontend",
        backend.split('/').next().unwrap(),
        15
    ));
    cluster
        .assert_quiet(&quiet, &["conflict", "outside", "unknown-nad"])
        .await
        .unwrap();
}
