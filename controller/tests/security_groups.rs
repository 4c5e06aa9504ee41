//! Security groups through the controller against a real kube-apiserver and a real OVN NB (L2):
//! a SecurityGroup becomes its port group, ACLs and address sets; pods naming it in
//! `<provider>.kubernetes.io/security_groups` join in their port's transaction; the ACL count
//! does not grow with members; a missing group is an Event and no port; bad rules are a
//! condition and an Event; deleting a group in use is refused until no pod names it; and the
//! group's rows go with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::collections::BTreeSet;
use std::time::Duration;

use crds::SecurityGroup;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{Acl, AddressSet, LogicalSwitchPort, PortGroup};

mod common;
use common::yaml;

const NAD: &str = "sg-network";
const PROVIDER: &str = "sg-network.default.ovn";
const WAIT: Duration = Duration::from_secs(60);

fn lsp(pod: &str) -> String {
    format!("{pod}.default.{PROVIDER}")
}

/// LSP names in port group `pg` (sorted; empty if it does not exist).
fn members(r: &Replica, pg: &str) -> Vec<String> {
    let Some(pg) = r.one_by_name::<PortGroup>(pg).unwrap() else {
        return Vec::new();
    };
    let mut names: Vec<String> = pg
        .ports
        .iter()
        .filter_map(|u| r.get::<LogicalSwitchPort>(*u).unwrap())
        .map(|p| p.name)
        .collect();
    names.sort();
    names
}

fn addresses(r: &Replica, set: &str) -> Option<BTreeSet<String>> {
    r.one_by_name::<AddressSet>(set)
        .unwrap()
        .map(|s| s.addresses.into_iter().collect())
}

fn acl_count(r: &Replica) -> usize {
    r.list::<Acl>()
        .unwrap()
        .iter()
        .filter(|a| a.external_ids.get("vendor").map(String::as_str) == Some("kube-ovn"))
        .count()
}

fn ip_of(r: &Replica, pod: &str) -> Option<String> {
    let p = r.one_by_name::<LogicalSwitchPort>(&lsp(pod)).unwrap()?;
    p.addresses
        .first()
        .and_then(|a| a.split_whitespace().nth(1).map(str::to_owned))
}

fn pod(name: &str, groups: Option<&str>) -> Pod {
    let groups = groups
        .map(|g| format!("    {PROVIDER}.kubernetes.io/security_groups: \"{g}\"\n"))
        .unwrap_or_default();
    yaml(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: default/{NAD}\n{groups}spec:\n  containers: [{{name: app, image: nginx}}]\n"
    ))
}

const WEB: &str = r#"
apiVersion: kubeovn.io/v1
kind: SecurityGroup
metadata: {name: web-sg}
spec:
  allowSameGroupTraffic: true
  ingressRules:
  - {ipVersion: ipv4, protocol: tcp, priority: 1, remoteType: address, remoteAddress: 10.100.0.0/24, portRangeMin: 80, portRangeMax: 80, policy: allow}
  egressRules:
  - {ipVersion: ipv4, protocol: all, priority: 1, remoteType: address, remoteAddress: 0.0.0.0/0, policy: allow}
"#;

const DB: &str = r#"
apiVersion: kubeovn.io/v1
kind: SecurityGroup
metadata: {name: db}
spec:
  ingressRules:
  - {ipVersion: ipv4, protocol: tcp, priority: 2, remoteType: securityGroup, remoteSecurityGroup: web-sg, portRangeMin: 5432, portRangeMax: 5432, policy: allow}
"#;

async fn wait(nb: &controller::nb::Nb, what: &str, f: impl Fn(&Replica) -> bool) {
    if nb.wait_until(WAIT, |r| f(r)).await.is_err() {
        panic!("{what}: never happened");
    }
}

async fn annotate(pods: &Api<Pod>, name: &str, value: Option<&str>) {
    let key = format!("{PROVIDER}.kubernetes.io/security_groups");
    let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
    pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn condition(groups: &Api<SecurityGroup>, name: &str, reason: &str) -> SecurityGroup {
    let reason_owned = reason.to_owned();
    let found = tokio::time::timeout(
        WAIT,
        kube::runtime::wait::await_condition(
            groups.clone(),
            name,
            move |g: Option<&SecurityGroup>| {
                g.and_then(|g| g.status.as_ref()).is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.reason == reason_owned)
                })
            },
        ),
    )
    .await;
    match found {
        Ok(Ok(Some(g))) => g,
        other => panic!("SecurityGroup {name} never had Ready reason {reason}: {other:?}"),
    }
}

#[tokio::test]
async fn security_groups_follow_their_rules_and_their_members() {
    let common::Bed {
        _cp,
        client,
        nb_server,
        ctx,
        controller,
    } = common::Bed::start(NAD, PROVIDER, "vpc-sg", "subnet-sg", "10.100.0.0/16").await;
    let nb = controller::nb::connect(&nb_server.remote()).await.unwrap();
    let groups: Api<SecurityGroup> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // The group: its port group with one ACL per rule (+4 same-group), its address sets, and
    // the default-deny group.
    groups.create(&pp, &yaml(WEB)).await.unwrap();
    wait(&nb, "web-sg's port group", |r| {
        r.one_by_name::<PortGroup>("ovn.sg.web.sg")
            .unwrap()
            .is_some_and(|pg| pg.acls.len() == 6)
            && r.one_by_name::<PortGroup>("ovn.sg.kubeovn_deny_all")
                .unwrap()
                .is_some_and(|pg| pg.acls.len() == 4)
            && addresses(r, "ovn.sg.web.sg.associated.v4").is_some()
            && addresses(r, "ovn.sg.web.sg.associated.v6").is_some()
    })
    .await;
    let shown = nb_server
        .nbctl(&["--type=port-group", "acl-list", "ovn.sg.web.sg"])
        .unwrap();
    assert!(
        shown.contains("to-lport 18388 (outport == @ovn.sg.web.sg && ip4 && ip4.src == 10.100.0.0/24 && tcp.dst == 80) allow-related"),
        "{shown}"
    );
    let g = condition(&groups, "web-sg", "Synced").await;
    let status = g.status.unwrap();
    assert_eq!(status.port_group, "ovn.sg.web.sg");
    assert!(status.ingress_last_sync_success && status.egress_last_sync_success);
    assert!(status.allow_same_group_traffic);
    assert_eq!(status.ingress_md5.len(), 64);
    let acls_before = acl_count(&nb.replica());

    // Members join with their port: port group, default-deny group, address set.
    for p in ["m1", "m2", "m3"] {
        pods.create(&pp, &pod(p, Some("web-sg"))).await.unwrap();
    }
    let three = [lsp("m1"), lsp("m2"), lsp("m3")];
    wait(&nb, "three members", |r| {
        members(r, "ovn.sg.web.sg") == three
            && members(r, "ovn.sg.kubeovn_deny_all") == three
            && addresses(r, "ovn.sg.web.sg.associated.v4").is_some_and(|a| a.len() == 3)
    })
    .await;
    {
        let r = nb.replica();
        for p in ["m1", "m2", "m3"] {
            let ip = ip_of(&r, p).unwrap();
            assert!(
                addresses(&r, "ovn.sg.web.sg.associated.v4")
                    .unwrap()
                    .contains(&ip)
            );
            let port = r
                .one_by_name::<LogicalSwitchPort>(&lsp(p))
                .unwrap()
                .unwrap();
            assert_eq!(port.external_ids["security_groups"], "web-sg");
        }
        assert_eq!(acl_count(&r), acls_before, "ACL rows grew with members");
    }

    // A remote-group rule names web-sg's address set; a pod in both groups is in both.
    groups.create(&pp, &yaml(DB)).await.unwrap();
    pods.create(&pp, &pod("both", Some("db, web-sg,db")))
        .await
        .unwrap();
    wait(&nb, "the pod in two groups", |r| {
        members(r, "ovn.sg.db") == [lsp("both")]
            && members(r, "ovn.sg.web.sg").contains(&lsp("both"))
            && members(r, "ovn.sg.kubeovn_deny_all").len() == 4
    })
    .await;
    let shown = nb_server
        .nbctl(&["--type=port-group", "acl-list", "ovn.sg.db"])
        .unwrap();
    assert!(
        shown.contains("ip4.src == $ovn.sg.web.sg.associated.v4 && tcp.dst == 5432"),
        "{shown}"
    );

    // A group that does not exist: an Event, and no port at all for the pod.
    pods.create(&pp, &pod("early", Some("later")))
        .await
        .unwrap();
    let e = common::event_containing(&client, "early", "[\"later\"] do not exist").await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert!(
        nb.replica()
            .one_by_name::<LogicalSwitchPort>(&lsp("early"))
            .unwrap()
            .is_none(),
        "a port without its security group"
    );
    // ... until the group exists.
    let later = WEB.replace("web-sg", "later");
    groups.create(&pp, &yaml(&later)).await.unwrap();
    wait(&nb, "the pod that waited for its group", |r| {
        members(r, "ovn.sg.later") == [lsp("early")]
    })
    .await;

    // Live change: m1 leaves; its address leaves the set; ACLs untouched.
    let m1_ip = ip_of(&nb.replica(), "m1").unwrap();
    annotate(&pods, "m1", None).await;
    wait(&nb, "m1 left", |r| {
        !members(r, "ovn.sg.web.sg").contains(&lsp("m1"))
            && !members(r, "ovn.sg.kubeovn_deny_all").contains(&lsp("m1"))
            && !addresses(r, "ovn.sg.web.sg.associated.v4")
                .unwrap()
                .contains(&m1_ip)
            && r.one_by_name::<LogicalSwitchPort>(&lsp("m1"))
                .unwrap()
                .is_some_and(|p| !p.external_ids.contains_key("security_groups"))
    })
    .await;
    // A pod naming a group that does not exist keeps its port as it was.
    annotate(&pods, "m2", Some("web-sg,ghost")).await;
    common::event_containing(&client, "m2", "[\"ghost\"] do not exist").await;
    assert!(members(&nb.replica(), "ovn.sg.web.sg").contains(&lsp("m2")));

    // Bad rules: a condition and an Event; the group's ACLs stay as they were.
    let web_acls = nb
        .replica()
        .one_by_name::<PortGroup>("ovn.sg.web.sg")
        .unwrap()
        .unwrap()
        .acls;
    let bad = serde_json::json!({"spec": {"ingressRules": [
        {"ipVersion": "ipv4", "protocol": "icmp", "remoteType": "address",
         "remoteAddress": "10.0.0.0/8", "portRangeMin": 80, "policy": "allow"},
        {"ipVersion": "ipv4", "remoteType": "address", "remoteAddress": "10.0.0.0/8",
         "policy": "pass"}]}});
    groups
        .patch("web-sg", &PatchParams::default(), &Patch::Merge(&bad))
        .await
        .unwrap();
    let g = condition(&groups, "web-sg", "InvalidRules").await;
    let msg = &g.status.as_ref().unwrap().conditions[0].message;
    assert!(
        msg.contains("spec.ingressRules[0]: a port range needs protocol tcp or udp")
            && msg.contains("spec.ingressRules[1].policy: pass is not supported"),
        "{msg}"
    );
    assert!(!g.status.unwrap().ingress_last_sync_success);
    common::event_containing_on(&client, "SecurityGroup", "web-sg", "invalid rules").await;
    assert_eq!(
        nb.replica()
            .one_by_name::<PortGroup>("ovn.sg.web.sg")
            .unwrap()
            .unwrap()
            .acls,
        web_acls
    );

    // Deleting a group in use is refused while a pod names it.
    groups.delete("db", &DeleteParams::default()).await.unwrap();
    condition(&groups, "db", "DeletionBlocked").await;
    common::event_containing_on(&client, "SecurityGroup", "db", "still used by 1 port").await;
    assert_eq!(members(&nb.replica(), "ovn.sg.db"), [lsp("both")]);
    // Meanwhile it takes no new member.
    pods.create(&pp, &pod("late", Some("db"))).await.unwrap();
    common::event_containing(&client, "late", "[\"db\"] are being deleted").await;
    assert!(
        nb.replica()
            .one_by_name::<LogicalSwitchPort>(&lsp("late"))
            .unwrap()
            .is_none()
    );
    let uid = groups.get("db").await.unwrap().uid().unwrap();
    annotate(&pods, "both", Some("web-sg")).await;
    let gone = tokio::time::timeout(
        Duration::from_secs(90),
        kube::runtime::wait::await_condition(
            groups.clone(),
            "db",
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await;
    assert!(
        matches!(gone, Ok(Ok(_))),
        "db was never deleted after its last member left"
    );
    wait(&nb, "db's rows gone", |r| {
        r.one_by_name::<PortGroup>("ovn.sg.db").unwrap().is_none()
            && addresses(r, "ovn.sg.db.associated.v4").is_none()
            && addresses(r, "ovn.sg.db.associated.v6").is_none()
    })
    .await;

    // A deleted pod's address leaves the set with its port.
    let m3_ip = ip_of(&nb.replica(), "m3").unwrap();
    pods.delete("m3", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait(&nb, "m3's address gone", |r| {
        !addresses(r, "ovn.sg.web.sg.associated.v4")
            .unwrap()
            .contains(&m3_ip)
            && !members(r, "ovn.sg.web.sg").contains(&lsp("m3"))
    })
    .await;

    // The rows of a group whose object vanished without its finalizer (stripped by hand) are
    // collected, members or not; its member stays in the default-deny group (closed).
    controller.abort();
    let strip = serde_json::json!({"metadata": {"finalizers": null}});
    groups
        .patch("later", &PatchParams::default(), &Patch::Merge(&strip))
        .await
        .unwrap();
    groups
        .delete("later", &DeleteParams::default())
        .await
        .unwrap();
    let report = controller::gc::collect(&ctx).await.unwrap();
    assert_eq!(report.security_groups, 1, "{report:?}");
    wait(&nb, "later's rows collected", |r| {
        r.one_by_name::<PortGroup>("ovn.sg.later")
            .unwrap()
            .is_none()
            && addresses(r, "ovn.sg.later.associated.v4").is_none()
            && members(r, "ovn.sg.kubeovn_deny_all").contains(&lsp("early"))
    })
    .await;
}
