//! The [`Client`] of one database: waits for a session, sends transactions (checked against
//! the live schema, read-your-writes), and gives read access to the replica the session keeps.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::{broadcast, watch};

use super::config::ClientConfig;
use super::connection::Connection;
use super::remote::parse_remotes;
use super::session::{ConnState, Shared, Update, supervise};
use crate::error::{Error, Result};
use crate::protocol::{OpResult, Operation, parse_transact_result, transact_params};
use crate::replica::Replica;
use crate::schema::DatabaseSchema;
use crate::txn::{Committed, Txn};

/// A client of one database: a supervised session plus the replica.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read access to the replica. Do not hold it across an `.await`.
pub type ReplicaRef<'a> = RwLockReadGuard<'a, Replica>;

impl Client {
    /// Connects (trying every remote, with backoff) until the first session is up with its
    /// monitor primed, or `config.request_timeout` passes. Schema check failures are returned
    /// at once.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let remotes = parse_remotes(&config.remotes)?;
        let (state, _) = watch::channel(ConnState::default());
        let (applied, _) = watch::channel((0, 0));
        let (changes, _) = broadcast::channel(4096);
        let empty = Arc::new(DatabaseSchema {
            name: config.database.clone(),
            version: String::new(),
            cksum: None,
            tables: BTreeMap::new(),
        });
        let replica = RwLock::new(Replica::new(empty, &[])?);
        let shared = Arc::new(Shared {
            config,
            remotes,
            state,
            applied,
            replica,
            changes,
            schema: RwLock::new(None),
            fatal: Mutex::new(None),
            last_error: Mutex::new(None),
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        let mut st = shared.state.subscribe();
        let task = tokio::spawn(supervise(shared.clone()));
        let client = Client { shared, task };
        let timeout = client.shared.config.request_timeout;
        let ready = tokio::time::timeout(timeout, async {
            loop {
                if let Some(e) = client.take_fatal() {
                    return Err(e);
                }
                if st.borrow_and_update().conn.is_some() {
                    return Ok(());
                }
                if st.changed().await.is_err() {
                    return Err(client.take_fatal().unwrap_or_else(|| Error::Closed {
                        remote: client.shared.config.remotes.clone(),
                    }));
                }
            }
        })
        .await;
        match ready {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let last = client.shared.last_error.lock().ok().and_then(|l| l.clone());
                Err(Error::Timeout {
                    what: format!(
                        "a session with {} on {}{}",
                        client.shared.config.database,
                        client.shared.config.remotes,
                        last.map(|l| format!(" (last error: {l})"))
                            .unwrap_or_default()
                    ),
                    after: timeout,
                })
            }
        }
    }

    fn take_fatal(&self) -> Option<Error> {
        self.shared.fatal.lock().ok().and_then(|mut f| f.take())
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.shared.config.database
    }

    /// The live server schema (as of the first connect).
    pub fn schema(&self) -> Option<Arc<DatabaseSchema>> {
        self.shared.schema.read().ok().and_then(|s| s.clone())
    }

    /// The remote of the current session, if connected.
    pub fn current_remote(&self) -> Option<String> {
        self.shared
            .state
            .borrow()
            .conn
            .as_ref()
            .map(|c| c.remote().to_owned())
    }

    /// Whether a session is up now (false while reconnecting, e.g. after the server went away
    /// or while a RAFT cluster elects a leader).
    pub fn is_connected(&self) -> bool {
        self.shared
            .state
            .borrow()
            .conn
            .as_ref()
            .is_some_and(|c| !c.is_closed())
    }

    /// How many sessions have been established so far (1 after connect; grows with reconnects).
    pub fn sessions(&self) -> u64 {
        self.shared.state.borrow().generation
    }

    /// Reads the replica. Do not hold the guard across an `.await`.
    pub fn replica(&self) -> ReplicaRef<'_> {
        // A poisoned lock means a panic while applying an update; the data is still readable.
        self.shared
            .replica
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes to replica changes (each message is one applied update, in order).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Update>> {
        self.shared.changes.subscribe()
    }

    /// Waits until `cond` holds on the replica, re-checking after every update.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&Replica) -> bool,
    ) -> Result<()> {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cond(&self.replica()) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(Error::Closed {
                        remote: self.shared.config.remotes.clone(),
                    });
                }
                Err(_) => {
                    return Err(Error::Timeout {
                        what: "replica condition".into(),
                        after: timeout,
                    });
                }
            }
        }
    }

    fn last_error(&self) -> String {
        self.shared
            .last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default()
    }

    async fn session(&self) -> Result<(Connection, u64)> {
        let mut st = self.shared.state.subscribe();
        let timeout = self.shared.config.request_timeout;
        let r = tokio::time::timeout(timeout, async {
            loop {
                if self.shared.stopped.load(Ordering::SeqCst) || self.task.is_finished() {
                    // The supervisor only stops for good on a schema mismatch.
                    return Err(Error::Closed {
                        remote: format!("{} ({})", self.shared.config.remotes, self.last_error()),
                    });
                }
                {
                    let s = st.borrow_and_update();
                    if let Some(c) = &s.conn
                        && !c.is_closed()
                    {
                        return Ok((c.clone(), s.generation));
                    }
                }
                if st.changed().await.is_err() {
                    return Err(Error::Closed {
                        remote: self.shared.config.remotes.clone(),
                    });
                }
            }
        })
        .await;
        r.unwrap_or_else(|_| {
            Err(Error::Disconnected {
                remote: self.shared.config.remotes.clone(),
                context: format!(
                    "no session within {timeout:?}; last error: {}",
                    self.last_error()
                ),
            })
        })
    }

    /// Sends a raw JSON-RPC request on the current session.
    pub async fn call(&self, method: &str, params: Json) -> Result<Json> {
        let (c, _) = self.session().await?;
        c.call(method, params).await
    }

    /// Commits a typed transaction. An empty one succeeds without a round trip; otherwise as
    /// [`Client::transact`].
    pub async fn commit(&self, tx: Txn) -> Result<Committed> {
        let (ops, inserts) = tx.into_parts();
        if ops.is_empty() {
            return Ok(Committed::new(inserts, Vec::new()));
        }
        let results = self.transact(ops).await?;
        Ok(Committed::new(inserts, results))
    }

    /// Runs a transaction. Values are first checked against the live schema
    /// ([`Error::Invalid`]: enum, range, length, count). Operation failures name the table and op. On success (and with
    /// `read_your_writes`, the default) the replica already reflects the transaction's effects
    /// on monitored tables. A [`Error::Disconnected`] means the outcome is unknown.
    pub async fn transact(&self, ops: Vec<Operation>) -> Result<Vec<OpResult>> {
        let db = &self.shared.config.database;
        if self.shared.config.validate
            && let Some(schema) = self.schema()
        {
            for op in &ops {
                crate::protocol::validate(&schema, op)?;
            }
        }
        let (sent, origin) = crate::protocol::guard_uuid_targets(ops);
        let (conn, generation) = self.session().await?;
        let (result, _) = conn
            .call_seq("transact", transact_params(db, &sent))
            .await?;
        let parsed = parse_transact_result(db, &sent, &result)
            .map(|results| {
                // The guards' results are not the caller's.
                results
                    .into_iter()
                    .zip(&origin)
                    .filter_map(|(r, o)| o.map(|_| r))
                    .collect()
            })
            .map_err(|e| match e {
                // A guard failed: say what it means.
                Error::Operation {
                    db,
                    table,
                    index,
                    details,
                    ..
                } if origin.get(index as usize).is_some_and(Option::is_none) => Error::Operation {
                    db,
                    table: table.clone(),
                    op: "wait",
                    index,
                    error: "row gone".into(),
                    details: Some(format!(
                        "a row of {table} this transaction changes no longer exists (it was \
                             planned on an older view of the database){}",
                        details
                            .map(|d| format!("; server: {d}"))
                            .unwrap_or_default()
                    )),
                },
                // Any other: its index among the caller's operations.
                Error::Operation {
                    db,
                    table,
                    op,
                    index,
                    error,
                    details,
                } => Error::Operation {
                    db,
                    table,
                    op,
                    index: origin
                        .get(index as usize)
                        .copied()
                        .flatten()
                        .and_then(|i| u32::try_from(i).ok())
                        .unwrap_or(index),
                    error,
                    details,
                },
                other => other,
            });
        if parsed.is_ok()
            && self.shared.config.read_your_writes
            && !self.shared.config.tables.is_empty()
        {
            // ovsdb-server sends a transaction's reply before the monitor updates it caused,
            // but flushes pending updates before it reads the next request of a session. So
            // the reply to an echo sent now comes after those updates: wait for it, then for
            // every notification before it to be applied.
            if let Ok((_, seq)) = conn.call_seq("echo", json!(["read-your-writes"])).await {
                self.wait_applied(generation, seq).await;
            }
        }
        parsed
    }

    async fn wait_applied(&self, generation: u64, seq: u64) {
        let mut rx = self.shared.applied.subscribe();
        let _ = tokio::time::timeout(self.shared.config.request_timeout, async {
            loop {
                {
                    let (g, s) = *rx.borrow_and_update();
                    if g != generation || s >= seq {
                        return;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Closes the client (the supervisor stops; in-flight requests fail).
    pub fn close(self) {
        self.task.abort();
    }
}
