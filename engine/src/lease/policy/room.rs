//! Room on a full host: when enough holders are likely gone for a request
//! to fit ([`capacity_retry`]), which is the retry time of a
//! `capacity_exceeded` denial.

use super::view::Holder;

/// Seconds until enough of the `holders` (together `used_units`) are likely
/// gone for `units` more to fit under `capacity`; `None` when even an empty
/// host would not fit them.
pub fn capacity_retry(
    mut holders: Vec<Holder>,
    used_units: u32,
    units: u32,
    capacity: u32,
    now: f64,
) -> Option<f64> {
    if units > capacity {
        return None;
    }
    let need = u64::from(used_units) + u64::from(units);
    if need <= u64::from(capacity) {
        return Some(0.0);
    }
    let mut to_free = need - u64::from(capacity);
    holders.sort_by(|a, b| a.free_at.total_cmp(&b.free_at));
    for h in holders {
        to_free = to_free.saturating_sub(u64::from(h.units));
        if to_free == 0 {
            return Some((h.free_at - now).max(0.0));
        }
    }
    None
}
