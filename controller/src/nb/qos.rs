//! Bandwidth limits of attachments as OVN NB `QoS` rows on the attachment's logical switch
//! (DESIGN §3): pod egress is `from-lport` matching `inport == "<lsp>"`, pod ingress is
//! `to-lport` matching `outport == "<lsp>"`, enforced by OVN meters in both datapaths.
//!
//! A `QoS` row is not a root row: it lives only while a switch's `qos_rules` references it, so
//! removing the reference deletes it (and deleting the switch deletes its rows). An attachment
//! has at most one row per direction; rows are found by their match (which names the LSP) and
//! our vendor tag, so rows written by anyone else are never touched.

use std::collections::BTreeMap;

use crds::naming::EXTERNAL_ID_VENDOR;
use ovn_api::replica::Replica;
use ovn_api::tables::Table;
use ovn_api::tables::nb::{LogicalSwitch, Qos};
use ovn_api::txn::Txn;
use ovn_api::value::Atom;
use ovn_api::value::Uuid;

use super::{Nb, NbError, db, is_ours};

/// Priority of our `QoS` rows (fixed: one row per port and direction, so it never competes
/// with another of ours; upstream Kube-OVN uses the same band).
pub const QOS_PRIORITY: i64 = 2001;

/// The largest rate OVN can store: `bandwidth:rate` is at most 4294967295 kbit/s.
pub const MAX_RATE_KBPS: u64 = 4_294_967_295;

/// Which way traffic is limited, seen from the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosDirection {
    /// Traffic the pod sends (`egress_rate`): `from-lport`, `inport == "<lsp>"`.
    Egress,
    /// Traffic the pod receives (`ingress_rate`): `to-lport`, `outport == "<lsp>"`.
    Ingress,
}

impl QosDirection {
    /// Both directions.
    pub const ALL: [QosDirection; 2] = [QosDirection::Egress, QosDirection::Ingress];

    /// The OVN `direction` column.
    pub fn ovn(self) -> &'static str {
        match self {
            QosDirection::Egress => "from-lport",
            QosDirection::Ingress => "to-lport",
        }
    }

    /// The OVN `match` for port `lsp`.
    pub fn match_for(self, lsp: &str) -> String {
        match self {
            QosDirection::Egress => format!("inport == \"{lsp}\""),
            QosDirection::Ingress => format!("outport == \"{lsp}\""),
        }
    }
}

/// The wanted limit for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit: our row for this direction is removed.
    Unlimited,
    /// Limited to this many kbit/s (1..=[`MAX_RATE_KBPS`]).
    Kbps(u64),
    /// Leave whatever is there (the user's value was invalid: keep the last good limit rather
    /// than lift it because of a typo).
    Unchanged,
}

/// What an attachment's QoS should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QosPlan {
    /// The attachment's LSP name.
    pub port: String,
    /// Its logical switch (where the rows are referenced).
    pub switch: String,
    /// Limit of what the pod sends.
    pub egress: Limit,
    /// Limit of what the pod receives.
    pub ingress: Limit,
    /// Owner ids (`vendor`, `pod`, `provider`, `ls`).
    pub external_ids: BTreeMap<String, String>,
}

impl QosPlan {
    fn limit(&self, direction: QosDirection) -> Limit {
        match direction {
            QosDirection::Egress => self.egress,
            QosDirection::Ingress => self.ingress,
        }
    }
}

/// The `bandwidth` column for `kbps`. The burst is one second of traffic at the rate (in
/// kbit, like the rate): what the lab measured on this machine (10 Mbit/s with a 10 Mbit
/// burst gave 11.8-12.6 Mbit/s with iperf3). A burst much smaller than the rate times the
/// round-trip time makes the meter drop TCP's bursts and the flow settle far below the rate.
pub fn bandwidth(kbps: u64) -> BTreeMap<String, i64> {
    let kbps = i64::try_from(kbps.clamp(1, MAX_RATE_KBPS)).unwrap_or(i64::MAX);
    BTreeMap::from([("rate".to_owned(), kbps), ("burst".to_owned(), kbps)])
}

/// The LSP a row of ours limits, from its match (`inport == "x"` / `outport == "x"`).
pub fn port_of(row: &Qos) -> Option<&str> {
    let rest = row
        .match_
        .strip_prefix("inport == \"")
        .or_else(|| row.match_.strip_prefix("outport == \""))?;
    rest.strip_suffix('"')
}

/// Our rows for `port`, each with the switch that references it. Rows are matched on the raw
/// replica (vendor tag and match string) and only ours are converted; their switches are found
/// by a search of the sorted `qos_rules` sets.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
fn rows_of(r: &Replica, port: &str) -> Result<Vec<(Qos, Option<Uuid>)>, NbError> {
    let Some(table) = r.table(Qos::TABLE) else {
        return Ok(Vec::new());
    };
    let (inport, outport) = (
        QosDirection::Egress.match_for(port),
        QosDirection::Ingress.match_for(port),
    );
    let uuids: Vec<Uuid> = table
        .rows()
        .filter(|row| {
            row.external_id(EXTERNAL_ID_VENDOR.0) == Some(EXTERNAL_ID_VENDOR.1)
                && row
                    .get(Qos::MATCH.name())
                    .and_then(|d| d.as_set().first())
                    .and_then(Atom::as_str)
                    .is_some_and(|m| m == inport || m == outport)
        })
        .map(|row| row.uuid)
        .collect();
    let mut rows = Vec::with_capacity(uuids.len());
    for uuid in uuids {
        let Some(q) = r
            .get::<Qos>(uuid)
            .map_err(db(format!("reading QoS rows of {port}")))?
        else {
            continue;
        };
        if !is_ours(&q.external_ids) || port_of(&q) != Some(port) {
            continue;
        }
        let owner = r
            .referrers::<LogicalSwitch>(LogicalSwitch::QOS_RULES.name(), &Atom::Uuid(uuid))
            .first()
            .copied();
        rows.push((q, owner));
    }
    Ok(rows)
}

/// Adds the removal of `row` (referenced from `owner`) to `tx`.
fn remove_row(tx: &mut Txn, row: Uuid, owner: Option<Uuid>) {
    match owner {
        Some(ls) => {
            tx.mutate::<LogicalSwitch>(ls, [LogicalSwitch::QOS_RULES.delete(row)]);
        }
        None => {
            tx.delete::<Qos>(row);
        }
    }
}

/// Adds the removal of every row of ours for `port` to `tx` (port deletion uses it too, so the
/// port and its limits go in one transaction); returns how many.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_delete_qos(r: &Replica, tx: &mut Txn, port: &str) -> Result<usize, NbError> {
    let rows = rows_of(r, port)?;
    for (row, owner) in &rows {
        remove_row(tx, row.uuid, *owner);
    }
    Ok(rows.len())
}

/// Ensures the attachment's QoS rows match `plan`: one transaction when anything differs
/// (a new limit is inserted, a changed one updated in place, a lifted one removed, a row left
/// on a switch the port moved away from is re-created on the new one).
pub async fn ensure_qos(nb: &Nb, plan: &QosPlan) -> Result<(), NbError> {
    let mut tx = Txn::new();
    plan_qos(&nb.replica(), &mut tx, plan)?;
    nb.commit(tx, format!("writing QoS of port {}", plan.port))
        .await
}

/// Adds to `tx` what [`ensure_qos`] would write (nothing when the rows already match). Every
/// check comes before the first operation: on an error `tx` is unchanged.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_qos(r: &Replica, tx: &mut Txn, plan: &QosPlan) -> Result<(), NbError> {
    if plan.egress == Limit::Unchanged && plan.ingress == Limit::Unchanged {
        return Ok(());
    }
    let rows = rows_of(r, &plan.port)?;
    let switch = r
        .uuid_by_name::<LogicalSwitch>(&plan.switch)
        .ok_or_else(|| NbError::NoSwitch(plan.switch.clone()))?;
    for direction in QosDirection::ALL {
        let wanted = match plan.limit(direction) {
            Limit::Unchanged => continue,
            Limit::Unlimited => None,
            Limit::Kbps(kbps) => Some(bandwidth(kbps)),
        };
        let mut kept = false;
        for (row, owner) in rows.iter().filter(|(q, _)| q.direction == direction.ovn()) {
            match &wanted {
                Some(bw) if !kept && *owner == Some(switch) => {
                    kept = true;
                    if row.bandwidth != *bw
                        || row.priority != QOS_PRIORITY
                        || row.external_ids != plan.external_ids
                        || !row.action.is_empty()
                    {
                        tx.update::<Qos>(
                            row.uuid,
                            [
                                Qos::BANDWIDTH.to(bw),
                                Qos::PRIORITY.to(&QOS_PRIORITY),
                                Qos::EXTERNAL_IDS.to(&plan.external_ids),
                                Qos::ACTION.to(&BTreeMap::new()),
                            ],
                        );
                    }
                }
                _ => remove_row(tx, row.uuid, *owner),
            }
        }
        if let (Some(bw), false) = (wanted, kept) {
            let row = tx.insert(&Qos {
                priority: QOS_PRIORITY,
                direction: direction.ovn().to_owned(),
                match_: direction.match_for(&plan.port),
                bandwidth: bw,
                external_ids: plan.external_ids.clone(),
                ..Default::default()
            });
            tx.mutate::<LogicalSwitch>(switch, [LogicalSwitch::QOS_RULES.insert(row)]);
        }
    }
    Ok(())
}

/// Removes every row of ours for `port` (one transaction); returns how many there were.
pub async fn delete_qos(nb: &Nb, port: &str) -> Result<usize, NbError> {
    let mut tx = Txn::new();
    let removed = plan_delete_qos(&nb.replica(), &mut tx, port)?;
    nb.commit(tx, format!("deleting QoS of port {port}"))
        .await?;
    Ok(removed)
}

/// Ports named by our QoS rows that no longer exist as LSPs (left by a controller that
/// deleted ports without their limits): the GC removes their rows.
pub fn orphaned_qos_ports(nb: &Nb) -> Vec<String> {
    let r = nb.replica();
    let Ok(rows) = r.list::<Qos>() else {
        return Vec::new();
    };
    let mut ports: Vec<String> = rows
        .iter()
        .filter(|q| is_ours(&q.external_ids))
        .filter_map(port_of)
        .filter(|p| {
            r.one_by_name::<ovn_api::tables::nb::LogicalSwitchPort>(p)
                .is_ok_and(|lsp| lsp.is_none())
        })
        .map(str::to_owned)
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_name_the_port_and_parse_back() {
        for d in QosDirection::ALL {
            let row = Qos {
                match_: d.match_for("p.default.a.default.ovn"),
                ..Default::default()
            };
            assert_eq!(port_of(&row), Some("p.default.a.default.ovn"));
        }
        assert_eq!(
            QosDirection::Egress.match_for("x"),
            "inport == \"x\"",
            "DESIGN §3"
        );
        assert_eq!(QosDirection::Ingress.match_for("x"), "outport == \"x\"");
        let theirs = Qos {
            match_: "ip4.src == 10.0.0.1".into(),
            ..Default::default()
        };
        assert_eq!(port_of(&theirs), None);
    }

    #[test]
    fn bandwidth_is_rate_and_a_one_second_burst_within_the_schema() {
        assert_eq!(
            bandwidth(10_000),
            BTreeMap::from([("burst".to_owned(), 10_000), ("rate".to_owned(), 10_000)])
        );
        assert_eq!(bandwidth(u64::MAX)["rate"], 4_294_967_295);
        assert_eq!(bandwidth(0)["rate"], 1);
    }
}
