//! The replica against a real `ovsdb-server`, for every kind of column: scalar, optional
//! (`max: 1`), bounded and unbounded sets, sets with `min: 1`, maps with and without `max`,
//! enums and weak references. After every transaction (made by another client) the replica must
//! equal what `ovsdb-client dump` prints, including the `[] → [false] → [true] → []` transitions
//! of an optional column (the `Logical_Switch_Port.up` bug: ovsdb-server sends the new value of
//! a column that holds at most one element, and the replica used to toggle it into a set of two).
//!
//! Updates merged by a backlogged connection: ovsdb-server stops flushing monitor updates to a
//! session while that session's output is backlogged and sends one merged update when it drains
//! (`ovsdb_jsonrpc_session_run`). A proxy between the replica and the server stops reading from
//! the server, ballast rows fill the socket buffers, the transactions of a burst land meanwhile,
//! and the replica must still end up equal to the server.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ovn_api::protocol::MonitorMethod;
use ovn_api::testing::{OvsdbServer, Rows, dump_rows, replica_rows};
use ovn_api::value::{Atom, Uuid};
use ovn_api::{Client, ClientConfig};
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

const TABLE: &str = "K";

/// One table with a column of each kind the OVN schemas use.
fn schema() -> Json {
    json!({
        "name": "Kinds",
        "version": "1.0.0",
        "tables": {
            TABLE: {
                "isRoot": true,
                "columns": {
                    "name": {"type": "string"},
                    "i": {"type": "integer"},
                    "opt_bool": {"type": {"key": "boolean", "min": 0, "max": 1}},
                    "opt_int": {"type": {"key": "integer", "min": 0, "max": 1}},
                    "opt_str": {"type": {"key": "string", "min": 0, "max": 1}},
                    "opt_enum": {"type": {"key": {"type": "string", "enum": ["set", ["a", "b", "c"]]}, "min": 0, "max": 1}},
                    "opt_ref": {"type": {"key": {"type": "uuid", "refTable": TABLE, "refType": "weak"}, "min": 0, "max": 1}},
                    "set_str": {"type": {"key": "string", "min": 0, "max": "unlimited"}},
                    "set_max3": {"type": {"key": "integer", "min": 0, "max": 3}},
                    "set_min1": {"type": {"key": "integer", "min": 1, "max": "unlimited"}},
                    "map_ss": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}},
                    "map_max2": {"type": {"key": "integer", "value": "string", "min": 0, "max": 2}},
                    "opt_map": {"type": {"key": "string", "value": "integer", "min": 0, "max": 1}},
                    "pad": {"type": "string"}
                }
            }
        }
    })
}

/// Columns a step may set (everything but the name and the ballast).
const COLUMNS: &[&str] = &[
    "i", "opt_bool", "opt_int", "opt_str", "opt_enum", "opt_ref", "set_str", "set_max3",
    "set_min1", "map_ss", "map_max2", "opt_map",
];

fn set(items: Vec<Json>) -> Json {
    json!(["set", items])
}

fn map(pairs: Vec<(Json, Json)>) -> Json {
    json!([
        "map",
        pairs
            .into_iter()
            .map(|(k, v)| json!([k, v]))
            .collect::<Vec<_>>()
    ])
}

/// Elements of `pool` picked by the bits of `seed`.
fn subset<T: Clone>(pool: &[T], seed: u8) -> Vec<T> {
    pool.iter()
        .enumerate()
        .filter(|(i, _)| seed & (1 << i) != 0)
        .map(|(_, x)| x.clone())
        .collect()
}

/// A value of `column` chosen by `seed` (a few values each, so transitions repeat).
fn value(column: &str, seed: u8, rows: &[Uuid]) -> Json {
    let s = seed;
    match column {
        "i" => json!(i64::from(s % 4)),
        // [] → [false] → [true] → [] and every other order.
        "opt_bool" => match s % 3 {
            0 => set(vec![]),
            1 => json!(false),
            _ => json!(true),
        },
        "opt_int" => match s % 3 {
            0 => set(vec![]),
            n => json!(i64::from(n)),
        },
        "opt_str" => match s % 3 {
            0 => set(vec![]),
            1 => json!("x"),
            _ => json!("y"),
        },
        "opt_enum" => match s % 4 {
            0 => set(vec![]),
            1 => json!("a"),
            2 => json!("b"),
            _ => json!("c"),
        },
        "opt_ref" => match rows {
            [] => set(vec![]),
            _ if s.is_multiple_of(3) => set(vec![]),
            _ => json!(["uuid", rows[s as usize % rows.len()].to_string()]),
        },
        "set_str" => set(subset(&[json!("w"), json!("x"), json!("y"), json!("z")], s)),
        "set_max3" => {
            let mut v = subset(&[json!(1), json!(2), json!(3), json!(4)], s);
            v.truncate(3);
            set(v)
        }
        "set_min1" => {
            let v = subset(&[json!(1), json!(2), json!(3)], s);
            if v.is_empty() {
                set(vec![json!(1)])
            } else {
                set(v)
            }
        }
        "map_ss" => {
            let keys = subset(&["k1", "k2", "k3"], s);
            map(keys
                .into_iter()
                .map(|k| (json!(k), json!(if s & 0x10 != 0 { "v1" } else { "v2" })))
                .collect())
        }
        "map_max2" => {
            let mut keys = subset(&[1, 2, 3], s);
            keys.truncate(2);
            map(keys
                .into_iter()
                .map(|k| (json!(k), json!(if s & 0x20 != 0 { "a" } else { "b" })))
                .collect())
        }
        "opt_map" => match s % 3 {
            0 => map(vec![]),
            1 => map(vec![(json!("k"), json!(1))]),
            _ => map(vec![(json!("j"), json!(2))]),
        },
        other => panic!("no values for column {other}"),
    }
}

#[derive(Debug, Clone)]
enum Step {
    Insert(u8),
    Delete(u8),
    /// Update one column of one row to a value.
    Set(u8, u8, u8),
    /// Mutate a set or map column: insert or delete some elements.
    Mutate(u8, u8, bool),
    /// The next steps land while the replica's connection is backlogged.
    Burst(Vec<Step>),
}

fn plain_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => any::<u8>().prop_map(Step::Insert),
        1 => any::<u8>().prop_map(Step::Delete),
        6 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(r, c, v)| Step::Set(r, c, v)),
        2 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(r, v, ins)| Step::Mutate(r, v, ins)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => plain_step(),
        1 => prop::collection::vec(plain_step(), 1..8).prop_map(Step::Burst),
    ]
}

fn eq_uuid(u: Uuid) -> Json {
    json!([["_uuid", "==", ["uuid", u.to_string()]]])
}

fn dump(server: &OvsdbServer, client: &Client) -> Rows {
    let schema = client.replica().table(TABLE).unwrap().schema().clone();
    dump_rows(&server.remote(), server.database(), &schema).unwrap()
}

/// A unix-socket proxy in front of the server whose server → client direction can be paused.
struct StallingProxy {
    path: PathBuf,
    pause: watch::Sender<bool>,
}

impl StallingProxy {
    fn start(dir: &Path, upstream: PathBuf) -> Self {
        let path = dir.join("proxy.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (pause, paused) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = UnixStream::connect(&upstream).await else {
                    continue;
                };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut down_r, &mut up_w).await;
                });
                let mut paused = paused.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        // While paused nothing is read: the server's writes back up.
                        if paused.wait_for(|p| !*p).await.is_err() {
                            return;
                        }
                        match up_r.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if down_w.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Self { path, pause }
    }

    fn remote(&self) -> String {
        format!("unix:{}", self.path.display())
    }

    fn set_paused(&self, paused: bool) {
        self.pause.send_replace(paused);
    }
}

struct Bed {
    server: OvsdbServer,
    proxy: StallingProxy,
    client: Client,
    /// Another client, straight to the server, that makes the transactions.
    writer: Client,
    /// Notifications the replica received (one `Update` each).
    updates: Arc<AtomicUsize>,
    ballast: Uuid,
    serial: usize,
    _dir: tempfile::TempDir,
}

impl Bed {
    async fn start(method: MonitorMethod) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let schema_path = dir.path().join("kinds.ovsschema");
        std::fs::write(&schema_path, schema().to_string()).unwrap();
        let server = OvsdbServer::start_from_file(&schema_path, None).unwrap();
        let proxy = StallingProxy::start(dir.path(), server.socket());
        let mut cfg = ClientConfig::new(proxy.remote(), "Kinds").monitor_table(TABLE);
        cfg.monitor_method = method;
        // Stalls are short; a probe must not tear the session down meanwhile.
        cfg.probe_interval = Duration::from_secs(60);
        let client = Client::connect(cfg).await.unwrap();
        let writer = Client::connect(ClientConfig::new(server.remote(), "Kinds"))
            .await
            .unwrap();
        let updates = Arc::new(AtomicUsize::new(0));
        let mut rx = client.subscribe();
        let counter = updates.clone();
        tokio::spawn(async move {
            while let Ok(u) = rx.recv().await {
                if !u.resync {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let mut bed = Bed {
            server,
            proxy,
            client,
            writer,
            updates,
            ballast: Uuid::NIL,
            serial: 0,
            _dir: dir,
        };
        let reply = bed
            .transact(json!([{"op": "insert", "table": TABLE, "row": {"name": "ballast"}}]))
            .await;
        bed.ballast = Atom::from_json(&reply[0]["uuid"])
            .unwrap()
            .as_uuid()
            .unwrap();
        bed.settle("ballast insert").await;
        bed
    }

    /// One transaction by the writer (another session, not through the proxy).
    async fn transact(&self, ops: Json) -> Json {
        let mut txn = vec![json!("Kinds")];
        txn.extend(ops.as_array().unwrap().iter().cloned());
        let reply = self
            .writer
            .call("transact", Json::Array(txn))
            .await
            .unwrap();
        for r in reply.as_array().unwrap() {
            if let Some(e) = r.get("error") {
                panic!(
                    "transaction failed: {e} {}",
                    r.get("details").unwrap_or(&Json::Null)
                );
            }
        }
        reply
    }

    fn rows(&self) -> Vec<Uuid> {
        let r = self.client.replica();
        let mut rows: Vec<Uuid> = r
            .table(TABLE)
            .unwrap()
            .rows()
            .map(|row| row.uuid)
            .filter(|u| *u != self.ballast)
            .collect();
        rows.sort();
        rows
    }

    /// Runs one step; `known` are the rows as the server has them (the replica may lag in a
    /// burst).
    async fn apply(&mut self, step: &Step, known: &mut Vec<Uuid>) {
        self.serial += 1;
        let pick = |i: u8| known.get(i as usize % known.len().max(1)).copied();
        let ops = match *step {
            Step::Insert(seed) => {
                let col = COLUMNS[seed as usize % COLUMNS.len()];
                json!([{"op": "insert", "table": TABLE, "row": {
                    "name": format!("r{}", self.serial),
                    col: value(col, seed / 3, known),
                }}])
            }
            Step::Delete(r) => {
                let Some(u) = pick(r) else { return };
                json!([{"op": "delete", "table": TABLE, "where": eq_uuid(u)}])
            }
            Step::Set(r, c, v) => {
                let Some(u) = pick(r) else { return };
                let col = COLUMNS[c as usize % COLUMNS.len()];
                json!([{"op": "update", "table": TABLE, "where": eq_uuid(u),
                        "row": {col: value(col, v, known)}}])
            }
            Step::Mutate(r, v, insert) => {
                let Some(u) = pick(r) else { return };
                let (col, operand) = if v % 2 == 0 {
                    ("set_str", value("set_str", v / 2, known))
                } else {
                    ("map_ss", value("map_ss", v / 2, known))
                };
                let mutator = if insert { "insert" } else { "delete" };
                json!([{"op": "mutate", "table": TABLE, "where": eq_uuid(u),
                        "mutations": [[col, mutator, operand]]}])
            }
            Step::Burst(ref steps) => {
                self.burst(steps, known).await;
                return;
            }
        };
        let reply = self.transact(ops).await;
        if let Step::Insert(_) = step {
            known.push(
                Atom::from_json(&reply[0]["uuid"])
                    .unwrap()
                    .as_uuid()
                    .unwrap(),
            );
        }
        if let Step::Delete(_) = step {
            self.refresh_known(known);
        }
    }

    fn refresh_known(&self, known: &mut Vec<Uuid>) {
        let rows = dump(&self.server, &self.client);
        known.retain(|u| rows.contains_key(u));
    }

    /// Pauses the replica's connection, fills its buffers with ballast, runs `steps`, resumes.
    /// Returns how many transactions ran in the burst.
    async fn burst(&mut self, steps: &[Step], known: &mut Vec<Uuid>) -> usize {
        self.proxy.set_paused(true);
        // 8 × 128 KiB exceeds what a unix socket buffers (about 200 KiB), so the server's own
        // output queue for this session fills and it starts merging.
        for n in 0..8 {
            let pad = format!("{n}{}", "x".repeat(128 * 1024));
            self.transact(json!([{"op": "update", "table": TABLE,
                                  "where": eq_uuid(self.ballast), "row": {"pad": pad}}]))
                .await;
        }
        let mut txns = 8;
        for s in steps {
            // A nested burst is one more step here (the connection is already stalled).
            Box::pin(self.apply(s, known)).await;
            txns += 1;
        }
        self.proxy.set_paused(false);
        txns
    }

    /// Waits until the replica equals the server; fails showing both.
    async fn settle(&self, after: &str) {
        let want = dump(&self.server, &self.client);
        let ok = self
            .client
            .wait_until(Duration::from_secs(10), |r| replica_rows(r, TABLE) == want)
            .await;
        if ok.is_err() {
            let got = replica_rows(&self.client.replica(), TABLE);
            for (u, cols) in &want {
                match got.get(u) {
                    None => panic!("after {after}: replica lacks row {u}: {cols:?}"),
                    Some(g) => {
                        for (c, v) in cols {
                            assert_eq!(g.get(c), Some(v), "after {after}: row {u} column {c}");
                        }
                    }
                }
            }
            assert_eq!(
                got.len(),
                want.len(),
                "after {after}: extra rows in the replica"
            );
            panic!("after {after}: replica and server differ");
        }
    }
}

fn run(method: MonitorMethod, steps: Vec<Step>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut bed = Bed::start(method).await;
        let mut known = bed.rows();
        for (i, s) in steps.iter().enumerate() {
            bed.apply(s, &mut known).await;
            bed.settle(&format!("step {i} {s:?}")).await;
        }
        // Typed reads of every row succeed (the bug surfaced as "expected at most one value").
        let r = bed.client.replica();
        for row in r.table(TABLE).unwrap().rows() {
            for (name, d) in row.columns() {
                let ty = &row.table().column(name).unwrap().ty;
                ty.check(d)
                    .unwrap_or_else(|e| panic!("row {} column {name}: {e}", row.uuid));
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn every_column_kind_matches_the_server_monitor_cond_since(
        steps in prop::collection::vec(step(), 1..30)
    ) {
        run(MonitorMethod::CondSince, steps);
    }

    #[test]
    fn every_column_kind_matches_the_server_monitor_cond(
        steps in prop::collection::vec(step(), 1..30)
    ) {
        run(MonitorMethod::Cond, steps);
    }

    #[test]
    fn every_column_kind_matches_the_server_plain_monitor(
        steps in prop::collection::vec(step(), 1..30)
    ) {
        run(MonitorMethod::Plain, steps);
    }
}

/// The transitions of the bug, one by one, on every monitor method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_column_transitions_match_the_server() {
    for method in [
        MonitorMethod::CondSince,
        MonitorMethod::Cond,
        MonitorMethod::Plain,
    ] {
        let bed = Bed::start(method).await;
        let reply = bed
            .transact(json!([{"op": "insert", "table": TABLE, "row": {"name": "p"}}]))
            .await;
        let u = Atom::from_json(&reply[0]["uuid"])
            .unwrap()
            .as_uuid()
            .unwrap();
        bed.settle("insert").await;
        for (label, v) in [
            ("[] → [false]", json!(false)),
            ("[false] → [true]", json!(true)),
            ("[true] → []", set(vec![])),
            ("[] → [true]", json!(true)),
            ("[true] → [false]", json!(false)),
        ] {
            bed.transact(json!([{"op": "update", "table": TABLE, "where": eq_uuid(u),
                                 "row": {"opt_bool": v}}]))
                .await;
            bed.settle(&format!("{method:?} opt_bool {label}")).await;
        }
    }
}

/// A burst while the connection is backlogged really arrives merged (fewer notifications than
/// transactions), and the merged result still matches: `[] → [false] → [true]` in one update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlogged_connection_gets_merged_updates_that_match() {
    let mut bed = Bed::start(MonitorMethod::CondSince).await;
    let mut known = Vec::new();
    bed.apply(&Step::Insert(0), &mut known).await;
    bed.settle("insert").await;
    let before = bed.updates.load(Ordering::Relaxed);
    let opt_bool = COLUMNS.iter().position(|c| *c == "opt_bool").unwrap() as u8;
    let steps = vec![
        Step::Set(0, opt_bool, 1), // [false]
        Step::Set(0, opt_bool, 2), // [true]
        Step::Mutate(0, 0b0110, true),
        Step::Insert(1),
        Step::Set(1, opt_bool, 1),
    ];
    let txns = bed.burst(&steps, &mut known).await;
    bed.settle("burst").await;
    let notifications = bed.updates.load(Ordering::Relaxed) - before;
    assert!(
        notifications < txns,
        "{txns} transactions arrived as {notifications} notifications: the burst was not merged, \
         so this test did not exercise merged updates"
    );
}
