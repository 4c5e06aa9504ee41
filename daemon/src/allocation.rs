//! What the controller decided for one attachment, read from the pod's annotations through the
//! contract in [`crds::attachment`] (the one parser of those keys), plus the user's route keys.
//! [`crate::plan`] turns it and the CNI request into what ADD does.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crds::attachment;
use ipnet::IpNet;

use crate::interface::RouteSpec;

/// An annotation that is missing or malformed: the contract's error, which names the key and
/// the value.
pub type AllocationError = crds::Error;

/// One attachment as the daemon plumbs it: the controller's allocation and the user's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The attachment's provider, whose annotations these are (it names the LSP).
    pub provider: String,
    /// What the controller wrote.
    pub allocated: crds::Allocation,
    /// Route everything through this attachment.
    pub default_route: bool,
    /// Extra routes from the `routes` annotation.
    pub routes: Vec<RouteSpec>,
}

impl Allocation {
    /// Reads the allocation of `provider` from `annotations`; `element` is the attachment's
    /// selection element, whose `default-route` asks for the default route too.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        provider: &str,
        element: Option<&crds::NetworkSelectionElement>,
    ) -> Result<Self, AllocationError> {
        let allocated = crds::Allocation::from_annotations(annotations, provider)?;
        let default_route = attachment::default_route(annotations, provider, element)?;
        let routes = attachment::routes(annotations, provider)?
            .into_iter()
            .map(|r| RouteSpec {
                dst: r.dst,
                via: r.via,
            })
            .collect();
        Ok(Self {
            provider: provider.to_owned(),
            allocated,
            default_route,
            routes,
        })
    }

    /// The addresses, each with its subnet's prefix length.
    pub fn addresses(&self) -> &[IpNet] {
        &self.allocated.addresses
    }

    /// The MAC as the kernel takes it.
    pub fn mac(&self) -> [u8; 6] {
        self.allocated.mac.0
    }

    /// Every route the pod gets for this attachment: the custom ones, then a default route per
    /// family through the gateway when asked.
    pub fn pod_routes(&self) -> Vec<RouteSpec> {
        let mut routes = self.routes.clone();
        if self.default_route {
            for gw in &self.allocated.gateways {
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

    /// The gateway of the family of `addr`, if the subnet has one.
    pub fn gateway_for(&self, addr: &IpAddr) -> Option<IpAddr> {
        self.allocated.gateway_for(addr)
    }
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
        let a = Allocation::from_annotations(&annotations(&[]), P, None).unwrap();
        assert_eq!(
            a.addresses(),
            vec![
                "10.100.0.5/16".parse::<IpNet>().unwrap(),
                "fd00::5/64".parse().unwrap()
            ]
        );
        assert_eq!(a.mac(), [0, 0, 0, 0xaa, 0xbb, 0xcc]);
        assert_eq!(a.allocated.logical_switch, "subnet-secondary");
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
            None,
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
            let err = Allocation::from_annotations(&annotations(extra), P, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{extra:?}: {err:?} lacks {want:?}");
            assert!(err.contains(P), "{extra:?}: {err:?} does not name the key");
        }
        let mut missing = annotations(&[]);
        missing.remove(&format!("{P}.kubernetes.io/mac_address"));
        let err = Allocation::from_annotations(&missing, P, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mac_address is missing"), "{err}");
    }
}
