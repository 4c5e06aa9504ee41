//! `cargo xtask setup`: installs what the build and the tests need, idempotently.
//!
//! Checks first and installs only what is missing, so a second run takes well under a second.

use std::process::Command;

use anyhow::{Context, bail};

use crate::cmd;

/// Debian packages the tests use.
const APT_PACKAGES: &[&str] = &[
    // OVN and Open vSwitch: ovsdb-server, ovn-northd, ovs-vswitchd, ovn-controller.
    "ovn-central",
    "ovn-host",
    "openvswitch-switch",
    // Namespaces, veth, routes; packets.
    "iproute2",
    "iputils-ping",
    "ethtool",
    "iperf3",
    "netcat-openbsd",
    "tcpdump",
    // A DHCP client (busybox udhcpc) for the enableDHCP scenario.
    "busybox",
    // The Kubernetes datastore.
    "etcd-server",
    // The primary CNI for pods' eth0 (reference bridge + host-local plugins, /usr/lib/cni).
    "containernetworking-plugins",
    // Real nodes (L3): the fence around node namespaces, and kube-proxy's iptables mode.
    "iptables",
    // The NAT-gateway agent's tests read its nf_tables ruleset back with `nft`.
    "nftables",
    // The OCI archive test: containerd (with runc) imports and runs an image we write.
    "containerd",
];

/// cargo-deny, for `cargo deny check bans licenses sources`; pinned so every machine runs the
/// same checks.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// Runs every setup step.
pub fn run() -> anyhow::Result<()> {
    apt_packages(APT_PACKAGES)?;
    // Debian's static busybox for the images and the OCI archive test, unpacked into the cache
    // (the busybox-static package conflicts with the dynamic busybox installed above).
    crate::images::static_busybox()?;
    cargo_deny()?;
    // Kubernetes binaries built from the Go module at the pinned release (see k8s.rs).
    crate::k8s::run()?;
    // helm for the chart tests, from its Go module (see helm.rs).
    crate::helm::run()?;
    // Multus' thin plugin for the real nodes, from the source snapshot beside the repository
    // or its Go module (see multus.rs).
    crate::multus::run(&workspace_root())?;
    eprintln!("setup: everything the tests need is installed");
    Ok(())
}

/// Installs the Debian packages of `packages` that are missing (root needed only then).
pub fn apt_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|pkg| !dpkg_installed(pkg))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: apt packages present ({})", packages.join(" "));
        return Ok(());
    }
    eprintln!("setup: installing apt packages: {}", missing.join(" "));
    if !is_root() {
        bail!(
            "setup needs root to install {}: run `sudo cargo xtask setup` or install them by hand",
            missing.join(" ")
        );
    }
    cmd::run(Command::new("apt-get").arg("update").arg("-q"))?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    // The packages' own services are not used: tests start every daemon themselves, with their
    // own databases and sockets. Nothing is started here.
    let still_missing: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|pkg| !dpkg_installed(pkg))
        .collect();
    if !still_missing.is_empty() {
        bail!(
            "apt-get reported success but these are not installed: {}",
            still_missing.join(" ")
        );
    }
    Ok(())
}

fn dpkg_installed(pkg: &str) -> bool {
    cmd::output_ok(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|s| s.contains("install ok installed"))
}

fn is_root() -> bool {
    cmd::output_ok(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn cargo_deny() -> anyhow::Result<()> {
    let have = cmd::output_ok(Command::new("cargo").args(["deny", "--version"]));
    if let Some(v) = have.as_deref().filter(|v| v.contains(CARGO_DENY_VERSION)) {
        eprintln!("setup: {}", v.trim());
        return Ok(());
    }
    eprintln!("setup: installing cargo-deny {CARGO_DENY_VERSION} from crates.io (a few minutes)");
    cmd::run(Command::new("cargo").args([
        "install",
        "--locked",
        "cargo-deny",
        "--version",
        CARGO_DENY_VERSION,
    ]))
    .context("installing cargo-deny")
}

/// The workspace root (xtask's manifest dir is `<root>/xtask`); the Multus snapshot is found
/// relative to it.
fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}
