//! The diagnose chain of one attachment (pure): what [`super::gather`] found, judged link by
//! link in the order an attachment is made (DESIGN §3, data flow): NAD → provider → Subnet →
//! allocation (the pod's annotations) → IP CR → logical switch port (NB) → port binding and its
//! chassis (SB) → OVS interface on the pod's node with `ovn-installed`.

use std::fmt::Write as _;

use crds::Allocation;
use crds::nad::NadClass;

/// What a lookup in a database found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The row.
    Found(T),
    /// No such row.
    Missing,
    /// The lookup itself failed (why).
    Failed(String),
    /// Not looked up (why).
    Skipped(String),
}

/// A Subnet binding the attachment's provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetFacts {
    /// Its name (its logical switch).
    pub name: String,
    /// `spec.cidrBlock` (or `spec.cidr`).
    pub cidr: String,
    /// `spec.vpc`.
    pub vpc: Option<String>,
}

/// The `IP` CR of the attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpFacts {
    /// `spec.subnet`.
    pub subnet: String,
    /// `spec.ipAddress`.
    pub ip_address: String,
    /// `spec.macAddress`.
    pub mac_address: String,
}

/// The logical switch port in Northbound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LspFacts {
    /// The switches that hold it (one, when all is well).
    pub switches: Vec<String>,
    /// Its `addresses`.
    pub addresses: Vec<String>,
    /// Its `up`, when northd has set it.
    pub up: Option<bool>,
}

/// The port binding in Southbound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingFacts {
    /// The name of the chassis that claimed it.
    pub chassis: Option<String>,
}

/// The OVS interface on the pod's node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceFacts {
    /// Its name (the host side of the veth).
    pub name: String,
    /// `external_ids:ovn-installed`.
    pub ovn_installed: bool,
}

/// Everything gathered about one attachment.
#[derive(Debug, Clone)]
pub struct AttachmentFacts {
    /// The interface in the pod (`net1`...).
    pub interface: String,
    /// The NAD, `<ns>/<name>`.
    pub nad: String,
    /// The NAD's class, or why there is none (missing, bad config).
    pub class: Result<NadClass, String>,
    /// The attachment's provider (the NAD's, or `<p>.<ifname>`).
    pub provider: Option<String>,
    /// The Subnets binding the NAD's provider.
    pub subnets: Vec<SubnetFacts>,
    /// The controller's allocation, from the pod's annotations, or why it is unreadable.
    pub allocation: Result<Allocation, String>,
    /// The name of the attachment's port and IP CR.
    pub port_name: Option<String>,
    /// The IP CR.
    pub ip: Lookup<IpFacts>,
    /// The logical switch port.
    pub lsp: Lookup<LspFacts>,
    /// The port binding.
    pub binding: Lookup<BindingFacts>,
    /// The pod's node.
    pub node: Option<String>,
    /// The OVS interface on that node.
    pub interface_row: Lookup<InterfaceFacts>,
}

/// A link's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Sound, with what was seen.
    Ok(String),
    /// Broken, with why and what to do.
    Broken(String),
    /// Not judged (why).
    NotChecked(String),
}

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What it is.
    pub what: &'static str,
    /// The verdict.
    pub verdict: Verdict,
}

fn ok(what: &'static str, detail: impl Into<String>) -> Link {
    Link {
        what,
        verdict: Verdict::Ok(detail.into()),
    }
}

fn broken(what: &'static str, why: impl Into<String>) -> Link {
    Link {
        what,
        verdict: Verdict::Broken(why.into()),
    }
}

fn not_checked(what: &'static str, why: impl Into<String>) -> Link {
    Link {
        what,
        verdict: Verdict::NotChecked(why.into()),
    }
}

/// The link names, in chain order.
pub const LINKS: [&str; 8] = [
    "NAD",
    "provider",
    "Subnet",
    "allocation",
    "IP CR",
    "logical switch port",
    "port binding",
    "OVS interface",
];

/// Judges every link of `f`.
pub fn evaluate(f: &AttachmentFacts) -> Vec<Link> {
    let [nad, provider_l, subnet_l, alloc_l, ip_l, lsp_l, pb_l, ovs_l] = LINKS;
    let mut links = Vec::new();
    let class = match &f.class {
        Ok(class) => {
            let kind = match class {
                NadClass::Attachment { .. } => "type kube-ovn".to_owned(),
                NadClass::IpamOnly { plugin, .. } => format!("{plugin} with kube-ovn IPAM"),
                NadClass::NotOurs => "not a kube-ovn network".to_owned(),
            };
            links.push(ok(nad, format!("{}: {kind}", f.nad)));
            class
        }
        Err(why) => {
            links.push(broken(nad, format!("{}: {why}", f.nad)));
            for what in &LINKS[1..] {
                links.push(not_checked(what, "no NAD"));
            }
            return links;
        }
    };
    let nad_provider = class.provider().unwrap_or_default();
    match &f.provider {
        Some(p) if p == nad_provider => links.push(ok(provider_l, p.clone())),
        Some(p) => links.push(ok(
            provider_l,
            format!("{p} (the NAD's {nad_provider}, attached more than once)"),
        )),
        None => links.push(broken(provider_l, "the NAD names no provider")),
    }

    let allocated_switch = f
        .allocation
        .as_ref()
        .ok()
        .map(|a| a.logical_switch.as_str());
    let subnet = match (allocated_switch, f.subnets.as_slice()) {
        (_, []) => {
            links.push(broken(
                subnet_l,
                format!(
                    "no Subnet has spec.provider {nad_provider}: create one, or fix the NAD's \
                     provider"
                ),
            ));
            None
        }
        (Some(name), subnets) => match subnets.iter().find(|s| s.name == name) {
            Some(s) => Some(s),
            None => {
                links.push(broken(
                    subnet_l,
                    format!(
                        "the pod is allocated on {name}, which is not a Subnet of provider \
                         {nad_provider}"
                    ),
                ));
                None
            }
        },
        (None, [one]) => Some(one),
        (None, many) => {
            links.push(broken(
                subnet_l,
                format!(
                    "{} Subnets bind provider {nad_provider}: the pod must choose one with \
                     {nad_provider}.kubernetes.io/logical_switch",
                    many.len()
                ),
            ));
            None
        }
    };
    if let Some(s) = subnet {
        let vpc = s.vpc.as_deref().unwrap_or("none");
        links.push(ok(
            subnet_l,
            format!("{} (cidr {}, vpc {vpc})", s.name, s.cidr),
        ));
    }

    let provider = f.provider.as_deref().unwrap_or(nad_provider);
    match &f.allocation {
        Ok(a) => {
            let addrs: Vec<String> = a.addresses.iter().map(ToString::to_string).collect();
            links.push(ok(
                alloc_l,
                format!("{} {} on {}", addrs.join(","), a.mac, a.logical_switch),
            ));
        }
        Err(why) => links.push(broken(
            alloc_l,
            format!(
                "{why}: the controller has not allocated for provider {provider}; see \
                 `kubectl describe pod` (Events) and the kube-ovn-controller log"
            ),
        )),
    }

    let name = f.port_name.as_deref().unwrap_or("?");
    let alloc = f.allocation.as_ref().ok();
    links.push(match &f.ip {
        Lookup::Found(ip) => {
            let mismatch = alloc.and_then(|a| {
                let want: Vec<String> = a.addresses.iter().map(|n| n.addr().to_string()).collect();
                let got: Vec<&str> = ip.ip_address.split(',').map(str::trim).collect();
                if ip.subnet != a.logical_switch {
                    Some(format!(
                        "IP {name} is on {}, the pod on {}",
                        ip.subnet, a.logical_switch
                    ))
                } else if want.iter().any(|w| !got.contains(&w.as_str())) {
                    Some(format!(
                        "IP {name} holds {}, the pod {}",
                        ip.ip_address,
                        want.join(",")
                    ))
                } else {
                    None
                }
            });
            match mismatch {
                Some(why) => broken(ip_l, why),
                None => ok(
                    ip_l,
                    format!(
                        "{name}: {} {} on {}",
                        ip.ip_address, ip.mac_address, ip.subnet
                    ),
                ),
            }
        }
        Lookup::Missing => broken(
            ip_l,
            format!(
                "no IP {name}: the controller did not record the allocation (its log says why)"
            ),
        ),
        Lookup::Failed(why) => broken(ip_l, format!("reading IP {name}: {why}")),
        Lookup::Skipped(why) => not_checked(ip_l, why.clone()),
    });

    links.push(match &f.lsp {
        Lookup::Found(lsp) => {
            let switch_ok = match alloc {
                Some(a) => lsp.switches == [a.logical_switch.clone()],
                None => lsp.switches.len() == 1,
            };
            let addresses = lsp.addresses.join(" ");
            let addresses_ok = alloc.is_none_or(|a| {
                addresses.contains(&a.mac.to_string())
                    && a.addresses.iter().all(|n| {
                        addresses
                            .split_whitespace()
                            .any(|w| w == n.addr().to_string())
                    })
            });
            if !switch_ok {
                broken(
                    lsp_l,
                    format!(
                        "{name} is on switch(es) {:?}, not the allocated one",
                        lsp.switches
                    ),
                )
            } else if !addresses_ok {
                broken(
                    lsp_l,
                    format!("{name} has addresses {addresses:?}, not the allocated MAC and IPs"),
                )
            } else {
                let up = match lsp.up {
                    Some(true) => "up",
                    _ => "not up",
                };
                ok(
                    lsp_l,
                    format!("{name} on {} ({addresses}), {up}", lsp.switches.join(",")),
                )
            }
        }
        Lookup::Missing => broken(
            lsp_l,
            format!(
                "no Logical_Switch_Port {name} in OVN Northbound: the controller has not written \
                 it (its log says why)"
            ),
        ),
        Lookup::Failed(why) => broken(lsp_l, format!("reading Northbound: {why}")),
        Lookup::Skipped(why) => not_checked(lsp_l, why.clone()),
    });

    let node = f.node.as_deref();
    links.push(match &f.binding {
        Lookup::Found(BindingFacts { chassis: Some(c) })
            if Some(c.as_str()) == node || node.is_none() =>
        {
            ok(pb_l, format!("{name} bound to chassis {c}"))
        }
        Lookup::Found(BindingFacts { chassis: Some(c) }) => broken(
            pb_l,
            format!(
                "{name} is bound to chassis {c}, but the pod runs on {}",
                node.unwrap_or("?")
            ),
        ),
        Lookup::Found(BindingFacts { chassis: None }) => broken(
            pb_l,
            format!(
                "{name} is bound to no chassis: ovn-controller on {} is not running, not \
                 connected to the Southbound, or has no OVS interface for the port",
                node.unwrap_or("the pod's node")
            ),
        ),
        Lookup::Missing => broken(
            pb_l,
            format!("no Port_Binding {name} in OVN Southbound: is ovn-northd running?"),
        ),
        Lookup::Failed(why) => broken(pb_l, format!("reading Southbound: {why}")),
        Lookup::Skipped(why) => not_checked(pb_l, why.clone()),
    });

    let on = node.unwrap_or("?");
    links.push(match &f.interface_row {
        Lookup::Found(i) if i.ovn_installed => {
            ok(ovs_l, format!("{} on {on}, ovn-installed=true", i.name))
        }
        Lookup::Found(i) => broken(
            ovs_l,
            format!(
                "{} on {on} has no ovn-installed=true: ovn-controller has not installed its flows",
                i.name
            ),
        ),
        Lookup::Missing => broken(
            ovs_l,
            format!(
                "no interface with external_ids:iface-id={name} on {on}: the CNI ADD did not \
                 plug it (see the kube-ovn-cni log on {on})"
            ),
        ),
        Lookup::Failed(why) => broken(ovs_l, format!("reading Open vSwitch on {on}: {why}")),
        Lookup::Skipped(why) => not_checked(ovs_l, why.clone()),
    });
    links
}

/// The index of the first broken link.
pub fn first_broken(links: &[Link]) -> Option<usize> {
    links
        .iter()
        .position(|l| matches!(l.verdict, Verdict::Broken(_)))
}

/// The chain as text, the first broken link marked.
pub fn render(links: &[Link]) -> String {
    let first = first_broken(links);
    let mut out = String::new();
    for (i, link) in links.iter().enumerate() {
        let (mark, detail) = match &link.verdict {
            Verdict::Ok(d) => ("ok", d.as_str()),
            Verdict::Broken(d) => ("BROKEN", d.as_str()),
            Verdict::NotChecked(d) => ("-", d.as_str()),
        };
        let arrow = if Some(i) == first {
            "   <== first broken link"
        } else {
            ""
        };
        let _ = writeln!(out, "  {mark:<7} {:<20} {detail}{arrow}", link.what);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: &str = "p1.default.net1.default.ovn";

    fn allocation() -> Allocation {
        Allocation {
            addresses: vec!["10.0.0.2/24".parse().unwrap()],
            cidrs: vec!["10.0.0.0/24".parse().unwrap()],
            gateways: vec!["10.0.0.1".parse().unwrap()],
            mac: crds::MacAddr([0x0a, 0, 0, 0, 0, 1]),
            logical_switch: "s1".into(),
            logical_router: Some("vpc1".into()),
        }
    }

    fn healthy() -> AttachmentFacts {
        AttachmentFacts {
            interface: "net1".into(),
            nad: "default/net1".into(),
            class: Ok(NadClass::Attachment {
                provider: "net1.default.ovn".into(),
                server_socket: crds::naming::DEFAULT_SERVER_SOCKET.into(),
            }),
            provider: Some("net1.default.ovn".into()),
            subnets: vec![SubnetFacts {
                name: "s1".into(),
                cidr: "10.0.0.0/24".into(),
                vpc: Some("vpc1".into()),
            }],
            allocation: Ok(allocation()),
            port_name: Some(PORT.into()),
            ip: Lookup::Found(IpFacts {
                subnet: "s1".into(),
                ip_address: "10.0.0.2".into(),
                mac_address: "0a:00:00:00:00:01".into(),
            }),
            lsp: Lookup::Found(LspFacts {
                switches: vec!["s1".into()],
                addresses: vec!["0a:00:00:00:00:01 10.0.0.2".into()],
                up: Some(true),
            }),
            binding: Lookup::Found(BindingFacts {
                chassis: Some("node-1".into()),
            }),
            node: Some("node-1".into()),
            interface_row: Lookup::Found(InterfaceFacts {
                name: "abc_net1_h".into(),
                ovn_installed: true,
            }),
        }
    }

    fn first(f: &AttachmentFacts) -> Option<&'static str> {
        let links = evaluate(f);
        assert_eq!(links.len(), LINKS.len());
        first_broken(&links).map(|i| links[i].what)
    }

    #[test]
    fn a_healthy_attachment_is_ok_on_every_link() {
        let links = evaluate(&healthy());
        assert!(
            links.iter().all(|l| matches!(l.verdict, Verdict::Ok(_))),
            "{links:?}"
        );
        assert!(!render(&links).contains("BROKEN"));
    }

    #[test]
    fn each_break_is_named_at_its_link() {
        type Break = Box<dyn Fn(&mut AttachmentFacts)>;
        let cases: Vec<(&str, Break)> = vec![
            ("NAD", Box::new(|f| f.class = Err("not found".into()))),
            ("Subnet", Box::new(|f| f.subnets.clear())),
            (
                "allocation",
                Box::new(|f| f.allocation = Err("not allocated".into())),
            ),
            ("IP CR", Box::new(|f| f.ip = Lookup::Missing)),
            ("logical switch port", Box::new(|f| f.lsp = Lookup::Missing)),
            (
                "logical switch port",
                Box::new(|f| {
                    if let Lookup::Found(l) = &mut f.lsp {
                        l.switches = vec!["s2".into()];
                    }
                }),
            ),
            (
                "port binding",
                Box::new(|f| f.binding = Lookup::Found(BindingFacts { chassis: None })),
            ),
            (
                "port binding",
                Box::new(|f| {
                    f.binding = Lookup::Found(BindingFacts {
                        chassis: Some("node-2".into()),
                    });
                }),
            ),
            (
                "OVS interface",
                Box::new(|f| f.interface_row = Lookup::Missing),
            ),
            (
                "OVS interface",
                Box::new(|f| {
                    if let Lookup::Found(i) = &mut f.interface_row {
                        i.ovn_installed = false;
                    }
                }),
            ),
        ];
        for (want, break_it) in cases {
            let mut f = healthy();
            break_it(&mut f);
            assert_eq!(first(&f), Some(want), "{f:?}");
        }
    }

    #[test]
    fn the_first_broken_link_is_marked_once() {
        let mut f = healthy();
        f.binding = Lookup::Found(BindingFacts { chassis: None });
        f.interface_row = Lookup::Missing;
        let text = render(&evaluate(&f));
        assert_eq!(text.matches("<== first broken link").count(), 1, "{text}");
        let marked = text.lines().find(|l| l.contains("<==")).unwrap();
        assert!(
            marked.contains("port binding") && marked.contains("BROKEN"),
            "{text}"
        );
    }

    #[test]
    fn several_subnets_need_the_pods_choice() {
        let mut f = healthy();
        f.allocation = Err("not allocated".into());
        f.subnets.push(SubnetFacts {
            name: "s2".into(),
            cidr: "10.1.0.0/24".into(),
            vpc: None,
        });
        let links = evaluate(&f);
        let Verdict::Broken(why) = &links[2].verdict else {
            panic!("{links:?}")
        };
        assert!(why.contains("logical_switch"), "{why}");
    }
}
