//! A randomized fault schedule against real programs (L2: a real kube-apiserver with its
//! controller-manager, a real NB ovsdb-server, the controller in-process), then the invariants
//! of `common::faults`: no address held by two pods (by pod annotations, IP CRs, NB ports and the
//! allocator), no IP CR without its pod or port, no port without its IP CR, every pod allocated.
//!
//! Each step is drawn from a seeded generator: pods created and deleted, a pod deleted and
//! created again under the same name at once, two pods asking for one static address, a
//! StatefulSet scaled, the controller killed (its task aborted wherever it is) and restarted,
//! NB killed and restarted, NB restarted empty. One run in three runs two controller replicas
//! under leader election instead, and a kill takes the leader (the follower takes over, a new
//! replica joins). Steps overlap with the reconciles they trigger
//! (short random pauses, no waiting for quiet in between).
//!
//! `CHAOS_RUNS` runs (default 1), `CHAOS_STEPS` steps each (default 10), seeds from `CHAOS_SEED`
//! (default: the clock). `cargo xtask chaos --runs N --seed S` sets them; a failure prints the
//! seed and the schedule so the run can be repeated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: a panic is how a test fails.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::faults::{Bed, annotation, invariants, pod};
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

struct Run {
    bed: Bed,
    rng: Rng,
    controllers: Controllers,
    schedule: Vec<String>,
    /// Static-address contentions seen, and how many gave the address to both pods.
    contended: usize,
}

impl Run {
    async fn start_controller(bed: &Bed) -> (Arc<Context>, tokio::task::JoinHandle<()>) {
        let config = bed.config();
        let ctx = run::start(bed.client.clone(), &config).await.unwrap();
        let task = tokio::spawn(run::run(Arc::clone(&ctx), config));
        (ctx, task)
    }

    fn start_replica(
        bed: &Bed,
        identity: &str,
    ) -> tokio::task::JoinHandle<Result<(), run::LeadError>> {
        let lease = LeaseConfig {
            namespace: "kube-system".into(),
            name: "kube-ovn-controller".into(),
            identity: identity.into(),
            duration: Duration::from_secs(2),
        };
        tokio::spawn(run::run_with_leader(
            bed.client.clone(),
            bed.config(),
            lease,
        ))
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

    async fn step(&mut self, i: usize) {
        let what = self.rng.below(100);
        let line = match what {
            0..=29 => {
                let n = 1 + self.rng.below(6);
                let mut made = Vec::new();
                for _ in 0..n {
                    let name = format!("c-{}", self.rng.below(NAMES));
                    self.create(&name).await;
                    made.push(name);
                }
                format!("create {made:?}")
            }
            30..=44 => {
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
            45..=54 => {
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
            55..=62 => self.contend(i).await,
            63..=72 => {
                let replicas = self.rng.below(4) as i32;
                let patch = serde_json::json!({ "spec": { "replicas": replicas } });
                Api::<StatefulSet>::namespaced(self.bed.client.clone(), "default")
                    .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
                format!("scale web to {replicas}")
            }
            73..=84 if matches!(self.controllers, Controllers::Pair(..)) => {
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
                let task = Self::start_replica(&self.bed, &id);
                let Controllers::Pair(replicas, _) = &mut self.controllers else {
                    unreachable!("matched above");
                };
                replicas.insert(id.clone(), task);
                match (killed, leader) {
                    (Some((old, _)), _) => format!("leader {old} killed, {id} started"),
                    (None, Some(gone)) => {
                        format!("the Lease still names {gone} (killed, not expired); {id} started")
                    }
                    (None, None) => format!("no leader yet; {id} started"),
                }
            }
            73..=84 => {
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
                let (ctx, task) = Self::start_controller(&self.bed).await;
                self.controllers = Controllers::One(ctx, task);
                format!("controller killed, back after {down} ms")
            }
            85..=92 => {
                self.bed.nb.kill();
                let down = self.rng.below(1000);
                tokio::time::sleep(Duration::from_millis(down)).await;
                self.bed.nb.restart().unwrap();
                format!("NB killed, back after {down} ms")
            }
            _ => {
                self.bed.nb.restart_empty().unwrap();
                "NB restarted empty".to_owned()
            }
        };
        self.schedule.push(format!("{i:>2}: {line}"));
        self.pause().await;
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
async fn one_run(seed: u64, steps: usize) -> (usize, usize) {
    let bed = Bed::start().await;
    statefulset(&bed).await;
    let mut rng = Rng(seed);
    // One run in three: two replicas under leader election.
    let controllers = if rng.below(3) == 0 {
        let replicas = ["replica-0", "replica-1"]
            .into_iter()
            .map(|id| (id.to_owned(), Run::start_replica(&bed, id)))
            .collect();
        Controllers::Pair(replicas, 1)
    } else {
        let (ctx, task) = Run::start_controller(&bed).await;
        Controllers::One(ctx, task)
    };
    let mode = match controllers {
        Controllers::One(..) => "one controller",
        Controllers::Pair(..) => "two replicas under leader election",
    };
    let mut run = Run {
        bed,
        rng,
        controllers,
        schedule: Vec::new(),
        contended: 0,
    };
    for i in 0..steps {
        run.step(i).await;
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
                        "seed {seed}: {mode}, {steps} steps, {n} pods, settled in {:?}\n{}",
                        started.elapsed(),
                        run.schedule.join("\n")
                    );
                    let faults = run
                        .schedule
                        .iter()
                        .filter(|l| l.contains("killed") || l.contains("NB restarted"))
                        .count();
                    run.controllers.abort_all();
                    return (faults, run.contended);
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
                 cargo test -p controller --test chaos -- --nocapture",
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
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let mut faults = 0;
    let mut contended = 0;
    for r in 0..runs {
        let (f, c) = one_run(seed.wrapping_add(r), steps).await;
        faults += f;
        contended += c;
    }
    eprintln!(
        "chaos: {runs} runs from seed {seed}, {steps} steps each: {faults} controller/NB faults, \
         {contended} static-address contentions, no violation"
    );
}
