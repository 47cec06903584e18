//! [`LeaseClientConfig`]: the tunables of the lease client, each with its
//! default.

use serde::{Deserialize, Serialize};

/// Tunables of the lease client. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaseClientConfig {
    /// Timeout of one request to the coordinator, seconds. Default 5.
    pub request_timeout_sec: f64,
    /// Heartbeat interval when a grant carries no `limits`, seconds.
    /// Default 10.
    pub default_heartbeat_interval_sec: f64,
    /// Shortest heartbeat interval ever used, seconds. Default 0.1.
    pub min_heartbeat_interval_sec: f64,
    /// After a heartbeat that got no answer, the next one is tried after
    /// this long (or the normal interval when shorter), seconds. Default 1.
    pub heartbeat_retry_sec: f64,
    /// Wait before asking again when a denial names no `retry_after_sec`
    /// (or the coordinator could not be reached), seconds. Default 5.
    pub default_retry_sec: f64,
    /// Shortest wait between two requests, seconds. Default 0.5.
    pub min_retry_sec: f64,
    /// Longest wait between two requests, seconds. Default 300.
    pub max_retry_sec: f64,
    /// Jitter added to a retry wait, as a fraction of it (0.2 = up to 20 %
    /// later, never earlier than the coordinator asked). Default 0.2.
    pub retry_jitter: f64,
    /// While queued, the queue ticket is checked with a heartbeat this often
    /// in case the `GRANTED` event was missed, seconds. Default 5.
    pub queue_probe_sec: f64,
}

impl Default for LeaseClientConfig {
    fn default() -> Self {
        LeaseClientConfig {
            request_timeout_sec: 5.0,
            default_heartbeat_interval_sec: 10.0,
            min_heartbeat_interval_sec: 0.1,
            heartbeat_retry_sec: 1.0,
            default_retry_sec: 5.0,
            min_retry_sec: 0.5,
            max_retry_sec: 300.0,
            retry_jitter: 0.2,
            queue_probe_sec: 5.0,
        }
    }
}
