//! Round trips of every resource through JSON and YAML, and the messages `validate()` gives for
//! malformed objects.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use crds::iptables::NatProtocol;
use crds::vpc::{PolicyRoute, PolicyRouteAction};
use crds::*;

fn round_trip<T>(obj: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(obj).unwrap();
    assert_eq!(
        &serde_json::from_str::<T>(&json).unwrap(),
        obj,
        "json: {json}"
    );
    let yaml = yaml_serde::to_string(obj).unwrap();
    assert_eq!(
        &yaml_serde::from_str::<T>(&yaml).unwrap(),
        obj,
        "yaml: {yaml}"
    );
}

#[test]
fn resources_round_trip() {
    let mut subnet = Subnet::new(
        "s1",
        SubnetSpec {
            vpc: Some("v1".into()),
            cidr: Some("10.0.0.0/24".into()),
            gateway: Some("10.0.0.1".into()),
            exclude_ips: vec!["10.0.0.2..10.0.0.9".into()],
            provider: Some("n.default.ovn".into()),
            nat_outgoing: true,
            ..Default::default()
        },
    );
    subnet.status = Some(SubnetStatus {
        cidr_block: Some("10.0.0.0/24".into()),
        v4_available_ips: 245.0,
        v4_using_ips: 1.0,
        conditions: vec![Condition::new(
            "Ready",
            ConditionStatus::True,
            "Ok",
            "",
            Some(2),
        )],
        ..Default::default()
    });
    round_trip(&subnet);
    let json = serde_json::to_value(&subnet).unwrap();
    assert_eq!(json["status"]["v4availableIPs"], 245.0);
    assert_eq!(json["spec"]["natOutgoing"], true);
    assert!(json["spec"].get("private").is_none());

    let mut vpc = Vpc::new(
        "v1",
        VpcSpec {
            namespaces: vec!["default".into()],
            ..Default::default()
        },
    );
    vpc.spec.policy_routes.push(PolicyRoute {
        priority: 100,
        match_: "ip4.dst == 1.1.1.1".into(),
        action: PolicyRouteAction::Reroute,
        next_hop_ip: Some("10.0.0.254".into()),
    });
    round_trip(&vpc);
    round_trip(&IP::new(
        "p.default.n.default.ovn",
        IPSpec {
            subnet: "s1".into(),
            ..Default::default()
        },
    ));
    round_trip(&IPPool::new(
        "pool",
        IPPoolSpec {
            subnet: "s1".into(),
            ips: vec!["10.0.0.10".into()],
            ..Default::default()
        },
    ));
    round_trip(&VpcNatGateway::new(
        "gw",
        VpcNatGatewaySpec {
            vpc: "v1".into(),
            subnet: "s1".into(),
            lan_ip: Some("10.0.0.254".into()),
            ..Default::default()
        },
    ));
    round_trip(&IptablesEIP::new(
        "eip",
        IptablesEIPSpec {
            nat_gw_dp: "gw".into(),
            ..Default::default()
        },
    ));
    round_trip(&IptablesFIPRule::new(
        "fip",
        IptablesFIPRuleSpec {
            eip: "eip".into(),
            internal_ip: "10.0.0.5".into(),
        },
    ));
    round_trip(&IptablesSnatRule::new(
        "snat",
        IptablesSnatRuleSpec {
            eip: "eip".into(),
            internal_cidr: "10.0.0.0/24".into(),
        },
    ));
    round_trip(&IptablesDnatRule::new(
        "dnat",
        IptablesDnatRuleSpec {
            eip: "eip".into(),
            external_port: "80".into(),
            protocol: Some(NatProtocol::Udp),
            internal_ip: "10.0.0.5".into(),
            internal_port: "8080".into(),
        },
    ));
    round_trip(&SecurityGroup::new(
        "sg",
        SecurityGroupSpec {
            allow_same_group_traffic: true,
            ..Default::default()
        },
    ));
    round_trip(&QoSPolicy::new("q", QoSPolicySpec::default()));
    round_trip(&NetworkAttachmentDefinition::with_config(
        "default",
        "n",
        "{\"type\":\"kube-ovn\"}",
    ));
}

#[test]
fn malformed_objects_name_field_and_value() {
    let cases: Vec<(Box<dyn Validate>, &str)> = vec![
        (
            Box::new(Subnet::new(
                "",
                SubnetSpec {
                    cidr_block: Some("10.0.0.0/24".into()),
                    ..Default::default()
                },
            )),
            "Subnet : metadata.name is required",
        ),
        (
            Box::new(Subnet::new(
                &"s".repeat(254),
                SubnetSpec {
                    cidr_block: Some("10.0.0.0/24".into()),
                    ..Default::default()
                },
            )),
            "metadata.name \"ssss",
        ),
        (
            Box::new(Subnet::new(
                "Bad_Name",
                SubnetSpec {
                    cidr_block: Some("10.0.0.0/24".into()),
                    ..Default::default()
                },
            )),
            "Subnet Bad_Name: metadata.name \"Bad_Name\": must be a lowercase RFC 1123 subdomain",
        ),
        (
            Box::new(Subnet::new(
                "s",
                SubnetSpec {
                    cidr_block: Some("10.0.0.0/24,10.1.0.0/24".into()),
                    ..Default::default()
                },
            )),
            "Subnet s: spec.cidrBlock \"10.0.0.0/24,10.1.0.0/24\": a dual-stack value needs one IPv4 and one IPv6 CIDR",
        ),
        (
            Box::new(Subnet::new(
                "s",
                SubnetSpec {
                    cidr: Some("10.0.0.0".into()),
                    ..Default::default()
                },
            )),
            "Subnet s: spec.cidr \"10.0.0.0\": not a CIDR: missing '/<prefix length>'",
        ),
        (
            Box::new(Subnet::new(
                "s",
                SubnetSpec {
                    cidr_block: Some("10.0.0.0/24".into()),
                    provider: Some("x".repeat(300)),
                    ..Default::default()
                },
            )),
            "spec.provider \"xxxx",
        ),
        (
            Box::new(Vpc::new(
                "v",
                VpcSpec {
                    namespaces: vec!["Default".into()],
                    ..Default::default()
                },
            )),
            "Vpc v: spec.namespaces[0] \"Default\": must be a lowercase RFC 1123 label",
        ),
        (
            Box::new(Vpc::new(
                "v",
                VpcSpec {
                    policy_routes: vec![PolicyRoute {
                        priority: 40000,
                        match_: "ip4".into(),
                        action: PolicyRouteAction::Allow,
                        next_hop_ip: None,
                    }],
                    ..Default::default()
                },
            )),
            "Vpc v: spec.policyRoutes[0].priority \"40000\": must be between 0 and 32767",
        ),
        (
            Box::new(Vpc::new(
                "v",
                VpcSpec {
                    policy_routes: vec![PolicyRoute {
                        priority: 1,
                        match_: "ip4".into(),
                        action: PolicyRouteAction::Reroute,
                        next_hop_ip: None,
                    }],
                    ..Default::default()
                },
            )),
            "Vpc v: spec.policyRoutes[0].nextHopIP is required when action is reroute",
        ),
        (
            Box::new(VpcNatGateway::new(
                "gw",
                VpcNatGatewaySpec {
                    vpc: "v".into(),
                    subnet: "s".into(),
                    lan_ip: Some("10.0.0.300".into()),
                    ..Default::default()
                },
            )),
            "VpcNatGateway gw: spec.lanIp \"10.0.0.300\": not an IP address",
        ),
        (
            Box::new(IptablesDnatRule::new(
                "d",
                IptablesDnatRuleSpec {
                    eip: "e".into(),
                    external_port: "0".into(),
                    protocol: None,
                    internal_ip: "10.0.0.1".into(),
                    internal_port: "80".into(),
                },
            )),
            "IptablesDnatRule d: spec.externalPort \"0\": must be a port number between 1 and 65535",
        ),
        (
            Box::new(IPPool::new(
                "p",
                IPPoolSpec {
                    subnet: "s".into(),
                    ips: vec![],
                    ..Default::default()
                },
            )),
            "IPPool p: spec.ips is required",
        ),
        (
            Box::new(IP::new(
                "i",
                IPSpec {
                    subnet: "s".into(),
                    v4_ip_address: "fd00::1".into(),
                    ..Default::default()
                },
            )),
            "IP i: spec.v4IpAddress \"fd00::1\": not an IPv4 address",
        ),
    ];
    for (obj, want) in cases {
        let got = obj.validate().unwrap_err().to_string();
        assert!(got.contains(want), "\n got: {got}\nwant: {want}");
    }
    let long = Subnet::new(
        &"s".repeat(254),
        SubnetSpec {
            cidr_block: Some("10.0.0.0/24".into()),
            ..Default::default()
        },
    );
    assert!(
        long.validate()
            .unwrap_err()
            .to_string()
            .ends_with("must be at most 253 characters, has 254")
    );
}
