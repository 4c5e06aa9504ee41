//! The agent's watches: one reflector per kind, each waking the agent on any event. The plan is
//! made from a snapshot of all stores, so the order of events does not matter
//! (level-triggered).
//!
//! Watched: the VpcNatGateway (by name), the agent's own Pod (by name, for `network-status`),
//! every Subnet, IptablesEIP, FIP/SNAT/DNAT rule and QoSPolicy. EIPs are watched whole and filtered by
//! `spec.natGwDp` in the plan: a rule's EIP may belong to another gateway, which the plan must
//! know to leave that rule alone. RBAC the gateway pod needs: get/list/watch on these kinds,
//! patch on the four `iptables-*` kinds' `status`.

use std::sync::Arc;

use crds::naming::NETWORK_STATUS_ANNOTATION;
use crds::{
    IptablesDnatRule, IptablesEIP, IptablesFIPRule, IptablesSnatRule, QoSPolicy, Subnet,
    VpcNatGateway,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;

use super::plan::{Inputs, NadRef};

/// The stores of every watched kind.
#[derive(Clone)]
pub struct Stores {
    gateway: Store<VpcNatGateway>,
    pod: Store<Pod>,
    subnets: Store<Subnet>,
    eips: Store<IptablesEIP>,
    fips: Store<IptablesFIPRule>,
    snats: Store<IptablesSnatRule>,
    dnats: Store<IptablesDnatRule>,
    qos: Store<QoSPolicy>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// What the watches select.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The VpcNatGateway's name.
    pub gateway: String,
    /// The agent's Pod.
    pub pod_name: String,
    /// Its namespace.
    pub pod_namespace: String,
}

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    wake: Arc<Notify>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
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
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    let task = tokio::spawn(async move {
        stream
            .for_each(|event| {
                match event {
                    Ok(_) => wake.notify_one(),
                    Err(e) => tracing::warn!(error = %e, kind = what, "watch error (retrying)"),
                }
                futures::future::ready(())
            })
            .await;
    });
    (reader, task)
}

/// Starts the watches; `wake` is notified on every event. The tasks run until aborted.
pub fn start(
    client: &Client,
    watched: &Watched,
    wake: Arc<Notify>,
) -> (Stores, Vec<tokio::task::JoinHandle<()>>) {
    let by_name = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
    let c = client.clone();
    let (gateway, t1) = watch(
        Api::all(c.clone()),
        by_name(&watched.gateway),
        "VpcNatGateway",
        wake.clone(),
    );
    let (pod, t2) = watch(
        Api::namespaced(c.clone(), &watched.pod_namespace),
        by_name(&watched.pod_name),
        "Pod",
        wake.clone(),
    );
    let all = watcher::Config::default;
    let (subnets, t3) = watch(Api::all(c.clone()), all(), "Subnet", wake.clone());
    let (eips, t4) = watch(Api::all(c.clone()), all(), "IptablesEIP", wake.clone());
    let (fips, t5) = watch(Api::all(c.clone()), all(), "IptablesFIPRule", wake.clone());
    let (snats, t6) = watch(Api::all(c.clone()), all(), "IptablesSnatRule", wake.clone());
    let (dnats, t7) = watch(Api::all(c.clone()), all(), "IptablesDnatRule", wake.clone());
    let (qos, t8) = watch(Api::all(c), all(), "QoSPolicy", wake);
    (
        Stores {
            gateway,
            pod,
            subnets,
            eips,
            fips,
            snats,
            dnats,
            qos,
        },
        vec![t1, t2, t3, t4, t5, t6, t7, t8],
    )
}

impl Stores {
    /// Waits until every store has its first full list.
    pub async fn ready(&self) -> bool {
        let all = tokio::join!(
            self.gateway.wait_until_ready(),
            self.pod.wait_until_ready(),
            self.subnets.wait_until_ready(),
            self.eips.wait_until_ready(),
            self.fips.wait_until_ready(),
            self.snats.wait_until_ready(),
            self.dnats.wait_until_ready(),
            self.qos.wait_until_ready(),
        );
        all.0.is_ok()
            && all.1.is_ok()
            && all.2.is_ok()
            && all.3.is_ok()
            && all.4.is_ok()
            && all.5.is_ok()
            && all.6.is_ok()
            && all.7.is_ok()
    }

    /// A snapshot as the plan's inputs.
    pub fn snapshot(
        &self,
        gateway: &str,
        lan: Option<&NadRef>,
        external: Option<&NadRef>,
    ) -> Inputs {
        let network_status = self.pod.state().first().and_then(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(NETWORK_STATUS_ANNOTATION).cloned())
        });
        Inputs {
            gateway: gateway.to_owned(),
            lan_network: lan.cloned(),
            external_network: external.cloned(),
            network_status,
            nat_gateway: self.gateway.state().into_iter().next(),
            subnets: self.subnets.state(),
            eips: self.eips.state(),
            fips: self.fips.state(),
            snats: self.snats.state(),
            dnats: self.dnats.state(),
            qos_policies: self.qos.state(),
        }
    }
}
