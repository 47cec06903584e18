//! The regions' metrics as the actor keeps them: every region's build
//! counts, success ratio, streak, cost and health (with a log line when a
//! region becomes or stops being outlawed), the durations of newly
//! recorded builds, and the region reports stored. Region names come from
//! publishers, so only the first `max_metric_regions` get series of their
//! own ([`LabelCap`]): later regions' gauges and totals are not exported,
//! and their builds' durations go to `region="other"`.

use std::collections::BTreeSet;

use lull_proto::msg::region::{BuildRecord, RegionState};

use super::metrics as m;
use crate::label_cap::LabelCap;
use lull_engine::region::fatigue::Pardon;
use lull_engine::region::{region_health, RegionAggregate, RegionConfig};

const STATES: [RegionState; 4] = [
    RegionState::Healthy,
    RegionState::Fatigued,
    RegionState::Exhausted,
    RegionState::Outlawed,
];

/// The per-region gauges, the regions with series of their own, and which
/// regions were last seen outlawed.
#[derive(Debug)]
pub(super) struct RegionGauges {
    cap: LabelCap,
    outlawed: BTreeSet<String>,
}

impl RegionGauges {
    /// Gauges for at most `max_regions` regions.
    pub(super) fn new(max_regions: usize) -> Self {
        RegionGauges {
            cap: LabelCap::new("region", max_regions),
            outlawed: BTreeSet::new(),
        }
    }

    /// Records the duration and queue wait of a newly stored build.
    pub(super) fn record_build(&mut self, b: &BuildRecord) {
        let region = self.cap.label(&b.region);
        metrics::histogram!(m::BUILD_DURATION.name, "region" => region.clone())
            .record(b.duration_minutes_value() * 60.0);
        metrics::histogram!(m::QUEUE_WAIT.name, "region" => region)
            .record(b.queue_wait_minutes_value() * 60.0);
    }

    /// Brings the metrics of region `name` up to date with its aggregate
    /// and pardon at `now`.
    pub(super) fn region(
        &mut self,
        name: &str,
        agg: &RegionAggregate,
        pardon: Option<&Pardon>,
        cfg: &RegionConfig,
        now: f64,
    ) {
        let region = name.to_string();
        let h = region_health(agg, pardon, cfg, now);
        let outlawed = h.outlaw.is_some();
        match (outlawed, self.outlawed.contains(name)) {
            (true, false) => {
                let reason = h
                    .outlaw
                    .as_ref()
                    .map(|v| v.reason.clone())
                    .unwrap_or_default();
                tracing::warn!(%region, %reason, "region outlawed");
                self.outlawed.insert(region.clone());
            }
            (false, true) => {
                tracing::info!(%region, "region no longer outlawed");
                self.outlawed.remove(name);
            }
            _ => {}
        }
        if !self.cap.admit(name) {
            return;
        }
        let (total, ok) = (agg.total_builds(), agg.successes());
        metrics::counter!(m::BUILDS.name, "region" => region.clone(), "result" => "success")
            .absolute(ok);
        metrics::counter!(m::BUILDS.name, "region" => region.clone(), "result" => "failure")
            .absolute(total.saturating_sub(ok));
        metrics::counter!(m::FATIGUE_INCIDENTS.name, "region" => region.clone())
            .absolute(agg.fatigue_incidents());
        let ratio = if total > 0 {
            ok as f64 / total as f64
        } else {
            0.0
        };
        metrics::gauge!(m::SUCCESS_RATIO.name, "region" => region.clone()).set(ratio);
        metrics::gauge!(m::STREAK.name, "region" => region.clone())
            .set(agg.current_streak() as f64);
        // Counters are integers in the metrics library, so the cost is
        // counted in cents: exact to the cent, and monotonic because the
        // aggregate's total only grows.
        let cents = (agg.cost().total_usd() * 100.0).round().max(0.0);
        metrics::counter!(m::BUILD_COST_CENTS.name, "region" => region.clone())
            .absolute(cents as u64);
        for st in STATES {
            let v = if st == h.state { 1.0 } else { 0.0 };
            metrics::gauge!(m::FATIGUE_STATE.name, "region" => region.clone(), "state" => st.as_str())
                .set(v);
        }
        metrics::gauge!(m::OUTLAWED.name, "region" => region).set(if outlawed { 1.0 } else { 0.0 });
    }
}

/// Counts the new and duplicate reports of one `kind` in a batch.
pub(super) fn count_reports(kind: &'static str, new: u64, duplicate: u64) {
    if new > 0 {
        metrics::counter!(m::REPORTS.name, "kind" => kind, "result" => "new").increment(new);
    }
    if duplicate > 0 {
        metrics::counter!(m::REPORTS.name, "kind" => kind, "result" => "duplicate")
            .increment(duplicate);
    }
}
