//! The socket-owning part of the crate, one concept per file (all public items are
//! re-exported here, so paths are `ovn_api::rpc::Client`, `ovn_api::rpc::parse_remotes`, ...):
//! - `remote.rs`: where a server listens ([`Remote`], [`parse_remotes`]) and the TLS material
//!   ([`TlsConfig`]); pure parsing;
//! - `tls.rs`: the rustls handshake for `ssl:` remotes;
//! - `connection.rs`: one JSON-RPC stream, [`Connection`] (echo replies, request/response
//!   matching by id, inactivity probe);
//! - `config.rs`: how to reach and use one database, [`ClientConfig`];
//! - `session.rs`: the supervised session behind a client: keeps to the right server of a remote list (RAFT leader via
//!   `_Server.Database`), reconnects with backoff, runs `monitor_cond_since` (falling back to
//!   `monitor_cond`/`monitor`) into the [`Replica`](crate::replica::Replica) and publishes
//!   changes ([`Update`]) on a broadcast stream;
//! - `client.rs`: the [`Client`], which commits transactions and reads the replica the session
//!   keeps.
//!
//! Imports go one way, `remote` ← `tls` ← `connection` ← `session` ← `client` (`config` beside
//! them), so no two files import each other.

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
