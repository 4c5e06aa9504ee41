//! Puts back what OVN Northbound lost. Reconciles end once NB holds what an object needs, so a
//! row deleted behind the controller's back (an operator's `ovn-nbctl`, a database restored from
//! an old backup, an NB server that came back empty) would stay missing until the object changed.
//! This module turns NB's own update stream into reconcile triggers instead:
//!
//! - a row of ours that goes away names its owner in `external_ids` (`pod`, `subnet`/`ls`, `vpc`,
//!   `sg`; a Subnet's ACLs carry `subnet`), and that owner is reconciled: its rows come back
//!   within one reconcile, with no pod or Subnet changing;
//! - after a full resync (a new session that could not resume the monitor) rows of ours that
//!   changed while the controller was away are treated the same way;
//! - on every new NB session the retry delays of failing objects start over and those objects are
//!   reconciled at once, so an outage does not leave them waiting minutes for their next try.
//!
//! Deletions the controller makes itself (a pod deleted) name an owner that is gone; the
//! controllers skip those.

use std::collections::BTreeSet;
use std::sync::Arc;

use crds::{SecurityGroup, Subnet, Vpc};
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use ovn_api::Update;
use ovn_api::replica::{ChangeKind, Row};
use tokio::sync::broadcast;

use crate::retry::Retries;

use crds::naming::{
    EXTERNAL_ID_LOGICAL_SWITCH, EXTERNAL_ID_POD, EXTERNAL_ID_SECURITY_GROUP, EXTERNAL_ID_SUBNET,
    EXTERNAL_ID_VENDOR,
};

/// `external_ids:vpc` on the rows of a Vpc (its router, static routes and policies).
const EXTERNAL_ID_VPC: &str = "vpc";
/// The owner written on the default-deny port group, which no SecurityGroup object names.
const DENY_ALL_OWNER: &str = "kubeovn_deny_all";

/// An object whose NB rows need another reconcile.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// A pod's attachment ports and QoS rows.
    Pod {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        name: String,
    },
    /// A Subnet's switch, router port, DHCP options and ACLs.
    Subnet(String),
    /// A Vpc's router, routes and policies.
    Vpc(String),
    /// A SecurityGroup's port group, address sets and ACLs.
    SecurityGroup(String),
    /// Every SecurityGroup (the shared default-deny group went away).
    AllSecurityGroups,
}

/// The owners of the rows of ours that `update` removed, and after a full resync also changed.
pub fn owners(update: &Update) -> BTreeSet<Owner> {
    update
        .changes
        .iter()
        .filter_map(|c| match c.kind {
            ChangeKind::Delete => c.old.as_deref(),
            ChangeKind::Modify if update.resync => c.old.as_deref(),
            ChangeKind::Modify | ChangeKind::Insert => None,
        })
        .filter_map(owner_of)
        .collect()
}

/// The object a row of ours belongs to (`None`: not ours, or no owner named).
pub fn owner_of(row: &Row) -> Option<Owner> {
    if row.external_id(EXTERNAL_ID_VENDOR.0) != Some(EXTERNAL_ID_VENDOR.1) {
        return None;
    }
    if let Some(pod) = row.external_id(EXTERNAL_ID_POD) {
        let (namespace, name) = pod.split_once('/')?;
        return Some(Owner::Pod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    }
    if let Some(group) = row.external_id(EXTERNAL_ID_SECURITY_GROUP) {
        return Some(if group == DENY_ALL_OWNER {
            Owner::AllSecurityGroups
        } else {
            Owner::SecurityGroup(group.to_owned())
        });
    }
    if let Some(subnet) = row
        .external_id(EXTERNAL_ID_SUBNET)
        .or_else(|| row.external_id(EXTERNAL_ID_LOGICAL_SWITCH))
    {
        return Some(Owner::Subnet(subnet.to_owned()));
    }
    row.external_id(EXTERNAL_ID_VPC)
        .map(|vpc| Owner::Vpc(vpc.to_owned()))
}

/// Whether `update` is the first of a new NB session (resumed or resynced).
pub fn new_session(update: &Update) -> bool {
    update.resync || update.resumed
}

/// The owner a retry key ([`crate::retry::key_of`]: `Kind/namespace/name/uid`) names, for the
/// kinds whose reconcile writes NB.
pub fn owner_of_retry_key(key: &str) -> Option<Owner> {
    let mut parts = key.splitn(4, '/');
    let (kind, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    let name = name.to_owned();
    match kind {
        "Pod" => Some(Owner::Pod {
            namespace: namespace.to_owned(),
            name,
        }),
        "Subnet" => Some(Owner::Subnet(name)),
        "Vpc" => Some(Owner::Vpc(name)),
        "SecurityGroup" => Some(Owner::SecurityGroup(name)),
        _ => None,
    }
}

/// Where one controller's repair triggers go: single objects, and "every object" (the NB
/// update stream overflowed, so what was lost is unknown).
#[derive(Debug)]
pub struct Trigger<K: kube::Resource> {
    one: mpsc::UnboundedSender<ObjectRef<K>>,
    all: mpsc::UnboundedSender<()>,
}

/// The receiving ends of a [`Trigger`], for `Controller::reconcile_on` and `reconcile_all_on`.
#[derive(Debug)]
pub struct Triggered<K: kube::Resource> {
    /// Objects to reconcile.
    pub one: mpsc::UnboundedReceiver<ObjectRef<K>>,
    /// Reconcile every object.
    pub all: mpsc::UnboundedReceiver<()>,
}

fn trigger<K: kube::Resource>() -> (Trigger<K>, Triggered<K>) {
    let (one, one_rx) = mpsc::unbounded();
    let (all, all_rx) = mpsc::unbounded();
    (
        Trigger { one, all },
        Triggered {
            one: one_rx,
            all: all_rx,
        },
    )
}

/// The triggers of the four controllers that write NB rows.
#[derive(Debug)]
pub struct Triggers {
    pods: Trigger<Pod>,
    subnets: Trigger<Subnet>,
    vpcs: Trigger<Vpc>,
    security_groups: Trigger<SecurityGroup>,
}

/// The receiving ends of [`Triggers`], one per controller.
#[derive(Debug)]
pub struct Receivers {
    /// For the pod controller.
    pub pods: Triggered<Pod>,
    /// For the Subnet controller.
    pub subnets: Triggered<Subnet>,
    /// For the Vpc controller.
    pub vpcs: Triggered<Vpc>,
    /// For the SecurityGroup controller.
    pub security_groups: Triggered<SecurityGroup>,
}

/// A fresh set of triggers and their receivers.
pub fn triggers() -> (Triggers, Receivers) {
    let (pods, pods_rx) = trigger();
    let (subnets, subnets_rx) = trigger();
    let (vpcs, vpcs_rx) = trigger();
    let (security_groups, security_groups_rx) = trigger();
    (
        Triggers {
            pods,
            subnets,
            vpcs,
            security_groups,
        },
        Receivers {
            pods: pods_rx,
            subnets: subnets_rx,
            vpcs: vpcs_rx,
            security_groups: security_groups_rx,
        },
    )
}

impl Triggers {
    /// Asks for a reconcile of `owner` (a controller that stopped is not an error here: the
    /// process is going down with it).
    fn send(&self, owner: Owner) {
        let sent = match owner {
            Owner::Pod { namespace, name } => self
                .pods
                .one
                .unbounded_send(ObjectRef::new(&name).within(&namespace))
                .is_ok(),
            Owner::Subnet(name) => self
                .subnets
                .one
                .unbounded_send(ObjectRef::new(&name))
                .is_ok(),
            Owner::Vpc(name) => self.vpcs.one.unbounded_send(ObjectRef::new(&name)).is_ok(),
            Owner::SecurityGroup(name) => self
                .security_groups
                .one
                .unbounded_send(ObjectRef::new(&name))
                .is_ok(),
            Owner::AllSecurityGroups => self.security_groups.all.unbounded_send(()).is_ok(),
        };
        if !sent {
            tracing::debug!("a controller stopped; repair trigger dropped");
        }
    }

    /// Asks every controller for a reconcile of all its objects.
    fn send_all(&self) {
        let _ = self.pods.all.unbounded_send(());
        let _ = self.subnets.all.unbounded_send(());
        let _ = self.vpcs.all.unbounded_send(());
        let _ = self.security_groups.all.unbounded_send(());
    }
}

/// Follows NB's update stream until it closes, sending the owners of lost rows to `to`; at each
/// new session the failing objects of `retries` start over and are reconciled at once.
pub async fn watch(mut updates: broadcast::Receiver<Arc<Update>>, retries: &Retries, to: Triggers) {
    loop {
        match updates.recv().await {
            Ok(update) => {
                if new_session(&update) {
                    let failing = retries.drain();
                    if !failing.is_empty() {
                        tracing::info!(
                            objects = failing.len(),
                            "new OVN NB session: retrying failing objects now"
                        );
                    }
                    failing
                        .iter()
                        .filter_map(|key| owner_of_retry_key(key))
                        .for_each(|o| to.send(o));
                }
                let lost = owners(&update);
                if !lost.is_empty() {
                    tracing::debug!(
                        objects = lost.len(),
                        resync = update.resync,
                        "rows of ours left OVN NB; reconciling their owners"
                    );
                }
                lost.into_iter().for_each(|o| to.send(o));
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "fell behind OVN NB's updates; reconciling every object"
                );
                to.send_all();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ovn_api::replica::{Replica, RowChange};
    use ovn_api::schema::DatabaseSchema;
    use ovn_api::value::Uuid;
    use serde_json::json;

    fn schema() -> Arc<DatabaseSchema> {
        let s = json!({
            "name": "T", "version": "1.0.0",
            "tables": {"Logical_Switch_Port": {"columns": {
                "name": {"type": "string"},
                "external_ids": {"type": {"key": "string", "value": "string",
                    "min": 0, "max": "unlimited"}}
            }}}
        });
        Arc::new(DatabaseSchema::parse(&s).unwrap_or_else(|e| panic!("schema: {e}")))
    }

    fn row(ids: &[(&str, &str)]) -> Arc<Row> {
        let schema = schema();
        let replica = Replica::new(schema.clone(), &["Logical_Switch_Port".to_owned()])
            .unwrap_or_else(|e| panic!("replica: {e}"));
        let table = replica
            .table("Logical_Switch_Port")
            .map(|t| t.schema().clone())
            .unwrap_or_else(|| panic!("no table"));
        let map: serde_json::Map<String, serde_json::Value> = ids
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let obj = json!({"name": "p", "external_ids": ["map",
            map.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()]});
        let obj = obj.as_object().cloned().unwrap_or_default();
        Arc::new(Row::from_json(Uuid([7; 16]), table, &obj).unwrap_or_else(|e| panic!("row: {e}")))
    }

    fn change(kind: ChangeKind, r: Arc<Row>) -> RowChange {
        RowChange {
            kind,
            old: (kind != ChangeKind::Insert).then(|| r.clone()),
            new: (kind != ChangeKind::Delete).then_some(r),
        }
    }

    fn update(changes: Vec<RowChange>, resync: bool) -> Update {
        Update {
            changes,
            resync,
            resumed: false,
        }
    }

    const OURS: (&str, &str) = ("vendor", "kube-ovn");

    #[test]
    fn a_deleted_row_of_ours_names_its_owner() {
        let pod = row(&[OURS, ("pod", "default/p1"), ("ls", "s1")]);
        let subnet = row(&[OURS, ("subnet", "s1")]);
        let lrp = row(&[OURS, ("vpc", "v1"), ("ls", "s1")]);
        let router = row(&[OURS, ("vpc", "v1")]);
        let group = row(&[OURS, ("sg", "web")]);
        let deny = row(&[OURS, ("sg", "kubeovn_deny_all")]);
        let u = update(
            [pod, subnet, lrp, router, group, deny]
                .into_iter()
                .map(|r| change(ChangeKind::Delete, r))
                .collect(),
            false,
        );
        let got: Vec<Owner> = owners(&u).into_iter().collect();
        assert_eq!(
            got,
            vec![
                Owner::Pod {
                    namespace: "default".into(),
                    name: "p1".into()
                },
                Owner::Subnet("s1".into()),
                Owner::Vpc("v1".into()),
                Owner::SecurityGroup("web".into()),
                Owner::AllSecurityGroups,
            ]
        );
    }

    #[test]
    fn rows_of_others_and_rows_without_an_owner_trigger_nothing() {
        let foreign = row(&[("pod", "default/p1")]);
        let other_vendor = row(&[("vendor", "someone"), ("vpc", "v1")]);
        let bare = row(&[OURS]);
        let bad_pod = row(&[OURS, ("pod", "no-slash")]);
        let u = update(
            [foreign, other_vendor, bare, bad_pod]
                .into_iter()
                .map(|r| change(ChangeKind::Delete, r))
                .collect(),
            true,
        );
        assert!(owners(&u).is_empty());
    }

    #[test]
    fn changed_rows_count_only_after_a_full_resync() {
        let r = row(&[OURS, ("vpc", "v1")]);
        let modified = || vec![change(ChangeKind::Modify, r.clone())];
        assert!(owners(&update(modified(), false)).is_empty());
        assert_eq!(
            owners(&update(modified(), true))
                .into_iter()
                .collect::<Vec<_>>(),
            vec![Owner::Vpc("v1".into())]
        );
        // Inserts never need a repair.
        assert!(owners(&update(vec![change(ChangeKind::Insert, r)], true)).is_empty());
    }

    #[test]
    fn retry_keys_name_the_kinds_that_write_nb() {
        assert_eq!(
            owner_of_retry_key("Pod/default/p1/uid-1"),
            Some(Owner::Pod {
                namespace: "default".into(),
                name: "p1".into()
            })
        );
        assert_eq!(
            owner_of_retry_key("Subnet//s1/u"),
            Some(Owner::Subnet("s1".into()))
        );
        assert_eq!(
            owner_of_retry_key("Vpc//v1/u"),
            Some(Owner::Vpc("v1".into()))
        );
        assert_eq!(
            owner_of_retry_key("SecurityGroup//g/u"),
            Some(Owner::SecurityGroup("g".into()))
        );
        assert_eq!(
            owner_of_retry_key("NetworkAttachmentDefinition/d/n/u"),
            None
        );
        assert_eq!(owner_of_retry_key("garbage"), None);
    }
}
