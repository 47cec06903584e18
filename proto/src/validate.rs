//! Validation of untrusted input: the size limit, JSON decoding, and small
//! rule helpers that produce [`ValidationError`]s naming the field and rule.

use serde::de::DeserializeOwned;

use crate::error::ValidationError;

/// Default size limit of a payload from the network (256 KiB).
pub const DEFAULT_MAX_PAYLOAD: usize = 256 * 1024;

/// Longest accepted identifier (host id, addon id, worker name, region, ...).
pub const MAX_ID_LEN: usize = 128;

/// Longest accepted free-text field (error messages, reasons).
pub const MAX_TEXT_LEN: usize = 4096;

/// A message that can check its own invariants after decoding.
pub trait Validate {
    /// Returns the first broken rule, naming the field.
    fn validate(&self) -> Result<(), ValidationError>;
}

/// Decodes and validates a payload: size limit first, then JSON, then rules.
/// Nothing is returned unless every rule holds, so a caller never applies
/// half of a bad message.
pub fn decode<T: DeserializeOwned + Validate>(
    payload: &[u8],
    limit: usize,
) -> Result<T, ValidationError> {
    check_size(payload, limit)?;
    let value: T =
        serde_json::from_slice(payload).map_err(|e| ValidationError::Json(e.to_string()))?;
    value.validate()?;
    Ok(value)
}

/// Rejects a payload over `limit` bytes.
pub fn check_size(payload: &[u8], limit: usize) -> Result<(), ValidationError> {
    if payload.len() > limit {
        return Err(ValidationError::TooLarge {
            size: payload.len(),
            limit,
        });
    }
    Ok(())
}

/// A number must be finite.
pub fn finite(field: &str, v: f64) -> Result<(), ValidationError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ValidationError::NotFinite {
            field: field.to_string(),
        })
    }
}

/// An optional number, when present, must be finite.
pub fn finite_opt(field: &str, v: Option<f64>) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| finite(field, v))
}

/// A number must be finite and `>= 0`.
pub fn non_negative(field: &str, v: f64) -> Result<(), ValidationError> {
    finite(field, v)?;
    if v < 0.0 {
        return Err(out_of_range(field, ">= 0", v));
    }
    Ok(())
}

/// An optional number, when present, must be finite and `>= 0`.
pub fn non_negative_opt(field: &str, v: Option<f64>) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| non_negative(field, v))
}

/// A number must be finite and within `lo..=hi`.
pub fn range(field: &str, v: f64, lo: f64, hi: f64) -> Result<(), ValidationError> {
    finite(field, v)?;
    if v < lo || v > hi {
        return Err(out_of_range(field, &format!("{lo}..{hi}"), v));
    }
    Ok(())
}

/// An optional number, when present, must be within `lo..=hi`.
pub fn range_opt(field: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| range(field, v, lo, hi))
}

/// A percentage: finite and within `0..=100`.
pub fn pct(field: &str, v: f64) -> Result<(), ValidationError> {
    range(field, v, 0.0, 100.0)
}

/// An integer must be within `lo..=hi`.
pub fn int_range(field: &str, v: i64, lo: i64, hi: i64) -> Result<(), ValidationError> {
    if v < lo || v > hi {
        return Err(ValidationError::OutOfRange {
            field: field.to_string(),
            rule: format!("{lo}..{hi}"),
            value: v.to_string(),
        });
    }
    Ok(())
}

/// An integer count must be `>= 0`.
pub fn count(field: &str, v: i64) -> Result<(), ValidationError> {
    if v < 0 {
        return Err(ValidationError::OutOfRange {
            field: field.to_string(),
            rule: ">= 0".into(),
            value: v.to_string(),
        });
    }
    Ok(())
}

/// An optional integer count, when present, must be `>= 0`.
pub fn count_opt(field: &str, v: Option<i64>) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| count(field, v))
}

/// A free-text field must be at most `max` bytes.
pub fn text(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    if v.len() > max {
        return Err(ValidationError::Invalid {
            field: field.to_string(),
            reason: format!("must be at most {max} bytes, got {}", v.len()),
        });
    }
    Ok(())
}

/// An optional free-text field, when present, must be at most `max` bytes.
pub fn text_opt(field: &str, v: Option<&str>, max: usize) -> Result<(), ValidationError> {
    v.map_or(Ok(()), |v| text(field, v, max))
}

/// A list must hold at most `max` items.
pub fn max_items(field: &str, len: usize, max: usize) -> Result<(), ValidationError> {
    if len > max {
        return Err(ValidationError::Invalid {
            field: field.to_string(),
            reason: format!("must have at most {max} items, got {len}"),
        });
    }
    Ok(())
}

/// An identifier that is also used as a NATS subject token: non-empty, at
/// most [`MAX_ID_LEN`] bytes, and made of `A-Z a-z 0-9 - _ : @` only (no
/// dots, wildcards or white space, which would change the subject's shape).
pub fn subject_token(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.is_empty() {
        return Err(ValidationError::Missing {
            field: field.to_string(),
        });
    }
    if v.len() > MAX_ID_LEN {
        return Err(ValidationError::Invalid {
            field: field.to_string(),
            reason: format!("must be at most {MAX_ID_LEN} bytes, got {}", v.len()),
        });
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '@')))
    {
        return Err(ValidationError::Invalid {
            field: field.to_string(),
            reason: format!("must use only letters, digits, '-', '_', ':' or '@', found {c:?}"),
        });
    }
    Ok(())
}

/// A non-empty identifier of at most [`MAX_ID_LEN`] bytes (may contain dots).
pub fn id(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.trim().is_empty() {
        return Err(ValidationError::Missing {
            field: field.to_string(),
        });
    }
    text(field, v, MAX_ID_LEN)
}

fn out_of_range(field: &str, rule: &str, v: f64) -> ValidationError {
    ValidationError::OutOfRange {
        field: field.to_string(),
        rule: rule.to_string(),
        value: show(v),
    }
}

/// A number for an error message: as written for ordinary magnitudes,
/// in exponent form when huge or tiny (`1e308`, not 309 digits).
pub fn show(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Bounds of a timestamp from the network, relative to the receiver's
/// clock: at most `future_skew_sec` ahead of it and, when `max_age_sec` is
/// set, at most that far behind it. Pure: the caller supplies `now`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeWindow {
    /// How far ahead of `now` a timestamp may be, seconds.
    pub future_skew_sec: f64,
    /// How far behind `now` a timestamp may be, seconds; `None` is no bound.
    pub max_age_sec: Option<f64>,
}

impl TimeWindow {
    /// A window of `skew` seconds on both sides of `now`.
    pub fn symmetric(skew: f64) -> Self {
        TimeWindow {
            future_skew_sec: skew,
            max_age_sec: Some(skew),
        }
    }

    /// The same window without the past bound (imports of old data).
    pub fn without_past(self) -> Self {
        TimeWindow {
            max_age_sec: None,
            ..self
        }
    }
}

/// Checks the timestamps of a decoded message against a [`TimeWindow`]
/// around `now` (validation proper has no clock).
pub trait CheckTimes {
    /// Returns the first timestamp outside the window, naming the field.
    fn check_times(&self, now: f64, window: &TimeWindow) -> Result<(), ValidationError>;
}

/// A timestamp (unix seconds) must lie within `window` around `now`.
pub fn time_in_window(
    field: &str,
    t: f64,
    now: f64,
    window: &TimeWindow,
) -> Result<(), ValidationError> {
    finite(field, t)?;
    let ahead = t - now;
    if ahead > window.future_skew_sec {
        return Err(ValidationError::OutOfRange {
            field: field.to_string(),
            rule: format!(
                "at most {}s ahead of the receiver's clock ({now:.0}); it is {ahead:.0}s ahead",
                window.future_skew_sec
            ),
            value: show(t),
        });
    }
    if let Some(max_age) = window.max_age_sec {
        if -ahead > max_age {
            return Err(ValidationError::OutOfRange {
                field: field.to_string(),
                rule: format!(
                    "at most {max_age}s behind the receiver's clock ({now:.0}); it is {:.0}s behind",
                    -ahead
                ),
                value: show(t),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_window_bounds_both_sides() {
        let w = TimeWindow {
            future_skew_sec: 300.0,
            max_age_sec: Some(86_400.0),
        };
        let now = 1_000_000.0;
        assert!(time_in_window("t", now + 299.0, now, &w).is_ok());
        assert!(time_in_window("t", now - 86_000.0, now, &w).is_ok());
        let e = time_in_window("t", 1e11, now, &w).unwrap_err();
        assert_eq!(e.kind(), "out_of_range");
        assert!(e.to_string().contains("ahead"), "{e}");
        assert!(time_in_window("t", now - 90_000.0, now, &w).is_err());
        assert!(time_in_window("t", now - 9e9, now, &w.without_past()).is_ok());
        assert!(time_in_window("t", f64::NAN, now, &w).is_err());
        assert!(time_in_window("t", now + 301.0, now, &TimeWindow::symmetric(300.0)).is_err());
        assert!(time_in_window("t", now - 301.0, now, &TimeWindow::symmetric(300.0)).is_err());
    }

    use super::*;

    #[test]
    fn range_names_field_and_rule() {
        let e = range("cpu_pct", 101.0, 0.0, 100.0).unwrap_err();
        assert_eq!(e.to_string(), "cpu_pct must be 0..100, got 101");
        assert!(range("cpu_pct", 100.0, 0.0, 100.0).is_ok());
    }

    #[test]
    fn huge_values_are_shown_briefly() {
        let e = range("d", 1e308, 0.0, 1.0).unwrap_err().to_string();
        assert_eq!(e, "d must be 0..1, got 1e308");
        assert_eq!(show(1e11), "100000000000");
        assert_eq!(show(-2.5e-9), "-2.5e-9");
        assert_eq!(show(0.0), "0");
    }

    #[test]
    fn nan_and_infinity_are_rejected() {
        assert!(matches!(
            finite("x", f64::NAN),
            Err(ValidationError::NotFinite { .. })
        ));
        assert!(matches!(
            non_negative("x", f64::INFINITY),
            Err(ValidationError::NotFinite { .. })
        ));
        assert!(pct("x", f64::NEG_INFINITY).is_err());
    }

    #[test]
    fn negative_counts_are_rejected() {
        assert_eq!(
            count("records", -1).unwrap_err().to_string(),
            "records must be >= 0, got -1"
        );
        assert!(count("records", 0).is_ok());
        assert!(non_negative("d", -0.5).is_err());
    }

    #[test]
    fn size_limit_is_checked_before_decoding() {
        #[derive(serde::Deserialize)]
        struct T {}
        impl Validate for T {
            fn validate(&self) -> Result<(), ValidationError> {
                Ok(())
            }
        }
        let big = vec![b' '; 11];
        assert!(matches!(
            decode::<T>(&big, 10),
            Err(ValidationError::TooLarge {
                size: 11,
                limit: 10
            })
        ));
        assert!(matches!(
            decode::<T>(b"{not json", 100),
            Err(ValidationError::Json(_))
        ));
        assert!(decode::<T>(b"{}", 100).is_ok());
    }

    #[test]
    fn subject_tokens_refuse_subject_syntax() {
        assert!(subject_token("host_id", "web-01").is_ok());
        assert!(subject_token("host_id", "").is_err());
        assert!(subject_token("host_id", "a.b").is_err());
        assert!(subject_token("host_id", "a*").is_err());
        assert!(subject_token("host_id", "a>").is_err());
        assert!(subject_token("host_id", "a b").is_err());
        assert!(subject_token("host_id", &"x".repeat(129)).is_err());
    }

    #[test]
    fn text_limits() {
        assert!(text("m", "abc", 3).is_ok());
        assert!(text("m", "abcd", 3).is_err());
        assert!(max_items("l", 5, 4).is_err());
        assert!(int_range("u", 0, 1, 100).is_err());
        assert!(id("i", "  ").is_err());
    }
}
