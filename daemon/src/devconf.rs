//! Per-interface IPv4 settings (`/proc/sys/net/ipv4/conf/<if>/*`) read and written over
//! rtnetlink instead of `/proc/sys`.
//!
//! Why: a container's `/proc/sys` is read-only unless the container is privileged (runc's
//! read-only paths), and runc refuses bind mounts under `/proc`, so a daemon that writes a
//! sysctl file must run privileged. The same value can be set with `RTM_SETLINK` carrying
//! `IFLA_AF_SPEC` → `AF_INET` → `IFLA_INET_CONF` → `{IPV4_DEVCONF_<id>: u32}`, which the kernel
//! allows with `CAP_NET_ADMIN` in the interface's network namespace (`rtnetlink_rcv_msg`), and
//! reads back from `RTM_GETLINK`'s `IFLA_INET_CONF` (the whole devconf array).
//!
//! The attribute is built from the crate's generic NLA types: netlink-packet-route 0.34 has a
//! request form (`AfSpecInet::DevConfRequest`), but it leaves out every entry whose value is 0,
//! so it cannot set a value back to 0 (what giving a NIC back needs).

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::LinkUnspec;
use rtnetlink::packet_core::{DefaultNla, NLA_F_NESTED};
use rtnetlink::packet_route::link::{AfSpecInet, AfSpecUnspec, LinkAttribute, LinkMessage};

/// `IFLA_INET_CONF` in `linux/if_link.h`: the devconf array inside `IFLA_AF_SPEC`/`AF_INET`.
const IFLA_INET_CONF: u16 = 1;

/// An IPv4 per-interface setting, by its `IPV4_DEVCONF_*` id (`linux/ip.h`, 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Conf {
    /// `forwarding` (`IPV4_DEVCONF_FORWARDING` = 1): whether packets received on the interface
    /// are routed on (the kernel checks the input interface's own value; `ip_forward` is only
    /// the switch that writes every interface's at once).
    Forwarding,
    /// `rp_filter` (`IPV4_DEVCONF_RP_FILTER` = 8): reverse-path filtering of what the
    /// interface receives (0 off, 1 strict, 2 loose); the kernel uses the larger of the
    /// interface's value and `all`'s.
    RpFilter,
    /// `arp_ignore` (`IPV4_DEVCONF_ARP_IGNORE` = 19): which ARP requests the interface answers.
    ArpIgnore,
}

impl Ipv4Conf {
    /// The `IPV4_DEVCONF_*` id, as `linux/ip.h` numbers it (checked against the installed
    /// header by a test).
    pub fn id(self) -> u16 {
        match self {
            Ipv4Conf::Forwarding => 1,
            Ipv4Conf::RpFilter => 8,
            Ipv4Conf::ArpIgnore => 19,
        }
    }

    /// The name under `/proc/sys/net/ipv4/conf/<if>/`.
    pub fn sysctl_name(self) -> &'static str {
        match self {
            Ipv4Conf::Forwarding => "forwarding",
            Ipv4Conf::RpFilter => "rp_filter",
            Ipv4Conf::ArpIgnore => "arp_ignore",
        }
    }

    fn read(self, conf: &rtnetlink::packet_route::link::InetDevConf) -> i32 {
        match self {
            Ipv4Conf::Forwarding => conf.forwarding,
            Ipv4Conf::RpFilter => conf.rp_filter,
            Ipv4Conf::ArpIgnore => conf.arp_ignore,
        }
    }
}

/// Why a devconf value could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DevConfError {
    /// The netlink request failed (`EPERM` without `CAP_NET_ADMIN`).
    #[error("{step} of link {index}: {source}")]
    Netlink {
        /// What was being done.
        step: String,
        /// The link's index.
        index: u32,
        /// The netlink error.
        source: rtnetlink::Error,
    },
    /// The kernel's answer had no IPv4 devconf for the link.
    #[error("link {index} has no IPv4 settings (no IFLA_INET_CONF in RTM_GETLINK)")]
    Missing {
        /// The link's index.
        index: u32,
    },
}

/// The `RTM_SETLINK` message that sets `conf` of link `index` to `value` and nothing else.
pub fn set_message(index: u32, conf: Ipv4Conf, value: u32) -> LinkMessage {
    let entry = DefaultNla::new(conf.id(), value.to_ne_bytes().to_vec());
    let mut entries = vec![0; rtnetlink::packet_core::Emitable::buffer_len(&entry)];
    rtnetlink::packet_core::Emitable::emit(&entry, &mut entries);
    let mut msg = LinkUnspec::new_with_index(index).build();
    msg.attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
            AfSpecInet::Other(DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, entries)),
        ])]));
    msg
}

/// The value of `conf` in a link message from `RTM_GETLINK`, if it carries the IPv4 devconf.
pub fn value_in(msg: &LinkMessage, conf: Ipv4Conf) -> Option<i32> {
    msg.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::AfSpecUnspec(families) => families.iter().find_map(|f| match f {
            AfSpecUnspec::Inet(inet) => inet.iter().find_map(|a| match a {
                AfSpecInet::DevConf(c) => Some(conf.read(c)),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// Sets `conf` of link `index` (in the namespace of `nl`) to `value`.
pub async fn set(nl: &Handle, index: u32, conf: Ipv4Conf, value: u32) -> Result<(), DevConfError> {
    nl.link()
        .set(set_message(index, conf, value))
        .execute()
        .await
        .map_err(|source| DevConfError::Netlink {
            step: format!("setting {} to {value}", conf.sysctl_name()),
            index,
            source,
        })
}

/// Reads `conf` of link `index` (in the namespace of `nl`).
pub async fn get(nl: &Handle, index: u32, conf: Ipv4Conf) -> Result<i32, DevConfError> {
    let mut links = nl.link().get().match_index(index).execute();
    let msg = links
        .try_next()
        .await
        .map_err(|source| DevConfError::Netlink {
            step: format!("reading {}", conf.sysctl_name()),
            index,
            source,
        })?
        .ok_or(DevConfError::Missing { index })?;
    value_in(&msg, conf).ok_or(DevConfError::Missing { index })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::{Emitable, Parseable};

    /// The ids are the kernel's: read them from the installed `linux/ip.h` (the enum starts at
    /// `IPV4_DEVCONF_FORWARDING=1` and counts up).
    #[test]
    fn the_devconf_ids_match_linux_ip_h() {
        let header = std::fs::read_to_string("/usr/include/linux/ip.h")
            .expect("/usr/include/linux/ip.h (apt-get install linux-libc-dev)");
        let names: Vec<&str> = header
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("IPV4_DEVCONF_") && !l.starts_with("IPV4_DEVCONF_MAX"))
            .map(|l| {
                l.trim_end_matches(',')
                    .split('=')
                    .next()
                    .unwrap_or(l)
                    .trim()
            })
            .collect();
        assert_eq!(names.first(), Some(&"IPV4_DEVCONF_FORWARDING"), "{names:?}");
        for conf in [
            Ipv4Conf::Forwarding,
            Ipv4Conf::RpFilter,
            Ipv4Conf::ArpIgnore,
        ] {
            let name = format!("IPV4_DEVCONF_{}", conf.sysctl_name().to_uppercase());
            let position = names
                .iter()
                .position(|n| *n == name)
                .unwrap_or_else(|| panic!("{name} in linux/ip.h"));
            assert_eq!(usize::from(conf.id()), position + 1, "{name}");
        }
    }

    /// The bytes the kernel gets: IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF (nested) { 19: value
    /// } } }, a 0 included (the crate's own request form would drop it).
    #[test]
    fn the_set_message_carries_one_nested_devconf_entry_even_for_zero() {
        for value in [0u32, 8] {
            let msg = set_message(7, Ipv4Conf::ArpIgnore, value);
            let mut buf = vec![0; msg.buffer_len()];
            msg.emit(&mut buf);
            let mut tail = Vec::new();
            // IFLA_AF_SPEC (26): three headers of 4 bytes above one 8-byte entry.
            tail.extend_from_slice(&20u16.to_ne_bytes());
            tail.extend_from_slice(&26u16.to_ne_bytes());
            // AF_INET (2).
            tail.extend_from_slice(&16u16.to_ne_bytes());
            tail.extend_from_slice(&2u16.to_ne_bytes());
            // IFLA_INET_CONF | NLA_F_NESTED.
            tail.extend_from_slice(&12u16.to_ne_bytes());
            tail.extend_from_slice(&(1u16 | 0x8000).to_ne_bytes());
            // IPV4_DEVCONF_ARP_IGNORE: u32.
            tail.extend_from_slice(&8u16.to_ne_bytes());
            tail.extend_from_slice(&19u16.to_ne_bytes());
            tail.extend_from_slice(&value.to_ne_bytes());
            assert!(buf.ends_with(&tail), "value {value}: {buf:?}");
            // The header names the link and changes no flag.
            let parsed = LinkMessage::parse(buf.as_slice()).unwrap();
            assert_eq!(parsed.header.index, 7);
            assert!(parsed.header.change_mask.is_empty());
        }
    }

    #[test]
    fn a_link_message_without_inet_conf_has_no_value() {
        let msg = LinkUnspec::new_with_index(3).build();
        assert_eq!(value_in(&msg, Ipv4Conf::ArpIgnore), None);
    }
}
