//! [`Ipam`]: all subnets, the allocations by owner key, and the operations the controller calls.

use crate::Map;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::addr::{Family, MacAddr, from_u128, to_u128};
use crate::error::Error;
use crate::layout::{Blocked, PoolSpec, SubnetSpec};
use crate::leases::Leases;
use crate::request::{IpList, IpRequest, MacRequest, Policy, Request, check_interface_mac};
use crate::rng::Rng;
use crate::subnet::Subnet;

/// What one key holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// Owner key (`<pod>.<namespace>.<provider>`).
    pub key: String,
    /// Subnet name.
    pub subnet: String,
    /// IPv4 address, if the subnet has an IPv4 CIDR.
    pub v4: Option<Ipv4Addr>,
    /// IPv6 address, if the subnet has an IPv6 CIDR.
    pub v6: Option<Ipv6Addr>,
    /// MAC, unless none was asked for.
    pub mac: Option<MacAddr>,
}

impl Lease {
    /// The addresses, IPv4 first.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
            .collect()
    }

    /// The `ip_address` annotation value: addresses comma-joined, IPv4 first.
    pub fn ip_address(&self) -> String {
        join(self.ips())
    }
}

/// The durable form of a lease, as the controller reads it back from an `IP` custom resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Owner key.
    pub key: String,
    /// Subnet name.
    pub subnet: String,
    /// Addresses, at most one per family.
    pub ips: Vec<IpAddr>,
    /// MAC, if any.
    pub mac: Option<MacAddr>,
}

impl From<Lease> for Record {
    fn from(lease: Lease) -> Self {
        let ips = lease.ips();
        Record {
            key: lease.key,
            subnet: lease.subnet,
            ips,
            mac: lease.mac,
        }
    }
}

/// Address counts as the `Subnet` (and `IPPool`) status shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Allocated IPv4 addresses.
    pub v4_using: u128,
    /// IPv4 addresses that can still be handed out.
    pub v4_available: u128,
    /// Allocated IPv6 addresses.
    pub v6_using: u128,
    /// IPv6 addresses that can still be handed out.
    pub v6_available: u128,
}

/// A subnet's addressing, for the `cidr` and `gateway` annotations (their text is the
/// attachment contract's, `crds::attachment::Allocation`, not this crate's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetInfo {
    /// CIDRs, IPv4 first.
    pub cidrs: Vec<IpNet>,
    /// Gateways, IPv4 first.
    pub gateways: Vec<IpAddr>,
}

/// The outcome of [`Ipam::rebuild`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RebuildReport {
    /// Records taken.
    pub loaded: usize,
    /// Records refused, each with the reason (duplicate key, address or MAC; unknown subnet;
    /// address outside the subnet, ...). The first record of a conflicting pair wins.
    pub rejected: Vec<Error>,
}

fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{item}");
    }
    out
}

const MAC_ATTEMPTS: u32 = 64;

/// The allocator: subnets by name and what every key holds. Not thread-safe by itself; wrap it
/// in [`crate::SharedIpam`] to share it.
///
/// Every mutating call either fully succeeds or leaves the state as it was.
#[derive(Debug, Clone)]
pub struct Ipam {
    /// By subnet number; `None` is a removed subnet's number, free for the next one.
    subnets: Vec<Option<Subnet>>,
    subnet_ids: Map<String, u32>,
    leases: Leases,
    rng: Rng,
}

impl PartialEq for Ipam {
    /// Same subnets (spec, pools, free space, counts) and the same leases (key, subnet,
    /// addresses, MAC); the random generator, sequential cursors and internal numbering are not
    /// compared. Owner and MAC indexes are derived from the leases, so equal leases mean equal
    /// owners.
    fn eq(&self, other: &Self) -> bool {
        if self.subnet_ids.len() != other.subnet_ids.len()
            || self.leases.len() != other.leases.len()
        {
            return false;
        }
        let same_subnets = self.subnet_ids.keys().all(
            |name| matches!((self.subnet(name), other.subnet(name)), (Ok(a), Ok(b)) if a == b),
        );
        same_subnets
            && self.leases.iter().all(|slot| {
                let key = self.leases.key(slot);
                other
                    .leases
                    .find(key)
                    .is_some_and(|o| self.lease_at(slot) == other.lease_at(o))
            })
    }
}

impl Default for Ipam {
    fn default() -> Self {
        Self::new()
    }
}

impl Ipam {
    /// An empty allocator with a randomly seeded generator.
    pub fn new() -> Self {
        Self::with_rng(Rng::from_entropy())
    }

    /// An empty allocator whose random picks are reproducible (tests, benches).
    pub fn with_seed(seed: u64) -> Self {
        Self::with_rng(Rng::seeded(seed))
    }

    fn with_rng(rng: Rng) -> Self {
        Self {
            subnets: Vec::new(),
            subnet_ids: Map::default(),
            leases: Leases::new(),
            rng,
        }
    }

    /// Creates a subnet or changes its `cidrBlock`, `gateway` or `excludeIps`, keeping its pools
    /// and every existing allocation. A change that would leave an allocation outside the CIDR,
    /// or on the gateway, network or broadcast address, is refused with
    /// [`Error::WouldOrphan`]; newly excluded addresses that are allocated stay with their owner
    /// and are not handed out again after release. Cost: `O(n log n)` in the subnet's leases.
    pub fn update_subnet(&mut self, spec: SubnetSpec) -> Result<(), Error> {
        if let Some(&id) = self.subnet_ids.get(&spec.name)
            && let Some(Some(subnet)) = self.subnets.get_mut(id as usize)
        {
            let pools = subnet.pools.clone();
            return subnet.reconfigure(spec, pools, &self.leases);
        }
        let id = match self.subnets.iter().position(Option::is_none) {
            Some(free) => free,
            None => self.subnets.len(),
        };
        let subnet = Subnet::new(id as u32, spec, Vec::new())?;
        self.subnet_ids.insert(subnet.spec.name.clone(), id as u32);
        if id == self.subnets.len() {
            self.subnets.push(Some(subnet));
        } else {
            self.subnets[id] = Some(subnet);
        }
        Ok(())
    }

    /// Registers a subnet together with the records of its addresses (read from `IP`
    /// resources), in one step under one borrow, so no allocation can slip in between. This is
    /// how a Subnet that was refused or invalid when the allocator was rebuilt at start, and
    /// becomes valid later, gets back the addresses its pods hold, instead of handing them out a
    /// second time. Records of other subnets are ignored; conflicting ones are refused and
    /// reported as by [`Ipam::rebuild`]. For a subnet that is registered already this is
    /// [`Ipam::update_subnet`] (its leases are the allocator's own) and the report is empty.
    /// Cost: `O(n log n)` in the records given.
    pub fn register_with(
        &mut self,
        spec: SubnetSpec,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<RebuildReport, Error> {
        if self.subnet_ids.contains_key(&spec.name) {
            return self.update_subnet(spec).map(|()| RebuildReport::default());
        }
        let name = spec.name.clone();
        self.update_subnet(spec)?;
        let mut report = RebuildReport::default();
        for record in records.into_iter().filter(|r| r.subnet == name) {
            match self.load(record) {
                Ok(()) => report.loaded += 1,
                Err(error) => report.rejected.push(error),
            }
        }
        if let Some(&id) = self.subnet_ids.get(&name)
            && let Some(Some(subnet)) = self.subnets.get_mut(id as usize)
        {
            subnet.rebuild_zones(&self.leases);
        }
        Ok(report)
    }

    /// Whether `name` is registered.
    pub fn has_subnet(&self, name: &str) -> bool {
        self.subnet_ids.contains_key(name)
    }

    /// Removes a subnet that holds no allocation.
    pub fn remove_subnet(&mut self, name: &str) -> Result<(), Error> {
        let subnet = self.subnet(name)?;
        if subnet.lease_count > 0 {
            let id = subnet.id;
            let key = self
                .leases
                .iter()
                .find(|&slot| self.leases.subnet(slot) == id)
                .map(|slot| self.leases.key(slot).to_owned())
                .unwrap_or_default();
            return Err(Error::SubnetInUse {
                subnet: name.to_owned(),
                count: subnet.lease_count,
                key,
            });
        }
        if let Some(id) = self.subnet_ids.remove(name) {
            self.subnets[id as usize] = None;
        }
        Ok(())
    }

    /// Adds or replaces an IP pool of a subnet. Pool requests take addresses only from the pool;
    /// other dynamic requests never take pool addresses. Existing allocations stay.
    pub fn set_pool(&mut self, subnet: &str, pool: PoolSpec) -> Result<(), Error> {
        let (state, leases) = self.subnet_and_leases(subnet)?;
        let mut pools = state.pools.clone();
        match pools.binary_search_by(|p| p.name.cmp(&pool.name)) {
            Ok(i) => pools[i] = pool,
            Err(i) => pools.insert(i, pool),
        }
        let spec = state.spec.clone();
        state.reconfigure(spec, pools, leases)
    }

    /// Removes an IP pool; its addresses join the rest of the subnet, allocations stay.
    pub fn remove_pool(&mut self, subnet: &str, pool: &str) -> Result<(), Error> {
        let (state, leases) = self.subnet_and_leases(subnet)?;
        let mut pools = state.pools.clone();
        let Ok(i) = pools.binary_search_by(|p| p.name.as_str().cmp(pool)) else {
            return Err(Error::UnknownPool {
                key: String::new(),
                pool: pool.to_owned(),
                subnet: subnet.to_owned(),
            });
        };
        pools.remove(i);
        let spec = state.spec.clone();
        state.reconfigure(spec, pools, leases)
    }

    /// Names of all subnets, sorted.
    pub fn subnet_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.subnet_ids.keys().cloned().collect();
        names.sort();
        names
    }

    /// CIDRs and gateways of a subnet.
    pub fn subnet_info(&self, subnet: &str) -> Result<SubnetInfo, Error> {
        let state = self.subnet(subnet)?;
        let layouts = state.families.iter().flatten().map(|f| &f.layout);
        Ok(SubnetInfo {
            cidrs: layouts.clone().map(|l| l.cidr).collect(),
            gateways: layouts.map(|l| l.addr(l.gateway)).collect(),
        })
    }

    fn subnet_id(&self, name: &str) -> Result<u32, Error> {
        self.subnet_ids
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownSubnet {
                subnet: name.to_owned(),
            })
    }

    fn subnet(&self, name: &str) -> Result<&Subnet, Error> {
        let id = self.subnet_id(name)?;
        self.subnets
            .get(id as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::UnknownSubnet {
                subnet: name.to_owned(),
            })
    }

    /// A subnet to change, and the leases to read while changing it.
    fn subnet_and_leases(&mut self, name: &str) -> Result<(&mut Subnet, &Leases), Error> {
        let id = self.subnet_id(name)?;
        match self.subnets.get_mut(id as usize).and_then(Option::as_mut) {
            Some(subnet) => Ok((subnet, &self.leases)),
            None => Err(Error::UnknownSubnet {
                subnet: name.to_owned(),
            }),
        }
    }

    fn subnet_name(&self, id: u32) -> &str {
        self.subnets
            .get(id as usize)
            .and_then(Option::as_ref)
            .map_or("", |s| s.spec.name.as_str())
    }

    /// The lease in a live slot.
    fn lease_at(&self, slot: u32) -> Lease {
        let leases = &self.leases;
        Lease {
            key: leases.key(slot).to_owned(),
            subnet: self.subnet_name(leases.subnet(slot)).to_owned(),
            v4: leases
                .ip(slot, Family::V4)
                .map(|p| Ipv4Addr::from(p as u32)),
            v6: leases.ip(slot, Family::V6).map(Ipv6Addr::from),
            mac: leases.mac(slot),
        }
    }

    /// What `key` holds.
    pub fn get(&self, key: &str) -> Option<Lease> {
        self.leases.find(key).map(|slot| self.lease_at(slot))
    }

    /// The key holding `ip` in `subnet` (reverse lookup).
    pub fn owner_of(&self, subnet: &str, ip: IpAddr) -> Option<&str> {
        let state = self.subnet(subnet).ok()?.family(Family::of(&ip))?;
        state
            .owner(to_u128(&ip), &self.leases)
            .map(|slot| self.leases.key(slot))
    }

    /// Number of keys holding addresses.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether no key holds anything.
    pub fn is_empty(&self) -> bool {
        self.leases.len() == 0
    }

    /// Allocates for `key` in `subnet`: one address per family of the subnet (static where the
    /// request names one, else the first free one of `request.ip_list` if it has addresses of
    /// that family, else by `request.policy`, from `request.pool` if set) and a MAC.
    ///
    /// Idempotent: if `key` already holds addresses here and they satisfy the request, the same
    /// lease comes back (with any family or MAC that is missing filled in, e.g. after the subnet
    /// became dual stack). A request that contradicts what the key holds is
    /// [`Error::AllocationMismatch`]; release first to move. `O(log n)`, plus `O(list)` for an
    /// address list.
    pub fn allocate(&mut self, subnet: &str, key: &str, request: &Request) -> Result<Lease, Error> {
        let statics = one_per_family(key, &request.ips)?;
        let id = self.subnet_id(subnet)?;
        let existing = match self.leases.find(key) {
            Some(slot) if self.leases.subnet(slot) != id => {
                return Err(Error::KeyInOtherSubnet {
                    key: key.to_owned(),
                    subnet: self.subnet_name(self.leases.subnet(slot)).to_owned(),
                    requested: subnet.to_owned(),
                });
            }
            found => found,
        };
        // One lookup for the whole call; `rng` and `leases` are disjoint fields.
        let Some(state) = self.subnets.get_mut(id as usize).and_then(Option::as_mut) else {
            return Err(Error::UnknownSubnet {
                subnet: subnet.into(),
            });
        };
        let leases = &self.leases;
        let rng = &mut self.rng;
        let key_err = || key.to_owned();
        let sub_err = || subnet.to_owned();
        let held = |family: Family| existing.and_then(|slot| leases.ip(slot, family));

        let pool = match &request.pool {
            None => None,
            Some(name) => {
                let index = state.pool_index(name).ok_or_else(|| Error::UnknownPool {
                    key: key_err(),
                    pool: name.clone(),
                    subnet: sub_err(),
                })?;
                Some((index, name.as_str()))
            }
        };
        let pool_has_any = pool.is_none_or(|(i, _)| {
            state
                .families
                .iter()
                .flatten()
                .any(|f| f.layout.pool_has_ranges(i))
        });

        // Decide every address before changing anything: a point, or a random rank in a zone.
        let mut picks: [Option<u128>; 2] = [None, None];
        let mut ranks: [Option<(usize, u128)>; 2] = [None, None];
        for (slot, requested) in statics.iter().enumerate() {
            let Some(requested) = requested else { continue };
            let family = Family::of(&requested.addr);
            let Some(fam) = state.family(family) else {
                return Err(Error::FamilyNotInSubnet {
                    key: key_err(),
                    address: requested.addr,
                    family,
                    subnet: sub_err(),
                });
            };
            let layout = &fam.layout;
            if let Some(prefix) = requested.prefix_len
                && prefix != layout.cidr.prefix_len()
            {
                return Err(Error::PrefixMismatch {
                    key: key_err(),
                    address: requested.addr,
                    prefix,
                    subnet: sub_err(),
                    subnet_prefix: layout.cidr.prefix_len(),
                });
            }
            let p = to_u128(&requested.addr);
            if let Some(held_p) = held(family) {
                if held_p != p {
                    return Err(Error::AllocationMismatch {
                        key: key_err(),
                        subnet: sub_err(),
                        existing: layout.addr(held_p).to_string(),
                        requested: requested.addr.to_string(),
                    });
                }
                continue;
            }
            let address = requested.addr;
            match layout.blocked(p) {
                None => {}
                Some(Blocked::Outside) => {
                    return Err(Error::OutsideSubnet {
                        key: key_err(),
                        address,
                        subnet: sub_err(),
                        cidr: layout.cidr.to_string(),
                    });
                }
                Some(Blocked::Network) => {
                    return Err(Error::Reserved {
                        key: key_err(),
                        address,
                        what: "network",
                        subnet: sub_err(),
                    });
                }
                Some(Blocked::Broadcast) => {
                    return Err(Error::Reserved {
                        key: key_err(),
                        address,
                        what: "broadcast",
                        subnet: sub_err(),
                    });
                }
                Some(Blocked::Gateway) => {
                    return Err(Error::Gateway {
                        key: key_err(),
                        address,
                        subnet: sub_err(),
                    });
                }
                Some(Blocked::Excluded) => {
                    return Err(Error::Excluded {
                        key: key_err(),
                        address,
                        subnet: sub_err(),
                    });
                }
            }
            if let Some(owner) = fam.owner(p, leases) {
                return Err(Error::AddressInUse {
                    key: key_err(),
                    address,
                    subnet: sub_err(),
                    owner: leases.key(owner).to_owned(),
                });
            }
            if let Some((index, name)) = pool
                && fam.zone_for(Some(index)) != 0
                && layout.zone_of(p) != index + 1
            {
                return Err(Error::NotInPool {
                    key: key_err(),
                    address,
                    pool: name.to_owned(),
                    subnet: sub_err(),
                });
            }
            picks[slot] = Some(p);
        }

        if let Some(list) = &request.ip_list {
            let input = list.as_str();
            if let Some((_, name)) = pool {
                return Err(Error::InvalidIpList {
                    key: key_err(),
                    list: input.to_owned(),
                    entry: input.to_owned(),
                    reason: format!("an address list cannot be combined with IP pool {name}"),
                });
            }
            let fixed = [held(Family::V4), held(Family::V6)];
            let skip = [statics[0].is_some(), statics[1].is_some()];
            for (family, chosen) in pick_from_list(state, leases, key, input, list, fixed, skip)?
                .into_iter()
                .enumerate()
            {
                if chosen.is_some() {
                    picks[family] = chosen;
                }
            }
        }

        for family in Family::ALL {
            let slot = family.index();
            let Some(fam) = state.family(family) else {
                continue;
            };
            if let Some(held_p) = held(family) {
                // Idempotent path: what is held must still fit the pool asked for.
                if let Some((index, name)) = pool
                    && fam.zone_for(Some(index)) != 0
                    && fam.layout.zone_of(held_p) != index + 1
                {
                    return Err(Error::AllocationMismatch {
                        key: key_err(),
                        subnet: sub_err(),
                        existing: fam.layout.addr(held_p).to_string(),
                        requested: format!("an address from IP pool {name}"),
                    });
                }
                continue;
            }
            if picks[slot].is_some() {
                continue;
            }
            let zone_index = fam.zone_for(pool.map(|(i, _)| i));
            let exhausted = || match pool {
                Some((_, name)) => Error::PoolExhausted {
                    key: key_err(),
                    pool: name.to_owned(),
                    subnet: sub_err(),
                    family,
                },
                None => Error::SubnetFull {
                    key: key_err(),
                    subnet: sub_err(),
                    family,
                },
            };
            if !pool_has_any {
                return Err(exhausted());
            }
            let zone = &fam.zones[zone_index];
            match request.policy {
                // The rank is drawn now; the point is found and taken in one descent at commit.
                Policy::Random => {
                    let free = zone.free.len();
                    if free == 0 {
                        return Err(exhausted());
                    }
                    ranks[slot] = Some((zone_index, rng.below(free)));
                }
                Policy::Sequential => {
                    let picked = zone
                        .free
                        .first_at_or_after(zone.cursor)
                        .or_else(|| zone.free.first_at_or_after(0));
                    picks[slot] = Some(picked.ok_or_else(exhausted)?);
                }
            }
        }

        let held_mac = existing.and_then(|slot| leases.mac(slot));
        let mac = match (&request.mac, held_mac) {
            (&MacRequest::Static(mac), held) => {
                check_interface_mac(key, mac, &mac.to_string())?;
                match held {
                    Some(held) if held != mac => {
                        return Err(Error::AllocationMismatch {
                            key: key_err(),
                            subnet: sub_err(),
                            existing: held.to_string(),
                            requested: mac.to_string(),
                        });
                    }
                    Some(_) => None,
                    None => {
                        if let Some(owner) = state.mac_owner(mac, leases) {
                            return Err(Error::MacInUse {
                                key: key_err(),
                                mac,
                                subnet: sub_err(),
                                owner: leases.key(owner).to_owned(),
                            });
                        }
                        Some(mac)
                    }
                }
            }
            (MacRequest::Random, None) => {
                let mut found = None;
                for _ in 0..MAC_ATTEMPTS {
                    let candidate = MacAddr::local_unicast_from(rng.next_u64());
                    if state.mac_owner(candidate, leases).is_none() {
                        found = Some(candidate);
                        break;
                    }
                }
                Some(found.ok_or_else(|| Error::MacSpaceExhausted {
                    key: key_err(),
                    subnet: sub_err(),
                    attempts: MAC_ATTEMPTS,
                })?)
            }
            (MacRequest::Random | MacRequest::None, _) => None,
        };

        // Commit: the lease slot first, the only step that can still fail.
        let slot = match existing {
            Some(slot) => slot,
            None => {
                let slot = self
                    .leases
                    .insert(key, id)
                    .map_err(|_| Error::TooManyLeases {
                        key: key_err(),
                        leases: self.leases.len(),
                    })?;
                state.lease_count += 1;
                slot
            }
        };
        let sequential = request.policy == Policy::Sequential;
        for family in Family::ALL {
            let i = family.index();
            let Some(fam) = state.family_mut(family) else {
                continue;
            };
            let taken = match (picks[i], ranks[i]) {
                (Some(p), _) => {
                    fam.take(
                        p,
                        slot,
                        sequential && statics[i].is_none() && request.ip_list.is_none(),
                    );
                    Some(p)
                }
                (None, Some((zone, k))) => fam.take_rank(zone, k, slot),
                (None, None) => None,
            };
            if let Some(p) = taken {
                self.leases.set_ip(slot, family, Some(p));
            }
        }
        if let Some(mac) = mac {
            state.set_mac_owner(mac, slot);
            self.leases.set_mac(slot, mac);
        }
        Ok(self.lease_at(slot))
    }

    /// Releases everything `key` holds and returns it; `None` if it held nothing (release is
    /// idempotent). Released addresses are free again unless they were excluded meanwhile.
    pub fn release(&mut self, key: &str) -> Option<Lease> {
        let slot = self.leases.find(key)?;
        let lease = self.lease_at(slot);
        let leases = &self.leases;
        if let Some(subnet) = self
            .subnets
            .get_mut(leases.subnet(slot) as usize)
            .and_then(Option::as_mut)
        {
            for family in Family::ALL {
                if let (Some(p), Some(fam)) = (leases.ip(slot, family), subnet.family_mut(family)) {
                    fam.give_back(p, slot);
                }
            }
            if let Some(mac) = leases.mac(slot) {
                subnet.drop_mac_owner(mac, slot);
            }
            subnet.lease_count = subnet.lease_count.saturating_sub(1);
        }
        self.leases.remove(slot);
        Some(lease)
    }

    /// Every lease as a record, sorted by key: what the controller persists as `IP` resources.
    pub fn records(&self) -> Vec<Record> {
        let mut records: Vec<Record> = self
            .leases
            .iter()
            .map(|slot| self.lease_at(slot).into())
            .collect();
        records.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        records
    }

    /// Replaces every allocation with `records` (read from `IP` resources at start), in
    /// `O(n log n)`. Subnets and pools must be configured first. Records that conflict
    /// (duplicate key, address or MAC; unknown subnet; an address outside its subnet or on its
    /// gateway) are refused and reported; the first of two conflicting records wins. Addresses
    /// that are excluded now but were allocated before are kept, as [`Ipam::update_subnet`]
    /// keeps them.
    pub fn rebuild(&mut self, records: impl IntoIterator<Item = Record>) -> RebuildReport {
        self.leases.clear();
        for subnet in self.subnets.iter_mut().flatten() {
            subnet.clear_allocations();
        }
        let records = records.into_iter();
        self.leases.reserve(records.size_hint().0);
        let mut report = RebuildReport::default();
        for record in records {
            match self.load(record) {
                Ok(()) => report.loaded += 1,
                Err(error) => report.rejected.push(error),
            }
        }
        let leases = &self.leases;
        for subnet in self.subnets.iter_mut().flatten() {
            subnet.rebuild_zones(leases);
        }
        report
    }

    /// Takes one record into owners and leases without touching free space (rebuild recomputes
    /// it in bulk afterwards).
    fn load(&mut self, record: Record) -> Result<(), Error> {
        let Record {
            key,
            subnet: subnet_name,
            ips,
            mac,
        } = record;
        if self.leases.find(&key).is_some() {
            return Err(Error::DuplicateKey {
                key,
                subnet: subnet_name,
            });
        }
        let Some(&id) = self.subnet_ids.get(&subnet_name) else {
            return Err(Error::UnknownSubnet {
                subnet: subnet_name,
            });
        };
        let Some(subnet) = self.subnets.get_mut(id as usize).and_then(Option::as_mut) else {
            return Err(Error::UnknownSubnet {
                subnet: subnet_name,
            });
        };
        let leases = &self.leases;
        let mut slots: [Option<u128>; 2] = [None, None];
        for address in ips {
            let family = Family::of(&address);
            let Some(fam) = subnet.family(family) else {
                return Err(Error::FamilyNotInSubnet {
                    key,
                    address,
                    family,
                    subnet: subnet_name,
                });
            };
            if let Some(first) = slots[family.index()] {
                return Err(Error::DuplicateFamily {
                    key,
                    family,
                    first: from_u128(family, first),
                    second: address,
                });
            }
            let p = to_u128(&address);
            let layout = &fam.layout;
            match layout.blocked(p) {
                None | Some(Blocked::Excluded) => {}
                Some(Blocked::Outside) => {
                    let cidr = layout.cidr.to_string();
                    return Err(Error::OutsideSubnet {
                        key,
                        address,
                        subnet: subnet_name,
                        cidr,
                    });
                }
                Some(Blocked::Network) => {
                    let what = "network";
                    return Err(Error::Reserved {
                        key,
                        address,
                        what,
                        subnet: subnet_name,
                    });
                }
                Some(Blocked::Broadcast) => {
                    let what = "broadcast";
                    return Err(Error::Reserved {
                        key,
                        address,
                        what,
                        subnet: subnet_name,
                    });
                }
                Some(Blocked::Gateway) => {
                    return Err(Error::Gateway {
                        key,
                        address,
                        subnet: subnet_name,
                    });
                }
            }
            if let Some(owner) = fam.owner(p, leases) {
                let owner = leases.key(owner).to_owned();
                return Err(Error::AddressInUse {
                    key,
                    address,
                    subnet: subnet_name,
                    owner,
                });
            }
            slots[family.index()] = Some(p);
        }
        if let Some(mac) = mac
            && let Some(owner) = subnet.mac_owner(mac, leases)
        {
            let owner = leases.key(owner).to_owned();
            return Err(Error::MacInUse {
                key,
                mac,
                subnet: subnet_name,
                owner,
            });
        }
        let slot = self
            .leases
            .insert(&key, id)
            .map_err(|_| Error::TooManyLeases {
                leases: self.leases.len(),
                key: key.clone(),
            })?;
        subnet.lease_count += 1;
        for family in Family::ALL {
            if let (Some(p), Some(fam)) = (slots[family.index()], subnet.family_mut(family)) {
                fam.set_owner(p, slot);
                self.leases.set_ip(slot, family, Some(p));
            }
        }
        if let Some(mac) = mac {
            subnet.set_mac_owner(mac, slot);
            self.leases.set_mac(slot, mac);
        }
        Ok(())
    }

    /// Used and available addresses of a subnet, `O(pools)`.
    pub fn counters(&self, subnet: &str) -> Result<Counters, Error> {
        let state = self.subnet(subnet)?;
        let mut counters = Counters::default();
        for family in Family::ALL {
            let Some(fam) = state.family(family) else {
                continue;
            };
            let using = fam.owner_count() as u128;
            let available = fam.zones.iter().map(|z| z.free.len()).sum();
            match family {
                Family::V4 => (counters.v4_using, counters.v4_available) = (using, available),
                Family::V6 => (counters.v6_using, counters.v6_available) = (using, available),
            }
        }
        Ok(counters)
    }

    /// Used and available addresses of one IP pool (the `IPPool` status), `O(1)`.
    pub fn pool_counters(&self, subnet: &str, pool: &str) -> Result<Counters, Error> {
        let state = self.subnet(subnet)?;
        let index = state.pool_index(pool).ok_or_else(|| Error::UnknownPool {
            key: String::new(),
            pool: pool.to_owned(),
            subnet: subnet.to_owned(),
        })?;
        let mut counters = Counters::default();
        for family in Family::ALL {
            let Some(fam) = state.family(family) else {
                continue;
            };
            let zone = &fam.zones[index + 1];
            match family {
                Family::V4 => {
                    (counters.v4_using, counters.v4_available) = (zone.using, zone.free.len())
                }
                Family::V6 => {
                    (counters.v6_using, counters.v6_available) = (zone.using, zone.free.len())
                }
            }
        }
        Ok(counters)
    }

    /// Number of free ranges kept for a subnet: the allocator's memory is proportional to this
    /// plus the number of leases, never to the size of the subnet.
    pub fn free_range_count(&self, subnet: &str) -> Result<usize, Error> {
        let state = self.subnet(subnet)?;
        Ok(state
            .families
            .iter()
            .flatten()
            .flat_map(|f| &f.zones)
            .map(|z| z.free.range_count())
            .sum())
    }
}

/// The static requests by family (IPv4, IPv6): at most one per family.
fn one_per_family(key: &str, requests: &[IpRequest]) -> Result<[Option<IpRequest>; 2], Error> {
    let mut out: [Option<IpRequest>; 2] = [None, None];
    for &requested in requests {
        let family = requested.family();
        let slot = &mut out[family.index()];
        if let Some(first) = slot {
            return Err(Error::DuplicateFamily {
                key: key.to_owned(),
                family,
                first: first.addr,
                second: requested.addr,
            });
        }
        *slot = Some(requested);
    }
    Ok(out)
}

/// Checks every address of `list` against the subnet, then picks the addresses to take: per
/// family the first free one (plain list), or the first entry whose every address is free or
/// already held by this key (grouped list). `fixed` are the addresses the key holds; `skip` the
/// families with a static request. Returns the picks for families that hold nothing yet.
fn pick_from_list(
    state: &Subnet,
    leases: &Leases,
    key: &str,
    input: &str,
    list: &IpList,
    fixed: [Option<u128>; 2],
    skip: [bool; 2],
) -> Result<[Option<u128>; 2], Error> {
    let invalid = |entry: &str, reason: String| Error::InvalidIpList {
        key: key.to_owned(),
        list: input.to_owned(),
        entry: entry.to_owned(),
        reason,
    };
    let mut numbered: Vec<[Option<u128>; 2]> = Vec::with_capacity(list.entries.len());
    let mut has_family = [false; 2];
    for entry in &list.entries {
        let mut out: [Option<u128>; 2] = [None, None];
        for (ip, text) in entry.iter().flatten() {
            let family = Family::of(ip);
            let Some(fam) = state.family(family) else {
                return Err(invalid(
                    text,
                    format!("subnet {} has no {family} CIDR", state.spec.name),
                ));
            };
            let layout = &fam.layout;
            let p = to_u128(ip);
            let reason = match layout.blocked(p) {
                None => None,
                Some(Blocked::Outside) => Some(format!("outside subnet {}", layout.cidr)),
                Some(Blocked::Network) => Some("the network address of the subnet".to_owned()),
                Some(Blocked::Broadcast) => Some("the broadcast address of the subnet".to_owned()),
                Some(Blocked::Gateway) => Some("the gateway of the subnet".to_owned()),
                Some(Blocked::Excluded) => Some("excluded in the subnet".to_owned()),
            };
            if let Some(reason) = reason {
                return Err(invalid(text, reason));
            }
            out[family.index()] = Some(p);
            has_family[family.index()] = true;
        }
        numbered.push(out);
    }
    // The held address of a family the list covers must be one of the list.
    for family in Family::ALL {
        let i = family.index();
        if let Some(held) = fixed[i]
            && !skip[i]
            && has_family[i]
            && !numbered.iter().any(|e| e[i] == Some(held))
        {
            let addr = from_u128(family, held);
            return Err(Error::AllocationMismatch {
                key: key.to_owned(),
                subnet: state.spec.name.clone(),
                existing: addr.to_string(),
                requested: format!("an address of ip_pool {input:?}"),
            });
        }
    }
    let free = |family: Family, p: u128| {
        state
            .family(family)
            .is_some_and(|fam| fam.owner(p, leases).is_none())
    };
    let exhausted = || Error::IpListExhausted {
        key: key.to_owned(),
        list: input.to_owned(),
        subnet: state.spec.name.clone(),
    };
    let wanted = |i: usize| !skip[i] && fixed[i].is_none() && has_family[i];
    let mut picks: [Option<u128>; 2] = [None, None];
    if list.grouped {
        if !Family::ALL.iter().any(|f| wanted(f.index())) {
            return Ok(picks);
        }
        let fits = |entry: &[Option<u128>; 2]| {
            Family::ALL.iter().all(|&family| {
                let i = family.index();
                match (entry[i], fixed[i]) {
                    _ if skip[i] => true,
                    (None, _) => true,
                    (Some(p), Some(held)) => p == held,
                    (Some(p), None) => free(family, p),
                }
            })
        };
        let entry = numbered.iter().find(|e| fits(e)).ok_or_else(exhausted)?;
        for family in Family::ALL {
            let i = family.index();
            if wanted(i) {
                picks[i] = entry[i];
            }
        }
    } else {
        for family in Family::ALL {
            let i = family.index();
            if !wanted(i) {
                continue;
            }
            let p = numbered
                .iter()
                .filter_map(|e| e[i])
                .find(|&p| free(family, p))
                .ok_or_else(exhausted)?;
            picks[i] = Some(p);
        }
    }
    Ok(picks)
}
