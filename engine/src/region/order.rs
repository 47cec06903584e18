//! The total order of a region's history ([`OrderKey`]: time, then id,
//! then index) and the fatigue marks ordered by it ([`FatigueMark`]).

use std::cmp::Ordering;

use lull_proto::msg::region::{BuildFatigue, BuildRecord, FatigueEventReport, FatigueType};
use serde::{Deserialize, Serialize};

use super::persist;

/// Total order of a region's history: time, then id, then index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderKey {
    /// Unix seconds (`-inf` for imported facts without a time).
    #[serde(with = "persist::key_time")]
    pub time: f64,
    /// Source id (`build_id`; `b:<build_id>` / `e:<event_id>` for fatigues;
    /// empty for imported facts, which sort before real records of the same time).
    pub id: String,
    /// Position inside the source.
    pub index: u32,
}

impl OrderKey {
    /// A key.
    pub fn new(time: f64, id: &str, index: u32) -> Self {
        OrderKey {
            time,
            id: id.to_string(),
            index,
        }
    }

    /// Key of a build record.
    pub fn of_build(b: &BuildRecord) -> Self {
        OrderKey::new(b.timestamp, &b.build_id, 0)
    }

    /// Key of a bare fatigue event.
    pub fn of_event(e: &FatigueEventReport) -> Self {
        OrderKey::new(e.fatigue_time, &format!("e:{}", e.event_id), 0)
    }

    pub(crate) fn of_build_fatigue(b: &BuildRecord, i: usize, f: &BuildFatigue) -> Self {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        OrderKey::new(f.fatigue_time, &format!("b:{}", b.build_id), index)
    }

    pub(crate) fn imported(time: Option<f64>, index: u32) -> Self {
        OrderKey::new(time.unwrap_or(f64::NEG_INFINITY), "", index)
    }

    pub(crate) fn real_time(&self) -> Option<f64> {
        self.time.is_finite().then_some(self.time)
    }
}

impl PartialEq for OrderKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for OrderKey {}

impl PartialOrd for OrderKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.time
            .total_cmp(&other.time)
            .then_with(|| self.id.cmp(&other.id))
            .then(self.index.cmp(&other.index))
    }
}

/// One fatigue of a region, from a build (scenario 1) or a bare event
/// (scenario 2): the input of the fatigue state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FatigueMark {
    /// Order key; its time is `fatigue_time`.
    pub key: OrderKey,
    /// Reported type.
    pub fatigue_type: FatigueType,
    /// Reported duration, hours (`None`: the type's default).
    pub duration_hours: Option<f64>,
    /// Reason.
    pub reason: String,
    /// Reason code.
    pub reason_code: Option<String>,
}

impl FatigueMark {
    /// `fatigue_time`.
    pub fn time(&self) -> f64 {
        self.key.time
    }

    pub(crate) fn new(key: OrderKey, f: &BuildFatigue) -> Self {
        FatigueMark {
            key,
            fatigue_type: f.fatigue_type,
            duration_hours: f.fatigue_duration_hours,
            reason: f.fatigue_reason.clone(),
            reason_code: f.fatigue_reason_code.clone(),
        }
    }
}
