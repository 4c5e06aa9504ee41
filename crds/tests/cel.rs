//! The CEL rules and schema constraints of the generated CRDs, evaluated client-side with
//! kube's CEL validator (the Kubernetes IP/CIDR library included), so they are known to reject
//! what they should before any apiserver sees them.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use crds::{SecurityGroup, Subnet, Vpc};
use kube::CustomResourceExt;
use serde_json::json;

/// The OpenAPI schema of `K`'s CRD.
fn schema<K: CustomResourceExt>() -> serde_json::Value {
    let crd = K::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn cel<K: CustomResourceExt>(object: serde_json::Value) -> Result<(), String> {
    cel_update::<K>(object, None)
}

/// The rules as an update from `old` checks them (transition rules included).
fn cel_update<K: CustomResourceExt>(
    object: serde_json::Value,
    old: Option<serde_json::Value>,
) -> Result<(), String> {
    kube::core::cel::Validator::new()
        .validate(&schema::<K>(), &object, old.as_ref())
        .map_err(|e| {
            e.into_vec()
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ")
        })
}

fn subnet(spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "s"}, "spec": spec})
}

#[test]
fn subnet_rules() {
    cel::<Subnet>(subnet(
        json!({"cidrBlock": "10.0.0.0/24", "gateway": "10.0.0.1"}),
    ))
    .unwrap();
    cel::<Subnet>(subnet(
        json!({"cidr": "10.0.0.0/24,fd00::/64", "gateway": "10.0.0.1,fd00::1"}),
    ))
    .unwrap();
    cel::<Subnet>(subnet(
        json!({"cidr": "10.0.0.0/24", "cidrBlock": "10.0.0.0/24"}),
    ))
    .unwrap();

    let e = cel::<Subnet>(subnet(json!({"vpc": "v"}))).unwrap_err();
    assert!(
        e.contains("spec.cidrBlock is required (spec.cidr is accepted as an alias)"),
        "{e}"
    );
    let e = cel::<Subnet>(subnet(
        json!({"cidr": "10.0.0.0/24", "cidrBlock": "10.1.0.0/24"}),
    ))
    .unwrap_err();
    assert!(e.contains("spec.cidr is an alias of spec.cidrBlock"), "{e}");
    let e = cel::<Subnet>(subnet(
        json!({"cidr": "10.100.0.0/16", "gateway": "10.200.0.1"}),
    ))
    .unwrap_err();
    assert!(
        e.contains("spec.gateway must be inside the subnet's CIDR"),
        "{e}"
    );
    let e = cel::<Subnet>(subnet(json!({"cidrBlock": "10.0.0.0/33"}))).unwrap_err();
    assert!(e.contains("must be a CIDR"), "{e}");
    let e = cel::<Subnet>(subnet(
        json!({"cidrBlock": "10.0.0.0/24", "gateway": "10.0.0.x"}),
    ))
    .unwrap_err();
    assert!(e.contains("must be an IP address"), "{e}");
}

#[test]
fn vpc_policy_route_rules() {
    let vpc = |routes: serde_json::Value| {
        json!({"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "v"},
               "spec": {"policyRoutes": routes}})
    };
    cel::<Vpc>(vpc(
        json!([{"priority": 10, "match": "ip4.src == 10.0.0.0/24", "action": "reroute",
                           "nextHopIP": "10.0.0.254"}]),
    ))
    .unwrap();
    let e = cel::<Vpc>(vpc(
        json!([{"priority": 10, "match": "ip4", "action": "reroute"}]),
    ))
    .unwrap_err();
    assert!(
        e.contains("nextHopIP is required when action is reroute"),
        "{e}"
    );
    let e = cel::<Vpc>(
        json!({"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "v"},
        "spec": {"staticRoutes": [{"cidr": "0.0.0.0/0", "nextHopIP": "nope"}]}}),
    )
    .unwrap_err();
    assert!(e.contains("nextHopIP must be an IP address"), "{e}");
}

#[test]
fn security_group_rules() {
    let sg = |rule: serde_json::Value| {
        json!({"apiVersion": "kubeovn.io/v1", "kind": "SecurityGroup", "metadata": {"name": "sg"},
               "spec": {"ingressRules": [rule]}})
    };
    cel::<SecurityGroup>(sg(
        json!({"ipVersion": "ipv4", "protocol": "tcp", "remoteType": "address",
        "remoteAddress": "10.0.0.0/8", "portRangeMin": 80, "portRangeMax": 443, "policy": "allow"}),
    ))
    .unwrap();
    let e = cel::<SecurityGroup>(sg(json!({"ipVersion": "ipv4", "remoteType": "address",
        "remoteAddress": "10.0.0.0/8", "portRangeMin": 443, "portRangeMax": 80, "policy": "allow"})))
    .unwrap_err();
    assert!(
        e.contains("portRangeMin must not exceed portRangeMax"),
        "{e}"
    );
    let e = cel::<SecurityGroup>(sg(
        json!({"ipVersion": "ipv4", "remoteType": "securityGroup",
        "policy": "drop"}),
    ))
    .unwrap_err();
    assert!(e.contains("remoteSecurityGroup is required"), "{e}");
}

#[test]
fn schema_has_cheap_constraints() {
    let crd = serde_json::to_value(Subnet::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["properties"]["protocol"]["enum"],
        json!(["IPv4", "IPv6", "Dual"])
    );
    assert_eq!(spec["properties"]["mtu"]["minimum"].as_f64(), Some(68.0));
    let crd = serde_json::to_value(Vpc::crd()).unwrap();
    let route = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["policyRoutes"]["items"];
    assert_eq!(
        route["properties"]["priority"]["maximum"].as_f64(),
        Some(32767.0)
    );
    assert_eq!(
        route["properties"]["action"]["enum"],
        json!(["allow", "drop", "reroute"])
    );
}

/// The transition rules: on an update (the old object given) the range and the Vpc stay as they
/// were; writing the same range under the other spelling is no change.
#[test]
fn a_subnets_range_and_vpc_are_immutable() {
    let update = |old: serde_json::Value, new: serde_json::Value| {
        cel_update::<Subnet>(subnet(new), Some(subnet(old)))
    };
    let old = json!({"cidr": "10.0.0.0/24", "vpc": "v1", "excludeIps": []});
    update(
        old.clone(),
        json!({"cidr": "10.0.0.0/24", "vpc": "v1", "excludeIps": ["10.0.0.9"]}),
    )
    .unwrap();
    update(
        old.clone(),
        json!({"cidrBlock": "10.0.0.0/24", "vpc": "v1"}),
    )
    .unwrap();
    let e = update(old.clone(), json!({"cidr": "10.0.0.0/23", "vpc": "v1"})).unwrap_err();
    assert!(e.contains("range") && e.contains("immutable"), "{e}");
    let e = update(old.clone(), json!({"cidr": "10.0.0.0/24", "vpc": "v2"})).unwrap_err();
    assert!(e.contains("spec.vpc is immutable"), "{e}");
    let e = update(old, json!({"cidr": "10.0.0.0/24"})).unwrap_err();
    assert!(e.contains("spec.vpc is immutable"), "{e}");
    // On create there is no old object: the rules do not apply.
    cel::<Subnet>(subnet(json!({"cidr": "10.0.0.0/24", "vpc": "v2"}))).unwrap();
}
