//! One real node: containerd (Debian's 1.6 with runc) and a kubelet built with the control
//! plane, both in the node's network namespace, kube-proxy beside them, pods' `eth0` from the
//! reference `bridge` + `host-local` plugins. Settings are those measured in
//! `shared/notes/containerd.md`.
//!
//! Start order: namespace on the harness bridge, **fence**, containerd, images, kubelet (the
//! Node turns Ready), kube-proxy (the `kubernetes` Service is translated in the namespace).
//! Programs enter only the network namespace (`nsenter --net`) and share the host's mount
//! namespace, as a kubelet and its runtime must (the kubelet mounts volumes that containerd
//! bind-mounts into containers).
//!
//! Teardown (`Drop`) in reverse: kube-proxy, kubelet, every container task killed through
//! containerd, containerd, any shim of this node still running, mounts under the node's dir,
//! the pod cgroups, the dir itself (kept with its logs when the thread panics), then the fence
//! and the namespace.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use super::fence::{Fence, Scope};
use super::net::HostBridge;
use super::proxy::{KubeProxy, ProxyConfig};
use super::{Error, Process, Result, io, run};
use crate::k8s::ControlPlane;
use crate::ovn::NetnsGuard;
use crate::programs::{self, Program};

/// Debian programs a real node runs.
pub const PROGRAMS: &[Program] = &[
    Program {
        name: "containerd",
        package: "containerd",
    },
    Program {
        name: "ctr",
        package: "containerd",
    },
    Program {
        name: "runc",
        package: "runc",
    },
    Program {
        name: "nsenter",
        package: "util-linux",
    },
];

/// Where Debian's `containernetworking-plugins` puts the reference plugins.
pub const CNI_PLUGINS_DIR: &str = "/usr/lib/cni";

/// The pause (sandbox) image `cargo xtask images` makes.
pub const PAUSE_IMAGE: &str = "docker.io/kube-ovn-rs/e2e-pause:v0.1.0";

/// The test workload image (busybox: `sh`, `ip`, `ping`, `nc`).
pub const WORKLOAD_IMAGE: &str = "docker.io/kube-ovn-rs/e2e-workload:v0.1.0";

/// Where `cargo xtask setup` puts Multus' thin plugin. Keep in step with `xtask/src/multus.rs`
/// (a test checks).
pub const MULTUS_BIN: &str = "/var/cache/kube-ovn-rs/multus/v4.3.0-42-g95a0932/bin/multus";

const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// What a node is made of.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The Node name.
    pub name: String,
    /// Index on the bridge (decides the pod subnet).
    pub index: u8,
    /// OCI archives imported into the node's containerd (the pause image among them).
    pub images: Vec<PathBuf>,
    /// The Kubernetes binaries (kubelet, kube-proxy).
    pub k8s_bin_dir: PathBuf,
    /// Extra CNI plugin binaries linked into the node's CNI bin dir (name, path).
    pub extra_plugins: Vec<(String, PathBuf)>,
    /// Multus' thin plugin (`cargo xtask setup` builds it): when given, the node's first CNI
    /// config is `00-multus.conf`, as Multus' installer writes it, with the bridge conflist as
    /// its only delegate (the primary network).
    pub multus: Option<PathBuf>,
}

/// A running real node.
#[derive(Debug)]
pub struct RealNode {
    name: String,
    ip: Ipv4Addr,
    pod_subnet: Ipv4Net,
    dir: PathBuf,
    socket: PathBuf,
    kubeconfig: PathBuf,
    mounts: Option<NodeMounts>,
    cgroup_root: String,
    proxy: Option<KubeProxy>,
    kubelet: Option<Process>,
    containerd: Option<Process>,
    // Declared last: dropped after `Drop::drop` ran, the fence before the namespace.
    fence: Fence,
    netns: NetnsGuard,
}

impl RealNode {
    /// Starts the node on `bridge`, joined to `plane` (which must serve on the bridge's
    /// address). Returns once the Node is Ready and kube-proxy translates the `kubernetes`
    /// Service.
    pub async fn start(
        plane: &ControlPlane,
        bridge: &HostBridge,
        config: &NodeConfig,
    ) -> Result<Self> {
        programs::require(PROGRAMS)?;
        for name in ["kubelet", "kube-proxy"] {
            let path = config.k8s_bin_dir.join(name);
            if !path.is_file() {
                return Err(Error::Command {
                    command: path.display().to_string(),
                    detail: format!("{name} is missing: run `cargo xtask setup`"),
                });
            }
        }
        let netns = NetnsGuard::create(&crate::ovn::unique("kovn-node"))?;
        let ip = bridge.attach(&netns)?;
        let pod_subnet = bridge.pod_subnet(config.index);
        // The fence goes up before any program runs in the namespace.
        let fence = Fence::install_deferring(
            Scope::Netns(netns.name().to_owned()),
            // Every node's pod subnet: pods talk across nodes over their eth0.
            &bridge.allow_list(&[bridge.cluster_cidr()]),
            // Cluster IPs: kube-proxy's to translate or reject; untranslated ones are stopped
            // and counted at the last hook.
            &[super::net::SERVICE_RANGE
                .parse()
                .map_err(|_| Error::Parse {
                    command: "SERVICE_RANGE".to_owned(),
                    detail: super::net::SERVICE_RANGE.to_owned(),
                })?],
        )?;
        let dir = plane.run_dir().join(format!("node-{}", config.name));
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut node = Self {
            name: config.name.clone(),
            ip,
            pod_subnet,
            socket: dir.join("containerd.sock"),
            kubeconfig: plane.kubeconfig().to_path_buf(),
            mounts: None,
            cgroup_root: netns.name().to_owned(),
            dir,
            proxy: None,
            kubelet: None,
            containerd: None,
            fence,
            netns,
        };
        node.mounts = Some(NodeMounts::create(&node.dir)?);
        create_cgroup_root(&node.cgroup_root)?;
        node.start_containerd(config)?;
        for image in &config.images {
            node.ctr(&["images", "import", &image.display().to_string()])?;
        }
        // The kubelet runs under a service manager on a real node (systemd's `Restart=always`),
        // and 1.35 can die at start on a race of its own (seen once in CI: `fatal error:
        // concurrent map read and map write` in `containerManagerImpl.GetCapacity`, kubernetes
        // PR 119637): restarted like that, twice at most, the earlier logs kept.
        let mut attempt = 0;
        loop {
            node.start_kubelet(plane, config)?;
            match node.wait_ready(plane).await {
                Ok(()) => break,
                Err(Error::Command { command, detail }) if command == "kubelet" && attempt < 2 => {
                    attempt += 1;
                    let log = node.dir.join("kubelet.log");
                    let kept = node.dir.join(format!("kubelet.log.{attempt}"));
                    std::fs::rename(&log, &kept)
                        .map_err(io(format!("keeping {}", log.display())))?;
                    eprintln!(
                        "{}: the kubelet {} (log kept in {}); restarting it as its service manager would",
                        node.name,
                        detail.lines().next().unwrap_or_default(),
                        kept.display()
                    );
                    if let Some(mut old) = node.kubelet.take() {
                        old.stop(Duration::from_secs(5));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let proxy = KubeProxy::start(
            &config.k8s_bin_dir.join("kube-proxy"),
            &ProxyConfig {
                node_name: node.name.clone(),
                netns: node.netns.name().to_owned(),
                node_ip: node.ip,
                cluster_cidrs: vec![bridge.cluster_cidr()],
                kubeconfig: plane.kubeconfig().to_path_buf(),
                dir: node.dir.join("kube-proxy"),
            },
        )?;
        node.proxy = Some(proxy);
        Ok(node)
    }

    fn start_containerd(&mut self, config: &NodeConfig) -> Result<()> {
        let dir = &self.dir;
        // The node's `/opt/cni/bin` (bound there in its mount namespace): the chart's
        // kube-ovn-cni installs the `kube-ovn` plugin into the hostPath `/opt/cni/bin`, and
        // Multus and containerd must find it beside the reference plugins.
        let cni_bin = dir.join("host/opt/cni/bin");
        let cni_conf = dir.join("cni/net.d");
        for d in [&cni_bin, &cni_conf, &dir.join("containerd")] {
            std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        }
        for plugin in ["bridge", "host-local", "loopback", "portmap", "macvlan"] {
            let from = Path::new(CNI_PLUGINS_DIR).join(plugin);
            if !from.is_file() {
                return Err(programs::MissingProgram {
                    name: "bridge/host-local/loopback CNI plugins",
                    package: "containernetworking-plugins",
                }
                .into());
            }
            symlink(&from, &cni_bin.join(plugin))?;
        }
        for (name, path) in &config.extra_plugins {
            symlink(path, &cni_bin.join(name))?;
        }
        let conflist = self.bridge_conflist();
        let path = cni_conf.join("10-bridge.conflist");
        std::fs::write(&path, conflist.to_string())
            .map_err(io(format!("writing {}", path.display())))?;
        if let Some(multus) = &config.multus {
            if !multus.is_file() {
                return Err(Error::Command {
                    command: multus.display().to_string(),
                    detail: "Multus is missing: run `cargo xtask setup`, which builds it"
                        .to_owned(),
                });
            }
            symlink(multus, &cni_bin.join("multus"))?;
            let multus_conf = serde_json::json!({
                "cniVersion": "1.0.0",
                "name": "multus-cni-network",
                "type": "multus",
                "kubeconfig": self.kubeconfig,
                "binDir": cni_bin,
                "confDir": cni_conf,
                "cniDir": dir.join("multus"),
                "logFile": dir.join("multus.log"),
                "logLevel": "verbose",
                "delegates": [conflist],
            });
            let path = cni_conf.join("00-multus.conf");
            std::fs::write(&path, multus_conf.to_string())
                .map_err(io(format!("writing {}", path.display())))?;
        }
        let toml = containerd_config(dir, &self.socket, &cni_bin, &cni_conf);
        let path = dir.join("containerd/config.toml");
        std::fs::write(&path, toml).map_err(io(format!("writing {}", path.display())))?;
        let containerd = programs::find_on_path("containerd").ok_or(programs::MissingProgram {
            name: "containerd",
            package: "containerd",
        })?;
        self.containerd = Some(Process::spawn_in(
            "containerd",
            Some(self.netns.name()),
            self.mounts.as_ref().map(NodeMounts::file),
            &containerd,
            &[format!("--config={}", path.display())],
            &dir.join("containerd.log"),
        )?);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(p) = self.containerd.as_mut() {
                p.check_running()?;
            }
            match self.ctr(&["version"]) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::Timeout {
                        what: "containerd to answer on its socket".to_owned(),
                        secs: READY_TIMEOUT.as_secs(),
                        last: e.to_string(),
                    });
                }
                // containerd creates its socket when it serves; polling it is the signal.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The primary network: the reference bridge with host-local addresses from this node's
    /// pod subnet (state in the node's dir, not the fixed `/var/lib/cni`).
    pub fn bridge_conflist(&self) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "e2e-primary",
            "plugins": [{
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": self.pod_subnet.to_string()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": self.dir.join("cni/ipam"),
                },
            }],
        })
    }

    fn start_kubelet(&mut self, plane: &ControlPlane, config: &NodeConfig) -> Result<()> {
        let dir = &self.dir;
        let resolv = dir.join("resolv.conf");
        // No name server: a pod that resolves a name must not send the query off the machine.
        std::fs::write(&resolv, "# kube-ovn e2e real node: no DNS\n")
            .map_err(io(format!("writing {}", resolv.display())))?;
        let kubelet_config = serde_json::json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": false,
            "containerRuntimeEndpoint": format!("unix://{}", self.socket.display()),
            "failSwapOn": false,
            "readOnlyPort": 0,
            "address": self.ip.to_string(),
            "port": 10250,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "enforceNodeAllocatable": [],
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            // Imported images cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "resolvConf": resolv,
            "podLogsDir": dir.join("pod-logs"),
            "authentication": {
                "anonymous": {"enabled": false},
                "webhook": {"enabled": true},
                "x509": {"clientCAFile": plane.run_dir().join("ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "registerNode": true,
            "serializeImagePulls": false,
            "cgroupRoot": format!("/{}", self.cgroup_root),
        });
        let path = dir.join("kubelet.json");
        std::fs::write(&path, kubelet_config.to_string())
            .map_err(io(format!("writing {}", path.display())))?;
        let kubelet = config.k8s_bin_dir.join("kubelet");
        self.kubelet = Some(Process::spawn_in(
            "kubelet",
            Some(self.netns.name()),
            self.mounts.as_ref().map(NodeMounts::file),
            &kubelet,
            &[
                format!("--config={}", path.display()),
                format!("--kubeconfig={}", plane.kubeconfig().display()),
                format!("--root-dir={}", dir.join("kubelet").display()),
                format!("--hostname-override={}", self.name),
                format!("--node-ip={}", self.ip),
                "--v=2".to_owned(),
            ],
            &dir.join("kubelet.log"),
        )?);
        Ok(())
    }

    async fn wait_ready(&mut self, plane: &ControlPlane) -> Result<()> {
        let nodes: Api<Node> = Api::all(plane.client());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(k) = self.kubelet.as_mut() {
                k.check_running()?;
            }
            let ready = match nodes.get_opt(&self.name).await {
                Ok(Some(node)) => node_ready(&node),
                Ok(None) => Err("not registered yet".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            match ready {
                Ok(()) => return Ok(()),
                Err(last) if Instant::now() >= deadline => {
                    return Err(Error::Timeout {
                        what: format!("Node {} to be Ready", self.name),
                        secs: READY_TIMEOUT.as_secs(),
                        last,
                    });
                }
                // The kubelet reports status every few seconds; a watch would see the same.
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Routes `other`'s pod subnet via `other` (pods' eth0 across nodes, as a primary CNI's
    /// routes would).
    pub fn route_pods_to(&self, other: &RealNode) -> Result<()> {
        run(Command::new("ip").args([
            "-n",
            self.netns.name(),
            "route",
            "add",
            &other.pod_subnet.to_string(),
            "via",
            &other.ip.to_string(),
        ]))?;
        Ok(())
    }

    /// `ctr -a <socket> -n k8s.io <args>` against this node's containerd.
    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        // Bounded: a containerd that hangs must not hang the teardown (seen once: a two-node
        // test's teardown stalled for minutes and left a shim and its containers behind).
        run(Command::new("timeout")
            .args(["20", "ctr"])
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", "k8s.io"])
            .args(args))
    }

    /// The Node name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's address (its InternalIP).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The node's pod subnet (primary network).
    pub fn pod_subnet(&self) -> Ipv4Net {
        self.pod_subnet
    }

    /// The node's namespace.
    pub fn netns(&self) -> &NetnsGuard {
        &self.netns
    }

    /// The node's fence.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// The node's dir (configs and logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's CNI config dir (`net.d`), where Multus' `00-multus.conf` goes.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni/net.d")
    }

    /// The node's CNI bin dir.
    pub fn cni_bin_dir(&self) -> PathBuf {
        self.dir.join("host/opt/cni/bin")
    }

    fn teardown(&mut self) {
        self.proxy = None;
        if let Some(mut kubelet) = self.kubelet.take() {
            kubelet.stop(Duration::from_secs(5));
        }
        // Every container of this node: its task killed through the node's own containerd.
        // Their pod namespaces, libcni's results and runc's state live in the node's mount
        // namespace (bound over the fixed paths) and go with it.
        if let Ok(tasks) = self.ctr(&["tasks", "ls", "-q"]) {
            for task in tasks.lines().map(str::trim).filter(|t| !t.is_empty()) {
                let _ = self.ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", task]);
                let _ = self.ctr(&["tasks", "delete", "-f", task]);
            }
        }
        if let Some(mut containerd) = self.containerd.take() {
            containerd.stop(Duration::from_secs(5));
        }
        kill_shims_of(&self.socket);
        if let Some(mounts) = self.mounts.take() {
            mounts.remove();
        }
        unmount_under(&self.dir);
        remove_cgroup_root(&self.cgroup_root);
        if std::thread::panicking() {
            eprintln!(
                "real node {} logs kept in {}",
                self.name,
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn node_ready(node: &Node) -> std::result::Result<(), String> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(c) if c.status == "True" => Ok(()),
        Some(c) => Err(format!(
            "Ready={} {}",
            c.status,
            c.message.clone().unwrap_or_default()
        )),
        None => Err("no Ready condition yet".to_owned()),
    }
}

fn symlink(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    std::os::unix::fs::symlink(from, to).map_err(io(format!(
        "linking {} to {}",
        to.display(),
        from.display()
    )))
}

/// containerd 1.6's config for one node: root, state, sockets and CNI dirs in the node's dir;
/// CRI with `restrict_oom_score_adj` (no CAP_SYS_RESOURCE here) and our pause image.
fn containerd_config(dir: &Path, socket: &Path, cni_bin: &Path, cni_conf: &Path) -> String {
    let d = |p: &str| dir.join(p).display().to_string();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        socket = socket.display(),
        opt = d("containerd/opt"),
        pause = PAUSE_IMAGE,
        cni_bin = cni_bin.display(),
        cni_conf = cni_conf.display(),
    )
}

/// Kills `containerd-shim-runc-v2` processes started by the containerd on `socket` (their
/// command line names it), and what runs under them.
fn kill_shims_of(socket: &Path) {
    let needle = socket.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("containerd-shim") && cmdline.contains(&needle) {
            // The containers are the shim's children; they outlive it when it dies first.
            for child in children_of(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Host paths that the kubelet, containerd, CNI plugins and the chart's hostPath volumes use
/// at fixed places. Each node binds its own dir over them in its mount namespace, so two nodes
/// on one machine do not share `/run/openvswitch` (OVS' and our daemon's sockets),
/// `/opt/cni/bin`, pod namespaces or runc state, and nothing is left in the host's.
pub const NODE_PRIVATE_PATHS: &[&str] = &[
    "/run/netns",
    "/run/containerd",
    "/run/openvswitch",
    "/run/ovn",
    "/var/lib/cni",
    "/etc/cni/net.d",
    "/opt/cni/bin",
    "/etc/origin",
    "/var/log/ovn",
    "/var/log/openvswitch",
    "/var/log/kube-ovn",
    "/var/log/containers",
];

/// The node's mount namespace: a slave of the host's (host mounts show up inside, nothing made
/// inside shows up outside, and hostPath volumes with `mountPropagation` accept it without
/// `mount --make-rshared /` on the host), bound at `<node dir>/mntns/ns`, with
/// [`NODE_PRIVATE_PATHS`] bound to `<node dir>/host/...`.
#[derive(Debug)]
struct NodeMounts {
    dir: PathBuf,
    file: PathBuf,
}

/// Host mount points real nodes created (one path a line), shared by every node of every test
/// process: removing one while another node's namespace has it bound would detach that bind.
const CREATED_LIST: &str = "/run/kube-ovn-e2e-real-created";

fn remember_created(dirs: &[PathBuf]) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(CREATED_LIST)
    {
        for d in dirs {
            let _ = writeln!(f, "{}", d.display());
        }
    }
}

/// Removes the created mount points (deepest first, when empty) once no node mount namespace
/// is bound any more on this machine.
fn remove_created_if_last() {
    let others = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .any(|p| p.ends_with("/mntns/ns"));
    if others {
        return;
    }
    let Ok(list) = std::fs::read_to_string(CREATED_LIST) else {
        return;
    };
    let mut dirs: Vec<&str> = list.lines().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    dirs.dedup();
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
    let _ = std::fs::remove_file(CREATED_LIST);
}

impl NodeMounts {
    fn create(node_dir: &Path) -> Result<Self> {
        let dir = node_dir.join("mntns");
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let file = dir.join("ns");
        let mounts = Self {
            dir: dir.clone(),
            file: file.clone(),
        };
        // A namespace can only be bound on a private mount: make the dir one.
        run(Command::new("mount").arg("--bind").arg(&dir).arg(&dir))?;
        run(Command::new("mount").arg("--make-private").arg(&dir))?;
        std::fs::write(&file, "").map_err(io(format!("creating {}", file.display())))?;
        run(Command::new("unshare")
            .arg(format!("--mount={}", file.display()))
            .args(["--propagation", "slave", "true"]))?;
        for path in NODE_PRIVATE_PATHS {
            let target = Path::new(path);
            let source = node_dir.join("host").join(path.trim_start_matches('/'));
            std::fs::create_dir_all(&source)
                .map_err(io(format!("creating {}", source.display())))?;
            if !target.exists() {
                let mut missing = Vec::new();
                let mut p = Some(target);
                while let Some(dir) = p.filter(|d| !d.exists()) {
                    missing.push(dir.to_path_buf());
                    p = dir.parent();
                }
                std::fs::create_dir_all(target)
                    .map_err(io(format!("creating {}", target.display())))?;
                remember_created(&missing);
            }
            run(Command::new("nsenter")
                .arg(format!("--mount={}", file.display()))
                .args(["--", "mount", "--bind"])
                .arg(&source)
                .arg(target))?;
        }
        // hostPath volumes with `mountPropagation` must sit on a shared or slave mount, and the
        // CRI looks up `/var/run/netns` without following `/var/run -> /run`, so it checks `/`.
        // The host's `/` is private here (no systemd), so `--propagation slave` left it private
        // in the node's namespace too (measured: the chart's kube-ovn-cni failed with `path
        // "/var/run/netns" is mounted on "/" but it is not a shared or slave mount`). Making `/`
        // rshared inside the node's own namespace fixes that and leaves the host's untouched.
        run(Command::new("nsenter")
            .arg(format!("--mount={}", file.display()))
            .args(["--", "mount", "--make-rshared", "/"]))?;
        Ok(mounts)
    }

    fn file(&self) -> &Path {
        &self.file
    }

    /// Unbinds the namespace (it ends with its last process, and its mounts with it), then the
    /// private dir, then the mount points created in the host (deepest first, when empty).
    fn remove(mut self) {
        self.remove_mounts();
    }

    fn remove_mounts(&mut self) {
        let _ = nix::mount::umount2(&self.file, nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        remove_created_if_last();
    }
}

impl Drop for NodeMounts {
    fn drop(&mut self) {
        self.remove_mounts();
    }
}

/// Direct children of `pid` (from `/proc/<pid>/task/*/children`).
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Unmounts everything mounted under `dir` (deepest first): the kubelet's root dir bind mount,
/// volume tmpfs, containerd's rootfs and shm mounts.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = nix::mount::umount2(point.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The node's cgroup root (the kubelet's `cgroupRoot`): `/<name>` in every hierarchy, so two
/// kubelets on one machine never see each other's pod cgroups (each removes pod cgroups it
/// does not know, with their processes). A new v1 cpuset cgroup starts with no CPUs and no
/// memory nodes: they are copied from the root.
fn create_cgroup_root(name: &str) -> Result<()> {
    let hierarchies =
        std::fs::read_dir("/sys/fs/cgroup").map_err(io("listing /sys/fs/cgroup".to_owned()))?;
    for h in hierarchies.flatten() {
        if !h.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = h.path().join(name);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(value) = std::fs::read_to_string(h.path().join(file)) {
                std::fs::write(dir.join(file), value.trim())
                    .map_err(io(format!("writing {}", dir.join(file).display())))?;
            }
        }
    }
    Ok(())
}

/// Removes the node's cgroup root in every hierarchy, deepest first; a cgroup with processes
/// left stays (rmdir fails).
fn remove_cgroup_root(name: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        let root = h.path().join(name);
        if root.is_dir() {
            remove_cgroup_tree(&root);
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten() {
            if child.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&child.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multus_path_matches_xtask() {
        let xtask = include_str!("../../../xtask/src/multus.rs");
        let version = MULTUS_BIN
            .trim_start_matches("/var/cache/kube-ovn-rs/multus/")
            .trim_end_matches("/bin/multus");
        assert!(xtask.contains(&format!("pub const MULTUS_VERSION: &str = \"{version}\";")));
        assert!(xtask.contains("pub const CACHE_DIR: &str = \"/var/cache/kube-ovn-rs/multus\";"));
    }
}
