//! The supervised session behind a [`Client`](super::Client): picks a server of the remote
//! list (the RAFT leader via `_Server.Database`), checks the schema, runs `monitor_cond_since`
//! (falling back to `monitor_cond`/`monitor`) into the replica, publishes changes, and
//! reconnects with backoff.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::config::ClientConfig;
use super::connection::{Connection, ConnectionOptions};
use super::remote::Remote;
use crate::error::{Error, Result};
use crate::protocol::{
    MonitorMethod, OpResult, Operation, TableUpdates, monitor_params, parse_table_updates,
    parse_transact_result, transact_params,
};
use crate::replica::{Replica, RowChange};
use crate::schema::DatabaseSchema;
use crate::value::short;

/// A batch of replica changes, in server order.
#[derive(Debug, Clone)]
pub struct Update {
    /// The changed rows.
    pub changes: Vec<RowChange>,
    /// True when this batch came from a full resync (fresh monitor) rather than an update.
    pub resync: bool,
    /// True when a new session resumed the monitor from the last transaction id
    /// (`monitor_cond_since` found it) and this batch holds only what changed meanwhile.
    pub resumed: bool,
}

#[derive(Debug, Clone, Default)]
pub(super) struct ConnState {
    pub(super) conn: Option<Connection>,
    /// Bumped at every established session.
    pub(super) generation: u64,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) config: ClientConfig,
    pub(super) remotes: Vec<Remote>,
    pub(super) state: watch::Sender<ConnState>,
    /// (generation, last applied notification seq) so `transact` can read its own writes.
    pub(super) applied: watch::Sender<(u64, u64)>,
    pub(super) replica: RwLock<Replica>,
    pub(super) changes: broadcast::Sender<Arc<Update>>,
    pub(super) schema: RwLock<Option<Arc<DatabaseSchema>>>,
    /// Why the supervisor stopped for good (taken by `connect`).
    pub(super) fatal: Mutex<Option<Error>>,
    /// Why the last session attempt ended (for error messages).
    pub(super) last_error: Mutex<Option<String>>,
    /// Set when the supervisor has stopped for good.
    pub(super) stopped: AtomicBool,
}

fn set_fatal(shared: &Shared, msg: Error) {
    if let Ok(mut f) = shared.fatal.lock() {
        *f = Some(msg);
    }
}

enum End {
    /// Try the next remote at once (not leader, ...).
    Next(String),
    /// The session ran and was lost.
    Lost(String),
    /// Schema problem: stop.
    Fatal(Error),
}

pub(super) async fn supervise(shared: Arc<Shared>) {
    let n = shared.remotes.len();
    let mut idx = 0usize;
    let mut backoff = shared.config.backoff_min;
    let mut failures_in_row = 0usize;
    loop {
        let remote = shared.remotes[idx % n].clone();
        idx += 1;
        let started = Instant::now();
        let end = run_session(&shared, &remote).await;
        shared.state.send_modify(|s| s.conn = None);
        match end {
            End::Fatal(msg) => {
                warn!(%remote, db = %shared.config.database, %msg, "stopping: schema check failed");
                if let Ok(mut l) = shared.last_error.lock() {
                    *l = Some(msg.to_string());
                }
                set_fatal(&shared, msg);
                shared.stopped.store(true, Ordering::SeqCst);
                // Wake `connect`.
                shared.state.send_modify(|_| {});
                return;
            }
            End::Next(msg) => {
                debug!(%remote, %msg, "trying the next remote");
                if let Ok(mut l) = shared.last_error.lock() {
                    *l = Some(msg);
                }
                failures_in_row += 1;
            }
            End::Lost(msg) => {
                info!(%remote, db = %shared.config.database, %msg, "session ended");
                if let Ok(mut l) = shared.last_error.lock() {
                    *l = Some(msg);
                }
                if started.elapsed() > Duration::from_secs(5) {
                    failures_in_row = 0;
                    backoff = shared.config.backoff_min;
                } else {
                    failures_in_row += 1;
                }
            }
        }
        // Back off once every remote has been tried without a lasting session.
        if failures_in_row >= n || n == 1 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(shared.config.backoff_max);
            failures_in_row = 0;
        }
    }
}

async fn run_session(shared: &Arc<Shared>, remote: &Remote) -> End {
    let opts = ConnectionOptions {
        probe_interval: shared.config.probe_interval,
        max_message: shared.config.max_message,
    };
    let (conn, mut notes) = match Connection::open(remote, shared.config.tls.as_ref(), opts).await {
        Ok(c) => c,
        Err(e) => return End::Next(e.to_string()),
    };
    let db = shared.config.database.clone();

    // Leadership: with a clustered database, only talk to the connected leader.
    let mut watch_server = false;
    if shared.config.leader_only {
        match server_status(&conn, &db).await {
            Ok(s) if s.model == "clustered" => {
                if !(s.leader && s.connected) {
                    return End::Next(format!("{remote} is not the cluster leader of {db}"));
                }
                watch_server = true;
            }
            Ok(_) => {}
            Err(e) => return End::Next(e.to_string()),
        }
    }

    // Schema: fetch, check the typed tables, remember.
    let schema = match conn.call("get_schema", json!([db])).await {
        Ok(j) => match DatabaseSchema::parse(&j) {
            Ok(s) => Arc::new(s),
            Err(e) => return End::Fatal(e),
        },
        Err(e) => return End::Lost(e.to_string()),
    };
    for check in &shared.config.checks {
        if let Err(e) = check(&schema) {
            return End::Fatal(e);
        }
    }
    for t in &shared.config.tables {
        if let Err(e) = schema.table(t) {
            return End::Fatal(e);
        }
    }
    if let Ok(mut s) = shared.schema.write() {
        *s = Some(schema.clone());
    }

    if watch_server {
        let p = json!(["_Server", "server", {"Database": {"columns": ["name", "model", "leader", "connected"]}}]);
        if let Err(e) = conn.call("monitor", p).await {
            return End::Lost(format!("monitoring _Server: {e}"));
        }
    }

    // Monitor.
    let monitor_id = json!(db.clone());
    let mut method = shared.config.monitor_method;
    if !shared.config.tables.is_empty() {
        let tables: BTreeMap<String, Vec<String>> = shared
            .config
            .tables
            .iter()
            .filter_map(|t| {
                schema.tables.get(t).map(|ts| {
                    (
                        t.clone(),
                        ts.columns.iter().map(|c| c.name.clone()).collect(),
                    )
                })
            })
            .collect();
        loop {
            let last = replica_last_txn(shared, &schema);
            let params = monitor_params(method, &db, &monitor_id, &tables, last.as_deref());
            match conn.call(method.method(), params).await {
                Ok(reply) => {
                    if let Err(e) = prime_replica(shared, &schema, method, &reply) {
                        return End::Lost(format!("applying the initial monitor reply: {e}"));
                    }
                    break;
                }
                Err(Error::Rpc { error, .. }) if error.contains("unknown method") => {
                    match method.fallback() {
                        Some(m) => method = m,
                        None => {
                            return End::Fatal(Error::Protocol {
                                remote: remote.to_string(),
                                reason: "the server supports no monitor method".into(),
                            });
                        }
                    }
                }
                Err(e) => return End::Lost(e.to_string()),
            }
        }
    } else {
        ensure_replica(shared, &schema);
    }

    let generation = shared.state.borrow().generation + 1;
    shared.applied.send_replace((generation, 0));
    shared.state.send_modify(|s| {
        s.conn = Some(conn.clone());
        s.generation = generation;
    });
    info!(%remote, %db, ?method, "session established");

    loop {
        let Some(n) = notes.recv().await else {
            break End::Lost("connection closed".into());
        };
        tracing::trace!(method = %n.method, seq = n.seq, params = %short(&n.params), "notification");
        match n.method.as_str() {
            "update" | "update2" | "update3" if n.params.get(0) == Some(&monitor_id) => {
                let (v2, txn, body) = match n.method.as_str() {
                    "update3" => (
                        true,
                        n.params.get(1).and_then(Json::as_str).map(str::to_owned),
                        n.params.get(2),
                    ),
                    "update2" => (true, None, n.params.get(1)),
                    _ => (false, None, n.params.get(1)),
                };
                let r = parse_table_updates(body.unwrap_or(&Json::Null), v2)
                    .and_then(|u| apply_updates(shared, &u, txn));
                if let Err(e) = r {
                    // Force a full resync on the next session.
                    if let Ok(mut g) = shared.replica.write() {
                        g.set_last_txn_id(None);
                    }
                    break End::Lost(format!("bad update: {e}"));
                }
            }
            "update" if n.params.get(0) == Some(&json!("server")) => {
                if server_update_says_not_leader(&n.params, &db) {
                    break End::Next(format!("{remote} is no longer the leader of {db}"));
                }
            }
            "monitor_canceled" => break End::Lost("server canceled the monitor".into()),
            other => debug!(method = other, "ignoring notification"),
        }
        shared.applied.send_replace((generation, n.seq));
    }
}

fn replica_last_txn(shared: &Shared, schema: &Arc<DatabaseSchema>) -> Option<String> {
    let r = shared.replica.read().ok()?;
    // A different schema (server upgraded) invalidates the replica.
    if r.schema().tables.len() != schema.tables.len() || r.schema().version != schema.version {
        return None;
    }
    r.last_txn_id().map(str::to_owned)
}

fn ensure_replica(shared: &Shared, schema: &Arc<DatabaseSchema>) {
    if let Ok(mut g) = shared.replica.write()
        && g.schema().version != schema.version
        && let Ok(r) = Replica::new(schema.clone(), &shared.config.tables)
    {
        *g = r;
    }
}

fn prime_replica(
    shared: &Shared,
    schema: &Arc<DatabaseSchema>,
    method: MonitorMethod,
    reply: &Json,
) -> Result<()> {
    let (found, txn, updates) = match method {
        MonitorMethod::CondSince => {
            let found = reply.get(0).and_then(Json::as_bool).unwrap_or(false);
            let txn = reply.get(1).and_then(Json::as_str).map(str::to_owned);
            (
                found,
                txn,
                parse_table_updates(reply.get(2).unwrap_or(&Json::Null), true)?,
            )
        }
        MonitorMethod::Cond => (false, None, parse_table_updates(reply, true)?),
        MonitorMethod::Plain => (false, None, parse_table_updates(reply, false)?),
    };
    let changes = {
        let mut g = shared.replica.write().map_err(|_| Error::Closed {
            remote: "replica".into(),
        })?;
        if g.schema().version != schema.version || g.schema().tables.len() != schema.tables.len() {
            *g = Replica::new(schema.clone(), &shared.config.tables)?;
        }
        let rep = &mut *g;
        let changes = if found {
            rep.apply(&updates)?
        } else {
            rep.replace(&updates)?
        };
        rep.set_last_txn_id(txn);
        changes
    };
    let _ = shared.changes.send(Arc::new(Update {
        changes,
        resync: !found,
        resumed: found,
    }));
    Ok(())
}

fn apply_updates(shared: &Shared, updates: &TableUpdates, txn: Option<String>) -> Result<()> {
    let changes = {
        let mut g = shared.replica.write().map_err(|_| Error::Closed {
            remote: "replica".into(),
        })?;
        let rep = &mut *g;
        let c = rep.apply(updates)?;
        if txn.is_some() {
            rep.set_last_txn_id(txn);
        }
        c
    };
    if !changes.is_empty() {
        let _ = shared.changes.send(Arc::new(Update {
            changes,
            resync: false,
            resumed: false,
        }));
    }
    Ok(())
}

/// What `_Server.Database` says about one database on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// `standalone`, `clustered` or `relay`.
    pub model: String,
    /// This server is the leader (always true for standalone).
    pub leader: bool,
    /// This server is connected to its cluster.
    pub connected: bool,
}

/// Asks a server about `db` in its `_Server` database.
pub async fn server_status(conn: &Connection, db: &str) -> Result<ServerStatus> {
    let ops = vec![Operation::Select {
        table: "Database".into(),
        conditions: vec![crate::protocol::Condition::eq(
            "name",
            crate::value::Datum::scalar(db),
        )],
        columns: Some(vec!["model".into(), "leader".into(), "connected".into()]),
    }];
    let r = conn
        .call("transact", transact_params("_Server", &ops))
        .await?;
    let res = parse_transact_result("_Server", &ops, &r)?;
    let row = match res.first() {
        Some(OpResult::Rows(rows)) => rows.first().cloned(),
        _ => None,
    }
    .ok_or_else(|| Error::Protocol {
        remote: conn.remote().into(),
        reason: format!("server has no database {db}"),
    })?;
    Ok(ServerStatus {
        model: row
            .get("model")
            .and_then(Json::as_str)
            .unwrap_or("standalone")
            .to_owned(),
        leader: row.get("leader").and_then(Json::as_bool).unwrap_or(true),
        connected: row.get("connected").and_then(Json::as_bool).unwrap_or(true),
    })
}

fn server_update_says_not_leader(params: &Json, db: &str) -> bool {
    let Some(rows) = params
        .get(1)
        .and_then(|u| u.get("Database"))
        .and_then(Json::as_object)
    else {
        return false;
    };
    rows.values().any(|r| {
        let new = r.get("new");
        let name = new.and_then(|n| n.get("name")).and_then(Json::as_str);
        let leader = new.and_then(|n| n.get("leader")).and_then(Json::as_bool);
        let connected = new.and_then(|n| n.get("connected")).and_then(Json::as_bool);
        name == Some(db) && (leader == Some(false) || connected == Some(false))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_update_leadership() {
        let p = json!(["server", {"Database": {"x": {"new": {"name": "OVN_Northbound", "leader": false, "connected": true}}}}]);
        assert!(server_update_says_not_leader(&p, "OVN_Northbound"));
        assert!(!server_update_says_not_leader(&p, "OVN_Southbound"));
        let p = json!(["server", {"Database": {"x": {"new": {"name": "OVN_Northbound", "leader": true, "connected": true}}}}]);
        assert!(!server_update_says_not_leader(&p, "OVN_Northbound"));
    }
}
