//! Addon collector family. Owns the `[addon]` and `[[addons]]` config
//! sections and the snapshot's `addons` map. The addons are the ones
//! declared in config; three collectors with their own cadences look
//! after them:
//! - `addons` (fast): installed (runtime dir exists), enabled (config),
//!   running (pidfile or process name, pids cached like the process
//!   collector) and the `custom` dict from `<runtime_dir>/lull-stats.json`;
//! - `addon_health`: the health check (HTTP URL, 2xx = OK, or a command,
//!   exit 0 = OK) with its own timeout, keeping `last_ok` across runs;
//! - `addon_dirs` (slow): runtime-dir size from a walk with a time and
//!   entry budget, staying on one file system; a walk that runs out keeps
//!   the previous size.
//!
//! [`addon_snapshot`] (pure) merges the three into `AddonStatsSnapshot`
//! and derives the lifecycle state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lull_proto::msg::stats::{
    AddonHealth, AddonState, AddonStatsSnapshot, HealthStatus, SystemStatsSnapshot, MAX_LIST,
};
use lull_proto::validate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::process::{find_by_name, parse_pidfile, read_pid};
use super::{
    blocking, process, same_part, CollectError, CollectFuture, Collected, Collector, Ctx, Family,
    Fresh, Output, Part,
};
use crate::http;
use crate::schedule::{secs, Schedule};

pub mod config;
pub mod dirs;
pub mod health;

pub use config::{AddonConfig, AddonSettings};
pub use dirs::{AddonDirsCollector, DirsPart};
pub use health::{AddonHealthCollector, HealthPart};

/// The addon family's config sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Addon collector settings.
    pub addon: AddonSettings,
    /// Declared addons (`[[addons]]` tables).
    pub addons: Vec<AddonConfig>,
}

/// The addon family: `addons`, `addon_health` and `addon_dirs`.
pub struct Addons;

impl Family for Addons {
    type Settings = Settings;
    /// Lifecycle and `custom`: every 15 s, jitter 1.5 s, timeout 5 s.
    /// Health checks: every 30 s, jitter 3 s, timeout 15 s. Runtime-dir
    /// sizes: every 120 s, jitter 10 s, timeout 30 s.
    const SCHEDULES: &'static [(&'static str, Schedule)] = &[
        ("addons", Schedule::new(15.0, 1.5, 5.0)),
        ("addon_health", Schedule::new(30.0, 3.0, 15.0)),
        ("addon_dirs", Schedule::new(120.0, 10.0, 30.0)),
    ];

    fn check(s: &Settings) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for a in &s.addons {
            validate::subject_token("addons.id", &a.id).map_err(|e| e.to_string())?;
            if !seen.insert(a.id.as_str()) {
                return Err(format!("addon {} declared twice", a.id));
            }
            if a.health_url.is_some() && a.health_command.is_some() {
                return Err(format!(
                    "addon {}: set health_url or health_command, not both",
                    a.id
                ));
            }
            if let Some(u) = &a.health_url {
                http::Url::parse(u).map_err(|e| format!("addon {}: health_url: {e}", a.id))?;
            }
            if matches!(&a.health_command, Some(c) if c.is_empty()) {
                return Err(format!("addon {}: health_command is empty", a.id));
            }
        }
        Ok(())
    }

    fn build(s: &Settings, ctx: &Ctx<'_>) -> Vec<Box<dyn Collector>> {
        let mut out: Vec<Box<dyn Collector>> = Vec::new();
        if s.addons.is_empty() {
            return out;
        }
        let resolve = ctx
            .section::<process::Settings>()
            .map(|p| p.process.resolve_interval_sec)
            .unwrap_or_else(|| process::ProcessConfig::default().resolve_interval_sec);
        out.push(Box::new(AddonsCollector::new(
            s.addons.clone(),
            s.addon.clone(),
            resolve,
        )));
        let checks = s
            .addons
            .iter()
            .any(|a| a.enabled && (a.health_url.is_some() || a.health_command.is_some()));
        if checks {
            out.push(Box::new(AddonHealthCollector::new(
                s.addons.clone(),
                &s.addon,
            )));
        }
        if s.addons.iter().any(|a| a.runtime_dir.is_some()) {
            out.push(Box::new(AddonDirsCollector::new(&s.addons, &s.addon)));
        }
        out
    }
}

/// The `addons` collector's output: lifecycle facts and custom stats by
/// addon id. It fills the snapshot's `addons`, merging the fresh
/// [`HealthPart`] and [`DirsPart`].
#[derive(Debug, Clone, PartialEq)]
pub struct FactsPart(pub BTreeMap<String, AddonFacts>);

impl Part for FactsPart {
    fn fill(&self, snap: &mut SystemStatsSnapshot, fresh: &Fresh<'_>) {
        let health = fresh
            .get("addon_health")
            .and_then(|o| o.get::<HealthPart>());
        let dirs = fresh.get("addon_dirs").and_then(|o| o.get::<DirsPart>());
        for (id, f) in self.0.iter().take(MAX_LIST) {
            snap.addons.insert(
                id.clone(),
                addon_snapshot(
                    f,
                    health.and_then(|h| h.0.get(id)),
                    dirs.and_then(|d| d.0.get(id).copied()),
                ),
            );
        }
    }

    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
    }
}

/// Name of the file an addon writes its own stats to, in its runtime dir.
pub const CUSTOM_FILE: &str = "lull-stats.json";

/// What the fast `addons` collector learns about one addon.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AddonFacts {
    /// The runtime dir exists (true when none is declared).
    pub installed: bool,
    /// Enabled in config.
    pub enabled: bool,
    /// Its process is alive; `None` when no pidfile or process is declared.
    pub running: Option<bool>,
    /// Addon-provided stats.
    pub custom: Map<String, Value>,
}

/// The lifecycle state and the `running` flag from the facts and the last
/// health check:
/// - not enabled: `INSTALLED`;
/// - enabled but the runtime dir is missing: `ERROR`;
/// - its declared process is not alive: `ENABLED`;
/// - the health check fails: `ERROR`;
/// - alive, or healthy when no process is declared: `RUNNING`;
/// - nothing known beyond enabled: `ENABLED`.
pub fn lifecycle(facts: &AddonFacts, health: Option<HealthStatus>) -> (AddonState, bool) {
    let healthy = health == Some(HealthStatus::Ok);
    let running = facts.running.unwrap_or(healthy);
    let state = if !facts.enabled {
        AddonState::Installed
    } else if !facts.installed {
        AddonState::Error
    } else if facts.running == Some(false) {
        AddonState::Enabled
    } else if health == Some(HealthStatus::Error) {
        AddonState::Error
    } else if running {
        AddonState::Running
    } else {
        AddonState::Enabled
    };
    (state, running)
}

/// Merges the three collectors' results for one addon.
pub fn addon_snapshot(
    facts: &AddonFacts,
    health: Option<&AddonHealth>,
    dir_bytes: Option<u64>,
) -> AddonStatsSnapshot {
    let (state, running) = lifecycle(facts, health.map(|h| h.status));
    AddonStatsSnapshot {
        state,
        installed: facts.installed,
        enabled: facts.enabled,
        running,
        health: health.cloned(),
        runtime_dir_bytes: dir_bytes,
        custom: facts.custom.clone(),
    }
}

/// Parses `lull-stats.json`: a JSON object of at most `max_bytes`.
pub fn parse_custom(bytes: &[u8], max_bytes: u64) -> Result<Map<String, Value>, String> {
    if bytes.len() as u64 > max_bytes {
        return Err(format!("{CUSTOM_FILE} is larger than {max_bytes} bytes"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{CUSTOM_FILE} is not a JSON object")),
        Err(e) => Err(format!("{CUSTOM_FILE}: {e}")),
    }
}

// ---------------------------------------------------------------- addons

struct Tracked {
    pid: u32,
    starttime: u64,
}

struct FactsState {
    addons: Vec<AddonConfig>,
    settings: AddonSettings,
    resolve_every: Duration,
    by_name: BTreeMap<String, (Option<Tracked>, Option<Instant>)>,
}

fn pid_alive(pid: u32) -> Option<Tracked> {
    read_pid(pid).map(|s| Tracked {
        pid,
        starttime: s.starttime,
    })
}

impl FactsState {
    fn running(&mut self, a: &AddonConfig, warnings: &mut Vec<String>) -> Option<bool> {
        if let Some(path) = &a.pidfile {
            return Some(match std::fs::read_to_string(path) {
                Ok(t) => parse_pidfile(&t).and_then(pid_alive).is_some(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    warnings.push(format!("addon {}: {}: {e}", a.id, path.display()));
                    false
                }
            });
        }
        let name = a.process.as_ref()?;
        let now = Instant::now();
        let entry = self.by_name.entry(a.id.clone()).or_insert((None, None));
        // A cached pid is re-checked cheaply; /proc is only scanned when it
        // has gone and the resolve interval has passed.
        if let Some(t) = &entry.0 {
            if read_pid(t.pid).is_some_and(|s| s.starttime == t.starttime) {
                return Some(true);
            }
            entry.0 = None;
            entry.1 = None;
        }
        if entry
            .1
            .is_none_or(|at| now.duration_since(at) >= self.resolve_every)
        {
            entry.1 = Some(now);
            entry.0 = find_by_name(name, 1).first().and_then(|p| pid_alive(*p));
        }
        Some(entry.0.is_some())
    }

    fn run(&mut self) -> Result<Collected, CollectError> {
        let mut out = BTreeMap::new();
        let mut warnings = Vec::new();
        for a in self.addons.clone() {
            let installed = a.runtime_dir.as_ref().is_none_or(|d| d.is_dir());
            let running = if a.enabled {
                self.running(&a, &mut warnings)
            } else {
                None
            };
            let mut custom = Map::new();
            if let Some(dir) = &a.runtime_dir {
                match read_custom(&dir.join(CUSTOM_FILE), self.settings.custom_max_bytes) {
                    Ok(Some(m)) => custom = m,
                    Ok(None) => {}
                    Err(e) => warnings.push(format!("addon {}: {e}", a.id)),
                }
            }
            out.insert(
                a.id.clone(),
                AddonFacts {
                    installed,
                    enabled: a.enabled,
                    running,
                    custom,
                },
            );
        }
        Ok(Collected {
            output: Output::new(FactsPart(out)),
            warnings,
        })
    }
}

fn read_custom(path: &Path, max: u64) -> Result<Option<Map<String, Value>>, String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
        Ok(m) if m.len() > max => return Err(format!("{CUSTOM_FILE} is larger than {max} bytes")),
        Ok(_) => {}
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_custom(&bytes, max).map(Some)
}

/// The `addons` collector (lifecycle facts and custom stats).
pub struct AddonsCollector {
    state: Arc<Mutex<FactsState>>,
}

impl AddonsCollector {
    /// Looks after `addons`; process names are re-resolved at most every
    /// `resolve_interval_sec`.
    pub fn new(
        addons: Vec<AddonConfig>,
        settings: AddonSettings,
        resolve_interval_sec: f64,
    ) -> Self {
        AddonsCollector {
            state: Arc::new(Mutex::new(FactsState {
                addons,
                settings,
                resolve_every: secs(resolve_interval_sec),
                by_name: BTreeMap::new(),
            })),
        }
    }
}

impl Collector for AddonsCollector {
    fn name(&self) -> &'static str {
        "addons"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        blocking(&self.state, FactsState::run)
    }
}

#[cfg(test)]
mod tests {
    use super::dirs::{walk, Walk};
    use super::health::{apply_check, http_result};
    use super::*;

    fn facts(enabled: bool, installed: bool, running: Option<bool>) -> AddonFacts {
        AddonFacts {
            installed,
            enabled,
            running,
            custom: Map::new(),
        }
    }

    #[test]
    fn lifecycle_states() {
        use AddonState::*;
        use HealthStatus as H;
        assert_eq!(
            lifecycle(&facts(false, true, None), Some(H::Ok)).0,
            Installed
        );
        assert_eq!(lifecycle(&facts(true, false, Some(true)), None).0, Error);
        assert_eq!(
            lifecycle(&facts(true, true, Some(false)), Some(H::Ok)),
            (Enabled, false)
        );
        assert_eq!(
            lifecycle(&facts(true, true, Some(true)), Some(H::Error)),
            (Error, true)
        );
        assert_eq!(
            lifecycle(&facts(true, true, Some(true)), None),
            (Running, true)
        );
        assert_eq!(
            lifecycle(&facts(true, true, None), Some(H::Ok)),
            (Running, true)
        );
        assert_eq!(lifecycle(&facts(true, true, None), None), (Enabled, false));
        assert_eq!(
            lifecycle(&facts(true, true, None), Some(H::Unknown)),
            (Enabled, false)
        );
    }

    #[test]
    fn health_keeps_last_ok() {
        let ok = apply_check(None, Ok(()), 100.0);
        assert_eq!((ok.status, ok.last_ok), (HealthStatus::Ok, Some(100.0)));
        let bad = apply_check(ok.last_ok, Err(("http_503".into(), "x".into())), 130.0);
        assert_eq!(bad.status, HealthStatus::Error);
        assert_eq!(bad.last_checked, Some(130.0));
        assert_eq!(bad.last_ok, Some(100.0));
        assert_eq!(bad.error_code.as_deref(), Some("http_503"));
        assert!(http_result(204).is_ok());
        assert_eq!(http_result(503).unwrap_err().0, "http_503");
    }

    #[test]
    fn custom_stats() {
        assert_eq!(parse_custom(br#"{"jobs": 3}"#, 100).unwrap()["jobs"], 3);
        assert!(parse_custom(b"[1]", 100).is_err());
        assert!(parse_custom(b"{", 100).is_err());
        assert!(parse_custom(br#"{"a": 1}"#, 3).is_err());
    }

    #[test]
    fn walk_sizes_and_budget() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a"), vec![1u8; 100_000]).unwrap();
        std::fs::write(d.path().join("b"), vec![1u8; 10_000]).unwrap();
        let Walk::Done(n) = walk(d.path(), Duration::from_secs(5), 1000).unwrap() else {
            panic!("walk did not finish")
        };
        assert!(n >= 110_000, "{n}");
        assert!(matches!(
            walk(d.path(), Duration::from_secs(5), 2).unwrap(),
            Walk::OutOfBudget(_)
        ));
        assert!(walk(&d.path().join("missing"), Duration::from_secs(1), 10).is_err());
    }

    #[tokio::test]
    async fn health_checks_by_command_and_url() {
        let addons = vec![
            AddonConfig {
                id: "good".into(),
                health_command: Some(vec!["true".into()]),
                ..Default::default()
            },
            AddonConfig {
                id: "bad".into(),
                health_command: Some(vec!["sh".into(), "-c".into(), "exit 3".into()]),
                ..Default::default()
            },
            AddonConfig {
                id: "slow".into(),
                health_command: Some(vec!["sleep".into(), "5".into()]),
                health_timeout_sec: 0.2,
                ..Default::default()
            },
            AddonConfig {
                id: "refused".into(),
                health_url: Some("http://127.0.0.1:1/health".into()),
                ..Default::default()
            },
            AddonConfig {
                id: "nocheck".into(),
                ..Default::default()
            },
        ];
        let mut c = AddonHealthCollector::new(addons, &AddonSettings::default());
        let started = Instant::now();
        let Some(HealthPart(h)) = c.collect().await.unwrap().output.get().cloned() else {
            panic!("not health")
        };
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(h["good"].status, HealthStatus::Ok);
        assert_eq!(h["bad"].error_code.as_deref(), Some("exit_3"));
        assert_eq!(h["slow"].error_code.as_deref(), Some("timeout"));
        assert_eq!(h["refused"].error_code.as_deref(), Some("connect_error"));
        assert!(!h.contains_key("nocheck"));
    }

    #[tokio::test]
    async fn facts_from_dirs_pidfiles_and_custom() {
        let d = tempfile::tempdir().unwrap();
        let rt = d.path().join("rt");
        std::fs::create_dir(&rt).unwrap();
        std::fs::write(rt.join(CUSTOM_FILE), br#"{"queue": 7}"#).unwrap();
        let pidfile = d.path().join("a.pid");
        std::fs::write(&pidfile, std::process::id().to_string()).unwrap();
        let addons = vec![
            AddonConfig {
                id: "a".into(),
                runtime_dir: Some(rt.clone()),
                pidfile: Some(pidfile),
                ..Default::default()
            },
            AddonConfig {
                id: "missing".into(),
                runtime_dir: Some(d.path().join("nope")),
                process: Some("no-such-process-xyz".into()),
                ..Default::default()
            },
        ];
        let mut c = AddonsCollector::new(addons.clone(), AddonSettings::default(), 60.0);
        let Some(FactsPart(f)) = c.collect().await.unwrap().output.get().cloned() else {
            panic!("not addons")
        };
        assert_eq!(f["a"].running, Some(true));
        assert!(f["a"].installed);
        assert_eq!(f["a"].custom["queue"], 7);
        assert!(!f["missing"].installed);
        assert_eq!(f["missing"].running, Some(false));
        let snap = addon_snapshot(&f["missing"], None, None);
        assert_eq!(snap.state, AddonState::Error);

        let mut dirs = AddonDirsCollector::new(&addons, &AddonSettings::default());
        let Some(DirsPart(s)) = dirs.collect().await.unwrap().output.get().cloned() else {
            panic!("not dirs")
        };
        assert!(s["a"] > 0);
        assert!(!s.contains_key("missing"));
    }
}
