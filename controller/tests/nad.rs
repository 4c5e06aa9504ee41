//! A broken kube-ovn NetworkAttachmentDefinition is reported on the NAD itself, before any pod
//! uses it (real kube-apiserver and OVN NB).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

mod common;

use std::time::Duration;

use crds::NetworkAttachmentDefinition;
use e2e::k8s::ControlPlane;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use ovn_api::testing::{OvsdbServer, SchemaKind};

const WAIT: Duration = Duration::from_secs(60);

async fn event_on(client: &kube::Client, name: &str) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let config =
        kube::runtime::watcher::Config::default().fields(&format!("involvedObject.name={name}"));
    let mut stream = std::pin::pin!(kube::runtime::watcher(events, config).applied_objects());
    tokio::time::timeout(WAIT, async { stream.next().await.unwrap().unwrap() })
        .await
        .unwrap_or_else(|_| panic!("no Event on NAD {name}"))
}

#[tokio::test]
async fn invalid_kube_ovn_nads_get_an_event_naming_the_problem() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client();
    e2e::cluster::install_crds(&client).await.unwrap();
    let nb = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    let (_ctx, controller) = common::start_controller(&client, &nb, 2).await;

    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), "default");
    let cases = [
        (
            "no-provider",
            r#"{"cniVersion":"0.3.1","type":"kube-ovn"}"#,
            "requires \"provider\"",
        ),
        ("bad-json", r#"{"cniVersion": "#, "bad-json"),
        (
            "bad-provider",
            r#"{"cniVersion":"0.3.1","type":"kube-ovn","provider":"Not Valid!"}"#,
            "provider",
        ),
        (
            "bad-version",
            r#"{"cniVersion":"2.0.0","type":"kube-ovn","provider":"bad-version.default.ovn"}"#,
            "cniVersion \"2.0.0\" is not supported by kube-ovn",
        ),
    ];
    for (name, config, _) in &cases {
        nads.create(
            &PostParams::default(),
            &NetworkAttachmentDefinition::with_config("default", name, config),
        )
        .await
        .unwrap();
    }
    // A NAD that is not ours gets nothing.
    let macvlan = NetworkAttachmentDefinition::with_config(
        "default",
        "macvlan",
        r#"{"cniVersion":"0.3.1","type":"macvlan"}"#,
    );
    nads.create(&PostParams::default(), &macvlan).await.unwrap();
    for (name, _, needle) in &cases {
        let e = event_on(&client, name).await;
        assert_eq!(
            e.reason.as_deref(),
            Some("InvalidNetworkAttachmentDefinition"),
            "{e:?}"
        );
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        let msg = e.message.unwrap_or_default();
        assert!(msg.contains(needle), "{name}: {msg}");
    }
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = events
        .list(&kube::api::ListParams::default().fields("involvedObject.name=macvlan"))
        .await
        .unwrap();
    assert!(
        list.items.is_empty(),
        "a NAD that is not ours gets no Event: {:?}",
        list.items
    );
    // A valid NAD whose provider no Subnet binds yet is told so (a Normal Event: the manual
    // creates the NAD before its Subnet).
    let unbound = NetworkAttachmentDefinition::with_config(
        "default",
        "unbound",
        r#"{"cniVersion":"0.3.1","type":"kube-ovn","provider":"unbound.default.ovn"}"#,
    );
    nads.create(&PostParams::default(), &unbound).await.unwrap();
    let e = event_on(&client, "unbound").await;
    assert_eq!(e.reason.as_deref(), Some("ProviderNotBound"), "{e:?}");
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert!(
        e.message
            .unwrap_or_default()
            .contains("provider unbound.default.ovn is not bound to any Subnet yet")
    );
    controller.abort();
}
