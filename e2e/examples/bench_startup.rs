//! `cargo xtask bench startup`: what a kube-ovn attachment adds to a pod's start on a real
//! node (L3: kubelet, containerd, Multus, the chart). N pods are created at once on one real
//! node without an attachment, then N with one (the manual's first example), same image, same
//! node, same run; for each pod the time from its create request to the watch showing it
//! Ready. Prints p50/p99 of both and the attachment's overhead as a Markdown table.
//!
//! Needs root and what the real-node tests need: `cargo xtask setup` and `cargo xtask images`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A driver: a panic is a failed run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};

#[path = "../tests/real/common.rs"]
mod common;
use common::{create_nad_crd, fenced_plane, image_archive};

// The tests' chart cluster; its test functions are compiled out here.
#[allow(dead_code)]
#[path = "../tests/real/chart.rs"]
mod chart;

const LABEL: &str = "kube-ovn-bench=startup";

fn pod(name: &str, node: &str, attached: bool) -> Pod {
    let mut annotations = serde_json::Map::new();
    if attached {
        annotations.insert(
            "k8s.v1.cni.cncf.io/networks".into(),
            "default/kube-ovn-vpc-network".into(),
        );
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kube-ovn-bench": "startup"},
            "annotations": annotations,
        },
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "app",
                "image": e2e::real::node::WORKLOAD_IMAGE,
                "imagePullPolicy": "Never",
                // The container's first act: the kernel's uptime (the host's clock, 10 ms
                // steps), so its start is timed without kubelet's once-a-second PLEG relist.
                "command": ["sh", "-c", "cat /proc/uptime > /started; exec sleep 3600"],
            }],
        },
    }))
    .unwrap()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The host's uptime (`/proc/uptime`, the clock the containers read at their start).
fn uptime() -> Duration {
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    Duration::from_secs_f64(text.split_whitespace().next().unwrap().parse().unwrap())
}

/// One batch's times, each sorted: create → the container's first instruction, and create →
/// Ready as the watch sees it (kubelet finds a started container at its next PLEG relist, once
/// a second, so Ready comes in steps of about a second).
struct Times {
    started: Vec<Duration>,
    ready: Vec<Duration>,
}

/// Creates `n` pods at once and times each one's start.
async fn batch(
    cluster: &chart::ChartCluster,
    node: &str,
    prefix: &str,
    n: usize,
    attached: bool,
) -> Times {
    let pods: kube::Api<Pod> = kube::Api::namespaced(cluster.client(), "default");
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch = {
        let pods = pods.clone();
        let prefix = prefix.to_owned();
        tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default().labels(LABEL))
                .applied_objects()
                .boxed();
            while let Some(Ok(p)) = stream.next().await {
                let name = p.metadata.name.clone().unwrap_or_default();
                if name.starts_with(&prefix) && is_ready(&p) {
                    let _ = ready_tx.send((name, Instant::now()));
                }
            }
        })
    };
    // Let the watch start before the first create.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut created = BTreeMap::new();
    let creates = (0..n).map(|i| {
        let pods = pods.clone();
        let name = format!("{prefix}-{i}");
        let spec = pod(&name, node, attached);
        async move {
            let at = (Instant::now(), uptime());
            pods.create(&PostParams::default(), &spec).await.unwrap();
            (name, at)
        }
    });
    for (name, at) in futures::future::join_all(creates).await {
        created.insert(name, at);
    }
    let mut ready: BTreeMap<String, Instant> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while ready.len() < n {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some((name, at))) => {
                ready.entry(name).or_insert(at);
            }
            _ => panic!("{prefix}: {} of {n} pods Ready after 600 s", ready.len()),
        }
    }
    watch.abort();
    let mut ready_times: Vec<Duration> = ready
        .iter()
        .map(|(name, at)| at.duration_since(created[name].0))
        .collect();
    ready_times.sort();
    let mut started = Vec::new();
    for (name, (_, created_up)) in &created {
        // Read back with `kubectl exec` (this harness's runtime leaves container logs empty).
        let out = cluster.kubectl(&["exec", name, "--", "cat", "/started"]);
        let up: f64 = out
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name}: /started holds {out:?}"));
        started.push(Duration::from_secs_f64(up).saturating_sub(*created_up));
    }
    started.sort();
    let times = Times {
        started,
        ready: ready_times,
    };
    // Gone before the next batch, so each batch has the node to itself.
    pods.delete_collection(
        &DeleteParams::default().grace_period(0),
        &ListParams::default().labels(LABEL),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !pods
        .list(&ListParams::default().labels(LABEL))
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "{prefix}: pods not gone after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n: usize = std::env::args()
        .skip_while(|a| a != "--pods")
        .nth(1)
        .map_or(50, |v| v.parse().expect("--pods N"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cluster = chart::ChartCluster::install(
            &["bench-a"],
            "./charts/kube-ovn-v2",
            &[
                "cni.nonPrimaryCNI=true",
                "networking.datapathType=netdev",
                "agent.interface=eth1",
            ],
        )
        .await;
        cluster.apply(&[crds::seed::NAD, crds::seed::VPC_AND_SUBNET].join("---\n"));
        let node = cluster.nodes()[0].name().to_owned();
        // One of each first: images, sandboxes and the subnet warm, not measured.
        batch(&cluster, &node, "warm-plain", 1, false).await;
        batch(&cluster, &node, "warm-attached", 1, true).await;
        let plain = batch(&cluster, &node, "plain", n, false).await;
        let attached = batch(&cluster, &node, "attached", n, true).await;
        println!("\n{n} pods created at once on one real node (ms)\n");
        println!("| pods | create → container start p50 | p99 | create → Ready p50 | p99 |");
        println!("|---|---:|---:|---:|---:|");
        for (label, t) in [
            ("without attachment", &plain),
            ("one kube-ovn attachment", &attached),
        ] {
            println!(
                "| {label} | {} | {} | {} | {} |",
                ms(percentile(&t.started, 50.0)),
                ms(percentile(&t.started, 99.0)),
                ms(percentile(&t.ready, 50.0)),
                ms(percentile(&t.ready, 99.0))
            );
        }
        let over = |f: fn(&Times) -> &Vec<Duration>, p: f64| {
            ms(percentile(f(&attached), p).saturating_sub(percentile(f(&plain), p)))
        };
        println!(
            "| overhead of the attachment | {} | {} | {} | {} |",
            over(|t| &t.started, 50.0),
            over(|t| &t.started, 99.0),
            over(|t| &t.ready, 50.0),
            over(|t| &t.ready, 99.0)
        );
        // The daemon's own part of each measured ADD, from its log line
        // (`attachment added pod=default/attached-<i> ... wait_allocation_us=...`).
        let logs = cluster.kubectl(&[
            "logs",
            "-n",
            "kube-system",
            "-l",
            "app=kube-ovn-cni",
            "--tail=-1",
        ]);
        let mut phases: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for line in logs
            .lines()
            .filter(|l| l.contains("attachment added") && l.contains("pod=default/attached-"))
        {
            let field = |name: &str| -> Option<Duration> {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_micros)
            };
            let (Some(alloc), Some(plumb), Some(installed)) = (
                field("wait_allocation_us"),
                field("plumbing_us"),
                field("wait_installed_us"),
            ) else {
                continue;
            };
            for (phase, took) in [
                ("wait for the controller's allocation", alloc),
                ("veth + OVS port (plumbing)", plumb),
                ("wait for ovn-installed", installed),
                ("the daemon's whole ADD", alloc + plumb + installed),
            ] {
                phases.entry(phase).or_default().push(took);
            }
        }
        println!("\nkube-ovn-daemon's part of the {n} measured ADDs (ms, from its log)\n");
        println!("| phase | p50 | p99 |");
        println!("|---|---:|---:|");
        for (phase, mut took) in phases {
            took.sort();
            println!(
                "| {phase} | {} | {} |",
                ms(percentile(&took, 50.0)),
                ms(percentile(&took, 99.0))
            );
        }
        let warnings = cluster.warnings();
        if !warnings.is_empty() {
            println!("\nWarning events during the run: {warnings:#?}");
        }
        cluster.uninstall();
        cluster.check_fences();
    });
}
