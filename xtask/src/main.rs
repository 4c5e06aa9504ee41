//! `cargo xtask`: the one entry point for setting up, testing and demonstrating the project.

mod bench;
mod chaos;
mod cmd;
mod crds;
mod demo;
mod e2e;
mod helm;
mod images;
mod k8s;
mod kind;
mod multus;
mod oci;
mod setup;
mod test;
mod test_pool;
mod values_doc;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Kube-OVN (Rust) task runner")]
struct Cli {
    /// On failure also print where the error came from (a backtrace). Without it only the
    /// cause chain is printed, whatever `RUST_BACKTRACE` says: many shells set that for
    /// other programs, and a screen of frames hides the one line that matters.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what the tests need on a Debian machine (idempotent; needs root for apt).
    Setup,
    /// setup, then fmt check, clippy -D warnings, cargo deny, and every test of the workspace.
    Test(test::TestArgs),
    /// The main job on this machine: a local cluster running the manual's first example.
    Demo {
        /// Leave the cluster up (until Ctrl-C) and print a KUBECONFIG for kubectl.
        #[arg(long)]
        keep: bool,
        /// On two real nodes (kubelet, containerd, Multus; the chart installed with the
        /// README's command) instead of the local cluster; needs root.
        #[arg(long)]
        real: bool,
    },
    /// The end-to-end scenarios on the local cluster (or `--kind`), with a pass/fail table.
    E2e(e2e::E2eArgs),
    /// Regenerate the CRD YAML in charts/*/crds/ from the `crds` crate.
    Crds,
    /// Regenerate the values reference (docs/values.md) from the charts' schemas and values.
    ValuesDoc,
    /// Build the three container images as OCI archives, without Docker (release builds).
    Images(images::ImagesArgs),
    /// The randomized fault schedule (controller kills, NB kills and wipes, same-name pods,
    /// static-address contention, StatefulSet scaling) against the invariants, `--runs` times.
    Chaos(chaos::ChaosArgs),
    /// Benchmarks on real programs (`cni`: ADD latency vs an ip + ovs-vsctl floor); needs root.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            report(&err, verbose);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints `err` and its causes one per line; the backtrace only when asked for with `-v`.
fn report(err: &anyhow::Error, verbose: bool) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if verbose {
        eprintln!("backtrace:\n{}", err.backtrace());
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let root = workspace_root()?;
    match cli.command {
        Command::Setup => setup::run(),
        Command::Test(args) => test::run(&root, &args),
        Command::Demo { keep, real: false } => demo::run(&root, keep, cli.verbose),
        Command::Demo { keep, real: true } => demo::run_real(&root, keep),
        Command::E2e(args) => e2e::run(&root, &args),
        Command::Crds => crds::run(&root),
        Command::ValuesDoc => values_doc::run(&root),
        Command::Bench(args) => bench::run(&root, &args),
        Command::Chaos(args) => chaos::run(&root, &args),
        Command::Images(args) => images::run(&root, &args),
    }
}

/// The workspace root: xtask's manifest dir is `<root>/xtask`. `cargo run` (the `cargo xtask`
/// alias) says where that is at run time; the path compiled in is only the fallback, since
/// cargo does not rebuild xtask for another checkout sharing its target dir
/// (`CARGO_TARGET_DIR`), and that checkout may be gone.
fn workspace_root() -> anyhow::Result<std::path::PathBuf> {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    manifest
        .parent()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("xtask manifest dir {} has no parent", manifest.display()))
}
