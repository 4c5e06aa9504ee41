//! The `kubeovn.io/v1` CRDs (and Multus' NAD CRD) against a real kube-apiserver: every CRD from
//! `crds::generate::crds()` is accepted and becomes Established, the seed's objects are
//! accepted, and invalid objects are refused by the apiserver's own schema and CEL validation
//! with a message naming the field. It lives in `e2e` so `crds` keeps no heavy dev-dependencies.

// Test code: a failed unwrap or panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crds::{NetworkAttachmentDefinition, Subnet, Vpc, VpcNatGateway};
use e2e::k8s::ControlPlane;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResourceExt, Resource};

/// Creates every CRD and waits until the apiserver serves each one.
async fn install_crds(client: &kube::Client) -> Vec<String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let all: Vec<CustomResourceDefinition> = crds::generate::crds()
        .into_iter()
        .chain([NetworkAttachmentDefinition::crd()])
        .collect();
    let mut names = Vec::new();
    for crd in &all {
        let name = crd.metadata.name.clone().unwrap();
        api.create(&PostParams::default(), crd)
            .await
            .unwrap_or_else(|e| panic!("CRD {name} refused: {e}"));
        names.push(name);
    }
    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(30), established)
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not Established within 30 s"))
            .unwrap();
    }
    names
}

fn typed<K: k8s_openapi::serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
    serde_json::from_value(value).unwrap()
}

/// Creates `object` (kind `K`, cluster-scoped) and returns the apiserver's refusal message.
async fn refusal<K>(client: &kube::Client, object: serde_json::Value) -> String
where
    K: Resource<DynamicType = ()>,
{
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::erase::<K>(&()));
    let object: DynamicObject = typed(object);
    match api.create(&PostParams::default(), &object).await {
        Ok(created) => panic!("accepted an invalid object: {created:?}"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            status.message.clone()
        }
        Err(other) => panic!("expected a validation refusal, got {other}"),
    }
}

#[tokio::test]
async fn crds_install_and_the_seed_objects_are_accepted() {
    let plane = ControlPlane::start().await.unwrap();
    let client = plane.client();
    let names = install_crds(&client).await;
    assert_eq!(names.len(), crds::generate::crds().len() + 1);

    let vpc: Vpc = typed(serde_json::json!({
        "apiVersion": "kubeovn.io/v1", "kind": "Vpc",
        "metadata": {"name": "vpc-secondary"},
        "spec": {"namespaces": ["default"]},
    }));
    Api::<Vpc>::all(client.clone())
        .create(&PostParams::default(), &vpc)
        .await
        .unwrap();

    let subnet: Subnet = typed(serde_json::json!({
        "apiVersion": "kubeovn.io/v1", "kind": "Subnet",
        "metadata": {"name": "subnet-secondary"},
        "spec": {
            "vpc": "vpc-secondary",
            "cidr": "10.100.0.0/16",
            "gateway": "10.100.0.1",
            "provider": "kube-ovn-vpc-network.default.ovn",
        },
    }));
    let subnets = Api::<Subnet>::all(client.clone());
    subnets
        .create(&PostParams::default(), &subnet)
        .await
        .unwrap();
    let stored = subnets.get("subnet-secondary").await.unwrap();
    assert_eq!(stored.spec.cidr.as_deref(), Some("10.100.0.0/16"));
    assert_eq!(stored.spec.gateway.as_deref(), Some("10.100.0.1"));

    let nad = NetworkAttachmentDefinition::with_config(
        "default",
        "kube-ovn-vpc-network",
        r#"{
  "cniVersion": "0.3.1",
  "type": "kube-ovn",
  "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
  "provider": "kube-ovn-vpc-network.default.ovn"
}"#,
    );
    let nads = Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), "default");
    nads.create(&PostParams::default(), &nad).await.unwrap();
    let stored = nads.get("kube-ovn-vpc-network").await.unwrap();
    assert_eq!(
        stored.classify().unwrap().provider(),
        Some("kube-ovn-vpc-network.default.ovn")
    );

    let gateway: VpcNatGateway = typed(serde_json::json!({
        "apiVersion": "kubeovn.io/v1", "kind": "VpcNatGateway",
        "metadata": {"name": "vpc-nat-gw"},
        "spec": {"vpc": "vpc-secondary", "subnet": "subnet-secondary", "lanIp": "10.100.0.254"},
    }));
    Api::<VpcNatGateway>::all(client.clone())
        .create(&PostParams::default(), &gateway)
        .await
        .unwrap();
}

#[tokio::test]
async fn invalid_objects_are_refused_naming_the_field() {
    let plane = ControlPlane::start().await.unwrap();
    let client = plane.client();
    install_crds(&client).await;

    let subnet = |name: &str, spec: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "kubeovn.io/v1", "kind": "Subnet",
            "metadata": {"name": name}, "spec": spec,
        })
    };
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "gateway outside the CIDR",
            subnet(
                "gw-outside",
                serde_json::json!({"cidr": "10.100.0.0/16", "gateway": "10.200.0.1"}),
            ),
            "spec.gateway must be inside the subnet's CIDR",
        ),
        (
            "bad CIDR (prefix too long)",
            subnet(
                "bad-prefix",
                serde_json::json!({"cidrBlock": "10.100.0.0/33"}),
            ),
            "spec.cidrBlock",
        ),
        (
            "bad CIDR in the cidr alias",
            subnet("bad-alias", serde_json::json!({"cidr": "not-a-cidr"})),
            "spec.cidr",
        ),
        (
            "gateway not an IP",
            subnet(
                "bad-gateway",
                serde_json::json!({"cidr": "10.100.0.0/16", "gateway": "10.100.0.x"}),
            ),
            "spec.gateway",
        ),
        (
            "no CIDR at all",
            subnet("no-cidr", serde_json::json!({"vpc": "vpc-secondary"})),
            "spec.cidrBlock is required",
        ),
        (
            "cidr and cidrBlock disagree",
            subnet(
                "two-cidrs",
                serde_json::json!({"cidr": "10.100.0.0/16", "cidrBlock": "10.101.0.0/16"}),
            ),
            "spec.cidr is an alias of spec.cidrBlock",
        ),
        (
            "an ACL direction OVN does not have",
            subnet(
                "bad-acl-direction",
                serde_json::json!({"cidr": "10.100.0.0/16", "acls": [{"direction": "ingress",
                    "priority": 1000, "match": "ip4", "action": "drop"}]}),
            ),
            "spec.acls[0].direction",
        ),
        (
            "an ACL action OVN does not have",
            subnet(
                "bad-acl-action",
                serde_json::json!({"cidr": "10.100.0.0/16", "acls": [{"direction": "to-lport",
                    "priority": 1000, "match": "ip4", "action": "permit"}]}),
            ),
            "spec.acls[0].action",
        ),
    ];
    for (case, object, field) in cases {
        let message = refusal::<Subnet>(&client, object).await;
        assert!(
            message.contains(field),
            "{case}: {message:?} does not name {field:?}"
        );
    }

    let message = refusal::<VpcNatGateway>(
        &client,
        serde_json::json!({
            "apiVersion": "kubeovn.io/v1", "kind": "VpcNatGateway",
            "metadata": {"name": "bad-lan-ip"},
            "spec": {"vpc": "vpc-secondary", "subnet": "subnet-secondary", "lanIp": "10.100.0.300"},
        }),
    )
    .await;
    assert!(message.contains("spec.lanIp"), "{message:?}");

    let message = refusal::<Vpc>(
        &client,
        serde_json::json!({
            "apiVersion": "kubeovn.io/v1", "kind": "Vpc",
            "metadata": {"name": "bad-route"},
            "spec": {"staticRoutes": [{"cidr": "0.0.0.0/99", "nextHopIP": "10.100.0.1"}]},
        }),
    )
    .await;
    assert!(message.contains("spec.staticRoutes[0]"), "{message:?}");
}
