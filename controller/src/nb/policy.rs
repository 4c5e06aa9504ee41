//! MultiNetworkPolicy in NB (DESIGN §7): a policy is the `Port_Group`
//! [`crds::naming::policy_port_group`] holding the ports of the attachments it selects, its
//! ACLs, and per rule with pod peers two `Address_Set`s (v4, v6) of the peers' addresses on the
//! policy's networks. The ACLs name the port group and the address sets, never a port: their
//! number depends on the rules alone, pods coming and going change only `Port_Group.ports` and
//! the address sets.
//!
//! NetworkPolicy semantics in one OVN ACL stage: every policy that restricts a direction drops
//! all IP of its members in that direction at [`POLICY_DENY_PRIORITY`], and allows what each
//! rule names one priority above ([`POLICY_ALLOW_PRIORITY`], `allow-related`, so replies pass):
//! a packet passes when any policy selecting the port allows it, as the union of Kubernetes'
//! policies. DHCP and neighbour discovery stay allowed ([`POLICY_INFRA_PRIORITY`]).
//!
//! The band sits below the security groups' (2003 and up, see [`super::security_group`]) and
//! above a private Subnet's drop (1000): on a port that is in a security group the groups
//! decide, as upstream Kube-OVN orders its SecurityGroup and NetworkPolicy ACLs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crds::MultiNetworkPolicySpec;
use crds::naming::{EXTERNAL_ID_POLICY, policy_address_set, policy_port_group};
use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{AddressSet, PortGroup};
use ovn_api::txn::Txn;
use ovn_api::value::{Atom, Datum, Uuid};

use super::security_group::{AclHolder, AclSpec, Direction, insert_acls, sync_acls};
use super::{Nb, NbError, db, is_ours, owned_ids};

/// Priority of a policy's default drop in a direction it restricts.
pub const POLICY_DENY_PRIORITY: i64 = 2000;
/// Priority of the allows of a policy's rules.
pub const POLICY_ALLOW_PRIORITY: i64 = 2001;
/// Priority of the DHCP and ND allows of a policy's members.
pub const POLICY_INFRA_PRIORITY: i64 = 2002;

/// What a policy is in NB, before it meets the replica.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PolicyPlan {
    /// The port group's ACLs.
    pub acls: Vec<AclSpec>,
    /// The address sets of the rules' pod peers: name → addresses.
    pub sets: BTreeMap<String, Vec<String>>,
    /// What in the spec cannot be enforced, each naming its field; the part it concerns
    /// allows nothing (a policy is never opened by what it cannot say).
    pub problems: Vec<String>,
}

/// One rule as both directions share it: its peers and ports.
struct Rule<'a> {
    peers: Option<&'a [NetworkPolicyPeer]>,
    ports: Option<&'a [NetworkPolicyPort]>,
}

fn field(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "spec.ingress",
        Direction::Egress => "spec.egress",
    }
}

/// The match of one `ports` entry, or why it cannot be one.
fn port_match(at: &str, p: &NetworkPolicyPort) -> Result<String, String> {
    let l4 = match p.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => "tcp",
        "UDP" => "udp",
        "SCTP" => "sctp",
        other => return Err(format!("{at}.protocol: {other:?} is not TCP, UDP or SCTP")),
    };
    match (&p.port, p.end_port) {
        (None, None) => Ok(l4.to_owned()),
        (None, Some(_)) => Err(format!("{at}.endPort: needs port (the first of the range)")),
        (Some(IntOrString::String(name)), _) => Err(format!(
            "{at}.port: named port {name:?} is not supported on secondary networks; give the number"
        )),
        (Some(IntOrString::Int(lo)), end) => {
            let lo = *lo;
            if !(1..=65535).contains(&lo) {
                return Err(format!("{at}.port: {lo} is not a port 1..65535"));
            }
            match end {
                None => Ok(format!("{l4}.dst == {lo}")),
                Some(hi) if hi == lo => Ok(format!("{l4}.dst == {lo}")),
                Some(hi) if hi > lo && hi <= 65535 => {
                    Ok(format!("{l4}.dst >= {lo} && {l4}.dst <= {hi}"))
                }
                Some(hi) => Err(format!(
                    "{at}.endPort: {hi} is not a port between port ({lo}) and 65535"
                )),
            }
        }
    }
}

/// Whether a peer selects pods (rather than naming addresses).
fn is_pod_peer(p: &NetworkPolicyPeer) -> bool {
    p.pod_selector.is_some() || p.namespace_selector.is_some()
}

/// The match of an `ipBlock` peer for one family: `None` when the block is of the other
/// family, `Some(None)` when it matches every address of the family.
fn ip_block_match(
    at: &str,
    block: &k8s_openapi::api::networking::v1::IPBlock,
    v6: bool,
    remote: &str,
) -> Result<Option<Option<String>>, String> {
    let parse = |what: &str, s: &str| -> Result<ipnet::IpNet, String> {
        s.trim()
            .parse::<ipnet::IpNet>()
            .or_else(|_| s.trim().parse::<IpAddr>().map(ipnet::IpNet::from))
            .map(|n| n.trunc())
            .map_err(|_| format!("{at}.{what}: {s:?} is not a CIDR"))
    };
    let net = parse("ipBlock.cidr", &block.cidr)?;
    let mut except = Vec::new();
    for (i, e) in block.except.iter().flatten().enumerate() {
        let x = parse(&format!("ipBlock.except[{i}]"), e)?;
        if !net.contains(&x) {
            return Err(format!(
                "{at}.ipBlock.except[{i}]: {e:?} is not inside cidr {}",
                block.cidr
            ));
        }
        except.push(x);
    }
    if matches!(net, ipnet::IpNet::V6(_)) != v6 {
        return Ok(None);
    }
    let show = |n: &ipnet::IpNet| {
        if n.prefix_len() == n.max_prefix_len() {
            n.addr().to_string()
        } else {
            n.to_string()
        }
    };
    let base = (net.prefix_len() != 0).then(|| format!("{remote} == {}", show(&net)));
    let excl = (!except.is_empty()).then(|| {
        let list: Vec<String> = except.iter().map(show).collect();
        format!("{remote} != {{{}}}", list.join(", "))
    });
    Ok(Some(match (base, excl) {
        (None, None) => None,
        (Some(b), None) => Some(b),
        (None, Some(e)) => Some(e),
        (Some(b), Some(e)) => Some(format!("{b} && {e}")),
    }))
}

/// `a || b || ...`, parenthesised; an alternative with `&&` gets its own parentheses (OVN's
/// grammar refuses `&&` and `||` mixed without them, and northd drops such an ACL silently).
fn any_of(alternatives: &[String]) -> String {
    if let [one] = alternatives {
        return one.clone();
    }
    let wrapped: Vec<String> = alternatives
        .iter()
        .map(|a| {
            if a.contains("&&") {
                format!("({a})")
            } else {
                a.clone()
            }
        })
        .collect();
    format!("({})", wrapped.join(" || "))
}

/// The default drop and the DHCP/ND allows of a direction the policy restricts.
fn restrict(pg: &str, d: Direction) -> [AclSpec; 2] {
    let dhcp = match d {
        Direction::Egress => {
            "(ip4 && udp.src == 68 && udp.dst == 67) || (ip6 && udp.src == 546 && udp.dst == 547)"
        }
        Direction::Ingress => {
            "(ip4 && udp.src == 67 && udp.dst == 68) || (ip6 && udp.src == 547 && udp.dst == 546)"
        }
    };
    [
        AclSpec {
            direction: d.ovn(),
            priority: POLICY_DENY_PRIORITY,
            match_: format!("{} == @{pg} && ip", d.port()),
            action: "drop",
            remote_group: None,
        },
        // `allow-related`, not `allow`: a stateful ACL puts the switch's traffic through
        // conntrack, so the replies of the member's own connections pass its drop even when no
        // rule allows anything (a deny-all ingress policy must not cut the pod's egress).
        AclSpec {
            direction: d.ovn(),
            priority: POLICY_INFRA_PRIORITY,
            match_: format!("{} == @{pg} && ({dhcp} || nd || nd_rs || nd_ra)", d.port()),
            action: "allow-related",
            remote_group: None,
        },
    ]
}

/// Plans policy `namespace/name`: its ACLs and address sets. `pod_peers` gives the addresses,
/// on the policy's networks, of the pods a peer with a pod or namespace selector selects (or
/// why the peer cannot be resolved, e.g. an invalid selector).
pub fn plan_policy(
    namespace: &str,
    name: &str,
    spec: &MultiNetworkPolicySpec,
    pod_peers: &mut dyn FnMut(&NetworkPolicyPeer) -> Result<Vec<IpAddr>, String>,
) -> PolicyPlan {
    let pg = policy_port_group(namespace, name);
    let mut plan = PolicyPlan::default();
    let mut acls = BTreeSet::new();
    for t in spec.unknown_policy_types() {
        plan.problems
            .push(format!("spec.policyTypes: {t:?} is not Ingress or Egress"));
    }
    let (ingress, egress) = spec.directions();
    let ingress_rules: Vec<Rule<'_>> = spec
        .ingress
        .iter()
        .flatten()
        .map(|r| Rule {
            peers: r.from.as_deref(),
            ports: r.ports.as_deref(),
        })
        .collect();
    let egress_rules: Vec<Rule<'_>> = spec
        .egress
        .iter()
        .flatten()
        .map(|r| Rule {
            peers: r.to.as_deref(),
            ports: r.ports.as_deref(),
        })
        .collect();
    for (d, on, rules) in [
        (Direction::Ingress, ingress, ingress_rules),
        (Direction::Egress, egress, egress_rules),
    ] {
        if !on {
            continue;
        }
        acls.extend(restrict(&pg, d));
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{}[{i}]", field(d));
            plan_rule(
                (namespace, name, &pg),
                d,
                (i, &at),
                rule,
                pod_peers,
                &mut plan,
                &mut acls,
            );
        }
    }
    plan.acls = acls.into_iter().collect();
    plan
}

fn plan_rule(
    (namespace, name, pg): (&str, &str, &str),
    d: Direction,
    (i, at): (usize, &str),
    rule: &Rule<'_>,
    pod_peers: &mut dyn FnMut(&NetworkPolicyPeer) -> Result<Vec<IpAddr>, String>,
    plan: &mut PolicyPlan,
    acls: &mut BTreeSet<AclSpec>,
) {
    let peer_field = match d {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    // Ports: every entry that can be matched; a rule whose entries all fail allows nothing.
    let mut port_alternatives = Vec::new();
    let ports = rule.ports.unwrap_or_default();
    for (j, p) in ports.iter().enumerate() {
        match port_match(&format!("{at}.ports[{j}]"), p) {
            Ok(m) => port_alternatives.push(m),
            Err(e) => plan.problems.push(e),
        }
    }
    if !ports.is_empty() && port_alternatives.is_empty() {
        return;
    }
    let peers = rule.peers.unwrap_or_default();
    // Pod peers: one address set pair for the rule.
    let mut pod_addresses: Option<Vec<IpAddr>> = None;
    let mut blocks = Vec::new();
    for (j, peer) in peers.iter().enumerate() {
        let pat = format!("{at}.{peer_field}[{j}]");
        match (is_pod_peer(peer), &peer.ip_block) {
            (true, Some(_)) => plan.problems.push(format!(
                "{pat}: ipBlock cannot be combined with podSelector or namespaceSelector"
            )),
            (false, None) => plan.problems.push(format!(
                "{pat}: needs podSelector, namespaceSelector or ipBlock"
            )),
            (true, None) => match pod_peers(peer) {
                Ok(ips) => pod_addresses.get_or_insert_with(Vec::new).extend(ips),
                Err(e) => plan.problems.push(format!("{pat}: {e}")),
            },
            (false, Some(block)) => blocks.push((pat, block)),
        }
    }
    if !peers.is_empty() && pod_addresses.is_none() && blocks.is_empty() {
        return;
    }
    let ingress = d == Direction::Ingress;
    let mut checked_blocks = false;
    for v6 in [false, true] {
        let ip = if v6 { "ip6" } else { "ip4" };
        let remote = format!("{ip}.{}", d.remote());
        let mut alternatives = Vec::new();
        let mut any = peers.is_empty();
        if let Some(addresses) = &pod_addresses {
            let set = policy_address_set(namespace, name, ingress, i, v6);
            let mut of_family: Vec<String> = addresses
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .map(ToString::to_string)
                .collect();
            of_family.sort();
            of_family.dedup();
            alternatives.push(format!("{remote} == ${set}"));
            plan.sets.insert(set, of_family);
        }
        for (pat, block) in &blocks {
            match ip_block_match(pat, block, v6, &remote) {
                Ok(None) => {}
                Ok(Some(None)) => any = true,
                Ok(Some(Some(m))) => alternatives.push(m),
                // Reported once, not per family.
                Err(e) if !checked_blocks => plan.problems.push(e),
                Err(_) => {}
            }
        }
        checked_blocks = true;
        if !any && alternatives.is_empty() {
            continue;
        }
        let mut clauses = vec![format!("{} == @{pg}", d.port()), ip.to_owned()];
        if !any {
            clauses.push(any_of(&alternatives));
        }
        if !port_alternatives.is_empty() {
            clauses.push(any_of(&port_alternatives));
        }
        acls.insert(AclSpec {
            direction: d.ovn(),
            priority: POLICY_ALLOW_PRIORITY,
            match_: clauses.join(" && "),
            action: "allow-related",
            remote_group: None,
        });
    }
}

/// Our port group `name` of policy `key`, or an error when the name is someone else's.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
fn our_port_group(r: &Replica, name: &str, key: &str) -> Result<Option<PortGroup>, NbError> {
    match r
        .one_by_name::<PortGroup>(name)
        .map_err(db(format!("reading port group {name}")))?
    {
        Some(pg)
            if !is_ours(&pg.external_ids)
                || pg.external_ids.get(EXTERNAL_ID_POLICY).map(String::as_str) != Some(key) =>
        {
            Err(NbError::NotOurs {
                table: "Port_Group",
                name: name.to_owned(),
            })
        }
        other => Ok(other),
    }
}

/// Adds to `tx` what makes policy `key` (`<ns>/<name>`) in NB exactly: port group `pg_name`
/// with `ports` and the plan's ACLs, and the plan's address sets (others of the policy go).
#[allow(clippy::result_large_err)] // The NbError every function of nb returns.
pub fn plan_policy_rows(
    r: &Replica,
    tx: &mut Txn,
    key: &str,
    pg_name: &str,
    ports: &BTreeSet<Uuid>,
    plan: &PolicyPlan,
) -> Result<(), NbError> {
    let owner = (EXTERNAL_ID_POLICY, key);
    let existing = our_port_group(r, pg_name, key)?;
    let have: Vec<AddressSet> = r
        .by_external_id::<AddressSet>(EXTERNAL_ID_POLICY, key)
        .map_err(db(format!("reading address sets of policy {key}")))?
        .into_iter()
        .filter(|s| is_ours(&s.external_ids))
        .collect();
    for name in plan.sets.keys() {
        if !have.iter().any(|s| &s.name == name) && r.uuid_by_name::<AddressSet>(name).is_some() {
            return Err(NbError::NotOurs {
                table: "Address_Set",
                name: name.clone(),
            });
        }
    }
    // Every check is done: operations from here on.
    for set in &have {
        match plan.sets.get(&set.name) {
            None => {
                tx.delete::<AddressSet>(set.uuid);
            }
            Some(addresses) => {
                // The differences only: a member joining writes its address, not the set.
                let current: BTreeSet<&String> = set.addresses.iter().collect();
                let wanted: BTreeSet<&String> = addresses.iter().collect();
                let add: Vec<String> = wanted.difference(&current).map(|a| (*a).clone()).collect();
                let remove: Vec<String> =
                    current.difference(&wanted).map(|a| (*a).clone()).collect();
                let mut changes = Vec::new();
                if !add.is_empty() {
                    changes.push(AddressSet::ADDRESSES.insert(add));
                }
                if !remove.is_empty() {
                    changes.push(AddressSet::ADDRESSES.delete(remove));
                }
                if !changes.is_empty() {
                    tx.mutate::<AddressSet>(set.uuid, changes);
                }
            }
        }
    }
    for (name, addresses) in &plan.sets {
        if !have.iter().any(|s| &s.name == name) {
            tx.insert(&AddressSet {
                name: name.clone(),
                addresses: addresses.clone(),
                external_ids: owned_ids(&[owner]),
                ..Default::default()
            });
        }
    }
    let port_atoms = || Datum::set(ports.iter().map(|u| Atom::Uuid(*u)));
    match existing {
        Some(pg) => {
            let current: BTreeSet<Uuid> = pg.ports.iter().copied().collect();
            let join: Vec<Atom> = ports.difference(&current).map(|u| Atom::Uuid(*u)).collect();
            let leave: Vec<Atom> = current.difference(ports).map(|u| Atom::Uuid(*u)).collect();
            let mut changes = Vec::new();
            if !join.is_empty() {
                changes.push(PortGroup::PORTS.insert(Datum::set(join)));
            }
            if !leave.is_empty() {
                changes.push(PortGroup::PORTS.delete(Datum::set(leave)));
            }
            if !changes.is_empty() {
                tx.mutate::<PortGroup>(pg.uuid, changes);
            }
            sync_acls(
                r,
                tx,
                AclHolder::PortGroup(pg.uuid),
                &pg.acls,
                &plan.acls,
                owner,
            )?;
        }
        None => {
            let rows = insert_acls(tx, &plan.acls, owner);
            tx.insert_with(
                &PortGroup {
                    name: pg_name.to_owned(),
                    external_ids: owned_ids(&[owner]),
                    ..Default::default()
                },
                [
                    PortGroup::ACLS.set(Datum::set(rows)),
                    PortGroup::PORTS.set(port_atoms()),
                ],
            );
        }
    }
    Ok(())
}

/// The UUIDs of those of the policy port groups `names` that exist and are ours.
pub fn existing_groups(r: &Replica, names: &[String]) -> Vec<Uuid> {
    names
        .iter()
        .filter_map(|n| r.one_by_name::<PortGroup>(n).ok().flatten())
        .filter(|pg| is_ours(&pg.external_ids) && pg.external_ids.contains_key(EXTERNAL_ID_POLICY))
        .map(|pg| pg.uuid)
        .collect()
}

/// Writes policy `key` (see [`plan_policy_rows`]) in one transaction.
pub async fn ensure_policy(
    nb: &Nb,
    key: &str,
    pg_name: &str,
    ports: &BTreeSet<Uuid>,
    plan: &PolicyPlan,
) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_policy_rows(&nb.replica(), &mut tx, key, pg_name, ports, plan)?;
    nb.commit(tx, format!("writing MultiNetworkPolicy {key}"))
        .await
}

/// Deletes every row of policy `key` (its port group, with its ACLs, and its address sets) in
/// one transaction; returns whether anything was there.
pub async fn delete_policy(nb: &Nb, key: &str) -> Result<bool, NbError> {
    let mut tx = Txn::new();
    let mut found = false;
    {
        let r = nb.replica();
        for pg in r
            .by_external_id::<PortGroup>(EXTERNAL_ID_POLICY, key)
            .map_err(db(format!("reading port groups of policy {key}")))?
            .into_iter()
            .filter(|p| is_ours(&p.external_ids))
        {
            tx.delete::<PortGroup>(pg.uuid);
            found = true;
        }
        for set in r
            .by_external_id::<AddressSet>(EXTERNAL_ID_POLICY, key)
            .map_err(db(format!("reading address sets of policy {key}")))?
            .into_iter()
            .filter(|s| is_ours(&s.external_ids))
        {
            tx.delete::<AddressSet>(set.uuid);
            found = true;
        }
    }
    nb.commit(tx, format!("deleting MultiNetworkPolicy {key}"))
        .await?;
    Ok(found)
}

/// The policies (`<ns>/<name>`) that own rows in NB.
pub fn owned_policies(nb: &Nb) -> BTreeSet<String> {
    super::security_group::owners(nb, EXTERNAL_ID_POLICY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> MultiNetworkPolicySpec {
        serde_json::from_value(json).unwrap()
    }

    fn plan(json: serde_json::Value) -> PolicyPlan {
        let mut peers = |p: &NetworkPolicyPeer| -> Result<Vec<IpAddr>, String> {
            if p.namespace_selector.is_some() {
                return Err("bad selector".into());
            }
            Ok(vec![
                "10.0.0.7".parse().unwrap(),
                "fd00::7".parse().unwrap(),
                "10.0.0.7".parse().unwrap(),
            ])
        };
        plan_policy("app", "web-in", &spec(json), &mut peers)
    }

    fn matches(p: &PolicyPlan, priority: i64) -> Vec<&str> {
        for acl in &p.acls {
            // northd drops an ACL it cannot parse without a word: every match must pass the
            // checker of OVN's grammar.
            crds::acl_match::check(&acl.match_).unwrap_or_else(|e| panic!("{:?}: {e}", acl.match_));
        }
        p.acls
            .iter()
            .filter(|a| a.priority == priority)
            .map(|a| a.match_.as_str())
            .collect()
    }

    #[test]
    fn deny_all_is_a_drop_and_the_infra_allows_per_direction_it_restricts() {
        let p = plan(serde_json::json!({"podSelector": {}}));
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            matches(&p, POLICY_DENY_PRIORITY),
            ["outport == @ovn.mnp.app.web_in && ip"]
        );
        assert_eq!(p.acls.len(), 2, "{:?}", p.acls);
        let p = plan(serde_json::json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}));
        assert_eq!(p.acls.len(), 4);
        assert!(
            p.acls
                .iter()
                .any(|a| a.direction == "from-lport" && a.action == "drop")
        );
        // An egress-only policy leaves ingress alone.
        let p = plan(
            serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{}]}),
        );
        assert!(p.acls.iter().all(|a| a.direction == "from-lport"));
        assert_eq!(
            matches(&p, POLICY_ALLOW_PRIORITY),
            [
                "inport == @ovn.mnp.app.web_in && ip4",
                "inport == @ovn.mnp.app.web_in && ip6"
            ]
        );
        const { assert!(POLICY_INFRA_PRIORITY < super::super::security_group::DENY_PRIORITY) };
    }

    #[test]
    fn rules_become_one_allow_per_family_with_peers_and_ports() {
        let p = plan(
            serde_json::json!({"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"role": "client"}}},
                         {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24", "192.168.2.9/32"]}},
                         {"ipBlock": {"cidr": "172.16.0.5"}}],
                "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 5000, "endPort": 5010},
                          {"protocol": "SCTP"}]}]}),
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            matches(&p, POLICY_ALLOW_PRIORITY),
            [
                "outport == @ovn.mnp.app.web_in && ip4 && (ip4.src == $ovn.mnp.app.web_in.ingress.0.v4 || (ip4.src == 192.168.0.0/16 && ip4.src != {192.168.1.0/24, 192.168.2.9}) || ip4.src == 172.16.0.5) && (tcp.dst == 80 || (udp.dst >= 5000 && udp.dst <= 5010) || sctp)",
                "outport == @ovn.mnp.app.web_in && ip6 && ip6.src == $ovn.mnp.app.web_in.ingress.0.v6 && (tcp.dst == 80 || (udp.dst >= 5000 && udp.dst <= 5010) || sctp)",
            ]
        );
        assert_eq!(
            p.sets,
            BTreeMap::from([
                (
                    "ovn.mnp.app.web_in.ingress.0.v4".to_owned(),
                    vec!["10.0.0.7".to_owned()]
                ),
                (
                    "ovn.mnp.app.web_in.ingress.0.v6".to_owned(),
                    vec!["fd00::7".to_owned()]
                ),
            ])
        );
        // An ipBlock of all addresses of a family needs no address clause.
        let p = plan(serde_json::json!({"podSelector": {},
            "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}));
        assert_eq!(
            matches(&p, POLICY_ALLOW_PRIORITY),
            ["outport == @ovn.mnp.app.web_in && ip4"]
        );
    }

    #[test]
    fn what_cannot_be_enforced_is_reported_and_allows_nothing() {
        let p = plan(serde_json::json!({"podSelector": {},
        "policyTypes": ["Ingress", "Sideways"],
        "ingress": [
            {"ports": [{"port": "http"}]},
            {"from": [{"namespaceSelector": {}}]},
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}]},
            {"from": [{"ipBlock": {"cidr": "ten"}}]},
            {"from": [{"podSelector": {}, "ipBlock": {"cidr": "10.0.0.0/8"}}]},
            {"from": [{}]},
            {"ports": [{"protocol": "ICMP"}, {"port": 80, "endPort": 70}, {"endPort": 9}]},
            {"ports": [{"port": 22}, {"port": 70000}]},
        ]}));
        let want = [
            "spec.policyTypes: \"Sideways\"",
            "spec.ingress[0].ports[0].port: named port \"http\"",
            "spec.ingress[1].from[0]: bad selector",
            "spec.ingress[2].from[0].ipBlock.except[0]: \"11.0.0.0/8\" is not inside",
            "spec.ingress[3].from[0].ipBlock.cidr: \"ten\" is not a CIDR",
            "spec.ingress[4].from[0]: ipBlock cannot be combined",
            "spec.ingress[5].from[0]: needs podSelector",
            "spec.ingress[6].ports[0].protocol: \"ICMP\"",
            "spec.ingress[6].ports[1].endPort: 70",
            "spec.ingress[6].ports[2].endPort: needs port",
            "spec.ingress[7].ports[1].port: 70000",
        ];
        assert_eq!(p.problems.len(), want.len(), "{:#?}", p.problems);
        for (got, want) in p.problems.iter().zip(want) {
            assert!(got.starts_with(want), "{got:?} is not {want:?}");
        }
        // Only rule 7's port 22 is left to allow; everything else stays dropped.
        assert_eq!(
            matches(&p, POLICY_ALLOW_PRIORITY),
            [
                "outport == @ovn.mnp.app.web_in && ip4 && tcp.dst == 22",
                "outport == @ovn.mnp.app.web_in && ip6 && tcp.dst == 22"
            ]
        );
        assert!(p.sets.is_empty());
    }
}
