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
use crate::{gc, ip, leader, nad, nat_gateway, nb, pod, reconciler, subnet, vpc};

/// Knobs of a running controller.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// NB remotes.
    pub nb_remotes: String,
    /// Garbage collection interval.
    pub gc_interval: Duration,
    /// Concurrent reconciles per controller.
    pub workers: u16,
    /// Where reconciles, attachments, NB transactions and IPAM usage are reported.
    pub metrics: Arc<Metrics>,
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

fn cache<K>(api: Api<K>, what: &'static str) -> (Store<K>, impl std::future::Future<Output = ()>)
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
    let drive = async move {
        stream
            .for_each(|r| async {
                if let Err(e) = r {
                    tracing::warn!(error = %e, cache = what, "watch error");
                }
            })
            .await;
    };
    (reader, drive)
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
    let nb = Arc::new(
        nb::connect(&config.nb_remotes)
            .await?
            .with_metrics(config.metrics.clone()),
    );
    let (nads, nad_task) = cache(
        Api::<NetworkAttachmentDefinition>::all(client.clone()),
        "NetworkAttachmentDefinition",
    );
    let (subnets, subnet_task) = cache(Api::<Subnet>::all(client.clone()), "Subnet");
    let (vpcs, vpc_task) = cache(Api::<Vpc>::all(client.clone()), "Vpc");
    let mut tasks = Tasks(vec![
        tokio::spawn(nad_task).abort_handle(),
        tokio::spawn(subnet_task).abort_handle(),
        tokio::spawn(vpc_task).abort_handle(),
    ]);
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
    let ipam = Arc::new(ipam::SharedIpam::new(ipam::Ipam::new()));
    rebuild(&client, &ipam, &subnets).await?;
    let background = std::mem::take(&mut tasks.0);
    Ok(Arc::new(
        Context::new(
            client,
            nb,
            ipam,
            nads,
            subnets,
            vpcs,
            config.metrics.clone(),
        )
        .own_tasks(background),
    ))
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

/// Registers every valid Subnet, then loads every IP CR, into the allocator.
async fn rebuild(
    client: &kube::Client,
    ipam: &ipam::SharedIpam,
    subnets: &Store<Subnet>,
) -> Result<(), StartError> {
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
    let ips = Api::<IP>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let records = ips.iter().filter_map(|record| match ip::to_lease_record(record) {
        Ok(lease) => Some(lease),
        Err(e) => {
            tracing::warn!(ip = %record.name_any(), error = %e, "IP CR with an unreadable address skipped");
            None
        }
    });
    let report = ipam.rebuild(records);
    for rejected in &report.rejected {
        tracing::warn!(error = %rejected, "IP CR not loaded into the allocator");
    }
    tracing::info!(
        loaded = report.loaded,
        rejected = report.rejected.len(),
        "allocator rebuilt from IP CRs"
    );
    Ok(())
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
    let vpcs = reconciler::run(
        Controller::new(Api::<Vpc>::all(client.clone()), watcher::Config::default()),
        "vpc",
        vpc::reconcile,
        ctx.clone(),
        workers,
    );
    let subnets = reconciler::run(
        Controller::new(
            Api::<Subnet>::all(client.clone()),
            watcher::Config::default(),
        ),
        "subnet",
        subnet::reconcile,
        ctx.clone(),
        workers,
    );
    // One pod watch serves the pod controller's cache and trigger, slimmed before it is cached,
    // and wakes the GC at once when a pod with attachments is deleted.
    let (pod_store, pod_writer) = reflector::store();
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
        .applied_objects()
        .predicate_filter(pod::trigger_hash, PredicateConfig::default());
    // A Subnet's spec change (its `namespaces`, `allowDisablePortSecurity`) reaches the pods
    // attached to it: only generation changes, so its status counters trigger nothing.
    let subnet_specs = watcher(
        Api::<Subnet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(
        kube::runtime::predicates::generation,
        PredicateConfig::default(),
    );
    let attached = pod_store.clone();
    let pods = reconciler::run(
        Controller::for_stream(pod_events, pod_store)
            .watches_stream(subnet_specs, move |s: Subnet| {
                pod::attached_to(&attached, &s.name_any())
            }),
        "pod",
        pod::reconcile,
        ctx.clone(),
        workers,
    );
    // A NAD is re-checked when the Subnet of its provider, or that Subnet's Vpc, changes: their
    // `namespaces` decide whether the NAD is admitted.
    let nad_store = ctx.nads.clone();
    let by_subnet = move |s: Subnet| {
        nad::with_providers(&nad_store, &s.spec.provider.into_iter().collect::<Vec<_>>())
    };
    let (nad_store, subnet_store) = (ctx.nads.clone(), ctx.subnets.clone());
    let by_vpc = move |v: Vpc| {
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
        .watches(
            Api::<Subnet>::all(client.clone()),
            watcher::Config::default(),
            by_subnet,
        )
        .watches(
            Api::<Vpc>::all(client.clone()),
            watcher::Config::default(),
            by_vpc,
        ),
        "nad",
        nad::reconcile,
        ctx.clone(),
        workers,
    );
    let gateways = reconciler::run(
        Controller::new(
            Api::<crds::VpcNatGateway>::all(client.clone()),
            watcher::Config::default(),
        ),
        "vpc-nat-gateway",
        nat_gateway::reconcile,
        ctx.clone(),
        workers,
    );
    // IP CRs being deleted (by anyone): released, or restored for a live attachment.
    let ips = reconciler::run(
        ip::controller(client.clone()),
        "ip",
        ip::reconcile,
        ctx.clone(),
        workers,
    );
    tokio::select! {
        () = async { tokio::join!(vpcs, subnets, pods, nads, gateways, ips); } => {}
        () = gc_loop => {}
    }
}
