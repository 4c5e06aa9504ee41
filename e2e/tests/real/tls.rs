//! OVN's TLS on real nodes (issue 16 item 2, on by default in both charts): NB and SB answer
//! only TLS clients with a certificate of the install's CA (plain TCP and a stranger's
//! certificate get nothing), every node's ovn-controller is connected over `ssl:`, and
//! `helm upgrade` keeps the CA and the certificates.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::chart::{ChartCluster, printed};

/// The Secrets the charts make for OVN's TLS.
pub const SECRETS: [&str; 4] = [
    "kube-ovn-ovn-ca",
    "ovn-central-tls",
    "ovs-ovn-tls",
    "kube-ovn-controller-tls",
];

/// Secret name → its data as the API returns it (to compare before and after an upgrade).
pub fn secrets(cluster: &ChartCluster) -> BTreeMap<String, String> {
    SECRETS
        .iter()
        .map(|name| {
            let data = cluster.kubectl(&[
                "-n",
                "kube-system",
                "get",
                "secret",
                name,
                "-o",
                "jsonpath={.data}",
            ]);
            assert!(data.contains("cert"), "{name}: {data}");
            ((*name).to_owned(), data)
        })
        .collect()
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()))
}

/// Writes the Secret's `cacert`, `cert` and `key` into `dir`.
fn secret_files(cluster: &ChartCluster, secret: &str, dir: &Path) {
    for key in ["cacert", "cert", "key"] {
        let b64 = cluster.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "secret",
            secret,
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ]);
        let path = dir.join(format!("{key}.b64"));
        std::fs::write(&path, b64.trim()).unwrap();
        let out = run(Command::new("openssl")
            .args(["base64", "-d", "-A", "-in"])
            .arg(&path)
            .arg("-out")
            .arg(dir.join(key)));
        assert!(out.status.success(), "{secret} {key}: {}", printed(&out));
    }
}

/// The checks of the module doc, from inside the node that runs OVN central (its address is
/// that node's: central is on the host network).
pub fn check_ovn_tls(cluster: &ChartCluster) {
    let central = |path: &str| {
        cluster.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            "app=ovn-central",
            "-o",
            &format!("jsonpath={{.items[0].{path}}}"),
        ])
    };
    let (ip, node_name) = (central("status.hostIP"), central("spec.nodeName"));
    let node = cluster
        .nodes()
        .iter()
        .find(|n| n.name() == node_name)
        .unwrap_or_else(|| panic!("ovn-central on {node_name:?}, not one of our nodes"));
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    secret_files(cluster, "kube-ovn-controller-tls", &ours);
    // A stranger: a certificate of its own CA (self-signed), presented with our CA.
    let stranger = dir.path().join("stranger");
    std::fs::create_dir(&stranger).unwrap();
    let out = run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=ovn-central", "-keyout"])
        .arg(stranger.join("key"))
        .arg("-out")
        .arg(stranger.join("cert")));
    assert!(out.status.success(), "{}", printed(&out));
    std::fs::copy(ours.join("cacert"), stranger.join("cacert")).unwrap();

    let path = |d: &Path, f: &str| d.join(f).to_string_lossy().into_owned();
    for (port, db) in [(6641, "OVN_Northbound"), (6642, "OVN_Southbound")] {
        let list = |remote: &str, files: Option<&Path>| {
            let mut args = vec!["ovsdb-client".to_owned(), "--timeout=5".to_owned()];
            if let Some(d) = files {
                args.extend([
                    format!("--private-key={}", path(d, "key")),
                    format!("--certificate={}", path(d, "cert")),
                    format!("--ca-cert={}", path(d, "cacert")),
                ]);
            }
            args.extend(["list-dbs".to_owned(), remote.to_owned()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            node.netns().exec(&args).unwrap()
        };
        let tls = list(&format!("ssl:{ip}:{port}"), Some(&ours));
        assert!(
            tls.status.success() && String::from_utf8_lossy(&tls.stdout).contains(db),
            "{db} over TLS with the controller's certificate: {}",
            printed(&tls)
        );
        for (what, out) in [
            ("plain TCP", list(&format!("tcp:{ip}:{port}"), None)),
            (
                "another CA's certificate",
                list(&format!("ssl:{ip}:{port}"), Some(&stranger)),
            ),
        ] {
            assert!(
                !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains(db),
                "{db} answered {what}: {}",
                printed(&out)
            );
        }
        eprintln!("{db} on {ip}:{port}: TLS answered, plain TCP and a stranger refused");
    }

    // Every node's ovn-controller reaches SB over ssl: and is connected.
    let ovs_pods = cluster.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "pods",
        "-l",
        "app=ovs",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let ovs_pods: Vec<&str> = ovs_pods.split_whitespace().collect();
    assert_eq!(ovs_pods.len(), cluster.nodes().len(), "{ovs_pods:?}");
    for pod in ovs_pods {
        let out = cluster.kubectl(&[
            "-n",
            "kube-system",
            "exec",
            pod,
            "-c",
            "openvswitch",
            "--",
            "sh",
            "-c",
            "ovs-vsctl get open . external_ids:ovn-remote && \
             ovn-appctl -t /var/run/ovn/ovn-controller.$(cat /var/run/ovn/ovn-controller.pid).ctl \
             connection-status",
        ]);
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert!(
            lines.first().is_some_and(|l| l.starts_with("\"ssl:")) && lines.contains(&"connected"),
            "{pod}: {out}"
        );
    }
}
