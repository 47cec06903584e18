//! The error of a quiet setting that makes no sense.

use thiserror::Error;

/// A configuration value that makes no sense.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QuietConfigError {
    /// A number is NaN or infinite.
    #[error("quiet.{field} must be a finite number")]
    NotFinite {
        /// Field name.
        field: &'static str,
    },
    /// A number is out of its allowed range.
    #[error("quiet.{field} {rule}, got {value}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// The broken rule, in words.
        rule: &'static str,
        /// The offending value.
        value: f64,
    },
}
