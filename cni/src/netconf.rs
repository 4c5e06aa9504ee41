//! The network configuration a runtime (Multus) writes on the plugin's stdin.

use std::net::IpAddr;

use serde::Deserialize;

use crate::error::{CniError, code};
use crate::version;

/// Where the daemon listens unless the configuration names another socket.
pub const DEFAULT_SERVER_SOCKET: &str = "/run/openvswitch/kube-ovn-daemon.sock";

/// The plugin's `type`, and the IPAM `type` for IPAM-only use.
pub const PLUGIN_TYPE: &str = "kube-ovn";

/// Raw stdin configuration; unknown fields are ignored, as the spec asks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawNetConf {
    /// Spec version of the configuration and of the expected result.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Plugin type: `kube-ovn`, or another main plugin when we run as its IPAM.
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// Daemon socket.
    #[serde(default)]
    pub server_socket: String,
    /// Provider (`<nad>.<ns>.ovn` by convention).
    #[serde(default)]
    pub provider: String,
    /// MTU override for the pod interface.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// IPAM section.
    #[serde(default)]
    pub ipam: Option<RawIpam>,
    /// Runtime-provided values for declared capabilities.
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: RuntimeConfig,
    /// `args.cni` conventions.
    #[serde(default)]
    pub args: Option<RawArgs>,
    /// The previous plugin's result (CHECK, chained ADD).
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<serde_json::Value>,
    /// GC: attachments to keep.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Vec<ValidAttachment>,
}

/// The `ipam` section.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawIpam {
    /// IPAM plugin type.
    #[serde(rename = "type", default)]
    pub ipam_type: String,
    /// Daemon socket when kube-ovn is the IPAM plugin.
    #[serde(default)]
    pub server_socket: String,
    /// Provider when kube-ovn is the IPAM plugin (`<nad>.<ns>` by convention).
    #[serde(default)]
    pub provider: String,
}

/// `runtimeConfig` values this plugin honours (capabilities `ips`, `mac`, `bandwidth`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    /// Static addresses, bare or in CIDR form.
    #[serde(default)]
    pub ips: Vec<String>,
    /// Static MAC address.
    #[serde(default)]
    pub mac: Option<String>,
    /// Bandwidth limits (bits per second, bits).
    #[serde(default)]
    pub bandwidth: Option<RawBandwidth>,
}

/// The `bandwidth` capability (CNI conventions).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RawBandwidth {
    /// Ingress rate, bits per second.
    #[serde(default)]
    pub ingress_rate: u64,
    /// Ingress burst, bits.
    #[serde(default)]
    pub ingress_burst: u64,
    /// Egress rate, bits per second.
    #[serde(default)]
    pub egress_rate: u64,
    /// Egress burst, bits.
    #[serde(default)]
    pub egress_burst: u64,
}

/// `args` with its `cni` member.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawArgs {
    /// The `cni` conventions: `ips`, `mac`.
    #[serde(default)]
    pub cni: Option<RuntimeConfig>,
}

/// One element of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ValidAttachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// A validated configuration: what the plugin forwards to the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// Spec version to answer in.
    pub cni_version: String,
    /// Daemon socket path.
    pub server_socket: String,
    /// Provider of this attachment.
    pub provider: String,
    /// Whether kube-ovn runs as the IPAM plugin of another main plugin (addresses only).
    pub ipam_only: bool,
    /// MTU override, 0 when unset.
    pub mtu: u32,
    /// Static addresses requested by the runtime (runtimeConfig, then args.cni).
    pub ips: Vec<String>,
    /// Static MAC requested by the runtime.
    pub mac: String,
    /// Bandwidth requested by the runtime.
    pub bandwidth: Option<RawBandwidth>,
    /// The previous result, as JSON.
    pub prev_result: Option<serde_json::Value>,
    /// GC: attachments to keep.
    pub valid_attachments: Vec<ValidAttachment>,
}

impl NetConf {
    /// Parses and validates stdin. Errors carry code 6 (decode), 1 (version) or 7 (config).
    pub fn parse(stdin: &[u8]) -> Result<Self, CniError> {
        let raw: RawNetConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                version::LATEST,
                code::DECODE_FAILURE,
                format!("network configuration on stdin is not valid JSON: {e}"),
            )
        })?;
        Self::from_raw(raw)
    }

    /// Validates a decoded configuration.
    pub fn from_raw(raw: RawNetConf) -> Result<Self, CniError> {
        let cni_version = if raw.cni_version.is_empty() {
            "0.3.1".to_owned()
        } else {
            raw.cni_version.clone()
        };
        if !version::is_supported(&cni_version) {
            return Err(CniError::new(
                version::LATEST,
                code::INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion {cni_version:?} is not supported; kube-ovn supports {}",
                    version::SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        let bad = |msg: String| CniError::new(cni_version.clone(), code::INVALID_CONFIG, msg);
        let network = if raw.name.is_empty() {
            "<unnamed>".to_owned()
        } else {
            raw.name.clone()
        };

        let (ipam_only, socket, provider) = if raw.plugin_type == PLUGIN_TYPE {
            (false, raw.server_socket.clone(), raw.provider.clone())
        } else {
            match &raw.ipam {
                Some(ipam) if ipam.ipam_type == PLUGIN_TYPE => {
                    (true, ipam.server_socket.clone(), ipam.provider.clone())
                }
                _ => {
                    return Err(bad(format!(
                        "network {network:?}: type is {:?} and ipam.type is not {PLUGIN_TYPE:?}; \
                         this plugin serves `\"type\": \"kube-ovn\"` or \
                         `\"ipam\": {{\"type\": \"kube-ovn\"}}`",
                        raw.plugin_type
                    )));
                }
            }
        };
        if provider.is_empty() {
            let hint = if ipam_only {
                "ipam.provider \"<nad>.<namespace>\""
            } else {
                "provider \"<nad>.<namespace>.ovn\""
            };
            return Err(bad(format!(
                "network {network:?} has no provider: set {hint} in the NetworkAttachmentDefinition"
            )));
        }
        let server_socket = if socket.is_empty() {
            DEFAULT_SERVER_SOCKET.to_owned()
        } else {
            socket
        };
        if !server_socket.starts_with('/') {
            return Err(bad(format!(
                "network {network:?}: server_socket {server_socket:?} must be an absolute path"
            )));
        }
        // runtimeConfig wins over args.cni (CNI conventions).
        let args_cni = raw.args.and_then(|a| a.cni).unwrap_or_default();
        let ips = if raw.runtime_config.ips.is_empty() {
            args_cni.ips
        } else {
            raw.runtime_config.ips
        };
        for ip in &ips {
            validate_ip_request(ip)
                .map_err(|e| bad(format!("network {network:?}: static IP {ip:?}: {e}")))?;
        }
        let mac = raw.runtime_config.mac.or(args_cni.mac).unwrap_or_default();
        if !mac.is_empty() {
            validate_mac(&mac)
                .map_err(|e| bad(format!("network {network:?}: mac {mac:?}: {e}")))?;
        }
        let mtu = raw.mtu.unwrap_or(0);
        if mtu != 0 && !(68..=65535).contains(&mtu) {
            return Err(bad(format!(
                "network {network:?}: mtu {mtu} is outside 68..=65535"
            )));
        }
        Ok(Self {
            cni_version,
            server_socket,
            provider,
            ipam_only,
            mtu,
            ips,
            mac,
            bandwidth: raw.runtime_config.bandwidth,
            prev_result: raw.prev_result,
            valid_attachments: raw.valid_attachments,
        })
    }
}

/// Checks a static address request: `10.0.0.5` or `10.0.0.5/24` (v4 or v6).
pub fn validate_ip_request(ip: &str) -> Result<(), String> {
    let (addr, prefix) = match ip.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (ip, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| "not an IP address".to_owned())?;
    if let Some(p) = prefix {
        let p: u8 = p
            .parse()
            .map_err(|_| format!("prefix {p:?} is not a number"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if p > max {
            return Err(format!("prefix /{p} is longer than /{max}"));
        }
    }
    Ok(())
}

/// Checks a MAC address: six hex octets separated by `:`, unicast.
pub fn validate_mac(mac: &str) -> Result<(), String> {
    let octets: Vec<&str> = mac.split(':').collect();
    if octets.len() != 6
        || octets
            .iter()
            .any(|o| o.len() != 2 || !o.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err("must be six hex octets separated by ':'".to_owned());
    }
    let first = u8::from_str_radix(octets[0], 16).map_err(|e| e.to_string())?;
    if first & 1 == 1 {
        return Err("is a multicast address".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_nad_config_parses_with_defaults() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"0.3.1","type":"kube-ovn","name":"kube-ovn-vpc-network",
                "server_socket":"/run/openvswitch/kube-ovn-daemon.sock",
                "provider":"kube-ovn-vpc-network.default.ovn"}"#,
        )
        .unwrap();
        assert_eq!(conf.provider, "kube-ovn-vpc-network.default.ovn");
        assert_eq!(conf.server_socket, DEFAULT_SERVER_SOCKET);
        assert!(!conf.ipam_only);
    }

    #[test]
    fn ipam_only_mode_takes_socket_and_provider_from_ipam() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.0.0","type":"macvlan","master":"eth0",
                "ipam":{"type":"kube-ovn","provider":"mv.default"}}"#,
        )
        .unwrap();
        assert!(conf.ipam_only);
        assert_eq!(conf.provider, "mv.default");
        assert_eq!(conf.server_socket, DEFAULT_SERVER_SOCKET);
    }

    #[test]
    fn runtime_config_wins_over_args_cni() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"p.ns.ovn",
                "runtimeConfig":{"ips":["10.0.0.5/24"],"bandwidth":{"ingressRate":1000}},
                "args":{"cni":{"ips":["10.0.0.9"],"mac":"02:00:00:00:00:01"}}}"#,
        )
        .unwrap();
        assert_eq!(conf.ips, ["10.0.0.5/24"]);
        assert_eq!(conf.mac, "02:00:00:00:00:01");
        assert_eq!(conf.bandwidth.unwrap().ingress_rate, 1000);
    }

    #[test]
    fn each_bad_config_class_has_its_code_and_message() {
        let cases: &[(&str, u32, &str)] = &[
            ("{not json", code::DECODE_FAILURE, "not valid JSON"),
            (
                r#"{"cniVersion":"0.2.0","type":"kube-ovn","provider":"p"}"#,
                code::INCOMPATIBLE_VERSION,
                "0.2.0",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"kube-ovn"}"#,
                code::INVALID_CONFIG,
                "has no provider",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"bridge"}"#,
                code::INVALID_CONFIG,
                "ipam.type is not",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"macvlan","ipam":{"type":"kube-ovn"}}"#,
                code::INVALID_CONFIG,
                "ipam.provider",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"p","server_socket":"rel.sock"}"#,
                code::INVALID_CONFIG,
                "absolute path",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"p","runtimeConfig":{"ips":["10.0.0.300"]}}"#,
                code::INVALID_CONFIG,
                "not an IP address",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"p","runtimeConfig":{"ips":["10.0.0.3/40"]}}"#,
                code::INVALID_CONFIG,
                "longer than /32",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"p","runtimeConfig":{"mac":"zz"}}"#,
                code::INVALID_CONFIG,
                "six hex octets",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"p","runtimeConfig":{"mac":"01:00:00:00:00:01"}}"#,
                code::INVALID_CONFIG,
                "multicast",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"p","mtu":20}"#,
                code::INVALID_CONFIG,
                "mtu 20",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"kube-ovn","provider":"p","runtimeConfig":{"ips":"x"}}"#,
                code::DECODE_FAILURE,
                "not valid JSON",
            ),
        ];
        for (input, want_code, want) in cases {
            let err = NetConf::parse(input.as_bytes()).unwrap_err();
            assert_eq!(err.code, *want_code, "{input}: {err}");
            assert!(
                err.msg.contains(want),
                "{input}: {:?} lacks {want:?}",
                err.msg
            );
        }
    }
}
