//! Pressure collector family (`pressure`): Linux PSI from
//! `/proc/pressure/{cpu,memory,io}` (sysinfo has no PSI), and the
//! snapshot's `host.pressure`. It has no config section of its own and
//! is only built on Linux.
//! Each figure is the percent of wall time some (or all) tasks were stalled
//! over the last run, taken from the delta of the cumulative `total`
//! (microseconds) between two runs; the first run uses the kernel's
//! `avg10`. Where PSI is off (no `/proc/pressure`, or the kernel answers
//! "not supported") the result is `None`, which the snapshot shows as null.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use lull_proto::msg::stats::{Pressure, SystemStatsSnapshot};
use serde::{Deserialize, Serialize};

use super::{
    blocking, clamp_pct, same_part, CollectError, CollectFuture, Collected, Collector, Ctx, Family,
    Fresh, Output, Part,
};
use crate::schedule::Schedule;

/// The pressure family's config sections: none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {}

/// The pressure family.
pub struct Psi;

impl Family for Psi {
    type Settings = Settings;
    /// Linux PSI: every 2 s, jitter 0.2 s, timeout 1.5 s.
    const SCHEDULES: &'static [(&'static str, Schedule)] =
        &[("pressure", Schedule::new(2.0, 0.2, 1.5))];
    const DELTA: &'static [&'static str] = &["pressure"];

    fn build(_: &Settings, _: &Ctx<'_>) -> Vec<Box<dyn Collector>> {
        if cfg!(target_os = "linux") {
            vec![Box::<PressureCollector>::default()]
        } else {
            Vec::new()
        }
    }
}

/// The snapshot's `host.pressure` (`None` where PSI is off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressurePart(pub Option<Pressure>);

impl Part for PressurePart {
    fn fill(&self, snap: &mut SystemStatsSnapshot, _: &Fresh<'_>) {
        snap.host.pressure = self.0;
    }

    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
    }
}

/// One `some` or `full` line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsiLine {
    /// The kernel's 10 s average, percent.
    pub avg10: f64,
    /// Cumulative stall time, microseconds.
    pub total: u64,
}

/// One `/proc/pressure/<resource>` file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsiFile {
    /// The `some` line.
    pub some: Option<PsiLine>,
    /// The `full` line (absent for CPU on older kernels).
    pub full: Option<PsiLine>,
}

/// Parses one PSI file.
pub fn parse_psi(text: &str) -> Result<PsiFile, CollectError> {
    let mut out = PsiFile::default();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let kind = it.next();
        let mut l = PsiLine::default();
        let mut have_total = false;
        for kv in it {
            match kv.split_once('=') {
                Some(("avg10", v)) => {
                    l.avg10 = v
                        .parse()
                        .map_err(|_| CollectError::Parse(format!("psi avg10 {v:?}")))?
                }
                Some(("total", v)) => {
                    l.total = v
                        .parse()
                        .map_err(|_| CollectError::Parse(format!("psi total {v:?}")))?;
                    have_total = true;
                }
                _ => {}
            }
        }
        if !have_total {
            continue;
        }
        match kind {
            Some("some") => out.some = Some(l),
            Some("full") => out.full = Some(l),
            _ => {}
        }
    }
    if out.some.is_none() {
        return Err(CollectError::Parse(format!(
            "psi: no `some` line in {text:?}"
        )));
    }
    Ok(out)
}

/// Percent of `elapsed_sec` stalled, from two cumulative totals (µs).
/// Falls back to `avg10` without a previous sample or elapsed time.
pub fn stall_pct(prev: Option<PsiLine>, cur: Option<PsiLine>, elapsed_sec: f64) -> f64 {
    let Some(cur) = cur else {
        return 0.0;
    };
    match prev {
        Some(p) if elapsed_sec > 0.0 && cur.total >= p.total => {
            clamp_pct((cur.total - p.total) as f64 / (elapsed_sec * 1.0e6) * 100.0)
        }
        _ => clamp_pct(cur.avg10),
    }
}

/// The three PSI files read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsiSample {
    /// `/proc/pressure/cpu`.
    pub cpu: PsiFile,
    /// `/proc/pressure/memory`.
    pub memory: PsiFile,
    /// `/proc/pressure/io`.
    pub io: PsiFile,
}

/// The snapshot's `pressure` block from two samples `elapsed_sec` apart.
pub fn pressure(prev: Option<&PsiSample>, cur: &PsiSample, elapsed_sec: f64) -> Pressure {
    let p = |f: fn(&PsiSample) -> Option<PsiLine>| stall_pct(prev.and_then(f), f(cur), elapsed_sec);
    Pressure {
        cpu_some_avg10: p(|s| s.cpu.some),
        mem_some_avg10: p(|s| s.memory.some),
        mem_full_avg10: p(|s| s.memory.full),
        io_some_avg10: p(|s| s.io.some),
        io_full_avg10: p(|s| s.io.full),
    }
}

/// Whether a read error means "PSI is off here" rather than a failure.
pub fn psi_off(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

struct State {
    dir: std::path::PathBuf,
    prev: Option<(Instant, PsiSample)>,
}

impl State {
    fn read(&self, name: &str) -> Result<Option<PsiFile>, CollectError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => parse_psi(&t).map(Some),
            Err(e) if psi_off(&e) => Ok(None),
            Err(e) => Err(CollectError::Io(format!("{}: {e}", path.display()))),
        }
    }

    fn run(&mut self) -> Result<Collected, CollectError> {
        let (Some(cpu), Some(memory), Some(io)) =
            (self.read("cpu")?, self.read("memory")?, self.read("io")?)
        else {
            self.prev = None;
            return Ok(Collected::ok(Output::new(PressurePart(None))));
        };
        let now = Instant::now();
        let cur = PsiSample { cpu, memory, io };
        let (prev, dt) = match &self.prev {
            Some((at, s)) => (Some(s), now.duration_since(*at).as_secs_f64()),
            None => (None, 0.0),
        };
        let p = pressure(prev, &cur, dt);
        self.prev = Some((now, cur));
        Ok(Collected::ok(Output::new(PressurePart(Some(p)))))
    }
}

/// The pressure collector.
pub struct PressureCollector {
    state: Arc<Mutex<State>>,
}

impl PressureCollector {
    /// Reads `/proc/pressure`.
    pub fn new() -> Self {
        Self::with_dir("/proc/pressure")
    }

    /// Reads PSI files from another directory (tests).
    pub fn with_dir(dir: impl Into<std::path::PathBuf>) -> Self {
        PressureCollector {
            state: Arc::new(Mutex::new(State {
                dir: dir.into(),
                prev: None,
            })),
        }
    }
}

impl Default for PressureCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for PressureCollector {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        blocking(&self.state, State::run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEM: &str = "some avg10=1.50 avg60=0.80 avg300=0.20 total=1000000\n\
full avg10=0.50 avg60=0.10 avg300=0.00 total=400000\n";

    #[test]
    fn parses_some_and_full() {
        let f = parse_psi(MEM).unwrap();
        assert_eq!(
            f.some,
            Some(PsiLine {
                avg10: 1.5,
                total: 1_000_000
            })
        );
        assert_eq!(
            f.full,
            Some(PsiLine {
                avg10: 0.5,
                total: 400_000
            })
        );
        let cpu = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n").unwrap();
        assert!(cpu.full.is_none());
        assert!(parse_psi("").is_err());
        assert!(parse_psi("some avg10=x total=1\n").is_err());
    }

    #[test]
    fn deltas_of_total_over_the_tick() {
        let a = PsiLine {
            avg10: 9.0,
            total: 1_000_000,
        };
        let b = PsiLine {
            avg10: 9.0,
            total: 1_500_000,
        };
        // 0.5 s stalled in 2 s = 25 %
        assert_eq!(stall_pct(Some(a), Some(b), 2.0), 25.0);
        // first sample: avg10
        assert_eq!(stall_pct(None, Some(b), 2.0), 9.0);
        // no elapsed time or a reset: avg10
        assert_eq!(stall_pct(Some(b), Some(a), 2.0), 9.0);
        assert_eq!(stall_pct(Some(a), Some(b), 0.0), 9.0);
        // more stall than wall time (rounding) is clamped
        assert_eq!(stall_pct(Some(a), Some(b), 0.1), 100.0);
        assert_eq!(stall_pct(Some(a), None, 2.0), 0.0);
    }

    #[test]
    fn pressure_block() {
        let f = |some: u64, full: u64| PsiFile {
            some: Some(PsiLine {
                avg10: 0.0,
                total: some,
            }),
            full: Some(PsiLine {
                avg10: 0.0,
                total: full,
            }),
        };
        let a = PsiSample {
            cpu: f(0, 0),
            memory: f(0, 0),
            io: f(0, 0),
        };
        let b = PsiSample {
            cpu: f(100_000, 0),
            memory: f(200_000, 100_000),
            io: f(400_000, 300_000),
        };
        let p = pressure(Some(&a), &b, 1.0);
        assert_eq!(p.cpu_some_avg10, 10.0);
        assert_eq!(p.mem_some_avg10, 20.0);
        assert_eq!(p.mem_full_avg10, 10.0);
        assert_eq!(p.io_some_avg10, 40.0);
        assert_eq!(p.io_full_avg10, 30.0);
    }

    #[tokio::test]
    async fn null_where_psi_is_off_and_deltas_where_on() {
        let off = tempfile::tempdir().unwrap();
        let mut c = PressureCollector::with_dir(off.path().join("missing"));
        assert_eq!(
            c.collect().await.unwrap().output,
            Output::new(PressurePart(None))
        );

        let on = tempfile::tempdir().unwrap();
        let write = |total: u64| {
            for n in ["cpu", "memory", "io"] {
                std::fs::write(
                    on.path().join(n),
                    format!("some avg10=3.00 avg60=0 avg300=0 total={total}\nfull avg10=1.00 avg60=0 avg300=0 total=0\n"),
                )
                .unwrap();
            }
        };
        write(0);
        let mut c = PressureCollector::with_dir(on.path());
        let Some(PressurePart(Some(p))) = c.collect().await.unwrap().output.get().copied() else {
            panic!("expected pressure")
        };
        assert_eq!(p.cpu_some_avg10, 3.0, "first run uses avg10");
        std::thread::sleep(std::time::Duration::from_millis(200));
        write(1_000_000_000); // far more than the elapsed time
        let Some(PressurePart(Some(p))) = c.collect().await.unwrap().output.get().copied() else {
            panic!("expected pressure")
        };
        assert_eq!(p.cpu_some_avg10, 100.0);
        assert_eq!(p.mem_full_avg10, 0.0);
    }
}
