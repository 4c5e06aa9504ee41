//! Every YAML object of the user manual (`shared/seed/000_6fabcdef3dc2956b.txt`) parses,
//! validates, and passes the generated CRDs' CEL rules. The snippets are the manual's, with the
//! indentation of the original page (the stored text lost it) and nothing else changed.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use crds::naming::{self, AnnotationKey};
use crds::{
    NadClass, NetworkAttachmentDefinition, Subnet, Validate, Vpc, VpcNatGateway,
    parse_networks_annotation, resolve_attachments,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use serde::Deserialize;

use crds::seed::{
    MULTI_PROVIDER, NAD, NAT_GW, POD, QOS, SEGMENTATION, STATIC_IP, TENANTS, VPC_AND_SUBNET,
};

#[derive(Deserialize)]
struct Fragment {
    metadata: ObjectMeta,
}

fn docs(yaml: &str) -> Vec<yaml_serde::Value> {
    yaml_serde::Deserializer::from_str(yaml)
        .map(|d| yaml_serde::Value::deserialize(d).unwrap())
        .collect()
}

fn networks_of(meta: &ObjectMeta) -> &str {
    meta.annotations.as_ref().unwrap()[naming::NETWORKS_ANNOTATION].as_str()
}

/// Runs the CRD's CEL rules (as the apiserver would) on `object`.
fn cel_check<K: CustomResourceExt>(object: &serde_json::Value) -> Result<(), String> {
    let crd = K::crd();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    kube::core::cel::Validator::new()
        .validate(&schema, object, None)
        .map_err(|e| format!("{e:?}"))
}

fn subnet_secondary() -> Subnet {
    yaml_serde::from_value(docs(VPC_AND_SUBNET)[1].clone()).unwrap()
}

#[test]
fn nad_is_a_kube_ovn_attachment() {
    let nad: NetworkAttachmentDefinition = yaml_serde::from_str(NAD).unwrap();
    assert_eq!(
        nad.classify().unwrap(),
        NadClass::Attachment {
            provider: "kube-ovn-vpc-network.default.ovn".into(),
            server_socket: "/run/openvswitch/kube-ovn-daemon.sock".into(),
        }
    );
    assert_eq!(
        naming::attachment_provider("kube-ovn-vpc-network", "default"),
        nad.classify().unwrap().provider().unwrap()
    );
}

#[test]
fn vpc_and_subnet_validate_and_pass_cel() {
    let d = docs(VPC_AND_SUBNET);
    let vpc: Vpc = yaml_serde::from_value(d[0].clone()).unwrap();
    vpc.validate().unwrap();
    assert_eq!(vpc.spec.namespaces, ["default"]);
    cel_check::<Vpc>(&serde_json::to_value(&d[0]).unwrap()).unwrap();

    let subnet = subnet_secondary();
    subnet.validate().unwrap();
    assert_eq!(subnet.spec.cidr_block(), Some("10.100.0.0/16"));
    assert_eq!(subnet.spec.vpc.as_deref(), Some("vpc-secondary"));
    assert_eq!(subnet.spec.gateways().unwrap()[0].to_string(), "10.100.0.1");
    cel_check::<Subnet>(&serde_json::to_value(&d[1]).unwrap()).unwrap();

    // The subnet binds the NAD's provider.
    let nad: NetworkAttachmentDefinition = yaml_serde::from_str(NAD).unwrap();
    assert_eq!(
        subnet.spec.provider.as_deref(),
        nad.classify().unwrap().provider()
    );
}

#[test]
fn nat_gateway_lan_ip_is_in_its_subnet() {
    let gw: VpcNatGateway = yaml_serde::from_str(NAT_GW).unwrap();
    gw.validate().unwrap();
    cel_check::<VpcNatGateway>(&serde_json::to_value(docs(NAT_GW)[0].clone()).unwrap()).unwrap();
    let lan: std::net::IpAddr = gw.spec.lan_ip.as_deref().unwrap().parse().unwrap();
    assert!(subnet_secondary().spec.networks().unwrap()[0].contains(&lan));
}

#[test]
fn pod_string_form() {
    let pod: Pod = yaml_serde::from_str(POD).unwrap();
    let nets = parse_networks_annotation(networks_of(&pod.metadata), "default").unwrap();
    assert_eq!(nets.len(), 1);
    assert_eq!(
        (nets[0].namespace.as_str(), nets[0].name.as_str()),
        ("default", "kube-ovn-vpc-network")
    );
    assert_eq!(nets[0].interface_name(0), "net1");

    let nad: NetworkAttachmentDefinition = yaml_serde::from_str(NAD).unwrap();
    let att = resolve_attachments(&nets, &[nad]).unwrap();
    assert_eq!(att[0].provider, "kube-ovn-vpc-network.default.ovn");
    assert_eq!(
        naming::lsp_name("multi-network-pod", "default", &att[0].provider),
        "multi-network-pod.default.kube-ovn-vpc-network.default.ovn"
    );
}

#[test]
fn segmentation_json_list_with_namespace_in_name() {
    let pod: Pod = yaml_serde::from_str(SEGMENTATION).unwrap();
    let nets = parse_networks_annotation(networks_of(&pod.metadata), "default").unwrap();
    let got: Vec<(String, String, String)> = nets
        .iter()
        .enumerate()
        .map(|(i, n)| (n.namespace.clone(), n.name.clone(), n.interface_name(i)))
        .collect();
    assert_eq!(
        got,
        [
            ("default".into(), "public-network".into(), "net1".into()),
            ("default".into(), "internal-network".into(), "net2".into()),
        ]
    );
}

#[test]
fn tenant_pods() {
    for (doc, nad) in docs(TENANTS)
        .into_iter()
        .zip(["tenant-a-network", "tenant-b-network"])
    {
        let pod: Pod = yaml_serde::from_value(doc).unwrap();
        let nets = parse_networks_annotation(networks_of(&pod.metadata), "default").unwrap();
        assert_eq!(nets[0].nad_key(), format!("default/{nad}"));
    }
}

#[test]
fn multiple_providers_with_explicit_interfaces() {
    let f: Fragment = yaml_serde::from_str(MULTI_PROVIDER).unwrap();
    let nets = parse_networks_annotation(networks_of(&f.metadata), "default").unwrap();
    assert_eq!(nets[0].interface.as_deref(), Some("net1"));
    assert_eq!(nets[1].interface.as_deref(), Some("net2"));
    assert_eq!(nets[1].name, "kube-ovn-network-2");
}

#[test]
fn static_ip_inside_the_subnet() {
    let f: Fragment = yaml_serde::from_str(STATIC_IP).unwrap();
    let nets = parse_networks_annotation(networks_of(&f.metadata), "default").unwrap();
    let ip = nets[0].ips[0];
    assert_eq!(ip.to_string(), "10.100.0.100/16");
    assert_eq!(ip.prefix_len, Some(16));
    assert!(subnet_secondary().spec.networks().unwrap()[0].contains(&ip.addr));
}

#[test]
fn qos_annotations_are_pod_wide_rates() {
    let f: Fragment = yaml_serde::from_str(QOS).unwrap();
    let ann = f.metadata.annotations.unwrap();
    let mut keys: Vec<_> = ann
        .iter()
        .map(|(k, v)| {
            (
                naming::parse_annotation_key(k).unwrap(),
                v.parse::<u64>().unwrap(),
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            (
                (naming::POD_WIDE_PROVIDER, AnnotationKey::IngressRate),
                1000
            ),
            ((naming::POD_WIDE_PROVIDER, AnnotationKey::EgressRate), 1000),
        ]
    );
}
