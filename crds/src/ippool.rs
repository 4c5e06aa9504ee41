//! `IPPool` (`ippools.kubeovn.io`): a named set of addresses inside a subnet that pods of the
//! listed namespaces draw from.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::{Validate, validation};

/// Spec of an [`IPPool`].
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "IPPool",
    plural = "ippools",
    singular = "ippool",
    shortname = "ippool",
    status = "IPPoolStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Subnet","type":"string","jsonPath":".spec.subnet"}"#,
    printcolumn = r#"{"name":"IPs","type":"string","jsonPath":".spec.ips"}"#,
    printcolumn = r#"{"name":"V4Used","type":"number","jsonPath":".status.v4UsingIPs"}"#,
    printcolumn = r#"{"name":"V4Available","type":"number","jsonPath":".status.v4AvailableIPs"}"#,
    printcolumn = r#"{"name":"V6Used","type":"number","jsonPath":".status.v6UsingIPs"}"#,
    printcolumn = r#"{"name":"V6Available","type":"number","jsonPath":".status.v6AvailableIPs"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// Subnet the pool lies in. Immutable.
    #[schemars(length(min = 1))]
    pub subnet: String,
    /// Namespaces that draw from the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Addresses, ranges (`first..last`) or CIDRs.
    #[schemars(length(min = 1))]
    pub ips: Vec<String>,
}

/// Observed state of an [`IPPool`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// Conditions (`Ready`, `Error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// IPv4 addresses still free.
    #[serde(rename = "v4AvailableIPs", default)]
    pub v4_available_ips: f64,
    /// IPv4 free ranges.
    #[serde(
        rename = "v4AvailableIPRange",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub v4_available_ip_range: String,
    /// IPv4 addresses in use.
    #[serde(rename = "v4UsingIPs", default)]
    pub v4_using_ips: f64,
    /// IPv4 ranges in use.
    #[serde(
        rename = "v4UsingIPRange",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub v4_using_ip_range: String,
    /// IPv6 addresses still free.
    #[serde(rename = "v6AvailableIPs", default)]
    pub v6_available_ips: f64,
    /// IPv6 free ranges.
    #[serde(
        rename = "v6AvailableIPRange",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub v6_available_ip_range: String,
    /// IPv6 addresses in use.
    #[serde(rename = "v6UsingIPs", default)]
    pub v6_using_ips: f64,
    /// IPv6 ranges in use.
    #[serde(
        rename = "v6UsingIPRange",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub v6_using_ip_range: String,
}

impl Validate for IPPoolSpec {
    fn validate(&self) -> Result<()> {
        validation::dns1123_subdomain("spec.subnet", &self.subnet)?;
        if self.ips.is_empty() {
            return Err(Error::missing("spec.ips"));
        }
        for (i, x) in self.ips.iter().enumerate() {
            let field = format!("spec.ips[{i}]");
            if x.contains('/') {
                validation::cidr(&field, x)?;
            } else {
                validation::ip_or_range(&field, x)?;
            }
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            validation::dns1123_label(&format!("spec.namespaces[{i}]"), ns)?;
        }
        Ok(())
    }
}

impl Validate for IPPool {
    fn validate(&self) -> Result<()> {
        crate::validate_object("IPPool", &self.metadata, &self.spec)
    }
}
