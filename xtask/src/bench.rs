//! `cargo xtask bench <target>`: benchmarks that need more than `cargo bench` (real programs,
//! root, a floor to compare against). Figures go to `BENCHMARKS.md` with the command.
//!
//! `cni`: kube-ovn-daemon's CNI ADD latency on a real OVN node (L1 lab: OVN central plus a node
//! namespace with ovs-vswitchd on the userspace datapath and ovn-controller), sequential and
//! concurrent, split into wait-for-annotation, plumbing and wait-for-ovn-installed, against a
//! floor script doing the same with `ip` + `ovs-vsctl` (`daemon/benches/floor.sh`). The driver is
//! `daemon/examples/bench_cni.rs`, built in release mode; it prints a Markdown table. Needs root.

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
}

/// Runs the chosen benchmark.
pub fn run(root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    match &args.target {
        Target::Cni { adds, concurrency } => cni(root, *adds, *concurrency),
    }
}

fn cni(root: &Path, adds: usize, concurrency: usize) -> anyhow::Result<()> {
    if cmd::output_ok(Command::new("id").arg("-u"))
        .as_deref()
        .map(str::trim)
        != Some("0")
    {
        bail!("`cargo xtask bench cni` creates network namespaces and OVS bridges: run it as root");
    }
    let floor = root.join("daemon/benches/floor.sh");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd::run(
        Command::new(cargo)
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
