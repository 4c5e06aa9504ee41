//! `cargo xtask bench controller`: how fast kube-ovn-controller attaches pods at scale.
//!
//! For each `--pods N`: a fresh real control plane (etcd, kube-apiserver, controller-manager,
//! scheduler) with one registered Node, the CRDs, a fresh NB `ovsdb-server`, two NADs bound to two
//! Subnets of one Vpc, and `kube-ovn-controller` started as its own process (the binary given by
//! `--controller`, so its peak RSS is its own). Then N pods, each asking for both NADs, are
//! created straight through the API with `spec.nodeName` set (no scheduler in the way), with
//! bounded concurrency. Measured from the first create:
//! - creation: until the last create returned;
//! - allocated: until every pod has `allocated=true` on both providers (a pod watch);
//! - in NB: until every LSP is in the bench's own NB replica (an ovn-api monitor);
//! - NB transactions: the controller's `ovn_transaction_duration_seconds_count` (scraped from
//!   its `/metrics` before the first create and after the end), i.e. the transactions it sent;
//! - peak RSS: `VmHWM` of the controller process at the end.
//!
//! `--nb` says how the controller reaches NB (repeatable: each mode is one more run per
//! `--pods`, so one invocation compares them on the same machine): `unix` (the socket, the
//! default), `tcp` (plain TCP on 127.0.0.1) or `tls` (`ssl:` with a client certificate, the
//! server's certificate checked against the CA as the charts run it, `pssl:` on the server).
//! The bench's own NB replica always uses the socket.
//!
//! Prints a Markdown table. Lives in `controller/examples` because it drives this crate's binary
//! and reads its metrics; the test harness (`e2e::k8s`, `ovn_api::testing`) is already a
//! dev-dependency here.
// A benchmark driver: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use crds::condition::READY;
use crds::{ConditionStatus, NetworkAttachmentDefinition, Subnet, Vpc};
use e2e::k8s::ControlPlane;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use ovn_api::testing::{OvsdbServer, SchemaKind};

const NODE: &str = "bench-node";
const NAMESPACE: &str = "default";
const PROVIDERS: [&str; 2] = ["net1.default.ovn", "net2.default.ovn"];
const SUBNETS: [(&str, &str, &str); 2] = [
    ("bench-net1", "10.16.0.0/16", "10.16.0.1"),
    ("bench-net2", "10.17.0.0/16", "10.17.0.1"),
];
const SETUP_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
struct Args {
    /// The kube-ovn-controller binary to run.
    #[arg(long)]
    controller: PathBuf,
    /// Pods per run; repeat for several runs (each on a fresh cluster).
    #[arg(long = "pods", default_values_t = [1000, 5000])]
    pods: Vec<usize>,
    /// Pod creates in flight.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// The controller's `--workers` (its own default when unset).
    #[arg(long)]
    workers: Option<u16>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// How the controller reaches NB; repeat for one run per mode and `--pods`.
    #[arg(long = "nb", value_enum, default_values_t = [NbMode::Unix])]
    nb: Vec<NbMode>,
}

/// The controller's connection to NB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NbMode {
    /// The unix socket.
    Unix,
    /// Plain TCP on 127.0.0.1.
    Tcp,
    /// TLS on 127.0.0.1 with client certificates.
    Tls,
}

impl std::fmt::Display for NbMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unix => "unix",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        })
    }
}

/// The controller process; killed and reaped on drop.
struct ControllerProcess {
    child: Child,
    log: PathBuf,
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Row {
    pods: usize,
    nb: NbMode,
    create: Duration,
    allocated: Duration,
    in_nb: Duration,
    transactions: f64,
    tx_errors: f64,
    pod_reconciles: f64,
    pod_reconcile_errors: f64,
    /// Mean pod reconcile, attachment and NB transaction, in ms (from the histograms).
    means_ms: [f64; 3],
    hwm_kib: u64,
    rss_kib: u64,
    load_before: String,
    load_after: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.controller.is_file() {
        bail!("controller binary {} not found", args.controller.display());
    }
    let mut rows = Vec::new();
    for &n in &args.pods {
        for &mode in &args.nb {
            eprintln!("bench controller: {n} pods, NB over {mode} ...");
            let row = run_one(&args, n, mode).await?;
            eprintln!(
                "bench controller: {n} pods, NB over {mode}: created {:.2} s, allocated {:.2} s, in NB {:.2} s",
                row.create.as_secs_f64(),
                row.allocated.as_secs_f64(),
                row.in_nb.as_secs_f64()
            );
            rows.push(row);
        }
    }
    println!(
        "| pods | NB over | attachments | create (API) | all allocated | all LSPs in NB | pods/s | NB transactions | per pod | pod reconciles (errors) | mean pod reconcile / attachment / NB txn | controller peak RSS (VmHWM) | RSS at end | load avg before → after |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|");
    for r in &rows {
        let done = r.allocated.max(r.in_nb).as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let pods = r.pods as f64;
        println!(
            "| {} | {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.0} | {}{} | {:.2} | {} ({}) | {:.1} / {:.1} / {:.2} ms | {:.1} MiB | {:.1} MiB | {} → {} |",
            r.pods,
            r.nb,
            r.pods * 2,
            r.create.as_secs_f64(),
            r.allocated.as_secs_f64(),
            r.in_nb.as_secs_f64(),
            pods / done,
            r.transactions,
            if r.tx_errors > 0.0 {
                format!(" ({} failed)", r.tx_errors)
            } else {
                String::new()
            },
            r.transactions / pods,
            r.pod_reconciles,
            r.pod_reconcile_errors,
            r.means_ms[0],
            r.means_ms[1],
            r.means_ms[2],
            kib_to_mib(r.hwm_kib),
            kib_to_mib(r.rss_kib),
            r.load_before,
            r.load_after,
        );
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

async fn run_one(args: &Args, n: usize, mode: NbMode) -> anyhow::Result<Row> {
    let load_before = loadavg();
    let mut cp = ControlPlane::start().await?;
    let client = cp.client();
    cp.register_node(NODE, "127.0.0.1".parse()?).await?;
    install_crds(&client).await?;
    let nb_server = match mode {
        NbMode::Unix => OvsdbServer::start(SchemaKind::Northbound)?,
        NbMode::Tcp => OvsdbServer::start_with_tcp(SchemaKind::Northbound)?,
        // A certificate naming no address, as in the charts' central: checked by its chain.
        NbMode::Tls => OvsdbServer::start_with_ssl_names(SchemaKind::Northbound, "")?,
    };
    let mut nb_args = Vec::new();
    match mode {
        NbMode::Unix => nb_args.push(format!("--ovn-nb-addr={}", nb_server.remote())),
        NbMode::Tcp => nb_args.push(format!(
            "--ovn-nb-addr={}",
            nb_server.tcp_remote().context("no TCP port")?
        )),
        NbMode::Tls => {
            let pki = nb_server.pki().context("no PKI")?;
            nb_args.extend([
                format!(
                    "--ovn-nb-addr={}",
                    nb_server.ssl_remote().context("no TLS port")?
                ),
                format!("--ovn-ssl-ca-cert={}", pki.ca_cert.display()),
                format!("--ovn-ssl-cert={}", pki.client_cert.display()),
                format!("--ovn-ssl-key={}", pki.client_key.display()),
            ]);
        }
    }
    create_networks(&client).await?;

    let metrics_port = ovn_api::testing::free_port()?;
    let log = std::env::temp_dir().join(format!(
        "kube-ovn-bench-controller-{}-{n}.log",
        std::process::id()
    ));
    let log_file = std::fs::File::create(&log)?;
    let mut cmd = Command::new(&args.controller);
    cmd.arg(format!("--kubeconfig={}", cp.kubeconfig().display()))
        .args(&nb_args)
        .arg("--leader-elect=false")
        .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
        .arg("--gc-interval=600")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    if let Some(w) = args.workers {
        cmd.arg(format!("--workers={w}"));
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    let controller = ControllerProcess {
        child: cmd.spawn().context("starting kube-ovn-controller")?,
        log,
    };
    let pid = controller.child.id();

    // The controller is up when both subnets are Ready (switches, router ports, IPAM).
    let subnets: Api<Subnet> = Api::all(client.clone());
    for (name, _, _) in SUBNETS {
        let ready = |s: Option<&Subnet>| {
            s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == READY && c.status == ConditionStatus::True)
            })
        };
        tokio::time::timeout(SETUP_WAIT, await_condition(subnets.clone(), name, ready))
            .await
            .with_context(|| {
                format!(
                    "subnet {name} not Ready within {SETUP_WAIT:?}; controller log: {}",
                    controller.log.display()
                )
            })??;
    }

    // Our own NB replica, to see every LSP arrive.
    let nb = controller::nb::connect(&nb_server.remote()).await?;
    let lsp_count =
        |r: &ovn_api::replica::Replica| r.table("Logical_Switch_Port").map_or(0, |t| t.len());
    let baseline_lsps = lsp_count(&nb.replica());
    let tx_before = scrape(metrics_port, TX_OK)?;

    // The pod watch, established (initial list done) before the first create.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let keys: Vec<String> = PROVIDERS
        .iter()
        .map(|p| format!("{p}.kubernetes.io/allocated"))
        .collect();
    // A watcher lists then watches from the list's resourceVersion, so it misses no pod
    // whenever it starts; each pod counts when the bench sees its second `allocated=true`.
    let mut stream = Box::pin(watcher(pods.clone(), watcher::Config::default()).applied_objects());
    let timeout = Duration::from_secs(args.timeout);
    let allocated_task = tokio::spawn(async move {
        let mut done: HashSet<String> = HashSet::with_capacity(n);
        let finished = tokio::time::timeout(timeout, async {
            while done.len() < n {
                let Some(p) = stream.next().await else {
                    bail!("pod watch ended");
                };
                let p = p?;
                let a = p.annotations();
                if keys.iter().all(|k| a.get(k).is_some_and(|v| v == "true")) {
                    done.insert(p.name_any());
                }
            }
            Ok(Instant::now())
        })
        .await;
        match finished {
            Ok(r) => r,
            Err(_) => bail!(
                "only {} of {n} pods allocated within {timeout:?}",
                done.len()
            ),
        }
    });

    let started = Instant::now();
    let nb_wait = async {
        nb.wait_until(timeout, |r| lsp_count(r) >= baseline_lsps + 2 * n)
            .await
            .map(|()| Instant::now())
    };
    let create = async {
        futures::stream::iter(0..n)
            .map(|i| {
                let pods = pods.clone();
                async move {
                    pods.create(&PostParams::default(), &pod(&format!("bench-{i}")))
                        .await
                        .map(drop)
                }
            })
            .buffer_unordered(args.create_concurrency)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| Instant::now())
    };
    let (created, in_nb) = tokio::join!(create, nb_wait);
    let created = created.context("creating pods")?;
    let in_nb = in_nb.with_context(|| {
        format!(
            "LSPs did not all reach NB; controller log: {}",
            controller.log.display()
        )
    })?;
    let allocated = allocated_task
        .await?
        .with_context(|| format!("controller log: {}", controller.log.display()))?;

    // Every attachment LSP is there and is ours, with the pod owner set.
    let ports = nb.replica().table("Logical_Switch_Port").map_or(0, |t| {
        t.with_external_id(crds::naming::EXTERNAL_ID_POD).count()
    });
    if ports != 2 * n {
        bail!("{ports} attachment LSPs in NB, expected {}", 2 * n);
    }
    let tx_after = scrape(metrics_port, TX_OK)?;
    let tx_errors = scrape(metrics_port, TX_ERR)?;
    let pod_reconciles = scrape(metrics_port, POD_OK)?;
    let pod_reconcile_errors = scrape(metrics_port, POD_ERR)?;
    let mean_ms = |family: &str, labels: &str| -> anyhow::Result<f64> {
        let sum = scrape(metrics_port, &format!("{family}_sum{labels}"))?;
        let count = scrape(metrics_port, &format!("{family}_count{labels}"))?;
        Ok(if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        })
    };
    let means_ms = [
        mean_ms(
            "kube_ovn_controller_reconcile_duration_seconds",
            r#"{controller="pod",result="ok"}"#,
        )?,
        mean_ms(
            "kube_ovn_controller_attachment_duration_seconds",
            r#"{result="ok"}"#,
        )?,
        mean_ms(
            "kube_ovn_controller_ovn_transaction_duration_seconds",
            r#"{result="ok"}"#,
        )?,
    ];
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let row = Row {
        pods: n,
        nb: mode,
        create: created - started,
        allocated: allocated - started,
        in_nb: in_nb - started,
        transactions: tx_after - tx_before,
        tx_errors,
        pod_reconciles,
        pod_reconcile_errors,
        means_ms,
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
        load_before,
        load_after: loadavg(),
    };
    drop(controller);
    drop(nb);
    drop(nb_server);
    drop(cp);
    Ok(row)
}

const TX_OK: &str = r#"kube_ovn_controller_ovn_transaction_duration_seconds_count{result="ok"}"#;
const TX_ERR: &str =
    r#"kube_ovn_controller_ovn_transaction_duration_seconds_count{result="error"}"#;
const POD_OK: &str =
    r#"kube_ovn_controller_reconcile_duration_seconds_count{controller="pod",result="ok"}"#;
const POD_ERR: &str =
    r#"kube_ovn_controller_reconcile_duration_seconds_count{controller="pod",result="error"}"#;

/// One series from the controller's `/metrics` (0 when absent).
fn scrape(port: u16, series: &str) -> anyhow::Result<f64> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0))
}

async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut all = crds::generate::crds();
    all.push(<NetworkAttachmentDefinition as kube::CustomResourceExt>::crd());
    for crd in all {
        let name = crd.name_any();
        api.create(&PostParams::default(), &crd).await?;
        tokio::time::timeout(
            SETUP_WAIT,
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await??;
    }
    Ok(())
}

/// NADs net1 and net2, one Vpc, one /16 Subnet per provider.
async fn create_networks(client: &Client) -> anyhow::Result<()> {
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), NAMESPACE);
    for (i, provider) in PROVIDERS.iter().enumerate() {
        let nad = NetworkAttachmentDefinition::with_config(
            NAMESPACE,
            &format!("net{}", i + 1),
            &format!(
                r#"{{"cniVersion":"0.3.1","type":"kube-ovn","server_socket":"/run/openvswitch/kube-ovn-daemon.sock","provider":"{provider}"}}"#
            ),
        );
        nads.create(&PostParams::default(), &nad).await?;
    }
    Api::<Vpc>::all(client.clone())
        .create(
            &PostParams::default(),
            &Vpc::new("bench", Default::default()),
        )
        .await?;
    for ((name, cidr, gateway), provider) in SUBNETS.iter().zip(PROVIDERS) {
        let mut subnet = Subnet::new(name, Default::default());
        subnet.spec.vpc = Some("bench".into());
        subnet.spec.cidr = Some((*cidr).into());
        subnet.spec.gateway = Some((*gateway).into());
        subnet.spec.provider = Some(provider.into());
        Api::<Subnet>::all(client.clone())
            .create(&PostParams::default(), &subnet)
            .await?;
    }
    Ok(())
}

fn pod(name: &str) -> Pod {
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            annotations: Some(BTreeMap::from([(
                crds::naming::NETWORKS_ANNOTATION.to_owned(),
                "default/net1,default/net2".to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(NODE.into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}
