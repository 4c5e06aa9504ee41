//! The NAT objects of a VpcNatGateway: `IptablesEIP`, `IptablesFIPRule`, `IptablesSnatRule`,
//! `IptablesDnatRule`.
//!
//! The controller's part is the addresses and the verdicts; the gateway's agent
//! (`kube-ovn-daemon nat-gateway`) puts them into its netns and reports `Ready`.
//!
//! - **Addresses**: an EIP gets an address from its gateway's external Subnet (the Subnet named
//!   like the external NAD, see [`crate::nat_gateway::external_network`]) through the shared
//!   allocator, under the key [`eip_key`]. A static `spec.v4ip` is reserved as written; an empty
//!   one is filled with the allocated address (upstream's behaviour, and the contract with the
//!   agent, which reads `spec.v4ip`). The EIP itself is the durable record: at start the
//!   allocator is rebuilt from the IP CRs *and* from every EIP's `spec.v4ip`
//!   ([`eip_records`]), so a restart never hands an EIP's address to anyone else. The lease
//!   goes with the EIP (finalizer [`EIP_FINALIZER`]), and while the EIP is refused (its gateway
//!   gone, a conflict) it holds none. The GC leaves these keys alone ([`is_eip_key`]): they
//!   have no IP CR by design.
//! - **Verdicts**: [`crds::iptables::problems`] over all EIPs and rules (from reflector caches,
//!   computed once per change of any of them) gives each object its `Validated` condition,
//!   written by server-side apply under [`MANAGER`] owning that one condition (the schema makes
//!   `conditions` a map keyed by `type`; the agent owns `Ready`). A refusal is also a Warning
//!   Event, once per change. The agent does not read `Validated`: it checks the same objects
//!   itself when it plans (`daemon::natgw::plan`, its `Ready` condition says why it refused
//!   one), so a refused rule is never half applied there either.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crds::condition::{VALIDATED, find_condition, set_condition};
use crds::iptables::{NatKind, NatObjects, NatProblem};
use crds::{
    Condition, IptablesDnatRule, IptablesEIP, IptablesFIPRule, IptablesSnatRule, VpcNatGateway,
};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use crate::context::{Context, MANAGER};
use crate::error::Error;
use crate::status;

/// Finalizer on IptablesEIPs: the address is released before the object goes.
pub const EIP_FINALIZER: &str = "kubeovn.io/iptables-eip";

/// Prefix of an EIP's allocator key. A `/` never appears in an IP CR's name, so these keys
/// cannot collide with an attachment's.
const EIP_KEY_PREFIX: &str = "iptables-eip/";

/// Condition reason: the EIP's external network (NAD and Subnet) does not exist.
pub const EXTERNAL_NETWORK_NOT_FOUND: &str = "ExternalNetworkNotFound";
/// Condition reason: no address could be allocated (the external Subnet is full).
pub const ALLOCATION_FAILED: &str = "AllocationFailed";

/// The allocator key of EIP `name`.
pub fn eip_key(name: &str) -> String {
    format!("{EIP_KEY_PREFIX}{name}")
}

/// Whether an allocator key is an EIP's (recorded by the EIP itself, not by an IP CR).
pub fn is_eip_key(key: &str) -> bool {
    key.starts_with(EIP_KEY_PREFIX)
}

/// What a change of a NAT object may change the verdict of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touched {
    /// The EIP of this name and every rule naming it.
    Eip(String),
    /// Every EIP on this gateway and every rule using one of them.
    Gateway(String),
}

/// Reflector caches of the gateways and NAT objects, with the verdicts over them.
#[derive(Clone)]
pub struct NatCaches {
    /// VpcNatGateways.
    pub gateways: Store<VpcNatGateway>,
    /// IptablesEIPs.
    pub eips: Store<IptablesEIP>,
    /// IptablesFIPRules.
    pub fips: Store<IptablesFIPRule>,
    /// IptablesSnatRules.
    pub snats: Store<IptablesSnatRule>,
    /// IptablesDnatRules.
    pub dnats: Store<IptablesDnatRule>,
    /// Spec changes and deletions, once the caches hold them.
    pub touched: tokio::sync::broadcast::Sender<Touched>,
    /// Bumped on every change of any cache.
    version: Arc<AtomicU64>,
    /// The verdicts at a version.
    memo: Arc<Mutex<Option<(u64, Verdicts)>>>,
}

/// Every refused NAT object with its problem.
pub type Verdicts = Arc<BTreeMap<(NatKind, String), NatProblem>>;

impl std::fmt::Debug for NatCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatCaches").finish_non_exhaustive()
    }
}

/// A watch feeding the cache of `K`: announces on `touched` what each spec change or deletion
/// may affect (`keys` of the old and the new object), after the cache holds it.
fn watch_into<K>(
    api: Api<K>,
    touched: tokio::sync::broadcast::Sender<Touched>,
    version: Arc<AtomicU64>,
    keys: fn(&K) -> Vec<Touched>,
) -> (
    Store<K>,
    impl std::future::Future<Output = ()> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    let mut seen: HashMap<String, (Option<i64>, Vec<Touched>)> = HashMap::new();
    let drive = async move {
        stream
            .for_each(|event| {
                version.fetch_add(1, Ordering::Release);
                let announce = |old: Option<(Option<i64>, Vec<Touched>)>, new: &[Touched]| {
                    let mut all: Vec<Touched> = old.map(|(_, k)| k).unwrap_or_default();
                    all.extend(new.iter().cloned());
                    all.dedup();
                    for t in all {
                        // No receiver yet (before the controllers run) is fine: they start
                        // with every object.
                        let _ = touched.send(t);
                    }
                };
                match event {
                    Ok(watcher::Event::Apply(o)) => {
                        let generation = o.meta().generation;
                        let new = keys(&o);
                        let old = seen.insert(o.name_any(), (generation, new.clone()));
                        if old.as_ref().map(|(g, _)| *g) != Some(generation) {
                            announce(old, &new);
                        }
                    }
                    Ok(watcher::Event::InitApply(o)) => {
                        seen.insert(o.name_any(), (o.meta().generation, keys(&o)));
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        let old = seen.remove(&o.name_any());
                        announce(old, &keys(&o));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, kind = K::kind(&()).as_ref(), "watch error");
                    }
                }
                futures::future::ready(())
            })
            .await;
    };
    (reader, drive)
}

/// A task feeding a cache.
pub type CacheTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The caches and the tasks that feed them (to be spawned by the caller).
pub fn caches(client: &kube::Client) -> (NatCaches, Vec<CacheTask>) {
    let touched = tokio::sync::broadcast::Sender::new(1024);
    let version = Arc::new(AtomicU64::new(0));
    let (gateways, g) = watch_into(
        Api::<VpcNatGateway>::all(client.clone()),
        touched.clone(),
        version.clone(),
        |g| vec![Touched::Gateway(g.name_any())],
    );
    let (eips, e) = watch_into(
        Api::<IptablesEIP>::all(client.clone()),
        touched.clone(),
        version.clone(),
        |e| {
            vec![
                Touched::Eip(e.name_any()),
                Touched::Gateway(e.spec.nat_gw_dp.clone()),
            ]
        },
    );
    let (fips, f) = watch_into(
        Api::<IptablesFIPRule>::all(client.clone()),
        touched.clone(),
        version.clone(),
        |r| vec![Touched::Eip(r.spec.eip.clone())],
    );
    let (snats, s) = watch_into(
        Api::<IptablesSnatRule>::all(client.clone()),
        touched.clone(),
        version.clone(),
        |r| vec![Touched::Eip(r.spec.eip.clone())],
    );
    let (dnats, d) = watch_into(
        Api::<IptablesDnatRule>::all(client.clone()),
        touched.clone(),
        version.clone(),
        |r| vec![Touched::Eip(r.spec.eip.clone())],
    );
    let caches = NatCaches {
        gateways,
        eips,
        fips,
        snats,
        dnats,
        touched,
        version,
        memo: Arc::default(),
    };
    (
        caches,
        vec![
            Box::pin(g),
            Box::pin(e),
            Box::pin(f),
            Box::pin(s),
            Box::pin(d),
        ],
    )
}

impl NatCaches {
    /// Caches fed by nothing (a context built without [`crate::run::start`]): never ready.
    pub fn unwired() -> Self {
        Self {
            gateways: reflector::store().0,
            eips: reflector::store().0,
            fips: reflector::store().0,
            snats: reflector::store().0,
            dnats: reflector::store().0,
            touched: tokio::sync::broadcast::Sender::new(1),
            version: Arc::default(),
            memo: Arc::default(),
        }
    }

    /// Waits until every cache holds its first list; `Err` names one that never will.
    pub async fn wait_until_ready(&self) -> Result<(), &'static str> {
        let ok = |r: Result<(), _>, what| r.map_err(|_| what);
        ok(self.gateways.wait_until_ready().await, "VpcNatGateway")?;
        ok(self.eips.wait_until_ready().await, "IptablesEIP")?;
        ok(self.fips.wait_until_ready().await, "IptablesFIPRule")?;
        ok(self.snats.wait_until_ready().await, "IptablesSnatRule")?;
        ok(self.dnats.wait_until_ready().await, "IptablesDnatRule")
    }

    /// The verdicts over the cached objects, computed once per change.
    pub fn verdicts(&self) -> Verdicts {
        let version = self.version.load(Ordering::Acquire);
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, v)) = memo.as_ref()
            && *at == version
        {
            return v.clone();
        }
        let gateways: BTreeSet<String> = self
            .gateways
            .state()
            .iter()
            .filter(|g| g.meta().deletion_timestamp.is_none())
            .map(|g| g.name_any())
            .collect();
        let (eips, fips, snats, dnats) = (
            self.eips.state(),
            self.fips.state(),
            self.snats.state(),
            self.dnats.state(),
        );
        let v = Arc::new(crds::iptables::problems(NatObjects {
            eips: &eips,
            fips: &fips,
            snats: &snats,
            dnats: &dnats,
            gateways: &gateways,
        }));
        *memo = Some((version, v.clone()));
        v
    }

    /// The gateway of EIP `eip`, if both exist.
    fn gateway_of_eip(&self, eip: &str) -> Option<String> {
        self.eips
            .get(&ObjectRef::new(eip))
            .map(|e| e.spec.nat_gw_dp.clone())
    }
}

/// The objects of one kind a [`Touched`] concerns.
fn concerned<K>(
    store: &Store<K>,
    nat: &NatCaches,
    t: &Touched,
    eip_of: fn(&K) -> &str,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| match t {
            Touched::Eip(e) => eip_of(o) == e,
            Touched::Gateway(g) => nat.gateway_of_eip(eip_of(o)).as_deref() == Some(g.as_str()),
        })
        .map(|o| ObjectRef::from(o.as_ref()))
        .collect()
}

/// The objects of one kind to reconcile again as other NAT objects change (every object of
/// the kind when the announcements were too many to keep).
pub fn triggers<K>(
    nat: &NatCaches,
    store: Store<K>,
    eip_of: fn(&K) -> &str,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    use tokio::sync::broadcast::error::RecvError;
    let nat = nat.clone();
    futures::stream::unfold(nat.touched.subscribe(), move |mut rx| {
        let (nat, store) = (nat.clone(), store.clone());
        async move {
            let refs = match rx.recv().await {
                Ok(t) => concerned(&store, &nat, &t, eip_of),
                Err(RecvError::Lagged(_)) => store
                    .state()
                    .iter()
                    .map(|o| ObjectRef::from(o.as_ref()))
                    .collect(),
                Err(RecvError::Closed) => return None,
            };
            Some((refs, rx))
        }
    })
    .flat_map(futures::stream::iter)
}

/// The EIP's own name (its "EIP" for [`triggers`]).
pub fn eip_name(e: &IptablesEIP) -> &str {
    e.metadata.name.as_deref().unwrap_or_default()
}

/// The EIP a FIP uses.
pub fn fip_eip(r: &IptablesFIPRule) -> &str {
    &r.spec.eip
}

/// The EIP a SNAT rule uses.
pub fn snat_eip(r: &IptablesSnatRule) -> &str {
    &r.spec.eip
}

/// The EIP a DNAT rule uses.
pub fn dnat_eip(r: &IptablesDnatRule) -> &str {
    &r.spec.eip
}

/// The external Subnet an EIP takes its address from: its `spec.externalSubnet`, else its
/// gateway's external network (by name: the Subnet is named like the external NAD).
pub fn external_subnet_of(eip: &IptablesEIP, gateway: Option<&VpcNatGateway>) -> Option<String> {
    if !eip.spec.external_subnet.is_empty() {
        return Some(eip.spec.external_subnet.clone());
    }
    gateway.map(|g| crate::nat_gateway::external_network(&g.spec).1)
}

/// The allocator records of the EIPs' addresses, for the rebuild at start: every EIP with a
/// `spec.v4ip` whose gateway exists and that is not refused (a refused EIP holds no address),
/// those accepted (`Validated` true) first, then the oldest: of two claiming one address, the
/// one that held it keeps it, as [`crds::iptables::problems`] decides.
pub fn eip_records(
    eips: &[Arc<IptablesEIP>],
    gateways: &[Arc<VpcNatGateway>],
) -> Vec<ipam::Record> {
    let validated = |e: &IptablesEIP| {
        find_condition(e.conditions(), VALIDATED).map(|c| c.status == crds::ConditionStatus::True)
    };
    let mut eips: Vec<&Arc<IptablesEIP>> = eips
        .iter()
        .filter(|e| !e.spec.v4ip.is_empty() && validated(e) != Some(false))
        .collect();
    eips.sort_by_key(|e| {
        (
            validated(e) != Some(true),
            e.meta().creation_timestamp.as_ref().map(|t| t.0),
            e.name_any(),
        )
    });
    eips.into_iter()
        .filter_map(|e| {
            let gw = gateways.iter().find(|g| g.name_any() == e.spec.nat_gw_dp)?;
            let subnet = external_subnet_of(e, Some(gw))?;
            let ip = e.spec.v4ip.parse().ok()?;
            Some(ipam::Record {
                key: eip_key(&e.name_any()),
                subnet,
                ips: vec![ip],
                mac: None,
            })
        })
        .collect()
}

/// The conditions of a NAT object's status.
pub trait NatStatus {
    /// Its kind for [`crds::iptables::problems`].
    const KIND: NatKind;
    /// The current conditions.
    fn conditions(&self) -> &[Condition];
}

impl NatStatus for IptablesEIP {
    const KIND: NatKind = NatKind::Eip;
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

macro_rules! rule_status {
    ($($t:ty => $kind:ident),*) => {$(
        impl NatStatus for $t {
            const KIND: NatKind = NatKind::$kind;
            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map_or(&[], |s| &s.conditions)
            }
        }
    )*};
}
rule_status!(IptablesFIPRule => Fip, IptablesSnatRule => Snat, IptablesDnatRule => Dnat);

/// Writes `obj`'s `Validated` condition (unless it already says the same) by server-side apply
/// of that one condition under [`MANAGER`]; a refusal is also a Warning Event, once per change.
pub async fn report_validated<K>(
    ctx: &Context,
    obj: &K,
    problem: Option<(&str, String)>,
    ok_message: String,
) -> Result<(), Error>
where
    K: NatStatus
        + Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let name = obj.name_any();
    let (ok, reason, message) = match &problem {
        None => (true, "Validated", ok_message),
        Some((reason, msg)) => (false, *reason, msg.clone()),
    };
    let mut conditions = obj.conditions().to_vec();
    let wanted = status::condition(
        VALIDATED,
        ok,
        reason,
        message.clone(),
        obj.meta().generation,
    );
    if !set_condition(&mut conditions, wanted, status::now()) {
        return Ok(());
    }
    let Some(validated) = find_condition(&conditions, VALIDATED) else {
        return Ok(());
    };
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": { "conditions": [validated] },
    });
    let api: Api<K> = Api::all(ctx.client.clone());
    // Forced: this manager owns the Validated entry alone; the agent's Ready entry is another
    // key of the map and stays the agent's.
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    if ok {
        tracing::info!(kind = K::kind(&()).as_ref(), object = %name, "validated");
    } else {
        tracing::warn!(kind = K::kind(&()).as_ref(), object = %name, %reason, %message, "refused");
        ctx.event(&obj.object_ref(&()), true, reason, message).await;
    }
    Ok(())
}

/// How often verdicts are refreshed without any change (a safety net: every change that can
/// alter one triggers a reconcile).
const RECHECK: Duration = Duration::from_secs(300);

/// How soon a refused EIP is looked at again.
const RETRY_REFUSED: Duration = Duration::from_secs(30);

/// Reconciles one FIP, SNAT or DNAT rule: its `Validated` condition.
pub async fn reconcile_rule<K>(rule: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error>
where
    K: NatStatus
        + Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    if rule.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let verdicts = ctx.nat.verdicts();
    let problem = verdicts
        .get(&(K::KIND, rule.name_any()))
        .map(|p| (p.reason, p.message.clone()));
    report_validated(ctx.as_ref(), rule.as_ref(), problem, "spec is valid".into()).await?;
    Ok(Action::requeue(RECHECK))
}

/// Reconciles one EIP under its finalizer: its address and its `Validated` condition.
pub async fn reconcile_eip(eip: Arc<IptablesEIP>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::reconciler::finalized(&ctx, EIP_FINALIZER, eip, apply_eip, cleanup_eip).await
}

async fn apply_eip(eip: &IptablesEIP, ctx: &Context) -> Result<Action, Error> {
    let name = eip.name_any();
    let key = eip_key(&name);
    let verdicts = ctx.nat.verdicts();
    let refuse = async |reason: &str, msg: String| -> Result<Action, Error> {
        // A refused EIP holds no address: nothing is half applied.
        if ctx.ipam.release(&key).is_some() {
            tracing::info!(eip = %name, "refused EIP's address released");
        }
        report_validated(ctx, eip, Some((reason, msg)), String::new()).await?;
        // A missing network or a full subnet may change without any NAT object changing.
        Ok(Action::requeue(RETRY_REFUSED))
    };
    if let Some(p) = verdicts.get(&(NatKind::Eip, name.clone())) {
        // The gateway's cache may trail this EIP's by a moment (both created together): a
        // static address is not let go, nor a Warning published, for a gateway that exists.
        if p.reason == crds::iptables::REASON_GATEWAY_NOT_FOUND
            && Api::<VpcNatGateway>::all(ctx.client.clone())
                .get_opt(&eip.spec.nat_gw_dp)
                .await?
                .is_some_and(|g| g.meta().deletion_timestamp.is_none())
        {
            return Err(Error::NotReady(format!(
                "IptablesEIP {name}: VpcNatGateway {} is not in the cache yet",
                eip.spec.nat_gw_dp
            )));
        }
        return refuse(p.reason, p.message.clone()).await;
    }
    let gateway = ctx.nat.gateways.get(&ObjectRef::new(&eip.spec.nat_gw_dp));
    let Some(subnet) = external_subnet_of(eip, gateway.as_deref()) else {
        return refuse(
            crds::iptables::REASON_GATEWAY_NOT_FOUND,
            format!(
                "IptablesEIP {name}: VpcNatGateway {} does not exist",
                eip.spec.nat_gw_dp
            ),
        )
        .await;
    };
    if ctx.ipam.lock().subnet_info(&subnet).is_err() {
        return refuse(
            EXTERNAL_NETWORK_NOT_FOUND,
            format!(
                "IptablesEIP {name}: external Subnet {subnet} does not exist or is not ready (create \
                 the external network's NetworkAttachmentDefinition and a Subnet of that name)"
            ),
        )
        .await;
    }
    let wanted: Option<std::net::IpAddr> = eip.spec.v4ip.parse().ok();
    let held = ctx.ipam.get(&key);
    if let Some(lease) = &held
        && (lease.subnet != subnet || wanted.is_some_and(|w| lease.v4.map(Into::into) != Some(w)))
    {
        tracing::info!(eip = %name, "EIP's address or external subnet changed; releasing the old address");
        ctx.ipam.release(&key);
    }
    let mut request = ipam::Request::random().without_mac();
    if let Some(ip) = wanted {
        request = request.with_ips([ipam::IpRequest::bare(ip)]);
    }
    let existed = ctx.ipam.get(&key).is_some();
    let lease = match allocate_avoiding_static_requests(ctx, eip, &subnet, &key, &request) {
        Ok(l) => l,
        Err(e) => {
            let reason = if wanted.is_some() {
                crds::iptables::REASON_ADDRESS_CONFLICT
            } else {
                ALLOCATION_FAILED
            };
            let msg = match wanted {
                Some(ip) => format!(
                    "IptablesEIP {name}: spec.v4ip {ip} cannot be reserved in Subnet {subnet}: {e}"
                ),
                None => format!("IptablesEIP {name}: no address in Subnet {subnet}: {e}"),
            };
            return refuse(reason, msg).await;
        }
    };
    let Some(v4) = lease.v4 else {
        if !existed {
            ctx.ipam.release(&key);
        }
        return refuse(
            ALLOCATION_FAILED,
            format!("IptablesEIP {name}: external Subnet {subnet} has no IPv4 range"),
        )
        .await;
    };
    if wanted.is_none() {
        // The contract with the agent (and upstream's behaviour): the address is written into
        // the spec. Guarded by the resourceVersion read, so a user's concurrent edit wins.
        let api: Api<IptablesEIP> = Api::all(ctx.client.clone());
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": eip.resource_version() },
            "spec": { "v4ip": v4.to_string() },
        });
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        if let Err(e) = api.patch(&name, &params, &Patch::Merge(&patch)).await {
            if !existed {
                ctx.ipam.release(&key);
            }
            return Err(e.into());
        }
        tracing::info!(eip = %name, address = %v4, %subnet, "EIP address allocated");
        // The spec change brings the EIP back here, to report it.
        return Ok(Action::await_change());
    }
    report_validated(
        ctx,
        eip,
        None,
        format!("address {v4} reserved in Subnet {subnet}"),
    )
    .await?;
    Ok(Action::requeue(RECHECK))
}

/// How many fresh picks a dynamic EIP gets before it takes an address another EIP asks for.
const MAX_PICKS: usize = 16;

/// Allocates for `eip`; a dynamic pick that another EIP asks for as its static `spec.v4ip`
/// (created at the same moment and not reserved yet) is put back and picked again, so a
/// user's static address is not taken by a neighbour's dynamic one.
fn allocate_avoiding_static_requests(
    ctx: &Context,
    eip: &IptablesEIP,
    subnet: &str,
    key: &str,
    request: &ipam::Request,
) -> Result<ipam::Lease, ipam::Error> {
    let held = ctx.ipam.get(key).is_some();
    let wanted_by_others: BTreeSet<std::net::IpAddr> = ctx
        .nat
        .eips
        .state()
        .iter()
        .filter(|o| o.name_any() != eip.name_any())
        .filter_map(|o| o.spec.v4ip.parse().ok())
        .collect();
    let mut lease = ctx.ipam.allocate(subnet, key, request)?;
    if held || !eip.spec.v4ip.is_empty() {
        return Ok(lease);
    }
    for _ in 0..MAX_PICKS {
        if !lease.ips().iter().any(|ip| wanted_by_others.contains(ip)) {
            break;
        }
        ctx.ipam.release(key);
        lease = ctx.ipam.allocate(subnet, key, request)?;
    }
    Ok(lease)
}

async fn cleanup_eip(eip: &IptablesEIP, ctx: &Context) -> Result<Action, Error> {
    let name = eip.name_any();
    if let Some(lease) = ctx.ipam.release(&eip_key(&name)) {
        tracing::info!(eip = %name, address = ?lease.v4, "EIP deleted; address released");
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eip(name: &str, v4ip: &str, second: i64, validated: Option<bool>) -> Arc<IptablesEIP> {
        let mut e = IptablesEIP::new(
            name,
            crds::IptablesEIPSpec {
                nat_gw_dp: "gw".into(),
                v4ip: v4ip.into(),
                ..Default::default()
            },
        );
        e.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(second).unwrap(),
        ));
        if let Some(ok) = validated {
            let mut status = crds::IptablesEIPStatus::default();
            status
                .conditions
                .push(status::condition(VALIDATED, ok, "x", "", None));
            e.status = Some(status);
        }
        Arc::new(e)
    }

    #[test]
    fn eip_keys_never_look_like_an_ip_record() {
        let key = eip_key("e1");
        assert!(is_eip_key(&key));
        assert!(!is_eip_key(&crds::naming::lsp_name(
            "p",
            "ns",
            "net.ns.ovn"
        )));
        // IP CR names are DNS subdomains: no '/'.
        assert!(key.contains('/'));
    }

    #[test]
    fn the_rebuild_loads_accepted_eips_first_and_skips_refused_and_orphaned_ones() {
        let gw = Arc::new(VpcNatGateway::new("gw", crds::VpcNatGatewaySpec::default()));
        let eips = [
            eip("a-copycat", "172.18.0.50", 1, None),
            eip("z-holder", "172.18.0.50", 1, Some(true)),
            eip("refused", "172.18.0.51", 0, Some(false)),
            eip("dynamic-not-yet", "", 0, None),
        ];
        let mut orphan = (*eip("orphan", "172.18.0.52", 0, Some(true))).clone();
        orphan.spec.nat_gw_dp = "gone".into();
        let mut all = eips.to_vec();
        all.push(Arc::new(orphan));
        let records = eip_records(&all, &[gw]);
        let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, [eip_key("z-holder"), eip_key("a-copycat")]);
        assert!(
            records
                .iter()
                .all(|r| r.subnet == "ovn-vpc-external-network")
        );
    }
}
