//! The monitor-fed replica equals what the server holds (`ovsdb-client dump`) after random
//! transactions, for each monitor method; resync after the server drops connections.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use ovn_api::protocol::MonitorMethod;
use ovn_api::tables::nb;
use ovn_api::testing::{OvsdbServer, SchemaKind};
use ovn_api::txn::Txn;
use ovn_api::value::{Datum, Uuid};
use ovn_api::{Client, ClientConfig};
use proptest::prelude::*;
use serde_json::Value as Json;

type Snapshot = BTreeMap<String, BTreeMap<Uuid, BTreeMap<String, Datum>>>;

/// What `ovsdb-client dump` says, parsed with the replica's schema.
fn dump(server: &OvsdbServer, c: &Client) -> Snapshot {
    let rep = c.replica();
    let mut out = Snapshot::new();
    let tables: Vec<String> = rep.table_names().map(str::to_owned).collect();
    for t in tables {
        let schema = rep.table(&t).unwrap().schema().clone();
        let text = server
            .client(&[
                "-f",
                "json",
                "dump",
                &server.remote(),
                server.database(),
                &t,
            ])
            .unwrap();
        let j: Json = serde_json::from_str(&text).unwrap();
        let headings: Vec<&str> = j["headings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        let rows = out.entry(t.clone()).or_default();
        for r in j["data"].as_array().unwrap() {
            let r = r.as_array().unwrap();
            let mut uuid = Uuid::NIL;
            let mut cols = BTreeMap::new();
            for (h, v) in headings.iter().zip(r) {
                if *h == "_uuid" {
                    uuid = ovn_api::value::Atom::from_json(v)
                        .unwrap()
                        .as_uuid()
                        .unwrap();
                } else if *h != "_version" {
                    let ty = &schema.column(h).unwrap().ty;
                    cols.insert(h.to_string(), Datum::from_json_typed(v, ty).unwrap());
                }
            }
            rows.insert(uuid, cols);
        }
    }
    out
}

fn replica_snapshot(c: &Client) -> Snapshot {
    let rep = c.replica();
    let mut out = Snapshot::new();
    for t in rep.table_names() {
        let rows = out.entry(t.to_owned()).or_default();
        for r in rep.table(t).unwrap().rows() {
            rows.insert(
                r.uuid,
                r.columns()
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect(),
            );
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Step {
    AddSwitch(u8),
    AddPort(u8, u8),
    DelSwitch(u8),
    DelPort(u8),
    SetIds(u8, u8),
    AddAddress(u8, u8),
    PortGroup(u8, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<u8>().prop_map(Step::AddSwitch),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Step::AddPort(a, b)),
        any::<u8>().prop_map(Step::DelSwitch),
        any::<u8>().prop_map(Step::DelPort),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Step::SetIds(a, b)),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Step::AddAddress(a, b)),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Step::PortGroup(a, b)),
    ]
}

fn pick<T: Clone>(v: &[T], i: u8) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[i as usize % v.len()].clone())
    }
}

async fn apply(c: &Client, s: &Step, n: usize) {
    let (switches, ports) = {
        let r = c.replica();
        let mut ls = r.list::<nb::LogicalSwitch>().unwrap();
        let mut lsp = r.list::<nb::LogicalSwitchPort>().unwrap();
        ls.sort_by_key(|x| x.uuid);
        lsp.sort_by_key(|x| x.uuid);
        (ls, lsp)
    };
    let mut tx = Txn::new();
    match *s {
        Step::AddSwitch(a) => {
            tx.insert(&nb::LogicalSwitch {
                name: format!("ls{n}"),
                external_ids: [("k".into(), format!("v{}", a % 4))].into(),
                ..Default::default()
            });
        }
        Step::AddPort(a, b) => {
            let Some(ls) = pick(&switches, a) else { return };
            let p = tx.insert(&nb::LogicalSwitchPort {
                name: format!("p{n}"),
                tag_request: Some(i64::from(b % 8)),
                ..Default::default()
            });
            tx.mutate(ls.uuid, [nb::LogicalSwitch::PORTS.insert(&p)]);
        }
        Step::DelSwitch(a) => {
            let Some(ls) = pick(&switches, a) else { return };
            tx.delete::<nb::LogicalSwitch>(ls.uuid);
        }
        Step::DelPort(a) => {
            let Some(p) = pick(&ports, a) else { return };
            tx.mutate(
                nb::LogicalSwitch::PORTS.includes(p.uuid),
                [nb::LogicalSwitch::PORTS.delete(p.uuid)],
            );
        }
        Step::SetIds(a, b) => {
            let Some(ls) = pick(&switches, a) else { return };
            let ids: BTreeMap<String, String> = (0..b % 4)
                .map(|i| (format!("k{i}"), format!("v{}", b % 3)))
                .collect();
            tx.update(ls.uuid, [nb::LogicalSwitch::EXTERNAL_IDS.to(&ids)]);
        }
        Step::AddAddress(a, b) => {
            let Some(p) = pick(&ports, a) else { return };
            let addr = format!("0a:00:00:00:00:{:02x} 10.0.0.{}", b, b);
            if p.addresses.contains(&addr) {
                tx.mutate(
                    p.uuid,
                    [nb::LogicalSwitchPort::ADDRESSES.delete(vec![addr])],
                );
            } else {
                tx.mutate(
                    p.uuid,
                    [nb::LogicalSwitchPort::ADDRESSES.insert(vec![addr])],
                );
            }
        }
        Step::PortGroup(a, b) => {
            // Weak refs to ports: deleting a port later drops it from the group.
            let members: Vec<Uuid> = ports
                .iter()
                .enumerate()
                .filter(|(i, _)| (*i as u8 ^ a).is_multiple_of(2))
                .map(|(_, p)| p.uuid)
                .collect();
            tx.insert(&nb::PortGroup {
                name: format!("pg{n}_{b}"),
                ports: members,
                ..Default::default()
            });
        }
    }
    c.commit(tx).await.unwrap_or_else(|e| panic!("{s:?}: {e}"));
}

fn run_random(method: MonitorMethod, steps: Vec<Step>) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
        let mut cfg = ClientConfig::new(server.remote(), "OVN_Northbound")
            .typed::<nb::LogicalSwitch>()
            .typed::<nb::LogicalSwitchPort>()
            .typed::<nb::PortGroup>();
        cfg.monitor_method = method;
        let c = Client::connect(cfg).await.unwrap();
        for (i, s) in steps.iter().enumerate() {
            apply(&c, s, i).await;
        }
        // transact returns after its updates are applied, so no waiting is needed here.
        assert_eq!(
            replica_snapshot(&c),
            dump(&server, &c),
            "{method:?} sessions={} remote={:?} schema={:?}",
            c.sessions(),
            c.current_remote(),
            c.replica().schema().version
        );
        // A second client started now (fresh initial snapshot) agrees too.
        let mut cfg2 = ClientConfig::new(server.remote(), "OVN_Northbound")
            .typed::<nb::LogicalSwitch>()
            .typed::<nb::LogicalSwitchPort>()
            .typed::<nb::PortGroup>();
        cfg2.monitor_method = method;
        let c2 = Client::connect(cfg2).await.unwrap();
        assert_eq!(replica_snapshot(&c2), replica_snapshot(&c));
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn replica_equals_dump_monitor_cond_since(steps in prop::collection::vec(step(), 1..40)) {
        run_random(MonitorMethod::CondSince, steps);
    }

    #[test]
    fn replica_equals_dump_monitor_cond(steps in prop::collection::vec(step(), 1..40)) {
        run_random(MonitorMethod::Cond, steps);
    }

    #[test]
    fn replica_equals_dump_plain_monitor(steps in prop::collection::vec(step(), 1..40)) {
        run_random(MonitorMethod::Plain, steps);
    }
}

/// The server drops every connection (`ovsdb-server/reconnect`); writes by another client land
/// meanwhile; the replica resyncs and reports the changes on the stream.
#[tokio::test]
async fn resync_after_connection_drop_reports_changes() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let mut cfg = ClientConfig::northbound(server.remote());
    cfg.backoff_min = Duration::from_millis(50);
    let c = Client::connect(cfg).await.unwrap();
    let mut rx = c.subscribe();
    server.nbctl(&["ls-add", "before"]).unwrap();
    c.wait_until(Duration::from_secs(10), |r| {
        r.table("Logical_Switch").unwrap().by_name("before").count() == 1
    })
    .await
    .unwrap();

    let ctl = server.dir().join("ctl");
    let out = std::process::Command::new("ovs-appctl")
        .arg("-t")
        .arg(&ctl)
        .arg("ovsdb-server/reconnect")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server
        .nbctl(&["ls-add", "during", "--", "ls-del", "before"])
        .unwrap();
    c.wait_until(Duration::from_secs(10), |r| {
        let t = r.table("Logical_Switch").unwrap();
        t.by_name("during").count() == 1 && t.by_name("before").count() == 0
    })
    .await
    .unwrap();
    assert_eq!(replica_snapshot(&c), dump(&server, &c));
    // The stream carried the insert of "before", and then its delete and the insert of
    // "during" (either as updates or as the difference computed by a resync).
    let mut seen = Vec::new();
    while let Ok(u) = rx.try_recv() {
        for ch in &u.changes {
            let row = ch.new.as_ref().or(ch.old.as_ref()).unwrap();
            seen.push((ch.kind, row.name().unwrap_or_default().to_owned()));
        }
    }
    use ovn_api::replica::ChangeKind::*;
    assert!(seen.contains(&(Insert, "before".into())), "{seen:?}");
    assert!(seen.contains(&(Delete, "before".into())), "{seen:?}");
    assert!(seen.contains(&(Insert, "during".into())), "{seen:?}");
}
