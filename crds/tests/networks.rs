//! The networks annotation, network-status and NAD configs: every malformed class gives its own
//! message; valid values round-trip; the annotation parser never panics.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

use crds::nad::{NadClass, NadConfig, resolve_attachments};
use crds::networks::{NetworkStatus, parse_network_status};
use crds::{Error, NetworkAttachmentDefinition, parse_networks_annotation};
use proptest::prelude::*;

fn err(annotation: &str) -> String {
    parse_networks_annotation(annotation, "pod-ns")
        .unwrap_err()
        .to_string()
}

#[test]
fn comma_form() {
    let n =
        parse_networks_annotation(" net-a , other/net-b@eth9,ns2/ net-c @ if2 ", "pod-ns").unwrap();
    let got: Vec<_> = n
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{}@{}", e.nad_key(), e.interface_name(i)))
        .collect();
    assert_eq!(
        got,
        ["pod-ns/net-a@net1", "other/net-b@eth9", "ns2/net-c@if2"]
    );
}

#[test]
fn malformed_inputs_have_specific_messages() {
    let cases: &[(&str, &str)] = &[
        ("", "annotation k8s.v1.cni.cncf.io/networks is empty"),
        ("   ", "annotation k8s.v1.cni.cncf.io/networks is empty"),
        (
            r#"[{"name": "a"#,
            "annotation k8s.v1.cni.cncf.io/networks is not a valid JSON list of networks: EOF \
             while parsing a string at line 1 column 12",
        ),
        (
            r#"{"name": "a"}"#,
            "annotation k8s.v1.cni.cncf.io/networks is not a valid JSON list of networks: \
             expected a JSON list such as [{\"name\": \"ns/nad\"}]",
        ),
        (
            "default/nad@",
            "annotation k8s.v1.cni.cncf.io/networks, element 0 (\"default/nad@\"): interface \
             name is empty after '@'",
        ),
        (
            "a@b@c",
            "annotation k8s.v1.cni.cncf.io/networks, element 0 (\"a@b@c\"): more than one '@'",
        ),
        (
            "a/b/c",
            "annotation k8s.v1.cni.cncf.io/networks, element 0 (\"a/b/c\"): more than one '/'",
        ),
        (
            "/nad",
            "annotation k8s.v1.cni.cncf.io/networks, element 0 (\"/nad\"): empty namespace before '/'",
        ),
        (
            "a,,b",
            "annotation k8s.v1.cni.cncf.io/networks, element 1 (\"\"): empty network name",
        ),
        (
            r#"[{"name": ""}]"#,
            "annotation k8s.v1.cni.cncf.io/networks, element 0 (\"\"): empty network name",
        ),
        (
            r#"[{"name": "nad", "ips": ["10.0.0.300"]}]"#,
            "annotation k8s.v1.cni.cncf.io/networks is not a valid JSON list of networks: ips: \
             \"10.0.0.300\" is not an IP address or CIDR at line 1",
        ),
        (
            r#"[{"name": "nad", "ips": ["10.0.0.1/40"]}]"#,
            "ips: \"10.0.0.1/40\" is not an IP address or CIDR",
        ),
        (
            r#"[{"name": "nad", "mac": "00:11:22"}]"#,
            "not a valid JSON list of networks: mac: \"00:11:22\": not a MAC address: expected \
             6, 8 or 20 hex pairs",
        ),
        (
            "a@net1,b@net1",
            "annotation k8s.v1.cni.cncf.io/networks: interface name \"net1\" is used by element \
             0 and element 1",
        ),
        (
            "b,a@net1",
            "interface name \"net1\" is used by element 0 and element 1",
        ),
        (
            "Bad_Name",
            "annotation k8s.v1.cni.cncf.io/networks, element 0 (\"Bad_Name\"): name \"Bad_Name\": \
             must be a lowercase RFC 1123 subdomain",
        ),
        (
            "Bad.NS/nad",
            "element 0 (\"nad\"): namespace \"Bad.NS\": must be a lowercase RFC 1123 label",
        ),
        (
            "nad@this-is-way-too-long",
            "element 0 (\"nad\"): interface \"this-is-way-too-long\": interface names are at most \
             15 bytes, has 20",
        ),
        (
            r#"[{"name": "ns1/nad", "namespace": "ns2"}]"#,
            "element 0 (\"ns1/nad\"): name says namespace \"ns1\" but namespace is \"ns2\"",
        ),
    ];
    for (input, want) in cases {
        let got = err(input);
        assert!(
            got.contains(want),
            "input {input:?}\n got: {got}\nwant: {want}"
        );
    }
    let long = "a".repeat(254);
    let got = err(&long);
    assert!(
        got.contains("must be at most 253 characters, has 254"),
        "{got}"
    );
    assert!(parse_networks_annotation(&"a".repeat(253), "ns").is_ok());
    let got = err(r#"[{"name": "nad", "mac": "zz"}]"#);
    assert!(got.contains("mac: \"zz\": not a MAC address"), "{got}");
    let got = err(r#"[{"name": "nad", "infiniband-guid": "zz"}]"#);
    assert!(
        got.contains("infiniband-guid: \"zz\": not a MAC address"),
        "{got}"
    );
}

#[test]
fn json_form_round_trips() {
    let annotation = r#"[{"name":"nad","namespace":"ns","interface":"eth1","ips":["10.0.0.5/24","fd00::5"],"mac":"0a:58:0a:00:00:05","default-route":["10.0.0.1"],"bandwidth":{"ingressRate":1000,"ingressBurst":10,"egressRate":2000,"egressBurst":20},"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"cni-args":{"k":"v"},"ipam-claim-reference":"claim-1","infiniband-guid":"00:11:22:33:44:55:66:77"}]"#;
    let parsed = parse_networks_annotation(annotation, "pod-ns").unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        serde_json::from_str::<serde_json::Value>(annotation).unwrap()
    );
    let again = parse_networks_annotation(&serde_json::to_string(&parsed).unwrap(), "x").unwrap();
    assert_eq!(parsed, again);
    assert_eq!(parsed[0].default_route[0].to_string(), "10.0.0.1");
}

#[test]
fn network_status_uses_gateway_not_default_route() {
    let s = r#"[{"name":"default/kube-ovn-vpc-network","interface":"net1","ips":["10.100.0.2"],"mac":"0a:58:0a:64:00:02","default":true,"dns":{},"gateway":["10.100.0.1"]}]"#;
    let parsed: Vec<NetworkStatus> = parse_network_status(s).unwrap();
    assert_eq!(parsed[0].gateway, ["10.100.0.1"]);
    let out = serde_json::to_string(&parsed).unwrap();
    assert!(out.contains("\"gateway\":[\"10.100.0.1\"]") && !out.contains("default-route"));
    assert_eq!(parse_network_status(&out).unwrap(), parsed);
    assert!(
        parse_network_status("{")
            .unwrap_err()
            .to_string()
            .contains("not a JSON list")
    );
}

fn nad(ns: &str, name: &str, config: &str) -> NetworkAttachmentDefinition {
    NetworkAttachmentDefinition::with_config(ns, name, config)
}

#[test]
fn nad_classes() {
    let kube_ovn = nad(
        "default",
        "a",
        r#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"a.default.ovn"}"#,
    );
    assert_eq!(
        kube_ovn.classify().unwrap(),
        NadClass::Attachment {
            provider: "a.default.ovn".into(),
            server_socket: "/run/openvswitch/kube-ovn-daemon.sock".into()
        }
    );
    let conflist = nad(
        "default",
        "b",
        r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"kube-ovn","provider":"b.default.ovn","server_socket":"/tmp/s.sock","capabilities":{"ips":true,"mac":true}},{"type":"bandwidth","capabilities":{"bandwidth":true}}]}"#,
    );
    assert_eq!(
        conflist.classify().unwrap(),
        NadClass::Attachment {
            provider: "b.default.ovn".into(),
            server_socket: "/tmp/s.sock".into()
        }
    );
    let macvlan = nad(
        "ns1",
        "mv",
        r#"{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{"type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock"}}"#,
    );
    assert_eq!(
        macvlan.classify().unwrap(),
        NadClass::IpamOnly {
            plugin: "macvlan".into(),
            provider: "mv.ns1".into(),
            server_socket: "/run/openvswitch/kube-ovn-daemon.sock".into()
        }
    );
    let bridge = nad(
        "ns1",
        "br",
        r#"{"type":"bridge","ipam":{"type":"host-local"}}"#,
    );
    assert_eq!(bridge.classify().unwrap(), NadClass::NotOurs);
    // Another plugin's version is its business.
    let old_bridge = nad("ns1", "old", r#"{"cniVersion":"0.2.0","type":"bridge"}"#);
    assert_eq!(old_bridge.classify().unwrap(), NadClass::NotOurs);
    assert_eq!(
        nad("ns1", "file", "").classify().unwrap(),
        NadClass::NotOurs
    );
}

#[test]
fn nad_errors_are_specific() {
    let cases = [
        (
            r#"{"type":"kube-ovn"}"#,
            "NetworkAttachmentDefinition default/vpc-net: type kube-ovn requires \"provider\" (by \
             convention \"vpc-net.default.ovn\")",
        ),
        (
            r#"{"type":"kube-ovn","provider":""}"#,
            "type kube-ovn requires \"provider\"",
        ),
        (
            r#"{"type":"kube-ovn""#,
            "NetworkAttachmentDefinition default/vpc-net: spec.config is not valid JSON: EOF while \
             parsing an object",
        ),
        (r#"[1]"#, "spec.config must be a JSON object"),
        (
            r#"{"type":"kube-ovn","provider":"Bad_Provider"}"#,
            "provider \"Bad_Provider\": must be a lowercase RFC 1123 subdomain",
        ),
        (
            r#"{"plugins":"x"}"#,
            "spec.config: invalid type: string \"x\", expected a sequence",
        ),
        (
            r#"{"cniVersion":"2.0.0","type":"kube-ovn","provider":"a.default.ovn"}"#,
            "cniVersion \"2.0.0\" is not supported by kube-ovn (supported: 0.3.0, 0.3.1, 0.4.0, \
             1.0.0, 1.1.0)",
        ),
        (
            r#"{"cniVersion":"0.2.0","type":"macvlan","ipam":{"type":"kube-ovn"}}"#,
            "cniVersion \"0.2.0\" is not supported by kube-ovn",
        ),
    ];
    for (config, want) in cases {
        let got = nad("default", "vpc-net", config)
            .classify()
            .unwrap_err()
            .to_string();
        assert!(
            got.contains(want),
            "config {config}\n got: {got}\nwant: {want}"
        );
    }
}

#[test]
fn nad_config_round_trips() {
    let text = r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"kube-ovn","provider":"b.default.ovn","capabilities":{"ips":true},"mtu":1400},{"type":"tuning","sysctl":{"net.ipv4.conf.all.arp_notify":"1"}}]}"#;
    let parsed = NadConfig::parse(text).unwrap();
    let value: serde_json::Value = serde_json::to_value(&parsed).unwrap();
    assert_eq!(
        value,
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    );
    assert!(parsed.plugin_list()[0].capabilities["ips"]);
}

#[test]
fn resolve_unknown_nad_and_per_interface_providers() {
    let nads = [
        nad(
            "default",
            "a",
            r#"{"type":"kube-ovn","provider":"a.default.ovn"}"#,
        ),
        nad("default", "br", r#"{"type":"bridge"}"#),
    ];
    let elements = parse_networks_annotation("a@eth1,a@eth2,br", "default").unwrap();
    let att = resolve_attachments(&elements, &nads).unwrap();
    let got: Vec<_> = att
        .iter()
        .map(|a| (a.interface.as_str(), a.provider.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("eth1", "a.default.ovn.eth1"),
            ("eth2", "a.default.ovn.eth2")
        ]
    );
    assert!(att.iter().all(|a| a.nad_provider == "a.default.ovn"));

    let single = parse_networks_annotation("br,a", "default").unwrap();
    let att = resolve_attachments(&single, &nads).unwrap();
    assert_eq!(
        (att[0].interface.as_str(), att[0].provider.as_str()),
        ("net2", "a.default.ovn")
    );

    let missing = parse_networks_annotation("other/a", "default").unwrap();
    let e = resolve_attachments(&missing, &nads).unwrap_err();
    assert_eq!(
        e,
        Error::UnknownNad {
            namespace: "other".into(),
            name: "a".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "NetworkAttachmentDefinition other/a not found"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics(s in any::<String>()) {
        let _ = parse_networks_annotation(&s, "ns");
    }

    #[test]
    fn parser_never_panics_on_near_misses(s in r#"[\[\]{}",:@/ a-z0-9.\-]{0,60}"#) {
        let _ = parse_networks_annotation(&s, "ns");
    }

    #[test]
    fn parsed_comma_forms_round_trip_through_json(
        items in proptest::collection::vec(("[a-z][a-z0-9]{0,8}", "[a-z][a-z0-9]{0,8}"), 1..5)
    ) {
        let annotation = items.iter().map(|(ns, n)| format!("{ns}/{n}")).collect::<Vec<_>>().join(",");
        let parsed = parse_networks_annotation(&annotation, "ns").unwrap();
        let json = serde_json::to_string(&parsed).unwrap();
        prop_assert_eq!(parse_networks_annotation(&json, "other").unwrap(), parsed);
    }
}

/// The manual's JSON elements name the NAD as `namespace/name`, which Multus refuses; the
/// webhook rewrites them to what Multus reads, and the controller reads both the same way.
#[test]
fn multus_form_moves_the_namespace_out_of_the_name_and_nothing_else() {
    use crds::networks::multus_form;
    for snippet in [
        crds::seed::SEGMENTATION,
        crds::seed::MULTI_PROVIDER,
        crds::seed::STATIC_IP,
    ] {
        // The block scalar under the networks key (six spaces in, as the manual has it).
        let annotation: String = snippet
            .lines()
            .skip_while(|l| !l.contains("k8s.v1.cni.cncf.io/networks: |"))
            .skip(1)
            .take_while(|l| l.starts_with("      "))
            .map(|l| format!("{}\n", &l[6..]))
            .collect();
        let annotation = annotation.as_str();
        assert!(annotation.starts_with('['), "{snippet}");
        let rewritten = multus_form(annotation).expect("the manual's form needs rewriting");
        let list: serde_json::Value = serde_json::from_str(&rewritten).unwrap();
        for element in list.as_array().unwrap() {
            assert_eq!(element["namespace"], "default", "{rewritten}");
            assert!(
                !element["name"].as_str().unwrap().contains('/'),
                "{rewritten}"
            );
        }
        assert_eq!(
            parse_networks_annotation(annotation, "pod-ns").unwrap(),
            parse_networks_annotation(&rewritten, "pod-ns").unwrap(),
            "{annotation} vs {rewritten}"
        );
        // Rewritten once, read as it is from then on.
        assert_eq!(multus_form(&rewritten), None);
    }
    // Every other field kept, unknown ones included.
    let out = multus_form(
        r#"[{"name":"ns1/a","interface":"net7","ips":["10.0.0.5/24"],"x-extra":{"k":1}},{"name":"b"}]"#,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"name": "a", "namespace": "ns1", "interface": "net7", "ips": ["10.0.0.5/24"], "x-extra": {"k": 1}},
            {"name": "b"}
        ])
    );
    // Same namespace given twice: still moved; a different one is left for the controller to
    // report (it refuses the element with a message naming both).
    assert!(multus_form(r#"[{"name":"ns1/a","namespace":"ns1"}]"#).is_some());
    assert_eq!(multus_form(r#"[{"name":"ns1/a","namespace":"ns2"}]"#), None);
    // Already Multus' form, the comma form, and what is not a list: untouched.
    for untouched in [
        r#"[{"name":"a","namespace":"ns1"}]"#,
        "ns1/a@net1, b",
        r#"{"name":"ns1/a"}"#,
        "[not json",
        r#"[{"name":"/a"},{"name":"ns/"},{"name":"a/b/c"},7]"#,
    ] {
        assert_eq!(multus_form(untouched), None, "{untouched}");
    }
}
