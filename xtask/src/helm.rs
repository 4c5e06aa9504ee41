//! `helm`, for the chart tests and for installing the charts: built with `go install` from the
//! `helm.sh/helm/v3` Go module at a pinned release, cached outside the repo by version, rebuilt
//! only when missing (Debian packages no helm, and release pages cannot be reached here; the Go
//! module proxy can).
//!
//! Unlike `k8s.io/kubernetes`, helm is an ordinary module (no `replace` directives), so
//! `go install helm.sh/helm/v3/cmd/helm@<version>` builds it with exactly the dependency versions
//! of the release's own `go.sum`. The `-X` flags are those of helm's Makefile: the version, and
//! the Kubernetes version that `helm lint` and `helm template` assume (major + 1 and minor of the
//! release's `k8s.io/client-go v0.X.Y`, as the Makefile computes them).
//!
//! Layout: [`CACHE_DIR`]`/<version>/bin/helm` and `BUILD-INFO` (Go version and flags); the
//! binary counts as present only when `BUILD-INFO` matches what this file would build now. It is
//! built into a temporary dir and renamed into place, so an interrupted build never looks done.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cmd;
use crate::k8s::{find_go, go_env, remove_dir_if_present};

/// The pinned release: the newest helm 3 release at the time, whose go.mod asks for Go 1.26.0
/// (the machine has 1.26.8). Keep in step with `e2e::helm::HELM_VERSION` (a test checks).
pub const HELM_VERSION: &str = "v3.22.0";

/// Cache root, outside the repo so `cargo clean` and fresh clones keep it.
pub const CACHE_DIR: &str = "/var/cache/kube-ovn-rs/helm";

const MODULE: &str = "helm.sh/helm/v3";

/// The built binary's path.
pub fn binary() -> PathBuf {
    Path::new(CACHE_DIR).join(HELM_VERSION).join("bin/helm")
}

/// Builds helm unless the cache already holds this exact build.
pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let version_dir = Path::new(CACHE_DIR).join(HELM_VERSION);
    let bin_dir = version_dir.join("bin");
    let go = find_go()?;
    let go_version = cmd::output_ok(Command::new(&go).arg("version"))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("`{} version` failed", go.display()))?;
    // The client-go minor decides the Kubernetes version helm assumes; it is read from the
    // release's go.mod, which `go mod download` fetches (a few KB) or finds in the module cache.
    let client_go_minor = client_go_minor(&go)?;
    let ldflags = ldflags(client_go_minor);
    let info = format!(
        "helm {HELM_VERSION}\n{go_version}\nenv CGO_ENABLED=0 GOTOOLCHAIN=local\n\
         go install -trimpath -ldflags '{ldflags}' {MODULE}/cmd/helm@{HELM_VERSION}\n"
    );
    let stamp_ok = std::fs::read_to_string(bin_dir.join("BUILD-INFO")).is_ok_and(|s| s == info);
    if stamp_ok && bin_dir.join("helm").is_file() {
        eprintln!(
            "setup: helm {HELM_VERSION} present in {}",
            bin_dir.display()
        );
        return Ok(());
    }
    eprintln!(
        "setup: building helm {HELM_VERSION} with {go_version} into {} (first build: a few \
         minutes on 2 cores)",
        bin_dir.display()
    );
    std::fs::create_dir_all(&version_dir)
        .with_context(|| format!("creating {}", version_dir.display()))?;
    let tmp_bin = version_dir.join(format!("bin.tmp-{}", std::process::id()));
    remove_dir_if_present(&tmp_bin)?;
    std::fs::create_dir_all(&tmp_bin).with_context(|| format!("creating {}", tmp_bin.display()))?;
    let mut install = Command::new("nice");
    install
        .args(["-n", "19"])
        .arg(&go)
        .args(["install", "-trimpath", "-ldflags", &ldflags])
        .arg(format!("{MODULE}/cmd/helm@{HELM_VERSION}"))
        .env("GOBIN", &tmp_bin);
    go_env(&mut install);
    cmd::run(&mut install).context("building helm")?;
    crate::k8s::install_bin_dir(&tmp_bin, &bin_dir, &info)?;
    eprintln!(
        "setup: helm {HELM_VERSION} ready in {} after {:.0} s",
        bin_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// helm's Makefile flags: version stamp, and the Kubernetes version assumed by lint/template.
fn ldflags(client_go_minor: u32) -> String {
    let mut flags = vec![
        "-s".to_owned(),
        "-w".to_owned(),
        format!("-X {MODULE}/internal/version.version={HELM_VERSION}"),
        format!("-X {MODULE}/internal/version.gitTreeState=clean"),
    ];
    for pkg in ["pkg/lint/rules", "pkg/chartutil"] {
        flags.push(format!("-X {MODULE}/{pkg}.k8sVersionMajor=1"));
        flags.push(format!(
            "-X {MODULE}/{pkg}.k8sVersionMinor={client_go_minor}"
        ));
    }
    flags.join(" ")
}

fn client_go_minor(go: &Path) -> anyhow::Result<u32> {
    let (go_mod_path, go_mod) =
        crate::k8s::downloaded_go_mod(go, &format!("{MODULE}@{HELM_VERSION}"), false)?;
    match parse_client_go_minor(&go_mod) {
        Some(minor) => Ok(minor),
        None => bail!("{go_mod_path} requires no k8s.io/client-go v0.X.Y; cannot stamp helm"),
    }
}

/// The `X` of `k8s.io/client-go v0.X.Y` in a go.mod.
fn parse_client_go_minor(go_mod: &str) -> Option<u32> {
    go_mod.lines().find_map(|line| {
        let line = line.trim().trim_start_matches("require").trim();
        let mut words = line.split_whitespace();
        if words.next()? != "k8s.io/client-go" {
            return None;
        }
        words
            .next()?
            .strip_prefix("v0.")?
            .split('.')
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_go_minor_is_read_from_the_require_line() {
        let go_mod = "module helm.sh/helm/v3\n\ngo 1.26.0\n\nrequire (\n\tk8s.io/api v0.37.0\n\
                      \tk8s.io/client-go v0.37.1\n)\n";
        assert_eq!(parse_client_go_minor(go_mod), Some(37));
        assert_eq!(
            parse_client_go_minor("require k8s.io/client-go v0.36.2\n"),
            Some(36)
        );
        assert_eq!(parse_client_go_minor("require k8s.io/api v0.37.0\n"), None);
    }

    #[test]
    fn ldflags_stamp_version_and_kubernetes_for_lint_and_template() {
        let flags = ldflags(37);
        for want in [
            "-X helm.sh/helm/v3/internal/version.version=v3.22.0",
            "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37",
            "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
        ] {
            assert!(flags.contains(want), "{flags}");
        }
    }
}
