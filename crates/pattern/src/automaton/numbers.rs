//! Numeric ranges of one field: which ranges contain a number, in `O(log² n + answers)`.
//!
//! Owns: [`RangeIndex`]. Every range becomes a closed interval of comparables. Comparables are integers
//! (consecutive doubles are consecutive comparables), so exclusive bounds are inclusive ones:
//! `> b` is `≥ b+1` and `< b` is `≤ b-1`.
//! Intervals live in static trees, kept as a binary counter of trees of doubling size (Bentley–Saxe),
//! so adding a rule costs amortised `O(log² n)`. A tree is a segment tree (each interval stored at
//! `O(log n)` nodes, a query walks one leaf-to-root path), or, when its intervals overlap little, a flat
//! table of each slot's covering entries (a query reads one slice). No set of ranges, however nested,
//! makes a query scan them all.
//! Promise: reports exactly the entries whose `Range::contains` holds (each once per tree it is in; an
//! entry is in exactly one tree).

use crate::ast::Range;
use crate::number::Comparable;

#[derive(Debug, Clone, Default)]
pub struct RangeIndex {
    trees: Vec<Tree>,
}

/// A closed interval over doubled comparables (in i64), and its entry.
type Interval = (i64, i64, u32);

#[derive(Debug, Clone)]
struct Tree {
    intervals: Vec<Interval>,
    /// Sorted distinct slot starts; slot i is `[xs[i], xs[i+1])`.
    xs: Vec<i64>,
    size: usize,
    /// CSR: entries stored at segment-tree node p are `data[offsets[p]..offsets[p+1]]`; or, when
    /// `flat`, entries covering slot i are `data[offsets[i]..offsets[i+1]]` (one slice per query).
    offsets: Vec<u32>,
    data: Vec<u32>,
    flat: bool,
}

impl Tree {
    fn build(intervals: Vec<Interval>) -> Tree {
        let mut xs: Vec<i64> = Vec::with_capacity(intervals.len() * 2);
        for &(a, b, _) in &intervals {
            xs.push(a);
            if b < i64::MAX {
                xs.push(b + 1);
            }
        }
        xs.sort_unstable();
        xs.dedup();
        let size = xs.len().max(1).next_power_of_two();
        let slot = |x: i64| xs.partition_point(|&y| y < x);
        let end = |b: i64| {
            if b == i64::MAX { xs.len() } else { slot(b + 1) }
        };
        // When ranges overlap little (the usual case), store every slot's covering entries outright.
        let covered: usize = intervals.iter().map(|&(a, b, _)| end(b) - slot(a)).sum();
        if covered <= 8 * intervals.len() + 1024 {
            let mut offsets = vec![0u32; xs.len() + 1];
            for &(a, b, _) in &intervals {
                for s in slot(a)..end(b) {
                    offsets[s + 1] += 1;
                }
            }
            for i in 1..offsets.len() {
                offsets[i] += offsets[i - 1];
            }
            let mut fill = offsets.clone();
            let mut data = vec![0u32; covered];
            for &(a, b, e) in &intervals {
                for s in slot(a)..end(b) {
                    data[fill[s] as usize] = e;
                    fill[s] += 1;
                }
            }
            return Tree {
                intervals,
                xs,
                size: 0,
                offsets,
                data,
                flat: true,
            };
        }
        // Otherwise a segment tree. Two passes: count, then fill.
        let mut nodes: Vec<(u32, u32)> = Vec::new(); // (node, entry)
        for &(a, b, e) in &intervals {
            let mut l = slot(a) + size;
            let mut r = end(b) + size;
            while l < r {
                if l & 1 == 1 {
                    nodes.push((l as u32, e));
                    l += 1;
                }
                if r & 1 == 1 {
                    r -= 1;
                    nodes.push((r as u32, e));
                }
                l >>= 1;
                r >>= 1;
            }
        }
        nodes.sort_unstable();
        let mut offsets = vec![0u32; 2 * size + 1];
        for &(n, _) in &nodes {
            offsets[n as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let data = nodes.into_iter().map(|(_, e)| e).collect();
        Tree {
            intervals,
            xs,
            size,
            offsets,
            data,
            flat: false,
        }
    }

    fn each(&self, q: i64, f: &mut impl FnMut(u32)) {
        let s = self.xs.partition_point(|&y| y <= q);
        if s == 0 {
            return;
        }
        if self.flat {
            let (a, b) = (self.offsets[s - 1] as usize, self.offsets[s] as usize);
            for &e in &self.data[a..b] {
                f(e);
            }
            return;
        }
        let mut p = s - 1 + self.size;
        while p >= 1 {
            let (a, b) = (self.offsets[p] as usize, self.offsets[p + 1] as usize);
            for &e in &self.data[a..b] {
                f(e);
            }
            p >>= 1;
        }
    }
}

impl RangeIndex {
    pub fn insert(&mut self, r: &Range, entry: u32) {
        let lo = match r.low {
            None => i64::MIN,
            Some((b, true)) => b,
            Some((b, false)) => b + 1,
        };
        let hi = match r.high {
            None => i64::MAX,
            Some((b, true)) => b,
            Some((b, false)) => b - 1,
        };
        if lo > hi {
            return; // empty range: contains nothing
        }
        let mut merged = vec![(lo, hi, entry)];
        while let Some(last) = self.trees.last() {
            if last.intervals.len() > merged.len() {
                break;
            }
            let t = self.trees.pop().expect("checked");
            merged.extend(t.intervals);
        }
        self.trees.push(Tree::build(merged));
    }

    /// Calls `f` with every entry whose range contains `v`.
    #[inline]
    pub fn each(&self, v: Comparable, mut f: impl FnMut(u32)) {
        for t in &self.trees {
            t.each(v, &mut f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(low: Option<(i64, bool)>, high: Option<(i64, bool)>) -> Range {
        Range {
            low,
            high,
            text: String::new(),
        }
    }

    #[test]
    fn agrees_with_contains_on_nested_and_open_ranges() {
        let mut ranges = Vec::new();
        for i in -5..5i64 {
            ranges.push(range(Some((i, i % 2 == 0)), None));
            ranges.push(range(None, Some((i, i % 2 != 0))));
            ranges.push(range(Some((i, true)), Some((i + 3, false))));
            ranges.push(range(Some((i, false)), Some((i, true)))); // empty
            ranges.push(range(Some((i, true)), Some((i, true)))); // a point
        }
        ranges.push(range(None, None));
        let idx = index_of(&ranges);
        agrees(&idx, &ranges, -9..9);
    }

    fn index_of(ranges: &[Range]) -> RangeIndex {
        let mut idx = RangeIndex::default();
        for (e, r) in ranges.iter().enumerate() {
            idx.insert(r, e as u32);
        }
        idx
    }

    /// The index finds exactly the ranges that contain each value.
    fn agrees(idx: &RangeIndex, ranges: &[Range], values: impl IntoIterator<Item = i64>) {
        for v in values {
            let mut got = Vec::new();
            idx.each(v, |e| got.push(e));
            got.sort_unstable();
            let want: Vec<u32> = (0..ranges.len() as u32)
                .filter(|&e| ranges[e as usize].contains(v))
                .collect();
            assert_eq!(got, want, "at {v}");
        }
    }

    #[test]
    fn deeply_nested_ranges_use_the_segment_tree_and_agree() {
        let ranges: Vec<Range> = (0..3000i64)
            .map(|i| range(Some((i, i % 3 == 0)), Some((6000 - i, i % 2 == 0))))
            .collect();
        let idx = index_of(&ranges);
        assert!(idx.trees.iter().any(|t| !t.flat));
        agrees(
            &idx,
            &ranges,
            [-1, 0, 1, 17, 2999, 3000, 3001, 5999, 6000, 6001],
        );
    }

    #[test]
    fn extreme_bounds_do_not_overflow() {
        use crate::number::comparable;
        let lo = comparable("-5e9").unwrap();
        let hi = comparable("5e9").unwrap();
        let mut idx = RangeIndex::default();
        idx.insert(&range(Some((lo, false)), Some((hi, false))), 0);
        idx.insert(&range(Some((hi, true)), None), 1);
        let at = |t: &str| {
            let mut v = Vec::new();
            idx.each(comparable(t).unwrap(), |e| v.push(e));
            v
        };
        assert_eq!(at("-5e9"), Vec::<u32>::new());
        assert_eq!(at("0"), vec![0]);
        assert_eq!(at("5e9"), vec![1]);
    }
}
