//! What the real-node tests and the startup benchmark share: the fenced control plane, the NAD
//! CRD, the image archives.

use std::time::Duration;

use e2e::real::fence::{Fence, Scope};
use e2e::real::net::HostBridge;

/// The harness bridge, the host's fence on it (pods' traffic between nodes and the tunnel
/// between their eth1 are bridged by the host, and br_netfilter shows them to FORWARD), and a
/// control plane serving the bridge address. Bind them in this order: the plane goes first.
pub async fn fenced_plane() -> (HostBridge, Fence, e2e::k8s::ControlPlane) {
    let bridge = HostBridge::create().unwrap();
    let host_fence = Fence::install(
        Scope::HostForward {
            in_interface: bridge.name().to_owned(),
        },
        &bridge.allow_list(&[bridge.cluster_cidr()]),
    )
    .unwrap();
    let plane = e2e::k8s::ControlPlane::start_with(e2e::k8s::Options {
        address: Some(bridge.address()),
    })
    .await
    .unwrap();
    (bridge, host_fence, plane)
}

/// The NetworkAttachmentDefinition CRD, established (Multus' installer brings it; here the
/// harness does).
pub async fn create_nad_crd(plane: &e2e::k8s::ControlPlane) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::runtime::wait::{await_condition, conditions};

    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(plane.client());
    let nad_crd = <crds::NetworkAttachmentDefinition as kube::CustomResourceExt>::crd();
    crds.create(&Default::default(), &nad_crd).await.unwrap();
    let name = kube::ResourceExt::name_any(&nad_crd);
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .unwrap()
    .unwrap();
}

/// The archives `cargo xtask images` writes (`<target>/images/<name>.oci.tar`).
pub fn image_archive(name: &str) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    let path = target.join("images").join(format!("{name}.oci.tar"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask images --only e2e-pause --only e2e-workload`",
        path.display()
    );
    path
}
