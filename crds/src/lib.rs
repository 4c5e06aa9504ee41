//! The Kubernetes API of Kube-OVN: `kubeovn.io/v1` custom resources, the Multus / NPWG types
//! (`NetworkAttachmentDefinition`, network selection elements, `network-status`), and the
//! annotation-key and naming contracts every component shares.
//!
//! - Resources: [`Vpc`], [`Subnet`], [`IP`], [`IPPool`], [`VpcNatGateway`], [`IptablesEIP`],
//!   [`IptablesFIPRule`], [`IptablesSnatRule`], [`IptablesDnatRule`], [`SecurityGroup`],
//!   [`QoSPolicy`]; all cluster-scoped, field names, short names and printer columns as upstream
//!   Kube-OVN. Every status carries [`Condition`]s.
//! - [`MultiNetworkPolicy`] (`k8s.cni.cncf.io/v1beta1`, namespaced): the NPWG's policy API.
//! - Validation happens twice: cheap schema constraints and CEL rules
//!   (`x-kubernetes-validations`) in the generated CRDs reject bad objects at admission, and
//!   [`Validate::validate`] checks everything (including what CEL cannot say, such as dual-stack
//!   gateways) for the controller, which reports failures as conditions and Events.
//! - `Subnet.spec.cidr` is accepted as an alias of upstream's `spec.cidrBlock` (the user manual
//!   writes `cidr`); see [`subnet`] for the rules.
//! - [`networks`] parses `k8s.v1.cni.cncf.io/networks`; [`nad`] classifies NADs and resolves a
//!   pod's attachments to providers; [`naming`] holds every contract string.
//! - [`attachment`] is the controller-daemon contract: the typed [`Allocation`] with
//!   `to_annotations`/`from_annotations`, the user's route keys, and the one [`MacAddr`].
//! - [`generate`] renders the CRD YAML committed under `charts/*/crds/` (`cargo xtask crds`).
//! - [`admin`] (feature `admin`): the /metrics, /healthz and /readyz endpoint of both binaries.

pub mod acl_match;
#[cfg(feature = "admin")]
pub mod admin;
pub mod attachment;
pub mod condition;
pub mod error;
pub mod generate;
pub mod ip;
pub mod ippool;
pub mod iptables;
pub mod multi_network_policy;
pub mod nad;
pub mod naming;
pub mod nat_gateway;
pub mod networks;
pub mod qos_policy;
pub mod security_group;
pub mod seed;
pub mod subnet;
pub mod upstream;
pub mod validation;
pub mod vpc;

pub use attachment::{Allocation, MacAddr};
pub use condition::{Condition, ConditionStatus};
pub use error::{Error, Result};
pub use ip::{IP, IPSpec};
pub use ippool::{IPPool, IPPoolSpec, IPPoolStatus};
pub use iptables::{
    IptablesDnatRule, IptablesDnatRuleSpec, IptablesEIP, IptablesEIPSpec, IptablesEIPStatus,
    IptablesFIPRule, IptablesFIPRuleSpec, IptablesRuleStatus, IptablesSnatRule,
    IptablesSnatRuleSpec,
};
pub use multi_network_policy::{MultiNetworkPolicy, MultiNetworkPolicySpec};
pub use nad::{
    NadClass, NadConfig, NetworkAttachmentDefinition, NetworkAttachmentDefinitionSpec,
    ResolvedAttachment, resolve_attachments,
};
pub use nat_gateway::{VpcNatGateway, VpcNatGatewaySpec, VpcNatGatewayStatus};
pub use networks::{NetworkSelectionElement, NetworkStatus, parse_networks_annotation};
pub use qos_policy::{QoSPolicy, QoSPolicySpec, QoSPolicyStatus};
pub use security_group::{SecurityGroup, SecurityGroupSpec, SecurityGroupStatus};
pub use subnet::{Subnet, SubnetSpec, SubnetStatus};
pub use vpc::{Vpc, VpcSpec, VpcStatus};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Checks an object the way the controller needs before acting on it. The error names the
/// object, the field and the value.
pub trait Validate {
    /// `Ok` when the object can be realised as written.
    fn validate(&self) -> Result<()>;
}

/// Checks `metadata.name` (RFC 1123 subdomain) and then `spec`, wrapping any error with the
/// object's kind and name.
fn validate_object(kind: &'static str, meta: &ObjectMeta, spec: &impl Validate) -> Result<()> {
    let name = meta.name.clone().unwrap_or_default();
    let shown = match &meta.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.clone(),
    };
    validation::dns1123_subdomain("metadata.name", &name)
        .and_then(|()| spec.validate())
        .map_err(|e| e.in_object(kind, shown))
}

/// serde helper: skip `false` booleans.
#[allow(clippy::trivially_copy_pass_by_ref)]
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
