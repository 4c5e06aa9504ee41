//! `cargo xtask bench policy`: security groups and MultiNetworkPolicy at scale, on real OVN.
//!
//! One OVN central (NB, SB, ovn-northd) and one node (ovs-vswitchd on the userspace datapath,
//! ovn-controller); one logical switch with `--members` ports (1,000) plus a client. Two ports
//! are bound to real network namespaces on the node: the first member (listening on TCP 8080)
//! and the client. Three ways of doing the same work, each on the same members, one after the
//! other (each removed before the next):
//! - `security group`: the controller's own planner (`nb::security_group`): one port group with
//!   the members, `--rules` rules (TCP from a CIDR), the default-deny group;
//! - `MultiNetworkPolicy`: the controller's planner (`nb::policy`): one policy selecting every
//!   member, each rule allowing from pod peers (every member's address: an address set of
//!   1,000 entries per rule);
//! - `ACL per port`: the same rules as one ACL per rule per member port on the switch (and a
//!   drop per port), the style that makes ACL rows grow with members.
//!
//! For each: the ACL rows in NB; adding one rule (TCP 8080 from the client): the NB operations
//! it writes, the commit time, until ovn-northd has the logical flows (`ovn-nbctl --wait=sb
//! sync`), until ovn-controller has the OpenFlow flows (`--wait=hv`), and until the client's
//! TCP connection to the member succeeds (a fresh connect every 20 ms, from the commit); a member
//! joining: the NB operations and transactions, and the commit time.
//!
//! Prints a Markdown table. Lives in `controller/examples` because it drives this crate's NB
//! planners.
// A benchmark driver: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use controller::nb::{self, policy, security_group as sg};
use crds::naming::{EXTERNAL_ID_SECURITY_GROUPS, EXTERNAL_ID_VENDOR, policy_port_group};
use crds::security_group::SecurityGroupSpec;
use e2e::ovn::{NetnsGuard, OvnCentral, OvnNode};
use ovn_api::tables::nb::{Acl, LogicalSwitch, LogicalSwitchPort};
use ovn_api::txn::Txn;
use ovn_api::value::{Atom, Datum, Uuid};

const GROUP: &str = "bench";
const SWITCH: &str = "bench-ls";
const PORT: u16 = 8080;

#[derive(Debug, Parser)]
struct Args {
    /// Member ports.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Rules of the group / policy before the one added.
    #[arg(long, default_value_t = 50)]
    rules: usize,
}

/// One result row.
#[derive(Debug, Default)]
struct Row {
    style: &'static str,
    acls: usize,
    add_ops: usize,
    commit: Duration,
    northd: Duration,
    hv: Duration,
    traffic: Duration,
    join_ops: usize,
    join_commit: Duration,
}

fn member_ip(i: usize) -> String {
    format!("10.0.{}.{}", i / 250, i % 250 + 2)
}

fn member_mac(i: usize) -> String {
    format!("0a:00:00:00:{:02x}:{:02x}", i / 256, i % 256)
}

fn lsp(i: usize) -> String {
    format!("member-{i}")
}

const CLIENT_IP: &str = "10.0.250.2";
const CLIENT_MAC: &str = "0a:00:00:ff:00:01";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn exec(ns: &NetnsGuard, args: &[&str]) {
    let out = ns.exec(args).unwrap();
    assert!(out.status.success(), "{args:?} in {}: {out:?}", ns.name());
}

/// A namespace whose `eth0` is bound to LSP `lsp` on the node.
fn attach(node: &OvnNode, tag: &str, ip: &str, mac: &str, lsp: &str) -> NetnsGuard {
    let pod = NetnsGuard::create(&format!("bpol-{tag}-{}", std::process::id())).unwrap();
    let host = format!("bp{tag}{}", std::process::id() % 100_000);
    exec(
        node.netns(),
        &[
            "ip",
            "link",
            "add",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            pod.name(),
        ],
    );
    exec(node.netns(), &["ip", "link", "set", &host, "up"]);
    exec(node.netns(), &["ethtool", "-K", &host, "tx", "off"]);
    exec(&pod, &["ip", "link", "set", "lo", "up"]);
    exec(&pod, &["ip", "link", "set", "eth0", "address", mac]);
    exec(
        &pod,
        &["ip", "addr", "add", &format!("{ip}/16"), "dev", "eth0"],
    );
    exec(&pod, &["ip", "link", "set", "eth0", "up"]);
    exec(&pod, &["ethtool", "-K", "eth0", "tx", "off"]);
    run(Command::new("ovs-vsctl").args([
        &format!("--db={}", node.db_remote()),
        "add-port",
        "br-int",
        &host,
        "--",
        "set",
        "interface",
        &host,
        &format!("external_ids:iface-id={lsp}"),
    ]));
    pod
}

/// The python3 interpreter itself (not a version manager's shim, whose start would be
/// timed too).
fn python() -> String {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        run(Command::new("python3").args(["-c", "import sys; print(sys.executable)"]))
            .trim()
            .to_owned()
    })
    .clone()
}

fn sync(central: &OvnCentral, wait: &str) -> Duration {
    let started = Instant::now();
    central
        .nbctl(&[&format!("--wait={wait}"), "--timeout=300", "sync"])
        .unwrap();
    started.elapsed()
}

fn connects(client: &NetnsGuard, ip: &str) -> bool {
    client
        .exec(&["nc", "-z", "-w", "1", ip, &PORT.to_string()])
        .is_ok_and(|o| o.status.success())
}

/// Commits `tx`, then measures until northd, ovn-controller and the traffic follow.
async fn measure(nb: &nb::Nb, central: &OvnCentral, client: &NetnsGuard, tx: Txn, row: &mut Row) {
    row.add_ops = tx.len();
    let started = Instant::now();
    commit(nb, tx).await;
    row.commit = started.elapsed();
    // A TCP connect every 20 ms (50 ms timeout, a fresh SYN each time) from the client, until
    // one succeeds: python3 in the client's namespace, timed from the commit.
    let script = format!(
        "import socket,sys,time\nend=time.time()+120\nwhile time.time()<end:\n s=socket.socket();s.settimeout(0.05)\n try:\n  s.connect(('{}',{PORT}));sys.exit(0)\n except OSError:\n  time.sleep(0.02)\n finally:\n  s.close()\nsys.exit(1)\n",
        member_ip(0)
    );
    let probe = {
        let client_name = client.name().to_owned();
        std::thread::spawn(move || {
            let ok = Command::new("ip")
                .args(["netns", "exec", &client_name, &python(), "-c", &script])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "the client never got through");
            started.elapsed()
        })
    };
    row.northd = started.elapsed() + sync(central, "sb");
    row.hv = started.elapsed() + sync(central, "hv");
    row.traffic = probe.join().unwrap();
}

/// Sends `tx` through the NB client (the bench times it itself).
async fn commit(nb: &nb::Nb, tx: Txn) {
    let client: &ovn_api::Client = nb;
    client.commit(tx).await.unwrap();
}

fn acl_rows(nb: &nb::Nb) -> usize {
    nb.replica().list::<Acl>().unwrap().len()
}

/// The rules as SecurityGroup rules: TCP `1000 + i` from 10.99.0.0/16, plus (`extra`) TCP
/// 8080 from the client.
fn sg_spec(rules: usize, extra: bool) -> SecurityGroupSpec {
    let mut ingress: Vec<serde_json::Value> = (0..rules)
        .map(|i| {
            serde_json::json!({"ipVersion": "ipv4", "protocol": "tcp", "priority": i + 2,
                "remoteType": "address", "remoteAddress": "10.99.0.0/16",
                "portRangeMin": 1000 + i, "portRangeMax": 1000 + i, "policy": "allow"})
        })
        .collect();
    if extra {
        ingress.push(
            serde_json::json!({"ipVersion": "ipv4", "protocol": "tcp", "priority": 1,
            "remoteType": "address", "remoteAddress": CLIENT_IP,
            "portRangeMin": PORT, "portRangeMax": PORT, "policy": "allow"}),
        );
    }
    serde_json::from_value(serde_json::json!({ "ingressRules": ingress })).unwrap()
}

/// A new member port `i` on the switch (its row, inserted in `tx`).
fn new_port(tx: &mut Txn, ls: Uuid, i: usize, groups: bool) -> ovn_api::txn::NamedUuid {
    let mut ids = BTreeMap::from([(
        EXTERNAL_ID_VENDOR.0.to_owned(),
        EXTERNAL_ID_VENDOR.1.to_owned(),
    )]);
    if groups {
        ids.insert(EXTERNAL_ID_SECURITY_GROUPS.to_owned(), GROUP.to_owned());
    }
    let port = tx.insert(&LogicalSwitchPort {
        name: lsp(i),
        addresses: vec![format!("{} {}", member_mac(i), member_ip(i))],
        external_ids: ids,
        ..Default::default()
    });
    tx.mutate::<LogicalSwitch>(
        ls,
        [LogicalSwitch::PORTS.insert(Datum::scalar(Atom::from(&port)))],
    );
    port
}

async fn security_group(
    nb: &nb::Nb,
    central: &OvnCentral,
    client: &NetnsGuard,
    args: &Args,
) -> Row {
    let mut row = Row {
        style: "security group (port group + address sets)",
        ..Row::default()
    };
    let acls = sg::plan_acls(GROUP, &sg_spec(args.rules, false)).unwrap();
    let mut tx = Txn::new();
    sg::plan_group(&nb.replica(), &mut tx, GROUP, Some(&acls)).unwrap();
    commit(nb, tx).await;
    sync(central, "hv");
    assert!(
        !connects(client, &member_ip(0)),
        "the group lets 8080 in before the rule"
    );
    row.acls = acl_rows(nb);
    let acls = sg::plan_acls(GROUP, &sg_spec(args.rules, true)).unwrap();
    let mut tx = Txn::new();
    sg::plan_group(&nb.replica(), &mut tx, GROUP, Some(&acls)).unwrap();
    measure(nb, central, client, tx, &mut row).await;
    // A member joins: its port, the port group, the address set, in one transaction.
    let ls = nb.replica().uuid_by_name::<LogicalSwitch>(SWITCH).unwrap();
    let ip: IpAddr = member_ip(args.members).parse().unwrap();
    let membership =
        sg::prepare_membership(&nb.replica(), None, &[], &[ip], &[GROUP.to_owned()]).unwrap();
    let mut tx = Txn::new();
    let port = new_port(&mut tx, ls, args.members, true);
    membership.apply(&mut tx, &port);
    row.join_ops = tx.len();
    let started = Instant::now();
    commit(nb, tx).await;
    row.join_commit = started.elapsed();
    assert_eq!(acl_rows(nb), row.acls + 1, "ACL rows grew with a member");
    // Clean up for the next style: the group, the deny group, the joined port.
    let mut tx = Txn::new();
    sg::plan_delete_group(&nb.replica(), &mut tx, GROUP, false).unwrap();
    delete_port(&nb.replica(), &mut tx, args.members);
    commit(nb, tx).await;
    central
        .nbctl(&["pg-del", crds::naming::DENY_ALL_PORT_GROUP])
        .unwrap();
    row
}

fn delete_port(r: &ovn_api::replica::Replica, tx: &mut Txn, i: usize) {
    let ls = r.uuid_by_name::<LogicalSwitch>(SWITCH).unwrap();
    if let Some(p) = r.uuid_by_name::<LogicalSwitchPort>(&lsp(i)) {
        tx.mutate::<LogicalSwitch>(
            ls,
            [LogicalSwitch::PORTS.delete(Datum::scalar(Atom::Uuid(p)))],
        );
    }
}

fn mnp_spec(rules: usize, extra: bool) -> crds::MultiNetworkPolicySpec {
    let mut ingress: Vec<serde_json::Value> = (0..rules)
        .map(|i| {
            serde_json::json!({"from": [{"podSelector": {"matchLabels": {"role": "peer"}}}],
                "ports": [{"protocol": "TCP", "port": 1000 + i}]})
        })
        .collect();
    if extra {
        ingress.push(
            serde_json::json!({"from": [{"ipBlock": {"cidr": format!("{CLIENT_IP}/32")}}],
            "ports": [{"protocol": "TCP", "port": PORT}]}),
        );
    }
    serde_json::from_value(serde_json::json!({"podSelector": {}, "ingress": ingress})).unwrap()
}

async fn multi_network_policy(
    nb: &nb::Nb,
    central: &OvnCentral,
    client: &NetnsGuard,
    args: &Args,
    planning: &mut Duration,
) -> Row {
    let mut row = Row {
        style: "MultiNetworkPolicy (port group + address sets)",
        ..Row::default()
    };
    let key = "default/bench";
    let pg = policy_port_group("default", "bench");
    let members = |n: usize| -> (BTreeSet<Uuid>, Vec<IpAddr>) {
        let r = nb.replica();
        let ports = (0..n)
            .filter_map(|i| r.uuid_by_name::<LogicalSwitchPort>(&lsp(i)))
            .collect();
        let ips = (0..n).map(|i| member_ip(i).parse().unwrap()).collect();
        (ports, ips)
    };
    let plan = |n: usize, extra: bool, planning: &mut Duration| {
        let started = Instant::now();
        let (ports, ips) = members(n);
        let mut peers = |_: &k8s_openapi::api::networking::v1::NetworkPolicyPeer| Ok(ips.clone());
        let p = policy::plan_policy("default", "bench", &mnp_spec(args.rules, extra), &mut peers);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let mut tx = Txn::new();
        policy::plan_policy_rows(&nb.replica(), &mut tx, key, &pg, &ports, &p).unwrap();
        *planning = started.elapsed();
        tx
    };
    let tx = plan(args.members, false, planning);
    commit(nb, tx).await;
    sync(central, "hv");
    assert!(
        !connects(client, &member_ip(0)),
        "the policy lets 8080 in before the rule"
    );
    row.acls = acl_rows(nb);
    let tx = plan(args.members, true, planning);
    measure(nb, central, client, tx, &mut row).await;
    // A member joins: the pod's own transaction makes its port; the policy's one transaction
    // puts it in the port group and its address in the peers' sets.
    let ls = nb.replica().uuid_by_name::<LogicalSwitch>(SWITCH).unwrap();
    let mut tx = Txn::new();
    new_port(&mut tx, ls, args.members, false);
    commit(nb, tx).await;
    let mut ignored = Duration::ZERO;
    let tx = plan(args.members + 1, true, &mut ignored);
    row.join_ops = tx.len();
    let started = Instant::now();
    commit(nb, tx).await;
    row.join_commit = started.elapsed();
    assert_eq!(acl_rows(nb), row.acls + 1, "ACL rows grew with a member");
    policy::delete_policy(nb, key).await.unwrap();
    let mut tx = Txn::new();
    delete_port(&nb.replica(), &mut tx, args.members);
    commit(nb, tx).await;
    row
}

/// The ACL of rule `rule` (`None`: the drop) for member `i`, on the switch.
fn per_port_acl(i: usize, rule: Option<(u16, &str)>) -> Acl {
    let (priority, match_, action) = match rule {
        None => (2003, format!("outport == \"{}\" && ip", lsp(i)), "drop"),
        Some((port, from)) => (
            2005,
            format!(
                "outport == \"{}\" && ip4 && ip4.src == {from} && tcp.dst == {port}",
                lsp(i)
            ),
            "allow-related",
        ),
    };
    Acl {
        direction: "to-lport".into(),
        priority,
        match_,
        action: action.into(),
        external_ids: BTreeMap::from([("bench".to_owned(), "per-port".to_owned())]),
        ..Default::default()
    }
}

async fn per_port(nb: &nb::Nb, central: &OvnCentral, client: &NetnsGuard, args: &Args) -> Row {
    let mut row = Row {
        style: "ACL per port (rows grow with members)",
        ..Row::default()
    };
    let ls = nb.replica().uuid_by_name::<LogicalSwitch>(SWITCH).unwrap();
    // Inserts `acls` and adds them to the switch with one mutate.
    let insert = |tx: &mut Txn, acls: Vec<Acl>| {
        let rows: Vec<Atom> = acls.iter().map(|a| Atom::from(&tx.insert(a))).collect();
        tx.mutate::<LogicalSwitch>(ls, [LogicalSwitch::ACLS.insert(Datum::set(rows))]);
    };
    let of_member = |i: usize| -> Vec<Acl> {
        std::iter::once(per_port_acl(i, None))
            .chain(
                (0..args.rules).map(|r| per_port_acl(i, Some((1000 + r as u16, "10.99.0.0/16")))),
            )
            .collect()
    };
    for chunk in (0..args.members).collect::<Vec<_>>().chunks(100) {
        let mut tx = Txn::new();
        insert(&mut tx, chunk.iter().flat_map(|&i| of_member(i)).collect());
        commit(nb, tx).await;
    }
    sync(central, "hv");
    assert!(
        !connects(client, &member_ip(0)),
        "8080 open before the rule"
    );
    row.acls = acl_rows(nb);
    let mut tx = Txn::new();
    insert(
        &mut tx,
        (0..args.members)
            .map(|i| per_port_acl(i, Some((PORT, CLIENT_IP))))
            .collect(),
    );
    measure(nb, central, client, tx, &mut row).await;
    let mut tx = Txn::new();
    new_port(&mut tx, ls, args.members, false);
    let mut acls = of_member(args.members);
    acls.push(per_port_acl(args.members, Some((PORT, CLIENT_IP))));
    insert(&mut tx, acls);
    row.join_ops = tx.len();
    let started = Instant::now();
    commit(nb, tx).await;
    row.join_commit = started.elapsed();
    row
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let central = OvnCentral::start().unwrap();
    let mut node = OvnNode::start("bpol").unwrap();
    let vsctl = |a: &[&str]| {
        run(Command::new("ovs-vsctl")
            .arg(format!("--db={}", node.db_remote()))
            .args(a))
    };
    vsctl(&[
        "--",
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
        "fail-mode=secure",
        "other-config:disable-in-band=true",
    ]);
    vsctl(&[
        "set",
        "open",
        ".",
        &format!("external_ids:ovn-remote={}", central.sb_remote()),
        "external_ids:ovn-encap-type=geneve",
        "external_ids:ovn-encap-ip=127.0.0.1",
        "external_ids:system-id=bench-chassis",
        "external_ids:ovn-bridge-datapath-type=netdev",
    ]);
    node.start_controller().unwrap();
    let nb = nb::connect(&central.nb_remote()).await.unwrap();
    let nb = &nb;
    // The switch, the members and the client, in one transaction.
    let mut tx = Txn::new();
    let mut ports: Vec<Atom> = (0..args.members)
        .map(|i| {
            let mut ids = BTreeMap::from([(
                EXTERNAL_ID_VENDOR.0.to_owned(),
                EXTERNAL_ID_VENDOR.1.to_owned(),
            )]);
            ids.insert(EXTERNAL_ID_SECURITY_GROUPS.to_owned(), GROUP.to_owned());
            Atom::from(&tx.insert(&LogicalSwitchPort {
                name: lsp(i),
                addresses: vec![format!("{} {}", member_mac(i), member_ip(i))],
                external_ids: ids,
                ..Default::default()
            }))
        })
        .collect();
    ports.push(Atom::from(&tx.insert(&LogicalSwitchPort {
        name: "client".into(),
        addresses: vec![format!("{CLIENT_MAC} {CLIENT_IP}")],
        ..Default::default()
    })));
    tx.insert_with(
        &LogicalSwitch {
            name: SWITCH.into(),
            ..Default::default()
        },
        [LogicalSwitch::PORTS.set(Datum::set(ports))],
    );
    commit(nb, tx).await;
    let member = attach(&node, "m", &member_ip(0), &member_mac(0), &lsp(0));
    let client = attach(&node, "c", CLIENT_IP, CLIENT_MAC, "client");
    exec(
        &member,
        &[
            "sh",
            "-c",
            &format!("timeout 900 nc -lk {PORT} >/dev/null 2>&1 &"),
        ],
    );
    sync(&central, "hv");
    let started = Instant::now();
    while !connects(&client, &member_ip(0)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no baseline connection"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut planning = Duration::ZERO;
    let rows = vec![
        security_group(nb, &central, &client, &args).await,
        multi_network_policy(nb, &central, &client, &args, &mut planning).await,
        per_port(nb, &central, &client, &args).await,
    ];
    println!(
        "\n{} members, {} rules (+1 added); times in ms from the commit of the added rule\n",
        args.members, args.rules
    );
    println!(
        "| style | ACL rows | add a rule: NB ops | commit | northd | ovn-controller | traffic passes | member joins: NB ops (txns) | commit |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} (1) | {} |",
            r.style,
            r.acls,
            r.add_ops,
            ms(r.commit),
            ms(r.northd),
            ms(r.hv),
            ms(r.traffic),
            r.join_ops,
            ms(r.join_commit)
        );
    }
    println!(
        "\nMultiNetworkPolicy planning of {} members with {} rules of pod peers: {} ms",
        args.members,
        args.rules + 1,
        ms(planning)
    );
}
