//! The chart on real nodes: the README's install, then the manual's walkthrough by `kubectl`
//! only, as a user does it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e::helm::Helm;
use e2e::k8s::{Binaries, ControlPlane};
use e2e::real::fence::Fence;
use e2e::real::net::HostBridge;
use e2e::real::node::{MULTUS_BIN, NodeConfig, RealNode, WORKLOAD_IMAGE};

use super::image_archive;

/// The workloads the chart runs, as `kubectl rollout status` names them (`ovs-ovn` is
/// `OnDelete`, which `rollout status` refuses: see [`ChartCluster::wait_daemonset_ready`]).
const ROLLOUTS: [&str; 4] = [
    "deployment/ovn-central",
    "daemonset/ovs-ovn",
    "daemonset/kube-ovn-cni",
    "deployment/kube-ovn-controller",
];

/// Warning events that are this harness's and not the product's: kubelet warns on every pod
/// that it has no cluster DNS (the nodes have none on purpose: no query may leave), and on
/// every node that this machine's cgroups are v1.
/// `ClusterIPNotAllocated`: the fresh apiserver's own repair loop on its `kubernetes` Service
/// (1.35's IP allocator racing its bootstrap controller), nothing of ours.
const HARNESS_WARNINGS: &[&str] = &["MissingClusterDNS", "CgroupV1", "ClusterIPNotAllocated"];

/// One process of the chart as the kernel sees it (`/proc/<pid>/status`).
#[derive(Debug)]
struct Privileges {
    comm: String,
    uid: u32,
    cap_eff: u64,
    no_new_privs: bool,
    seccomp: u32,
}

/// A control plane, real nodes with Multus, and the chart installed on them.
pub struct ChartCluster {
    // Field order is drop order: nodes before the control plane, the fence and the bridge.
    nodes: Vec<RealNode>,
    plane: ControlPlane,
    host_fence: Fence,
    _bridge: HostBridge,
    helm: Helm,
    _state: tempfile::TempDir,
    root: PathBuf,
    started: Instant,
    /// Cluster IPs of every Service seen so far (see [`Fence::check_allowing`]).
    services: Mutex<BTreeSet<IpAddr>>,
    /// Whether `--keep` held the cluster already.
    held: std::sync::atomic::AtomicBool,
    /// Warning events (uid → count) a quiet check already judged, left out of later ones
    /// ([`ChartCluster::settle_warnings`]).
    judged: Mutex<BTreeMap<String, u64>>,
}

impl ChartCluster {
    /// Starts nodes `names` (the first labelled control-plane, where OVN central runs) and
    /// installs `chart` with `values` (`--set`), then waits for every workload to roll out.
    pub async fn install(names: &[&str], chart: &str, values: &[&str]) -> Self {
        let started = Instant::now();
        let images: Vec<_> = [
            "e2e-pause",
            "e2e-workload",
            "kube-ovn-controller",
            "kube-ovn-cni",
            "kube-ovn-ovn",
        ]
        .iter()
        .map(|name| image_archive(name))
        .collect();
        let k8s = Binaries::locate().unwrap();
        let state = tempfile::tempdir().unwrap();
        let helm = Helm::locate(state.path()).unwrap();
        let (bridge, host_fence, plane) = super::fenced_plane().await;
        super::create_nad_crd(&plane).await;
        let mut nodes = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let node = RealNode::start(
                &plane,
                &bridge,
                &NodeConfig {
                    name: (*name).to_owned(),
                    index: u8::try_from(index).unwrap(),
                    images: images.clone(),
                    k8s_bin_dir: k8s.path("kubelet").parent().unwrap().to_path_buf(),
                    extra_plugins: Vec::new(),
                    multus: Some(MULTUS_BIN.into()),
                },
            )
            .await
            .unwrap();
            eprintln!("{name} Ready after {:?}", started.elapsed());
            nodes.push(node);
        }
        for node in &nodes {
            // Before the chart: the apiserver calls its webhook at the controller pod's address.
            bridge
                .route_from_host(node.pod_subnet(), node.ip())
                .unwrap();
        }
        for (i, a) in nodes.iter().enumerate() {
            for b in nodes.iter().skip(i + 1) {
                a.route_pods_to(b).unwrap();
                b.route_pods_to(a).unwrap();
            }
        }
        // The kubelet refuses this label in --node-labels; users label control-plane nodes so.
        plane
            .kubectl(&[
                "label",
                "node",
                nodes[0].name(),
                "node-role.kubernetes.io/control-plane=",
            ])
            .unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cluster = Self {
            nodes,
            plane,
            host_fence,
            _bridge: bridge,
            helm,
            _state: state,
            root,
            started,
            services: Mutex::default(),
            held: std::sync::atomic::AtomicBool::new(false),
            judged: Mutex::default(),
        };
        let mut args = vec!["install", "kube-ovn", chart, "--namespace", "kube-system"];
        for value in values {
            args.extend(["--set", value]);
        }
        cluster.helm(&args);
        for target in ROLLOUTS {
            cluster.rollout_status(target);
            eprintln!("{target} rolled out after {:?}", cluster.started.elapsed());
        }
        cluster.check_fences();
        cluster
    }

    /// The real nodes.
    pub fn nodes(&self) -> &[RealNode] {
        &self.nodes
    }

    /// The chart's daemons as the kernel runs them on the nodes (read from the host's
    /// `/proc`, the processes in the nodes' cgroup roots): who they run as, their effective
    /// capabilities, no-new-privileges and seccomp mode, against what the chart asks for
    /// (charts/kube-ovn-lib/templates/_kube-ovn.tpl, docs/SECURITY.md). No daemon is
    /// privileged, kube-ovn-daemon with a tunnel NIC included.
    pub fn assert_least_privilege(&self) {
        const NET_ADMIN: u64 = 1 << 12;
        const NET_RAW: u64 = 1 << 13;
        const SYS_ADMIN: u64 = 1 << 21;
        let roots: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!(":/{}/", n.netns().name()))
            .collect();
        let mut seen: Vec<Privileges> = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let path = entry.path();
            let Ok(cgroup) = std::fs::read_to_string(path.join("cgroup")) else {
                continue;
            };
            if !cgroup
                .lines()
                .any(|l| roots.iter().any(|r| l.contains(r.as_str())))
            {
                continue;
            }
            let Ok(status) = std::fs::read_to_string(path.join("status")) else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            let comm = field("Name");
            if ![
                "kube-ovn-contro",
                "kube-ovn-daemon",
                "ovsdb-server",
                "ovn-northd",
                "ovs-vswitchd",
                "ovn-controller",
            ]
            .contains(&comm.as_str())
            {
                continue;
            }
            seen.push(Privileges {
                comm,
                uid: field("Uid")
                    .split_whitespace()
                    .nth(1)
                    .and_then(|u| u.parse().ok())
                    .unwrap(),
                cap_eff: u64::from_str_radix(&field("CapEff"), 16).unwrap(),
                no_new_privs: field("NoNewPrivs") == "1",
                seccomp: field("Seccomp").parse().unwrap(),
            });
        }
        eprintln!("the chart's daemons as they run: {seen:#?}");
        let all =
            |comm: &str| -> Vec<&Privileges> { seen.iter().filter(|p| p.comm == comm).collect() };
        let confined = |p: &Privileges, uid: u32, caps: u64| {
            assert!(
                p.uid == uid && p.cap_eff == caps && p.no_new_privs && p.seccomp == 2,
                "{} runs as {p:?}; the chart asks for uid {uid}, CapEff {caps:#x}, \
                 no-new-privileges and the RuntimeDefault seccomp filter",
                p.comm
            );
        };
        // kube-ovn-controller and OVN central: nobody, no capability at all.
        assert_eq!(all("kube-ovn-contro").len(), 1, "{seen:#?}");
        assert_eq!(all("ovn-northd").len(), 1, "{seen:#?}");
        for p in all("kube-ovn-contro").into_iter().chain(all("ovn-northd")) {
            confined(p, 65534, 0);
        }
        // ovsdb-server: central's NB and SB as nobody, each node's Open vSwitch database as
        // root with ovs-ovn's capabilities.
        let nodes = self.nodes.len();
        let ovsdb = all("ovsdb-server");
        assert_eq!(ovsdb.len(), 2 + nodes, "{seen:#?}");
        let ovs_caps = NET_ADMIN | NET_RAW;
        for p in ovsdb {
            if p.uid == 65534 {
                confined(p, 65534, 0);
            } else {
                confined(p, 0, ovs_caps);
            }
        }
        for comm in ["ovs-vswitchd", "ovn-controller"] {
            assert_eq!(all(comm).len(), nodes, "{seen:#?}");
            for p in all(comm) {
                confined(p, 0, ovs_caps);
            }
        }
        let daemons = all("kube-ovn-daemon");
        assert_eq!(daemons.len(), nodes, "{seen:#?}");
        for p in daemons {
            confined(p, 0, NET_ADMIN | NET_RAW | SYS_ADMIN);
        }
    }

    /// Time since [`Self::install`] began.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// `kubectl <args>`; on failure the test fails with the cluster's state.
    pub fn kubectl(&self, args: &[&str]) -> String {
        match self.plane.kubectl(args) {
            Ok(out) => out,
            Err(e) => panic!("kubectl {}: {e}\n{}", args.join(" "), self.debug_dump()),
        }
    }

    /// `kubectl rollout status <target> --timeout=180s` in kube-system, or for the `OnDelete`
    /// ovs-ovn DaemonSet (which that command refuses) [`Self::wait_daemonset_ready`].
    pub fn rollout_status(&self, target: &str) {
        match target.strip_prefix("daemonset/") {
            Some(ds) if ds == "ovs-ovn" => {
                self.wait_daemonset_ready(ds, Duration::from_secs(180));
            }
            _ => {
                self.kubectl(&[
                    "-n",
                    "kube-system",
                    "rollout",
                    "status",
                    target,
                    "--timeout=180s",
                ]);
            }
        }
    }

    /// Waits until DaemonSet `name` (in kube-system) runs an up-to-date, ready pod on every
    /// node it wants: what `kubectl rollout status` checks, for an `OnDelete` DaemonSet, which
    /// it refuses.
    pub fn wait_daemonset_ready(&self, name: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let status = self.kubectl(&[
                "-n",
                "kube-system",
                "get",
                "daemonset",
                name,
                "-o",
                "jsonpath={.status.desiredNumberScheduled} {.status.updatedNumberScheduled} \
                 {.status.numberReady} {.metadata.generation} {.status.observedGeneration}",
            ]);
            let n: Vec<u64> = status
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            if let [desired, updated, ready, generation, observed] = n[..]
                && desired > 0
                && updated == desired
                && ready == desired
                && observed >= generation
            {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "daemonset {name} not ready after {timeout:?} (desired updated ready \
                 generation observed: {status})\n{}",
                self.debug_dump()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The node `pod` (in `default`) runs on, and another node of the cluster.
    pub fn node_of_and_other(&self, pod: &str) -> (String, String) {
        let here = self.kubectl(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"]);
        let there = self
            .nodes
            .iter()
            .map(RealNode::name)
            .find(|n| *n != here)
            .unwrap_or_else(|| panic!("no node besides {here}"))
            .to_owned();
        (here, there)
    }

    /// A client of the cluster's apiserver (for the startup benchmark's watch).
    #[allow(dead_code)] // Used by e2e/examples/bench_startup.rs, which includes this file.
    pub fn client(&self) -> kube::Client {
        self.plane.client()
    }

    /// `kubectl <args>`, its failure returned (for what is expected to fail).
    pub fn try_kubectl(&self, args: &[&str]) -> Result<String, e2e::k8s::Error> {
        self.plane.kubectl(args)
    }

    /// A `kubectl` command against the cluster (for its status and output, whatever they are).
    pub fn kubectl_command(&self) -> std::process::Command {
        self.plane.kubectl_command()
    }

    /// `helm <args>` against the cluster, from the workspace root.
    pub fn helm(&self, args: &[&str]) -> String {
        match self
            .helm
            .run(&self.root, args, Some(self.plane.kubeconfig()))
        {
            Ok(out) => out,
            Err(e) => panic!("helm {}: {e}\n{}", args.join(" "), self.debug_dump()),
        }
    }

    /// `helm uninstall --wait`, then until the chart's pods are gone (helm waits for the
    /// objects it deletes, not for the pods the garbage collector stops after them).
    pub fn uninstall(&self) {
        self.hold_if_kept();
        // The daemons' last words (their cleanup at SIGTERM), shown after the pods are gone.
        let log = std::env::temp_dir().join(format!("{}.log", e2e::ovn::unique("kovn-cni-")));
        let follow = std::fs::File::create(&log).ok().and_then(|file| {
            self.plane
                .kubectl_command()
                .args([
                    "logs",
                    "-f",
                    "-n",
                    "kube-system",
                    "-l",
                    "app=kube-ovn-cni",
                    "--prefix",
                    "--tail=3",
                ])
                .stdout(file)
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        });
        self.note_services();
        self.helm(&[
            "uninstall",
            "kube-ovn",
            "--namespace",
            "kube-system",
            "--wait",
        ]);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut shown = String::new();
        loop {
            let left = self.kubectl(&["get", "pods", "--namespace", "kube-system", "-o", "name"]);
            if left.trim().is_empty() {
                break;
            }
            if left != shown {
                eprintln!(
                    "after {:?} still: {}",
                    self.started.elapsed(),
                    left.trim().replace('\n', " ")
                );
                shown = left.clone();
            }
            assert!(
                Instant::now() < deadline,
                "chart pods still there 120 s after helm uninstall: {left}\n{}",
                self.debug_dump()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("uninstalled after {:?}", self.started.elapsed());
        if let Some(mut follow) = follow {
            let _ = follow.kill();
            let _ = follow.wait();
        }
        eprintln!(
            "kube-ovn-cni logs at uninstall:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let _ = std::fs::remove_file(&log);
    }

    /// `kubectl apply -f` of `yaml`.
    pub fn apply(&self, yaml: &str) {
        let manifest = std::env::temp_dir().join(format!("{}.yaml", e2e::ovn::unique("kovn-m-")));
        std::fs::write(&manifest, yaml).unwrap();
        let out = self
            .plane
            .kubectl(&["apply", "-f", &manifest.display().to_string()]);
        let _ = std::fs::remove_file(&manifest);
        if let Err(e) = out {
            panic!("kubectl apply:\n{yaml}\n{e}\n{}", self.debug_dump());
        }
    }

    /// Waits for `pod` (in `default`) to be Ready.
    pub fn wait_ready(&self, pod: &str) {
        let waited = self.plane.kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=120s",
        ]);
        if let Err(e) = waited {
            let describe = self
                .plane
                .kubectl(&["describe", "pod", pod])
                .unwrap_or_default();
            // The pod's events first: what a truncated log must still show.
            let events = describe
                .split_once("\nEvents:")
                .map_or("(no events)", |(_, ev)| ev);
            panic!(
                "{pod} not Ready: {e}\nits events:{events}\n{describe}\n{}",
                self.debug_dump()
            );
        }
        eprintln!("{pod} Ready after {:?}", self.started.elapsed());
    }

    /// Waits until no IP record names any of `pods` (the controller releases a deleted pod's
    /// addresses when its watch sees the pod gone, moments after `kubectl delete --wait`).
    pub fn wait_ips_released(&self, pods: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = self.kubectl(&["get", "ips", "-o", "name"]);
            let held: Vec<&str> = left
                .lines()
                .filter(|l| pods.iter().any(|p| l.contains(&format!("/{p}."))))
                .collect();
            if held.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "IP records of deleted pods still there after 30 s: {held:?}\n{}",
                self.debug_dump()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every fence at zero packets stopped.
    pub fn check_fences(&self) {
        let services = self.note_services();
        for node in &self.nodes {
            let fence = node.fence();
            fence.check_allowing(&services).unwrap();
            let report = fence.report().unwrap();
            if !report.untranslated.is_empty() {
                // Dialled in the moment between a Service's creation and kube-proxy's rules for
                // it; stopped all the same.
                eprintln!("{}: {report}", node.name());
            }
        }
        self.host_fence.check().unwrap();
    }

    /// Adds the cluster IPs of the Services there are now to those seen before, and returns
    /// them all (a Service deleted by `helm uninstall` was still dialled until then).
    fn note_services(&self) -> Vec<IpAddr> {
        let out = self.kubectl(&[
            "get",
            "services",
            "-A",
            "-o",
            "jsonpath={.items[*].spec.clusterIPs[*]}",
        ]);
        let mut seen = self
            .services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.extend(
            out.split_whitespace()
                .filter_map(|ip| ip.parse::<IpAddr>().ok()),
        );
        seen.iter().copied().collect()
    }

    /// The Warning events of the whole cluster, except the harness's own and readiness probe
    /// failures that all came before the pod's current Ready period began (a pod starting: the
    /// controller is not ready until OVN central, started beside it, answers). A failure while
    /// the pod is Ready, or a pod not Ready now, counts; a flap that recovered before the
    /// pod's last transition to Ready does not.
    pub fn warnings(&self) -> Vec<String> {
        let judged = self.judged.lock().unwrap().clone();
        self.warnings_except(&judged)
    }

    /// Marks every Warning event now (uid and count) as judged: later quiet checks leave
    /// them out. A step that replaces pods (an upgrade) calls this right after a quiet check:
    /// a readiness failure of a pod while it started, fine then, cannot be judged again once
    /// the pod is gone.
    pub fn settle_warnings(&self) {
        let now: BTreeMap<String, u64> = self
            .warning_events()
            .iter()
            .map(|e| {
                (
                    e["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                    e["count"].as_u64().unwrap_or(1),
                )
            })
            .collect();
        *self.judged.lock().unwrap() = now;
    }

    fn warning_events(&self) -> Vec<serde_json::Value> {
        let events: serde_json::Value = serde_json::from_str(&self.kubectl(&[
            "get",
            "events",
            "-A",
            "--field-selector=type=Warning",
            "-o",
            "json",
        ]))
        .unwrap_or_default();
        events["items"].as_array().cloned().unwrap_or_default()
    }

    /// The Warning events [`Self::warnings`] reports, without those `before` holds at the same
    /// count.
    fn warnings_except(&self, before: &BTreeMap<String, u64>) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.warning_events() {
            let uid = e["metadata"]["uid"].as_str().unwrap_or_default();
            if before.get(uid) == Some(&e["count"].as_u64().unwrap_or(1)) {
                continue;
            }
            let field = |path: &[&str]| {
                path.iter()
                    .fold(e, |v, k| &v[*k])
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            let (ns, name, reason, msg) = (
                field(&["metadata", "namespace"]),
                field(&["involvedObject", "name"]),
                field(&["reason"]),
                field(&["message"]),
            );
            let line = format!("{ns}  {name}  {reason}  {msg}");
            if HARNESS_WARNINGS.iter().any(|r| line.contains(r)) {
                continue;
            }
            let last = if field(&["lastTimestamp"]).is_empty() {
                field(&["eventTime"])
            } else {
                field(&["lastTimestamp"])
            };
            if reason == "Unhealthy"
                && msg.starts_with("Readiness probe failed")
                && self
                    .ready_since(&ns, &name)
                    .is_some_and(|ready| last <= ready)
            {
                continue;
            }
            out.push(line);
        }
        out
    }

    /// When pod `ns/name` last became Ready (RFC 3339, comparable as text), if it is Ready.
    fn ready_since(&self, ns: &str, name: &str) -> Option<String> {
        let t = self
            .try_kubectl(&[
                "get",
                "pod",
                "-n",
                ns,
                name,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].lastTransitionTime}"#,
            ])
            .ok()?;
        let t = t.trim().to_owned();
        (!t.is_empty()).then_some(t)
    }

    /// Pods, events and the chart's logs, for a failure message.
    pub fn debug_dump(&self) -> String {
        let mut out = String::new();
        for args in [
            &["get", "pods", "-A", "-o", "wide"][..],
            &["get", "events", "-A", "--sort-by=.lastTimestamp"],
        ] {
            out.push_str(&format!("$ kubectl {}\n", args.join(" ")));
            out.push_str(&self.plane.kubectl(args).unwrap_or_else(|e| e.to_string()));
        }
        for target in ROLLOUTS {
            out.push_str(&format!(
                "$ kubectl -n kube-system logs {target} --all-containers --tail=30\n"
            ));
            out.push_str(
                &self
                    .plane
                    .kubectl(&[
                        "-n",
                        "kube-system",
                        "logs",
                        target,
                        "--all-containers",
                        "--tail=30",
                    ])
                    .unwrap_or_else(|e| e.to_string()),
            );
        }
        for node in &self.nodes {
            out.push_str(&format!(
                "fence of {}: {:?}\n",
                node.name(),
                node.fence().report()
            ));
        }
        out
    }
}

/// `cargo xtask e2e --real --keep` (`KUBE_OVN_E2E_KEEP`): the cluster stays up at the end of
/// the test, passed or failed, until Enter or Ctrl-C; then the fields go down in their order.
impl Drop for ChartCluster {
    fn drop(&mut self) {
        self.hold_if_kept();
    }
}

impl ChartCluster {
    /// With `KUBE_OVN_E2E_KEEP` set, the first call waits for Enter or Ctrl-C (the chart still
    /// installed when it comes from [`ChartCluster::uninstall`]); later calls return at once.
    pub fn hold_if_kept(&self) {
        if e2e::keep::requested() && !self.held.swap(true, std::sync::atomic::Ordering::SeqCst) {
            e2e::keep::hold(self.plane.kubeconfig(), self.plane.run_dir());
        }
    }
}

/// The manual's first example with the pod's image swapped for the test workload.
/// What a command printed: its stdout, then its stderr.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn first_example() -> String {
    crds::seed::first_example().replace("    image: nginx\n", &workload_image())
}

pub fn workload_image() -> String {
    format!("    image: {WORKLOAD_IMAGE}\n    imagePullPolicy: Never\n")
}

/// The manual's pod under another name, on `node`.
pub fn manual_pod_on(name: &str, node: &str) -> String {
    crds::seed::POD
        .replace("name: multi-network-pod", &format!("name: {name}"))
        .replace("spec:\n", &format!("spec:\n  nodeName: {node}\n"))
        .replace("    image: nginx\n", &workload_image())
}

/// The kube-ovn entry of a pod's `network-status` (written by Multus): interface and IPs.
pub fn kube_ovn_status(cluster: &ChartCluster, pod: &str) -> (String, Vec<String>) {
    let raw = cluster.kubectl(&[
        "get",
        "pod",
        pod,
        "-o",
        r"jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}",
    ]);
    let status: Vec<serde_json::Value> =
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("network-status {raw:?}: {e}"));
    let entry = status
        .iter()
        .find(|e| e["name"] == "default/kube-ovn-vpc-network")
        .unwrap_or_else(|| panic!("no kube-ovn entry in network-status: {raw}"));
    let ips = entry["ips"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (
        entry["interface"].as_str().unwrap_or_default().to_owned(),
        ips,
    )
}

/// The v1 chart (`cni_conf.NON_PRIMARY_CNI=true`) on one real node, with the manual's first
/// example; the manual's debugging command `kubectl logs -n kube-system
/// daemonset/kube-ovn-cni` names the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1_chart_installs_on_a_real_node_and_runs_the_manuals_first_example() {
    let cluster = ChartCluster::install(
        &["real-c"],
        "./charts/kube-ovn",
        &[
            "cni_conf.NON_PRIMARY_CNI=true",
            "networking.DATAPATH_TYPE=netdev",
            // No tunnel NIC: one node has no tunnel, and without one the daemon runs with
            // capabilities instead of privileged (the two-node test covers the NIC).
        ],
    )
    .await;
    // Every daemon of the chart runs with exactly the privileges the chart asks for, and
    // the first example below (veth, setns, OVS port, gratuitous ARP, DEL at uninstall) works
    // under them.
    cluster.assert_least_privilege();
    cluster.apply(&first_example());
    cluster.wait_ready("multi-network-pod");
    let addr = cluster.kubectl(&["exec", "multi-network-pod", "--", "ip", "addr", "show"]);
    eprintln!("ip addr show:\n{addr}");
    assert!(addr.contains("inet 10.100."), "{addr}");
    let logs = cluster.kubectl(&["logs", "-n", "kube-system", "daemonset/kube-ovn-cni"]);
    assert!(logs.contains("multi-network-pod"), "{logs}");
    // The v1 chart's ENABLE_SSL default: TLS between the databases and every client.
    super::tls::check_ovn_tls(&cluster);
    // `kubectl ko` as users run it: by `kubectl exec` into the chart's pods (ovn-central for
    // the Northbound and Southbound, the node's ovs-ovn pod for its Open vSwitch).
    let ko = |args: &[&str]| {
        let out = std::process::Command::new(e2e::cluster::binary("kubectl-ko").unwrap())
            .arg(format!(
                "--kubeconfig={}",
                cluster.plane.kubeconfig().display()
            ))
            .arg(format!(
                "--kubectl={}",
                cluster
                    .plane
                    .kubectl_command()
                    .get_program()
                    .to_string_lossy()
            ))
            .args(args)
            .output()
            .unwrap();
        let text = printed(&out);
        eprintln!("$ kubectl ko {}\n{text}", args.join(" "));
        assert_eq!(out.status.code(), Some(0), "kubectl ko {args:?}:\n{text}");
        text
    };
    let diagnosed = ko(&["diagnose", "default/multi-network-pod"]);
    assert!(diagnosed.contains("every link is ok"), "{diagnosed}");
    assert!(ko(&["nbctl", "show"]).contains("multi-network-pod"));
    let node = cluster.nodes()[0].name().to_owned();
    assert!(ko(&["vsctl", &node, "show"]).contains("br-int"));
    // Uninstalled with the pod running: the daemon takes its attachment away on the way out
    // (port and veth, so net1 leaves the pod); the pod keeps eth0.
    cluster.uninstall();
    let addr = cluster.kubectl(&["exec", "multi-network-pod", "--", "ip", "addr", "show"]);
    assert!(
        !addr.contains("net1"),
        "net1 left after helm uninstall:\n{addr}"
    );
    assert!(addr.contains("eth0"), "{addr}");
    cluster.check_fences();
    eprintln!("whole run {:?}", cluster.elapsed());
}

/// The README's install on two real nodes (geneve over their `eth1`), then the manual's first
/// example as a user checks it: Multus' network-status, `ip addr`/`ip route` in the pod, a
/// ping over net1 to a pod on the other node, a `helm upgrade` while that ping runs (nothing
/// lost: the datapath does not restart), the logs, the quiet after success, DEL freeing
/// the IP and the port, and `helm uninstall` leaving no plugin, port or process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_on_two_real_nodes_carries_net1_across_nodes() {
    let cluster = ChartCluster::install(
        &["real-a", "real-b"],
        "./charts/kube-ovn-v2",
        &[
            "cni.nonPrimaryCNI=true",
            "networking.datapathType=netdev",
            "agent.interface=eth1",
        ],
    )
    .await;
    // The tunnel NIC's arp_ignore is set over rtnetlink (NET_ADMIN): this mode's daemon is
    // not privileged either.
    cluster.assert_least_privilege();
    cluster.apply(&first_example());
    cluster.wait_ready("multi-network-pod");
    let (here, there) = cluster.node_of_and_other("multi-network-pod");
    cluster.apply(&manual_pod_on("multi-network-peer", &there));
    cluster.wait_ready("multi-network-peer");

    // What Multus wrote: net1 from kube-ovn in the manual's subnet.
    let subnet: ipnet::Ipv4Net = "10.100.0.0/16".parse().unwrap();
    let (ifname, ips) = kube_ovn_status(&cluster, "multi-network-pod");
    assert_eq!(ifname, "net1");
    assert!(
        ips.iter().any(|ip| ip
            .parse()
            .is_ok_and(|ip: std::net::Ipv4Addr| subnet.contains(&ip))),
        "{ips:?}"
    );
    let (_, peer_ips) = kube_ovn_status(&cluster, "multi-network-peer");
    let peer_ip = peer_ips.first().unwrap().clone();

    // The pod as the manual's debugging commands show it: net1 beside an untouched eth0.
    let addr = cluster.kubectl(&["exec", "multi-network-pod", "--", "ip", "addr", "show"]);
    eprintln!("ip addr show:\n{addr}");
    assert!(
        addr.contains("net1") && addr.contains(&format!("inet {}/16", ips[0])),
        "{addr}"
    );
    assert!(
        addr.contains("eth0") && addr.contains("inet 10.20"),
        "{addr}"
    );
    let routes = cluster.kubectl(&["exec", "multi-network-pod", "--", "ip", "route", "show"]);
    eprintln!("ip route show:\n{routes}");
    assert!(routes.contains("10.100.0.0/16 dev net1"), "{routes}");
    let defaults: Vec<&str> = routes
        .lines()
        .filter(|l| l.starts_with("default"))
        .collect();
    assert!(
        defaults.len() <= 1 && defaults.iter().all(|l| l.contains("dev eth0")),
        "the default route is eth0's alone: {routes}"
    );

    // The daemon put each node's tunnel NIC on br-phy (agent.interface=eth1, netdev).
    for node in cluster.nodes() {
        let out = node
            .netns()
            .exec(&["ip", "-4", "addr", "show", "dev", "br-phy"])
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.contains("inet 172.29."),
            "{}: br-phy: {out}",
            node.name()
        );
        // ... and stopped eth1 answering ARP, from a container whose /proc/sys is read-only.
        assert_eq!(arp_ignore_of_eth1(node), "8", "{}", node.name());
    }
    // Across nodes over net1: geneve between the nodes' ovs-vswitchd.
    let ping = cluster.kubectl(&[
        "exec",
        "multi-network-pod",
        "--",
        "ping",
        "-c",
        "3",
        "-W",
        "2",
        &peer_ip,
    ]);
    eprintln!("{ping}");
    assert!(!ping.contains(" 0 packets received"), "{ping}");
    eprintln!("cross-node ping over net1 after {:?}", cluster.elapsed());
    // All of the above over TLS (the charts' default): the databases answer nothing else.
    super::tls::check_ovn_tls(&cluster);

    let logs = cluster.kubectl(&[
        "logs",
        "-n",
        "kube-system",
        "-l",
        "app=kube-ovn-cni",
        "--prefix",
        "--tail=-1",
    ]);
    assert!(
        logs.contains("multi-network-pod") && logs.contains("multi-network-peer"),
        "{logs}"
    );
    // The quiet after success.
    let warnings = cluster.warnings();
    assert!(warnings.is_empty(), "Warning events: {warnings:#?}");

    // helm upgrade with the two pods pinging across the nodes all along (after the logs
    // check: the CNI servers it replaces wrote the pods' ADD lines), and quiet after it.
    super::upgrade::upgrade_keeps_traffic(&cluster, "multi-network-pod", &peer_ip);
    eprintln!("helm upgrade done after {:?}", cluster.elapsed());

    // DEL: the IP records and the OVS ports go with the pods (one on each node until then).
    for node in cluster.nodes() {
        assert_eq!(attached_interfaces(node).len(), 1, "{}", node.name());
    }
    cluster.kubectl(&[
        "delete",
        "pod",
        "multi-network-pod",
        "multi-network-peer",
        "--wait=true",
        "--timeout=60s",
    ]);
    cluster.wait_ips_released(&["multi-network-pod", "multi-network-peer"]);
    for node in cluster.nodes() {
        let ports = attached_interfaces(node);
        assert!(
            ports.is_empty(),
            "{}: ports left after DEL: {ports:?}",
            node.name()
        );
    }

    super::walkthrough::the_manuals_use_cases(&cluster, &here, &there);
    eprintln!("the manual's use cases done after {:?}", cluster.elapsed());
    super::walkthrough::what_only_real_multus_shows(&cluster, &here, &there);
    eprintln!(
        "default-route, same NAD twice, IPAM-only done after {:?}",
        cluster.elapsed()
    );
    super::nat_gateway::the_manuals_nat_gateway(&cluster, &here, &there);
    eprintln!("the VPC NAT gateway done after {:?}", cluster.elapsed());
    super::policy::security_group_and_multi_network_policy(&cluster, &here, &there);
    eprintln!(
        "security group and MultiNetworkPolicy done after {:?}",
        cluster.elapsed()
    );
    // The CNI verbs this runtime (containerd 1.6 through Multus) called, all answered ok.
    let served = super::walkthrough::verbs_served(&cluster);
    eprintln!("CNI verbs served (verb, result) -> count: {served:?}");
    assert!(
        served.keys().all(|(_, result)| result == "ok"),
        "a CNI call failed: {served:?}"
    );
    for verb in ["ADD", "DEL"] {
        assert!(
            served
                .get(&(verb.to_owned(), "ok".to_owned()))
                .is_some_and(|n| *n > 0),
            "{verb}: {served:?}"
        );
    }
    for node in cluster.nodes() {
        let ports = attached_interfaces(node);
        assert!(
            ports.is_empty(),
            "{}: ports left after the use cases: {ports:?}",
            node.name()
        );
    }

    let kinds = "vpcs,subnets,ips,ippools,security-groups,vpc-nat-gateways,iptables-eips";
    let ours = |listed: &str| {
        listed
            .lines()
            .filter(|l| l.contains(controller::uninstall::PREFIX))
            .count()
    };
    let listing = &[
        "get",
        kinds,
        "-A",
        "-o",
        r#"jsonpath={range .items[*]}{.kind}/{.metadata.name} {.metadata.finalizers}{"\n"}{end}"#,
    ];
    let before = cluster.kubectl(listing);
    assert!(ours(&before) > 0, "nothing of ours to finalize: {before}");
    cluster.uninstall();
    // The post-delete hook removed our finalizers: with no controller left, the objects can
    // be deleted (and after them the CRDs).
    let after = cluster.kubectl(listing);
    assert_eq!(
        ours(&after),
        0,
        "our finalizers left after helm uninstall:\n{after}"
    );
    cluster.kubectl(&[
        "delete",
        kinds,
        "--all",
        "-A",
        "--wait=true",
        "--timeout=60s",
    ]);
    eprintln!(
        "{} objects with our finalizers before helm uninstall, none after; all deleted",
        ours(&before)
    );
    for node in cluster.nodes() {
        let plugin = node.cni_bin_dir().join("kube-ovn");
        assert!(!plugin.exists(), "{} left behind", plugin.display());
        // The tunnel NIC has its address back (the daemon moved it onto br-phy at start).
        let eth1 = node
            .netns()
            .exec(&["ip", "-4", "addr", "show", "dev", "eth1"])
            .unwrap();
        let eth1 = String::from_utf8_lossy(&eth1.stdout);
        assert!(
            eth1.contains("inet 172.29."),
            "{}: eth1 after uninstall: {eth1}",
            node.name()
        );
        // ... and answers ARP again: the value it had before the install.
        assert_eq!(arp_ignore_of_eth1(node), "0", "{}", node.name());
    }
    for node in cluster.nodes() {
        let left = chart_processes_in(node);
        assert!(
            left.is_empty(),
            "{}: left after helm uninstall: {left:?}",
            node.name()
        );
    }
    cluster.check_fences();
    eprintln!("whole run {:?}", cluster.elapsed());
}

/// The interfaces of `node`'s OVS bound to a logical switch port (`external_ids:iface-id`):
/// the pods' attachments.
fn attached_interfaces(node: &RealNode) -> Vec<String> {
    let db = node.dir().join("host/run/openvswitch/db.sock");
    let out = std::process::Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{}", db.display()))
        .args([
            "--timeout=10",
            "--format=json",
            "--columns=name,external_ids",
            "list",
            "Interface",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ovs-vsctl list Interface on {}: {}",
        node.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    table["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| {
            row[1][1]
                .as_array()
                .is_some_and(|pairs| pairs.iter().any(|kv| kv[0] == "iface-id"))
        })
        .map(|row| row[0].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The chart's programs still running in `node`'s network namespace (its pods are all
/// hostNetwork, so that is where they ran).
fn chart_processes_in(node: &RealNode) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    const CHART: &[&str] = &[
        "ovs-vswitchd",
        "ovsdb-server",
        "ovn-controller",
        "ovn-northd",
        "kube-ovn-daemon",
        "kube-ovn-contro",
    ];
    let netns = std::fs::metadata(node.netns().path()).unwrap().ino();
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.path();
        let in_node = std::fs::metadata(pid.join("ns/net")).is_ok_and(|m| m.ino() == netns);
        if !in_node {
            continue;
        }
        let comm = std::fs::read_to_string(pid.join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if CHART.contains(&comm) {
            left.push(format!("{} ({comm})", entry.file_name().to_string_lossy()));
        }
    }
    left
}

/// `/proc/sys/net/ipv4/conf/eth1/arp_ignore` in `node`'s network namespace.
fn arp_ignore_of_eth1(node: &RealNode) -> String {
    let out = node
        .netns()
        .exec(&["cat", "/proc/sys/net/ipv4/conf/eth1/arp_ignore"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
