//! `cargo xtask demo`: the seed's first example on the local cluster, shown as a user sees it.
//!
//! Brings up a 2-node cluster (real kube-apiserver, OVN, our daemon and controller), applies
//! the manual's NAD, Vpc, Subnet and annotated pod with `kubectl apply`, and prints what the
//! manual's debug commands print: the pod's network-status, `ip addr`, `ip route`, and a ping
//! over net1 to a pod on the other node. With `--keep` it stays up until Ctrl-C and prints a
//! KUBECONFIG for exploring with kubectl.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::Context;
use e2e::cluster::Cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};

/// A second pod on `node` (the one the manual's pod did not land on), to show net1 across
/// nodes.
fn peer(node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: peer\n  annotations:\n    k8s.v1.cni.cncf.io/networks: default/kube-ovn-vpc-network\nspec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

fn show(title: &str, out: &std::process::Output) {
    println!("$ {title}");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    println!();
}

fn main() -> std::process::ExitCode {
    let verbose = std::env::args().any(|a| a == "--verbose");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(demo()),
        Err(err) => Err(anyhow::Error::new(err).context("starting the tokio runtime")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // The cause chain, one per line; frames only when asked for (`cargo xtask -v demo`).
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if verbose {
                eprintln!("backtrace:\n{}", err.backtrace());
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn demo() -> anyhow::Result<()> {
    let keep = std::env::args().any(|a| a == "--keep");
    println!(
        "Starting a 2-node local cluster: etcd, kube-apiserver, controller-manager, scheduler,"
    );
    println!(
        "OVN central, per-node ovsdb-server/ovs-vswitchd/ovn-controller, kube-ovn-daemon, kube-ovn-controller..."
    );
    let started = std::time::Instant::now();
    let cluster = Cluster::start(2)
        .await
        .context("starting the local cluster")?;
    println!(
        "cluster up in {:.1}s (logs: {})\n",
        started.elapsed().as_secs_f64(),
        cluster.run_dir().display()
    );

    println!("$ kubectl apply -f seed.yaml   (the manual's NAD, Vpc, Subnet and pod)");
    print!("{}", cluster.apply_yaml(&crds::seed::first_example())?);
    let wait = Duration::from_secs(90);
    let a = cluster
        .wait_running("default", "multi-network-pod", wait)
        .await?;
    let node = a
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let other = cluster
        .node_names()
        .into_iter()
        .find(|n| *n != node)
        .unwrap_or_default();
    println!("$ kubectl apply -f peer.yaml   (a peer pod on {other}, the other node)");
    print!("{}", cluster.apply_yaml(&peer(&other))?);
    cluster.wait_running("default", "peer", wait).await?;
    println!("\n$ kubectl get pod multi-network-pod -o yaml | grep -A 10 network-status");
    println!("    k8s.v1.cni.cncf.io/network-status: |-");
    for line in a
        .annotations()
        .get("k8s.v1.cni.cncf.io/network-status")
        .map(String::as_str)
        .unwrap_or("")
        .lines()
    {
        println!("      {line}");
    }
    println!();
    show(
        "kubectl exec multi-network-pod -- ip addr show",
        &cluster.exec("default", "multi-network-pod", &["ip", "addr", "show"])?,
    );
    show(
        "kubectl exec multi-network-pod -- ip route show",
        &cluster.exec("default", "multi-network-pod", &["ip", "route", "show"])?,
    );

    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let peer = pods.get("peer").await?;
    let peer_ip = peer
        .annotations()
        .get("kube-ovn-vpc-network.default.ovn.kubernetes.io/ip_address")
        .cloned()
        .unwrap_or_default();
    show(
        &format!(
            "kubectl exec multi-network-pod -- ping -c 3 -w 15 {peer_ip}   (multi-network-pod on {node}, \
             peer on {other}, over net1)"
        ),
        &cluster.exec(
            "default",
            "multi-network-pod",
            &["ping", "-c", "3", "-w", "15", &peer_ip],
        )?,
    );
    println!("$ ovn-nbctl show");
    print!("{}", cluster.nbctl(&["show"])?);

    if keep {
        println!("\nThe cluster stays up until Ctrl-C. Explore it with:");
        println!("  export KUBECONFIG={}", cluster.kubeconfig().display());
        println!("  kubectl get pods,subnets,vpcs,ips -A");
        tokio::signal::ctrl_c().await?;
    }
    println!("\nTearing down (processes, namespaces, run dir)...");
    drop(cluster);
    Ok(())
}
