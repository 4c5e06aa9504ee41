//! `cargo xtask chaos [--runs N] [--seed S] [--steps K] [--suite S]`: the randomized fault
//! schedules, `N` runs from seed `S` each, every run checked against the invariants.
//! - control plane, `controller/tests/chaos.rs`: real kube-apiserver and NB, standalone or a
//!   3-member RAFT cluster; pods, same-name recreations, StatefulSet scaling, static-address
//!   contention, controller kills, NB kills and wipes, RAFT leader kills, IP CR creates delayed
//!   by a proxy in front of the apiserver;
//! - data path, `e2e/tests/chaos.rs`: the two-node local cluster with its daemons, switches and
//!   pods' real interfaces; pods created, deleted and recreated, node daemons, ovs-vswitchd and
//!   the controller killed; then every pod's interface, NB, the IP CRs and each node's OVS
//!   agree, nothing leaked, and every pod pings its gateway and the others.
//!
//! `cargo xtask test` runs one short run of each as part of the workspace tests.

use crate::cmd;

/// Arguments of `cargo xtask chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// How many runs (each on a fresh control plane and NB).
    #[arg(long, default_value_t = 50)]
    pub runs: u64,
    /// Seed of the first run (run `i` uses `seed + i`); default: from the clock.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Steps per run.
    #[arg(long, default_value_t = 20)]
    pub steps: u64,
    /// Faults (kills, wipes, delays) each run must have: a run that drew fewer in its steps
    /// draws more steps until it has them (at most four times `--steps` more).
    #[arg(long, default_value_t = 10)]
    pub min_faults: u64,
    /// Which schedules: both (control plane first), or one.
    #[arg(long, value_enum, default_value_t = Suite::All)]
    pub suite: Suite,
}

/// The fault schedules `cargo xtask chaos` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// The control plane's, then the data path's.
    All,
    /// `controller/tests/chaos.rs` only.
    ControlPlane,
    /// `e2e/tests/chaos.rs` only.
    DataPath,
}

/// Runs the chosen chaos tests with the arguments as their environment; their output (each
/// run's schedule and the summary, or the failing seed and schedule) streams through.
pub fn run(root: &std::path::Path, args: &ChaosArgs) -> anyhow::Result<()> {
    if args.suite != Suite::DataPath {
        run_one(root, args, &["-p", "controller", "--test", "chaos"])?;
    }
    if args.suite != Suite::ControlPlane {
        // The data path runs our binaries as the node daemons and the controller.
        cmd::run(cmd::cargo().args(["build", "--bins"]).current_dir(root))?;
        run_one(root, args, &["-p", "e2e", "--test", "chaos"])?;
    }
    Ok(())
}

fn run_one(root: &std::path::Path, args: &ChaosArgs, target: &[&str]) -> anyhow::Result<()> {
    let mut command = cmd::cargo();
    command
        .arg("test")
        .args(target)
        .args(["--", "--nocapture"])
        .env("CHAOS_RUNS", args.runs.to_string())
        .env("CHAOS_STEPS", args.steps.to_string())
        .env("CHAOS_MIN_FAULTS", args.min_faults.to_string())
        .current_dir(root);
    if let Some(seed) = args.seed {
        command.env("CHAOS_SEED", seed.to_string());
    }
    cmd::run(&mut command)
}
