//! The attachment contract between kube-ovn-controller and kube-ovn-daemon (DESIGN §3): what the
//! controller decided for one (pod, provider), as the `<provider>.kubernetes.io/*` annotations
//! carry it, and the user's route keys the daemon reads next to it.
//!
//! [`Allocation`] is the one owner of the controller's keys: the controller writes it with
//! [`Allocation::to_annotations`], the daemon reads it with [`Allocation::from_annotations`]; a
//! property test keeps the two inverse. Annotations are outside input (anyone who may edit the
//! pod may edit them): every value is checked, and a bad one is an error that names the key and
//! the value.
//!
//! Provider resolution lives here too ([`element_provider`]): which provider an attachment's
//! annotations are keyed by is part of the contract, and the two sides must compute it alike.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::naming::{AnnotationKey, NETWORKS_ANNOTATION, annotation_key, per_interface_provider};
use crate::networks::{NetworkSelectionElement, parse_networks_annotation};

/// The one MAC type of the project: six octets, written `aa:bb:cc:dd:ee:ff`. It lives in the
/// allocator, which hands it out; the contract re-exports it so both sides speak it.
pub use ipam::MacAddr;

/// What the controller allocated for one attachment: the keys it writes
/// ([`AnnotationKey::WRITTEN_BY_CONTROLLER`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The addresses (`ip_address`), at most one per family, each with the prefix length of the
    /// subnet CIDR that contains it. The annotation carries them bare.
    pub addresses: Vec<IpNet>,
    /// The subnet's CIDRs (`cidr`).
    pub cidrs: Vec<IpNet>,
    /// The subnet's gateways (`gateway`), one per family where the subnet has one.
    pub gateways: Vec<IpAddr>,
    /// The MAC (`mac_address`), unicast.
    pub mac: MacAddr,
    /// The subnet (`logical_switch`).
    pub logical_switch: String,
    /// The VPC (`logical_router`), when the subnet names one.
    pub logical_router: Option<String>,
}

/// `a,b,c` with surrounding blanks and empty items dropped.
fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidAnnotation {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Whether `<provider>.kubernetes.io/allocated` is `"true"`.
pub fn is_allocated(annotations: &BTreeMap<String, String>, provider: &str) -> bool {
    annotations
        .get(&annotation_key(provider, AnnotationKey::Allocated))
        .is_some_and(|v| v == "true")
}

impl Allocation {
    /// The annotations the controller writes for `provider`, `allocated: "true"` included.
    pub fn to_annotations(&self, provider: &str) -> BTreeMap<String, String> {
        let k = |key| annotation_key(provider, key);
        let mut out = BTreeMap::from([
            (
                k(AnnotationKey::IpAddress),
                join(self.addresses.iter().map(IpNet::addr)),
            ),
            (k(AnnotationKey::MacAddress), self.mac.to_string()),
            (k(AnnotationKey::Cidr), join(&self.cidrs)),
            (k(AnnotationKey::Gateway), join(&self.gateways)),
            (k(AnnotationKey::LogicalSwitch), self.logical_switch.clone()),
            (k(AnnotationKey::Allocated), "true".to_owned()),
        ]);
        if let Some(router) = &self.logical_router {
            out.insert(k(AnnotationKey::LogicalRouter), router.clone());
        }
        out
    }

    /// Reads the allocation of `provider` from a pod's `annotations`:
    /// [`Error::NotAllocated`] until the controller has set `allocated: "true"`, then every value
    /// checked (addresses inside the CIDRs, at most one per family; gateways inside the CIDRs; a
    /// unicast MAC).
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        provider: &str,
    ) -> Result<Self> {
        let key = |k| annotation_key(provider, k);
        let allocated = key(AnnotationKey::Allocated);
        if !is_allocated(annotations, provider) {
            return Err(Error::NotAllocated { key: allocated });
        }
        let get = |k: AnnotationKey| {
            let name = key(k);
            match annotations.get(&name) {
                Some(v) => Ok((name, v.as_str())),
                None => Err(Error::MissingAnnotation {
                    key: name,
                    allocated: allocated.clone(),
                }),
            }
        };

        let (ip_key, ips) = get(AnnotationKey::IpAddress)?;
        let (cidr_key, cidr_value) = get(AnnotationKey::Cidr)?;
        let cidrs: Vec<IpNet> = split(cidr_value)
            .map(|c| {
                c.parse::<IpNet>()
                    .map_err(|e| invalid(&cidr_key, cidr_value, e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut addresses: Vec<IpNet> = Vec::new();
        for ip in split(ips) {
            // Accept `10.0.0.5` and `10.0.0.5/16`; the prefix always comes from the subnet.
            let bare = ip.split_once('/').map_or(ip, |(a, _)| a);
            let addr: IpAddr = bare
                .parse()
                .map_err(|_| invalid(&ip_key, ips, format!("{ip} is not an IP")))?;
            let cidr = cidrs.iter().find(|c| c.contains(&addr)).ok_or_else(|| {
                invalid(
                    &ip_key,
                    ips,
                    format!("{addr} is in none of the subnet CIDRs {cidrs:?}"),
                )
            })?;
            let net = IpNet::new(addr, cidr.prefix_len())
                .map_err(|e| invalid(&ip_key, ips, e.to_string()))?;
            if addresses
                .iter()
                .any(|a| a.addr().is_ipv4() == addr.is_ipv4())
            {
                return Err(invalid(&ip_key, ips, "more than one address per family"));
            }
            addresses.push(net);
        }
        if addresses.is_empty() {
            return Err(invalid(&ip_key, ips, "no address"));
        }

        let (mac_key, mac_value) = get(AnnotationKey::MacAddress)?;
        let mac: MacAddr = mac_value
            .parse()
            .map_err(|e: ipam::ParseMacError| invalid(&mac_key, mac_value, e.to_string()))?;
        if mac.is_multicast() {
            return Err(invalid(&mac_key, mac_value, "is a multicast address"));
        }

        let mut gateways = Vec::new();
        if let Ok((gw_key, gws)) = get(AnnotationKey::Gateway) {
            for gw in split(gws) {
                let addr: IpAddr = gw
                    .parse()
                    .map_err(|_| invalid(&gw_key, gws, format!("{gw} is not an IP")))?;
                if !cidrs.iter().any(|c| c.contains(&addr)) {
                    return Err(invalid(
                        &gw_key,
                        gws,
                        format!("{addr} is outside {cidrs:?}"),
                    ));
                }
                gateways.push(addr);
            }
        }
        let logical_switch = get(AnnotationKey::LogicalSwitch)?.1.to_owned();
        let logical_router = annotations.get(&key(AnnotationKey::LogicalRouter)).cloned();
        Ok(Self {
            addresses,
            cidrs,
            gateways,
            mac,
            logical_switch,
            logical_router,
        })
    }

    /// The gateway of the family of `addr`, if the subnet has one.
    pub fn gateway_for(&self, addr: &IpAddr) -> Option<IpAddr> {
        self.gateways
            .iter()
            .copied()
            .find(|g| g.is_ipv4() == addr.is_ipv4())
    }
}

/// One element of the user's `routes` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination, truncated to its network.
    pub dst: IpNet,
    /// Next hop; `None` for a route on the link.
    pub via: Option<IpAddr>,
}

/// One element of the `routes` annotation as written (upstream's shape: `dst` and `gw`).
#[derive(Debug, Deserialize)]
struct RouteAnnotation {
    #[serde(default)]
    dst: String,
    #[serde(default)]
    gw: String,
}

/// The user's `<provider>.kubernetes.io/routes` (a JSON list of `{"dst": CIDR, "gw": IP}`);
/// empty when absent.
pub fn routes(annotations: &BTreeMap<String, String>, provider: &str) -> Result<Vec<Route>> {
    let routes_key = annotation_key(provider, AnnotationKey::Routes);
    let Some(raw) = annotations.get(&routes_key) else {
        return Ok(Vec::new());
    };
    let parsed: Vec<RouteAnnotation> = serde_json::from_str(raw)
        .map_err(|e| invalid(&routes_key, raw, format!("not a JSON list of routes: {e}")))?;
    let mut routes = Vec::new();
    for r in parsed {
        if r.dst.is_empty() {
            return Err(invalid(&routes_key, raw, "a route has no dst"));
        }
        let dst: IpNet = r
            .dst
            .parse()
            .map_err(|_| invalid(&routes_key, raw, format!("dst {:?} is not a CIDR", r.dst)))?;
        let via = if r.gw.is_empty() {
            None
        } else {
            let gw: IpAddr = r
                .gw
                .parse()
                .map_err(|_| invalid(&routes_key, raw, format!("gw {:?} is not an IP", r.gw)))?;
            if gw.is_ipv4() != dst.addr().is_ipv4() {
                return Err(invalid(
                    &routes_key,
                    raw,
                    format!("gw {gw} and dst {dst} differ in family"),
                ));
            }
            Some(gw)
        };
        routes.push(Route {
            dst: dst.trunc(),
            via,
        });
    }
    Ok(routes)
}

/// Whether the attachment routes the pod's default traffic: the selection element's
/// `default-route`, or the user's `<provider>.kubernetes.io/default_route: "true"` (DESIGN §3:
/// both are the user's; the controller writes neither).
pub fn default_route(
    annotations: &BTreeMap<String, String>,
    provider: &str,
    element: Option<&NetworkSelectionElement>,
) -> Result<bool> {
    let from_element = element.is_some_and(|e| !e.default_route.is_empty());
    let key = annotation_key(provider, AnnotationKey::DefaultRoute);
    let from_annotation = match annotations.get(&key).map(String::as_str) {
        None | Some("false" | "") => false,
        Some("true") => true,
        Some(v) => return Err(invalid(&key, v, "must be \"true\" or \"false\"")),
    };
    Ok(from_element || from_annotation)
}

/// The provider of the attachment at `position` among a pod's `elements`, whose NAD has
/// provider `nad_provider` (DESIGN §3): the NAD's own, or `<p>.<ifname>` when the pod selects
/// the same NAD more than once, so each attachment gets its own annotations, port and `IP`.
/// The controller (through [`crate::nad::resolve_element`]) and the daemon (through
/// [`provider_of_interface`]) both compute it here.
pub fn element_provider(
    elements: &[NetworkSelectionElement],
    position: usize,
    nad_provider: &str,
) -> String {
    let Some(e) = elements.get(position) else {
        return nad_provider.to_owned();
    };
    let uses = elements
        .iter()
        .filter(|o| o.name == e.name && o.namespace == e.namespace)
        .count();
    if uses > 1 {
        per_interface_provider(nad_provider, &e.interface_name(position))
    } else {
        nad_provider.to_owned()
    }
}

/// The daemon's side of [`element_provider`]: a CNI request knows its NAD's provider and the
/// interface name, not the element, so the element is the one on `ifname` in the pod's networks
/// annotation (interface names are unique per pod). Returns the provider and that element;
/// without an annotation, or with one that does not parse or has no element on `ifname`, the
/// NAD's provider and `None` (the controller allocates nothing for a pod whose annotation does
/// not parse, so the daemon's wait then ends in its timeout, which names the key).
pub fn provider_of_interface(
    annotations: &BTreeMap<String, String>,
    pod_namespace: &str,
    nad_provider: &str,
    ifname: &str,
) -> (String, Option<NetworkSelectionElement>) {
    let elements = annotations
        .get(NETWORKS_ANNOTATION)
        .and_then(|raw| parse_networks_annotation(raw, pod_namespace).ok())
        .unwrap_or_default();
    let found = elements
        .iter()
        .enumerate()
        .find(|(position, e)| e.interface_name(*position) == ifname);
    match found {
        Some((position, e)) => (
            element_provider(&elements, position, nad_provider),
            Some(e.clone()),
        ),
        None => (nad_provider.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const P: &str = "net-a.default.ovn";

    fn seed_allocation() -> Allocation {
        Allocation {
            addresses: vec![
                "10.100.0.5/16".parse().unwrap(),
                "fd00::5/64".parse().unwrap(),
            ],
            cidrs: vec![
                "10.100.0.0/16".parse().unwrap(),
                "fd00::/64".parse().unwrap(),
            ],
            gateways: vec!["10.100.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            mac: MacAddr([0, 0, 0, 0xaa, 0xbb, 0xcc]),
            logical_switch: "subnet-secondary".into(),
            logical_router: Some("vpc-secondary".into()),
        }
    }

    #[test]
    fn the_controller_keys_are_written_as_upstream_spells_them() {
        let a = seed_allocation().to_annotations(P);
        let k = |s: &str| format!("{P}.kubernetes.io/{s}");
        assert_eq!(a[&k("ip_address")], "10.100.0.5,fd00::5");
        assert_eq!(a[&k("cidr")], "10.100.0.0/16,fd00::/64");
        assert_eq!(a[&k("gateway")], "10.100.0.1,fd00::1");
        assert_eq!(a[&k("mac_address")], "00:00:00:aa:bb:cc");
        assert_eq!(a[&k("logical_switch")], "subnet-secondary");
        assert_eq!(a[&k("logical_router")], "vpc-secondary");
        assert_eq!(a[&k("allocated")], "true");
        // Exactly the keys the contract says the controller writes.
        let written: Vec<AnnotationKey> = a
            .keys()
            .filter_map(|k| crate::naming::parse_annotation_key(k).map(|(_, key)| key))
            .collect();
        let mut want = AnnotationKey::WRITTEN_BY_CONTROLLER.to_vec();
        want.sort();
        let mut got = written;
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn a_missing_gateway_or_router_reads_as_none() {
        let mut a = seed_allocation().to_annotations(P);
        a.remove(&format!("{P}.kubernetes.io/gateway"));
        a.remove(&format!("{P}.kubernetes.io/logical_router"));
        let read = Allocation::from_annotations(&a, P).unwrap();
        assert!(read.gateways.is_empty());
        assert_eq!(read.logical_router, None);
        assert_eq!(read.gateway_for(&"10.100.0.5".parse().unwrap()), None);
    }

    #[test]
    fn default_route_comes_from_the_element_or_the_annotation() {
        let none = BTreeMap::new();
        assert!(!default_route(&none, P, None).unwrap());
        let element: NetworkSelectionElement = serde_json::from_value(
            serde_json::json!({"name": "a", "default-route": ["10.100.0.1"]}),
        )
        .unwrap();
        assert!(default_route(&none, P, Some(&element)).unwrap());
        let set = BTreeMap::from([(format!("{P}.kubernetes.io/default_route"), "true".into())]);
        assert!(default_route(&set, P, None).unwrap());
    }

    fn kube_ovn_nads() -> Vec<crate::NetworkAttachmentDefinition> {
        ["a", "b"]
            .iter()
            .map(|n| {
                crate::NetworkAttachmentDefinition::with_config(
                    "default",
                    n,
                    &format!(r#"{{"type":"kube-ovn","provider":"{n}.default.ovn"}}"#),
                )
            })
            .collect()
    }

    /// Both sides' view of every kube-ovn attachment of a pod: the controller's provider (from
    /// the NADs) and the daemon's (from the request's NAD provider and ifname).
    fn both_sides(networks: &str) -> Vec<(String, String)> {
        let elements = parse_networks_annotation(networks, "default").unwrap();
        let annotations = BTreeMap::from([(NETWORKS_ANNOTATION.to_owned(), networks.to_owned())]);
        crate::resolve_attachments(&elements, &kube_ovn_nads())
            .unwrap()
            .into_iter()
            .map(|a| {
                let (daemon, element) =
                    provider_of_interface(&annotations, "default", &a.nad_provider, &a.interface);
                assert_eq!(element.as_ref(), Some(&a.element));
                (a.provider, daemon)
            })
            .collect()
    }

    /// The disagreement of issue 12: for the same NAD attached twice the controller wrote
    /// `<p>.<ifname>.kubernetes.io/*` while the daemon waited for `<p>.kubernetes.io/allocated`,
    /// so ADD hung until its timeout.
    #[test]
    fn the_same_nad_twice_resolves_alike_on_both_sides() {
        let got =
            both_sides(r#"[{"name":"a","interface":"net1"},{"name":"a","interface":"net2"}]"#);
        assert_eq!(
            got,
            [
                (
                    "a.default.ovn.net1".to_owned(),
                    "a.default.ovn.net1".to_owned()
                ),
                (
                    "a.default.ovn.net2".to_owned(),
                    "a.default.ovn.net2".to_owned()
                ),
            ]
        );
        // Once: the NAD's provider on both sides.
        assert_eq!(
            both_sides("a,b"),
            [
                ("a.default.ovn".to_owned(), "a.default.ovn".to_owned()),
                ("b.default.ovn".to_owned(), "b.default.ovn".to_owned()),
            ]
        );
        // No networks annotation (a pod set up by hand): the NAD's provider, no element.
        assert_eq!(
            provider_of_interface(&BTreeMap::new(), "default", "a.default.ovn", "net1"),
            ("a.default.ovn".to_owned(), None)
        );
    }

    fn v4_net() -> impl Strategy<Value = (IpNet, IpNet, Option<IpAddr>)> {
        (any::<u32>(), 8u8..=30, any::<u32>(), any::<bool>()).prop_map(|(base, len, host, gw)| {
            let cidr = IpNet::new(IpAddr::V4(Ipv4Addr::from(base)), len)
                .unwrap()
                .trunc();
            let size = 1u32 << (32 - len);
            let pick = |n: u32| {
                IpAddr::V4(Ipv4Addr::from(
                    u32::from(match cidr.addr() {
                        IpAddr::V4(a) => a,
                        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                    }) + n % size,
                ))
            };
            let addr = IpNet::new(pick(host), len).unwrap();
            (cidr, addr, gw.then(|| pick(host.wrapping_add(1))))
        })
    }

    fn v6_net() -> impl Strategy<Value = (IpNet, IpNet, Option<IpAddr>)> {
        (any::<u128>(), 48u8..=120, any::<u64>(), any::<bool>()).prop_map(
            |(base, len, host, gw)| {
                let cidr = IpNet::new(IpAddr::V6(Ipv6Addr::from(base)), len)
                    .unwrap()
                    .trunc();
                let size = 1u128 << (128 - len);
                let start = match cidr.addr() {
                    IpAddr::V6(a) => u128::from(a),
                    IpAddr::V4(_) => 0,
                };
                let pick = |n: u64| IpAddr::V6(Ipv6Addr::from(start + u128::from(n) % size));
                let addr = IpNet::new(pick(host), len).unwrap();
                (cidr, addr, gw.then(|| pick(host.wrapping_add(1))))
            },
        )
    }

    fn allocation() -> impl Strategy<Value = Allocation> {
        let families = prop_oneof![
            v4_net().prop_map(|a| vec![a]),
            v6_net().prop_map(|a| vec![a]),
            (v4_net(), v6_net()).prop_map(|(a, b)| vec![a, b]),
            (v6_net(), v4_net()).prop_map(|(a, b)| vec![a, b]),
        ];
        (
            families,
            any::<[u8; 6]>(),
            "[a-z][a-z0-9-]{0,20}",
            proptest::option::of("[a-z][a-z0-9-]{0,20}"),
        )
            .prop_map(|(families, mut mac, switch, router)| {
                mac[0] &= 0xfe;
                Allocation {
                    addresses: families.iter().map(|f| f.1).collect(),
                    cidrs: families.iter().map(|f| f.0).collect(),
                    gateways: families.iter().filter_map(|f| f.2).collect(),
                    mac: MacAddr(mac),
                    logical_switch: switch,
                    logical_router: router,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// What the controller writes is what the daemon reads, for every valid allocation.
        #[test]
        fn to_then_from_annotations_is_identity(a in allocation(), provider in "[a-z]{1,8}\\.[a-z]{1,8}\\.ovn") {
            let written = a.to_annotations(&provider);
            prop_assert_eq!(Allocation::from_annotations(&written, &provider), Ok(a));
        }

        /// Whatever a pod selects, the daemon keys an attachment as the controller does.
        #[test]
        fn controller_and_daemon_resolve_the_same_provider(
            items in proptest::collection::vec(("[ab]", any::<bool>()), 1..6)
        ) {
            let networks = items
                .iter()
                .enumerate()
                .map(|(i, (name, explicit))| {
                    if *explicit { format!("{name}@if{i}") } else { name.clone() }
                })
                .collect::<Vec<_>>()
                .join(",");
            for (controller, daemon) in both_sides(&networks) {
                prop_assert_eq!(controller, daemon);
            }
        }

        /// Any value under any of our keys gives an allocation or an error, never a panic.
        #[test]
        fn from_annotations_takes_any_text(values in proptest::collection::vec(".{0,40}", 7)) {
            let keys = AnnotationKey::WRITTEN_BY_CONTROLLER;
            let annotations: BTreeMap<String, String> = keys
                .iter()
                .zip(values)
                .map(|(k, v)| (annotation_key(P, *k), v))
                .chain([(annotation_key(P, AnnotationKey::Allocated), "true".to_owned())])
                .collect();
            let _ = Allocation::from_annotations(&annotations, P);
            let _ = routes(&annotations, P);
        }
    }
}
