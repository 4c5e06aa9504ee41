//! The CNI environment (`CNI_*` variables and the `K8S_*` pairs in `CNI_ARGS`), validated per verb.

use std::collections::BTreeMap;

use crate::error::{CniError, code};

/// A CNI verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach a container; must succeed when the attachment is already gone.
    Del,
    /// Verify an attachment against its previous result.
    Check,
    /// Report whether the plugin is ready for ADDs.
    Status,
    /// Remove resources of attachments not in the valid list.
    Gc,
    /// Report supported spec versions.
    Version,
}

impl Command {
    /// Parses `CNI_COMMAND`.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "STATUS" => Self::Status,
            "GC" => Self::Gc,
            "VERSION" => Self::Version,
            _ => return None,
        })
    }

    /// The spelling in `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
            Self::Version => "VERSION",
        }
    }
}

/// The validated environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    /// The verb.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for STATUS, GC, VERSION).
    pub container_id: String,
    /// `CNI_NETNS`, a path; may be empty on DEL.
    pub netns: String,
    /// `CNI_IFNAME` (empty for STATUS, GC, VERSION).
    pub ifname: String,
    /// `K8S_POD_NAME` from `CNI_ARGS`.
    pub pod_name: String,
    /// `K8S_POD_NAMESPACE` from `CNI_ARGS`.
    pub pod_namespace: String,
    /// `K8S_POD_UID` from `CNI_ARGS`, when given.
    pub pod_uid: String,
    /// Every `CNI_ARGS` pair, for diagnostics.
    pub args: BTreeMap<String, String>,
}

impl CniEnv {
    /// Reads the process environment.
    pub fn from_process(cni_version: &str) -> Result<Self, CniError> {
        Self::from_lookup(|k| std::env::var(k).ok(), cni_version)
    }

    /// Reads and validates the environment through `get` (the process environment in the binary,
    /// a map in tests). Errors carry code 4 (invalid environment) and name the variable.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        cni_version: &str,
    ) -> Result<Self, CniError> {
        let bad = |msg: String| CniError::new(cni_version, code::INVALID_ENV, msg);
        let raw_command = get("CNI_COMMAND").unwrap_or_default();
        let command = Command::parse(&raw_command).ok_or_else(|| {
            bad(if raw_command.is_empty() {
                "CNI_COMMAND is not set: this is a CNI plugin, run by a container runtime or Multus"
                    .to_owned()
            } else {
                format!("CNI_COMMAND {raw_command:?} is not a CNI verb")
            })
        })?;
        let container_id = get("CNI_CONTAINERID").unwrap_or_default();
        let netns = get("CNI_NETNS").unwrap_or_default();
        let ifname = get("CNI_IFNAME").unwrap_or_default();
        let args = parse_cni_args(&get("CNI_ARGS").unwrap_or_default())
            .map_err(|e| bad(format!("CNI_ARGS: {e}")))?;

        let per_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        if per_attachment {
            if container_id.is_empty() {
                return Err(bad(format!(
                    "CNI_CONTAINERID is required for {}",
                    command.as_str()
                )));
            }
            if !valid_container_id(&container_id) {
                return Err(bad(format!(
                    "CNI_CONTAINERID {container_id:?} must be alphanumeric (with . _ -), \
                     starting with a letter or digit"
                )));
            }
            if ifname.is_empty() {
                return Err(bad(format!(
                    "CNI_IFNAME is required for {}",
                    command.as_str()
                )));
            }
            validate_ifname(&ifname).map_err(|e| bad(format!("CNI_IFNAME {ifname:?}: {e}")))?;
            if command != Command::Del && netns.is_empty() {
                return Err(bad(format!(
                    "CNI_NETNS is required for {}",
                    command.as_str()
                )));
            }
        }
        let pod_name = args.get("K8S_POD_NAME").cloned().unwrap_or_default();
        let pod_namespace = args.get("K8S_POD_NAMESPACE").cloned().unwrap_or_default();
        if per_attachment && (pod_name.is_empty() || pod_namespace.is_empty()) {
            return Err(bad(format!(
                "CNI_ARGS must carry K8S_POD_NAME and K8S_POD_NAMESPACE for {} (got {:?}); \
                 kube-ovn attaches Kubernetes pods only",
                command.as_str(),
                get("CNI_ARGS").unwrap_or_default()
            )));
        }
        let pod_uid = args.get("K8S_POD_UID").cloned().unwrap_or_default();
        validate_pod_uid(&pod_uid).map_err(|e| bad(format!("K8S_POD_UID {pod_uid:?}: {e}")))?;
        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
            pod_name,
            pod_namespace,
            pod_uid,
            args,
        })
    }
}

/// Parses `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
pub fn parse_cni_args(raw: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in raw.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not KEY=VALUE"))?;
        if key.is_empty() {
            return Err(format!("{pair:?} has an empty key"));
        }
        out.insert(key.to_owned(), value.to_owned());
    }
    Ok(out)
}

/// Checks a Linux interface name: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("must be 1 to 15 bytes long, is {}", name.len()));
    }
    if name == "." || name == ".." {
        return Err("must not be . or ..".to_owned());
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err("must not contain '/', ':', whitespace or control characters".to_owned());
    }
    Ok(())
}

/// Checks `K8S_POD_UID` (optional: empty is fine). The daemon writes it into the port's
/// `external_ids` and compares it with the pod's UID, so it must look like one: a UUID from the
/// API server, or the hex hash kubelet gives a static pod; at most 128 ASCII letters, digits
/// and `-`.
pub fn validate_pod_uid(uid: &str) -> Result<(), String> {
    if uid.len() > 128 {
        return Err(format!("must be at most 128 bytes long, is {}", uid.len()));
    }
    if !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("must hold only ASCII letters, digits and '-'".to_owned());
    }
    Ok(())
}

fn valid_container_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CniEnv::from_lookup(|k| map.get(k).cloned(), "1.0.0")
    }

    const POD_ARGS: &str =
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p1;K8S_POD_UID=u-1";

    #[test]
    fn a_complete_add_environment_parses() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "net1"),
            ("CNI_ARGS", POD_ARGS),
        ])
        .unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(
            (e.pod_namespace.as_str(), e.pod_name.as_str()),
            ("default", "p1")
        );
        assert_eq!(e.pod_uid, "u-1");
    }

    #[test]
    fn each_bad_environment_class_names_the_variable_with_code_4() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "CNI_COMMAND is not set"),
            (&[("CNI_COMMAND", "FROB")], "not a CNI verb"),
            (&[("CNI_COMMAND", "ADD")], "CNI_CONTAINERID is required"),
            (
                &[
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "-x"),
                    ("CNI_IFNAME", "net1"),
                ],
                "CNI_CONTAINERID \"-x\"",
            ),
            (
                &[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1")],
                "CNI_IFNAME is required",
            ),
            (
                &[
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "c1"),
                    ("CNI_IFNAME", "a-very-long-ifname"),
                ],
                "1 to 15 bytes",
            ),
            (
                &[
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "c1"),
                    ("CNI_IFNAME", "net/1"),
                ],
                "must not contain",
            ),
            (
                &[
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "c1"),
                    ("CNI_IFNAME", "net1"),
                ],
                "CNI_NETNS is required",
            ),
            (
                &[
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "c1"),
                    ("CNI_IFNAME", "net1"),
                    ("CNI_NETNS", "/x"),
                    ("CNI_ARGS", "K8S_POD_NAME"),
                ],
                "not KEY=VALUE",
            ),
            (
                &[
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "c1"),
                    ("CNI_IFNAME", "net1"),
                    ("CNI_NETNS", "/x"),
                    ("CNI_ARGS", "K8S_POD_NAME=p"),
                ],
                "K8S_POD_NAMESPACE",
            ),
            (
                &[
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "c1"),
                    ("CNI_IFNAME", "net1"),
                    ("CNI_NETNS", "/x"),
                    (
                        "CNI_ARGS",
                        "K8S_POD_NAME=p;K8S_POD_NAMESPACE=n;K8S_POD_UID=a b",
                    ),
                ],
                "K8S_POD_UID \"a b\": must hold only",
            ),
        ];
        for (pairs, want) in cases {
            let err = env(pairs).unwrap_err();
            assert_eq!(err.code, code::INVALID_ENV, "{pairs:?}");
            assert!(
                err.msg.contains(want),
                "{pairs:?}: {:?} lacks {want:?}",
                err.msg
            );
        }
    }

    #[test]
    fn del_tolerates_a_missing_netns_and_status_needs_no_container() {
        env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "net1"),
            ("CNI_ARGS", POD_ARGS),
        ])
        .unwrap();
        env(&[("CNI_COMMAND", "STATUS")]).unwrap();
        env(&[("CNI_COMMAND", "GC")]).unwrap();
    }
}
