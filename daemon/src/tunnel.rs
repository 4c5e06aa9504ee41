//! The tunnel endpoint with the userspace datapath (`--datapath-type=netdev`).
//!
//! ovs-vswitchd's userspace geneve/vxlan sends encapsulated packets itself, so it must find the
//! route to a remote chassis on one of its own bridges: with the endpoint address on a plain
//! kernel interface every tunnelled packet is dropped (`native tunnel routing failed`,
//! measured in `notes/ovn-lab`). Upstream Kube-OVN's DPDK mode solves it the same way: the
//! tunnel NIC becomes a port of an OVS bridge (`--dpdk-tunnel-iface`, `br-phy`) and the NIC's
//! addresses and routes move to that bridge's internal interface.
//!
//! [`ensure`] does that for the NIC named by `--iface`, idempotently: it creates the bridge
//! (userspace datapath) with the NIC as a port, moves every global address and every route of
//! the NIC to the bridge, stops the NIC itself from answering ARP (its kernel stack still sees
//! the frames OVS reads), announces the addresses with a gratuitous ARP, and records what it
//! moved in the bridge's `external_ids`, so that when ovs-vswitchd restarts (and recreates the
//! bridge's interface empty) the next [`ensure`] puts them back. The NIC should carry nothing
//! but the tunnel: while OVS is down, the addresses are gone (upstream says the same of its DPDK
//! tunnel interface).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnet::IpNet;
use ovn_api::protocol::{Condition, Mutation, Operation};
use ovn_api::rpc::Client;
use ovn_api::value::{Atom, Datum};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::devconf::{self, DevConfError, Ipv4Conf};
use crate::netns::Netns;
use crate::ovs::{db, named, string_map};

/// `external_ids` keys on the tunnel bridge.
pub mod keys {
    /// The NIC the bridge carries.
    pub const NIC: &str = "kube-ovn-tunnel-nic";
    /// The addresses moved from the NIC, comma-joined (`172.30.1.10/24`).
    pub const ADDRESSES: &str = "kube-ovn-tunnel-addresses";
    /// The routes moved from the NIC, `;`-joined (`0.0.0.0/0 via 172.30.1.1 metric 0`).
    pub const ROUTES: &str = "kube-ovn-tunnel-routes";
    /// The NIC's `arp_ignore` before the daemon took it (`0`), given back at uninstall.
    pub const ARP_IGNORE: &str = "kube-ovn-tunnel-nic-arp-ignore";
}

/// The NIC's `arp_ignore` while it is a port of the bridge: 8, answer no ARP request at all.
pub const NIC_ARP_IGNORE: u32 = 8;

/// What [`ensure`] works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// The NIC that carries the tunnel (`--iface`).
    pub nic: String,
    /// The OVS bridge that takes its addresses (`--dpdk-tunnel-iface`, `br-phy`).
    pub bridge: String,
    /// Longest wait for ovs-vswitchd to create the bridge's interface.
    pub timeout: Duration,
}

/// Why the tunnel endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// A netlink request failed.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done.
        step: String,
        /// The netlink error.
        source: rtnetlink::Error,
    },
    /// The NIC does not exist.
    #[error("tunnel interface {nic} (--iface) does not exist on this node")]
    NoNic {
        /// The NIC's name.
        nic: String,
    },
    /// The NIC is already a port of another bridge.
    #[error("tunnel interface {nic} is a port of OVS bridge {other}, not of {bridge}")]
    NicOnOtherBridge {
        /// The NIC's name.
        nic: String,
        /// The bridge it is on.
        other: String,
        /// The bridge it should be on.
        bridge: String,
    },
    /// ovs-vswitchd did not create the bridge's interface in time.
    #[error(
        "ovs-vswitchd did not create interface {bridge} within {timeout:?}; is ovs-vswitchd running \
         with the userspace datapath?"
    )]
    BridgeNotCreated {
        /// The bridge.
        bridge: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// Neither the NIC nor the bridge has an address to be the endpoint.
    #[error("neither {nic} nor {bridge} has an IP address to be this node's tunnel endpoint")]
    NoAddress {
        /// The NIC's name.
        nic: String,
        /// The bridge.
        bridge: String,
    },
    /// An OVSDB request failed.
    #[error(transparent)]
    Ovs(#[from] crate::ovs::OvsError),
    /// A namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    /// The NIC's `arp_ignore` could not be read or set.
    #[error("tunnel interface {nic}: {source}")]
    ArpIgnore {
        /// The NIC's name.
        nic: String,
        /// What failed.
        source: DevConfError,
    },
}

/// A route of the NIC, as recorded on the bridge and restored from there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MovedRoute {
    /// Destination.
    pub destination: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Priority (`metric`).
    pub metric: u32,
}

impl std::fmt::Display for MovedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        write!(f, " metric {}", self.metric)
    }
}

impl std::str::FromStr for MovedRoute {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let destination = words
            .next()
            .ok_or_else(|| "empty route".to_owned())?
            .parse::<IpNet>()
            .map_err(|e| format!("route {s:?}: {e}"))?;
        let mut route = MovedRoute {
            destination,
            gateway: None,
            metric: 0,
        };
        while let Some(word) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| format!("route {s:?}: {word} without a value"))?;
            match word {
                "via" => {
                    route.gateway = Some(
                        value
                            .parse()
                            .map_err(|e| format!("route {s:?}: via: {e}"))?,
                    );
                }
                "metric" => {
                    route.metric = value
                        .parse()
                        .map_err(|e| format!("route {s:?}: metric: {e}"))?;
                }
                other => return Err(format!("route {s:?}: unknown word {other:?}")),
            }
        }
        Ok(route)
    }
}

/// What the bridge records: the addresses and routes that belong on it, and what the NIC's
/// `arp_ignore` was before the daemon took it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Addresses.
    pub addresses: Vec<IpNet>,
    /// Routes.
    pub routes: Vec<MovedRoute>,
    /// The NIC's `arp_ignore` to give back ([`release`]); `None` in a record written before the
    /// daemon kept it (then 0, the kernel's default, goes back).
    pub arp_ignore: Option<u32>,
}

impl Recorded {
    /// Reads the record from the bridge's `external_ids`; entries that do not parse are
    /// skipped with a warning (someone edited them by hand).
    pub fn from_external_ids(ids: &BTreeMap<&str, &str>) -> Self {
        let mut rec = Recorded::default();
        for part in ids
            .get(keys::ADDRESSES)
            .into_iter()
            .flat_map(|s| s.split(','))
        {
            match part.trim().parse::<IpNet>() {
                Ok(net) => rec.addresses.push(net),
                Err(_) if part.trim().is_empty() => {}
                Err(e) => {
                    tracing::warn!(entry = part, error = %e, "ignoring a recorded tunnel address")
                }
            }
        }
        for part in ids.get(keys::ROUTES).into_iter().flat_map(|s| s.split(';')) {
            match part.trim().parse::<MovedRoute>() {
                Ok(route) => rec.routes.push(route),
                Err(_) if part.trim().is_empty() => {}
                Err(e) => {
                    tracing::warn!(entry = part, error = %e, "ignoring a recorded tunnel route")
                }
            }
        }
        if let Some(value) = ids.get(keys::ARP_IGNORE) {
            match value.trim().parse::<u32>() {
                Ok(v) => rec.arp_ignore = Some(v),
                Err(e) => {
                    tracing::warn!(entry = value, error = %e, "ignoring the recorded arp_ignore")
                }
            }
        }
        rec.normalise();
        rec
    }

    fn normalise(&mut self) {
        self.addresses.sort();
        self.addresses.dedup();
        self.routes.sort();
        self.routes.dedup();
    }

    fn addresses_value(&self) -> String {
        let v: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        v.join(",")
    }

    fn routes_value(&self) -> String {
        let v: Vec<String> = self.routes.iter().map(ToString::to_string).collect();
        v.join(";")
    }
}

/// The result of [`ensure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The addresses on the bridge now (the first IPv4 one, else the first IPv6 one, is the
    /// tunnel endpoint).
    pub addresses: Vec<IpNet>,
    /// How many addresses and routes this call moved or restored (0 when all was in place).
    pub changed: usize,
    /// What the bridge records as belonging on it (for [`release`] when the OVS database is
    /// already gone).
    pub record: Recorded,
}

impl Endpoint {
    /// The address for `ovn-encap-ip`.
    pub fn encap_ip(&self) -> Option<IpAddr> {
        self.addresses
            .iter()
            .find(|n| n.addr().is_ipv4())
            .or_else(|| self.addresses.first())
            .map(IpNet::addr)
    }
}

/// Puts the NIC on the tunnel bridge and its addresses and routes on the bridge's interface, in
/// the namespace `host`. Idempotent: a call with everything in place changes nothing.
pub async fn ensure(
    ovs: &Client,
    host: &Netns,
    cfg: &TunnelConfig,
) -> Result<Endpoint, TunnelError> {
    let nl = host.rtnetlink()?;
    let nic = link_by_name(&nl, &cfg.nic)
        .await?
        .ok_or_else(|| TunnelError::NoNic {
            nic: cfg.nic.clone(),
        })?;
    // What the NIC holds now (a first start, or someone put an address back on it).
    let nic_arp_ignore = devconf::get(&nl, nic.index, Ipv4Conf::ArpIgnore)
        .await
        .map_err(arp_ignore_error(&cfg.nic))?;
    let on_nic = Recorded {
        addresses: global_addresses(&nl, nic.index).await?,
        routes: routes_of(&nl, nic.index).await?,
        // 8 already: a daemon that did not record the old value took it; 0 is the default.
        arp_ignore: Some(match u32::try_from(nic_arp_ignore) {
            Ok(v) if v != NIC_ARP_IGNORE => v,
            _ => 0,
        }),
    };
    crate::ovs::ensure_root(ovs).await?;
    let recorded = ensure_bridge(ovs, cfg, &on_nic).await?;
    let bridge = wait_for_link(&nl, &cfg.bridge, cfg.timeout).await?;
    nl.link()
        .set(
            LinkUnspec::new_with_index(bridge.index)
                .mtu(nic.mtu)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(netlink(format!("setting {} up", cfg.bridge)))?;
    nl.link()
        .set(LinkUnspec::new_with_index(nic.index).up().build())
        .execute()
        .await
        .map_err(netlink(format!("setting {} up", cfg.nic)))?;

    let mut changed = add_missing(&nl, bridge.index, &cfg.bridge, &recorded.addresses).await?;
    let bridge_routes = routes_of(&nl, bridge.index).await?;
    for route in &recorded.routes {
        if !bridge_routes.contains(route) {
            // `replace`: the same route on the NIC (same destination and metric) becomes ours.
            nl.route()
                .add(route_message(route, bridge.index))
                .replace()
                .execute()
                .await
                .map_err(netlink(format!("moving route {route} to {}", cfg.bridge)))?;
            changed += 1;
        }
    }
    for msg in address_messages(&nl, nic.index).await? {
        nl.address()
            .del(msg)
            .execute()
            .await
            .map_err(netlink(format!("removing an address from {}", cfg.nic)))?;
        changed += 1;
    }
    let bridge_mac = bridge.mac;
    // Announced only when something moved: the periodic check must not ARP every 5 s.
    let announce: Vec<std::net::Ipv4Addr> = recorded
        .addresses
        .iter()
        .filter(|_| changed > 0)
        .filter_map(|n| match n.addr() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let bridge_index = bridge.index;
    // The NIC keeps a kernel stack that sees every frame OVS reads: it must not answer ARP for
    // the bridge's addresses with its own MAC (two answers race, `notes/ovn-lab`). Set over
    // rtnetlink, not /proc/sys: that needs only CAP_NET_ADMIN (`crate::devconf`).
    if nic_arp_ignore != NIC_ARP_IGNORE as i32 {
        devconf::set(&nl, nic.index, Ipv4Conf::ArpIgnore, NIC_ARP_IGNORE)
            .await
            .map_err(arp_ignore_error(&cfg.nic))?;
    }
    host.run(move || {
        if let Some(mac) = bridge_mac {
            for ip in announce {
                if let Err(e) = crate::sys::send_gratuitous_arp(bridge_index, mac, ip) {
                    tracing::warn!(%ip, error = %e, "gratuitous ARP for the tunnel endpoint failed");
                }
            }
        }
    })?;
    let addresses = global_addresses(&nl, bridge.index).await?;
    if addresses.is_empty() {
        return Err(TunnelError::NoAddress {
            nic: cfg.nic.clone(),
            bridge: cfg.bridge.clone(),
        });
    }
    Ok(Endpoint {
        addresses,
        changed,
        record: recorded,
    })
}

/// The first global address of `nic` in `host` (IPv4 first): the endpoint with the kernel
/// datapath, whose tunnels route through the kernel from any interface.
pub async fn nic_address(host: &Netns, nic: &str) -> Result<IpAddr, TunnelError> {
    let nl = host.rtnetlink()?;
    let link = link_by_name(&nl, nic)
        .await?
        .ok_or_else(|| TunnelError::NoNic {
            nic: nic.to_owned(),
        })?;
    let endpoint = Endpoint {
        addresses: global_addresses(&nl, link.index).await?,
        changed: 0,
        record: Recorded::default(),
    };
    endpoint.encap_ip().ok_or_else(|| TunnelError::NoAddress {
        nic: nic.to_owned(),
        bridge: "(kernel datapath: no bridge)".to_owned(),
    })
}

/// The name of the link in `host` that holds `ip`, if any.
pub async fn holder_of(host: &Netns, ip: IpAddr) -> Result<Option<String>, TunnelError> {
    let nl = host.rtnetlink()?;
    let mut index = None;
    let mut addrs = nl.address().get().execute();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(netlink("listing addresses".to_owned()))?
    {
        if message_address(&msg).is_some_and(|n| n.addr() == ip) {
            index = Some(msg.header.index);
        }
    }
    let Some(index) = index else {
        return Ok(None);
    };
    let mut links = nl.link().get().match_index(index).execute();
    let Some(msg) = links
        .try_next()
        .await
        .map_err(netlink(format!("reading link {index}")))?
    else {
        return Ok(None);
    };
    Ok(msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    }))
}

/// Undoes [`ensure`] (on uninstall): the recorded addresses and routes go back onto the NIC,
/// off the bridge's interface, the NIC answers ARP again, and the bridge (ours: it carries the
/// record) leaves the OVS database. When the database is already gone (ovs-ovn stops with us),
/// `known` (the record of the last [`ensure`]) says what to put back and the database step is
/// skipped. Returns how many addresses
/// and routes moved back.
pub async fn release(
    ovs: &Client,
    host: &Netns,
    cfg: &TunnelConfig,
    known: &Recorded,
) -> Result<usize, TunnelError> {
    let (record, bridge_uuid, root) = {
        let replica = ovs.replica();
        let bridge = replica
            .table("Bridge")
            .and_then(|t| t.by_name(&cfg.bridge).next());
        let ids = bridge
            .map(|b| crate::ovs::external_ids(b.get("external_ids")))
            .unwrap_or_default();
        let root = replica
            .table("Open_vSwitch")
            .and_then(|t| t.rows().next().map(|r| r.uuid));
        if ids.get(keys::NIC) == Some(&cfg.nic.as_str()) {
            (
                Recorded::from_external_ids(&ids),
                bridge.map(|b| b.uuid),
                root,
            )
        } else {
            // The database is gone with ovs-ovn (stopped at the same time as us), or the
            // replica was reset by the lost connection: what this daemon last saw.
            (known.clone(), None, None)
        }
    };
    if record.addresses.is_empty() && record.routes.is_empty() {
        return Ok(0);
    }
    let nl = host.rtnetlink()?;
    let nic = link_by_name(&nl, &cfg.nic)
        .await?
        .ok_or_else(|| TunnelError::NoNic {
            nic: cfg.nic.clone(),
        })?;
    let mut moved = add_missing(&nl, nic.index, &cfg.nic, &record.addresses).await?;
    for route in &record.routes {
        nl.route()
            .add(route_message(route, nic.index))
            .replace()
            .execute()
            .await
            .map_err(netlink(format!(
                "putting route {route} back on {}",
                cfg.nic
            )))?;
        moved += 1;
    }
    if let Some(bridge) = link_by_name(&nl, &cfg.bridge).await? {
        for msg in address_messages(&nl, bridge.index).await? {
            nl.address()
                .del(msg)
                .execute()
                .await
                .map_err(netlink(format!("removing an address from {}", cfg.bridge)))?;
        }
    }
    let arp_ignore = record.arp_ignore.unwrap_or(0);
    if let Err(e) = devconf::set(&nl, nic.index, Ipv4Conf::ArpIgnore, arp_ignore).await {
        tracing::warn!(nic = %cfg.nic, arp_ignore, error = %e,
            "could not let the NIC answer ARP again");
    }
    if let (Some(bridge), Some(root)) = (bridge_uuid, root) {
        // ovs-ovn stops with us: a database that is going away gets 3 s, not the client's
        // reconnect loop.
        let removed = tokio::time::timeout(
            Duration::from_secs(3),
            ovs.transact(vec![Operation::Mutate {
                table: "Open_vSwitch".into(),
                conditions: vec![Condition::uuid(root)],
                mutations: vec![Mutation::delete(
                    "bridges",
                    Datum::scalar(Atom::Uuid(bridge)),
                )],
            }]),
        )
        .await;
        match removed {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(bridge = %cfg.bridge, error = %e,
                "could not remove the tunnel bridge from the OVS database"),
            Err(_) => tracing::warn!(bridge = %cfg.bridge,
                "could not remove the tunnel bridge from the OVS database: no answer in 3 s"),
        }
    }
    Ok(moved)
}

/// Creates the bridge with the NIC as a port (or adds the port), and merges `on_nic` into the
/// bridge's record. Returns the record.
async fn ensure_bridge(
    ovs: &Client,
    cfg: &TunnelConfig,
    on_nic: &Recorded,
) -> Result<Recorded, TunnelError> {
    let (root, bridge_row, nic_owner, port_exists) = {
        let replica = ovs.replica();
        let root = replica
            .table("Open_vSwitch")
            .and_then(|t| t.rows().next().map(|r| r.uuid))
            .ok_or(crate::ovs::OvsError::NoRoot)?;
        let bridge_row = replica.table("Bridge").and_then(|t| {
            t.by_name(&cfg.bridge).next().map(|r| {
                let ids: BTreeMap<String, String> = crate::ovs::external_ids(r.get("external_ids"))
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                (r.uuid, ids)
            })
        });
        let port_uuid = replica
            .table("Port")
            .and_then(|t| t.by_name(&cfg.nic).next().map(|r| r.uuid));
        let nic_owner = port_uuid.and_then(|port| {
            replica.table("Bridge").and_then(|t| {
                t.rows()
                    .find(|b| {
                        b.get("ports")
                            .is_some_and(|p| p.as_set().iter().any(|a| a.as_uuid() == Some(port)))
                    })
                    .and_then(|b| b.get("name")?.as_set().first()?.as_str().map(str::to_owned))
            })
        });
        (root, bridge_row, nic_owner, port_uuid.is_some())
    };
    if let Some(other) = nic_owner.as_deref().filter(|o| *o != cfg.bridge) {
        return Err(TunnelError::NicOnOtherBridge {
            nic: cfg.nic.clone(),
            other: other.to_owned(),
            bridge: cfg.bridge.clone(),
        });
    }
    let mut record = match &bridge_row {
        Some((_, ids)) => Recorded::from_external_ids(
            &ids.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        ),
        None => Recorded::default(),
    };
    let before = record.clone();
    record.addresses.extend(on_nic.addresses.iter().copied());
    record.routes.extend(on_nic.routes.iter().cloned());
    // Only the first take counts: later the NIC shows our own 8.
    record.arp_ignore = record.arp_ignore.or(on_nic.arp_ignore);
    record.normalise();

    let mut record_ids = vec![
        (keys::NIC, cfg.nic.clone()),
        (keys::ADDRESSES, record.addresses_value()),
        (keys::ROUTES, record.routes_value()),
    ];
    if let Some(v) = record.arp_ignore {
        record_ids.push((keys::ARP_IGNORE, v.to_string()));
    }
    let mut ops = Vec::new();
    match &bridge_row {
        None => {
            insert_port(&mut ops, &cfg.nic, None, "nic_port");
            insert_port(&mut ops, &cfg.bridge, Some("internal"), "br_port");
            let mut ids: Vec<(&str, &str)> = vec![crds::naming::EXTERNAL_ID_VENDOR];
            ids.extend(record_ids.iter().map(|(k, v)| (*k, v.as_str())));
            ops.push(Operation::Insert {
                table: "Bridge".into(),
                row: BTreeMap::from([
                    ("name".into(), Datum::scalar(cfg.bridge.as_str())),
                    (
                        "ports".into(),
                        Datum::set([
                            Atom::NamedUuid("br_port".into()),
                            Atom::NamedUuid("nic_port".into()),
                        ]),
                    ),
                    ("datapath_type".into(), Datum::scalar("netdev")),
                    ("external_ids".into(), string_map(ids)),
                ]),
                uuid_name: Some("bridge".into()),
            });
            ops.push(Operation::Mutate {
                table: "Open_vSwitch".into(),
                conditions: vec![Condition::uuid(root)],
                mutations: vec![Mutation::insert("bridges", named("bridge"))],
            });
        }
        Some((uuid, _)) => {
            if !port_exists {
                insert_port(&mut ops, &cfg.nic, None, "nic_port");
                ops.push(Operation::Mutate {
                    table: "Bridge".into(),
                    conditions: vec![Condition::uuid(*uuid)],
                    mutations: vec![Mutation::insert("ports", named("nic_port"))],
                });
            }
            if record != before || !port_exists {
                ops.push(Operation::Mutate {
                    table: "Bridge".into(),
                    conditions: vec![Condition::uuid(*uuid)],
                    mutations: vec![
                        Mutation::delete(
                            "external_ids",
                            Datum::set(record_ids.iter().map(|(k, _)| Atom::string(*k))),
                        ),
                        Mutation::insert(
                            "external_ids",
                            string_map(record_ids.iter().map(|(k, v)| (*k, v.as_str()))),
                        ),
                    ],
                });
            }
        }
    }
    if !ops.is_empty() {
        ovs.transact(ops).await.map_err(db(format!(
            "putting {} on the tunnel bridge {}",
            cfg.nic, cfg.bridge
        )))?;
    }
    Ok(record)
}

/// Appends the insertion of port `name` with one interface of that name (of `kind`, when not a
/// plain system interface), the port known in the transaction as `port_uuid`.
fn insert_port(ops: &mut Vec<Operation>, name: &str, kind: Option<&str>, port_uuid: &str) {
    let iface_uuid = format!("{port_uuid}_iface");
    let mut iface = BTreeMap::from([("name".into(), Datum::scalar(name))]);
    if let Some(kind) = kind {
        iface.insert("type".into(), Datum::scalar(kind));
    }
    ops.push(Operation::Insert {
        table: "Interface".into(),
        row: iface,
        uuid_name: Some(iface_uuid.clone()),
    });
    ops.push(Operation::Insert {
        table: "Port".into(),
        row: BTreeMap::from([
            ("name".into(), Datum::scalar(name)),
            ("interfaces".into(), named(&iface_uuid)),
        ]),
        uuid_name: Some(port_uuid.to_owned()),
    });
}

/// Adds those of `wanted` that link `index` (named `name`) lacks; returns how many.
async fn add_missing(
    nl: &Handle,
    index: u32,
    name: &str,
    wanted: &[IpNet],
) -> Result<usize, TunnelError> {
    let present = global_addresses(nl, index).await?;
    let mut added = 0;
    for net in wanted.iter().filter(|n| !present.contains(n)) {
        nl.address()
            .add(index, net.addr(), net.prefix_len())
            .execute()
            .await
            .map_err(netlink(format!("adding {net} to {name}")))?;
        added += 1;
    }
    Ok(added)
}

/// A link's index, MTU and MAC.
struct Link {
    index: u32,
    mtu: u32,
    mac: Option<[u8; 6]>,
}

fn netlink(step: String) -> impl FnOnce(rtnetlink::Error) -> TunnelError {
    move |source| TunnelError::Netlink { step, source }
}

fn arp_ignore_error(nic: &str) -> impl FnOnce(DevConfError) -> TunnelError {
    let nic = nic.to_owned();
    move |source| TunnelError::ArpIgnore { nic, source }
}

async fn link_by_name(nl: &Handle, name: &str) -> Result<Option<Link>, TunnelError> {
    let mut links = nl.link().get().match_name(name.to_owned()).execute();
    let msg: LinkMessage = match links.try_next().await {
        Ok(Some(msg)) => msg,
        Ok(None) => return Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => return Ok(None),
        Err(source) => {
            return Err(TunnelError::Netlink {
                step: format!("reading link {name}"),
                source,
            });
        }
    };
    let mut link = Link {
        index: msg.header.index,
        mtu: 1500,
        mac: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => {}
        }
    }
    Ok(Some(link))
}

/// Waits for ovs-vswitchd to create the bridge's internal interface.
async fn wait_for_link(nl: &Handle, name: &str, timeout: Duration) -> Result<Link, TunnelError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(link) = link_by_name(nl, name).await? {
            return Ok(link);
        }
        if Instant::now() >= deadline {
            return Err(TunnelError::BridgeNotCreated {
                bridge: name.to_owned(),
                timeout,
            });
        }
        // ovs-vswitchd creates the tap on its next run after the transaction (milliseconds).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The address messages of a link that carry a global address (not IPv6 link-local).
async fn address_messages(nl: &Handle, index: u32) -> Result<Vec<AddressMessage>, TunnelError> {
    let mut out = Vec::new();
    let mut addrs = nl.address().get().set_link_index_filter(index).execute();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(netlink(format!("listing addresses of link {index}")))?
    {
        if message_address(&msg).is_some() {
            out.push(msg);
        }
    }
    Ok(out)
}

fn message_address(msg: &AddressMessage) -> Option<IpNet> {
    msg.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Address(ip) if !is_link_local(ip) => {
            IpNet::new(*ip, msg.header.prefix_len).ok()
        }
        _ => None,
    })
}

fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

async fn global_addresses(nl: &Handle, index: u32) -> Result<Vec<IpNet>, TunnelError> {
    let mut out: Vec<IpNet> = address_messages(nl, index)
        .await?
        .iter()
        .filter_map(message_address)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The main table's routes out of link `index` that someone added (not the kernel's own
/// connected routes, which follow the addresses).
async fn routes_of(nl: &Handle, index: u32) -> Result<Vec<MovedRoute>, TunnelError> {
    let mut out = Vec::new();
    for dump in [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ] {
        let mut routes = nl.route().get(dump).execute();
        while let Some(msg) = routes
            .try_next()
            .await
            .map_err(netlink(format!("listing routes of link {index}")))?
        {
            if let Some(route) = moved_route(&msg, index) {
                out.push(route);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The route `msg` as a [`MovedRoute`] when it leaves through link `index` from the main table
/// and is not the kernel's.
fn moved_route(msg: &RouteMessage, index: u32) -> Option<MovedRoute> {
    let mut table = u32::from(msg.header.table);
    let mut oif = None;
    let mut destination = None;
    let mut gateway = None;
    let mut metric = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Destination(a) => destination = route_ip(a),
            RouteAttribute::Gateway(a) => gateway = route_ip(a),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN)
        || oif != Some(index)
        || msg.header.protocol == RouteProtocol::Kernel
    {
        return None;
    }
    let unspecified = match msg.header.address_family {
        rtnetlink::packet_route::AddressFamily::Inet6 => {
            IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED)
        }
        _ => IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
    };
    let dst = destination.unwrap_or(unspecified);
    if is_link_local(&dst) || matches!(dst, IpAddr::V6(v6) if v6.is_multicast()) {
        return None;
    }
    Some(MovedRoute {
        destination: IpNet::new(dst, msg.header.destination_prefix_length).ok()?,
        gateway,
        metric,
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route_message(route: &MovedRoute, oif: u32) -> RouteMessage {
    match (route.destination, route.gateway) {
        (IpNet::V4(dst), gw) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(dst.addr(), dst.prefix_len())
                .output_interface(oif)
                .priority(route.metric);
            if let Some(IpAddr::V4(gw)) = gw {
                b = b.gateway(gw);
            }
            b.build()
        }
        (IpNet::V6(dst), gw) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(dst.addr(), dst.prefix_len())
                .output_interface(oif)
                .priority(route.metric);
            if let Some(IpAddr::V6(gw)) = gw {
                b = b.gateway(gw);
            }
            b.build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_route_reads_back_as_written() {
        for text in [
            "0.0.0.0/0 via 172.30.1.1 metric 0",
            "10.0.0.0/8 metric 100",
            "fd00::/64 via fd00::1 metric 1024",
        ] {
            let route: MovedRoute = text.parse().unwrap();
            assert_eq!(route.to_string(), text);
        }
    }

    #[test]
    fn bad_recorded_routes_are_errors_that_name_the_entry() {
        for (text, needle) in [
            ("", "empty route"),
            ("10.0.0.0/33", "10.0.0.0/33"),
            ("10.0.0.0/8 via", "without a value"),
            ("10.0.0.0/8 via nowhere", "via"),
            ("10.0.0.0/8 dev eth0", "unknown word"),
        ] {
            let err = text.parse::<MovedRoute>().unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_record_skips_what_does_not_parse_and_keeps_the_rest() {
        let ids = BTreeMap::from([
            (
                keys::ADDRESSES,
                "172.30.1.10/24, bogus,fd00::10/64,172.30.1.10/24",
            ),
            (keys::ROUTES, "0.0.0.0/0 via 172.30.1.1 metric 0;nonsense;"),
        ]);
        let rec = Recorded::from_external_ids(&ids);
        assert_eq!(
            rec.addresses,
            vec![
                "172.30.1.10/24".parse::<IpNet>().unwrap(),
                "fd00::10/64".parse().unwrap()
            ]
        );
        assert_eq!(rec.routes.len(), 1);
        assert_eq!(rec.addresses_value(), "172.30.1.10/24,fd00::10/64");
        assert_eq!(
            rec.arp_ignore, None,
            "a record from before arp_ignore was kept"
        );
    }

    #[test]
    fn the_recorded_arp_ignore_reads_back_and_a_bad_one_is_skipped() {
        let rec = Recorded::from_external_ids(&BTreeMap::from([(keys::ARP_IGNORE, "2")]));
        assert_eq!(rec.arp_ignore, Some(2));
        for bad in ["", "-1", "eight"] {
            let rec = Recorded::from_external_ids(&BTreeMap::from([(keys::ARP_IGNORE, bad)]));
            assert_eq!(rec.arp_ignore, None, "{bad:?}");
        }
    }

    #[test]
    fn the_endpoint_prefers_ipv4() {
        let ep = Endpoint {
            addresses: vec![
                "fd00::10/64".parse().unwrap(),
                "172.30.1.10/24".parse().unwrap(),
            ],
            changed: 0,
            record: Recorded::default(),
        };
        assert_eq!(ep.encap_ip(), Some("172.30.1.10".parse().unwrap()));
    }
}
