//! The `ovn-trace` microflow of one attachment (pure).
//!
//! A packet leaves the pod's interface: `inport` is the attachment's logical switch port
//! (`<pod>.<ns>.<provider>`, [`crds::naming::lsp_name`]), `eth.src`/`ip4.src` (or `ip6.src`)
//! are the port's own addresses as Northbound holds them. `eth.dst` is what the pod would
//! resolve by ARP/ND: the destination's own MAC when it is on the same subnet, else the MAC of
//! the VPC's router port on that subnet (the pod's gateway).

use std::net::IpAddr;

use ipnet::IpNet;

use super::KoError;
use super::cli::Protocol;

/// The source port of traced TCP and UDP packets.
pub const SOURCE_PORT: u16 = 10000;

/// A logical switch port's first `addresses` entry: `"<mac> <ip> [<ip>...]"`. `None` for
/// entries without a MAC (`router`, `unknown`, `dynamic`).
pub fn parse_port_addresses(addresses: &str) -> Option<(String, Vec<IpAddr>)> {
    let mut words = addresses.split_whitespace();
    let mac = words.next()?;
    if mac.parse::<crds::MacAddr>().is_err() {
        return None;
    }
    let ips = words
        .filter_map(|w| w.split('/').next()?.parse().ok())
        .collect();
    Some((mac.to_owned(), ips))
}

/// Where the first hop of a packet to `target` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// `target` is on the attachment's subnet: straight to its port.
    SameSubnet,
    /// Elsewhere: to the VPC's router.
    Router,
}

/// Whether `target` is on one of the subnet's `cidrs`.
pub fn next_hop(cidrs: &[IpNet], target: IpAddr) -> NextHop {
    if cidrs.iter().any(|c| c.contains(&target)) {
        NextHop::SameSubnet
    } else {
        NextHop::Router
    }
}

/// The port a microflow starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'a> {
    /// The logical switch port.
    pub port: &'a str,
    /// Its MAC.
    pub mac: &'a str,
    /// Its addresses.
    pub ips: &'a [IpAddr],
}

/// The `ovn-trace` microflow of a packet from `source` to `target` (first hop `dst_mac`).
pub fn microflow(
    source: &Source<'_>,
    dst_mac: &str,
    target: IpAddr,
    protocol: Protocol,
    port: Option<u16>,
) -> Result<String, KoError> {
    let src_ip = source
        .ips
        .iter()
        .find(|ip| ip.is_ipv4() == target.is_ipv4())
        .ok_or_else(|| {
            KoError::Usage(format!(
                "port {} has no {} address to reach {target} from",
                source.port,
                if target.is_ipv4() { "IPv4" } else { "IPv6" }
            ))
        })?;
    let ip = if target.is_ipv4() { "ip4" } else { "ip6" };
    let mut flow = format!(
        "inport == \"{}\" && eth.src == {} && eth.dst == {dst_mac} && {ip}.src == {src_ip} && \
         {ip}.dst == {target} && ip.ttl == 64",
        source.port, source.mac
    );
    match (protocol, port) {
        (Protocol::Icmp, None) => flow.push_str(if target.is_ipv4() {
            " && icmp4.type == 8 && icmp4.code == 0"
        } else {
            " && icmp6.type == 128 && icmp6.code == 0"
        }),
        (Protocol::Icmp, Some(p)) => {
            return Err(KoError::Usage(format!("icmp has no port (got {p})")));
        }
        (Protocol::Tcp | Protocol::Udp, None) => {
            return Err(KoError::Usage("tcp and udp need a destination port".into()));
        }
        (Protocol::Tcp, Some(p)) => {
            flow.push_str(&format!(
                " && tcp && tcp.src == {SOURCE_PORT} && tcp.dst == {p}"
            ));
        }
        (Protocol::Udp, Some(p)) => {
            flow.push_str(&format!(
                " && udp && udp.src == {SOURCE_PORT} && udp.dst == {p}"
            ));
        }
    }
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: &str = "p1.default.net1.default.ovn";

    fn source(ips: &[IpAddr]) -> Source<'_> {
        Source {
            port: PORT,
            mac: "0a:00:00:00:00:01",
            ips,
        }
    }

    #[test]
    fn port_addresses_parse_mac_then_ips() {
        assert_eq!(
            parse_port_addresses("0a:00:00:00:00:01 10.0.0.2 fd00::2"),
            Some((
                "0a:00:00:00:00:01".to_owned(),
                vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()]
            ))
        );
        assert_eq!(parse_port_addresses("router"), None);
        assert_eq!(parse_port_addresses(""), None);
    }

    #[test]
    fn the_first_hop_is_the_peer_on_the_subnet_else_the_router() {
        let cidrs: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        assert_eq!(
            next_hop(&cidrs, "10.0.0.9".parse().unwrap()),
            NextHop::SameSubnet
        );
        assert_eq!(
            next_hop(&cidrs, "10.0.1.9".parse().unwrap()),
            NextHop::Router
        );
    }

    #[test]
    fn icmp_flows_per_family() {
        let ips = ["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let v4 = microflow(
            &source(&ips),
            "0a:00:00:00:00:02",
            "10.0.0.3".parse().unwrap(),
            Protocol::Icmp,
            None,
        )
        .unwrap();
        assert_eq!(
            v4,
            "inport == \"p1.default.net1.default.ovn\" && eth.src == 0a:00:00:00:00:01 && \
             eth.dst == 0a:00:00:00:00:02 && ip4.src == 10.0.0.2 && ip4.dst == 10.0.0.3 && \
             ip.ttl == 64 && icmp4.type == 8 && icmp4.code == 0"
        );
        let v6 = microflow(
            &source(&ips),
            "0a:00:00:00:00:02",
            "fd00::3".parse().unwrap(),
            Protocol::Icmp,
            None,
        )
        .unwrap();
        assert!(
            v6.contains("ip6.src == fd00::2 && ip6.dst == fd00::3"),
            "{v6}"
        );
        assert!(v6.ends_with("icmp6.type == 128 && icmp6.code == 0"), "{v6}");
    }

    #[test]
    fn tcp_and_udp_carry_ports() {
        let ips = ["10.0.0.2".parse().unwrap()];
        let tcp = microflow(
            &source(&ips),
            "m",
            "10.0.0.3".parse().unwrap(),
            Protocol::Tcp,
            Some(80),
        )
        .unwrap();
        assert!(
            tcp.ends_with("&& tcp && tcp.src == 10000 && tcp.dst == 80"),
            "{tcp}"
        );
        let udp = microflow(
            &source(&ips),
            "m",
            "10.0.0.3".parse().unwrap(),
            Protocol::Udp,
            Some(53),
        )
        .unwrap();
        assert!(
            udp.ends_with("&& udp && udp.src == 10000 && udp.dst == 53"),
            "{udp}"
        );
    }

    #[test]
    fn impossible_flows_are_refused() {
        let v4 = ["10.0.0.2".parse().unwrap()];
        let t = "10.0.0.3".parse().unwrap();
        assert!(microflow(&source(&v4), "m", t, Protocol::Tcp, None).is_err());
        assert!(microflow(&source(&v4), "m", t, Protocol::Icmp, Some(1)).is_err());
        let err = microflow(
            &source(&v4),
            "m",
            "fd00::3".parse().unwrap(),
            Protocol::Icmp,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no IPv6 address"), "{err}");
    }
}
