//! A worker execution report as a worker would write it into the agent's
//! spool directory (seed 003), decoded and validated from the outside.

use lull_proto::msg::worker::{ExecutionOutcome, WorkerExecutionReport};
use lull_proto::validate::{decode, DEFAULT_MAX_PAYLOAD};
use lull_proto::ValidationError;

const SSE_GUARDIAN: &str = r#"{
  "execution_id": "sse_guardian-1763026000-7",
  "worker_name": "sse_guardian",
  "started_at": 1763026000.0,
  "completed_at": 1763026000.045,
  "outcome": "SUCCESS",
  "duration_ms": 45,
  "data_verification": {
    "records_fetched": 120,
    "records_processed": 120,
    "records_failed": 0,
    "cache_hits": 118,
    "cache_misses": 2
  },
  "resource_metrics": {"memory_peak_mb": 42.5, "redis_operations": 240},
  "custom_metrics": {
    "active_streams": 120,
    "healthy_streams": 114,
    "stale_streams": 4,
    "orphaned_streams": 2,
    "cleaned_streams": 2,
    "orphan_rate": 0.0167,
    "orphaned_by_type": {"generation": 1, "coach_continue": 1}
  },
  "emitted_by": "a future SDK field"
}"#;

#[test]
fn spool_file_decodes() {
    let r: WorkerExecutionReport = decode(SSE_GUARDIAN.as_bytes(), DEFAULT_MAX_PAYLOAD).unwrap();
    assert_eq!(r.outcome, ExecutionOutcome::Success);
    assert_eq!(r.duration_ms, 45.0);
    assert_eq!(r.host_id, None);
    assert_eq!(r.data_verification.volume(), Some(120));
    assert_eq!(r.resource_metrics.redis_operations, Some(240));
    assert_eq!(r.custom_metrics["orphaned_by_type"]["generation"], 1);
    // Encoding and decoding again gives the same report.
    let again: WorkerExecutionReport =
        decode(&serde_json::to_vec(&r).unwrap(), DEFAULT_MAX_PAYLOAD).unwrap();
    assert_eq!(again, r);
}

#[test]
fn a_broken_spool_file_is_rejected_whole() {
    let bad = SSE_GUARDIAN.replace("\"records_failed\": 0", "\"records_failed\": -3");
    let err = decode::<WorkerExecutionReport>(bad.as_bytes(), DEFAULT_MAX_PAYLOAD).unwrap_err();
    assert_eq!(err.kind(), "out_of_range");
    assert_eq!(
        err.to_string(),
        "data_verification.records_failed must be >= 0, got -3"
    );
    let bad = SSE_GUARDIAN.replace("1763026000.045", "1763025999.0");
    assert!(matches!(
        decode::<WorkerExecutionReport>(bad.as_bytes(), DEFAULT_MAX_PAYLOAD),
        Err(ValidationError::OutOfRange { .. })
    ));
    let bad = SSE_GUARDIAN.replace("\"SUCCESS\"", "\"OK\"");
    assert!(matches!(
        decode::<WorkerExecutionReport>(bad.as_bytes(), DEFAULT_MAX_PAYLOAD),
        Err(ValidationError::Json(_))
    ));
}
