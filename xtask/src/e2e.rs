//! `cargo xtask e2e [--filter NAME] [--nodes N] [--kind]`: the end-to-end scenarios.
//!
//! The default backend is the local cluster (real control plane, OVN, namespaces; see
//! `e2e/src/cluster.rs`): this builds our binaries and runs the e2e crate's tests, one at a
//! time, then prints a pass/fail table. Failed scenarios keep their run dir (logs) under
//! `/dev/shm/kube-ovn-e2e-*`. `--kind` targets a kind cluster on a machine with Docker.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

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
    /// Use a kind cluster (needs Docker; not available on machines without a Docker engine).
    #[arg(long)]
    kind: bool,
}

/// Runs the scenarios.
pub fn run(root: &Path, args: &E2eArgs) -> anyhow::Result<()> {
    if args.kind {
        let docker = cmd::output_ok(Command::new("docker").arg("info"));
        if docker.is_none() {
            bail!(
                "--kind needs a running Docker engine (docker info failed); this machine has none: \
                 run `cargo xtask e2e` for the local cluster instead"
            );
        }
        bail!(
            "--kind: the kind backend needs the container images and charts, which are not built \
             yet; use the local backend (`cargo xtask e2e`)"
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd::run(
        Command::new(&cargo)
            .args(["build", "--bins"])
            .current_dir(root),
    )?;
    let mut test = Command::new(&cargo);
    test.args(["test", "-p", "e2e", "--tests", "--", "--test-threads=1"])
        .current_dir(root);
    if let Some(f) = &args.filter {
        test.arg(f);
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
