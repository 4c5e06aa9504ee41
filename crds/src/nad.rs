//! `NetworkAttachmentDefinition` (`k8s.cni.cncf.io/v1`, namespaced; the CRD is Multus'), its
//! parsed CNI config, and how a NAD relates to Kube-OVN:
//!
//! - [`NadClass::Attachment`]: `type: kube-ovn` (alone or in a conflist): a full OVN attachment.
//!   `provider` is required (by convention `<nad>.<ns>.ovn`); a NAD without one is an error,
//!   never a silent fallback.
//! - [`NadClass::IpamOnly`]: another plugin (macvlan, ipvlan...) with `ipam.type: kube-ovn`;
//!   addresses only. `ipam.provider` defaults to `<nad>.<ns>`.
//! - [`NadClass::NotOurs`]: anything else.
//!
//! [`resolve_element`] and [`resolve_attachments`] join a pod's selection elements with the NADs and yields the
//! provider of each kube-ovn attachment, applying the rule that the same NAD attached twice gets
//! one provider per interface (`<p>.<ifname>`).

use std::borrow::Borrow;
use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::attachment;
use crate::error::{Error, Result};
use crate::naming;
use crate::networks::NetworkSelectionElement;

/// Spec of a [`NetworkAttachmentDefinition`]: the CNI config as a JSON string.
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "k8s.cni.cncf.io",
    version = "v1",
    kind = "NetworkAttachmentDefinition",
    plural = "network-attachment-definitions",
    singular = "network-attachment-definition",
    shortname = "net-attach-def",
    namespaced,
    derive = "Default",
    derive = "PartialEq"
)]
pub struct NetworkAttachmentDefinitionSpec {
    /// CNI config (a `.conf` or `.conflist` JSON document). Empty means Multus reads a file
    /// named after the NAD from its config directory.
    #[serde(default)]
    pub config: String,
}

/// The `ipam` section of a CNI config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// IPAM plugin type.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Kube-OVN provider (IPAM-only NADs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Daemon socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_socket: Option<String>,
    /// Other keys, kept for round trips.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// One plugin config: a whole `.conf`, or one entry of a conflist's `plugins`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginConfig {
    /// Plugin type (the binary name; empty at the top of a conflist).
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Kube-OVN provider (`type: kube-ovn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Daemon socket (`type: kube-ovn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_socket: Option<String>,
    /// IPAM section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamConfig>,
    /// Runtime config capabilities the plugin accepts (`ips`, `mac`, `bandwidth`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, bool>,
    /// Other keys, kept for round trips.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// A NAD's parsed `spec.config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NadConfig {
    /// CNI spec version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<String>,
    /// Network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The plugins of a conflist (`None` for a single `.conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginConfig>>,
    /// The plugin of a single `.conf` (empty for a conflist).
    #[serde(flatten)]
    pub plugin: PluginConfig,
}

impl NadConfig {
    /// Parses a CNI config JSON document.
    pub fn parse(config: &str) -> std::result::Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(config)
            .map_err(|e| format!("spec.config is not valid JSON: {e}"))?;
        if !value.is_object() {
            return Err("spec.config must be a JSON object".into());
        }
        serde_json::from_value(value).map_err(|e| format!("spec.config: {e}"))
    }

    /// The plugin configs: the single `.conf`, or the conflist's plugins.
    pub fn plugin_list(&self) -> Vec<&PluginConfig> {
        match &self.plugins {
            Some(list) => list.iter().collect(),
            None => vec![&self.plugin],
        }
    }
}

/// How a NAD relates to Kube-OVN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NadClass {
    /// `type: kube-ovn`: an OVN attachment with this provider.
    Attachment {
        /// The NAD's provider.
        provider: String,
        /// Daemon socket the shim talks to.
        server_socket: String,
    },
    /// Another plugin using `ipam.type: kube-ovn`: addresses only.
    IpamOnly {
        /// The plugin that creates the interface (macvlan, ipvlan...).
        plugin: String,
        /// The provider (`ipam.provider`, default `<nad>.<ns>`).
        provider: String,
        /// Daemon socket the IPAM shim talks to.
        server_socket: String,
    },
    /// Not a Kube-OVN network.
    NotOurs,
}

impl NadClass {
    /// The provider, for the two kinds that have one.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Self::Attachment { provider, .. } | Self::IpamOnly { provider, .. } => Some(provider),
            Self::NotOurs => None,
        }
    }
}

impl NetworkAttachmentDefinition {
    /// A NAD fixture/builder: `namespace/name` with `config`.
    pub fn with_config(namespace: &str, name: &str, config: &str) -> Self {
        let mut nad = Self::new(
            name,
            NetworkAttachmentDefinitionSpec {
                config: config.into(),
            },
        );
        nad.metadata.namespace = Some(namespace.into());
        nad
    }

    fn ns_name(&self) -> (String, String) {
        (
            self.metadata.namespace.clone().unwrap_or_default(),
            self.metadata.name.clone().unwrap_or_default(),
        )
    }

    /// Classifies this NAD; a kube-ovn NAD with a missing or malformed provider is an error.
    pub fn classify(&self) -> Result<NadClass> {
        let (namespace, name) = self.ns_name();
        let err = |reason: String| Error::NadConfig {
            namespace: namespace.clone(),
            name: name.clone(),
            reason,
        };
        if self.spec.config.trim().is_empty() {
            return Ok(NadClass::NotOurs);
        }
        let config = NadConfig::parse(&self.spec.config).map_err(err)?;
        let plugins = config.plugin_list();
        // Ours (the plugin or its IPAM): the runtime would call us with a version we refuse,
        // after the controller allocated; refused here, nothing is allocated.
        let ours = plugins.iter().any(|p| {
            p.type_ == naming::CNI_TYPE
                || p.ipam.as_ref().is_some_and(|i| i.type_ == naming::CNI_TYPE)
        });
        if ours
            && let Some(version) = &config.cni_version
            && !naming::SUPPORTED_CNI_VERSIONS.contains(&version.as_str())
        {
            return Err(err(format!(
                "cniVersion {version:?} is not supported by kube-ovn (supported: {})",
                naming::SUPPORTED_CNI_VERSIONS.join(", ")
            )));
        }
        if let Some(p) = plugins.iter().find(|p| p.type_ == naming::CNI_TYPE) {
            let provider = p
                .provider
                .clone()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    err(format!(
                        "type kube-ovn requires \"provider\" (by convention {:?})",
                        naming::attachment_provider(&name, &namespace)
                    ))
                })?;
            naming::validate_provider("provider", &provider).map_err(|e| err(e.to_string()))?;
            let server_socket = p
                .server_socket
                .clone()
                .unwrap_or_else(|| naming::DEFAULT_SERVER_SOCKET.to_owned());
            return Ok(NadClass::Attachment {
                provider,
                server_socket,
            });
        }
        for p in plugins {
            if let Some(ipam) = p.ipam.as_ref().filter(|i| i.type_ == naming::CNI_TYPE) {
                let provider = ipam
                    .provider
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| naming::ipam_provider(&name, &namespace));
                naming::validate_provider("ipam.provider", &provider)
                    .map_err(|e| err(e.to_string()))?;
                let server_socket = ipam
                    .server_socket
                    .clone()
                    .unwrap_or_else(|| naming::DEFAULT_SERVER_SOCKET.to_owned());
                return Ok(NadClass::IpamOnly {
                    plugin: p.type_.clone(),
                    provider,
                    server_socket,
                });
            }
        }
        Ok(NadClass::NotOurs)
    }
}

/// One kube-ovn attachment of a pod, resolved from its networks annotation.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedAttachment {
    /// The selection element as parsed.
    pub element: NetworkSelectionElement,
    /// Its 0-based position in the annotation.
    pub position: usize,
    /// Interface name in the pod.
    pub interface: String,
    /// The NAD's class ([`NadClass::Attachment`] or [`NadClass::IpamOnly`]).
    pub class: NadClass,
    /// The NAD's provider: the one a Subnet binds.
    pub nad_provider: String,
    /// This attachment's provider: the NAD's, or `<p>.<ifname>` when the pod attaches the NAD
    /// more than once. Annotation keys and the LSP/IP names use it.
    pub provider: String,
}

/// Resolves the element at `position` of a pod's parsed `elements` against `nads` (all NADs the
/// pod may reference): its NAD, class and provider ([`crate::attachment::element_provider`]).
/// `Ok(None)` for a NAD that is not ours (or a position past the end); a missing NAD is
/// [`Error::UnknownNad`]. The controller resolves each element with this, alone, so one bad
/// element does not hold back the others.
pub fn resolve_element<N: Borrow<NetworkAttachmentDefinition>>(
    elements: &[NetworkSelectionElement],
    position: usize,
    nads: &[N],
) -> Result<Option<ResolvedAttachment>> {
    let Some(e) = elements.get(position) else {
        return Ok(None);
    };
    let nad = nads
        .iter()
        .map(Borrow::borrow)
        .find(|n| {
            n.metadata.name.as_deref() == Some(e.name.as_str())
                && n.metadata.namespace.as_deref() == Some(e.namespace.as_str())
        })
        .ok_or_else(|| Error::UnknownNad {
            namespace: e.namespace.clone(),
            name: e.name.clone(),
        })?;
    let class = nad.classify()?;
    let Some(nad_provider) = class.provider().map(str::to_owned) else {
        return Ok(None);
    };
    Ok(Some(ResolvedAttachment {
        element: e.clone(),
        position,
        interface: e.interface_name(position),
        provider: attachment::element_provider(elements, position, &nad_provider),
        class,
        nad_provider,
    }))
}

/// Resolves a pod's parsed selection elements against `nads` (all NADs the pod may reference).
/// Elements naming a missing NAD are [`Error::UnknownNad`]; NADs that are not ours are skipped.
pub fn resolve_attachments<N: Borrow<NetworkAttachmentDefinition>>(
    elements: &[NetworkSelectionElement],
    nads: &[N],
) -> Result<Vec<ResolvedAttachment>> {
    let mut out = Vec::new();
    for position in 0..elements.len() {
        out.extend(resolve_element(elements, position, nads)?);
    }
    Ok(out)
}
