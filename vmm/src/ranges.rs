//! A map from disjoint half-open address ranges to values.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct RangeMap<V> {
    /// start -> (end, value); ranges never overlap, adjacent equal values merge.
    map: BTreeMap<u64, (u64, V)>,
}

impl<V: Copy + PartialEq> RangeMap<V> {
    pub fn new() -> Self {
        RangeMap {
            map: BTreeMap::new(),
        }
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
        let (&s, &(e, v)) = self.map.range(..=addr).next_back()?;
        (addr < e).then_some((s, e, v))
    }

    /// Removes [start, end), splitting ranges that straddle its ends.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
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
