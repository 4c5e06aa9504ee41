//! `arp_ignore` over rtnetlink (`daemon::devconf`) against the real kernel: what the netlink
//! request sets is what `/proc/sys/net/ipv4/conf/<if>/arp_ignore` shows in that namespace, and
//! it works as the hardened `kube-ovn-cni` container runs: `CAP_NET_ADMIN` only (no
//! `CAP_SYS_ADMIN`) and a read-only `/proc/sys`. Needs root, `ip` and `setpriv`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is how a test fails.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use daemon::devconf::{self, Ipv4Conf};
use daemon::netns::Netns;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The environment variable that makes [`child_sets_arp_ignore`] act: `<ifname>=<value>`.
const CHILD_ENV: &str = "KOVN_DEVCONF_CHILD";

/// A named network namespace with a veth pair (`kv0`, `kv1`) in it, deleted on drop.
struct TestNs(String);

impl TestNs {
    fn new() -> Self {
        let name = format!(
            "kovn-dc-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["ip", "netns", "add", &name]);
        let ns = Self(name);
        sh(&[
            "ip", "-n", &ns.0, "link", "add", "kv0", "type", "veth", "peer", "name", "kv1",
        ]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.0))
    }

    /// `ip netns exec <ns> <args>`: a process in the namespace, with its own mount namespace and
    /// `/sys` (so `/proc/sys/net` answers for this namespace).
    fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap()
    }

    fn proc_sys(&self, ifname: &str) -> String {
        self.conf(ifname, "arp_ignore")
    }

    /// `/proc/sys/net/ipv4/conf/<ifname>/<name>` in the namespace.
    fn conf(&self, ifname: &str, name: &str) -> String {
        let path = format!("/proc/sys/net/ipv4/conf/{ifname}/{name}");
        let out = self.exec(&["cat", &path]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn index_of(nl: &rtnetlink::Handle, name: &str) -> u32 {
    use futures::TryStreamExt;
    let mut links = nl.link().get().match_name(name.to_owned()).execute();
    links.try_next().await.unwrap().unwrap().header.index
}

/// Set, read back through netlink and through /proc/sys, restore; the other end of the pair is
/// untouched (the request names one link).
#[tokio::test]
async fn arp_ignore_set_over_netlink_is_what_proc_sys_shows_and_is_restored() {
    let ns = TestNs::new();
    let nl = Netns::open(&ns.path()).unwrap().rtnetlink().unwrap();
    let index = index_of(&nl, "kv0").await;
    let before = devconf::get(&nl, index, Ipv4Conf::ArpIgnore).await.unwrap();
    assert_eq!(before.to_string(), ns.proc_sys("kv0"));

    devconf::set(&nl, index, Ipv4Conf::ArpIgnore, 8)
        .await
        .unwrap();
    assert_eq!(ns.proc_sys("kv0"), "8");
    assert_eq!(ns.proc_sys("kv1"), before.to_string(), "the peer changed");
    assert_eq!(
        devconf::get(&nl, index, Ipv4Conf::ArpIgnore).await.unwrap(),
        8
    );

    // Back to the old value, 0 included (the value the crate's own request form would drop).
    devconf::set(&nl, index, Ipv4Conf::ArpIgnore, before as u32)
        .await
        .unwrap();
    assert_eq!(ns.proc_sys("kv0"), before.to_string());
    assert_eq!(
        devconf::get(&nl, index, Ipv4Conf::ArpIgnore).await.unwrap(),
        before
    );
}

/// A link that is gone is an error that names it, not a silent no-op.
#[tokio::test]
async fn setting_arp_ignore_of_a_missing_link_is_an_error() {
    let ns = TestNs::new();
    let nl = Netns::open(&ns.path()).unwrap().rtnetlink().unwrap();
    let err = devconf::set(&nl, 999_999, Ipv4Conf::ArpIgnore, 8)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("link 999999"), "{err}");
}

/// As the hardened `cni-server` container runs: `/proc/sys` read-only (runc mounts it so in an
/// unprivileged container) and `CAP_NET_ADMIN` as the only capability (`setpriv` drops the
/// rest, bounding set included). The write to /proc/sys fails there, the netlink request
/// does not.
#[tokio::test]
async fn arp_ignore_is_set_with_net_admin_only_and_a_read_only_proc_sys() {
    let ns = TestNs::new();
    let confined = |cmd: &str| {
        // `ip netns exec` gives the shell a mount namespace of its own: the read-only bind stays
        // in it.
        ns.exec(&[
            "sh",
            "-c",
            &format!(
                "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec \
                 setpriv --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin \
                 --bounding-set=-all,+net_admin -- {cmd}"
            ),
        ])
    };

    // The environment is what the container has: the sysctl file cannot be written.
    let write = confined(
        "sh -c 'grep CapEff /proc/self/status; echo 8 > /proc/sys/net/ipv4/conf/kv0/arp_ignore'",
    );
    assert!(!write.status.success(), "the /proc/sys write succeeded");
    assert!(
        text(&write.stderr).contains("Read-only file system"),
        "{}",
        text(&write.stderr)
    );
    assert!(
        text(&write.stdout).contains("CapEff:\t0000000000001000"),
        "not NET_ADMIN only: {}",
        text(&write.stdout)
    );
    assert_eq!(ns.proc_sys("kv0"), "0");

    // The gateway's two settings start where the child has something to change (a node with
    // ip_forward=1 gives new namespaces forwarding on).
    let write = ns.exec(&[
        "sh",
        "-c",
        "echo 0 > /proc/sys/net/ipv4/conf/kv0/forwarding && \
         echo 1 > /proc/sys/net/ipv4/conf/kv0/rp_filter",
    ]);
    assert!(write.status.success(), "{}", text(&write.stderr));
    let peer_forwarding = ns.conf("kv1", "forwarding");

    // This test binary again, running only the child below, as that confined process.
    let exe = std::env::current_exe().unwrap();
    let child = confined(&format!(
        "env {CHILD_ENV}=kv0=8 {} --exact child_sets_arp_ignore --nocapture",
        exe.display()
    ));
    assert!(
        child.status.success(),
        "the confined child failed:\n{}\n{}",
        text(&child.stdout),
        text(&child.stderr)
    );
    assert!(
        text(&child.stdout).contains("CapEff:\t0000000000001000"),
        "the child did not run with NET_ADMIN only: {}",
        text(&child.stdout)
    );
    assert_eq!(ns.proc_sys("kv0"), "8");
    // The NAT gateway agent's two settings, set the same way by the same child.
    assert_eq!(ns.conf("kv0", "forwarding"), "1");
    assert_eq!(ns.conf("kv0", "rp_filter"), "2");
    assert_eq!(
        ns.conf("kv1", "forwarding"),
        peer_forwarding,
        "the peer changed"
    );
}

/// The child of [`arp_ignore_is_set_with_net_admin_only_and_a_read_only_proc_sys`], run by it in
/// its confined process with [`CHILD_ENV`] set. Run on its own (no variable), it has nothing to
/// do and returns: the parent test is where it is checked (it fails when the child fails). Not
/// `#[ignore]`d: the test runner refuses skipped tests.
#[tokio::test]
async fn child_sets_arp_ignore() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (ifname, value) = spec.split_once('=').unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let caps = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    println!("{caps}");
    // The daemon's own path: its namespace opened by path; no setns (that needs SYS_ADMIN).
    let nl = Netns::open(std::path::Path::new("/proc/self/ns/net"))
        .unwrap()
        .rtnetlink()
        .unwrap();
    let index = index_of(&nl, ifname).await;
    let value: u32 = value.parse().unwrap();
    // What the daemon sets on the tunnel NIC, and what the NAT gateway agent sets on its legs.
    for (conf, value) in [
        (Ipv4Conf::ArpIgnore, value),
        (Ipv4Conf::Forwarding, 1),
        (Ipv4Conf::RpFilter, 2),
    ] {
        devconf::set(&nl, index, conf, value).await.unwrap();
        assert_eq!(
            devconf::get(&nl, index, conf).await.unwrap(),
            i32::try_from(value).unwrap()
        );
    }
}
