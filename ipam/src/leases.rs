//! [`Leases`]: every lease in one slab of small fixed-size slots, the owner keys' bytes in one
//! arena, and the key → slot [`Index`].
//!
//! This is where most of the allocator's memory goes with many leases, so nothing here allocates
//! per lease: a slot is 40 bytes (key position, subnet number, both addresses, MAC, flags), keys
//! are appended to a single `String`, and every index (key here; address and MAC in the subnet)
//! refers to a lease by its `u32` slot number. Released slots are reused; the key arena is
//! compacted when more than half of it is released keys, so it stays within twice the live keys.

use crate::addr::{Family, MacAddr};
use crate::index::Index;

/// Slot flags.
const LIVE: u8 = 1;
const HAS_V4: u8 = 2;
const HAS_V6: u8 = 4;
const HAS_MAC: u8 = 8;

/// Compact the key arena only past this much garbage, so small allocators never bother.
const COMPACT_MIN_GARBAGE: usize = 64 * 1024;

/// One lease. `[u32; 4]` rather than `u128` keeps the slot 4-byte aligned: 40 bytes, not 48.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    key_start: u32,
    key_len: u32,
    subnet: u32,
    v4: u32,
    v6: [u32; 4],
    mac: [u8; 6],
    flags: u8,
}

/// Too many leases or key bytes for `u32` positions (4 Gi of either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// All leases; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Leases {
    slots: Vec<Slot>,
    vacant: Vec<u32>,
    keys: String,
    /// Bytes of `keys` that belong to released leases.
    garbage: usize,
    by_key: Index,
    /// Largest arena size and slot count (tests lower it to reach the limit).
    limit: usize,
}

impl Default for Leases {
    fn default() -> Self {
        Self::new()
    }
}

impl Leases {
    pub(crate) fn new() -> Self {
        Self::with_limit(u32::MAX as usize)
    }

    /// Number of leases.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The slot of `key`'s lease.
    pub(crate) fn find(&self, key: &str) -> Option<u32> {
        self.by_key
            .find(self.by_key.tag(key), |slot| self.key(slot) == key)
    }

    /// The owner key of a live slot.
    pub(crate) fn key(&self, slot: u32) -> &str {
        let s = &self.slots[slot as usize];
        let start = s.key_start as usize;
        self.keys
            .get(start..start + s.key_len as usize)
            .unwrap_or_default()
    }

    /// The subnet number of a live slot.
    pub(crate) fn subnet(&self, slot: u32) -> u32 {
        self.slots[slot as usize].subnet
    }

    /// The address of `family` a slot holds.
    pub(crate) fn ip(&self, slot: u32, family: Family) -> Option<u128> {
        let s = &self.slots[slot as usize];
        match family {
            Family::V4 => (s.flags & HAS_V4 != 0).then_some(u128::from(s.v4)),
            Family::V6 => (s.flags & HAS_V6 != 0).then(|| {
                s.v6.iter()
                    .fold(0u128, |acc, &word| (acc << 32) | u128::from(word))
            }),
        }
    }

    /// The MAC a slot holds.
    pub(crate) fn mac(&self, slot: u32) -> Option<MacAddr> {
        let s = &self.slots[slot as usize];
        (s.flags & HAS_MAC != 0).then_some(MacAddr(s.mac))
    }

    /// Live slots in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.flags & LIVE != 0)
            .map(|(i, _)| i as u32)
    }

    /// Adds a lease for `key` (not present yet) in subnet number `subnet`, holding nothing yet.
    pub(crate) fn insert(&mut self, key: &str, subnet: u32) -> Result<u32, Full> {
        if self.keys.len() + key.len() > self.limit && self.garbage > 0 {
            self.compact();
        }
        let key_start = self.keys.len();
        if key_start + key.len() > self.limit
            || (self.vacant.is_empty() && self.slots.len() >= self.limit)
        {
            return Err(Full);
        }
        let slot = Slot {
            key_start: key_start as u32,
            key_len: key.len() as u32,
            subnet,
            flags: LIVE,
            ..Slot::default()
        };
        self.keys.push_str(key);
        let index = match self.vacant.pop() {
            Some(index) => {
                self.slots[index as usize] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_key.insert(self.by_key.tag(key), index);
        Ok(index)
    }

    /// Sets (or clears) the address of `family`.
    pub(crate) fn set_ip(&mut self, slot: u32, family: Family, p: Option<u128>) {
        let s = &mut self.slots[slot as usize];
        match (family, p) {
            (Family::V4, Some(p)) => {
                s.v4 = p as u32;
                s.flags |= HAS_V4;
            }
            (Family::V6, Some(p)) => {
                s.v6 = [
                    (p >> 96) as u32,
                    (p >> 64) as u32,
                    (p >> 32) as u32,
                    p as u32,
                ];
                s.flags |= HAS_V6;
            }
            (Family::V4, None) => s.flags &= !HAS_V4,
            (Family::V6, None) => s.flags &= !HAS_V6,
        }
    }

    /// Sets the MAC.
    pub(crate) fn set_mac(&mut self, slot: u32, mac: MacAddr) {
        let s = &mut self.slots[slot as usize];
        s.mac = mac.0;
        s.flags |= HAS_MAC;
    }

    /// Drops a live slot (the caller has removed it from the subnet's indexes).
    pub(crate) fn remove(&mut self, slot: u32) {
        let tag = self.by_key.tag(self.key(slot));
        self.by_key.remove(tag, slot);
        let s = &mut self.slots[slot as usize];
        s.flags = 0;
        self.garbage += s.key_len as usize;
        self.vacant.push(slot);
        if self.garbage >= COMPACT_MIN_GARBAGE && self.garbage * 2 > self.keys.len() {
            self.compact();
        }
    }

    /// Rewrites the key arena with the live keys only: `O(live key bytes)`, and at least as many
    /// bytes were released since the last compaction, so amortized `O(1)` per release.
    fn compact(&mut self) {
        let mut keys = String::with_capacity(self.keys.len() - self.garbage);
        for s in self.slots.iter_mut().filter(|s| s.flags & LIVE != 0) {
            let start = s.key_start as usize;
            let key = self
                .keys
                .get(start..start + s.key_len as usize)
                .unwrap_or_default();
            s.key_start = keys.len() as u32;
            keys.push_str(key);
        }
        self.keys = keys;
        self.garbage = 0;
    }

    /// Drops every lease.
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.vacant.clear();
        self.keys.clear();
        self.garbage = 0;
        self.by_key.clear();
    }

    /// Makes room for `additional` more leases.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        self.by_key.reserve(additional);
    }

    fn with_limit(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            vacant: Vec::new(),
            keys: String::new(),
            garbage: 0,
            by_key: Index::default(),
            limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_stays_small() {
        assert_eq!(std::mem::size_of::<Slot>(), 40);
    }

    #[test]
    fn holds_keys_addresses_and_macs() {
        let mut leases = Leases::new();
        let a = leases.insert("a.default.ovn", 3).unwrap();
        let b = leases.insert("b.default.ovn", 4).unwrap();
        let v6 = 0xfd00_0000_0000_0000_0000_0000_dead_beef_u128;
        leases.set_ip(a, Family::V4, Some(0x0a00_0005));
        leases.set_ip(a, Family::V6, Some(v6));
        leases.set_mac(a, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(leases.find("a.default.ovn"), Some(a));
        assert_eq!(leases.find("b.default.ovn"), Some(b));
        assert_eq!(leases.find("c.default.ovn"), None);
        assert_eq!(leases.key(a), "a.default.ovn");
        assert_eq!(leases.subnet(b), 4);
        assert_eq!(leases.ip(a, Family::V4), Some(0x0a00_0005));
        assert_eq!(leases.ip(a, Family::V6), Some(v6));
        assert_eq!(leases.ip(b, Family::V4), None);
        assert_eq!(leases.mac(a), Some(MacAddr([2, 0, 0, 0, 0, 1])));
        assert_eq!(leases.mac(b), None);
        // 0.0.0.0 and :: are addresses too, told apart from "none" by the flags.
        leases.set_ip(b, Family::V4, Some(0));
        assert_eq!(leases.ip(b, Family::V4), Some(0));
        leases.set_ip(b, Family::V4, None);
        assert_eq!(leases.ip(b, Family::V4), None);
        leases.remove(a);
        assert_eq!(leases.find("a.default.ovn"), None);
        assert_eq!(leases.len(), 1);
        // The slot is reused, with nothing of the old lease left in it.
        let c = leases.insert("c.default.ovn", 5).unwrap();
        assert_eq!(c, a);
        assert_eq!(leases.ip(c, Family::V6), None);
        assert_eq!(leases.mac(c), None);
        assert_eq!(leases.iter().collect::<Vec<_>>(), vec![a, b]);
    }

    #[test]
    fn the_key_arena_is_compacted_and_keys_survive_it() {
        let mut leases = Leases::new();
        let keys: Vec<String> = (0..20_000)
            .map(|i| format!("pod-{i}.ns.provider"))
            .collect();
        let slots: Vec<u32> = keys.iter().map(|k| leases.insert(k, 0).unwrap()).collect();
        let full = leases.keys.len();
        for &slot in slots
            .iter()
            .step_by(4)
            .chain(slots.iter().skip(1).step_by(4))
        {
            leases.remove(slot);
        }
        for &slot in slots.iter().skip(2).step_by(4) {
            leases.remove(slot);
        }
        assert!(
            leases.keys.len() < full / 2,
            "{} of {full}",
            leases.keys.len()
        );
        assert!(leases.garbage * 2 <= leases.keys.len());
        for (i, key) in keys.iter().enumerate() {
            let expected = (i % 4 == 3).then_some(slots[i]);
            assert_eq!(leases.find(key), expected, "{key}");
            if let Some(slot) = expected {
                assert_eq!(leases.key(slot), key);
            }
        }
    }

    #[test]
    fn reports_full_instead_of_overflowing_positions() {
        let mut leases = Leases::with_limit(10);
        leases.insert("abcd", 0).unwrap();
        leases.insert("efgh", 0).unwrap();
        assert_eq!(leases.insert("ijkl", 0), Err(Full));
        assert_eq!(leases.len(), 2);
        // Released bytes are reclaimed to make room.
        let slot = leases.find("abcd").unwrap();
        leases.remove(slot);
        let again = leases.insert("ijkl", 0).unwrap();
        assert_eq!(leases.key(again), "ijkl");
        assert_eq!(leases.key(leases.find("efgh").unwrap()), "efgh");
    }
}
