//! Pure helpers of `lull.v1.stats.history`: the request and reply types,
//! parsing of `range`/`step` durations ("1h", "10s", "7d"; in `duration`,
//! re-exported here), the query plan
//! (aligned buckets, point limit, raw samples or 1-minute rollups), bucketing
//! of samples into avg/min/max points, and flattening of a JSON payload into
//! numeric fields. [`HistoryConfig`] lives in `config::history`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use lull_proto::error::ValidationError;
use lull_proto::validate::{self as v, Validate};

pub use super::config::HistoryConfig;
use super::duration::truncate;
pub use super::duration::{format_duration, parse_duration, DurationError, MAX_DURATION_SEC};

/// Most points a request may ask for, whatever the configuration.
pub const HARD_MAX_POINTS: f64 = 100_000.0;

/// A metric group of the history store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricGroup {
    /// Quiet score and state.
    Quiet,
    /// Host-wide figures.
    Host,
    /// Watched processes.
    Process,
    /// API statistics.
    Api,
    /// One addon (`addon:<id>`).
    Addon(String),
}

impl MetricGroup {
    /// Parses `quiet`, `host`, `process`, `api` or `addon:<id>`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "quiet" => Ok(MetricGroup::Quiet),
            "host" => Ok(MetricGroup::Host),
            "process" => Ok(MetricGroup::Process),
            "api" => Ok(MetricGroup::Api),
            _ => match s.strip_prefix("addon:") {
                Some(id) => {
                    v::subject_token("group addon id", id)?;
                    Ok(MetricGroup::Addon(id.to_string()))
                }
                None => Err(ValidationError::Invalid {
                    field: "group".into(),
                    reason: format!(
                        "must be quiet, host, process, api or addon:<id>, got {:?}",
                        truncate(s)
                    ),
                }),
            },
        }
    }
}

impl std::fmt::Display for MetricGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricGroup::Quiet => f.write_str("quiet"),
            MetricGroup::Host => f.write_str("host"),
            MetricGroup::Process => f.write_str("process"),
            MetricGroup::Api => f.write_str("api"),
            MetricGroup::Addon(id) => write!(f, "addon:{id}"),
        }
    }
}

/// `lull.v1.stats.history` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// Host id.
    pub host_id: String,
    /// `quiet`, `host`, `process`, `api` or `addon:<id>`.
    pub group: String,
    /// How far back ("1h", "24h", "7d"); the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Bucket width ("10s", "1m"); chosen from the range when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl Validate for HistoryRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("host_id", &self.host_id)?;
        MetricGroup::parse(&self.group)?;
        let range = match &self.range {
            Some(r) => Some(parse_duration(r).map_err(|e| e.into_validation("range"))?),
            None => None,
        };
        if let Some(s) = &self.step {
            let step = parse_duration(s).map_err(|e| e.into_validation("step"))?;
            if let Some(range) = range {
                if step > range {
                    return Err(ValidationError::Invalid {
                        field: "step".into(),
                        reason: format!("must not exceed range ({s} > {})", format_duration(range)),
                    });
                }
                if range / step > HARD_MAX_POINTS {
                    return Err(ValidationError::Invalid {
                        field: "step".into(),
                        reason: format!(
                            "gives too many points for range {}",
                            format_duration(range)
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// What to read and how to bucket it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPlan {
    /// Parsed group.
    pub group: MetricGroup,
    /// Start of the first bucket (aligned to a multiple of `step_sec`).
    pub start: f64,
    /// End of the range (`now`).
    pub end: f64,
    /// Range, seconds.
    pub range_sec: f64,
    /// Bucket width, seconds.
    pub step_sec: f64,
    /// Number of buckets.
    pub buckets: usize,
    /// Read the 1-minute rollups rather than raw samples (step at least the
    /// rollup step, or range older than the raw retention).
    pub use_rollups: bool,
}

/// Plans a (validated) request at `now` under the configured limits.
pub fn plan(
    req: &HistoryRequest,
    cfg: &HistoryConfig,
    now: f64,
) -> Result<HistoryPlan, ValidationError> {
    req.validate()?;
    let group = MetricGroup::parse(&req.group)?;
    let range_sec = match &req.range {
        Some(r) => parse_duration(r).map_err(|e| e.into_validation("range"))?,
        None => parse_duration(&cfg.default_range).map_err(|e| e.into_validation("range"))?,
    };
    if range_sec > cfg.max_range_sec {
        return Err(ValidationError::Invalid {
            field: "range".into(),
            reason: format!(
                "must be at most {}, got {}",
                format_duration(cfg.max_range_sec),
                format_duration(range_sec)
            ),
        });
    }
    let step_sec = match &req.step {
        Some(s) => parse_duration(s).map_err(|e| e.into_validation("step"))?,
        None => auto_step(range_sec, cfg),
    };
    if step_sec < cfg.min_step_sec {
        return Err(ValidationError::Invalid {
            field: "step".into(),
            reason: format!("must be at least {}", format_duration(cfg.min_step_sec)),
        });
    }
    if step_sec > range_sec {
        return Err(ValidationError::Invalid {
            field: "step".into(),
            reason: format!(
                "must not exceed range ({} > {})",
                format_duration(step_sec),
                format_duration(range_sec)
            ),
        });
    }
    let points = (range_sec / step_sec).ceil();
    if points > f64::from(cfg.max_points) {
        return Err(ValidationError::Invalid {
            field: "step".into(),
            reason: format!(
                "{} gives {points} points over {}, more than the limit of {}; use a larger step",
                format_duration(step_sec),
                format_duration(range_sec),
                cfg.max_points
            ),
        });
    }
    let start = ((now - range_sec) / step_sec).floor() * step_sec;
    let buckets = ((now - start) / step_sec).ceil().max(1.0) as usize;
    let use_rollups = step_sec >= cfg.rollup_step_sec || range_sec > cfg.raw_retention_sec;
    Ok(HistoryPlan {
        group,
        start,
        end: now,
        range_sec,
        step_sec,
        buckets,
        use_rollups,
    })
}

/// The smallest round step giving at most `target_points` points (and at
/// least `min_step_sec`).
pub fn auto_step(range_sec: f64, cfg: &HistoryConfig) -> f64 {
    const NICE: [f64; 21] = [
        1.0,
        2.0,
        5.0,
        10.0,
        15.0,
        30.0,
        60.0,
        120.0,
        300.0,
        600.0,
        900.0,
        1800.0,
        3600.0,
        7200.0,
        10_800.0,
        21_600.0,
        43_200.0,
        86_400.0,
        172_800.0,
        604_800.0,
        2_592_000.0,
    ];
    let target = f64::from(cfg.target_points.max(1));
    NICE.iter()
        .copied()
        .find(|s| *s >= cfg.min_step_sec && range_sec / s <= target)
        .unwrap_or(range_sec)
}

/// avg/min/max of one field in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agg {
    /// Mean.
    pub avg: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

/// One point of the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Unix seconds of the bucket's start.
    pub t: f64,
    /// Samples in the bucket.
    pub count: u32,
    /// Per-field aggregates (`quiet_score`, `cpu_pct`, `disks[/].used_pct`).
    pub values: BTreeMap<String, Agg>,
}

/// `lull.v1.stats.history` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryReply {
    /// Host id.
    pub host_id: String,
    /// Group queried.
    pub group: String,
    /// Range used ("1h").
    pub range: String,
    /// Step used ("10s").
    pub step: String,
    /// Start of the first bucket.
    pub start: f64,
    /// End of the range.
    pub end: f64,
    /// Non-empty buckets, oldest first.
    pub points: Vec<HistoryPoint>,
}

impl HistoryReply {
    /// A reply for `plan` with the given points.
    pub fn new(host_id: &str, plan: &HistoryPlan, points: Vec<HistoryPoint>) -> Self {
        HistoryReply {
            host_id: host_id.to_string(),
            group: plan.group.to_string(),
            range: format_duration(plan.range_sec),
            step: format_duration(plan.step_sec),
            start: plan.start,
            end: plan.end,
            points,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Acc {
    sum: f64,
    n: u32,
    min: f64,
    max: f64,
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    count: u32,
    fields: BTreeMap<String, Acc>,
}

/// Accumulates samples into the plan's buckets.
#[derive(Debug, Clone)]
pub struct Bucketer {
    start: f64,
    step: f64,
    buckets: Vec<Option<Bucket>>,
}

impl Bucketer {
    /// Empty buckets for `plan`.
    pub fn new(plan: &HistoryPlan) -> Self {
        Bucketer {
            start: plan.start,
            step: plan.step_sec,
            buckets: vec![None; plan.buckets],
        }
    }

    /// Adds one sample taken at `t`: each `(field, value)` pair goes into the
    /// field's aggregate. Samples outside the range and non-finite values
    /// are skipped.
    pub fn add<K: AsRef<str>>(&mut self, t: f64, fields: impl IntoIterator<Item = (K, f64)>) {
        if !t.is_finite() || t < self.start {
            return;
        }
        let i = ((t - self.start) / self.step).floor() as usize;
        let Some(slot) = self.buckets.get_mut(i) else {
            return;
        };
        let b = slot.get_or_insert_with(Bucket::default);
        b.count = b.count.saturating_add(1);
        for (k, v) in fields {
            if !v.is_finite() {
                continue;
            }
            match b.fields.get_mut(k.as_ref()) {
                Some(a) => {
                    a.sum += v;
                    a.n += 1;
                    a.min = a.min.min(v);
                    a.max = a.max.max(v);
                }
                None => {
                    b.fields.insert(
                        k.as_ref().to_string(),
                        Acc {
                            sum: v,
                            n: 1,
                            min: v,
                            max: v,
                        },
                    );
                }
            }
        }
    }

    /// The non-empty buckets as points, oldest first.
    pub fn finish(self) -> Vec<HistoryPoint> {
        let (start, step) = (self.start, self.step);
        self.buckets
            .into_iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let b = b?;
                Some(HistoryPoint {
                    t: start + i as f64 * step,
                    count: b.count,
                    values: b
                        .fields
                        .into_iter()
                        .map(|(k, a)| {
                            (
                                k,
                                Agg {
                                    avg: a.sum / f64::from(a.n),
                                    min: a.min,
                                    max: a.max,
                                },
                            )
                        })
                        .collect(),
                })
            })
            .collect()
    }
}

/// Flattens the numbers of a JSON payload into `(path, value)` pairs, at
/// most `max_fields`: objects by key (`host.cpu_pct` → `cpu_pct` at the top
/// level), arrays by the element's `mount`, `iface` or `name` when it has
/// one (`disks[/].used_pct`), else by index (`load_avg[0]`); booleans count
/// as 0/1; strings and nulls are skipped. Depth is limited to 8.
pub fn numeric_fields(value: &serde_json::Value, max_fields: usize) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut path = String::new();
    walk(value, &mut path, 0, max_fields, &mut out);
    out
}

fn walk(
    value: &serde_json::Value,
    path: &mut String,
    depth: usize,
    max: usize,
    out: &mut Vec<(String, f64)>,
) {
    use serde_json::Value;
    if out.len() >= max || depth > 8 {
        return;
    }
    let len = path.len();
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                if !path.is_empty() {
                    out.push((path.clone(), f));
                }
            }
        }
        Value::Bool(b) => {
            if !path.is_empty() {
                out.push((path.clone(), if *b { 1.0 } else { 0.0 }));
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(v, path, depth + 1, max, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let label = ["mount", "iface", "name"]
                    .iter()
                    .find_map(|k| v.get(k).and_then(Value::as_str));
                match label {
                    Some(l) => path.push_str(&format!("[{l}]")),
                    None => path.push_str(&format!("[{i}]")),
                }
                walk(v, path, depth + 1, max, out);
                path.truncate(len);
            }
        }
        Value::String(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(range: Option<&str>, step: Option<&str>) -> HistoryRequest {
        HistoryRequest {
            host_id: "web-1".into(),
            group: "quiet".into(),
            range: range.map(Into::into),
            step: step.map(Into::into),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(10.0));
        assert_eq!(parse_duration("1m"), Ok(60.0));
        assert_eq!(parse_duration("1h"), Ok(3600.0));
        assert_eq!(parse_duration("24h"), Ok(86_400.0));
        assert_eq!(parse_duration("7d"), Ok(604_800.0));
        assert_eq!(parse_duration("2w"), Ok(1_209_600.0));
        for bad in [
            "",
            "h",
            "10",
            "0s",
            "-1h",
            "1.5h",
            "1x",
            "1 h",
            "99999999999d",
            "1hh",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_duration("401d"),
            Err(DurationError::TooLong(_))
        ));
        assert_eq!(format_duration(300.0), "5m");
        assert_eq!(format_duration(90.0), "90s");
        assert_eq!(format_duration(86_400.0), "1d");
        assert_eq!(format_duration(7200.0), "2h");
    }

    #[test]
    fn groups() {
        assert_eq!(MetricGroup::parse("quiet").unwrap(), MetricGroup::Quiet);
        assert_eq!(
            MetricGroup::parse("addon:backup").unwrap(),
            MetricGroup::Addon("backup".into())
        );
        assert_eq!(MetricGroup::Addon("x".into()).to_string(), "addon:x");
        assert!(MetricGroup::parse("addon:").is_err());
        assert!(MetricGroup::parse("addon:a.b").is_err());
        let e = MetricGroup::parse("disk").unwrap_err().to_string();
        assert!(e.starts_with("group must be quiet"), "{e}");
    }

    #[test]
    fn request_validation() {
        let r: HistoryRequest = serde_json::from_str(
            r#"{"host_id":"web-1","group":"quiet","range":"1h","step":"10s"}"#,
        )
        .unwrap();
        assert!(r.validate().is_ok());
        assert!(serde_json::from_str::<HistoryRequest>(r#"{"host_id":"a"}"#).is_err());
        let mut r = req(Some("1h"), Some("2h"));
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must not exceed range"));
        r.step = Some("1s".into());
        r.range = Some("400d".into());
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("too many points"));
        r.range = Some("soon".into());
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("range must be a duration"));
        r.range = None;
        r.group = "nope".into();
        assert!(r.validate().is_err());
        r.group = "api".into();
        r.host_id = "a b".into();
        assert!(r.validate().is_err());
    }

    #[test]
    fn plan_limits_and_alignment() {
        let cfg = HistoryConfig::default();
        let now = 1_000_005.0;
        let p = plan(&req(Some("1h"), Some("10s")), &cfg, now).unwrap();
        assert_eq!(p.step_sec, 10.0);
        assert_eq!(p.start, 996_400.0, "aligned down to a multiple of the step");
        assert_eq!(p.buckets, 361);
        assert!(!p.use_rollups);

        let e = plan(&req(Some("24h"), Some("10s")), &cfg, now).unwrap_err();
        assert!(e.to_string().contains("8640 points"), "{e}");

        let p = plan(&req(Some("24h"), Some("1m")), &cfg, now).unwrap();
        assert!(p.use_rollups, "1-minute steps read rollups");
        let p = plan(&req(Some("30d"), Some("1h")), &cfg, now).unwrap();
        assert!(p.use_rollups);
        let e = plan(&req(Some("100d"), Some("1d")), &cfg, now).unwrap_err();
        assert!(
            e.to_string().starts_with("range must be at most 90d"),
            "{e}"
        );

        // Defaults: range 1h, step chosen for ≤ 360 points.
        let p = plan(&req(None, None), &cfg, now).unwrap();
        assert_eq!((p.range_sec, p.step_sec), (3600.0, 10.0));
        let p = plan(&req(Some("24h"), None), &cfg, now).unwrap();
        assert_eq!(p.step_sec, 300.0);
        let p = plan(&req(Some("7d"), None), &cfg, now).unwrap();
        assert_eq!(p.step_sec, 1800.0, "336 points");

        let small = HistoryConfig {
            min_step_sec: 5.0,
            ..Default::default()
        };
        assert!(plan(&req(Some("1h"), Some("2s")), &small, now).is_err());
    }

    #[test]
    fn bucketing_gives_avg_min_max() {
        let cfg = HistoryConfig::default();
        let p = plan(&req(Some("1m"), Some("10s")), &cfg, 1000.0).unwrap();
        assert_eq!(p.start, 940.0);
        let mut b = Bucketer::new(&p);
        b.add(940.0, [("quiet_score", 80.0)]);
        b.add(945.0, [("quiet_score", 90.0)]);
        b.add(949.9, [("quiet_score", 100.0), ("x", f64::NAN)]);
        b.add(975.0, [("quiet_score", 10.0)]);
        b.add(900.0, [("quiet_score", 0.0)]); // before the range
        b.add(5000.0, [("quiet_score", 0.0)]); // after it
        let pts = b.finish();
        assert_eq!(pts.len(), 2, "empty buckets are left out");
        assert_eq!(pts[0].t, 940.0);
        assert_eq!(pts[0].count, 3);
        assert_eq!(
            pts[0].values["quiet_score"],
            Agg {
                avg: 90.0,
                min: 80.0,
                max: 100.0
            }
        );
        assert!(!pts[0].values.contains_key("x"));
        assert_eq!(pts[1].t, 970.0);
        let reply = HistoryReply::new("web-1", &p, pts);
        let j = serde_json::to_value(&reply).unwrap();
        assert_eq!(j["step"], "10s");
        assert_eq!(j["range"], "1m");
        assert_eq!(j["points"][0]["values"]["quiet_score"]["avg"], 90.0);
    }

    #[test]
    fn payloads_flatten_to_numeric_fields() {
        let v = json!({
            "cpu_pct": 12.5,
            "load_avg": [1.0, 2.0, 3.0],
            "disks": [{"mount": "/", "used_pct": 40.0, "total_bytes": 10}],
            "pressure": null,
            "label": "x",
            "custom": {"ok": true, "n": {"deep": 1}}
        });
        let f: BTreeMap<String, f64> = numeric_fields(&v, 100).into_iter().collect();
        assert_eq!(f["cpu_pct"], 12.5);
        assert_eq!(f["load_avg[2]"], 3.0);
        assert_eq!(f["disks[/].used_pct"], 40.0);
        assert_eq!(f["custom.ok"], 1.0);
        assert_eq!(f["custom.n.deep"], 1.0);
        assert!(!f.contains_key("label") && !f.contains_key("pressure"));
        assert_eq!(numeric_fields(&v, 2).len(), 2);
    }
}
