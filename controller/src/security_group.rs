//! `SecurityGroup` → OVN: the port group `ovn.sg.<sg>` with one ACL per rule, the address sets
//! of its members, and the default-deny group every member is in (see
//! [`crate::nb::security_group`] for the ACL shape and priorities).
//!
//! Members are attachments whose pod names the group in `<provider>.kubernetes.io/
//! security_groups`; the pod controller puts the port into the port group, its addresses into
//! the address sets, in the port's own transaction. A group's rule change rewrites only its
//! ACLs; a member joining or leaving touches only the port group and the address sets.
//!
//! Invalid rules (a `pass` policy this OVN cannot express, a port range on ICMP, an address of
//! the wrong family...) change nothing in NB: the group keeps the ACLs it had (a new group has
//! none, so its members get the default deny), its Ready condition is False with the reasons,
//! a Warning Event names each rule, and `ingressLastSyncSuccess`/`egressLastSyncSuccess` are
//! false. A rule naming a remote group that does not exist matches nothing (the remote has no
//! members) and the condition says so until the group appears.
//!
//! **Deleting a group in use is refused** (the finalizer stays, Ready is False with reason
//! `DeletionBlocked` giving the number of ports, a Warning Event): detaching the ports instead would open
//! every member's traffic because someone deleted an object. From the deletion on the group takes
//! no new member (a pod naming it gets an Event and keeps its port as it was); it goes once no
//! attachment names it (remove it from the pods' annotations, or delete the pods).

use std::sync::Arc;
use std::time::Duration;

use crds::SecurityGroup;
use crds::naming::port_group;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::context::Context;
use crate::error::Error;
use crate::nb::security_group as sg;
use crate::status;

/// Finalizer on SecurityGroups: the port group goes before the object, and not while in use.
pub const FINALIZER: &str = "kubeovn.io/security-group";

/// How soon a group whose remote groups are missing looks again.
pub const RETRY_REMOTE: Duration = Duration::from_secs(10);

/// The status fields besides the conditions the controller writes.
pub(crate) const STATUS_FIELDS: [&str; 6] = [
    "portGroup",
    "allowSameGroupTraffic",
    "ingressMd5",
    "egressMd5",
    "ingressLastSyncSuccess",
    "egressLastSyncSuccess",
];

/// Reconciles one SecurityGroup.
pub async fn reconcile(group: Arc<SecurityGroup>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::reconciler::finalized(&ctx, FINALIZER, group, apply, cleanup).await
}

/// Sets the Ready condition (with `extra` status fields); when not ready, publishes the same
/// message as a Warning Event.
async fn report(
    group: &SecurityGroup,
    ctx: &Context,
    ready: bool,
    reason: &str,
    msg: String,
    extra: Vec<(&str, serde_json::Value)>,
) -> Result<(), Error> {
    let current = group
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let verdict = status::Verdict { ready, reason, msg };
    status::report_ready(ctx, group, &current, verdict, extra, &STATUS_FIELDS).await
}

async fn apply(group: &SecurityGroup, ctx: &Context) -> Result<Action, Error> {
    let name = group.name_any();
    let pg = port_group(&name);
    let planned = crds::Validate::validate(&group.spec)
        .map_err(|e| vec![e.to_string()])
        .and_then(|()| sg::plan_acls(&name, &group.spec));
    let acls = match planned {
        Ok(acls) => acls,
        Err(problems) => {
            // The port group must exist for members to attach (they get the default deny);
            // its ACLs stay as they were.
            sg::ensure_group(&ctx.nb, &name, None).await?;
            let msg = format!(
                "SecurityGroup {name}: invalid rules, nothing changed in OVN: {}",
                problems.join("; ")
            );
            let fields = vec![
                ("portGroup", serde_json::json!(pg)),
                ("ingressLastSyncSuccess", serde_json::json!(false)),
                ("egressLastSyncSuccess", serde_json::json!(false)),
            ];
            report(group, ctx, false, "InvalidRules", msg, fields).await?;
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
    };
    // A remote group without address sets has no members: its rules match nothing, so they
    // are left out until it exists.
    let mut missing = std::collections::BTreeSet::new();
    let acls: Vec<sg::AclSpec> = {
        let r = ctx.nb.replica();
        acls.into_iter()
            .filter(|a| match &a.remote_group {
                Some(g) if *g != name && !sg::group_exists(&r, g) => {
                    missing.insert(g.clone());
                    false
                }
                _ => true,
            })
            .collect()
    };
    sg::ensure_group(&ctx.nb, &name, Some(&acls)).await?;
    let fields = vec![
        ("portGroup", serde_json::json!(pg)),
        (
            "allowSameGroupTraffic",
            serde_json::json!(group.spec.allow_same_group_traffic),
        ),
        (
            "ingressMd5",
            serde_json::json!(sg::rules_digest(&group.spec.ingress_rules)),
        ),
        (
            "egressMd5",
            serde_json::json!(sg::rules_digest(&group.spec.egress_rules)),
        ),
        ("ingressLastSyncSuccess", serde_json::json!(true)),
        ("egressLastSyncSuccess", serde_json::json!(true)),
    ];
    if missing.is_empty() {
        let msg = format!("port group {pg} has {} ACLs", acls.len());
        report(group, ctx, true, "Synced", msg, fields).await?;
        Ok(Action::requeue(Duration::from_secs(300)))
    } else {
        let msg = format!(
            "SecurityGroup {name}: remote security group(s) {missing:?} do not exist; their rules match nothing until they do"
        );
        report(group, ctx, false, "RemoteGroupNotFound", msg, fields).await?;
        Ok(Action::requeue(RETRY_REMOTE))
    }
}

async fn cleanup(group: &SecurityGroup, ctx: &Context) -> Result<Action, Error> {
    let name = group.name_any();
    // No new member from now on (a pod naming it gets an Event); the members it has must go.
    sg::mark_deleting(&ctx.nb, &name).await?;
    let members = sg::members(&ctx.nb, &name);
    if !members.is_empty() {
        // The Event and condition give the count only: they are visible beyond the members'
        // namespaces (DESIGN §7); the ports are named in the controller's log.
        tracing::info!(group = %name, ports = ?members, "SecurityGroup deletion blocked");
        let msg = format!(
            "SecurityGroup {name} is still used by {} port(s); remove it from their pods' security_groups annotation (or delete the pods) first",
            members.len()
        );
        report(
            group,
            ctx,
            false,
            "DeletionBlocked",
            msg.clone(),
            Vec::new(),
        )
        .await?;
        return Err(Error::NotReady(msg));
    }
    sg::delete_group(&ctx.nb, &name, true).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use crate::pod::security_groups_of;

    fn pod(value: Option<&str>) -> Pod {
        let mut p = Pod::default();
        if let Some(v) = value {
            p.metadata.annotations = Some(
                [(
                    "a.default.ovn.kubernetes.io/security_groups".to_owned(),
                    v.to_owned(),
                )]
                .into(),
            );
        }
        p
    }

    #[test]
    fn the_annotation_lists_groups_sorted_once_and_refuses_names_that_cannot_be_groups() {
        assert_eq!(security_groups_of(&pod(None), "a.default.ovn"), Ok(vec![]));
        assert_eq!(
            security_groups_of(&pod(Some(" web, db ,,web")), "a.default.ovn"),
            Ok(vec!["db".to_owned(), "web".to_owned()])
        );
        assert_eq!(
            security_groups_of(&pod(Some("web")), "b.default.ovn"),
            Ok(vec![]),
            "another attachment's annotation"
        );
        for bad in ["Web", "a_b", "-x", "x/y"] {
            let err = security_groups_of(&pod(Some(bad)), "a.default.ovn").unwrap_err();
            assert!(
                err.contains("a.default.ovn.kubernetes.io/security_groups"),
                "{bad}: {err}"
            );
        }
    }
}
