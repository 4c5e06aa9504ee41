//! `SecurityGroup` (`security-groups.kubeovn.io`): ingress and egress rules applied to the
//! ports that name the group in their `<provider>.kubernetes.io/security_groups` annotation,
//! realised as the OVN `Port_Group` `ovn.sg.<name>` ([`crate::naming::port_group`]) and its ACLs.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::{Validate, is_false, validation};

/// Spec of a [`SecurityGroup`].
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "SecurityGroup",
    plural = "security-groups",
    singular = "security-group",
    shortname = "sg",
    status = "SecurityGroupStatus",
    derive = "Default",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupSpec {
    /// Rules for traffic into member ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub ingress_rules: Vec<SecurityGroupRule>,
    /// Rules for traffic out of member ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub egress_rules: Vec<SecurityGroupRule>,
    /// Allow all traffic between members.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_same_group_traffic: bool,
}

/// IP version a rule applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IpVersion {
    /// IPv4.
    #[default]
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// Protocol a rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SgProtocol {
    /// Any protocol.
    #[default]
    All,
    /// ICMP / ICMPv6.
    Icmp,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What the remote end of a rule is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SgRemoteType {
    /// An address or CIDR in `remoteAddress`.
    #[default]
    #[serde(rename = "address")]
    Address,
    /// Members of `remoteSecurityGroup`.
    #[serde(rename = "securityGroup")]
    SecurityGroup,
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SgPolicy {
    /// Allow.
    #[default]
    Allow,
    /// Drop.
    Drop,
    /// Hand to the next ACL tier.
    Pass,
}

/// One security group rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.portRangeMin) || !has(self.portRangeMax) || self.portRangeMin <= self.portRangeMax",
     "message": "portRangeMin must not exceed portRangeMax"},
    {"rule": "self.remoteType != 'securityGroup' || has(self.remoteSecurityGroup)",
     "message": "remoteSecurityGroup is required when remoteType is securityGroup"}
]))]
pub struct SecurityGroupRule {
    /// `ipv4` or `ipv6`.
    pub ip_version: IpVersion,
    /// `all`, `icmp`, `tcp` or `udp`.
    #[serde(default)]
    pub protocol: SgProtocol,
    /// Priority, 1..=16384 (lower wins, as upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16384))]
    pub priority: Option<i32>,
    /// `address` or `securityGroup`.
    pub remote_type: SgRemoteType,
    /// Remote address or CIDR, for `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    /// Remote group, for `securityGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_security_group: Option<String>,
    /// First destination port (tcp/udp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port_range_min: Option<u16>,
    /// Last destination port (tcp/udp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port_range_max: Option<u16>,
    /// `allow`, `drop` or `pass`.
    pub policy: SgPolicy,
}

/// Observed state of a [`SecurityGroup`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupStatus {
    /// Conditions (`Ready`, `Validated`, `Error`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The OVN port group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub port_group: String,
    /// `allowSameGroupTraffic` in effect.
    #[serde(default)]
    pub allow_same_group_traffic: bool,
    /// Hash of the ingress rules in effect.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ingress_md5: String,
    /// Hash of the egress rules in effect.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub egress_md5: String,
    /// Whether the last ingress sync succeeded.
    #[serde(default)]
    pub ingress_last_sync_success: bool,
    /// Whether the last egress sync succeeded.
    #[serde(default)]
    pub egress_last_sync_success: bool,
}

fn validate_rule(field: &str, r: &SecurityGroupRule) -> Result<()> {
    if let Some(p) = r.priority
        && !(1..=16384).contains(&p)
    {
        return Err(Error::invalid(
            format!("{field}.priority"),
            p.to_string(),
            "must be between 1 and 16384",
        ));
    }
    match r.remote_type {
        SgRemoteType::Address => {
            let f = format!("{field}.remoteAddress");
            let a = r
                .remote_address
                .as_deref()
                .ok_or_else(|| Error::MissingField {
                    field: f.clone(),
                    hint: " when remoteType is address".into(),
                })?;
            let family_v4 = if a.contains('/') {
                validation::is_v4(&validation::cidr(&f, a)?)
            } else {
                validation::ip(&f, a)?.is_ipv4()
            };
            if family_v4 != (r.ip_version == IpVersion::Ipv4) {
                return Err(Error::invalid(
                    f,
                    a,
                    "address family does not match ipVersion",
                ));
            }
        }
        SgRemoteType::SecurityGroup => {
            let f = format!("{field}.remoteSecurityGroup");
            let g = r
                .remote_security_group
                .as_deref()
                .ok_or_else(|| Error::MissingField {
                    field: f.clone(),
                    hint: " when remoteType is securityGroup".into(),
                })?;
            validation::dns1123_subdomain(&f, g)?;
        }
    }
    for (name, v) in [
        ("portRangeMin", r.port_range_min),
        ("portRangeMax", r.port_range_max),
    ] {
        if v == Some(0) {
            return Err(Error::invalid(
                format!("{field}.{name}"),
                "0",
                "ports are 1..=65535",
            ));
        }
    }
    if let (Some(lo), Some(hi)) = (r.port_range_min, r.port_range_max)
        && lo > hi
    {
        return Err(Error::invalid(
            format!("{field}.portRangeMin"),
            lo.to_string(),
            format!("must not exceed portRangeMax ({hi})"),
        ));
    }
    Ok(())
}

impl Validate for SecurityGroupSpec {
    fn validate(&self) -> Result<()> {
        for (i, r) in self.ingress_rules.iter().enumerate() {
            validate_rule(&format!("spec.ingressRules[{i}]"), r)?;
        }
        for (i, r) in self.egress_rules.iter().enumerate() {
            validate_rule(&format!("spec.egressRules[{i}]"), r)?;
        }
        Ok(())
    }
}

impl Validate for SecurityGroup {
    fn validate(&self) -> Result<()> {
        crate::validate_object("SecurityGroup", &self.metadata, &self.spec)
    }
}
