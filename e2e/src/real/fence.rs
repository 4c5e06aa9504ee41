//! The fence: iptables rules that let a real node reach loopback and the harness's own subnets
//! and nothing else, count every packet they stop, and name its destination.
//!
//! Two scopes:
//! - [`Scope::Netns`], inside a node's network namespace, where kubelet, containerd, kube-proxy
//!   and the pods' traffic live. Three hooks, because each sees a different leak:
//!   - filter `OUTPUT` (first rule): the node's own programs. The packet is dropped before it
//!     leaves, so the sender gets `EPERM` ("Operation not permitted") at once. `OUTPUT` runs
//!     after the nat table, so a Service address that kube-proxy translated is checked as the
//!     endpoint it became, and one it did not translate (no kube-proxy, no endpoints) is stopped
//!     as what it is: an address outside the harness.
//!   - filter `FORWARD` (first rule): the pods' traffic routed by the node. Rejected with ICMP
//!     "administratively prohibited", so the pod's connect fails at once ("No route to host")
//!     instead of hanging until a timeout.
//!   - mangle `POSTROUTING` (last rule): the last hook before a packet leaves the namespace,
//!     for locally made and forwarded packets alike, after every rewrite. kube-proxy and CNI
//!     plugins put `ACCEPT` rules at the top of filter `FORWARD`/`OUTPUT`; none of them touch
//!     mangle `POSTROUTING`, so a packet that got past the first two is still stopped here.
//! - [`Scope::HostForward`], in the host namespace, for what the host would route on from the
//!   harness bridge (`FORWARD -i <bridge>`). The host does not forward today (`ip_forward` is 0
//!   and nothing here sets it); the rule keeps it so if anything does.
//!
//! Every stopping rule also records the destination with the `recent` match (`--rdest --set`,
//! `/proc/net/xt_recent/<list>`, one list per namespace and fence), so [`Fence::check`] names
//! where a packet was going, not only how many there were. IPv6 gets the same rules with only
//! loopback and link-local allowed (the harness is IPv4-only).
//!
//! Rules go in with one `iptables-restore --noflush` per table family, so a fence is either
//! fully there or not at all. Teardown removes the hooks, then the chains (and with them the
//! `recent` lists); a node namespace's rules also vanish with the namespace. Host chains carry
//! the test process's pid, and a new fence sweeps chains of processes that are gone (a test
//! killed before `Drop` ran).

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::IpNet;

use super::{Error, Result, in_netns, run, run_with_input};
use crate::programs::{self, Program};

/// The programs a fence needs.
pub const PROGRAMS: &[Program] = &[
    Program {
        name: "iptables",
        package: "iptables",
    },
    Program {
        name: "iptables-restore",
        package: "iptables",
    },
    Program {
        name: "ip6tables",
        package: "iptables",
    },
    Program {
        name: "ip6tables-restore",
        package: "iptables",
    },
    Program {
        name: "ip",
        package: "iproute2",
    },
];

/// Where a fence stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything a network namespace (a node) sends or routes.
    Netns(String),
    /// What the host would route on from one interface (the harness bridge).
    HostForward {
        /// The interface (`FORWARD -i <name>`).
        in_interface: String,
    },
}

/// Destinations that never leave the link or the namespace and so are always allowed:
/// loopback, IPv4 link-local multicast (IGMP and friends, never routed) and limited broadcast,
/// IPv6 loopback, link-local unicast and link-local multicast (neighbour discovery).
const ALWAYS_ALLOWED: &[&str] = &[
    "127.0.0.0/8",
    "224.0.0.0/24",
    "255.255.255.255/32",
    "::1/128",
    "fe80::/10",
    "ff02::/16",
];

/// One chain of a fence: where it hooks and what it does with a packet it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hook {
    table: &'static str,
    /// The built-in chain it hangs from.
    builtin: &'static str,
    /// Suffix of our chain's name.
    suffix: &'static str,
    /// First rule of the built-in chain (else the last).
    first: bool,
    /// REJECT (an immediate error for the sender) instead of DROP; REJECT exists only in the
    /// filter table's INPUT, FORWARD and OUTPUT.
    reject: bool,
}

const NETNS_HOOKS: &[Hook] = &[
    Hook {
        table: "filter",
        builtin: "OUTPUT",
        suffix: "OUT",
        first: true,
        reject: false,
    },
    Hook {
        table: "filter",
        builtin: "FORWARD",
        suffix: "FWD",
        first: true,
        reject: true,
    },
    Hook {
        table: "mangle",
        builtin: "POSTROUTING",
        suffix: "LAST",
        first: false,
        reject: false,
    },
];

const HOST_HOOKS: &[Hook] = &[Hook {
    table: "filter",
    builtin: "FORWARD",
    suffix: "FWD",
    first: true,
    reject: true,
}];

/// IP family: which iptables and which addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn iptables(self) -> &'static str {
        match self {
            Self::V4 => "iptables",
            Self::V6 => "ip6tables",
        }
    }

    fn restore(self) -> &'static str {
        match self {
            Self::V4 => "iptables-restore",
            Self::V6 => "ip6tables-restore",
        }
    }

    fn reject_with(self) -> &'static str {
        match self {
            Self::V4 => "icmp-admin-prohibited",
            Self::V6 => "icmp6-adm-prohibited",
        }
    }

    fn matches(self, net: &IpNet) -> bool {
        matches!(
            (self, net),
            (Self::V4, IpNet::V4(_)) | (Self::V6, IpNet::V6(_))
        )
    }

    fn list_suffix(self) -> &'static str {
        match self {
            Self::V4 => "",
            Self::V6 => "6",
        }
    }
}

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Chain-name prefix of host fences: `KOVN-FENCE-<pid>-<n>-<hook>`.
const HOST_PREFIX: &str = "KOVN-FENCE-";

/// What a fence stopped since it was set up (or last reset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Packets stopped, all hooks and both families together.
    pub packets: u64,
    /// Packets stopped per hook, e.g. `("filter OUTPUT", 3)`; hooks with none are left out.
    pub per_hook: Vec<(String, u64)>,
    /// Where they were going, sorted, each once.
    pub destinations: Vec<IpAddr>,
    /// Of `packets`: those to a deferred range (cluster IPs) that nothing translated, stopped
    /// at the last hook.
    pub untranslated_packets: u64,
    /// Where those were going, sorted, each once (not in `destinations`).
    pub untranslated: Vec<IpAddr>,
}

impl Report {
    /// True when nothing was stopped.
    pub fn is_clean(&self) -> bool {
        self.is_clean_allowing(&[])
    }

    /// True when nothing was stopped but untranslated packets to `services`.
    pub fn is_clean_allowing(&self, services: &[IpAddr]) -> bool {
        self.packets == self.untranslated_packets
            && self.destinations.is_empty()
            && self.untranslated.iter().all(|ip| services.contains(ip))
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let destinations = self
            .destinations
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let hooks = self
            .per_hook
            .iter()
            .map(|(hook, n)| format!("{hook}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let untranslated = self
            .untranslated
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "{} packets stopped ({hooks}) to [{destinations}]; {} of them to cluster IPs \
             nothing translated [{untranslated}]",
            self.packets, self.untranslated_packets
        )
    }
}

/// A fence, in place until dropped.
#[derive(Debug)]
pub struct Fence {
    scope: Scope,
    /// Chain-name stem: `KOVN-FENCE` in a node namespace (it is ours alone), `KOVN-FENCE-<pid>-<n>`
    /// in the host.
    stem: String,
    /// `recent` list-name stem.
    list: String,
    allowed: Vec<IpNet>,
    /// Let through the filter hooks but not the last one (see [`Fence::install_deferring`]).
    deferred: Vec<IpNet>,
    installed: bool,
}

impl Fence {
    /// Puts a fence at `scope` that lets through only [`ALWAYS_ALLOWED`] and `allowed`.
    pub fn install(scope: Scope, allowed: &[IpNet]) -> Result<Self> {
        Self::install_deferring(scope, allowed, &[])
    }

    /// As [`Fence::install`], and destinations in `deferred` pass the filter hooks of a node
    /// namespace (`OUTPUT`, `FORWARD`) to be judged only at the last hook (mangle
    /// `POSTROUTING`, after every rewrite). For the Service range: kube-proxy translates a
    /// cluster IP before the filter hooks, or REJECTs it there itself when the Service has no
    /// endpoints yet (a client started before its server: it never leaves, and is not ours to
    /// count); one it does not know at all is still stopped and counted at the last hook.
    pub fn install_deferring(scope: Scope, allowed: &[IpNet], deferred: &[IpNet]) -> Result<Self> {
        programs::require(PROGRAMS)?;
        let (stem, list) = match &scope {
            Scope::Netns(_) => ("KOVN-FENCE".to_owned(), "kovn-fence".to_owned()),
            Scope::HostForward { .. } => {
                sweep_stale_host_fences();
                let id = format!(
                    "{}-{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed)
                );
                (format!("{HOST_PREFIX}{id}"), format!("kovn-fence-{id}"))
            }
        };
        let mut allowed_all = ALWAYS_ALLOWED
            .iter()
            .filter_map(|net| net.parse::<IpNet>().ok())
            .collect::<Vec<_>>();
        allowed_all.extend(allowed.iter().map(IpNet::trunc));
        let mut fence = Self {
            scope,
            stem,
            list,
            allowed: allowed_all,
            deferred: deferred.iter().map(IpNet::trunc).collect(),
            installed: false,
        };
        for family in FAMILIES {
            // Marked installed before the first rule goes in: Drop then removes whatever part
            // made it, if a later step fails.
            fence.installed = true;
            run_with_input(
                fence
                    .command(family.restore())
                    .args(["--noflush", "--wait"]),
                &fence.restore_input(family),
            )?;
        }
        Ok(fence)
    }

    /// Where this fence stands.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The destinations it lets through (always-allowed ones included).
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    fn netns(&self) -> Option<&str> {
        match &self.scope {
            Scope::Netns(ns) => Some(ns),
            Scope::HostForward { .. } => None,
        }
    }

    fn hooks(&self) -> &'static [Hook] {
        match self.scope {
            Scope::Netns(_) => NETNS_HOOKS,
            Scope::HostForward { .. } => HOST_HOOKS,
        }
    }

    fn command(&self, program: &str) -> Command {
        in_netns(self.netns(), program)
    }

    fn chain(&self, hook: &Hook) -> String {
        format!("{}-{}", self.stem, hook.suffix)
    }

    fn list_name(&self, hook: &Hook, family: Family) -> String {
        format!(
            "{}-{}{}",
            self.list,
            hook.suffix.to_ascii_lowercase(),
            family.list_suffix()
        )
    }

    /// The rule that hooks our chain into the built-in one (without `-A`/`-I`/`-D`).
    fn jump(&self, hook: &Hook) -> Vec<String> {
        let mut rule = vec![hook.builtin.to_owned()];
        if let Scope::HostForward { in_interface } = &self.scope {
            rule.extend(["-i".to_owned(), in_interface.clone()]);
        }
        rule.extend(["-j".to_owned(), self.chain(hook)]);
        rule
    }

    /// `iptables-restore --noflush` input that creates the chains and hooks them in.
    fn restore_input(&self, family: Family) -> String {
        let mut out = String::new();
        let tables: Vec<&str> = {
            let mut t: Vec<&str> = self.hooks().iter().map(|h| h.table).collect();
            t.dedup();
            t
        };
        for table in tables {
            out.push_str(&format!("*{table}\n"));
            let hooks: Vec<&Hook> = self.hooks().iter().filter(|h| h.table == table).collect();
            for hook in &hooks {
                out.push_str(&format!(":{} - [0:0]\n", self.chain(hook)));
            }
            for hook in &hooks {
                let chain = self.chain(hook);
                if matches!(self.scope, Scope::Netns(_)) && hook.builtin != "FORWARD" {
                    // The namespace's own loopback traffic, whatever address it uses.
                    out.push_str(&format!("-A {chain} -o lo -j RETURN\n"));
                }
                for net in self.allowed.iter().filter(|n| family.matches(n)) {
                    out.push_str(&format!("-A {chain} -d {net} -j RETURN\n"));
                }
                if matches!(self.scope, Scope::Netns(_)) {
                    for net in self.deferred.iter().filter(|n| family.matches(n)) {
                        if hook.table == "filter" {
                            out.push_str(&format!("-A {chain} -d {net} -j RETURN\n"));
                        } else {
                            // Stopped like the rest, counted and named apart (see
                            // [`Report::untranslated`]).
                            out.push_str(&format!(
                                "-A {chain} -d {net} -m recent --name {}-svc --rdest --set \
                                 -m comment --comment \"{UNTRANSLATED}\" -j DROP\n",
                                self.list_name(hook, family)
                            ));
                        }
                    }
                }
                let verdict = if hook.reject {
                    format!("REJECT --reject-with {}", family.reject_with())
                } else {
                    "DROP".to_owned()
                };
                out.push_str(&format!(
                    "-A {chain} -m recent --name {} --rdest --set -m comment --comment \
                     \"kube-ovn e2e fence: off-harness destination\" -j {verdict}\n",
                    self.list_name(hook, family)
                ));
                let position = if hook.first { "-I" } else { "-A" };
                let jump = self.jump(hook);
                let (builtin, rest) = jump.split_at(1);
                let at = if hook.first { " 1" } else { "" };
                out.push_str(&format!(
                    "{position} {}{at} {}\n",
                    builtin.join(" "),
                    rest.join(" ")
                ));
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    /// What the fence stopped so far.
    pub fn report(&self) -> Result<Report> {
        let mut report = Report::default();
        for family in FAMILIES {
            for hook in self.hooks() {
                let chain = self.chain(hook);
                let listing = run(self
                    .command(family.iptables())
                    .args(["-w", "-t", hook.table, "-L", &chain, "-v", "-x", "-n"]))?;
                let packets = stopped_packets(&listing).ok_or_else(|| Error::Parse {
                    command: format!(
                        "{} -t {} -L {chain} -v -x -n",
                        family.iptables(),
                        hook.table
                    ),
                    detail: format!("no counter on the last rule in:\n{listing}"),
                })?;
                let untranslated = untranslated_packets(&listing);
                let packets = packets + untranslated;
                if packets > 0 {
                    let name = match family {
                        Family::V4 => format!("{} {}", hook.table, hook.builtin),
                        Family::V6 => format!("{} {} (IPv6)", hook.table, hook.builtin),
                    };
                    report.per_hook.push((name, packets));
                }
                report.packets += packets;
                report.untranslated_packets += untranslated;
                let list = self.list_name(hook, family);
                for (name, into) in [
                    (list.clone(), &mut report.destinations),
                    (format!("{list}-svc"), &mut report.untranslated),
                ] {
                    let path = format!("/proc/net/xt_recent/{name}");
                    // The list exists as long as its rule does; an empty read (or no such
                    // list) is no destinations.
                    let text = run(self.command("cat").arg(&path)).unwrap_or_default();
                    into.extend(recent_destinations(&text));
                }
            }
        }
        for list in [&mut report.destinations, &mut report.untranslated] {
            list.sort();
            list.dedup();
        }
        Ok(report)
    }

    /// Zeroes the counters and forgets the destinations (after a test stopped packets on
    /// purpose).
    pub fn reset(&self) -> Result<()> {
        for family in FAMILIES {
            for hook in self.hooks() {
                run(self.command(family.iptables()).args([
                    "-w",
                    "-t",
                    hook.table,
                    "-Z",
                    &self.chain(hook),
                ]))?;
                let list = self.list_name(hook, family);
                let path = format!("/proc/net/xt_recent/{list}");
                // Writing "/" to a recent list clears it.
                run_with_input(self.command("tee").arg(&path), "/\n")?;
                if matches!(self.scope, Scope::Netns(_))
                    && hook.table == "mangle"
                    && self.deferred.iter().any(|n| family.matches(n))
                {
                    let path = format!("/proc/net/xt_recent/{list}-svc");
                    run_with_input(self.command("tee").arg(&path), "/\n")?;
                }
            }
        }
        Ok(())
    }

    /// Fails when the fence stopped anything, naming the scope, the destinations and the count.
    /// Every real-node run calls this at its end.
    pub fn check(&self) -> Result<()> {
        self.check_allowing(&[])
    }

    /// As [`Fence::check`], except that untranslated packets to `services` (cluster IPs of
    /// Services the cluster has or had) are not a breach: kube-proxy programs a new Service a
    /// moment after it exists, and a client that dials it in that moment (a chart's pods start
    /// with their Services) sends its first SYN untranslated. Those packets were still stopped;
    /// a cluster IP no Service ever had is a breach as any other destination.
    pub fn check_allowing(&self, services: &[IpAddr]) -> Result<()> {
        let report = self.report()?;
        if report.is_clean_allowing(services) {
            Ok(())
        } else {
            Err(Error::Breached(format!("{}: {report}", self.describe())))
        }
    }

    fn describe(&self) -> String {
        match &self.scope {
            Scope::Netns(ns) => format!("netns {ns}"),
            Scope::HostForward { in_interface } => format!("host FORWARD -i {in_interface}"),
        }
    }

    /// Takes the fence down (also done by `Drop`). Errors are collected and the removal goes
    /// on, so one missing rule does not leave the others.
    pub fn remove(&mut self) -> Result<()> {
        if !self.installed {
            return Ok(());
        }
        self.installed = false;
        if let Some(ns) = self.netns()
            && !std::path::Path::new(&format!("/var/run/netns/{ns}")).exists()
        {
            // The namespace is gone and its rules with it.
            return Ok(());
        }
        let mut errors = Vec::new();
        for family in FAMILIES {
            for hook in self.hooks() {
                let chain = self.chain(hook);
                let mut delete = self.command(family.iptables());
                delete
                    .args(["-w", "-t", hook.table, "-D"])
                    .args(self.jump(hook));
                let steps = [
                    delete,
                    {
                        let mut c = self.command(family.iptables());
                        c.args(["-w", "-t", hook.table, "-F", &chain]);
                        c
                    },
                    {
                        let mut c = self.command(family.iptables());
                        c.args(["-w", "-t", hook.table, "-X", &chain]);
                        c
                    },
                ];
                for mut step in steps {
                    if let Err(e) = run(&mut step) {
                        errors.push(e.to_string());
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Command {
                command: format!("removing the fence at {}", self.describe()),
                detail: errors.join("; "),
            })
        }
    }

    /// True when this fence's hooks are in place (for tests of teardown).
    pub fn is_hooked(&self) -> bool {
        self.hooks().iter().all(|hook| {
            let mut check = self.command("iptables");
            check
                .args(["-w", "-t", hook.table, "-C"])
                .args(self.jump(hook));
            run(&mut check).is_ok()
        })
    }

    /// Chain names this fence uses in the host, for leftover checks.
    pub fn host_chains(&self) -> Vec<String> {
        match self.scope {
            Scope::HostForward { .. } => HOST_HOOKS.iter().map(|h| self.chain(h)).collect(),
            Scope::Netns(_) => Vec::new(),
        }
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("fence teardown: {e}");
        }
    }
}

/// The packet count of the last rule in `iptables -L <chain> -v -x -n` output (the stopping
/// rule; the ones before it are RETURNs).
fn stopped_packets(listing: &str) -> Option<u64> {
    listing
        .lines()
        .skip(2)
        .filter(|line| !line.trim().is_empty())
        .last()
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Comment on the last hook's rule for deferred destinations.
const UNTRANSLATED: &str = "kube-ovn e2e fence: cluster IP not translated";

/// The packets of the deferred-destination rules in `iptables -L <chain> -v -x -n` output.
fn untranslated_packets(listing: &str) -> u64 {
    listing
        .lines()
        .filter(|line| line.contains(UNTRANSLATED))
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// Addresses in a `/proc/net/xt_recent/<list>` file (`src=<addr> ttl: ...` per line; with
/// `--rdest` the "src" is the destination).
fn recent_destinations(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|field| field.strip_prefix("src="))
        .filter_map(|addr| addr.parse().ok())
        .collect()
}

/// Removes host fences (hooks and chains) whose process is gone.
fn sweep_stale_host_fences() {
    let stale = |chain: &str| {
        chain
            .strip_prefix(HOST_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    for family in FAMILIES {
        let ipt = family.iptables();
        let Ok(rules) = run(Command::new(ipt).args(["-w", "-t", "filter", "-S"])) else {
            continue;
        };
        // Hooks first (a chain still jumped to cannot be deleted), then the chains.
        for rule in rules.lines().filter_map(|l| l.strip_prefix("-A ")) {
            let words: Vec<&str> = rule.split_whitespace().collect();
            let hooked = words.first().is_some_and(|c| !c.starts_with(HOST_PREFIX));
            let target = words
                .windows(2)
                .find(|w| w[0] == "-j")
                .map(|w| w[1])
                .filter(|t| stale(t));
            if hooked && target.is_some() {
                let _ = run(Command::new(ipt)
                    .args(["-w", "-t", "filter", "-D"])
                    .args(&words));
            }
        }
        for chain in rules.lines().filter_map(|l| l.strip_prefix("-N ")) {
            let chain = chain.trim();
            if stale(chain) {
                let _ = run(Command::new(ipt).args(["-w", "-t", "filter", "-F", chain]));
                let _ = run(Command::new(ipt).args(["-w", "-t", "filter", "-X", chain]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fence(scope: Scope) -> Fence {
        Fence {
            scope,
            stem: "KOVN-FENCE".to_owned(),
            list: "kovn-fence".to_owned(),
            allowed: vec![
                "127.0.0.0/8".parse().unwrap(),
                "172.30.7.0/24".parse().unwrap(),
            ],
            deferred: Vec::new(),
            installed: false,
        }
    }

    #[test]
    fn deferred_destinations_pass_the_filter_hooks_only() {
        let mut f = fence(Scope::Netns("n".to_owned()));
        f.deferred = vec!["10.96.0.0/12".parse().unwrap()];
        let input = f.restore_input(Family::V4);
        for chain in ["KOVN-FENCE-OUT", "KOVN-FENCE-FWD"] {
            assert!(
                input.contains(&format!("-A {chain} -d 10.96.0.0/12 -j RETURN")),
                "{input}"
            );
        }
        assert!(
            !input.contains("-A KOVN-FENCE-LAST -d 10.96.0.0/12 -j RETURN"),
            "the last hook must still judge cluster IPs:\n{input}"
        );
        assert!(
            input.contains(
                "-A KOVN-FENCE-LAST -d 10.96.0.0/12 -m recent --name kovn-fence-last-svc --rdest \
                 --set"
            ) && input.contains(&format!("\"{UNTRANSLATED}\" -j DROP")),
            "cluster IPs are stopped and counted apart at the last hook:\n{input}"
        );
        let listing = format!(
            "Chain KOVN-FENCE-LAST (1 references)\n pkts bytes target prot opt in out source destination\n\
             0 0 RETURN 0 -- * lo 0.0.0.0/0 0.0.0.0/0\n\
             3 180 DROP 0 -- * * 0.0.0.0/0 10.96.0.0/12 recent: SET name: kovn-fence-last-svc side: dest mask: 255.255.255.255 /* {UNTRANSLATED} */\n\
             1 60 DROP 0 -- * * 0.0.0.0/0 0.0.0.0/0 recent: SET name: kovn-fence-last side: dest /* kube-ovn e2e fence: off-harness destination */\n"
        );
        assert_eq!(untranslated_packets(&listing), 3);
        assert_eq!(stopped_packets(&listing), Some(1));
    }

    #[test]
    fn untranslated_packets_to_known_services_are_excused_and_nothing_else() {
        let svc: IpAddr = "10.100.127.20".parse().unwrap();
        let report = Report {
            packets: 2,
            per_hook: vec![("mangle POSTROUTING".to_owned(), 2)],
            destinations: Vec::new(),
            untranslated_packets: 2,
            untranslated: vec![svc],
        };
        assert!(!report.is_clean());
        assert!(report.is_clean_allowing(&[svc]));
        assert!(!report.is_clean_allowing(&["10.96.0.1".parse().unwrap()]));
        let mixed = Report {
            packets: 3,
            destinations: vec!["198.18.0.2".parse().unwrap()],
            ..report
        };
        assert!(!mixed.is_clean_allowing(&[svc]));
    }

    #[test]
    fn netns_rules_hook_output_forward_and_postrouting() {
        let rules = fence(Scope::Netns("n".to_owned())).restore_input(Family::V4);
        for want in [
            "*filter\n",
            ":KOVN-FENCE-OUT - [0:0]\n",
            "-A KOVN-FENCE-OUT -o lo -j RETURN\n",
            "-A KOVN-FENCE-OUT -d 172.30.7.0/24 -j RETURN\n",
            "-I OUTPUT 1 -j KOVN-FENCE-OUT\n",
            "-I FORWARD 1 -j KOVN-FENCE-FWD\n",
            "--name kovn-fence-fwd --rdest --set",
            "-j REJECT --reject-with icmp-admin-prohibited\n",
            "*mangle\n",
            "-A POSTROUTING -j KOVN-FENCE-LAST\n",
        ] {
            assert!(rules.contains(want), "missing {want:?} in\n{rules}");
        }
        // IPv4 subnets stay out of the IPv6 rules.
        let v6 = fence(Scope::Netns("n".to_owned())).restore_input(Family::V6);
        assert!(!v6.contains("172.30.7.0"), "{v6}");
        assert!(v6.contains("icmp6-adm-prohibited"), "{v6}");
    }

    #[test]
    fn host_rules_only_catch_the_harness_interface() {
        let rules = fence(Scope::HostForward {
            in_interface: "kr1-0".to_owned(),
        })
        .restore_input(Family::V4);
        assert!(
            rules.contains("-I FORWARD 1 -i kr1-0 -j KOVN-FENCE-FWD\n"),
            "{rules}"
        );
        assert!(!rules.contains("OUTPUT"), "{rules}");
        assert!(!rules.contains("*mangle"), "{rules}");
    }

    #[test]
    fn counters_and_destinations_are_parsed() {
        let listing = "Chain KOVN-FENCE-OUT (1 references)\n    pkts      bytes target     prot opt in     out     source               destination\n       0        0 RETURN     0    --  *      lo      0.0.0.0/0            0.0.0.0/0\n       2      144 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0            recent: SET name: kovn-fence-out side: dest mask: 255.255.255.255\n";
        assert_eq!(stopped_packets(listing), Some(2));
        let recent = "src=10.254.254.7 ttl: 64 last_seen: 4296072145 oldest_pkt: 2 1, 2\n\
                      src=fd00::1 ttl: 64 last_seen: 1 oldest_pkt: 1 1\n";
        assert_eq!(
            recent_destinations(recent),
            vec![
                "10.254.254.7".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
    }
}
