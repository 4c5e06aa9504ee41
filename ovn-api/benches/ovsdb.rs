//! `cargo bench -p ovn-api`: inserting Logical_Switch_Ports into one switch through this client
//! (one per transaction, 100 per transaction, all in one) against `ovn-nbctl` doing the same on
//! the same kind of server; the replica's memory per LSP row; the time to decode and apply a
//! monitor update of 10k rows. Prints a markdown table for BENCHMARKS.md.
//!
//! Each insert case runs against a fresh `ovsdb-server` (standalone, unix socket). Knobs:
//! `OVN_API_BENCH_N` (default 10000), `OVN_API_BENCH_NBCTL_SINGLE` (ovn-nbctl one-per-process
//! count, default 1000: each call is a process start plus a full database download).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ovn_api::codec::Decoder;
use ovn_api::protocol::parse_table_updates;
use ovn_api::replica::Replica;
use ovn_api::schema::DatabaseSchema;
use ovn_api::tables::nb::{LogicalSwitch, LogicalSwitchPort};
use ovn_api::testing::{OvsdbServer, SchemaKind};
use ovn_api::txn::Txn;
use ovn_api::value::Uuid;
use ovn_api::{Client, ClientConfig};
use serde_json::{Value as Json, json};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lsp(i: usize) -> LogicalSwitchPort {
    LogicalSwitchPort {
        name: format!("pod{i}.default.net1.default.ovn"),
        addresses: vec![format!(
            "0a:58:0a:{:02x}:{:02x}:{:02x} 10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )],
        external_ids: [
            ("vendor".to_string(), "kube-ovn".to_string()),
            ("pod".to_string(), format!("default/pod{i}")),
            ("ls".to_string(), "net1".to_string()),
        ]
        .into(),
        ..Default::default()
    }
}

async fn client(server: &OvsdbServer, read_your_writes: bool) -> (Client, Uuid) {
    let mut cfg = ClientConfig::new(server.remote(), "OVN_Northbound")
        .typed::<LogicalSwitch>()
        .typed::<LogicalSwitchPort>();
    cfg.read_your_writes = read_your_writes;
    let c = Client::connect(cfg).await.unwrap();

    let mut tx = Txn::new();
    let ls = tx.insert(&LogicalSwitch {
        name: "ls".into(),
        ..Default::default()
    });
    let ls = c.commit(tx).await.unwrap().uuid(&ls).unwrap();
    (c, ls)
}

/// Inserts `n` LSPs in transactions of `batch`, returning the elapsed time.
async fn ours(n: usize, batch: usize, read_your_writes: bool) -> Duration {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let (c, ls) = client(&server, read_your_writes).await;
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let mut tx = Txn::new();
        let mut ports = Vec::with_capacity(batch);
        for j in i..(i + batch).min(n) {
            ports.push(tx.insert(&lsp(j)));
        }
        tx.mutate(
            ls,
            [LogicalSwitch::PORTS.insert(
                ports
                    .iter()
                    .map(ovn_api::value::Atom::from)
                    .collect::<Vec<_>>(),
            )],
        );
        c.commit(tx).await.unwrap();
        i += batch;
    }
    // Done when the replica has every row (immediate with read_your_writes).
    c.wait_until(Duration::from_secs(60), |r| {
        r.table("Logical_Switch_Port").is_some_and(|t| t.len() == n)
    })
    .await
    .unwrap();
    start.elapsed()
}

/// The server's own limit: one pre-encoded 10k-insert transaction on a bare connection (no
/// monitor, no replica), timed from send to reply.
async fn raw_one_txn(n: usize) -> Duration {
    use ovn_api::protocol::{Mutation, Operation, transact_params};
    use ovn_api::rpc::{Connection, ConnectionOptions, Remote};
    use ovn_api::tables::Table;
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let remote: Remote = server.remote().parse().unwrap();
    let (conn, _notes) = Connection::open(&remote, None, ConnectionOptions::default())
        .await
        .unwrap();
    let ls = vec![Operation::Insert {
        table: "Logical_Switch".into(),
        row: LogicalSwitch {
            name: "ls".into(),
            ..Default::default()
        }
        .to_columns(),
        uuid_name: None,
    }];
    let r = conn
        .call("transact", transact_params("OVN_Northbound", &ls))
        .await
        .unwrap();
    let ls_uuid = ovn_api::value::Atom::from_json(&r[0]["uuid"])
        .unwrap()
        .as_uuid()
        .unwrap();
    let mut ops = Vec::with_capacity(n + 1);
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("p{i}");
        ops.push(Operation::Insert {
            table: "Logical_Switch_Port".into(),
            row: lsp(i).to_columns(),
            uuid_name: Some(name.clone()),
        });
        names.push(ovn_api::value::Atom::NamedUuid(name.into()));
    }
    ops.push(Operation::Mutate {
        table: "Logical_Switch".into(),
        conditions: vec![ovn_api::protocol::Condition::uuid(ls_uuid)],
        mutations: vec![Mutation::insert("ports", ovn_api::value::Datum::set(names))],
    });
    let params = transact_params("OVN_Northbound", &ops);
    let start = Instant::now();
    let r = conn.call("transact", params).await.unwrap();
    let took = start.elapsed();
    assert_eq!(r.as_array().unwrap().len(), n + 1);
    assert!(r[n].get("error").is_none(), "{}", r[n]);
    took
}

fn nbctl_cmd(server: &OvsdbServer) -> Command {
    let mut c = Command::new("ovn-nbctl");
    c.arg(format!("--db={}", server.remote()));
    c
}

fn lsp_add_args(i: usize) -> Vec<String> {
    let p = lsp(i);
    vec![
        "lsp-add".into(),
        "ls".into(),
        p.name.clone(),
        "--".into(),
        "lsp-set-addresses".into(),
        p.name.clone(),
        p.addresses[0].clone(),
        "--".into(),
        "set".into(),
        "logical_switch_port".into(),
        p.name,
        format!(
            "external_ids:vendor=kube-ovn external_ids:pod=default/pod{i} external_ids:ls=net1"
        ),
    ]
}

fn nbctl_single(n: usize) -> Duration {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    assert!(
        nbctl_cmd(&server)
            .args(["ls-add", "ls"])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    for i in 0..n {
        let mut args = lsp_add_args(i);
        // `set` takes the key=value pairs as separate arguments.
        let last = args.pop().unwrap();
        args.extend(last.split(' ').map(str::to_owned));
        assert!(nbctl_cmd(&server).args(&args).status().unwrap().success());
    }
    start.elapsed()
}

fn nbctl_one_txn(n: usize) -> Duration {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    assert!(
        nbctl_cmd(&server)
            .args(["ls-add", "ls"])
            .status()
            .unwrap()
            .success()
    );
    let mut args: Vec<String> = Vec::new();
    for i in 0..n {
        if i > 0 {
            args.push("--".into());
        }
        let mut a = lsp_add_args(i);
        let last = a.pop().unwrap();
        a.extend(last.split(' ').map(str::to_owned));
        args.extend(a);
    }
    // 10k LSPs with addresses and external_ids are ~2 MB of arguments, over the default
    // ARG_MAX (a quarter of the stack limit): raise our own soft stack limit first.
    let raised = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            "--stack=268435456:",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        raised,
        "prlimit (util-linux) is needed to pass 10k commands to one ovn-nbctl"
    );
    let start = Instant::now();
    let out = nbctl_cmd(&server).args(&args).output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = nbctl_cmd(&server)
        .args(["--bare", "--columns=_uuid", "list", "logical_switch_port"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&count.stdout)
            .split_whitespace()
            .count(),
        n
    );
    took
}

fn rss_kib() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn update_json(n: usize, offset: usize) -> Json {
    let mut rows = serde_json::Map::new();
    for i in offset..offset + n {
        let p = lsp(i);
        let cols = p.to_columns_json();
        rows.insert(
            Uuid::from_u128(i as u128 + 1).to_string(),
            json!({ "insert": cols }),
        );
    }
    json!({ "Logical_Switch_Port": rows })
}

trait ToJson {
    fn to_columns_json(&self) -> Json;
}
impl ToJson for LogicalSwitchPort {
    fn to_columns_json(&self) -> Json {
        use ovn_api::tables::Table;
        Json::Object(
            self.to_columns()
                .into_iter()
                .map(|(k, v)| (k, v.to_json()))
                .collect(),
        )
    }
}

fn nb_schema() -> Arc<DatabaseSchema> {
    Arc::new(
        DatabaseSchema::from_file(std::path::Path::new(SchemaKind::Northbound.path())).unwrap(),
    )
}

/// Replica memory: RSS growth while holding `n` LSP rows (built in 10k-row updates).
fn replica_memory(n: usize) -> f64 {
    let schema = nb_schema();
    let before = rss_kib();
    let mut r = Replica::new(schema, &["Logical_Switch_Port".to_string()]).unwrap();
    for chunk in 0..n / 10_000 {
        let u = parse_table_updates(&update_json(10_000, chunk * 10_000), true).unwrap();
        r.apply(&u).unwrap();
    }
    let after = rss_kib();
    assert_eq!(r.len(), n);
    let per_row = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
    drop(r);
    per_row
}

/// Decoding a 10k-row update3 notification from bytes, parsing it and applying it.
fn apply_10k() -> (Duration, Duration, usize) {
    let schema = nb_schema();
    let msg = json!({"method": "update3", "id": null, "params": ["OVN_Northbound", "00000000-0000-0000-0000-000000000000", update_json(10_000, 0)]});
    let bytes = serde_json::to_vec(&msg).unwrap();
    let mut best_decode = Duration::MAX;
    let mut best_total = Duration::MAX;
    for _ in 0..5 {
        let mut r = Replica::new(schema.clone(), &["Logical_Switch_Port".to_string()]).unwrap();
        let start = Instant::now();
        let mut d = Decoder::default();
        for chunk in bytes.chunks(64 * 1024) {
            d.feed(chunk);
        }
        let m = d.next_message().unwrap().unwrap();
        let decoded = start.elapsed();
        let ovn_api::codec::Message::Request { params, .. } = m else {
            panic!()
        };
        let u = parse_table_updates(&params[2], true).unwrap();
        let changes = r.apply(&u).unwrap();
        let total = start.elapsed();
        assert_eq!(changes.len(), 10_000);
        best_decode = best_decode.min(decoded);
        best_total = best_total.min(total);
    }
    (best_decode, best_total, bytes.len())
}

fn fmt(d: Duration, n: usize) -> String {
    format!(
        "{:.2} s | {:.0}",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64()
    )
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing we use.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for (p, pkg) in [
        ("ovsdb-server", "openvswitch-common"),
        ("ovn-nbctl", "ovn-common"),
    ] {
        ovn_api::testing::require_program(p, pkg).unwrap();
    }
    let n = env_usize("OVN_API_BENCH_N", 10_000);
    let n_single = env_usize("OVN_API_BENCH_NBCTL_SINGLE", 1_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!("| case | LSPs | time | LSPs/s |");
    println!("|---|---:|---:|---:|");
    let a = rt.block_on(ours(n, 1, true));
    println!("| ovn-api, 1 LSP per transaction | {n} | {} |", fmt(a, n));
    let a2 = rt.block_on(ours(n, 1, false));
    println!(
        "| ovn-api, 1 LSP per transaction, read_your_writes off | {n} | {} |",
        fmt(a2, n)
    );
    let b = rt.block_on(ours(n, 100, true));
    println!(
        "| ovn-api, 100 LSPs per transaction | {n} | {} |",
        fmt(b, n)
    );
    let c = rt.block_on(ours(n, n, true));
    println!("| ovn-api, 1 transaction | {n} | {} |", fmt(c, n));
    let raw = rt.block_on(raw_one_txn(n));
    println!(
        "| server limit: 1 pre-encoded transaction, bare connection | {n} | {} |",
        fmt(raw, n)
    );
    let na = nbctl_single(n_single);
    println!(
        "| ovn-nbctl, 1 LSP per call (process + connect each) | {n_single} | {} |",
        fmt(na, n_single)
    );
    let nc = nbctl_one_txn(n);
    println!(
        "| ovn-nbctl, 1 call / 1 transaction | {n} | {} |",
        fmt(nc, n)
    );
    println!();
    println!(
        "batched (100/txn) vs ovn-nbctl one transaction: {:.2}x the time",
        b.as_secs_f64() / nc.as_secs_f64()
    );
    println!(
        "one transaction vs ovn-nbctl one transaction: {:.2}x the time",
        c.as_secs_f64() / nc.as_secs_f64()
    );
    println!(
        "batched (100/txn) vs the server limit: {:.2}x the time",
        b.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "one transaction vs the server limit: {:.2}x the time",
        c.as_secs_f64() / raw.as_secs_f64()
    );

    let (decode, total, size) = apply_10k();
    println!(
        "monitor update of 10k LSP rows ({:.1} MiB JSON): decode {:.1} ms, decode+parse+apply {:.1} ms (best of 5)",
        size as f64 / (1024.0 * 1024.0),
        decode.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
    let per_row = replica_memory(100_000);
    println!("replica memory with 100k LSP rows: {per_row:.0} bytes per row (RSS growth)");
}
