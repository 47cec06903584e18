//! Helpers of the shell's retries: jitter, durations from seconds, and
//! which request errors are worth retrying.

use std::time::Duration;

use crate::request::RequestError;
use lull_proto::error::ErrorCode;

/// A number in `[0, 1)` for retry jitter, from the process's random hash
/// keys and a counter (no dependency on a random number crate).
pub(super) fn jitter_unit() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A duration of `s` seconds (0 when negative or not finite).
pub(super) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() { s.max(0.0) } else { 0.0 })
}

/// The error reply code of a request error, if it is one.
pub(super) fn error_code(e: &RequestError) -> Option<ErrorCode> {
    match e {
        RequestError::Service { code, .. } => Some(*code),
        _ => None,
    }
}

/// Whether a request error is worth retrying (no reply, coordinator busy)
/// rather than final (a bad request).
pub(super) fn transient(e: &RequestError) -> bool {
    match e {
        RequestError::Transport { .. } => true,
        RequestError::Service { code, .. } => {
            matches!(code, ErrorCode::Unavailable | ErrorCode::Internal)
        }
        RequestError::Encode(_) | RequestError::Decode { .. } => false,
    }
}
