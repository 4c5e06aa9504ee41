//! `kube-ovn-controller --apply-crds` (the charts' pre-upgrade hook) against a real
//! kube-apiserver holding an older release's CRDs, as `helm install` left them: one CRD a field
//! short, one missing. After the run every CRD is this release's and established, objects are
//! kept, the new field is stored; a second run changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

use controller::crd_upgrade::{self, MANAGER};
use crds::Subnet;
use e2e::k8s::ControlPlane;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Client, ResourceExt};

/// The CRD's schema with every number as a float (the API server gives back `0` where the
/// generated schema says `0.0`).
fn schema(crd: &CustomResourceDefinition) -> serde_json::Value {
    fn floats(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Number(n) => n
                .as_f64()
                .map_or(Value::Number(n), |f| serde_json::json!(f)),
            Value::Array(a) => Value::Array(a.into_iter().map(floats).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, floats(v))).collect()),
            other => other,
        }
    }
    floats(serde_json::to_value(&crd.spec.versions[0].schema).unwrap())
}

/// The Subnet spec as the API stores it (raw: the typed struct would hide a pruned field).
async fn stored_subnet_spec(client: &Client, name: &str) -> serde_json::Value {
    let api: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<Subnet>(&()),
    );
    api.get(name).await.unwrap().data["spec"].clone()
}

#[tokio::test]
async fn applying_the_crds_updates_an_older_release_and_keeps_its_objects() {
    let cp = ControlPlane::start().await.unwrap();
    let client = cp.client();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let wanted = crds::generate::crds();
    let missing = "qos-policies.kubeovn.io";
    assert!(wanted.iter().any(|c| c.name_any() == missing));

    // The older release: Subnet without `spec.vlan`, no QoSPolicy CRD; created (not applied),
    // as helm creates what it finds in crds/.
    for crd in &wanted {
        let name = crd.name_any();
        if name == missing {
            continue;
        }
        let mut old = crd.clone();
        if name == "subnets.kubeovn.io" {
            let props = old.spec.versions[0]
                .schema
                .as_mut()
                .unwrap()
                .open_api_v3_schema
                .as_mut()
                .unwrap()
                .properties
                .as_mut()
                .unwrap()
                .get_mut("spec")
                .unwrap()
                .properties
                .as_mut()
                .unwrap();
            assert!(props.remove("vlan").is_some(), "Subnet has spec.vlan");
        }
        api.create(&PostParams::default(), &old).await.unwrap();
        await_condition(api.clone(), &name, conditions::is_crd_established())
            .await
            .unwrap();
    }
    let subnets: Api<Subnet> = Api::all(client.clone());
    let subnet = |name: &str| -> Subnet {
        yaml_serde::from_str(&format!(
            "apiVersion: kubeovn.io/v1\nkind: Subnet\nmetadata: {{name: {name}}}\nspec: {{vpc: v1, cidr: 10.9.0.0/24, provider: n.default.ovn, vlan: vlan10}}\n"
        ))
        .unwrap()
    };
    subnets
        .create(&PostParams::default(), &subnet("before"))
        .await
        .unwrap();
    // The old schema prunes the field it does not know.
    assert!(
        stored_subnet_spec(&client, "before")
            .await
            .get("vlan")
            .is_none()
    );

    // The hook's command, as the chart runs it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-ovn-controller"))
        .arg("--apply-crds")
        .env("KUBECONFIG", cp.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let logged =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(logged.contains("applied the Kube-OVN CRDs"), "{logged}");
    assert!(logged.contains(missing), "{logged}");

    for crd in &wanted {
        let name = crd.name_any();
        let stored = api.get(&name).await.unwrap();
        assert_eq!(schema(&stored), schema(crd), "{name}");
        assert!(conditions::is_crd_established().matches_object(Some(&stored)));
        assert!(
            stored
                .managed_fields()
                .iter()
                .any(|m| m.manager.as_deref() == Some(MANAGER)),
            "{name}"
        );
    }
    // Objects stay; the new field is now stored.
    assert!(subnets.get_opt("before").await.unwrap().is_some());
    subnets
        .create(&PostParams::default(), &subnet("after"))
        .await
        .unwrap();
    assert_eq!(stored_subnet_spec(&client, "after").await["vlan"], "vlan10");

    // Again: nothing to do.
    let again = crd_upgrade::apply_crds(&client).await.unwrap();
    assert!(
        again.created.is_empty() && again.updated.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.unchanged.len(), wanted.len());
}
