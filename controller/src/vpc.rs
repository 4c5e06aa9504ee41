//! `Vpc` → OVN logical router `<vpc>`. Deleting a Vpc that still has subnets is refused (the
//! finalizer stays and a condition says why) until its subnets are gone.

use std::sync::Arc;
use std::time::Duration;

use crds::Vpc;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::context::Context;
use crate::error::Error;
use crate::{nb, status};

/// Finalizer on Vpcs: the router is removed before the object goes.
pub const FINALIZER: &str = "kubeovn.io/vpc";

/// The status fields besides the conditions the controller writes: a report that does not
/// refresh them leaves them as they were.
pub(crate) const STATUS_FIELDS: [&str; 2] = ["router", "subnets"];

/// Names of the Subnets that belong to `vpc`.
pub fn subnets_of(ctx: &Context, vpc: &str) -> Vec<String> {
    let mut names: Vec<String> = ctx
        .subnets
        .state()
        .iter()
        .filter(|s| s.spec.vpc.as_deref() == Some(vpc))
        .map(|s| s.name_any())
        .collect();
    names.sort();
    names
}

/// Reconciles one Vpc.
pub async fn reconcile(vpc: Arc<Vpc>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::reconciler::finalized(&ctx, FINALIZER, vpc, apply, cleanup).await
}

/// Sets the Vpc's Ready condition (with `extra` status fields) and, when it is not ready,
/// publishes the same message as a Warning Event.
async fn report(
    vpc: &Vpc,
    ctx: &Context,
    ready: bool,
    reason: &str,
    msg: String,
    extra: Vec<(&str, serde_json::Value)>,
) -> Result<(), Error> {
    let current = vpc
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let verdict = status::Verdict { ready, reason, msg };
    status::report_ready(ctx, vpc, &current, verdict, extra, &STATUS_FIELDS).await
}

async fn apply(vpc: &Vpc, ctx: &Context) -> Result<Action, Error> {
    let name = vpc.name_any();
    nb::ensure_router(&ctx.nb, &name).await?;
    match nb::routes::plan(&vpc.spec.static_routes, &vpc.spec.policy_routes) {
        Ok((routes, policies)) => nb::routes::sync(&ctx.nb, &name, &routes, &policies).await?,
        Err(msg) => {
            // Invalid routes change nothing on the router: the condition and an Event say why.
            let msg = format!("Vpc {name}: {msg}");
            report(vpc, ctx, false, "InvalidRoutes", msg, Vec::new()).await?;
            return Ok(Action::requeue(Duration::from_secs(300)));
        }
    }
    let fields = vec![
        ("router", serde_json::json!(name)),
        ("subnets", serde_json::json!(subnets_of(ctx, &name))),
    ];
    report(
        vpc,
        ctx,
        true,
        "RouterReady",
        format!("logical router {name} exists"),
        fields,
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn cleanup(vpc: &Vpc, ctx: &Context) -> Result<Action, Error> {
    let name = vpc.name_any();
    let subnets = subnets_of(ctx, &name);
    if !subnets.is_empty() {
        let msg = format!("Vpc {name} still has subnets {subnets:?}; delete them first");
        report(vpc, ctx, false, "DeletionBlocked", msg.clone(), Vec::new()).await?;
        return Err(Error::NotReady(msg));
    }
    nb::delete_router(&ctx.nb, &name).await?;
    Ok(Action::await_change())
}
