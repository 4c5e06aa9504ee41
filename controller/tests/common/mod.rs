//! What the controller's L2 tests share: YAML objects, a network (NAD → Subnet in a Vpc), and
//! the controller running in-process against a real NB.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code, not every test uses every helper.

pub mod faults;
pub mod proxy;

use std::sync::Arc;
use std::time::Duration;

use controller::context::Context;
use controller::run::{self, RunConfig};
use crds::{NetworkAttachmentDefinition, Subnet, Vpc};
use kube::api::PostParams;
use kube::{Api, Client};
use ovn_api::testing::OvsdbServer;

/// An object from YAML.
pub fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    yaml_serde::from_str(s).unwrap()
}

/// Creates a kube-ovn NAD `<nad>` in `default` with provider `<nad>.default.ovn` (or
/// `provider`), the Vpc `vpc` (unless it exists) and the Subnet `subnet` with `cidr` bound to
/// that provider.
pub async fn network(
    client: &Client,
    nad: &str,
    provider: &str,
    vpc: &str,
    subnet: &str,
    cidr: &str,
) {
    let n: NetworkAttachmentDefinition = yaml(&format!(
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {{name: {nad}, namespace: default}}\nspec:\n  config: '{{\"cniVersion\":\"0.3.1\",\"type\":\"kube-ovn\",\"server_socket\":\"/run/openvswitch/kube-ovn-daemon.sock\",\"provider\":\"{provider}\"}}'\n"
    ));
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &n)
        .await
        .unwrap();
    let vpcs: Api<Vpc> = Api::all(client.clone());
    if vpcs.get_opt(vpc).await.unwrap().is_none() {
        let v: Vpc = yaml(&format!(
            "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {{name: {vpc}}}\nspec: {{}}\n"
        ));
        vpcs.create(&PostParams::default(), &v).await.unwrap();
    }
    let s: Subnet = yaml(&format!(
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {{name: {subnet}}}\nspec: {{vpc: {vpc}, cidr: \"{cidr}\", provider: {provider}}}\n"
    ));
    Api::<Subnet>::all(client.clone())
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

/// The controller, started (caches synced, IPAM rebuilt) and running with `workers` workers;
/// abort the handle to stop it.
pub async fn start_controller(
    client: &Client,
    nb: &OvsdbServer,
    workers: u16,
) -> (Arc<Context>, tokio::task::JoinHandle<()>) {
    let config = RunConfig {
        nb_tls: None,
        nat_gateway_image: controller::options::DEFAULT_NAT_GATEWAY_IMAGE.to_owned(),
        nb_remotes: nb.remote(),
        gc_interval: Duration::from_secs(30),
        workers,
        metrics: Default::default(),
    };
    let ctx = run::start(client.clone(), &config).await.unwrap();
    let handle = tokio::spawn(run::run(Arc::clone(&ctx), config));
    (ctx, handle)
}

/// The first Event on pod `pod` (namespace `default`) whose message contains `needle`, waiting
/// up to a minute for it (a watch, no polling).
pub async fn event_containing(
    client: &Client,
    pod: &str,
    needle: &str,
) -> k8s_openapi::api::core::v1::Event {
    event_containing_on(client, "Pod", pod, needle).await
}

/// The first Event on the `kind` object `name` whose message contains `needle` (Events of
/// cluster-scoped objects land in `default`), waiting up to a minute for it.
pub async fn event_containing_on(
    client: &Client,
    kind: &str,
    name: &str,
    needle: &str,
) -> k8s_openapi::api::core::v1::Event {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let pod = name;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(client.clone());
    let config = kube::runtime::watcher::Config::default().fields(&format!(
        "involvedObject.name={name},involvedObject.kind={kind}"
    ));
    let mut stream = std::pin::pin!(kube::runtime::watcher(events, config).applied_objects());
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = stream.next().await {
            let e = event.unwrap();
            if e.message.as_deref().is_some_and(|m| m.contains(needle)) {
                return e;
            }
        }
        panic!("event watch ended");
    })
    .await;
    found.unwrap_or_else(|_| panic!("no Event for {pod} containing {needle:?}"))
}

/// A control plane with our CRDs, an NB server, one network (NAD → Subnet in a Vpc) and the
/// controller running.
pub struct Bed {
    /// The control plane (kept alive).
    pub _cp: e2e::k8s::ControlPlane,
    /// Admin client.
    pub client: Client,
    /// The NB server.
    pub nb_server: OvsdbServer,
    /// The controller's context.
    pub ctx: Arc<Context>,
    /// The running controller (abort to stop it).
    pub controller: tokio::task::JoinHandle<()>,
}

impl Bed {
    /// Starts it all with [`network`]`(nad, provider, vpc, subnet, cidr)`.
    pub async fn start(nad: &str, provider: &str, vpc: &str, subnet: &str, cidr: &str) -> Bed {
        let cp = e2e::k8s::ControlPlane::start().await.unwrap();
        let client = cp.client();
        e2e::cluster::install_crds(&client).await.unwrap();
        let nb_server = OvsdbServer::start(ovn_api::testing::SchemaKind::Northbound).unwrap();
        network(&client, nad, provider, vpc, subnet, cidr).await;
        let (ctx, controller) = start_controller(&client, &nb_server, 4).await;
        Bed {
            _cp: cp,
            client,
            nb_server,
            ctx,
            controller,
        }
    }
}
