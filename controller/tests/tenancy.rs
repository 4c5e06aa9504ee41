//! Tenant isolation (issue 14 item 4, DESIGN §7) against a real kube-apiserver and a real OVN
//! NB: every attempt to cross into another tenant's network is refused with an Event, and
//! leaves no address, no `IP` CR and no port behind; `port_security: "false"` is honoured only
//! where the Subnet allows it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

mod common;

use std::time::Duration;

use crds::{IP, NetworkAttachmentDefinition, Subnet, Vpc};
use e2e::k8s::ControlPlane;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};
use ovn_api::testing::{OvsdbServer, SchemaKind};

use common::{event_containing_on, yaml};

const WAIT: Duration = Duration::from_secs(60);

/// Creates namespace `ns` with its `default` ServiceAccount (pod admission wants it, and the
/// controller-manager's copy may come later).
async fn namespace(client: &Client, ns: &str) {
    let n: Namespace = yaml(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
    ));
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &n)
        .await
        .unwrap();
    let sa: ServiceAccount = yaml(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: default, namespace: {ns}}}\n"
    ));
    match Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("ServiceAccount default in {ns}: {e}"),
    }
}

async fn nad(client: &Client, ns: &str, name: &str, provider: &str) {
    let n = NetworkAttachmentDefinition::with_config(
        ns,
        name,
        &format!(
            r#"{{"cniVersion":"0.3.1","type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock","provider":"{provider}"}}"#
        ),
    );
    Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &n)
        .await
        .unwrap();
}

async fn vpc(client: &Client, name: &str, namespaces: &[&str]) {
    let v: Vpc = yaml(&format!(
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {{name: {name}}}\nspec: {{namespaces: {namespaces:?}}}\n"
    ));
    Api::<Vpc>::all(client.clone())
        .create(&PostParams::default(), &v)
        .await
        .unwrap();
}

/// A Subnet `name` in Vpc `vpc` with `cidr`, bound to `provider`, plus `extra` spec fields
/// (YAML flow-map entries).
async fn subnet(client: &Client, name: &str, vpc: &str, cidr: &str, provider: &str, extra: &str) {
    let s: Subnet = yaml(&format!(
        "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {{name: {name}}}\nspec: {{vpc: {vpc}, cidr: \"{cidr}\", provider: {provider}{extra}}}\n"
    ));
    Api::<Subnet>::all(client.clone())
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

/// Creates pod `ns/name` selecting `networks`, with further annotations.
async fn pod(client: &Client, ns: &str, name: &str, networks: &str, extra: &[(&str, &str)]) {
    let mut p: Pod = yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  containers: [{{name: app, image: nginx}}]\n"
    ));
    p.annotations_mut()
        .insert("k8s.v1.cni.cncf.io/networks".into(), networks.into());
    for (k, v) in extra {
        p.annotations_mut().insert((*k).into(), (*v).into());
    }
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
}

/// Waits for `<provider>.kubernetes.io/allocated: "true"` on pod `ns/name`.
async fn allocated(client: &Client, ns: &str, name: &str, provider: &str) -> Pod {
    let key = format!("{provider}.kubernetes.io/allocated");
    let cond = move |p: Option<&Pod>| {
        p.is_some_and(|p| p.annotations().get(&key).is_some_and(|v| v == "true"))
    };
    tokio::time::timeout(
        WAIT,
        await_condition(Api::namespaced(client.clone(), ns), name, cond),
    )
    .await
    .unwrap_or_else(|_| panic!("pod {ns}/{name} never got its attachment"))
    .unwrap()
    .unwrap()
}

/// The Warning Event on pod `name` containing `needle`, checked for its reason; then that the
/// attachment `key` left nothing behind: no address, no `IP` CR, no port.
async fn refused(
    client: &Client,
    ctx: &controller::context::Context,
    nb: &OvsdbServer,
    name: &str,
    key: &str,
    reason: &str,
    needle: &str,
) -> String {
    let e = event_containing_on(client, "Pod", name, needle).await;
    assert_eq!(e.reason.as_deref(), Some(reason), "{e:?}");
    assert_eq!(e.type_.as_deref(), Some("Warning"), "{e:?}");
    assert!(ctx.ipam.get(key).is_none(), "{key} holds an address");
    assert!(
        Api::<IP>::all(client.clone())
            .get_opt(key)
            .await
            .unwrap()
            .is_none(),
        "IP {key} exists"
    );
    assert!(
        !nb.nbctl(&["show"]).unwrap().contains(key),
        "port {key} exists in NB"
    );
    let p: Pod = Api::namespaced(
        client.clone(),
        e.involved_object.namespace.as_deref().unwrap(),
    )
    .get(name)
    .await
    .unwrap();
    assert!(
        !p.annotations()
            .keys()
            .any(|k| k.ends_with(".kubernetes.io/allocated")),
        "{name} is marked allocated: {:?}",
        p.annotations()
    );
    e.message.unwrap_or_default()
}

/// The ports on switch `ls`, by name.
fn ports_on(nb: &OvsdbServer, ls: &str) -> Vec<String> {
    nb.nbctl(&["lsp-list", ls])
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once('(')
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn a_tenant_cannot_attach_to_another_tenants_network() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client();
    e2e::cluster::install_crds(&client).await.unwrap();
    let nb = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    // Two tenants, each a Vpc that admits its own namespace (the manual's shape).
    for t in ["ta", "tb"] {
        namespace(&client, t).await;
    }
    vpc(&client, "vpc-a", &["ta"]).await;
    vpc(&client, "vpc-b", &["tb"]).await;
    subnet(&client, "sub-a", "vpc-a", "10.131.0.0/24", "net.ta.ovn", "").await;
    subnet(&client, "sub-b", "vpc-b", "10.132.0.0/24", "net.tb.ovn", "").await;
    nad(&client, "ta", "net", "net.ta.ovn").await;
    nad(&client, "tb", "net", "net.tb.ovn").await;
    let (ctx, controller) = common::start_controller(&client, &nb, 4).await;

    // Each tenant attaches to its own network: the refusals below are not a broken setup.
    pod(&client, "ta", "pod-a", "ta/net", &[]).await;
    pod(&client, "tb", "pod-b", "tb/net", &[]).await;
    allocated(&client, "ta", "pod-a", "net.ta.ovn").await;
    allocated(&client, "tb", "pod-b", "net.tb.ovn").await;
    let own_a = ports_on(&nb, "sub-a");

    // 1. logical_switch hijack: tenant b's pod names tenant a's switch.
    pod(
        &client,
        "tb",
        "hijack",
        "tb/net",
        &[("net.tb.ovn.kubernetes.io/logical_switch", "sub-a")],
    )
    .await;
    let msg = refused(
        &client,
        &ctx,
        &nb,
        "hijack",
        "hijack.tb.net.tb.ovn",
        "LogicalSwitchRefused",
        "logical_switch \"sub-a\"",
    )
    .await;
    assert!(
        !msg.contains("vpc-a"),
        "names the other tenant's Vpc: {msg}"
    );

    // 2. foreign provider: tenant b's own NAD names tenant a's provider. The NAD is refused,
    // and so is every pod that uses it, from either namespace.
    nad(&client, "tb", "evil", "net.ta.ovn").await;
    let e = event_containing_on(&client, "NetworkAttachmentDefinition", "evil", "net.ta.ovn").await;
    assert_eq!(e.reason.as_deref(), Some("ProviderNotAdmitted"), "{e:?}");
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    let msg = e.message.unwrap_or_default();
    assert!(!msg.contains("sub-a") && !msg.contains("vpc-a"), "{msg}");
    pod(&client, "tb", "foreign", "tb/evil", &[]).await;
    let msg = refused(
        &client,
        &ctx,
        &nb,
        "foreign",
        "foreign.tb.net.ta.ovn",
        "NamespaceNotAdmitted",
        "namespace tb is not admitted",
    )
    .await;
    assert!(!msg.contains("sub-a") && !msg.contains("vpc-a"), "{msg}");
    pod(&client, "ta", "lured", "tb/evil", &[]).await;
    refused(
        &client,
        &ctx,
        &nb,
        "lured",
        "lured.ta.net.ta.ovn",
        "NamespaceNotAdmitted",
        "NetworkAttachmentDefinition tb/evil",
    )
    .await;

    // 3. namespace not admitted: tenant b's pod selects tenant a's NAD itself.
    pod(&client, "tb", "crossref", "ta/net", &[]).await;
    refused(
        &client,
        &ctx,
        &nb,
        "crossref",
        "crossref.tb.net.ta.ovn",
        "NamespaceNotAdmitted",
        "namespace tb is not admitted",
    )
    .await;

    // Nothing of tenant b landed on tenant a's switch.
    assert_eq!(ports_on(&nb, "sub-a"), own_a);
    assert!(
        own_a.iter().all(|p| !p.contains(".tb.")),
        "tenant b on sub-a: {own_a:?}"
    );

    // 4. An allocated attachment whose logical_switch is edited to another tenant's switch:
    // refused, the annotation written back, the attachment kept where it was.
    let pods_b: Api<Pod> = Api::namespaced(client.clone(), "tb");
    pods_b
        .patch(
            "pod-b",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "net.tb.ovn.kubernetes.io/logical_switch": "sub-a",
                // Our own keys do not trigger a reconcile; a user's does.
                "net.tb.ovn.kubernetes.io/ingress_rate": "0",
            }}})),
        )
        .await
        .unwrap();
    let e = event_containing_on(&client, "Pod", "pod-b", "logical_switch \"sub-a\"").await;
    assert_eq!(e.reason.as_deref(), Some("LogicalSwitchRefused"));
    let key = "net.tb.ovn.kubernetes.io/logical_switch";
    tokio::time::timeout(
        WAIT,
        await_condition(pods_b.clone(), "pod-b", move |p: Option<&Pod>| {
            p.is_some_and(|p| p.annotations().get(key).is_some_and(|v| v == "sub-b"))
        }),
    )
    .await
    .expect("logical_switch of pod-b was not written back")
    .unwrap();
    let record = Api::<IP>::all(client.clone())
        .get("pod-b.tb.net.tb.ovn")
        .await
        .unwrap();
    assert_eq!(record.spec.subnet, "sub-b");
    assert!(ports_on(&nb, "sub-b").contains(&"pod-b.tb.net.tb.ovn".to_owned()));
    assert_eq!(ports_on(&nb, "sub-a"), own_a);
    controller.abort();
}

// Multi-threaded: the controller runs in this runtime while the test blocks in ovn-nbctl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_security_is_switched_off_only_where_the_subnet_allows_it() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client();
    e2e::cluster::install_crds(&client).await.unwrap();
    let nb = OvsdbServer::start(SchemaKind::Northbound).unwrap();
    vpc(&client, "vpc-ps", &["default"]).await;
    subnet(
        &client,
        "strict",
        "vpc-ps",
        "10.133.0.0/24",
        "strict.default.ovn",
        "",
    )
    .await;
    subnet(
        &client,
        "lenient",
        "vpc-ps",
        "10.134.0.0/24",
        "lenient.default.ovn",
        ", allowDisablePortSecurity: true",
    )
    .await;
    nad(&client, "default", "strict", "strict.default.ovn").await;
    nad(&client, "default", "lenient", "lenient.default.ovn").await;
    let (_ctx, controller) = common::start_controller(&client, &nb, 4).await;

    let off = |p: &str| {
        (
            format!("{p}.default.ovn.kubernetes.io/port_security"),
            "false",
        )
    };
    let (k_strict, v) = off("strict");
    pod(
        &client,
        "default",
        "ps-strict",
        "default/strict",
        &[(&k_strict, v)],
    )
    .await;
    let (k_lenient, v) = off("lenient");
    pod(
        &client,
        "default",
        "ps-lenient",
        "default/lenient",
        &[(&k_lenient, v)],
    )
    .await;
    pod(&client, "default", "ps-default", "default/strict", &[]).await;
    for (name, provider) in [
        ("ps-strict", "strict.default.ovn"),
        ("ps-lenient", "lenient.default.ovn"),
        ("ps-default", "strict.default.ovn"),
    ] {
        allocated(&client, "default", name, provider).await;
    }
    let e = event_containing_on(&client, "Pod", "ps-strict", "allowDisablePortSecurity").await;
    assert_eq!(e.reason.as_deref(), Some("PortSecurityRefused"), "{e:?}");
    assert_eq!(e.type_.as_deref(), Some("Warning"));

    let port_security = |lsp: &str| {
        nb.nbctl(&["lsp-get-port-security", lsp])
            .unwrap()
            .trim()
            .to_owned()
    };
    // Refused by default: the port stays pinned to its MAC and address.
    let strict = port_security("ps-strict.default.strict.default.ovn");
    assert!(strict.contains("10.133.0."), "{strict:?}");
    let default = port_security("ps-default.default.strict.default.ovn");
    assert!(default.contains("10.133.0."), "{default:?}");
    // Honoured where the Subnet allows it.
    let lenient = "ps-lenient.default.lenient.default.ovn";
    assert_eq!(port_security(lenient), "");
    // Until the Subnet withdraws the permission: the pod's port is pinned again.
    Api::<Subnet>::all(client.clone())
        .patch(
            "lenient",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"allowDisablePortSecurity": false}})),
        )
        .await
        .unwrap();
    let p = allocated(&client, "default", "ps-lenient", "lenient.default.ovn").await;
    let a = p.annotations();
    let pinned = format!(
        "port_security=\"{} {}\"",
        a["lenient.default.ovn.kubernetes.io/mac_address"],
        a["lenient.default.ovn.kubernetes.io/ip_address"]
    );
    tokio::task::block_in_place(|| {
        nb.nbctl(&[
            "--timeout=60",
            "wait-until",
            "Logical_Switch_Port",
            lenient,
            &pinned,
        ])
    })
    .unwrap_or_else(|e| panic!("{lenient} not pinned again ({pinned}): {e}"));
    event_containing_on(&client, "Pod", "ps-lenient", "allowDisablePortSecurity").await;
    controller.abort();
}
