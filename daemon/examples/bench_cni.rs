//! `cargo xtask bench cni`: CNI ADD latency of kube-ovn-daemon on a real OVN node, against a
//! floor made of `ip` + `ovs-vsctl` (`daemon/benches/floor.sh`).
//!
//! The lab is the L1 one of `daemon/tests/node.rs`: OVN central (NB, SB, northd) and one node
//! namespace with its own ovsdb-server, ovs-vswitchd (userspace datapath) and ovn-controller; the
//! daemon's CNI service on a unix socket with [`StaticPods`]. Every ADD goes through
//! `cni::plugin::run` (the `kube-ovn` binary's whole code path, minus the process start) over
//! that socket. The controller's part is done up front for every pod: its LSP exists in NB (and,
//! after `ovn-nbctl --wait=hv sync`, on the chassis) and its annotations are set, so
//! wait-for-annotation measures the daemon's own watch path and wait-for-ovn-installed measures
//! ovn-controller binding a port whose LSP is already there.
//!
//! Runs, each on fresh pods (own netns, own LSP): `--adds` sequential ADDs, then the same number
//! with `--concurrency` in flight; for each, the floor script does the same work (one process for
//! the sequential run, `--concurrency` processes at once for the concurrent one). Between runs
//! everything is removed (CNI DEL / GC, namespaces deleted) and the chassis is synced. Prints a
//! Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A bench driver: a panic is how it fails.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use daemon::metrics::Metrics;
use daemon::netns::Netns;
use daemon::ovs::{self, NodeConfig};
use daemon::pods::StaticPods;
use daemon::server::{self, CniService, ServiceConfig};
use e2e::ovn::{NetnsGuard, OvnCentral, OvnNode, unique};
use futures::StreamExt;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const PROVIDER: &str = "net-a.default.ovn";
const SWITCH: &str = "ls1";

/// Options.
#[derive(Debug, Parser)]
struct Args {
    /// ADDs per run.
    #[arg(long, default_value_t = 200)]
    adds: usize,
    /// ADDs in flight in the concurrent runs.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// The floor script.
    #[arg(long)]
    floor: PathBuf,
    /// Only the concurrent runs (quicker iterations on concurrency).
    #[arg(long)]
    skip_sequential: bool,
}

/// Per-ADD phase timings, from the daemon's "attachment added" log event.
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    wait_allocation: Duration,
    plumbing: Duration,
    /// The kernel part of plumbing (the rest is the OVS port transaction), and its steps.
    kernel: Duration,
    setup: Duration,
    veth: Duration,
    ethtool: Duration,
    configure: Duration,
    handback: Duration,
    wait_installed: Duration,
}

/// A tracing layer that keeps the phase timings of every "attachment added" event, by pod.
#[derive(Debug, Clone, Default)]
struct PhaseCapture(Arc<Mutex<HashMap<String, Phases>>>);

#[derive(Default)]
struct EventFields {
    message: String,
    pod: String,
    phases: Phases,
}

impl tracing::field::Visit for EventFields {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        let d = Duration::from_micros(value);
        match field.name() {
            "wait_allocation_us" => self.phases.wait_allocation = d,
            "plumbing_us" => self.phases.plumbing = d,
            "kernel_us" => self.phases.kernel = d,
            "setup_us" => self.phases.setup = d,
            "veth_us" => self.phases.veth = d,
            "ethtool_us" => self.phases.ethtool = d,
            "configure_us" => self.phases.configure = d,
            "handback_us" => self.phases.handback = d,
            "wait_installed_us" => self.phases.wait_installed = d,
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "pod" => self.pod = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PhaseCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        if fields.message == "attachment added" {
            self.0.lock().unwrap().insert(fields.pod, fields.phases);
        }
    }
}

/// One pod of a run.
#[derive(Debug, Clone)]
struct Pod {
    name: String,
    cid: String,
    ip: String,
    mac: String,
    lsp: String,
}

/// One measured ADD.
#[derive(Debug, Clone, Copy)]
struct Sample {
    total: Duration,
    phases: Phases,
}

/// The outcome of one run.
#[derive(Debug)]
struct Run {
    label: String,
    samples: Vec<Sample>,
    wall: Duration,
}

struct Bench {
    // Drop order: the node (its processes and namespace) before OVN central.
    node: OvnNode,
    central: OvnCentral,
    pods: Arc<StaticPods>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    capture: PhaseCapture,
    next_pod: usize,
}

impl Bench {
    async fn start(capture: PhaseCapture) -> anyhow::Result<Self> {
        let central = OvnCentral::start()?;
        central.nbctl(&["ls-add", SWITCH])?;
        let mut node = OvnNode::start("kovn-bn")?;
        let ovs = Arc::new(ovs::connect(&node.db_remote()).await?);
        ovs::init_node(
            &ovs,
            &NodeConfig {
                bridge: "br-int".into(),
                datapath_type: "netdev".into(),
                system_id: unique("bench-"),
                ovn_remote: central.sb_remote(),
                encap_type: "geneve".into(),
                encap_ip: "127.0.0.1".into(),
            },
        )
        .await?;
        node.start_controller()?;
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("daemon.sock");
        let host = Netns::open(&node.netns().path())?;
        let pods = Arc::new(StaticPods::default());
        let service = CniService::new(
            pods.clone(),
            ovs,
            host,
            ServiceConfig {
                bridge: "br-int".into(),
                mtu: 1400,
                disable_tx_checksum: true,
                allocation_timeout: Duration::from_secs(10),
                install_timeout: Duration::from_secs(30),
            },
            Arc::new(Metrics::new()),
        );
        let listener = server::bind(&socket)?;
        tokio::spawn(async move {
            if let Err(e) = server::serve(listener, service, std::future::pending()).await {
                eprintln!("daemon service failed: {e}");
            }
        });
        Ok(Self {
            node,
            central,
            pods,
            socket,
            _dir: dir,
            capture,
            next_pod: 0,
        })
    }

    /// `n` new pods with their LSPs in NB (on the chassis once this returns) and, for the
    /// daemon's runs, their annotations set.
    fn make_pods(&mut self, n: usize, annotate: bool) -> anyhow::Result<Vec<Pod>> {
        let pods: Vec<Pod> = (0..n)
            .map(|_| {
                let i = self.next_pod;
                self.next_pod += 1;
                let name = format!("bp{i}");
                Pod {
                    lsp: crds::naming::lsp_name(&name, "default", PROVIDER),
                    cid: format!("ctr-bench-{i}"),
                    ip: format!("10.100.{}.{}", 1 + i / 250, 1 + i % 250),
                    mac: format!("0a:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
                    name,
                }
            })
            .collect();
        let mut args: Vec<String> = Vec::new();
        for p in &pods {
            args.extend(
                [
                    "--",
                    "lsp-add",
                    SWITCH,
                    &p.lsp,
                    "--",
                    "lsp-set-addresses",
                    &p.lsp,
                    &format!("{} {}", p.mac, p.ip),
                ]
                .map(str::to_owned),
            );
        }
        let refs: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
        self.central.nbctl(&refs)?;
        self.central.nbctl(&["--wait=hv", "sync"])?;
        if annotate {
            for p in &pods {
                let a: BTreeMap<String, String> = [
                    ("allocated", "true"),
                    ("ip_address", p.ip.as_str()),
                    ("cidr", "10.100.0.0/16"),
                    ("gateway", "10.100.0.1"),
                    ("mac_address", p.mac.as_str()),
                    ("logical_switch", SWITCH),
                ]
                .iter()
                .map(|(k, v)| (format!("{PROVIDER}.kubernetes.io/{k}"), (*v).to_owned()))
                .collect();
                self.pods.set("default", &p.name, a);
            }
        }
        Ok(pods)
    }

    fn conf(&self) -> String {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"net-a","type":"kube-ovn","server_socket":"{}","provider":"{PROVIDER}"}}"#,
            self.socket.display()
        )
    }

    async fn cni(&self, command: &str, pod: &Pod, netns: &str, extra: &str) -> anyhow::Result<()> {
        let env: HashMap<&str, String> = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", pod.cid.clone()),
            ("CNI_NETNS", netns.to_owned()),
            ("CNI_IFNAME", "net1".to_owned()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={}",
                    pod.name
                ),
            ),
            ("CNI_PATH", "/opt/cni/bin".to_owned()),
        ]
        .into_iter()
        .collect();
        let mut conf = self.conf();
        if !extra.is_empty() {
            conf.insert_str(conf.len() - 1, extra);
        }
        cni::plugin::run(|k| env.get(k).cloned(), conf.as_bytes())
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{command} {}: {e}", pod.name))
    }

    /// ADDs for `pods`, `concurrency` at a time, then DEL of every one.
    async fn run_daemon(
        &mut self,
        label: &str,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Run> {
        let pods = self.make_pods(n, true)?;
        let netns = create_netns(&pods)?;
        let this = &*self;
        let started = Instant::now();
        let results: Vec<anyhow::Result<(String, Duration)>> =
            futures::stream::iter(pods.iter().zip(&netns))
                .map(|(pod, ns)| async move {
                    let t0 = Instant::now();
                    this.cni("ADD", pod, &ns.path().display().to_string(), "")
                        .await?;
                    Ok((format!("default/{}", pod.name), t0.elapsed()))
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        let wall = started.elapsed();
        let mut samples = Vec::new();
        {
            let captured = self.capture.0.lock().unwrap();
            for r in results {
                let (pod, total) = r?;
                let phases = *captured
                    .get(&pod)
                    .with_context(|| format!("no phase timings logged for {pod}"))?;
                samples.push(Sample { total, phases });
            }
        }
        for (pod, ns) in pods.iter().zip(&netns) {
            self.cni("DEL", pod, &ns.path().display().to_string(), "")
                .await?;
            self.pods.remove("default", &pod.name);
        }
        drop(netns);
        self.central.nbctl(&["--wait=hv", "sync"])?;
        Ok(Run {
            label: label.to_owned(),
            samples,
            wall,
        })
    }

    /// The floor script on `pods`, split over `workers` processes started together.
    async fn run_floor(
        &mut self,
        label: &str,
        n: usize,
        workers: usize,
        script: &std::path::Path,
    ) -> anyhow::Result<Run> {
        let pods = self.make_pods(n, false)?;
        let netns = create_netns(&pods)?;
        let dir = tempfile::tempdir()?;
        let workers = workers.clamp(1, n.max(1));
        let mut manifests = vec![String::new(); workers];
        for (i, (pod, ns)) in pods.iter().zip(&netns).enumerate() {
            manifests[i % workers].push_str(&format!(
                "{} {} {} {} {}/16 {} {}\n",
                pod.name,
                ns.name(),
                daemon::naming::host_ifname(&pod.cid, "net1"),
                pod.mac,
                pod.ip,
                pod.lsp,
                pod.cid
            ));
        }
        let db = self.node.db_remote();
        let started = Instant::now();
        let mut children = Vec::new();
        for (i, manifest) in manifests.iter().enumerate() {
            let path = dir.path().join(format!("manifest-{i}"));
            std::fs::write(&path, manifest)?;
            children.push(
                tokio::process::Command::new("bash")
                    .arg(script)
                    .arg(self.node.netns().name())
                    .arg(&db)
                    .arg(&path)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .with_context(|| format!("starting {}", script.display()))?,
            );
        }
        let mut outputs = Vec::new();
        for child in children {
            outputs.push(child.wait_with_output().await?);
        }
        let wall = started.elapsed();
        let mut samples = Vec::new();
        let mut failure = None;
        for out in &outputs {
            if !out.status.success() {
                failure = Some(format!(
                    "floor script failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                let [_, t0, t1, t2] = f[..] else {
                    bail!("floor script printed {line:?}");
                };
                let (t0, t1, t2): (u64, u64, u64) = (t0.parse()?, t1.parse()?, t2.parse()?);
                samples.push(Sample {
                    total: Duration::from_micros(t2 - t0),
                    phases: Phases {
                        plumbing: Duration::from_micros(t1 - t0),
                        wait_installed: Duration::from_micros(t2 - t1),
                        ..Phases::default()
                    },
                });
            }
        }
        // Remove the floor's ports (tagged like the daemon's) and veths with a CNI GC that
        // keeps nothing, then the namespaces.
        let gc = pods.first().cloned();
        if let Some(p) = gc {
            self.cni("GC", &p, "", r#","cni.dev/valid-attachments":[]"#)
                .await?;
        }
        drop(netns);
        self.central.nbctl(&["--wait=hv", "sync"])?;
        if let Some(f) = failure {
            bail!(f);
        }
        Ok(Run {
            label: label.to_owned(),
            samples,
            wall,
        })
    }
}

/// One namespace per pod (created outside the timed part, as a runtime does before CNI ADD).
fn create_netns(pods: &[Pod]) -> anyhow::Result<Vec<NetnsGuard>> {
    pods.iter()
        .map(|_| NetnsGuard::create(&unique("kovn-bp")).map_err(Into::into))
        .collect()
}

/// Nearest-rank percentile.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// p50 and p99 of: total, wait-for-annotation, plumbing, wait-for-ovn-installed, plumbing's
/// two parts (kernel, OVS port transaction), the rest of the ADD outside the three phases
/// (plugin, gRPC, result), and the kernel part's steps (setup, veth, ethtool, configure,
/// handback).
struct Summary {
    p50: [Duration; STATS],
    p99: [Duration; STATS],
}

const STATS: usize = 12;

fn summarize(run: &Run) -> Summary {
    let pick: [fn(&Sample) -> Duration; STATS] = [
        |s| s.total,
        |s| s.phases.wait_allocation,
        |s| s.phases.plumbing,
        |s| s.phases.wait_installed,
        |s| s.phases.kernel,
        |s| s.phases.plumbing.saturating_sub(s.phases.kernel),
        |s| {
            s.total
                .saturating_sub(s.phases.wait_allocation + s.phases.plumbing)
                .saturating_sub(s.phases.wait_installed)
        },
        |s| s.phases.setup,
        |s| s.phases.veth,
        |s| s.phases.ethtool,
        |s| s.phases.configure,
        |s| s.phases.handback,
    ];
    let mut p50 = [Duration::ZERO; STATS];
    let mut p99 = [Duration::ZERO; STATS];
    for (i, f) in pick.iter().enumerate() {
        let mut v: Vec<Duration> = run.samples.iter().map(f).collect();
        v.sort();
        p50[i] = percentile(&v, 0.50);
        p99[i] = percentile(&v, 0.99);
    }
    Summary { p50, p99 }
}

fn first_line(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let capture = PhaseCapture::default();
    tracing_subscriber::registry()
        .with(capture.clone())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .init();
    if !args.floor.is_file() {
        bail!("floor script {} not found", args.floor.display());
    }
    let load_before = loadavg();
    let mut bench = Bench::start(capture).await?;

    // Warm-up: ovn-controller's first binding on a fresh chassis, first connections, caches.
    let warm = bench.run_daemon("warm-up", 5, 1).await?;
    eprintln!(
        "warm-up: {} ADDs, last {} ms",
        warm.samples.len(),
        ms(warm.samples.last().map(|s| s.total).unwrap_or_default())
    );

    // The call path alone: the plugin connecting and asking STATUS (no work in the daemon).
    let status_pod = Pod {
        name: "status".into(),
        cid: "status".into(),
        ip: String::new(),
        mac: String::new(),
        lsp: String::new(),
    };
    let mut status_times = Vec::new();
    for _ in 0..50 {
        let t0 = Instant::now();
        bench.cni("STATUS", &status_pod, "", "").await?;
        status_times.push(t0.elapsed());
    }
    status_times.sort();

    let n = args.adds;
    let c = args.concurrency;
    let mut runs = Vec::new();
    if !args.skip_sequential {
        eprintln!("daemon: {n} sequential ADDs");
        runs.push(
            bench
                .run_daemon("kube-ovn-daemon, sequential", n, 1)
                .await?,
        );
        eprintln!("floor: {n} sequential ADDs");
        runs.push(
            bench
                .run_floor("floor (ip + ovs-vsctl), sequential", n, 1, &args.floor)
                .await?,
        );
    }
    eprintln!("daemon: {n} ADDs, {c} in flight");
    runs.push(
        bench
            .run_daemon(&format!("kube-ovn-daemon, {c} concurrent"), n, c)
            .await?,
    );
    eprintln!("floor: {n} ADDs, {c} scripts in parallel");
    runs.push(
        bench
            .run_floor(
                &format!("floor (ip + ovs-vsctl), {c} concurrent"),
                n,
                c,
                &args.floor,
            )
            .await?,
    );
    let load_after = loadavg();
    drop(bench);

    println!(
        "ADD latency in ms, {n} ADDs per run (nearest-rank percentiles). Load average (1/5/15 \
         min) before: {load_before}; after: {load_after}. {}; {}.",
        first_line("ovs-vsctl", "--version"),
        first_line("ovn-controller", "--version")
    );
    println!();
    println!(
        "| run | ADD p50 | ADD p99 | wait-for-annotation p50 / p99 | plumbing p50 / p99 | \
         wait-for-ovn-installed p50 / p99 | wall time | ADDs/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let summaries: Vec<Summary> = runs.iter().map(summarize).collect();
    for (run, s) in runs.iter().zip(&summaries) {
        let floor = run.label.starts_with("floor");
        println!(
            "| {} | {} | {} | {} | {} / {} | {} / {} | {:.2} s | {:.0} |",
            run.label,
            ms(s.p50[0]),
            ms(s.p99[0]),
            if floor {
                "n/a".to_owned()
            } else {
                format!("{} / {}", ms(s.p50[1]), ms(s.p99[1]))
            },
            ms(s.p50[2]),
            ms(s.p99[2]),
            ms(s.p50[3]),
            ms(s.p99[3]),
            run.wall.as_secs_f64(),
            run.samples.len() as f64 / run.wall.as_secs_f64().max(1e-9),
        );
    }
    println!();
    println!(
        "- The plugin's call path alone (connect + STATUS over the socket, 50 calls before the \
         runs): p50 {} ms, p99 {} ms.",
        ms(percentile(&status_times, 0.50)),
        ms(percentile(&status_times, 0.99)),
    );
    // Runs come in pairs: ours, then the floor's.
    for (ours, floor) in (0..runs.len()).step_by(2).map(|i| (i, i + 1)) {
        let ratio =
            summaries[ours].p50[0].as_secs_f64() / summaries[floor].p50[0].as_secs_f64().max(1e-9);
        let s = &summaries[ours];
        let p = |i: usize| format!("{} (p99 {})", ms(s.p50[i]), ms(s.p99[i]));
        println!(
            "- {}: p50 {} ms vs floor {} ms = {ratio:.2}x (goal <= 1.1x); plumbing p50 {} ms \
             (goal < 20 ms) = kernel {} + OVS port transaction {}; kernel steps p50: thread + \
             namespaces + sockets {}, veth {}, ethtool {}, addresses/up/routes batch {}, back on \
             the runtime {}; outside the phases {} ms.",
            runs[ours].label,
            ms(s.p50[0]),
            ms(summaries[floor].p50[0]),
            ms(s.p50[2]),
            p(4),
            p(5),
            p(7),
            p(8),
            p(9),
            p(10),
            p(11),
            p(6),
        );
    }
    Ok(())
}
