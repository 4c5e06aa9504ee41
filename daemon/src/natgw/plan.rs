//! What the gateway's network namespace must hold, computed from the API objects alone (pure:
//! no kernel, no API calls), with a verdict for every object the gateway answers for.
//!
//! The agent is the last line of defence: the controller validates too, but whatever reaches
//! the agent is planned defensively. Anything it cannot realise is left out and reported
//! (`Ready=False` with a reason), and conflicts are settled the same way by every run: the
//! object created first wins, then the one whose name sorts first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crds::qos_policy::{QoSBindingType, QoSDirection};
use crds::{
    IptablesDnatRule, IptablesEIP, IptablesFIPRule, IptablesSnatRule, QoSPolicy, Subnet, Validate,
    VpcNatGateway,
};
use ipnet::Ipv4Net;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::nft::{self, Action, L4, Match, Rule, Ruleset};

/// A NetworkAttachmentDefinition named `namespace/name` (as Multus names it in
/// `network-status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NadRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl NadRef {
    /// Parses `ns/name`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Self {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                })
            }
            _ => Err(format!(
                "{value:?} is not <namespace>/<NetworkAttachmentDefinition name>"
            )),
        }
    }
}

impl std::fmt::Display for NadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Everything the plan reads: a snapshot of the watched objects.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The gateway's name.
    pub gateway: String,
    /// The LAN attachment's NAD.
    pub lan_network: Option<NadRef>,
    /// The external attachment's NAD (its name is also the external Subnet's name).
    pub external_network: Option<NadRef>,
    /// The agent's own Pod's `k8s.v1.cni.cncf.io/network-status`, as written (None: the Pod or
    /// the annotation is not there).
    pub network_status: Option<String>,
    /// The VpcNatGateway, when it exists.
    pub nat_gateway: Option<Arc<VpcNatGateway>>,
    /// Every Subnet.
    pub subnets: Vec<Arc<Subnet>>,
    /// Every IptablesEIP (of every gateway: a rule naming another gateway's EIP is not ours).
    pub eips: Vec<Arc<IptablesEIP>>,
    /// Every FIP rule.
    pub fips: Vec<Arc<IptablesFIPRule>>,
    /// Every SNAT rule.
    pub snats: Vec<Arc<IptablesSnatRule>>,
    /// Every DNAT rule.
    pub dnats: Vec<Arc<IptablesDnatRule>>,
    /// Every QoSPolicy (EIPs name theirs in `spec.qosPolicy`).
    pub qos_policies: Vec<Arc<QoSPolicy>>,
}

/// Which leg of the gateway a route leaves through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leg {
    /// The VPC side.
    Lan,
    /// The external side.
    External,
}

/// A route in the gateway's own routing table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// Destination.
    pub destination: Ipv4Net,
    /// Next hop (None: on-link).
    pub via: Option<Ipv4Addr>,
    /// Interface.
    pub leg: Leg,
}

/// The state of the namespace the plan asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// The LAN interface (from network-status).
    pub lan_interface: String,
    /// The external interface (from network-status).
    pub external_interface: String,
    /// The EIPs, with the external subnet's prefix length, to hold on the external interface.
    pub eip_addresses: Vec<Ipv4Net>,
    /// Addresses of the external attachment itself (from network-status): never removed.
    pub attachment_addresses: Vec<IpAddr>,
    /// Routes of the gateway's table (forwarded traffic of both legs uses it).
    pub routes: Vec<Route>,
    /// The NAT table.
    pub ruleset: Ruleset,
}

/// Why the gateway as a whole cannot be planned: nothing is applied, every object waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and what to do, naming the object.
    pub message: String,
}

impl Problem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The plan's word on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Part of [`Desired`]: Ready once an apply succeeds.
    pub planned: bool,
    /// CamelCase reason when not planned (`Planned` otherwise).
    pub reason: &'static str,
    /// Human detail.
    pub message: String,
    /// The EIP's address (for rules: the address of their EIP) when known.
    pub v4ip: Option<Ipv4Addr>,
    /// For EIPs: the NAT kinds using it (`fip`, `snat`, `dnat`).
    pub nat: Vec<&'static str>,
    /// Whether this gateway answers for the object (false: a rule naming a missing EIP, whose
    /// gateway nobody knows; its status names no gateway).
    pub ours: bool,
    /// For EIPs: the QoSPolicy in effect.
    pub qos: Option<String>,
    /// For EIPs: why its QoSPolicy is not applied (the address and its rules still are; the
    /// EIP reports this reason instead of Ready).
    pub qos_problem: Option<(&'static str, String)>,
}

impl Verdict {
    fn planned(v4ip: Ipv4Addr) -> Self {
        Self {
            planned: true,
            reason: "Planned",
            message: String::new(),
            v4ip: Some(v4ip),
            nat: Vec::new(),
            ours: true,
            qos: None,
            qos_problem: None,
        }
    }

    fn refused(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            planned: false,
            reason,
            message: message.into(),
            v4ip: None,
            nat: Vec::new(),
            ours: true,
            qos: None,
            qos_problem: None,
        }
    }

    fn with_ip(mut self, ip: Option<Ipv4Addr>) -> Self {
        self.v4ip = ip;
        self
    }
}

/// The plan: the namespace's desired state (or why there is none) and a verdict per object,
/// by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to apply, or why nothing can be.
    pub desired: Option<Desired>,
    /// Set when `desired` is None.
    pub problem: Option<Problem>,
    /// IptablesEIPs of this gateway.
    pub eips: BTreeMap<String, Verdict>,
    /// FIP rules.
    pub fips: BTreeMap<String, Verdict>,
    /// SNAT rules.
    pub snats: BTreeMap<String, Verdict>,
    /// DNAT rules.
    pub dnats: BTreeMap<String, Verdict>,
    /// The gateway's own QoSPolicy (`spec.qosPolicy`, bindingType `NATGW`: limits on the whole
    /// external interface): its name once planned, or why it is not applied (the gateway and
    /// its rules still are). None without a policy.
    pub gateway_qos: Option<Result<String, QosProblem>>,
}

/// Creation time then name: the order that settles every conflict.
type Age = (Option<Timestamp>, String);

fn age<K: kube::Resource>(obj: &K) -> Age {
    (
        obj.meta().creation_timestamp.as_ref().map(|t| t.0),
        obj.meta().name.clone().unwrap_or_default(),
    )
}

/// What the gateway's legs look like, from network-status and the Subnets.
#[derive(Debug)]
struct Legs {
    lan_interface: String,
    external_interface: String,
    attachment_addresses: Vec<IpAddr>,
    external_net: Ipv4Net,
    external_gateway: Ipv4Addr,
    external_subnet: String,
    routes: Vec<Route>,
}

/// Interface names as the kernel accepts them.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn v4_of(subnet: &Subnet) -> Result<(Ipv4Net, Ipv4Addr), String> {
    let nets = subnet.spec.networks().map_err(|e| e.to_string())?;
    let gws = subnet.spec.gateways().map_err(|e| e.to_string())?;
    nets.iter()
        .zip(gws.iter())
        .find_map(|(n, g)| match (n, g) {
            (ipnet::IpNet::V4(n), IpAddr::V4(g)) => Some((*n, *g)),
            _ => None,
        })
        .ok_or_else(|| "has no IPv4 range (the NAT gateway is IPv4 only)".to_owned())
}

fn interface_of(
    statuses: &[crds::NetworkStatus],
    nad: &NadRef,
    leg: &str,
) -> Result<(String, Vec<IpAddr>), Problem> {
    let key = nad.to_string();
    let entry = statuses.iter().find(|s| s.name == key).ok_or_else(|| {
        Problem::new(
            "InterfaceMissing",
            format!(
                "the {leg} attachment {key} is not in the pod's network-status (listed: {}); \
                 check the pod's k8s.v1.cni.cncf.io/networks annotation and the NAD",
                statuses
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let name = entry.interface.as_deref().unwrap_or_default();
    if !valid_ifname(name) {
        return Err(Problem::new(
            "InterfaceMissing",
            format!(
                "network-status gives the {leg} attachment {key} no usable interface name ({name:?})"
            ),
        ));
    }
    let ips = entry
        .ips
        .iter()
        .filter_map(|ip| ip.split('/').next().and_then(|a| a.parse().ok()))
        .collect();
    Ok((name.to_owned(), ips))
}

fn legs(inputs: &Inputs, gw: &VpcNatGateway) -> Result<Legs, Problem> {
    let name = &inputs.gateway;
    let (Some(lan_nad), Some(ext_nad)) = (&inputs.lan_network, &inputs.external_network) else {
        return Err(Problem::new(
            "NetworksUnknown",
            "--lan-network and --external-network must both name a NAD as <namespace>/<name>",
        ));
    };
    let raw = inputs.network_status.as_deref().ok_or_else(|| {
        Problem::new(
            "NetworkStatusMissing",
            format!(
                "the gateway pod of {name} has no k8s.v1.cni.cncf.io/network-status annotation yet \
                 (Multus writes it once the attachments are up)"
            ),
        )
    })?;
    let statuses = crds::networks::parse_network_status(raw)
        .map_err(|e| Problem::new("NetworkStatusInvalid", e.to_string()))?;
    let (lan_interface, _) = interface_of(&statuses, lan_nad, "LAN")?;
    let (external_interface, attachment_addresses) = interface_of(&statuses, ext_nad, "external")?;
    if lan_interface == external_interface {
        return Err(Problem::new(
            "InterfaceMissing",
            format!("network-status gives both attachments the interface {lan_interface}"),
        ));
    }
    let subnet = |n: &str| inputs.subnets.iter().find(|s| s.name_any() == n);
    let ext = subnet(&ext_nad.name).ok_or_else(|| {
        Problem::new(
            "ExternalSubnetMissing",
            format!(
                "no Subnet {} (the external Subnet is named after the external NAD {ext_nad})",
                ext_nad.name
            ),
        )
    })?;
    let (external_net, external_gateway) = v4_of(ext).map_err(|e| {
        Problem::new(
            "ExternalSubnetInvalid",
            format!("external Subnet {}: {e}", ext_nad.name),
        )
    })?;
    let vpc = &gw.spec.vpc;
    let lan = subnet(&gw.spec.subnet)
        .filter(|s| s.spec.vpc.as_deref() == Some(vpc.as_str()))
        .ok_or_else(|| {
            Problem::new(
                "LanSubnetMissing",
                format!("no Subnet {} in Vpc {vpc}", gw.spec.subnet),
            )
        })?;
    let (lan_net, lan_gateway) = v4_of(lan).map_err(|e| {
        Problem::new(
            "LanSubnetInvalid",
            format!("LAN Subnet {}: {e}", gw.spec.subnet),
        )
    })?;
    let mut routes = vec![
        Route {
            destination: external_net,
            via: None,
            leg: Leg::External,
        },
        Route {
            destination: Ipv4Net::default(),
            via: Some(external_gateway),
            leg: Leg::External,
        },
        Route {
            destination: lan_net,
            via: None,
            leg: Leg::Lan,
        },
    ];
    for s in &inputs.subnets {
        if s.spec.vpc.as_deref() != Some(vpc.as_str()) || s.name_any() == gw.spec.subnet {
            continue;
        }
        match v4_of(s) {
            Ok((net, _)) => routes.push(Route {
                destination: net,
                via: Some(lan_gateway),
                leg: Leg::Lan,
            }),
            Err(e) => tracing::warn!(subnet = %s.name_any(), gateway = %name, error = %e,
                "VPC subnet left out of the gateway's routes"),
        }
    }
    for (i, r) in gw.spec.routes.iter().enumerate() {
        let parsed = r
            .cidr
            .parse::<Ipv4Net>()
            .ok()
            .zip(r.next_hop_ip.parse::<Ipv4Addr>().ok());
        let leg = parsed.and_then(|(_, hop)| {
            if lan_net.contains(&hop) {
                Some(Leg::Lan)
            } else if external_net.contains(&hop) {
                Some(Leg::External)
            } else {
                None
            }
        });
        match (parsed, leg) {
            (Some((dst, hop)), Some(leg)) => routes.push(Route {
                destination: dst.trunc(),
                via: Some(hop),
                leg,
            }),
            _ => {
                tracing::warn!(gateway = %name, route = i, cidr = %r.cidr, next_hop = %r.next_hop_ip,
                "spec.routes entry left out: not IPv4, or its next hop is on neither leg")
            }
        }
    }
    routes.sort();
    routes.dedup_by(|a, b| a.destination == b.destination);
    Ok(Legs {
        lan_interface,
        external_interface,
        attachment_addresses,
        external_net,
        external_gateway,
        external_subnet: ext_nad.name.clone(),
        routes,
    })
}

/// A rule waiting for its turn in the conflict order.
enum Claim<'a> {
    Fip(&'a IptablesFIPRule, Ipv4Addr),
    Snat(&'a IptablesSnatRule, Ipv4Net),
    Dnat(&'a IptablesDnatRule, L4, u16, Ipv4Addr, u16),
}

/// What holds an EIP so far. As upstream: one FIP per EIP, and a FIP's EIP takes no SNAT
/// (both would translate outgoing traffic); DNAT rules share any EIP (a port forward is
/// matched before the FIP's catch-all), limited only by port clashes.
enum Use {
    /// A FIP.
    Fip(String),
    /// A SNAT rule (the first one).
    Snat(String),
}

/// Computes the plan.
pub fn plan(inputs: &Inputs) -> Plan {
    let mut plan = Plan::default();
    let gw_name = inputs.gateway.as_str();
    let ours = |e: &&Arc<IptablesEIP>| e.spec.nat_gw_dp == gw_name;
    let gateway = inputs.nat_gateway.as_deref();
    let legs = match gateway {
        None => Err(Problem::new(
            "GatewayNotFound",
            format!("VpcNatGateway {gw_name} does not exist"),
        )),
        Some(gw) => legs(inputs, gw),
    };

    // EIPs of this gateway, oldest first.
    let mut eips: Vec<&Arc<IptablesEIP>> = inputs.eips.iter().filter(ours).collect();
    eips.sort_by_key(|e| age(e.as_ref()));
    let mut usable: HashMap<String, Ipv4Addr> = HashMap::new();
    let mut taken: HashMap<Ipv4Addr, String> = HashMap::new();
    for eip in &eips {
        let name = eip.name_any();
        let verdict = eip_verdict(eip, legs.as_ref().ok(), &taken);
        if let (true, Some(ip)) = (verdict.planned, verdict.v4ip) {
            usable.insert(name.clone(), ip);
            taken.insert(ip, name.clone());
        }
        plan.eips.insert(name, verdict);
    }

    // QoS of the usable EIPs.
    let mut qos_ingress = Vec::new();
    let mut qos_egress = Vec::new();
    for eip in &eips {
        let name = eip.name_any();
        let (Some(ip), Some(v)) = (usable.get(&name).copied(), plan.eips.get_mut(&name)) else {
            continue;
        };
        let policy_name = eip.spec.qos_policy.as_str();
        if policy_name.is_empty() {
            continue;
        }
        match qos_rules(inputs, policy_name, Bound::Eip(ip)) {
            Ok((ingress, egress)) => {
                qos_ingress.extend(ingress);
                qos_egress.extend(egress);
                v.qos = Some(policy_name.to_owned());
            }
            Err(problem) => v.qos_problem = Some(problem),
        }
    }

    // Rules: validated, their EIP resolved, then settled in age order.
    let all_eips: HashMap<String, &Arc<IptablesEIP>> =
        inputs.eips.iter().map(|e| (e.name_any(), e)).collect();
    let eip_of = |rule_eip: &str| -> Result<Ipv4Addr, Option<Box<Verdict>>> {
        match all_eips.get(rule_eip) {
            None => Err(Some(Box::new(Verdict {
                ours: false,
                ..Verdict::refused(
                    "EipNotFound",
                    format!("IptablesEIP {rule_eip} does not exist"),
                )
            }))),
            Some(e) if e.spec.nat_gw_dp != gw_name => Err(None),
            Some(_) => match usable.get(rule_eip) {
                Some(ip) => Ok(*ip),
                None => {
                    let why = plan
                        .eips
                        .get(rule_eip)
                        .map(|v| format!("{}: {}", v.reason, v.message))
                        .unwrap_or_default();
                    Err(Some(Box::new(Verdict::refused(
                        "EipNotReady",
                        format!("IptablesEIP {rule_eip} is not usable ({why})"),
                    ))))
                }
            },
        }
    };
    let mut claims: Vec<(Age, u8, Ipv4Addr, Claim<'_>)> = Vec::new();
    let mut verdicts: Vec<(u8, String, Verdict)> = Vec::new();
    for fip in &inputs.fips {
        let name = fip.name_any();
        let eip = match eip_of(&fip.spec.eip) {
            Ok(ip) => ip,
            Err(Some(v)) => {
                verdicts.push((0, name, *v));
                continue;
            }
            Err(None) => continue,
        };
        match fip
            .validate()
            .map_err(|e| e.to_string())
            .and_then(|()| v4("spec.internalIp", &fip.spec.internal_ip))
        {
            Ok(internal) => claims.push((age(fip.as_ref()), 0, eip, Claim::Fip(fip, internal))),
            Err(e) => verdicts.push((
                0,
                name,
                Verdict::refused("InvalidSpec", e).with_ip(Some(eip)),
            )),
        }
    }
    for snat in &inputs.snats {
        let name = snat.name_any();
        let eip = match eip_of(&snat.spec.eip) {
            Ok(ip) => ip,
            Err(Some(v)) => {
                verdicts.push((1, name, *v));
                continue;
            }
            Err(None) => continue,
        };
        let cidr = snat.validate().map_err(|e| e.to_string()).and_then(|()| {
            let c = snat.spec.internal_cidr.trim();
            if c.contains('/') {
                c.parse::<Ipv4Net>()
                    .map(|n| n.trunc())
                    .map_err(|_| format!("spec.internalCIDR {c:?} is not an IPv4 CIDR"))
            } else {
                v4("spec.internalCIDR", c).map(Ipv4Net::from)
            }
        });
        match cidr {
            Ok(c) => claims.push((age(snat.as_ref()), 1, eip, Claim::Snat(snat, c))),
            Err(e) => verdicts.push((
                1,
                name,
                Verdict::refused("InvalidSpec", e).with_ip(Some(eip)),
            )),
        }
    }
    for dnat in &inputs.dnats {
        let name = dnat.name_any();
        let eip = match eip_of(&dnat.spec.eip) {
            Ok(ip) => ip,
            Err(Some(v)) => {
                verdicts.push((2, name, *v));
                continue;
            }
            Err(None) => continue,
        };
        let parsed = dnat.validate().map_err(|e| e.to_string()).and_then(|()| {
            let l4 = match dnat.spec.protocol.unwrap_or_default() {
                crds::iptables::NatProtocol::Tcp => L4::Tcp,
                crds::iptables::NatProtocol::Udp => L4::Udp,
            };
            let port = |f: &str, v: &str| {
                v.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{f} {v:?} is not a port number"))
            };
            Ok((
                l4,
                port("spec.externalPort", &dnat.spec.external_port)?,
                v4("spec.internalIp", &dnat.spec.internal_ip)?,
                port("spec.internalPort", &dnat.spec.internal_port)?,
            ))
        });
        match parsed {
            Ok((l4, ext, ip, int)) => claims.push((
                age(dnat.as_ref()),
                2,
                eip,
                Claim::Dnat(dnat, l4, ext, ip, int),
            )),
            Err(e) => verdicts.push((
                2,
                name,
                Verdict::refused("InvalidSpec", e).with_ip(Some(eip)),
            )),
        }
    }
    claims.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));

    let ext_if = legs
        .as_ref()
        .map(|l| l.external_interface.clone())
        .unwrap_or_default();
    let mut uses: HashMap<Ipv4Addr, Use> = HashMap::new();
    let mut fip_internals: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut snat_cidrs: HashMap<Ipv4Net, String> = HashMap::new();
    let mut ports: HashMap<(Ipv4Addr, L4, u16), String> = HashMap::new();
    let mut fip_pre = Vec::new();
    let mut fip_post = Vec::new();
    let mut snat_post: Vec<(u8, usize, Rule)> = Vec::new();
    let mut dnat_pre = Vec::new();
    let mut kinds: HashMap<Ipv4Addr, HashSet<&'static str>> = HashMap::new();
    for (_, kind, eip, claim) in claims {
        let eip_name = taken.get(&eip).cloned().unwrap_or_default();
        let (name, verdict) = match claim {
            Claim::Fip(fip, internal) => {
                let name = fip.name_any();
                let v = if let Some(u) = uses.get(&eip) {
                    Verdict::refused("EipInUse", in_use(&eip_name, u))
                } else if let Some(other) = fip_internals.get(&internal) {
                    Verdict::refused(
                        "InternalIpInUse",
                        format!("{internal} already has the floating IP of fip {other}"),
                    )
                } else {
                    uses.insert(eip, Use::Fip(name.clone()));
                    fip_internals.insert(internal, name.clone());
                    let comment = format!("fip/{name}");
                    fip_pre.push(Rule {
                        matches: vec![Match::Daddr(eip)],
                        action: Action::Dnat {
                            addr: internal,
                            port: None,
                        },
                        comment: comment.clone(),
                    });
                    fip_post.push(Rule {
                        matches: vec![
                            Match::Saddr(Ipv4Net::from(internal)),
                            Match::Oifname(ext_if.clone()),
                        ],
                        action: Action::Snat(eip),
                        comment,
                    });
                    kinds.entry(eip).or_default().insert("fip");
                    Verdict::planned(eip)
                };
                (name, v)
            }
            Claim::Snat(snat, cidr) => {
                let name = snat.name_any();
                let v = if let Some(u @ Use::Fip(_)) = uses.get(&eip) {
                    Verdict::refused("EipInUse", in_use(&eip_name, u))
                } else if let Some(other) = snat_cidrs.get(&cidr) {
                    Verdict::refused(
                        "InternalCidrInUse",
                        format!("{cidr} is already translated by snat {other}"),
                    )
                } else {
                    uses.entry(eip).or_insert_with(|| Use::Snat(name.clone()));
                    snat_cidrs.insert(cidr, name.clone());
                    snat_post.push((
                        cidr.prefix_len(),
                        snat_post.len(),
                        Rule {
                            matches: vec![Match::Saddr(cidr), Match::Oifname(ext_if.clone())],
                            action: Action::Snat(eip),
                            comment: format!("snat/{name}"),
                        },
                    ));
                    kinds.entry(eip).or_default().insert("snat");
                    Verdict::planned(eip)
                };
                (name, v)
            }
            Claim::Dnat(dnat, l4, ext_port, internal, int_port) => {
                let name = dnat.name_any();
                let v = if let Some(other) = ports.get(&(eip, l4, ext_port)) {
                    Verdict::refused(
                        "PortInUse",
                        format!(
                            "{} port {ext_port} of {eip} is already forwarded by dnat {other}",
                            l4.as_str()
                        ),
                    )
                } else {
                    ports.insert((eip, l4, ext_port), name.clone());
                    dnat_pre.push(Rule {
                        matches: vec![Match::Daddr(eip), Match::Dport(l4, ext_port)],
                        action: Action::Dnat {
                            addr: internal,
                            port: Some(int_port),
                        },
                        comment: format!("dnat/{name}"),
                    });
                    kinds.entry(eip).or_default().insert("dnat");
                    Verdict::planned(eip)
                };
                (name, v)
            }
        };
        verdicts.push((kind, name, verdict.with_ip(Some(eip))));
    }
    for (kind, name, v) in verdicts {
        match kind {
            0 => plan.fips.insert(name, v),
            1 => plan.snats.insert(name, v),
            _ => plan.dnats.insert(name, v),
        };
    }
    for (name, v) in plan.eips.iter_mut() {
        if let Some(ip) = usable.get(name) {
            let used = kinds.get(ip);
            // Upstream's order and spelling of `status.nat`.
            v.nat = ["dnat", "fip", "snat"]
                .into_iter()
                .filter(|k| used.is_some_and(|u| u.contains(k)))
                .collect();
        }
    }

    match legs {
        Ok(legs) => {
            // Most specific source first, so a /32 SNAT wins over the /24 around it.
            snat_post.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut post = fip_post;
            post.extend(snat_post.into_iter().map(|(_, _, r)| r));
            let mut pre = dnat_pre;
            pre.extend(fip_pre);
            let mut eip_addresses: Vec<Ipv4Net> = usable
                .values()
                .filter_map(|ip| Ipv4Net::new(*ip, legs.external_net.prefix_len()).ok())
                .collect();
            eip_addresses.sort();
            // The gateway's own limits: on everything that crosses its external leg, after the
            // EIPs' (each rule is its own bucket; a packet must pass every one).
            let policy = gateway
                .and_then(|g| g.spec.qos_policy.as_deref())
                .filter(|p| !p.is_empty());
            if let Some(policy) = policy {
                let bound = Bound::Gateway(&legs.external_interface);
                plan.gateway_qos = Some(match qos_rules(inputs, policy, bound) {
                    Ok((ingress, egress)) => {
                        qos_ingress.extend(ingress);
                        qos_egress.extend(egress);
                        Ok(policy.to_owned())
                    }
                    Err(problem) => Err(problem),
                });
            }
            plan.desired = Some(Desired {
                lan_interface: legs.lan_interface,
                external_interface: legs.external_interface,
                eip_addresses,
                attachment_addresses: legs.attachment_addresses,
                routes: legs.routes,
                ruleset: nft::Ruleset {
                    prerouting: pre,
                    postrouting: post,
                    qos_ingress,
                    qos_egress,
                },
            });
        }
        Err(problem) => {
            // Nothing is applied: whatever was planned waits for the gateway.
            for v in plan
                .eips
                .values_mut()
                .chain(plan.fips.values_mut())
                .chain(plan.snats.values_mut())
                .chain(plan.dnats.values_mut())
                .filter(|v| v.planned)
            {
                v.planned = false;
                v.reason = "GatewayNotReady";
                v.message = format!("{}: {}", problem.reason, problem.message);
            }
            plan.problem = Some(problem);
        }
    }
    plan
}

/// Ingress and egress limit rules.
type Limits = (Vec<Rule>, Vec<Rule>);
/// Why a QoSPolicy is not applied: reason, message.
pub type QosProblem = (&'static str, String);

/// What a QoSPolicy limits: one EIP's traffic (bindingType `EIP`), or everything through the
/// gateway's external interface (bindingType `NATGW`).
#[derive(Clone, Copy, Debug)]
enum Bound<'a> {
    Eip(Ipv4Addr),
    Gateway(&'a str),
}

/// The limits of QoSPolicy `policy` on `bound`: (ingress rules, egress rules).
fn qos_rules(inputs: &Inputs, policy: &str, bound: Bound<'_>) -> Result<Limits, QosProblem> {
    let invalid = |m: String| ("QoSPolicyInvalid", format!("QoSPolicy {policy}: {m}"));
    let p = inputs
        .qos_policies
        .iter()
        .find(|p| p.name_any() == policy)
        .ok_or_else(|| {
            (
                "QoSPolicyNotFound",
                format!("QoSPolicy {policy} does not exist"),
            )
        })?;
    match (bound, p.spec.binding_type) {
        (Bound::Eip(_), QoSBindingType::Eip) | (Bound::Gateway(_), QoSBindingType::NatGw) => {}
        (Bound::Eip(_), _) => {
            return Err(invalid(
                "bindingType must be EIP to bind an IptablesEIP".into(),
            ));
        }
        (Bound::Gateway(_), _) => {
            return Err(invalid(
                "bindingType must be NATGW to bind a VpcNatGateway".into(),
            ));
        }
    }
    let mut rules: Vec<_> = p.spec.bandwidth_limit_rules.iter().collect();
    rules.sort_by_key(|r| (r.priority.unwrap_or(0), r.name.clone()));
    let (mut ingress, mut egress) = (Vec::new(), Vec::new());
    for r in rules {
        let mbit =
            |what: &str, v: Option<&String>| -> Result<Option<f64>, (&'static str, String)> {
                match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
                    None => Ok(None),
                    Some(s) => match s.parse::<f64>() {
                        Ok(x) if x.is_finite() && x > 0.0 && x <= 1_000_000.0 => Ok(Some(x)),
                        _ => Err(invalid(format!(
                            "rule {}: {what} {s:?} is not a rate in Mbit/s",
                            r.name
                        ))),
                    },
                }
            };
        let Some(rate) = mbit("rateMax", r.rate_max.as_ref())? else {
            return Err(invalid(format!("rule {}: rateMax is required", r.name)));
        };
        let burst = mbit("burstMax", r.burst_max.as_ref())?;
        let bytes_per_second = (rate * 1_000_000.0 / 8.0) as u64;
        // nf_tables' byte limit holds one second at the rate plus `burst` (measured: 2 MB at
        // 2 MB/s with a 64 KiB burst passed in 5 ms), so burstMax adds to that second.
        let burst = burst
            .map(|b| (b * 1_000_000.0 / 8.0) as u64)
            .unwrap_or(0)
            .min(u64::from(u32::MAX)) as u32;
        let remote = match (
            r.match_type.as_deref().unwrap_or(""),
            r.match_value.as_deref(),
        ) {
            ("", _) => None,
            ("ip", Some(v)) => Some(
                v.trim()
                    .parse::<Ipv4Net>()
                    .or_else(|_| v.trim().parse::<Ipv4Addr>().map(Ipv4Net::from))
                    .map_err(|_| {
                        invalid(format!(
                            "rule {}: matchValue {v:?} is not an IPv4 CIDR",
                            r.name
                        ))
                    })?
                    .trunc(),
            ),
            (t, _) => {
                return Err(invalid(format!(
                    "rule {}: matchType {t:?} is not supported (only \"ip\" with a matchValue)",
                    r.name
                )));
            }
        };
        let action = Action::DropOver {
            bytes_per_second,
            burst,
        };
        let comment = format!("qos/{policy}/{}", r.name);
        match r.direction.unwrap_or_default() {
            QoSDirection::Ingress => {
                let mut matches = match bound {
                    Bound::Eip(ip) => vec![Match::Daddr(ip)],
                    Bound::Gateway(ifname) => vec![Match::Iifname(ifname.to_owned())],
                };
                matches.extend(remote.map(Match::Saddr));
                ingress.push(Rule {
                    matches,
                    action,
                    comment,
                });
            }
            QoSDirection::Egress => {
                let mut matches = match bound {
                    Bound::Eip(ip) => vec![Match::Saddr(Ipv4Net::from(ip))],
                    Bound::Gateway(ifname) => vec![Match::Oifname(ifname.to_owned())],
                };
                matches.extend(remote.map(Match::DaddrIn));
                egress.push(Rule {
                    matches,
                    action,
                    comment,
                });
            }
        }
    }
    Ok((ingress, egress))
}

fn in_use(eip: &str, u: &Use) -> String {
    match u {
        Use::Fip(f) => format!(
            "IptablesEIP {eip} is bound to fip {f}: an EIP takes one fip and no snat besides it"
        ),
        Use::Snat(s) => {
            format!("IptablesEIP {eip} is used by snat {s}: a fip needs an EIP without snat rules")
        }
    }
}

fn v4(field: &str, value: &str) -> Result<Ipv4Addr, String> {
    value.trim().parse::<Ipv4Addr>().map_err(|_| {
        format!("{field} {value:?} is not an IPv4 address (the NAT gateway is IPv4 only)")
    })
}

fn eip_verdict(
    eip: &IptablesEIP,
    legs: Option<&Legs>,
    taken: &HashMap<Ipv4Addr, String>,
) -> Verdict {
    if let Err(e) = eip.validate() {
        return Verdict::refused("InvalidSpec", e.to_string());
    }
    if eip.spec.v4ip.is_empty() {
        return Verdict::refused(
            "WaitingForAddress",
            "spec.v4ip is empty: waiting for the controller to allocate an address",
        );
    }
    let ip = match v4("spec.v4ip", &eip.spec.v4ip) {
        Ok(ip) => ip,
        Err(e) => return Verdict::refused("InvalidSpec", e),
    };
    let Some(legs) = legs else {
        // The gateway's problem is reported in its place; keep the address for the status.
        return Verdict::planned(ip);
    };
    if !eip.spec.external_subnet.is_empty() && eip.spec.external_subnet != legs.external_subnet {
        return Verdict::refused(
            "ExternalSubnetMismatch",
            format!(
                "spec.externalSubnet {} is not this gateway's external Subnet {}",
                eip.spec.external_subnet, legs.external_subnet
            ),
        )
        .with_ip(Some(ip));
    }
    let net = legs.external_net;
    if !net.contains(&ip) {
        return Verdict::refused(
            "OutsideExternalSubnet",
            format!(
                "{ip} is outside the external Subnet {} ({net})",
                legs.external_subnet
            ),
        )
        .with_ip(Some(ip));
    }
    if net.prefix_len() < 31 && (ip == net.network() || ip == net.broadcast())
        || ip == legs.external_gateway
    {
        return Verdict::refused(
            "AddressReserved",
            format!("{ip} is the network, broadcast or gateway address of {net}"),
        )
        .with_ip(Some(ip));
    }
    if let Some(other) = taken.get(&ip) {
        return Verdict::refused(
            "AddressInUse",
            format!("{ip} is already the address of IptablesEIP {other}"),
        )
        .with_ip(Some(ip));
    }
    Verdict::planned(ip)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn stamp<K: kube::Resource>(mut obj: K, name: &str, secs: i64) -> K {
        obj.meta_mut().name = Some(name.into());
        obj.meta_mut().creation_timestamp = Some(Time(Timestamp::from_second(secs).unwrap()));
        obj
    }

    pub(crate) fn eip(name: &str, ip: &str, secs: i64) -> Arc<IptablesEIP> {
        let mut e = IptablesEIP::new(name, Default::default());
        e.spec.v4ip = ip.into();
        e.spec.nat_gw_dp = "gw1".into();
        Arc::new(stamp(e, name, secs))
    }

    pub(crate) fn fip(name: &str, eip: &str, ip: &str, secs: i64) -> Arc<IptablesFIPRule> {
        let mut r = IptablesFIPRule::new(name, Default::default());
        r.spec.eip = eip.into();
        r.spec.internal_ip = ip.into();
        Arc::new(stamp(r, name, secs))
    }

    pub(crate) fn snat(name: &str, eip: &str, cidr: &str, secs: i64) -> Arc<IptablesSnatRule> {
        let mut r = IptablesSnatRule::new(name, Default::default());
        r.spec.eip = eip.into();
        r.spec.internal_cidr = cidr.into();
        Arc::new(stamp(r, name, secs))
    }

    pub(crate) fn dnat(
        name: &str,
        eip: &str,
        port: u16,
        ip: &str,
        to: u16,
        secs: i64,
    ) -> Arc<IptablesDnatRule> {
        let mut r = IptablesDnatRule::new(name, Default::default());
        r.spec.eip = eip.into();
        r.spec.external_port = port.to_string();
        r.spec.internal_ip = ip.into();
        r.spec.internal_port = to.to_string();
        Arc::new(stamp(r, name, secs))
    }

    fn subnet(name: &str, vpc: &str, cidr: &str) -> Arc<Subnet> {
        let mut s = Subnet::new(name, Default::default());
        s.spec.vpc = Some(vpc.into());
        s.spec.cidr_block = Some(cidr.into());
        Arc::new(s)
    }

    const STATUS: &str = r#"[{"name":"cluster","interface":"eth0","ips":["172.17.0.5"]},
        {"name":"default/lan","interface":"net1","ips":["10.0.1.254"]},
        {"name":"kube-system/ext","interface":"net2","ips":["192.168.50.2"]}]"#;

    pub(crate) fn inputs() -> Inputs {
        let mut gw = VpcNatGateway::new("gw1", Default::default());
        gw.spec.vpc = "vpc1".into();
        gw.spec.subnet = "lan".into();
        gw.spec.lan_ip = Some("10.0.1.254".into());
        Inputs {
            gateway: "gw1".into(),
            lan_network: Some(NadRef::parse("default/lan").unwrap()),
            external_network: Some(NadRef::parse("kube-system/ext").unwrap()),
            network_status: Some(STATUS.into()),
            nat_gateway: Some(Arc::new(gw)),
            subnets: vec![
                subnet("lan", "vpc1", "10.0.1.0/24"),
                subnet("app", "vpc1", "10.0.2.0/24"),
                subnet("other", "vpc2", "10.9.0.0/24"),
                subnet("ext", "ovn-cluster", "192.168.50.0/24"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn the_manuals_gateway_routes_its_vpc_through_the_lan_and_the_rest_outside() {
        let p = plan(&inputs());
        let d = p.desired.unwrap();
        assert_eq!(
            (d.lan_interface.as_str(), d.external_interface.as_str()),
            ("net1", "net2")
        );
        assert_eq!(
            d.attachment_addresses,
            ["192.168.50.2".parse::<IpAddr>().unwrap()]
        );
        let r = |dst: &str, via: Option<&str>, leg| Route {
            destination: dst.parse().unwrap(),
            via: via.map(|v| v.parse().unwrap()),
            leg,
        };
        assert_eq!(
            d.routes,
            [
                r("0.0.0.0/0", Some("192.168.50.1"), Leg::External),
                r("10.0.1.0/24", None, Leg::Lan),
                r("10.0.2.0/24", Some("10.0.1.1"), Leg::Lan),
                r("192.168.50.0/24", None, Leg::External),
            ]
        );
        assert!(d.ruleset.is_empty());
    }

    #[test]
    fn the_gateways_own_routes_go_out_of_the_leg_their_next_hop_is_on() {
        let mut i = inputs();
        let mut gw = (*i.nat_gateway.take().unwrap()).clone();
        gw.spec.routes = vec![
            crds::nat_gateway::NatGatewayRoute {
                cidr: "172.16.0.0/12".into(),
                next_hop_ip: "192.168.50.254".into(),
            },
            crds::nat_gateway::NatGatewayRoute {
                cidr: "10.50.0.0/16".into(),
                next_hop_ip: "10.0.1.9".into(),
            },
            // Next hop on neither leg, and not IPv4: left out (logged).
            crds::nat_gateway::NatGatewayRoute {
                cidr: "10.60.0.0/16".into(),
                next_hop_ip: "8.8.8.8".into(),
            },
            crds::nat_gateway::NatGatewayRoute {
                cidr: "fd00::/64".into(),
                next_hop_ip: "fd00::1".into(),
            },
        ];
        i.nat_gateway = Some(Arc::new(gw));
        let d = plan(&i).desired.unwrap();
        let find = |dst: &str| {
            d.routes
                .iter()
                .find(|r| r.destination.to_string() == dst)
                .copied()
        };
        assert_eq!(find("172.16.0.0/12").unwrap().leg, Leg::External);
        assert_eq!(find("10.50.0.0/16").unwrap().leg, Leg::Lan);
        assert!(find("10.60.0.0/16").is_none());
        assert_eq!(d.routes.len(), 6);
    }

    #[test]
    fn rules_become_nft_rules_in_a_fixed_order() {
        let mut i = inputs();
        i.eips = vec![
            eip("e1", "192.168.50.10", 1),
            eip("e2", "192.168.50.11", 2),
            eip("e3", "192.168.50.12", 3),
        ];
        i.fips = vec![fip("f1", "e1", "10.0.1.5", 5)];
        i.snats = vec![
            snat("s-wide", "e2", "10.0.0.0/16", 5),
            snat("s-one", "e2", "10.0.1.7", 6),
        ];
        i.dnats = vec![dnat("d1", "e3", 80, "10.0.1.8", 8080, 5)];
        let p = plan(&i);
        let d = p.desired.unwrap();
        let comments = |rs: &[Rule]| rs.iter().map(|r| r.comment.clone()).collect::<Vec<_>>();
        assert_eq!(comments(&d.ruleset.prerouting), ["dnat/d1", "fip/f1"]);
        assert_eq!(
            comments(&d.ruleset.postrouting),
            ["fip/f1", "snat/s-one", "snat/s-wide"]
        );
        assert_eq!(
            d.ruleset.postrouting[0].matches,
            [
                Match::Saddr("10.0.1.5/32".parse().unwrap()),
                Match::Oifname("net2".into())
            ]
        );
        assert_eq!(d.eip_addresses.len(), 3);
        assert_eq!(d.eip_addresses[0].to_string(), "192.168.50.10/24");
        assert_eq!(p.eips["e1"].nat, ["fip"]);
        assert_eq!(p.eips["e2"].nat, ["snat"]);
        assert!(p.fips["f1"].planned && p.snats["s-one"].planned && p.dnats["d1"].planned);
        assert_eq!(p.dnats["d1"].v4ip, Some("192.168.50.12".parse().unwrap()));
    }

    #[test]
    fn conflicts_are_settled_by_age_then_name() {
        let mut i = inputs();
        i.eips = vec![eip("e1", "192.168.50.10", 1), eip("e2", "192.168.50.11", 1)];
        // Two FIPs on e1: the older wins; a SNAT on e1 after the FIP loses.
        i.fips = vec![
            fip("f-young", "e1", "10.0.1.6", 9),
            fip("f-old", "e1", "10.0.1.5", 2),
        ];
        i.snats = vec![
            snat("s1", "e1", "10.0.1.0/24", 3),
            snat("s2", "e2", "10.0.1.0/24", 4),
        ];
        // Same port twice on e2, same time: the name decides.
        i.dnats = vec![
            dnat("d-b", "e2", 80, "10.0.1.8", 80, 5),
            dnat("d-a", "e2", 80, "10.0.1.9", 80, 5),
        ];
        let p = plan(&i);
        assert!(p.fips["f-old"].planned);
        assert_eq!(p.fips["f-young"].reason, "EipInUse");
        assert_eq!(p.snats["s1"].reason, "EipInUse");
        assert!(p.snats["s2"].planned);
        assert!(p.dnats["d-a"].planned);
        assert_eq!(p.dnats["d-b"].reason, "PortInUse");
        assert!(
            p.dnats["d-b"].message.contains("d-a"),
            "{}",
            p.dnats["d-b"].message
        );
        // The same inputs in another order give the same plan.
        let mut j = i.clone();
        j.fips.reverse();
        j.dnats.reverse();
        j.eips.reverse();
        assert_eq!(plan(&j), p);
    }

    #[test]
    fn a_fip_after_a_snat_loses_and_dnat_shares_with_either() {
        let mut i = inputs();
        i.eips = vec![eip("e1", "192.168.50.10", 1)];
        i.snats = vec![snat("s1", "e1", "10.0.1.0/24", 2)];
        i.dnats = vec![dnat("d1", "e1", 22, "10.0.1.8", 22, 3)];
        i.fips = vec![fip("f1", "e1", "10.0.1.5", 4)];
        let p = plan(&i);
        assert!(p.snats["s1"].planned && p.dnats["d1"].planned);
        assert_eq!(p.fips["f1"].reason, "EipInUse");
        assert!(p.fips["f1"].message.contains("snat s1"));
        assert_eq!(p.eips["e1"].nat, ["dnat", "snat"]);
        // A FIP and port forwards on one EIP: the forwards are matched first.
        let mut i = inputs();
        i.eips = vec![eip("e1", "192.168.50.10", 1)];
        i.fips = vec![fip("f1", "e1", "10.0.1.5", 2)];
        i.dnats = vec![dnat("d1", "e1", 22, "10.0.1.8", 22, 3)];
        let p = plan(&i);
        assert!(p.fips["f1"].planned && p.dnats["d1"].planned);
        assert_eq!(p.eips["e1"].nat, ["dnat", "fip"]);
        let pre = &p.desired.unwrap().ruleset.prerouting;
        assert_eq!(
            (pre[0].comment.as_str(), pre[1].comment.as_str()),
            ("dnat/d1", "fip/f1")
        );
    }

    #[test]
    fn bad_eips_are_reported_not_applied() {
        let mut i = inputs();
        let mut other_gw = (*eip("theirs", "192.168.50.40", 1)).clone();
        other_gw.spec.nat_gw_dp = "gw2".into();
        i.eips = vec![
            eip("waiting", "", 1),
            eip("outside", "10.1.1.1", 1),
            eip("gateway", "192.168.50.1", 1),
            eip("first", "192.168.50.20", 1),
            eip("dup", "192.168.50.20", 2),
            eip("v6", "fd00::1", 1),
            Arc::new(other_gw),
        ];
        i.fips = vec![
            fip("on-waiting", "waiting", "10.0.1.5", 1),
            fip("on-missing", "nope", "10.0.1.6", 1),
            fip("on-theirs", "theirs", "10.0.1.7", 1),
            fip("bad-ip", "first", "10.0.1.300", 1),
        ];
        let p = plan(&i);
        assert_eq!(p.eips["waiting"].reason, "WaitingForAddress");
        assert_eq!(p.eips["outside"].reason, "OutsideExternalSubnet");
        assert_eq!(p.eips["gateway"].reason, "AddressReserved");
        assert!(p.eips["first"].planned);
        assert_eq!(p.eips["dup"].reason, "AddressInUse");
        assert_eq!(p.eips["v6"].reason, "InvalidSpec");
        assert!(!p.eips.contains_key("theirs"));
        assert_eq!(p.fips["on-waiting"].reason, "EipNotReady");
        assert_eq!(p.fips["on-missing"].reason, "EipNotFound");
        assert!(!p.fips["on-missing"].ours);
        assert!(!p.fips.contains_key("on-theirs"));
        assert_eq!(p.fips["bad-ip"].reason, "InvalidSpec");
        assert_eq!(p.desired.unwrap().eip_addresses.len(), 1);
    }

    #[test]
    fn a_gateway_without_its_legs_applies_nothing_and_says_why() {
        type Change = Box<dyn Fn(&mut Inputs)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "NetworkStatusMissing",
                Box::new(|i| i.network_status = None),
            ),
            (
                "NetworkStatusInvalid",
                Box::new(|i| i.network_status = Some("{not json".into())),
            ),
            (
                "NetworkStatusInvalid",
                Box::new(|i| i.network_status = Some("{}".into())),
            ),
            (
                "InterfaceMissing",
                Box::new(|i| {
                    i.network_status = Some(r#"[{"name":"default/lan","interface":"net1"}]"#.into())
                }),
            ),
            (
                "InterfaceMissing",
                Box::new(|i| {
                    i.network_status = Some(
                        r#"[{"name":"default/lan","interface":"net1"},{"name":"kube-system/ext"}]"#
                            .into(),
                    )
                }),
            ),
            (
                "InterfaceMissing",
                Box::new(|i| {
                    i.network_status = Some(
                        r#"[{"name":"default/lan","interface":"net1"},{"name":"kube-system/ext","interface":"../x"}]"#
                            .into(),
                    )
                }),
            ),
            (
                "ExternalSubnetMissing",
                Box::new(|i| i.subnets.retain(|s| s.name_any() != "ext")),
            ),
            (
                "LanSubnetMissing",
                Box::new(|i| i.subnets.retain(|s| s.name_any() != "lan")),
            ),
            ("GatewayNotFound", Box::new(|i| i.nat_gateway = None)),
            ("NetworksUnknown", Box::new(|i| i.lan_network = None)),
        ];
        for (reason, change) in cases {
            let mut i = inputs();
            i.eips = vec![eip("e1", "192.168.50.10", 1)];
            i.fips = vec![fip("f1", "e1", "10.0.1.5", 2)];
            change(&mut i);
            let p = plan(&i);
            assert!(p.desired.is_none(), "{reason}");
            assert_eq!(p.problem.as_ref().unwrap().reason, reason);
            assert_eq!(p.eips["e1"].reason, "GatewayNotReady");
            assert_eq!(p.fips["f1"].reason, "GatewayNotReady");
            assert!(p.fips["f1"].message.contains(reason));
        }
    }

    fn qos(name: &str, rules: serde_json::Value) -> Arc<QoSPolicy> {
        qos_bound(name, "EIP", rules)
    }

    fn qos_bound(name: &str, binding: &str, rules: serde_json::Value) -> Arc<QoSPolicy> {
        Arc::new(
            serde_json::from_value(serde_json::json!({"apiVersion":"kubeovn.io/v1",
                "kind":"QoSPolicy","metadata":{"name":name},
                "spec":{"bindingType":binding,"bandwidthLimitRules":rules}}))
            .unwrap(),
        )
    }

    #[test]
    fn an_eips_qos_policy_becomes_limits_on_its_address() {
        let mut i = inputs();
        let with = |name: &str, ip: &str, policy: &str| {
            let mut e = (*eip(name, ip, 1)).clone();
            e.spec.qos_policy = policy.into();
            Arc::new(e)
        };
        i.eips = vec![
            with("e1", "192.168.50.10", "q1"),
            with("e2", "192.168.50.11", "missing"),
            with("e3", "192.168.50.12", "bad"),
        ];
        i.qos_policies = vec![
            qos(
                "q1",
                serde_json::json!([
                    {"name":"down","direction":"ingress","rateMax":"8","burstMax":"1"},
                    {"name":"up","direction":"egress","rateMax":"16","matchType":"ip",
                     "matchValue":"203.0.113.0/24"}]),
            ),
            qos(
                "bad",
                serde_json::json!([{"name":"x","direction":"ingress","rateMax":"fast"}]),
            ),
        ];
        let p = plan(&i);
        let d = p.desired.as_ref().unwrap();
        assert_eq!(d.ruleset.qos_ingress.len(), 1);
        assert_eq!(
            d.ruleset.qos_ingress[0].action,
            Action::DropOver {
                bytes_per_second: 1_000_000,
                burst: 125_000
            }
        );
        assert_eq!(
            d.ruleset.qos_egress[0].matches,
            [
                Match::Saddr("192.168.50.10/32".parse().unwrap()),
                Match::DaddrIn("203.0.113.0/24".parse().unwrap())
            ]
        );
        assert_eq!(p.eips["e1"].qos.as_deref(), Some("q1"));
        // A missing or bad policy: reported on the EIP, whose address still serves.
        assert_eq!(
            p.eips["e2"].qos_problem.as_ref().unwrap().0,
            "QoSPolicyNotFound"
        );
        let (reason, message) = p.eips["e3"].qos_problem.clone().unwrap();
        assert_eq!(reason, "QoSPolicyInvalid");
        assert!(message.contains("rateMax"), "{message}");
        assert!(p.eips["e2"].planned && p.eips["e3"].planned);
        assert_eq!(d.eip_addresses.len(), 3);
    }

    #[test]
    fn a_gateways_qos_policy_limits_its_whole_external_leg() {
        let mut i = inputs();
        i.qos_policies = vec![
            qos_bound(
                "gw-limit",
                "NATGW",
                serde_json::json!([
                    {"name":"in","direction":"ingress","rateMax":"8"},
                    {"name":"out","direction":"egress","rateMax":"4","matchType":"ip",
                     "matchValue":"203.0.113.0/24"}]),
            ),
            qos_bound(
                "eip-kind",
                "EIP",
                serde_json::json!([{"name":"in","direction":"ingress","rateMax":"8"}]),
            ),
        ];
        let with_policy = |i: &mut Inputs, policy: Option<&str>| {
            let mut gw = (**i.nat_gateway.as_ref().unwrap()).clone();
            gw.spec.qos_policy = policy.map(str::to_owned);
            i.nat_gateway = Some(Arc::new(gw));
        };
        // No policy: no limits, nothing to say.
        let p = plan(&i);
        assert_eq!(p.gateway_qos, None);
        assert!(p.desired.unwrap().ruleset.qos_ingress.is_empty());

        with_policy(&mut i, Some("gw-limit"));
        let p = plan(&i);
        assert_eq!(p.gateway_qos, Some(Ok("gw-limit".to_owned())));
        let d = p.desired.unwrap();
        assert_eq!(
            d.ruleset.qos_ingress[0].matches,
            [Match::Iifname("net2".into())]
        );
        assert_eq!(
            d.ruleset.qos_ingress[0].action,
            Action::DropOver {
                bytes_per_second: 1_000_000,
                burst: 0
            }
        );
        assert_eq!(
            d.ruleset.qos_egress[0].matches,
            [
                Match::Oifname("net2".into()),
                Match::DaddrIn("203.0.113.0/24".parse().unwrap())
            ]
        );

        // A policy of the wrong kind, or none of that name: the gateway runs without it and
        // says why.
        for (policy, reason, needle) in [
            ("eip-kind", "QoSPolicyInvalid", "NATGW"),
            ("missing", "QoSPolicyNotFound", "missing"),
        ] {
            with_policy(&mut i, Some(policy));
            let p = plan(&i);
            let (r, message) = p.gateway_qos.clone().unwrap().unwrap_err();
            assert_eq!(r, reason);
            assert!(message.contains(needle), "{message}");
            let d = p.desired.unwrap();
            assert!(d.ruleset.qos_ingress.is_empty() && d.ruleset.qos_egress.is_empty());
        }
    }

    proptest::proptest! {
        /// Whatever the objects, the plan binds no EIP twice exclusively, forwards no port
        /// twice, holds each address once, and does not depend on the order of its inputs.
        #[test]
        fn plans_never_double_bind_and_ignore_input_order(
            eips in proptest::collection::vec((0u8..6, 0u8..4, 0i64..4), 0..8),
            fips in proptest::collection::vec((0u8..8, 0u8..4, 0i64..4), 0..8),
            snats in proptest::collection::vec((0u8..8, 0u8..3, 0i64..4), 0..6),
            dnats in proptest::collection::vec((0u8..8, 0u8..3, 0u8..4, 0i64..4), 0..10),
            seed in 0usize..1000,
        ) {
            let mut i = inputs();
            i.eips = eips.iter().enumerate().map(|(n, (ip, _, t))| {
                eip(&format!("e{n}"), &format!("192.168.50.{}", 10 + ip), *t)
            }).collect();
            i.fips = fips.iter().enumerate().map(|(n, (e, ip, t))| {
                fip(&format!("f{n}"), &format!("e{e}"), &format!("10.0.1.{}", 5 + ip), *t)
            }).collect();
            i.snats = snats.iter().enumerate().map(|(n, (e, c, t))| {
                snat(&format!("s{n}"), &format!("e{e}"), &format!("10.0.{c}.0/24"), *t)
            }).collect();
            i.dnats = dnats.iter().enumerate().map(|(n, (e, port, ip, t))| {
                dnat(&format!("d{n}"), &format!("e{e}"), 80 + u16::from(*port),
                    &format!("10.0.1.{}", 5 + ip), 80, *t)
            }).collect();
            let p = plan(&i);
            let d = p.desired.clone().unwrap();
            // Addresses once each.
            let mut addrs = d.eip_addresses.clone();
            addrs.dedup();
            proptest::prop_assert_eq!(addrs.len(), d.eip_addresses.len());
            // One FIP per EIP, no SNAT on a FIP's EIP; no (EIP, port) twice; forwards first.
            let mut fip_eips = HashSet::new();
            let mut snat_eips = HashSet::new();
            let mut ports = HashSet::new();
            let mut seen_fip = false;
            for r in &d.ruleset.prerouting {
                match (r.matches.as_slice(), &r.action) {
                    ([Match::Daddr(e)], _) => {
                        seen_fip = true;
                        proptest::prop_assert!(fip_eips.insert(*e));
                    }
                    ([Match::Daddr(e), Match::Dport(l4, port)], _) => {
                        proptest::prop_assert!(!seen_fip, "a forward after a fip");
                        proptest::prop_assert!(ports.insert((*e, *l4, *port)));
                    }
                    other => proptest::prop_assert!(false, "unexpected rule {:?}", other),
                }
            }
            for r in d.ruleset.postrouting.iter().filter(|r| r.comment.starts_with("snat/")) {
                if let Action::Snat(e) = r.action {
                    snat_eips.insert(e);
                }
            }
            proptest::prop_assert!(fip_eips.is_disjoint(&snat_eips));
            // Every verdict agrees with the table.
            let planned = p.fips.values().filter(|v| v.planned).count()
                + p.dnats.values().filter(|v| v.planned).count();
            proptest::prop_assert_eq!(planned, d.ruleset.prerouting.len());
            // Input order does not matter.
            let mut j = i.clone();
            let k = seed % (j.eips.len() + 1);
            j.eips.rotate_left(k);
            j.fips.reverse();
            j.snats.reverse();
            let k = seed % (j.dnats.len() + 1);
            j.dnats.rotate_left(k);
            proptest::prop_assert_eq!(plan(&j), p);
        }
    }

    #[test]
    fn nad_references_are_checked() {
        assert!(NadRef::parse("a/b").is_ok());
        for bad in ["", "a", "/b", "a/", "a/b/c"] {
            assert!(NadRef::parse(bad).is_err(), "{bad}");
        }
    }
}
