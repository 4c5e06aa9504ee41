//! Property test: random operation sequences against a naive model (sets of addresses).
//!
//! Subnet `s` is `10.0.0.0/27,fd00::/123` with a pool `p` of `10.0.0.20..10.0.0.25` and, in
//! one of two alternating specs, extra excludes. Small on purpose: sequences fill it, empty it,
//! and hit every error path.

// clippy.toml allows unwrap inside #[test] functions; the model helpers here need it too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipam::{Counters, Error, Ipam, PoolSpec, Request, SubnetSpec};
use proptest::prelude::*;

const V4_BASE: u128 = 0x0a00_0000;
const V6_BASE: u128 = 0xfd00 << 112;

#[derive(Debug, Clone)]
enum Op {
    Allocate {
        key: u8,
        pool: bool,
        sequential: bool,
        static_v4: Option<u8>,
    },
    /// An `ip_pool` list of IPv4 offsets.
    AllocateFromList {
        key: u8,
        list: Vec<u8>,
    },
    Release {
        key: u8,
    },
    Rebuild,
    ToggleExcludes,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, any::<bool>(), any::<bool>(), proptest::option::weighted(0.3, 0u8..32))
            .prop_map(|(key, pool, sequential, static_v4)| Op::Allocate { key, pool, sequential, static_v4 }),
        2 => (0u8..24, proptest::collection::vec(0u8..32, 1..5))
            .prop_map(|(key, list)| Op::AllocateFromList { key, list }),
        3 => (0u8..24).prop_map(|key| Op::Release { key }),
        1 => Just(Op::Rebuild),
        1 => Just(Op::ToggleExcludes),
    ]
}

fn spec(extra_excludes: bool) -> SubnetSpec {
    let mut excludes = vec!["10.0.0.5..10.0.0.7", "fd00::8/126"];
    if extra_excludes {
        excludes.extend(["10.0.0.10..10.0.0.12", "10.0.0.21", "fd00::1c..fd00::1e"]);
    }
    SubnetSpec::new("s", "10.0.0.0/27,fd00::/123").with_excludes(excludes)
}

/// The naive model: which offsets may be handed out, and who holds what.
#[derive(Debug, Default)]
struct Model {
    extra_excludes: bool,
    v4: HashMap<u128, String>,
    v6: HashMap<u128, String>,
    keys: HashMap<String, (u128, u128)>,
}

impl Model {
    fn allowed_v4(&self) -> BTreeSet<u128> {
        let mut blocked: HashSet<u128> = [0, 1, 31, 5, 6, 7].into();
        if self.extra_excludes {
            blocked.extend([10, 11, 12, 21]);
        }
        (0..32).filter(|o| !blocked.contains(o)).collect()
    }

    fn allowed_v6(&self) -> BTreeSet<u128> {
        let mut blocked: HashSet<u128> = [0, 1, 8, 9, 10, 11].into();
        if self.extra_excludes {
            blocked.extend([0x1c, 0x1d, 0x1e]);
        }
        (0..32).filter(|o| !blocked.contains(o)).collect()
    }

    fn in_pool(o: u128) -> bool {
        (20..=25).contains(&o)
    }

    fn free_v4(&self, pool: Option<bool>) -> BTreeSet<u128> {
        self.allowed_v4()
            .into_iter()
            .filter(|o| !self.v4.contains_key(o))
            .filter(|&o| pool.is_none_or(|p| Self::in_pool(o) == p))
            .collect()
    }

    fn free_v6(&self) -> BTreeSet<u128> {
        self.allowed_v6()
            .into_iter()
            .filter(|o| !self.v6.contains_key(o))
            .collect()
    }

    fn counters(&self) -> Counters {
        Counters {
            v4_using: self.v4.len() as u128,
            v4_available: self.free_v4(None).len() as u128,
            v6_using: self.v6.len() as u128,
            v6_available: self.free_v6().len() as u128,
        }
    }
}

fn offset(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)) - V4_BASE,
        IpAddr::V6(a) => u128::from(a) - V6_BASE,
    }
}

fn check(ipam: &Ipam, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(ipam.counters("s").unwrap(), model.counters());
    let pool = ipam.pool_counters("s", "p").unwrap();
    prop_assert_eq!(
        pool.v4_using,
        model.v4.keys().filter(|&&o| Model::in_pool(o)).count() as u128
    );
    prop_assert_eq!(pool.v4_available, model.free_v4(Some(true)).len() as u128);
    let records = ipam.records();
    prop_assert_eq!(records.len(), model.keys.len());
    let mut seen = HashSet::new();
    let mut macs = HashSet::new();
    for record in &records {
        let held = model.keys.get(&record.key);
        prop_assert!(held.is_some(), "unexpected key {}", record.key);
        let offsets: Vec<u128> = record.ips.iter().map(|&ip| offset(ip)).collect();
        let (o4, o6) = held.copied().unwrap_or_default();
        prop_assert_eq!(offsets, vec![o4, o6]);
        for ip in &record.ips {
            // Never two keys on one address.
            prop_assert!(seen.insert(*ip), "{} handed out twice", ip);
            prop_assert_eq!(ipam.owner_of("s", *ip), Some(record.key.as_str()));
        }
        let mac = record.mac.unwrap();
        prop_assert!(macs.insert(mac), "MAC {} handed out twice", mac);
        prop_assert_eq!(mac.0[0] & 3, 2);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut ipam = Ipam::with_seed(9);
    ipam.update_subnet(spec(false)).unwrap();
    ipam.set_pool("s", PoolSpec::new("p", ["10.0.0.20..10.0.0.25"]))
        .unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Allocate {
                key,
                pool,
                sequential,
                static_v4,
            } => {
                let key = format!("k{key}");
                let mut request = if sequential {
                    Request::sequential()
                } else {
                    Request::random()
                };
                if pool {
                    request = request.in_pool("p");
                }
                if let Some(o) = static_v4 {
                    request = request.with_ips([format!("10.0.0.{o}/27").parse().unwrap()]);
                }
                let result = ipam.allocate("s", &key, &request);
                if let Some(&(h4, h6)) = model.keys.get(&key) {
                    let mismatched = static_v4.is_some_and(|o| u128::from(o) != h4)
                        || (pool && !Model::in_pool(h4));
                    if mismatched {
                        prop_assert!(
                            matches!(result, Err(Error::AllocationMismatch { .. })),
                            "{:?}",
                            result
                        );
                    } else {
                        let lease = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(
                            lease.ips().into_iter().map(offset).collect::<Vec<_>>(),
                            vec![h4, h6]
                        );
                    }
                } else {
                    let expected_v4_error = static_v4.map(u128::from).and_then(|o| {
                        if o == 0 || o == 31 {
                            Some("reserved")
                        } else if o == 1 {
                            Some("gateway")
                        } else if !model.allowed_v4().contains(&o) {
                            Some("excluded")
                        } else if model.v4.contains_key(&o) {
                            Some("in use")
                        } else if pool && !Model::in_pool(o) {
                            Some("not in pool")
                        } else {
                            None
                        }
                    });
                    let v4_free = match static_v4 {
                        Some(_) => true,
                        None => !model.free_v4(Some(pool)).is_empty(),
                    };
                    let v6_free = !model.free_v6().is_empty();
                    match (&result, expected_v4_error) {
                        (Err(e), Some(kind)) => {
                            let ok = match kind {
                                "reserved" => matches!(e, Error::Reserved { .. }),
                                "gateway" => matches!(e, Error::Gateway { .. }),
                                "excluded" => matches!(e, Error::Excluded { .. }),
                                "in use" => matches!(e, Error::AddressInUse { .. }),
                                _ => matches!(e, Error::NotInPool { .. }),
                            };
                            prop_assert!(ok, "expected {}, got {}", kind, e);
                        }
                        (Err(e), None) => {
                            prop_assert!(!v4_free || !v6_free, "unexpected error {}", e);
                            prop_assert!(
                                matches!(e, Error::SubnetFull { .. } | Error::PoolExhausted { .. }),
                                "{}",
                                e
                            );
                        }
                        (Ok(lease), None) => {
                            prop_assert!(v4_free && v6_free);
                            let o4 = offset(IpAddr::V4(lease.v4.unwrap()));
                            let o6 = offset(IpAddr::V6(lease.v6.unwrap()));
                            match static_v4 {
                                Some(o) => prop_assert_eq!(o4, u128::from(o)),
                                None => prop_assert!(model.free_v4(Some(pool)).contains(&o4)),
                            }
                            prop_assert!(model.free_v6().contains(&o6));
                            model.v4.insert(o4, key.clone());
                            model.v6.insert(o6, key.clone());
                            model.keys.insert(key, (o4, o6));
                        }
                        (Ok(lease), Some(kind)) => {
                            prop_assert!(false, "expected {}, got {:?}", kind, lease);
                        }
                    }
                }
            }
            Op::AllocateFromList { key, list } => {
                let key = format!("k{key}");
                let text: Vec<String> = list.iter().map(|o| format!("10.0.0.{o}")).collect();
                let parsed = ipam::IpList::parse(&key, &text.join(",")).unwrap();
                let request = Request::random().in_ip_list(parsed);
                let result = ipam.allocate("s", &key, &request);
                let offsets: Vec<u128> = list.iter().map(|&o| u128::from(o)).collect();
                // Every entry must be allocatable now, else the list is refused whole (an
                // excluded entry held by this very key is still refused: it cannot be handed
                // out again).
                let invalid = offsets.iter().any(|o| !model.allowed_v4().contains(o));
                if invalid {
                    prop_assert!(
                        matches!(result, Err(Error::InvalidIpList { .. })),
                        "{:?}",
                        result
                    );
                } else if let Some(&(h4, h6)) = model.keys.get(&key) {
                    if offsets.contains(&h4) {
                        let lease = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(
                            lease.ips().into_iter().map(offset).collect::<Vec<_>>(),
                            vec![h4, h6]
                        );
                    } else {
                        prop_assert!(
                            matches!(result, Err(Error::AllocationMismatch { .. })),
                            "{:?}",
                            result
                        );
                    }
                } else {
                    match offsets.iter().find(|o| !model.v4.contains_key(o)) {
                        None => prop_assert!(
                            matches!(result, Err(Error::IpListExhausted { .. })),
                            "{:?}",
                            result
                        ),
                        Some(&o4) if model.free_v6().is_empty() => prop_assert!(
                            matches!(result, Err(Error::SubnetFull { .. })),
                            "{:?} (would take {})",
                            result,
                            o4
                        ),
                        Some(&o4) => {
                            let lease = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                            prop_assert_eq!(offset(IpAddr::V4(lease.v4.unwrap())), o4);
                            let o6 = offset(IpAddr::V6(lease.v6.unwrap()));
                            prop_assert!(model.free_v6().contains(&o6));
                            model.v4.insert(o4, key.clone());
                            model.v6.insert(o6, key.clone());
                            model.keys.insert(key, (o4, o6));
                        }
                    }
                }
            }
            Op::Release { key } => {
                let key = format!("k{key}");
                let released = ipam.release(&key);
                match model.keys.remove(&key) {
                    Some((o4, o6)) => {
                        prop_assert!(released.is_some());
                        model.v4.remove(&o4);
                        model.v6.remove(&o6);
                    }
                    None => prop_assert!(released.is_none()),
                }
            }
            Op::Rebuild => {
                let before = ipam.clone();
                let report = ipam.rebuild(ipam.records());
                prop_assert!(report.rejected.is_empty(), "{:?}", report.rejected);
                prop_assert_eq!(report.loaded, model.keys.len());
                prop_assert!(ipam == before, "rebuild(records()) differs from the state");
                let mut fresh = Ipam::with_seed(3);
                fresh.update_subnet(spec(model.extra_excludes)).unwrap();
                fresh
                    .set_pool("s", PoolSpec::new("p", ["10.0.0.20..10.0.0.25"]))
                    .unwrap();
                fresh.rebuild(before.records());
                prop_assert!(fresh == before, "a fresh rebuild differs from the state");
            }
            Op::ToggleExcludes => {
                model.extra_excludes = !model.extra_excludes;
                // Excluding allocated addresses keeps them with their owners.
                ipam.update_subnet(spec(model.extra_excludes)).unwrap();
            }
        }
        check(&ipam, &model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn allocator_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
