//! `cargo xtask e2e [--filter NAME] [--nodes N] [--keep] [--kind]`: the end-to-end scenarios.
//!
//! The default backend is the local cluster (real control plane, OVN, namespaces; see
//! `e2e/src/cluster.rs`): this builds our binaries and runs the e2e crate's tests, one at a
//! time, then prints a pass/fail table. Failed scenarios keep their run dir (logs) under
//! `/dev/shm/kube-ovn-e2e-*`. `--keep` holds each scenario's cluster up at its end with a
//! printed KUBECONFIG (Enter goes on, Ctrl-C stops; see `e2e/src/keep.rs`). `--kind` runs the
//! manual's install and first example on a kind cluster on a machine with Docker (`kind.rs`).

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};

use crate::cmd;

/// Options of `cargo xtask e2e`.
#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Only scenarios whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Nodes per local cluster (at least what each scenario needs).
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Keep each cluster up at the end of its scenario, with a printed KUBECONFIG (local:
    /// until Enter; kind: the cluster is not deleted).
    #[arg(long)]
    keep: bool,
    /// Use a kind cluster: images, Multus, the chart, the manual's example (needs Docker and
    /// kind; not available on machines without a Docker engine).
    #[arg(long)]
    kind: bool,
    /// Real nodes (L3): kubelet + containerd + kube-proxy per node in fenced namespaces, real
    /// Multus, our images and chart (`e2e/tests/real.rs`, notes in `e2e/REAL-NODES.md`). Runs
    /// setup and `cargo xtask images` first. Needs root.
    #[arg(long, conflicts_with = "kind")]
    real: bool,
}

/// Runs the scenarios.
pub fn run(root: &Path, args: &E2eArgs) -> anyhow::Result<()> {
    if args.kind {
        return crate::kind::run(root, args.nodes, args.keep);
    }
    if args.keep && !std::io::stdin().is_terminal() {
        bail!(
            "--keep holds each cluster until you press Enter, and stdin is not a terminal; run it \
             from a terminal (with --filter NAME for one scenario)"
        );
    }
    if args.real {
        crate::images::prepare_real_nodes(root)?;
    } else {
        cmd::run(cmd::cargo().args(["build", "--bins"]).current_dir(root))?;
    }
    let mut test = cmd::cargo();
    test.args(["test", "-p", "e2e"]);
    if args.real {
        test.args(["--test", "real"]);
    } else {
        test.arg("--tests");
    }
    test.args(["--", "--test-threads=1"]).current_dir(root);
    if let Some(f) = &args.filter {
        test.arg(f);
    }
    // Read by e2e::cluster::node_count (it was parsed but never passed on).
    test.env("KUBE_OVN_E2E_NODES", args.nodes.to_string());
    if args.keep {
        // Read by e2e::keep in every Cluster's Drop.
        test.env("KUBE_OVN_E2E_KEEP", "1");
    }
    eprintln!("+ {}", cmd::display(&test));
    let mut child = test
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let mut rows = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.context("reading cargo test output")?;
            println!("{line}");
            if let Some((name, verdict)) = line
                .strip_prefix("test ")
                .and_then(|rest| rest.rsplit_once(" ... "))
            {
                rows.push((name.to_owned(), verdict.to_owned()));
            }
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    println!("\n== e2e scenarios ==");
    for (name, verdict) in &rows {
        println!(
            "{:<8} {name}",
            if verdict == "ok" { "PASS" } else { "FAIL" }
        );
    }
    let failed = rows.iter().filter(|(_, v)| v != "ok").count();
    println!("e2e: {} passed, {failed} failed", rows.len() - failed);
    if !status.success() {
        bail!(
            "e2e scenarios failed (logs of failed clusters are kept under /dev/shm/kube-ovn-e2e-*)"
        );
    }
    Ok(())
}
