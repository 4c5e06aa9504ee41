//! OVN Northbound writes for VPCs, subnets and attachments, through `ovn-api`'s typed
//! transactions. Every function is idempotent (it reads the replica and writes only what is
//! missing or different) and makes one transaction per logical change. Rows carry
//! `external_ids:vendor=kube-ovn` and their owner; we never touch a row without our vendor tag.

use std::collections::BTreeMap;
use std::sync::Arc;

use crds::naming::{EXTERNAL_ID_VENDOR, router_port, switch_router_port};
use ipnet::IpNet;
use ovn_api::Client;
use ovn_api::tables::Table;
use ovn_api::tables::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};
use ovn_api::txn::Txn;
use ovn_api::value::Atom;

use crate::metrics::{Metrics, Outcome};

pub mod dhcp;
pub mod qos;
pub mod routes;

pub use qos::{Limit, QosDirection, QosPlan, delete_qos, ensure_qos, plan_qos};

/// Tables the controller monitors in NB.
pub const TABLES: [&str; 8] = [
    "DHCP_Options",
    "Logical_Router",
    "Logical_Router_Port",
    "Logical_Router_Static_Route",
    "Logical_Router_Policy",
    "Logical_Switch",
    "Logical_Switch_Port",
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
    let mut config = ovn_api::ClientConfig::new(remotes, "OVN_Northbound")
        .check(LogicalRouter::check)
        .check(LogicalRouterPort::check)
        .check(ovn_api::tables::nb::LogicalRouterStaticRoute::check)
        .check(ovn_api::tables::nb::LogicalRouterPolicy::check)
        .check(LogicalSwitch::check)
        .check(LogicalSwitchPort::check)
        .check(ovn_api::tables::nb::Qos::check);
    for table in TABLES {
        config = config.monitor_table(table);
    }
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

/// A deterministic, locally administered unicast MAC for a router port (stable across
/// restarts, so re-reconciling never flaps the port).
pub fn router_port_mac(name: &str) -> String {
    let b = crds::naming::fnv1a64(&[name]).to_be_bytes();
    crds::MacAddr([0x0a, b[3], b[4], b[5], b[6], b[7]]).to_string()
}

/// Ensures the logical router of VPC `vpc`.
pub async fn ensure_router(nb: &Nb, vpc: &str) -> Result<(), NbError> {
    let existing = nb
        .replica()
        .one_by_name::<LogicalRouter>(vpc)
        .map_err(db(format!("reading router {vpc}")))?;
    match existing {
        Some(lr) if is_ours(&lr.external_ids) => Ok(()),
        Some(_) => Err(NbError::NotOurs {
            table: "Logical_Router",
            name: vpc.to_owned(),
        }),
        None => {
            let mut tx = Txn::new();
            tx.insert(&LogicalRouter {
                name: vpc.to_owned(),
                external_ids: owned_ids(&[("vpc", vpc)]),
                ..Default::default()
            });
            nb.commit(tx, format!("creating router {vpc}")).await?;
            Ok(())
        }
    }
}

/// Deletes the router of `vpc` if it is ours. Router ports go with it (strong references).
pub async fn delete_router(nb: &Nb, vpc: &str) -> Result<(), NbError> {
    let existing = nb
        .replica()
        .one_by_name::<LogicalRouter>(vpc)
        .map_err(db(format!("reading router {vpc}")))?;
    if let Some(lr) = existing.filter(|lr| is_ours(&lr.external_ids)) {
        let mut tx = Txn::new();
        tx.delete::<LogicalRouter>(lr.uuid);
        nb.commit(tx, format!("deleting router {vpc}")).await?;
    }
    Ok(())
}

/// What a Subnet needs in NB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPlan {
    /// Subnet (= logical switch) name.
    pub subnet: String,
    /// The VPC whose router the switch attaches to, if any.
    pub vpc: Option<String>,
    /// Gateway address with the subnet prefix, per family (router port networks).
    pub gateways: Vec<IpNet>,
}

/// Ensures the logical switch of a subnet and, with a VPC, the router port pair
/// `<vpc>-<subnet>` / `<subnet>-<vpc>`: one transaction, only for what is missing or differs.
pub async fn ensure_switch(nb: &Nb, plan: &SwitchPlan) -> Result<(), NbError> {
    let subnet = plan.subnet.as_str();
    let (ls, lrp, lsp, lr) = {
        let r = nb.replica();
        let read = |what: &str| db(format!("reading {what} of subnet {subnet}"));
        let ls = r
            .one_by_name::<LogicalSwitch>(subnet)
            .map_err(read("switch"))?;
        let (lrp, lsp, lr) = match &plan.vpc {
            Some(vpc) => (
                r.one_by_name::<LogicalRouterPort>(&router_port(vpc, subnet))
                    .map_err(read("router port"))?,
                r.one_by_name::<LogicalSwitchPort>(&switch_router_port(subnet, vpc))
                    .map_err(read("switch port"))?,
                r.one_by_name::<LogicalRouter>(vpc)
                    .map_err(read("router"))?,
            ),
            None => (None, None, None),
        };
        (ls, lrp, lsp, lr)
    };
    if let Some(ls) = &ls
        && !is_ours(&ls.external_ids)
    {
        return Err(NbError::NotOurs {
            table: "Logical_Switch",
            name: subnet.to_owned(),
        });
    }
    let mut tx = Txn::new();
    let ls_ref: ovn_api::tables::Where<LogicalSwitch>;
    let ls_named;
    match &ls {
        Some(ls) => {
            ls_ref = ls.uuid.into();
            ls_named = None;
        }
        None => {
            let mut ids = owned_ids(&[("subnet", subnet)]);
            if let Some(vpc) = &plan.vpc {
                ids.insert("vpc".into(), vpc.clone());
            }
            let named = tx.insert(&LogicalSwitch {
                name: subnet.to_owned(),
                external_ids: ids,
                ..Default::default()
            });
            ls_ref = ovn_api::tables::Where::raw(Vec::new());
            ls_named = Some(named);
        }
    }
    if let Some(vpc) = &plan.vpc {
        let lr = lr.ok_or_else(|| NbError::Db {
            what: format!("subnet {subnet}: router {vpc}"),
            source: ovn_api::Error::Value(format!("logical router {vpc} does not exist yet")),
        })?;
        let lrp_name = router_port(vpc, subnet);
        let networks: Vec<String> = plan.gateways.iter().map(ToString::to_string).collect();
        match &lrp {
            Some(p) if p.networks == networks => {}
            Some(p) => {
                tx.update::<LogicalRouterPort>(p.uuid, [LogicalRouterPort::NETWORKS.to(&networks)]);
            }
            None => {
                let port = tx.insert(&LogicalRouterPort {
                    name: lrp_name.clone(),
                    mac: router_port_mac(&lrp_name),
                    networks,
                    external_ids: owned_ids(&[("vpc", vpc), ("subnet", subnet)]),
                    ..Default::default()
                });
                tx.mutate::<LogicalRouter>(lr.uuid, [LogicalRouter::PORTS.insert(port)]);
            }
        }
        if lsp.is_none() {
            let lsp_name = switch_router_port(subnet, vpc);
            let port = tx.insert(&LogicalSwitchPort {
                name: lsp_name,
                type_: "router".into(),
                addresses: vec!["router".into()],
                options: BTreeMap::from([("router-port".to_owned(), lrp_name)]),
                external_ids: owned_ids(&[("vpc", vpc), ("ls", subnet)]),
                ..Default::default()
            });
            add_port_to_switch(&mut tx, &ls_ref, ls_named.as_ref(), port);
        }
    }
    if tx.is_empty() {
        return Ok(());
    }
    nb.commit(
        tx,
        format!("creating switch and router ports of subnet {subnet}"),
    )
    .await?;
    Ok(())
}

fn add_port_to_switch(
    tx: &mut ovn_api::txn::Txn,
    existing: &ovn_api::tables::Where<LogicalSwitch>,
    inserted: Option<&ovn_api::txn::NamedUuid>,
    port: ovn_api::txn::NamedUuid,
) {
    // A switch inserted in this very transaction takes the port in a follow-up mutate on its
    // named UUID; an existing one by its UUID.
    match inserted {
        Some(named) => {
            tx.mutate::<LogicalSwitch>(
                ovn_api::tables::Where::raw(vec![ovn_api::protocol::Condition::eq(
                    "_uuid",
                    ovn_api::value::Datum::from(named),
                )]),
                [LogicalSwitch::PORTS.insert(port)],
            );
        }
        None => {
            tx.mutate::<LogicalSwitch>(
                ovn_api::tables::Where::raw(existing.0.clone()),
                [LogicalSwitch::PORTS.insert(port)],
            );
        }
    }
}

/// Deletes a subnet's switch and its router port, if ours. The switch's ports go with it.
pub async fn delete_switch(nb: &Nb, subnet: &str, vpc: Option<&str>) -> Result<(), NbError> {
    let (ls, lrp) = {
        let r = nb.replica();
        let ls = r
            .one_by_name::<LogicalSwitch>(subnet)
            .map_err(db(format!("reading switch {subnet}")))?;
        let lrp = match vpc {
            Some(vpc) => r
                .one_by_name::<LogicalRouterPort>(&router_port(vpc, subnet))
                .map_err(db(format!("reading router port of {subnet}")))?,
            None => None,
        };
        (ls, lrp)
    };
    let mut tx = Txn::new();
    if let Some(ls) = ls.filter(|ls| is_ours(&ls.external_ids)) {
        tx.delete::<LogicalSwitch>(ls.uuid);
    }
    if let (Some(lrp), Some(vpc)) = (lrp.filter(|p| is_ours(&p.external_ids)), vpc)
        && let Some(lr) = nb
            .replica()
            .one_by_name::<LogicalRouter>(vpc)
            .map_err(db("reading router"))?
    {
        tx.mutate::<LogicalRouter>(lr.uuid, [LogicalRouter::PORTS.delete(lrp.uuid)]);
    }
    if tx.is_empty() {
        return Ok(());
    }
    nb.commit(tx, format!("deleting switch {subnet}")).await?;
    Ok(())
}

/// Whether the logical switch `name` is in the replica.
pub fn switch_exists(nb: &Nb, name: &str) -> bool {
    nb.replica().uuid_by_name::<LogicalSwitch>(name).is_some()
}

/// What an attachment needs in NB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// LSP name (`<pod>.<ns>.<provider>`).
    pub name: String,
    /// Logical switch.
    pub switch: String,
    /// MAC address.
    pub mac: String,
    /// Addresses.
    pub ips: Vec<std::net::IpAddr>,
    /// Pin the port to its MAC and addresses.
    pub port_security: bool,
    /// Owner ids (`pod`, `ls`, `provider`).
    pub external_ids: BTreeMap<String, String>,
    /// The subnet's DHCP rows (IPv4, IPv6) when it has `enableDHCP` ([`dhcp::uuids_of`]).
    pub dhcp: (Option<ovn_api::value::Uuid>, Option<ovn_api::value::Uuid>),
}

impl PortPlan {
    fn addresses(&self) -> Vec<String> {
        let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
        vec![format!("{} {}", self.mac, ips.join(" "))]
    }
}

/// Ensures the attachment's LSP on its switch: one transaction when anything differs.
pub async fn ensure_port(nb: &Nb, plan: &PortPlan) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_port(nb, &mut tx, plan)?;
    nb.commit(tx, format!("writing port {} on {}", plan.name, plan.switch))
        .await
}

/// Adds to `tx` what the attachment's LSP needs (nothing when it is already as planned), so
/// the ports of one pod go to NB in one transaction. Every check comes before the first
/// operation: on an error `tx` is unchanged.
///
/// Reads only the rows involved: switches are looked up by name and the port's current switch
/// by a search of the sorted `ports` sets, never by converting switches that may hold
/// thousands of ports.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_port(nb: &Nb, tx: &mut Txn, plan: &PortPlan) -> Result<(), NbError> {
    let addresses = plan.addresses();
    let port_security = if plan.port_security {
        addresses.clone()
    } else {
        Vec::new()
    };
    let (ls, existing, owners) = {
        let r = nb.replica();
        let ls = r
            .uuid_by_name::<LogicalSwitch>(&plan.switch)
            .ok_or_else(|| NbError::NoSwitch(plan.switch.clone()))?;
        let existing = r
            .one_by_name::<LogicalSwitchPort>(&plan.name)
            .map_err(db(format!("reading port {}", plan.name)))?;
        let owners = match &existing {
            Some(p) => {
                r.referrers::<LogicalSwitch>(LogicalSwitch::PORTS.name(), &Atom::Uuid(p.uuid))
            }
            None => Vec::new(),
        };
        (ls, existing, owners)
    };
    match existing {
        Some(p) => {
            if !is_ours(&p.external_ids) {
                return Err(NbError::NotOurs {
                    table: "Logical_Switch_Port",
                    name: plan.name.clone(),
                });
            }
            if p.addresses != addresses
                || p.port_security != port_security
                || p.external_ids != plan.external_ids
                || (p.dhcpv4_options, p.dhcpv6_options) != plan.dhcp
            {
                tx.update::<LogicalSwitchPort>(
                    p.uuid,
                    [
                        LogicalSwitchPort::ADDRESSES.to(&addresses),
                        LogicalSwitchPort::PORT_SECURITY.to(&port_security),
                        LogicalSwitchPort::EXTERNAL_IDS.to(&plan.external_ids),
                        LogicalSwitchPort::DHCPV4_OPTIONS.to(&plan.dhcp.0),
                        LogicalSwitchPort::DHCPV6_OPTIONS.to(&plan.dhcp.1),
                    ],
                );
            }
            if owners != [ls] {
                // The attachment moved to another subnet: re-home the port in the same txn.
                for old in owners.into_iter().filter(|o| *o != ls) {
                    tx.mutate::<LogicalSwitch>(old, [LogicalSwitch::PORTS.delete(p.uuid)]);
                }
                tx.mutate::<LogicalSwitch>(ls, [LogicalSwitch::PORTS.insert(p.uuid)]);
            }
        }
        None => {
            let port = tx.insert(&LogicalSwitchPort {
                name: plan.name.clone(),
                addresses,
                port_security,
                external_ids: plan.external_ids.clone(),
                dhcpv4_options: plan.dhcp.0,
                dhcpv6_options: plan.dhcp.1,
                ..Default::default()
            });
            tx.mutate::<LogicalSwitch>(ls, [LogicalSwitch::PORTS.insert(port)]);
        }
    }
    Ok(())
}

/// What one pod's attachments need in NB: their ports and their QoS rows, written in one
/// transaction. Returns, per port plan, the error that kept it out (a foreign row with its
/// name, a missing switch); the others are committed. `Err` only when the commit fails.
pub async fn ensure_attachments(
    nb: &Nb,
    ports: &[PortPlan],
    qos: &[QosPlan],
    what: String,
) -> Result<Vec<Option<NbError>>, NbError> {
    let mut tx = Txn::new();
    let mut outcome = Vec::with_capacity(ports.len());
    for plan in ports {
        let planned = plan_port(nb, &mut tx, plan).err();
        if planned.is_none()
            && let Some(q) = qos.iter().find(|q| q.port == plan.name)
            && let Err(e) = qos::plan_qos(nb, &mut tx, q)
        {
            outcome.push(Some(e));
            continue;
        }
        outcome.push(planned);
    }
    nb.commit(tx, what).await?;
    Ok(outcome)
}

/// Deletes the LSP `name` if it is ours (removing it from its switch deletes the row), with its
/// QoS rows.
pub async fn delete_port(nb: &Nb, name: &str) -> Result<bool, NbError> {
    let (port, owner) = {
        let r = nb.replica();
        let port = r
            .one_by_name::<LogicalSwitchPort>(name)
            .map_err(db(format!("reading port {name}")))?;
        let Some(port) = port.filter(|p| is_ours(&p.external_ids)) else {
            return Ok(false);
        };
        let owner = r
            .list::<LogicalSwitch>()
            .map_err(db("listing switches"))?
            .into_iter()
            .find(|s| s.ports.contains(&port.uuid));
        (port, owner)
    };
    let mut tx = Txn::new();
    match owner {
        Some(ls) => tx.mutate::<LogicalSwitch>(ls.uuid, [LogicalSwitch::PORTS.delete(port.uuid)]),
        None => tx.delete::<LogicalSwitchPort>(port.uuid),
    };
    // Its QoS rows are referenced by the switch, not the port: they go in the same transaction.
    qos::remove_rows_of(nb, &mut tx, name)?;
    nb.commit(tx, format!("deleting port {name}")).await?;
    Ok(true)
}

/// Names of our attachment LSPs (those with a `pod` owner id).
pub fn attachment_ports(nb: &Nb) -> Vec<(String, BTreeMap<String, String>)> {
    nb.replica()
        .by_external_id::<LogicalSwitchPort>(EXTERNAL_ID_VENDOR.0, EXTERNAL_ID_VENDOR.1)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.external_ids.contains_key(crds::naming::EXTERNAL_ID_POD))
        .map(|p| (p.name, p.external_ids))
        .collect()
}

/// Our logical switches (vendor-tagged, with a `subnet` owner id): (switch name, its Subnet,
/// its VPC). Read from the raw replica: switches are not converted.
pub fn owned_switches(nb: &Nb) -> Vec<(String, String, Option<String>)> {
    let r = nb.replica();
    let Some(t) = r.table(LogicalSwitch::TABLE) else {
        return Vec::new();
    };
    t.by_external_id(EXTERNAL_ID_VENDOR.0, EXTERNAL_ID_VENDOR.1)
        .filter_map(|row| {
            Some((
                row.name()?.to_owned(),
                row.external_id("subnet")?.to_owned(),
                row.external_id("vpc").map(str::to_owned),
            ))
        })
        .collect()
}

/// Our logical routers (vendor-tagged, with a `vpc` owner id): (router name, its Vpc).
pub fn owned_routers(nb: &Nb) -> Vec<(String, String)> {
    let r = nb.replica();
    let Some(t) = r.table(LogicalRouter::TABLE) else {
        return Vec::new();
    };
    t.by_external_id(EXTERNAL_ID_VENDOR.0, EXTERNAL_ID_VENDOR.1)
        .filter_map(|row| Some((row.name()?.to_owned(), row.external_id("vpc")?.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn router_port_macs_are_pinned() {
        // Computed outside Rust: a changed MAC would flap every router port after an upgrade.
        assert_eq!(super::router_port_mac("vpc1-s1"), "0a:29:46:9f:d4:d6");
    }
}
