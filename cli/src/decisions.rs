//! `lullctl leases --denied`: recent denials from the lease audit trail
//! (`lease.decisions`), with their reason codes and the numbers behind
//! them, and how many of each code.

use lull_engine::quiet::history::parse_duration;
use lull_proto::msg::decisions::{DecisionKind, DecisionsReply, DecisionsRequest, DEFAULT_LIMIT};

use crate::output::{json, render_table, Zone};
use crate::Ctx;

/// What `leases --denied` asks for.
#[derive(Debug, Clone, Default)]
pub struct DeniedQuery {
    /// Only this addon.
    pub addon: Option<String>,
    /// Only this host.
    pub host: Option<String>,
    /// How far back ("1h", "30m", "7d").
    pub since: String,
    /// Most rows.
    pub limit: Option<u32>,
}

/// The request for `q` at `now`.
pub fn request(q: &DeniedQuery, now: f64) -> anyhow::Result<DecisionsRequest> {
    let back = parse_duration(&q.since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    Ok(DecisionsRequest {
        kind: Some(DecisionKind::Denied),
        addon_id: q.addon.clone(),
        host_id: q.host.clone(),
        since: Some((now - back).max(0.0)),
        limit: None,
        cursor: None,
    })
}

/// Lists the denials; returns the exit code.
pub async fn denied(ctx: &Ctx, q: &DeniedQuery) -> anyhow::Result<i32> {
    let req = request(q, lull_common::runtime::now_unix())?;
    let want = q.limit.unwrap_or(DEFAULT_LIMIT).max(1) as usize;
    let r = crate::pages::decisions(ctx, &req, want).await?;
    if ctx.json {
        json(&r)?;
    } else {
        print!("{}", render(&r, ctx.wide(), Zone::Local));
    }
    Ok(0)
}

/// The denials as a table, newest first, then the count per code.
/// `wide` adds the job type, units, priority and lease columns.
pub fn render(r: &DecisionsReply, wide: bool, zone: Zone) -> String {
    if r.decisions.is_empty() {
        return format!("no denials since {}\n", zone.datetime(r.since));
    }
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = r
        .decisions
        .iter()
        .map(|d| {
            let code = d.reason_code.map_or("-", |c| c.as_str()).to_string();
            let mut row = vec![zone.datetime(d.at), d.addon_id.clone(), opt(&d.host_id)];
            if wide {
                row.extend([
                    d.job_type.clone(),
                    d.cost_units.to_string(),
                    d.priority.as_str().to_string(),
                ]);
            }
            row.extend([code, opt(&d.reason)]);
            row
        })
        .collect();
    let mut headers = vec!["TIME", "ADDON", "HOST"];
    if wide {
        headers.extend(["JOB", "UNITS", "PRIORITY"]);
    }
    headers.extend(["CODE", "REASON"]);
    let mut out = render_table(&headers, &rows);
    let counts: Vec<String> = r.counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let total: u64 = r.counts.values().sum();
    out.push_str(&format!(
        "\n{total} denials since {} ({}){}\n",
        zone.datetime(r.since),
        counts.join(", "),
        if r.truncated {
            "; the oldest are not listed (--limit)"
        } else {
            ""
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::msg::decisions::Decision;
    use lull_proto::msg::lease::{DenyReason, Priority};

    const T: f64 = 1_762_732_800.0;

    fn denial(at: f64, code: DenyReason, reason: &str) -> Decision {
        Decision {
            at,
            kind: DecisionKind::Denied,
            addon_id: "indexer".into(),
            job_type: "reindex".into(),
            host_id: Some("web-1".into()),
            cost_units: 30,
            priority: Priority::Normal,
            lease_id: None,
            reason_code: Some(code),
            reason: Some(reason.into()),
        }
    }

    fn reply() -> DecisionsReply {
        DecisionsReply {
            since: T - 3600.0,
            decisions: vec![
                denial(T, DenyReason::Blocked, "host web-1 is blocked: patching"),
                denial(
                    T - 60.0,
                    DenyReason::NotQuiet,
                    "host web-1 is BUSY (quiet_score=42.0 < 70.0)",
                ),
            ],
            truncated: true,
            counts: [("blocked".to_string(), 1), ("not_quiet".to_string(), 4)]
                .into_iter()
                .collect(),
            next_cursor: None,
        }
    }

    #[test]
    fn denials_match_the_golden_rendering() {
        let want = "\
TIME                 ADDON    HOST   CODE       REASON
2025-11-10 00:00:00  indexer  web-1  blocked    host web-1 is blocked: patching
2025-11-09 23:59:00  indexer  web-1  not_quiet  host web-1 is BUSY (quiet_score=42.0 < 70.0)

5 denials since 2025-11-09 23:00:00 (blocked 1, not_quiet 4); the oldest are not listed (--limit)
";
        assert_eq!(render(&reply(), false, Zone::utc()), want);
        let wide = render(&reply(), true, Zone::utc());
        assert!(wide.contains("JOB      UNITS  PRIORITY"), "{wide}");
        assert!(wide.contains("reindex  30     NORMAL"), "{wide}");
        let empty = DecisionsReply {
            since: T,
            ..Default::default()
        };
        assert_eq!(
            render(&empty, false, Zone::utc()),
            "no denials since 2025-11-10 00:00:00\n"
        );
    }

    #[test]
    fn since_is_a_duration_back_from_now() {
        let q = DeniedQuery {
            addon: Some("indexer".into()),
            since: "1h".into(),
            ..Default::default()
        };
        let r = request(&q, 10_000.0).unwrap();
        assert_eq!(r.since, Some(6400.0));
        assert_eq!(r.kind, Some(DecisionKind::Denied));
        assert_eq!(r.addon_id.as_deref(), Some("indexer"));
        let bad = DeniedQuery {
            since: "soon".into(),
            ..Default::default()
        };
        assert!(request(&bad, 0.0).is_err());
    }
}
