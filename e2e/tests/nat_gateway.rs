//! The VPC NAT gateway end to end on the local cluster (L2): the controller's StatefulSet, the
//! scheduler's pod, the runner's attachments (LAN on OVN with `lanIp`, external by macvlan with
//! our IPAM on each node's `eth1`) and the `kube-ovn-daemon nat-gateway` agent, started by the
//! pod runner on the gateway's namespace. An "external host" (a namespace on the external
//! segment only, the external Subnet's gateway `172.18.0.1`, with `198.51.100.10` beyond it)
//! is reachable from the VPC only through the gateway. Real TCP: SNAT (the host sees the EIP),
//! DNAT (EIP:port reaches a pod), FIP both ways, a deleted rule stops its traffic, a restarted
//! gateway pod restores every rule, and two VPCs with one CIDR behind their own gateways stay
//! apart. Ends with the quiet check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::path::Path;
use std::time::{Duration, Instant};

use crds::condition::{READY, find_condition};
use crds::{IptablesEIP, VpcNatGateway};
use e2e::cluster::{Cluster, node_count};
use e2e::external::{self, Echo, External, FAR as EXT_FAR, GATEWAY as EXT_GATEWAY, ask};
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

const WAIT: Duration = Duration::from_secs(120);

/// Asks until the answer is `want` (rules reach the namespace asynchronously); panics with
/// the last answer after `WAIT`.
async fn answers(netns: &Path, to: &str, want: &str, what: &str) {
    let start = Instant::now();
    loop {
        let got = ask(netns, to);
        if got.as_deref() == Ok(want) {
            eprintln!("{what}: {to} answered {want:?} after {:?}", start.elapsed());
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "{what}: {to} answered {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Asks until no answer comes (a deleted rule); panics if one still does after `WAIT`.
async fn stops_answering(netns: &Path, to: &str, what: &str) {
    let start = Instant::now();
    loop {
        let got = ask(netns, to);
        if got.is_err() {
            eprintln!("{what}: {to} no longer answers ({got:?})");
            return;
        }
        assert!(start.elapsed() < WAIT, "{what}: {to} still answers {got:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The gateway pods' ServiceAccount (the chart installs it).
const SERVICE_ACCOUNT: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: vpc-nat-gw\n  namespace: kube-system\n";

/// A pod on `nad` at `ip`, routing the external segment and what lies beyond it through that
/// attachment (`eth0` keeps the pod's default route).
fn vpc_pod(name: &str, node: &str, nad: &str, provider: &str, ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: '[{{"name": "default/{nad}", "ips": ["{ip}"]}}]'
    {routes}
spec:
  nodeName: {node}
  containers:
  - name: app
    image: nginx
"#,
        routes = external::routes_annotation(provider, "10.100.0.1")
    )
}

async fn wait_gateway_ready(cluster: &Cluster, name: &str) {
    let api: Api<VpcNatGateway> = Api::all(cluster.client());
    let start = Instant::now();
    loop {
        let gw = api.get(name).await.unwrap();
        let conditions = gw
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        if find_condition(&conditions, READY)
            .is_some_and(|c| c.status == crds::ConditionStatus::True)
        {
            eprintln!("VpcNatGateway {name} Ready after {:?}", start.elapsed());
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "VpcNatGateway {name} not Ready: {conditions:?}; logs in {}",
            cluster.run_dir().display()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the EIP has its address and is Ready; returns the address.
async fn eip_ip(cluster: &Cluster, name: &str) -> String {
    let api: Api<IptablesEIP> = Api::all(cluster.client());
    let start = Instant::now();
    loop {
        let e = api.get(name).await.unwrap();
        if let Some(s) = e.status.as_ref().filter(|s| s.ready && !s.ip.is_empty()) {
            return s.ip.clone();
        }
        assert!(
            start.elapsed() < WAIT,
            "IptablesEIP {name} not ready: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The (one) pod of gateway `gw`.
fn gateway_pod(gw: &str) -> String {
    format!("vpc-nat-gw-{gw}-0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_manuals_nat_gateway_gives_the_vpc_a_way_out_and_two_vpcs_one_cidr_stay_apart() {
    let cluster = Cluster::start(node_count(2, 2)).await.unwrap();
    let nodes: Vec<String> = cluster
        .node_names()
        .iter()
        .map(|n| cluster.node_netns(n).unwrap())
        .collect();
    let ext = External::create(
        &nodes.iter().map(String::as_str).collect::<Vec<_>>(),
        "eth1",
    )
    .unwrap();
    cluster
        .apply_yaml(&[external::network_yaml("eth1").as_str(), SERVICE_ACCOUNT].join("---\n"))
        .unwrap();
    // The manual's NAD, Vpc, Subnet and VpcNatGateway, as written.
    cluster
        .apply_yaml(
            &[
                crds::seed::NAD,
                crds::seed::VPC_AND_SUBNET,
                crds::seed::NAT_GW,
            ]
            .join("---\n"),
        )
        .unwrap();
    let provider = "kube-ovn-vpc-network.default.ovn";
    cluster
        .apply_yaml(&vpc_pod(
            "app",
            "node-1",
            "kube-ovn-vpc-network",
            provider,
            "10.100.0.10/16",
        ))
        .unwrap();
    cluster
        .apply_yaml(&vpc_pod(
            "web",
            "node-2",
            "kube-ovn-vpc-network",
            provider,
            "10.100.0.20/16",
        ))
        .unwrap();
    wait_gateway_ready(&cluster, "vpc-nat-gw").await;
    cluster.apply_yaml(external::MANUAL_GATEWAY_RULES).unwrap();
    let snat_ip = eip_ip(&cluster, "eip-snat").await;
    let dnat_ip = eip_ip(&cluster, "eip-dnat").await;
    let fip_ip = eip_ip(&cluster, "eip-fip").await;
    eprintln!("EIPs: snat {snat_ip}, dnat {dnat_ip}, fip {fip_ip}");
    for ip in [&snat_ip, &dnat_ip, &fip_ip] {
        assert!(ip.starts_with("172.18.0."), "{ip}");
    }
    cluster.wait_running("default", "app", WAIT).await.unwrap();
    cluster.wait_running("default", "web", WAIT).await.unwrap();
    // The gateway pod's own external address stays leased (its IP record lives) while the
    // controller manages the pod's LAN address beside it.
    let gw_pod = cluster
        .wait_running("kube-system", &gateway_pod("vpc-nat-gw"), WAIT)
        .await
        .unwrap();
    let ext_key = format!(
        "{}.kube-system.ovn-vpc-external-network.kube-system",
        gateway_pod("vpc-nat-gw")
    );
    let ext_addr =
        &gw_pod.annotations()["ovn-vpc-external-network.kube-system.kubernetes.io/ip_address"];
    let record = cluster
        .kubectl(&[
            "get",
            "ips.kubeovn.io",
            &ext_key,
            "-o",
            "jsonpath={.spec.v4IpAddress}",
        ])
        .unwrap();
    assert_eq!(record.trim(), ext_addr.as_str(), "IP record {ext_key}");
    let app = cluster.pod_netns("default", "app").unwrap();
    let web = cluster.pod_netns("default", "web").unwrap();

    let _far = Echo::start(&ext.host(), 7000, "far").unwrap();
    let _app80 = Echo::start(&app, 80, "app").unwrap();
    let _web9000 = Echo::start(&web, 9000, "web").unwrap();
    // SNAT: the VPC pod reaches beyond the external segment; the host sees the EIP.
    answers(
        &app,
        &format!("{EXT_FAR}:7000"),
        &format!("far {snat_ip}"),
        "SNAT",
    )
    .await;
    // DNAT: EIP:8080 reaches the pod's port 80, the client's address kept.
    answers(
        &ext.host(),
        &format!("{dnat_ip}:8080"),
        &format!("app {EXT_GATEWAY}"),
        "DNAT",
    )
    .await;
    // FIP, both ways: in on any port, out as the FIP (not the subnet's SNAT).
    answers(
        &ext.host(),
        &format!("{fip_ip}:9000"),
        &format!("web {EXT_GATEWAY}"),
        "FIP in",
    )
    .await;
    answers(
        &web,
        &format!("{EXT_FAR}:7000"),
        &format!("far {fip_ip}"),
        "FIP out",
    )
    .await;

    // A second VPC with the same CIDR behind its own gateway: the same pod address, each
    // leaves by its own EIP, and each EIP's DNAT reaches its own pod.
    cluster
        .apply_yaml(
            &(crds::seed::NAD.replace("kube-ovn-vpc-network", "vpc-b-network")
                + "---\n"
                + r#"apiVersion: kubeovn.io/v1
kind: Vpc
metadata:
  name: vpc-b
spec:
  namespaces:
  - default
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: subnet-b
spec:
  vpc: vpc-b
  cidr: "10.100.0.0/16"
  gateway: "10.100.0.1"
  provider: vpc-b-network.default.ovn
---
apiVersion: kubeovn.io/v1
kind: VpcNatGateway
metadata:
  name: gw-b
spec:
  vpc: vpc-b
  subnet: subnet-b
  lanIp: "10.100.0.254"
---
apiVersion: kubeovn.io/v1
kind: IptablesEIP
metadata:
  name: eip-b
spec:
  natGwDp: gw-b
---
apiVersion: kubeovn.io/v1
kind: IptablesSnatRule
metadata:
  name: snat-b
spec:
  eip: eip-b
  internalCIDR: 10.100.0.0/16
---
apiVersion: kubeovn.io/v1
kind: IptablesDnatRule
metadata:
  name: dnat-b
spec:
  eip: eip-b
  externalPort: "8080"
  internalIp: 10.100.0.10
  internalPort: "80"
  protocol: tcp
"#),
        )
        .unwrap();
    cluster
        .apply_yaml(&vpc_pod(
            "b-app",
            "node-2",
            "vpc-b-network",
            "vpc-b-network.default.ovn",
            "10.100.0.10/16",
        ))
        .unwrap();
    wait_gateway_ready(&cluster, "gw-b").await;
    let b_ip = eip_ip(&cluster, "eip-b").await;
    assert_ne!(b_ip, snat_ip);
    cluster
        .wait_running("default", "b-app", WAIT)
        .await
        .unwrap();
    let b_app = cluster.pod_netns("default", "b-app").unwrap();
    let _b80 = Echo::start(&b_app, 80, "b-app").unwrap();
    answers(
        &b_app,
        &format!("{EXT_FAR}:7000"),
        &format!("far {b_ip}"),
        "VPC b SNAT",
    )
    .await;
    answers(
        &app,
        &format!("{EXT_FAR}:7000"),
        &format!("far {snat_ip}"),
        "VPC a SNAT",
    )
    .await;
    answers(
        &ext.host(),
        &format!("{b_ip}:8080"),
        &format!("b-app {EXT_GATEWAY}"),
        "VPC b DNAT",
    )
    .await;

    // From here on, with everything set up and answering, the cluster must stay quiet.
    let quiet = cluster.quiet_mark().await.unwrap();

    // A deleted rule stops its traffic; the others go on.
    cluster
        .kubectl(&["delete", "iptables-dnat-rules.kubeovn.io", "dnat-app"])
        .unwrap();
    stops_answering(&ext.host(), &format!("{dnat_ip}:8080"), "DNAT deleted").await;
    answers(
        &app,
        &format!("{EXT_FAR}:7000"),
        &format!("far {snat_ip}"),
        "SNAT still",
    )
    .await;

    // The gateway pod restarted (StatefulSet recreates it): every rule comes back.
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "kube-system");
    let old = pods.get(&gateway_pod("vpc-nat-gw")).await.unwrap();
    pods.delete(&gateway_pod("vpc-nat-gw"), &DeleteParams::default())
        .await
        .unwrap();
    let restarted = Instant::now();
    cluster
        .wait_deleted("kube-system", &old.name_any(), &old.uid().unwrap(), WAIT)
        .await
        .unwrap();
    answers(
        &app,
        &format!("{EXT_FAR}:7000"),
        &format!("far {snat_ip}"),
        "SNAT after restart",
    )
    .await;
    answers(
        &ext.host(),
        &format!("{fip_ip}:9000"),
        &format!("web {EXT_GATEWAY}"),
        "FIP after restart",
    )
    .await;
    eprintln!(
        "gateway pod restart: rules back after {:?}",
        restarted.elapsed()
    );
    wait_gateway_ready(&cluster, "vpc-nat-gw").await;

    // Deleting a gateway removes its pod and its VPC's way out; the other VPC keeps its own.
    // As a user tears a gateway down: its rules and EIPs first, then the gateway.
    cluster
        .kubectl(&[
            "delete",
            "iptables-snat-rules.kubeovn.io/snat-b",
            "iptables-dnat-rules.kubeovn.io/dnat-b",
            "iptables-eips.kubeovn.io/eip-b",
            "--wait",
        ])
        .unwrap();
    cluster
        .kubectl(&["delete", "vpc-nat-gateways.kubeovn.io", "gw-b"])
        .unwrap();
    stops_answering(&b_app, &format!("{EXT_FAR}:7000"), "gw-b deleted").await;
    answers(
        &app,
        &format!("{EXT_FAR}:7000"),
        &format!("far {snat_ip}"),
        "VPC a after gw-b",
    )
    .await;

    cluster.assert_quiet(&quiet, &[]).await.unwrap();
}
