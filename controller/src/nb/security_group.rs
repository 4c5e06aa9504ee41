//! Security groups in NB (DESIGN §3, §7): a `SecurityGroup` is the `Port_Group` `ovn.sg.<sg>`
//! (`-` → `.`) with its ACLs, and two `Address_Set`s of its members' addresses
//! (`ovn.sg.<sg>.associated.v4|v6`) that rules of other groups (`remoteType: securityGroup`) and
//! `allowSameGroupTraffic` match on. Every port in a group is also in the default-deny group
//! [`DENY_ALL_PORT_GROUP`], whose ACLs drop all IP traffic to and from its members that no rule
//! allows, except DHCP and IPv6 neighbour discovery (ARP is not IP and never matches).
//!
//! The ACLs name the port group and the address sets, never a port, so their number depends on
//! the rules alone: a member joining or leaving changes only `Port_Group.ports` and the address
//! sets, in the pod's own transaction ([`prepare_membership`]).
//!
//! Priorities (one band for every group, as OVN evaluates all port groups' ACLs of a switch
//! together): the default drop at [`DENY_PRIORITY`], same-group traffic at
//! [`SAME_GROUP_PRIORITY`], rules at [`RULE_PRIORITY_LOWEST`]`..`[`INFRA_PRIORITY`] (a rule's
//! `priority` 1 is the highest, as upstream), DHCP and ND above every rule at
//! [`INFRA_PRIORITY`]. Allow rules are `allow-related`, so replies of an allowed connection pass
//! the other direction's default drop.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crds::naming::{
    DENY_ALL_PORT_GROUP, EXTERNAL_ID_SECURITY_GROUP, EXTERNAL_ID_SECURITY_GROUPS,
    EXTERNAL_ID_VENDOR, port_group, security_group_address_set,
};
use crds::security_group::{
    IpVersion, SecurityGroupRule, SecurityGroupSpec, SgPolicy, SgProtocol, SgRemoteType,
};
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{Acl, AddressSet, LogicalSwitch, LogicalSwitchPort, PortGroup};
use ovn_api::txn::Txn;
use ovn_api::value::{Atom, Datum, Uuid};

use super::{Nb, NbError, db, is_ours, owned_ids};

/// Priority of the default-deny group's drops.
pub const DENY_PRIORITY: i64 = 2003;
/// Priority of `allowSameGroupTraffic`'s allows.
pub const SAME_GROUP_PRIORITY: i64 = 2004;
/// Priority of a rule with the lowest precedence (`priority: 16384`, or none).
pub const RULE_PRIORITY_LOWEST: i64 = 2005;
/// The largest (least preferred) rule `priority`.
pub const MAX_RULE_PRIORITY: i32 = 16384;
/// Priority of the DHCP and ND allows of the default-deny group: above every rule.
pub const INFRA_PRIORITY: i64 = RULE_PRIORITY_LOWEST + MAX_RULE_PRIORITY as i64;

/// `external_ids` key set on the port group of a group being deleted: no port joins it any more
/// (its members may stay until they leave).
pub const EXTERNAL_ID_DELETING: &str = "deleting";

/// The `external_ids:sg` of the default-deny group's rows.
const DENY_ALL_OWNER: &str = "kubeovn_deny_all";

/// Which way a rule looks, seen from the member port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic into members (`ingressRules`): `to-lport`, `outport == @pg`, remote is the source.
    Ingress,
    /// Traffic out of members (`egressRules`): `from-lport`, `inport == @pg`, remote is the
    /// destination.
    Egress,
}

impl Direction {
    pub(crate) fn ovn(self) -> &'static str {
        match self {
            Direction::Ingress => "to-lport",
            Direction::Egress => "from-lport",
        }
    }
    pub(crate) fn port(self) -> &'static str {
        match self {
            Direction::Ingress => "outport",
            Direction::Egress => "inport",
        }
    }
    pub(crate) fn remote(self) -> &'static str {
        match self {
            Direction::Ingress => "src",
            Direction::Egress => "dst",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Direction::Ingress => "spec.ingressRules",
            Direction::Egress => "spec.egressRules",
        }
    }
}

/// One ACL as planned: what is compared with the rows in NB.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclSpec {
    /// `from-lport` or `to-lport`.
    pub direction: &'static str,
    /// OVN priority.
    pub priority: i64,
    /// The match.
    pub match_: String,
    /// `allow`, `allow-related` or `drop`.
    pub action: &'static str,
    /// The remote group whose address set the match names, if any.
    pub remote_group: Option<String>,
}

/// The OVN priority of a rule's `priority` (1 is the highest; none is the lowest).
pub fn rule_priority(priority: Option<i32>) -> i64 {
    let p = priority
        .unwrap_or(MAX_RULE_PRIORITY)
        .clamp(1, MAX_RULE_PRIORITY);
    RULE_PRIORITY_LOWEST + i64::from(MAX_RULE_PRIORITY - p)
}

fn family(v: IpVersion) -> (&'static str, bool) {
    match v {
        IpVersion::Ipv4 => ("ip4", false),
        IpVersion::Ipv6 => ("ip6", true),
    }
}

/// The ACL of one rule of group `group`, or why the rule cannot be one (the message names the
/// rule's field, e.g. `spec.ingressRules[2].policy`).
pub fn rule_acl(
    group: &str,
    direction: Direction,
    index: usize,
    rule: &SecurityGroupRule,
) -> Result<AclSpec, String> {
    let field = format!("{}[{index}]", direction.field());
    let (ip, v6) = family(rule.ip_version);
    let mut clauses = vec![
        format!("{} == @{}", direction.port(), port_group(group)),
        ip.to_owned(),
    ];
    let mut remote_group = None;
    match rule.remote_type {
        SgRemoteType::Address => {
            let raw = rule
                .remote_address
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    format!("{field}.remoteAddress: required when remoteType is address")
                })?;
            let net: Option<ipnet::IpNet> = if raw.contains('/') {
                raw.parse::<ipnet::IpNet>().ok().map(|n| n.trunc())
            } else {
                raw.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
            };
            let net = net.ok_or_else(|| {
                format!("{field}.remoteAddress: {raw:?} is not an address or CIDR")
            })?;
            if matches!(net, ipnet::IpNet::V6(_)) != v6 {
                return Err(format!(
                    "{field}.remoteAddress: {raw:?} is not an {ip} address (ipVersion is {})",
                    if v6 { "ipv6" } else { "ipv4" }
                ));
            }
            if net.prefix_len() != 0 {
                let value = if net.prefix_len() == net.max_prefix_len() {
                    net.addr().to_string()
                } else {
                    net.to_string()
                };
                clauses.push(format!("{ip}.{} == {value}", direction.remote()));
            }
        }
        SgRemoteType::SecurityGroup => {
            let remote = rule
                .remote_security_group
                .as_deref()
                .filter(|g| !g.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{field}.remoteSecurityGroup: required when remoteType is securityGroup"
                    )
                })?;
            crds::validation::dns1123_subdomain(&format!("{field}.remoteSecurityGroup"), remote)
                .map_err(|e| e.to_string())?;
            clauses.push(format!(
                "{ip}.{} == ${}",
                direction.remote(),
                security_group_address_set(remote, v6)
            ));
            remote_group = Some(remote.to_owned());
        }
    }
    let l4 = match rule.protocol {
        SgProtocol::All => None,
        SgProtocol::Icmp => {
            clauses.push(if v6 { "icmp6" } else { "icmp4" }.to_owned());
            None
        }
        SgProtocol::Tcp => Some("tcp"),
        SgProtocol::Udp => Some("udp"),
    };
    match (rule.port_range_min, rule.port_range_max, l4) {
        (None, None, Some(l4)) => clauses.push(l4.to_owned()),
        (None, None, None) => {}
        (_, _, None) => {
            return Err(format!(
                "{field}: a port range needs protocol tcp or udp (protocol is {:?})",
                rule.protocol
            ));
        }
        (None, Some(_), Some(_)) => {
            return Err(format!(
                "{field}.portRangeMax: set portRangeMin too (the first port of the range)"
            ));
        }
        (Some(lo), hi, Some(l4)) => {
            let hi = hi.unwrap_or(lo);
            if lo == 0 || lo > hi {
                return Err(format!(
                    "{field}: port range {lo}-{hi} is not a range of ports 1..=65535"
                ));
            }
            if lo == hi {
                clauses.push(format!("{l4}.dst == {lo}"));
            } else {
                clauses.push(format!("{l4}.dst >= {lo} && {l4}.dst <= {hi}"));
            }
        }
    }
    if let Some(p) = rule.priority
        && !(1..=MAX_RULE_PRIORITY).contains(&p)
    {
        return Err(format!(
            "{field}.priority: {p} is not between 1 and {MAX_RULE_PRIORITY}"
        ));
    }
    let action = match rule.policy {
        SgPolicy::Allow => "allow-related",
        SgPolicy::Drop => "drop",
        SgPolicy::Pass => {
            return Err(format!(
                "{field}.policy: pass is not supported (this OVN's ACLs have no tiers to pass to); use allow or drop"
            ));
        }
    };
    Ok(AclSpec {
        direction: direction.ovn(),
        priority: rule_priority(rule.priority),
        match_: clauses.join(" && "),
        action,
        remote_group,
    })
}

/// Every ACL of group `group`'s port group, or every problem of its rules (each naming its
/// field). Identical rules give one ACL.
pub fn plan_acls(group: &str, spec: &SecurityGroupSpec) -> Result<Vec<AclSpec>, Vec<String>> {
    let mut acls = BTreeSet::new();
    let mut problems = Vec::new();
    if spec.allow_same_group_traffic {
        let pg = port_group(group);
        for v6 in [false, true] {
            let (ip, set) = (
                if v6 { "ip6" } else { "ip4" },
                security_group_address_set(group, v6),
            );
            for d in [Direction::Ingress, Direction::Egress] {
                acls.insert(AclSpec {
                    direction: d.ovn(),
                    priority: SAME_GROUP_PRIORITY,
                    match_: format!("{} == @{pg} && {ip}.{} == ${set}", d.port(), d.remote()),
                    action: "allow-related",
                    remote_group: Some(group.to_owned()),
                });
            }
        }
    }
    for (direction, rules) in [
        (Direction::Ingress, &spec.ingress_rules),
        (Direction::Egress, &spec.egress_rules),
    ] {
        for (i, rule) in rules.iter().enumerate() {
            match rule_acl(group, direction, i, rule) {
                Ok(acl) => {
                    acls.insert(acl);
                }
                Err(e) => problems.push(e),
            }
        }
    }
    if problems.is_empty() {
        Ok(acls.into_iter().collect())
    } else {
        Err(problems)
    }
}

/// The default-deny group's ACLs: drop all IP both ways, except DHCP to and from OVN and
/// IPv6 neighbour discovery.
pub fn deny_all_acls() -> Vec<AclSpec> {
    let pg = DENY_ALL_PORT_GROUP;
    let infra = |d: Direction, dhcp: &str| AclSpec {
        direction: d.ovn(),
        priority: INFRA_PRIORITY,
        match_: format!("{} == @{pg} && ({dhcp} || nd || nd_rs || nd_ra)", d.port()),
        action: "allow",
        remote_group: None,
    };
    vec![
        AclSpec {
            direction: Direction::Ingress.ovn(),
            priority: DENY_PRIORITY,
            match_: format!("outport == @{pg} && ip"),
            action: "drop",
            remote_group: None,
        },
        AclSpec {
            direction: Direction::Egress.ovn(),
            priority: DENY_PRIORITY,
            match_: format!("inport == @{pg} && ip"),
            action: "drop",
            remote_group: None,
        },
        infra(
            Direction::Egress,
            "(ip4 && udp.src == 68 && udp.dst == 67) || (ip6 && udp.src == 546 && udp.dst == 547)",
        ),
        infra(
            Direction::Ingress,
            "(ip4 && udp.src == 67 && udp.dst == 68) || (ip6 && udp.src == 547 && udp.dst == 546)",
        ),
    ]
}

/// A digest of rules as written to the status (`ingressMd5`/`egressMd5`; the field names are
/// upstream's, the digest is SHA-256 of the rules' JSON).
pub fn rules_digest(rules: &[SecurityGroupRule]) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(rules).unwrap_or_default();
    sha2::Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The addresses of an LSP row (`"<mac> <ip> <ip>"`).
fn port_ips(p: &LogicalSwitchPort) -> Vec<IpAddr> {
    p.addresses
        .iter()
        .flat_map(|a| a.split_whitespace().skip(1))
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

fn split_by_family(ips: &[IpAddr]) -> [Vec<String>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for ip in ips {
        out[usize::from(ip.is_ipv6())].push(ip.to_string());
    }
    out
}

/// The security groups an LSP's `external_ids` list.
pub fn groups_of_port(ids: &BTreeMap<String, String>) -> Vec<String> {
    ids.get(EXTERNAL_ID_SECURITY_GROUPS)
        .map(|v| {
            v.split('/')
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The `external_ids:security_groups` value for `groups` (sorted names joined by `/`).
pub fn groups_id(groups: &[String]) -> String {
    groups.join("/")
}

/// Our port group of `group`, or an error when the name is taken by a row that is not ours or
/// belongs to another group (`a-b` and `a.b` share `ovn.sg.a.b`).
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
fn our_group(r: &Replica, group: &str) -> Result<Option<PortGroup>, NbError> {
    let name = port_group(group);
    let Some(pg) = r
        .one_by_name::<PortGroup>(&name)
        .map_err(db(format!("reading port group {name}")))?
    else {
        return Ok(None);
    };
    if !is_ours(&pg.external_ids) {
        return Err(NbError::NotOurs {
            table: "Port_Group",
            name,
        });
    }
    match pg.external_ids.get(EXTERNAL_ID_SECURITY_GROUP) {
        Some(owner) if owner == group => Ok(Some(pg)),
        owner => Err(NbError::GroupClash {
            port_group: name,
            group: group.to_owned(),
            owner: owner.cloned().unwrap_or_default(),
        }),
    }
}

#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
fn our_address_set(r: &Replica, name: &str) -> Result<Option<AddressSet>, NbError> {
    let set = r
        .one_by_name::<AddressSet>(name)
        .map_err(db(format!("reading address set {name}")))?;
    match set {
        Some(s) if !is_ours(&s.external_ids) => Err(NbError::NotOurs {
            table: "Address_Set",
            name: name.to_owned(),
        }),
        other => Ok(other),
    }
}

/// A row whose `acls` column holds ACLs of ours.
#[derive(Debug, Clone, Copy)]
pub(super) enum AclHolder {
    /// A port group: a security group's, or the default-deny group.
    PortGroup(Uuid),
    /// A Subnet's logical switch.
    Switch(Uuid),
}

impl AclHolder {
    fn add(self, tx: &mut Txn, acl: ovn_api::txn::NamedUuid) {
        match self {
            AclHolder::PortGroup(pg) => {
                tx.mutate::<PortGroup>(pg, [PortGroup::ACLS.insert(acl)]);
            }
            AclHolder::Switch(ls) => {
                tx.mutate::<LogicalSwitch>(ls, [LogicalSwitch::ACLS.insert(acl)]);
            }
        }
    }

    fn remove(self, tx: &mut Txn, acl: Uuid) {
        // The ACL row is not a root: once no holder refers to it, OVSDB deletes it.
        match self {
            AclHolder::PortGroup(pg) => {
                tx.mutate::<PortGroup>(pg, [PortGroup::ACLS.delete(acl)]);
            }
            AclHolder::Switch(ls) => {
                tx.mutate::<LogicalSwitch>(ls, [LogicalSwitch::ACLS.delete(acl)]);
            }
        }
    }
}

/// Adds to `tx` what makes the ACLs of `holder` (whose `acls` column is `current`) that carry
/// our vendor tag and the owner id `owner` exactly `wanted`; ACLs of other owners stay.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
pub(super) fn sync_acls(
    r: &Replica,
    tx: &mut Txn,
    holder: AclHolder,
    current: &[Uuid],
    wanted: &[AclSpec],
    owner: (&str, &str),
) -> Result<(), NbError> {
    let mut have = BTreeMap::new();
    for uuid in current {
        let Some(acl) = r
            .get::<Acl>(*uuid)
            .map_err(db(format!("reading ACLs of {}={}", owner.0, owner.1)))?
        else {
            continue;
        };
        if !is_ours(&acl.external_ids)
            || acl.external_ids.get(owner.0).map(String::as_str) != Some(owner.1)
        {
            continue;
        }
        let key = (acl.direction, acl.priority, acl.match_, acl.action);
        if have.insert(key, *uuid).is_some() {
            // A duplicate of ours: drop it.
            holder.remove(tx, *uuid);
        }
    }
    let ids = owned_ids(&[owner]);
    for acl in wanted {
        let key = (
            acl.direction.to_owned(),
            acl.priority,
            acl.match_.clone(),
            acl.action.to_owned(),
        );
        if have.remove(&key).is_none() {
            let row = tx.insert(&new_acl(acl, &ids));
            holder.add(tx, row);
        }
    }
    for uuid in have.into_values() {
        holder.remove(tx, uuid);
    }
    Ok(())
}

fn new_acl(acl: &AclSpec, ids: &BTreeMap<String, String>) -> Acl {
    Acl {
        direction: acl.direction.to_owned(),
        priority: acl.priority,
        match_: acl.match_.clone(),
        action: acl.action.to_owned(),
        external_ids: ids.clone(),
        ..Default::default()
    }
}

/// Adds to `tx` new ACL rows for `acls`, owned by `owner`: the values for a new holder's
/// `acls` column.
pub(super) fn insert_acls(tx: &mut Txn, acls: &[AclSpec], owner: (&str, &str)) -> Vec<Atom> {
    let ids = owned_ids(&[owner]);
    acls.iter()
        .map(|a| Atom::from(tx.insert(&new_acl(a, &ids))))
        .collect()
}

/// Adds to `tx` a new port group `name` with `ports` and `acls`.
fn insert_group(
    tx: &mut Txn,
    name: &str,
    owner: &str,
    ports: Vec<Atom>,
    acls: &[AclSpec],
) -> ovn_api::txn::NamedUuid {
    let rows = insert_acls(tx, acls, (EXTERNAL_ID_SECURITY_GROUP, owner));
    tx.insert_with(
        &PortGroup {
            name: name.to_owned(),
            external_ids: owned_ids(&[(EXTERNAL_ID_SECURITY_GROUP, owner)]),
            ..Default::default()
        },
        [
            PortGroup::ACLS.set(Datum::set(rows)),
            PortGroup::PORTS.set(Datum::set(ports)),
        ],
    )
}

/// Adds to `tx` the default-deny group, or the fix of its ACLs.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
pub fn plan_deny_all(r: &Replica, tx: &mut Txn, joining: &[Uuid]) -> Result<(), NbError> {
    let existing = r
        .one_by_name::<PortGroup>(DENY_ALL_PORT_GROUP)
        .map_err(db("reading the default-deny port group"))?;
    let acls = deny_all_acls();
    match existing {
        Some(pg) if !is_ours(&pg.external_ids) => Err(NbError::NotOurs {
            table: "Port_Group",
            name: DENY_ALL_PORT_GROUP.to_owned(),
        }),
        Some(pg) => {
            let join: Vec<Atom> = joining
                .iter()
                .filter(|u| !pg.ports.contains(u))
                .map(|u| Atom::Uuid(*u))
                .collect();
            if !join.is_empty() {
                tx.mutate::<PortGroup>(pg.uuid, [PortGroup::PORTS.insert(Datum::set(join))]);
            }
            sync_acls(
                r,
                tx,
                AclHolder::PortGroup(pg.uuid),
                &pg.acls,
                &acls,
                (EXTERNAL_ID_SECURITY_GROUP, DENY_ALL_OWNER),
            )
        }
        None => {
            // Every port that names a group belongs here (a group created before this one
            // existed, or after it was collected, still has its members).
            let ports = r
                .list::<PortGroup>()
                .map_err(db("listing port groups"))?
                .into_iter()
                .filter(|pg| {
                    is_ours(&pg.external_ids)
                        && pg.external_ids.contains_key(EXTERNAL_ID_SECURITY_GROUP)
                })
                .flat_map(|pg| pg.ports)
                .chain(joining.iter().copied())
                .collect::<BTreeSet<Uuid>>();
            insert_group(
                tx,
                DENY_ALL_PORT_GROUP,
                DENY_ALL_OWNER,
                ports.into_iter().map(Atom::Uuid).collect(),
                &acls,
            );
            Ok(())
        }
    }
}

/// Our attachment ports whose `external_ids:security_groups` names `group`.
fn ports_naming(r: &Replica, group: &str) -> Vec<LogicalSwitchPort> {
    r.table(<LogicalSwitchPort as ovn_api::tables::Table>::TABLE)
        .map(|t| {
            t.with_external_id(EXTERNAL_ID_SECURITY_GROUPS)
                .filter(|row| {
                    row.external_id(EXTERNAL_ID_VENDOR.0) == Some(EXTERNAL_ID_VENDOR.1)
                        && row
                            .external_id(EXTERNAL_ID_SECURITY_GROUPS)
                            .is_some_and(|v| v.split('/').any(|g| g == group))
                })
                .map(|row| row.uuid)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|u| r.get::<LogicalSwitchPort>(u).ok().flatten())
        .collect()
}

/// Adds to `tx` group `group`'s port group with exactly `acls` (`None`: keep the ACLs it has;
/// a new group then starts with none), its address sets and the default-deny group. A group
/// created after its members' ports (or re-created) takes in every port that names it, with
/// their addresses; afterwards membership is the pods' to change.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
pub fn plan_group(
    r: &Replica,
    tx: &mut Txn,
    group: &str,
    acls: Option<&[AclSpec]>,
) -> Result<(), NbError> {
    let existing = our_group(r, group)?;
    let sets = [
        our_address_set(r, &security_group_address_set(group, false))?,
        our_address_set(r, &security_group_address_set(group, true))?,
    ];
    let members: Vec<LogicalSwitchPort> = match &existing {
        Some(pg) => pg
            .ports
            .iter()
            .filter_map(|u| r.get::<LogicalSwitchPort>(*u).ok().flatten())
            .collect(),
        None => ports_naming(r, group),
    };
    // A new group's members (ports that named it before it existed) join the default-deny
    // group with it.
    let joining: Vec<Uuid> = if existing.is_none() {
        members.iter().map(|p| p.uuid).collect()
    } else {
        Vec::new()
    };
    plan_deny_all(r, tx, &joining)?;
    match existing {
        Some(pg) => {
            if pg.external_ids.contains_key(EXTERNAL_ID_DELETING) {
                // A group of this name exists again: it takes members again.
                let ids = owned_ids(&[(EXTERNAL_ID_SECURITY_GROUP, group)]);
                tx.update::<PortGroup>(pg.uuid, [PortGroup::EXTERNAL_IDS.to(&ids)]);
            }
            if let Some(acls) = acls {
                sync_acls(
                    r,
                    tx,
                    AclHolder::PortGroup(pg.uuid),
                    &pg.acls,
                    acls,
                    (EXTERNAL_ID_SECURITY_GROUP, group),
                )?;
            }
        }
        None => {
            let ports = members.iter().map(|p| Atom::Uuid(p.uuid)).collect();
            insert_group(tx, &port_group(group), group, ports, acls.unwrap_or(&[]));
        }
    }
    let ips: Vec<IpAddr> = members.iter().flat_map(port_ips).collect();
    let by_family = split_by_family(&ips);
    for (v6, set) in [false, true].into_iter().zip(sets) {
        if set.is_none() {
            tx.insert(&AddressSet {
                name: security_group_address_set(group, v6),
                addresses: by_family[usize::from(v6)].clone(),
                external_ids: owned_ids(&[(EXTERNAL_ID_SECURITY_GROUP, group)]),
                ..Default::default()
            });
        }
    }
    Ok(())
}

/// Ensures group `group` in NB (see [`plan_group`]) in one transaction.
pub async fn ensure_group(nb: &Nb, group: &str, acls: Option<&[AclSpec]>) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_group(&nb.replica(), &mut tx, group, acls)?;
    nb.commit(tx, format!("writing security group {group}"))
        .await
}

/// Whether the address sets of `group` exist (a rule naming it as remote can match).
pub fn group_exists(r: &Replica, group: &str) -> bool {
    [false, true].into_iter().all(|v6| {
        our_address_set(r, &security_group_address_set(group, v6))
            .ok()
            .flatten()
            .is_some()
    })
}

/// Marks group `group`'s port group as being deleted (see [`EXTERNAL_ID_DELETING`]): one
/// transaction, nothing when it is marked already or does not exist.
pub async fn mark_deleting(nb: &Nb, group: &str) -> Result<(), NbError> {
    let mut tx = Txn::new();
    if let Some(pg) = our_group(&nb.replica(), group)?
        && !pg.external_ids.contains_key(EXTERNAL_ID_DELETING)
    {
        let mut ids = pg.external_ids.clone();
        ids.insert(EXTERNAL_ID_DELETING.to_owned(), "true".to_owned());
        tx.update::<PortGroup>(pg.uuid, [PortGroup::EXTERNAL_IDS.to(&ids)]);
    }
    nb.commit(
        tx,
        format!("marking security group {group} as being deleted"),
    )
    .await
}

/// The ports (LSP names) that are in group `group` or name it.
pub fn members(nb: &Nb, group: &str) -> Vec<String> {
    let r = nb.replica();
    let mut names: BTreeSet<String> = ports_naming(&r, group)
        .into_iter()
        .map(|p| p.name)
        .collect();
    if let Ok(Some(pg)) = our_group(&r, group) {
        names.extend(
            pg.ports
                .iter()
                .filter_map(|u| r.get::<LogicalSwitchPort>(*u).ok().flatten())
                .map(|p| p.name),
        );
    }
    names.into_iter().collect()
}

/// Adds to `tx` the removal of group `group`'s port group (its ACLs go with it) and address
/// sets (`unused`: on the condition that the port group still has no ports, so a member that
/// joined meanwhile fails the transaction); returns whether anything was there.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
pub fn plan_delete_group(
    r: &Replica,
    tx: &mut Txn,
    group: &str,
    unused: bool,
) -> Result<bool, NbError> {
    let pg = match our_group(r, group) {
        Ok(pg) => pg,
        // Another group's (or nobody's) port group under this name: not ours to delete.
        Err(NbError::GroupClash { .. } | NbError::NotOurs { .. }) => None,
        Err(e) => return Err(e),
    };
    let mut found = false;
    if let Some(pg) = pg {
        if unused {
            tx.expect::<PortGroup>(
                pg.uuid,
                &[PortGroup::PORTS.name()],
                vec![BTreeMap::from([(
                    PortGroup::PORTS.name().to_owned(),
                    Datum::set(Vec::<Atom>::new()),
                )])],
            );
        }
        tx.delete::<PortGroup>(pg.uuid);
        found = true;
    }
    for v6 in [false, true] {
        let name = security_group_address_set(group, v6);
        if let Ok(Some(set)) = our_address_set(r, &name)
            && set
                .external_ids
                .get(EXTERNAL_ID_SECURITY_GROUP)
                .map(String::as_str)
                == Some(group)
        {
            tx.delete::<AddressSet>(set.uuid);
            found = true;
        }
    }
    Ok(found)
}

/// Deletes group `group` from NB (see [`plan_delete_group`]) in one transaction. The GC
/// passes `unused: false`: the group's object is gone, so its rows go even if ports still name
/// it (they stay in the default-deny group: closed, not open).
pub async fn delete_group(nb: &Nb, group: &str, unused: bool) -> Result<bool, NbError> {
    let mut tx = Txn::new();
    let found = plan_delete_group(&nb.replica(), &mut tx, group, unused)?;
    nb.commit(tx, format!("deleting security group {group}"))
        .await?;
    Ok(found)
}

/// The groups that own port groups or address sets of ours (not the default-deny group).
pub fn owned_groups(nb: &Nb) -> BTreeSet<String> {
    let mut groups = owners(nb, EXTERNAL_ID_SECURITY_GROUP);
    groups.remove(DENY_ALL_OWNER);
    groups
}

/// The values of `external_ids:<key>` on our port groups and address sets: the objects that
/// own such rows.
pub(super) fn owners(nb: &Nb, key: &str) -> BTreeSet<String> {
    let r = nb.replica();
    r.list::<PortGroup>()
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.external_ids)
        .chain(
            r.list::<AddressSet>()
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.external_ids),
        )
        .filter(is_ours)
        .filter_map(|mut ids| ids.remove(key))
        .collect()
}

/// Deletes the default-deny group when it has no members (the GC's call once no group exists).
pub async fn delete_deny_all_if_unused(nb: &Nb) -> Result<bool, NbError> {
    let mut tx = Txn::new();
    {
        let r = nb.replica();
        let Some(pg) = r
            .one_by_name::<PortGroup>(DENY_ALL_PORT_GROUP)
            .map_err(db("reading the default-deny port group"))?
            .filter(|pg| is_ours(&pg.external_ids) && pg.ports.is_empty())
        else {
            return Ok(false);
        };
        tx.expect::<PortGroup>(
            pg.uuid,
            &[PortGroup::PORTS.name()],
            vec![BTreeMap::from([(
                PortGroup::PORTS.name().to_owned(),
                Datum::set(Vec::<Atom>::new()),
            )])],
        );
        tx.delete::<PortGroup>(pg.uuid);
    }
    nb.commit(tx, "deleting the default-deny port group".into())
        .await?;
    Ok(true)
}

/// What a port's security groups change in NB: port group memberships and address set
/// entries, checked against the replica before any of it is added to a transaction.
#[derive(Debug, Default)]
pub struct Membership {
    join: Vec<Uuid>,
    leave: Vec<Uuid>,
    add: Vec<(Uuid, Vec<String>)>,
    remove: Vec<(Uuid, Vec<String>)>,
}

/// Whether a member of `pg` other than `except` has address `ip` (ports in different VPCs may
/// share one). Reads the raw `addresses` column of each member, without converting rows: a
/// leave costs one pass over the members' address strings.
fn held_by_other(r: &Replica, pg: &PortGroup, except: Option<Uuid>, ip: &IpAddr) -> bool {
    let Some(table) = r.table(<LogicalSwitchPort as ovn_api::tables::Table>::TABLE) else {
        return false;
    };
    let ip = ip.to_string();
    pg.ports
        .iter()
        .filter(|u| Some(**u) != except)
        .filter_map(|u| table.get(u))
        .filter_map(|row| row.get(LogicalSwitchPort::ADDRESSES.name()))
        .any(|addresses| {
            addresses
                .as_set()
                .iter()
                .filter_map(Atom::as_str)
                .any(|a| a.split_whitespace().skip(1).any(|x| x == ip))
        })
}

/// Plans the memberships of a port (`port`: its UUID, `None` for a port this transaction
/// inserts) that had addresses `old_ips` and now has `ips` and the security groups `groups`:
/// it joins each group's port group and the default-deny group, its addresses join the
/// groups' address sets; it leaves groups no longer named, and addresses it no longer has
/// leave (unless another member has them too). Fails, before anything is planned, when a
/// group (or the default-deny group) has no port group yet.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
pub fn prepare_membership(
    r: &Replica,
    port: Option<Uuid>,
    old_ips: &[IpAddr],
    ips: &[IpAddr],
    groups: &[String],
) -> Result<Membership, NbError> {
    let mut plan = Membership::default();
    let mut wanted = BTreeSet::new();
    let new = split_by_family(ips);
    let gone: Vec<&IpAddr> = old_ips.iter().filter(|ip| !ips.contains(ip)).collect();
    let mut missing = Vec::new();
    let mut found = Vec::new();
    for group in groups {
        let pg = our_group(r, group)?;
        let sets = [
            our_address_set(r, &security_group_address_set(group, false))?,
            our_address_set(r, &security_group_address_set(group, true))?,
        ];
        match (pg, sets) {
            (Some(pg), [Some(v4), Some(v6)]) => found.push((pg, [v4, v6])),
            _ => missing.push(group.clone()),
        }
    }
    if !groups.is_empty() && r.uuid_by_name::<PortGroup>(DENY_ALL_PORT_GROUP).is_none() {
        missing.push(DENY_ALL_OWNER.to_owned());
    }
    if !missing.is_empty() {
        return Err(NbError::NoSecurityGroup(missing));
    }
    let deleting: Vec<String> = found
        .iter()
        .filter(|(pg, _)| {
            pg.external_ids.contains_key(EXTERNAL_ID_DELETING)
                && port.is_none_or(|u| !pg.ports.contains(&u))
        })
        .filter_map(|(pg, _)| pg.external_ids.get(EXTERNAL_ID_SECURITY_GROUP).cloned())
        .collect();
    if !deleting.is_empty() {
        return Err(NbError::SecurityGroupDeleting(deleting));
    }
    for (pg, sets) in &found {
        wanted.insert(pg.uuid);
        if port.is_none_or(|u| !pg.ports.contains(&u)) {
            plan.join.push(pg.uuid);
        }
        for (family, set) in sets.iter().enumerate() {
            let add: Vec<String> = new[family]
                .iter()
                .filter(|ip| !set.addresses.contains(ip))
                .cloned()
                .collect();
            if !add.is_empty() {
                plan.add.push((set.uuid, add));
            }
            let remove: Vec<String> = gone
                .iter()
                .filter(|ip| usize::from(ip.is_ipv6()) == family)
                .filter(|ip| set.addresses.contains(&ip.to_string()))
                .filter(|ip| !held_by_other(r, pg, port, ip))
                .map(|ip| ip.to_string())
                .collect();
            if !remove.is_empty() {
                plan.remove.push((set.uuid, remove));
            }
        }
    }
    if let Some(deny) = r.uuid_by_name::<PortGroup>(DENY_ALL_PORT_GROUP)
        && !groups.is_empty()
    {
        wanted.insert(deny);
        let member = port.is_some_and(|u| {
            r.get::<PortGroup>(deny)
                .ok()
                .flatten()
                .is_some_and(|pg| pg.ports.contains(&u))
        });
        if !member {
            plan.join.push(deny);
        }
    }
    if let Some(port) = port {
        let all: Vec<&IpAddr> = old_ips.iter().chain(ips).collect();
        for pg in current_groups(r, port)? {
            if wanted.contains(&pg.uuid) {
                continue;
            }
            plan.leave.push(pg.uuid);
            let Some(group) = pg.external_ids.get(EXTERNAL_ID_SECURITY_GROUP) else {
                continue;
            };
            plan.remove
                .extend(address_removals(r, &pg, group, port, &all));
        }
    }
    Ok(plan)
}

/// Our security-group port groups (and the default-deny group) that hold `port`.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
fn current_groups(r: &Replica, port: Uuid) -> Result<Vec<PortGroup>, NbError> {
    let mut out = Vec::new();
    for uuid in r.referrers::<PortGroup>(PortGroup::PORTS.name(), &Atom::Uuid(port)) {
        if let Some(pg) = r
            .get::<PortGroup>(uuid)
            .map_err(db("reading port groups"))?
            .filter(|pg| {
                is_ours(&pg.external_ids)
                    && pg.external_ids.contains_key(EXTERNAL_ID_SECURITY_GROUP)
            })
        {
            out.push(pg);
        }
    }
    Ok(out)
}

/// The removals from `group`'s address sets of the addresses `ips` of `port`, leaving `pg`.
fn address_removals(
    r: &Replica,
    pg: &PortGroup,
    group: &str,
    port: Uuid,
    ips: &[&IpAddr],
) -> Vec<(Uuid, Vec<String>)> {
    if group == DENY_ALL_OWNER {
        return Vec::new();
    }
    let mut out = Vec::new();
    for v6 in [false, true] {
        let Ok(Some(set)) = our_address_set(r, &security_group_address_set(group, v6)) else {
            continue;
        };
        let remove: BTreeSet<String> = ips
            .iter()
            .filter(|ip| ip.is_ipv6() == v6)
            .filter(|ip| set.addresses.contains(&ip.to_string()))
            .filter(|ip| !held_by_other(r, pg, Some(port), ip))
            .map(|ip| ip.to_string())
            .collect();
        if !remove.is_empty() {
            out.push((set.uuid, remove.into_iter().collect()));
        }
    }
    out
}

impl Membership {
    /// Adds the planned changes to `tx`, for the port `port` (its UUID or the name it is
    /// inserted under in `tx`).
    pub fn apply(self, tx: &mut Txn, port: impl Into<Atom>) {
        let port: Atom = port.into();
        for pg in self.join {
            tx.mutate::<PortGroup>(pg, [PortGroup::PORTS.insert(Datum::scalar(port.clone()))]);
        }
        for pg in self.leave {
            tx.mutate::<PortGroup>(pg, [PortGroup::PORTS.delete(Datum::scalar(port.clone()))]);
        }
        for (set, ips) in self.add {
            tx.mutate::<AddressSet>(set, [AddressSet::ADDRESSES.insert(ips)]);
        }
        for (set, ips) in self.remove {
            tx.mutate::<AddressSet>(set, [AddressSet::ADDRESSES.delete(ips)]);
        }
    }
}

/// Adds to `tx` the removal of the addresses of the port `port` (being deleted; the port
/// groups' weak references drop it by themselves) from its groups' address sets.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
pub fn plan_forget_port(
    r: &Replica,
    tx: &mut Txn,
    port: &LogicalSwitchPort,
) -> Result<(), NbError> {
    let ips = port_ips(port);
    let refs: Vec<&IpAddr> = ips.iter().collect();
    for pg in current_groups(r, port.uuid)? {
        let Some(group) = pg.external_ids.get(EXTERNAL_ID_SECURITY_GROUP) else {
            continue;
        };
        for (set, remove) in address_removals(r, &pg, group, port.uuid, &refs) {
            tx.mutate::<AddressSet>(set, [AddressSet::ADDRESSES.delete(remove)]);
        }
    }
    Ok(())
}

/// The addresses of an existing port, for [`prepare_membership`]'s `old_ips`.
pub fn addresses_of(port: &LogicalSwitchPort) -> Vec<IpAddr> {
    port_ips(port)
}

/// Checks that every group in `groups` (and the default-deny group, if any) has its port group
/// and address sets, and that the port `port` (its LSP name) joins none that is being deleted:
/// the error names the groups.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
pub fn check_groups(nb: &Nb, port: &str, groups: &[String]) -> Result<(), NbError> {
    let r = nb.replica();
    let uuid = r.uuid_by_name::<LogicalSwitchPort>(port);
    prepare_membership(&r, uuid, &[], &[], groups).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: serde_json::Value) -> SecurityGroupRule {
        serde_json::from_value(json).unwrap()
    }

    fn spec(ingress: Vec<SecurityGroupRule>, egress: Vec<SecurityGroupRule>) -> SecurityGroupSpec {
        SecurityGroupSpec {
            ingress_rules: ingress,
            egress_rules: egress,
            allow_same_group_traffic: false,
        }
    }

    #[test]
    fn rules_become_matches_on_the_port_group_with_upstreams_priority_order() {
        let cases = [
            (
                Direction::Ingress,
                serde_json::json!({"ipVersion": "ipv4", "protocol": "tcp", "priority": 1,
                    "remoteType": "address", "remoteAddress": "10.100.0.0/24",
                    "portRangeMin": 80, "portRangeMax": 80, "policy": "allow"}),
                "outport == @ovn.sg.web.sg && ip4 && ip4.src == 10.100.0.0/24 && tcp.dst == 80",
                18388,
                "allow-related",
            ),
            (
                Direction::Egress,
                serde_json::json!({"ipVersion": "ipv6", "protocol": "udp", "priority": 16384,
                    "remoteType": "address", "remoteAddress": "fd00::5",
                    "portRangeMin": 1000, "portRangeMax": 2000, "policy": "drop"}),
                "inport == @ovn.sg.web.sg && ip6 && ip6.dst == fd00::5 && udp.dst >= 1000 && udp.dst <= 2000",
                2005,
                "drop",
            ),
            (
                Direction::Ingress,
                serde_json::json!({"ipVersion": "ipv4", "protocol": "icmp",
                    "remoteType": "securityGroup", "remoteSecurityGroup": "db-clients",
                    "policy": "allow"}),
                "outport == @ovn.sg.web.sg && ip4 && ip4.src == $ovn.sg.db.clients.associated.v4 && icmp4",
                2005,
                "allow-related",
            ),
            (
                // All addresses need no address clause; host bits of a CIDR are cleared (OVN
                // refuses masked values with 1-bits outside the mask).
                Direction::Egress,
                serde_json::json!({"ipVersion": "ipv4", "protocol": "all", "priority": 100,
                    "remoteType": "address", "remoteAddress": "0.0.0.0/0", "policy": "allow"}),
                "inport == @ovn.sg.web.sg && ip4",
                18289,
                "allow-related",
            ),
            (
                Direction::Ingress,
                serde_json::json!({"ipVersion": "ipv4", "protocol": "udp", "priority": 5,
                    "remoteType": "address", "remoteAddress": "10.1.2.3/16", "policy": "allow"}),
                "outport == @ovn.sg.web.sg && ip4 && ip4.src == 10.1.0.0/16 && udp",
                18384,
                "allow-related",
            ),
        ];
        for (direction, json, want_match, want_priority, want_action) in cases {
            let acl = rule_acl("web-sg", direction, 0, &rule(json.clone())).unwrap();
            assert_eq!(acl.match_, want_match, "{json}");
            assert_eq!(acl.priority, want_priority, "{json}");
            assert_eq!(acl.action, want_action, "{json}");
            assert_eq!(
                acl.direction,
                if direction == Direction::Ingress {
                    "to-lport"
                } else {
                    "from-lport"
                }
            );
        }
        // Precedence: priority 1 beats 2; every rule sits between same-group and DHCP/ND.
        assert!(rule_priority(Some(1)) > rule_priority(Some(2)));
        assert!(rule_priority(None) > SAME_GROUP_PRIORITY);
        const { assert!(SAME_GROUP_PRIORITY > DENY_PRIORITY) };
        assert!(INFRA_PRIORITY > rule_priority(Some(1)));
        const { assert!(INFRA_PRIORITY <= 32767, "OVN's ACL priority range") };
    }

    #[test]
    fn bad_rules_are_refused_with_the_field_and_the_reason() {
        let cases = [
            (
                serde_json::json!({"ipVersion": "ipv4", "remoteType": "address",
                    "remoteAddress": "10.0.0.0/8", "policy": "pass"}),
                "spec.ingressRules[0].policy: pass is not supported",
            ),
            (
                serde_json::json!({"ipVersion": "ipv4", "protocol": "icmp", "remoteType": "address",
                    "remoteAddress": "10.0.0.0/8", "portRangeMin": 80, "policy": "allow"}),
                "spec.ingressRules[0]: a port range needs protocol tcp or udp",
            ),
            (
                serde_json::json!({"ipVersion": "ipv6", "remoteType": "address",
                    "remoteAddress": "10.0.0.0/8", "policy": "allow"}),
                "spec.ingressRules[0].remoteAddress: \"10.0.0.0/8\" is not an ip6 address",
            ),
            (
                serde_json::json!({"ipVersion": "ipv4", "remoteType": "address",
                    "remoteAddress": "ten", "policy": "allow"}),
                "\"ten\" is not an address or CIDR",
            ),
            (
                serde_json::json!({"ipVersion": "ipv4", "remoteType": "address", "policy": "allow"}),
                "spec.ingressRules[0].remoteAddress: required",
            ),
            (
                serde_json::json!({"ipVersion": "ipv4", "remoteType": "securityGroup", "policy": "allow"}),
                "spec.ingressRules[0].remoteSecurityGroup: required",
            ),
            (
                serde_json::json!({"ipVersion": "ipv4", "remoteType": "securityGroup",
                    "remoteSecurityGroup": "Not_A_Name", "policy": "allow"}),
                "remoteSecurityGroup",
            ),
            (
                serde_json::json!({"ipVersion": "ipv4", "protocol": "tcp", "remoteType": "address",
                    "remoteAddress": "10.0.0.1", "portRangeMin": 90, "portRangeMax": 80, "policy": "allow"}),
                "port range 90-80",
            ),
            (
                serde_json::json!({"ipVersion": "ipv4", "protocol": "tcp", "remoteType": "address",
                    "remoteAddress": "10.0.0.1", "portRangeMax": 80, "policy": "allow"}),
                "portRangeMax: set portRangeMin too",
            ),
            (
                serde_json::json!({"ipVersion": "ipv4", "priority": 0, "remoteType": "address",
                    "remoteAddress": "10.0.0.1", "policy": "allow"}),
                "priority: 0 is not between 1 and 16384",
            ),
        ];
        for (json, want) in cases {
            let err = rule_acl("g", Direction::Ingress, 0, &rule(json.clone())).unwrap_err();
            assert!(err.contains(want), "{json}: {err:?} lacks {want:?}");
        }
        // Every bad rule is reported, each with its own index and direction.
        let bad = rule(
            serde_json::json!({"ipVersion": "ipv4", "remoteType": "address",
            "remoteAddress": "10.0.0.0/8", "policy": "pass"}),
        );
        let good = rule(
            serde_json::json!({"ipVersion": "ipv4", "remoteType": "address",
            "remoteAddress": "10.0.0.0/8", "policy": "allow"}),
        );
        let problems =
            plan_acls("g", &spec(vec![good.clone(), bad.clone()], vec![bad])).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.ingressRules[1].policy"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("spec.egressRules[0].policy"),
            "{problems:?}"
        );
    }

    #[test]
    fn same_group_traffic_and_duplicates_and_the_default_deny() {
        let allow = rule(serde_json::json!({"ipVersion": "ipv4", "protocol": "tcp",
            "remoteType": "address", "remoteAddress": "10.0.0.0/8", "portRangeMin": 22,
            "policy": "allow"}));
        let mut s = spec(vec![allow.clone(), allow], Vec::new());
        assert_eq!(
            plan_acls("a-b", &s).unwrap().len(),
            1,
            "identical rules, one ACL"
        );
        s.allow_same_group_traffic = true;
        let acls = plan_acls("a-b", &s).unwrap();
        let same: Vec<&str> = acls
            .iter()
            .filter(|a| a.priority == SAME_GROUP_PRIORITY)
            .map(|a| a.match_.as_str())
            .collect();
        assert_eq!(
            same,
            [
                "inport == @ovn.sg.a.b && ip4.dst == $ovn.sg.a.b.associated.v4",
                "inport == @ovn.sg.a.b && ip6.dst == $ovn.sg.a.b.associated.v6",
                "outport == @ovn.sg.a.b && ip4.src == $ovn.sg.a.b.associated.v4",
                "outport == @ovn.sg.a.b && ip6.src == $ovn.sg.a.b.associated.v6",
            ]
        );
        let deny = deny_all_acls();
        assert!(deny.iter().any(|a| a.action == "drop"
            && a.direction == "to-lport"
            && a.match_ == "outport == @ovn.sg.kubeovn_deny_all && ip"));
        assert!(deny.iter().any(|a| a.action == "allow"
            && a.direction == "from-lport"
            && a.match_.contains("udp.src == 68 && udp.dst == 67")
            && a.priority == INFRA_PRIORITY));
    }

    #[test]
    fn digests_follow_the_rules() {
        let a = rule(
            serde_json::json!({"ipVersion": "ipv4", "remoteType": "address",
            "remoteAddress": "10.0.0.0/8", "policy": "allow"}),
        );
        let mut b = a.clone();
        b.policy = SgPolicy::Drop;
        assert_eq!(
            rules_digest(std::slice::from_ref(&a)),
            rules_digest(std::slice::from_ref(&a))
        );
        assert_ne!(rules_digest(&[a]), rules_digest(&[b]));
        assert_eq!(rules_digest(&[]).len(), 64);
    }

    #[test]
    fn group_ids_round_trip() {
        let groups = vec!["a".to_owned(), "b-c".to_owned()];
        let ids = BTreeMap::from([(EXTERNAL_ID_SECURITY_GROUPS.to_owned(), groups_id(&groups))]);
        assert_eq!(groups_of_port(&ids), groups);
        assert!(groups_of_port(&BTreeMap::new()).is_empty());
    }
}
