//! `VpcNatGateway`: the spec is checked against the cluster (its Vpc and Subnet exist, the
//! Subnet belongs to the Vpc, `lanIp` is a usable address of the Subnet) and the result is
//! written as the `Validated` condition. This version does not run NAT gateway pods yet, so
//! `Ready` is False with reason `NotImplemented` and a Warning Event says so once per
//! generation: a user who applies the manual's example sees why no gateway appears instead of
//! silence.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crds::condition::{READY, VALIDATED, set_condition};
use crds::{Validate, VpcNatGateway};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::context::Context;
use crate::error::Error;
use crate::status;

/// Reason of the `Ready` condition while gateways are not realised.
pub const NOT_IMPLEMENTED: &str = "NotImplemented";

/// What is wrong with `gw` given the cluster's Vpcs and Subnets (`None`: nothing).
pub fn problem(gw: &VpcNatGateway, ctx: &Context) -> Option<(String, String)> {
    if let Err(e) = gw.validate() {
        return Some(("InvalidSpec".into(), e.to_string()));
    }
    let spec = &gw.spec;
    if !ctx.vpcs.state().iter().any(|v| v.name_any() == spec.vpc) {
        return Some((
            "VpcNotFound".into(),
            format!("Vpc {} does not exist", spec.vpc),
        ));
    }
    let subnets = ctx.subnets.state();
    let Some(subnet) = subnets.iter().find(|s| s.name_any() == spec.subnet) else {
        return Some((
            "SubnetNotFound".into(),
            format!("Subnet {} does not exist", spec.subnet),
        ));
    };
    if subnet.spec.vpc.as_deref() != Some(spec.vpc.as_str()) {
        return Some((
            "SubnetNotInVpc".into(),
            format!(
                "Subnet {} belongs to Vpc {}, not {}",
                spec.subnet,
                subnet.spec.vpc.as_deref().unwrap_or("(none)"),
                spec.vpc
            ),
        ));
    }
    if let Some(lan) = &spec.lan_ip {
        let ip: IpAddr = lan.parse().ok()?;
        let nets = subnet.spec.networks().ok()?;
        let Some(net) = nets.iter().find(|n| n.contains(&ip)) else {
            return Some((
                "InvalidLanIp".into(),
                format!(
                    "spec.lanIp {lan} is outside Subnet {} ({})",
                    spec.subnet,
                    subnet.spec.cidr.as_deref().unwrap_or_default()
                ),
            ));
        };
        let gateways = subnet.spec.gateways().unwrap_or_default();
        if ip == net.network() || (ip.is_ipv4() && ip == net.broadcast()) || gateways.contains(&ip)
        {
            return Some((
                "InvalidLanIp".into(),
                format!(
                    "spec.lanIp {lan} is the network, broadcast or gateway address of Subnet {}",
                    spec.subnet
                ),
            ));
        }
    }
    None
}

/// Reconciles one VpcNatGateway: conditions (and an Event when they change).
pub async fn reconcile(gw: Arc<VpcNatGateway>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = gw.name_any();
    let generation = gw.meta().generation;
    let mut conditions = gw
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let (validated, ready, reason, msg) = match problem(&gw, &ctx) {
        Some((reason, msg)) => (false, false, reason, format!("VpcNatGateway {name}: {msg}")),
        None => (
            true,
            false,
            NOT_IMPLEMENTED.to_owned(),
            format!(
                "VpcNatGateway {name}: the spec is valid, but this version of kube-ovn (attached \
                 mode) does not run VPC NAT gateways yet; no gateway pod is created"
            ),
        ),
    };
    let validated_reason = if validated {
        "Validated"
    } else {
        reason.as_str()
    };
    let validated_msg = if validated {
        "spec is valid".to_owned()
    } else {
        msg.clone()
    };
    let mut changed = set_condition(
        &mut conditions,
        status::condition(
            VALIDATED,
            validated,
            validated_reason,
            validated_msg,
            generation,
        ),
        status::now(),
    );
    changed |= set_condition(
        &mut conditions,
        status::condition(READY, ready, &reason, msg.clone(), generation),
        status::now(),
    );
    if changed {
        let api: Api<VpcNatGateway> = Api::all(ctx.client.clone());
        status::apply(
            &api,
            gw.as_ref(),
            [("conditions", serde_json::json!(conditions))],
            &[],
        )
        .await?;
        tracing::warn!(gateway = %name, %reason, %msg, "VpcNatGateway not realised");
        ctx.event(&gw.object_ref(&()), true, &reason, msg).await;
    }
    // Level-triggered: a Vpc or Subnet appearing later changes the answer.
    Ok(Action::requeue(Duration::from_secs(60)))
}
