//! Threshold rules over a worker's custom metrics (seed 003, "SSE Guardian
//! Metrics": `stale_streams` > 10, `orphaned_streams` > 5 and
//! `orphan_rate` > 0.1 are warnings). A rule names a key of the report's
//! `custom_metrics`, a comparison, a threshold and a severity; a run whose
//! value passes the threshold gets a `CUSTOM_THRESHOLD` anomaly carrying the
//! rule's name and severity. Evaluated per run from the report alone.

use std::collections::{BTreeMap, HashSet};

use lull_proto::msg::worker::{Anomaly, AnomalyKind, Severity, WorkerExecutionReport};
use serde::{Deserialize, Serialize};

/// A rule is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct RuleError {
    /// Dotted path of the setting below `workers.`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Most rules (each one is a label value of the breach metrics).
pub const MAX_RULES: usize = 64;
/// Longest rule name.
pub const MAX_RULE_NAME: usize = 64;

/// How a value is compared with the threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// Breached above the threshold (the seed's "> 10").
    #[default]
    #[serde(rename = ">", alias = "gt")]
    Gt,
    /// Breached at or above the threshold.
    #[serde(rename = ">=", alias = "ge")]
    Ge,
    /// Breached below the threshold.
    #[serde(rename = "<", alias = "lt")]
    Lt,
    /// Breached at or below the threshold.
    #[serde(rename = "<=", alias = "le")]
    Le,
}

impl Comparison {
    /// Whether `value` breaches `threshold`.
    pub fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
        }
    }

    /// The operator as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Comparison::Gt => "over",
            Comparison::Ge => "at or over",
            Comparison::Lt => "under",
            Comparison::Le => "at or under",
        }
    }
}

/// One rule (TOML: `[[workers.anomaly.custom_thresholds]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRule {
    /// Name of the rule: the `rule` of its anomalies and metrics. Default:
    /// the metric name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Key of `custom_metrics` (a dotted path reaches into a nested object,
    /// `orphaned_by_type.generation`, when no key has that exact name).
    pub metric: String,
    /// Comparison (`>`, `>=`, `<`, `<=`). Default `>`.
    #[serde(default)]
    pub op: Comparison,
    /// The threshold.
    pub threshold: f64,
    /// Severity of a breach (`info`, `warning`, `critical`). Default `warning`.
    #[serde(default)]
    pub severity: Severity,
    /// Workers the rule applies to; empty is every worker. Default empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<String>,
    /// `[numerator, denominator]`: two metrics whose ratio stands in for
    /// `metric` when a run does not report it (seed 003's `orphan_rate` is
    /// "the ratio of orphans to active": `["orphaned_streams",
    /// "active_streams"]`). Not evaluated when the denominator is 0.
    /// Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_of: Option<[String; 2]>,
}

impl ThresholdRule {
    /// A rule named after its metric, for every worker.
    pub fn new(metric: &str, op: Comparison, threshold: f64, severity: Severity) -> ThresholdRule {
        ThresholdRule {
            name: String::new(),
            metric: metric.to_string(),
            op,
            threshold,
            severity,
            workers: Vec::new(),
            ratio_of: None,
        }
    }

    /// The run's value for this rule: its metric, else the ratio that
    /// stands in for it.
    pub fn value(&self, custom: &serde_json::Map<String, serde_json::Value>) -> Option<f64> {
        metric_value(custom, &self.metric).or_else(|| {
            let [num, den] = self.ratio_of.as_ref()?;
            let d = metric_value(custom, den).filter(|d| *d != 0.0)?;
            Some(metric_value(custom, num)? / d).filter(|r| r.is_finite())
        })
    }

    /// The rule's name: `name`, or the metric when it has none.
    pub fn name(&self) -> &str {
        if self.name.is_empty() {
            &self.metric
        } else {
            &self.name
        }
    }

    /// Whether the rule applies to `worker`.
    pub fn applies_to(&self, worker: &str) -> bool {
        self.workers.is_empty() || self.workers.iter().any(|w| w == worker)
    }
}

/// Seed 003's stream-health thresholds, all warnings.
pub fn default_rules() -> Vec<ThresholdRule> {
    vec![
        ThresholdRule::new("stale_streams", Comparison::Gt, 10.0, Severity::Warning),
        ThresholdRule::new("orphaned_streams", Comparison::Gt, 5.0, Severity::Warning),
        ThresholdRule {
            ratio_of: Some(["orphaned_streams".into(), "active_streams".into()]),
            ..ThresholdRule::new("orphan_rate", Comparison::Gt, 0.1, Severity::Warning)
        },
    ]
}

/// The numeric value of `metric` in `custom`: the key of that exact name,
/// else a dotted path into nested objects. Only finite JSON numbers count;
/// anything else (text, lists, booleans, missing) is not evaluated.
pub fn metric_value(
    custom: &serde_json::Map<String, serde_json::Value>,
    metric: &str,
) -> Option<f64> {
    let v = match custom.get(metric) {
        Some(v) => v,
        None => {
            let mut parts = metric.split('.');
            let mut v = custom.get(parts.next()?)?;
            for p in parts {
                v = v.as_object()?.get(p)?;
            }
            v
        }
    };
    v.as_f64().filter(|x| x.is_finite())
}

/// One rule evaluated on one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<'a> {
    /// The rule.
    pub rule: &'a ThresholdRule,
    /// The run's value of its metric.
    pub value: f64,
    /// Whether the value breaches the threshold.
    pub breached: bool,
}

/// The rules that apply to the report's worker and whose metric it
/// reported, evaluated, in rule order.
pub fn evaluate<'a>(
    report: &WorkerExecutionReport,
    rules: &'a [ThresholdRule],
) -> Vec<Evaluation<'a>> {
    rules
        .iter()
        .filter(|r| r.applies_to(&report.worker_name))
        .filter_map(|rule| {
            let value = rule.value(&report.custom_metrics)?;
            Some(Evaluation {
                rule,
                value,
                breached: rule.op.breached(value, rule.threshold),
            })
        })
        .collect()
}

/// The `CUSTOM_THRESHOLD` anomalies of one run.
pub fn breaches(report: &WorkerExecutionReport, rules: &[ThresholdRule]) -> Vec<Anomaly> {
    evaluate(report, rules)
        .into_iter()
        .filter(|e| e.breached)
        .map(|e| {
            let r = e.rule;
            Anomaly {
                worker_name: report.worker_name.clone(),
                execution_id: report.execution_id.clone(),
                detected_at: report.completed_at,
                kind: AnomalyKind::CustomThreshold,
                metric: r.metric.clone(),
                message: format!(
                    "{} {} is {} the {} threshold of {} (rule {}: {} {} {})",
                    r.metric,
                    e.value,
                    r.op.words(),
                    r.severity.as_str(),
                    r.threshold,
                    r.name(),
                    r.metric,
                    r.op.as_str(),
                    r.threshold
                ),
                evidence: BTreeMap::from([
                    ("value".to_string(), e.value),
                    ("threshold".to_string(), r.threshold),
                ]),
                rule: Some(r.name().to_string()),
                severity: Some(r.severity),
            }
        })
        .collect()
}

fn err(field: String, reason: impl Into<String>) -> RuleError {
    RuleError {
        field,
        reason: reason.into(),
    }
}

/// Checks the rules: at most [`MAX_RULES`], each with a metric, a finite
/// threshold and a unique name of at most [`MAX_RULE_NAME`] characters
/// among `A-Z a-z 0-9 _ . : -`.
pub fn validate(rules: &[ThresholdRule]) -> Result<(), RuleError> {
    const FIELD: &str = "anomaly.custom_thresholds";
    if rules.len() > MAX_RULES {
        return Err(err(
            FIELD.into(),
            format!("has more than {MAX_RULES} rules"),
        ));
    }
    let mut names = HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        let at = format!("{FIELD}[{i}]");
        if r.metric.trim().is_empty() {
            return Err(err(format!("{at}.metric"), "must not be empty"));
        }
        if r.ratio_of
            .as_ref()
            .is_some_and(|p| p.iter().any(|m| m.trim().is_empty()))
        {
            return Err(err(format!("{at}.ratio_of"), "must name two metrics"));
        }
        if !r.threshold.is_finite() {
            return Err(err(
                format!("{at}.threshold"),
                format!("must be a finite number, got {}", r.threshold),
            ));
        }
        let name = r.name();
        let good = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
        if name.len() > MAX_RULE_NAME || !name.chars().all(good) {
            return Err(err(
                format!("{at}.name"),
                format!(
                    "{name:?} must be at most {MAX_RULE_NAME} characters among A-Z a-z 0-9 _ . : - \
                     (set `name` when the metric has others)"
                ),
            ));
        }
        if !names.insert(name) {
            return Err(err(format!("{at}.name"), format!("{name:?} is used twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::worker::example_report;
    use serde_json::json;

    fn guardian(metrics: serde_json::Value) -> WorkerExecutionReport {
        let mut r = example_report("g1", "sse_guardian", 1_763_020_800.0, 40.0);
        r.custom_metrics = metrics.as_object().unwrap().clone();
        r
    }

    /// The (rule, value) of each breach of one run under the default rules.
    fn fired(metrics: serde_json::Value) -> Vec<(String, f64)> {
        breaches(&guardian(metrics), &default_rules())
            .into_iter()
            .map(|a| (a.rule.unwrap(), a.evidence["value"]))
            .collect()
    }

    #[test]
    fn orphan_rate_is_derived_when_not_reported() {
        // 3 orphans of 20 active: 0.15 > 0.1, derived from the counts.
        assert_eq!(
            fired(json!({"orphaned_streams": 3, "active_streams": 20})),
            vec![("orphan_rate".into(), 0.15)]
        );
        // 2 of 20 is 0.1: at the threshold, not over it.
        assert!(fired(json!({"orphaned_streams": 2, "active_streams": 20})).is_empty());
        // A reported rate wins over the counts.
        assert!(
            fired(json!({"orphaned_streams": 3, "active_streams": 20, "orphan_rate": 0.05}))
                .is_empty()
        );
        // No active streams: no rate to judge (the orphan count rule still applies).
        assert_eq!(
            fired(json!({"orphaned_streams": 6, "active_streams": 0})),
            vec![("orphaned_streams".into(), 6.0)]
        );
        assert!(fired(json!({"orphaned_streams": 1})).is_empty());
    }

    #[test]
    fn seed_rules_below_at_and_above() {
        // Below and at each threshold: nothing ("Warning if > N").
        assert!(
            fired(json!({"stale_streams": 9, "orphaned_streams": 4, "orphan_rate": 0.09}))
                .is_empty()
        );
        assert!(
            fired(json!({"stale_streams": 10, "orphaned_streams": 5, "orphan_rate": 0.1}))
                .is_empty()
        );
        // Above: one breach each.
        assert_eq!(
            fired(json!({"stale_streams": 11})),
            vec![("stale_streams".into(), 11.0)]
        );
        assert_eq!(
            fired(json!({"orphaned_streams": 6})),
            vec![("orphaned_streams".into(), 6.0)]
        );
        assert_eq!(
            fired(json!({"orphan_rate": 0.11})),
            vec![("orphan_rate".into(), 0.11)]
        );
        assert_eq!(
            fired(
                json!({"stale_streams": 10.5, "orphaned_streams": 5.01, "orphan_rate": 0.1000001})
            )
            .len(),
            3
        );
    }

    #[test]
    fn a_breach_carries_its_rule_and_evidence() {
        let r = guardian(json!({"stale_streams": 12, "active_streams": 40}));
        let a = breaches(&r, &default_rules());
        assert_eq!(a.len(), 1);
        let a = &a[0];
        assert_eq!(a.kind, AnomalyKind::CustomThreshold);
        assert_eq!(a.metric, "stale_streams");
        assert_eq!(a.rule.as_deref(), Some("stale_streams"));
        assert_eq!(a.severity, Some(Severity::Warning));
        assert_eq!(a.execution_id, "g1");
        assert_eq!(a.detected_at, r.completed_at);
        assert_eq!(a.evidence["threshold"], 10.0);
        assert_eq!(
            a.message,
            "stale_streams 12 is over the warning threshold of 10 (rule stale_streams: stale_streams > 10)"
        );
    }

    #[test]
    fn non_numbers_and_missing_metrics_are_not_evaluated() {
        assert!(fired(json!({})).is_empty());
        assert!(fired(
            json!({"stale_streams": "99", "orphaned_streams": [9], "orphan_rate": true})
        )
        .is_empty());
        assert!(evaluate(&guardian(json!({"stale_streams": null})), &default_rules()).is_empty());
        let rules = default_rules();
        let e = evaluate(
            &guardian(json!({"stale_streams": 3, "orphan_rate": 0.5})),
            &rules,
        );
        let got: Vec<(&str, bool)> = e.iter().map(|e| (e.rule.name(), e.breached)).collect();
        assert_eq!(got, vec![("stale_streams", false), ("orphan_rate", true)]);
    }

    #[test]
    fn comparisons_paths_and_worker_filters() {
        for (op, below, at, above) in [
            (Comparison::Gt, false, false, true),
            (Comparison::Ge, false, true, true),
            (Comparison::Lt, true, false, false),
            (Comparison::Le, true, true, false),
        ] {
            assert_eq!(op.breached(4.0, 5.0), below, "{op:?}");
            assert_eq!(op.breached(5.0, 5.0), at, "{op:?}");
            assert_eq!(op.breached(6.0, 5.0), above, "{op:?}");
        }
        let rule = ThresholdRule {
            name: "gen_orphans".into(),
            metric: "orphaned_by_type.generation".into(),
            op: Comparison::Ge,
            threshold: 3.0,
            severity: Severity::Critical,
            workers: vec!["sse_guardian".into()],
            ratio_of: None,
        };
        let rules = [rule];
        let r = guardian(json!({"orphaned_by_type": {"generation": 3, "coach_start": 0}}));
        let a = breaches(&r, &rules);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].rule.as_deref(), Some("gen_orphans"));
        assert_eq!(a[0].severity, Some(Severity::Critical));
        assert!(
            a[0].message.contains("at or over the critical threshold"),
            "{}",
            a[0].message
        );
        let mut other = r.clone();
        other.worker_name = "coach_cleanup_worker".into();
        assert!(breaches(&other, &rules).is_empty());
        // An exact key wins over a path.
        let r = guardian(
            json!({"orphaned_by_type.generation": 1, "orphaned_by_type": {"generation": 9}}),
        );
        assert!(breaches(&r, &rules).is_empty());
    }

    #[test]
    fn rules_from_toml_and_their_checks() {
        let rules: Vec<ThresholdRule> = serde_json::from_value(json!([
            {"metric": "stale_streams", "threshold": 20, "severity": "critical"},
            {"name": "low_active", "metric": "active_streams", "op": "<", "threshold": 1},
            {"metric": "queue_depth", "op": "ge", "threshold": 100, "severity": "info"}
        ]))
        .unwrap();
        validate(&rules).unwrap();
        assert_eq!(rules[0].op, Comparison::Gt);
        assert_eq!(rules[0].severity, Severity::Critical);
        assert_eq!(rules[1].name(), "low_active");
        assert_eq!(rules[1].op, Comparison::Lt);
        assert_eq!(rules[2].op, Comparison::Ge);
        assert_eq!(rules[2].severity, Severity::Info);
        validate(&default_rules()).unwrap();

        let twice = vec![default_rules()[0].clone(), default_rules()[0].clone()];
        assert_eq!(
            validate(&twice).unwrap_err().to_string(),
            "anomaly.custom_thresholds[1].name \"stale_streams\" is used twice"
        );
        let mut bad = default_rules();
        bad[2].threshold = f64::NAN;
        assert!(validate(&bad).unwrap_err().field.ends_with("[2].threshold"));
        let mut bad = default_rules();
        bad[0].metric = " ".into();
        assert!(validate(&bad).is_err());
        let mut bad = default_rules();
        bad[1].metric = "orphaned streams".into();
        assert!(validate(&bad).unwrap_err().field.ends_with("[1].name"));
        bad[1].name = "orphaned".into();
        validate(&bad).unwrap();
        let many: Vec<ThresholdRule> = (0..=MAX_RULES)
            .map(|i| ThresholdRule::new(&format!("m{i}"), Comparison::Gt, 1.0, Severity::Info))
            .collect();
        assert!(validate(&many).is_err());
    }
}
