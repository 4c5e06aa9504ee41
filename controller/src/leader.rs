//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one of several
//! kube-ovn-controller replicas reconciles at a time.
//!
//! Acquire: take the Lease when it has no holder, is ours, or its holder has not renewed within
//! the lease duration. "Not renewed" is judged as client-go does: by this replica's monotonic
//! clock since the Lease record last changed, never by comparing the holder's `renewTime` with
//! the local wall clock (a holder whose clock runs behind would otherwise lose a live lease,
//! and one whose clock runs ahead would keep a dead one). A candidate that first sees a Lease
//! therefore waits one full duration before taking it from another holder. Every write carries the Lease's resourceVersion, so two candidates never
//! both win. Renew at a third of the duration; a leader that cannot renew before its lease runs
//! out stops (the process exits and its replacement takes over), because another replica may
//! already be reconciling.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

/// Settings of one candidate.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
}

/// Leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API server failed.
    #[error("Lease {namespace}/{name}: {source}")]
    Api {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The client's error.
        source: kube::Error,
    },
    /// The leader could not renew in time, or another replica holds the Lease.
    #[error("lost Lease {namespace}/{name} (duration {secs}s): not renewed in time")]
    Lost {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// Lease duration.
        secs: u64,
    },
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease (acquired or renewed).
    Leading,
    /// Someone else holds a live lease.
    Following(String),
}

/// What a candidate last saw of the Lease record, and when, on its own monotonic clock.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    seen: Option<(LeaseSpec, Instant)>,
}

impl Observed {
    /// Notes `spec` as read at `now` and says whether another holder's lease may be taken: it
    /// has no holder, or the record has not changed for longer than its duration since this
    /// candidate saw it change (renewals change `renewTime`, whatever the holder's clock says).
    pub fn expired(&mut self, spec: &LeaseSpec, now: Instant) -> bool {
        if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
            return true;
        }
        let since = match &self.seen {
            Some((last, at)) if last == spec => *at,
            _ => {
                self.seen = Some((spec.clone(), now));
                now
            }
        };
        let secs = u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0);
        now.saturating_duration_since(since) > Duration::from_secs(secs)
    }
}

/// One acquire-or-renew attempt.
pub async fn try_acquire(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Observed,
) -> Result<Attempt, LeaderError> {
    let err = |source| LeaderError::Api {
        namespace: cfg.namespace.clone(),
        name: cfg.name.clone(),
        source,
    };
    let now = Timestamp::now();
    let secs = i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX);
    match api.get_opt(&cfg.name).await.map_err(err)? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                // Someone created it first: they lead.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following(String::new())),
                Err(e) => Err(err(e)),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.clone().unwrap_or_default();
            let ours = holder == cfg.identity;
            if !ours && !observed.expired(&spec, Instant::now()) {
                return Ok(Attempt::Following(holder));
            }
            let mut next = spec.clone();
            if !ours {
                next.holder_identity = Some(cfg.identity.clone());
                next.acquire_time = Some(MicroTime(now));
                next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            next.lease_duration_seconds = Some(secs);
            next.renew_time = Some(MicroTime(now));
            lease.spec = Some(next);
            // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following(holder)),
                Err(e) => Err(err(e)),
            }
        }
    }
}

/// Waits until this replica leads.
pub async fn acquire(api: &Api<Lease>, cfg: &LeaseConfig) {
    let retry = (cfg.duration / 4).max(Duration::from_millis(200));
    let mut last = None;
    let mut observed = Observed::default();
    loop {
        match try_acquire(api, cfg, &mut observed).await {
            Ok(Attempt::Leading) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
                return;
            }
            Ok(Attempt::Following(holder)) => {
                if last.as_ref() != Some(&holder) {
                    tracing::info!(lease = %cfg.name, %holder, "another replica leads; waiting");
                    last = Some(holder);
                }
            }
            Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// Renews the lease; returns when this replica must stop leading.
///
/// Renewal is due every third of the lease duration. Leadership ends when no renewal has
/// succeeded within the renew deadline, two thirds of the duration, counted from when the last
/// successful renewal was *sent* (the Lease records that moment as `renewTime`, and others count
/// its expiry from there). A request that hangs counts as failed at the deadline. So a leader
/// cut off from the API server has stopped a third of a lease before any other replica can see
/// the lease as expired and take over: two replicas never reconcile at once.
pub async fn keep(api: &Api<Lease>, cfg: &LeaseConfig) -> LeaderError {
    let every = (cfg.duration / 3).max(Duration::from_millis(100));
    let retry = (every / 4).max(Duration::from_millis(50));
    let deadline = cfg.duration * 2 / 3;
    let lost = || LeaderError::Lost {
        namespace: cfg.namespace.clone(),
        name: cfg.name.clone(),
        secs: cfg.duration.as_secs(),
    };
    // `acquire` has just written the lease.
    let mut renewed = Instant::now();
    let mut wait = every;
    let mut observed = Observed::default();
    loop {
        let give_up = renewed + deadline;
        tokio::time::sleep_until((Instant::now() + wait).min(give_up)).await;
        let sent = Instant::now();
        match tokio::time::timeout_at(give_up, try_acquire(api, cfg, &mut observed)).await {
            Ok(Ok(Attempt::Leading)) => {
                renewed = sent;
                wait = every;
            }
            Ok(Ok(Attempt::Following(holder))) => {
                tracing::error!(%holder, "lease taken by another replica");
                return lost();
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease renewal failed");
                wait = retry;
            }
            Err(_) => tracing::warn!(lease = %cfg.name, "lease renewal did not answer in time"),
        }
        if Instant::now() >= renewed + deadline {
            return lost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renew_second: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(Into::into),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(Timestamp::from_second(renew_second).unwrap())),
            ..Default::default()
        }
    }

    /// A leader whose API server stops answering (requests hang, no error comes back) steps
    /// down before its lease could expire for the others.
    #[tokio::test]
    async fn a_leader_cut_off_from_the_api_server_stops_before_its_lease_expires() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<Lease> = Api::namespaced(client, "kube-system");
        let cfg = LeaseConfig {
            namespace: "kube-system".into(),
            name: "kube-ovn-controller".into(),
            identity: "a".into(),
            duration: Duration::from_millis(900),
        };
        let start = tokio::time::Instant::now();
        let err = keep(&api, &cfg).await;
        let took = start.elapsed();
        assert!(matches!(err, LeaderError::Lost { .. }), "{err}");
        assert!(
            took >= Duration::from_millis(550) && took < Duration::from_millis(900),
            "stepped down after {took:?}"
        );
        hold.abort();
    }

    #[test]
    fn a_lease_is_free_without_holder_or_once_unchanged_for_its_duration() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut o = Observed::default();
        assert!(o.expired(&spec(None, 0, 15), t0));
        assert!(o.expired(&spec(Some(""), 0, 15), t0));
        let mut o = Observed::default();
        let held = spec(Some("a"), 100, 15);
        assert!(
            !o.expired(&held, t0),
            "first sight: a full duration to wait"
        );
        assert!(!o.expired(&held, t0 + secs(15)));
        assert!(
            o.expired(&held, t0 + secs(16)),
            "unchanged for longer than 15 s"
        );
        // A renewal seen just before: the count starts again.
        let mut o = Observed::default();
        assert!(!o.expired(&held, t0));
        assert!(!o.expired(&spec(Some("a"), 110, 15), t0 + secs(10)));
        assert!(!o.expired(&spec(Some("a"), 110, 15), t0 + secs(24)));
        assert!(o.expired(&spec(Some("a"), 110, 15), t0 + secs(26)));
    }

    /// A holder whose wall clock runs an hour behind keeps its lease while it renews: the
    /// candidate never compares `renewTime` with its own clock. One whose clock runs an hour
    /// ahead loses it one duration after it stops renewing, not an hour later.
    #[test]
    fn a_skewed_holder_clock_neither_loses_a_live_lease_nor_keeps_a_dead_one() {
        let t0 = Instant::now();
        let now_wall = Timestamp::now().as_second();
        let mut o = Observed::default();
        for k in 0..10 {
            // Renewed every 5 s, stamped an hour in the past.
            let s = spec(Some("behind"), now_wall - 3600 + 5 * k, 15);
            assert!(!o.expired(&s, t0 + Duration::from_secs(5 * k as u64)));
        }
        let mut o = Observed::default();
        let ahead = spec(Some("ahead"), now_wall + 3600, 15);
        assert!(!o.expired(&ahead, t0));
        assert!(o.expired(&ahead, t0 + Duration::from_secs(16)));
    }
}
