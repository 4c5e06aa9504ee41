//! The NAT rules a [`crate::VpcNatGateway`] enforces with iptables: `IptablesEIP` (an external
//! address on the gateway), and the `IptablesFIPRule`, `IptablesSnatRule` and
//! `IptablesDnatRule` that use one.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::{Validate, is_false, validation};

/// Spec of an [`IptablesEIP`].
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "IptablesEIP",
    plural = "iptables-eips",
    singular = "iptables-eip",
    shortname = "eip",
    status = "IptablesEIPStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".status.ip"}"#,
    printcolumn = r#"{"name":"Mac","type":"string","jsonPath":".spec.macAddress"}"#,
    printcolumn = r#"{"name":"Nat","type":"string","jsonPath":".status.nat"}"#,
    printcolumn = r#"{"name":"NatGwDp","type":"string","jsonPath":".spec.natGwDp"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IptablesEIPSpec {
    /// IPv4 address; allocated from `externalSubnet` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub v4ip: String,
    /// IPv6 address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub v6ip: String,
    /// MAC address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    /// The `VpcNatGateway` holding the address.
    #[schemars(length(min = 1))]
    pub nat_gw_dp: String,
    /// QoSPolicy applied to the address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub qos_policy: String,
    /// External subnet the address comes from. Immutable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external_subnet: String,
}

/// Observed state of an [`IptablesEIP`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IptablesEIPStatus {
    /// Conditions (`Ready`, `Validated`, `Error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Whether the address is configured on the gateway.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ready: bool,
    /// The address in use.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// Which NAT kinds use it (`fip`, `snat`, `dnat`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nat: String,
    /// Redo marker.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub redo: String,
    /// QoSPolicy in effect.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub qos_policy: String,
}

/// Status of the three NAT rule kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IptablesRuleStatus {
    /// Conditions (`Ready`, `Validated`, `Error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Whether the rule is in place.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ready: bool,
    /// IPv4 address of the EIP.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub v4ip: String,
    /// IPv6 address of the EIP.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub v6ip: String,
    /// The gateway enforcing the rule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nat_gw_dp: String,
    /// Redo marker.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub redo: String,
    /// Internal address in effect (FIP, DNAT).
    #[serde(
        rename = "internalIp",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub internal_ip: String,
    /// Internal CIDR in effect (SNAT).
    #[serde(
        rename = "internalCIDR",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub internal_cidr: String,
    /// Protocol in effect (DNAT).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Internal port in effect (DNAT).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub internal_port: String,
    /// External port in effect (DNAT).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external_port: String,
}

/// Spec of an [`IptablesFIPRule`]: one-to-one NAT between an EIP and an internal address.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "IptablesFIPRule",
    plural = "iptables-fip-rules",
    singular = "iptables-fip-rule",
    shortname = "fip",
    status = "IptablesRuleStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Eip","type":"string","jsonPath":".spec.eip"}"#,
    printcolumn = r#"{"name":"V4ip","type":"string","jsonPath":".status.v4ip"}"#,
    printcolumn = r#"{"name":"InternalIp","type":"string","jsonPath":".spec.internalIp"}"#,
    printcolumn = r#"{"name":"V6ip","type":"string","jsonPath":".status.v6ip"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#,
    printcolumn = r#"{"name":"NatGwDp","type":"string","jsonPath":".status.natGwDp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IptablesFIPRuleSpec {
    /// The `IptablesEIP`.
    #[schemars(length(min = 1))]
    pub eip: String,
    /// Internal address.
    #[serde(rename = "internalIp")]
    #[schemars(length(min = 1))]
    pub internal_ip: String,
}

/// Spec of an [`IptablesSnatRule`]: masquerade an internal CIDR behind an EIP.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "IptablesSnatRule",
    plural = "iptables-snat-rules",
    singular = "iptables-snat-rule",
    shortname = "snat",
    status = "IptablesRuleStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"EIP","type":"string","jsonPath":".spec.eip"}"#,
    printcolumn = r#"{"name":"V4ip","type":"string","jsonPath":".status.v4ip"}"#,
    printcolumn = r#"{"name":"V6ip","type":"string","jsonPath":".status.v6ip"}"#,
    printcolumn = r#"{"name":"InternalCIDR","type":"string","jsonPath":".spec.internalCIDR"}"#,
    printcolumn = r#"{"name":"NatGwDp","type":"string","jsonPath":".status.natGwDp"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#
)]
pub struct IptablesSnatRuleSpec {
    /// The `IptablesEIP`.
    #[schemars(length(min = 1))]
    pub eip: String,
    /// Internal network (or single address).
    #[serde(rename = "internalCIDR")]
    #[schemars(length(min = 1))]
    pub internal_cidr: String,
}

/// Transport protocol of a DNAT rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NatProtocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// Spec of an [`IptablesDnatRule`]: forward an EIP port to an internal address and port.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "IptablesDnatRule",
    plural = "iptables-dnat-rules",
    singular = "iptables-dnat-rule",
    shortname = "dnat",
    status = "IptablesRuleStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Eip","type":"string","jsonPath":".spec.eip"}"#,
    printcolumn = r#"{"name":"Protocol","type":"string","jsonPath":".spec.protocol"}"#,
    printcolumn = r#"{"name":"V4ip","type":"string","jsonPath":".status.v4ip"}"#,
    printcolumn = r#"{"name":"V6ip","type":"string","jsonPath":".status.v6ip"}"#,
    printcolumn = r#"{"name":"InternalIp","type":"string","jsonPath":".spec.internalIp"}"#,
    printcolumn = r#"{"name":"ExternalPort","type":"string","jsonPath":".spec.externalPort"}"#,
    printcolumn = r#"{"name":"InternalPort","type":"string","jsonPath":".spec.internalPort"}"#,
    printcolumn = r#"{"name":"NatGwDp","type":"string","jsonPath":".status.natGwDp"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IptablesDnatRuleSpec {
    /// The `IptablesEIP`.
    #[schemars(length(min = 1))]
    pub eip: String,
    /// External port (string, as upstream).
    #[schemars(length(min = 1))]
    pub external_port: String,
    /// `tcp` or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<NatProtocol>,
    /// Internal address.
    #[serde(rename = "internalIp")]
    #[schemars(length(min = 1))]
    pub internal_ip: String,
    /// Internal port.
    #[schemars(length(min = 1))]
    pub internal_port: String,
}

fn port(field: &str, value: &str) -> Result<u16> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::invalid(
            field,
            value,
            "must be a port number between 1 and 65535",
        )),
    }
}

impl Validate for IptablesEIPSpec {
    fn validate(&self) -> Result<()> {
        validation::dns1123_subdomain("spec.natGwDp", &self.nat_gw_dp)?;
        if !self.v4ip.is_empty() && !validation::ip("spec.v4ip", &self.v4ip)?.is_ipv4() {
            return Err(Error::invalid(
                "spec.v4ip",
                self.v4ip.as_str(),
                "not an IPv4 address",
            ));
        }
        if !self.v6ip.is_empty() && !validation::ip("spec.v6ip", &self.v6ip)?.is_ipv6() {
            return Err(Error::invalid(
                "spec.v6ip",
                self.v6ip.as_str(),
                "not an IPv6 address",
            ));
        }
        if !self.mac_address.is_empty() {
            validation::mac("spec.macAddress", &self.mac_address)?;
        }
        Ok(())
    }
}

impl Validate for IptablesFIPRuleSpec {
    fn validate(&self) -> Result<()> {
        validation::dns1123_subdomain("spec.eip", &self.eip)?;
        validation::ip("spec.internalIp", &self.internal_ip).map(drop)
    }
}

impl Validate for IptablesSnatRuleSpec {
    fn validate(&self) -> Result<()> {
        validation::dns1123_subdomain("spec.eip", &self.eip)?;
        if self.internal_cidr.contains('/') {
            validation::cidr("spec.internalCIDR", &self.internal_cidr).map(drop)
        } else {
            validation::ip("spec.internalCIDR", &self.internal_cidr).map(drop)
        }
    }
}

impl Validate for IptablesDnatRuleSpec {
    fn validate(&self) -> Result<()> {
        validation::dns1123_subdomain("spec.eip", &self.eip)?;
        port("spec.externalPort", &self.external_port)?;
        port("spec.internalPort", &self.internal_port)?;
        validation::ip("spec.internalIp", &self.internal_ip).map(drop)
    }
}

impl Validate for IptablesEIP {
    fn validate(&self) -> Result<()> {
        crate::validate_object("IptablesEIP", &self.metadata, &self.spec)
    }
}

impl Validate for IptablesFIPRule {
    fn validate(&self) -> Result<()> {
        crate::validate_object("IptablesFIPRule", &self.metadata, &self.spec)
    }
}

impl Validate for IptablesSnatRule {
    fn validate(&self) -> Result<()> {
        crate::validate_object("IptablesSnatRule", &self.metadata, &self.spec)
    }
}

impl Validate for IptablesDnatRule {
    fn validate(&self) -> Result<()> {
        crate::validate_object("IptablesDnatRule", &self.metadata, &self.spec)
    }
}
