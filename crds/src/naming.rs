//! The names every component agrees on (DESIGN §3): annotation keys
//! `<provider>.kubernetes.io/<key>`, providers, and the OVN object names derived from
//! Kubernetes objects. Nothing else in the project formats these strings.

use crate::error::{Error, Result};
use crate::validation;

/// The Multus / NPWG annotation selecting a pod's extra networks.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// The annotation Multus writes with the result of every attachment.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// The pre-v4 Multus spelling of [`NETWORK_STATUS_ANNOTATION`] (the user manual greps for it).
pub const OLD_NETWORKS_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks-status";

/// Provider of pod-wide annotations (`ovn.kubernetes.io/ingress_rate`...), which apply to every
/// kube-ovn attachment without a provider-specific value.
pub const POD_WIDE_PROVIDER: &str = "ovn";
/// The CNI spec versions the `kube-ovn` plugin speaks (the plugin's own list, `cni::version`,
/// must stay equal; the e2e crate checks it).
pub const SUPPORTED_CNI_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Suffix of a kube-ovn attachment provider: `<nad>.<ns>.ovn`.
pub const PROVIDER_SUFFIX: &str = "ovn";
/// The NAD `type` (and IPAM `type`) that is ours.
pub const CNI_TYPE: &str = "kube-ovn";
/// Default daemon socket when a NAD does not set `server_socket`.
pub const DEFAULT_SERVER_SOCKET: &str = "/run/openvswitch/kube-ovn-daemon.sock";

/// `external_ids` key and value on every OVN/OVS row we write; GC touches only rows with it.
pub const EXTERNAL_ID_VENDOR: (&str, &str) = ("vendor", "kube-ovn");
/// `external_ids` key naming the owning pod as `<ns>/<name>`.
pub const EXTERNAL_ID_POD: &str = "pod";
/// `external_ids` key naming the owning logical switch.
pub const EXTERNAL_ID_LOGICAL_SWITCH: &str = "ls";
/// `external_ids` key naming the owning Subnet (its switch, router port, DHCP options, ACLs).
pub const EXTERNAL_ID_SUBNET: &str = "subnet";
/// `external_ids` key naming the provider of an attachment.
pub const EXTERNAL_ID_PROVIDER: &str = "provider";

/// The per-provider pod annotation keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnnotationKey {
    /// `allocated`: `"true"` once the controller has reserved everything (controller writes).
    Allocated,
    /// `ip_address`: address(es), comma-joined for dual stack (controller writes; user may set).
    IpAddress,
    /// `mac_address` (controller writes; user may set).
    MacAddress,
    /// `cidr` of the subnet (controller writes).
    Cidr,
    /// `gateway` of the subnet (controller writes).
    Gateway,
    /// `logical_switch`: the subnet (controller writes; user may set to choose).
    LogicalSwitch,
    /// `logical_router`: the VPC (controller writes).
    LogicalRouter,
    /// `ip_pool`: addresses to pick from (user).
    IpPool,
    /// `routes`: JSON list of routes (user).
    Routes,
    /// `default_route`: `"true"` to route by this attachment (user).
    DefaultRoute,
    /// `ingress_rate` in Mbit/s (user).
    IngressRate,
    /// `egress_rate` in Mbit/s (user).
    EgressRate,
    /// `security_groups`: comma-separated SecurityGroup names (user).
    SecurityGroups,
    /// `port_security`: `"true"` to pin the port to its addresses (user).
    PortSecurity,
}

impl AnnotationKey {
    /// Every key: the controller's, then the users' alone.
    pub const ALL: [AnnotationKey; 14] = {
        let mut all = [Self::Allocated; 14];
        let mut i = 0;
        while i < 7 {
            all[i] = Self::WRITTEN_BY_CONTROLLER[i];
            all[i + 7] = Self::ONLY_FROM_USERS[i];
            i += 1;
        }
        all
    };

    /// The keys only users write (the controller reads them, never writes them).
    pub const ONLY_FROM_USERS: [AnnotationKey; 7] = [
        Self::IpPool,
        Self::Routes,
        Self::DefaultRoute,
        Self::IngressRate,
        Self::EgressRate,
        Self::SecurityGroups,
        Self::PortSecurity,
    ];

    /// The key as it appears after `<provider>.kubernetes.io/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allocated => "allocated",
            Self::IpAddress => "ip_address",
            Self::MacAddress => "mac_address",
            Self::Cidr => "cidr",
            Self::Gateway => "gateway",
            Self::LogicalSwitch => "logical_switch",
            Self::LogicalRouter => "logical_router",
            Self::IpPool => "ip_pool",
            Self::Routes => "routes",
            Self::DefaultRoute => "default_route",
            Self::IngressRate => "ingress_rate",
            Self::EgressRate => "egress_rate",
            Self::SecurityGroups => "security_groups",
            Self::PortSecurity => "port_security",
        }
    }

    /// The keys the controller writes for every allocated attachment (DESIGN §3); every other
    /// key is the user's. The controller's own-patch filter and [`crate::attachment::Allocation`]
    /// both use this one list.
    pub const WRITTEN_BY_CONTROLLER: [AnnotationKey; 7] = [
        Self::Allocated,
        Self::IpAddress,
        Self::MacAddress,
        Self::Cidr,
        Self::Gateway,
        Self::LogicalSwitch,
        Self::LogicalRouter,
    ];

    /// Whether the controller writes this key (as opposed to only reading it from users).
    pub fn written_by_controller(self) -> bool {
        Self::WRITTEN_BY_CONTROLLER.contains(&self)
    }
}

/// The pod annotation `<provider>.kubernetes.io/<key>`.
pub fn annotation_key(provider: &str, key: AnnotationKey) -> String {
    format!("{provider}.kubernetes.io/{}", key.as_str())
}

/// Splits an annotation key `<provider>.kubernetes.io/<key>` into provider and key, if it is one
/// of ours.
pub fn parse_annotation_key(annotation: &str) -> Option<(&str, AnnotationKey)> {
    let (prefix, key) = annotation.split_once('/')?;
    let provider = prefix.strip_suffix(".kubernetes.io")?;
    let key = AnnotationKey::ALL.into_iter().find(|k| k.as_str() == key)?;
    (!provider.is_empty()).then_some((provider, key))
}

/// The conventional provider of a kube-ovn attachment NAD: `<nad>.<ns>.ovn`.
pub fn attachment_provider(nad: &str, namespace: &str) -> String {
    format!("{nad}.{namespace}.{PROVIDER_SUFFIX}")
}

/// The provider of an IPAM-only NAD (macvlan/ipvlan with `ipam.type: kube-ovn`) that does not
/// set one: `<nad>.<ns>`.
pub fn ipam_provider(nad: &str, namespace: &str) -> String {
    format!("{nad}.{namespace}")
}

/// The provider of one attachment of a NAD that the pod attaches more than once: `<p>.<ifname>`.
pub fn per_interface_provider(provider: &str, ifname: &str) -> String {
    format!("{provider}.{ifname}")
}

/// Checks a provider: a DNS-1123 subdomain short enough that `<provider>.kubernetes.io` is a
/// valid annotation-key prefix.
pub fn validate_provider(field: &str, provider: &str) -> Result<()> {
    validation::dns1123_subdomain(field, provider)?;
    let prefix_len = provider.len() + ".kubernetes.io".len();
    if prefix_len > validation::DNS1123_SUBDOMAIN_MAX {
        return Err(Error::invalid(
            field,
            provider,
            format!(
                "too long: \"<provider>.kubernetes.io\" must be at most {} characters",
                validation::DNS1123_SUBDOMAIN_MAX
            ),
        ));
    }
    Ok(())
}

/// FNV-1a, 64 bit, of `parts` joined by `/`: the one stable hash behind derived names (host
/// veth names, router port MACs). Stable across Rust versions and platforms, which std's hasher
/// is not; changing it would rename the ports of running pods across an upgrade.
pub fn fnv1a64(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator that cannot appear in a container id keeps ("ab","c") != ("a","bc").
            hash ^= u64::from(b'/');
            hash = hash.wrapping_mul(PRIME);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// The `Logical_Switch_Port` of an attachment, also the name of its `IP` CR:
/// `<pod>.<ns>.<provider>`.
pub fn lsp_name(pod: &str, namespace: &str, provider: &str) -> String {
    format!("{pod}.{namespace}.{provider}")
}

/// The `IP` CR of an attachment; the same string as [`lsp_name`].
pub fn ip_cr_name(pod: &str, namespace: &str, provider: &str) -> String {
    lsp_name(pod, namespace, provider)
}

/// The `Logical_Router` of a VPC: the VPC's name.
pub fn logical_router(vpc: &str) -> String {
    vpc.to_owned()
}

/// The `Logical_Switch` of a subnet: the subnet's name.
pub fn logical_switch(subnet: &str) -> String {
    subnet.to_owned()
}

/// The router-side port joining a subnet to its VPC: `<vpc>-<subnet>`.
pub fn router_port(vpc: &str, subnet: &str) -> String {
    format!("{vpc}-{subnet}")
}

/// The switch-side port joining a subnet to its VPC: `<subnet>-<vpc>`.
pub fn switch_router_port(subnet: &str, vpc: &str) -> String {
    format!("{subnet}-{vpc}")
}

/// The `Port_Group` of a security group: `ovn.sg.<sg>` with `-` replaced by `.` (OVN port group
/// names become address-set names, where `-` is not allowed).
pub fn port_group(security_group: &str) -> String {
    format!("ovn.sg.{}", security_group.replace('-', "."))
}

/// The `Address_Set` of a security group's member addresses of one family:
/// `ovn.sg.<sg>.associated.v4` / `.v6` (upstream's names, `-` replaced by `.` as in
/// [`port_group`]); rules with `remoteType: securityGroup` match on it.
pub fn security_group_address_set(security_group: &str, v6: bool) -> String {
    let family = if v6 { "v6" } else { "v4" };
    format!("{}.associated.{family}", port_group(security_group))
}

/// The port group every port with a security group is in: its ACLs drop what no group's rule
/// allows (upstream's `ovn.sg.kubeovn_deny_all`).
pub const DENY_ALL_PORT_GROUP: &str = "ovn.sg.kubeovn_deny_all";

/// `external_ids` key naming the SecurityGroup a port group, address set or ACL belongs to.
pub const EXTERNAL_ID_SECURITY_GROUP: &str = "sg";

/// `external_ids` key on an attachment's port listing its security groups (`sg1/sg2`, sorted).
pub const EXTERNAL_ID_SECURITY_GROUPS: &str = "security_groups";

/// The `Port_Group` of a MultiNetworkPolicy: `ovn.mnp.<ns>.<name>` with `-` replaced by `_`.
/// Injective: neither part has `_`, and a namespace has no `.`, so the first `.` after the
/// prefix ends the namespace.
pub fn policy_port_group(namespace: &str, name: &str) -> String {
    format!(
        "ovn.mnp.{}.{}",
        namespace.replace('-', "_"),
        name.replace('-', "_")
    )
}

/// The `Address_Set` of the pod peers of one rule of a MultiNetworkPolicy, one family:
/// `<port group>.ingress.<i>.v4` (or `egress`, `v6`).
pub fn policy_address_set(
    namespace: &str,
    name: &str,
    ingress: bool,
    rule: usize,
    v6: bool,
) -> String {
    format!(
        "{}.{}.{rule}.{}",
        policy_port_group(namespace, name),
        if ingress { "ingress" } else { "egress" },
        if v6 { "v6" } else { "v4" }
    )
}

/// `external_ids` key naming the MultiNetworkPolicy (`<ns>/<name>`) a port group, address set
/// or ACL belongs to.
pub const EXTERNAL_ID_POLICY: &str = "mnp";

/// The `external_ids:pod` value of a pod: `<ns>/<name>`.
pub fn pod_key(namespace: &str, pod: &str) -> String {
    format!("{namespace}/{pod}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_strings() {
        assert_eq!(
            policy_port_group("my-ns", "web.db-x"),
            "ovn.mnp.my_ns.web.db_x"
        );
        assert_eq!(
            policy_address_set("a", "p", false, 3, true),
            "ovn.mnp.a.p.egress.3.v6"
        );
        assert_ne!(policy_port_group("a-b", "c"), policy_port_group("a", "b-c"));
        let p = attachment_provider("kube-ovn-vpc-network", "default");
        assert_eq!(p, "kube-ovn-vpc-network.default.ovn");
        assert_eq!(
            annotation_key(&p, AnnotationKey::IpAddress),
            "kube-ovn-vpc-network.default.ovn.kubernetes.io/ip_address"
        );
        assert_eq!(
            annotation_key(POD_WIDE_PROVIDER, AnnotationKey::IngressRate),
            "ovn.kubernetes.io/ingress_rate"
        );
        assert_eq!(ipam_provider("macvlan1", "ns1"), "macvlan1.ns1");
        assert_eq!(
            per_interface_provider(&p, "net2"),
            "kube-ovn-vpc-network.default.ovn.net2"
        );
        assert_eq!(
            lsp_name("web", "default", &p),
            "web.default.kube-ovn-vpc-network.default.ovn"
        );
        assert_eq!(
            router_port("vpc-secondary", "subnet-secondary"),
            "vpc-secondary-subnet-secondary"
        );
        assert_eq!(
            switch_router_port("subnet-secondary", "vpc-secondary"),
            "subnet-secondary-vpc-secondary"
        );
        assert_eq!(port_group("allow-web"), "ovn.sg.allow.web");
        assert_eq!(
            security_group_address_set("allow-web", false),
            "ovn.sg.allow.web.associated.v4"
        );
        assert_eq!(
            security_group_address_set("a", true),
            "ovn.sg.a.associated.v6"
        );
        assert_eq!(pod_key("default", "web"), "default/web");
        assert_eq!(EXTERNAL_ID_VENDOR, ("vendor", "kube-ovn"));
    }

    #[test]
    fn annotation_keys_round_trip() {
        for k in AnnotationKey::ALL {
            let s = annotation_key("a.b.ovn", k);
            assert_eq!(parse_annotation_key(&s), Some(("a.b.ovn", k)));
        }
        assert_eq!(parse_annotation_key("k8s.v1.cni.cncf.io/networks"), None);
        assert_eq!(parse_annotation_key(".kubernetes.io/allocated"), None);
        assert_eq!(
            AnnotationKey::ALL
                .iter()
                .filter(|k| k.written_by_controller())
                .count(),
            7
        );
        let mut distinct = AnnotationKey::ALL.to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), AnnotationKey::ALL.len());
    }

    #[test]
    fn fnv1a64_is_the_published_function() {
        // FNV-1a test vectors (Fowler/Noll/Vo): "" and "a".
        assert_eq!(fnv1a64(&[""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&["a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&["a", "b"]), fnv1a64(&["a/b"]));
        assert_ne!(fnv1a64(&["ab", "c"]), fnv1a64(&["a", "bc"]));
    }

    #[test]
    fn provider_rules() {
        validate_provider("provider", "kube-ovn-vpc-network.default.ovn").unwrap();
        assert!(validate_provider("provider", "").is_err());
        assert!(validate_provider("provider", "Upper.ovn").is_err());
        let e = validate_provider("provider", &"a".repeat(245)).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"<provider>.kubernetes.io\" must be at most 253"),
            "{e}"
        );
    }
}
