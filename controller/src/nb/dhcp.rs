//! OVN native DHCP for subnets with `enableDHCP`: one `DHCP_Options` row per family of the
//! subnet (tagged with our vendor id, `subnet` and `protocol`), referenced from every attachment
//! port of the subnet (`dhcpv4_options` / `dhcpv6_options`), so ovn-controller answers the
//! pod's DHCP requests with the address the controller allocated.
//!
//! Options follow upstream Kube-OVN: IPv4 `lease_time=3600`, `router=<gateway>`,
//! `server_id=169.254.0.254`, `server_mac=<mac>` (and `mtu` when the Subnet sets one); IPv6
//! `server_id=<mac>`. `spec.dhcpV4Options` / `spec.dhcpV6Options` (`key=value,...`, a value may
//! be a braced list such as `dns_server={10.0.0.2,10.0.0.3}`) override or add options.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crds::naming::EXTERNAL_ID_VENDOR;
use ipnet::IpNet;
use ovn_api::replica::Replica;
use ovn_api::tables::nb::{DhcpOptions, LogicalSwitchPort};
use ovn_api::tables::{Table, set_raw};
use ovn_api::txn::Txn;
use ovn_api::value::{Datum, Uuid};

use super::{Nb, NbError, db, is_ours, owned_ids};

/// `external_ids:protocol` of an IPv4 row.
pub const PROTOCOL_V4: &str = "IPv4";
/// `external_ids:protocol` of an IPv6 row.
pub const PROTOCOL_V6: &str = "IPv6";

/// The DHCP server address OVN answers from (upstream's choice: link-local, never in a subnet).
pub const SERVER_ID_V4: &str = "169.254.0.254";

/// One family's wanted row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The subnet's CIDR of this family.
    pub cidr: IpNet,
    /// The options column.
    pub options: BTreeMap<String, String>,
}

/// What a subnet needs: a row per family when DHCP is on, none when it is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpPlan {
    /// Subnet (= logical switch) name.
    pub subnet: String,
    /// IPv4 row, if DHCP is on and the subnet has IPv4.
    pub v4: Option<Family>,
    /// IPv6 row, if DHCP is on and the subnet has IPv6.
    pub v6: Option<Family>,
}

/// Parses a user's options string (`key=value,key={a,b},...`). Keys are lower-case letters,
/// digits and `_`; every entry needs a value.
pub fn parse_options(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut entries = Vec::new();
    let (mut depth, mut start) = (0_u32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced '}}' in {text:?}"))?;
            }
            ',' if depth == 0 => {
                entries.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced '{{' in {text:?}"));
    }
    entries.push(&text[start..]);
    for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
        let (k, v) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!("{k:?} is not a DHCP option name"));
        }
        if v.is_empty() {
            return Err(format!("option {k} has no value"));
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// The IPv4 options: upstream's defaults, then the user's.
pub fn options_v4(
    gateway: IpAddr,
    server_mac: &str,
    mtu: Option<u32>,
    user: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut o = BTreeMap::from([
        ("lease_time".to_owned(), "3600".to_owned()),
        ("router".to_owned(), gateway.to_string()),
        ("server_id".to_owned(), SERVER_ID_V4.to_owned()),
        ("server_mac".to_owned(), server_mac.to_owned()),
    ]);
    if let Some(mtu) = mtu {
        o.insert("mtu".into(), mtu.to_string());
    }
    if let Some(user) = user {
        o.extend(parse_options(user).map_err(|e| format!("spec.dhcpV4Options: {e}"))?);
    }
    Ok(o)
}

/// The IPv6 options: upstream's default (`server_id`), then the user's.
pub fn options_v6(
    server_mac: &str,
    user: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut o = BTreeMap::from([("server_id".to_owned(), server_mac.to_owned())]);
    if let Some(user) = user {
        o.extend(parse_options(user).map_err(|e| format!("spec.dhcpV6Options: {e}"))?);
    }
    Ok(o)
}

/// What a port's reference to one family's row should be.
enum Ref {
    /// No row (DHCP off, or the family is not in the subnet).
    Clear,
    /// A row that exists.
    Existing(Uuid),
    /// A row inserted in this transaction.
    New(ovn_api::txn::NamedUuid),
}

impl Ref {
    /// Whether a port referencing `have` is already right.
    fn is(&self, have: Option<Uuid>) -> bool {
        match self {
            Ref::Clear => have.is_none(),
            Ref::Existing(u) => have == Some(*u),
            Ref::New(_) => false,
        }
    }

    /// The column value.
    fn datum(&self) -> Datum {
        match self {
            Ref::Clear => Datum::default(),
            Ref::Existing(u) => Datum::from(ovn_api::value::Atom::Uuid(*u)),
            Ref::New(n) => Datum::from(n),
        }
    }
}

/// Our rows of `subnet`: (uuid, protocol).
fn rows_of(r: &Replica, subnet: &str) -> Vec<(Uuid, String)> {
    let Some(t) = r.table(DhcpOptions::TABLE) else {
        return Vec::new();
    };
    t.by_external_id("subnet", subnet)
        .filter(|row| row.external_id(EXTERNAL_ID_VENDOR.0) == Some(EXTERNAL_ID_VENDOR.1))
        .map(|row| {
            (
                row.uuid,
                row.external_id("protocol").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The rows attachment ports of `subnet` should reference: (IPv4, IPv6).
pub fn uuids_of(nb: &Nb, subnet: &str) -> (Option<Uuid>, Option<Uuid>) {
    let rows = rows_of(&nb.replica(), subnet);
    let find = |p: &str| rows.iter().find(|(_, proto)| proto == p).map(|(u, _)| *u);
    (find(PROTOCOL_V4), find(PROTOCOL_V6))
}

/// Adds to `tx` what brings the subnet's rows and its attachment ports' references in line
/// with `plan` (nothing when all is as planned). An error (a row that does not convert) can
/// come after operations were added: drop `tx` then.
#[allow(clippy::result_large_err)] // The NbError every function of nb returns (async ones too).
pub fn plan_dhcp(r: &Replica, tx: &mut Txn, plan: &DhcpPlan) -> Result<(), NbError> {
    let subnet = plan.subnet.as_str();
    let existing = rows_of(r, subnet);
    // Per family: the reference ports get.
    let mut refs = [Ref::Clear, Ref::Clear];
    for (i, (protocol, wanted)) in [(PROTOCOL_V4, &plan.v4), (PROTOCOL_V6, &plan.v6)]
        .into_iter()
        .enumerate()
    {
        let mine: Vec<Uuid> = existing
            .iter()
            .filter(|(_, p)| p == protocol)
            .map(|(u, _)| *u)
            .collect();
        let Some(family) = wanted else {
            for u in mine {
                // Ports reference rows weakly: their references go with the row.
                tx.delete::<DhcpOptions>(u);
            }
            refs[i] = Ref::Clear;
            continue;
        };
        let cidr = family.cidr.trunc().to_string();
        let current = mine
            .first()
            .map(|u| r.get::<DhcpOptions>(*u))
            .transpose()
            .map_err(db(format!("reading DHCP options of {subnet}")))?
            .flatten();
        match current {
            Some(row) => {
                if row.cidr != cidr || row.options != family.options {
                    tx.update::<DhcpOptions>(
                        row.uuid,
                        [
                            DhcpOptions::CIDR.to(&cidr),
                            DhcpOptions::OPTIONS.to(&family.options),
                        ],
                    );
                }
                refs[i] = Ref::Existing(row.uuid);
            }
            None => {
                let named = tx.insert(&DhcpOptions {
                    cidr,
                    options: family.options.clone(),
                    external_ids: owned_ids(&[("subnet", subnet), ("protocol", protocol)]),
                    ..Default::default()
                });
                refs[i] = Ref::New(named);
            }
        }
        // Duplicates (a second row of ours for the same family) are removed.
        for u in mine.into_iter().skip(1) {
            tx.delete::<DhcpOptions>(u);
        }
    }
    // Every attachment port of the subnet points at the rows.
    let ports: Vec<LogicalSwitchPort> = r
        .by_external_id::<LogicalSwitchPort>(crds::naming::EXTERNAL_ID_LOGICAL_SWITCH, subnet)
        .map_err(db(format!("reading ports of {subnet}")))?
        .into_iter()
        .filter(|p| is_ours(&p.external_ids))
        .collect();
    let [v4, v6] = refs;
    for p in ports {
        if v4.is(p.dhcpv4_options) && v6.is(p.dhcpv6_options) {
            continue;
        }
        tx.update::<LogicalSwitchPort>(
            p.uuid,
            [
                set_raw::<LogicalSwitchPort>(LogicalSwitchPort::DHCPV4_OPTIONS.name(), v4.datum()),
                set_raw::<LogicalSwitchPort>(LogicalSwitchPort::DHCPV6_OPTIONS.name(), v6.datum()),
            ],
        );
    }
    Ok(())
}

/// Brings the subnet's rows and its attachment ports' references in line with `plan`, in one
/// transaction (nothing when all is as planned). Returns the rows now in use (IPv4, IPv6).
pub async fn ensure_dhcp(
    nb: &Nb,
    plan: &DhcpPlan,
) -> Result<(Option<Uuid>, Option<Uuid>), NbError> {
    let mut tx = Txn::new();
    plan_dhcp(&nb.replica(), &mut tx, plan)?;
    nb.commit(
        tx,
        format!("writing DHCP options of subnet {}", plan.subnet),
    )
    .await?;
    Ok(uuids_of(nb, &plan.subnet))
}

/// Adds to `tx` the deletion of every row of ours for `subnet` (its references on ports go
/// with them); returns how many.
pub fn plan_delete_dhcp(r: &Replica, tx: &mut Txn, subnet: &str) -> usize {
    let rows = rows_of(r, subnet);
    for (u, _) in &rows {
        tx.delete::<DhcpOptions>(*u);
    }
    rows.len()
}

/// Deletes every row of ours for `subnet`, in one transaction.
pub async fn delete_dhcp(nb: &Nb, subnet: &str) -> Result<usize, NbError> {
    let mut tx = Txn::new();
    let removed = plan_delete_dhcp(&nb.replica(), &mut tx, subnet);
    nb.commit(tx, format!("deleting DHCP options of subnet {subnet}"))
        .await?;
    Ok(removed)
}

/// The subnets our rows belong to.
pub fn owned_subnets(nb: &Nb) -> std::collections::BTreeSet<String> {
    let r = nb.replica();
    let Some(t) = r.table(DhcpOptions::TABLE) else {
        return Default::default();
    };
    t.by_external_id(EXTERNAL_ID_VENDOR.0, EXTERNAL_ID_VENDOR.1)
        .filter_map(|row| row.external_id("subnet").map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_options_parse_with_braced_lists_and_errors_name_the_entry() {
        let o = parse_options("lease_time=600, dns_server={10.0.0.2,10.0.0.3},domain_name=\"x\"")
            .unwrap();
        assert_eq!(o["lease_time"], "600");
        assert_eq!(o["dns_server"], "{10.0.0.2,10.0.0.3}");
        assert_eq!(o["domain_name"], "\"x\"");
        assert!(parse_options("").unwrap().is_empty());
        for (bad, needle) in [
            ("lease_time", "not key=value"),
            ("=3", "not a DHCP option name"),
            ("Lease=3", "not a DHCP option name"),
            ("mtu=", "no value"),
            ("dns_server={1.1.1.1", "unbalanced"),
            ("dns_server=1.1.1.1}", "unbalanced"),
        ] {
            let e = parse_options(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_follow_upstream_and_the_user_overrides() {
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        let o = options_v4(gw, "0a:00:00:00:00:01", Some(1400), None).unwrap();
        assert_eq!(o["lease_time"], "3600");
        assert_eq!(o["router"], "10.0.0.1");
        assert_eq!(o["server_id"], SERVER_ID_V4);
        assert_eq!(o["server_mac"], "0a:00:00:00:00:01");
        assert_eq!(o["mtu"], "1400");
        let o = options_v4(gw, "m", None, Some("lease_time=60")).unwrap();
        assert_eq!(o["lease_time"], "60");
        assert!(!o.contains_key("mtu"));
        let e = options_v4(gw, "m", None, Some("oops")).unwrap_err();
        assert!(e.starts_with("spec.dhcpV4Options:"), "{e}");
        let o = options_v6("m", Some("dns_server=fd00::2")).unwrap();
        assert_eq!(
            (o["server_id"].as_str(), o["dns_server"].as_str()),
            ("m", "fd00::2")
        );
    }
}
