//! The status the agent writes on its EIPs and rules: `ready`, the addresses in effect and a
//! `Ready` condition, by server-side apply under [`MANAGER`].
//!
//! Only these fields are ours. The controller owns the `Validated` condition under its own
//! field manager; `conditions` is a map keyed by `type`, so each writer's apply carries only
//! its own entry and neither removes the other's. A write is skipped when the object already
//! shows what we would write, so a steady gateway makes no API calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crds::condition::{self, READY};
use crds::{
    Condition, ConditionStatus, IptablesDnatRule, IptablesEIP, IptablesFIPRule, IptablesSnatRule,
};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Map, Value, json};

use super::plan::{Plan, Verdict};

/// The field manager of every status the agent writes.
pub const MANAGER: &str = "kube-ovn-nat-gateway";

/// How many status writes are in flight at once. Measured with 3,010 objects created 32 at a
/// time on this 2-core VM: 96 in flight shortened the tail after the last create (1.6 s vs
/// 3.5 s) but starved the creating client (10.2 s vs 3.9 s to create them), so first create to
/// all Ready grew from 7.4 s to 11.8 s; the API server's CPU is the limit either way.
const PARALLEL_WRITES: usize = 32;

/// The outcome of an object: the plan's verdict combined with the apply's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Ready (in place).
    pub ready: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Detail.
    pub message: String,
}

/// Combines a verdict with the apply's result (`Err` holds the apply's error message).
pub fn outcome(gateway: &str, v: &Verdict, applied: &Result<(), String>) -> Outcome {
    match (v.planned, applied) {
        (true, Ok(())) if v.qos_problem.is_some() => {
            let (reason, message) = v.qos_problem.clone().unwrap_or_default();
            Outcome {
                ready: false,
                reason: reason.into(),
                message: format!("{message} (the address and its NAT rules are in place)"),
            }
        }
        (true, Ok(())) => Outcome {
            ready: true,
            reason: "Applied".into(),
            message: format!("in place on VpcNatGateway {gateway}"),
        },
        (true, Err(e)) => Outcome {
            ready: false,
            reason: "ApplyFailed".into(),
            message: format!("VpcNatGateway {gateway}: {e}"),
        },
        (false, _) => Outcome {
            ready: false,
            reason: v.reason.into(),
            message: v.message.clone(),
        },
    }
}

fn ready_condition(o: &Outcome, generation: Option<i64>, current: &[Condition]) -> Condition {
    let status = if o.ready {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let mut c = Condition::new(READY, status, &o.reason, &o.message, generation);
    let old = condition::find_condition(current, READY);
    c.last_transition_time = match old {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => None,
    }
    .or_else(|| Some(Time(k8s_openapi::jiff::Timestamp::now())));
    c
}

/// Whether `current` already holds the condition `want` (transition time aside).
fn same_condition(current: &[Condition], want: &Condition) -> bool {
    condition::find_condition(current, &want.type_).is_some_and(|c| {
        c.status == want.status
            && c.reason == want.reason
            && c.message == want.message
            && c.observed_generation == want.observed_generation
    })
}

/// The status fields of an EIP (besides conditions).
pub fn eip_fields(v: &Verdict, o: &Outcome) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ready".into(), Value::Bool(o.ready));
    if let Some(ip) = v.v4ip.filter(|_| o.ready) {
        m.insert("ip".into(), Value::String(ip.to_string()));
    }
    if o.ready && !v.nat.is_empty() {
        m.insert("nat".into(), Value::String(v.nat.join(",")));
    }
    if let Some(q) = v.qos.as_ref().filter(|_| o.ready) {
        m.insert("qosPolicy".into(), Value::String(q.clone()));
    }
    m
}

/// What a rule's spec says in effect, for its status.
#[derive(Debug, Default)]
pub struct RuleEffect {
    /// `internalIp`.
    pub internal_ip: Option<String>,
    /// `internalCIDR`.
    pub internal_cidr: Option<String>,
    /// `protocol`, `internalPort`, `externalPort`.
    pub ports: Option<(String, String, String)>,
}

/// The status fields of a rule (besides conditions).
pub fn rule_fields(
    gateway: &str,
    v: &Verdict,
    o: &Outcome,
    effect: RuleEffect,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ready".into(), Value::Bool(o.ready));
    if v.ours {
        m.insert("natGwDp".into(), Value::String(gateway.into()));
    }
    if let Some(ip) = v.v4ip {
        m.insert("v4ip".into(), Value::String(ip.to_string()));
    }
    if o.ready {
        if let Some(ip) = effect.internal_ip {
            m.insert("internalIp".into(), Value::String(ip));
        }
        if let Some(c) = effect.internal_cidr {
            m.insert("internalCIDR".into(), Value::String(c));
        }
        if let Some((proto, int, ext)) = effect.ports {
            m.insert("protocol".into(), Value::String(proto));
            m.insert("internalPort".into(), Value::String(int));
            m.insert("externalPort".into(), Value::String(ext));
        }
    }
    m
}

/// One pending status write.
struct Write {
    kind: &'static str,
    name: String,
    body: Value,
    /// The object's resourceVersion the write was decided on, and what it sets (without the
    /// transition time): remembered in [`Memo`] once written.
    seen: (Option<String>, Value),
}

/// What the agent last wrote on each object, and on which resourceVersion it decided so.
///
/// Our own write reaches the watch cache a moment later; a round in between sees the old
/// status and would write the same again (measured: with 3,000 objects, most writes were such
/// repeats). An object still at the resourceVersion a write was decided on, asking for the same
/// status, is skipped; any other change (someone else's write included) is compared afresh.
#[derive(Debug, Default)]
pub struct Memo(HashMap<(&'static str, String), (Option<String>, Value)>);

/// Builds the write for `obj` unless its status already shows `fields` and the condition.
fn write_for<K>(
    memo: &Memo,
    obj: &K,
    current_status: Option<Value>,
    current_conditions: &[Condition],
    mut fields: Map<String, Value>,
    o: &Outcome,
) -> Option<Write>
where
    K: Resource<DynamicType = ()>,
{
    let cond = ready_condition(o, obj.meta().generation, current_conditions);
    let name = obj.meta().name.clone().unwrap_or_default();
    let rv = obj.meta().resource_version.clone();
    let mut signature = fields.clone();
    signature.insert(
        "ready-condition".into(),
        json!([
            cond.status,
            cond.reason,
            cond.message,
            cond.observed_generation
        ]),
    );
    let signature = Value::Object(signature);
    let kind = static_kind::<K>();
    if memo
        .0
        .get(&(kind, name.clone()))
        .is_some_and(|(seen_rv, sig)| *seen_rv == rv && *sig == signature)
    {
        return None;
    }
    let unchanged = same_condition(current_conditions, &cond)
        && current_status.is_some_and(|s| {
            // Only our fields are compared; `false`/empty fields are omitted by the types.
            fields.iter().all(|(k, want)| match s.get(k) {
                Some(have) => have == want,
                None => matches!(want, Value::Bool(false)) || want == "",
            }) && [
                "ip",
                "nat",
                "qosPolicy",
                "v4ip",
                "internalIp",
                "internalCIDR",
                "protocol",
            ]
            .iter()
            .all(|k| fields.contains_key(*k) || s.get(*k).is_none())
        });
    if unchanged {
        return None;
    }
    fields.insert("conditions".into(), json!([cond]));
    Some(Write {
        kind,
        name,
        body: json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": fields,
        }),
        seen: (rv, signature),
    })
}

fn static_kind<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "IptablesEIP" => "IptablesEIP",
        "IptablesFIPRule" => "IptablesFIPRule",
        "IptablesSnatRule" => "IptablesSnatRule",
        _ => "IptablesDnatRule",
    }
}

/// The objects the statuses are written on (the snapshot the plan was made from).
#[derive(Debug, Default)]
pub struct Objects<'a> {
    /// EIPs.
    pub eips: &'a [Arc<IptablesEIP>],
    /// FIPs.
    pub fips: &'a [Arc<IptablesFIPRule>],
    /// SNATs.
    pub snats: &'a [Arc<IptablesSnatRule>],
    /// DNATs.
    pub dnats: &'a [Arc<IptablesDnatRule>],
}

fn status_value<S: serde::Serialize>(s: &Option<S>) -> Option<Value> {
    s.as_ref().and_then(|s| serde_json::to_value(s).ok())
}

/// Every status write the plan and the apply's result call for (none for objects that already
/// show it).
fn writes(
    memo: &Memo,
    gateway: &str,
    plan: &Plan,
    applied: &Result<(), String>,
    objs: &Objects<'_>,
) -> Vec<Write> {
    let mut out = Vec::new();
    for eip in objs.eips {
        let Some(v) = plan.eips.get(&eip.name_any()) else {
            continue;
        };
        let o = outcome(gateway, v, applied);
        let conds = eip
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        out.extend(write_for(
            memo,
            eip.as_ref(),
            status_value(&eip.status),
            conds,
            eip_fields(v, &o),
            &o,
        ));
    }
    for fip in objs.fips {
        let Some(v) = plan.fips.get(&fip.name_any()) else {
            continue;
        };
        let o = outcome(gateway, v, applied);
        let conds = fip
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let effect = RuleEffect {
            internal_ip: Some(fip.spec.internal_ip.clone()),
            ..Default::default()
        };
        out.extend(write_for(
            memo,
            fip.as_ref(),
            status_value(&fip.status),
            conds,
            rule_fields(gateway, v, &o, effect),
            &o,
        ));
    }
    for snat in objs.snats {
        let Some(v) = plan.snats.get(&snat.name_any()) else {
            continue;
        };
        let o = outcome(gateway, v, applied);
        let conds = snat
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let effect = RuleEffect {
            internal_cidr: Some(snat.spec.internal_cidr.clone()),
            ..Default::default()
        };
        out.extend(write_for(
            memo,
            snat.as_ref(),
            status_value(&snat.status),
            conds,
            rule_fields(gateway, v, &o, effect),
            &o,
        ));
    }
    for dnat in objs.dnats {
        let Some(v) = plan.dnats.get(&dnat.name_any()) else {
            continue;
        };
        let o = outcome(gateway, v, applied);
        let conds = dnat
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let proto = match dnat.spec.protocol.unwrap_or_default() {
            crds::iptables::NatProtocol::Tcp => "tcp",
            crds::iptables::NatProtocol::Udp => "udp",
        };
        let effect = RuleEffect {
            internal_ip: Some(dnat.spec.internal_ip.clone()),
            ports: Some((
                proto.into(),
                dnat.spec.internal_port.clone(),
                dnat.spec.external_port.clone(),
            )),
            ..Default::default()
        };
        out.extend(write_for(
            memo,
            dnat.as_ref(),
            status_value(&dnat.status),
            conds,
            rule_fields(gateway, v, &o, effect),
            &o,
        ));
    }
    out
}

/// Writes every status that differs; returns how many were written and the failures (object
/// and error), which the next round retries.
pub async fn write_all(
    memo: &mut Memo,
    client: &Client,
    gateway: &str,
    plan: &Plan,
    applied: &Result<(), String>,
    objs: &Objects<'_>,
) -> (usize, Vec<String>) {
    let pending = writes(memo, gateway, plan, applied, objs);
    let params = PatchParams::apply(MANAGER).force();
    let results: Vec<Result<_, String>> = futures::stream::iter(pending)
        .map(|w| {
            let client = client.clone();
            let params = params.clone();
            async move {
                let patch = Patch::Apply(&w.body);
                let r = match w.kind {
                    "IptablesEIP" => Api::<IptablesEIP>::all(client)
                        .patch_status(&w.name, &params, &patch)
                        .await
                        .map(drop),
                    "IptablesFIPRule" => Api::<IptablesFIPRule>::all(client)
                        .patch_status(&w.name, &params, &patch)
                        .await
                        .map(drop),
                    "IptablesSnatRule" => Api::<IptablesSnatRule>::all(client)
                        .patch_status(&w.name, &params, &patch)
                        .await
                        .map(drop),
                    _ => Api::<IptablesDnatRule>::all(client)
                        .patch_status(&w.name, &params, &patch)
                        .await
                        .map(drop),
                };
                r.map(|()| ((w.kind, w.name.clone()), w.seen))
                    .map_err(|e| format!("{} {}: {e}", w.kind, w.name))
            }
        })
        .buffer_unordered(PARALLEL_WRITES)
        .collect()
        .await;
    // Forget objects that are gone.
    let live: HashSet<(&'static str, String)> = objs
        .eips
        .iter()
        .map(|o| ("IptablesEIP", o.name_any()))
        .chain(objs.fips.iter().map(|o| ("IptablesFIPRule", o.name_any())))
        .chain(
            objs.snats
                .iter()
                .map(|o| ("IptablesSnatRule", o.name_any())),
        )
        .chain(
            objs.dnats
                .iter()
                .map(|o| ("IptablesDnatRule", o.name_any())),
        )
        .collect();
    memo.0.retain(|k, _| live.contains(k));
    let mut written = 0;
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok((key, seen)) => {
                written += 1;
                memo.0.insert(key, seen);
            }
            // An object deleted meanwhile has no status to write: not a failure.
            Err(e) if e.contains("NotFound") || e.contains("not found") => {}
            Err(e) => failed.push(e),
        }
    }
    (written, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::natgw::plan::{plan, tests as fixtures};

    #[test]
    fn statuses_say_ready_only_after_an_apply_and_are_skipped_when_shown() {
        let mut i = fixtures::inputs();
        i.eips = vec![fixtures::eip("e1", "192.168.50.10", 1)];
        i.dnats = vec![fixtures::dnat("d1", "e1", 80, "10.0.1.8", 8080, 2)];
        i.fips = vec![fixtures::fip("lost", "nope", "10.0.1.9", 3)];
        let p = plan(&i);
        let objs = Objects {
            eips: &i.eips,
            fips: &i.fips,
            snats: &[],
            dnats: &i.dnats,
        };
        let w = writes(&Memo::default(), "gw1", &p, &Ok(()), &objs);
        assert_eq!(w.len(), 3);
        let eip = &w.iter().find(|w| w.kind == "IptablesEIP").unwrap().body["status"];
        assert_eq!(eip["ready"], true);
        assert_eq!(eip["ip"], "192.168.50.10");
        assert_eq!(eip["nat"], "dnat");
        assert_eq!(eip["conditions"][0]["type"], "Ready");
        assert_eq!(eip["conditions"][0]["status"], "True");
        let d = &w
            .iter()
            .find(|w| w.kind == "IptablesDnatRule")
            .unwrap()
            .body["status"];
        assert_eq!(d["natGwDp"], "gw1");
        assert_eq!(
            (d["protocol"].as_str(), d["externalPort"].as_str()),
            (Some("tcp"), Some("80"))
        );
        let lost = &w.iter().find(|w| w.kind == "IptablesFIPRule").unwrap().body["status"];
        assert_eq!(lost["ready"], false);
        assert!(lost.get("natGwDp").is_none());
        assert_eq!(lost["conditions"][0]["reason"], "EipNotFound");

        // A failed apply: nothing planned is Ready.
        let w = writes(&Memo::default(), "gw1", &p, &Err("boom".into()), &objs);
        let eip = &w.iter().find(|w| w.kind == "IptablesEIP").unwrap().body["status"];
        assert_eq!(eip["ready"], false);
        assert_eq!(eip["conditions"][0]["reason"], "ApplyFailed");

        // A stale store (our write not seen yet) causes no second write; a new
        // resourceVersion (someone else wrote) is compared afresh.
        let mut memo = Memo::default();
        for w in writes(&Memo::default(), "gw1", &p, &Ok(()), &objs) {
            memo.0.insert((w.kind, w.name), w.seen);
        }
        assert_eq!(writes(&memo, "gw1", &p, &Ok(()), &objs).len(), 0);
        let mut moved = (*i.eips[0]).clone();
        moved.metadata.resource_version = Some("999".into());
        let moved = [Arc::new(moved)];
        let other = Objects {
            eips: &moved,
            fips: &[],
            snats: &[],
            dnats: &[],
        };
        assert_eq!(writes(&memo, "gw1", &p, &Ok(()), &other).len(), 1);

        // Objects that already show the status get no write.
        let shown = |w: &[Write], kind: &str| -> Value {
            w.iter().find(|x| x.kind == kind).unwrap().body["status"].clone()
        };
        let first = writes(&Memo::default(), "gw1", &p, &Ok(()), &objs);
        let mut e = (*i.eips[0]).clone();
        e.status = serde_json::from_value(shown(&first, "IptablesEIP")).ok();
        let mut d = (*i.dnats[0]).clone();
        d.status = serde_json::from_value(shown(&first, "IptablesDnatRule")).ok();
        let eips = [Arc::new(e)];
        let dnats = [Arc::new(d)];
        let again = Objects {
            eips: &eips,
            fips: &[],
            snats: &[],
            dnats: &dnats,
        };
        assert_eq!(
            writes(&Memo::default(), "gw1", &p, &Ok(()), &again).len(),
            0
        );
    }
}
