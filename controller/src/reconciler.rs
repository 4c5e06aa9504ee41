//! The one shape every controller runs in: a `reconcile(obj, ctx) -> Result<Action, Error>` per
//! resource (in that resource's file), run by kube-runtime's `Controller` through [`run`] with
//! the shared [`error_policy`], timed and counted in the metrics. A new controller writes its
//! reconcile and calls [`run`]; it does not copy an error policy.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::Controller;
use kube::runtime::controller::{self, Action};
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::error::Error;
use crate::metrics::Outcome;
use crate::retry;

/// The error policy of every controller: requeue after the object's next growing retry delay
/// (see [`crate::retry`]).
pub fn error_policy<K>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: kube::Resource<DynamicType = ()>,
{
    let key = retry::key_of(obj.as_ref());
    tracing::warn!(object = %key, %error, "reconcile failed");
    Action::requeue(ctx.retries.next(&key, retry::ERROR_RETRY))
}

/// A reconcile in flight.
type Reconciling = std::pin::Pin<Box<dyn Future<Output = Result<Action, Error>> + Send>>;

/// `reconcile`, timed and counted under `name` in the metrics; a success starts the object's
/// retry delays over.
fn observed<K, F, Fut>(
    name: &'static str,
    reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Context>) -> Reconciling
where
    K: kube::Resource<DynamicType = ()>,
    F: Fn(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |obj, ctx| {
        // The pod controller keeps its own count: it returns Ok with a requeue when an
        // attachment failed.
        let reset = (name != "pod").then(|| retry::key_of(obj.as_ref()));
        let ctx2 = ctx.clone();
        let run = reconcile(obj, ctx);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = run.await;
            ctx2.metrics
                .observe_reconcile(name, Outcome::of(&result), started.elapsed());
            if let (Ok(_), Some(key)) = (&result, reset) {
                ctx2.retries.reset(&key);
            }
            result
        })
    }
}

/// Runs `reconcile` on every object `controller` triggers, `workers` at a time, with
/// [`error_policy`], reported under `name` in the metrics, until the process is told to stop.
pub async fn run<K, F, Fut>(
    controller: Controller<K>,
    name: &'static str,
    reconcile: F,
    ctx: Arc<Context>,
    workers: u16,
) where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    controller
        .with_config(controller::Config::default().concurrency(workers))
        .shutdown_on_signal()
        .run(observed(name, reconcile), error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// A cluster-scoped object's reconcile under its finalizer `name`: `apply` while it lives,
/// `cleanup` (then the finalizer comes off) once it is being deleted. The shape the Vpc,
/// Subnet and SecurityGroup reconcilers share.
pub async fn finalized<K>(
    ctx: &Context,
    name: &str,
    obj: Arc<K>,
    apply: impl AsyncFn(&K, &Context) -> Result<Action, Error>,
    cleanup: impl AsyncFn(&K, &Context) -> Result<Action, Error>,
) -> Result<Action, Error>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug,
{
    let api: kube::Api<K> = kube::Api::all(ctx.client.clone());
    finalized_in(&api, ctx, name, obj, apply, cleanup).await
}

/// [`finalized`] for an object of any scope, patched through `api` (for a namespaced object,
/// an `Api` of its namespace).
pub async fn finalized_in<K>(
    api: &kube::Api<K>,
    ctx: &Context,
    name: &str,
    obj: Arc<K>,
    apply: impl AsyncFn(&K, &Context) -> Result<Action, Error>,
    cleanup: impl AsyncFn(&K, &Context) -> Result<Action, Error>,
) -> Result<Action, Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + Debug,
{
    use kube::runtime::finalizer::{Event, finalizer};
    let result = finalizer(api, name, obj, |event| async {
        match event {
            Event::Apply(o) => apply(&o, ctx).await,
            Event::Cleanup(o) => cleanup(&o, ctx).await,
        }
    })
    .await;
    match result {
        Ok(action) => Ok(action),
        // Another reconcile of the same deletion removed the finalizer first and the object
        // is gone: the cleanup is done, not failed.
        Err(
            kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(ref s))
            | kube::runtime::finalizer::Error::AddFinalizer(kube::Error::Api(ref s)),
        ) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(Error::Finalizer(e.to_string())),
    }
}
