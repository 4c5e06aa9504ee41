//! NetworkAttachmentDefinitions: every kube-ovn NAD is checked when it appears or changes, so a
//! broken one is reported on the NAD itself (an Event and a log line naming it) before any pod
//! uses it. Nothing is written to OVN for a NAD: the Subnet that binds its provider is what
//! creates a network.

use std::sync::Arc;

use crds::{NadClass, NetworkAttachmentDefinition};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::error::Error;

/// What a NAD's check found: `Ok(None)` for a NAD that is not ours.
pub fn check(ctx: &Context, nad: &NetworkAttachmentDefinition) -> Result<Option<String>, String> {
    let provider = match nad.classify().map_err(|e| e.to_string())? {
        NadClass::NotOurs => return Ok(None),
        NadClass::Attachment { provider, .. } | NadClass::IpamOnly { provider, .. } => provider,
    };
    let bound = ctx
        .subnets
        .state()
        .iter()
        .any(|s| s.spec.provider.as_deref() == Some(provider.as_str()));
    Ok(Some(if bound {
        format!("provider {provider} is bound to a Subnet")
    } else {
        format!("provider {provider} is not bound to any Subnet yet: pods using it wait")
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
        Ok(Some(state)) => {
            tracing::debug!(nad = %who, %state, "NetworkAttachmentDefinition checked")
        }
        Err(msg) => {
            tracing::warn!(nad = %who, %msg, "invalid NetworkAttachmentDefinition");
            ctx.event(
                &nad.object_ref(&()),
                true,
                "InvalidNetworkAttachmentDefinition",
                msg,
            )
            .await;
        }
    }
    Ok(Action::await_change())
}
