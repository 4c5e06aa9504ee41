//! [`Ipam`]: all subnets, the allocations by owner key, and the operations the controller calls.

use crate::Map;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::addr::{Family, MacAddr, from_u128, to_u128};
use crate::error::Error;
use crate::layout::{Blocked, PoolSpec, SubnetSpec};
use crate::rng::Rng;
use crate::subnet::Subnet;

/// How a dynamic address is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Uniformly at random over the free addresses of the zone (`O(log n)`).
    #[default]
    Random,
    /// The next free address after the one this policy handed out last in the zone, wrapping
    /// around at the end; on a fresh subnet that is the lowest free address. A just-released
    /// address is therefore not reused at once (stale ARP and conntrack entries of the previous
    /// owner age out first).
    Sequential,
}

/// How the MAC address is chosen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MacRequest {
    /// A random locally administered unicast MAC, unique in the subnet.
    #[default]
    Random,
    /// This MAC (`aa:bb:cc:dd:ee:ff` or with `-`); must be unicast, non-zero, unique in the subnet.
    Static(String),
    /// No MAC (IPAM-only attachments such as macvlan get theirs from the kernel).
    None,
}

/// What an attachment asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Static addresses, at most one per family, each `10.0.0.5` or `10.0.0.5/24` (the prefix
    /// must be the subnet's). An element may itself be comma-joined, as the `ip_address`
    /// annotation is. Families without a static address get a dynamic one.
    pub ips: Vec<String>,
    /// The MAC.
    pub mac: MacRequest,
    /// The IP pool to allocate from (`ip_pool` annotation naming an `IPPool`).
    pub pool: Option<String>,
    /// How dynamic addresses are picked.
    pub policy: Policy,
}

impl Request {
    /// Random addresses and a random MAC.
    pub fn random() -> Self {
        Self::default()
    }

    /// Sequential addresses and a random MAC.
    pub fn sequential() -> Self {
        Self {
            policy: Policy::Sequential,
            ..Self::default()
        }
    }

    /// Adds static addresses (`"10.0.0.5"`, `"10.0.0.5/24,fd00::5"`).
    pub fn with_ips(mut self, ips: impl Into<String>) -> Self {
        self.ips.push(ips.into());
        self
    }

    /// Asks for this MAC.
    pub fn with_mac(mut self, mac: impl Into<String>) -> Self {
        self.mac = MacRequest::Static(mac.into());
        self
    }

    /// Asks for no MAC.
    pub fn without_mac(mut self) -> Self {
        self.mac = MacRequest::None;
        self
    }

    /// Allocates from this IP pool.
    pub fn in_pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }
}

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

/// A subnet's addressing, for the `cidr` and `gateway` annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetInfo {
    /// CIDRs, IPv4 first.
    pub cidrs: Vec<IpNet>,
    /// Gateways, IPv4 first.
    pub gateways: Vec<IpAddr>,
}

impl SubnetInfo {
    /// The `cidr` annotation value.
    pub fn cidr_annotation(&self) -> String {
        join(&self.cidrs)
    }

    /// The `gateway` annotation value.
    pub fn gateway_annotation(&self) -> String {
        join(&self.gateways)
    }
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

/// What one key holds. Kept small (48 bytes): there is one per lease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    subnet: Arc<str>,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    mac: Option<MacAddr>,
}

impl Held {
    fn new(subnet: Arc<str>, ips: [Option<u128>; 2], mac: Option<MacAddr>) -> Self {
        let mut held = Held {
            subnet,
            v4: None,
            v6: None,
            mac,
        };
        for family in Family::ALL {
            held.set(family, ips[family.index()]);
        }
        held
    }

    fn ip(&self, family: Family) -> Option<u128> {
        match family {
            Family::V4 => self.v4.map(|a| u128::from(u32::from(a))),
            Family::V6 => self.v6.map(u128::from),
        }
    }

    fn set(&mut self, family: Family, p: Option<u128>) {
        match family {
            Family::V4 => self.v4 = p.map(|p| Ipv4Addr::from(p as u32)),
            Family::V6 => self.v6 = p.map(Ipv6Addr::from),
        }
    }
}

/// A parsed static address request.
#[derive(Debug, Clone, Copy)]
struct StaticIp {
    addr: IpAddr,
    prefix: Option<u8>,
}

const MAC_ATTEMPTS: u32 = 64;

/// The allocator: subnets by name and what every key holds. Not thread-safe by itself; wrap it
/// in [`crate::SharedIpam`] to share it.
///
/// Every mutating call either fully succeeds or leaves the state as it was.
#[derive(Debug, Clone)]
pub struct Ipam {
    subnets: Map<String, Subnet>,
    held: Map<Arc<str>, Held>,
    rng: Rng,
}

impl PartialEq for Ipam {
    /// Same subnets (spec, pools, free space, owners, MACs) and the same leases; the random
    /// generator and sequential cursors are not compared.
    fn eq(&self, other: &Self) -> bool {
        self.subnets == other.subnets && self.held == other.held
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
        Self {
            subnets: Map::default(),
            held: Map::default(),
            rng: Rng::from_entropy(),
        }
    }

    /// An empty allocator whose random picks are reproducible (tests, benches).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            subnets: Map::default(),
            held: Map::default(),
            rng: Rng::seeded(seed),
        }
    }

    /// Creates a subnet or changes its `cidrBlock`, `gateway` or `excludeIps`, keeping its pools
    /// and every existing allocation. A change that would leave an allocation outside the CIDR,
    /// or on the gateway, network or broadcast address, is refused with
    /// [`Error::WouldOrphan`]; newly excluded addresses that are allocated stay with their owner
    /// and are not handed out again after release. Cost: `O(n log n)` in the subnet's leases.
    pub fn update_subnet(&mut self, spec: SubnetSpec) -> Result<(), Error> {
        match self.subnets.get_mut(&spec.name) {
            Some(subnet) => {
                let pools = subnet.pools.clone();
                subnet.reconfigure(spec, pools)
            }
            None => {
                let subnet = Subnet::new(spec, Vec::new())?;
                self.subnets.insert(subnet.spec.name.clone(), subnet);
                Ok(())
            }
        }
    }

    /// Removes a subnet that holds no allocation.
    pub fn remove_subnet(&mut self, name: &str) -> Result<(), Error> {
        let subnet = self.subnet(name)?;
        let count = self.held.values().filter(|h| &*h.subnet == name).count();
        if count > 0 {
            let key = subnet
                .some_owner()
                .map(|k| k.to_string())
                .unwrap_or_default();
            return Err(Error::SubnetInUse {
                subnet: name.to_owned(),
                count,
                key,
            });
        }
        self.subnets.remove(name);
        Ok(())
    }

    /// Adds or replaces an IP pool of a subnet. Pool requests take addresses only from the pool;
    /// other dynamic requests never take pool addresses. Existing allocations stay.
    pub fn set_pool(&mut self, subnet: &str, pool: PoolSpec) -> Result<(), Error> {
        let state = self.subnet_mut(subnet)?;
        let mut pools = state.pools.clone();
        match pools.binary_search_by(|p| p.name.cmp(&pool.name)) {
            Ok(i) => pools[i] = pool,
            Err(i) => pools.insert(i, pool),
        }
        let spec = state.spec.clone();
        state.reconfigure(spec, pools)
    }

    /// Removes an IP pool; its addresses join the rest of the subnet, allocations stay.
    pub fn remove_pool(&mut self, subnet: &str, pool: &str) -> Result<(), Error> {
        let state = self.subnet_mut(subnet)?;
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
        state.reconfigure(spec, pools)
    }

    /// Names of all subnets, sorted.
    pub fn subnet_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.subnets.keys().cloned().collect();
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

    fn subnet(&self, name: &str) -> Result<&Subnet, Error> {
        self.subnets.get(name).ok_or_else(|| Error::UnknownSubnet {
            subnet: name.to_owned(),
        })
    }

    fn subnet_mut(&mut self, name: &str) -> Result<&mut Subnet, Error> {
        self.subnets
            .get_mut(name)
            .ok_or_else(|| Error::UnknownSubnet {
                subnet: name.to_owned(),
            })
    }

    fn lease(key: &str, held: &Held) -> Lease {
        Lease {
            key: key.to_owned(),
            subnet: held.subnet.to_string(),
            v4: held.v4,
            v6: held.v6,
            mac: held.mac,
        }
    }

    /// What `key` holds.
    pub fn get(&self, key: &str) -> Option<Lease> {
        self.held.get(key).map(|held| Self::lease(key, held))
    }

    /// The key holding `ip` in `subnet` (reverse lookup).
    pub fn owner_of(&self, subnet: &str, ip: IpAddr) -> Option<&str> {
        let state = self.subnets.get(subnet)?.family(Family::of(&ip))?;
        state.owners.get(&to_u128(&ip)).map(|k| &**k)
    }

    /// Number of keys holding addresses.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no key holds anything.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Allocates for `key` in `subnet`: one address per family of the subnet (static where the
    /// request names one, else by `request.policy`, from `request.pool` if set) and a MAC.
    ///
    /// Idempotent: if `key` already holds addresses here and they satisfy the request, the same
    /// lease comes back (with any family or MAC that is missing filled in, e.g. after the subnet
    /// became dual stack). A request that contradicts what the key holds is
    /// [`Error::AllocationMismatch`]; release first to move. `O(log n)`.
    pub fn allocate(&mut self, subnet: &str, key: &str, request: &Request) -> Result<Lease, Error> {
        let statics = parse_statics(key, &request.ips)?;
        let (existing, key_arc) = match self.held.get_key_value(key) {
            Some((_, held)) if &*held.subnet != subnet => {
                return Err(Error::KeyInOtherSubnet {
                    key: key.to_owned(),
                    subnet: held.subnet.to_string(),
                    requested: subnet.to_owned(),
                });
            }
            Some((k, held)) => (Some(held.clone()), Some(Arc::clone(k))),
            None => (None, None),
        };
        // One lookup for the whole call; `rng` is a disjoint field.
        let state = self
            .subnets
            .get_mut(subnet)
            .ok_or_else(|| Error::UnknownSubnet {
                subnet: subnet.into(),
            })?;
        let rng = &mut self.rng;
        let key_err = || key.to_owned();
        let sub_err = || subnet.to_owned();

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

        // Decide every address before changing anything.
        let mut picks: [Option<u128>; 2] = [None, None];
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
            if let Some(prefix) = requested.prefix
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
            let held_here = existing.as_ref().and_then(|h| h.ip(family));
            if let Some(held_p) = held_here {
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
            if let Some(owner) = fam.owners.get(&p) {
                return Err(Error::AddressInUse {
                    key: key_err(),
                    address,
                    subnet: sub_err(),
                    owner: owner.to_string(),
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

        for family in Family::ALL {
            let slot = family.index();
            let Some(fam) = state.family(family) else {
                continue;
            };
            if let Some(held_p) = existing.as_ref().and_then(|h| h.ip(family)) {
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
            let picked = match request.policy {
                Policy::Random => {
                    let free = zone.free.len();
                    if free == 0 {
                        None
                    } else {
                        zone.free.nth(rng.below(free))
                    }
                }
                Policy::Sequential => zone
                    .free
                    .first_at_or_after(zone.cursor)
                    .or_else(|| zone.free.first_at_or_after(0)),
            };
            picks[slot] = Some(picked.ok_or_else(exhausted)?);
        }

        let held_mac = existing.as_ref().and_then(|h| h.mac);
        let mac = match (&request.mac, held_mac) {
            (MacRequest::Static(input), held) => {
                let mac: MacAddr = input.parse().map_err(|_| Error::InvalidMac {
                    key: key_err(),
                    input: input.clone(),
                    reason: "not six hex octets separated by ':' or '-'".to_owned(),
                })?;
                let invalid = |reason: &str| Error::InvalidMac {
                    key: key_err(),
                    input: input.clone(),
                    reason: reason.to_owned(),
                };
                if mac.is_multicast() {
                    return Err(invalid("a multicast MAC cannot be an interface address"));
                }
                if mac.is_zero() {
                    return Err(invalid("the all-zero MAC is not an interface address"));
                }
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
                        if let Some(owner) = state.macs.get(&mac) {
                            return Err(Error::MacInUse {
                                key: key_err(),
                                mac,
                                subnet: sub_err(),
                                owner: owner.to_string(),
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
                    if !state.macs.contains_key(&candidate) {
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

        // Commit.
        let sequential = request.policy == Policy::Sequential;
        let key_arc: Arc<str> = key_arc.unwrap_or_else(|| Arc::from(key));
        let mut held =
            existing.unwrap_or_else(|| Held::new(Arc::clone(&state.name), [None, None], None));
        for family in Family::ALL {
            if let (Some(p), Some(fam)) = (picks[family.index()], state.family_mut(family)) {
                fam.take(p, &key_arc, sequential && statics[family.index()].is_none());
                held.set(family, Some(p));
            }
        }
        if let Some(mac) = mac {
            state.macs.insert(mac, Arc::clone(&key_arc));
            held.mac = Some(mac);
        }
        let lease = Self::lease(key, &held);
        self.held.insert(key_arc, held);
        Ok(lease)
    }

    /// Releases everything `key` holds and returns it; `None` if it held nothing (release is
    /// idempotent). Released addresses are free again unless they were excluded meanwhile.
    pub fn release(&mut self, key: &str) -> Option<Lease> {
        let held = self.held.remove(key)?;
        if let Some(subnet) = self.subnets.get_mut(&*held.subnet) {
            for family in Family::ALL {
                if let (Some(p), Some(fam)) = (held.ip(family), subnet.family_mut(family)) {
                    fam.give_back(p);
                }
            }
            if let Some(mac) = held.mac {
                subnet.macs.remove(&mac);
            }
        }
        Some(Self::lease(key, &held))
    }

    /// Every lease as a record, sorted by key: what the controller persists as `IP` resources.
    pub fn records(&self) -> Vec<Record> {
        let mut records: Vec<Record> = self
            .held
            .iter()
            .map(|(key, held)| Self::lease(key, held).into())
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
        self.held.clear();
        for subnet in self.subnets.values_mut() {
            subnet.clear_allocations();
        }
        let mut report = RebuildReport::default();
        for record in records {
            match self.load(record) {
                Ok(()) => report.loaded += 1,
                Err(error) => report.rejected.push(error),
            }
        }
        for subnet in self.subnets.values_mut() {
            subnet.rebuild_zones();
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
        if self.held.contains_key(key.as_str()) {
            return Err(Error::DuplicateKey {
                key,
                subnet: subnet_name,
            });
        }
        let Some(subnet) = self.subnets.get_mut(&subnet_name) else {
            return Err(Error::UnknownSubnet {
                subnet: subnet_name,
            });
        };
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
            if let Some(owner) = fam.owners.get(&p) {
                let owner = owner.to_string();
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
            && let Some(owner) = subnet.macs.get(&mac)
        {
            let owner = owner.to_string();
            return Err(Error::MacInUse {
                key,
                mac,
                subnet: subnet_name,
                owner,
            });
        }
        let key: Arc<str> = Arc::from(key);
        for family in Family::ALL {
            if let (Some(p), Some(fam)) = (slots[family.index()], subnet.family_mut(family)) {
                fam.owners.insert(p, Arc::clone(&key));
            }
        }
        if let Some(mac) = mac {
            subnet.macs.insert(mac, Arc::clone(&key));
        }
        let held = Held::new(Arc::clone(&subnet.name), slots, mac);
        self.held.insert(key, held);
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
            let using = fam.owners.len() as u128;
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

/// Parses static requests into at most one per family.
fn parse_statics(key: &str, inputs: &[String]) -> Result<[Option<StaticIp>; 2], Error> {
    let mut out: [Option<StaticIp>; 2] = [None, None];
    for entry in inputs
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let invalid = |reason: &str| Error::InvalidAddress {
            key: key.to_owned(),
            input: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let (addr, prefix) = match entry.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (entry, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid("not an IP address"))?;
        let family = Family::of(&addr);
        let prefix = match prefix {
            None => None,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= family.bits() => Some(prefix),
                _ => return Err(invalid("the prefix length is not valid for the family")),
            },
        };
        let slot = &mut out[family.index()];
        if let Some(first) = slot {
            return Err(Error::DuplicateFamily {
                key: key.to_owned(),
                family,
                first: first.addr,
                second: addr,
            });
        }
        *slot = Some(StaticIp { addr, prefix });
    }
    Ok(out)
}
