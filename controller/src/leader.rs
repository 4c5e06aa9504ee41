//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one of several
//! kube-ovn-controller replicas reconciles at a time.
//!
//! Acquire: take the Lease when it has no holder, is ours, or its holder has not renewed within
//! the lease duration. Every write carries the Lease's resourceVersion, so two candidates never
//! both win. Renew at a third of the duration; a leader that cannot renew before its lease runs
//! out stops (the process exits and its replacement takes over), because another replica may
//! already be reconciling.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

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

/// Whether a lease held by someone else may be taken now.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    match spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(MicroTime(t)) => *t + SignedDuration::from_secs(secs) < now,
        None => true,
    }
}

/// One acquire-or-renew attempt.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<Attempt, LeaderError> {
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
            if !ours && !expired(&spec, now) {
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
    loop {
        match try_acquire(api, cfg).await {
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
    let mut renewed = tokio::time::Instant::now();
    let mut wait = every;
    loop {
        let give_up = renewed + deadline;
        tokio::time::sleep_until((tokio::time::Instant::now() + wait).min(give_up)).await;
        let sent = tokio::time::Instant::now();
        match tokio::time::timeout_at(give_up, try_acquire(api, cfg)).await {
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
        if tokio::time::Instant::now() >= renewed + deadline {
            return lost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renewed_secs_ago: i64, duration: i32) -> (LeaseSpec, Timestamp) {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let renew = now - SignedDuration::from_secs(renewed_secs_ago);
        (
            LeaseSpec {
                holder_identity: holder.map(Into::into),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(renew)),
                ..Default::default()
            },
            now,
        )
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
    fn a_lease_is_free_without_holder_or_after_its_duration() {
        let (s, now) = spec(None, 0, 15);
        assert!(expired(&s, now));
        let (s, now) = spec(Some("a"), 5, 15);
        assert!(!expired(&s, now));
        let (s, now) = spec(Some("a"), 16, 15);
        assert!(expired(&s, now));
        let (s, now) = spec(Some(""), 0, 15);
        assert!(expired(&s, now));
    }
}
