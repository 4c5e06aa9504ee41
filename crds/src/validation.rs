//! Field-level checks shared by every `validate()` in this crate: Kubernetes name rules
//! (RFC 1123), IP addresses, CIDRs, address ranges and MAC addresses.
//!
//! Each check takes the field's JSON path so its error names the field and the value.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Longest DNS-1123 subdomain (object names, NAD names, providers).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest DNS-1123 label (namespaces).
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

fn is_label_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && !first.is_ascii_uppercase()
                && last.is_ascii_alphanumeric()
                && !last.is_ascii_uppercase()
                && b.iter().all(|c| is_label_char(*c))
        }
        _ => false,
    }
}

/// Checks an RFC 1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters), the rule
/// for namespace names.
pub fn dns1123_label(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::missing(field));
    }
    if value.len() > DNS1123_LABEL_MAX {
        return Err(Error::invalid(
            field,
            value,
            format!(
                "must be at most {DNS1123_LABEL_MAX} characters, has {}",
                value.len()
            ),
        ));
    }
    if !is_label(value) {
        return Err(Error::invalid(
            field,
            value,
            "must be a lowercase RFC 1123 label: a-z, 0-9 and '-', starting and ending with a \
             letter or digit",
        ));
    }
    Ok(())
}

/// Checks an RFC 1123 subdomain (labels joined by `.`, at most 253 characters), the rule for
/// object names.
pub fn dns1123_subdomain(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::missing(field));
    }
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(Error::invalid(
            field,
            value,
            format!(
                "must be at most {DNS1123_SUBDOMAIN_MAX} characters, has {}",
                value.len()
            ),
        ));
    }
    if !value.split('.').all(is_label) {
        return Err(Error::invalid(
            field,
            value,
            "must be a lowercase RFC 1123 subdomain: a-z, 0-9, '-' and '.', starting and ending \
             with a letter or digit",
        ));
    }
    Ok(())
}

/// Checks a Linux interface name as Multus and the kernel accept it: 1..=15 bytes, no `/`, no
/// whitespace, not `.` or `..`.
pub fn interface_name(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::missing(field));
    }
    if value.len() > IFNAME_MAX {
        return Err(Error::invalid(
            field,
            value,
            format!(
                "interface names are at most {IFNAME_MAX} bytes, has {}",
                value.len()
            ),
        ));
    }
    if value == "." || value == ".." || value.chars().any(|c| c == '/' || c.is_whitespace()) {
        return Err(Error::invalid(
            field,
            value,
            "interface names must not contain '/' or whitespace and must not be '.' or '..'",
        ));
    }
    Ok(())
}

/// Parses an IP address (v4 or v6).
pub fn ip(field: &str, value: &str) -> Result<IpAddr> {
    IpAddr::from_str(value).map_err(|_| Error::invalid(field, value, "not an IP address"))
}

/// Parses a CIDR (`address/prefix`); host bits may be set (`10.0.0.1/24` names `10.0.0.0/24`).
pub fn cidr(field: &str, value: &str) -> Result<IpNet> {
    if !value.contains('/') {
        return Err(Error::invalid(
            field,
            value,
            "not a CIDR: missing '/<prefix length>'",
        ));
    }
    IpNet::from_str(value).map_err(|_| Error::invalid(field, value, "not a CIDR"))
}

/// Parses Kube-OVN's CIDR list: one CIDR, or an IPv4 and an IPv6 CIDR joined by a comma (dual
/// stack). Returns the networks (host bits cleared) in the order written.
pub fn cidr_list(field: &str, value: &str) -> Result<Vec<IpNet>> {
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() > 2 {
        return Err(Error::invalid(
            field,
            value,
            "at most two CIDRs (one IPv4, one IPv6) separated by a comma",
        ));
    }
    let nets = parts
        .iter()
        .map(|p| cidr(field, p).map(|n| n.trunc()))
        .collect::<Result<Vec<_>>>()?;
    if let [a, b] = nets.as_slice()
        && is_v4(a) == is_v4(b)
    {
        return Err(Error::invalid(
            field,
            value,
            "a dual-stack value needs one IPv4 and one IPv6 CIDR",
        ));
    }
    Ok(nets)
}

/// Parses a comma-separated list of one or two IP addresses (dual-stack gateways, IP CRs).
pub fn ip_list(field: &str, value: &str) -> Result<Vec<IpAddr>> {
    let ips = value
        .split(',')
        .map(|p| ip(field, p))
        .collect::<Result<Vec<_>>>()?;
    if ips.len() > 2 {
        return Err(Error::invalid(
            field,
            value,
            "at most one IPv4 and one IPv6 address",
        ));
    }
    if let [a, b] = ips.as_slice()
        && a.is_ipv4() == b.is_ipv4()
    {
        return Err(Error::invalid(
            field,
            value,
            "a dual-stack value needs one IPv4 and one IPv6",
        ));
    }
    Ok(ips)
}

/// Parses an address or an inclusive range `first..last` (Kube-OVN's `excludeIps` syntax).
pub fn ip_or_range(field: &str, value: &str) -> Result<(IpAddr, IpAddr)> {
    match value.split_once("..") {
        None => ip(field, value).map(|a| (a, a)),
        Some((first, last)) => {
            let first = ip(field, first.trim())
                .map_err(|_| Error::invalid(field, value, "range start is not an IP address"))?;
            let last = ip(field, last.trim())
                .map_err(|_| Error::invalid(field, value, "range end is not an IP address"))?;
            if first.is_ipv4() != last.is_ipv4() {
                return Err(Error::invalid(field, value, "range mixes IPv4 and IPv6"));
            }
            if first > last {
                return Err(Error::invalid(field, value, "range start is after its end"));
            }
            Ok((first, last))
        }
    }
}

/// Whether `net` is IPv4.
pub fn is_v4(net: &IpNet) -> bool {
    matches!(net, IpNet::V4(_))
}

/// A hardware address: 6 bytes (Ethernet), 8 (EUI-64) or 20 (InfiniBand), written as hex pairs
/// separated by `:` or `-` (the forms Go's `net.ParseMAC` accepts, which Multus uses).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddress(Vec<u8>);

impl MacAddress {
    /// The address bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether this is a 6-byte Ethernet address.
    pub fn is_ethernet(&self) -> bool {
        self.0.len() == 6
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddress({self})")
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a string is not a [`MacAddress`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address: expected 6, 8 or 20 hex pairs separated by ':' or '-'")]
pub struct MacParseError;

impl FromStr for MacAddress {
    type Err = MacParseError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let sep = if s.contains(':') { ':' } else { '-' };
        let bytes = s
            .split(sep)
            .map(|pair| {
                if pair.len() == 2 && pair.bytes().all(|c| c.is_ascii_hexdigit()) {
                    u8::from_str_radix(pair, 16).map_err(|_| MacParseError)
                } else {
                    Err(MacParseError)
                }
            })
            .collect::<std::result::Result<Vec<u8>, _>>()?;
        if matches!(bytes.len(), 6 | 8 | 20) {
            Ok(Self(bytes))
        } else {
            Err(MacParseError)
        }
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: MacParseError| serde::de::Error::custom(format!("{s:?}: {e}")))
    }
}

/// Parses a MAC address field.
pub fn mac(field: &str, value: &str) -> Result<MacAddress> {
    value
        .parse()
        .map_err(|e: MacParseError| Error::invalid(field, value, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_label("n", "default").is_ok());
        assert!(dns1123_label("n", "a.b").is_err());
        assert!(dns1123_subdomain("n", "kube-ovn-vpc-network.default.ovn").is_ok());
        assert!(dns1123_subdomain("n", "-a").is_err());
        assert!(dns1123_subdomain("n", "A").is_err());
        assert!(dns1123_subdomain("n", "a..b").is_err());
        assert!(dns1123_subdomain("n", &"a".repeat(253)).is_ok());
        let long = dns1123_subdomain("metadata.name", &"a".repeat(254)).unwrap_err();
        assert!(
            long.to_string()
                .contains("must be at most 253 characters, has 254"),
            "{long}"
        );
    }

    #[test]
    fn cidrs_and_ranges() {
        assert_eq!(
            cidr_list("c", "10.0.0.1/24").unwrap()[0].to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(cidr_list("c", "10.0.0.0/24,fd00::/64").unwrap().len(), 2);
        assert!(cidr_list("c", "10.0.0.0/24,10.1.0.0/24").is_err());
        assert!(cidr_list("c", "10.0.0.0").is_err());
        assert!(ip_list("g", "10.0.0.1,fd00::1").is_ok());
        assert!(ip_or_range("x", "10.0.0.1..10.0.0.9").is_ok());
        assert!(ip_or_range("x", "10.0.0.9..10.0.0.1").is_err());
        assert!(ip_or_range("x", "10.0.0.1..fd00::1").is_err());
    }

    #[test]
    fn macs() {
        let m: MacAddress = "0A:58:0a:00:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "0a:58:0a:00:00:01");
        assert!(m.is_ethernet());
        assert!("0a-58-0a-00-00-01".parse::<MacAddress>().is_ok());
        assert!("0a:58:0a:00:00".parse::<MacAddress>().is_err());
        assert!("zz:58:0a:00:00:01".parse::<MacAddress>().is_err());
        assert!("".parse::<MacAddress>().is_err());
    }
}
