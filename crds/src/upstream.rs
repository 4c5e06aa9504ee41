//! Upstream Kube-OVN's container flags, for users who bring their manifests along.
//!
//! A user migrating from upstream copies its Deployment and DaemonSet, whose `args` carry dozens
//! of Go flags (`--worker-num`, `--enable-metrics`, klog's `--v` and `--log_file`, and the
//! settings of the default VPC and subnets that attached mode never creates). Our binaries used
//! to crash-loop on the first unknown one. [`translate`] rewrites the command line before
//! `clap` sees it, by a table each binary keeps next to its own flags: flags with our meaning
//! under another name are renamed, flags that only configure what attached mode does not do are
//! dropped with one warning line each (so a reader of the log learns they had no effect), and a
//! flag that asks for something we do not do (TLS serving, IPsec) is refused with a message
//! that says so, rather than silently giving less than was asked.
//!
//! Go's flag syntax is accepted as Go parses it: `--name=value`, `-name=value`, `--name value`
//! for flags with a value, and a bare `--name` for booleans.

use std::ffi::OsString;

/// What one upstream flag becomes.
#[derive(Debug, Clone, Copy)]
pub enum Disposition {
    /// The same meaning under our flag name (`--<ours>=<value>`).
    Rename(&'static str),
    /// A value-dependent translation into zero or more of our arguments, or a refusal.
    Translate(fn(&str) -> Result<Vec<String>, String>),
    /// Accepted and dropped; the reason goes into the warning line.
    Ignore(&'static str),
    /// Refused with the reason unless the value is one of `unless` (then dropped quietly: it
    /// asks for nothing).
    Refuse {
        /// Values that ask for nothing (typically `false`).
        unless: &'static [&'static str],
        /// Why the flag cannot be honoured, and what to do.
        why: &'static str,
    },
}

/// One upstream flag.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamFlag {
    /// The name without dashes, as upstream spells it (`worker-num`, `log_file`).
    pub name: &'static str,
    /// A Go boolean flag (a bare `--name` means `true`, and never takes the next argument).
    pub boolean: bool,
    /// What it becomes.
    pub disposition: Disposition,
}

impl UpstreamFlag {
    /// A flag with a value.
    pub const fn value(name: &'static str, disposition: Disposition) -> Self {
        Self {
            name,
            boolean: false,
            disposition,
        }
    }

    /// A Go boolean flag.
    pub const fn boolean(name: &'static str, disposition: Disposition) -> Self {
        Self {
            name,
            boolean: true,
            disposition,
        }
    }
}

const KLOG_REASON: &str = "klog setting; this binary logs to stderr, filtered by RUST_LOG";

/// klog's flags, which every upstream binary accepts and upstream's charts pass.
pub const KLOG: &[UpstreamFlag] = &[
    UpstreamFlag::value("v", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::value("vmodule", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::boolean("logtostderr", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::boolean("alsologtostderr", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::value("log_file", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::value("log_file_max_size", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::value("log_dir", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::value("stderrthreshold", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::boolean("skip_headers", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::boolean("skip_log_headers", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::boolean("add_dir_header", Disposition::Ignore(KLOG_REASON)),
    UpstreamFlag::boolean("one_output", Disposition::Ignore(KLOG_REASON)),
];

/// Reason for flags that configure upstream's default network (default VPC, `ovn-default`,
/// `join`, node ports), which attached mode does not create.
pub const PRIMARY_NETWORK: &str = "configures upstream's primary network (default VPC and subnets, join network, node ports), \
     which attached mode does not create";

/// Reason for flags about Services and NetworkPolicies on `eth0`.
pub const PRIMARY_CNI_OWNS: &str =
    "applies to the pods' primary network, which the primary CNI owns in attached mode";

/// Reason for upstream features this implementation does not have.
pub const NOT_APPLICABLE: &str = "an upstream feature this implementation does not have; no effect";

/// Why `--non-primary-cni-mode=false` stops either binary.
pub const PRIMARY_MODE_UNSUPPORTED: &str = "--non-primary-cni-mode=false: primary CNI mode is not part of this implementation; \
     Kube-OVN here runs only as an attached CNI beside the cluster's primary CNI \
     (drop the flag or set it to true)";

/// Flags both upstream binaries take with the same meaning here: metrics on/off, the two
/// security features we refuse rather than silently not provide, and the settings of the
/// primary network that both ignore.
pub const COMMON: &[UpstreamFlag] = &[
    UpstreamFlag::value("node-switch", Disposition::Ignore(PRIMARY_NETWORK)),
    UpstreamFlag::value(
        "default-interface-name",
        Disposition::Ignore(PRIMARY_NETWORK),
    ),
    UpstreamFlag::value(
        "service-cluster-ip-range",
        Disposition::Ignore(PRIMARY_CNI_OWNS),
    ),
    UpstreamFlag::boolean("enable-metrics", Disposition::Translate(enable_metrics)),
    UpstreamFlag::boolean(
        "secure-serving",
        Disposition::Refuse {
            unless: &["false"],
            why: "metrics and probes over HTTPS are not implemented: serve them over HTTP \
                  (secure-serving=false) and keep the port off untrusted networks",
        },
    ),
    UpstreamFlag::boolean(
        "enable-ovn-ipsec",
        Disposition::Refuse {
            unless: &["false"],
            why: "IPsec between nodes is not implemented; refusing rather than carrying \
                  traffic unencrypted that was meant to be encrypted",
        },
    ),
];

/// [`translate`] with a binary's own `table`, then [`COMMON`] and [`KLOG`].
pub fn translate_with(
    args: impl IntoIterator<Item = OsString>,
    table: &[UpstreamFlag],
) -> Result<Translated, String> {
    translate(args, &[table, COMMON, KLOG])
}

/// `--enable-metrics=<bool>`: `false` turns our metrics listener off.
pub fn enable_metrics(value: &str) -> Result<Vec<String>, String> {
    match parse_go_bool(value) {
        Some(true) => Ok(Vec::new()),
        Some(false) => Ok(vec!["--metrics-addr=".to_owned()]),
        None => Err(format!("--enable-metrics={value}: not a boolean")),
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The command line after [`translate`], and the warnings to log once logging is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// The arguments for `clap` (program name first).
    pub args: Vec<OsString>,
    /// One line per upstream flag that was accepted but has no effect.
    pub warnings: Vec<String>,
}

/// Rewrites upstream flags in `args` (program name first) by `tables` (the first table that
/// names a flag wins); every other argument is passed on untouched. Fails on the first refused
/// flag, with a message naming it.
pub fn translate(
    args: impl IntoIterator<Item = OsString>,
    tables: &[&[UpstreamFlag]],
) -> Result<Translated, String> {
    let mut input = args.into_iter();
    let mut out: Vec<OsString> = input.next().into_iter().collect();
    let mut warnings = Vec::new();
    let mut rest_is_positional = false;
    while let Some(arg) = input.next() {
        let Some(text) = arg.to_str().filter(|_| !rest_is_positional) else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest_is_positional = true;
            out.push(arg);
            continue;
        }
        let Some(body) = text
            .strip_prefix("--")
            .or_else(|| text.strip_prefix('-'))
            .filter(|b| !b.is_empty())
        else {
            out.push(arg);
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(flag) = tables
            .iter()
            .flat_map(|t| t.iter())
            .find(|f| f.name == name)
        else {
            out.push(arg);
            continue;
        };
        let value = match (inline, flag.boolean) {
            (Some(v), _) => v.to_owned(),
            (None, true) => "true".to_owned(),
            (None, false) => input
                .next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("upstream flag --{name} needs a value"))?,
        };
        match flag.disposition {
            Disposition::Rename(ours) => out.push(format!("--{ours}={value}").into()),
            Disposition::Translate(f) => out.extend(
                f(&value)
                    .map_err(|e| format!("upstream flag --{name}={value}: {e}"))?
                    .into_iter()
                    .map(OsString::from),
            ),
            Disposition::Ignore(why) => {
                warnings.push(format!("ignoring upstream flag --{name}={value}: {why}"));
            }
            Disposition::Refuse { unless, why } => {
                if !unless.contains(&value.as_str()) {
                    return Err(format!("upstream flag --{name}={value} is refused: {why}"));
                }
            }
        }
    }
    Ok(Translated {
        args: out,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[UpstreamFlag] = &[
        UpstreamFlag::value("worker-num", Disposition::Rename("workers")),
        UpstreamFlag::boolean("enable-metrics", Disposition::Translate(enable_metrics)),
        UpstreamFlag::value("default-cidr", Disposition::Ignore(PRIMARY_NETWORK)),
        UpstreamFlag::boolean(
            "enable-ovn-ipsec",
            Disposition::Refuse {
                unless: &["false"],
                why: "not implemented",
            },
        ),
    ];

    fn run(args: &[&str]) -> Result<Translated, String> {
        translate(
            std::iter::once("bin")
                .chain(args.iter().copied())
                .map(OsString::from),
            &[TABLE, KLOG],
        )
    }

    fn strings(t: &Translated) -> Vec<String> {
        t.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn renames_translates_ignores_and_passes_the_rest() {
        let t = run(&[
            "--worker-num=3",
            "--enable-metrics=false",
            "--default-cidr=10.16.0.0/16",
            "--v=3",
            "-logtostderr=false",
            "--log_file",
            "/var/log/x.log",
            "--enable-ovn-ipsec=false",
            "--gc-interval=30",
            "--",
            "--v=1",
        ])
        .unwrap();
        assert_eq!(
            strings(&t),
            [
                "bin",
                "--workers=3",
                "--metrics-addr=",
                "--gc-interval=30",
                "--",
                "--v=1"
            ]
        );
        assert_eq!(t.warnings.len(), 4, "{:?}", t.warnings);
        assert!(t.warnings[0].contains("--default-cidr=10.16.0.0/16"));
        assert!(t.warnings[2].contains("--logtostderr=false"));
        assert!(t.warnings[3].contains("--log_file=/var/log/x.log"));
    }

    #[test]
    fn bare_booleans_mean_true_and_refusals_name_the_flag() {
        let t = run(&["--enable-metrics", "--alsologtostderr"]).unwrap();
        assert_eq!(strings(&t), ["bin"]);
        let err = run(&["--enable-ovn-ipsec"]).unwrap_err();
        assert!(
            err.contains("--enable-ovn-ipsec=true is refused: not implemented"),
            "{err}"
        );
        let err = run(&["--enable-metrics=maybe"]).unwrap_err();
        assert!(err.contains("not a boolean"), "{err}");
        let err = run(&["--v"]).unwrap_err();
        assert!(err.contains("--v needs a value"), "{err}");
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_go_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_go_bool(f), Some(false));
        }
        assert_eq!(parse_go_bool("yes"), None);
    }
}
