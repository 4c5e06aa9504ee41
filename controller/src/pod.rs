//! Pod attachments: every kube-ovn element of `k8s.v1.cni.cncf.io/networks` becomes an address
//! (IPAM), an `IP` CR (the durable record, written first), a logical switch port (one NB
//! transaction) and the `<provider>.kubernetes.io/*` annotations (one patch) that the daemon
//! waits for, plus its bandwidth limits (NB `QoS` rows from the `ingress_rate`/`egress_rate`
//! annotations) and its security groups (`security_groups`: port group memberships in the same
//! transaction, see [`crate::security_group`]). Pods without the networks annotation are skipped
//! before any work. Each element is handled on its own: a bad one gets an Event and leaves the
//! others untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crds::naming::{
    AnnotationKey, EXTERNAL_ID_LOGICAL_SWITCH, EXTERNAL_ID_POD, EXTERNAL_ID_PROVIDER,
    NETWORKS_ANNOTATION, POD_WIDE_PROVIDER, annotation_key, lsp_name,
};
use crds::{
    NadClass, NetworkAttachmentDefinition, NetworkSelectionElement, Subnet, Vpc,
    parse_networks_annotation,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::context::{Context, MANAGER};
use crate::error::Error;
use crate::metrics::Outcome;
use crate::{nb, tenancy};

/// How soon a pod with a failed attachment is tried again at first (subnets may become ready,
/// NADs may appear, a conflicting address may be freed); the delay doubles with every further
/// failure up to [`crate::retry::MAX_DELAY`].
pub const RETRY: Duration = Duration::from_secs(2);

/// How soon a pod whose subnet is not realised yet is tried again: the Subnet is usually
/// created together with its pods and becomes ready within a second.
pub const RETRY_NOT_READY: Duration = Duration::from_secs(1);

/// How long a pod may wait for its subnet's switch before the wait is a Warning
/// (`AttachmentFailed`); before that it is a Normal `WaitingForSubnet` event.
pub const SUBNET_WAIT_GRACE: k8s_openapi::jiff::SignedDuration =
    k8s_openapi::jiff::SignedDuration::from_secs(60);

/// Whether `pod` asks for any secondary network at all: the cheap filter before any work.
pub fn wants_networks(pod: &Pod) -> bool {
    pod.annotations().contains_key(NETWORKS_ANNOTATION)
}

/// Drops what the controller never reads from a watched pod before it is cached: managed
/// fields, containers, volumes and most of the status. The reflector keeps every pod of the
/// cluster, so this is most of the controller's memory at scale.
pub fn slim(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.take() {
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: spec.node_name,
            ..Default::default()
        });
    }
    if let Some(status) = pod.status.take() {
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: status.phase,
            ..Default::default()
        });
    }
}

/// Whether the annotation `key` is one the controller writes as a result of an allocation for a
/// provider that is already `allocated`: such a change is our own patch coming back.
fn is_own_output(key: &str, annotations: &BTreeMap<String, String>) -> bool {
    let Some((provider, k)) = crds::naming::parse_annotation_key(key) else {
        return false;
    };
    let output = k.written_by_controller();
    output
        && annotations
            .get(&annotation_key(provider, AnnotationKey::Allocated))
            .is_some_and(|v| v == "true")
}

/// What a pod change must alter to be worth a reconcile (the pod controller's predicate): its
/// annotations except our own allocation results, deletion, phase and node. So the event of our
/// own annotation patch does not reconcile the pod a second time; a requeue still does.
pub fn trigger_hash(pod: &Pod) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let annotations = pod.annotations();
    for (k, v) in annotations {
        if !is_own_output(k, annotations) {
            (k, v).hash(&mut h);
        }
    }
    pod.metadata.deletion_timestamp.is_some().hash(&mut h);
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .hash(&mut h);
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .hash(&mut h);
    Some(h.finish())
}

/// The pods in `pods` with an attachment on `subnet` (a `logical_switch` annotation naming it):
/// what a change of the Subnet's spec re-checks (admission, port security).
pub fn attached_to(
    pods: &kube::runtime::reflector::Store<Pod>,
    subnet: &str,
) -> Vec<kube::runtime::reflector::ObjectRef<Pod>> {
    pods.state()
        .iter()
        .filter(|p| {
            p.annotations().iter().any(|(k, v)| {
                v == subnet
                    && crds::naming::parse_annotation_key(k)
                        .is_some_and(|(_, key)| key == AnnotationKey::LogicalSwitch)
            })
        })
        .map(|p| kube::runtime::reflector::ObjectRef::from(p.as_ref()))
        .collect()
}

/// Whether the pod is finished or going away (its addresses are released by the GC).
fn is_done(pod: &Pod) -> bool {
    pod.meta().deletion_timestamp.is_some()
        || matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// One kube-ovn attachment of a pod, resolved to its provider and subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// This attachment's provider (annotation keys, LSP and IP names).
    pub provider: String,
    /// Interface name in the pod.
    pub interface: String,
    /// The subnet it lands in.
    pub subnet: String,
    /// Whether it gets an OVN port (false for IPAM-only NADs).
    pub port: bool,
    /// Whether this is a VpcNatGateway pod's LAN attachment (its owner chain admits it to
    /// this Subnet): the port forwards for the VPC, so it is pinned to its MAC only.
    pub gateway_lan: bool,
    /// The element as the user wrote it.
    pub element: NetworkSelectionElement,
}

/// Why one element could not be planned: the Event reason and message, and the attachment's
/// provider when the element resolved that far (so a refused `logical_switch` edit of an
/// attachment allocated earlier can be written back, see [`crate::tenancy`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanError {
    /// Event reason ([`tenancy::ATTACHMENT_FAILED`] or an isolation reason).
    pub reason: &'static str,
    /// What is wrong, naming only what the pod's owner may see.
    pub message: String,
    /// The attachment's provider, when known.
    pub provider: Option<String>,
    /// Whether the network is only not set up yet (a wait, not a failure).
    pub waiting: bool,
    /// The NAD (namespace, name) the element names when this cache has no such NAD: the pod
    /// may have come with its NAD in one `kubectl apply`, and the pod watch delivered it first.
    pub missing_nad: Option<(String, String)>,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Resolves one element: NAD, class, provider, subnet. `Ok(None)` for NADs that are not ours.
/// The subnet is chosen by [`tenancy::choose_subnet`]: only a Subnet that binds the NAD's
/// provider and admits both the pod's and the NAD's namespace.
pub fn plan_element(
    nads: &[Arc<NetworkAttachmentDefinition>],
    subnets: &[Arc<Subnet>],
    vpcs: &[Arc<Vpc>],
    pod: &Pod,
    elements: &[NetworkSelectionElement],
    position: usize,
) -> Result<Option<Planned>, PlanError> {
    plan_element_for(nads, subnets, vpcs, pod, elements, position, None)
}

/// [`plan_element`] for a pod that may be a VpcNatGateway's: `gateway_subnet` is the LAN
/// Subnet its owner chain admits it to ([`tenancy::Asker::gateway_subnet`]).
pub fn plan_element_for(
    nads: &[Arc<NetworkAttachmentDefinition>],
    subnets: &[Arc<Subnet>],
    vpcs: &[Arc<Vpc>],
    pod: &Pod,
    elements: &[NetworkSelectionElement],
    position: usize,
    gateway_subnet: Option<&str>,
) -> Result<Option<Planned>, PlanError> {
    let resolved = crds::nad::resolve_element(elements, position, nads).map_err(|e| PlanError {
        reason: tenancy::ATTACHMENT_FAILED,
        message: e.to_string(),
        provider: None,
        waiting: false,
        missing_nad: match &e {
            crds::Error::UnknownNad { namespace, name } => Some((namespace.clone(), name.clone())),
            _ => None,
        },
    })?;
    let Some(resolved) = resolved else {
        return Ok(None);
    };
    let port = matches!(resolved.class, NadClass::Attachment { .. });
    let (provider, nad_provider, interface) =
        (resolved.provider, resolved.nad_provider, resolved.interface);
    let pod_namespace = pod.namespace().unwrap_or_default();
    let requested = pod
        .annotations()
        .get(&annotation_key(&provider, AnnotationKey::LogicalSwitch));
    let asker = tenancy::Asker {
        pod_namespace: &pod_namespace,
        nad_namespace: &resolved.element.namespace,
        nad: &resolved.element.name,
        provider: &nad_provider,
        requested: requested.map(String::as_str),
        gateway_subnet,
    };
    let subnet = tenancy::choose_subnet(subnets, vpcs, &asker).map_err(|r| PlanError {
        reason: r.reason(),
        waiting: matches!(r, tenancy::Refusal::VpcPending { .. }),
        message: r.to_string(),
        provider: Some(provider.clone()),
        missing_nad: None,
    })?;
    let gateway_lan = port && gateway_subnet == Some(subnet.as_str());
    Ok(Some(Planned {
        provider,
        interface,
        subnet,
        port,
        gateway_lan,
        element: resolved.element,
    }))
}

/// The IPAM request for an attachment: static addresses and MAC from the selection element,
/// else from the provider's annotations; `ip_pool` as a list of addresses or an IPPool name.
/// The annotations are text anyone who may edit the pod can write: they are parsed here, and a
/// bad value is an error that names the attachment's key and the value.
pub fn request_for(
    pod: &Pod,
    planned: &Planned,
    namespace_pool: Option<&str>,
) -> Result<ipam::Request, ipam::Error> {
    let a = pod.annotations();
    let owner = lsp_name(
        &pod.name_any(),
        &pod.namespace().unwrap_or_default(),
        &planned.provider,
    );
    let key = |k| annotation_key(&planned.provider, k);
    let mut req = ipam::Request::random();
    if !planned.element.ips.is_empty() {
        req = req.with_ips(planned.element.ips.iter().copied());
    } else if let Some(ips) = a.get(&key(AnnotationKey::IpAddress)) {
        req = req.with_ips(ipam::parse_ips(&owner, ips)?);
    }
    if let Some(mac) = &planned.element.mac {
        req = req.with_mac(ipam::parse_mac(&owner, &mac.to_string())?);
    } else if let Some(mac) = a.get(&key(AnnotationKey::MacAddress)) {
        req = req.with_mac(ipam::parse_mac(&owner, mac)?);
    }
    let own_choice =
        !planned.element.ips.is_empty() || a.contains_key(&key(AnnotationKey::IpAddress));
    if let Some(pool) = a.get(&key(AnnotationKey::IpPool)) {
        // A list of addresses, or the name of an IPPool (upstream's two forms).
        req = req.with_ip_pool(&owner, pool)?;
    } else if let Some(pool) = namespace_pool.filter(|_| !own_choice) {
        // The pool that serves the pod's namespace on this Subnet (`IPPool.spec.namespaces`).
        req = req.in_pool(pool);
    }
    Ok(req)
}

/// Reconciles one pod's attachments.
pub async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !wants_networks(&pod) || is_done(&pod) {
        return Ok(Action::await_change());
    }
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let raw = pod
        .annotations()
        .get(NETWORKS_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let elements = match parse_networks_annotation(&raw, &namespace) {
        Ok(e) => e,
        Err(e) => {
            fail(
                &ctx,
                &pod,
                tenancy::ATTACHMENT_FAILED,
                format!("{NETWORKS_ANNOTATION}: {e}"),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    let (nads, subnets, vpcs) = (ctx.nads.state(), ctx.subnets.state(), ctx.vpcs.state());
    let gateway_subnet = crate::nat_gateway::admitted_lan_subnet(&ctx, &pod).await?;
    if gateway_subnet.is_none() && crate::nat_gateway::orphaned_gateway_pod(&ctx, &pod).await? {
        tracing::info!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()),
            "the pod's VpcNatGateway is gone; the pod goes with it, nothing to attach");
        return Ok(Action::await_change());
    }
    let mut annotations = BTreeMap::new();
    let mut failures = Vec::new();
    let mut waits = Vec::new();
    let mut wanted = BTreeSet::new();
    let mut unresolved = false;
    let mut subnet_not_ready = false;
    // Elements whose NAD the API has and this controller's cache does not (yet): whether
    // that has lasted (the NAD is older than a young pod's grace), and what to say then.
    let mut cache_lag: Vec<(bool, String)> = Vec::new();
    // Addresses and records first, element by element; then every port (and its QoS rows) of
    // the pod in one NB transaction.
    let mut reserved = Vec::new();
    for position in 0..elements.len() {
        let planned = match plan_element_for(
            &nads,
            &subnets,
            &vpcs,
            &pod,
            &elements,
            position,
            gateway_subnet.as_deref(),
        ) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                let what = format!("{}: {}", elements[position].nad_key(), e.message);
                if let Some((nad_ns, nad_name)) = &e.missing_nad
                    && let Some(nad_age) = nad_age(&ctx, nad_ns, nad_name).await?
                {
                    // In the API but not yet in this cache: a moment's wait, no failure.
                    tracing::info!(pod = %format!("{namespace}/{name}"), nad = %format!("{nad_ns}/{nad_name}"),
                        "the NetworkAttachmentDefinition is not in the cache yet; retrying");
                    cache_lag.push((
                        nad_age >= SUBNET_WAIT_GRACE,
                        format!(
                            "{}: NetworkAttachmentDefinition {nad_ns}/{nad_name} exists, but the \
                             controller's cache has not received it",
                            elements[position].nad_key()
                        ),
                    ));
                    unresolved = true;
                    continue;
                }
                if e.waiting {
                    subnet_not_ready = true;
                    waits.push(what);
                } else {
                    if let Some(restored) = restore_logical_switch(&ctx, &pod, &e) {
                        annotations.extend(restored);
                    }
                    failures.push((e.reason, what));
                }
                unresolved = true;
                continue;
            }
        };
        wanted.insert(lsp_name(&name, &namespace, &planned.provider));
        let started = std::time::Instant::now();
        let what = format!("{} ({})", elements[position].nad_key(), planned.interface);
        match reserve(&ctx, &pod, &planned).await {
            Ok(r) => reserved.push((r, what, started)),
            Err(e) => {
                let outcome = match &e {
                    AttachError::SubnetNotReady(_) => {
                        subnet_not_ready = true;
                        Outcome::Waiting
                    }
                    AttachError::Failed(_) => Outcome::Error,
                };
                ctx.metrics.observe_attachment(outcome, started.elapsed());
                match e {
                    AttachError::SubnetNotReady(msg) => waits.push(format!("{what}: {msg}")),
                    AttachError::Failed(msg) => {
                        failures.push((tenancy::ATTACHMENT_FAILED, format!("{what}: {msg}")));
                    }
                }
            }
        }
    }
    let mut ports = Vec::new();
    let mut qos = Vec::new();
    for (r, _, _) in &reserved {
        if let Some(port) = &r.port {
            ports.push(port.clone());
            qos.push(qos_plan(&ctx, &pod, &r.planned).await);
        }
    }
    let written = if ports.is_empty() {
        Ok(Vec::new())
    } else {
        nb::ensure_attachments(
            &ctx.nb,
            &ports,
            &qos,
            format!("writing the ports of pod {namespace}/{name}"),
        )
        .await
    };
    let mut port_results = match &written {
        Ok(results) => results
            .iter()
            .map(|e| e.as_ref().map(ToString::to_string))
            .collect(),
        Err(e) => vec![Some(e.to_string()); ports.len()],
    }
    .into_iter();
    let mut allocated = Vec::new();
    for (r, what, started) in reserved {
        let failed = if r.port.is_some() {
            port_results.next().flatten()
        } else {
            None
        };
        match failed {
            None => {
                ctx.metrics
                    .observe_attachment(Outcome::Ok, started.elapsed());
                let ip = r
                    .annotations
                    .get(&annotation_key(
                        &r.planned.provider,
                        AnnotationKey::IpAddress,
                    ))
                    .cloned()
                    .unwrap_or_default();
                let new = current_value(&pod, &r.planned.provider, AnnotationKey::IpAddress)
                    != Some(ip.as_str());
                if new {
                    allocated.push(format!("{what}: {ip} on Subnet {}", r.planned.subnet));
                }
                annotations.extend(r.annotations);
            }
            Some(msg) => {
                ctx.metrics
                    .observe_attachment(Outcome::Error, started.elapsed());
                failures.push((tenancy::ATTACHMENT_FAILED, format!("{what}: {msg}")));
            }
        }
    }
    // An element that did not resolve (its NAD deleted, its subnet ambiguous) may be one the pod
    // runs with: its provider is unknown, so nothing can be proven unwanted. Releasing then would
    // hand a live address to the next pod.
    if !unresolved {
        crate::gc::release_unwanted(&ctx, &pod, &wanted).await?;
    }
    let current = pod.annotations();
    if annotations.iter().any(|(k, v)| current.get(k) != Some(v)) {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({ "metadata": { "annotations": annotations } });
        // Under our name, so `managedFields` says which annotations are the controller's.
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        api.patch(&name, &params, &Patch::Merge(&patch)).await?;
        tracing::info!(pod = %format!("{namespace}/{name}"), "attachments allocated");
        if !allocated.is_empty() {
            // What `kubectl describe pod` shows: each attachment given an address now.
            let msg = format!("allocated {}", allocated.join("; "));
            ctx.event(&pod.object_ref(&()), false, "AttachmentsAllocated", msg)
                .await;
        }
    }
    let retry_key = crate::retry::key_of(pod.as_ref());
    if failures.is_empty() && waits.is_empty() && cache_lag.is_empty() {
        ctx.retries.reset(&retry_key);
        Ok(Action::await_change())
    } else {
        for (reason, f) in failures {
            fail(&ctx, &pod, reason, f).await;
        }
        // A pod applied together with its Subnet (the manual's first example is one file)
        // waits a moment for the switch: that is no failure until it lasts.
        let young = pod.creation_timestamp().is_none_or(|t| {
            k8s_openapi::jiff::Timestamp::now().duration_since(t.0) < SUBNET_WAIT_GRACE
        });
        for w in waits {
            if young {
                tracing::info!(pod = %format!("{namespace}/{name}"), msg = %w, "waiting for the subnet");
                ctx.event(&pod.object_ref(&()), false, "WaitingForSubnet", w)
                    .await;
            } else {
                fail(&ctx, &pod, tenancy::ATTACHMENT_FAILED, w).await;
            }
        }
        // A cache that lags for longer than a young pod's grace is no moment's wait.
        for (lasting, lag) in &cache_lag {
            if *lasting {
                fail(&ctx, &pod, tenancy::ATTACHMENT_FAILED, lag.clone()).await;
            }
        }
        let base = if subnet_not_ready || !cache_lag.is_empty() {
            RETRY_NOT_READY
        } else {
            RETRY
        };
        Ok(Action::requeue(ctx.retries.next(&retry_key, base)))
    }
}

/// The pod's current value of annotation `key` of `provider`.
fn current_value<'a>(pod: &'a Pod, provider: &str, key: AnnotationKey) -> Option<&'a str> {
    pod.annotations()
        .get(&annotation_key(provider, key))
        .map(String::as_str)
}

/// How long NAD `namespace/name` has existed in the API server (one GET), or None when it does
/// not: for an element this controller's NAD cache does not know yet.
async fn nad_age(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<k8s_openapi::jiff::SignedDuration>, Error> {
    let api: Api<NetworkAttachmentDefinition> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(|nad| {
        nad.creation_timestamp()
            .map(|t| k8s_openapi::jiff::Timestamp::now().duration_since(t.0))
            .unwrap_or_default()
    }))
}

async fn fail(ctx: &Context, pod: &Pod, reason: &str, msg: String) {
    tracing::warn!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()), %reason, %msg, "attachment failed");
    ctx.event(&pod.object_ref(&()), true, reason, msg).await;
}

/// For an attachment that was allocated before its `logical_switch` annotation was edited to a
/// switch it may not use: the annotation that says where it really is (the allocator's record),
/// so the edit is undone and the attachment keeps serving from its own subnet
/// ([`crate::tenancy`], "Admission").
fn restore_logical_switch(
    ctx: &Context,
    pod: &Pod,
    refusal: &PlanError,
) -> Option<BTreeMap<String, String>> {
    let provider = refusal.provider.as_deref()?;
    if refusal.reason != tenancy::LOGICAL_SWITCH_REFUSED
        || !crds::attachment::is_allocated(pod.annotations(), provider)
    {
        return None;
    }
    let key = lsp_name(
        &pod.name_any(),
        &pod.namespace().unwrap_or_default(),
        provider,
    );
    let lease = ctx.ipam.get(&key)?;
    Some(BTreeMap::from([(
        annotation_key(provider, AnnotationKey::LogicalSwitch),
        lease.subnet,
    )]))
}

/// Why one attachment could not be completed.
#[derive(Debug)]
enum AttachError {
    /// Its subnet is not registered in the allocator or has no logical switch yet (retried
    /// soon; nothing was allocated).
    SubnetNotReady(String),
    /// Anything else (a conflict, a full subnet, a failed write).
    Failed(String),
}

impl From<String> for AttachError {
    fn from(msg: String) -> Self {
        AttachError::Failed(msg)
    }
}

/// One attachment with its address held and its IP CR written: what is left is its port.
#[derive(Debug)]
struct Reserved {
    /// The element it serves.
    planned: Planned,
    /// Its port in NB (`None` for IPAM-only NADs).
    port: Option<nb::PortPlan>,
    /// The annotations to write once the port is in NB.
    annotations: BTreeMap<String, String>,
}

/// The contract value of a lease: what the annotations will say, checked before anything is
/// written (an address outside the subnet's CIDRs or a lease without a MAC is refused here, not
/// found by the daemon).
fn allocation_of(
    lease: &ipam::Lease,
    info: &ipam::SubnetInfo,
    subnet: &str,
    vpc: Option<String>,
) -> Result<crds::Allocation, String> {
    let addresses = lease
        .ips()
        .into_iter()
        .map(|ip| {
            info.cidrs
                .iter()
                .find(|c| c.contains(&ip))
                .and_then(|c| ipnet::IpNet::new(ip, c.prefix_len()).ok())
                .ok_or_else(|| {
                    format!(
                        "address {ip} of {} is in none of {:?}",
                        lease.key, info.cidrs
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(crds::Allocation {
        addresses,
        cidrs: info.cidrs.clone(),
        gateways: info.gateways.clone(),
        mac: lease
            .mac
            .ok_or_else(|| format!("the allocator gave {} no MAC", lease.key))?,
        logical_switch: subnet.to_owned(),
        logical_router: vpc,
    })
}

/// Allocates and records one attachment, and plans its port.
/// The longest attachment key: it names the attachment's IP CR, a DNS-1123 subdomain.
const MAX_KEY_LEN: usize = 253;

/// Whose the record of a lease already under a pod's attachment key is (see [`check_key_owner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyOwner {
    /// This pod's (or a record that predates UIDs and names it): the lease is reused.
    This,
    /// An earlier pod object of the same name (another UID): its lease is released first,
    /// and this pod gets one of its own.
    Predecessor,
}

/// A lease under `key` is reused only by the pod its record names. Keys are
/// `<pod>.<namespace>.<provider>`, and pod names and providers may hold dots, so two pods can
/// spell the same key (`a.b` in `c` with provider `d.ovn`, and `a` in `b` with `c.d.ovn`): the
/// second must not share the first one's address. Nor may a pod recreated under the name of
/// one whose record is still there (its record names another UID): that lease is the
/// predecessor's, except for StatefulSet pods, whose addresses outlive the pod object.
async fn check_key_owner(ctx: &Context, key: &str, pod: &Pod) -> Result<KeyOwner, AttachError> {
    let (namespace, name, uid) = (
        pod.namespace().unwrap_or_default(),
        pod.name_any(),
        pod.uid(),
    );
    let owner = match ctx.written_ips.get(key) {
        Some(spec) => Some(spec),
        None => Api::<crds::IP>::all(ctx.client.clone())
            .get_opt(key)
            .await
            .map_err(|e| format!("reading IP {key}: {e}"))?
            .map(|ip| ip.spec),
    };
    let Some(spec) = owner else {
        return Ok(KeyOwner::This);
    };
    if spec.namespace != namespace || spec.pod_name != name {
        return Err(AttachError::Failed(format!(
            "the attachment's key {key} is already the record of pod {}/{} (pod, namespace \
             and provider names with dots can spell the same key); use another provider \
             name or pod name",
            spec.namespace, spec.pod_name
        )));
    }
    // A StatefulSet pod recreated by its StatefulSet keeps the address (its record is written
    // again with the new UID); a plain pod that merely took the name does not.
    let statefulset_successor =
        spec.pod_type == crate::ip::POD_TYPE_STATEFULSET && crate::ip::is_statefulset_pod(pod);
    let predecessor = crate::ip::predecessor_of(&spec, &namespace, &name, uid.as_deref())
        && !statefulset_successor;
    Ok(if predecessor {
        KeyOwner::Predecessor
    } else {
        KeyOwner::This
    })
}

async fn reserve(ctx: &Context, pod: &Pod, planned: &Planned) -> Result<Reserved, AttachError> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let key = lsp_name(&name, &namespace, &planned.provider);
    let subnet = &planned.subnet;
    // The key names the IP CR (a DNS subdomain, at most 253 characters): refused before any
    // allocation, rather than by the apiserver after one.
    if key.len() > MAX_KEY_LEN {
        return Err(AttachError::Failed(format!(
            "the attachment's record name {key:?} (<pod>.<namespace>.<provider>) is {} \
             characters, more than the {MAX_KEY_LEN} an IP resource's name may have: use a \
             shorter pod name or provider",
            key.len()
        )));
    }
    // Against the GC releasing this key on an older snapshot (see `ip::Locks`).
    let _lock = ctx.attachment_locks.lock(&key).await;
    let mut existed = ctx.ipam.get(&key).is_some();
    if existed && check_key_owner(ctx, &key, pod).await? == KeyOwner::Predecessor {
        // A pod deleted and recreated under its name at once: the lease, record and port are
        // still the earlier pod object's. They go in the safe order (port, record, address)
        // before this pod gets its own, so the two never share one.
        tracing::info!(%key, pod = %format!("{namespace}/{name}"),
            "the attachment's record is a predecessor's (another pod UID); releasing it first");
        crate::ip::release(ctx, &key)
            .await
            .map_err(|e| format!("releasing the predecessor's attachment {key}: {e}"))?;
        existed = false;
    }
    // A Subnet refused since it was registered (an invalid edit) keeps serving the addresses
    // it holds, but hands out no new one until it is valid again.
    if !existed {
        let all = ctx.subnets.state();
        if let Some((reason, msg)) = all
            .iter()
            .find(|s| &s.name_any() == subnet)
            .and_then(|s| crate::subnet::problems(s, &all))
        {
            return Err(AttachError::SubnetNotReady(format!(
                "Subnet {subnet} is refused ({reason}): {msg}"
            )));
        }
    }
    let info = ctx
        .ipam
        .lock()
        .subnet_info(subnet)
        .map_err(|_| AttachError::SubnetNotReady(format!("Subnet {subnet} is not ready")))?;
    // Checked before allocating, so a pod that arrives with its Subnet leaves no address and no
    // IP CR behind while it waits for the switch.
    if planned.port && !nb::switch_exists(&ctx.nb, subnet) {
        return Err(AttachError::SubnetNotReady(format!(
            "Subnet {subnet} is not ready (its logical switch does not exist yet)"
        )));
    }
    // Security groups are checked before allocating: a group that does not exist leaves the
    // attachment (a new one unallocated, an existing one as it is) until it does.
    let security_groups = if planned.port {
        let groups = security_groups_of(pod, &planned.provider)?;
        nb::security_group::check_groups(&ctx.nb, &key, &groups).map_err(|e| e.to_string())?;
        groups
    } else {
        Vec::new()
    };
    let namespace_pool = ctx.pool_namespaces.pool_for(subnet, &namespace);
    let request =
        request_for(pod, planned, namespace_pool.as_deref()).map_err(|e| e.to_string())?;
    // From the allocation until the record's create has answered.
    let _recording = ctx.pending_ips.hold(&key);
    let lease = ctx
        .ipam
        .allocate(subnet, &key, &request)
        .map_err(|e| e.to_string())?;
    let mac = lease.mac.map(|m| m.to_string()).unwrap_or_default();
    let ips = lease.ips();
    // The annotations' values, checked before anything is written: the contract type holds
    // only what the daemon can read back.
    let vpc = ctx
        .subnets
        .state()
        .iter()
        .find(|s| &s.name_any() == subnet)
        .and_then(|s| s.spec.vpc.clone());
    let allocation = allocation_of(&lease, &info, subnet, vpc);
    let allocation = match allocation {
        Ok(a) => a,
        Err(e) => {
            if !existed {
                ctx.ipam.release(&key);
            }
            return Err(e.into());
        }
    };

    // The durable record first: after a restart the allocator is rebuilt from these.
    let spec = crate::ip::spec_for(pod, subnet, &lease);
    if let Err(e) = crate::ip::write(ctx, &key, spec, existed).await {
        if !existed {
            // Nothing half-done: without its record the address is not kept.
            ctx.ipam.release(&key);
        }
        return Err(format!("writing IP {key}: {e}").into());
    }
    let port_security = if planned.gateway_lan {
        nb::PortSecurity::MacOnly
    } else if planned.port {
        let ps_key = annotation_key(&planned.provider, AnnotationKey::PortSecurity);
        let allows_off = ctx
            .subnets
            .state()
            .iter()
            .find(|s| &s.name_any() == subnet)
            .is_some_and(|s| s.spec.allow_disable_port_security);
        let (on, refused) = tenancy::port_security(
            pod.annotations().get(&ps_key).map(String::as_str),
            allows_off,
            &ps_key,
        );
        if let Some(msg) = refused {
            tracing::warn!(pod = %format!("{namespace}/{name}"), %msg, "port security kept");
            ctx.event(
                &pod.object_ref(&()),
                true,
                tenancy::PORT_SECURITY_REFUSED,
                msg,
            )
            .await;
        }
        tracing::debug!(pod = %format!("{namespace}/{name}"), %subnet, allows_off, on, "port security decided");
        if on {
            nb::PortSecurity::Addresses
        } else {
            nb::PortSecurity::Off
        }
    } else {
        nb::PortSecurity::Addresses
    };
    let port = planned.port.then(|| {
        let mut external_ids = nb::owned_ids(&[
            (EXTERNAL_ID_POD, &format!("{namespace}/{name}")),
            (EXTERNAL_ID_LOGICAL_SWITCH, subnet),
            (EXTERNAL_ID_PROVIDER, &planned.provider),
        ]);
        if !security_groups.is_empty() {
            external_ids.insert(
                crds::naming::EXTERNAL_ID_SECURITY_GROUPS.to_owned(),
                nb::security_group::groups_id(&security_groups),
            );
        }
        nb::PortPlan {
            name: key.clone(),
            switch: subnet.clone(),
            mac: mac.clone(),
            ips: ips.clone(),
            port_security,
            external_ids,
            dhcp: nb::dhcp::uuids_of(&ctx.nb, subnet),
            security_groups: security_groups.clone(),
            policy_groups: crate::multi_network_policy::groups_selecting(
                ctx,
                pod,
                (&planned.element.namespace, &planned.element.name),
            ),
        }
    });
    // Exactly the keys DESIGN §3 gives the controller: the element's `default-route` is the
    // user's, and the daemon reads it from the element itself.
    let out = allocation.to_annotations(&planned.provider);
    Ok(Reserved {
        planned: planned.clone(),
        port,
        annotations: out,
    })
}

/// The SecurityGroups of one attachment from `<provider>.kubernetes.io/security_groups`
/// (`sg1,sg2`; spaces and empty entries ignored), sorted without duplicates; a name that
/// cannot be a SecurityGroup is an error naming the annotation.
pub fn security_groups_of(pod: &Pod, provider: &str) -> Result<Vec<String>, String> {
    let key = annotation_key(provider, AnnotationKey::SecurityGroups);
    let Some(value) = pod.annotations().get(&key) else {
        return Ok(Vec::new());
    };
    let mut groups = BTreeSet::new();
    for g in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        crds::validation::dns1123_subdomain(&key, g).map_err(|e| e.to_string())?;
        groups.insert(g.to_owned());
    }
    Ok(groups.into_iter().collect())
}

/// The largest rate annotation accepted, in Mbit/s: what OVN can store (its `bandwidth:rate` is
/// a 32-bit count of kbit/s, about 4.3 Tbit/s). Anything above is a typo, not a limit.
pub const MAX_RATE_MBPS: u64 = nb::qos::MAX_RATE_KBPS / 1000;

/// Parses a rate annotation (whole Mbit/s) into kbit/s; `0` means no limit.
pub fn parse_rate(value: &str) -> Result<Option<u64>, String> {
    let trimmed = value.trim();
    if trimmed.starts_with('-') {
        return Err("a rate cannot be negative".into());
    }
    let mbps: u64 = trimmed
        .parse()
        .map_err(|_| "not a whole number of Mbit/s".to_owned())?;
    if mbps > MAX_RATE_MBPS {
        return Err(format!("more than {MAX_RATE_MBPS} Mbit/s"));
    }
    Ok((mbps > 0).then_some(mbps * 1000))
}

/// One attachment's limits from the pod's annotations: `<provider>.kubernetes.io/<key>` wins,
/// else the pod-wide `ovn.kubernetes.io/<key>` (the seed's example) applies. Absent or `0` is
/// no limit; an invalid value keeps the current limit ([`nb::Limit::Unchanged`]) and is returned
/// as a message naming the annotation and its value.
pub fn qos_limits(pod: &Pod, provider: &str) -> (nb::Limit, nb::Limit, Vec<String>) {
    let annotations = pod.annotations();
    let mut problems = Vec::new();
    let mut limit = |key| {
        let value = [provider, POD_WIDE_PROVIDER]
            .into_iter()
            .map(|p| annotation_key(p, key))
            .find_map(|k| annotations.get(&k).map(|v| (k, v)));
        let Some((k, v)) = value else {
            return nb::Limit::Unlimited;
        };
        match parse_rate(v) {
            Ok(Some(kbps)) => nb::Limit::Kbps(kbps),
            Ok(None) => nb::Limit::Unlimited,
            Err(why) => {
                // A new attachment has no limit to keep: it runs unlimited until the value is
                // fixed, and the Event says so.
                let kept = if crds::attachment::is_allocated(annotations, provider) {
                    "the attachment keeps its current limit"
                } else {
                    "the new attachment runs without a limit until the value is fixed"
                };
                problems.push(format!("{k}={v:?} is not a valid rate ({why}); {kept}"));
                nb::Limit::Unchanged
            }
        }
    };
    let egress = limit(AnnotationKey::EgressRate);
    let ingress = limit(AnnotationKey::IngressRate);
    (egress, ingress, problems)
}

/// Whether the pod sets the rate annotation `key` for `provider` (its own or the pod-wide one).
fn rate_annotated(pod: &Pod, provider: &str, key: AnnotationKey) -> bool {
    let annotations = pod.annotations();
    [provider, POD_WIDE_PROVIDER]
        .into_iter()
        .any(|p| annotations.contains_key(&annotation_key(p, key)))
}

/// One direction's limit from a networks-annotation element's `bandwidth` rate (bit/s, CNI's
/// convention; what Multus passes as the `bandwidth` capability): `0` is no limit; a rate below
/// 1 kbit/s is 1 kbit/s; above what OVN stores is refused (`Unchanged`, with the message).
fn bandwidth_limit(field: &str, bps: u64, problems: &mut Vec<String>) -> nb::Limit {
    if bps == 0 {
        return nb::Limit::Unlimited;
    }
    let kbps = bps.div_ceil(1000);
    if kbps > nb::qos::MAX_RATE_KBPS {
        problems.push(format!(
            "bandwidth.{field}={bps} bit/s is more than OVN can store ({} kbit/s); the \
             attachment keeps its current limit",
            nb::qos::MAX_RATE_KBPS
        ));
        return nb::Limit::Unchanged;
    }
    nb::Limit::Kbps(kbps)
}

/// One attachment's limits: the rate annotations ([`qos_limits`]) and, for a direction no
/// annotation sets, the element's `bandwidth` (`ingressRate`: into the pod, `egressRate`: out
/// of it). Bursts are not applied (the QoS rows take a rate); the second list says so.
pub fn attachment_limits(
    pod: &Pod,
    provider: &str,
    bandwidth: Option<&crds::networks::BandwidthEntry>,
) -> (nb::Limit, nb::Limit, Vec<String>, Vec<String>) {
    let (mut egress, mut ingress, mut problems) = qos_limits(pod, provider);
    let mut notes = Vec::new();
    if let Some(bw) = bandwidth {
        if !rate_annotated(pod, provider, AnnotationKey::EgressRate) {
            egress = bandwidth_limit("egressRate", bw.egress_rate, &mut problems);
        }
        if !rate_annotated(pod, provider, AnnotationKey::IngressRate) {
            ingress = bandwidth_limit("ingressRate", bw.ingress_rate, &mut problems);
        }
        if bw.ingress_burst > 0 || bw.egress_burst > 0 {
            notes.push(
                "bandwidth bursts (ingressBurst, egressBurst) are not applied: the attachment's \
                 limits take the rates only"
                    .to_owned(),
            );
        }
    }
    (egress, ingress, problems, notes)
}

/// The QoS rows one attachment needs from the pod's rate annotations. A bad value is a Warning
/// Event (`InvalidQoS`), not a failure: the address and the port stay, and so does the last good
/// limit ([`nb::Limit::Unchanged`]).
async fn qos_plan(ctx: &Context, pod: &Pod, planned: &Planned) -> nb::QosPlan {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let (egress, ingress, problems, notes) =
        attachment_limits(pod, &planned.provider, planned.element.bandwidth.as_ref());
    for msg in problems {
        tracing::warn!(pod = %format!("{namespace}/{name}"), %msg, "invalid QoS annotation");
        ctx.event(&pod.object_ref(&()), true, "InvalidQoS", msg)
            .await;
    }
    for msg in notes {
        ctx.event(&pod.object_ref(&()), false, "QoSNotApplied", msg)
            .await;
    }
    nb::QosPlan {
        port: lsp_name(&name, &namespace, &planned.provider),
        switch: planned.subnet.clone(),
        egress,
        ingress,
        external_ids: nb::owned_ids(&[
            (EXTERNAL_ID_POD, &format!("{namespace}/{name}")),
            (EXTERNAL_ID_PROVIDER, &planned.provider),
            (EXTERNAL_ID_LOGICAL_SWITCH, &planned.subnet),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nad(ns: &str, name: &str, config: &str) -> Arc<NetworkAttachmentDefinition> {
        Arc::new(NetworkAttachmentDefinition::with_config(ns, name, config))
    }

    fn subnet(name: &str, provider: &str) -> Arc<Subnet> {
        let mut s = Subnet::new(name, crds::SubnetSpec::default());
        s.spec.cidr = Some("10.100.0.0/16".into());
        s.spec.provider = Some(provider.into());
        Arc::new(s)
    }

    fn pod(annotations: &[(&str, &str)]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.namespace = Some("default".into());
        p.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        p
    }

    const OVN: &str = r#"{"cniVersion":"0.3.1","type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock","provider":"a.default.ovn"}"#;

    fn plan(
        pod: &Pod,
        nads: &[Arc<NetworkAttachmentDefinition>],
        subnets: &[Arc<Subnet>],
    ) -> Vec<Result<Option<Planned>, String>> {
        let elements =
            parse_networks_annotation(&pod.annotations()[NETWORKS_ANNOTATION], "default").unwrap();
        (0..elements.len())
            .map(|i| plan_element(nads, subnets, &[], pod, &elements, i).map_err(|e| e.message))
            .collect()
    }

    /// The pod's first element planned with NAD `default/a` (provider `a.default.ovn`) bound
    /// by Subnet `s1`.
    fn plan_first_on_a(pod: &Pod) -> Planned {
        plan(
            pod,
            &[nad("default", "a", OVN)],
            &[subnet("s1", "a.default.ovn")],
        )[0]
        .clone()
        .unwrap()
        .unwrap()
    }

    #[test]
    fn an_element_resolves_to_its_subnet_by_provider() {
        let p = pod(&[(NETWORKS_ANNOTATION, "default/a")]);
        let got = plan(
            &p,
            &[nad("default", "a", OVN)],
            &[subnet("s1", "a.default.ovn")],
        );
        let planned = got[0].clone().unwrap().unwrap();
        assert_eq!(
            (
                planned.provider.as_str(),
                planned.subnet.as_str(),
                planned.interface.as_str()
            ),
            ("a.default.ovn", "s1", "net1")
        );
        assert!(planned.port);
    }

    #[test]
    fn the_same_nad_twice_gets_per_interface_providers() {
        let p = pod(&[(
            NETWORKS_ANNOTATION,
            r#"[{"name":"a","interface":"net1"},{"name":"a","interface":"net2"}]"#,
        )]);
        let got = plan(
            &p,
            &[nad("default", "a", OVN)],
            &[subnet("s1", "a.default.ovn")],
        );
        let providers: Vec<String> = got
            .into_iter()
            .map(|r| r.unwrap().unwrap().provider)
            .collect();
        assert_eq!(providers, ["a.default.ovn.net1", "a.default.ovn.net2"]);
    }

    /// The annotation chooses among the Subnets of the NAD's provider (issue 14: it used to
    /// choose any switch at all, another tenant's included). A Subnet refused for claiming a
    /// provider another one binds is no choice (issue 13: it would never be realised).
    #[test]
    fn the_logical_switch_annotation_chooses_among_the_providers_subnets() {
        let chosen = |switch: &str| {
            pod(&[
                (NETWORKS_ANNOTATION, "default/a"),
                ("a.default.ovn.kubernetes.io/logical_switch", switch),
            ])
        };
        let nads = [nad("default", "a", OVN)];
        // s2 claims s1's provider and loses the conflict (same age, later name).
        let pair = [subnet("s1", "a.default.ovn"), subnet("s2", "a.default.ovn")];
        let got = plan(&chosen("s1"), &nads, &pair);
        assert_eq!(got[0].clone().unwrap().unwrap().subnet, "s1");
        let got = plan(&chosen("s2"), &nads, &pair);
        assert!(got[0].is_err(), "a refused duplicate was chosen: {got:?}");
        let p = chosen("s2");
        let elements = parse_networks_annotation("default/a", "default").unwrap();
        let refused = plan_element(
            &nads,
            &[subnet("s1", "a.default.ovn"), subnet("s2", "b.other.ovn")],
            &[],
            &p,
            &elements,
            0,
        )
        .unwrap_err();
        assert_eq!(refused.reason, tenancy::LOGICAL_SWITCH_REFUSED);
        assert_eq!(refused.provider.as_deref(), Some("a.default.ovn"));
        assert!(refused.message.contains("\"s2\""), "{}", refused.message);
    }

    #[test]
    fn each_bad_element_fails_alone_with_a_clear_message() {
        let p = pod(&[(
            NETWORKS_ANNOTATION,
            "default/missing,default/noprov,default/a,default/macvlan,default/unbound",
        )]);
        let nads = [
            nad("default", "a", OVN),
            nad(
                "default",
                "noprov",
                r#"{"cniVersion":"0.3.1","type":"kube-ovn"}"#,
            ),
            nad(
                "default",
                "macvlan",
                r#"{"cniVersion":"0.3.1","type":"macvlan","master":"eth0"}"#,
            ),
            nad(
                "default",
                "unbound",
                r#"{"cniVersion":"0.3.1","type":"kube-ovn","provider":"unbound.default.ovn"}"#,
            ),
        ];
        let got = plan(&p, &nads, &[subnet("s1", "a.default.ovn")]);
        assert!(
            got[0]
                .as_ref()
                .unwrap_err()
                .contains("default/missing not found"),
            "{:?}",
            got[0]
        );
        assert!(
            got[1].as_ref().unwrap_err().contains("provider"),
            "{:?}",
            got[1]
        );
        assert_eq!(got[2].clone().unwrap().unwrap().subnet, "s1");
        assert_eq!(got[3], Ok(None), "a NAD that is not ours is skipped");
        assert!(
            got[4]
                .as_ref()
                .unwrap_err()
                .contains("provider unbound.default.ovn is not bound to any subnet"),
            "{:?}",
            got[4]
        );
    }

    #[test]
    fn static_requests_come_from_the_element_then_the_annotations() {
        let p = pod(&[(
            NETWORKS_ANNOTATION,
            r#"[{"name":"a","ips":["10.100.0.100/16"],"mac":"02:00:00:00:00:01"}]"#,
        )]);
        let planned = plan_first_on_a(&p);
        let req = request_for(&p, &planned, None).unwrap();
        assert_eq!(req.ips, vec!["10.100.0.100/16".parse().unwrap()]);
        assert_eq!(
            req.mac,
            ipam::MacRequest::Static("02:00:00:00:00:01".parse().unwrap())
        );
        let p = pod(&[
            (NETWORKS_ANNOTATION, "default/a"),
            ("a.default.ovn.kubernetes.io/ip_address", "10.100.0.7"),
            ("a.default.ovn.kubernetes.io/ip_pool", "pool1"),
        ]);
        let planned = plan_first_on_a(&p);
        let req = request_for(&p, &planned, None).unwrap();
        assert_eq!(req.ips, vec!["10.100.0.7".parse().unwrap()]);
        assert_eq!(req.pool.as_deref(), Some("pool1"));
        // The other form: a list of addresses.
        let p = pod(&[
            (NETWORKS_ANNOTATION, "default/a"),
            (
                "a.default.ovn.kubernetes.io/ip_pool",
                "10.100.0.15,10.100.0.16",
            ),
        ]);
        let req = request_for(&p, &planned, None).unwrap();
        assert_eq!(
            req.ip_list.as_ref().map(ipam::IpList::as_str),
            Some("10.100.0.15,10.100.0.16")
        );
        assert_eq!(req.pool, None);
    }

    /// Each class of malformed static request is refused where the annotation is read, naming
    /// the attachment and the value, before the allocator sees it.
    #[test]
    fn malformed_static_requests_name_the_attachment_and_the_value() {
        let cases = [
            (
                "ip_address",
                "10.100.0.300",
                "invalid IP address request \"10.100.0.300\"",
            ),
            (
                "ip_address",
                "10.100.0.5/33",
                "the prefix length is not valid",
            ),
            (
                "mac_address",
                "02:00:00",
                "invalid MAC address \"02:00:00\"",
            ),
            ("mac_address", "01:00:5e:00:00:01", "multicast"),
            ("ip_pool", "10.100.0.15,ten", "invalid entry \"ten\""),
        ];
        for (annotation, value, want) in cases {
            let key = format!("a.default.ovn.kubernetes.io/{annotation}");
            let p = pod(&[(NETWORKS_ANNOTATION, "default/a"), (key.as_str(), value)]);
            let planned = plan_first_on_a(&p);
            let err = request_for(&p, &planned, None).unwrap_err().to_string();
            assert!(err.contains(want), "{annotation}: {err:?} lacks {want:?}");
            assert!(err.starts_with("p.default.a.default.ovn: "), "{err}");
        }
    }

    #[test]
    fn rates_are_whole_mbits_and_zero_is_no_limit() {
        assert_eq!(parse_rate("1000"), Ok(Some(1_000_000)));
        assert_eq!(parse_rate(" 10 "), Ok(Some(10_000)));
        assert_eq!(parse_rate("0"), Ok(None));
        assert_eq!(
            parse_rate(&MAX_RATE_MBPS.to_string()),
            Ok(Some(4_294_967_000))
        );
        for (bad, why) in [
            ("abc", "whole number"),
            ("", "whole number"),
            ("1.5", "whole number"),
            ("10M", "whole number"),
            ("-5", "negative"),
            ("4294968", "more than"),
            ("99999999999999999999999", "whole number"),
        ] {
            let err = parse_rate(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn an_elements_bandwidth_limits_the_directions_no_annotation_sets() {
        use nb::Limit::{Kbps, Unchanged, Unlimited};
        let bw = |ingress: u64, egress: u64, burst: u64| crds::networks::BandwidthEntry {
            ingress_rate: ingress,
            egress_rate: egress,
            ingress_burst: burst,
            ..Default::default()
        };
        let plain = pod(&[]);
        let (e, i, problems, notes) =
            attachment_limits(&plain, "a.default.ovn", Some(&bw(2_000_000, 500, 0)));
        assert_eq!((e, i), (Kbps(1), Kbps(2000)));
        assert!(problems.is_empty() && notes.is_empty());
        // An annotation for a direction wins over the element's rate for it.
        let annotated = pod(&[("ovn.kubernetes.io/egress_rate", "3")]);
        let (e, i, _, _) =
            attachment_limits(&annotated, "a.default.ovn", Some(&bw(0, 9_000_000, 0)));
        assert_eq!((e, i), (Kbps(3000), Unlimited));
        // Too much to store: refused and named; a burst: said not to be applied.
        let (e, _, problems, notes) =
            attachment_limits(&plain, "a.default.ovn", Some(&bw(0, u64::MAX, 100)));
        assert_eq!(e, Unchanged);
        assert!(
            problems[0].starts_with("bandwidth.egressRate="),
            "{problems:?}"
        );
        assert_eq!(notes.len(), 1);
        // No element bandwidth: the annotations alone.
        assert_eq!(
            attachment_limits(&annotated, "a.default.ovn", None),
            (Kbps(3000), Unlimited, vec![], vec![])
        );
    }

    #[test]
    fn provider_rates_win_over_the_pod_wide_ones() {
        use nb::Limit::{Kbps, Unchanged, Unlimited};
        let seed = pod(&[
            ("ovn.kubernetes.io/ingress_rate", "1000"),
            ("ovn.kubernetes.io/egress_rate", "1000"),
        ]);
        assert_eq!(
            qos_limits(&seed, "a.default.ovn"),
            (Kbps(1_000_000), Kbps(1_000_000), vec![])
        );
        let mixed = pod(&[
            ("ovn.kubernetes.io/egress_rate", "1000"),
            ("a.default.ovn.kubernetes.io/egress_rate", "0"),
            ("b.default.ovn.kubernetes.io/ingress_rate", "5"),
        ]);
        assert_eq!(
            qos_limits(&mixed, "a.default.ovn"),
            (Unlimited, Unlimited, vec![])
        );
        assert_eq!(
            qos_limits(&mixed, "b.default.ovn"),
            (Kbps(1_000_000), Kbps(5_000), vec![])
        );
        assert_eq!(
            qos_limits(&pod(&[]), "a.default.ovn"),
            (Unlimited, Unlimited, vec![])
        );
        let bad = pod(&[
            ("a.default.ovn.kubernetes.io/egress_rate", "fast"),
            ("ovn.kubernetes.io/ingress_rate", "-1"),
        ]);
        let (egress, ingress, problems) = qos_limits(&bad, "a.default.ovn");
        assert_eq!((egress, ingress), (Unchanged, Unchanged));
        assert!(
            problems[0].contains("a.default.ovn.kubernetes.io/egress_rate=\"fast\""),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("ovn.kubernetes.io/ingress_rate=\"-1\""),
            "{problems:?}"
        );
        assert!(
            problems[0]
                .ends_with("the new attachment runs without a limit until the value is fixed"),
            "{problems:?}"
        );
        let mut running = bad.clone();
        running.metadata.annotations.get_or_insert_default().insert(
            "a.default.ovn.kubernetes.io/allocated".into(),
            "true".into(),
        );
        let (_, _, problems) = qos_limits(&running, "a.default.ovn");
        assert!(
            problems[0].ends_with("the attachment keeps its current limit"),
            "{problems:?}"
        );
    }

    #[test]
    fn pods_without_the_networks_annotation_are_filtered_out() {
        assert!(!wants_networks(&pod(&[])));
        assert!(wants_networks(&pod(&[(NETWORKS_ANNOTATION, "default/a")])));
    }

    #[test]
    fn our_own_allocation_patch_does_not_trigger_a_reconcile() {
        let created = pod(&[(NETWORKS_ANNOTATION, "default/a")]);
        let mut allocated = created.clone();
        let ours = [
            ("ip_address", "10.0.0.2"),
            ("mac_address", "00:00:00:00:00:01"),
            ("cidr", "10.0.0.0/24"),
            ("gateway", "10.0.0.1"),
            ("logical_switch", "s1"),
            ("logical_router", "vpc1"),
            ("allocated", "true"),
        ];
        for (k, v) in ours {
            allocated
                .annotations_mut()
                .insert(format!("a.default.ovn.kubernetes.io/{k}"), v.into());
        }
        assert_eq!(trigger_hash(&created), trigger_hash(&allocated));

        // What the user changes still does: the networks, a rate, an annotation of another
        // provider that is not allocated yet, deletion, phase, node.
        let changed = |f: &dyn Fn(&mut Pod)| {
            let mut p = allocated.clone();
            f(&mut p);
            assert_ne!(trigger_hash(&p), trigger_hash(&allocated));
        };
        changed(&|p| {
            p.annotations_mut()
                .insert(NETWORKS_ANNOTATION.into(), "default/a,default/b".into());
        });
        changed(&|p| {
            p.annotations_mut()
                .insert("ovn.kubernetes.io/ingress_rate".into(), "10".into());
        });
        changed(&|p| {
            p.annotations_mut().insert(
                "b.default.ovn.kubernetes.io/ip_address".into(),
                "10.0.0.9".into(),
            );
        });
        changed(&|p| {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ));
        });
        changed(&|p| {
            p.status = Some(k8s_openapi::api::core::v1::PodStatus {
                phase: Some("Succeeded".into()),
                ..Default::default()
            });
        });
        changed(&|p| {
            p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            });
        });
        // Un-allocating (someone removed `allocated`) makes the outputs inputs again.
        changed(&|p| {
            p.annotations_mut()
                .remove("a.default.ovn.kubernetes.io/allocated");
        });
    }

    /// Issue 12: the own-output filter listed `default_route` as the controller's while the
    /// contract (DESIGN §3) says it is the user's; now both read one list, and a user's
    /// `default_route` edit is an input like any other.
    #[test]
    fn the_own_output_filter_is_the_contracts_key_list() {
        let mut allocated = pod(&[(NETWORKS_ANNOTATION, "default/a")]);
        allocated.annotations_mut().insert(
            "a.default.ovn.kubernetes.io/allocated".into(),
            "true".into(),
        );
        for key in AnnotationKey::ALL {
            let k = annotation_key("a.default.ovn", key);
            let mut edited = allocated.clone();
            edited.annotations_mut().insert(k.clone(), "true".into());
            assert_eq!(
                is_own_output(&k, edited.annotations()),
                key.written_by_controller(),
                "{k}"
            );
        }
        let mut edited = allocated.clone();
        edited.annotations_mut().insert(
            "a.default.ovn.kubernetes.io/default_route".into(),
            "true".into(),
        );
        assert_ne!(trigger_hash(&edited), trigger_hash(&allocated));
    }

    #[test]
    fn slim_keeps_what_the_controller_reads() {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "p", "namespace": "default", "uid": "u1",
                "annotations": {NETWORKS_ANNOTATION: "default/a"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "s1"}],
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.5"},
        }))
        .unwrap();
        slim(&mut p);
        assert_eq!(p.metadata.managed_fields, None);
        assert_eq!(p.annotations()[NETWORKS_ANNOTATION], "default/a");
        assert_eq!(p.owner_references().len(), 1);
        assert_eq!(p.uid().as_deref(), Some("u1"));
        let spec = p.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert!(spec.containers.is_empty());
        let status = p.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip, None);
    }
}
