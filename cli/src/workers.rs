//! `lullctl workers`: worker execution reports (seed 003). Without a name,
//! every worker with its quality and schedule state; with a name, its
//! statistics, and on request its recent executions and learning insights;
//! `workers system` and `workers quality` show the system-wide views.

use clap::{Args, Subcommand};
use lull_proto::msg::worker::{
    ScheduleStatus, WorkerExecutionsReply, WorkerLearningReply, WorkerRequest, WorkerStatsReply,
};
use lull_proto::subjects::endpoints as ep;

use crate::output::{ago, call, human_duration, json, local, table};
use crate::pages;
use crate::Ctx;

/// Arguments of `lullctl workers`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkersArgs {
    /// Show one worker in detail.
    name: Option<String>,
    /// Also show the worker's newest N executions with their scores.
    #[arg(long, value_name = "N")]
    executions: Option<u32>,
    /// Also show the worker's learning insights (best hour, trends, suggestions).
    #[arg(long)]
    learning: bool,
    #[command(subcommand)]
    view: Option<View>,
}

/// System-wide views.
#[derive(Debug, Subcommand)]
enum View {
    /// System learning: runs in 24 h, busiest hours, workers needing attention.
    System,
    /// Data quality summary across workers.
    Quality,
}

/// Runs the command; returns the exit code.
pub async fn run(ctx: &Ctx, args: WorkersArgs) -> anyhow::Result<i32> {
    match (args.view, args.name) {
        (Some(View::System), _) => system(ctx).await,
        (Some(View::Quality), _) => quality(ctx).await,
        (None, Some(name)) => one(ctx, name, args.executions, args.learning).await,
        (None, None) => list(ctx).await,
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn day_name(d: u8) -> &'static str {
    DAYS.get(usize::from(d)).copied().unwrap_or("?")
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

/// Milliseconds, humanised.
fn ms(v: Option<f64>) -> String {
    v.map(|x| human_duration(x / 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn period(s: &ScheduleStatus) -> String {
    s.expected_period_sec
        .map(human_duration)
        .unwrap_or_else(|| "-".into())
}

async fn list(ctx: &Ctx) -> anyhow::Result<i32> {
    let q = pages::data_quality(ctx).await?;
    let sys = pages::system(ctx).await?;
    if ctx.json {
        json(&serde_json::json!({"quality": q, "system": sys}))?;
        return Ok(0);
    }
    let mut names: Vec<&str> = q.workers.iter().map(|w| w.worker_name.as_str()).collect();
    names.sort_unstable();
    let rows: Vec<Vec<String>> = names
        .iter()
        .filter_map(|n| {
            let w = q.workers.iter().find(|w| w.worker_name == *n)?;
            let s = sys.schedules.iter().find(|s| s.worker_name == *n);
            Some(vec![
                w.worker_name.clone(),
                w.executions.to_string(),
                num(w.quality_score),
                opt(w.quality_level),
                s.map(|s| s.state.as_str().to_string())
                    .unwrap_or_else(|| "-".into()),
                s.map(period).unwrap_or_else(|| "-".into()),
                s.and_then(|s| s.last_run_at)
                    .map(ago)
                    .unwrap_or_else(|| "-".into()),
            ])
        })
        .collect();
    table(
        &[
            "WORKER",
            "RUNS",
            "MEAN SCORE",
            "LEVEL",
            "SCHEDULE",
            "PERIOD",
            "LAST RUN",
        ],
        &rows,
    );
    Ok(0)
}

async fn one(
    ctx: &Ctx,
    worker_name: String,
    executions: Option<u32>,
    learning: bool,
) -> anyhow::Result<i32> {
    let req = WorkerRequest {
        worker_name: worker_name.clone(),
    };
    let stats: WorkerStatsReply = call(ctx, ep::WORKERS_STATS, &req).await?;
    let execs: Option<WorkerExecutionsReply> = match executions {
        Some(n) => Some(pages::executions(ctx, &worker_name, n).await?),
        None => None,
    };
    let insights: Option<WorkerLearningReply> = if learning {
        Some(call(ctx, ep::WORKERS_LEARNING, &req).await?)
    } else {
        None
    };
    if ctx.json {
        if execs.is_none() && insights.is_none() {
            json(&stats)?;
        } else {
            json(&serde_json::json!({
                "stats": stats,
                "executions": execs,
                "learning": insights,
            }))?;
        }
        return Ok(0);
    }
    print_stats(&stats);
    if let Some(e) = &execs {
        println!();
        print_executions(e);
    }
    if let Some(l) = &insights {
        println!();
        print_learning(l);
    }
    Ok(0)
}

fn print_stats(s: &WorkerStatsReply) {
    let o = &s.outcomes;
    let rows = vec![
        vec!["worker".into(), s.worker_name.clone()],
        vec![
            "executions".into(),
            format!(
                "{} (success {}, partial {}, failure {}, timeout {}, skipped {})",
                s.total_executions, o.success, o.partial, o.failure, o.timeout, o.skipped
            ),
        ],
        vec![
            "success rate".into(),
            format!(
                "{} all time, {} recent",
                pct(s.success_rate),
                s.recent_success_rate.map(pct).unwrap_or_else(|| "-".into())
            ),
        ],
        vec![
            "duration".into(),
            format!(
                "{} mean, {} rolling",
                ms(s.avg_duration_ms),
                ms(s.rolling_avg_duration_ms)
            ),
        ],
        vec![
            "records".into(),
            format!(
                "{} total, {} per run",
                s.total_records_processed,
                num(s.avg_records_processed)
            ),
        ],
        vec![
            "score".into(),
            format!(
                "last {} ({}), mean {}, rolling {}",
                num(s.last_overall_score),
                opt(s.last_quality_level),
                num(s.avg_overall_score),
                num(s.rolling_avg_overall_score)
            ),
        ],
        vec![
            "last run".into(),
            s.last_run_at
                .map(|t| format!("{} ({}), {}", local(t), ago(t), opt(s.last_outcome)))
                .unwrap_or_else(|| "-".into()),
        ],
        vec![
            "last success".into(),
            s.last_success_at
                .map(|t| format!("{} ({})", local(t), ago(t)))
                .unwrap_or_else(|| "-".into()),
        ],
        vec![
            "schedule".into(),
            format!(
                "{} (period {} {}, missed runs {})",
                s.schedule.state.as_str(),
                period(&s.schedule),
                format!("{:?}", s.schedule.period_source).to_lowercase(),
                s.schedule.missed_runs
            ),
        ],
        vec![
            "score trend".into(),
            s.score_trend
                .iter()
                .map(|p| format!("{:.0}", p.overall_score))
                .collect::<Vec<_>>()
                .join(" "),
        ],
    ];
    table(&["", ""], &rows);
    if !s.recent_anomalies.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .recent_anomalies
            .iter()
            .map(|a| {
                vec![
                    local(a.detected_at),
                    a.kind.as_str().to_string(),
                    a.execution_id.clone(),
                    a.message.clone(),
                ]
            })
            .collect();
        table(&["DETECTED", "ANOMALY", "EXECUTION", "MESSAGE"], &rows);
    }
}

fn print_executions(r: &WorkerExecutionsReply) {
    let rows: Vec<Vec<String>> = r
        .executions
        .iter()
        .map(|e| {
            let dv = &e.report.data_verification;
            vec![
                local(e.report.started_at),
                e.report.execution_id.clone(),
                e.report.outcome.to_string(),
                human_duration(e.report.duration_ms / 1000.0),
                opt(dv.records_processed.or(dv.records_fetched)),
                format!("{:.1}", e.scores.reliability_score),
                num(e.scores.performance_score),
                num(e.scores.data_quality_score),
                num(e.scores.resource_efficiency_score),
                format!("{:.1}", e.scores.overall_score),
                e.scores.quality_level.to_string(),
                e.anomalies
                    .iter()
                    .map(|a| a.kind.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    table(
        &[
            "STARTED",
            "EXECUTION",
            "OUTCOME",
            "DURATION",
            "RECORDS",
            "REL",
            "PERF",
            "DATA",
            "RES",
            "SCORE",
            "LEVEL",
            "ANOMALIES",
        ],
        &rows,
    );
}

fn print_learning(l: &WorkerLearningReply) {
    println!(
        "best hour {}  best day {}  duration {}  volume {}  records/run {}  period {}",
        l.optimal_hour
            .map(|h| format!("{h:02}:00 UTC"))
            .unwrap_or_else(|| "-".into()),
        l.optimal_day.map(day_name).unwrap_or("-"),
        opt(l.duration_trend.map(|t| format!("{t:?}").to_uppercase())),
        opt(l.data_volume_trend.map(|t| format!("{t:?}").to_uppercase())),
        num(l.recent_avg_records),
        l.expected_period_sec
            .map(human_duration)
            .unwrap_or_else(|| "-".into()),
    );
    let rows: Vec<Vec<String>> = l
        .hourly_performance
        .iter()
        .map(|h| {
            vec![
                format!("{:02}:00", h.hour),
                h.executions.to_string(),
                pct(h.success_rate),
                ms(h.avg_duration_ms),
                format!("{:.1}", h.avg_score),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(&["HOUR", "RUNS", "SUCCESS", "DURATION", "SCORE"], &rows);
    }
    let rows: Vec<Vec<String>> = l
        .daily_performance
        .iter()
        .map(|d| {
            vec![
                day_name(d.day).to_string(),
                d.executions.to_string(),
                pct(d.success_rate),
                ms(d.avg_duration_ms),
                format!("{:.1}", d.avg_score),
            ]
        })
        .collect();
    if !rows.is_empty() {
        println!();
        table(&["DAY", "RUNS", "SUCCESS", "DURATION", "SCORE"], &rows);
    }
    for s in &l.suggestions {
        println!("- [{:?}] {}", s.kind, s.message);
    }
}

async fn system(ctx: &Ctx) -> anyhow::Result<i32> {
    let s = pages::system(ctx).await?;
    // The mean score is the one `lullctl workers` shows, so both agree.
    let q = pages::data_quality(ctx).await?;
    let mean = |name: &str| {
        q.workers
            .iter()
            .find(|w| w.worker_name == name)
            .and_then(|w| w.quality_score)
    };
    if ctx.json {
        json(&s)?;
        return Ok(0);
    }
    let hours = |v: &[lull_proto::msg::worker::HourLoad]| {
        v.iter()
            .map(|h| format!("{:02}:00 ({})", h.hour, h.executions))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "{} workers, {} runs in the last {} h, mean score {}",
        s.workers,
        s.total_executions_24h,
        s.window_hours,
        num(s.average_score)
    );
    println!("busiest hours (UTC): {}", hours(&s.busiest_hours));
    println!("quietest hours (UTC): {}", hours(&s.quietest_hours));
    if !s.workers_needing_attention.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .workers_needing_attention
            .iter()
            .map(|a| {
                vec![
                    a.worker_name.clone(),
                    num(mean(&a.worker_name)),
                    num(a.last_overall_score),
                    opt(a.last_quality_level),
                    a.schedule_state.as_str().to_string(),
                    a.reasons.join("; "),
                ]
            })
            .collect();
        table(
            &[
                "NEEDS ATTENTION",
                "MEAN SCORE",
                "LAST SCORE",
                "LAST LEVEL",
                "SCHEDULE",
                "WHY",
            ],
            &rows,
        );
    }
    if !s.schedules.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = s
            .schedules
            .iter()
            .map(|x| {
                vec![
                    x.worker_name.clone(),
                    x.state.as_str().to_string(),
                    period(x),
                    x.last_run_at.map(ago).unwrap_or_else(|| "-".into()),
                    x.missed_runs.to_string(),
                ]
            })
            .collect();
        table(
            &["WORKER", "SCHEDULE", "PERIOD", "LAST RUN", "MISSED"],
            &rows,
        );
    }
    if !s.optimization_opportunities.is_empty() {
        println!();
        for r in &s.optimization_opportunities {
            println!("- {} [{:?}] {}", r.worker_name, r.kind, r.message);
        }
    }
    Ok(0)
}

async fn quality(ctx: &Ctx) -> anyhow::Result<i32> {
    let q = pages::data_quality(ctx).await?;
    if ctx.json {
        json(&q)?;
        return Ok(0);
    }
    println!(
        "overall {} ({})  records {} ({} in 24 h)  validation failures {} ({} in 24 h)  rate limits {} ({} in 24 h)",
        opt(q.overall_quality_level),
        num(q.overall_score),
        q.total_records_processed,
        q.records_processed_24h,
        q.validation_failures,
        q.validation_failures_24h,
        q.rate_limit_incidents,
        q.rate_limit_incidents_24h
    );
    let rows: Vec<Vec<String>> = q
        .workers
        .iter()
        .map(|w| {
            vec![
                w.worker_name.clone(),
                num(w.quality_score),
                opt(w.quality_level),
                num(w.data_quality_score),
                w.executions.to_string(),
                w.records_processed.to_string(),
                w.validation_failures.to_string(),
                w.rate_limit_incidents.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "WORKER",
            "MEAN SCORE",
            "LEVEL",
            "DATA",
            "RUNS",
            "RECORDS",
            "VALIDATION FAILURES",
            "RATE LIMITS",
        ],
        &rows,
    );
    Ok(0)
}
