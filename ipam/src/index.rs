//! [`Index`]: a hash index from something a lease holds (its key, an address, its MAC) to the
//! lease's slot number, storing 8 bytes per entry and nothing on the heap per entry.
//!
//! Why not a `HashMap<Thing, u32>`: owner keys are strings (a heap allocation each, 16 bytes of
//! pointer in every entry) and IPv6 addresses are 16-byte aligned; the lease slab holds all of
//! them once already. An entry here is the slot plus a 32-bit tag (a seeded hash of the thing,
//! or the IPv4 address itself), so a lookup reads the slab only when the tag matches, and
//! growing the table rehashes tags without touching the slab (a random cache miss per entry
//! otherwise, at every doubling).
//!
//! Why not hashbrown's `HashTable`: it keeps control bytes apart from the entries, so with a
//! million leases every insert misses the cache twice (control group, then entry); an allocation
//! inserts into three indexes. This is open addressing with linear probing over the 8-byte
//! entries themselves, at most 3/4 full: a probe sequence usually stays in one cache line.
//! Removal shifts the following entries back (no tombstones), so lookups never slow down with
//! churn.

use std::hash::{BuildHasher, Hash};

/// The slot number that marks an empty entry (lease slots stay below it, see `Leases`).
const EMPTY: u32 = u32::MAX;

/// One entry: a lease slot and the tag of what the index maps from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u32,
    slot: u32,
}

const VACANT: Entry = Entry {
    tag: 0,
    slot: EMPTY,
};

/// A hash index from things to lease slots; see the module docs. The caller computes tags with
/// [`Index::tag`] (or uses the IPv4 address as its own tag) and tells, in `eq`, whether a slot
/// holds the thing looked for.
#[derive(Clone, Default)]
pub(crate) struct Index {
    /// A power of two in length (or empty).
    entries: Vec<Entry>,
    len: usize,
    /// Seeded per process: tags and positions of user-chosen keys cannot be precomputed to
    /// collide.
    state: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("len", &self.len).finish()
    }
}

impl Index {
    /// The tag of `thing`: 32 bits of its seeded hash.
    pub(crate) fn tag<T: Hash + ?Sized>(&self, thing: &T) -> u32 {
        (self.state.hash_one(thing) >> 32) as u32
    }

    /// Where the probe sequence for `tag` starts.
    fn home(&self, tag: u32) -> usize {
        (self.state.hash_one(tag) as usize) & (self.entries.len() - 1)
    }

    /// The position of the entry whose tag is `tag` and for which `eq` holds.
    fn position(&self, tag: u32, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut i = self.home(tag);
        loop {
            let entry = self.entries[i];
            if entry.slot == EMPTY {
                return None;
            }
            if entry.tag == tag && eq(entry.slot) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot whose tag is `tag` and for which `eq` holds.
    pub(crate) fn find(&self, tag: u32, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(tag, eq).map(|i| self.entries[i].slot)
    }

    /// Adds `slot` under `tag`; the caller has checked that the thing is not indexed yet.
    pub(crate) fn insert(&mut self, tag: u32, slot: u32) {
        debug_assert!(slot != EMPTY, "lease slots stay below u32::MAX");
        self.reserve(1);
        self.place(Entry { tag, slot });
        self.len += 1;
    }

    /// Puts an entry in the first empty position of its probe sequence (room is guaranteed).
    fn place(&mut self, entry: Entry) {
        let mask = self.entries.len() - 1;
        let mut i = self.home(entry.tag);
        while self.entries[i].slot != EMPTY {
            i = (i + 1) & mask;
        }
        self.entries[i] = entry;
    }

    /// Removes the entry for `slot` under `tag`; returns whether there was one.
    pub(crate) fn remove(&mut self, tag: u32, slot: u32) -> bool {
        let Some(mut hole) = self.position(tag, |s| s == slot) else {
            return false;
        };
        // Backward shift: move later entries of the cluster into the hole unless their probe
        // sequence starts after the hole (then they are already where a lookup finds them).
        let mask = self.entries.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let entry = self.entries[j];
            if entry.slot == EMPTY {
                break;
            }
            let home = self.home(entry.tag);
            let home_after_hole = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !home_after_hole {
                self.entries[hole] = entry;
                hole = j;
            }
        }
        self.entries[hole] = VACANT;
        self.len -= 1;
        true
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The slots, in no particular order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .filter(|e| e.slot != EMPTY)
            .map(|e| e.slot)
    }

    /// Drops every entry, keeping the allocated table.
    pub(crate) fn clear(&mut self) {
        self.entries.fill(VACANT);
        self.len = 0;
    }

    /// Makes room for `additional` more entries at once, keeping the table at most 3/4 full.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self.len.saturating_add(additional);
        if needed.saturating_mul(4) <= self.entries.len().saturating_mul(3) {
            return;
        }
        let capacity = needed
            .saturating_mul(4)
            .div_ceil(3)
            .max(16)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX / 2 + 1);
        let old = std::mem::replace(&mut self.entries, vec![VACANT; capacity]);
        for entry in old.into_iter().filter(|e| e.slot != EMPTY) {
            self.place(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_and_removes_by_tag_and_slot() {
        let things = ["a", "b", "c"];
        let mut index = Index::default();
        for (slot, thing) in things.iter().enumerate() {
            index.insert(index.tag(thing), slot as u32);
        }
        assert_eq!(index.len(), 3);
        for (slot, thing) in things.iter().enumerate() {
            let found = index.find(index.tag(thing), |s| things[s as usize] == *thing);
            assert_eq!(found, Some(slot as u32));
        }
        assert_eq!(
            index.find(index.tag("d"), |s| things[s as usize] == "d"),
            None
        );
        // Same tag, but `eq` says no: not found.
        assert_eq!(index.find(index.tag("a"), |_| false), None);
        assert!(index.remove(index.tag("b"), 1));
        assert!(!index.remove(index.tag("b"), 1));
        assert_eq!(index.find(index.tag("b"), |_| true), None);
        let mut slots: Vec<u32> = index.slots().collect();
        slots.sort_unstable();
        assert_eq!(slots, vec![0, 2]);
    }

    /// Random inserts and removals (with many equal tags, so clusters form and wrap around the
    /// end of the table) against a `HashMap`.
    #[test]
    fn matches_a_map_under_churn() {
        let mut index = Index::default();
        let mut model: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        let mut state = 0x1234_5678_u64;
        for step in 0..200_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let slot = (state % 3000) as u32;
            let tag = slot % 97; // 97 tags for 3000 slots: long collision chains
            match model.entry(slot) {
                std::collections::hash_map::Entry::Occupied(held)
                    if !(state >> 40).is_multiple_of(3) =>
                {
                    assert!(index.remove(tag, slot), "step {step}");
                    held.remove();
                }
                std::collections::hash_map::Entry::Occupied(_) => {}
                std::collections::hash_map::Entry::Vacant(free) => {
                    index.insert(tag, slot);
                    free.insert(tag);
                }
            }
            assert_eq!(index.len(), model.len());
            let probe = ((state >> 20) % 3000) as u32;
            let found = index.find(probe % 97, |s| s == probe);
            assert_eq!(
                found,
                model.contains_key(&probe).then_some(probe),
                "step {step}"
            );
        }
        let mut slots: Vec<u32> = index.slots().collect();
        slots.sort_unstable();
        let mut expected: Vec<u32> = model.keys().copied().collect();
        expected.sort_unstable();
        assert_eq!(slots, expected);
        index.clear();
        assert_eq!(index.len(), 0);
        assert_eq!(index.find(0, |_| true), None);
    }

    #[test]
    fn colliding_tags_are_told_apart_by_eq() {
        let mut index = Index::default();
        for slot in 0..1000 {
            index.insert(7, slot);
        }
        for slot in 0..1000 {
            assert_eq!(index.find(7, |s| s == slot), Some(slot));
        }
        assert!(index.remove(7, 500));
        assert_eq!(index.find(7, |s| s == 500), None);
        assert_eq!(index.len(), 999);
    }
}
