//! ADD as a plan: the pure translation of one attachment's [`Allocation`] and the plugin's
//! request into what the node must get (the pod interface, the OVS port) and what the plugin is
//! answered. No I/O here; [`crate::apply`] executes a plan, [`crate::server`] makes one.

use cni::api::proto::{AddResponse, AttachmentRequest, IpConfig, Route};
use std::net::IpAddr;
use std::path::PathBuf;

use crate::allocation::Allocation;
use crate::interface::InterfaceSpec;
use crate::ovs::PortSpec;

/// The node's settings a plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// Integration bridge the port goes on.
    pub bridge: &'a str,
    /// Turn off TX checksum offload in pods (userspace datapath).
    pub disable_tx_checksum: bool,
}

/// What one ADD does.
#[derive(Debug, Clone, PartialEq)]
pub struct AddPlan {
    /// The answer to the plugin (the CNI result before the plugin renders it in the version
    /// asked for); `host_ifname` is set when there is an interface.
    pub response: AddResponse,
    /// The node side; `None` for an IPAM-only attachment (addresses, no interface).
    pub attach: Option<Attach>,
}

/// The node side of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    /// The veth, its pod end configured.
    pub interface: InterfaceSpec,
    /// The OVS port of its host end.
    pub port: PortSpec,
}

/// The pod interface's MTU: the NAD's (`nad`, 0 when unset) wins, then the Subnet's
/// `spec.mtu` when it is a valid MTU (68..=65535), then the daemon's flag.
pub fn pod_mtu(nad: u32, subnet: Option<u32>, flag: u32) -> u32 {
    if nad != 0 {
        return nad;
    }
    match subnet {
        Some(m) if (68..=65535).contains(&m) => m,
        _ => flag,
    }
}

/// Plans the ADD of `request` with what the controller allocated, at `mtu` ([`pod_mtu`]).
pub fn plan(
    allocation: &Allocation,
    request: &AttachmentRequest,
    mtu: u32,
    node: Node<'_>,
) -> AddPlan {
    let addresses = allocation.addresses();
    let routes = allocation.pod_routes();
    let mut response = AddResponse {
        mac: allocation.allocated.mac.to_string(),
        mtu,
        ips: addresses
            .iter()
            .map(|a| IpConfig {
                address: a.to_string(),
                gateway: allocation
                    .gateway_for(&a.addr())
                    .map(|g| g.to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        routes: routes
            .iter()
            .map(|rt| Route {
                dst: rt.dst.to_string(),
                gw: rt.via.map(|g| g.to_string()).unwrap_or_default(),
            })
            .collect(),
        host_ifname: String::new(),
    };
    if request.ipam_only {
        return AddPlan {
            response,
            attach: None,
        };
    }
    let host_ifname = crate::naming::host_ifname(&request.container_id, &request.ifname);
    let interface = InterfaceSpec {
        container_id: request.container_id.clone(),
        ifname: request.ifname.clone(),
        netns: PathBuf::from(&request.netns),
        mac: allocation.mac(),
        mtu,
        addresses: addresses.to_vec(),
        routes,
        disable_tx_checksum: node.disable_tx_checksum,
    };
    let port = PortSpec {
        bridge: node.bridge.to_owned(),
        name: host_ifname.clone(),
        iface_id: crds::naming::lsp_name(
            &request.pod_name,
            &request.pod_namespace,
            &allocation.provider,
        ),
        pod_name: request.pod_name.clone(),
        pod_namespace: request.pod_namespace.clone(),
        pod_uid: request.pod_uid.clone(),
        netns: request.netns.clone(),
        ips: addresses
            .iter()
            .map(|a| a.addr().to_string())
            .collect::<Vec<_>>()
            .join(","),
        container_id: request.container_id.clone(),
        ifname: request.ifname.clone(),
        provider: request.provider.clone(),
    };
    response.host_ifname = host_ifname;
    AddPlan {
        response,
        attach: Some(Attach { interface, port }),
    }
}

/// Checks the runtime's static requests (`runtimeConfig.ips`/`mac`) against what the controller
/// allocated: both come from the same networks annotation, so a difference is a real conflict.
pub fn check_static_requests(r: &AttachmentRequest, alloc: &Allocation) -> Result<(), String> {
    for ip in &r.ips {
        let bare = ip.split_once('/').map_or(ip.as_str(), |(a, _)| a);
        let addr: IpAddr = bare
            .parse()
            .map_err(|_| format!("requested IP {ip:?} is not an IP"))?;
        if !alloc.addresses().iter().any(|a| a.addr() == addr) {
            return Err(format!(
                "requested IP {ip} but kube-ovn-controller allocated {:?}",
                alloc
                    .addresses()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ));
        }
    }
    if !r.mac.is_empty() {
        let mac: crds::MacAddr = r
            .mac
            .parse()
            .map_err(|e| format!("requested MAC {:?}: {e}", r.mac))?;
        if mac != alloc.allocated.mac {
            return Err(format!(
                "requested MAC {} but kube-ovn-controller allocated {}",
                r.mac, alloc.allocated.mac
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interface::RouteSpec;
    use ipnet::IpNet;

    const NODE: Node<'static> = Node {
        bridge: "br-int",
        disable_tx_checksum: true,
    };

    /// An allocation on `net-a.default.ovn` of `addresses` (`addr/prefix`, each with its
    /// CIDR) and `gateways`; no routes.
    fn allocation(addresses: &[&str], gateways: &[&str]) -> Allocation {
        let addresses: Vec<IpNet> = addresses.iter().map(|a| a.parse().unwrap()).collect();
        Allocation {
            provider: "net-a.default.ovn".into(),
            allocated: crds::Allocation {
                cidrs: addresses.iter().map(IpNet::trunc).collect(),
                addresses,
                gateways: gateways.iter().map(|g| g.parse().unwrap()).collect(),
                mac: crds::MacAddr([0, 0, 0, 0xaa, 0xbb, 0xcc]),
                logical_switch: "subnet-a".into(),
                logical_router: None,
            },
            default_route: false,
            routes: Vec::new(),
        }
    }

    fn request() -> AttachmentRequest {
        AttachmentRequest {
            container_id: "ctr-1".into(),
            netns: "/var/run/netns/p1".into(),
            ifname: "net1".into(),
            pod_name: "p1".into(),
            pod_namespace: "default".into(),
            pod_uid: "uid-p1".into(),
            provider: "net-a.default.ovn".into(),
            ..AttachmentRequest::default()
        }
    }

    fn attach(plan: &AddPlan) -> &Attach {
        plan.attach.as_ref().unwrap()
    }

    #[test]
    fn one_ipv4_address_gives_one_interface_one_port_and_the_answer() {
        let plan = plan(
            &allocation(&["10.100.0.5/16"], &["10.100.0.1"]),
            &request(),
            1400,
            NODE,
        );
        let host = crate::naming::host_ifname("ctr-1", "net1");
        assert_eq!(
            plan.response,
            AddResponse {
                mac: "00:00:00:aa:bb:cc".into(),
                mtu: 1400,
                ips: vec![IpConfig {
                    address: "10.100.0.5/16".into(),
                    gateway: "10.100.0.1".into(),
                }],
                routes: Vec::new(),
                host_ifname: host.clone(),
            }
        );
        let Attach { interface, port } = attach(&plan);
        assert_eq!(
            *interface,
            InterfaceSpec {
                container_id: "ctr-1".into(),
                ifname: "net1".into(),
                netns: "/var/run/netns/p1".into(),
                mac: [0, 0, 0, 0xaa, 0xbb, 0xcc],
                mtu: 1400,
                addresses: vec!["10.100.0.5/16".parse().unwrap()],
                routes: Vec::new(),
                disable_tx_checksum: true,
            }
        );
        assert_eq!(
            *port,
            PortSpec {
                bridge: "br-int".into(),
                name: host,
                iface_id: "p1.default.net-a.default.ovn".into(),
                pod_name: "p1".into(),
                pod_namespace: "default".into(),
                pod_uid: "uid-p1".into(),
                netns: "/var/run/netns/p1".into(),
                ips: "10.100.0.5".into(),
                container_id: "ctr-1".into(),
                ifname: "net1".into(),
                provider: "net-a.default.ovn".into(),
            }
        );
    }

    #[test]
    fn dual_stack_lists_both_families_ipv4_first_with_their_gateways() {
        let plan = plan(
            &allocation(&["10.100.0.5/16", "fd00::5/64"], &["10.100.0.1", "fd00::1"]),
            &request(),
            1400,
            NODE,
        );
        let ips: Vec<(&str, &str)> = plan
            .response
            .ips
            .iter()
            .map(|i| (i.address.as_str(), i.gateway.as_str()))
            .collect();
        assert_eq!(
            ips,
            [("10.100.0.5/16", "10.100.0.1"), ("fd00::5/64", "fd00::1")]
        );
        assert_eq!(attach(&plan).port.ips, "10.100.0.5,fd00::5");
        assert_eq!(attach(&plan).interface.addresses.len(), 2);
    }

    #[test]
    fn a_family_without_a_gateway_answers_an_empty_gateway() {
        let plan = plan(
            &allocation(&["10.100.0.5/16", "fd00::5/64"], &["10.100.0.1"]),
            &request(),
            1400,
            NODE,
        );
        assert_eq!(plan.response.ips[1].gateway, "");
    }

    #[test]
    fn custom_routes_then_default_routes_reach_the_kernel_and_the_answer() {
        let mut a = allocation(&["10.100.0.5/16", "fd00::5/64"], &["10.100.0.1", "fd00::1"]);
        a.routes = vec![
            RouteSpec {
                dst: "192.168.0.0/16".parse().unwrap(),
                via: Some("10.100.0.254".parse().unwrap()),
            },
            RouteSpec {
                dst: "172.16.0.0/12".parse().unwrap(),
                via: None,
            },
        ];
        a.default_route = true;
        let plan = plan(&a, &request(), 1400, NODE);
        let answered: Vec<(&str, &str)> = plan
            .response
            .routes
            .iter()
            .map(|r| (r.dst.as_str(), r.gw.as_str()))
            .collect();
        assert_eq!(
            answered,
            [
                ("192.168.0.0/16", "10.100.0.254"),
                ("172.16.0.0/12", ""),
                ("0.0.0.0/0", "10.100.0.1"),
                ("::/0", "fd00::1"),
            ]
        );
        assert_eq!(attach(&plan).interface.routes, a.pod_routes());
    }

    #[test]
    fn without_default_route_the_pod_keeps_its_primary_default() {
        let plan = plan(
            &allocation(&["10.100.0.5/16"], &["10.100.0.1"]),
            &request(),
            1400,
            NODE,
        );
        assert!(plan.response.routes.is_empty());
        assert!(attach(&plan).interface.routes.is_empty());
    }

    #[test]
    fn the_nad_mtu_wins_then_the_subnet_then_the_flag() {
        assert_eq!(pod_mtu(9000, Some(1300), 1400), 9000);
        assert_eq!(pod_mtu(0, Some(1300), 1400), 1300);
        assert_eq!(pod_mtu(0, None, 1400), 1400);
        // A Subnet mtu no interface can have falls back to the flag.
        assert_eq!(pod_mtu(0, Some(67), 1400), 1400);
        assert_eq!(pod_mtu(0, Some(65536), 1400), 1400);
        let plan = plan(
            &allocation(&["10.100.0.5/16"], &[]),
            &request(),
            pod_mtu(0, Some(1300), 1400),
            NODE,
        );
        assert_eq!(plan.response.mtu, 1300);
        assert_eq!(attach(&plan).interface.mtu, 1300);
    }

    #[test]
    fn ipam_only_answers_addresses_and_touches_nothing_on_the_node() {
        let r = AttachmentRequest {
            ipam_only: true,
            ..request()
        };
        let plan = plan(
            &allocation(&["10.100.0.5/16"], &["10.100.0.1"]),
            &r,
            1400,
            NODE,
        );
        assert_eq!(plan.attach, None);
        assert_eq!(plan.response.host_ifname, "");
        assert_eq!(plan.response.ips.len(), 1);
    }

    #[test]
    fn a_static_mac_and_ips_must_be_what_the_controller_allocated() {
        let a = allocation(&["10.100.0.5/16", "fd00::5/64"], &[]);
        let with = |ips: &[&str], mac: &str| AttachmentRequest {
            ips: ips.iter().map(|s| (*s).to_owned()).collect(),
            mac: mac.into(),
            ..request()
        };
        assert_eq!(
            check_static_requests(
                &with(&["10.100.0.5/16", "fd00::5"], "00:00:00:AA:BB:CC"),
                &a
            ),
            Ok(())
        );
        let cases = [
            (with(&["10.100.0.6"], ""), "requested IP 10.100.0.6 but"),
            (with(&["10.100.0.300"], ""), "is not an IP"),
            (
                with(&[], "02:00:00:00:00:01"),
                "requested MAC 02:00:00:00:00:01 but kube-ovn-controller allocated 00:00:00:aa:bb:cc",
            ),
            (with(&[], "02:00"), "requested MAC \"02:00\""),
        ];
        for (r, want) in cases {
            let err = check_static_requests(&r, &a).unwrap_err();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
        // The plan carries the allocated MAC to the kernel and the answer.
        let plan = plan(&a, &with(&[], "00:00:00:aa:bb:cc"), 1400, NODE);
        assert_eq!(attach(&plan).interface.mac, a.mac());
        assert_eq!(plan.response.mac, "00:00:00:aa:bb:cc");
    }
}
