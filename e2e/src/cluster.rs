//! The local cluster (L2): a real control plane ([`ControlPlane`]), OVN central, N nodes (each
//! a network namespace with its own ovsdb-server, ovs-vswitchd on the userspace datapath and
//! ovn-controller, joined by geneve over an [`Underlay`]), our `kube-ovn-daemon` on every node
//! and `kube-ovn-controller`, all as processes with logs under one run dir.
//!
//! No kubelet runs here, so a pod runner stands in for kubelet + Multus, and only that: for
//! each Pod the scheduler binds to a harness node it creates the pod's network namespace,
//! gives it `eth0` from a primary CNI (the reference `bridge` + `host-local` plugins, run in the
//! node's namespace as a container runtime would), then calls the plugin of each element of
//! `k8s.v1.cni.cncf.io/networks` exactly as Multus does: our `kube-ovn` binary, or a reference
//! plugin (macvlan, ...) whose `ipam` may be our IPAM-only mode, found through `CNI_PATH` (CNI
//! environment, the NAD's config on stdin with `name` and declared `runtimeConfig`, `net1`...),
//! writes `k8s.v1.cni.cncf.io/network-status` from the results and sets the Pod Running. On
//! deletion it calls CNI DEL for each attachment, removes the namespace and deletes the Pod.
//!
//! Containers are not run, except those whose command is one of our binaries (the VPC NAT
//! gateway's agent, see [`OwnContainers`]): those run as processes beside the API server, told
//! the pod's namespace, with their readiness probe deciding the pod's Ready condition.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crds::naming::{NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION};
use crds::{NetworkAttachmentDefinition, parse_networks_annotation};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::k8s::ControlPlane;
use crate::ovn::{NetnsGuard, OvnCentral, OvnNode, Underlay, unique};

/// A cluster step failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The control plane failed.
    #[error(transparent)]
    ControlPlane(#[from] crate::k8s::Error),
    /// OVN or a namespace failed.
    #[error(transparent)]
    Lab(#[from] crate::ovn::LabError),
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// One of our binaries is not built.
    #[error("{0} is not built: run `cargo build --bins` (cargo xtask e2e and cargo xtask test do)")]
    MissingBinary(String),
    /// A process or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A YAML document could not be applied.
    #[error("applying YAML: {0}")]
    Yaml(String),
    /// Warnings or failed reconciles after the scenario had succeeded.
    #[error("{0}")]
    NotQuiet(String),
}

/// Result of cluster steps.
pub type Result<T> = std::result::Result<T, ClusterError>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// Where our binaries (`kube-ovn`, `kube-ovn-daemon`, `kube-ovn-controller`) are: the
/// `KUBE_OVN_BIN_DIR` environment variable, else the cargo target dir of the running program.
pub fn binary(name: &str) -> Result<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("KUBE_OVN_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/xtask, or target/debug/deps/<test> for test binaries.
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_owned());
            if let Some(up) = dir.parent() {
                dirs.push(up.to_owned());
            }
        }
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| ClusterError::MissingBinary(name.to_owned()))
}

/// How many nodes the scenarios use: `KUBE_OVN_E2E_NODES` (set by `cargo xtask e2e --nodes`),
/// else `default`; never fewer than `minimum` (what the scenario needs).
pub fn node_count(default: usize, minimum: usize) -> usize {
    std::env::var("KUBE_OVN_E2E_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(minimum)
}

/// The primary network's name in `network-status` (as Multus reports the cluster network).
pub const PRIMARY_NETWORK: &str = "primary-bridge";

/// A harness node.
#[derive(Debug)]
struct Node {
    name: String,
    daemon: Mutex<Child>,
    /// The daemon's arguments, to start it again after a kill ([`Cluster::start_daemon`]).
    daemon_args: Vec<String>,
    ovn: OvnNode,
    /// Directory bound over `/run/openvswitch` for CNI calls on this node: the daemon's socket.
    run_dir: PathBuf,
    /// Index, for the primary network's per-node pod range.
    index: usize,
}

/// What the runner set up for one pod.
#[derive(Debug)]
struct PodRuntime {
    netns: NetnsGuard,
    container_id: String,
    /// (ifname, stdin config, plugin) of each attachment, for DEL.
    attachments: Vec<(String, String, PathBuf)>,
    /// The pod's containers that run our binaries (stopped before the attachments go).
    containers: Option<OwnContainers>,
}

type Pods = Arc<Mutex<HashMap<(String, String), PodRuntime>>>;

/// The local cluster. Everything stops on drop.
pub struct Cluster {
    runners: Vec<tokio::task::JoinHandle<()>>,
    controller: Mutex<Option<Child>>,
    controller_bin: PathBuf,
    daemon_bin: PathBuf,
    nodes: Arc<Vec<Node>>,
    pods: Pods,
    underlay: Underlay,
    central: OvnCentral,
    control_plane: ControlPlane,
    run_dir: PathBuf,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("run_dir", &self.run_dir)
            .finish_non_exhaustive()
    }
}

/// Starts `kube-ovn-controller`, appending to `controller.log` in `run_dir` (a restart keeps
/// the earlier lines).
fn spawn_controller(
    bin: &Path,
    nb_remote: &str,
    kubeconfig: &Path,
    run_dir: &Path,
) -> Result<Child> {
    let args = vec![
        format!("--ovn-nb-addr={nb_remote}"),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--gc-interval=30".into(),
        "--leader-elect-namespace=kube-system".into(),
        // Metrics off: parallel tests (and other programs) would fight over one port.
        "--metrics-addr=".into(),
    ];
    let env = [("POD_NAME".to_owned(), "kube-ovn-controller-e2e".to_owned())];
    spawn_logged(bin, &args, &env, &run_dir.join("controller.log"))
}

/// Starts `kube-ovn-daemon` of node `name`, appending to `<name>-daemon.log` in `run_dir` (a
/// restart keeps the earlier lines).
fn spawn_daemon(bin: &Path, args: &[String], run_dir: &Path, name: &str) -> Result<Child> {
    spawn_logged(bin, args, &[], &run_dir.join(format!("{name}-daemon.log")))
}

/// What [`Cluster::assert_quiet`] compares against: the Warning Events that existed (by name,
/// with their resourceVersion) and how far the controller's log went when it was taken.
#[derive(Debug, Clone)]
pub struct QuietMark {
    warnings: HashMap<(String, String), String>,
    controller_log_len: u64,
}

/// Warning Events (all namespaces) by (namespace, name) with their resourceVersion, and a line
/// describing each.
async fn warning_events(client: &kube::Client) -> Result<Vec<((String, String), String, String)>> {
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::all(client.clone());
    let list = api
        .list(&kube::api::ListParams::default().fields("type=Warning"))
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|e| {
            let key = (e.namespace().unwrap_or_default(), e.name_any());
            let version = e.resource_version().unwrap_or_default();
            let obj = &e.involved_object;
            let line = format!(
                "{} {}/{} {}: {} (count {})",
                obj.kind.as_deref().unwrap_or("?"),
                obj.namespace.as_deref().unwrap_or(""),
                obj.name.as_deref().unwrap_or("?"),
                e.reason.as_deref().unwrap_or("?"),
                e.message.as_deref().unwrap_or(""),
                e.count.unwrap_or(1),
            );
            (key, version, line)
        })
        .collect())
}

impl Cluster {
    /// Starts a cluster of `nodes` nodes with Kube-OVN running, CRDs installed.
    pub async fn start(nodes: usize) -> Result<Self> {
        let (plugin, daemon_bin, controller_bin) = (
            binary("kube-ovn")?,
            binary("kube-ovn-daemon")?,
            binary("kube-ovn-controller")?,
        );
        let mut control_plane = ControlPlane::start().await?;
        let run_dir = control_plane.run_dir().join("kube-ovn");
        std::fs::create_dir_all(&run_dir).map_err(io("creating the run dir"))?;
        let client = control_plane.client();
        install_crds(&client).await?;

        let central = OvnCentral::start()?;
        let underlay = Underlay::create()?;
        let mut started = Vec::new();
        for index in 0..nodes {
            let name = format!("node-{}", index + 1);
            let ovn = OvnNode::start("kovn-n")?;
            let ip = underlay.attach(&ovn)?;
            control_plane
                .register_node(
                    &name,
                    ip.parse()
                        .map_err(|_| ClusterError::Yaml(format!("node IP {ip}")))?,
                )
                .await?;
            let node_run = run_dir.join(&name);
            std::fs::create_dir_all(&node_run).map_err(io("creating the node dir"))?;
            let socket = node_run.join("kube-ovn-daemon.sock");
            // The daemon runs beside the API server (loopback) and plumbs the node's namespace.
            let daemon_args = vec![
                format!("--host-netns={}", ovn.netns().path().display()),
                format!("--bind-socket={}", socket.display()),
                format!("--ovs-db={}", ovn.db_remote()),
                format!("--node-name={name}"),
                format!("--ovn-remote={}", central.sb_remote()),
                format!("--encap-ip={ip}"),
                "--datapath-type=netdev".into(),
                "--metrics-addr=".into(),
                "--allocation-timeout-secs=30".into(),
                format!("--kubeconfig={}", control_plane.kubeconfig().display()),
            ];
            let daemon = spawn_daemon(&daemon_bin, &daemon_args, &run_dir, &name)?;
            let mut ovn = ovn;
            ovn.start_controller()?;
            started.push(Node {
                name,
                daemon: Mutex::new(daemon),
                daemon_args,
                ovn,
                run_dir: node_run,
                index,
            });
        }
        let controller = spawn_controller(
            &controller_bin,
            &central.nb_remote(),
            control_plane.kubeconfig(),
            &run_dir,
        )?;
        let nodes = Arc::new(started);
        let pods: Pods = Arc::default();
        let mut runners = Vec::new();
        for n in nodes.iter() {
            let runner = Runner {
                client: client.clone(),
                node: RunnerNode {
                    name: n.name.clone(),
                    netns: n.ovn.netns().name().to_owned(),
                    run_dir: n.run_dir.clone(),
                    index: n.index,
                },
                pods: pods.clone(),
                plugin: plugin.clone(),
                daemon_bin: daemon_bin.clone(),
                kubeconfig: control_plane.kubeconfig().to_owned(),
                run_dir: run_dir.clone(),
            };
            runners.push(tokio::spawn(runner.run()));
        }
        let mut cluster = Self {
            runners,
            controller: Mutex::new(Some(controller)),
            controller_bin,
            daemon_bin,
            nodes,
            pods,
            underlay,
            central,
            control_plane,
            run_dir,
        };
        cluster.wait_daemons_ready().await?;
        Ok(cluster)
    }

    async fn wait_daemons_ready(&mut self) -> Result<()> {
        for node in self.nodes.iter() {
            self.wait_daemon_ready(node, Duration::from_secs(60))
                .await?;
        }
        Ok(())
    }

    /// Waits until `node`'s daemon serves. A daemon is ready when its socket exists: it binds
    /// only after node init succeeded. bind(2) has no event to wait on from outside, so the
    /// check is retried (bounded); a daemon that exits fails at once, with the end of its log.
    async fn wait_daemon_ready(&self, node: &Node, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let socket = node.run_dir.join("kube-ovn-daemon.sock");
        let log = self.run_dir.join(format!("{}-daemon.log", node.name));
        while !socket.exists() {
            let exited = node
                .daemon
                .lock()
                .ok()
                .and_then(|mut d| d.try_wait().ok().flatten());
            let problem = match exited {
                Some(status) => Some(format!("exited ({status})")),
                None if tokio::time::Instant::now() > deadline => Some(format!(
                    "did not open {} within {} s",
                    socket.display(),
                    timeout.as_secs()
                )),
                None => None,
            };
            if let Some(problem) = problem {
                return Err(ClusterError::Timeout(format!(
                    "kube-ovn-daemon on {} {problem}; last lines of {}:\n{}",
                    node.name,
                    log.display(),
                    tail(&log, 20)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    fn node(&self, name: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| ClusterError::Yaml(format!("no harness node {name}")))
    }

    /// Kills `node`'s kube-ovn-daemon with SIGKILL, wherever it is (a CNI call in flight fails
    /// or loses its answer, as when a real daemon pod is killed). Its socket file stays, as a
    /// dead process leaves it; CNI calls until [`Cluster::start_daemon`] fail to connect.
    pub fn kill_daemon(&self, node: &str) -> Result<()> {
        let node = self.node(node)?;
        let mut child = node.daemon.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Starts `node`'s daemon again with the same arguments (its log goes on in the same file)
    /// and waits until it serves: it redoes node init and rebuilds its state from OVS and the
    /// API, as a restarted daemon pod does. Kills the old one first if it still runs.
    pub async fn start_daemon(&self, node: &str) -> Result<()> {
        let node = self.node(node)?;
        {
            let mut child = node.daemon.lock().unwrap_or_else(|e| e.into_inner());
            let _ = child.kill();
            let _ = child.wait();
            // The dead daemon's socket file would read as ready.
            let _ = std::fs::remove_file(node.run_dir.join("kube-ovn-daemon.sock"));
            *child = spawn_daemon(
                &self.daemon_bin,
                &node.daemon_args,
                &self.run_dir,
                &node.name,
            )?;
        }
        self.wait_daemon_ready(node, Duration::from_secs(60)).await
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.control_plane.client()
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        self.control_plane.kubeconfig()
    }

    /// Where logs are.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Every network namespace this cluster made (nodes, underlay, running pods).
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.ovn.netns().name().to_owned())
            .collect();
        names.push(self.underlay.netns_name().to_owned());
        if let Ok(pods) = self.pods.lock() {
            names.extend(pods.values().map(|p| p.netns.name().to_owned()));
        }
        names
    }

    /// Directories whose paths appear in the command line of every process this cluster runs
    /// (run dir, OVN central's and each node's state dirs): a process mentioning one is ours.
    pub fn owned_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![
            self.control_plane.run_dir().to_owned(),
            self.central.log_dir().to_owned(),
        ];
        paths.extend(self.nodes.iter().map(|n| n.ovn.log_dir().to_owned()));
        paths
    }

    /// The cluster's NB remote (`unix:...`), for an OVSDB client of its own.
    pub fn nb_remote(&self) -> String {
        self.central.nb_remote()
    }

    /// The cluster's SB remote (`unix:...`).
    pub fn sb_remote(&self) -> String {
        self.central.sb_remote()
    }

    /// The Open vSwitch database remote (`unix:.../db.sock`) of node `node`; the node's
    /// OpenFlow sockets (`br-int.mgmt`) are in the same directory.
    pub fn node_ovs_remote(&self, node: &str) -> Option<String> {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.ovn.db_remote())
    }

    /// Stops `ovn-controller` on node `node` (`ovn-appctl exit`: its chassis leaves the SB).
    pub fn stop_ovn_controller(&self, node: &str) -> Result<()> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.name == node)
            .ok_or_else(|| ClusterError::Yaml(format!("no node {node}")))?;
        Ok(node.ovn.stop_controller()?)
    }

    /// Runs `ovn-nbctl` against the cluster's NB.
    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        Ok(self.central.nbctl(args)?)
    }

    /// `ovs-vsctl` against node `node`'s Open_vSwitch database.
    pub fn node_vsctl(&self, node: &str, args: &[&str]) -> Result<String> {
        Ok(self.node(node)?.ovn.vsctl(args)?)
    }

    /// Kills node `node`'s ovs-vswitchd with SIGKILL and starts it again on the same database
    /// (see [`OvnNode::restart_vswitchd`]).
    pub fn restart_vswitchd(&self, node: &str) -> Result<()> {
        Ok(self.node(node)?.ovn.restart_vswitchd()?)
    }

    /// Names of the nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Runs `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        Ok(self.control_plane.kubectl(args)?)
    }

    /// Applies a multi-document YAML text with `kubectl apply --server-side` (exactly what a
    /// user does with the seed's YAML).
    pub fn apply_yaml(&self, yaml: &str) -> Result<String> {
        let file = self.run_dir.join(format!("apply-{}.yaml", unique("")));
        std::fs::write(&file, yaml).map_err(io("writing YAML"))?;
        let path = file.to_string_lossy().into_owned();
        self.kubectl(&["apply", "--server-side", "-f", &path])
    }

    /// The pods the runner has set up and not torn down, as (namespace, name), sorted.
    pub fn harness_pods(&self) -> Vec<(String, String)> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<_> = pods.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Runs a command inside a pod's network namespace (like `kubectl exec` for networking).
    pub fn exec(&self, namespace: &str, pod: &str, args: &[&str]) -> Result<std::process::Output> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let rt = pods
            .get(&(namespace.to_owned(), pod.to_owned()))
            .ok_or_else(|| {
                ClusterError::Yaml(format!(
                    "pod {namespace}/{pod} is not running on a harness node"
                ))
            })?;
        Ok(rt.netns.exec(args)?)
    }

    /// The path of a running pod's network namespace (to open sockets inside it).
    pub fn pod_netns(&self, namespace: &str, pod: &str) -> Result<PathBuf> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.get(&(namespace.to_owned(), pod.to_owned()))
            .map(|rt| rt.netns.path())
            .ok_or_else(|| {
                ClusterError::Yaml(format!(
                    "pod {namespace}/{pod} is not running on a harness node"
                ))
            })
    }

    /// The network namespace of node `node` (its kernel stack, where CNI plugins run).
    pub fn node_netns(&self, node: &str) -> Option<String> {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.ovn.netns().name().to_owned())
    }

    /// Waits until the pod is Running (all its attachments added).
    pub async fn wait_running(&self, namespace: &str, pod: &str, timeout: Duration) -> Result<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client(), namespace);
        let running = |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Running")
        };
        match tokio::time::timeout(timeout, await_condition(api, pod, running)).await {
            Ok(Ok(Some(p))) => Ok(p),
            Ok(Ok(None)) => Err(ClusterError::Timeout(format!(
                "pod {namespace}/{pod} was deleted"
            ))),
            Ok(Err(e)) => Err(ClusterError::Timeout(format!(
                "watching pod {namespace}/{pod}: {e}"
            ))),
            Err(_) => Err(ClusterError::Timeout(format!(
                "pod {namespace}/{pod} not Running within {}s; logs in {}{}",
                timeout.as_secs(),
                self.run_dir.display(),
                self.controller_exit()
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// Waits until the pod object is gone (the runner tore it down).
    pub async fn wait_deleted(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        timeout: Duration,
    ) -> Result<()> {
        let api: Api<Pod> = Api::namespaced(self.client(), namespace);
        tokio::time::timeout(
            timeout,
            await_condition(api, pod, conditions::is_deleted(uid)),
        )
        .await
        .map_err(|_| ClusterError::Timeout(format!("pod {namespace}/{pod} still exists")))?
        .map_err(|e| ClusterError::Timeout(e.to_string()))?;
        Ok(())
    }

    /// `Some(why)` when kube-ovn-controller has exited, with the end of its log.
    fn controller_exit(&self) -> Option<String> {
        let mut guard = self.controller.lock().ok()?;
        let status = guard.as_mut()?.try_wait().ok()??;
        let log = self.run_dir.join("controller.log");
        Some(format!(
            "kube-ovn-controller exited ({status}); last lines of {}:\n{}",
            log.display(),
            tail(&log, 20)
        ))
    }

    /// Stops kube-ovn-controller and starts it again (same flags; its log goes on in the same
    /// file). The new one rebuilds its state from the API and NB, as after a real restart.
    pub fn restart_controller(&self) -> Result<()> {
        let mut guard = self.controller.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut old) = guard.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        *guard = Some(spawn_controller(
            &self.controller_bin,
            &self.central.nb_remote(),
            self.control_plane.kubeconfig(),
            &self.run_dir,
        )?);
        Ok(())
    }

    /// Marks the point after which the cluster must be quiet (see [`Cluster::assert_quiet`]).
    pub async fn quiet_mark(&self) -> Result<QuietMark> {
        let warnings = warning_events(&self.client())
            .await?
            .into_iter()
            .map(|(key, version, _)| (key, version))
            .collect();
        let controller_log_len = std::fs::metadata(self.run_dir.join("controller.log"))
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(QuietMark {
            warnings,
            controller_log_len,
        })
    }

    /// The quiet after success: no Warning Event recorded or repeated since `mark`, and no
    /// failed reconcile in the controller's log since then, except about the objects named in
    /// `expected` (a scenario's deliberately broken pods). Lists everything that broke it.
    pub async fn assert_quiet(&self, mark: &QuietMark, expected: &[&str]) -> Result<()> {
        let mentions_expected = |line: &str| {
            expected
                .iter()
                .any(|name| line.contains(&format!("/{name}")))
        };
        let mut noise = Vec::new();
        for (key, version, line) in warning_events(&self.client()).await? {
            if mark.warnings.get(&key) == Some(&version) || mentions_expected(&line) {
                continue;
            }
            noise.push(format!("Warning Event {line}"));
        }
        let log_path = self.run_dir.join("controller.log");
        let log = std::fs::read(&log_path).map_err(io("reading controller.log"))?;
        let start = usize::try_from(mark.controller_log_len)
            .unwrap_or(usize::MAX)
            .min(log.len());
        for line in String::from_utf8_lossy(&log[start..]).lines() {
            if line.contains("reconcile failed") && !mentions_expected(line) {
                noise.push(format!("controller: {line}"));
            }
        }
        if noise.is_empty() {
            Ok(())
        } else {
            Err(ClusterError::NotQuiet(format!(
                "the cluster was not quiet after success ({} findings; logs in {}):\n{}",
                noise.len(),
                self.run_dir.display(),
                noise.join("\n")
            )))
        }
    }

    /// Whether every process is still running (a crashed daemon or controller fails a test).
    pub fn check_running(&mut self) -> Result<()> {
        self.control_plane.check_running()?;
        match self.controller_exit() {
            Some(exited) => Err(ClusterError::Timeout(exited)),
            None => Ok(()),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // `cargo xtask e2e --keep`: stay up (serving pods) until the user lets go.
        if crate::keep::requested() {
            crate::keep::hold(self.control_plane.kubeconfig(), &self.run_dir);
        }
        for r in &self.runners {
            r.abort();
        }
        // Pods first (their veths and namespaces), then our processes, then the rest drops.
        let pods: Vec<PodRuntime> = self
            .pods
            .lock()
            .map(|mut p| p.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        drop(pods);
        if let Some(mut c) = self.controller.get_mut().ok().and_then(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The runners may still hold the node list (an aborted task is dropped later), so
        // reach each daemon through its lock rather than by owning the list.
        for n in self.nodes.iter() {
            if let Ok(mut d) = n.daemon.lock() {
                let _ = d.kill();
                let _ = d.wait();
            }
        }
    }
}

/// Installs every kubeovn.io CRD, the NetworkAttachmentDefinition CRD and the MultiNetworkPolicy
/// CRD, waiting until each is Established.
pub async fn install_crds(client: &kube::Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut all = crds::generate::crds();
    all.push(<NetworkAttachmentDefinition as kube::CustomResourceExt>::crd());
    all.extend(crds::generate::optional_crds());
    for crd in all {
        let name = crd.name_any();
        api.create(&PostParams::default(), &crd).await?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| ClusterError::Timeout(format!("CRD {name} not established")))?
        .map_err(|e| ClusterError::Timeout(e.to_string()))?;
    }
    Ok(())
}

/// The kubelet + Multus stand-in of one node.
/// What a runner needs of its node. A copy, not a share: the Cluster alone owns the nodes,
/// so dropping it stops their processes and removes their namespaces at once.
struct RunnerNode {
    name: String,
    netns: String,
    run_dir: PathBuf,
    index: usize,
}

struct Runner {
    client: kube::Client,
    node: RunnerNode,
    pods: Pods,
    plugin: PathBuf,
    /// `kube-ovn-daemon`, for containers whose command is ours.
    daemon_bin: PathBuf,
    kubeconfig: PathBuf,
    run_dir: PathBuf,
}

impl Runner {
    async fn run(self) {
        let node = &self.node;
        let api: Api<Pod> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", node.name));
        let mut stream = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
        // Failed setups per pod, for the retry backoff.
        let mut attempts: HashMap<(String, String), u32> = HashMap::new();
        while let Some(event) = stream.next().await {
            let Ok(pod) = event else { continue };
            let key = (pod.namespace().unwrap_or_default(), pod.name_any());
            if pod.metadata.deletion_timestamp.is_some() {
                attempts.remove(&key);
                self.teardown(&pod).await;
                continue;
            }
            let known = self
                .pods
                .lock()
                .map(|p| p.contains_key(&key))
                .unwrap_or(false);
            if known {
                continue;
            }
            // A pod whose attachments cannot be set up yet is retried on its next update. When
            // the failure was the daemon's absence (not reachable, or the call cut by its
            // death: a daemon restart), it is also retried after a backoff (0.5 s doubling to
            // 8 s), as kubelet retries a failed sandbox; other failures (bad input, no
            // allocation in time) wait for an update, so a deliberately broken pod does not
            // hold its node's runner in ADDs that wait out their timeout.
            match self.setup(&pod).await {
                Ok(()) => {
                    attempts.remove(&key);
                }
                Err(e) => {
                    let msg = e.to_string();
                    tracing::warn!(pod = %format!("{}/{}", key.0, key.1), error = %msg, "sandbox setup failed");
                    let attempt = attempts.entry(key.clone()).or_default();
                    *attempt += 1;
                    let retry = daemon_unreachable(&msg).then(|| {
                        let shift = (*attempt - 1).min(4);
                        (*attempt, Duration::from_millis(500 << shift))
                    });
                    let client = self.client.clone();
                    let (ns, name) = key.clone();
                    tokio::spawn(async move {
                        let api: Api<Pod> = Api::namespaced(client, &ns);
                        let patch = json!({"metadata": {"annotations": {"e2e.kubeovn.io/sandbox-error": msg}}});
                        let _ = api
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await;
                        if let Some((attempt, delay)) = retry {
                            tokio::time::sleep(delay).await;
                            let patch = json!({"metadata": {"annotations": {"e2e.kubeovn.io/sandbox-retry": attempt.to_string()}}});
                            let _ = api
                                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                                .await;
                        }
                    });
                }
            }
        }
    }

    fn cni_env(
        &self,
        command: &str,
        pod: &Pod,
        container_id: &str,
        netns: &Path,
        ifname: &str,
    ) -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), command.into()),
            ("CNI_CONTAINERID".into(), container_id.into()),
            ("CNI_NETNS".into(), netns.display().to_string()),
            ("CNI_IFNAME".into(), ifname.into()),
            (
                "CNI_ARGS".into(),
                format!(
                    "IgnoreUnknown=true;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                    pod.uid().unwrap_or_default()
                ),
            ),
            // Ours first, so a reference plugin's `ipam: {"type": "kube-ovn"}` finds it.
            (
                "CNI_PATH".into(),
                format!(
                    "{}:/usr/lib/cni",
                    self.plugin
                        .parent()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                ),
            ),
        ]
    }

    /// Runs a CNI plugin inside the node's namespace. kube-ovn runs with the node's run dir
    /// bound over `/run/openvswitch`, so the NAD's `server_socket` reaches this node's daemon.
    fn cni(
        &self,
        plugin: &Path,
        bind_run: bool,
        env: &[(String, String)],
        stdin: &str,
    ) -> Result<Value> {
        let node = &self.node;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.netns]);
        if bind_run {
            cmd.args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mkdir -p /run/openvswitch && mount --bind "$1" /run/openvswitch && shift && exec "$@""#)
                .arg("cni")
                .arg(&node.run_dir)
                .arg(plugin);
        } else {
            cmd.arg(plugin);
        }
        let mut child = cmd
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io(format!("running {}", plugin.display())))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .map_err(io("writing CNI stdin"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(io("waiting for the CNI plugin"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(ClusterError::Yaml(format!(
                "{} {}: {} {}",
                plugin.display(),
                env.first().map(|(_, v)| v.as_str()).unwrap_or(""),
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| ClusterError::Yaml(format!("CNI result is not JSON ({e}): {text}")))
    }

    fn primary_conf(&self) -> String {
        let node = &self.node;
        json!({
            "cniVersion": "1.0.0",
            "name": PRIMARY_NETWORK,
            "type": "bridge",
            "bridge": "cni0",
            "isGateway": true,
            "isDefaultGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "subnet": format!("10.244.{}.0/24", node.index + 1),
                "dataDir": self.run_dir.join(format!("{}-host-local", node.name)).display().to_string(),
            }
        })
        .to_string()
    }

    async fn setup(&self, pod: &Pod) -> Result<()> {
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let container_id = format!("e2e{}", pod.uid().unwrap_or_default().replace('-', ""));
        let netns = NetnsGuard::create(&unique("kovn-p"))?;
        let bridge = PathBuf::from("/usr/lib/cni/bridge");
        let env = self.cni_env("ADD", pod, &container_id, &netns.path(), "eth0");
        let primary = self.cni(&bridge, false, &env, &self.primary_conf())?;
        let mut statuses = vec![network_status(PRIMARY_NETWORK, "eth0", &primary, true)];
        let mut attachments = Vec::new();
        if let Some(raw) = pod.annotations().get(NETWORKS_ANNOTATION) {
            let elements = parse_networks_annotation(raw, &namespace)
                .map_err(|e| ClusterError::Yaml(e.to_string()))?;
            for (position, element) in elements.iter().enumerate() {
                let nads: Api<NetworkAttachmentDefinition> =
                    Api::namespaced(self.client.clone(), &element.namespace);
                let nad = nads.get(&element.name).await?;
                let mut conf: Value = serde_json::from_str(&nad.spec.config)
                    .map_err(|e| ClusterError::Yaml(format!("NAD {}: {e}", element.nad_key())))?;
                // As Multus: the NAD's `type` is the plugin (ours, or a reference plugin such
                // as macvlan whose `ipam` may delegate to ours through CNI_PATH).
                let plugin = match conf["type"].as_str() {
                    Some("kube-ovn") => self.plugin.clone(),
                    Some(t) if !t.is_empty() && !t.contains('/') => {
                        let p = Path::new("/usr/lib/cni").join(t);
                        if !p.is_file() {
                            return Err(ClusterError::Yaml(format!(
                                "NAD {}: CNI plugin {t} is not installed in /usr/lib/cni",
                                element.nad_key()
                            )));
                        }
                        p
                    }
                    _ => {
                        return Err(ClusterError::Yaml(format!(
                            "NAD {}: config has no valid \"type\"",
                            element.nad_key()
                        )));
                    }
                };
                if conf.get("name").is_none() {
                    conf["name"] = json!(element.name);
                }
                // Multus passes runtimeConfig only for capabilities the NAD declares.
                let caps = conf["capabilities"].clone();
                let mut runtime = serde_json::Map::new();
                if caps["ips"] == true && !element.ips.is_empty() {
                    runtime.insert(
                        "ips".into(),
                        json!(
                            element
                                .ips
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                        ),
                    );
                }
                if caps["mac"] == true
                    && let Some(mac) = &element.mac
                {
                    runtime.insert("mac".into(), json!(mac.to_string()));
                }
                if !runtime.is_empty() {
                    conf["runtimeConfig"] = Value::Object(runtime);
                }
                let ifname = element.interface_name(position);
                let stdin = conf.to_string();
                let env = self.cni_env("ADD", pod, &container_id, &netns.path(), &ifname);
                let result = {
                    let this = self;
                    let (plugin, env, stdin) = (plugin.clone(), env.clone(), stdin.clone());
                    tokio::task::block_in_place(|| this.cni(&plugin, true, &env, &stdin))
                };
                let result = match result {
                    Ok(r) => r,
                    Err(e) => {
                        // Undo what this sandbox got so far, the failed attachment included (an
                        // ADD cut short, e.g. by a daemon killed mid-call, may have left part of
                        // it), as Multus and the runtime do on a failed ADD.
                        attachments.push((ifname, stdin, plugin));
                        tokio::task::block_in_place(|| {
                            self.delete_attachments(
                                pod,
                                &container_id,
                                &netns.path(),
                                &attachments,
                            );
                        });
                        let env = self.cni_env("DEL", pod, &container_id, &netns.path(), "eth0");
                        let _ = self.cni(&bridge, false, &env, &self.primary_conf());
                        return Err(e);
                    }
                };
                statuses.push(network_status(&element.nad_key(), &ifname, &result, false));
                attachments.push((ifname, stdin, plugin));
            }
        }
        let containers = match self.start_containers(pod, &netns) {
            Ok(c) => c,
            Err(e) => {
                tokio::task::block_in_place(|| {
                    self.delete_attachments(pod, &container_id, &netns.path(), &attachments);
                });
                let env = self.cni_env("DEL", pod, &container_id, &netns.path(), "eth0");
                let _ = self.cni(&bridge, false, &env, &self.primary_conf());
                return Err(e);
            }
        };
        let probed = containers.as_ref().is_some_and(|c| c.probe.is_some());
        // Known to the harness (exec) before anyone can see the pod Running.
        let rt = PodRuntime {
            netns,
            container_id,
            attachments,
            containers,
        };
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert((namespace.clone(), name.clone()), rt);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let status_json = serde_json::to_string_pretty(&statuses).unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {NETWORK_STATUS_ANNOTATION: status_json}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let pod_ip = primary["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .unwrap_or_default()
            .to_owned();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        // A pod with a readiness probe starts not Ready; its probe loop sets it.
        let ready = if probed { "False" } else { "True" };
        let status = json!({"status": {
            "phase": "Running",
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
            ],
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        if probed {
            self.start_probe_loop(&namespace, &name);
        }
        Ok(())
    }

    /// CNI DEL of each attachment, last first. A DEL that fails is tried again (every 0.5 s,
    /// for up to a minute), as kubelet keeps trying to stop a sandbox whose teardown failed:
    /// a daemon being restarted answers DEL a moment later.
    fn delete_attachments(
        &self,
        pod: &Pod,
        container_id: &str,
        netns: &Path,
        attachments: &[(String, String, PathBuf)],
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut left: Vec<_> = attachments.iter().rev().collect();
        loop {
            left.retain(|(ifname, stdin, plugin)| {
                let env = self.cni_env("DEL", pod, container_id, netns, ifname);
                match self.cni(plugin, true, &env, stdin) {
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, %ifname, "CNI DEL failed");
                        true
                    }
                }
            });
            if left.is_empty() || std::time::Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    async fn teardown(&self, pod: &Pod) {
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let rt = self.pods.lock().ok().and_then(|mut p| p.remove(&key));
        if let Some(mut rt) = rt {
            // Containers stop before their interfaces go, as a runtime stops them first.
            drop(rt.containers.take());
            tokio::task::block_in_place(|| {
                self.delete_attachments(pod, &rt.container_id, &rt.netns.path(), &rt.attachments);
                let env = self.cni_env("DEL", pod, &rt.container_id, &rt.netns.path(), "eth0");
                let _ = self.cni(
                    Path::new("/usr/lib/cni/bridge"),
                    false,
                    &env,
                    &self.primary_conf(),
                );
            });
            drop(rt);
        }
        // As kubelet does once the sandbox is gone: the final, immediate delete.
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.0);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let _ = api.delete(&key.1, &dp).await;
    }
}

/// Whether a failed CNI call's message says the daemon was absent: not reachable on its socket,
/// or the call cut at the transport (the plugin's words, `cni/src/client.rs` and `api.rs`).
fn daemon_unreachable(message: &str) -> bool {
    message.contains("kube-ovn-daemon is not reachable")
        || message.contains("kube-ovn-daemon answered")
}

/// The name our daemon binary has in the images (a container command naming it is ours).
const DAEMON_BINARY_NAME: &str = "kube-ovn-daemon";

/// How often the runner looks at a pod's own containers (restart the exited, run the probe).
const PROBE_PERIOD: Duration = Duration::from_secs(1);

/// One container of ours, run as a process.
#[derive(Debug)]
struct OwnProcess {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Child,
}

impl OwnProcess {
    fn spawn(
        bin: &Path,
        name: &str,
        args: Vec<String>,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> Result<Self> {
        let child = spawn_logged(bin, &args, &env, &log)?;
        Ok(Self {
            name: name.to_owned(),
            args,
            env,
            log,
            child,
        })
    }
}

fn spawn_logged(
    bin: &Path,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(format!("opening {}", log.display())))?;
    Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(io("log"))?)
        .stderr(out)
        .spawn()
        .map_err(io(format!("starting {}", bin.display())))
}

/// An exec readiness probe of ours.
#[derive(Debug, Clone)]
struct Probe {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// The containers of a pod whose command is one of our binaries (`/kube-ovn/kube-ovn-daemon
/// nat-gateway`, the VPC NAT gateway's agent), run as kubelet would run them, with two
/// differences: they run in the harness' own namespace, beside the API server (a pod's
/// namespace has no way to the loopback API server here), and are told the pod's namespace
/// instead (`NATGW_NETNS`), with the admin `KUBECONFIG` and their readiness file in the pod's
/// run dir (`NATGW_READY_FILE`). Init containers of ours, if a pod has any, run to completion
/// inside the pod's namespace first. A container that exits is started again
/// (`restartPolicy: Always`); the readiness probe, run every second, decides the pod's Ready
/// condition. Everything stops on drop.
#[derive(Debug)]
struct OwnContainers {
    bin: PathBuf,
    procs: Arc<Mutex<Vec<OwnProcess>>>,
    probe: Option<Probe>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for OwnContainers {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let mut procs = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        for p in procs.iter_mut() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// The arguments after the program when `command` runs our daemon binary.
fn own_command(command: Option<&Vec<String>>) -> Option<Vec<String>> {
    let command = command?;
    let program = Path::new(command.first()?);
    (program.file_name()? == DAEMON_BINARY_NAME).then(|| command[1..].to_vec())
}

impl Runner {
    /// A container's environment: literal values and the downward API's pod fields.
    fn container_env(
        &self,
        pod: &Pod,
        container: &k8s_openapi::api::core::v1::Container,
        netns: &Path,
        pod_dir: &Path,
    ) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for e in container.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(from)) => {
                    from.field_ref
                        .as_ref()
                        .and_then(|f| match f.field_path.as_str() {
                            "metadata.name" => Some(pod.name_any()),
                            "metadata.namespace" => pod.namespace(),
                            "spec.nodeName" => Some(self.node.name.clone()),
                            _ => None,
                        })
                }
                _ => None,
            };
            if let Some(v) = value {
                env.push((e.name.clone(), v));
            }
        }
        env.push(("KUBECONFIG".into(), self.kubeconfig.display().to_string()));
        env.push(("NATGW_NETNS".into(), netns.display().to_string()));
        env.push((
            "NATGW_READY_FILE".into(),
            pod_dir.join("natgw-ready").display().to_string(),
        ));
        env
    }

    /// Runs the pod's init containers of ours and starts its containers of ours (`None` when it
    /// has none).
    fn start_containers(&self, pod: &Pod, netns: &NetnsGuard) -> Result<Option<OwnContainers>> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(None);
        };
        let ours = |c: &k8s_openapi::api::core::v1::Container| own_command(c.command.as_ref());
        if !spec.containers.iter().any(|c| ours(c).is_some()) {
            return Ok(None);
        }
        let pod_dir = self.run_dir.join(format!(
            "pod-{}-{}-{}",
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
            pod.uid().unwrap_or_default()
        ));
        std::fs::create_dir_all(&pod_dir).map_err(io("creating the pod dir"))?;
        for init in spec.init_containers.iter().flatten() {
            let Some(args) = ours(init) else { continue };
            let env = self.container_env(pod, init, &netns.path(), &pod_dir);
            let out = tokio::task::block_in_place(|| {
                Command::new("ip")
                    .args(["netns", "exec", netns.name()])
                    .arg(&self.daemon_bin)
                    .args(&args)
                    .env_clear()
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .output()
            })
            .map_err(io(format!("running init container {}", init.name)))?;
            std::fs::write(
                pod_dir.join(format!("{}.log", init.name)),
                [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
            )
            .map_err(io("writing an init container's log"))?;
            if !out.status.success() {
                return Err(ClusterError::Yaml(format!(
                    "init container {} failed ({}): {}",
                    init.name,
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        let mut procs = Vec::new();
        let mut probe = None;
        for c in &spec.containers {
            let Some(args) = ours(c) else { continue };
            let env = self.container_env(pod, c, &netns.path(), &pod_dir);
            let log = pod_dir.join(format!("{}.log", c.name));
            if let Some(exec) = c
                .readiness_probe
                .as_ref()
                .and_then(|p| p.exec.as_ref())
                .and_then(|e| own_command(e.command.as_ref()))
            {
                probe = Some(Probe {
                    args: exec,
                    env: env.clone(),
                });
            }
            procs.push(OwnProcess::spawn(
                &self.daemon_bin,
                &c.name,
                args,
                env,
                log,
            )?);
        }
        Ok(Some(OwnContainers {
            bin: self.daemon_bin.clone(),
            procs: Arc::new(Mutex::new(procs)),
            probe,
            task: None,
        }))
    }

    /// Starts the loop that restarts the pod's exited containers of ours and sets its Ready
    /// condition from their probe.
    fn start_probe_loop(&self, namespace: &str, name: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let Some(containers) = pods
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .and_then(|rt| rt.containers.as_mut())
        else {
            return;
        };
        let (bin, procs, probe) = (
            containers.bin.clone(),
            containers.procs.clone(),
            containers.probe.clone(),
        );
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let name = name.to_owned();
        containers.task = Some(tokio::spawn(async move {
            let mut ready = false;
            loop {
                tokio::time::sleep(PROBE_PERIOD).await;
                restart_exited(&bin, &procs);
                let Some(probe) = &probe else { continue };
                let ok = tokio::process::Command::new(&bin)
                    .args(&probe.args)
                    .env_clear()
                    .envs(probe.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|s| s.success());
                if ok == ready {
                    continue;
                }
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let status = if ok { "True" } else { "False" };
                let patch = json!({"status": {"conditions": [
                    {"type": "Ready", "status": status, "lastTransitionTime": now},
                ]}});
                // Conditions merge by type (strategic merge), as kubelet's status manager.
                if api
                    .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                    .is_ok()
                {
                    ready = ok;
                }
            }
        }));
    }
}

/// Starts again each of `procs` that exited, appending to its log.
fn restart_exited(bin: &Path, procs: &Mutex<Vec<OwnProcess>>) {
    let mut procs = procs.lock().unwrap_or_else(|e| e.into_inner());
    for p in procs.iter_mut() {
        let Ok(Some(status)) = p.child.try_wait() else {
            continue;
        };
        tracing::warn!(container = %p.name, %status, "container of ours exited; starting it again");
        match spawn_logged(bin, &p.args, &p.env, &p.log) {
            Ok(child) => p.child = child,
            Err(e) => tracing::warn!(container = %p.name, error = %e, "restart failed"),
        }
    }
}

/// One `network-status` element from a CNI result (Multus' shape).
fn network_status(name: &str, interface: &str, result: &Value, default: bool) -> Value {
    let ips: Vec<String> = result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip["address"].as_str()?.split('/').next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mac = result["interfaces"]
        .as_array()
        .and_then(|ifs| {
            ifs.iter()
                .find(|i| i["sandbox"].as_str().is_some_and(|s| !s.is_empty()))
        })
        .and_then(|i| i["mac"].as_str())
        .unwrap_or_default();
    let mut status =
        json!({"name": name, "interface": interface, "ips": ips, "mac": mac, "dns": {}});
    if default {
        status["default"] = json!(true);
    }
    status
}

/// The last `n` lines of a log file (for error messages: the run dir may not outlive them),
/// without the frames of a backtrace (a program that exits with an error under
/// `RUST_BACKTRACE` prints dozens of them after the one line that says why).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !is_backtrace_line(l)).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether `line` is part of a Rust backtrace (`Stack backtrace:`, `  12: frame`, `at file`).
fn is_backtrace_line(line: &str) -> bool {
    let t = line.trim_start();
    t == "Stack backtrace:"
        || t == "stack backtrace:"
        || t.starts_with("at ")
        || t.split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tails_skip_backtrace_frames() {
        let dir = std::env::temp_dir().join(format!("kovn-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("daemon.log");
        std::fs::write(
            &log,
            "starting\nError: connecting to unix:/x: No such file\n\nStack backtrace:\n   0: std::rt\n             at /rustc/x.rs:1:2\n  12: main\n",
        )
        .unwrap();
        let t = tail(&log, 3);
        assert_eq!(t, "starting\nError: connecting to unix:/x: No such file\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
