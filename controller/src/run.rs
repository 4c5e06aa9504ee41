//! Start-up and the controller loops.
//!
//! Order: connect to NB (replica primed), start the caches and wait for them, rebuild the
//! allocator from Subnets and IP CRs, collect garbage once, then reconcile.

use std::sync::Arc;
use std::time::Duration;

use crds::{IP, NetworkAttachmentDefinition, Subnet, Vpc};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use crate::context::Context;
use crate::metrics::Metrics;
use crate::{
    gc, ip, ippool, leader, multi_network_policy, nad, nat_gateway, nat_rules, nb, pod, reconciler,
    repair, security_group, subnet, vpc,
};

/// Knobs of a running controller.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// NB remotes.
    pub nb_remotes: String,
    /// TLS material for `ssl:` NB remotes ([`crate::options::Options::nb_tls`]).
    pub nb_tls: Option<ovn_api::TlsConfig>,
    /// Garbage collection interval.
    pub gc_interval: Duration,
    /// Concurrent reconciles per controller.
    pub workers: u16,
    /// Where reconciles, attachments, NB transactions and IPAM usage are reported.
    pub metrics: Arc<Metrics>,
    /// Image of the VPC NAT gateway pods (`--nat-gateway-image`).
    pub nat_gateway_image: String,
}

/// A failure before the controllers could start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// NB is unreachable or its schema lacks what we need.
    #[error(transparent)]
    Nb(#[from] nb::NbError),
    /// The API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A cache never became ready.
    #[error("cache of {0} did not become ready")]
    Cache(&'static str),
}

/// A cache of `K`, and the task that feeds it. With `changes`, every object whose generation
/// (its spec) changed is also sent there, after the cache holds it: a controller triggered by
/// it reads the new spec from the cache (a watch of its own could run ahead of the cache).
fn cache<K>(
    api: Api<K>,
    what: &'static str,
    changes: Option<SpecChanges<K>>,
) -> (Store<K>, impl std::future::Future<Output = ()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let mut generations = std::collections::HashMap::new();
    let drive = async move {
        stream
            .for_each(|r| {
                match r {
                    Ok(obj) => {
                        if let Some(tx) = &changes {
                            let generation = obj.meta().generation;
                            if generations.insert(obj.name_any(), generation) != Some(generation) {
                                // No receiver yet (before `run`) is fine: `run` starts with
                                // every object anyway.
                                let _ = tx.send(Arc::new(obj));
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, cache = what, "watch error"),
                }
                futures::future::ready(())
            })
            .await;
    };
    (reader, drive)
}

/// Where a cache announces spec changes ([`cache`]).
pub type SpecChanges<K> = tokio::sync::broadcast::Sender<Arc<K>>;

/// How many spec changes may wait for a slow receiver; past that it gets every cached object.
const SPEC_CHANGES_BUFFER: usize = 256;

/// The spec changes sent on `tx` from now on; a receiver that fell behind gets every object of
/// `store` instead of the ones it missed.
fn spec_changes<K>(
    tx: &SpecChanges<K>,
    store: Store<K>,
) -> impl futures::Stream<Item = Arc<K>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    use tokio::sync::broadcast::error::RecvError;
    futures::stream::unfold(tx.subscribe(), move |mut rx| {
        let store = store.clone();
        async move {
            match rx.recv().await {
                Ok(obj) => Some((vec![obj], rx)),
                Err(RecvError::Lagged(_)) => Some((store.state(), rx)),
                Err(RecvError::Closed) => None,
            }
        }
    })
    .flat_map(futures::stream::iter)
}

/// Tasks aborted on drop unless handed over: a failed start leaves no watch running.
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Builds the context: NB, caches (ready), allocator rebuilt from Subnets and IP CRs. The
/// caches' watch tasks belong to the context and stop when it is dropped.
pub async fn start(client: kube::Client, config: &RunConfig) -> Result<Arc<Context>, StartError> {
    config
        .metrics
        .set_readiness(crate::metrics::Readiness::Starting);
    let nb = Arc::new(
        nb::connect_with(&config.nb_remotes, config.nb_tls.clone())
            .await?
            .with_metrics(config.metrics.clone()),
    );
    let (nads, nad_task) = cache(
        Api::<NetworkAttachmentDefinition>::all(client.clone()),
        "NetworkAttachmentDefinition",
        None,
    );
    let subnet_changes = SpecChanges::<Subnet>::new(SPEC_CHANGES_BUFFER);
    let vpc_changes = SpecChanges::<Vpc>::new(SPEC_CHANGES_BUFFER);
    let (subnets, subnet_task) = cache(
        Api::<Subnet>::all(client.clone()),
        "Subnet",
        Some(subnet_changes.clone()),
    );
    let (vpcs, vpc_task) = cache(
        Api::<Vpc>::all(client.clone()),
        "Vpc",
        Some(vpc_changes.clone()),
    );
    let (nat, nat_tasks) = nat_rules::caches(&client);
    let mut tasks = Tasks(vec![
        tokio::spawn(nad_task).abort_handle(),
        tokio::spawn(subnet_task).abort_handle(),
        tokio::spawn(vpc_task).abort_handle(),
    ]);
    tasks.0.extend(
        nat_tasks
            .into_iter()
            .map(|t| tokio::spawn(t).abort_handle()),
    );
    for (store_ready, what) in [
        (
            nads.wait_until_ready().await.is_ok(),
            "NetworkAttachmentDefinition",
        ),
        (subnets.wait_until_ready().await.is_ok(), "Subnet"),
        (vpcs.wait_until_ready().await.is_ok(), "Vpc"),
    ] {
        if !store_ready {
            return Err(StartError::Cache(what));
        }
    }
    nat.wait_until_ready().await.map_err(StartError::Cache)?;
    let ipam = Arc::new(ipam::SharedIpam::new(ipam::Ipam::new()));
    // EIPs record their addresses in their own spec (`nat_rules`).
    let eips = nat_rules::eip_records(&nat.eips.state(), &nat.gateways.state());
    let (loaded, pools) = rebuild(&client, &ipam, &subnets, eips).await?;
    let background = std::mem::take(&mut tasks.0);
    let ctx = Context::new(
        client,
        nb,
        ipam,
        nads,
        subnets,
        vpcs,
        config.metrics.clone(),
    )
    .with_spec_changes(subnet_changes, vpc_changes)
    .with_nat(nat, config.nat_gateway_image.clone())
    .own_tasks(background);
    // The records the allocator holds are what this controller would write for them: a pod
    // whose record is unchanged costs no write after a restart.
    ctx.written_ips.seed(loaded);
    // Pods reconciled before their pool's first reconcile draw from it already.
    for (name, subnet, namespaces) in pools {
        ctx.pool_namespaces.set(&name, &subnet, &namespaces);
    }
    config
        .metrics
        .set_readiness(crate::metrics::Readiness::Serving(Arc::downgrade(&ctx.nb)));
    Ok(Arc::new(ctx))
}

/// Why a controller under leader election stopped.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    /// Start-up failed after leadership was won.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Leadership was lost: another replica may be reconciling already.
    #[error(transparent)]
    Lost(#[from] leader::LeaderError),
}

/// Waits for the Lease, then starts and runs the controllers while renewing it. Returns when
/// leadership is lost (or start-up fails): everything this replica ran is stopped by then (its
/// context, caches and NB client are dropped), so the caller can exit and let the Deployment
/// restart it as a follower.
pub async fn run_with_leader(
    client: kube::Client,
    config: RunConfig,
    lease: leader::LeaseConfig,
) -> Result<(), LeadError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &lease.namespace);
    leader::acquire(&api, &lease).await;
    let keep = leader::keep(&api, &lease);
    tokio::pin!(keep);
    // Renewal runs during start-up too: connecting to NB and priming the caches can take long.
    let ctx = tokio::select! {
        started = start(client, &config) => started?,
        lost = &mut keep => return Err(lost.into()),
    };
    tracing::info!(identity = %lease.identity, "leading: controllers started");
    tokio::select! {
        () = run(ctx, config) => Ok(()),
        lost = keep => Err(lost.into()),
    }
}

/// What the rebuild at start took: the IP CRs loaded (by key), and the pools registered (name,
/// Subnet, namespaces).
type Rebuilt = (
    Vec<(String, crds::IPSpec)>,
    Vec<(String, String, Vec<String>)>,
);

/// Registers every valid Subnet and IPPool, then loads every IP CR and the EIPs' `extra`
/// records, into the allocator.
async fn rebuild(
    client: &kube::Client,
    ipam: &ipam::SharedIpam,
    subnets: &Store<Subnet>,
    extra: Vec<ipam::Record>,
) -> Result<Rebuilt, StartError> {
    let all = subnets.state();
    for s in &all {
        if subnet::problems(s, &all).is_some() {
            continue;
        }
        let (Ok(nets), Ok(gws)) = (s.spec.networks(), s.spec.gateways()) else {
            continue;
        };
        let join = |v: Vec<String>| v.join(",");
        let spec = ipam::SubnetSpec::new(
            s.name_any(),
            join(nets.iter().map(ToString::to_string).collect()),
        )
        .with_gateway(join(gws.iter().map(ToString::to_string).collect()))
        .with_excludes(s.spec.exclude_ips.iter().cloned());
        if let Err(e) = ipam.update_subnet(spec) {
            tracing::warn!(subnet = %s.name_any(), error = %e, "subnet not registered at start");
        }
    }
    // Pools before records: a record's address may lie in a pool.
    let pools = Api::<crds::IPPool>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let mut registered = Vec::new();
    for pool in &pools {
        let spec = ipam::PoolSpec::new(pool.name_any(), pool.spec.ips.iter().cloned());
        if crds::Validate::validate(pool).is_err() || !ipam.has_subnet(&pool.spec.subnet) {
            continue;
        }
        match ipam.set_pool(&pool.spec.subnet, spec) {
            Ok(()) => registered.push((
                pool.name_any(),
                pool.spec.subnet.clone(),
                pool.spec.namespaces.clone(),
            )),
            Err(e) => {
                tracing::warn!(ippool = %pool.name_any(), error = %e, "IP pool not registered at start")
            }
        }
    }
    let ips = Api::<IP>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let records = ip::lease_records(&ips);
    let report = ipam.rebuild(records.chain(extra));
    for rejected in &report.rejected {
        tracing::warn!(error = %rejected, "IP CR not loaded into the allocator");
    }
    tracing::info!(
        loaded = report.loaded,
        rejected = report.rejected.len(),
        "allocator rebuilt from IP CRs"
    );
    // A record was loaded when the allocator holds its key in its subnet (a refused duplicate
    // key is another record's lease).
    let loaded = ips
        .into_iter()
        .filter(|ip| {
            ipam.lock()
                .get(&ip.name_any())
                .is_some_and(|l| l.subnet == ip.spec.subnet && l.ip_address() == ip.spec.ip_address)
        })
        .map(|ip| (ip.name_any(), ip.spec))
        .collect();
    Ok((loaded, registered))
}

/// Runs the controllers and the GC until the process is told to stop.
pub async fn run(ctx: Arc<Context>, config: RunConfig) {
    let client = ctx.client.clone();
    match gc::collect(&ctx).await {
        Ok(report) => tracing::info!(?report, "initial garbage collection"),
        Err(e) => tracing::warn!(error = %e, "initial garbage collection failed"),
    }
    let gc_ctx = ctx.clone();
    let deleted = Arc::new(tokio::sync::Notify::new());
    let gc_wakeup = deleted.clone();
    let gc_loop = async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(config.gc_interval) => {}
                () = gc_wakeup.notified() => {}
            }
            match gc::collect(&gc_ctx).await {
                Ok(r) if r != gc::Report::default() => {
                    tracing::info!(report = ?r, "garbage collected")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
        }
    };
    let workers = config.workers;
    // Rows NB loses (deleted behind our back, or a server that came back empty) are put back by
    // reconciling their owners; see `repair`.
    let (repairs, repaired) = repair::triggers();
    let repair_ctx = ctx.clone();
    let nb_updates = ctx.nb.subscribe();
    let repair_loop = async move { repair::watch(nb_updates, &repair_ctx.retries, repairs).await };
    let vpcs = reconciler::run(
        Controller::new(Api::<Vpc>::all(client.clone()), watcher::Config::default())
            .reconcile_on(repaired.vpcs.one)
            .reconcile_all_on(repaired.vpcs.all),
        "vpc",
        vpc::reconcile,
        ctx.clone(),
        workers,
    );
    let subnets = reconciler::run(
        Controller::new(
            Api::<Subnet>::all(client.clone()),
            watcher::Config::default(),
        )
        .reconcile_on(repaired.subnets.one)
        .reconcile_all_on(repaired.subnets.all),
        "subnet",
        subnet::reconcile,
        ctx.clone(),
        workers,
    );
    // One pod watch serves the pod controller's cache and trigger, slimmed before it is cached,
    // and wakes the GC at once when a pod with attachments is deleted.
    let (pod_store, pod_writer) = reflector::store();
    let pod_changes = multi_network_policy::PodChanges::default();
    let policies = multi_network_policy::run(
        ctx.clone(),
        pod_store.clone(),
        pod_changes.clone(),
        workers,
        config.gc_interval,
    );
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(pod::slim)
        .inspect({
            let ctx = ctx.clone();
            move |event| {
                if let Ok(watcher::Event::Delete(p)) = event
                    && pod::wants_networks(p)
                {
                    ctx.retries.reset(&crate::retry::key_of(p));
                    deleted.notify_one();
                }
            }
        })
        .reflect(pod_writer)
        .inspect({
            let changes = pod_changes.clone();
            move |event| {
                if let Ok(event) = event {
                    changes.observe(event);
                }
            }
        })
        .applied_objects()
        .predicate_filter(pod::trigger_hash, PredicateConfig::default());
    // A Subnet's spec change (its `namespaces`, `allowDisablePortSecurity`) reaches the pods
    // attached to it once the context's cache holds the new spec; its status counters (no new
    // generation) trigger nothing.
    let attached = pod_store.clone();
    let pods = reconciler::run(
        Controller::for_stream(pod_events, pod_store)
            .watches_shared_stream(
                spec_changes(&ctx.subnet_changes, ctx.subnets.clone()),
                move |s: Arc<Subnet>| pod::attached_to(&attached, &s.name_any()),
            )
            .reconcile_on(repaired.pods.one)
            .reconcile_all_on(repaired.pods.all),
        "pod",
        pod::reconcile,
        ctx.clone(),
        workers,
    );
    // A NAD is re-checked when the Subnet of its provider, or that Subnet's Vpc, changes (once
    // the context's caches hold the change): their `namespaces` decide whether it is admitted.
    let nad_store = ctx.nads.clone();
    let by_subnet = move |s: Arc<Subnet>| {
        nad::with_providers(
            &nad_store,
            &s.spec.provider.iter().cloned().collect::<Vec<_>>(),
        )
    };
    let (nad_store, subnet_store) = (ctx.nads.clone(), ctx.subnets.clone());
    let by_vpc = move |v: Arc<Vpc>| {
        let name = v.name_any();
        let providers: Vec<String> = subnet_store
            .state()
            .iter()
            .filter(|s| s.spec.vpc.as_deref() == Some(name.as_str()))
            .filter_map(|s| s.spec.provider.clone())
            .collect();
        nad::with_providers(&nad_store, &providers)
    };
    let nads = reconciler::run(
        Controller::new(
            Api::<NetworkAttachmentDefinition>::all(client.clone()),
            watcher::Config::default(),
        )
        .watches_shared_stream(
            spec_changes(&ctx.subnet_changes, ctx.subnets.clone()),
            by_subnet,
        )
        .watches_shared_stream(spec_changes(&ctx.vpc_changes, ctx.vpcs.clone()), by_vpc),
        "nad",
        nad::reconcile,
        ctx.clone(),
        workers,
    );
    let (gateways, nat_objects) = nat_controllers(&ctx, workers);
    // IP CRs being deleted (by anyone): released, or restored for a live attachment.
    let ips = reconciler::run(
        ip::controller(client.clone()),
        "ip",
        ip::reconcile,
        ctx.clone(),
        workers,
    );
    let security_groups = reconciler::run(
        Controller::new(
            Api::<crds::SecurityGroup>::all(client.clone()),
            watcher::Config::default(),
        )
        .reconcile_on(repaired.security_groups.one)
        .reconcile_all_on(repaired.security_groups.all),
        "security-group",
        security_group::reconcile,
        ctx.clone(),
        workers,
    );
    let ippools = reconciler::run(
        Controller::new(
            Api::<crds::IPPool>::all(client.clone()),
            watcher::Config::default(),
        ),
        "ippool",
        ippool::reconcile,
        ctx.clone(),
        workers,
    );
    tokio::select! {
        () = async { tokio::join!(vpcs, subnets, pods, nads, gateways, nat_objects, ips, security_groups, ippools, policies); } => {}
        () = gc_loop => {}
        // The NB client lives as long as the context: its update stream does not end first.
        () = async { repair_loop.await; std::future::pending::<()>().await } => {}
    }
}

/// The VpcNatGateway controller (woken by its pod, its StatefulSet and its Vpc's spec too) and
/// the controllers of the NAT objects (woken by changes of the objects they depend on).
fn nat_controllers(
    ctx: &Arc<Context>,
    workers: u16,
) -> (
    impl std::future::Future<Output = ()> + use<>,
    impl std::future::Future<Output = ()> + use<>,
) {
    use crds::{IptablesDnatRule, IptablesEIP, IptablesFIPRule, IptablesSnatRule, VpcNatGateway};
    use k8s_openapi::api::apps::v1::StatefulSet;
    use kube::runtime::reflector::ObjectRef;
    let client = ctx.client.clone();
    let ours =
        watcher::Config::default().labels(&format!("{}=true", nat_gateway::LABEL_NAT_GATEWAY));
    // The gateways whose spec names a changed object, as a watch mapper: `names(spec, name)`.
    let naming = |names: fn(&crds::VpcNatGatewaySpec, &str) -> bool| {
        let store = ctx.nat.gateways.clone();
        move |name: String| {
            store
                .state()
                .iter()
                .filter(|g| names(&g.spec, &name))
                .map(|g| ObjectRef::from(g.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let of_vpc = naming(|spec, vpc| spec.vpc == vpc);
    let by_vpc = move |v: Arc<Vpc>| of_vpc(v.name_any());
    // A Subnet appearing or changing (the LAN one, the external one) re-checks its gateways.
    let of_subnet = naming(|spec, subnet| {
        spec.subnet == subnet || nat_gateway::external_network(spec).1 == subnet
    });
    let by_subnet = move |s: Arc<Subnet>| of_subnet(s.name_any());
    // A QoSPolicy appearing or changing re-checks the gateways that name it (`spec.qosPolicy`).
    let of_policy = naming(|spec, policy| spec.qos_policy.as_deref() == Some(policy));
    let by_qos_policy = move |q: crds::qos_policy::QoSPolicy| of_policy(q.name_any());
    let gateways = reconciler::run(
        Controller::new(
            Api::<VpcNatGateway>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<StatefulSet>::namespaced(client.clone(), nat_gateway::NAMESPACE),
            ours.clone(),
        )
        .watches(
            Api::<Pod>::namespaced(client.clone(), nat_gateway::NAMESPACE),
            ours,
            |p: Pod| {
                p.labels()
                    .get(nat_gateway::LABEL_GATEWAY_NAME)
                    .map(|g| ObjectRef::new(g))
            },
        )
        .watches(
            Api::<crds::qos_policy::QoSPolicy>::all(client.clone()),
            watcher::Config::default(),
            by_qos_policy,
        )
        .watches_shared_stream(spec_changes(&ctx.vpc_changes, ctx.vpcs.clone()), by_vpc)
        .watches_shared_stream(
            spec_changes(&ctx.subnet_changes, ctx.subnets.clone()),
            by_subnet,
        ),
        "vpc-nat-gateway",
        nat_gateway::reconcile,
        ctx.clone(),
        workers,
    );
    let nat = &ctx.nat;
    let eips = reconciler::run(
        Controller::new(
            Api::<IptablesEIP>::all(client.clone()),
            watcher::Config::default(),
        )
        .reconcile_on(nat_rules::triggers(
            nat,
            nat.eips.clone(),
            nat_rules::eip_name,
        )),
        "iptables-eip",
        nat_rules::reconcile_eip,
        ctx.clone(),
        workers,
    );
    let fips = reconciler::run(
        Controller::new(
            Api::<IptablesFIPRule>::all(client.clone()),
            watcher::Config::default(),
        )
        .reconcile_on(nat_rules::triggers(
            nat,
            nat.fips.clone(),
            nat_rules::fip_eip,
        )),
        "iptables-fip-rule",
        nat_rules::reconcile_rule::<IptablesFIPRule>,
        ctx.clone(),
        workers,
    );
    let snats = reconciler::run(
        Controller::new(
            Api::<IptablesSnatRule>::all(client.clone()),
            watcher::Config::default(),
        )
        .reconcile_on(nat_rules::triggers(
            nat,
            nat.snats.clone(),
            nat_rules::snat_eip,
        )),
        "iptables-snat-rule",
        nat_rules::reconcile_rule::<IptablesSnatRule>,
        ctx.clone(),
        workers,
    );
    let dnats = reconciler::run(
        Controller::new(
            Api::<IptablesDnatRule>::all(client),
            watcher::Config::default(),
        )
        .reconcile_on(nat_rules::triggers(
            nat,
            nat.dnats.clone(),
            nat_rules::dnat_eip,
        )),
        "iptables-dnat-rule",
        nat_rules::reconcile_rule::<IptablesDnatRule>,
        ctx.clone(),
        workers,
    );
    (gateways, async move {
        tokio::join!(eips, fips, snats, dnats);
    })
}
