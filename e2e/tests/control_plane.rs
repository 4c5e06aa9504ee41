//! The L2 control plane as tests use it: it serves (through kube-rs and through kubectl),
//! registered nodes are Ready, and teardown leaves nothing behind. Each test starts its own
//! control plane, so they share nothing and run in parallel.

// Test code: a failed unwrap or panic is a failed test with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use e2e::k8s::{Binaries, ControlPlane, KUBERNETES_VERSION};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn control_plane_serves_readyz_through_kube_rs_and_kubectl() {
    let plane = ControlPlane::start().await.unwrap();
    eprintln!("control plane ready in {:?}", plane.startup_time());

    let request = http::Request::get("/readyz").body(Vec::new()).unwrap();
    let readyz = plane.client().request_text(request).await.unwrap();
    assert_eq!(readyz.trim(), "ok");

    let readyz = plane.kubectl(&["get", "--raw", "/readyz"]).unwrap();
    assert_eq!(readyz.trim(), "ok");

    // The binaries carry the release they were built from (setup stamps it with -X flags).
    let version = plane.client().apiserver_version().await.unwrap();
    assert_eq!(version.git_version, KUBERNETES_VERSION);
    let client_version = plane.kubectl(&["version", "--client"]).unwrap();
    assert!(
        client_version.contains(&format!("Client Version: {KUBERNETES_VERSION}")),
        "{client_version}"
    );
}

#[tokio::test]
async fn registered_nodes_are_listed_ready() {
    let mut plane = ControlPlane::start().await.unwrap();
    let nodes = [
        ("kovn-node-1", IpAddr::V4(Ipv4Addr::new(172, 31, 0, 1))),
        ("kovn-node-2", IpAddr::V4(Ipv4Addr::new(172, 31, 0, 2))),
    ];
    for (name, ip) in nodes {
        plane.register_node(name, ip).await.unwrap();
    }

    let listed = Api::<Node>::all(plane.client())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), nodes.len());
    for (name, ip) in nodes {
        let node = listed
            .items
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("node {name} not listed"));
        let status = node.status.as_ref().unwrap();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True", "{name}: {ready:?}");
        let internal = status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == "InternalIP")
            .unwrap();
        assert_eq!(internal.address, ip.to_string());
        let allocatable = status.allocatable.as_ref().unwrap();
        assert!(allocatable.contains_key("pods"), "{name}: {allocatable:?}");
    }

    // kubectl sees the same: every node Ready.
    let table = plane.kubectl(&["get", "nodes", "--no-headers"]).unwrap();
    for (name, _) in nodes {
        let line = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in:\n{table}"));
        assert!(line.split_whitespace().nth(1) == Some("Ready"), "{line}");
    }
}

#[tokio::test]
async fn teardown_leaves_no_process_and_no_run_dir() {
    let mut plane = ControlPlane::start().await.unwrap();
    plane
        .register_node("kovn-node-1", IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let pids = plane.pids();
    let run_dir = plane.run_dir().to_path_buf();
    assert_eq!(
        pids.len(),
        4,
        "etcd, apiserver, controller-manager, scheduler"
    );
    for pid in &pids {
        assert!(Path::new(&format!("/proc/{pid}")).exists());
    }
    assert!(run_dir.join("kube-apiserver.log").is_file());

    let stopping = std::time::Instant::now();
    drop(plane);
    eprintln!("control plane stopped in {:?}", stopping.elapsed());

    for pid in pids {
        // Reaped children leave no /proc entry; a reused pid would be some other program.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains(&run_dir.display().to_string()),
            "process {pid} outlived its control plane: {cmdline}"
        );
    }
    assert!(!run_dir.exists(), "{} left behind", run_dir.display());
}

#[test]
fn missing_binaries_fail_with_the_setup_command() {
    let err = Binaries::in_dir(Path::new("/nonexistent/kube-ovn-k8s-bin"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cargo xtask setup"), "{err}");
    assert!(err.contains("kube-apiserver"), "{err}");
}

#[test]
fn the_binaries_are_installed() {
    // `cargo xtask test` runs setup first, so on CI this proves setup built them.
    Binaries::locate().unwrap();
}
