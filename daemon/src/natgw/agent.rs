//! The agent's loop: any change → snapshot → [`plan`] → [`Applier::apply`] → statuses, and the
//! readiness file the pod's probe (`kube-ovn-daemon nat-gateway-ready`) checks.
//!
//! Level-triggered: a wake-up carries no event, the loop recomputes everything. The namespace
//! is re-applied when the desired state changed, when the last apply failed, and every
//! `--resync-secs` (which repairs changes made behind the agent's back); status writes that
//! failed are retried after [`RETRY`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use tokio::sync::Notify;

use super::apply::{Applied, Applier, ApplyError};
use super::inputs::{self, Watched};
use super::plan::{self, Desired, NadRef};
use super::status::{self, Objects};
use crate::netns::Netns;

/// Where the readiness file lives unless told otherwise.
pub const DEFAULT_READY_FILE: &str = "/run/kube-ovn/natgw-ready";

/// How soon failed status writes or a failed apply are retried.
pub const RETRY: Duration = Duration::from_secs(2);

/// `kube-ovn-daemon nat-gateway` flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kube-ovn-daemon nat-gateway",
    about = "VPC NAT gateway agent: keeps this pod's network namespace equal to its gateway's \
             EIPs and FIP/SNAT/DNAT rules"
)]
pub struct AgentOptions {
    /// The VpcNatGateway this pod serves.
    #[arg(long, env = "GATEWAY_NAME")]
    pub gateway: String,
    /// The LAN attachment's NAD, `<namespace>/<name>`.
    #[arg(long, env = "LAN_NETWORK")]
    pub lan_network: String,
    /// The external attachment's NAD, `<namespace>/<name>`; the external Subnet has its name.
    #[arg(long, env = "EXTERNAL_NETWORK")]
    pub external_network: String,
    /// This pod's name (downward API).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: String,
    /// This pod's namespace (downward API).
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: String,
    /// The network namespace to manage (default: the agent's own).
    #[arg(long, env = "NATGW_NETNS", default_value = "/proc/self/ns/net")]
    pub netns: PathBuf,
    /// The readiness file, present while the last apply succeeded.
    #[arg(long, env = "NATGW_READY_FILE", default_value = DEFAULT_READY_FILE)]
    pub ready_file: PathBuf,
    /// Re-apply the namespace this often even without changes (repairs drift).
    #[arg(long, default_value_t = 60)]
    pub resync_secs: u64,
    /// kubeconfig (default: in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

/// `kube-ovn-daemon nat-gateway-ready` flags.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kube-ovn-daemon nat-gateway-ready",
    about = "Exits 0 when the NAT gateway agent's last apply succeeded (readiness probe)"
)]
pub struct ReadyOptions {
    /// The readiness file the agent writes.
    #[arg(long, env = "NATGW_READY_FILE", default_value = DEFAULT_READY_FILE)]
    pub ready_file: PathBuf,
}

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A flag is wrong.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// Why.
        reason: String,
    },
    /// The namespace cannot be used.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The namespace cannot be opened.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    /// The watches ended before their first list.
    #[error("the API watches stopped before their first list")]
    Watch,
}

/// What one round did (for logs, tests and the benchmark).
#[derive(Debug, Clone)]
pub struct Round {
    /// The apply's result (None: nothing to apply, `problem` says why; or unchanged and not due).
    pub applied: Option<Result<Applied, String>>,
    /// The gateway-wide problem, if any.
    pub problem: Option<plan::Problem>,
    /// Status writes done.
    pub written: usize,
    /// Status writes failed.
    pub failed: usize,
}

/// The running agent's state between rounds.
pub struct Agent {
    client: Client,
    gateway: String,
    lan: Option<NadRef>,
    external: Option<NadRef>,
    ready_file: PathBuf,
    resync: Duration,
    applier: Applier,
    last: Option<(Desired, bool)>,
    last_apply: Instant,
    last_problem: Option<plan::Problem>,
    last_gateway_qos: Option<Result<String, plan::QosProblem>>,
    memo: status::Memo,
}

impl Agent {
    /// An agent for the validated `opts` (needs a tokio runtime).
    pub fn new(client: Client, opts: &AgentOptions) -> Result<Self, AgentError> {
        let lan = NadRef::parse(&opts.lan_network).map_err(|reason| AgentError::Flag {
            flag: "--lan-network",
            reason,
        })?;
        let external =
            NadRef::parse(&opts.external_network).map_err(|reason| AgentError::Flag {
                flag: "--external-network",
                reason,
            })?;
        if opts.gateway.is_empty() {
            return Err(AgentError::Flag {
                flag: "--gateway",
                reason: "must name the VpcNatGateway".into(),
            });
        }
        let applier = Applier::new(Netns::open(&opts.netns)?)?;
        Ok(Self {
            client,
            gateway: opts.gateway.clone(),
            lan: Some(lan),
            external: Some(external),
            ready_file: opts.ready_file.clone(),
            resync: Duration::from_secs(opts.resync_secs.max(1)),
            applier,
            last: None,
            last_apply: Instant::now(),
            last_problem: None,
            last_gateway_qos: None,
            memo: status::Memo::default(),
        })
    }

    /// One round over a snapshot of `stores`.
    pub async fn round(&mut self, stores: &inputs::Stores) -> Round {
        let inputs = stores.snapshot(&self.gateway, self.lan.as_ref(), self.external.as_ref());
        let plan = plan::plan(&inputs);
        let gw = self.gateway.as_str();
        if plan.problem != self.last_problem {
            match &plan.problem {
                Some(p) => tracing::error!(gateway = gw, reason = p.reason, "{}", p.message),
                None if self.last_problem.is_some() => {
                    tracing::info!(gateway = gw, "gateway problem resolved")
                }
                None => {}
            }
            self.last_problem = plan.problem.clone();
        }
        // The controller reports the gateway's QoSPolicy on the VpcNatGateway; the log says
        // what this pod applies.
        if plan.desired.is_some() && plan.gateway_qos != self.last_gateway_qos {
            match &plan.gateway_qos {
                Some(Ok(p)) => {
                    tracing::info!(gateway = gw, policy = %p, "gateway QoSPolicy applied")
                }
                Some(Err((reason, message))) => {
                    tracing::warn!(
                        gateway = gw,
                        reason,
                        "{message}; the gateway runs without its limits"
                    )
                }
                None if self.last_gateway_qos.is_some() => {
                    tracing::info!(gateway = gw, "gateway QoSPolicy removed")
                }
                None => {}
            }
            self.last_gateway_qos = plan.gateway_qos.clone();
        }
        let applied = match &plan.desired {
            None => None,
            Some(d) => {
                let due = self.last_apply.elapsed() >= self.resync;
                match &self.last {
                    Some((last, true)) if last == d && !due => None,
                    _ => {
                        let r = self.applier.apply(d).await;
                        self.last_apply = Instant::now();
                        self.last = Some((d.clone(), r.is_ok()));
                        match &r {
                            Ok(a) => tracing::info!(
                                gateway = gw,
                                nat_rules = a.nat_rules,
                                addresses_changed = a.addresses,
                                routes_changed = a.routes,
                                nft_ms = a.nft.as_millis() as u64,
                                total_ms = a.total.as_millis() as u64,
                                "applied"
                            ),
                            Err(e) => tracing::error!(gateway = gw, error = %e, "apply failed"),
                        }
                        Some(r.map_err(|e| e.to_string()))
                    }
                }
            }
        };
        // Ready iff the namespace holds the current plan.
        let in_place: Result<(), String> = match (&plan.desired, &self.last) {
            (Some(d), Some((last, true))) if last == d => Ok(()),
            (Some(_), _) => Err(match &applied {
                Some(Err(e)) => e.clone(),
                _ => "not applied yet".into(),
            }),
            (None, _) => Err("gateway not ready".into()),
        };
        set_ready_file(&self.ready_file, in_place.is_ok(), gw);
        let objs = Objects {
            eips: &inputs.eips,
            fips: &inputs.fips,
            snats: &inputs.snats,
            dnats: &inputs.dnats,
        };
        let (written, failed) =
            status::write_all(&mut self.memo, &self.client, gw, &plan, &in_place, &objs).await;
        if written > 0 || !failed.is_empty() {
            tracing::info!(
                gateway = gw,
                written,
                failed = failed.len(),
                "statuses written"
            );
        }
        for f in &failed {
            tracing::warn!(gateway = gw, error = %f, "status write failed (will retry)");
        }
        Round {
            applied,
            problem: plan.problem,
            written,
            failed: failed.len(),
        }
    }

    /// Whether the last apply failed (a retry is due soon).
    fn retry_due(&self) -> bool {
        matches!(self.last, Some((_, false)))
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("gateway", &self.gateway)
            .field("applier", &self.applier)
            .finish_non_exhaustive()
    }
}

fn set_ready_file(path: &Path, ready: bool, gateway: &str) {
    let r = if ready {
        if path.exists() {
            return;
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, b"ready\n")
    } else {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    };
    if let Err(e) = r {
        tracing::warn!(gateway, path = %path.display(), error = %e, "readiness file not updated");
    }
}

/// Whether the readiness file exists (`kube-ovn-daemon nat-gateway-ready`).
pub fn is_ready(path: &Path) -> bool {
    path.is_file()
}

/// Runs the agent until `shutdown` completes.
pub async fn run(
    client: Client,
    opts: &AgentOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let mut agent = Agent::new(client.clone(), opts)?;
    // Not ready until this run's first apply succeeded.
    set_ready_file(&agent.ready_file, false, &agent.gateway);
    let wake = Arc::new(Notify::new());
    let watched = Watched {
        gateway: opts.gateway.clone(),
        pod_name: opts.pod_name.clone(),
        pod_namespace: opts.pod_namespace.clone(),
    };
    let (stores, tasks) = inputs::start(&client, &watched, wake.clone());
    let _abort = AbortOnDrop(tasks);
    tracing::info!(gateway = %opts.gateway, pod = %format!("{}/{}", opts.pod_namespace, opts.pod_name),
        netns = %opts.netns.display(), "NAT gateway agent starting");
    tokio::pin!(shutdown);
    tokio::select! {
        ok = stores.ready() => if !ok { return Err(AgentError::Watch) },
        () = &mut shutdown => return Ok(()),
    }
    loop {
        let round = agent.round(&stores).await;
        let wait = if round.failed > 0 || agent.retry_due() {
            RETRY
        } else {
            agent.resync
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!(gateway = %opts.gateway, "NAT gateway agent stopping (the rules stay in place)");
    Ok(())
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
