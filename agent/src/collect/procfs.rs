//! Reference readers of Linux `/proc` text (`stat`, `meminfo`, `loadavg`,
//! `uptime`, `net/dev`), compiled for tests only: the host collector gets
//! these signals from `sysinfo`, and `host::tests` compares the two on
//! Linux within a tolerance.

use std::collections::BTreeMap;

use super::host::NetCounters;
use super::{clamp_pct, CollectError};

/// Cumulative CPU time from the aggregate `cpu` line, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// All non-guest time (guest time is already inside user and nice).
    pub total: u64,
    /// Idle plus iowait.
    pub idle: u64,
}

/// The parts of `/proc/stat` the host collector uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcStat {
    /// Aggregate CPU times.
    pub cpu: CpuTimes,
    /// Number of `cpuN` lines (online logical CPUs).
    pub cpu_count: u32,
    /// Boot time, Unix seconds (`btime`).
    pub boot_time: u64,
}

/// Parses `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, CollectError> {
    let mut out = ProcStat::default();
    let mut seen_cpu = false;
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        match it.next() {
            Some("cpu") => {
                let v: Vec<u64> = it.map(|x| x.parse().unwrap_or(0)).collect();
                if v.len() < 4 {
                    return Err(CollectError::Parse("/proc/stat: short cpu line".into()));
                }
                let f = |i: usize| v.get(i).copied().unwrap_or(0);
                // user nice system idle iowait irq softirq steal (guest, guest_nice excluded)
                out.cpu.total = (0..8).map(f).sum();
                out.cpu.idle = f(3) + f(4);
                seen_cpu = true;
            }
            Some(k) if k.starts_with("cpu") && k[3..].chars().all(|c| c.is_ascii_digit()) => {
                out.cpu_count += 1;
            }
            Some("btime") => {
                out.boot_time = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            }
            _ => {}
        }
    }
    if !seen_cpu {
        return Err(CollectError::Parse("/proc/stat: no cpu line".into()));
    }
    out.cpu_count = out.cpu_count.max(1);
    Ok(out)
}

/// CPU busy percent between two samples (0 when no time passed).
pub fn cpu_pct(prev: CpuTimes, cur: CpuTimes) -> f64 {
    let dt = cur.total.saturating_sub(prev.total);
    let di = cur.idle.saturating_sub(prev.idle);
    if dt == 0 {
        return 0.0;
    }
    clamp_pct((dt.saturating_sub(di)) as f64 / dt as f64 * 100.0)
}

/// Memory figures from `/proc/meminfo`, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable` (or free + buffers + cached on old kernels).
    pub available: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

impl MemInfo {
    /// Percent of memory in use.
    pub fn used_pct(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        clamp_pct(self.total.saturating_sub(self.available) as f64 / self.total as f64 * 100.0)
    }

    /// Percent of swap in use (0 without swap).
    pub fn swap_used_pct(&self) -> f64 {
        if self.swap_total == 0 {
            return 0.0;
        }
        clamp_pct(
            self.swap_total.saturating_sub(self.swap_free) as f64 / self.swap_total as f64 * 100.0,
        )
    }
}

/// Parses `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, CollectError> {
    let mut kv: BTreeMap<&str, u64> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, rest)) = line.split_once(':') {
            let mut it = rest.split_ascii_whitespace();
            let v: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            let mult = if it.next() == Some("kB") { 1024 } else { 1 };
            kv.insert(k.trim(), v.saturating_mul(mult));
        }
    }
    let total = *kv
        .get("MemTotal")
        .ok_or_else(|| CollectError::Parse("/proc/meminfo: no MemTotal".into()))?;
    let available = kv.get("MemAvailable").copied().unwrap_or_else(|| {
        ["MemFree", "Buffers", "Cached"]
            .iter()
            .map(|k| kv.get(k).copied().unwrap_or(0))
            .sum()
    });
    Ok(MemInfo {
        total,
        available: available.min(total),
        swap_total: kv.get("SwapTotal").copied().unwrap_or(0),
        swap_free: kv.get("SwapFree").copied().unwrap_or(0),
    })
}

/// Parses `/proc/loadavg` into the 1, 5 and 15 minute averages.
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], CollectError> {
    let v: Vec<f64> = text
        .split_ascii_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
        .collect();
    match v.as_slice() {
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(CollectError::Parse(format!("/proc/loadavg: {text:?}"))),
    }
}

/// Parses `/proc/uptime` into whole seconds since boot.
pub fn parse_uptime(text: &str) -> Result<u64, CollectError> {
    text.split_ascii_whitespace()
        .next()
        .and_then(|x| x.parse::<f64>().ok())
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|x| x as u64)
        .ok_or_else(|| CollectError::Parse(format!("/proc/uptime: {text:?}")))
}

/// Parses `/proc/net/dev` into counters by interface.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetCounters> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let v: Vec<u64> = rest
            .split_ascii_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if v.len() < 9 {
            continue;
        }
        out.insert(name.trim().to_string(), NetCounters { rx: v[0], tx: v[8] });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::{net_stats, rate, NetConfig};

    const STAT: &str = "cpu  100 10 50 800 40 0 0 0 7 0\n\
cpu0 50 5 25 400 20 0 0 0 0 0\n\
cpu1 50 5 25 400 20 0 0 0 0 0\n\
intr 12345 0 0\n\
ctxt 999\n\
btime 1700000000\n\
processes 42\n";

    #[test]
    fn proc_stat() {
        let s = parse_proc_stat(STAT).unwrap();
        assert_eq!(s.cpu_count, 2);
        assert_eq!(s.boot_time, 1_700_000_000);
        assert_eq!(
            s.cpu,
            CpuTimes {
                total: 1000,
                idle: 840
            }
        );
        assert!(parse_proc_stat("intr 1\n").is_err());
    }

    #[test]
    fn cpu_percent_from_deltas() {
        let a = CpuTimes {
            total: 1000,
            idle: 800,
        };
        let b = CpuTimes {
            total: 1200,
            idle: 850,
        };
        assert_eq!(cpu_pct(a, b), 75.0);
        assert_eq!(cpu_pct(b, b), 0.0);
        // counters going backwards (should not happen) do not produce garbage
        assert_eq!(cpu_pct(b, a), 0.0);
        // first run: since boot
        assert_eq!(cpu_pct(CpuTimes::default(), a), 20.0);
    }

    #[test]
    fn meminfo() {
        let t = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\nSwapTotal:  200 kB\nSwapFree:  150 kB\n";
        let m = parse_meminfo(t).unwrap();
        assert_eq!(m.total, 1000 * 1024);
        assert_eq!(m.used_pct(), 75.0);
        assert_eq!(m.swap_used_pct(), 25.0);
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 100 kB\nCached: 300 kB\n";
        let m = parse_meminfo(old).unwrap();
        assert_eq!(m.used_pct(), 50.0);
        assert_eq!(m.swap_used_pct(), 0.0);
        assert!(parse_meminfo("Foo: 1\n").is_err());
    }

    #[test]
    fn loadavg_and_uptime() {
        assert_eq!(
            parse_loadavg("0.20 0.18 0.12 1/80 11206\n").unwrap(),
            [0.2, 0.18, 0.12]
        );
        assert!(parse_loadavg("0.2 x\n").is_err());
        assert_eq!(parse_uptime("350735.47 234388.90\n").unwrap(), 350_735);
        assert!(parse_uptime("").is_err());
    }

    #[test]
    fn net_dev_and_rates() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 2776770   11307    0    0    0     0          0         0  2776770   11307    0    0    0     0       0          0\n  eth0:1215645    2751    0    0    0     0          0         0  1782404    4324    0    0    0     0       0          0\nveth12: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n";
        let m = parse_net_dev(t);
        assert_eq!(
            m["eth0"],
            NetCounters {
                rx: 1_215_645,
                tx: 1_782_404
            }
        );
        assert_eq!(m.len(), 3);
        let cfg = NetConfig::default();
        let first = net_stats(None, &m, 0.0, &cfg);
        assert_eq!(first.len(), 1, "lo and veth* are ignored: {first:?}");
        assert_eq!(first[0].rx_bps, 0.0);
        let mut later = m.clone();
        later.insert(
            "eth0".into(),
            NetCounters {
                rx: 1_215_645 + 2000,
                tx: 1_782_404 + 500,
            },
        );
        let s = net_stats(Some(&m), &later, 2.0, &cfg);
        assert_eq!((s[0].rx_bps, s[0].tx_bps), (1000.0, 250.0));
        // a counter reset gives 0, not a huge number
        assert_eq!(rate(100, 5, 1.0), 0.0);
    }
}
