//! `cargo xtask chaos [--runs N] [--seed S] [--steps K]`: the randomized fault schedule of
//! `controller/tests/chaos.rs` (real kube-apiserver and NB, standalone or a 3-member RAFT
//! cluster; pods, same-name recreations, StatefulSet scaling, static-address contention,
//! controller kills, NB kills and wipes, RAFT leader kills, IP CR creates delayed by a proxy in
//! front of the apiserver), `N` runs from seed `S`, each checked against the invariants. `cargo xtask test` runs one short
//! run as part of the workspace tests.

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
}

/// Runs the chaos test with the arguments as its environment; its output (each run's schedule
/// and the summary, or the failing seed and schedule) streams through.
pub fn run(root: &std::path::Path, args: &ChaosArgs) -> anyhow::Result<()> {
    let mut command = cmd::cargo();
    command
        .args([
            "test",
            "-p",
            "controller",
            "--test",
            "chaos",
            "--",
            "--nocapture",
        ])
        .env("CHAOS_RUNS", args.runs.to_string())
        .env("CHAOS_STEPS", args.steps.to_string())
        .env("CHAOS_MIN_FAULTS", args.min_faults.to_string())
        .current_dir(root);
    if let Some(seed) = args.seed {
        command.env("CHAOS_SEED", seed.to_string());
    }
    cmd::run(&mut command)
}
