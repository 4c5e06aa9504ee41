//! `kube-ovn-controller --remove-finalizers`: what the chart's post-delete hook runs.
//!
//! Once `helm uninstall` has removed the controller, nothing would remove our finalizers any
//! more: deleting a `Subnet`, a `Vpc` or an `IP` would hang, and so would deleting the CRDs.
//! The hook removes every `kubeovn.io/` finalizer from every object of our kinds and leaves
//! other finalizers alone. The OVN databases they guarded go with the chart, so there is
//! nothing left to clean up behind them.

use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};

/// Our finalizers all start with this.
pub const PREFIX: &str = "kubeovn.io/";

/// The kinds that carry one of our finalizers: (kind, plural).
pub const KINDS: &[(&str, &str)] = &[
    ("IP", "ips"),
    ("Subnet", "subnets"),
    ("Vpc", "vpcs"),
    ("IPPool", "ippools"),
    ("SecurityGroup", "security-groups"),
    ("VpcNatGateway", "vpc-nat-gateways"),
    ("IptablesEIP", "iptables-eips"),
];

/// Attempts per object when its resourceVersion keeps changing under us.
const ATTEMPTS: usize = 5;

/// What [`remove_finalizers`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Objects whose finalizers were patched.
    pub patched: usize,
    /// Objects that had none of ours.
    pub untouched: usize,
    /// Objects that could not be patched, with the reason (`<plural>/<name>: <error>`).
    pub failed: Vec<String>,
}

/// `finalizers` without ours, or `None` when there is none of ours to remove.
pub fn without_ours(finalizers: &[String]) -> Option<Vec<String>> {
    let kept: Vec<String> = finalizers
        .iter()
        .filter(|f| !f.starts_with(PREFIX))
        .cloned()
        .collect();
    (kept.len() != finalizers.len()).then_some(kept)
}

/// Removes our finalizers from every object of [`KINDS`]. A kind whose CRD is not installed
/// counts as empty. Fails only when listing a kind fails for another reason.
pub async fn remove_finalizers(client: &kube::Client) -> Result<Report, kube::Error> {
    let mut report = Report::default();
    for (kind, plural) in KINDS {
        let resource = api_resource(kind, plural);
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let objects = match all.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(err) => return Err(err),
        };
        for object in objects {
            let name = object.metadata.name.clone().unwrap_or_default();
            let api = match object.metadata.namespace.as_deref() {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => all.clone(),
            };
            match strip(&api, object).await {
                Ok(true) => {
                    tracing::info!(kind, name, "removed our finalizers");
                    report.patched += 1;
                }
                Ok(false) => report.untouched += 1,
                Err(err) => {
                    tracing::warn!(kind, name, error = %err, "cannot remove our finalizers");
                    report.failed.push(format!("{plural}/{name}: {err}"));
                }
            }
        }
    }
    Ok(report)
}

fn api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "kubeovn.io".to_owned(),
        version: "v1".to_owned(),
        api_version: "kubeovn.io/v1".to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// Patches `object`'s finalizers to those that are not ours, guarded by its resourceVersion
/// (a concurrent change answers 409: read it again and retry). `Ok(false)` when it had none of
/// ours or is gone.
async fn strip(api: &Api<DynamicObject>, mut object: DynamicObject) -> Result<bool, kube::Error> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut attempt = 0;
    loop {
        let finalizers = object.metadata.finalizers.clone().unwrap_or_default();
        let Some(kept) = without_ours(&finalizers) else {
            return Ok(false);
        };
        let patch = serde_json::json!({
            "metadata": {
                "finalizers": kept,
                "resourceVersion": object.metadata.resource_version,
            }
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                match api.get_opt(&name).await? {
                    Some(fresh) => object = fresh,
                    None => return Ok(false),
                }
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_our_finalizers_are_removed() {
        assert_eq!(
            without_ours(&strings(&["kubeovn.io/subnet", "example.com/keep"])),
            Some(strings(&["example.com/keep"]))
        );
        assert_eq!(without_ours(&strings(&["kubeovn.io/ip"])), Some(Vec::new()));
        assert_eq!(without_ours(&strings(&["example.com/keep"])), None);
        assert_eq!(without_ours(&[]), None);
        // A look-alike outside our prefix stays.
        assert_eq!(without_ours(&strings(&["kubeovn.io-other/x"])), None);
    }

    #[test]
    fn every_finalizer_the_controller_sets_is_covered() {
        for finalizer in [
            crate::ip::FINALIZER,
            crate::subnet::FINALIZER,
            crate::vpc::FINALIZER,
            crate::ippool::FINALIZER,
            crate::security_group::FINALIZER,
            crate::nat_gateway::FINALIZER,
            crate::nat_rules::EIP_FINALIZER,
        ] {
            assert!(finalizer.starts_with(PREFIX), "{finalizer}");
        }
        assert_eq!(KINDS.len(), 7);
    }
}
