//! Makes the gateway's network namespace equal to a [`Desired`] state, idempotently: only what
//! differs is changed (addresses and routes are diffed against a dump), and the NAT table is
//! replaced whole in one nf_tables transaction.
//!
//! Routing: forwarded traffic of both legs (`iif <lan>`, `iif <external>`) is looked up in the
//! gateway's own table [`ROUTE_TABLE`] by two policy rules, which holds the VPC's CIDRs via the
//! LAN and the default route via the external subnet's gateway. The main table, and with it the
//! pod's `eth0` default route of the primary CNI, is left alone: the agent keeps reaching the API
//! server through `eth0`, where upstream's gateway replaces the pod's default route and must
//! then patch the cluster's service CIDR back in.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion, LinkUnspec, RouteMessageBuilder};

use super::nft::{Nft, NftError};
use super::plan::{Desired, Leg, Route};
use crate::devconf::{self, DevConfError, Ipv4Conf};
use crate::netns::{Netns, NetnsError};

/// The gateway's routing table (`ip route show table 27501`).
pub const ROUTE_TABLE: u32 = 27501;
/// Priority of the two policy rules sending forwarded traffic to [`ROUTE_TABLE`] (after the
/// `local` table at 0, before `main` at 32766).
pub const RULE_PRIORITY: u32 = 27501;

/// A step of an apply failed; the namespace may be partly updated (the next apply finishes it).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The namespace cannot be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// An interface named by network-status is not in the namespace.
    #[error("interface {name} ({leg}) is not in the gateway's network namespace {netns}")]
    InterfaceMissing {
        /// Interface name.
        name: String,
        /// Which leg.
        leg: &'static str,
        /// The namespace.
        netns: String,
    },
    /// A netlink request failed.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done.
        step: String,
        /// The error.
        source: rtnetlink::Error,
    },
    /// The NAT transaction failed (nothing of it applied).
    #[error(transparent)]
    Nft(#[from] NftError),
    /// Enabling forwarding (or loosening rp_filter) of a leg failed (`EPERM`: the agent lacks
    /// `CAP_NET_ADMIN`).
    #[error("enabling IPv4 forwarding / loose rp_filter on {interface} in {netns}: {source}")]
    Forwarding {
        /// The leg's interface.
        interface: String,
        /// The namespace.
        netns: String,
        /// The error (boxed: it carries a netlink error and would make every result large).
        source: Box<DevConfError>,
    },
}

fn netlink(step: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> ApplyError {
    let step = step.into();
    move |source| ApplyError::Netlink { step, source }
}

/// What an apply changed and how long its parts took.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    /// Addresses added or removed.
    pub addresses: usize,
    /// Routes and policy rules added or removed.
    pub routes: usize,
    /// NAT rules in the table now.
    pub nat_rules: usize,
    /// Time of the nf_tables transaction alone.
    pub nft: Duration,
    /// Time of the whole apply.
    pub total: Duration,
}

/// Applies desired states to one namespace, keeping its netlink handle between applies.
#[derive(Debug)]
pub struct Applier {
    netns: Netns,
    handle: Handle,
}

impl Applier {
    /// An applier for `netns` (needs a tokio runtime).
    pub fn new(netns: Netns) -> Result<Self, ApplyError> {
        let handle = netns.rtnetlink()?;
        Ok(Self { netns, handle })
    }

    /// The namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Makes the namespace equal to `desired`.
    pub async fn apply(&self, desired: &Desired) -> Result<Applied, ApplyError> {
        let start = Instant::now();
        let mut done = Applied::default();
        let (lan, _) = self.link(&desired.lan_interface, "LAN").await?;
        let (ext, ext_mac) = self.link(&desired.external_interface, "external").await?;
        self.forwarding([
            (&desired.lan_interface, lan),
            (&desired.external_interface, ext),
        ])
        .await?;
        done.addresses = self.addresses(ext, ext_mac, desired).await?;
        done.routes = self.rules(desired).await? + self.routes(lan, ext, desired).await?;
        let nft_start = Instant::now();
        let ruleset = desired.ruleset.clone();
        let netns = self.netns.try_clone()?;
        tokio::task::spawn_blocking(move || {
            netns.run(move || Nft::open().and_then(|mut nft| nft.replace(&ruleset)))
        })
        .await
        .map_err(|e| NftError::Io(std::io::Error::other(e.to_string())))???;
        done.nft = nft_start.elapsed();
        done.nat_rules = desired.ruleset.len();
        done.total = start.elapsed();
        Ok(done)
    }

    /// Index and MAC of link `name`, set up.
    async fn link(
        &self,
        name: &str,
        leg: &'static str,
    ) -> Result<(u32, Option<[u8; 6]>), ApplyError> {
        let missing = || ApplyError::InterfaceMissing {
            name: name.to_owned(),
            leg,
            netns: self.netns.path().display().to_string(),
        };
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        let link = match links.try_next().await {
            Ok(Some(link)) => link,
            Ok(None) => return Err(missing()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
                return Err(missing());
            }
            Err(e) => return Err(netlink(format!("reading link {name}"))(e)),
        };
        let index = link.header.index;
        let mac = link.attributes.iter().find_map(|a| match a {
            rtnetlink::packet_route::link::LinkAttribute::Address(m) => {
                <[u8; 6]>::try_from(m.as_slice()).ok()
            }
            _ => None,
        });
        if !link
            .header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up)
        {
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .map_err(netlink(format!("setting {name} up")))?;
        }
        Ok((index, mac))
    }

    /// IPv4 forwarding on both legs, and their reverse-path filtering at most loose.
    ///
    /// Why rp_filter: traffic to an EIP comes from anywhere, but the main table routes
    /// "anywhere" through the pod's eth0 (the primary CNI's default route, which stays), and the
    /// kernel's reverse-path check does not see our `iif` policy rules; in strict mode (1) it
    /// would drop every DNAT/FIP connection from outside the external subnet, and on the LAN
    /// leg every packet from a VPC subnet the main table does not know. Loose mode (2) only
    /// asks that the source be routable at all (the pod's default route makes every source
    /// so: loose is as open as off here).
    ///
    /// Both are set per interface over rtnetlink ([`devconf`]), which `CAP_NET_ADMIN` allows
    /// where `/proc/sys` is read-only (the gateway pod is not privileged). That is enough: the
    /// kernel forwards what arrives on an interface whose own `forwarding` is on (`ip_forward`
    /// only writes every interface's at once), and takes the larger of the interface's
    /// `rp_filter` and `all`'s, so 2 on the interface is loose whatever `all` says, where 0
    /// would be strict under a strict `all`: each leg is set to 2 unless it is.
    async fn forwarding(&self, legs: [(&str, u32); 2]) -> Result<usize, ApplyError> {
        let mut changed = 0;
        for (name, index) in legs {
            let err = |source| ApplyError::Forwarding {
                interface: name.to_owned(),
                netns: self.netns.path().display().to_string(),
                source: Box::new(source),
            };
            for (conf, want) in [(Ipv4Conf::Forwarding, 1), (Ipv4Conf::RpFilter, 2)] {
                let have = devconf::get(&self.handle, index, conf).await.map_err(err)?;
                if have != want {
                    devconf::set(&self.handle, index, conf, want.unsigned_abs())
                        .await
                        .map_err(err)?;
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }

    /// EIPs on the external interface: adds the missing, removes addresses that are neither an
    /// EIP nor the attachment's own. Each added EIP is announced with a gratuitous ARP: hosts
    /// on the external segment that cached the EIP at another MAC (a restarted gateway pod
    /// has a new external interface, an EIP moved between gateways) learn the new one at once
    /// instead of sending DNAT and FIP traffic into the void until their entry expires.
    async fn addresses(
        &self,
        ext: u32,
        ext_mac: Option<[u8; 6]>,
        desired: &Desired,
    ) -> Result<usize, ApplyError> {
        let mut present = Vec::new();
        let mut dump = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ext)
            .execute();
        while let Some(msg) = dump.try_next().await.map_err(netlink(format!(
            "listing addresses of {}",
            desired.external_interface
        )))? {
            let addr = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = addr {
                present.push((Ipv4Net::new(ip, msg.header.prefix_len).ok(), msg));
            }
        }
        let mut changed = 0;
        for (net, msg) in present.iter() {
            let Some(net) = net else { continue };
            let keep = desired.eip_addresses.contains(net)
                || desired
                    .attachment_addresses
                    .contains(&IpAddr::V4(net.addr()));
            if !keep {
                self.handle
                    .address()
                    .del(msg.clone())
                    .execute()
                    .await
                    .map_err(netlink(format!(
                        "removing {net} from {}",
                        desired.external_interface
                    )))?;
                changed += 1;
            }
        }
        for want in &desired.eip_addresses {
            if present.iter().any(|(n, _)| n.as_ref() == Some(want)) {
                continue;
            }
            self.handle
                .address()
                .add(ext, IpAddr::V4(want.addr()), want.prefix_len())
                .replace()
                .execute()
                .await
                .map_err(netlink(format!(
                    "adding {want} to {}",
                    desired.external_interface
                )))?;
            changed += 1;
            if let Some(mac) = ext_mac {
                let ip = want.addr();
                let sent = self
                    .netns
                    .run(move || crate::sys::send_gratuitous_arp(ext, mac, ip));
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(eip = %ip, error = %e, "gratuitous ARP for an EIP failed")
                    }
                    Err(e) => {
                        tracing::warn!(eip = %ip, error = %e, "gratuitous ARP for an EIP failed")
                    }
                }
            }
        }
        Ok(changed)
    }

    /// The two policy rules `iif <leg> lookup ROUTE_TABLE`.
    async fn rules(&self, desired: &Desired) -> Result<usize, ApplyError> {
        let want: BTreeSet<&str> = [
            desired.lan_interface.as_str(),
            desired.external_interface.as_str(),
        ]
        .into();
        let mut ours: Vec<(Option<String>, RuleMessage)> = Vec::new();
        let mut dump = self.handle.rule().get(IpVersion::V4).execute();
        while let Some(msg) = dump
            .try_next()
            .await
            .map_err(netlink("listing policy rules"))?
        {
            let mut table = u32::from(msg.header.table);
            let mut iif = None;
            let mut priority = 0;
            for a in &msg.attributes {
                match a {
                    RuleAttribute::Table(t) => table = *t,
                    RuleAttribute::Iifname(n) => iif = Some(n.clone()),
                    RuleAttribute::Priority(p) => priority = *p,
                    _ => {}
                }
            }
            if table == ROUTE_TABLE {
                // Anything else pointing at our table is stale and goes.
                let exact = msg.header.action == RuleAction::ToTable && priority == RULE_PRIORITY;
                ours.push((iif.filter(|_| exact), msg));
            }
        }
        let mut changed = 0;
        let mut have = BTreeSet::new();
        for (iif, msg) in ours {
            match iif {
                Some(i) if want.contains(i.as_str()) && have.insert(i.clone()) => {}
                _ => {
                    self.handle
                        .rule()
                        .del(msg)
                        .execute()
                        .await
                        .map_err(netlink("removing a stale policy rule"))?;
                    changed += 1;
                }
            }
        }
        for iif in want {
            if have.contains(iif) {
                continue;
            }
            self.handle
                .rule()
                .add()
                .v4()
                .input_interface(iif.to_owned())
                .table_id(ROUTE_TABLE)
                .action(RuleAction::ToTable)
                .priority(RULE_PRIORITY)
                .execute()
                .await
                .map_err(netlink(format!(
                    "adding policy rule iif {iif} lookup {ROUTE_TABLE}"
                )))?;
            changed += 1;
        }
        Ok(changed)
    }

    /// The routes of [`ROUTE_TABLE`].
    async fn routes(&self, lan: u32, ext: u32, desired: &Desired) -> Result<usize, ApplyError> {
        let oif = |leg| match leg {
            Leg::Lan => lan,
            Leg::External => ext,
        };
        let want: BTreeSet<(Ipv4Net, Option<Ipv4Addr>, u32)> = desired
            .routes
            .iter()
            .map(|r: &Route| (r.destination, r.via, oif(r.leg)))
            .collect();
        let mut present = Vec::new();
        let mut dump = self
            .handle
            .route()
            .get(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .table_id(ROUTE_TABLE)
                    .build(),
            )
            .execute();
        while let Some(msg) = dump
            .try_next()
            .await
            .map_err(netlink(format!("listing routes of table {ROUTE_TABLE}")))?
        {
            if let Some(key) = route_key(&msg) {
                present.push((key, msg));
            }
        }
        let mut changed = 0;
        let mut have = BTreeSet::new();
        for (key, msg) in present {
            if want.contains(&key) && have.insert(key) {
                continue;
            }
            self.handle
                .route()
                .del(msg)
                .execute()
                .await
                .map_err(netlink(format!(
                    "removing route {} from table {ROUTE_TABLE}",
                    key.0
                )))?;
            changed += 1;
        }
        for (dst, via, index) in want.iter().filter(|k| !have.contains(k)) {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(dst.addr(), dst.prefix_len())
                .output_interface(*index)
                .table_id(ROUTE_TABLE);
            if let Some(gw) = via {
                b = b.gateway(*gw);
            } else {
                b = b.scope(rtnetlink::packet_route::route::RouteScope::Link);
            }
            self.handle
                .route()
                .add(b.build())
                .replace()
                .execute()
                .await
                .map_err(netlink(format!(
                    "adding route {dst} via {via:?} to table {ROUTE_TABLE}"
                )))?;
            changed += 1;
        }
        Ok(changed)
    }
}

/// (destination, gateway, oif) of a route in [`ROUTE_TABLE`]; None for other tables.
fn route_key(msg: &RouteMessage) -> Option<(Ipv4Net, Option<Ipv4Addr>, u32)> {
    let mut table = u32::from(msg.header.table);
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gw = None;
    let mut oif = 0;
    for a in &msg.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(*g),
            RouteAttribute::Oif(i) => oif = *i,
            _ => {}
        }
    }
    if table != ROUTE_TABLE {
        return None;
    }
    Some((
        Ipv4Net::new(dst, msg.header.destination_prefix_length).ok()?,
        gw,
        oif,
    ))
}
