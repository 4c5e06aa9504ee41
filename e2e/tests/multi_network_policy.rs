//! MultiNetworkPolicy by real packets on the local cluster (L2, issue 14 item 5): pods on two
//! nodes on one kube-ovn network, policies as a user writes them
//! (`k8s.cni.cncf.io/v1beta1`, `k8s.v1.cni.cncf.io/policy-for`), traffic checked with ping and
//! netcat (TCP and UDP) through OVN's ACLs.
//!
//! - deny-all ingress on the selected pod: ping and TCP dropped, DHCP to OVN still answered,
//!   the pod's own egress untouched; a pod created under the policy is closed from the start
//!   (its port joins the policy's port group in its own transaction);
//! - a second policy allowing from pods labelled `role=client`: TCP 80, a port range by
//!   `endPort` and UDP pass from the client, the rest (ping, TCP 81, a port past the range) is
//!   still dropped, and nothing passes from an unlabelled pod; an `ipBlock` with `except`
//!   lets the client in on TCP 81 and keeps the excepted pod out;
//! - labelling the other pod live makes it a peer;
//! - egress with `namespaceSelector` + `podSelector`: the client sends TCP 80 to the web pod
//!   and nothing else (a port the server admits but the client's egress does not stays
//!   closed), while connections into the client and their replies pass;
//! - a named port (not enforceable here) is a Warning Event on the policy;
//! - deleting the policies opens the traffic again and leaves no row in NB.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use crds::MultiNetworkPolicy;
use e2e::cluster::Cluster;
use e2e::scenario::{self, Udp, background, dhcp, eventually, ping, tcp};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};

const WAIT: Duration = Duration::from_secs(90);
const SERVER: &str = "10.112.1.10";
const CLIENT: &str = "10.112.1.11";
const STRANGER: &str = "10.112.1.12";

fn pod(name: &str, ip: &str, node: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {labels}\n  annotations:\n    k8s.v1.cni.cncf.io/networks: '[{{\"name\": \"default/mnp-net\", \"ips\": [\"{ip}/24\"]}}]'\nspec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: nginx\n"
    )
}

/// A MultiNetworkPolicy `default/<name>` for `networks` (its `policy-for`), with `spec`
/// (YAML indented by two spaces).
fn policy(name: &str, networks: &str, spec: &str) -> String {
    format!(
        "apiVersion: k8s.cni.cncf.io/v1beta1\nkind: MultiNetworkPolicy\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    k8s.v1.cni.cncf.io/policy-for: {networks}\nspec:\n{spec}"
    )
}

fn deny_all() -> String {
    policy(
        "deny-all",
        "default/mnp-net",
        r#"  podSelector:
    matchLabels:
      app: web
  policyTypes:
  - Ingress
"#,
    )
}

fn allow_clients() -> String {
    policy(
        "allow-clients",
        "mnp-net",
        &format!(
            r#"  podSelector:
    matchLabels:
      app: web
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: client
    ports:
    - protocol: TCP
      port: 80
    - protocol: TCP
      port: 8000
      endPort: 8010
    - protocol: UDP
      port: {udp}
  - from:
    - ipBlock:
        cidr: 10.112.1.0/24
        except:
        - {STRANGER}/32
    ports:
    - port: 81
"#,
            udp = scenario::UDP_PORT
        ),
    )
}

/// The client may send only TCP 80 to `app: web` pods of namespaces labelled `default`.
fn client_egress() -> String {
    policy(
        "client-egress",
        "default/mnp-net",
        r#"  podSelector:
    matchLabels:
      who: client
  policyTypes:
  - Egress
  egress:
  - to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: default
      podSelector:
        matchLabels:
          app: web
    ports:
    - protocol: TCP
      port: 80
"#,
    )
}

fn named_port() -> String {
    policy(
        "named-port",
        "mnp-net",
        r#"  podSelector:
    matchLabels:
      app: web
  ingress:
  - ports:
    - port: http
"#,
    )
}

async fn delete_policy(cluster: &Cluster, name: &str) {
    let api: Api<MultiNetworkPolicy> = Api::namespaced(cluster.client(), "default");
    api.delete(name, &DeleteParams::default()).await.unwrap();
}

/// The names of our policy rows in NB table `table` (`Port_Group`, `Address_Set`).
fn policy_rows(cluster: &Cluster, table: &str) -> Vec<String> {
    cluster
        .nbctl(&["--bare", "--columns=name", "list", table])
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with("ovn.mnp."))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_network_policies_filter_real_traffic() {
    let cluster = Cluster::start(2).await.unwrap();
    let network = scenario::network(
        "vpc-mnp",
        "mnp-net",
        "10.112.1.0/24",
        "  enableDHCP: true\n",
    );
    let vpc = "apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata:\n  name: vpc-mnp\nspec:\n  namespaces:\n  - default\n";
    cluster.apply_yaml(&format!("{vpc}---\n{network}")).unwrap();
    for (name, ip, node, labels) in [
        ("server", SERVER, "node-2", "{app: web}"),
        ("client", CLIENT, "node-1", "{role: client, who: client}"),
        ("stranger", STRANGER, "node-1", "{who: stranger}"),
    ] {
        cluster.apply_yaml(&pod(name, ip, node, labels)).unwrap();
    }
    for p in ["server", "client", "stranger"] {
        cluster.wait_running("default", p, WAIT).await.unwrap();
    }
    for port in [80, 81, 8005, 8011] {
        background(&cluster, "server", &format!("nc -lk {port} >/dev/null"));
    }
    let mut udp = Udp::listen(&cluster, "server", "mnp-udp.log");
    let c = &cluster;

    tokio::task::block_in_place(|| {
        eventually("baseline TCP 80 and 81 pass", || {
            tcp(c, "client", SERVER, 80) && tcp(c, "stranger", SERVER, 81)
        });
        assert!(ping(c, "client", SERVER), "baseline ping");
        let m = udp.send(c, "client", SERVER);
        eventually("baseline UDP passes", || udp.received(&m));
    });

    // Deny all ingress into app=web on mnp-net.
    cluster.apply_yaml(&deny_all()).unwrap();
    tokio::task::block_in_place(|| {
        eventually("ping to the selected pod dropped", || {
            !ping(c, "client", SERVER)
        });
        assert!(!tcp(c, "client", SERVER, 80), "TCP 80 dropped");
        assert!(!tcp(c, "stranger", SERVER, 81), "TCP 81 dropped");
        // Its egress is not restricted (policyTypes: Ingress), and replies come back.
        assert!(ping(c, "server", STRANGER), "the server's own ping");
        let lease = dhcp(c, "server");
        assert!(
            lease.contains(&format!("lease of {SERVER} obtained")),
            "udhcpc in a selected pod: {lease}"
        );
    });
    assert_eq!(
        policy_rows(c, "Port_Group"),
        ["ovn.mnp.default.deny_all"],
        "the policy's port group"
    );
    // A pod created under the policy: its port joined the policy's port group in the port's
    // own transaction, so it is closed from its first packet.
    cluster
        .apply_yaml(&pod("late", "10.112.1.13", "node-1", "{app: web}"))
        .unwrap();
    cluster.wait_running("default", "late", WAIT).await.unwrap();
    tokio::task::block_in_place(|| {
        assert!(
            !ping(c, "client", "10.112.1.13"),
            "a new selected pod is closed at once"
        );
    });
    let members = c
        .nbctl(&[
            "--bare",
            "--columns=ports",
            "find",
            "Port_Group",
            "name=ovn.mnp.default.deny_all",
        ])
        .unwrap();
    assert_eq!(
        members.split_whitespace().count(),
        2,
        "server and late: {members}"
    );
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(cluster.client(), "default");
    pods.delete("late", &DeleteParams::default()).await.unwrap();

    // Allow from role=client: TCP 80, 8000-8010 and UDP; TCP 81 from 10.112.1.0/24 except the
    // stranger.
    cluster.apply_yaml(&allow_clients()).unwrap();
    tokio::task::block_in_place(|| {
        eventually("TCP 80 from the client passes", || {
            tcp(c, "client", SERVER, 80)
        });
        assert!(tcp(c, "client", SERVER, 8005), "TCP 8005 is in 8000-8010");
        assert!(!tcp(c, "client", SERVER, 8011), "TCP 8011 is past endPort");
        assert!(!ping(c, "client", SERVER), "no rule allows ICMP");
        let m = udp.send(c, "client", SERVER);
        eventually("UDP from the client passes", || udp.received(&m));
        assert!(tcp(c, "client", SERVER, 81), "TCP 81 by the ipBlock");
        assert!(!tcp(c, "stranger", SERVER, 80), "TCP 80 from a non-peer");
        assert!(!tcp(c, "stranger", SERVER, 81), "the ipBlock's except");
        let m = udp.send(c, "stranger", SERVER);
        assert!(tcp(c, "client", SERVER, 80), "TCP 80 after the UDP probe");
        assert!(!udp.received(&m), "UDP from a non-peer is dropped");
    });

    // The stranger becomes a client: a peer at once.
    let label = serde_json::json!({"metadata": {"labels": {"role": "client"}}});
    pods.patch("stranger", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        eventually("TCP 80 from the relabelled pod passes", || {
            tcp(c, "stranger", SERVER, 80)
        });
        assert!(
            !tcp(c, "stranger", SERVER, 81),
            "still excepted from the ipBlock"
        );
    });

    // Egress: the client may send TCP 80 to web pods only; both sides must allow (8005 is
    // allowed into the server, not out of the client); what others start passes its ingress,
    // and the replies pass its egress drop.
    cluster.apply_yaml(&client_egress()).unwrap();
    tokio::task::block_in_place(|| {
        eventually("the client's ping to the stranger dropped", || {
            !ping(c, "client", STRANGER)
        });
        assert!(tcp(c, "client", SERVER, 80), "TCP 80 to a web pod");
        assert!(
            !tcp(c, "client", SERVER, 8005),
            "TCP 8005 is not in its egress"
        );
        assert!(
            ping(c, "stranger", CLIENT),
            "a ping into the client, and its reply"
        );
    });
    delete_policy(c, "client-egress").await;
    tokio::task::block_in_place(|| {
        eventually("the client's egress open again", || {
            ping(c, "client", STRANGER)
        });
    });

    // What cannot be enforced is said on the policy, and allows nothing.
    cluster.apply_yaml(&named_port()).unwrap();
    let e = scenario::event(
        c,
        "MultiNetworkPolicy",
        "named-port",
        "named port \"http\"",
        WAIT,
    )
    .await;
    assert_eq!(e.type_.as_deref(), Some("Warning"), "{e:?}");
    tokio::task::block_in_place(|| {
        assert!(
            !tcp(c, "client", SERVER, 8011),
            "the named port opened nothing"
        );
    });
    delete_policy(c, "named-port").await;

    // Deleting the policies opens the pod again and leaves nothing in NB.
    let quiet = cluster.quiet_mark().await.unwrap();
    delete_policy(c, "allow-clients").await;
    delete_policy(c, "deny-all").await;
    tokio::task::block_in_place(|| {
        eventually("ping open again", || ping(c, "client", SERVER));
        assert!(tcp(c, "client", SERVER, 8011), "TCP 8011 open again");
    });
    tokio::task::block_in_place(|| {
        eventually("no policy rows left", || {
            policy_rows(c, "Port_Group").is_empty() && policy_rows(c, "Address_Set").is_empty()
        });
    });
    cluster.assert_quiet(&quiet, &[]).await.unwrap();
}
