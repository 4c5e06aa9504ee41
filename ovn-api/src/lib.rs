//! A typed OVSDB client (RFC 7047 plus the Open vSwitch extensions) for the OVN Northbound and
//! Southbound databases and the local `Open_vSwitch` database, with an in-memory replica kept
//! current by monitors.
//!
//! Layers, pure ones first:
//! - [`value`]: atoms, sets, maps, UUIDs and their JSON wire forms;
//! - [`schema`]: database schemas from `get_schema` or `.ovsschema` files;
//! - [`codec`]: JSON-RPC framing over a byte stream;
//! - [`protocol`]: transaction operations, results and monitor updates;
//! - [`replica`]: the indexed in-memory copy of monitored tables;
//! - [`rpc`]: the only module that owns a socket: connection, reconnect, leader tracking, monitor;
//! - [`tables`] and [`txn`]: typed rows for NB, SB and `Open_vSwitch` and a typed transaction
//!   builder.
//!
//! With the `testing` feature, [`testing`] starts real `ovsdb-server` processes for tests.

pub mod codec;
pub mod error;
pub mod protocol;
pub mod replica;
pub mod rpc;
pub mod schema;
pub mod tables;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
pub mod txn;
pub mod value;

pub use error::{Error, Result};
pub use rpc::{Client, ClientConfig, Remote, TlsConfig, Update};
