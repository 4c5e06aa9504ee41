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

/// The IPv4 address of `net1` in pod `default/pod`.
///
/// # Panics
/// When the exec fails or the pod has no IPv4 address on `net1`.
pub fn addr_of(cluster: &Cluster, pod: &str) -> String {
    let out = cluster
        .exec(
            "default",
            pod,
            &["ip", "-o", "-4", "addr", "show", "dev", "net1"],
        )
        .expect("exec ip addr");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let cidr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("{pod} has no net1: {text}"));
    cidr.split('/').next().unwrap_or_default().to_owned()
}

/// Runs `script` in pod `default/pod`'s network namespace in the background (bounded by
/// `timeout`, so nothing outlives the test for long). `script` redirects its stdout; stderr goes
/// nowhere, so no pipe of the exec stays open (the exec returns at once).
///
/// # Panics
/// When the script cannot be started.
pub fn background(cluster: &Cluster, pod: &str, script: &str) {
    let out = cluster
        .exec(
            "default",
            pod,
            &["sh", "-c", &format!("timeout 120 {script} 2>/dev/null &")],
        )
        .expect("exec sh");
    assert!(
        out.status.success(),
        "starting {script:?} in {pod}: {out:?}"
    );
}

/// The UDP port [`Udp`] probes.
pub const UDP_PORT: u16 = 9999;
/// The UDP client's fixed source port: netcat's UDP listener talks to its first peer only.
const UDP_SOURCE: u16 = 40999;

/// The UDP probe: a listener on [`UDP_PORT`] in a pod writes what it receives to a log; a probe
/// sends a fresh marker. A drop is read after a TCP round trip that was sent later and came
/// back.
#[derive(Debug)]
pub struct Udp {
    log: std::path::PathBuf,
    sent: u32,
}

impl Udp {
    /// Starts the listener in pod `default/server`, logging to `log` in the cluster's run
    /// directory.
    pub fn listen(cluster: &Cluster, server: &str, log: &str) -> Self {
        let log = cluster.run_dir().join(log);
        background(
            cluster,
            server,
            &format!("nc -lu {UDP_PORT} > {}", log.display()),
        );
        Self { log, sent: 0 }
    }

    /// Sends a new marker from pod `default/from` to `ip`; returns the marker.
    ///
    /// # Panics
    /// When the exec fails.
    pub fn send(&mut self, cluster: &Cluster, from: &str, ip: &str) -> String {
        self.sent += 1;
        let marker = format!("probe-{}", self.sent);
        let script = format!("echo {marker} | nc -u -w 1 -p {UDP_SOURCE} {ip} {UDP_PORT}");
        cluster
            .exec("default", from, &["sh", "-c", &script])
            .expect("exec nc -u");
        marker
    }

    /// Whether the listener got `marker`.
    pub fn received(&self, marker: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|t| t.lines().any(|l| l == marker))
    }
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
