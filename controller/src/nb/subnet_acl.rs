//! A Subnet's own ACLs, on its logical switch (as upstream Kube-OVN writes them): `spec.acls` as
//! the user wrote them, and the isolation of `private: true` with `allowSubnets`. Every row
//! carries `external_ids:subnet=<subnet>`, so the repair stream puts a deleted one back through
//! the Subnet's reconcile, and the rows go with the switch (ACLs are not roots in NB).
//!
//! Private subnets, upstream's semantics: `to-lport` ACLs drop all IP at
//! [`PRIVATE_DROP_PRIORITY`] and allow (`allow-related`) at [`PRIVATE_ALLOW_PRIORITY`] traffic
//! within the subnet's CIDRs and between them and each `allowSubnets` CIDR of the same family.
//! As upstream, this closes both ways: a member's packet to an address outside those CIDRs is
//! dropped where it leaves the switch towards the router, while replies of connections let in
//! pass by conntrack. Upstream's third allow, from the node (`join`) subnet, has no counterpart:
//! this implementation creates no join subnet (DESIGN §2).
//!
//! Both bands sit below the security groups' (2003 and up): a port in a security group follows
//! its group's rules first, as upstream. The user's `acls` take the priority written.

use std::collections::BTreeSet;

use crds::SubnetSpec;
use crds::subnet::{ACL_ACTIONS, ACL_DIRECTIONS};
use ipnet::IpNet;

use super::security_group::AclSpec;

/// Priority of a private subnet's drop of all IP.
pub const PRIVATE_DROP_PRIORITY: i64 = 1000;
/// Priority of a private subnet's allows (its own CIDRs and `allowSubnets`).
pub const PRIVATE_ALLOW_PRIORITY: i64 = 1001;

fn family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "ip4",
        IpNet::V6(_) => "ip6",
    }
}

/// The ACLs of a private subnet with CIDRs `nets`.
fn private_acls(nets: &[IpNet], allow_subnets: &[IpNet]) -> Vec<AclSpec> {
    let acl = |priority, match_, action| AclSpec {
        direction: "to-lport",
        priority,
        match_,
        action,
        remote_group: None,
    };
    let mut out = vec![acl(PRIVATE_DROP_PRIORITY, "ip".to_owned(), "drop")];
    for net in nets {
        let ip = family(net);
        out.push(acl(
            PRIVATE_ALLOW_PRIORITY,
            format!("{ip}.src == {net} && {ip}.dst == {net}"),
            "allow-related",
        ));
        for allowed in allow_subnets.iter().filter(|a| family(a) == ip) {
            out.push(acl(
                PRIVATE_ALLOW_PRIORITY,
                format!(
                    "({ip}.src == {net} && {ip}.dst == {allowed}) || ({ip}.src == {allowed} && {ip}.dst == {net})"
                ),
                "allow-related",
            ));
        }
    }
    out
}

/// Every ACL a Subnet with CIDRs `nets` and `spec` puts on its switch (identical ones once), or
/// every problem of its `acls` and `allowSubnets` (each naming its field). The match syntax is
/// [`crds::Validate`]'s to check, before the reconcile gets here.
pub fn plan(nets: &[IpNet], spec: &SubnetSpec) -> Result<Vec<AclSpec>, Vec<String>> {
    let mut acls = BTreeSet::new();
    let mut problems = Vec::new();
    if spec.private {
        let mut allowed = Vec::new();
        for (i, cidr) in spec.allow_subnets.iter().enumerate() {
            match cidr.trim().parse::<IpNet>() {
                // OVN refuses a masked value with host bits set.
                Ok(net) => allowed.push(net.trunc()),
                Err(_) => problems.push(format!("spec.allowSubnets[{i}]: {cidr:?} is not a CIDR")),
            }
        }
        let nets: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
        acls.extend(private_acls(&nets, &allowed));
    }
    for (i, a) in spec.acls.iter().enumerate() {
        let direction = ACL_DIRECTIONS.iter().find(|d| **d == a.direction);
        let action = ACL_ACTIONS.iter().find(|d| **d == a.action);
        match (direction, action) {
            (Some(direction), Some(action)) if (0..=32767).contains(&a.priority) => {
                acls.insert(AclSpec {
                    direction,
                    priority: i64::from(a.priority),
                    match_: a.match_.trim().to_owned(),
                    action,
                    remote_group: None,
                });
            }
            _ => problems.push(format!(
                "spec.acls[{i}]: direction {:?}, action {:?} or priority {} is not one OVN takes",
                a.direction, a.action, a.priority
            )),
        }
    }
    if problems.is_empty() {
        Ok(acls.into_iter().collect())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::subnet::Acl;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn matches(acls: &[AclSpec]) -> Vec<(i64, &str, &str)> {
        acls.iter()
            .map(|a| (a.priority, a.match_.as_str(), a.action))
            .collect()
    }

    #[test]
    fn a_private_subnet_admits_itself_and_its_allowed_subnets_of_the_same_family() {
        let spec = SubnetSpec {
            private: true,
            // Host bits cleared; the IPv6 one pairs with the IPv6 CIDR only.
            allow_subnets: vec!["10.110.2.7/24".into(), "fd00:2::/64".into()],
            ..Default::default()
        };
        let acls = plan(&nets(&["10.110.1.0/24", "fd00:1::/64"]), &spec).unwrap();
        assert!(acls.iter().all(|a| a.direction == "to-lport"));
        let mut got = matches(&acls);
        got.sort();
        assert_eq!(
            got,
            [
                (PRIVATE_DROP_PRIORITY, "ip", "drop"),
                (
                    PRIVATE_ALLOW_PRIORITY,
                    "(ip4.src == 10.110.1.0/24 && ip4.dst == 10.110.2.0/24) || (ip4.src == 10.110.2.0/24 && ip4.dst == 10.110.1.0/24)",
                    "allow-related"
                ),
                (
                    PRIVATE_ALLOW_PRIORITY,
                    "(ip6.src == fd00:1::/64 && ip6.dst == fd00:2::/64) || (ip6.src == fd00:2::/64 && ip6.dst == fd00:1::/64)",
                    "allow-related"
                ),
                (
                    PRIVATE_ALLOW_PRIORITY,
                    "ip4.src == 10.110.1.0/24 && ip4.dst == 10.110.1.0/24",
                    "allow-related"
                ),
                (
                    PRIVATE_ALLOW_PRIORITY,
                    "ip6.src == fd00:1::/64 && ip6.dst == fd00:1::/64",
                    "allow-related"
                ),
            ]
        );
        // Below the security groups' band: a group's rules decide first, as upstream.
        const {
            assert!(PRIVATE_ALLOW_PRIORITY < super::super::security_group::DENY_PRIORITY);
        };
    }

    #[test]
    fn allow_subnets_count_only_when_private_and_user_acls_are_kept_as_written() {
        let drop = Acl {
            direction: "to-lport".into(),
            priority: 1010,
            match_: " ip4.src == 10.110.3.0/24 && icmp4 ".into(),
            action: "drop".into(),
        };
        let spec = SubnetSpec {
            private: false,
            allow_subnets: vec!["10.110.2.0/24".into()],
            acls: vec![drop.clone(), drop.clone()],
            ..Default::default()
        };
        let acls = plan(&nets(&["10.110.1.0/24"]), &spec).unwrap();
        assert_eq!(
            acls,
            [AclSpec {
                direction: "to-lport",
                priority: 1010,
                match_: "ip4.src == 10.110.3.0/24 && icmp4".into(),
                action: "drop",
                remote_group: None,
            }],
            "one ACL for identical rules, no private rows"
        );
        assert!(
            plan(&nets(&["10.110.1.0/24"]), &SubnetSpec::default())
                .unwrap()
                .is_empty(),
            "a plain subnet has no ACLs"
        );
    }

    #[test]
    fn values_validation_would_refuse_are_problems_not_rows() {
        let spec = SubnetSpec {
            private: true,
            allow_subnets: vec!["ten".into()],
            acls: vec![Acl {
                direction: "ingress".into(),
                priority: 1,
                match_: "ip".into(),
                action: "drop".into(),
            }],
            ..Default::default()
        };
        let problems = plan(&nets(&["10.0.0.0/24"]), &spec).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.allowSubnets[0]"),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("spec.acls[0]"), "{problems:?}");
    }
}
