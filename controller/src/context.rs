//! State shared by every reconciler.

use std::sync::Arc;

use crds::{NetworkAttachmentDefinition, Subnet, Vpc};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;

/// The name the controller reports Events and field ownership under.
pub const MANAGER: &str = "kube-ovn-controller";

/// Shared state: API client, NB client, the allocator and the caches.
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// OVN Northbound client with its replica.
    pub nb: Arc<crate::nb::Nb>,
    /// The address allocator (rebuilt from IP CRs at start).
    pub ipam: Arc<ipam::SharedIpam>,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// NADs, all namespaces.
    pub nads: Store<NetworkAttachmentDefinition>,
    /// Subnets.
    pub subnets: Store<Subnet>,
    /// VPCs.
    pub vpcs: Store<Vpc>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Allocator keys without an IP CR at the last GC (released if still so at the next).
    pub gc_suspects: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// The IP CR spec this controller last wrote per attachment key.
    pub written_ips: crate::ip::Written,
    /// Attachments allocated whose IP CR is being written (the GC leaves their leases alone).
    pub pending_ips: crate::ip::Pending,
    /// Attachments this controller is releasing (their record's deletion is ours, not a hand's).
    pub releasing_ips: crate::ip::Pending,
    /// One lock per attachment key, between a pod's reserve and the GC's release.
    pub attachment_locks: crate::ip::Locks,
    /// The namespaces each IP pool serves by default.
    pub pool_namespaces: crate::ippool::Namespaces,
    /// Consecutive failures per object, for growing retry delays.
    pub retries: crate::retry::Retries,
    /// Subnets whose spec changed, announced once [`Context::subnets`] holds them.
    pub subnet_changes: crate::run::SpecChanges<Subnet>,
    /// Vpcs whose spec changed, announced once [`Context::vpcs`] holds them.
    pub vpc_changes: crate::run::SpecChanges<Vpc>,
    /// VpcNatGateways and their NAT objects.
    pub nat: crate::nat_rules::NatCaches,
    /// Image of the NAT gateway pods.
    pub nat_gateway_image: String,
    /// MultiNetworkPolicies, once their controller runs (see
    /// [`crate::multi_network_policy::groups_selecting`]).
    pub policies: std::sync::OnceLock<kube::runtime::reflector::Store<crds::MultiNetworkPolicy>>,
    /// Tasks that feed this context (the caches' watches); they stop when the context is
    /// dropped, so a controller that stops (lost leadership, shutdown) leaves nothing running.
    background: Vec<tokio::task::AbortHandle>,
}

impl Drop for Context {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// A context over the given clients and caches; `metrics` reports `ipam`'s usage from now on.
    pub fn new(
        client: kube::Client,
        nb: Arc<crate::nb::Nb>,
        ipam: Arc<ipam::SharedIpam>,
        nads: Store<NetworkAttachmentDefinition>,
        subnets: Store<Subnet>,
        vpcs: Store<Vpc>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        metrics.watch_ipam(&ipam);
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.into(),
                instance: None,
            },
        );
        Self {
            client,
            nb,
            ipam,
            nads,
            subnets,
            vpcs,
            metrics,
            recorder,
            gc_suspects: Arc::default(),
            written_ips: crate::ip::Written::default(),
            pending_ips: crate::ip::Pending::default(),
            releasing_ips: crate::ip::Pending::default(),
            attachment_locks: crate::ip::Locks::default(),
            pool_namespaces: crate::ippool::Namespaces::default(),
            retries: crate::retry::Retries::default(),
            subnet_changes: tokio::sync::broadcast::Sender::new(1),
            vpc_changes: tokio::sync::broadcast::Sender::new(1),
            nat: crate::nat_rules::NatCaches::unwired(),
            nat_gateway_image: crate::options::DEFAULT_NAT_GATEWAY_IMAGE.to_owned(),
            policies: std::sync::OnceLock::new(),
            background: Vec::new(),
        }
    }

    /// Announces spec changes on these senders (the ones the caches feed, see
    /// [`crate::run`]).
    pub fn with_spec_changes(
        mut self,
        subnets: crate::run::SpecChanges<Subnet>,
        vpcs: crate::run::SpecChanges<Vpc>,
    ) -> Self {
        self.subnet_changes = subnets;
        self.vpc_changes = vpcs;
        self
    }

    /// Serves VpcNatGateways and their NAT objects from `nat`, with gateway pods of `image`.
    pub fn with_nat(mut self, nat: crate::nat_rules::NatCaches, image: String) -> Self {
        self.nat = nat;
        self.nat_gateway_image = image;
        self
    }

    /// Ties `tasks` to this context: they are aborted when it is dropped.
    pub fn own_tasks(mut self, tasks: impl IntoIterator<Item = tokio::task::AbortHandle>) -> Self {
        self.background.extend(tasks);
        self
    }

    /// Publishes an Event on `object` (best effort: a failed Event is logged, not fatal).
    pub async fn event(&self, object: &ObjectReference, warning: bool, reason: &str, note: String) {
        // The recorder folds Events with the same (reason, action, object) into one series and
        // keeps the first note, so a different message needs a different action: a digest of
        // the note keeps repeats of one message in one series and new messages visible.
        let digest = note.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: format!("{reason}-{:08x}", digest & 0xffff_ffff),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, object).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }
}
