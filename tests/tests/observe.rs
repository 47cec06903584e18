//! Observability end to end: a real coordinator and agent (with a lease
//! request, a worker report and a build report to produce data), their
//! /metrics checked by `promtool check metrics` and by Lull's own naming
//! and cardinality rules, a real Prometheus started from
//! `deploy/prometheus/prometheus.yml` (targets pointed at the test
//! processes) that must receive `lull_` series from both jobs and load
//! every alert rule healthy, and every Grafana panel's PromQL run against
//! it: each must parse, and each whose metrics exist must return series.

mod deploy_support;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use deploy_support::*;
use lull_tests::{free_port, http_get, scrape, wait_for, wait_until, Infra, Service};
use serde_json::{json, Value};
use support::*;

const HOST: &str = "obs-host";

/// Label names that would make a metric's cardinality unbounded.
const UNBOUNDED_LABELS: &[&str] = &[
    "lease_id",
    "token",
    "execution_id",
    "build_id",
    "event_id",
    "id",
    "pid",
    "path",
    "file",
    "error",
    "message",
    "subject",
    "reply",
    "url",
    "addr",
    "ip",
    "user",
];
/// Name parts that are not base units (use seconds, bytes, ratios).
const NON_BASE_UNITS: &[&str] = &[
    "_ms",
    "_milliseconds",
    "_microseconds",
    "_nanoseconds",
    "_minutes",
    "_hours",
    "_days",
    "_kilobytes",
    "_megabytes",
    "_gigabytes",
    "_kb",
    "_mb",
    "_percent",
    "_pct",
];

/// One parsed metric family of a text exposition.
#[derive(Default, Debug)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    /// label name -> distinct values
    labels: BTreeMap<String, BTreeSet<String>>,
    samples: usize,
}

/// Parses a Prometheus text exposition into families (histogram and
/// summary samples are folded into their family).
fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    let label_re = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().help = Some(help.trim().into());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().kind = Some(kind.trim().into());
        } else if !line.starts_with('#') {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suf| {
                    let base = name.strip_suffix(suf)?;
                    out.get(base)
                        .and_then(|f| f.kind.as_deref())
                        .filter(|k| *k == "histogram" || *k == "summary")
                        .map(|_| base)
                })
                .unwrap_or(name)
                .to_string();
            let f = out.entry(family).or_default();
            f.samples += 1;
            if let (Some(a), Some(b)) = (line.find('{'), line.rfind('}')) {
                for c in label_re.captures_iter(&line[a + 1..b]) {
                    f.labels
                        .entry(c[1].to_string())
                        .or_default()
                        .insert(c[2].to_string());
                }
            }
        }
    }
    out
}

/// Lull's own hygiene rules on top of promtool's.
fn hygiene_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, f) in families(text) {
        if f.samples == 0 {
            continue;
        }
        // process_* are the standard process metrics every exporter shares.
        if !name.starts_with("lull_") && !name.starts_with("process_") {
            problems.push(format!("{name}: missing the lull_ prefix"));
        }
        match f.help.as_deref() {
            Some(h) if !h.is_empty() => {}
            _ => problems.push(format!("{name}: no HELP text")),
        }
        let kind = f.kind.as_deref().unwrap_or("untyped");
        if kind == "untyped" {
            problems.push(format!("{name}: no TYPE"));
        }
        if kind == "counter" && !name.ends_with("_total") {
            problems.push(format!("{name}: a counter must end in _total"));
        }
        if kind != "counter" && name.ends_with("_total") {
            problems.push(format!(
                "{name}: only counters end in _total (this is a {kind})"
            ));
        }
        for part in NON_BASE_UNITS {
            if name.ends_with(part) || name.contains(&format!("{part}_")) {
                problems.push(format!("{name}: not in base units ({part})"));
            }
        }
        for (label, values) in &f.labels {
            if UNBOUNDED_LABELS.contains(&label.as_str()) {
                problems.push(format!("{name}: label {label} is unbounded"));
            }
            if label != "le" && label != "quantile" && values.len() > 64 {
                problems.push(format!(
                    "{name}: label {label} has {} values in a one-host test",
                    values.len()
                ));
            }
        }
    }
    problems
}

/// `promtool check metrics` on an exposition: must exit 0 and say nothing.
/// Returns what it found.
fn promtool_check_metrics(promtool: &Path, text: &str, what: &str) -> Option<String> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !said.trim().is_empty())
        .then(|| format!("promtool check metrics found problems in the {what}'s /metrics:\n{said}"))
}

/// deploy/prometheus/prometheus.yml with 1 s intervals, the job targets
/// pointed at the test's processes, and the rules at the repo's alerts.yml.
fn test_prometheus_config(coord_port: u16, agent_port: u16) -> String {
    use serde_yaml::Value as Y;
    let mut cfg = yaml(&deploy("prometheus/prometheus.yml"));
    cfg["global"]["scrape_interval"] = Y::from("1s");
    cfg["global"]["scrape_timeout"] = Y::from("1s");
    cfg["global"]["evaluation_interval"] = Y::from("1s");
    cfg["rule_files"] = Y::Sequence(vec![Y::from(
        deploy("prometheus/alerts.yml").display().to_string(),
    )]);
    let jobs = cfg["scrape_configs"]
        .as_sequence_mut()
        .expect("scrape_configs");
    let mut seen = BTreeSet::new();
    for job in jobs.iter_mut() {
        let name = job["job_name"].as_str().unwrap_or("").to_string();
        let (port, labels) = match name.as_str() {
            "lull-coordinator" => (coord_port, None),
            // The host label, as a file_sd entry gives it.
            "lull-agent" => (agent_port, Some(HOST)),
            _ => continue,
        };
        seen.insert(name);
        let m = job.as_mapping_mut().unwrap();
        m.remove("file_sd_configs");
        let mut target = serde_yaml::Mapping::new();
        target.insert(
            "targets".into(),
            Y::Sequence(vec![Y::from(format!("127.0.0.1:{port}"))]),
        );
        if let Some(host) = labels {
            let mut l = serde_yaml::Mapping::new();
            l.insert("host".into(), Y::from(host));
            target.insert("labels".into(), Y::Mapping(l));
        }
        m.insert(
            "static_configs".into(),
            Y::Sequence(vec![Y::Mapping(target)]),
        );
    }
    assert_eq!(
        seen.len(),
        2,
        "prometheus.yml must have jobs lull-coordinator and lull-agent"
    );
    serde_yaml::to_string(&cfg).unwrap()
}

/// GETs a Prometheus API URL and returns `data` (panics on an API error).
async fn api(url: &str) -> Result<Value, String> {
    let r = http_get(url).await.map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
    if v["status"] != "success" {
        return Err(format!("{} {}: {}", r.status, v["errorType"], v["error"]));
    }
    Ok(v["data"].clone())
}

async fn instant(base: &str, q: &str) -> Result<Vec<Value>, String> {
    let d = api(&query_url(base, q)).await?;
    Ok(d["result"].as_array().cloned().unwrap_or_default())
}

fn build_report(now: f64) -> Value {
    json!({
        "timestamp": now - 1.0, "build_id": "obs-build-1", "region": "us-west2",
        "build_type": "pytorch-clean", "machine_type": "c3-standard-176",
        "success": true, "status": "SUCCESS",
        "duration_seconds": 600, "duration_minutes": 10.0,
        "queue_wait_seconds": 60, "queue_wait_minutes": 1.0, "working_seconds": 540,
        "total_steps": 72, "failed_step": null, "spot_price_per_hour": 8.53, "cost_usd": 1.42,
        "error": null, "timeout_reason": null, "fatigues": []
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_lull_and_every_dashboard_query_runs() {
    let Some((promtool, prometheus)) = prometheus_tools() else {
        return;
    };
    let infra = Infra::start().await.expect("infra");
    let coord = start_coordinator(&infra, &[]).await;
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_str().unwrap().to_string();
    let (agent, agent_port) = start_agent(&infra, HOST, &[("LULL_SPOOL_DIR", spool_dir.as_str())]);
    let agent_url = format!("http://127.0.0.1:{agent_port}/metrics");
    let client = infra.nats.connect().await.unwrap();

    // Produce data: the host's stats, requests, a lease request, reports.
    let host_metric = format!("lull_host_quiet_score{{host=\"{HOST}\"}}");
    wait_until(Duration::from_secs(20), || {
        let url = coord.metrics_url.clone();
        let m = host_metric.clone();
        async move { scrape(&url).await.is_ok_and(|t| t.contains(&m)) }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "host never on /metrics\n{}\n{}",
            coord.svc.logs(),
            agent.logs()
        )
    });
    let _: Result<Value, _> = call(&client, "hosts.list", &json!({})).await;
    let _: Result<Value, _> = call(&client, "hosts.get", &json!({"host_id": "nope"})).await;
    let lease = json!({"addon_id": "obs-addon", "job_type": "reindex", "host_id": HOST,
        "cost_units": 10, "expected_duration_sec": 60, "priority": "NORMAL"});
    let _: Result<Value, _> = call(&client, "lease.request", &lease).await;
    let now = lull_common::runtime::now_unix();
    let mut worker =
        lull_proto::msg::worker::example_report("obs-exec-1", "obs_worker", now - 5.0, 1500.0);
    // The agent reports for its own host only.
    worker.host_id = Some(HOST.into());
    let reports = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("worker.json", serde_json::to_value(&worker).unwrap()),
        ("build.json", build_report(now)),
    ] {
        let f = reports.path().join(name);
        std::fs::write(&f, body.to_string()).unwrap();
        let done = Service::builder("lull-agent")
            .args([std::ffi::OsStr::new("report"), f.as_os_str()])
            .env("LULL_SPOOL_DIR", &spool_dir)
            .env("LULL_HOST_ID", HOST)
            .run(Duration::from_secs(10))
            .await
            .expect("lull-agent report");
        assert!(
            done.status.success(),
            "lull-agent report {name}: {}{}",
            done.stdout,
            done.stderr
        );
    }

    // Metrics hygiene: promtool and Lull's rules, on both binaries. All
    // failures are collected and reported together at the end.
    let mut failures = Vec::new();
    for (what, url) in [
        ("coordinator", coord.metrics_url.clone()),
        ("agent", agent_url.clone()),
    ] {
        let text = scrape(&url).await.unwrap();
        failures.extend(promtool_check_metrics(&promtool, &text, what));
        let problems = hygiene_problems(&text);
        if !problems.is_empty() {
            failures.push(format!("{what} metrics hygiene:\n{}", problems.join("\n")));
        }
    }

    // A real Prometheus from the shipped configuration.
    let pdir = tempfile::tempdir().unwrap();
    let cfg = pdir.path().join("prometheus.yml");
    std::fs::write(&cfg, test_prometheus_config(coord.metrics_port, agent_port)).unwrap();
    let port = free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let prom = Service::builder("prometheus")
        .binary(&prometheus)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            pdir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .start()
        .expect("start prometheus");
    wait_until(Duration::from_secs(20), || {
        let url = format!("{base}/-/ready");
        async move { http_get(&url).await.is_ok_and(|r| r.status == 200) }
    })
    .await
    .unwrap_or_else(|_| panic!("prometheus not ready:\n{}", prom.logs()));

    // lull_ series of both jobs arrive, with three scrapes at least (so
    // that rate() has points), and the agent carries its host label.
    for job in ["lull-coordinator", "lull-agent"] {
        let q = format!(
            "count({{__name__=~\"lull_.+\", job=\"{job}\"}}) > 5 and on() count_over_time(up{{job=\"{job}\"}}[1m]) >= 4"
        );
        let got = wait_for(Duration::from_secs(20), || {
            let url = query_url(&base, &q);
            async move {
                api(&url)
                    .await
                    .ok()
                    .filter(|d| d["result"].as_array().is_some_and(|r| !r.is_empty()))
            }
        })
        .await;
        assert!(
            got.is_ok(),
            "no lull_ series from {job} in Prometheus\n{}",
            prom.logs()
        );
    }
    let up = instant(
        &base,
        &format!("up{{job=\"lull-agent\", host=\"{HOST}\"}} == 1"),
    )
    .await
    .unwrap();
    assert_eq!(up.len(), 1, "the agent target must be up with host={HOST}");
    let series = api(&format!("{base}/api/v1/label/__name__/values"))
        .await
        .unwrap();
    let names: BTreeSet<String> = series
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            v.as_str()
                .filter(|n| n.starts_with("lull_"))
                .map(String::from)
        })
        .collect();
    assert!(
        names.contains("lull_host_quiet_score")
            && names.iter().any(|n| n.starts_with("lull_agent_")),
        "{names:?}"
    );

    // Every alert rule is loaded and evaluates without error on real data.
    let n_alerts = read(&deploy("prometheus/alerts.yml"))
        .matches("- alert:")
        .count();
    let rules = wait_for(Duration::from_secs(10), || {
        let url = format!("{base}/api/v1/rules?type=alert");
        async move {
            let d = api(&url).await.ok()?;
            let rules: Vec<Value> = d["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            rules
                .iter()
                .all(|r| r["health"] != "unknown")
                .then_some(rules)
        }
    })
    .await
    .expect("rules evaluated");
    assert_eq!(
        rules.len(),
        n_alerts,
        "Prometheus loaded {} of {n_alerts} alerts",
        rules.len()
    );
    for r in &rules {
        assert_eq!(
            r["health"], "ok",
            "alert {} fails to evaluate: {}",
            r["name"], r["lastError"]
        );
    }
    // One coordinator leads: the leader gauges sum to 1, and the leadership
    // alerts settle inactive (no leader is pending only before the first
    // scrape of the gauge).
    let leaders = instant(
        &base,
        r#"sum(lull_coordinator_leader{job="lull-coordinator"})"#,
    )
    .await
    .expect("leader query");
    assert_eq!(leaders[0]["value"][1], "1", "{leaders:?}");
    let leadership = ["LullCoordinatorNoLeader", "LullCoordinatorMultipleLeaders"];
    let settled = wait_for(Duration::from_secs(15), || {
        let url = format!("{base}/api/v1/rules?type=alert");
        async move {
            let d = api(&url).await.ok()?;
            let states: Vec<Value> = d["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .filter(|r| leadership.iter().any(|n| r["name"] == *n))
                .map(|r| r["state"].clone())
                .collect();
            (states.len() == leadership.len() && states.iter().all(|s| s == "inactive"))
                .then_some(())
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "the leadership alerts are not inactive with one leader"
    );

    // Every panel query of every dashboard.
    let mut selector_has_data: HashMap<String, bool> = HashMap::new();
    let (mut total, mut checked, mut no_data) = (0, 0, BTreeSet::new());
    let mut dashboards: Vec<_> = std::fs::read_dir(deploy("grafana/dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    dashboards.sort();
    let label_values = regex::Regex::new(r"^label_values\((.+),\s*(\w+)\)$").unwrap();
    for path in &dashboards {
        let d: Value = serde_json::from_str(&read(path)).unwrap();
        let dash = path.file_name().unwrap().to_string_lossy().to_string();
        let mut queries: Vec<(String, String)> = Vec::new();
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query" {
                let def = v["definition"].as_str().unwrap_or("");
                let c = label_values
                    .captures(def)
                    .unwrap_or_else(|| panic!("{dash}: variable query {def}"));
                queries.push((
                    format!("variable ${}", v["name"].as_str().unwrap()),
                    format!("count by ({}) ({})", &c[2], &c[1]),
                ));
            }
        }
        let mut panels: Vec<&Value> = Vec::new();
        for p in d["panels"].as_array().into_iter().flatten() {
            panels.push(p);
            panels.extend(p["panels"].as_array().into_iter().flatten());
        }
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                let title = p["title"].as_str().unwrap_or("?").to_string();
                queries.push((title, t["expr"].as_str().unwrap_or("").to_string()));
            }
        }
        for (title, expr) in queries {
            total += 1;
            let q = grafana_to_promql(&expr);
            let result = match instant(&base, &q).await {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{dash} / {title}: does not run: {e}\n    {q}"));
                    continue;
                }
            };
            let mut missing = Vec::new();
            for sel in selectors(&q) {
                let has = match selector_has_data.get(&sel) {
                    Some(h) => *h,
                    None => {
                        let h = instant(&base, &sel)
                            .await
                            .map(|r| !r.is_empty())
                            .unwrap_or(false);
                        selector_has_data.insert(sel.clone(), h);
                        h
                    }
                };
                if !has {
                    missing.push(sel);
                }
            }
            if missing.is_empty() {
                checked += 1;
                if result.is_empty() {
                    failures.push(format!(
                        "{dash} / {title}: its data exists but it returns no series\n    {q}"
                    ));
                }
            } else {
                no_data.insert(missing.join(", "));
            }
        }
    }
    eprintln!(
        "dashboards: {total} queries ran; {checked} had all their data and returned series; \
         the others wait for metrics not produced here: {no_data:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 25,
        "only {checked} dashboard queries could be checked against data"
    );
    drop(prom);
}

#[test]
fn hygiene_rules_catch_bad_metrics() {
    let bad = "# HELP lull_x_seconds x\n# TYPE lull_x_seconds counter\nlull_x_seconds 1\n\
               # TYPE lull_y_total counter\nlull_y_total{lease_id=\"a\"} 1\n\
               # HELP other_ms o\n# TYPE other_ms gauge\nother_ms 2\n";
    let p = hygiene_problems(bad).join("\n");
    for want in [
        "lull_x_seconds: a counter",
        "lull_y_total: no HELP",
        "lease_id is unbounded",
        "other_ms: missing",
        "other_ms: not in base units",
    ] {
        assert!(p.contains(want), "{want} not reported in:\n{p}");
    }
    let good = "# HELP lull_h_seconds h\n# TYPE lull_h_seconds histogram\nlull_h_seconds_bucket{le=\"1\"} 1\nlull_h_seconds_sum 1\nlull_h_seconds_count 1\n";
    assert!(
        hygiene_problems(good).is_empty(),
        "{:?}",
        hygiene_problems(good)
    );
}
