//! The socket-owning part of the crate, one concept per file:
//! - [`remote`](Remote): where a server listens and the TLS material (pure parsing);
//! - `tls`: the rustls handshake for `ssl:` remotes;
//! - [`Connection`]: one JSON-RPC stream (echo replies, request/response matching by id,
//!   inactivity probe);
//! - [`ClientConfig`]: how to reach and use one database;
//! - the session: keeps to the right server of a remote list (RAFT leader via
//!   `_Server.Database`), reconnects with backoff, runs `monitor_cond_since` (falling back to
//!   `monitor_cond`/`monitor`) into the [`Replica`](crate::replica::Replica) and publishes
//!   changes on a broadcast stream;
//! - [`Client`]: commits transactions and reads the replica the session keeps.
//!
//! Imports go one way, `remote` ← `tls` ← `connection` ← `session` ← `client`, so no two
//! files import each other.

mod client;
mod config;
mod connection;
mod remote;
mod session;
mod tls;

pub use client::{Client, ReplicaRef};
pub use config::{ClientConfig, SchemaCheck};
pub use connection::{Connection, ConnectionOptions, Notification};
pub use remote::{Remote, TlsConfig, parse_remotes};
pub use session::{ServerStatus, Update, server_status};
