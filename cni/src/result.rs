//! The ADD result, shaped for the `cniVersion` the runtime asked for.
//!
//! Multus builds `network-status` from it, so it lists exactly one interface (the pod-side one,
//! with `sandbox` set) and every IP with `"interface": 0`. Versions 0.3.x and 0.4.0 carry a
//! `version` field on each IP; 1.0.0 and later drop it.

use serde_json::{Value, json};

use crate::api::proto::AddResponse;

/// Renders `resp` as the CNI result for `cni_version`. `ifname` and `sandbox` (the netns path)
/// describe the pod interface; IPAM-only results list no interface.
pub fn render(
    cni_version: &str,
    resp: &AddResponse,
    ifname: &str,
    sandbox: &str,
    ipam_only: bool,
) -> Value {
    let legacy = matches!(cni_version, "0.3.0" | "0.3.1" | "0.4.0");
    let ips: Vec<Value> = resp
        .ips
        .iter()
        .map(|ip| {
            let mut entry = serde_json::Map::new();
            if legacy {
                let family = if ip.address.contains(':') { "6" } else { "4" };
                entry.insert("version".into(), json!(family));
            }
            entry.insert("address".into(), json!(ip.address));
            if !ip.gateway.is_empty() {
                entry.insert("gateway".into(), json!(ip.gateway));
            }
            if !ipam_only {
                entry.insert("interface".into(), json!(0));
            }
            Value::Object(entry)
        })
        .collect();
    let routes: Vec<Value> = resp
        .routes
        .iter()
        .map(|r| {
            if r.gw.is_empty() {
                json!({"dst": r.dst})
            } else {
                json!({"dst": r.dst, "gw": r.gw})
            }
        })
        .collect();
    let mut result = serde_json::Map::new();
    result.insert("cniVersion".into(), json!(cni_version));
    if !ipam_only {
        let mut iface = serde_json::Map::new();
        iface.insert("name".into(), json!(ifname));
        iface.insert("mac".into(), json!(resp.mac));
        if cni_version == "1.1.0" && resp.mtu != 0 {
            iface.insert("mtu".into(), json!(resp.mtu));
        }
        iface.insert("sandbox".into(), json!(sandbox));
        result.insert("interfaces".into(), json!([Value::Object(iface)]));
    }
    result.insert("ips".into(), Value::Array(ips));
    if !routes.is_empty() {
        result.insert("routes".into(), Value::Array(routes));
    }
    result.insert("dns".into(), json!({}));
    Value::Object(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::{IpConfig, Route};

    fn dual_stack() -> AddResponse {
        AddResponse {
            mac: "02:00:00:00:00:05".into(),
            mtu: 1400,
            ips: vec![
                IpConfig {
                    address: "10.100.0.5/16".into(),
                    gateway: "10.100.0.1".into(),
                },
                IpConfig {
                    address: "fd00::5/64".into(),
                    gateway: "fd00::1".into(),
                },
            ],
            routes: vec![Route {
                dst: "0.0.0.0/0".into(),
                gw: "10.100.0.1".into(),
            }],
            host_ifname: "abc_net1_h".into(),
        }
    }

    #[test]
    fn legacy_versions_carry_ip_version_and_one_interface() {
        for v in ["0.3.0", "0.3.1", "0.4.0"] {
            let r = render(v, &dual_stack(), "net1", "/var/run/netns/p", false);
            assert_eq!(r["cniVersion"], v);
            assert_eq!(r["interfaces"].as_array().unwrap().len(), 1);
            assert_eq!(r["interfaces"][0]["sandbox"], "/var/run/netns/p");
            assert_eq!(r["ips"][0]["version"], "4");
            assert_eq!(r["ips"][1]["version"], "6");
            assert!(
                r["ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|ip| ip["interface"] == 0)
            );
            assert!(r["interfaces"][0].get("mtu").is_none());
        }
    }

    #[test]
    fn v1_drops_ip_version_and_1_1_adds_mtu() {
        let r = render("1.0.0", &dual_stack(), "net1", "/ns", false);
        assert!(r["ips"][0].get("version").is_none());
        assert!(r["interfaces"][0].get("mtu").is_none());
        let r = render("1.1.0", &dual_stack(), "net1", "/ns", false);
        assert_eq!(r["interfaces"][0]["mtu"], 1400);
        assert_eq!(
            r["routes"][0],
            json!({"dst": "0.0.0.0/0", "gw": "10.100.0.1"})
        );
    }

    #[test]
    fn ipam_only_results_list_no_interface() {
        let r = render("1.0.0", &dual_stack(), "net1", "/ns", true);
        assert!(r.get("interfaces").is_none());
        assert!(r["ips"][0].get("interface").is_none());
    }
}
