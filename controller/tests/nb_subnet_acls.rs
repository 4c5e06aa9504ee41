//! A Subnet's ACLs on its switch against a real `ovsdb-server` with the OVN NB schema (no API
//! server): a private switch is created with its ACLs in the same transaction, a spec change
//! rewrites only the rows that differ, rows of other owners on the switch stay, and the rows go
//! with the switch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::collections::BTreeMap;

use controller::nb::{self, SwitchPlan, subnet_acl};
use crds::SubnetSpec;
use crds::subnet::Acl as SubnetAcl;
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{Acl, LogicalSwitch};
use ovn_api::testing::{OvsdbServer, SchemaKind};
use ovn_api::txn::Txn;

const SUBNET: &str = "s-priv";

fn plan(spec: &SubnetSpec) -> SwitchPlan {
    let nets = vec!["10.130.1.0/24".parse().unwrap()];
    SwitchPlan {
        subnet: SUBNET.into(),
        vpc: None,
        gateways: vec!["10.130.1.1/24".parse().unwrap()],
        acls: subnet_acl::plan(&nets, spec).unwrap(),
    }
}

/// The switch's ACLs: match → (uuid, owner id).
fn acls(r: &Replica) -> BTreeMap<String, (String, Option<String>)> {
    let ls = r.one_by_name::<LogicalSwitch>(SUBNET).unwrap().unwrap();
    ls.acls
        .iter()
        .map(|u| {
            let acl = r.get::<Acl>(*u).unwrap().unwrap();
            (
                acl.match_,
                (u.to_string(), acl.external_ids.get("subnet").cloned()),
            )
        })
        .collect()
}

#[tokio::test]
async fn subnet_acls_follow_the_spec_and_leave_with_the_switch() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();
    let mut spec = SubnetSpec {
        private: true,
        allow_subnets: vec!["10.130.2.0/24".into()],
        ..Default::default()
    };
    nb::ensure_switch(&client, &plan(&spec)).await.unwrap();
    let first = acls(&client.replica());
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(
        first
            .values()
            .all(|(_, owner)| owner.as_deref() == Some(SUBNET)),
        "{first:?}"
    );

    // Someone else's ACL on our switch is not ours to remove.
    {
        let ls = client
            .replica()
            .one_by_name::<LogicalSwitch>(SUBNET)
            .unwrap()
            .unwrap();
        let mut tx = Txn::new();
        let row = tx.insert(&Acl {
            direction: "from-lport".into(),
            priority: 5,
            match_: "udp.dst == 9".into(),
            action: "drop".into(),
            ..Default::default()
        });
        tx.mutate::<LogicalSwitch>(ls.uuid, [LogicalSwitch::ACLS.insert(row)]);
        client.commit(tx).await.unwrap();
    }

    // Idempotent: the same spec writes nothing.
    nb::ensure_switch(&client, &plan(&spec)).await.unwrap();
    let again = acls(&client.replica());
    assert_eq!(again.len(), 4);
    for (m, (uuid, _)) in &first {
        assert_eq!(&again[m].0, uuid, "{m} was rewritten");
    }

    // Another allowed subnet: the drop and the own-CIDR allow keep their rows.
    spec.allow_subnets = vec!["10.130.3.0/24".into()];
    nb::ensure_switch(&client, &plan(&spec)).await.unwrap();
    let changed = acls(&client.replica());
    assert_eq!(changed.len(), 4, "{changed:?}");
    assert_eq!(changed["ip"].0, first["ip"].0);
    assert!(changed.keys().any(|m| m.contains("10.130.3.0/24")));
    assert!(!changed.keys().any(|m| m.contains("10.130.2.0/24")));

    // Not private any more, one ACL of the user's: only it remains of ours.
    spec.private = false;
    spec.acls = vec![SubnetAcl {
        direction: "to-lport".into(),
        priority: 1010,
        match_: "ip4.src == 10.130.3.0/24 && icmp4".into(),
        action: "drop".into(),
    }];
    nb::ensure_switch(&client, &plan(&spec)).await.unwrap();
    let user = acls(&client.replica());
    assert_eq!(
        user.keys().map(String::as_str).collect::<Vec<_>>(),
        ["ip4.src == 10.130.3.0/24 && icmp4", "udp.dst == 9"]
    );
    assert_eq!(
        client.replica().list::<Acl>().unwrap().len(),
        2,
        "removed ACL rows are gone from the table, not only from the switch"
    );

    nb::delete_switch(&client, SUBNET, None).await.unwrap();
    assert!(
        client.replica().list::<Acl>().unwrap().is_empty(),
        "the ACLs go with the switch"
    );
}
