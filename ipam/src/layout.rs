//! Subnet and pool specifications, and their validation into a [`Layout`]: per family, the CIDR,
//! the reserved addresses, the sorted exclude ranges and pool ranges, and the allocatable ranges of
//! every zone (zone 0 is the subnet outside all pools, zone `i + 1` is pool `i`).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{Family, Span, from_u128, parse_span, to_u128};
use crate::error::Error;

/// What the allocator needs from a `Subnet` custom resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubnetSpec {
    /// Subnet name (the `Logical_Switch` name).
    pub name: String,
    /// `spec.cidrBlock`: one CIDR, or an IPv4 and an IPv6 CIDR joined by a comma (dual stack).
    pub cidr_block: String,
    /// `spec.gateway`: one address per family, comma-joined. A family without one gets the
    /// first host address of its CIDR.
    pub gateway: Option<String>,
    /// `spec.excludeIps`: addresses, `first..last` ranges or CIDRs never handed out.
    pub exclude_ips: Vec<String>,
}

impl SubnetSpec {
    /// A spec with a name and `cidrBlock`, default gateway and no excludes.
    pub fn new(name: impl Into<String>, cidr_block: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            cidr_block: cidr_block.into(),
            ..Self::default()
        }
    }

    /// Sets the gateway (`"10.0.0.1"` or `"10.0.0.1,fd00::1"`).
    pub fn with_gateway(mut self, gateway: impl Into<String>) -> Self {
        self.gateway = Some(gateway.into());
        self
    }

    /// Adds `excludeIps` entries.
    pub fn with_excludes<S: Into<String>>(mut self, entries: impl IntoIterator<Item = S>) -> Self {
        self.exclude_ips.extend(entries.into_iter().map(Into::into));
        self
    }
}

/// What the allocator needs from an `IPPool` custom resource: a named set of addresses inside
/// one subnet. Entries outside the subnet's CIDRs are ignored (upstream: the pool is the
/// intersection of `spec.ips` and the subnet); two pools of one subnet may not overlap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// `spec.ips`: addresses, `first..last` ranges or CIDRs.
    pub ips: Vec<String>,
}

impl PoolSpec {
    /// A pool spec from a name and entries.
    pub fn new<S: Into<String>>(name: impl Into<String>, ips: impl IntoIterator<Item = S>) -> Self {
        Self {
            name: name.into(),
            ips: ips.into_iter().map(Into::into).collect(),
        }
    }
}

/// Why an address of the family's CIDR may not be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocked {
    Outside,
    Network,
    Broadcast,
    Gateway,
    Excluded,
}

/// The validated layout of one family of a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FamilyLayout {
    pub(crate) family: Family,
    pub(crate) cidr: IpNet,
    pub(crate) lo: u128,
    pub(crate) hi: u128,
    pub(crate) gateway: u128,
    pub(crate) network: Option<u128>,
    pub(crate) broadcast: Option<u128>,
    /// Sorted, disjoint.
    pub(crate) excludes: Vec<(u128, u128)>,
    /// Sorted, disjoint `(start, end, pool index)`, clipped to the CIDR.
    pub(crate) pool_ranges: Vec<(u128, u128, usize)>,
    /// Allocatable ranges per zone; zone 0 is outside all pools, zone `i + 1` is pool `i`.
    pub(crate) zone_allowed: Vec<Vec<(u128, u128)>>,
}

impl FamilyLayout {
    /// The zone an address of the CIDR belongs to.
    pub(crate) fn zone_of(&self, p: u128) -> usize {
        let i = self
            .pool_ranges
            .partition_point(|&(start, _, _)| start <= p);
        match i.checked_sub(1).map(|i| self.pool_ranges[i]) {
            Some((_, end, pool)) if p <= end => pool + 1,
            _ => 0,
        }
    }

    /// Whether pool `pool` has any address (even a reserved one) in this family.
    pub(crate) fn pool_has_ranges(&self, pool: usize) -> bool {
        self.pool_ranges.iter().any(|&(_, _, i)| i == pool)
    }

    pub(crate) fn is_excluded(&self, p: u128) -> bool {
        let i = self.excludes.partition_point(|&(start, _)| start <= p);
        i.checked_sub(1).is_some_and(|i| p <= self.excludes[i].1)
    }

    /// Why `p` may not be handed out, if it may not; excludes are checked last.
    pub(crate) fn blocked(&self, p: u128) -> Option<Blocked> {
        if p < self.lo || p > self.hi {
            Some(Blocked::Outside)
        } else if self.network == Some(p) {
            Some(Blocked::Network)
        } else if self.broadcast == Some(p) {
            Some(Blocked::Broadcast)
        } else if self.gateway == p {
            Some(Blocked::Gateway)
        } else if self.is_excluded(p) {
            Some(Blocked::Excluded)
        } else {
            None
        }
    }

    pub(crate) fn addr(&self, p: u128) -> IpAddr {
        from_u128(self.family, p)
    }
}

/// The validated layout of a subnet with its pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) families: [Option<FamilyLayout>; 2],
    /// Pool names in ascending order: pool `i` is zone `i + 1`.
    pub(crate) pool_names: Vec<String>,
}

impl Layout {
    pub(crate) fn family(&self, family: Family) -> Option<&FamilyLayout> {
        self.families[family.index()].as_ref()
    }

    /// Validates `spec` with `pools` (sorted by name, names unique).
    pub(crate) fn build(spec: &SubnetSpec, pools: &[PoolSpec]) -> Result<Layout, Error> {
        let subnet = &spec.name;
        let mut cidrs: [Option<IpNet>; 2] = [None, None];
        for entry in spec.cidr_block.split(',').map(str::trim) {
            let invalid = |reason: &str| Error::InvalidCidr {
                subnet: subnet.clone(),
                entry: entry.to_owned(),
                reason: reason.to_owned(),
            };
            if entry.is_empty() {
                return Err(invalid("empty entry"));
            }
            let net: IpNet = entry.parse().map_err(|_| invalid("not a CIDR"))?;
            if net.trunc() != net {
                return Err(invalid(&format!(
                    "host bits are set; did you mean {}?",
                    net.trunc()
                )));
            }
            let slot = &mut cidrs[Family::of(&net.addr()).index()];
            if slot.is_some() {
                return Err(invalid("a second CIDR of the same family"));
            }
            *slot = Some(net);
        }

        let mut gateways: [Option<(String, u128)>; 2] = [None, None];
        if let Some(gateway) = &spec.gateway {
            for entry in gateway.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let invalid = |reason: String| Error::InvalidGateway {
                    subnet: subnet.clone(),
                    entry: entry.to_owned(),
                    reason,
                };
                let ip: IpAddr = entry
                    .parse()
                    .map_err(|_| invalid("not an IP address".into()))?;
                let slot = &mut gateways[Family::of(&ip).index()];
                if slot.is_some() {
                    return Err(invalid("a second gateway of the same family".into()));
                }
                *slot = Some((entry.to_owned(), to_u128(&ip)));
            }
        }

        let mut excludes: [Vec<(u128, u128, &str)>; 2] = [Vec::new(), Vec::new()];
        for entry in &spec.exclude_ips {
            let invalid = |reason: String| Error::InvalidExclude {
                subnet: subnet.clone(),
                entry: entry.clone(),
                reason,
            };
            let span = parse_span(entry).map_err(invalid)?;
            let Some(cidr) = cidrs[span.family.index()] else {
                return Err(invalid(format!("the subnet has no {} CIDR", span.family)));
            };
            if span.start < to_u128(&cidr.network()) || span.end > to_u128(&cidr.broadcast()) {
                return Err(invalid(format!("not inside {cidr}")));
            }
            excludes[span.family.index()].push((span.start, span.end, entry));
        }

        let mut pool_spans: [Vec<(u128, u128, usize, &str)>; 2] = [Vec::new(), Vec::new()];
        for (index, pool) in pools.iter().enumerate() {
            for entry in &pool.ips {
                let span: Span = parse_span(entry).map_err(|reason| Error::InvalidPoolEntry {
                    subnet: subnet.clone(),
                    pool: pool.name.clone(),
                    entry: entry.clone(),
                    reason,
                })?;
                let Some(cidr) = cidrs[span.family.index()] else {
                    continue;
                };
                let start = span.start.max(to_u128(&cidr.network()));
                let end = span.end.min(to_u128(&cidr.broadcast()));
                if start <= end {
                    pool_spans[span.family.index()].push((start, end, index, entry));
                }
            }
        }

        let mut families: [Option<FamilyLayout>; 2] = [None, None];
        for family in Family::ALL {
            let Some(cidr) = cidrs[family.index()] else {
                if let Some((entry, _)) = &gateways[family.index()] {
                    return Err(Error::InvalidGateway {
                        subnet: subnet.clone(),
                        entry: entry.clone(),
                        reason: format!("the subnet has no {family} CIDR"),
                    });
                }
                continue;
            };
            families[family.index()] = Some(Self::build_family(
                subnet,
                family,
                cidr,
                gateways[family.index()].as_ref(),
                std::mem::take(&mut excludes[family.index()]),
                std::mem::take(&mut pool_spans[family.index()]),
                pools,
            )?);
        }
        Ok(Layout {
            families,
            pool_names: pools.iter().map(|p| p.name.clone()).collect(),
        })
    }

    fn build_family(
        subnet: &str,
        family: Family,
        cidr: IpNet,
        gateway: Option<&(String, u128)>,
        mut excludes: Vec<(u128, u128, &str)>,
        mut pool_spans: Vec<(u128, u128, usize, &str)>,
        pools: &[PoolSpec],
    ) -> Result<FamilyLayout, Error> {
        let lo = to_u128(&cidr.network());
        let hi = to_u128(&cidr.broadcast());
        // /31 and /32 (IPv4), /127 and /128 (IPv6) have no network or broadcast address to spare.
        let point_to_point = cidr.prefix_len() + 1 >= family.bits();
        let network = (!point_to_point).then_some(lo);
        let broadcast = (!point_to_point && family == Family::V4).then_some(hi);
        let first_host = if point_to_point { lo } else { lo + 1 };
        let gateway = match gateway {
            None => first_host,
            Some((entry, g)) => {
                let invalid = |reason: String| Error::InvalidGateway {
                    subnet: subnet.to_owned(),
                    entry: entry.clone(),
                    reason,
                };
                if *g < lo || *g > hi {
                    return Err(invalid(format!("not inside {cidr}")));
                }
                if network == Some(*g) {
                    return Err(invalid(format!("it is the network address of {cidr}")));
                }
                if broadcast == Some(*g) {
                    return Err(invalid(format!("it is the broadcast address of {cidr}")));
                }
                *g
            }
        };

        excludes.sort_unstable_by_key(|&(start, end, _)| (start, end));
        for pair in excludes.windows(2) {
            if pair[1].0 <= pair[0].1 {
                return Err(Error::OverlappingExcludes {
                    subnet: subnet.to_owned(),
                    entry: pair[1].2.to_owned(),
                    other: pair[0].2.to_owned(),
                });
            }
        }

        // Ranges of one pool may overlap each other (merged); two pools may not.
        pool_spans.sort_unstable_by_key(|&(start, end, pool, _)| (start, end, pool));
        let mut pool_ranges: Vec<(u128, u128, usize)> = Vec::new();
        for (start, end, pool, entry) in pool_spans {
            match pool_ranges.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) && last.2 == pool => {
                    last.1 = last.1.max(end);
                }
                Some(last) if start <= last.1 => {
                    return Err(Error::OverlappingPools {
                        subnet: subnet.to_owned(),
                        pool: pools[pool].name.clone(),
                        entry: entry.to_owned(),
                        other: pools[last.2].name.clone(),
                    });
                }
                _ => pool_ranges.push((start, end, pool)),
            }
        }

        let mut blocked: Vec<(u128, u128)> = excludes.iter().map(|&(s, e, _)| (s, e)).collect();
        blocked.extend(network.map(|n| (n, n)));
        blocked.extend(broadcast.map(|b| (b, b)));
        blocked.push((gateway, gateway));
        let blocked = normalize(blocked);

        let mut zone_allowed = vec![Vec::new(); pools.len() + 1];
        for &(start, end, pool) in &pool_ranges {
            zone_allowed[pool + 1].extend(subtract(&[(start, end)], &blocked));
        }
        let pooled: Vec<(u128, u128)> = pool_ranges.iter().map(|&(s, e, _)| (s, e)).collect();
        let outside_pools = subtract(&[(lo, hi)], &pooled);
        zone_allowed[0] = subtract(&outside_pools, &blocked);

        Ok(FamilyLayout {
            family,
            cidr,
            lo,
            hi,
            gateway,
            network,
            broadcast,
            excludes: excludes.iter().map(|&(s, e, _)| (s, e)).collect(),
            pool_ranges,
            zone_allowed,
        })
    }
}

/// Sorts and merges overlapping or adjacent ranges.
fn normalize(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// `a - b` for sorted, disjoint range lists.
pub(crate) fn subtract(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(start, end) in a {
        let mut cursor = start;
        let mut exhausted = false;
        while j < b.len() && b[j].1 < cursor {
            j += 1;
        }
        let mut k = j;
        while k < b.len() && b[k].0 <= end {
            if b[k].0 > cursor {
                out.push((cursor, b[k].0 - 1));
            }
            match b[k].1.checked_add(1) {
                Some(next) => cursor = next,
                None => exhausted = true,
            }
            if exhausted || cursor > end {
                break;
            }
            k += 1;
        }
        if !exhausted && cursor <= end {
            out.push((cursor, end));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_ranges() {
        assert_eq!(subtract(&[(0, 10)], &[]), vec![(0, 10)]);
        assert_eq!(subtract(&[(0, 10)], &[(0, 10)]), vec![]);
        assert_eq!(
            subtract(&[(0, 10)], &[(3, 4), (6, 6)]),
            vec![(0, 2), (5, 5), (7, 10)]
        );
        assert_eq!(subtract(&[(0, 3), (5, 9)], &[(2, 6)]), vec![(0, 1), (7, 9)]);
        assert_eq!(subtract(&[(5, u128::MAX)], &[(7, u128::MAX)]), vec![(5, 6)]);
        assert_eq!(
            subtract(&[(5, 9), (20, 30)], &[(0, 1), (25, 40)]),
            vec![(5, 9), (20, 24)]
        );
    }

    #[test]
    fn zones_partition_the_allocatable_space() {
        let spec = SubnetSpec::new("s", "10.0.0.0/28").with_excludes(["10.0.0.3", "10.0.0.8/30"]);
        let pools = [PoolSpec::new(
            "a",
            ["10.0.0.2..10.0.0.5", "10.0.0.4", "192.168.0.0/24"],
        )];
        let layout = Layout::build(&spec, &pools).unwrap();
        let v4 = layout.family(Family::V4).unwrap();
        let base = 0x0a00_0000u128;
        assert_eq!(v4.gateway, base + 1);
        assert_eq!(
            v4.zone_allowed[1],
            vec![(base + 2, base + 2), (base + 4, base + 5)]
        );
        assert_eq!(
            v4.zone_allowed[0],
            vec![(base + 6, base + 7), (base + 12, base + 14)]
        );
        assert_eq!(v4.zone_of(base + 3), 1);
        assert_eq!(v4.zone_of(base + 6), 0);
    }
}
