//! Faults against real programs (L2): a real kube-apiserver and a real OVN Northbound
//! ovsdb-server, the controller run in-process. The controller is killed while pods are being
//! created, the NB server is killed and restarted mid-run, and the leader of two replicas is
//! killed. After each, every pod must end up allocated with its own address, and the durable
//! records (IP CRs), the OVN ports and the allocator must agree: no address used twice, no IP CR
//! without a pod or port, no port without an IP CR.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use controller::leader::LeaseConfig;
use controller::run;
use crds::{IP, NetworkAttachmentDefinition, Subnet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, ResourceExt};
use ovn_api::tables::nb::LogicalSwitchPort;

use common::faults::{Bed, PROVIDER, SUBNET, WAIT, annotation, check_invariants, pod};

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
    let metrics = config.metrics.clone();
    assert_eq!(
        metrics.readiness(),
        Ok(()),
        "before start: a standby is ready"
    );
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    assert_eq!(metrics.readiness(), Ok(()), "started, NB connected");
    let task = tokio::spawn(run::run(Arc::clone(&ctx), config));

    bed.create_pods("a", 0..100).await;
    let at_kill = bed.wait_allocated(40).await;
    bed.nb.standalone_mut().kill();
    // /readyz says so while NB is away (the client sees the socket close).
    let deadline = Instant::now() + WAIT;
    while metrics.readiness().is_ok() {
        assert!(Instant::now() < deadline, "still ready with NB down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let why = metrics.readiness().unwrap_err();
    assert!(why.contains("OVN NB unreachable"), "{why}");
    // Pods created while NB is down.
    bed.create_pods("b", 0..100).await;
    let restarted = Instant::now();
    bed.nb.standalone_mut().restart().unwrap();
    bed.wait_allocated(200).await;
    assert_eq!(metrics.readiness(), Ok(()), "ready again with NB back");
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
        .standalone()
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
            .standalone()
            .nbctl(&["--bare", "--columns=name", "list", "Logical_Router"])
            .unwrap()
            .trim()
            .is_empty(),
        "the Vpc's router is back"
    );
    check_invariants(&bed, 30, Some(&ctx)).await;

    // 2. The NB server comes back empty (a lost volume): the new session's resync repairs it.
    let sessions = ctx.nb.sessions();
    bed.nb.standalone_mut().restart_empty().unwrap();
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
    // Short, to keep the takeover quick, but not so short that a loaded CI machine (the
    // release build beside two test binaries on 2 cores) makes the surviving leader miss its
    // renew deadline (2/3 of the lease): with 2 s it did once (1.3 s), stepped down as it must,
    // and left the pods unallocated.
    const LEASE: Duration = Duration::from_secs(6);
    let lease = |identity: &str| LeaseConfig {
        namespace: "kube-system".into(),
        name: "kube-ovn-controller".into(),
        identity: identity.into(),
        duration: LEASE,
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
    // Expiry (one lease after the last renewal) plus one acquire retry (a quarter lease) and
    // the API calls, with room for a loaded machine.
    assert!(takeover < LEASE * 2, "takeover took {takeover:?}");
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

/// A Subnet edited to an invalid spec while the controller was down is not registered at start,
/// so the IP CRs of its pods cannot be placed then. While it is invalid it hands out no new
/// address; once it is valid again it is registered together with those records, so an address
/// held for a pod is never given to a second one. The holder here is a terminating pod (its
/// containers use the address until its object is gone; it asks for nothing meanwhile);
/// before, the Subnet came back empty and the next pod took the terminating pod's address.
#[tokio::test]
async fn a_subnet_invalid_at_start_gets_its_pods_addresses_back_when_it_is_valid_again() {
    let bed = Bed::start().await;
    let config = bed.config();
    let provider = "net3.default.ovn";
    let nad = NetworkAttachmentDefinition::with_config(
        "default",
        "net3",
        &format!(r#"{{"cniVersion":"0.3.1","type":"kube-ovn","provider":"{provider}"}}"#),
    );
    Api::<NetworkAttachmentDefinition>::namespaced(bed.client.clone(), "default")
        .create(&PostParams::default(), &nad)
        .await
        .unwrap();
    // A /30: one usable address beside the gateway.
    let subnets = Api::<Subnet>::all(bed.client.clone());
    let mut tiny = Subnet::new("subnet-tiny", Default::default());
    tiny.spec.vpc = Some("vpc-faults".into());
    tiny.spec.cidr = Some("10.103.0.0/30".into());
    tiny.spec.gateway = Some("10.103.0.1".into());
    tiny.spec.provider = Some(provider.into());
    subnets.create(&PostParams::default(), &tiny).await.unwrap();
    let on_tiny = |name: &str| {
        let mut p = pod(name);
        p.metadata.annotations = Some(BTreeMap::from([(
            "k8s.v1.cni.cncf.io/networks".to_owned(),
            "default/net3".to_owned(),
        )]));
        p
    };
    let ip_key = format!("{provider}.kubernetes.io/ip_address");

    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let first = tokio::spawn(run::run(Arc::clone(&ctx), config.clone()));
    // Bound to a node (there is no kubelet here): its deletion waits its whole grace period.
    let mut leaving = on_tiny("leaving");
    if let Some(spec) = leaving.spec.as_mut() {
        spec.node_name = Some("node-gone".into());
    }
    bed.pods()
        .create(&PostParams::default(), &leaving)
        .await
        .unwrap();
    let pod = wait_pod_allocated(&bed, "leaving", provider).await;
    assert_eq!(pod.annotations()[&ip_key], "10.103.0.2");
    first.abort();
    let _ = first.await;
    drop(ctx);

    // While no controller runs, the pod starts terminating (it keeps its address until its
    // object is gone) and the Subnet is edited: an excluded address outside the range (the API takes
    // it; the controller refuses the Subnet).
    bed.pods()
        .delete(
            "leaving",
            &kube::api::DeleteParams::default().grace_period(300),
        )
        .await
        .unwrap();
    let invalid = serde_json::json!({ "spec": { "excludeIps": ["10.200.0.9"] } });
    subnets
        .patch(
            "subnet-tiny",
            &PatchParams::default(),
            &Patch::Merge(&invalid),
        )
        .await
        .unwrap();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let second = tokio::spawn(run::run(Arc::clone(&ctx), config));
    let key0 = format!("leaving.default.{provider}");
    assert!(
        ctx.ipam.get(&key0).is_none(),
        "the invalid Subnet was registered at start"
    );
    // While invalid, a new pod gets nothing, and is told why.
    bed.pods()
        .create(&PostParams::default(), &on_tiny("t-1"))
        .await
        .unwrap();
    common::event_containing(
        &bed.client,
        "t-1",
        "Subnet subnet-tiny is refused (InvalidSpec)",
    )
    .await;

    // Valid again: registered with the terminating pod's record, so the /30 is full and t-1 is
    // told so.
    let valid = serde_json::json!({ "spec": { "excludeIps": null } });
    subnets
        .patch(
            "subnet-tiny",
            &PatchParams::default(),
            &Patch::Merge(&valid),
        )
        .await
        .unwrap();
    common::event_containing(
        &bed.client,
        "t-1",
        "subnet subnet-tiny has no free IPv4 address",
    )
    .await;
    assert_eq!(
        ctx.ipam
            .owner_of("subnet-tiny", "10.103.0.2".parse().unwrap())
            .as_deref(),
        Some(key0.as_str()),
        "the terminating pod's address is not its own in the allocator"
    );
    let t1 = bed.pods().get("t-1").await.unwrap();
    assert!(
        !t1.annotations().contains_key(&ip_key),
        "t-1 got an address from a full subnet: {:?}",
        t1.annotations()
    );
    assert!(
        Api::<IP>::all(bed.client.clone())
            .get_opt(&format!("t-1.default.{provider}"))
            .await
            .unwrap()
            .is_none()
    );
    second.abort();
}

/// Attachment keys are `<pod>.<namespace>.<provider>`, and pod names and providers may hold
/// dots: pod `x` in `y` on provider `net1.default.ovn` and pod `x.y` in `net1` on provider
/// `default.ovn` spell the same key. The second is refused with an Event naming the first; it
/// never shares the first one's lease, record or port.
#[tokio::test]
async fn two_pods_spelling_the_same_attachment_key_never_share_an_address() {
    let bed = Bed::start().await;
    let config = bed.config();
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(bed.client.clone());
    for ns in ["y", "net1"] {
        let mut n = k8s_openapi::api::core::v1::Namespace::default();
        n.metadata.name = Some(ns.into());
        namespaces.create(&PostParams::default(), &n).await.unwrap();
    }
    let nad = NetworkAttachmentDefinition::with_config(
        "default",
        "other",
        r#"{"cniVersion":"0.3.1","type":"kube-ovn","provider":"default.ovn"}"#,
    );
    Api::<NetworkAttachmentDefinition>::namespaced(bed.client.clone(), "default")
        .create(&PostParams::default(), &nad)
        .await
        .unwrap();
    let mut other = Subnet::new("subnet-other", Default::default());
    other.spec.vpc = Some("vpc-faults".into());
    other.spec.cidr = Some("10.104.0.0/24".into());
    other.spec.provider = Some("default.ovn".into());
    Api::<Subnet>::all(bed.client.clone())
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let task = tokio::spawn(run::run(Arc::clone(&ctx), config));

    let in_ns = |ns: &str, name: &str, network: &str| {
        let mut p = pod(name);
        p.metadata.namespace = Some(ns.into());
        p.metadata.annotations = Some(BTreeMap::from([(
            "k8s.v1.cni.cncf.io/networks".to_owned(),
            network.to_owned(),
        )]));
        p
    };
    let first: Api<Pod> = Api::namespaced(bed.client.clone(), "y");
    first
        .create(&PostParams::default(), &in_ns("y", "x", "default/net1"))
        .await
        .unwrap();
    let allocated = annotation("allocated");
    tokio::time::timeout(
        WAIT,
        await_condition(first.clone(), "x", move |p: Option<&Pod>| {
            p.is_some_and(|p| p.annotations().get(&allocated).is_some_and(|v| v == "true"))
        }),
    )
    .await
    .expect("pod y/x never allocated")
    .unwrap();
    let key = format!("x.y.{PROVIDER}");
    let before = ctx.ipam.get(&key).expect("y/x holds no lease");

    Api::<Pod>::namespaced(bed.client.clone(), "net1")
        .create(
            &PostParams::default(),
            &in_ns("net1", "x.y", "default/other"),
        )
        .await
        .unwrap();
    common::event_containing(&bed.client, "x.y", "is already the record of pod y/x").await;
    let record = Api::<IP>::all(bed.client.clone()).get(&key).await.unwrap();
    assert_eq!(
        (
            record.spec.namespace.as_str(),
            record.spec.pod_name.as_str()
        ),
        ("y", "x")
    );
    assert_eq!(ctx.ipam.get(&key), Some(before));
    let second = Api::<Pod>::namespaced(bed.client.clone(), "net1")
        .get("x.y")
        .await
        .unwrap();
    assert!(
        !second
            .annotations()
            .contains_key("default.ovn.kubernetes.io/ip_address"),
        "{:?}",
        second.annotations()
    );
    task.abort();
}

/// A pod whose attachment record name (`<pod>.<namespace>.<provider>`) would pass 253 characters
/// is refused before anything is allocated, with one clear Event (before: an address was taken,
/// the apiserver refused the IP CR, the address went back, on every retry).
#[tokio::test]
async fn a_pod_whose_record_name_is_too_long_is_told_so_and_nothing_is_allocated() {
    let bed = Bed::start().await;
    let config = bed.config();
    // A long provider and a long pod name; each valid, the key too long. (The pod name stays
    // short enough for the Events about it, whose names are `<pod>.<suffix>`.)
    let provider = format!("{}.default.ovn", "p".repeat(60));
    let nad = NetworkAttachmentDefinition::with_config(
        "default",
        "long",
        &format!(r#"{{"cniVersion":"0.3.1","type":"kube-ovn","provider":"{provider}"}}"#),
    );
    Api::<NetworkAttachmentDefinition>::namespaced(bed.client.clone(), "default")
        .create(&PostParams::default(), &nad)
        .await
        .unwrap();
    let mut subnet = Subnet::new("subnet-long", Default::default());
    subnet.spec.vpc = Some("vpc-faults".into());
    subnet.spec.cidr = Some("10.105.0.0/24".into());
    subnet.spec.provider = Some(provider.clone());
    Api::<Subnet>::all(bed.client.clone())
        .create(&PostParams::default(), &subnet)
        .await
        .unwrap();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let task = tokio::spawn(run::run(Arc::clone(&ctx), config));
    let name = format!("long-{}", "x".repeat(195));
    let mut p = pod(&name);
    p.metadata.annotations = Some(BTreeMap::from([(
        "k8s.v1.cni.cncf.io/networks".to_owned(),
        "default/long".to_owned(),
    )]));
    bed.pods().create(&PostParams::default(), &p).await.unwrap();
    common::event_containing(
        &bed.client,
        &name,
        "more than the 253 an IP resource's name",
    )
    .await;
    let key = format!("{name}.default.{provider}");
    assert!(ctx.ipam.get(&key).is_none());
    assert!(ctx.ipam.records().is_empty(), "{:?}", ctx.ipam.records());
    let ips = Api::<IP>::all(bed.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(ips.items.is_empty());
    task.abort();
}

/// The `bandwidth` of a networks-annotation element (bit/s, as Multus passes it to plugins as
/// the `bandwidth` capability) becomes the attachment's QoS rows (before: dropped).
#[tokio::test]
async fn an_elements_bandwidth_becomes_the_attachments_qos_rows() {
    let bed = Bed::start().await;
    let config = bed.config();
    let ctx = run::start(bed.client.clone(), &config).await.unwrap();
    let task = tokio::spawn(run::run(Arc::clone(&ctx), config));
    let mut p = pod("bw");
    p.metadata.annotations = Some(BTreeMap::from([(
        "k8s.v1.cni.cncf.io/networks".to_owned(),
        r#"[{"name":"net1","namespace":"default","bandwidth":{"ingressRate":2000000,"egressRate":1000000}}]"#.to_owned(),
    )]));
    bed.pods().create(&PostParams::default(), &p).await.unwrap();
    wait_pod_allocated(&bed, "bw", PROVIDER).await;
    let rows = bed
        .nb
        .standalone()
        .nbctl(&[
            "--format=csv",
            "--data=bare",
            "--no-headings",
            "--columns=direction,bandwidth",
            "list",
            "QoS",
        ])
        .unwrap();
    let mut rows: Vec<&str> = rows.lines().collect();
    rows.sort_unstable();
    assert_eq!(
        rows,
        [
            // Out of the pod (egressRate), into it (ingressRate); kbit/s, the burst is the rate.
            "from-lport,burst=1000 rate=1000",
            "to-lport,burst=2000 rate=2000"
        ],
        "{rows:?}"
    );
    task.abort();
}
