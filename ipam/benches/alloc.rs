//! Allocator benchmarks (the cases of issue 4). Figures and the command are in `BENCHMARKS.md`.
//!
//! - `fill_16/{random,sequential}`: allocate in a fresh /16 until it is full (65 533 leases).
//! - `churn_50pct/*`: a /16 half full; one release plus one random allocate per iteration, on the
//!   bare allocator, behind the mutex, and behind the mutex from two threads at once.
//! - `static_16`: static requests (`10.x.y.z/16`, parsed) in shuffled order until the /16 is full.
//! - `rebuild_100k`: `rebuild` from 100 000 records in a /14.
//!
//! Sample counts and times are kept low so the whole run takes a few minutes on 2 cores.

#![allow(clippy::unwrap_used)] // a bench setup that fails should stop the bench loudly

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ipam::{IpRequest, Ipam, Request, SharedIpam, SubnetSpec};

const SLASH16_FREE: u64 = 65_536 - 3; // minus network, broadcast, gateway

fn subnet(cidr: &str) -> Ipam {
    let mut ipam = Ipam::with_seed(42);
    ipam.update_subnet(SubnetSpec::new("s", cidr)).unwrap();
    ipam
}

fn keys(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| format!("pod-{i}.default.net1.default.ovn"))
        .collect()
}

/// xorshift64*, for picking victims without touching the allocator's generator.
struct Pick(u64);
impl Pick {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

fn fill_16(c: &mut Criterion) {
    let mut group = c.benchmark_group("fill_16");
    group.throughput(Throughput::Elements(SLASH16_FREE));
    let names = keys(SLASH16_FREE);
    for (label, request) in [
        ("random", Request::random()),
        ("sequential", Request::sequential()),
    ] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || subnet("10.0.0.0/16"),
                |mut ipam| {
                    for key in &names {
                        black_box(ipam.allocate("s", key, &request).unwrap());
                    }
                    ipam
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn half_full() -> (Ipam, Vec<String>) {
    let mut ipam = subnet("10.0.0.0/16");
    let names = keys(SLASH16_FREE / 2);
    for key in &names {
        ipam.allocate("s", key, &Request::random()).unwrap();
    }
    (ipam, names)
}

fn churn_50pct(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn_50pct");
    group.throughput(Throughput::Elements(1));
    let request = Request::random();

    let (mut ipam, names) = half_full();
    let mut pick = Pick(7);
    group.bench_function("release+allocate", |b| {
        b.iter(|| {
            let key = &names[pick.below(names.len())];
            black_box(ipam.release(key));
            black_box(ipam.allocate("s", key, &request).unwrap());
        });
    });

    let (ipam, names) = half_full();
    let shared = SharedIpam::new(ipam);
    group.bench_function("release+allocate/mutex", |b| {
        b.iter(|| {
            let key = &names[pick.below(names.len())];
            black_box(shared.release(key));
            black_box(shared.allocate("s", key, &request).unwrap());
        });
    });

    // Two threads churning disjoint halves of the keys; time per operation pair, both threads
    // together (so a perfectly scaling lock-free design would show half the single-thread time).
    let halves: Vec<&[String]> = names.chunks(names.len() / 2 + 1).collect();
    group.bench_function("release+allocate/mutex_2_threads", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(2);
            let start = Instant::now();
            std::thread::scope(|scope| {
                for (t, half) in halves.iter().enumerate() {
                    let shared = &shared;
                    let request = &request;
                    scope.spawn(move || {
                        let mut pick = Pick(11 + t as u64);
                        for _ in 0..per_thread {
                            let key = &half[pick.below(half.len())];
                            black_box(shared.release(key));
                            black_box(shared.allocate("s", key, request).unwrap());
                        }
                    });
                }
            });
            start
                .elapsed()
                .mul_f64(iters as f64 / (2 * per_thread) as f64)
        });
    });
    group.finish();
}

fn static_16(c: &mut Criterion) {
    let mut group = c.benchmark_group("static_16");
    group.throughput(Throughput::Elements(SLASH16_FREE));
    let names = keys(SLASH16_FREE);
    let mut offsets: Vec<u32> = (2..65_535).collect();
    let mut pick = Pick(3);
    for i in (1..offsets.len()).rev() {
        offsets.swap(i, pick.below(i + 1));
    }
    let requests: Vec<Request> = offsets
        .iter()
        .map(|o| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 | o).into();
            Request::random().with_ips([IpRequest {
                addr,
                prefix_len: Some(16),
            }])
        })
        .collect();
    group.bench_function("shuffled", |b| {
        b.iter_batched(
            || subnet("10.0.0.0/16"),
            |mut ipam| {
                for (key, request) in names.iter().zip(&requests) {
                    black_box(ipam.allocate("s", key, request).unwrap());
                }
                ipam
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn rebuild_100k(c: &mut Criterion) {
    let mut group = c.benchmark_group("rebuild_100k");
    let n = 100_000;
    group.throughput(Throughput::Elements(n));
    let mut source = subnet("10.0.0.0/14");
    for key in keys(n) {
        source.allocate("s", &key, &Request::random()).unwrap();
    }
    let records = source.records();
    group.bench_function("records", |b| {
        b.iter_batched(
            || (subnet("10.0.0.0/14"), records.clone()),
            |(mut ipam, records)| {
                let report = ipam.rebuild(records);
                assert!(report.rejected.is_empty());
                ipam
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = fill_16, churn_50pct, static_16, rebuild_100k
}
criterion_main!(benches);
