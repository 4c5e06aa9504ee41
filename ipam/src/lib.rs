//! Address and MAC allocation for Kube-OVN subnets.
//!
//! Pure logic: no async runtime, no Kubernetes client. The controller owns one allocator, feeds it
//! subnets and the records it reads from `IP` custom resources, and asks it for addresses by owner
//! key (`<pod>.<namespace>.<provider>`). Free and used space is kept as ranges, so memory grows
//! with the number of allocations, not with the size of a subnet.
//!
//! ```
//! use ipam::{Ipam, Request, SubnetSpec};
//!
//! let mut ipam = Ipam::new();
//! ipam.update_subnet(
//!     SubnetSpec::new("net1", "10.16.0.0/16,fd00:10:16::/64").with_excludes(["10.16.0.2..10.16.0.9"]),
//! )?;
//! let lease = ipam.allocate("net1", "pod1.default.net1.default.ovn", &Request::random())?;
//! assert!(lease.v4.is_some() && lease.v6.is_some() && lease.mac.is_some());
//! // Idempotent: the same key gets the same lease back.
//! assert_eq!(ipam.allocate("net1", "pod1.default.net1.default.ovn", &Request::random())?, lease);
//! let fixed = ipam.allocate("net1", "pod2.default.net1.default.ovn", &Request::random().with_ips(["10.16.0.10/16".parse()?]))?;
//! assert_eq!(fixed.v4, Some("10.16.0.10".parse()?));
//! assert_eq!(ipam.counters("net1")?.v4_using, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layout of the crate: [`SubnetSpec`] and [`PoolSpec`] are validated into per-family layouts
//! (CIDR, gateway, network/broadcast, excludes, pools); each family is split into zones (the
//! subnet outside all pools, and one zone per pool) whose free space is an order-statistic tree
//! of ranges (`u32` points for IPv4, `u128` for IPv6); every lease is a 40-byte slot of one slab,
//! with the owner keys in one string arena, and the key, address and MAC indexes map to slot
//! numbers, so nothing is allocated per lease; [`Ipam`] ties them together; [`SharedIpam`]
//! puts it behind a mutex.
//!
//! A [`Request`] holds typed values only ([`IpRequest`], [`MacAddr`], [`IpList`]); the text
//! forms users write (the `ip_address`, `mac_address` and `ip_pool` annotations) are parsed at the
//! caller's edge by [`parse_ips`], [`parse_mac`] and [`Request::with_ip_pool`], whose errors name
//! the owner key like every other error here. The `ip_pool` annotation has two forms upstream:
//! an `IPPool` name ([`Request::in_pool`]) or a list of addresses ([`Request::in_ip_list`]);
//! [`Request::with_ip_pool`] tells them apart as upstream does.

mod addr;
mod error;
mod index;
mod ipam;
mod layout;
mod leases;
mod range_tree;
mod request;
mod rng;
mod shared;
mod subnet;

/// Hash map for per-lease data: foldhash is several times faster than SipHash on short keys and
/// is seeded per process, so owner keys chosen by users cannot be crafted to collide offline.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use addr::{Family, MacAddr, ParseMacError};
pub use error::Error;
pub use ipam::{Counters, Ipam, Lease, RebuildReport, Record, SubnetInfo};
pub use layout::{PoolSpec, SubnetSpec};
pub use request::{
    IpList, IpRequest, MacRequest, ParseIpRequestError, Policy, Request, parse_ips, parse_mac,
};
pub use shared::SharedIpam;
