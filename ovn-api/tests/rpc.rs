//! The rpc client against a real ovsdb-server: transactions, monitor, reconnect.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::collections::BTreeMap;
use std::time::Duration;

use ovn_api::protocol::{Condition, Mutation, OpResult, Operation};
use ovn_api::testing::{OvsdbServer, SchemaKind};
use ovn_api::value::{Atom, Datum};
use ovn_api::{Client, ClientConfig, Error};

const T: Duration = Duration::from_secs(10);

fn row(pairs: &[(&str, Datum)]) -> BTreeMap<String, Datum> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

async fn nb(server: &OvsdbServer) -> Client {
    Client::connect(
        ClientConfig::new(server.remote(), "OVN_Northbound")
            .monitor_table("Logical_Switch")
            .monitor_table("Logical_Switch_Port"),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn insert_with_named_uuid_then_monitor_sees_it() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let c = nb(&server).await;
    let r = c
        .transact(vec![
            Operation::Insert {
                table: "Logical_Switch_Port".into(),
                row: row(&[("name", Datum::scalar("p1"))]),
                uuid_name: Some("p1".into()),
            },
            Operation::Insert {
                table: "Logical_Switch".into(),
                row: row(&[
                    ("name", Datum::scalar("ls1")),
                    ("ports", Datum::scalar(Atom::NamedUuid("p1".into()))),
                ]),
                uuid_name: None,
            },
            Operation::Comment("test".into()),
        ])
        .await
        .unwrap();
    let ls = r[1].uuid().unwrap();
    let p1 = r[0].uuid().unwrap();
    // Read-your-writes: the replica has the rows when transact returns.
    let rep = c.replica();
    let t = rep.table("Logical_Switch").unwrap();
    let got = t.get(&ls).unwrap();
    assert_eq!(got.name(), Some("ls1"));
    assert_eq!(got.get("ports").unwrap().as_set(), &[Atom::Uuid(p1)]);
    assert_eq!(
        rep.table("Logical_Switch_Port")
            .unwrap()
            .by_name("p1")
            .count(),
        1
    );
}

#[tokio::test]
async fn all_operations() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let c = nb(&server).await;
    let ins = c
        .transact(vec![Operation::Insert {
            table: "Logical_Switch".into(),
            row: row(&[("name", Datum::scalar("a"))]),
            uuid_name: None,
        }])
        .await
        .unwrap();
    let a = ins[0].uuid().unwrap();
    let ops = vec![
        Operation::Update {
            table: "Logical_Switch".into(),
            conditions: vec![Condition::uuid(a)],
            row: row(&[(
                "external_ids",
                Datum::map([(Atom::from("k"), Atom::from("v"))]),
            )]),
        },
        Operation::Mutate {
            table: "Logical_Switch".into(),
            conditions: vec![Condition::eq("name", Datum::scalar("a"))],
            mutations: vec![Mutation::insert(
                "other_config",
                Datum::map([(Atom::from("x"), Atom::from("y"))]),
            )],
        },
        Operation::Select {
            table: "Logical_Switch".into(),
            conditions: vec![Condition::uuid(a)],
            columns: Some(vec!["name".into(), "external_ids".into()]),
        },
        Operation::Wait {
            table: "Logical_Switch".into(),
            conditions: vec![Condition::uuid(a)],
            columns: vec!["name".into()],
            until: "==".into(),
            rows: vec![row(&[("name", Datum::scalar("a"))])],
            timeout_ms: Some(0),
        },
        Operation::Commit { durable: false },
    ];
    let r = c.transact(ops).await.unwrap();
    assert_eq!(r[0], OpResult::Count(1));
    assert_eq!(r[1], OpResult::Count(1));
    let OpResult::Rows(rows) = &r[2] else {
        panic!("{:?}", r[2])
    };
    assert_eq!(rows[0]["name"], "a");
    assert_eq!(r[3], OpResult::Empty);

    // wait that fails at once names the table and the op
    let e = c
        .transact(vec![Operation::Wait {
            table: "Logical_Switch".into(),
            conditions: vec![Condition::uuid(a)],
            columns: vec!["name".into()],
            until: "==".into(),
            rows: vec![row(&[("name", Datum::scalar("other"))])],
            timeout_ms: Some(0),
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Operation { op, table, error, .. } if *op == "wait" && table == "Logical_Switch" && error == "timed out"),
        "{e}"
    );

    let e = c.transact(vec![Operation::Abort]).await.unwrap_err();
    assert!(
        matches!(&e, Error::Operation { op, error, .. } if *op == "abort" && error == "aborted"),
        "{e}"
    );

    let e = c
        .transact(vec![Operation::Assert {
            lock: "nolock".into(),
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Operation { op, error, .. } if *op == "assert" && error == "not owner"),
        "{e}"
    );

    let r = c
        .transact(vec![Operation::Delete {
            table: "Logical_Switch".into(),
            conditions: vec![Condition::uuid(a)],
        }])
        .await
        .unwrap();
    assert_eq!(r[0], OpResult::Count(1));
    assert!(c.replica().table("Logical_Switch").unwrap().is_empty());
}

#[tokio::test]
async fn constraint_violations_are_caught_before_sending() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let c = nb(&server).await;
    let insert = |table: &str, cols: &[(&str, Datum)]| Operation::Insert {
        table: table.into(),
        row: row(cols),
        uuid_name: None,
    };
    let cases = [
        (
            insert(
                "Logical_Switch_Port",
                &[
                    ("name", Datum::scalar("p")),
                    ("tag_request", Datum::scalar(5000)),
                ],
            ),
            "tag_request",
            "above the maximum 4095",
        ),
        (
            insert("ACL", &[("action", Datum::scalar("permit"))]),
            "action",
            "not one of",
        ),
        (
            insert("ACL", &[("priority", Datum::scalar("high"))]),
            "priority",
            "is not of type integer",
        ),
        (
            insert("Logical_Switch", &[("nope", Datum::scalar(1))]),
            "nope",
            "no such column",
        ),
        (
            insert(
                "Logical_Switch_Port",
                &[("tag", Datum::set([Atom::from(1), Atom::from(2)]))],
            ),
            "tag",
            "at most 1 allowed",
        ),
        (
            insert("Logical_Switch_Port", &[("name", Datum::default())]),
            "name",
            "at least 1 required",
        ),
        (
            Operation::Mutate {
                table: "Logical_Switch".into(),
                conditions: vec![],
                mutations: vec![Mutation::insert("ports", Datum::scalar("not-a-uuid"))],
            },
            "ports",
            "is not of type uuid",
        ),
    ];
    for (op, column, reason) in cases {
        let e = c.transact(vec![op]).await.unwrap_err();
        let s = e.to_string();
        assert!(
            matches!(&e, Error::Invalid { column: col, .. } if col == column),
            "{s}"
        );
        assert!(s.contains(reason), "{s}");
    }
    let e = c
        .transact(vec![Operation::Insert {
            table: "Nope".into(),
            row: row(&[]),
            uuid_name: None,
        }])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Nope"), "{e}");
}

#[tokio::test]
async fn constraint_violations_name_table_op_and_details() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    // Without client-side validation, the server's own errors come through.
    let mut cfg = ClientConfig::new(server.remote(), "OVN_Northbound")
        .monitor_table("Logical_Switch")
        .monitor_table("Logical_Switch_Port");
    cfg.validate = false;
    let c = Client::connect(cfg).await.unwrap();
    // tag_request must be 0..4095
    let e = c
        .transact(vec![Operation::Insert {
            table: "Logical_Switch_Port".into(),
            row: row(&[
                ("name", Datum::scalar("p")),
                ("tag_request", Datum::scalar(5000)),
            ]),
            uuid_name: None,
        }])
        .await
        .unwrap_err();
    let s = e.to_string();
    assert!(
        matches!(&e, Error::Operation { table, op, error, .. } if table == "Logical_Switch_Port" && *op == "insert" && error == "constraint violation"),
        "{s}"
    );
    assert!(s.contains("5000"), "details carried: {s}");
    // unknown column
    let e = c
        .transact(vec![Operation::Insert {
            table: "Logical_Switch".into(),
            row: row(&[("nope", Datum::scalar(1))]),
            uuid_name: None,
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Operation { table, .. } if table == "Logical_Switch"),
        "{e}"
    );
    // referential integrity: a strong ref to a row that does not exist fails at commit
    let e = c
        .transact(vec![Operation::Insert {
            table: "Logical_Switch".into(),
            row: row(&[("ports", Datum::scalar(ovn_api::value::Uuid::from_u128(7)))]),
            uuid_name: None,
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Commit { error, .. } if error == "referential integrity violation"),
        "{e}"
    );
    // index uniqueness: two Port_Groups named the same
    let pg = || Operation::Insert {
        table: "Port_Group".into(),
        row: row(&[("name", Datum::scalar("pg"))]),
        uuid_name: None,
    };
    c.transact(vec![pg()]).await.unwrap();
    let e = c.transact(vec![pg()]).await.unwrap_err();
    assert!(
        matches!(&e, Error::Commit { error, .. } if error == "constraint violation"),
        "{e}"
    );
}

#[tokio::test]
async fn strong_and_weak_references_gc() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let c = nb(&server).await;
    // LSPs are non-root: an LSP not referenced by a switch is garbage-collected at commit.
    let r = c
        .transact(vec![Operation::Insert {
            table: "Logical_Switch_Port".into(),
            row: row(&[("name", Datum::scalar("orphan"))]),
            uuid_name: None,
        }])
        .await
        .unwrap();
    assert!(r[0].uuid().is_some());
    assert!(
        c.replica().table("Logical_Switch_Port").unwrap().is_empty(),
        "orphan LSP collected"
    );

    // Removing the strong ref from the switch collects the port.
    let r = c
        .transact(vec![
            Operation::Insert {
                table: "Logical_Switch_Port".into(),
                row: row(&[("name", Datum::scalar("p"))]),
                uuid_name: Some("p".into()),
            },
            Operation::Insert {
                table: "Logical_Switch".into(),
                row: row(&[
                    ("name", Datum::scalar("ls")),
                    ("ports", Datum::scalar(Atom::NamedUuid("p".into()))),
                ]),
                uuid_name: None,
            },
        ])
        .await
        .unwrap();
    let (p, ls) = (r[0].uuid().unwrap(), r[1].uuid().unwrap());
    assert!(
        c.replica()
            .table("Logical_Switch_Port")
            .unwrap()
            .get(&p)
            .is_some()
    );
    c.transact(vec![Operation::Mutate {
        table: "Logical_Switch".into(),
        conditions: vec![Condition::uuid(ls)],
        mutations: vec![Mutation::delete("ports", Datum::scalar(p))],
    }])
    .await
    .unwrap();
    assert!(
        c.replica()
            .table("Logical_Switch_Port")
            .unwrap()
            .get(&p)
            .is_none()
    );

    // Weak refs: Logical_Router_Port.gateway_chassis is strong, but Port_Group.ports is weak:
    // deleting the LSP removes it from the port group instead of failing.
    let r = c
        .transact(vec![
            Operation::Insert {
                table: "Logical_Switch_Port".into(),
                row: row(&[("name", Datum::scalar("w"))]),
                uuid_name: Some("w".into()),
            },
            Operation::Mutate {
                table: "Logical_Switch".into(),
                conditions: vec![Condition::uuid(ls)],
                mutations: vec![Mutation::insert(
                    "ports",
                    Datum::scalar(Atom::NamedUuid("w".into())),
                )],
            },
            Operation::Insert {
                table: "Port_Group".into(),
                row: row(&[
                    ("name", Datum::scalar("pgw")),
                    ("ports", Datum::scalar(Atom::NamedUuid("w".into()))),
                ]),
                uuid_name: None,
            },
        ])
        .await
        .unwrap();
    let (w, pg) = (r[0].uuid().unwrap(), r[2].uuid().unwrap());
    c.transact(vec![Operation::Mutate {
        table: "Logical_Switch".into(),
        conditions: vec![Condition::uuid(ls)],
        mutations: vec![Mutation::delete("ports", Datum::scalar(w))],
    }])
    .await
    .unwrap();
    let sel = c
        .transact(vec![Operation::Select {
            table: "Port_Group".into(),
            conditions: vec![Condition::uuid(pg)],
            columns: Some(vec!["ports".into()]),
        }])
        .await
        .unwrap();
    let OpResult::Rows(rows) = &sel[0] else {
        panic!()
    };
    assert_eq!(
        rows[0]["ports"],
        serde_json::json!(["set", []]),
        "weak ref dropped"
    );
}

#[tokio::test]
async fn replica_survives_server_restart_without_losing_acknowledged_writes() {
    let mut server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let mut cfg =
        ClientConfig::new(server.remote(), "OVN_Northbound").monitor_table("Logical_Switch");
    cfg.backoff_min = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(200);
    let c = Client::connect(cfg).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..60 {
        if i == 20 || i == 40 {
            server.kill();
            server.restart().unwrap();
        }
        let op = Operation::Insert {
            table: "Logical_Switch".into(),
            row: row(&[("name", Datum::scalar(format!("ls{i}")))]),
            uuid_name: None,
        };
        // Retry transient failures; only an Ok is an acknowledged write.
        for _ in 0..50 {
            match c.transact(vec![op.clone()]).await {
                Ok(r) => {
                    acked.push(r[0].uuid().unwrap());
                    break;
                }
                Err(e) if e.is_transient() => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert!(acked.len() >= 58);
    let want: std::collections::BTreeSet<_> = acked.iter().copied().collect();
    c.wait_until(T, |r| {
        let t = r.table("Logical_Switch").unwrap();
        want.iter().all(|u| t.get(u).is_some())
    })
    .await
    .unwrap();
    assert!(
        c.sessions() >= 3,
        "reconnected twice, got {} sessions",
        c.sessions()
    );
    // and the replica equals the server
    let dump = server
        .client(&[
            "-f",
            "json",
            "dump",
            &server.remote(),
            "OVN_Northbound",
            "Logical_Switch",
            "_uuid",
        ])
        .unwrap();
    let n = dump.matches("\"uuid\"").count();
    assert_eq!(n, c.replica().table("Logical_Switch").unwrap().len());
}

#[test]
fn missing_program_names_the_debian_package() {
    let e = ovn_api::testing::require_program("ovsdb-server-does-not-exist", "openvswitch-common")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("apt-get install -y openvswitch-common"),
        "{e}"
    );
    assert!(ovn_api::testing::require_program("ovsdb-server", "openvswitch-common").is_ok());
}
