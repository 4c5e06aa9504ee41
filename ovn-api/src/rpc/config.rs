//! How to reach and use one database: remotes, monitored tables, schema checks, timeouts.

use std::time::Duration;

use super::remote::TlsConfig;
use crate::codec::DEFAULT_MAX_MESSAGE;
use crate::error::Result;
use crate::protocol::MonitorMethod;
use crate::schema::DatabaseSchema;

/// A typed-table check run against the live schema at every connect.
pub type SchemaCheck = fn(&DatabaseSchema) -> Result<()>;

/// How to reach and use one database.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Comma-separated remotes (`unix:`, `tcp:`, `ssl:`).
    pub remotes: String,
    /// Database name (`OVN_Northbound`, `OVN_Southbound`, `Open_vSwitch`).
    pub database: String,
    /// Tables to monitor into the replica (all columns).
    pub tables: Vec<String>,
    /// Checks of the live schema (typed tables register theirs).
    pub checks: Vec<SchemaCheck>,
    /// Only use a clustered server while it is the leader (default true).
    pub leader_only: bool,
    /// Preferred monitor method (falls back when the server lacks it).
    pub monitor_method: MonitorMethod,
    /// Inactivity probe interval.
    pub probe_interval: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// How long `transact` waits for a connection before failing.
    pub request_timeout: Duration,
    /// Largest accepted message.
    pub max_message: usize,
    /// TLS material for `ssl:` remotes.
    pub tls: Option<TlsConfig>,
    /// `transact` returns only once the replica reflects the transaction (one extra echo
    /// round trip per transaction; default true).
    pub read_your_writes: bool,
    /// Check written values against the live schema before sending (default true).
    pub validate: bool,
}

impl ClientConfig {
    /// A configuration with defaults: leader-only, `monitor_cond_since`, 5 s probe, backoff
    /// 100 ms..8 s, 30 s request timeout.
    pub fn new(remotes: impl Into<String>, database: impl Into<String>) -> Self {
        ClientConfig {
            remotes: remotes.into(),
            database: database.into(),
            tables: Vec::new(),
            checks: Vec::new(),
            leader_only: true,
            monitor_method: MonitorMethod::CondSince,
            probe_interval: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(8),
            request_timeout: Duration::from_secs(30),
            max_message: DEFAULT_MAX_MESSAGE,
            tls: None,
            read_your_writes: true,
            validate: true,
        }
    }

    /// Monitors a table by name (untyped).
    pub fn monitor_table(mut self, table: &str) -> Self {
        if !self.tables.iter().any(|t| t == table) {
            self.tables.push(table.to_owned());
        }
        self
    }

    /// Adds a schema check.
    pub fn check(mut self, check: SchemaCheck) -> Self {
        self.checks.push(check);
        self
    }
}
