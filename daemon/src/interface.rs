//! Pod interfaces in the kernel: the veth pair, its pod side configured inside the pod's network
//! namespace (name, MAC, MTU, addresses, routes, checksum offload), and its removal.
//!
//! Every step goes through rtnetlink (and one ethtool ioctl); nothing shells out. A failed ADD
//! removes the veth it made (deleting the host end deletes the pair), so nothing is left behind.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::{ErrorMessage, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{AddressMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::naming;
use crate::netns::{Netns, NetnsError};
use crate::rtnl::Rtnl;
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
    /// Where the time went.
    pub timings: PlumbTimings,
}

/// Where the time of one [`plumb`] went (logged per ADD; the bench reads them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlumbTimings {
    /// From the call to both sockets open: starting the thread, joining the node's and the
    /// pod's namespaces, opening a netlink socket in each.
    pub setup: Duration,
    /// The veth request (plus, on a retry, removing the stale pair).
    pub veth: Duration,
    /// Turning TX checksum offload off on the pod end.
    pub ethtool: Duration,
    /// The batch of addresses, link up and routes.
    pub configure: Duration,
    /// From the thread's end to the ADD running again on the async runtime (a scheduling
    /// delay, large when the runtime's threads wait for a CPU).
    pub handback: Duration,
}

/// A kernel step that failed, naming the step and the interface.
#[derive(Debug, thiserror::Error)]
pub enum InterfaceError {
    /// Entering the pod's namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The netlink thread could not be started or died.
    #[error("netlink thread: {0}")]
    Thread(std::io::Error),
    /// A netlink socket failed (opening it, sending, receiving).
    #[error("{step}: {source}")]
    Socket {
        /// What was being done, with names.
        step: String,
        /// The socket's error.
        source: std::io::Error,
    },
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

/// Creates the veth pair for `spec` with its pod end already inside the pod's namespace,
/// configures that end and brings both up. `host` is the node's namespace (where the host end
/// and ovs-vswitchd live). On failure the veth is removed again.
///
/// All of it runs on one thread of its own that joins the node's and the pod's namespaces once
/// and opens a netlink socket in each, so the async runtime never blocks on the kernel and
/// concurrent ADDs share nothing but the kernel's RTNL lock. Kernel requests per ADD: the veth
/// (one message, answered with the pod end's index), the checksum ioctl, and one batch with the
/// addresses, link up and routes.
pub async fn plumb(host: &Netns, spec: &InterfaceSpec) -> Result<Plumbed, InterfaceError> {
    let started = Instant::now();
    let pod = Netns::open(&spec.netns)?;
    let host = host.try_clone()?;
    let spec = spec.clone();
    let (result, finished) = on_own_thread(move || {
        let result = plumb_here(&host, &pod, &spec, started);
        (result, Instant::now())
    })
    .await?;
    let mut plumbed = result?;
    plumbed.timings.handback = finished.elapsed();
    Ok(plumbed)
}

/// Deletes the host end `name` of a veth in the node's namespace `host` (which deletes the
/// pair); `Ok(false)` when it did not exist.
pub async fn unplumb(host: &Netns, name: &str) -> Result<bool, InterfaceError> {
    let host = host.try_clone()?;
    let name = name.to_owned();
    on_own_thread(move || {
        host.enter_this_thread()?;
        let mut socket = open_socket(&host)?;
        delete_link(&mut socket, &name)
    })
    .await?
}

/// Runs `f` on a fresh thread (which may join namespaces and ends with `f`) and awaits it.
async fn on_own_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, InterfaceError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kovn-netlink".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(InterfaceError::Thread)?;
    rx.await.map_err(|_| {
        InterfaceError::Thread(std::io::Error::other(
            "the netlink thread ended without an answer",
        ))
    })
}

fn open_socket(ns: &Netns) -> Result<Rtnl, InterfaceError> {
    Rtnl::open().map_err(|source| InterfaceError::Socket {
        step: format!("opening a netlink socket in {}", ns.path().display()),
        source,
    })
}

fn socket_error(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> InterfaceError {
    let step = step.into();
    move |source| InterfaceError::Socket { step, source }
}

fn kernel_error(step: String, e: ErrorMessage) -> InterfaceError {
    InterfaceError::Netlink {
        step,
        source: rtnetlink::Error::NetlinkError(e),
    }
}

/// The body of [`plumb`], on its own thread.
fn plumb_here(
    host_ns: &Netns,
    pod_ns: &Netns,
    spec: &InterfaceSpec,
    started: Instant,
) -> Result<Plumbed, InterfaceError> {
    let host_name = naming::host_ifname(&spec.container_id, &spec.ifname);
    host_ns.enter_this_thread()?;
    let mut host = open_socket(host_ns)?;
    // The thread stays in the pod's namespace from here on: the checksum ioctl needs it.
    pod_ns.enter_this_thread()?;
    let mut pod = open_socket(pod_ns)?;
    let setup = started.elapsed();

    let t = Instant::now();
    let index = create_veth(&mut host, &mut pod, pod_ns, spec, &host_name)?;
    let veth = t.elapsed();
    match configure(&mut pod, index, spec) {
        Ok((ethtool, configure)) => Ok(Plumbed {
            host_ifname: host_name,
            timings: PlumbTimings {
                setup,
                veth,
                ethtool,
                configure,
                handback: Duration::ZERO,
            },
        }),
        Err(e) => {
            // Best effort: the error being returned is the one that matters.
            let _ = delete_link(&mut host, &host_name);
            Err(e)
        }
    }
}

/// The veth request: the pod end is created inside the pod's namespace under its final name,
/// MAC and MTU, and the host end comes up in the same request. Moving a link into another
/// namespace afterwards costs an RCU grace period (`synchronize_net`, 14-20 ms measured here).
/// (The pod end cannot come up in this request: the kernel answers ENOTCONN because the pair
/// is not linked yet when the peer is configured.)
fn veth_message(spec: &InterfaceSpec, host_name: &str, pod_ns: &Netns) -> LinkMessage {
    use std::os::fd::AsRawFd;
    let peer = LinkUnspec::new_with_name(&spec.ifname)
        .address(spec.mac.to_vec())
        .mtu(spec.mtu)
        .setns_by_fd(pod_ns.file().as_raw_fd())
        .build();
    LinkVeth::new(host_name, &spec.ifname)
        .mtu(spec.mtu)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build()
}

/// Creates the pair and returns the pod end's index in the pod's namespace.
fn create_veth(
    host: &mut Rtnl,
    pod: &mut Rtnl,
    pod_ns: &Netns,
    spec: &InterfaceSpec,
    host_name: &str,
) -> Result<u32, InterfaceError> {
    let ns = spec.netns.display().to_string();
    let step = || {
        format!(
            "creating veth pair {host_name} (host) / {} (in {ns})",
            spec.ifname
        )
    };
    // NLM_F_ECHO: the kernel answers with the host end, whose IFLA_LINK is the pod end's index,
    // which saves a lookup in the pod (kernels before 6.1 do not echo; then we look it up).
    let flags = NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;
    let create = |host: &mut Rtnl| {
        host.request(
            RouteNetlinkMessage::NewLink(veth_message(spec, host_name, pod_ns)),
            flags,
        )
        .map_err(socket_error(step()))
    };
    let mut answer = create(host)?;
    if is_errno(&answer.result, libc::EEXIST) {
        // Either a veth with our derived name exists, which belongs to this very attachment
        // (an earlier ADD that was interrupted, or a retry): start from scratch (deleting the
        // host end deletes the pair); or the pod already has an interface named `ifname`.
        if delete_link(host, host_name)? {
            answer = create(host)?;
        }
        if is_errno(&answer.result, libc::EEXIST) {
            return Err(InterfaceError::NameTaken {
                ifname: spec.ifname.clone(),
                netns: ns,
            });
        }
    }
    answer.result.map_err(|e| kernel_error(step(), e))?;
    let echoed = answer.messages.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(link) => link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Link(index) => Some(*index),
            _ => None,
        }),
        _ => None,
    });
    // The kernel leaves IFLA_LINK out when both ends happen to have the same index.
    match echoed {
        Some(index) => Ok(index),
        None => link_index(pod, &spec.ifname)?.ok_or_else(|| InterfaceError::Missing {
            ifname: spec.ifname.clone(),
            netns: ns,
        }),
    }
}

fn is_errno(result: &Result<(), ErrorMessage>, errno: i32) -> bool {
    matches!(result, Err(e) if e.raw_code() == -errno)
}

/// Index of `name` in the socket's namespace, `None` when it does not exist.
fn link_index(socket: &mut Rtnl, name: &str) -> Result<Option<u32>, InterfaceError> {
    let step = || format!("looking up link {name}");
    let answer = socket
        .request(
            RouteNetlinkMessage::GetLink(LinkUnspec::new_with_name(name).build()),
            0,
        )
        .map_err(socket_error(step()))?;
    if is_errno(&answer.result, libc::ENODEV) {
        return Ok(None);
    }
    answer.result.map_err(|e| kernel_error(step(), e))?;
    Ok(answer.messages.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
        _ => None,
    }))
}

/// Deletes the link `name` in the socket's namespace (by name: one request); `Ok(false)` when
/// it did not exist.
fn delete_link(socket: &mut Rtnl, name: &str) -> Result<bool, InterfaceError> {
    let step = || format!("deleting link {name}");
    let answer = socket
        .request(
            RouteNetlinkMessage::DelLink(LinkUnspec::new_with_name(name).build()),
            0,
        )
        .map_err(socket_error(step()))?;
    if is_errno(&answer.result, libc::ENODEV) {
        return Ok(false);
    }
    answer.result.map_err(|e| kernel_error(step(), e))?;
    Ok(true)
}

/// Checksum offload (an ioctl on the calling thread's namespace, the pod's), then addresses,
/// link up and routes of the pod end in one batch. Returns how long the ioctl and the batch
/// took.
fn configure(
    pod: &mut Rtnl,
    index: u32,
    spec: &InterfaceSpec,
) -> Result<(Duration, Duration), InterfaceError> {
    let ns = spec.netns.display().to_string();
    let t = Instant::now();
    if spec.disable_tx_checksum {
        sys::disable_tx_checksum(&spec.ifname).map_err(|source| InterfaceError::Ethtool {
            ifname: spec.ifname.clone(),
            netns: ns.clone(),
            source,
        })?;
    }
    let ethtool = t.elapsed();

    let t = Instant::now();
    let (requests, steps) = configure_batch(index, spec);
    let answers = pod
        .batch(requests)
        .map_err(socket_error(format!("configuring {} in {ns}", spec.ifname)))?;
    // The kernel runs every request of the batch; the first failure is the one to report.
    for (answer, step) in answers.into_iter().zip(steps) {
        answer.result.map_err(|e| kernel_error(step, e))?;
    }
    Ok((ethtool, t.elapsed()))
}

/// The pod end's addresses, link up and routes, in that order (a route via a gateway needs the
/// connected route of an address on an up link), each with the step it names in errors.
fn configure_batch(
    index: u32,
    spec: &InterfaceSpec,
) -> (Vec<(RouteNetlinkMessage, u16)>, Vec<String>) {
    let ns = spec.netns.display();
    let ifname = &spec.ifname;
    let mut requests = Vec::new();
    let mut steps = Vec::new();
    for addr in &spec.addresses {
        let mut msg = match addr.addr() {
            IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(a, addr.prefix_len())
                .build(),
            IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(index)
                .address(a, addr.prefix_len())
                .build(),
        };
        if addr.addr().is_ipv6() {
            // No duplicate address detection: the address is ours by IPAM, and DAD would keep it
            // unusable for a second or more after ADD returns.
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        requests.push((
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ));
        steps.push(format!("adding {addr} to {ifname} in {ns}"));
    }
    requests.push((
        RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(index).up().build()),
        0,
    ));
    steps.push(format!("bringing {ifname} up in {ns}"));
    for route in &spec.routes {
        requests.push((
            RouteNetlinkMessage::NewRoute(route_message(route, index)),
            route_flags(route),
        ));
        steps.push(format!("adding route {route:?} via {ifname} in {ns}"));
    }
    (requests, steps)
}

/// Netlink flags for adding `route`. A default route is asked for only when the attachment
/// is to carry the pod's default route (its element's `default-route`, or the
/// `default_route` annotation), and the primary CNI's default route is there already: Multus
/// is to remove it first, but its removal matches only routes without a destination, which
/// netlink v1.3 (Multus v4.3) no longer returns for default routes. So the default route
/// replaces the one in place (one default route, through this attachment, whoever comes
/// first); every other route is new or an error (`EEXIST` names a real conflict).
fn route_flags(route: &RouteSpec) -> u16 {
    if route.dst.prefix_len() == 0 {
        NLM_F_CREATE | NLM_F_REPLACE
    } else {
        NLM_F_CREATE | NLM_F_EXCL
    }
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
