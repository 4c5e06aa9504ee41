//! `QoSPolicy` (`qos-policies.kubeovn.io`): bandwidth limits bound to an EIP or a whole NAT
//! gateway. Per-pod rates use the `ingress_rate` / `egress_rate` annotations instead
//! ([`crate::naming::AnnotationKey`]).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::{Validate, is_false, validation};

/// Spec of a [`QoSPolicy`].
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "QoSPolicy",
    plural = "qos-policies",
    singular = "qos-policy",
    shortname = "qos",
    status = "QoSPolicyStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Shared","type":"string","jsonPath":".spec.shared"}"#,
    printcolumn = r#"{"name":"BindingType","type":"string","jsonPath":".spec.bindingType"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct QoSPolicySpec {
    /// The limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bandwidth_limit_rules: Vec<QoSPolicyBandwidthLimitRule>,
    /// Whether several objects may bind this policy.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared: bool,
    /// `EIP` or `NATGW`.
    pub binding_type: QoSBindingType,
}

/// What a QoS policy binds to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum QoSBindingType {
    /// An `IptablesEIP`.
    #[default]
    #[serde(rename = "EIP")]
    Eip,
    /// A `VpcNatGateway`.
    #[serde(rename = "NATGW")]
    NatGw,
}

/// Direction of a bandwidth limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QoSDirection {
    /// Into the bound object.
    #[default]
    Ingress,
    /// Out of it.
    Egress,
}

/// One bandwidth limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QoSPolicyBandwidthLimitRule {
    /// Rule name, unique in the policy.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Interface the limit applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Rate limit in Mbit/s (string, as upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_max: Option<String>,
    /// Burst in Mbit (string, as upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_max: Option<String>,
    /// Priority among rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,
    /// `ingress` or `egress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<QoSDirection>,
    /// `ip` to limit one address's traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    /// The address for `matchType: ip` (CIDR form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_value: Option<String>,
}

/// Observed state of a [`QoSPolicy`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QoSPolicyStatus {
    /// Conditions (`Ready`, `Validated`, `Error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Rules in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bandwidth_limit_rules: Vec<QoSPolicyBandwidthLimitRule>,
    /// `shared` in effect.
    #[serde(default)]
    pub shared: bool,
    /// Binding in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_type: Option<QoSBindingType>,
}

fn rate(field: String, value: &str) -> Result<()> {
    match value.parse::<u64>() {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::invalid(
            field,
            value,
            "must be a whole number of Mbit/s",
        )),
    }
}

impl Validate for QoSPolicySpec {
    fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.bandwidth_limit_rules.iter().enumerate() {
            let f = format!("spec.bandwidthLimitRules[{i}]");
            if r.name.is_empty() {
                return Err(Error::missing(format!("{f}.name")));
            }
            if !names.insert(r.name.as_str()) {
                return Err(Error::invalid(
                    format!("{f}.name"),
                    r.name.as_str(),
                    "duplicate name",
                ));
            }
            if let Some(v) = &r.rate_max {
                rate(format!("{f}.rateMax"), v)?;
            }
            if let Some(v) = &r.burst_max {
                rate(format!("{f}.burstMax"), v)?;
            }
            if let Some(v) = &r.match_value {
                let field = format!("{f}.matchValue");
                if v.contains('/') {
                    validation::cidr(&field, v)?;
                } else {
                    validation::ip(&field, v)?;
                }
            }
        }
        Ok(())
    }
}

impl Validate for QoSPolicy {
    fn validate(&self) -> Result<()> {
        crate::validate_object("QoSPolicy", &self.metadata, &self.spec)
    }
}
