//! Table tests: one or more cases for every rule of the allocator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed assertion is the report.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use ipam::{
    Counters, Error, Family, IpList, IpRequest, Ipam, MacAddr, PoolSpec, Record, Request,
    SharedIpam, SubnetSpec,
};

/// Static addresses as the controller parses an `ip_address` annotation (valid text only).
fn ips(text: impl AsRef<str>) -> Vec<IpRequest> {
    ipam::parse_ips("", text.as_ref()).unwrap()
}

/// A MAC as the controller parses a `mac_address` annotation (valid text only).
fn mac(text: impl AsRef<str>) -> MacAddr {
    ipam::parse_mac("", text.as_ref()).unwrap()
}

/// An `ip_pool` list of addresses, parsed (valid text only).
fn list(text: impl AsRef<str>) -> IpList {
    IpList::parse("", text.as_ref()).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Values comma-joined, as the `cidr` and `gateway` annotations carry them.
fn joined<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn ipam_with(spec: SubnetSpec) -> Ipam {
    let mut ipam = Ipam::with_seed(1);
    ipam.update_subnet(spec).unwrap();
    ipam
}

/// Allocates sequentially until the subnet is full; returns every v4 and v6 address handed out.
fn fill(ipam: &mut Ipam, subnet: &str, request: &Request) -> (Vec<IpAddr>, Error) {
    let mut out = Vec::new();
    for i in 0.. {
        match ipam.allocate(subnet, &format!("fill{i}"), request) {
            Ok(lease) => out.extend(lease.ips()),
            Err(e) => return (out, e),
        }
    }
    unreachable!()
}

#[test]
fn network_broadcast_and_gateway_are_never_handed_out() {
    // (cidr, gateway, expected allocatable addresses)
    let cases: &[(&str, Option<&str>, &[&str])] = &[
        (
            "10.0.0.0/29",
            None,
            &["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
        ),
        (
            "10.0.0.0/29",
            Some("10.0.0.6"),
            &["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"],
        ),
        ("10.0.0.0/30", None, &["10.0.0.2"]),
        // Point-to-point /31: both addresses are hosts; the first is the gateway.
        ("10.0.0.0/31", None, &["10.0.0.1"]),
        ("10.0.0.0/32", None, &[]),
        ("fd00::/126", None, &["fd00::2", "fd00::3"]),
        ("fd00::/127", None, &["fd00::1"]),
    ];
    for &(cidr, gateway, expected) in cases {
        let mut spec = SubnetSpec::new("s", cidr);
        spec.gateway = gateway.map(str::to_owned);
        for policy in [Request::sequential(), Request::random()] {
            let mut ipam = ipam_with(spec.clone());
            let (mut got, err) = fill(&mut ipam, "s", &policy);
            got.sort();
            let expected: Vec<IpAddr> = expected.iter().map(|s| ip(s)).collect();
            assert_eq!(got, expected, "{cidr} gateway {gateway:?}");
            assert!(matches!(err, Error::SubnetFull { .. }), "{err}");
        }
    }
}

#[test]
fn dual_stack_returns_one_address_per_family() {
    let mut ipam = ipam_with(SubnetSpec::new("d", "10.16.0.0/16,fd00:10:16::/64"));
    let lease = ipam.allocate("d", "a.ns.p", &Request::random()).unwrap();
    let (a4, a6) = (lease.v4.unwrap(), lease.v6.unwrap());
    assert!(
        "10.16.0.0/16"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&a4)
    );
    assert!(
        "fd00:10:16::/64"
            .parse::<ipnet::Ipv6Net>()
            .unwrap()
            .contains(&a6)
    );
    assert_eq!(lease.ip_address(), format!("{a4},{a6}"));
    let info = ipam.subnet_info("d").unwrap();
    assert_eq!(joined(&info.cidrs), "10.16.0.0/16,fd00:10:16::/64");
    assert_eq!(joined(&info.gateways), "10.16.0.1,fd00:10:16::1");
    let c = ipam.counters("d").unwrap();
    assert_eq!(
        c,
        Counters {
            v4_using: 1,
            v4_available: 65536 - 3 - 1,
            v6_using: 1,
            v6_available: (1u128 << 64) - 2 - 1,
        }
    );
}

#[test]
fn big_subnets_need_no_per_address_memory() {
    let mut ipam =
        ipam_with(SubnetSpec::new("big", "10.0.0.0/8,fd00::/48").with_excludes(["10.1.0.0/16"]));
    for i in 0..1000 {
        ipam.allocate("big", &format!("k{i}"), &Request::random())
            .unwrap();
    }
    let c = ipam.counters("big").unwrap();
    assert_eq!(c.v4_available, (1 << 24) - 3 - 65536 - 1000);
    assert_eq!(c.v6_available, (1u128 << 80) - 2 - 1000);
    // One free range per allocation at most (plus the exclude's gap), not per address.
    assert!(ipam.free_range_count("big").unwrap() <= 2 * 1000 + 4);
}

#[test]
fn excludes_accept_addresses_ranges_and_cidrs() {
    let spec = SubnetSpec::new("s", "10.0.0.0/28").with_excludes([
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.4..10.0.0.6",
        "10.0.0.8/30",
    ]);
    let mut ipam = ipam_with(spec);
    let (mut got, _) = fill(&mut ipam, "s", &Request::random());
    got.sort();
    let expected: Vec<IpAddr> = [
        "10.0.0.3",
        "10.0.0.7",
        "10.0.0.12",
        "10.0.0.13",
        "10.0.0.14",
    ]
    .iter()
    .map(|s| ip(s))
    .collect();
    assert_eq!(got, expected);
    for (address, want_excluded) in [("10.0.0.5", true), ("10.0.0.9", true), ("10.0.0.1", false)] {
        let err = ipam
            .allocate("s", "static", &Request::random().with_ips(ips(address)))
            .unwrap_err();
        if want_excluded {
            assert!(matches!(err, Error::Excluded { .. }), "{address}: {err}");
        } else {
            assert!(matches!(err, Error::Gateway { .. }), "{address}: {err}");
        }
    }
}

#[test]
fn invalid_subnet_specs_name_the_offending_entry() {
    type Check = fn(&Error) -> bool;
    type Case<'a> = (&'a str, Option<&'a str>, &'a [&'a str], &'a str, Check);
    let cases: &[Case<'_>] = &[
        ("10.0.0.1/24", None, &[], "10.0.0.1/24", |e| {
            matches!(e, Error::InvalidCidr { .. })
        }),
        ("", None, &[], "cidrBlock", |e| {
            matches!(e, Error::InvalidCidr { .. })
        }),
        ("10.0.0.0/24,10.1.0.0/24", None, &[], "10.1.0.0/24", |e| {
            matches!(e, Error::InvalidCidr { .. })
        }),
        ("banana", None, &[], "banana", |e| {
            matches!(e, Error::InvalidCidr { .. })
        }),
        ("10.0.0.0/24", Some("10.0.1.1"), &[], "10.0.1.1", |e| {
            matches!(e, Error::InvalidGateway { .. })
        }),
        ("10.0.0.0/24", Some("10.0.0.0"), &[], "network", |e| {
            matches!(e, Error::InvalidGateway { .. })
        }),
        ("10.0.0.0/24", Some("10.0.0.255"), &[], "broadcast", |e| {
            matches!(e, Error::InvalidGateway { .. })
        }),
        ("10.0.0.0/24", Some("fd00::1"), &[], "fd00::1", |e| {
            matches!(e, Error::InvalidGateway { .. })
        }),
        ("10.0.0.0/24", None, &["10.0.0.300"], "10.0.0.300", |e| {
            matches!(e, Error::InvalidExclude { .. })
        }),
        (
            "10.0.0.0/24",
            None,
            &["10.0.0.9..10.0.0.3"],
            "10.0.0.9..10.0.0.3",
            |e| matches!(e, Error::InvalidExclude { .. }),
        ),
        ("10.0.0.0/24", None, &["10.0.1.5"], "10.0.1.5", |e| {
            matches!(e, Error::InvalidExclude { .. })
        }),
        ("10.0.0.0/24", None, &["10.0.0.0/23"], "10.0.0.0/23", |e| {
            matches!(e, Error::InvalidExclude { .. })
        }),
        ("10.0.0.0/24", None, &["fd00::5"], "fd00::5", |e| {
            matches!(e, Error::InvalidExclude { .. })
        }),
        (
            "10.0.0.0/24",
            None,
            &["10.0.0.2..10.0.0.9", "10.0.0.9"],
            "10.0.0.9",
            |e| matches!(e, Error::OverlappingExcludes { .. }),
        ),
        (
            "10.0.0.0/24",
            None,
            &["10.0.0.0/28", "10.0.0.3..10.0.0.20"],
            "10.0.0.3..10.0.0.20",
            |e| matches!(e, Error::OverlappingExcludes { .. }),
        ),
    ];
    for &(cidr, gateway, excludes, needle, check) in cases {
        let mut spec = SubnetSpec::new("bad", cidr).with_excludes(excludes.iter().copied());
        spec.gateway = gateway.map(str::to_owned);
        let err = Ipam::new().update_subnet(spec).unwrap_err();
        assert!(check(&err), "{cidr} {gateway:?} {excludes:?}: {err}");
        let message = err.to_string();
        assert!(
            message.contains(needle) && message.contains("bad"),
            "{message}"
        );
    }
    // The gateway and the network address may be excluded explicitly (upstream's default
    // subnets do): that is not an overlap.
    let spec = SubnetSpec::new("ok", "10.0.0.0/24").with_excludes(["10.0.0.0..10.0.0.1"]);
    Ipam::new().update_subnet(spec).unwrap();
}

#[test]
fn static_requests() {
    type Check = fn(&Result<ipam::Lease, Error>) -> bool;
    let cases: &[(&str, Check)] = &[
        ("10.0.0.5", |r| {
            r.as_ref().is_ok_and(|l| l.v4 == Some(v4("10.0.0.5")))
        }),
        ("10.0.0.6/24", |r| {
            r.as_ref().is_ok_and(|l| l.v4 == Some(v4("10.0.0.6")))
        }),
        (" 10.0.0.7/24 , ", |r| {
            r.as_ref().is_ok_and(|l| l.v4 == Some(v4("10.0.0.7")))
        }),
        ("10.0.0.5/16", |r| {
            matches!(r, Err(Error::PrefixMismatch { prefix: 16, .. }))
        }),
        ("10.0.0.5/33", |r| {
            matches!(r, Err(Error::InvalidAddress { .. }))
        }),
        ("10.0.1.5", |r| {
            matches!(r, Err(Error::OutsideSubnet { .. }))
        }),
        ("10.0.0.1", |r| matches!(r, Err(Error::Gateway { .. }))),
        ("10.0.0.0", |r| {
            matches!(
                r,
                Err(Error::Reserved {
                    what: "network",
                    ..
                })
            )
        }),
        ("10.0.0.255", |r| {
            matches!(
                r,
                Err(Error::Reserved {
                    what: "broadcast",
                    ..
                })
            )
        }),
        ("10.0.0.20", |r| matches!(r, Err(Error::Excluded { .. }))),
        (
            "10.0.0.9",
            |r| matches!(r, Err(Error::AddressInUse { owner, .. }) if owner == "holder"),
        ),
        ("10.0.0.5,10.0.0.6", |r| {
            matches!(r, Err(Error::DuplicateFamily { .. }))
        }),
        ("fd00::5", |r| {
            matches!(r, Err(Error::FamilyNotInSubnet { .. }))
        }),
        ("ten.zero", |r| {
            matches!(r, Err(Error::InvalidAddress { .. }))
        }),
    ];
    for &(input, check) in cases {
        let spec = SubnetSpec::new("s", "10.0.0.0/24").with_excludes(["10.0.0.20"]);
        let mut ipam = ipam_with(spec);
        ipam.allocate("s", "holder", &Request::random().with_ips(ips("10.0.0.9")))
            .unwrap();
        let before = ipam.clone();
        let result = ipam::parse_ips("key1", input)
            .and_then(|ips| ipam.allocate("s", "key1", &Request::random().with_ips(ips)));
        assert!(check(&result), "{input}: {result:?}");
        match result {
            Ok(lease) => assert_eq!(
                ipam.owner_of("s", IpAddr::V4(lease.v4.unwrap())),
                Some("key1")
            ),
            Err(err) => {
                // Errors change nothing and carry the key (and the address where there is one).
                assert_eq!(ipam, before, "{input}");
                assert!(err.to_string().contains("key1"), "{err}");
            }
        }
    }
}

#[test]
fn errors_carry_key_and_address() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/24").with_excludes(["10.0.0.20"]));
    ipam.allocate(
        "s",
        "holder.ns.p",
        &Request::random().with_ips(ips("10.0.0.9")),
    )
    .unwrap();
    for (input, needles) in [
        (
            "10.0.0.9",
            &["pod.ns.p", "10.0.0.9", "holder.ns.p", "s"][..],
        ),
        ("10.0.0.20", &["pod.ns.p", "10.0.0.20", "excluded"][..]),
        ("10.0.1.1", &["pod.ns.p", "10.0.1.1", "10.0.0.0/24"][..]),
    ] {
        let msg = ipam
            .allocate("s", "pod.ns.p", &Request::random().with_ips(ips(input)))
            .unwrap_err()
            .to_string();
        for needle in needles {
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        }
    }
}

#[test]
fn allocation_is_idempotent_per_key() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/24,fd00::/64"));
    ipam.update_subnet(SubnetSpec::new("t", "10.1.0.0/24"))
        .unwrap();
    let first = ipam.allocate("s", "k", &Request::random()).unwrap();
    assert_eq!(ipam.allocate("s", "k", &Request::random()).unwrap(), first);
    assert_eq!(
        ipam.allocate("s", "k", &Request::sequential()).unwrap(),
        first
    );
    let same_static = Request::random().with_ips(ips(first.ip_address()));
    assert_eq!(ipam.allocate("s", "k", &same_static).unwrap(), first);
    let same_mac = Request::random().with_mac(first.mac.unwrap());
    assert_eq!(ipam.allocate("s", "k", &same_mac).unwrap(), first);
    assert_eq!(ipam.counters("s").unwrap().v4_using, 1);

    let other = if first.v4 == Some(v4("10.0.0.77")) {
        "10.0.0.78"
    } else {
        "10.0.0.77"
    };
    let err = ipam
        .allocate("s", "k", &Request::random().with_ips(ips(other)))
        .unwrap_err();
    assert!(matches!(err, Error::AllocationMismatch { .. }), "{err}");
    let err = ipam
        .allocate(
            "s",
            "k",
            &Request::random().with_mac(mac("0a:00:00:00:00:01")),
        )
        .unwrap_err();
    assert!(matches!(err, Error::AllocationMismatch { .. }), "{err}");
    let err = ipam.allocate("t", "k", &Request::random()).unwrap_err();
    assert!(matches!(err, Error::KeyInOtherSubnet { .. }), "{err}");
    assert_eq!(ipam.get("k"), Some(first));
}

#[test]
fn release_makes_addresses_reusable() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/29"));
    let (got, _) = fill(&mut ipam, "s", &Request::random());
    assert_eq!(got.len(), 5);
    let released = ipam.release("fill2").unwrap();
    assert_eq!(ipam.release("fill2"), None, "release is idempotent");
    assert_eq!(ipam.release("never"), None);
    let again = ipam.allocate("s", "new", &Request::random()).unwrap();
    assert_eq!(again.v4, released.v4);
    ipam.release("new");
    let fixed = ipam
        .allocate(
            "s",
            "static",
            &Request::random().with_ips(ips(released.ip_address())),
        )
        .unwrap();
    assert_eq!(fixed.v4, released.v4);
    assert_eq!(ipam.counters("s").unwrap().v4_available, 0);
}

#[test]
fn sequential_policy_walks_forward_and_wraps() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/29"));
    let seq = Request::sequential();
    let picks: Vec<_> = (0..3)
        .map(|i| {
            ipam.allocate("s", &format!("k{i}"), &seq)
                .unwrap()
                .v4
                .unwrap()
        })
        .collect();
    assert_eq!(picks, [v4("10.0.0.2"), v4("10.0.0.3"), v4("10.0.0.4")]);
    ipam.release("k0");
    // A just-released address is not reused at once...
    assert_eq!(
        ipam.allocate("s", "k3", &seq).unwrap().v4,
        Some(v4("10.0.0.5"))
    );
    assert_eq!(
        ipam.allocate("s", "k4", &seq).unwrap().v4,
        Some(v4("10.0.0.6"))
    );
    // ...but after the end the walk wraps to it.
    assert_eq!(
        ipam.allocate("s", "k5", &seq).unwrap().v4,
        Some(v4("10.0.0.2"))
    );
    assert!(matches!(
        ipam.allocate("s", "k6", &seq),
        Err(Error::SubnetFull { .. })
    ));
}

#[test]
fn random_policy_spreads_over_free_space() {
    let mut ipam =
        ipam_with(SubnetSpec::new("s", "10.0.0.0/28").with_excludes(["10.0.0.8..10.0.0.10"]));
    let mut seen: HashMap<Ipv4Addr, u32> = HashMap::new();
    let trials = 20_000;
    for _ in 0..trials {
        let lease = ipam.allocate("s", "k", &Request::random()).unwrap();
        *seen.entry(lease.v4.unwrap()).or_default() += 1;
        ipam.release("k");
    }
    // 16 - network - broadcast - gateway - 3 excluded = 10 candidates, each ~2000 times.
    assert_eq!(seen.len(), 10, "{seen:?}");
    for (address, count) in &seen {
        assert!(
            (1600..2400).contains(count),
            "{address}: {count} of {trials}"
        );
    }
}

#[test]
fn macs_are_unique_local_unicast_or_validated_static() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/24"));
    ipam.update_subnet(SubnetSpec::new("t", "10.1.0.0/24"))
        .unwrap();
    let mut macs = HashSet::new();
    for i in 0..200 {
        let mac = ipam
            .allocate("s", &format!("r{i}"), &Request::random())
            .unwrap()
            .mac
            .unwrap();
        assert_eq!(mac.0[0] & 0x03, 0x02, "locally administered unicast: {mac}");
        assert!(macs.insert(mac));
    }
    let fixed = ipam
        .allocate(
            "s",
            "m1",
            &Request::random().with_mac(mac("00:16:3E:00:00:01")),
        )
        .unwrap();
    assert_eq!(fixed.mac, Some(MacAddr([0x00, 0x16, 0x3e, 0, 0, 1])));
    type Check = fn(&Error) -> bool;
    let cases: &[(&str, Check)] = &[
        (
            "00:16:3e:00:00:01",
            |e| matches!(e, Error::MacInUse { owner, .. } if owner == "m1"),
        ),
        ("01:00:5e:00:00:01", |e| {
            matches!(e, Error::InvalidMac { .. })
        }),
        ("00:00:00:00:00:00", |e| {
            matches!(e, Error::InvalidMac { .. })
        }),
        ("00:16:3e:00:00", |e| matches!(e, Error::InvalidMac { .. })),
        ("zz:16:3e:00:00:01", |e| {
            matches!(e, Error::InvalidMac { .. })
        }),
    ];
    for &(mac, check) in cases {
        let before = ipam.clone();
        let err = ipam::parse_mac("m2", mac)
            .and_then(|mac| ipam.allocate("s", "m2", &Request::random().with_mac(mac)))
            .unwrap_err();
        assert!(check(&err), "{mac}: {err}");
        assert!(err.to_string().contains("m2"), "{err}");
        assert_eq!(ipam, before);
    }
    // Unique per subnet, not globally.
    let t = ipam
        .allocate(
            "t",
            "m3",
            &Request::random().with_mac(mac("00:16:3e:00:00:01")),
        )
        .unwrap();
    assert_eq!(t.mac, fixed.mac);
    // A released MAC is free again; IPAM-only attachments can ask for none.
    ipam.release("m1");
    ipam.allocate(
        "s",
        "m4",
        &Request::random().with_mac(mac("00:16:3e:00:00:01")),
    )
    .unwrap();
    assert_eq!(
        ipam.allocate("s", "m5", &Request::random().without_mac())
            .unwrap()
            .mac,
        None
    );
}

fn pooled() -> Ipam {
    let mut ipam =
        ipam_with(SubnetSpec::new("s", "10.0.0.0/28,fd00::/124").with_excludes(["10.0.0.3"]));
    ipam.set_pool(
        "s",
        PoolSpec::new("p", ["10.0.0.2..10.0.0.5", "192.168.9.0/24"]),
    )
    .unwrap();
    ipam
}

#[test]
fn pools_hand_out_only_their_addresses_and_keep_them_from_others() {
    let mut ipam = pooled();
    // Pool: .2 .4 .5 (.3 is excluded: a pool inherits the subnet's reserved addresses).
    let (mut got, err) = fill(&mut ipam, "s", &Request::random().in_pool("p"));
    got.retain(IpAddr::is_ipv4);
    got.sort();
    assert_eq!(got, vec![ip("10.0.0.2"), ip("10.0.0.4"), ip("10.0.0.5")]);
    assert!(
        matches!(
            err,
            Error::PoolExhausted {
                family: Family::V4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(ipam.pool_counters("s", "p").unwrap().v4_using, 3);
    assert_eq!(ipam.pool_counters("s", "p").unwrap().v4_available, 0);

    let mut ipam = pooled();
    // Outside the pool: .6 .. .14 = 9 addresses, and never a pool address.
    let (got, err) = fill(&mut ipam, "s", &Request::random());
    let got4: HashSet<IpAddr> = got.into_iter().filter(IpAddr::is_ipv4).collect();
    assert_eq!(got4, (6..=14).map(|i| ip(&format!("10.0.0.{i}"))).collect());
    assert!(
        matches!(
            err,
            Error::SubnetFull {
                family: Family::V4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(ipam.pool_counters("s", "p").unwrap().v4_available, 3);
    assert_eq!(ipam.counters("s").unwrap().v4_available, 3);
}

#[test]
fn pool_rules() {
    let mut ipam = pooled();
    let in_pool = Request::random().in_pool("p");
    let err = ipam
        .allocate("s", "a", &in_pool.clone().with_ips(ips("10.0.0.9")))
        .unwrap_err();
    assert!(matches!(err, Error::NotInPool { .. }), "{err}");
    let lease = ipam
        .allocate("s", "a", &in_pool.clone().with_ips(ips("10.0.0.4")))
        .unwrap();
    assert_eq!(lease.v4, Some(v4("10.0.0.4")));
    // The pool has no IPv6 entries: the IPv6 address comes from the rest of the subnet.
    assert!(lease.v6.is_some());
    // A static request outside any pool may name a pool address explicitly.
    let err = ipam
        .allocate("s", "b", &Request::random().with_ips(ips("10.0.0.4")))
        .unwrap_err();
    assert!(matches!(err, Error::AddressInUse { .. }), "{err}");
    ipam.allocate("s", "b", &Request::random().with_ips(ips("10.0.0.5")))
        .unwrap();
    let err = ipam
        .allocate("s", "c", &Request::random().in_pool("nope"))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownPool { .. }), "{err}");
    // Idempotence checks the pool too.
    let plain = ipam.allocate("s", "d", &Request::random()).unwrap();
    let err = ipam.allocate("s", "d", &in_pool).unwrap_err();
    assert!(matches!(err, Error::AllocationMismatch { .. }), "{err}");
    assert_eq!(ipam.allocate("s", "d", &Request::random()).unwrap(), plain);

    // Two pools of one subnet may not overlap; a bad entry is named.
    let err = ipam
        .set_pool("s", PoolSpec::new("q", ["10.0.0.5..10.0.0.7"]))
        .unwrap_err();
    assert!(matches!(err, Error::OverlappingPools { .. }), "{err}");
    assert!(err.to_string().contains("10.0.0.5..10.0.0.7"), "{err}");
    let err = ipam
        .set_pool("s", PoolSpec::new("q", ["10.0.0.x"]))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPoolEntry { .. }), "{err}");
    assert!(matches!(
        ipam.set_pool("nosuch", PoolSpec::new("q", ["10.0.0.9"])),
        Err(Error::UnknownSubnet { .. })
    ));
    // A pool wholly outside the subnet has no addresses: pool requests fail, never fall back.
    ipam.set_pool("s", PoolSpec::new("far", ["192.168.0.0/24"]))
        .unwrap();
    let err = ipam
        .allocate("s", "e", &Request::random().in_pool("far"))
        .unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err}");

    // Removing a pool keeps its allocations; its free addresses join the subnet.
    let before = ipam.counters("s").unwrap();
    ipam.remove_pool("s", "p").unwrap();
    assert_eq!(ipam.counters("s").unwrap(), before);
    assert_eq!(ipam.get("a").unwrap().v4, Some(v4("10.0.0.4")));
    assert!(matches!(
        ipam.pool_counters("s", "p"),
        Err(Error::UnknownPool { .. })
    ));
    assert!(matches!(
        ipam.remove_pool("s", "p"),
        Err(Error::UnknownPool { .. })
    ));
}

#[test]
fn subnet_changes_keep_allocations_and_refuse_orphans() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/24"));
    ipam.allocate("s", "a", &Request::random().with_ips(ips("10.0.0.200")))
        .unwrap();
    ipam.allocate("s", "b", &Request::random().with_ips(ips("10.0.0.10")))
        .unwrap();

    // Expansion keeps both.
    ipam.update_subnet(SubnetSpec::new("s", "10.0.0.0/23"))
        .unwrap();
    assert_eq!(ipam.get("a").unwrap().v4, Some(v4("10.0.0.200")));
    assert_eq!(ipam.counters("s").unwrap().v4_available, 512 - 3 - 2);

    // Shrinking that would orphan "a" is refused and changes nothing.
    let before = ipam.clone();
    let err = ipam
        .update_subnet(SubnetSpec::new("s", "10.0.0.0/25"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::WouldOrphan { key, .. } if key == "a"),
        "{err}"
    );
    assert!(err.to_string().contains("10.0.0.200"), "{err}");
    assert_eq!(ipam, before);
    // So is moving the gateway, or the broadcast address, onto an allocation.
    let err = ipam
        .update_subnet(SubnetSpec::new("s", "10.0.0.0/23").with_gateway("10.0.0.10"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::WouldOrphan { key, .. } if key == "b"),
        "{err}"
    );
    ipam.allocate("s", "z", &Request::random().with_ips(ips("10.0.0.255")))
        .unwrap();
    let err = ipam
        .update_subnet(SubnetSpec::new("s", "10.0.0.0/24"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::WouldOrphan { key, reason, .. } if key == "z" && reason.contains("broadcast")),
        "{err}"
    );
    ipam.release("z");

    // Excluding an allocated address keeps it with its owner; once released it stays out.
    ipam.update_subnet(SubnetSpec::new("s", "10.0.0.0/23").with_excludes(["10.0.0.0/25"]))
        .unwrap();
    assert_eq!(ipam.get("b").unwrap().v4, Some(v4("10.0.0.10")));
    assert_eq!(ipam.counters("s").unwrap().v4_using, 2);
    ipam.release("b");
    let err = ipam
        .allocate("s", "c", &Request::random().with_ips(ips("10.0.0.10")))
        .unwrap_err();
    assert!(matches!(err, Error::Excluded { .. }), "{err}");
    assert_eq!(ipam.counters("s").unwrap().v4_available, 512 - 128 - 1 - 1);

    // Becoming dual stack: an existing key gets its IPv6 address on its next allocate.
    ipam.update_subnet(SubnetSpec::new("s", "10.0.0.0/23,fd00::/120"))
        .unwrap();
    assert_eq!(ipam.get("a").unwrap().v6, None);
    let lease = ipam.allocate("s", "a", &Request::random()).unwrap();
    assert_eq!(lease.v4, Some(v4("10.0.0.200")));
    assert!(lease.v6.is_some());
    // And dropping the family again would orphan that address.
    let err = ipam
        .update_subnet(SubnetSpec::new("s", "10.0.0.0/23"))
        .unwrap_err();
    assert!(matches!(err, Error::WouldOrphan { .. }), "{err}");

    // A subnet with allocations cannot be removed; an empty one can.
    assert!(matches!(
        ipam.remove_subnet("s"),
        Err(Error::SubnetInUse { count: 1, .. })
    ));
    ipam.release("a");
    ipam.remove_subnet("s").unwrap();
    assert!(matches!(
        ipam.counters("s"),
        Err(Error::UnknownSubnet { .. })
    ));
    assert!(matches!(
        ipam.allocate("s", "a", &Request::random()),
        Err(Error::UnknownSubnet { .. })
    ));
}

#[test]
fn counters_follow_the_subnet_status() {
    let mut ipam = ipam_with(
        SubnetSpec::new("s", "10.0.0.0/24,fd00::/120")
            .with_excludes(["10.0.0.2..10.0.0.11", "fd00::10/124"]),
    );
    assert_eq!(
        ipam.counters("s").unwrap(),
        Counters {
            v4_using: 0,
            v4_available: 253 - 10,
            v6_using: 0,
            v6_available: 254 - 16
        }
    );
    for i in 0..5 {
        ipam.allocate("s", &format!("k{i}"), &Request::random())
            .unwrap();
    }
    ipam.release("k0");
    assert_eq!(
        ipam.counters("s").unwrap(),
        Counters {
            v4_using: 4,
            v4_available: 239,
            v6_using: 4,
            v6_available: 234
        }
    );
}

fn rec(key: &str, subnet: &str, ips: &[&str], mac: Option<&str>) -> Record {
    Record {
        key: key.into(),
        subnet: subnet.into(),
        ips: ips.iter().map(|s| ip(s)).collect(),
        mac: mac.map(|m| m.parse().unwrap()),
    }
}

#[test]
fn rebuild_restores_state_and_reports_bad_records() {
    let mut ipam =
        ipam_with(SubnetSpec::new("s", "10.0.0.0/24,fd00::/120").with_excludes(["10.0.0.50"]));
    ipam.set_pool("s", PoolSpec::new("p", ["10.0.0.100..10.0.0.110"]))
        .unwrap();
    let records = vec![
        rec(
            "a",
            "s",
            &["10.0.0.5", "fd00::5"],
            Some("0a:00:00:00:00:01"),
        ),
        rec("b", "s", &["10.0.0.101"], None),
        rec("a", "s", &["10.0.0.6"], None), // duplicate key
        rec("c", "s", &["10.0.0.5"], None), // duplicate address
        rec("d", "s", &["10.0.0.7"], Some("0a:00:00:00:00:01")), // duplicate MAC
        rec("e", "nosuch", &["10.0.0.8"], None), // unknown subnet
        rec("f", "s", &["10.0.1.8"], None), // outside
        rec("g", "s", &["10.0.0.1"], None), // gateway
        rec("h", "s", &["10.0.0.9", "10.0.0.10"], None), // two IPv4
        rec("i", "s", &["10.0.0.50"], None), // excluded after allocation: kept
    ];
    let report = ipam.rebuild(records);
    assert_eq!(report.loaded, 3);
    let kinds: Vec<&str> = report
        .rejected
        .iter()
        .map(|e| match e {
            Error::DuplicateKey { .. } => "key",
            Error::AddressInUse { .. } => "address",
            Error::MacInUse { .. } => "mac",
            Error::UnknownSubnet { .. } => "subnet",
            Error::OutsideSubnet { .. } => "outside",
            Error::Gateway { .. } => "gateway",
            Error::DuplicateFamily { .. } => "family",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "key", "address", "mac", "subnet", "outside", "gateway", "family"
        ]
    );
    assert!(report.rejected[1].to_string().contains("10.0.0.5"));
    assert_eq!(ipam.owner_of("s", ip("10.0.0.5")), Some("a"));
    assert_eq!(ipam.owner_of("s", ip("fd00::5")), Some("a"));
    let c = ipam.counters("s").unwrap();
    assert_eq!((c.v4_using, c.v6_using), (3, 1));
    assert_eq!(c.v4_available, 253 - 1 - 3 + 1); // .50 is counted in use, not available
    assert_eq!(ipam.pool_counters("s", "p").unwrap().v4_using, 1);
    // A rebuilt allocator refuses what it holds, and hands out the rest.
    let err = ipam
        .allocate("s", "x", &Request::random().with_ips(ips("10.0.0.101")))
        .unwrap_err();
    assert!(matches!(err, Error::AddressInUse { .. }), "{err}");
    let err = ipam
        .allocate(
            "s",
            "x",
            &Request::random().with_mac(mac("0a:00:00:00:00:01")),
        )
        .unwrap_err();
    assert!(matches!(err, Error::MacInUse { .. }), "{err}");

    // rebuild(records()) reproduces the state, here and in a fresh allocator.
    let before = ipam.clone();
    let report = ipam.rebuild(ipam.records());
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(ipam, before);
    let mut fresh = Ipam::new();
    fresh
        .update_subnet(SubnetSpec::new("s", "10.0.0.0/24,fd00::/120").with_excludes(["10.0.0.50"]))
        .unwrap();
    fresh
        .set_pool("s", PoolSpec::new("p", ["10.0.0.100..10.0.0.110"]))
        .unwrap();
    fresh.rebuild(before.records());
    assert_eq!(fresh, before);
}

#[test]
fn shared_ipam_never_double_allocates_across_threads() {
    let shared = SharedIpam::new(Ipam::new());
    shared
        .update_subnet(SubnetSpec::new("s", "10.0.0.0/22"))
        .unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let shared = &shared;
            scope.spawn(move || {
                for i in 0..250 {
                    let key = format!("t{t}-{i}");
                    shared.allocate("s", &key, &Request::random()).unwrap();
                    if i % 3 == 0 {
                        shared.release(&key);
                    }
                }
            });
        }
    });
    let records = shared.records();
    let distinct: HashSet<_> = records.iter().map(|r| r.ips[0]).collect();
    assert_eq!(distinct.len(), records.len());
    assert_eq!(
        shared.counters("s").unwrap().v4_using,
        records.len() as u128
    );
    assert_eq!(records.len(), 4 * (250 - 84));
}

#[test]
fn ipv6_statics_gateways_and_huge_counts() {
    let spec = SubnetSpec::new("d", "10.16.0.0/16,fd00:10:16::/64").with_gateway("10.16.0.254");
    let mut ipam = ipam_with(spec);
    let info = ipam.subnet_info("d").unwrap();
    // A family without an explicit gateway gets its first host address.
    assert_eq!(joined(&info.gateways), "10.16.0.254,fd00:10:16::1");
    let lease = ipam
        .allocate(
            "d",
            "k",
            &Request::random().with_ips(ips("fd00:10:16::abcd/64,10.16.0.1")),
        )
        .unwrap();
    assert_eq!(lease.ip_address(), "10.16.0.1,fd00:10:16::abcd");
    for (input, check) in [
        ("fd00:10:16::abcd", "in use"),
        ("fd00:10:16::1", "gateway"),
        ("fd00:10:16::", "network"),
        ("fd00:10:16::5/48", "prefix"),
        ("fd00:10:17::5", "outside"),
    ] {
        let err = ipam
            .allocate("d", "x", &Request::random().with_ips(ips(input)))
            .unwrap_err();
        let ok = match check {
            "in use" => matches!(err, Error::AddressInUse { .. }),
            "gateway" => matches!(err, Error::Gateway { .. }),
            "network" => matches!(
                err,
                Error::Reserved {
                    what: "network",
                    ..
                }
            ),
            "prefix" => matches!(
                err,
                Error::PrefixMismatch {
                    subnet_prefix: 64,
                    ..
                }
            ),
            _ => matches!(err, Error::OutsideSubnet { .. }),
        };
        assert!(ok, "{input}: {err}");
    }
    // The last address of an IPv6 subnet is a host (no broadcast in IPv6).
    let last = ipam
        .allocate(
            "d",
            "last",
            &Request::random().with_ips(ips("fd00:10:16::ffff:ffff:ffff:ffff")),
        )
        .unwrap();
    assert!(last.v6.is_some());
    let c = ipam.counters("d").unwrap();
    assert_eq!(c.v6_available, (1u128 << 64) - 2 - 2);
    assert_eq!(c.v4_available, 65536 - 3 - 2);
}

#[test]
fn sequential_inside_a_pool_and_rebuild_keeps_the_walk_going() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/24"));
    ipam.set_pool("s", PoolSpec::new("p", ["10.0.0.100/30", "10.0.0.200"]))
        .unwrap();
    let seq = Request::sequential().in_pool("p");
    let picks: Vec<_> = (0..3)
        .map(|i| {
            ipam.allocate("s", &format!("k{i}"), &seq)
                .unwrap()
                .v4
                .unwrap()
        })
        .collect();
    assert_eq!(
        picks,
        [v4("10.0.0.100"), v4("10.0.0.101"), v4("10.0.0.102")]
    );
    // After a restart the walk continues after the highest address in use.
    ipam.rebuild(ipam.records());
    ipam.release("k0");
    assert_eq!(
        ipam.allocate("s", "k3", &seq).unwrap().v4,
        Some(v4("10.0.0.103"))
    );
    assert_eq!(
        ipam.allocate("s", "k4", &seq).unwrap().v4,
        Some(v4("10.0.0.200"))
    );
    assert_eq!(
        ipam.allocate("s", "k5", &seq).unwrap().v4,
        Some(v4("10.0.0.100"))
    );
    assert!(matches!(
        ipam.allocate("s", "k6", &seq),
        Err(Error::PoolExhausted { .. })
    ));
    // Outside the pool, sequential starts at the bottom of the subnet.
    assert_eq!(
        ipam.allocate("s", "o", &Request::sequential()).unwrap().v4,
        Some(v4("10.0.0.2"))
    );
}

fn list_err_entry(result: Result<ipam::Lease, Error>) -> String {
    match result {
        Err(Error::InvalidIpList { entry, .. }) => entry,
        other => panic!("expected InvalidIpList, got {other:?}"),
    }
}

#[test]
fn ip_list_hands_out_the_first_free_address_in_list_order() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/24"));
    let list = "10.0.0.17, 10.0.0.15,10.0.0.16";
    let request = Request::random().in_ip_list(IpList::parse("", list).unwrap());
    let got: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| ipam.allocate("s", k, &request).unwrap().v4.unwrap())
        .collect();
    assert_eq!(got, [v4("10.0.0.17"), v4("10.0.0.15"), v4("10.0.0.16")]);
    // Idempotent: the same key keeps its address.
    assert_eq!(
        ipam.allocate("s", "b", &request).unwrap().v4,
        Some(v4("10.0.0.15"))
    );
    // All taken: an error naming the key and the list.
    let err = ipam.allocate("s", "d", &request).unwrap_err();
    assert!(
        matches!(&err, Error::IpListExhausted { key, list: l, subnet } if key == "d" && l == list && subnet == "s"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("d:") && message.contains(list) && message.contains("exhausted"));
    // A released address goes to the next pod that asks.
    ipam.release("b");
    assert_eq!(
        ipam.allocate("s", "d", &request).unwrap().v4,
        Some(v4("10.0.0.15"))
    );
    // An address held by a key that does not use the list counts as taken.
    ipam.release("a");
    ipam.allocate("s", "static", &Request::random().with_ips(ips("10.0.0.17")))
        .unwrap();
    let err = ipam.allocate("s", "e", &request).unwrap_err();
    assert!(matches!(err, Error::IpListExhausted { .. }), "{err:?}");
    assert_eq!(ipam.counters("s").unwrap().v4_using, 3);
    // A key holding an address outside a changed list is told so, not moved.
    let other = Request::random().in_ip_list(IpList::parse("", "10.0.0.20").unwrap());
    let err = ipam.allocate("s", "c", &other).unwrap_err();
    assert!(
        matches!(&err, Error::AllocationMismatch { key, existing, .. } if key == "c" && existing == "10.0.0.16"),
        "{err:?}"
    );
}

#[test]
fn ip_list_dual_stack_forms() {
    let spec = || SubnetSpec::new("s", "10.0.0.0/24,fd00::/120");
    // `;`-separated entries are taken whole: the first entry with every address free.
    let mut ipam = ipam_with(spec());
    let grouped =
        Request::random().in_ip_list(list("10.0.0.15,fd00::f;10.0.0.16,fd00::10;10.0.0.17"));
    let a = ipam.allocate("s", "a", &grouped).unwrap();
    assert_eq!(a.ip_address(), "10.0.0.15,fd00::f");
    ipam.allocate("s", "x", &Request::random().with_ips(ips("fd00::10")))
        .unwrap();
    // Entry 2 is half taken: skipped whole; entry 3 has no IPv6 address, so IPv6 is dynamic.
    let b = ipam.allocate("s", "b", &grouped).unwrap();
    assert_eq!(b.v4, Some(v4("10.0.0.17")));
    assert!(b.v6.is_some() && b.v6 != Some("fd00::f".parse().unwrap()));
    assert_eq!(ipam.allocate("s", "a", &grouped).unwrap(), a);
    assert!(matches!(
        ipam.allocate("s", "c", &grouped),
        Err(Error::IpListExhausted { .. })
    ));

    // A plain list mixing families: each family takes its own first free address.
    let mut ipam = ipam_with(spec());
    let plain = Request::random().in_ip_list(list("10.0.0.15,fd00::f,10.0.0.16,fd00::10"));
    ipam.allocate("s", "x", &Request::random().with_ips(ips("10.0.0.15")))
        .unwrap();
    let a = ipam.allocate("s", "a", &plain).unwrap();
    assert_eq!(a.ip_address(), "10.0.0.16,fd00::f");
    let b = ipam.allocate("s", "b", &plain).unwrap_err();
    assert!(matches!(b, Error::IpListExhausted { .. }), "{b:?}");

    // Only IPv4 listed: IPv6 is allocated as usual.
    let mut ipam = ipam_with(spec());
    let a = ipam
        .allocate(
            "s",
            "a",
            &Request::sequential().in_ip_list(list("10.0.0.9")),
        )
        .unwrap();
    assert_eq!(a.v4, Some(v4("10.0.0.9")));
    assert_eq!(a.v6, Some("fd00::2".parse().unwrap()));

    // A static address wins over the list for its family.
    let mut ipam = ipam_with(spec());
    let a = ipam
        .allocate(
            "s",
            "a",
            &Request::random()
                .with_ips(ips("10.0.0.99"))
                .in_ip_list(list("10.0.0.15,fd00::f")),
        )
        .unwrap();
    assert_eq!(a.ip_address(), "10.0.0.99,fd00::f");
}

#[test]
fn ip_list_entries_are_validated_and_named() {
    let spec = SubnetSpec::new("s", "10.0.0.0/24")
        .with_excludes(["10.0.0.5"])
        .with_gateway("10.0.0.1");
    let mut ipam = ipam_with(spec);
    ipam.set_pool("s", PoolSpec::new("p", ["10.0.0.200..10.0.0.210"]))
        .unwrap();
    // (list, the entry the error must name, a word of the reason)
    let cases: &[(&str, &str, &str)] = &[
        ("10.0.0.15,10.0.0.300", "10.0.0.300", "not an IP"),
        ("10.0.0.15,,10.0.0.16", "", "empty"),
        ("", "", "empty"),
        ("10.0.0.15/24", "10.0.0.15/24", "not an IP"),
        ("10.0.0.15,10.0.0.1", "10.0.0.1", "gateway"),
        ("10.0.0.0", "10.0.0.0", "network"),
        ("10.0.0.255", "10.0.0.255", "broadcast"),
        ("10.0.1.5", "10.0.1.5", "outside"),
        ("10.0.0.5", "10.0.0.5", "excluded"),
        ("fd00::5", "fd00::5", "no IPv6"),
        ("10.0.0.15;", "", "empty"),
        (
            "10.0.0.15,10.0.0.16;10.0.0.17",
            "10.0.0.15,10.0.0.16",
            "two IPv4",
        ),
    ];
    for &(list, entry, reason) in cases {
        let result = IpList::parse("k", list)
            .and_then(|list| ipam.allocate("s", "k", &Request::random().in_ip_list(list)));
        let message = result.as_ref().map_err(ToString::to_string).unwrap_err();
        assert_eq!(list_err_entry(result), entry, "{list:?}");
        assert!(message.contains(reason), "{list:?}: {message}");
        assert!(message.contains("k:"), "{message}");
    }
    // A later invalid entry is reported even when an earlier one is free.
    let result = ipam.allocate(
        "s",
        "k",
        &Request::random().in_ip_list(list("10.0.0.15,10.0.0.1")),
    );
    assert_eq!(list_err_entry(result), "10.0.0.1");
    // Not combined with an IPPool name.
    let both = Request::random().in_ip_list(list("10.0.0.15")).in_pool("p");
    assert_eq!(list_err_entry(ipam.allocate("s", "k", &both)), "10.0.0.15");
    // Nothing was allocated by any of the failures.
    assert!(ipam.is_empty());
    // Addresses inside an IPPool's range are fine in a list (as static addresses are).
    let lease = ipam
        .allocate("s", "k", &Request::random().in_ip_list(list("10.0.0.200")))
        .unwrap();
    assert_eq!(lease.v4, Some(v4("10.0.0.200")));
}

#[test]
fn ip_pool_annotation_is_a_list_or_a_pool_name() {
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        ("pool-1", Some("pool-1"), None),
        (" pool-1 ", Some("pool-1"), None),
        ("10.16.0.15", None, Some("10.16.0.15")),
        ("fd00::f", None, Some("fd00::f")),
        ("10.16.0.15,10.16.0.16", None, Some("10.16.0.15,10.16.0.16")),
        (
            "10.16.0.15,fd00::f;10.16.0.16,fd00::10",
            None,
            Some("10.16.0.15,fd00::f;10.16.0.16,fd00::10"),
        ),
        // Not an address and no separator: a pool name (whose lookup then fails clearly).
        ("10.16.0.300", Some("10.16.0.300"), None),
    ];
    for &(annotation, pool, list) in cases {
        let request = Request::random().with_ip_pool("k", annotation).unwrap();
        assert_eq!(request.pool.as_deref(), pool, "{annotation:?}");
        assert_eq!(
            request.ip_list.as_ref().map(IpList::as_str),
            list,
            "{annotation:?}"
        );
    }
}

#[test]
fn ip_list_leases_survive_rebuild() {
    let mut ipam = ipam_with(SubnetSpec::new("s", "10.0.0.0/24,fd00::/120"));
    let request = Request::random().in_ip_list(list("10.0.0.15,fd00::f;10.0.0.16,fd00::10"));
    ipam.allocate("s", "a", &request).unwrap();
    ipam.allocate("s", "b", &request).unwrap();
    let before = ipam.clone();
    let report = ipam.rebuild(before.records());
    assert!(report.rejected.is_empty());
    assert!(ipam == before);
    assert!(matches!(
        ipam.allocate("s", "c", &request),
        Err(Error::IpListExhausted { .. })
    ));
    assert_eq!(ipam.owner_of("s", ip("fd00::10")), Some("b"));
}

#[test]
fn a_subnet_registered_late_takes_its_records_with_it_and_hands_out_only_the_rest() {
    // "s" was not registered when the allocator was rebuilt (refused then); its record was
    // refused as an unknown subnet.
    let mut ipam = ipam_with(SubnetSpec::new("other", "10.9.0.0/24"));
    let records = vec![
        rec("a", "s", &["10.0.0.2"], Some("0a:00:00:00:00:01")),
        rec("b", "other", &["10.9.0.5"], None),
    ];
    let report = ipam.rebuild(records.clone());
    assert_eq!(report.loaded, 1);
    assert!(matches!(report.rejected[..], [Error::UnknownSubnet { .. }]));
    assert!(!ipam.has_subnet("s"));

    // Registered with its records: only its own are taken ("b" is another subnet's, and
    // already loaded), and the only free address of the /30 is no longer free.
    let report = ipam
        .register_with(SubnetSpec::new("s", "10.0.0.0/30"), records.clone())
        .unwrap();
    assert_eq!((report.loaded, report.rejected.len()), (1, 0));
    assert_eq!(ipam.owner_of("s", ip("10.0.0.2")), Some("a"));
    assert_eq!(ipam.get("a").unwrap().mac, Some(mac("0a:00:00:00:00:01")));
    let c = ipam.counters("s").unwrap();
    assert_eq!((c.v4_using, c.v4_available), (1, 0));
    let err = ipam.allocate("s", "x", &Request::random()).unwrap_err();
    assert!(matches!(err, Error::SubnetFull { .. }), "{err}");

    // Registered again (a spec update): the allocator's own leases stay, nothing reloads.
    let report = ipam
        .register_with(SubnetSpec::new("s", "10.0.0.0/30"), records)
        .unwrap();
    assert_eq!(report, ipam::RebuildReport::default());
    assert_eq!(ipam.owner_of("s", ip("10.0.0.2")), Some("a"));

    // A late subnet's conflicting records are refused and reported, the first one wins.
    let report = ipam
        .register_with(
            SubnetSpec::new("t", "10.1.0.0/24"),
            vec![
                rec("c", "t", &["10.1.0.7"], None),
                rec("d", "t", &["10.1.0.7"], None),
                rec("a", "t", &["10.1.0.8"], None),
            ],
        )
        .unwrap();
    assert_eq!(report.loaded, 1);
    assert_eq!(report.rejected.len(), 2);
    assert_eq!(ipam.owner_of("t", ip("10.1.0.7")), Some("c"));
    let next = ipam.allocate("t", "e", &Request::random()).unwrap();
    assert_ne!(next.v4, Some("10.1.0.7".parse().unwrap()));
}
