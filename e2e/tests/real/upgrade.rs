//! `helm upgrade` with running pods (issue 16 item 4): a value that changes the controller's and
//! the CNI server's pods (their log filter) rolls both, the pre-upgrade hook applies the CRDs,
//! and `ovs-ovn` (OnDelete) keeps its pods, so the datapath never restarts: a pod pinging a
//! pod on the other node over net1 all along loses nothing; OVN's TLS Secrets stay as they were.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::chart::{ChartCluster, printed};

/// Pod name → UID of the kube-system pods with label `app=<app>`.
fn pods(cluster: &ChartCluster, app: &str) -> BTreeMap<String, String> {
    let listed = cluster.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.uid}{"\n"}{end}"#,
    ]);
    listed
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, u)| (n.to_owned(), u.to_owned()))
        .collect()
}

/// `(transmitted, received)` from ping's summary line.
fn ping_counts(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// Upgrades the release with `pod` pinging `peer_ip` (over net1, to the other node) throughout.
pub fn upgrade_keeps_traffic(cluster: &ChartCluster, pod: &str, peer_ip: &str) {
    // The caller's quiet check just passed: what it judged stays judged.
    cluster.settle_warnings();
    let ovs_before = pods(cluster, "ovs");
    let controller_before = pods(cluster, "kube-ovn-controller");
    let cni_before = pods(cluster, "kube-ovn-cni");
    assert!(!ovs_before.is_empty() && !controller_before.is_empty() && !cni_before.is_empty());
    let tls_before = super::tls::secrets(cluster);

    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Bursts of 5 pings 0.2 s apart until told to stop; every reply counted, and any
        // burst without a summary kept with what it printed.
        let pinger = scope.spawn(|| {
            let (mut sent, mut received, mut bursts, mut broken) = (0, 0, 0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let out = cluster
                    .kubectl_command()
                    .args([
                        "exec", pod, "--", "ping", "-c", "5", "-i", "0.2", "-W", "1", peer_ip,
                    ])
                    .output()
                    .unwrap();
                let text = printed(&out);
                match ping_counts(&text) {
                    Some((s, r)) => {
                        sent += s;
                        received += r;
                    }
                    None => broken.push(text),
                }
                bursts += 1;
            }
            (sent, received, bursts, broken)
        });
        upgrade(cluster);
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let (sent, received, bursts, broken) = pinger.join().unwrap();
        eprintln!("during the upgrade: {bursts} ping bursts, {received}/{sent} replies");
        assert!(
            broken.is_empty(),
            "ping bursts without a summary: {broken:#?}"
        );
        assert!(bursts >= 3 && sent > 0, "too few pings to tell: {bursts}");
        assert_eq!(received, sent, "replies lost during helm upgrade");
    });
    check_upgraded(cluster, &ovs_before, &controller_before, &cni_before);
    // The CA and the certificates are the install's (lookup found them): the new controller
    // pod and the old ovs-ovn pods still trust each other's peers.
    assert_eq!(
        super::tls::secrets(cluster),
        tls_before,
        "helm upgrade changed OVN's TLS Secrets"
    );
    // The quiet after the upgrade: no Warning event it caused (the replaced pods' own, from
    // when they started, were judged by the quiet check before).
    let warnings = cluster.warnings();
    assert!(
        warnings.is_empty(),
        "Warning events after helm upgrade: {warnings:#?}"
    );
}

/// `helm upgrade` changing the log filter of the controller and the CNI servers, and the wait
/// for both to roll out.
fn upgrade(cluster: &ChartCluster) {
    std::thread::sleep(Duration::from_secs(2));

    let started = cluster.elapsed();
    let out = cluster.helm(&[
        "upgrade",
        "kube-ovn",
        "./charts/kube-ovn-v2",
        "--namespace",
        "kube-system",
        "--reuse-values",
        "--set",
        "logLevel=info\\,controller=debug",
        "--wait",
        "--timeout",
        "5m",
    ]);
    eprintln!("{out}");
    for target in ["deployment/kube-ovn-controller", "daemonset/kube-ovn-cni"] {
        cluster.rollout_status(target);
    }
    eprintln!(
        "helm upgrade rolled out in {:?}",
        cluster.elapsed() - started
    );
}

/// After the upgrade: what rolled, what did not, and the hook's trace.
fn check_upgraded(
    cluster: &ChartCluster,
    ovs_before: &BTreeMap<String, String>,
    controller_before: &BTreeMap<String, String>,
    cni_before: &BTreeMap<String, String>,
) {
    // The controller and the CNI servers are new, with the new value; ovs-ovn is untouched.
    let controller_after = pods(cluster, "kube-ovn-controller");
    let cni_after = pods(cluster, "kube-ovn-cni");
    assert!(
        controller_after
            .values()
            .all(|u| !controller_before.values().any(|b| b == u)),
        "the controller did not roll: {controller_before:?} -> {controller_after:?}"
    );
    assert!(
        cni_after
            .values()
            .all(|u| !cni_before.values().any(|b| b == u)),
        "kube-ovn-cni did not roll: {cni_before:?} -> {cni_after:?}"
    );
    assert_eq!(&pods(cluster, "ovs"), ovs_before, "ovs-ovn restarted");
    let env = cluster.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "deployment",
        "kube-ovn-controller",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env}",
    ]);
    assert!(env.contains("info,controller=debug"), "{env}");
    // The DaemonSet knows its pods are a version behind: the operator's to move.
    let ovs_ds = cluster.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "daemonset",
        "ovs-ovn",
        "-o",
        "jsonpath={.spec.updateStrategy.type}",
    ]);
    assert_eq!(ovs_ds, "OnDelete");

    // The pre-upgrade hook ran (and was deleted on success): our CRDs are now applied by it.
    let managers = cluster.kubectl(&[
        "get",
        "crd",
        "subnets.kubeovn.io",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(
        managers.contains(controller::crd_upgrade::MANAGER),
        "{managers}"
    );
    let jobs = cluster.kubectl(&["-n", "kube-system", "get", "jobs", "-o", "name"]);
    assert!(!jobs.contains("kube-ovn-crds"), "{jobs}");
}
