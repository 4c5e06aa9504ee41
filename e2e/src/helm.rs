//! `helm`, built by `cargo xtask setup` from the `helm.sh/helm/v3` Go module at [`HELM_VERSION`]
//! (see `xtask/src/helm.rs`), for the chart tests: `helm lint`, `helm template` and
//! `helm install` against a [`crate::k8s::ControlPlane`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The helm release `cargo xtask setup` builds. Keep in step with `xtask/src/helm.rs` (a test
/// checks they agree).
pub const HELM_VERSION: &str = "v3.22.0";

/// Where `cargo xtask setup` puts it.
pub const DEFAULT_HELM: &str = "/var/cache/kube-ovn-rs/helm/v3.22.0/bin/helm";

/// Environment variable naming another helm binary.
pub const HELM_ENV: &str = "KUBE_OVN_HELM";

/// A helm step failed.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// The binary is not there.
    #[error(
        "helm {HELM_VERSION} not found at {0}: run `cargo xtask setup` (it builds helm from its Go \
         module) or point ${HELM_ENV} at a helm binary"
    )]
    Missing(PathBuf),
    /// helm could not be started.
    #[error("starting `{command}`: {source}")]
    Start {
        /// The command line.
        command: String,
        /// The error.
        source: std::io::Error,
    },
    /// helm exited non-zero.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// The helm binary, with its own state dir (cache, config, data), never the user's.
#[derive(Debug, Clone)]
pub struct Helm {
    path: PathBuf,
    state: PathBuf,
}

impl Helm {
    /// `$KUBE_OVN_HELM` if set, else [`DEFAULT_HELM`]; helm keeps its state under `state_dir`
    /// (the caller's temp dir, removed by the caller).
    pub fn locate(state_dir: &Path) -> Result<Self, HelmError> {
        let path =
            std::env::var_os(HELM_ENV).map_or_else(|| PathBuf::from(DEFAULT_HELM), PathBuf::from);
        if path.is_file() {
            Ok(Self {
                path,
                state: state_dir.to_path_buf(),
            })
        } else {
            Err(HelmError::Missing(path))
        }
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs helm with `args` in `dir`, with `kubeconfig` as `KUBECONFIG` if given. Returns the
    /// whole output, successful or not.
    pub fn output(
        &self,
        dir: &Path,
        args: &[&str],
        kubeconfig: Option<&Path>,
    ) -> Result<Output, HelmError> {
        let mut cmd = Command::new(&self.path);
        cmd.args(args).current_dir(dir).stdin(Stdio::null());
        cmd.env("HELM_CACHE_HOME", self.state.join("cache"))
            .env("HELM_CONFIG_HOME", self.state.join("config"))
            .env("HELM_DATA_HOME", self.state.join("data"));
        match kubeconfig {
            Some(k) => cmd.env("KUBECONFIG", k),
            None => cmd.env_remove("KUBECONFIG"),
        };
        cmd.output().map_err(|source| HelmError::Start {
            command: format!("helm {}", args.join(" ")),
            source,
        })
    }

    /// Like [`Helm::output`], but fails unless helm exits 0; returns stdout.
    pub fn run(
        &self,
        dir: &Path,
        args: &[&str],
        kubeconfig: Option<&Path>,
    ) -> Result<String, HelmError> {
        let out = self.output(dir, args, kubeconfig)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(HelmError::Failed {
                command: format!("helm {}", args.join(" ")),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed assertion is the report.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn version_and_path_match_xtask() {
        let xtask = include_str!("../../xtask/src/helm.rs");
        assert!(
            xtask.contains(&format!(
                "pub const HELM_VERSION: &str = \"{HELM_VERSION}\";"
            )),
            "xtask/src/helm.rs pins another helm version than {HELM_VERSION}"
        );
        assert!(xtask.contains("pub const CACHE_DIR: &str = \"/var/cache/kube-ovn-rs/helm\";"));
        assert_eq!(
            DEFAULT_HELM,
            format!("/var/cache/kube-ovn-rs/helm/{HELM_VERSION}/bin/helm")
        );
    }

    #[test]
    fn a_missing_helm_names_the_setup_command() {
        let err = HelmError::Missing(PathBuf::from("/nowhere/helm")).to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
        assert!(err.contains(HELM_ENV), "{err}");
    }
}
