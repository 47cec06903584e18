//! Build region metrics: builds, fatigue and cost per region, each
//! region's health, and the region reports stored.

use lull_common::metric::Metric;
use metrics::Unit;

/// Buckets for durations of seconds to a day (cloud builds, queue waits).
const LONG_DURATION_BUCKETS: &[f64] = &[
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 5400.0,
    7200.0, 10800.0, 14400.0, 21600.0, 43200.0, 86400.0,
];

/// Counter `{region,result}`: builds recorded.
pub(crate) static BUILDS: Metric = Metric::counter(
    "lull_region_builds_total",
    "Builds recorded per region, by result (success, failure), including imported history.",
);
/// Gauge `{region}`: share of successful builds.
pub(crate) static SUCCESS_RATIO: Metric = Metric::gauge(
    "lull_region_success_ratio",
    "Share of successful builds per region (0..1).",
);
/// Gauge `{region}`: current streak (negative for failures).
pub(crate) static STREAK: Metric = Metric::gauge(
    "lull_region_streak",
    "Current streak per region: positive for consecutive successes, negative for failures.",
);
/// Gauge `{region,state}`: 1 for the region's current fatigue state.
pub(crate) static FATIGUE_STATE: Metric = Metric::gauge(
    "lull_region_fatigue_state",
    "Health of each region: 1 for the current state (HEALTHY, FATIGUED, EXHAUSTED, OUTLAWED), 0 for the others.",
);
/// Gauge `{region}`: 1 while auto-outlawed.
pub(crate) static OUTLAWED: Metric = Metric::gauge(
    "lull_region_outlawed",
    "1 while a region is auto-outlawed (until an operator pardons it).",
);
/// Counter `{region}`: fatigue incidents.
pub(crate) static FATIGUE_INCIDENTS: Metric = Metric::counter(
    "lull_region_fatigue_incidents_total",
    "Fatigue incidents per region: fatigues inside builds plus bare fatigue events.",
);
/// Histogram `{region}`: duration of newly recorded builds.
pub(crate) static BUILD_DURATION: Metric = Metric::histogram(
    "lull_region_build_duration_seconds",
    "Duration of each newly recorded build (queue wait included), per region.",
)
.unit(Unit::Seconds)
.buckets(LONG_DURATION_BUCKETS);
/// Histogram `{region}`: queue wait of newly recorded builds.
pub(crate) static QUEUE_WAIT: Metric = Metric::histogram(
    "lull_region_queue_wait_seconds",
    "Queue wait of each newly recorded build, per region.",
)
.unit(Unit::Seconds)
.buckets(LONG_DURATION_BUCKETS);
/// Counter `{region}`: known build cost in US cents.
pub(crate) static BUILD_COST_CENTS: Metric = Metric::counter(
    "lull_region_build_cost_cents_total",
    "Cost of the builds with a known cost per region, in US cents (divide by 100 for USD).",
);
/// Counter `{kind,result}`: region reports stored.
pub(crate) static REPORTS: Metric = Metric::counter(
    "lull_region_reports_total",
    "Stored region reports by kind (build, fatigue) and result (new, duplicate).",
);
/// Counter: reports of new regions refused at the cap.
pub(crate) static REGIONS_REJECTED: Metric = Metric::counter(
    "lull_regions_rejected_total",
    "Build and fatigue reports refused because they would add a region past region_service.max_regions (terminated, not stored).",
);

/// Every metric of the build regions.
pub(crate) static METRICS: &[&Metric] = &[
    &REGIONS_REJECTED,
    &BUILDS,
    &SUCCESS_RATIO,
    &STREAK,
    &FATIGUE_STATE,
    &OUTLAWED,
    &FATIGUE_INCIDENTS,
    &BUILD_DURATION,
    &QUEUE_WAIT,
    &BUILD_COST_CENTS,
    &REPORTS,
];
