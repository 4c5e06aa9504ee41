//! The controller against a real kube-apiserver (etcd, controller-manager, scheduler) and a real
//! OVN Northbound ovsdb-server (L2): the seed's objects applied through the API, attachments
//! allocated, recorded and wired, errors reported as Events, and addresses freed on deletion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use crds::{IP, NetworkAttachmentDefinition, Subnet, Vpc};
use e2e::k8s::ControlPlane;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};
use ovn_api::testing::{OvsdbServer, SchemaKind};

const PROVIDER: &str = "kube-ovn-vpc-network.default.ovn";
const WAIT: Duration = Duration::from_secs(60);

mod common;
use common::yaml;

fn pod(name: &str, networks: &str) -> Pod {
    let mut p: Pod = yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  containers:\n  - name: app\n    image: nginx\n"
    ));
    p.metadata.annotations = Some(
        [(
            "k8s.v1.cni.cncf.io/networks".to_owned(),
            networks.to_owned(),
        )]
        .into(),
    );
    p
}

async fn allocated(pods: &Api<Pod>, name: &str, provider: &str) -> Pod {
    let key = format!("{provider}.kubernetes.io/allocated");
    let cond = move |p: Option<&Pod>| {
        p.is_some_and(|p| p.annotations().get(&key).is_some_and(|v| v == "true"))
    };
    tokio::time::timeout(WAIT, await_condition(pods.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("pod {name} never got {provider} allocated"))
        .unwrap()
        .unwrap()
}

async fn event_for(client: &Client, pod: &str, needle: &str) -> String {
    let e = common::event_containing(client, pod, needle).await;
    assert_eq!(e.reason.as_deref(), Some("AttachmentFailed"));
    e.message.unwrap_or_default()
}

#[tokio::test]
async fn the_seed_attachment_and_static_ip_work_and_errors_become_events() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client();
    e2e::cluster::install_crds(&client).await.unwrap();
    let nb_server = OvsdbServer::start(SchemaKind::Northbound).unwrap();

    // The seed's objects, as written in the manual.
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), "default");
    let nad: NetworkAttachmentDefinition = yaml(crds::seed::NAD);
    nads.create(&PostParams::default(), &nad).await.unwrap();
    let unbound: NetworkAttachmentDefinition = yaml(
        r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: unbound, namespace: default}
spec:
  config: '{"cniVersion":"0.3.1","type":"kube-ovn","provider":"unbound.default.ovn"}'
"#,
    );
    nads.create(&PostParams::default(), &unbound).await.unwrap();
    let docs: Vec<&str> = crds::seed::VPC_AND_SUBNET.split("\n---\n").collect();
    let (vpc, subnet): (Vpc, Subnet) = (yaml(docs[0]), yaml(docs[1]));
    Api::<Vpc>::all(client.clone())
        .create(&PostParams::default(), &vpc)
        .await
        .unwrap();
    Api::<Subnet>::all(client.clone())
        .create(&PostParams::default(), &subnet)
        .await
        .unwrap();

    let (_ctx, controller) = common::start_controller(&client, &nb_server, 4).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod("multi-network-pod", "default/kube-ovn-vpc-network"),
    )
    .await
    .unwrap();
    let p = allocated(&pods, "multi-network-pod", PROVIDER).await;
    let a = p.annotations();
    let ip: std::net::Ipv4Addr = a[&format!("{PROVIDER}.kubernetes.io/ip_address")]
        .parse()
        .unwrap();
    let cidr: ipnet::Ipv4Net = "10.100.0.0/16".parse().unwrap();
    assert!(
        cidr.contains(&ip) && ip != cidr.network() && ip.to_string() != "10.100.0.1",
        "{ip}"
    );
    assert_eq!(
        a[&format!("{PROVIDER}.kubernetes.io/cidr")],
        "10.100.0.0/16"
    );
    assert_eq!(
        a[&format!("{PROVIDER}.kubernetes.io/gateway")],
        "10.100.0.1"
    );
    assert_eq!(
        a[&format!("{PROVIDER}.kubernetes.io/logical_switch")],
        "subnet-secondary"
    );
    assert_eq!(
        a[&format!("{PROVIDER}.kubernetes.io/logical_router")],
        "vpc-secondary"
    );
    // The annotations are written under the controller's name.
    assert!(
        p.managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some(controller::context::MANAGER)),
        "{:?}",
        p.managed_fields()
    );
    let mac = &a[&format!("{PROVIDER}.kubernetes.io/mac_address")];

    // The durable record and the OVN objects.
    let key = format!("multi-network-pod.default.{PROVIDER}");
    let record = Api::<IP>::all(client.clone()).get(&key).await.unwrap();
    assert_eq!(record.spec.ip_address, ip.to_string());
    assert_eq!(&record.spec.mac_address, mac);
    let show = nb_server.nbctl(&["show"]).unwrap();
    assert!(
        show.contains("router") && show.contains("vpc-secondary"),
        "{show}"
    );
    assert!(
        show.contains("port vpc-secondary-subnet-secondary"),
        "{show}"
    );
    assert!(show.contains(&key), "{show}");
    assert_eq!(
        nb_server
            .nbctl(&["lsp-get-addresses", &key])
            .unwrap()
            .trim(),
        format!("{mac} {ip}")
    );

    // What `kubectl describe pod` shows: a Normal Event per allocation.
    let e = common::event_containing(&client, "multi-network-pod", "allocated").await;
    assert_eq!(e.type_.as_deref(), Some("Normal"), "{e:?}");
    assert_eq!(e.reason.as_deref(), Some("AttachmentsAllocated"));
    let note = e.message.unwrap_or_default();
    assert!(
        note.contains(&ip.to_string()) && note.contains("subnet-secondary"),
        "{note}"
    );
    // An attachment dropped from the pod's networks is released, with a Normal Event.
    use kube::api::{Patch, PatchParams};
    pods.create(
        &PostParams::default(),
        &pod("twice", "kube-ovn-vpc-network,kube-ovn-vpc-network"),
    )
    .await
    .unwrap();
    allocated(&pods, "twice", &format!("{PROVIDER}.net2")).await;
    let once = serde_json::json!({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/networks": "kube-ovn-vpc-network"}}});
    pods.patch("twice", &PatchParams::default(), &Patch::Merge(&once))
        .await
        .unwrap();
    let released = format!("released twice.default.{PROVIDER}.net2");
    let e = common::event_containing(&client, "twice", &released).await;
    assert_eq!(e.type_.as_deref(), Some("Normal"), "{e:?}");
    assert_eq!(e.reason.as_deref(), Some("AttachmentReleased"));
    allocated(&pods, "twice", PROVIDER).await;
    let records = Api::<IP>::all(client.clone());
    assert!(
        records
            .get_opt(&format!("twice.default.{PROVIDER}.net2"))
            .await
            .unwrap()
            .is_none_or(|r| r.metadata.deletion_timestamp.is_some()),
        "the dropped attachment's record"
    );

    // Static IP from the networks element (the seed's example), then its conflict.
    let static_net = r#"[{"name": "default/kube-ovn-vpc-network", "ips": ["10.100.0.100/16"]}]"#;
    pods.create(&PostParams::default(), &pod("static", static_net))
        .await
        .unwrap();
    let p = allocated(&pods, "static", PROVIDER).await;
    assert_eq!(
        p.annotations()[&format!("{PROVIDER}.kubernetes.io/ip_address")],
        "10.100.0.100"
    );
    let static_net2 =
        r#"[{"name": "kube-ovn-vpc-network", "namespace": "default", "ips": ["10.100.0.100/16"]}]"#;
    pods.create(&PostParams::default(), &pod("static-2", static_net2))
        .await
        .unwrap();
    let msg = event_for(&client, "static-2", "10.100.0.100").await;
    assert!(
        msg.contains("static"),
        "conflict Event should name the other owner: {msg}"
    );

    // Bad input, each reported on the pod, the pod's good attachment unaffected.
    let mixed = r#"[{"name":"missing"},{"name":"unbound"},{"name":"kube-ovn-vpc-network","interface":"net3"}]"#;
    pods.create(&PostParams::default(), &pod("mixed", mixed))
        .await
        .unwrap();
    event_for(&client, "mixed", "default/missing not found").await;
    event_for(
        &client,
        "mixed",
        "provider unbound.default.ovn is not bound to any subnet",
    )
    .await;
    allocated(&pods, "mixed", PROVIDER).await;
    pods.create(&PostParams::default(), &pod("garbled", "[{oops"))
        .await
        .unwrap();
    event_for(&client, "garbled", "k8s.v1.cni.cncf.io/networks").await;

    // Deleting the static pod frees its address (GC on delete), and the waiting pod gets it.
    pods.delete("static", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let p = allocated(&pods, "static-2", PROVIDER).await;
    assert_eq!(
        p.annotations()[&format!("{PROVIDER}.kubernetes.io/ip_address")],
        "10.100.0.100"
    );
    let gone = format!("static.default.{PROVIDER}");
    tokio::time::timeout(
        WAIT,
        await_condition(Api::<IP>::all(client.clone()), &gone, |o: Option<&IP>| {
            o.is_none()
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!nb_server.nbctl(&["show"]).unwrap().contains(&gone));

    // A NAD and its pod applied together (the manual's first example is one file): the pod
    // watch may deliver the pod before the NAD watch delivers the NAD. That is a moment's
    // wait, not a failure: every pod is attached and none gets a Warning.
    for i in 0..8 {
        let nad: NetworkAttachmentDefinition = yaml(&format!(
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n\
             metadata: {{name: together-{i}, namespace: default}}\n\
             spec:\n  config: '{{\"cniVersion\":\"0.3.1\",\"type\":\"kube-ovn\",\"provider\":\"{PROVIDER}\"}}'\n"
        ));
        nads.create(&PostParams::default(), &nad).await.unwrap();
        pods.create(
            &PostParams::default(),
            &pod(&format!("together-{i}"), &format!("together-{i}")),
        )
        .await
        .unwrap();
    }
    for i in 0..8 {
        allocated(&pods, &format!("together-{i}"), PROVIDER).await;
    }
    // Ours (the scheduler warns too: this control plane has no nodes): an allocation per
    // pod (each Event follows its pod's annotations by a moment), and not one Warning.
    let events_api =
        Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), "default");
    let started = std::time::Instant::now();
    let ours = loop {
        let ours: Vec<(String, String, String)> = events_api
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| {
                e.involved_object
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("together-"))
                    && e.reporting_component.as_deref() == Some(controller::context::MANAGER)
            })
            .map(|e| {
                (
                    e.type_.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default(),
                )
            })
            .collect();
        let allocated = ours
            .iter()
            .filter(|(_, reason, _)| reason == "AttachmentsAllocated")
            .count();
        if allocated == 8 || started.elapsed() > Duration::from_secs(20) {
            assert_eq!(allocated, 8, "{ours:?}");
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ours.iter().all(|(t, _, _)| t == "Normal"), "{ours:?}");

    controller.abort();
}
