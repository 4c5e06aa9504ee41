//! `cargo xtask e2e --kind`: the manual's install and first example on a kind cluster, for
//! machines with a Docker engine (level L4; machines without one, like CI here, use the local
//! cluster). Steps, each with its command echoed:
//!
//! 1. `kind create cluster` (1 control-plane + N-1 workers; kindnet is the primary CNI),
//! 2. `cargo xtask images`, then `kind load image-archive` of the three OCI archives,
//! 3. Multus (thick plugin) from its official manifest at a pinned release,
//! 4. `helm install kube-ovn ./charts/kube-ovn-v2 --namespace kube-system --set
//!    cni.nonPrimaryCNI=true` (the manual's command; plus the userspace datapath, since kind
//!    nodes share the host's kernel and may lack the openvswitch module),
//! 5. the manual's NAD, Vpc, Subnet and pod, applied with kubectl, and checks by kubectl: the
//!    pod runs, its network-status lists `net1` on the subnet, the interface exists in the pod,
//!    and a second pod pings it over `net1`.
//!
//! The cluster is deleted at the end unless `--keep`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cmd;

/// The kind cluster's name.
pub const CLUSTER: &str = "kube-ovn-e2e";

/// Multus' official thick-plugin manifest at a pinned release.
pub const MULTUS_MANIFEST: &str = "https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/v4.2.3/deployments/multus-daemonset-thick.yml";

/// A second pod to ping the manual's pod over net1.
const PEER_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: peer
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: default/kube-ovn-vpc-network
spec:
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
"#;

/// The programs the kind backend runs, found on `PATH` (helm and kubectl may also come from
/// `cargo xtask setup`'s cache).
#[derive(Debug)]
struct Tools {
    kind: PathBuf,
    kubectl: PathBuf,
    helm: PathBuf,
}

/// `name` in the directories of `path_var` (a `PATH` value).
fn find_in(path_var: &str, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// What is missing for the kind backend, each with how to get it; empty when all is there.
fn missing(path_var: &str, docker_engine_up: bool, cached: &[(&str, PathBuf)]) -> Vec<String> {
    let mut missing = Vec::new();
    let have = |name: &str| {
        find_in(path_var, name).is_some() || cached.iter().any(|(n, p)| *n == name && p.is_file())
    };
    if !have("docker") {
        missing.push("docker: the Docker CLI and a running Docker engine (https://docs.docker.com/engine/install/)".to_owned());
    } else if !docker_engine_up {
        missing.push(
            "a running Docker engine: `docker info` failed (start dockerd, or check that your \
             user may use /var/run/docker.sock)"
                .to_owned(),
        );
    }
    if !have("kind") {
        missing.push(
            "kind: `go install sigs.k8s.io/kind@latest` (or a release binary from \
             https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
                .to_owned(),
        );
    }
    if !have("kubectl") {
        missing.push("kubectl: on PATH, or built by `cargo xtask setup`".to_owned());
    }
    if !have("helm") {
        missing.push("helm: on PATH, or built by `cargo xtask setup` (needs Go)".to_owned());
    }
    missing
}

fn locate() -> anyhow::Result<Tools> {
    let path_var = std::env::var("PATH").unwrap_or_default();
    let cached_kubectl = Path::new(crate::k8s::CACHE_DIR)
        .join(crate::k8s::KUBERNETES_VERSION)
        .join("bin/kubectl");
    let cached_helm = crate::helm::binary();
    let docker_up = cmd::output_ok(Command::new("docker").arg("info")).is_some();
    let cached = [
        ("kubectl", cached_kubectl.clone()),
        ("helm", cached_helm.clone()),
    ];
    let missing = missing(&path_var, docker_up, &cached);
    if !missing.is_empty() {
        bail!(
            "`cargo xtask e2e --kind` needs, and this machine lacks:\n  - {}\n\
             Without Docker, run `cargo xtask e2e` (the local cluster: real control plane, OVN \
             and namespaces on this machine).",
            missing.join("\n  - ")
        );
    }
    let pick = |name: &str, cached: PathBuf| find_in(&path_var, name).unwrap_or(cached);
    Ok(Tools {
        kind: find_in(&path_var, "kind").context("kind")?,
        kubectl: pick("kubectl", cached_kubectl),
        helm: pick("helm", cached_helm),
    })
}

/// One check of the scenario.
#[derive(Debug)]
struct Check {
    name: &'static str,
    result: anyhow::Result<String>,
}

/// Runs the kind backend.
pub fn run(root: &Path, nodes: usize, keep: bool) -> anyhow::Result<()> {
    let tools = locate()?;
    let work = crate::images::default_out(root).join("kind");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let kubeconfig = work.join("kubeconfig");

    let archives = crate::images::build(
        root,
        &crate::images::default_out(root),
        &crate::images::IMAGES,
    )?;

    let config = work.join("kind.yaml");
    let mut kind_config =
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n"
            .to_owned();
    for _ in 1..nodes.max(1) {
        kind_config.push_str("- role: worker\n");
    }
    std::fs::write(&config, kind_config)?;
    cmd::run(
        Command::new(&tools.kind)
            .args([
                "create", "cluster", "--name", CLUSTER, "--wait", "5m", "--config",
            ])
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&kubeconfig),
    )?;
    let result = scenario(root, &tools, &kubeconfig, &archives);
    if keep {
        println!(
            "\nThe kind cluster {CLUSTER} stays up:\n  export KUBECONFIG={}\n  kubectl get pods -A\n\
             Delete it with: kind delete cluster --name {CLUSTER}",
            kubeconfig.display()
        );
    } else {
        let _ = cmd::run(Command::new(&tools.kind).args(["delete", "cluster", "--name", CLUSTER]));
    }
    result
}

fn scenario(
    root: &Path,
    tools: &Tools,
    kubeconfig: &Path,
    archives: &[PathBuf],
) -> anyhow::Result<()> {
    let kubectl = |args: &[&str]| -> anyhow::Result<String> {
        let mut c = Command::new(&tools.kubectl);
        c.arg("--kubeconfig").arg(kubeconfig).args(args);
        eprintln!("+ {}", cmd::display(&c));
        let out = c
            .output()
            .with_context(|| format!("starting {}", cmd::display(&c)))?;
        if !out.status.success() {
            bail!(
                "`kubectl {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let apply_stdin = |yaml: &str| -> anyhow::Result<()> {
        let mut c = Command::new(&tools.kubectl);
        c.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped());
        eprintln!("+ {} <<YAML", cmd::display(&c));
        let mut child = c.spawn().context("starting kubectl apply")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(yaml.as_bytes())?;
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("kubectl apply failed with {status}");
        }
        Ok(())
    };

    for archive in archives {
        cmd::run(
            Command::new(&tools.kind)
                .args(["load", "image-archive", "--name", CLUSTER])
                .arg(archive),
        )?;
    }
    kubectl(&["apply", "-f", MULTUS_MANIFEST])?;
    kubectl(&[
        "-n",
        "kube-system",
        "rollout",
        "status",
        "daemonset/kube-multus-ds",
        "--timeout=5m",
    ])?;
    // The manual's command, plus the userspace datapath (see the module doc).
    cmd::run(
        Command::new(&tools.helm)
            .current_dir(root)
            .env("KUBECONFIG", kubeconfig)
            .args([
                "install",
                "kube-ovn",
                "./charts/kube-ovn-v2",
                "--namespace",
                "kube-system",
                "--set",
                "cni.nonPrimaryCNI=true",
                "--set",
                "networking.datapathType=netdev",
                "--wait",
                "--timeout",
                "10m",
            ]),
    )?;

    apply_stdin(&crds::seed::first_example())?;
    apply_stdin(PEER_POD)?;
    let mut checks = Vec::new();
    let ready = kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/multi-network-pod",
        "pod/peer",
        "--timeout=5m",
    ]);
    let ready_ok = ready.is_ok();
    checks.push(Check {
        name: "the manual's pod and a peer run with a kube-ovn attachment",
        result: ready,
    });
    if ready_ok {
        let status = kubectl(&[
            "get",
            "pod",
            "multi-network-pod",
            "-o",
            r"jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}",
        ])
        .and_then(|s| net1_of(&s));
        let (ip, mac) = match &status {
            Ok((ip, mac)) => (ip.clone(), mac.clone()),
            Err(_) => (String::new(), String::new()),
        };
        checks.push(Check {
            name: "network-status lists net1 on subnet-secondary (10.100.0.0/16)",
            result: status.map(|(ip, mac)| format!("net1 {ip} {mac}")),
        });
        checks.push(Check {
            name: "net1 exists in the pod with the reported MAC",
            result: kubectl(&[
                "exec",
                "multi-network-pod",
                "--",
                "cat",
                "/sys/class/net/net1/address",
            ])
            .and_then(|m| {
                if m.trim() == mac {
                    Ok(m.trim().to_owned())
                } else {
                    bail!("net1 has MAC {} but network-status says {mac}", m.trim())
                }
            }),
        });
        checks.push(Check {
            name: "the peer pings the manual's pod over net1",
            result: kubectl(&["exec", "peer", "--", "ping", "-c", "3", "-W", "5", &ip]),
        });
    }
    println!("\n$ kubectl logs -n kube-system daemonset/kube-ovn-cni --tail=20");
    print!(
        "{}",
        kubectl(&[
            "logs",
            "-n",
            "kube-system",
            "daemonset/kube-ovn-cni",
            "--tail=20"
        ])
        .unwrap_or_else(|e| format!("{e:#}\n"))
    );
    println!("\n== e2e --kind ==");
    for c in &checks {
        match &c.result {
            Ok(_) => println!("PASS     {}", c.name),
            Err(e) => println!("FAIL     {}: {e:#}", c.name),
        }
    }
    let failed = checks.iter().filter(|c| c.result.is_err()).count();
    println!("{} passed, {failed} failed", checks.len() - failed);
    if failed > 0 {
        bail!("e2e --kind: {failed} check(s) failed");
    }
    Ok(())
}

/// The `net1` entry of a network-status annotation: (IP, MAC), the IP on the manual's subnet.
fn net1_of(network_status: &str) -> anyhow::Result<(String, String)> {
    let list: Vec<Value> = serde_json::from_str(network_status)
        .with_context(|| format!("network-status is not a JSON list: {network_status:?}"))?;
    let net1 = list
        .iter()
        .find(|e| e["interface"] == "net1")
        .with_context(|| format!("no net1 in network-status {network_status}"))?;
    if net1["name"] != "default/kube-ovn-vpc-network" {
        bail!(
            "net1 belongs to {}, not default/kube-ovn-vpc-network",
            net1["name"]
        );
    }
    let ip = net1["ips"][0].as_str().unwrap_or_default().to_owned();
    if !ip.starts_with("10.100.") {
        bail!("net1's address {ip:?} is not in subnet-secondary (10.100.0.0/16)");
    }
    let mac = net1["mac"].as_str().unwrap_or_default().to_owned();
    Ok((ip, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_named_with_how_to_get_them() {
        let empty = std::env::temp_dir().join(format!("xtask-kind-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap_or_else(|e| panic!("{e}"));
        let path = empty.display().to_string();
        let m = missing(&path, false, &[]);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m[0].starts_with("docker"), "{m:?}");
        assert!(
            m[1].starts_with("kind") && m[1].contains("go install"),
            "{m:?}"
        );

        // docker present but no engine; kubectl and helm from the cache.
        std::fs::write(empty.join("docker"), "").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(empty.join("kind"), "").unwrap_or_else(|e| panic!("{e}"));
        let kubectl = empty.join("cached-kubectl");
        let helm = empty.join("cached-helm");
        std::fs::write(&kubectl, "").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&helm, "").unwrap_or_else(|e| panic!("{e}"));
        let cached = [("kubectl", kubectl), ("helm", helm)];
        let m = missing(&path, false, &cached);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("docker info"), "{m:?}");
        assert!(missing(&path, true, &cached).is_empty());
        std::fs::remove_dir_all(&empty).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn net1_is_read_from_network_status() {
        let status = r#"[{"name":"kindnet","interface":"eth0","ips":["10.244.1.5"],"default":true},
            {"name":"default/kube-ovn-vpc-network","interface":"net1","ips":["10.100.0.2"],
             "mac":"00:00:00:aa:bb:cc","dns":{}}]"#;
        assert_eq!(
            net1_of(status).unwrap_or_else(|e| panic!("{e}")),
            ("10.100.0.2".to_owned(), "00:00:00:aa:bb:cc".to_owned())
        );
        let wrong = status.replace("10.100.0.2", "10.200.0.2");
        assert!(net1_of(&wrong).is_err());
        assert!(net1_of("[]").unwrap_err().to_string().contains("no net1"));
        assert!(net1_of("not json").is_err());
    }
}
