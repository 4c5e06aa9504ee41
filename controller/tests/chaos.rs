//! A randomized fault schedule against real programs (L2: a real kube-apiserver with its
//! controller-manager, a real NB ovsdb-server or RAFT cluster, the controller in-process behind
//! a proxy to the apiserver), then the invariants of `common::faults`: no address held by two
//! pods (by pod annotations, IP CRs, NB ports and the allocator), no IP CR without its pod or
//! port, no port without its IP CR, every pod allocated.
//!
//! Each step is drawn from a seeded generator: pods created and deleted, a pod deleted and
//! created again under the same name at once, two pods asking for one static address, a
//! StatefulSet scaled, the controller killed (its task aborted wherever it is) and restarted,
//! NB killed and restarted, NB restarted empty, IP CR creates delayed (0.5-3 s, by the proxy
//! between the controller and the apiserver: `common::proxy`) or no longer. One run in three
//! runs two controller replicas under leader election instead, and a kill takes the leader (the
//! follower takes over, a new replica joins). Independently, one run in three runs NB as a
//! 3-member RAFT cluster (the controller gets every member): an NB fault there kills the
//! current RAFT leader, which comes back after a pause or stays down until the next NB step
//! restarts it (so the cluster runs on two members meanwhile; never on one), and it rejoins at
//! the end at the latest. Steps overlap with the reconciles they trigger (short random pauses,
//! no waiting for quiet in between).
//!
//! `CHAOS_RUNS` runs (default 1), `CHAOS_STEPS` steps each (default 10), seeds from `CHAOS_SEED`
//! (default: the clock); with `CHAOS_MIN_FAULTS` (default 0) a run that drew fewer faults
//! (kills, wipes, delays) in its steps goes on drawing steps until it has that many (at most
//! four times the steps). `cargo xtask chaos --runs N --seed S --min-faults F` sets them; a
//! failure prints the seed and the schedule so the run can be repeated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::faults::{Bed, Nb, annotation, invariants, pod};
use common::proxy::ApiProxy;
use controller::context::Context;
use controller::leader::LeaseConfig;
use controller::run;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

/// splitmix64: small, seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Names of the plain pods a run creates: few, so deletions and same-name recreations hit.
const NAMES: u64 = 12;

/// What runs the controller: one process (whose allocator the invariants also check), or two
/// replicas under leader election (a kill takes the leader; the follower takes over).
enum Controllers {
    One(Arc<Context>, tokio::task::JoinHandle<()>),
    Pair(
        BTreeMap<String, tokio::task::JoinHandle<Result<(), run::LeadError>>>,
        u32,
    ),
}

impl Controllers {
    fn abort_all(&self) {
        match self {
            Controllers::One(_, task) => task.abort(),
            Controllers::Pair(replicas, _) => replicas.values().for_each(|t| t.abort()),
        }
    }
}

/// Faults injected, by kind.
type Faults = BTreeMap<&'static str, usize>;

struct Run {
    bed: Bed,
    /// Between the controllers and the apiserver (the invariants read the apiserver directly).
    proxy: ApiProxy,
    rng: Rng,
    controllers: Controllers,
    schedule: Vec<String>,
    faults: Faults,
    /// Static-address contentions seen, and how many gave the address to both pods.
    contended: usize,
    /// How long the proxy holds each IP CR create now.
    delay: Duration,
}

impl Run {
    async fn start_controller(
        bed: &Bed,
        proxy: &ApiProxy,
    ) -> (Arc<Context>, tokio::task::JoinHandle<()>) {
        let config = bed.config();
        let ctx = run::start(proxy.client(), &config).await.unwrap();
        let task = tokio::spawn(run::run(Arc::clone(&ctx), config));
        (ctx, task)
    }

    fn start_replica(
        bed: &Bed,
        proxy: &ApiProxy,
        identity: &str,
    ) -> tokio::task::JoinHandle<Result<(), run::LeadError>> {
        let lease = LeaseConfig {
            namespace: "kube-system".into(),
            name: "kube-ovn-controller".into(),
            identity: identity.into(),
            duration: Duration::from_secs(2),
        };
        tokio::spawn(run::run_with_leader(proxy.client(), bed.config(), lease))
    }

    /// The replica holding the Lease now, if any.
    async fn leader(&self) -> Option<String> {
        Api::<Lease>::namespaced(self.bed.client.clone(), "kube-system")
            .get_opt("kube-ovn-controller")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity))
            .filter(|h| !h.is_empty())
    }

    async fn pause(&mut self) {
        let ms = self.rng.below(300);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    async fn existing(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .bed
            .pods()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(ResourceExt::name_any)
            .filter(|n| n.starts_with("c-"))
            .collect();
        names.sort();
        names
    }

    async fn create(&self, name: &str) {
        match self
            .bed
            .pods()
            .create(&PostParams::default(), &pod(name))
            .await
        {
            Ok(_) => {}
            // Still there (or still going after a deletion): the schedule moves on.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating pod {name}: {e}"),
        }
    }

    async fn delete(&self, name: &str) {
        match self
            .bed
            .pods()
            .delete(name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("deleting pod {name}: {e}"),
        }
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    async fn step(&mut self, i: usize) {
        let what = self.rng.below(100);
        let raft = matches!(self.bed.nb, Nb::Raft { .. });
        let line = match what {
            0..=26 => {
                let n = 1 + self.rng.below(6);
                let mut made = Vec::new();
                for _ in 0..n {
                    let name = format!("c-{}", self.rng.below(NAMES));
                    self.create(&name).await;
                    made.push(name);
                }
                format!("create {made:?}")
            }
            27..=40 => {
                let existing = self.existing().await;
                let n = 1 + self.rng.below(3);
                let mut gone = Vec::new();
                for _ in 0..n {
                    if existing.is_empty() {
                        break;
                    }
                    let name = &existing[self.rng.below(existing.len() as u64) as usize];
                    self.delete(name).await;
                    gone.push(name.clone());
                }
                format!("delete {gone:?}")
            }
            41..=50 => {
                let name = format!("c-{}", self.rng.below(NAMES));
                self.delete(&name).await;
                // The API frees a name once the object is gone (no nodeName: at once).
                let gone = tokio::time::timeout(Duration::from_secs(10), async {
                    while self.bed.pods().get_opt(&name).await.unwrap().is_some() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
                .await;
                assert!(gone.is_ok(), "pod {name} was never gone");
                self.create(&name).await;
                format!("recreate {name}")
            }
            51..=58 => self.contend(i).await,
            59..=67 => {
                let replicas = self.rng.below(4) as i32;
                let patch = serde_json::json!({ "spec": { "replicas": replicas } });
                Api::<StatefulSet>::namespaced(self.bed.client.clone(), "default")
                    .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
                format!("scale web to {replicas}")
            }
            68..=79 if matches!(self.controllers, Controllers::Pair(..)) => {
                // The leader killed where it stands; a new replica joins (as a follower).
                let leader = self.leader().await;
                let Controllers::Pair(replicas, next) = &mut self.controllers else {
                    unreachable!("matched above");
                };
                let killed = leader
                    .as_ref()
                    .and_then(|l| replicas.remove(l).map(|t| (l.clone(), t)));
                if let Some((_, task)) = &killed {
                    task.abort();
                }
                *next += 1;
                let id = format!("replica-{next}");
                let task = Self::start_replica(&self.bed, &self.proxy, &id);
                let Controllers::Pair(replicas, _) = &mut self.controllers else {
                    unreachable!("matched above");
                };
                replicas.insert(id.clone(), task);
                match (killed, leader) {
                    (Some((old, _)), _) => {
                        self.fault("controller leader killed");
                        format!("leader {old} killed, {id} started")
                    }
                    (None, Some(gone)) => {
                        format!("the Lease still names {gone} (killed, not expired); {id} started")
                    }
                    (None, None) => format!("no leader yet; {id} started"),
                }
            }
            68..=79 => {
                self.controllers.abort_all();
                if let Controllers::One(_, task) = &mut self.controllers {
                    let _ = task.await;
                }
                let down = self.rng.below(500);
                // Pods keep coming while no controller runs.
                if self.rng.below(2) == 0 {
                    let name = format!("c-{}", self.rng.below(NAMES));
                    self.create(&name).await;
                }
                tokio::time::sleep(Duration::from_millis(down)).await;
                let (ctx, task) = Self::start_controller(&self.bed, &self.proxy).await;
                self.controllers = Controllers::One(ctx, task);
                self.fault("controller killed");
                format!("controller killed, back after {down} ms")
            }
            80..=86 => {
                if self.delay.is_zero() {
                    self.delay = Duration::from_millis(500 + self.rng.below(2501));
                    self.fault("IP CR creates delayed");
                } else {
                    self.delay = Duration::ZERO;
                }
                self.proxy.delay_ip_creates(self.delay);
                if self.delay.is_zero() {
                    "IP CR creates no longer delayed".to_owned()
                } else {
                    format!("IP CR creates delayed by {:?} from now", self.delay)
                }
            }
            // A RAFT cluster is not wiped (a new cluster would be another database): its NB
            // fault is always the leader's death.
            87.. if raft => self.kill_raft_leader().await,
            87..=93 => {
                let nb = self.bed.nb.standalone_mut();
                nb.kill();
                let down = self.rng.below(1000);
                tokio::time::sleep(Duration::from_millis(down)).await;
                self.bed.nb.standalone_mut().restart().unwrap();
                self.fault("NB killed");
                format!("NB killed, back after {down} ms")
            }
            _ => {
                self.bed.nb.standalone_mut().restart_empty().unwrap();
                self.fault("NB restarted empty");
                "NB restarted empty".to_owned()
            }
        };
        self.schedule.push(format!("{i:>2}: {line}"));
        self.pause().await;
    }

    /// Kills the RAFT leader, which comes back after a pause or stays down; with a member down
    /// already, restarts that one instead (one more death would leave no majority).
    async fn kill_raft_leader(&mut self) -> String {
        let back_after = (self.rng.below(2) == 0).then(|| self.rng.below(1500));
        let Nb::Raft { cluster, down } = &mut self.bed.nb else {
            unreachable!("only with a RAFT NB");
        };
        if let Some(member) = down.take() {
            cluster.restart(member).unwrap();
            return format!("NB member {member} restarted (rejoins)");
        }
        // Right after a restart the members may still be electing.
        let started = Instant::now();
        let leader = loop {
            if let Some(leader) = cluster.leader() {
                break leader;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the NB cluster elected no leader within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        cluster.kill(leader);
        self.fault("NB RAFT leader killed");
        let Some(ms) = back_after else {
            let Nb::Raft { down, .. } = &mut self.bed.nb else {
                unreachable!("only with a RAFT NB");
            };
            *down = Some(leader);
            return format!("NB leader {leader} killed (stays down)");
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let Nb::Raft { cluster, .. } = &mut self.bed.nb else {
            unreachable!("only with a RAFT NB");
        };
        cluster.restart(leader).unwrap();
        format!("NB leader {leader} killed, back after {ms} ms")
    }

    /// Two pods ask for one static address: at most one may get it. Both go afterwards.
    async fn contend(&mut self, i: usize) -> String {
        let ip = format!("10.100.1.{}", 10 + self.rng.below(200));
        let names = [format!("s-{i}-a"), format!("s-{i}-b")];
        for name in &names {
            let mut p = pod(name);
            p.metadata
                .annotations
                .get_or_insert_default()
                .insert(annotation("ip_address"), ip.clone());
            self.bed
                .pods()
                .create(&PostParams::default(), &p)
                .await
                .unwrap();
        }
        // Until one has it (or a while has passed: a fault may be under way).
        let started = Instant::now();
        let mut holders = Vec::new();
        while started.elapsed() < Duration::from_secs(20) {
            holders.clear();
            for name in &names {
                let p = self.bed.pods().get(name).await.unwrap();
                if p.annotations()
                    .get(&annotation("allocated"))
                    .map(String::as_str)
                    == Some("true")
                    && p.annotations().get(&annotation("ip_address")) == Some(&ip)
                {
                    holders.push(name.clone());
                }
            }
            if !holders.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.contended += 1;
        assert!(
            holders.len() < 2,
            "pods {holders:?} were both given the static address {ip}"
        );
        for name in &names {
            self.delete(name).await;
        }
        format!("contend for {ip}: {holders:?} got it")
    }
}

/// A StatefulSet whose pods attach to the network, at 0 replicas.
async fn statefulset(bed: &Bed) {
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": {
            "replicas": 0, "serviceName": "web", "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": {
                    "labels": { "app": "web" },
                    "annotations": { "k8s.v1.cni.cncf.io/networks": "default/net1" }
                },
                "spec": { "containers": [{ "name": "app", "image": "nginx" }] }
            }
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(bed.client.clone(), "default")
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
}

/// One run: the schedule, then the invariants once the cluster has settled.
/// Returns the faults injected, the static-address contentions, and the IP CR creates held.
async fn one_run(seed: u64, steps: usize, min_faults: usize) -> (Faults, usize, u64) {
    let mut rng = Rng(seed);
    // One run in three: two replicas under leader election; independently, one in three: NB
    // on a RAFT cluster.
    let pair = rng.below(3) == 0;
    let raft = rng.below(3) == 0;
    let bed = if raft {
        Bed::start_raft().await
    } else {
        Bed::start().await
    };
    statefulset(&bed).await;
    let proxy = ApiProxy::start(bed.client.clone()).await;
    let controllers = if pair {
        let replicas = ["replica-0", "replica-1"]
            .into_iter()
            .map(|id| (id.to_owned(), Run::start_replica(&bed, &proxy, id)))
            .collect();
        Controllers::Pair(replicas, 1)
    } else {
        let (ctx, task) = Run::start_controller(&bed, &proxy).await;
        Controllers::One(ctx, task)
    };
    let mode = format!(
        "{}, NB {}",
        if pair {
            "two replicas under leader election"
        } else {
            "one controller"
        },
        if raft {
            "on 3 RAFT members"
        } else {
            "standalone"
        }
    );
    let mut run = Run {
        bed,
        proxy,
        rng,
        controllers,
        schedule: Vec::new(),
        faults: Faults::new(),
        contended: 0,
        delay: Duration::ZERO,
    };
    for i in 0..steps {
        run.step(i).await;
    }
    // Until the run has its share of faults (the draw is random), at most 4× the steps more.
    let mut taken = steps;
    while run.faults.values().sum::<usize>() < min_faults && taken < steps * 5 {
        run.step(taken).await;
        taken += 1;
    }
    // A RAFT member still down rejoins before the check.
    if let Nb::Raft { cluster, down } = &mut run.bed.nb
        && let Some(member) = down.take()
    {
        cluster.restart(member).unwrap();
        run.schedule
            .push(format!("end: NB member {member} restarted (rejoins)"));
    }
    // Settled: every pod allocated and the invariants hold (the StatefulSet controller and the
    // GC still move things for a moment, so the check is repeated until it holds).
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let pods = run
            .bed
            .pods()
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len());
        if let Ok(n) = pods {
            // With replicas the allocator is inside the leader: the durable state is checked.
            let live = match &run.controllers {
                Controllers::One(ctx, _) => Some(ctx.as_ref()),
                Controllers::Pair(..) => None,
            };
            match invariants(&run.bed, n, live).await {
                Ok(()) => {
                    eprintln!(
                        "seed {seed}: {mode}, {taken} steps, {n} pods, settled in {:?}, \
                         faults {:?}, IP CR creates held: {}\n{}",
                        started.elapsed(),
                        run.faults,
                        run.proxy.held(),
                        run.schedule.join("\n")
                    );
                    run.controllers.abort_all();
                    return (run.faults, run.contended, run.proxy.held());
                }
                Err(v) => last = v,
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            let pods: BTreeMap<String, String> = run
                .bed
                .pods()
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .map(|p: &Pod| {
                            let a = p.annotations();
                            (
                                p.name_any(),
                                a.get(&annotation("ip_address"))
                                    .cloned()
                                    .unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            panic!(
                "seed {seed} ({mode}): the invariants never held; last violation: {last}\nschedule:\n{}\n\
                 pods: {pods:?}\nrepeat with: CHAOS_SEED={seed} CHAOS_RUNS=1 CHAOS_STEPS={steps} \
                 CHAOS_MIN_FAULTS={min_faults} cargo test -p controller --test chaos -- --nocapture",
                run.schedule.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_randomized_fault_schedule_breaks_no_invariant() {
    let runs = env_u64("CHAOS_RUNS").unwrap_or(1);
    let steps = env_u64("CHAOS_STEPS").unwrap_or(10) as usize;
    let min_faults = env_u64("CHAOS_MIN_FAULTS").unwrap_or(0) as usize;
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let mut faults = Faults::new();
    let mut fewest = usize::MAX;
    let mut contended = 0;
    let mut held = 0;
    for r in 0..runs {
        let (f, c, h) = one_run(seed.wrapping_add(r), steps, min_faults).await;
        held += h;
        fewest = fewest.min(f.values().sum());
        for (kind, n) in f {
            *faults.entry(kind).or_default() += n;
        }
        contended += c;
    }
    let total: usize = faults.values().sum();
    eprintln!(
        "chaos: {runs} runs from seed {seed}, {steps} steps each (at least {min_faults} faults): \
         {total} faults {faults:?} \
         (fewest in a run: {fewest}), {held} IP CR creates held by the proxy, {contended} \
         static-address contentions, no violation"
    );
}
