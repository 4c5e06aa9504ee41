//! Real OVN on this machine: OVN central (NB, SB, ovn-northd) and "nodes", each a network
//! namespace with its own Open vSwitch database, `ovs-vswitchd` (userspace datapath) and
//! `ovn-controller`. Facts and commands come from `notes/ovn-lab` (measured on these machines).
//!
//! Daemons are started with `--detach`, which returns only once the daemon is ready, and
//! stopped by the PID in their pidfile on drop. Every instance has its own temp dir, sockets and
//! namespace names, so tests run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use ovn_api::testing::{OvsdbServer, SchemaKind};

use crate::programs::{self, Program};

/// A harness step failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A program is missing.
    #[error(transparent)]
    Missing(#[from] programs::MissingProgram),
    /// A database server failed to start.
    #[error("ovsdb-server: {0}")]
    Ovsdb(#[from] ovn_api::error::Error),
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr.
        detail: String,
    },
    /// File system setup failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Result of harness steps.
pub type Result<T> = std::result::Result<T, LabError>;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, for namespaces and chassis.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command and returns its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            command: line.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: line,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

/// A daemon started with `--detach --pidfile`; killed by that PID on drop.
#[derive(Debug)]
struct Daemon {
    pidfile: PathBuf,
}

impl Daemon {
    fn pid(&self) -> Option<nix::unistd::Pid> {
        std::fs::read_to_string(&self.pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .map(nix::unistd::Pid::from_raw)
    }

    /// SIGKILL, then waits (bounded) until the process is gone or a zombie (its parent, which
    /// `--detach` left it with, may never reap it). Forgets the PID file, so dropping this value
    /// afterwards signals nothing (a new daemon may own that file by then).
    fn kill(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            for _ in 0..200 {
                let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
                let running = state
                    .as_deref()
                    .and_then(|s| s.rsplit_once(')'))
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'));
                if !running {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        self.pidfile = PathBuf::new();
    }

    fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        // The daemon was re-parented by --detach, so it cannot be reaped here; wait (bounded)
        // until it is gone so the namespace and files can be removed cleanly.
        for _ in 0..200 {
            if nix::sys::signal::kill(pid, None).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetnsGuard {
    name: String,
}

impl NetnsGuard {
    /// Creates `name` with `lo` up.
    pub fn create(name: &str) -> Result<Self> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let guard = Self {
            name: name.to_owned(),
        };
        run(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))?;
        Ok(guard)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mount path (`/var/run/netns/<name>`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.name))
    }

    /// Runs a command inside the namespace and returns its output (whatever the exit status).
    pub fn exec(&self, args: &[&str]) -> Result<std::process::Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("ip netns exec {} {args:?}", self.name)))
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

const CENTRAL_PROGRAMS: &[Program] = &[
    Program {
        name: "ovsdb-server",
        package: "openvswitch-switch",
    },
    Program {
        name: "ovn-northd",
        package: "ovn-central",
    },
    Program {
        name: "ovn-nbctl",
        package: "ovn-central",
    },
];

const NODE_PROGRAMS: &[Program] = &[
    Program {
        name: "ovs-vswitchd",
        package: "openvswitch-switch",
    },
    Program {
        name: "ovn-controller",
        package: "ovn-host",
    },
    Program {
        name: "ip",
        package: "iproute2",
    },
    Program {
        name: "ovs-vsctl",
        package: "openvswitch-switch",
    },
    Program {
        name: "ethtool",
        package: "ethtool",
    },
];

/// OVN central: NB and SB databases on unix sockets and `ovn-northd` between them.
#[derive(Debug)]
pub struct OvnCentral {
    // Field order is drop order: northd first, then the databases.
    _northd: Daemon,
    nb: OvsdbServer,
    sb: OvsdbServer,
}

impl OvnCentral {
    /// Starts NB, SB and northd.
    pub fn start() -> Result<Self> {
        programs::require(CENTRAL_PROGRAMS)?;
        let nb = OvsdbServer::start(SchemaKind::Northbound)?;
        let sb = OvsdbServer::start(SchemaKind::Southbound)?;
        let dir = nb.dir();
        let pidfile = dir.join("ovn-northd.pid");
        run(Command::new("ovn-northd")
            .arg(format!("--ovnnb-db={}", nb.remote()))
            .arg(format!("--ovnsb-db={}", sb.remote()))
            .arg(format!("--pidfile={}", pidfile.display()))
            .arg(format!("--unixctl={}", dir.join("northd.ctl").display()))
            .arg(format!(
                "--log-file={}",
                dir.join("ovn-northd.log").display()
            ))
            .args(["--detach", "--no-chdir", "-vconsole:off"])
            .env("OVN_RUNDIR", dir)
            .env("OVN_LOGDIR", dir))?;
        Ok(Self {
            _northd: Daemon { pidfile },
            nb,
            sb,
        })
    }

    /// NB remote (`unix:...`).
    pub fn nb_remote(&self) -> String {
        self.nb.remote()
    }

    /// SB remote (`unix:...`).
    pub fn sb_remote(&self) -> String {
        self.sb.remote()
    }

    /// Runs `ovn-nbctl` against the NB database.
    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        Ok(self.nb.nbctl(args)?)
    }

    /// Where the central logs are.
    pub fn log_dir(&self) -> &Path {
        self.nb.dir()
    }
}

/// One node: a network namespace with its own Open vSwitch database, `ovs-vswitchd` and
/// (once started) `ovn-controller`.
#[derive(Debug)]
pub struct OvnNode {
    // Drop order: controller, vswitchd, database, then the namespace.
    controller: Option<Daemon>,
    vswitchd: std::sync::Mutex<Daemon>,
    db: OvsdbServer,
    netns: NetnsGuard,
}

/// Starts `ovs-vswitchd` in `netns` on `db`; `--detach` returns once it is ready.
fn spawn_vswitchd(netns: &NetnsGuard, db: &OvsdbServer) -> Result<Daemon> {
    let dir = db.dir();
    let pidfile = dir.join("ovs-vswitchd.pid");
    run(Command::new("ip")
        .args(["netns", "exec", netns.name(), "ovs-vswitchd", &db.remote()])
        .arg(format!("--pidfile={}", pidfile.display()))
        .arg(format!("--unixctl={}", dir.join("vswitchd.ctl").display()))
        .arg(format!(
            "--log-file={}",
            dir.join("ovs-vswitchd.log").display()
        ))
        .args(["--detach", "--no-chdir", "-vconsole:off"])
        .env("OVS_RUNDIR", dir)
        .env("OVS_LOGDIR", dir))?;
    Ok(Daemon { pidfile })
}

impl OvnNode {
    /// Creates the namespace, the database and `ovs-vswitchd` inside the namespace. The
    /// integration bridge and ovn-controller's settings are the daemon's job.
    pub fn start(name_prefix: &str) -> Result<Self> {
        programs::require(NODE_PROGRAMS)?;
        let netns = NetnsGuard::create(&unique(name_prefix))?;
        let db = OvsdbServer::start(SchemaKind::OpenVswitch)?;
        let vswitchd = spawn_vswitchd(&netns, &db)?;
        Ok(Self {
            controller: None,
            vswitchd: std::sync::Mutex::new(vswitchd),
            db,
            netns,
        })
    }

    /// Starts `ovn-controller` in the node's namespace. It reads its settings (`ovn-remote`,
    /// `system-id`, ...) from the node database and follows changes, so it may start before or
    /// after they are written.
    pub fn start_controller(&mut self) -> Result<()> {
        let dir = self.db.dir();
        let pidfile = dir.join("ovn-controller.pid");
        run(Command::new("ip")
            .args([
                "netns",
                "exec",
                self.netns.name(),
                "ovn-controller",
                &self.db.remote(),
            ])
            .arg(format!("--pidfile={}", pidfile.display()))
            .arg(format!(
                "--log-file={}",
                dir.join("ovn-controller.log").display()
            ))
            .args(["--detach", "--no-chdir", "-vconsole:off"])
            // Same run dir as ovs-vswitchd: ovn-controller reaches br-int's OpenFlow socket there.
            .env("OVS_RUNDIR", dir)
            .env("OVN_RUNDIR", dir)
            .env("OVN_LOGDIR", dir))?;
        self.controller = Some(Daemon { pidfile });
        Ok(())
    }

    /// `ovs-vsctl` against the node's database; its output.
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db={}", self.db.remote()))
            .arg("--timeout=30")
            .args(args))
    }

    /// Kills `ovs-vswitchd` with SIGKILL and starts it again on the same database (as when the
    /// `ovs-ovn` pod's switch crashes or is restarted): it rebuilds the bridges and ports from
    /// the database; the kernel's interfaces stay.
    pub fn restart_vswitchd(&self) -> Result<()> {
        let mut vswitchd = self.vswitchd.lock().unwrap_or_else(|e| e.into_inner());
        // Killed and forgotten first: the old value's drop must not signal the new daemon,
        // which writes the same PID file.
        vswitchd.kill();
        *vswitchd = spawn_vswitchd(&self.netns, &self.db)?;
        Ok(())
    }

    /// Kills the node's Open vSwitch database server (as when the `ovs-ovn` pod stops).
    pub fn kill_db(&mut self) {
        self.db.kill();
    }

    /// An internal port `name` on br-int bound to the logical port `iface_id` (ovn-controller
    /// claims it).
    pub fn plug_internal(&self, name: &str, iface_id: &str) -> Result<String> {
        self.vsctl(&[
            "add-port",
            "br-int",
            name,
            "--",
            "set",
            "Interface",
            name,
            "type=internal",
            &format!("external_ids:iface-id={iface_id}"),
        ])
    }

    /// Joins the node to `sb_remote` as chassis `chassis` as the daemon does by hand for a
    /// test that runs without it (geneve to 127.0.0.1, the userspace datapath, `br-int` in
    /// secure fail mode), then starts `ovn-controller`.
    pub fn join(&mut self, sb_remote: &str, chassis: &str) -> Result<()> {
        self.vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            &format!("external_ids:system-id={chassis}"),
            &format!("external_ids:ovn-remote={sb_remote}"),
            "external_ids:ovn-encap-type=geneve",
            "external_ids:ovn-encap-ip=127.0.0.1",
            "external_ids:ovn-bridge-datapath-type=netdev",
        ])?;
        self.vsctl(&[
            "--may-exist",
            "add-br",
            "br-int",
            "--",
            "set",
            "Bridge",
            "br-int",
            "datapath_type=netdev",
            "fail-mode=secure",
        ])?;
        self.start_controller()
    }

    /// Stops `ovn-controller` as an operator's `ovn-appctl exit` does: it removes its chassis
    /// from the Southbound on the way out, so the ports it had claimed are bound to no chassis.
    pub fn stop_controller(&self) -> Result<()> {
        let Some(daemon) = &self.controller else {
            return Ok(());
        };
        let pid = std::fs::read_to_string(&daemon.pidfile)
            .map_err(io("reading ovn-controller's pidfile"))?;
        let ctl = self
            .db
            .dir()
            .join(format!("ovn-controller.{}.ctl", pid.trim()));
        run(Command::new("ovn-appctl")
            .arg("-t")
            .arg(&ctl)
            .args(["--timeout=30", "exit"]))?;
        // The reply comes before the cleanup (deleting its chassis from the SB): give the
        // process time to finish and exit on its own (bounded; it was re-parented by
        // --detach, so there is no child to wait on), and only then stop it.
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let pid = nix::unistd::Pid::from_raw(pid);
            for _ in 0..1000 {
                if nix::sys::signal::kill(pid, None).is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        daemon.stop();
        Ok(())
    }

    /// The node's Open vSwitch database remote (`unix:...`, reachable from any namespace).
    pub fn db_remote(&self) -> String {
        self.db.remote()
    }

    /// The node's namespace.
    pub fn netns(&self) -> &NetnsGuard {
        &self.netns
    }

    /// Where this node's logs are.
    pub fn log_dir(&self) -> &Path {
        self.db.dir()
    }
}

/// The underlay network between nodes: a namespace with a Linux bridge, one veth per node. Each
/// node's end is a port of an OVS bridge `br-phy` (userspace datapath) that carries the node's
/// tunnel address, as `notes/ovn-lab` found necessary for userspace geneve.
#[derive(Debug)]
pub struct Underlay {
    netns: NetnsGuard,
    attached: AtomicU32,
}

impl Underlay {
    /// The underlay's namespace name.
    pub fn netns_name(&self) -> &str {
        self.netns.name()
    }
}

/// The underlay prefix (inside the underlay's own namespaces only).
const UNDERLAY_NET: &str = "172.31.0";

impl Underlay {
    /// Creates the underlay namespace and its bridge.
    pub fn create() -> Result<Self> {
        let netns = NetnsGuard::create(&unique("kovn-ul"))?;
        let ns = netns.name().to_owned();
        run(Command::new("ip").args(["-n", &ns, "link", "add", "ulbr", "type", "bridge"]))?;
        run(Command::new("ip").args(["-n", &ns, "link", "set", "ulbr", "up"]))?;
        Ok(Self {
            netns,
            attached: AtomicU32::new(0),
        })
    }

    /// Cables `node` to the underlay and gives it the next address. Returns the address (the
    /// node's `ovn-encap-ip`).
    pub fn attach(&self, node: &OvnNode) -> Result<String> {
        let (ip, nn) = self.cable(node)?;
        let nn = nn.as_str();
        let ip_cmd = |args: &[&str]| run(Command::new("ip").args(args));
        // eth0 is an OVS port but keeps a kernel stack: without these, the kernel answers ARP
        // for br-phy's address with eth0's MAC and tunnel traffic gets lost.
        run(Command::new("ip").args([
            "netns",
            "exec",
            nn,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
        ]))?;
        run(Command::new("ovs-vsctl")
            .arg(format!("--db={}", node.db_remote()))
            .args([
                "--timeout=30",
                "add-br",
                "br-phy",
                "--",
                "set",
                "bridge",
                "br-phy",
            ])
            .arg("datapath_type=netdev")
            .args(["--", "add-port", "br-phy", "eth0"]))?;
        ip_cmd(&[
            "-n",
            nn,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "br-phy",
        ])?;
        ip_cmd(&["-n", nn, "link", "set", "br-phy", "up"])?;
        Ok(ip)
    }

    /// Cables `node` to the underlay with the next address on its plain `eth0` (no OVS
    /// bridge), plus a route `172.31.200.0/24 dev eth0 metric 77`: what a node looks like
    /// before kube-ovn-daemon's `--iface` moves the tunnel NIC onto `br-phy`. Returns the address.
    pub fn attach_plain(&self, node: &OvnNode) -> Result<String> {
        let (ip, nn) = self.cable(node)?;
        let ip_cmd = |args: &[&str]| run(Command::new("ip").args(args));
        ip_cmd(&["-n", &nn, "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ip_cmd(&[
            "-n",
            &nn,
            "route",
            "add",
            "172.31.200.0/24",
            "dev",
            "eth0",
            "metric",
            "77",
        ])?;
        Ok(ip)
    }

    /// The veth from the underlay bridge to `node`'s `eth0`, checksum offload off; returns the
    /// node's next address (not yet configured) and the node's namespace name.
    fn cable(&self, node: &OvnNode) -> Result<(String, String)> {
        let index = self.attached.fetch_add(1, Ordering::Relaxed) + 1;
        let ul = self.netns.name();
        let nn = node.netns().name();
        let port = format!("ul-n{index}");
        let ip = format!("{UNDERLAY_NET}.{index}");
        let ip_cmd = |args: &[&str]| run(Command::new("ip").args(args));
        ip_cmd(&[
            "-n", ul, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", nn,
        ])?;
        ip_cmd(&["-n", ul, "link", "set", &port, "master", "ulbr", "up"])?;
        ip_cmd(&["-n", nn, "link", "set", "eth0", "up"])?;
        // Partial checksums must not reach the userspace datapath (TCP would break).
        run(Command::new("ip").args(["netns", "exec", ul, "ethtool", "-K", &port, "tx", "off"]))?;
        run(Command::new("ip").args(["netns", "exec", nn, "ethtool", "-K", "eth0", "tx", "off"]))?;
        Ok((ip, nn.to_owned()))
    }
}
