//! `MultiNetworkPolicy` → OVN: Kubernetes NetworkPolicy semantics on the kube-ovn attachments
//! of the networks a policy's `k8s.v1.cni.cncf.io/policy-for` names (see
//! [`crate::nb::policy`] for the rows and ACLs).
//!
//! - Members: the ports of the attachments, on those networks, of the pods in the policy's
//!   namespace its `podSelector` selects.
//! - Peers (`podSelector`, `namespaceSelector`, both): the addresses those pods have on the
//!   policy's networks (the multi-networkpolicy convention: a pod reaches an attachment from
//!   its own attachment on the same networks); `ipBlock` with `except` as written.
//! - A network that is not a kube-ovn attachment NAD is left alone (another implementation may
//!   enforce it); one that does not exist, and every part of the spec that cannot be enforced
//!   (named ports, an invalid selector or CIDR...), is a Warning Event on the policy, and the
//!   part it concerns allows nothing. The CRD has no status.
//! - The policy is re-planned when it changes, when a pod's labels, annotations (its
//!   attachments and addresses) or phase change, and when a namespace's labels change.
//!   Rows are written in one NB transaction per policy.
//! - No finalizer (the objects may be another implementation's too): the rows of a deleted
//!   policy go when its deletion is seen, and at start and every GC interval for policies
//!   deleted meanwhile.
//! - Without the CRD in the cluster the controller logs it once and enforces nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crds::multi_network_policy::{POLICY_FOR_ANNOTATION, policy_for};
use crds::naming::{AnnotationKey, NETWORKS_ANNOTATION, annotation_key, lsp_name, pod_key};
use crds::{MultiNetworkPolicy, NadClass, NetworkAttachmentDefinition};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, Resource, ResourceExt};
use ovn_api::replica::Replica;
use ovn_api::tables::nb::LogicalSwitchPort;
use ovn_api::value::Uuid;

use crate::context::Context;
use crate::error::Error;
use crate::nb::policy as nbp;

/// How soon a policy looks again when a selected pod's port is not in NB yet.
const RETRY_PORT: Duration = Duration::from_secs(2);
/// How soon a policy looks again when a network it names does not exist.
const RETRY_NETWORK: Duration = Duration::from_secs(30);

/// What the policy controller reads besides the context: pods, namespaces, and the problems
/// last reported per policy (an Event only when they change).
#[derive(Debug)]
pub struct Caches {
    /// Pods, all namespaces (the pod controller's cache).
    pub pods: Store<Pod>,
    /// Namespaces (for `namespaceSelector`).
    pub namespaces: Store<Namespace>,
    reported: Mutex<BTreeMap<String, String>>,
}

impl Caches {
    /// Caches over these stores.
    pub fn new(pods: Store<Pod>, namespaces: Store<Namespace>) -> Self {
        Self {
            pods,
            namespaces,
            reported: Mutex::default(),
        }
    }
}

/// `<ns>/<name>` of a policy.
pub fn key_of(policy: &MultiNetworkPolicy) -> String {
    pod_key(&policy.namespace().unwrap_or_default(), &policy.name_any())
}

/// Whether a pod is gone or going (its addresses are no peer's any more).
fn is_leaving(pod: &Pod) -> bool {
    pod.meta().deletion_timestamp.is_some()
        || matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// The policy's kube-ovn networks as `(namespace, name)`, with the problems of the others.
fn our_networks(
    policy: &MultiNetworkPolicy,
    nads: &[Arc<NetworkAttachmentDefinition>],
    problems: &mut Vec<String>,
) -> (BTreeSet<(String, String)>, bool) {
    let namespace = policy.namespace().unwrap_or_default();
    let networks = match policy.annotations().get(POLICY_FOR_ANNOTATION) {
        None => {
            problems.push(format!(
                "no {POLICY_FOR_ANNOTATION} annotation: the policy applies to no network"
            ));
            Vec::new()
        }
        Some(v) => policy_for(&namespace, v).unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        }),
    };
    let mut ours = BTreeSet::new();
    let mut missing = false;
    for (ns, name) in networks {
        let nad = nads.iter().find(|n| {
            n.metadata.namespace.as_deref() == Some(ns.as_str())
                && n.metadata.name.as_deref() == Some(name.as_str())
        });
        match nad.map(|n| n.classify()) {
            None => {
                missing = true;
                problems.push(format!(
                    "NetworkAttachmentDefinition {ns}/{name} does not exist: the policy applies to it once it does"
                ));
            }
            Some(Ok(NadClass::Attachment { .. })) => {
                ours.insert((ns, name));
            }
            Some(Ok(NadClass::IpamOnly { plugin, .. })) => problems.push(format!(
                "NetworkAttachmentDefinition {ns}/{name} is a {plugin} network with kube-ovn IPAM: its traffic does not pass OVN, so this policy is not enforced on it"
            )),
            // Another plugin's network (or a NAD whose own error is reported on it).
            Some(_) => {}
        }
    }
    (ours, missing)
}

/// One attachment's port: its UUID and addresses.
type Attached = (Uuid, Vec<IpAddr>);

/// The ports (UUID and addresses) of `pod`'s attachments on `networks`; `pending` is set when
/// an attachment is allocated but its port is not in the replica yet.
fn ports_of(
    pod: &Pod,
    networks: &BTreeSet<(String, String)>,
    nads: &[Arc<NetworkAttachmentDefinition>],
    r: &Replica,
    pending: &mut bool,
) -> Vec<Attached> {
    let Some(raw) = pod.annotations().get(NETWORKS_ANNOTATION) else {
        return Vec::new();
    };
    let namespace = pod.namespace().unwrap_or_default();
    let Ok(elements) = crds::parse_networks_annotation(raw, &namespace) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for position in 0..elements.len() {
        let Ok(Some(resolved)) = crds::nad::resolve_element(&elements, position, nads) else {
            continue;
        };
        let on_network = networks.contains(&(
            resolved.element.namespace.clone(),
            resolved.element.name.clone(),
        ));
        if !on_network || !matches!(resolved.class, NadClass::Attachment { .. }) {
            continue;
        }
        let name = lsp_name(&pod.name_any(), &namespace, &resolved.provider);
        match r.one_by_name::<LogicalSwitchPort>(&name).ok().flatten() {
            Some(port) => out.push((port.uuid, crate::nb::security_group::addresses_of(&port))),
            None => {
                let allocated = pod
                    .annotations()
                    .get(&annotation_key(
                        &resolved.provider,
                        AnnotationKey::Allocated,
                    ))
                    .is_some_and(|v| v == "true");
                *pending |= allocated && !is_leaving(pod);
            }
        }
    }
    out
}

fn selector(
    field: &str,
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<Selector, String> {
    Selector::try_from(s.clone()).map_err(|e| format!("{field}: {e}"))
}

/// The port groups of the policies that select `pod`'s attachment on the NAD `nad`
/// (`(namespace, name)`): what a new port of it joins in its own transaction. Empty while the
/// policy controller has not started (or the CRD is not installed).
pub fn groups_selecting(ctx: &Context, pod: &Pod, nad: (&str, &str)) -> Vec<String> {
    let Some(policies) = ctx.policies.get() else {
        return Vec::new();
    };
    let namespace = pod.namespace().unwrap_or_default();
    policies
        .state()
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|p| {
            p.annotations()
                .get(POLICY_FOR_ANNOTATION)
                .and_then(|v| policy_for(&namespace, v).ok())
                .is_some_and(|nets| nets.iter().any(|(ns, n)| ns == nad.0 && n == nad.1))
        })
        .filter(|p| {
            selector("spec.podSelector", &p.spec.pod_selector)
                .is_ok_and(|s| s.matches(pod.labels()))
        })
        .map(|p| crds::naming::policy_port_group(&namespace, &p.name_any()))
        .collect()
}

/// Reconciles one MultiNetworkPolicy.
pub async fn reconcile(
    policy: Arc<MultiNetworkPolicy>,
    ctx: Arc<Context>,
    caches: Arc<Caches>,
) -> Result<Action, Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let key = key_of(&policy);
    let nads = ctx.nads.state();
    let mut problems = Vec::new();
    let (networks, missing) = our_networks(&policy, &nads, &mut problems);
    if networks.is_empty() {
        nbp::delete_policy(&ctx.nb, &key).await?;
        report(&ctx, &policy, &caches, problems).await;
        return Ok(Action::requeue(if missing {
            RETRY_NETWORK
        } else {
            Duration::from_secs(300)
        }));
    }
    let pods = caches.pods.state();
    let namespaces = caches.namespaces.state();
    let mut pending = false;
    let (ports, plan) = {
        let r = ctx.nb.replica();
        // Each pod's attachments on the policy's networks, resolved once per reconcile (the
        // members and every rule's peers select from this list).
        let attached: Vec<(&Arc<Pod>, Vec<Attached>, bool)> = pods
            .iter()
            .filter_map(|pod| {
                let mut waiting = false;
                let found = ports_of(pod, &networks, &nads, &r, &mut waiting);
                (!found.is_empty() || waiting).then_some((pod, found, waiting))
            })
            .collect();
        let mut ports = BTreeSet::new();
        match selector("spec.podSelector", &policy.spec.pod_selector) {
            Ok(sel) => {
                for (_, found, waiting) in attached.iter().filter(|(p, _, _)| {
                    p.namespace().as_deref() == Some(namespace.as_str()) && sel.matches(p.labels())
                }) {
                    pending |= *waiting;
                    ports.extend(found.iter().map(|(u, _)| *u));
                }
            }
            // Selects nothing: no member, the policy holds no port.
            Err(e) => problems.push(e),
        }
        let mut peers = |peer: &NetworkPolicyPeer| -> Result<Vec<IpAddr>, String> {
            let pod_sel = peer
                .pod_selector
                .as_ref()
                .map(|s| selector("podSelector", s))
                .transpose()?;
            let in_namespaces: BTreeSet<String> = match &peer.namespace_selector {
                None => BTreeSet::from([namespace.clone()]),
                Some(s) => {
                    let sel = selector("namespaceSelector", s)?;
                    namespaces
                        .iter()
                        .filter(|n| sel.matches(n.labels()))
                        .map(|n| n.name_any())
                        .collect()
                }
            };
            Ok(attached
                .iter()
                .filter(|(p, _, _)| {
                    !is_leaving(p)
                        && p.namespace().is_some_and(|n| in_namespaces.contains(&n))
                        && pod_sel.as_ref().is_none_or(|s| s.matches(p.labels()))
                })
                .flat_map(|(_, found, _)| found.iter().flat_map(|(_, a)| a.iter().copied()))
                .collect())
        };
        let plan = nbp::plan_policy(&namespace, &name, &policy.spec, &mut peers);
        (ports, plan)
    };
    problems.extend(plan.problems.iter().cloned());
    let pg = crds::naming::policy_port_group(&namespace, &name);
    nbp::ensure_policy(&ctx.nb, &key, &pg, &ports, &plan).await?;
    tracing::debug!(policy = %key, ports = ports.len(), acls = plan.acls.len(), "MultiNetworkPolicy written");
    report(&ctx, &policy, &caches, problems).await;
    Ok(Action::requeue(if pending {
        RETRY_PORT
    } else if missing {
        RETRY_NETWORK
    } else {
        Duration::from_secs(300)
    }))
}

/// Publishes the policy's problems as one Warning Event when they differ from the last ones
/// reported (and a Normal one when they are gone).
async fn report(
    ctx: &Context,
    policy: &MultiNetworkPolicy,
    caches: &Caches,
    problems: Vec<String>,
) {
    let key = key_of(policy);
    let note = problems.join("; ");
    let previous = {
        let mut reported = caches
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reported.get(&key) == Some(&note) {
            return;
        }
        reported.insert(key.clone(), note.clone())
    };
    let object = policy.object_ref(&());
    if !problems.is_empty() {
        tracing::warn!(policy = %key, problems = %note, "MultiNetworkPolicy not fully enforced");
        let msg = format!("MultiNetworkPolicy {key}: {note}");
        ctx.event(&object, true, "PolicyNotEnforced", msg).await;
    } else if previous.is_some_and(|p| !p.is_empty()) {
        let msg = format!("MultiNetworkPolicy {key} is enforced as written");
        ctx.event(&object, false, "PolicyEnforced", msg).await;
    }
}

/// The relevance of a pod to policies: labels, annotations (attachments, addresses),
/// deletion, phase.
fn pod_relevance(pod: &Pod) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pod.labels().hash(&mut h);
    pod.annotations().hash(&mut h);
    pod.meta().deletion_timestamp.is_some().hash(&mut h);
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .hash(&mut h);
    h.finish()
}

/// A sender of "pods changed in a way policies see", fed by the pod watch (after its cache
/// holds the change): see [`PodChanges::observe`].
#[derive(Debug, Clone)]
pub struct PodChanges {
    tx: tokio::sync::watch::Sender<()>,
    seen: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Default for PodChanges {
    fn default() -> Self {
        Self {
            tx: tokio::sync::watch::Sender::new(()),
            seen: Arc::default(),
        }
    }
}

impl PodChanges {
    /// Notes one event of the pod watch; announces it when it changes what policies see.
    pub fn observe(&self, event: &watcher::Event<Pod>) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = match event {
            watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                let uid = p.uid().unwrap_or_default();
                seen.insert(uid, pod_relevance(p)) != Some(pod_relevance(p))
            }
            watcher::Event::Delete(p) => {
                seen.remove(&p.uid().unwrap_or_default());
                true
            }
            watcher::Event::Init => false,
            watcher::Event::InitDone => true,
        };
        if changed {
            self.tx.send_replace(());
        }
    }

    fn stream(&self) -> impl futures::Stream<Item = ()> + Send + Sync + 'static {
        let rx = self.tx.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok().map(|()| ((), rx))
        })
    }
}

/// Whether the MultiNetworkPolicy CRD is served.
async fn crd_installed(client: &kube::Client) -> bool {
    let api: Api<MultiNetworkPolicy> = Api::all(client.clone());
    match api.list(&kube::api::ListParams::default().limit(1)).await {
        Ok(_) => true,
        Err(kube::Error::Api(s)) if s.code == 404 => false,
        // Any other failure: assume it is there, the watch retries.
        Err(e) => {
            tracing::warn!(error = %e, "could not check for the MultiNetworkPolicy CRD");
            true
        }
    }
}

/// Deletes the rows of every policy that owns rows in NB and is not in `store`.
async fn sweep(ctx: &Context, store: &Store<MultiNetworkPolicy>) {
    let live: BTreeSet<String> = store.state().iter().map(|p| key_of(p)).collect();
    for key in nbp::owned_policies(&ctx.nb).difference(&live) {
        match nbp::delete_policy(&ctx.nb, key).await {
            Ok(_) => tracing::info!(policy = %key, "rows of a deleted MultiNetworkPolicy removed"),
            Err(e) => {
                tracing::warn!(policy = %key, error = %e, "removing the rows of a deleted MultiNetworkPolicy failed")
            }
        }
    }
}

/// The MultiNetworkPolicy controller: reconciles on policy, pod (`pod_changes`) and namespace
/// changes; removes the rows of deleted policies (at once, and every `gc_interval`). Runs until
/// the process stops; without the CRD it logs that once and does nothing.
pub async fn run(
    ctx: Arc<Context>,
    pods: Store<Pod>,
    pod_changes: PodChanges,
    workers: u16,
    gc_interval: Duration,
) {
    let client = ctx.client.clone();
    if !crd_installed(&client).await {
        tracing::info!(
            "the MultiNetworkPolicy CRD (k8s.cni.cncf.io/v1beta1) is not installed: no policy is enforced (install it and restart the controller)"
        );
        return std::future::pending().await;
    }
    let (namespace_store, namespace_writer) = reflector::store();
    let namespaces = watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(namespace_writer)
    .applied_objects()
    .predicate_filter(
        |n: &Namespace| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            n.labels().hash(&mut h);
            Some(h.finish())
        },
        kube::runtime::PredicateConfig::default(),
    );
    let (deleted_tx, mut deleted_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (store, writer) = reflector::store();
    // New ports join their policies' port groups in their own transaction (see
    // [`groups_selecting`]); a second controller run in this process keeps the first store.
    let _ = ctx.policies.set(store.clone());
    let policies = watcher(
        Api::<MultiNetworkPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .inspect(move |e| {
        if let Ok(watcher::Event::Delete(p)) = e {
            let _ = deleted_tx.send(key_of(p));
        }
    })
    .applied_objects();
    let caches = Arc::new(Caches::new(pods, namespace_store));
    let all = store.clone();
    let every = move || -> Vec<ObjectRef<MultiNetworkPolicy>> {
        all.state()
            .iter()
            .map(|p| ObjectRef::from(p.as_ref()))
            .collect()
    };
    let controller = Controller::for_stream(policies, store.clone())
        .watches_stream(namespaces, move |_| every())
        .reconcile_all_on(pod_changes.stream());
    let reconciling = crate::reconciler::run(
        controller,
        "multi-network-policy",
        {
            let caches = caches.clone();
            move |p, ctx| reconcile(p, ctx, caches.clone())
        },
        ctx.clone(),
        workers,
    );
    let cleanup = async move {
        if store.wait_until_ready().await.is_err() {
            return;
        }
        sweep(&ctx, &store).await;
        loop {
            tokio::select! {
                key = deleted_rx.recv() => {
                    let Some(key) = key else { return };
                    caches.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
                    let back = store.state().iter().any(|p| key_of(p) == key);
                    if !back && let Err(e) = nbp::delete_policy(&ctx.nb, &key).await {
                        tracing::warn!(policy = %key, error = %e, "removing a deleted MultiNetworkPolicy's rows failed; the next sweep retries");
                    }
                }
                () = tokio::time::sleep(gc_interval) => sweep(&ctx, &store).await,
            }
        }
    };
    tokio::join!(reconciling, cleanup);
}
