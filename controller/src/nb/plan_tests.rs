//! The NB planners on in-memory fixture replicas: every case reads a replica built from rows
//! and checks the operations planned, without an `ovsdb-server` (the same planners run against
//! a real server in `controller/tests/nb.rs`, `nb_qos.rs` and `routes.rs`).

use std::collections::BTreeMap;

use ovn_api::protocol::{Condition, Operation};
use ovn_api::tables::nb::{
    LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort, Qos,
};
use ovn_api::testing::{FixtureReplica, SchemaKind};
use ovn_api::txn::Txn;
use ovn_api::value::{Atom, Datum, Uuid};

use super::qos::{QOS_PRIORITY, bandwidth};
use super::*;

fn nb() -> FixtureReplica {
    FixtureReplica::new(SchemaKind::Northbound).unwrap()
}

/// `#n` for fixture UUIDs, the name for rows inserted in the same transaction.
fn label(a: &Atom) -> String {
    match a {
        Atom::Uuid(u) => {
            let s = u.to_string();
            format!("#{}", s.trim_start_matches(['0', '-']))
        }
        Atom::NamedUuid(n) => n.to_string(),
        Atom::String(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

fn values(d: &Datum) -> String {
    let set: Vec<String> = d.as_set().iter().map(label).collect();
    let map: Vec<String> = d
        .as_map()
        .iter()
        .map(|(k, v)| format!("{}={}", label(k), label(v)))
        .collect();
    [set, map].concat().join(",")
}

fn target(conditions: &[Condition]) -> String {
    conditions
        .iter()
        .map(|c| values(&c.value))
        .collect::<Vec<_>>()
        .join("&")
}

/// One line per operation, e.g. `mutate Logical_Switch #1 ports insert row0`.
fn summary(tx: &Txn) -> Vec<String> {
    tx.operations()
        .iter()
        .map(|op| match op {
            Operation::Insert {
                table,
                row,
                uuid_name,
            } => {
                // The column that names the row: ports, switches, routers by `name`, the others
                // by what they match or cover.
                let name = ["name", "match", "ip_prefix", "cidr"]
                    .iter()
                    .find_map(|c| row.get(*c));
                format!(
                    "insert {table} {} as {}",
                    name.map(values).unwrap_or_default(),
                    uuid_name.as_deref().unwrap_or("-")
                )
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => {
                let cols: Vec<&str> = row.keys().map(String::as_str).collect();
                format!("update {table} {} {}", target(conditions), cols.join(","))
            }
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => mutations
                .iter()
                .map(|m| {
                    format!(
                        "mutate {table} {} {} {} {}",
                        target(conditions),
                        m.column,
                        m.mutator,
                        values(&m.value)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Operation::Delete { table, conditions } => {
                format!("delete {table} {}", target(conditions))
            }
            other => format!("{other:?}"),
        })
        .collect()
}

fn theirs() -> BTreeMap<String, String> {
    BTreeMap::from([("owner".to_owned(), "someone-else".to_owned())])
}

fn switch_plan(subnet: &str, vpc: Option<&str>, gateway: &str) -> SwitchPlan {
    SwitchPlan {
        subnet: subnet.into(),
        vpc: vpc.map(Into::into),
        gateways: vec![gateway.parse().unwrap()],
        acls: Vec::new(),
    }
}

const PORT: &str = "p1.default.net1.default.ovn";

fn port_plan(switch: &str) -> PortPlan {
    PortPlan {
        name: PORT.into(),
        switch: switch.into(),
        mac: "0a:58:0a:00:00:05".into(),
        ips: vec!["10.0.0.5".parse().unwrap()],
        port_security: PortSecurity::Addresses,
        external_ids: owned_ids(&[("pod", "default/p1"), ("ls", switch)]),
        dhcp: (None, None),
        security_groups: Vec::new(),
        policy_groups: Vec::new(),
    }
}

fn qos_plan(switch: &str, egress: Limit, ingress: Limit) -> QosPlan {
    QosPlan {
        port: PORT.into(),
        switch: switch.into(),
        egress,
        ingress,
        external_ids: owned_ids(&[("pod", "default/p1")]),
    }
}

/// The LSP `plan` would write, as the replica holds it after the commit.
fn port_row(plan: &PortPlan) -> LogicalSwitchPort {
    let addresses = vec![format!("{} {}", plan.mac, plan.ips[0])];
    LogicalSwitchPort {
        name: plan.name.clone(),
        port_security: addresses.clone(),
        addresses,
        external_ids: plan.external_ids.clone(),
        ..Default::default()
    }
}

/// Adds our switch `name`, or replaces the row `uuid` when it is not nil.
fn add_switch(
    r: &mut FixtureReplica,
    uuid: Uuid,
    name: &str,
    ports: Vec<Uuid>,
    qos: Vec<Uuid>,
) -> Uuid {
    r.add(&LogicalSwitch {
        uuid,
        name: name.into(),
        ports,
        qos_rules: qos,
        external_ids: owned_ids(&[("subnet", name)]),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn router_is_inserted_once_and_a_foreign_one_is_refused() {
    let mut r = nb();
    let mut tx = Txn::new();
    plan_router(&r, &mut tx, "vpc1").unwrap();
    assert_eq!(summary(&tx), ["insert Logical_Router vpc1 as row0"]);

    r.add(&LogicalRouter {
        name: "vpc1".into(),
        external_ids: owned_ids(&[("vpc", "vpc1")]),
        ..Default::default()
    })
    .unwrap();
    r.add(&LogicalRouter {
        name: "theirs".into(),
        external_ids: theirs(),
        ..Default::default()
    })
    .unwrap();
    let mut tx = Txn::new();
    plan_router(&r, &mut tx, "vpc1").unwrap();
    let err = plan_router(&r, &mut tx, "theirs").unwrap_err();
    assert!(
        matches!(
            err,
            NbError::NotOurs {
                table: "Logical_Router",
                ..
            }
        ),
        "{err}"
    );
    plan_delete_router(&r, &mut tx, "theirs").unwrap();
    plan_delete_router(&r, &mut tx, "absent").unwrap();
    assert!(tx.is_empty(), "{:?}", summary(&tx));
    plan_delete_router(&r, &mut tx, "vpc1").unwrap();
    assert_eq!(summary(&tx), ["delete Logical_Router #1"]);
}

#[test]
fn switch_with_a_vpc_gets_its_router_port_pair_in_one_plan_and_then_nothing() {
    let mut r = nb();
    let plan = switch_plan("s1", Some("vpc1"), "10.0.0.1/24");
    let mut tx = Txn::new();
    let err = plan_switch(&r, &mut tx, &plan).unwrap_err();
    assert!(
        err.to_string()
            .contains("logical router vpc1 does not exist yet"),
        "{err}"
    );
    assert!(tx.is_empty(), "an error leaves the transaction unchanged");

    r.add(&LogicalRouter {
        name: "vpc1".into(),
        external_ids: owned_ids(&[("vpc", "vpc1")]),
        ..Default::default()
    })
    .unwrap();
    plan_switch(&r, &mut tx, &plan).unwrap();
    assert_eq!(
        summary(&tx),
        [
            "insert Logical_Switch s1 as row0",
            "insert Logical_Router_Port vpc1-s1 as row1",
            "mutate Logical_Router #1 ports insert row1",
            "insert Logical_Switch_Port s1-vpc1 as row2",
            "mutate Logical_Switch row0 ports insert row2",
        ]
    );

    // As the replica holds it after that commit: the plan is empty.
    r.add(&LogicalRouterPort {
        name: "vpc1-s1".into(),
        mac: router_port_mac("vpc1-s1"),
        networks: vec!["10.0.0.1/24".into()],
        external_ids: owned_ids(&[("vpc", "vpc1"), ("subnet", "s1")]),
        ..Default::default()
    })
    .unwrap();
    let lsp = r
        .add(&LogicalSwitchPort {
            name: "s1-vpc1".into(),
            type_: "router".into(),
            external_ids: owned_ids(&[("vpc", "vpc1"), ("ls", "s1")]),
            ..Default::default()
        })
        .unwrap();
    add_switch(&mut r, Uuid::NIL, "s1", vec![lsp], Vec::new());
    let mut tx = Txn::new();
    plan_switch(&r, &mut tx, &plan).unwrap();
    assert!(tx.is_empty(), "{:?}", summary(&tx));

    // A new gateway updates the router port in place.
    plan_switch(
        &r,
        &mut tx,
        &switch_plan("s1", Some("vpc1"), "10.0.0.254/24"),
    )
    .unwrap();
    assert_eq!(summary(&tx), ["update Logical_Router_Port #2 networks"]);

    // Deleting takes the switch and the router's reference to its port.
    let mut tx = Txn::new();
    plan_delete_switch(&r, &mut tx, "s1", Some("vpc1")).unwrap();
    assert_eq!(
        summary(&tx),
        [
            "delete Logical_Switch #4",
            "mutate Logical_Router #1 ports delete #2"
        ]
    );
}

#[test]
fn a_foreign_switch_is_refused_and_never_deleted() {
    let mut r = nb();
    r.add(&LogicalSwitch {
        name: "their-ls".into(),
        external_ids: theirs(),
        ..Default::default()
    })
    .unwrap();
    let mut tx = Txn::new();
    let err = plan_switch(&r, &mut tx, &switch_plan("their-ls", None, "10.0.0.1/24")).unwrap_err();
    assert!(
        matches!(
            err,
            NbError::NotOurs {
                table: "Logical_Switch",
                ..
            }
        ),
        "{err}"
    );
    plan_delete_switch(&r, &mut tx, "their-ls", None).unwrap();
    assert!(tx.is_empty(), "{:?}", summary(&tx));
    plan_switch(&r, &mut tx, &switch_plan("s2", None, "10.0.0.1/24")).unwrap();
    assert_eq!(summary(&tx), ["insert Logical_Switch s2 as row0"]);
}

#[test]
fn port_is_inserted_kept_updated_and_rehomed() {
    let mut r = nb();
    let plan = port_plan("s1");
    let mut tx = Txn::new();
    assert!(matches!(
        plan_port(&r, &mut tx, &plan),
        Err(NbError::NoSwitch(s)) if s == "s1"
    ));
    assert!(tx.is_empty());

    let s1 = add_switch(&mut r, Uuid::NIL, "s1", Vec::new(), Vec::new());
    plan_port(&r, &mut tx, &plan).unwrap();
    assert_eq!(
        summary(&tx),
        [
            format!("insert Logical_Switch_Port {PORT} as row0"),
            "mutate Logical_Switch #1 ports insert row0".into(),
        ]
    );

    // As committed: nothing to do.
    let lsp = r.add(&port_row(&plan)).unwrap();
    add_switch(&mut r, s1, "s1", vec![lsp], Vec::new());
    let mut tx = Txn::new();
    plan_port(&r, &mut tx, &plan).unwrap();
    assert!(tx.is_empty(), "{:?}", summary(&tx));

    // Port security off: one update of the columns we own.
    let open = PortPlan {
        port_security: PortSecurity::Off,
        ..plan.clone()
    };
    plan_port(&r, &mut tx, &open).unwrap();
    assert_eq!(
        summary(&tx),
        [
            "update Logical_Switch_Port #2 addresses,dhcpv4_options,dhcpv6_options,external_ids,port_security"
        ]
    );

    // Moved to s2: leaves s1 and joins s2 in the same transaction.
    add_switch(&mut r, Uuid::NIL, "s2", Vec::new(), Vec::new());
    let moved = PortPlan {
        switch: "s2".into(),
        ..plan.clone()
    };
    let mut tx = Txn::new();
    plan_port(&r, &mut tx, &moved).unwrap();
    assert_eq!(
        summary(&tx),
        [
            "mutate Logical_Switch #1 ports delete #2",
            "mutate Logical_Switch #3 ports insert #2",
        ]
    );
}

#[test]
fn a_foreign_port_is_refused_and_kept_out_of_the_pods_transaction() {
    let mut r = nb();
    let theirs_lsp = r
        .add(&LogicalSwitchPort {
            name: "their-port".into(),
            external_ids: theirs(),
            ..Default::default()
        })
        .unwrap();
    add_switch(&mut r, Uuid::NIL, "s1", vec![theirs_lsp], Vec::new());
    let mut tx = Txn::new();
    assert!(!plan_delete_port(&r, &mut tx, "their-port").unwrap());
    assert!(!plan_delete_port(&r, &mut tx, "absent").unwrap());
    assert!(tx.is_empty());

    let foreign = PortPlan {
        name: "their-port".into(),
        ..port_plan("s1")
    };
    let ours = port_plan("s1");
    let qos = [qos_plan("s1", Limit::Kbps(1_000), Limit::Unlimited)];
    let outcome = plan_attachments(&r, &mut tx, &[foreign, ours], &qos);
    assert!(matches!(
        outcome.as_slice(),
        [
            Some(NbError::NotOurs {
                table: "Logical_Switch_Port",
                ..
            }),
            None
        ]
    ));
    assert_eq!(
        summary(&tx),
        [
            format!("insert Logical_Switch_Port {PORT} as row0"),
            "mutate Logical_Switch #2 ports insert row0".into(),
            format!("insert QoS inport == \"{PORT}\" as row1"),
            "mutate Logical_Switch #2 qos_rules insert row1".into(),
        ]
    );
}

#[test]
fn qos_rows_follow_the_plan_one_per_direction() {
    let mut r = nb();
    let mut tx = Txn::new();
    let err = plan_qos(
        &r,
        &mut tx,
        &qos_plan("s1", Limit::Kbps(1), Limit::Unlimited),
    );
    assert!(matches!(err, Err(NbError::NoSwitch(_))));
    add_switch(&mut r, Uuid::NIL, "s0", Vec::new(), Vec::new());

    let egress = r
        .add(&Qos {
            priority: QOS_PRIORITY,
            direction: QosDirection::Egress.ovn().into(),
            match_: QosDirection::Egress.match_for(PORT),
            bandwidth: bandwidth(10_000),
            external_ids: owned_ids(&[("pod", "default/p1")]),
            ..Default::default()
        })
        .unwrap();
    let foreign = r
        .add(&Qos {
            priority: 10,
            direction: QosDirection::Ingress.ovn().into(),
            match_: QosDirection::Ingress.match_for(PORT),
            bandwidth: bandwidth(1),
            external_ids: theirs(),
            ..Default::default()
        })
        .unwrap();
    add_switch(&mut r, Uuid::NIL, "s1", Vec::new(), vec![egress, foreign]);
    let cases: [(Limit, Limit, Vec<String>); 5] = [
        (Limit::Kbps(10_000), Limit::Unchanged, vec![]),
        (Limit::Unchanged, Limit::Unchanged, vec![]),
        (
            Limit::Kbps(20_000),
            Limit::Unchanged,
            vec!["update QoS #2 action,bandwidth,external_ids,priority".into()],
        ),
        (
            Limit::Unlimited,
            Limit::Unchanged,
            vec!["mutate Logical_Switch #4 qos_rules delete #2".into()],
        ),
        (
            Limit::Unchanged,
            Limit::Kbps(5_000),
            vec![
                format!("insert QoS outport == \"{PORT}\" as row0"),
                "mutate Logical_Switch #4 qos_rules insert row0".into(),
            ],
        ),
    ];
    for (egress, ingress, want) in cases {
        let mut tx = Txn::new();
        plan_qos(&r, &mut tx, &qos_plan("s1", egress, ingress)).unwrap();
        assert_eq!(summary(&tx), want, "{egress:?} {ingress:?}");
    }

    // A row left on another switch is removed there and re-created on the port's switch.
    let mut tx = Txn::new();
    plan_qos(
        &r,
        &mut tx,
        &qos_plan("s0", Limit::Kbps(10_000), Limit::Unchanged),
    )
    .unwrap();
    assert_eq!(
        summary(&tx),
        [
            "mutate Logical_Switch #4 qos_rules delete #2".to_owned(),
            format!("insert QoS inport == \"{PORT}\" as row0"),
            "mutate Logical_Switch #1 qos_rules insert row0".into(),
        ]
    );

    // Deleting the port takes our row only, through the switch's reference.
    let mut tx = Txn::new();
    assert_eq!(plan_delete_qos(&r, &mut tx, PORT).unwrap(), 1);
    assert_eq!(
        summary(&tx),
        ["mutate Logical_Switch #4 qos_rules delete #2"]
    );
}

#[test]
fn routes_follow_the_spec_among_our_rows_only() {
    use super::routes::{Policy, Route, plan_routes};
    use ovn_api::tables::nb::{LogicalRouterPolicy, LogicalRouterStaticRoute};
    use std::collections::BTreeSet;

    let route = |prefix: &str| Route {
        ip_prefix: prefix.into(),
        nexthop: "10.0.0.254".into(),
        policy: "dst-ip".into(),
        route_table: String::new(),
    };
    let wanted = BTreeSet::from([route("192.168.0.0/24"), route("192.168.2.0/24")]);
    let policy = Policy {
        priority: 100,
        match_: "ip4.src == 10.0.0.0/24".into(),
        action: "allow".into(),
        nexthops: Vec::new(),
    };
    let mut r = nb();
    let mut tx = Txn::new();
    let err = plan_routes(&r, &mut tx, "vpc1", &wanted, &BTreeSet::new()).unwrap_err();
    assert!(err.to_string().contains("does not exist yet"), "{err}");
    assert!(tx.is_empty());

    let static_route = |prefix: &str, ids: BTreeMap<String, String>| LogicalRouterStaticRoute {
        ip_prefix: prefix.into(),
        nexthop: "10.0.0.254".into(),
        policy: Some("dst-ip".into()),
        external_ids: ids,
        ..Default::default()
    };
    let kept = r
        .add(&static_route(
            "192.168.0.0/24",
            owned_ids(&[("vpc", "vpc1")]),
        ))
        .unwrap();
    let stale = r
        .add(&static_route(
            "192.168.1.0/24",
            owned_ids(&[("vpc", "vpc1")]),
        ))
        .unwrap();
    let foreign = r.add(&static_route("172.16.0.0/16", theirs())).unwrap();
    let their_policy = r
        .add(&LogicalRouterPolicy {
            priority: 1,
            match_: "1".into(),
            action: "drop".into(),
            external_ids: theirs(),
            ..Default::default()
        })
        .unwrap();
    r.add(&LogicalRouter {
        name: "vpc1".into(),
        static_routes: vec![kept, stale, foreign],
        policies: vec![their_policy],
        external_ids: owned_ids(&[("vpc", "vpc1")]),
        ..Default::default()
    })
    .unwrap();
    plan_routes(&r, &mut tx, "vpc1", &wanted, &BTreeSet::from([policy])).unwrap();
    assert_eq!(
        summary(&tx),
        [
            "mutate Logical_Router #5 static_routes delete #2",
            "insert Logical_Router_Static_Route 192.168.2.0/24 as row0",
            "mutate Logical_Router #5 static_routes insert row0",
            "insert Logical_Router_Policy ip4.src == 10.0.0.0/24 as row1",
            "mutate Logical_Router #5 policies insert row1",
        ]
    );
}

#[test]
fn dhcp_rows_per_family_and_every_port_of_the_subnet_points_at_them() {
    use super::dhcp::{DhcpPlan, Family, plan_delete_dhcp, plan_dhcp};
    use ovn_api::tables::nb::DhcpOptions;

    let mut r = nb();
    let v4 = Family {
        cidr: "10.0.0.0/24".parse().unwrap(),
        options: BTreeMap::from([("router".to_owned(), "10.0.0.1".to_owned())]),
    };
    let plan = DhcpPlan {
        subnet: "s1".into(),
        v4: Some(v4.clone()),
        v6: None,
    };
    let port = r
        .add(&LogicalSwitchPort {
            name: PORT.into(),
            external_ids: owned_ids(&[("pod", "default/p1"), ("ls", "s1")]),
            ..Default::default()
        })
        .unwrap();
    let mut tx = Txn::new();
    plan_dhcp(&r, &mut tx, &plan).unwrap();
    assert_eq!(
        summary(&tx),
        [
            "insert DHCP_Options 10.0.0.0/24 as row0",
            "update Logical_Switch_Port #1 dhcpv4_options,dhcpv6_options",
        ]
    );

    // As committed: nothing; changed options update the row in place.
    let row = r
        .add(&DhcpOptions {
            cidr: "10.0.0.0/24".into(),
            options: v4.options.clone(),
            external_ids: owned_ids(&[("subnet", "s1"), ("protocol", "IPv4")]),
            ..Default::default()
        })
        .unwrap();
    r.add(&LogicalSwitchPort {
        uuid: port,
        name: PORT.into(),
        dhcpv4_options: Some(row),
        external_ids: owned_ids(&[("pod", "default/p1"), ("ls", "s1")]),
        ..Default::default()
    })
    .unwrap();
    let mut tx = Txn::new();
    plan_dhcp(&r, &mut tx, &plan).unwrap();
    assert!(tx.is_empty(), "{:?}", summary(&tx));
    let changed = DhcpPlan {
        v4: Some(Family {
            options: BTreeMap::new(),
            ..v4
        }),
        ..plan.clone()
    };
    plan_dhcp(&r, &mut tx, &changed).unwrap();
    assert_eq!(summary(&tx), ["update DHCP_Options #2 cidr,options"]);

    let mut tx = Txn::new();
    assert_eq!(plan_delete_dhcp(&r, &mut tx, "s1"), 1);
    assert_eq!(summary(&tx), ["delete DHCP_Options #2"]);
}

proptest::proptest! {
    /// Idempotent reconcile: the row a port plan inserts, once in the replica (as the commit
    /// leaves it), plans nothing more, whatever the MAC, addresses, port security and DHCP
    /// references.
    #[test]
    fn a_written_port_plans_nothing(
        mac in proptest::prelude::any::<[u8; 6]>(),
        v4 in proptest::prelude::any::<[u8; 4]>(),
        v6 in proptest::option::of(proptest::prelude::any::<u128>()),
        port_security in proptest::sample::select(vec![PortSecurity::Addresses, PortSecurity::MacOnly, PortSecurity::Off]),
        dhcp in (proptest::option::of(1u128..4), proptest::option::of(4u128..8)),
    ) {
        let mut ips = vec![std::net::IpAddr::from(v4)];
        ips.extend(v6.map(|v6| std::net::IpAddr::from(std::net::Ipv6Addr::from(v6))));
        let plan = PortPlan {
            mac: crds::MacAddr(mac).to_string(),
            ips,
            port_security,
            dhcp: (dhcp.0.map(Uuid::from_u128), dhcp.1.map(Uuid::from_u128)),
            ..port_plan("s1")
        };
        let mut r = nb();
        let s1 = add_switch(&mut r, Uuid::NIL, "s1", Vec::new(), Vec::new());
        let mut tx = Txn::new();
        plan_port(&r, &mut tx, &plan).unwrap();
        let Some(Operation::Insert { row, .. }) = tx.operations().first() else {
            panic!("no insert: {:?}", summary(&tx));
        };
        let lsp = Uuid::from_u128(100);
        r.add_rows(
            LogicalSwitchPort::TABLE,
            &ovn_api::testing::Rows::from([(lsp, row.clone())]),
        )
        .unwrap();
        add_switch(&mut r, s1, "s1", vec![lsp], Vec::new());
        let mut again = Txn::new();
        plan_port(&r, &mut again, &plan).unwrap();
        proptest::prop_assert!(again.is_empty(), "{:?}", summary(&again));
    }
}

/// The port group and address sets of group `web` and the default-deny group, as the
/// SecurityGroup controller writes them, holding `members` (with `addresses` in the v4 set).
fn security_groups(r: &mut FixtureReplica, members: Vec<Uuid>, addresses: Vec<String>) {
    use ovn_api::tables::nb::{AddressSet, PortGroup};
    r.add(&PortGroup {
        uuid: Uuid::from_u128(0xd0),
        name: "ovn.sg.kubeovn_deny_all".into(),
        ports: members.clone(),
        external_ids: owned_ids(&[("sg", "kubeovn_deny_all")]),
        ..Default::default()
    })
    .unwrap();
    r.add(&PortGroup {
        uuid: Uuid::from_u128(0xd1),
        name: "ovn.sg.web".into(),
        ports: members,
        external_ids: owned_ids(&[("sg", "web")]),
        ..Default::default()
    })
    .unwrap();
    for (uuid, family, addresses) in [(0xd4, "v4", addresses), (0xd6, "v6", Vec::new())] {
        r.add(&AddressSet {
            uuid: Uuid::from_u128(uuid),
            name: format!("ovn.sg.web.associated.{family}"),
            addresses,
            external_ids: owned_ids(&[("sg", "web")]),
        })
        .unwrap();
    }
}

#[test]
fn a_ports_security_groups_change_in_its_transaction_and_a_missing_one_keeps_it_out() {
    let mut r = nb();
    let s1 = add_switch(&mut r, Uuid::NIL, "s1", Vec::new(), Vec::new());
    security_groups(&mut r, Vec::new(), Vec::new());
    let member = PortPlan {
        security_groups: vec!["web".into()],
        ..port_plan("s1")
    };
    // A new port joins its group, the default-deny group and the address set with its insert.
    let mut tx = Txn::new();
    plan_port(&r, &mut tx, &member).unwrap();
    assert_eq!(
        summary(&tx),
        [
            format!("insert Logical_Switch_Port {PORT} as row0"),
            "mutate Logical_Switch #1 ports insert row0".into(),
            "mutate Port_Group #d1 ports insert row0".into(),
            "mutate Port_Group #d0 ports insert row0".into(),
            "mutate Address_Set #d4 addresses insert 10.0.0.5".into(),
        ]
    );
    // A group that does not exist: an error naming it, and nothing of the port planned.
    let mut tx = Txn::new();
    let ghost = PortPlan {
        security_groups: vec!["ghost".into(), "web".into()],
        ..port_plan("s1")
    };
    match plan_port(&r, &mut tx, &ghost) {
        Err(NbError::NoSecurityGroup(missing)) => assert_eq!(missing, ["ghost"]),
        other => panic!("{other:?}"),
    }
    assert!(tx.is_empty(), "{:?}", summary(&tx));

    // A member leaving: out of both groups, its address out of the set; nothing else.
    let lsp = r
        .add(&LogicalSwitchPort {
            name: PORT.into(),
            addresses: vec!["0a:58:0a:00:00:05 10.0.0.5".into()],
            port_security: vec!["0a:58:0a:00:00:05 10.0.0.5".into()],
            external_ids: port_plan("s1").external_ids,
            ..Default::default()
        })
        .unwrap();
    add_switch(&mut r, s1, "s1", vec![lsp], Vec::new());
    security_groups(&mut r, vec![lsp], vec!["10.0.0.5".into()]);
    let mut tx = Txn::new();
    plan_port(&r, &mut tx, &member).unwrap();
    assert!(tx.is_empty(), "a member as planned: {:?}", summary(&tx));
    plan_port(&r, &mut tx, &port_plan("s1")).unwrap();
    let mut ops = summary(&tx);
    ops.sort();
    let lsp_label = label(&Atom::Uuid(lsp));
    assert_eq!(
        ops,
        [
            "mutate Address_Set #d4 addresses delete 10.0.0.5".to_owned(),
            format!("mutate Port_Group #d0 ports delete {lsp_label}"),
            format!("mutate Port_Group #d1 ports delete {lsp_label}"),
        ]
    );
    // Deleting the port takes its address out of its groups' sets in the same transaction (the
    // port groups drop it by themselves: weak references).
    let mut tx = Txn::new();
    assert!(plan_delete_port(&r, &mut tx, PORT).unwrap());
    assert_eq!(
        summary(&tx),
        [
            "mutate Address_Set #d4 addresses delete 10.0.0.5".to_owned(),
            format!("mutate Logical_Switch #1 ports delete {lsp_label}"),
        ]
    );
}

#[test]
fn a_rule_change_replaces_only_the_acls_that_changed_and_touches_no_member() {
    use ovn_api::tables::nb::{Acl, PortGroup};
    use security_group::{AclSpec, plan_group};
    let acl = |m: &str| AclSpec {
        direction: "to-lport",
        priority: 2005,
        match_: m.into(),
        action: "allow-related",
        remote_group: None,
    };
    let mut r = nb();
    let ids = owned_ids(&[("sg", "web")]);
    let mut rows = Vec::new();
    for m in [
        "outport == @ovn.sg.web && ip4",
        "outport == @ovn.sg.web && ip6",
    ] {
        rows.push(
            r.add(&Acl {
                direction: "to-lport".into(),
                priority: 2005,
                match_: m.into(),
                action: "allow-related".into(),
                external_ids: ids.clone(),
                ..Default::default()
            })
            .unwrap(),
        );
    }
    let foreign = r
        .add(&Acl {
            match_: "outport == @ovn.sg.web && tcp".into(),
            external_ids: theirs(),
            ..Default::default()
        })
        .unwrap();
    let member = Uuid::from_u128(0x99);
    let deny: Vec<Uuid> = security_group::deny_all_acls()
        .iter()
        .map(|a| {
            r.add(&Acl {
                direction: a.direction.into(),
                priority: a.priority,
                match_: a.match_.clone(),
                action: a.action.into(),
                external_ids: owned_ids(&[("sg", "kubeovn_deny_all")]),
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    security_groups(&mut r, vec![member], vec!["10.0.0.5".into()]);
    for (uuid, acls) in [(0xd1, [rows.clone(), vec![foreign]].concat()), (0xd0, deny)] {
        let pg = r.get::<PortGroup>(Uuid::from_u128(uuid)).unwrap().unwrap();
        r.add(&PortGroup { acls, ..pg }).unwrap();
    }
    let wanted = [
        acl("outport == @ovn.sg.web && ip6"),
        acl("outport == @ovn.sg.web && ip4 && tcp.dst == 80"),
    ];
    let mut tx = Txn::new();
    plan_group(&r, &mut tx, "web", Some(&wanted)).unwrap();
    let old = label(&Atom::Uuid(rows[0]));
    assert_eq!(
        summary(&tx),
        [
            "insert ACL outport == @ovn.sg.web && ip4 && tcp.dst == 80 as row0".to_owned(),
            "mutate Port_Group #d1 acls insert row0".into(),
            format!("mutate Port_Group #d1 acls delete {old}"),
        ],
        "the unchanged ACL, the foreign one, the members and the address sets stay"
    );
    // Invalid rules (`None`): nothing changes.
    let mut tx = Txn::new();
    plan_group(&r, &mut tx, "web", None).unwrap();
    assert!(tx.is_empty(), "{:?}", summary(&tx));
}

#[test]
fn a_new_port_joins_the_port_groups_of_its_policies_in_its_own_transaction() {
    use ovn_api::tables::nb::PortGroup;
    let mut r = nb();
    add_switch(&mut r, Uuid::NIL, "s1", Vec::new(), Vec::new());
    r.add(&PortGroup {
        uuid: Uuid::from_u128(0xe0),
        name: "ovn.mnp.default.deny_all".into(),
        external_ids: owned_ids(&[("mnp", "default/deny-all")]),
        ..Default::default()
    })
    .unwrap();
    r.add(&PortGroup {
        uuid: Uuid::from_u128(0xe1),
        name: "ovn.mnp.default.foreign".into(),
        ..Default::default()
    })
    .unwrap();
    let plan = PortPlan {
        policy_groups: vec![
            "ovn.mnp.default.deny_all".into(),
            "ovn.mnp.default.not_yet".into(),
            "ovn.mnp.default.foreign".into(),
        ],
        ..port_plan("s1")
    };
    let mut tx = Txn::new();
    plan_port(&r, &mut tx, &plan).unwrap();
    // Only our policy's existing port group; one that is not there yet is the policy
    // reconcile's to fill, a row not ours is left alone.
    assert_eq!(
        summary(&tx),
        [
            format!("insert Logical_Switch_Port {PORT} as row0"),
            "mutate Logical_Switch #1 ports insert row0".into(),
            "mutate Port_Group #e0 ports insert row0".into(),
        ]
    );
}
