//! The system calls the netlink crates do not cover: turning off TX checksum offload
//! (`ethtool -K <if> tx off`) through the `SIOCETHTOOL` ioctl.
//!
//! On the userspace (netdev) datapath this is required on the pod side of every veth: without
//! it the pod sends TCP segments with partial checksums, OVS forwards them as they are through
//! AF_PACKET, and the receiver drops them (ICMP still works, TCP silently fails; measured here).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

/// `ETHTOOL_STXCSUM` from `linux/ethtool.h`: set TX checksum offload.
const ETHTOOL_STXCSUM: u32 = 0x0000_0017;
/// `SIOCETHTOOL` from `linux/sockios.h`.
const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union; padded to the kernel's size.
#[repr(C)]
struct IfreqData {
    ifr_name: [libc::c_char; libc::IFNAMSIZ],
    ifr_data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Turns TX checksum offload off on `ifname` in the network namespace of the calling thread.
pub fn disable_tx_checksum(ifname: &str) -> io::Result<()> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    let socket =
        std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))?;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    let mut req = IfreqData {
        ifr_name: [0; libc::IFNAMSIZ],
        ifr_data: std::ptr::addr_of_mut!(value).cast(),
        _pad: [0; 16],
    };
    for (dst, src) in req.ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a correctly laid out `struct ifreq` whose name is NUL-terminated (the
    // buffer is zeroed and the name is shorter than IFNAMSIZ) and whose `ifr_data` points to a
    // live `ethtool_value`; both outlive the call, and the socket fd is open for its duration.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `ETH_P_ARP` from `linux/if_ether.h`.
const ETH_P_ARP: u16 = 0x0806;

/// The gratuitous ARP frame announcing `ip` at `mac`: an ARP request for its own address, to
/// the broadcast MAC (what `arping -U` sends).
pub fn gratuitous_arp_frame(mac: [u8; 6], ip: std::net::Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // Target MAC stays zero; target IP is our own address.
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// Sends a gratuitous ARP for `ip` from interface `ifindex` in the calling thread's network
/// namespace, so peers that cached an earlier owner's MAC for this address (a pod deleted and
/// re-created with the same static IP) learn the new one at once.
pub fn send_gratuitous_arp(ifindex: u32, mac: [u8; 6], ip: std::net::Ipv4Addr) -> io::Result<()> {
    let frame = gratuitous_arp_frame(mac, ip);
    let protocol = libc::c_int::from(ETH_P_ARP.to_be());
    // SAFETY: plain socket(2) call with constant arguments; the returned fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, valid descriptor that nothing else owns.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value that we then fill in.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ARP.to_be();
    addr.sll_ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range"))?;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: `frame` and `addr` are live for the call and their lengths are passed exactly;
    // the socket fd is open (owned by `socket`).
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            std::ptr::addr_of!(addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gratuitous_arp_frame_announces_our_own_address() {
        let f = gratuitous_arp_frame([2, 0, 0, 0, 0, 5], "10.0.0.5".parse().unwrap());
        assert_eq!(&f[0..6], &[0xff; 6], "broadcast");
        assert_eq!(&f[12..14], &[0x08, 0x06], "ARP ethertype");
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[28..32], &[10, 0, 0, 5], "sender IP");
        assert_eq!(&f[38..42], &[10, 0, 0, 5], "target IP = sender IP");
        assert_eq!(&f[22..28], &f[6..12], "sender MAC = source MAC");
    }
}
