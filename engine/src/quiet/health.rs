//! The `lull.v1.stats.health` rollup: from per-host facts (stale, state,
//! recent agent loop failures) and the database's write lag, an overall
//! `ok`/`warn`/`error` with reasons and a per-host rollup. Pure.
//!
//! Per host: PANIC is `error`; stale, or an agent loop failure within
//! `agent_failure_recent_sec`, is `warn`. Overall: `error` when the share of
//! hosts in PANIC, or of stale hosts, reaches `error_host_fraction`, when the
//! database reports an error or its write lag reaches `db_lag_error_sec`;
//! `warn` when any host is not ok, no host reports, or the lag reaches
//! `db_lag_warn_sec`.

use serde::{Deserialize, Serialize};

use lull_proto::msg::hosts::QuietState;

pub use super::config::HealthConfig;
use super::score::num;

/// Health level; serialized lowercase (`ok`, `warn`, `error`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HealthLevel {
    /// All good.
    #[default]
    Ok,
    /// Something needs a look.
    Warn,
    /// Something is broken.
    Error,
}

/// What the coordinator knows about one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    /// Host id.
    pub host_id: String,
    /// Quiet state, `None` if never assessed.
    pub state: Option<QuietState>,
    /// Latest quiet score.
    pub quiet_score: Option<f64>,
    /// No snapshot for `stale_factor` intervals.
    pub stale: bool,
    /// Unix seconds of the latest snapshot.
    pub last_seen: Option<f64>,
    /// Unix seconds of the agent's latest `loop.failure`.
    pub last_failure_at: Option<f64>,
    /// Its `error` text.
    pub last_failure: Option<String>,
}

/// What the coordinator knows about its own persistence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemFacts {
    /// Age in seconds of the oldest sample not yet written, `None` when
    /// nothing is pending.
    pub db_write_lag_sec: Option<f64>,
    /// The latest database error, if writes are failing.
    pub db_error: Option<String>,
}

/// One host in the rollup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostHealth {
    /// Host id.
    pub host_id: String,
    /// Level.
    pub status: HealthLevel,
    /// Quiet state.
    pub state: Option<QuietState>,
    /// Latest quiet score.
    pub quiet_score: Option<f64>,
    /// Stale flag.
    pub stale: bool,
    /// Unix seconds of the latest snapshot.
    pub last_seen: Option<f64>,
    /// Why it is not ok.
    pub reasons: Vec<String>,
}

/// Hosts per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    /// Hosts `ok`.
    pub ok: usize,
    /// Hosts `warn`.
    pub warn: usize,
    /// Hosts `error`.
    pub error: usize,
    /// Stale hosts.
    pub stale: usize,
    /// Hosts in PANIC.
    pub panic: usize,
}

/// `lull.v1.stats.health` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReply {
    /// Overall level.
    pub status: HealthLevel,
    /// Why it is not ok.
    pub reasons: Vec<String>,
    /// Unix seconds of the rollup.
    pub generated_at: f64,
    /// Hosts per level.
    pub counts: HealthCounts,
    /// Per-host rollup, worst first, then by host id.
    pub hosts: Vec<HostHealth>,
    /// Whether `hosts` was cut at `max_hosts_listed`.
    pub hosts_truncated: bool,
    /// Database write lag, seconds.
    pub db_write_lag_sec: Option<f64>,
}

/// The health of one host at `now`.
pub fn host_health(h: &HostFacts, cfg: &HealthConfig, now: f64) -> HostHealth {
    let mut status = HealthLevel::Ok;
    let mut reasons = Vec::new();
    if h.state == Some(QuietState::Panic) {
        status = HealthLevel::Error;
        reasons.push("PANIC".to_string());
    }
    if h.stale {
        status = status.max(HealthLevel::Warn);
        reasons.push(match h.last_seen {
            Some(t) => format!(
                "stale: no snapshot for {}s",
                num((now - t).max(0.0).round())
            ),
            None => "stale: no snapshot yet".to_string(),
        });
    }
    if let Some(at) = h.last_failure_at {
        let age = now - at;
        if age <= cfg.agent_failure_recent_sec {
            status = status.max(HealthLevel::Warn);
            let mut r = format!("agent loop failure {}s ago", num(age.max(0.0).round()));
            if let Some(e) = &h.last_failure {
                r.push_str(": ");
                r.extend(e.chars().take(200));
            }
            reasons.push(r);
        }
    }
    HostHealth {
        host_id: h.host_id.clone(),
        status,
        state: h.state,
        quiet_score: h.quiet_score,
        stale: h.stale,
        last_seen: h.last_seen,
        reasons,
    }
}

/// The fleet rollup at `now`.
pub fn rollup(hosts: &[HostFacts], sys: &SystemFacts, cfg: &HealthConfig, now: f64) -> HealthReply {
    let mut rows: Vec<HostHealth> = hosts.iter().map(|h| host_health(h, cfg, now)).collect();
    let mut counts = HealthCounts::default();
    let mut panic_names = Vec::new();
    let mut stale_names = Vec::new();
    let mut failing_names = Vec::new();
    for (r, h) in rows.iter().zip(hosts) {
        match r.status {
            HealthLevel::Ok => counts.ok += 1,
            HealthLevel::Warn => counts.warn += 1,
            HealthLevel::Error => counts.error += 1,
        }
        if h.state == Some(QuietState::Panic) {
            counts.panic += 1;
            panic_names.push(h.host_id.as_str());
        }
        if h.stale {
            counts.stale += 1;
            stale_names.push(h.host_id.as_str());
        }
        if r.reasons
            .iter()
            .any(|x| x.starts_with("agent loop failure"))
        {
            failing_names.push(h.host_id.as_str());
        }
    }

    let mut status = HealthLevel::Ok;
    let mut reasons = Vec::new();
    let n = hosts.len();
    let share_level = |k: usize| {
        if n > 0 && k as f64 / n as f64 >= cfg.error_host_fraction {
            HealthLevel::Error
        } else {
            HealthLevel::Warn
        }
    };
    if n == 0 {
        status = HealthLevel::Warn;
        reasons.push("no hosts reporting".to_string());
    }
    if !panic_names.is_empty() {
        status = status.max(share_level(panic_names.len()));
        reasons.push(named(
            panic_names.len(),
            "host in PANIC",
            "hosts in PANIC",
            &mut panic_names,
            cfg,
        ));
    }
    if !stale_names.is_empty() {
        status = status.max(share_level(stale_names.len()));
        reasons.push(named(
            stale_names.len(),
            "stale host",
            "stale hosts",
            &mut stale_names,
            cfg,
        ));
    }
    if !failing_names.is_empty() {
        status = status.max(HealthLevel::Warn);
        let what = format!(
            "reported loop failures in the last {}s",
            num(cfg.agent_failure_recent_sec)
        );
        reasons.push(named(
            failing_names.len(),
            &format!("agent {what}"),
            &format!("agents {what}"),
            &mut failing_names,
            cfg,
        ));
    }
    if let Some(e) = &sys.db_error {
        status = HealthLevel::Error;
        reasons.push(format!(
            "database: {}",
            e.chars().take(200).collect::<String>()
        ));
    }
    if let Some(lag) = sys.db_write_lag_sec.filter(|l| l.is_finite()) {
        if lag >= cfg.db_lag_error_sec {
            status = HealthLevel::Error;
            reasons.push(format!(
                "db write lag {}s >= {}s",
                num(lag),
                num(cfg.db_lag_error_sec)
            ));
        } else if lag >= cfg.db_lag_warn_sec {
            status = status.max(HealthLevel::Warn);
            reasons.push(format!(
                "db write lag {}s >= {}s",
                num(lag),
                num(cfg.db_lag_warn_sec)
            ));
        }
    }

    rows.sort_by(|a, b| {
        b.status
            .cmp(&a.status)
            .then_with(|| a.host_id.cmp(&b.host_id))
    });
    let hosts_truncated = rows.len() > cfg.max_hosts_listed;
    rows.truncate(cfg.max_hosts_listed);
    HealthReply {
        status,
        reasons,
        generated_at: now,
        counts,
        hosts: rows,
        hosts_truncated,
        db_write_lag_sec: sys.db_write_lag_sec,
    }
}

/// "2 stale hosts: a, b" (names sorted, at most `max_names_in_reason`,
/// then "+N more").
fn named(k: usize, one: &str, many: &str, names: &mut [&str], cfg: &HealthConfig) -> String {
    names.sort_unstable();
    let shown = names.len().min(cfg.max_names_in_reason);
    let mut s = format!("{k} {}", if k == 1 { one } else { many });
    if shown > 0 {
        s.push_str(": ");
        s.push_str(&names[..shown].join(", "));
    }
    if names.len() > shown {
        s.push_str(&format!(" (+{} more)", names.len() - shown));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, state: QuietState) -> HostFacts {
        HostFacts {
            host_id: id.into(),
            state: Some(state),
            quiet_score: Some(90.0),
            last_seen: Some(1000.0),
            ..Default::default()
        }
    }

    fn cfg() -> HealthConfig {
        HealthConfig::default()
    }

    #[test]
    fn all_good_is_ok() {
        let hosts = [host("a", QuietState::Quiet), host("b", QuietState::Busy)];
        let r = rollup(&hosts, &SystemFacts::default(), &cfg(), 1001.0);
        assert_eq!(r.status, HealthLevel::Ok);
        assert!(r.reasons.is_empty());
        assert_eq!(r.counts.ok, 2);
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["status"], "ok");
        assert_eq!(j["hosts"][0]["state"], "QUIET");
    }

    #[test]
    fn no_hosts_is_a_warning() {
        let r = rollup(&[], &SystemFacts::default(), &cfg(), 0.0);
        assert_eq!(r.status, HealthLevel::Warn);
        assert_eq!(r.reasons, vec!["no hosts reporting".to_string()]);
    }

    #[test]
    fn one_panic_host_of_many_warns_most_errors() {
        let mut hosts: Vec<HostFacts> = (0..4)
            .map(|i| host(&format!("h{i}"), QuietState::Quiet))
            .collect();
        hosts[2].state = Some(QuietState::Panic);
        let r = rollup(&hosts, &SystemFacts::default(), &cfg(), 1001.0);
        assert_eq!(r.status, HealthLevel::Warn);
        assert_eq!(r.reasons, vec!["1 host in PANIC: h2".to_string()]);
        assert_eq!(r.hosts[0].host_id, "h2", "worst first");
        assert_eq!(r.hosts[0].status, HealthLevel::Error);
        assert_eq!((r.counts.error, r.counts.panic), (1, 1));

        hosts[3].state = Some(QuietState::Panic);
        let r = rollup(&hosts, &SystemFacts::default(), &cfg(), 1001.0);
        assert_eq!(r.status, HealthLevel::Error, "half the fleet");
        assert_eq!(r.reasons[0], "2 hosts in PANIC: h2, h3");
    }

    #[test]
    fn stale_hosts_and_agent_failures() {
        let mut a = host("a", QuietState::Quiet);
        a.stale = true;
        let mut b = host("b", QuietState::Quiet);
        b.last_failure_at = Some(950.0);
        b.last_failure = Some("Timeout: collector host took 5s".into());
        let mut c = host("c", QuietState::Quiet);
        c.last_failure_at = Some(100.0); // too old to matter
        let d = host("d", QuietState::Quiet);
        let r = rollup(&[a, b, c, d], &SystemFacts::default(), &cfg(), 1030.0);
        assert_eq!(r.status, HealthLevel::Warn);
        assert_eq!(
            r.reasons,
            vec![
                "1 stale host: a".to_string(),
                "1 agent reported loop failures in the last 300s: b".to_string()
            ]
        );
        let a = r.hosts.iter().find(|h| h.host_id == "a").unwrap();
        assert_eq!(a.reasons, vec!["stale: no snapshot for 30s".to_string()]);
        let b = r.hosts.iter().find(|h| h.host_id == "b").unwrap();
        assert_eq!(
            b.reasons[0],
            "agent loop failure 80s ago: Timeout: collector host took 5s"
        );
        assert_eq!(r.counts.ok, 2);
    }

    #[test]
    fn the_whole_fleet_stale_is_an_error() {
        let mut a = host("a", QuietState::Quiet);
        a.stale = true;
        let r = rollup(&[a], &SystemFacts::default(), &cfg(), 2000.0);
        assert_eq!(r.status, HealthLevel::Error);
    }

    #[test]
    fn database_lag_and_errors() {
        let hosts = [host("a", QuietState::Quiet)];
        let lag = |l: f64| SystemFacts {
            db_write_lag_sec: Some(l),
            db_error: None,
        };
        assert_eq!(
            rollup(&hosts, &lag(5.0), &cfg(), 0.0).status,
            HealthLevel::Ok
        );
        let r = rollup(&hosts, &lag(12.0), &cfg(), 0.0);
        assert_eq!(r.status, HealthLevel::Warn);
        assert_eq!(r.reasons, vec!["db write lag 12s >= 10s".to_string()]);
        assert_eq!(
            rollup(&hosts, &lag(61.0), &cfg(), 0.0).status,
            HealthLevel::Error
        );
        let r = rollup(
            &hosts,
            &SystemFacts {
                db_write_lag_sec: None,
                db_error: Some("connection refused".into()),
            },
            &cfg(),
            0.0,
        );
        assert_eq!(r.status, HealthLevel::Error);
        assert_eq!(r.reasons, vec!["database: connection refused".to_string()]);
    }

    #[test]
    fn listing_and_names_are_capped() {
        let hosts: Vec<HostFacts> = (0..10)
            .map(|i| {
                let mut h = host(&format!("h{i:02}"), QuietState::Quiet);
                h.stale = i < 7;
                h
            })
            .collect();
        let c = HealthConfig {
            max_hosts_listed: 3,
            ..cfg()
        };
        let r = rollup(&hosts, &SystemFacts::default(), &c, 5000.0);
        assert_eq!(r.hosts.len(), 3);
        assert!(r.hosts_truncated);
        assert!(r.hosts.iter().all(|h| h.stale));
        assert_eq!(
            r.reasons[0],
            "7 stale hosts: h00, h01, h02, h03, h04 (+2 more)"
        );
        assert_eq!(r.status, HealthLevel::Error, "70% stale");
    }
}
