//! Host-side interface names: deterministic from (container id, interface name), so DEL, CHECK
//! and a restarted daemon find the same port without any stored state.

use crds::naming::fnv1a64;

/// The host end of the pod's veth: 12 hex digits of a hash and `_h` (14 bytes, within the
/// kernel's 15). 48 bits make a collision on one node vanishingly unlikely; the daemon still
/// refuses to reuse an existing interface that belongs to another attachment.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    format!(
        "{:012x}_h",
        fnv1a64(&[container_id, ifname]) & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_stable_and_distinct_per_interface() {
        let a = host_ifname("0123456789abcdef", "net1");
        assert_eq!(a, host_ifname("0123456789abcdef", "net1"));
        assert_ne!(a, host_ifname("0123456789abcdef", "net2"));
        // Pinned: changing the scheme would orphan ports of running pods across an upgrade.
        assert_eq!(
            host_ifname("c1", "net1"),
            format!("{:012x}_h", fnv1a64(&["c1", "net1"]) & 0xffff_ffff_ffff)
        );
        assert_ne!(host_ifname("ab", "c"), host_ifname("a", "bc"));
        // The value itself, computed outside Rust: moving the hash into crds kept it.
        assert_eq!(host_ifname("c1", "net1"), "eed53f7a1e9c_h");
    }

    proptest! {
        #[test]
        fn names_always_fit_the_kernel_limit(cid in "[a-z0-9]{1,80}", ifname in "[a-z0-9]{1,15}") {
            let h = host_ifname(&cid, &ifname);
            prop_assert!(h.len() <= 15);
        }
    }
}
