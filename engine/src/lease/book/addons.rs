//! Per-addon state of the book: the rate-limit bucket and decision summary
//! of each addon (bounded, least recently seen forgotten first), and the
//! counts admission reads ([`crate::lease::policy::AddonLoad`],
//! [`crate::lease::policy::Loads`]).

use lull_proto::msg::lease::AddonDecisions;

use super::{AddonEntry, Book, Lease};
use crate::lease::bucket::TokenBucket;
use crate::lease::policy::{AddonLoad, Holder, Loads};

impl Book {
    pub(super) fn touch_addon(&mut self, addon_id: &str, now: f64) -> &mut AddonEntry {
        if !self.addons.contains_key(addon_id) {
            if self.addons.len() >= self.cfg.addons_max {
                // Forget the least recently seen addon.
                if let Some(old) = self
                    .addons
                    .iter()
                    .min_by(|a, b| a.1.last_seen.total_cmp(&b.1.last_seen))
                    .map(|(k, _)| k.clone())
                {
                    self.addons.remove(&old);
                }
            }
            let (rate, burst) = self.cfg.addon_rate(addon_id);
            self.addons.insert(
                addon_id.to_string(),
                AddonEntry {
                    bucket: TokenBucket::new(rate, burst, now),
                    decisions: AddonDecisions {
                        addon_id: addon_id.to_string(),
                        granted: 0,
                        denied: 0,
                        last_reason: None,
                        cooldown_until: None,
                    },
                    last_seen: now,
                },
            );
        }
        let e = self
            .addons
            .get_mut(addon_id)
            .expect("the addon entry was inserted above");
        e.last_seen = e.last_seen.max(now);
        e
    }

    pub(super) fn count_denial(&mut self, addon_id: &str, reason: &str, retry: f64, now: f64) {
        let e = self.touch_addon(addon_id, now);
        e.decisions.denied += 1;
        e.decisions.last_reason = Some(reason.to_string());
        e.decisions.cooldown_until = Some(now + retry);
    }

    pub(super) fn addon_load(&self, addon_id: &str, rate_wait_sec: Option<f64>) -> AddonLoad {
        let addon_active = self.addon_active.get(addon_id).copied().unwrap_or(0);
        let global_active = self.leases.len() as u32;
        let soonest = |only: Option<&str>| {
            self.leases
                .values()
                .filter(|l| only.is_none_or(|a| l.info.addon_id == a))
                .map(Lease::free_at)
                .min_by(|a, b| a.total_cmp(b))
        };
        // The soonest expiries only matter once a cap is reached.
        AddonLoad {
            global_active,
            global_next_free_at: (global_active >= self.cfg.max_global)
                .then(|| soonest(None))
                .flatten(),
            addon_active,
            addon_next_free_at: (addon_active >= self.cfg.addon_max(addon_id))
                .then(|| soonest(Some(addon_id)))
                .flatten(),
            rate_wait_sec,
        }
    }
}

/// Admission reads the book's per-host counters directly: the used units
/// are one map lookup, and the holders are gathered only for a full host.
impl Loads for Book {
    fn used_units(&self, host_id: &str) -> u32 {
        Book::used_units(self, host_id)
    }

    fn holders(&self, host_id: &str) -> Vec<Holder> {
        self.by_host
            .get(host_id)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.leases.get(id))
                    .map(|l| Holder {
                        units: l.info.cost_units,
                        free_at: l.free_at(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
