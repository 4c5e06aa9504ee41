//! NetworkAttachmentDefinitions: every kube-ovn NAD is checked when it appears or changes, so a
//! broken one is reported on the NAD itself (an Event and a log line naming it) before any pod
//! uses it. Nothing is written to OVN for a NAD: the Subnet that binds its provider is what
//! creates a network.
//!
//! A NAD whose provider belongs to a Subnet that does not admit the NAD's namespace (the Subnet's
//! or its Vpc's `namespaces`, [`crate::tenancy`]) is refused: a `ProviderNotAdmitted` Event on
//! the NAD, and every pod that uses it gets `NamespaceNotAdmitted` and no attachment.

use std::sync::Arc;

use crds::{NadClass, NetworkAttachmentDefinition};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::error::Error;

/// The Event reason of an invalid NAD.
pub const INVALID: &str = "InvalidNetworkAttachmentDefinition";

/// The (Normal) Event reason of a valid NAD whose provider no Subnet binds yet.
pub const PROVIDER_NOT_BOUND: &str = "ProviderNotBound";

/// What a NAD's check found: `Ok(None)` for a NAD that is not ours, else whether a Subnet binds
/// its provider and a sentence saying so; `Err` carries the Event reason and message.
pub fn check(
    ctx: &Context,
    nad: &NetworkAttachmentDefinition,
) -> Result<Option<(bool, String)>, (&'static str, String)> {
    let provider = match nad.classify().map_err(|e| (INVALID, e.to_string()))? {
        NadClass::NotOurs => return Ok(None),
        NadClass::Attachment { provider, .. } | NadClass::IpamOnly { provider, .. } => provider,
    };
    let subnets = ctx.subnets.state();
    crate::tenancy::check_nad(
        &subnets,
        &ctx.vpcs.state(),
        &nad.namespace().unwrap_or_default(),
        &provider,
    )
    .map_err(|msg| (crate::tenancy::PROVIDER_NOT_ADMITTED, msg))?;
    let bound = subnets
        .iter()
        .any(|s| s.spec.provider.as_deref() == Some(provider.as_str()));
    Ok(Some(if bound {
        (true, format!("provider {provider} is bound to a Subnet"))
    } else {
        (
            false,
            format!(
                "provider {provider} is not bound to any Subnet yet: pods using it wait until \
             a Subnet sets spec.provider: {provider}"
            ),
        )
    }))
}

/// Reconciles one NAD: a Warning Event for a broken kube-ovn NAD, nothing otherwise.
pub async fn reconcile(
    nad: Arc<NetworkAttachmentDefinition>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let who = format!("{}/{}", nad.namespace().unwrap_or_default(), nad.name_any());
    match check(&ctx, &nad) {
        Ok(None) => {}
        Ok(Some((bound, state))) => {
            tracing::debug!(nad = %who, %state, "NetworkAttachmentDefinition checked");
            if !bound {
                ctx.event(&nad.object_ref(&()), false, PROVIDER_NOT_BOUND, state)
                    .await;
            }
        }
        Err((reason, msg)) => {
            tracing::warn!(nad = %who, %reason, %msg, "NetworkAttachmentDefinition refused");
            ctx.event(&nad.object_ref(&()), true, reason, msg).await;
        }
    }
    Ok(Action::await_change())
}

/// The NADs whose provider is one of `providers`: what a Subnet or Vpc change re-checks (its
/// `namespaces` decides whether those NADs are admitted).
pub fn with_providers(
    nads: &kube::runtime::reflector::Store<NetworkAttachmentDefinition>,
    providers: &[String],
) -> Vec<kube::runtime::reflector::ObjectRef<NetworkAttachmentDefinition>> {
    if providers.is_empty() {
        return Vec::new();
    }
    nads.state()
        .iter()
        .filter(|n| {
            n.classify()
                .ok()
                .and_then(|c| c.provider().map(str::to_owned))
                .is_some_and(|p| providers.contains(&p))
        })
        .map(|n| kube::runtime::reflector::ObjectRef::from(n.as_ref()))
        .collect()
}
