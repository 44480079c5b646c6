//! A map from disjoint half-open address ranges to values.

use std::cell::Cell;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct RangeMap<V: Copy> {
    /// start -> (end, value); ranges never overlap, adjacent equal values merge.
    map: BTreeMap<u64, (u64, V)>,
    /// The entry the last lookup found. A system call's pointers mostly
    /// fall in the mapping the previous one's did (the stack, the heap):
    /// a hit costs two comparisons instead of a tree search. Cleared by
    /// every change.
    last: Cell<Option<(u64, u64, V)>>,
}

impl<V: Copy + PartialEq> RangeMap<V> {
    pub fn new() -> Self {
        RangeMap {
            map: BTreeMap::new(),
            last: Cell::new(None),
        }
    }

    /// The entry that holds all of [start, end) (end > start), if one does.
    pub fn covering(&self, start: u64, end: u64) -> Option<(u64, u64, V)> {
        self.get(start).filter(|&(_, e, _)| end <= e)
    }

    /// The pieces of [start, end) that are in the map, clipped to it, in
    /// order: walked without allocating, for the checks of every call.
    pub fn pieces(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, u64, V)> + '_ {
        // The range starting at or before `start` may reach into it.
        let first = self
            .map
            .range(..=start)
            .next_back()
            .map_or(start, |(&s, _)| s);
        self.map
            .range(first..end)
            .filter(move |&(_, &(e, _))| e > start)
            .map(move |(&s, &(e, v))| (s.max(start), e.min(end), v))
    }

    /// The pieces of [start, end) that are in the map, clipped to it.
    pub fn overlapping(&self, start: u64, end: u64) -> Vec<(u64, u64, V)> {
        self.pieces(start, end).collect()
    }

    /// The pieces of [start, end) that are not in the map.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = start;
        for (s, e, _) in self.pieces(start, end) {
            if s > at {
                out.push((at, s));
            }
            at = e;
        }
        if at < end {
            out.push((at, end));
        }
        out
    }

    /// The value at `addr`.
    pub fn get(&self, addr: u64) -> Option<(u64, u64, V)> {
        if let Some(hit) = self.last.get().filter(|&(s, e, _)| (s..e).contains(&addr)) {
            return Some(hit);
        }
        let (&s, &(e, v)) = self.map.range(..=addr).next_back()?;
        let found = (addr < e).then_some((s, e, v));
        if found.is_some() {
            self.last.set(found);
        }
        found
    }

    /// Removes [start, end), splitting ranges that straddle its ends.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.last.set(None);
        for (s, e, v) in self.overlapping(start, end) {
            // `s` is clipped; find the original entry containing it.
            let (&os, &(oe, _)) = self.map.range(..=s).next_back().expect("overlapping entry");
            self.map.remove(&os);
            if os < s {
                self.map.insert(os, (s, v));
            }
            if oe > e {
                self.map.insert(e, (oe, v));
            }
        }
    }

    /// Sets [start, end) to `value`, replacing what was there.
    pub fn insert(&mut self, start: u64, end: u64, value: V) {
        if start >= end {
            return;
        }
        self.remove(start, end);
        let (mut s, mut e) = (start, end);
        if let Some((ps, pe, pv)) = self.get(start.wrapping_sub(1)).filter(|_| start > 0)
            && pe == start
            && pv == value
        {
            self.map.remove(&ps);
            s = ps;
        }
        if let Some(&(ne, nv)) = self.map.get(&end)
            && nv == value
        {
            self.map.remove(&end);
            e = ne;
        }
        self.map.insert(s, (e, value));
        // `get` above may have remembered a neighbour now merged.
        self.last.set(None);
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, V)> + '_ {
        self.map.iter().map(|(&s, &(e, v))| (s, e, v))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(m: &RangeMap<u8>) -> Vec<(u64, u64, u8)> {
        m.iter().collect()
    }

    #[test]
    fn insert_splits_and_merges() {
        let mut m = RangeMap::new();
        m.insert(0x1000, 0x5000, 1);
        m.insert(0x2000, 0x3000, 2);
        assert_eq!(
            all(&m),
            vec![
                (0x1000, 0x2000, 1),
                (0x2000, 0x3000, 2),
                (0x3000, 0x5000, 1)
            ]
        );
        m.insert(0x2000, 0x3000, 1);
        assert_eq!(all(&m), vec![(0x1000, 0x5000, 1)]);
    }

    #[test]
    fn remove_and_gaps() {
        let mut m = RangeMap::new();
        m.insert(0x1000, 0x5000, 1);
        m.remove(0x2000, 0x3000);
        assert_eq!(all(&m), vec![(0x1000, 0x2000, 1), (0x3000, 0x5000, 1)]);
        assert_eq!(
            m.gaps(0, 0x6000),
            vec![(0, 0x1000), (0x2000, 0x3000), (0x5000, 0x6000)]
        );
        assert_eq!(m.get(0x1fff), Some((0x1000, 0x2000, 1)));
        assert_eq!(m.get(0x2000), None);
        m.remove(0, 0x10000);
        assert!(m.is_empty());
    }

    #[test]
    fn lookups_follow_every_change() {
        let mut m = RangeMap::new();
        m.insert(0x1000, 0x3000, 1);
        assert_eq!(m.get(0x1800), Some((0x1000, 0x3000, 1)));
        assert_eq!(m.covering(0x1000, 0x3000), Some((0x1000, 0x3000, 1)));
        assert_eq!(m.covering(0x1000, 0x3001), None);
        m.insert(0x3000, 0x4000, 1);
        assert_eq!(m.get(0x1800), Some((0x1000, 0x4000, 1)), "merged");
        m.remove(0x2000, 0x3000);
        assert_eq!(m.get(0x1800), Some((0x1000, 0x2000, 1)), "split");
        assert_eq!(m.get(0x2800), None);
        m.insert(0x1000, 0x2000, 2);
        assert_eq!(m.covering(0x1800, 0x1900), Some((0x1000, 0x2000, 2)));
        m.insert(0x2000, 0x3000, 2);
        assert_eq!(m.get(0x1000), Some((0x1000, 0x3000, 2)), "merged into");
        assert_eq!(m.get(0x3000), Some((0x3000, 0x4000, 1)));
    }

    #[test]
    fn overlapping_clips() {
        let mut m = RangeMap::new();
        m.insert(0x1000, 0x3000, 1);
        m.insert(0x4000, 0x6000, 2);
        assert_eq!(
            m.overlapping(0x2000, 0x5000),
            vec![(0x2000, 0x3000, 1), (0x4000, 0x5000, 2)]
        );
        let pieces: Vec<_> = m.pieces(0x2fff, 0x4001).collect();
        assert_eq!(pieces, vec![(0x2fff, 0x3000, 1), (0x4000, 0x4001, 2)]);
        assert_eq!(m.pieces(0x3000, 0x4000).next(), None, "the gap between");
        assert_eq!(m.pieces(0, 0x1000).next(), None, "before the first");
    }
}
