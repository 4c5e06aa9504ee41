//! The controller's NB writes against a real OVN Northbound ovsdb-server (and ovn-northd's view
//! through ovn-nbctl): idempotent, one transaction per change, only our rows touched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is how a test fails.

use std::collections::BTreeMap;

use controller::nb::{self, NbError, PortPlan, PortSecurity, SwitchPlan};
use ovn_api::testing::{OvsdbServer, SchemaKind};

fn plan(subnet: &str, vpc: Option<&str>, gw: &str) -> SwitchPlan {
    SwitchPlan {
        subnet: subnet.into(),
        vpc: vpc.map(Into::into),
        gateways: vec![gw.parse().unwrap()],
        acls: Vec::new(),
    }
}

#[tokio::test]
async fn vpc_subnet_and_port_are_created_once_and_removed_cleanly() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();

    nb::ensure_router(&client, "vpc-secondary").await.unwrap();
    nb::ensure_router(&client, "vpc-secondary").await.unwrap();
    let p = plan("subnet-secondary", Some("vpc-secondary"), "10.100.0.1/16");
    nb::ensure_switch(&client, &p).await.unwrap();
    nb::ensure_switch(&client, &p).await.unwrap();

    let show = server.nbctl(&["show"]).unwrap();
    assert_eq!(show.matches("router ").count(), 1, "{show}");
    assert_eq!(show.matches("switch ").count(), 1, "{show}");
    assert!(
        show.contains("port vpc-secondary-subnet-secondary"),
        "{show}"
    );
    assert!(show.contains("networks: [\"10.100.0.1/16\"]"), "{show}");
    assert!(
        show.contains("port subnet-secondary-vpc-secondary"),
        "{show}"
    );
    let rp = server
        .nbctl(&[
            "get",
            "Logical_Switch_Port",
            "subnet-secondary-vpc-secondary",
            "options:router-port",
        ])
        .unwrap();
    assert_eq!(rp.trim(), "vpc-secondary-subnet-secondary");

    // A changed gateway updates the router port in place.
    nb::ensure_switch(
        &client,
        &plan("subnet-secondary", Some("vpc-secondary"), "10.100.0.254/16"),
    )
    .await
    .unwrap();
    let nets = server
        .nbctl(&[
            "get",
            "Logical_Router_Port",
            "vpc-secondary-subnet-secondary",
            "networks",
        ])
        .unwrap();
    assert_eq!(nets.trim(), "[\"10.100.0.254/16\"]");

    let port = PortPlan {
        name: "multi-network-pod.default.kube-ovn-vpc-network.default.ovn".into(),
        switch: "subnet-secondary".into(),
        mac: "00:00:00:12:34:56".into(),
        ips: vec!["10.100.0.2".parse().unwrap()],
        port_security: PortSecurity::Addresses,
        external_ids: nb::owned_ids(&[("pod", "default/multi-network-pod")]),
        dhcp: (None, None),
        security_groups: Vec::new(),
        policy_groups: Vec::new(),
    };
    nb::ensure_port(&client, &port).await.unwrap();
    nb::ensure_port(&client, &port).await.unwrap();
    let addrs = server.nbctl(&["lsp-get-addresses", &port.name]).unwrap();
    assert_eq!(addrs.trim(), "00:00:00:12:34:56 10.100.0.2");
    let sec = server
        .nbctl(&["lsp-get-port-security", &port.name])
        .unwrap();
    assert_eq!(sec.trim(), "00:00:00:12:34:56 10.100.0.2");
    assert_eq!(nb::attachment_ports(&client).len(), 1);

    // The port follows a new address; then it is removed with its switch's reference.
    let moved = PortPlan {
        ips: vec!["10.100.0.100".parse().unwrap()],
        ..port.clone()
    };
    nb::ensure_port(&client, &moved).await.unwrap();
    let addrs = server.nbctl(&["lsp-get-addresses", &port.name]).unwrap();
    assert_eq!(addrs.trim(), "00:00:00:12:34:56 10.100.0.100");
    assert!(nb::delete_port(&client, &port.name).await.unwrap());
    assert!(!nb::delete_port(&client, &port.name).await.unwrap());
    assert!(
        !server
            .nbctl(&["show"])
            .unwrap()
            .contains("multi-network-pod")
    );

    nb::delete_switch(&client, "subnet-secondary", Some("vpc-secondary"))
        .await
        .unwrap();
    nb::delete_router(&client, "vpc-secondary").await.unwrap();
    let show = server.nbctl(&["show"]).unwrap();
    assert!(show.trim().is_empty(), "left behind: {show}");
}

#[tokio::test]
async fn rows_that_are_not_ours_are_never_adopted_or_deleted() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    server
        .nbctl(&[
            "lr-add",
            "theirs",
            "--",
            "ls-add",
            "their-ls",
            "--",
            "lsp-add",
            "their-ls",
            "their-port",
        ])
        .unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();
    let err = nb::ensure_router(&client, "theirs").await.unwrap_err();
    assert!(matches!(err, NbError::NotOurs { .. }), "{err}");
    let err = nb::ensure_switch(&client, &plan("their-ls", None, "10.0.0.1/24"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not created by kube-ovn"), "{err}");
    assert!(!nb::delete_port(&client, "their-port").await.unwrap());
    nb::delete_switch(&client, "their-ls", None).await.unwrap();
    nb::delete_router(&client, "theirs").await.unwrap();
    let show = server.nbctl(&["show"]).unwrap();
    assert!(
        show.contains("their-port") && show.contains("theirs"),
        "{show}"
    );

    // A port on a switch that does not exist is a clear error.
    let err = nb::ensure_port(
        &client,
        &PortPlan {
            name: "p".into(),
            switch: "nope".into(),
            mac: "00:00:00:00:00:01".into(),
            ips: vec![],
            port_security: PortSecurity::Off,
            external_ids: BTreeMap::new(),
            dhcp: (None, None),
            security_groups: Vec::new(),
            policy_groups: Vec::new(),
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("logical switch nope does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn dhcp_rows_follow_the_subnet_and_every_port_points_at_them() {
    use controller::nb::dhcp::{self, DhcpPlan, Family};
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();
    nb::ensure_switch(&client, &plan("s-dhcp", None, "10.110.0.1/24"))
        .await
        .unwrap();
    let port = |name: &str, dhcp| PortPlan {
        name: name.into(),
        switch: "s-dhcp".into(),
        mac: "00:00:00:aa:bb:01".into(),
        ips: vec!["10.110.0.2".parse().unwrap()],
        port_security: PortSecurity::Addresses,
        external_ids: nb::owned_ids(&[("pod", "default/p"), ("ls", "s-dhcp")]),
        dhcp,
        security_groups: Vec::new(),
        policy_groups: Vec::new(),
    };
    // A port that exists before DHCP is turned on.
    nb::ensure_port(&client, &port("early", (None, None)))
        .await
        .unwrap();
    let v4 = dhcp::options_v4(
        "10.110.0.1".parse().unwrap(),
        "0a:00:00:00:00:09",
        Some(1400),
        Some("dns_server={10.110.0.53,10.110.0.54}"),
    )
    .unwrap();
    let on = DhcpPlan {
        subnet: "s-dhcp".into(),
        v4: Some(Family {
            cidr: "10.110.0.0/24".parse().unwrap(),
            options: v4,
        }),
        v6: Some(Family {
            cidr: "fd00:110::/64".parse().unwrap(),
            options: dhcp::options_v6("0a:00:00:00:00:09", None).unwrap(),
        }),
    };
    let (u4, u6) = dhcp::ensure_dhcp(&client, &on).await.unwrap();
    let (u4, u6) = (u4.unwrap(), u6.unwrap());
    assert_eq!(
        dhcp::ensure_dhcp(&client, &on).await.unwrap(),
        (Some(u4), Some(u6))
    );
    let list = server.nbctl(&["dhcp-options-list"]).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    let opts = server
        .nbctl(&["dhcp-options-get-options", &u4.to_string()])
        .unwrap();
    for want in [
        "lease_time=3600",
        "router=10.110.0.1",
        "server_id=169.254.0.254",
        "server_mac=0a:00:00:00:00:09",
        "mtu=1400",
        "dns_server={10.110.0.53,10.110.0.54}",
    ] {
        assert!(opts.lines().any(|l| l == want), "{want} in {opts}");
    }
    let cidr = server
        .nbctl(&["get", "DHCP_Options", &u4.to_string(), "cidr"])
        .unwrap();
    assert_eq!(cidr.trim(), "\"10.110.0.0/24\"");
    // The port that was there before now points at both rows; a new one is written with them.
    let get = |p: &str, col: &str| {
        server
            .nbctl(&["get", "Logical_Switch_Port", p, col])
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(get("early", "dhcpv4_options"), u4.to_string());
    assert_eq!(get("early", "dhcpv6_options"), u6.to_string());
    assert_eq!(dhcp::uuids_of(&client, "s-dhcp"), (Some(u4), Some(u6)));
    nb::ensure_port(&client, &port("late", dhcp::uuids_of(&client, "s-dhcp")))
        .await
        .unwrap();
    assert_eq!(get("late", "dhcpv4_options"), u4.to_string());

    // Options change in place (same row).
    let mut changed = on.clone();
    changed.v6 = None;
    if let Some(f) = changed.v4.as_mut() {
        f.options.insert("lease_time".into(), "60".into());
    }
    let (again4, none6) = dhcp::ensure_dhcp(&client, &changed).await.unwrap();
    assert_eq!((again4, none6), (Some(u4), None));
    assert_eq!(get("early", "dhcpv6_options"), "[]");
    assert!(
        server
            .nbctl(&["dhcp-options-get-options", &u4.to_string()])
            .unwrap()
            .contains("lease_time=60")
    );

    // Someone else's row is never touched; turning DHCP off removes ours and the references.
    server
        .nbctl(&["dhcp-options-create", "192.168.0.0/24"])
        .unwrap();
    let off = DhcpPlan {
        subnet: "s-dhcp".into(),
        v4: None,
        v6: None,
    };
    assert_eq!(
        dhcp::ensure_dhcp(&client, &off).await.unwrap(),
        (None, None)
    );
    assert_eq!(get("early", "dhcpv4_options"), "[]");
    assert_eq!(get("late", "dhcpv4_options"), "[]");
    let list = server.nbctl(&["dhcp-options-list"]).unwrap();
    assert_eq!(
        list.lines().count(),
        1,
        "only the foreign row is left: {list}"
    );
    assert_eq!(dhcp::delete_dhcp(&client, "s-dhcp").await.unwrap(), 0);
}
