//! Error types shared by every Lull component: the validation error raised on
//! bad input, and the `{"error": {...}}` reply body of the micro service.

use serde::{Deserialize, Serialize};

/// Machine-readable error codes of an error reply (docs/protocol.md conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was malformed or broke a validation rule.
    InvalidRequest,
    /// The named object (host, lease, worker, region) does not exist.
    NotFound,
    /// The caller may not do this (for example a wrong lease token).
    Forbidden,
    /// The service cannot answer right now (database down, shutting down).
    Unavailable,
    /// A bug or unexpected failure inside the service.
    Internal,
}

impl ErrorCode {
    /// The wire name of the code, as used in the body and the
    /// `Nats-Service-Error` header.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The numeric code put in the `Nats-Service-Error-Code` header
    /// (HTTP-like, as the NATS micro convention suggests).
    pub fn status(self) -> usize {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inner object of an error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message naming the field and the rule.
    pub message: String,
}

/// The body of an error reply: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The error itself.
    pub error: ErrorBody,
}

impl ErrorReply {
    /// Builds an error reply.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply {
            error: ErrorBody {
                code,
                message: message.into(),
            },
        }
    }
}

impl From<&ValidationError> for ErrorReply {
    fn from(e: &ValidationError) -> Self {
        ErrorReply::new(ErrorCode::InvalidRequest, e.to_string())
    }
}

/// Why an input from the network was rejected. Every variant names the field
/// (a dotted path such as `host.disks[0].used_pct`) and the rule it broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// The payload is larger than the configured limit.
    #[error("payload is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the payload in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The payload is not valid JSON, has a wrong type or misses a required field.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// A required field is absent or empty.
    #[error("{field} is required")]
    Missing {
        /// Path of the field.
        field: String,
    },
    /// A number is NaN or infinite.
    #[error("{field} must be a finite number")]
    NotFinite {
        /// Path of the field.
        field: String,
    },
    /// A number is outside its allowed range.
    #[error("{field} must be {rule}, got {value}")]
    OutOfRange {
        /// Path of the field.
        field: String,
        /// The rule, for example `1..100` or `>= 0`.
        rule: String,
        /// The offending value, rendered.
        value: String,
    },
    /// A value breaks a rule that is not a numeric range.
    #[error("{field} {reason}")]
    Invalid {
        /// Path of the field.
        field: String,
        /// What is wrong, phrased to follow the field name.
        reason: String,
    },
}

impl ValidationError {
    /// A short, bounded label for metrics (`reason` label of counters).
    pub fn kind(&self) -> &'static str {
        match self {
            ValidationError::TooLarge { .. } => "too_large",
            ValidationError::Json(_) => "bad_json",
            ValidationError::Missing { .. } => "missing_field",
            ValidationError::NotFinite { .. } => "not_finite",
            ValidationError::OutOfRange { .. } => "out_of_range",
            ValidationError::Invalid { .. } => "invalid_field",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reply_has_the_protocol_shape() {
        let e = ValidationError::OutOfRange {
            field: "cost_units".into(),
            rule: "1..100".into(),
            value: "0".into(),
        };
        let reply = ErrorReply::from(&e);
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "invalid_request", "message": "cost_units must be 1..100, got 0"}})
        );
    }

    #[test]
    fn codes_have_wire_names_and_statuses() {
        assert_eq!(ErrorCode::NotFound.as_str(), "not_found");
        assert_eq!(ErrorCode::Unavailable.status(), 503);
        let c: ErrorCode = serde_json::from_str("\"forbidden\"").unwrap();
        assert_eq!(c, ErrorCode::Forbidden);
    }
}
