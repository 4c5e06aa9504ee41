//! The manual's use cases after its first example, on the chart's two real nodes, by `kubectl`
//! only: network segmentation (net1 + net2), two tenants with the same CIDR isolated, several
//! providers with `interface` names, the static IP and the QoS pod. The pods' YAML is the
//! manual's snippet (`crds::seed`) completed with what the snippet leaves out (a name where it
//! has none, a node, the test image); the NADs, Vpcs and Subnets behind its network names are
//! written as the manual's first example writes its own.

use super::chart::{ChartCluster, workload_image};

/// A NAD of type kube-ovn and its Subnet in `vpc`.
fn network(name: &str, vpc: &str, cidr: &str) -> String {
    format!(
        r#"apiVersion: k8s.cni.cncf.io/v1
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
  name: {name}-subnet
spec:
  vpc: {vpc}
  cidr: "{cidr}"
  provider: {name}.default.ovn
"#
    )
}

/// `network`'s Subnet with `excludeIps: [ip]`.
fn excluding(network: String, ip: &str) -> String {
    let subnet = network
        .rfind("  provider: ")
        .expect("a Subnet with a provider");
    format!(
        "{}  excludeIps: [\"{ip}\"]\n{}",
        &network[..subnet],
        &network[subnet..]
    )
}

fn vpc(name: &str) -> String {
    format!(
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata:\n  name: {name}\nspec:\n  namespaces:\n  - default\n"
    )
}

/// One pod of the manual (a snippet with or without `apiVersion`/`kind`/`name`), completed with
/// `name` when it has none, `extra` annotations, a node and the test image.
fn complete(snippet: &str, name: &str, node: &str, extra: &[&str]) -> String {
    // The manual's comment lines stay, the document starts after them.
    let body: String = snippet
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut pod = String::new();
    if !body.contains("kind: Pod") {
        pod.push_str("apiVersion: v1\nkind: Pod\n");
    }
    let mut body = body;
    if !body.contains("  name: ") {
        body = body.replacen("metadata:\n", &format!("metadata:\n  name: {name}\n"), 1);
    }
    for annotation in extra {
        body = body.replacen(
            "  annotations:\n",
            &format!("  annotations:\n    {annotation}\n"),
            1,
        );
    }
    pod.push_str(&body);
    pod.push_str(&format!(
        "spec:\n  nodeName: {node}\n  containers:\n  - name: app\n{}",
        workload_image()
    ));
    pod
}

/// A pod with one attachment of `nad` at the static address `ip` (prefix included).
fn static_pod(name: &str, node: &str, nad: &str, ip: &str) -> String {
    let networks =
        format!(r#"k8s.v1.cni.cncf.io/networks: '[{{"name": "default/{nad}", "ips": ["{ip}"]}}]'"#);
    complete("metadata:\n  annotations:\n", name, node, &[&networks])
}

/// The address (with prefix) of `ifname` in `pod`, as `ip -4 addr show` prints it.
fn addr_of(cluster: &ChartCluster, pod: &str, ifname: &str) -> String {
    let out = cluster.kubectl(&["exec", pod, "--", "ip", "-4", "addr", "show", "dev", ifname]);
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("{pod}: no IPv4 address on {ifname}:\n{out}"))
        .to_owned()
}

/// Whether `pod` gets an answer from `to` (three pings, 2 s each).
fn pings(cluster: &ChartCluster, pod: &str, to: &str) -> bool {
    let out = cluster.try_kubectl(&["exec", pod, "--", "ping", "-c", "3", "-W", "2", to]);
    eprintln!("{pod} -> {to}: {}", out.as_deref().unwrap_or("no answer"));
    out.is_ok_and(|text| !text.contains(" 0 packets received"))
}

/// The manual's use cases; every pod they create is deleted at the end, and what they
/// attached (IP records, OVS ports) goes with them.
pub fn the_manuals_use_cases(cluster: &ChartCluster, a: &str, b: &str) {
    cluster.apply(
        &[
            network("public-network", "vpc-secondary", "10.101.0.0/16"),
            network("internal-network", "vpc-secondary", "10.102.0.0/16"),
            network("kube-ovn-network-1", "vpc-secondary", "10.103.0.0/16"),
            network("kube-ovn-network-2", "vpc-secondary", "10.104.0.0/16"),
            vpc("vpc-static"),
            network("kube-ovn-network", "vpc-static", "10.100.0.0/16"),
            vpc("tenant-a"),
            vpc("tenant-b"),
            // Each tenant's random addresses avoid the other tenant's peer address: an app
            // given it would ping itself when checking that it cannot reach the other tenant
            // (the same CIDR in two VPCs makes that allocation legal; a CI run drew it).
            excluding(
                network("tenant-a-network", "tenant-a", "10.200.0.0/24"),
                "10.200.0.30",
            ),
            excluding(
                network("tenant-b-network", "tenant-b", "10.200.0.0/24"),
                "10.200.0.20",
            ),
        ]
        .join("---\n"),
    );
    let tenants: Vec<&str> = crds::seed::TENANTS.split("---\n").collect();
    let qos_networks = "k8s.v1.cni.cncf.io/networks: default/kube-ovn-vpc-network";
    let pods = [
        // Segmentation: the manual's frontend on both networks, a backend on the internal one.
        ("frontend", complete(crds::seed::SEGMENTATION, "", a, &[])),
        (
            "backend",
            static_pod("backend", b, "internal-network", "10.102.0.50/16"),
        ),
        // Multi-tenancy: the manual's two pods, and a peer of each tenant on the other node.
        ("tenant-a-app", complete(tenants[0], "", a, &[])),
        ("tenant-b-app", complete(tenants[1], "", a, &[])),
        (
            "tenant-a-peer",
            static_pod("tenant-a-peer", b, "tenant-a-network", "10.200.0.20/24"),
        ),
        (
            "tenant-b-peer",
            static_pod("tenant-b-peer", b, "tenant-b-network", "10.200.0.30/24"),
        ),
        // Several providers with interface names, the static IP, QoS.
        (
            "multi-provider",
            complete(crds::seed::MULTI_PROVIDER, "multi-provider", b, &[]),
        ),
        (
            "static-ip",
            complete(crds::seed::STATIC_IP, "static-ip", a, &[]),
        ),
        ("qos", complete(crds::seed::QOS, "qos", b, &[qos_networks])),
    ];
    for (_, yaml) in &pods {
        cluster.apply(yaml);
    }
    for (name, _) in &pods {
        cluster.wait_ready(name);
    }

    // The manual's `{"name": "default/public-network"}` is what Multus refuses; the chart's
    // webhook rewrote it at creation to the form Multus reads.
    let networks = cluster.kubectl(&[
        "get",
        "pod",
        "frontend",
        "-o",
        r"jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/networks}",
    ]);
    assert_eq!(
        networks,
        r#"[{"name":"public-network","namespace":"default"},{"name":"internal-network","namespace":"default"}]"#
    );

    // Segmentation: net1 on the public network, net2 on the internal one, and the backend on
    // the other node reached over net2.
    assert!(addr_of(cluster, "frontend", "net1").starts_with("10.101."));
    assert!(addr_of(cluster, "frontend", "net2").starts_with("10.102."));
    assert!(
        pings(cluster, "frontend", "10.102.0.50"),
        "frontend -> backend"
    );

    // Tenants: the same CIDR in two VPCs; each reaches its own peer across nodes and never the
    // other tenant's.
    let a_app = addr_of(cluster, "tenant-a-app", "net1");
    let b_app = addr_of(cluster, "tenant-b-app", "net1");
    eprintln!("tenant-a-app {a_app}, tenant-b-app {b_app}");
    assert!(a_app.starts_with("10.200.0.") && b_app.starts_with("10.200.0."));
    assert!(
        !a_app.starts_with("10.200.0.30/") && !b_app.starts_with("10.200.0.20/"),
        "an app holds the other tenant's peer address"
    );
    assert!(pings(cluster, "tenant-a-app", "10.200.0.20"), "tenant A");
    assert!(pings(cluster, "tenant-b-app", "10.200.0.30"), "tenant B");
    assert!(
        !pings(cluster, "tenant-a-app", "10.200.0.30"),
        "tenant A reached tenant B's pod"
    );
    assert!(
        !pings(cluster, "tenant-b-app", "10.200.0.20"),
        "tenant B reached tenant A's pod"
    );

    // Interface names as the element asks, one provider each.
    assert!(addr_of(cluster, "multi-provider", "net1").starts_with("10.103."));
    assert!(addr_of(cluster, "multi-provider", "net2").starts_with("10.104."));

    // The static IP, exactly.
    assert_eq!(addr_of(cluster, "static-ip", "net1"), "10.100.0.100/16");

    // QoS: the rates are OVN QoS rows on the pod's switch (Mbit/s in the annotation, kbit/s in
    // OVN), as `ovn-nbctl` in the chart's central pod shows them.
    let qos = cluster.kubectl(&[
        "exec",
        "-n",
        "kube-system",
        "deployment/ovn-central",
        "--",
        "ovn-nbctl",
        "qos-list",
        "subnet-secondary",
    ]);
    eprintln!("qos-list subnet-secondary:\n{qos}");
    assert_eq!(
        qos.matches("rate=1000000").count(),
        2,
        "one ingress and one egress row:\n{qos}"
    );

    quiet_then_delete(cluster, &pods);
}

/// What only real Multus shows (issue 11, item 5): an element with `default-route` (Multus
/// moves the default route from eth0 itself), the same NAD twice under two interface names,
/// and an IPAM-only macvlan NAD (Multus runs macvlan, macvlan runs our plugin as its IPAM).
pub fn what_only_real_multus_shows(cluster: &ChartCluster, a: &str, b: &str) {
    cluster.apply(
        r#"apiVersion: k8s.cni.cncf.io/v1
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
  cidr: "10.105.0.0/24"
  provider: macvlan-net.default
"#,
    );
    let element = |extra: &str| {
        format!(
            r#"k8s.v1.cni.cncf.io/networks: '[{{"name": "kube-ovn-vpc-network", "namespace": "default"{extra}}}]'"#
        )
    };
    let twice = r#"k8s.v1.cni.cncf.io/networks: '[{"name": "kube-ovn-vpc-network", "namespace": "default", "interface": "net1"}, {"name": "kube-ovn-vpc-network", "namespace": "default", "interface": "net2"}]'"#;
    let macvlan =
        r#"k8s.v1.cni.cncf.io/networks: '[{"name": "macvlan-net", "namespace": "default"}]'"#;
    let base = "metadata:\n  annotations:\n";
    let pods = [
        (
            "default-route",
            complete(
                base,
                "default-route",
                a,
                &[&element(r#", "default-route": ["10.100.0.1"]"#)],
            ),
        ),
        (
            "same-nad-twice",
            complete(base, "same-nad-twice", b, &[twice]),
        ),
        ("macvlan-a", complete(base, "macvlan-a", a, &[macvlan])),
        ("macvlan-b", complete(base, "macvlan-b", a, &[macvlan])),
    ];
    for (_, yaml) in &pods {
        cluster.apply(yaml);
    }
    for (name, _) in &pods {
        cluster.wait_ready(name);
    }

    // default-route: exactly one default route, via net1 and the subnet's gateway.
    let routes = cluster.kubectl(&["exec", "default-route", "--", "ip", "route", "show"]);
    eprintln!("default-route pod routes:\n{routes}");
    let defaults: Vec<&str> = routes
        .lines()
        .filter(|l| l.starts_with("default"))
        .collect();
    assert_eq!(
        defaults,
        vec!["default via 10.100.0.1 dev net1 "],
        "one default route, via net1: {routes}"
    );

    // The same NAD twice: two ports on the same switch, two addresses, talking to each other.
    let one = addr_of(cluster, "same-nad-twice", "net1");
    let two = addr_of(cluster, "same-nad-twice", "net2");
    assert!(one.starts_with("10.100.") && two.starts_with("10.100.") && one != two);

    // IPAM-only macvlan: addresses from the Subnet bound to `macvlan-net.default`.
    let first = addr_of(cluster, "macvlan-a", "net1");
    let second = addr_of(cluster, "macvlan-b", "net1");
    assert!(first.starts_with("10.105.0.") && second.starts_with("10.105.0."));
    let to = second.split('/').next().unwrap_or_default().to_owned();
    assert!(pings(cluster, "macvlan-a", &to), "macvlan-a -> macvlan-b");

    quiet_then_delete(cluster, &pods);
}

/// The quiet after success (no Warning event), then the pods deleted and their IP records
/// gone with them.
fn quiet_then_delete(cluster: &ChartCluster, pods: &[(&str, String)]) {
    let warnings = cluster.warnings();
    assert!(warnings.is_empty(), "Warning events: {warnings:#?}");
    let names: Vec<&str> = pods.iter().map(|(n, _)| *n).collect();
    let mut delete = vec!["delete", "pod"];
    delete.extend(&names);
    delete.extend(["--wait=true", "--timeout=90s"]);
    cluster.kubectl(&delete);
    cluster.wait_ips_released(&names);
}

/// The CNI verbs each node's daemon served, from its metrics
/// (`kube_ovn_cni_op_duration_seconds_count{verb, result}`): which ones this runtime calls.
pub fn verbs_served(cluster: &ChartCluster) -> std::collections::BTreeMap<(String, String), u64> {
    let mut served = std::collections::BTreeMap::new();
    for node in cluster.nodes() {
        let out = node
            .netns()
            .exec(&[
                "curl",
                "-sf",
                "--max-time",
                "5",
                // The chart binds the daemon's metrics to the node's address (status.hostIP).
                &format!("http://{}:10665/metrics", node.ip()),
            ])
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: metrics: {text}", node.name());
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("kube_ovn_cni_op_duration_seconds_count{") else {
                continue;
            };
            let Some((labels, count)) = rest.split_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap_or_default()
            };
            let count: u64 = count.trim().parse().unwrap_or(0);
            *served.entry((label("verb"), label("result"))).or_insert(0) += count;
        }
    }
    served
}
