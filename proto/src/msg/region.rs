//! Region build and fatigue reports and the campaign stats JSON (seeds 000, 001).
//!
//! Owns the wire shapes of docs/protocol.md §2 (`lull.report.build.<region>`,
//! `lull.report.fatigue.<region>`) and §3 "Regions" (`lull.v1.regions.stats`,
//! `.select`, `.insights`), their validation, and the migration of the legacy
//! region-level `fatigue_reason` / `fatigue_time` fields.
//!
//! One module per concept: `report` (build and fatigue reports), `stats`
//! (campaign stats JSON), `select`, `insights`, `limits` (bounds and
//! [`concise`] text) and `examples`; all re-exported here.

mod examples;
mod insights;
mod limits;
mod report;
mod select;
mod stats;
mod whole;

pub use examples::*;
pub use insights::*;
pub use limits::*;
pub use report::*;
pub use select::*;
pub use stats::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concise_keeps_first_line_and_limit() {
        assert_eq!(concise("  \nfirst line\nsecond", 80), "first line");
        assert_eq!(concise(&"é".repeat(100), 60).chars().count(), 60);
        assert_eq!(concise("", 10), "");
    }

    #[test]
    fn whole_numbers_serialize_as_integers() {
        let f = BuildFatigue {
            fatigue_reason: "r".into(),
            fatigue_reason_code: None,
            fatigue_time: 1.0,
            fatigue_duration_hours: Some(4.0),
            fatigue_type: FatigueType::Fatigued,
        };
        let s = serde_json::to_string(&f).unwrap();
        assert!(s.contains("\"fatigue_duration_hours\":4,"), "{s}");
        assert!(s.contains("\"fatigue_time\":1.0"), "{s}");
    }
}
