//! OVN Northbound writes for VPCs, subnets and attachments, through `ovn-api`'s typed
//! transactions. Every function is idempotent (it reads the replica and writes only what is
//! missing or different) and makes one transaction per logical change. Rows carry
//! `external_ids:vendor=kube-ovn` and their owner; we never touch a row without our vendor tag.
//!
//! Each change has two halves. A planner, `plan_*(&Replica, &mut Txn, ..)`, reads only the
//! replica and adds operations to a transaction value; every check comes before its first
//! operation, so on an error the transaction is unchanged and planners compose (a pod's ports
//! and QoS rows go in one transaction). Its async `ensure_*`/`delete_*` reads the client's
//! replica, plans, and sends the transaction through [`Nb::commit`]. Planner tests run on
//! `ovn_api::testing::FixtureReplica` without a server.
//!
//! - [`router`]: a Vpc's logical router;
//! - [`switch`]: a Subnet's logical switch and its router port pair;
//! - [`subnet_acl`]: a Subnet's own ACLs on its switch (`acls`, `private` and `allowSubnets`);
//! - [`port`]: an attachment's logical switch port, with its QoS rows;
//! - [`qos`]: an attachment's bandwidth limits as `QoS` rows;
//! - [`routes`], [`dhcp`]: a Vpc's static and policy routes, a Subnet's DHCP options;
//! - [`security_group`]: a SecurityGroup's port group, ACLs and address sets, and a port's
//!   memberships (written with the port).

use std::collections::BTreeMap;
use std::sync::Arc;

use crds::naming::EXTERNAL_ID_VENDOR;
use ovn_api::Client;
use ovn_api::tables::Table;
use ovn_api::tables::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};

use crate::metrics::{Metrics, Outcome};

pub mod dhcp;
pub mod policy;
pub mod port;
pub mod qos;
pub mod router;
pub mod routes;
pub mod security_group;
pub mod subnet_acl;
pub mod switch;

#[cfg(test)]
mod plan_tests;

pub use port::{
    PortPlan, PortSecurity, attachment_ports, delete_port, ensure_attachments, ensure_port,
    plan_attachments, plan_delete_port, plan_port,
};
pub use qos::{Limit, QosDirection, QosPlan, delete_qos, ensure_qos, plan_delete_qos, plan_qos};
pub use router::{
    delete_router, ensure_router, owned_routers, plan_delete_router, plan_router, router_port_mac,
};
pub use switch::{
    SwitchPlan, delete_switch, ensure_switch, owned_switches, plan_delete_switch, plan_switch,
    switch_exists,
};

/// Tables the controller monitors in NB.
pub const TABLES: [&str; 11] = [
    "ACL",
    "Address_Set",
    "DHCP_Options",
    "Logical_Router",
    "Logical_Router_Port",
    "Logical_Router_Static_Route",
    "Logical_Router_Policy",
    "Logical_Switch",
    "Logical_Switch_Port",
    "Port_Group",
    "QoS",
];

/// A Northbound failure, naming the object.
#[derive(Debug, thiserror::Error)]
pub enum NbError {
    /// The database request failed.
    #[error("OVN NB: {what}: {source}")]
    Db {
        /// What was being done.
        what: String,
        /// The client's error.
        source: ovn_api::Error,
    },
    /// A row with our name exists but is not ours.
    #[error("OVN NB: {table} {name} exists and was not created by kube-ovn; refusing to adopt it")]
    NotOurs {
        /// Table.
        table: &'static str,
        /// Row name.
        name: String,
    },
    /// The logical switch an attachment needs does not exist.
    #[error("OVN NB: logical switch {0} does not exist (is its Subnet ready?)")]
    NoSwitch(String),
    /// Security groups a port names have no port group (yet).
    #[error(
        "security group(s) {0:?} do not exist (or are not ready yet): the port keeps its current state until they do"
    )]
    NoSecurityGroup(Vec<String>),
    /// Security groups a port would join are being deleted.
    #[error(
        "security group(s) {0:?} are being deleted and take no new members: the port keeps its current state"
    )]
    SecurityGroupDeleting(Vec<String>),
    /// Two groups whose names differ only in `-` and `.` map to one port group.
    #[error(
        "OVN NB: port group {port_group} of SecurityGroup {group} belongs to SecurityGroup {owner:?} (names that differ only in '-' and '.' share a port group)"
    )]
    GroupClash {
        /// The port group.
        port_group: String,
        /// The group asking.
        group: String,
        /// The group owning it.
        owner: String,
    },
}

fn db(what: impl Into<String>) -> impl FnOnce(ovn_api::Error) -> NbError {
    let what = what.into();
    move |source| NbError::Db { what, source }
}

/// The NB client with the controller's transaction metrics. Reads go straight to the client
/// (it derefs to [`Client`]); every write goes through [`Nb::commit`], which times it.
#[derive(Debug)]
pub struct Nb {
    client: Client,
    metrics: Arc<Metrics>,
}

impl std::ops::Deref for Nb {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Nb {
    /// Reports transactions to `metrics` (instead of a private registry).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sends `tx` (nothing for an empty one), recording its latency and result.
    async fn commit(&self, tx: ovn_api::txn::Txn, what: String) -> Result<(), NbError> {
        if tx.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let committed = self.client.commit(tx).await;
        self.metrics
            .observe_transaction(Outcome::of(&committed), started.elapsed());
        committed.map(drop).map_err(db(what))
    }
}

/// Connects to NB at `remotes` (comma-separated), monitoring the tables we read and checking
/// their typed columns against the live schema.
pub async fn connect(remotes: &str) -> Result<Nb, NbError> {
    connect_with(remotes, None).await
}

/// [`connect`], with TLS material for `ssl:` remotes.
pub async fn connect_with(remotes: &str, tls: Option<ovn_api::TlsConfig>) -> Result<Nb, NbError> {
    let mut config = ovn_api::ClientConfig::new(remotes, "OVN_Northbound")
        .check(LogicalRouter::check)
        .check(LogicalRouterPort::check)
        .check(ovn_api::tables::nb::LogicalRouterStaticRoute::check)
        .check(ovn_api::tables::nb::LogicalRouterPolicy::check)
        .check(LogicalSwitch::check)
        .check(LogicalSwitchPort::check)
        .check(ovn_api::tables::nb::Qos::check)
        .check(ovn_api::tables::nb::Acl::check)
        .check(ovn_api::tables::nb::AddressSet::check)
        .check(ovn_api::tables::nb::PortGroup::check);
    for table in TABLES {
        config = config.monitor_table(table);
    }
    config.tls = tls;
    let client = Client::connect(config)
        .await
        .map_err(db(format!("connecting to {remotes}")))?;
    Ok(Nb {
        client,
        metrics: Arc::default(),
    })
}

/// `external_ids` for a row we own.
pub fn owned_ids(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    std::iter::once(EXTERNAL_ID_VENDOR)
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn is_ours(ids: &BTreeMap<String, String>) -> bool {
    ids.get(EXTERNAL_ID_VENDOR.0).map(String::as_str) == Some(EXTERNAL_ID_VENDOR.1)
}
