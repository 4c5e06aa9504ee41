//! The manual's third use case on real nodes: the VpcNatGateway as written, plus only the
//! external network (a macvlan NAD with our IPAM on each node's `eth2`, its Subnet), gives the
//! secondary network a way out. The gateway's StatefulSet runs our cni image on a real kubelet
//! (nothing privileged: a NET_ADMIN agent, exec readiness probe) with both attachments from
//! real Multus; EIPs and rules are plain objects; an "external host" on the `eth2` segment
//! answers. Real TCP: SNAT (the host sees the EIP), DNAT, FIP both ways, the gateway pod
//! deleted and its rules restored by the new one; then everything goes, quietly.

use std::time::{Duration, Instant};

use e2e::external::{self, Echo, External, ask};

use super::chart::{ChartCluster, workload_image};

const WAIT: Duration = Duration::from_secs(120);
const GATEWAY_POD: &str = "vpc-nat-gw-vpc-nat-gw-0";

/// A pod on the manual's network at `ip`, routing the external segment and what lies beyond
/// it through net1 (eth0 keeps the default route), serving `tag` on TCP `port` (busybox nc).
fn server_pod(name: &str, node: &str, ip: &str, port: u16, tag: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: '[{{"name": "kube-ovn-vpc-network", "ips": ["{ip}"]}}]'
    {routes}
spec:
  nodeName: {node}
  containers:
  - name: app
{image}    command: ["nc", "-ll", "-p", "{port}", "-e", "echo", "{tag}"]
"#,
        image = workload_image(),
        routes = external::routes_annotation("kube-ovn-vpc-network.default.ovn", "10.100.0.1")
    )
}

/// Polls `check` every 300 ms until it gives `Some`, for at most [`WAIT`].
fn wait_for<T>(what: &str, cluster: &ChartCluster, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            eprintln!("{what} after {:?}", start.elapsed());
            return v;
        }
        if start.elapsed() > WAIT {
            let logs = |previous: &str| {
                cluster
                    .try_kubectl(&[
                        "logs",
                        "-n",
                        "kube-system",
                        GATEWAY_POD,
                        "--all-containers",
                        previous,
                    ])
                    .unwrap_or_else(|e| e.to_string())
            };
            panic!(
                "{what}: not within {WAIT:?}\ngateway pod logs:\n{}\nprevious run:\n{}\n{}",
                logs("--previous=false"),
                logs("--previous=true"),
                cluster.debug_dump()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn gateway_ready(cluster: &ChartCluster) -> bool {
    cluster
        .try_kubectl(&[
            "get",
            "vpc-nat-gateways.kubeovn.io",
            "vpc-nat-gw",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
        ])
        .is_ok_and(|s| s.trim() == "True")
}

fn eip_ip(cluster: &ChartCluster, name: &str) -> String {
    wait_for(&format!("IptablesEIP {name} ready"), cluster, || {
        let out = cluster
            .try_kubectl(&[
                "get",
                "iptables-eips.kubeovn.io",
                name,
                "-o",
                "jsonpath={.status.ready} {.status.ip}",
            ])
            .ok()?;
        match out.split_whitespace().collect::<Vec<_>>()[..] {
            ["true", ip] => Some(ip.to_owned()),
            _ => None,
        }
    })
}

/// What `pod` gets from `to` (`addr port`) with busybox nc.
fn pod_asks(cluster: &ChartCluster, pod: &str, addr: &str, port: u16) -> String {
    cluster
        .try_kubectl(&["exec", pod, "--", "nc", "-w", "3", addr, &port.to_string()])
        .unwrap_or_default()
}

/// The scenario; `here` and `there` are the two nodes. Leaves nothing behind.
pub fn the_manuals_nat_gateway(cluster: &ChartCluster, here: &str, there: &str) {
    let nodes: Vec<&str> = cluster.nodes().iter().map(|n| n.netns().name()).collect();
    let ext = External::create(&nodes, "eth2").unwrap();
    let _far = Echo::start(&ext.host(), 7000, "far").unwrap();
    cluster.apply(&external::network_yaml("eth2"));
    // The manual's network (applied again: it is already there) and its VpcNatGateway.
    cluster.apply(
        &[
            crds::seed::NAD,
            crds::seed::VPC_AND_SUBNET,
            crds::seed::NAT_GW,
        ]
        .join("---\n"),
    );
    cluster.apply(&server_pod("nat-app", here, "10.100.0.10/16", 80, "app"));
    cluster.apply(&server_pod("nat-web", there, "10.100.0.20/16", 9000, "web"));
    wait_for("VpcNatGateway vpc-nat-gw Ready", cluster, || {
        gateway_ready(cluster).then_some(())
    });
    cluster.apply(external::MANUAL_GATEWAY_RULES);
    let snat = eip_ip(cluster, "eip-snat");
    let dnat = eip_ip(cluster, "eip-dnat");
    let fip = eip_ip(cluster, "eip-fip");
    cluster.wait_ready("nat-app");
    cluster.wait_ready("nat-web");

    // What the gateway pod looks like to a user.
    let addrs = cluster.kubectl(&[
        "exec",
        "-n",
        "kube-system",
        GATEWAY_POD,
        "-c",
        "vpc-nat-gw",
        "--",
        "cat",
        "/proc/net/fib_trie",
    ]);
    assert!(addrs.contains(&snat), "the gateway holds its EIPs: {addrs}");
    let logs = cluster.kubectl(&["logs", "-n", "kube-system", GATEWAY_POD, "-c", "vpc-nat-gw"]);
    assert!(logs.contains("applied"), "{logs}");

    let want_snat = format!("far {snat}");
    wait_for("SNAT: the external host sees the EIP", cluster, || {
        (pod_asks(cluster, "nat-app", external::FAR, 7000) == want_snat).then_some(())
    });
    wait_for("DNAT: EIP:8080 reaches nat-app:80", cluster, || {
        ask(&ext.host(), &format!("{dnat}:8080"))
            .is_ok_and(|a| a.trim() == "app")
            .then_some(())
    });
    wait_for("FIP in: the EIP reaches nat-web", cluster, || {
        ask(&ext.host(), &format!("{fip}:9000"))
            .is_ok_and(|a| a.trim() == "web")
            .then_some(())
    });
    let want_fip = format!("far {fip}");
    wait_for("FIP out: nat-web leaves as its FIP", cluster, || {
        (pod_asks(cluster, "nat-web", external::FAR, 7000) == want_fip).then_some(())
    });

    // The gateway pod deleted: its StatefulSet makes a new one, which restores every rule.
    cluster.kubectl(&[
        "delete",
        "pod",
        "-n",
        "kube-system",
        GATEWAY_POD,
        "--wait=true",
    ]);
    wait_for("SNAT after the gateway pod's restart", cluster, || {
        (pod_asks(cluster, "nat-app", external::FAR, 7000) == want_snat).then_some(())
    });
    wait_for("FIP after the gateway pod's restart", cluster, || {
        ask(&ext.host(), &format!("{fip}:9000"))
            .is_ok_and(|a| a.trim() == "web")
            .then_some(())
    });
    wait_for("VpcNatGateway Ready again", cluster, || {
        gateway_ready(cluster).then_some(())
    });

    let warnings = cluster.warnings();
    assert!(warnings.is_empty(), "Warning events: {warnings:#?}");

    // Everything goes: rules and EIPs, the gateway (its pod and lanIp), the pods.
    cluster.kubectl(&[
        "delete",
        "iptables-snat-rules.kubeovn.io/snat-secondary",
        "iptables-dnat-rules.kubeovn.io/dnat-app",
        "iptables-fip-rules.kubeovn.io/fip-web",
        "iptables-eips.kubeovn.io/eip-snat",
        "iptables-eips.kubeovn.io/eip-dnat",
        "iptables-eips.kubeovn.io/eip-fip",
        "--wait=true",
    ]);
    cluster.kubectl(&[
        "delete",
        "vpc-nat-gateways.kubeovn.io",
        "vpc-nat-gw",
        "--wait=true",
    ]);
    cluster.kubectl(&[
        "delete",
        "pod",
        "nat-app",
        "nat-web",
        "--wait=true",
        "--timeout=60s",
    ]);
    wait_for("the gateway pod gone", cluster, || {
        cluster
            .try_kubectl(&[
                "get",
                "pod",
                "-n",
                "kube-system",
                GATEWAY_POD,
                "--ignore-not-found",
            ])
            .is_ok_and(|s| s.trim().is_empty())
            .then_some(())
    });
    cluster.wait_ips_released(&["nat-app", "nat-web"]);
    let left = cluster.kubectl(&["get", "ips.kubeovn.io", "-o", "name"]);
    assert!(
        !left.contains("vpc-nat-gw"),
        "the gateway's IP records stay: {left}"
    );
    let warnings = cluster.warnings();
    assert!(warnings.is_empty(), "Warning events: {warnings:#?}");
}
