//! Addon collectors. The addons are the ones declared in config; three
//! collectors with their own cadences look after them:
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
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lull_proto::msg::stats::{AddonHealth, AddonState, AddonStatsSnapshot, HealthStatus};
use serde_json::{Map, Value};

use super::process::{find_by_name, parse_pidfile, read_pid};
use super::{blocking, CollectError, CollectFuture, Collected, Collector, Output};
use crate::config::{secs, AddonConfig, AddonSettings};
use crate::http;

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
            output: Output::Addons(out),
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

// ---------------------------------------------------------------- health

/// The outcome of one health check: OK, or an error code and text.
pub type CheckResult = Result<(), (String, String)>;

/// Maps an HTTP status to a check result (2xx = OK, else `http_<code>`).
pub fn http_result(status: u16) -> CheckResult {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err((format!("http_{status}"), format!("HTTP status {status}")))
    }
}

async fn check_http(url: &str, max_body: usize) -> CheckResult {
    let u = http::Url::parse(url).map_err(|e| ("bad_url".to_string(), e.to_string()))?;
    match http::get(&u, max_body).await {
        Ok(r) => http_result(r.status),
        Err(http::HttpError::Connect(e)) => Err(("connect_error".into(), e)),
        Err(http::HttpError::TooLarge(n)) => Err((
            "too_large".into(),
            format!("response larger than {n} bytes"),
        )),
        Err(e @ http::HttpError::Malformed(_)) => Err(("bad_response".into(), e.to_string())),
        Err(e) => Err(("io_error".into(), e.to_string())),
    }
}

async fn check_command(argv: &[String]) -> CheckResult {
    let Some((prog, args)) = argv.split_first() else {
        return Err(("spawn_error".into(), "empty command".into()));
    };
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ("spawn_error".to_string(), format!("{prog}: {e}")))?;
    let status = child
        .wait()
        .await
        .map_err(|e| ("io_error".to_string(), e.to_string()))?;
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => Err((
            format!("exit_{c}"),
            format!("{prog} exited with status {c}"),
        )),
        (None, Some(s)) => Err((
            format!("signal_{s}"),
            format!("{prog} killed by signal {s}"),
        )),
        _ => Err(("exit_unknown".into(), format!("{prog} failed"))),
    }
}

async fn check(a: &AddonConfig, max_body: usize) -> Option<CheckResult> {
    let timeout = secs(a.health_timeout_sec);
    let fut = async {
        if let Some(url) = &a.health_url {
            Some(check_http(url, max_body).await)
        } else if let Some(cmd) = &a.health_command {
            Some(check_command(cmd).await)
        } else {
            None
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        // Dropping the future kills a command (kill_on_drop).
        Err(_) => Some(Err((
            "timeout".into(),
            format!("no answer within {:.3} s", timeout.as_secs_f64()),
        ))),
    }
}

/// Folds a check result into the health record, keeping `last_ok`.
pub fn apply_check(prev_last_ok: Option<f64>, result: CheckResult, now: f64) -> AddonHealth {
    match result {
        Ok(()) => AddonHealth {
            status: HealthStatus::Ok,
            last_checked: Some(now),
            last_ok: Some(now),
            error_code: None,
            error: None,
        },
        Err((code, text)) => AddonHealth {
            status: HealthStatus::Error,
            last_checked: Some(now),
            last_ok: prev_last_ok,
            error_code: Some(code),
            error: Some(text),
        },
    }
}

/// The `addon_health` collector.
pub struct AddonHealthCollector {
    addons: Vec<AddonConfig>,
    max_body: usize,
    last_ok: BTreeMap<String, f64>,
}

impl AddonHealthCollector {
    /// Checks the enabled addons of `addons` that declare a check.
    pub fn new(addons: Vec<AddonConfig>, settings: &AddonSettings) -> Self {
        AddonHealthCollector {
            addons: addons
                .into_iter()
                .filter(|a| a.enabled && (a.health_url.is_some() || a.health_command.is_some()))
                .collect(),
            max_body: settings.health_max_body_bytes,
            last_ok: BTreeMap::new(),
        }
    }
}

impl Collector for AddonHealthCollector {
    fn name(&self) -> &'static str {
        "addon_health"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        Box::pin(async move {
            let max_body = self.max_body;
            let results =
                futures::future::join_all(self.addons.iter().map(|a| check(a, max_body))).await;
            let now = lull_common::runtime::now_unix();
            let mut out = BTreeMap::new();
            for (a, r) in self.addons.iter().zip(results) {
                let Some(r) = r else { continue };
                let h = apply_check(self.last_ok.get(&a.id).copied(), r, now);
                if let Some(ok) = h.last_ok {
                    self.last_ok.insert(a.id.clone(), ok);
                }
                out.insert(a.id.clone(), h);
            }
            Ok(Collected::ok(Output::AddonHealth(out)))
        })
    }
}

// ---------------------------------------------------------------- dirs

/// Result of a bounded directory walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Walked everything: disk usage in bytes.
    Done(u64),
    /// Ran out of time or entries after counting this many bytes.
    OutOfBudget(u64),
}

/// Disk usage of `root` (allocated blocks, like `du -sx`), staying on its
/// file system and not following symlinks, within `budget` and
/// `max_entries`. Unreadable entries are skipped.
pub fn walk(root: &Path, budget: Duration, max_entries: u64) -> std::io::Result<Walk> {
    let started = Instant::now();
    let meta = std::fs::symlink_metadata(root)?;
    let dev = meta.dev();
    let mut total = meta.blocks().saturating_mul(512);
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut seen: u64 = 0;
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            seen += 1;
            if seen >= max_entries || (seen.is_multiple_of(256) && started.elapsed() >= budget) {
                return Ok(Walk::OutOfBudget(total));
            }
            let Ok(m) = entry.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            total = total.saturating_add(m.blocks().saturating_mul(512));
            if m.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    if started.elapsed() >= budget {
        return Ok(Walk::OutOfBudget(total));
    }
    Ok(Walk::Done(total))
}

struct DirsState {
    dirs: Vec<(String, PathBuf)>,
    budget: Duration,
    max_entries: u64,
    sizes: BTreeMap<String, u64>,
}

impl DirsState {
    fn run(&mut self) -> Result<Collected, CollectError> {
        let mut warnings = Vec::new();
        for (id, dir) in &self.dirs {
            match walk(dir, self.budget, self.max_entries) {
                Ok(Walk::Done(n)) => {
                    self.sizes.insert(id.clone(), n);
                }
                Ok(Walk::OutOfBudget(n)) => warnings.push(format!(
                    "addon {id}: walk of {} ran out of budget after {n} bytes; keeping the previous size",
                    dir.display()
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.sizes.remove(id);
                }
                Err(e) => warnings.push(format!("addon {id}: {}: {e}", dir.display())),
            }
        }
        Ok(Collected {
            output: Output::AddonDirs(self.sizes.clone()),
            warnings,
        })
    }
}

/// The `addon_dirs` collector.
pub struct AddonDirsCollector {
    state: Arc<Mutex<DirsState>>,
}

impl AddonDirsCollector {
    /// Sizes the runtime dirs of `addons`.
    pub fn new(addons: &[AddonConfig], settings: &AddonSettings) -> Self {
        AddonDirsCollector {
            state: Arc::new(Mutex::new(DirsState {
                dirs: addons
                    .iter()
                    .filter_map(|a| Some((a.id.clone(), a.runtime_dir.clone()?)))
                    .collect(),
                budget: Duration::from_millis(settings.dir_walk_budget_ms),
                max_entries: settings.dir_walk_max_entries.max(1),
                sizes: BTreeMap::new(),
            })),
        }
    }
}

impl Collector for AddonDirsCollector {
    fn name(&self) -> &'static str {
        "addon_dirs"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        blocking(&self.state, DirsState::run)
    }
}

#[cfg(test)]
mod tests {
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
        let Output::AddonHealth(h) = c.collect().await.unwrap().output else {
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
        let Output::Addons(f) = c.collect().await.unwrap().output else {
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
        let Output::AddonDirs(s) = dirs.collect().await.unwrap().output else {
            panic!("not dirs")
        };
        assert!(s["a"] > 0);
        assert!(!s.contains_key("missing"));
    }
}
