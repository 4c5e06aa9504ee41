//! Multus CNI for the real-node tests (L3): its thin plugin `multus`, built with Go, cached
//! outside the repo by version, rebuilt only when missing.
//!
//! The Go module proxy reachable from these machines refuses the Multus module (403), so its
//! unmodified source is kept beside the repository in
//! `../shared/third-party/multus-cni-<version>.tar.gz` (see that folder's README). When that file
//! is there (these machines, CI clones that have `shared/` beside the repo) it is unpacked and
//! built; on a user's machine without it, `go install` of the same commit from the module proxy
//! gives the same binary.
//!
//! Layout: [`CACHE_DIR`]`/<version>/bin/multus` and `BUILD-INFO` (Go version, source, flags);
//! present only when `BUILD-INFO` matches what this file would build now. Built into a temporary
//! dir and renamed into place, so an interrupted build never looks done.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cmd;
use crate::k8s::{find_go, go_env, remove_dir_if_present};

/// The snapshot's version (`git describe` of upstream commit 95a0932, 42 commits after v4.3.0).
pub const MULTUS_VERSION: &str = "v4.3.0-42-g95a0932";

/// The upstream commit, for `go install` where the tarball is absent.
const MULTUS_COMMIT: &str = "95a0932350f0060cd232096876e24672a1de83fa";

/// The module path (Multus' go.mod).
const MODULE: &str = "gopkg.in/k8snetworkplumbingwg/multus-cni.v4";

/// Cache root, outside the repo so `cargo clean` and fresh clones keep it.
pub const CACHE_DIR: &str = "/var/cache/kube-ovn-rs/multus";

/// The source tarball beside the repository (`<root>/../shared/third-party/`), if present.
pub fn tarball(root: &Path) -> Option<PathBuf> {
    let path = root
        .parent()?
        .join("shared/third-party")
        .join(format!("multus-cni-{MULTUS_VERSION}.tar.gz"));
    path.is_file().then_some(path)
}

fn ldflags() -> String {
    format!("-s -w -X {MODULE}/pkg/multus.version={MULTUS_VERSION}")
}

/// Where the source comes from, as `BUILD-INFO` records it.
#[derive(Debug)]
enum Source {
    Tarball(PathBuf),
    ModuleProxy,
}

/// Builds Multus unless the cache holds this exact build.
pub fn run(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let version_dir = Path::new(CACHE_DIR).join(MULTUS_VERSION);
    let bin_dir = version_dir.join("bin");
    let go = find_go()?;
    let go_version = cmd::output_ok(Command::new(&go).arg("version"))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("`{} version` failed", go.display()))?;
    let source = match tarball(root) {
        Some(path) => Source::Tarball(path),
        None => Source::ModuleProxy,
    };
    // The stamp names the snapshot, not where it was read from: the tarball and the module at
    // that commit are the same source, and a clone in another place must not rebuild.
    let info = format!(
        "multus {MULTUS_VERSION} ({MULTUS_COMMIT})\n{go_version}\n\
         env CGO_ENABLED=0 GOTOOLCHAIN=local\ngo build -trimpath -ldflags '{}' ./cmd/multus\n",
        ldflags()
    );
    let stamp_ok = std::fs::read_to_string(bin_dir.join("BUILD-INFO")).is_ok_and(|s| s == info);
    if stamp_ok && bin_dir.join("multus").is_file() {
        eprintln!(
            "setup: multus {MULTUS_VERSION} present in {}",
            bin_dir.display()
        );
        return Ok(());
    }
    eprintln!(
        "setup: building multus {MULTUS_VERSION} (thin plugin) with {go_version} from {} into {} \
         (first run only: ~1 min with Go's module cache warm, ~4 min cold)",
        match &source {
            Source::Tarball(path) => path.display().to_string(),
            Source::ModuleProxy => format!("{MODULE}@{MULTUS_COMMIT} (go install)"),
        },
        bin_dir.display()
    );
    std::fs::create_dir_all(&version_dir)
        .with_context(|| format!("creating {}", version_dir.display()))?;
    let tmp_bin = version_dir.join(format!("bin.tmp-{}", std::process::id()));
    remove_dir_if_present(&tmp_bin)?;
    std::fs::create_dir_all(&tmp_bin).with_context(|| format!("creating {}", tmp_bin.display()))?;
    match &source {
        Source::Tarball(path) => build_from_tarball(&go, path, &version_dir, &tmp_bin)?,
        Source::ModuleProxy => {
            let mut install = Command::new("nice");
            install
                .args(["-n", "19"])
                .arg(&go)
                .args(["install", "-trimpath", "-ldflags", &ldflags()])
                .arg(format!("{MODULE}/cmd/multus@{MULTUS_COMMIT}"))
                .env("GOBIN", &tmp_bin);
            go_env(&mut install);
            cmd::run(&mut install).context(
                "building multus with `go install` (no source tarball beside the repository; \
                 the module proxy must serve the Multus module)",
            )?;
        }
    }
    if !tmp_bin.join("multus").is_file() {
        bail!("the multus build left no binary in {}", tmp_bin.display());
    }
    crate::k8s::install_bin_dir(&tmp_bin, &bin_dir, &info)?;
    let version =
        cmd::output_ok(Command::new(bin_dir.join("multus")).arg("--version")).unwrap_or_default();
    if !version.contains(MULTUS_VERSION) {
        bail!(
            "{} --version says {:?}, expected {MULTUS_VERSION}",
            bin_dir.join("multus").display(),
            version.trim()
        );
    }
    eprintln!(
        "setup: multus {MULTUS_VERSION} ready in {} after {:.0} s",
        bin_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Unpacks the snapshot into a scratch dir under `version_dir` and builds `./cmd/multus` there.
fn build_from_tarball(
    go: &Path,
    tarball: &Path,
    version_dir: &Path,
    tmp_bin: &Path,
) -> anyhow::Result<()> {
    let src = version_dir.join(format!("src.tmp-{}", std::process::id()));
    remove_dir_if_present(&src)?;
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    cmd::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(tarball)
            .arg("-C")
            .arg(&src),
    )?;
    let module_dir = src.join("multus-cni");
    if !module_dir.join("go.mod").is_file() {
        bail!(
            "{} does not hold multus-cni/go.mod; is it the snapshot described in \
             shared/third-party/README.md?",
            tarball.display()
        );
    }
    let mut build = Command::new("nice");
    build
        .args(["-n", "19"])
        .arg(go)
        .args(["build", "-trimpath", "-ldflags", &ldflags(), "-o"])
        .arg(tmp_bin.join("multus"))
        .arg("./cmd/multus")
        .current_dir(&module_dir);
    go_env(&mut build);
    let built = cmd::run(&mut build).context("building multus from the source snapshot");
    remove_dir_if_present(&src)?;
    built
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_is_found_beside_the_repository() {
        // CI clones and this machine have `shared/` beside the workspace root.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if root
            .parent()
            .is_some_and(|p| p.join("shared/third-party").is_dir())
        {
            assert!(
                tarball(&root).is_some(),
                "no multus tarball beside {}",
                root.display()
            );
        }
        assert!(tarball(Path::new("/nonexistent/repo")).is_none());
    }

    #[test]
    fn ldflags_stamp_the_snapshot_version() {
        assert!(ldflags().contains(
            "-X gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.version=v4.3.0-42-g95a0932"
        ));
    }
}
