//! The gRPC service the `kube-ovn` plugin calls, and the unix-socket server around it.
//!
//! ADD: wait for the controller's allocation (watch), read it ([`Allocation`]), make a plan
//! ([`plan::plan`]), apply it ([`Applier::apply`]: veth, OVS port, `ovn-installed`; undone on
//! failure), answer. DEL removes the port and the veth and succeeds when they are already gone.
//! ADD and DEL of one attachment (container id, interface) are ordered: a DEL stops an ADD
//! still waiting for its allocation, waits for one already plumbing, and then removes what it
//! made; an ADD runs to its end (or its undo) even when the plugin goes away mid-way.
//! Every verb fails with a [`DaemonError`]; it becomes a gRPC status here, at the edge.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni::api::proto::cni_daemon_server::{CniDaemon, CniDaemonServer};
use cni::api::proto::{
    AddResponse, AttachmentRequest, CheckResponse, DelResponse, GcRequest, GcResponse,
    StatusRequest, StatusResponse,
};
use ipnet::IpNet;
use ovn_api::rpc::Client;
use tonic::{Request, Response, Status};

use crate::allocation::Allocation;
use crate::apply::Applier;
use crate::error::DaemonError;
use crate::interface;
use crate::metrics::{AddPhase, Metrics, Verb};
use crate::netns::Netns;
use crate::ovs::{self, keys};
use crate::plan;
use crate::pods::PodSource;
use crds::MacAddr;

/// Settings of the CNI service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Integration bridge.
    pub bridge: String,
    /// Pod interface MTU unless the NAD sets one.
    pub mtu: u32,
    /// Turn off TX checksum offload in pods (userspace datapath).
    pub disable_tx_checksum: bool,
    /// Longest wait for the controller's allocation.
    pub allocation_timeout: Duration,
    /// Longest wait for ovn-controller's `ovn-installed`.
    pub install_timeout: Duration,
}

/// The CNI service.
#[derive(Debug)]
pub struct CniService<P> {
    pods: Arc<P>,
    ovs: Arc<Client>,
    host: Netns,
    config: ServiceConfig,
    metrics: Arc<Metrics>,
    slots: Slots,
    /// This service, for the tasks an ADD runs in (set by [`CniService::new`]).
    me: std::sync::Weak<Self>,
}

/// One attachment's order of ADD and DEL.
#[derive(Debug)]
struct Slot {
    /// Held while an ADD plumbs and while a DEL removes.
    busy: tokio::sync::Mutex<()>,
    /// How many DELs have come for the attachment: an ADD that started before one gives up.
    dels: tokio::sync::watch::Sender<u64>,
    /// The OVS port of a plumbed attachment, to put back if the database loses it.
    port: std::sync::Mutex<Option<ovs::PortSpec>>,
}

impl Slot {
    fn set_port(&self, port: Option<ovs::PortSpec>) {
        *self
            .port
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = port;
    }

    fn port(&self) -> Option<ovs::PortSpec> {
        self.port
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What [`CniService::restore`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The node's configuration was lost and written again (why).
    pub reinitialised: Option<String>,
    /// Ports of plumbed attachments put back.
    pub ports: u32,
}

/// The attachments with an ADD or DEL under way, or plumbed and not yet deleted.
#[derive(Debug, Default)]
struct Slots(std::sync::Mutex<std::collections::HashMap<(String, String), Arc<Slot>>>);

impl Slots {
    fn get(&self, container_id: &str, ifname: &str) -> Arc<Slot> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry((container_id.to_owned(), ifname.to_owned()))
            .or_insert_with(|| {
                Arc::new(Slot {
                    busy: tokio::sync::Mutex::new(()),
                    dels: tokio::sync::watch::Sender::new(0),
                    port: std::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    /// Forgets the attachment once it has no port and nothing else uses its slot (after its
    /// DEL, or a failed ADD); whichever of a concurrent ADD and DEL ends last forgets it.
    fn forget(&self, container_id: &str, ifname: &str, slot: Arc<Slot>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The map's reference and `slot`: no ADD or DEL is waiting on it.
        if Arc::strong_count(&slot) <= 2 && slot.port().is_none() {
            map.remove(&(container_id.to_owned(), ifname.to_owned()));
        }
    }

    /// The attachments (container id, ifname) with a plumbed port.
    fn plumbed(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, slot)| slot.port().is_some())
            .map(|(key, _)| key.clone())
            .collect()
    }

    fn all(&self) -> Vec<Arc<Slot>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

impl<P: PodSource> CniService<P> {
    /// A service using `pods` for allocations, `ovs` for the node's database and `host` (the
    /// node's network namespace, where ovs-vswitchd sees the host ends of the veths), recording
    /// into `metrics`.
    pub fn new(
        pods: Arc<P>,
        ovs: Arc<Client>,
        host: Netns,
        config: ServiceConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            pods,
            ovs,
            host,
            config,
            metrics,
            slots: Slots::default(),
            me: me.clone(),
        })
    }

    /// How many attachments the service is tracking (under way, or plumbed and not deleted).
    pub fn tracked_attachments(&self) -> usize {
        self.slots.len()
    }

    /// The metrics this service records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Records one operation's latency and result, and turns the result into the gRPC answer.
    fn answer<T>(
        &self,
        verb: Verb,
        started: Instant,
        result: Result<T, DaemonError>,
    ) -> Result<Response<T>, Status> {
        let code = result.as_ref().err().map(DaemonError::cni_code);
        self.metrics.observe_op(verb, code, started.elapsed());
        result.map(Response::new).map_err(DaemonError::into_status)
    }

    /// The node as [`Applier`] changes it.
    fn applier(&self) -> Applier<'_> {
        Applier {
            host: &self.host,
            ovs: &self.ovs,
            bridge: &self.config.bridge,
            install_timeout: self.config.install_timeout,
            metrics: &self.metrics,
        }
    }
}

fn describe(r: &AttachmentRequest, verb: &str) -> String {
    format!(
        "{verb} {}/{} {} (container {})",
        r.pod_namespace, r.pod_name, r.ifname, r.container_id
    )
}

/// Checks a request from the plugin: the daemon does not trust its client's validation.
fn validate(r: &AttachmentRequest, verb: &str) -> Result<(), DaemonError> {
    let bad = |reason: String| DaemonError::InvalidRequest {
        what: describe(r, verb),
        reason,
    };
    if r.pod_name.is_empty() || r.pod_namespace.is_empty() {
        return Err(bad("pod name and namespace are required".into()));
    }
    if r.container_id.is_empty() {
        return Err(bad("container id is required".into()));
    }
    cni::env::validate_ifname(&r.ifname).map_err(|e| bad(format!("interface name: {e}")))?;
    cni::env::validate_pod_uid(&r.pod_uid).map_err(|e| bad(format!("pod UID: {e}")))?;
    if verb != "DEL" && !r.netns.starts_with('/') {
        return Err(bad(format!("netns {:?} must be an absolute path", r.netns)));
    }
    if r.provider.is_empty() {
        return Err(DaemonError::InvalidConfig {
            what: describe(r, verb),
            reason: "provider is empty".into(),
        });
    }
    Ok(())
}

impl<P: PodSource> CniService<P> {
    async fn do_add(&self, r: &AttachmentRequest) -> Result<AddResponse, DaemonError> {
        validate(r, "ADD")?;
        let slot = self.slots.get(&r.container_id, &r.ifname);
        let result = self.add_in(r, &slot).await;
        // Nothing plumbed (a failure, IPAM only): nothing to remember.
        self.slots.forget(&r.container_id, &r.ifname, slot);
        result
    }

    async fn add_in(&self, r: &AttachmentRequest, slot: &Slot) -> Result<AddResponse, DaemonError> {
        let what = describe(r, "ADD");
        let mut dels = slot.dels.subscribe();
        let seen = *dels.borrow_and_update();
        let superseded = || DaemonError::Superseded { what: what.clone() };
        let phase = Instant::now();
        let annotations = tokio::select! {
            a = self.pods.wait_allocated(
                &r.pod_namespace,
                &r.pod_name,
                &r.provider,
                &r.ifname,
                self.config.allocation_timeout,
            ) => a,
            _ = dels.changed() => return Err(superseded()),
        };
        let wait_allocation = phase.elapsed();
        self.metrics
            .observe_phase(AddPhase::WaitAllocation, wait_allocation);
        let annotations = annotations.map_err(|source| DaemonError::NotAllocated {
            what: what.clone(),
            source: Box::new(source),
        })?;
        // The attachment's provider as the controller resolved it: `<p>.<ifname>` when the pod
        // attaches this NAD more than once.
        let (provider, element) = crds::attachment::provider_of_interface(
            &annotations,
            &r.pod_namespace,
            &r.provider,
            &r.ifname,
        );
        let alloc = Allocation::from_annotations(&annotations, &provider, element.as_ref())
            .map_err(|source| DaemonError::Allocation {
                what: what.clone(),
                source,
            })?;
        plan::check_static_requests(r, &alloc).map_err(|reason| DaemonError::InvalidConfig {
            what: what.clone(),
            reason,
        })?;
        let subnet_mtu = if r.mtu == 0 {
            self.pods.subnet_mtu(&alloc.allocated.logical_switch).await
        } else {
            None
        };
        let mtu = plan::pod_mtu(r.mtu, subnet_mtu, self.config.mtu);
        let node = plan::Node {
            bridge: &self.config.bridge,
            disable_tx_checksum: self.config.disable_tx_checksum,
        };
        let plan = plan::plan(&alloc, r, mtu, node);
        let Some(attach) = &plan.attach else {
            return Ok(plan.response);
        };
        self.remove_predecessors(r).await?;
        let _busy = slot.busy.lock().await;
        if *slot.dels.borrow() != seen {
            return Err(superseded());
        }
        let applied = self.applier().apply(attach, &what).await?;
        slot.set_port(Some(attach.port.clone()));
        // The phase timings (µs) per attachment, for the one slow pod that a histogram hides;
        // plumbing = the kernel part (`kernel_us`: setup + veth + ethtool + configure +
        // handback) + the OVS port transaction.
        let (port, steps) = (&attach.port, applied.steps);
        tracing::info!(pod = %format!("{}/{}", r.pod_namespace, r.pod_name), ifname = %r.ifname,
            port = %port.name, lsp = %port.iface_id, ips = %port.ips,
            wait_allocation_us = micros(wait_allocation), plumbing_us = micros(applied.plumbing),
            kernel_us = micros(applied.kernel), setup_us = micros(steps.setup),
            veth_us = micros(steps.veth), ethtool_us = micros(steps.ethtool),
            configure_us = micros(steps.configure), handback_us = micros(steps.handback),
            wait_installed_us = micros(applied.wait_installed),
            "attachment added");
        Ok(plan.response)
    }

    async fn do_check(&self, r: &AttachmentRequest) -> Result<(), DaemonError> {
        let what = describe(r, "CHECK");
        validate(r, "CHECK")?;
        let prev: serde_json::Value =
            serde_json::from_str(&r.prev_result_json).map_err(|e| DaemonError::Decode {
                what: what.clone(),
                reason: format!("prevResult is not valid JSON: {e}"),
            })?;
        let mismatch = |reason: String| DaemonError::CheckMismatch {
            what: what.clone(),
            reason,
        };
        let mut want_addrs: Vec<IpNet> = prev["ips"]
            .as_array()
            .map(|ips| {
                ips.iter()
                    .filter_map(|ip| ip["address"].as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        want_addrs.sort();
        if r.ipam_only {
            return Ok(());
        }
        let netns = Netns::open(Path::new(&r.netns)).map_err(|e| DaemonError::Interface {
            what: what.clone(),
            source: e.into(),
        })?;
        let seen = interface::observe(&netns, &r.ifname)
            .await
            .map_err(|e| mismatch(e.to_string()))?;
        if seen.addresses != want_addrs {
            return Err(mismatch(format!(
                "addresses are {:?}, prevResult has {want_addrs:?}",
                seen.addresses
            )));
        }
        let want_mac = prev["interfaces"]
            .as_array()
            .and_then(|ifs| ifs.iter().find(|i| i["name"].as_str() == Some(&r.ifname)))
            .and_then(|i| i["mac"].as_str()?.parse::<MacAddr>().ok());
        if want_mac.is_some() && seen.mac.map(MacAddr) != want_mac {
            return Err(mismatch(format!(
                "MAC is {}, prevResult has {}",
                seen.mac.map(|m| MacAddr(m).to_string()).unwrap_or_default(),
                want_mac.map(|m| m.to_string()).unwrap_or_default()
            )));
        }
        let host = crate::naming::host_ifname(&r.container_id, &r.ifname);
        let installed = self.ovs.replica().table("Interface").is_some_and(|t| {
            t.by_name(&host)
                .any(|row| row.external_id(keys::OVN_INSTALLED) == Some("true"))
        });
        if !installed {
            return Err(mismatch(format!(
                "OVS interface {host} is missing or not installed by ovn-controller"
            )));
        }
        Ok(())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[tonic::async_trait]
impl<P: PodSource> CniDaemon for CniService<P> {
    async fn add(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<AddResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        // In a task of its own: a plugin that goes away (killed by the runtime's timeout) must
        // not cut an ADD off between its steps and its undo.
        let result = match self.me.upgrade() {
            Some(me) => tokio::spawn(async move { me.do_add(&r).await })
                .await
                .unwrap_or_else(|e| {
                    Err(DaemonError::NotAvailable {
                        reason: format!("the ADD task failed: {e}"),
                    })
                }),
            None => Err(DaemonError::NotAvailable {
                reason: "the service is shutting down".into(),
            }),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "ADD failed");
        }
        self.answer(Verb::Add, started, result)
    }

    async fn del(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<DelResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self.do_del(&r).await.map(|()| DelResponse {});
        self.answer(Verb::Del, started, result)
    }

    async fn check(
        &self,
        request: Request<AttachmentRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        let r = request.into_inner();
        let result = self.do_check(&r).await.map(|()| CheckResponse {});
        self.answer(Verb::Check, started, result)
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let started = Instant::now();
        let result = self.do_status();
        self.answer(Verb::Status, started, result)
    }

    async fn gc(&self, request: Request<GcRequest>) -> Result<Response<GcResponse>, Status> {
        let started = Instant::now();
        let result = self.do_gc(request.into_inner()).await;
        self.answer(Verb::Gc, started, result)
    }
}

impl<P: PodSource> CniService<P> {
    async fn do_del(&self, r: &AttachmentRequest) -> Result<(), DaemonError> {
        validate(r, "DEL")?;
        let slot = self.slots.get(&r.container_id, &r.ifname);
        // An ADD still waiting for its allocation gives up; one plumbing finishes first.
        slot.dels.send_modify(|n| *n += 1);
        let removed = if r.ipam_only {
            // Addresses are released by the controller when the pod goes; nothing on the node.
            Ok(())
        } else {
            let _busy = slot.busy.lock().await;
            slot.set_port(None);
            self.applier()
                .remove(&r.container_id, &r.ifname)
                .await
                .map_err(|errors| DaemonError::Teardown {
                    what: describe(r, "DEL"),
                    errors,
                })
        };
        self.slots.forget(&r.container_id, &r.ifname, slot);
        removed
    }

    /// Whether this node can plumb attachments: a session to the local Open vSwitch database
    /// and the integration bridge in it. The admin endpoint's `/healthz` and `/readyz`.
    pub fn health(&self) -> Result<(), String> {
        self.do_status().map(|_| ()).map_err(|e| e.to_string())
    }

    /// The admin endpoint: this service's metrics and [`CniService::health`].
    pub fn admin_routes(self: &Arc<Self>) -> crds::admin::Routes {
        let (metrics, me) = (self.metrics.clone(), Arc::downgrade(self));
        let check: crds::admin::Check = Arc::new(move || match me.upgrade() {
            Some(service) => service.health(),
            None => Err("the CNI service has stopped".into()),
        });
        crds::admin::Routes {
            metrics: Arc::new(move || metrics.render()),
            healthz: check.clone(),
            readyz: check,
        }
    }

    fn do_status(&self) -> Result<StatusResponse, DaemonError> {
        let Some(remote) = self.ovs.current_remote() else {
            return Err(DaemonError::NotAvailable {
                reason: "kube-ovn-daemon has no session to the local Open vSwitch database".into(),
            });
        };
        if !ovs::bridge_exists(&self.ovs, &self.config.bridge) {
            return Err(DaemonError::NotAvailable {
                reason: format!(
                    "integration bridge {} does not exist in {remote}",
                    self.config.bridge
                ),
            });
        }
        Ok(StatusResponse {
            detail: format!(
                "connected to {remote}; bridge {} present",
                self.config.bridge
            ),
        })
    }

    async fn do_gc(&self, request: GcRequest) -> Result<GcResponse, DaemonError> {
        if request.provider.is_empty() {
            return Err(DaemonError::InvalidConfig {
                what: "GC".into(),
                reason: "the request names no network (provider): CNI GC is per network".into(),
            });
        }
        let valid: Vec<(String, String)> = request
            .valid
            .into_iter()
            .map(|v| (v.container_id, v.ifname))
            .collect();
        let provider = request.provider;
        let stale = self.attachments(|ids, cid, ifname| {
            port_of_network(ids, &provider) && !valid.iter().any(|(c, i)| c == cid && i == ifname)
        });
        let removed = self
            .remove_all(&stale)
            .await
            .map_err(|errors| DaemonError::Teardown {
                what: "GC".into(),
                errors,
            })?;
        Ok(GcResponse { removed })
    }
}

impl<P: PodSource> CniService<P> {
    /// Our attachments (container id, ifname) on this node that `select` picks, given the
    /// port's `external_ids`.
    fn attachments(
        &self,
        select: impl Fn(&std::collections::BTreeMap<&str, &str>, &str, &str) -> bool,
    ) -> Vec<(String, String)> {
        let replica = self.ovs.replica();
        let Some(ifaces) = replica.table("Interface") else {
            return Vec::new();
        };
        ifaces
            .by_external_id(
                crds::naming::EXTERNAL_ID_VENDOR.0,
                crds::naming::EXTERNAL_ID_VENDOR.1,
            )
            .filter_map(|row| {
                let ids = ovs::external_ids(row.get("external_ids"));
                let (cid, ifname) = (*ids.get(keys::CONTAINER_ID)?, *ids.get(keys::IFNAME)?);
                select(&ids, cid, ifname).then(|| (cid.to_owned(), ifname.to_owned()))
            })
            .collect()
    }

    async fn remove_all(&self, attachments: &[(String, String)]) -> Result<u32, Vec<String>> {
        let mut errors = Vec::new();
        let mut removed = 0;
        for (cid, ifname) in attachments {
            let slot = self.slots.get(cid, ifname);
            let result = {
                let _busy = slot.busy.lock().await;
                slot.set_port(None);
                self.applier().remove(cid, ifname).await
            };
            self.slots.forget(cid, ifname, slot);
            match result {
                Ok(()) => removed += 1,
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(removed)
        } else {
            Err(errors)
        }
    }

    /// Removes every attachment this node's daemon plumbed: on uninstall, so no pod keeps an
    /// interface of ours. The veths go first, by netlink alone (deleting the host end takes
    /// the pod's interface with it): `helm uninstall` stops the Open vSwitch pod at the same
    /// time, so the database may be gone already. Then the OVS ports, as at a DEL, given
    /// `ovs_budget` (without a database they stay in its file, which uninstall leaves on
    /// purpose). The attachments are those the database showed last and those this run knows
    /// (added, or adopted at start). Returns how many veths went, and what failed.
    pub async fn remove_every_attachment(
        &self,
        ovs_budget: std::time::Duration,
    ) -> (u32, Vec<String>) {
        let mut all = self.attachments(|_, _, _| true);
        for key in self.slots.plumbed() {
            if !all.contains(&key) {
                all.push(key);
            }
        }
        let mut removed = 0;
        let mut errors = Vec::new();
        for (cid, ifname) in &all {
            let host_ifname = crate::naming::host_ifname(cid, ifname);
            match interface::unplumb(&self.host, &host_ifname).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => errors.push(format!("{host_ifname}: {e}")),
            }
        }
        match tokio::time::timeout(ovs_budget, self.remove_all(&all)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => errors.extend(e),
            Err(_) => errors.push(format!(
                "the Open vSwitch database did not answer within {ovs_budget:?}: ports left in it"
            )),
        }
        (removed, errors)
    }

    /// Takes over the attachments an earlier run of the daemon plumbed (their ports in the
    /// database), so [`CniService::restore`] knows them too. Returns how many.
    pub fn adopt_plumbed(&self) -> usize {
        let ports: Vec<ovs::PortSpec> = {
            let replica = self.ovs.replica();
            let Some(ifaces) = replica.table("Interface") else {
                return 0;
            };
            ifaces
                .by_external_id(
                    crds::naming::EXTERNAL_ID_VENDOR.0,
                    crds::naming::EXTERNAL_ID_VENDOR.1,
                )
                .filter_map(|row| {
                    let ids = ovs::external_ids(row.get("external_ids"));
                    let get = |k: &str| ids.get(k).map(|v| (*v).to_owned());
                    Some(ovs::PortSpec {
                        bridge: self.config.bridge.clone(),
                        name: row.get("name")?.as_set().first()?.as_str()?.to_owned(),
                        iface_id: get(keys::IFACE_ID)?,
                        pod_name: get(keys::POD_NAME)?,
                        pod_namespace: get(keys::POD_NAMESPACE)?,
                        pod_uid: get(keys::POD_UID).unwrap_or_default(),
                        netns: get(keys::POD_NETNS).unwrap_or_default(),
                        ips: get(keys::IP).unwrap_or_default(),
                        container_id: get(keys::CONTAINER_ID)?,
                        ifname: get(keys::IFNAME)?,
                        provider: get(keys::PROVIDER).unwrap_or_default(),
                    })
                })
                .collect()
        };
        for port in &ports {
            let slot = self.slots.get(&port.container_id, &port.ifname);
            if slot.port().is_none() {
                slot.set_port(Some(port.clone()));
            }
        }
        ports.len()
    }

    /// Puts the node back as it was initialised and plumbed after the local Open vSwitch
    /// database lost it (an `ovs-ovn` restart on a fresh `conf.db`, a bridge deleted by hand):
    /// runs node init again when [`ovs::node_drift`] finds a difference, then adds back the OVS
    /// port of every attachment this daemon plumbed and has not deleted. Idempotent; the daemon
    /// runs it every few seconds (ports of an earlier run count once [`CniService::adopt_plumbed`]
    /// took them over at start).
    pub async fn restore(&self, node: &ovs::NodeConfig) -> Result<Restored, ovs::OvsError> {
        let mut done = Restored::default();
        if let Some(drift) = ovs::node_drift(&self.ovs, node) {
            tracing::warn!(%drift, bridge = %node.bridge,
                "the node's Open vSwitch configuration was lost; initialising it again");
            ovs::init_node(&self.ovs, node).await?;
            done.reinitialised = Some(drift);
        }
        for slot in self.slots.all() {
            // An ADD or DEL under way owns the attachment now.
            let Ok(_busy) = slot.busy.try_lock() else {
                continue;
            };
            let Some(port) = slot.port() else {
                continue;
            };
            let present = self
                .ovs
                .replica()
                .table("Interface")
                .is_some_and(|t| t.by_name(&port.name).next().is_some());
            if !present {
                ovs::add_port(&self.ovs, &port).await?;
                tracing::info!(port = %port.name, lsp = %port.iface_id, "port restored");
                done.ports += 1;
            }
        }
        Ok(done)
    }

    /// One sweep: removes ports of pods that no longer exist, and of pods recreated under the
    /// same name since (the port's `pod_uid` is not the UID of the pod now under the name).
    /// Returns how many were removed.
    pub async fn sweep(&self) -> Result<u32, Vec<String>> {
        type Owner = (String, String, Option<String>, String, String);
        let owners: Vec<Owner> = {
            let replica = self.ovs.replica();
            let Some(ifaces) = replica.table("Interface") else {
                return Ok(0);
            };
            ifaces
                .by_external_id(
                    crds::naming::EXTERNAL_ID_VENDOR.0,
                    crds::naming::EXTERNAL_ID_VENDOR.1,
                )
                .filter_map(|row| {
                    let ids = ovs::external_ids(row.get("external_ids"));
                    Some((
                        ids.get(keys::POD_NAMESPACE)?.to_string(),
                        ids.get(keys::POD_NAME)?.to_string(),
                        ids.get(keys::POD_UID).map(|u| (*u).to_owned()),
                        ids.get(keys::CONTAINER_ID)?.to_string(),
                        ids.get(keys::IFNAME)?.to_string(),
                    ))
                })
                .collect()
        };
        let mut gone = Vec::new();
        for (ns, name, port_uid, cid, ifname) in owners {
            // An API error keeps the port: only a confirmed absence removes anything.
            let Ok(found) = self.pods.uid(&ns, &name).await else {
                continue;
            };
            if port_is_stale(port_uid.as_deref(), found.as_deref()) {
                tracing::info!(pod = %format!("{ns}/{name}"), %ifname, %cid,
                    "removing the port of a pod that no longer exists");
                gone.push((cid, ifname));
            }
        }
        self.remove_all(&gone).await
    }

    /// Removes the ports a predecessor of the pod `r` names left for the same interface: a pod
    /// deleted and recreated under its name at once (another UID, another sandbox) whose DEL
    /// has not come (or never will). Its port binds the same logical switch port as the one
    /// being added, so it goes first.
    async fn remove_predecessors(&self, r: &AttachmentRequest) -> Result<(), DaemonError> {
        let stale = self.attachments(|ids, cid, ifname| {
            ifname == r.ifname && cid != r.container_id && is_predecessor_port(ids, r)
        });
        if stale.is_empty() {
            return Ok(());
        }
        tracing::info!(pod = %format!("{}/{}", r.pod_namespace, r.pod_name), ifname = %r.ifname,
            ports = stale.len(), "removing the port of the pod's predecessor (another pod UID)");
        self.remove_all(&stale)
            .await
            .map(|_| ())
            .map_err(|errors| DaemonError::Teardown {
                what: describe(r, "ADD"),
                errors,
            })
    }
}

/// Whether a port whose `pod_uid` is `port_uid` is stale when the pod now under its name has
/// UID `found` (`None`: no pod of that name). Ports without a UID, and pods whose UID is not
/// known, are matched by name alone.
fn port_is_stale(port_uid: Option<&str>, found: Option<&str>) -> bool {
    match (port_uid, found) {
        (_, None) => true,
        (Some(port), Some(pod)) => !port.is_empty() && !pod.is_empty() && port != pod,
        (None, Some(_)) => false,
    }
}

/// Whether the port with `ids` is one of an earlier pod object of the pod `r` names: same
/// namespace and name, both UIDs known and different.
fn is_predecessor_port(
    ids: &std::collections::BTreeMap<&str, &str>,
    r: &AttachmentRequest,
) -> bool {
    ids.get(keys::POD_NAMESPACE) == Some(&r.pod_namespace.as_str())
        && ids.get(keys::POD_NAME) == Some(&r.pod_name.as_str())
        && !r.pod_uid.is_empty()
        && ids
            .get(keys::POD_UID)
            .is_some_and(|u| !u.is_empty() && *u != r.pod_uid)
}

/// Whether the port with `ids` belongs to the network of `provider`. Ports written before the
/// `provider` key existed are recognised by their logical switch port name
/// (`<pod>.<namespace>.<provider>`, or `<provider>.<ifname>` for a NAD attached twice).
fn port_of_network(ids: &std::collections::BTreeMap<&str, &str>, provider: &str) -> bool {
    if let Some(p) = ids.get(keys::PROVIDER) {
        return *p == provider;
    }
    let (Some(pod), Some(ns), Some(lsp)) = (
        ids.get(keys::POD_NAME),
        ids.get(keys::POD_NAMESPACE),
        ids.get(keys::IFACE_ID),
    ) else {
        return false;
    };
    let Some(p) = lsp.strip_prefix(&format!("{pod}.{ns}.")) else {
        return false;
    };
    p == provider
        || ids
            .get(keys::IFNAME)
            .is_some_and(|ifname| p.strip_suffix(&format!(".{ifname}")) == Some(provider))
}

/// A failure to start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Socket setup failed.
    #[error("socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Something else than a socket is at the path.
    #[error("{path} exists and is not a socket; refusing to remove it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Binds the unix socket `path`: mode 0600, a stale socket from an earlier run replaced, a
/// non-socket file at the path refused. Bound before serving so clients never race the server.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    let sock_err = |source| ServeError::Socket {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path).map_err(sock_err)?,
        Ok(_) => {
            return Err(ServeError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(sock_err(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(sock_err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(sock_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(sock_err)?;
    Ok(listener)
}

/// Serves `service` on `listener` (from [`bind`]), refusing peers other than root or our own
/// user, until `shutdown` resolves.
pub async fn serve<P: PodSource>(
    listener: tokio::net::UnixListener,
    service: Arc<CniService<P>>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    use tokio_stream::StreamExt;
    let me = nix::unistd::geteuid().as_raw();
    let incoming =
        tokio_stream::wrappers::UnixListenerStream::new(listener).filter(move |conn| match conn {
            Ok(stream) => match stream.peer_cred() {
                Ok(cred) if cred.uid() == 0 || cred.uid() == me => true,
                Ok(cred) => {
                    tracing::warn!(
                        uid = cred.uid(),
                        "refused a CNI connection from a non-root peer"
                    );
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "refused a CNI connection without peer credentials");
                    false
                }
            },
            Err(_) => true,
        });
    tracing::info!("serving the kube-ovn CNI plugin");
    tonic::transport::Server::builder()
        .add_service(CniDaemonServer::from_arc(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<'a>(pairs: &[(&'a str, &'a str)]) -> std::collections::BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_port_is_stale_when_its_pod_is_gone_or_was_recreated_under_its_name() {
        let cases = [
            // (port's pod_uid, UID of the pod now under the name, stale)
            (Some("u1"), None, true),
            (None, None, true),
            (Some("u1"), Some("u1"), false),
            (Some("u1"), Some("u2"), true),
            // Written before `pod_uid`, or a source that does not know UIDs: by name.
            (None, Some("u2"), false),
            (Some(""), Some("u2"), false),
            (Some("u1"), Some(""), false),
        ];
        for (port, pod, want) in cases {
            assert_eq!(port_is_stale(port, pod), want, "port {port:?}, pod {pod:?}");
        }
    }

    #[test]
    fn a_predecessors_port_has_the_pods_name_and_another_uid() {
        let r = AttachmentRequest {
            pod_name: "p".into(),
            pod_namespace: "default".into(),
            pod_uid: "u2".into(),
            ..AttachmentRequest::default()
        };
        let port = |name: &'static str, uid: Option<&'static str>| {
            let mut pairs = vec![(keys::POD_NAME, name), (keys::POD_NAMESPACE, "default")];
            pairs.extend(uid.map(|u| (keys::POD_UID, u)));
            ids(&pairs)
        };
        assert!(is_predecessor_port(&port("p", Some("u1")), &r));
        assert!(!is_predecessor_port(&port("p", Some("u2")), &r), "its own");
        assert!(
            !is_predecessor_port(&port("q", Some("u1")), &r),
            "another pod"
        );
        assert!(
            !is_predecessor_port(&port("p", None), &r),
            "no UID: not known"
        );
        let unknown = AttachmentRequest {
            pod_uid: String::new(),
            ..r.clone()
        };
        assert!(!is_predecessor_port(&port("p", Some("u1")), &unknown));
    }

    #[test]
    fn a_request_whose_pod_uid_cannot_be_a_uid_is_refused_by_name() {
        let good = AttachmentRequest {
            pod_name: "p".into(),
            pod_namespace: "default".into(),
            pod_uid: "0b6f5c1e-7d2a-4c1e-9a43-3f0e6c1d2b7a".into(),
            container_id: "c1".into(),
            ifname: "net1".into(),
            netns: "/var/run/netns/x".into(),
            provider: "net-a.default.ovn".into(),
            ..AttachmentRequest::default()
        };
        assert!(validate(&good, "ADD").is_ok());
        let no_uid = AttachmentRequest {
            pod_uid: String::new(),
            ..good.clone()
        };
        assert!(validate(&no_uid, "ADD").is_ok(), "the UID is optional");
        for uid in ["a=b,c", "u 1", &"a".repeat(129)] {
            let bad = AttachmentRequest {
                pod_uid: uid.into(),
                ..good.clone()
            };
            let e = validate(&bad, "ADD").unwrap_err().to_string();
            assert!(e.contains("pod UID") && e.contains("default/p"), "{e}");
        }
    }

    #[test]
    fn a_port_belongs_to_the_network_its_provider_names() {
        let tagged = ids(&[(keys::PROVIDER, "net-a.default.ovn")]);
        assert!(port_of_network(&tagged, "net-a.default.ovn"));
        assert!(!port_of_network(&tagged, "net-b.default.ovn"));
        // Written before the `provider` key: recognised by the logical switch port's name.
        let legacy = ids(&[
            (keys::POD_NAME, "p.x"),
            (keys::POD_NAMESPACE, "default"),
            (keys::IFACE_ID, "p.x.default.net-a.default.ovn"),
            (keys::IFNAME, "net1"),
        ]);
        assert!(port_of_network(&legacy, "net-a.default.ovn"));
        assert!(!port_of_network(&legacy, "default.net-a.default.ovn"));
        assert!(!port_of_network(&legacy, "a.default.ovn"));
        let twice = ids(&[
            (keys::POD_NAME, "p"),
            (keys::POD_NAMESPACE, "default"),
            (keys::IFACE_ID, "p.default.net-a.default.ovn.net2"),
            (keys::IFNAME, "net2"),
        ]);
        assert!(port_of_network(&twice, "net-a.default.ovn"));
        assert!(!port_of_network(&ids(&[]), "net-a.default.ovn"));
    }
}
