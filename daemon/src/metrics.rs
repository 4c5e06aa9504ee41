//! Prometheus metrics of the daemon.
//!
//! Two histogram families, in seconds:
//! - `kube_ovn_cni_op_duration_seconds{verb, result}`: every CNI verb the plugin calls, as the
//!   daemon sees it; `result` is `ok` or the CNI error code (`7`, `11`, ...).
//! - `kube_ovn_cni_add_phase_duration_seconds{phase}`: where a successful or failed ADD spent its
//!   time: `wait_allocation` (the controller's `allocated` annotation), `plumbing` (veth and the
//!   OVS port transaction) and `wait_ovn_installed` (ovn-controller's `ovn-installed`). A phase
//!   is recorded when it ends, whether it succeeded or not, so timeouts show up at their length.
//!
//! They cover upstream's `cni_op_latency_seconds`, `cni_wait_address_seconds_total` and
//! `cni_wait_connectivity_seconds_total` as histograms. [`Metrics::render`] is what
//! `GET /metrics` of the admin endpoint ([`crds::admin`]) answers.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The CNI verbs the daemon serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// ADD.
    Add,
    /// DEL.
    Del,
    /// CHECK.
    Check,
    /// STATUS.
    Status,
    /// GC.
    Gc,
}

impl Verb {
    /// The verb as the CNI spec writes it (the `verb` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
            Verb::Status => "STATUS",
            Verb::Gc => "GC",
        }
    }
}

/// The phases of an ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPhase {
    /// Waiting for kube-ovn-controller's `<provider>.kubernetes.io/allocated` annotation.
    WaitAllocation,
    /// The veth pair in the kernel and the OVS port transaction.
    Plumbing,
    /// Waiting for ovn-controller to set `external_ids:ovn-installed=true`.
    WaitOvnInstalled,
}

impl AddPhase {
    /// Every phase, in order.
    pub const ALL: [AddPhase; 3] = [
        AddPhase::WaitAllocation,
        AddPhase::Plumbing,
        AddPhase::WaitOvnInstalled,
    ];

    /// The `phase` label.
    pub fn as_str(self) -> &'static str {
        match self {
            AddPhase::WaitAllocation => "wait_allocation",
            AddPhase::Plumbing => "plumbing",
            AddPhase::WaitOvnInstalled => "wait_ovn_installed",
        }
    }
}

/// The `result` label of a successful operation.
pub const RESULT_OK: &str = "ok";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    verb: &'static str,
    result: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamOpLabels {
    node_name: String,
    method: &'static str,
    status_code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NodeLabels {
    node_name: String,
}

/// Upstream Kube-OVN's buckets for `cni_op_latency_seconds`: 1 ms to 512 ms in doublings.
fn upstream_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 10))
}

/// The HTTP status upstream's CNI server answers with, for its `status_code` label: 200, 400
/// for a request or configuration the plugin got wrong, 500 for anything else.
fn upstream_status(error_code: Option<u32>) -> &'static str {
    use cni::api::code;
    match error_code {
        None => "200",
        Some(code::INVALID_ENV | code::INVALID_CONFIG | code::DECODE_FAILURE) => "400",
        Some(_) => "500",
    }
}

/// 0.25 ms to 65 s in doublings: a local plumb takes milliseconds, waits are bounded by the
/// daemon's timeouts (tens of seconds), and each bucket stays within 2x of any sample.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 19))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The daemon's registry and metric families. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ops: HistogramFamily<OpLabels>,
    add_phases: HistogramFamily<PhaseLabels>,
    /// Series under upstream Kube-OVN's names (no `kube_ovn_cni_` prefix), so its dashboards
    /// and alerts work unchanged: `cni_op_latency_seconds{node_name, method, status_code}` and
    /// `cni_wait_address_seconds_total{node_name}`.
    upstream: Registry,
    node: String,
    upstream_ops: HistogramFamily<UpstreamOpLabels>,
    wait_address: Family<NodeLabels, Counter<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered (and no samples), for no node in
    /// particular (tests); the daemon uses [`Metrics::for_node`].
    pub fn new() -> Self {
        Self::for_node("")
    }

    /// A fresh registry whose upstream-compatible series carry `node_name="<node>"`.
    pub fn for_node(node: &str) -> Self {
        let mut registry = Registry::with_prefix("kube_ovn_cni");
        let ops = HistogramFamily::<OpLabels>::new_with_constructor(latency_histogram);
        let add_phases = HistogramFamily::<PhaseLabels>::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "op_duration",
            "Latency of CNI operations served by kube-ovn-daemon, by verb and result (ok or the \
             CNI error code)",
            Unit::Seconds,
            ops.clone(),
        );
        registry.register_with_unit(
            "add_phase_duration",
            "Time CNI ADD spent per phase: wait_allocation (controller annotation), plumbing \
             (veth and OVS port), wait_ovn_installed (ovn-controller)",
            Unit::Seconds,
            add_phases.clone(),
        );
        let mut upstream = Registry::default();
        upstream.register_collector(Box::new(crds::admin::ProcessCollector));
        let upstream_ops =
            HistogramFamily::<UpstreamOpLabels>::new_with_constructor(upstream_histogram);
        let wait_address = Family::<NodeLabels, Counter<f64, AtomicU64>>::default();
        upstream.register(
            "cni_op_latency_seconds",
            "The latency seconds for cni operations",
            upstream_ops.clone(),
        );
        upstream.register(
            "cni_wait_address_seconds",
            "Latency that cni wait controller to assign an address",
            wait_address.clone(),
        );
        Self {
            registry,
            ops,
            add_phases,
            upstream,
            node: node.to_owned(),
            upstream_ops,
            wait_address,
        }
    }

    /// Records one operation; `error_code` is the CNI error code it failed with, if it failed.
    pub fn observe_op(&self, verb: Verb, error_code: Option<u32>, took: Duration) {
        let labels = OpLabels {
            verb: verb.as_str(),
            result: error_code.map_or_else(|| RESULT_OK.to_owned(), |c| c.to_string()),
        };
        self.ops.get_or_create(&labels).observe(took.as_secs_f64());
        self.upstream_ops
            .get_or_create(&UpstreamOpLabels {
                node_name: self.node.clone(),
                method: verb.as_str(),
                status_code: upstream_status(error_code),
            })
            .observe(took.as_secs_f64());
    }

    /// Records how long one ADD phase took.
    pub fn observe_phase(&self, phase: AddPhase, took: Duration) {
        self.add_phases
            .get_or_create(&PhaseLabels {
                phase: phase.as_str(),
            })
            .observe(took.as_secs_f64());
        if phase == AddPhase::WaitAllocation {
            self.wait_address
                .get_or_create(&NodeLabels {
                    node_name: self.node.clone(),
                })
                .inc_by(took.as_secs_f64());
        }
    }

    /// How many operations of `verb` ended with `result` (`ok` or a CNI code as text), as a
    /// scrape would report it.
    pub fn op_count(&self, verb: Verb, result: &str) -> u64 {
        self.sample_count(&format!(
            r#"kube_ovn_cni_op_duration_seconds_count{{verb="{}",result="{result}"}}"#,
            verb.as_str()
        ))
    }

    /// How many samples `phase` has, as a scrape would report it.
    pub fn phase_count(&self, phase: AddPhase) -> u64 {
        self.sample_count(&format!(
            r#"kube_ovn_cni_add_phase_duration_seconds_count{{phase="{}"}}"#,
            phase.as_str()
        ))
    }

    /// The value of the `_count` series `series` in the exposition (the client library reads
    /// histogram counts only through encoding), 0 when absent.
    fn sample_count(&self, series: &str) -> u64 {
        self.render()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The registry in the OpenMetrics text format (ends with `# EOF`).
    pub fn render(&self) -> String {
        crds::admin::render(&[&self.registry, &self.upstream])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ops_by_verb_and_result_and_phases_in_seconds() {
        let m = Metrics::new();
        m.observe_op(Verb::Add, None, Duration::from_millis(3));
        m.observe_op(Verb::Add, Some(11), Duration::from_secs(5));
        m.observe_op(Verb::Del, None, Duration::from_micros(100));
        m.observe_phase(AddPhase::Plumbing, Duration::from_millis(2));
        let text = m.render();
        assert!(
            text.contains("# TYPE kube_ovn_cni_op_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT kube_ovn_cni_op_duration_seconds seconds"),
            "{text}"
        );
        assert!(
            text.contains(r#"kube_ovn_cni_op_duration_seconds_count{verb="ADD",result="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"kube_ovn_cni_op_duration_seconds_sum{verb="ADD",result="11"} 5.0"#),
            "{text}"
        );
        // 100 µs lands in the first bucket (0.25 ms).
        assert!(
            text.contains(
                r#"kube_ovn_cni_op_duration_seconds_bucket{le="0.00025",verb="DEL",result="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"kube_ovn_cni_add_phase_duration_seconds_count{phase="plumbing"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(m.op_count(Verb::Add, "ok"), 1);
        assert_eq!(m.op_count(Verb::Add, "11"), 1);
        assert_eq!(m.op_count(Verb::Check, "ok"), 0);
        assert_eq!(m.phase_count(AddPhase::Plumbing), 1);
        assert_eq!(m.phase_count(AddPhase::WaitAllocation), 0);
    }

    #[test]
    fn upstream_series_have_upstream_names_labels_and_codes() {
        let m = Metrics::for_node("node-a");
        m.observe_op(Verb::Add, None, Duration::from_millis(3));
        m.observe_op(Verb::Add, Some(7), Duration::from_millis(1));
        m.observe_op(Verb::Del, Some(11), Duration::from_millis(1));
        m.observe_phase(AddPhase::WaitAllocation, Duration::from_millis(1500));
        let text = m.render();
        for line in [
            r#"cni_op_latency_seconds_count{node_name="node-a",method="ADD",status_code="200"} 1"#,
            r#"cni_op_latency_seconds_count{node_name="node-a",method="ADD",status_code="400"} 1"#,
            r#"cni_op_latency_seconds_count{node_name="node-a",method="DEL",status_code="500"} 1"#,
            r#"cni_op_latency_seconds_bucket{le="0.004",node_name="node-a",method="ADD",status_code="200"} 1"#,
            r#"cni_wait_address_seconds_total{node_name="node-a"} 1.5"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
