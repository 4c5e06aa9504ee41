//! Lifecycles beyond one pod: StatefulSet pods keep their attachment addresses across
//! recreation (upstream Kube-OVN's behaviour) and give them back when the StatefulSet scales
//! below them or is deleted; the GC removes switches and routers whose Subnet or Vpc is gone.
//! Real kube-apiserver + kube-controller-manager (its StatefulSet controller creates the pods),
//! real NB ovsdb-server, the controller in-process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed assertion is the report.

use std::time::Duration;

use crds::{IP, Subnet, Vpc};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Resource, ResourceExt};

const PROVIDER: &str = "sts-net.default.ovn";
const WAIT: Duration = Duration::from_secs(60);

mod common;
use common::{Bed, yaml};

/// Waits until pod `name` exists with a uid other than `not_uid` and has its attachment;
/// returns (uid, address).
async fn allocated(pods: &Api<Pod>, name: &str, not_uid: &str) -> (String, String) {
    let key = format!("{PROVIDER}.kubernetes.io/allocated");
    let not_uid = not_uid.to_owned();
    let cond = move |p: Option<&Pod>| {
        p.is_some_and(|p| {
            p.uid().as_deref() != Some(not_uid.as_str())
                && p.annotations().get(&key).is_some_and(|v| v == "true")
        })
    };
    let p = tokio::time::timeout(WAIT, await_condition(pods.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("pod {name} never got its attachment"))
        .unwrap()
        .unwrap();
    let ip = p.annotations()[&format!("{PROVIDER}.kubernetes.io/ip_address")].clone();
    (p.uid().unwrap(), ip)
}

async fn gone(client: &kube::Client, key: &str) {
    tokio::time::timeout(
        WAIT,
        await_condition(Api::<IP>::all(client.clone()), key, |o: Option<&IP>| {
            o.is_none()
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("IP {key} was never released"))
    .unwrap();
}

/// Waits until the allocator has let `key` go (the last step of a release, after the port and
/// the record).
async fn lease_gone(ctx: &controller::context::Context, key: &str) {
    tokio::time::timeout(WAIT, async {
        while ctx.ipam.get(key).is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the allocator kept {key}"));
}

/// The bed of these tests: the network `sts-net` → Subnet `subnet-sts` in Vpc `vpc-sts`.
async fn bed() -> Bed {
    Bed::start(
        "sts-net",
        PROVIDER,
        "vpc-sts",
        "subnet-sts",
        "10.120.0.0/24",
    )
    .await
}

#[tokio::test]
async fn statefulset_pods_get_their_addresses_back_until_scaled_away() {
    let Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller,
    } = bed().await;
    // No kubelet at this level: the pods stay Pending, which is all the StatefulSet controller
    // and ours need. Parallel, so both pods are created without waiting for readiness.
    let sts: StatefulSet = yaml(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  podManagementPolicy: Parallel
  serviceName: web
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {k8s.v1.cni.cncf.io/networks: default/sts-net}
    spec:
      containers: [{name: app, image: nginx}]
"#,
    );
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    sets.create(&PostParams::default(), &sts).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (uid0, ip0) = allocated(&pods, "web-0", "").await;
    let (_, ip1) = allocated(&pods, "web-1", "").await;
    assert_ne!(ip0, ip1);
    let key0 = format!("web-0.default.{PROVIDER}");
    let record = Api::<IP>::all(client.clone()).get(&key0).await.unwrap();
    assert_eq!(record.spec.pod_type, "StatefulSet");

    // A plain pod takes an address while web-0 is away: it must not get web-0's.
    let plain: Pod = yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: plain\n  namespace: default\n  annotations: {k8s.v1.cni.cncf.io/networks: default/sts-net}\nspec:\n  containers: [{name: app, image: nginx}]\n",
    );
    // web-0 is deleted; its StatefulSet recreates it and it gets the same address back.
    pods.delete("web-0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &plain).await.unwrap();
    let (new_uid0, again0) = allocated(&pods, "web-0", &uid0).await;
    assert_ne!(new_uid0, uid0);
    assert_eq!(again0, ip0, "web-0 lost its address across recreation");
    // The address stayed, and the record now names the new pod object.
    let record = Api::<IP>::all(client.clone()).get(&key0).await.unwrap();
    assert_eq!(record.spec.pod_uid, new_uid0);
    let (_, plain_ip) = allocated(&pods, "plain", "").await;
    assert!(plain_ip != ip0 && plain_ip != ip1, "{plain_ip}");
    // A garbage collection in between keeps it too (its StatefulSet still wants web-0).
    let report = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(report.ips, 0, "{report:?}");
    assert!(nb_server.nbctl(&["show"]).unwrap().contains(&key0));

    // Scaled to 1: web-1 goes, and so do its address, record and port.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let key1 = format!("web-1.default.{PROVIDER}");
    gone(&client, &key1).await;
    assert!(!nb_server.nbctl(&["show"]).unwrap().contains(&key1));
    lease_gone(&ctx, &key1).await;

    // The StatefulSet deleted (its pods with it): web-0's address goes too.
    sets.delete("web", &DeleteParams::foreground())
        .await
        .unwrap();
    gone(&client, &key0).await;
    lease_gone(&ctx, &key0).await;
    assert!(!nb_server.nbctl(&["show"]).unwrap().contains(&key0));

    controller.abort();
}

#[tokio::test]
async fn the_gc_removes_switches_and_routers_whose_subnet_or_vpc_is_gone() {
    let Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller,
    } = bed().await;
    let subnets: Api<Subnet> = Api::all(client.clone());
    // Ready is set once its switch is in NB.
    tokio::time::timeout(
        WAIT,
        await_condition(subnets.clone(), "subnet-sts", |s: Option<&Subnet>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|st| {
                    crds::condition::find_condition(&st.conditions, crds::condition::READY)
                })
                .is_some_and(|c| c.status == crds::ConditionStatus::True)
        }),
    )
    .await
    .expect("subnet-sts never became Ready")
    .unwrap();
    assert!(controller::nb::switch_exists(&ctx.nb, "subnet-sts"));
    // Someone else's rows are never touched.
    nb_server.nbctl(&["ls-add", "foreign"]).unwrap();
    nb_server.nbctl(&["lr-add", "foreign-router"]).unwrap();

    // The controller is down while both objects are force-deleted (finalizers stripped).
    controller.abort();
    let strip = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
    subnets
        .patch("subnet-sts", &PatchParams::default(), &strip)
        .await
        .unwrap();
    subnets
        .delete("subnet-sts", &DeleteParams::default())
        .await
        .unwrap();
    let vpcs: Api<Vpc> = Api::all(client.clone());
    vpcs.patch("vpc-sts", &PatchParams::default(), &strip)
        .await
        .unwrap();
    vpcs.delete("vpc-sts", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(subnets.clone(), "subnet-sts", |o: Option<&Subnet>| {
            o.is_none()
        }),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(vpcs.clone(), "vpc-sts", |o: Option<&Vpc>| o.is_none()),
    )
    .await
    .unwrap()
    .unwrap();

    let report = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!((report.switches, report.routers), (1, 1), "{report:?}");
    let switches = nb_server.nbctl(&["ls-list"]).unwrap();
    assert!(
        !switches.contains("subnet-sts") && switches.contains("foreign"),
        "{switches}"
    );
    let routers = nb_server.nbctl(&["lr-list"]).unwrap();
    assert!(
        !routers.contains("vpc-sts") && routers.contains("foreign-router"),
        "{routers}"
    );
    let ports = nb_server
        .nbctl(&["--bare", "--columns=name", "list", "Logical_Router_Port"])
        .unwrap();
    assert!(ports.trim().is_empty(), "router ports left: {ports}");
    // Nothing more to collect the second time.
    let again = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(again, controller::gc::Report::default());
}

#[tokio::test]
async fn an_ip_record_deleted_by_hand_while_its_pod_runs_comes_back() {
    let Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller,
    } = bed().await;
    let pod: Pod = yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: keeper\n  namespace: default\n  annotations: {k8s.v1.cni.cncf.io/networks: default/sts-net}\nspec:\n  containers: [{name: app, image: nginx}]\n",
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let (_, ip) = allocated(&pods, "keeper", "").await;
    let key = format!("keeper.default.{PROVIDER}");
    let ips: Api<IP> = Api::all(client.clone());
    let first = ips.get(&key).await.unwrap();
    assert_eq!(
        first.finalizers(),
        [controller::ip::FINALIZER.to_owned()],
        "every record carries the finalizer"
    );

    // Deleted by hand while the pod runs: the finalizer holds it, the controller writes it again.
    ips.delete(&key, &DeleteParams::default()).await.unwrap();
    let old_uid = first.uid().unwrap();
    let back = tokio::time::timeout(
        WAIT,
        await_condition(ips.clone(), &key, move |o: Option<&IP>| {
            o.is_some_and(|ip| {
                ip.uid().as_deref() != Some(old_uid.as_str())
                    && ip.meta().deletion_timestamp.is_none()
            })
        }),
    )
    .await
    .expect("the record never came back")
    .unwrap()
    .unwrap();
    assert_eq!(back.spec.ip_address, ip);
    assert_eq!(back.finalizers(), [controller::ip::FINALIZER.to_owned()]);
    assert_eq!(
        ctx.ipam.get(&key).map(|l| l.ip_address()),
        Some(ip.clone()),
        "the address stays with its pod"
    );
    assert!(nb_server.nbctl(&["show"]).unwrap().contains(&key));

    // With the controller down, someone strips the finalizer and deletes the record: the next
    // garbage collection (of the controller that still holds the lease) writes it again.
    controller.abort();
    let strip = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
    ips.patch(&key, &PatchParams::default(), &strip)
        .await
        .unwrap();
    ips.delete(&key, &DeleteParams::default()).await.unwrap();
    gone(&client, &key).await;
    let report = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(report.restored, 1, "{report:?}");
    assert_eq!(ips.get(&key).await.unwrap().spec.ip_address, ip);
    assert!(nb_server.nbctl(&["show"]).unwrap().contains(&key));
    // Two more collections (an orphan lease is released at the second): nothing changes.
    for _ in 0..2 {
        assert_eq!(
            controller::gc::collect(&ctx).await.unwrap(),
            controller::gc::Report::default()
        );
    }
    assert!(ctx.ipam.get(&key).is_some());

    // The pod deleted: the record, its finalizer, the port and the address all go.
    pods.delete("keeper", &DeleteParams::default())
        .await
        .unwrap();
    let report = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(report.ips, 1, "{report:?}");
    gone(&client, &key).await;
    assert!(ctx.ipam.get(&key).is_none());
    assert!(!nb_server.nbctl(&["show"]).unwrap().contains(&key));
}

#[tokio::test]
async fn an_ip_pool_list_hands_out_its_addresses_in_order_then_says_exhausted() {
    let Bed {
        _cp,
        client,
        nb_server: _nb,
        ctx: _ctx,
        controller,
    } = bed().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pooled = |name: &str| -> Pod {
        yaml(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: default/sts-net\n    {PROVIDER}.kubernetes.io/ip_pool: 10.120.0.50,10.120.0.51\nspec:\n  containers: [{{name: app, image: nginx}}]\n"
        ))
    };
    pods.create(&PostParams::default(), &pooled("pool-a"))
        .await
        .unwrap();
    let (_, a) = allocated(&pods, "pool-a", "").await;
    pods.create(&PostParams::default(), &pooled("pool-b"))
        .await
        .unwrap();
    let (_, b) = allocated(&pods, "pool-b", "").await;
    assert_eq!((a.as_str(), b.as_str()), ("10.120.0.50", "10.120.0.51"));
    pods.create(&PostParams::default(), &pooled("pool-c"))
        .await
        .unwrap();
    let found = common::event_containing(&client, "pool-c", "exhausted")
        .await
        .message
        .unwrap_or_default();
    assert!(found.contains("10.120.0.50,10.120.0.51"), "{found}");
    // pool-a goes: pool-c gets its address on a retry.
    pods.delete("pool-a", &DeleteParams::default())
        .await
        .unwrap();
    let (_, c) = allocated(&pods, "pool-c", "").await;
    assert_eq!(c, "10.120.0.50");
    controller.abort();
}

#[tokio::test]
async fn a_vpc_nat_gateway_that_cannot_be_realised_says_why() {
    use crds::VpcNatGateway;
    use crds::condition::{READY, VALIDATED, find_condition};
    let Bed {
        _cp,
        client,
        nb_server: _nb,
        ctx: _ctx,
        controller,
    } = bed().await;
    let gateways: Api<VpcNatGateway> = Api::all(client.clone());
    // The manual's example with this bed's Vpc and Subnet, and three broken ones.
    // (name, vpc, subnet, lanIp, valid, Ready reason, a piece of the message)
    let cases = [
        // Valid, but this bed has no external network: refused until it exists (the gateway
        // itself is realised in tests/nat_gateway.rs).
        (
            "gw-ok",
            "vpc-sts",
            "subnet-sts",
            "10.120.0.254",
            false,
            "ExternalNetworkNotFound",
            "kube-system/ovn-vpc-external-network",
        ),
        (
            "gw-outside",
            "vpc-sts",
            "subnet-sts",
            "10.99.0.1",
            false,
            "InvalidLanIp",
            "10.99.0.1 is outside Subnet subnet-sts",
        ),
        (
            "gw-gateway",
            "vpc-sts",
            "subnet-sts",
            "10.120.0.1",
            false,
            "InvalidLanIp",
            "gateway address",
        ),
        (
            "gw-novpc",
            "nope",
            "subnet-sts",
            "10.120.0.254",
            false,
            "VpcNotFound",
            "Vpc nope does not exist",
        ),
    ];
    for (name, vpc, subnet, lan, _, _, _) in cases {
        let gw: VpcNatGateway = yaml(&format!(
            "apiVersion: kubeovn.io/v1\nkind: VpcNatGateway\nmetadata:\n  name: {name}\nspec:\n  vpc: {vpc}\n  subnet: {subnet}\n  lanIp: \"{lan}\"\n"
        ));
        gateways.create(&PostParams::default(), &gw).await.unwrap();
    }
    for (name, _, _, _, valid, reason, says) in cases {
        let want = reason.to_owned();
        let gw = tokio::time::timeout(
            WAIT,
            await_condition(gateways.clone(), name, move |g: Option<&VpcNatGateway>| {
                g.and_then(|g| g.status.as_ref())
                    .and_then(|s| find_condition(&s.conditions, READY))
                    .is_some_and(|c| c.reason == want)
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: no Ready condition with reason {reason}"))
        .unwrap()
        .unwrap();
        let status = gw.status.unwrap();
        let validated = find_condition(&status.conditions, VALIDATED).unwrap();
        assert_eq!(
            validated.status == crds::ConditionStatus::True,
            valid,
            "{name}: {validated:?}"
        );
        let ready = find_condition(&status.conditions, READY).unwrap();
        assert_eq!(ready.status, crds::ConditionStatus::False, "{name}");
        let event = common::event_containing_on(&client, "VpcNatGateway", name, says).await;
        assert_eq!(event.type_.as_deref(), Some("Warning"), "{name}");
        assert_eq!(event.reason.as_deref(), Some(reason), "{name}");
    }
    controller.abort();
}

/// A pod on `sts-net` bound to a node that has no kubelet: its deletion waits its whole grace
/// period, and the object stays until deleted with no grace.
fn bound(name: &str) -> Pod {
    yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{k8s.v1.cni.cncf.io/networks: default/sts-net}}\nspec:\n  nodeName: node-gone\n  containers: [{{name: app, image: nginx}}]\n"
    ))
}

/// A terminating pod keeps its address, record and port (its containers still use them); a
/// finished pod (`Failed`: a Job, an eviction) gives them back.
#[tokio::test]
async fn a_terminating_pod_keeps_its_address_and_a_finished_one_gives_it_back() {
    let Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller: _controller,
    } = bed().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in ["leaving", "done"] {
        pods.create(&PostParams::default(), &bound(name))
            .await
            .unwrap();
    }
    let (_, leaving_ip) = allocated(&pods, "leaving", "").await;
    allocated(&pods, "done", "").await;

    let dp = DeleteParams {
        grace_period_seconds: Some(300),
        ..DeleteParams::default()
    };
    pods.delete("leaving", &dp).await.unwrap();
    assert!(
        pods.get("leaving")
            .await
            .unwrap()
            .meta()
            .deletion_timestamp
            .is_some()
    );
    let report = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(report.ips, 0, "{report:?}");
    let key = format!("leaving.default.{PROVIDER}");
    let ips: Api<IP> = Api::all(client.clone());
    assert_eq!(ips.get(&key).await.unwrap().spec.ip_address, leaving_ip);
    assert_eq!(ctx.ipam.get(&key).map(|l| l.ip_address()), Some(leaving_ip));
    assert!(nb_server.nbctl(&["show"]).unwrap().contains(&key));

    // Finished: the address goes back.
    pods.patch_status(
        "done",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"phase": "Failed"}})),
    )
    .await
    .unwrap();
    controller::gc::collect(&ctx).await.unwrap();
    let done = format!("done.default.{PROVIDER}");
    gone(&client, &done).await;
    assert!(ctx.ipam.get(&done).is_none());
    assert!(!nb_server.nbctl(&["show"]).unwrap().contains(&done));
}

/// A pod deleted and recreated under the same name at once (no Deployment, same YAML) is
/// another pod object: the record, lease and port its name finds are its predecessor's. The
/// new pod's reconcile releases them (port, record, address) and records its own, with its
/// UID; the GC, finding a predecessor's record while the new pod waits, releases it rather
/// than keeping it for the new pod's name. Before, the new pod took over the lease and record
/// as they were.
#[tokio::test]
async fn a_pod_recreated_under_its_name_at_once_gets_its_own_record_not_its_predecessors() {
    let Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller,
    } = bed().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ips: Api<IP> = Api::all(client.clone());
    let pod = |name: &str| -> Pod {
        yaml(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{k8s.v1.cni.cncf.io/networks: default/sts-net}}\nspec:\n  containers: [{{name: app, image: nginx}}]\n"
        ))
    };
    for name in ["again", "waits"] {
        pods.create(&PostParams::default(), &pod(name))
            .await
            .unwrap();
    }
    let (uid1, _) = allocated(&pods, "again", "").await;
    let (waits_uid1, _) = allocated(&pods, "waits", "").await;
    let key = format!("again.default.{PROVIDER}");
    let first = ips.get(&key).await.unwrap();
    assert_eq!(first.spec.pod_uid, uid1, "the record names its pod object");
    let lsp_uuid = || {
        nb_server
            .nbctl(&[
                "--bare",
                "--columns=_uuid",
                "find",
                "Logical_Switch_Port",
                &format!("name={key}"),
            ])
            .unwrap()
            .trim()
            .to_owned()
    };
    let first_port = lsp_uuid();
    assert!(!first_port.is_empty());

    // From here on nothing runs but what the test calls: the recreation is "at once", before
    // any collection or deletion handling.
    controller.abort();
    let _ = controller.await;
    for name in ["again", "waits"] {
        pods.delete(name, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
        pods.create(&PostParams::default(), &pod(name))
            .await
            .unwrap();
    }
    let again = pods.get("again").await.unwrap();
    let uid2 = again.uid().unwrap();
    assert_ne!(uid2, uid1);
    controller::pod::reconcile(std::sync::Arc::new(again), ctx.clone())
        .await
        .unwrap();
    let second = ips.get(&key).await.unwrap();
    assert_eq!(
        second.spec.pod_uid, uid2,
        "the record is still the predecessor's"
    );
    assert_ne!(
        second.uid(),
        first.uid(),
        "the predecessor's record was taken over, not released and written anew"
    );
    assert_ne!(
        lsp_uuid(),
        first_port,
        "the predecessor's port was taken over"
    );
    let annotated = pods.get("again").await.unwrap();
    let address = &annotated.annotations()[&format!("{PROVIDER}.kubernetes.io/ip_address")];
    assert_eq!(
        ctx.ipam.get(&key).map(|l| l.ip_address()).as_ref(),
        Some(address)
    );
    assert_eq!(&second.spec.ip_address, address);

    // The GC meets `waits`' predecessor's record while the new `waits` is not reconciled yet:
    // not the new pod's, so it goes (port, record, address).
    let waits_key = format!("waits.default.{PROVIDER}");
    assert_eq!(ips.get(&waits_key).await.unwrap().spec.pod_uid, waits_uid1);
    let report = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(report.ips, 1, "{report:?}");
    assert!(ips.get_opt(&waits_key).await.unwrap().is_none());
    assert!(ctx.ipam.get(&waits_key).is_none());
    assert!(!nb_server.nbctl(&["show"]).unwrap().contains(&waits_key));
    // `again`'s own record is left alone.
    assert_eq!(ips.get(&key).await.unwrap().spec.pod_uid, uid2);
    assert!(ctx.ipam.get(&key).is_some());
}

/// A terminating pod keeps its address, record and port during its grace period (a record
/// deleted by hand meanwhile comes back: the containers still use the address); once the grace
/// period has ended, the GC gives them back although the object still exists (a pod stuck
/// terminating on a lost node must not hold its address forever; upstream's `isPodAlive`).
#[tokio::test]
async fn a_terminating_pod_keeps_its_record_during_its_grace_period_and_not_after() {
    let Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller: _controller,
    } = bed().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ips: Api<IP> = Api::all(client.clone());
    for name in ["lingering", "expired"] {
        pods.create(&PostParams::default(), &bound(name))
            .await
            .unwrap();
    }
    let (_, address) = allocated(&pods, "lingering", "").await;
    let (_, expired_address) = allocated(&pods, "expired", "").await;
    let key = format!("lingering.default.{PROVIDER}");
    let expired = format!("expired.default.{PROVIDER}");
    let delete = |grace| DeleteParams {
        grace_period_seconds: Some(grace),
        ..DeleteParams::default()
    };
    pods.delete("lingering", &delete(300)).await.unwrap();
    pods.delete("expired", &delete(1)).await.unwrap();

    // During the grace period its record, deleted by hand, comes back with the same address.
    let old = ips.get(&key).await.unwrap();
    ips.delete(&key, &DeleteParams::default()).await.unwrap();
    let old_uid = old.uid();
    tokio::time::timeout(
        WAIT,
        await_condition(ips.clone(), &key, move |o: Option<&IP>| {
            o.is_some_and(|ip| ip.uid() != old_uid && ip.meta().deletion_timestamp.is_none())
        }),
    )
    .await
    .expect("the terminating pod's record was not written again")
    .unwrap();
    assert_eq!(
        ctx.ipam.get(&key).map(|l| l.ip_address()),
        Some(address.clone())
    );

    // The other one's grace period has to be over: wait for the clock, not for an event.
    let ends = pods
        .get("expired")
        .await
        .unwrap()
        .meta()
        .deletion_timestamp
        .clone()
        .unwrap()
        .0;
    while k8s_openapi::jiff::Timestamp::now() <= ends {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(report.ips, 1, "{report:?}");
    gone(&client, &expired).await;
    lease_gone(&ctx, &expired).await;
    assert!(!nb_server.nbctl(&["show"]).unwrap().contains(&expired));
    assert!(pods.get_opt("expired").await.unwrap().is_some());
    // The one still in its grace period keeps everything.
    assert_eq!(ips.get(&key).await.unwrap().spec.ip_address, address);
    assert!(nb_server.nbctl(&["show"]).unwrap().contains(&key));
    assert_ne!(address, expired_address);

    // Gone: everything goes.
    pods.delete("lingering", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    gone(&client, &key).await;
    lease_gone(&ctx, &key).await;
    assert!(!nb_server.nbctl(&["show"]).unwrap().contains(&key));
}

/// A lease whose IP CR is still being created (a slow apiserver) is no orphan: back-to-back
/// collections leave it; once nothing is recording it, the second collection that finds it
/// without a record releases it.
#[tokio::test]
async fn a_lease_whose_record_is_on_its_way_survives_back_to_back_collections() {
    let Bed {
        _cp,
        client: _client,
        nb_server: _nb,
        ctx,
        controller,
    } = bed().await;
    let deadline = std::time::Instant::now() + WAIT;
    while ctx.ipam.lock().subnet_info("subnet-sts").is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the subnet never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Collections from here on are this test's only.
    controller.abort();
    let key = format!("slow.default.{PROVIDER}");
    ctx.ipam
        .allocate("subnet-sts", &key, &ipam::Request::random())
        .unwrap();
    {
        let _on_its_way = ctx.pending_ips.hold(&key);
        for _ in 0..3 {
            let report = controller::gc::collect(&ctx).await.unwrap();
            assert_eq!(report.leases, 0, "{report:?}");
        }
        assert!(ctx.ipam.get(&key).is_some());
    }
    let first = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(first.leases, 0, "suspected at the first: {first:?}");
    let second = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(second.leases, 1, "{second:?}");
    assert!(ctx.ipam.get(&key).is_none());
}

/// The IPPool named by a pod's `ip_pool` annotation gives it an address from the pool (before:
/// `UnknownPool`, pools were never loaded); a pod without one never takes a pool address; a
/// pool the allocator refuses, or whose Subnet is missing, says so by condition and Event; the
/// pool survives a controller restart (loaded before the records).
#[tokio::test]
async fn an_ip_pool_object_gives_its_addresses_to_the_pods_that_name_it() {
    let Bed {
        _cp,
        client,
        nb_server,
        ctx: _ctx,
        controller,
    } = bed().await;
    let pools: Api<crds::IPPool> = Api::all(client.clone());
    let pool = |name: &str, subnet: &str, ips: &str| -> crds::IPPool {
        yaml(&format!(
            "apiVersion: kubeovn.io/v1\nkind: IPPool\nmetadata: {{name: {name}}}\nspec: {{subnet: {subnet}, ips: [\"{ips}\"]}}\n"
        ))
    };
    pools
        .create(
            &PostParams::default(),
            &pool("pool-a", "subnet-sts", "10.120.0.200..10.120.0.201"),
        )
        .await
        .unwrap();
    let ready = |p: Option<&crds::IPPool>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
            crds::condition::find_condition(&s.conditions, crds::condition::READY)
                .is_some_and(|c| c.status == crds::condition::ConditionStatus::True)
        })
    };
    tokio::time::timeout(WAIT, await_condition(pools.clone(), "pool-a", ready))
        .await
        .expect("pool-a never Ready")
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, ip_pool: Option<&str>| -> Pod {
        let extra = ip_pool
            .map(|p| format!(", {PROVIDER}.kubernetes.io/ip_pool: {p}"))
            .unwrap_or_default();
        yaml(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{k8s.v1.cni.cncf.io/networks: default/sts-net{extra}}}\nspec:\n  containers: [{{name: app, image: nginx}}]\n"
        ))
    };
    pods.create(&PostParams::default(), &pod("in-pool", Some("pool-a")))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("outside", None))
        .await
        .unwrap();
    let (_, in_pool) = allocated(&pods, "in-pool", "").await;
    let (_, outside) = allocated(&pods, "outside", "").await;
    assert!(
        ["10.120.0.200", "10.120.0.201"].contains(&in_pool.as_str()),
        "{in_pool}"
    );
    assert!(
        !["10.120.0.200", "10.120.0.201"].contains(&outside.as_str()),
        "{outside}"
    );

    // Refused: outside its Subnet; and a Subnet that does not exist.
    pools
        .create(
            &PostParams::default(),
            &pool("pool-out", "subnet-sts", "10.99.0.5"),
        )
        .await
        .unwrap();
    pools
        .create(
            &PostParams::default(),
            &pool("pool-lost", "no-such-subnet", "10.120.0.50"),
        )
        .await
        .unwrap();
    let event = common::event_containing_on(
        &client,
        "IPPool",
        "pool-out",
        "\"10.99.0.5\" is not inside Subnet subnet-sts",
    )
    .await;
    assert_eq!(event.reason.as_deref(), Some("OutsideSubnet"));
    // Overlapping another pool of the Subnet: the allocator refuses it.
    pools
        .create(
            &PostParams::default(),
            &pool("pool-b", "subnet-sts", "10.120.0.201..10.120.0.202"),
        )
        .await
        .unwrap();
    let event = common::event_containing_on(&client, "IPPool", "pool-b", "IPPool pool-b").await;
    assert_eq!(event.reason.as_deref(), Some("IPAMRefused"));
    let event = common::event_containing_on(
        &client,
        "IPPool",
        "pool-lost",
        "Subnet no-such-subnet does not exist",
    )
    .await;
    assert_eq!(event.reason.as_deref(), Some("SubnetNotFound"));

    // A restart: the pool is loaded before the records, so the next pool pod takes the other
    // pool address and the pool then says it is exhausted.
    controller.abort();
    let (_ctx, controller) = common::start_controller(&client, &nb_server, 4).await;
    pods.create(&PostParams::default(), &pod("in-pool-2", Some("pool-a")))
        .await
        .unwrap();
    let (_, second) = allocated(&pods, "in-pool-2", "").await;
    assert!(
        ["10.120.0.200", "10.120.0.201"].contains(&second.as_str()) && second != in_pool,
        "{second} (first: {in_pool})"
    );
    pods.create(&PostParams::default(), &pod("in-pool-3", Some("pool-a")))
        .await
        .unwrap();
    common::event_containing(&client, "in-pool-3", "pool-a").await;

    // A pool serving a namespace: that namespace's pods on the Subnet draw from it unasked.
    let mut ns_pool = pool("pool-ns", "subnet-sts", "10.120.0.210..10.120.0.211");
    ns_pool.spec.namespaces = vec!["pooled".into()];
    pools
        .create(&PostParams::default(), &ns_pool)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, await_condition(pools.clone(), "pool-ns", ready))
        .await
        .expect("pool-ns never Ready")
        .unwrap();
    let mut ns = k8s_openapi::api::core::v1::Namespace::default();
    ns.metadata.name = Some("pooled".into());
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pooled: Api<Pod> = Api::namespaced(client.clone(), "pooled");
    let mut p = pod("unasked", None);
    p.metadata.namespace = Some("pooled".into());
    pooled.create(&PostParams::default(), &p).await.unwrap();
    let (_, unasked) = allocated(&pooled, "unasked", "").await;
    assert!(
        ["10.120.0.210", "10.120.0.211"].contains(&unasked.as_str()),
        "{unasked}"
    );

    // Deleted: its addresses join the Subnet again; what it gave stays with the pods.
    pools
        .delete("pool-a", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(pools.clone(), "pool-a", |p: Option<&crds::IPPool>| {
            p.is_none()
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let key = format!("in-pool.default.{PROVIDER}");
    assert_eq!(
        Api::<IP>::all(client.clone())
            .get(&key)
            .await
            .unwrap()
            .spec
            .ip_address,
        in_pool
    );
    controller.abort();
}
