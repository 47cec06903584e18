//! Durations as written in requests and settings: `"<n><unit>"` with units
//! `s`, `m`, `h`, `d`, `w` ([`parse_duration`], [`format_duration`]), at
//! most [`MAX_DURATION_SEC`].

use thiserror::Error;

use lull_proto::error::ValidationError;

/// Longest duration accepted anywhere (400 days), in seconds.
pub const MAX_DURATION_SEC: f64 = 400.0 * 86_400.0;

/// A duration string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Not `<positive integer><unit>`.
    #[error("must be a duration like \"10s\", \"5m\", \"1h\", \"7d\" or \"2w\", got {0:?}")]
    Syntax(String),
    /// Longer than [`MAX_DURATION_SEC`].
    #[error("must be at most 400d, got {0:?}")]
    TooLong(String),
}

impl DurationError {
    /// The error as a validation error of `field`.
    pub fn into_validation(self, field: &str) -> ValidationError {
        ValidationError::Invalid {
            field: field.to_string(),
            reason: self.to_string(),
        }
    }
}

/// Parses `"<n><unit>"` (units `s`, `m`, `h`, `d`, `w`; `n` a positive
/// integer) into seconds.
pub fn parse_duration(s: &str) -> Result<f64, DurationError> {
    let syntax = || DurationError::Syntax(truncate(s));
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(syntax)?;
    let (n, unit) = t.split_at(split);
    if n.is_empty() || n.len() > 9 {
        return Err(syntax());
    }
    let n: u64 = n.parse().map_err(|_| syntax())?;
    let mult = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return Err(syntax()),
    };
    if n == 0 {
        return Err(syntax());
    }
    let secs = n as f64 * mult;
    if secs > MAX_DURATION_SEC {
        return Err(DurationError::TooLong(truncate(s)));
    }
    Ok(secs)
}

/// Formats seconds as the largest exact unit (`300` → `"5m"`).
pub fn format_duration(sec: f64) -> String {
    let s = sec.max(0.0).round() as u64;
    for (unit, m) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= m && s.is_multiple_of(m) {
            return format!("{}{unit}", s / m);
        }
    }
    format!("{s}s")
}

/// The first 32 characters of `s`, for quoting it in an error.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}
