//! The one error type of this crate. Every variant names what it was about: the remote, the
//! database, the table, the column or the operation, so a log line is enough to act on.

use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to an OVSDB server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A JSON value did not have the shape RFC 7047 §5.1 requires for an OVSDB datum.
    #[error("invalid OVSDB value: {0}")]
    Value(String),

    /// A schema document could not be understood.
    #[error("invalid OVSDB schema {schema}: {reason}")]
    Schema {
        /// Database name, or the file the schema came from.
        schema: String,
        /// What was wrong.
        reason: String,
    },

    /// The byte stream from a peer was not valid JSON-RPC.
    #[error("protocol error from {remote}: {reason}")]
    Protocol {
        /// The remote (`unix:...`, `tcp:...`) or `decoder` for pure decoding.
        remote: String,
        /// What was wrong.
        reason: String,
    },

    /// A single JSON-RPC message was larger than the configured limit.
    #[error("message from {remote} exceeds the limit of {limit} bytes")]
    Oversized {
        /// The remote.
        remote: String,
        /// The configured limit.
        limit: usize,
    },

    /// A remote string could not be parsed.
    #[error("invalid remote {remote:?}: {reason}")]
    InvalidRemote {
        /// The remote as given.
        remote: String,
        /// What was wrong.
        reason: String,
    },

    /// Connecting or talking to the remote failed at the socket level.
    #[error("I/O error on {remote}: {source}")]
    Io {
        /// The remote.
        remote: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// TLS setup failed (certificates, keys, handshake).
    #[error("TLS error on {remote}: {reason}")]
    Tls {
        /// The remote.
        remote: String,
        /// What was wrong.
        reason: String,
    },

    /// The connection was lost (or never came up) before the reply arrived. For a `transact`
    /// the outcome is unknown: the server may have committed it.
    #[error("not connected to {remote} ({context})")]
    Disconnected {
        /// The remote, or the list of remotes.
        remote: String,
        /// What was in flight.
        context: String,
    },

    /// No reply within the deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What we waited for.
        what: String,
        /// How long we waited.
        after: Duration,
    },

    /// The server answered a JSON-RPC request with an error.
    #[error("{method} on {remote} failed: {error}")]
    Rpc {
        /// The remote.
        remote: String,
        /// JSON-RPC method.
        method: String,
        /// The server's error (JSON text).
        error: String,
    },

    /// One operation of a transaction failed.
    #[error(
        "{db}: {op} on table {table} (operation #{index}) failed: {error}{}",
        fmt_details(details)
    )]
    Operation {
        /// Database name.
        db: String,
        /// Table the operation targeted (empty for table-less operations).
        table: String,
        /// The operation (`insert`, `mutate`, ...).
        op: &'static str,
        /// Index of the operation in the transaction.
        index: u32,
        /// The server's `error` string (e.g. `constraint violation`).
        error: String,
        /// The server's `details`, if any.
        details: Option<String>,
    },

    /// All operations succeeded but the commit failed (referential integrity, constraint
    /// checked at commit, not leader, ...).
    #[error("{db}: transaction commit failed: {error}{}", fmt_details(details))]
    Commit {
        /// Database name.
        db: String,
        /// The server's `error` string.
        error: String,
        /// The server's `details`, if any.
        details: Option<String>,
    },

    /// The live server's schema lacks something a typed table needs, or disagrees on its type.
    #[error("schema mismatch in {db}: table {table}{}: {reason}", column.as_ref().map(|c| format!(" column {c}")).unwrap_or_default())]
    SchemaMismatch {
        /// Database name.
        db: String,
        /// Table.
        table: String,
        /// Column, if the problem is a column.
        column: Option<String>,
        /// What is wrong.
        reason: String,
    },

    /// A row from the server could not be converted into a typed table struct.
    #[error("table {table} column {column}: {reason}")]
    Column {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// What was wrong.
        reason: String,
    },

    /// The client was shut down.
    #[error("client for {remote} is closed")]
    Closed {
        /// The remote(s).
        remote: String,
    },

    /// A value to be written breaks the live schema's constraints (checked before sending).
    #[error("{db}: {op} on table {table} column {column}: {reason}")]
    Invalid {
        /// Database name.
        db: String,
        /// Table.
        table: String,
        /// The operation (`insert`, `update`, `mutate`).
        op: &'static str,
        /// Column.
        column: String,
        /// Which constraint failed.
        reason: String,
    },

    /// A test-support program could not be run (only with the `testing` feature).
    #[error("test support: {0}")]
    Testing(String),
}

fn fmt_details(details: &Option<String>) -> String {
    match details {
        Some(d) if !d.is_empty() => format!(" ({d})"),
        _ => String::new(),
    }
}

impl Error {
    /// True when retrying the same request later (on a new connection) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Disconnected { .. } | Error::Timeout { .. } | Error::Io { .. } => true,
            Error::Commit { error, .. } => error == "not leader" || error == "timed out",
            _ => false,
        }
    }
}
