//! A set of `u128` points stored as disjoint, non-adjacent inclusive ranges, with order statistics.
//!
//! This is the free space of one allocation zone. It is a treap (a binary search tree keyed by
//! range start, heap-ordered by a pseudo-random priority, so expected depth is `O(log n)`) kept in
//! an arena of nodes. Every node carries the number of points in its left and right subtrees,
//! which gives:
//! - `nth(k)`: the k-th free point in address order, `O(log n)`: a uniform random pick is
//!   `nth(random below len())`, without looking at single addresses;
//! - `first_at_or_after(x)`: the next free point, `O(log n)`;
//! - `remove(p)` / `insert(p)`: take or give back one point, splitting or merging ranges.
//!
//! The counts of both subtrees live in the parent so that a descent reads only the nodes on its
//! path: with a million ranges every node read is a cache miss, and reading the child's count
//! too doubled them (measured: half of all allocate time). Updates after a change recompute only
//! the side that changed, for the same reason.
//!
//! Memory is one node per free range: it grows with the fragmentation caused by allocations and
//! excludes, never with the size of the address space.

const NIL: usize = usize::MAX;

#[derive(Debug, Clone)]
struct Node {
    start: u128,
    end: u128,
    /// Points in the left subtree (saturating: a full IPv6 `::/0` would not fit, and is never
    /// stored because its network address is reserved).
    left_count: u128,
    /// Points in the right subtree.
    right_count: u128,
    priority: u64,
    left: usize,
    right: usize,
}

impl Node {
    fn own(&self) -> u128 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }

    fn total(&self) -> u128 {
        self.left_count
            .saturating_add(self.own())
            .saturating_add(self.right_count)
    }
}

/// A set of `u128` points kept as ranges, with `O(log n)` rank queries. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct RangeTree {
    nodes: Vec<Node>,
    vacant: Vec<usize>,
    root: usize,
    priority_state: u64,
}

impl Default for RangeTree {
    fn default() -> Self {
        Self::new()
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RangeTree {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self {
            nodes: Vec::new(),
            vacant: Vec::new(),
            root: NIL,
            priority_state: 0x5eed,
        }
    }

    /// Builds the set from sorted, disjoint ranges in `O(n)` (adjacent ranges are merged).
    pub(crate) fn from_sorted(ranges: impl IntoIterator<Item = (u128, u128)>) -> Self {
        let mut tree = Self::new();
        let mut merged: Vec<(u128, u128)> = Vec::new();
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if last.1.checked_add(1) == Some(start) => last.1 = end,
                _ => merged.push((start, end)),
            }
        }
        tree.nodes.reserve(merged.len());
        // Cartesian-tree construction: a stack holding the right spine of the tree built so far.
        let mut spine: Vec<usize> = Vec::new();
        for (start, end) in merged {
            let node = tree.alloc(start, end);
            let mut last_popped = NIL;
            while let Some(&top) = spine.last() {
                if tree.nodes[top].priority < tree.nodes[node].priority {
                    last_popped = top;
                    spine.pop();
                } else {
                    break;
                }
            }
            tree.nodes[node].left = last_popped;
            if let Some(&top) = spine.last() {
                tree.nodes[top].right = node;
            }
            spine.push(node);
        }
        // The bottom of the spine has the highest priority: it is the root.
        tree.root = spine.first().copied().unwrap_or(NIL);
        // Counts bottom-up: children come after their parents in breadth-first order.
        let mut order = Vec::with_capacity(tree.nodes.len());
        if tree.root != NIL {
            order.push(tree.root);
        }
        let mut i = 0;
        while i < order.len() {
            let n = &tree.nodes[order[i]];
            for child in [n.left, n.right] {
                if child != NIL {
                    order.push(child);
                }
            }
            i += 1;
        }
        for &t in order.iter().rev() {
            let (left, right) = (tree.nodes[t].left, tree.nodes[t].right);
            tree.nodes[t].left_count = tree.total(left);
            tree.nodes[t].right_count = tree.total(right);
        }
        tree
    }

    fn alloc(&mut self, start: u128, end: u128) -> usize {
        let priority = splitmix64(&mut self.priority_state);
        let node = Node {
            start,
            end,
            left_count: 0,
            right_count: 0,
            priority,
            left: NIL,
            right: NIL,
        };
        if let Some(index) = self.vacant.pop() {
            self.nodes[index] = node;
            index
        } else {
            self.nodes.push(node);
            self.nodes.len() - 1
        }
    }

    fn total(&self, t: usize) -> u128 {
        if t == NIL { 0 } else { self.nodes[t].total() }
    }

    fn set_left(&mut self, t: usize, child: usize) {
        self.nodes[t].left_count = self.total(child);
        self.nodes[t].left = child;
    }

    fn set_right(&mut self, t: usize, child: usize) {
        self.nodes[t].right_count = self.total(child);
        self.nodes[t].right = child;
    }

    /// Number of points in the set, `O(1)`.
    pub(crate) fn len(&self) -> u128 {
        self.total(self.root)
    }

    /// Number of ranges (tree nodes) in the set.
    pub(crate) fn range_count(&self) -> usize {
        self.nodes.len() - self.vacant.len()
    }

    /// The ranges in ascending order.
    pub(crate) fn ranges(&self) -> Vec<(u128, u128)> {
        let mut out = Vec::with_capacity(self.range_count());
        let mut stack = Vec::new();
        let mut t = self.root;
        while t != NIL || !stack.is_empty() {
            while t != NIL {
                stack.push(t);
                t = self.nodes[t].left;
            }
            if let Some(top) = stack.pop() {
                out.push((self.nodes[top].start, self.nodes[top].end));
                t = self.nodes[top].right;
            }
        }
        out
    }

    /// Whether `p` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, p: u128) -> bool {
        self.floor_range(p).is_some_and(|(_, end)| end >= p)
    }

    /// The `k`-th point (0-based) in ascending order, or `None` if `k >= len()`.
    pub(crate) fn nth(&self, mut k: u128) -> Option<u128> {
        let mut t = self.root;
        while t != NIL {
            let n = &self.nodes[t];
            if k < n.left_count {
                t = n.left;
                continue;
            }
            k -= n.left_count;
            let own = n.own();
            if k < own {
                return Some(n.start + k);
            }
            k -= own;
            t = n.right;
        }
        None
    }

    /// The smallest point `>= x`.
    pub(crate) fn first_at_or_after(&self, x: u128) -> Option<u128> {
        let mut t = self.root;
        let mut best = None;
        while t != NIL {
            let n = &self.nodes[t];
            if n.end < x {
                t = n.right;
            } else if n.start <= x {
                return Some(x);
            } else {
                best = Some(n.start);
                t = n.left;
            }
        }
        best
    }

    fn merge(&mut self, a: usize, b: usize) -> usize {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a].priority > self.nodes[b].priority {
            let merged = self.merge(self.nodes[a].right, b);
            self.set_right(a, merged);
            a
        } else {
            let merged = self.merge(a, self.nodes[b].left);
            self.set_left(b, merged);
            b
        }
    }

    /// Splits `t` into (starts < key, starts >= key).
    fn split(&mut self, t: usize, key: u128) -> (usize, usize) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.nodes[t].start < key {
            let (a, b) = self.split(self.nodes[t].right, key);
            self.set_right(t, a);
            (t, b)
        } else {
            let (a, b) = self.split(self.nodes[t].left, key);
            self.set_left(t, b);
            (a, t)
        }
    }

    fn insert_node(&mut self, t: usize, node: usize) -> usize {
        if t == NIL {
            return node;
        }
        if self.nodes[node].priority > self.nodes[t].priority {
            let (a, b) = self.split(t, self.nodes[node].start);
            self.set_left(node, a);
            self.set_right(node, b);
            return node;
        }
        if self.nodes[node].start < self.nodes[t].start {
            let child = self.insert_node(self.nodes[t].left, node);
            self.set_left(t, child);
        } else {
            let child = self.insert_node(self.nodes[t].right, node);
            self.set_right(t, child);
        }
        t
    }

    /// Removes `p`; returns whether it was present.
    pub(crate) fn remove(&mut self, p: u128) -> bool {
        let Some((start, end)) = self.floor_range(p).filter(|&(_, end)| end >= p) else {
            return false;
        };
        if start == end {
            self.root = self.delete_in(self.root, start);
        } else if p == start {
            // The start moves up but stays below the next range: the key order holds.
            self.modify_in(self.root, start, &mut |n| n.start = start + 1);
        } else if p == end {
            self.modify_in(self.root, start, &mut |n| n.end = end - 1);
        } else {
            self.modify_in(self.root, start, &mut |n| n.end = p - 1);
            // Inserted from the root so its priority finds its place: the tree stays a treap
            // (a split node inserted under its parent would break the heap order and, over
            // millions of splits, the balance).
            let tail = self.alloc(p + 1, end);
            self.root = self.insert_node(self.root, tail);
        }
        true
    }

    /// The range with the greatest start `<= p`, as (start, end).
    fn floor_range(&self, p: u128) -> Option<(u128, u128)> {
        let mut t = self.root;
        let mut best = None;
        while t != NIL {
            let n = &self.nodes[t];
            if n.start <= p {
                best = Some((n.start, n.end));
                t = n.right;
            } else {
                t = n.left;
            }
        }
        best
    }

    /// The range with the smallest start `> p`, as (start, end).
    fn ceiling_range(&self, p: u128) -> Option<(u128, u128)> {
        let mut t = self.root;
        let mut best = None;
        while t != NIL {
            let n = &self.nodes[t];
            if n.start > p {
                best = Some((n.start, n.end));
                t = n.left;
            } else {
                t = n.right;
            }
        }
        best
    }

    /// Applies `change` to the node whose start is `key`, fixing counts on the path.
    fn modify_in(&mut self, t: usize, key: u128, change: &mut dyn FnMut(&mut Node)) {
        if t == NIL {
            return;
        }
        let (start, left, right) = (self.nodes[t].start, self.nodes[t].left, self.nodes[t].right);
        if key < start {
            self.modify_in(left, key, change);
            self.nodes[t].left_count = self.total(left);
        } else if key > start {
            self.modify_in(right, key, change);
            self.nodes[t].right_count = self.total(right);
        } else {
            change(&mut self.nodes[t]);
        }
    }

    fn delete_in(&mut self, t: usize, key: u128) -> usize {
        if t == NIL {
            return NIL;
        }
        let (start, left, right) = (self.nodes[t].start, self.nodes[t].left, self.nodes[t].right);
        if key < start {
            let child = self.delete_in(left, key);
            self.set_left(t, child);
        } else if key > start {
            let child = self.delete_in(right, key);
            self.set_right(t, child);
        } else {
            self.vacant.push(t);
            return self.merge(left, right);
        }
        t
    }

    /// Adds `p`, merging it with adjacent ranges; returns whether it was absent.
    pub(crate) fn insert(&mut self, p: u128) -> bool {
        let below = self.floor_range(p);
        if let Some((_, end)) = below
            && end >= p
        {
            return false;
        }
        let joins_below = below.filter(|&(_, end)| end.checked_add(1) == Some(p));
        let joins_above = self
            .ceiling_range(p)
            .filter(|&(start, _)| p.checked_add(1) == Some(start));
        match (joins_below, joins_above) {
            (Some((below_start, _)), Some((above_start, above_end))) => {
                self.root = self.delete_in(self.root, above_start);
                self.modify_in(self.root, below_start, &mut |n| n.end = above_end);
            }
            (Some((below_start, _)), None) => {
                self.modify_in(self.root, below_start, &mut |n| n.end = p);
            }
            (None, Some((above_start, _))) => {
                self.modify_in(self.root, above_start, &mut |n| n.start = p);
            }
            (None, None) => {
                let node = self.alloc(p, p);
                self.root = self.insert_node(self.root, node);
            }
        }
        true
    }

    /// Depth of the deepest node (tests check the balance).
    #[cfg(test)]
    fn depth(&self) -> usize {
        let mut best = 0;
        let mut stack = vec![(self.root, 1)];
        while let Some((t, d)) = stack.pop() {
            if t != NIL {
                best = best.max(d);
                stack.push((self.nodes[t].left, d + 1));
                stack.push((self.nodes[t].right, d + 1));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn model_ranges(set: &BTreeSet<u128>) -> Vec<(u128, u128)> {
        let mut out: Vec<(u128, u128)> = Vec::new();
        for &p in set {
            match out.last_mut() {
                Some(last) if last.1 + 1 == p => last.1 = p,
                _ => out.push((p, p)),
            }
        }
        out
    }

    #[test]
    fn matches_a_point_set_under_random_operations() {
        let mut state = 42u64;
        let mut model: BTreeSet<u128> = (10..=300).collect();
        let mut tree = RangeTree::from_sorted([(10, 100), (101, 300)]);
        assert_eq!(tree.ranges(), vec![(10, 300)]);
        for _ in 0..20_000 {
            let r = splitmix64(&mut state);
            let p = u128::from(r % 320);
            if r & (1 << 40) == 0 {
                assert_eq!(tree.remove(p), model.remove(&p), "remove {p}");
            } else {
                assert_eq!(tree.insert(p), model.insert(p), "insert {p}");
            }
            assert_eq!(tree.len(), model.len() as u128);
            if r.is_multiple_of(97) {
                assert_eq!(tree.ranges(), model_ranges(&model));
                assert_eq!(tree.range_count(), model_ranges(&model).len());
            }
            let k = u128::from(splitmix64(&mut state) % 330);
            assert_eq!(tree.nth(k), model.iter().nth(k as usize).copied());
            let x = u128::from(splitmix64(&mut state) % 330);
            assert_eq!(tree.first_at_or_after(x), model.range(x..).next().copied());
            assert_eq!(tree.contains(x), model.contains(&x));
        }
    }

    #[test]
    fn handles_the_ends_of_the_u128_space() {
        let mut tree = RangeTree::from_sorted([(1, u128::MAX)]);
        assert_eq!(tree.len(), u128::MAX);
        assert!(tree.remove(u128::MAX));
        assert!(tree.insert(u128::MAX));
        assert!(tree.insert(0));
        assert_eq!(tree.len(), u128::MAX); // saturated, never wraps
        assert_eq!(tree.nth(5), Some(5));
        assert_eq!(tree.first_at_or_after(u128::MAX), Some(u128::MAX));
    }

    #[test]
    fn stays_balanced_under_random_splits() {
        let mut tree = RangeTree::from_sorted([(0, 1 << 24)]);
        let mut state = 1u64;
        for _ in 0..100_000 {
            let k = u128::from(splitmix64(&mut state)) % tree.len();
            let p = tree.nth(k).unwrap();
            assert!(tree.remove(p));
        }
        // A treap of n nodes has expected depth about 2 ln n (23 here); 60 means it is broken.
        assert!(tree.range_count() > 90_000);
        assert!(tree.depth() < 60, "depth {}", tree.depth());
    }

    #[test]
    fn empty_tree_answers_none() {
        let tree = RangeTree::from_sorted([]);
        assert_eq!(tree.len(), 0);
        assert_eq!(tree.nth(0), None);
        assert_eq!(tree.first_at_or_after(0), None);
        assert!(tree.ranges().is_empty());
    }
}
