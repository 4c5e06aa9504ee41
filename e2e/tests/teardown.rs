//! Dropping a local cluster leaves nothing behind: no process, no network namespace, no veth
//! in the host namespace, no run dir.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::path::Path;
use std::time::Duration;

use e2e::cluster::Cluster;

/// PIDs of live (not zombie) processes whose command line mentions one of `paths`.
fn processes_using(paths: &[std::path::PathBuf]) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if !zombie
            && paths
                .iter()
                .any(|p| cmdline.contains(&*p.to_string_lossy()))
        {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Names of the host namespace's interfaces. The job runner (`cargo xtask test`) runs this
/// binary alone, so another test's interfaces do not come and go meanwhile.
fn host_links() -> std::collections::BTreeSet<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_cluster_with_a_running_pod_leaves_nothing_behind() {
    let links_before = host_links();
    let cluster = Cluster::start(e2e::cluster::node_count(2, 1))
        .await
        .unwrap();
    cluster
        .apply_yaml(
            r#"
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: net-t, namespace: default}
spec:
  config: '{"cniVersion":"1.0.0","type":"kube-ovn","provider":"net-t.default.ovn"}'
---
apiVersion: kubeovn.io/v1
kind: Vpc
metadata: {name: vpc-t}
spec: {}
---
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: sub-t}
spec: {vpc: vpc-t, cidr: 10.77.0.0/24, provider: net-t.default.ovn}
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-t
  namespace: default
  annotations: {k8s.v1.cni.cncf.io/networks: default/net-t}
spec:
  nodeName: node-1
  containers: [{name: app, image: nginx}]
"#,
        )
        .unwrap();
    cluster
        .wait_running("default", "pod-t", Duration::from_secs(90))
        .await
        .unwrap();
    let namespaces = cluster.namespaces();
    let paths = cluster.owned_paths();
    assert!(
        namespaces.len() >= 4,
        "nodes, underlay and the pod: {namespaces:?}"
    );
    assert!(
        !processes_using(&paths).is_empty(),
        "the cluster's processes are found by path"
    );

    drop(cluster);

    let left = processes_using(&paths);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    for ns in &namespaces {
        assert!(
            !Path::new("/var/run/netns").join(ns).exists(),
            "namespace {ns} left behind"
        );
    }
    for p in &paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    let links_after = host_links();
    let added: Vec<_> = links_after.difference(&links_before).collect();
    assert!(added.is_empty(), "host interfaces left behind: {added:?}");
}
