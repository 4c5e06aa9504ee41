//! What the packet scenarios share: the YAML of a kube-ovn network, probes by ping, TCP and DHCP
//! from a pod of namespace `default`, a wait on a probe, and a wait on an Event.
// Only tests call these: a harness that cannot probe is the test's failure, said by a panic.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::runtime::WatchStreamExt;

use crate::cluster::Cluster;

/// How long a policy change may take to reach the datapath (measured ≤ 0.35 s in the lab).
pub const ENFORCED: Duration = Duration::from_secs(30);

/// A `type: kube-ovn` NAD `ns/name` with `provider`.
pub fn kube_ovn_nad(ns: &str, name: &str, provider: &str) -> String {
    format!(
        r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: {name}
  namespace: {ns}
spec:
  config: |
    {{"cniVersion": "0.3.1", "type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock", "provider": "{provider}"}}
"#
    )
}

/// A NAD `default/<name>` with provider `<name>.default.ovn` and its Subnet `<name>` in Vpc
/// `vpc` (`extra`: further spec lines, indented by two spaces).
pub fn network(vpc: &str, name: &str, cidr: &str, extra: &str) -> String {
    format!(
        "{}---\napiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata:\n  name: {name}\nspec:\n  vpc: {vpc}\n  cidr: \"{cidr}\"\n  provider: {name}.default.ovn\n{extra}",
        kube_ovn_nad("default", name, &format!("{name}.default.ovn"))
    )
}

/// Whether one ping from pod `default/from` to `ip` is answered within two seconds.
///
/// # Panics
/// When the exec itself fails (a harness failure, not a dropped packet).
pub fn ping(cluster: &Cluster, from: &str, ip: &str) -> bool {
    cluster
        .exec("default", from, &["ping", "-c", "1", "-w", "2", ip])
        .expect("exec ping")
        .status
        .success()
}

/// Whether a TCP connection from pod `default/from` to `ip:port` opens within two seconds.
///
/// # Panics
/// When the exec itself fails.
pub fn tcp(cluster: &Cluster, from: &str, ip: &str, port: u16) -> bool {
    let port = port.to_string();
    cluster
        .exec("default", from, &["nc", "-z", "-w", "2", ip, &port])
        .expect("exec nc")
        .status
        .success()
}

/// One DHCP exchange on `net1` of pod `default/pod` (busybox's client, leaving the interface as
/// it is): its output, where a success says `lease of <address> obtained`.
///
/// # Panics
/// When the exec itself fails.
pub fn dhcp(cluster: &Cluster, pod: &str) -> String {
    let udhcpc = [
        "busybox",
        "udhcpc",
        "-i",
        "net1",
        "-f",
        "-q",
        "-n",
        "-t",
        "5",
        "-T",
        "2",
        "-s",
        "/bin/true",
    ];
    let out = cluster.exec("default", pod, &udhcpc).expect("exec udhcpc");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Probes until `check` holds; the probes (each bounded by its own timeout) are the wait.
///
/// # Panics
/// When `check` does not hold within [`ENFORCED`].
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < ENFORCED,
            "{what}: not so after {ENFORCED:?}"
        );
    }
    println!("{what} after {:.2}s", started.elapsed().as_secs_f64());
}

/// The first Event on the `kind` object `name` (any namespace) whose message contains
/// `needle`, within `timeout`.
///
/// # Panics
/// When none comes.
pub async fn event(
    cluster: &Cluster,
    kind: &str,
    name: &str,
    needle: &str,
    timeout: Duration,
) -> Event {
    use futures::StreamExt;
    let events: Api<Event> = Api::all(cluster.client());
    let config = kube::runtime::watcher::Config::default().fields(&format!(
        "involvedObject.name={name},involvedObject.kind={kind}"
    ));
    let mut stream = std::pin::pin!(kube::runtime::watcher(events, config).applied_objects());
    let found = tokio::time::timeout(timeout, async {
        while let Some(e) = stream.next().await {
            if let Ok(e) = e
                && e.message.as_deref().is_some_and(|m| m.contains(needle))
            {
                return Some(e);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        _ => panic!("no Event on {kind} {name} containing {needle:?} within {timeout:?}"),
    }
}
