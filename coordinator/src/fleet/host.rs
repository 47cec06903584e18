//! One host as the fleet actor keeps it: its latest snapshot and quiet
//! assessment, tracker and streak builder, what its agent reports about
//! its own loop, the history samples not yet handed on, what was last
//! pushed to the lease book, and its cached gauges.

use lull_proto::msg::hosts::{AgentStatus, QuietAssessment, QuietState};
use lull_proto::msg::stats::SystemStatsSnapshot;
use lull_proto::msg::telemetry::{LoopFailure, LoopHealth};

use super::metrics as m;
use super::views::ViewSignals;
use crate::store::history::write::QuietPoint;
use lull_engine::lease::policy::HostView;
use lull_engine::quiet::blocks::Blocks;
use lull_engine::quiet::streaks::StreakBuilder;
use lull_engine::quiet::tracker::HostTracker;

/// Cached handles of a host's gauges (no label lookup per snapshot).
pub(super) struct Gauges {
    pub(super) score: metrics::Gauge,
    pub(super) stale: metrics::Gauge,
    pub(super) blocked: metrics::Gauge,
}

impl Gauges {
    pub(super) fn new(host: &str) -> Self {
        Gauges {
            score: metrics::gauge!(m::HOST_QUIET_SCORE.name, "host" => host.to_string()),
            stale: metrics::gauge!(m::HOST_STALE.name, "host" => host.to_string()),
            blocked: metrics::gauge!(m::HOST_BLOCKED.name, "host" => host.to_string()),
        }
    }
}

/// Everything the fleet keeps about one host.
pub(super) struct HostEntry {
    /// Boxed: moved in and out per snapshot without copying.
    pub(super) snapshot: Box<SystemStatsSnapshot>,
    pub(super) quiet: QuietAssessment,
    pub(super) tracker: HostTracker,
    pub(super) agent: AgentStatus,
    pub(super) first_seen: f64,
    pub(super) last_seen: f64,
    /// `last_seen` changed since the host table was last written.
    pub(super) dirty: bool,
    pub(super) stale: bool,
    pub(super) blocked: bool,
    /// When the block in force ends (`None`: not by itself, or not blocked).
    pub(super) blocked_until: Option<f64>,
    pub(super) streaks: StreakBuilder,
    /// Quiet samples not yet handed to the history writer.
    pub(super) qbuf: Vec<QuietPoint>,
    /// Cadence slot of the last stored quiet sample / group snapshot.
    pub(super) quiet_slot: i64,
    pub(super) group_slot: i64,
    /// Start of the next predicted quiet window.
    pub(super) next_quiet_at: Option<f64>,
    /// What was last pushed to the lease book, and when.
    pub(super) pushed: Option<(f64, ViewSignals)>,
    /// Per-host series, for the first `hosts.host_metrics_max` hosts.
    pub(super) gauges: Option<Gauges>,
}

impl HostEntry {
    /// Sets the stale flag and its gauge.
    pub(super) fn set_stale(&mut self, stale: bool) {
        self.stale = stale;
        if let Some(g) = &self.gauges {
            g.stale.set(if stale { 1.0 } else { 0.0 });
        }
    }

    /// The figures the view filter compares.
    pub(super) fn signals(&self, now: f64) -> ViewSignals {
        let i = &self.quiet.inputs;
        ViewSignals {
            state: self.quiet.state,
            score: self.quiet.quiet_score,
            stale: self.stale,
            blocked: self.blocked,
            blocked_until: self.blocked_until,
            cooling: self.tracker.in_cooldown(now).is_some(),
            next_quiet_at: self.next_quiet_at,
            cpu: i.cpu_avg_2m,
            mem: i.mem_pct,
            load: i.load_per_core,
            io: i.io_pressure,
            disk_free: i.disk_free_pct,
            net: self.snapshot.host.net_bps(),
        }
    }

    /// What the lease book needs to know of the host `id`.
    pub(super) fn view(&self, id: &str, blocks: &Blocks, now: f64) -> HostView {
        let i = &self.quiet.inputs;
        let mut v = HostView::new(
            id,
            self.quiet.state,
            self.quiet.quiet_score,
            self.snapshot.host.cpu_count,
            self.last_seen,
        );
        v.stale = self.stale;
        if self.blocked {
            v.blocked = true;
            v.blocked_until = self.blocked_until;
            v.blocked_reason = blocks.of(id, now).and_then(|b| b.reason);
        }
        v.cooldown_until = self.tracker.in_cooldown(now).map(|left| now + left);
        v.next_quiet_at = self.next_quiet_at;
        v.cpu_avg_pct = Some(i.cpu_avg_2m);
        v.load_per_core = Some(i.load_per_core);
        v.mem_pct = Some(i.mem_pct);
        v.io_pressure = i.io_pressure;
        v.disk_free_pct = i.disk_free_pct;
        v.net_bps = Some(self.snapshot.host.net_bps());
        v
    }

    /// Keeps the agent's `loop.health` (arrived at `at`) and exports what
    /// it says about the agent's outbox.
    pub(super) fn agent_health(&mut self, host: &str, h: LoopHealth, at: f64) {
        let t = &h.transport;
        metrics::gauge!(m::AGENT_REPORTED_QUEUE_LENGTH.name, "host" => host.to_string())
            .set(t.queue_length as f64);
        metrics::counter!(m::AGENT_REPORTED_DROPPED.name, "host" => host.to_string())
            .absolute(t.dropped_messages);
        metrics::gauge!(m::AGENT_LAST_HEALTH.name, "host" => host.to_string()).set(at);
        self.agent.health = Some(h);
        self.agent.health_at = Some(at);
    }

    /// Keeps the agent's latest `loop.failure` (arrived at `at`).
    pub(super) fn agent_failure(&mut self, host: &str, f: LoopFailure, at: f64) {
        metrics::counter!(m::AGENT_LOOP_FAILURES.name, "host" => host.to_string()).increment(1);
        self.agent.failure = Some(f);
        self.agent.failure_at = Some(at);
    }
}

/// Sets every `lull_host_state` series of `host` to 0 (it has no state:
/// forgotten).
pub(super) fn clear_state(host: &str) {
    for s in QuietState::ALL {
        metrics::gauge!(m::HOST_STATE.name, "host" => host.to_string(), "state" => s.as_str())
            .set(0.0);
    }
}

/// Updates the per-host gauges (when the host has them); the state gauge
/// only on a change.
pub(super) fn publish_state(
    host: &str,
    before: Option<QuietState>,
    now: &QuietAssessment,
    g: Option<&Gauges>,
) {
    if let Some(g) = g {
        g.score.set(now.quiet_score);
    }
    if before != Some(now.state) {
        if g.is_some() {
            for s in QuietState::ALL {
                metrics::gauge!(m::HOST_STATE.name, "host" => host.to_string(), "state" => s.as_str())
                    .set(if s == now.state { 1.0 } else { 0.0 });
            }
        }
        if let Some(b) = before {
            tracing::info!(host, from = %b, to = %now.state, score = now.quiet_score, "quiet state changed");
        }
    }
}
