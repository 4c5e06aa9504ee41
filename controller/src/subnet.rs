//! `Subnet` → logical switch `<subnet>` with the Subnet's ACLs (`acls`, `private` and
//! `allowSubnets`, see [`nb::subnet_acl`]), router port pair to its VPC, IPAM registration,
//! status counters and conditions. Invalid or conflicting subnets create nothing: a condition
//! and an Event say why.

use std::sync::Arc;
use std::time::Duration;

use crds::condition::{READY, VALIDATED, set_condition};
use crds::{IP, Subnet, Validate};
use ipnet::IpNet;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::context::Context;
use crate::error::Error;
use crate::{nb, status};

/// Finalizer on Subnets: the switch and IPAM state go before the object.
pub const FINALIZER: &str = "kubeovn.io/subnet";

/// Reconciles one Subnet.
pub async fn reconcile(subnet: Arc<Subnet>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::reconciler::finalized(&ctx, FINALIZER, subnet, apply, cleanup).await
}

/// Everything wrong with `subnet` that stops it from being realised, given the other subnets.
pub fn problems(subnet: &Subnet, others: &[Arc<Subnet>]) -> Option<(String, String)> {
    let name = subnet.name_any();
    if let Err(e) = subnet.validate() {
        return Some(("InvalidSpec".into(), e.to_string()));
    }
    let nets = match subnet.spec.networks() {
        Ok(n) => n,
        Err(e) => return Some(("InvalidSpec".into(), e.to_string())),
    };
    for other in others
        .iter()
        .filter(|o| o.name_any() != name && o.meta().deletion_timestamp.is_none())
    {
        if let (Some(p), Some(q)) = (&subnet.spec.provider, &other.spec.provider)
            && p == q
            && older_or_first(other, subnet)
        {
            return Some((
                "ProviderConflict".into(),
                format!(
                    "provider {p} is already bound by Subnet {}; a provider binds one subnet",
                    other.name_any()
                ),
            ));
        }
        if other.spec.vpc == subnet.spec.vpc && older_or_first(other, subnet) {
            let theirs = other.spec.networks().unwrap_or_default();
            if let Some((a, b)) = overlap(&nets, &theirs) {
                return Some((
                    "CIDRConflict".into(),
                    format!(
                        "CIDR {a} overlaps {b} of Subnet {} in the same VPC {}",
                        other.name_any(),
                        subnet.spec.vpc.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
        }
    }
    None
}

/// Whether `a` wins a conflict with `b`: a Subnet that is serving (Ready) wins over one that is
/// not, so a newcomer never takes a provider or a range from a running subnet; otherwise the
/// older one, ties broken by name, so exactly one of two conflicting subnets is refused.
/// (`creationTimestamp` has one-second resolution: a Subnet created in the same second as a
/// running one must not win by its name.)
fn older_or_first(a: &Subnet, b: &Subnet) -> bool {
    let (ra, rb) = (serving(a), serving(b));
    if ra != rb {
        return ra;
    }
    let ta = a.meta().creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.meta().creation_timestamp.as_ref().map(|t| t.0);
    match (ta, tb) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a.name_any() < b.name_any(),
    }
}

/// Whether the Subnet's last reported state is realised: Ready for its current generation.
fn serving(s: &Subnet) -> bool {
    s.status.as_ref().is_some_and(|st| {
        crds::condition::find_condition(&st.conditions, READY).is_some_and(|c| {
            c.status == crds::condition::ConditionStatus::True
                && (c.observed_generation.is_none() || c.observed_generation == s.meta().generation)
        })
    })
}

fn overlap(a: &[IpNet], b: &[IpNet]) -> Option<(IpNet, IpNet)> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| (*x, *y)))
        .find(|(x, y)| x.contains(&y.network()) || y.contains(&x.network()))
}

/// The status fields besides the conditions that a realised Subnet reports. (No `gateway`: the
/// status schema has none; the merge patch of earlier versions wrote one that the apiserver
/// dropped, and a server-side apply refuses a field the schema does not declare.)
const STATUS_FIELDS: [&str; 7] = [
    "cidrBlock",
    "v4usingIPs",
    "v4availableIPs",
    "v6usingIPs",
    "v6availableIPs",
    "dhcpV4OptionsUUID",
    "dhcpV6OptionsUUID",
];

/// Writes only `conditions`: what the Subnet reported when it was last realised stays as it was.
async fn report(
    api: &Api<Subnet>,
    subnet: &Subnet,
    conditions: &[crds::Condition],
) -> Result<(), kube::Error> {
    // Carried over only once a realisation wrote them (`cidrBlock` is its mark): the cached
    // counters of a Subnet never realised are defaults, not values to write.
    let realised = subnet
        .status
        .as_ref()
        .is_some_and(|s| s.cidr_block.is_some());
    let kept: &[&str] = if realised { &STATUS_FIELDS } else { &[] };
    status::apply(
        api,
        subnet,
        [("conditions", serde_json::json!(conditions))],
        kept,
    )
    .await
}

fn stored_conditions(subnet: &Subnet) -> Vec<crds::Condition> {
    subnet
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// Reports `subnet` refused for `reason`: `Validated` and `Ready` False, a Warning Event when
/// that is news, nothing written to OVN. Level-triggered: a change to this or another subnet
/// re-runs the checks at once, the retry covers the rest.
async fn refuse(
    api: &Api<Subnet>,
    ctx: &Context,
    subnet: &Subnet,
    reason: &str,
    msg: String,
) -> Result<Action, Error> {
    let generation = subnet.meta().generation;
    // From the status as stored, so that "changed" means news to the reader.
    let mut conditions = stored_conditions(subnet);
    let changed = set_condition(
        &mut conditions,
        status::condition(VALIDATED, false, reason, msg.clone(), generation),
        status::now(),
    );
    set_condition(
        &mut conditions,
        status::condition(READY, false, reason, msg.clone(), generation),
        status::now(),
    );
    report(api, subnet, &conditions).await?;
    if changed {
        ctx.event(&subnet.object_ref(&()), true, reason, msg.clone())
            .await;
    }
    tracing::warn!(subnet = %subnet.name_any(), %reason, %msg, "subnet refused");
    Ok(Action::requeue(Duration::from_secs(60)))
}

async fn apply(subnet: &Subnet, ctx: &Context) -> Result<Action, Error> {
    let name = subnet.name_any();
    let api: Api<Subnet> = Api::all(ctx.client.clone());
    let generation = subnet.meta().generation;
    let mut conditions = stored_conditions(subnet);
    if let Some((reason, msg)) = problems(subnet, &ctx.subnets.state()) {
        return refuse(&api, ctx, subnet, &reason, msg).await;
    }
    set_condition(
        &mut conditions,
        status::condition(VALIDATED, true, "Validated", "spec is valid", generation),
        status::now(),
    );

    let nets = subnet
        .spec
        .networks()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let gateways = subnet
        .spec
        .gateways()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(vpc) = &subnet.spec.vpc
        && ctx.vpcs.state().iter().all(|v| &v.name_any() != vpc)
    {
        let msg = format!("Vpc {vpc} does not exist");
        set_condition(
            &mut conditions,
            status::condition(READY, false, "VpcNotFound", msg.clone(), generation),
            status::now(),
        );
        report(&api, subnet, &conditions).await?;
        return Err(Error::NotReady(msg));
    }
    let cidr_block = nets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let spec = ipam::SubnetSpec::new(&name, cidr_block.clone())
        .with_gateway(
            gateways
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .with_excludes(subnet.spec.exclude_ips.iter().cloned());
    let registered = if ctx.ipam.has_subnet(&name) {
        ctx.ipam.update_subnet(spec)
    } else {
        // Registered after start (refused or invalid then, or created since): the addresses
        // its pods hold are in IP CRs the rebuild at start could not place. They are loaded
        // with the registration, under one lock, so none is handed out a second time.
        let records = records_of(ctx, &name).await?;
        ctx.ipam.register_with(spec, records).map(|report| {
            for rejected in &report.rejected {
                tracing::warn!(subnet = %name, error = %rejected, "IP CR not loaded into the allocator");
            }
            if report.loaded > 0 {
                tracing::info!(subnet = %name, loaded = report.loaded, "subnet registered with the addresses its IP CRs hold");
            }
        })
    };
    if let Err(e) = registered {
        let msg = format!("Subnet {name}: {e}");
        set_condition(
            &mut conditions,
            status::condition(READY, false, "IPAMRefused", msg.clone(), generation),
            status::now(),
        );
        report(&api, subnet, &conditions).await?;
        ctx.event(&subnet.object_ref(&()), true, "IPAMRefused", msg.clone())
            .await;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let router_networks: Vec<IpNet> = gateways
        .iter()
        .filter_map(|g| {
            nets.iter()
                .find(|n| n.contains(g))
                .and_then(|n| IpNet::new(*g, n.prefix_len()).ok())
        })
        .collect();
    let dhcp = match dhcp_plan(subnet, &nets, &gateways) {
        Ok(plan) => plan,
        Err(msg) => {
            let msg = format!("Subnet {name}: {msg}");
            return refuse(&api, ctx, subnet, "InvalidDHCPOptions", msg).await;
        }
    };
    let acls = match nb::subnet_acl::plan(&nets, &subnet.spec) {
        Ok(acls) => acls,
        Err(problems) => {
            // `validate` refuses these first; kept so that nothing is half written if the two
            // ever disagree.
            let msg = format!("Subnet {name}: {}", problems.join("; "));
            return refuse(&api, ctx, subnet, "InvalidACL", msg).await;
        }
    };
    nb::ensure_switch(
        &ctx.nb,
        &nb::SwitchPlan {
            subnet: name.clone(),
            vpc: subnet.spec.vpc.clone(),
            gateways: router_networks,
            acls,
        },
    )
    .await?;
    let (dhcp_v4, dhcp_v6) = nb::dhcp::ensure_dhcp(&ctx.nb, &dhcp).await?;
    set_condition(
        &mut conditions,
        status::condition(
            READY,
            true,
            "SwitchReady",
            format!("logical switch {name} exists"),
            generation,
        ),
        status::now(),
    );
    let counters = ctx.ipam.counters(&name).unwrap_or_default();
    let uuid = |u: Option<ovn_api::value::Uuid>| u.map(|u| u.to_string()).unwrap_or_default();
    // In the order of STATUS_FIELDS (the length is checked by the type).
    let values: [serde_json::Value; STATUS_FIELDS.len()] = [
        serde_json::json!(cidr_block),
        serde_json::json!(counters.v4_using as f64),
        serde_json::json!(counters.v4_available as f64),
        serde_json::json!(counters.v6_using as f64),
        serde_json::json!(counters.v6_available as f64),
        serde_json::json!(uuid(dhcp_v4)),
        serde_json::json!(uuid(dhcp_v6)),
    ];
    let fields = STATUS_FIELDS
        .into_iter()
        .zip(values)
        .chain([("conditions", serde_json::json!(conditions))]);
    status::apply(&api, subnet, fields, &[]).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// The allocator's records of the IP CRs of Subnet `name` (read from the apiserver's watch
/// cache; unreadable ones are logged and skipped, as at start).
async fn records_of(ctx: &Context, name: &str) -> Result<Vec<ipam::Record>, Error> {
    let ips = Api::<IP>::all(ctx.client.clone())
        .list(&ListParams::default().match_any())
        .await?
        .items;
    Ok(crate::ip::lease_records(ips.iter().filter(|ip| ip.spec.subnet == name)).collect())
}

/// The DHCP rows a Subnet needs: one per family with `enableDHCP`, none without.
pub fn dhcp_plan(
    subnet: &Subnet,
    nets: &[IpNet],
    gateways: &[std::net::IpAddr],
) -> Result<nb::dhcp::DhcpPlan, String> {
    let name = subnet.name_any();
    let mut plan = nb::dhcp::DhcpPlan {
        subnet: name.clone(),
        v4: None,
        v6: None,
    };
    if !subnet.spec.enable_dhcp {
        return Ok(plan);
    }
    let server_mac = nb::router_port_mac(&format!("dhcp-{name}"));
    for net in nets {
        match net {
            IpNet::V4(_) => {
                let Some(gw) = gateways.iter().find(|g| net.contains(*g)) else {
                    continue;
                };
                plan.v4 = Some(nb::dhcp::Family {
                    cidr: *net,
                    options: nb::dhcp::options_v4(
                        *gw,
                        &server_mac,
                        subnet.spec.mtu,
                        subnet
                            .spec
                            .dhcp_v4_options
                            .as_deref()
                            .filter(|o| !o.is_empty()),
                    )?,
                });
            }
            IpNet::V6(_) => {
                plan.v6 = Some(nb::dhcp::Family {
                    cidr: *net,
                    options: nb::dhcp::options_v6(
                        &server_mac,
                        subnet
                            .spec
                            .dhcp_v6_options
                            .as_deref()
                            .filter(|o| !o.is_empty()),
                    )?,
                });
            }
        }
    }
    Ok(plan)
}

async fn cleanup(subnet: &Subnet, ctx: &Context) -> Result<Action, Error> {
    let name = subnet.name_any();
    if let Ok(c) = ctx.ipam.counters(&name)
        && c.v4_using + c.v6_using > 0
    {
        let msg = format!(
            "Subnet {name} still has {} addresses in use; delete the pods first",
            c.v4_using + c.v6_using
        );
        ctx.event(
            &subnet.object_ref(&()),
            true,
            "DeletionBlocked",
            msg.clone(),
        )
        .await;
        return Err(Error::NotReady(msg));
    }
    nb::delete_switch(&ctx.nb, &name, subnet.spec.vpc.as_deref()).await?;
    nb::dhcp::delete_dhcp(&ctx.nb, &name).await?;
    let _ = ctx.ipam.remove_subnet(&name);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_fields_written_are_declared_by_the_schema() {
        let declared = status::declared_status_fields::<Subnet>();
        for field in STATUS_FIELDS.iter().chain(&["conditions"]) {
            assert!(declared.iter().any(|d| d == field), "{field}: {declared:?}");
        }
        let declared = status::declared_status_fields::<crds::Vpc>();
        for field in crate::vpc::STATUS_FIELDS.iter().chain(&["conditions"]) {
            assert!(declared.iter().any(|d| d == field), "{field}: {declared:?}");
        }
    }

    fn subnet(name: &str, vpc: &str, cidr: &str, provider: &str, created: i64) -> Arc<Subnet> {
        let mut s = Subnet::new(name, crds::SubnetSpec::default());
        s.spec.vpc = Some(vpc.into());
        s.spec.cidr = Some(cidr.into());
        s.spec.provider = Some(provider.into());
        s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
        ));
        Arc::new(s)
    }

    #[test]
    fn overlapping_cidrs_conflict_only_inside_one_vpc_and_the_newer_subnet_loses() {
        let a = subnet("tenant-a", "vpc-a", "10.0.0.0/24", "a.default.ovn", 1);
        let b = subnet("tenant-b", "vpc-b", "10.0.0.0/24", "b.default.ovn", 2);
        let all = vec![a.clone(), b.clone()];
        assert_eq!(problems(&a, &all), None);
        assert_eq!(
            problems(&b, &all),
            None,
            "same CIDR in different VPCs is multi-tenancy"
        );

        let c = subnet("c", "vpc-a", "10.0.0.128/25", "c.default.ovn", 3);
        let all = vec![a.clone(), c.clone()];
        assert_eq!(problems(&a, &all), None, "the older subnet keeps working");
        let (reason, msg) = problems(&c, &all).unwrap();
        assert_eq!(reason, "CIDRConflict");
        assert!(
            msg.contains("overlaps") && msg.contains("tenant-a"),
            "{msg}"
        );
    }

    #[test]
    fn a_provider_binds_one_subnet() {
        let a = subnet("s1", "v", "10.0.0.0/24", "p.default.ovn", 1);
        let b = subnet("s2", "v", "10.1.0.0/24", "p.default.ovn", 2);
        let all = vec![a.clone(), b.clone()];
        assert_eq!(problems(&a, &all), None);
        let (reason, msg) = problems(&b, &all).unwrap();
        assert_eq!(reason, "ProviderConflict");
        assert!(msg.contains("already bound by Subnet s1"), "{msg}");
    }

    #[test]
    fn a_subnet_created_in_the_same_second_never_takes_the_provider_of_a_serving_one() {
        // `creationTimestamp` has one-second resolution: "subnet-dup" sorts before
        // "subnet-faults", so by age and name alone the newcomer would win.
        let mut serving =
            (*subnet("subnet-faults", "v", "10.0.0.0/24", "p.default.ovn", 7)).clone();
        serving.metadata.generation = Some(1);
        serving.status = Some(crds::SubnetStatus {
            conditions: vec![status::condition(READY, true, "Ready", "ok", Some(1))],
            ..Default::default()
        });
        let serving = Arc::new(serving);
        let newcomer = subnet("subnet-dup", "v", "10.1.0.0/24", "p.default.ovn", 7);
        let all = vec![serving.clone(), newcomer.clone()];
        assert_eq!(problems(&serving, &all), None);
        let (reason, msg) = problems(&newcomer, &all).unwrap();
        assert_eq!(reason, "ProviderConflict");
        assert!(msg.contains("subnet-faults"), "{msg}");

        // Ready for an older generation is not serving: an edited spec competes by age again.
        let mut edited = (*serving).clone();
        edited.metadata.generation = Some(2);
        let edited = Arc::new(edited);
        let all = vec![edited.clone(), newcomer.clone()];
        assert_eq!(problems(&newcomer, &all), None);
        assert_eq!(problems(&edited, &all).unwrap().0, "ProviderConflict");
    }

    #[test]
    fn an_invalid_spec_is_reported_with_the_field() {
        let mut s = (*subnet("s", "v", "10.0.0.0/24", "p", 1)).clone();
        s.spec.gateway = Some("10.9.9.9".into());
        let (reason, msg) = problems(&s, &[]).unwrap();
        assert_eq!(reason, "InvalidSpec");
        assert!(msg.contains("gateway"), "{msg}");
    }
}
