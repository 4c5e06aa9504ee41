//! The allocation state of one subnet: per family, the free space of every zone as a
//! [`RangeTree`], the owner of every allocated address, and the subnet's MAC owners.

use crate::Map;
use std::sync::Arc;

use crate::addr::{Family, MacAddr};
use crate::error::Error;
use crate::layout::{Blocked, FamilyLayout, Layout, PoolSpec, SubnetSpec, subtract};
use crate::range_tree::RangeTree;

/// One allocation zone: the part of a family outside all pools (zone 0) or one pool.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    pub(crate) free: RangeTree,
    /// Allocated addresses that lie in this zone (including ones excluded after allocation).
    pub(crate) using: u128,
    /// Where the sequential policy looks next.
    pub(crate) cursor: u128,
}

impl PartialEq for Zone {
    /// Same free addresses and use count; the sequential cursor is a hint, not state.
    fn eq(&self, other: &Self) -> bool {
        self.using == other.using
            && self.free.len() == other.free.len()
            && self.free.ranges() == other.free.ranges()
    }
}

/// The allocation state of one family of a subnet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FamilyState {
    pub(crate) layout: FamilyLayout,
    pub(crate) zones: Vec<Zone>,
    pub(crate) owners: Map<u128, Arc<str>>,
}

impl FamilyState {
    /// Recomputes every zone's free space from the layout and the owned addresses: `O(n log n)`.
    fn rebuild_zones(&mut self) {
        let mut used: Vec<u128> = self.owners.keys().copied().collect();
        used.sort_unstable();
        let zone_count = self.layout.zone_allowed.len();
        let mut per_zone: Vec<Vec<(u128, u128)>> = vec![Vec::new(); zone_count];
        for p in used {
            per_zone[self.layout.zone_of(p)].push((p, p));
        }
        self.zones = per_zone
            .into_iter()
            .zip(&self.layout.zone_allowed)
            .map(|(used, allowed)| Zone {
                free: RangeTree::from_sorted(subtract(allowed, &used)),
                using: used.len() as u128,
                cursor: used.last().map_or(0, |&(p, _)| p.saturating_add(1)),
            })
            .collect();
    }

    /// Takes `p` (known allocatable and unowned) for `key`.
    pub(crate) fn take(&mut self, p: u128, key: &Arc<str>, sequential: bool) {
        let zone = &mut self.zones[self.layout.zone_of(p)];
        let was_free = zone.free.remove(p);
        debug_assert!(was_free, "checked free before taking");
        zone.using += 1;
        if sequential {
            zone.cursor = p.saturating_add(1);
        }
        self.owners.insert(p, Arc::clone(key));
    }

    /// Gives `p` back; it becomes free again unless it was excluded meanwhile.
    pub(crate) fn give_back(&mut self, p: u128) {
        if self.owners.remove(&p).is_none() {
            return;
        }
        let blocked = self.layout.blocked(p);
        let zone = &mut self.zones[self.layout.zone_of(p)];
        zone.using = zone.using.saturating_sub(1);
        if blocked.is_none() {
            zone.free.insert(p);
        }
    }

    /// The zone requests for `pool` take this family's addresses from: the pool's zone if the
    /// pool has addresses of this family, else the subnet outside all pools.
    pub(crate) fn zone_for(&self, pool: Option<usize>) -> usize {
        match pool {
            Some(i) if self.layout.pool_has_ranges(i) => i + 1,
            _ => 0,
        }
    }
}

/// One subnet: its spec, pools, layout and allocation state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subnet {
    pub(crate) name: Arc<str>,
    pub(crate) spec: SubnetSpec,
    /// Sorted by name, names unique.
    pub(crate) pools: Vec<PoolSpec>,
    pub(crate) pool_names: Vec<String>,
    pub(crate) families: [Option<FamilyState>; 2],
    pub(crate) macs: Map<MacAddr, Arc<str>>,
}

impl Subnet {
    pub(crate) fn new(spec: SubnetSpec, pools: Vec<PoolSpec>) -> Result<Self, Error> {
        let layout = Layout::build(&spec, &pools)?;
        let mut subnet = Subnet {
            name: Arc::from(spec.name.as_str()),
            spec,
            pools,
            pool_names: Vec::new(),
            families: [None, None],
            macs: Map::default(),
        };
        subnet.install(layout);
        Ok(subnet)
    }

    pub(crate) fn family(&self, family: Family) -> Option<&FamilyState> {
        self.families[family.index()].as_ref()
    }

    pub(crate) fn family_mut(&mut self, family: Family) -> Option<&mut FamilyState> {
        self.families[family.index()].as_mut()
    }

    pub(crate) fn pool_index(&self, name: &str) -> Option<usize> {
        self.pool_names
            .binary_search_by(|n| n.as_str().cmp(name))
            .ok()
    }

    /// A key holding something in this subnet, for error messages.
    pub(crate) fn some_owner(&self) -> Option<&Arc<str>> {
        self.families
            .iter()
            .flatten()
            .find_map(|f| f.owners.values().next())
            .or_else(|| self.macs.values().next())
    }

    /// Replaces spec and pools if no existing allocation would be orphaned; state is unchanged
    /// on error.
    pub(crate) fn reconfigure(
        &mut self,
        spec: SubnetSpec,
        pools: Vec<PoolSpec>,
    ) -> Result<(), Error> {
        let layout = Layout::build(&spec, &pools)?;
        let mut orphans: Vec<(Arc<str>, std::net::IpAddr, String)> = Vec::new();
        for family in Family::ALL {
            let Some(state) = self.family(family) else {
                continue;
            };
            let new = layout.family(family);
            for (&p, key) in &state.owners {
                let reason = match new {
                    None => Some(format!(
                        "outside the subnet, which would have no {family} CIDR"
                    )),
                    Some(new) => match new.blocked(p) {
                        Some(Blocked::Outside) => Some(format!("outside {}", new.cidr)),
                        Some(Blocked::Network) => Some("the network address".to_owned()),
                        Some(Blocked::Broadcast) => Some("the broadcast address".to_owned()),
                        Some(Blocked::Gateway) => Some("the gateway".to_owned()),
                        // Excluding an allocated address keeps the allocation; it is simply not
                        // handed out again once released.
                        Some(Blocked::Excluded) | None => None,
                    },
                };
                if let Some(reason) = reason {
                    orphans.push((Arc::clone(key), state.layout.addr(p), reason));
                }
            }
        }
        if let Some((key, address, reason)) = orphans.iter().min_by_key(|o| (o.1, o.0.clone())) {
            return Err(Error::WouldOrphan {
                subnet: spec.name.clone(),
                key: key.to_string(),
                address: *address,
                reason: reason.clone(),
                others: orphans.len() - 1,
            });
        }
        self.spec = spec;
        self.pools = pools;
        self.install(layout);
        Ok(())
    }

    /// Installs a validated layout and recomputes all zones from the current owners.
    fn install(&mut self, layout: Layout) {
        let Layout {
            families,
            pool_names,
        } = layout;
        self.pool_names = pool_names;
        for (slot, family_layout) in self.families.iter_mut().zip(families) {
            let owners = slot.take().map(|s| s.owners).unwrap_or_default();
            *slot = family_layout.map(|layout| {
                let mut state = FamilyState {
                    layout,
                    zones: Vec::new(),
                    owners,
                };
                state.rebuild_zones();
                state
            });
        }
    }

    /// Recomputes all zones after owners were filled in bulk.
    pub(crate) fn rebuild_zones(&mut self) {
        for state in self.families.iter_mut().flatten() {
            state.rebuild_zones();
        }
    }

    /// Drops every allocation (rebuild starts from here).
    pub(crate) fn clear_allocations(&mut self) {
        self.macs.clear();
        for state in self.families.iter_mut().flatten() {
            state.owners.clear();
        }
    }
}
