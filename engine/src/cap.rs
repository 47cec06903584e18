//! Bounds on keyed state that publishers grow (regions, workers): which
//! records of a batch name a key that is not kept yet and finds no room
//! under the cap, and a latch that says when the cap is first reached, so
//! the shell warns once per crossing rather than once per record.

use std::collections::HashSet;

/// Positions in `keys` (a batch, in order) of the records refused by a
/// cap of `max` keys: a key not `known` is admitted while `count` (the
/// keys kept now) plus the new keys admitted before it stays under `max`;
/// every record of a refused key is refused, every record of a known or
/// admitted key kept.
pub fn over_cap<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    known: impl Fn(&str) -> bool,
    count: usize,
    max: usize,
) -> Vec<usize> {
    let mut admitted: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for (i, k) in keys.into_iter().enumerate() {
        if known(k) || admitted.contains(k) {
            continue;
        }
        if count + admitted.len() < max {
            admitted.insert(k);
        } else {
            out.push(i);
        }
    }
    out
}

/// Remembers whether a cap is reached, to report each crossing once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapLatch {
    full: bool,
}

impl CapLatch {
    /// Records whether the cap refused something now; true when it did for
    /// the first time since the latch was made or last had [`room`](Self::room)
    /// (a new crossing).
    pub fn crossed(&mut self, refused: bool) -> bool {
        let first = refused && !self.full;
        self.full |= refused;
        first
    }

    /// Records that there is room again (keys were forgotten), so the next
    /// refusal is a new crossing.
    pub fn room(&mut self) {
        self.full = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_admitted_until_the_cap() {
        let known = |k: &str| k == "a";
        // a is kept; b and d take the two free places; c and e are refused.
        let keys = ["a", "b", "d", "c", "b", "a", "d", "e"];
        assert_eq!(over_cap(keys, known, 1, 3), vec![3, 7]);
        assert_eq!(over_cap(keys, known, 1, 4), vec![7]);
        assert_eq!(over_cap(keys, known, 5, 3), vec![1, 2, 3, 4, 6, 7]);
        assert!(over_cap(["a"], known, 9, 1).is_empty());
    }

    #[test]
    fn the_latch_fires_once_per_crossing() {
        let mut l = CapLatch::default();
        assert!(!l.crossed(false));
        assert!(l.crossed(true));
        assert!(!l.crossed(true));
        assert!(!l.crossed(false));
        assert!(!l.crossed(true));
        // A batch that refuses nothing does not reset the latch: the cap is
        // still full, only no new key came.
        l.room();
        assert!(l.crossed(true));
    }
}
