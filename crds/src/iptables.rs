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
    /// IPv6 address: refused with `InvalidSpec` (the gateway translates IPv4 only); the field
    /// stays so upstream manifests parse.
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
    /// Conditions (`Ready`, `Validated`, `Error`). A map keyed by `type` in the schema, so
    /// server-side apply lets two writers own one condition each: the controller (field manager
    /// `kube-ovn-controller`) owns `Validated`, the gateway's agent (`kube-ovn-nat-gateway`)
    /// owns `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
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
    /// Conditions (`Ready`, `Validated`, `Error`). A map keyed by `type` in the schema, so
    /// server-side apply lets two writers own one condition each: the controller (field manager
    /// `kube-ovn-controller`) owns `Validated`, the gateway's agent (`kube-ovn-nat-gateway`)
    /// owns `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
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
        // Refused rather than dropped: the gateway's NAT table and its external leg are IPv4
        // (as upstream's iptables gateway), so an IPv6 EIP would be accepted and never work.
        if !self.v6ip.is_empty() {
            return Err(Error::invalid(
                "spec.v6ip",
                self.v6ip.as_str(),
                "IPv6 EIPs are not supported: the VPC NAT gateway translates IPv4 only; \
                 remove spec.v6ip (spec.v4ip, or none to allocate one)",
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

/// The kind of a NAT object, as [`problems`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NatKind {
    /// An [`IptablesEIP`].
    Eip,
    /// An [`IptablesFIPRule`].
    Fip,
    /// An [`IptablesSnatRule`].
    Snat,
    /// An [`IptablesDnatRule`].
    Dnat,
}

impl NatKind {
    /// The Kubernetes kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Eip => "IptablesEIP",
            Self::Fip => "IptablesFIPRule",
            Self::Snat => "IptablesSnatRule",
            Self::Dnat => "IptablesDnatRule",
        }
    }
}

/// Condition reason: the spec fails [`Validate`].
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// Condition reason: the EIP's `natGwDp` names no VpcNatGateway.
pub const REASON_GATEWAY_NOT_FOUND: &str = "GatewayNotFound";
/// Condition reason: a rule names an EIP that does not exist.
pub const REASON_EIP_NOT_FOUND: &str = "EipNotFound";
/// Condition reason: a rule's EIP is itself refused.
pub const REASON_EIP_NOT_VALID: &str = "EipNotValid";
/// Condition reason: the EIP is taken by a FIP (which owns it whole) or, for a FIP, already
/// used by another rule.
pub const REASON_EIP_IN_USE: &str = "EipInUse";
/// Condition reason: another DNAT rule of the same EIP holds the protocol and external port.
pub const REASON_PORT_CONFLICT: &str = "PortConflict";
/// Condition reason: another EIP asks for the same static address.
pub const REASON_ADDRESS_CONFLICT: &str = "AddressConflict";

/// Why one NAT object is refused: the `Validated` condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatProblem {
    /// CamelCase reason (one of the `REASON_*` constants).
    pub reason: &'static str,
    /// What is wrong, naming the objects involved.
    pub message: String,
}

/// Everything [`problems`] looks at: the EIPs, the three rule kinds, and the names of the
/// VpcNatGateways that exist.
#[derive(Clone, Copy, Debug)]
pub struct NatObjects<'a> {
    /// Every IptablesEIP.
    pub eips: &'a [std::sync::Arc<IptablesEIP>],
    /// Every IptablesFIPRule.
    pub fips: &'a [std::sync::Arc<IptablesFIPRule>],
    /// Every IptablesSnatRule.
    pub snats: &'a [std::sync::Arc<IptablesSnatRule>],
    /// Every IptablesDnatRule.
    pub dnats: &'a [std::sync::Arc<IptablesDnatRule>],
    /// Names of the existing VpcNatGateways.
    pub gateways: &'a std::collections::BTreeSet<String>,
}

/// Who wins a contest between two objects: the older one (`creationTimestamp`, which has
/// whole seconds), then among those of the same second the one already accepted (`Validated`
/// true, also while an edit of it is being checked: a newcomer never takes a working object's
/// claim), then the
/// kind (FIP before SNAT before DNAT), then the name. Total and computed from the objects alone,
/// so every reconcile and every replica agrees on the winner.
type Seniority = (Option<k8s_openapi::jiff::Timestamp>, bool, NatKind, String);

fn seniority(meta: &kube::api::ObjectMeta, conditions: &[Condition], kind: NatKind) -> Seniority {
    let accepted = crate::condition::find_condition(conditions, crate::condition::VALIDATED)
        .is_some_and(|c| c.status == crate::ConditionStatus::True);
    (
        meta.creation_timestamp.as_ref().map(|t| t.0),
        !accepted,
        kind,
        meta.name.clone().unwrap_or_default(),
    )
}

/// What is wrong with each NAT object, given all of them: invalid specs; an EIP on a gateway
/// that does not exist; two EIPs asking for one static address; a rule naming a missing (or
/// itself refused) EIP; an EIP bound by a FIP and by any other rule (a FIP takes the whole
/// address, as upstream); two DNAT rules on one EIP, protocol and external port. In every
/// contest the senior object (the oldest; within one second the one already accepted, then
/// FIP/SNAT/DNAT, then the name) keeps its claim and the others are refused, so a newcomer
/// never takes away a rule that works. Objects without a problem are absent from the map.
pub fn problems(all: NatObjects<'_>) -> std::collections::BTreeMap<(NatKind, String), NatProblem> {
    use std::collections::{BTreeMap, HashMap};
    let mut out: BTreeMap<(NatKind, String), NatProblem> = BTreeMap::new();
    let name = |m: &kube::api::ObjectMeta| m.name.clone().unwrap_or_default();
    fn refuse(
        out: &mut BTreeMap<(NatKind, String), NatProblem>,
        kind: NatKind,
        n: String,
        reason: &'static str,
        message: String,
    ) {
        out.entry((kind, n))
            .or_insert(NatProblem { reason, message });
    }

    // EIPs: spec, gateway, static address contests (per external subnet as written, since the
    // default external subnet is the gateway's, also compare by gateway).
    let mut eips: Vec<&IptablesEIP> = all.eips.iter().map(AsRef::as_ref).collect();
    eips.sort_by_key(|e| {
        let conditions = e.status.as_ref().map_or(&[][..], |s| &s.conditions);
        seniority(&e.metadata, conditions, NatKind::Eip)
    });
    let mut addresses: HashMap<&str, String> = HashMap::new();
    for e in &eips {
        let n = name(&e.metadata);
        if let Err(err) = e.validate() {
            refuse(
                &mut out,
                NatKind::Eip,
                n,
                REASON_INVALID_SPEC,
                err.to_string(),
            );
            continue;
        }
        if !all.gateways.contains(&e.spec.nat_gw_dp) {
            refuse(
                &mut out,
                NatKind::Eip,
                n,
                REASON_GATEWAY_NOT_FOUND,
                format!(
                    "IptablesEIP {}: spec.natGwDp names VpcNatGateway {}, which does not exist",
                    name(&e.metadata),
                    e.spec.nat_gw_dp
                ),
            );
            continue;
        }
        if !e.spec.v4ip.is_empty() {
            if let Some(holder) = addresses.get(e.spec.v4ip.as_str()) {
                refuse(
                    &mut out,
                    NatKind::Eip,
                    n.clone(),
                    REASON_ADDRESS_CONFLICT,
                    format!(
                        "IptablesEIP {n}: spec.v4ip {} is already the address of IptablesEIP \
                         {holder}",
                        e.spec.v4ip
                    ),
                );
                continue;
            }
            addresses.insert(e.spec.v4ip.as_str(), n);
        }
    }
    let eip_ok: HashMap<String, bool> = eips
        .iter()
        .map(|e| {
            let n = name(&e.metadata);
            let ok = !out.contains_key(&(NatKind::Eip, n.clone()));
            (n, ok)
        })
        .collect();

    // Rules: spec and EIP first; then, per EIP, the contests in seniority order.
    struct Claim<'r> {
        seniority: Seniority,
        eip: &'r str,
        dnat: Option<(NatProtocol, &'r str)>,
    }
    let mut claims: Vec<Claim<'_>> = Vec::new();
    let check = |out: &mut BTreeMap<(NatKind, String), NatProblem>,
                 kind: NatKind,
                 meta: &kube::api::ObjectMeta,
                 valid: Result<()>,
                 eip: &str|
     -> bool {
        let n = name(meta);
        let shown = format!("{} {n}", kind.kind());
        if let Err(err) = valid {
            refuse(out, kind, n, REASON_INVALID_SPEC, err.to_string());
            return false;
        }
        match eip_ok.get(eip) {
            None => {
                refuse(
                    out,
                    kind,
                    n,
                    REASON_EIP_NOT_FOUND,
                    format!("{shown}: spec.eip names IptablesEIP {eip}, which does not exist"),
                );
                false
            }
            Some(false) => {
                refuse(
                    out,
                    kind,
                    n,
                    REASON_EIP_NOT_VALID,
                    format!("{shown}: its IptablesEIP {eip} is refused (see its conditions)"),
                );
                false
            }
            Some(true) => true,
        }
    };
    for f in all.fips {
        if check(
            &mut out,
            NatKind::Fip,
            &f.metadata,
            f.validate(),
            &f.spec.eip,
        ) {
            claims.push(Claim {
                seniority: seniority(
                    &f.metadata,
                    f.status.as_ref().map_or(&[][..], |st| &st.conditions),
                    NatKind::Fip,
                ),
                eip: &f.spec.eip,
                dnat: None,
            });
        }
    }
    for s in all.snats {
        if check(
            &mut out,
            NatKind::Snat,
            &s.metadata,
            s.validate(),
            &s.spec.eip,
        ) {
            claims.push(Claim {
                seniority: seniority(
                    &s.metadata,
                    s.status.as_ref().map_or(&[][..], |st| &st.conditions),
                    NatKind::Snat,
                ),
                eip: &s.spec.eip,
                dnat: None,
            });
        }
    }
    for d in all.dnats {
        if check(
            &mut out,
            NatKind::Dnat,
            &d.metadata,
            d.validate(),
            &d.spec.eip,
        ) {
            claims.push(Claim {
                seniority: seniority(
                    &d.metadata,
                    d.status.as_ref().map_or(&[][..], |st| &st.conditions),
                    NatKind::Dnat,
                ),
                eip: &d.spec.eip,
                dnat: Some((d.spec.protocol.unwrap_or_default(), &d.spec.external_port)),
            });
        }
    }
    claims.sort_by(|a, b| a.seniority.cmp(&b.seniority));
    // Per EIP: the accepted claims so far (kind and name), and the DNAT ports taken.
    let mut accepted: HashMap<&str, Vec<(NatKind, String)>> = HashMap::new();
    let mut ports: HashMap<(&str, NatProtocol, u16), String> = HashMap::new();
    for c in &claims {
        let (_, _, kind, n) = &c.seniority;
        let shown = format!("{} {n}", kind.kind());
        let held = accepted.entry(c.eip).or_default();
        let fip_holder = held.iter().find(|(k, _)| *k == NatKind::Fip);
        let blocker = match (kind, held.first(), fip_holder) {
            (NatKind::Fip, Some(first), _) => Some(first),
            (_, _, Some(fip)) => Some(fip),
            _ => None,
        };
        if let Some((bk, bn)) = blocker {
            refuse(
                &mut out,
                *kind,
                n.clone(),
                REASON_EIP_IN_USE,
                format!(
                    "{shown}: IptablesEIP {} is already used by {} {bn}; a FIP takes an EIP \
                     for itself alone",
                    c.eip,
                    bk.kind()
                ),
            );
            continue;
        }
        if let Some((protocol, port)) = c.dnat {
            // Validated above: the port parses.
            let port = port.parse::<u16>().unwrap_or_default();
            if let Some(holder) = ports.get(&(c.eip, protocol, port)) {
                let p = match protocol {
                    NatProtocol::Tcp => "tcp",
                    NatProtocol::Udp => "udp",
                };
                refuse(
                    &mut out,
                    *kind,
                    n.clone(),
                    REASON_PORT_CONFLICT,
                    format!(
                        "{shown}: {p} port {port} of IptablesEIP {} is already forwarded by \
                         IptablesDnatRule {holder}",
                        c.eip
                    ),
                );
                continue;
            }
            ports.insert((c.eip, protocol, port), n.clone());
        }
        held.push((*kind, n.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn at(meta: &mut kube::api::ObjectMeta, second: i64) {
        meta.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(second).unwrap(),
        ));
    }

    fn eip(name: &str, gw: &str, v4ip: &str, t: i64) -> Arc<IptablesEIP> {
        let mut e = IptablesEIP::new(
            name,
            IptablesEIPSpec {
                nat_gw_dp: gw.into(),
                v4ip: v4ip.into(),
                ..Default::default()
            },
        );
        at(&mut e.metadata, t);
        Arc::new(e)
    }

    fn fip(name: &str, eip: &str, t: i64) -> Arc<IptablesFIPRule> {
        let mut f = IptablesFIPRule::new(
            name,
            IptablesFIPRuleSpec {
                eip: eip.into(),
                internal_ip: "10.100.0.5".into(),
            },
        );
        at(&mut f.metadata, t);
        Arc::new(f)
    }

    fn snat(name: &str, eip: &str, t: i64) -> Arc<IptablesSnatRule> {
        let mut s = IptablesSnatRule::new(
            name,
            IptablesSnatRuleSpec {
                eip: eip.into(),
                internal_cidr: "10.100.0.0/16".into(),
            },
        );
        at(&mut s.metadata, t);
        Arc::new(s)
    }

    fn dnat(
        name: &str,
        eip: &str,
        proto: Option<NatProtocol>,
        port: &str,
        t: i64,
    ) -> Arc<IptablesDnatRule> {
        let mut d = IptablesDnatRule::new(
            name,
            IptablesDnatRuleSpec {
                eip: eip.into(),
                external_port: port.into(),
                protocol: proto,
                internal_ip: "10.100.0.5".into(),
                internal_port: "80".into(),
            },
        );
        at(&mut d.metadata, t);
        Arc::new(d)
    }

    struct Set {
        eips: Vec<Arc<IptablesEIP>>,
        fips: Vec<Arc<IptablesFIPRule>>,
        snats: Vec<Arc<IptablesSnatRule>>,
        dnats: Vec<Arc<IptablesDnatRule>>,
        gateways: BTreeSet<String>,
    }

    impl Set {
        fn new() -> Self {
            Set {
                eips: vec![eip("e1", "gw", "", 1), eip("e2", "gw", "", 1)],
                fips: Vec::new(),
                snats: Vec::new(),
                dnats: Vec::new(),
                gateways: BTreeSet::from(["gw".to_owned()]),
            }
        }

        fn reasons(&self) -> Vec<(NatKind, String, &'static str)> {
            problems(NatObjects {
                eips: &self.eips,
                fips: &self.fips,
                snats: &self.snats,
                dnats: &self.dnats,
                gateways: &self.gateways,
            })
            .into_iter()
            .map(|((k, n), p)| (k, n, p.reason))
            .collect()
        }
    }

    fn r(kind: NatKind, name: &str, reason: &'static str) -> (NatKind, String, &'static str) {
        (kind, name.to_owned(), reason)
    }

    #[test]
    fn an_ipv6_eip_is_refused_by_name_not_dropped() {
        let mut s = Set::new();
        let mut v6 = (*eip("v6", "gw", "", 2)).clone();
        v6.spec.v6ip = "2001:db8::10".into();
        s.eips.push(Arc::new(v6.clone()));
        assert_eq!(
            s.reasons(),
            vec![r(NatKind::Eip, "v6", REASON_INVALID_SPEC)]
        );
        let e = v6.spec.validate().unwrap_err().to_string();
        assert!(e.contains("spec.v6ip") && e.contains("IPv4 only"), "{e}");
    }

    #[test]
    fn a_consistent_set_has_no_problems() {
        let mut s = Set::new();
        s.fips.push(fip("f1", "e1", 2));
        s.snats.push(snat("s1", "e2", 2));
        s.dnats.push(dnat("d1", "e2", None, "80", 2));
        s.dnats
            .push(dnat("d2", "e2", Some(NatProtocol::Udp), "80", 2));
        s.dnats
            .push(dnat("d3", "e2", Some(NatProtocol::Tcp), "443", 2));
        assert_eq!(s.reasons(), vec![]);
    }

    #[test]
    fn an_eip_bound_by_two_fips_goes_to_the_older() {
        let mut s = Set::new();
        s.fips.push(fip("young", "e1", 5));
        s.fips.push(fip("old", "e1", 3));
        assert_eq!(
            s.reasons(),
            vec![r(NatKind::Fip, "young", REASON_EIP_IN_USE)]
        );
        // Same second: the name decides, the same way every time.
        s.fips = vec![fip("b", "e1", 3), fip("a", "e1", 3)];
        assert_eq!(s.reasons(), vec![r(NatKind::Fip, "b", REASON_EIP_IN_USE)]);
    }

    #[test]
    fn in_one_second_an_accepted_object_keeps_its_claim() {
        let mut s = Set::new();
        let mut working = (*eip("static", "gw", "172.18.0.50", 7)).clone();
        working.metadata.generation = Some(1);
        working.status = Some(IptablesEIPStatus {
            conditions: vec![Condition::new(
                crate::condition::VALIDATED,
                crate::ConditionStatus::True,
                "Validated",
                "",
                Some(1),
            )],
            ..Default::default()
        });
        s.eips.push(Arc::new(working));
        s.eips.push(eip("copycat", "gw", "172.18.0.50", 7));
        assert_eq!(
            s.reasons(),
            vec![r(NatKind::Eip, "copycat", REASON_ADDRESS_CONFLICT)]
        );
        // An older object still wins over an accepted younger one.
        s.eips.push(eip("elder", "gw", "172.18.0.50", 6));
        let got = s.reasons();
        assert!(
            got.contains(&r(NatKind::Eip, "static", REASON_ADDRESS_CONFLICT)),
            "{got:?}"
        );
    }

    #[test]
    fn a_fip_and_a_snat_on_one_eip_conflict_whichever_came_first() {
        let mut s = Set::new();
        s.fips.push(fip("f", "e1", 2));
        s.snats.push(snat("s", "e1", 3));
        assert_eq!(s.reasons(), vec![r(NatKind::Snat, "s", REASON_EIP_IN_USE)]);
        s.snats = vec![snat("s", "e1", 1)];
        assert_eq!(s.reasons(), vec![r(NatKind::Fip, "f", REASON_EIP_IN_USE)]);
        // A FIP also excludes DNAT; SNAT and DNAT share an EIP.
        s.fips = vec![fip("f", "e2", 1)];
        s.dnats = vec![
            dnat("d", "e2", None, "22", 2),
            dnat("d1", "e1", None, "22", 2),
        ];
        assert_eq!(s.reasons(), vec![r(NatKind::Dnat, "d", REASON_EIP_IN_USE)]);
    }

    #[test]
    fn dnat_ports_clash_per_eip_and_protocol() {
        let mut s = Set::new();
        s.dnats = vec![
            dnat("first", "e1", None, "8080", 1),
            dnat("second", "e1", Some(NatProtocol::Tcp), "8080", 2),
            dnat("udp", "e1", Some(NatProtocol::Udp), "8080", 2),
            dnat("other-eip", "e2", None, "8080", 2),
        ];
        let got = problems(NatObjects {
            eips: &s.eips,
            fips: &s.fips,
            snats: &s.snats,
            dnats: &s.dnats,
            gateways: &s.gateways,
        });
        assert_eq!(got.len(), 1);
        let p = &got[&(NatKind::Dnat, "second".to_owned())];
        assert_eq!(p.reason, REASON_PORT_CONFLICT);
        assert!(
            p.message.contains("tcp port 8080") && p.message.contains("first"),
            "{}",
            p.message
        );
    }

    #[test]
    fn rules_need_an_existing_valid_eip_and_eips_a_gateway() {
        let mut s = Set::new();
        s.eips.push(eip("orphan", "nope", "", 1));
        s.eips.push(eip("e3", "gw", "172.18.0.10", 1));
        s.eips.push(eip("e4", "gw", "172.18.0.10", 2));
        s.eips.push(eip("bad", "gw", "fd00::1", 1));
        s.fips.push(fip("f-missing", "ghost", 1));
        s.snats.push(snat("s-orphan", "orphan", 1));
        s.dnats.push(dnat("d-bad-port", "e1", None, "0", 1));
        let mut want = vec![
            r(NatKind::Eip, "bad", REASON_INVALID_SPEC),
            r(NatKind::Eip, "e4", REASON_ADDRESS_CONFLICT),
            r(NatKind::Eip, "orphan", REASON_GATEWAY_NOT_FOUND),
            r(NatKind::Fip, "f-missing", REASON_EIP_NOT_FOUND),
            r(NatKind::Snat, "s-orphan", REASON_EIP_NOT_VALID),
            r(NatKind::Dnat, "d-bad-port", REASON_INVALID_SPEC),
        ];
        want.sort();
        assert_eq!(s.reasons(), want);
    }

    /// Whatever the set, every EIP keeps at most one FIP and then nothing else, and no two
    /// accepted DNATs share an EIP, protocol and port; the answer does not depend on order.
    #[test]
    fn accepted_claims_never_conflict_and_order_does_not_matter() {
        use proptest::prelude::*;
        let rule = (0u8..3, 0usize..3, 0i64..4, 0u8..3);
        proptest!(|(rules in proptest::collection::vec(rule, 0..12))| {
            let mut s = Set::new();
            s.eips.push(eip("e3", "gw", "", 1));
            for (i, (kind, e, t, port)) in rules.iter().enumerate() {
                let e = format!("e{}", e + 1);
                let name = format!("r{i}");
                match kind {
                    0 => s.fips.push(fip(&name, &e, *t)),
                    1 => s.snats.push(snat(&name, &e, *t)),
                    _ => s.dnats.push(dnat(&name, &e, None, &format!("{}", 80 + port), *t)),
                }
            }
            let got = s.reasons();
            let refused: BTreeSet<String> = got.iter().map(|(_, n, _)| n.clone()).collect();
            let mut per_eip: std::collections::HashMap<String, Vec<u8>> = Default::default();
            let mut ports = BTreeSet::new();
            for (i, (kind, e, _, port)) in rules.iter().enumerate() {
                if refused.contains(&format!("r{i}")) { continue; }
                per_eip.entry(format!("e{e}")).or_default().push(*kind);
                if *kind == 2 { prop_assert!(ports.insert((*e, *port))); }
            }
            for kinds in per_eip.values() {
                if kinds.contains(&0) { prop_assert_eq!(kinds.len(), 1); }
            }
            let mut reversed = Set::new();
            reversed.eips = s.eips.iter().rev().cloned().collect();
            reversed.fips = s.fips.iter().rev().cloned().collect();
            reversed.snats = s.snats.iter().rev().cloned().collect();
            reversed.dnats = s.dnats.iter().rev().cloned().collect();
            prop_assert_eq!(reversed.reasons(), got);
        });
    }

    #[test]
    fn conditions_are_a_map_keyed_by_type_in_the_schema() {
        use kube::CustomResourceExt;
        for crd in [
            IptablesEIP::crd(),
            IptablesFIPRule::crd(),
            IptablesSnatRule::crd(),
            IptablesDnatRule::crd(),
        ] {
            let v = serde_json::to_value(&crd).unwrap();
            let c = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
                ["properties"]["conditions"];
            assert_eq!(c["x-kubernetes-list-type"], "map", "{c}");
            assert_eq!(c["x-kubernetes-list-map-keys"], serde_json::json!(["type"]));
            let required = c["items"]["required"].as_array().unwrap();
            assert!(required.contains(&serde_json::json!("type")), "{c}");
        }
    }
}
