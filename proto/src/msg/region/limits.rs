//! Limits and text rules of region reports: how many recent builds are
//! kept, how long reasons may be, bounds on durations, prices and lists,
//! and [`concise`] text.

/// `recent_builds` keeps the newest this many builds per region (seed 000).
pub const RECENT_BUILDS_LIMIT: usize = 100;

/// `last_error` is cut to this many characters (seed 001).
pub const LAST_ERROR_MAX_CHARS: usize = 80;

/// `last_fatigue_reason` is cut to this many characters (seed 001).
pub const LAST_FATIGUE_REASON_MAX_CHARS: usize = 60;

/// Most fatigue events accepted inside one build record.
pub const MAX_FATIGUES_PER_BUILD: usize = 64;

/// Longest accepted build duration or queue wait, in seconds (30 days).
pub const MAX_BUILD_SECONDS: f64 = 30.0 * 86_400.0;

/// Longest accepted fatigue duration, in hours (one year).
pub const MAX_FATIGUE_HOURS: f64 = 8_760.0;

/// Largest accepted `cost_usd` of one build and `spot_price_per_hour`.
pub const MAX_USD: f64 = 1_000_000.0;

/// Most regions accepted in one campaign stats document.
pub const MAX_REGIONS: usize = 1024;

/// Most `recent_builds` accepted per region when importing a document.
pub const MAX_RECENT_BUILDS_IMPORT: usize = 1000;

/// Most candidates in one `regions.select` request.
pub const MAX_CANDIDATES: usize = 256;

/// Cuts `text` to its first non-empty line and at most `max` characters
/// (the "concise" `last_error` / `last_fatigue_reason` of seed 001).
pub fn concise(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string()
}
