//! A set of points (IPv4 addresses as `u32`, IPv6 as `u128`) stored as disjoint, non-adjacent
//! inclusive ranges, with order statistics.
//!
//! This is the free space of one allocation zone: a B+tree of ranges whose inner nodes keep,
//! for every child, a lower bound of its keys (range starts) and the number of points below it.
//! That gives:
//! - `take_nth(k)`: remove and return the k-th free point in address order, `O(log n)` in one
//!   descent: a uniform random pick is `take_nth(random below len())`, without looking at
//!   single addresses;
//! - `first_at_or_after(x)`: the next free point, `O(log n)`;
//! - `remove(p)` / `insert(p)`: take or give back one point, splitting or merging ranges.
//!
//! Why a B+tree and not a binary tree: with a million ranges every node visited is a cache
//! miss. A treap (the first version) needed ~27 levels for a /8 with 1M random leases and spent
//! 3.3 µs per allocation on them; nodes of 32 entries keep the depth at 4-5.
//!
//! Why generic over the point type: leaves hold almost all of the tree's memory, and an IPv4
//! leaf of `u32` ranges is 264 bytes where a `u128` one is 1 KiB. Leaves and inner nodes live
//! in separate arenas so that a leaf is not padded to the size of an inner node. The interface
//! is `u128` either way; an IPv4 tree is only ever given IPv4 values.
//!
//! Nodes are never merged when they shrink, only dropped when empty, and the root collapses
//! while it has a single child: the height stays bounded by the log of the largest size the set
//! had, and memory stays one node per (at most) 32 ranges that ever coexisted, at worst one node
//! per live range after adversarial release patterns.
//!
//! Memory is proportional to the number of free ranges: it grows with the fragmentation caused by
//! allocations and excludes, never with the size of the address space.

use std::fmt::Debug;

const CAP: usize = 32;
/// Ranges per leaf: 31 so that an IPv4 leaf with its length is exactly four cache lines.
const LEAF_CAP: usize = 31;
/// Entries per node when building from sorted input: room for inserts before the first split.
const BUILD_FILL: usize = 24;
const NIL: usize = usize::MAX;

/// The point type of a tree: `u32` for IPv4, `u128` for IPv6. Arithmetic is done in `u128`.
pub(crate) trait Point: Copy + Ord + Default + Debug {
    /// The value as `u128`.
    fn wide(self) -> u128;
    /// A `u128` known to fit (saturates if it does not).
    fn narrow(value: u128) -> Self;
}

impl Point for u32 {
    fn wide(self) -> u128 {
        u128::from(self)
    }
    fn narrow(value: u128) -> Self {
        u32::try_from(value).unwrap_or(u32::MAX)
    }
}

impl Point for u128 {
    fn wide(self) -> u128 {
        self
    }
    fn narrow(value: u128) -> Self {
        value
    }
}

/// Node references: an index into the leaf or the inner arena, tagged in the low bit.
fn leaf_ref(index: usize) -> usize {
    (index << 1) | 1
}
fn inner_ref(index: usize) -> usize {
    index << 1
}
fn is_leaf(t: usize) -> bool {
    t & 1 == 1
}

/// The length first and the node cache-line aligned: a lookup's first miss brings the length
/// and the first ranges together (with the length last, a leaf cost two misses before the scan).
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Leaf<P> {
    len: usize,
    ranges: [(P, P); LEAF_CAP],
}

#[derive(Debug, Clone)]
struct Inner<P> {
    len: usize,
    /// `keys[i]` is at most the smallest start in child `i` and above every start in child
    /// `i - 1` (a lower bound, not always the exact minimum: it is only lowered or raised along
    /// the path of a change, never propagated).
    keys: [P; CAP],
    /// Points in child `i`.
    counts: [u128; CAP],
    children: [usize; CAP],
}

fn own<P: Point>((start, end): (P, P)) -> u128 {
    end.wide().saturating_sub(start.wide()).saturating_add(1)
}

impl<P: Point> Leaf<P> {
    fn empty() -> Self {
        Leaf {
            len: 0,
            ranges: [(P::default(), P::default()); LEAF_CAP],
        }
    }

    fn total(&self) -> u128 {
        self.ranges[..self.len]
            .iter()
            .fold(0u128, |sum, &r| sum.saturating_add(own(r)))
    }
}

impl<P: Point> Inner<P> {
    fn total(&self) -> u128 {
        self.counts[..self.len]
            .iter()
            .fold(0u128, |sum, &c| sum.saturating_add(c))
    }
}

/// What changes in a leaf.
#[derive(Debug, Clone, Copy)]
enum Op<P> {
    /// The range starting at `start` becomes `to` (`to.0` may be lower: a release just below).
    Modify { start: P, to: (P, P) },
    /// The range starting at `start` goes.
    Delete { start: P },
    /// A new range that touches no other.
    Insert { range: (P, P) },
}

impl<P: Point> Op<P> {
    /// The key that leads to the leaf.
    fn key(self) -> P {
        match self {
            Op::Modify { start, .. } | Op::Delete { start } => start,
            Op::Insert { range } => range.0,
        }
    }

    /// The smallest key the leaf will hold that the op touches: separators on the path must not
    /// exceed it.
    fn lowest(self) -> P {
        match self {
            Op::Modify { start, to } => start.min(to.0),
            Op::Delete { start } => start,
            Op::Insert { range } => range.0,
        }
    }
}

/// Which point a take removes.
#[derive(Debug, Clone, Copy)]
enum Take<P> {
    /// The k-th point in ascending order.
    Rank(u128),
    /// Point `p` of the range starting at `start`.
    At { start: P, p: P },
}

/// What a child reports to its parent after an [`Op`] or a take.
struct Up<P> {
    /// The child split: the separator and the new right sibling.
    split: Option<(P, usize)>,
    /// The child has no entries left.
    empty: bool,
}

impl<P> Up<P> {
    const NONE: Up<P> = Up {
        split: None,
        empty: false,
    };
}

/// A set of points kept as ranges, with `O(log n)` rank queries. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct RangeTree<P> {
    leaves: Vec<Leaf<P>>,
    inners: Vec<Inner<P>>,
    vacant_leaves: Vec<usize>,
    vacant_inners: Vec<usize>,
    root: usize,
    len: u128,
    range_count: usize,
}

impl<P: Point> Default for RangeTree<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Point> RangeTree<P> {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self {
            leaves: vec![Leaf::empty()],
            inners: Vec::new(),
            vacant_leaves: Vec::new(),
            vacant_inners: Vec::new(),
            root: leaf_ref(0),
            len: 0,
            range_count: 0,
        }
    }

    /// Builds the set from sorted, disjoint ranges in `O(n)` (adjacent ranges are merged).
    pub(crate) fn from_sorted(ranges: impl IntoIterator<Item = (u128, u128)>) -> Self {
        let mut merged: Vec<(P, P)> = Vec::new();
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if last.1.wide().checked_add(1) == Some(start) => {
                    last.1 = P::narrow(end);
                }
                _ => merged.push((P::narrow(start), P::narrow(end))),
            }
        }
        if merged.is_empty() {
            return Self::new();
        }
        let mut tree = Self {
            leaves: Vec::with_capacity(merged.len() / BUILD_FILL + 1),
            inners: Vec::with_capacity(merged.len() / BUILD_FILL / BUILD_FILL + 2),
            vacant_leaves: Vec::new(),
            vacant_inners: Vec::new(),
            root: NIL,
            len: merged
                .iter()
                .fold(0u128, |sum, &r| sum.saturating_add(own(r))),
            range_count: merged.len(),
        };
        // Level by level: (lower bound, points, node) of every node of the level.
        let mut level: Vec<(P, u128, usize)> = Vec::new();
        for chunk in merged.chunks(BUILD_FILL) {
            let mut leaf = Leaf::empty();
            leaf.ranges[..chunk.len()].copy_from_slice(chunk);
            leaf.len = chunk.len();
            let count = leaf.total();
            level.push((chunk[0].0, count, tree.alloc_leaf(leaf)));
        }
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len() / BUILD_FILL + 1);
            for chunk in level.chunks(BUILD_FILL) {
                let mut node = Inner {
                    len: chunk.len(),
                    keys: [P::default(); CAP],
                    counts: [0; CAP],
                    children: [NIL; CAP],
                };
                for (i, &(key, count, child)) in chunk.iter().enumerate() {
                    node.keys[i] = key;
                    node.counts[i] = count;
                    node.children[i] = child;
                }
                let count = node.total();
                next.push((chunk[0].0, count, tree.alloc_inner(node)));
            }
            level = next;
        }
        tree.root = level[0].2;
        tree
    }

    fn alloc_leaf(&mut self, leaf: Leaf<P>) -> usize {
        if let Some(index) = self.vacant_leaves.pop() {
            self.leaves[index] = leaf;
            leaf_ref(index)
        } else {
            self.leaves.push(leaf);
            leaf_ref(self.leaves.len() - 1)
        }
    }

    fn alloc_inner(&mut self, inner: Inner<P>) -> usize {
        if let Some(index) = self.vacant_inners.pop() {
            self.inners[index] = inner;
            inner_ref(index)
        } else {
            self.inners.push(inner);
            inner_ref(self.inners.len() - 1)
        }
    }

    fn free(&mut self, t: usize) {
        if is_leaf(t) {
            self.leaves[t >> 1].len = 0;
            self.vacant_leaves.push(t >> 1);
        } else {
            self.inners[t >> 1].len = 0;
            self.vacant_inners.push(t >> 1);
        }
    }

    fn total(&self, t: usize) -> u128 {
        if is_leaf(t) {
            self.leaves[t >> 1].total()
        } else {
            self.inners[t >> 1].total()
        }
    }

    /// Number of points in the set, `O(1)`.
    pub(crate) fn len(&self) -> u128 {
        self.len
    }

    /// Number of ranges in the set.
    pub(crate) fn range_count(&self) -> usize {
        self.range_count
    }

    /// The ranges in ascending order.
    pub(crate) fn ranges(&self) -> Vec<(u128, u128)> {
        let mut out = Vec::with_capacity(self.range_count);
        let mut stack = vec![self.root];
        while let Some(t) = stack.pop() {
            if is_leaf(t) {
                let leaf = &self.leaves[t >> 1];
                out.extend(
                    leaf.ranges[..leaf.len]
                        .iter()
                        .map(|&(s, e)| (s.wide(), e.wide())),
                );
            } else {
                let inner = &self.inners[t >> 1];
                stack.extend(inner.children[..inner.len].iter().rev());
            }
        }
        out
    }

    /// Whether `p` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, p: u128) -> bool {
        self.floor_range(P::narrow(p))
            .is_some_and(|(_, end)| end.wide() >= p)
    }

    /// The `k`-th point (0-based) in ascending order, or `None` if `k >= len()`.
    #[cfg(test)]
    pub(crate) fn nth(&self, mut k: u128) -> Option<u128> {
        let mut t = self.root;
        while !is_leaf(t) {
            let inner = &self.inners[t >> 1];
            let mut next = None;
            for i in 0..inner.len {
                if k < inner.counts[i] {
                    next = Some(inner.children[i]);
                    break;
                }
                k -= inner.counts[i];
            }
            t = next?;
        }
        let leaf = &self.leaves[t >> 1];
        for &range in &leaf.ranges[..leaf.len] {
            let size = own(range);
            if k < size {
                return Some(range.0.wide() + k);
            }
            k -= size;
        }
        None
    }

    /// Index of the child of an inner node that `key` leads to.
    fn child_for(keys: &[P], key: P) -> usize {
        keys.partition_point(|&k| k <= key).saturating_sub(1)
    }

    /// The range with the greatest start `<= p`, as (start, end).
    fn floor_in(&self, t: usize, p: P) -> Option<(P, P)> {
        if is_leaf(t) {
            let leaf = &self.leaves[t >> 1];
            let i = leaf.ranges[..leaf.len].partition_point(|r| r.0 <= p);
            return i.checked_sub(1).map(|i| leaf.ranges[i]);
        }
        let inner = &self.inners[t >> 1];
        let i = Self::child_for(&inner.keys[..inner.len], p);
        // A separator is only a lower bound: the floor may be in an earlier child.
        (0..=i)
            .rev()
            .find_map(|j| self.floor_in(inner.children[j], p))
    }

    fn floor_range(&self, p: P) -> Option<(P, P)> {
        self.floor_in(self.root, p)
    }

    /// The range with the smallest start `>= p`.
    fn ceiling_in(&self, t: usize, p: P) -> Option<(P, P)> {
        if is_leaf(t) {
            let leaf = &self.leaves[t >> 1];
            let i = leaf.ranges[..leaf.len].partition_point(|r| r.0 < p);
            return (i < leaf.len).then(|| leaf.ranges[i]);
        }
        let inner = &self.inners[t >> 1];
        let i = Self::child_for(&inner.keys[..inner.len], p);
        (i..inner.len).find_map(|j| self.ceiling_in(inner.children[j], p))
    }

    /// The smallest point `>= x`.
    pub(crate) fn first_at_or_after(&self, x: u128) -> Option<u128> {
        let p = P::narrow(x);
        match self.floor_range(p) {
            Some((_, end)) if end >= p => Some(x),
            _ => self.ceiling_in(self.root, p).map(|r| r.0.wide()),
        }
    }

    /// Applies `op` below node `t`; fixes counts, splits and empties on the way back up.
    fn apply_in(&mut self, t: usize, op: Op<P>) -> Up<P> {
        if is_leaf(t) {
            let leaf = &mut self.leaves[t >> 1];
            let right = Self::apply_leaf(leaf, op);
            let empty = leaf.len == 0;
            return match right {
                None => Up { split: None, empty },
                Some(right) => {
                    let separator = right.ranges[0].0;
                    Up {
                        split: Some((separator, self.alloc_leaf(right))),
                        empty: false,
                    }
                }
            };
        }
        let inner = &mut self.inners[t >> 1];
        let i = Self::child_for(&inner.keys[..inner.len], op.key());
        inner.keys[i] = inner.keys[i].min(op.lowest());
        let child = inner.children[i];
        let up = self.apply_in(child, op);
        let child_total = self.total(child);
        let split = up.split.map(|(sep, right)| (sep, self.total(right), right));
        if up.empty {
            self.free(child);
        }
        let inner = &mut self.inners[t >> 1];
        if up.empty {
            inner.remove_child(i);
            return Up {
                split: None,
                empty: inner.len == 0,
            };
        }
        inner.counts[i] = child_total;
        // A range whose start moved up (its first point was taken) may now reach past a loose
        // separator; the next child's keys all lie above its end, so `start + 1` is a valid
        // separator again.
        if let Op::Modify { to, .. } = op
            && i + 1 < inner.len
            && inner.keys[i + 1] <= to.0
        {
            inner.keys[i + 1] = P::narrow(to.0.wide() + 1);
        }
        match split {
            None => Up::NONE,
            Some(entry) => self.attach(t, i, entry),
        }
    }

    /// Inserts the new right sibling `entry` of child `i` into inner node `t`, splitting `t` if
    /// it is full.
    fn attach(&mut self, t: usize, i: usize, entry: (P, u128, usize)) -> Up<P> {
        let inner = &mut self.inners[t >> 1];
        if inner.len < CAP {
            inner.insert_child(i + 1, entry);
            return Up::NONE;
        }
        // Full: move the upper half to a new sibling, then insert where the child belongs.
        let half = CAP / 2;
        let mut right = Inner {
            len: CAP - half,
            keys: [P::default(); CAP],
            counts: [0; CAP],
            children: [NIL; CAP],
        };
        right.keys[..CAP - half].copy_from_slice(&inner.keys[half..]);
        right.counts[..CAP - half].copy_from_slice(&inner.counts[half..]);
        right.children[..CAP - half].copy_from_slice(&inner.children[half..]);
        inner.len = half;
        if i < half {
            inner.insert_child(i + 1, entry);
        } else {
            right.insert_child(i + 1 - half, entry);
        }
        let separator = right.keys[0];
        Up {
            split: Some((separator, self.alloc_inner(right))),
            empty: false,
        }
    }

    /// Applies `op` to a leaf; returns the upper half if the leaf had to split.
    fn apply_leaf(leaf: &mut Leaf<P>, op: Op<P>) -> Option<Leaf<P>> {
        let len = leaf.len;
        let ranges = &mut leaf.ranges;
        match op {
            Op::Modify { start, to } => {
                let i = ranges[..len].partition_point(|r| r.0 < start);
                if i < len && ranges[i].0 == start {
                    ranges[i] = to;
                }
                None
            }
            Op::Delete { start } => {
                let i = ranges[..len].partition_point(|r| r.0 < start);
                if i < len && ranges[i].0 == start {
                    ranges.copy_within(i + 1..len, i);
                    leaf.len -= 1;
                }
                None
            }
            Op::Insert { range } => {
                let at = ranges[..len].partition_point(|r| r.0 < range.0);
                if len < LEAF_CAP {
                    ranges.copy_within(at..len, at + 1);
                    ranges[at] = range;
                    leaf.len += 1;
                    return None;
                }
                let half = LEAF_CAP / 2;
                let mut right = Leaf::empty();
                right.len = LEAF_CAP - half;
                right.ranges[..LEAF_CAP - half].copy_from_slice(&ranges[half..]);
                leaf.len = half;
                if at <= half {
                    ranges.copy_within(at..half, at + 1);
                    ranges[at] = range;
                    leaf.len += 1;
                } else {
                    let at = at - half;
                    right.ranges.copy_within(at..right.len, at + 1);
                    right.ranges[at] = range;
                    right.len += 1;
                }
                Some(right)
            }
        }
    }

    fn apply(&mut self, op: Op<P>) {
        let up = self.apply_in(self.root, op);
        self.finish(up);
    }

    /// Fixes the root after a change: an emptied root becomes an empty leaf, a split root gets a
    /// new parent, and a root with a single child gives way to it.
    fn finish(&mut self, up: Up<P>) {
        if up.empty {
            let old = self.root;
            self.free(old);
            self.root = self.alloc_leaf(Leaf::empty());
            return;
        }
        if let Some((separator, right)) = up.split {
            let left = self.root;
            let mut root = Inner {
                len: 2,
                keys: [P::default(); CAP],
                counts: [0; CAP],
                children: [NIL; CAP],
            };
            root.keys[0] = P::default();
            root.keys[1] = separator;
            root.counts[0] = self.total(left);
            root.counts[1] = self.total(right);
            root.children[0] = left;
            root.children[1] = right;
            self.root = self.alloc_inner(root);
        }
        while !is_leaf(self.root) && self.inners[self.root >> 1].len == 1 {
            let old = self.root;
            self.root = self.inners[old >> 1].children[0];
            self.free(old);
        }
    }

    /// Removes the point `target` designates in the subtree `t` and returns it with what the
    /// parent must fix up, and the change in the number of ranges. One descent: counts along
    /// the path drop by one instead of being summed again.
    fn take_in(&mut self, t: usize, target: Take<P>) -> Option<(P, Up<P>, isize)> {
        if is_leaf(t) {
            let leaf = &mut self.leaves[t >> 1];
            let (at, p) = match target {
                Take::Rank(mut k) => {
                    let mut found = None;
                    for (at, &range) in leaf.ranges[..leaf.len].iter().enumerate() {
                        let size = own(range);
                        if k < size {
                            found = Some((at, P::narrow(range.0.wide() + k)));
                            break;
                        }
                        k -= size;
                    }
                    found?
                }
                Take::At { start, p } => {
                    let at = leaf.ranges[..leaf.len].partition_point(|r| r.0 < start);
                    if at >= leaf.len
                        || leaf.ranges[at].0 != start
                        || leaf.ranges[at].1 < p
                        || p < start
                    {
                        return None;
                    }
                    (at, p)
                }
            };
            let (start, end) = leaf.ranges[at];
            let (right, ranges_delta) = if start == end {
                leaf.ranges.copy_within(at + 1..leaf.len, at);
                leaf.len -= 1;
                (None, -1)
            } else if p == start {
                leaf.ranges[at].0 = P::narrow(start.wide() + 1);
                (None, 0)
            } else if p == end {
                leaf.ranges[at].1 = P::narrow(end.wide() - 1);
                (None, 0)
            } else {
                leaf.ranges[at].1 = P::narrow(p.wide() - 1);
                let range = (P::narrow(p.wide() + 1), end);
                (Self::apply_leaf(leaf, Op::Insert { range }), 1)
            };
            let empty = leaf.len == 0;
            let up = match right {
                None => Up { split: None, empty },
                Some(right) => {
                    let separator = right.ranges[0].0;
                    Up {
                        split: Some((separator, self.alloc_leaf(right))),
                        empty: false,
                    }
                }
            };
            return Some((p, up, ranges_delta));
        }
        let inner = &self.inners[t >> 1];
        let (i, target) = match target {
            Take::Rank(mut k) => {
                let mut next = None;
                for i in 0..inner.len {
                    if k < inner.counts[i] {
                        next = Some((i, Take::Rank(k)));
                        break;
                    }
                    k -= inner.counts[i];
                }
                next?
            }
            Take::At { start, .. } => (Self::child_for(&inner.keys[..inner.len], start), target),
        };
        let child = inner.children[i];
        let (p, up, ranges_delta) = self.take_in(child, target)?;
        let split = up.split.map(|(sep, right)| (sep, self.total(right), right));
        // A saturated count (a subtree of 2^128 points or more) is not exact: recount it.
        let saturated = self.inners[t >> 1].counts[i] == u128::MAX;
        let child_total = (split.is_some() || saturated).then(|| self.total(child));
        if up.empty {
            self.free(child);
        }
        let inner = &mut self.inners[t >> 1];
        if up.empty {
            inner.remove_child(i);
            let up = Up {
                split: None,
                empty: inner.len == 0,
            };
            return Some((p, up, ranges_delta));
        }
        inner.counts[i] = child_total.unwrap_or(inner.counts[i] - 1);
        // Child `i` may now hold a range starting at `p + 1`, above a loose separator; the next
        // child's starts all lie above the end of `p`'s range, so at least at `p + 2`.
        if i + 1 < inner.len {
            let floor = P::narrow(p.wide().saturating_add(2));
            inner.keys[i + 1] = inner.keys[i + 1].max(floor);
        }
        let up = match split {
            None => Up::NONE,
            Some(entry) => self.attach(t, i, entry),
        };
        Some((p, up, ranges_delta))
    }

    /// Removes the point `target` designates; the root is fixed up as after [`Self::apply`].
    fn take(&mut self, target: Take<P>) -> Option<u128> {
        let (p, up, ranges_delta) = self.take_in(self.root, target)?;
        self.finish(up);
        self.range_count = self.range_count.saturating_add_signed(ranges_delta);
        self.len = self.len.saturating_sub(1);
        Some(p.wide())
    }

    /// Removes and returns the `k`-th point (0-based), `None` if `k >= len()`: `nth` and
    /// `remove` in one descent, the random allocation path.
    pub(crate) fn take_nth(&mut self, k: u128) -> Option<u128> {
        if k >= self.len {
            return None;
        }
        self.take(Take::Rank(k))
    }

    /// Removes `p`; returns whether it was present.
    pub(crate) fn remove(&mut self, p: u128) -> bool {
        let p = P::narrow(p);
        let Some((start, _)) = self.floor_range(p).filter(|&(_, end)| end >= p) else {
            return false;
        };
        self.take(Take::At { start, p }).is_some()
    }

    /// Adds `p`, merging it with adjacent ranges; returns whether it was absent.
    pub(crate) fn insert(&mut self, p: u128) -> bool {
        let q = P::narrow(p);
        let below = self.floor_range(q);
        if let Some((_, end)) = below
            && end >= q
        {
            return false;
        }
        let joins_below = below.filter(|&(_, end)| end.wide().checked_add(1) == Some(p));
        let above = p
            .checked_add(1)
            .and_then(|next| self.ceiling_in(self.root, P::narrow(next)));
        let joins_above = above.filter(|&(start, _)| p.checked_add(1) == Some(start.wide()));
        match (joins_below, joins_above) {
            (Some((below_start, _)), Some((above_start, above_end))) => {
                self.apply(Op::Delete { start: above_start });
                self.apply(Op::Modify {
                    start: below_start,
                    to: (below_start, above_end),
                });
                self.range_count -= 1;
            }
            (Some((below_start, _)), None) => {
                self.apply(Op::Modify {
                    start: below_start,
                    to: (below_start, q),
                });
            }
            (None, Some((above_start, above_end))) => {
                self.apply(Op::Modify {
                    start: above_start,
                    to: (q, above_end),
                });
            }
            (None, None) => {
                self.apply(Op::Insert { range: (q, q) });
                self.range_count += 1;
            }
        }
        self.len = self.len.saturating_add(1);
        true
    }

    /// Levels from the root to the leaves (tests check the balance).
    #[cfg(test)]
    fn height(&self) -> usize {
        let mut height = 1;
        let mut t = self.root;
        while !is_leaf(t) {
            t = self.inners[t >> 1].children[0];
            height += 1;
        }
        height
    }
}

impl<P: Point> Inner<P> {
    fn insert_child(&mut self, at: usize, (key, count, child): (P, u128, usize)) {
        let len = self.len;
        self.keys.copy_within(at..len, at + 1);
        self.counts.copy_within(at..len, at + 1);
        self.children.copy_within(at..len, at + 1);
        self.keys[at] = key;
        self.counts[at] = count;
        self.children[at] = child;
        self.len += 1;
    }

    fn remove_child(&mut self, i: usize) {
        let len = self.len;
        self.keys.copy_within(i + 1..len, i);
        self.counts.copy_within(i + 1..len, i);
        self.children.copy_within(i + 1..len, i);
        self.len -= 1;
    }
}

/// The free space of a zone: a [`RangeTree`] of the family's width.
#[derive(Debug, Clone)]
pub(crate) enum FreeSpace {
    /// IPv4 addresses.
    V4(RangeTree<u32>),
    /// IPv6 addresses.
    V6(RangeTree<u128>),
}

macro_rules! each {
    ($self:expr, $tree:ident => $body:expr) => {
        match $self {
            FreeSpace::V4($tree) => $body,
            FreeSpace::V6($tree) => $body,
        }
    };
}

impl FreeSpace {
    /// Builds the free space of `family` from sorted, disjoint ranges.
    pub(crate) fn from_sorted(
        family: crate::addr::Family,
        ranges: impl IntoIterator<Item = (u128, u128)>,
    ) -> Self {
        match family {
            crate::addr::Family::V4 => FreeSpace::V4(RangeTree::from_sorted(ranges)),
            crate::addr::Family::V6 => FreeSpace::V6(RangeTree::from_sorted(ranges)),
        }
    }

    /// See [`RangeTree::len`].
    pub(crate) fn len(&self) -> u128 {
        each!(self, t => t.len())
    }

    /// See [`RangeTree::range_count`].
    pub(crate) fn range_count(&self) -> usize {
        each!(self, t => t.range_count())
    }

    /// See [`RangeTree::ranges`].
    pub(crate) fn ranges(&self) -> Vec<(u128, u128)> {
        each!(self, t => t.ranges())
    }

    /// See [`RangeTree::first_at_or_after`].
    pub(crate) fn first_at_or_after(&self, x: u128) -> Option<u128> {
        each!(self, t => t.first_at_or_after(x))
    }

    /// See [`RangeTree::take_nth`].
    pub(crate) fn take_nth(&mut self, k: u128) -> Option<u128> {
        each!(self, t => t.take_nth(k))
    }

    /// See [`RangeTree::remove`].
    pub(crate) fn remove(&mut self, p: u128) -> bool {
        each!(self, t => t.remove(p))
    }

    /// See [`RangeTree::insert`].
    pub(crate) fn insert(&mut self, p: u128) -> bool {
        each!(self, t => t.insert(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

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

    /// Random removes and inserts over `0..span` against a `BTreeSet`, checking every query.
    fn against_model<P: Point>(span: u64, steps: usize, seed: u64) {
        let mut state = seed;
        let mut model: BTreeSet<u128> = (10..=u128::from(span) - 20).collect();
        let mut tree = RangeTree::<P>::from_sorted([(10, 100), (101, u128::from(span) - 20)]);
        assert_eq!(tree.ranges(), vec![(10, u128::from(span) - 20)]);
        let mut max_height = 0;
        for step in 0..steps {
            let r = splitmix64(&mut state);
            let p = u128::from(r % span);
            // Phases: mostly removing, then mostly inserting, so the tree grows and shrinks.
            let removing_phase = (step / (steps / 4).max(1)).is_multiple_of(2);
            let majority = !(r >> 40).is_multiple_of(4);
            if removing_phase == majority && (r >> 50).is_multiple_of(2) {
                assert_eq!(tree.remove(p), model.remove(&p), "remove {p}");
            } else if removing_phase == majority {
                // Ranks just past the end too: those must take nothing.
                let k = u128::from(r >> 8) % (model.len() as u128 + 2);
                let expected = model.iter().nth(k as usize).copied();
                if let Some(q) = expected {
                    model.remove(&q);
                }
                assert_eq!(tree.take_nth(k), expected, "take_nth {k}");
            } else {
                assert_eq!(tree.insert(p), model.insert(p), "insert {p}");
            }
            assert_eq!(tree.len(), model.len() as u128);
            max_height = max_height.max(tree.height());
            if r.is_multiple_of(97) {
                assert_eq!(tree.ranges(), model_ranges(&model));
                assert_eq!(tree.range_count(), model_ranges(&model).len());
            }
            let k = u128::from(splitmix64(&mut state) % (span + 10));
            assert_eq!(tree.nth(k), model.iter().nth(k as usize).copied());
            let x = u128::from(splitmix64(&mut state) % (span + 10));
            assert_eq!(tree.first_at_or_after(x), model.range(x..).next().copied());
            assert_eq!(tree.contains(x), model.contains(&x));
        }
        assert_eq!(tree.ranges(), model_ranges(&model));
        assert!(max_height >= 2, "the test never split a node");
    }

    #[test]
    fn matches_a_point_set_under_random_operations() {
        against_model::<u128>(320, 20_000, 42);
        against_model::<u32>(320, 20_000, 43);
    }

    #[test]
    fn matches_a_point_set_through_three_levels() {
        // Up to ~2000 ranges: three levels of 32-entry nodes, with splits and empty-node removal.
        against_model::<u128>(8_000, 25_000, 7);
        against_model::<u32>(8_000, 25_000, 8);
    }

    #[test]
    fn handles_the_ends_of_the_u128_space() {
        let mut tree = RangeTree::<u128>::from_sorted([(1, u128::MAX)]);
        assert_eq!(tree.len(), u128::MAX);
        assert!(tree.remove(u128::MAX));
        assert!(tree.insert(u128::MAX));
        assert!(tree.insert(0));
        assert_eq!(tree.len(), u128::MAX); // saturated, never wraps
        assert_eq!(tree.nth(5), Some(5));
        assert_eq!(tree.first_at_or_after(u128::MAX), Some(u128::MAX));
        assert_eq!(tree.take_nth(5), Some(5));
        assert_eq!(tree.take_nth(u128::MAX - 3), Some(u128::MAX - 2));
        assert!(!tree.contains(5) && !tree.contains(u128::MAX - 2));
        assert_eq!(
            tree.ranges(),
            vec![(0, 4), (6, u128::MAX - 3), (u128::MAX - 1, u128::MAX)]
        );
    }

    #[test]
    fn handles_the_ends_of_the_u32_space() {
        let max = u128::from(u32::MAX);
        let mut tree = RangeTree::<u32>::from_sorted([(0, max)]);
        assert_eq!(tree.len(), max + 1);
        assert_eq!(tree.take_nth(max), Some(max));
        assert_eq!(tree.take_nth(0), Some(0));
        assert!(tree.remove(max - 1));
        assert_eq!(tree.first_at_or_after(max - 1), None);
        assert_eq!(tree.ranges(), vec![(1, max - 2)]);
        assert!(tree.insert(max));
        assert!(tree.insert(max - 1));
        assert!(tree.insert(0));
        assert_eq!(tree.ranges(), vec![(0, max)]);
        assert_eq!(tree.len(), max + 1);
    }

    #[test]
    fn stays_balanced_under_random_splits() {
        let mut tree = RangeTree::<u32>::from_sorted([(0, 1 << 24)]);
        let mut state = 1u64;
        let mut taken = Vec::new();
        for _ in 0..100_000 {
            let k = u128::from(splitmix64(&mut state)) % tree.len();
            let p = tree.nth(k).unwrap();
            assert!(tree.remove(p));
            taken.push(p);
        }
        // 100k ranges in nodes of 16-32 entries: 4 levels, 5 at most.
        assert!(tree.range_count() > 90_000);
        assert!((3..=5).contains(&tree.height()), "height {}", tree.height());
        // Giving everything back merges it into one range again, and the root collapses.
        for p in taken {
            assert!(tree.insert(p));
        }
        assert_eq!(tree.ranges(), vec![(0, 1 << 24)]);
        assert_eq!(tree.len(), (1 << 24) + 1);
        assert_eq!(tree.height(), 1);
    }

    #[test]
    fn an_ipv4_leaf_is_four_cache_lines() {
        assert_eq!(std::mem::size_of::<Leaf<u32>>(), 256);
        assert_eq!(std::mem::align_of::<Leaf<u32>>(), 64);
    }

    #[test]
    fn empty_tree_answers_none() {
        let tree = RangeTree::<u128>::from_sorted([]);
        assert_eq!(tree.len(), 0);
        assert_eq!(tree.nth(0), None);
        assert_eq!(tree.first_at_or_after(0), None);
        assert!(tree.ranges().is_empty());
    }
}
