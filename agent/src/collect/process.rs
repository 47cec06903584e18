//! Process collector family (`process`): RSS, CPU %, threads and open fds
//! of the agent itself and of the watched processes (by name, pid or
//! pidfile); the `[process]` and `[[watch]]` config sections and the
//! snapshot's `process` list. Linux only (built on Linux).
//!
//! It reads `/proc` directly instead of going through `sysinfo`, which
//! sidesteps that crate's traps (it raises the open-files limit and keeps
//! fds open, its "nothing" refresh still walks every task, it has no thread
//! count): per process one read of `/proc/<pid>/stat` gives CPU ticks,
//! start time, thread count (field 20, the same figure as `Threads:` in
//! `/proc/<pid>/status`) and RSS (field 24, the same as `VmRSS:`), and the
//! fds are counted in `/proc/<pid>/fd`. Names are resolved by a scan of
//! `/proc/*/comm` only rarely (every `resolve_interval_sec`, or when every
//! cached pid has exited); pids are cached with their start time so a
//! reused pid is noticed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lull_proto::msg::stats::{ProcessStats, SystemStatsSnapshot, MAX_LIST};
use lull_proto::validate;
use serde::{Deserialize, Serialize};

use super::{
    blocking, read_text, same_part, CollectError, CollectFuture, Collected, Collector, Ctx, Family,
    Fresh, Output, Part,
};
use crate::schedule::{secs, Schedule};

/// Process collector settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessConfig {
    /// Processes watched by name are looked up in `/proc` at most this
    /// often, seconds (and when every cached pid has exited). Default 60.
    pub resolve_interval_sec: f64,
    /// Most processes reported for one watched name. Default 8.
    pub max_pids_per_watch: usize,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            resolve_interval_sec: 60.0,
            max_pids_per_watch: 8,
        }
    }
}

/// One watched process: exactly one of `process`, `pid` or `pidfile`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchedProcess {
    /// Label reported as the process `name`.
    pub name: String,
    /// Match processes by name (`/proc/<pid>/comm`, or the base name of
    /// `argv[0]` for names longer than 15 bytes).
    pub process: Option<String>,
    /// A fixed pid.
    pub pid: Option<u32>,
    /// A file holding the pid.
    pub pidfile: Option<PathBuf>,
}

/// The process family's config sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Process collector settings.
    pub process: ProcessConfig,
    /// Processes to watch besides the agent itself (`[[watch]]` tables).
    pub watch: Vec<WatchedProcess>,
}

/// The process family.
pub struct Processes;

impl Family for Processes {
    type Settings = Settings;
    /// The agent and the watched processes: every 5 s, jitter 0.5 s,
    /// timeout 3 s.
    const SCHEDULES: &'static [(&'static str, Schedule)] =
        &[("process", Schedule::new(5.0, 0.5, 3.0))];
    const DELTA: &'static [&'static str] = &["process"];

    fn check(s: &Settings) -> Result<(), String> {
        for (i, w) in s.watch.iter().enumerate() {
            let n = [w.process.is_some(), w.pid.is_some(), w.pidfile.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if n != 1 {
                return Err(format!(
                    "watch[{i}] ({}): set exactly one of process, pid, pidfile",
                    w.name
                ));
            }
            if w.name.trim().is_empty() {
                return Err(format!("watch[{i}]: name is required"));
            }
            validate::text(&format!("watch[{i}].name"), &w.name, validate::MAX_ID_LEN)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn build(s: &Settings, _: &Ctx<'_>) -> Vec<Box<dyn Collector>> {
        if cfg!(target_os = "linux") {
            vec![Box::new(ProcessCollector::new(
                s.process.clone(),
                s.watch.clone(),
            ))]
        } else {
            Vec::new()
        }
    }
}

/// The snapshot's `process` list.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessesPart(pub Vec<ProcessStats>);

impl Part for ProcessesPart {
    fn fill(&self, snap: &mut SystemStatsSnapshot, _: &Fresh<'_>) {
        snap.process = self.0.iter().take(MAX_LIST).cloned().collect();
    }

    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
    }
}

/// The parts of `/proc/<pid>/stat` the collector uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidStat {
    /// Command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// State letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// User plus system CPU time, clock ticks.
    pub cpu_ticks: u64,
    /// Thread count.
    pub threads: u32,
    /// Start time after boot, clock ticks.
    pub starttime: u64,
    /// Resident set, pages.
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name may hold spaces and
/// parentheses, so the fields are counted from the last `)`.
pub fn parse_pid_stat(text: &str) -> Result<PidStat, CollectError> {
    let bad = || {
        CollectError::Parse(format!(
            "stat: {:?}",
            text.chars().take(80).collect::<String>()
        ))
    };
    let open = text.find('(').ok_or_else(bad)?;
    let close = text.rfind(')').ok_or_else(bad)?;
    if close < open {
        return Err(bad());
    }
    let comm = text[open + 1..close].to_string();
    // Fields from 3 (state) on.
    let f: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let get = |field: usize| -> Result<u64, CollectError> {
        f.get(field - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(bad)
    };
    let state = f.first().and_then(|s| s.chars().next()).ok_or_else(bad)?;
    Ok(PidStat {
        comm,
        state,
        cpu_ticks: get(14)?.saturating_add(get(15)?),
        threads: u32::try_from(get(20)?).unwrap_or(u32::MAX),
        starttime: get(22)?,
        rss_pages: get(24)?,
    })
}

/// Whether a process is the one wanted: its `comm` equals the name, or, for
/// names longer than the 15 bytes `comm` keeps, `comm` is the name's prefix
/// and the base name of `argv[0]` equals the name.
pub fn name_matches(want: &str, comm: &str, argv0: impl FnOnce() -> Option<String>) -> bool {
    if comm == want {
        return true;
    }
    if want.len() > 15 && want.as_bytes().starts_with(comm.as_bytes()) && comm.len() == 15 {
        return argv0()
            .map(|a| a.rsplit('/').next().unwrap_or_default() == want)
            .unwrap_or(false);
    }
    false
}

/// The first NUL-separated word of `/proc/<pid>/cmdline`.
pub fn argv0(cmdline: &[u8]) -> Option<String> {
    let first = cmdline.split(|b| *b == 0).next()?;
    (!first.is_empty()).then(|| String::from_utf8_lossy(first).into_owned())
}

/// CPU percent of one core between two samples of cumulative ticks.
pub fn cpu_pct(prev_ticks: u64, cur_ticks: u64, elapsed_sec: f64, clk_tck: f64) -> f64 {
    if elapsed_sec <= 0.0 || cur_ticks < prev_ticks || clk_tck <= 0.0 {
        return 0.0;
    }
    let v = (cur_ticks - prev_ticks) as f64 / clk_tck / elapsed_sec * 100.0;
    if v.is_finite() {
        v.max(0.0)
    } else {
        0.0
    }
}

/// Parses a pid file's content.
pub fn parse_pidfile(text: &str) -> Option<u32> {
    text.split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// System constants read once.
#[derive(Debug, Clone, Copy)]
pub struct Sys {
    /// Clock ticks per second.
    pub clk_tck: f64,
    /// Page size in bytes.
    pub page_size: u64,
}

impl Sys {
    /// Reads them with `sysconf`.
    pub fn read() -> Sys {
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Sys {
            clk_tck: if tck > 0 { tck as f64 } else { 100.0 },
            page_size: if page > 0 { page as u64 } else { 4096 },
        }
    }
}

/// Reads a pid's stat, `None` when it has gone (or is a zombie).
pub fn read_pid(pid: u32) -> Option<PidStat> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let s = parse_pid_stat(&t).ok()?;
    (s.state != 'Z' && s.state != 'X').then_some(s)
}

/// Counts `/proc/<pid>/fd`; `None` when not readable (another user's process).
pub fn count_fds(pid: u32) -> Option<u32> {
    let rd = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(u32::try_from(rd.count()).unwrap_or(u32::MAX))
}

/// Scans `/proc` for processes named `name`, lowest pids first, at most `max`.
pub fn find_by_name(name: &str, max: usize) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
                return false;
            };
            name_matches(name, comm.trim_end_matches('\n'), || {
                argv0(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?)
            })
        })
        .collect();
    pids.sort_unstable();
    pids.truncate(max);
    pids
}

#[derive(Debug, Clone)]
struct Tracked {
    pid: u32,
    starttime: Option<u64>,
    prev: Option<(u64, Instant)>,
}

impl Tracked {
    fn new(pid: u32) -> Self {
        Tracked {
            pid,
            starttime: None,
            prev: None,
        }
    }
}

struct Watch {
    spec: WatchedProcess,
    tracked: Vec<Tracked>,
    resolved_at: Option<Instant>,
}

struct State {
    cfg: ProcessConfig,
    sys: Sys,
    me: Tracked,
    watches: Vec<Watch>,
}

fn sample(
    t: &mut Tracked,
    name: &str,
    sys: Sys,
    uptime: Option<f64>,
    now: Instant,
) -> Option<ProcessStats> {
    let s = read_pid(t.pid)?;
    if t.starttime.is_some_and(|st| st != s.starttime) {
        return None; // the pid was reused
    }
    t.starttime = Some(s.starttime);
    let cpu = match t.prev {
        Some((ticks, at)) => cpu_pct(
            ticks,
            s.cpu_ticks,
            now.duration_since(at).as_secs_f64(),
            sys.clk_tck,
        ),
        None => {
            // Average since the process started.
            let age = uptime
                .map(|u| u - s.starttime as f64 / sys.clk_tck)
                .unwrap_or(0.0);
            cpu_pct(0, s.cpu_ticks, age, sys.clk_tck)
        }
    };
    t.prev = Some((s.cpu_ticks, now));
    Some(ProcessStats {
        name: name.to_string(),
        pid: t.pid,
        rss_bytes: s.rss_pages.saturating_mul(sys.page_size),
        cpu_pct: cpu,
        threads: s.threads,
        fds: count_fds(t.pid),
    })
}

fn retarget(tracked: &mut Vec<Tracked>, pids: &[u32]) {
    tracked.retain(|t| pids.contains(&t.pid));
    for p in pids {
        if !tracked.iter().any(|t| t.pid == *p) {
            tracked.push(Tracked::new(*p));
        }
    }
}

impl State {
    fn run(&mut self) -> Result<Collected, CollectError> {
        let now = Instant::now();
        let uptime = read_text("/proc/uptime")
            .ok()
            .and_then(|t| t.split_ascii_whitespace().next()?.parse::<f64>().ok());
        let mut out = Vec::new();
        let mut warnings = Vec::new();
        match sample(&mut self.me, "lull-agent", self.sys, uptime, now) {
            Some(p) => out.push(p),
            None => return Err(CollectError::Io("cannot read /proc/self/stat".into())),
        }
        let resolve_every = secs(self.cfg.resolve_interval_sec);
        for w in &mut self.watches {
            match (&w.spec.pid, &w.spec.pidfile, &w.spec.process) {
                (Some(pid), _, _) => retarget(&mut w.tracked, &[*pid]),
                (None, Some(path), _) => match read_pidfile(path) {
                    Ok(pid) => retarget(&mut w.tracked, &[pid]),
                    Err(e) => {
                        w.tracked.clear();
                        warnings.push(format!("watch {}: {e}", w.spec.name));
                        continue;
                    }
                },
                (None, None, Some(name)) => {
                    let due = w
                        .resolved_at
                        .is_none_or(|at| now.duration_since(at) >= resolve_every);
                    let all_gone = !w.tracked.is_empty()
                        && w.tracked.iter().all(|t| read_pid(t.pid).is_none());
                    if due || all_gone {
                        let pids = find_by_name(name, self.cfg.max_pids_per_watch);
                        retarget(&mut w.tracked, &pids);
                        w.resolved_at = Some(now);
                    }
                }
                (None, None, None) => continue,
            }
            let before = out.len();
            let label = w.spec.name.clone();
            w.tracked
                .retain_mut(|t| match sample(t, &label, self.sys, uptime, now) {
                    Some(p) => {
                        out.push(p);
                        true
                    }
                    None => false,
                });
            if out.len() == before {
                warnings.push(format!("watch {}: no running process", w.spec.name));
            }
        }
        Ok(Collected {
            output: Output::new(ProcessesPart(out)),
            warnings,
        })
    }
}

fn read_pidfile(path: &Path) -> Result<u32, String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_pidfile(&t).ok_or_else(|| format!("{}: no pid in it", path.display()))
}

/// The process collector.
pub struct ProcessCollector {
    state: Arc<Mutex<State>>,
}

impl ProcessCollector {
    /// Watches the agent itself and `watch`.
    pub fn new(cfg: ProcessConfig, watch: Vec<WatchedProcess>) -> Self {
        ProcessCollector {
            state: Arc::new(Mutex::new(State {
                cfg,
                sys: Sys::read(),
                me: Tracked::new(std::process::id()),
                watches: watch
                    .into_iter()
                    .map(|spec| Watch {
                        spec,
                        tracked: Vec::new(),
                        resolved_at: None,
                    })
                    .collect(),
            })),
        }
    }
}

impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        blocking(&self.state, State::run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 50 0 0 20 0 7 0 4242 123456789 300 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn pid_stat() {
        let s = parse_pid_stat(STAT).unwrap();
        assert_eq!(s.comm, "my (odd) proc");
        assert_eq!(s.state, 'S');
        assert_eq!(s.cpu_ticks, 200);
        assert_eq!(s.threads, 7);
        assert_eq!(s.starttime, 4242);
        assert_eq!(s.rss_pages, 300);
        assert!(parse_pid_stat("1 (x) S 1 2").is_err());
        assert!(parse_pid_stat("garbage").is_err());
    }

    #[test]
    fn names() {
        assert!(name_matches("postgres", "postgres", || None));
        assert!(!name_matches("postgres", "postgres: wal", || None));
        let long = "my-very-long-worker-name";
        let comm = &long[..15];
        assert!(name_matches(long, comm, || Some(format!(
            "/usr/bin/{long}"
        ))));
        assert!(!name_matches(long, comm, || Some("/usr/bin/other".into())));
        assert!(!name_matches(long, "my-very", || Some(long.into())));
        assert_eq!(argv0(b"/usr/bin/x\0--flag\0"), Some("/usr/bin/x".into()));
        assert_eq!(argv0(b""), None);
    }

    #[test]
    fn cpu_and_pidfiles() {
        assert_eq!(cpu_pct(100, 300, 2.0, 100.0), 100.0);
        assert_eq!(cpu_pct(300, 100, 2.0, 100.0), 0.0);
        assert_eq!(cpu_pct(0, 100, 0.0, 100.0), 0.0);
        assert_eq!(parse_pidfile("  4321\n"), Some(4321));
        assert_eq!(parse_pidfile("0"), None);
        assert_eq!(parse_pidfile("abc"), None);
    }

    #[tokio::test]
    async fn watches_self_pid_and_pidfile() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("x.pid");
        let me = std::process::id();
        std::fs::write(&pidfile, format!("{me}\n")).unwrap();
        let watch = vec![
            WatchedProcess {
                name: "by-pid".into(),
                pid: Some(me),
                ..Default::default()
            },
            WatchedProcess {
                name: "by-file".into(),
                pidfile: Some(pidfile),
                ..Default::default()
            },
            WatchedProcess {
                name: "ghost".into(),
                process: Some("no-such-process-xyz".into()),
                ..Default::default()
            },
        ];
        let mut c = ProcessCollector::new(ProcessConfig::default(), watch);
        let r = c.collect().await.unwrap();
        let Some(ProcessesPart(p)) = r.output.get::<ProcessesPart>().cloned() else {
            panic!("not processes")
        };
        assert_eq!(p[0].name, "lull-agent");
        assert_eq!(p[0].pid, me);
        assert!(p[0].rss_bytes > 0 && p[0].threads >= 1);
        assert!(p[0].fds.unwrap_or(0) >= 3);
        assert!(p.iter().any(|x| x.name == "by-pid"));
        assert!(p.iter().any(|x| x.name == "by-file"));
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("ghost"));
    }

    #[test]
    fn finds_this_test_binary_by_name() {
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let pids = find_by_name(comm.trim(), 64);
        assert!(pids.contains(&std::process::id()), "{pids:?}");
    }
}
