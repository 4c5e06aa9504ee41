//! `cargo xtask demo --real [--keep]`: the README's install and the manual's first example on
//! two real nodes (kubelet, containerd and Multus in fenced namespaces of this machine), shown
//! as a user sees it with the manual's commands. With `--keep` (`KUBE_OVN_E2E_KEEP` set, as
//! `cargo xtask demo --real --keep` does) the cluster stays up, chart and pods included, until
//! Enter or Ctrl-C, with a KUBECONFIG to explore it; then `helm uninstall` and teardown.
//!
//! Needs root and what the real-node tests need (`cargo xtask setup`, `cargo xtask images`;
//! `cargo xtask demo --real` does both first).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)] // A demo: a panic is a failed run.

#[path = "../tests/real/common.rs"]
mod common;
use common::{create_nad_crd, fenced_plane, image_archive};

// The tests' chart cluster; its test functions are compiled out here.
#[allow(dead_code)]
#[path = "../tests/real/chart.rs"]
mod chart;

fn show(title: &str, out: &str) {
    println!("$ {title}\n{out}\n");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let values = [
            "cni.nonPrimaryCNI=true",
            "networking.datapathType=netdev",
            "agent.interface=eth1",
        ];
        println!(
            "$ helm install kube-ovn ./charts/kube-ovn-v2 --namespace kube-system --set {}",
            values.join(" --set ")
        );
        let cluster =
            chart::ChartCluster::install(&["real-a", "real-b"], "./charts/kube-ovn-v2", &values)
                .await;
        show(
            "kubectl get pods -n kube-system -o wide",
            &cluster.kubectl(&["get", "pods", "-n", "kube-system", "-o", "wide"]),
        );
        println!("$ kubectl apply -f <the manual's NAD, Vpc, Subnet and pod>\n");
        cluster.apply(&chart::first_example());
        cluster.wait_ready("multi-network-pod");
        let (_, there) = cluster.node_of_and_other("multi-network-pod");
        cluster.apply(&chart::manual_pod_on("multi-network-peer", &there));
        cluster.wait_ready("multi-network-peer");
        show(
            "kubectl get pod multi-network-pod -o jsonpath='{.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/network-status}'",
            &cluster.kubectl(&[
                "get",
                "pod",
                "multi-network-pod",
                "-o",
                r"jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}",
            ]),
        );
        for args in [["ip", "addr", "show"], ["ip", "route", "show"]] {
            let mut cmd = vec!["exec", "multi-network-pod", "--"];
            cmd.extend(args);
            show(
                &format!("kubectl exec multi-network-pod -- {}", args.join(" ")),
                &cluster.kubectl(&cmd),
            );
        }
        let (_, peer_ips) = chart::kube_ovn_status(&cluster, "multi-network-peer");
        let peer = peer_ips.first().cloned().unwrap_or_default();
        show(
            &format!("kubectl exec multi-network-pod -- ping -c 3 {peer}   # on {there}, over net1"),
            &cluster
                .try_kubectl(&["exec", "multi-network-pod", "--", "ping", "-c", "3", "-W", "2", &peer])
                .unwrap_or_else(|e| e.to_string()),
        );
        show(
            "kubectl logs -n kube-system daemonset/kube-ovn-cni --tail=5",
            &cluster.kubectl(&["logs", "-n", "kube-system", "daemonset/kube-ovn-cni", "--tail=5"]),
        );
        // With --keep: held here, chart and pods in place; then uninstall and teardown.
        cluster.uninstall();
        cluster.check_fences();
    });
}
