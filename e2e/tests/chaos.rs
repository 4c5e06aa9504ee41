//! The randomized fault schedule on the data path (L2: the local cluster of `e2e::cluster`, with
//! its node daemons, ovs-vswitchd and ovn-controller per node, and pods as network namespaces
//! with real interfaces). `controller/tests/chaos.rs` hammers the control plane (controller
//! kills and leader changes, NB kills, wipes and RAFT leaders, delayed API writes); this one
//! adds what only the data path has: node daemons killed with SIGKILL (wherever they are: in an
//! ADD, a DEL, node init) and started again after a few steps, and ovs-vswitchd killed and
//! started again (it rebuilds bridges and ports from its database), while pods are created,
//! deleted and recreated under the same name on both nodes and the controller is killed too.
//!
//! After the steps every daemon runs again and the run waits until every pod is Running, then
//! checks, each by its own source:
//! - each pod's `net1` (the kernel's view, in its namespace) carries the address and MAC the
//!   controller annotated, and no address or MAC is on two pods;
//! - NB: the subnet's switch has exactly one port per pod (plus its router port), with those
//!   addresses; the `IP` CRs are exactly one per pod, naming its UID and address;
//! - each node's OVS has exactly one pod interface per pod on that node (no leaked port);
//! - every pod pings its subnet's gateway, and the first pod pings every other (geneve between
//!   the nodes);
//! - the quiet after success: no Warning Event, no failed reconcile once the pods run.
//!
//! `CHAOS_RUNS` runs (default 1) on one cluster, each from an empty namespace; `CHAOS_STEPS`
//! steps (default 10); seeds from `CHAOS_SEED` (default: the clock); `CHAOS_MIN_FAULTS`
//! (default 0) makes a run draw more steps until it has had that many faults (daemon, switch
//! and controller kills; at most four times the steps). `cargo xtask chaos` runs this after the
//! control-plane chaos with the same arguments. A failure prints the seed and the schedule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crds::IP;
use crds::naming::{AnnotationKey, annotation_key, lsp_name, switch_router_port};
use e2e::cluster::Cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const NAMESPACE: &str = "default";
const NAD: &str = "chaos";
const PROVIDER: &str = "chaos.default.ovn";
const SUBNET: &str = "chaos-net";
const VPC: &str = "chaos";
const GATEWAY: &str = "10.177.0.1";
/// Names of the pods a run creates: few, so deletions and same-name recreations hit.
const NAMES: u64 = 8;
/// How long the cluster may take to settle after the last step.
const SETTLE: Duration = Duration::from_secs(150);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn network_yaml() -> String {
    format!(
        r#"apiVersion: kubeovn.io/v1
kind: Vpc
metadata:
  name: {VPC}
spec:
  namespaces:
  - {NAMESPACE}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: {SUBNET}
spec:
  vpc: {VPC}
  cidrBlock: 10.177.0.0/24
  gateway: {GATEWAY}
  provider: {PROVIDER}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: {NAD}
  namespace: {NAMESPACE}
spec:
  config: '{{"cniVersion": "1.0.0", "type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock", "provider": "{PROVIDER}"}}'
"#
    )
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"app": "chaos"},
            "annotations": {"k8s.v1.cni.cncf.io/networks": format!("{NAD}@net1")},
        },
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]},
    }))
    .unwrap()
}

/// Faults injected, by kind.
type Faults = BTreeMap<&'static str, usize>;

struct Run<'a> {
    cluster: &'a Cluster,
    pods: Api<Pod>,
    nodes: Vec<String>,
    rng: fastrand::Rng,
    schedule: Vec<String>,
    faults: Faults,
    /// Nodes whose daemon is down, with the steps left until it starts again.
    down: BTreeMap<String, u64>,
    /// Same-name recreations in flight (the new pod is created once the old one is gone).
    recreations: Vec<tokio::task::JoinHandle<()>>,
}

impl Run<'_> {
    fn log(&mut self, line: String) {
        println!("  {line}");
        self.schedule.push(line);
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    fn fault_count(&self) -> usize {
        self.faults.values().sum()
    }

    fn pick_node(&mut self) -> String {
        self.nodes[self.rng.usize(..self.nodes.len())].clone()
    }

    async fn exists(&self, name: &str) -> bool {
        matches!(self.pods.get_opt(name).await, Ok(Some(p)) if p.metadata.deletion_timestamp.is_none())
    }

    async fn create(&mut self, name: &str) {
        let node = self.pick_node();
        match self
            .pods
            .create(&PostParams::default(), &pod(name, &node))
            .await
        {
            Ok(_) => self.log(format!("create {name} on {node}")),
            Err(e) => self.log(format!("create {name} on {node}: refused ({e})")),
        }
    }

    async fn delete(&mut self, name: &str) {
        let _ = self.pods.delete(name, &DeleteParams::default()).await;
        self.log(format!("delete {name}"));
    }

    /// Deletes `name` and creates it again (another UID, maybe another node) as soon as the
    /// API lets it (once the old pod is gone), without waiting here.
    async fn recreate(&mut self, name: &str) {
        let node = self.pick_node();
        let _ = self.pods.delete(name, &DeleteParams::default()).await;
        self.log(format!("recreate {name} on {node}"));
        let pods = self.pods.clone();
        let name = name.to_owned();
        self.recreations.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if pods
                    .create(&PostParams::default(), &pod(&name, &node))
                    .await
                    .is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }

    async fn start_daemon(&mut self, node: &str) {
        let started = Instant::now();
        self.cluster.start_daemon(node).await.unwrap_or_else(|e| {
            panic!("{}\nschedule:\n{}", e, self.schedule.join("\n"));
        });
        self.down.remove(node);
        self.log(format!(
            "daemon on {node} started, serving after {} ms",
            started.elapsed().as_millis()
        ));
    }

    /// One step drawn from the generator.
    async fn step(&mut self) {
        // Daemons down long enough come back first.
        let due: Vec<String> = self
            .down
            .iter_mut()
            .filter_map(|(node, left)| {
                *left = left.saturating_sub(1);
                (*left == 0).then(|| node.clone())
            })
            .collect();
        for node in due {
            self.start_daemon(&node).await;
        }
        let name = format!("c{}", self.rng.u64(..NAMES));
        match self.rng.u32(..100) {
            0..=39 => {
                if self.exists(&name).await {
                    self.delete(&name).await;
                } else {
                    self.create(&name).await;
                }
            }
            40..=54 => {
                if self.exists(&name).await {
                    self.recreate(&name).await;
                } else {
                    self.create(&name).await;
                }
            }
            55..=79 => {
                let node = self.pick_node();
                if self.down.contains_key(&node) {
                    self.start_daemon(&node).await;
                } else {
                    self.cluster.kill_daemon(&node).unwrap();
                    let steps = self.rng.u64(1..=4);
                    self.down.insert(node.clone(), steps);
                    self.fault("daemon kill");
                    self.log(format!("kill -9 the daemon on {node} (down {steps} steps)"));
                }
            }
            80..=87 => {
                let node = self.pick_node();
                self.cluster.restart_vswitchd(&node).unwrap();
                self.fault("vswitchd kill");
                self.log(format!("kill -9 ovs-vswitchd on {node}, start it again"));
            }
            _ => {
                self.cluster.restart_controller().unwrap();
                self.fault("controller kill");
                self.log("kill -9 the controller, start it again".into());
            }
        }
        let pause = self.rng.u64(..700);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// What the cluster says about one running pod.
#[derive(Debug)]
struct Seen {
    node: String,
    uid: String,
    ip: String,
    mac: String,
}

/// Waits until every pod of the namespace is Running on its harness node and no other is set
/// up there; returns them by name.
async fn settle(cluster: &Cluster, pods: &Api<Pod>) -> Result<BTreeMap<String, Pod>, String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let list = pods
            .list(&ListParams::default().labels("app=chaos"))
            .await
            .map_err(|e| e.to_string())?;
        let running: BTreeMap<String, Pod> = list
            .items
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .map(|p| (p.name_any(), p.clone()))
            .collect();
        let harness: BTreeSet<String> = cluster
            .harness_pods()
            .into_iter()
            .filter(|(ns, _)| ns == NAMESPACE)
            .map(|(_, name)| name)
            .collect();
        let all_running = running.len() == list.items.len();
        if all_running && harness == running.keys().cloned().collect() {
            return Ok(running);
        }
        if Instant::now() > deadline {
            let stuck: Vec<String> = list
                .items
                .iter()
                .filter(|p| !running.contains_key(&p.name_any()))
                .map(|p| {
                    format!(
                        "{} (deleting: {}, sandbox error: {:?})",
                        p.name_any(),
                        p.metadata.deletion_timestamp.is_some(),
                        p.annotations().get("e2e.kubeovn.io/sandbox-error")
                    )
                })
                .collect();
            return Err(format!(
                "not settled within {} s: pods not Running {stuck:?}; harness has {harness:?}, \
                 API Running {:?}",
                SETTLE.as_secs(),
                running.keys().collect::<Vec<_>>()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The address and MAC of `net1` in a pod's namespace, as the kernel has them.
fn interface(cluster: &Cluster, pod: &str) -> Result<(String, String), String> {
    let out = cluster
        .exec(NAMESPACE, pod, &["ip", "-j", "addr", "show", "dev", "net1"])
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{pod}: no net1 ({e}): {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let link = &v[0];
    let mac = link["address"].as_str().unwrap_or_default().to_owned();
    let ips: Vec<String> = link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect();
    match ips.as_slice() {
        [one] => Ok((one.clone(), mac)),
        _ => Err(format!("{pod}: net1 has IPv4 addresses {ips:?}, want one")),
    }
}

/// The checks that read the kernel, the annotations and the pods' own view; every problem found.
fn check_pods(
    cluster: &Cluster,
    running: &BTreeMap<String, Pod>,
) -> (BTreeMap<String, Seen>, Vec<String>) {
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    let mut by_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_mac: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, p) in running {
        let ann = p.annotations();
        let ip = ann.get(&annotation_key(PROVIDER, AnnotationKey::IpAddress));
        let mac = ann.get(&annotation_key(PROVIDER, AnnotationKey::MacAddress));
        let (Some(ip), Some(mac)) = (ip, mac) else {
            problems.push(format!(
                "{name}: Running without the allocation annotations"
            ));
            continue;
        };
        match interface(cluster, name) {
            Err(e) => problems.push(e),
            Ok((real_ip, real_mac)) => {
                let want = real_ip.split('/').next().unwrap_or_default();
                if want != ip || real_mac != *mac {
                    problems.push(format!(
                        "{name}: net1 has {real_ip} {real_mac}, the annotation says {ip} {mac}"
                    ));
                }
                by_ip.entry(want.to_owned()).or_default().push(name.clone());
                by_mac.entry(real_mac).or_default().push(name.clone());
            }
        }
        seen.insert(
            name.clone(),
            Seen {
                node: p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
                uid: p.uid().unwrap_or_default(),
                ip: ip.clone(),
                mac: mac.clone(),
            },
        );
    }
    for (what, map) in [("address", &by_ip), ("MAC", &by_mac)] {
        for (value, holders) in map {
            if holders.len() > 1 {
                problems.push(format!("{what} {value} is on {holders:?}"));
            }
        }
    }
    (seen, problems)
}

/// The checks that read NB, the IP CRs and each node's OVS against the pods; every problem.
async fn check_records(cluster: &Cluster, seen: &BTreeMap<String, Seen>) -> Vec<String> {
    let mut problems = Vec::new();
    // NB: one port per pod on the switch, with the pod's addresses, and the router port.
    let want: BTreeMap<String, String> = seen
        .iter()
        .map(|(name, s)| {
            (
                lsp_name(name, NAMESPACE, PROVIDER),
                format!("{} {}", s.mac, s.ip),
            )
        })
        .collect();
    let router_port = switch_router_port(SUBNET, VPC);
    match cluster.nbctl(&[
        "--format=json",
        "--columns=name,addresses",
        "find",
        "Logical_Switch_Port",
        &format!("external_ids:ls={SUBNET}"),
    ]) {
        Err(e) => problems.push(format!("NB: {e}")),
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let mut have: BTreeMap<String, String> = BTreeMap::new();
            for row in v["data"].as_array().into_iter().flatten() {
                let name = row[0].as_str().unwrap_or_default().to_owned();
                let addresses = match &row[1] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other[1]
                        .as_array()
                        .and_then(|a| a.first())
                        .and_then(|a| a.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                };
                if name != router_port {
                    have.insert(name, addresses);
                }
            }
            if have != want {
                problems.push(format!(
                    "NB ports of {SUBNET}: have {have:?}, want {want:?}"
                ));
            }
        }
    }
    // IP CRs: one per pod, naming its UID and address.
    let ips: Api<IP> = Api::all(cluster.client());
    match ips.list(&ListParams::default()).await {
        Err(e) => problems.push(format!("IP CRs: {e}")),
        Ok(list) => {
            let have: BTreeMap<String, String> = list
                .items
                .iter()
                .filter(|ip| ip.spec.subnet == SUBNET)
                .map(|ip| {
                    (
                        ip.name_any(),
                        format!(
                            "{} {} {}",
                            ip.spec.pod_uid, ip.spec.mac_address, ip.spec.v4_ip_address
                        ),
                    )
                })
                .collect();
            let want: BTreeMap<String, String> = seen
                .iter()
                .map(|(name, s)| {
                    (
                        lsp_name(name, NAMESPACE, PROVIDER),
                        format!("{} {} {}", s.uid, s.mac, s.ip),
                    )
                })
                .collect();
            if have != want {
                problems.push(format!("IP CRs of {SUBNET}: have {have:?}, want {want:?}"));
            }
        }
    }
    // Each node's OVS: one pod interface per pod on that node.
    for node in cluster.node_names() {
        let expected: BTreeSet<String> = seen
            .iter()
            .filter(|(_, s)| s.node == node)
            .map(|(name, _)| lsp_name(name, NAMESPACE, PROVIDER))
            .collect();
        match cluster.node_vsctl(
            &node,
            &[
                "--format=json",
                "--columns=external_ids",
                "find",
                "Interface",
                "external_ids:vendor=kube-ovn",
            ],
        ) {
            Err(e) => problems.push(format!("OVS of {node}: {e}")),
            Ok(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let mut have = BTreeSet::new();
                for row in v["data"].as_array().into_iter().flatten() {
                    for pair in row[0][1].as_array().into_iter().flatten() {
                        if pair[0] == "iface-id"
                            && let Some(id) = pair[1].as_str()
                            && id.ends_with(&format!(".{PROVIDER}"))
                        {
                            have.insert(id.to_owned());
                        }
                    }
                }
                if have != expected {
                    problems.push(format!(
                        "OVS interfaces on {node}: have {have:?}, want {expected:?}"
                    ));
                }
            }
        }
    }
    problems
}

/// Pings: each pod its gateway, the first pod every other one.
fn check_pings(cluster: &Cluster, seen: &BTreeMap<String, Seen>) -> Vec<String> {
    let mut problems = Vec::new();
    let ping = |from: &str, to: &str| {
        cluster
            .exec(NAMESPACE, from, &["ping", "-c", "1", "-w", "10", to])
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    for name in seen.keys() {
        if !ping(name, GATEWAY) {
            problems.push(format!("{name} does not ping its gateway {GATEWAY}"));
        }
    }
    if let Some((first, rest)) = seen.iter().next().map(|(f, _)| (f, seen.iter().skip(1))) {
        for (name, s) in rest {
            let to = s.ip.split('/').next().unwrap_or_default();
            if !ping(first, to) {
                problems.push(format!(
                    "{first} does not ping {name} ({to}, on {})",
                    s.node
                ));
            }
        }
    }
    problems
}

/// Runs the record and pod checks until they pass (the records converge a moment after the pods
/// run: a deleted pod's port and IP CR go once the controller has seen the deletion), for at
/// most a minute; the problems of the last try otherwise.
async fn converged(
    cluster: &Cluster,
    running: &BTreeMap<String, Pod>,
) -> Result<BTreeMap<String, Seen>, Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (seen, mut problems) = check_pods(cluster, running);
        problems.extend(check_records(cluster, &seen).await);
        if problems.is_empty() {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            return Err(problems);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes every pod of the runs and waits until they are gone.
async fn clear(pods: &Api<Pod>) {
    let label = ListParams::default().labels("app=chaos");
    let _ = pods
        .delete_collection(&DeleteParams::default(), &label)
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pods.list(&label).await.unwrap().items.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the chaos pods are not gone within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The checks can fail: on two settled pods, an address copied onto the other pod and a port
/// left on a node are each reported.
async fn the_checks_can_fail(cluster: &Cluster, pods: &Api<Pod>) {
    let nodes = cluster.node_names();
    for (name, node) in ["probe-a", "probe-b"].iter().zip(nodes.iter().cycle()) {
        pods.create(&PostParams::default(), &pod(name, node))
            .await
            .unwrap();
    }
    let running = settle(cluster, pods).await.unwrap();
    let seen = converged(cluster, &running).await.unwrap();
    assert!(check_pings(cluster, &seen).is_empty());

    let copied = &seen["probe-a"].ip;
    let set = format!("ip addr flush dev net1 && ip addr add {copied}/24 dev net1");
    let out = cluster
        .exec(NAMESPACE, "probe-b", &["sh", "-c", &set])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (_, problems) = check_pods(cluster, &running);
    let doubled = format!("address {copied} is on [\"probe-a\", \"probe-b\"]");
    assert!(
        problems.iter().any(|p| p.contains(&doubled)),
        "a copied address went unseen: {problems:?}"
    );

    let ghost = lsp_name("ghost", NAMESPACE, PROVIDER);
    cluster
        .node_vsctl(
            &nodes[0],
            &[
                "add-port",
                "br-int",
                "kovn-ghost",
                "--",
                "set",
                "Interface",
                "kovn-ghost",
                "type=internal",
                "external_ids:vendor=kube-ovn",
                &format!("external_ids:iface-id={ghost}"),
            ],
        )
        .unwrap();
    let problems = check_records(cluster, &seen).await;
    cluster
        .node_vsctl(&nodes[0], &["del-port", "br-int", "kovn-ghost"])
        .unwrap();
    assert!(
        problems.iter().any(
            |p| p.starts_with(&format!("OVS interfaces on {}", nodes[0])) && p.contains(&ghost)
        ),
        "a leaked port went unseen: {problems:?}"
    );
    clear(pods).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_address_is_doubled_or_lost_when_daemons_and_the_controller_die_under_pod_churn() {
    let runs = env_u64("CHAOS_RUNS").unwrap_or(1);
    let steps = env_u64("CHAOS_STEPS").unwrap_or(10);
    let min_faults = env_u64("CHAOS_MIN_FAULTS").unwrap_or(0);
    let first_seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
    });
    let mut cluster = Cluster::start(2).await.unwrap();
    cluster.apply_yaml(&network_yaml()).unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), NAMESPACE);
    the_checks_can_fail(&cluster, &pods).await;
    let started = Instant::now();
    let mut total: Faults = BTreeMap::new();
    let mut fewest = usize::MAX;
    for i in 0..runs {
        let seed = first_seed + i;
        println!("data-path chaos run {} of {runs}, seed {seed}", i + 1);
        let mut run = Run {
            cluster: &cluster,
            pods: pods.clone(),
            nodes: cluster.node_names(),
            rng: fastrand::Rng::with_seed(seed),
            schedule: vec![format!("seed {seed}")],
            faults: BTreeMap::new(),
            down: BTreeMap::new(),
            recreations: Vec::new(),
        };
        let mut taken = 0;
        while taken < steps
            || (run.fault_count() < usize::try_from(min_faults).unwrap_or(usize::MAX)
                && taken < steps * 5)
        {
            run.step().await;
            taken += 1;
        }
        let down: Vec<String> = run.down.keys().cloned().collect();
        for node in down {
            run.start_daemon(&node).await;
        }
        for task in std::mem::take(&mut run.recreations) {
            let _ = task.await;
        }
        let fail = |what: String, run: &Run<'_>| -> ! {
            panic!(
                "data-path chaos run with seed {seed} broke an invariant:\n{what}\nschedule:\n{}\n(repeat: CHAOS_SEED={seed} CHAOS_RUNS=1 CHAOS_STEPS={steps} CHAOS_MIN_FAULTS={min_faults} cargo test -p e2e --test chaos -- --nocapture)",
                run.schedule.join("\n")
            )
        };
        let running = settle(&cluster, &pods)
            .await
            .unwrap_or_else(|e| fail(e, &run));
        let seen = converged(&cluster, &running)
            .await
            .unwrap_or_else(|problems| fail(problems.join("\n"), &run));
        let mark = cluster.quiet_mark().await.unwrap();
        let pings = check_pings(&cluster, &seen);
        if !pings.is_empty() {
            fail(pings.join("\n"), &run);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Err(e) = cluster.assert_quiet(&mark, &[]).await {
            fail(e.to_string(), &run);
        }
        println!(
            "run {} (seed {seed}): {taken} steps, {} pods running and checked, faults {:?}",
            i + 1,
            seen.len(),
            run.faults
        );
        fewest = fewest.min(run.fault_count());
        for (kind, n) in &run.faults {
            *total.entry(kind).or_default() += n;
        }
        drop(run);
        // No process of ours died on its own (a daemon or the controller that crashed).
        cluster.check_running().unwrap();
        // The next run starts from an empty namespace.
        clear(&pods).await;
    }
    println!(
        "data-path chaos: {runs} runs from seed {first_seed}, no violation; faults {:?} ({} in all, fewest in a run {}), {:.0} s",
        total,
        total.values().sum::<usize>(),
        if runs == 0 { 0 } else { fewest },
        started.elapsed().as_secs_f64()
    );
}
