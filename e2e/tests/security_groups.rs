//! Security groups by real packets on the local cluster (L2): pods on two nodes, the groups as a
//! user writes them, `<provider>.kubernetes.io/security_groups` changed on running pods, and
//! traffic checked with ping and netcat (TCP and UDP) through OVN's ACLs in the userspace
//! datapath's conntrack.
//!
//! - a group allowing only TCP 80 from 10.100.0.0/24: TCP 80 passes; TCP 81, UDP and ping are
//!   dropped (the default-deny group), while DHCP to OVN still answers the member;
//! - a remote-group rule: TCP 81 from members of another group passes, from others it does not;
//! - `allowSameGroupTraffic` toggled on a live group;
//! - removing the annotation restores open traffic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use e2e::cluster::Cluster;
use e2e::scenario::{Udp, addr_of, background, dhcp, eventually, ping, tcp};
use kube::Api;
use kube::api::{Patch, PatchParams};

const WAIT: Duration = Duration::from_secs(90);
const PROVIDER: &str = "sg-network.default.ovn";

const NETWORK: &str = r#"
apiVersion: kubeovn.io/v1
kind: Vpc
metadata:
  name: vpc-sg
spec:
  namespaces:
  - default
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: sg-network
  namespace: default
spec:
  config: |
    {
      "cniVersion": "0.3.1",
      "type": "kube-ovn",
      "server_socket": "/run/openvswitch/kube-ovn-daemon.sock",
      "provider": "sg-network.default.ovn"
    }
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: sg-subnet
spec:
  vpc: vpc-sg
  cidr: "10.100.0.0/24"
  enableDHCP: true
  provider: sg-network.default.ovn
"#;

const GROUPS: &str = r#"
apiVersion: kubeovn.io/v1
kind: SecurityGroup
metadata:
  name: web
spec:
  ingressRules:
  - ipVersion: ipv4
    protocol: tcp
    priority: 1
    remoteType: address
    remoteAddress: 10.100.0.0/24
    portRangeMin: 80
    portRangeMax: 80
    policy: allow
---
apiVersion: kubeovn.io/v1
kind: SecurityGroup
metadata:
  name: db
spec:
  ingressRules:
  - ipVersion: ipv4
    protocol: tcp
    priority: 1
    remoteType: securityGroup
    remoteSecurityGroup: db-clients
    portRangeMin: 81
    portRangeMax: 81
    policy: allow
---
apiVersion: kubeovn.io/v1
kind: SecurityGroup
metadata:
  name: db-clients
spec:
  egressRules:
  - ipVersion: ipv4
    protocol: all
    priority: 1
    remoteType: address
    remoteAddress: 0.0.0.0/0
    policy: allow
---
apiVersion: kubeovn.io/v1
kind: SecurityGroup
metadata:
  name: peers
spec:
  allowSameGroupTraffic: false
"#;

fn pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/networks: default/sg-network\nspec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

async fn annotate(cluster: &Cluster, pod: &str, groups: Option<&str>) {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(cluster.client(), "default");
    let key = format!("{PROVIDER}.kubernetes.io/security_groups");
    let patch = serde_json::json!({ "metadata": { "annotations": { key: groups } } });
    pods.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_filter_real_traffic() {
    let cluster = Cluster::start(2).await.unwrap();
    cluster.apply_yaml(NETWORK).unwrap();
    cluster.apply_yaml(GROUPS).unwrap();
    cluster.apply_yaml(&pod("server", "node-2")).unwrap();
    cluster.apply_yaml(&pod("client", "node-1")).unwrap();
    cluster.apply_yaml(&pod("member", "node-1")).unwrap();
    for p in ["server", "client", "member"] {
        cluster.wait_running("default", p, WAIT).await.unwrap();
    }
    let server = addr_of(&cluster, "server");
    let member = addr_of(&cluster, "member");
    for port in ["80", "81"] {
        background(&cluster, "server", &format!("nc -lk {port} >/dev/null"));
    }
    let mut udp = Udp::listen(&cluster, "server", "sg-udp.log");
    let c = &cluster;

    tokio::task::block_in_place(|| {
        // Baseline: open.
        eventually("baseline TCP 80 and 81 pass", || {
            tcp(c, "client", &server, 80) && tcp(c, "client", &server, 81)
        });
        assert!(ping(c, "client", &server), "baseline ping");
        let m = udp.send(c, "client", &server);
        eventually("baseline UDP passes", || udp.received(&m));
        assert!(ping(c, "member", &server), "baseline ping from member");
    });

    // Only TCP 80 from 10.100.0.0/24 into the server.
    annotate(&cluster, "server", Some("web")).await;
    tokio::task::block_in_place(|| {
        eventually("ping to a member of web dropped", || {
            !ping(c, "client", &server)
        });
        assert!(tcp(c, "client", &server, 80), "TCP 80 is allowed");
        assert!(!tcp(c, "client", &server, 81), "TCP 81 is dropped");
        let m = udp.send(c, "client", &server);
        assert!(tcp(c, "client", &server, 80), "TCP 80 after the UDP probe");
        assert!(!udp.received(&m), "UDP is dropped");
        // Replies of the server's own connections come back (allow-related is stateful): the
        // server may not send at all (no egress rule), so its ping to the client fails.
        assert!(!ping(c, "server", &addr_of(c, "client")), "no egress rule");
        // DHCP to OVN still works from inside the default-deny group.
        let lease = dhcp(c, "server");
        assert!(
            lease.contains(&format!("lease of {server} obtained")),
            "udhcpc in a member of web: {lease}"
        );
    });

    // A remote-group rule: TCP 81 from members of db-clients only.
    annotate(&cluster, "server", Some("web,db")).await;
    annotate(&cluster, "member", Some("db-clients")).await;
    tokio::task::block_in_place(|| {
        eventually("TCP 81 from a member of db-clients passes", || {
            tcp(c, "member", &server, 81)
        });
        assert!(!tcp(c, "client", &server, 81), "TCP 81 from a non-member");
        assert!(tcp(c, "client", &server, 80), "TCP 80 still allowed");
        assert!(!ping(c, "member", &server), "db allows no ICMP");
    });

    // Same-group traffic, toggled on a live group.
    annotate(&cluster, "server", Some("web,db,peers")).await;
    annotate(&cluster, "member", Some("db-clients,peers")).await;
    tokio::task::block_in_place(|| {
        eventually("both in peers", || tcp(c, "member", &server, 81));
        assert!(!ping(c, "member", &server), "same-group traffic is off");
    });
    let groups: Api<crds::SecurityGroup> = Api::all(cluster.client());
    let on = serde_json::json!({"spec": {"allowSameGroupTraffic": true}});
    groups
        .patch("peers", &PatchParams::default(), &Patch::Merge(&on))
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        eventually("same-group ping passes", || ping(c, "member", &server));
        assert!(!ping(c, "client", &server), "a non-member still dropped");
    });
    let off = serde_json::json!({"spec": {"allowSameGroupTraffic": false}});
    groups
        .patch("peers", &PatchParams::default(), &Patch::Merge(&off))
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        eventually("same-group ping dropped again", || {
            !ping(c, "member", &server)
        });
    });

    // Removing the annotation restores open traffic.
    annotate(&cluster, "server", None).await;
    annotate(&cluster, "member", None).await;
    tokio::task::block_in_place(|| {
        eventually("ping open again", || ping(c, "client", &server));
        assert!(tcp(c, "client", &server, 81), "TCP 81 open again");
        assert!(ping(c, "server", &member), "the server may send again");
        let m = udp.send(c, "client", &server);
        eventually("UDP open again", || udp.received(&m));
    });
    // Nobody is in a group any more: the default-deny group is empty.
    let deny = cluster
        .nbctl(&[
            "--bare",
            "--columns=ports",
            "find",
            "Port_Group",
            "name=ovn.sg.kubeovn_deny_all",
        ])
        .unwrap();
    assert_eq!(deny.trim(), "", "ports left in the default-deny group");
}
