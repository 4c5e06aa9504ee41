//! Address families, MAC addresses, and the parsing of address entries (`10.0.0.5`,
//! `10.0.0.10..10.0.0.20`, `10.0.0.0/28`) shared by `excludeIps` and `IPPool.spec.ips`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Index into per-family arrays: 0 for IPv4, 1 for IPv6.
    pub(crate) fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }

    /// Address width in bits.
    pub(crate) fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    pub(crate) const ALL: [Family; 2] = [Family::V4, Family::V6];
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The address as a number.
pub(crate) fn to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

/// The number as an address of `family` (IPv4 keeps the low 32 bits, which is all it ever has).
pub(crate) fn from_u128(family: Family, value: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// An inclusive range of addresses of one family, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) family: Family,
    pub(crate) start: u128,
    pub(crate) end: u128,
}

/// Parses one `excludeIps` / pool entry: a bare address, `first..last`, or a CIDR (whose host
/// bits are ignored, as upstream's `net.ParseCIDR` does). Returns the reason on failure.
pub(crate) fn parse_span(entry: &str) -> Result<Span, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("empty entry".to_owned());
    }
    if let Some((first, last)) = entry.split_once("..") {
        let first: IpAddr = first
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not an IP address", first.trim()))?;
        let last: IpAddr = last
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not an IP address", last.trim()))?;
        if Family::of(&first) != Family::of(&last) {
            return Err("the two ends of the range are of different families".to_owned());
        }
        let (start, end) = (to_u128(&first), to_u128(&last));
        if start > end {
            return Err(format!("range start {first} is after its end {last}"));
        }
        return Ok(Span {
            family: Family::of(&first),
            start,
            end,
        });
    }
    if entry.contains('/') {
        let net: IpNet = entry.parse().map_err(|_| "not a valid CIDR".to_owned())?;
        let family = Family::of(&net.addr());
        return Ok(Span {
            family,
            start: to_u128(&net.network()),
            end: to_u128(&net.broadcast()),
        });
    }
    let ip: IpAddr = entry
        .parse()
        .map_err(|_| "not an IP address, a..b range or CIDR".to_owned())?;
    let value = to_u128(&ip);
    Ok(Span {
        family: Family::of(&ip),
        start: value,
        end: value,
    })
}

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random locally administered unicast address from 48 random bits: the first octet gets
    /// the local bit set and the multicast bit cleared (`& 0xfe | 0x02`).
    pub(crate) fn local_unicast_from(bits: u64) -> Self {
        let b = bits.to_be_bytes();
        MacAddr([(b[2] & 0xfe) | 0x02, b[3], b[4], b[5], b[6], b[7]])
    }

    /// Whether the group (multicast/broadcast) bit is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 == 0x01
    }

    /// Whether this is `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a MAC address (six hex octets separated by ':' or '-')")]
pub struct ParseMacError {
    /// The rejected input.
    pub input: String,
}

impl FromStr for MacAddr {
    type Err = ParseMacError;

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError {
            input: s.to_owned(),
        };
        let separator = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(separator);
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse() {
        type Expected = Option<(Family, u128, u128)>;
        let cases: &[(&str, Expected)] = &[
            ("10.0.0.5", Some((Family::V4, 0x0a00_0005, 0x0a00_0005))),
            (
                " 10.0.0.10..10.0.0.20 ",
                Some((Family::V4, 0x0a00_000a, 0x0a00_0014)),
            ),
            ("10.0.0.0/30", Some((Family::V4, 0x0a00_0000, 0x0a00_0003))),
            ("10.0.0.7/30", Some((Family::V4, 0x0a00_0004, 0x0a00_0007))),
            (
                "fd00::1..fd00::3",
                Some((Family::V6, 0xfd00 << 112 | 1, 0xfd00 << 112 | 3)),
            ),
            ("10.0.0.20..10.0.0.10", None),
            ("10.0.0.1..fd00::1", None),
            ("10.0.0.256", None),
            ("10.0.0.0/33", None),
            ("", None),
            ("hello", None),
            ("10.0.0.1..", None),
        ];
        for (input, expected) in cases {
            let got = parse_span(input).ok().map(|s| (s.family, s.start, s.end));
            assert_eq!(got, *expected, "{input}");
        }
    }

    #[test]
    fn macs_parse_and_print() {
        let mac: MacAddr = "0A-1b-2C-3d-4E-5f".parse().unwrap();
        assert_eq!(mac.to_string(), "0a:1b:2c:3d:4e:5f");
        for bad in [
            "",
            "0a:1b:2c:3d:4e",
            "0a:1b:2c:3d:4e:5f:00",
            "0a:1b:2c:3d:4e:zz",
            "a:1b:2c:3d:4e:5f",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        let random = MacAddr::local_unicast_from(u64::MAX);
        assert_eq!(random.0[0], 0xfe);
        assert!(!random.is_multicast());
        assert_eq!(MacAddr::local_unicast_from(0).0[0], 0x02);
    }
}
