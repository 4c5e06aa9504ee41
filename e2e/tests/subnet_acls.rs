//! Subnet ACLs and private subnets by real packets on the local cluster (L2, issue 14 item 3):
//! three subnets of one Vpc, pods on two nodes routed to each other through the Vpc's router,
//! ping and TCP between them, the Subnets changed live.
//!
//! - `acls`: a drop of ICMP from one subnet stops that ping while TCP from it and ping from
//!   elsewhere pass; removing the ACL restores the ping;
//! - an ACL whose match OVN cannot parse is refused: a condition and a Warning Event on the
//!   Subnet, nothing written to NB, traffic as before;
//! - `private: true` with `allowSubnets`: the subnet takes traffic from its own members and from
//!   the allowed CIDR only (and its drop, deleted in NB by hand, comes back); taking the CIDR out of `allowSubnets` closes it to that subnet too,
//!   and `private: false` opens it again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use crds::Subnet;
use crds::condition::{ConditionStatus, READY, VALIDATED, find_condition};
use e2e::cluster::Cluster;
use e2e::scenario::{self, eventually, ping};
use kube::Api;
use kube::api::{Patch, PatchParams};

const WAIT: Duration = Duration::from_secs(90);

/// A NAD `<name>` and its Subnet in Vpc `vpc-acl`.
fn network(name: &str, cidr: &str, extra: &str) -> String {
    scenario::network("vpc-acl", name, cidr, extra)
}

/// A pod on `net` with address `ip` (in `10.111.<n>.0/24`), routed to the other subnets of the
/// Vpc through its gateway `10.111.<n>.1`.
fn pod(name: &str, net: &str, ip: &str, node: &str) -> String {
    let gw = format!("{}.1", ip.rsplit_once('.').unwrap().0);
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: '[{{\"name\": \"default/{net}\", \"ips\": [\"{ip}/24\"]}}]'\n    {net}.default.ovn.kubernetes.io/routes: '[{{\"dst\": \"10.111.0.0/16\", \"gw\": \"{gw}\"}}]'\nspec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

const INNER1: &str = "10.111.1.10";
const ALLOWED: &str = "10.111.2.10";
const OUTSIDER: &str = "10.111.3.10";

fn tcp(cluster: &Cluster, from: &str, ip: &str) -> bool {
    scenario::tcp(cluster, from, ip, 80)
}

/// A TCP listener on port 80 in `pod`, in the background (bounded, so nothing outlives the
/// test for long).
fn listen(cluster: &Cluster, pod: &str) {
    let out = cluster
        .exec(
            "default",
            pod,
            &["sh", "-c", "timeout 300 nc -lk 80 >/dev/null 2>/dev/null &"],
        )
        .unwrap();
    assert!(out.status.success(), "nc -lk 80 in {pod}: {out:?}");
}

async fn patch_spec(cluster: &Cluster, subnet: &str, spec: serde_json::Value) {
    let subnets: Api<Subnet> = Api::all(cluster.client());
    subnets
        .patch(
            subnet,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

/// Waits until Subnet `name` reports condition `kind` with `status` (and `reason`, if given)
/// for its current generation.
async fn condition(
    cluster: &Cluster,
    name: &str,
    kind: &str,
    status: ConditionStatus,
    reason: Option<&str>,
) -> String {
    let subnets: Api<Subnet> = Api::all(cluster.client());
    let found = tokio::time::timeout(
        WAIT,
        kube::runtime::wait::await_condition(subnets, name, |s: Option<&Subnet>| {
            s.and_then(|s| {
                let c = find_condition(&s.status.as_ref()?.conditions, kind)?;
                Some(
                    c.status == status
                        && c.observed_generation == s.metadata.generation
                        && reason.is_none_or(|r| c.reason == r),
                )
            })
            .unwrap_or(false)
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("Subnet {name}: no {kind}={status:?} {reason:?}"))
    .unwrap()
    .unwrap();
    let conditions = found.status.unwrap_or_default().conditions;
    find_condition(&conditions, kind).unwrap().message.clone()
}

/// The ACLs on switch `ls` as `ovn-nbctl acl-list` prints them.
fn acl_list(cluster: &Cluster, ls: &str) -> String {
    cluster.nbctl(&["acl-list", ls]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnet_acls_and_private_subnets_filter_real_traffic() {
    let cluster = Cluster::start(2).await.unwrap();
    let yaml = [
        "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata:\n  name: vpc-acl\nspec:\n  namespaces:\n  - default\n".to_owned(),
        network(
            "acl-private",
            "10.111.1.0/24",
            "  private: true\n  enableDHCP: true\n  allowSubnets:\n  - 10.111.2.0/24\n",
        ),
        network("acl-allowed", "10.111.2.0/24", ""),
        network("acl-other", "10.111.3.0/24", ""),
    ]
    .join("---\n");
    cluster.apply_yaml(&yaml).unwrap();
    for (name, net, ip, node) in [
        ("inner1", "acl-private", INNER1, "node-1"),
        ("inner2", "acl-private", "10.111.1.11", "node-2"),
        ("allowed", "acl-allowed", ALLOWED, "node-1"),
        ("outsider", "acl-other", OUTSIDER, "node-2"),
    ] {
        cluster.apply_yaml(&pod(name, net, ip, node)).unwrap();
    }
    for p in ["inner1", "inner2", "allowed", "outsider"] {
        cluster.wait_running("default", p, WAIT).await.unwrap();
    }
    listen(&cluster, "inner1");
    listen(&cluster, "allowed");
    let c = &cluster;

    // The private subnet: its members and the allowed subnet get in, the other subnet does not
    // (and, as upstream, members reach no subnet outside the allowed ones).
    tokio::task::block_in_place(|| {
        eventually("members of the private subnet reach each other", || {
            ping(c, "inner2", INNER1)
        });
        eventually("the allowed subnet reaches the private one", || {
            ping(c, "allowed", INNER1) && tcp(c, "allowed", INNER1)
        });
        eventually("the other subnets reach each other", || {
            ping(c, "outsider", ALLOWED)
        });
        assert!(!ping(c, "outsider", INNER1), "ping into the private subnet");
        assert!(!tcp(c, "outsider", INNER1), "TCP into the private subnet");
        assert!(ping(c, "inner1", ALLOWED), "out to the allowed subnet");
        assert!(!ping(c, "inner1", OUTSIDER), "out to a subnet not allowed");
        // DHCP from OVN still answers a member (northd passes its replies above every ACL).
        let lease = scenario::dhcp(c, "inner1");
        assert!(
            lease.contains(&format!("lease of {INNER1} obtained")),
            "udhcpc in a member of the private subnet: {lease}"
        );
    });
    let private = acl_list(c, "acl-private");
    assert!(
        private.contains("to-lport  1000 (ip) drop")
            && private.contains("to-lport  1001 (ip4.src == 10.111.1.0/24 && ip4.dst == 10.111.1.0/24) allow-related"),
        "{private}"
    );

    // Deleted behind the controller's back, the drop comes back: the row names its Subnet,
    // whose reconcile the NB update stream triggers.
    cluster
        .nbctl(&["acl-del", "acl-private", "to-lport", "1000", "ip"])
        .unwrap();
    tokio::task::block_in_place(|| {
        eventually("the deleted drop is back", || {
            acl_list(c, "acl-private").contains("to-lport  1000 (ip) drop")
        });
        // NB holds it again at once; the datapath follows.
        eventually("the private subnet closed again", || {
            !ping(c, "outsider", INNER1)
        });
    });

    // A match OVN cannot parse: refused with a condition and an Event, nothing written.
    patch_spec(
        c,
        "acl-other",
        serde_json::json!({"acls": [{"direction": "to-lport", "priority": 1010,
            "match": "ip4.src == ", "action": "drop"}]}),
    )
    .await;
    let msg = condition(
        c,
        "acl-other",
        VALIDATED,
        ConditionStatus::False,
        Some("InvalidSpec"),
    )
    .await;
    assert!(msg.contains("spec.acls[0].match"), "{msg}");
    let e = scenario::event(c, "Subnet", "acl-other", "spec.acls[0].match", WAIT).await;
    assert_eq!(e.type_.as_deref(), Some("Warning"), "{e:?}");
    assert_eq!(acl_list(c, "acl-other").trim(), "", "nothing written");
    tokio::task::block_in_place(|| {
        assert!(ping(c, "outsider", ALLOWED), "traffic as before");
    });
    patch_spec(c, "acl-other", serde_json::json!({"acls": []})).await;
    condition(c, "acl-other", READY, ConditionStatus::True, None).await;

    let quiet = cluster.quiet_mark().await.unwrap();

    // A subnet ACL: ICMP from the other subnet into the allowed one is dropped, nothing else.
    patch_spec(
        c,
        "acl-allowed",
        serde_json::json!({"acls": [{"direction": "to-lport", "priority": 1010,
            "match": "ip4.src == 10.111.3.0/24 && icmp4", "action": "drop"}]}),
    )
    .await;
    tokio::task::block_in_place(|| {
        eventually("the subnet ACL drops the ping", || {
            !ping(c, "outsider", ALLOWED)
        });
        assert!(
            tcp(c, "outsider", ALLOWED),
            "TCP from the same subnet passes"
        );
        assert!(
            ping(c, "inner1", ALLOWED),
            "ping from another subnet passes"
        );
    });
    let rows = cluster
        .nbctl(&[
            "--bare",
            "--columns=external_ids",
            "find",
            "ACL",
            "priority=1010",
        ])
        .unwrap();
    assert!(
        rows.contains("subnet=acl-allowed") && rows.contains("vendor=kube-ovn"),
        "the ACL names its owner: {rows}"
    );
    patch_spec(c, "acl-allowed", serde_json::json!({"acls": []})).await;
    tokio::task::block_in_place(|| {
        eventually("removing the ACL restores the ping", || {
            ping(c, "outsider", ALLOWED)
        });
    });
    assert_eq!(acl_list(c, "acl-allowed").trim(), "");

    // Private, live: without the allowed CIDR the allowed subnet is out too; members still
    // talk. Not private any more: everyone gets in.
    patch_spec(c, "acl-private", serde_json::json!({"allowSubnets": []})).await;
    tokio::task::block_in_place(|| {
        eventually("allowSubnets emptied closes the private subnet", || {
            !ping(c, "allowed", INNER1)
        });
        assert!(!tcp(c, "allowed", INNER1), "TCP closed too");
        assert!(ping(c, "inner2", INNER1), "members still talk");
    });
    patch_spec(c, "acl-private", serde_json::json!({"private": false})).await;
    tokio::task::block_in_place(|| {
        eventually("private: false opens the subnet", || {
            ping(c, "outsider", INNER1)
        });
        assert!(tcp(c, "outsider", INNER1), "TCP open");
        assert!(ping(c, "allowed", INNER1), "the once allowed subnet too");
    });
    assert_eq!(acl_list(c, "acl-private").trim(), "", "no ACL left");

    cluster.assert_quiet(&quiet, &[]).await.unwrap();
}
