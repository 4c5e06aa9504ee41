//! The gateway pod's one privileged step (`kube-ovn-daemon nat-gateway-sysctls`, its init
//! container): IPv4 forwarding on and strict reverse-path filtering (1) made loose (2) on every
//! interface of the pod's namespace, written under `/proc/sys/net/ipv4`. A container that is
//! not privileged sees `/proc/sys` read-only, so the long-running agent (NET_ADMIN and NET_RAW
//! only) finds these already as it wants them and writes nothing ([`apply`](super::apply)
//! writes only what differs). Why loose and not off: see the agent's forwarding step.

use std::path::Path;

/// Sets forwarding and loosens strict reverse-path filtering under `ipv4` (normally
/// `/proc/sys/net/ipv4`); returns what changed, as `path=value`.
pub fn prepare(ipv4: &Path) -> std::io::Result<Vec<String>> {
    let mut changed = Vec::new();
    let mut set = |path: &Path, want: &str, only_from: Option<&str>| -> std::io::Result<()> {
        let have = std::fs::read_to_string(path)?;
        let have = have.trim();
        let change = match only_from {
            Some(from) => have == from,
            None => have != want,
        };
        if change {
            std::fs::write(path, want)?;
            changed.push(format!("{}={want}", path.display()));
        }
        Ok(())
    };
    set(&ipv4.join("ip_forward"), "1", None)?;
    let mut interfaces: Vec<_> = std::fs::read_dir(ipv4.join("conf"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    // `all` and `default` first (names sort before interfaces only by luck; be explicit).
    interfaces.sort_by_key(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        (!matches!(name, "all" | "default"), p.clone())
    });
    for dir in interfaces {
        let path = dir.join("rp_filter");
        if path.exists() {
            set(&path, "2", Some("1"))?;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_on_and_only_strict_filtering_loosened() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ipv4 = dir.path();
        let write = |rel: &str, v: &str| {
            let p = ipv4.join(rel);
            std::fs::create_dir_all(p.parent().unwrap_or(ipv4)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p, v).unwrap_or_else(|e| panic!("{e}"));
        };
        write("ip_forward", "0\n");
        write("conf/all/rp_filter", "1\n");
        write("conf/default/rp_filter", "0\n");
        write("conf/net1/rp_filter", "1\n");
        write("conf/net2/rp_filter", "2\n");
        let changed = prepare(ipv4).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(changed.len(), 3, "{changed:?}");
        let read = |rel: &str| std::fs::read_to_string(ipv4.join(rel)).unwrap_or_default();
        assert_eq!(read("ip_forward").trim(), "1");
        assert_eq!(read("conf/all/rp_filter").trim(), "2");
        assert_eq!(read("conf/default/rp_filter").trim(), "0");
        assert_eq!(read("conf/net1/rp_filter").trim(), "2");
        assert_eq!(read("conf/net2/rp_filter").trim(), "2");
        // Idempotent: nothing left to change.
        assert!(prepare(ipv4).unwrap_or_else(|e| panic!("{e}")).is_empty());
    }
}
