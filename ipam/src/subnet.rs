//! The allocation state of one subnet: per family, the free space of every zone as a
//! [`FreeSpace`] tree and the index from allocated addresses to their leases; the index of the
//! subnet's MACs. Leases themselves live in [`Leases`]; the indexes hold slot numbers.

use crate::addr::{Family, MacAddr};
use crate::error::Error;
use crate::index::Index;
use crate::layout::{Blocked, FamilyLayout, Layout, PoolSpec, SubnetSpec, subtract};
use crate::leases::Leases;
use crate::range_tree::FreeSpace;

/// One allocation zone: the part of a family outside all pools (zone 0) or one pool.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    pub(crate) free: FreeSpace,
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
#[derive(Debug, Clone)]
pub(crate) struct FamilyState {
    pub(crate) layout: FamilyLayout,
    pub(crate) zones: Vec<Zone>,
    /// Allocated address → lease slot. IPv4 addresses are their own tags (no slab read to
    /// confirm a match); IPv6 ones are tagged by hash.
    owners: Index,
}

impl PartialEq for FamilyState {
    /// Same layout, free space and number of owners; who owns what is compared through the
    /// leases (see `Ipam`'s `PartialEq`).
    fn eq(&self, other: &Self) -> bool {
        self.layout == other.layout
            && self.zones == other.zones
            && self.owners.len() == other.owners.len()
    }
}

impl FamilyState {
    fn tag(&self, p: u128) -> u32 {
        match self.layout.family {
            Family::V4 => p as u32,
            Family::V6 => self.owners.tag(&p),
        }
    }

    /// The lease slot owning `p`.
    pub(crate) fn owner(&self, p: u128, leases: &Leases) -> Option<u32> {
        let family = self.layout.family;
        self.owners.find(self.tag(p), |slot| {
            family == Family::V4 || leases.ip(slot, family) == Some(p)
        })
    }

    /// Number of allocated addresses.
    pub(crate) fn owner_count(&self) -> usize {
        self.owners.len()
    }

    /// Records that `slot` owns `p` (rebuild: free space is recomputed afterwards).
    pub(crate) fn set_owner(&mut self, p: u128, slot: u32) {
        self.owners.insert(self.tag(p), slot);
    }

    /// Recomputes every zone's free space from the layout and the owned addresses: `O(n log n)`.
    fn rebuild_zones(&mut self, leases: &Leases) {
        let family = self.layout.family;
        let mut used: Vec<u128> = self
            .owners
            .slots()
            .filter_map(|slot| leases.ip(slot, family))
            .collect();
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
                free: FreeSpace::from_sorted(family, subtract(allowed, &used)),
                using: used.len() as u128,
                cursor: used.last().map_or(0, |&(p, _)| p.saturating_add(1)),
            })
            .collect();
    }

    /// Takes `p` (known allocatable and unowned) for lease `slot`.
    pub(crate) fn take(&mut self, p: u128, slot: u32, sequential: bool) {
        let zone = &mut self.zones[self.layout.zone_of(p)];
        let was_free = zone.free.remove(p);
        debug_assert!(was_free, "checked free before taking");
        zone.using += 1;
        if sequential {
            zone.cursor = p.saturating_add(1);
        }
        self.owners.insert(self.tag(p), slot);
    }

    /// Takes the `k`-th free address of zone `zone` (`k` below its free count) for lease `slot`.
    pub(crate) fn take_rank(&mut self, zone: usize, k: u128, slot: u32) -> Option<u128> {
        let zone = &mut self.zones[zone];
        let p = zone.free.take_nth(k)?;
        zone.using += 1;
        self.owners.insert(self.tag(p), slot);
        Some(p)
    }

    /// Gives `p` back from lease `slot`; it becomes free again unless it was excluded meanwhile.
    pub(crate) fn give_back(&mut self, p: u128, slot: u32) {
        if !self.owners.remove(self.tag(p), slot) {
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
#[derive(Debug, Clone)]
pub(crate) struct Subnet {
    /// The number leases refer to it by.
    pub(crate) id: u32,
    pub(crate) spec: SubnetSpec,
    /// Sorted by name, names unique.
    pub(crate) pools: Vec<PoolSpec>,
    pub(crate) pool_names: Vec<String>,
    pub(crate) families: [Option<FamilyState>; 2],
    /// MAC → lease slot.
    macs: Index,
    /// Leases in this subnet (a lease may hold no address, e.g. a record without any).
    pub(crate) lease_count: usize,
}

impl PartialEq for Subnet {
    /// Same spec, pools, free space and counts; the id is a local number, not compared.
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
            && self.pools == other.pools
            && self.pool_names == other.pool_names
            && self.families == other.families
            && self.macs.len() == other.macs.len()
            && self.lease_count == other.lease_count
    }
}

impl Subnet {
    pub(crate) fn new(id: u32, spec: SubnetSpec, pools: Vec<PoolSpec>) -> Result<Self, Error> {
        let layout = Layout::build(&spec, &pools)?;
        let mut subnet = Subnet {
            id,
            spec,
            pools,
            pool_names: Vec::new(),
            families: [None, None],
            macs: Index::default(),
            lease_count: 0,
        };
        subnet.install(layout, &Leases::new());
        Ok(subnet)
    }

    /// The lease slot holding `mac`.
    pub(crate) fn mac_owner(&self, mac: MacAddr, leases: &Leases) -> Option<u32> {
        self.macs
            .find(self.macs.tag(&mac), |slot| leases.mac(slot) == Some(mac))
    }

    /// Records that `slot` holds `mac` (unowned).
    pub(crate) fn set_mac_owner(&mut self, mac: MacAddr, slot: u32) {
        self.macs.insert(self.macs.tag(&mac), slot);
    }

    /// Forgets that `slot` holds `mac`.
    pub(crate) fn drop_mac_owner(&mut self, mac: MacAddr, slot: u32) {
        self.macs.remove(self.macs.tag(&mac), slot);
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

    /// Replaces spec and pools if no existing allocation would be orphaned; state is unchanged
    /// on error.
    pub(crate) fn reconfigure(
        &mut self,
        spec: SubnetSpec,
        pools: Vec<PoolSpec>,
        leases: &Leases,
    ) -> Result<(), Error> {
        let layout = Layout::build(&spec, &pools)?;
        let mut orphans: Vec<(&str, std::net::IpAddr, String)> = Vec::new();
        for family in Family::ALL {
            let Some(state) = self.family(family) else {
                continue;
            };
            let new = layout.family(family);
            for slot in state.owners.slots() {
                let Some(p) = leases.ip(slot, family) else {
                    continue;
                };
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
                    orphans.push((leases.key(slot), state.layout.addr(p), reason));
                }
            }
        }
        if let Some((key, address, reason)) = orphans.iter().min_by_key(|o| (o.1, o.0)) {
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
        self.install(layout, leases);
        Ok(())
    }

    /// Installs a validated layout and recomputes all zones from the current owners.
    fn install(&mut self, layout: Layout, leases: &Leases) {
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
                state.rebuild_zones(leases);
                state
            });
        }
    }

    /// Recomputes all zones after owners were filled in bulk.
    pub(crate) fn rebuild_zones(&mut self, leases: &Leases) {
        for state in self.families.iter_mut().flatten() {
            state.rebuild_zones(leases);
        }
    }

    /// Drops every allocation (rebuild starts from here).
    pub(crate) fn clear_allocations(&mut self) {
        self.macs.clear();
        self.lease_count = 0;
        for state in self.families.iter_mut().flatten() {
            state.owners.clear();
        }
    }
}
