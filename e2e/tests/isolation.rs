//! Tenant isolation by real packets on the local cluster (L2, issue 14 item 4).
//!
//! Anti-spoofing: a pod that sends from an address it was not given is dropped by OVN's port
//! security, even when its creator asked for `port_security: "false"`; only a Subnet with
//! `allowDisablePortSecurity` honours that request, and there the same spoofed ping gets through
//! (so the drop is port security's doing, not the test's).
//!
//! Tenant attempts: from its own namespace, tenant b tries to enter tenant a's network (a
//! `logical_switch` naming a's switch, its own NAD naming a's provider, a's NAD itself); each is
//! refused with an Event, gets no port on a's switch, and a's pods receive nothing from it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use e2e::cluster::Cluster;
use e2e::scenario;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::{Api, ResourceExt};

const WAIT: Duration = Duration::from_secs(90);

/// A NAD `<name>` and its Subnet (`extra`: further spec lines) in Vpc `vpc-spoof`.
fn network(name: &str, cidr: &str, extra: &str) -> String {
    scenario::network("vpc-spoof", name, cidr, extra)
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

/// A tenant: Vpc `vpc-<t>` admitting `ns`, Subnet `sub-<t>` with `cidr` bound to `provider`.
fn tenant(t: &str, ns: &str, cidr: &str, provider: &str) -> String {
    format!(
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata:\n  name: vpc-{t}\nspec:\n  namespaces:\n  - {ns}\n---\napiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: sub-{t}\nspec:\n  vpc: vpc-{t}\n  cidr: \"{cidr}\"\n  provider: {provider}\n"
    )
}

/// A pod `ns/name` on node-1 selecting `nad` with static `ip`, plus `extra` annotation lines.
fn tenant_pod(ns: &str, name: &str, nad: &str, ip: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n    k8s.v1.cni.cncf.io/networks: '[{{\"name\": \"{nad}\", \"ips\": [\"{ip}/24\"]}}]'\n{extra}spec:\n  nodeName: node-1\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

/// The first Event on the `kind` object `name` whose message contains `needle`.
async fn event(cluster: &Cluster, kind: &str, name: &str, needle: &str) -> Event {
    scenario::event(cluster, kind, name, needle, WAIT).await
}

/// The ports on switch `ls`, by name.
fn ports_on(cluster: &Cluster, ls: &str) -> Vec<String> {
    cluster
        .nbctl(&["lsp-list", ls])
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once('(')
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_enter_another_tenants_network() {
    let cluster = Cluster::start(1).await.unwrap();
    // Tenant a is the manual's shape (a Vpc admitting `default`); tenant b has its own
    // namespace, and the same CIDR in its own Vpc.
    let yaml = [
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tenant-b\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: tenant-b\n".to_owned(),
        tenant("a", "default", "10.107.0.0/24", "net-a.default.ovn"),
        scenario::kube_ovn_nad("default", "net-a", "net-a.default.ovn"),
        tenant("b", "tenant-b", "10.107.0.0/24", "net-b.tenant-b.ovn"),
        scenario::kube_ovn_nad("tenant-b", "net-b", "net-b.tenant-b.ovn"),
    ]
    .join("---\n");
    cluster.apply_yaml(&yaml).unwrap();
    cluster
        .apply_yaml(&tenant_pod(
            "default",
            "a-app",
            "default/net-a",
            "10.107.0.10",
            "",
        ))
        .unwrap();
    cluster
        .apply_yaml(&tenant_pod(
            "default",
            "a-db",
            "default/net-a",
            "10.107.0.20",
            "",
        ))
        .unwrap();
    cluster
        .apply_yaml(&tenant_pod(
            "tenant-b",
            "b-app",
            "tenant-b/net-b",
            "10.107.0.30",
            "",
        ))
        .unwrap();
    cluster
        .wait_running("default", "a-app", WAIT)
        .await
        .unwrap();
    cluster.wait_running("default", "a-db", WAIT).await.unwrap();
    cluster
        .wait_running("tenant-b", "b-app", WAIT)
        .await
        .unwrap();
    let quiet = cluster.quiet_mark().await.unwrap();
    assert!(pings(&cluster, "a-app", None, "10.107.0.20", 15));
    let own_a = ports_on(&cluster, "sub-a");

    // 1. logical_switch hijack: b's pod names a's switch (and a free address there).
    cluster
        .apply_yaml(&tenant_pod(
            "tenant-b",
            "hijack",
            "tenant-b/net-b",
            "10.107.0.40",
            "    net-b.tenant-b.ovn.kubernetes.io/logical_switch: sub-a\n",
        ))
        .unwrap();
    let e = event(&cluster, "Pod", "hijack", "logical_switch \"sub-a\"").await;
    assert_eq!(e.reason.as_deref(), Some("LogicalSwitchRefused"), "{e:?}");
    // 2. Foreign provider: b's own NAD names a's provider; the NAD and its pod are refused.
    cluster
        .apply_yaml(&scenario::kube_ovn_nad(
            "tenant-b",
            "evil",
            "net-a.default.ovn",
        ))
        .unwrap();
    let e = event(
        &cluster,
        "NetworkAttachmentDefinition",
        "evil",
        "net-a.default.ovn",
    )
    .await;
    assert_eq!(e.reason.as_deref(), Some("ProviderNotAdmitted"), "{e:?}");
    cluster
        .apply_yaml(&tenant_pod(
            "tenant-b",
            "foreign",
            "tenant-b/evil",
            "10.107.0.41",
            "",
        ))
        .unwrap();
    let e = event(&cluster, "Pod", "foreign", "not admitted").await;
    assert_eq!(e.reason.as_deref(), Some("NamespaceNotAdmitted"), "{e:?}");
    // 3. a's NAD itself, from b's namespace.
    cluster
        .apply_yaml(&tenant_pod(
            "tenant-b",
            "crossref",
            "default/net-a",
            "10.107.0.42",
            "",
        ))
        .unwrap();
    let e = event(&cluster, "Pod", "crossref", "not admitted").await;
    assert_eq!(e.reason.as_deref(), Some("NamespaceNotAdmitted"), "{e:?}");

    // No port of b's on a's switch, no allocation for the refused pods.
    assert_eq!(ports_on(&cluster, "sub-a"), own_a);
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "tenant-b");
    for name in ["hijack", "foreign", "crossref"] {
        let p = pods.get(name).await.unwrap();
        assert!(
            !p.annotations()
                .keys()
                .any(|k| k.ends_with(".kubernetes.io/allocated")),
            "{name}: {:?}",
            p.annotations()
        );
    }
    // Packets: a's pods reach each other and nothing at the addresses b asked for; b's pod,
    // on the same CIDR in its own Vpc, reaches none of a's.
    assert!(pings(&cluster, "a-app", None, "10.107.0.20", 15));
    for ip in ["10.107.0.40", "10.107.0.41", "10.107.0.42", "10.107.0.30"] {
        assert!(!pings(&cluster, "a-app", None, ip, 2), "a-app reached {ip}");
    }
    for ip in ["10.107.0.10", "10.107.0.20"] {
        let out = cluster
            .exec("tenant-b", "b-app", &["ping", "-c", "1", "-w", "2", ip])
            .unwrap();
        assert!(!out.status.success(), "b-app reached {ip}");
    }
    cluster
        .assert_quiet(&quiet, &["hijack", "foreign", "crossref", "evil"])
        .await
        .unwrap();
}
