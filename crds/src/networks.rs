//! The NPWG (Kubernetes Network Plumbing Working Group) pod annotations, as Multus reads and
//! writes them:
//!
//! - `k8s.v1.cni.cncf.io/networks`, parsed by [`parse_networks_annotation`] into
//!   [`NetworkSelectionElement`]s. Both forms are accepted: the comma string (`name`,
//!   `ns/name`, `ns/name@ifname`, whitespace around items tolerated) and the JSON list.
//! - `k8s.v1.cni.cncf.io/network-status`: a JSON list of [`NetworkStatus`].
//!
//! Note the NPWG naming split: a selection element asks for the gateway with `default-route`,
//! a status element reports it as `gateway`.
//!
//! # Deviation from Multus, on purpose
//! The user manual writes `{"name": "default/public-network"}` in the JSON form. Multus takes
//! `name` literally there (and then finds no NAD called `default/public-network`); we read a
//! `/` in a JSON `name` as `namespace/name`, as the comma form does, so the manual's intent
//! holds. A `namespace` field that disagrees with the prefix is an error.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::validation::{self, MacAddress};

/// An address asked for in `ips`: a bare address or one in CIDR form (`10.100.0.100/16`). The
/// allocator's own request type, so the element's `ips` reach it without a second parser.
pub use ipam::IpRequest;

/// `ips` as the NPWG element writes it: a list of address strings.
mod ip_requests {
    use super::IpRequest;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        ips: &[IpRequest],
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(ips.iter().map(ToString::to_string))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Vec<IpRequest>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                s.parse().map_err(|e: ipam::ParseIpRequestError| {
                    serde::de::Error::custom(format!("ips: {e}"))
                })
            })
            .collect()
    }
}

/// A port mapping (the `portMappings` capability).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapEntry {
    /// Port on the host.
    pub host_port: i32,
    /// Port in the pod.
    pub container_port: i32,
    /// `tcp` or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Host address to bind.
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// A bandwidth request (the `bandwidth` capability), rates in bit/s and bursts in bits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BandwidthEntry {
    /// Ingress rate, bit/s.
    #[serde(default)]
    pub ingress_rate: u64,
    /// Ingress burst, bits.
    #[serde(default)]
    pub ingress_burst: u64,
    /// Egress rate, bit/s.
    #[serde(default)]
    pub egress_rate: u64,
    /// Egress burst, bits.
    #[serde(default)]
    pub egress_burst: u64,
}

/// One element of `k8s.v1.cni.cncf.io/networks` (NPWG v1.3 §4.1.2, Multus' field names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSelectionElement {
    /// NAD name.
    pub name: String,
    /// NAD namespace; [`parse_networks_annotation`] fills in the pod's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Requested interface name inside the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Requested addresses (static IPs).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "ip_requests")]
    pub ips: Vec<IpRequest>,
    /// Requested MAC address.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "mac_field"
    )]
    pub mac: Option<MacAddress>,
    /// Requested InfiniBand GUID.
    #[serde(
        rename = "infiniband-guid",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "guid_field"
    )]
    pub infiniband_guid: Option<MacAddress>,
    /// Gateways for the pod's default route through this attachment.
    #[serde(
        rename = "default-route",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_route: Vec<IpAddr>,
    /// Bandwidth request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthEntry>,
    /// Port mappings.
    #[serde(
        rename = "portMappings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<PortMapEntry>,
    /// Extra CNI args passed to the plugin.
    #[serde(rename = "cni-args", default, skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<serde_json::Map<String, serde_json::Value>>,
    /// Name of an `IPAMClaim` holding the addresses.
    #[serde(
        rename = "ipam-claim-reference",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_claim_reference: Option<String>,
}

fn hw_field<'de, D: Deserializer<'de>>(
    d: D,
    field: &str,
) -> std::result::Result<Option<MacAddress>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    s.parse()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{field}: {s:?}: {e}")))
}

fn mac_field<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<MacAddress>, D::Error> {
    hw_field(d, "mac")
}

fn guid_field<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<MacAddress>, D::Error> {
    hw_field(d, "infiniband-guid")
}

impl NetworkSelectionElement {
    /// A selection of NAD `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }
    }

    /// The interface name the pod gets for this element at `position` (0-based) in the
    /// annotation: the requested one, else `net<position+1>` as Multus assigns.
    pub fn interface_name(&self, position: usize) -> String {
        match &self.interface {
            Some(i) => i.clone(),
            None => format!("net{}", position + 1),
        }
    }

    /// `namespace/name` of the selected NAD.
    pub fn nad_key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Parses `k8s.v1.cni.cncf.io/networks` of a pod in `pod_namespace`.
///
/// Elements without a namespace get `pod_namespace`. Every element is checked (name and
/// namespace are RFC 1123, interface names are valid Linux names, `ips`/`mac` parse) and no two
/// elements may end up with the same interface name. The annotation is JSON when it contains
/// `[`, `{` or `"` (Multus' rule), else the comma form.
pub fn parse_networks_annotation(
    value: &str,
    pod_namespace: &str,
) -> Result<Vec<NetworkSelectionElement>> {
    if value.trim().is_empty() {
        return Err(Error::NetworksEmpty);
    }
    let mut elements = if value.contains(['[', '{', '"']) {
        parse_json(value)?
    } else {
        value
            .split(',')
            .enumerate()
            .map(|(i, item)| parse_comma_item(i, item.trim()))
            .collect::<Result<Vec<_>>>()?
    };
    for (index, e) in elements.iter_mut().enumerate() {
        check_element(index, e, pod_namespace)?;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, e) in elements.iter().enumerate() {
        let ifname = e.interface_name(index);
        if let Some(first) = seen.insert(ifname.clone(), index) {
            return Err(Error::DuplicateInterface {
                interface: ifname,
                first,
                second: index,
            });
        }
    }
    Ok(elements)
}

/// The networks annotation as Multus reads it, when `value` needs rewriting for that; `None`
/// when Multus reads it as it is (or it is not a JSON list: errors are the controller's to
/// report, with [`parse_networks_annotation`]).
///
/// Multus takes a JSON element's `name` as the NAD's bare name: `{"name": "default/net"}`, the
/// form the manual uses, fails there with `invalid resource name "default/net": [may not
/// contain '/']` although the comma form `default/net` works. This moves the namespace of such
/// a name into `namespace` (when that is absent, empty or the same), leaving every other field
/// and element as it is.
pub fn multus_form(value: &str) -> Option<String> {
    if !value.contains(['[', '{', '"']) {
        return None;
    }
    let mut list: serde_json::Value = serde_json::from_str(value).ok()?;
    let mut changed = false;
    for element in list.as_array_mut()?.iter_mut() {
        let Some(fields) = element.as_object_mut() else {
            continue;
        };
        let Some((ns, name)) = fields
            .get("name")
            .and_then(serde_json::Value::as_str)
            .and_then(|n| n.split_once('/'))
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
            .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
        else {
            continue;
        };
        let same_namespace = match fields.get("namespace") {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::String(given)) => given.is_empty() || *given == ns,
            Some(_) => false,
        };
        if !same_namespace {
            continue;
        }
        fields.insert("namespace".to_owned(), serde_json::Value::String(ns));
        fields.insert("name".to_owned(), serde_json::Value::String(name));
        changed = true;
    }
    if changed {
        serde_json::to_string(&list).ok()
    } else {
        None
    }
}

fn parse_json(value: &str) -> Result<Vec<NetworkSelectionElement>> {
    let parsed: serde_json::Value =
        serde_json::from_str(value).map_err(|e| Error::NetworksJson(e.to_string()))?;
    if !parsed.is_array() {
        return Err(Error::NetworksJson(
            "expected a JSON list such as [{\"name\": \"ns/nad\"}]".into(),
        ));
    }
    // Parse the text again (not the value) so serde's message carries line and column.
    serde_json::from_str(value).map_err(|e| Error::NetworksJson(e.to_string()))
}

fn element_error(index: usize, element: &str, reason: impl Into<String>) -> Error {
    Error::NetworkElement {
        index,
        element: element.to_owned(),
        reason: reason.into(),
    }
}

fn parse_comma_item(index: usize, item: &str) -> Result<NetworkSelectionElement> {
    if item.is_empty() {
        return Err(element_error(index, item, "empty network name"));
    }
    let (namespace, rest) = match item.split_once('/') {
        Some((ns, rest)) => {
            if rest.contains('/') {
                return Err(element_error(index, item, "more than one '/'"));
            }
            (ns.trim(), rest)
        }
        None => ("", item),
    };
    if item.contains('/') && namespace.is_empty() {
        return Err(element_error(index, item, "empty namespace before '/'"));
    }
    let (name, interface) = match rest.split_once('@') {
        Some((name, ifname)) => {
            if ifname.contains('@') {
                return Err(element_error(index, item, "more than one '@'"));
            }
            let ifname = ifname.trim();
            if ifname.is_empty() {
                return Err(element_error(
                    index,
                    item,
                    "interface name is empty after '@'",
                ));
            }
            (name.trim(), Some(ifname.to_owned()))
        }
        None => (rest.trim(), None),
    };
    Ok(NetworkSelectionElement {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        interface,
        ..Default::default()
    })
}

fn check_element(index: usize, e: &mut NetworkSelectionElement, pod_namespace: &str) -> Result<()> {
    let label = e.name.clone();
    if e.name.is_empty() {
        return Err(element_error(index, &label, "empty network name"));
    }
    if let Some((ns, name)) = e.name.split_once('/') {
        if !e.namespace.is_empty() && e.namespace != ns {
            return Err(element_error(
                index,
                &label,
                format!(
                    "name says namespace {ns:?} but namespace is {:?}",
                    e.namespace
                ),
            ));
        }
        e.namespace = ns.to_owned();
        e.name = name.to_owned();
    }
    if e.namespace.is_empty() {
        e.namespace = pod_namespace.to_owned();
    }
    let wrap = |err: Error| element_error(index, &label, err.to_string());
    validation::dns1123_subdomain("name", &e.name).map_err(wrap)?;
    validation::dns1123_label("namespace", &e.namespace).map_err(wrap)?;
    if let Some(i) = &e.interface {
        validation::interface_name("interface", i).map_err(wrap)?;
    }
    Ok(())
}

/// DNS settings reported for an attachment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set (then Multus omits `dns`).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Device information of an attachment (`device-info`, NPWG device info spec); the
/// type-specific part (`pci`, `vdpa`, `vhost-user`, `memif`) is kept as JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `pci`, `vdpa`, `vhost-user` or `memif`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Spec version, e.g. `1.1.0`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The type-specific fields.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// One element of `k8s.v1.cni.cncf.io/network-status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// `namespace/name` of the NAD (or the cluster network's name).
    pub name: String,
    /// Interface name in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Addresses (without prefix length, as Multus writes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Whether this attachment carries the pod's default route.
    #[serde(default, skip_serializing_if = "crate::is_false")]
    pub default: bool,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    /// Device information.
    #[serde(
        rename = "device-info",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_info: Option<DeviceInfo>,
    /// Default-route gateways (`default-route` in the selection element).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<String>,
}

/// Parses a `k8s.v1.cni.cncf.io/network-status` annotation.
pub fn parse_network_status(value: &str) -> Result<Vec<NetworkStatus>> {
    serde_json::from_str(value).map_err(|e| {
        Error::invalid(
            "k8s.v1.cni.cncf.io/network-status",
            value,
            format!("not a JSON list: {e}"),
        )
    })
}
