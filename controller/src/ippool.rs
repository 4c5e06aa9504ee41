//! `IPPool` → a named pool of its Subnet in the allocator. A pod whose `ip_pool` annotation names
//! the pool draws its address from it, and other dynamic requests (except the default pool of
//! a namespace, below) never take a pool address
//! (the allocator's rules, see `ipam`). Invalid pools, pools whose Subnet is missing and pools
//! the allocator refuses (outside the Subnet, overlapping another pool) say so in their `Ready`
//! condition and a Warning Event, and change nothing. Deleting a pool returns its addresses to
//! the Subnet; allocations made from it stay with their pods.
//!
//! As upstream, `spec.namespaces` makes the pool the default of those namespaces' pods attached
//! to its Subnet (those without an `ip_pool` or static address of their own).

use std::sync::Arc;
use std::time::Duration;

use crds::{IPPool, Validate};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::context::Context;
use crate::error::Error;
use crate::status;

/// The namespaces of the pools in the allocator: a pod of one of them, attached to the pool's
/// Subnet without an `ip_pool` or static address of its own, draws from the pool
/// (upstream's `spec.namespaces`). Kept by the reconcile (and seeded at start).
#[derive(Debug, Default)]
pub struct Namespaces(std::sync::Mutex<std::collections::BTreeMap<String, (String, Vec<String>)>>);

impl Namespaces {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, (String, Vec<String>)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pool `name` of `subnet` serves `namespaces` (none: only pods that name it).
    pub fn set(&self, name: &str, subnet: &str, namespaces: &[String]) {
        self.lock()
            .insert(name.to_owned(), (subnet.to_owned(), namespaces.to_vec()));
    }

    /// Pool `name` is no longer in the allocator.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// The pool of `subnet` that serves `namespace` (the first by name when several do).
    pub fn pool_for(&self, subnet: &str, namespace: &str) -> Option<String> {
        self.lock()
            .iter()
            .find(|(_, (s, namespaces))| s == subnet && namespaces.iter().any(|n| n == namespace))
            .map(|(name, _)| name.clone())
    }
}

/// Finalizer on IPPools: the pool leaves the allocator before the object goes.
pub const FINALIZER: &str = "kubeovn.io/ippool";

/// The status fields besides the conditions the controller writes.
pub(crate) const STATUS_FIELDS: [&str; 4] = [
    "v4AvailableIPs",
    "v4UsingIPs",
    "v6AvailableIPs",
    "v6UsingIPs",
];

/// Why the pool cannot be applied now, as (reason, message, retry): `None` when it can.
pub fn problem(pool: &IPPool, ctx: &Context) -> Option<(&'static str, String, bool)> {
    let name = pool.name_any();
    if let Err(e) = pool.validate() {
        return Some(("InvalidSpec", format!("IPPool {name}: {e}"), false));
    }
    let subnet = &pool.spec.subnet;
    let subnets = ctx.subnets.state();
    let Some(owner) = subnets.iter().find(|s| &s.name_any() == subnet) else {
        return Some((
            "SubnetNotFound",
            format!("IPPool {name}: Subnet {subnet} does not exist"),
            true,
        ));
    };
    if let Ok(nets) = owner.spec.networks()
        && let Some(entry) = outside(&pool.spec.ips, &nets)
    {
        return Some((
            "OutsideSubnet",
            format!(
                "IPPool {name}: {entry:?} is not inside Subnet {subnet} ({})",
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            false,
        ));
    }
    if !ctx.ipam.has_subnet(subnet) {
        return Some((
            "SubnetNotReady",
            format!("IPPool {name}: Subnet {subnet} is not ready (see its conditions)"),
            true,
        ));
    }
    None
}

/// The first entry of `ips` (valid ones: checked by `validate` first) not wholly inside one of
/// `nets`.
fn outside<'a>(ips: &'a [String], nets: &[ipnet::IpNet]) -> Option<&'a str> {
    ips.iter().map(String::as_str).find(|entry| {
        let bounds = if entry.contains('/') {
            crds::validation::cidr("", entry).map(|n| (n.network(), n.broadcast()))
        } else {
            crds::validation::ip_or_range("", entry)
        };
        bounds.is_ok_and(|(first, last)| {
            !nets.iter().any(|n| n.contains(&first) && n.contains(&last))
        })
    })
}

/// Reconciles one IPPool.
pub async fn reconcile(pool: Arc<IPPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::reconciler::finalized(&ctx, FINALIZER, pool, apply, cleanup).await
}

async fn report(
    pool: &IPPool,
    ctx: &Context,
    verdict: status::Verdict<'_>,
    extra: Vec<(&str, serde_json::Value)>,
) -> Result<(), Error> {
    let current = pool
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    status::report_ready(ctx, pool, &current, verdict, extra, &STATUS_FIELDS).await
}

async fn apply(pool: &IPPool, ctx: &Context) -> Result<Action, Error> {
    let name = pool.name_any();
    if let Some((reason, msg, retry)) = problem(pool, ctx) {
        ctx.pool_namespaces.remove(&name);
        tracing::warn!(ippool = %name, %reason, %msg, "IP pool not applied");
        report(
            pool,
            ctx,
            status::Verdict {
                ready: false,
                reason,
                msg,
            },
            Vec::new(),
        )
        .await?;
        // A missing or unready Subnet comes; an invalid spec waits for an edit.
        return Ok(if retry {
            Action::requeue(Duration::from_secs(10))
        } else {
            Action::await_change()
        });
    }
    let subnet = &pool.spec.subnet;
    let spec = ipam::PoolSpec::new(&name, pool.spec.ips.iter().cloned());
    if let Err(e) = ctx.ipam.set_pool(subnet, spec) {
        ctx.pool_namespaces.remove(&name);
        let msg = format!("IPPool {name}: {e}");
        tracing::warn!(ippool = %name, %msg, "IP pool refused");
        report(
            pool,
            ctx,
            status::Verdict {
                ready: false,
                reason: "IPAMRefused",
                msg,
            },
            Vec::new(),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    ctx.pool_namespaces
        .set(&name, subnet, &pool.spec.namespaces);
    let counters = ctx.ipam.pool_counters(subnet, &name).unwrap_or_default();
    let msg = if pool.spec.namespaces.is_empty() {
        format!("pods draw from this pool with the annotation ip_pool: {name}")
    } else {
        format!(
            "pods draw from this pool with the annotation ip_pool: {name}, and pods of {} \
             attached to Subnet {subnet} by default",
            pool.spec.namespaces.join(", ")
        )
    };
    let extra = vec![
        (
            "v4AvailableIPs",
            serde_json::json!(counters.v4_available as f64),
        ),
        ("v4UsingIPs", serde_json::json!(counters.v4_using as f64)),
        (
            "v6AvailableIPs",
            serde_json::json!(counters.v6_available as f64),
        ),
        ("v6UsingIPs", serde_json::json!(counters.v6_using as f64)),
    ];
    report(
        pool,
        ctx,
        status::Verdict {
            ready: true,
            reason: "Applied",
            msg,
        },
        extra,
    )
    .await?;
    // The counters move with every allocation: refreshed now and then.
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn cleanup(pool: &IPPool, ctx: &Context) -> Result<Action, Error> {
    ctx.pool_namespaces.remove(&pool.name_any());
    // Unknown subnet or pool: nothing of it is in the allocator.
    if let Err(e) = ctx.ipam.remove_pool(&pool.spec.subnet, &pool.name_any()) {
        tracing::debug!(ippool = %pool.name_any(), error = %e, "IP pool was not in the allocator");
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_outside_the_subnet_is_named() {
        let nets = vec![
            "10.0.0.0/24".parse().unwrap(),
            "fd00::/120".parse().unwrap(),
        ];
        let ips = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            outside(
                &ips(&["10.0.0.5", "10.0.0.8..10.0.0.9", "10.0.0.128/25", "fd00::5"]),
                &nets
            ),
            None
        );
        assert_eq!(
            outside(&ips(&["10.0.0.5", "10.0.1.5"]), &nets),
            Some("10.0.1.5")
        );
        assert_eq!(
            outside(&ips(&["10.0.0.250..10.0.1.2"]), &nets),
            Some("10.0.0.250..10.0.1.2")
        );
        assert_eq!(outside(&ips(&["10.0.0.0/23"]), &nets), Some("10.0.0.0/23"));
    }

    #[test]
    fn the_status_fields_written_are_declared_by_the_schema() {
        let declared = status::declared_status_fields::<IPPool>();
        for field in STATUS_FIELDS.iter().chain(&["conditions"]) {
            assert!(declared.iter().any(|d| d == field), "{field} not declared");
        }
    }
}
