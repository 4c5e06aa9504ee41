//! Security groups' NB rows against a real `ovsdb-server` with the OVN NB schema (no API
//! server): ACL rows do not grow with members (200 ports join and leave, one transaction each),
//! a group re-created after its rows were collected takes its members back, and names that
//! are not ours (a foreign port group, two groups sharing `ovn.sg.a.b`) are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Instant;

use controller::nb::{self, NbError, PortPlan, PortSecurity, SwitchPlan, security_group as sg};
use crds::security_group::SecurityGroupSpec;
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{Acl, AddressSet, PortGroup};
use ovn_api::testing::{OvsdbServer, SchemaKind};

const MEMBERS: u32 = 200;

fn spec() -> SecurityGroupSpec {
    serde_json::from_value(serde_json::json!({
        "allowSameGroupTraffic": true,
        "ingressRules": [
            {"ipVersion": "ipv4", "protocol": "tcp", "priority": 1, "remoteType": "address",
             "remoteAddress": "10.120.0.0/16", "portRangeMin": 80, "portRangeMax": 80,
             "policy": "allow"},
            {"ipVersion": "ipv4", "protocol": "icmp", "priority": 2, "remoteType": "address",
             "remoteAddress": "10.120.0.0/16", "policy": "allow"}
        ],
        "egressRules": [
            {"ipVersion": "ipv4", "protocol": "all", "priority": 1, "remoteType": "address",
             "remoteAddress": "0.0.0.0/0", "policy": "allow"}
        ]
    }))
    .unwrap()
}

fn port(i: u32, groups: &[&str]) -> PortPlan {
    let mut ids = nb::owned_ids(&[("pod", &format!("default/p{i}")), ("ls", "s-sg")]);
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    if !groups.is_empty() {
        ids.insert("security_groups".into(), sg::groups_id(&groups));
    }
    PortPlan {
        name: format!("p{i}.default.net.default.ovn"),
        switch: "s-sg".into(),
        mac: format!("0a:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
        ips: vec![
            format!("10.120.{}.{}", i / 250, 1 + i % 250)
                .parse()
                .unwrap(),
        ],
        port_security: PortSecurity::Addresses,
        external_ids: ids,
        dhcp: (None, None),
        security_groups: groups,
        policy_groups: Vec::new(),
    }
}

fn acl_count(r: &Replica) -> usize {
    r.list::<Acl>().unwrap().len()
}

fn group(r: &Replica, name: &str) -> Option<PortGroup> {
    r.one_by_name::<PortGroup>(name).unwrap()
}

fn set_len(r: &Replica, name: &str) -> Option<usize> {
    r.one_by_name::<AddressSet>(name)
        .unwrap()
        .map(|s| s.addresses.len())
}

#[tokio::test]
async fn acl_rows_do_not_grow_with_members_and_a_recreated_group_takes_them_back() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();
    nb::ensure_switch(
        &client,
        &SwitchPlan {
            subnet: "s-sg".into(),
            vpc: None,
            gateways: vec!["10.120.0.254/16".parse().unwrap()],
            acls: Vec::new(),
        },
    )
    .await
    .unwrap();
    let acls = sg::plan_acls("web", &spec()).unwrap();
    assert_eq!(acls.len(), 3 + 4, "three rules and four same-group ACLs");
    sg::ensure_group(&client, "web", Some(&acls)).await.unwrap();
    sg::ensure_group(&client, "web", Some(&acls)).await.unwrap();
    let empty = acl_count(&client.replica());
    assert_eq!(empty, 7 + 4, "the group's and the default-deny group's");
    let mut again = ovn_api::txn::Txn::new();
    sg::plan_group(&client.replica(), &mut again, "web", Some(&acls)).unwrap();
    assert!(again.is_empty(), "a written group plans nothing: {again:?}");

    let started = Instant::now();
    for i in 0..MEMBERS {
        nb::ensure_port(&client, &port(i, &["web"])).await.unwrap();
    }
    let joined = started.elapsed();
    {
        let r = client.replica();
        assert_eq!(acl_count(&r), empty, "ACL rows grew with members");
        assert_eq!(
            group(&r, "ovn.sg.web").unwrap().ports.len(),
            MEMBERS as usize
        );
        assert_eq!(
            group(&r, "ovn.sg.kubeovn_deny_all").unwrap().ports.len(),
            MEMBERS as usize
        );
        assert_eq!(
            set_len(&r, "ovn.sg.web.associated.v4"),
            Some(MEMBERS as usize)
        );
    }
    // Half leave (one transaction each), the rest stays.
    let started = Instant::now();
    for i in 0..MEMBERS / 2 {
        nb::ensure_port(&client, &port(i, &[])).await.unwrap();
    }
    let left = started.elapsed();
    {
        let r = client.replica();
        assert_eq!(acl_count(&r), empty);
        assert_eq!(
            group(&r, "ovn.sg.web").unwrap().ports.len(),
            (MEMBERS / 2) as usize
        );
        assert_eq!(
            set_len(&r, "ovn.sg.web.associated.v4"),
            Some((MEMBERS / 2) as usize)
        );
    }
    println!(
        "SG NB: {MEMBERS} members joined in {:.0} ms ({:.2} ms each, one transaction each), {} left in {:.0} ms; ACL rows {empty} throughout",
        joined.as_secs_f64() * 1e3,
        joined.as_secs_f64() * 1e3 / f64::from(MEMBERS),
        MEMBERS / 2,
        left.as_secs_f64() * 1e3
    );

    // The GC removes a group whose object is gone, members or not; a group re-created later
    // takes back every port that names it, with its addresses, and they rejoin the default
    // deny group.
    assert!(sg::delete_group(&client, "web", false).await.unwrap());
    {
        let r = client.replica();
        assert!(group(&r, "ovn.sg.web").is_none());
        assert_eq!(set_len(&r, "ovn.sg.web.associated.v4"), None);
        assert_eq!(acl_count(&r), 4, "the group's ACLs went with it");
    }
    // A deletion that insists on no members fails while there are some.
    sg::ensure_group(&client, "web", Some(&acls)).await.unwrap();
    {
        let r = client.replica();
        assert_eq!(
            group(&r, "ovn.sg.web").unwrap().ports.len(),
            (MEMBERS / 2) as usize
        );
        assert_eq!(
            set_len(&r, "ovn.sg.web.associated.v4"),
            Some((MEMBERS / 2) as usize)
        );
        assert_eq!(acl_count(&r), empty);
    }
    assert!(sg::delete_group(&client, "web", true).await.is_err());
    assert!(group(&client.replica(), "ovn.sg.web").is_some());

    // Deleting a member's port takes its address out of the set in the same transaction.
    nb::delete_port(&client, &port(MEMBERS - 1, &[]).name)
        .await
        .unwrap();
    assert_eq!(
        set_len(&client.replica(), "ovn.sg.web.associated.v4"),
        Some((MEMBERS / 2 - 1) as usize)
    );

    // Names that are not ours.
    let err = sg::ensure_group(&client, "web.sg", Some(&[]))
        .await
        .and(sg::ensure_group(&client, "web-sg", Some(&[])).await)
        .unwrap_err();
    assert!(
        matches!(&err, NbError::GroupClash { owner, .. } if owner == "web.sg"),
        "{err}"
    );
    assert!(err.to_string().contains("share a port group"), "{err}");
    server.nbctl(&["pg-add", "ovn.sg.theirs"]).unwrap();
    client
        .wait_until(std::time::Duration::from_secs(10), |r| {
            group(r, "ovn.sg.theirs").is_some()
        })
        .await
        .unwrap();
    let err = sg::ensure_group(&client, "theirs", Some(&[]))
        .await
        .unwrap_err();
    assert!(matches!(err, NbError::NotOurs { .. }), "{err}");
    let err = nb::ensure_port(&client, &port(7, &["theirs"]))
        .await
        .unwrap_err();
    assert!(matches!(err, NbError::NotOurs { .. }), "{err}");
}
