//! Keyset paging, the rule every list endpoint pages by: a page holds the
//! items whose key comes after the cursor key, at most `limit` of them, in
//! key order, and says whether more remain. The caller turns the last
//! item's key into the reply's `next_cursor`.

/// One page of a keyed collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in key order.
    pub items: Vec<T>,
    /// Items after the last one remain (the reply carries a cursor).
    pub more: bool,
}

/// The items of `items` whose `key` is greater than `after` (all of them
/// when `after` is `None`), the `limit` smallest (at least one), sorted by
/// key. Costs one pass and a selection, then a sort of the page only, so a
/// page of a large collection stays cheap. Keys should be unique; items
/// with equal keys may straddle a page boundary and be skipped.
pub fn after<T, K: Ord>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
    after: Option<&K>,
    limit: usize,
) -> Page<T> {
    let limit = limit.max(1);
    let mut v: Vec<T> = items
        .into_iter()
        .filter(|t| after.is_none_or(|a| key(t) > *a))
        .collect();
    let more = v.len() > limit;
    if more {
        v.select_nth_unstable_by_key(limit, &key);
        v.truncate(limit);
    }
    v.sort_unstable_by_key(&key);
    Page { items: v, more }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;

    #[test]
    fn pages_join_to_the_whole_sorted_collection() {
        let all: Vec<u32> = (0..103).map(|i| (i * 37) % 103).collect();
        let mut seen: Vec<u32> = Vec::new();
        let mut cursor: Option<u32> = None;
        loop {
            let p = after(all.iter().copied(), |x| *x, cursor.as_ref(), 10);
            assert!(p.items.len() <= 10);
            seen.extend(&p.items);
            if !p.more {
                break;
            }
            cursor = p.items.last().copied();
        }
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
    }

    #[test]
    fn descending_order_by_a_reversed_key() {
        let p = after([1, 5, 3, 4], |x| Reverse(*x), Some(&Reverse(5)), 2);
        assert_eq!(p.items, [4, 3]);
        assert!(p.more);
        let p = after([1, 5, 3, 4], |x| Reverse(*x), Some(&Reverse(3)), 2);
        assert_eq!(
            p,
            Page {
                items: vec![1],
                more: false
            }
        );
    }

    #[test]
    fn a_cursor_past_the_end_and_a_zero_limit() {
        let p = after(["a", "b"], |s| *s, Some(&"z"), 5);
        assert!(p.items.is_empty() && !p.more);
        let p = after(["b", "a"], |s| *s, None, 0);
        assert_eq!(p.items, ["a"]);
        assert!(p.more);
    }
}
