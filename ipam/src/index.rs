//! [`Index`]: a hash index from something a lease holds (its key, an address, its MAC) to the
//! lease's slot number, storing 8 bytes per entry and nothing on the heap per entry.
//!
//! Why not a `HashMap<Thing, u32>`: owner keys are strings (a heap allocation each, 16 bytes of
//! pointer in every entry) and IPv6 addresses are 16-byte aligned; the lease slab holds all of
//! them once already. An entry here is the slot plus a 32-bit tag (a seeded hash of the thing,
//! or the IPv4 address itself), so a lookup reads the slab only when the tag matches, and
//! growing the table rehashes tags without touching the slab (a random cache miss per entry
//! otherwise, at every doubling).

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// One entry: a lease slot and the tag of what the index maps from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u32,
    slot: u32,
}

/// A hash index from things to lease slots; see the module docs. The caller computes tags with
/// [`Index::tag`] (or uses the IPv4 address as its own tag) and tells, in `eq`, whether a slot
/// holds the thing looked for.
#[derive(Clone, Default)]
pub(crate) struct Index {
    table: HashTable<Entry>,
    /// Seeded per process: tags and bucket positions of user-chosen keys cannot be precomputed
    /// to collide.
    state: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("len", &self.table.len())
            .finish()
    }
}

impl Index {
    /// The tag of `thing`: 32 bits of its seeded hash.
    pub(crate) fn tag<T: Hash + ?Sized>(&self, thing: &T) -> u32 {
        (self.state.hash_one(thing) >> 32) as u32
    }

    fn hash(state: &foldhash::fast::RandomState, tag: u32) -> u64 {
        state.hash_one(tag)
    }

    /// The slot whose tag is `tag` and for which `eq` holds.
    pub(crate) fn find(&self, tag: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.table
            .find(Self::hash(&self.state, tag), |e| e.tag == tag && eq(e.slot))
            .map(|e| e.slot)
    }

    /// Adds `slot` under `tag`; the caller has checked that the thing is not indexed yet.
    pub(crate) fn insert(&mut self, tag: u32, slot: u32) {
        let state = &self.state;
        self.table
            .insert_unique(Self::hash(state, tag), Entry { tag, slot }, |e| {
                Self::hash(state, e.tag)
            });
    }

    /// Removes the entry for `slot` under `tag`; returns whether there was one.
    pub(crate) fn remove(&mut self, tag: u32, slot: u32) -> bool {
        match self.table.find_entry(Self::hash(&self.state, tag), |e| {
            e.tag == tag && e.slot == slot
        }) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The slots, in no particular order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().map(|e| e.slot)
    }

    /// Drops every entry, keeping the allocated table.
    pub(crate) fn clear(&mut self) {
        self.table.clear();
    }

    /// Makes room for `additional` more entries at once (rebuild knows the count up front).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let state = &self.state;
        self.table.reserve(additional, |e| Self::hash(state, e.tag));
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
