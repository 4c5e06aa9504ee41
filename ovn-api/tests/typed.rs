//! Typed tables against real servers: a CRUD round trip per table, the typed transaction
//! builder, replica read helpers, and schema checks at connect time.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

use ovn_api::tables::{Table, nb, sb, set_raw, vswitch};
use ovn_api::testing::{OvsdbServer, SchemaKind};
use ovn_api::txn::{NamedUuid, Txn};
use ovn_api::value::{Atom, Datum, Uuid};
use ovn_api::{Client, ClientConfig, Error};

fn ids(k: &str, v: &str) -> BTreeMap<String, String> {
    [(k.to_string(), v.to_string())].into()
}

/// Insert (with `link` adding a reference from a parent for non-root tables), read back from
/// the replica, update, and delete (with `unlink`), checking the replica at each step.
async fn round_trip<T: Table + Clone + PartialEq + Debug>(
    c: &Client,
    row: T,
    link: impl FnOnce(&mut Txn, &NamedUuid),
    unlink: impl FnOnce(&mut Txn, Uuid),
    map_column: &str,
) {
    let mut tx = Txn::new();
    let n = tx.insert(&row);
    link(&mut tx, &n);
    let done = c
        .commit(tx)
        .await
        .unwrap_or_else(|e| panic!("{}: insert: {e}", T::TABLE));
    let uuid = done.uuid(&n).unwrap();
    let mut want = row.clone();
    let got: T = c
        .replica()
        .get(uuid)
        .unwrap()
        .unwrap_or_else(|| panic!("{}: not in replica", T::TABLE));
    // Compare everything but the uuid, then the uuid.
    assert_eq!(got.uuid(), uuid);
    let got_cols = got.to_columns();
    let want_cols = want.to_columns();
    // Every column written reads back the same (`link` may have set more, e.g. refs).
    for (k, v) in &want_cols {
        assert_eq!(got_cols.get(k), Some(v), "{}.{k}", T::TABLE);
    }
    want = got;

    let mut tx = Txn::new();
    tx.update::<T>(
        uuid,
        [set_raw(
            map_column,
            Datum::map([(Atom::from("test"), Atom::from("yes"))]),
        )],
    );
    c.commit(tx)
        .await
        .unwrap_or_else(|e| panic!("{}: update: {e}", T::TABLE));
    {
        let rep = c.replica();
        let r = rep.table(T::TABLE).unwrap().get(&uuid).unwrap();
        assert_eq!(
            r.get(map_column)
                .unwrap()
                .map_get("test")
                .and_then(Atom::as_str),
            Some("yes"),
            "{}",
            T::TABLE
        );
        assert_ne!(T::from_row(r).unwrap(), want);
    }

    let mut tx = Txn::new();
    unlink(&mut tx, uuid);
    c.commit(tx)
        .await
        .unwrap_or_else(|e| panic!("{}: delete: {e}", T::TABLE));
    assert!(
        c.replica().get::<T>(uuid).unwrap().is_none(),
        "{}: still there",
        T::TABLE
    );
}

fn delete<T: Table>(tx: &mut Txn, u: Uuid) {
    tx.delete::<T>(u);
}

#[tokio::test]
async fn northbound_crud_round_trips() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let c = Client::connect(ClientConfig::northbound(server.remote()))
        .await
        .unwrap();

    // Roots.
    round_trip(
        &c,
        nb::LogicalSwitch {
            name: "ls".into(),
            external_ids: ids("vendor", "kube-ovn"),
            ..Default::default()
        },
        |_, _| {},
        delete::<nb::LogicalSwitch>,
        "other_config",
    )
    .await;
    round_trip(
        &c,
        nb::LogicalRouter {
            name: "lr".into(),
            ..Default::default()
        },
        |_, _| {},
        delete::<nb::LogicalRouter>,
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::AddressSet {
            name: "as".into(),
            addresses: vec!["10.0.0.1".into(), "10.0.0.2".into()],
            ..Default::default()
        },
        |_, _| {},
        delete::<nb::AddressSet>,
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::PortGroup {
            name: "pg".into(),
            ..Default::default()
        },
        |_, _| {},
        delete::<nb::PortGroup>,
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::DhcpOptions {
            cidr: "10.0.0.0/24".into(),
            options: ids("router", "10.0.0.1"),
            ..Default::default()
        },
        |_, _| {},
        delete::<nb::DhcpOptions>,
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::NbGlobal {
            name: "global".into(),
            ..Default::default()
        },
        |_, _| {},
        delete::<nb::NbGlobal>,
        "external_ids",
    )
    .await;

    // Parents for non-root rows.
    let mut tx = Txn::new();
    let ls = tx.insert(&nb::LogicalSwitch {
        name: "parent".into(),
        ..Default::default()
    });
    let lr = tx.insert(&nb::LogicalRouter {
        name: "parent".into(),
        ..Default::default()
    });
    let done = c.commit(tx).await.unwrap();
    let (ls, lr) = (done.uuid(&ls).unwrap(), done.uuid(&lr).unwrap());

    round_trip(
        &c,
        nb::LogicalSwitchPort {
            name: "p1".into(),
            addresses: vec!["0a:00:00:00:00:01 10.0.0.2".into()],
            tag_request: Some(0),
            enabled: Some(true),
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(ls, [nb::LogicalSwitch::PORTS.insert(n)]);
        },
        |tx, u| {
            tx.mutate(ls, [nb::LogicalSwitch::PORTS.delete(u)]);
        },
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::Acl {
            priority: 1000,
            direction: "to-lport".into(),
            match_: "ip4".into(),
            action: "allow-related".into(),
            severity: Some("info".into()),
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(ls, [nb::LogicalSwitch::ACLS.insert(n)]);
        },
        |tx, u| {
            tx.mutate(ls, [nb::LogicalSwitch::ACLS.delete(u)]);
        },
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::Qos {
            priority: 200,
            direction: "from-lport".into(),
            match_: "inport == \"p1\"".into(),
            bandwidth: [("rate".to_string(), 10000), ("burst".to_string(), 10000)].into(),
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(ls, [nb::LogicalSwitch::QOS_RULES.insert(n)]);
        },
        |tx, u| {
            tx.mutate(ls, [nb::LogicalSwitch::QOS_RULES.delete(u)]);
        },
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::LogicalRouterPort {
            name: "lr-ls".into(),
            mac: "0a:00:00:00:ff:01".into(),
            networks: vec!["10.0.0.1/24".into()],
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(lr, [nb::LogicalRouter::PORTS.insert(n)]);
        },
        |tx, u| {
            tx.mutate(lr, [nb::LogicalRouter::PORTS.delete(u)]);
        },
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::LogicalRouterStaticRoute {
            ip_prefix: "0.0.0.0/0".into(),
            nexthop: "10.0.0.254".into(),
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(lr, [nb::LogicalRouter::STATIC_ROUTES.insert(n)]);
        },
        |tx, u| {
            tx.mutate(lr, [nb::LogicalRouter::STATIC_ROUTES.delete(u)]);
        },
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::LogicalRouterPolicy {
            priority: 100,
            match_: "ip4.src == 10.0.0.0/24".into(),
            action: "reroute".into(),
            nexthops: vec!["10.0.0.253".into()],
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(lr, [nb::LogicalRouter::POLICIES.insert(n)]);
        },
        |tx, u| {
            tx.mutate(lr, [nb::LogicalRouter::POLICIES.delete(u)]);
        },
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        nb::Nat {
            type_: "snat".into(),
            external_ip: "192.168.100.10".into(),
            logical_ip: "10.0.0.0/24".into(),
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(lr, [nb::LogicalRouter::NAT.insert(n)]);
        },
        |tx, u| {
            tx.mutate(lr, [nb::LogicalRouter::NAT.delete(u)]);
        },
        "external_ids",
    )
    .await;
}

#[tokio::test]
async fn southbound_crud_round_trips() {
    let server = OvsdbServer::start(SchemaKind::Southbound).unwrap();
    let c = Client::connect(
        ClientConfig::southbound(server.remote()).monitor_table("Datapath_Binding"),
    )
    .await
    .unwrap();
    let r = c
        .transact(vec![ovn_api::protocol::Operation::Insert {
            table: "Datapath_Binding".into(),
            row: [("tunnel_key".to_string(), Datum::scalar(1))].into(),
            uuid_name: None,
        }])
        .await
        .unwrap();
    let dp = r[0].uuid().unwrap();
    round_trip(
        &c,
        sb::PortBinding {
            logical_port: "p1".into(),
            datapath: dp,
            tunnel_key: 1,
            mac: vec!["0a:00:00:00:00:01 10.0.0.2".into()],
            ..Default::default()
        },
        |_, _| {},
        delete::<sb::PortBinding>,
        "external_ids",
    )
    .await;

    // Chassis needs at least one Encap (non-root, strongly referenced).
    let mut tx = Txn::new();
    let encap = tx.insert(&sb::Encap {
        type_: "geneve".into(),
        ip: "172.30.0.1".into(),
        chassis_name: "node1".into(),
        ..Default::default()
    });
    let ch = tx.insert_with(
        &sb::Chassis {
            name: "node1".into(),
            hostname: "node1".into(),
            ..Default::default()
        },
        [sb::Chassis::ENCAPS.set(&encap)],
    );
    let done = c.commit(tx).await.unwrap();
    let (encap, ch) = (done.uuid(&encap).unwrap(), done.uuid(&ch).unwrap());
    let got: sb::Chassis = c.replica().get(ch).unwrap().unwrap();
    assert_eq!(got.encaps, vec![encap]);
    assert_eq!(
        c.replica().get::<sb::Encap>(encap).unwrap().unwrap().ip,
        "172.30.0.1"
    );
    round_trip(
        &c,
        sb::Encap {
            type_: "vxlan".into(),
            ip: "172.30.0.1".into(),
            chassis_name: "node1".into(),
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(ch, [sb::Chassis::ENCAPS.insert(n)]);
        },
        |tx, u| {
            tx.mutate(ch, [sb::Chassis::ENCAPS.delete(u)]);
        },
        "options",
    )
    .await;
    // Deleting the chassis collects its encaps.
    let mut tx = Txn::new();
    tx.delete::<sb::Chassis>(ch);
    c.commit(tx).await.unwrap();
    assert!(c.replica().table("Encap").unwrap().is_empty());
}

#[tokio::test]
async fn open_vswitch_crud_round_trips() {
    let server = OvsdbServer::start(SchemaKind::OpenVswitch).unwrap();
    let c = Client::connect(ClientConfig::open_vswitch(server.remote()))
        .await
        .unwrap();
    // At most one Open_vSwitch row: round-trip it before creating the one the rest hangs off.
    round_trip(
        &c,
        vswitch::OpenVswitch {
            external_ids: ids("system-id", "node1"),
            ..Default::default()
        },
        |_, _| {},
        delete::<vswitch::OpenVswitch>,
        "other_config",
    )
    .await;
    let mut tx = Txn::new();
    let root = tx.insert(&vswitch::OpenVswitch::default());
    let root = c.commit(tx).await.unwrap().uuid(&root).unwrap();
    round_trip(
        &c,
        vswitch::Queue {
            other_config: ids("max-rate", "20000000"),
            ..Default::default()
        },
        |_, _| {},
        delete::<vswitch::Queue>,
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        vswitch::Qos {
            type_: "linux-htb".into(),
            ..Default::default()
        },
        |_, _| {},
        delete::<vswitch::Qos>,
        "external_ids",
    )
    .await;

    // br-int with one port and interface, built in one transaction with named refs.
    let mut tx = Txn::new();
    let iface = tx.insert(&vswitch::Interface {
        name: "br-int".into(),
        type_: "internal".into(),
        ..Default::default()
    });
    let port = tx.insert_with(
        &vswitch::Port {
            name: "br-int".into(),
            ..Default::default()
        },
        [vswitch::Port::INTERFACES.set(&iface)],
    );
    let br = tx.insert_with(
        &vswitch::Bridge {
            name: "br-int".into(),
            datapath_type: "netdev".into(),
            fail_mode: Some("secure".into()),
            ..Default::default()
        },
        [vswitch::Bridge::PORTS.set(&port)],
    );
    tx.mutate(root, [vswitch::OpenVswitch::BRIDGES.insert(&br)]);
    let done = c.commit(tx).await.unwrap();
    let br = done.uuid(&br).unwrap();
    let bridge = c
        .replica()
        .one_by_name::<vswitch::Bridge>("br-int")
        .unwrap()
        .unwrap();
    assert_eq!(bridge.uuid, br);
    assert_eq!(bridge.fail_mode.as_deref(), Some("secure"));

    round_trip(
        &c,
        vswitch::Port {
            name: "veth1".into(),
            ..Default::default()
        },
        |tx, n| {
            let i = tx.insert(&vswitch::Interface {
                name: "veth1".into(),
                external_ids: ids("iface-id", "pod1.ns.ovn"),
                ..Default::default()
            });
            tx.mutate(br, [vswitch::Bridge::PORTS.insert(n)]);
            // Port.interfaces needs at least one element; constraints are checked at commit,
            // so setting it later in the same transaction is fine.
            tx.op(ovn_api::protocol::Operation::Update {
                table: "Port".into(),
                conditions: vec![ovn_api::protocol::Condition::eq(
                    "name",
                    Datum::scalar("veth1"),
                )],
                row: [("interfaces".to_string(), Datum::from(&i))].into(),
            });
        },
        |tx, u| {
            tx.mutate(br, [vswitch::Bridge::PORTS.delete(u)]);
        },
        "external_ids",
    )
    .await;
    assert!(
        c.replica()
            .by_name::<vswitch::Interface>("veth1")
            .unwrap()
            .is_empty(),
        "interface collected with its port"
    );
    let iface = c
        .replica()
        .by_external_id::<vswitch::Interface>("iface-id", "pod1.ns.ovn")
        .unwrap();
    assert!(iface.is_empty());

    round_trip(
        &c,
        vswitch::Interface {
            name: "veth2".into(),
            ..Default::default()
        },
        |tx, n| {
            let p = tx.insert_with(
                &vswitch::Port {
                    name: "veth2".into(),
                    ..Default::default()
                },
                [vswitch::Port::INTERFACES.set(n)],
            );
            tx.mutate(br, [vswitch::Bridge::PORTS.insert(&p)]);
        },
        |tx, _| {
            let port = c
                .replica()
                .one_by_name::<vswitch::Port>("veth2")
                .unwrap()
                .unwrap();
            tx.mutate(br, [vswitch::Bridge::PORTS.delete(port.uuid)]);
        },
        "external_ids",
    )
    .await;
    round_trip(
        &c,
        vswitch::Bridge {
            name: "br-x".into(),
            ..Default::default()
        },
        |tx, n| {
            tx.mutate(root, [vswitch::OpenVswitch::BRIDGES.insert(n)]);
        },
        |tx, u| {
            tx.mutate(root, [vswitch::OpenVswitch::BRIDGES.delete(u)]);
        },
        "external_ids",
    )
    .await;
}

#[tokio::test]
async fn typed_where_and_update_row() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let c = Client::connect(ClientConfig::northbound(server.remote()))
        .await
        .unwrap();
    let mut tx = Txn::new();
    for i in 0..3 {
        tx.insert(&nb::LogicalSwitch {
            name: format!("ls{i}"),
            external_ids: ids("vendor", if i < 2 { "kube-ovn" } else { "other" }),
            ..Default::default()
        });
    }
    c.commit(tx).await.unwrap();
    assert_eq!(
        c.replica()
            .by_external_id::<nb::LogicalSwitch>("vendor", "kube-ovn")
            .unwrap()
            .len(),
        2
    );

    // delete where external_ids includes vendor=kube-ovn
    let mut tx = Txn::new();
    tx.delete(nb::LogicalSwitch::EXTERNAL_IDS.includes([("vendor", "kube-ovn")]));
    let r = c.commit(tx).await.unwrap();
    assert_eq!(r.results[0].count(), Some(2));
    let mut left = c.replica().list::<nb::LogicalSwitch>().unwrap();
    assert_eq!(left.len(), 1);

    // update_row writes every column, including clearing a map
    let mut ls = left.remove(0);
    ls.external_ids.clear();
    ls.other_config = ids("subnet", "10.0.0.0/24");
    let mut tx = Txn::new();
    tx.update_row(&ls);
    c.commit(tx).await.unwrap();
    assert_eq!(
        c.replica()
            .get::<nb::LogicalSwitch>(ls.uuid)
            .unwrap()
            .unwrap(),
        ls
    );

    // name condition
    let mut tx = Txn::new();
    tx.update(
        nb::LogicalSwitch::NAME.eq("ls2"),
        [nb::LogicalSwitch::NAME.to(&"renamed".to_string())],
    );
    assert_eq!(c.commit(tx).await.unwrap().results[0].count(), Some(1));
    assert_eq!(
        c.replica()
            .one_by_name::<nb::LogicalSwitch>("renamed")
            .unwrap()
            .unwrap()
            .uuid,
        ls.uuid
    );
}

#[tokio::test]
async fn missing_column_in_live_schema_is_a_clear_error() {
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SchemaKind::Northbound.path()).unwrap())
            .unwrap();
    s["tables"]["Logical_Switch_Port"]["columns"]
        .as_object_mut()
        .unwrap()
        .remove("tag_request");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.ovsschema");
    std::fs::write(&path, s.to_string()).unwrap();
    let server = OvsdbServer::start_from_file(&path, None).unwrap();
    let e = Client::connect(ClientConfig::northbound(server.remote()))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::SchemaMismatch { .. }), "{msg}");
    assert!(
        msg.contains("Logical_Switch_Port") && msg.contains("tag_request"),
        "{msg}"
    );

    // and a database without the table at all
    let sb = OvsdbServer::start(SchemaKind::Southbound).unwrap();
    let e = Client::connect(
        ClientConfig::new(sb.remote(), "OVN_Southbound").typed::<nb::LogicalSwitch>(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("OVN_Northbound"), "{e}");
    let _ = Path::new("");
}

/// The server comes back with a schema lacking a modelled column: the client stops (no silent
/// drop of the column) and calls fail at once with an error naming it, instead of retrying.
#[tokio::test]
async fn schema_that_loses_a_column_on_reconnect_stops_the_client() {
    let mut server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let mut cfg = ClientConfig::northbound(server.remote());
    cfg.backoff_min = std::time::Duration::from_millis(20);
    let c = Client::connect(cfg).await.unwrap();
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SchemaKind::Northbound.path()).unwrap())
            .unwrap();
    s["tables"]["ACL"]["columns"]
        .as_object_mut()
        .unwrap()
        .remove("label");
    let path = server.dir().join("doctored.ovsschema");
    std::fs::write(&path, s.to_string()).unwrap();
    server.kill();
    let out = std::process::Command::new("ovsdb-tool")
        .arg("convert")
        .arg(server.dir().join("conf.db"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.restart().unwrap();
    // A write waits for the next session; the supervisor sees the new schema and stops, and
    // the write fails with the reason (a write already in flight on the old connection may
    // fail as disconnected first).
    let mut transient = Vec::new();
    let e = loop {
        let mut tx = Txn::new();
        tx.insert(&nb::LogicalSwitch {
            name: "x".into(),
            ..Default::default()
        });
        match c.commit(tx).await {
            Err(e) if !e.is_transient() => break e,
            other => {
                transient.push(format!("{other:?}"));
                assert!(transient.len() < 5, "{transient:?}");
            }
        }
    };
    let msg = e.to_string();
    assert!(matches!(e, Error::Closed { .. }), "{msg}");
    assert!(msg.contains("ACL") && msg.contains("label"), "{msg}");
}

/// A transaction planned on a row that is gone by the time it is sent (a replica of an earlier
/// session, a row deleted meanwhile) fails as a whole: inserting a port and adding it to a
/// switch that no longer exists does not "succeed" with nothing done.
#[tokio::test]
async fn a_change_to_a_row_that_is_gone_fails_the_whole_transaction() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let c = Client::connect(ClientConfig::northbound(server.remote()))
        .await
        .unwrap();
    let mut tx = Txn::new();
    let ls = tx.insert(&nb::LogicalSwitch {
        name: "gone".into(),
        ..Default::default()
    });
    let ls = c.commit(tx).await.unwrap().uuid(&ls).unwrap();
    let mut tx = Txn::new();
    tx.delete::<nb::LogicalSwitch>(ls);
    c.commit(tx).await.unwrap();

    let mut tx = Txn::new();
    let port = tx.insert(&nb::LogicalSwitchPort {
        name: "p1".into(),
        ..Default::default()
    });
    tx.mutate(ls, [nb::LogicalSwitch::PORTS.insert(port)]);
    let err = c.commit(tx).await.unwrap_err();
    assert!(err.to_string().contains("no longer exists"), "{err}");
    // Nothing of it was committed; a change to a row that exists passes its guard.
    assert!(
        c.replica()
            .list::<nb::LogicalSwitchPort>()
            .unwrap()
            .is_empty()
    );
    let mut tx = Txn::new();
    let ls = tx.insert(&nb::LogicalSwitch {
        name: "here".into(),
        ..Default::default()
    });
    let ls = c.commit(tx).await.unwrap().uuid(&ls).unwrap();
    let mut tx = Txn::new();
    let port = tx.insert(&nb::LogicalSwitchPort {
        name: "p2".into(),
        ..Default::default()
    });
    tx.mutate(ls, [nb::LogicalSwitch::PORTS.insert(port.clone())]);
    tx.mutate(ls, [nb::LogicalSwitch::PORTS.insert(port.clone())]);
    let done = c.commit(tx).await.unwrap();
    assert!(done.uuid(&port).is_some());
    assert_eq!(
        c.replica().list::<nb::LogicalSwitchPort>().unwrap().len(),
        1
    );
}
