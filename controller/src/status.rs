//! Conditions on our custom resources, written to the status subresource by server-side apply.

use crds::{Condition, ConditionStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::MANAGER;

/// Now, as a Kubernetes `Time`.
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// A condition with the given truth, reason and message at the object's generation.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if ok {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    Condition::new(type_, status, reason, message, generation)
}

/// The apply document of [`apply`].
fn apply_body<'a, K>(
    obj: &K,
    fields: impl IntoIterator<Item = (&'a str, serde_json::Value)>,
    kept: &[&str],
) -> serde_json::Value
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut status: serde_json::Map<String, serde_json::Value> =
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let cached = serde_json::to_value(obj)
        .ok()
        .and_then(|mut o| o.get_mut("status").map(serde_json::Value::take));
    for key in kept {
        if status.contains_key(*key) {
            continue;
        }
        if let Some(value) = cached.as_ref().and_then(|c| c.get(*key)) {
            status.insert((*key).to_owned(), value.clone());
        }
    }
    serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    })
}

/// Writes the status of the cluster-scoped object `obj` by server-side apply under [`MANAGER`]:
/// `fields`, plus those of `kept` that `fields` lacks, carried over from `obj`'s (cached)
/// status. An apply removes what this manager set before and leaves out now, so a call that
/// reports only a condition names in `kept` the other fields the controller writes: they stay
/// as they were (as they did under the merge patch this replaces).
pub async fn apply<K>(
    api: &Api<K>,
    obj: &K,
    fields: impl IntoIterator<Item = (&str, serde_json::Value)>,
    kept: &[&str],
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let body = apply_body(obj, fields, kept);
    let name = obj.meta().name.clone().unwrap_or_default();
    // Forced: the status is the controller's alone, and fields it wrote with the merge patch of
    // earlier versions are owned by its `Update` entry, which an apply would otherwise conflict
    // with.
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
}

/// What a reconcile found: ready or not, why, in words.
#[derive(Debug, Clone)]
pub struct Verdict<'a> {
    /// Ready or not.
    pub ready: bool,
    /// The condition's reason (CamelCase).
    pub reason: &'a str,
    /// The condition's message (and the Event's note when not ready).
    pub msg: String,
}

/// Sets `obj`'s Ready condition from `verdict` among its `current` conditions, with `extra`
/// status fields (naming in `kept` the other fields the controller writes); when not ready,
/// publishes the same message as a Warning Event.
pub async fn report_ready<K>(
    ctx: &crate::context::Context,
    obj: &K,
    current: &[Condition],
    verdict: Verdict<'_>,
    extra: Vec<(&str, serde_json::Value)>,
    kept: &[&str],
) -> Result<(), crate::error::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let mut conditions = current.to_vec();
    crds::condition::set_condition(
        &mut conditions,
        condition(
            crds::condition::READY,
            verdict.ready,
            verdict.reason,
            verdict.msg.clone(),
            obj.meta().generation,
        ),
        now(),
    );
    let fields = extra
        .into_iter()
        .chain([("conditions", serde_json::json!(conditions))]);
    let api: Api<K> = Api::all(ctx.client.clone());
    apply(&api, obj, fields, kept).await?;
    if !verdict.ready {
        ctx.event(&obj.object_ref(&()), true, verdict.reason, verdict.msg)
            .await;
    }
    Ok(())
}

/// The status fields the schema of `K`'s CRD declares (a server-side apply refuses others).
#[cfg(test)]
pub(crate) fn declared_status_fields<K: kube::CustomResourceExt>() -> Vec<String> {
    let crd = serde_json::to_value(K::crd()).unwrap_or_default();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_carries_the_kept_fields_it_does_not_set_and_invents_none() {
        let mut vpc = crds::Vpc::new("v1", crds::VpcSpec::default());
        vpc.status = Some(crds::VpcStatus {
            router: "v1".into(),
            ..Default::default()
        });
        let body = apply_body(
            &vpc,
            [("conditions", serde_json::json!([]))],
            &["router", "subnets"],
        );
        assert_eq!(
            body,
            serde_json::json!({
                "apiVersion": "kubeovn.io/v1",
                "kind": "Vpc",
                "status": {"conditions": [], "router": "v1"},
            })
        );
        let body = apply_body(&vpc, [("router", serde_json::json!("new"))], &["router"]);
        assert_eq!(body["status"], serde_json::json!({"router": "new"}));
        let body = apply_body(&vpc, [], &[]);
        assert_eq!(body["status"], serde_json::json!({}));
    }
}
