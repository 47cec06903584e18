//! Worker execution reports (seed 003; docs/protocol.md §2 `lull.report.worker.*`)
//! and the wire types of the worker queries (docs/protocol.md §3 "Workers"):
//! scores, learning metrics, anomalies, schedule (missed-run) status,
//! recommendations, and the replies of `workers.executions`, `workers.stats`,
//! `workers.learning`, `learning.system` and `data_quality.summary`.
//!
//! The coordinator computes the derived values (`lull_coordinator::worker`);
//! this module only carries them, so that `lullctl` and other clients can
//! decode the replies without depending on the coordinator.
//!
//! One module per concept, all re-exported here: `report` (the execution
//! report), `derived` (scores, learning, anomalies, schedule status,
//! recommendations) and `queries` (requests and replies).

mod derived;
mod queries;
mod report;

pub use derived::*;
pub use queries::*;
pub use report::*;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::error::ValidationError;
    use crate::validate::{self as v, Validate};
    use crate::validate::{decode, DEFAULT_MAX_PAYLOAD};

    fn full_report() -> WorkerExecutionReport {
        let mut r = example_report("exec-1", "youtube_worker", 1_763_026_000.0, 5000.0);
        r.data_verification = DataVerification {
            records_fetched: Some(200),
            records_processed: Some(195),
            records_stored: Some(195),
            records_failed: Some(5),
            records_skipped: Some(0),
            newest_record_age_seconds: Some(30.0),
            oldest_record_age_seconds: Some(3600.0),
            avg_record_age_seconds: Some(900.5),
            expected_fields_present: Some(false),
            missing_fields: vec!["thumbnail_url".into()],
            null_field_counts: BTreeMap::from([("description".to_string(), 3)]),
            validation_checks_passed: Some(19),
            validation_checks_failed: Some(1),
            validation_errors: vec!["video 42: negative view count".into()],
            api_calls_made: Some(4),
            api_calls_succeeded: Some(4),
            api_calls_failed: Some(0),
            api_rate_limited: Some(false),
            api_quota_remaining: Some(9808),
            cache_hits: Some(10),
            cache_misses: Some(2),
            cache_writes: Some(4),
            cache_ttl_seconds: Some(300.0),
        };
        r.resource_metrics = ResourceMetrics {
            memory_peak_mb: Some(128.0),
            cpu_percent_avg: Some(35.5),
            network_bytes_received: Some(1_048_576),
            database_query_count: Some(12),
            redis_operations: Some(12),
        };
        r.upstream_data_age_seconds = Some(60.0);
        r.downstream_consumers_waiting = Some(0);
        r.error_message = None;
        r.custom_metrics.insert(
            "categories_fetched".into(),
            serde_json::json!(["gaming", "music", "entertainment"]),
        );
        r.custom_metrics
            .insert("quota_used_today".into(), serde_json::json!(192));
        r
    }

    fn decode_value(v: serde_json::Value) -> Result<WorkerExecutionReport, ValidationError> {
        decode(&serde_json::to_vec(&v).unwrap(), DEFAULT_MAX_PAYLOAD)
    }

    #[test]
    fn full_report_round_trips() {
        let r = full_report();
        let bytes = serde_json::to_vec(&r).unwrap();
        let back: WorkerExecutionReport = decode(&bytes, DEFAULT_MAX_PAYLOAD).unwrap();
        assert_eq!(back, r);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"], "SUCCESS");
        assert_eq!(v["data_verification"]["missing_fields"][0], "thumbnail_url");
        assert_eq!(
            v["data_verification"]["null_field_counts"]["description"],
            3
        );
        assert_eq!(v["data_verification"]["api_rate_limited"], false);
        assert_eq!(v["resource_metrics"]["memory_peak_mb"], 128.0);
        assert_eq!(v["custom_metrics"]["quota_used_today"], 192);
    }

    #[test]
    fn minimal_report_decodes_with_empty_sections() {
        let json = r#"{"execution_id":"e1","worker_name":"coach_cleanup_worker",
            "started_at":1763026000.0,"completed_at":1763026002.5,
            "outcome":"PARTIAL","duration_ms":2500}"#;
        let r: WorkerExecutionReport = decode(json.as_bytes(), DEFAULT_MAX_PAYLOAD).unwrap();
        assert_eq!(r.outcome, ExecutionOutcome::Partial);
        assert_eq!(r.host_id, None);
        assert_eq!(r.data_verification, DataVerification::default());
        assert_eq!(r.resource_metrics, ResourceMetrics::default());
        assert!(r.custom_metrics.is_empty());
        // Empty sections are left out when encoding again.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["data_verification"], serde_json::json!({}));
    }

    #[test]
    fn outcomes_have_protocol_names() {
        for o in ExecutionOutcome::ALL {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["outcome"] = serde_json::json!("success");
        assert!(matches!(decode_value(v), Err(ValidationError::Json(_))));
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["outcome"] = serde_json::json!("CRASHED");
        assert!(decode_value(v).is_err());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["schema_version"] = serde_json::json!(2);
        v["data_verification"]["future_metric"] = serde_json::json!(1);
        assert!(decode_value(v).is_ok());
    }

    #[test]
    fn missing_required_fields_are_rejected() {
        for field in [
            "execution_id",
            "worker_name",
            "started_at",
            "completed_at",
            "outcome",
            "duration_ms",
        ] {
            let mut v = serde_json::to_value(full_report()).unwrap();
            v.as_object_mut().unwrap().remove(field);
            let err = decode_value(v).unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }

    #[test]
    fn negative_counts_are_rejected_with_the_field_path() {
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["data_verification"]["records_failed"] = serde_json::json!(-1);
        assert_eq!(
            decode_value(v).unwrap_err().to_string(),
            "data_verification.records_failed must be >= 0, got -1"
        );
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["data_verification"]["null_field_counts"]["description"] = serde_json::json!(-2);
        assert_eq!(
            decode_value(v).unwrap_err().to_string(),
            "data_verification.null_field_counts.description must be >= 0, got -2"
        );
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["resource_metrics"]["memory_peak_mb"] = serde_json::json!(-0.5);
        assert!(decode_value(v).is_err());
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["duration_ms"] = serde_json::json!(-5);
        assert!(decode_value(v).is_err());
        let mut v = serde_json::to_value(full_report()).unwrap();
        v["downstream_consumers_waiting"] = serde_json::json!(-5);
        assert!(decode_value(v).is_err());
    }

    #[test]
    fn non_finite_numbers_are_rejected() {
        let mut r = full_report();
        r.resource_metrics.cpu_percent_avg = Some(f64::NAN);
        assert!(matches!(
            r.validate(),
            Err(ValidationError::NotFinite { .. })
        ));
        let mut r = full_report();
        r.data_verification.newest_record_age_seconds = Some(f64::INFINITY);
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.duration_ms = f64::NAN;
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.started_at = f64::NEG_INFINITY;
        assert!(r.validate().is_err());
        // JSON cannot carry NaN; an overflowing literal is refused too.
        let mut s = serde_json::to_string(&full_report()).unwrap();
        s = s.replace("\"duration_ms\":5000.0", "\"duration_ms\":1e999");
        assert!(s.contains("1e999"));
        assert!(decode::<WorkerExecutionReport>(s.as_bytes(), DEFAULT_MAX_PAYLOAD).is_err());
    }

    #[test]
    fn completed_before_started_is_rejected() {
        let mut r = full_report();
        r.completed_at = r.started_at - 1.0;
        let err = r.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("completed_at must be >= started_at"),
            "{err}"
        );
        r.completed_at = r.started_at;
        assert!(r.validate().is_ok());
    }

    #[test]
    fn identifiers_are_checked() {
        let mut r = full_report();
        r.worker_name = "a.b".into();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.worker_name = String::new();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.execution_id = " ".into();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.host_id = Some("web 1".into());
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.execution_id = "2f1c9a7e-1b7d-4e55-a2c0-5f0f6ad0b0c1".into();
        assert!(r.validate().is_ok());
    }

    #[test]
    fn oversized_lists_and_texts_are_rejected() {
        let mut r = full_report();
        r.data_verification.missing_fields = vec!["f".into(); MAX_FIELD_LIST + 1];
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("missing_fields"));
        let mut r = full_report();
        r.data_verification.validation_errors = vec!["e".into(); MAX_VALIDATION_ERRORS + 1];
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.data_verification.validation_errors = vec!["e".repeat(v::MAX_TEXT_LEN + 1)];
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.data_verification.null_field_counts =
            (0..=MAX_FIELD_LIST).map(|i| (format!("f{i}"), 1)).collect();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.custom_metrics = (0..=MAX_CUSTOM_METRICS)
            .map(|i| (format!("m{i}"), serde_json::json!(i)))
            .collect();
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.error_message = Some("x".repeat(v::MAX_TEXT_LEN + 1));
        assert!(r.validate().is_err());
        let mut r = full_report();
        r.duration_ms = MAX_DURATION_MS + 1.0;
        assert!(r.validate().is_err());
        // Over the payload limit before any rule.
        let mut r = full_report();
        r.custom_metrics.insert(
            "blob".into(),
            serde_json::json!("x".repeat(DEFAULT_MAX_PAYLOAD)),
        );
        let bytes = serde_json::to_vec(&r).unwrap();
        assert!(matches!(
            decode::<WorkerExecutionReport>(&bytes, DEFAULT_MAX_PAYLOAD),
            Err(ValidationError::TooLarge { .. })
        ));
    }

    #[test]
    fn verification_helpers() {
        let r = full_report();
        assert_eq!(r.data_verification.volume(), Some(195));
        assert_eq!(r.data_verification.validation_failures(), 1);
        assert!(!r.data_verification.rate_limited());
        let d = DataVerification {
            records_fetched: Some(7),
            validation_errors: vec!["a".into(), "b".into()],
            api_rate_limited: Some(true),
            ..Default::default()
        };
        assert_eq!(d.volume(), Some(7));
        assert_eq!(d.validation_failures(), 2);
        assert!(d.rate_limited());
        assert_eq!(DataVerification::default().volume(), None);
    }

    #[test]
    fn quality_level_boundaries() {
        let cases = [
            (100.0, QualityLevel::Excellent),
            (90.0, QualityLevel::Excellent),
            (89.9, QualityLevel::Good),
            (70.0, QualityLevel::Good),
            (69.9, QualityLevel::Degraded),
            (50.0, QualityLevel::Degraded),
            (49.9, QualityLevel::Poor),
            (30.0, QualityLevel::Poor),
            (29.9, QualityLevel::Failed),
            (0.0, QualityLevel::Failed),
            (f64::NAN, QualityLevel::Failed),
        ];
        for (s, l) in cases {
            assert_eq!(QualityLevel::from_score(s), l, "{s}");
        }
        let l: QualityLevel = serde_json::from_str("\"Excellent\"").unwrap();
        assert_eq!(l, QualityLevel::Excellent);
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"EXCELLENT\"");
        let t: DurationTrend = serde_json::from_str("\"faster\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"FASTER\"");
    }

    #[test]
    fn scored_execution_is_flat() {
        let s = ScoredExecution {
            report: full_report(),
            scores: ExecutionScores {
                reliability_score: 100.0,
                performance_score: None,
                data_quality_score: Some(88.5),
                resource_efficiency_score: Some(100.0),
                overall_score: 95.7,
                quality_level: QualityLevel::Excellent,
            },
            learning: LearningMetrics {
                time_of_day_utc: 9,
                day_of_week: 3,
                execution_number_today: 1,
                time_since_last_run_seconds: None,
                duration_vs_avg: None,
                duration_trend: None,
                data_volume_trend: Some(VolumeTrend::Stable),
                upstream_data_age_seconds: None,
                downstream_consumers_waiting: None,
            },
            anomalies: vec![Anomaly {
                worker_name: "youtube_worker".into(),
                execution_id: "exec-1".into(),
                detected_at: 1.0,
                kind: AnomalyKind::DurationSpike,
                metric: "duration_ms".into(),
                message: "m".into(),
                evidence: BTreeMap::from([("modified_z".to_string(), 9.1)]),
                rule: None,
                severity: None,
            }],
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["execution_id"], "exec-1");
        assert_eq!(v["overall_score"], 95.7);
        assert_eq!(v["quality_level"], "EXCELLENT");
        assert_eq!(v["performance_score"], serde_json::Value::Null);
        assert_eq!(v["learning"]["data_volume_trend"], "STABLE");
        assert_eq!(v["anomalies"][0]["kind"], "DURATION_SPIKE");
        assert!(v["anomalies"][0].get("rule").is_none());
        let back: ScoredExecution = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn requests_are_validated() {
        let r: WorkerExecutionsRequest =
            decode(br#"{"worker_name":"sse_guardian"}"#, 1024).unwrap();
        assert_eq!(r.effective_limit(), DEFAULT_EXECUTIONS_LIMIT);
        assert!(decode::<WorkerExecutionsRequest>(
            br#"{"worker_name":"sse_guardian","limit":0}"#,
            1024
        )
        .is_err());
        assert!(decode::<WorkerExecutionsRequest>(
            br#"{"worker_name":"sse_guardian","limit":501}"#,
            1024
        )
        .is_err());
        assert!(decode::<WorkerRequest>(br#"{"worker_name":"a>b"}"#, 1024).is_err());
        assert!(
            decode::<WorkerRequest>(br#"{"worker_name":"intel_aggregation_daily"}"#, 1024).is_ok()
        );
    }

    #[test]
    fn execution_cursors_round_trip_and_foreign_ones_are_refused() {
        let c = ExecutionCursor::encode(1796310762.205753, "x-2");
        let back = ExecutionCursor::parse(&c).unwrap();
        assert_eq!(back.started_at, 1796310762.205753);
        assert_eq!(back.execution_id, "x-2");
        let ok = format!(r#"{{"worker_name":"w","cursor":"{c}"}}"#);
        assert!(decode::<WorkerExecutionsRequest>(ok.as_bytes(), 1024).is_ok());
        for bad in ["", "x-2", "abc|x-2", "NaN|x", "-1|x", "inf|x", "1.0|"] {
            assert!(ExecutionCursor::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("1.0|{}", "x".repeat(600));
        assert!(ExecutionCursor::parse(&long).is_err());
    }

    #[test]
    fn schedule_and_outcome_helpers() {
        assert_eq!(ScheduleState::Missed.as_gauge(), 2.0);
        assert_eq!(
            serde_json::to_string(&ScheduleState::Late).unwrap(),
            "\"LATE\""
        );
        let mut c = OutcomeCounts::default();
        for o in ExecutionOutcome::ALL {
            c.add(o);
        }
        c.add(ExecutionOutcome::Success);
        assert_eq!(c.total(), 6);
        assert_eq!(c.get(ExecutionOutcome::Success), 2);
        assert!(ExecutionOutcome::Partial.did_work());
        assert!(ExecutionOutcome::Timeout.is_failure());
        assert!(!ExecutionOutcome::Skipped.is_failure());
    }
}
