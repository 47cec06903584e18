//! CPU time of process trees from `/proc`, to show where the two cores went
//! during a measured window (coordinator, nats-server, Postgres and its
//! backends, etcd, the echo responder, the bench itself).

use std::collections::HashMap;

/// `(ppid, utime + stime in clock ticks)` from the text of `/proc/<pid>/stat`.
pub fn parse_stat(text: &str) -> Option<(u32, u64)> {
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 if unknown).
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Every process: pid → (ppid, cpu ticks).
fn snapshot() -> HashMap<u32, (u32, u64)> {
    let mut m = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return m;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(v) = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        {
            m.insert(pid, v);
        }
    }
    m
}

/// A process to watch: its display name, pid, and whether its live
/// descendants count too (Postgres backends) or only itself (the bench,
/// whose children are the servers measured separately).
pub type Watched = (String, u32, bool);

/// CPU seconds used so far by each watched process (and, when asked, all
/// its live descendants).
pub fn tree_cpu_sec(roots: &[Watched]) -> Vec<(String, f64)> {
    let snap = snapshot();
    let tps = ticks_per_sec();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, (ppid, _)) in &snap {
        children.entry(*ppid).or_default().push(*pid);
    }
    roots
        .iter()
        .map(|(name, root, tree)| {
            let mut total = 0u64;
            let mut stack = vec![*root];
            let mut seen = 0usize;
            while let Some(p) = stack.pop() {
                seen += 1;
                if seen > 100_000 {
                    break;
                }
                if let Some((_, t)) = snap.get(&p) {
                    total += t;
                }
                if *tree {
                    if let Some(c) = children.get(&p) {
                        stack.extend(c.iter().copied());
                    }
                }
            }
            (name.clone(), total as f64 / tps)
        })
        .collect()
}

/// Busy CPU seconds of the whole machine so far (all cores; `/proc/stat`
/// minus idle and iowait).
pub fn machine_busy_sec() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_proc_stat(&text).map_or(0.0, |t| t as f64 / ticks_per_sec())
}

/// Busy ticks from the `cpu ` line of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    Some(total - v[3] - v[4])
}

/// Percent of one core used between two [`tree_cpu_sec`] readings.
pub fn usage_pct(
    before: &[(String, f64)],
    after: &[(String, f64)],
    secs: f64,
) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, b)| *b);
            (
                name.clone(),
                if secs > 0.0 {
                    100.0 * (a - b) / secs
                } else {
                    0.0
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let t =
            "1234 (my (odd) name) S 42 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(parse_stat(t), Some((42, 300)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn machine_busy_counts_all_but_idle_and_iowait() {
        let t = "cpu  10 1 5 1000 7 2 3 4 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        assert_eq!(parse_proc_stat(t), Some(25));
        assert_eq!(parse_proc_stat("intr 1"), None);
        assert!(machine_busy_sec() > 0.0);
    }

    #[test]
    fn own_process_uses_cpu() {
        let me: Vec<Watched> = vec![("me".into(), std::process::id(), false)];
        let first = tree_cpu_sec(&me)[0].1;
        // Spin until the kernel has charged us at least one more tick.
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        let grew = loop {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            if tree_cpu_sec(&me)[0].1 > first {
                break true;
            }
            if spin.elapsed().as_secs() > 10 {
                break false;
            }
        };
        assert!(x > 0);
        assert!(grew, "no CPU time charged after 10 s of spinning");
        let u = usage_pct(&[("me".into(), 1.0)], &[("me".into(), 1.5)], 1.0);
        assert_eq!(u, vec![("me".to_string(), 50.0)]);
    }
}
