//! The bed of the fault tests (`faults.rs`) and the chaos run (`chaos.rs`): a real
//! kube-apiserver and NB ovsdb-server, one NAD → Subnet → Vpc chain, pods created through the
//! API, and the invariants that must hold once every pod is allocated.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use controller::context::Context;
use controller::run::RunConfig;
use crds::{IP, NetworkAttachmentDefinition, Subnet, Vpc};
use e2e::k8s::ControlPlane;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use ovn_api::tables::nb::LogicalSwitchPort;
use ovn_api::testing::{OvsdbCluster, OvsdbServer, SchemaKind};

pub const PROVIDER: &str = "net1.default.ovn";
pub const SUBNET: &str = "subnet-faults";
pub const WAIT: Duration = Duration::from_secs(60);

pub fn annotation(key: &str) -> String {
    format!("{PROVIDER}.kubernetes.io/{key}")
}

/// The bed's NB: one `ovsdb-server`, or a 3-member RAFT cluster.
pub enum Nb {
    Standalone(OvsdbServer),
    /// The cluster, and the member killed last (still down until restarted).
    Raft {
        cluster: OvsdbCluster,
        down: Option<usize>,
    },
}

impl Nb {
    /// What clients connect to: the socket, or every member (comma-separated, as
    /// `--ovn-nb-addr` takes them).
    pub fn remote(&self) -> String {
        match self {
            Nb::Standalone(server) => server.remote(),
            Nb::Raft { cluster, .. } => cluster.remotes(),
        }
    }

    pub fn standalone(&self) -> &OvsdbServer {
        match self {
            Nb::Standalone(server) => server,
            Nb::Raft { .. } => panic!("this bed runs a RAFT NB"),
        }
    }

    pub fn standalone_mut(&mut self) -> &mut OvsdbServer {
        match self {
            Nb::Standalone(server) => server,
            Nb::Raft { .. } => panic!("this bed runs a RAFT NB"),
        }
    }
}

/// A control plane with the CRDs, an NB, and one NAD → Subnet → Vpc chain.
pub struct Bed {
    /// The control plane (kept alive).
    pub _cp: ControlPlane,
    /// Admin client.
    pub client: Client,
    /// The NB.
    pub nb: Nb,
}

impl Bed {
    /// A bed with one NB `ovsdb-server`.
    pub async fn start() -> Self {
        let nb = OvsdbServer::start(SchemaKind::Northbound).unwrap();
        Self::start_with(Nb::Standalone(nb)).await
    }

    /// A bed whose NB is a 3-member RAFT cluster.
    pub async fn start_raft() -> Self {
        let cluster = OvsdbCluster::start(SchemaKind::Northbound, 3).unwrap();
        Self::start_with(Nb::Raft {
            cluster,
            down: None,
        })
        .await
    }

    async fn start_with(nb: Nb) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let cp = ControlPlane::start().await.unwrap();
        let client = cp.client();
        e2e::cluster::install_crds(&client).await.unwrap();
        let nad = NetworkAttachmentDefinition::with_config(
            "default",
            "net1",
            &format!(r#"{{"cniVersion":"0.3.1","type":"kube-ovn","provider":"{PROVIDER}"}}"#),
        );
        Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &nad)
            .await
            .unwrap();
        let vpc = Vpc::new("vpc-faults", Default::default());
        Api::<Vpc>::all(client.clone())
            .create(&PostParams::default(), &vpc)
            .await
            .unwrap();
        let mut subnet = Subnet::new(SUBNET, Default::default());
        subnet.spec.vpc = Some("vpc-faults".into());
        // Room for the test's pods and little more, so random picks collide often.
        subnet.spec.cidr = Some("10.100.0.0/23".into());
        subnet.spec.gateway = Some("10.100.0.1".into());
        subnet.spec.provider = Some(PROVIDER.into());
        Api::<Subnet>::all(client.clone())
            .create(&PostParams::default(), &subnet)
            .await
            .unwrap();
        Bed {
            _cp: cp,
            client,
            nb,
        }
    }

    pub fn config(&self) -> RunConfig {
        RunConfig {
            nb_tls: None,
            nat_gateway_image: controller::options::DEFAULT_NAT_GATEWAY_IMAGE.to_owned(),
            nb_remotes: self.nb.remote(),
            // Short, so collections run while pods are being created.
            gc_interval: Duration::from_secs(1),
            workers: 4,
            metrics: Default::default(),
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates pods `<prefix>-<from>` .. `<prefix>-<to - 1>` through the API, 16 at a time.
    pub async fn create_pods(&self, prefix: &str, range: std::ops::Range<usize>) {
        let api = self.pods();
        futures::stream::iter(range)
            .map(|i| {
                let api = api.clone();
                async move {
                    api.create(&PostParams::default(), &pod(&format!("{prefix}-{i}")))
                        .await
                        .map(|_| ())
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .unwrap();
    }

    /// Waits until at least `n` pods have `allocated=true`; returns how many had.
    pub async fn wait_allocated(&self, n: usize) -> usize {
        let key = annotation("allocated");
        let mut done = BTreeSet::new();
        let mut stream =
            std::pin::pin!(watcher(self.pods(), watcher::Config::default()).applied_objects());
        tokio::time::timeout(WAIT, async {
            while let Some(p) = stream.next().await {
                let p = p.unwrap();
                if p.annotations().get(&key).is_some_and(|v| v == "true") {
                    done.insert(p.name_any());
                }
                if done.len() >= n {
                    return done.len();
                }
            }
            panic!("pod watch ended");
        })
        .await
        .unwrap_or_else(|_| panic!("only {} of {n} pods allocated within {WAIT:?}", done.len()))
    }
}

pub fn pod(name: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("default".into());
    p.metadata.annotations = Some(BTreeMap::from([(
        "k8s.v1.cni.cncf.io/networks".to_owned(),
        "default/net1".to_owned(),
    )]));
    p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
        containers: vec![k8s_openapi::api::core::v1::Container {
            name: "app".into(),
            image: Some("nginx".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    p
}

/// The invariants after a fault, once `expected` pods exist and all are allocated:
/// - every pod has `allocated=true`, an address and a MAC, and no two pods share an address;
/// - every IP CR names a live pod, and agrees with that pod's annotations; no two share an
///   address;
/// - every IP CR has its LSP with the same MAC and address, and every attachment LSP has its
///   IP CR;
/// - with a running controller, its allocator holds exactly the IP CRs' addresses.
pub async fn check_invariants(bed: &Bed, expected: usize, live: Option<&Context>) {
    if let Err(violation) = invariants(bed, expected, live).await {
        panic!("{violation}");
    }
}

/// Returns `Err(what)` from [`invariants`] unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!($($what)+));
        }
    };
}

/// [`check_invariants`], returning the first violation instead of panicking (a chaos run waits
/// for the cluster to settle and reports the last violation it saw). `expected` pods exist and
/// all are allocated; API errors are violations too (the next look retries).
pub async fn invariants(bed: &Bed, expected: usize, live: Option<&Context>) -> Result<(), String> {
    let api = |e: kube::Error| format!("API: {e}");
    let pods = bed
        .pods()
        .list(&ListParams::default())
        .await
        .map_err(api)?
        .items;
    ensure!(
        pods.len() == expected,
        "{} pods, expected {expected}",
        pods.len()
    );
    let mut pod_ips = BTreeMap::new();
    let mut pod_attachment = BTreeMap::new();
    for p in &pods {
        let a = p.annotations();
        let name = p.name_any();
        ensure!(
            a.get(&annotation("allocated")).map(String::as_str) == Some("true"),
            "pod {name} not allocated"
        );
        let ip = a
            .get(&annotation("ip_address"))
            .cloned()
            .unwrap_or_default();
        let mac = a
            .get(&annotation("mac_address"))
            .cloned()
            .unwrap_or_default();
        ensure!(
            !ip.is_empty() && !mac.is_empty(),
            "pod {name} has no address or MAC"
        );
        if let Some(other) = pod_ips.insert(ip.clone(), name.clone()) {
            return Err(format!("{ip} is used by pods {other} and {name}"));
        }
        pod_attachment.insert(name, (ip, mac, p.uid().unwrap_or_default()));
    }

    let records = Api::<IP>::all(bed.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api)?
        .items;
    ensure!(
        records.len() == expected,
        "{} IP CRs for {expected} pods",
        records.len()
    );
    let mut cr_ips = BTreeMap::new();
    for ip in &records {
        let name = ip.name_any();
        ensure!(
            ip.spec.namespace == "default",
            "IP CR {name} in namespace {}",
            ip.spec.namespace
        );
        let Some((pod_ip, pod_mac, pod_uid)) = pod_attachment.get(&ip.spec.pod_name) else {
            return Err(format!("IP CR {name} names a pod that does not exist"));
        };
        // A record of an earlier pod object of the name (recreated at once) is no record of
        // this one.
        ensure!(
            &ip.spec.pod_uid == pod_uid,
            "IP CR {name} names pod UID {:?}, the pod {} has {pod_uid:?}",
            ip.spec.pod_uid,
            ip.spec.pod_name
        );
        ensure!(
            name == format!("{}.default.{PROVIDER}", ip.spec.pod_name),
            "IP CR {name} is not named after its pod {}",
            ip.spec.pod_name
        );
        ensure!(
            &ip.spec.ip_address == pod_ip && &ip.spec.mac_address == pod_mac,
            "IP CR {name} ({} {}) and its pod ({pod_ip} {pod_mac}) disagree",
            ip.spec.ip_address,
            ip.spec.mac_address
        );
        if let Some(other) = cr_ips.insert(ip.spec.ip_address.clone(), name.clone()) {
            return Err(format!(
                "{} is recorded by IP CRs {other} and {name}",
                ip.spec.ip_address
            ));
        }
    }

    // NB, read by a client of our own (not the controller's replica).
    let nb = controller::nb::connect(&bed.nb.remote())
        .await
        .map_err(|e| format!("NB: {e}"))?;
    let ports: BTreeMap<String, LogicalSwitchPort> = nb
        .replica()
        .by_external_id::<LogicalSwitchPort>("vendor", "kube-ovn")
        .map_err(|e| format!("NB: {e}"))?
        .into_iter()
        .filter(|p| p.external_ids.contains_key("pod"))
        .map(|p| (p.name.clone(), p))
        .collect();
    for ip in &records {
        let name = ip.name_any();
        let Some(port) = ports.get(&name) else {
            return Err(format!("IP CR {name} has no logical switch port"));
        };
        let want = vec![format!("{} {}", ip.spec.mac_address, ip.spec.ip_address)];
        ensure!(
            port.addresses == want,
            "port {name} has addresses {:?}, its IP CR says {want:?}",
            port.addresses
        );
    }
    let recorded: BTreeSet<String> = records.iter().map(ResourceExt::name_any).collect();
    let stray: Vec<&String> = ports.keys().filter(|n| !recorded.contains(*n)).collect();
    ensure!(stray.is_empty(), "ports without an IP CR: {stray:?}");

    if let Some(ctx) = live {
        let held: BTreeMap<String, String> = ctx
            .ipam
            .records()
            .into_iter()
            .map(|r| {
                let ips: Vec<String> = r.ips.iter().map(ToString::to_string).collect();
                (r.key, ips.join(","))
            })
            .collect();
        let want: BTreeMap<String, String> = records
            .iter()
            .map(|ip| (ip.name_any(), ip.spec.ip_address.clone()))
            .collect();
        ensure!(
            held == want,
            "the allocator and the IP CRs disagree:\n allocator {held:?}\n IP CRs {want:?}"
        );
    }
    Ok(())
}
