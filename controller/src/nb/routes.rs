//! A VPC's static routes and policy routes (`Vpc.spec.staticRoutes`, `spec.policyRoutes`) as
//! `Logical_Router_Static_Route` and `Logical_Router_Policy` rows on its router.
//!
//! The spec is the whole truth for our rows: routes in the spec and not on the router are
//! added, our rows not in the spec are removed, in one transaction; rows without our vendor
//! tag (added by someone else) are left alone, and so are the default routes a VpcNatGateway
//! manages ([`sync_gateway_route`], marked `external_ids:vpc-nat-gw=<gateway>`): the Vpc's
//! spec does not list them, and the two writers never touch each other's rows.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crds::vpc::{PolicyRoute, PolicyRouteAction, RoutePolicy, StaticRoute};
use ipnet::IpNet;
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{LogicalRouter, LogicalRouterPolicy, LogicalRouterStaticRoute};
use ovn_api::txn::Txn;

use super::{Nb, NbError, db, is_ours, owned_ids};

/// One static route as OVN stores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// Destination (or source, for `src-ip`) prefix.
    pub ip_prefix: String,
    /// Next hop address.
    pub nexthop: String,
    /// `dst-ip` or `src-ip`.
    pub policy: String,
    /// Route table (empty: the main table).
    pub route_table: String,
}

/// One policy route as OVN stores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Policy {
    /// Priority, 0..=32767.
    pub priority: i64,
    /// OVN match expression.
    pub match_: String,
    /// `allow`, `drop` or `reroute`.
    pub action: String,
    /// Next hops for `reroute`.
    pub nexthops: Vec<String>,
}

/// Checks and converts a Vpc's routes; an error names the route and what is wrong.
pub fn plan(
    static_routes: &[StaticRoute],
    policy_routes: &[PolicyRoute],
) -> Result<(BTreeSet<Route>, BTreeSet<Policy>), String> {
    let mut routes = BTreeSet::new();
    for (i, r) in static_routes.iter().enumerate() {
        let prefix: IpNet = r
            .cidr
            .parse()
            .map_err(|_| format!("spec.staticRoutes[{i}].cidr {:?} is not a CIDR", r.cidr))?;
        let hop: IpAddr = r.next_hop_ip.parse().map_err(|_| {
            format!(
                "spec.staticRoutes[{i}].nextHopIP {:?} is not an IP",
                r.next_hop_ip
            )
        })?;
        if hop.is_ipv4() != prefix.addr().is_ipv4() {
            return Err(format!(
                "spec.staticRoutes[{i}]: {prefix} and next hop {hop} differ in family"
            ));
        }
        routes.insert(Route {
            ip_prefix: prefix.trunc().to_string(),
            nexthop: hop.to_string(),
            policy: match r.policy {
                Some(RoutePolicy::PolicySrc) => "src-ip".into(),
                _ => "dst-ip".into(),
            },
            route_table: r.route_table.clone().unwrap_or_default(),
        });
    }
    let mut policies = BTreeSet::new();
    for (i, p) in policy_routes.iter().enumerate() {
        if !(0..=32767).contains(&p.priority) {
            return Err(format!(
                "spec.policyRoutes[{i}].priority {} is outside 0..=32767",
                p.priority
            ));
        }
        if p.match_.trim().is_empty() {
            return Err(format!("spec.policyRoutes[{i}].match is empty"));
        }
        let nexthops = match (p.action, &p.next_hop_ip) {
            (PolicyRouteAction::Reroute, Some(hop)) => {
                let hop: IpAddr = hop.parse().map_err(|_| {
                    format!("spec.policyRoutes[{i}].nextHopIP {hop:?} is not an IP")
                })?;
                vec![hop.to_string()]
            }
            (PolicyRouteAction::Reroute, None) => {
                return Err(format!(
                    "spec.policyRoutes[{i}]: nextHopIP is required for reroute"
                ));
            }
            _ => Vec::new(),
        };
        let action = match p.action {
            PolicyRouteAction::Allow => "allow",
            PolicyRouteAction::Drop => "drop",
            PolicyRouteAction::Reroute => "reroute",
        };
        policies.insert(Policy {
            priority: i64::from(p.priority),
            match_: p.match_.clone(),
            action: action.into(),
            nexthops,
        });
    }
    Ok((routes, policies))
}

/// Adds to `tx` what makes the router of `vpc` carry exactly `routes` and `policies` among our
/// rows. Every check comes before the first operation: on an error `tx` is unchanged.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_routes(
    r: &Replica,
    tx: &mut Txn,
    vpc: &str,
    routes: &BTreeSet<Route>,
    policies: &BTreeSet<Policy>,
) -> Result<(), NbError> {
    let (lr, have_routes, have_policies) = {
        let read = |what: &str| db(format!("reading {what} of router {vpc}"));
        let Some(lr) = r
            .one_by_name::<LogicalRouter>(vpc)
            .map_err(read("router"))?
        else {
            return Err(NbError::Db {
                what: format!("routes of Vpc {vpc}"),
                source: ovn_api::Error::Value(format!("logical router {vpc} does not exist yet")),
            });
        };
        let ours = |ids: &std::collections::BTreeMap<String, String>| {
            is_ours(ids) && !ids.contains_key(EXTERNAL_ID_NAT_GATEWAY)
        };
        let mut have_routes = Vec::new();
        for uuid in &lr.static_routes {
            let row = r
                .get::<LogicalRouterStaticRoute>(*uuid)
                .map_err(read("static routes"))?;
            have_routes.extend(row.filter(|row| ours(&row.external_ids)));
        }
        let mut have_policies = Vec::new();
        for uuid in &lr.policies {
            let row = r
                .get::<LogicalRouterPolicy>(*uuid)
                .map_err(read("policies"))?;
            have_policies.extend(row.filter(|row| ours(&row.external_ids)));
        }
        (lr, have_routes, have_policies)
    };
    let as_route = |row: &LogicalRouterStaticRoute| Route {
        ip_prefix: row.ip_prefix.clone(),
        nexthop: row.nexthop.clone(),
        policy: row.policy.clone().unwrap_or_else(|| "dst-ip".into()),
        route_table: row.route_table.clone(),
    };
    let present: BTreeSet<Route> = have_routes.iter().map(as_route).collect();
    for row in &have_routes {
        if !routes.contains(&as_route(row)) {
            tx.mutate::<LogicalRouter>(lr.uuid, [LogicalRouter::STATIC_ROUTES.delete(row.uuid)]);
        }
    }
    for route in routes.iter().filter(|r| !present.contains(*r)) {
        let row = tx.insert(&LogicalRouterStaticRoute {
            ip_prefix: route.ip_prefix.clone(),
            nexthop: route.nexthop.clone(),
            policy: Some(route.policy.clone()),
            route_table: route.route_table.clone(),
            external_ids: owned_ids(&[("vpc", vpc)]),
            ..Default::default()
        });
        tx.mutate::<LogicalRouter>(lr.uuid, [LogicalRouter::STATIC_ROUTES.insert(row)]);
    }
    let as_policy = |row: &LogicalRouterPolicy| Policy {
        priority: row.priority,
        match_: row.match_.clone(),
        action: row.action.clone(),
        nexthops: row.nexthops.clone(),
    };
    let present: BTreeSet<Policy> = have_policies.iter().map(as_policy).collect();
    for row in &have_policies {
        if !policies.contains(&as_policy(row)) {
            tx.mutate::<LogicalRouter>(lr.uuid, [LogicalRouter::POLICIES.delete(row.uuid)]);
        }
    }
    for policy in policies.iter().filter(|p| !present.contains(*p)) {
        let row = tx.insert(&LogicalRouterPolicy {
            priority: policy.priority,
            match_: policy.match_.clone(),
            action: policy.action.clone(),
            nexthops: policy.nexthops.clone(),
            external_ids: owned_ids(&[("vpc", vpc)]),
            ..Default::default()
        });
        tx.mutate::<LogicalRouter>(lr.uuid, [LogicalRouter::POLICIES.insert(row)]);
    }
    Ok(())
}

/// The external id that marks a static route as a VpcNatGateway's managed default route; its
/// value is the gateway's name.
pub const EXTERNAL_ID_NAT_GATEWAY: &str = "vpc-nat-gw";

/// The IPv4 default route's prefix.
pub const DEFAULT_ROUTE_V4: &str = "0.0.0.0/0";

/// Whether the router of `vpc` has an IPv4 default route in its main table that is not a
/// gateway's managed one (a Vpc spec route, or a row someone else wrote): such a route wins
/// over a gateway's.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn has_own_default_route(nb: &Nb, vpc: &str) -> Result<bool, NbError> {
    let r = nb.replica();
    let read = |what: &str| db(format!("reading {what} of router {vpc}"));
    let Some(lr) = r
        .one_by_name::<LogicalRouter>(vpc)
        .map_err(read("router"))?
    else {
        return Ok(false);
    };
    for uuid in &lr.static_routes {
        let Some(row) = r
            .get::<LogicalRouterStaticRoute>(*uuid)
            .map_err(read("static routes"))?
        else {
            continue;
        };
        if row.ip_prefix == DEFAULT_ROUTE_V4
            && row.route_table.is_empty()
            && row.policy.as_deref().unwrap_or("dst-ip") == "dst-ip"
            && !row.external_ids.contains_key(EXTERNAL_ID_NAT_GATEWAY)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Makes gateway `gateway`'s managed default routes exactly `want` (`Some((vpc, next hop))`: one
/// `0.0.0.0/0` route via the next hop on the router of `vpc`; `None`: none anywhere), in one
/// transaction. Rows of this gateway on another router (its `spec.vpc` changed) go.
pub async fn sync_gateway_route(
    nb: &Nb,
    gateway: &str,
    want: Option<(&str, &str)>,
) -> Result<(), NbError> {
    let mut tx = Txn::new();
    let mut changed = false;
    {
        let r = nb.replica();
        let read = |what: &str| db(format!("reading {what} of VpcNatGateway {gateway}"));
        let have = r
            .by_external_id::<LogicalRouterStaticRoute>(EXTERNAL_ID_NAT_GATEWAY, gateway)
            .map_err(read("managed routes"))?;
        let target = match want {
            Some((vpc, _)) => r
                .one_by_name::<LogicalRouter>(vpc)
                .map_err(read("router"))?
                .map(|lr| lr.uuid),
            None => None,
        };
        let mut present = false;
        for row in have.iter().filter(|row| is_ours(&row.external_ids)) {
            let routers = r
                .referrers::<LogicalRouter>("static_routes", &ovn_api::value::Atom::from(row.uuid));
            let wanted = match (want, target) {
                (Some((_, hop)), Some(lr)) => {
                    routers.contains(&lr) && row.nexthop == hop && !present
                }
                _ => false,
            };
            if wanted {
                present = true;
                continue;
            }
            for router in routers {
                tx.mutate::<LogicalRouter>(router, [LogicalRouter::STATIC_ROUTES.delete(row.uuid)]);
                changed = true;
            }
        }
        if let (Some((vpc, hop)), Some(lr), false) = (want, target, present) {
            let row = tx.insert(&LogicalRouterStaticRoute {
                ip_prefix: DEFAULT_ROUTE_V4.to_owned(),
                nexthop: hop.to_owned(),
                policy: Some("dst-ip".into()),
                external_ids: owned_ids(&[("vpc", vpc), (EXTERNAL_ID_NAT_GATEWAY, gateway)]),
                ..Default::default()
            });
            tx.mutate::<LogicalRouter>(lr, [LogicalRouter::STATIC_ROUTES.insert(row)]);
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    nb.commit(tx, format!("default route of VpcNatGateway {gateway}"))
        .await
}

/// Makes the router of `vpc` carry exactly `routes` and `policies` among our rows, in one
/// transaction.
pub async fn sync(
    nb: &Nb,
    vpc: &str,
    routes: &BTreeSet<Route>,
    policies: &BTreeSet<Policy>,
) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_routes(&nb.replica(), &mut tx, vpc, routes, policies)?;
    nb.commit(tx, format!("routes of Vpc {vpc}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(cidr: &str, hop: &str) -> StaticRoute {
        StaticRoute {
            cidr: cidr.into(),
            next_hop_ip: hop.into(),
            ..Default::default()
        }
    }

    #[test]
    fn routes_and_policies_are_checked_and_normalised() {
        let (routes, policies) = plan(
            &[route("192.168.1.5/24", "10.0.0.254")],
            &[PolicyRoute {
                priority: 100,
                match_: "ip4.src == 10.0.0.0/24".into(),
                action: PolicyRouteAction::Reroute,
                next_hop_ip: Some("10.0.0.253".into()),
            }],
        )
        .unwrap();
        let r = routes.iter().next().unwrap();
        assert_eq!(
            (r.ip_prefix.as_str(), r.policy.as_str()),
            ("192.168.1.0/24", "dst-ip")
        );
        assert_eq!(
            policies.iter().next().unwrap().nexthops,
            vec!["10.0.0.253".to_owned()]
        );
    }

    #[test]
    fn each_bad_route_names_its_field() {
        let cases = [
            (plan(&[route("x", "10.0.0.1")], &[]), "staticRoutes[0].cidr"),
            (
                plan(&[route("10.0.0.0/8", "nope")], &[]),
                "staticRoutes[0].nextHopIP",
            ),
            (
                plan(&[route("10.0.0.0/8", "fd00::1")], &[]),
                "differ in family",
            ),
            (
                plan(
                    &[],
                    &[PolicyRoute {
                        priority: 1,
                        match_: "ip4".into(),
                        action: PolicyRouteAction::Reroute,
                        next_hop_ip: None,
                    }],
                ),
                "nextHopIP is required",
            ),
            (
                plan(
                    &[],
                    &[PolicyRoute {
                        priority: 40000,
                        match_: "ip4".into(),
                        ..Default::default()
                    }],
                ),
                "priority 40000",
            ),
        ];
        for (got, want) in cases {
            let err = got.unwrap_err();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
        }
    }
}
