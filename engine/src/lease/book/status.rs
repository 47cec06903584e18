//! Read-outs of the book for `scheduler.status`: active and recent leases,
//! host capacity and use, and the per-addon decision summaries.

use lull_proto::msg::lease::{
    AddonDecisions, HostCapacity, LeaseInfo, LeaseLists, SchedulerStatus,
};

use super::Book;

impl Book {
    /// `scheduler.status`: active and recent leases, hosts with capacity
    /// and use, the per-addon decision summary, the queue length and the
    /// end of the grace period.
    pub fn status(&self, now: f64) -> SchedulerStatus {
        let mut active: Vec<LeaseInfo> = self.leases.values().map(|l| l.info.clone()).collect();
        active.sort_by(|a, b| {
            a.granted_at
                .total_cmp(&b.granted_at)
                .then_with(|| a.lease_id.cmp(&b.lease_id))
        });
        let hosts = self
            .hosts
            .values()
            .map(|h| HostCapacity {
                host_id: h.host_id.clone(),
                state: h.state,
                quiet_score: h.quiet_score,
                capacity_units: h.capacity(&self.cfg),
                used_units: self.used_units(&h.host_id),
            })
            .collect();
        SchedulerStatus {
            leases: LeaseLists {
                active,
                recent: self.recent.iter().cloned().collect(),
            },
            hosts,
            addons: self.addon_decisions(),
            queue_length: self.queue.len() as u64,
            grace_until: self.grace_until.filter(|g| now < *g),
        }
    }

    /// The per-addon decision summary, sorted by addon id.
    pub fn addon_decisions(&self) -> Vec<AddonDecisions> {
        let mut v: Vec<AddonDecisions> =
            self.addons.values().map(|a| a.decisions.clone()).collect();
        v.sort_by(|a, b| a.addon_id.cmp(&b.addon_id));
        v
    }

    /// One addon's decision summary.
    pub fn addon_summary(&self, addon_id: &str) -> Option<&AddonDecisions> {
        self.addons.get(addon_id).map(|a| &a.decisions)
    }
}
