//! What an attachment asks the allocator for ([`Request`]), in typed values, and the parsers of
//! the text forms that carry it (the `ip_address`, `mac_address` and `ip_pool` annotations and
//! the selection element's `ips` and `mac`). The controller parses at its edge, where it reads
//! the annotations; the allocator takes only typed values. Parse errors name the owner key, as
//! every error of this crate does.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::addr::{Family, MacAddr};
use crate::error::Error;

/// How a dynamic address is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Uniformly at random over the free addresses of the zone (`O(log n)`).
    #[default]
    Random,
    /// The next free address after the one this policy handed out last in the zone, wrapping
    /// around at the end; on a fresh subnet that is the lowest free address. A just-released
    /// address is therefore not reused at once (stale ARP and conntrack entries of the previous
    /// owner age out first).
    Sequential,
}

/// A static address asked for: bare (`10.0.0.5`) or in CIDR form (`10.0.0.5/24`), whose
/// prefix must then be the subnet's. The one type for it: the NPWG selection element's `ips`
/// (`crds::networks`) and the `ip_address` annotation ([`parse_ips`]) both parse into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpRequest {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length, when written in CIDR form.
    pub prefix_len: Option<u8>,
}

impl IpRequest {
    /// A bare address.
    pub fn bare(addr: IpAddr) -> Self {
        Self {
            addr,
            prefix_len: None,
        }
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }
}

impl fmt::Display for IpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len {
            Some(p) => write!(f, "{}/{p}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Why a string is not an [`IpRequest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an IP address or CIDR")]
pub struct ParseIpRequestError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for IpRequest {
    type Err = ParseIpRequestError;

    /// Parses `10.0.0.5` or `10.0.0.5/24` (no blanks).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| ParseIpRequestError {
            input: s.to_owned(),
            reason,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid("not an IP address"))?;
        let prefix_len = match prefix {
            None => None,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= Family::of(&addr).bits() => Some(prefix),
                _ => return Err(invalid("the prefix length is not valid for the family")),
            },
        };
        Ok(Self { addr, prefix_len })
    }
}

/// Parses static addresses as the `ip_address` annotation carries them: comma-joined, each
/// bare or in CIDR form, blanks around items and empty items ignored. At most one per family
/// is checked by [`crate::Ipam::allocate`], not here.
pub fn parse_ips(key: &str, text: &str) -> Result<Vec<IpRequest>, Error> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            entry
                .parse()
                .map_err(|e: ParseIpRequestError| Error::InvalidAddress {
                    key: key.to_owned(),
                    input: e.input,
                    reason: e.reason.to_owned(),
                })
        })
        .collect()
}

/// Parses a requested MAC (`aa:bb:cc:dd:ee:ff` or with `-`, either case), which must be an
/// interface address: unicast and not all-zero.
pub fn parse_mac(key: &str, text: &str) -> Result<MacAddr, Error> {
    let mac: MacAddr = text.parse().map_err(|_| Error::InvalidMac {
        key: key.to_owned(),
        input: text.to_owned(),
        reason: "not six hex octets separated by ':' or '-'".to_owned(),
    })?;
    check_interface_mac(key, mac, text)?;
    Ok(mac)
}

/// Refuses a MAC that cannot be an interface's (`input` is how the request wrote it).
pub(crate) fn check_interface_mac(key: &str, mac: MacAddr, input: &str) -> Result<(), Error> {
    let invalid = |reason: &str| Error::InvalidMac {
        key: key.to_owned(),
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    if mac.is_multicast() {
        return Err(invalid("a multicast MAC cannot be an interface address"));
    }
    if mac.is_zero() {
        return Err(invalid("the all-zero MAC is not an interface address"));
    }
    Ok(())
}

/// How the MAC address is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MacRequest {
    /// A random locally administered unicast MAC, unique in the subnet.
    #[default]
    Random,
    /// This MAC; must be unicast, non-zero, unique in the subnet.
    Static(MacAddr),
    /// No MAC (IPAM-only attachments such as macvlan get theirs from the kernel).
    None,
}

/// The `ip_pool` annotation's list of addresses, parsed ([`IpList::parse`]): entries in order,
/// each one address (a plain comma list) or one address per family (`;`-separated groups of
/// comma-joined addresses, upstream's dual-stack form). It keeps the text as written, which
/// errors quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpList {
    /// The list as written (trimmed).
    text: String,
    /// Each address with its text as given.
    pub(crate) entries: Vec<[Option<(IpAddr, String)>; 2]>,
    /// `;` form: an entry is taken as a whole. Plain form: each family takes its own first free
    /// address.
    pub(crate) grouped: bool,
}

impl IpList {
    /// Parses `10.16.0.15,10.16.0.16` or `10.16.0.15,fd00::f;10.16.0.16,fd00::10`; an error
    /// names `key`, the list and the entry.
    pub fn parse(key: &str, list: &str) -> Result<Self, Error> {
        let invalid = |entry: &str, reason: &str| Error::InvalidIpList {
            key: key.to_owned(),
            list: list.to_owned(),
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let parse = |entry: &str| -> Result<(IpAddr, String), Error> {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(invalid(entry, "empty entry"));
            }
            let ip = entry
                .parse()
                .map_err(|_| invalid(entry, "not an IP address"))?;
            Ok((ip, entry.to_owned()))
        };
        let grouped = list.contains(';');
        let mut entries = Vec::new();
        if grouped {
            for group in list.split(';') {
                let mut entry: [Option<(IpAddr, String)>; 2] = [None, None];
                for address in group.split(',') {
                    let (ip, text) = parse(address)?;
                    let slot = &mut entry[Family::of(&ip).index()];
                    if slot.is_some() {
                        return Err(invalid(
                            group.trim(),
                            &format!("two {} addresses in one entry", Family::of(&ip)),
                        ));
                    }
                    *slot = Some((ip, text));
                }
                entries.push(entry);
            }
        } else {
            for address in list.split(',') {
                let (ip, text) = parse(address)?;
                let mut entry: [Option<(IpAddr, String)>; 2] = [None, None];
                entry[Family::of(&ip).index()] = Some((ip, text));
                entries.push(entry);
            }
        }
        Ok(Self {
            text: list.to_owned(),
            entries,
            grouped,
        })
    }

    /// The list as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for IpList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What an attachment asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Static addresses, at most one per family. Families without a static address get a
    /// dynamic one.
    pub ips: Vec<IpRequest>,
    /// The MAC.
    pub mac: MacRequest,
    /// The IP pool to allocate from (`ip_pool` annotation naming an `IPPool`).
    pub pool: Option<String>,
    /// The `ip_pool` annotation's other form, a list of addresses: with a plain list each
    /// family takes its first address that no other key holds; with a grouped (dual-stack)
    /// list the first entry whose addresses are all free is taken whole. Every entry must be
    /// an address the subnet can hand out. Families with a static address in `ips` ignore the
    /// list; families the list has no address of are allocated by `policy`. Cannot be combined
    /// with `pool`.
    pub ip_list: Option<IpList>,
    /// How dynamic addresses are picked.
    pub policy: Policy,
}

impl Request {
    /// Random addresses and a random MAC.
    pub fn random() -> Self {
        Self::default()
    }

    /// Sequential addresses and a random MAC.
    pub fn sequential() -> Self {
        Self {
            policy: Policy::Sequential,
            ..Self::default()
        }
    }

    /// Adds static addresses.
    pub fn with_ips(mut self, ips: impl IntoIterator<Item = IpRequest>) -> Self {
        self.ips.extend(ips);
        self
    }

    /// Asks for this MAC.
    pub fn with_mac(mut self, mac: MacAddr) -> Self {
        self.mac = MacRequest::Static(mac);
        self
    }

    /// Asks for no MAC.
    pub fn without_mac(mut self) -> Self {
        self.mac = MacRequest::None;
        self
    }

    /// Allocates from this IP pool.
    pub fn in_pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Allocates from this list of addresses (see [`Request::ip_list`]).
    pub fn in_ip_list(mut self, list: IpList) -> Self {
        self.ip_list = Some(list);
        self
    }

    /// Applies an `ip_pool` annotation value as upstream Kube-OVN reads it: a list of addresses
    /// if it contains `,` or `;` or is itself an IP address ([`Request::in_ip_list`], parsed
    /// here; an error names `key`), else the name of an `IPPool` ([`Request::in_pool`]).
    /// IPPool names cannot be IP addresses for this reason.
    pub fn with_ip_pool(self, key: &str, annotation: &str) -> Result<Self, Error> {
        let value = annotation.trim();
        if value.contains([',', ';']) || value.parse::<IpAddr>().is_ok() {
            Ok(self.in_ip_list(IpList::parse(key, value)?))
        } else {
            Ok(self.in_pool(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ip_requests_parse_bare_or_cidr_and_say_what_is_wrong() {
        let v4: IpRequest = "10.0.0.5".parse().unwrap();
        assert_eq!((v4.prefix_len, v4.family()), (None, Family::V4));
        let v6: IpRequest = "fd00::5/64".parse().unwrap();
        assert_eq!((v6.prefix_len, v6.family()), (Some(64), Family::V6));
        for (input, reason) in [
            ("10.0.0.300", "not an IP address"),
            (
                "10.0.0.5/33",
                "the prefix length is not valid for the family",
            ),
            (
                "fd00::5/129",
                "the prefix length is not valid for the family",
            ),
            ("10.0.0.5/", "the prefix length is not valid for the family"),
            (" 10.0.0.5", "not an IP address"),
        ] {
            let err = input.parse::<IpRequest>().unwrap_err();
            assert_eq!(err.reason, reason, "{input:?}");
            assert_eq!(
                err.to_string(),
                format!("{input:?} is not an IP address or CIDR")
            );
        }
    }

    #[test]
    fn an_ip_address_annotation_splits_on_commas_and_skips_blanks() {
        let ips = parse_ips("k", " 10.0.0.5/24 , ,fd00::5").unwrap();
        assert_eq!(
            ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.5/24", "fd00::5"]
        );
        assert_eq!(parse_ips("k", ""), Ok(Vec::new()));
    }

    proptest! {
        /// What an IpRequest prints is what it parses from.
        #[test]
        fn ip_request_display_parses_back(
            addr in any::<std::net::IpAddr>(),
            prefix in proptest::option::of(0u8..=128),
        ) {
            let prefix_len = prefix.filter(|p| *p <= Family::of(&addr).bits());
            let request = IpRequest { addr, prefix_len };
            prop_assert_eq!(request.to_string().parse::<IpRequest>(), Ok(request));
        }
    }
}
