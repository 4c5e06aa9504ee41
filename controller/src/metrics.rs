//! Prometheus metrics of the controller.
//!
//! Families (prefix `kube_ovn_controller_`, latencies in seconds):
//! - `reconcile_duration_seconds{controller, result}`: every reconcile of `vpc`, `subnet` and
//!   `pod`; `result` is `ok` or `error` (errors are requeued with backoff), so the `_count`
//!   series are the reconcile and error counts.
//! - `attachment_duration_seconds{result}`: one pod attachment from the allocation to its LSP
//!   (address, IP CR, NB transaction); `result` is `ok`, `waiting` (its subnet is not ready yet)
//!   or `error`.
//! - `ovn_transaction_duration_seconds{result}`: every NB transaction the controller sends
//!   (`ok` or `error`; an empty transaction sends nothing and is not counted).
//! - `ipam_addresses{subnet, family, state}`: per subnet and address family, the addresses
//!   `used` and still `available`, read from the allocator at scrape time (so never stale).
//!
//! [`Metrics::render`] is what `GET /metrics` of the admin endpoint ([`crds::admin`], shared
//! with the daemon) answers; [`Metrics::admin_routes`] adds the controller's health checks.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The outcome label of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It waits for something else (retried soon).
    Waiting,
    /// It failed.
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Waiting => "waiting",
            Outcome::Error => "error",
        }
    }

    /// `Ok` or `Error` by a result.
    pub fn of<T, E>(r: &Result<T, E>) -> Self {
        if r.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Error
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UsageLabels {
    subnet: String,
    family: &'static str,
    state: &'static str,
}

/// 0.25 ms to 65 s in doublings: an NB transaction takes about a millisecond, a reconcile a few
/// API round trips, and one waiting on a reconnecting NB up to its request timeout.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 19))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Reads the allocator of the running controller at scrape time. Holds it weakly: a controller
/// that stopped (lost leadership) reports no usage rather than keeping its allocator alive.
#[derive(Debug, Default)]
struct IpamUsage {
    ipam: Mutex<Weak<ipam::SharedIpam>>,
}

/// One subnet's addresses in one family, as the allocator counts them now.
struct FamilyUsage {
    subnet: String,
    family: &'static str,
    cidr: String,
    // u128: an IPv6 /64 has more addresses than u64 counts.
    used: u128,
    available: u128,
}

impl IpamUsage {
    fn samples(&self) -> Vec<FamilyUsage> {
        let source = self
            .ipam
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .upgrade();
        let mut samples = Vec::new();
        let Some(ipam) = source else {
            return samples;
        };
        let ipam = ipam.lock();
        for subnet in ipam.subnet_names() {
            let (Ok(c), Ok(info)) = (ipam.counters(&subnet), ipam.subnet_info(&subnet)) else {
                continue;
            };
            let cidr = |v4: bool| {
                info.cidrs
                    .iter()
                    .find(|n| matches!(n, ipnet::IpNet::V4(_)) == v4)
                    .map(ToString::to_string)
            };
            for (family, used, available, cidr) in [
                ("ipv4", c.v4_using, c.v4_available, cidr(true)),
                ("ipv6", c.v6_using, c.v6_available, cidr(false)),
            ] {
                if let Some(cidr) = cidr {
                    samples.push(FamilyUsage {
                        subnet: subnet.clone(),
                        family,
                        cidr,
                        used,
                        available,
                    });
                }
            }
        }
        samples
    }
}

impl Collector for IpamUsage {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let samples = self.samples();
        let mut metric = encoder.encode_descriptor(
            "ipam_addresses",
            "Addresses per subnet and family: used, and still available",
            None,
            MetricType::Gauge,
        )?;
        for u in &samples {
            // Gauges are f64: exact up to 2^53, ample for any address count one reads.
            #[allow(clippy::cast_precision_loss)]
            for (state, n) in [("used", u.used as f64), ("available", u.available as f64)] {
                let labels = UsageLabels {
                    subnet: u.subnet.clone(),
                    family: u.family,
                    state,
                };
                ConstGauge::new(n).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamUsageLabels {
    subnet_name: String,
    protocol: &'static str,
    subnet_cidr: String,
}

/// Upstream Kube-OVN's series for the same counts, under its names and labels
/// (`subnet_available_ip_count`, `subnet_used_ip_count`; `protocol` `IPv4` or `IPv6`, one
/// series per family of a dual-stack subnet), so its dashboards and alerts work unchanged.
#[derive(Debug)]
struct UpstreamUsage(Arc<IpamUsage>);

impl Collector for UpstreamUsage {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let samples = self.0.samples();
        for (name, help, used) in [
            (
                "subnet_available_ip_count",
                "The available num of ip address in subnet",
                false,
            ),
            (
                "subnet_used_ip_count",
                "The used num of ip address in subnet",
                true,
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for u in &samples {
                let labels = UpstreamUsageLabels {
                    subnet_name: u.subnet.clone(),
                    protocol: if u.family == "ipv4" { "IPv4" } else { "IPv6" },
                    subnet_cidr: u.cidr.clone(),
                };
                #[allow(clippy::cast_precision_loss)]
                let n = if used { u.used } else { u.available } as f64;
                ConstGauge::new(n).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The controller's registry and metric families. Shared behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Series under upstream Kube-OVN's names (no `kube_ovn_controller_` prefix).
    upstream: Registry,
    reconciles: HistogramFamily<ReconcileLabels>,
    attachments: HistogramFamily<ResultLabels>,
    transactions: HistogramFamily<ResultLabels>,
    usage: Arc<IpamUsage>,
    readiness: std::sync::RwLock<Readiness>,
}

/// What `/readyz` answers for this replica.
#[derive(Debug, Clone, Default)]
pub enum Readiness {
    /// Waiting for the lease: a standby serves the admission webhook and is ready to take
    /// over (ready).
    #[default]
    Standby,
    /// Won the lease (or runs alone): connecting to NB, listing the caches, rebuilding the
    /// allocator (not ready).
    Starting,
    /// The controllers run: ready while the NB session is up (a leader cut off from NB
    /// reconciles nothing and says so).
    Serving(std::sync::Weak<crate::nb::Nb>),
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered (and no samples).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kube_ovn_controller");
        let reconciles =
            HistogramFamily::<ReconcileLabels>::new_with_constructor(latency_histogram);
        let attachments = HistogramFamily::<ResultLabels>::new_with_constructor(latency_histogram);
        let transactions = HistogramFamily::<ResultLabels>::new_with_constructor(latency_histogram);
        let usage = Arc::new(IpamUsage::default());
        registry.register_with_unit(
            "reconcile_duration",
            "Reconciles by controller (vpc, subnet, pod) and result (ok, error)",
            Unit::Seconds,
            reconciles.clone(),
        );
        registry.register_with_unit(
            "attachment_duration",
            "One pod attachment: address, IP CR and logical switch port, by result (ok, \
             waiting for its subnet, error)",
            Unit::Seconds,
            attachments.clone(),
        );
        registry.register_with_unit(
            "ovn_transaction_duration",
            "OVN Northbound transactions sent, by result (ok, error)",
            Unit::Seconds,
            transactions.clone(),
        );
        registry.register_collector(Box::new(usage.clone()));
        let mut upstream = Registry::default();
        upstream.register_collector(Box::new(UpstreamUsage(usage.clone())));
        upstream.register_collector(Box::new(crds::admin::ProcessCollector));
        Self {
            registry,
            upstream,
            reconciles,
            attachments,
            transactions,
            usage,
            readiness: std::sync::RwLock::default(),
        }
    }

    /// Sets what `/readyz` answers from now on.
    pub fn set_readiness(&self, readiness: Readiness) {
        *self
            .readiness
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = readiness;
    }

    /// `/readyz`: `Ok` or why not.
    pub fn readiness(&self) -> Result<(), String> {
        let state = self
            .readiness
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match state {
            Readiness::Standby => Ok(()),
            Readiness::Starting => Err(
                "starting: connecting to OVN NB, listing the caches, rebuilding the allocator"
                    .into(),
            ),
            Readiness::Serving(nb) => match nb.upgrade() {
                Some(nb) if nb.is_connected() => Ok(()),
                Some(_) => Err("OVN NB unreachable: reconnecting (nothing is reconciled)".into()),
                None => Err("stopped: the controllers are no longer running".into()),
            },
        }
    }

    /// Records one reconcile of `controller`.
    pub fn observe_reconcile(&self, controller: &'static str, outcome: Outcome, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                controller,
                result: outcome.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one attachment.
    pub fn observe_attachment(&self, outcome: Outcome, took: Duration) {
        self.attachments
            .get_or_create(&ResultLabels {
                result: outcome.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one NB transaction.
    pub fn observe_transaction(&self, outcome: Outcome, took: Duration) {
        self.transactions
            .get_or_create(&ResultLabels {
                result: outcome.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Reports the usage of `ipam` from now on (replacing any earlier allocator).
    pub fn watch_ipam(&self, ipam: &Arc<ipam::SharedIpam>) {
        *self
            .usage
            .ipam
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::downgrade(ipam);
    }

    /// The value of series `series` (name and labels exactly as exposed), as a scrape would
    /// report it; `None` when absent.
    pub fn sample(&self, series: &str) -> Option<f64> {
        self.render().lines().find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.starts_with(' ').then(|| rest.trim().parse().ok())?
        })
    }

    /// The admin endpoint of a controller replica, leader or standby: these metrics; `/healthz`
    /// answers `ok` while the process serves (a leader that loses its lease exits, so the
    /// kubelet sees no stuck replica); `/readyz` follows [`Readiness`]: a standby is ready, a
    /// leader once its caches are listed and while its NB session is up.
    pub fn admin_routes(self: &Arc<Self>) -> crds::admin::Routes {
        let me = self.clone();
        let mut routes = crds::admin::Routes::metrics_only(Arc::new(move || me.render()));
        let me = self.clone();
        routes.readyz = Arc::new(move || me.readiness());
        routes
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
    fn readiness_follows_the_replicas_state() {
        let m = Metrics::new();
        assert_eq!(m.readiness(), Ok(()), "a standby is ready");
        m.set_readiness(Readiness::Starting);
        assert!(m.readiness().unwrap_err().starts_with("starting"));
        m.set_readiness(Readiness::Serving(std::sync::Weak::new()));
        assert!(m.readiness().unwrap_err().starts_with("stopped"));
        let routes = Arc::new(Metrics::new()).admin_routes();
        assert_eq!((routes.readyz)(), Ok(()));
    }

    #[test]
    fn renders_every_family_with_its_labels() {
        let m = Metrics::new();
        m.observe_reconcile("pod", Outcome::Ok, Duration::from_millis(3));
        m.observe_reconcile("pod", Outcome::Error, Duration::from_millis(1));
        m.observe_reconcile("subnet", Outcome::Ok, Duration::from_millis(2));
        m.observe_attachment(Outcome::Ok, Duration::from_millis(2));
        m.observe_attachment(Outcome::Waiting, Duration::from_micros(10));
        m.observe_transaction(Outcome::Ok, Duration::from_micros(100));
        let ipam = Arc::new(ipam::SharedIpam::default());
        ipam.update_subnet(
            ipam::SubnetSpec::new("s1", "10.0.0.0/24,fd00::/120").with_gateway("10.0.0.1,fd00::1"),
        )
        .unwrap();
        ipam.allocate("s1", "p.default.a", &ipam::Request::random())
            .unwrap();
        m.watch_ipam(&ipam);

        let text = m.render();
        for series in [
            r#"kube_ovn_controller_reconcile_duration_seconds_count{controller="pod",result="ok"}"#,
            r#"kube_ovn_controller_reconcile_duration_seconds_count{controller="pod",result="error"}"#,
            r#"kube_ovn_controller_reconcile_duration_seconds_count{controller="subnet",result="ok"}"#,
            r#"kube_ovn_controller_attachment_duration_seconds_count{result="ok"}"#,
            r#"kube_ovn_controller_attachment_duration_seconds_count{result="waiting"}"#,
            r#"kube_ovn_controller_ovn_transaction_duration_seconds_count{result="ok"}"#,
            r#"kube_ovn_controller_ipam_addresses{subnet="s1",family="ipv4",state="used"}"#,
            r#"kube_ovn_controller_ipam_addresses{subnet="s1",family="ipv6",state="used"}"#,
        ] {
            assert_eq!(m.sample(series), Some(1.0), "{series} in\n{text}");
        }
        // /24 less network, broadcast, gateway and the one used.
        assert_eq!(
            m.sample(
                r#"kube_ovn_controller_ipam_addresses{subnet="s1",family="ipv4",state="available"}"#
            ),
            Some(252.0),
            "{text}"
        );
        // Upstream's names and labels for the same counts, one series per family.
        for (series, n) in [
            (
                r#"subnet_used_ip_count{subnet_name="s1",protocol="IPv4",subnet_cidr="10.0.0.0/24"}"#,
                1.0,
            ),
            (
                r#"subnet_available_ip_count{subnet_name="s1",protocol="IPv4",subnet_cidr="10.0.0.0/24"}"#,
                252.0,
            ),
            (
                r#"subnet_used_ip_count{subnet_name="s1",protocol="IPv6",subnet_cidr="fd00::/120"}"#,
                1.0,
            ),
        ] {
            assert_eq!(m.sample(series), Some(n), "{series} in\n{text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(
            text.contains("# TYPE kube_ovn_controller_ipam_addresses gauge"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT kube_ovn_controller_ovn_transaction_duration_seconds seconds"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");

        // A stopped controller's allocator is not reported (nor kept alive).
        drop(ipam);
        assert!(!m.render().contains("subnet=\"s1\""));
    }
}
