//! Attachment QoS rows against a real OVN Northbound ovsdb-server: created, updated in place,
//! removed, idempotent, moved with the port, deleted with the port, and only ours touched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use controller::nb::qos::QOS_PRIORITY;
use controller::nb::{self, Limit, Nb, PortPlan, PortSecurity, QosPlan, SwitchPlan};
use ovn_api::tables::nb::{LogicalSwitch, Qos};
use ovn_api::testing::{OvsdbServer, SchemaKind};

const PORT: &str = "qos-pod.default.net.default.ovn";

fn switch(name: &str) -> SwitchPlan {
    SwitchPlan {
        subnet: name.into(),
        vpc: None,
        gateways: vec!["10.100.0.1/16".parse().unwrap()],
        acls: Vec::new(),
    }
}

fn port(switch: &str) -> PortPlan {
    PortPlan {
        name: PORT.into(),
        switch: switch.into(),
        mac: "00:00:00:12:34:56".into(),
        ips: vec!["10.100.0.2".parse().unwrap()],
        port_security: PortSecurity::Addresses,
        external_ids: nb::owned_ids(&[("pod", "default/qos-pod")]),
        dhcp: (None, None),
        security_groups: Vec::new(),
        policy_groups: Vec::new(),
    }
}

fn qos(switch: &str, egress: Limit, ingress: Limit) -> QosPlan {
    QosPlan {
        port: PORT.into(),
        switch: switch.into(),
        egress,
        ingress,
        external_ids: nb::owned_ids(&[
            ("pod", "default/qos-pod"),
            ("provider", "net.default.ovn"),
            ("ls", switch),
        ]),
    }
}

/// Our rows as (direction, match, rate, burst, switch that references it), sorted.
fn ours(client: &Nb) -> Vec<(String, String, i64, i64, String)> {
    let r = client.replica();
    let switches = r.list::<LogicalSwitch>().unwrap();
    let mut rows: Vec<_> = r
        .list::<Qos>()
        .unwrap()
        .into_iter()
        .filter(|q| q.external_ids.get("vendor").map(String::as_str) == Some("kube-ovn"))
        .map(|q| {
            assert_eq!(q.priority, QOS_PRIORITY);
            assert_eq!(q.external_ids["pod"], "default/qos-pod");
            assert_eq!(q.external_ids["provider"], "net.default.ovn");
            let owner = switches
                .iter()
                .find(|s| s.qos_rules.contains(&q.uuid))
                .map(|s| s.name.clone())
                .unwrap_or_default();
            (
                q.direction,
                q.match_,
                q.bandwidth["rate"],
                q.bandwidth["burst"],
                owner,
            )
        })
        .collect();
    rows.sort();
    rows
}

fn row(dir: &str, kbps: i64, ls: &str) -> (String, String, i64, i64, String) {
    let m = if dir == "from-lport" {
        format!("inport == \"{PORT}\"")
    } else {
        format!("outport == \"{PORT}\"")
    };
    (dir.into(), m, kbps, kbps, ls.into())
}

fn uuids(client: &Nb) -> Vec<ovn_api::value::Uuid> {
    let mut u: Vec<_> = client
        .replica()
        .list::<Qos>()
        .unwrap()
        .into_iter()
        .map(|q| q.uuid)
        .collect();
    u.sort();
    u
}

#[tokio::test]
async fn qos_rows_follow_the_plan_and_leave_other_rows_alone() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();
    nb::ensure_switch(&client, &switch("s1")).await.unwrap();
    nb::ensure_switch(&client, &switch("s2")).await.unwrap();
    nb::ensure_port(&client, &port("s1")).await.unwrap();
    // Someone else's row on the same switch and for the same port: never touched.
    server
        .nbctl(&[
            "qos-add",
            "s1",
            "from-lport",
            "100",
            &format!("inport == \"{PORT}\""),
            "rate=5000",
        ])
        .unwrap();
    let theirs = || server.nbctl(&["qos-list", "s1"]).unwrap();
    assert!(theirs().contains("rate=5000"), "{}", theirs());

    // Created: the seed's 1000 Mbit/s both ways.
    let seed = qos("s1", Limit::Kbps(1_000_000), Limit::Kbps(1_000_000));
    nb::ensure_qos(&client, &seed).await.unwrap();
    assert_eq!(
        ours(&client),
        [
            row("from-lport", 1_000_000, "s1"),
            row("to-lport", 1_000_000, "s1")
        ]
    );
    // Idempotent: nothing is rewritten (same rows, same UUIDs).
    let before = uuids(&client);
    nb::ensure_qos(&client, &seed).await.unwrap();
    assert_eq!(uuids(&client), before);

    // Updated in place; a lifted limit removes its row; Unchanged leaves a row as it is.
    nb::ensure_qos(&client, &qos("s1", Limit::Kbps(10_000), Limit::Unlimited))
        .await
        .unwrap();
    assert_eq!(ours(&client), [row("from-lport", 10_000, "s1")]);
    assert!(
        before.iter().any(|u| uuids(&client).contains(u)),
        "updated in place"
    );
    nb::ensure_qos(&client, &qos("s1", Limit::Unchanged, Limit::Kbps(20_000)))
        .await
        .unwrap();
    assert_eq!(
        ours(&client),
        [
            row("from-lport", 10_000, "s1"),
            row("to-lport", 20_000, "s1")
        ]
    );
    nb::ensure_qos(&client, &qos("s1", Limit::Unchanged, Limit::Unchanged))
        .await
        .unwrap();
    assert_eq!(ours(&client).len(), 2);

    // The port moves to s2: its limits follow it.
    nb::ensure_port(&client, &port("s2")).await.unwrap();
    nb::ensure_qos(
        &client,
        &qos("s2", Limit::Kbps(10_000), Limit::Kbps(20_000)),
    )
    .await
    .unwrap();
    assert_eq!(
        ours(&client),
        [
            row("from-lport", 10_000, "s2"),
            row("to-lport", 20_000, "s2")
        ]
    );

    // ovn-northd's view: the rows are valid NB QoS rows with meters (rate and burst).
    let listed = server.nbctl(&["qos-list", "s2"]).unwrap();
    assert!(
        listed.contains("from-lport  2001 (inport == \"qos-pod.default.net.default.ovn\") rate=10000 burst=10000"),
        "{listed}"
    );

    // Deleting the port deletes its rows (same transaction); theirs stays.
    assert!(nb::delete_port(&client, PORT).await.unwrap());
    assert_eq!(ours(&client), []);
    assert!(theirs().contains("rate=5000"), "{}", theirs());
    assert_eq!(nb::delete_qos(&client, PORT).await.unwrap(), 0);
}

#[tokio::test]
async fn orphaned_rows_are_found_and_deleted_alone() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();
    nb::ensure_switch(&client, &switch("s1")).await.unwrap();
    nb::ensure_port(&client, &port("s1")).await.unwrap();
    nb::ensure_qos(&client, &qos("s1", Limit::Kbps(1_000), Limit::Kbps(2_000)))
        .await
        .unwrap();
    assert!(nb::qos::orphaned_qos_ports(&client).is_empty());
    // The port removed behind our back (as an older controller would): the rows stay orphaned.
    server.nbctl(&["lsp-del", PORT]).unwrap();
    client
        .wait_until(std::time::Duration::from_secs(10), |r| {
            r.one_by_name::<ovn_api::tables::nb::LogicalSwitchPort>(PORT)
                .is_ok_and(|p| p.is_none())
        })
        .await
        .unwrap();
    assert_eq!(nb::qos::orphaned_qos_ports(&client), [PORT]);
    assert_eq!(nb::delete_qos(&client, PORT).await.unwrap(), 2);
    assert!(ours(&client).is_empty());
    assert_eq!(server.nbctl(&["qos-list", "s1"]).unwrap().trim(), "");
    // A switch that does not exist is a clear error.
    let err = nb::ensure_qos(&client, &qos("nope", Limit::Kbps(1), Limit::Unlimited))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("logical switch nope"), "{err}");
}
