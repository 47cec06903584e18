//! Rollup arithmetic (pure): per-step aggregates (count, avg, min, max) of
//! samples, packed one row per host (and group) per rollup chunk, and the
//! bucketing of such aggregates — mixed with raw samples — into the points
//! of a `lull.v1.stats.history` reply.
//!
//! A stored group rollup is a JSON array with one element per step that
//! had data: `{"i": <step index in the chunk>, "n": <samples>,
//! "f": {"<field>": [avg, min, max]}}`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use lull_engine::quiet::history::{Agg, HistoryPlan, HistoryPoint};

/// Running aggregate of one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acc {
    /// Samples.
    pub n: u64,
    /// Sum of the values (or of `avg × n` of merged aggregates).
    pub sum: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Acc {
    /// An aggregate of one value.
    pub fn one(v: f64) -> Self {
        Acc {
            n: 1,
            sum: v,
            min: v,
            max: v,
        }
    }

    /// An aggregate of `n` samples with the given avg/min/max.
    pub fn of(n: u64, avg: f64, min: f64, max: f64) -> Self {
        Acc {
            n,
            sum: avg * n as f64,
            min,
            max,
        }
    }

    /// Merges another aggregate in.
    pub fn merge(&mut self, o: &Acc) {
        self.n += o.n;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// The mean.
    pub fn avg(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }

    /// As avg/min/max.
    pub fn agg(&self) -> Agg {
        Agg {
            avg: self.avg(),
            min: self.min,
            max: self.max,
        }
    }
}

/// Per-step aggregates of one host's group within one chunk.
#[derive(Debug, Clone, Default)]
pub struct GroupChunk {
    steps: BTreeMap<u32, (u64, BTreeMap<String, Acc>)>,
}

impl GroupChunk {
    /// Adds a sample at `t` (chunk starting at `chunk_t`, steps of `step`).
    /// Samples outside the chunk are the caller's business; a negative
    /// offset is ignored.
    pub fn add(&mut self, chunk_t: f64, step: f64, t: f64, fields: &[(String, f64)]) {
        if t.is_nan() || t < chunk_t || step <= 0.0 {
            return;
        }
        let i = ((t - chunk_t) / step).floor() as u32;
        let (n, map) = self.steps.entry(i).or_default();
        *n += 1;
        for (k, v) in fields {
            if !v.is_finite() {
                continue;
            }
            match map.get_mut(k) {
                Some(a) => a.merge(&Acc::one(*v)),
                None => {
                    map.insert(k.clone(), Acc::one(*v));
                }
            }
        }
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The stored form (see the module doc).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.steps
                .iter()
                .map(|(i, (n, fields))| {
                    let f: serde_json::Map<String, Value> = fields
                        .iter()
                        .map(|(k, a)| (k.clone(), json!([round4(a.avg()), a.min, a.max])))
                        .collect();
                    json!({"i": i, "n": n, "f": f})
                })
                .collect(),
        )
    }
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// One step of a stored group rollup: its time, sample count and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStep {
    /// Unix seconds of the step's start.
    pub t: f64,
    /// Samples in the step.
    pub n: u64,
    /// Field aggregates.
    pub fields: Vec<(String, Acc)>,
}

/// Reads the stored form back; malformed elements are skipped.
pub fn parse_group_chunk(chunk_t: f64, step: f64, v: &Value) -> Vec<StoredStep> {
    let Some(items) = v.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|it| {
            let i = it.get("i")?.as_u64()?;
            let n = it.get("n")?.as_u64()?;
            let f = it.get("f")?.as_object()?;
            let fields = f
                .iter()
                .filter_map(|(k, a)| {
                    let a = a.as_array()?;
                    let g = |j: usize| a.get(j).and_then(Value::as_f64);
                    Some((k.clone(), Acc::of(n, g(0)?, g(1)?, g(2)?)))
                })
                .collect();
            Some(StoredStep {
                t: chunk_t + i as f64 * step,
                n,
                fields,
            })
        })
        .collect()
}

/// Buckets rows (raw samples or rollup aggregates) into a plan's points.
#[derive(Debug, Clone)]
pub struct AggBucketer {
    start: f64,
    end: f64,
    step: f64,
    buckets: Vec<Option<(u64, BTreeMap<String, Acc>)>>,
}

impl AggBucketer {
    /// Empty buckets for `plan`.
    pub fn new(plan: &HistoryPlan) -> Self {
        AggBucketer {
            start: plan.start,
            end: plan.end,
            step: plan.step_sec,
            buckets: vec![None; plan.buckets],
        }
    }

    /// Adds a row at `t` that stands for `n` samples. Rows outside the
    /// range and non-finite aggregates are skipped.
    pub fn add<'a>(&mut self, t: f64, n: u64, fields: impl IntoIterator<Item = (&'a str, Acc)>) {
        if !t.is_finite() || t < self.start || t > self.end || self.step <= 0.0 {
            return;
        }
        let i = ((t - self.start) / self.step).floor() as usize;
        let Some(slot) = self.buckets.get_mut(i) else {
            return;
        };
        let (count, map) = slot.get_or_insert_with(Default::default);
        *count += n;
        for (k, a) in fields {
            if !(a.sum.is_finite() && a.min.is_finite() && a.max.is_finite()) || a.n == 0 {
                continue;
            }
            match map.get_mut(k) {
                Some(x) => x.merge(&a),
                None => {
                    map.insert(k.to_string(), a);
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
                let (n, map) = b?;
                Some(HistoryPoint {
                    t: start + i as f64 * step,
                    count: u32::try_from(n).unwrap_or(u32::MAX),
                    values: map.into_iter().map(|(k, a)| (k, a.agg())).collect(),
                })
            })
            .collect()
    }
}

/// The chunk starts (multiples of `chunk`) that end at or before `cutoff`
/// and start at or after `from`, oldest first, at most `max`.
pub fn due_chunks(from: f64, cutoff: f64, chunk: f64, max: usize) -> Vec<f64> {
    if chunk.is_nan() || chunk <= 0.0 || !from.is_finite() || !cutoff.is_finite() {
        return Vec::new();
    }
    let mut t = (from / chunk).floor() * chunk;
    let mut out = Vec::new();
    while t + chunk <= cutoff && out.len() < max {
        out.push(t);
        t += chunk;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_engine::quiet::history::{plan, HistoryConfig, HistoryRequest};

    fn f(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn group_chunks_aggregate_per_step_and_round_trip() {
        let mut c = GroupChunk::default();
        c.add(
            3600.0,
            60.0,
            3600.0,
            &f(&[("cpu_pct", 10.0), ("x", f64::NAN)]),
        );
        c.add(3600.0, 60.0, 3630.0, &f(&[("cpu_pct", 30.0)]));
        c.add(3600.0, 60.0, 3725.0, &f(&[("cpu_pct", 50.0), ("mem", 1.0)]));
        c.add(3600.0, 60.0, 3500.0, &f(&[("cpu_pct", 99.0)])); // before the chunk
        let j = c.to_json();
        assert_eq!(j[0]["i"], 0);
        assert_eq!(j[0]["n"], 2);
        assert_eq!(j[0]["f"]["cpu_pct"], json!([20.0, 10.0, 30.0]));
        assert!(j[0]["f"].get("x").is_none());
        assert_eq!(j[1]["i"], 2);
        let steps = parse_group_chunk(3600.0, 60.0, &j);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].t, 3600.0);
        assert_eq!(steps[1].t, 3720.0);
        assert_eq!(steps[0].n, 2);
        let cpu = &steps[0]
            .fields
            .iter()
            .find(|(k, _)| k == "cpu_pct")
            .unwrap()
            .1;
        assert_eq!((cpu.n, cpu.avg(), cpu.min, cpu.max), (2, 20.0, 10.0, 30.0));
        assert!(parse_group_chunk(0.0, 60.0, &json!({"no": 1})).is_empty());
        assert_eq!(parse_group_chunk(0.0, 60.0, &json!([{"i": 1}, 5])).len(), 0);
    }

    #[test]
    fn bucketer_merges_aggregates_by_weight() {
        let req = HistoryRequest {
            host_id: "h".into(),
            group: "quiet".into(),
            range: Some("10m".into()),
            step: Some("5m".into()),
        };
        let p = plan(&req, &HistoryConfig::default(), 6000.0).unwrap();
        assert_eq!(p.start, 5400.0);
        let mut b = AggBucketer::new(&p);
        // Two minute aggregates and one raw sample in the first bucket.
        b.add(5400.0, 6, [("quiet_score", Acc::of(6, 80.0, 70.0, 90.0))]);
        b.add(5460.0, 2, [("quiet_score", Acc::of(2, 50.0, 40.0, 60.0))]);
        b.add(5500.0, 1, [("quiet_score", Acc::one(100.0))]);
        b.add(5800.0, 1, [("quiet_score", Acc::one(10.0))]);
        b.add(5399.0, 1, [("quiet_score", Acc::one(0.0))]); // before the range
        b.add(6001.0, 1, [("quiet_score", Acc::one(0.0))]); // after it
        b.add(5800.0, 1, [("bad", Acc::one(f64::NAN))]);
        let pts = b.finish();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].count, 9);
        let q = pts[0].values["quiet_score"];
        assert!((q.avg - (480.0 + 100.0 + 100.0) / 9.0).abs() < 1e-9);
        assert_eq!((q.min, q.max), (40.0, 100.0));
        assert_eq!(pts[1].t, 5700.0);
        assert_eq!(pts[1].count, 2);
        assert!(!pts[1].values.contains_key("bad"));
    }

    #[test]
    fn due_chunks_are_whole_and_bounded() {
        assert_eq!(
            due_chunks(3600.0, 3600.0 * 3.5, 3600.0, 10),
            vec![3600.0, 7200.0]
        );
        assert_eq!(due_chunks(3700.0, 7200.0, 3600.0, 10), vec![3600.0]);
        assert_eq!(due_chunks(0.0, 36_000.0, 3600.0, 3).len(), 3);
        assert!(due_chunks(0.0, 100.0, 0.0, 3).is_empty());
    }
}
