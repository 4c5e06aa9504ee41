//! What the controller decided for one attachment, read from the pod's annotations, and the
//! pure translation of it (plus the CNI request) into an interface spec and a CNI answer.
//!
//! Annotations are outside input: every value is validated, and a bad one is an error that
//! names the annotation and the value.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use crds::naming::{AnnotationKey, annotation_key};
use ipnet::IpNet;
use serde::Deserialize;

use crate::interface::{InterfaceSpec, RouteSpec};

/// The controller's allocation for one (pod, provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Addresses with the subnet's prefix length (one per family).
    pub addresses: Vec<IpNet>,
    /// Gateways, one per family where the subnet has one.
    pub gateways: Vec<IpAddr>,
    /// MAC address.
    pub mac: [u8; 6],
    /// Logical switch (subnet) name.
    pub logical_switch: String,
    /// Route everything through this attachment.
    pub default_route: bool,
    /// Extra routes from the `routes` annotation.
    pub routes: Vec<RouteSpec>,
}

/// An annotation that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    /// The controller has not finished (no `allocated: "true"`).
    #[error("annotation {key} is not \"true\" yet")]
    NotAllocated {
        /// The full annotation key.
        key: String,
    },
    /// A required annotation is absent.
    #[error("annotation {key} is missing although {allocated} is \"true\"")]
    Missing {
        /// The missing key.
        key: String,
        /// The `allocated` key.
        allocated: String,
    },
    /// An annotation has a bad value.
    #[error("annotation {key}={value:?}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// One element of the `routes` annotation (upstream's shape: `dst` and `gw`).
#[derive(Debug, Deserialize)]
struct RouteAnnotation {
    #[serde(default)]
    dst: String,
    #[serde(default)]
    gw: String,
}

impl Allocation {
    /// Reads the allocation of `provider` from `annotations`.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        provider: &str,
    ) -> Result<Self, AllocationError> {
        let key = |k| annotation_key(provider, k);
        let allocated = key(AnnotationKey::Allocated);
        if annotations.get(&allocated).map(String::as_str) != Some("true") {
            return Err(AllocationError::NotAllocated { key: allocated });
        }
        let get = |k: AnnotationKey| {
            let name = key(k);
            annotations
                .get(&name)
                .map(|v| (name.clone(), v.as_str()))
                .ok_or_else(|| AllocationError::Missing {
                    key: name,
                    allocated: allocated.clone(),
                })
        };
        let invalid = |key: &str, value: &str, reason: String| AllocationError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };

        let (ip_key, ips) = get(AnnotationKey::IpAddress)?;
        let (cidr_key, cidrs) = get(AnnotationKey::Cidr)?;
        let cidrs: Vec<IpNet> = split(cidrs)
            .map(|c| {
                c.parse::<IpNet>()
                    .map_err(|e| invalid(&cidr_key, cidrs, e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let mut addresses = Vec::new();
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
                .any(|a: &IpNet| a.addr().is_ipv4() == addr.is_ipv4())
            {
                return Err(invalid(
                    &ip_key,
                    ips,
                    "more than one address per family".into(),
                ));
            }
            addresses.push(net);
        }
        if addresses.is_empty() {
            return Err(invalid(&ip_key, ips, "no address".into()));
        }

        let (mac_key, mac) = get(AnnotationKey::MacAddress)?;
        let mac = parse_mac(mac).map_err(|reason| invalid(&mac_key, mac, reason))?;

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

        let default_route = match annotations.get(&key(AnnotationKey::DefaultRoute)) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" || v.is_empty() => false,
            Some(v) => {
                return Err(invalid(
                    &key(AnnotationKey::DefaultRoute),
                    v,
                    "must be \"true\" or \"false\"".into(),
                ));
            }
        };
        let mut routes = Vec::new();
        if let Some(raw) = annotations.get(&key(AnnotationKey::Routes)) {
            let routes_key = key(AnnotationKey::Routes);
            let parsed: Vec<RouteAnnotation> = serde_json::from_str(raw).map_err(|e| {
                invalid(&routes_key, raw, format!("not a JSON list of routes: {e}"))
            })?;
            for r in parsed {
                let dst: IpNet = if r.dst.is_empty() {
                    return Err(invalid(&routes_key, raw, "a route has no dst".into()));
                } else {
                    r.dst.parse().map_err(|_| {
                        invalid(&routes_key, raw, format!("dst {:?} is not a CIDR", r.dst))
                    })?
                };
                let via = if r.gw.is_empty() {
                    None
                } else {
                    let gw: IpAddr = r.gw.parse().map_err(|_| {
                        invalid(&routes_key, raw, format!("gw {:?} is not an IP", r.gw))
                    })?;
                    if gw.is_ipv4() != dst.addr().is_ipv4() {
                        return Err(invalid(
                            &routes_key,
                            raw,
                            format!("gw {gw} and dst {dst} differ in family"),
                        ));
                    }
                    Some(gw)
                };
                routes.push(RouteSpec {
                    dst: dst.trunc(),
                    via,
                });
            }
        }
        Ok(Self {
            addresses,
            gateways,
            mac,
            logical_switch,
            default_route,
            routes,
        })
    }

    /// Every route the pod gets for this attachment: the custom ones, then a default route per
    /// family through the gateway when asked.
    pub fn pod_routes(&self) -> Vec<RouteSpec> {
        let mut routes = self.routes.clone();
        if self.default_route {
            for gw in &self.gateways {
                let dst = if gw.is_ipv4() {
                    IpNet::V4(ipnet::Ipv4Net::default())
                } else {
                    IpNet::V6(ipnet::Ipv6Net::default())
                };
                routes.push(RouteSpec {
                    dst,
                    via: Some(*gw),
                });
            }
        }
        routes
    }

    /// The interface spec for the CNI request's container, netns and ifname.
    pub fn interface_spec(
        &self,
        container_id: &str,
        ifname: &str,
        netns: PathBuf,
        mtu: u32,
        disable_tx_checksum: bool,
    ) -> InterfaceSpec {
        InterfaceSpec {
            container_id: container_id.to_owned(),
            ifname: ifname.to_owned(),
            netns,
            mac: self.mac,
            mtu,
            addresses: self.addresses.clone(),
            routes: self.pod_routes(),
            disable_tx_checksum,
        }
    }

    /// The gateway of the family of `addr`, if the subnet has one.
    pub fn gateway_for(&self, addr: &IpAddr) -> Option<IpAddr> {
        self.gateways
            .iter()
            .copied()
            .find(|g| g.is_ipv4() == addr.is_ipv4())
    }
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// Parses `aa:bb:cc:dd:ee:ff` (unicast only).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut out {
        let part = parts
            .next()
            .ok_or("must be six hex octets separated by ':'")?;
        if part.len() != 2 {
            return Err("must be six hex octets separated by ':'".into());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| format!("{part:?} is not hex"))?;
    }
    if parts.next().is_some() {
        return Err("must be six hex octets separated by ':'".into());
    }
    if out[0] & 1 == 1 {
        return Err("is a multicast address".into());
    }
    Ok(out)
}

/// Formats a MAC as lower-case `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "net-a.default.ovn";

    fn annotations(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            ("allocated", "true"),
            ("ip_address", "10.100.0.5,fd00::5"),
            ("cidr", "10.100.0.0/16,fd00::/64"),
            ("gateway", "10.100.0.1,fd00::1"),
            ("mac_address", "00:00:00:AA:BB:CC"),
            ("logical_switch", "subnet-secondary"),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{P}.kubernetes.io/{k}"), v.to_owned()))
        .collect();
        for (k, v) in extra {
            m.insert(format!("{P}.kubernetes.io/{k}"), (*v).to_owned());
        }
        m
    }

    #[test]
    fn a_dual_stack_allocation_reads_with_prefixes_from_the_subnet() {
        let a = Allocation::from_annotations(&annotations(&[]), P).unwrap();
        assert_eq!(
            a.addresses,
            vec![
                "10.100.0.5/16".parse::<IpNet>().unwrap(),
                "fd00::5/64".parse().unwrap()
            ]
        );
        assert_eq!(a.mac, [0, 0, 0, 0xaa, 0xbb, 0xcc]);
        assert_eq!(a.logical_switch, "subnet-secondary");
        // No default route unless asked: eth0 belongs to the primary CNI.
        assert!(a.pod_routes().is_empty());
    }

    #[test]
    fn default_route_and_custom_routes_become_pod_routes() {
        let a = Allocation::from_annotations(
            &annotations(&[
                ("default_route", "true"),
                (
                    "routes",
                    r#"[{"dst":"192.168.0.0/16","gw":"10.100.0.254"},{"dst":"172.16.0.0/12"}]"#,
                ),
            ]),
            P,
        )
        .unwrap();
        let routes = a.pod_routes();
        assert_eq!(routes.len(), 4);
        assert_eq!(routes[0].via, Some("10.100.0.254".parse().unwrap()));
        assert_eq!(routes[1].via, None);
        assert_eq!(routes[2].dst.to_string(), "0.0.0.0/0");
        assert_eq!(routes[3].dst.to_string(), "::/0");
    }

    #[test]
    fn each_bad_annotation_class_names_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("allocated", "false")], "allocated is not \"true\""),
            (&[("ip_address", "10.100.0.300")], "is not an IP"),
            (&[("ip_address", "10.200.0.5")], "none of the subnet CIDRs"),
            (
                &[("ip_address", "10.100.0.5,10.100.0.6")],
                "more than one address per family",
            ),
            (&[("ip_address", "")], "no address"),
            (&[("cidr", "10.100.0.0/33")], "cidr"),
            (&[("mac_address", "00:00:00:aa:bb")], "six hex octets"),
            (&[("mac_address", "01:00:00:aa:bb:cc")], "multicast"),
            (&[("gateway", "10.200.0.1")], "is outside"),
            (&[("default_route", "yes")], "must be \"true\" or \"false\""),
            (&[("routes", "{")], "not a JSON list"),
            (&[("routes", r#"[{"gw":"10.100.0.1"}]"#)], "has no dst"),
            (&[("routes", r#"[{"dst":"x"}]"#)], "is not a CIDR"),
            (
                &[("routes", r#"[{"dst":"10.1.0.0/16","gw":"fd00::1"}]"#)],
                "differ in family",
            ),
        ];
        for (extra, want) in cases {
            let err = Allocation::from_annotations(&annotations(extra), P)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{extra:?}: {err:?} lacks {want:?}");
            assert!(err.contains(P), "{extra:?}: {err:?} does not name the key");
        }
        let mut missing = annotations(&[]);
        missing.remove(&format!("{P}.kubernetes.io/mac_address"));
        let err = Allocation::from_annotations(&missing, P)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mac_address is missing"), "{err}");
    }
}
