//! Kubernetes binaries for the L2 tests: `kube-apiserver`, `kube-controller-manager`,
//! `kube-scheduler` and `kubectl`, built with `go build` from the `k8s.io/kubernetes` Go module
//! at a pinned release, cached outside the repo by version, rebuilt only when missing.
//!
//! No Kubernetes server binaries are packaged by Debian and release pages cannot be reached here;
//! the Go module proxy can. `k8s.io/kubernetes` cannot be `go install`ed: its `go.mod` requires
//! the staging modules (`k8s.io/api`, ...) at `v0.0.0` and replaces them with local paths, which
//! only works in the main module. So a throwaway module in the cache requires it and replaces
//! each of those with the published `v0.X.Y` (method: `shared/notes/k8s-from-go-modules.md`).
//!
//! Layout under [`CACHE_DIR`]`/<version>/`: `mod/` (the throwaway module, reused), `bin/` (the
//! binaries and `BUILD-INFO`, the exact Go version and flags that built them). `bin/` counts as
//! present only when `BUILD-INFO` matches what this file would build now, so changing a flag
//! (or Go) rebuilds; the module dir and Go's build cache make that rebuild mostly a link.
//! Both dirs are built under a temporary name and renamed into place, so an interrupted setup
//! never leaves a half-built cache that looks complete. `etcd` comes from Debian (`etcd-server`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cmd;

/// The pinned release. 1.35 is the newest release whose kubelet still runs on Debian 12's
/// containerd 1.6 (for the later L3 level), and the workspace's k8s-openapi feature is `v1_35`.
/// Keep in step with `e2e::k8s::KUBERNETES_VERSION` (an e2e test checks they agree).
pub const KUBERNETES_VERSION: &str = "v1.35.4";

/// Cache root, outside the repo so `cargo clean` and fresh clones keep it.
pub const CACHE_DIR: &str = "/var/cache/kube-ovn-rs/k8s";

/// The binaries built, all from `k8s.io/kubernetes/cmd/<name>`.
/// `kubelet` and `kube-proxy` run the real nodes (L3): a kubelet per node with containerd, and
/// kube-proxy beside it so Service addresses resolve to endpoints on this machine.
pub const COMMANDS: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
];

/// Runs the step: prints what it does and how long each build took.
pub fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let version_dir = Path::new(CACHE_DIR).join(KUBERNETES_VERSION);
    let bin_dir = version_dir.join("bin");
    let go = find_go()?;
    let go_version = cmd::output_ok(Command::new(&go).arg("version"))
        .map(|v| v.trim().to_owned())
        .with_context(|| format!("`{} version` failed", go.display()))?;
    let info = build_info(&go_version);
    if is_complete(&bin_dir, &info) {
        eprintln!(
            "setup: kubernetes {KUBERNETES_VERSION} binaries present in {} ({})",
            bin_dir.display(),
            COMMANDS.join(" ")
        );
        return Ok(());
    }
    eprintln!(
        "setup: building kubernetes {KUBERNETES_VERSION} ({}) with {go_version} into {} \
         (first run only, about 25 min on 2 cores; later builds reuse Go's build cache)",
        COMMANDS.join(" "),
        bin_dir.display()
    );
    std::fs::create_dir_all(&version_dir)
        .with_context(|| format!("creating {}", version_dir.display()))?;
    let mod_dir = prepare_module(&go, &version_dir)?;

    let tmp_bin = version_dir.join(format!("bin.tmp-{}", std::process::id()));
    remove_dir_if_present(&tmp_bin)?;
    std::fs::create_dir_all(&tmp_bin).with_context(|| format!("creating {}", tmp_bin.display()))?;
    let ldflags = ldflags();
    for name in COMMANDS {
        let t = Instant::now();
        eprintln!("setup: building {name} {KUBERNETES_VERSION} (first run only)");
        let out = tmp_bin.join(name);
        let mut build = Command::new("nice");
        build
            .args(["-n", "19"])
            .arg(&go)
            .args(["build", "-trimpath", "-ldflags", &ldflags, "-o"])
            .arg(&out)
            .arg(format!("k8s.io/kubernetes/cmd/{name}"))
            .current_dir(&mod_dir);
        go_env(&mut build);
        cmd::run(&mut build).with_context(|| format!("building {name}"))?;
        eprintln!("setup: built {name} in {:.0} s", t.elapsed().as_secs_f64());
    }
    install_bin_dir(&tmp_bin, &bin_dir, &info)?;
    eprintln!(
        "setup: kubernetes {KUBERNETES_VERSION} binaries ready in {} after {:.0} s",
        bin_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `-X` flags that stamp the release into the binaries, as Kubernetes' own `hack/lib/version.sh`
/// does (component-base for the servers, client-go for kubectl's client version); `-s -w`
/// drops symbol tables (the binaries are for running, not debugging).
fn ldflags() -> String {
    let minor = KUBERNETES_VERSION
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or_default();
    let mut flags = vec!["-s".to_owned(), "-w".to_owned()];
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (var, value) in [
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", "1"),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        ] {
            flags.push(format!("-X {pkg}.{var}={value}"));
        }
    }
    flags.join(" ")
}

/// What `BUILD-INFO` says: everything that decides the binaries' content.
fn build_info(go_version: &str) -> String {
    format!(
        "kubernetes {KUBERNETES_VERSION}\n{go_version}\nenv CGO_ENABLED=0 GOTOOLCHAIN=local\n\
         go build -trimpath -ldflags '{}'\ncommands {}\n",
        ldflags(),
        COMMANDS.join(" ")
    )
}

fn is_complete(bin_dir: &Path, info: &str) -> bool {
    let stamp_ok = std::fs::read_to_string(bin_dir.join("BUILD-INFO")).is_ok_and(|s| s == info);
    stamp_ok && COMMANDS.iter().all(|name| bin_dir.join(name).is_file())
}

/// Go from `PATH`, or the upstream tarball's usual place (also used for helm).
pub fn find_go() -> anyhow::Result<PathBuf> {
    if cmd::output_ok(Command::new("go").arg("version")).is_some() {
        return Ok(PathBuf::from("go"));
    }
    let fallback = PathBuf::from("/usr/local/go/bin/go");
    if fallback.is_file() {
        return Ok(fallback);
    }
    bail!(
        "Go is needed to build the Kubernetes {KUBERNETES_VERSION} binaries and helm and was not \
         found (neither `go` on PATH nor /usr/local/go/bin/go); install Go >= 1.26"
    )
}

pub fn go_env(cmd: &mut Command) {
    // CGO off: static binaries with no C toolchain needed. GOTOOLCHAIN=local: never fetch a
    // different Go toolchain behind our back; the `go` line of the module is satisfied locally.
    cmd.env("CGO_ENABLED", "0").env("GOTOOLCHAIN", "local");
}

/// The throwaway module that requires `k8s.io/kubernetes`, resolved with `go mod tidy`.
/// Reused when present (its `go.sum` is only written by a successful tidy).
fn prepare_module(go: &Path, version_dir: &Path) -> anyhow::Result<PathBuf> {
    let mod_dir = version_dir.join("mod");
    if mod_dir.join("go.sum").is_file() && mod_dir.join("tools.go").is_file() {
        eprintln!("setup: reusing the Go module in {}", mod_dir.display());
        return Ok(mod_dir);
    }
    let t = Instant::now();
    let staging = staging_modules(go)?;
    let tmp = version_dir.join(format!("mod.tmp-{}", std::process::id()));
    remove_dir_if_present(&tmp)?;
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let release = format!("v0.{}", KUBERNETES_VERSION.trim_start_matches("v1."));
    let mut go_mod = format!(
        "module kubeovn.local/k8sbins\n\ngo 1.25.0\n\nrequire k8s.io/kubernetes {KUBERNETES_VERSION}\n\n"
    );
    for module in &staging {
        go_mod.push_str(&format!("replace {module} => {module} {release}\n"));
    }
    std::fs::write(tmp.join("go.mod"), go_mod).context("writing go.mod")?;
    let imports: String = COMMANDS
        .iter()
        .map(|name| format!("\t_ \"k8s.io/kubernetes/cmd/{name}\"\n"))
        .collect();
    std::fs::write(
        tmp.join("tools.go"),
        format!("//go:build tools\n\npackage tools\n\nimport (\n{imports})\n"),
    )
    .context("writing tools.go")?;
    let mut tidy = Command::new(go);
    tidy.args(["mod", "tidy"]).current_dir(&tmp);
    go_env(&mut tidy);
    cmd::run(&mut tidy).context("resolving the Kubernetes module (go mod tidy)")?;
    remove_dir_if_present(&mod_dir)?;
    std::fs::rename(&tmp, &mod_dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), mod_dir.display()))?;
    eprintln!(
        "setup: resolved the Go module with {} staging replaces in {:.0} s",
        staging.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(mod_dir)
}

/// Downloads `module@version` into the module cache (`go mod download -json`) and returns its
/// go.mod: (path, text). `echo` prints the command first.
pub fn downloaded_go_mod(
    go: &Path,
    module_at_version: &str,
    echo: bool,
) -> anyhow::Result<(String, String)> {
    let mut download = Command::new(go);
    download
        .args(["mod", "download", "-json"])
        .arg(module_at_version);
    go_env(&mut download);
    if echo {
        eprintln!("+ {}", cmd::display(&download));
    }
    let json = cmd::output_ok(&mut download)
        .with_context(|| format!("`{}` failed", cmd::display(&download)))?;
    let go_mod_path = json
        .lines()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("\"GoMod\":")?;
            Some(
                rest.trim()
                    .trim_end_matches(',')
                    .trim_matches('"')
                    .to_owned(),
            )
        })
        .context("`go mod download -json` printed no GoMod path")?;
    let go_mod =
        std::fs::read_to_string(&go_mod_path).with_context(|| format!("reading {go_mod_path}"))?;
    Ok((go_mod_path, go_mod))
}

/// The `k8s.io/*` modules that kubernetes' own go.mod requires at `v0.0.0` (its staging dir),
/// read from the release's go.mod so the list matches the release.
fn staging_modules(go: &Path) -> anyhow::Result<Vec<String>> {
    let (go_mod_path, go_mod) =
        downloaded_go_mod(go, &format!("k8s.io/kubernetes@{KUBERNETES_VERSION}"), true)?;
    let modules = parse_staging(&go_mod);
    if modules.is_empty() {
        bail!("{go_mod_path} lists no k8s.io modules at v0.0.0; the method no longer applies");
    }
    Ok(modules)
}

/// `k8s.io/<name> v0.0.0` requirements of a go.mod (inside or outside a `require (...)` block).
fn parse_staging(go_mod: &str) -> Vec<String> {
    let mut modules: Vec<String> = go_mod
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("require").trim();
            let mut words = line.split_whitespace();
            let (module, version) = (words.next()?, words.next()?);
            (module.starts_with("k8s.io/") && version == "v0.0.0").then(|| module.to_owned())
        })
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

pub fn remove_dir_if_present(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Puts freshly built binaries in place: `BUILD-INFO` (what they were built from) written into
/// `tmp_bin`, which then replaces `bin_dir` whole, so a half-finished build is never used.
pub fn install_bin_dir(tmp_bin: &Path, bin_dir: &Path, info: &str) -> anyhow::Result<()> {
    std::fs::write(tmp_bin.join("BUILD-INFO"), info)
        .with_context(|| format!("writing {}/BUILD-INFO", tmp_bin.display()))?;
    remove_dir_if_present(bin_dir)?;
    std::fs::rename(tmp_bin, bin_dir)
        .with_context(|| format!("renaming {} to {}", tmp_bin.display(), bin_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_modules_are_the_v0_0_0_k8s_requirements() {
        let go_mod = "module k8s.io/kubernetes\n\nrequire (\n\tgithub.com/x/y v1.2.3\n\
                      \tk8s.io/api v0.0.0\n\tk8s.io/utils v0.0.0-20250101\n)\n\n\
                      require k8s.io/client-go v0.0.0\n\nreplace k8s.io/api => ./staging/src/k8s.io/api\n";
        assert_eq!(parse_staging(go_mod), ["k8s.io/api", "k8s.io/client-go"]);
    }

    #[test]
    fn ldflags_stamp_the_release_for_servers_and_kubectl() {
        let flags = ldflags();
        for want in [
            "-X k8s.io/component-base/version.gitVersion=v1.35.4",
            "-X k8s.io/component-base/version.gitMinor=35",
            "-X k8s.io/client-go/pkg/version.gitVersion=v1.35.4",
            "-X k8s.io/client-go/pkg/version.gitMajor=1",
        ] {
            assert!(flags.contains(want), "{flags}");
        }
    }
}
