//! VPC NAT gateways, the controller's side, against a real kube-apiserver + controller-manager
//! (its StatefulSet controller creates the gateway pod) and a real OVN NB: the manual's three
//! objects plus the external network give a StatefulSet whose pod gets both attachments (the
//! LAN one in kube-system although the manual's Vpc admits only `default`), `lanIp` is nobody
//! else's, the managed default route follows the pod's readiness and yields to the Vpc's own,
//! and everything goes with the gateway; EIPs get addresses that survive a restart; every
//! refusal is a condition and an Event and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a failed assertion is the report.

use std::time::Duration;

use controller::nat_gateway;
use controller::nat_rules;
use crds::condition::{READY, VALIDATED, find_condition};
use crds::{
    Condition, ConditionStatus, IP, IptablesDnatRule, IptablesEIP, IptablesFIPRule,
    IptablesSnatRule, NetworkAttachmentDefinition, Subnet, Vpc, VpcNatGateway,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};
use ovn_api::testing::OvsdbServer;

mod common;
use common::{Bed, yaml};

const WAIT: Duration = Duration::from_secs(60);
const LAN_PROVIDER: &str = "kube-ovn-vpc-network.default.ovn";
const EXT_PROVIDER: &str = "ovn-vpc-external-network.kube-system";
const GW_POD: &str = "vpc-nat-gw-vpc-nat-gw-0";

/// The manual's network (NAD, Vpc admitting only `default`, Subnet), the external network
/// (a macvlan NAD with our IPAM in kube-system and its Subnet) and the gateway pods'
/// ServiceAccount, with the controller running.
async fn bed() -> Bed {
    let bed = Bed::start(
        "kube-ovn-vpc-network",
        LAN_PROVIDER,
        "vpc-secondary",
        "subnet-secondary",
        "10.100.0.0/16",
    )
    .await;
    let c = &bed.client;
    Api::<Vpc>::all(c.clone())
        .patch(
            "vpc-secondary",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"namespaces": ["default"]}})),
        )
        .await
        .unwrap();
    let nad: NetworkAttachmentDefinition = yaml(&format!(
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata: {{name: ovn-vpc-external-network, namespace: kube-system}}\nspec:\n  config: '{{\"cniVersion\":\"0.3.1\",\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":{{\"type\":\"kube-ovn\",\"server_socket\":\"/run/openvswitch/kube-ovn-daemon.sock\",\"provider\":\"{EXT_PROVIDER}\"}}}}'\n"
    ));
    Api::<NetworkAttachmentDefinition>::namespaced(c.clone(), "kube-system")
        .create(&PostParams::default(), &nad)
        .await
        .unwrap();
    let s: Subnet = yaml(&format!(
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {{name: ovn-vpc-external-network}}\nspec: {{cidr: \"172.18.0.0/24\", provider: {EXT_PROVIDER}}}\n"
    ));
    Api::<Subnet>::all(c.clone())
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
    let sa: ServiceAccount = yaml(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: vpc-nat-gw, namespace: kube-system}\n",
    );
    Api::<ServiceAccount>::namespaced(c.clone(), "kube-system")
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    bed
}

/// The manual's VpcNatGateway, as written.
async fn create_manual_gateway(client: &Client) {
    let gw: VpcNatGateway = yaml(
        "apiVersion: kubeovn.io/v1\nkind: VpcNatGateway\nmetadata:\n  name: vpc-nat-gw\nspec:\n  vpc: vpc-secondary\n  subnet: subnet-secondary\n  lanIp: \"10.100.0.254\"\n",
    );
    Api::<VpcNatGateway>::all(client.clone())
        .create(&PostParams::default(), &gw)
        .await
        .unwrap();
}

/// Waits until the condition `type_` of `name` satisfies `ok`; returns the object.
async fn wait_condition<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    conditions: fn(&K) -> Vec<Condition>,
    ok: impl Fn(&Condition) -> bool + Send + 'static,
    type_: &'static str,
) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let found = tokio::time::timeout(
        WAIT,
        await_condition(api.clone(), name, move |o: Option<&K>| {
            o.is_some_and(|o| find_condition(&conditions(o), type_).is_some_and(&ok))
        }),
    )
    .await;
    match found {
        Ok(o) => o.unwrap().unwrap(),
        Err(_) => {
            let now = api.get_opt(name).await;
            panic!("{name}: {what} never happened; now {now:?}")
        }
    }
}

fn gw_conditions(g: &VpcNatGateway) -> Vec<Condition> {
    g.status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}
fn eip_conditions(e: &IptablesEIP) -> Vec<Condition> {
    e.status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}
fn fip_conditions(r: &IptablesFIPRule) -> Vec<Condition> {
    r.status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}
fn snat_conditions(r: &IptablesSnatRule) -> Vec<Condition> {
    r.status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}
fn dnat_conditions(r: &IptablesDnatRule) -> Vec<Condition> {
    r.status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

fn is(status: ConditionStatus, reason: &'static str) -> impl Fn(&Condition) -> bool + Send {
    move |c| c.status == status && c.reason == reason
}

/// The managed default routes in NB: (router, next hop) of every row marked as a gateway's.
fn managed_routes(nb: &OvsdbServer) -> Vec<String> {
    let rows = nb
        .nbctl(&[
            "--bare",
            "--columns=nexthop",
            "find",
            "Logical_Router_Static_Route",
            "external_ids:vpc-nat-gw=vpc-nat-gw",
        ])
        .unwrap();
    rows.split_whitespace().map(str::to_owned).collect()
}

/// Warning Events on `kind` `name`.
async fn warnings(client: &Client, kind: &str, name: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(client.clone());
    let lp = kube::api::ListParams::default().fields(&format!(
        "involvedObject.name={name},involvedObject.kind={kind},type=Warning"
    ));
    events
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| format!("{:?}: {:?}", e.reason, e.message))
        .collect()
}

#[tokio::test]
async fn the_manuals_gateway_runs_admitted_and_routes_once_ready() {
    let Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller,
    } = bed().await;
    create_manual_gateway(&client).await;

    // The StatefulSet, as the agent contract says.
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "kube-system");
    let sts = tokio::time::timeout(
        WAIT,
        await_condition(
            sets.clone(),
            "vpc-nat-gw-vpc-nat-gw",
            |s: Option<&StatefulSet>| s.is_some(),
        ),
    )
    .await
    .expect("no StatefulSet")
    .unwrap()
    .unwrap();
    assert_eq!(sts.owner_references()[0].kind, "VpcNatGateway");
    let template = sts.spec.unwrap().template;
    let c = &template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        c.command.as_ref().unwrap()[..2],
        ["/kube-ovn/kube-ovn-daemon", "nat-gateway"]
    );
    assert_eq!(
        c.image.as_deref(),
        Some(controller::options::DEFAULT_NAT_GATEWAY_IMAGE)
    );
    assert!(c.readiness_probe.is_some());

    // The pod the StatefulSet controller creates gets both attachments, the LAN one with
    // lanIp, although the manual's Vpc admits only `default`.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let lan_ip_key = format!("{LAN_PROVIDER}.kubernetes.io/ip_address");
    let ext_key = format!("{EXT_PROVIDER}.kubernetes.io/ip_address");
    let (k1, k2) = (lan_ip_key.clone(), ext_key.clone());
    let pod = tokio::time::timeout(
        WAIT,
        await_condition(pods.clone(), GW_POD, move |p: Option<&Pod>| {
            p.is_some_and(|p| {
                p.annotations().contains_key(&k1) && p.annotations().contains_key(&k2)
            })
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("gateway pod never got both attachments"))
    .unwrap()
    .unwrap();
    assert_eq!(pod.annotations()[&lan_ip_key], "10.100.0.254");
    assert!(pod.annotations()[&ext_key].starts_with("172.18.0."));

    // lanIp is nobody else's: a pod asking for it statically is refused.
    let default_pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let thief: Pod = yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: thief\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: '[{\"name\":\"kube-ovn-vpc-network\",\"ips\":[\"10.100.0.254\"]}]'\nspec:\n  containers: [{name: app, image: nginx}]\n",
    );
    default_pods
        .create(&PostParams::default(), &thief)
        .await
        .unwrap();
    common::event_containing(&client, "thief", "10.100.0.254").await;

    // Not Ready yet: no route.
    let gateways: Api<VpcNatGateway> = Api::all(client.clone());
    wait_condition(
        &gateways,
        "vpc-nat-gw",
        "Ready=False PodNotReady",
        gw_conditions,
        is(ConditionStatus::False, "PodNotReady"),
        READY,
    )
    .await;
    assert!(managed_routes(&nb_server).is_empty());

    // The pod becomes Ready (as kubelet would report it): Ready, and the route.
    pods.patch_status(
        GW_POD,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}
        ]}})),
    )
    .await
    .unwrap();
    wait_condition(
        &gateways,
        "vpc-nat-gw",
        "Ready=True",
        gw_conditions,
        |c| c.status == ConditionStatus::True && c.message.contains("routes 0.0.0.0/0"),
        READY,
    )
    .await;
    assert_eq!(managed_routes(&nb_server), ["10.100.0.254"]);
    let listed = nb_server
        .nbctl(&["lr-route-list", "vpc-secondary"])
        .unwrap();
    assert!(
        listed.contains("0.0.0.0/0") && listed.contains("10.100.0.254"),
        "{listed}"
    );
    // Quiet after success.
    let w = warnings(&client, "VpcNatGateway", "vpc-nat-gw").await;
    assert!(w.is_empty(), "{w:?}");

    // The Vpc's own default route wins.
    Api::<Vpc>::all(client.clone())
        .patch(
            "vpc-secondary",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"staticRoutes": [
                {"cidr": "0.0.0.0/0", "nextHopIP": "10.100.0.253"}
            ]}})),
        )
        .await
        .unwrap();
    wait_condition(
        &gateways,
        "vpc-nat-gw",
        "the Vpc's route to win",
        gw_conditions,
        |c| c.status == ConditionStatus::True && c.message.contains("its own default route"),
        READY,
    )
    .await;
    assert!(managed_routes(&nb_server).is_empty());
    // ... and when it goes, ours comes back.
    Api::<Vpc>::all(client.clone())
        .patch(
            "vpc-secondary",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"staticRoutes": []}})),
        )
        .await
        .unwrap();
    wait_condition(
        &gateways,
        "vpc-nat-gw",
        "the managed route to return",
        gw_conditions,
        |c| c.status == ConditionStatus::True && c.message.contains("routes 0.0.0.0/0"),
        READY,
    )
    .await;
    assert_eq!(managed_routes(&nb_server), ["10.100.0.254"]);

    // A spec change reaches the StatefulSet.
    gateways
        .patch(
            "vpc-nat-gw",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"selector": ["kubernetes.io/os: linux"]}})),
        )
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            sets.clone(),
            "vpc-nat-gw-vpc-nat-gw",
            |s: Option<&StatefulSet>| {
                s.and_then(|s| s.spec.as_ref())
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|p| p.node_selector.as_ref())
                    .is_some_and(|n| n.get("kubernetes.io/os").is_some_and(|v| v == "linux"))
            },
        ),
    )
    .await
    .expect("the StatefulSet never followed the spec")
    .unwrap();

    // spec.qosPolicy naming a QoSPolicy that does not exist yet: Validated=False with a
    // Warning, the gateway keeps running; a policy of the wrong bindingType is refused too;
    // once the policy is a NATGW one (its change alone triggers the check), it is in effect.
    gateways
        .patch(
            "vpc-nat-gw",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"qosPolicy": "gw-limit"}})),
        )
        .await
        .unwrap();
    let g = wait_condition(
        &gateways,
        "vpc-nat-gw",
        "Validated=False QoSPolicyNotFound",
        gw_conditions,
        is(ConditionStatus::False, "QoSPolicyNotFound"),
        VALIDATED,
    )
    .await;
    assert!(
        find_condition(&gw_conditions(&g), READY)
            .is_some_and(|c| c.status == ConditionStatus::True),
        "the gateway still runs: {:?}",
        g.status
    );
    // The Warning follows the condition by a moment: waited for.
    let e = common::event_containing_on(&client, "VpcNatGateway", "vpc-nat-gw", "gw-limit").await;
    assert_eq!(
        (e.type_.as_deref(), e.reason.as_deref()),
        (Some("Warning"), Some("QoSPolicyNotFound"))
    );
    let policies: Api<crds::QoSPolicy> = Api::all(client.clone());
    let policy: crds::QoSPolicy = yaml(
        "apiVersion: kubeovn.io/v1\nkind: QoSPolicy\nmetadata: {name: gw-limit}\nspec:\n  bindingType: EIP\n  bandwidthLimitRules:\n  - {name: in, direction: ingress, rateMax: \"10\"}\n",
    );
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    wait_condition(
        &gateways,
        "vpc-nat-gw",
        "Validated=False QoSPolicyInvalid",
        gw_conditions,
        is(ConditionStatus::False, "QoSPolicyInvalid"),
        VALIDATED,
    )
    .await;
    policies
        .patch(
            "gw-limit",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"bindingType": "NATGW"}})),
        )
        .await
        .unwrap();
    let g = wait_condition(
        &gateways,
        "vpc-nat-gw",
        "Validated=True with the policy",
        gw_conditions,
        is(ConditionStatus::True, "Validated"),
        VALIDATED,
    )
    .await;
    // Upstream's "in effect" status fields, the default external network included.
    let st = g.status.as_ref().unwrap();
    assert_eq!(st.qos_policy, "gw-limit");
    assert_eq!(st.external_subnets, ["ovn-vpc-external-network"]);
    assert_eq!(st.selector, ["kubernetes.io/os: linux"]);

    // Deleting the gateway removes its route, StatefulSet and lanIp.
    let lan_key = format!("{GW_POD}.kube-system.{LAN_PROVIDER}");
    assert!(ctx.ipam.get(&lan_key).is_some());
    gateways
        .delete("vpc-nat-gw", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(
            gateways.clone(),
            "vpc-nat-gw",
            |g: Option<&VpcNatGateway>| g.is_none(),
        ),
    )
    .await
    .expect("gateway never went")
    .unwrap();
    assert!(managed_routes(&nb_server).is_empty());
    assert!(
        sets.get_opt("vpc-nat-gw-vpc-nat-gw")
            .await
            .unwrap()
            .is_none_or(|s| s.metadata.deletion_timestamp.is_some())
    );
    tokio::time::timeout(
        WAIT,
        await_condition(
            Api::<IP>::all(client.clone()),
            &lan_key,
            |o: Option<&IP>| o.is_none(),
        ),
    )
    .await
    .expect("lanIp's record never went")
    .unwrap();
    assert!(ctx.ipam.get(&lan_key).is_none());
    controller.abort();
}

#[tokio::test]
async fn refused_gateways_say_why_and_get_nothing() {
    let Bed {
        _cp,
        client,
        nb_server: _nb,
        ctx: _ctx,
        controller,
    } = bed().await;
    // lanIp taken by a pod first.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let holder: Pod = yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: holder\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: '[{\"name\":\"kube-ovn-vpc-network\",\"ips\":[\"10.100.0.254\"]}]'\nspec:\n  containers: [{name: app, image: nginx}]\n",
    );
    pods.create(&PostParams::default(), &holder).await.unwrap();
    let key = format!("{LAN_PROVIDER}.kubernetes.io/allocated");
    tokio::time::timeout(
        WAIT,
        await_condition(pods.clone(), "holder", move |p: Option<&Pod>| {
            p.is_some_and(|p| p.annotations().contains_key(&key))
        }),
    )
    .await
    .expect("holder never attached")
    .unwrap();
    create_manual_gateway(&client).await;
    // A missing external network.
    let other: VpcNatGateway = yaml(
        "apiVersion: kubeovn.io/v1\nkind: VpcNatGateway\nmetadata:\n  name: no-ext\nspec:\n  vpc: vpc-secondary\n  subnet: subnet-secondary\n  lanIp: \"10.100.0.253\"\n  externalSubnets: [missing-net]\n",
    );
    let gateways: Api<VpcNatGateway> = Api::all(client.clone());
    gateways
        .create(&PostParams::default(), &other)
        .await
        .unwrap();
    for (name, reason, says) in [
        ("vpc-nat-gw", "LanIpInUse", "10.100.0.254"),
        (
            "no-ext",
            "ExternalNetworkNotFound",
            "kube-system/missing-net",
        ),
    ] {
        wait_condition(
            &gateways,
            name,
            reason,
            gw_conditions,
            is(ConditionStatus::False, reason),
            VALIDATED,
        )
        .await;
        let e = common::event_containing_on(&client, "VpcNatGateway", name, says).await;
        assert_eq!(e.reason.as_deref(), Some(reason));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "kube-system");
        assert!(
            sets.get_opt(&nat_gateway::statefulset_name(name))
                .await
                .unwrap()
                .is_none(),
            "{name}: a refused gateway got a StatefulSet"
        );
    }
    // An impostor with the gateway pod's very name and labels in kube-system, but no owner
    // chain to the gateway, gains nothing from the Vpc that admits only `default`.
    let impostor: Pod = yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {GW_POD}\n  namespace: kube-system\n  labels: {{ovn.kubernetes.io/vpc-nat-gw: \"true\", ovn.kubernetes.io/vpc-nat-gw-name: vpc-nat-gw}}\n  annotations:\n    k8s.v1.cni.cncf.io/networks: default/kube-ovn-vpc-network\nspec:\n  containers: [{{name: app, image: nginx}}]\n"
    ));
    Api::<Pod>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &impostor)
        .await
        .unwrap();
    let refused = common::event_containing_on(
        &client,
        "Pod",
        GW_POD,
        "namespace kube-system is not admitted",
    )
    .await;
    assert_eq!(
        refused.reason.as_deref(),
        Some(controller::tenancy::NAMESPACE_NOT_ADMITTED)
    );

    // The refused lanIp stays the holder's.
    let holder = pods.get("holder").await.unwrap();
    assert_eq!(
        holder.annotations()[&format!("{LAN_PROVIDER}.kubernetes.io/ip_address")],
        "10.100.0.254"
    );
    controller.abort();
}

fn eip(name: &str, v4ip: &str) -> IptablesEIP {
    let mut e = IptablesEIP::new(
        name,
        crds::IptablesEIPSpec {
            nat_gw_dp: "vpc-nat-gw".into(),
            v4ip: v4ip.into(),
            ..Default::default()
        },
    );
    e.metadata.name = Some(name.into());
    e
}

async fn validated_eip(eips: &Api<IptablesEIP>, name: &str) -> String {
    wait_condition(
        eips,
        name,
        "Validated",
        eip_conditions,
        is(ConditionStatus::True, "Validated"),
        VALIDATED,
    )
    .await
    .spec
    .v4ip
}

#[tokio::test]
async fn eips_get_addresses_that_survive_a_restart_and_rules_are_judged() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("controller=info")
        .try_init();
    let Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller,
    } = bed().await;
    create_manual_gateway(&client).await;
    let eips: Api<IptablesEIP> = Api::all(client.clone());
    let pp = PostParams::default();
    eips.create(&pp, &eip("dynamic", "")).await.unwrap();
    eips.create(&pp, &eip("static", "172.18.0.50"))
        .await
        .unwrap();
    let dynamic = validated_eip(&eips, "dynamic").await;
    assert!(dynamic.starts_with("172.18.0."), "{dynamic}");
    assert_ne!(dynamic, "172.18.0.1", "the gateway address");
    assert_eq!(validated_eip(&eips, "static").await, "172.18.0.50");
    // Two EIPs asking for one address: the younger is refused, with an Event.
    eips.create(&pp, &eip("copycat", "172.18.0.50"))
        .await
        .unwrap();
    wait_condition(
        &eips,
        "copycat",
        "AddressConflict",
        eip_conditions,
        is(ConditionStatus::False, "AddressConflict"),
        VALIDATED,
    )
    .await;
    common::event_containing_on(&client, "IptablesEIP", "copycat", "172.18.0.50").await;
    assert!(ctx.ipam.get(&nat_rules::eip_key("copycat")).is_none());

    // A controller restart rebuilds the EIPs' addresses from their specs: nothing doubles.
    controller.abort();
    let _ = controller.await;
    drop(ctx);
    let (ctx, controller) = common::start_controller(&client, &nb_server, 4).await;
    for (name, ip) in [("dynamic", dynamic.as_str()), ("static", "172.18.0.50")] {
        let lease = ctx.ipam.get(&nat_rules::eip_key(name)).unwrap();
        assert_eq!(lease.v4.unwrap().to_string(), ip, "{name}");
    }
    let mut seen = std::collections::BTreeSet::from([dynamic.clone(), "172.18.0.50".to_owned()]);
    for i in 0..5 {
        let n = format!("more-{i}");
        eips.create(&pp, &eip(&n, "")).await.unwrap();
        let ip = validated_eip(&eips, &n).await;
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
    }

    // Rules: the valid ones are Validated, each conflict class refused with an Event.
    let fips: Api<IptablesFIPRule> = Api::all(client.clone());
    let snats: Api<IptablesSnatRule> = Api::all(client.clone());
    let dnats: Api<IptablesDnatRule> = Api::all(client.clone());
    let fip = |name: &str, eip: &str| -> IptablesFIPRule {
        yaml(&format!(
            "apiVersion: kubeovn.io/v1\nkind: IptablesFIPRule\nmetadata: {{name: {name}}}\nspec: {{eip: {eip}, internalIp: 10.100.0.10}}\n"
        ))
    };
    let dnat = |name: &str, eip: &str, port: u16| -> IptablesDnatRule {
        yaml(&format!(
            "apiVersion: kubeovn.io/v1\nkind: IptablesDnatRule\nmetadata: {{name: {name}}}\nspec: {{eip: {eip}, externalPort: \"{port}\", protocol: tcp, internalIp: 10.100.0.11, internalPort: \"80\"}}\n"
        ))
    };
    fips.create(&pp, &fip("fip-a", "static")).await.unwrap();
    wait_condition(
        &fips,
        "fip-a",
        "Validated",
        fip_conditions,
        is(ConditionStatus::True, "Validated"),
        VALIDATED,
    )
    .await;
    fips.create(&pp, &fip("fip-b", "static")).await.unwrap();
    let snat: IptablesSnatRule = yaml(
        "apiVersion: kubeovn.io/v1\nkind: IptablesSnatRule\nmetadata: {name: snat-a}\nspec: {eip: static, internalCIDR: 10.100.0.0/16}\n",
    );
    snats.create(&pp, &snat).await.unwrap();
    dnats
        .create(&pp, &dnat("dnat-a", "dynamic", 8080))
        .await
        .unwrap();
    wait_condition(
        &dnats,
        "dnat-a",
        "Validated",
        dnat_conditions,
        is(ConditionStatus::True, "Validated"),
        VALIDATED,
    )
    .await;
    dnats
        .create(&pp, &dnat("dnat-b", "dynamic", 8080))
        .await
        .unwrap();
    dnats
        .create(&pp, &dnat("dnat-ghost", "ghost", 22))
        .await
        .unwrap();
    wait_condition(
        &fips,
        "fip-b",
        "EipInUse",
        fip_conditions,
        is(ConditionStatus::False, "EipInUse"),
        VALIDATED,
    )
    .await;
    wait_condition(
        &snats,
        "snat-a",
        "EipInUse",
        snat_conditions,
        is(ConditionStatus::False, "EipInUse"),
        VALIDATED,
    )
    .await;
    wait_condition(
        &dnats,
        "dnat-b",
        "PortConflict",
        dnat_conditions,
        is(ConditionStatus::False, "PortConflict"),
        VALIDATED,
    )
    .await;
    wait_condition(
        &dnats,
        "dnat-ghost",
        "EipNotFound",
        dnat_conditions,
        is(ConditionStatus::False, "EipNotFound"),
        VALIDATED,
    )
    .await;
    for (kind, name, says) in [
        ("IptablesFIPRule", "fip-b", "fip-a"),
        ("IptablesSnatRule", "snat-a", "fip-a"),
        ("IptablesDnatRule", "dnat-b", "8080"),
        ("IptablesDnatRule", "dnat-ghost", "ghost"),
    ] {
        let e = common::event_containing_on(&client, kind, name, says).await;
        assert_eq!(e.type_.as_deref(), Some("Warning"), "{name}");
    }
    // The winner goes: the loser is judged again and accepted.
    fips.delete("fip-a", &DeleteParams::default())
        .await
        .unwrap();
    wait_condition(
        &fips,
        "fip-b",
        "Validated after fip-a went",
        fip_conditions,
        is(ConditionStatus::True, "Validated"),
        VALIDATED,
    )
    .await;

    // The agent's Ready (its own field manager) and the controller's Validated live side by
    // side in one list.
    let agent = serde_json::json!({
        "apiVersion": "kubeovn.io/v1",
        "kind": "IptablesDnatRule",
        "status": {"ready": true, "conditions": [{"type": "Ready", "status": "True", "reason": "Applied", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    });
    dnats
        .patch_status(
            "dnat-a",
            &PatchParams::apply("kube-ovn-nat-gateway"),
            &Patch::Apply(&agent),
        )
        .await
        .unwrap();
    // A spec change makes the controller apply its condition again.
    dnats
        .patch(
            "dnat-a",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"internalPort": "81"}})),
        )
        .await
        .unwrap();
    let d = wait_condition(
        &dnats,
        "dnat-a",
        "Validated at generation 2",
        dnat_conditions,
        |c| c.status == ConditionStatus::True && c.observed_generation == Some(2),
        VALIDATED,
    )
    .await;
    let status = d.status.unwrap();
    assert!(status.ready);
    assert!(find_condition(&status.conditions, READY).is_some_and(|c| c.reason == "Applied"));

    // Deleting an EIP gives its address back.
    eips.delete("dynamic", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(eips.clone(), "dynamic", |o: Option<&IptablesEIP>| {
            o.is_none()
        }),
    )
    .await
    .expect("EIP never went")
    .unwrap();
    assert!(ctx.ipam.get(&nat_rules::eip_key("dynamic")).is_none());
    assert!(
        ctx.ipam
            .lock()
            .owner_of("ovn-vpc-external-network", dynamic.parse().unwrap())
            .is_none()
    );
    controller.abort();
}

/// The Vpc's route sync and the gateway's managed route never remove each other's rows.
#[tokio::test]
async fn the_vpc_route_sync_and_the_managed_route_do_not_fight() {
    use controller::nb::{self, routes};
    let server = OvsdbServer::start(ovn_api::testing::SchemaKind::Northbound).unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();
    nb::ensure_router(&client, "vpc-a").await.unwrap();
    nb::ensure_router(&client, "vpc-b").await.unwrap();
    routes::sync_gateway_route(&client, "gw", Some(("vpc-a", "10.0.0.254")))
        .await
        .unwrap();
    // Idempotent, and the Vpc's empty spec leaves it.
    routes::sync_gateway_route(&client, "gw", Some(("vpc-a", "10.0.0.254")))
        .await
        .unwrap();
    routes::sync(&client, "vpc-a", &Default::default(), &Default::default())
        .await
        .unwrap();
    assert!(!routes::has_own_default_route(&client, "vpc-a").unwrap());
    let listed = server.nbctl(&["lr-route-list", "vpc-a"]).unwrap();
    assert_eq!(listed.matches("0.0.0.0/0").count(), 1, "{listed}");
    // The Vpc's own default route is its own; the gateway's stays until the gateway says.
    let (r, p) = routes::plan(
        &[crds::vpc::StaticRoute {
            cidr: "0.0.0.0/0".into(),
            next_hop_ip: "10.0.0.253".into(),
            ..Default::default()
        }],
        &[],
    )
    .unwrap();
    routes::sync(&client, "vpc-a", &r, &p).await.unwrap();
    assert!(routes::has_own_default_route(&client, "vpc-a").unwrap());
    // The gateway moves to vpc-b (spec.vpc changed), then goes.
    routes::sync_gateway_route(&client, "gw", Some(("vpc-b", "10.1.0.254")))
        .await
        .unwrap();
    let a = server.nbctl(&["lr-route-list", "vpc-a"]).unwrap();
    assert!(a.contains("10.0.0.253") && !a.contains("10.0.0.254"), "{a}");
    let b = server.nbctl(&["lr-route-list", "vpc-b"]).unwrap();
    assert!(b.contains("10.1.0.254"), "{b}");
    routes::sync_gateway_route(&client, "gw", None)
        .await
        .unwrap();
    let b = server.nbctl(&["lr-route-list", "vpc-b"]).unwrap();
    assert!(!b.contains("0.0.0.0/0"), "{b}");
    let a = server.nbctl(&["lr-route-list", "vpc-a"]).unwrap();
    assert!(a.contains("10.0.0.253"), "{a}");
}
