//! `IP` (`ips.kubeovn.io`): the durable record of one address allocation. The controller
//! rebuilds its allocator from these before serving; for an attachment the CR is named like the
//! logical switch port, `<pod>.<ns>.<provider>` ([`crate::naming::lsp_name`]).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{Validate, validation};

/// Spec of an [`IP`]. Upstream writes every field, so they are plain strings here too.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeovn.io",
    version = "v1",
    kind = "IP",
    plural = "ips",
    singular = "ip",
    shortname = "ip",
    derive = "Default",
    derive = "PartialEq",
    printcolumn = r#"{"name":"V4IP","type":"string","jsonPath":".spec.v4IpAddress"}"#,
    printcolumn = r#"{"name":"V6IP","type":"string","jsonPath":".spec.v6IpAddress"}"#,
    printcolumn = r#"{"name":"Mac","type":"string","jsonPath":".spec.macAddress"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.nodeName"}"#,
    printcolumn = r#"{"name":"Subnet","type":"string","jsonPath":".spec.subnet"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPSpec {
    /// Owning pod.
    #[serde(default)]
    pub pod_name: String,
    /// Owning pod's namespace.
    #[serde(default)]
    pub namespace: String,
    /// Subnet the address belongs to. Immutable after creation.
    #[serde(default)]
    pub subnet: String,
    /// Unused in attached mode (upstream's multi-subnet primary records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_subnets: Vec<String>,
    /// Node of the pod.
    #[serde(default)]
    pub node_name: String,
    /// All addresses, comma-joined (dual stack).
    #[serde(default)]
    pub ip_address: String,
    /// The IPv4 address, if any.
    #[serde(rename = "v4IpAddress", default)]
    pub v4_ip_address: String,
    /// The IPv6 address, if any.
    #[serde(rename = "v6IpAddress", default)]
    pub v6_ip_address: String,
    /// Unused in attached mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_ips: Vec<String>,
    /// MAC address of the interface.
    #[serde(default)]
    pub mac_address: String,
    /// Unused in attached mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_macs: Vec<String>,
    /// Sandbox container id, once known.
    #[serde(rename = "containerID", default)]
    pub container_id: String,
    /// `pod` or a workload kind such as `VirtualMachine`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_type: String,
    /// `metadata.uid` of the pod the record was written for. A pod recreated under the same
    /// name has another UID: a record naming a different one belongs to its predecessor (empty
    /// in records written before the field existed, which are matched by name alone).
    #[serde(rename = "podUID", default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
}

impl Validate for IPSpec {
    fn validate(&self) -> Result<()> {
        if !self.pod_name.is_empty() {
            validation::dns1123_subdomain("spec.podName", &self.pod_name)?;
        }
        if !self.namespace.is_empty() {
            validation::dns1123_label("spec.namespace", &self.namespace)?;
        }
        validation::dns1123_subdomain("spec.subnet", &self.subnet)?;
        if !self.ip_address.is_empty() {
            validation::ip_list("spec.ipAddress", &self.ip_address)?;
        }
        if !self.v4_ip_address.is_empty() {
            let ip = validation::ip("spec.v4IpAddress", &self.v4_ip_address)?;
            if !ip.is_ipv4() {
                return Err(crate::Error::invalid(
                    "spec.v4IpAddress",
                    self.v4_ip_address.as_str(),
                    "not an IPv4 address",
                ));
            }
        }
        if !self.v6_ip_address.is_empty() {
            let ip = validation::ip("spec.v6IpAddress", &self.v6_ip_address)?;
            if !ip.is_ipv6() {
                return Err(crate::Error::invalid(
                    "spec.v6IpAddress",
                    self.v6_ip_address.as_str(),
                    "not an IPv6 address",
                ));
            }
        }
        if !self.mac_address.is_empty() {
            validation::mac("spec.macAddress", &self.mac_address)?;
        }
        Ok(())
    }
}

impl Validate for IP {
    fn validate(&self) -> Result<()> {
        crate::validate_object("IP", &self.metadata, &self.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pod UID is `spec.podUID` on the wire (upstream's spelling), and a record written
    /// before the field existed reads back with none.
    #[test]
    fn the_pod_uid_is_spec_pod_uid_and_optional() {
        let spec = IPSpec {
            pod_name: "p".into(),
            pod_uid: "0b6f5c1e-uid".into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["podUID"], "0b6f5c1e-uid");
        let old: IPSpec =
            serde_json::from_value(serde_json::json!({"podName": "p", "subnet": "s1"})).unwrap();
        assert_eq!(old.pod_uid, "");
        assert!(
            serde_json::to_value(&old).unwrap().get("podUID").is_none(),
            "an old record is written back without an empty UID"
        );
    }
}
