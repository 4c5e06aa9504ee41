//! A typed OVSDB client (RFC 7047 plus the Open vSwitch extensions) for the OVN Northbound and
//! Southbound databases and the local `Open_vSwitch` database, with an in-memory replica kept
//! current by monitors.
//!
//! ```no_run
//! use std::time::Duration;
//! use ovn_api::tables::nb::{LogicalSwitch, LogicalSwitchPort};
//! use ovn_api::txn::Txn;
//! use ovn_api::{Client, ClientConfig};
//!
//! # async fn demo() -> ovn_api::Result<()> {
//! // Every typed NB table is monitored and checked against the server's schema at connect.
//! // A comma-separated list is a RAFT cluster: the client keeps to its leader.
//! let nb = Client::connect(ClientConfig::northbound("tcp:10.0.0.1:6641,tcp:10.0.0.2:6641")).await?;
//!
//! // Typed transaction, a plain value: insert a port and add it to a switch, in one round trip.
//! let Some(ls) = nb.replica().one_by_name::<LogicalSwitch>("net1")? else { return Ok(()) };
//! let mut tx = Txn::new();
//! let port = tx.insert(&LogicalSwitchPort {
//!     name: "pod1.default.net1.default.ovn".into(),
//!     addresses: vec!["0a:58:0a:00:00:05 10.0.0.5".into()],
//!     external_ids: [("vendor".to_string(), "kube-ovn".to_string())].into(),
//!     ..Default::default()
//! });
//! tx.mutate(ls.uuid, [LogicalSwitch::PORTS.insert(&port)]);
//! let done = nb.commit(tx).await?; // errors name the table, the op and the server's details
//!
//! // The replica already holds the new row (read-your-writes), with indexes.
//! let ours = nb.replica().by_external_id::<LogicalSwitchPort>("vendor", "kube-ovn")?;
//! assert!(ours.iter().any(|p| Some(p.uuid) == done.uuid(&port)));
//!
//! // Wait for a condition without polling: re-checked after every monitor update.
//! nb.wait_until(Duration::from_secs(10), |r| {
//!     r.table("Logical_Switch_Port").is_some_and(|t| t.by_name("pod1.default.net1.default.ovn").any(|p| p.get("up").is_some_and(|u| !u.is_empty())))
//! }).await?;
//!
//! // Or follow every change.
//! let mut changes = nb.subscribe();
//! while let Ok(update) = changes.recv().await {
//!     for c in &update.changes { println!("{:?} {} {}", c.kind, c.table(), c.uuid()); }
//! }
//! # Ok(()) }
//! ```
//!
//! Layers, pure ones first:
//! - [`value`]: atoms, sets, maps, UUIDs and their JSON wire forms;
//! - [`schema`]: database schemas from `get_schema` or `.ovsschema` files, value constraints;
//! - [`codec`]: JSON-RPC framing over a byte stream;
//! - [`protocol`]: transaction operations, results, validation and monitor updates;
//! - [`replica`]: the indexed in-memory copy of monitored tables;
//! - [`rpc`]: the only module that owns a socket: connection, reconnect with backoff, inactivity
//!   probe, RAFT leader tracking, `monitor_cond_since` with resume, read-your-writes;
//! - [`tables`] and [`txn`]: typed rows for NB, SB and `Open_vSwitch` (generated from the
//!   schemas) and the typed transaction: a plain value, built without a connection and
//!   committed by [`Client::commit`].
//!
//! With the `testing` feature, `testing` starts real `ovsdb-server` processes (standalone, TLS
//! or RAFT clusters) for tests in this and other crates.

pub mod codec;
pub mod error;
pub mod protocol;
pub mod replica;
pub mod rpc;
pub mod schema;
pub mod tables;
#[cfg(feature = "testing")]
pub mod testing;
pub mod txn;
pub mod unixctl;
pub mod value;

pub use error::{Error, Result};
pub use rpc::{Client, ClientConfig, Remote, TlsConfig, Update, parse_remotes};
