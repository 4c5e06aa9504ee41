//! Command-line flags and environment of `kube-ovn-controller`.

use clap::Parser;
use crds::upstream::{
    Disposition, NOT_APPLICABLE, PRIMARY_CNI_OWNS, PRIMARY_NETWORK, UpstreamFlag,
};

/// Flags of `kube-ovn-controller`. Every flag can also be set by the environment variable shown.
#[derive(Debug, Clone, Parser)]
#[command(name = "kube-ovn-controller", version, about)]
pub struct Options {
    /// OVN Northbound remotes, comma-separated (`tcp:HOST:PORT`, `ssl:HOST:PORT`, `unix:PATH`).
    #[arg(long, env = "OVN_NB_ADDR", default_value = "tcp:127.0.0.1:6641")]
    pub ovn_nb_addr: String,

    /// PEM CA certificate that NB's certificate must chain to, for `ssl:` remotes (as
    /// `ovn-nbctl --ca-cert`). Required with an `ssl:` remote, refused without one. As with
    /// OVN's own clients, the chain is what is checked, not the name in NB's certificate
    /// (certificates made by `ovs-pki` name no address, and one serves every RAFT member):
    /// give a CA that signs OVN's certificates only (the charts make one per install).
    #[arg(long, env = "OVN_SSL_CA_CERT")]
    pub ovn_ssl_ca_cert: Option<std::path::PathBuf>,

    /// PEM certificate the controller presents to NB (`ovn-nbctl --certificate`).
    #[arg(long, env = "OVN_SSL_CERT")]
    pub ovn_ssl_cert: Option<std::path::PathBuf>,

    /// PEM private key of `--ovn-ssl-cert` (`ovn-nbctl --private-key`).
    #[arg(long, env = "OVN_SSL_KEY")]
    pub ovn_ssl_key: Option<std::path::PathBuf>,

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

    /// Where to serve the pods' mutating admission webhook (HTTPS, `POST /mutate-pods`), as
    /// `host:port`; empty disables. The chart enables it (it rewrites the manual's JSON
    /// networks elements, `{"name": "ns/nad"}`, to the form Multus reads).
    #[arg(long, env = "WEBHOOK_ADDR", default_value = "")]
    pub webhook_addr: String,

    /// Directory holding the webhook's `tls.crt` and `tls.key`.
    #[arg(
        long,
        env = "WEBHOOK_CERT_DIR",
        default_value = "/etc/kube-ovn/webhook"
    )]
    pub webhook_cert_dir: std::path::PathBuf,

    /// Concurrent reconciles per controller. A pod reconcile mostly waits for the apiserver
    /// (two IP CR creates and one patch), so more in flight than cores pays: 16 attached 5,000
    /// pods in 21.8-22.5 s where 8 took 23.3-25.8 s (BENCHMARKS.md).
    #[arg(long, env = "WORKERS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,

    /// Image of the VPC NAT gateway pods: the `kube-ovn-cni` image, whose `kube-ovn-daemon`
    /// carries the gateway agent (`kube-ovn-daemon nat-gateway`). The charts set it to the cni
    /// image they deploy. (Upstream's gateway image comes from the `ovn-vpc-nat-config`
    /// ConfigMap; there is no fourth image here, see `nat_gateway`.)
    #[arg(long, env = "NAT_GATEWAY_IMAGE", default_value = DEFAULT_NAT_GATEWAY_IMAGE)]
    pub nat_gateway_image: String,

    /// Remove every `kubeovn.io/` finalizer from every Kube-OVN object and exit (0 when all
    /// went, 1 otherwise), without NB. The charts' post-delete hook runs this after `helm
    /// uninstall` has removed the controller, so CRs and CRDs can be deleted afterwards.
    #[arg(long)]
    pub remove_finalizers: bool,

    /// Create or update this release's CRDs by server-side apply, wait until each is
    /// established, and exit (0 when all are, 1 otherwise), without NB. The charts'
    /// pre-upgrade hook runs this: helm itself never updates the CRDs of a chart's `crds/`.
    #[arg(long, conflicts_with = "remove_finalizers")]
    pub apply_crds: bool,
}

/// The NAT gateway image when none is given: this release's `kube-ovn-cni` image, as
/// `cargo xtask images` names it.
pub const DEFAULT_NAT_GATEWAY_IMAGE: &str = concat!(
    "docker.io/kube-ovn-rs/kube-ovn-cni:v",
    env!("CARGO_PKG_VERSION")
);

/// Upstream `kube-ovn-controller` flags (what its v1.17 charts render) and what each becomes;
/// see [`crds::upstream`] (which also holds the flags both binaries share). `--gc-interval`, `--non-primary-cni-mode` and `--ovn-nb-addr` have
/// the same name and meaning here and need no entry.
pub const UPSTREAM_FLAGS: &[UpstreamFlag] = &[
    UpstreamFlag::value("worker-num", Disposition::Rename("workers")),
    UpstreamFlag::value("default-ls", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value("default-cidr", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value("default-gateway", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::boolean(
        "default-gateway-check",
        Disposition::Ignore(PRIMARY_NETWORK),
    ),
    UpstreamFlag::boolean(
        "default-logical-gateway",
        Disposition::Ignore(PRIMARY_NETWORK),
    ),
    UpstreamFlag::boolean(
        "default-u2o-interconnection",
        Disposition::Ignore(PRIMARY_NETWORK),
    ),
    UpstreamFlag::value("default-exclude-ips", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value("cluster-router", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value("node-switch-cidr", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value("network-type", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value(
        "default-provider-name",
        Disposition::Ignore(PRIMARY_NETWORK),
    ),
    UpstreamFlag::value(
        "default-exchange-link-name",
        Disposition::Ignore(PRIMARY_NETWORK),
    ),
    UpstreamFlag::value("default-vlan-name", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value("default-vlan-id", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value("pod-nic-type", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value("node-local-dns-ip", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::boolean("enable-lb", Disposition::Ignore(PRIMARY_CNI_OWNS)),
    UpstreamFlag::boolean("enable-lb-svc", Disposition::Ignore(PRIMARY_CNI_OWNS)),
    UpstreamFlag::boolean(
        "enable-ovn-lb-prefer-local",
        Disposition::Ignore(PRIMARY_CNI_OWNS),
    ),
    UpstreamFlag::boolean("enable-np", Disposition::Ignore(PRIMARY_CNI_OWNS)),
    UpstreamFlag::boolean("enable-anp", Disposition::Ignore(PRIMARY_CNI_OWNS)),
    UpstreamFlag::value("np-enforcement", Disposition::Ignore(PRIMARY_CNI_OWNS)),
    UpstreamFlag::boolean("ls-dnat-mod-dl-dst", Disposition::Ignore(PRIMARY_CNI_OWNS)),
    UpstreamFlag::value(
        "ls-ct-skip-dst-lport-ips",
        Disposition::Ignore(PRIMARY_CNI_OWNS),
    ),
    UpstreamFlag::value(
        "skip-conntrack-dst-cidrs",
        Disposition::Ignore(PRIMARY_CNI_OWNS),
    ),
    UpstreamFlag::boolean(
        "enable-dns-name-resolver",
        Disposition::Ignore(PRIMARY_CNI_OWNS),
    ),
    UpstreamFlag::boolean("enable-ecmp", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::boolean("enable-eip-snat", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::boolean("enable-external-vpc", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::boolean("keep-vm-ip", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::boolean(
        "enable-live-migration-optimize",
        Disposition::Ignore(NOT_APPLICABLE),
    ),
    UpstreamFlag::value("inspect-interval", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::value(
        "external-acl-parent-keys",
        Disposition::Ignore(NOT_APPLICABLE),
    ),
    UpstreamFlag::value("ovsdb-con-timeout", Disposition::Ignore(NOT_APPLICABLE)),
    UpstreamFlag::value(
        "ovsdb-inactivity-timeout",
        Disposition::Ignore(NOT_APPLICABLE),
    ),
    UpstreamFlag::value("image", Disposition::Ignore(NOT_APPLICABLE)),
];

/// Translates upstream's flags in a command line (program name first) for [`Options`]'s
/// parser; see [`crds::upstream::translate`].
pub fn translate_upstream_flags(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<crds::upstream::Translated, String> {
    crds::upstream::translate_with(args, UPSTREAM_FLAGS)
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
    #[error("{}", crds::upstream::PRIMARY_MODE_UNSUPPORTED)]
    PrimaryModeUnsupported,
    /// `--ovn-nb-addr` is not a remote list.
    #[error("--ovn-nb-addr={remotes}: {reason}")]
    Remotes {
        /// The value.
        remotes: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `ssl:` remote without all three TLS files.
    #[error(
        "--ovn-nb-addr={remotes} has an ssl: remote, which needs --ovn-ssl-ca-cert, \
         --ovn-ssl-cert and --ovn-ssl-key; missing: {missing}"
    )]
    TlsMissing {
        /// The remotes.
        remotes: String,
        /// The flags not given.
        missing: String,
    },
    /// TLS files given but no `ssl:` remote: the connection would be plaintext.
    #[error(
        "{given} given but --ovn-nb-addr={remotes} has no ssl: remote: NB would be reached in \
         plaintext; use ssl:HOST:PORT remotes or drop the TLS flags"
    )]
    TlsUnused {
        /// The remotes.
        remotes: String,
        /// The TLS flags that were given.
        given: String,
    },
    /// A TLS file is missing, unreadable or not what it should be.
    #[error("TLS files for NB: {0}")]
    TlsFiles(String),
}

impl Options {
    /// Checks the combination of options before anything starts.
    /// Returns the checked TLS material for NB ([`Self::nb_tls`]), so the files are read once.
    pub fn validate(&self) -> Result<Option<ovn_api::TlsConfig>, OptionsError> {
        if !self.non_primary_cni_mode {
            return Err(OptionsError::PrimaryModeUnsupported);
        }
        self.nb_tls()
    }

    /// The TLS material for NB: `Some` when `--ovn-nb-addr` has an `ssl:` remote (all three
    /// files given, read and consistent), `None` when it has none (and no TLS flag is given).
    /// Checked at start-up, so a missing certificate stops the controller with a message
    /// naming the flag instead of failing every reconnect later.
    pub fn nb_tls(&self) -> Result<Option<ovn_api::TlsConfig>, OptionsError> {
        let remotes = &self.ovn_nb_addr;
        let parsed = ovn_api::parse_remotes(remotes).map_err(|e| OptionsError::Remotes {
            remotes: remotes.clone(),
            reason: e.to_string(),
        })?;
        let flags = [
            ("--ovn-ssl-ca-cert", &self.ovn_ssl_ca_cert),
            ("--ovn-ssl-cert", &self.ovn_ssl_cert),
            ("--ovn-ssl-key", &self.ovn_ssl_key),
        ];
        let names = |given: bool| {
            flags
                .iter()
                .filter(|(_, v)| v.is_some() == given)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(ssl) = parsed
            .iter()
            .find(|r| matches!(r, ovn_api::Remote::Ssl(..)))
        else {
            let given = names(true);
            return if given.is_empty() {
                Ok(None)
            } else {
                Err(OptionsError::TlsUnused {
                    remotes: remotes.clone(),
                    given,
                })
            };
        };
        let (Some(ca_cert), Some(cert), Some(key)) = (
            self.ovn_ssl_ca_cert.clone(),
            self.ovn_ssl_cert.clone(),
            self.ovn_ssl_key.clone(),
        ) else {
            return Err(OptionsError::TlsMissing {
                remotes: remotes.clone(),
                missing: names(false),
            });
        };
        let tls = ovn_api::TlsConfig {
            ca_cert,
            cert,
            key,
            check_server_name: false,
        };
        tls.check(ssl)
            .map_err(|e| OptionsError::TlsFiles(e.to_string()))?;
        Ok(Some(tls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(args: &[&str]) -> Result<(Options, Vec<String>), String> {
        let t = translate_upstream_flags(
            std::iter::once("kube-ovn-controller")
                .chain(args.iter().copied())
                .map(std::ffi::OsString::from),
        )?;
        let opts = Options::try_parse_from(t.args).map_err(|e| e.to_string())?;
        Ok((opts, t.warnings))
    }

    /// The flags upstream's v1.17 `kube-ovn-v2` chart renders into kube-ovn-controller's `args`
    /// with its default values and `cni.nonPrimaryCNI=true` (its template
    /// `controller/controller-deployment.yaml`, rendered by hand), plus what its
    /// `start-controller.sh` adds.
    const UPSTREAM_V1_17_ARGS: &[&str] = &[
        "--default-ls=ovn-default",
        "--default-cidr=10.16.0.0/16",
        "--default-gateway=10.16.0.1",
        "--default-gateway-check=true",
        "--default-logical-gateway=false",
        "--default-u2o-interconnection=false",
        "--default-exclude-ips=",
        "--cluster-router=ovn-cluster",
        "--node-switch=join",
        "--node-switch-cidr=100.64.0.0/16",
        "--service-cluster-ip-range=10.96.0.0/12",
        "--network-type=geneve",
        "--default-provider-name=provider",
        "--default-interface-name=",
        "--default-exchange-link-name=false",
        "--default-vlan-name=ovn-vlan",
        "--default-vlan-id=1",
        "--ls-dnat-mod-dl-dst=true",
        "--ls-ct-skip-dst-lport-ips=true",
        "--pod-nic-type=veth-pair",
        "--enable-lb=true",
        "--enable-np=true",
        "--enable-eip-snat=true",
        "--enable-external-vpc=true",
        "--enable-ecmp=false",
        "--logtostderr=false",
        "--alsologtostderr=true",
        "--gc-interval=360",
        "--inspect-interval=20",
        "--external-acl-parent-keys=",
        "--log_file=/var/log/kube-ovn/kube-ovn-controller.log",
        "--log_file_max_size=200",
        "--enable-lb-svc=false",
        "--keep-vm-ip=true",
        "--enable-metrics=true",
        "--node-local-dns-ip=",
        "--skip-conntrack-dst-cidrs=",
        "--secure-serving=false",
        "--enable-ovn-ipsec=false",
        "--enable-anp=false",
        "--enable-dns-name-resolver=false",
        "--ovsdb-con-timeout=3",
        "--ovsdb-inactivity-timeout=10",
        "--enable-live-migration-optimize=true",
        "--enable-ovn-lb-prefer-local=false",
        "--image=docker.io/kubeovn/kube-ovn:v1.17.0",
        "--non-primary-cni-mode=true",
        "--np-enforcement=standard",
        // start-controller.sh
        "--ovn-nb-addr=tcp:[10.0.0.2]:6641",
        "--worker-num=3",
        "--v=3",
    ];

    #[test]
    fn upstream_v1_17_controller_args_run_with_a_warning_per_ignored_flag() {
        let (opts, warnings) = upstream(UPSTREAM_V1_17_ARGS).unwrap();
        assert!(opts.validate().is_ok());
        assert_eq!(opts.workers, 3);
        assert_eq!(opts.gc_interval, 360);
        assert_eq!(opts.ovn_nb_addr, "tcp:[10.0.0.2]:6641");
        assert_eq!(opts.metrics_addr, "0.0.0.0:10660");
        // Every upstream flag is named in a warning but the three we share, the two we
        // translate and the two refusable ones set to false.
        assert_eq!(
            warnings.len(),
            UPSTREAM_V1_17_ARGS.len() - 5 - 2,
            "{warnings:#?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("--default-cidr=10.16.0.0/16") && w.contains("primary network")),
            "{warnings:#?}"
        );
    }

    #[test]
    fn upstream_flags_that_ask_for_what_we_do_not_do_are_refused_by_name() {
        let err = upstream(&["--enable-ovn-ipsec=true"]).unwrap_err();
        assert!(
            err.contains("--enable-ovn-ipsec=true is refused") && err.contains("IPsec"),
            "{err}"
        );
        let err = upstream(&["--secure-serving=true"]).unwrap_err();
        assert!(err.contains("HTTPS"), "{err}");
        let (opts, _) = upstream(&["--enable-metrics=false"]).unwrap();
        assert_eq!(opts.metrics_addr, "");
        let (opts, _) = upstream(&["--non-primary-cni-mode=false"]).unwrap();
        assert!(opts.validate().is_err());
        // A flag neither side knows is still an error naming it.
        let err = upstream(&["--no-such-flag=1"]).unwrap_err();
        assert!(err.contains("--no-such-flag"), "{err}");
    }

    #[test]
    fn non_primary_mode_is_the_default_and_false_is_refused() {
        let opts = Options::try_parse_from(["kube-ovn-controller"]).unwrap();
        assert!(opts.non_primary_cni_mode);
        assert!(opts.validate().is_ok());
        assert_eq!(opts.metrics_addr, "0.0.0.0:10660");
        assert!(
            opts.nat_gateway_image.ends_with("/kube-ovn-cni:v0.1.0"),
            "{}",
            opts.nat_gateway_image
        );

        let opts = Options::try_parse_from(["kube-ovn-controller", "--non-primary-cni-mode=false"])
            .unwrap();
        let err = opts.validate().unwrap_err().to_string();
        assert!(
            err.contains("primary CNI mode is not part of this implementation"),
            "{err}"
        );
    }
}
