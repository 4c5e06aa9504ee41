//! Faults against real programs (L2): a real kube-apiserver and a real OVN Northbound
//! ovsdb-server, the controller run in-process. The controller is killed while pods are being
//! created, the NB server is killed and restarted mid-run, and the leader of two replicas is
//! killed. After each, every pod must end up allocated with its own address, and the durable
//! records (IP CRs), the OVN ports and the allocator must agree: no address used twice, no IP CR
//! without a pod or port, no port without an IP CR.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controller::context::Context;
use controller::leader::LeaseConfig;
use controller::run::{self, RunConfig};
use crds::{IP, NetworkAttachmentDefinition, Subnet, Vpc};
use e2e::k8s::ControlPlane;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use ovn_api::tables::nb::LogicalSwitchPort;
use ovn_api::testing::{OvsdbServer, SchemaKind};

const PROVIDER: &str = "net1.default.ovn";
const SUBNET: &str = "subnet-faults";
const WAIT: Duration = Duration::from_secs(60);

fn annotation(key: &str) -> String {
    format!("{PROVIDER}.kubernetes.io/{key}")
}

/// A control plane with the CRDs, an NB server, and one NAD → Subnet → Vpc chain.
struct Bed {
    _cp: ControlPlane,
    client: Client,
    nb: OvsdbServer,
}

impl Bed {
    async fn start() -> Self {
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
        let nb = OvsdbServer::start(SchemaKind::Northbound).unwrap();
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

    fn config(&self) -> RunConfig {
        RunConfig {
            nat_gateway_image: controller::options::DEFAULT_NAT_GATEWAY_IMAGE.to_owned(),
            nb_remotes: self.nb.remote(),
            // Short, so collections run while pods are being created.
            gc_interval: Duration::from_secs(1),
            workers: 4,
            metrics: Default::default(),
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates pods `<prefix>-<from>` .. `<prefix>-<to - 1>` through the API, 16 at a time.
    async fn create_pods(&self, prefix: &str, range: std::ops::Range<usize>) {
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
    async fn wait_allocated(&self, n: usize) -> usize {
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

fn pod(name: &str) -> Pod {
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
async fn check_invariants(bed: &Bed, expected: usize, live: Option<&Context>) {
    let pods = bed.pods().list(&ListParams::default()).await.unwrap().items;
    assert_eq!(pods.len(), expected, "pods");
    let mut pod_ips = BTreeMap::new();
    for p in &pods {
        let a = p.annotations();
        assert_eq!(
            a.get(&annotation("allocated")).map(String::as_str),
            Some("true"),
            "pod {} not allocated",
            p.name_any()
        );
        let ip = a[&annotation("ip_address")].clone();
        assert!(!a[&annotation("mac_address")].is_empty());
        if let Some(other) = pod_ips.insert(ip.clone(), p.name_any()) {
            panic!("{ip} is used by pods {other} and {}", p.name_any());
        }
    }
    let by_name: BTreeMap<String, &Pod> = pods.iter().map(|p| (p.name_any(), p)).collect();

    let records = Api::<IP>::all(bed.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(records.len(), expected, "one IP CR per pod");
    let mut cr_ips = BTreeMap::new();
    for ip in &records {
        let name = ip.name_any();
        assert_eq!(ip.spec.namespace, "default", "{name}");
        let p = by_name
            .get(&ip.spec.pod_name)
            .unwrap_or_else(|| panic!("IP CR {name} names a pod that does not exist"));
        assert_eq!(name, format!("{}.default.{PROVIDER}", ip.spec.pod_name));
        let a = p.annotations();
        assert_eq!(
            ip.spec.ip_address,
            a[&annotation("ip_address")],
            "IP CR {name} and its pod disagree"
        );
        assert_eq!(ip.spec.mac_address, a[&annotation("mac_address")], "{name}");
        if let Some(other) = cr_ips.insert(ip.spec.ip_address.clone(), name.clone()) {
            panic!(
                "{} is recorded by IP CRs {other} and {name}",
                ip.spec.ip_address
            );
        }
    }

    // NB, read by a client of our own (not the controller's replica).
    let nb = controller::nb::connect(&bed.nb.remote()).await.unwrap();
    let ports: BTreeMap<String, LogicalSwitchPort> = nb
        .replica()
        .by_external_id::<LogicalSwitchPort>("vendor", "kube-ovn")
        .unwrap()
        .into_iter()
        .filter(|p| p.external_ids.contains_key("pod"))
        .map(|p| (p.name.clone(), p))
        .collect();
    for ip in &records {
        let name = ip.name_any();
        let port = ports
            .get(&name)
            .unwrap_or_else(|| panic!("IP CR {name} has no logical switch port"));
        assert_eq!(
            port.addresses,
            vec![format!("{} {}", ip.spec.mac_address, ip.spec.ip_address)],
            "{name}"
        );
    }
    let recorded: BTreeSet<String> = records.iter().map(ResourceExt::name_any).collect();
    let stray: Vec<&String> = ports.keys().filter(|n| !recorded.contains(*n)).collect();
    assert!(stray.is_empty(), "ports without an IP CR: {stray:?}");

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
        assert_eq!(held, want, "the allocator and the IP CRs disagree");
    }
}

#[tokio::test]
async fn a_controller_killed_mid_run_is_replaced_and_every_pod_ends_with_its_own_address() {
    let bed = Bed::start().await;
    let config = bed.config();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let first = tokio::spawn(run::run(Arc::clone(&ctx), config.clone()));

    bed.create_pods("a", 0..100).await;
    let at_kill = bed.wait_allocated(40).await;
    // The kill: every task of the first controller stops wherever it is, and its NB client and
    // caches go with its context.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    drop(ctx);
    // Pods keep coming while no controller runs.
    bed.create_pods("b", 0..100).await;

    let started = Instant::now();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let second = tokio::spawn(run::run(Arc::clone(&ctx), config));
    bed.wait_allocated(200).await;
    eprintln!(
        "killed at {at_kill} allocated; the second controller finished the rest in {:?}",
        started.elapsed()
    );
    check_invariants(&bed, 200, Some(&ctx)).await;
    second.abort();
}

#[tokio::test]
async fn the_nb_server_killed_and_restarted_mid_run_loses_nothing() {
    let mut bed = Bed::start().await;
    let config = bed.config();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let task = tokio::spawn(run::run(Arc::clone(&ctx), config));

    bed.create_pods("a", 0..100).await;
    let at_kill = bed.wait_allocated(40).await;
    bed.nb.kill();
    // Pods created while NB is down.
    bed.create_pods("b", 0..100).await;
    let restarted = Instant::now();
    bed.nb.restart().unwrap();
    bed.wait_allocated(200).await;
    eprintln!(
        "NB killed at {at_kill} allocated; all 200 allocated {:?} after its restart",
        restarted.elapsed()
    );
    assert!(ctx.nb.sessions() >= 2, "the NB client reconnected");
    check_invariants(&bed, 200, Some(&ctx)).await;
    // The run shows in the metrics.
    let m = &ctx.metrics;
    let at_least = |series: &str, n: f64| {
        let got = m.sample(series).unwrap_or(0.0);
        assert!(
            got >= n,
            "{series} = {got}, expected >= {n}\n{}",
            m.render()
        );
    };
    assert_eq!(
        m.sample(&format!(
            r#"kube_ovn_controller_ipam_addresses{{subnet="{SUBNET}",family="ipv4",state="used"}}"#
        )),
        Some(200.0)
    );
    at_least(
        r#"kube_ovn_controller_attachment_duration_seconds_count{result="ok"}"#,
        200.0,
    );
    at_least(
        r#"kube_ovn_controller_ovn_transaction_duration_seconds_count{result="ok"}"#,
        200.0,
    );
    at_least(
        r#"kube_ovn_controller_reconcile_duration_seconds_count{controller="pod",result="ok"}"#,
        200.0,
    );
    task.abort();
}

/// The names of our attachment ports in NB, read by a client of our own.
async fn attachment_ports(bed: &Bed) -> BTreeSet<String> {
    let nb = controller::nb::connect(&bed.nb.remote()).await.unwrap();
    nb.replica()
        .by_external_id::<LogicalSwitchPort>("vendor", "kube-ovn")
        .unwrap()
        .into_iter()
        .filter(|p| p.external_ids.contains_key("pod"))
        .map(|p| p.name)
        .collect()
}

/// Waits (polling NB) until every one of `pods` pods has its port again; returns how long.
async fn wait_ports_back(bed: &Bed, pods: usize, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let ports = attachment_ports(bed).await;
        if ports.len() == pods {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT,
            "{what}: only {} of {pods} ports back within {WAIT:?}",
            ports.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The annotations of every pod: the repair must not need any pod to change (their status may:
/// the scheduler reports them unschedulable, there are no nodes).
async fn pod_versions(bed: &Bed) -> BTreeMap<String, BTreeMap<String, String>> {
    bed.pods()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| (p.name_any(), p.annotations().clone()))
        .collect()
}

#[tokio::test]
async fn nb_rows_lost_behind_the_controllers_back_come_back_without_any_pod_changing() {
    let mut bed = Bed::start().await;
    let config = bed.config();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let task = tokio::spawn(run::run(Arc::clone(&ctx), config));
    bed.create_pods("p", 0..30).await;
    bed.wait_allocated(30).await;
    wait_ports_back(&bed, 30, "initial attachment").await;
    let versions = pod_versions(&bed).await;

    // 1. Wiped while the controller stays connected: every root row deleted in one transaction
    // (ports, router ports, routes, ACLs and QoS rows go with them).
    let wipe = serde_json::json!(["OVN_Northbound",
        {"op": "delete", "table": "Logical_Switch", "where": []},
        {"op": "delete", "table": "Logical_Router", "where": []},
        {"op": "delete", "table": "DHCP_Options", "where": []},
        {"op": "delete", "table": "Port_Group", "where": []},
        {"op": "delete", "table": "Address_Set", "where": []}]);
    bed.nb
        .client(&["transact", &bed.nb.remote(), &wipe.to_string()])
        .unwrap();
    assert!(
        attachment_ports(&bed).await.is_empty(),
        "the wipe took the ports"
    );
    let took = wait_ports_back(&bed, 30, "after a wipe").await;
    eprintln!("NB wiped while connected: 30 ports back in {took:?}");
    assert!(
        !bed.nb
            .nbctl(&["--bare", "--columns=name", "list", "Logical_Router"])
            .unwrap()
            .trim()
            .is_empty(),
        "the Vpc's router is back"
    );
    check_invariants(&bed, 30, Some(&ctx)).await;

    // 2. The NB server comes back empty (a lost volume): the new session's resync repairs it.
    let sessions = ctx.nb.sessions();
    bed.nb.restart_empty().unwrap();
    let took = wait_ports_back(&bed, 30, "after an empty restart").await;
    eprintln!("NB restarted empty: 30 ports back in {took:?}");
    assert!(ctx.nb.sessions() > sessions, "the NB client reconnected");
    check_invariants(&bed, 30, Some(&ctx)).await;

    assert_eq!(pod_versions(&bed).await, versions, "no pod changed");
    task.abort();
}

#[tokio::test]
async fn when_the_leader_is_killed_the_other_replica_takes_over() {
    let bed = Bed::start().await;
    let config = bed.config();
    let lease = |identity: &str| LeaseConfig {
        namespace: "kube-system".into(),
        name: "kube-ovn-controller".into(),
        identity: identity.into(),
        duration: Duration::from_secs(2),
    };
    let mut replicas = BTreeMap::new();
    for id in ["replica-a", "replica-b"] {
        let task = tokio::spawn(run::run_with_leader(
            bed.client.clone(),
            config.clone(),
            lease(id),
        ));
        replicas.insert(id.to_owned(), task);
    }
    let leases: Api<Lease> = Api::namespaced(bed.client.clone(), "kube-system");
    let holder = |l: &Lease| {
        l.spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
    };
    let first = tokio::time::timeout(
        WAIT,
        await_condition(
            leases.clone(),
            "kube-ovn-controller",
            |l: Option<&Lease>| l.is_some_and(|l| !holder(l).is_empty()),
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .map(|l| holder(&l))
    .unwrap();

    bed.create_pods("a", 0..100).await;
    let at_kill = bed.wait_allocated(40).await;
    let leader = replicas.remove(&first).unwrap();
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let killed = Instant::now();
    bed.create_pods("b", 0..100).await;

    let (other, follower) = replicas.into_iter().next().unwrap();
    let second = tokio::time::timeout(
        WAIT,
        await_condition(
            leases.clone(),
            "kube-ovn-controller",
            |l: Option<&Lease>| l.is_some_and(|l| holder(l) != first),
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .map(|l| holder(&l))
    .unwrap();
    let takeover = killed.elapsed();
    assert_eq!(second, other);
    // Expiry (2 s after the last renewal) plus one acquire retry (0.5 s) and the API calls.
    assert!(
        takeover < Duration::from_secs(4),
        "takeover took {takeover:?}"
    );
    bed.wait_allocated(200).await;
    let all = killed.elapsed();
    // Pods created after the new leader took over.
    bed.create_pods("c", 0..20).await;
    bed.wait_allocated(220).await;
    eprintln!(
        "leader {first} killed at {at_kill} allocated; {other} took over after {takeover:?}, \
         all 200 allocated after {all:?}"
    );
    check_invariants(&bed, 220, None).await;
    assert!(!follower.is_finished(), "the new leader keeps running");
    follower.abort();
}

/// Adds `extra` to the pod's networks annotation.
async fn add_network(bed: &Bed, name: &str, extra: &str) {
    let patch = serde_json::json!({ "metadata": { "annotations": {
        "k8s.v1.cni.cncf.io/networks": format!("default/net1,{extra}")
    }}});
    bed.pods()
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
}

/// Waits until pod `name` has `allocated=true` for `provider`.
async fn wait_pod_allocated(bed: &Bed, name: &str, provider: &str) -> Pod {
    let key = format!("{provider}.kubernetes.io/allocated");
    let cond = move |p: Option<&Pod>| {
        p.is_some_and(|p| p.annotations().get(&key).is_some_and(|v| v == "true"))
    };
    tokio::time::timeout(WAIT, await_condition(bed.pods(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("pod {name} never got {provider} allocated"))
        .unwrap()
        .unwrap()
}

/// A pod's running attachment keeps its address, record and port while the way it resolved is
/// temporarily broken (a second Subnet claims its provider and is refused; its NAD is deleted):
/// the pod still uses that address, so releasing it would hand it to a second pod.
#[tokio::test]
async fn a_running_attachment_keeps_its_address_when_its_resolution_breaks() {
    let bed = Bed::start().await;
    let config = bed.config();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let task = tokio::spawn(run::run(Arc::clone(&ctx), config));
    // A second network, to change the pods and see their reconcile complete.
    let provider2 = "net2.default.ovn";
    let nad2 = NetworkAttachmentDefinition::with_config(
        "default",
        "net2",
        &format!(r#"{{"cniVersion":"0.3.1","type":"kube-ovn","provider":"{provider2}"}}"#),
    );
    let nads = Api::<NetworkAttachmentDefinition>::namespaced(bed.client.clone(), "default");
    nads.create(&PostParams::default(), &nad2).await.unwrap();
    let subnets = Api::<Subnet>::all(bed.client.clone());
    let mut s2 = Subnet::new("subnet-two", Default::default());
    s2.spec.vpc = Some("vpc-faults".into());
    s2.spec.cidr = Some("10.102.0.0/24".into());
    s2.spec.provider = Some(provider2.into());
    subnets.create(&PostParams::default(), &s2).await.unwrap();

    bed.create_pods("p", 0..2).await;
    bed.wait_allocated(2).await;
    let before = bed.pods().get("p-0").await.unwrap();
    let ip0 = before.annotations()[&annotation("ip_address")].clone();

    // The serving Subnet has reported Ready (the controller's cache has it before it sees the
    // next Subnet: one watch, in order) ...
    let ready = |s: Option<&Subnet>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
            crds::condition::find_condition(&st.conditions, crds::condition::READY)
                .is_some_and(|c| c.status == crds::condition::ConditionStatus::True)
        })
    };
    tokio::time::timeout(WAIT, await_condition(subnets.clone(), SUBNET, ready))
        .await
        .expect("the serving subnet never reported Ready")
        .unwrap();
    // ... so a newer Subnet claiming net1's provider is refused, even when created in the same
    // second (`creationTimestamp` has one-second resolution and "subnet-dup" sorts first) ...
    let mut dup = Subnet::new("subnet-dup", Default::default());
    dup.spec.vpc = Some("vpc-faults".into());
    dup.spec.cidr = Some("10.101.0.0/24".into());
    dup.spec.provider = Some(PROVIDER.into());
    subnets.create(&PostParams::default(), &dup).await.unwrap();
    let refused = |s: Option<&Subnet>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
            crds::condition::find_condition(&st.conditions, crds::condition::VALIDATED)
                .is_some_and(|c| c.reason == "ProviderConflict")
        })
    };
    tokio::time::timeout(
        WAIT,
        await_condition(subnets.clone(), "subnet-dup", refused),
    )
    .await
    .unwrap()
    .unwrap();
    // ... and a pod changed now keeps its net1 address, and gets net2.
    add_network(&bed, "p-0", "default/net2").await;
    let after = wait_pod_allocated(&bed, "p-0", provider2).await;
    assert_eq!(after.annotations()[&annotation("ip_address")], ip0);
    let key = format!("p-0.default.{PROVIDER}");
    let record = Api::<IP>::all(bed.client.clone())
        .get_opt(&key)
        .await
        .unwrap();
    assert_eq!(
        record.map(|r| r.spec.ip_address),
        Some(ip0.clone()),
        "the IP CR of a running attachment was released"
    );
    assert_eq!(
        ctx.ipam.get(&key).map(|l| l.ip_address()),
        Some(ip0),
        "the allocator let go of a running attachment"
    );
    subnets
        .delete("subnet-dup", &Default::default())
        .await
        .unwrap();

    // Its NAD is deleted: the pod keeps running with the interface, so it keeps the address.
    let ip1 = bed.pods().get("p-1").await.unwrap().annotations()[&annotation("ip_address")].clone();
    nads.delete("net1", &Default::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            nads.clone(),
            "net1",
            |o: Option<&NetworkAttachmentDefinition>| o.is_none(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    add_network(&bed, "p-1", "default/net2").await;
    wait_pod_allocated(&bed, "p-1", provider2).await;
    let key = format!("p-1.default.{PROVIDER}");
    let record = Api::<IP>::all(bed.client.clone())
        .get_opt(&key)
        .await
        .unwrap();
    assert_eq!(record.map(|r| r.spec.ip_address), Some(ip1.clone()));
    assert_eq!(ctx.ipam.get(&key).map(|l| l.ip_address()), Some(ip1));
    task.abort();
}
