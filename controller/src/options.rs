//! Command-line flags and environment of `kube-ovn-controller`.

use clap::Parser;

/// Flags of `kube-ovn-controller`. Every flag can also be set by the environment variable shown.
#[derive(Debug, Clone, Parser)]
#[command(name = "kube-ovn-controller", version, about)]
pub struct Options {
    /// OVN Northbound remotes, comma-separated (`tcp:HOST:PORT`, `ssl:HOST:PORT`, `unix:PATH`).
    #[arg(long, env = "OVN_NB_ADDR", default_value = "tcp:127.0.0.1:6641")]
    pub ovn_nb_addr: String,

    /// Run as an attached (non-primary) CNI beside another CNI that owns `eth0`. Only `true` is
    /// implemented: primary mode is not part of this implementation.
    #[arg(long, env = "NON_PRIMARY_CNI_MODE", default_value_t = true, action = clap::ArgAction::Set)]
    pub non_primary_cni_mode: bool,

    /// Path to a kubeconfig; in-cluster configuration when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Garbage collection interval in seconds (also run at start and after pod deletions).
    #[arg(long, env = "GC_INTERVAL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub gc_interval: u64,

    /// Elect a leader among replicas with a Lease; only the leader reconciles.
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    pub leader_elect_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kube-ovn-controller")]
    pub leader_elect_lease: String,

    /// This replica's identity in the Lease (defaults to the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub leader_elect_identity: Option<String>,

    /// Seconds a Lease lasts without renewal.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..))]
    pub leader_elect_lease_seconds: u64,

    /// Where to serve Prometheus metrics (`GET /metrics`), as `host:port`; empty disables.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:10660")]
    pub metrics_addr: String,

    /// Concurrent reconciles per controller. A pod reconcile mostly waits for the apiserver
    /// (two IP CR creates and one patch), so more in flight than cores pays: 16 attached 5,000
    /// pods in 21.8-22.5 s where 8 took 23.3-25.8 s (BENCHMARKS.md).
    #[arg(long, env = "WORKERS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why the given options cannot run.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// `--non-primary-cni-mode=false` was asked for.
    #[error(
        "--non-primary-cni-mode=false: primary CNI mode is not part of this implementation; \
         Kube-OVN here runs only as an attached CNI beside the cluster's primary CNI \
         (drop the flag or set it to true)"
    )]
    PrimaryModeUnsupported,
}

impl Options {
    /// Checks the combination of options before anything starts.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if !self.non_primary_cni_mode {
            return Err(OptionsError::PrimaryModeUnsupported);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_primary_mode_is_the_default_and_false_is_refused() {
        let opts = Options::try_parse_from(["kube-ovn-controller"]).unwrap();
        assert!(opts.non_primary_cni_mode);
        assert!(opts.validate().is_ok());
        assert_eq!(opts.metrics_addr, "0.0.0.0:10660");

        let opts = Options::try_parse_from(["kube-ovn-controller", "--non-primary-cni-mode=false"])
            .unwrap();
        let err = opts.validate().unwrap_err().to_string();
        assert!(
            err.contains("primary CNI mode is not part of this implementation"),
            "{err}"
        );
    }
}
