//! `Vpc` (`vpcs.kubeovn.io`): an isolated routing domain, realised as one OVN `Logical_Router`
//! named after the VPC.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::{Validate, is_false, validation};

/// Spec of a [`Vpc`].
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "Vpc",
    plural = "vpcs",
    singular = "vpc",
    shortname = "vpc",
    status = "VpcStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"EnableExternal","type":"boolean","jsonPath":".status.enableExternal"}"#,
    printcolumn = r#"{"name":"EnableBfd","type":"boolean","jsonPath":".status.enableBfd"}"#,
    printcolumn = r#"{"name":"Standby","type":"boolean","jsonPath":".status.standby"}"#,
    printcolumn = r#"{"name":"Subnets","type":"string","jsonPath":".status.subnets"}"#,
    printcolumn = r#"{"name":"ExtraExternalSubnets","type":"string","jsonPath":".status.extraExternalSubnets"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#,
    printcolumn = r#"{"name":"DefaultSubnet","type":"string","jsonPath":".status.defaultLogicalSwitch"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VpcSpec {
    /// Subnet used by pods of `namespaces` that do not choose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_subnet: Option<String>,
    /// Namespaces whose pods (and NADs) may attach to this VPC's subnets; empty admits every
    /// namespace. A Subnet's own `namespaces` apply as well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
    /// Static routes on the VPC's router.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub static_routes: Vec<StaticRoute>,
    /// Policy routes on the VPC's router.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub policy_routes: Vec<PolicyRoute>,
    /// Peerings with other VPCs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpc_peerings: Vec<VpcPeering>,
    /// Connect the VPC to the default external subnet.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_external: bool,
    /// Further external (provider-network VLAN) subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_external_subnets: Vec<String>,
    /// Enable BFD on the external gateway.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_bfd: bool,
    /// BFD logical router port settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_port: Option<BfdPort>,
}

/// How a static route matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RoutePolicy {
    /// Match on the source address.
    #[serde(rename = "policySrc")]
    PolicySrc,
    /// Match on the destination address (the default).
    #[default]
    #[serde(rename = "policyDst")]
    PolicyDst,
}

/// A static route of a VPC router.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "isCIDR(self.cidr)", "message": "cidr must be a CIDR"},
    {"rule": "isIP(self.nextHopIP)", "message": "nextHopIP must be an IP address"}
]))]
pub struct StaticRoute {
    /// Source or destination match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RoutePolicy>,
    /// Network the route matches.
    #[schemars(length(max = 64))]
    pub cidr: String,
    /// Next hop.
    #[serde(rename = "nextHopIP")]
    #[schemars(length(max = 64))]
    pub next_hop_ip: String,
    /// ECMP mode (`ecmp` or `ecmpSymmetricReply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecmp_mode: Option<String>,
    /// BFD session to bind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_id: Option<String>,
    /// Route table name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<String>,
}

/// What a policy route does with matching packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyRouteAction {
    /// Forward normally.
    #[default]
    Allow,
    /// Drop.
    Drop,
    /// Send to `nextHopIP`.
    Reroute,
}

/// A policy route (`Logical_Router_Policy`) of a VPC router.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.action != 'reroute' || (has(self.nextHopIP) && self.nextHopIP != '')",
     "message": "nextHopIP is required when action is reroute"}
]))]
pub struct PolicyRoute {
    /// Priority, 0..=32767 (higher first).
    #[schemars(range(min = 0, max = 32767))]
    pub priority: i32,
    /// OVN match expression.
    #[serde(rename = "match")]
    #[schemars(length(min = 1))]
    pub match_: String,
    /// Action on match.
    pub action: PolicyRouteAction,
    /// Next hop(s) for `reroute`, comma-separated.
    #[serde(rename = "nextHopIP", default, skip_serializing_if = "Option::is_none")]
    pub next_hop_ip: Option<String>,
}

/// A peering with another VPC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpcPeering {
    /// The other VPC.
    pub remote_vpc: String,
    /// Address (CIDR form) of the local end of the peering link.
    #[serde(rename = "localConnectIP")]
    pub local_connect_ip: String,
}

/// BFD logical router port settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BfdPort {
    /// Whether the port exists.
    #[serde(default)]
    pub enabled: bool,
    /// Its address(es).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Nodes that may host it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// Observed state of a [`Vpc`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VpcStatus {
    /// Conditions (`Ready`, `Validated`, `Error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Whether the router exists in OVN.
    #[serde(default)]
    pub standby: bool,
    /// Whether this is the default VPC (never, in attached mode).
    #[serde(default)]
    pub default: bool,
    /// The default subnet in use.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_logical_switch: String,
    /// The `Logical_Router` name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub router: String,
    /// Subnets attached to this VPC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// Peerings in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpc_peerings: Vec<String>,
    /// External connectivity in effect.
    #[serde(default)]
    pub enable_external: bool,
    /// Extra external subnets in effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_external_subnets: Vec<String>,
    /// BFD in effect.
    #[serde(default)]
    pub enable_bfd: bool,
}

impl Validate for VpcSpec {
    fn validate(&self) -> Result<()> {
        if let Some(s) = &self.default_subnet {
            validation::dns1123_subdomain("spec.defaultSubnet", s)?;
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            validation::dns1123_label(&format!("spec.namespaces[{i}]"), ns)?;
        }
        for (i, r) in self.static_routes.iter().enumerate() {
            validation::cidr(&format!("spec.staticRoutes[{i}].cidr"), &r.cidr)?;
            validation::ip_list(&format!("spec.staticRoutes[{i}].nextHopIP"), &r.next_hop_ip)?;
        }
        for (i, r) in self.policy_routes.iter().enumerate() {
            if !(0..=32767).contains(&r.priority) {
                return Err(Error::invalid(
                    format!("spec.policyRoutes[{i}].priority"),
                    r.priority.to_string(),
                    "must be between 0 and 32767",
                ));
            }
            if r.match_.trim().is_empty() {
                return Err(Error::missing(format!("spec.policyRoutes[{i}].match")));
            }
            match (&r.action, &r.next_hop_ip) {
                (PolicyRouteAction::Reroute, None) => {
                    return Err(Error::MissingField {
                        field: format!("spec.policyRoutes[{i}].nextHopIP"),
                        hint: " when action is reroute".into(),
                    });
                }
                (_, Some(hop)) => {
                    validation::ip_list(&format!("spec.policyRoutes[{i}].nextHopIP"), hop)?;
                }
                _ => {}
            }
        }
        for (i, p) in self.vpc_peerings.iter().enumerate() {
            validation::dns1123_subdomain(
                &format!("spec.vpcPeerings[{i}].remoteVpc"),
                &p.remote_vpc,
            )?;
            validation::cidr(
                &format!("spec.vpcPeerings[{i}].localConnectIP"),
                &p.local_connect_ip,
            )?;
        }
        Ok(())
    }
}

impl Validate for Vpc {
    fn validate(&self) -> Result<()> {
        crate::validate_object("Vpc", &self.metadata, &self.spec)
    }
}
