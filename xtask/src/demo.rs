//! `cargo xtask demo [--keep]`: the main job on this machine.
//!
//! Installs what it needs first (the same idempotent setup as `cargo xtask test`: on a fresh
//! machine that is apt packages and the Kubernetes binaries built from their Go module, with a
//! progress line per long step), builds the binaries, then runs the `demo` example of the e2e crate: a 2-node local cluster
//! (real kube-apiserver and OVN, our daemon and controller as processes) with the manual's
//! first example applied, printing what the manual's debug commands show.

use std::path::Path;

use crate::cmd;

/// Runs the demo; `keep` leaves the cluster up until Ctrl-C.
pub fn run(root: &Path, keep: bool, verbose: bool) -> anyhow::Result<()> {
    crate::setup::run()?;
    cmd::run(cmd::cargo().args(["build", "--bins"]).current_dir(root))?;
    let mut demo = cmd::cargo();
    demo.args(["run", "--quiet", "-p", "e2e", "--example", "demo", "--"])
        .current_dir(root);
    if keep {
        demo.arg("--keep");
    }
    if verbose {
        demo.arg("--verbose");
    }
    cmd::run(&mut demo)
}

/// `cargo xtask demo --real [--keep]`: setup, the five images, then the `demo_real` example of
/// the e2e crate (two real nodes, the chart, the manual's first example by kubectl); `keep`
/// holds the cluster before `helm uninstall`, until Enter or Ctrl-C.
pub fn run_real(root: &Path, keep: bool) -> anyhow::Result<()> {
    crate::images::prepare_real_nodes(root)?;
    let mut demo = cmd::cargo();
    demo.args(["run", "--quiet", "-p", "e2e", "--example", "demo_real"])
        .current_dir(root);
    if keep {
        // Read by the real-node cluster (`e2e::keep`).
        demo.env("KUBE_OVN_E2E_KEEP", "1");
    }
    cmd::run(&mut demo)
}
