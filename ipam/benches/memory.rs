//! Memory for a /8 with 1 000 000 random allocations (issue 4), and for the empty /8.
//!
//! Measured as the growth of the process's resident set (`VmRSS` in `/proc/self/status`),
//! read before and after, in a process that does nothing else. RSS counts pages the allocator
//! touched, including its slack, so it is an upper bound on what the data structures need.
//! Run: `cargo bench -p ipam --bench memory`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot measure should stop

use std::time::Instant;

use ipam::{Ipam, Request, SubnetSpec};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`, first field): unlike
/// wall time it does not count time spent waiting for a CPU, so it stays comparable on a busy
/// machine (cache sharing with other processes still slows it).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("read /proc/thread-self/schedstat")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("run time in /proc/thread-self/schedstat")
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that excludes us means: do nothing.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !args.is_empty() && !args.iter().any(|a| "memory".contains(a.as_str())) {
        return;
    }
    let n: u64 = 1_000_000;
    let names: Vec<String> = (0..n)
        .map(|i| format!("pod-{i}.default.net1.default.ovn"))
        .collect();

    let before_subnet = rss_kib();
    let mut ipam = Ipam::with_seed(42);
    ipam.update_subnet(SubnetSpec::new("s", "10.0.0.0/8"))
        .unwrap();
    let empty = rss_kib();

    let start = Instant::now();
    let cpu_start = cpu_ns();
    for key in &names {
        ipam.allocate("s", key, &Request::random()).unwrap();
    }
    let cpu = cpu_ns() - cpu_start;
    let elapsed = start.elapsed();
    let full = rss_kib();

    let counters = ipam.counters("s").unwrap();
    let ranges = ipam.free_range_count("s").unwrap();
    let grown = (full - empty) * 1024;
    println!(
        "memory/slash8_empty: {} KiB RSS growth for an empty /8",
        empty - before_subnet
    );
    println!(
        "memory/slash8_1M_random: {:.1} MiB RSS growth for {} leases = {} bytes per lease \
         ({} free ranges, {} addresses still free); 1M allocations took {:.2} s ({:.0} ns each; \
         {:.0} ns each on the CPU)",
        grown as f64 / (1024.0 * 1024.0),
        counters.v4_using,
        grown / n,
        ranges,
        counters.v4_available,
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / n as f64,
        cpu as f64 / n as f64,
    );
}
