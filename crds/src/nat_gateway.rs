//! `VpcNatGateway` (`vpc-nat-gateways.kubeovn.io`): a NAT gateway pod with one leg in a VPC
//! subnet (`lanIp`) and one in each external subnet, giving the VPC's secondary networks
//! outside connectivity through the `Iptables*` rules.

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::error::Result;
use crate::{Validate, validation};

/// Spec of a [`VpcNatGateway`].
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "VpcNatGateway",
    plural = "vpc-nat-gateways",
    singular = "vpc-nat-gateway",
    shortname = "vpc-nat-gw",
    status = "VpcNatGatewayStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Vpc","type":"string","jsonPath":".spec.vpc"}"#,
    printcolumn = r#"{"name":"Subnet","type":"string","jsonPath":".spec.subnet"}"#,
    printcolumn = r#"{"name":"LanIP","type":"string","jsonPath":".spec.lanIp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.lanIp) || isIP(self.lanIp)", "message": "spec.lanIp must be an IP address"}
]))]
pub struct VpcNatGatewaySpec {
    /// VPC served.
    #[schemars(length(min = 1))]
    pub vpc: String,
    /// Subnet of the LAN leg.
    #[schemars(length(min = 1))]
    pub subnet: String,
    /// External networks (WAN legs): the NAD `name` in kube-system or `namespace/name`; its
    /// Subnet has the NAD's name. Only the first is used; empty: `ovn-vpc-external-network`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_subnets: Vec<String>,
    /// Address of the LAN leg inside `subnet`; the VPC routes through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub lan_ip: Option<String>,
    /// Node selector, as `key: value` strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selector: Vec<String>,
    /// Tolerations of the gateway pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity of the gateway pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// QoSPolicy applied to the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_policy: Option<String>,
    /// Extra routes inside the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<NatGatewayRoute>,
}

/// A route inside a NAT gateway.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatGatewayRoute {
    /// Destination.
    pub cidr: String,
    /// Next hop.
    #[serde(rename = "nextHopIP")]
    pub next_hop_ip: String,
}

/// Observed state of a [`VpcNatGateway`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpcNatGatewayStatus {
    /// Conditions (`Ready`, `Validated`, `Error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// QoSPolicy in effect.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub qos_policy: String,
    /// External subnets in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_subnets: Vec<String>,
    /// Selector in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selector: Vec<String>,
    /// Tolerations in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

impl Validate for VpcNatGatewaySpec {
    fn validate(&self) -> Result<()> {
        validation::dns1123_subdomain("spec.vpc", &self.vpc)?;
        validation::dns1123_subdomain("spec.subnet", &self.subnet)?;
        if let Some(ip) = &self.lan_ip {
            validation::ip("spec.lanIp", ip)?;
        }
        for (i, s) in self.external_subnets.iter().enumerate() {
            // `name` (in kube-system) or `namespace/name` of the external NAD.
            let field = format!("spec.externalSubnets[{i}]");
            match s.split_once('/') {
                Some((ns, name)) => {
                    validation::dns1123_subdomain(&field, ns)?;
                    validation::dns1123_subdomain(&field, name)?;
                }
                None => validation::dns1123_subdomain(&field, s)?,
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            validation::cidr(&format!("spec.routes[{i}].cidr"), &r.cidr)?;
            validation::ip(&format!("spec.routes[{i}].nextHopIP"), &r.next_hop_ip)?;
        }
        Ok(())
    }
}

impl Validate for VpcNatGateway {
    fn validate(&self) -> Result<()> {
        crate::validate_object("VpcNatGateway", &self.metadata, &self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_subnets_are_a_name_or_namespace_and_name() {
        let spec = |ext: &str| VpcNatGatewaySpec {
            vpc: "v".into(),
            subnet: "s".into(),
            external_subnets: vec![ext.into()],
            ..Default::default()
        };
        for ok in ["ovn-vpc-external-network", "net/ext"] {
            assert!(spec(ok).validate().is_ok(), "{ok}");
        }
        for bad in ["Net/ext", "net/", "/ext", "a/b/c", "UPPER"] {
            let err = spec(bad).validate().unwrap_err().to_string();
            assert!(err.contains("spec.externalSubnets[0]"), "{bad}: {err}");
        }
    }
}
