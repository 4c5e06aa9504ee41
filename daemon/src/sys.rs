//! The one system call the netlink crates do not cover: turning off TX checksum offload
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
