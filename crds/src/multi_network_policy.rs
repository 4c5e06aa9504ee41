//! `MultiNetworkPolicy` (`multi-networkpolicies.k8s.cni.cncf.io/v1beta1`, the Network Plumbing
//! Working Group's API): a Kubernetes NetworkPolicy for the secondary networks its annotation
//! `k8s.v1.cni.cncf.io/policy-for` names. The spec is NetworkPolicy's, field for field, so the
//! types are Kubernetes' own.
//!
//! Clusters often have this CRD already (installed by another policy implementation); the
//! charts install [`MultiNetworkPolicy::crd`] only when their value asks for it.

use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyIngressRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation that names the networks (NADs, `<ns>/<name>` or `<name>` in the policy's
/// namespace, comma separated) a policy applies to.
pub const POLICY_FOR_ANNOTATION: &str = "k8s.v1.cni.cncf.io/policy-for";

/// Spec of a [`MultiNetworkPolicy`]: NetworkPolicy's.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1beta1",
    kind = "MultiNetworkPolicy",
    plural = "multi-networkpolicies",
    singular = "multi-networkpolicy",
    shortname = "multi-policy",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct MultiNetworkPolicySpec {
    /// The pods (in the policy's namespace) the policy applies to; `{}` selects all.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// `Ingress`, `Egress` or both. When empty: `Ingress`, plus `Egress` if `egress` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<String>>,
    /// Traffic allowed into the selected pods (every rule's traffic is allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
    /// Traffic allowed out of the selected pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<NetworkPolicyEgressRule>>,
}

impl MultiNetworkPolicySpec {
    /// Whether the policy restricts traffic into the selected pods, and out of them (the
    /// defaults of NetworkPolicy when `policyTypes` is empty). Unknown types are left out
    /// (see [`MultiNetworkPolicySpec::unknown_policy_types`]).
    pub fn directions(&self) -> (bool, bool) {
        match self.policy_types.as_deref() {
            Some(types) if !types.is_empty() => (
                types.iter().any(|t| t == "Ingress"),
                types.iter().any(|t| t == "Egress"),
            ),
            _ => (true, self.egress.is_some()),
        }
    }

    /// The `policyTypes` entries that are neither `Ingress` nor `Egress`.
    pub fn unknown_policy_types(&self) -> Vec<String> {
        self.policy_types
            .iter()
            .flatten()
            .filter(|t| *t != "Ingress" && *t != "Egress")
            .cloned()
            .collect()
    }
}

/// The networks the annotation `policy-for` of a policy in `namespace` names, as
/// `(namespace, name)` of NADs; an entry that is not `<name>` or `<ns>/<name>` is an error that
/// quotes it.
pub fn policy_for(namespace: &str, value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (ns, name) = match entry.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (namespace, entry),
        };
        let valid = crate::validation::dns1123_label("namespace", ns).is_ok()
            && crate::validation::dns1123_subdomain("name", name).is_ok();
        if !valid {
            return Err(format!(
                "{POLICY_FOR_ANNOTATION}: {entry:?} is not a NetworkAttachmentDefinition (<name> or <namespace>/<name>)"
            ));
        }
        let nad = (ns.to_owned(), name.to_owned());
        if !out.contains(&nad) {
            out.push(nad);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_names_nads_in_the_policys_namespace_or_another() {
        assert_eq!(
            policy_for("app", " net-a, other/net-b,net-a ,,"),
            Ok(vec![
                ("app".to_owned(), "net-a".to_owned()),
                ("other".to_owned(), "net-b".to_owned())
            ])
        );
        assert_eq!(policy_for("app", ""), Ok(vec![]));
        for bad in ["a/b/c", "Net", "x/", "/y", "a b"] {
            let err = policy_for("app", bad).unwrap_err();
            assert!(err.contains(POLICY_FOR_ANNOTATION), "{bad}: {err}");
        }
    }

    #[test]
    fn policy_types_default_as_networkpolicy() {
        let mut spec = MultiNetworkPolicySpec::default();
        assert_eq!(spec.directions(), (true, false));
        spec.egress = Some(vec![]);
        assert_eq!(spec.directions(), (true, true));
        spec.policy_types = Some(vec!["Egress".into()]);
        assert_eq!(spec.directions(), (false, true));
        spec.policy_types = Some(vec!["Egress".into(), "Sideways".into()]);
        assert_eq!(spec.unknown_policy_types(), ["Sideways"]);
        // The manifest form users write.
        let p: MultiNetworkPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
            "metadata": {"name": "p", "namespace": "default",
                "annotations": {POLICY_FOR_ANNOTATION: "default/net1"}},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    {"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 80, "endPort": 90}]}]}
        }))
        .unwrap();
        let rule = &p.spec.ingress.as_ref().unwrap()[0];
        assert_eq!(rule.from.as_ref().unwrap().len(), 2);
        assert_eq!(rule.ports.as_ref().unwrap()[0].end_port, Some(90));
    }
}
