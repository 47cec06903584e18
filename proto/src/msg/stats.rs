//! `SystemStatsSnapshot` (seed 002 §1.1): what an agent publishes on
//! `lull.stats.<host_id>`, and its validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::validate::{self as v, CheckTimes, TimeWindow, Validate};

/// Most disks, interfaces, processes, addons or errors in one snapshot.
pub const MAX_LIST: usize = 256;

/// One host's stats at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemStatsSnapshot {
    /// The host this snapshot describes; must equal the subject's token.
    pub host_id: String,
    /// Per-agent sequence number; a gap means lost snapshots.
    #[serde(deserialize_with = "crate::int::de")]
    pub seq: u64,
    /// Unix seconds when collected.
    pub collected_at: f64,
    /// The agent's publish interval, so the coordinator can judge staleness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_sec: Option<f64>,
    /// Host-wide figures.
    pub host: HostStats,
    /// Watched processes (the agent itself first).
    #[serde(default)]
    pub process: Vec<ProcessStats>,
    /// Request statistics of a local service, when configured.
    #[serde(default)]
    pub api: Option<ApiStats>,
    /// Addon stats keyed by addon id.
    #[serde(default)]
    pub addons: BTreeMap<String, AddonStatsSnapshot>,
    /// Collector errors of this tick.
    #[serde(default)]
    pub errors: Vec<CollectorError>,
}

/// Host-wide CPU, memory, disk, network and pressure figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    /// Total CPU use, percent of all cores (0..100).
    pub cpu_pct: f64,
    /// Logical CPU count.
    #[serde(deserialize_with = "crate::int::de")]
    pub cpu_count: u32,
    /// Load averages over 1, 5 and 15 minutes.
    pub load_avg: [f64; 3],
    /// Total memory in bytes.
    #[serde(deserialize_with = "crate::int::de")]
    pub mem_total_bytes: u64,
    /// Memory in use, percent (0..100).
    pub mem_used_pct: f64,
    /// Swap in use, percent (0..100; 0 without swap).
    pub swap_used_pct: f64,
    /// Real (non-pseudo) mounted filesystems.
    #[serde(default)]
    pub disks: Vec<DiskStats>,
    /// Network interfaces.
    #[serde(default)]
    pub net: Vec<NetStats>,
    /// Seconds since boot.
    #[serde(deserialize_with = "crate::int::de")]
    pub uptime_sec: u64,
    /// Unix seconds of the boot.
    pub boot_time: f64,
    /// Linux PSI averages, or `null` where PSI is off.
    #[serde(default)]
    pub pressure: Option<Pressure>,
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskStats {
    /// Mount point.
    pub mount: String,
    /// Size in bytes.
    #[serde(deserialize_with = "crate::int::de")]
    pub total_bytes: u64,
    /// Free bytes (available to unprivileged users).
    #[serde(deserialize_with = "crate::int::de")]
    pub free_bytes: u64,
    /// Used percent (0..100).
    pub used_pct: f64,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetStats {
    /// Interface name.
    pub iface: String,
    /// Bytes received since boot.
    #[serde(deserialize_with = "crate::int::de")]
    pub rx_bytes: u64,
    /// Bytes sent since boot.
    #[serde(deserialize_with = "crate::int::de")]
    pub tx_bytes: u64,
    /// Receive rate over the last tick, bytes per second.
    pub rx_bps: f64,
    /// Send rate over the last tick, bytes per second.
    pub tx_bps: f64,
}

/// Linux pressure stall information, percent of time stalled (0..100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    /// Some task stalled on CPU.
    pub cpu_some_avg10: f64,
    /// Some task stalled on memory.
    pub mem_some_avg10: f64,
    /// All tasks stalled on memory.
    pub mem_full_avg10: f64,
    /// Some task stalled on IO.
    pub io_some_avg10: f64,
    /// All tasks stalled on IO.
    pub io_full_avg10: f64,
}

/// One watched process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Process name (or the configured label).
    pub name: String,
    /// Process id.
    #[serde(deserialize_with = "crate::int::de")]
    pub pid: u32,
    /// Resident set size in bytes.
    #[serde(deserialize_with = "crate::int::de")]
    pub rss_bytes: u64,
    /// CPU use, percent of one core (may exceed 100 on many cores).
    pub cpu_pct: f64,
    /// Thread count.
    #[serde(deserialize_with = "crate::int::de")]
    pub threads: u32,
    /// Open file descriptors, when readable.
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub fds: Option<u32>,
}

/// Request statistics of a service on the host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ApiStats {
    /// Requests per second.
    pub rps: f64,
    /// Fraction of requests that failed (0..1).
    pub error_rate: f64,
    /// 95th percentile latency in milliseconds.
    pub p95_ms: f64,
}

/// Lifecycle state of an addon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AddonState {
    /// Declared but not enabled.
    Installed,
    /// Enabled but its process is not running.
    Enabled,
    /// Enabled and running.
    Running,
    /// Failed (missing runtime dir, failing process, ...).
    Error,
}

/// Health-check status of an addon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    /// The last check passed.
    Ok,
    /// The last check failed.
    Error,
    /// Not checked yet, or no check configured.
    Unknown,
}

/// Health-check result of an addon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddonHealth {
    /// Status of the last check.
    pub status: HealthStatus,
    /// Unix seconds of the last check.
    #[serde(default)]
    pub last_checked: Option<f64>,
    /// Unix seconds of the last passing check.
    #[serde(default)]
    pub last_ok: Option<f64>,
    /// Short error code of the last failure (`timeout`, `http_503`, `exit_1`).
    #[serde(default)]
    pub error_code: Option<String>,
    /// Error text of the last failure.
    #[serde(default)]
    pub error: Option<String>,
}

/// Stats of one addon (seed 002 §1.1 `AddonStatsSnapshot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddonStatsSnapshot {
    /// Lifecycle state.
    pub state: AddonState,
    /// Whether the addon is installed (its runtime dir exists).
    #[serde(default)]
    pub installed: bool,
    /// Whether the addon is enabled in config.
    #[serde(default)]
    pub enabled: bool,
    /// Whether its process is running.
    #[serde(default)]
    pub running: bool,
    /// Health-check result.
    #[serde(default)]
    pub health: Option<AddonHealth>,
    /// Size of the runtime directory in bytes (from a cached walk).
    #[serde(default, deserialize_with = "crate::int::opt")]
    pub runtime_dir_bytes: Option<u64>,
    /// Addon-provided stats (`<runtime_dir>/lull-stats.json`).
    #[serde(default)]
    pub custom: serde_json::Map<String, serde_json::Value>,
}

/// A collector's failure in one tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorError {
    /// Collector name.
    pub collector: String,
    /// What went wrong.
    pub error: String,
}

impl CheckTimes for SystemStatsSnapshot {
    fn check_times(&self, now: f64, window: &TimeWindow) -> Result<(), ValidationError> {
        v::time_in_window("collected_at", self.collected_at, now, window)
    }
}

impl Validate for SystemStatsSnapshot {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("host_id", &self.host_id)?;
        v::non_negative("collected_at", self.collected_at)?;
        v::range_opt("interval_sec", self.interval_sec, 0.1, 86_400.0)?;
        self.host.validate()?;
        v::max_items("process", self.process.len(), MAX_LIST)?;
        for (i, p) in self.process.iter().enumerate() {
            v::text(&format!("process[{i}].name"), &p.name, v::MAX_ID_LEN)?;
            v::non_negative(&format!("process[{i}].cpu_pct"), p.cpu_pct)?;
        }
        if let Some(api) = &self.api {
            v::non_negative("api.rps", api.rps)?;
            v::range("api.error_rate", api.error_rate, 0.0, 1.0)?;
            v::non_negative("api.p95_ms", api.p95_ms)?;
        }
        v::max_items("addons", self.addons.len(), MAX_LIST)?;
        for (id, a) in &self.addons {
            v::subject_token("addons key", id)?;
            if let Some(h) = &a.health {
                v::finite_opt(&format!("addons.{id}.health.last_checked"), h.last_checked)?;
                v::finite_opt(&format!("addons.{id}.health.last_ok"), h.last_ok)?;
                v::text_opt(
                    &format!("addons.{id}.health.error"),
                    h.error.as_deref(),
                    v::MAX_TEXT_LEN,
                )?;
            }
        }
        v::max_items("errors", self.errors.len(), MAX_LIST)?;
        for (i, e) in self.errors.iter().enumerate() {
            v::text(&format!("errors[{i}].error"), &e.error, v::MAX_TEXT_LEN)?;
        }
        Ok(())
    }
}

impl HostStats {
    fn validate(&self) -> Result<(), ValidationError> {
        v::pct("host.cpu_pct", self.cpu_pct)?;
        if self.cpu_count == 0 {
            return Err(ValidationError::OutOfRange {
                field: "host.cpu_count".into(),
                rule: ">= 1".into(),
                value: "0".into(),
            });
        }
        for (i, l) in self.load_avg.iter().enumerate() {
            v::non_negative(&format!("host.load_avg[{i}]"), *l)?;
        }
        v::pct("host.mem_used_pct", self.mem_used_pct)?;
        v::pct("host.swap_used_pct", self.swap_used_pct)?;
        v::non_negative("host.boot_time", self.boot_time)?;
        v::max_items("host.disks", self.disks.len(), MAX_LIST)?;
        for (i, d) in self.disks.iter().enumerate() {
            v::text(&format!("host.disks[{i}].mount"), &d.mount, v::MAX_TEXT_LEN)?;
            v::pct(&format!("host.disks[{i}].used_pct"), d.used_pct)?;
            if d.free_bytes > d.total_bytes {
                return Err(ValidationError::Invalid {
                    field: format!("host.disks[{i}].free_bytes"),
                    reason: format!(
                        "must not exceed total_bytes ({} > {})",
                        d.free_bytes, d.total_bytes
                    ),
                });
            }
        }
        v::max_items("host.net", self.net.len(), MAX_LIST)?;
        for (i, n) in self.net.iter().enumerate() {
            v::text(&format!("host.net[{i}].iface"), &n.iface, v::MAX_ID_LEN)?;
            v::non_negative(&format!("host.net[{i}].rx_bps"), n.rx_bps)?;
            v::non_negative(&format!("host.net[{i}].tx_bps"), n.tx_bps)?;
        }
        if let Some(p) = &self.pressure {
            v::pct("host.pressure.cpu_some_avg10", p.cpu_some_avg10)?;
            v::pct("host.pressure.mem_some_avg10", p.mem_some_avg10)?;
            v::pct("host.pressure.mem_full_avg10", p.mem_full_avg10)?;
            v::pct("host.pressure.io_some_avg10", p.io_some_avg10)?;
            v::pct("host.pressure.io_full_avg10", p.io_full_avg10)?;
        }
        Ok(())
    }

    /// Free percent of the fullest real disk, or `None` without disks.
    pub fn worst_disk_free_pct(&self) -> Option<f64> {
        self.disks
            .iter()
            .map(|d| 100.0 - d.used_pct)
            .min_by(|a, b| a.total_cmp(b))
    }

    /// Total network throughput (receive plus send) in bytes per second.
    pub fn net_bps(&self) -> f64 {
        self.net.iter().map(|n| n.rx_bps + n.tx_bps).sum()
    }
}

/// A small valid snapshot, for tests and examples.
pub fn example_snapshot(host_id: &str, seq: u64, collected_at: f64) -> SystemStatsSnapshot {
    SystemStatsSnapshot {
        host_id: host_id.to_string(),
        seq,
        collected_at,
        interval_sec: Some(2.0),
        host: HostStats {
            cpu_pct: 5.0,
            cpu_count: 4,
            load_avg: [0.1, 0.2, 0.3],
            mem_total_bytes: 8 << 30,
            mem_used_pct: 30.0,
            swap_used_pct: 0.0,
            disks: vec![DiskStats {
                mount: "/".into(),
                total_bytes: 100 << 30,
                free_bytes: 60 << 30,
                used_pct: 40.0,
            }],
            net: vec![NetStats {
                iface: "eth0".into(),
                rx_bytes: 1000,
                tx_bytes: 2000,
                rx_bps: 10.0,
                tx_bps: 20.0,
            }],
            uptime_sec: 1000,
            boot_time: (collected_at - 1000.0).max(0.0),
            pressure: None,
        },
        process: vec![],
        api: None,
        addons: BTreeMap::new(),
        errors: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_checked_against_the_window() {
        use crate::msg::region::{BuildRecord, FatigueEventReport};
        use crate::msg::worker::example_report;
        use crate::validate::{CheckTimes, TimeWindow};
        let now = 1_763_000_000.0;
        let w = TimeWindow {
            future_skew_sec: 300.0,
            max_age_sec: Some(400.0 * 86_400.0),
        };
        assert!(example_snapshot("h", 1, now).check_times(now, &w).is_ok());
        let e = example_snapshot("h", 1, 1e11)
            .check_times(now, &w)
            .unwrap_err();
        assert!(e.to_string().contains("collected_at"), "{e}");
        let fatigue: FatigueEventReport = serde_json::from_value(serde_json::json!({
            "event_id": "e1", "region": "r", "fatigue_reason": "x",
            "fatigue_time": 1e11, "fatigue_type": "FATIGUED"
        }))
        .unwrap();
        assert!(fatigue.check_times(now, &w).is_err());
        assert!(fatigue.check_times(1e11, &w).is_ok());
        let build: BuildRecord = serde_json::from_value(serde_json::json!({
            "timestamp": now - 1000.0 * 86_400.0, "build_id": "b1", "region": "r",
            "success": true, "duration_minutes": 5.0,
            "fatigues": [{"fatigue_reason": "x", "fatigue_time": now + 1e6}]
        }))
        .unwrap();
        let e = build.check_times(now, &w).unwrap_err();
        assert!(e.to_string().contains("timestamp"), "{e}");
        let e = build.check_times(now, &w.without_past()).unwrap_err();
        assert!(e.to_string().contains("fatigues[0].fatigue_time"), "{e}");
        let run = example_report("x1", "w", 1e11, 1000.0);
        assert!(run.check_times(now, &w).is_err());
        assert!(example_report("x1", "w", now - 60.0, 1000.0)
            .check_times(now, &w)
            .is_ok());
    }
    use crate::validate::{decode, DEFAULT_MAX_PAYLOAD};

    fn encode(s: &SystemStatsSnapshot) -> Vec<u8> {
        serde_json::to_vec(s).unwrap()
    }

    #[test]
    fn round_trip() {
        let mut s = example_snapshot("web-1", 7, 1_763_026_000.0);
        s.host.pressure = Some(Pressure {
            cpu_some_avg10: 1.0,
            mem_some_avg10: 0.0,
            mem_full_avg10: 0.0,
            io_some_avg10: 2.5,
            io_full_avg10: 0.5,
        });
        s.api = Some(ApiStats {
            rps: 12.0,
            error_rate: 0.01,
            p95_ms: 80.0,
        });
        let back: SystemStatsSnapshot = decode(&encode(&s), DEFAULT_MAX_PAYLOAD).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v = serde_json::to_value(example_snapshot("h", 1, 10.0)).unwrap();
        v["future_field"] = serde_json::json!({"x": 1});
        v["host"]["another"] = serde_json::json!(3);
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(decode::<SystemStatsSnapshot>(&bytes, DEFAULT_MAX_PAYLOAD).is_ok());
    }

    #[test]
    fn missing_and_wrong_typed_fields_are_rejected() {
        let mut v = serde_json::to_value(example_snapshot("h", 1, 10.0)).unwrap();
        v.as_object_mut().unwrap().remove("host");
        let err =
            decode::<SystemStatsSnapshot>(&serde_json::to_vec(&v).unwrap(), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("host"), "{err}");

        let mut v = serde_json::to_value(example_snapshot("h", 1, 10.0)).unwrap();
        v["seq"] = serde_json::json!("seven");
        assert!(matches!(
            decode::<SystemStatsSnapshot>(&serde_json::to_vec(&v).unwrap(), 1 << 20),
            Err(ValidationError::Json(_))
        ));

        let mut v = serde_json::to_value(example_snapshot("h", 1, 10.0)).unwrap();
        v["seq"] = serde_json::json!(-1);
        assert!(decode::<SystemStatsSnapshot>(&serde_json::to_vec(&v).unwrap(), 1 << 20).is_err());
    }

    #[test]
    fn integral_floats_are_taken_for_integer_fields() {
        // A Python agent writes whole numbers as floats.
        let mut v = serde_json::to_value(example_snapshot("h", 1, 10.0)).unwrap();
        v["seq"] = serde_json::json!(7.0);
        v["host"]["uptime_sec"] = serde_json::json!(86400.0);
        v["host"]["cpu_count"] = serde_json::json!(8.0);
        v["host"]["disks"][0]["total_bytes"] = serde_json::json!(1e12);
        v["host"]["disks"][0]["free_bytes"] = serde_json::json!(5e11);
        let s: SystemStatsSnapshot =
            decode(&serde_json::to_vec(&v).unwrap(), DEFAULT_MAX_PAYLOAD).unwrap();
        assert_eq!((s.seq, s.host.uptime_sec, s.host.cpu_count), (7, 86_400, 8));
        assert_eq!(s.host.disks[0].total_bytes, 1_000_000_000_000);
        // Written back as integers.
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(out["host"]["uptime_sec"], serde_json::json!(86400));
        for bad in [
            serde_json::json!(86400.5),
            serde_json::json!(-1.0),
            serde_json::json!("86400"),
        ] {
            v["host"]["uptime_sec"] = bad.clone();
            let e = decode::<SystemStatsSnapshot>(&serde_json::to_vec(&v).unwrap(), 1 << 20)
                .unwrap_err();
            assert_eq!(e.kind(), "bad_json", "{bad}: {e}");
        }
    }

    #[test]
    fn ranges_are_enforced() {
        let mut s = example_snapshot("h", 1, 10.0);
        s.host.cpu_pct = 140.0;
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "host.cpu_pct must be 0..100, got 140"
        );
        let mut s = example_snapshot("h", 1, 10.0);
        s.host.disks[0].used_pct = f64::NAN;
        assert!(matches!(
            s.validate(),
            Err(ValidationError::NotFinite { .. })
        ));
        let mut s = example_snapshot("h", 1, 10.0);
        s.host.cpu_count = 0;
        assert!(s.validate().is_err());
        let mut s = example_snapshot("h", 1, 10.0);
        s.host.disks[0].free_bytes = s.host.disks[0].total_bytes + 1;
        assert!(s.validate().is_err());
        let mut s = example_snapshot("h.x", 1, 10.0);
        assert!(s.validate().is_err());
        s.host_id = "ok".into();
        s.api = Some(ApiStats {
            rps: 1.0,
            error_rate: 1.5,
            p95_ms: 1.0,
        });
        assert!(s.validate().is_err());
    }

    #[test]
    fn oversized_payload_is_rejected() {
        let mut s = example_snapshot("h", 1, 10.0);
        s.errors = vec![
            CollectorError {
                collector: "x".into(),
                error: "e".repeat(4000),
            };
            100
        ];
        let bytes = encode(&s);
        assert!(matches!(
            decode::<SystemStatsSnapshot>(&bytes, DEFAULT_MAX_PAYLOAD),
            Err(ValidationError::TooLarge { .. })
        ));
    }

    #[test]
    fn derived_figures() {
        let s = example_snapshot("h", 1, 10.0);
        assert_eq!(s.host.worst_disk_free_pct(), Some(60.0));
        assert_eq!(s.host.net_bps(), 30.0);
    }
}
