//! The one error type of this crate. Every message names the subnet, the owner key and the
//! address or entry involved, so the controller can put it in an Event as it is.

use std::net::IpAddr;

use crate::addr::{Family, MacAddr};

/// Everything that can go wrong in the allocator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `cidrBlock` is missing, malformed, has host bits set, or names one family twice.
    #[error("subnet {subnet}: invalid cidrBlock entry {entry:?}: {reason}")]
    InvalidCidr {
        /// Subnet name.
        subnet: String,
        /// The offending `cidrBlock` entry.
        entry: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The gateway is malformed, outside its CIDR, or the network/broadcast address.
    #[error("subnet {subnet}: invalid gateway {entry:?}: {reason}")]
    InvalidGateway {
        /// Subnet name.
        subnet: String,
        /// The offending gateway entry.
        entry: String,
        /// Why it is rejected.
        reason: String,
    },
    /// An `excludeIps` entry is malformed or outside the subnet.
    #[error("subnet {subnet}: invalid excludeIps entry {entry:?}: {reason}")]
    InvalidExclude {
        /// Subnet name.
        subnet: String,
        /// The offending entry.
        entry: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Two `excludeIps` entries overlap.
    #[error("subnet {subnet}: excludeIps entry {entry:?} overlaps entry {other:?}")]
    OverlappingExcludes {
        /// Subnet name.
        subnet: String,
        /// The later entry.
        entry: String,
        /// The entry it overlaps.
        other: String,
    },
    /// An IP pool entry is malformed.
    #[error("subnet {subnet}: IP pool {pool}: invalid entry {entry:?}: {reason}")]
    InvalidPoolEntry {
        /// Subnet name.
        subnet: String,
        /// Pool name.
        pool: String,
        /// The offending entry.
        entry: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Two IP pools of one subnet share an address.
    #[error("subnet {subnet}: IP pool {pool} entry {entry:?} overlaps IP pool {other}")]
    OverlappingPools {
        /// Subnet name.
        subnet: String,
        /// One pool.
        pool: String,
        /// Its entry that overlaps.
        entry: String,
        /// The other pool.
        other: String,
    },
    /// No subnet of that name is known.
    #[error("subnet {subnet} is not known to IPAM")]
    UnknownSubnet {
        /// Subnet name.
        subnet: String,
    },
    /// No pool of that name is in the subnet.
    #[error("{key}: IP pool {pool} does not exist in subnet {subnet}")]
    UnknownPool {
        /// Owner key (empty for pool administration).
        key: String,
        /// Pool name.
        pool: String,
        /// Subnet name.
        subnet: String,
    },
    /// The subnet still has allocations and cannot be removed.
    #[error("subnet {subnet} still has {count} allocations, e.g. {key}")]
    SubnetInUse {
        /// Subnet name.
        subnet: String,
        /// Number of keys holding addresses.
        count: usize,
        /// One of them.
        key: String,
    },
    /// A subnet change would leave an existing allocation outside the allocatable space.
    #[error(
        "subnet {subnet}: change refused: {key} holds {address}, which would be {reason} \
         ({others} more allocations affected)"
    )]
    WouldOrphan {
        /// Subnet name.
        subnet: String,
        /// A key whose allocation would be orphaned.
        key: String,
        /// Its address.
        address: IpAddr,
        /// What the address would become.
        reason: String,
        /// How many other allocations would be orphaned too.
        others: usize,
    },
    /// A requested address is not parseable.
    #[error("{key}: invalid IP address request {input:?}: {reason}")]
    InvalidAddress {
        /// Owner key.
        key: String,
        /// The rejected input.
        input: String,
        /// Why.
        reason: String,
    },
    /// A static request `a.b.c.d/len` names a prefix other than the subnet's.
    #[error("{key}: requested {address}/{prefix} but subnet {subnet} has prefix /{subnet_prefix}")]
    PrefixMismatch {
        /// Owner key.
        key: String,
        /// Requested address.
        address: IpAddr,
        /// Requested prefix.
        prefix: u8,
        /// Subnet name.
        subnet: String,
        /// The subnet's prefix for that family.
        subnet_prefix: u8,
    },
    /// A request names two addresses of one family.
    #[error("{key}: requested two {family} addresses, {first} and {second}")]
    DuplicateFamily {
        /// Owner key.
        key: String,
        /// Family.
        family: Family,
        /// First address.
        first: IpAddr,
        /// Second address.
        second: IpAddr,
    },
    /// A requested address is of a family the subnet does not have.
    #[error("{key}: {address} is {family} but subnet {subnet} has no {family} CIDR")]
    FamilyNotInSubnet {
        /// Owner key.
        key: String,
        /// Address.
        address: IpAddr,
        /// Its family.
        family: Family,
        /// Subnet name.
        subnet: String,
    },
    /// A requested address is outside the subnet's CIDR.
    #[error("{key}: {address} is outside subnet {subnet} ({cidr})")]
    OutsideSubnet {
        /// Owner key.
        key: String,
        /// Address.
        address: IpAddr,
        /// Subnet name.
        subnet: String,
        /// The subnet's CIDR of that family.
        cidr: String,
    },
    /// A requested address is in `excludeIps`.
    #[error("{key}: {address} is excluded in subnet {subnet}")]
    Excluded {
        /// Owner key.
        key: String,
        /// Address.
        address: IpAddr,
        /// Subnet name.
        subnet: String,
    },
    /// A requested address is the network or broadcast address.
    #[error("{key}: {address} is the {what} address of subnet {subnet}")]
    Reserved {
        /// Owner key.
        key: String,
        /// Address.
        address: IpAddr,
        /// `network` or `broadcast`.
        what: &'static str,
        /// Subnet name.
        subnet: String,
    },
    /// A requested address is the gateway.
    #[error("{key}: {address} is the gateway of subnet {subnet}")]
    Gateway {
        /// Owner key.
        key: String,
        /// Address.
        address: IpAddr,
        /// Subnet name.
        subnet: String,
    },
    /// A requested address belongs to another key.
    #[error("{key}: {address} in subnet {subnet} is already allocated to {owner}")]
    AddressInUse {
        /// Owner key that asked.
        key: String,
        /// Address.
        address: IpAddr,
        /// Subnet name.
        subnet: String,
        /// The key holding it.
        owner: String,
    },
    /// A static address in a pool request is not in that pool.
    #[error("{key}: {address} is not in IP pool {pool} of subnet {subnet}")]
    NotInPool {
        /// Owner key.
        key: String,
        /// Address.
        address: IpAddr,
        /// Pool name.
        pool: String,
        /// Subnet name.
        subnet: String,
    },
    /// The pool has no free address of that family.
    #[error("{key}: IP pool {pool} of subnet {subnet} has no free {family} address")]
    PoolExhausted {
        /// Owner key.
        key: String,
        /// Pool name.
        pool: String,
        /// Subnet name.
        subnet: String,
        /// Family.
        family: Family,
    },
    /// The subnet has no free address of that family.
    #[error("{key}: subnet {subnet} has no free {family} address")]
    SubnetFull {
        /// Owner key.
        key: String,
        /// Subnet name.
        subnet: String,
        /// Family.
        family: Family,
    },
    /// A requested MAC is malformed or not usable.
    #[error("{key}: invalid MAC address {input:?}: {reason}")]
    InvalidMac {
        /// Owner key.
        key: String,
        /// The rejected input.
        input: String,
        /// Why.
        reason: String,
    },
    /// A requested MAC belongs to another key in the subnet.
    #[error("{key}: MAC {mac} in subnet {subnet} is already allocated to {owner}")]
    MacInUse {
        /// Owner key that asked.
        key: String,
        /// MAC.
        mac: MacAddr,
        /// Subnet name.
        subnet: String,
        /// The key holding it.
        owner: String,
    },
    /// Random MAC generation kept colliding (practically impossible: 2^46 addresses).
    #[error("{key}: no free random MAC found in subnet {subnet} after {attempts} attempts")]
    MacSpaceExhausted {
        /// Owner key.
        key: String,
        /// Subnet name.
        subnet: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The key already holds addresses in another subnet.
    #[error("{key}: already allocated in subnet {subnet}, not in {requested}; release it first")]
    KeyInOtherSubnet {
        /// Owner key.
        key: String,
        /// The subnet it holds addresses in.
        subnet: String,
        /// The subnet asked for.
        requested: String,
    },
    /// The key already holds an allocation that does not satisfy the new request.
    #[error(
        "{key}: already holds {existing} in subnet {subnet}, which does not match the request: {requested}"
    )]
    AllocationMismatch {
        /// Owner key.
        key: String,
        /// Subnet name.
        subnet: String,
        /// What it holds (address or MAC).
        existing: String,
        /// What was asked for.
        requested: String,
    },
    /// Rebuild input has the same key twice.
    #[error("{key}: duplicate record for the same key (subnet {subnet})")]
    DuplicateKey {
        /// Owner key.
        key: String,
        /// Subnet of the rejected record.
        subnet: String,
    },
    /// An `ip_pool` list of addresses is malformed, or an entry can never be handed out here
    /// (outside the subnet, of a family it lacks, excluded, reserved, the gateway).
    #[error("{key}: ip_pool {list:?}: invalid entry {entry:?}: {reason}")]
    InvalidIpList {
        /// Owner key.
        key: String,
        /// The whole list as given.
        list: String,
        /// The offending entry.
        entry: String,
        /// Why.
        reason: String,
    },
    /// Every usable entry of an `ip_pool` list of addresses is held by other keys.
    #[error("{key}: ip_pool {list:?} exhausted in subnet {subnet}: all its addresses are in use")]
    IpListExhausted {
        /// Owner key.
        key: String,
        /// The whole list as given.
        list: String,
        /// Subnet name.
        subnet: String,
    },
    /// The allocator holds as many leases or key bytes as it can number (4 Gi).
    #[error("{key}: the allocator is full ({leases} leases)")]
    TooManyLeases {
        /// Owner key.
        key: String,
        /// Leases held.
        leases: usize,
    },
}
