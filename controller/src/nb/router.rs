//! The logical router of a Vpc (DESIGN §3: Vpc → `Logical_Router` `<vpc>`).

use ovn_api::replica::Replica;
use ovn_api::tables::Table;
use ovn_api::tables::nb::LogicalRouter;
use ovn_api::txn::Txn;

use super::{Nb, NbError, db, is_ours, owned_ids};
use crds::naming::EXTERNAL_ID_VENDOR;

/// A deterministic, locally administered unicast MAC for a router port (stable across
/// restarts, so re-reconciling never flaps the port).
pub fn router_port_mac(name: &str) -> String {
    let b = crds::naming::fnv1a64(&[name]).to_be_bytes();
    crds::MacAddr([0x0a, b[3], b[4], b[5], b[6], b[7]]).to_string()
}

/// Adds to `tx` the router of VPC `vpc` unless it exists; refuses a router of that name that
/// is not ours.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_router(r: &Replica, tx: &mut Txn, vpc: &str) -> Result<(), NbError> {
    let existing = r
        .one_by_name::<LogicalRouter>(vpc)
        .map_err(db(format!("reading router {vpc}")))?;
    match existing {
        Some(lr) if is_ours(&lr.external_ids) => Ok(()),
        Some(_) => Err(NbError::NotOurs {
            table: "Logical_Router",
            name: vpc.to_owned(),
        }),
        None => {
            tx.insert(&LogicalRouter {
                name: vpc.to_owned(),
                external_ids: owned_ids(&[("vpc", vpc)]),
                ..Default::default()
            });
            Ok(())
        }
    }
}

/// Ensures the logical router of VPC `vpc`.
pub async fn ensure_router(nb: &Nb, vpc: &str) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_router(&nb.replica(), &mut tx, vpc)?;
    nb.commit(tx, format!("creating router {vpc}")).await
}

/// Adds to `tx` the deletion of the router of `vpc` if it is ours. Router ports go with it
/// (strong references).
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_delete_router(r: &Replica, tx: &mut Txn, vpc: &str) -> Result<(), NbError> {
    let existing = r
        .one_by_name::<LogicalRouter>(vpc)
        .map_err(db(format!("reading router {vpc}")))?;
    if let Some(lr) = existing.filter(|lr| is_ours(&lr.external_ids)) {
        tx.delete::<LogicalRouter>(lr.uuid);
    }
    Ok(())
}

/// Deletes the router of `vpc` if it is ours.
pub async fn delete_router(nb: &Nb, vpc: &str) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_delete_router(&nb.replica(), &mut tx, vpc)?;
    nb.commit(tx, format!("deleting router {vpc}")).await
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
