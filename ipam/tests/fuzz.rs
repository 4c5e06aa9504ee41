//! Fuzz tests for every parser of outside input (DESIGN §5 L0), as proptest properties:
//! cargo-fuzz needs a nightly toolchain, which this project does not use.
//!
//! Inputs are arbitrary strings, token soups of the characters addresses are made of, and valid
//! addresses with one mutation (a near miss). Each parser must not panic and must either accept
//! the input or return an error that names it (or the offending part of it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed assertion is the report.

use ipam::{Error, Ipam, MacAddr, PoolSpec, Request, SubnetSpec};
use proptest::prelude::*;

/// Pieces addresses, ranges, CIDRs and lists are made of, plus a few that never belong.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,4}",
        "[0-9a-fA-F]{1,5}",
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(":".to_owned()),
        Just("::".to_owned()),
        Just("/".to_owned()),
        Just(",".to_owned()),
        Just(";".to_owned()),
        Just("-".to_owned()),
        Just(" ".to_owned()),
        Just("256".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("10.0.".to_owned()),
        Just("fd00:".to_owned()),
        Just("%eth0".to_owned()),
        Just("é".to_owned()),
        Just("\u{0}".to_owned()),
    ]
}

fn token_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(token(), 0..14).prop_map(|t| t.concat())
}

/// A valid address, range, CIDR or MAC with something appended, cut off or doubled.
fn near_miss() -> impl Strategy<Value = String> {
    let valid = prop_oneof![
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.{a}.{b}")),
        (0u16..=0xffff).prop_map(|a| format!("fd00::{a:x}")),
        (0u8..=255, 0u8..=40).prop_map(|(a, p)| format!("10.0.{a}.0/{p}")),
        (0u16..=0xffff, 0u8..=130).prop_map(|(a, p)| format!("fd00::{a:x}/{p}")),
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.0.{a}..10.0.0.{b}")),
        any::<[u8; 6]>().prop_map(|m| MacAddr(m).to_string()),
        any::<[u8; 6]>().prop_map(|m| MacAddr(m).to_string().replace(':', "-").to_uppercase()),
        (0u8..=255, 0u16..=0xffff).prop_map(|(a, b)| format!("10.0.0.{a},fd00::{b:x}")),
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.0.{a};10.0.0.{b}")),
    ];
    (valid, 0usize..6, token()).prop_map(|(valid, how, extra)| match how {
        0 => valid,
        1 => format!("{valid}{extra}"),
        2 => format!("{extra}{valid}"),
        3 => valid[..valid.len() / 2].to_owned(),
        4 => format!("{valid}{valid}"),
        _ => valid.replacen('.', &extra, 1),
    })
}

fn input() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), token_soup(), near_miss()]
}

fn subnet() -> Ipam {
    let mut ipam = Ipam::with_seed(5);
    ipam.update_subnet(SubnetSpec::new("s", "10.0.0.0/16,fd00::/64"))
        .unwrap();
    ipam
}

/// Whether `part` is a piece of `input` (an error may name one entry of a list).
fn names(input: &str, part: &str) -> bool {
    input.contains(part)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn cidr_blocks(text in input()) {
        match Ipam::new().update_subnet(SubnetSpec::new("s", text.clone())) {
            Ok(()) => {}
            Err(Error::InvalidCidr { entry, .. }) => prop_assert!(names(&text, &entry), "{entry:?}"),
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn gateways(text in input()) {
        let spec = SubnetSpec::new("s", "10.0.0.0/16,fd00::/64").with_gateway(text.clone());
        match Ipam::new().update_subnet(spec) {
            Ok(()) => {}
            Err(Error::InvalidGateway { entry, .. }) => prop_assert!(names(&text, &entry), "{entry:?}"),
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn exclude_entries(text in input()) {
        let spec = SubnetSpec::new("s", "10.0.0.0/16,fd00::/64").with_excludes([text.clone()]);
        match Ipam::new().update_subnet(spec) {
            Ok(()) => {}
            Err(e @ Error::InvalidExclude { .. }) => {
                let Error::InvalidExclude { entry, .. } = &e else { unreachable!() };
                prop_assert_eq!(entry, &text);
                let quoted = format!("{text:?}");
                prop_assert!(e.to_string().contains(&quoted));
            }
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn pool_entries(text in input()) {
        let mut ipam = subnet();
        match ipam.set_pool("s", PoolSpec::new("p", [text.clone()])) {
            Ok(()) => {
                // A pool that parsed hands out only its own addresses (or nothing).
                if let Ok(lease) = ipam.allocate("s", "k", &Request::random().in_pool("p")) {
                    prop_assert!(lease.v4.is_some() && lease.v6.is_some());
                }
            }
            Err(Error::InvalidPoolEntry { entry, .. }) => prop_assert_eq!(entry, text),
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn static_ip_requests(text in input()) {
        let mut ipam = subnet();
        // Parsed at the caller's edge, then allocated: the same outcomes as one call.
        let result = ipam::parse_ips("k", &text)
            .and_then(|ips| ipam.allocate("s", "k", &Request::random().with_ips(ips)));
        match result {
            Ok(lease) => prop_assert_eq!(ipam.get("k"), Some(lease)),
            Err(Error::InvalidAddress { key, input, .. }) => {
                prop_assert_eq!(key, "k");
                prop_assert!(names(&text, &input), "{input:?}");
            }
            // Parsed, but not allocatable here: the error names the key (and the address).
            Err(e) => {
                prop_assert!(e.to_string().starts_with("k: "), "{e}");
                prop_assert!(ipam.is_empty());
            }
        }
    }

    #[test]
    fn macs(text in input()) {
        match text.parse::<MacAddr>() {
            Ok(mac) => prop_assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac)),
            Err(e) => {
                prop_assert_eq!(&e.input, &text);
                let quoted = format!("{text:?}");
                prop_assert!(e.to_string().contains(&quoted));
            }
        }
        let mut ipam = subnet();
        let result = ipam::parse_mac("k", &text)
            .and_then(|mac| ipam.allocate("s", "k", &Request::random().with_mac(mac)));
        match result {
            Ok(lease) => prop_assert_eq!(lease.mac, text.parse().ok()),
            Err(Error::InvalidMac { key, input, .. }) => {
                prop_assert_eq!(key, "k");
                prop_assert_eq!(input, text);
            }
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn ip_lists(text in input()) {
        let mut ipam = subnet();
        let result = ipam::IpList::parse("k", &text)
            .and_then(|list| ipam.allocate("s", "k", &Request::random().in_ip_list(list)));
        match result {
            Ok(lease) => {
                // Each listed family's address comes from the list.
                let listed: Vec<String> = text.split([',', ';']).map(|e| e.trim().to_owned()).collect();
                let v4_listed = listed.iter().any(|e| e.parse::<std::net::Ipv4Addr>().is_ok());
                if v4_listed {
                    let v4 = lease.v4.unwrap().to_string();
                    prop_assert!(listed.iter().any(|e| e.parse::<std::net::Ipv4Addr>().ok().map(|a| a.to_string()) == Some(v4.clone())));
                }
            }
            Err(Error::InvalidIpList { key, list, entry, .. }) => {
                prop_assert_eq!(key, "k");
                prop_assert_eq!(&list, &text);
                prop_assert!(names(&text, &entry), "{entry:?}");
            }
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn ip_pool_annotations(text in input()) {
        let mut ipam = subnet();
        let request = Request::random().with_ip_pool("k", &text);
        if let Ok(request) = &request {
            prop_assert!(request.pool.is_some() != request.ip_list.is_some());
        }
        let result = request.clone().and_then(|request| ipam.allocate("s", "k", &request));
        match result {
            Ok(_) => prop_assert!(request.is_ok_and(|r| r.ip_list.is_some())),
            Err(Error::UnknownPool { key, pool, .. }) => {
                prop_assert_eq!(key, "k");
                prop_assert_eq!(pool, text.trim());
            }
            Err(Error::InvalidIpList { list, .. }) => prop_assert_eq!(list, text.trim()),
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }
}
