//! The logical switch of a Subnet and, with a Vpc, its router port pair (DESIGN §3: switch
//! `<subnet>`, router port `<vpc>-<subnet>` peered with switch port `<subnet>-<vpc>`).

use std::collections::BTreeMap;

use crds::naming::{EXTERNAL_ID_SUBNET, EXTERNAL_ID_VENDOR, router_port, switch_router_port};
use ipnet::IpNet;
use ovn_api::protocol::Condition;
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};
use ovn_api::tables::{Table, Where};
use ovn_api::txn::{NamedUuid, Txn};
use ovn_api::value::Datum;

use super::security_group::{AclHolder, AclSpec, insert_acls, sync_acls};
use super::{Nb, NbError, db, is_ours, owned_ids, router_port_mac};

/// What a Subnet needs in NB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPlan {
    /// Subnet (= logical switch) name.
    pub subnet: String,
    /// The VPC whose router the switch attaches to, if any.
    pub vpc: Option<String>,
    /// Gateway address with the subnet prefix, per family (router port networks).
    pub gateways: Vec<IpNet>,
    /// The Subnet's own ACLs on the switch ([`super::subnet_acl::plan`]): exactly these.
    pub acls: Vec<AclSpec>,
}

/// Adds to `tx` the logical switch of a subnet with exactly its own ACLs and, with a VPC, the
/// router port pair `<vpc>-<subnet>` / `<subnet>-<vpc>`: only what is missing or differs. Every check comes
/// before the first operation: on an error `tx` is unchanged.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_switch(r: &Replica, tx: &mut Txn, plan: &SwitchPlan) -> Result<(), NbError> {
    let subnet = plan.subnet.as_str();
    let (ls, lrp, lsp, lr) = {
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
    let lr = match &plan.vpc {
        Some(vpc) => Some(lr.ok_or_else(|| NbError::Db {
            what: format!("subnet {subnet}: router {vpc}"),
            source: ovn_api::Error::Value(format!("logical router {vpc} does not exist yet")),
        })?),
        None => None,
    };
    let ls_ref: Where<LogicalSwitch>;
    let ls_named;
    let owner = (EXTERNAL_ID_SUBNET, subnet);
    match &ls {
        Some(ls) => {
            sync_acls(
                r,
                tx,
                AclHolder::Switch(ls.uuid),
                &ls.acls,
                &plan.acls,
                owner,
            )?;
            ls_ref = ls.uuid.into();
            ls_named = None;
        }
        None => {
            let mut ids = owned_ids(&[owner]);
            if let Some(vpc) = &plan.vpc {
                ids.insert("vpc".into(), vpc.clone());
            }
            // The ACLs come with the switch: a private subnet is never open, not even at first.
            let acls = insert_acls(tx, &plan.acls, owner);
            let named = tx.insert_with(
                &LogicalSwitch {
                    name: subnet.to_owned(),
                    external_ids: ids,
                    ..Default::default()
                },
                [LogicalSwitch::ACLS.set(Datum::set(acls))],
            );
            ls_ref = Where::raw(Vec::new());
            ls_named = Some(named);
        }
    }
    if let (Some(vpc), Some(lr)) = (&plan.vpc, lr) {
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
            add_port_to_switch(tx, &ls_ref, ls_named.as_ref(), port);
        }
    }
    Ok(())
}

fn add_port_to_switch(
    tx: &mut Txn,
    existing: &Where<LogicalSwitch>,
    inserted: Option<&NamedUuid>,
    port: NamedUuid,
) {
    // A switch inserted in this very transaction takes the port in a follow-up mutate on its
    // named UUID; an existing one by its UUID.
    match inserted {
        Some(named) => {
            tx.mutate::<LogicalSwitch>(
                Where::raw(vec![Condition::eq("_uuid", Datum::from(named))]),
                [LogicalSwitch::PORTS.insert(port)],
            );
        }
        None => {
            tx.mutate::<LogicalSwitch>(
                Where::raw(existing.0.clone()),
                [LogicalSwitch::PORTS.insert(port)],
            );
        }
    }
}

/// Ensures the logical switch of a subnet and, with a VPC, the router port pair
/// `<vpc>-<subnet>` / `<subnet>-<vpc>`: one transaction, only for what is missing or differs.
pub async fn ensure_switch(nb: &Nb, plan: &SwitchPlan) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_switch(&nb.replica(), &mut tx, plan)?;
    nb.commit(
        tx,
        format!("creating switch and router ports of subnet {}", plan.subnet),
    )
    .await
}

/// Adds to `tx` the deletion of a subnet's switch and its router port, if ours. The switch's
/// ports go with it.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_delete_switch(
    r: &Replica,
    tx: &mut Txn,
    subnet: &str,
    vpc: Option<&str>,
) -> Result<(), NbError> {
    let (ls, lrp) = {
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
    if let Some(ls) = ls.filter(|ls| is_ours(&ls.external_ids)) {
        tx.delete::<LogicalSwitch>(ls.uuid);
    }
    if let (Some(lrp), Some(vpc)) = (lrp.filter(|p| is_ours(&p.external_ids)), vpc)
        && let Some(lr) = r
            .one_by_name::<LogicalRouter>(vpc)
            .map_err(db("reading router"))?
    {
        tx.mutate::<LogicalRouter>(lr.uuid, [LogicalRouter::PORTS.delete(lrp.uuid)]);
    }
    Ok(())
}

/// Deletes a subnet's switch and its router port, if ours.
pub async fn delete_switch(nb: &Nb, subnet: &str, vpc: Option<&str>) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_delete_switch(&nb.replica(), &mut tx, subnet, vpc)?;
    nb.commit(tx, format!("deleting switch {subnet}")).await
}

/// Whether the logical switch `name` is in the replica.
pub fn switch_exists(nb: &Nb, name: &str) -> bool {
    nb.replica().uuid_by_name::<LogicalSwitch>(name).is_some()
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
