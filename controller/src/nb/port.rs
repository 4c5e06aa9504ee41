//! The logical switch port of an attachment (DESIGN §3: `<pod>.<ns>.<provider>`), written
//! together with its QoS rows and its security-group memberships: one transaction per pod.

use std::collections::BTreeMap;

use crds::naming::EXTERNAL_ID_VENDOR;
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{LogicalSwitch, LogicalSwitchPort, PortGroup};
use ovn_api::txn::Txn;
use ovn_api::value::Atom;

use super::qos::{QosPlan, plan_delete_qos, plan_qos};
use super::{Nb, NbError, db, is_ours};

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
    /// What the port is pinned to.
    pub port_security: PortSecurity,
    /// Owner ids (`pod`, `ls`, `provider`).
    pub external_ids: BTreeMap<String, String>,
    /// The subnet's DHCP rows (IPv4, IPv6) when it has `enableDHCP` ([`dhcp::uuids_of`]).
    pub dhcp: (Option<ovn_api::value::Uuid>, Option<ovn_api::value::Uuid>),
    /// The SecurityGroups the port is in (sorted, no duplicates): their port groups and the
    /// default-deny group hold it, their address sets its addresses, changed in the port's
    /// transaction ([`super::security_group::prepare_membership`]).
    pub security_groups: Vec<String>,
    /// The port groups of the MultiNetworkPolicies that select the attachment
    /// ([`crate::multi_network_policy::groups_selecting`]): a new port joins those that exist
    /// in its own transaction, so it is never up before its policies hold it (the policy's
    /// reconcile keeps memberships right afterwards).
    pub policy_groups: Vec<String>,
}

/// What OVN lets a port send and receive (its `port_security` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSecurity {
    /// Its MAC and its addresses only (anti-spoofing: every pod's port).
    Addresses,
    /// Its MAC only, any IP address: a router's port (a VPC NAT gateway forwards for others,
    /// so packets to and from addresses not its own cross its LAN port), still unable to
    /// claim another port's MAC.
    MacOnly,
    /// Nothing (`port_security: "false"` on a Subnet that allows it).
    Off,
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
    plan_port(&nb.replica(), &mut tx, plan)?;
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
pub fn plan_port(r: &Replica, tx: &mut Txn, plan: &PortPlan) -> Result<(), NbError> {
    let addresses = plan.addresses();
    let port_security = match plan.port_security {
        PortSecurity::Addresses => addresses.clone(),
        PortSecurity::MacOnly => vec![plan.mac.clone()],
        PortSecurity::Off => Vec::new(),
    };
    let (ls, existing, owners) = {
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
    // Memberships are checked with the rest, before the first operation: a group that does
    // not exist keeps the whole port as it is.
    let old_ips = existing
        .as_ref()
        .map(super::security_group::addresses_of)
        .unwrap_or_default();
    let membership = super::security_group::prepare_membership(
        r,
        existing.as_ref().map(|p| p.uuid),
        &old_ips,
        &plan.ips,
        &plan.security_groups,
    )?;
    let policy_groups = super::policy::existing_groups(r, &plan.policy_groups);
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
            membership.apply(tx, p.uuid);
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
            tx.mutate::<LogicalSwitch>(ls, [LogicalSwitch::PORTS.insert(port.clone())]);
            for pg in &policy_groups {
                tx.mutate::<PortGroup>(*pg, [PortGroup::PORTS.insert(port.clone())]);
            }
            membership.apply(tx, port);
        }
    }
    Ok(())
}

/// Adds to `tx` what [`ensure_attachments`] writes and returns, per port plan, the error that
/// kept it out.
pub fn plan_attachments(
    r: &Replica,
    tx: &mut Txn,
    ports: &[PortPlan],
    qos: &[QosPlan],
) -> Vec<Option<NbError>> {
    let mut outcome = Vec::with_capacity(ports.len());
    for plan in ports {
        let planned = plan_port(r, tx, plan).err();
        if planned.is_none()
            && let Some(q) = qos.iter().find(|q| q.port == plan.name)
            && let Err(e) = plan_qos(r, tx, q)
        {
            outcome.push(Some(e));
            continue;
        }
        outcome.push(planned);
    }
    outcome
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
    let outcome = plan_attachments(&nb.replica(), &mut tx, ports, qos);
    nb.commit(tx, what).await?;
    Ok(outcome)
}

/// Adds to `tx` the deletion of the LSP `name` if it is ours (removing it from its switch
/// deletes the row), with its QoS rows; returns whether it was there.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_delete_port(r: &Replica, tx: &mut Txn, name: &str) -> Result<bool, NbError> {
    let (port, owner) = {
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
    // Port groups drop the port by themselves (weak references); its addresses leave its
    // groups' address sets here.
    super::security_group::plan_forget_port(r, tx, &port)?;
    match owner {
        Some(ls) => tx.mutate::<LogicalSwitch>(ls.uuid, [LogicalSwitch::PORTS.delete(port.uuid)]),
        None => tx.delete::<LogicalSwitchPort>(port.uuid),
    };
    // Its QoS rows are referenced by the switch, not the port: they go in the same transaction.
    plan_delete_qos(r, tx, name)?;
    Ok(true)
}

/// Deletes the LSP `name` if it is ours, with its QoS rows, in one transaction.
pub async fn delete_port(nb: &Nb, name: &str) -> Result<bool, NbError> {
    let mut tx = Txn::new();
    let found = plan_delete_port(&nb.replica(), &mut tx, name)?;
    nb.commit(tx, format!("deleting port {name}")).await?;
    Ok(found)
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
