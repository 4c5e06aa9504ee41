//! Pod interfaces in the kernel: the veth pair, its pod side configured inside the pod's network
//! namespace (name, MAC, MTU, addresses, routes, checksum offload), and its removal.
//!
//! Every step goes through rtnetlink; nothing shells out. A failed ADD removes the veth it made
//! (deleting the host end deletes the pair), so nothing is left behind.

use std::net::IpAddr;
use std::path::PathBuf;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::naming;
use crate::netns::{Netns, NetnsError};
use crate::sys;

/// One route in the pod: destination, and next hop (none for on-link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix (`0.0.0.0/0` for a default route).
    pub dst: IpNet,
    /// Next hop.
    pub via: Option<IpAddr>,
}

/// What the pod side of one attachment must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// The runtime's container id (names the host veth).
    pub container_id: String,
    /// The interface name inside the pod (`CNI_IFNAME`, e.g. `net1`).
    pub ifname: String,
    /// The pod's network namespace.
    pub netns: PathBuf,
    /// MAC of the pod interface.
    pub mac: [u8; 6],
    /// MTU of both ends.
    pub mtu: u32,
    /// Addresses with prefix length.
    pub addresses: Vec<IpNet>,
    /// Routes beyond the connected subnet route.
    pub routes: Vec<RouteSpec>,
    /// Turn off TX checksum offload on the pod side (needed on the userspace datapath).
    pub disable_tx_checksum: bool,
}

/// The result of a successful plumb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plumbed {
    /// Name of the host end (the OVS port).
    pub host_ifname: String,
}

/// A kernel step that failed, naming the step and the interface.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// Entering the pod's namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error("{step}: {source}")]
    Netlink {
        /// What was being done, with names.
        step: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
    /// Turning off checksum offload failed.
    #[error("turning off tx checksum offload on {ifname} in {netns}: {source}")]
    Ethtool {
        /// Pod-side interface.
        ifname: String,
        /// Namespace path.
        netns: String,
        /// The ioctl's error.
        source: std::io::Error,
    },
    /// An interface expected to exist is missing.
    #[error("interface {ifname} not found in {netns}")]
    Missing {
        /// The name looked for.
        ifname: String,
        /// Where.
        netns: String,
    },
    /// The pod already has an interface with the requested name that is not ours.
    #[error("the pod already has an interface named {ifname} in {netns}")]
    NameTaken {
        /// The name.
        ifname: String,
        /// Where.
        netns: String,
    },
}

fn nl(step: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> InterfaceError {
    let step = step.into();
    move |source| InterfaceError::Netlink { step, source }
}

/// Index of `name` in the namespace of `handle`, `None` when it does not exist.
pub async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, InterfaceError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(InterfaceError::Netlink {
            step: format!("looking up link {name}"),
            source: e,
        }),
    }
}

/// Creates the veth pair for `spec` with its pod end already inside the pod's namespace, then
/// configures that end, and brings both up. `root` is a handle in the daemon's (host) namespace.
/// On failure the veth is removed again.
pub async fn plumb(root: &Handle, spec: &InterfaceSpec) -> Result<Plumbed, InterfaceError> {
    let host = naming::host_ifname(&spec.container_id, &spec.ifname);
    // A veth with our derived name belongs to this very attachment (an earlier ADD that was
    // interrupted, or a retry): start from scratch. Deleting the host end deletes the pair.
    remove_link(root, &host).await?;
    let netns = Netns::open(&spec.netns)?;
    let pod = netns.rtnetlink()?;
    let ns = spec.netns.display().to_string();
    if link_index(&pod, &spec.ifname).await?.is_some() {
        return Err(InterfaceError::NameTaken {
            ifname: spec.ifname.clone(),
            netns: ns,
        });
    }
    // The pod end is created inside the pod's namespace under its final name, MAC and MTU, and
    // the host end comes up in the same request: moving a link into another namespace
    // afterwards costs an RCU grace period (`synchronize_net`, 14-20 ms measured here), which
    // was most of ADD's plumbing time. (The pod end cannot come up in this request: the kernel
    // answers ENOTCONN because the pair is not linked yet when the peer is configured.)
    let peer = {
        use std::os::fd::AsRawFd;
        LinkUnspec::new_with_name(&spec.ifname)
            .address(spec.mac.to_vec())
            .mtu(spec.mtu)
            .setns_by_fd(netns.file().as_raw_fd())
            .build()
    };
    root.link()
        .add(
            LinkVeth::new(&host, &spec.ifname)
                .mtu(spec.mtu)
                .up()
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!(
            "creating veth pair {host} (host) / {} (in {ns})",
            spec.ifname
        )))?;
    let result = configure(&pod, &netns, spec).await;
    if result.is_err() {
        // Best effort: the error being returned is the one that matters.
        let _ = remove_link(root, &host).await;
    }
    result.map(|()| Plumbed { host_ifname: host })
}

/// Checksum offload, addresses, link up and routes of the pod end (already named, with its MAC
/// and MTU).
async fn configure(
    pod: &Handle,
    netns: &Netns,
    spec: &InterfaceSpec,
) -> Result<(), InterfaceError> {
    let ns = spec.netns.display().to_string();
    let index = link_index(pod, &spec.ifname)
        .await?
        .ok_or_else(|| InterfaceError::Missing {
            ifname: spec.ifname.clone(),
            netns: ns.clone(),
        })?;
    if spec.disable_tx_checksum {
        let ifname = spec.ifname.clone();
        netns
            .run(move || sys::disable_tx_checksum(&ifname))?
            .map_err(|source| InterfaceError::Ethtool {
                ifname: spec.ifname.clone(),
                netns: ns.clone(),
                source,
            })?;
    }
    for addr in &spec.addresses {
        let mut req = pod.address().add(index, addr.addr(), addr.prefix_len());
        if addr.addr().is_ipv6() {
            // No duplicate address detection: the address is ours by IPAM, and DAD would keep it
            // unusable for a second or more after ADD returns.
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute()
            .await
            .map_err(nl(format!("adding {addr} to {} in {ns}", spec.ifname)))?;
    }
    pod.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl(format!("bringing {} up in {ns}", spec.ifname)))?;
    for route in &spec.routes {
        let msg = route_message(route, index);
        pod.route().add(msg).execute().await.map_err(nl(format!(
            "adding route {route:?} via {} in {ns}",
            spec.ifname
        )))?;
    }
    Ok(())
}

fn route_message(route: &RouteSpec, index: u32) -> rtnetlink::packet_route::route::RouteMessage {
    match (route.dst, route.via) {
        (IpNet::V4(dst), via) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(dst.network(), dst.prefix_len())
                .output_interface(index);
            if let Some(IpAddr::V4(gw)) = via {
                b = b.gateway(gw);
            }
            b.build()
        }
        (IpNet::V6(dst), via) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(dst.network(), dst.prefix_len())
                .output_interface(index);
            if let Some(IpAddr::V6(gw)) = via {
                b = b.gateway(gw);
            }
            b.build()
        }
    }
}

/// Deletes the link `name` in the namespace of `handle`; `Ok(false)` when it did not exist.
pub async fn remove_link(handle: &Handle, name: &str) -> Result<bool, InterfaceError> {
    let Some(index) = link_index(handle, name).await? else {
        return Ok(false);
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(false),
        Err(e) => Err(InterfaceError::Netlink {
            step: format!("deleting link {name}"),
            source: e,
        }),
    }
}

/// What the pod side of an attachment looks like now (for CHECK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// MAC address.
    pub mac: Option<[u8; 6]>,
    /// Addresses with prefix length.
    pub addresses: Vec<IpNet>,
    /// MTU.
    pub mtu: Option<u32>,
}

/// Reads the interface `ifname` in the namespace at `netns`.
pub async fn observe(netns: &Netns, ifname: &str) -> Result<Observed, InterfaceError> {
    let pod = netns.rtnetlink()?;
    let ns = netns.path().display().to_string();
    let mut links = pod.link().get().match_name(ifname.to_owned()).execute();
    let link: LinkMessage = match links.try_next().await {
        Ok(Some(link)) => link,
        Ok(None) => {
            return Err(InterfaceError::Missing {
                ifname: ifname.to_owned(),
                netns: ns,
            });
        }
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            return Err(InterfaceError::Missing {
                ifname: ifname.to_owned(),
                netns: ns,
            });
        }
        Err(source) => {
            return Err(InterfaceError::Netlink {
                step: format!("reading {ifname} in {ns}"),
                source,
            });
        }
    };
    let mut observed = Observed {
        mac: None,
        addresses: Vec::new(),
        mtu: None,
    };
    for attr in &link.attributes {
        match attr {
            LinkAttribute::Address(bytes) => {
                observed.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok();
            }
            LinkAttribute::Mtu(mtu) => observed.mtu = Some(*mtu),
            _ => {}
        }
    }
    let mut addrs = pod
        .address()
        .get()
        .set_link_index_filter(link.header.index)
        .execute();
    while let Some(msg) = addrs
        .try_next()
        .await
        .map_err(nl(format!("listing addresses of {ifname} in {ns}")))?
    {
        let prefix = msg.header.prefix_len;
        for attr in &msg.attributes {
            let AddressAttribute::Address(ip) = attr else {
                continue;
            };
            // Link-local v6 addresses are the kernel's, not ours.
            let link_local = matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
            if let (Ok(net), false) = (IpNet::new(*ip, prefix), link_local) {
                observed.addresses.push(net);
            }
        }
    }
    observed.addresses.sort();
    observed.addresses.dedup();
    Ok(observed)
}
