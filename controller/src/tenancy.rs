//! Tenant isolation (DESIGN §7): which Subnet an attachment may land on, and whether its pod may
//! switch anti-spoofing off. Pure decisions over the cached Subnets and Vpcs; the pod and NAD
//! reconcilers act on them (Events, no allocation).
//!
//! # Admission
//! - An attachment lands only on a Subnet whose `spec.provider` is its NAD's provider. The pod's
//!   `<provider>.kubernetes.io/logical_switch` annotation chooses among those Subnets and nothing
//!   else: naming any other switch (another tenant's, or one that does not exist) is refused with
//!   `LogicalSwitchRefused`, whatever that switch is.
//! - A Subnet with `namespaces` admits only those namespaces; so does a Vpc with `namespaces`,
//!   for every Subnet in it. When both are set both apply: the namespace must be in each list
//!   (the Vpc's owner bounds the tenant, a Subnet may narrow it further, never widen it). An empty
//!   list admits every namespace, so a Subnet that neither it nor its Vpc restricts is open to any
//!   NAD that names its provider. (`namespaceSelectors` plays no part in admission.)
//! - Both the pod's namespace and the NAD's namespace must be admitted: a NAD in a namespace the
//!   Subnet does not admit is refused (an Event on the NAD, `ProviderNotAdmitted`), and so is
//!   every pod that uses it, even from an admitted namespace (`NamespaceNotAdmitted`).
//! - One exception, for the tenant's own VpcNatGateway: its pod runs in kube-system, which the
//!   tenant's Vpc need not admit. The pod is admitted to the gateway's LAN Subnet (that one
//!   only, and still only through a NAD whose namespace is admitted) when its owner chain
//!   proves it genuine: the pod `vpc-nat-gw-<gw>-0` controlled (by uid) by the StatefulSet
//!   `vpc-nat-gw-<gw>`, controlled (by uid) by the existing gateway `<gw>`
//!   ([`crate::nat_gateway::admitted_lan_subnet`]). Names, labels or annotations alone gain
//!   nothing.
//! - A refused attachment gets no address, no `IP` CR and no port; its pod gets a Warning Event
//!   and the daemon's CNI ADD fails at its allocation timeout, pointing at those Events.
//! - Messages name only what the refused tenant wrote itself (its namespace, its NAD, the
//!   provider, the switch it asked for), never the Subnet or Vpc that refused it: those may be
//!   another tenant's.
//! - Admission is decided when an attachment is allocated. An attachment allocated earlier keeps
//!   its address and port: if its `logical_switch` annotation is later edited to a refused value,
//!   the controller refuses the edit with an Event and writes the switch it really is on back
//!   into the annotation; if a Subnet's or Vpc's `namespaces` is narrowed later, running pods keep
//!   their attachments (with a Warning Event at each retry) until they are deleted: narrowing a
//!   list does not cut a running workload's network.
//!
//! # Port security
//! Every port is pinned to its MAC and addresses. `<provider>.kubernetes.io/port_security:
//! "false"` switches that off only on a Subnet with `spec.allowDisablePortSecurity: true`;
//! elsewhere the port keeps port security and the pod gets a `PortSecurityRefused` Event. A
//! change of a Subnet's spec reconciles the pods attached to it, so withdrawing the permission
//! pins their ports again at once.

use std::sync::Arc;

use crds::{Subnet, Vpc};
use kube::{Resource, ResourceExt};

/// Event reason: the pod's `logical_switch` names a switch its provider does not bind.
pub const LOGICAL_SWITCH_REFUSED: &str = "LogicalSwitchRefused";
/// Event reason: the pod's (or its NAD's) namespace is not admitted by the provider's Subnet.
pub const NAMESPACE_NOT_ADMITTED: &str = "NamespaceNotAdmitted";
/// Event reason on a NAD whose namespace its provider's Subnet does not admit.
pub const PROVIDER_NOT_ADMITTED: &str = "ProviderNotAdmitted";
/// Event reason: `port_security: "false"` on a Subnet that does not allow it.
pub const PORT_SECURITY_REFUSED: &str = "PortSecurityRefused";
/// Event reason for every other attachment failure.
pub const ATTACHMENT_FAILED: &str = "AttachmentFailed";

/// Why an attachment cannot land on a Subnet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No Subnet binds the provider.
    #[error("provider {provider} is not bound to any subnet (set spec.provider on a Subnet)")]
    Unbound {
        /// The NAD's provider.
        provider: String,
    },
    /// Several Subnets bind the provider and the pod chose none.
    /// (Their names are not in the message: they may be another tenant's; the Subnets'
    /// `ProviderConflict` condition names them to whoever manages Subnets.)
    #[error(
        "provider {provider} is bound by {count} subnets; the pod's \
         <provider>.kubernetes.io/logical_switch must choose one"
    )]
    Ambiguous {
        /// The NAD's provider.
        provider: String,
        /// How many Subnets bind it.
        count: usize,
    },
    /// The pod's `logical_switch` names a switch that does not bind the provider.
    #[error(
        "logical_switch {requested:?} is not a Subnet of provider {provider}: an attachment lands \
         only on a Subnet that binds its NAD's provider; nothing was allocated"
    )]
    LogicalSwitch {
        /// What the pod asked for.
        requested: String,
        /// The NAD's provider.
        provider: String,
    },
    /// The pod's namespace is not admitted.
    #[error(
        "namespace {namespace} is not admitted to the network of provider {provider} (its \
         Subnet or Vpc lists the namespaces it admits); nothing was allocated"
    )]
    PodNamespace {
        /// The pod's namespace.
        namespace: String,
        /// The NAD's provider.
        provider: String,
    },
    /// The NAD's namespace is not admitted.
    #[error(
        "NetworkAttachmentDefinition {nad_namespace}/{nad} names provider {provider}, whose \
         network does not admit namespace {nad_namespace}; nothing was allocated"
    )]
    NadNamespace {
        /// The NAD's namespace.
        nad_namespace: String,
        /// The NAD's name.
        nad: String,
        /// The NAD's provider.
        provider: String,
    },
    /// The chosen Subnet names a Vpc that is not known yet (a wait, not a refusal).
    #[error("the Vpc of the Subnet of provider {provider} does not exist yet")]
    VpcPending {
        /// The NAD's provider.
        provider: String,
    },
}

impl Refusal {
    /// The Event reason for this refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::LogicalSwitch { .. } => LOGICAL_SWITCH_REFUSED,
            Self::PodNamespace { .. } | Self::NadNamespace { .. } => NAMESPACE_NOT_ADMITTED,
            Self::Unbound { .. } | Self::Ambiguous { .. } | Self::VpcPending { .. } => {
                ATTACHMENT_FAILED
            }
        }
    }

    /// Whether this is a tenant boundary (as opposed to a network that is not set up yet).
    pub fn is_isolation(&self) -> bool {
        matches!(
            self,
            Self::LogicalSwitch { .. } | Self::PodNamespace { .. } | Self::NadNamespace { .. }
        )
    }
}

/// Who asks for an attachment: the pod's namespace and the NAD it selected.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// The pod's namespace.
    pub pod_namespace: &'a str,
    /// The NAD's namespace.
    pub nad_namespace: &'a str,
    /// The NAD's name.
    pub nad: &'a str,
    /// The NAD's provider (the one a Subnet binds).
    pub provider: &'a str,
    /// The pod's `<provider>.kubernetes.io/logical_switch`, if any.
    pub requested: Option<&'a str>,
    /// The LAN Subnet of the VpcNatGateway whose genuine pod this is (proven by its owner
    /// chain, [`crate::nat_gateway::admitted_lan_subnet`]): that Subnet admits the pod whatever
    /// namespaces it lists. `None` for every other pod.
    pub gateway_subnet: Option<&'a str>,
}

/// Whether a `namespaces` list admits `namespace` (an empty list admits all).
fn listed(namespaces: &[String], namespace: &str) -> bool {
    namespaces.is_empty() || namespaces.iter().any(|n| n == namespace)
}

/// Whether `subnet` (with its Vpc, when it names one) admits `namespace`: `None` when the Subnet
/// names a Vpc that is not in `vpcs`.
pub fn admits(subnet: &Subnet, vpcs: &[Arc<Vpc>], namespace: &str) -> Option<bool> {
    let vpc_admits = match &subnet.spec.vpc {
        None => true,
        Some(name) => {
            let vpc = vpcs.iter().find(|v| &v.name_any() == name)?;
            listed(&vpc.spec.namespaces, namespace)
        }
    };
    Some(vpc_admits && listed(&subnet.spec.namespaces, namespace))
}

/// The Subnets binding `provider` (not being deleted, not refused for a provider conflict), by
/// name.
pub fn bound<'s>(subnets: &'s [Arc<Subnet>], provider: &str) -> Vec<&'s Arc<Subnet>> {
    let mut out: Vec<_> = subnets
        .iter()
        .filter(|s| {
            s.spec.provider.as_deref() == Some(provider) && s.meta().deletion_timestamp.is_none()
        })
        // A Subnet refused for claiming a provider another one binds is not a candidate: it
        // must not make the valid one's new pods ambiguous.
        .filter(|s| {
            !matches!(crate::subnet::problems(s, subnets), Some((reason, _)) if reason == "ProviderConflict")
        })
        .collect();
    out.sort_by_key(|s| s.name_any());
    out
}

/// The longest `logical_switch` value quoted in a message: an Event note holds at most 1 KiB
/// with the NAD's name and the rest of the message, and an annotation may be far longer.
const MAX_QUOTED: usize = 100;

/// `value`, cut to [`MAX_QUOTED`] characters (marked with `...`).
fn shortened(value: &str) -> String {
    if value.chars().count() <= MAX_QUOTED {
        value.to_owned()
    } else {
        let mut cut: String = value.chars().take(MAX_QUOTED).collect();
        cut.push_str("...");
        cut
    }
}

/// The Subnet an attachment lands on, or why it may not land anywhere.
pub fn choose_subnet(
    subnets: &[Arc<Subnet>],
    vpcs: &[Arc<Vpc>],
    asker: &Asker<'_>,
) -> Result<String, Refusal> {
    let provider = asker.provider.to_owned();
    let candidates = bound(subnets, asker.provider);
    let subnet = match asker.requested {
        Some(requested) => candidates
            .iter()
            .find(|s| s.name_any() == requested)
            .ok_or_else(|| Refusal::LogicalSwitch {
                requested: shortened(requested),
                provider: provider.clone(),
            })?,
        None => match candidates.as_slice() {
            [one] => one,
            [] => return Err(Refusal::Unbound { provider }),
            many => {
                return Err(Refusal::Ambiguous {
                    provider,
                    count: many.len(),
                });
            }
        },
    };
    let check = |namespace: &str| {
        admits(subnet, vpcs, namespace).ok_or_else(|| Refusal::VpcPending {
            provider: provider.clone(),
        })
    };
    // A gateway's own pod (in kube-system) serves the tenant's VPC by the tenant's gateway
    // object; the NAD it uses must still be admitted.
    let gateway_pod = asker.gateway_subnet == Some(subnet.name_any().as_str());
    if !gateway_pod && !check(asker.pod_namespace)? {
        return Err(Refusal::PodNamespace {
            namespace: asker.pod_namespace.to_owned(),
            provider,
        });
    }
    if !check(asker.nad_namespace)? {
        return Err(Refusal::NadNamespace {
            nad_namespace: asker.nad_namespace.to_owned(),
            nad: asker.nad.to_owned(),
            provider,
        });
    }
    Ok(subnet.name_any())
}

/// A NAD's standing: whether every Subnet binding its provider admits the NAD's namespace.
/// `Err` names the provider and the namespace only (the Subnet may be another tenant's).
pub fn check_nad(
    subnets: &[Arc<Subnet>],
    vpcs: &[Arc<Vpc>],
    nad_namespace: &str,
    provider: &str,
) -> Result<(), String> {
    let refused = bound(subnets, provider)
        .into_iter()
        .any(|s| admits(s, vpcs, nad_namespace) == Some(false));
    if refused {
        Err(format!(
            "provider {provider} belongs to a network that does not admit namespace \
             {nad_namespace} (its Subnet or Vpc lists the namespaces it admits): pods using this \
             NetworkAttachmentDefinition get no attachment"
        ))
    } else {
        Ok(())
    }
}

/// Whether a port keeps port security, from the pod's `port_security` annotation (`value`) and
/// whether its Subnet allows switching it off; with the message of a refused or invalid value.
pub fn port_security(
    value: Option<&str>,
    subnet_allows_off: bool,
    key: &str,
) -> (bool, Option<String>) {
    match value.map(str::trim) {
        None | Some("true" | "") => (true, None),
        Some("false") if subnet_allows_off => (false, None),
        Some("false") => (
            true,
            Some(format!(
                "{key}=\"false\" is refused: its Subnet does not allow switching port security \
                 off (spec.allowDisablePortSecurity); the port keeps anti-spoofing"
            )),
        ),
        Some(other) => (
            true,
            Some(format!(
                "{key}={other:?} is not \"true\" or \"false\"; the port keeps anti-spoofing"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(name: &str, provider: &str, vpc: Option<&str>, namespaces: &[&str]) -> Arc<Subnet> {
        let mut s = Subnet::new(name, crds::SubnetSpec::default());
        s.spec.cidr = Some("10.100.0.0/16".into());
        s.spec.provider = Some(provider.into());
        s.spec.vpc = vpc.map(Into::into);
        s.spec.namespaces = namespaces.iter().map(|n| (*n).to_owned()).collect();
        Arc::new(s)
    }

    fn vpc(name: &str, namespaces: &[&str]) -> Arc<Vpc> {
        let mut v = Vpc::new(name, crds::VpcSpec::default());
        v.spec.namespaces = namespaces.iter().map(|n| (*n).to_owned()).collect();
        Arc::new(v)
    }

    fn ask<'a>(pod_ns: &'a str, nad_ns: &'a str, provider: &'a str) -> Asker<'a> {
        Asker {
            pod_namespace: pod_ns,
            nad_namespace: nad_ns,
            nad: "net",
            provider,
            requested: None,
            gateway_subnet: None,
        }
    }

    /// Two tenants, each a Vpc admitting its namespace, each with a Subnet of its provider.
    fn tenants() -> (Vec<Arc<Subnet>>, Vec<Arc<Vpc>>) {
        (
            vec![
                subnet("sa", "net.a.ovn", Some("va"), &[]),
                subnet("sb", "net.b.ovn", Some("vb"), &[]),
            ],
            vec![vpc("va", &["a"]), vpc("vb", &["b"])],
        )
    }

    #[test]
    fn the_manuals_network_admits_default() {
        let subnets = [subnet(
            "subnet-secondary",
            "kube-ovn-vpc-network.default.ovn",
            Some("vpc-secondary"),
            &[],
        )];
        let vpcs = [vpc("vpc-secondary", &["default"])];
        let a = ask("default", "default", "kube-ovn-vpc-network.default.ovn");
        assert_eq!(
            choose_subnet(&subnets, &vpcs, &a),
            Ok("subnet-secondary".into())
        );
        let other = ask("other", "default", "kube-ovn-vpc-network.default.ovn");
        assert_eq!(
            choose_subnet(&subnets, &vpcs, &other).unwrap_err().reason(),
            NAMESPACE_NOT_ADMITTED
        );
    }

    #[test]
    fn a_gateway_pod_is_admitted_to_its_lan_subnet_only() {
        let subnets = [
            subnet(
                "subnet-secondary",
                "kube-ovn-vpc-network.default.ovn",
                Some("vpc-secondary"),
                &[],
            ),
            subnet("other", "other.default.ovn", Some("vpc-secondary"), &[]),
        ];
        let vpcs = [vpc("vpc-secondary", &["default"])];
        let mut a = ask("kube-system", "default", "kube-ovn-vpc-network.default.ovn");
        assert!(matches!(
            choose_subnet(&subnets, &vpcs, &a),
            Err(Refusal::PodNamespace { .. })
        ));
        a.gateway_subnet = Some("subnet-secondary");
        assert_eq!(
            choose_subnet(&subnets, &vpcs, &a),
            Ok("subnet-secondary".into())
        );
        // Its pass names one Subnet: another provider's stays closed.
        let mut b = ask("kube-system", "default", "other.default.ovn");
        b.gateway_subnet = Some("subnet-secondary");
        assert!(matches!(
            choose_subnet(&subnets, &vpcs, &b),
            Err(Refusal::PodNamespace { .. })
        ));
        // The NAD's namespace is still checked.
        a.nad_namespace = "kube-system";
        assert!(matches!(
            choose_subnet(&subnets, &vpcs, &a),
            Err(Refusal::NadNamespace { .. })
        ));
    }

    #[test]
    fn logical_switch_chooses_only_among_the_providers_subnets() {
        let (subnets, vpcs) = tenants();
        // Tenant b asks for tenant a's switch: refused, and the message does not tell whether
        // that switch exists.
        let mut a = ask("b", "b", "net.b.ovn");
        a.requested = Some("sa");
        let hijack = choose_subnet(&subnets, &vpcs, &a).unwrap_err();
        a.requested = Some("no-such-switch");
        let missing = choose_subnet(&subnets, &vpcs, &a).unwrap_err();
        assert_eq!(hijack.reason(), LOGICAL_SWITCH_REFUSED);
        assert_eq!(missing.reason(), LOGICAL_SWITCH_REFUSED);
        assert_eq!(
            hijack.to_string().replace("\"sa\"", "X"),
            missing.to_string().replace("\"no-such-switch\"", "X")
        );
        // A huge value is quoted cut short, so the Event stays within its size limit.
        let huge = "é".repeat(100_000);
        a.requested = Some(&huge);
        let msg = choose_subnet(&subnets, &vpcs, &a).unwrap_err().to_string();
        assert!(msg.len() < 512, "{}", msg.len());
        // Its own switch by name is fine.
        a.requested = Some("sb");
        assert_eq!(choose_subnet(&subnets, &vpcs, &a), Ok("sb".into()));
        // Two subnets claiming one provider: the second is refused (ProviderConflict), so it
        // is no candidate, and the valid one's pods are not made ambiguous by it.
        let two = [
            subnet("s1", "p.ovn", None, &[]),
            subnet("s2", "p.ovn", None, &[]),
        ];
        let mut a = ask("x", "x", "p.ovn");
        assert_eq!(choose_subnet(&two, &[], &a), Ok("s1".into()));
        a.requested = Some("s2");
        assert!(matches!(
            choose_subnet(&two, &[], &a),
            Err(Refusal::LogicalSwitch { .. })
        ));
    }

    #[test]
    fn a_foreign_provider_is_refused_for_the_pod_and_the_nad() {
        let (subnets, vpcs) = tenants();
        // Tenant b's own NAD names tenant a's provider.
        let r = choose_subnet(&subnets, &vpcs, &ask("b", "b", "net.a.ovn")).unwrap_err();
        assert!(matches!(r, Refusal::PodNamespace { .. }), "{r:?}");
        // A pod of a using tenant b's NAD that names a's provider: the NAD is not admitted.
        let r = choose_subnet(&subnets, &vpcs, &ask("a", "b", "net.a.ovn")).unwrap_err();
        assert!(matches!(r, Refusal::NadNamespace { .. }), "{r:?}");
        assert_eq!(r.reason(), NAMESPACE_NOT_ADMITTED);
        // Messages never name the refusing Subnet or Vpc.
        let msg = r.to_string();
        assert!(!msg.contains("sa") && !msg.contains("va"), "{msg}");
        assert!(check_nad(&subnets, &vpcs, "b", "net.a.ovn").is_err());
        assert!(check_nad(&subnets, &vpcs, "a", "net.a.ovn").is_ok());
        // An unbound provider is not an isolation matter.
        assert!(check_nad(&subnets, &vpcs, "b", "nothing.ovn").is_ok());
    }

    #[test]
    fn subnet_and_vpc_namespaces_both_apply() {
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "any", true),
            (&["a"], &[], "a", true),
            (&["a"], &[], "b", false),
            (&[], &["a"], "a", true),
            (&[], &["a"], "b", false),
            (&["a", "b"], &["b"], "b", true),
            (&["a", "b"], &["b"], "a", false),
            (&["a"], &["b"], "a", false),
            (&["a"], &["b"], "b", false),
        ];
        for (subnet_ns, vpc_ns, ns, want) in cases {
            let s = subnet("s", "p.ovn", Some("v"), subnet_ns);
            let v = [vpc("v", vpc_ns)];
            assert_eq!(
                admits(&s, &v, ns),
                Some(*want),
                "subnet {subnet_ns:?} vpc {vpc_ns:?} ns {ns}"
            );
        }
        // No Vpc named: the Subnet's list alone.
        let s = subnet("s", "p.ovn", None, &["a"]);
        assert_eq!(admits(&s, &[], "a"), Some(true));
        // A Vpc not known yet: undecided (the pod waits), never admitted.
        let s = subnet("s", "p.ovn", Some("later"), &[]);
        assert_eq!(admits(&s, &[], "a"), None);
        assert!(matches!(
            choose_subnet(&[s], &[], &ask("a", "a", "p.ovn")),
            Err(Refusal::VpcPending { .. })
        ));
    }

    #[test]
    fn a_deleted_subnet_binds_nothing() {
        let mut s = (*subnet("s", "p.ovn", None, &[])).clone();
        s.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        let r = choose_subnet(&[Arc::new(s)], &[], &ask("a", "a", "p.ovn"));
        assert!(matches!(r, Err(Refusal::Unbound { .. })), "{r:?}");
    }

    proptest::proptest! {
        /// Whatever the cluster holds and the pod asks for, the decision never panics, and a
        /// Subnet it picks binds the provider and admits both namespaces.
        #[test]
        fn a_chosen_subnet_always_binds_and_admits(
            specs in proptest::collection::vec(
                ("[a-c]", "[pq]", proptest::option::of("v[12]"), proptest::collection::vec("[xyz]", 0..3)),
                0..5,
            ),
            vpc_ns in proptest::collection::vec(proptest::collection::vec("[xyz]", 0..3), 2),
            pod_ns in "[xyz]",
            nad_ns in "[xyz]",
            provider in "[pq]",
            requested in proptest::option::of(".{0,6}"),
        ) {
            // Subnet names are unique in a cluster.
            let mut seen = std::collections::BTreeSet::new();
            let subnets: Vec<_> = specs
                .iter()
                .filter(|(name, ..)| seen.insert(name.clone()))
                .map(|(name, prov, vpc_name, ns)| {
                    let ns: Vec<&str> = ns.iter().map(String::as_str).collect();
                    subnet(name, prov, vpc_name.as_deref(), &ns)
                })
                .collect();
            let vpcs: Vec<_> = vpc_ns
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let ns: Vec<&str> = ns.iter().map(String::as_str).collect();
                    vpc(&format!("v{}", i + 1), &ns)
                })
                .collect();
            let asker = Asker {
                pod_namespace: &pod_ns,
                nad_namespace: &nad_ns,
                nad: "n",
                provider: &provider,
                requested: requested.as_deref(),
                gateway_subnet: None,
            };
            if let Ok(name) = choose_subnet(&subnets, &vpcs, &asker) {
                let chosen = subnets.iter().find(|s| s.name_any() == name).unwrap();
                proptest::prop_assert_eq!(chosen.spec.provider.as_deref(), Some(provider.as_str()));
                proptest::prop_assert_eq!(admits(chosen, &vpcs, &pod_ns), Some(true));
                proptest::prop_assert_eq!(admits(chosen, &vpcs, &nad_ns), Some(true));
                if let Some(r) = &requested {
                    proptest::prop_assert_eq!(&name, r);
                }
            }
            let _ = check_nad(&subnets, &vpcs, &nad_ns, &provider);
            let _ = port_security(requested.as_deref(), pod_ns == "x", "k");
        }
    }

    #[test]
    fn nobody_switches_port_security_off_unless_the_subnet_allows_it() {
        let k = "p.kubernetes.io/port_security";
        assert_eq!(port_security(None, false, k), (true, None));
        assert_eq!(port_security(Some("true"), false, k), (true, None));
        let (on, why) = port_security(Some("false"), false, k);
        assert!(on);
        assert!(why.unwrap().contains("allowDisablePortSecurity"));
        assert_eq!(port_security(Some("false"), true, k), (false, None));
        assert_eq!(port_security(Some(" false "), true, k), (false, None));
        for bad in ["no", "False", "0", "\u{0}"] {
            let (on, why) = port_security(Some(bad), true, k);
            assert!(on, "{bad:?}");
            assert!(why.is_some(), "{bad:?}");
        }
    }
}
