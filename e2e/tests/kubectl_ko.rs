//! `kubectl ko` on the local cluster (L2): real apiserver, real OVN, real ovn-controller. The
//! binary runs here with the cluster's database addresses (`--nb`, `--sb`, `--ovs`), which is
//! the same code path as in a cluster except that each ctl tool runs locally instead of through
//! `kubectl exec` (that command line is unit-tested in `daemon::ko::tools`).
//!
//! A pod with a kube-ovn attachment diagnoses clean; `nbctl show` shows its switch, `vsctl` and
//! `ofctl` reach the node's bridge; `trace` to a second pod on the same subnet ends at that pod's
//! port; then ovn-controller on the node exits (its chassis leaves the Southbound) and diagnose
//! names the port binding as the first broken link and exits 1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use e2e::cluster::{Cluster, binary};
use e2e::scenario::addr_of;

const WAIT: Duration = Duration::from_secs(90);
const NODE: &str = "node-1";

const NETWORK: &str = r#"
apiVersion: kubeovn.io/v1
kind: Vpc
metadata:
  name: vpc-ko
spec:
  namespaces:
  - default
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: ko-net
  namespace: default
spec:
  config: |
    {
      "cniVersion": "0.3.1",
      "type": "kube-ovn",
      "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
      "provider": "ko-net.default.ovn"
    }
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: ko-subnet
spec:
  vpc: vpc-ko
  cidr: "10.120.0.0/24"
  provider: ko-net.default.ovn
"#;

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: default/ko-net\nspec:\n  nodeName: {NODE}\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

/// Runs `kubectl-ko` with the cluster's addresses.
fn ko(cluster: &Cluster, args: &[&str]) -> Output {
    let out = Command::new(binary("kubectl-ko").unwrap())
        .arg(format!("--kubeconfig={}", cluster.kubeconfig().display()))
        .arg(format!("--nb={}", cluster.nb_remote()))
        .arg(format!("--sb={}", cluster.sb_remote()))
        .arg(format!(
            "--ovs={NODE}={}",
            cluster.node_ovs_remote(NODE).unwrap()
        ))
        .args(args)
        .output()
        .unwrap();
    println!(
        "$ kubectl ko {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_trace_and_nbctl_on_a_real_attachment() {
    let cluster = Cluster::start(1).await.unwrap();
    cluster.apply_yaml(NETWORK).unwrap();
    cluster.apply_yaml(&pod("ko-a")).unwrap();
    cluster.apply_yaml(&pod("ko-b")).unwrap();
    for p in ["ko-a", "ko-b"] {
        cluster.wait_running("default", p, WAIT).await.unwrap();
    }
    let port_b = crds::naming::lsp_name("ko-b", "default", "ko-net.default.ovn");

    tokio::task::block_in_place(|| {
        // Every link ok.
        let out = ko(&cluster, &["diagnose", "default/ko-a"]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.contains("every link is ok"), "{text}");
        let ok_lines = text
            .lines()
            .filter(|l| l.trim_start().starts_with("ok "))
            .count();
        assert_eq!(ok_lines, daemon::ko::chain::LINKS.len(), "{text}");
        assert!(
            text.contains("ko-a.default.ko-net.default.ovn bound to chassis node-1"),
            "{text}"
        );

        // Pass-through to the Northbound.
        let out = ko(&cluster, &["nbctl", "show"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("ko-subnet"), "{}", stdout(&out));
        let out = ko(
            &cluster,
            &["vsctl", NODE, "--columns=name", "list", "Bridge"],
        );
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("br-int"), "{}", stdout(&out));
        // ovs-ofctl reaches br-int.mgmt beside the node's database socket.
        let out = ko(
            &cluster,
            &["ofctl", NODE, "dump-flows", "br-int", "table=0"],
        );
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("priority="), "{}", stdout(&out));

        // A trace to the other pod on the subnet ends at its port.
        let b = addr_of(&cluster, "ko-b");
        for extra in [&[][..], &["tcp", "80"][..]] {
            let mut args = vec!["trace", "default/ko-a", "--network", "default/ko-net", &b];
            args.extend_from_slice(extra);
            let out = ko(&cluster, &args);
            let text = stdout(&out);
            assert_eq!(out.status.code(), Some(0), "{text}");
            assert!(
                text.lines()
                    .any(|l| l.contains("output to") && l.contains(&port_b)),
                "the trace does not reach {port_b}:\n{text}"
            );
        }
        // Off the subnet, the first hop is the VPC's router port.
        let out = ko(
            &cluster,
            &[
                "trace",
                "default/ko-a",
                "--network",
                "default/ko-net",
                "10.121.0.5",
            ],
        );
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains("ingress(dp=\"vpc-ko\""),
            "the trace never enters the router:\n{text}"
        );
    });

    // Break a link: ovn-controller on the node exits and takes its chassis with it.
    cluster.stop_ovn_controller(NODE).unwrap();
    tokio::task::block_in_place(|| {
        // The Southbound drops the chassis in the exiting controller's last transaction; the
        // check is retried (bounded) in case ovn-northd's follow-up lags behind.
        let started = Instant::now();
        loop {
            let out = ko(&cluster, &["diagnose", "default/ko-a"]);
            let text = stdout(&out);
            let marked = text.lines().find(|l| l.contains("<== first broken link"));
            if let Some(line) = marked {
                assert_eq!(out.status.code(), Some(1), "{text}");
                assert!(
                    line.contains("BROKEN") && line.contains("port binding"),
                    "{text}"
                );
                assert!(line.contains("bound to no chassis"), "{text}");
                assert!(text.contains("result: BROKEN"), "{text}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "diagnose never found the broken link:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}
