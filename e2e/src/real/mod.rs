//! Real nodes (level L3): a kubelet and containerd per node, each node a network namespace on a
//! bridge the harness owns, and the fence that keeps every packet they send on this machine.
//!
//! On these machines traffic may go only to loopback and to network namespaces the harness made
//! itself. A real node runs programs we do not control (kubelet, containerd, kube-proxy, the
//! chart's pods), and one of them dialling a Service address with no kube-proxy in place sent a
//! connection off the machine once (`shared/notes/containerd.md`). So the pieces here come in a
//! fixed order: the harness network and its [`fence::Fence`] first, then kube-proxy
//! ([`proxy::KubeProxy`]) on every node, and only then anything that dials a Service. Teardown is
//! the reverse, with the fence removed last, also after a failed test (everything lives in
//! `Drop`).
//!
//! Layout of the harness network ([`net`]): a Linux bridge in the host namespace holding the
//! harness address (`.1` of a free `/24` in `172.30.0.0/16`, the address the apiserver serves on
//! for the nodes), and one veth per node namespace (`.10`, `.11`, ...). Node namespaces have no
//! default route: only the harness subnet, their own pod subnet, and the Service range pointed at
//! the bridge so kube-proxy's DNAT has a route to start from.

pub mod fence;
pub mod net;
pub mod node;
pub mod proxy;

use std::io::Write;
use std::process::{Command, Stdio};

/// A real-node harness step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program is missing.
    #[error(transparent)]
    Missing(#[from] crate::programs::MissingProgram),
    /// A harness step from the L1/L2 harness failed.
    #[error(transparent)]
    Lab(#[from] crate::ovn::LabError),
    /// The control plane failed.
    #[error(transparent)]
    ControlPlane(#[from] crate::k8s::Error),
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr.
        detail: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// No free harness subnet was left.
    #[error("no free /24 left in {range} for a real-node harness network (host routes: {routes})")]
    NoFreeSubnet {
        /// The range searched.
        range: &'static str,
        /// The host's routes, for the reader.
        routes: String,
    },
    /// The fence counted packets to destinations outside the harness.
    #[error(
        "the fence dropped packets to destinations outside the harness ({0}); something on a real \
         node tried to leave this machine"
    )]
    Breached(String),
    /// Output of a program could not be understood.
    #[error("unexpected output of `{command}`: {detail}")]
    Parse {
        /// The command.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// A readiness signal did not come in time.
    #[error("timed out after {secs} s waiting for {what}; last: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit in seconds.
        secs: u64,
        /// The last answer or error seen.
        last: String,
    },
}

/// Result of real-node harness steps.
pub type Result<T> = std::result::Result<T, Error>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with `stdin` as its input; returns stdout, or an error with stderr.
fn run_with_input(cmd: &mut Command, stdin: &str) -> Result<String> {
    let line = command_line(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(format!("starting {line}")))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .map_err(io(format!("writing the input of {line}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(io(format!("waiting for {line}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: line,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// Runs `cmd` (no input); returns stdout, or an error with stderr.
fn run(cmd: &mut Command) -> Result<String> {
    Ok(crate::ovn::run(cmd)?)
}

/// `ip netns exec <ns> <args...>` when `netns` is given, else `<args...>` in the host namespace.
fn in_netns(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, program]);
            cmd
        }
        None => Command::new(program),
    }
}

/// A program started by the harness (in a node namespace or not), its output in a log file;
/// killed and reaped on drop. Started under `setpriv --pdeathsig KILL` so it dies with the test
/// process even when `Drop` never runs.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Process {
    /// Starts `program args...` in `netns` (host namespace when `None`), logging to `log`.
    pub fn spawn(
        name: &str,
        netns: Option<&str>,
        program: &std::path::Path,
        args: &[String],
        log: &std::path::Path,
    ) -> Result<Self> {
        Self::spawn_in(name, netns, None, program, args, log)
    }

    /// [`Process::spawn`], also in the mount namespace bound at `mount` when given.
    pub fn spawn_in(
        name: &str,
        netns: Option<&str>,
        mount: Option<&std::path::Path>,
        program: &std::path::Path,
        args: &[String],
        log: &std::path::Path,
    ) -> Result<Self> {
        let out = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("opening {}", log.display())))?;
        // `nsenter --net` enters the node's network namespace only. `ip netns exec` would also
        // give the program a private mount namespace, and then the kubelet's volume mounts
        // (service-account tokens) would be invisible to containerd, which bind-mounts them.
        let mut cmd = if netns.is_some() || mount.is_some() {
            let mut cmd = Command::new("nsenter");
            if let Some(ns) = netns {
                cmd.arg(format!("--net=/var/run/netns/{ns}"));
            }
            if let Some(mount) = mount {
                cmd.arg(format!("--mount={}", mount.display()));
            }
            cmd.args(["--", "setpriv"]);
            cmd
        } else {
            Command::new("setpriv")
        };
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .map_err(io(format!("starting {}", command_line(&cmd))))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Fails with the end of the log when the program has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Command {
                command: self.name.clone(),
                detail: format!(
                    "exited ({status}); last lines of {}:\n{}",
                    self.log.display(),
                    tail(&self.log, 25)
                ),
            }),
            Err(e) => Err(Error::Io {
                what: format!("checking {}", self.name),
                source: e,
            }),
        }
    }

    /// The process id (of `ip netns exec`, which execs the program in place).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log(&self) -> &std::path::Path {
        &self.log
    }

    /// Stops the program (SIGTERM, then SIGKILL after `grace`) and reaps it.
    pub fn stop(&mut self, grace: std::time::Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(std::time::Duration::ZERO);
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
