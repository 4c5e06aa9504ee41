//! The `IP` custom resource, the durable record of one attachment's allocation: after a restart
//! the allocator is rebuilt from these records, so a record exists for every address a pod holds
//! ("no double allocation, nothing lost"). Everything done to a record is here: built
//! ([`record`], from a lease by [`spec_for`]; read back by [`to_lease_record`]), written
//! ([`write`]), restored when deleted by hand while its pod uses the address ([`restore`]),
//! released with the address and the port ([`release`]), and its finalizer
//! ([`FINALIZER`]), run by the IP controller ([`controller`], [`reconcile`]) when a record is being deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crds::{IP, IPSpec};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::runtime::reflector;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use crate::context::{Context, MANAGER};
use crate::error::Error;
use crate::nb;

/// The finalizer on every IP CR: a record is only gone once the controller has released its
/// address and port (or, for a live attachment, written the record again).
pub const FINALIZER: &str = "kubeovn.io/ip";

/// `IP.spec.podType` of an attachment whose pod belongs to a StatefulSet.
pub const POD_TYPE_STATEFULSET: &str = "StatefulSet";

/// The record of attachment `key`, with the finalizer.
pub fn record(key: &str, spec: IPSpec) -> IP {
    let mut ip = IP::new(key, spec);
    ip.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    ip
}

/// Whether `pod` is controlled by a StatefulSet (its addresses outlive the pod object).
pub fn is_statefulset_pod(pod: &Pod) -> bool {
    pod.owner_references()
        .iter()
        .any(|o| o.kind == "StatefulSet" && o.controller == Some(true))
}

/// What the record of `pod`'s attachment with `lease` in `subnet` says.
pub fn spec_for(pod: &Pod, subnet: &str, lease: &ipam::Lease) -> IPSpec {
    let statefulset = is_statefulset_pod(pod);
    IPSpec {
        pod_name: pod.name_any(),
        namespace: pod.namespace().unwrap_or_default(),
        subnet: subnet.to_owned(),
        ip_address: lease.ip_address(),
        v4_ip_address: lease.v4.map(|a| a.to_string()).unwrap_or_default(),
        v6_ip_address: lease.v6.map(|a| a.to_string()).unwrap_or_default(),
        mac_address: lease.mac.map(|m| m.to_string()).unwrap_or_default(),
        pod_type: if statefulset {
            POD_TYPE_STATEFULSET.to_owned()
        } else {
            String::new()
        },
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        pod_uid: pod.uid().unwrap_or_default(),
        ..Default::default()
    }
}

/// Whether the record `spec` was written for the pod `namespace/name` with UID `uid` (`None`
/// or empty: not known). A record without a UID (written before records carried one) is
/// matched by name alone; one with a UID belongs to that pod object only, so a pod recreated
/// under the same name is not its owner (its predecessor is).
pub fn owned_by(spec: &IPSpec, namespace: &str, name: &str, uid: Option<&str>) -> bool {
    spec.namespace == namespace
        && spec.pod_name == name
        && (spec.pod_uid.is_empty() || uid.is_none_or(|u| u.is_empty() || u == spec.pod_uid))
}

/// Whether the record `spec` names `namespace/name` but was written for an earlier pod object
/// of that name (another UID). Its lease is that predecessor's: the pod now under the name
/// must not take it over as it is, except a StatefulSet pod, whose address outlives the pod
/// object (upstream's behaviour) and whose record is written again with the new UID.
pub fn predecessor_of(spec: &IPSpec, namespace: &str, name: &str, uid: Option<&str>) -> bool {
    spec.namespace == namespace && spec.pod_name == name && !owned_by(spec, namespace, name, uid)
}

/// The allocator's records of `ips` (read at start, or when a Subnet registers late); an
/// unreadable record is logged, naming it, and skipped.
pub fn lease_records<'a>(
    ips: impl IntoIterator<Item = &'a IP>,
) -> impl Iterator<Item = ipam::Record> {
    ips.into_iter()
        .filter_map(|ip| match to_lease_record(ip) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(ip = %ip.name_any(), error = %e, "IP CR with an unreadable address skipped");
                None
            }
        })
}

/// The allocator's record of `ip` (the way back from [`spec_for`]), for the rebuild at start.
/// The record is text anyone with access to IP CRs can write: an unreadable address is an error
/// naming it; an unreadable MAC leaves the MAC to the allocator.
pub fn to_lease_record(ip: &IP) -> Result<ipam::Record, String> {
    let ips = ip
        .spec
        .ip_address
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{:?}: {e}", ip.spec.ip_address))?;
    Ok(ipam::Record {
        key: ip.name_any(),
        subnet: ip.spec.subnet.clone(),
        ips,
        mac: ip.spec.mac_address.parse().ok(),
    })
}

/// The record this controller last wrote per attachment key: a reconcile that would write the
/// same record for a lease it already held (typically the one triggered by our own annotation
/// patch) skips the API write, and a record deleted by hand is restored from here. Forgotten
/// when the lease is released.
#[derive(Debug, Default)]
pub struct Written(Mutex<HashMap<String, IPSpec>>);

impl Written {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, IPSpec>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record last written for `key`.
    pub fn get(&self, key: &str) -> Option<IPSpec> {
        self.lock().get(key).cloned()
    }

    /// Forgets the record written for `key` (its lease was released).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Takes records read back from the API (at start, those the allocator loaded) as written.
    pub fn seed(&self, records: impl IntoIterator<Item = (String, IPSpec)>) {
        self.lock().extend(records);
    }
}

/// One lock per attachment key, taken by a pod's reserve (which reuses a lease it finds under
/// the pod's key) and by the GC's release of that key (which decides by a fresh look at the
/// pod): whichever goes first, the other sees its outcome. Without it, a pod recreated under the
/// same name could take over a lease the GC was releasing on the strength of an older snapshot,
/// and run with an address, record and port that are then taken away.
#[derive(Debug, Default)]
pub struct Locks(Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl Locks {
    /// Waits for and takes the lock of `key`, held until the guard drops.
    pub async fn lock(&self, key: &str) -> LockGuard<'_> {
        let mutex = {
            let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match map.get(key).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key.to_owned(), Arc::downgrade(&m));
                    m
                }
            }
        };
        let guard = mutex.lock_owned().await;
        LockGuard {
            locks: self,
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    /// How many keys have a lock (held or waited for); for tests.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no key has a lock.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The lock of one attachment key (see [`Locks::lock`]); the key's entry goes with the last one.
#[derive(Debug)]
pub struct LockGuard<'a> {
    locks: &'a Locks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&self.key);
        }
    }
}

/// Attachments between their allocation and the answer to their IP CR's create: the GC must not
/// take a lease without a record for an orphan while its record is still on the way (a slow
/// create would otherwise let two back-to-back collections free an address a pod then holds).
#[derive(Debug, Default)]
pub struct Pending(Mutex<HashMap<String, usize>>);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `key` as being recorded until the guard drops.
    pub fn hold(&self, key: &str) -> PendingGuard<'_> {
        *self.lock().entry(key.to_owned()).or_default() += 1;
        PendingGuard {
            pending: self,
            key: key.to_owned(),
        }
    }

    /// Whether `key`'s record is on its way.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }
}

/// Holds an attachment in [`Pending`] (see [`Pending::hold`]).
#[derive(Debug)]
pub struct PendingGuard<'a> {
    pending: &'a Pending,
    key: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.pending.lock();
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Writes the record of attachment `key`, unless this controller already wrote the same one for
/// a lease it held before (`existed`).
pub async fn write(
    ctx: &Context,
    key: &str,
    spec: IPSpec,
    existed: bool,
) -> Result<(), kube::Error> {
    // Our own annotation patch triggers another reconcile of the pod, which would write the
    // same record again: skip it when this lease was already held and its record written.
    if existed && ctx.written_ips.lock().get(key) == Some(&spec) {
        return Ok(());
    }
    let record = record(key, spec);
    let api: Api<IP> = Api::all(ctx.client.clone());
    let (params, patch) = (PatchParams::apply(MANAGER).force(), Patch::Apply(&record));
    let apply = || api.patch(key, &params, &patch);
    // A new lease almost always means a new record: a plain create is much cheaper for the
    // apiserver than a server-side apply. A record already there (a lease rebuilt after a
    // restart, a retried attach) is applied over.
    if existed {
        apply().await?;
    } else {
        match api.create(&PostParams::default(), &record).await {
            Err(kube::Error::Api(e)) if e.code == 409 => apply().await?,
            other => other?,
        };
    }
    ctx.written_ips.lock().insert(key.to_owned(), record.spec);
    Ok(())
}

/// Writes the record of a live attachment again after it was deleted. `Ok(false)` when a record
/// of that name is there already (written again meanwhile).
pub async fn restore(ctx: &Context, key: &str, spec: IPSpec) -> Result<bool, kube::Error> {
    let api: Api<IP> = Api::all(ctx.client.clone());
    let pod = format!("{}/{}", spec.namespace, spec.pod_name);
    match api.create(&PostParams::default(), &record(key, spec)).await {
        Ok(_) => {
            tracing::warn!(%key, %pod, "IP record was deleted while its pod uses the address; restored it");
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the address of attachment `key` back, once its port and record are gone.
fn release_address(ctx: &Context, key: &str) {
    ctx.ipam.release(key);
    ctx.written_ips.forget(key);
}

/// Releases one attachment completely, in the order that never leaves an address free while
/// something still holds it: the LSP (with its QoS rows) first, then the IP CR, then the
/// address. A failure on the way keeps the address (the GC retries).
pub async fn release(ctx: &Context, key: &str) -> Result<(), Error> {
    // The IP controller sees the record's deletion while the address is still held: it must
    // not take it for a record deleted by hand and write it again.
    let _releasing = ctx.releasing_ips.hold(key);
    nb::delete_port(&ctx.nb, key).await?;
    let api: Api<IP> = Api::all(ctx.client.clone());
    match api.delete(key, &DeleteParams::default()).await {
        // Still there (our finalizer holds it): let it go.
        Ok(outcome) => {
            if let Some(pending) = outcome.left() {
                drop_finalizer(&api, &pending).await?;
            }
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    release_address(ctx, key);
    Ok(())
}

/// Removes our finalizer from `ip` (keeping anyone else's), guarded by its resourceVersion.
async fn drop_finalizer(api: &Api<IP>, ip: &IP) -> Result<(), Error> {
    let finalizers = ip.finalizers();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| *f != FINALIZER).collect();
    let patch = serde_json::json!({
        "metadata": { "finalizers": rest, "resourceVersion": ip.resource_version() }
    });
    match api
        .patch(
            &ip.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone, or changed meanwhile: a change is a new watch event, handled again.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `ip` is being deleted and waits for our finalizer.
fn releasing(meta: &kube::api::ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some() && meta.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

/// Whether `event` shows a record that is not being deleted (which the IP controller neither
/// caches nor reconciles).
fn is_live_record(event: &watcher::Result<watcher::Event<PartialObjectMeta<IP>>>) -> bool {
    matches!(
        event,
        Ok(watcher::Event::Apply(ip) | watcher::Event::InitApply(ip))
            if ip.metadata.deletion_timestamp.is_none()
    )
}

/// The IP controller's trigger: a `Controller` over IP metadata whose cache holds only the
/// records being deleted. The controller keeps no cache of live records (one per attachment, so
/// most of its memory at scale would be this): nothing is done to a live record, and a record
/// never stops being deleted once it is.
pub fn controller(client: kube::Client) -> Controller<PartialObjectMeta<IP>> {
    let (store, writer) = reflector::store();
    let api = Api::<PartialObjectMeta<IP>>::all(client);
    let deletions = watcher(api, watcher::Config::default())
        .default_backoff()
        .filter(|event| std::future::ready(!is_live_record(event)))
        .modify(|ip| ip.metadata.managed_fields = None)
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(deletions, store)
}

/// The IP controller's reconcile: a record being deleted (by anyone) is written again if its pod
/// still runs with the address, otherwise its attachment is released; then the finalizer goes.
/// It sees only records being deleted (see [`controller`]), by their metadata: the full record
/// is read when one is.
pub async fn reconcile(ip: Arc<PartialObjectMeta<IP>>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !releasing(&ip.metadata) {
        return Ok(Action::await_change());
    }
    handle_deletion(&ctx, &ip.name_any()).await?;
    Ok(Action::await_change())
}

/// An IP CR is being deleted (its finalizer holds it). If its pod (the object it was written
/// for, see [`owned_by`]) still runs with the address
/// the record is written again (the address stays with the pod: releasing it would hand it to
/// the next pod while this one uses it); otherwise the attachment is released. Then the
/// finalizer goes. Run by [`reconcile`], and by the GC as its retry.
pub async fn handle_deletion(ctx: &Context, name: &str) -> Result<(), Error> {
    // Under the attachment's lock, and the record read under it: a record of the same name
    // written meanwhile (the pod recreated under its name, allocated again) is the one read,
    // and this one's cleanup cannot free that one's address or delete its port.
    let _lock = ctx.attachment_locks.lock(name).await;
    let api: Api<IP> = Api::all(ctx.client.clone());
    let Some(ip) = api.get_opt(name).await? else {
        return Ok(());
    };
    if !releasing(ip.meta()) {
        return Ok(());
    }
    let spec = ip.spec.clone();
    let held = ctx.ipam.get(name).is_some();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &spec.namespace);
    // Live: the very pod object the record was written for (by UID), not finished; a
    // terminating one too until its grace period ends (its containers use the address).
    let live = !spec.pod_name.is_empty()
        && pods
            .get_opt(&spec.pod_name)
            .await?
            .is_some_and(|p| crate::gc::pod_holds_record(&spec, &p));
    if held && live && !ctx.releasing_ips.contains(name) {
        // The finalizer goes first: the old record must be gone before its successor is created.
        drop_finalizer(&api, &ip).await?;
        restore(ctx, name, spec).await?;
        return Ok(());
    }
    tracing::info!(ip = %name, "IP record deleted; releasing its address and port");
    let cleanup = |event: Finalizer<IP>| async move {
        match event {
            Finalizer::Apply(_) => Ok(Action::await_change()),
            Finalizer::Cleanup(ip) => nb::delete_port(&ctx.nb, &ip.name_any())
                .await
                .map(|_| Action::await_change())
                .map_err(Error::from),
        }
    };
    // The port first (in the cleanup), then the record (the finalizer goes), then the address.
    match finalizer::finalizer(&api, FINALIZER, Arc::new(ip), cleanup).await {
        Ok(_) => {
            release_address(ctx, name);
            Ok(())
        }
        // Gone already: the address goes too.
        Err(finalizer::Error::RemoveFinalizer(kube::Error::Api(e))) if e.code == 404 => {
            release_address(ctx, name);
            Ok(())
        }
        // Changed meanwhile (the finalizer list no longer as read): a change is a new watch
        // event, handled again; the address stays until then.
        Err(finalizer::Error::RemoveFinalizer(kube::Error::Api(e)))
            if matches!(e.code, 409 | 422) =>
        {
            Ok(())
        }
        Err(finalizer::Error::CleanupFailed(e)) => Err(e),
        Err(e) => Err(Error::Finalizer(format!("IP {name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_is_held_by_one_at_a_time_and_its_lock_goes_with_the_last_guard() {
        let locks = Arc::new(Locks::default());
        let first = locks.lock("a").await;
        // Another key is free.
        drop(locks.lock("b").await);
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _g = locks.lock("a").await;
                let _ = tx.send(());
            })
        };
        tokio::task::yield_now().await;
        assert!(
            rx.try_recv().is_err(),
            "a second holder while the first holds"
        );
        drop(first);
        waiter.await.unwrap();
        assert!(rx.try_recv().is_ok());
        assert!(locks.is_empty(), "{} locks left", locks.len());
    }
    use proptest::prelude::*;

    fn pod(owner_kind: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web-0".into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.uid = Some("uid-web-0".into());
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("n1".into()),
            ..Default::default()
        });
        if let Some(kind) = owner_kind {
            p.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: kind.into(),
                    name: "web".into(),
                    uid: "u".into(),
                    controller: Some(true),
                    ..Default::default()
                },
            ]);
        }
        p
    }

    proptest! {
        /// What the allocator is rebuilt from at start is what the record was written from.
        #[test]
        fn a_record_reads_back_as_its_lease(
            v4 in proptest::option::of(any::<[u8; 4]>()),
            v6 in proptest::option::of(any::<[u8; 16]>()),
            mac in proptest::option::of(any::<[u8; 6]>()),
        ) {
            let lease = ipam::Lease {
                key: "web-0.ns.a.ns.ovn".into(),
                subnet: "s1".into(),
                v4: v4.map(std::net::Ipv4Addr::from),
                v6: v6.map(std::net::Ipv6Addr::from),
                mac: mac.map(ipam::MacAddr),
            };
            let ip = record(&lease.key, spec_for(&pod(None), "s1", &lease));
            prop_assert_eq!(to_lease_record(&ip), Ok(ipam::Record::from(lease)));
        }
    }

    #[test]
    fn a_record_names_its_pod_node_and_statefulset_and_carries_the_finalizer() {
        let lease = ipam::Lease {
            key: "web-0.ns.a.ns.ovn".into(),
            subnet: "s1".into(),
            v4: Some("10.0.0.2".parse().unwrap()),
            v6: Some("fd00::2".parse().unwrap()),
            mac: Some(ipam::MacAddr([2, 0, 0, 0, 0, 1])),
        };
        let ip = record(
            &lease.key,
            spec_for(&pod(Some("StatefulSet")), "s1", &lease),
        );
        assert_eq!(ip.finalizers(), [FINALIZER.to_owned()]);
        let s = &ip.spec;
        assert_eq!(
            (
                s.pod_name.as_str(),
                s.namespace.as_str(),
                s.node_name.as_str(),
                s.pod_type.as_str()
            ),
            ("web-0", "ns", "n1", POD_TYPE_STATEFULSET)
        );
        assert_eq!(
            (
                s.ip_address.as_str(),
                s.v4_ip_address.as_str(),
                s.v6_ip_address.as_str(),
                s.mac_address.as_str()
            ),
            (
                "10.0.0.2,fd00::2",
                "10.0.0.2",
                "fd00::2",
                "02:00:00:00:00:01"
            )
        );
        let plain = spec_for(&pod(Some("ReplicaSet")), "s1", &lease);
        assert_eq!(plain.pod_type, "");
        assert_eq!(s.pod_uid, "uid-web-0", "the record names its pod object");
    }

    #[test]
    fn a_record_with_a_uid_is_owned_by_that_pod_object_only() {
        let spec = |uid: &str| IPSpec {
            pod_name: "p".into(),
            namespace: "ns".into(),
            pod_uid: uid.into(),
            ..Default::default()
        };
        assert!(owned_by(&spec("u1"), "ns", "p", Some("u1")));
        assert!(!owned_by(&spec("u1"), "ns", "p", Some("u2")));
        assert!(predecessor_of(&spec("u1"), "ns", "p", Some("u2")));
        // Other names: neither owner nor predecessor (a key spelled by two pods).
        assert!(!owned_by(&spec("u1"), "ns", "q", Some("u1")));
        assert!(!predecessor_of(&spec("u1"), "ns", "q", Some("u2")));
        assert!(!predecessor_of(&spec("u1"), "other", "p", Some("u2")));
        // Records from before UIDs, and pods whose UID is not known: matched by name.
        assert!(owned_by(&spec(""), "ns", "p", Some("u2")));
        assert!(owned_by(&spec("u1"), "ns", "p", None));
        assert!(!predecessor_of(&spec(""), "ns", "p", Some("u2")));
    }

    #[test]
    fn an_unreadable_address_is_an_error_naming_it() {
        let mut ip = record("k", IPSpec::default());
        ip.spec.ip_address = "10.0.0.300".into();
        let err = to_lease_record(&ip).unwrap_err();
        assert!(err.contains("10.0.0.300"), "{err}");
    }

    #[test]
    fn the_ip_controller_sees_only_records_being_deleted() {
        let meta = |deleting: bool| {
            let mut m = PartialObjectMeta::<IP>::default();
            m.metadata.name = Some("k".into());
            if deleting {
                m.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    ));
            }
            m
        };
        use watcher::Event;
        assert!(is_live_record(&Ok(Event::Apply(meta(false)))));
        assert!(is_live_record(&Ok(Event::InitApply(meta(false)))));
        assert!(!is_live_record(&Ok(Event::Apply(meta(true)))));
        assert!(!is_live_record(&Ok(Event::InitApply(meta(true)))));
        // Deletions and the list's boundaries reach the cache, so it forgets and swaps.
        assert!(!is_live_record(&Ok(Event::Delete(meta(false)))));
        assert!(!is_live_record(&Ok(Event::Init)));
        assert!(!is_live_record(&Ok(Event::InitDone)));
    }
}
