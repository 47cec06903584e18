//! Host collector family (`host`): CPU %, CPU count, load average, memory
//! and swap, network bytes and rates per interface, uptime and boot time,
//! all from `sysinfo`, which reads the platform's own sources (`/proc` on
//! Linux, `sysctl`/`host_statistics` on macOS and the BSDs, the Win32 API
//! on Windows). Only what the snapshot needs is refreshed: the CPU times
//! (no frequency), RAM and swap, and the network counters; `sysinfo`'s
//! process list is never loaded. CPU % and rates are deltas between two
//! runs (the first run reports CPU since boot and zero rates). Owns the
//! `net` config section and the host figures of the snapshot; disks and
//! PSI have their own families (`disk`, `pressure`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lull_proto::msg::stats::{HostStats, NetStats, SystemStatsSnapshot};
use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, Networks, System};

use super::{
    blocking, clamp_pct, same_part, CollectError, CollectFuture, Collected, Collector, Ctx, Family,
    Fresh, Output, Part,
};
use crate::schedule::Schedule;

/// Which network interfaces are reported (`[net]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NetConfig {
    /// Interfaces skipped; a trailing `*` matches a prefix. Default `lo`,
    /// `veth*`, `docker*`, `br-*`, `virbr*`, `cni*`, `flannel*`.
    pub ignore_ifaces: Vec<String>,
    /// Most interfaces reported. Default 64.
    pub max_ifaces: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            ignore_ifaces: [
                "lo", "veth*", "docker*", "br-*", "virbr*", "cni*", "flannel*",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            max_ifaces: 64,
        }
    }
}

/// The host family's config sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The interface filter.
    pub net: NetConfig,
}

/// The host family.
pub struct Host;

impl Family for Host {
    type Settings = Settings;
    /// CPU, load, memory, swap, network, uptime: every 2 s, jitter 0.2 s,
    /// timeout 1.5 s.
    const SCHEDULES: &'static [(&'static str, Schedule)] =
        &[("host", Schedule::new(2.0, 0.2, 1.5))];
    const DELTA: &'static [&'static str] = &["host"];

    fn build(s: &Settings, _: &Ctx<'_>) -> Vec<Box<dyn Collector>> {
        vec![Box::new(HostCollector::new(s.net.clone()))]
    }
}

/// The host figures of the snapshot (`disks` and `pressure` are left to
/// their own parts).
#[derive(Debug, Clone, PartialEq)]
pub struct HostPart(pub HostStats);

impl Part for HostPart {
    fn fill(&self, snap: &mut SystemStatsSnapshot, _: &Fresh<'_>) {
        let (h, s) = (&mut snap.host, &self.0);
        h.cpu_pct = s.cpu_pct;
        h.cpu_count = s.cpu_count;
        h.load_avg = s.load_avg;
        h.mem_total_bytes = s.mem_total_bytes;
        h.mem_used_pct = s.mem_used_pct;
        h.swap_used_pct = s.swap_used_pct;
        h.net = s.net.clone();
        h.uptime_sec = s.uptime_sec;
        h.boot_time = s.boot_time;
    }

    fn same(&self, other: &dyn Part) -> bool {
        same_part(self, other)
    }
}

/// Cumulative byte counters of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounters {
    /// Bytes received.
    pub rx: u64,
    /// Bytes sent.
    pub tx: u64,
}

/// Whether `name` matches one of `patterns` (exact, or prefix when the
/// pattern ends with `*`).
pub fn matches_any(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == p,
    })
}

/// Per-second rate of a counter over `dt` seconds; 0 on a reset or no time.
pub fn rate(prev: u64, cur: u64, dt: f64) -> f64 {
    if dt <= 0.0 || cur < prev {
        return 0.0;
    }
    (cur - prev) as f64 / dt
}

/// Builds the `net` list from two samples of counters.
pub fn net_stats(
    prev: Option<&BTreeMap<String, NetCounters>>,
    cur: &BTreeMap<String, NetCounters>,
    dt: f64,
    cfg: &NetConfig,
) -> Vec<NetStats> {
    cur.iter()
        .filter(|(name, _)| !matches_any(name, &cfg.ignore_ifaces))
        .take(cfg.max_ifaces)
        .map(|(name, c)| {
            let p = prev.and_then(|p| p.get(name));
            NetStats {
                iface: name.clone(),
                rx_bytes: c.rx,
                tx_bytes: c.tx,
                rx_bps: p.map_or(0.0, |p| rate(p.rx, c.rx, dt)),
                tx_bps: p.map_or(0.0, |p| rate(p.tx, c.tx, dt)),
            }
        })
        .collect()
}

/// Percent of `total` not `available` (0 when `total` is 0).
pub fn used_pct(total: u64, available: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    clamp_pct(total.saturating_sub(available.min(total)) as f64 / total as f64 * 100.0)
}

struct State {
    cfg: NetConfig,
    /// Created on the first run (creating them can fail on exotic
    /// platforms; that is a collector error, not a crash).
    sys: Option<System>,
    nets: Option<Networks>,
    prev_net: Option<(Instant, BTreeMap<String, NetCounters>)>,
}

fn sysinfo_err(what: &str, e: impl std::fmt::Display) -> CollectError {
    CollectError::Io(format!("{what}: {e}"))
}

impl State {
    fn run(&mut self) -> Result<Collected, CollectError> {
        // CPU times only (no frequency, no vendor probing after the first
        // refresh), RAM and swap only; never the process list.
        if self.sys.is_none() {
            self.sys = Some(System::new().map_err(|e| sysinfo_err("system", e))?);
        }
        if self.nets.is_none() {
            self.nets = Some(Networks::new().map_err(|e| sysinfo_err("networks", e))?);
        }
        let (Some(sys), Some(nets)) = (self.sys.as_mut(), self.nets.as_mut()) else {
            return Err(CollectError::Other("sysinfo unavailable".into()));
        };
        sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        let l = System::load_average().map_err(|e| sysinfo_err("load average", e))?;
        let uptime_sec = System::uptime().map_err(|e| sysinfo_err("uptime", e))?;
        let boot = System::boot_time().unwrap_or(0);
        let now = Instant::now();
        nets.refresh(true);
        let net_now: BTreeMap<String, NetCounters> = nets
            .iter()
            .map(|(name, d)| {
                let c = NetCounters {
                    rx: d.total_received(),
                    tx: d.total_transmitted(),
                };
                (name.to_string_lossy().into_owned(), c)
            })
            .collect();
        let (prev_net, dt) = match &self.prev_net {
            Some((at, m)) => (Some(m), now.duration_since(*at).as_secs_f64()),
            None => (None, 0.0),
        };
        let net = net_stats(prev_net, &net_now, dt, &self.cfg);
        self.prev_net = Some((now, net_now));
        let boot_time = if boot > 0 {
            boot as f64
        } else {
            (lull_common::runtime::now_unix() - uptime_sec as f64).max(0.0)
        };
        let s = &*sys;
        let cpu_count = u32::try_from(s.cpus().len()).unwrap_or(u32::MAX).max(1);
        let cpu = f64::from(s.global_cpu_usage());
        Ok(Collected::ok(Output::new(HostPart(HostStats {
            cpu_pct: if cpu.is_finite() { clamp_pct(cpu) } else { 0.0 },
            cpu_count,
            load_avg: [l.one, l.five, l.fifteen],
            mem_total_bytes: s.total_memory(),
            mem_used_pct: used_pct(s.total_memory(), s.available_memory()),
            swap_used_pct: used_pct(s.total_swap(), s.free_swap()),
            disks: Vec::new(),
            net,
            uptime_sec,
            boot_time,
            pressure: None,
        }))))
    }
}

/// The host collector.
pub struct HostCollector {
    state: Arc<Mutex<State>>,
}

impl HostCollector {
    /// A collector with the given interface filter.
    pub fn new(cfg: NetConfig) -> Self {
        HostCollector {
            state: Arc::new(Mutex::new(State {
                cfg,
                sys: None,
                nets: None,
                prev_net: None,
            })),
        }
    }
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect(&mut self) -> CollectFuture<'_> {
        blocking(&self.state, State::run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = vec!["lo".to_string(), "veth*".to_string()];
        assert!(matches_any("lo", &p));
        assert!(!matches_any("lo0", &p));
        assert!(matches_any("veth1a2b", &p));
        assert!(!matches_any("eth0", &p));
    }

    #[test]
    fn used_percent() {
        assert_eq!(used_pct(1000, 250), 75.0);
        assert_eq!(used_pct(0, 0), 0.0);
        assert_eq!(used_pct(100, 200), 0.0);
    }

    async fn host_once(c: &mut HostCollector) -> HostStats {
        let r = c.collect().await.unwrap();
        match r.output.get::<HostPart>() {
            Some(h) => h.0.clone(),
            None => panic!("unexpected {:?}", r.output),
        }
    }

    #[tokio::test]
    async fn collects_on_this_host() {
        let mut c = HostCollector::new(NetConfig::default());
        let h = host_once(&mut c).await;
        assert!(h.cpu_count >= 1);
        assert!(h.mem_total_bytes > 0);
        assert!(h.uptime_sec > 0);
        assert!(h.boot_time > 1.0e9);
    }

    /// sysinfo's figures against `/proc` read directly, within a tolerance.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn sysinfo_agrees_with_proc() {
        use crate::collect::procfs;
        use crate::collect::read_text;
        let mut c = HostCollector::new(NetConfig {
            ignore_ifaces: Vec::new(),
            max_ifaces: 1024,
        });
        let h = host_once(&mut c).await;
        let stat = procfs::parse_proc_stat(&read_text("/proc/stat").unwrap()).unwrap();
        let mem = procfs::parse_meminfo(&read_text("/proc/meminfo").unwrap()).unwrap();
        let load = procfs::parse_loadavg(&read_text("/proc/loadavg").unwrap()).unwrap();
        let up = procfs::parse_uptime(&read_text("/proc/uptime").unwrap()).unwrap();
        let net = procfs::parse_net_dev(&read_text("/proc/net/dev").unwrap());
        assert_eq!(h.cpu_count, stat.cpu_count);
        assert_eq!(h.mem_total_bytes, mem.total);
        assert!(
            (h.mem_used_pct - mem.used_pct()).abs() < 5.0,
            "{} vs {}",
            h.mem_used_pct,
            mem.used_pct()
        );
        assert!((h.swap_used_pct - mem.swap_used_pct()).abs() < 5.0);
        assert!(
            (h.boot_time - stat.boot_time as f64).abs() <= 2.0,
            "{} vs {}",
            h.boot_time,
            stat.boot_time
        );
        assert!(h.uptime_sec.abs_diff(up) <= 2, "{} vs {up}", h.uptime_sec);
        for (a, b) in h.load_avg.iter().zip(load) {
            assert!((a - b).abs() <= 1.0, "load {:?} vs {load:?}", h.load_avg);
        }
        // First run: CPU since boot, as the /proc reading gives it.
        let since_boot = procfs::cpu_pct(procfs::CpuTimes::default(), stat.cpu);
        assert!(
            (h.cpu_pct - since_boot).abs() < 5.0,
            "{} vs {since_boot}",
            h.cpu_pct
        );
        // The same interfaces, with counters that only moved forward a little.
        let names: Vec<&str> = h.net.iter().map(|n| n.iface.as_str()).collect();
        let proc_names: Vec<&str> = net.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, proc_names);
        for n in &h.net {
            let p = net[&n.iface];
            assert!(
                p.rx >= n.rx_bytes && p.rx - n.rx_bytes < 10 << 20,
                "{n:?} vs {p:?}"
            );
            assert!(
                p.tx >= n.tx_bytes && p.tx - n.tx_bytes < 10 << 20,
                "{n:?} vs {p:?}"
            );
        }
    }
}
