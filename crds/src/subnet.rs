//! `Subnet` (`subnets.kubeovn.io`): an address range in a VPC, realised as one OVN
//! `Logical_Switch` named after the subnet, attached to the VPC router by the port pair
//! `<vpc>-<subnet>` / `<subnet>-<vpc>`.
//!
//! # `cidr` and `cidrBlock`
//! Upstream Kube-OVN names the range `spec.cidrBlock`; the user manual (and so many users)
//! write `spec.cidr`. Both are real fields of the schema, so the apiserver keeps whichever was
//! written (it would prune an unknown field, and `kubectl apply` would warn about it). Exactly
//! one is needed; if both are set they must be equal (a CEL rule says so at admission,
//! [`Validate::validate`] says so again). Code reads the range only through
//! [`SubnetSpec::cidr_block`]. The controller reports the effective range in
//! `status.cidrBlock`, which is what the `CIDR` printer column shows, so `kubectl get subnet` is
//! right for both spellings.

use std::net::IpAddr;

use ipnet::IpNet;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::{Validate, is_false, naming, validation};

/// Spec of a [`Subnet`].
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "Subnet",
    plural = "subnets",
    singular = "subnet",
    shortname = "subnet",
    status = "SubnetStatus",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Vpc","type":"string","jsonPath":".spec.vpc"}"#,
    printcolumn = r#"{"name":"Vlan","type":"string","jsonPath":".spec.vlan"}"#,
    printcolumn = r#"{"name":"Protocol","type":"string","jsonPath":".spec.protocol"}"#,
    printcolumn = r#"{"name":"CIDR","type":"string","jsonPath":".status.cidrBlock"}"#,
    printcolumn = r#"{"name":"Private","type":"boolean","jsonPath":".spec.private"}"#,
    printcolumn = r#"{"name":"NAT","type":"boolean","jsonPath":".spec.natOutgoing"}"#,
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"GatewayType","type":"string","jsonPath":".spec.gatewayType"}"#,
    printcolumn = r#"{"name":"V4Used","type":"number","jsonPath":".status.v4usingIPs"}"#,
    printcolumn = r#"{"name":"V4Available","type":"number","jsonPath":".status.v4availableIPs"}"#,
    printcolumn = r#"{"name":"V6Used","type":"number","jsonPath":".status.v6usingIPs"}"#,
    printcolumn = r#"{"name":"V6Available","type":"number","jsonPath":".status.v6availableIPs"}"#,
    printcolumn = r#"{"name":"ExcludeIPs","type":"string","jsonPath":".spec.excludeIps"}"#,
    printcolumn = r#"{"name":"U2OInterconnectionIP","type":"string","jsonPath":".status.u2oInterconnectionIP"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.cidrBlock) || has(self.cidr)",
     "message": "spec.cidrBlock is required (spec.cidr is accepted as an alias)"},
    {"rule": "!has(self.cidrBlock) || !has(self.cidr) || self.cidrBlock == self.cidr",
     "message": "spec.cidr is an alias of spec.cidrBlock: set one of them, or both to the same value"},
    {"rule": "!has(self.gateway) || !(has(self.cidrBlock) || has(self.cidr)) || (has(self.cidrBlock) ? self.cidrBlock : self.cidr).contains(',') || self.gateway.contains(',') || !isCIDR(has(self.cidrBlock) ? self.cidrBlock : self.cidr) || !isIP(self.gateway) || cidr(has(self.cidrBlock) ? self.cidrBlock : self.cidr).containsIP(self.gateway)",
     "message": "spec.gateway must be inside the subnet's CIDR"},
    {"rule": "(has(self.cidrBlock) ? self.cidrBlock : (has(self.cidr) ? self.cidr : '')) == (has(oldSelf.cidrBlock) ? oldSelf.cidrBlock : (has(oldSelf.cidr) ? oldSelf.cidr : ''))",
     "message": "the subnet's range (spec.cidrBlock / spec.cidr) is immutable: create a new Subnet"},
    {"rule": "(has(self.vpc) ? self.vpc : '') == (has(oldSelf.vpc) ? oldSelf.vpc : '')",
     "message": "spec.vpc is immutable: create a new Subnet"}
]))]
pub struct SubnetSpec {
    /// Whether this is the cluster's default subnet (never, in attached mode).
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    /// VPC the subnet belongs to. Immutable after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<String>,
    /// `IPv4`, `IPv6` or `Dual`; derived from the CIDR when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Namespaces admitted to this subnet: when set, only pods (and NADs) of these namespaces
    /// may attach to it (and its Vpc's `namespaces` apply too). Empty admits every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
    /// The range: one CIDR, or `<IPv4 CIDR>,<IPv6 CIDR>`. Immutable after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.split(',').all(c, isCIDR(c))",
         "message": "must be a CIDR, or an IPv4 and an IPv6 CIDR separated by a comma"}
    ]))]
    pub cidr_block: Option<String>,
    /// Alias of `cidrBlock` (the spelling of the user manual); see the module docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.split(',').all(c, isCIDR(c))",
         "message": "must be a CIDR, or an IPv4 and an IPv6 CIDR separated by a comma"}
    ]))]
    pub cidr: Option<String>,
    /// Gateway address(es); defaults to the first address of each CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.split(',').all(g, isIP(g))",
         "message": "must be an IP address, or an IPv4 and an IPv6 address separated by a comma"}
    ]))]
    pub gateway: Option<String>,
    /// Addresses (`a.b.c.d`) or ranges (`first..last`) never handed out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_ips: Vec<String>,
    /// Provider this subnet serves: `<nad>.<ns>.ovn` for attachments, `<nad>.<ns>` for
    /// IPAM-only NADs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub provider: Option<String>,
    /// `distributed` or `centralized`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_type: Option<GatewayType>,
    /// Gateway node(s) for `centralized`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_node: Option<String>,
    /// Selectors choosing gateway nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_node_selectors: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// Masquerade traffic leaving the VPC.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nat_outgoing: bool,
    /// External egress gateway address(es).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_egress_gateway: Option<String>,
    /// Policy routing priority for the external egress gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_routing_priority: Option<u32>,
    /// Policy routing table for the external egress gateway.
    #[serde(
        rename = "policyRoutingTableID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub policy_routing_table_id: Option<u32>,
    /// MTU of pod interfaces on this subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<u32>,
    /// Only `allowSubnets` may reach this subnet.
    #[serde(default, skip_serializing_if = "is_false")]
    pub private: bool,
    /// CIDRs allowed to reach a private subnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_subnets: Vec<String>,
    /// VLAN (underlay) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<String>,
    /// Virtual IPs reserved in this subnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<String>,
    /// Gateway is a logical router port instead of the underlay gateway.
    #[serde(default, skip_serializing_if = "is_false")]
    pub logical_gateway: bool,
    /// Skip the gateway reachability check of pods.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_gateway_check: bool,
    /// Keep this subnet out of cluster interconnection.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable_inter_connection: bool,
    /// Serve DHCP on this subnet.
    #[serde(rename = "enableDHCP", default, skip_serializing_if = "is_false")]
    pub enable_dhcp: bool,
    /// DHCPv4 options UUID.
    #[serde(
        rename = "dhcpV4Options",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dhcp_v4_options: Option<String>,
    /// DHCPv6 options UUID.
    #[serde(
        rename = "dhcpV6Options",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dhcp_v6_options: Option<String>,
    /// Send IPv6 router advertisements.
    #[serde(rename = "enableIPv6RA", default, skip_serializing_if = "is_false")]
    pub enable_ipv6_ra: bool,
    /// IPv6 RA options.
    #[serde(
        rename = "ipv6RAConfigs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_ra_configs: Option<String>,
    /// ACLs on the subnet's switch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub acls: Vec<Acl>,
    /// Allow east-west traffic across subnets.
    #[serde(rename = "allowEWTraffic", default, skip_serializing_if = "is_false")]
    pub allow_ew_traffic: bool,
    /// Underlay-to-overlay interconnection.
    #[serde(
        rename = "u2oInterconnection",
        default,
        skip_serializing_if = "is_false"
    )]
    pub u2o_interconnection: bool,
    /// Underlay-to-overlay interconnection address.
    #[serde(
        rename = "u2oInterconnectionIP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub u2o_interconnection_ip: Option<String>,
    /// Load balancers on this subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_lb: Option<bool>,
    /// ECMP for centralized gateways.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_ecmp: bool,
    /// Multicast snooping.
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_multicast_snoop: bool,
    /// Route table of the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<String>,
    /// Namespace selectors bound to this subnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    /// Underlay node network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_network: Option<String>,
    /// Whether a pod may switch anti-spoofing off for its own attachment on this subnet with
    /// `<provider>.kubernetes.io/port_security: "false"`. Off by default: port security pins
    /// every port to its MAC and addresses, and a pod's creator cannot lift that for itself
    /// unless whoever manages the Subnet allows it here (not an upstream Kube-OVN field).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_disable_port_security: bool,
}

/// IP families of a subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    /// IPv4 only.
    IPv4,
    /// IPv6 only.
    IPv6,
    /// IPv4 and IPv6.
    Dual,
}

/// Gateway placement of a subnet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayType {
    /// Every node is a gateway.
    #[default]
    Distributed,
    /// Named gateway nodes.
    Centralized,
}

/// The directions of [`Acl::direction`]: OVN's, seen from the switch.
pub const ACL_DIRECTIONS: [&str; 2] = ["from-lport", "to-lport"];
/// The actions of [`Acl::action`] (OVN's, without `pass`: no tiers to pass to here).
pub const ACL_ACTIONS: [&str; 5] = [
    "allow-related",
    "allow-stateless",
    "allow",
    "drop",
    "reject",
];

/// An ACL on a subnet's switch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Acl {
    /// `from-lport` or `to-lport`.
    #[schemars(extend("enum" = ["from-lport", "to-lport"]))]
    pub direction: String,
    /// Priority, 0..=32767.
    #[schemars(range(min = 0, max = 32767))]
    pub priority: i32,
    /// OVN match expression.
    #[serde(rename = "match")]
    pub match_: String,
    /// `allow-related`, `allow-stateless`, `allow`, `drop` or `reject`.
    #[schemars(extend("enum" = ["allow-related", "allow-stateless", "allow", "drop", "reject"]))]
    pub action: String,
}

/// Observed state of a [`Subnet`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetStatus {
    /// Conditions (`Ready`, `Validated`, `Error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The effective range (`spec.cidrBlock` or its alias `spec.cidr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_block: Option<String>,
    /// IPv4 addresses still free.
    #[serde(rename = "v4availableIPs", default)]
    pub v4_available_ips: f64,
    /// IPv4 free ranges, e.g. `10.0.0.2-10.0.0.254`.
    #[serde(
        rename = "v4availableIPrange",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub v4_available_ip_range: String,
    /// IPv4 addresses in use.
    #[serde(rename = "v4usingIPs", default)]
    pub v4_using_ips: f64,
    /// IPv4 ranges in use.
    #[serde(
        rename = "v4usingIPrange",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub v4_using_ip_range: String,
    /// IPv6 addresses still free (approximate above 2^53).
    #[serde(rename = "v6availableIPs", default)]
    pub v6_available_ips: f64,
    /// IPv6 free ranges.
    #[serde(
        rename = "v6availableIPrange",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub v6_available_ip_range: String,
    /// IPv6 addresses in use.
    #[serde(rename = "v6usingIPs", default)]
    pub v6_using_ips: f64,
    /// IPv6 ranges in use.
    #[serde(
        rename = "v6usingIPrange",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub v6_using_ip_range: String,
    /// Active gateway node of a centralized subnet.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub activate_gateway: String,
    /// DHCPv4 options row.
    #[serde(
        rename = "dhcpV4OptionsUUID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub dhcp_v4_options_uuid: String,
    /// DHCPv6 options row.
    #[serde(
        rename = "dhcpV6OptionsUUID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub dhcp_v6_options_uuid: String,
    /// Underlay-to-overlay interconnection address in use.
    #[serde(
        rename = "u2oInterconnectionIP",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub u2o_interconnection_ip: String,
}

impl SubnetSpec {
    /// The range as written: `cidrBlock`, else its alias `cidr`.
    pub fn cidr_block(&self) -> Option<&str> {
        self.cidr_block.as_deref().or(self.cidr.as_deref())
    }

    /// The networks of the range (host bits cleared), IPv4 first as written.
    pub fn networks(&self) -> Result<Vec<IpNet>> {
        let field = self.cidr_field();
        let value = self.cidr_block().ok_or_else(|| self.missing_cidr())?;
        validation::cidr_list(field, value)
    }

    /// The families of the range.
    pub fn effective_protocol(&self) -> Result<Protocol> {
        Ok(protocol_of(&self.networks()?))
    }

    /// The gateway of each network, in the order of [`SubnetSpec::networks`]: the written
    /// `gateway`, else the first address after the network address.
    pub fn gateways(&self) -> Result<Vec<IpAddr>> {
        let nets = self.networks()?;
        match &self.gateway {
            Some(g) => {
                let written = validation::ip_list("spec.gateway", g)?;
                nets.iter()
                    .map(|net| {
                        written
                            .iter()
                            .copied()
                            .find(|ip| net.contains(ip))
                            .ok_or_else(|| {
                                Error::invalid(
                                    "spec.gateway",
                                    g.as_str(),
                                    format!("no gateway inside {net}"),
                                )
                            })
                    })
                    .collect()
            }
            None => nets
                .iter()
                .map(|net| {
                    first_after_network(net).ok_or_else(|| {
                        Error::invalid(
                            self.cidr_field(),
                            net.to_string(),
                            "too small to hold a gateway",
                        )
                    })
                })
                .collect(),
        }
    }

    fn cidr_field(&self) -> &'static str {
        if self.cidr_block.is_some() || self.cidr.is_none() {
            "spec.cidrBlock"
        } else {
            "spec.cidr"
        }
    }

    fn missing_cidr(&self) -> Error {
        Error::MissingField {
            field: "spec.cidrBlock".into(),
            hint: " (spec.cidr is accepted as an alias)".into(),
        }
    }
}

/// The address right after the network address, if the network has room for it (upstream's
/// default gateway).
fn first_after_network(net: &IpNet) -> Option<IpAddr> {
    let candidate = match net {
        IpNet::V4(n) => IpAddr::from(u32::from(n.network()).checked_add(1)?.to_be_bytes()),
        IpNet::V6(n) => IpAddr::from(u128::from(n.network()).checked_add(1)?.to_be_bytes()),
    };
    (net.prefix_len() < net.max_prefix_len() && net.contains(&candidate)).then_some(candidate)
}

fn protocol_of(nets: &[IpNet]) -> Protocol {
    match nets {
        [_, _] => Protocol::Dual,
        [n] if validation::is_v4(n) => Protocol::IPv4,
        _ => Protocol::IPv6,
    }
}

impl Validate for SubnetSpec {
    fn validate(&self) -> Result<()> {
        if let (Some(block), Some(alias)) = (&self.cidr_block, &self.cidr)
            && block != alias
        {
            return Err(Error::invalid(
                "spec.cidr",
                alias.as_str(),
                format!(
                    "spec.cidr is an alias of spec.cidrBlock ({block:?}): set one of them, or both \
                     to the same value"
                ),
            ));
        }
        let nets = self.networks()?;
        if let Some(p) = self.protocol
            && p != protocol_of(&nets)
        {
            return Err(Error::invalid(
                "spec.protocol",
                format!("{p:?}"),
                format!(
                    "does not match the CIDR {:?}",
                    self.cidr_block().unwrap_or_default()
                ),
            ));
        }
        if let Some(g) = &self.gateway {
            let written = validation::ip_list("spec.gateway", g)?;
            if written.len() != nets.len() {
                return Err(Error::invalid(
                    "spec.gateway",
                    g.as_str(),
                    format!("needs one gateway per CIDR ({})", nets.len()),
                ));
            }
            for ip in &written {
                if !nets.iter().any(|n| n.contains(ip)) {
                    return Err(Error::invalid(
                        "spec.gateway",
                        g.as_str(),
                        format!(
                            "{ip} is not inside the subnet's CIDR {:?}",
                            self.cidr_block().unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        self.gateways()?;
        for (i, x) in self.exclude_ips.iter().enumerate() {
            let field = format!("spec.excludeIps[{i}]");
            let (first, last) = validation::ip_or_range(&field, x)?;
            if !nets.iter().any(|n| n.contains(&first) && n.contains(&last)) {
                return Err(Error::invalid(
                    field,
                    x.as_str(),
                    "not inside the subnet's CIDR",
                ));
            }
        }
        if let Some(vpc) = &self.vpc {
            validation::dns1123_subdomain("spec.vpc", vpc)?;
        }
        if let Some(p) = &self.provider {
            naming::validate_provider("spec.provider", p)?;
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            validation::dns1123_label(&format!("spec.namespaces[{i}]"), ns)?;
        }
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(Error::invalid(
                "spec.mtu",
                mtu.to_string(),
                "must be between 68 and 65535",
            ));
        }
        for (i, c) in self.allow_subnets.iter().enumerate() {
            validation::cidr(&format!("spec.allowSubnets[{i}]"), c)?;
        }
        for (i, v) in self.vips.iter().enumerate() {
            validation::ip(&format!("spec.vips[{i}]"), v)?;
        }
        for (i, a) in self.acls.iter().enumerate() {
            if !(0..=32767).contains(&a.priority) {
                return Err(Error::invalid(
                    format!("spec.acls[{i}].priority"),
                    a.priority.to_string(),
                    "must be between 0 and 32767",
                ));
            }
            if !ACL_DIRECTIONS.contains(&a.direction.as_str()) {
                return Err(Error::invalid(
                    format!("spec.acls[{i}].direction"),
                    a.direction.as_str(),
                    "must be from-lport or to-lport",
                ));
            }
            if !ACL_ACTIONS.contains(&a.action.as_str()) {
                return Err(Error::invalid(
                    format!("spec.acls[{i}].action"),
                    a.action.as_str(),
                    format!("must be one of {}", ACL_ACTIONS.join(", ")),
                ));
            }
            crate::acl_match::check(&a.match_).map_err(|reason| {
                Error::invalid(format!("spec.acls[{i}].match"), a.match_.as_str(), reason)
            })?;
        }
        if let Some(ip) = &self.u2o_interconnection_ip {
            validation::ip_list("spec.u2oInterconnectionIP", ip)?;
        }
        Ok(())
    }
}

impl Validate for Subnet {
    fn validate(&self) -> Result<()> {
        crate::validate_object("Subnet", &self.metadata, &self.spec)
    }
}

#[cfg(test)]
impl Subnet {
    /// A subnet fixture: `name` with range `cidr` and nothing else.
    pub fn test(name: &str, cidr: &str) -> Self {
        let mut s = Self::new(
            name,
            SubnetSpec {
                cidr_block: Some(cidr.into()),
                ..Default::default()
            },
        );
        s.metadata.name = Some(name.into());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_defaults_to_first_host() {
        let s = Subnet::test("s1", "10.0.0.0/24,fd00::/120");
        assert_eq!(s.spec.effective_protocol().unwrap(), Protocol::Dual);
        let gws: Vec<String> = s
            .spec
            .gateways()
            .unwrap()
            .iter()
            .map(|g| g.to_string())
            .collect();
        assert_eq!(gws, ["10.0.0.1", "fd00::1"]);
        s.validate().unwrap();
    }

    #[test]
    fn acls_are_checked_field_by_field() {
        let mut s = Subnet::test("s1", "10.0.0.0/24");
        let good = Acl {
            direction: "to-lport".into(),
            priority: 1010,
            match_: "ip4.src == 10.1.0.0/24 && icmp4".into(),
            action: "drop".into(),
        };
        s.spec.acls = vec![good.clone()];
        s.validate().unwrap();
        let cases = [
            (
                Acl {
                    direction: "ingress".into(),
                    ..good.clone()
                },
                "spec.acls[1].direction",
            ),
            (
                Acl {
                    action: "pass".into(),
                    ..good.clone()
                },
                "spec.acls[1].action",
            ),
            (
                Acl {
                    priority: 40000,
                    ..good.clone()
                },
                "spec.acls[1].priority",
            ),
            (
                Acl {
                    match_: "ip4.src == ".into(),
                    ..good.clone()
                },
                "spec.acls[1].match \"ip4.src == \": expected a value",
            ),
        ];
        for (bad, want) in cases {
            s.spec.acls = vec![good.clone(), bad];
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn gateway_outside_cidr_is_named() {
        let mut s = Subnet::test("s1", "10.100.0.0/16");
        s.spec.gateway = Some("10.200.0.1".into());
        let e = s.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "Subnet s1: spec.gateway \"10.200.0.1\": 10.200.0.1 is not inside the subnet's CIDR \
             \"10.100.0.0/16\""
        );
    }

    #[test]
    fn alias_and_block_must_agree() {
        let mut s = Subnet::test("s1", "10.100.0.0/16");
        s.spec.cidr = Some("10.101.0.0/16".into());
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("spec.cidr is an alias")
        );
        s.spec.cidr_block = None;
        s.validate().unwrap();
        assert_eq!(s.spec.cidr_block(), Some("10.101.0.0/16"));
        s.spec.cidr = None;
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "Subnet s1: spec.cidrBlock is required (spec.cidr is accepted as an alias)"
        );
    }

    #[test]
    fn protocol_and_exclude_ips() {
        let mut s = Subnet::test("s1", "10.0.0.0/24");
        s.spec.protocol = Some(Protocol::IPv6);
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("spec.protocol")
        );
        s.spec.protocol = Some(Protocol::IPv4);
        s.spec.exclude_ips = vec!["10.0.0.1..10.0.0.10".into(), "10.0.1.1".into()];
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("spec.excludeIps[1]")
        );
    }
}
