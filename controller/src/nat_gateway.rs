//! `VpcNatGateway` → a StatefulSet `vpc-nat-gw-<name>` in kube-system (one pod), the `lanIp`
//! reserved in the LAN Subnet, and, once the pod is Ready, a managed default route of the
//! VPC's router via `lanIp`.
//!
//! # The pod
//! It runs `kube-ovn-daemon nat-gateway` from the `kube-ovn-cni` image: the agent is a
//! subcommand of the daemon, which that image already ships to every node, so gateways add no
//! fourth image (nothing more to build, mirror or pull; upstream's separate `vpc-nat-gateway`
//! image exists for its shell scripts and iptables binaries, which the agent replaces with
//! netlink). `eth0` stays with the primary CNI; the networks annotation the controller writes
//! asks for the LAN attachment (the LAN Subnet's NAD, with `lanIp` as a static address) and the
//! external one (the NAD named by `spec.externalSubnets[0]`, default
//! `ovn-vpc-external-network` in kube-system). The agent finds its interfaces in the pod's
//! `network-status`; it becomes Ready only once everything is applied, and the gateway's
//! `Ready` follows it.
//!
//! # Addresses
//! `lanIp` is allocated under the very key the pod's LAN attachment will use
//! (`<pod>.kube-system.<provider>`) with an IP CR of a StatefulSet pod, so no other pod can
//! take it before or after the gateway pod exists, the pod controller finds it already held,
//! and a restart rebuilds it from the IP CR. It is released with the gateway.
//!
//! # The route
//! When the pod is Ready and the Vpc has no default route of its own (in its spec or on its
//! router), the router gets `0.0.0.0/0 via lanIp`, marked `external_ids:vpc-nat-gw=<name>`
//! (the Vpc's route sync leaves such rows alone). A user's own default route wins: ours is
//! removed while it exists. Gone with the gateway, or from the old router when `spec.vpc`
//! changes.
//!
//! # Refusals
//! A spec that cannot be realised (its Vpc, Subnet, LAN or external network missing, `lanIp`
//! outside the Subnet or taken) is `Validated=False` with the reason, and a Warning Event;
//! nothing is created or changed for it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crds::condition::{READY, VALIDATED, set_condition};
use crds::naming::{NETWORKS_ANNOTATION, lsp_name};
use crds::{NadClass, NetworkAttachmentDefinition, Subnet, Validate, Vpc, VpcNatGateway};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use crate::context::{Context, MANAGER};
use crate::error::Error;
use crate::{nb, status};

/// Finalizer on VpcNatGateways: route, StatefulSet and `lanIp` go before the object does.
pub const FINALIZER: &str = "kubeovn.io/vpc-nat-gateway";
/// Namespace of the gateway StatefulSets (as upstream).
pub const NAMESPACE: &str = "kube-system";
/// ServiceAccount of the gateway pods (the charts create it with its RBAC).
pub const SERVICE_ACCOUNT: &str = "vpc-nat-gw";
/// External network when `spec.externalSubnets` is empty (upstream's default).
pub const DEFAULT_EXTERNAL_NETWORK: &str = "ovn-vpc-external-network";
/// The daemon binary in the `kube-ovn-cni` image (see `xtask/src/images.rs`).
pub const DAEMON_BINARY: &str = "/kube-ovn/kube-ovn-daemon";
/// Label on gateway StatefulSets and pods (upstream's).
pub const LABEL_NAT_GATEWAY: &str = "ovn.kubernetes.io/vpc-nat-gw";
/// Label naming the gateway of a StatefulSet or pod.
pub const LABEL_GATEWAY_NAME: &str = "ovn.kubernetes.io/vpc-nat-gw-name";
/// The gateway container's name.
pub const CONTAINER: &str = "vpc-nat-gw";
/// Prefix of a gateway's StatefulSet name.
const STATEFULSET_PREFIX: &str = "vpc-nat-gw-";
/// Longest StatefulSet name: its pods' `controller-revision-hash` label (`<name>-<hash>`, up
/// to 11 more characters) must stay a valid label value (63).
const MAX_STATEFULSET_NAME: usize = 52;

/// The StatefulSet of gateway `gw`.
pub fn statefulset_name(gw: &str) -> String {
    format!("{STATEFULSET_PREFIX}{gw}")
}

/// The (only) pod of gateway `gw`.
pub fn pod_name(gw: &str) -> String {
    format!("{}-0", statefulset_name(gw))
}

/// The external network of a gateway: (namespace, NAD name); the Subnet has the NAD's name.
/// `spec.externalSubnets[0]` as `name` (in kube-system) or `namespace/name`.
pub fn external_network(spec: &crds::VpcNatGatewaySpec) -> (String, String) {
    match spec.external_subnets.first().map(String::as_str) {
        Some(s) if !s.is_empty() => match s.split_once('/') {
            Some((ns, name)) => (ns.to_owned(), name.to_owned()),
            None => (NAMESPACE.to_owned(), s.to_owned()),
        },
        _ => (NAMESPACE.to_owned(), DEFAULT_EXTERNAL_NETWORK.to_owned()),
    }
}

/// Everything a valid gateway resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The Vpc.
    pub vpc: String,
    /// The LAN Subnet.
    pub lan_subnet: String,
    /// The LAN Subnet's provider (the NAD's).
    pub lan_provider: String,
    /// The LAN NAD: (namespace, name).
    pub lan_nad: (String, String),
    /// The pod's LAN address.
    pub lan_ip: IpAddr,
    /// The external NAD: (namespace, name).
    pub external_nad: (String, String),
    /// The external Subnet (named like the external NAD).
    pub external_subnet: String,
}

/// A refusal: condition reason and message.
pub type Refusal = (String, String);

fn refusal(reason: &str, msg: String) -> Refusal {
    (reason.to_owned(), msg)
}

/// What `gw` resolves to given the cluster's NADs, Subnets and Vpcs, or why it cannot be
/// realised. (Whether `lanIp` is free is the allocator's answer, in [`reconcile`].)
pub fn plan(
    gw: &VpcNatGateway,
    nads: &[Arc<NetworkAttachmentDefinition>],
    subnets: &[Arc<Subnet>],
    vpcs: &[Arc<Vpc>],
) -> Result<Plan, Refusal> {
    if let Err(e) = gw.validate() {
        return Err(refusal("InvalidSpec", e.to_string()));
    }
    let name = gw.name_any();
    if statefulset_name(&name).len() > MAX_STATEFULSET_NAME {
        return Err(refusal(
            "InvalidSpec",
            format!(
                "metadata.name is too long: the StatefulSet {} must be at most \
                 {MAX_STATEFULSET_NAME} characters",
                statefulset_name(&name)
            ),
        ));
    }
    let spec = &gw.spec;
    if !vpcs.iter().any(|v| v.name_any() == spec.vpc) {
        return Err(refusal(
            "VpcNotFound",
            format!("Vpc {} does not exist", spec.vpc),
        ));
    }
    let Some(subnet) = subnets.iter().find(|s| s.name_any() == spec.subnet) else {
        return Err(refusal(
            "SubnetNotFound",
            format!("Subnet {} does not exist", spec.subnet),
        ));
    };
    if subnet.spec.vpc.as_deref() != Some(spec.vpc.as_str()) {
        return Err(refusal(
            "SubnetNotInVpc",
            format!(
                "Subnet {} belongs to Vpc {}, not {}",
                spec.subnet,
                subnet.spec.vpc.as_deref().unwrap_or("(none)"),
                spec.vpc
            ),
        ));
    }
    let Some(lan) = &spec.lan_ip else {
        return Err(refusal(
            "InvalidLanIp",
            "spec.lanIp is required: the VPC routes through the gateway's LAN address".into(),
        ));
    };
    let invalid = || {
        refusal(
            "InvalidSpec",
            format!(
                "spec.lanIp {lan} or Subnet {}'s CIDR is not valid",
                spec.subnet
            ),
        )
    };
    let lan_ip: IpAddr = lan.parse().map_err(|_| invalid())?;
    let nets = subnet.spec.networks().map_err(|_| invalid())?;
    let Some(net) = nets.iter().find(|n| n.contains(&lan_ip)) else {
        return Err(refusal(
            "InvalidLanIp",
            format!(
                "spec.lanIp {lan} is outside Subnet {} ({})",
                spec.subnet,
                subnet.spec.cidr.as_deref().unwrap_or_default()
            ),
        ));
    };
    let gateways = subnet.spec.gateways().unwrap_or_default();
    if lan_ip == net.network()
        || (lan_ip.is_ipv4() && lan_ip == net.broadcast())
        || gateways.contains(&lan_ip)
    {
        return Err(refusal(
            "InvalidLanIp",
            format!(
                "spec.lanIp {lan} is the network, broadcast or gateway address of Subnet {}",
                spec.subnet
            ),
        ));
    }
    let Some(lan_provider) = subnet.spec.provider.clone() else {
        return Err(refusal(
            "LanNetworkNotFound",
            format!(
                "Subnet {} binds no provider, so no NetworkAttachmentDefinition reaches it",
                spec.subnet
            ),
        ));
    };
    let lan_nad = nads.iter().find(|n| {
        matches!(n.classify(), Ok(NadClass::Attachment { provider, .. }) if provider == lan_provider)
    });
    let Some(lan_nad) = lan_nad else {
        return Err(refusal(
            "LanNetworkNotFound",
            format!(
                "no kube-ovn NetworkAttachmentDefinition has provider {lan_provider} (the \
                 provider of Subnet {})",
                spec.subnet
            ),
        ));
    };
    let (ext_ns, ext_name) = external_network(spec);
    let ext_nad = nads.iter().any(|n| {
        n.metadata.namespace.as_deref() == Some(ext_ns.as_str()) && n.name_any() == ext_name
    });
    let ext_subnet = subnets.iter().any(|s| s.name_any() == ext_name);
    if !ext_nad || !ext_subnet {
        let missing = match (ext_nad, ext_subnet) {
            (false, false) => format!(
                "NetworkAttachmentDefinition {ext_ns}/{ext_name} and Subnet {ext_name} do not exist"
            ),
            (false, true) => {
                format!("NetworkAttachmentDefinition {ext_ns}/{ext_name} does not exist")
            }
            _ => format!("Subnet {ext_name} does not exist"),
        };
        return Err(refusal(
            "ExternalNetworkNotFound",
            format!(
                "external network {ext_ns}/{ext_name}: {missing} (create the NAD, e.g. macvlan \
                 with ipam type kube-ovn, and a Subnet of the same name for its addresses)"
            ),
        ));
    }
    Ok(Plan {
        vpc: spec.vpc.clone(),
        lan_subnet: spec.subnet.clone(),
        lan_provider,
        lan_nad: (lan_nad.namespace().unwrap_or_default(), lan_nad.name_any()),
        lan_ip,
        external_nad: (ext_ns, ext_name.clone()),
        external_subnet: ext_name,
    })
}

/// The `k8s.v1.cni.cncf.io/networks` value of a gateway pod: the LAN attachment with `lanIp`
/// as its static address, then the external one. No interface names: the agent reads them
/// from `network-status`.
pub fn networks_annotation(plan: &Plan) -> String {
    serde_json::json!([
        {
            "name": plan.lan_nad.1,
            "namespace": plan.lan_nad.0,
            "ips": [plan.lan_ip.to_string()],
        },
        {
            "name": plan.external_nad.1,
            "namespace": plan.external_nad.0,
        },
    ])
    .to_string()
}

/// The StatefulSet of `gw` as the controller applies it.
pub fn statefulset(
    gw: &VpcNatGateway,
    plan: &Plan,
    image: &str,
) -> Result<StatefulSet, serde_json::Error> {
    let name = gw.name_any();
    let sts = statefulset_name(&name);
    let labels = serde_json::json!({
        "app": sts,
        LABEL_NAT_GATEWAY: "true",
        LABEL_GATEWAY_NAME: name,
    });
    let node_selector: serde_json::Map<String, serde_json::Value> = gw
        .spec
        .selector
        .iter()
        .filter_map(|s| {
            let (k, v) = s.split_once(':')?;
            Some((k.trim().to_owned(), serde_json::json!(v.trim())))
        })
        .collect();
    let lan = format!("{}/{}", plan.lan_nad.0, plan.lan_nad.1);
    let external = format!("{}/{}", plan.external_nad.0, plan.external_nad.1);
    let env_from =
        |field: &str| serde_json::json!({"valueFrom": {"fieldRef": {"fieldPath": field}}});
    let mut pod_env = vec![
        serde_json::json!({"name": "POD_NAME"}),
        serde_json::json!({"name": "POD_NAMESPACE"}),
    ];
    for (e, field) in pod_env
        .iter_mut()
        .zip(["metadata.name", "metadata.namespace"])
    {
        if let (Some(obj), serde_json::Value::Object(from)) = (e.as_object_mut(), env_from(field)) {
            obj.extend(from);
        }
    }
    let owner = gw.controller_owner_ref(&());
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": sts,
            "namespace": NAMESPACE,
            "labels": labels,
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "replicas": 1,
            "serviceName": sts,
            "selector": {"matchLabels": {"app": sts, LABEL_NAT_GATEWAY: "true"}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {NETWORKS_ANNOTATION: networks_annotation(plan)},
                },
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "nodeSelector": node_selector,
                    "tolerations": gw.spec.tolerations,
                    "affinity": gw.spec.affinity,
                    "terminationGracePeriodSeconds": 10,
                    "containers": [{
                        "name": CONTAINER,
                        "image": image,
                        "command": [
                            DAEMON_BINARY, "nat-gateway",
                            "--gateway", name,
                            "--lan-network", lan,
                            "--external-network", external,
                        ],
                        "env": pod_env,
                        // Not privileged: the agent changes only its own namespace, and sets
                        // forwarding and rp_filter over rtnetlink (/proc/sys is read-only
                        // here). NET_ADMIN for addresses, routes, rules, nf_tables and those
                        // settings; NET_RAW for the gratuitous ARP of a new EIP.
                        "securityContext": {
                            "privileged": false,
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "readinessProbe": {
                            "exec": {"command": [DAEMON_BINARY, "nat-gateway-ready"]},
                            "periodSeconds": 5,
                        },
                    }],
                },
            },
        },
    }))
}

/// The key of the gateway pod's LAN attachment (its allocator key, LSP and IP CR name).
pub fn lan_key(gw: &str, plan: &Plan) -> String {
    lsp_name(&pod_name(gw), NAMESPACE, &plan.lan_provider)
}

/// Allocator keys of gateway `gw`'s pod other than `keep` (an earlier LAN Subnet's), leaving
/// out its attachments to `external_subnet`: the external address is the pod's own lease
/// (from its external NAD's IPAM), released with the pod, never by the LAN bookkeeping.
fn other_lan_keys(
    ctx: &Context,
    gw: &str,
    keep: Option<&str>,
    external_subnet: &str,
) -> Vec<String> {
    let prefix = format!("{}.{NAMESPACE}.", pod_name(gw));
    ctx.ipam
        .records()
        .into_iter()
        .filter(|r| r.subnet != external_subnet)
        .map(|r| r.key)
        .filter(|k| k.starts_with(&prefix) && Some(k.as_str()) != keep)
        .collect()
}

/// What [`reserve_lan_ip`] found.
enum LanIp {
    /// Held (and recorded) before.
    Held,
    /// Newly reserved: its IP CR is to be written once the StatefulSet exists (the GC keeps a
    /// StatefulSet pod's record only while its StatefulSet wants the pod).
    Reserved(Box<crds::IPSpec>),
    /// Taken or excluded.
    Refused(Refusal),
}

/// Reserves `lanIp` in the allocator under the pod's LAN key (the caller holds the key in
/// [`Context::pending_ips`] until the record is written).
async fn reserve_lan_ip(ctx: &Context, gw: &str, plan: &Plan) -> Result<LanIp, Error> {
    let key = lan_key(gw, plan);
    for old in other_lan_keys(ctx, gw, Some(&key), &plan.external_subnet) {
        tracing::info!(gateway = %gw, key = %old, "gateway's LAN attachment moved; releasing the old one");
        crate::ip::release(ctx, &old).await?;
    }
    if let Some(lease) = ctx.ipam.get(&key)
        && !lease.ips().contains(&plan.lan_ip)
    {
        tracing::info!(gateway = %gw, "spec.lanIp changed; releasing the old address");
        crate::ip::release(ctx, &key).await?;
    }
    if ctx.ipam.lock().subnet_info(&plan.lan_subnet).is_err() {
        return Err(Error::NotReady(format!(
            "VpcNatGateway {gw}: Subnet {} is not ready",
            plan.lan_subnet
        )));
    }
    // Recorded before (by us, or by the pod controller with the node; at start the lease was
    // rebuilt from that record): as is.
    let existed = ctx.ipam.get(&key).is_some();
    let request = ipam::Request::random().with_ips([ipam::IpRequest::bare(plan.lan_ip)]);
    let lease = match ctx.ipam.allocate(&plan.lan_subnet, &key, &request) {
        Ok(_) if existed => return Ok(LanIp::Held),
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(gateway = %gw, error = %e, "lanIp not reserved");
            return Ok(LanIp::Refused(refusal(
                "LanIpInUse",
                format!(
                    "spec.lanIp {} cannot be reserved in Subnet {}: it is in use or excluded",
                    plan.lan_ip, plan.lan_subnet
                ),
            )));
        }
    };
    // The record a StatefulSet pod's attachment has: the GC keeps it while the StatefulSet
    // wants the pod, the pod controller finds it held, a restart rebuilds it.
    let mut pod = Pod::default();
    pod.metadata.name = Some(pod_name(gw));
    pod.metadata.namespace = Some(NAMESPACE.to_owned());
    pod.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: statefulset_name(gw),
            controller: Some(true),
            ..Default::default()
        },
    ]);
    Ok(LanIp::Reserved(Box::new(crate::ip::spec_for(
        &pod,
        &plan.lan_subnet,
        &lease,
    ))))
}

/// Whether the Vpc's spec has its own IPv4 default route (main table, by destination).
fn spec_default_route(vpc: &Vpc) -> bool {
    vpc.spec.static_routes.iter().any(|r| {
        r.cidr
            .parse::<ipnet::IpNet>()
            .is_ok_and(|n| n.trunc().to_string() == nb::routes::DEFAULT_ROUTE_V4)
            && r.route_table.as_deref().unwrap_or_default().is_empty()
            && !matches!(r.policy, Some(crds::vpc::RoutePolicy::PolicySrc))
    })
}

/// Whether the gateway pod exists and is Ready.
async fn pod_ready(ctx: &Context, gw: &str) -> Result<bool, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let pod = pods.get_opt(&pod_name(gw)).await?;
    Ok(pod.is_some_and(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    }))
}

/// Reconciles one VpcNatGateway under its finalizer.
pub async fn reconcile(gw: Arc<VpcNatGateway>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::reconciler::finalized(&ctx, FINALIZER, gw, apply, cleanup).await
}

/// The gateway's `spec.qosPolicy`, checked: `Ok(None)` without one, `Ok(Some(name))` for an
/// existing valid QoSPolicy of bindingType `NATGW` (the agent applies it to the external
/// leg), or why it cannot be used (the gateway runs without a limit meanwhile).
async fn qos_policy(
    ctx: &Context,
    gw: &VpcNatGateway,
) -> Result<Result<Option<String>, Refusal>, Error> {
    use crds::qos_policy::{QoSBindingType, QoSPolicy};
    let Some(name) = gw.spec.qos_policy.as_deref().filter(|p| !p.is_empty()) else {
        return Ok(Ok(None));
    };
    let unlimited = "the gateway runs without a bandwidth limit until it is fixed";
    let policy = Api::<QoSPolicy>::all(ctx.client.clone())
        .get_opt(name)
        .await?;
    Ok(match policy {
        None => Err(refusal(
            "QoSPolicyNotFound",
            format!("spec.qosPolicy names QoSPolicy {name}, which does not exist; {unlimited}"),
        )),
        Some(p) if p.spec.binding_type != QoSBindingType::NatGw => Err(refusal(
            "QoSPolicyInvalid",
            format!(
                "QoSPolicy {name} has bindingType EIP; a VpcNatGateway's policy needs \
                 bindingType NATGW; {unlimited}"
            ),
        )),
        Some(p) => match p.validate() {
            Err(e) => Err(refusal("QoSPolicyInvalid", format!("{e}; {unlimited}"))),
            Ok(()) => Ok(Some(name.to_owned())),
        },
    })
}

/// Upstream's status fields of what a gateway runs with: `qosPolicy` (the policy applied, if
/// any), `externalSubnets` (the external network in effect, the default included),
/// `selector`, `tolerations` and `affinity` (those of the StatefulSet's pod template).
const IN_EFFECT: [&str; 5] = [
    "qosPolicy",
    "externalSubnets",
    "selector",
    "tolerations",
    "affinity",
];

/// The [`IN_EFFECT`] fields of `gw` once its StatefulSet is applied, with `qos` in effect.
fn in_effect(gw: &VpcNatGateway, qos: Option<&str>) -> Vec<(&'static str, serde_json::Value)> {
    let (ns, name) = external_network(&gw.spec);
    let external = if ns == NAMESPACE {
        name
    } else {
        format!("{ns}/{name}")
    };
    let mut fields = vec![
        ("qosPolicy", serde_json::json!(qos.unwrap_or_default())),
        ("externalSubnets", serde_json::json!([external])),
        ("selector", serde_json::json!(gw.spec.selector)),
        ("tolerations", serde_json::json!(gw.spec.tolerations)),
    ];
    if let Some(affinity) = &gw.spec.affinity {
        fields.push(("affinity", serde_json::json!(affinity)));
    }
    fields
}

/// Whether the cached status differs from `fields` (an empty value is the same as none).
fn status_differs(gw: &VpcNatGateway, fields: &[(&'static str, serde_json::Value)]) -> bool {
    let cached = gw
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    let empty = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::String(s)) => s.is_empty(),
        Some(serde_json::Value::Array(a)) => a.is_empty(),
        Some(serde_json::Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    };
    let same = |a: Option<&serde_json::Value>, b: Option<&serde_json::Value>| {
        (empty(a) && empty(b)) || a == b
    };
    let wanted: std::collections::BTreeMap<&str, &serde_json::Value> =
        fields.iter().map(|(k, v)| (*k, v)).collect();
    IN_EFFECT
        .iter()
        .any(|k| !same(cached.get(*k), wanted.get(k).copied()))
}

/// Writes the conditions and, once the StatefulSet is applied, the [`IN_EFFECT`] fields
/// (`effective`; a refused gateway keeps those it had), when they change; for a refusal, a
/// Warning Event.
async fn report(
    ctx: &Context,
    gw: &VpcNatGateway,
    validated: Result<(), &Refusal>,
    ready: (bool, &str, String),
    effective: Option<Vec<(&'static str, serde_json::Value)>>,
) -> Result<(), Error> {
    let name = gw.name_any();
    let generation = gw.meta().generation;
    let mut conditions = gw
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let (ok, reason, msg) = match validated {
        Ok(()) => (true, "Validated", "spec is valid".to_owned()),
        Err((reason, msg)) => (
            false,
            reason.as_str(),
            format!("VpcNatGateway {name}: {msg}"),
        ),
    };
    let mut changed = set_condition(
        &mut conditions,
        status::condition(VALIDATED, ok, reason, msg.clone(), generation),
        status::now(),
    );
    changed |= set_condition(
        &mut conditions,
        status::condition(READY, ready.0, ready.1, ready.2.clone(), generation),
        status::now(),
    );
    if let Some(fields) = &effective {
        changed |= status_differs(gw, fields);
    }
    if !changed {
        return Ok(());
    }
    let api: Api<VpcNatGateway> = Api::all(ctx.client.clone());
    let kept: &[&str] = if effective.is_some() { &[] } else { &IN_EFFECT };
    let mut fields = vec![("conditions", serde_json::json!(conditions))];
    fields.extend(effective.unwrap_or_default());
    status::apply(&api, gw, fields, kept).await?;
    if !ok {
        tracing::warn!(gateway = %name, %reason, %msg, "VpcNatGateway refused");
        ctx.event(&gw.object_ref(&()), true, reason, msg).await;
    } else if ready.0 {
        tracing::info!(gateway = %name, "VpcNatGateway ready");
    }
    Ok(())
}

async fn apply(gw: &VpcNatGateway, ctx: &Context) -> Result<Action, Error> {
    let name = gw.name_any();
    let (nads, subnets, vpcs) = (ctx.nads.state(), ctx.subnets.state(), ctx.vpcs.state());
    let plan = match plan(gw, &nads, &subnets, &vpcs) {
        Ok(p) => p,
        Err(r) => {
            let ready = (
                false,
                r.0.as_str(),
                format!("VpcNatGateway {name}: {}", r.1),
            );
            report(ctx, gw, Err(&r), ready, None).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    let key = lan_key(&name, &plan);
    // From the reservation until its record is written: the GC leaves the lease alone.
    let _recording = ctx.pending_ips.hold(&key);
    let record = match reserve_lan_ip(ctx, &name, &plan).await? {
        LanIp::Refused(r) => {
            let ready = (
                false,
                r.0.as_str(),
                format!("VpcNatGateway {name}: {}", r.1),
            );
            report(ctx, gw, Err(&r), ready, None).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
        LanIp::Held => None,
        LanIp::Reserved(spec) => Some(spec),
    };
    let applied = match statefulset(gw, &plan, &ctx.nat_gateway_image) {
        Ok(sts) => {
            let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), NAMESPACE);
            sets.patch(
                &statefulset_name(&name),
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&sts),
            )
            .await
            .map_err(Error::from)
        }
        Err(e) => Err(Error::Invalid(format!(
            "StatefulSet of VpcNatGateway {name}: {e}"
        ))),
    };
    match (record, applied) {
        (Some(spec), Ok(_)) => {
            // A failed write keeps the lease: the next reconcile finds it held, and the pod
            // controller records it when the pod attaches (or the GC takes it back if none
            // ever does).
            crate::ip::write(ctx, &key, *spec, false).await?;
        }
        (Some(_), Err(e)) => {
            // Nothing half done: no StatefulSet, no address kept.
            ctx.ipam.release(&key);
            return Err(e);
        }
        (None, applied) => {
            applied?;
        }
    }
    let ready = pod_ready(ctx, &name).await?;
    let vpc = ctx.vpcs.get(&ObjectRef::new(&plan.vpc));
    let own_route = vpc.as_deref().is_some_and(spec_default_route)
        || nb::routes::has_own_default_route(&ctx.nb, &plan.vpc)?;
    let hop = plan.lan_ip.to_string();
    let want =
        (ready && !own_route && plan.lan_ip.is_ipv4()).then_some((plan.vpc.as_str(), hop.as_str()));
    nb::routes::sync_gateway_route(&ctx.nb, &name, want).await?;
    let pod = format!("{NAMESPACE}/{}", pod_name(&name));
    let verdict = if ready {
        let route = if want.is_some() {
            format!("; Vpc {} routes 0.0.0.0/0 via {hop}", plan.vpc)
        } else {
            format!("; Vpc {} has its own default route", plan.vpc)
        };
        (true, "GatewayReady", format!("pod {pod} is ready{route}"))
    } else {
        (
            false,
            "PodNotReady",
            format!("waiting for pod {pod} to become ready"),
        )
    };
    match qos_policy(ctx, gw).await? {
        Ok(qos) => {
            let effective = in_effect(gw, qos.as_deref());
            report(ctx, gw, Ok(()), verdict, Some(effective)).await?;
        }
        Err(r) => report(ctx, gw, Err(&r), verdict, Some(in_effect(gw, None))).await?,
    }
    Ok(Action::requeue(Duration::from_secs(60)))
}

async fn cleanup(gw: &VpcNatGateway, ctx: &Context) -> Result<Action, Error> {
    let name = gw.name_any();
    nb::routes::sync_gateway_route(&ctx.nb, &name, None).await?;
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    match sets
        .delete(&statefulset_name(&name), &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let (_, external_subnet) = external_network(&gw.spec);
    for key in other_lan_keys(ctx, &name, None, &external_subnet) {
        crate::ip::release(ctx, &key).await?;
    }
    tracing::info!(gateway = %name, "VpcNatGateway deleted: route, StatefulSet and lanIp removed");
    Ok(Action::await_change())
}

/// The VpcNatGateway `name`: from the store, or from the API when the store does not have it
/// (yet: a gateway's pod can be seen before the gateway's watch delivers it).
async fn gateway_named(ctx: &Context, name: &str) -> Result<Option<Arc<VpcNatGateway>>, Error> {
    match ctx.nat.gateways.get(&ObjectRef::new(name)) {
        Some(g) => Ok(Some(g)),
        None => Ok(Api::<VpcNatGateway>::all(ctx.client.clone())
            .get_opt(name)
            .await?
            .map(Arc::new)),
    }
}

/// For a pod in kube-system whose controlling owner is a StatefulSet named like a gateway's
/// (`vpc-nat-gw-<gw>`): that owner reference and `<gw>` (a claim, checked by the callers).
fn gateway_statefulset_owner(
    pod: &Pod,
) -> Option<(
    &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    &str,
)> {
    if pod.namespace().as_deref() != Some(NAMESPACE) {
        return None;
    }
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "StatefulSet")?;
    let gw = owner.name.strip_prefix(STATEFULSET_PREFIX)?;
    Some((owner, gw))
}

/// Whether `pod` is the pod of a VpcNatGateway that is gone or going (the gateway, or the
/// StatefulSet that made the pod, deleted or deleting): the pod goes with them, nothing is to
/// be attached for it and nothing to complain about. Only skips work, so it needs no proof of
/// ownership (a pod that copies the label gains nothing).
pub async fn orphaned_gateway_pod(ctx: &Context, pod: &Pod) -> Result<bool, Error> {
    if pod.labels().get(LABEL_NAT_GATEWAY).map(String::as_str) != Some("true") {
        return Ok(false);
    }
    let Some((owner, gw)) = gateway_statefulset_owner(pod) else {
        return Ok(false);
    };
    let gateway = gateway_named(ctx, gw).await?;
    if gateway.is_none_or(|g| g.metadata.deletion_timestamp.is_some()) {
        return Ok(true);
    }
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    Ok(sets.get_opt(&owner.name).await?.is_none_or(|s| {
        s.metadata.uid.as_deref() != Some(owner.uid.as_str())
            || s.metadata.deletion_timestamp.is_some()
    }))
}

/// The LAN Subnet `pod` may attach to as the genuine pod of a VpcNatGateway, whatever the
/// namespaces its Subnet or Vpc admit: the pod is `vpc-nat-gw-<gw>-0` in kube-system, owned
/// (by uid) by the StatefulSet `vpc-nat-gw-<gw>`, itself owned (by uid) by the gateway `<gw>`
/// that exists; the answer is that gateway's `spec.subnet`. Anyone else gains nothing: a pod
/// that copies the labels, name or annotation has no such owner chain.
pub async fn admitted_lan_subnet(ctx: &Context, pod: &Pod) -> Result<Option<String>, Error> {
    let Some((owner, gw_name)) = gateway_statefulset_owner(pod) else {
        return Ok(None);
    };
    if pod.name_any() != pod_name(gw_name) {
        return Ok(None);
    }
    let Some(gw) = gateway_named(ctx, gw_name).await? else {
        return Ok(None);
    };
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    let Some(sts) = sets.get_opt(&owner.name).await? else {
        return Ok(None);
    };
    let genuine = sts.metadata.uid.as_deref() == Some(owner.uid.as_str())
        && sts.owner_references().iter().any(|o| {
            o.controller == Some(true)
                && o.kind == "VpcNatGateway"
                && o.name == gw_name
                && gw.metadata.uid.as_deref() == Some(o.uid.as_str())
        });
    Ok(genuine.then(|| gw.spec.subnet.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nad(ns: &str, name: &str, config: &str) -> Arc<NetworkAttachmentDefinition> {
        Arc::new(NetworkAttachmentDefinition::with_config(ns, name, config))
    }

    fn subnet(name: &str, vpc: Option<&str>, cidr: &str, provider: &str) -> Arc<Subnet> {
        let mut s = Subnet::new(name, crds::SubnetSpec::default());
        s.spec.vpc = vpc.map(Into::into);
        s.spec.cidr = Some(cidr.into());
        s.spec.provider = Some(provider.into());
        Arc::new(s)
    }

    /// The manual's network and gateway, plus the external network.
    type Cluster = (
        VpcNatGateway,
        Vec<Arc<NetworkAttachmentDefinition>>,
        Vec<Arc<Subnet>>,
        Vec<Arc<Vpc>>,
    );

    fn manual() -> Cluster {
        let mut gw = VpcNatGateway::new(
            "vpc-nat-gw",
            crds::VpcNatGatewaySpec {
                vpc: "vpc-secondary".into(),
                subnet: "subnet-secondary".into(),
                lan_ip: Some("10.100.0.254".into()),
                ..Default::default()
            },
        );
        gw.metadata.uid = Some("gw-uid".into());
        let nads = vec![
            nad(
                "default",
                "kube-ovn-vpc-network",
                r#"{"cniVersion":"0.3.1","type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock","provider":"kube-ovn-vpc-network.default.ovn"}"#,
            ),
            nad(
                "kube-system",
                "ovn-vpc-external-network",
                r#"{"cniVersion":"0.3.1","type":"macvlan","master":"eth1","mode":"bridge","ipam":{"type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock","provider":"ovn-vpc-external-network.kube-system"}}"#,
            ),
        ];
        let subnets = vec![
            subnet(
                "subnet-secondary",
                Some("vpc-secondary"),
                "10.100.0.0/16",
                "kube-ovn-vpc-network.default.ovn",
            ),
            subnet(
                "ovn-vpc-external-network",
                None,
                "172.18.0.0/16",
                "ovn-vpc-external-network.kube-system",
            ),
        ];
        let mut vpc = Vpc::new("vpc-secondary", crds::VpcSpec::default());
        vpc.spec.namespaces = vec!["default".into()];
        (gw, nads, subnets, vec![Arc::new(vpc)])
    }

    #[test]
    fn the_manuals_gateway_becomes_a_statefulset_with_both_attachments() {
        let (gw, nads, subnets, vpcs) = manual();
        let plan = plan(&gw, &nads, &subnets, &vpcs).unwrap();
        assert_eq!(
            plan.lan_nad,
            ("default".into(), "kube-ovn-vpc-network".into())
        );
        assert_eq!(plan.external_subnet, "ovn-vpc-external-network");
        assert_eq!(
            lan_key("vpc-nat-gw", &plan),
            "vpc-nat-gw-vpc-nat-gw-0.kube-system.kube-ovn-vpc-network.default.ovn"
        );
        let sts = statefulset(&gw, &plan, "img:v1").unwrap();
        assert_eq!(sts.metadata.name.as_deref(), Some("vpc-nat-gw-vpc-nat-gw"));
        assert_eq!(sts.metadata.namespace.as_deref(), Some("kube-system"));
        let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("VpcNatGateway", "gw-uid")
        );
        let spec = sts.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let template = spec.template;
        let networks = &template.metadata.unwrap().annotations.unwrap()[NETWORKS_ANNOTATION];
        let elements = crds::parse_networks_annotation(networks, "kube-system").unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(
            (elements[0].namespace.as_str(), elements[0].name.as_str()),
            ("default", "kube-ovn-vpc-network")
        );
        assert_eq!(elements[0].ips[0].to_string(), "10.100.0.254");
        assert_eq!(
            (elements[1].namespace.as_str(), elements[1].name.as_str()),
            ("kube-system", "ovn-vpc-external-network")
        );
        assert!(elements.iter().all(|e| e.interface.is_none()));
        let pod = template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("vpc-nat-gw"));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("img:v1"));
        assert_eq!(
            c.command.clone().unwrap(),
            [
                "/kube-ovn/kube-ovn-daemon",
                "nat-gateway",
                "--gateway",
                "vpc-nat-gw",
                "--lan-network",
                "default/kube-ovn-vpc-network",
                "--external-network",
                "kube-system/ovn-vpc-external-network",
            ]
        );
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.privileged, Some(false));
        let caps = sc.capabilities.clone().unwrap();
        assert_eq!(caps.add.unwrap(), ["NET_ADMIN", "NET_RAW"]);
        assert_eq!(caps.drop.unwrap(), ["ALL"]);
        let probe = c
            .readiness_probe
            .clone()
            .unwrap()
            .exec
            .unwrap()
            .command
            .unwrap();
        assert_eq!(probe, ["/kube-ovn/kube-ovn-daemon", "nat-gateway-ready"]);
        // Nothing privileged in the pod: no init step, capabilities cut to the two.
        assert_eq!(pod.init_containers, None);
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.seccomp_profile.clone().unwrap().type_, "RuntimeDefault");
        let env: Vec<(String, String)> = c
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| {
                let path = e.value_from.unwrap().field_ref.unwrap().field_path;
                (e.name, path)
            })
            .collect();
        assert_eq!(
            env,
            [
                ("POD_NAME".to_owned(), "metadata.name".to_owned()),
                ("POD_NAMESPACE".to_owned(), "metadata.namespace".to_owned())
            ]
        );
    }

    #[test]
    fn each_unrealisable_gateway_says_why() {
        let (gw, nads, subnets, vpcs) = manual();
        let with = |f: &dyn Fn(&mut VpcNatGateway)| {
            let mut g = gw.clone();
            f(&mut g);
            plan(&g, &nads, &subnets, &vpcs).unwrap_err()
        };
        let cases: Vec<(Refusal, &str, &str)> = vec![
            (
                with(&|g| g.spec.vpc = "nope".into()),
                "VpcNotFound",
                "Vpc nope",
            ),
            (
                with(&|g| g.spec.subnet = "nope".into()),
                "SubnetNotFound",
                "Subnet nope",
            ),
            (
                with(&|g| g.spec.subnet = "ovn-vpc-external-network".into()),
                "SubnetNotInVpc",
                "belongs to Vpc (none)",
            ),
            (
                with(&|g| g.spec.lan_ip = Some("10.99.0.1".into())),
                "InvalidLanIp",
                "outside",
            ),
            (
                with(&|g| g.spec.lan_ip = Some("10.100.0.1".into())),
                "InvalidLanIp",
                "gateway",
            ),
            (with(&|g| g.spec.lan_ip = None), "InvalidLanIp", "required"),
            (
                with(&|g| g.spec.external_subnets = vec!["other".into()]),
                "ExternalNetworkNotFound",
                "kube-system/other",
            ),
            (
                with(&|g| g.metadata.name = Some("x".repeat(50))),
                "InvalidSpec",
                "too long",
            ),
        ];
        for ((reason, msg), want_reason, want_msg) in cases {
            assert_eq!(reason, want_reason, "{msg}");
            assert!(msg.contains(want_msg), "{msg:?} lacks {want_msg:?}");
        }
        // Without the LAN NAD, or without the external Subnet.
        let r = plan(&gw, &nads[1..], &subnets, &vpcs).unwrap_err();
        assert_eq!(r.0, "LanNetworkNotFound");
        let r = plan(&gw, &nads, &subnets[..1], &vpcs).unwrap_err();
        assert_eq!(r.0, "ExternalNetworkNotFound");
        assert!(
            r.1.contains("Subnet ovn-vpc-external-network does not exist"),
            "{}",
            r.1
        );
    }

    #[test]
    fn external_networks_default_and_may_be_namespaced() {
        let mut spec = crds::VpcNatGatewaySpec::default();
        assert_eq!(
            external_network(&spec),
            ("kube-system".into(), "ovn-vpc-external-network".into())
        );
        spec.external_subnets = vec!["ext".into()];
        assert_eq!(
            external_network(&spec),
            ("kube-system".into(), "ext".into())
        );
        spec.external_subnets = vec!["net/ext".into()];
        assert_eq!(external_network(&spec), ("net".into(), "ext".into()));
    }
}
