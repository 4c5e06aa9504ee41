//! Where the daemon learns what the controller allocated: the Pod's annotations.
//!
//! A trait at a real boundary (Kubernetes): [`KubePods`] watches the API server; [`StaticPods`]
//! holds annotations set directly, for node-level tests and for running the daemon without a
//! control plane. Both wait on change notifications, never by polling.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crds::naming::{AnnotationKey, annotation_key};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::sync::watch;

/// Waiting for a pod failed.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The controller did not allocate in time.
    #[error(
        "timed out after {}s waiting for kube-ovn-controller to allocate provider {provider} \
         for pod {namespace}/{name} (annotation {key} is not \"true\"); check the pod's events \
         (kubectl describe pod -n {namespace} {name}: a Warning such as AttachmentFailed, \
         LogicalSwitchRefused or NamespaceNotAdmitted says why) and that a Subnet has provider \
         {nad_provider} and admits namespace {namespace}",
        waited.as_secs()
    )]
    Timeout {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// The provider waited for (the attachment's: `<p>.<ifname>` for a NAD attached twice).
        provider: String,
        /// The NAD's provider, the one a Subnet binds.
        nad_provider: String,
        /// The annotation waited for.
        key: String,
        /// How long.
        waited: Duration,
    },
    /// The Kubernetes API failed.
    #[error("reading pod {namespace}/{name} from the API server: {source}")]
    Api {
        /// Pod namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// The client's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A source of pod annotations.
pub trait PodSource: Send + Sync + 'static {
    /// Waits until the attachment of the NAD with provider `nad_provider` on interface `ifname`
    /// is allocated (`<provider>.kubernetes.io/allocated` is `"true"`, the provider resolved from
    /// the pod's networks annotation by [`crds::attachment::provider_of_interface`], as the
    /// controller resolves it) and returns all of the pod's annotations then.
    fn wait_allocated(
        &self,
        namespace: &str,
        name: &str,
        nad_provider: &str,
        ifname: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, PodError>> + Send;

    /// The UID of the pod under that name, `None` when there is none (used by the sweep of
    /// stale ports: a port of another pod object of that name is its predecessor's). Empty
    /// when the source does not know UIDs.
    fn uid(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, PodError>> + Send;

    /// The `spec.mtu` of Subnet `subnet`, if it sets one.
    fn subnet_mtu(&self, subnet: &str) -> impl Future<Output = Option<u32>> + Send;
}

/// The provider of the attachment on `ifname` in `annotations`, and whether it is allocated.
fn resolve(
    annotations: &BTreeMap<String, String>,
    namespace: &str,
    nad_provider: &str,
    ifname: &str,
) -> (String, bool) {
    let (provider, _) =
        crds::attachment::provider_of_interface(annotations, namespace, nad_provider, ifname);
    let allocated = crds::attachment::is_allocated(annotations, &provider);
    (provider, allocated)
}

/// The timeout error for `provider` (the last one resolved).
fn timeout_error(
    namespace: &str,
    name: &str,
    provider: String,
    nad_provider: &str,
    waited: Duration,
) -> PodError {
    PodError::Timeout {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        key: annotation_key(&provider, AnnotationKey::Allocated),
        provider,
        nad_provider: nad_provider.to_owned(),
        waited,
    }
}

/// Pods from the Kubernetes API server.
#[derive(Clone)]
pub struct KubePods {
    client: kube::Client,
}

impl std::fmt::Debug for KubePods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubePods").finish_non_exhaustive()
    }
}

impl KubePods {
    /// Uses `client` for every lookup.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl PodSource for KubePods {
    async fn wait_allocated(
        &self,
        namespace: &str,
        name: &str,
        nad_provider: &str,
        ifname: &str,
        timeout: Duration,
    ) -> Result<BTreeMap<String, String>, PodError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        // The provider last resolved, for the timeout's message.
        let last = std::sync::Arc::new(Mutex::new(nad_provider.to_owned()));
        let condition = {
            let (last, namespace, nad_provider, ifname) = (
                last.clone(),
                namespace.to_owned(),
                nad_provider.to_owned(),
                ifname.to_owned(),
            );
            move |pod: Option<&Pod>| {
                let Some(a) = pod.and_then(|p| p.metadata.annotations.as_ref()) else {
                    return false;
                };
                let (provider, allocated) = resolve(a, &namespace, &nad_provider, &ifname);
                if let Ok(mut last) = last.lock() {
                    *last = provider;
                }
                allocated
            }
        };
        let waited = tokio::time::timeout(
            timeout,
            kube::runtime::wait::await_condition(api, name, condition),
        )
        .await;
        let api_err = |source: Box<dyn std::error::Error + Send + Sync>| PodError::Api {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        };
        match waited {
            Ok(Ok(Some(pod))) => Ok(pod.metadata.annotations.unwrap_or_default()),
            Ok(Ok(None)) => Err(api_err("the pod was deleted while waiting".into())),
            Ok(Err(e)) => Err(api_err(Box::new(e))),
            Err(_) => {
                let provider = last
                    .lock()
                    .map_or_else(|_| nad_provider.to_owned(), |p| p.clone());
                Err(timeout_error(
                    namespace,
                    name,
                    provider,
                    nad_provider,
                    timeout,
                ))
            }
        }
    }

    async fn uid(&self, namespace: &str, name: &str) -> Result<Option<String>, PodError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        api.get_metadata_opt(name)
            .await
            .map(|p| p.map(|p| p.metadata.uid.unwrap_or_default()))
            .map_err(|e| PodError::Api {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source: Box::new(e),
            })
    }

    async fn subnet_mtu(&self, subnet: &str) -> Option<u32> {
        // A failed lookup falls back to the daemon's MTU: a wrong MTU is better than no pod, and
        // the log says why.
        let api: Api<crds::Subnet> = Api::all(self.client.clone());
        match api.get_opt(subnet).await {
            Ok(found) => found.and_then(|s| s.spec.mtu),
            Err(e) => {
                tracing::warn!(%subnet, error = %e, "cannot read the Subnet's MTU; using the daemon's");
                None
            }
        }
    }
}

/// Pods whose annotations are set by the caller (node tests, standalone use).
#[derive(Debug)]
pub struct StaticPods {
    pods: Mutex<HashMap<(String, String), BTreeMap<String, String>>>,
    uids: Mutex<HashMap<(String, String), String>>,
    mtus: Mutex<HashMap<String, u32>>,
    changed: watch::Sender<u64>,
}

impl Default for StaticPods {
    fn default() -> Self {
        Self {
            pods: Mutex::new(HashMap::new()),
            uids: Mutex::new(HashMap::new()),
            mtus: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl StaticPods {
    /// Sets (replaces) the annotations of a pod, creating it.
    pub fn set(&self, namespace: &str, name: &str, annotations: BTreeMap<String, String>) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert((namespace.to_owned(), name.to_owned()), annotations);
        }
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Sets the UID of a pod (a pod recreated under its name gets another).
    pub fn set_uid(&self, namespace: &str, name: &str, uid: &str) {
        if let Ok(mut uids) = self.uids.lock() {
            uids.insert((namespace.to_owned(), name.to_owned()), uid.to_owned());
        }
    }

    /// Sets the `spec.mtu` a Subnet reports.
    pub fn set_subnet_mtu(&self, subnet: &str, mtu: u32) {
        if let Ok(mut mtus) = self.mtus.lock() {
            mtus.insert(subnet.to_owned(), mtu);
        }
    }

    /// Removes a pod.
    pub fn remove(&self, namespace: &str, name: &str) {
        if let Ok(mut pods) = self.pods.lock() {
            pods.remove(&(namespace.to_owned(), name.to_owned()));
        }
        self.changed.send_modify(|generation| *generation += 1);
    }

    fn get(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
        self.pods
            .lock()
            .ok()?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
}

impl PodSource for StaticPods {
    async fn wait_allocated(
        &self,
        namespace: &str,
        name: &str,
        nad_provider: &str,
        ifname: &str,
        timeout: Duration,
    ) -> Result<BTreeMap<String, String>, PodError> {
        let mut changes = self.changed.subscribe();
        let wait = async {
            loop {
                // Subscribed before reading, so a change between the read and the wait is seen.
                changes.borrow_and_update();
                if let Some(a) = self
                    .get(namespace, name)
                    .filter(|a| resolve(a, namespace, nad_provider, ifname).1)
                {
                    return a;
                }
                if changes.changed().await.is_err() {
                    // The sender lives in self, so this cannot end while self is borrowed.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            let provider = self.get(namespace, name).map_or_else(
                || nad_provider.to_owned(),
                |a| resolve(&a, namespace, nad_provider, ifname).0,
            );
            timeout_error(namespace, name, provider, nad_provider, timeout)
        })
    }

    async fn uid(&self, namespace: &str, name: &str) -> Result<Option<String>, PodError> {
        let key = (namespace.to_owned(), name.to_owned());
        Ok(self.get(namespace, name).map(|_| {
            self.uids
                .lock()
                .ok()
                .and_then(|u| u.get(&key).cloned())
                .unwrap_or_default()
        }))
    }

    async fn subnet_mtu(&self, subnet: &str) -> Option<u32> {
        self.mtus.lock().ok()?.get(subnet).copied()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn static_pods_wake_a_waiter_when_the_allocation_arrives() {
        let pods = Arc::new(StaticPods::default());
        let waiter = {
            let pods = pods.clone();
            tokio::spawn(async move {
                pods.wait_allocated("ns", "p", "a.ns.ovn", "net1", Duration::from_secs(10))
                    .await
            })
        };
        pods.set("ns", "p", BTreeMap::new());
        let mut a = BTreeMap::new();
        a.insert(
            "a.ns.ovn.kubernetes.io/allocated".to_owned(),
            "true".to_owned(),
        );
        pods.set("ns", "p", a.clone());
        assert_eq!(waiter.await.unwrap().unwrap(), a);
    }

    /// The message of a wait for NAD provider `a.ns.ovn` on `net1` of pod `ns/p` that times out.
    async fn timeout_message(pods: &StaticPods) -> String {
        pods.wait_allocated("ns", "p", "a.ns.ovn", "net1", Duration::from_millis(20))
            .await
            .unwrap_err()
            .to_string()
    }

    /// Issue 12: the same NAD attached twice is allocated as `<p>.<ifname>`; the daemon used to
    /// wait for `<p>.kubernetes.io/allocated`, which never comes, and ADD hung to its timeout.
    #[tokio::test]
    async fn the_same_nad_twice_waits_for_the_per_interface_provider() {
        let pods = StaticPods::default();
        let networks = r#"[{"name":"a","interface":"net1"},{"name":"a","interface":"net2"}]"#;
        let allocation = crds::Allocation {
            addresses: vec!["10.0.0.5/24".parse().unwrap()],
            cidrs: vec!["10.0.0.0/24".parse().unwrap()],
            gateways: vec![],
            mac: crds::MacAddr([2, 0, 0, 0, 0, 5]),
            logical_switch: "s1".into(),
            logical_router: None,
        };
        // What the controller writes: only the second interface is done so far.
        let mut a = allocation.to_annotations("a.ns.ovn.net2");
        a.insert(crds::naming::NETWORKS_ANNOTATION.into(), networks.into());
        pods.set("ns", "p", a.clone());
        let got = pods
            .wait_allocated("ns", "p", "a.ns.ovn", "net2", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(got, a);
        let err = timeout_message(&pods).await;
        assert!(
            err.contains("a.ns.ovn.net1.kubernetes.io/allocated")
                && err.contains("a Subnet has provider a.ns.ovn"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_timeout_names_the_provider_and_the_pod() {
        let err = timeout_message(&StaticPods::default()).await;
        assert!(
            err.contains("provider a.ns.ovn") && err.contains("ns/p"),
            "{err}"
        );
        // A refused attachment (issue 14) is never allocated: the message says where the
        // reason is.
        assert!(
            err.contains("LogicalSwitchRefused") && err.contains("admits namespace ns"),
            "{err}"
        );
    }
}
