//! `kube-ovn-controller --remove-finalizers` (the chart's post-delete hook) against a real
//! kube-apiserver, with the controller gone as after `helm uninstall`: objects stuck in deletion
//! behind our finalizers go, other finalizers stay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use std::time::Duration;

use crds::{IP, Subnet, Vpc};
use e2e::k8s::ControlPlane;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    yaml_serde::from_str(s).unwrap()
}

/// Waits until `get` answers `None` (the object is gone).
async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    tokio::time::timeout(Duration::from_secs(20), async {
        while api.get_opt(name).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name} still there"));
}

#[tokio::test]
async fn removing_our_finalizers_lets_stuck_objects_go_and_keeps_foreign_ones() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client();
    e2e::cluster::install_crds(&client).await.unwrap();

    let vpcs: Api<Vpc> = Api::all(client.clone());
    let subnets: Api<Subnet> = Api::all(client.clone());
    let ips: Api<IP> = Api::all(client.clone());
    let pp = PostParams::default();
    vpcs.create(
        &pp,
        &yaml("apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {name: v1, finalizers: [kubeovn.io/vpc]}\nspec: {}\n"),
    )
    .await
    .unwrap();
    subnets
        .create(
            &pp,
            &yaml("apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {name: s1, finalizers: [kubeovn.io/subnet, example.com/keep]}\nspec: {vpc: v1, cidr: 10.9.0.0/24, provider: n.default.ovn}\n"),
        )
        .await
        .unwrap();
    ips.create(
        &pp,
        &yaml("apiVersion: kubeovn.io/v1\nkind: IP\nmetadata: {name: p.default.n.default.ovn, finalizers: [kubeovn.io/ip]}\nspec: {podName: p, namespace: default, subnet: s1, ipAddress: 10.9.0.2, v4IpAddress: 10.9.0.2}\n"),
    )
    .await
    .unwrap();
    // An object without finalizers is left as it is.
    vpcs.create(
        &pp,
        &yaml("apiVersion: kubeovn.io/v1\nkind: Vpc\nmetadata: {name: plain}\nspec: {}\n"),
    )
    .await
    .unwrap();

    // Deleted with no controller to finish the deletion: they stay, terminating.
    let dp = DeleteParams::default();
    vpcs.delete("v1", &dp).await.unwrap();
    subnets.delete("s1", &dp).await.unwrap();
    ips.delete("p.default.n.default.ovn", &dp).await.unwrap();
    assert!(
        vpcs.get("v1")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let report = controller::uninstall::remove_finalizers(&client)
        .await
        .unwrap();
    assert_eq!(report.patched, 3, "{report:?}");
    assert_eq!(report.untouched, 1, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");

    gone(&vpcs, "v1").await;
    gone(&ips, "p.default.n.default.ovn").await;
    // The foreign finalizer holds the Subnet; ours is gone from it.
    let s1 = subnets.get("s1").await.unwrap();
    assert_eq!(
        s1.metadata.finalizers,
        Some(vec!["example.com/keep".to_owned()])
    );
    assert!(
        vpcs.get("plain")
            .await
            .unwrap()
            .metadata
            .finalizers
            .is_none()
    );

    // A second run finds nothing of ours.
    let again = controller::uninstall::remove_finalizers(&client)
        .await
        .unwrap();
    assert_eq!(again.patched, 0, "{again:?}");
}
