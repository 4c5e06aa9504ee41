//! Garbage collection: addresses, IP CRs, logical switch ports and their QoS rows whose owner is
//! gone; switches, routers and DHCP rows whose Subnet or Vpc is gone; port groups, ACLs and
//! address sets whose SecurityGroup is gone.
//!
//! A pod gives its addresses back when it is gone, when it has finished (`Succeeded` or
//! `Failed`: Jobs, evictions), or when its deletion's grace period has ended; a terminating pod
//! keeps them until then, since its containers still use them (as upstream's `isPodAlive`). A
//! pod stuck terminating on a lost node does not hold its addresses forever. Records carry the
//! pod's UID: a record whose UID is not the one of the pod now under its name belongs to a
//! predecessor and goes ([`holds_record`]); records from before UIDs are matched by name.
//!
//! Runs at start, on an interval, and promptly after a pod with attachments is deleted. Only
//! our own objects are touched (IP CRs, and NB rows with `external_ids:vendor=kube-ovn`).
//! Two things are kept on purpose: the records of StatefulSet pods their StatefulSet will
//! recreate (they get their addresses back), and an IP CR deleted by hand while its pod still
//! uses the address is written again rather than its address released (by the IP record's
//! finalizer, see [`crate::ip`]; here for a record whose finalizer was stripped).

use std::collections::{BTreeMap, BTreeSet};

use crds::naming::{AnnotationKey, parse_annotation_key};
use crds::{IP, Subnet, Vpc};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};

use crate::context::Context;
use crate::error::Error;
use crate::{ip, nb};

/// What one collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// IP CRs deleted (their addresses released).
    pub ips: usize,
    /// LSPs deleted.
    pub ports: usize,
    /// Allocator entries released that had no IP CR.
    pub leases: usize,
    /// Our QoS rows removed because their port no longer exists.
    pub qos: usize,
    /// Our logical switches (with their router ports) whose Subnet is gone.
    pub switches: usize,
    /// Our logical routers whose Vpc is gone.
    pub routers: usize,
    /// Our DHCP_Options rows whose Subnet is gone.
    pub dhcp: usize,
    /// IP CRs deleted by hand while their pod still uses the address, written again.
    pub restored: usize,
    /// Port groups and address sets of SecurityGroups that are gone (per group), and the
    /// default-deny group once no SecurityGroup exists and no port is in it.
    pub security_groups: usize,
}

/// Releases the attachments a pod had (by its `allocated` annotations) that its networks
/// annotation no longer asks for.
///
/// `pod` is the cached object the reconcile runs on, not a fresh GET: an attachment is removed
/// by a user's edit, which comes after our annotation patch, so the cached object that carries
/// the edit carries our `allocated` annotations too (and an edit racing our patch is followed by
/// the event of that patch, which brings the pod here again).
pub async fn release_unwanted(
    ctx: &Context,
    pod: &Pod,
    wanted: &BTreeSet<String>,
) -> Result<(), Error> {
    let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
    let had: Vec<String> = pod
        .annotations()
        .iter()
        .filter_map(|(k, v)| match parse_annotation_key(k) {
            Some((provider, AnnotationKey::Allocated)) if v == "true" => {
                Some(crds::naming::lsp_name(&name, &namespace, provider))
            }
            _ => None,
        })
        .collect();
    for key in had.into_iter().filter(|k| !wanted.contains(k)) {
        let _lock = ctx.attachment_locks.lock(&key).await;
        let held = ctx.ipam.lock().get(&key).map(|l| l.ip_address());
        ip::release(ctx, &key).await?;
        if let Some(address) = held {
            tracing::info!(%key, "attachment removed from the pod; released");
            // Once per release: the lease is gone now, a later reconcile finds none.
            let msg = format!(
                "released {key} ({address}): the attachment is no longer in {}",
                crds::naming::NETWORKS_ANNOTATION
            );
            ctx.event(&pod.object_ref(&()), false, "AttachmentReleased", msg)
                .await;
        }
    }
    Ok(())
}

/// Whether the pod found under the name record `spec` names (its UID and phase; `None` for the
/// UID when not known) holds the record's addresses: yes unless it has finished or is another
/// pod object than the one the record was written for. Whether its deletion's grace period is
/// over is [`holds_addresses`]'s question.
pub fn holds_record(spec: &crds::IPSpec, uid: Option<&str>, phase: Option<&str>) -> bool {
    !matches!(phase, Some("Succeeded" | "Failed"))
        && ip::owned_by(spec, &spec.namespace, &spec.pod_name, uid)
}

/// Whether a pod that exists and has not finished still holds its addresses: yes until its
/// deletion's grace period has ended (`deletionTimestamp` is when it ends). A terminating pod's
/// containers run until then, so its address must not go to another pod before.
pub fn holds_addresses(
    deletion: Option<k8s_openapi::jiff::Timestamp>,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    deletion.is_none_or(|end| end > now)
}

/// [`holds_record`] and [`holds_addresses`] for `pod`, now.
pub fn pod_holds_record(spec: &crds::IPSpec, pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    holds_record(spec, pod.metadata.uid.as_deref(), phase)
        && holds_addresses(
            pod.metadata.deletion_timestamp.as_ref().map(|t| t.0),
            k8s_openapi::jiff::Timestamp::now(),
        )
}

/// Whether the pod a record names exists now and holds its addresses (a fresh GET, not the
/// collection's snapshot).
async fn pod_holds(ctx: &Context, ip: &crds::IPSpec) -> Result<bool, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ip.namespace);
    let Some(pod) = pods.get_opt(&ip.pod_name).await? else {
        return Ok(false);
    };
    Ok(pod_holds_record(ip, &pod))
}

/// The StatefulSet name and ordinal of one of its pods' names (`<set>-<ordinal>`).
pub fn statefulset_ordinal(pod: &str) -> Option<(&str, u32)> {
    let (set, ordinal) = pod.rsplit_once('-')?;
    if set.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((set, ordinal.parse().ok()?))
}

/// Whether a StatefulSet pod's addresses outlive the pod (upstream Kube-OVN's behaviour: a
/// StatefulSet pod gets its addresses back when it is recreated): yes while its StatefulSet
/// exists, is not being deleted and still counts the pod's ordinal among its replicas.
async fn statefulset_keeps(ctx: &Context, ip: &crds::IPSpec) -> Result<bool, Error> {
    let Some((set, ordinal)) = statefulset_ordinal(&ip.pod_name) else {
        return Ok(false);
    };
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ip.namespace);
    let Some(sts) = api.get_opt(set).await? else {
        return Ok(false);
    };
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    Ok(sts.metadata.deletion_timestamp.is_none() && i64::from(ordinal) < i64::from(replicas))
}

/// One full collection.
///
/// Snapshots are taken in the order that makes races with a concurrent attach harmless: an
/// attach reserves the address, then writes the IP CR, then the LSP. So ports and leases are
/// read *before* the IP CRs (a port seen here already has its CR), and a lease without a CR is
/// only released when it was already orphaned at the previous collection (it may be an attach
/// in flight). Pods are listed *after* the IP CRs: a pod always exists before its CR, so every
/// CR seen here has its pod in the later list unless the pod really is gone. (Listed the other
/// way round, a pod created between the two lists and attached at once would have its CR, port
/// and address taken away while it runs.)
pub async fn collect(ctx: &Context) -> Result<Report, Error> {
    let mut report = Report::default();
    let groups = nb::security_group::owned_groups(&ctx.nb);
    let switches = nb::owned_switches(&ctx.nb);
    let dhcp = nb::dhcp::owned_subnets(&ctx.nb);
    let routers = nb::owned_routers(&ctx.nb);
    let ports = nb::attachment_ports(&ctx.nb);
    // EIPs' leases have no IP CR: the EIP is their record, and its finalizer their release.
    let leases: Vec<String> = ctx
        .ipam
        .records()
        .into_iter()
        .map(|r| r.key)
        .filter(|k| !crate::nat_rules::is_eip_key(k))
        .collect();
    let ips: Api<IP> = Api::all(ctx.client.clone());
    let records = ips.list(&ListParams::default()).await?.items;
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    // Finished pods (Jobs, evictions) give their addresses back; the server filters them.
    let running = ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed");
    let now = k8s_openapi::jiff::Timestamp::now();
    let live: BTreeMap<(String, String), String> = pods
        .list_metadata(&running)
        .await?
        .items
        .into_iter()
        .filter(|p| holds_addresses(p.metadata.deletion_timestamp.as_ref().map(|t| t.0), now))
        .map(|p| {
            (
                (
                    p.metadata.namespace.unwrap_or_default(),
                    p.metadata.name.unwrap_or_default(),
                ),
                p.metadata.uid.unwrap_or_default(),
            )
        })
        .collect();
    // Whether a running pod holds the record `spec` (by UID when the record has one).
    let held = |spec: &crds::IPSpec| {
        live.get(&(spec.namespace.clone(), spec.pod_name.clone()))
            .is_some_and(|uid| holds_record(spec, Some(uid), None))
    };
    let mut recorded = BTreeSet::new();
    for record in &records {
        let key = record.name_any();
        recorded.insert(key.clone());
        if record.meta().deletion_timestamp.is_some() {
            // Normally handled at once by the IP controller (`ip::reconcile`); this is the retry.
            ip::handle_deletion(ctx, &key).await?;
            continue;
        }
        if record.spec.pod_name.is_empty() || held(&record.spec) {
            continue;
        }
        if record.spec.pod_type == ip::POD_TYPE_STATEFULSET
            && statefulset_keeps(ctx, &record.spec).await?
        {
            continue;
        }
        // A fresh look under the attachment's lock, at the record and at its pod: a pod
        // recreated under the same name since the snapshot may have taken this lease over, or
        // had its predecessor's released and written its own record (its reserve holds the
        // same lock).
        let _lock = ctx.attachment_locks.lock(&key).await;
        let Some(fresh) = ips.get_opt(&key).await? else {
            continue;
        };
        if fresh.meta().deletion_timestamp.is_some() || pod_holds(ctx, &fresh.spec).await? {
            continue;
        }
        tracing::info!(%key, pod = %format!("{}/{}", record.spec.namespace, record.spec.pod_name), "pod is gone; releasing its address");
        ip::release(ctx, &key).await?;
        report.ips += 1;
    }
    // A record this controller wrote, gone while its pod still runs, was deleted by hand: the
    // pod still uses the address, so the record comes back (releasing the address would hand
    // it to the next pod while this one holds it).
    let deleted: Vec<(String, crds::IPSpec)> = leases
        .iter()
        .filter(|k| !recorded.contains(*k) && !ctx.pending_ips.contains(k))
        .filter_map(|k| ctx.written_ips.get(k).map(|spec| (k.clone(), spec)))
        .filter(|(_, spec)| held(spec))
        .collect();
    for (key, spec) in deleted {
        // `false`: written again meanwhile (the pod was reconciled): nothing to do.
        if ip::restore(ctx, &key, spec).await? {
            report.restored += 1;
        }
        recorded.insert(key);
    }
    for (name, ids) in ports {
        if !recorded.contains(&name) {
            tracing::info!(port = %name, owner = ?ids.get(crds::naming::EXTERNAL_ID_POD), "port has no IP record; deleting it");
            if nb::delete_port(&ctx.nb, &name).await? {
                report.ports += 1;
            }
        }
    }
    // Switches and routers were read before the Subnets and Vpcs are listed: a row seen there
    // has its object in these lists unless the object really is gone. An object being deleted
    // is still listed: its own finalizer removes its rows.
    let subnets: BTreeSet<String> = Api::<Subnet>::all(ctx.client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    for (switch, subnet, vpc) in switches {
        if !subnets.contains(&subnet) {
            tracing::info!(%switch, %subnet, "logical switch's Subnet is gone; deleting it");
            nb::delete_switch(&ctx.nb, &switch, vpc.as_deref()).await?;
            report.switches += 1;
        }
    }
    for subnet in dhcp.difference(&subnets) {
        tracing::info!(%subnet, "DHCP options' Subnet is gone; deleting them");
        report.dhcp += nb::dhcp::delete_dhcp(&ctx.nb, subnet).await?;
    }
    let vpcs: BTreeSet<String> = Api::<Vpc>::all(ctx.client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|v| v.metadata.name)
        .collect();
    for (router, vpc) in routers {
        if !vpcs.contains(&vpc) {
            tracing::info!(%router, %vpc, "logical router's Vpc is gone; deleting it");
            nb::delete_router(&ctx.nb, &router).await?;
            report.routers += 1;
        }
    }
    // Port groups were read before the SecurityGroups are listed (a group being deleted is
    // still listed: its finalizer removes its rows once no port uses it).
    let security_groups: BTreeSet<String> = Api::<crds::SecurityGroup>::all(ctx.client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|g| g.metadata.name)
        .collect();
    for group in groups.difference(&security_groups) {
        tracing::info!(%group, "port group's SecurityGroup is gone; deleting it");
        if nb::security_group::delete_group(&ctx.nb, group, false).await? {
            report.security_groups += 1;
        }
    }
    if security_groups.is_empty() && nb::security_group::delete_deny_all_if_unused(&ctx.nb).await? {
        report.security_groups += 1;
    }
    // Ports are deleted with their QoS rows; rows whose port went some other way (an older
    // controller, a hand-deleted port) are swept here.
    for port in nb::qos::orphaned_qos_ports(&ctx.nb) {
        tracing::info!(%port, "QoS rows name a port that does not exist; deleting them");
        report.qos += nb::delete_qos(&ctx.nb, &port).await?;
    }
    // Checked last: a record still being created was maybe not listed above.
    let orphans: BTreeSet<String> = leases
        .into_iter()
        .filter(|k| !recorded.contains(k) && !ctx.pending_ips.contains(k))
        .collect();
    let mut suspects = ctx.gc_suspects.lock().unwrap_or_else(|e| e.into_inner());
    for key in orphans.intersection(&suspects) {
        tracing::info!(%key, "address has had no IP record for a whole GC interval; releasing it");
        ctx.ipam.release(key);
        ctx.written_ips.forget(key);
        report.leases += 1;
    }
    *suspects = orphans.difference(&suspects).cloned().collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminating_pod_holds_its_addresses_until_its_grace_period_ends() {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap();
        let at = |s| Some(k8s_openapi::jiff::Timestamp::from_second(s).unwrap());
        assert!(holds_addresses(None, now));
        assert!(holds_addresses(at(1_030), now), "30 s of grace left");
        assert!(!holds_addresses(at(1_000), now));
        assert!(!holds_addresses(at(970), now));
    }

    #[test]
    fn a_record_is_held_by_its_own_pod_object_until_it_finishes() {
        let record = |uid: &str| crds::IPSpec {
            pod_name: "p".into(),
            namespace: "ns".into(),
            pod_uid: uid.into(),
            ..Default::default()
        };
        let cases = [
            // (record's UID, pod's UID, phase, held)
            ("u1", Some("u1"), None, true),
            ("u1", Some("u1"), Some("Running"), true),
            ("u1", Some("u1"), Some("Pending"), true),
            ("u1", Some("u1"), Some("Succeeded"), false),
            ("u1", Some("u1"), Some("Failed"), false),
            // Recreated under the same name: the predecessor's record.
            ("u1", Some("u2"), Some("Running"), false),
            // A record from before UIDs, or a pod whose UID is not known: by name.
            ("", Some("u2"), Some("Running"), true),
            ("u1", None, None, true),
            ("u1", Some(""), None, true),
            ("", None, Some("Failed"), false),
        ];
        for (rec, uid, phase, want) in cases {
            assert_eq!(
                holds_record(&record(rec), uid, phase),
                want,
                "record {rec:?}, pod {uid:?}, {phase:?}"
            );
        }
    }

    #[test]
    fn statefulset_pod_names_give_set_and_ordinal() {
        assert_eq!(statefulset_ordinal("web-0"), Some(("web", 0)));
        assert_eq!(statefulset_ordinal("my-db-12"), Some(("my-db", 12)));
        for not in ["web", "web-", "-1", "web-a1", "web-+1", "web-99999999999"] {
            assert_eq!(statefulset_ordinal(not), None, "{not}");
        }
    }
}
