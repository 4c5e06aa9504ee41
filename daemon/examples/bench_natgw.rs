//! `cargo xtask bench natgw`: the NAT gateway agent with `--dnats` DNAT rules and `--fips` FIPs
//! (default 1,000 each), against the same rules applied the upstream way, one `iptables`
//! process per rule, in the same run.
//!
//! Everything happens in scratch network namespaces holding two veth interfaces (`net1` the
//! LAN leg, `net2` the external leg with the attachment's own address), fresh for every run:
//! - `plan`: objects → desired state (pure);
//! - `nft transaction`: the NAT table alone, one netlink transaction;
//! - `agent apply, cold`: the whole apply into an empty namespace (EIP addresses, policy rules,
//!   routes, the transaction) = a restarted gateway pod's namespace work;
//! - `agent apply, steady`: the same apply again (nothing to change but the table);
//! - `upstream: iptables per rule`: a bash script in the namespace running one `iptables -t nat
//!   -A` per rule (a DNAT per DNAT rule, a DNAT and an SNAT per FIP) and one `ip addr add` per
//!   EIP, timed inside the script. Upstream also execs into the pod once per rule object, which
//!   is not counted here.
//!
//! `--api` adds the end-to-end figures on a real API server (L2 control plane): the agent runs
//! in-process on the namespace, the objects are created through the API (32 in flight), and
//! the time is taken from the last object created until every object's `status.ready` is true;
//! then the gateway "pod" restarts (a fresh namespace, a new agent) and the time until the
//! readiness file is back with every rule in place.
//!
//! Prints a Markdown table. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // A bench driver.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use crds::{IptablesDnatRule, IptablesEIP, IptablesFIPRule, Subnet, VpcNatGateway};
use daemon::natgw::agent::{self, AgentOptions};
use daemon::natgw::apply::Applier;
use daemon::natgw::nft::Nft;
use daemon::natgw::plan::{self, Inputs, NadRef};
use daemon::netns::Netns;
use futures::StreamExt;
use serde_json::json;

/// Options.
#[derive(Debug, Parser)]
struct Args {
    /// DNAT rules (spread over EIPs of 100 ports each).
    #[arg(long, default_value_t = 1000)]
    dnats: usize,
    /// FIPs (one EIP each).
    #[arg(long, default_value_t = 1000)]
    fips: usize,
    /// Runs of each agent measurement (the table shows median and min).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Skip the upstream way (it takes about a minute for 3,000 rules).
    #[arg(long)]
    skip_upstream: bool,
    /// Also measure through a real API server.
    #[arg(long)]
    api: bool,
}

const NETWORK_STATUS: &str = r#"[{"name":"default/lan","interface":"net1","ips":["10.1.255.254"]},{"name":"default/ext","interface":"net2","ips":["198.18.0.2"]}]"#;

fn dnat_eip(i: usize) -> (String, Ipv4Addr) {
    let j = i / 100;
    (
        format!("eip-d{j}"),
        Ipv4Addr::new(198, 18, 1, (j + 1) as u8),
    )
}

fn fip_eip(i: usize) -> (String, Ipv4Addr) {
    (
        format!("eip-f{i}"),
        Ipv4Addr::new(198, 18, (10 + i / 250) as u8, (i % 250 + 1) as u8),
    )
}

fn fip_internal(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn dnat_internal(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// The API objects of the benchmark, as JSON (cluster-scoped kinds).
fn objects(args: &Args) -> Vec<(&'static str, serde_json::Value)> {
    let mut out = Vec::new();
    let dnat_eips = args.dnats.div_ceil(100);
    for j in 0..dnat_eips {
        let (name, ip) = dnat_eip(j * 100);
        out.push((
            "eip",
            json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesEIP",
            "metadata":{"name":name},"spec":{"natGwDp":"gw1","v4ip":ip.to_string()}}),
        ));
    }
    for i in 0..args.fips {
        let (name, ip) = fip_eip(i);
        out.push((
            "eip",
            json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesEIP",
            "metadata":{"name":name},"spec":{"natGwDp":"gw1","v4ip":ip.to_string()}}),
        ));
    }
    for i in 0..args.dnats {
        let (eip, _) = dnat_eip(i);
        out.push((
            "dnat",
            json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesDnatRule",
            "metadata":{"name":format!("dnat-{i}")},"spec":{"eip":eip,
            "externalPort":(10000 + i % 100).to_string(),"protocol":"tcp",
            "internalIp":dnat_internal(i).to_string(),"internalPort":"80"}}),
        ));
    }
    for i in 0..args.fips {
        let (eip, _) = fip_eip(i);
        out.push((
            "fip",
            json!({"apiVersion":"kubeovn.io/v1","kind":"IptablesFIPRule",
            "metadata":{"name":format!("fip-{i}")},"spec":{"eip":eip,
            "internalIp":fip_internal(i).to_string()}}),
        ));
    }
    out
}

fn base_objects() -> (VpcNatGateway, Vec<Subnet>) {
    let gw: VpcNatGateway = serde_json::from_value(json!({"apiVersion":"kubeovn.io/v1",
        "kind":"VpcNatGateway","metadata":{"name":"gw1"},
        "spec":{"vpc":"vpc1","subnet":"lan","lanIp":"10.1.255.254"}}))
    .unwrap();
    let lan: Subnet = serde_json::from_value(json!({"apiVersion":"kubeovn.io/v1","kind":"Subnet",
        "metadata":{"name":"lan"},"spec":{"vpc":"vpc1","cidrBlock":"10.0.0.0/15","provider":"lan.default.ovn"}}))
    .unwrap();
    let ext: Subnet = serde_json::from_value(json!({"apiVersion":"kubeovn.io/v1","kind":"Subnet",
        "metadata":{"name":"ext"},"spec":{"cidrBlock":"198.18.0.0/16","gateway":"198.18.0.1","provider":"ext.default"}}))
    .unwrap();
    (gw, vec![lan, ext])
}

fn inputs(args: &Args) -> Inputs {
    let (gw, subnets) = base_objects();
    let mut i = Inputs {
        gateway: "gw1".into(),
        lan_network: Some(NadRef::parse("default/lan").unwrap()),
        external_network: Some(NadRef::parse("default/ext").unwrap()),
        network_status: Some(NETWORK_STATUS.into()),
        nat_gateway: Some(Arc::new(gw)),
        subnets: subnets.into_iter().map(Arc::new).collect(),
        ..Default::default()
    };
    for (kind, obj) in objects(args) {
        match kind {
            "eip" => i.eips.push(Arc::new(serde_json::from_value(obj).unwrap())),
            "dnat" => i.dnats.push(Arc::new(serde_json::from_value(obj).unwrap())),
            _ => i.fips.push(Arc::new(serde_json::from_value(obj).unwrap())),
        }
    }
    i
}

/// A scratch gateway namespace: `net1`, `net2` (veths) with the attachments' addresses.
struct Scratch(String);

impl Scratch {
    fn new(tag: &str) -> Self {
        let name = format!("kovn-bench-ngw-{}-{tag}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        for args in [
            vec!["netns", "add", &name],
            vec!["-n", &name, "link", "set", "lo", "up"],
            // This kernel has no dummy driver: a veth pair each, peer left in the namespace.
            vec![
                "-n", &name, "link", "add", "net1", "type", "veth", "peer", "name", "net1p",
            ],
            vec![
                "-n", &name, "link", "add", "net2", "type", "veth", "peer", "name", "net2p",
            ],
            vec!["-n", &name, "link", "set", "net1", "up"],
            vec!["-n", &name, "link", "set", "net2", "up"],
            vec!["-n", &name, "addr", "add", "10.1.255.254/15", "dev", "net1"],
            vec!["-n", &name, "addr", "add", "198.18.0.2/16", "dev", "net2"],
        ] {
            assert!(
                Command::new("ip").args(&args).status().unwrap().success(),
                "{args:?}"
            );
        }
        Self(name)
    }

    fn path(&self) -> std::path::PathBuf {
        format!("/var/run/netns/{}", self.0).into()
    }

    fn count(&self, args: &[&str]) -> usize {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    fn nat_rules(&self) -> usize {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.0,
                "nft",
                "-j",
                "list",
                "table",
                "ip",
                "kube-ovn-natgw",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["nftables"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|o| o.get("rule").is_some()).count())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn median_min(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0])
}

/// The upstream way: one process per rule and per EIP address, timed inside the script.
fn upstream(args: &Args) -> (Duration, Duration, usize, usize) {
    let ns = Scratch::new("upstream");
    let mut rules = String::new();
    let mut addrs = String::new();
    let mut n_rules = 0;
    for i in 0..args.dnats {
        let (_, eip) = dnat_eip(i);
        rules.push_str(&format!(
            "iptables -t nat -A PREROUTING -d {eip} -p tcp --dport {} -j DNAT --to-destination {}:80\n",
            10000 + i % 100,
            dnat_internal(i)
        ));
        n_rules += 1;
    }
    for i in 0..args.fips {
        let (_, eip) = fip_eip(i);
        let internal = fip_internal(i);
        rules.push_str(&format!(
            "iptables -t nat -A PREROUTING -d {eip} -j DNAT --to-destination {internal}\n\
             iptables -t nat -A POSTROUTING -s {internal} -o net2 -j SNAT --to-source {eip}\n"
        ));
        n_rules += 2;
    }
    let mut n_addrs = 0;
    for j in 0..args.dnats.div_ceil(100) {
        addrs.push_str(&format!(
            "ip addr add {}/16 dev net2\n",
            dnat_eip(j * 100).1
        ));
        n_addrs += 1;
    }
    for i in 0..args.fips {
        addrs.push_str(&format!("ip addr add {}/16 dev net2\n", fip_eip(i).1));
        n_addrs += 1;
    }
    let script = format!(
        "set -e\nt0=$EPOCHREALTIME\n{addrs}t1=$EPOCHREALTIME\n{rules}t2=$EPOCHREALTIME\necho $t0 $t1 $t2\n"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, "bash"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    let d = |a: f64, b: f64| Duration::from_secs_f64(b - a);
    let installed = ns.count(&["iptables", "-t", "nat", "-S"]);
    assert!(installed >= n_rules, "{installed} iptables rules");
    (
        d(times[1], times[2]),
        d(times[0], times[1]),
        n_rules,
        n_addrs,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The agent's own log (rounds, applies, status writes) on stderr with RUST_LOG=info.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let inputs = inputs(&args);
    let mut plan_times = Vec::new();
    let mut plan = plan::plan(&inputs);
    for _ in 0..args.runs {
        let t = Instant::now();
        plan = plan::plan(&inputs);
        plan_times.push(t.elapsed());
    }
    let desired = plan
        .desired
        .clone()
        .expect("the bench's plan has no problem");
    let n_rules = desired.ruleset.len();
    let n_eips = desired.eip_addresses.len();
    assert_eq!(n_rules, args.dnats + 2 * args.fips, "every object planned");

    let mut nft_times = Vec::new();
    let mut cold = Vec::new();
    let mut steady = Vec::new();
    for run in 0..args.runs {
        let ns = Scratch::new(&format!("nft{run}"));
        let rs = desired.ruleset.clone();
        let t = Netns::open(&ns.path())?.run(move || {
            let mut nft = Nft::open()?;
            let t = Instant::now();
            nft.replace(&rs)?;
            Ok::<_, daemon::natgw::nft::NftError>(t.elapsed())
        })??;
        nft_times.push(t);
        assert_eq!(ns.nat_rules(), n_rules);
        drop(ns);

        let ns = Scratch::new(&format!("agent{run}"));
        let applier = Applier::new(Netns::open(&ns.path())?)?;
        let t = Instant::now();
        applier.apply(&desired).await?;
        cold.push(t.elapsed());
        let t = Instant::now();
        applier.apply(&desired).await?;
        steady.push(t.elapsed());
        assert_eq!(ns.nat_rules(), n_rules);
        assert_eq!(
            ns.count(&["ip", "-4", "-o", "addr", "show", "dev", "net2"]),
            n_eips + 1
        );
    }

    println!(
        "NAT gateway: {} DNAT rules + {} FIPs = {n_rules} NAT rules, {n_eips} EIP addresses; \
         {} runs (median / min)\n",
        args.dnats, args.fips, args.runs
    );
    println!("| step | median ms | min ms |");
    println!("|---|---:|---:|");
    let row = |name: &str, v: Vec<Duration>| {
        let (med, min) = median_min(v);
        println!("| {name} | {} | {} |", ms(med), ms(min));
    };
    row("plan (objects -> desired state)", plan_times);
    row("nft transaction alone (one netlink batch)", nft_times);
    row(
        "agent apply, cold (addresses + routes + nft) = restart restore",
        cold,
    );
    row("agent apply, steady (no change but the table)", steady);
    if !args.skip_upstream {
        let (rules, addrs, n, a) = upstream(&args);
        println!(
            "| upstream: {n} `iptables` processes (nf_tables backend), one per rule | {} | - |",
            ms(rules)
        );
        println!(
            "| upstream: {a} `ip addr add` processes, one per EIP | {} | - |",
            ms(addrs)
        );
    }
    if args.api {
        api(&args).await?;
    }
    Ok(())
}

/// Counts objects whose `status.ready` is true, across the three kinds, until `total`.
async fn all_ready(client: &kube::Client, total: usize) -> Instant {
    use kube::runtime::{WatchStreamExt, watcher};
    fn ready_names<K>(
        client: &kube::Client,
        kind: &'static str,
    ) -> futures::stream::BoxStream<'static, (String, bool)>
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug
            + Send
            + 'static,
    {
        watcher(
            kube::Api::<K>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .applied_objects()
        .filter_map(move |o| async move {
            let o = o.ok()?;
            let v = serde_json::to_value(&o).ok()?;
            let name = format!("{kind}/{}", v["metadata"]["name"].as_str()?);
            Some((name, v["status"]["ready"].as_bool().unwrap_or(false)))
        })
        .boxed()
    }
    let mut stream = futures::stream::select_all([
        ready_names::<IptablesEIP>(client, "eip"),
        ready_names::<IptablesDnatRule>(client, "dnat"),
        ready_names::<IptablesFIPRule>(client, "fip"),
    ]);
    let mut ready = HashSet::new();
    while let Some((name, is_ready)) = stream.next().await {
        if is_ready {
            ready.insert(name);
        } else {
            ready.remove(&name);
        }
        if ready.len() >= total {
            return Instant::now();
        }
    }
    panic!("watches ended");
}

async fn api(args: &Args) -> anyhow::Result<()> {
    let cp = e2e::k8s::ControlPlane::start().await?;
    let client = cp.client();
    e2e::cluster::install_crds(&client).await?;
    let (gw, subnets) = base_objects();
    let pp = kube::api::PostParams::default();
    kube::Api::<VpcNatGateway>::all(client.clone())
        .create(&pp, &gw)
        .await?;
    for s in &subnets {
        kube::Api::<Subnet>::all(client.clone())
            .create(&pp, s)
            .await?;
    }
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "apiVersion":"v1","kind":"Pod",
        "metadata":{"name":"vpc-nat-gw-gw1-0","namespace":"default",
            "annotations":{"k8s.v1.cni.cncf.io/network-status": NETWORK_STATUS}},
        "spec":{"containers":[{"name":"agent","image":"kube-ovn-cni"}]}}))?;
    kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "default")
        .create(&pp, &pod)
        .await?;
    let dir = tempfile::tempdir()?;
    let ns = Scratch::new("api");
    let opts = |ns: &Scratch| AgentOptions {
        gateway: "gw1".into(),
        lan_network: "default/lan".into(),
        external_network: "default/ext".into(),
        pod_name: "vpc-nat-gw-gw1-0".into(),
        pod_namespace: "default".into(),
        netns: ns.path(),
        ready_file: dir.path().join("ready"),
        resync_secs: 600,
        kubeconfig: None,
        log_json: false,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_opts = opts(&ns);
    let agent_client = client.clone();
    let agent = tokio::spawn(async move {
        agent::run(agent_client, &agent_opts, async {
            let _ = stopped.await;
        })
        .await
    });

    let objs = objects(args);
    let total = objs.len();
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { all_ready(&client, total).await })
    };
    let first = Instant::now();
    futures::stream::iter(objs)
        .map(|(kind, obj)| {
            let client = client.clone();
            async move {
                let pp = kube::api::PostParams::default();
                match kind {
                    "eip" => {
                        let o: IptablesEIP = serde_json::from_value(obj).unwrap();
                        kube::Api::all(client).create(&pp, &o).await.map(drop)
                    }
                    "dnat" => {
                        let o: IptablesDnatRule = serde_json::from_value(obj).unwrap();
                        kube::Api::all(client).create(&pp, &o).await.map(drop)
                    }
                    _ => {
                        let o: IptablesFIPRule = serde_json::from_value(obj).unwrap();
                        kube::Api::all(client).create(&pp, &o).await.map(drop)
                    }
                }
            }
        })
        .buffer_unordered(32)
        .for_each(|r| async move { r.unwrap() })
        .await;
    let last_created = Instant::now();
    let done = tokio::time::timeout(Duration::from_secs(300), waiter).await??;
    let nat_rules = ns.nat_rules();
    println!(
        "| API: {total} objects created (32 in flight) | {} | - |",
        ms(last_created - first)
    );
    println!(
        "| API: last object created -> all {total} `status.ready` | {} | - |",
        ms(done.saturating_duration_since(last_created))
    );
    println!(
        "| API: first object created -> all {total} `status.ready` | {} | - |",
        ms(done.saturating_duration_since(first))
    );

    // The gateway pod restarts: a fresh namespace (the CNI's addresses only), a new agent.
    let _ = stop.send(());
    agent.await??;
    drop(ns);
    let ns = Scratch::new("api-restart");
    let restart_opts = opts(&ns);
    let ready_file = restart_opts.ready_file.clone();
    let _ = std::fs::remove_file(&ready_file);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_client = client.clone();
    let t = Instant::now();
    let agent = tokio::spawn(async move {
        agent::run(agent_client, &restart_opts, async {
            let _ = stopped.await;
        })
        .await
    });
    // The readiness file is the pod's probe; polled at 1 ms, as a kubelet would (coarser).
    while !agent::is_ready(&ready_file) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "restart never became ready"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let restored = t.elapsed();
    assert_eq!(ns.nat_rules(), nat_rules);
    println!(
        "| API: agent restart (fresh namespace) -> ready, {nat_rules} rules back | {} | - |",
        ms(restored)
    );
    let _ = stop.send(());
    agent.await??;
    Ok(())
}
