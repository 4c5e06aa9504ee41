//! A set of `u128` points stored as disjoint, non-adjacent inclusive ranges, with order statistics.
//!
//! This is the free space of one allocation zone: a B+tree of ranges whose inner nodes keep,
//! for every child, a lower bound of its keys (range starts) and the number of points below it.
//! That gives:
//! - `nth(k)`: the k-th free point in address order, `O(log n)`: a uniform random pick is
//!   `nth(random below len())`, without looking at single addresses;
//! - `first_at_or_after(x)`: the next free point, `O(log n)`;
//! - `remove(p)` / `insert(p)`: take or give back one point, splitting or merging ranges.
//!
//! Why a B+tree and not a binary tree: with a million ranges every node visited is a cache
//! miss. A treap (the first version) needed ~27 levels for a /8 with 1M random leases and spent
//! 3.3 µs per allocation on them; nodes of 32 entries keep the depth at 4-5.
//!
//! Nodes are never merged when they shrink, only dropped when empty, and the root collapses
//! while it has a single child: the height stays bounded by the log of the largest size the set
//! had, and memory stays one node per (at most) 32 ranges that ever coexisted, at worst one node
//! per live range after adversarial release patterns.
//!
//! Memory is proportional to the number of free ranges: it grows with the fragmentation caused by
//! allocations and excludes, never with the size of the address space.

const CAP: usize = 32;
/// Entries per node when building from sorted input: room for inserts before the first split.
const BUILD_FILL: usize = 24;
const NIL: usize = usize::MAX;

// Both variants hold their entries inline so that a descent reads one node, not a node and then
// a heap buffer; the leaf being 256 bytes smaller than an inner node is the price.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Node {
    Leaf {
        len: usize,
        ranges: [(u128, u128); CAP],
    },
    Inner {
        len: usize,
        /// `keys[i]` is at most the smallest start in child `i` and above every start in child
        /// `i - 1` (a lower bound, not always the exact minimum: it is only lowered or raised
        /// along the path of a change, never propagated).
        keys: [u128; CAP],
        /// Points in child `i`.
        counts: [u128; CAP],
        children: [usize; CAP],
    },
}

fn own((start, end): (u128, u128)) -> u128 {
    end.saturating_sub(start).saturating_add(1)
}

impl Node {
    fn empty_leaf() -> Self {
        Node::Leaf {
            len: 0,
            ranges: [(0, 0); CAP],
        }
    }

    fn total(&self) -> u128 {
        match self {
            Node::Leaf { len, ranges } => ranges[..*len]
                .iter()
                .fold(0u128, |sum, &r| sum.saturating_add(own(r))),
            Node::Inner { len, counts, .. } => counts[..*len]
                .iter()
                .fold(0u128, |sum, &c| sum.saturating_add(c)),
        }
    }
}

/// What changes in a leaf.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// The range starting at `start` becomes `to` (`to.0` may be lower: a release just below).
    Modify { start: u128, to: (u128, u128) },
    /// The range starting at `start` goes.
    Delete { start: u128 },
    /// A new range that touches no other.
    Insert { range: (u128, u128) },
}

impl Op {
    /// The key that leads to the leaf.
    fn key(self) -> u128 {
        match self {
            Op::Modify { start, .. } | Op::Delete { start } => start,
            Op::Insert { range } => range.0,
        }
    }

    /// The smallest key the leaf will hold that the op touches: separators on the path must not
    /// exceed it.
    fn lowest(self) -> u128 {
        match self {
            Op::Modify { start, to } => start.min(to.0),
            Op::Delete { start } => start,
            Op::Insert { range } => range.0,
        }
    }
}

/// Which point a take removes.
#[derive(Debug, Clone, Copy)]
enum Take {
    /// The k-th point in ascending order.
    Rank(u128),
    /// Point `p` of the range starting at `start`.
    At { start: u128, p: u128 },
}

/// What a child reports to its parent after an [`Op`].
struct Up {
    /// The child split: the separator and the new right sibling.
    split: Option<(u128, usize)>,
    /// The child has no entries left.
    empty: bool,
}

/// A set of `u128` points kept as ranges, with `O(log n)` rank queries. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct RangeTree {
    nodes: Vec<Node>,
    vacant: Vec<usize>,
    root: usize,
    len: u128,
    range_count: usize,
}

impl Default for RangeTree {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeTree {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self {
            nodes: vec![Node::empty_leaf()],
            vacant: Vec::new(),
            root: 0,
            len: 0,
            range_count: 0,
        }
    }

    /// Builds the set from sorted, disjoint ranges in `O(n)` (adjacent ranges are merged).
    pub(crate) fn from_sorted(ranges: impl IntoIterator<Item = (u128, u128)>) -> Self {
        let mut merged: Vec<(u128, u128)> = Vec::new();
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if last.1.checked_add(1) == Some(start) => last.1 = end,
                _ => merged.push((start, end)),
            }
        }
        if merged.is_empty() {
            return Self::new();
        }
        let mut tree = Self {
            nodes: Vec::with_capacity(merged.len() / BUILD_FILL + merged.len() / 500 + 2),
            vacant: Vec::new(),
            root: NIL,
            len: merged
                .iter()
                .fold(0u128, |sum, &r| sum.saturating_add(own(r))),
            range_count: merged.len(),
        };
        // Level by level: (lower bound, points, node) of every node of the level.
        let mut level: Vec<(u128, u128, usize)> = Vec::new();
        for chunk in merged.chunks(BUILD_FILL) {
            let mut ranges = [(0, 0); CAP];
            ranges[..chunk.len()].copy_from_slice(chunk);
            let node = Node::Leaf {
                len: chunk.len(),
                ranges,
            };
            let count = node.total();
            level.push((chunk[0].0, count, tree.alloc(node)));
        }
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len() / BUILD_FILL + 1);
            for chunk in level.chunks(BUILD_FILL) {
                let mut keys = [0; CAP];
                let mut counts = [0; CAP];
                let mut children = [NIL; CAP];
                for (i, &(key, count, child)) in chunk.iter().enumerate() {
                    keys[i] = key;
                    counts[i] = count;
                    children[i] = child;
                }
                let node = Node::Inner {
                    len: chunk.len(),
                    keys,
                    counts,
                    children,
                };
                let count = node.total();
                next.push((chunk[0].0, count, tree.alloc(node)));
            }
            level = next;
        }
        tree.root = level[0].2;
        tree
    }

    fn alloc(&mut self, node: Node) -> usize {
        if let Some(index) = self.vacant.pop() {
            self.nodes[index] = node;
            index
        } else {
            self.nodes.push(node);
            self.nodes.len() - 1
        }
    }

    fn free(&mut self, index: usize) {
        self.nodes[index] = Node::empty_leaf();
        self.vacant.push(index);
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
            match &self.nodes[t] {
                Node::Leaf { len, ranges } => out.extend_from_slice(&ranges[..*len]),
                Node::Inner { len, children, .. } => stack.extend(children[..*len].iter().rev()),
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
    #[cfg(test)]
    pub(crate) fn nth(&self, mut k: u128) -> Option<u128> {
        let mut t = self.root;
        loop {
            match &self.nodes[t] {
                Node::Inner {
                    len,
                    counts,
                    children,
                    ..
                } => {
                    let mut next = None;
                    for i in 0..*len {
                        if k < counts[i] {
                            next = Some(children[i]);
                            break;
                        }
                        k -= counts[i];
                    }
                    t = next?;
                }
                Node::Leaf { len, ranges } => {
                    for &range in &ranges[..*len] {
                        let size = own(range);
                        if k < size {
                            return Some(range.0 + k);
                        }
                        k -= size;
                    }
                    return None;
                }
            }
        }
    }

    /// Index of the child of an inner node that `key` leads to.
    fn child_for(keys: &[u128], key: u128) -> usize {
        keys.partition_point(|&k| k <= key).saturating_sub(1)
    }

    /// The range with the greatest start `<= p`, as (start, end).
    fn floor_in(&self, t: usize, p: u128) -> Option<(u128, u128)> {
        match &self.nodes[t] {
            Node::Leaf { len, ranges } => {
                let i = ranges[..*len].partition_point(|r| r.0 <= p);
                i.checked_sub(1).map(|i| ranges[i])
            }
            Node::Inner {
                len,
                keys,
                children,
                ..
            } => {
                let i = Self::child_for(&keys[..*len], p);
                // A separator is only a lower bound: the floor may be in an earlier child.
                (0..=i).rev().find_map(|j| self.floor_in(children[j], p))
            }
        }
    }

    fn floor_range(&self, p: u128) -> Option<(u128, u128)> {
        self.floor_in(self.root, p)
    }

    /// The range with the smallest start `>= p`.
    fn ceiling_in(&self, t: usize, p: u128) -> Option<(u128, u128)> {
        match &self.nodes[t] {
            Node::Leaf { len, ranges } => {
                let i = ranges[..*len].partition_point(|r| r.0 < p);
                (i < *len).then(|| ranges[i])
            }
            Node::Inner {
                len,
                keys,
                children,
                ..
            } => {
                let i = Self::child_for(&keys[..*len], p);
                (i..*len).find_map(|j| self.ceiling_in(children[j], p))
            }
        }
    }

    /// The smallest point `>= x`.
    pub(crate) fn first_at_or_after(&self, x: u128) -> Option<u128> {
        match self.floor_range(x) {
            Some((_, end)) if end >= x => Some(x),
            _ => self.ceiling_in(self.root, x).map(|r| r.0),
        }
    }

    /// Applies `op` below node `t`; fixes counts, splits and empties on the way back up.
    fn apply_in(&mut self, t: usize, op: Op) -> Up {
        let (i, child) = match &mut self.nodes[t] {
            Node::Leaf { len, ranges } => {
                let right = Self::apply_leaf(len, ranges, op);
                let empty = *len == 0;
                return match right {
                    None => Up { split: None, empty },
                    Some((r_len, r_ranges)) => {
                        let separator = r_ranges[0].0;
                        let sibling = self.alloc(Node::Leaf {
                            len: r_len,
                            ranges: r_ranges,
                        });
                        Up {
                            split: Some((separator, sibling)),
                            empty: false,
                        }
                    }
                };
            }
            Node::Inner {
                len,
                keys,
                children,
                ..
            } => {
                let i = Self::child_for(&keys[..*len], op.key());
                keys[i] = keys[i].min(op.lowest());
                (i, children[i])
            }
        };
        let up = self.apply_in(child, op);
        let child_total = self.nodes[child].total();
        let split = up
            .split
            .map(|(sep, right)| (sep, self.nodes[right].total(), right));
        if up.empty {
            self.free(child);
        }
        let Node::Inner {
            len,
            keys,
            counts,
            children,
        } = &mut self.nodes[t]
        else {
            return Up {
                split: None,
                empty: false,
            };
        };
        if up.empty {
            keys.copy_within(i + 1..*len, i);
            counts.copy_within(i + 1..*len, i);
            children.copy_within(i + 1..*len, i);
            *len -= 1;
            return Up {
                split: None,
                empty: *len == 0,
            };
        }
        counts[i] = child_total;
        // A range whose start moved up (its first point was taken) may now reach past a loose
        // separator; the next child's keys all lie above its end, so `start + 1` is a valid
        // separator again.
        if let Op::Modify { to, .. } = op
            && i + 1 < *len
            && keys[i + 1] <= to.0
        {
            keys[i + 1] = to.0 + 1;
        }
        match split {
            None => Up {
                split: None,
                empty: false,
            },
            Some(entry) => self.attach(t, i, entry),
        }
    }

    /// Inserts the new right sibling `entry` of child `i` into inner node `t`, splitting `t` if
    /// it is full.
    fn attach(&mut self, t: usize, i: usize, entry: (u128, u128, usize)) -> Up {
        let Node::Inner {
            len,
            keys,
            counts,
            children,
        } = &mut self.nodes[t]
        else {
            return Up {
                split: None,
                empty: false,
            };
        };
        if *len < CAP {
            Self::insert_child(len, keys, counts, children, i + 1, entry);
            return Up {
                split: None,
                empty: false,
            };
        }
        // Full: move the upper half to a new sibling, then insert where the child belongs.
        let half = CAP / 2;
        let mut r_len = CAP - half;
        let mut r_keys = [0; CAP];
        let mut r_counts = [0; CAP];
        let mut r_children = [NIL; CAP];
        r_keys[..r_len].copy_from_slice(&keys[half..]);
        r_counts[..r_len].copy_from_slice(&counts[half..]);
        r_children[..r_len].copy_from_slice(&children[half..]);
        *len = half;
        if i < half {
            Self::insert_child(len, keys, counts, children, i + 1, entry);
        } else {
            let at = i + 1 - half;
            Self::insert_child(
                &mut r_len,
                &mut r_keys,
                &mut r_counts,
                &mut r_children,
                at,
                entry,
            );
        }
        let separator = r_keys[0];
        let sibling = self.alloc(Node::Inner {
            len: r_len,
            keys: r_keys,
            counts: r_counts,
            children: r_children,
        });
        Up {
            split: Some((separator, sibling)),
            empty: false,
        }
    }

    fn insert_child(
        len: &mut usize,
        keys: &mut [u128; CAP],
        counts: &mut [u128; CAP],
        children: &mut [usize; CAP],
        at: usize,
        (key, count, child): (u128, u128, usize),
    ) {
        keys.copy_within(at..*len, at + 1);
        counts.copy_within(at..*len, at + 1);
        children.copy_within(at..*len, at + 1);
        keys[at] = key;
        counts[at] = count;
        children[at] = child;
        *len += 1;
    }

    /// Applies `op` to a leaf; returns the upper half if the leaf had to split.
    fn apply_leaf(
        len: &mut usize,
        ranges: &mut [(u128, u128); CAP],
        op: Op,
    ) -> Option<(usize, [(u128, u128); CAP])> {
        match op {
            Op::Modify { start, to } => {
                let i = ranges[..*len].partition_point(|r| r.0 < start);
                if i < *len && ranges[i].0 == start {
                    ranges[i] = to;
                }
                None
            }
            Op::Delete { start } => {
                let i = ranges[..*len].partition_point(|r| r.0 < start);
                if i < *len && ranges[i].0 == start {
                    ranges.copy_within(i + 1..*len, i);
                    *len -= 1;
                }
                None
            }
            Op::Insert { range } => {
                let at = ranges[..*len].partition_point(|r| r.0 < range.0);
                if *len < CAP {
                    ranges.copy_within(at..*len, at + 1);
                    ranges[at] = range;
                    *len += 1;
                    return None;
                }
                let half = CAP / 2;
                let mut r_len = CAP - half;
                let mut right = [(0, 0); CAP];
                right[..r_len].copy_from_slice(&ranges[half..]);
                *len = half;
                if at <= half {
                    ranges.copy_within(at..*len, at + 1);
                    ranges[at] = range;
                    *len += 1;
                } else {
                    let at = at - half;
                    right.copy_within(at..r_len, at + 1);
                    right[at] = range;
                    r_len += 1;
                }
                Some((r_len, right))
            }
        }
    }

    fn apply(&mut self, op: Op) {
        let up = self.apply_in(self.root, op);
        self.finish(up);
    }

    /// Fixes the root after a change: an emptied root becomes an empty leaf, a split root gets a
    /// new parent, and a root with a single child gives way to it.
    fn finish(&mut self, up: Up) {
        if up.empty {
            self.nodes[self.root] = Node::empty_leaf();
            return;
        }
        if let Some((separator, right)) = up.split {
            let left = self.root;
            let mut keys = [0; CAP];
            let mut counts = [0; CAP];
            let mut children = [NIL; CAP];
            keys[1] = separator;
            counts[0] = self.nodes[left].total();
            counts[1] = self.nodes[right].total();
            children[0] = left;
            children[1] = right;
            self.root = self.alloc(Node::Inner {
                len: 2,
                keys,
                counts,
                children,
            });
        }
        while let Node::Inner {
            len: 1, children, ..
        } = &self.nodes[self.root]
        {
            let (old, child) = (self.root, children[0]);
            self.root = child;
            self.free(old);
        }
    }

    /// Removes the point `target` designates in the subtree `t` and returns it with what the
    /// parent must fix up, and the change in the number of ranges. One descent: counts along
    /// the path drop by one instead of being summed again.
    fn take_in(&mut self, t: usize, target: Take) -> Option<(u128, Up, isize)> {
        let (i, child, target) = match &mut self.nodes[t] {
            Node::Leaf { len, ranges } => {
                let (at, p) = match target {
                    Take::Rank(mut k) => {
                        let mut found = None;
                        for (at, &range) in ranges[..*len].iter().enumerate() {
                            let size = own(range);
                            if k < size {
                                found = Some((at, range.0 + k));
                                break;
                            }
                            k -= size;
                        }
                        found?
                    }
                    Take::At { start, p } => {
                        let at = ranges[..*len].partition_point(|r| r.0 < start);
                        if at >= *len || ranges[at].0 != start || ranges[at].1 < p || p < start {
                            return None;
                        }
                        (at, p)
                    }
                };
                let (start, end) = ranges[at];
                let (right, ranges_delta) = if start == end {
                    ranges.copy_within(at + 1..*len, at);
                    *len -= 1;
                    (None, -1)
                } else if p == start {
                    ranges[at].0 = start + 1;
                    (None, 0)
                } else if p == end {
                    ranges[at].1 = end - 1;
                    (None, 0)
                } else {
                    ranges[at].1 = p - 1;
                    let right = Self::apply_leaf(
                        len,
                        ranges,
                        Op::Insert {
                            range: (p + 1, end),
                        },
                    );
                    (right, 1)
                };
                let empty = *len == 0;
                let up = match right {
                    None => Up { split: None, empty },
                    Some((r_len, r_ranges)) => {
                        let separator = r_ranges[0].0;
                        let sibling = self.alloc(Node::Leaf {
                            len: r_len,
                            ranges: r_ranges,
                        });
                        Up {
                            split: Some((separator, sibling)),
                            empty: false,
                        }
                    }
                };
                return Some((p, up, ranges_delta));
            }
            Node::Inner {
                len,
                keys,
                counts,
                children,
            } => match target {
                Take::Rank(mut k) => {
                    let mut next = None;
                    for i in 0..*len {
                        if k < counts[i] {
                            next = Some((i, children[i], Take::Rank(k)));
                            break;
                        }
                        k -= counts[i];
                    }
                    next?
                }
                Take::At { start, .. } => {
                    let i = Self::child_for(&keys[..*len], start);
                    (i, children[i], target)
                }
            },
        };
        let (p, up, ranges_delta) = self.take_in(child, target)?;
        let split = up
            .split
            .map(|(sep, right)| (sep, self.nodes[right].total(), right));
        // A saturated count (a subtree of 2^128 points or more) is not exact: recount it.
        let saturated =
            matches!(&self.nodes[t], Node::Inner { counts, .. } if counts[i] == u128::MAX);
        let child_total = (split.is_some() || saturated).then(|| self.nodes[child].total());
        if up.empty {
            self.free(child);
        }
        let Node::Inner {
            len,
            keys,
            counts,
            children,
        } = &mut self.nodes[t]
        else {
            return None;
        };
        if up.empty {
            keys.copy_within(i + 1..*len, i);
            counts.copy_within(i + 1..*len, i);
            children.copy_within(i + 1..*len, i);
            *len -= 1;
            let up = Up {
                split: None,
                empty: *len == 0,
            };
            return Some((p, up, ranges_delta));
        }
        counts[i] = child_total.unwrap_or(counts[i] - 1);
        // Child `i` may now hold a range starting at `p + 1`, above a loose separator; the next
        // child's starts all lie above the end of `p`'s range, so at least at `p + 2`.
        if i + 1 < *len {
            keys[i + 1] = keys[i + 1].max(p.saturating_add(2));
        }
        let up = match split {
            None => Up {
                split: None,
                empty: false,
            },
            Some(entry) => self.attach(t, i, entry),
        };
        Some((p, up, ranges_delta))
    }

    /// Removes the point `target` designates; the root is fixed up as after [`Self::apply`].
    fn take(&mut self, target: Take) -> Option<u128> {
        let (p, up, ranges_delta) = self.take_in(self.root, target)?;
        self.finish(up);
        self.range_count = self.range_count.saturating_add_signed(ranges_delta);
        self.len = self.len.saturating_sub(1);
        Some(p)
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
        let Some((start, _)) = self.floor_range(p).filter(|&(_, end)| end >= p) else {
            return false;
        };
        self.take(Take::At { start, p }).is_some()
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
        let above = p
            .checked_add(1)
            .and_then(|next| self.ceiling_in(self.root, next));
        let joins_above = above.filter(|&(start, _)| p.checked_add(1) == Some(start));
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
                    to: (below_start, p),
                });
            }
            (None, Some((above_start, above_end))) => {
                self.apply(Op::Modify {
                    start: above_start,
                    to: (p, above_end),
                });
            }
            (None, None) => {
                self.apply(Op::Insert { range: (p, p) });
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
        while let Node::Inner { children, .. } = &self.nodes[t] {
            t = children[0];
            height += 1;
        }
        height
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
    fn against_model(span: u64, steps: usize, seed: u64) {
        let mut state = seed;
        let mut model: BTreeSet<u128> = (10..=u128::from(span) - 20).collect();
        let mut tree = RangeTree::from_sorted([(10, 100), (101, u128::from(span) - 20)]);
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
        against_model(320, 20_000, 42);
    }

    #[test]
    fn matches_a_point_set_through_three_levels() {
        // Up to ~2000 ranges: three levels of 32-entry nodes, with splits and empty-node removal.
        against_model(8_000, 25_000, 7);
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
        assert_eq!(tree.take_nth(5), Some(5));
        assert_eq!(tree.take_nth(u128::MAX - 3), Some(u128::MAX - 2));
        assert!(!tree.contains(5) && !tree.contains(u128::MAX - 2));
        assert_eq!(
            tree.ranges(),
            vec![(0, 4), (6, u128::MAX - 3), (u128::MAX - 1, u128::MAX)]
        );
    }

    #[test]
    fn stays_balanced_under_random_splits() {
        let mut tree = RangeTree::from_sorted([(0, 1 << 24)]);
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
    fn empty_tree_answers_none() {
        let tree = RangeTree::from_sorted([]);
        assert_eq!(tree.len(), 0);
        assert_eq!(tree.nth(0), None);
        assert_eq!(tree.first_at_or_after(0), None);
        assert!(tree.ranges().is_empty());
    }
}
