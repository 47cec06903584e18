//! Pure summaries of the measured cells: percentiles, throughput, the
//! grant/deny mix, the target ratios and the printed tables. No I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The systems measured side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    /// A raw NATS request-reply echo responder: the floor.
    Echo,
    /// Lull's `lease.request` against the real coordinator (the mix of
    /// grants and denials; grants are released).
    Lull,
    /// Lull's `lease.request`, every request denied `not_quiet` (the
    /// decision path without lease state changes).
    LullDeny,
    /// etcd's LeaseGrant over its HTTP/JSON gateway.
    Etcd,
}

impl System {
    /// Display name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            System::Echo => "NATS echo (floor)",
            System::Lull => "Lull lease.request",
            System::LullDeny => "Lull lease.request, all denied",
            System::Etcd => "etcd LeaseGrant",
        }
    }
}

/// The grant/deny mix of Lull decisions in one cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mix {
    /// Granted requests.
    pub granted: u64,
    /// Denied requests per `reason_code`.
    pub denied: BTreeMap<String, u64>,
    /// Granted leases released by the bench (successful `lease.release`).
    pub released: u64,
    /// Releases that failed (error reply, timeout) or were not sent.
    pub release_failed: u64,
}

impl Mix {
    /// Adds another client's mix.
    pub fn merge(&mut self, other: &Mix) {
        self.granted += other.granted;
        for (k, v) in &other.denied {
            *self.denied.entry(k.clone()).or_default() += v;
        }
        self.released += other.released;
        self.release_failed += other.release_failed;
    }

    /// All denials.
    pub fn denied_total(&self) -> u64 {
        self.denied.values().sum()
    }

    /// `granted 71.2% / denied 28.8% (not_quiet 20.0%, ...)`.
    pub fn describe(&self) -> String {
        let total = self.granted + self.denied_total();
        if total == 0 {
            return "no decisions".into();
        }
        let pct = |n: u64| 100.0 * n as f64 / total as f64;
        let mut s = format!(
            "granted {:.1}% / denied {:.1}%",
            pct(self.granted),
            pct(self.denied_total())
        );
        if !self.denied.is_empty() {
            let parts: Vec<String> = self
                .denied
                .iter()
                .map(|(k, v)| format!("{k} {:.1}%", pct(*v)))
                .collect();
            let _ = write!(s, " ({})", parts.join(", "));
        }
        s
    }
}

/// One measured cell: one system at one concurrency.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Which system.
    pub system: System,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Completed replies inside the window.
    pub count: u64,
    /// Median latency, microseconds.
    pub p50_us: u32,
    /// 99th percentile latency, microseconds.
    pub p99_us: u32,
    /// Replies per second inside the window.
    pub per_sec: f64,
    /// Failed requests (timeouts, error replies, undecodable replies).
    pub errors: u64,
    /// Lull only: the decision mix.
    pub mix: Option<Mix>,
    /// CPU used during the window per process, percent of one core.
    pub cpu: Vec<(String, f64)>,
    /// Free-form notes (coordinator counters, first error).
    pub notes: Vec<String>,
}

/// Nearest-rank percentile `p` (0..=100) of an ascending slice.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.saturating_sub(1).min(sorted.len() - 1);
    Some(sorted[idx])
}

/// Latency summary of a window: `(count, p50, p99, per_sec)`. Sorts `samples`.
pub fn summarize(samples: &mut [u32], window_sec: f64) -> (u64, u32, u32, f64) {
    samples.sort_unstable();
    let n = samples.len() as u64;
    let p50 = percentile(samples, 50.0).unwrap_or(0);
    let p99 = percentile(samples, 99.0).unwrap_or(0);
    let per_sec = if window_sec > 0.0 {
        n as f64 / window_sec
    } else {
        0.0
    };
    (n, p50, p99, per_sec)
}

/// Microseconds as `123 µs` or `1.23 ms`.
pub fn fmt_us(us: u32) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 100_000 {
        format!("{:.2} ms", f64::from(us) / 1000.0)
    } else {
        format!("{:.0} ms", f64::from(us) / 1000.0)
    }
}

/// Rate with thousands separators.
pub fn fmt_rate(r: f64) -> String {
    let n = r.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The main table (markdown): one row per system and concurrency.
pub fn render_table(cells: &[Cell]) -> String {
    let mut s = String::from(
        "| system | clients | p50 | p99 | replies/s | errors |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let mut sorted: Vec<&Cell> = cells.iter().collect();
    sorted.sort_by_key(|c| (c.concurrency, c.system));
    for c in sorted {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            c.system.label(),
            c.concurrency,
            fmt_us(c.p50_us),
            fmt_us(c.p99_us),
            fmt_rate(c.per_sec),
            c.errors
        );
    }
    s
}

fn find(cells: &[Cell], system: System, concurrency: usize) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.system == system && c.concurrency == concurrency && c.count > 0)
}

/// Verdict of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What was checked.
    pub what: String,
    /// The measured value, rendered.
    pub value: String,
    /// The target, rendered.
    pub target: String,
    /// Met or not; `None` when a side is missing.
    pub met: Option<bool>,
}

/// The three targets per concurrency: Lull p50 / echo p50 ≤ `max_p50_ratio`;
/// Lull decisions/s ≥ `min_decisions` (judged at the best concurrency);
/// Lull faster than etcd (p50 lower and throughput higher).
pub fn verdicts(cells: &[Cell], max_p50_ratio: f64, min_decisions: f64) -> Vec<Verdict> {
    let mut levels: Vec<usize> = cells.iter().map(|c| c.concurrency).collect();
    levels.sort_unstable();
    levels.dedup();
    let mut out = Vec::new();
    for &n in &levels {
        let (lull, echo, etcd) = (
            find(cells, System::Lull, n),
            find(cells, System::Echo, n),
            find(cells, System::Etcd, n),
        );
        let ratio = match (lull, echo) {
            (Some(l), Some(e)) if e.p50_us > 0 => Some(f64::from(l.p50_us) / f64::from(e.p50_us)),
            _ => None,
        };
        out.push(Verdict {
            what: format!("{n} clients: Lull p50 / echo p50"),
            value: ratio.map_or("n/a".into(), |r| format!("{r:.2}×")),
            target: format!("≤ {max_p50_ratio}×"),
            met: ratio.map(|r| r <= max_p50_ratio),
        });
        let vs = match (lull, etcd) {
            (Some(l), Some(e)) => Some((
                f64::from(e.p50_us) / f64::from(l.p50_us.max(1)),
                l.per_sec / e.per_sec.max(f64::MIN_POSITIVE),
            )),
            _ => None,
        };
        out.push(Verdict {
            what: format!("{n} clients: Lull vs etcd (p50 speed-up, throughput ratio)"),
            value: vs.map_or("n/a".into(), |(a, b)| {
                format!("{a:.2}× faster p50, {b:.2}× the throughput")
            }),
            target: "faster (both > 1)".into(),
            met: vs.map(|(a, b)| a > 1.0 && b > 1.0),
        });
    }
    let best = cells
        .iter()
        .filter(|c| c.system == System::Lull)
        .max_by(|a, b| a.per_sec.total_cmp(&b.per_sec));
    out.push(Verdict {
        what: best.map_or("Lull decisions/s (best level)".into(), |b| {
            format!("Lull decisions/s (best: {} clients)", b.concurrency)
        }),
        value: best.map_or("n/a".into(), |b| fmt_rate(b.per_sec)),
        target: format!("≥ {}", fmt_rate(min_decisions)),
        met: best.map(|b| b.per_sec >= min_decisions),
    });
    out
}

/// The verdicts as a markdown table.
pub fn render_verdicts(v: &[Verdict]) -> String {
    let mut s = String::from("| check | measured | target | met |\n|---|---:|---:|:---:|\n");
    for x in v {
        let met = match x.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(s, "| {} | {} | {} | {} |", x.what, x.value, x.target, met);
    }
    s
}

/// Per-cell details: Lull's mix, CPU per process, notes.
pub fn render_details(cells: &[Cell]) -> String {
    let mut s = String::new();
    let mut sorted: Vec<&Cell> = cells.iter().collect();
    sorted.sort_by_key(|c| (c.concurrency, c.system));
    for c in sorted {
        let _ = write!(s, "- {} × {}:", c.system.label(), c.concurrency);
        if let Some(m) = &c.mix {
            let _ = write!(
                s,
                " {}; released {} (failed {});",
                m.describe(),
                m.released,
                m.release_failed
            );
        }
        if !c.cpu.is_empty() {
            let parts: Vec<String> = c.cpu.iter().map(|(k, v)| format!("{k} {v:.0}%")).collect();
            let _ = write!(s, " CPU {};", parts.join(", "));
        }
        for n in &c.notes {
            let _ = write!(s, " {n};");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(system: System, concurrency: usize, p50: u32, per_sec: f64) -> Cell {
        Cell {
            system,
            concurrency,
            count: 100,
            p50_us: p50,
            p99_us: p50 * 2,
            per_sec,
            errors: 0,
            mix: None,
            cpu: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summarize_sorts_and_rates() {
        let mut v = vec![30, 10, 20, 40];
        let (n, p50, p99, rate) = summarize(&mut v, 2.0);
        assert_eq!((n, p50, p99), (4, 20, 40));
        assert_eq!(rate, 2.0);
        assert_eq!(v, vec![10, 20, 30, 40]);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_us(999), "999 µs");
        assert_eq!(fmt_us(1234), "1.23 ms");
        assert_eq!(fmt_us(250_000), "250 ms");
        assert_eq!(fmt_rate(1234567.4), "1,234,567");
        assert_eq!(fmt_rate(999.0), "999");
    }

    #[test]
    fn verdicts_judge_each_target() {
        let cells = vec![
            cell(System::Echo, 1, 100, 9000.0),
            cell(System::Lull, 1, 140, 7000.0),
            cell(System::Etcd, 1, 400, 2000.0),
            cell(System::Echo, 100, 1000, 90000.0),
            cell(System::Lull, 100, 2000, 25000.0),
            cell(System::Etcd, 100, 1500, 30000.0),
        ];
        let v = verdicts(&cells, 1.5, 20000.0);
        assert_eq!(v.len(), 5);
        assert_eq!(v[0].met, Some(true)); // 1.4x
        assert_eq!(v[1].met, Some(true));
        assert_eq!(v[2].met, Some(false)); // 2x
        assert_eq!(v[3].met, Some(false)); // slower than etcd
        assert_eq!(v[4].met, Some(true)); // 25k
        assert!(v[4].what.contains("100 clients"));
        let table = render_verdicts(&v);
        assert!(table.contains("**no**"));
    }

    #[test]
    fn missing_sides_are_not_judged() {
        let cells = vec![cell(System::Lull, 1, 140, 7000.0)];
        let v = verdicts(&cells, 1.5, 20000.0);
        assert_eq!(v[0].met, None);
        assert_eq!(v[1].met, None);
        assert_eq!(v[2].met, Some(false));
    }

    #[test]
    fn mix_merges_and_describes() {
        let mut a = Mix {
            granted: 3,
            ..Default::default()
        };
        let mut b = Mix::default();
        b.denied.insert("not_quiet".into(), 1);
        a.merge(&b);
        assert_eq!(a.denied_total(), 1);
        assert_eq!(
            a.describe(),
            "granted 75.0% / denied 25.0% (not_quiet 25.0%)"
        );
        assert_eq!(Mix::default().describe(), "no decisions");
    }
}
