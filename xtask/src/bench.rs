//! `cargo xtask bench <target>`: benchmarks that need more than `cargo bench` (real programs,
//! root, a floor to compare against). Figures go to `BENCHMARKS.md` with the command.
//!
//! `cni`: kube-ovn-daemon's CNI ADD latency on a real OVN node (L1 lab: OVN central plus a node
//! namespace with ovs-vswitchd on the userspace datapath and ovn-controller), sequential and
//! concurrent, split into wait-for-annotation, plumbing and wait-for-ovn-installed, against a
//! floor script doing the same with `ip` + `ovs-vsctl` (`daemon/benches/floor.sh`). The driver is
//! `daemon/examples/bench_cni.rs`, built in release mode; it prints a Markdown table. Needs root.
//!
//! `natgw`: the NAT gateway agent with 1,000 DNAT rules and 1,000 FIPs in scratch namespaces:
//! the nf_tables transaction, the whole apply (cold = a restarted pod, steady), against one
//! `iptables` process per rule (upstream's way) in the same run; `--api` adds the time from the
//! last object created to every status Ready on a real API server, and a restart's restore
//! time. The driver is `daemon/examples/bench_natgw.rs`, built in release mode; it prints a
//! Markdown table. Needs root.
//!
//! `startup`: a pod's start on a real node with and without one kube-ovn attachment (L3: the
//! chart on a real kubelet with containerd and Multus); the driver is
//! `e2e/examples/bench_startup.rs`; it prints a Markdown table. Needs root.
//!
//! `policy`: a security group and a MultiNetworkPolicy over 1,000 member ports with 50 rules
//! on real OVN (central + one node with two ports bound to namespaces), against one ACL per
//! rule per port: ACL rows, adding a rule (NB operations, commit, northd, ovn-controller, the
//! client's TCP through), a member joining. The driver is `controller/examples/bench_policy.rs`;
//! it prints a Markdown table. Needs root.
//!
//! `controller`: kube-ovn-controller (release build, its own process) attaching N pods with two
//! attachments each on a real control plane and NB: creation time, time until every pod is
//! allocated and every LSP is in NB, NB transactions per pod, peak RSS. The driver is
//! `controller/examples/bench_controller.rs`; it prints a Markdown table. `--nb unix|tcp|tls`
//! (repeatable) compares the controller's NB transports in one run.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::cmd;

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: Target,
}

#[derive(Debug, clap::Subcommand)]
enum Target {
    /// CNI ADD latency (p50/p99, by phase) of kube-ovn-daemon vs an ip + ovs-vsctl floor.
    Cni {
        /// ADDs per run.
        #[arg(long, default_value_t = 200)]
        adds: usize,
        /// ADDs in flight in the concurrent runs.
        #[arg(long, default_value_t = 20)]
        concurrency: usize,
    },
    /// NAT gateway agent: N DNAT rules + N FIPs in one nf_tables transaction vs one iptables
    /// process per rule; `--api` for create -> Ready and restart through a real API server.
    Natgw {
        /// DNAT rules.
        #[arg(long, default_value_t = 1000)]
        dnats: usize,
        /// FIPs.
        #[arg(long, default_value_t = 1000)]
        fips: usize,
        /// Also measure through a real API server (L2 control plane).
        #[arg(long)]
        api: bool,
        /// Leave out the upstream (iptables per rule) comparison.
        #[arg(long)]
        skip_upstream: bool,
    },
    /// Pod start on a real node (L3, the chart, real Multus): N pods created at once with one
    /// kube-ovn attachment vs N without (p50/p99 create -> Ready, the attachment's overhead).
    Startup {
        /// Pods per batch.
        #[arg(long, default_value_t = 50)]
        pods: usize,
    },
    /// Security groups and MultiNetworkPolicy over N member ports with R rules, against one ACL
    /// per rule per port: ACL rows, adding a rule until traffic passes, a member joining.
    Policy {
        /// Member ports.
        #[arg(long, default_value_t = 1000)]
        members: usize,
        /// Rules before the one added.
        #[arg(long, default_value_t = 50)]
        rules: usize,
    },
    /// kube-ovn-controller at scale: N pods with two attachments each (time, NB transactions,
    /// peak RSS).
    Controller {
        /// Pods per run; repeat for several runs (default: 1000, then 5000).
        #[arg(long = "pods")]
        pods: Vec<usize>,
        /// Pod creates in flight.
        #[arg(long, default_value_t = 32)]
        create_concurrency: usize,
        /// How the controller reaches NB: unix, tcp or tls; repeat to compare them in one
        /// run (default: unix).
        #[arg(long = "nb")]
        nb: Vec<String>,
    },
}

/// Fails with `why` (which says what needs root) unless running as root.
fn require_root(why: &str) -> anyhow::Result<()> {
    if cmd::output_ok(Command::new("id").arg("-u"))
        .as_deref()
        .map(str::trim)
        != Some("0")
    {
        bail!("{why}");
    }
    Ok(())
}

/// Runs the chosen benchmark.
pub fn run(root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    match &args.target {
        Target::Cni { adds, concurrency } => cni(root, *adds, *concurrency),
        Target::Controller {
            pods,
            create_concurrency,
            nb,
        } => controller(root, pods, *create_concurrency, nb),
        Target::Startup { pods } => startup(root, *pods),
        Target::Policy { members, rules } => policy(root, *members, *rules),
        Target::Natgw {
            dnats,
            fips,
            api,
            skip_upstream,
        } => natgw(root, *dnats, *fips, *api, *skip_upstream),
    }
}

fn policy(root: &Path, members: usize, rules: usize) -> anyhow::Result<()> {
    require_root(
        "`cargo xtask bench policy` creates network namespaces and OVS bridges: run it as root",
    )?;
    cmd::run(cmd::cargo().current_dir(root).args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "controller",
        "--example",
        "bench_policy",
        "--",
        "--members",
        &members.to_string(),
        "--rules",
        &rules.to_string(),
    ]))
}

fn startup(root: &Path, pods: usize) -> anyhow::Result<()> {
    require_root(
        "`cargo xtask bench startup` runs real nodes (namespaces, kubelet): run it as root",
    )?;
    crate::images::prepare_real_nodes(root)?;
    // The driver only waits on the cluster: a debug build (the tests' own) is fast enough.
    cmd::run(cmd::cargo().current_dir(root).args([
        "run",
        "--quiet",
        "-p",
        "e2e",
        "--example",
        "bench_startup",
        "--",
        "--pods",
        &pods.to_string(),
    ]))
}

fn cni(root: &Path, adds: usize, concurrency: usize) -> anyhow::Result<()> {
    require_root(
        "`cargo xtask bench cni` creates network namespaces and OVS bridges: run it as root",
    )?;
    let floor = root.join("daemon/benches/floor.sh");
    cmd::run(
        cmd::cargo()
            .current_dir(root)
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "daemon",
                "--example",
                "bench_cni",
                "--",
                "--adds",
                &adds.to_string(),
                "--concurrency",
                &concurrency.to_string(),
                "--floor",
            ])
            .arg(&floor),
    )
}

fn controller(
    root: &Path,
    pods: &[usize],
    create_concurrency: usize,
    nb: &[String],
) -> anyhow::Result<()> {
    // The controller runs as its own process (so its RSS is its own): build the release binary
    // first, then the driver, which is handed its path.
    cmd::run(cmd::cargo().current_dir(root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "controller",
        "--bin",
        "kube-ovn-controller",
    ]))?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    let binary = target_dir.join("release/kube-ovn-controller");
    let mut run = cmd::cargo();
    run.current_dir(root)
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "controller",
            "--example",
            "bench_controller",
            "--",
            "--create-concurrency",
            &create_concurrency.to_string(),
            "--controller",
        ])
        .arg(&binary);
    for n in pods {
        run.args(["--pods", &n.to_string()]);
    }
    for mode in nb {
        run.args(["--nb", mode]);
    }
    cmd::run(&mut run)
}

fn natgw(
    root: &Path,
    dnats: usize,
    fips: usize,
    api: bool,
    skip_upstream: bool,
) -> anyhow::Result<()> {
    require_root(
        "`cargo xtask bench natgw` creates network namespaces and nf_tables rules: run it as root",
    )?;
    let mut run = cmd::cargo();
    run.current_dir(root).args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "daemon",
        "--example",
        "bench_natgw",
        "--",
        "--dnats",
        &dnats.to_string(),
        "--fips",
        &fips.to_string(),
    ]);
    if api {
        run.arg("--api");
    }
    if skip_upstream {
        run.arg("--skip-upstream");
    }
    cmd::run(&mut run)
}
