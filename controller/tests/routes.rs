//! A Vpc's static and policy routes on a real OVN NB: added, changed, removed with the spec,
//! never touching routes someone else put on the router.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use controller::nb::{self, routes};
use crds::vpc::{PolicyRoute, PolicyRouteAction, StaticRoute};
use ovn_api::testing::{OvsdbServer, SchemaKind};

fn route(cidr: &str, hop: &str) -> StaticRoute {
    StaticRoute {
        cidr: cidr.into(),
        next_hop_ip: hop.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_router_follows_the_vpc_spec_and_keeps_foreign_routes() {
    let server = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let client = nb::connect(&server.remote()).await.unwrap();
    nb::ensure_router(&client, "vpc-a").await.unwrap();
    server
        .nbctl(&["lr-route-add", "vpc-a", "172.16.0.0/16", "10.0.0.99"])
        .unwrap();

    let drop_all = PolicyRoute {
        priority: 100,
        match_: "ip4.dst == 192.0.2.0/24".into(),
        action: PolicyRouteAction::Drop,
        next_hop_ip: None,
    };
    let (r, p) = routes::plan(
        &[
            route("0.0.0.0/0", "10.0.0.254"),
            route("192.168.0.0/16", "10.0.0.253"),
        ],
        std::slice::from_ref(&drop_all),
    )
    .unwrap();
    routes::sync(&client, "vpc-a", &r, &p).await.unwrap();
    routes::sync(&client, "vpc-a", &r, &p).await.unwrap();
    let listed = server.nbctl(&["lr-route-list", "vpc-a"]).unwrap();
    assert!(
        listed.contains("0.0.0.0/0") && listed.contains("10.0.0.254"),
        "{listed}"
    );
    assert!(
        listed.contains("192.168.0.0/16") && listed.contains("172.16.0.0/16"),
        "{listed}"
    );
    assert_eq!(listed.matches("10.0.0.").count(), 3, "{listed}");
    let policies = server.nbctl(&["lr-policy-list", "vpc-a"]).unwrap();
    assert!(
        policies.contains("ip4.dst == 192.0.2.0/24") && policies.contains("drop"),
        "{policies}"
    );

    // The spec changes: one route goes, the policy becomes a reroute.
    let reroute = PolicyRoute {
        action: PolicyRouteAction::Reroute,
        next_hop_ip: Some("10.0.0.252".into()),
        ..drop_all
    };
    let (r, p) = routes::plan(&[route("0.0.0.0/0", "10.0.0.254")], &[reroute]).unwrap();
    routes::sync(&client, "vpc-a", &r, &p).await.unwrap();
    let listed = server.nbctl(&["lr-route-list", "vpc-a"]).unwrap();
    assert!(!listed.contains("192.168.0.0/16"), "{listed}");
    assert!(
        listed.contains("172.16.0.0/16"),
        "a route we did not create stays: {listed}"
    );
    let policies = server.nbctl(&["lr-policy-list", "vpc-a"]).unwrap();
    assert!(
        policies.contains("reroute")
            && policies.contains("10.0.0.252")
            && !policies.contains("drop"),
        "{policies}"
    );

    // An empty spec removes all of ours and nothing else.
    routes::sync(&client, "vpc-a", &Default::default(), &Default::default())
        .await
        .unwrap();
    let listed = server.nbctl(&["lr-route-list", "vpc-a"]).unwrap();
    assert!(
        listed.contains("172.16.0.0/16") && !listed.contains("0.0.0.0/0"),
        "{listed}"
    );
    assert!(
        server
            .nbctl(&["lr-policy-list", "vpc-a"])
            .unwrap()
            .trim()
            .is_empty()
            || !server
                .nbctl(&["lr-policy-list", "vpc-a"])
                .unwrap()
                .contains("192.0.2")
    );
}
