//! Assembling a `SystemStatsSnapshot` from the collectors' latest results
//! (pure: the board and the clock are passed in). A tick fails, and no
//! snapshot is produced, when there is no fresh host result or the result
//! does not pass the wire validation; every other collector is optional and
//! its problems become entries of `errors`.

use std::collections::BTreeMap;

use lull_proto::msg::stats::{CollectorError, HostStats, SystemStatsSnapshot, MAX_LIST};
use lull_proto::validate::{Validate, MAX_TEXT_LEN};
use lull_proto::ValidationError;

use crate::collect::Fresh;
use crate::runner::Slot;

/// Why a tick produced no snapshot. Displayed as `Kind: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TickError {
    /// The host collector has no fresh result.
    #[error("HostUnavailable: {0}")]
    HostUnavailable(String),
    /// The assembled snapshot broke a wire rule.
    #[error("InvalidSnapshot: {0}")]
    Invalid(#[from] ValidationError),
    /// It could not be encoded.
    #[error("EncodeError: {0}")]
    Encode(String),
    /// It is larger than the payload limit.
    #[error("PayloadTooLarge: {size} bytes > {limit}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// What the tick loop knows besides the board.
#[derive(Debug, Clone, PartialEq)]
pub struct TickInfo<'a> {
    /// This host.
    pub host_id: &'a str,
    /// Sequence number for this snapshot.
    pub seq: u64,
    /// Now, Unix seconds.
    pub now: f64,
    /// The tick interval, seconds.
    pub interval_sec: f64,
    /// Results older than this many intervals (plus timeout) are unused.
    pub stale_after_intervals: f64,
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The snapshot's `errors`: each collector whose last run failed, then the
/// warnings of each fresh result, at most [`MAX_LIST`].
pub fn collector_errors(
    board: &BTreeMap<&'static str, Slot>,
    now: f64,
    stale: f64,
) -> Vec<CollectorError> {
    let mut out = Vec::new();
    for (name, slot) in board {
        if slot.last_ok == Some(false) {
            let e = slot.last_error.as_deref().unwrap_or("failed");
            let e = if slot.latest.is_some() && slot.fresh(now, stale).is_none() {
                format!("{e} (latest result is stale)")
            } else {
                e.to_string()
            };
            out.push(CollectorError {
                collector: name.to_string(),
                error: truncate(&e, MAX_TEXT_LEN),
            });
        }
        if slot.fresh(now, stale).is_some() {
            for w in &slot.warnings {
                out.push(CollectorError {
                    collector: name.to_string(),
                    error: truncate(w, MAX_TEXT_LEN),
                });
            }
        }
    }
    out.truncate(MAX_LIST);
    out
}

/// The host block before the collectors' parts are written into it.
fn empty_host() -> HostStats {
    HostStats {
        cpu_pct: 0.0,
        cpu_count: 0,
        load_avg: [0.0; 3],
        mem_total_bytes: 0,
        mem_used_pct: 0.0,
        swap_used_pct: 0.0,
        disks: Vec::new(),
        net: Vec::new(),
        uptime_sec: 0,
        boot_time: 0.0,
        pressure: None,
    }
}

/// Builds and validates the snapshot of one tick: the host collector must
/// have a fresh result; every fresh output then fills its own share.
pub fn assemble(
    info: &TickInfo<'_>,
    board: &BTreeMap<&'static str, Slot>,
) -> Result<SystemStatsSnapshot, TickError> {
    let now = info.now;
    let stale = info.stale_after_intervals;
    let fresh = |name: &str| board.get(name).and_then(|s| s.fresh(now, stale));
    if fresh("host").is_none() {
        let why = board
            .get("host")
            .and_then(|s| s.last_error.clone())
            .unwrap_or_else(|| "no result yet".into());
        return Err(TickError::HostUnavailable(format!(
            "host collector has no fresh result ({why})"
        )));
    }
    let outputs: Fresh<'_> = board
        .iter()
        .filter_map(|(name, s)| Some((*name, s.fresh(now, stale)?)))
        .collect();
    let mut snap = SystemStatsSnapshot {
        host_id: info.host_id.to_string(),
        seq: info.seq,
        collected_at: now,
        interval_sec: Some(info.interval_sec),
        host: empty_host(),
        process: Vec::new(),
        api: None,
        addons: BTreeMap::new(),
        errors: collector_errors(board, now, stale),
    };
    // Each fresh output writes its own share.
    for out in outputs.values() {
        out.fill(&mut snap, &outputs);
    }
    snap.validate()?;
    Ok(snap)
}

/// Encodes a snapshot, enforcing the payload limit.
pub fn encode(snap: &SystemStatsSnapshot, limit: usize) -> Result<Vec<u8>, TickError> {
    let bytes = serde_json::to_vec(snap).map_err(|e| TickError::Encode(e.to_string()))?;
    if bytes.len() > limit {
        return Err(TickError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::addons::{AddonFacts, DirsPart, FactsPart};
    use crate::collect::host::HostPart;
    use crate::collect::pressure::PressurePart;
    use crate::collect::process::ProcessesPart;
    use crate::collect::{CollectError, Collected, Output};
    use crate::schedule::Schedule;
    use lull_proto::msg::stats::{example_snapshot, AddonState, Pressure};

    fn sched(i: f64) -> Schedule {
        Schedule {
            enabled: true,
            interval_sec: i,
            jitter_sec: 0.0,
            timeout_sec: 1.0,
        }
    }

    fn info(now: f64) -> TickInfo<'static> {
        TickInfo {
            host_id: "web-1",
            seq: 7,
            now,
            interval_sec: 2.0,
            stale_after_intervals: 3.0,
        }
    }

    fn board_with_host(at: f64) -> BTreeMap<&'static str, Slot> {
        let mut b = BTreeMap::new();
        let mut host = Slot::new(&sched(2.0));
        host.record(
            Ok(Collected::ok(Output::new(HostPart(
                example_snapshot("x", 1, at).host,
            )))),
            1.0,
            at,
        );
        b.insert("host", host);
        b
    }

    #[test]
    fn assembles_from_latest_results() {
        let mut b = board_with_host(100.0);
        let mut p = Slot::new(&sched(2.0));
        let pr = Pressure {
            cpu_some_avg10: 1.0,
            mem_some_avg10: 0.0,
            mem_full_avg10: 0.0,
            io_some_avg10: 2.0,
            io_full_avg10: 1.0,
        };
        p.record(
            Ok(Collected::ok(Output::new(PressurePart(Some(pr))))),
            1.0,
            100.0,
        );
        b.insert("pressure", p);
        let mut a = Slot::new(&sched(15.0));
        a.record(
            Ok(Collected {
                output: Output::new(FactsPart(BTreeMap::from([(
                    "tx".to_string(),
                    AddonFacts {
                        installed: true,
                        enabled: true,
                        running: Some(true),
                        custom: Default::default(),
                    },
                )]))),
                warnings: vec!["addon tx: lull-stats.json is not a JSON object".into()],
            }),
            1.0,
            95.0,
        );
        b.insert("addons", a);
        let mut d = Slot::new(&sched(120.0));
        d.record(
            Ok(Collected::ok(Output::new(DirsPart(BTreeMap::from([(
                "tx".to_string(),
                4096,
            )]))))),
            1.0,
            20.0,
        );
        b.insert("addon_dirs", d);
        let mut api = Slot::new(&sched(5.0));
        api.record(Err(CollectError::Io("refused".into())), 1.0, 99.0);
        b.insert("api", api);

        let s = assemble(&info(101.0), &b).unwrap();
        assert_eq!(
            (s.host_id.as_str(), s.seq, s.interval_sec),
            ("web-1", 7, Some(2.0))
        );
        assert_eq!(s.collected_at, 101.0);
        assert_eq!(s.host.pressure, Some(pr));
        assert_eq!(s.addons["tx"].state, AddonState::Running);
        assert_eq!(s.addons["tx"].runtime_dir_bytes, Some(4096));
        assert!(s.api.is_none());
        let errs: Vec<(&str, &str)> = s
            .errors
            .iter()
            .map(|e| (e.collector.as_str(), e.error.as_str()))
            .collect();
        assert_eq!(
            errs,
            vec![
                ("addons", "addon tx: lull-stats.json is not a JSON object"),
                ("api", "Io: refused"),
            ]
        );
    }

    #[test]
    fn stale_host_fails_the_tick() {
        let mut b = board_with_host(100.0);
        // 3 intervals of 2 s plus 1 s timeout = 7 s
        assert!(assemble(&info(106.5), &b).is_ok());
        b.get_mut("host")
            .unwrap()
            .record(Err(CollectError::Timeout(1.0)), 1000.0, 106.0);
        let e = assemble(&info(108.0), &b).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("HostUnavailable: host collector has no fresh result (Timeout"),
            "{e}"
        );
        let e = assemble(&info(1.0), &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("no result yet"), "{e}");
    }

    #[test]
    fn stale_optional_results_are_left_out() {
        let mut b = board_with_host(100.0);
        let mut p = Slot::new(&sched(5.0));
        p.record(
            Ok(Collected::ok(Output::new(ProcessesPart(vec![])))),
            1.0,
            50.0,
        );
        p.record(Err(CollectError::Busy), 1.0, 99.0);
        b.insert("process", p);
        let s = assemble(&info(101.0), &b).unwrap();
        assert_eq!(s.errors.len(), 1);
        assert_eq!(
            s.errors[0].error,
            "Busy: previous run still in progress (latest result is stale)"
        );
    }

    #[test]
    fn invalid_snapshots_and_size() {
        let mut b = board_with_host(100.0);
        if let Some((_, out)) = &mut b.get_mut("host").unwrap().latest {
            let mut h = out.get::<HostPart>().unwrap().0.clone();
            h.cpu_count = 0;
            *out = Output::new(HostPart(h));
        }
        assert!(matches!(
            assemble(&info(100.0), &b),
            Err(TickError::Invalid(_))
        ));
        let s = example_snapshot("h", 1, 1.0);
        assert!(encode(&s, 1 << 20).is_ok());
        assert!(matches!(encode(&s, 10), Err(TickError::TooLarge { .. })));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        let t = truncate(&"é".repeat(10), 8);
        assert!(t.len() <= 8 && t.ends_with("..."), "{t}");
    }
}
