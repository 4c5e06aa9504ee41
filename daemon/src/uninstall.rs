//! What the daemon undoes on its node when Kube-OVN is uninstalled (not when it restarts).
//!
//! The daemon cannot tell an uninstall from a restart by the signal: both are a SIGTERM. It asks
//! the API server whether its DaemonSet still exists: `helm uninstall` deletes the DaemonSet
//! (and the release's RBAC) before the garbage collector stops its pods, while a rolling update,
//! a `kubectl delete pod` or a node drain leave it in place. Gone, being deleted, or our own
//! credentials refused (the release's ServiceAccount and roles are deleted with it): this is an
//! uninstall, and the node gets back what the install changed:
//! - the `kube-ovn` plugin binary in the CNI bin dir (the init container put it there);
//! - every attachment's OVS port and veth, as a DEL would remove them (the pods keep running
//!   on their primary network, without their kube-ovn interfaces);
//! - with `--iface` and the userspace datapath, the tunnel NIC's addresses and routes, put back
//!   on the NIC ([`crate::tunnel::release`]).

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;

/// Which DaemonSet the daemon belongs to, and what it installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The DaemonSet's namespace.
    pub namespace: String,
    /// The DaemonSet's name.
    pub name: String,
}

impl std::str::FromStr for Owner {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not <namespace>/<name>"))?;
        if namespace.is_empty() || name.is_empty() || name.contains('/') {
            return Err(format!("{s:?} is not <namespace>/<name>"));
        }
        Ok(Owner {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// What the API server says of the owner DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It exists and is not being deleted: a restart; undo nothing.
    Staying,
    /// It is gone or going (the reason, for the log).
    Uninstalled(String),
    /// The API server could not be asked (the reason): undo nothing.
    Unknown(String),
}

/// Asks whether `owner` is still installed.
pub async fn verdict(client: &kube::Client, owner: &Owner) -> Verdict {
    let api: kube::Api<DaemonSet> = kube::Api::namespaced(client.clone(), &owner.namespace);
    match api.get_opt(&owner.name).await {
        Ok(Some(ds)) if ds.metadata.deletion_timestamp.is_some() => Verdict::Uninstalled(format!(
            "DaemonSet {}/{} is being deleted",
            owner.namespace, owner.name
        )),
        Ok(Some(_)) => Verdict::Staying,
        Ok(None) => Verdict::Uninstalled(format!(
            "DaemonSet {}/{} is gone",
            owner.namespace, owner.name
        )),
        Err(kube::Error::Api(status)) if status.code == 401 || status.code == 403 => {
            Verdict::Uninstalled(format!(
                "the API server refuses our credentials ({}): the release's ServiceAccount or \
                 roles are gone",
                status.code
            ))
        }
        Err(e) => Verdict::Unknown(e.to_string()),
    }
}

/// The plugin binary the init container installed into `bin_dir`.
pub fn plugin_path(bin_dir: &Path) -> PathBuf {
    bin_dir.join("kube-ovn")
}

/// Removes the plugin binary from `bin_dir` (nothing when it is not there).
pub fn remove_plugin(bin_dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(plugin_path(bin_dir)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_namespace_slash_name() {
        let o: Owner = "kube-system/kube-ovn-cni".parse().unwrap();
        assert_eq!(o.namespace, "kube-system");
        assert_eq!(o.name, "kube-ovn-cni");
        for bad in ["", "kube-ovn-cni", "/x", "x/", "a/b/c"] {
            let err = bad.parse::<Owner>().unwrap_err();
            assert!(err.contains("<namespace>/<name>"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn removing_the_plugin_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(plugin_path(dir.path()), b"x").unwrap();
        std::fs::write(dir.path().join("bridge"), b"y").unwrap();
        assert!(remove_plugin(dir.path()).unwrap());
        assert!(!remove_plugin(dir.path()).unwrap());
        assert!(
            dir.path().join("bridge").exists(),
            "another plugin was touched"
        );
    }
}
